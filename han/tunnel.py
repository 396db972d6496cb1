"""The GB-HGRP tunnel endpoints: GBCS Remote Party Messages over the ZSE Tunneling cluster (0x0704).

The wire format (commands, ZCL frames, GB-HGRP GET / GET-RESPONSE / PUT) is `gbcs.hgrp`; this
module runs tunnels over a `HanPort`, with timers and queues:

- `TunnelServer` accepts RequestTunnel (the ESME/PPMID/HCALCS for the CHF's tunnels, and the CHF
  for the GSME's tunnel); `TunnelClient` requests the tunnel (the CHF towards the ESME/PPMID/
  HCALCS, and the GSME towards the CHF). Both give `await send_gbcs(...)` and call
  `on_message(peer_eui, message)` for every GBCS message received.
- `TunnelHost`: one device's server and clients behind one port, for the CHF which is both.

Large GBCS messages pass through whole: APS fragmentation is the radio's business, and GBCS-level
splitting (GBT) belongs to the devices.
"""
from __future__ import annotations

import asyncio
import inspect
import logging
from collections import deque
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Awaitable, Callable, ClassVar, Iterable

from gbcs.codec import DecodeError
from gbcs.hgrp import (
    DEFAULT_MAX_TRANSFER_SIZE,
    GB_HGRP_MANUFACTURER_CODE,
    GB_HGRP_PROTOCOL_ID,
    HGRP_PUT,
    INVALID_TUNNEL_ID,
    CloseTunnel,
    Get,
    GetResponse,
    GetSupportedTunnelProtocols,
    Put,
    Raw,
    RequestTunnel,
    RequestTunnelResponse,
    SupportedTunnelProtocolsResponse,
    TransferData,
    TransferDataError,
    TransferDataStatus,
    TunnelClosureNotification,
    TunnelCommand,
    TunnelFrame,
    TunnelStatus,
    decode_tunnel_data,
    decode_tunnel_frame,
    encode_tunnel_command,
    recognise_transfer_data,
    transfer_data_frame,
)
from gbcs.zcl import FC_DIRECTION, FC_FRAME_TYPE, Direction

from .aps import TUNNELING_CLUSTER, ApsFrame, HanError
from .transport import Clock, HanPort, LoopClock, spawn

log = logging.getLogger("gbhub.han")

#: The CHF re-requests its tunnels this often (seconds since the last RequestTunnelResponse).
TUNNEL_REFRESH_INTERVAL = 0xFFFF
#: Retry delay after a Busy RequestTunnelResponse (seconds).
BUSY_RETRY_DELAY = 180.0


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


class TunnelError(HanError):
    """A tunnel could not carry a message."""


class TunnelRejected(TunnelError):
    """RequestTunnel answered with a non-success status (after the retries it deserves)."""

    def __init__(self, status: int, message: str = "") -> None:
        self.status = status
        name = _status_name(TunnelStatus, status)
        super().__init__(message or f"tunnel request rejected: {name}")


class TunnelTimeout(TunnelError):
    """No answer from the peer in time (or the request was lost on the air every attempt)."""


class NoTunnel(TunnelError):
    """The server has no tunnel from that (non-sleepy) client, so it cannot send to it."""


class QueueFull(TunnelError):
    """The queue of messages waiting for a sleepy device is full; the message was dropped."""


def _status_name(enum: type[IntEnum], value: int) -> str:
    try:
        return enum(value).name
    except ValueError:
        return f"0x{value:02X}"


# ---------------------------------------------------------------------------------------------
# Endpoints
# ---------------------------------------------------------------------------------------------

#: on_message(peer_eui, gbcs_message); on_error(peer_eui, TransferDataStatus or other code).
MessageCallback = Callable[[bytes, bytes], "Awaitable[Any] | None"]
ErrorCallback = Callable[[bytes, int], "Awaitable[Any] | None"]


def _notify(callback: Callable[..., Any] | None, *args: Any) -> "Awaitable[Any] | None":
    """Call a sync-or-async application callback from a receive path: a plain function runs
    inline; a coroutine is returned for the transport (or `spawn`) to run. Failures are logged."""
    if callback is None:
        return None
    try:
        result = callback(*args)
    except Exception:
        log.exception("tunnel application callback failed")
        return None
    if result is not None and inspect.isawaitable(result):
        return result
    return None


class TunnelEndpoint:
    """What servers and clients share: the port, the clock, the ZCL sequence, and callbacks.

    `handle(frame)` is a `Receiver` for Tunneling-cluster frames: it returns an awaitable when it
    has to answer (so the transport runs it as a task) and None otherwise."""

    expected_direction: ClassVar[Direction]  # of frames received
    send_direction: ClassVar[Direction]  # of frames sent

    def __init__(
        self,
        port: HanPort,
        *,
        endpoint: int = 1,
        clock: Clock | None = None,
        on_message: MessageCallback | None = None,
        on_error: ErrorCallback | None = None,
        max_incoming_transfer_size: int = DEFAULT_MAX_TRANSFER_SIZE,
    ) -> None:
        self.port = port
        self.eui: bytes = port.eui
        self.endpoint = endpoint
        self.clock: Clock = clock if clock is not None else LoopClock()
        self.on_message = on_message
        self.on_error = on_error
        self.max_incoming_transfer_size = max_incoming_transfer_size
        self.errors = 0  # malformed or unexpected tunnel frames received
        self._sequence = 0

    def _next_sequence(self) -> int:
        self._sequence = (self._sequence + 1) & 0xFF
        return self._sequence

    async def _send(
        self,
        dst: bytes,
        dst_endpoint: int,
        command: TunnelCommand,
        sequence: int | None = None,
    ) -> bool:
        seq = self._next_sequence() if sequence is None else sequence
        if type(command) is TransferData:
            payload = transfer_data_frame(self.send_direction, seq, command.tunnel_id, command.data)
        else:
            payload = encode_tunnel_command(command, self.send_direction, seq)
        return await self.port.send(
            ApsFrame(self.eui, dst, self.endpoint, dst_endpoint, TUNNELING_CLUSTER, payload)
        )

    def _decode(self, frame: ApsFrame) -> TunnelFrame | None:
        try:
            decoded = decode_tunnel_frame(frame.payload)
        except DecodeError as exc:
            if frame.payload[:1] and not frame.payload[0] & FC_FRAME_TYPE:
                log.debug("ignoring global ZCL command on the tunnel cluster from %s", frame.src.hex())
                return None
            self.errors += 1
            log.warning("bad tunnel frame from %s: %s", frame.src.hex().upper(), exc)
            return None
        if decoded.header.direction != self.expected_direction:
            self.errors += 1
            log.warning("tunnel frame from %s in the wrong direction", frame.src.hex().upper())
            return None
        return decoded

    def _deliver(self, peer: bytes, message: bytes) -> "Awaitable[Any] | None":
        return _notify(self.on_message, peer, message)

    def handle(self, frame: ApsFrame) -> "Awaitable[Any] | None":  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass(slots=True)
class ServerTunnel:
    """One tunnel a server has granted."""

    tunnel_id: int
    eui: bytes
    endpoint: int
    max_transfer_size: int


class QueueJournal:
    """Where a `TunnelServer` keeps its sleepy clients' queues across restarts (the CHF's NVM)."""

    def add(self, eui: bytes, queued_at: float, message: bytes) -> Any:  # pragma: no cover - interface
        """Store one queued message durably; returns its key."""
        raise NotImplementedError

    def remove(self, eui: bytes, key: Any, fetched: bool) -> None:  # pragma: no cover - interface
        """Forget one message: `fetched` by the client, or else discarded (expired)."""
        raise NotImplementedError


class TunnelServer(TunnelEndpoint):
    """Accepts RequestTunnel and carries GBCS messages to and from its clients.

    `accept(client_eui)` (optional) decides on each RequestTunnel: return a `TunnelStatus`
    (SUCCESS grants it, BUSY / NO_MORE_TUNNEL_IDS are sent back), True/False, or None to ignore
    the request (a device not in the Device Log). A client that asks again gets its existing
    tunnel id back, so periodic re-requests never exhaust the ids.

    Sleepy clients (`sleepy=`, `set_sleepy`, or any client that sends a GET) never receive pushed
    data: `send_gbcs` queues for them (at most `queue_limit`, kept `queue_timeout` seconds) and
    each GET pops one message. `on_pending(eui, count)` follows the queue length (the CHF sets
    "Tunnel Message Pending" from it); `on_discard(eui, message)` reports expired messages (the
    CHF logs 0x819D). `journal` (optional, a `QueueJournal`) keeps the queues in NVM: each message
    is written before `send_gbcs` returns and removed once fetched or discarded; `restore` puts
    the stored ones back after a restart."""

    expected_direction = Direction.CLIENT_TO_SERVER
    send_direction = Direction.SERVER_TO_CLIENT

    def __init__(
        self,
        port: HanPort,
        *,
        endpoint: int = 1,
        clock: Clock | None = None,
        on_message: MessageCallback | None = None,
        on_error: ErrorCallback | None = None,
        accept: Callable[[bytes], "int | bool | None"] | None = None,
        max_tunnels: int = 16,
        max_incoming_transfer_size: int = DEFAULT_MAX_TRANSFER_SIZE,
        enforce_transfer_size: bool = False,
        sleepy: Iterable[bytes] = (),
        queue_limit: int = 32,
        queue_timeout: float | None = 86400.0,
        on_pending: Callable[[bytes, int], Any] | None = None,
        on_discard: Callable[[bytes, bytes], Any] | None = None,
        journal: "QueueJournal | None" = None,
    ) -> None:
        super().__init__(
            port,
            endpoint=endpoint,
            clock=clock,
            on_message=on_message,
            on_error=on_error,
            max_incoming_transfer_size=max_incoming_transfer_size,
        )
        self.accept = accept
        self.max_tunnels = max_tunnels
        self.enforce_transfer_size = enforce_transfer_size
        self.queue_limit = queue_limit
        self.queue_timeout = queue_timeout
        self.on_pending = on_pending
        self.on_discard = on_discard
        self.journal = journal
        self.tunnels: dict[int, ServerTunnel] = {}
        self._by_eui: dict[bytes, ServerTunnel] = {}
        self._sleepy: set[bytes] = set(sleepy)
        self._queues: dict[bytes, deque[tuple[float, bytes, Any]]] = {}  # (queued at, message, journal key)
        self._next_id = 0
        self.dropped = 0  # messages refused because a sleepy device's queue was full
        self.expired = 0  # messages discarded because the sleepy device did not fetch them in time

    # -- state ------------------------------------------------------------------------------

    def tunnel_for(self, eui: bytes) -> ServerTunnel | None:
        return self._by_eui.get(eui)

    def set_sleepy(self, eui: bytes, sleepy: bool = True) -> None:
        if sleepy:
            self._sleepy.add(eui)
        else:
            self._sleepy.discard(eui)

    def is_sleepy(self, eui: bytes) -> bool:
        return eui in self._sleepy

    def pending(self, eui: bytes) -> int:
        queue = self._queues.get(eui)
        return len(queue) if queue else 0

    def _allocate_id(self) -> int | None:
        if len(self.tunnels) >= min(self.max_tunnels, INVALID_TUNNEL_ID):
            return None
        while True:
            tunnel_id = self._next_id
            self._next_id = (self._next_id + 1) % INVALID_TUNNEL_ID
            if tunnel_id not in self.tunnels:
                return tunnel_id

    def _forget(self, tunnel: ServerTunnel) -> None:
        self.tunnels.pop(tunnel.tunnel_id, None)
        if self._by_eui.get(tunnel.eui) is tunnel:
            del self._by_eui[tunnel.eui]

    # -- sending ----------------------------------------------------------------------------

    async def send_gbcs(self, eui: bytes, message: bytes) -> bool:
        """Send a GBCS message to client `eui`: queued if it is sleepy (True once queued),
        else TransferData on its tunnel (True when the link accepted it, False if lost).
        Raises NoTunnel, QueueFull or the link's HanError."""
        if not message:
            raise ValueError("empty GBCS message")
        if eui in self._sleepy:
            self._enqueue(eui, message)
            return True
        tunnel = self._by_eui.get(eui)
        if tunnel is None:
            raise NoTunnel(f"no tunnel from {eui.hex().upper()}")
        return await self._send(tunnel.eui, tunnel.endpoint, TransferData(tunnel.tunnel_id, message))

    def _enqueue(self, eui: bytes, message: bytes) -> None:
        self._expire_queue(eui)
        queue = self._queues.get(eui)
        if queue is None:
            queue = self._queues[eui] = deque()
        if len(queue) >= self.queue_limit:
            self.dropped += 1
            raise QueueFull(f"queue for {eui.hex().upper()} is full ({self.queue_limit})")
        now = self.clock.now()
        key = self.journal.add(eui, now, message) if self.journal is not None else None
        queue.append((now, message, key))
        self._pending_changed(eui, len(queue))

    def restore(self, eui: bytes, queued_at: float, message: bytes, key: Any) -> None:
        """Put back a message the journal kept over a restart (oldest first; not journalled again)."""
        self._sleepy.add(eui)
        self._queues.setdefault(eui, deque()).append((queued_at, message, key))
        self._pending_changed(eui, len(self._queues[eui]))

    def _unjournal(self, eui: bytes, key: Any, fetched: bool) -> None:
        if self.journal is not None and key is not None:
            self.journal.remove(eui, key, fetched)

    def _pending_changed(self, eui: bytes, count: int) -> None:
        result = _notify(self.on_pending, eui, count)
        if result is not None:
            spawn(result)

    def _expire_queue(self, eui: bytes) -> int:
        queue = self._queues.get(eui)
        if not queue or self.queue_timeout is None:
            return 0
        limit = self.clock.now() - self.queue_timeout
        gone = 0
        while queue and queue[0][0] <= limit:
            _, message, key = queue.popleft()
            self._unjournal(eui, key, False)
            gone += 1
            self.expired += 1
            result = _notify(self.on_discard, eui, message)
            if result is not None:
                spawn(result)
        if gone:
            self._pending_changed(eui, len(queue))
        return gone

    def expire(self) -> int:
        """Discard every queued message older than `queue_timeout`; returns how many. Queues are
        also swept whenever they are used, so call this only to report expiries on time."""
        return sum(self._expire_queue(eui) for eui in list(self._queues))

    async def close(self, eui: bytes) -> bool:
        """Close the tunnel from `eui` (TunnelClosureNotification). False if there was none."""
        tunnel = self._by_eui.get(eui)
        if tunnel is None:
            return False
        self._forget(tunnel)
        await self._send(tunnel.eui, tunnel.endpoint, TunnelClosureNotification(tunnel.tunnel_id))
        return True

    # -- receiving --------------------------------------------------------------------------

    def handle(self, frame: ApsFrame) -> "Awaitable[Any] | None":
        command = recognise_transfer_data(frame.payload, self.expected_direction)
        if command is not None:
            return self._on_transfer_data(frame, command)
        decoded = self._decode(frame)
        if decoded is None:
            return None
        command = decoded.command
        if type(command) is TransferData:
            return self._on_transfer_data(frame, command)
        if type(command) is RequestTunnel:
            return self._on_request_tunnel(frame, decoded.header.sequence, command)
        if type(command) is CloseTunnel:
            tunnel = self.tunnels.get(command.tunnel_id)
            if tunnel is not None and tunnel.eui == frame.src:
                self._forget(tunnel)
            return None
        if type(command) is TransferDataError:
            tunnel = self.tunnels.get(command.tunnel_id)
            if tunnel is not None and tunnel.eui == frame.src and command.status == TransferDataStatus.NO_SUCH_TUNNEL:
                self._forget(tunnel)  # the client no longer knows it
            log.warning("TransferDataError %s from %s", _status_name(TransferDataStatus, command.status), frame.src.hex().upper())
            return _notify(self.on_error, frame.src, command.status)
        if type(command) is GetSupportedTunnelProtocols:
            protocols = ((GB_HGRP_MANUFACTURER_CODE, GB_HGRP_PROTOCOL_ID),)[command.protocol_offset :]
            return self._send(
                frame.src, frame.src_endpoint, SupportedTunnelProtocolsResponse(True, protocols), decoded.header.sequence
            )
        return None  # AckTransferData / ReadyData: flow control is never agreed

    def _on_request_tunnel(self, frame: ApsFrame, sequence: int, request: RequestTunnel) -> "Awaitable[Any] | None":
        client = frame.src
        if request.protocol_id != GB_HGRP_PROTOCOL_ID or request.manufacturer_code != GB_HGRP_MANUFACTURER_CODE:
            status = TunnelStatus.PROTOCOL_NOT_SUPPORTED
        elif request.flow_control_support:
            status = TunnelStatus.FLOW_CONTROL_NOT_SUPPORTED
        else:
            status = TunnelStatus.SUCCESS
            if self.accept is not None:
                verdict = self.accept(client)
                if verdict is None or verdict is False:
                    log.info("RequestTunnel from %s ignored", client.hex().upper())
                    return None
                if verdict is not True:
                    status = int(verdict)
                    if status in TunnelStatus._value2member_map_:
                        status = TunnelStatus(status)
        tunnel_id = INVALID_TUNNEL_ID
        if status == TunnelStatus.SUCCESS:
            tunnel = self._by_eui.get(client)
            if tunnel is None:
                new_id = self._allocate_id()
                if new_id is None:
                    status = TunnelStatus.NO_MORE_TUNNEL_IDS
                else:
                    tunnel = ServerTunnel(new_id, client, frame.src_endpoint, request.max_incoming_transfer_size)
                    self.tunnels[new_id] = tunnel
                    self._by_eui[client] = tunnel
            else:
                tunnel.endpoint = frame.src_endpoint
                tunnel.max_transfer_size = request.max_incoming_transfer_size
            if tunnel is not None:
                tunnel_id = tunnel.tunnel_id
        response = RequestTunnelResponse(tunnel_id, status, self.max_incoming_transfer_size)
        return self._send(client, frame.src_endpoint, response, sequence)

    def _on_transfer_data(self, frame: ApsFrame, command: TransferData) -> "Awaitable[Any] | None":
        tunnel = self.tunnels.get(command.tunnel_id)
        status = None
        if tunnel is None:
            status = TransferDataStatus.NO_SUCH_TUNNEL
        elif tunnel.eui != frame.src:
            status = TransferDataStatus.WRONG_DEVICE
        elif self.enforce_transfer_size and len(command.data) > self.max_incoming_transfer_size:
            status = TransferDataStatus.DATA_OVERFLOW
        if status is not None:
            self.errors += 1
            return self._send(frame.src, frame.src_endpoint, TransferDataError(command.tunnel_id, status))
        raw = command.data
        if raw and raw[0] > HGRP_PUT:  # a plain GBCS message (DD/DF): no GB-HGRP wrapper to read
            return self._deliver(frame.src, raw)
        try:
            data = decode_tunnel_data(raw)
        except DecodeError as exc:
            self.errors += 1
            log.warning("bad tunnel data from %s: %s", frame.src.hex().upper(), exc)
            return None
        kind = type(data)
        if kind is Raw or kind is Put:
            return self._deliver(frame.src, data.message)
        if kind is Get:
            self._sleepy.add(frame.src)
            return self._serve_get(tunnel)
        self.errors += 1  # a GET-RESPONSE travels server → client only
        log.warning("GET-RESPONSE sent to a tunnel server by %s", frame.src.hex().upper())
        return None

    async def _serve_get(self, tunnel: ServerTunnel) -> None:
        eui = tunnel.eui
        self._expire_queue(eui)
        queue = self._queues.get(eui)
        if queue:
            entry = queue.popleft()
            response = GetResponse(min(len(queue), 0xFF), entry[1])
        else:
            entry = None
            response = GetResponse()
        try:
            delivered = await self._send(eui, tunnel.endpoint, TransferData(tunnel.tunnel_id, response.encode()))
        except HanError as exc:
            log.warning("GET-RESPONSE to %s failed: %s", eui.hex().upper(), exc)
            delivered = False
        if entry is not None:
            if not delivered:
                queue.appendleft(entry)  # keep it for the next GET
            else:
                self._unjournal(eui, entry[2], True)  # fetched: the GSME executes and answers it
                self._pending_changed(eui, len(queue))


class TunnelClient(TunnelEndpoint):
    """Requests a tunnel to `server_eui` and carries GBCS messages over it.

    The tunnel is set up on first use (or by `open()`); Busy is retried after `busy_retry`
    seconds, No More Tunnel IDs after closing the client's stale tunnels, up to `max_attempts`
    requests in all. A sleepy client (the GSME) sends PUTs and pulls its messages with `poll()`.
    Every GBCS message received, including those a GET returns, goes to `on_message`."""

    expected_direction = Direction.SERVER_TO_CLIENT
    send_direction = Direction.CLIENT_TO_SERVER

    def __init__(
        self,
        port: HanPort,
        server_eui: bytes,
        *,
        endpoint: int = 1,
        server_endpoint: int = 1,
        clock: Clock | None = None,
        on_message: MessageCallback | None = None,
        on_error: ErrorCallback | None = None,
        sleepy: bool = False,
        max_incoming_transfer_size: int = DEFAULT_MAX_TRANSFER_SIZE,
        response_timeout: float = 10.0,
        busy_retry: float = BUSY_RETRY_DELAY,
        max_attempts: int = 3,
    ) -> None:
        super().__init__(
            port,
            endpoint=endpoint,
            clock=clock,
            on_message=on_message,
            on_error=on_error,
            max_incoming_transfer_size=max_incoming_transfer_size,
        )
        self.server_eui = server_eui
        self.server_endpoint = server_endpoint
        self.sleepy = sleepy
        self.response_timeout = response_timeout
        self.busy_retry = busy_retry
        self.max_attempts = max_attempts
        self.tunnel_id: int | None = None
        self.server_max_transfer_size: int | None = None
        self.opened_at: float | None = None  # clock time of the last successful response
        self._stale: list[int] = []
        self._lock = asyncio.Lock()
        self._waiting_open: asyncio.Future | None = None
        self._waiting_get: asyncio.Future | None = None

    # -- tunnel set-up ----------------------------------------------------------------------

    async def open(self, force: bool = False) -> int:
        """The tunnel id, requesting a tunnel if there is none (or if `force`, e.g. the CHF's
        periodic re-request; the old id stays usable until the answer). Raises TunnelRejected,
        TunnelTimeout or the link's HanError."""
        if self.tunnel_id is not None and not force:
            return self.tunnel_id
        async with self._lock:
            if self.tunnel_id is not None and not force:
                return self.tunnel_id
            return await self._open()

    async def _open(self) -> int:
        last: int | None = None  # None: no answer
        for attempt in range(1, self.max_attempts + 1):
            response = await self._request()
            if response is None:
                last = None
                continue
            status = response.status
            if status == TunnelStatus.SUCCESS:
                return response.tunnel_id  # adopted by handle() as it arrived
            last = status
            if status == TunnelStatus.BUSY:
                if attempt < self.max_attempts:
                    await self.clock.sleep(self.busy_retry)
                continue
            if status == TunnelStatus.NO_MORE_TUNNEL_IDS:
                if self.tunnel_id is not None:
                    self._stale.append(self.tunnel_id)
                    self.tunnel_id = None
                if self._stale:
                    await self._close_stale()
                elif attempt < self.max_attempts:
                    await self.clock.sleep(self.busy_retry)
                continue
            raise TunnelRejected(status)
        if last is None:
            raise TunnelTimeout(f"no RequestTunnelResponse from {self.server_eui.hex().upper()}")
        raise TunnelRejected(last)

    def _adopt(self, response: RequestTunnelResponse) -> None:
        # Done as the response arrives, so data the server sends right after it is accepted.
        if self.tunnel_id is not None and self.tunnel_id != response.tunnel_id:
            self._stale.append(self.tunnel_id)
        self.tunnel_id = response.tunnel_id
        self.server_max_transfer_size = response.max_incoming_transfer_size
        self.opened_at = self.clock.now()
        if response.tunnel_id in self._stale:
            self._stale.remove(response.tunnel_id)

    async def _close_stale(self) -> None:
        stale, self._stale = self._stale, []
        for tunnel_id in stale:
            await self._send(self.server_eui, self.server_endpoint, CloseTunnel(tunnel_id))

    async def _await(self, future: asyncio.Future) -> Any:
        """Wait for `future` up to `response_timeout` on our clock; None on timeout."""
        def expire() -> None:
            if not future.done():
                future.set_result(None)

        timer = self.clock.call_at(self.clock.now() + self.response_timeout, expire)
        try:
            return await future
        finally:
            timer.cancel()

    async def _request(self) -> RequestTunnelResponse | None:
        sequence = self._next_sequence()
        future = asyncio.get_running_loop().create_future()
        self._waiting_open = future  # before sending: the answer may arrive inside send
        try:
            request = RequestTunnel(max_incoming_transfer_size=self.max_incoming_transfer_size)
            if not await self._send(self.server_eui, self.server_endpoint, request, sequence):
                return None
            return await self._await(future)
        finally:
            self._waiting_open = None

    async def close(self) -> None:
        """CloseTunnel, and forget the tunnel even if the frame cannot be sent."""
        tunnel_id, self.tunnel_id = self.tunnel_id, None
        if tunnel_id is not None:
            await self._send(self.server_eui, self.server_endpoint, CloseTunnel(tunnel_id))

    # -- GBCS traffic -----------------------------------------------------------------------

    async def send_gbcs(self, message: bytes) -> bool:
        """Send a GBCS message to the server (as a PUT if this client is sleepy). True when the
        link accepted it, False if lost on the air; raises TunnelError / HanError."""
        if not message:
            raise ValueError("empty GBCS message")
        tunnel_id = await self.open()
        data = Put(message).encode() if self.sleepy else message
        return await self._send(self.server_eui, self.server_endpoint, TransferData(tunnel_id, data))

    async def get(self) -> GetResponse:
        """One GET round trip; the message it brings (if any) goes to `on_message`."""
        tunnel_id = await self.open()
        future = asyncio.get_running_loop().create_future()
        self._waiting_get = future
        try:
            if not await self._send(self.server_eui, self.server_endpoint, TransferData(tunnel_id, Get().encode())):
                raise TunnelTimeout("GET lost on the air")
            response = await self._await(future)
        finally:
            self._waiting_get = None
        if response is None:
            raise TunnelTimeout(f"no GET-RESPONSE from {self.server_eui.hex().upper()}")
        return response

    async def poll(self, max_messages: int | None = None) -> int:
        """GET until the server's queue is empty (or `max_messages` fetched); returns how many
        messages were fetched."""
        fetched = 0
        while max_messages is None or fetched < max_messages:
            response = await self.get()
            if not response.message:
                break
            fetched += 1
            if response.remaining == 0:
                break
        return fetched

    # -- receiving --------------------------------------------------------------------------

    def handle(self, frame: ApsFrame) -> "Awaitable[Any] | None":
        if frame.src != self.server_eui:
            self.errors += 1
            return None
        command = recognise_transfer_data(frame.payload, self.expected_direction)
        if command is not None:
            return self._on_transfer_data(frame, command)
        decoded = self._decode(frame)
        if decoded is None:
            return None
        command = decoded.command
        if type(command) is TransferData:
            return self._on_transfer_data(frame, command)
        if type(command) is RequestTunnelResponse:
            waiting = self._waiting_open
            if waiting is not None and not waiting.done():
                if command.status == TunnelStatus.SUCCESS:
                    self._adopt(command)
                waiting.set_result(command)
            else:
                log.debug("unsolicited RequestTunnelResponse from %s", frame.src.hex().upper())
            return None
        if type(command) is TunnelClosureNotification:
            if command.tunnel_id == self.tunnel_id:
                self.tunnel_id = None
            return None
        if type(command) is TransferDataError:
            if command.tunnel_id == self.tunnel_id and command.status == TransferDataStatus.NO_SUCH_TUNNEL:
                self.tunnel_id = None  # re-requested on the next send
            log.warning("TransferDataError %s from %s", _status_name(TransferDataStatus, command.status), frame.src.hex().upper())
            return _notify(self.on_error, frame.src, command.status)
        return None

    def _on_transfer_data(self, frame: ApsFrame, command: TransferData) -> "Awaitable[Any] | None":
        if self.tunnel_id is None or command.tunnel_id != self.tunnel_id:
            self.errors += 1
            return self._send(
                frame.src, frame.src_endpoint, TransferDataError(command.tunnel_id, TransferDataStatus.NO_SUCH_TUNNEL)
            )
        raw = command.data
        if raw and raw[0] > HGRP_PUT:  # a plain GBCS message (DD/DF): no GB-HGRP wrapper to read
            return self._deliver(frame.src, raw)
        try:
            data = decode_tunnel_data(raw)
        except DecodeError as exc:
            self.errors += 1
            log.warning("bad tunnel data from %s: %s", frame.src.hex().upper(), exc)
            return None
        kind = type(data)
        if kind is Raw:
            return self._deliver(frame.src, data.message)
        if kind is GetResponse:
            waiting = self._waiting_get
            if waiting is not None and not waiting.done():
                waiting.set_result(data)
            return self._deliver(frame.src, data.message) if data.message else None
        self.errors += 1  # GET and PUT travel client → server only
        log.warning("%s sent to a tunnel client by %s", kind.__name__, frame.src.hex().upper())
        return None


class TunnelHost:
    """All tunnels of one device behind one port: at most one server (for the clients that
    request tunnels to this device) and one client per remote server. `handle` is the
    Tunneling-cluster receiver; it routes by the ZCL direction bit and the sender."""

    def __init__(
        self,
        port: HanPort,
        *,
        endpoint: int = 1,
        clock: Clock | None = None,
        on_message: MessageCallback | None = None,
        on_error: ErrorCallback | None = None,
    ) -> None:
        self.port = port
        self.endpoint = endpoint
        self.clock: Clock = clock if clock is not None else LoopClock()
        self.on_message = on_message
        self.on_error = on_error
        self.server: TunnelServer | None = None
        self.clients: dict[bytes, TunnelClient] = {}
        self.unrouted = 0

    def _defaults(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """`kwargs` over this host's endpoint, clock and callbacks (a new dict)."""
        return {"endpoint": self.endpoint, "clock": self.clock, "on_message": self.on_message,
                "on_error": self.on_error, **kwargs}

    def serve(self, **kwargs: Any) -> TunnelServer:
        """Create this device's tunnel server (keyword arguments as for TunnelServer)."""
        if self.server is not None:
            raise HanError("this device already serves tunnels")
        self.server = TunnelServer(self.port, **self._defaults(kwargs))
        return self.server

    def connect(self, server_eui: bytes, **kwargs: Any) -> TunnelClient:
        """The client for the tunnel to `server_eui`, created on first call (keyword arguments as
        for TunnelClient; ignored for an existing client)."""
        client = self.clients.get(server_eui)
        if client is None:
            client = self.clients[server_eui] = TunnelClient(self.port, server_eui, **self._defaults(kwargs))
        return client

    def remove(self, server_eui: bytes) -> None:
        self.clients.pop(server_eui, None)

    def handle(self, frame: ApsFrame) -> "Awaitable[Any] | None":
        payload = frame.payload
        if payload and payload[0] & FC_DIRECTION:
            endpoint: TunnelEndpoint | None = self.clients.get(frame.src)
        else:
            endpoint = self.server
        if endpoint is None:
            self.unrouted += 1
            return None
        return endpoint.handle(frame)
