"""A plain serial HAN link (pyserial, optional extra `serial`): two gbhub processes — the hub on
one machine, the meters on another, or a microcontroller bridge — joined by a serial line.

Two ways to use it: as a HAN transport its local devices attach to (a frame for a device that is
not local crosses the line; a frame arriving from the line goes to the local device it names), or
as the `Carrier` of an air bridge (`han.air_bridge`: each process runs its own devices on its own
virtual air and the link joins the two airs; a `[han] transport = "serial"` rig does this).

Line format (sans-IO, `frame` / `Deframer`), [I] ours:

    7E ‖ escape(type(1) ‖ seq(1) ‖ body ‖ CRC-16/X-25 of type‖seq‖body, LSB first) ‖ 7E
    escape: 7E → 7D 5E, 7D → 7D 5D (HDLC byte stuffing)

    type 01 DATA  body = index(1) ‖ the last (or only) fragment of a message
    type 05 MORE  body = index(1) ‖ a fragment with more to follow
    type 02 ACK   body empty; seq = the DATA / MORE it acknowledges
    type 03 PING  type 04 PONG   (keep-alive)
    type 06 NAK   body empty: "I just read a damaged frame" (the sender repeats at once)

    message = src(8) dst(8) src_ep(1) dst_ep(1) profile(2) cluster(2) payload (LE ints) ‖ CRC-32 (LE)

A message is cut into fragments of at most `fragment` bytes (default 48), numbered 0, 1, ... in
`index`; the receiver joins them in order and drops a message whose indexes do not follow, so a
message the sender gave up on never merges with the next one. Short fragments matter on a noisy
line: with 1% of bytes damaged a 300-byte frame almost never arrives whole, a 56-byte one does
more often than not. The CRC-32 over the whole message guards against the rare damaged fragment
whose CRC-16 still matches.

Noise never wedges the receiver: a frame with a bad CRC or of impossible length is dropped and
the deframer resynchronises on the next flag. Reliability is stop-and-wait per direction: a
fragment is repeated until acknowledged (`retries`, `ack_timeout`; at once when a damaged frame
or a NAK comes back while its ACK is awaited), duplicates are acknowledged and dropped; `send`
returns False when the retries ran out (the HanPort contract for a frame lost on the air).
Keep-alive PINGs every `keepalive` seconds; with nothing heard for three periods the link is
down (sends raise LinkDown, `on_link` callbacks hear it) and a closed port is reopened every
`reconnect` seconds.
"""
from __future__ import annotations

import asyncio
import logging
import os
import struct
import zlib
from dataclasses import dataclass
from typing import Any, Callable

from gbcs.codec import DecodeError

from .aps import ApsFrame, HanError, LinkDown, NoRoute, PortClosed
from .join import install_code_crc
from .transport import Receiver, deliver, spawn

log = logging.getLogger("gbhub.han.serial")

FLAG, ESC, XOR = 0x7E, 0x7D, 0x20
DATA, ACK, PING, PONG, MORE, NAK = 1, 2, 3, 4, 5, 6
MAX_BODY = 1024  # longest type‖seq‖body accepted (outside input never grows memory unbounded)
MAX_MESSAGE = 4096  # longest reassembled message
FRAGMENT = 48  # default fragment size (bytes of message per frame)


def crc(data: bytes) -> bytes:
    """CRC-16/X-25, LSB first (the CRC ZigBee install codes carry)."""
    return install_code_crc(data)


def frame(kind: int, seq: int, body: bytes = b"") -> bytes:
    raw = bytes((kind, seq & 0xFF)) + body
    raw += crc(raw)
    out = bytearray((FLAG,))
    for b in raw:
        if b in (FLAG, ESC):
            out += bytes((ESC, b ^ XOR))
        else:
            out.append(b)
    out.append(FLAG)
    return bytes(out)


class Deframer:
    """Bytes in (any chunking, any noise), checked frames out: `feed(data) -> [(kind, seq, body)]`."""

    def __init__(self, max_body: int = MAX_BODY) -> None:
        self.max_body = max_body
        self._buf = bytearray()
        self._esc = False
        self._in_frame = False
        self.bad = 0  # frames dropped (CRC, length, escape)

    def feed(self, data: bytes) -> list[tuple[int, int, bytes]]:
        out: list[tuple[int, int, bytes]] = []
        for b in data:
            if b == FLAG:
                if self._in_frame and self._buf:
                    got = self._finish()
                    if got is not None:
                        out.append(got)
                self._buf.clear()
                self._esc = False
                self._in_frame = True
                continue
            if not self._in_frame:
                continue
            if self._esc:
                b ^= XOR
                self._esc = False
                if b not in (FLAG, ESC):
                    self._drop()
                    continue
            elif b == ESC:
                self._esc = True
                continue
            self._buf.append(b)
            if len(self._buf) > self.max_body + 2:
                self._drop()
        return out

    def _drop(self) -> None:
        self.bad += 1
        self._buf.clear()
        self._esc = False
        self._in_frame = False  # wait for the next flag

    def _finish(self) -> tuple[int, int, bytes] | None:
        raw = bytes(self._buf)
        if len(raw) < 4 or crc(raw[:-2]) != raw[-2:]:
            self.bad += 1
            return None
        return raw[0], raw[1], raw[2:-2]


def encode_aps(f: ApsFrame) -> bytes:
    return f.src + f.dst + struct.pack("<BBHH", f.src_endpoint, f.dst_endpoint, f.profile, f.cluster) + f.payload


def decode_aps(body: bytes) -> ApsFrame:
    if len(body) < 22:
        raise DecodeError("DATA body shorter than its header", len(body), "aps")
    src_ep, dst_ep, profile, cluster = struct.unpack_from("<BBHH", body, 16)
    return ApsFrame(body[:8], body[8:16], src_ep, dst_ep, cluster, body[22:], profile=profile)


# ---------------------------------------------------------------------------------------------
# The transport
# ---------------------------------------------------------------------------------------------


def seal(f: ApsFrame) -> bytes:
    """A message as it crosses the line: the APS body and its CRC-32."""
    body = encode_aps(f)
    return body + zlib.crc32(body).to_bytes(4, "little")


def unseal(message: bytes) -> ApsFrame:
    """DecodeError for a message whose CRC-32 does not match or whose body is malformed."""
    if len(message) < 4 or zlib.crc32(message[:-4]).to_bytes(4, "little") != message[-4:]:
        raise DecodeError("message CRC-32 does not match", len(message), "serial")
    return decode_aps(message[:-4])


@dataclass(slots=True)
class _Local:
    receive: Receiver
    port: "SerialPort"


class SerialPort:
    """A local device's attachment (implements `HanPort`)."""

    __slots__ = ("eui", "_link", "attached")

    def __init__(self, link: "SerialLink", eui: bytes) -> None:
        self.eui = eui
        self._link = link
        self.attached = True

    async def send(self, f: ApsFrame) -> bool:
        if f.src != self.eui:
            raise ValueError("frame.src must be the sending port's EUI")
        if not self.attached:
            raise PortClosed(f"{self.eui.hex().upper()} is detached")
        return await self._link._send(f)

    def detach(self) -> None:
        self.attached = False
        self._link._local.pop(self.eui, None)


class SerialLink:
    """One end of a serial HAN link: a `HanTransport` (attach local devices) and a `Carrier`
    (`han.air_bridge`: `carry`, `on_frame`, `on_link`, `up`). `open_port()` returns an object
    with `fileno()`, `read(n)`, `write(b)` and `close()` (a `serial.Serial`, or an os-level fd
    wrapper for tests); it is called again to reconnect."""

    def __init__(self, open_port: Callable[[], Any], *, ack_timeout: float = 0.2, retries: int = 16,
                 keepalive: float = 2.0, reconnect: float = 1.0, fragment: int = FRAGMENT,
                 corrupt: Callable[[bytes], bytes] | None = None) -> None:
        if not 1 <= fragment <= MAX_BODY - 3:
            raise ValueError(f"fragment must be 1..{MAX_BODY - 3} bytes")
        self.open_port = open_port
        self.ack_timeout = ack_timeout
        self.retries = retries
        self.keepalive = keepalive
        self.reconnect = reconnect
        self.fragment = fragment
        self.corrupt = corrupt  # tests: noise injected into every write
        self._local: dict[bytes, _Local] = {}
        self._unrouted: Callable[[ApsFrame], Any] | None = None
        self._link_watchers: list[Callable[[bool], Any]] = []
        self._port: Any = None
        self._deframer = Deframer()
        # a random first sequence number: a restarted peer's first fragment is not taken for a
        # repeat of the last one heard before (1 in 256 left, as with any 8-bit sequence)
        self._tx_seq = os.urandom(1)[0]
        self._rx_last: int | None = None
        self._nak_at = -1.0
        self.last_error: str | None = None  # why the port last failed to open
        self._rx_parts: list[bytes] = []
        self._rx_size = 0
        self._ack: asyncio.Future | None = None
        self._ack_seq = -1
        self._send_lock = asyncio.Lock()
        self._heard = 0.0
        self._tasks: list[asyncio.Task] = []
        self.up = False
        self.counters = {"sent": 0, "delivered": 0, "lost": 0, "received": 0, "retransmits": 0, "duplicates": 0,
                         "reconnects": 0, "naks": 0, "broken": 0}

    @property
    def bad_frames(self) -> int:
        return self._deframer.bad

    # -- HanTransport -------------------------------------------------------------------------
    def attach(self, eui: bytes, receive: Receiver) -> SerialPort:
        if eui in self._local:
            raise HanError(f"{eui.hex().upper()} is already attached")
        port = SerialPort(self, bytes(eui))
        self._local[port.eui] = _Local(receive, port)
        return port

    # -- Carrier (han.air_bridge) ---------------------------------------------------------------
    def on_frame(self, callback: Callable[[ApsFrame], Any]) -> None:
        """Frames from the line for no local device go to `callback`."""
        self._unrouted = callback

    def on_link(self, callback: Callable[[bool], Any]) -> None:
        """`callback(up)` whenever the link goes down or comes up."""
        self._link_watchers.append(callback)

    async def carry(self, f: ApsFrame) -> bool:
        """Send `f` across the line whoever it is for (LinkDown when the link is down)."""
        self.counters["sent"] += 1
        return await self._cross(f)

    def _set_up(self, up: bool) -> None:
        if up == self.up:
            return
        self.up = up
        for watcher in list(self._link_watchers):
            try:
                watcher(up)
            except Exception:  # a watcher's bug must not stop the link
                log.exception("serial link watcher failed")

    # -- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        self._open()
        self._tasks.append(spawn(self._keepalive()))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._tasks.clear()
        self._close()

    def _open(self) -> bool:
        try:
            self._port = self.open_port()
        except OSError as exc:
            log.info("serial port: %s", exc)
            self.last_error = exc.strerror or str(exc)
            self._port = None
            return False
        loop = asyncio.get_running_loop()
        loop.add_reader(self._port.fileno(), self._readable)
        self._heard = loop.time()
        self._deframer = Deframer()
        self._rx_parts.clear()
        self._rx_size = 0
        self._set_up(True)
        return True

    def _close(self) -> None:
        port, self._port = self._port, None
        self._set_up(False)
        if port is not None:
            try:
                asyncio.get_running_loop().remove_reader(port.fileno())
            except (ValueError, OSError):
                pass
            try:
                port.close()
            except OSError:
                pass

    async def _keepalive(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.keepalive)
            if self._port is None:
                if self._open():
                    self.counters["reconnects"] += 1
                    log.info("serial link reopened")
                else:
                    await asyncio.sleep(self.reconnect)
                continue
            if loop.time() - self._heard > 3 * self.keepalive:
                if self.up:
                    log.warning("serial link: nothing heard for %.1f s: down", 3 * self.keepalive)
                self._set_up(False)
            self._write(frame(PING, 0))

    # -- the line -----------------------------------------------------------------------------
    def _write(self, data: bytes) -> None:
        if self._port is None:
            return
        if self.corrupt is not None:
            data = self.corrupt(data)
        try:
            self._port.write(data)
        except OSError as exc:  # the other end went away: reconnect from the keep-alive loop
            log.warning("serial write failed: %s", exc)
            self._close()

    def _readable(self) -> None:
        try:
            data = self._port.read(4096) if self._port is not None else b""
        except OSError as exc:
            log.warning("serial read failed: %s", exc)
            self._close()
            return
        if not data:
            return
        bad = self._deframer.bad
        frames = self._deframer.feed(data)
        for kind, seq, body in frames:
            self._heard = asyncio.get_running_loop().time()
            self._set_up(True)
            self._on_frame(kind, seq, body)
        if self._deframer.bad != bad:  # damage read: ask for a repeat, and repeat our own fragment
            now = asyncio.get_running_loop().time()
            if now - self._nak_at >= self.ack_timeout / 4:  # at most a few NAKs per ACK time-out: noise
                self._nak_at = now  # answering noise must not keep two ends NAKing each other
                self._write(frame(NAK, 0))
            self._nudge()

    def _nudge(self) -> None:
        """Repeat the fragment awaiting its ACK now rather than at its timeout."""
        if self._ack is not None and not self._ack.done():
            self._ack.set_result(False)

    def _on_frame(self, kind: int, seq: int, body: bytes) -> None:
        if kind == ACK:
            if self._ack is not None and not self._ack.done() and seq == self._ack_seq:
                self._ack.set_result(True)
        elif kind == NAK:
            self.counters["naks"] += 1
            self._nudge()
        elif kind == PING:
            self._write(frame(PONG, seq))
        elif kind in (DATA, MORE):
            self._write(frame(ACK, seq))
            if seq == self._rx_last:
                self.counters["duplicates"] += 1
                return
            self._rx_last = seq
            if not body or body[0] != len(self._rx_parts) or self._rx_size + len(body) > MAX_MESSAGE:
                # a fragment out of order: the message it belonged to was abandoned by the sender
                if self._rx_parts or (body and body[0]):
                    self.counters["broken"] += 1
                self._rx_parts.clear()
                self._rx_size = 0
                if not body or body[0] != 0:
                    return
            self._rx_parts.append(body[1:])
            self._rx_size += len(body) - 1
            if kind == MORE:
                return
            message = b"".join(self._rx_parts)
            self._rx_parts.clear()
            self._rx_size = 0
            try:
                f = unseal(message)
            except (DecodeError, ValueError):
                self.counters["broken"] += 1
                return
            self.counters["received"] += 1
            local = self._local.get(f.dst)
            if local is not None:
                deliver(local.receive, f)
            elif self._unrouted is not None:
                deliver(self._unrouted, f)
            else:
                log.debug("serial frame for %s: no such local device", f.dst.hex().upper())

    async def _send(self, f: ApsFrame) -> bool:
        self.counters["sent"] += 1
        local = self._local.get(f.dst)
        if local is not None:
            self.counters["delivered"] += 1
            deliver(local.receive, f)
            return True
        return await self._cross(f)

    async def _cross(self, f: ApsFrame) -> bool:
        if self._port is None or not self.up:
            raise LinkDown("the serial link is down")
        message = seal(f)
        if len(message) > MAX_MESSAGE or len(message) > 256 * self.fragment:
            raise NoRoute(f"frame of {len(f.payload)} bytes is longer than the serial link carries")
        pieces = [message[i:i + self.fragment] for i in range(0, len(message), self.fragment)]
        async with self._send_lock:
            for index, piece in enumerate(pieces):
                kind = DATA if index == len(pieces) - 1 else MORE
                if not await self._stop_and_wait(kind, bytes((index,)) + piece):
                    self.counters["lost"] += 1
                    return False
            self.counters["delivered"] += 1
            return True

    async def _stop_and_wait(self, kind: int, body: bytes) -> bool:
        self._tx_seq = (self._tx_seq + 1) & 0xFF
        seq = self._tx_seq
        data = frame(kind, seq, body)
        loop = asyncio.get_running_loop()
        for attempt in range(self.retries + 1):
            if self._port is None:
                return False
            self._ack = loop.create_future()
            self._ack_seq = seq
            if attempt:
                self.counters["retransmits"] += 1
            self._write(data)
            try:
                if await asyncio.wait_for(asyncio.shield(self._ack), self.ack_timeout):
                    return True
            except asyncio.TimeoutError:
                continue
        return False


class FdPort:
    """A raw file descriptor as a port (a pseudo-terminal in tests, any tty without pyserial)."""

    def __init__(self, path_or_fd: str | int) -> None:
        if isinstance(path_or_fd, int):
            self.fd = path_or_fd
        else:
            self.fd = os.open(path_or_fd, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
            _raw(self.fd)
        os.set_blocking(self.fd, False)

    def fileno(self) -> int:
        return self.fd

    def read(self, n: int) -> bytes:
        try:
            return os.read(self.fd, n)
        except BlockingIOError:
            return b""

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                n = os.write(self.fd, view)
            except BlockingIOError:
                import select

                select.select([], [self.fd], [], 1.0)
                continue
            view = view[n:]

    def close(self) -> None:
        os.close(self.fd)


def _raw(fd: int) -> None:
    import termios
    import tty

    try:
        tty.setraw(fd, termios.TCSANOW)
    except termios.error:
        pass


def open_serial(path: str, baudrate: int = 115200) -> Any:
    """A pyserial port in non-blocking mode (FdPort when pyserial is absent)."""
    try:
        import serial
    except ImportError:
        return FdPort(path)
    return serial.Serial(path, baudrate, timeout=0)
