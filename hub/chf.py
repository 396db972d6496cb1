"""The Communications Hub Function: HAN whitelist (CHF Device Log), trust centre, router between
the WAN (head-end) and the HAN devices, alert buffer during WAN outages, and HAN time source.

Routing: a frame from the WAN (GBT blocks reassembled first) for the CHF is processed here, for the
GPF is posted to it, for anything else is a command for a HAN device: it must be in the log and
joined, and goes through the GB-HGRP tunnel (CHF → ESME/PPMID/HCALCS TunnelClient; GSME via the
CHF's tunnel server queue, kept in NVM namespace `chf_gsme_queue` so that a restart loses no queued
command and keeps each one's 24 h discard time; a message leaves the queue when the GET-RESPONSE
carrying it is sent, as the Silicon Labs CHF does [S FACTS §3.3 source SL comms-hub-function.c: the
GET handler removes it before sending; GBCS 10.2.2's own words not retrieved], so a GSME executes
it at most once — a hub that dies between the GET and the GSME's PUT loses only the response,
which the head-end's retry (a new counter) recovers). Any failure is reported to the command's originator with alert 0x8F84
in message code 0x00D5 (body: octet-string originator ‖ recipient ‖ CRA ‖ counter [U: layout from
the DCC parser, no RTDS sample]) — never silence. WAN frames wait in a fair inbox, bounded per
connection and served round-robin (`_on_wan_frame`); a frame naming a HAN device that is not a
whole message (bad CRA byte, does not decode, bad GBT block) is answered here with 0x8F1E, and
only a command that decodes earns its connection the response (`HubPort.note_command`).
Messages from HAN devices go up unchanged; one addressed to another joined HAN device (PPMID →
GSME) or the GPF is forwarded there instead.

HAN wiring (`attach_han`): one port, receiving through a power gate (a CHF that is off hears
nothing) into `han_dispatch`: Tunneling 0x0704 (the CHF's TunnelHost: clients towards the
ESME/PPMID/HCALCS tunnel servers on `han_endpoint`, re-requested every 0xFFFF s, and a server for
the GSME's tunnel), `han.join.JOIN_CLUSTER` (the trust centre: `han.join.JoinServer` answering from
the Device Log and the join window; refusals go to the security log), and a `ZclServer` for
`zcl_attributes()` (Time 0x000A, Basic 0x0000) answering joined devices only. After a join the
CHF records the TC link key (CS14 if the log changed) and opens the tunnel to tunnel-server types.

The CHF Device Log and the ZigBee Network Control object live in `hub.chf_log`, the WAN outage
queue in `hub.wan_queue`, firmware distribution (OTA Upgrade server, CCS08) in `hub.chf_ota`; all
are mixed into `Chf`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections import deque
from datetime import datetime, timedelta, timezone
from typing import Any

from gbcs.catalogue import AlertCode, DeviceType, MessageCode, RemotePartyRole
from gbcs.codec import DecodeError, eui_hex, parse_eui
from gbcs.dlms import Data
from gbcs.frame import CRA, Message, Reassembler, check_message, decode_gbt_block, decode_message, peek_header
from gbcs.zcl import utc_seconds
from gbhub.firmware.cosem import ObjectModel
from gbhub.firmware.credentials import credential_handlers
from gbhub.firmware.gbcs_device import CommandRejected, GbcsDevice, Outcome, RemoteParty, call, dlms, handlers
from gbhub.firmware.update_handlers import ACTIVATE_FIRMWARE_FAILURE, activate_firmware
from gbhub.han.aps import BASIC_CLUSTER, TIME_CLUSTER, TUNNELING_CLUSTER, HanError
from gbhub.han.join import JOIN_CLUSTER, JoinServer, JoinStatus, KeyKind
from gbhub.han.transport import ClusterDispatch, HanPort, HanTransport
from gbhub.han.tunnel import TUNNEL_REFRESH_INTERVAL, QueueJournal, TunnelHost
from gbhub.han.zcl_server import ZclServer
from gbhub.wan.bridge import HubPort

from .chf_ota import ChfFirmware
from .chf_log import LOG_NS, NETWORK_NS, ChfDeviceLog, ChfDeviceLogEntry, LogChanges
from .wan_queue import QUEUE_NS, WanQueue

GSME_QUEUE_NS = "chf_gsme_queue"  # "GSME-EUI:seq" -> {"t": queued at, "frame": message}


class _GsmeQueueJournal(QueueJournal):
    """The GSME queues in the CHF's NVM: written before the command counts as queued, removed
    when the GSME has fetched it (or it was discarded with 0x819D)."""

    def __init__(self, nvm, on_restored_fetched=None) -> None:
        self.nvm = nvm
        self.seq = 1 + max((int(k.split(":")[1]) for k in nvm.keys(GSME_QUEUE_NS)), default=0)
        self.restored: dict[str, bytes] = {}  # key -> frame, of the messages queued before this start
        self.on_restored_fetched = on_restored_fetched

    def add(self, eui: bytes, queued_at: float, message: bytes) -> str:
        key = f"{eui_hex(eui)}:{self.seq:012d}"
        self.seq += 1
        self.nvm.put(GSME_QUEUE_NS, key, {"t": queued_at, "frame": bytes(message)})
        return key

    def remove(self, eui: bytes, key: str, fetched: bool) -> None:
        self.nvm.delete(GSME_QUEUE_NS, key)
        frame = self.restored.pop(key, None)
        if fetched and frame is not None and self.on_restored_fetched is not None:
            self.on_restored_fetched(eui, frame)

    def stored(self):
        """(eui, queued at, frame, key) of every stored message, oldest first per GSME."""
        items = sorted(self.nvm.items(GSME_QUEUE_NS), key=lambda kv: int(kv[0].split(":")[1]))
        self.restored = {k: v["frame"] for k, v in items}
        return [(parse_eui(k.split(":")[0]), v["t"], v["frame"], k) for k, v in items]

log = logging.getLogger("gbhub.chf")

#: Device types the CHF opens a GB-HGRP tunnel to (FACTS §6); the GSME opens its own to the CHF.
TUNNEL_SERVER_TYPES = frozenset({DeviceType.ESME, DeviceType.PPMID, DeviceType.HCALCS})

TIME_STATUS_MASTER_SUPERSEDING = 0x09  # Time cluster TimeStatus: Master (bit 0) + Superseding (bit 3)
PHYSICAL_ENVIRONMENT_MIRROR_CAPABLE = 0x01  # Basic cluster, required of the CHF [S HG ch.c]

_TUNNEL_CHECK = 3600.0  # how often the tunnel ages are checked
_WAN_TURN = object()  # inbox token: serve the next WAN connection's next frame (fair inbox)
_WAN_SLICE = 0.002  # host seconds of WAN turns before the CHF lets the event loop run (a queue
# that is never empty never suspends its reader: the bridge could not read the other connections)
_QUEUE_SWEEP = 900.0  # how often messages waiting for a GSME are checked for expiry
_LAST_COMM_PERSIST = 60.0  # seconds between persisted last-communication updates per device


def delivery_failure_body(command: Message) -> bytes:
    """0x00D5 body: originator ‖ recipient ‖ CRA ‖ originator counter of the undelivered message."""
    return command.originator + command.recipient + bytes((int(command.cra),)) + command.originator_counter.to_bytes(8, "big")


# ---------------------------------------------------------------------------------------------
# The CHF
# ---------------------------------------------------------------------------------------------


class Chf(ChfDeviceLog, WanQueue, ChfFirmware, GbcsDevice):
    """The Communications Hub Function (see module doc).

    Wiring: `attach_wan(hub_port)`, `attach_han(transport)` (returns the HAN port; other cluster
    servers add their handlers to `han_dispatch`), `attach_gpf(gpf)` (or `gpf=`). Then `start()`.
    """

    kind = "chf"

    # DLMS on its ZigBee Network Control object and firmware version; requests are executed in
    # order, the first failure stopping the rest (break-on-error, always set in GBCS).
    HANDLERS = handlers(
        dlms(MessageCode.CCS01),
        dlms(MessageCode.CCS02),
        dlms(MessageCode.CCS03),
        dlms(MessageCode.CCS05CCS04),
        dlms(MessageCode.CCS06),
        dlms(MessageCode.CCS07),
        dlms(MessageCode.ECS52),
        *credential_handlers(),  # CS02a-g (firmware.credentials)
        call(MessageCode.CS06, activate_firmware, dated=True, fail=ACTIVATE_FIRMWARE_FAILURE),
    )

    def __init__(
        self,
        eui: bytes | str,
        *,
        clock,
        credentials,
        trust,
        nvm=None,
        gpf: GbcsDevice | None = None,
        extended_pan_id: bytes | str | None = None,
        device_log_capacity: int = 16,
        historic_log_capacity: int = 15,
        wan_queue_limit: int = 1000,
        join_timeout_unit: float = 60.0,
        han_endpoint: int = 1,
        tunnel_response_timeout: float = 10.0,
        han_retries: int = 1,
        wan_inbox_frames: int = 256,
        wan_inbox_bytes: int = 1 << 20,
        reassembly: dict | None = None,
        gsme_queue_limit: int = 32,
        gsme_queue_timeout: float = 86400.0,
        **kw: Any,
    ) -> None:
        super().__init__(eui, clock=clock, credentials=credentials, trust=trust, nvm=nvm, **kw)
        self.send_gbcs = self.uplink
        self.gpf: GbcsDevice | None = None
        self._extended_pan_id = None if extended_pan_id is None else parse_eui(extended_pan_id)
        self.device_log_capacity = device_log_capacity
        self.historic_log_capacity = historic_log_capacity
        self.wan_queue_limit = wan_queue_limit
        self.join_timeout_unit = join_timeout_unit
        self.han_endpoint = han_endpoint
        self.tunnel_response_timeout = tunnel_response_timeout
        self.han_retries = han_retries
        self.wan_inbox_frames = wan_inbox_frames
        self.wan_inbox_bytes = wan_inbox_bytes
        self._reassembly_limits = dict(reassembly or {})
        self.gsme_queue_limit = gsme_queue_limit  # messages queued per sleepy GSME [U; HG emulator 32]
        self.gsme_queue_timeout = gsme_queue_timeout  # seconds before 0x819D [S SL default 24 h]
        self.han_dispatch = ClusterDispatch()
        self.han_port: HanPort | None = None
        self.zcl_server: ZclServer | None = None
        self.wan: HubPort | None = None
        self._wan_unlisten = None
        # RAM state (rebuilt at boot)
        self._tunnels: TunnelHost | None = None
        self._join_server: JoinServer | None = None
        self._queue: deque[tuple[str, bytes]] = deque()
        self._draining = False
        self._reassembler = Reassembler(**self._reassembly_limits)
        self._wan_in: dict[Any, list] = {}  # source -> [deque of frames, bytes]: the fair WAN inbox
        self._wan_turn_posted = False
        self._wan_slice_start = 0.0
        self._han_locks: dict[bytes, asyncio.Lock] = {}
        self._han_stats: dict[bytes, list[int]] = {}  # eui -> [successes, failures]
        self._last_comm: dict[bytes, float] = {}
        self._log_cache: dict[bytes, Any] = {}
        self._changes = LogChanges()  # what the command being executed changed in the log
        self.objects = type(self)._object_model().bind(self)
        # counters for tests and diagnostics
        self.delivery_failures = 0
        self.wan_dropped = 0  # WAN frames lost because the CHF was off
        self.han_refused = 0  # HAN messages from devices not joined / not in the log
        self.wan_inbox_dropped = 0  # WAN frames refused because their connection's share was full
        if gpf is not None:
            self.attach_gpf(gpf)

    # ------------------------------------------------------------------ wiring
    @classmethod
    def _object_model(cls) -> ObjectModel:
        """The CHF's COSEM objects, built once per class and shared (`firmware.cosem`)."""
        model = cls.__dict__.get("_shared_objects")
        if model is None:
            model = ObjectModel([cls.network_control(), cls.firmware_version_object()])
            cls._shared_objects = model
        return model

    @property
    def extended_pan_id(self) -> bytes:
        """ZigBee Extended PAN ID = the GPF's EUI [S FACTS §3.1], unless given; once a CCS03
        restore has set one, that one (persisted)."""
        restored = self.nvm.get(NETWORK_NS, "extended_pan_id")
        if restored is not None:
            return restored
        if self._extended_pan_id is not None:
            return self._extended_pan_id
        return self.gpf.eui if self.gpf is not None else self.eui

    def attach_gpf(self, gpf: GbcsDevice) -> None:
        """The GPF shares the CH: frames for it are posted to it, and it sends up through us."""
        self.gpf = gpf
        gpf.send_gbcs = self.uplink

    def attach_wan(self, port: HubPort) -> None:
        if self._wan_unlisten is not None:
            self._wan_unlisten()
        self.wan = port
        port.on_frame(self._on_wan_frame, with_source=True)
        port.on_client_gone(self._on_wan_client_gone)
        port.on_taker(self._on_wan_taker)
        self._wan_unlisten = port.on_link_change(self._on_wan_link)
        if self._alive and port.up and self._queue:
            self._start_drain()

    def attach_han(self, transport: HanTransport) -> HanPort:
        if self.han_port is not None:
            raise HanError(f"CHF {self.eui_hex} is already on a HAN")
        self.han_dispatch.add(TUNNELING_CLUSTER, self._on_tunnel_frame)
        self.han_dispatch.add(JOIN_CLUSTER, self._on_join_frame)
        self.han_port = port = transport.attach(self.eui, self._han_receive)
        self.zcl_server = ZclServer(self.han_dispatch, endpoint=self.han_endpoint, clusters=self.zcl_attributes(),
                                    allow=self._zcl_allowed, port=port, clock=self.clock)
        if self._alive:
            self._start_han()
        else:
            self._start_ota()
        return port

    def _han_receive(self, frame):
        # A powered-off CHF hears nothing (every cluster handler sits behind this gate).
        if not self._alive:
            return None
        return self.han_dispatch(frame)

    def _zcl_allowed(self, eui: bytes) -> bool:
        entry = self._entry(eui)
        return entry is not None and entry.joined

    @property
    def _alive(self) -> bool:
        return self.state in ("on", "booting")

    @property
    def alert_recipient(self) -> RemoteParty | None:
        if self._alert_recipient is not None:
            return self.trust.by_eui(self._alert_recipient)
        return self.trust.by_role(RemotePartyRole.ACCESS_CONTROL_BROKER) or self.trust.by_role(RemotePartyRole.SUPPLIER)

    # ------------------------------------------------------------------ lifecycle
    async def on_boot(self) -> None:
        self._queue = deque((k, v) for k, v in self.nvm.items(QUEUE_NS))
        self._draining = False
        self._reassembler = Reassembler(**self._reassembly_limits)
        self._wan_in = {}
        self._wan_turn_posted = False
        if self.han_port is not None:
            self._start_han()
        if self.wan is not None and self.wan.up and self._queue:
            self._start_drain()

    def on_power_off(self) -> None:
        self._log_cache.clear()
        self._tunnels = None
        self._join_server = None
        self._queue = deque()
        self._draining = False
        self._wan_in = {}
        self._wan_turn_posted = False
        self._reassembler = Reassembler(**self._reassembly_limits)
        self._han_locks.clear()
        self._han_stats.clear()
        self._last_comm.clear()

    def _start_han(self) -> None:
        port = self.han_port
        assert port is not None
        host = TunnelHost(port, endpoint=self.han_endpoint, clock=self.clock,
                          on_message=self._on_tunnel_message, on_error=self._on_tunnel_error)
        sleepy = [e.eui for e in self.device_log() if e.joined and e.device_type == DeviceType.GSME]
        journal = _GsmeQueueJournal(self.nvm, self._restored_command_fetched)
        server = host.serve(accept=self._accept_tunnel, sleepy=sleepy, queue_limit=self.gsme_queue_limit,
                            queue_timeout=self.gsme_queue_timeout, on_discard=self._gsme_message_discarded,
                            journal=journal)
        self._tunnels = host
        for eui, queued_at, frame, key in journal.stored():  # queued before a restart
            server.restore(eui, queued_at, frame, key)
        self.every(_QUEUE_SWEEP, lambda _t: server.expire(), align=False)
        self._join_server = JoinServer(port, authorise=self._authorise_join, on_joined=self._on_joined,
                                       on_refused=self._on_join_refused, clock=self.clock)
        for entry in self.device_log():
            if entry.joined and entry.device_type in TUNNEL_SERVER_TYPES:
                self.spawn(self._open_tunnel(entry.eui), name=f"chf-tunnel-{eui_hex(entry.eui)}")
        self.every(_TUNNEL_CHECK, self._refresh_tunnels, align=False)
        self._start_ota()

    def _refresh_tunnels(self, t: float) -> None:
        """Re-request each tunnel 0xFFFF s after its last RequestTunnelResponse [S FACTS §6]."""
        host = self._tunnels
        if host is None:
            return
        for eui, client in list(host.clients.items()):
            if client.opened_at is not None and t - client.opened_at >= TUNNEL_REFRESH_INTERVAL:
                self.spawn(self._open_tunnel(eui, force=True), name=f"chf-tunnel-{eui_hex(eui)}")

    # ------------------------------------------------------------------ GBCS use cases
    def execute(self, message: Message) -> Outcome:
        """A use case through the handler table; a change of the log is followed by CS14 (and
        removed devices lose their HAN tunnels) once the response is out."""
        changes = self._changes = LogChanges()
        outcome = super().execute(message)
        if not changes:
            return outcome

        async def after() -> None:
            for eui in changes.removed:
                await self._forget_han_device(eui)
            await self.raise_cs14()

        outcome.after = after
        return outcome

    # ------------------------------------------------------------------ WAN side
    async def _on_wan_frame(self, frame: bytes, source: Any = None) -> None:
        """The fair WAN inbox: each connection (`source`) has its own bounded FIFO
        (`wan_inbox_frames` frames, `wan_inbox_bytes` bytes; beyond, frames are refused and
        counted in `wan_inbox_dropped`), and one inbox token serves them round-robin, one frame
        per turn, so a flood from one connection delays another's command by at most one frame
        per flooding connection. Over TCP the bridge stops reading while this runs: it only queues."""
        if not self._alive:
            self.wan_dropped += 1
            return
        inbox = self._wan_in
        share = inbox.get(source)
        if share is None:
            share = inbox[source] = [deque(), 0]
        elif len(share[0]) >= self.wan_inbox_frames or share[1] + len(frame) > self.wan_inbox_bytes:
            self.wan_inbox_dropped += 1
            if self.wan_inbox_dropped & (self.wan_inbox_dropped - 1) == 0:  # 1, 2, 4, 8 ...: logged, not flooded
                log.warning("CHF %s: WAN inbox share of %s full: %d frames refused so far", self.eui_hex, source,
                            self.wan_inbox_dropped)
            return
        share[0].append(frame)
        share[1] += len(frame)
        if not self._wan_turn_posted:
            self._wan_turn_posted = self.post(_WAN_TURN)

    async def _wan_turn(self) -> Any:
        inbox = self._wan_in
        if not inbox:
            self._wan_turn_posted = False
            return None
        source = next(iter(inbox))
        share = inbox.pop(source)
        frame = share[0].popleft()
        share[1] -= len(frame)
        if share[0]:
            inbox[source] = share  # to the back of the round
        self._wan_turn_posted = bool(inbox) and self.post(_WAN_TURN)
        now = time.perf_counter()
        if now - self._wan_slice_start > _WAN_SLICE:
            await asyncio.sleep(0)
            self._wan_slice_start = time.perf_counter()
        return await self._from_wan(frame, source)

    def _on_wan_client_gone(self, source: Any) -> None:
        """A WAN connection closed: its queued frames and partial GBT messages go."""
        self._wan_in.pop(source, None)
        self._reassembler.discard(source)

    def _on_wan_link(self, up: bool) -> None:
        if up and self._alive and self._queue:
            self._start_drain()

    def _on_wan_taker(self) -> None:
        if self._alive and self._queue and self.wan is not None and self.wan.up:
            self._start_drain()

    async def handle(self, item: Any) -> Any:
        if item is _WAN_TURN:
            return await self._wan_turn()
        if isinstance(item, (bytes, bytearray)):
            return await self._from_wan(bytes(item))
        return await self.handle_other(item)

    async def handle_other(self, item: Any) -> Any:
        if isinstance(item, tuple) and item:
            if item[0] == "han":
                return await self._from_han(item[1], item[2])
            if item[0] == "join":
                server = self._join_server
                if server is not None:
                    result = server.handle(item[1])
                    if result is not None:
                        await result
                return None
        return await super().handle_other(item)

    async def _from_wan(self, frame: bytes, source: Any = None) -> bytes | None:
        if len(frame) >= 2 and frame[0] == 0xDD and frame[1] == 0x09:
            reassembler = self._reassembler
            dropped = reassembler.overflows + reassembler.expired
            try:
                whole = reassembler.add(decode_gbt_block(frame), sender=source, now=self.clock.now())
            except DecodeError as exc:
                await self._reject(None, CommandRejected("malformed", f"GBT block: {exc}"))
                return None
            if reassembler.overflows + reassembler.expired != dropped:
                n = reassembler.overflows + reassembler.expired
                if n & (n - 1) == 0:  # 1, 2, 4, 8 ...: logged, not flooded
                    log.warning("CHF %s: GBT reassembly bounds: %d partial messages dropped (%d over a bound, %d expired)",
                                self.eui_hex, n, reassembler.overflows, reassembler.expired)
            if whole is None:
                return None
            frame = whole
        # Routing reads only the header (the message is checked by the device it is for); a
        # frame whose header cannot be read is rejected here as malformed (alert 0x8F1E).
        header = peek_header(frame)
        if header is None:
            return await self.process(frame)
        cra, counter, originator, recipient, _final = header
        if cra not in (CRA.COMMAND, CRA.RESPONSE, CRA.ALERT):
            # No message at all, whoever it names: answered here (alert 0x8F1E), never dropped.
            await self._reject(None, CommandRejected("malformed", f"CRA byte {cra} in a frame for {eui_hex(recipient)}"))
            return None
        error = None
        if cra == CRA.COMMAND:
            # Only a command that decodes earns its sender the response (`HubPort.note_command`):
            # garbage repeating a pending command's header never diverts it. The CHF cannot check
            # a MAC meant for a meter, so correlation is per frame, not per header.
            try:
                check_message(frame)
            except DecodeError as exc:
                error = exc
            else:
                if source is not None and self.wan is not None:
                    self.wan.note_command(source, originator, counter)
        if recipient == self.eui:
            return await self.process(frame)
        if self.gpf is not None and recipient == self.gpf.eui:
            if not self.gpf.post(frame):
                self.log_event("gpf_unavailable", counter=counter)
            return None
        if cra != CRA.COMMAND:
            self.log_security("unexpected_message", cra=CRA(cra).name.lower(), recipient=eui_hex(recipient))
            return None
        if error is not None:
            # A HAN device gets whole messages only: a frame that does not decode is answered
            # here (0x8F1E) instead of spending air time on it.
            await self._reject(None, CommandRejected("malformed", f"for {eui_hex(recipient)}: {error}"))
            return None
        entry = self._entry(recipient)
        if entry is None:
            await self._undeliverable(frame, "recipient not in the CHF device log")
        elif not entry.joined:
            await self._undeliverable(frame, "recipient has not joined the HAN")
        elif self._tunnel_ready(entry):
            # Open tunnel, nothing in flight to this device: a send only hands the frame to the
            # air, so deliver inline and save a task per command (the hot path of every read).
            await self._deliver_han(recipient, frame, True)
        else:
            self.spawn(self._deliver_han(recipient, frame, True), name=f"chf-deliver-{eui_hex(recipient)}")
        return None

    async def _undeliverable(self, frame: bytes, reason: str) -> None:
        """Report a WAN command that cannot reach its HAN device (0x00D5 / 0x8F84)."""
        try:
            command = decode_message(frame)
        except DecodeError:
            await self.process(frame)  # not a message at all: rejected as malformed (alert 0x8F1E)
            return
        await self._delivery_failure(command, reason)

    def _tunnel_ready(self, entry: ChfDeviceLogEntry) -> bool:
        host = self._tunnels
        if host is None or entry.device_type not in TUNNEL_SERVER_TYPES or entry.device_type == DeviceType.GSME:
            return False
        lock = self._han_locks.get(entry.eui)
        if lock is not None and lock.locked():
            return False
        client = host.clients.get(entry.eui)
        return client is not None and client.tunnel_id is not None

    async def _delivery_failure(self, command: Message, reason: str) -> None:
        """Report an undeliverable remote-party message to its originator (0x00D5 / 0x8F84)."""
        self.delivery_failures += 1
        self.log_event("delivery_failure", recipient=eui_hex(command.recipient), originator=eui_hex(command.originator),
                       counter=command.originator_counter, message_code=f"{command.message_code:04X}", reason=reason)
        log.info("CHF %s cannot deliver %d to %s: %s", self.eui_hex, command.originator_counter,
                 eui_hex(command.recipient), reason)
        party = self.trust.by_eui(command.originator)
        if party is None or party.ka_public is None:
            self.log_security("delivery_failure_unreported", originator=eui_hex(command.originator))
            return
        await self.raise_alert(AlertCode.FAILURE_TO_DELIVER_REMOTE_PARTY_MESSAGE_TO_ESME, message_code=MessageCode.MessageDeliveryFailure,
                               elements=(Data.octet_string(delivery_failure_body(command)),), recipient=party)

    # ------------------------------------------------------------------ HAN side
    def _on_tunnel_frame(self, frame):
        host = self._tunnels
        if host is None or not self._alive:
            return None
        return host.handle(frame)

    def _on_join_frame(self, frame) -> None:
        if self._alive:
            self.post(("join", frame))

    def _on_tunnel_message(self, peer: bytes, message: bytes) -> None:
        if self._alive:
            self.post(("han", peer, message))

    def _restored_command_fetched(self, eui: bytes, frame: bytes) -> None:
        """A command queued before a restart reached the GSME: shown to the GPF now (it may not
        have been running when the queue was reloaded), so its tap-off pairs it with the response."""
        if self.gpf is not None:
            self.gpf.post(("tap_command", eui, frame))

    def _gsme_message_discarded(self, eui: bytes, message: bytes) -> None:
        """A message the GSME did not fetch in time: the GPF reports it (alert 0x819D)."""
        self.log_event("gsme_message_expired", eui=eui_hex(eui))
        if self.gpf is not None:
            self.gpf.post(("not_retrieved", eui, message))

    def _on_tunnel_error(self, peer: bytes, status: int) -> None:
        self.log_event("tunnel_error", eui=eui_hex(peer), status=int(status))

    def _accept_tunnel(self, client: bytes) -> bool | None:
        entry = self._entry(client)
        return True if entry is not None and entry.joined else None

    def _note_communication(self, eui: bytes) -> None:
        now = self.clock.now()
        self._last_comm[eui] = now
        entry = self._log_cache.get(eui)
        if entry is not None and entry.last_communication is not None and now - entry.last_communication < _LAST_COMM_PERSIST:
            return
        raw = self.nvm.get(LOG_NS, eui_hex(eui))
        if raw is not None:
            last = raw.get("last_communication")
            if last is None or now - last >= _LAST_COMM_PERSIST:
                raw["last_communication"] = now
                self.nvm.put(LOG_NS, eui_hex(eui), raw)
                self._log_changed()

    async def _from_han(self, peer: bytes, message: bytes) -> None:
        entry = self._entry(peer)
        if entry is None or not entry.joined:
            self.han_refused += 1
            self.log_security("han_message_refused", eui=eui_hex(peer))
            return
        self._note_communication(peer)
        if entry.device_type == DeviceType.GSME and self.gpf is not None:
            self.gpf.post(("tap_response", peer, message))
        header = peek_header(message)
        if header is not None:
            recipient = header[3]
            if recipient != peer and recipient != self.eui:
                if self.gpf is not None and recipient == self.gpf.eui:
                    self.gpf.post(message)
                    return
                other = self._entry(recipient)
                if other is not None and other.joined:
                    self.spawn(self._deliver_han(recipient, message, False), name=f"chf-relay-{eui_hex(recipient)}")
                    return
        await self.uplink(message)

    async def _deliver_han(self, eui: bytes, frame: bytes, report: bool) -> None:
        """Send `frame` to a HAN device; a failure is reported to the originator (WAN commands,
        `report`) or logged (messages relayed between HAN devices)."""
        lock = self._han_locks.get(eui)
        if lock is None:
            lock = self._han_locks[eui] = asyncio.Lock()
        async with lock:
            error = await self._han_send(eui, frame)
        if error is None:
            return
        if report:
            await self._undeliverable(frame, error)
        else:
            self.log_event("han_relay_failure", recipient=eui_hex(eui), reason=error)

    async def _han_send(self, eui: bytes, frame: bytes) -> str | None:
        """Send over the tunnel; None on success, else why not."""
        entry = self._entry(eui)
        if entry is None or not entry.joined:
            return "recipient left the CHF device log"
        host = self._tunnels
        if host is None:
            return "the CHF is not on a HAN"
        stats = self._han_stats.setdefault(eui, [0, 0])
        try:
            if entry.device_type == DeviceType.GSME:
                assert host.server is not None
                host.server.set_sleepy(eui)
                await host.server.send_gbcs(eui, frame)  # queued for the GSME's next GET
                stats[0] += 1
                if self.gpf is not None:  # tap-off: the GPF sees the command, then its response
                    self.gpf.post(("tap_command", eui, frame))
                return None
            if entry.device_type not in TUNNEL_SERVER_TYPES:
                return f"device type {entry.device_type} takes no GBCS messages"
            client = self._tunnel_client(eui)
            for _ in range(1 + self.han_retries):
                if await client.send_gbcs(frame):
                    stats[0] += 1
                    return None
                stats[1] += 1
            return "lost on the HAN"
        except HanError as exc:
            stats[1] += 1
            return f"{type(exc).__name__}: {exc}"

    def _tunnel_client(self, eui: bytes):
        assert self._tunnels is not None
        return self._tunnels.connect(eui, server_endpoint=self.han_endpoint, response_timeout=self.tunnel_response_timeout)

    async def _open_tunnel(self, eui: bytes, force: bool = False) -> None:
        if self._tunnels is None:
            return
        try:
            await self._tunnel_client(eui).open(force=force)
        except HanError as exc:
            self.log_event("tunnel_open_failed", eui=eui_hex(eui), error=str(exc))

    async def _forget_han_device(self, eui: bytes) -> None:
        host = self._tunnels
        self._han_stats.pop(eui, None)
        self._last_comm.pop(eui, None)
        if host is None:
            return
        client = host.clients.get(eui)
        host.remove(eui)
        try:
            if client is not None:
                await client.close()
            if host.server is not None:
                host.server.set_sleepy(eui, False)
                await host.server.close(eui)
        except HanError as exc:
            log.info("CHF %s: closing tunnels of %s: %s", self.eui_hex, eui_hex(eui), exc)

    # -- joins ------------------------------------------------------------------------------
    def _authorise_join(self, eui: bytes, device_type: int):
        entry = self.device_log_entry(eui)
        if entry is None:
            return JoinStatus.NOT_IN_DEVICE_LOG
        if entry.tc_link_key is not None:
            return KeyKind.TC_LINK_KEY, entry.tc_link_key  # trust-centre rejoin
        state = self._joining()
        if not self.joining_open:
            return JoinStatus.JOINING_NOT_PERMITTED
        if entry.previous_tc_link_key is not None and self.clock.now() < (state["start"] + state["end"]) / 2:
            return KeyKind.TC_LINK_KEY, entry.previous_tc_link_key  # historic log: first half of the window
        return KeyKind.INSTALL_CODE, entry.link_key

    def _on_joined(self, eui: bytes, device_type: int, tc_link_key: bytes, key_kind: int) -> None:
        raw = self.nvm.get(LOG_NS, eui_hex(eui))
        if raw is None:
            raise ValueError("device left the log during its join")
        entry = ChfDeviceLogEntry.from_nvm(raw)
        changed = entry.tc_link_key != tc_link_key
        now = self.clock.now()
        self._put_entry(dataclasses.replace(
            entry, tc_link_key=tc_link_key, previous_tc_link_key=None, device_type=device_type,
            joined_at=now if changed or entry.joined_at is None else entry.joined_at, last_communication=now,
        ))
        self._last_comm[eui] = now
        self.log_event("device_joined", eui=eui_hex(eui), device_type=device_type,
                       key=("tc_link_key" if key_kind == KeyKind.TC_LINK_KEY else "install_code"), changed=changed)
        if device_type == DeviceType.GSME and self._tunnels is not None and self._tunnels.server is not None:
            self._tunnels.server.set_sleepy(eui)
        self.spawn(self._after_join(eui, device_type, changed), name=f"chf-joined-{eui_hex(eui)}")

    async def _after_join(self, eui: bytes, device_type: int, changed: bool) -> None:
        if changed:
            await self.raise_cs14()
        if device_type in TUNNEL_SERVER_TYPES:
            await self._open_tunnel(eui, force=True)

    def _on_join_refused(self, eui: bytes, status: int, reason: str) -> None:
        name = status.name if isinstance(status, JoinStatus) else str(status)
        self.log_security("join_refused", eui=eui_hex(eui), status=name, reason=reason)

    # ------------------------------------------------------------------ HAN time source
    def zcl_attributes(self) -> dict[int, Any]:
        """The CHF's ZCL attribute providers, `{cluster: provider}` as `han.zcl_server.ZclServer`
        takes them (`attach_han` serves them on `han_endpoint`): Time 0x000A and Basic 0x0000."""
        return {TIME_CLUSTER: self.time_attributes, BASIC_CLUSTER: self.basic_attributes}

    def time_attributes(self) -> dict[int, int]:
        """Time cluster, evaluated now [S FACTS §3.5]: Time = UTC seconds since 2000-01-01,
        TimeStatus = Master + Superseding (0x09); UK local time: TimeZone 0, DST from 01:00 UTC
        on the last Sunday of March to 01:00 UTC on the last Sunday of October, shift 3600 s."""
        now = self.clock.utcnow()
        utc = utc_seconds(now)
        start, end = _uk_dst(now.year)
        shift = 3600 if start <= utc < end else 0
        return {
            0x0000: utc,
            0x0001: TIME_STATUS_MASTER_SUPERSEDING,
            0x0002: 0,
            0x0003: start,
            0x0004: end,
            0x0005: 3600,
            0x0006: utc,
            0x0007: utc + shift,
        }

    def basic_attributes(self) -> dict[int, Any]:
        """Basic cluster: PhysicalEnvironment = 1, mirror capable [S HG ch.c citing GBCS 10.2.2]."""
        return {0x0011: PHYSICAL_ENVIRONMENT_MIRROR_CAPABLE, 0x0000: 0x02, 0x0007: 0x01}


def _last_sunday(year: int, month: int) -> datetime:
    day = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=timezone.utc) - timedelta(days=1)
    return day - timedelta(days=(day.weekday() + 1) % 7)


def _uk_dst(year: int) -> tuple[int, int]:
    """UK summer time of `year` as ZCL UTCTime (start, end): 01:00 UTC, last Sundays of Mar/Oct."""
    return (utc_seconds(_last_sunday(year, 3).replace(hour=1)), utc_seconds(_last_sunday(year, 10).replace(hour=1)))



__all__ = ["Chf", "TUNNEL_SERVER_TYPES", "delivery_failure_body"]
