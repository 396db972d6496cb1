"""One TCP listener for many hubs (a fleet worker's): the TCP bridge's framing and control frames
(`wan.bridge` module doc), with each frame routed to the hub of its recipient.

A head-end connects once per worker and sends commands for any device of the worker's premises;
the listener hands each to the hub (`InProcessBridge`) serving that recipient, through an in-
process client it attaches for this connection on first use. Responses and alerts of every hub
the connection uses come back on it; after TAKE the connection is a taker of every hub (it is
attached to all of them), and STORED frames carry a sequence number of the connection (the
hubs' own sequence numbers would collide), which the listener maps back when the head-end
acknowledges. Frames for a recipient no hub serves are dropped, counted in `stats["unrouted"]`.
Bounds as the TCP bridge's (`max_frame`, `max_connections`, `idle_timeout`).
"""
from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import Any

from gbcs.frame import CRA, peek_header

from .bridge import ACK, CONTROL, DEFAULT_MAX_FRAME, LEAVE, TAKE, FrameError, FrameSplitter, InProcessBridge, InProcessClient, stored_frame

log = logging.getLogger(__name__)
_CRA_ALERT = int(CRA.ALERT)


class _Client(InProcessClient):
    """A TCP connection's client of one hub: frames go out on the connection; STORED ones under
    the connection's own sequence numbers, acknowledged when the head-end acknowledges them."""

    def __init__(self, bridge: InProcessBridge, conn: "_Conn") -> None:
        super().__init__(bridge)
        self.conn = conn

    def _push(self, frame: bytes, seq: int | None = None) -> None:
        stats = self.conn.stats
        stats["published"] += 1
        h = peek_header(frame)
        if h is not None and h[0] == _CRA_ALERT:
            stats["alerts"] += 1
        self.conn.write(frame if seq is None else stored_frame(self.conn.map_stored(self, seq), frame))


class _Conn:
    __slots__ = ("writer", "clients", "taking", "seq", "stored", "peer", "stats")

    def __init__(self, writer: asyncio.StreamWriter, stats: dict[str, int]) -> None:
        self.writer = writer
        self.stats = stats
        self.peer = writer.get_extra_info("peername")
        self.clients: dict[int, _Client] = {}  # id(hub bridge) -> client
        self.taking = False
        self.seq = 0
        self.stored: OrderedDict[int, tuple[_Client, int]] = OrderedDict()

    def write(self, body: bytes) -> None:
        if not self.writer.transport.is_closing():
            self.writer.write(len(body).to_bytes(4, "big") + body)

    def map_stored(self, client: _Client, hub_seq: int) -> int:
        self.seq += 1
        self.stored[self.seq] = (client, hub_seq)
        return self.seq

    def ack(self, upto: int) -> None:
        stored = self.stored
        while stored:
            seq = next(iter(stored))
            if seq > upto:
                break
            client, hub_seq = stored.pop(seq)
            client._ack(hub_seq)


class FleetTcpServer:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, max_frame: int = DEFAULT_MAX_FRAME,
                 max_connections: int = 64, idle_timeout: float = 30.0) -> None:
        self.host = host
        self.port = port
        self.max_frame = max_frame
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self.hubs: list[InProcessBridge] = []
        self._routes: dict[bytes, InProcessBridge] = {}
        self._conns: set[_Conn] = set()
        self._server: asyncio.AbstractServer | None = None
        self.stats: dict[str, int] = {"received": 0, "published": 0, "unrouted": 0, "connections_refused": 0,
                                      "frame_errors": 0, "idle_closed": 0, "alerts": 0, "dropped": 0}

    def hub(self, chf: bytes) -> InProcessBridge:
        """A new hub's WAN port (WAN down until a head-end takes its queued frames)."""
        bridge = InProcessBridge(require_client=True)
        self.hubs.append(bridge)
        self._routes[chf] = bridge
        return bridge

    def route(self, premises: Any) -> None:
        """Route frames for every device of `premises` to its hub."""
        for device in premises.devices:
            self._routes[device.eui] = premises.bridge

    async def start(self) -> "FleetTcpServer":
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("fleet WAN listener on %s:%d for %d hubs", self.host, self.port, len(self.hubs))
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for conn in list(self._conns):
            conn.writer.close()
        self._server = None

    def _client(self, conn: _Conn, bridge: InProcessBridge) -> _Client:
        c = conn.clients.get(id(bridge))
        if c is None:
            c = conn.clients[id(bridge)] = _Client(bridge, conn)
            bridge._add_client(c, conn.taking)
        return c

    def _take(self, conn: _Conn, take: bool) -> None:
        conn.taking = take
        for bridge in self.hubs:
            self._client(conn, bridge).take_stored(take)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._conns) >= self.max_connections:
            self.stats["connections_refused"] += 1
            writer.close()
            return
        conn = _Conn(writer, self.stats)
        self._conns.add(conn)
        splitter = FrameSplitter(self.max_frame)
        try:
            while True:
                if splitter.pending and self.idle_timeout:
                    try:
                        data = await asyncio.wait_for(reader.read(65536), self.idle_timeout)
                    except asyncio.TimeoutError:
                        self.stats["idle_closed"] += 1
                        break
                else:
                    data = await reader.read(65536)
                if not data:
                    break
                splitter.feed(data)
                while (frame := splitter.next_frame()) is not None:
                    if frame[0] == CONTROL:
                        if frame == TAKE:
                            self._take(conn, True)
                        elif frame == LEAVE:
                            self._take(conn, False)
                        elif len(frame) == 10 and frame[1] == ACK:
                            conn.ack(int.from_bytes(frame[2:10], "big"))
                        continue
                    self.stats["received"] += 1
                    h = peek_header(frame)
                    bridge = self._routes.get(h[3]) if h is not None else None
                    if bridge is None:
                        self.stats["unrouted"] += 1
                        continue
                    await bridge._down(self._client(conn, bridge), frame)
        except FrameError as exc:
            self.stats["frame_errors"] += 1
            log.warning("fleet WAN client %s: %s; connection closed", conn.peer, exc)
        except (ConnectionError, OSError, asyncio.CancelledError):
            pass
        finally:
            self._conns.discard(conn)
            for c in conn.clients.values():
                c._bridge._remove_client(c)
                c._mark_closed()
            writer.close()


class FleetTcpLink:
    """A head-end's link to a TCP fleet of several listeners (one per worker process): one
    `TcpClient` each, a frame sent to the listener serving its recipient (`routes`: recipient
    EUI -> listener index), frames up from all of them to one receiver."""

    def __init__(self, listeners: list[tuple[str, int]], routes: dict[bytes, int]) -> None:
        from .bridge import TcpClient

        self.clients = [TcpClient(host, port) for host, port in listeners]
        self.routes = routes

    async def connect(self) -> "FleetTcpLink":
        for c in self.clients:
            await c.connect()
        return self

    def set_receiver(self, on_frame, on_close=None) -> None:
        for c in self.clients:
            c.set_receiver(on_frame, on_close)

    def take_stored(self, take: bool = True) -> None:
        for c in self.clients:
            c.take_stored(take)

    async def send(self, frame: bytes) -> None:
        h = peek_header(frame)
        index = self.routes.get(h[3], 0) if h is not None else 0
        await self.clients[index].send(frame)

    async def recv(self) -> bytes:
        return await self.clients[0].recv()

    async def close(self) -> None:
        for c in self.clients:
            await c.close()
