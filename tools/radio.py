"""HAN links of a premises (the rig's `[han]` table): which transport each device attaches to, and
the ZigBee radio's start, stop and trust-centre wiring to the CHF device log.

`transport = "virtual"`: every device on one `VirtualAir`.
`transport = "serial"`: the devices of `[han] local` on this process's `VirtualAir`, the rest of
the rig in another gbhub process across a serial line (`gbhub.han.air_bridge` over
`gbhub.han.serial_link`); see README "Serial HAN link".
`transport = "zigbee"`: the CHF's coordinator radio through zigpy (`gbhub.han.zigbee`). The CHF
and the meters are local devices on its Smart Energy endpoints. With `radio = "virtual"` (CI) the
devices that pair with a meter (IHD, PPMID) and GSMEs are ZigBee end devices on the virtual
network, joining with their install codes; with a real radio they are the physical devices that
join over the air. `radio = "auto"` probes the serial ports (`gbhub radios`).
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from gbcs.catalogue import DeviceType
from gbcs.codec import eui_hex

from .inputs import Failure

if TYPE_CHECKING:
    from .rig import Rig

log = logging.getLogger("gbhub.radio")

#: Device types that are ZigBee end devices (not coordinator endpoints) on the virtual radio.
END_DEVICE_TYPES = ("gsme",)


class VirtualLink:
    """Every device on the premises' virtual air."""

    def __init__(self, air: Any) -> None:
        self.air = air
        self.transport = air

    def transport_for(self, spec: Any) -> Any:
        return self.air

    async def start(self, premises: Any) -> None:
        pass

    async def stop(self) -> None:
        pass

    def set_link(self, eui: bytes, up: bool) -> None:
        """`gbhub ctl han EUI down|up`: cut or restore one device's HAN link."""
        self.air.set_link(eui, up)


class SerialHanLink(VirtualLink):
    """This process's devices on the premises' virtual air, joined by a serial line to the air of
    the gbhub process that runs the rest of the rig."""

    #: Link timing [I]: short enough that a lost fragment costs little, long enough for a loaded
    #: host at the other end; keep-alive every 2 s, down after 6 s of silence.
    ACK_TIMEOUT, KEEPALIVE, RECONNECT = 0.1, 2.0, 1.0

    def __init__(self, rig: Rig, air: Any) -> None:
        super().__init__(air)
        from gbhub.han.air_bridge import AirBridge
        from gbhub.han.serial_link import SerialLink, open_serial

        path, baudrate = rig.han_port, rig.han_baudrate or 115200
        self.path = path
        self.link = SerialLink(lambda: open_serial(path, baudrate), ack_timeout=self.ACK_TIMEOUT,
                               keepalive=self.KEEPALIVE, reconnect=self.RECONNECT)
        remote = [d.eui for d in rig.devices if not rig.is_local(d.name)]
        self.bridge = AirBridge(air, self.link, remote)

    async def start(self, premises: Any) -> None:
        await self.bridge.start()
        if self.link._port is None:
            await self.bridge.stop()
            raise Failure(f"[han] port {self.path}: cannot open the serial line: {self.link.last_error}")
        log.info("serial HAN link on %s", self.path)

    async def stop(self) -> None:
        await self.bridge.stop()

    def link_status(self) -> dict:
        """`gbhub status`: the serial line's state and counters."""
        link, bridge = self.link, self.bridge.counters
        return {"port": self.path, "up": link.up, "bad_frames": link.bad_frames, **link.counters,
                "bridge": {"out": bridge.out, "lost": bridge.lost, "overflow": bridge.overflow,
                           "inbound": bridge.inbound, "refused": bridge.refused}}


class ZigbeeLink:
    """The CHF's coordinator radio; see the module docstring for who is local."""

    def __init__(self, rig: Rig, clock: Any) -> None:
        try:
            from gbhub.han.zigbee import RadioError, ZigbeeTransport, build_app
        except ImportError as exc:
            raise Failure(f"[han] transport \"zigbee\" needs zigpy: pip install 'gbhub[zigbee]' ({exc})") from None
        chf = rig.device("chf")
        assert chf is not None
        self.rig = rig
        self.clock = clock
        self.radio = rig.han_radio
        self.network = None
        if self.radio == "virtual":
            from gbhub.han.zigbee_virtual import VirtualZigbeeNetwork

            self.network = VirtualZigbeeNetwork(coordinator=chf.eui)
            path, channel = self.network.path, rig.han_channel or 15
        else:
            path, channel = rig.han_port, rig.han_channel
            if self.radio == "auto":
                self.radio, path = probe_radio(rig.han_port)
        # zigpy's own device database beside the NVM on a real radio, so devices that joined
        # before a restart are known at once; the virtual network lives only as long as the run
        database = str(rig.data / "zigbee.sqlite") if rig.data is not None and self.network is None else None
        try:
            app = build_app(self.radio, path, rig.han_baudrate, channel=channel, database=database)
        except RadioError as exc:
            raise Failure(str(exc)) from None
        self.ca = None
        self.cas: dict[int, Any] = {}
        identity: Any = None
        if rig.han_cbke_identity is not None:  # a lab's own certificate(s) for the hub's EUI
            identity = rig.han_cbke_identity
            for one in (identity if isinstance(identity, tuple) else (identity,)):
                _check_identity(one, chf.eui)
        elif rig.han_cbke if rig.han_cbke is not None else self.radio == "virtual":
            from gbcs.cbke import SUITE_1, SUITE_2, TestCa

            # gbhub's test CAs, one per crypto suite: the trust centre holds a certificate of each and
            # offers both; the emulated devices of this run get suite 2 certificates (`ca`)
            self.cas = {SUITE_2: TestCa(), SUITE_1: TestCa(suite=SUITE_1)}
            self.ca = self.cas[SUITE_2]
            identity = tuple(ca.issue(chf.eui) for ca in self.cas.values())
        self.transport = ZigbeeTransport(app, coordinator=chf.eui, clock=clock, joinable=self._joinable,
                                         allowed=self._allowed, on_refused=self._refused, cbke=identity,
                                         proxy_joins=self.network is None)
        self.chf: Any = None
        self.local: set[bytes] = set()

    def transport_for(self, spec: Any) -> Any:
        from gbhub.firmware.registry import device_kind

        kind = device_kind(spec.type)
        if self.network is not None and (kind.pairs_with is not None or spec.type in END_DEVICE_TYPES):
            from gbhub.han.zigbee_virtual import ZigbeeNode

            return ZigbeeNode(self.network, install_code=spec.install_code, device_type=kind.device_type,
                              clock=self.clock, cbke=None if self.ca is None else self.ca.issue(spec.eui))
        if kind.device_type is not None:
            also = None
            if kind.device_type == DeviceType.CHF:  # the GPF's gas mirror on the CHF's address (hub.gpf)
                from gbhub.firmware.gas_data import MIRROR_ENDPOINT
                from gbhub.han.zigbee import GAS_MIRROR

                also = {MIRROR_ENDPOINT: GAS_MIRROR}
            self.transport.describe(spec.eui, kind.device_type, also=also)
        self.local.add(spec.eui)
        return self.transport

    async def start(self, premises: Any) -> None:
        self.chf = premises.chf
        from gbhub.han.zigbee import RadioError

        try:
            await self.transport.start()
        except RadioError as exc:
            raise Failure(str(exc)) from None
        log.info("ZigBee radio %s up as %s", self.radio, eui_hex(self.transport.ieee or b"\0" * 8))

    async def stop(self) -> None:
        await self.transport.stop()

    def set_link(self, eui: bytes, up: bool) -> None:
        """`gbhub ctl han EUI down|up` on the radio (and, on the virtual radio, the node itself)."""
        self.transport.set_link(eui, up)
        if self.network is not None:
            self.network.set_link(eui, up)

    # -- trust centre: the CHF device log decides ------------------------------------------------
    def _joinable(self):
        chf = self.chf
        if chf is None or chf.state != "on" or not chf.joining_open:
            return []
        return [(e.eui, e.link_key) for e in chf.device_log()
                if not e.joined and e.eui not in self.local and e.link_key is not None]

    def _allowed(self, eui: bytes) -> bool:
        chf = self.chf
        return chf is not None and chf.device_log_entry(eui) is not None

    def _refused(self, eui: bytes, status: str, reason: str) -> None:
        if self.chf is not None:
            self.chf.log_security("join_refused", eui=eui_hex(eui), status=status, reason=reason)


def _check_identity(identity: Any, eui: bytes) -> None:
    """A lab certificate must name the hub and fit its private key (Failure otherwise)."""
    from gbcs.cbke import CbkeError, decode_certificate, reconstruct_public_key

    cert = decode_certificate(identity.suite, identity.certificate)
    if cert.subject != eui:
        raise Failure(f"[han] certificate: issued for {eui_hex(cert.subject)}, not the hub's EUI {eui_hex(eui)}")
    curve = identity.curve
    try:
        public = reconstruct_public_key(identity.certificate, cert.reconstruction, identity.ca_public, curve)
    except CbkeError as exc:
        raise Failure(f"[han] certificate: {exc}") from None
    if curve.compress(curve.multiply(identity.private_key, curve.g)) != public:
        raise Failure("[han] private_key: does not fit the certificate (with this ca_public)")


class BleLink(VirtualLink):
    """`[han.ble]`: the devices it names as `remote` run on an air of their own (the far side),
    joined to the premises' air by a BLE link (`gbhub.han.ble`): the premises is the GATT server,
    the far side the client, both ends in this process (on a private virtual bumble link, or on
    two real adapters)."""

    def __init__(self, rig: Rig, clock: Any, air: Any) -> None:
        from gbhub.han.virtual import VirtualAir

        from .rig import ble_remote

        super().__init__(air)
        self.settings = rig.han_ble
        self.remote = {spec.eui for spec in ble_remote(rig)}
        self.local = [d.eui for d in rig.devices if d.eui not in self.remote]
        self.far = VirtualAir(clock=clock, latency=rig.han_latency, loss=rig.han_loss, seed=rig.han_seed + 1)
        self.bridges: list[Any] = []

    def transport_for(self, spec: Any) -> Any:
        return self.far if spec.eui in self.remote else self.air

    async def start(self, premises: Any) -> None:
        from gbhub.han.aps import HanError
        from gbhub.han.air_bridge import AirBridge

        link = f"gbhub-{id(self):x}"  # a private virtual link: premises in one process never meet
        server = AirBridge(self.air, self.settings.server(link), self.remote)
        client = AirBridge(self.far, self.settings.client_end(link), self.local)
        try:
            for bridge in (server, client):
                self.bridges.append(bridge)  # before it starts: a half-started end is closed too
                await bridge.start()
        except Exception as exc:  # noqa: BLE001 - an adapter that cannot start: one line, not a traceback
            await self.stop()
            what = str(exc) if isinstance(exc, (HanError, OSError)) else f"{type(exc).__name__}: {exc}"
            raise Failure(f"[han.ble]: cannot start the BLE link: {what}") from None
        log.info("BLE link up: %d device(s) beyond it", len(self.remote))

    async def stop(self) -> None:
        while self.bridges:
            await self.bridges.pop().stop()

    def set_link(self, eui: bytes, up: bool) -> None:
        """`gbhub ctl han EUI down|up`, wherever the device is: on both airs (a BLE link coming
        back does not undo it)."""
        self.air.set_link(eui, up)
        self.far.set_link(eui, up)

    def link_status(self) -> dict:
        """`gbhub status`: both ends of the BLE link, their counters and the bridges'."""
        out: dict = {"transport": "ble"}
        for bridge in self.bridges:
            end = bridge.carrier
            c = bridge.counters
            out[end.role] = {"up": end.up, "mtu": end.mtu, **end.counters, "dropped": dict(end.reassembler.dropped),
                             "bridge": {"out": c.out, "lost": c.lost, "overflow": c.overflow, "inbound": c.inbound,
                                        "refused": c.refused}}
        return out


def han_link(rig: Rig, clock: Any, air: Any) -> Any:
    if rig.han == "zigbee":
        return ZigbeeLink(rig, clock)
    if rig.han_ble is not None:
        return BleLink(rig, clock, air)
    if rig.han == "serial":
        return SerialHanLink(rig, air)
    return VirtualLink(air)


# -- gbhub radios ---------------------------------------------------------------------------

#: USB vendor:product ids of ZigBee radios and their usual radio types [I] (a CP210x or FTDI bridge
#: carries several kinds of radio: the library probes tell them apart).
USB_RADIOS: dict[tuple[int, int], tuple[str, tuple[str, ...]]] = {
    (0x1A86, 0x55D4): ("CH9102 bridge (e.g. Sonoff ZBDongle-E, EFR32)", ("ezsp",)),
    (0x10C4, 0xEA60): ("Silicon Labs CP210x bridge (e.g. Sonoff ZBDongle-P, Home Assistant SkyConnect)", ("znp", "ezsp")),
    (0x1A86, 0x7523): ("CH340 bridge (e.g. CC2652 sticks: ZigStar, some ZBDongle-P batches)", ("znp",)),
    (0x1CF1, 0x0030): ("dresden elektronik ConBee II", ("deconz",)),
    (0x0403, 0x6015): ("FTDI bridge (e.g. ConBee III)", ("deconz", "ezsp", "znp")),
    (0x0451, 0x16A8): ("TI CC2531", ("znp",)),
    (0x0451, 0xBEF3): ("TI LaunchPad (XDS110)", ("znp",)),
}
#: UART radios on a Raspberry Pi (RaspBee, Zigbee HATs) are on these when the UART is enabled.
UART_PATHS = ("/dev/serial0", "/dev/ttyAMA0")


def serial_ports() -> list[dict]:
    """Serial ports with their USB ids, plus a Raspberry Pi's UART when present."""
    ports: list[dict] = []
    try:
        from serial.tools import list_ports
    except ImportError:
        raise Failure("listing serial ports needs pyserial: pip install 'gbhub[serial]'") from None
    import os

    for p in list_ports.comports():
        if p.vid is None and p.description in ("n/a", None):
            continue  # a legacy ttySn with no device behind it
        ports.append({"port": p.device, "vid": p.vid, "pid": p.pid, "description": p.description or ""})
    for path in UART_PATHS:
        if os.path.exists(path) and all(os.path.realpath(path) != os.path.realpath(q["port"]) for q in ports):
            ports.append({"port": path, "vid": None, "pid": None, "description": "UART (Raspberry Pi)"})
    return ports


def identify(port: dict) -> tuple[str, tuple[str, ...]]:
    """(what the USB ids say, candidate radio types)."""
    if port.get("vid") is not None:
        hit = USB_RADIOS.get((port["vid"], port["pid"]))
        if hit is not None:
            return hit
        return (f"USB {port['vid']:04X}:{port['pid']:04X} {port['description']}".strip(), ())
    return (port["description"], ("ezsp", "znp", "deconz"))


async def probe(port: str, candidates: tuple[str, ...], baudrate: int | None = None) -> str | None:
    """The first radio type whose library's probe answers on `port` (opens the port)."""
    from gbhub.han.zigbee import radio_class, zigpy_config

    for radio in candidates:
        try:
            cls = radio_class(radio)
            config = zigpy_config(port, baudrate)["device"]
            if await cls.probe(config):
                return radio
        except Exception as exc:  # a library that cannot even try: next one
            log.debug("probe %s on %s: %s", radio, port, exc)
    return None


def probe_radio(port: str | None) -> tuple[str, str]:
    """(radio type, port) of the first ZigBee radio the probes find (`port`, or every port)."""
    import asyncio

    ports = [{"port": port, "vid": None, "pid": None, "description": ""}] if port else serial_ports()
    for p in ports:
        _, candidates = identify(p)
        radio = _run_apart(probe(p["port"], candidates or ("ezsp", "znp", "deconz")))
        if radio is not None:
            return radio, p["port"]
    raise Failure("[han] radio \"auto\": no ZigBee radio found (attach one, or name it with [han] radio and port)")


def _run_apart(coro):
    """Run a coroutine to completion from sync code, also when called inside a running loop
    (the premises is built in one): in a thread with its own loop."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def register(sub) -> None:
    r = sub.add_parser("radios", help="list serial ports and the ZigBee radios on them")
    r.add_argument("--probe", action="store_true",
                   help="also run each radio library's probe on the ports (opens them and talks to them)")
    r.set_defaults(func=cmd_radios)


def cmd_radios(args) -> int:
    import asyncio

    ports = serial_ports()
    if not ports:
        print("no serial ports found: no ZigBee radio is attached")
        return 0
    for p in ports:
        what, candidates = identify(p)
        line = f"{p['port']}  {what}"
        if args.probe:
            radio = asyncio.run(probe(p["port"], candidates or ("ezsp", "znp", "deconz")))
            line += f"  -> radio = \"{radio}\"" if radio else "  -> no ZigBee radio answered"
        elif candidates:
            line += f"  -> radio {' or '.join(map(repr, candidates))} (--probe to check)"
        print(line)
    return 0
