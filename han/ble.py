"""The BLE HAN link (optional extra `ble`: bumble, bleak): an installer handheld or a remote HAN
device (IHD, PPMID, GSME ...) reaches the premises over Bluetooth Low Energy, carrying the same
APS frames as the virtual air (ZCL, GB-HGRP tunnel, GBCS).

Roles: the premises side is the GATT server (peripheral, advertising the service); the remote side
is the client (central). The server runs on Google's bumble stack: on a virtual controller in CI,
or on a real adapter through a bumble HCI transport (`hci-socket:0`, `usb:0`, a serial HCI UART).
The client has two thin implementations behind `GattClient`: bumble (CI, or an adapter bumble
drives) and bleak (a real adapter through BlueZ; bleak is a client only).

GATT service [I] ours (128-bit UUIDs, README "BLE link"):

    service  65c10001-67c7-4363-b40b-c3ae55918539
    write    65c10002-...  central -> peripheral: Write / Write Without Response
    notify   65c10003-...  peripheral -> central: notifications (the central subscribes)

Framing (sans-IO: `fragment`, `Reassembler`): one message is one APS frame in the serial link's
layout (`serial_link.encode_aps`), cut to the negotiated ATT MTU: each write or notification is
at most MTU - 3 bytes, a 4-byte header then data:

    seq(1)  flags(1: first 0x80, last 0x40, index 0..63 in the low six bits)  length(2, LE)

`seq` is the message's number (mod 256), `index` the fragment's number within it (mod 64),
`length` the whole message's length (the same in every fragment). A receiver holds at most one
partial message per connection, of at most `max_message` bytes, for at most `timeout` seconds; a
fragment that does not continue it (other seq, index or length; more data than announced; no
first fragment; shorter than the header) is dropped with the partial message it broke, logged and
counted by reason in `Reassembler.dropped`; a message with the seq of the one just delivered is a
repeat and dropped too. Nothing a peer writes grows memory beyond one message per connection.

The link is a carrier (`carry(frame)`, `on_frame(cb)`, `on_link(cb)`, `up`, `start`, `stop`),
the shape the serial line has too (`han.air_bridge.Carrier`); `han.air_bridge.AirBridge` joins a local
`VirtualAir` to a carrier: the
devices beyond the link appear on the local air as proxies, frames to them cross the link, frames
from the link are put on the local air. While the link is down the proxies' links are down
(senders get `LinkDown`).

Limits [I]: one central at a time (the server stops advertising while one is connected, and one
that connects anyway is disconnected and counted); GATT is reliable below us (the link layer
acknowledges), so there is no end-to-end retry: a frame cut by a disconnection is lost, as on the
air; no BLE pairing or encryption (GBCS is protected end to end, ZCL reads are not).
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from construct import BitsInteger, BitStruct, ConstructError, Flag, Int8ub, Int16ul, Struct

from gbcs.codec import DecodeError

from .aps import ApsFrame, HanError, LinkDown
from .serial_link import decode_aps, encode_aps
from .transport import spawn

log = logging.getLogger("gbhub.han.ble")

SERVICE_UUID = "65c10001-67c7-4363-b40b-c3ae55918539"
WRITE_UUID = "65c10002-67c7-4363-b40b-c3ae55918539"
NOTIFY_UUID = "65c10003-67c7-4363-b40b-c3ae55918539"

ATT_MIN_MTU = 23  # the ATT default: every link has at least this
ATT_MAX_MTU = 517  # the largest a GATT value (512) needs
HEADER = Struct("seq" / Int8ub, "flags" / BitStruct("first" / Flag, "last" / Flag, "index" / BitsInteger(6)),
                "length" / Int16ul)
HEADER_SIZE = HEADER.sizeof()
MAX_MESSAGE = 4096  # bytes: an APS frame with a whole GB-HGRP transfer (1500) fits with room
REASSEMBLY_TIMEOUT = 5.0  # seconds from a message's first fragment to its last

#: Why a fragment was dropped: the keys of `Reassembler.dropped` (a fixed set, never grows).
DROP_REASONS = ("short", "duplicate", "too_long", "no_first", "out_of_order", "overrun", "length", "interrupted",
                "timeout")


class MessageTooLong(HanError):
    """A frame longer than the link's `max_message`: it cannot be sent over this link."""


def fragment(message: bytes, seq: int, mtu: int, max_message: int = MAX_MESSAGE) -> list[bytes]:
    """`message` cut into writes/notifications for an ATT MTU of `mtu` (each at most mtu - 3 bytes)."""
    if not ATT_MIN_MTU <= mtu <= ATT_MAX_MTU:
        raise ValueError(f"ATT MTU must be {ATT_MIN_MTU}..{ATT_MAX_MTU}, got {mtu}")
    if len(message) > max_message:
        raise MessageTooLong(f"message of {len(message)} bytes; this link carries at most {max_message}")
    chunk = mtu - 3 - HEADER_SIZE
    pieces = [message[i:i + chunk] for i in range(0, len(message), chunk)] or [b""]
    last = len(pieces) - 1
    return [HEADER.build({"seq": seq & 0xFF, "flags": {"first": i == 0, "last": i == last, "index": i & 0x3F},
                          "length": len(message)}) + piece for i, piece in enumerate(pieces)]


@dataclass(slots=True)
class Reassembler:
    """Fragments in (from one peer, in order), whole messages out: `feed(fragment, now)`.

    Never raises on input and never holds more than one partial message of `max_message` bytes."""

    max_message: int = MAX_MESSAGE
    timeout: float = REASSEMBLY_TIMEOUT
    dropped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DROP_REASONS, 0))
    _buf: bytearray | None = None
    _seq: int = 0
    _index: int = 0
    _length: int = 0
    _started: float = 0.0
    _last: int | None = None  # seq of the last message delivered

    @property
    def pending(self) -> int:
        """Bytes held for the message being reassembled."""
        return 0 if self._buf is None else len(self._buf)

    def _drop(self, reason: str, detail: str = "") -> None:
        self.dropped[reason] += 1
        log.warning("BLE fragment dropped (%s)%s", reason, f": {detail}" if detail else "")

    def _abandon(self, reason: str) -> None:
        if self._buf is not None:
            self._buf = None
            self._drop(reason, "partial message discarded")

    def expire(self, now: float) -> None:
        """Drop a partial message older than `timeout`."""
        if self._buf is not None and now - self._started > self.timeout:
            self._abandon("timeout")

    def feed(self, data: bytes, now: float) -> bytes | None:
        self.expire(now)
        if len(data) < HEADER_SIZE:
            self._abandon("interrupted")
            self._drop("short", f"{len(data)} bytes")
            return None
        try:
            h = HEADER.parse(data)
        except ConstructError:  # cannot happen for 4+ bytes; kept so outside input never raises
            self._drop("short")
            return None
        first, last, index, length, body = h.flags.first, h.flags.last, h.flags.index, h.length, data[HEADER_SIZE:]
        if length > self.max_message:
            self._abandon("interrupted")
            self._drop("too_long", f"{length} > {self.max_message}")
            return None
        if first:
            self._abandon("interrupted")
            if index != 0:
                self._drop("out_of_order", "first fragment with index %d" % index)
                return None
            if h.seq == self._last:
                self._drop("duplicate", f"seq {h.seq} again")
                return None
            self._buf, self._seq, self._index, self._length, self._started = bytearray(), h.seq, 0, length, now
        elif self._buf is None:
            self._drop("no_first", f"seq {h.seq} index {index}")
            return None
        elif h.seq != self._seq or index != (self._index + 1) & 0x3F or length != self._length:
            self._abandon("interrupted")
            self._drop("out_of_order", f"seq {h.seq} index {index} length {length}")
            return None
        else:
            self._index = index
        buf = self._buf
        assert buf is not None
        if len(buf) + len(body) > self._length:
            self._buf = None
            self._drop("overrun", f"more than the {self._length} bytes announced")
            return None
        buf += body
        if not last:
            return None
        self._buf = None
        if len(buf) != self._length:
            self._drop("length", f"{len(buf)} of {self._length} bytes")
            return None
        self._last = self._seq
        return bytes(buf)


# ---------------------------------------------------------------------------------------------
# Carriers: a link that moves whole APS frames, and the bridge that puts one under a virtual air
# ---------------------------------------------------------------------------------------------


class _GattLink:
    """What both ends share: frames <-> fragments at the link's MTU, reassembly, counters."""

    role = "?"

    def __init__(self, *, max_message: int = MAX_MESSAGE, timeout: float = REASSEMBLY_TIMEOUT) -> None:
        self.max_message = max_message
        self.timeout = timeout
        self.up = False
        self.mtu = ATT_MIN_MTU
        self._frames: Callable[[ApsFrame], Any] | None = None
        self._watchers: list[Callable[[bool], Any]] = []
        self.reassembler = Reassembler(max_message, timeout)
        self.counters = {"sent": 0, "received": 0, "lost": 0, "too_long": 0, "fragments_out": 0, "fragments_in": 0,
                         "bad": 0}
        self._seq = 0
        self._lock = asyncio.Lock()

    def _set_up(self, up: bool) -> None:
        if up == self.up:
            return
        self.up = up
        if not up:
            self.reassembler = Reassembler(self.max_message, self.timeout)
        log.info("BLE link (%s) %s, ATT MTU %d", self.role, "up" if up else "down", self.mtu)
        for watcher in list(self._watchers):
            try:
                watcher(up)
            except Exception:  # a watcher's bug must not stop the link
                log.exception("BLE link watcher failed")

    def on_frame(self, callback: Callable[[ApsFrame], Any]) -> None:
        self._frames = callback

    def on_link(self, callback: Callable[[bool], Any]) -> None:
        self._watchers.append(callback)

    async def _write(self, data: bytes) -> None:
        raise NotImplementedError

    async def carry(self, frame: ApsFrame) -> bool:
        if not self.up:
            raise LinkDown("the BLE link is down")
        message = encode_aps(frame)
        if len(message) > self.max_message:
            self.counters["too_long"] += 1
            raise MessageTooLong(f"frame of {len(message)} bytes; the BLE link carries at most {self.max_message}")
        async with self._lock:  # the fragments of one message are never interleaved with another's
            self._seq = (self._seq + 1) & 0xFF
            pieces = fragment(message, self._seq, self.mtu, self.max_message)
            try:
                for piece in pieces:
                    await self._write(piece)
                    self.counters["fragments_out"] += 1
            except Exception as exc:  # the link went away under us: lost, as on the air
                log.info("BLE write failed: %s", exc)
                self.counters["lost"] += 1
                return False
        self.counters["sent"] += 1
        return True

    def _fragment(self, data: bytes) -> None:
        self.counters["fragments_in"] += 1
        message = self.reassembler.feed(bytes(data), asyncio.get_running_loop().time())
        if message is None:
            return
        try:
            frame = decode_aps(message)
        except (DecodeError, ValueError) as exc:
            self.counters["bad"] += 1
            log.warning("BLE message dropped: %s", exc)
            return
        self.counters["received"] += 1
        if self._frames is not None:
            self._frames(frame)


# ---------------------------------------------------------------------------------------------
# bumble: devices on a virtual link or a real adapter
# ---------------------------------------------------------------------------------------------

_virtual_links: dict[str, Any] = {}


def virtual_link(name: str = "default") -> Any:
    """A bumble LocalLink shared by every virtual controller of this process with that name."""
    link = _virtual_links.get(name)
    if link is None:
        from bumble.link import LocalLink

        link = _virtual_links[name] = LocalLink()
    return link


@dataclass
class BumbleDevice:
    """A bumble `Device` on a virtual controller (`adapter = "virtual"` or `"virtual:NAME"`: the
    controllers of one NAME share a link in this process) or on a real adapter (`adapter` is a
    bumble transport such as `hci-socket:0`, `usb:0`, `serial:/dev/ttyUSB0,1000000`)."""

    device: Any
    transport: Any = None
    controller: Any = None
    link_name: str | None = None

    @classmethod
    async def open(cls, adapter: str, address: str, name: str = "gbhub") -> "BumbleDevice":
        try:
            from bumble.controller import Controller
            from bumble.device import Device
            from bumble.hci import Address
            from bumble.host import Host
            from bumble.transport import open_transport
            from bumble.transport.common import AsyncPipeSink
        except ImportError as exc:
            raise HanError(f"the BLE link needs bumble: pip install 'gbhub[ble]' ({exc})") from None
        if adapter.startswith("hci") and adapter[3:].isdigit():  # BlueZ's name for it
            adapter = f"hci-socket:{adapter[3:]}"
        if adapter == "virtual" or adapter.startswith("virtual:"):
            link_name = adapter.partition(":")[2] or "default"
            controller = Controller(name, link=virtual_link(link_name), public_address=address)
            device = Device(name=name, address=Address(address), host=Host(controller, AsyncPipeSink(controller)))
            opened = cls(device, controller=controller, link_name=link_name)
        else:
            try:
                transport = await open_transport(adapter)
            except Exception as exc:
                raise HanError(f"BLE adapter {adapter!r}: {exc}") from None
            opened = cls(Device.with_hci(name, Address(address), transport.source, transport.sink), transport)
        await opened.device.power_on()
        return opened

    async def close(self) -> None:
        try:
            await self.device.power_off()
        except Exception:  # noqa: BLE001 - closing regardless
            log.debug("bumble power off", exc_info=True)
        if self.transport is not None:
            await self.transport.close()
        if self.controller is not None and self.link_name is not None:
            link = _virtual_links.get(self.link_name)
            if link is not None:
                link.controllers.discard(self.controller)
                if not link.controllers:
                    del _virtual_links[self.link_name]


@dataclass(frozen=True)
class BleSettings:
    """A rig's `[han.ble]` table (README "BLE link"): which devices are beyond the link and how
    both ends reach each other. `from_table` raises ValueError with the key at fault."""

    remote: tuple[str, ...] = ()
    adapter: str = "virtual"  # the server's: "virtual" or a bumble transport ("hci-socket:0", "usb:0")
    address: str = "F0:F0:F0:F0:F0:01"  # the server's BLE address
    client: str = "bumble"  # the far end: "bumble" or "bleak"
    client_adapter: str = "virtual"  # bumble: as `adapter`; bleak: a BlueZ adapter ("hci1") or "" for the default
    client_address: str = "F0:F0:F0:F0:F0:02"  # bumble client's own address
    mtu: int = 247  # ATT MTU the server offers and the client asks for (23..517)
    max_message: int = MAX_MESSAGE
    timeout: float = REASSEMBLY_TIMEOUT
    with_response: bool = True  # client writes: Write Request (acknowledged) or Write Command

    @classmethod
    def from_table(cls, table: dict) -> "BleSettings":
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(table) - known)
        if unknown:
            raise ValueError(f"unknown key {unknown[0]!r} (expected {', '.join(sorted(known))})")
        kw = dict(table)
        remote = kw.get("remote", ())
        if not isinstance(remote, list | tuple) or not all(isinstance(r, str) and r for r in remote) or not remote:
            raise ValueError("remote: expected a list of device names (or EUIs) beyond the link")
        kw["remote"] = tuple(remote)
        for key in ("adapter", "address", "client", "client_adapter", "client_address"):
            if key in kw and not isinstance(kw[key], str):
                raise ValueError(f"{key}: expected a string")
        for key, low, high in (("mtu", ATT_MIN_MTU, ATT_MAX_MTU), ("max_message", 1, 0xFFFF)):
            if key in kw and (not isinstance(kw[key], int) or isinstance(kw[key], bool) or not low <= kw[key] <= high):
                raise ValueError(f"{key}: expected an integer {low}..{high}")
        if "timeout" in kw and (isinstance(kw["timeout"], bool) or not isinstance(kw["timeout"], int | float)
                                or not 0 < kw["timeout"] < float("inf")):
            raise ValueError("timeout: expected a positive number of seconds")
        if "with_response" in kw and not isinstance(kw["with_response"], bool):
            raise ValueError("with_response: expected true or false")
        if kw.get("client", "bumble") not in ("bumble", "bleak"):
            raise ValueError(f"client: expected \"bumble\" or \"bleak\", got {kw['client']!r}")
        return cls(**kw)

    def server(self, link: str | None = None) -> "BleServer":
        """The premises end; `link` names a private virtual link for a virtual adapter."""
        adapter = f"virtual:{link}" if link and self.adapter == "virtual" else self.adapter
        return BleServer(adapter, self.address, mtu=self.mtu, max_message=self.max_message, timeout=self.timeout)

    def client_end(self, link: str | None = None) -> "BleClient":
        """The far end: a central on bumble or bleak."""
        gatt: GattClient
        if self.client == "bleak":
            gatt = BleakClient(self.address, self.client_adapter or None, with_response=self.with_response)
        else:
            adapter = f"virtual:{link}" if link and self.client_adapter == "virtual" else self.client_adapter
            gatt = BumbleClient(self.address, adapter, self.client_address, mtu=self.mtu,
                                with_response=self.with_response)
        return BleClient(gatt, max_message=self.max_message, timeout=self.timeout)


class BleServer(_GattLink):
    """The premises side: GATT server (peripheral) on bumble, advertising `SERVICE_UUID`.

    The link is up once a central has subscribed to the notify characteristic; the MTU is what it
    negotiated (the server offers `mtu`)."""

    role = "server"

    def __init__(self, adapter: str = "virtual", address: str = "F0:F0:F0:F0:F0:01", *, mtu: int = ATT_MAX_MTU,
                 name: str = "gbhub", **kw: Any) -> None:
        super().__init__(**kw)
        if not ATT_MIN_MTU <= mtu <= ATT_MAX_MTU:
            raise ValueError(f"ATT MTU must be {ATT_MIN_MTU}..{ATT_MAX_MTU}")
        self.adapter, self.address, self.offer_mtu, self.name = adapter, address, mtu, name
        self.bumble: BumbleDevice | None = None
        self.connection: Any = None
        self.refused = 0  # second centrals turned away
        self._notify: Any = None

    async def start(self) -> None:
        from bumble.core import UUID, AdvertisingData
        from bumble.gatt import Characteristic, CharacteristicValue, Service

        self.bumble = await BumbleDevice.open(self.adapter, self.address, self.name)
        device = self.bumble.device
        device.gatt_server.max_mtu = self.offer_mtu
        write = Characteristic(WRITE_UUID, Characteristic.Properties.WRITE | Characteristic.Properties.WRITE_WITHOUT_RESPONSE,
                               Characteristic.WRITEABLE, CharacteristicValue(write=self._written))
        self._notify = Characteristic(NOTIFY_UUID, Characteristic.Properties.NOTIFY, Characteristic.READABLE, b"")
        self._notify.on(self._notify.EVENT_SUBSCRIPTION, self._subscribed)
        device.add_service(Service(SERVICE_UUID, [write, self._notify]))
        device.on(device.EVENT_CONNECTION, self._connected)
        device.advertising_data = bytes(AdvertisingData([
            (AdvertisingData.FLAGS, bytes((0x06,))),
            (AdvertisingData.COMPLETE_LOCAL_NAME, self.name.encode()[:8]),
            (AdvertisingData.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS, UUID(SERVICE_UUID).to_bytes()),
        ]))
        await self._advertise()

    async def _advertise(self) -> None:
        bumble = self.bumble
        if bumble is None:
            return
        try:
            await bumble.device.start_advertising(advertising_interval_min=20.0, advertising_interval_max=20.0)
        except Exception as exc:  # noqa: BLE001 - stopping, or the adapter went away: nothing to serve
            if self.bumble is bumble:
                log.warning("BLE: cannot advertise: %s", exc)

    async def stop(self) -> None:
        bumble, self.bumble = self.bumble, None
        self.connection = None
        self._set_up(False)
        if bumble is not None:
            await bumble.close()

    def _connected(self, connection: Any) -> None:
        if self.connection is not None:  # one central at a time [I]
            self.refused += 1
            log.warning("BLE: a second central (%s) refused", connection.peer_address)
            spawn(connection.disconnect())
            return
        self.connection = connection
        log.info("BLE central %s connected", connection.peer_address)
        connection.on(connection.EVENT_DISCONNECTION, lambda reason: self._disconnected(connection, reason))
        connection.on(connection.EVENT_CONNECTION_ATT_MTU_UPDATE, lambda: self._mtu(connection))

    def _mtu(self, connection: Any) -> None:
        if connection is self.connection:
            self.mtu = max(ATT_MIN_MTU, min(ATT_MAX_MTU, connection.att_mtu))

    def _disconnected(self, connection: Any, reason: Any) -> None:
        if connection is not self.connection:
            return
        log.info("BLE central disconnected (%s)", reason)
        self.connection = None
        self.mtu = ATT_MIN_MTU
        self._set_up(False)
        if self.bumble is not None:
            spawn(self._advertise())

    def _subscribed(self, bearer: Any, notify: bool, indicate: bool) -> None:
        connection = getattr(bearer, "connection", bearer)
        if connection is self.connection:
            self._mtu(connection)
            self._set_up(notify)

    def _written(self, connection: Any, value: bytes) -> None:
        if connection is not self.connection:
            return
        self._fragment(value)

    async def _write(self, data: bytes) -> None:
        if self.bumble is None or self.connection is None:
            raise LinkDown("no BLE central connected")
        await self.bumble.device.notify_subscriber(self.connection, self._notify, data)


# ---------------------------------------------------------------------------------------------
# The client role: a thin GattClient (bumble or bleak) under one carrier
# ---------------------------------------------------------------------------------------------


class GattClient(Protocol):
    """The little of a GATT central the link needs."""

    mtu: int

    async def connect(self, on_notify: Callable[[bytes], None], on_disconnect: Callable[[], None]) -> None:
        """Connect, exchange the MTU, find the service, subscribe to the notify characteristic."""
        ...

    async def write(self, data: bytes) -> None: ...

    async def disconnect(self) -> None: ...


class BumbleClient:
    """Central on bumble (`adapter` as for `BumbleDevice`), connecting to the server at `server`."""

    def __init__(self, server: str, adapter: str = "virtual", address: str = "F0:F0:F0:F0:F0:02", *,
                 mtu: int = ATT_MAX_MTU, with_response: bool = True) -> None:
        self.server, self.adapter, self.address, self.want_mtu = server, adapter, address, mtu
        self.with_response = with_response
        self.mtu = ATT_MIN_MTU
        self.bumble: BumbleDevice | None = None
        self._peer: Any = None
        self._write_char: Any = None

    async def connect(self, on_notify: Callable[[bytes], None], on_disconnect: Callable[[], None]) -> None:
        from bumble.device import Peer
        from bumble.hci import Address

        if self.bumble is None:
            self.bumble = await BumbleDevice.open(self.adapter, self.address, "gbhub-c")
        connection = await self.bumble.device.connect(Address(self.server))
        connection.on(connection.EVENT_DISCONNECTION, lambda reason: on_disconnect())
        peer = Peer(connection)
        self.mtu = await peer.request_mtu(self.want_mtu)
        await peer.discover_services([_uuid(SERVICE_UUID)])
        services = peer.get_services_by_uuid(_uuid(SERVICE_UUID))
        if not services:
            await connection.disconnect()
            raise HanError(f"BLE peer {self.server} has no gbhub service")
        await peer.discover_characteristics(service=services[0])
        write = peer.get_characteristics_by_uuid(_uuid(WRITE_UUID), services[0])
        notify = peer.get_characteristics_by_uuid(_uuid(NOTIFY_UUID), services[0])
        if not write or not notify:
            await connection.disconnect()
            raise HanError(f"BLE peer {self.server}: the gbhub service lacks its characteristics")
        self._peer, self._write_char = peer, write[0]
        await peer.subscribe(notify[0], on_notify)

    async def write(self, data: bytes) -> None:
        if self._peer is None:
            raise LinkDown("not connected")
        await self._peer.write_value(self._write_char, data, with_response=self.with_response)

    async def disconnect(self) -> None:
        peer, self._peer = self._peer, None
        if peer is not None:
            try:
                await peer.connection.disconnect()
            except Exception:  # noqa: BLE001 - already gone
                log.debug("bumble disconnect", exc_info=True)
        if self.bumble is not None:
            await self.bumble.close()
            self.bumble = None


def _uuid(text: str) -> Any:
    from bumble.core import UUID

    return UUID(text)


class BleakClient:
    """Central on a real adapter through BlueZ (bleak). `server` is the peripheral's address, or
    None to take the first one advertising `SERVICE_UUID`; `adapter` e.g. "hci0"."""

    def __init__(self, server: str | None = None, adapter: str | None = None, *, scan_timeout: float = 10.0,
                 with_response: bool = True) -> None:
        self.server, self.adapter, self.scan_timeout, self.with_response = server, adapter, scan_timeout, with_response
        self.mtu = ATT_MIN_MTU
        self._client: Any = None

    async def connect(self, on_notify: Callable[[bytes], None], on_disconnect: Callable[[], None]) -> None:
        try:
            import bleak
        except ImportError as exc:
            raise HanError(f"the BLE client needs bleak: pip install 'gbhub[ble]' ({exc})") from None
        bluez = {"adapter": self.adapter} if self.adapter else {}
        where = f"bleak on {self.adapter or 'the default adapter'}"
        try:
            target: Any = self.server
            if target is None:
                target = await bleak.BleakScanner.find_device_by_filter(
                    lambda d, adv: SERVICE_UUID in [u.lower() for u in adv.service_uuids], timeout=self.scan_timeout,
                    bluez=bluez)
                if target is None:
                    raise HanError(f"{where}: no BLE peripheral advertising the gbhub service within {self.scan_timeout:g} s")
            client = bleak.BleakClient(target, disconnected_callback=lambda _c: on_disconnect(), bluez=bluez)
            await client.connect()
        except HanError:
            raise
        except Exception as exc:  # BlueZ absent, adapter missing, peer not found: say which end failed
            raise HanError(f"{where}: {type(exc).__name__}: {exc} (BlueZ's bluetoothd running and reachable over D-Bus?)") from None
        try:
            try:  # BlueZ tells the negotiated MTU only through AcquireWrite/AcquireNotify (bleak's private hook)
                await client._backend._acquire_mtu()
                self.mtu = max(ATT_MIN_MTU, min(ATT_MAX_MTU, client.mtu_size))
            except Exception as exc:  # noqa: BLE001 - not BlueZ, or no acquirable characteristic: the safe minimum
                log.info("BLE MTU unknown (%s): using %d", exc, ATT_MIN_MTU)
                self.mtu = ATT_MIN_MTU
            await client.start_notify(NOTIFY_UUID, lambda _char, data: on_notify(bytes(data)))
        except Exception:
            await client.disconnect()
            raise
        self._client = client

    async def write(self, data: bytes) -> None:
        if self._client is None:
            raise LinkDown("not connected")
        await self._client.write_gatt_char(WRITE_UUID, data, response=self.with_response)

    async def disconnect(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.disconnect()


class BleClient(_GattLink):
    """The remote side: a GATT client (central) carrier; connects on start (within
    `connect_timeout` seconds) and again after a disconnection, every `reconnect` seconds, until
    stopped."""

    role = "client"

    def __init__(self, client: GattClient, *, reconnect: float = 1.0, connect_timeout: float = 20.0, **kw: Any) -> None:
        super().__init__(**kw)
        self.client = client
        self.reconnect = reconnect
        self.connect_timeout = connect_timeout
        self.connects = 0
        self._task: asyncio.Task | None = None
        self._lost: asyncio.Event | None = None

    async def start(self) -> None:
        """Connect once (raising on failure), then keep the link up in the background."""
        self._lost = asyncio.Event()
        await self._connect()
        self._task = spawn(self._keep())

    async def _connect(self) -> None:
        assert self._lost is not None
        self._lost.clear()
        try:
            await asyncio.wait_for(self.client.connect(self._fragment, self._dropped), self.connect_timeout)
        except asyncio.TimeoutError:
            raise HanError(f"BLE: no connection within {self.connect_timeout:g} s") from None
        self.connects += 1
        self.mtu = max(ATT_MIN_MTU, min(ATT_MAX_MTU, self.client.mtu))
        self._set_up(True)

    def _dropped(self) -> None:
        self._set_up(False)
        if self._lost is not None:
            self._lost.set()

    async def _keep(self) -> None:
        assert self._lost is not None
        while True:
            await self._lost.wait()
            await asyncio.sleep(self.reconnect)
            try:
                await self._connect()
            except Exception as exc:  # noqa: BLE001 - keep trying
                log.info("BLE reconnect failed: %s", exc)
                self._lost.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self._set_up(False)
        await self.client.disconnect()

    async def _write(self, data: bytes) -> None:
        await self.client.write(data)
