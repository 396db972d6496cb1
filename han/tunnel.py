"""The GB-HGRP tunnel: GBCS Remote Party Messages over the ZSE Tunneling cluster (0x0704).

Three layers, bottom up:

1. Codec (sans-IO): the ZCL header, the Tunneling cluster commands, and the GB-HGRP data framing
   of the sleepy-GSME tunnel (GET `01`, GET-RESPONSE `02 ‖ remaining ‖ message`, PUT
   `03 ‖ message`; FACTS §3.3). Malformed input only ever raises `gbcs.codec.DecodeError`.
2. Endpoints: `TunnelServer` (accepts RequestTunnel: the ESME/PPMID/HCALCS for the CHF's tunnels,
   and the CHF for the GSME's tunnel) and `TunnelClient` (requests the tunnel: the CHF towards
   the ESME/PPMID/HCALCS, and the GSME towards the CHF). Both give `await send_gbcs(...)` and
   call `on_message(peer_eui, message)` for every GBCS message received.
3. `TunnelHost`: one device's server and clients behind one port, for the CHF which is both.

Large GBCS messages pass through whole: APS fragmentation is the radio's business, and GBCS-level
splitting (GBT) belongs to the devices.
"""
from __future__ import annotations

import asyncio
import inspect
import logging
import struct
from collections import deque
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Awaitable, Callable, ClassVar, Iterable, Union

from gbcs.codec import DecodeError, EncodeError

from .aps import TUNNELING_CLUSTER, ApsFrame, HanError
from .transport import Clock, HanPort, LoopClock, spawn

log = logging.getLogger("gbhub.han")

# ---------------------------------------------------------------------------------------------
# Constants (ZSE Tunneling cluster; GBCS 10.2.2 as quoted in FACTS §6)
# ---------------------------------------------------------------------------------------------

GB_HGRP_PROTOCOL_ID = 6
GB_HGRP_MANUFACTURER_CODE = 0xFFFF
DEFAULT_MAX_TRANSFER_SIZE = 1500
INVALID_TUNNEL_ID = 0xFFFF
#: The CHF re-requests its tunnels this often (seconds since the last RequestTunnelResponse).
TUNNEL_REFRESH_INTERVAL = 0xFFFF
#: Retry delay after a Busy RequestTunnelResponse (seconds).
BUSY_RETRY_DELAY = 180.0


class Direction(IntEnum):
    """ZCL frame-control direction bit."""

    CLIENT_TO_SERVER = 0
    SERVER_TO_CLIENT = 1


class TunnelStatus(IntEnum):
    SUCCESS = 0
    BUSY = 1
    NO_MORE_TUNNEL_IDS = 2
    PROTOCOL_NOT_SUPPORTED = 3
    FLOW_CONTROL_NOT_SUPPORTED = 4


class TransferDataStatus(IntEnum):
    NO_SUCH_TUNNEL = 0
    WRONG_DEVICE = 1
    DATA_OVERFLOW = 2


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


def _enum_or_int(enum: type[IntEnum], value: int) -> int:
    try:
        return enum(value)
    except ValueError:
        return value


# ---------------------------------------------------------------------------------------------
# ZCL header
# ---------------------------------------------------------------------------------------------

_FC_CLUSTER_SPECIFIC = 0x01
_FC_FRAME_TYPE = 0x03
_FC_MANUFACTURER = 0x04
_FC_DIRECTION = 0x08
_FC_DISABLE_DEFAULT_RESPONSE = 0x10
_FC_RESERVED = 0xE0


@dataclass(frozen=True, slots=True)
class ZclHeader:
    """ZCL frame header: frame control ‖ [manufacturer code, LE] ‖ sequence ‖ command id."""

    command_id: int
    sequence: int
    direction: Direction = Direction.CLIENT_TO_SERVER
    cluster_specific: bool = True
    disable_default_response: bool = True
    manufacturer_code: int | None = None

    def encode(self) -> bytes:
        if not (0 <= self.command_id <= 0xFF and 0 <= self.sequence <= 0xFF):
            raise EncodeError("ZCL command id and sequence are one byte each")
        fc = (
            (_FC_CLUSTER_SPECIFIC if self.cluster_specific else 0)
            | (_FC_DIRECTION if self.direction else 0)
            | (_FC_DISABLE_DEFAULT_RESPONSE if self.disable_default_response else 0)
        )
        if self.manufacturer_code is None:
            return bytes((fc, self.sequence, self.command_id))
        if not 0 <= self.manufacturer_code <= 0xFFFF:
            raise EncodeError("manufacturer code is two bytes")
        return struct.pack("<BHBB", fc | _FC_MANUFACTURER, self.manufacturer_code, self.sequence, self.command_id)

    @classmethod
    def decode(cls, data: bytes, pos: int = 0) -> tuple["ZclHeader", int]:
        """Header at `pos`; returns (header, position of the command payload)."""
        if len(data) - pos < 1:
            raise DecodeError("truncated ZCL header", pos, "frame_control")
        fc = data[pos]
        if fc & _FC_RESERVED:
            raise DecodeError(f"reserved frame-control bits set (0x{fc:02X})", pos, "frame_control")
        frame_type = fc & _FC_FRAME_TYPE
        if frame_type > 1:
            raise DecodeError(f"reserved ZCL frame type {frame_type}", pos, "frame_control")
        manufacturer_code = None
        at = pos + 1
        if fc & _FC_MANUFACTURER:
            if len(data) - at < 2:
                raise DecodeError("truncated manufacturer code", at, "manufacturer_code")
            manufacturer_code = data[at] | (data[at + 1] << 8)
            at += 2
        if len(data) - at < 2:
            raise DecodeError("truncated ZCL header", len(data), "sequence" if len(data) == at else "command_id")
        header = cls(
            command_id=data[at + 1],
            sequence=data[at],
            direction=Direction.SERVER_TO_CLIENT if fc & _FC_DIRECTION else Direction.CLIENT_TO_SERVER,
            cluster_specific=frame_type == 1,
            disable_default_response=bool(fc & _FC_DISABLE_DEFAULT_RESPONSE),
            manufacturer_code=manufacturer_code,
        )
        return header, at + 2


# ---------------------------------------------------------------------------------------------
# Tunneling cluster commands
# ---------------------------------------------------------------------------------------------


def _u16(value: int, what: str) -> bytes:
    if not 0 <= value <= 0xFFFF:
        raise EncodeError(f"{what} must fit in two bytes")
    return value.to_bytes(2, "little")


def _u8(value: int, what: str) -> bytes:
    if not 0 <= value <= 0xFF:
        raise EncodeError(f"{what} must fit in one byte")
    return bytes((value,))


def _fixed(data: bytes, offset: int, size: int, name: str) -> None:
    if len(data) < size:
        raise DecodeError(f"truncated {name}: need {size} bytes, have {len(data)}", offset + len(data), name)
    if len(data) > size:
        raise DecodeError(f"{len(data) - size} trailing bytes after {name}", offset + size, name)


def _bool(value: int, offset: int, what: str) -> bool:
    if value > 1:
        raise DecodeError(f"boolean must be 0 or 1, got 0x{value:02X}", offset, what)
    return bool(value)


@dataclass(frozen=True, slots=True)
class RequestTunnel:
    """Client → server 0x00."""

    protocol_id: int = GB_HGRP_PROTOCOL_ID
    manufacturer_code: int = GB_HGRP_MANUFACTURER_CODE
    flow_control_support: bool = False
    max_incoming_transfer_size: int = DEFAULT_MAX_TRANSFER_SIZE

    def encode_payload(self) -> bytes:
        return (
            _u8(self.protocol_id, "protocol_id")
            + _u16(self.manufacturer_code, "manufacturer_code")
            + (b"\x01" if self.flow_control_support else b"\x00")
            + _u16(self.max_incoming_transfer_size, "max_incoming_transfer_size")
        )

    @classmethod
    def decode_payload(cls, data: bytes, offset: int = 0) -> "RequestTunnel":
        _fixed(data, offset, 6, "RequestTunnel")
        protocol_id, manufacturer_code, flow, size = struct.unpack("<BHBH", data)
        return cls(protocol_id, manufacturer_code, _bool(flow, offset + 3, "flow_control_support"), size)


@dataclass(frozen=True, slots=True)
class RequestTunnelResponse:
    """Server → client 0x00. `tunnel_id` is 0xFFFF when the status is not SUCCESS."""

    tunnel_id: int
    status: int
    max_incoming_transfer_size: int = DEFAULT_MAX_TRANSFER_SIZE

    def encode_payload(self) -> bytes:
        return (
            _u16(self.tunnel_id, "tunnel_id")
            + _u8(self.status, "status")
            + _u16(self.max_incoming_transfer_size, "max_incoming_transfer_size")
        )

    @classmethod
    def decode_payload(cls, data: bytes, offset: int = 0) -> "RequestTunnelResponse":
        _fixed(data, offset, 5, "RequestTunnelResponse")
        tunnel_id, status, size = struct.unpack("<HBH", data)
        return cls(tunnel_id, _enum_or_int(TunnelStatus, status), size)


@dataclass(frozen=True, slots=True)
class CloseTunnel:
    """Client → server 0x01."""

    tunnel_id: int

    def encode_payload(self) -> bytes:
        return _u16(self.tunnel_id, "tunnel_id")

    @classmethod
    def decode_payload(cls, data: bytes, offset: int = 0) -> "CloseTunnel":
        _fixed(data, offset, 2, "CloseTunnel")
        return cls(data[0] | (data[1] << 8))


@dataclass(frozen=True, slots=True)
class TunnelClosureNotification:
    """Server → client 0x06: the server closed the tunnel."""

    tunnel_id: int

    def encode_payload(self) -> bytes:
        return _u16(self.tunnel_id, "tunnel_id")

    @classmethod
    def decode_payload(cls, data: bytes, offset: int = 0) -> "TunnelClosureNotification":
        _fixed(data, offset, 2, "TunnelClosureNotification")
        return cls(data[0] | (data[1] << 8))


@dataclass(frozen=True, slots=True)
class TransferData:
    """Both directions (client → server 0x02, server → client 0x01): tunnel id ‖ data to the end."""

    tunnel_id: int
    data: bytes

    def encode_payload(self) -> bytes:
        return _u16(self.tunnel_id, "tunnel_id") + self.data

    @classmethod
    def decode_payload(cls, data: bytes, offset: int = 0) -> "TransferData":
        if len(data) < 2:
            raise DecodeError("truncated TransferData tunnel id", offset + len(data), "tunnel_id")
        return cls(data[0] | (data[1] << 8), bytes(data[2:]))


@dataclass(frozen=True, slots=True)
class TransferDataError:
    """Both directions (client → server 0x03, server → client 0x02)."""

    tunnel_id: int
    status: int

    def encode_payload(self) -> bytes:
        return _u16(self.tunnel_id, "tunnel_id") + _u8(self.status, "status")

    @classmethod
    def decode_payload(cls, data: bytes, offset: int = 0) -> "TransferDataError":
        _fixed(data, offset, 3, "TransferDataError")
        return cls(data[0] | (data[1] << 8), _enum_or_int(TransferDataStatus, data[2]))


@dataclass(frozen=True, slots=True)
class AckTransferData:
    """Both directions (client → server 0x04, server → client 0x03); flow control only."""

    tunnel_id: int
    num_bytes_left: int

    def encode_payload(self) -> bytes:
        return _u16(self.tunnel_id, "tunnel_id") + _u16(self.num_bytes_left, "num_bytes_left")

    @classmethod
    def decode_payload(cls, data: bytes, offset: int = 0) -> "AckTransferData":
        _fixed(data, offset, 4, "AckTransferData")
        return cls(*struct.unpack("<HH", data))


@dataclass(frozen=True, slots=True)
class ReadyData:
    """Both directions (client → server 0x05, server → client 0x04); flow control only."""

    tunnel_id: int
    num_octets_left: int

    def encode_payload(self) -> bytes:
        return _u16(self.tunnel_id, "tunnel_id") + _u16(self.num_octets_left, "num_octets_left")

    @classmethod
    def decode_payload(cls, data: bytes, offset: int = 0) -> "ReadyData":
        _fixed(data, offset, 4, "ReadyData")
        return cls(*struct.unpack("<HH", data))


@dataclass(frozen=True, slots=True)
class GetSupportedTunnelProtocols:
    """Client → server 0x06."""

    protocol_offset: int = 0

    def encode_payload(self) -> bytes:
        return _u8(self.protocol_offset, "protocol_offset")

    @classmethod
    def decode_payload(cls, data: bytes, offset: int = 0) -> "GetSupportedTunnelProtocols":
        _fixed(data, offset, 1, "GetSupportedTunnelProtocols")
        return cls(data[0])


@dataclass(frozen=True, slots=True)
class SupportedTunnelProtocolsResponse:
    """Server → client 0x05: complete flag ‖ count ‖ count × (manufacturer code LE, protocol id)."""

    protocol_list_complete: bool = True
    protocols: tuple[tuple[int, int], ...] = ((GB_HGRP_MANUFACTURER_CODE, GB_HGRP_PROTOCOL_ID),)

    def encode_payload(self) -> bytes:
        if len(self.protocols) > 0xFF:
            raise EncodeError("at most 255 protocols")
        out = bytearray((1 if self.protocol_list_complete else 0, len(self.protocols)))
        for manufacturer_code, protocol_id in self.protocols:
            out += _u16(manufacturer_code, "manufacturer_code") + _u8(protocol_id, "protocol_id")
        return bytes(out)

    @classmethod
    def decode_payload(cls, data: bytes, offset: int = 0) -> "SupportedTunnelProtocolsResponse":
        if len(data) < 2:
            raise DecodeError("truncated SupportedTunnelProtocolsResponse", offset + len(data), "count")
        complete = _bool(data[0], offset, "protocol_list_complete")
        count = data[1]
        _fixed(data[2:], offset + 2, 3 * count, "protocols")
        protocols = tuple(
            (data[i] | (data[i + 1] << 8), data[i + 2]) for i in range(2, 2 + 3 * count, 3)
        )
        return cls(complete, protocols)


TunnelCommand = Union[
    RequestTunnel,
    RequestTunnelResponse,
    CloseTunnel,
    TunnelClosureNotification,
    TransferData,
    TransferDataError,
    AckTransferData,
    ReadyData,
    GetSupportedTunnelProtocols,
    SupportedTunnelProtocolsResponse,
]

#: Command ids per direction (ZSE Tunneling cluster).
COMMANDS: dict[Direction, dict[int, type]] = {
    Direction.CLIENT_TO_SERVER: {
        0x00: RequestTunnel,
        0x01: CloseTunnel,
        0x02: TransferData,
        0x03: TransferDataError,
        0x04: AckTransferData,
        0x05: ReadyData,
        0x06: GetSupportedTunnelProtocols,
    },
    Direction.SERVER_TO_CLIENT: {
        0x00: RequestTunnelResponse,
        0x01: TransferData,
        0x02: TransferDataError,
        0x03: AckTransferData,
        0x04: ReadyData,
        0x05: SupportedTunnelProtocolsResponse,
        0x06: TunnelClosureNotification,
    },
}
_COMMAND_IDS: dict[Direction, dict[type, int]] = {
    direction: {cls: cid for cid, cls in table.items()} for direction, table in COMMANDS.items()
}


def command_id(command: TunnelCommand, direction: Direction) -> int:
    """The command id of `command` sent in `direction`; EncodeError if it has none there."""
    try:
        return _COMMAND_IDS[direction][type(command)]
    except KeyError:
        raise EncodeError(f"{type(command).__name__} is not sent {Direction(direction).name}") from None


@dataclass(frozen=True, slots=True)
class TunnelFrame:
    """One Tunneling-cluster ZCL frame: header ‖ command payload."""

    header: ZclHeader
    command: TunnelCommand

    @classmethod
    def build(
        cls,
        command: TunnelCommand,
        direction: Direction,
        sequence: int,
        *,
        disable_default_response: bool = True,
    ) -> "TunnelFrame":
        header = ZclHeader(command_id(command, direction), sequence, direction, True, disable_default_response)
        return cls(header, command)

    def encode(self) -> bytes:
        header = self.header
        if not header.cluster_specific or header.manufacturer_code is not None:
            raise EncodeError("tunnel commands are cluster-specific and not manufacturer-specific")
        if command_id(self.command, header.direction) != header.command_id:
            raise EncodeError("header command id does not match the command")
        return header.encode() + self.command.encode_payload()


def decode_tunnel_frame(data: bytes) -> TunnelFrame:
    """Decode a Tunneling-cluster ZCL frame (an `ApsFrame.payload`)."""
    header, pos = ZclHeader.decode(data)
    if not header.cluster_specific:
        raise DecodeError(f"global ZCL command 0x{header.command_id:02X}, not a tunnel command", 0, "frame_control")
    if header.manufacturer_code is not None:
        raise DecodeError("manufacturer-specific tunnel command", 0, "frame_control")
    cls = COMMANDS[header.direction].get(header.command_id)
    if cls is None:
        raise DecodeError(
            f"unknown tunnel command 0x{header.command_id:02X} ({header.direction.name})", pos - 1, "command_id"
        )
    return TunnelFrame(header, cls.decode_payload(data[pos:], pos))


def encode_tunnel_command(
    command: TunnelCommand, direction: Direction, sequence: int, *, disable_default_response: bool = True
) -> bytes:
    """ZCL frame bytes for `command` (what goes in `ApsFrame.payload`)."""
    return TunnelFrame.build(command, direction, sequence, disable_default_response=disable_default_response).encode()


# TransferData carries every GBCS message: its frames are built and recognised by a fixed
# three-byte header (frame control, sequence, command id), bypassing the general codec. The
# general path stays the reference; tests check both give the same bytes.
_TRANSFER_DATA_FC = {d: ZclHeader(_COMMAND_IDS[d][TransferData], 0, d).encode()[0] for d in Direction}
_TRANSFER_DATA_ID = {d: _COMMAND_IDS[d][TransferData] for d in Direction}


def _fast_transfer_data(payload: bytes, direction: Direction) -> "TransferData | None":
    """The TransferData in `payload` if it is one sent in `direction`, else None (→ general path)."""
    if len(payload) >= 5 and payload[0] == _TRANSFER_DATA_FC[direction] and payload[2] == _TRANSFER_DATA_ID[direction]:
        return TransferData(payload[3] | (payload[4] << 8), bytes(payload[5:]))
    return None


def _transfer_data_frame(direction: Direction, sequence: int, tunnel_id: int, data: bytes) -> bytes:
    if not 0 <= tunnel_id <= 0xFFFF:
        raise EncodeError("tunnel_id must fit in two bytes")
    return bytes((_TRANSFER_DATA_FC[direction], sequence, _TRANSFER_DATA_ID[direction],
                  tunnel_id & 0xFF, tunnel_id >> 8)) + data


# ---------------------------------------------------------------------------------------------
# GB-HGRP data: what TransferData carries
# ---------------------------------------------------------------------------------------------

HGRP_GET = 0x01
HGRP_GET_RESPONSE = 0x02
HGRP_PUT = 0x03


@dataclass(frozen=True, slots=True)
class Get:
    """Sleepy device → CHF: give me the next queued message."""

    def encode(self) -> bytes:
        return b"\x01"


@dataclass(frozen=True, slots=True)
class GetResponse:
    """CHF → sleepy device: `remaining` messages still queued after this one; `message` empty
    (and `remaining` 0) when nothing was queued."""

    remaining: int = 0
    message: bytes = b""

    def encode(self) -> bytes:
        if not 0 <= self.remaining <= 0xFF:
            raise EncodeError("remaining count is one byte")
        if not self.message and self.remaining:
            raise EncodeError("an empty GET-RESPONSE cannot announce remaining messages")
        return bytes((HGRP_GET_RESPONSE, self.remaining)) + self.message


@dataclass(frozen=True, slots=True)
class Put:
    """Sleepy device → CHF: a GBCS message (response, alert, GBT block)."""

    message: bytes

    def encode(self) -> bytes:
        if not self.message:
            raise EncodeError("PUT carries a message")
        return b"\x03" + self.message


@dataclass(frozen=True, slots=True)
class Raw:
    """A GBCS message sent as-is (non-sleepy devices; first byte 0xDD or 0xDF)."""

    message: bytes

    def encode(self) -> bytes:
        if not self.message or self.message[0] in (HGRP_GET, HGRP_GET_RESPONSE, HGRP_PUT):
            raise EncodeError("a raw tunnel message must be non-empty and not start with 01/02/03")
        return self.message


TunnelData = Union[Get, GetResponse, Put, Raw]


def decode_tunnel_data(data: bytes) -> TunnelData:
    """Classify TransferData contents by their first byte (FACTS §3.3, §6)."""
    if not data:
        raise DecodeError("empty tunnel data", 0, "data")
    kind = data[0]
    if kind == HGRP_GET:
        if len(data) != 1:
            raise DecodeError("GET carries no message", 1, "data")
        return Get()
    if kind == HGRP_GET_RESPONSE:
        if len(data) < 2:
            raise DecodeError("truncated GET-RESPONSE", 1, "remaining")
        if len(data) == 2 and data[1]:
            raise DecodeError("empty GET-RESPONSE announces remaining messages", 1, "remaining")
        return GetResponse(data[1], bytes(data[2:]))
    if kind == HGRP_PUT:
        if len(data) < 2:
            raise DecodeError("PUT without a message", 1, "message")
        return Put(bytes(data[1:]))
    return Raw(bytes(data))


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
            payload = _transfer_data_frame(self.send_direction, seq, command.tunnel_id, command.data)
        else:
            payload = encode_tunnel_command(command, self.send_direction, seq)
        return await self.port.send(
            ApsFrame(self.eui, dst, self.endpoint, dst_endpoint, TUNNELING_CLUSTER, payload)
        )

    def _decode(self, frame: ApsFrame) -> TunnelFrame | None:
        try:
            decoded = decode_tunnel_frame(frame.payload)
        except DecodeError as exc:
            if frame.payload[:1] and not frame.payload[0] & _FC_FRAME_TYPE:
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
    CHF logs 0x819D)."""

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
        self.tunnels: dict[int, ServerTunnel] = {}
        self._by_eui: dict[bytes, ServerTunnel] = {}
        self._sleepy: set[bytes] = set(sleepy)
        self._queues: dict[bytes, deque[tuple[float, bytes]]] = {}
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
        queue.append((self.clock.now(), message))
        self._pending_changed(eui, len(queue))

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
            _, message = queue.popleft()
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
        command = _fast_transfer_data(frame.payload, self.expected_direction)
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
                    status = _enum_or_int(TunnelStatus, int(verdict))
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
        data = b"\x03" + message if self.sleepy else message
        return await self._send(self.server_eui, self.server_endpoint, TransferData(tunnel_id, data))

    async def get(self) -> GetResponse:
        """One GET round trip; the message it brings (if any) goes to `on_message`."""
        tunnel_id = await self.open()
        future = asyncio.get_running_loop().create_future()
        self._waiting_get = future
        try:
            if not await self._send(self.server_eui, self.server_endpoint, TransferData(tunnel_id, b"\x01")):
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
        command = _fast_transfer_data(frame.payload, self.expected_direction)
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
        kwargs.setdefault("endpoint", self.endpoint)
        kwargs.setdefault("clock", self.clock)
        kwargs.setdefault("on_message", self.on_message)
        kwargs.setdefault("on_error", self.on_error)
        return kwargs

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
        if payload and payload[0] & _FC_DIRECTION:
            endpoint: TunnelEndpoint | None = self.clients.get(frame.src)
        else:
            endpoint = self.server
        if endpoint is None:
            self.unrouted += 1
            return None
        return endpoint.handle(frame)
