"""The ZigBee HAN transport: the CHF's coordinator radio through zigpy (optional extra `zigbee`).

One radio, one coordinator, several emulated devices: the CHF (trust centre, ESI) and the ESMEs
are *local* devices, each served on its own Smart Energy endpoint (profile 0x0109) of the
coordinator; frames between local devices never reach the radio. Remote devices (a physical IHD
or PPMID, or gbhub devices on the virtual zigpy radio) join the radio's network and are addressed
by their IEEE address, which is their GBCS entity id (`han.aps`: byte order on air is reversed).

Below zigpy's device dispatch (`SmartEnergyCoordinator.packet_received`, mixed into any radio
library's `ControllerApplication` by `coordinator_class`): profile 0x0109 frames go straight to the
local device on the addressed endpoint, as do gbhub's join handshake (`han.join`, endpoint 0) and
the ZDP requests zigpy answers wrongly or not at all for Smart Energy: Match_Desc (zigpy answers
any non-HA profile with an empty list), Simple_Desc and Active_EP for our endpoints, and gbhub's
endpoint table (`han.zdo`). Everything else (ZDO notifications, device announcements) continues
into zigpy as usual.

zigpy features that reach the internet or disturb a lab network are off (`zigpy_config`): OTA
providers and OTA broadcasts, periodic backups and topology scans; only our Smart Energy endpoints
are registered (not zigpy's HA, ZLL and Green Power endpoints).

Trust centre: joining only by the CHF device log. The transport never opens a plain permit-join;
it gives the radio the install-code link key of each device the CHF would accept now
(`joinable()`, polled and on demand) with `permit_with_link_key`. A device that joins anyway
(e.g. a radio whose firmware still accepts the well-known key) but that `allowed(eui)` refuses is
removed again and reported through `on_refused` (the CHF's security log).

The ESME's address with one coordinator radio (settled here, [I]): a ZigBee node has one IEEE
address, so an ESME emulated on the coordinator answers from the radio's IEEE address (on its own
endpoint), not from its GBCS entity id. gbhub's own devices resolve the ESME by Match_Desc on the
coordinator and gbhub's endpoint table. A physical GB IHD learns the ESME's entity id from the
CHF (it is in the IHD's join data) and looks for a node with that IEEE address; whether
commercial IHDs accept the ESME as an endpoint of the coordinator is unknown [U] (no device to
try). A second radio cannot carry the ESME through zigpy: zigpy radio libraries only form networks
as coordinator (no router/end-device join), so a second radio makes a second PAN. The faithful
set-up is therefore a physical (or separately emulated) ESME radio; with one radio the rig's
`esme_ieee = "radio"` default is what we can offer.
"""
from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import zigpy.config as zconf
import zigpy.exceptions
import zigpy.types as zt
import zigpy.zdo.types as zdo_t

from gbcs.catalogue import DeviceType

from . import zdo
from .aps import (
    BASIC_CLUSTER,
    CALENDAR_CLUSTER,
    DEVICE_MANAGEMENT_CLUSTER,
    KEY_ESTABLISHMENT_CLUSTER,
    MESSAGING_CLUSTER,
    METERING_CLUSTER,
    OTA_UPGRADE_CLUSTER,
    PREPAYMENT_CLUSTER,
    PRICE_CLUSTER,
    SMART_ENERGY_PROFILE,
    TIME_CLUSTER,
    TUNNELING_CLUSTER,
    ApsFrame,
    HanError,
    LinkDown,
    NoRoute,
    PortClosed,
    eui_from_ieee,
    ieee_from_eui,
)
from .join import JOIN_CLUSTER, JOIN_ENDPOINT, ZDP_PROFILE
from .transport import AirTaps, Clock, LoopClock, Receiver, deliver, spawn
from .virtual import CLOSED, DELIVERED, LINK_DOWN, LOST, NO_ROUTE, AirCounters
from .zcl_server import served_clusters

log = logging.getLogger("gbhub.han.zigbee")

ZDO_ENDPOINT = 0

#: Smart Energy device ids [S ZigBee SE 1.x Table 5-1].
ESI_DEVICE = 0x0500
METERING_DEVICE = 0x0501
IHD_DEVICE = 0x0502
PREPAYMENT_TERMINAL_DEVICE = 0x0506

#: The Smart Energy endpoint each local device type is served on: device id, server (input) and
#: client (output) clusters. Written once; Match_Desc and the radio's endpoint table follow it.
SE_ENDPOINTS: dict[int, zdo.SimpleDescriptor] = {
    DeviceType.CHF: zdo.SimpleDescriptor(
        0, SMART_ENERGY_PROFILE, ESI_DEVICE, 0,
        # Metering: the GPF's mirror of the GSME, which the GSME writes to on the CHF's address
        (BASIC_CLUSTER, TIME_CLUSTER, METERING_CLUSTER, OTA_UPGRADE_CLUSTER, TUNNELING_CLUSTER, KEY_ESTABLISHMENT_CLUSTER),
        (TUNNELING_CLUSTER, KEY_ESTABLISHMENT_CLUSTER),
    ),
    DeviceType.ESME: zdo.SimpleDescriptor(
        0, SMART_ENERGY_PROFILE, METERING_DEVICE, 0,
        (BASIC_CLUSTER, PRICE_CLUSTER, METERING_CLUSTER, MESSAGING_CLUSTER, TUNNELING_CLUSTER, PREPAYMENT_CLUSTER,
         CALENDAR_CLUSTER, DEVICE_MANAGEMENT_CLUSTER, KEY_ESTABLISHMENT_CLUSTER),
        (TIME_CLUSTER, OTA_UPGRADE_CLUSTER, TUNNELING_CLUSTER, KEY_ESTABLISHMENT_CLUSTER),
    ),
    DeviceType.TYPE_2: zdo.SimpleDescriptor(
        0, SMART_ENERGY_PROFILE, IHD_DEVICE, 0, (BASIC_CLUSTER, KEY_ESTABLISHMENT_CLUSTER),
        (TIME_CLUSTER, PRICE_CLUSTER, METERING_CLUSTER, MESSAGING_CLUSTER, PREPAYMENT_CLUSTER, KEY_ESTABLISHMENT_CLUSTER),
    ),
}
SE_ENDPOINTS[DeviceType.GPF] = SE_ENDPOINTS[DeviceType.ESME]
#: The GPF's mirror of the GSME, a second endpoint of the CHF's address (`describe(..., also=...)`):
#: a Metering Device [I: ZSE's mirror is a metering endpoint of the ESI] serving the mirrored
#: Metering and Prepayment clusters, and Price for the gas conversion (`firmware.gas_data`).
GAS_MIRROR = zdo.SimpleDescriptor(0, SMART_ENERGY_PROFILE, METERING_DEVICE, 0,
                                  (METERING_CLUSTER, PRICE_CLUSTER, PREPAYMENT_CLUSTER), ())
SE_ENDPOINTS[DeviceType.PPMID] = zdo.SimpleDescriptor(
    0, SMART_ENERGY_PROFILE, PREPAYMENT_TERMINAL_DEVICE, 0,
    SE_ENDPOINTS[DeviceType.TYPE_2].in_clusters, SE_ENDPOINTS[DeviceType.TYPE_2].out_clusters,
)

#: Radio types: rig `[han] radio` → (module, class). `virtual` is gbhub's in-memory radio for CI.
RADIO_TYPES: dict[str, tuple[str, str]] = {
    "ezsp": ("bellows.zigbee.application", "ControllerApplication"),
    "znp": ("zigpy_znp.zigbee.application", "ControllerApplication"),
    "deconz": ("zigpy_deconz.zigbee.application", "ControllerApplication"),
    "virtual": ("gbhub.han.zigbee_virtual", "VirtualRadio"),
}

#: How long a permit for one device's install-code key stays open on the radio (seconds, max 254).
PERMIT_SECONDS = 254


class RadioError(HanError):
    """The radio library is missing, or the radio cannot be opened."""


def zigpy_config(path: str, baudrate: int | None = None, *, flow_control: str | None = None,
                 channel: int | None = None, database: str | None = None) -> dict[str, Any]:
    """A zigpy configuration with every internet-reaching or network-disturbing feature off."""
    device: dict[str, Any] = {zconf.CONF_DEVICE_PATH: path}
    if baudrate is not None:
        device[zconf.CONF_DEVICE_BAUDRATE] = baudrate
    if flow_control is not None:
        device[zconf.CONF_DEVICE_FLOW_CONTROL] = flow_control
    network: dict[str, Any] = {}
    if channel is not None:
        network[zconf.CONF_NWK_CHANNEL] = channel
    return {
        zconf.CONF_DEVICE: device,
        zconf.CONF_DATABASE: database,
        zconf.CONF_NWK: network,
        zconf.CONF_OTA: {
            zconf.CONF_OTA_ENABLED: False,
            zconf.CONF_OTA_BROADCAST_ENABLED: False,
            zconf.CONF_OTA_PROVIDERS: [],
            zconf.CONF_OTA_EXTRA_PROVIDERS: [],
        },
        zconf.CONF_TOPO_SCAN_ENABLED: False,
        zconf.CONF_NWK_BACKUP_ENABLED: False,
        zconf.CONF_NWK_VALIDATE_SETTINGS: False,
    }


class SmartEnergyCoordinator:
    """Mixed in before a radio library's ControllerApplication (`coordinator_class`): Smart
    Energy frames go to the gbhub transport before zigpy's device dispatch sees them."""

    gbhub_transport: "ZigbeeTransport | None" = None

    def packet_received(self, packet: zt.ZigbeePacket) -> None:
        transport = self.gbhub_transport
        if transport is not None:
            try:
                if transport._intercept(packet):
                    return None
            except Exception:  # a bad frame from the air must never stop the radio's reader
                log.exception("Smart Energy intercept failed on %r", packet)
                return None
        try:
            return super().packet_received(packet)  # type: ignore[misc]
        except Exception:  # zigpy raises on some malformed frames; the radio's reader must go on
            log.warning("zigpy could not take a frame from the air: %r", packet, exc_info=True)
            return None

    async def register_endpoints(self) -> None:
        transport = self.gbhub_transport
        if transport is None:
            return await super().register_endpoints()  # type: ignore[misc]
        for d in transport.descriptors():
            await self.add_endpoint(zdo_t.SimpleDescriptor(  # type: ignore[attr-defined]
                endpoint=d.endpoint, profile=d.profile, device_type=d.device_id, device_version=d.device_version,
                input_clusters=list(d.in_clusters), output_clusters=list(d.out_clusters),
            ))

    def handle_join(self, nwk, ieee, parent_nwk, *, handle_rejoin: bool = True) -> None:
        super().handle_join(nwk, ieee, parent_nwk, handle_rejoin=handle_rejoin)  # type: ignore[misc]
        transport = self.gbhub_transport
        if transport is not None:
            transport._joined(bytes(zt.EUI64(ieee)))


_classes: dict[type, type] = {}


def coordinator_class(base: type) -> type:
    """`base` (a zigpy ControllerApplication) with the Smart Energy intercept mixed in."""
    cls = _classes.get(base)
    if cls is None:
        cls = _classes[base] = type(f"SmartEnergy{base.__name__}", (SmartEnergyCoordinator, base), {})
    return cls


def radio_class(radio: str) -> type:
    """The zigpy ControllerApplication of a radio type (RadioError when its library is absent)."""
    try:
        module, name = RADIO_TYPES[radio]
    except KeyError:
        raise RadioError(f"unknown radio type {radio!r} (known: {', '.join(RADIO_TYPES)})") from None
    try:
        return getattr(importlib.import_module(module), name)
    except ImportError as exc:
        raise RadioError(f"radio type {radio!r} needs {module.split('.')[0]}: pip install 'gbhub[zigbee]' ({exc})") from None


@dataclass(slots=True)
class _Local:
    eui: bytes
    receive: Receiver
    endpoint: int  # the radio endpoint it is served on
    own_endpoint: int = 1  # the endpoint the device itself uses in its frames
    descriptor: zdo.SimpleDescriptor | None = None
    port: "ZigbeePort | None" = None
    #: further endpoints of the same address: the device's own endpoint -> (radio endpoint, descriptor)
    also: dict[int, tuple[int, zdo.SimpleDescriptor]] = field(default_factory=dict)

    def own_endpoint_at(self, endpoint: int) -> int:
        """The device's own endpoint behind radio endpoint `endpoint`."""
        if endpoint != self.endpoint:
            for own, (radio, _d) in self.also.items():
                if radio == endpoint:
                    return own
        return self.own_endpoint


@dataclass(slots=True)
class ZigbeeCounters(AirCounters):
    received: int = 0  # frames from remote devices handed to local devices
    refused: int = 0  # joins undone because the device log refused the device
    ignored: int = 0  # Smart Energy frames for no local endpoint, or malformed ZDP requests
    permits: int = 0  # install-code keys given to the radio


class ZigbeePort:
    """A local device's attachment to the coordinator radio (implements `HanPort`)."""

    __slots__ = ("eui", "_transport", "attached")

    def __init__(self, transport: "ZigbeeTransport", eui: bytes) -> None:
        self.eui = eui
        self._transport = transport
        self.attached = True

    async def send(self, frame: ApsFrame) -> bool:
        if frame.src != self.eui:
            raise ValueError("frame.src must be the sending port's EUI")
        return await self._transport._send(frame, self)

    def detach(self) -> None:
        self._transport._detach(self)


class ZigbeeTransport(AirTaps):
    """The coordinator end of a ZigBee HAN (implements `HanTransport`).

    `app` is a zigpy ControllerApplication built from `coordinator_class(...)`; `coordinator` the
    CHF's EUI (it answers the join handshake on endpoint 0). Call `describe(eui, device_type)` for
    each local device before `start()`, so the radio registers its endpoint."""

    def __init__(
        self,
        app: Any,
        *,
        coordinator: bytes,
        clock: Clock | None = None,
        joinable: Callable[[], Iterable[tuple[bytes, bytes]]] | None = None,
        allowed: Callable[[bytes], bool] | None = None,
        on_refused: Callable[[bytes, str, str], Any] | None = None,
        trust_poll: float = 5.0,
        first_endpoint: int = 1,
        cbke: Any = None,
        on_key_established: Callable[[bytes, bytes], Any] | None = None,
        proxy_joins: bool = False,
    ) -> None:
        if not isinstance(app, SmartEnergyCoordinator):
            raise TypeError("app must be built from coordinator_class(<radio ControllerApplication>)")
        self.app = app
        app.gbhub_transport = self
        self.coordinator = bytes(coordinator)
        self.clock: Clock = clock if clock is not None else LoopClock()
        self.joinable = joinable
        self.allowed = allowed
        self.on_refused = on_refused
        self.trust_poll = trust_poll
        self.counters = ZigbeeCounters()
        self.started = False
        self._next_endpoint = first_endpoint
        self._local: dict[bytes, _Local] = {}
        self._by_endpoint: dict[int, _Local] = {}
        self._init_taps()
        self._permitted: dict[bytes, tuple[bytes, float]] = {}
        self._down: set[bytes] = set()  # devices whose link `set_link` cut (`gbhub ctl han EUI down`)
        self._poll = None
        #: The trust centre's CBKE identity (`gbcs.cbke.CbkeIdentity`): with one, the coordinator
        #: answers Key Establishment on the CHF's endpoint itself, as a radio stack's CBKE does.
        self.cbke = cbke
        self.on_key_established = on_key_established
        self.link_keys: dict[bytes, bytes] = {}  # APS link keys established by CBKE, by EUI
        self.link_key_installed: dict[bytes, str] = {}  # ... and how the radio took each (install_link_key)
        self._responders: dict[bytes, Any] = {}
        #: Physical devices never speak gbhub's join handshake (`han.join`): with `proxy_joins`
        #: the trust centre runs it for them with the key the radio admitted them with, so the
        #: CHF device log records the join (real radios; gbhub's own end devices join themselves).
        self.proxy_joins = proxy_joins
        self.proxied: list[bytes] = []

    # -- local devices --------------------------------------------------------------------
    def _entry(self, eui: bytes) -> _Local:
        local = self._local.get(eui)
        if local is None:
            local = _Local(eui, lambda frame: None, self._next_endpoint)
            self._next_endpoint += 1
            self._local[eui] = local
            self._by_endpoint[local.endpoint] = local
        return local

    def describe(self, eui: bytes, device_type: int, *, endpoint: int = 1,
                 also: dict[int, zdo.SimpleDescriptor] | None = None) -> int:
        """Serve local device `eui` as a Smart Energy `device_type` (its clusters from
        SE_ENDPOINTS); `endpoint` is the one the device uses in its own frames. `also` {own
        endpoint: descriptor} serves further endpoints of the same address, each on a radio
        endpoint of its own (the CHF's: {2: GAS_MIRROR}, the GPF's gas mirror). Returns the
        coordinator endpoint it is served on."""
        local = self._entry(bytes(eui))
        base = SE_ENDPOINTS.get(int(device_type), SE_ENDPOINTS[DeviceType.ESME])
        local.descriptor = zdo.SimpleDescriptor(local.endpoint, base.profile, base.device_id, base.device_version,
                                                base.in_clusters, base.out_clusters)
        local.own_endpoint = endpoint
        for own, d in (also or {}).items():
            radio = local.also[own][0] if own in local.also else self._next_endpoint
            if own not in local.also:
                self._next_endpoint += 1
                self._by_endpoint[radio] = local
            local.also[own] = (radio, zdo.SimpleDescriptor(radio, d.profile, d.device_id, d.device_version,
                                                           d.in_clusters, d.out_clusters))
        return local.endpoint

    def descriptors(self) -> list[zdo.SimpleDescriptor]:
        """The Smart Energy endpoints served: local devices that are attached (a GPF reaches the
        HAN through the CHF and has no port of its own, so no endpoint), each advertising only the
        server clusters of SE_ENDPOINTS it really serves (Match_Desc must not promise more)."""
        out = []
        for local in self._local.values():
            d = local.descriptor
            if d is None or local.port is None:
                continue
            served = self._served(local)
            if served is not None:
                d = zdo.SimpleDescriptor(d.endpoint, d.profile, d.device_id, d.device_version,
                                         tuple(c for c in d.in_clusters if c in served), d.out_clusters)
            out.append(d)
            for own, (_radio, d) in local.also.items():  # only the clusters a ZCL server answers there
                dispatch = self._dispatch_of(local)
                served_there = set() if dispatch is None else served_clusters(dispatch, own)
                clusters = tuple(c for c in d.in_clusters if c in served_there)
                if clusters:
                    out.append(zdo.SimpleDescriptor(d.endpoint, d.profile, d.device_id, d.device_version,
                                                    clusters, d.out_clusters))
        return out

    def descriptor_at(self, endpoint: int) -> zdo.SimpleDescriptor | None:
        """The descriptor served on radio endpoint `endpoint` (None: not active)."""
        return next((d for d in self.descriptors() if d.endpoint == endpoint), None)

    def device_endpoints(self) -> dict[int, int]:
        """{radio endpoint: the device's own endpoint} where the two differ from the usual (1)."""
        out = {}
        for local in self._local.values():
            if local.descriptor is not None and local.own_endpoint != 1:
                out[local.endpoint] = local.own_endpoint
            for own, (radio, _d) in local.also.items():
                out[radio] = own
        return out

    @staticmethod
    def _dispatch_of(local: _Local) -> Any:
        """A local device's ClusterDispatch (the receiver itself, or the `han_dispatch` of the
        object whose method it is); None when that cannot be seen."""
        if getattr(local.receive, "handlers", None) is not None:
            return local.receive
        dispatch = getattr(getattr(local.receive, "__self__", None), "han_dispatch", None)
        return dispatch if getattr(dispatch, "handlers", None) is not None else None

    def _served(self, local: _Local) -> set[int] | None:
        """Clusters a local device handles (`_dispatch_of`); None when that cannot be seen."""
        dispatch = self._dispatch_of(local)
        if dispatch is None:
            return None
        served = set(dispatch.handlers)
        if self.cbke is not None and local.eui == self.coordinator:
            served.add(KEY_ESTABLISHMENT_CLUSTER)  # answered by the transport itself
        return served

    def endpoint_of(self, eui: bytes, own: int | None = None) -> int | None:
        """The radio endpoint `eui` is served on; given `own`, the one of that endpoint of the
        device's (`describe(also=...)`)."""
        local = self._local.get(eui)
        if local is None:
            return None
        if own is not None and own in local.also:
            return local.also[own][0]
        return local.endpoint

    def attach(self, eui: bytes, receive: Receiver) -> ZigbeePort:
        if len(eui) != 8:
            raise ValueError("an EUI-64 is 8 bytes")
        local = self._entry(bytes(eui))
        if local.port is not None and local.port.attached:
            raise HanError(f"{eui.hex().upper()} is already attached")
        local.receive = receive
        local.port = ZigbeePort(self, local.eui)
        return local.port

    def _detach(self, port: ZigbeePort) -> None:
        port.attached = False
        local = self._local.get(port.eui)
        if local is not None and local.port is port:
            local.port = None

    # -- link conditions ------------------------------------------------------------------
    def set_link(self, eui: bytes, up: bool) -> None:
        """Cut a device's HAN link (`gbhub ctl han EUI down`) or restore it: frames from or to it
        raise LinkDown on sending, and frames from it on the air are dropped (counted in
        `ignored`), for local endpoints and remote nodes alike. A radio cannot silence a remote
        node's own transmitter; the coordinator stops hearing and answering it."""
        if up:
            self._down.discard(bytes(eui))
        else:
            self._down.add(bytes(eui))

    def is_up(self, eui: bytes) -> bool:
        return bytes(eui) not in self._down

    # -- lifecycle ------------------------------------------------------------------------
    @property
    def ieee(self) -> bytes | None:
        """The radio's IEEE address as a GBCS-order EUI (None before start)."""
        node = getattr(self.app.state, "node_info", None)
        if node is None or node.ieee == zt.EUI64.UNKNOWN:
            return None
        return eui_from_ieee(bytes(node.ieee))

    async def start(self, *, auto_form: bool = True) -> None:
        try:
            await self.app.startup(auto_form=auto_form)
        except Exception as exc:
            raise RadioError(f"cannot start the ZigBee radio: {exc}") from exc
        self.started = True
        await self.sync_trust_centre()
        self._arm_poll()

    async def stop(self) -> None:
        self.started = False
        if self._poll is not None:
            self._poll.cancel()
            self._poll = None
        try:
            await self.app.shutdown()
        except Exception:  # shutting down a radio that already went away
            log.exception("ZigBee radio shutdown failed")

    def _arm_poll(self) -> None:
        if self.trust_poll and self.joinable is not None and self.started:
            self._poll = self.clock.call_at(self.clock.now() + self.trust_poll, self._on_poll)

    def _on_poll(self) -> None:
        spawn(self.sync_trust_centre())
        self._arm_poll()

    # -- trust centre ---------------------------------------------------------------------
    async def permit(self, eui: bytes, link_key: bytes, seconds: int = PERMIT_SECONDS) -> None:
        """Let device `eui` join with `link_key` (its install-code key) for `seconds`."""
        await self.app.permit_with_link_key(node=zt.EUI64(ieee_from_eui(eui)), link_key=zt.KeyData(link_key),
                                            time_s=seconds)
        self._permitted[bytes(eui)] = (bytes(link_key), self.clock.now() + seconds)
        self.counters.permits += 1

    async def sync_trust_centre(self) -> int:
        """Give the radio the key of every device the CHF accepts now and that lacks a live
        permit; returns how many permits were sent."""
        if self.joinable is None or not self.started:
            return 0
        sent = 0
        now = self.clock.now()
        for eui, key in list(self.joinable()):
            held = self._permitted.get(eui)
            if held is not None and held[0] == key and held[1] - now > self.trust_poll:
                continue
            try:
                await self.permit(eui, key)
                sent += 1
            except Exception as exc:
                log.warning("radio refused a permit for %s: %s", eui.hex().upper(), exc)
        return sent

    def _joined(self, ieee: bytes) -> None:
        eui = eui_from_ieee(ieee)
        permit = self._permitted.pop(eui, None)
        self.link_keys.pop(eui, None)
        if self.allowed is not None and not self.allowed(eui):
            self._refuse(eui, "joined the radio's network but is not in the CHF device log")
            return
        if self.proxy_joins and permit is not None and eui not in self._local:
            spawn(self._proxy_join(eui, permit[0]))

    async def _proxy_join(self, eui: bytes, link_key: bytes, device_type: int = DeviceType.TYPE_2) -> None:
        """gbhub's join handshake with the CHF on behalf of a physical device, through a local
        stand-in port that exists only for the handshake. The device type is not known at that
        point: TYPE_2 (an IHD-like HAN device) [I]."""
        from .join import JoinClient, JoinError

        if self.coordinator not in self._local:
            return
        client = JoinClient(ZigbeePort(self, eui), self.coordinator, None, link_key=link_key,
                            device_type=device_type, clock=self.clock)
        stand_in = self._local[eui] = _Local(eui, client.handle, 0, port=client.port)  # no endpoint of its own
        try:
            await client.join()
            self.proxied.append(eui)
            del self.proxied[:-64]
        except (JoinError, HanError) as exc:
            log.warning("join of %s refused by the CHF: %s", eui.hex().upper(), exc)
            self._refuse(eui, f"the CHF refused its join: {exc}", "JOIN_REFUSED")
        finally:
            if self._local.get(eui) is stand_in:
                del self._local[eui]

    def _refuse(self, eui: bytes, reason: str, status: str = "NOT_IN_DEVICE_LOG") -> None:
        """Take a device off the network and report why (`on_refused(eui, status, reason)`: the
        CHF's security log)."""
        self.counters.refused += 1
        ieee = ieee_from_eui(eui)
        log.warning("%s %s: removing it", eui.hex().upper(), reason)
        if self.on_refused is not None:
            try:
                self.on_refused(eui, status, reason)
            except Exception:
                log.exception("on_refused failed")
        device = self.app.devices.get(zt.EUI64(ieee))
        if device is not None:
            spawn(self._remove(device))

    async def _remove(self, device: Any) -> None:
        try:
            await self.app.force_remove(device)  # the radio's own leave (not every radio has one)
        except Exception as exc:
            log.info("radio could not force %s off: %s", device.ieee, exc)
        try:
            await self.app.remove(device.ieee)
        except Exception as exc:
            log.info("removing %s: %s", device.ieee, exc)

    # -- sending --------------------------------------------------------------------------
    async def _send(self, frame: ApsFrame, port: ZigbeePort) -> bool:
        counters = self.counters
        counters.sent += 1
        if not port.attached:
            counters.failed += 1
            self._emit(frame, CLOSED)
            raise PortClosed(f"{port.eui.hex().upper()} is detached")
        src = self._local[port.eui]
        if self._down and (frame.src in self._down or frame.dst in self._down):
            counters.failed += 1
            self._emit(frame, LINK_DOWN)
            which = frame.src if frame.src in self._down else frame.dst
            raise LinkDown(f"link of {which.hex().upper()} is down")
        if frame.src_endpoint and frame.src_endpoint not in src.also:
            src.own_endpoint = frame.src_endpoint
        local = self._local.get(frame.dst)
        if local is not None:
            if local.port is None:
                counters.failed += 1
                self._emit(frame, NO_ROUTE)
                raise NoRoute(f"no route to {frame.dst.hex().upper()}")
            counters.delivered += 1
            self._emit(frame, DELIVERED)
            deliver(local.receive, frame)
            return True
        if not self.started:
            counters.failed += 1
            self._emit(frame, LINK_DOWN)
            raise LinkDown("the ZigBee radio is not running")
        device = self.app.devices.get(zt.EUI64(ieee_from_eui(frame.dst)))
        if device is None:
            counters.failed += 1
            self._emit(frame, NO_ROUTE)
            raise NoRoute(f"{frame.dst.hex().upper()} has not joined the radio's network")
        if frame.src_endpoint == ZDO_ENDPOINT:
            src_ep = ZDO_ENDPOINT
        else:  # the radio endpoint of the device's endpoint that sends (`describe(also=...)`)
            src_ep = src.also[frame.src_endpoint][0] if frame.src_endpoint in src.also else src.endpoint
        try:
            await self.app.request(device, frame.profile, frame.cluster, src_ep, frame.dst_endpoint,
                                   _sequence(frame.payload), frame.payload, expect_reply=False)
        except (zigpy.exceptions.DeliveryError, TimeoutError) as exc:
            log.info("frame to %s lost: %s", frame.dst.hex().upper(), exc)
            counters.lost += 1
            self._emit(frame, LOST)
            return False
        counters.delivered += 1
        self._emit(frame, DELIVERED)
        return True

    # -- receiving (below zigpy's device dispatch) ----------------------------------------
    def _source(self, packet: zt.ZigbeePacket) -> tuple[bytes, int] | None:
        """(EUI, nwk) of a packet's sender, or None when zigpy does not know it yet."""
        src = packet.src
        if src.addr_mode == zt.AddrMode.IEEE:
            device = self.app.devices.get(src.address)
            return eui_from_ieee(bytes(src.address)), (device.nwk if device is not None else 0xFFFE)
        try:
            device = self.app.get_device(nwk=src.address)
        except KeyError:
            return None
        return eui_from_ieee(bytes(device.ieee)), int(src.address)

    def _intercept(self, packet: zt.ZigbeePacket) -> bool:
        """True when the packet was ours (Smart Energy, gbhub ZDP extensions), False to let
        zigpy have it."""
        profile, cluster = packet.profile_id, packet.cluster_id
        data = packet.data.serialize()
        if self._down:
            source = self._source(packet)
            if source is not None and source[0] in self._down:
                self.counters.ignored += 1  # its link is cut: the coordinator does not hear it
                return True
            local = self._by_endpoint.get(packet.dst_ep)
            if local is not None and local.eui in self._down and profile == SMART_ENERGY_PROFILE:
                self.counters.ignored += 1
                return True
        if packet.dst_ep == ZDO_ENDPOINT and profile == ZDP_PROFILE:
            if cluster in (JOIN_CLUSTER, zdo.ENDPOINT_TABLE_CLUSTER, zdo.MATCH_DESC_REQ, zdo.SIMPLE_DESC_REQ,
                           zdo.ACTIVE_EP_REQ):
                source = self._source(packet)
                if source is None:
                    return False
                return self._zdp(source, packet.src_ep, cluster, data)
            return False
        if profile != SMART_ENERGY_PROFILE:
            return False
        source = self._source(packet)
        if source is None:
            return False
        local = self._by_endpoint.get(packet.dst_ep)
        if local is None or local.port is None:
            self.counters.ignored += 1
            log.debug("Smart Energy frame for endpoint %s: no local device", packet.dst_ep)
            return True
        if cluster == KEY_ESTABLISHMENT_CLUSTER and self.cbke is not None and local.eui == self.coordinator:
            self._key_establishment(source[0], packet.src_ep, local.endpoint, data)
            return True
        frame = ApsFrame(source[0], local.eui, packet.src_ep, local.own_endpoint_at(packet.dst_ep), cluster, data,
                         profile=profile)
        self._arrive(local, frame)
        return True

    def _arrive(self, local: _Local, frame: ApsFrame) -> None:
        self.counters.received += 1
        self._emit(frame, DELIVERED)
        deliver(local.receive, frame)

    def _zdp(self, source: tuple[bytes, int], src_ep: int, cluster: int, data: bytes) -> bool:
        eui, nwk = source
        if cluster == JOIN_CLUSTER:
            local = self._local.get(self.coordinator)
            if local is None or local.port is None:
                self.counters.ignored += 1
                return True
            self._arrive(local, ApsFrame(eui, self.coordinator, src_ep, JOIN_ENDPOINT, cluster, data, profile=ZDP_PROFILE))
            return True
        own = 0x0000 if self.app.state.node_info is None else int(self.app.state.node_info.nwk)
        self._emit(ApsFrame(eui, self.coordinator, src_ep, ZDO_ENDPOINT, cluster, data, profile=ZDP_PROFILE), DELIVERED)
        try:
            if cluster == zdo.ENDPOINT_TABLE_CLUSTER:
                command, tsn, _ = zdo.decode_endpoint_table(data)
                if command != 1:
                    return True
                table = {d.endpoint: self._by_endpoint[d.endpoint].eui for d in self.descriptors()}
                if self.coordinator in self._local:
                    table[ZDO_ENDPOINT] = self.coordinator  # the trust centre: join handshake
                answer = (zdo.ENDPOINT_TABLE_CLUSTER, zdo.endpoint_table_response(tsn, table, self.device_endpoints()))
            elif cluster == zdo.MATCH_DESC_REQ:
                request = zdo.decode_match_desc_request(data)
                if request.profile != SMART_ENERGY_PROFILE:
                    return False  # not ours: zigpy answers other profiles
                eps = tuple(d.endpoint for d in self.descriptors() if zdo.matches(d, request))
                answer = (zdo.MATCH_DESC_RSP, zdo.MatchDescResponse(request.tsn, zdo.SUCCESS, own, eps).encode())
            elif cluster == zdo.SIMPLE_DESC_REQ:
                tsn, _, ep = zdo.decode_addr_request(data, "Simple_Desc_req")
                local = self._by_endpoint.get(ep)
                if local is None and not getattr(self.app, "gbhub_answers_zdo", False):
                    return False  # the radio firmware answers for its other endpoints
                answer = (zdo.SIMPLE_DESC_RSP, zdo.simple_desc_response(tsn, own, None if local is None else self.descriptor_at(ep)))
            else:  # Active_EP_req: radio firmware answers it, except on radios that leave ZDP to us
                if not getattr(self.app, "gbhub_answers_zdo", False):
                    return False
                tsn, _, _ = zdo.decode_addr_request(data, "Active_EP_req")
                answer = (zdo.ACTIVE_EP_RSP, zdo.active_ep_response(tsn, own, tuple(d.endpoint for d in self.descriptors())))
        except Exception as exc:  # DecodeError: malformed request from the air
            self.counters.ignored += 1
            log.info("bad ZDP request 0x%04X from %s: %s", cluster, eui.hex().upper(), exc)
            return True
        spawn(self._answer_zdp(eui, src_ep, *answer))
        return True

    async def _answer_zdp(self, eui: bytes, dst_ep: int, cluster: int, payload: bytes) -> None:
        device = self.app.devices.get(zt.EUI64(ieee_from_eui(eui)))
        if device is None:
            return
        frame = ApsFrame(self.coordinator, eui, ZDO_ENDPOINT, dst_ep, cluster, payload, profile=ZDP_PROFILE)
        try:
            await self.app.request(device, ZDP_PROFILE, cluster, ZDO_ENDPOINT, dst_ep, payload[0], payload,
                                   expect_reply=False)
        except (zigpy.exceptions.DeliveryError, TimeoutError) as exc:
            log.info("ZDP answer to %s lost: %s", eui.hex().upper(), exc)
            self._emit(frame, LOST)
            return
        self._emit(frame, DELIVERED)


    # -- CBKE (Key Establishment cluster, server side) -----------------------------------------
    #: At most this many key establishments in progress (outside input never grows memory).
    MAX_RESPONDERS = 16

    def _key_establishment(self, eui: bytes, src_ep: int, own_ep: int, data: bytes) -> None:
        from gbcs import cbke

        if len(data) >= 3 and data[0] & 0x0F == 0x00 and data[2] == 0x00:  # global Read Attributes, client to server
            self._emit(ApsFrame(eui, self.coordinator, src_ep, own_ep, KEY_ESTABLISHMENT_CLUSTER, data), DELIVERED)
            spawn(self._send_raw(eui, own_ep, src_ep, KEY_ESTABLISHMENT_CLUSTER, self._suite_attribute(data)))
            return
        if len(data) < 3 or data[0] & 0x0B != 0x01:  # cluster-specific, client to server
            self.counters.ignored += 1
            return
        sequence, command, payload = data[1], data[2], data[3:]
        self._emit(ApsFrame(eui, self.coordinator, src_ep, own_ep, KEY_ESTABLISHMENT_CLUSTER, data), DELIVERED)
        if command == cbke.TERMINATE:
            self._responders.pop(eui, None)
            return
        try:
            if command == cbke.INITIATE:
                responder = cbke.Responder(self.cbke)
                self._responders[eui] = responder
                while len(self._responders) > self.MAX_RESPONDERS:
                    self._responders.pop(next(iter(self._responders)))
                answer = responder.on_initiate(payload)
                if responder.peer != eui:
                    raise cbke.KeyEstablishmentFailed(cbke.Terminate.INVALID_CERTIFICATE, "certificate of another device")
            else:
                responder = self._responders.get(eui)
                if responder is None:
                    raise cbke.KeyEstablishmentFailed(cbke.Terminate.BAD_MESSAGE, "no key establishment in progress")
                if command == cbke.EPHEMERAL:
                    answer = responder.on_ephemeral(payload)
                elif command == cbke.CONFIRM:
                    answer = responder.on_confirm(payload)
                else:
                    raise cbke.KeyEstablishmentFailed(cbke.Terminate.BAD_MESSAGE, f"unknown command 0x{command:02X}")
        except cbke.KeyEstablishmentFailed as exc:
            self._responders.pop(eui, None)
            frame = bytes((0x19, sequence, cbke.TERMINATE)) + cbke.terminate_payload(exc.status, cbke.suite_bitmap(self._identities()))
            spawn(self._send_raw(eui, own_ep, src_ep, KEY_ESTABLISHMENT_CLUSTER, frame))
            self._refuse(eui, f"CBKE failed: {exc}", "CBKE_FAILED")
            return
        frame = bytes((0x19, sequence, command)) + answer
        spawn(self._send_raw(eui, own_ep, src_ep, KEY_ESTABLISHMENT_CLUSTER, frame))
        if command == cbke.CONFIRM:
            self._responders.pop(eui, None)
            self.link_keys[eui] = responder.key
            log.info("CBKE with %s complete (suite %d)", eui.hex().upper(), responder.identity.suite)
            spawn(self._install_link_key(eui, responder.key))
            if self.on_key_established is not None:
                self.on_key_established(eui, responder.key)

    def _identities(self) -> tuple:
        from gbcs.cbke import CbkeIdentity

        return (self.cbke,) if isinstance(self.cbke, CbkeIdentity) else tuple(self.cbke)

    def _suite_attribute(self, request: bytes) -> bytes:
        """Read Attributes Response of the Key Establishment server: KeyEstablishmentSuite
        (0x0000, bitmap16) = the suites the trust centre holds certificates for; any other
        attribute UNSUPPORTED_ATTRIBUTE."""
        from gbcs.cbke import SUITE_ATTRIBUTE, suite_bitmap

        out = bytearray((0x18, request[1], 0x01))
        body = request[3:]
        for i in range(0, len(body) - 1, 2):
            attribute = int.from_bytes(body[i:i + 2], "little")
            out += body[i:i + 2]
            if attribute == SUITE_ATTRIBUTE:
                out += bytes((0x00, 0x19)) + suite_bitmap(self._identities()).to_bytes(2, "little")
            else:
                out.append(0x86)
        return bytes(out)

    async def _install_link_key(self, eui: bytes, key: bytes) -> None:
        """The key CBKE established becomes the device's APS link key in the radio, where the
        radio library lets us (`install_link_key`)."""
        try:
            how = await install_link_key(self.app, ieee_from_eui(eui), key)
        except Exception as exc:  # the radio refused: the install-code-derived key stays
            log.warning("radio did not take the CBKE link key of %s: %s", eui.hex().upper(), exc)
            return
        if how is None:
            self.link_key_installed.pop(eui, None)
        else:
            self.link_key_installed[eui] = how

    async def _send_raw(self, eui: bytes, src_ep: int, dst_ep: int, cluster: int, payload: bytes) -> bool:
        device = self.app.devices.get(zt.EUI64(ieee_from_eui(eui)))
        if device is None:
            return False
        frame = ApsFrame(self.coordinator, eui, src_ep, dst_ep, cluster, payload)
        try:
            await self.app.request(device, SMART_ENERGY_PROFILE, cluster, src_ep, dst_ep, _sequence(payload), payload,
                                   expect_reply=False)
        except (zigpy.exceptions.DeliveryError, TimeoutError) as exc:
            log.info("frame to %s lost: %s", eui.hex().upper(), exc)
            self._emit(frame, LOST)
            return False
        self._emit(frame, DELIVERED)
        return True


def _sequence(payload: bytes) -> int:
    """The transaction sequence number of a ZCL (or join/ZDP) payload, for the radio's APS counter."""
    if len(payload) >= 3 and payload[0] & 0x04:
        return payload[3] if len(payload) > 3 else 0
    return payload[1] if len(payload) > 1 else 0


async def install_link_key(app: Any, ieee: bytes, key: bytes) -> str | None:
    """Give the radio `key` as the APS link key of device `ieee` (air byte order); returns how,
    or None when this radio library offers no way (logged once per library). zigpy 2.4 itself
    has no call for it; per library [I, untested on hardware]:

    - virtual radio: its trust centre's key table (`VirtualRadio.gbhub_set_link_key`).
    - bellows, EZSP v4-v12: `addOrUpdateKeyTableEntry` keyed by the partner's address (bellows'
      `write_link_keys`, as its network restore uses).
    - bellows, EZSP v13+: not done. `importLinkKey` takes a key-table index and bellows'
      `write_link_keys` numbers the keys it is given from 0, so one key would overwrite entry 0;
      finding a free index needs the key table read back, which bellows does not expose.
    - zigpy-deconz: `write_parameter(NetworkParameter.link_key, ...)`, the firmware's per-device
      link key (the call its `permit_with_link_key` makes).
    - zigpy-znp: not done. Z-Stack keeps link keys in NV tables (hashed TCLK, APS key data)
      that zigpy-znp writes only when restoring a whole network; there is no MT command to set
      one device's APS link key while the stack runs.
    """
    import zigpy.state

    partner = zt.EUI64(ieee)
    setter = getattr(app, "gbhub_set_link_key", None)
    if setter is not None:
        await setter(partner, zt.KeyData(key))
        return "virtual"
    ezsp = getattr(app, "_ezsp", None)
    if ezsp is not None:
        if getattr(ezsp, "ezsp_version", 13) >= 13:
            _no_key_install("bellows EZSP v13+ (importLinkKey needs a free key-table index)")
            return None
        await ezsp.write_link_keys([zigpy.state.Key(key=zt.KeyData(key), partner_ieee=partner)])
        return "ezsp-key-table"
    api = getattr(app, "_api", None)
    if api is not None and type(app).__module__.startswith("zigpy_deconz"):
        from zigpy_deconz.api import LinkKey, NetworkParameter

        await api.write_parameter(NetworkParameter.link_key, LinkKey(ieee=partner, key=zt.KeyData(key)))
        return "deconz-link-key"
    _no_key_install(f"{type(app).__module__} (no call to set one device's APS link key)")
    return None


_warned: set[str] = set()


def _no_key_install(why: str) -> None:
    if why not in _warned:
        _warned.add(why)
        log.warning("CBKE link keys stay in gbhub only: the radio cannot take them: %s", why)


def build_app(radio: str, path: str, baudrate: int | None = None, **options: Any) -> Any:
    """A Smart Energy coordinator app for a radio type (not started; `ZigbeeTransport.start`)."""
    cls = coordinator_class(radio_class(radio))
    return cls(zigpy_config(path, baudrate, **options))
