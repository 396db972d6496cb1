"""GB-HGRP over the ZSE Tunneling cluster (0x0704): the tunnel's wire format (sans-IO).

GBCS Remote Party Messages cross the HAN inside Tunneling-cluster TransferData commands
(GBCS 10.2.2, FACTS §6). This module holds the Tunneling-cluster commands (RequestTunnel and its
response, TransferData, ...), their ZCL frames (the one `gbcs.zcl.ZclHeader`), the status codes,
and the GB-HGRP data framing of the sleepy-GSME tunnel (GET `01`, GET-RESPONSE
`02 ‖ remaining ‖ message`, PUT `03 ‖ message`; FACTS §3.3). Malformed input only ever raises
`DecodeError`. The endpoints that run tunnels (timers, queues) are `gbhub.han.tunnel`.

TransferData carries every GBCS message, so `transfer_data_frame` and `recognise_transfer_data`
build and recognise its frames by their fixed header; `encode_tunnel_command` and
`decode_tunnel_frame` are the general reference (property-tested to agree).
"""
from __future__ import annotations

import struct

from enum import IntEnum
from typing import Union

from .codec import DecodeError, EncodeError, frozen_dataclass
from .zcl import Direction, FrameType, ZclHeader

GB_HGRP_PROTOCOL_ID = 6
GB_HGRP_MANUFACTURER_CODE = 0xFFFF
DEFAULT_MAX_TRANSFER_SIZE = 1500
INVALID_TUNNEL_ID = 0xFFFF


class TunnelStatus(IntEnum):
    """RequestTunnelResponse status."""

    SUCCESS = 0
    BUSY = 1
    NO_MORE_TUNNEL_IDS = 2
    PROTOCOL_NOT_SUPPORTED = 3
    FLOW_CONTROL_NOT_SUPPORTED = 4


class TransferDataStatus(IntEnum):
    """TransferDataError status."""

    NO_SUCH_TUNNEL = 0
    WRONG_DEVICE = 1
    DATA_OVERFLOW = 2


def _enum_or_int(enum: type[IntEnum], value: int) -> int:
    try:
        return enum(value)
    except ValueError:
        return value


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


@frozen_dataclass
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


@frozen_dataclass
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


@frozen_dataclass
class CloseTunnel:
    """Client → server 0x01."""

    tunnel_id: int

    def encode_payload(self) -> bytes:
        return _u16(self.tunnel_id, "tunnel_id")

    @classmethod
    def decode_payload(cls, data: bytes, offset: int = 0) -> "CloseTunnel":
        _fixed(data, offset, 2, "CloseTunnel")
        return cls(data[0] | (data[1] << 8))


@frozen_dataclass
class TunnelClosureNotification:
    """Server → client 0x06: the server closed the tunnel."""

    tunnel_id: int

    def encode_payload(self) -> bytes:
        return _u16(self.tunnel_id, "tunnel_id")

    @classmethod
    def decode_payload(cls, data: bytes, offset: int = 0) -> "TunnelClosureNotification":
        _fixed(data, offset, 2, "TunnelClosureNotification")
        return cls(data[0] | (data[1] << 8))


@frozen_dataclass
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


@frozen_dataclass
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


@frozen_dataclass
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


@frozen_dataclass
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


@frozen_dataclass
class GetSupportedTunnelProtocols:
    """Client → server 0x06."""

    protocol_offset: int = 0

    def encode_payload(self) -> bytes:
        return _u8(self.protocol_offset, "protocol_offset")

    @classmethod
    def decode_payload(cls, data: bytes, offset: int = 0) -> "GetSupportedTunnelProtocols":
        _fixed(data, offset, 1, "GetSupportedTunnelProtocols")
        return cls(data[0])


@frozen_dataclass
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


@frozen_dataclass
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
        header = ZclHeader(FrameType.CLUSTER, command_id(command, direction), sequence, direction, disable_default_response)
        return cls(header, command)

    def encode(self) -> bytes:
        header = self.header
        if header.frame_type != FrameType.CLUSTER or header.manufacturer_code is not None or header.reserved:
            raise EncodeError("tunnel commands are cluster-specific, not manufacturer-specific, no reserved bits")
        if command_id(self.command, header.direction) != header.command_id:
            raise EncodeError("header command id does not match the command")
        return header.encode() + self.command.encode_payload()


def decode_tunnel_frame(data: bytes) -> TunnelFrame:
    """Decode a Tunneling-cluster ZCL frame (an `ApsFrame.payload`)."""
    header, pos = ZclHeader.decode(data)
    if header.reserved:
        raise DecodeError(f"reserved frame-control bits set (0x{data[0]:02X})", 0, "frame_control")
    if header.frame_type != FrameType.CLUSTER:
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
# general path stays the reference; tests check both give the same bytes and commands.
_TRANSFER_DATA_FC = {
    d: ZclHeader(FrameType.CLUSTER, _COMMAND_IDS[d][TransferData], 0, d, True).frame_control for d in Direction
}
_TRANSFER_DATA_ID = {d: _COMMAND_IDS[d][TransferData] for d in Direction}


def recognise_transfer_data(payload: bytes, direction: Direction) -> "TransferData | None":
    """The TransferData in `payload` if it is one sent in `direction` with the usual header
    (cluster-specific, default response disabled), else None: decode it with
    `decode_tunnel_frame` then."""
    if len(payload) >= 5 and payload[0] == _TRANSFER_DATA_FC[direction] and payload[2] == _TRANSFER_DATA_ID[direction]:
        return TransferData(payload[3] | (payload[4] << 8), bytes(payload[5:]))
    return None


def transfer_data_frame(direction: Direction, sequence: int, tunnel_id: int, data: bytes) -> bytes:
    """`encode_tunnel_command(TransferData(tunnel_id, data), direction, sequence)`, faster."""
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


@frozen_dataclass
class Get:
    """Sleepy device → CHF: give me the next queued message."""

    def encode(self) -> bytes:
        return b"\x01"


@frozen_dataclass
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


@frozen_dataclass
class Put:
    """Sleepy device → CHF: a GBCS message (response, alert, GBT block)."""

    message: bytes

    def encode(self) -> bytes:
        if not self.message:
            raise EncodeError("PUT carries a message")
        return b"\x03" + self.message


@frozen_dataclass
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
