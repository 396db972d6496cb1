"""The Communications Hub Function: HAN whitelist (CHF Device Log), trust centre, router between
the WAN (head-end) and the HAN devices, alert buffer during WAN outages, and HAN time source.

Device Log [S FACTS §3.2, DT CCS01/CCS02/CS14; O RTDS]: only devices in it may join and talk on
the HAN. An entry holds the EUI, the install code and the link key derived from it
(`han.join.link_key_from_install_code`: AES-MMO of install code ‖ CRC), the device type (learnt at
join), the TC link key once joined (CS14 reports its AES-MMO hash, zero-length before), and the
last communication time. Capacity `device_log_capacity` (default 16 [S HG ch.h; real limit U]).
Removed entries that had a TC link key go to the Historic Device Log (15 entries, oldest
overwritten [S DT CCS02]); an EUI added back from there may rejoin with its old TC link key
during the first half of the join window, and with its install code in the second half.

Use cases (DLMS ACCESS on ZigBee Network Control, class 104, OBIS 0-0:30.3.0.255 [O RTDS]):
  CCS01 0x0001  action 1 register_device(structure{eui, key_type, install code, option}),
                set 3 join_timeout, set 2 enable_disable_joining. Already in the log: success,
                key ignored [S DT].
  CCS02 0x0002  action 2 unregister_device(eui); not in the log: action-result 1 [O RTDS ERROR].
  CCS03 0x0003  action 5 restore_PAN, set 3 join_timeout, set 2 enable_disable_joining [U: our
                layout, see below].
  CCS05CCS04 0x0004, CCS06 0x010F, CCS07 0x00FE  get 4 active_devices (and 2, 3).
  ECS52 0x0059  get class 1, 0-0:0.2.1.255, attribute 2: firmware version (CH variant of ECS52).
Requests are executed in order; with the invoke-id's break-on-error bit (always set in GBCS) the
first failure stops execution and the rest answer other-reason (250), as the RTDS CCS01 ERROR
response shows. Requests outside the use case's objects reject the command (alert 0x8F1E).
After every change of the log (add, remove, join) the CHF sends CS14 (0x0018, alert 0x8F12) to
the ACB: DATA-NOTIFICATION structure{alert, time, structure{time, extended PAN id, array of
structure{eui, hash}}} — byte-identical in shape to RTDS NA_CS14.

CCS03 Restore CHF Device Log [U]: no source gives its payload (FACTS §3.2 only says it "restores
device log and PAN (network formed with given Extended PAN ID)" [S DT]), so we chose one on the
DLMS Blue Book's class 104, whose method 5 restore_PAN "restores a PAN using backup information":
  action 5 restore_PAN(structure{extended PAN id octet-string(8), array of register_device
  structures (as CCS01)}), then set 3 join_timeout and set 2 enable_disable_joining, as CCS01.
The Device Log becomes exactly the backup, in one NVM transaction: entries not in it are removed
(TC link key → historic log, as CCS02), entries already in the log are kept as they are (key
ignored, as CCS01), new ones are registered from their install code (taking a historic TC link key
along, as CCS01); the extended PAN id is adopted and persisted (`extended_pan_id`, carried by CS14).
Devices that must (re)join do so during the join window the two sets open. The action's return
data is an array of enum, one per backup entry in order: 0 restored/kept, 1 invalid entry (key
type not install code, bad install code, EUI repeated), 2 device log full (beyond
`device_log_capacity`). Any non-zero entry makes the action result other-reason (250) [I] and
nothing changes; an extended PAN id not of 8 bytes or a malformed structure answers
type-unmatched (12), nothing changes. A change raises CS14 (and removed devices lose their HAN
tunnels), as CCS01/CCS02 do.

Semantics we chose where no source reaches [I]/[U]:
* register_device key_type 1 = install code (the only one accepted); the 4th element (RTDS: enum 0)
  is kept as `registration_option`, meaning unknown [U].
* join_timeout unit: `join_timeout_unit` seconds (default 60: minutes) [U: RTDS value 90].
* active_device status bit-string, MSB first: bit 0 registered, bit 1 joined (TC link key),
  bit 4 has communicated since joining (RTDS 0xC8 = a joined, talking device). RSSI/LQI are the
  fixed values of the virtual air; hops 1; failure/success counts are the CHF's HAN sends
  since boot (saturating at 255).
* A device that holds a TC link key may rejoin at any time with it (trust-centre rejoin); it
  keeps that key and the log does not change.
* CHF alerts (CS14 and security alerts) go to the ACB by default; 0x00D5 delivery failures go to
  the undelivered command's originator.

Routing: a frame from the WAN (GBT blocks reassembled first) for the CHF is processed here, for the
GPF is posted to it, for anything else is a command for a HAN device: it must be in the log and
joined, and goes through the GB-HGRP tunnel (CHF → ESME/PPMID/HCALCS TunnelClient; GSME via the
CHF's tunnel server queue). Any failure is reported to the command's originator with alert 0x8F84
in message code 0x00D5 (body: octet-string originator ‖ recipient ‖ CRA ‖ counter [U: layout from
the DCC parser, no RTDS sample]) — never silence. Messages from HAN devices go up unchanged; one
addressed to another joined HAN device (PPMID → GSME) or the GPF is forwarded there instead.

HAN wiring (`attach_han`): one port, receiving through a power gate (a CHF that is off hears
nothing) into `han_dispatch`: Tunneling 0x0704 (the CHF's TunnelHost: clients towards the
ESME/PPMID/HCALCS tunnel servers on `han_endpoint`, re-requested every 0xFFFF s, and a server for
the GSME's tunnel), `han.join.JOIN_CLUSTER` (the trust centre: `han.join.JoinServer` answering from
the Device Log and the join window; refusals go to the security log), and a `ZclServer` for
`zcl_attributes()` (Time 0x000A, Basic 0x0000) answering joined devices only. After a join the
CHF records the TC link key (CS14 if the log changed) and opens the tunnel to tunnel-server types.

WAN outage: everything the hub sends up (responses, alerts, relayed messages) goes through
`uplink`. While the WAN is down (or earlier frames still wait) frames join a FIFO persisted in
NVM, bounded by `wan_queue_limit` (default 1000). When full, the new frame is dropped and
counted (`wan_queue_dropped`, persisted); the first drop of an outage is logged
(`wan_queue_overflow` event) and once the queue has drained after the WAN returns, an event
`wan_queue_overflow_reported` records how many were lost. The queue is released in order when the
WAN comes back (`HubPort.on_link_change`) or at boot.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable

from gbhub.firmware.gbcs_device import CommandRejected, GbcsDevice, Outcome, RemoteParty
from gbcs import catalogue
from gbcs.catalogue import DeviceType, RemotePartyRole
from gbcs.codec import DecodeError, eui_hex, parse_eui
from gbcs.dlms import (
    AccessRequest,
    AccessResponse,
    BitString,
    Data,
    DataNotification,
    DataType,
    DlmsDateTime,
    RequestKind,
    decode_apdu,
    obis,
)
from gbcs.frame import CRA, Message, Reassembler, decode_gbt_block, decode_message
from gbcs.zcl import utc_seconds
from gbhub.han.aps import BASIC_CLUSTER, TIME_CLUSTER, TUNNELING_CLUSTER, HanError
from gbhub.han.join import (
    JOIN_CLUSTER,
    JoinServer,
    JoinStatus,
    KeyKind,
    link_key_from_install_code,
    tc_link_key_hash,
)
from gbhub.han.transport import ClusterDispatch, HanPort, HanTransport
from gbhub.han.tunnel import TUNNEL_REFRESH_INTERVAL, TunnelHost
from gbhub.han.zcl_server import ZclServer
from gbcs.frame import peek_header
from gbhub.wan.bridge import HubPort, WanDown

log = logging.getLogger("gbhub.chf")

# -- message codes and alerts ------------------------------------------------------------------
CCS01 = 0x0001  # Add Device to CHF device log
CCS02 = 0x0002  # Remove device from CHF device log
CCS03 = 0x0003  # Restore CHF Device Log
CCS05CCS04 = 0x0004  # Read CHF Device Log
CCS06 = 0x010F  # Read CHF device log and check HAN communications
CCS07 = 0x00FE  # Read CHF Device Logs
ECS52 = 0x0059  # Read ESME/Comms Hub Firmware Version
CS14 = 0x0018  # Device Addition To / Removal From HAN Whitelist Alerts
CS14_ALERT = 0x8F12
DELIVERY_FAILURE = 0x00D5  # Failure to Deliver Remote Party Message to ESME
DELIVERY_FAILURE_ALERT = 0x8F84

# -- COSEM objects ---------------------------------------------------------------------------------
NETWORK_CONTROL_CLASS = 104
NETWORK_CONTROL = obis("0-0:30.3.0.255")
ENABLE_DISABLE_JOINING = 2
JOIN_TIMEOUT = 3
ACTIVE_DEVICES = 4
REGISTER_DEVICE = 1
UNREGISTER_DEVICE = 2
RESTORE_PAN = 5
FIRMWARE_VERSION_CLASS = 1
FIRMWARE_VERSION = obis("0-0:0.2.1.255")
KEY_TYPE_INSTALL_CODE = 1

_G, _S, _A = RequestKind.GET, RequestKind.SET, RequestKind.ACTION
_NC = (NETWORK_CONTROL_CLASS, NETWORK_CONTROL)
_READ_LOG = frozenset({(_G, *_NC, ACTIVE_DEVICES), (_G, *_NC, ENABLE_DISABLE_JOINING), (_G, *_NC, JOIN_TIMEOUT)})
#: The COSEM requests each use case may carry (anything else rejects the command).
USE_CASE_REQUESTS: dict[int, frozenset[tuple]] = {
    CCS01: frozenset({(_A, *_NC, REGISTER_DEVICE), (_S, *_NC, JOIN_TIMEOUT), (_S, *_NC, ENABLE_DISABLE_JOINING)}),
    CCS02: frozenset({(_A, *_NC, UNREGISTER_DEVICE)}),
    CCS03: frozenset({(_A, *_NC, RESTORE_PAN), (_S, *_NC, JOIN_TIMEOUT), (_S, *_NC, ENABLE_DISABLE_JOINING)}),
    CCS05CCS04: _READ_LOG,
    CCS06: _READ_LOG,
    CCS07: _READ_LOG,
    ECS52: frozenset({(_G, FIRMWARE_VERSION_CLASS, FIRMWARE_VERSION, 2)}),
}

# DLMS results used here
SUCCESS = 0
HARDWARE_FAULT = 1  # RTDS answers an unknown EUI in CCS02 with it
READ_WRITE_DENIED = 3
OBJECT_UNDEFINED = 4
TYPE_UNMATCHED = 12
OTHER_REASON = 250

# restore_PAN per-entry results (the action's return data) [U, see module doc]
RESTORED = 0
INVALID_ENTRY = 1
DEVICE_LOG_FULL = 2

#: Device types the CHF opens a GB-HGRP tunnel to (FACTS §6); the GSME opens its own to the CHF.
TUNNEL_SERVER_TYPES = frozenset({DeviceType.ESME, DeviceType.PPMID, DeviceType.HCALCS})

# Virtual-air link figures reported by CCS06 (max, average, min) [I].
RSSI = (-40, -45, -50)
LQI = (255, 250, 245)
# active_device status bits (MSB first) [I, see module doc]
STATUS_REGISTERED = 0x80
STATUS_JOINED = 0x40
STATUS_COMMUNICATING = 0x08

TIME_STATUS_MASTER_SUPERSEDING = 0x09  # Time cluster TimeStatus: Master (bit 0) + Superseding (bit 3)
PHYSICAL_ENVIRONMENT_MIRROR_CAPABLE = 0x01  # Basic cluster, required of the CHF [S HG ch.c]

_LOG_NS = "chf_device_log"
_MISSING_ENTRY = object()
_HISTORIC_NS = "chf_historic_log"
_JOINING_NS = "chf_joining"
_NETWORK_NS = "chf_network"  # the extended PAN id a CCS03 restore set
_QUEUE_NS = "chf_wan_queue"
_QUEUE_META_NS = "chf_wan_meta"
_TUNNEL_CHECK = 3600.0  # how often the tunnel ages are checked
_DRAIN_BATCH = 64  # queued frames released per NVM commit
_LAST_COMM_PERSIST = 60.0  # seconds between persisted last-communication updates per device


# ---------------------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChfDeviceLogEntry:
    """One CHF Device Log entry. `tc_link_key` is None until the device joins."""

    eui: bytes
    install_code: bytes
    link_key: bytes = field(repr=False)
    key_type: int = KEY_TYPE_INSTALL_CODE
    registration_option: int = 0
    device_type: int | None = None
    tc_link_key: bytes | None = field(default=None, repr=False)
    previous_tc_link_key: bytes | None = field(default=None, repr=False)  # from the historic log
    added_at: float = 0.0
    joined_at: float | None = None
    last_communication: float | None = None

    @property
    def joined(self) -> bool:
        return self.tc_link_key is not None

    @property
    def tc_link_key_hash(self) -> bytes:
        return tc_link_key_hash(self.tc_link_key)

    def to_nvm(self) -> dict:
        return {name: getattr(self, name) for name in _ENTRY_FIELDS}

    @classmethod
    def from_nvm(cls, d: dict) -> "ChfDeviceLogEntry":
        return cls(**{name: d.get(name) for name in _ENTRY_FIELDS if name in d})


_ENTRY_FIELDS = tuple(f.name for f in dataclasses.fields(ChfDeviceLogEntry))


@dataclass(frozen=True, slots=True)
class HistoricLogEntry:
    """A removed device and the TC link key it had (CHF Historic Device Log)."""

    eui: bytes
    tc_link_key: bytes = field(repr=False)
    device_type: int | None = None
    removed_at: float = 0.0

    def to_nvm(self) -> dict:
        return {"eui": self.eui, "tc_link_key": self.tc_link_key, "device_type": self.device_type, "removed_at": self.removed_at}


@dataclass(frozen=True, slots=True)
class DeviceLogRestore:
    """What `Chf.restore_device_log` did: the DLMS action result, one result per backup entry
    (RESTORED / INVALID_ENTRY / DEVICE_LOG_FULL), and on success what changed."""

    result: int
    entries: tuple[int, ...]
    added: tuple[bytes, ...] = ()
    removed: tuple[bytes, ...] = ()
    extended_pan_id_changed: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed or self.extended_pan_id_changed)


class _RestoreAborted(Exception):
    """Rolls a restore's NVM savepoint back."""


# ---------------------------------------------------------------------------------------------
# Payload builders (also used by the tests to compare with the RTDS vectors)
# ---------------------------------------------------------------------------------------------


def device_log_backup(when: "datetime | DlmsDateTime | bytes", extended_pan_id: bytes,
                      entries: Iterable[tuple[bytes, bytes]]) -> Data:
    """CS14's use-case element: structure{date-time, extended PAN id, array of {eui, TC link key
    hash}} [O RTDS NA_CS14]."""
    return Data.structure(
        Data.timestamp(when),
        Data.octet_string(extended_pan_id),
        Data.array(*(Data.structure(Data.octet_string(eui), Data.octet_string(h)) for eui, h in entries)),
    )


def cs14_content(counter: int, when: "datetime | DlmsDateTime | bytes", extended_pan_id: bytes,
                 entries: Iterable[tuple[bytes, bytes]]) -> bytes:
    """The DATA-NOTIFICATION of a CS14 alert (alert 0x8F12)."""
    return DataNotification.build(counter, CS14_ALERT, when, device_log_backup(when, extended_pan_id, entries)).encode()


def active_device(
    eui: bytes,
    status: int,
    *,
    rssi: tuple[int, int, int] = RSSI,
    lqi: tuple[int, int, int] = LQI,
    last_communication: "datetime | DlmsDateTime | bytes | None" = None,
    hops: int = 1,
    failures: int = 0,
    successes: int = 0,
    application_version: int = 1,
    stack_version: int = 1,
) -> Data:
    """One element of active_devices (CCS06): structure{mac, status bit-string(8), max/avg/min
    RSSI, max/avg/min LQI, last communication date-time, hops, failures, successes, application
    version, stack version} [O RTDS CCS06]."""
    return Data.structure(
        Data.octet_string(eui),
        Data.bit_string(BitString(8, bytes((status & 0xFF,)))),
        *(Data.integer(v) for v in rssi),
        *(Data.unsigned(v) for v in lqi),
        Data.timestamp(last_communication),
        Data.unsigned(hops),
        Data.unsigned(min(failures, 255)),
        Data.unsigned(min(successes, 255)),
        Data.unsigned(application_version),
        Data.unsigned(stack_version),
    )


def delivery_failure_body(command: Message) -> bytes:
    """0x00D5 body: originator ‖ recipient ‖ CRA ‖ originator counter of the undelivered message."""
    return command.originator + command.recipient + bytes((int(command.cra),)) + command.originator_counter.to_bytes(8, "big")


# ---------------------------------------------------------------------------------------------
# The CHF
# ---------------------------------------------------------------------------------------------


class Chf(GbcsDevice):
    """The Communications Hub Function (see module doc).

    Wiring: `attach_wan(hub_port)`, `attach_han(transport)` (returns the HAN port; other cluster
    servers add their handlers to `han_dispatch`), `attach_gpf(gpf)` (or `gpf=`). Then `start()`.
    """

    kind = "chf"

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
        self._reassembler = Reassembler()
        self._han_locks: dict[bytes, asyncio.Lock] = {}
        self._han_stats: dict[bytes, list[int]] = {}  # eui -> [successes, failures]
        self._last_comm: dict[bytes, float] = {}
        self._log_cache: dict[bytes, Any] = {}
        # counters for tests and diagnostics
        self.delivery_failures = 0
        self.wan_dropped = 0  # WAN frames lost because the CHF was off
        self.han_refused = 0  # HAN messages from devices not joined / not in the log
        if gpf is not None:
            self.attach_gpf(gpf)

    # ------------------------------------------------------------------ wiring
    @property
    def extended_pan_id(self) -> bytes:
        """ZigBee Extended PAN ID = the GPF's EUI [S FACTS §3.1], unless given; once a CCS03
        restore has set one, that one (persisted)."""
        restored = self.nvm.get(_NETWORK_NS, "extended_pan_id")
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
        port.on_frame(self._on_wan_frame)
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
        self._queue = deque((k, v) for k, v in self.nvm.items(_QUEUE_NS))
        self._draining = False
        self._reassembler = Reassembler()
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
        self._han_locks.clear()
        self._han_stats.clear()
        self._last_comm.clear()

    def _start_han(self) -> None:
        port = self.han_port
        assert port is not None
        host = TunnelHost(port, endpoint=self.han_endpoint, clock=self.clock,
                          on_message=self._on_tunnel_message, on_error=self._on_tunnel_error)
        sleepy = [e.eui for e in self.device_log() if e.joined and e.device_type == DeviceType.GSME]
        host.serve(accept=self._accept_tunnel, sleepy=sleepy)
        self._tunnels = host
        self._join_server = JoinServer(port, authorise=self._authorise_join, on_joined=self._on_joined,
                                       on_refused=self._on_join_refused, clock=self.clock)
        for entry in self.device_log():
            if entry.joined and entry.device_type in TUNNEL_SERVER_TYPES:
                self.spawn(self._open_tunnel(entry.eui), name=f"chf-tunnel-{eui_hex(entry.eui)}")
        self.every(_TUNNEL_CHECK, self._refresh_tunnels, align=False)

    def _refresh_tunnels(self, t: float) -> None:
        """Re-request each tunnel 0xFFFF s after its last RequestTunnelResponse [S FACTS §6]."""
        host = self._tunnels
        if host is None:
            return
        for eui, client in list(host.clients.items()):
            if client.opened_at is not None and t - client.opened_at >= TUNNEL_REFRESH_INTERVAL:
                self.spawn(self._open_tunnel(eui, force=True), name=f"chf-tunnel-{eui_hex(eui)}")

    # ------------------------------------------------------------------ device log (NVM)
    def device_log(self) -> list[ChfDeviceLogEntry]:
        """The CHF Device Log, ordered by EUI."""
        return [self._with_ram(ChfDeviceLogEntry.from_nvm(v)) for _, v in self.nvm.items(_LOG_NS)]

    def device_log_entry(self, eui: bytes | str) -> ChfDeviceLogEntry | None:
        """The entry for `eui` (with its latest communication time), or None."""
        hit = self._entry(parse_eui(eui))
        return None if hit is None else self._with_ram(hit)

    def _entry(self, eui: bytes) -> ChfDeviceLogEntry | None:
        # Looked up for every routed frame: entries are frozen, so a RAM copy is shared safely;
        # every write to the log clears it (also on rollback). Routing needs no communication
        # time, so it skips `_with_ram`.
        hit = self._log_cache.get(eui, _MISSING_ENTRY)
        if hit is _MISSING_ENTRY:
            raw = self.nvm.get(_LOG_NS, eui_hex(eui))
            hit = None if raw is None else ChfDeviceLogEntry.from_nvm(raw)
            self._log_cache[eui] = hit
        return hit

    def _log_changed(self) -> None:
        self._log_cache.clear()
        self.nvm.on_rollback(self._log_cache.clear)

    def historic_log(self) -> list[HistoricLogEntry]:
        """The CHF Historic Device Log, oldest first."""
        return [HistoricLogEntry(**d) for d in self.nvm.get(_HISTORIC_NS, "entries", [])]

    def _with_ram(self, entry: ChfDeviceLogEntry) -> ChfDeviceLogEntry:
        seen = self._last_comm.get(entry.eui)
        if seen is not None and (entry.last_communication is None or seen > entry.last_communication):
            return dataclasses.replace(entry, last_communication=seen)
        return entry

    def _put_entry(self, entry: ChfDeviceLogEntry) -> None:
        self.nvm.put(_LOG_NS, eui_hex(entry.eui), entry.to_nvm())
        self._log_changed()

    def register_device(
        self, eui: bytes | str, install_code: bytes, *, key_type: int = KEY_TYPE_INSTALL_CODE, registration_option: int = 0
    ) -> tuple[int, bool]:
        """Add a device to the log: (DLMS action result, whether the log changed). Synchronous
        (for `execute`); rigs use `add_device`."""
        eui = parse_eui(eui)
        if self.nvm.get(_LOG_NS, eui_hex(eui)) is not None:
            return SUCCESS, False  # already whitelisted: success, key ignored [S DT CCS01]
        if key_type != KEY_TYPE_INSTALL_CODE:
            return OTHER_REASON, False
        try:
            link_key = link_key_from_install_code(install_code)
        except ValueError:
            return TYPE_UNMATCHED, False
        if len(self.nvm.keys(_LOG_NS)) >= self.device_log_capacity:
            self.log_event("device_log_full", eui=eui_hex(eui))
            return OTHER_REASON, False
        historic = self.historic_log()
        previous = next((h for h in historic if h.eui == eui), None)
        if previous is not None:
            self.nvm.put(_HISTORIC_NS, "entries", [h.to_nvm() for h in historic if h.eui != eui])
        self._put_entry(ChfDeviceLogEntry(
            eui, bytes(install_code), link_key, key_type, registration_option,
            device_type=None if previous is None else previous.device_type,
            previous_tc_link_key=None if previous is None else previous.tc_link_key,
            added_at=self.clock.now(),
        ))
        self.log_event("device_added", eui=eui_hex(eui), from_historic=previous is not None)
        return SUCCESS, True

    def unregister_device(self, eui: bytes | str) -> tuple[int, bool]:
        """Remove a device (its TC link key goes to the historic log): (DLMS result, changed)."""
        eui = parse_eui(eui)
        raw = self.nvm.get(_LOG_NS, eui_hex(eui))
        if raw is None:
            return HARDWARE_FAULT, False
        entry = ChfDeviceLogEntry.from_nvm(raw)
        self.nvm.delete(_LOG_NS, eui_hex(eui))
        self._log_changed()
        if entry.tc_link_key is not None:
            historic = [h for h in self.historic_log() if h.eui != eui]
            historic.append(HistoricLogEntry(eui, entry.tc_link_key, entry.device_type, self.clock.now()))
            self.nvm.put(_HISTORIC_NS, "entries", [h.to_nvm() for h in historic[-self.historic_log_capacity:]])
        self.log_event("device_removed", eui=eui_hex(eui))
        return SUCCESS, True

    def restore_device_log(
        self, extended_pan_id: bytes | str, devices: Iterable[tuple[bytes, int, bytes, int]]
    ) -> DeviceLogRestore:
        """Make the Device Log exactly the backup `devices` ((eui, key_type, install_code,
        registration_option) each, as register_device takes them) and adopt `extended_pan_id`:
        all or nothing (CCS03, module doc). Synchronous (for `execute`); a savepoint of the
        caller's transaction when there is one."""
        pan = parse_eui(extended_pan_id)
        devices = [(parse_eui(eui), key_type, bytes(code), option) for eui, key_type, code, option in devices]
        present = {e.eui for e in self.device_log()}
        codes: list[int] = []
        seen: set[bytes] = set()
        slots = 0
        for eui, key_type, code, _ in devices:
            if eui in seen or (eui not in present and not _valid_install_code_entry(key_type, code)):
                codes.append(INVALID_ENTRY)
            elif slots >= self.device_log_capacity:
                codes.append(DEVICE_LOG_FULL)
            else:
                codes.append(RESTORED)
                slots += 1
            seen.add(eui)
        if any(codes):
            self.log_event("device_log_restore_failed", invalid=codes.count(INVALID_ENTRY), full=codes.count(DEVICE_LOG_FULL))
            return DeviceLogRestore(OTHER_REASON, tuple(codes))
        removed = [eui for eui in sorted(present) if eui not in seen]
        added: list[bytes] = []
        try:
            with self.nvm.transaction():
                for eui in removed:
                    if self.unregister_device(eui)[0] != SUCCESS:
                        raise _RestoreAborted(eui_hex(eui))
                for eui, key_type, code, option in devices:
                    result, changed = self.register_device(eui, code, key_type=key_type, registration_option=option)
                    if result != SUCCESS:
                        raise _RestoreAborted(eui_hex(eui))
                    if changed:
                        added.append(eui)
                pan_changed = pan != self.extended_pan_id
                if self.nvm.get(_NETWORK_NS, "extended_pan_id") != pan:
                    self.nvm.put(_NETWORK_NS, "extended_pan_id", pan)
                self.log_event("device_log_restored", kept=len(devices) - len(added), added=len(added),
                               removed=len(removed), extended_pan_id=eui_hex(pan))
        except _RestoreAborted as exc:  # not expected after the checks above; nothing changed
            self.log_event("device_log_restore_failed", entry=str(exc))
            return DeviceLogRestore(OTHER_REASON, tuple(codes))
        return DeviceLogRestore(SUCCESS, tuple(codes), tuple(added), tuple(removed), pan_changed)

    async def add_device(self, eui: bytes | str, install_code: bytes, *, join_window: float | None = None) -> bool:
        """Rig convenience (no WAN needed): whitelist a device, optionally open joining for
        `join_window` seconds, and send CS14 if the log changed. Returns whether it changed."""
        with self.nvm.transaction():
            code, changed = self.register_device(eui, install_code)
        if code != SUCCESS:
            raise ValueError(f"device log refused {eui_hex(parse_eui(eui))} (result {code})")
        if join_window is not None:
            self.open_joining(join_window)
        if changed:
            await self.raise_cs14()
        return changed

    async def remove_device(self, eui: bytes | str) -> bool:
        with self.nvm.transaction():
            code, changed = self.unregister_device(eui)
        if changed:
            await self._forget_han_device(parse_eui(eui))
            await self.raise_cs14()
        return changed

    # ------------------------------------------------------------------ joining window
    def _joining(self) -> dict:
        return self.nvm.get(_JOINING_NS, "state", {"enabled": False, "timeout": 0, "start": None, "end": None})

    @property
    def joining_open(self) -> bool:
        s = self._joining()
        return bool(s["enabled"]) and s["end"] is not None and s["start"] <= self.clock.now() < s["end"]

    @property
    def join_timeout(self) -> int:
        return int(self._joining()["timeout"])

    def open_joining(self, seconds: float) -> None:
        now = self.clock.now()
        state = self._joining()
        state.update(enabled=True, start=now, end=now + seconds)
        self.nvm.put(_JOINING_NS, "state", state)

    def _set_join_timeout(self, value: int) -> None:
        state = self._joining()
        state["timeout"] = value
        if self.joining_open:
            state["end"] = self.clock.now() + value * self.join_timeout_unit
        self.nvm.put(_JOINING_NS, "state", state)

    def _set_joining(self, enabled: bool) -> None:
        state = self._joining()
        now = self.clock.now()
        if enabled:
            state.update(enabled=True, start=now, end=now + state["timeout"] * self.join_timeout_unit)
        else:
            state.update(enabled=False, end=now)
        self.nvm.put(_JOINING_NS, "state", state)
        self.log_event("joining", enabled=enabled)

    # ------------------------------------------------------------------ GBCS use cases
    def supports(self, message_code: int) -> bool:
        return message_code in USE_CASE_REQUESTS

    def execute(self, message: Message) -> Outcome:
        try:
            apdu = decode_apdu(message.content, message_code=message.message_code)
        except DecodeError as exc:
            raise CommandRejected("malformed", str(exc)) from None
        if not isinstance(apdu, AccessRequest):
            raise CommandRejected("malformed", "payload is not a DLMS ACCESS.request")
        allowed = USE_CASE_REQUESTS[message.message_code]
        for spec in apdu.specs:
            if (spec.kind, spec.class_id, spec.obis, spec.id) not in allowed:
                name = catalogue.by_message_code(message.message_code).use_case
                raise CommandRejected("malformed", f"{spec.kind.name.lower()} {spec.class_id}/{spec.obis.hex()}/{spec.id} is not part of {name}")
        break_on_error = bool(apdu.invoke_id & 0x20000000)
        data: list[Data | None] = []
        results: list[int] = []
        added: list[bytes] = []
        removed: list[bytes] = []
        restored: list[DeviceLogRestore] = []
        failed = False
        for spec, value in zip(apdu.specs, apdu.data):
            if failed and break_on_error:
                data.append(None)
                results.append(OTHER_REASON)
                continue
            out, code = self._access(spec, value, added, removed, restored)
            data.append(out)
            results.append(code)
            failed = failed or code != SUCCESS
        content = AccessResponse.answer(apdu, data, results).encode()
        if not added and not removed and not any(r.changed for r in restored):
            return Outcome(content)

        async def after() -> None:
            for eui in removed:
                await self._forget_han_device(eui)
            await self.raise_cs14()

        return Outcome(content, after=after)

    def _access(self, spec, value: Data, added: list, removed: list, restored: list) -> tuple[Data | None, int]:
        kind, ident = spec.kind, spec.id
        if spec.class_id == FIRMWARE_VERSION_CLASS:
            return Data.octet_string(self.firmware_version), SUCCESS
        if kind is RequestKind.GET:
            if ident == ACTIVE_DEVICES:
                return self.active_devices(), SUCCESS
            if ident == ENABLE_DISABLE_JOINING:
                return Data.boolean(self.joining_open), SUCCESS
            return Data.long_unsigned(self.join_timeout), SUCCESS
        if kind is RequestKind.SET:
            if ident == JOIN_TIMEOUT:
                if value.type is not DataType.LONG_UNSIGNED:
                    return None, TYPE_UNMATCHED
                self._set_join_timeout(value.value)
                return None, SUCCESS
            if value.type is not DataType.BOOLEAN:
                return None, TYPE_UNMATCHED
            self._set_joining(bool(value.value))
            return None, SUCCESS
        if ident == REGISTER_DEVICE:
            fields = _register_device_fields(value)
            if fields is None:
                return None, TYPE_UNMATCHED
            eui, key_type, code, option = fields
            result, changed = self.register_device(eui, code, key_type=key_type, registration_option=option)
            if changed:
                added.append(eui)
            return None, result
        if ident == RESTORE_PAN:
            backup = _restore_pan_fields(value)
            if backup is None:
                return None, TYPE_UNMATCHED
            outcome = self.restore_device_log(*backup)
            restored.append(outcome)
            added.extend(outcome.added)
            removed.extend(outcome.removed)
            return Data.array(*(Data.enum(c) for c in outcome.entries)), outcome.result
        if value.type is not DataType.OCTET_STRING or len(value.value) != 8:
            return None, TYPE_UNMATCHED
        result, changed = self.unregister_device(value.value)
        if changed:
            removed.append(value.value)
        return None, result

    def active_devices(self) -> Data:
        """active_devices (attribute 4): one structure per Device Log entry, ordered by EUI."""
        items = []
        for entry in self.device_log():
            successes, failures = self._han_stats.get(entry.eui, (0, 0))
            status = STATUS_REGISTERED
            if entry.joined:
                status |= STATUS_JOINED
                if entry.last_communication is not None:
                    status |= STATUS_COMMUNICATING
            last = None if entry.last_communication is None else datetime.fromtimestamp(entry.last_communication, tz=timezone.utc)
            items.append(active_device(entry.eui, status, last_communication=last, failures=failures, successes=successes))
        return Data.array(*items)

    # ------------------------------------------------------------------ CS14
    def cs14_elements(self) -> tuple[Data, ...]:
        entries = [(e.eui, e.tc_link_key_hash) for e in self.device_log()]
        return (device_log_backup(self.clock.utcnow(), self.extended_pan_id, entries),)

    async def raise_cs14(self) -> bytes | None:
        """Send the CS14 Device Log backup alert (0x0018 / 0x8F12) to the ACB."""
        recipient = self.trust.by_role(RemotePartyRole.ACCESS_CONTROL_BROKER) or self.alert_recipient
        return await self.raise_alert(CS14_ALERT, message_code=CS14, elements=self.cs14_elements(), recipient=recipient)

    # ------------------------------------------------------------------ WAN side
    async def _on_wan_frame(self, frame: bytes) -> None:
        # Queue the work: over TCP the bridge stops reading while this runs.
        if not self.post(frame):
            self.wan_dropped += 1

    def _on_wan_link(self, up: bool) -> None:
        if up and self._alive and self._queue:
            self._start_drain()

    async def handle(self, item: Any) -> Any:
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

    async def _from_wan(self, frame: bytes) -> bytes | None:
        if len(frame) >= 2 and frame[0] == 0xDD and frame[1] == 0x09:
            try:
                whole = self._reassembler.add(decode_gbt_block(frame))
            except DecodeError as exc:
                self.log_security("malformed_gbt_block", detail=str(exc))
                return None
            if whole is None:
                return None
            frame = whole
        # Routing reads only the header (the message is checked by the device it is for); a
        # frame whose header cannot be read is rejected here as malformed (alert 0x8F1E).
        header = peek_header(frame)
        if header is None:
            return await self.process(frame)
        cra, counter, _originator, recipient, _final = header
        if recipient == self.eui:
            return await self.process(frame)
        if self.gpf is not None and recipient == self.gpf.eui:
            if not self.gpf.post(frame):
                self.log_event("gpf_unavailable", counter=counter)
            return None
        if cra != CRA.COMMAND:
            self.log_security("unexpected_message", cra=CRA(cra).name.lower() if cra in (1, 2, 3) else cra,
                              recipient=eui_hex(recipient))
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
        await self.raise_alert(DELIVERY_FAILURE_ALERT, message_code=DELIVERY_FAILURE,
                               elements=(Data.octet_string(delivery_failure_body(command)),), recipient=party)

    # -- uplink and the outage queue -----------------------------------------------------------
    async def uplink(self, frame: bytes) -> None:
        """Send a frame up the WAN, or queue it (in order, persisted) while the WAN is down."""
        port = self.wan
        if port is not None and port.up and not self._queue:
            try:
                await port.send_up(frame)
                return
            except WanDown:
                pass
        self._enqueue(frame)

    @property
    def wan_queue_length(self) -> int:
        return len(self.nvm.keys(_QUEUE_NS))

    def wan_queue(self) -> list[bytes]:
        """The frames waiting for the WAN, oldest first."""
        return [v for _, v in self.nvm.items(_QUEUE_NS)]

    @property
    def wan_queue_dropped(self) -> int:
        """Frames dropped because the queue was full (total, persisted)."""
        return self.nvm.get(_QUEUE_META_NS, "dropped_total", 0)

    def _enqueue(self, frame: bytes) -> None:
        nvm = self.nvm
        queued = len(self._queue) if self._alive else len(nvm.keys(_QUEUE_NS))
        if queued >= self.wan_queue_limit:
            pending = nvm.get(_QUEUE_META_NS, "dropped_pending", 0)
            with nvm.transaction():
                nvm.put(_QUEUE_META_NS, "dropped_pending", pending + 1)
                nvm.put(_QUEUE_META_NS, "dropped_total", self.wan_queue_dropped + 1)
                if pending == 0:
                    self.log_event("wan_queue_overflow", limit=self.wan_queue_limit)
            log.warning("CHF %s: WAN queue full (%d), frame dropped", self.eui_hex, self.wan_queue_limit)
            return
        with nvm.transaction():
            seq = nvm.get(_QUEUE_META_NS, "next_seq", 0)
            key = f"{seq:020d}"
            nvm.put(_QUEUE_NS, key, bytes(frame))
            nvm.put(_QUEUE_META_NS, "next_seq", seq + 1)
        self._queue.append((key, bytes(frame)))

    def _start_drain(self) -> None:
        if not self._draining:
            self._draining = True
            self.spawn(self._drain(), name=f"chf-drain-{self.eui_hex}")

    async def _drain(self) -> None:
        """Release queued frames in order while the WAN stays up."""
        try:
            port = self.wan
            queue = self._queue
            while queue and port is not None and port.up:
                sent: list[str] = []
                try:
                    while queue and len(sent) < _DRAIN_BATCH:
                        key, frame = queue[0]
                        await port.send_up(frame)
                        queue.popleft()
                        sent.append(key)
                except WanDown:
                    pass
                finally:
                    # One NVM commit per batch; a power cut before it re-sends the batch
                    # (at least once, never lost).
                    if sent:
                        with self.nvm.transaction():
                            for key in sent:
                                self.nvm.delete(_QUEUE_NS, key)
                await asyncio.sleep(0)  # let the rest of the hub breathe between batches
            if not queue:
                pending = self.nvm.get(_QUEUE_META_NS, "dropped_pending", 0)
                if pending:
                    with self.nvm.transaction():
                        self.nvm.put(_QUEUE_META_NS, "dropped_pending", 0)
                        self.log_event("wan_queue_overflow_reported", dropped=pending, total=self.wan_queue_dropped)
        finally:
            self._draining = False
        if self._queue and self.wan is not None and self.wan.up:
            self._start_drain()  # went down and up again while we were sending

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
        raw = self.nvm.get(_LOG_NS, eui_hex(eui))
        if raw is not None:
            last = raw.get("last_communication")
            if last is None or now - last >= _LAST_COMM_PERSIST:
                raw["last_communication"] = now
                self.nvm.put(_LOG_NS, eui_hex(eui), raw)
                self._log_changed()

    async def _from_han(self, peer: bytes, message: bytes) -> None:
        entry = self._entry(peer)
        if entry is None or not entry.joined:
            self.han_refused += 1
            self.log_security("han_message_refused", eui=eui_hex(peer))
            return
        self._note_communication(peer)
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
        raw = self.nvm.get(_LOG_NS, eui_hex(eui))
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


def _register_device_fields(value: Data) -> tuple[bytes, int, bytes, int] | None:
    """register_device data: structure{eui octet-string(8), key_type enum, key octet-string,
    [option enum]} [O RTDS CCS01]."""
    if value.type is not DataType.STRUCTURE or len(value.value) not in (3, 4):
        return None
    items = value.value
    eui, key_type, key = items[0], items[1], items[2]
    if eui.type is not DataType.OCTET_STRING or len(eui.value) != 8:
        return None
    if key_type.type is not DataType.ENUM or key.type is not DataType.OCTET_STRING:
        return None
    option = 0
    if len(items) == 4:
        if items[3].type is not DataType.ENUM:
            return None
        option = items[3].value
    return eui.value, key_type.value, key.value, option


def _restore_pan_fields(value: Data) -> tuple[bytes, list[tuple[bytes, int, bytes, int]]] | None:
    """restore_PAN data [U: our layout, module doc]: structure{extended PAN id octet-string(8),
    array of register_device structures}."""
    if value.type is not DataType.STRUCTURE or len(value.value) != 2:
        return None
    pan, backup = value.value
    if pan.type is not DataType.OCTET_STRING or len(pan.value) != 8 or backup.type is not DataType.ARRAY:
        return None
    devices = []
    for item in backup.value:
        fields = _register_device_fields(item)
        if fields is None:
            return None
        devices.append(fields)
    return pan.value, devices


def _valid_install_code_entry(key_type: int, install_code: bytes) -> bool:
    """Whether register_device would accept this key (install code, of a ZigBee length)."""
    if key_type != KEY_TYPE_INSTALL_CODE:
        return False
    try:
        link_key_from_install_code(install_code)
    except ValueError:
        return False
    return True


__all__ = [
    "Chf",
    "ChfDeviceLogEntry",
    "DeviceLogRestore",
    "HistoricLogEntry",
    "active_device",
    "cs14_content",
    "delivery_failure_body",
    "device_log_backup",
    "CCS01",
    "CCS02",
    "CCS03",
    "CCS05CCS04",
    "CCS06",
    "CCS07",
    "ECS52",
    "CS14",
    "CS14_ALERT",
    "DELIVERY_FAILURE",
    "DELIVERY_FAILURE_ALERT",
    "NETWORK_CONTROL",
    "NETWORK_CONTROL_CLASS",
    "USE_CASE_REQUESTS",
]
