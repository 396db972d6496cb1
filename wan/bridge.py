"""WAN bridges: the hub's WAN port and the head-end's link to it.

The hub side is a `HubPort`: the CHF registers one `on_frame` handler for frames coming down from
the head-end and calls `send_up` for responses and alerts. Two transports implement it:

- `InProcessBridge`: head-end and hub in one event loop. A frame is handed over as the same
  `bytes` object with at most one await, so a hop costs a few microseconds.
- `TcpBridge`: an asyncio TCP server; each frame is prefixed by a 4-byte big-endian length.

On the head-end side both give a client ("link") with `send`, `recv` / `async for`, `close`, and
`set_receiver` (frames delivered by callback, skipping a queue and a task switch).

Routing of frames going up, when several clients are attached: a response goes to the client that
sent the command with the same originator counter (command originator == response recipient);
anything unmatched, and every alert, goes to all clients.

The WAN can be cut for tests (`set_link(False)`): `send_up` then raises `WanDown`, and frames
from head-ends are lost (in-process `send` raises `WanDown`; over TCP they are dropped, as a real
outage would). Buffering during an outage is the CHF's job, not the bridge's.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections import deque
from typing import Any, Awaitable, Callable, Iterable, Protocol

from gbcs.frame import peek_header

log = logging.getLogger(__name__)

DEFAULT_MAX_FRAME = 64 * 1024
_MAX_INFLIGHT = 65536  # remembered (originator, counter) -> client entries, oldest dropped first

FrameHandler = Callable[[bytes], Awaitable[None]]
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

    - `on_frame(handler)`: the CHF's coroutine for frames coming down (one handler). Over TCP the
      frames of one connection are handed over in order, one at a time (reading pauses while the
      handler runs, so it should queue work rather than wait for a HAN round trip); in-process,
      each `send` awaits the handler directly.
    - `await send_up(frame)`: a response or alert going up; raises `WanDown` while `up` is False.
    - `up`, `set_link(up)`, `on_link_change(callback)`, `await wait_up()`: link state.
      With `require_client=True` the WAN only counts as up while a head-end is attached, so the
      CHF keeps its alerts until one connects.
    - `trace_to(path)`: append one JSON line per frame crossing the bridge.
    """

    def __init__(self, *, require_client: bool = False) -> None:
        self.require_client = require_client
        self._handler: FrameHandler | None = None
        self._link_enabled = True
        self._up = not require_client
        self._up_event = asyncio.Event()
        if self._up:
            self._up_event.set()
        self._listeners: list[LinkListener] = []
        self._clients: list[Any] = []
        self._inflight: dict[tuple[bytes, int], Any] = {}
        self._trace_file = None
        self._tasks: set[asyncio.Task] = set()

    # -- hub-facing API ----------------------------------------------------------------------
    def on_frame(self, handler: FrameHandler | None) -> None:
        """Register the coroutine that receives frames coming down from the head-end."""
        self._handler = handler

    @property
    def up(self) -> bool:
        return self._up

    async def send_up(self, frame: bytes) -> None:
        if not self._up:
            raise WanDown("WAN is down")
        if self._trace_file is not None:
            self._trace("up", frame)
        clients = self._clients
        if len(clients) > 1:
            clients = self._route(frame)
        elif not clients:
            log.debug("WAN frame up with no head-end attached: dropped")
            return
        for client in clients:
            self._deliver_up(client, frame)

    def set_link(self, up: bool) -> None:
        """Cut (False) or restore (True) the WAN, for tests and outage scenarios."""
        self._link_enabled = bool(up)
        self._update_up()

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

    # -- tracing ---------------------------------------------------------------------------
    def trace_to(self, path: str | os.PathLike | None) -> None:
        """Append `{"t", "dir", "hex"}` JSON lines for every WAN frame to `path` (None stops)."""
        if self._trace_file is not None:
            self._trace_file.close()
            self._trace_file = None
        if path is not None:
            self._trace_file = open(path, "a", encoding="ascii", buffering=1)

    def _trace(self, direction: str, frame: bytes) -> None:
        f = self._trace_file
        if f is None:
            return
        f.write(json.dumps({"t": time.time(), "dir": direction, "hex": frame.hex().upper()}) + "\n")
        f.flush()

    # -- shared plumbing -----------------------------------------------------------------------
    def _update_up(self) -> None:
        new = self._link_enabled and (not self.require_client or bool(self._clients))
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

    def _add_client(self, client: Any) -> None:
        self._clients.append(client)
        if self.require_client:
            self._update_up()

    def _remove_client(self, client: Any) -> None:
        if client in self._clients:
            self._clients.remove(client)
        if self.require_client:
            self._update_up()

    async def _down(self, client: Any, frame: bytes) -> None:
        """A frame from a head-end client: note it for routing and hand it to the hub."""
        if self._trace_file is not None:
            self._trace("down", frame)
        if len(self._clients) > 1:
            h = peek_header(frame)
            if h is not None and h[0] == 1:
                inflight = self._inflight
                if len(inflight) >= _MAX_INFLIGHT:
                    inflight.pop(next(iter(inflight)))
                inflight[(h[2], h[1])] = client
        handler = self._handler
        if handler is None:
            log.warning("WAN frame down but no hub handler registered: dropped")
            return
        try:
            await handler(frame)
        except Exception:
            log.exception("hub WAN handler failed on frame %s", frame[:40].hex().upper())

    def _route(self, frame: bytes) -> Iterable[Any]:
        h = peek_header(frame)
        if h is not None and h[0] == 2:
            key = (h[3], h[1])
            client = self._inflight.get(key)
            if client is not None:
                if h[4]:
                    del self._inflight[key]
                if client in self._clients:
                    return (client,)
        return list(self._clients)

    def _deliver_up(self, client: Any, frame: bytes) -> None:
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
    """Frames up are handed to the receiver callback if one is set, else queued for `recv`."""

    def __init__(self) -> None:
        self._queue: deque[bytes] = deque()
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
                self._call_receiver(on_frame, self._queue.popleft())

    def _call_receiver(self, receiver: Receiver, frame: bytes) -> None:
        try:
            receiver(frame)
        except Exception:
            log.exception("WAN receiver failed")

    def _push(self, frame: bytes) -> None:
        receiver = self._receiver
        if receiver is not None:
            self._call_receiver(receiver, frame)
            return
        self._queue.append(frame)
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
        return self._queue.popleft() if self._queue else None

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
        return queue.popleft()

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

    async def send(self, frame: bytes) -> None:
        if self._closed:
            raise WanClosed("link closed")
        bridge = self._bridge
        if not bridge._up:
            raise WanDown("WAN is down")
        if type(frame) is not bytes:
            frame = bytes(frame)
        await bridge._down(self, frame)

    async def close(self) -> None:
        self._bridge._remove_client(self)
        self._mark_closed()


class InProcessBridge(HubPort):
    """Head-end and hub in one event loop; `client()` attaches a head-end."""

    def client(self) -> InProcessClient:
        c = InProcessClient(self)
        self._add_client(c)
        return c

    def _deliver_up(self, client: InProcessClient, frame: bytes) -> None:
        client._push(frame)

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
    __slots__ = ("writer", "peer")

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.peer = writer.get_extra_info("peername")

    def __repr__(self) -> str:
        return f"<WAN client {self.peer}>"


class TcpBridge(HubPort):
    """The hub's WAN port as a TCP server (`await start()`; `port` is the bound port).

    A client that sends a bad length prefix is disconnected (logged); the server carries on. A
    client that stops reading is disconnected once `max_buffer` bytes are waiting for it.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        max_frame: int = DEFAULT_MAX_FRAME,
        max_buffer: int = 16 * 1024 * 1024,
        require_client: bool = False,
    ) -> None:
        super().__init__(require_client=require_client)
        self.host = host
        self.port = port
        self.max_frame = max_frame
        self.max_buffer = max_buffer
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
            conn.writer.close()
            return
        conn.writer.write(len(frame).to_bytes(4, "big") + frame)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._conn_tasks.add(task)
        conn = _TcpConnection(writer)
        log.info("WAN client %s connected", conn.peer)
        self._add_client(conn)
        splitter = FrameSplitter(self.max_frame)
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                splitter.feed(data)
                while (frame := splitter.next_frame()) is not None:
                    if not self._up:
                        log.info("WAN down: frame from %s dropped", conn.peer)
                        continue
                    await self._down(conn, frame)
        except FrameError as exc:
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

    async def connect(self) -> "TcpClient":
        if self._writer is not None and not self._closed:
            return self
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        self._closed = False
        self._task = asyncio.get_running_loop().create_task(self._read_loop())
        return self

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
    "encode_frame",
]
