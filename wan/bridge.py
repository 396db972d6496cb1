"""WAN bridges: the hub's WAN port and the head-end's link to it.

The hub side is a `HubPort`: the CHF registers one `on_frame` handler for frames coming down from
the head-end and calls `send_up` for responses and alerts. Two transports implement it:

- `InProcessBridge`: head-end and hub in one event loop. A frame is handed over as the same
  `bytes` object with at most one await, so a hop costs a few microseconds.
- `TcpBridge`: an asyncio TCP server; each frame is prefixed by a 4-byte big-endian length.

On the head-end side both give a client ("link") with `send`, `recv` / `async for`, `close`, and
`set_receiver` (frames delivered by callback, skipping a queue and a task switch).

Routing of frames going up: a response goes to every attached client that sent a command with
its (originator, originator counter) header while it was pending — with a hub registered
`with_source` (the CHF), only commands the hub accepted as whole messages count
(`note_command`). The CHF cannot check a MAC meant for a meter, so a client that repeats a
pending command's header with garbage gets nothing, and one with a well-formed forgery (a
guessed counter) at most a copy: neither diverts nor suppresses the response of the client
whose command was executed. Anything unmatched, and every alert, goes to all clients.

Delivery of queued frames (the CHF's WAN outage queue) is acknowledged, so nothing queued is lost
to a client that merely connects (a port probe) or vanishes. Control frames on the same framing
start with 0x00 (no GBCS frame does) and never reach the hub:

- `00 01` TAKE (client -> hub): "I am a head-end that takes queued frames and acknowledges them";
  `00 00` LEAVE withdraws it.
- `00 02 ‖ seq(8) ‖ frame` STORED (hub -> client): a queued frame with its queue sequence number.
- `00 03 ‖ seq(8)` ACK (client -> hub): every STORED frame up to `seq` on this connection was taken.
- `00 04 ‖ request id(4) ‖ image size(4) ‖ offset(4) ‖ n(1) ‖ n target EUIs(8 each) ‖ image bytes`
  UPDATE_FIRMWARE (client -> hub): the role of DUIS 11.1 Update Firmware (a non-device request): a
  part of an OTA image for the devices listed; the hub (`on_firmware`) distributes it once every
  part is in. Like the other control frames it carries no GBCS protection: the devices check the
  image's supplier signature.
- `00 05 ‖ JSON` FIRMWARE_EVENT (hub -> the requesting client): progress of that request
  (`{"request", "device", "event", ...}`, see `hub.chf_ota`); clients hand it to `on_control`.
  These two also cross the MQTT bridge (on the down and up topics, `wan.mqtt` module doc); the
  others do not.

`TcpClient` acknowledges a STORED frame once its receiver callback returned (the `HeadEnd`
stored it) or `recv()` returned it; `HeadEnd(take_queued=True)` sends TAKE. In process, a client is
a taker unless made with `client(take_stored=False)`, and acknowledges the same way. With
`require_client=True` the WAN counts as up only while a taker is attached; the outage queue is
released only to takers, in order, and a frame leaves the queue only when acknowledged (a taker
that does not acknowledge within `ack_timeout` loses its taker status). Live alerts go to every
attached client; an alert that goes into the queue (no taker attached, or older frames still
waiting) is also copied at once to every attached client that is not a taker, so a head-end
waiting for a command's rejection, or watching, sees it without taking it from the queue.

The WAN can be cut at run time (`set_link(False)`, never persisted): `send_up` then raises
`WanDown`, and frames from head-ends are lost (in-process `send` raises `WanDown`; over TCP they
are dropped, as a real outage would). Buffering during an outage is the CHF's job.

Bounds on what unauthenticated clients can make the TCP bridge hold (constructor arguments):
`max_frame` (64 KiB: a larger length prefix closes the connection), one partial frame per
connection (the receive buffer never exceeds `max_frame` + one read), `max_connections` (64;
more are closed at once), `idle_timeout` (30 s with half a frame pending and no bytes coming:
closed), `max_buffer` (16 MiB waiting for a client that does not read: closed). Every refusal is
counted in `stats` and logged.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections import deque
from typing import Any, Awaitable, Callable, Protocol

from gbcs.frame import peek_header

log = logging.getLogger(__name__)

DEFAULT_MAX_FRAME = 64 * 1024
_MAX_INFLIGHT = 65536  # remembered (originator, counter) -> clients entries, oldest dropped first
_MAX_CANDIDATES = 16  # clients remembered per pending (originator, counter)

# Control frames (module doc): first byte 0x00, never the first byte of a GBCS frame.
CONTROL = 0x00
LEAVE = b"\x00\x00"
TAKE = b"\x00\x01"
STORED = 0x02
ACK = 0x03
UPDATE_FIRMWARE = 0x04
FIRMWARE_EVENT = 0x05
_EVENT_PREFIX = bytes((CONTROL, FIRMWARE_EVENT))

FrameHandler = Callable[..., Awaitable[None]]
Receiver = Callable[[bytes], Any]
CloseCallback = Callable[[], Any]
LinkListener = Callable[[bool], Any]


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class WanError(Exception):
    """Base of every error raised by `wan`."""


class WanDown(WanError):
    """The WAN link is cut (or, with `require_client`, no head-end is attached)."""


class WanClosed(WanError):
    """The link to the other side is closed."""


class FrameError(WanError):
    """A length prefix that is zero or larger than the configured maximum."""


# --------------------------------------------------------------------------------------------
# Sans-IO pieces: length-prefix framing and a cheap header peek for routing
# --------------------------------------------------------------------------------------------


def encode_frame(frame: bytes) -> bytes:
    """One frame as sent on a TCP bridge: 4-byte big-endian length ‖ frame."""
    return len(frame).to_bytes(4, "big") + frame


def stored_frame(seq: int, frame: bytes) -> bytes:
    """STORED control frame body: a queued frame and its sequence number."""
    return bytes((CONTROL, STORED)) + seq.to_bytes(8, "big") + frame


def ack_frame(seq: int) -> bytes:
    """ACK control frame body: STORED frames up to `seq` were taken."""
    return bytes((CONTROL, ACK)) + seq.to_bytes(8, "big")


class FrameSplitter:
    """Cuts a byte stream into length-prefixed frames, whatever the chunking of the reads.

    `feed` buffers; `next_frame` returns the next whole frame or None, and raises `FrameError` as
    soon as a bad prefix is seen (without waiting for its body). After an error the stream cannot
    be resynchronised, so every later call raises too: the connection must be closed.
    """

    __slots__ = ("max_frame", "_buf", "_pos", "_error")

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self.max_frame = max_frame
        self._buf = bytearray()
        self._pos = 0
        self._error: FrameError | None = None

    def feed(self, data: bytes) -> None:
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data

    def next_frame(self) -> bytes | None:
        if self._error is not None:
            raise self._error
        buf, pos = self._buf, self._pos
        avail = len(buf) - pos
        if avail < 4:
            return None
        n = int.from_bytes(buf[pos : pos + 4], "big")
        if n == 0 or n > self.max_frame:
            self._error = FrameError(f"bad length prefix {n} (allowed 1..{self.max_frame})")
            raise self._error
        if avail - 4 < n:
            return None
        self._pos = pos + 4 + n
        return bytes(buf[pos + 4 : pos + 4 + n])

    def frames(self, data: bytes) -> list[bytes]:
        """Feed `data` and return every frame now complete."""
        self.feed(data)
        out = []
        while (frame := self.next_frame()) is not None:
            out.append(frame)
        return out

    @property
    def pending(self) -> int:
        """Bytes buffered that do not yet make a whole frame."""
        return len(self._buf) - self._pos


# --------------------------------------------------------------------------------------------
# Hub side
# --------------------------------------------------------------------------------------------


class HubPort:
    """The hub's WAN port, shared by every bridge.

    - `on_frame(handler, with_source=False)`: the CHF's coroutine for frames coming down (one
      handler), called `handler(frame)` or, `with_source`, `handler(frame, source)` where
      `source` is the client connection (an opaque tag: per-connection fairness and bounds).
      Over TCP the frames of one connection are handed over in order, one at a time (reading
      pauses while the handler runs, so it should queue work rather than wait for a HAN round
      trip); in-process, each `send` awaits the handler directly.
    - `on_client_gone(callback)`: `callback(source)` when a client disconnects.
    - `await send_up(frame)`: a response or alert going up; raises `WanDown` while the link is
      cut, or when nobody can take it (module doc). `routes(frame)`: it is a response a client
      is waiting for.
    - `await deliver_stored(batch)`: queued frames, acknowledged (module doc).
    - `up`, `set_link(up)`, `on_link_change(callback)`, `await wait_up()`: link state.
    - `trace_to(path)`: append one JSON line per frame crossing the bridge; `observe(callback)`:
      `callback(direction, frame)` for each (the dashboard's live feed).
    """

    def __init__(self, *, require_client: bool = False, ack_timeout: float = 10.0) -> None:
        self.require_client = require_client
        self.ack_timeout = ack_timeout
        self._handler: FrameHandler | None = None
        self._with_source = False
        self._link_enabled = True
        self._up = not require_client
        self._up_event = asyncio.Event()
        if self._up:
            self._up_event.set()
        self._listeners: list[LinkListener] = []
        self._gone_listeners: list[Callable[[Any], Any]] = []
        self._taker_listeners: list[Callable[[], Any]] = []
        self._firmware_handler: Callable[[Any, bytes], Any] | None = None
        self._clients: list[Any] = []
        self._takers: list[Any] = []
        self._acked: dict[Any, int] = {}
        self._ack_waiters: dict[Any, asyncio.Future] = {}
        self._inflight: dict[tuple[bytes, int], list] = {}
        self._trace_file = None
        self._tracing = False  # a trace file or an observer: the hot path tests one flag
        self._observers: list[Callable[[str, bytes], Any]] = []
        self._tasks: set[asyncio.Task] = set()
        self.stats: dict[str, int] = {"connections_refused": 0, "idle_closed": 0, "frame_errors": 0,
                                      "slow_readers_closed": 0, "takers_demoted": 0, "control_errors": 0}

    # -- hub-facing API ----------------------------------------------------------------------
    def on_frame(self, handler: FrameHandler | None, *, with_source: bool = False) -> None:
        """Register the coroutine that receives frames coming down from the head-end."""
        self._handler = handler
        self._with_source = with_source

    def on_client_gone(self, callback: Callable[[Any], Any]) -> None:
        """Call `callback(source)` when a client disconnects (its per-connection state can go)."""
        self._gone_listeners.append(callback)

    def on_firmware(self, handler: Callable[[Any, bytes], Any] | None) -> None:
        """Register `handler(source, frame)` for UPDATE_FIRMWARE control frames (module doc)."""
        self._firmware_handler = handler

    def send_control(self, client: Any, frame: bytes) -> None:
        """A control frame (FIRMWARE_EVENT) to one attached client; dropped if it is gone."""
        if client in self._clients:
            self._deliver_up(client, frame)

    def on_taker(self, callback: Callable[[], Any]) -> None:
        """Call `callback()` when a head-end declares it takes queued frames."""
        self._taker_listeners.append(callback)

    @property
    def up(self) -> bool:
        return self._up

    async def send_up(self, frame: bytes) -> None:
        if not self._link_enabled:
            raise WanDown("WAN is down")
        if self._tracing:
            self._trace("up", frame)
        targets = self._route(frame)
        if targets is None:
            if not self._up:
                self.copy_to_watchers(frame)
                raise WanDown("no head-end attached")
            targets = self._clients
            if not targets:
                log.debug("WAN frame up with no head-end attached: dropped")
                return
        for client in targets:
            self._deliver_up(client, frame)

    def copy_to_watchers(self, frame: bytes) -> None:
        """A live copy of an alert that is going into the outage queue, for every attached client
        that does not take queued frames (a `gbhub send` waiting for its rejection, a watcher):
        the frame still waits in the queue for a taker, which gets it there, in order."""
        if not self._link_enabled:
            return
        for client in self._clients:
            if client not in self._takers:
                if self._tracing:
                    self._trace("up", frame)
                self._deliver_up(client, frame)

    def note_command(self, source: Any, originator: bytes, counter: int) -> None:
        """Remember that `source` sent a command (originator, counter): its response goes there.
        A hub that registered `with_source` calls this for the commands it passes on (so a
        frame it refuses, e.g. garbage repeating a pending header, never earns a copy); for
        other hubs the bridge notes every command-shaped frame itself."""
        inflight = self._inflight
        key = (originator, counter)
        candidates = inflight.get(key)
        if candidates is None:
            if len(inflight) >= _MAX_INFLIGHT:
                inflight.pop(next(iter(inflight)))
            inflight[key] = [source]
        elif source not in candidates and len(candidates) < _MAX_CANDIDATES:
            candidates.append(source)

    def routes(self, frame: bytes) -> bool:
        """True if `frame` is a response that an attached client is waiting for."""
        return self._link_enabled and self._route(frame, peek=True) is not None

    async def deliver_stored(self, batch: list[tuple[int, bytes]]) -> int:
        """Hand queued frames `(sequence, frame)`, in order, to one taker (the longest attached)
        and return the highest sequence it acknowledged (-1 if none): the caller drops exactly
        those from its queue. Raises `WanDown` when the link is cut or no taker is attached. A
        taker that does not acknowledge within `ack_timeout` seconds loses its taker status."""
        if not self._link_enabled or not self._takers:
            raise WanDown("no head-end takes queued frames")
        client = self._takers[0]
        for seq, frame in batch:
            if self._tracing:
                self._trace("up", frame)
            self._deliver_stored(client, seq, frame)
        last = batch[-1][0]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.ack_timeout
        while self._acked.get(client, -1) < last and client in self._takers:
            remaining = deadline - loop.time()
            if remaining <= 0:
                log.warning("WAN client %s took no queued frames for %.0f s: no longer a taker", client, self.ack_timeout)
                self.stats["takers_demoted"] += 1
                self._set_taker(client, False)
                break
            fut = self._ack_waiters[client] = loop.create_future()
            try:
                await asyncio.wait_for(fut, remaining)
            except asyncio.TimeoutError:
                pass
            finally:
                if self._ack_waiters.get(client) is fut:
                    del self._ack_waiters[client]
        return min(self._acked.get(client, -1), last)  # never more than it was given

    def set_link(self, up: bool) -> None:
        """Cut (False) or restore (True) the WAN at run time (never persisted), for tests,
        outage scenarios and `gbhub ctl wan down|up`."""
        self._link_enabled = bool(up)
        self._update_up()

    @property
    def link_enabled(self) -> bool:
        """False while the WAN is cut by `set_link(False)`."""
        return self._link_enabled

    def on_link_change(self, callback: LinkListener) -> Callable[[], None]:
        """Call `callback(up)` whenever the link state changes (a coroutine function is scheduled
        as a task). Returns a function that removes the listener."""
        self._listeners.append(callback)

        def remove() -> None:
            if callback in self._listeners:
                self._listeners.remove(callback)

        return remove

    async def wait_up(self) -> None:
        """Return once the WAN is up (at once if it already is)."""
        while not self._up:
            await self._up_event.wait()

    @property
    def clients(self) -> int:
        """Number of head-ends attached."""
        return len(self._clients)

    @property
    def takers(self) -> int:
        """Number of attached head-ends that take queued frames."""
        return len(self._takers)

    # -- tracing ---------------------------------------------------------------------------
    def trace_to(self, path: str | os.PathLike | None) -> None:
        """Append `{"t", "dir", "hex"}` JSON lines for every WAN frame to `path` (None stops)."""
        if self._trace_file is not None:
            self._trace_file.close()
            self._trace_file = None
        if path is not None:
            self._trace_file = open(path, "a", encoding="ascii", buffering=1)
        self._tracing = self._trace_file is not None or bool(self._observers)

    def observe(self, callback: Callable[[str, bytes], Any]) -> Callable[[], None]:
        """Call `callback(direction, frame)` ("up" / "down") for every frame the trace sees; a
        failing observer is logged and never stops the bridge. Returns a function that stops it."""
        self._observers.append(callback)
        self._tracing = True

        def stop() -> None:
            if callback in self._observers:
                self._observers.remove(callback)
            self._tracing = self._trace_file is not None or bool(self._observers)

        return stop

    def _trace(self, direction: str, frame: bytes) -> None:
        for observer in list(self._observers):
            try:
                observer(direction, frame)
            except Exception:
                log.exception("WAN observer failed")
        f = self._trace_file
        if f is None:
            return
        f.write(json.dumps({"t": time.time(), "dir": direction, "hex": frame.hex().upper()}) + "\n")
        f.flush()

    # -- shared plumbing -----------------------------------------------------------------------
    def _update_up(self) -> None:
        new = self._link_enabled and (not self.require_client or bool(self._takers))
        if new == self._up:
            return
        self._up = new
        if new:
            self._up_event.set()
        else:
            self._up_event.clear()
        log.info("WAN link %s", "up" if new else "down")
        for listener in list(self._listeners):
            try:
                result = listener(new)
                if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
                    self._spawn(result)
            except Exception:
                log.exception("WAN link listener failed")

    def _spawn(self, aw) -> None:
        task = asyncio.ensure_future(aw)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _add_client(self, client: Any, take: bool = False) -> None:
        self._clients.append(client)
        if take:
            self._set_taker(client, True)

    def _remove_client(self, client: Any) -> None:
        if client in self._clients:
            self._clients.remove(client)
        self._set_taker(client, False)
        self._acked.pop(client, None)
        for listener in list(self._gone_listeners):
            try:
                listener(client)
            except Exception:
                log.exception("WAN client-gone listener failed")

    def _set_taker(self, client: Any, take: bool) -> None:
        if take and client not in self._takers and client in self._clients:
            self._takers.append(client)
        elif not take and client in self._takers:
            self._takers.remove(client)
            waiter = self._ack_waiters.get(client)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        else:
            return
        self._update_up()
        if take:
            for listener in list(self._taker_listeners):
                try:
                    listener()
                except Exception:
                    log.exception("WAN taker listener failed")

    def _on_ack(self, client: Any, seq: int) -> None:
        if seq > self._acked.get(client, -1):
            self._acked[client] = seq
        waiter = self._ack_waiters.get(client)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _control(self, client: Any, frame: bytes) -> None:
        """A control frame from a client (module doc); anything else is counted and ignored."""
        if frame == TAKE:
            self._set_taker(client, True)
        elif frame == LEAVE:
            self._set_taker(client, False)
        elif len(frame) == 10 and frame[1] == ACK:
            self._on_ack(client, int.from_bytes(frame[2:10], "big"))
        elif len(frame) > 14 and frame[1] == UPDATE_FIRMWARE and self._firmware_handler is not None:
            self._firmware_handler(client, frame)
        else:
            n = self.stats["control_errors"] = self.stats["control_errors"] + 1
            if n & (n - 1) == 0:
                log.info("WAN client %s sent an unknown control frame %s (%d so far)", client, frame[:12].hex().upper(), n)

    async def _down(self, client: Any, frame: bytes) -> None:
        """A frame from a head-end client: note it for routing and hand it to the hub."""
        if frame[0] == CONTROL:
            self._control(client, frame)
            return
        if self._tracing:
            self._trace("down", frame)
        if not self._with_source:
            h = peek_header(frame)
            if h is not None and h[0] == 1:
                self.note_command(client, h[2], h[1])
        handler = self._handler
        if handler is None:
            log.warning("WAN frame down but no hub handler registered: dropped")
            return
        try:
            if self._with_source:
                await handler(frame, client)
            else:
                await handler(frame)
        except Exception:
            log.exception("hub WAN handler failed on frame %s", frame[:40].hex().upper())

    def _route(self, frame: bytes, peek: bool = False) -> list | None:
        """The clients a response is for (those that sent a command with its header while it was
        pending and are still attached), or None (not a response, or nobody waits for it)."""
        h = peek_header(frame)
        if h is None or h[0] != 2:
            return None
        key = (h[3], h[1])
        candidates = self._inflight.get(key)
        if candidates is None:
            return None
        if h[4] and not peek:
            del self._inflight[key]
        clients = self._clients
        live = [c for c in candidates if c in clients]
        return live or None

    def _deliver_up(self, client: Any, frame: bytes) -> None:
        raise NotImplementedError

    def _deliver_stored(self, client: Any, seq: int, frame: bytes) -> None:
        raise NotImplementedError


# --------------------------------------------------------------------------------------------
# Head-end side: the link protocol both clients follow
# --------------------------------------------------------------------------------------------


class WanLink(Protocol):
    """What a head-end needs from a bridge client."""

    async def send(self, frame: bytes) -> None: ...

    async def recv(self) -> bytes: ...

    def set_receiver(self, on_frame: Receiver | None, on_close: CloseCallback | None = None) -> None: ...

    async def close(self) -> None: ...


class _ClientBase:
    """Frames up are handed to the receiver callback if one is set, else queued for `recv`.
    A queued (STORED) frame is acknowledged once the receiver returned or `recv` returned it."""

    def __init__(self) -> None:
        self._queue: deque = deque()  # frames, or (frame, sequence) for STORED frames
        self._waiter: asyncio.Future | None = None
        self._receiver: Receiver | None = None
        self._on_close: CloseCallback | None = None
        self._closed = False

    def set_receiver(self, on_frame: Receiver | None, on_close: CloseCallback | None = None) -> None:
        """Deliver frames to `on_frame(frame)` (called synchronously) instead of the queue, and
        call `on_close()` when the link closes. Frames already queued are handed over first."""
        self._receiver = on_frame
        self._on_close = on_close
        if on_frame is not None:
            while self._queue:
                self._hand_over(on_frame, self._queue.popleft())

    def _hand_over(self, receiver: Receiver, item) -> None:
        if type(item) is tuple:
            self._call_receiver(receiver, item[0])
            self._ack(item[1])
        else:
            self._call_receiver(receiver, item)

    def _call_receiver(self, receiver: Receiver, frame: bytes) -> None:
        try:
            receiver(frame)
        except Exception:
            log.exception("WAN receiver failed")

    def take_stored(self, take: bool = True) -> None:
        """Declare (or withdraw) that this head-end takes queued frames (module doc)."""

    def _ack(self, seq: int) -> None:
        """Tell the hub that the STORED frame `seq` (and those before it) was taken."""

    on_control: Callable[[bytes], Any] | None = None  # FIRMWARE_EVENT frames (module doc)

    def _push(self, frame: bytes, seq: int | None = None) -> None:
        if seq is None and frame[:2] == _EVENT_PREFIX:
            if self.on_control is not None:
                self.on_control(frame)
            return
        receiver = self._receiver
        if receiver is not None:
            self._call_receiver(receiver, frame)
            if seq is not None:
                self._ack(seq)
            return
        self._queue.append(frame if seq is None else (frame, seq))
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _mark_closed(self) -> None:
        if self._closed:
            return
        self._closed = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if self._on_close is not None:
            try:
                self._on_close()
            except Exception:
                log.exception("WAN close callback failed")

    @property
    def closed(self) -> bool:
        return self._closed

    def recv_nowait(self) -> bytes | None:
        """The next queued frame, or None."""
        return self._take(self._queue.popleft()) if self._queue else None

    def _take(self, item) -> bytes:
        if type(item) is tuple:
            self._ack(item[1])
            return item[0]
        return item

    async def recv(self) -> bytes:
        """Next frame coming up; raises `WanClosed` once the link is closed and drained."""
        queue = self._queue
        while not queue:
            if self._closed:
                raise WanClosed("link closed")
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._take(queue.popleft())

    def __aiter__(self):
        return self

    async def __anext__(self) -> bytes:
        try:
            return await self.recv()
        except WanClosed:
            raise StopAsyncIteration from None

    async def __aenter__(self):
        await self.connect()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def connect(self):
        return self

    async def close(self) -> None:
        self._mark_closed()


# --------------------------------------------------------------------------------------------
# In-process bridge
# --------------------------------------------------------------------------------------------


class InProcessClient(_ClientBase):
    """A head-end's end of an `InProcessBridge`. `send` returns when the hub's handler returns."""

    def __init__(self, bridge: "InProcessBridge") -> None:
        super().__init__()
        self._bridge = bridge

    def take_stored(self, take: bool = True) -> None:
        self._bridge._set_taker(self, take)

    def _ack(self, seq: int) -> None:
        self._bridge._on_ack(self, seq)

    async def send(self, frame: bytes) -> None:
        if self._closed:
            raise WanClosed("link closed")
        bridge = self._bridge
        if not bridge._link_enabled:
            raise WanDown("WAN is down")
        if type(frame) is not bytes:
            frame = bytes(frame)
        await bridge._down(self, frame)

    async def close(self) -> None:
        self._bridge._remove_client(self)
        self._mark_closed()


class InProcessBridge(HubPort):
    """Head-end and hub in one event loop; `client()` attaches a head-end."""

    def client(self, *, take_stored: bool = True) -> InProcessClient:
        """Attach a head-end; it takes queued frames unless `take_stored=False`."""
        c = InProcessClient(self)
        self._add_client(c, take_stored)
        return c

    def _deliver_up(self, client: InProcessClient, frame: bytes) -> None:
        client._push(frame)

    def _deliver_stored(self, client: InProcessClient, seq: int, frame: bytes) -> None:
        client._push(frame, seq)

    async def close(self) -> None:
        for c in list(self._clients):
            await c.close()
        self.trace_to(None)

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()


# --------------------------------------------------------------------------------------------
# TCP bridge
# --------------------------------------------------------------------------------------------


class _TcpConnection:
    __slots__ = ("writer", "peer", "__weakref__")

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.peer = writer.get_extra_info("peername")

    def __repr__(self) -> str:
        return f"<WAN client {self.peer}>"


class TcpBridge(HubPort):
    """The hub's WAN port as a TCP server (`await start()`; `port` is the bound port).

    Bounds (module doc) are constructor arguments; a client that breaks one is disconnected
    (counted in `stats`, logged); the server carries on.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        max_frame: int = DEFAULT_MAX_FRAME,
        max_buffer: int = 16 * 1024 * 1024,
        max_connections: int = 64,
        idle_timeout: float = 30.0,
        require_client: bool = False,
        ack_timeout: float = 10.0,
    ) -> None:
        super().__init__(require_client=require_client, ack_timeout=ack_timeout)
        self.host = host
        self.port = port
        self.max_frame = max_frame
        self.max_buffer = max_buffer
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self._server: asyncio.AbstractServer | None = None
        self._conn_tasks: set[asyncio.Task] = set()

    async def start(self) -> "TcpBridge":
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        sock = self._server.sockets[0]
        self.port = sock.getsockname()[1]
        log.info("WAN TCP bridge listening on %s:%d", self.host, self.port)
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for conn in list(self._clients):
            conn.writer.close()
        tasks = list(self._conn_tasks)
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            try:
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
            except (asyncio.TimeoutError, Exception):
                pass
            self._server = None
        self.trace_to(None)

    async def __aenter__(self):
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.close()

    def _deliver_up(self, conn: _TcpConnection, frame: bytes) -> None:
        transport = conn.writer.transport
        if transport.is_closing():
            return
        if transport.get_write_buffer_size() > self.max_buffer:
            log.warning("WAN client %s is not reading: disconnected", conn.peer)
            self.stats["slow_readers_closed"] += 1
            conn.writer.close()
            return
        conn.writer.write(len(frame).to_bytes(4, "big") + frame)

    def _deliver_stored(self, conn: _TcpConnection, seq: int, frame: bytes) -> None:
        self._deliver_up(conn, stored_frame(seq, frame))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._clients) >= self.max_connections:
            n = self.stats["connections_refused"] = self.stats["connections_refused"] + 1
            if n & (n - 1) == 0:  # 1, 2, 4, 8 ...: logged, not flooded
                log.warning("WAN client %s refused: %d connections already (%d refused so far)",
                            writer.get_extra_info("peername"), self.max_connections, n)
            writer.close()
            return
        task = asyncio.current_task()
        if task is not None:
            self._conn_tasks.add(task)
        conn = _TcpConnection(writer)
        log.info("WAN client %s connected", conn.peer)
        self._add_client(conn)
        splitter = FrameSplitter(self.max_frame)
        idle = self.idle_timeout
        try:
            while True:
                if splitter.pending and idle:
                    try:
                        data = await asyncio.wait_for(reader.read(65536), idle)
                    except asyncio.TimeoutError:
                        self.stats["idle_closed"] += 1
                        log.warning("WAN client %s: half a frame and nothing for %.0f s; connection closed", conn.peer, idle)
                        break
                else:
                    data = await reader.read(65536)
                if not data:
                    break
                splitter.feed(data)
                while (frame := splitter.next_frame()) is not None:
                    if not self._link_enabled:
                        log.info("WAN down: frame from %s dropped", conn.peer)
                        continue
                    await self._down(conn, frame)
        except FrameError as exc:
            self.stats["frame_errors"] += 1
            log.warning("WAN client %s: %s; connection closed", conn.peer, exc)
        except (ConnectionError, OSError) as exc:
            log.info("WAN client %s: %s", conn.peer, exc)
        except asyncio.CancelledError:
            pass
        finally:
            self._remove_client(conn)
            writer.close()
            try:
                await asyncio.wait_for(writer.wait_closed(), 1.0)
            except (asyncio.TimeoutError, asyncio.CancelledError, Exception):
                pass
            log.info("WAN client %s disconnected", conn.peer)
            if task is not None:
                self._conn_tasks.discard(task)


class TcpClient(_ClientBase):
    """A head-end's connection to a `TcpBridge`: `await connect()` (or `async with`), `send`,
    `recv` / `async for`, `close`."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        super().__init__()
        self.host = host
        self.port = port
        self.max_frame = max_frame
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task | None = None
        self._taking = False

    async def connect(self) -> "TcpClient":
        if self._writer is not None and not self._closed:
            return self
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        self._closed = False
        self._task = asyncio.get_running_loop().create_task(self._read_loop())
        if self._taking:
            self._control(TAKE)
        return self

    def take_stored(self, take: bool = True) -> None:
        if take != self._taking:
            self._taking = take
            self._control(TAKE if take else LEAVE)

    def _ack(self, seq: int) -> None:
        self._control(ack_frame(seq))

    def _control(self, body: bytes) -> None:
        writer = self._writer
        if writer is not None and not self._closed and not writer.transport.is_closing():
            writer.write(len(body).to_bytes(4, "big") + body)

    @property
    def connected(self) -> bool:
        return self._writer is not None and not self._closed

    async def send(self, frame: bytes) -> None:
        if self._writer is None:
            await self.connect()
        if self._closed:
            raise WanClosed("link closed")
        if not 0 < len(frame) <= self.max_frame:
            raise FrameError(f"frame of {len(frame)} bytes (allowed 1..{self.max_frame})")
        writer = self._writer
        assert writer is not None
        writer.write(len(frame).to_bytes(4, "big") + bytes(frame))
        if writer.transport.get_write_buffer_size() > 1 << 20:
            await writer.drain()

    async def _read_loop(self) -> None:
        reader = self._reader
        assert reader is not None
        splitter = FrameSplitter(self.max_frame)
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                splitter.feed(data)
                while (frame := splitter.next_frame()) is not None:
                    if frame[0] == CONTROL:
                        if len(frame) > 10 and frame[1] == STORED:
                            self._push(frame[10:], int.from_bytes(frame[2:10], "big"))
                        elif len(frame) > 2 and frame[1] == FIRMWARE_EVENT:
                            self._push(frame)
                        continue
                    self._push(frame)
        except FrameError as exc:
            log.warning("WAN bridge sent %s; connection closed", exc)
        except (ConnectionError, OSError) as exc:
            log.info("WAN connection lost: %s", exc)
        except asyncio.CancelledError:
            pass
        finally:
            if self._writer is not None:
                self._writer.close()
            self._mark_closed()

    async def close(self) -> None:
        writer = self._writer
        if writer is not None:
            writer.close()
            try:
                await asyncio.wait_for(writer.wait_closed(), 1.0)
            except (asyncio.TimeoutError, Exception):
                pass
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        self._mark_closed()


__all__ = [
    "DEFAULT_MAX_FRAME",
    "FrameError",
    "FrameSplitter",
    "HubPort",
    "InProcessBridge",
    "InProcessClient",
    "TcpBridge",
    "TcpClient",
    "WanClosed",
    "WanDown",
    "WanError",
    "WanLink",
    "ack_frame",
    "encode_frame",
    "stored_frame",
]
