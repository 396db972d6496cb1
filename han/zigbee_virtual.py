"""The virtual zigpy radio: a zigpy `ControllerApplication` over an in-memory ZigBee network, so
the whole zigpy path of the CHF coordinator (`han.zigbee`) runs in CI without hardware.

`VirtualZigbeeNetwork` is the air (NWK addresses, the coordinator radio, end-device nodes).
`VirtualRadio` is the radio library's side: the abstract radio methods of zigpy implemented
against that air, including the trust centre a radio's firmware runs — a node joins only with
the link key it was permitted with (`permit_with_link_key`), never with the well-known default
key, and keeps its key for rejoins. `ZigbeeNode` is a HAN transport for a gbhub device (IHD, GSME,
PPMID) acting as a ZigBee end device: it associates with its install-code key on first use,
answers zigpy's device interview (Node_Desc, Active_EP, Simple_Desc), and finds the coordinator's
Smart Energy endpoints by Match_Desc and gbhub's endpoint table (`han.zdo`).

Emulation choice [I]: a real device whose join is refused retries after a while; here a refused
association first asks the transport to sync the trust centre once (what the next poll would do)
and then retries, so tests need no clock advance for it.

Radio path: `virtual://NAME` (the network registers itself under that name).
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import weakref
from typing import Any

import zigpy.application
import zigpy.config as zconf
import zigpy.device
import zigpy.exceptions
import zigpy.state
import zigpy.types as zt
import zigpy.zdo.types as zdo_t

from gbcs.catalogue import DeviceType
from gbcs.codec import DecodeError

from . import zdo
from .aps import KEY_ESTABLISHMENT_CLUSTER, SMART_ENERGY_PROFILE, ApsFrame, HanError, LinkDown, NoRoute, PortClosed, eui_from_ieee, ieee_from_eui
from .join import JOIN_CLUSTER, ZDP_PROFILE, link_key_from_install_code
from .transport import Clock, LoopClock, Receiver, deliver, spawn

log = logging.getLogger("gbhub.han.zigbee")

#: The well-known ZigBee default TC link key ("ZigBeeAlliance09"): never accepted for a join.
DEFAULT_TC_LINK_KEY = b"ZigBeeAlliance09"

NETWORKS: "weakref.WeakValueDictionary[str, VirtualZigbeeNetwork]" = weakref.WeakValueDictionary()
_names = itertools.count(1)


class NotOnNetwork(LinkDown):
    """The node could not join the radio's network (refused by the trust centre, or no radio)."""


class VirtualZigbeeNetwork:
    """The air of one virtual PAN: a coordinator radio and end-device nodes by NWK address."""

    def __init__(self, name: str | None = None, *, coordinator: bytes = bytes.fromhex("00124B0000000001")) -> None:
        self.name = name or f"net{next(_names)}"
        self.path = f"virtual://{self.name}"
        self.coordinator = bytes(coordinator)  # the radio's IEEE address, GBCS order
        self.radio: VirtualRadio | None = None
        self.network_info: zigpy.state.NetworkInfo | None = None
        self.nodes: dict[int, "ZigbeeNode"] = {}
        self._nwk = itertools.count(0x1001)
        self.refusals = 0
        self.down: set[bytes] = set()  # nodes (GBCS EUIs) whose radio link is cut (`set_link`)
        NETWORKS[self.name] = self

    def set_link(self, eui: bytes, up: bool) -> None:
        """Cut a node's radio link or restore it: it can neither send nor be reached."""
        if up:
            self.down.discard(bytes(eui))
        else:
            self.down.add(bytes(eui))

    def node_by_ieee(self, ieee: bytes) -> "ZigbeeNode | None":
        return next((n for n in self.nodes.values() if n.ieee == ieee), None)

    async def associate(self, node: "ZigbeeNode") -> int:
        radio = self.radio
        if radio is None or not radio.running:
            raise NotOnNetwork("no coordinator radio is running")
        if not await radio.trust_centre_join(node.ieee, node.link_key):
            self.refusals += 1
            raise NotOnNetwork(f"the trust centre refused {eui_from_ieee(node.ieee).hex().upper()}")
        old = self.node_by_ieee(node.ieee)
        nwk = old.nwk if old is not None and old.nwk is not None else next(self._nwk)
        self.nodes[nwk] = node
        node.nwk = nwk
        radio.handle_join(zt.NWK(nwk), zt.EUI64(node.ieee), zt.NWK(0x0000))
        return nwk

    def leave(self, node: "ZigbeeNode") -> None:
        if node.nwk is not None and self.nodes.get(node.nwk) is node:
            del self.nodes[node.nwk]
            if self.radio is not None:
                self.radio.handle_leave(zt.NWK(node.nwk), zt.EUI64(node.ieee))
        node.nwk = None

    def to_coordinator(self, packet: zt.ZigbeePacket) -> bool:
        radio = self.radio
        if radio is None or not radio.running:
            return False
        radio.packet_received(packet)
        return True


class VirtualRadio(zigpy.application.ControllerApplication):
    """zigpy's radio interface over a `VirtualZigbeeNetwork` (config path `virtual://NAME`)."""

    #: ZDP the firmware of real radios answers itself (Active_EP, Simple_Desc) is left to the
    #: gbhub transport here.
    gbhub_answers_zdo = True
    _watchdog_period = 3600

    def __init__(self, config: dict) -> None:
        super().__init__(config)
        self.network: VirtualZigbeeNetwork | None = None
        self.running = False
        self.endpoints: dict[int, Any] = {}
        self._transient: dict[bytes, tuple[bytes, float]] = {}
        self._key_table: dict[bytes, bytes] = {}
        self.refused: list[bytes] = []

    # -- zigpy's abstract radio methods -------------------------------------------------------
    async def connect(self) -> None:
        path = self.config[zconf.CONF_DEVICE][zconf.CONF_DEVICE_PATH]
        network = NETWORKS.get(path.removeprefix("virtual://"))
        if network is None:
            raise ConnectionError(f"no virtual ZigBee network at {path}")
        self.network = network
        network.radio = self

    async def disconnect(self) -> None:
        self.running = False
        if self.network is not None and self.network.radio is self:
            self.network.radio = None

    async def load_network_info(self, *, load_devices: bool = False) -> None:
        network = self._net()
        if network.network_info is None:
            raise zigpy.exceptions.NetworkNotFormed("the virtual network is not formed")
        self.state.network_info = network.network_info
        self.state.node_info = zigpy.state.NodeInfo(
            nwk=zt.NWK(0x0000), ieee=zt.EUI64(ieee_from_eui(network.coordinator)),
            logical_type=zdo_t.LogicalType.Coordinator, model="virtual radio", manufacturer="gbhub", version="1",
        )

    async def write_network_info(self, *, network_info, node_info) -> None:
        self._net().network_info = network_info

    async def reset_network_info(self) -> None:
        self._net().network_info = None

    async def start_network(self) -> None:
        await self.load_network_info()
        await self.register_endpoints()
        ieee = self.state.node_info.ieee
        if ieee not in self.devices:
            device = zigpy.device.Device(self, ieee, self.state.node_info.nwk)
            for d in self.endpoints.values():
                endpoint = device.add_endpoint(d.endpoint)
                endpoint.profile_id, endpoint.device_type = d.profile, d.device_type
                for cluster in d.input_clusters:
                    endpoint.add_input_cluster(cluster)
                for cluster in d.output_clusters:
                    endpoint.add_output_cluster(cluster)
            if 1 not in device.endpoints:
                device.add_endpoint(1)  # zigpy keeps the coordinator's model strings on endpoint 1
            self.devices[ieee] = device
        self.running = True

    async def force_remove(self, dev) -> None:
        node = self._net().node_by_ieee(bytes(dev.ieee))
        if node is not None:
            self._net().leave(node)

    async def add_endpoint(self, descriptor) -> None:
        self.endpoints[descriptor.endpoint] = descriptor

    async def permit_ncp(self, time_s: int = 60) -> None:
        """Opening joins on the coordinator: a no-op here, as joining needs a permitted key."""

    async def gbhub_set_link_key(self, partner, key) -> None:
        """A device's APS link key from now on (the key CBKE established: `han.zigbee.install_link_key`)."""
        self._key_table[bytes(partner)] = bytes(key)

    async def permit_with_link_key(self, node, link_key, time_s: int = 60) -> None:
        loop = asyncio.get_running_loop()
        self._transient[bytes(node)] = (bytes(link_key), loop.time() + time_s)

    async def send_packet(self, packet: zt.ZigbeePacket) -> None:
        if not self.running:
            raise zigpy.exceptions.DeliveryError("radio not running")
        if packet.dst.addr_mode == zt.AddrMode.Broadcast:
            return  # no routers to tell (permit-join broadcasts)
        network = self._net()
        if packet.dst.addr_mode == zt.AddrMode.IEEE:
            node = network.node_by_ieee(bytes(packet.dst.address))
        else:
            node = network.nodes.get(int(packet.dst.address))
        if node is None:
            raise zigpy.exceptions.DeliveryError(f"no node {packet.dst.address}")
        if node.eui in network.down:
            raise zigpy.exceptions.DeliveryError(f"node {packet.dst.address}: link down")
        incoming = packet.replace(src=zt.AddrModeAddress(addr_mode=zt.AddrMode.NWK, address=zt.NWK(0x0000)),
                                  dst=zt.AddrModeAddress(addr_mode=zt.AddrMode.NWK, address=zt.NWK(node.nwk)))
        if not node.receive_packet(incoming):
            raise zigpy.exceptions.DeliveryError(f"node {packet.dst.address} did not acknowledge")

    # -- the radio firmware's trust centre --------------------------------------------------
    async def trust_centre_join(self, ieee: bytes, key: bytes | None) -> bool:
        if await self._check_key(ieee, key):
            return True
        transport = getattr(self, "gbhub_transport", None)
        if transport is not None:  # the device retries after the trust centre's next poll
            await transport.sync_trust_centre()
            if await self._check_key(ieee, key):
                return True
        self.refused.append(ieee)
        del self.refused[:-64]
        return False

    async def _check_key(self, ieee: bytes, key: bytes | None) -> bool:
        if key is None or key == DEFAULT_TC_LINK_KEY:
            return False
        if self._key_table.get(ieee) == key:
            return True  # rejoin with the key it holds
        held = self._transient.get(ieee)
        if held is None or held[1] < asyncio.get_running_loop().time() or held[0] != key:
            return False
        del self._transient[ieee]
        self._key_table[ieee] = key
        return True

    def _net(self) -> VirtualZigbeeNetwork:
        if self.network is None:
            raise zigpy.exceptions.ControllerException("not connected")
        return self.network


class ZigbeeNode:
    """A gbhub device as a ZigBee end device on a virtual network (implements `HanTransport`
    for that one device): `ZigbeeNode(network, install_code=...)`, then `attach` as on any HAN."""

    def __init__(self, network: VirtualZigbeeNetwork, *, install_code: bytes | None = None,
                 link_key: bytes | None = None, device_type: int = DeviceType.TYPE_2,
                 clock: Clock | None = None, timeout: float = 10.0, cbke: Any = None) -> None:
        self.network = network
        #: This device's CBKE identity (`gbcs.cbke.CbkeIdentity`): with one, the node runs key
        #: establishment with the trust centre right after joining, as SE devices do.
        self.cbke = cbke
        self.link_key_established: bytes | None = None
        self.suite: int | None = None  # the crypto suite the last key establishment used
        self.link_key = link_key if link_key is not None else (
            None if install_code is None else link_key_from_install_code(install_code))
        self.device_type = int(device_type)
        self.clock: Clock = clock if clock is not None else LoopClock()
        self.timeout = timeout
        self.nwk: int | None = None
        self.eui: bytes | None = None
        self.port: NodePort | None = None
        self._table: dict[int, bytes] = {}  # coordinator endpoint -> EUI
        self._device_eps: dict[int, int] = {}  # coordinator endpoint -> the entity's own endpoint (else 1)
        self._matches: dict[int, tuple[int, ...]] = {}
        self._waiting: dict[tuple[int, int], asyncio.Future] = {}
        self._tsn = itertools.count(1)
        self._joining: asyncio.Future | None = None
        self.errors = 0

    @property
    def ieee(self) -> bytes:
        assert self.eui is not None
        return ieee_from_eui(self.eui)

    def attach(self, eui: bytes, receive: Receiver) -> "NodePort":
        if self.eui is not None and self.eui != eui:
            raise HanError("a ZigbeeNode carries one device")
        if self.port is not None and self.port.attached:
            raise HanError(f"{eui.hex().upper()} is already attached")
        self.eui = bytes(eui)
        self.port = NodePort(self, self.eui, receive)
        return self.port

    # -- joining the network ------------------------------------------------------------------
    async def ensure_joined(self) -> None:
        if self.nwk is not None and self.network.nodes.get(self.nwk) is self:
            return
        if self._joining is None or self._joining.done():
            self._joining = asyncio.ensure_future(self._join())
        await asyncio.shield(self._joining)

    async def _join(self) -> None:
        self.nwk = None
        await self.network.associate(self)
        self._table.clear()
        self._matches.clear()
        if self.cbke is not None:
            try:
                self.link_key_established = await self.key_establishment()
            except Exception as exc:
                self.network.leave(self)
                raise NotOnNetwork(f"key establishment with the trust centre failed: {exc}") from exc

    async def key_establishment(self) -> bytes:
        """CBKE with the trust centre (the coordinator endpoint the endpoint table names for
        entity 0 that serves Key Establishment): returns the established link key."""
        from gbcs import cbke

        table = await self.endpoint_table()
        trust_centre = table.get(0)
        served = await self.match(KEY_ESTABLISHMENT_CLUSTER)
        endpoint = next((ep for ep in served if table.get(ep) == trust_centre), None)
        if endpoint is None:
            raise NoRoute("no Key Establishment server on the trust centre")
        identities = {i.suite: i for i in ((self.cbke,) if isinstance(self.cbke, cbke.CbkeIdentity) else self.cbke)}
        offered = await self.key_establishment_suites(endpoint)
        self.suite = cbke.choose_suite(cbke.suite_bitmap(identities.values()), offered)
        if self.suite is None:
            raise cbke.KeyEstablishmentFailed(cbke.Terminate.UNSUPPORTED_SUITE,
                                              f"the trust centre offers suites 0x{offered:04X}, this device holds "
                                              f"0x{cbke.suite_bitmap(identities.values()):04X}")
        initiator = cbke.Initiator(identities[self.suite])
        answer = await self._ke(endpoint, cbke.INITIATE, initiator.initiate())
        answer = await self._ke(endpoint, cbke.EPHEMERAL, initiator.on_initiate_response(answer))
        answer = await self._ke(endpoint, cbke.CONFIRM, initiator.on_ephemeral_response(answer))
        key = initiator.on_confirm_response(answer)
        self.link_key = key  # the trust centre holds it as this device's link key from now on (rejoins)
        return key

    async def key_establishment_suites(self, endpoint: int) -> int:
        """The trust centre's KeyEstablishmentSuite attribute (Read Attributes, 0x0800/0x0000)."""
        from gbcs import cbke

        tsn = next(self._tsn) & 0xFF
        request = bytes((0x00, tsn, 0x00)) + cbke.SUITE_ATTRIBUTE.to_bytes(2, "little")
        data = await self._exchange_ke(endpoint, tsn, request)
        # 18 tsn 01 ‖ attribute(2) status(1) [type(1) value(2)]
        if len(data) < 9 or data[2] != 0x01 or data[5] != 0x00 or data[6] != 0x19:
            raise cbke.KeyEstablishmentFailed(cbke.Terminate.BAD_MESSAGE, "no KeyEstablishmentSuite from the trust centre")
        return int.from_bytes(data[7:9], "little")

    async def _ke(self, endpoint: int, command: int, payload: bytes) -> bytes:
        from gbcs import cbke

        tsn = next(self._tsn) & 0xFF
        frame = bytes((0x11, tsn, command)) + payload  # cluster-specific, client→server, no default response
        data = await self._exchange_ke(endpoint, tsn, frame)
        if len(data) < 3:
            raise cbke.KeyEstablishmentFailed(cbke.Terminate.BAD_MESSAGE)
        if data[2] == cbke.TERMINATE:
            raise cbke.KeyEstablishmentFailed(data[3] if len(data) > 3 else cbke.Terminate.BAD_MESSAGE)
        if data[2] != command:
            raise cbke.KeyEstablishmentFailed(cbke.Terminate.BAD_MESSAGE, f"answer 0x{data[2]:02X} to 0x{command:02X}")
        return data[3:]

    async def _exchange_ke(self, endpoint: int, tsn: int, frame: bytes) -> bytes:
        future = asyncio.get_running_loop().create_future()
        key = (KEY_ESTABLISHMENT_CLUSTER, tsn)
        self._waiting[key] = future
        timer = self.clock.call_at(self.clock.now() + self.timeout,
                                   lambda: future.done() or future.set_exception(NoRoute("no answer from the trust centre")))
        try:
            self._transmit(0x0000, self.port.endpoint if self.port else 1, endpoint, SMART_ENERGY_PROFILE,
                           KEY_ESTABLISHMENT_CLUSTER, frame)
            return await future
        finally:
            timer.cancel()
            self._waiting.pop(key, None)

    def leave(self) -> None:
        self.network.leave(self)

    # -- ZDP requests of our own ----------------------------------------------------------
    async def _ask(self, cluster: int, answer: int, payload: bytes, tsn: int) -> bytes:
        future = asyncio.get_running_loop().create_future()
        key = (answer, tsn)
        self._waiting[key] = future
        timer = self.clock.call_at(self.clock.now() + self.timeout,
                                   lambda: future.done() or future.set_exception(NoRoute("no answer from the coordinator")))
        try:
            self._transmit(0x0000, 0, 0, ZDP_PROFILE, cluster, payload)
            return await future
        finally:
            timer.cancel()
            self._waiting.pop(key, None)

    async def endpoint_table(self, refresh: bool = False) -> dict[int, bytes]:
        if refresh or not self._table:
            tsn = next(self._tsn) & 0xFF
            data = await self._ask(zdo.ENDPOINT_TABLE_CLUSTER, zdo.ENDPOINT_TABLE_CLUSTER, zdo.endpoint_table_request(tsn), tsn)
            _command, _tsn, table, self._device_eps = zdo.decode_endpoint_table_full(data)
            self._table = table or {}
        return self._table

    async def active_endpoints(self) -> tuple[int, ...]:
        """Active_EP to the coordinator: its active endpoints (as a real IHD discovers them)."""
        tsn = next(self._tsn) & 0xFF
        data = await self._ask(zdo.ACTIVE_EP_REQ, zdo.ACTIVE_EP_RSP, bytes((tsn, 0, 0)), tsn)
        return zdo.decode_active_ep_response(data)[3]

    async def simple_descriptor(self, endpoint: int) -> zdo.SimpleDescriptor | None:
        """Simple_Desc of one of the coordinator's endpoints (None: not active)."""
        tsn = next(self._tsn) & 0xFF
        data = await self._ask(zdo.SIMPLE_DESC_REQ, zdo.SIMPLE_DESC_RSP, bytes((tsn, 0, 0, endpoint)), tsn)
        return zdo.decode_simple_desc_response(data)[3]

    async def match(self, cluster: int) -> tuple[int, ...]:
        """Match_Desc to the coordinator: its Smart Energy endpoints serving `cluster`."""
        if cluster not in self._matches:
            tsn = next(self._tsn) & 0xFF
            request = zdo.MatchDescRequest(tsn, 0x0000, SMART_ENERGY_PROFILE, (cluster,), ())
            data = await self._ask(zdo.MATCH_DESC_REQ, zdo.MATCH_DESC_RSP, request.encode(), tsn)
            self._matches[cluster] = zdo.decode_match_desc_response(data).endpoints
        return self._matches[cluster]

    async def _resolve(self, frame: ApsFrame) -> tuple[int, int]:
        """(NWK address, endpoint) a frame goes to."""
        peer = self.network.node_by_ieee(ieee_from_eui(frame.dst))
        if peer is not None and peer.nwk is not None:
            return peer.nwk, frame.dst_endpoint
        if frame.dst_endpoint == 0:
            return 0x0000, 0
        table = await self.endpoint_table()
        if frame.dst not in table.values():
            table = await self.endpoint_table(refresh=True)
        candidates = await self.match(frame.cluster)
        hosted = [ep for ep, eui in table.items() if eui == frame.dst and ep]
        chosen = [ep for ep in candidates if ep in hosted]
        if not chosen:
            raise NoRoute(f"{frame.dst.hex().upper()} serves no cluster 0x{frame.cluster:04X} on this network")
        # an entity served on several endpoints (the CHF and the GPF's gas mirror): the one it calls dst_endpoint
        same = [ep for ep in chosen if self._device_eps.get(ep, 1) == frame.dst_endpoint]
        return 0x0000, (same or chosen)[0]

    # -- the air ----------------------------------------------------------------------------
    def _transmit(self, nwk: int, src_ep: int, dst_ep: int, profile: int, cluster: int, data: bytes) -> bool:
        if self.nwk is None:
            raise NotOnNetwork("this node is not on the network")
        packet = zt.ZigbeePacket(
            src=zt.AddrModeAddress(addr_mode=zt.AddrMode.NWK, address=zt.NWK(self.nwk)), src_ep=src_ep,
            dst=zt.AddrModeAddress(addr_mode=zt.AddrMode.NWK, address=zt.NWK(nwk)), dst_ep=dst_ep,
            tsn=data[1] if len(data) > 1 else 0, profile_id=profile, cluster_id=cluster,
            data=zt.SerializableBytes(data),
        )
        if nwk == 0x0000:
            return self.network.to_coordinator(packet)
        peer = self.network.nodes.get(nwk)
        return peer is not None and peer.receive_packet(packet)

    def receive_packet(self, packet: zt.ZigbeePacket) -> bool:
        """A packet from the air for this node: True is the MAC acknowledgement."""
        port = self.port
        if port is None or not port.attached:
            return False
        data = packet.data.serialize()
        src_nwk = int(packet.src.address)
        if packet.profile_id == ZDP_PROFILE and packet.dst_ep == 0 and packet.cluster_id != JOIN_CLUSTER:
            self._zdp(src_nwk, packet.src_ep, packet.cluster_id, data)
            return True
        if packet.cluster_id == KEY_ESTABLISHMENT_CLUSTER and packet.profile_id == SMART_ENERGY_PROFILE and len(data) >= 2:
            future = self._waiting.get((KEY_ESTABLISHMENT_CLUSTER, data[1]))
            if future is not None and not future.done():
                future.set_result(data)
                return True
        if src_nwk == 0x0000:
            src = self._table.get(packet.src_ep)
            if src is None and packet.src_ep != 0:
                self.errors += 1
                if self.nwk is not None:
                    spawn(self.endpoint_table(refresh=True))
                log.info("node %s: frame from unknown coordinator endpoint %s dropped", port.eui.hex().upper(), packet.src_ep)
                return True
            if src is None:
                src = self._table.get(0, self.network.coordinator)
        else:
            peer = self.network.nodes.get(src_nwk)
            if peer is None or peer.eui is None:
                return True
            src = peer.eui
        frame = ApsFrame(src, port.eui, packet.src_ep, packet.dst_ep, packet.cluster_id, data, profile=packet.profile_id)
        deliver(port.receive, frame)
        return True

    def _zdp(self, src_nwk: int, src_ep: int, cluster: int, data: bytes) -> None:
        try:
            if cluster in (zdo.MATCH_DESC_RSP, zdo.ENDPOINT_TABLE_CLUSTER, zdo.ACTIVE_EP_RSP, zdo.SIMPLE_DESC_RSP):
                tsn = data[1] if cluster == zdo.ENDPOINT_TABLE_CLUSTER else data[0]
                future = self._waiting.get((cluster, tsn))
                if future is not None and not future.done():
                    future.set_result(data)
                return
            own = self.nwk or 0
            port = self.port
            endpoint = port.endpoint if port is not None else 1
            if cluster == zdo.NODE_DESC_REQ:
                tsn, _, _ = zdo.decode_addr_request(data, "Node_Desc_req")
                answer = (zdo.NODE_DESC_RSP, zdo.node_desc_response(tsn, own, zdo.END_DEVICE_NODE_DESCRIPTOR))
            elif cluster == zdo.ACTIVE_EP_REQ:
                tsn, _, _ = zdo.decode_addr_request(data, "Active_EP_req")
                answer = (zdo.ACTIVE_EP_RSP, zdo.active_ep_response(tsn, own, (endpoint,)))
            elif cluster == zdo.SIMPLE_DESC_REQ:
                from .zigbee import SE_ENDPOINTS

                tsn, _, ep = zdo.decode_addr_request(data, "Simple_Desc_req")
                base = SE_ENDPOINTS.get(self.device_type, SE_ENDPOINTS[DeviceType.TYPE_2])
                d = None if ep != endpoint else zdo.SimpleDescriptor(endpoint, base.profile, base.device_id, 0,
                                                                      base.in_clusters, base.out_clusters)
                answer = (zdo.SIMPLE_DESC_RSP, zdo.simple_desc_response(tsn, own, d))
            else:
                return
        except (DecodeError, IndexError):
            self.errors += 1
            return
        self._transmit(src_nwk, 0, src_ep, ZDP_PROFILE, *answer)


class NodePort:
    """A gbhub device's attachment through its `ZigbeeNode` (implements `HanPort`)."""

    __slots__ = ("eui", "node", "receive", "attached", "endpoint")

    def __init__(self, node: ZigbeeNode, eui: bytes, receive: Receiver) -> None:
        self.eui = eui
        self.node = node
        self.receive = receive
        self.attached = True
        self.endpoint = 1

    async def send(self, frame: ApsFrame) -> bool:
        if frame.src != self.eui:
            raise ValueError("frame.src must be the sending port's EUI")
        if not self.attached:
            raise PortClosed(f"{self.eui.hex().upper()} is detached")
        if self.eui in self.node.network.down:
            raise LinkDown(f"link of {self.eui.hex().upper()} is down")
        if frame.src_endpoint:
            self.endpoint = frame.src_endpoint
        await self.node.ensure_joined()
        nwk, dst_ep = await self.node._resolve(frame)
        return self.node._transmit(nwk, frame.src_endpoint, dst_ep, frame.profile, frame.cluster, frame.payload)

    def detach(self) -> None:
        self.attached = False
