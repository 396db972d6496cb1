"""ZigBee Cluster Library (ZCL) codec for the Smart Energy profile: frame header, data types,
general (profile-wide) commands and the cluster-specific commands GBCS carries in GBZ payloads.

Used twice: by `gbcs.gbz` (GBCS "GBZ" components on the WAN side) and by the HAN layer, which
serves attributes to IHDs/PPMIDs with Read Attributes over the air.  Sans-IO, bytes in and out.

ZCL is little-endian throughout.  Cluster-specific payloads are described as data (`COMMANDS`)
and decoded by one interpreter, so a layout is written once and both decoded and built from it;
for speed each layout is also compiled once into steps that read runs of fixed-width fields with
one struct call and leave everything else to the interpreter.
A payload we cannot decode (unknown command, layout we got wrong, vendor quirk) is kept as
`RawPayload` unless `strict=True`, so a well-formed frame always decodes and re-encodes exactly.
"""
from __future__ import annotations

import math
import struct
from dataclasses import fields as dataclass_fields
from datetime import datetime, timedelta, timezone
from enum import IntEnum
from typing import Any, ClassVar, Iterable, Mapping, Union

from .codec import DecodeError, EncodeError, Node, frozen_dataclass, jsonable, slot_setters

# --------------------------------------------------------------------------------------------
# Clusters, statuses
# --------------------------------------------------------------------------------------------


class Cluster(IntEnum):
    BASIC = 0x0000
    TIME = 0x000A
    OTA_UPGRADE = 0x0019
    PRICE = 0x0700
    DEMAND_RESPONSE_LOAD_CONTROL = 0x0701
    METERING = 0x0702
    MESSAGING = 0x0703
    TUNNELING = 0x0704
    PREPAYMENT = 0x0705
    ENERGY_MANAGEMENT = 0x0706
    CALENDAR = 0x0707
    DEVICE_MANAGEMENT = 0x0708
    EVENTS = 0x0709
    MDU_PAIRING = 0x070A
    SUB_GHZ = 0x070B
    KEY_ESTABLISHMENT = 0x0800


def cluster_name(cluster_id: int) -> str:
    try:
        return Cluster(cluster_id).name.replace("_", " ").title().replace("Ota ", "OTA ").replace("Ghz", "GHz")
    except ValueError:
        return f"cluster 0x{cluster_id:04X}"


class Status(IntEnum):
    SUCCESS = 0x00
    FAILURE = 0x01
    NOT_AUTHORIZED = 0x7E
    RESERVED_FIELD_NOT_ZERO = 0x7F
    MALFORMED_COMMAND = 0x80
    UNSUP_CLUSTER_COMMAND = 0x81
    UNSUP_GENERAL_COMMAND = 0x82
    UNSUP_MANUF_CLUSTER_COMMAND = 0x83
    UNSUP_MANUF_GENERAL_COMMAND = 0x84
    INVALID_FIELD = 0x85
    UNSUPPORTED_ATTRIBUTE = 0x86
    INVALID_VALUE = 0x87
    READ_ONLY = 0x88
    INSUFFICIENT_SPACE = 0x89
    DUPLICATE_EXISTS = 0x8A
    NOT_FOUND = 0x8B
    UNREPORTABLE_ATTRIBUTE = 0x8C
    INVALID_DATA_TYPE = 0x8D
    INVALID_SELECTOR = 0x8E
    WRITE_ONLY = 0x8F
    INCONSISTENT_STARTUP_STATE = 0x90
    DEFINED_OUT_OF_BAND = 0x91
    INCONSISTENT = 0x92
    ACTION_DENIED = 0x93
    TIMEOUT = 0x94
    ABORT = 0x95
    INVALID_IMAGE = 0x96
    WAIT_FOR_DATA = 0x97
    NO_IMAGE_AVAILABLE = 0x98
    REQUIRE_MORE_IMAGE = 0x99
    NOTIFICATION_PENDING = 0x9A
    HARDWARE_FAILURE = 0xC0
    SOFTWARE_FAILURE = 0xC1
    CALIBRATION_ERROR = 0xC2
    UNSUPPORTED_CLUSTER = 0xC3


def status_name(status: int) -> str:
    try:
        return Status(status).name
    except ValueError:
        return f"status 0x{status:02X}"


# --------------------------------------------------------------------------------------------
# Data types
# --------------------------------------------------------------------------------------------


class ZclType(IntEnum):
    NO_DATA = 0x00
    DATA8 = 0x08
    DATA16 = 0x09
    DATA24 = 0x0A
    DATA32 = 0x0B
    DATA40 = 0x0C
    DATA48 = 0x0D
    DATA56 = 0x0E
    DATA64 = 0x0F
    BOOL = 0x10
    BITMAP8 = 0x18
    BITMAP16 = 0x19
    BITMAP24 = 0x1A
    BITMAP32 = 0x1B
    BITMAP40 = 0x1C
    BITMAP48 = 0x1D
    BITMAP56 = 0x1E
    BITMAP64 = 0x1F
    UINT8 = 0x20
    UINT16 = 0x21
    UINT24 = 0x22
    UINT32 = 0x23
    UINT40 = 0x24
    UINT48 = 0x25
    UINT56 = 0x26
    UINT64 = 0x27
    INT8 = 0x28
    INT16 = 0x29
    INT24 = 0x2A
    INT32 = 0x2B
    INT40 = 0x2C
    INT48 = 0x2D
    INT56 = 0x2E
    INT64 = 0x2F
    ENUM8 = 0x30
    ENUM16 = 0x31
    SEMI_FLOAT = 0x38
    SINGLE_FLOAT = 0x39
    DOUBLE_FLOAT = 0x3A
    OCTET_STRING = 0x41
    CHAR_STRING = 0x42
    LONG_OCTET_STRING = 0x43
    LONG_CHAR_STRING = 0x44
    ARRAY = 0x48
    STRUCT = 0x4C
    SET = 0x50
    BAG = 0x51
    TIME_OF_DAY = 0xE0
    DATE = 0xE1
    UTC_TIME = 0xE2
    CLUSTER_ID = 0xE8
    ATTRIBUTE_ID = 0xE9
    BACNET_OID = 0xEA
    IEEE_ADDRESS = 0xF0
    SECURITY_KEY = 0xF1
    UNKNOWN = 0xFF


# DATA_TYPES: type id -> (kind, size; None = variable).  Kinds drive the value representation:
#   int-like (data/bitmap/uint/enum/id/utc): int;  int: signed int;  bool: bool (0/1) else int;
#   float: float (raw bytes when the value would not re-encode bit-exactly, e.g. NaN payloads);
#   octets: bytes | None (None = the "invalid" length 0xFF/0xFFFF);  string: str (UTF-8) or
#   bytes when not valid UTF-8, None when invalid;  tod/date: TimeOfDay/ZclDate;
#   ieee: 8-byte EUI in normal (big-endian) order;  key: 16 raw bytes;  array/struct: ZclArray/ZclStruct.
DATA_TYPES: dict[int, tuple[str, int | None]] = {
    0x00: ("none", 0),
    0x10: ("bool", 1),
    0x30: ("uint", 1),
    0x31: ("uint", 2),
    0x38: ("float", 2),
    0x39: ("float", 4),
    0x3A: ("float", 8),
    0x41: ("octets", None),
    0x42: ("string", None),
    0x43: ("long_octets", None),
    0x44: ("long_string", None),
    0x48: ("array", None),
    0x4C: ("struct", None),
    0x50: ("array", None),
    0x51: ("array", None),
    0xE0: ("tod", 4),
    0xE1: ("date", 4),
    0xE2: ("uint", 4),
    0xE8: ("uint", 2),
    0xE9: ("uint", 2),
    0xEA: ("uint", 4),
    0xF0: ("ieee", 8),
    0xF1: ("key", 16),
    0xFF: ("none", 0),
}
for _n in range(8):
    DATA_TYPES[0x08 + _n] = ("uint", _n + 1)
    DATA_TYPES[0x18 + _n] = ("uint", _n + 1)
    DATA_TYPES[0x20 + _n] = ("uint", _n + 1)
    DATA_TYPES[0x28 + _n] = ("int", _n + 1)
del _n

_ANALOG = frozenset(list(range(0x20, 0x30)) + [0x38, 0x39, 0x3A, 0xE0, 0xE1, 0xE2])
_FLOAT_FORMATS = {2: "<e", 4: "<f", 8: "<d"}
MAX_NESTING = 8
ZCL_EPOCH = datetime(2000, 1, 1, tzinfo=timezone.utc)


def type_name(type_id: int) -> str:
    try:
        return ZclType(type_id).name.lower()
    except ValueError:
        return f"type 0x{type_id:02X}"


def type_size(type_id: int) -> int | None:
    """Encoded size of a fixed-size type, None for variable-length types; KeyError if unknown."""
    return DATA_TYPES[type_id][1]


def is_analog(type_id: int) -> bool:
    """Analog types carry a reportable-change field in Configure Reporting."""
    return type_id in _ANALOG


def utc_datetime(value: int) -> datetime | None:
    """ZCL UTCTime (seconds since 2000-01-01) as a datetime; None for 0xFFFFFFFF (invalid)."""
    if value == 0xFFFFFFFF:
        return None
    return ZCL_EPOCH + timedelta(seconds=value)


def utc_seconds(moment: datetime) -> int:
    """A datetime as ZCL UTCTime (seconds since 2000-01-01)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int((moment - ZCL_EPOCH).total_seconds())


def utc_text(value: int) -> str:
    if value == 0xFFFFFFFF:
        return "invalid/never (0xFFFFFFFF)"
    if value == 0:
        return "0 (2000-01-01T00:00:00Z / now)"
    return (ZCL_EPOCH + timedelta(seconds=value)).strftime("%Y-%m-%dT%H:%M:%SZ")


@frozen_dataclass
class TimeOfDay:
    """ZCL Time of Day; 0xFF in a field means "don't care"."""

    hours: int
    minutes: int
    seconds: int
    hundredths: int

    def __str__(self) -> str:
        return ":".join("**" if v == 0xFF else f"{v:02d}" for v in (self.hours, self.minutes, self.seconds)) + (
            "" if self.hundredths in (0, 0xFF) else f".{self.hundredths:02d}"
        )


@frozen_dataclass
class ZclDate:
    """ZCL Date: year as an offset from 1900; 0xFF in a field means "any" (recurring dates).
    ZSE calendars also use 0xFD/0xFE in day/month for "second last"/"last" and DST months."""

    years_since_1900: int
    month: int
    day: int
    day_of_week: int

    @property
    def year(self) -> int | None:
        return None if self.years_since_1900 == 0xFF else 1900 + self.years_since_1900

    def __str__(self) -> str:
        y = "****" if self.years_since_1900 == 0xFF else f"{1900 + self.years_since_1900:04d}"
        m = "**" if self.month == 0xFF else f"{self.month:02d}"
        d = "**" if self.day == 0xFF else f"{self.day:02d}"
        dow = "" if self.day_of_week == 0xFF else f" (day of week {self.day_of_week})"
        return f"{y}-{m}-{d}{dow}"


@frozen_dataclass
class ZclArray:
    """ZCL array/set/bag: element type + elements (None = invalid, count 0xFFFF)."""

    element_type: int
    elements: tuple[Any, ...] | None
    type_id: int = ZclType.ARRAY


@frozen_dataclass
class ZclStruct:
    """ZCL structure: (type id, value) members (None = invalid, count 0xFFFF)."""

    members: tuple[tuple[int, Any], ...] | None


def _need(data: bytes, pos: int, n: int, end: int, what: str) -> None:
    if pos + n > end:
        raise DecodeError(f"truncated: need {n} bytes, have {max(0, end - pos)}", pos, what)


def decode_attribute_value(type_id: int, data: bytes, pos: int = 0, end: int | None = None, _depth: int = 0) -> tuple[Any, int]:
    """Decode one value of ZCL type `type_id` at `pos`; returns (value, position after it)."""
    if end is None:
        end = len(data)
    spec = DATA_TYPES.get(type_id)
    if spec is None:
        raise DecodeError(f"unknown ZCL data type 0x{type_id:02X}", pos, "type")
    kind, size = spec
    if size is not None:
        npos = pos + size
        if npos > end:
            raise DecodeError(f"truncated: need {size} bytes, have {max(0, end - pos)}", pos, type_name(type_id))
        if kind == "uint":
            return int.from_bytes(data[pos:npos], "little"), npos
        raw = data[pos:npos]
        if kind == "int":
            return int.from_bytes(raw, "little", signed=True), npos
        if kind == "bool":
            b = raw[0]
            return (bool(b) if b < 2 else b), npos
        if kind == "none":
            return None, npos
        if kind == "ieee":
            return bytes(raw[::-1]), npos
        if kind == "key":
            return bytes(raw), npos
        if kind == "tod":
            return TimeOfDay(raw[0], raw[1], raw[2], raw[3]), npos
        if kind == "date":
            return ZclDate(raw[0], raw[1], raw[2], raw[3]), npos
        if kind == "float":
            fmt = _FLOAT_FORMATS[size]
            value = struct.unpack(fmt, raw)[0]
            # NaN payloads may not survive the float round trip: keep the bytes then.
            if math.isnan(value) and struct.pack(fmt, value) != raw:
                return bytes(raw), npos
            return value, npos
        raise AssertionError(kind)  # pragma: no cover
    # (the field names of errors are built only when raising: type_name is slow)
    if kind in ("octets", "string"):
        if pos + 1 > end:
            _need(data, pos, 1, end, type_name(type_id) + ".length")
        n = data[pos]
        if n == 0xFF:
            return None, pos + 1
        if pos + 1 + n > end:
            _need(data, pos + 1, n, end, type_name(type_id))
        raw = bytes(data[pos + 1 : pos + 1 + n])
        return (_text(raw) if kind == "string" else raw), pos + 1 + n
    if kind in ("long_octets", "long_string"):
        if pos + 2 > end:
            _need(data, pos, 2, end, type_name(type_id) + ".length")
        n = data[pos] | (data[pos + 1] << 8)
        if n == 0xFFFF:
            return None, pos + 2
        if pos + 2 + n > end:
            _need(data, pos + 2, n, end, type_name(type_id))
        raw = bytes(data[pos + 2 : pos + 2 + n])
        return (_text(raw) if kind == "long_string" else raw), pos + 2 + n
    if _depth >= MAX_NESTING:
        raise DecodeError("arrays/structures nested too deeply", pos, type_name(type_id))
    if kind == "array":
        if pos + 3 > end:
            _need(data, pos, 3, end, type_name(type_id))
        element_type = data[pos]
        count = data[pos + 1] | (data[pos + 2] << 8)
        pos += 3
        if count == 0xFFFF:
            return ZclArray(element_type, None, type_id), pos
        if count and DATA_TYPES.get(element_type, ("", 1))[1] == 0:
            raise DecodeError("array of zero-size elements", pos - 3, type_name(type_id))
        if count > end - pos:  # every element takes at least one byte
            raise DecodeError(f"array count {count} exceeds the bytes left", pos - 2, type_name(type_id) + ".count")
        elements = []
        for _ in range(count):
            value, pos = decode_attribute_value(element_type, data, pos, end, _depth + 1)
            elements.append(value)
        return ZclArray(element_type, tuple(elements), type_id), pos
    if kind == "struct":
        _need(data, pos, 2, end, "struct.count")
        count = data[pos] | (data[pos + 1] << 8)
        pos += 2
        if count == 0xFFFF:
            return ZclStruct(None), pos
        if count > end - pos:
            raise DecodeError(f"structure count {count} exceeds the bytes left", pos - 2, "struct.count")
        members = []
        for _ in range(count):
            _need(data, pos, 1, end, "struct.member_type")
            member_type = data[pos]
            value, pos = decode_attribute_value(member_type, data, pos + 1, end, _depth + 1)
            members.append((member_type, value))
        return ZclStruct(tuple(members)), pos
    raise AssertionError(kind)  # pragma: no cover


def _text(raw: bytes) -> str | bytes:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw


def encode_attribute_value(type_id: int, value: Any) -> bytes:
    """Encode `value` as ZCL type `type_id` (without the type id byte). Fixed-size types also
    accept raw `bytes` of exactly their size."""
    spec = DATA_TYPES.get(type_id)
    if spec is None:
        raise EncodeError(f"unknown ZCL data type 0x{type_id:02X}")
    kind, size = spec
    if size is not None:
        if kind == "uint" and type(value) is int and 0 <= value < (1 << (8 * size)):
            return value.to_bytes(size, "little")
        if isinstance(value, (bytes, bytearray)) and kind not in ("ieee",):
            if len(value) != size:
                raise EncodeError(f"{type_name(type_id)} takes {size} bytes, got {len(value)}")
            return bytes(value)
        if kind == "none":
            if value is not None:
                raise EncodeError(f"{type_name(type_id)} carries no value")
            return b""
        if kind in ("uint", "int", "bool"):
            if not isinstance(value, int):
                raise EncodeError(f"{type_name(type_id)} needs an int, got {type(value).__name__}")
            try:
                return int(value).to_bytes(size, "little", signed=kind == "int")
            except OverflowError:
                raise EncodeError(f"{value} out of range for {type_name(type_id)}") from None
        if kind == "ieee":
            if not isinstance(value, (bytes, bytearray)) or len(value) != 8:
                raise EncodeError("IEEE address must be 8 bytes")
            return bytes(value)[::-1]
        if kind == "key":
            raise EncodeError("security key must be 16 bytes")
        if kind == "tod":
            if not isinstance(value, TimeOfDay):
                raise EncodeError("time of day needs a TimeOfDay")
            return _bytes4(value.hours, value.minutes, value.seconds, value.hundredths)
        if kind == "date":
            if not isinstance(value, ZclDate):
                raise EncodeError("date needs a ZclDate")
            return _bytes4(value.years_since_1900, value.month, value.day, value.day_of_week)
        if kind == "float":
            if not isinstance(value, (int, float)):
                raise EncodeError(f"{type_name(type_id)} needs a float")
            try:
                return struct.pack(_FLOAT_FORMATS[size], value)
            except (OverflowError, struct.error) as exc:
                raise EncodeError(f"{value} out of range for {type_name(type_id)}: {exc}") from None
        raise AssertionError(kind)  # pragma: no cover
    if kind in ("octets", "string", "long_octets", "long_string"):
        long_form = kind.startswith("long")
        invalid = b"\xff\xff" if long_form else b"\xff"
        if value is None:
            return invalid
        if isinstance(value, str):
            if kind in ("octets", "long_octets"):
                raise EncodeError("octet string needs bytes")
            raw = value.encode("utf-8")
        elif isinstance(value, (bytes, bytearray)):
            raw = bytes(value)
        else:
            raise EncodeError(f"{type_name(type_id)} needs bytes or str")
        limit = 0xFFFE if long_form else 0xFE
        if len(raw) > limit:
            raise EncodeError(f"{type_name(type_id)} longer than {limit} bytes")
        return len(raw).to_bytes(2 if long_form else 1, "little") + raw
    if kind == "array":
        if not isinstance(value, ZclArray):
            raise EncodeError("array/set/bag needs a ZclArray")
        if value.elements is None:
            return bytes((value.element_type,)) + b"\xff\xff"
        if len(value.elements) >= 0xFFFF:
            raise EncodeError("too many array elements")
        return (
            bytes((value.element_type,))
            + len(value.elements).to_bytes(2, "little")
            + b"".join(encode_attribute_value(value.element_type, e) for e in value.elements)
        )
    if kind == "struct":
        if not isinstance(value, ZclStruct):
            raise EncodeError("structure needs a ZclStruct")
        if value.members is None:
            return b"\xff\xff"
        if len(value.members) >= 0xFFFF:
            raise EncodeError("too many structure members")
        return len(value.members).to_bytes(2, "little") + b"".join(
            bytes((t,)) + encode_attribute_value(t, v) for t, v in value.members
        )
    raise AssertionError(kind)  # pragma: no cover


def _bytes4(*values: int) -> bytes:
    try:
        return bytes(values)
    except (ValueError, TypeError):
        raise EncodeError("each field must be 0..255") from None


def value_text(type_id: int, value: Any) -> str:
    """Human-readable rendering of a decoded value, for trees and logs."""
    if value is None:
        return "invalid/absent"
    if type_id == ZclType.UTC_TIME and isinstance(value, int):
        return utc_text(value)
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        if 0x08 <= type_id <= 0x0F or 0x18 <= type_id <= 0x1F:
            size = type_size(type_id) or 1
            return f"0x{value:0{2 * size}X}"
        if type_id in (ZclType.CLUSTER_ID, ZclType.ATTRIBUTE_ID):
            return f"0x{value:04X}"
        return str(value)
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, bytes):
        if type_id == ZclType.IEEE_ADDRESS:
            return value.hex().upper()
        printable = all(32 <= b < 127 for b in value)
        return (repr(value.decode("ascii")) if printable and value else value.hex().upper() or "empty")
    if isinstance(value, ZclArray):
        return "invalid" if value.elements is None else f"{len(value.elements)} x {type_name(value.element_type)}"
    if isinstance(value, ZclStruct):
        return "invalid" if value.members is None else f"{len(value.members)} members"
    return str(value)


# --------------------------------------------------------------------------------------------
# Attribute table: (cluster, attribute id) -> (name, type).  One table, so an attribute can be
# encoded from its id alone.  Sources: ZSE 1.2a/1.4 attribute sets as used by GBCS [S GP
# zigbee.ts names; U types from ZSE knowledge, cross-checked against RTDS read responses].
# --------------------------------------------------------------------------------------------

T = ZclType
_B, _M, _PR, _PP, _TI = Cluster.BASIC, Cluster.METERING, Cluster.PRICE, Cluster.PREPAYMENT, Cluster.TIME

ATTRIBUTES: dict[tuple[int, int], tuple[str, int]] = {
    # Basic
    (_B, 0x0000): ("ZCLVersion", T.UINT8),
    (_B, 0x0001): ("ApplicationVersion", T.UINT8),
    (_B, 0x0002): ("StackVersion", T.UINT8),
    (_B, 0x0003): ("HWVersion", T.UINT8),
    (_B, 0x0004): ("ManufacturerName", T.CHAR_STRING),
    (_B, 0x0005): ("ModelIdentifier", T.CHAR_STRING),
    (_B, 0x0006): ("DateCode", T.CHAR_STRING),
    (_B, 0x0007): ("PowerSource", T.ENUM8),
    (_B, 0x0010): ("LocationDescription", T.CHAR_STRING),
    (_B, 0x0011): ("PhysicalEnvironment", T.ENUM8),
    (_B, 0x0012): ("DeviceEnabled", T.BOOL),
    (_B, 0x0013): ("AlarmMask", T.BITMAP8),
    (_B, 0x0014): ("DisableLocalConfig", T.BITMAP8),
    (_B, 0x4000): ("SWBuildID", T.CHAR_STRING),
    # Time
    (_TI, 0x0000): ("Time", T.UTC_TIME),
    (_TI, 0x0001): ("TimeStatus", T.BITMAP8),
    (_TI, 0x0002): ("TimeZone", T.INT32),
    (_TI, 0x0003): ("DstStart", T.UINT32),
    (_TI, 0x0004): ("DstEnd", T.UINT32),
    (_TI, 0x0005): ("DstShift", T.INT32),
    (_TI, 0x0006): ("StandardTime", T.UINT32),
    (_TI, 0x0007): ("LocalTime", T.UINT32),
    (_TI, 0x0008): ("LastSetTime", T.UTC_TIME),
    (_TI, 0x0009): ("ValidUntilTime", T.UTC_TIME),
    # OTA Upgrade (client attributes)
    (Cluster.OTA_UPGRADE, 0x0000): ("UpgradeServerID", T.IEEE_ADDRESS),
    (Cluster.OTA_UPGRADE, 0x0001): ("FileOffset", T.UINT32),
    (Cluster.OTA_UPGRADE, 0x0002): ("CurrentFileVersion", T.UINT32),
    (Cluster.OTA_UPGRADE, 0x0003): ("CurrentZigBeeStackVersion", T.UINT16),
    (Cluster.OTA_UPGRADE, 0x0004): ("DownloadedFileVersion", T.UINT32),
    (Cluster.OTA_UPGRADE, 0x0005): ("DownloadedZigBeeStackVersion", T.UINT16),
    (Cluster.OTA_UPGRADE, 0x0006): ("ImageUpgradeStatus", T.ENUM8),
    (Cluster.OTA_UPGRADE, 0x0007): ("ManufacturerID", T.UINT16),
    (Cluster.OTA_UPGRADE, 0x0008): ("ImageTypeID", T.UINT16),
    (Cluster.OTA_UPGRADE, 0x0009): ("MinimumBlockPeriod", T.UINT16),
    (Cluster.OTA_UPGRADE, 0x000A): ("ImageStamp", T.UINT32),
    # Tunneling, Key Establishment
    (Cluster.TUNNELING, 0x0000): ("CloseTunnelTimeout", T.UINT16),
    (Cluster.KEY_ESTABLISHMENT, 0x0000): ("KeyEstablishmentSuite", T.ENUM16),
    # Metering: reading information set
    (_M, 0x0000): ("CurrentSummationDelivered", T.UINT48),
    (_M, 0x0001): ("CurrentSummationReceived", T.UINT48),
    (_M, 0x0002): ("CurrentMaxDemandDelivered", T.UINT48),
    (_M, 0x0003): ("CurrentMaxDemandReceived", T.UINT48),
    (_M, 0x0004): ("DFTSummation", T.UINT48),
    (_M, 0x0005): ("DailyFreezeTime", T.UINT16),
    (_M, 0x0006): ("PowerFactor", T.INT8),
    (_M, 0x0007): ("ReadingSnapShotTime", T.UTC_TIME),
    (_M, 0x0008): ("CurrentMaxDemandDeliveredTime", T.UTC_TIME),
    (_M, 0x0009): ("CurrentMaxDemandReceivedTime", T.UTC_TIME),
    (_M, 0x000A): ("DefaultUpdatePeriod", T.UINT8),
    (_M, 0x000B): ("FastPollUpdatePeriod", T.UINT8),
    (_M, 0x000C): ("CurrentBlockPeriodConsumptionDelivered", T.UINT48),
    (_M, 0x000D): ("DailyConsumptionTarget", T.UINT24),
    (_M, 0x000E): ("CurrentBlock", T.ENUM8),
    (_M, 0x000F): ("ProfileIntervalPeriod", T.ENUM8),
    (_M, 0x0011): ("PresetReadingTime", T.UINT16),
    (_M, 0x0012): ("VolumePerReport", T.UINT16),
    (_M, 0x0013): ("FlowRestriction", T.UINT8),
    (_M, 0x0014): ("SupplyStatus", T.ENUM8),
    (_M, 0x0015): ("CurrentInletEnergyCarrierSummation", T.UINT48),
    (_M, 0x0016): ("CurrentOutletEnergyCarrierSummation", T.UINT48),
    (_M, 0x0017): ("InletTemperature", T.INT24),
    (_M, 0x0018): ("OutletTemperature", T.INT24),
    (_M, 0x0019): ("ControlTemperature", T.INT24),
    (_M, 0x001A): ("CurrentInletEnergyCarrierDemand", T.INT24),
    (_M, 0x001B): ("CurrentOutletEnergyCarrierDemand", T.INT24),
    (_M, 0x001C): ("PreviousBlockPeriodConsumptionDelivered", T.UINT48),
    (_M, 0x001D): ("CurrentBlockPeriodConsumptionReceived", T.UINT48),
    (_M, 0x001E): ("CurrentBlockReceived", T.ENUM8),
    (_M, 0x001F): ("DFTSummationReceived", T.UINT48),
    (_M, 0x0020): ("ActiveRegisterTierDelivered", T.ENUM8),
    (_M, 0x0021): ("ActiveRegisterTierReceived", T.ENUM8),
    (_M, 0x0022): ("LastBlockSwitchTime", T.UTC_TIME),
    # Metering: meter status set
    (_M, 0x0200): ("Status", T.BITMAP8),
    (_M, 0x0201): ("RemainingBatteryLife", T.UINT8),
    (_M, 0x0202): ("HoursInOperation", T.UINT24),
    (_M, 0x0203): ("HoursInFault", T.UINT24),
    (_M, 0x0204): ("ExtendedStatus", T.BITMAP64),
    (_M, 0x0205): ("RemainingBatteryLifeInDays", T.UINT16),
    (_M, 0x0206): ("CurrentMeterID", T.OCTET_STRING),
    (_M, 0x0207): ("AmbientConsumptionIndicator", T.ENUM8),
    # Metering: formatting set
    (_M, 0x0300): ("UnitOfMeasure", T.ENUM8),
    (_M, 0x0301): ("Multiplier", T.UINT24),
    (_M, 0x0302): ("Divisor", T.UINT24),
    (_M, 0x0303): ("SummationFormatting", T.BITMAP8),
    (_M, 0x0304): ("DemandFormatting", T.BITMAP8),
    (_M, 0x0305): ("HistoricalConsumptionFormatting", T.BITMAP8),
    (_M, 0x0306): ("MeteringDeviceType", T.BITMAP8),
    (_M, 0x0307): ("SiteID", T.OCTET_STRING),
    (_M, 0x0308): ("MeterSerialNumber", T.OCTET_STRING),
    (_M, 0x0309): ("EnergyCarrierUnitOfMeasure", T.ENUM8),
    (_M, 0x030A): ("EnergyCarrierSummationFormatting", T.BITMAP8),
    (_M, 0x030B): ("EnergyCarrierDemandFormatting", T.BITMAP8),
    (_M, 0x030C): ("TemperatureUnitOfMeasure", T.ENUM8),
    (_M, 0x030D): ("TemperatureFormatting", T.BITMAP8),
    (_M, 0x030E): ("ModuleSerialNumber", T.OCTET_STRING),
    (_M, 0x030F): ("OperatingTariffLabelDelivered", T.OCTET_STRING),
    (_M, 0x0310): ("OperatingTariffLabelReceived", T.OCTET_STRING),
    (_M, 0x0311): ("CustomerIDNumber", T.OCTET_STRING),
    (_M, 0x0312): ("AlternativeUnitOfMeasure", T.ENUM8),
    (_M, 0x0313): ("AlternativeDemandFormatting", T.BITMAP8),
    (_M, 0x0314): ("AlternativeConsumptionFormatting", T.BITMAP8),
    # Metering: historical consumption set
    (_M, 0x0400): ("InstantaneousDemand", T.INT24),
    (_M, 0x0401): ("CurrentDayConsumptionDelivered", T.UINT24),
    (_M, 0x0402): ("CurrentDayConsumptionReceived", T.UINT24),
    (_M, 0x0403): ("PreviousDayConsumptionDelivered", T.UINT24),
    (_M, 0x0404): ("PreviousDayConsumptionReceived", T.UINT24),
    (_M, 0x0405): ("CurrentPartialProfileIntervalStartTimeDelivered", T.UTC_TIME),
    (_M, 0x0406): ("CurrentPartialProfileIntervalStartTimeReceived", T.UTC_TIME),
    (_M, 0x0407): ("CurrentPartialProfileIntervalValueDelivered", T.UINT24),
    (_M, 0x0408): ("CurrentPartialProfileIntervalValueReceived", T.UINT24),
    (_M, 0x0409): ("CurrentDayMaxPressure", T.UINT48),
    (_M, 0x040A): ("CurrentDayMinPressure", T.UINT48),
    (_M, 0x040B): ("PreviousDayMaxPressure", T.UINT48),
    (_M, 0x040C): ("PreviousDayMinPressure", T.UINT48),
    (_M, 0x040D): ("CurrentDayMaxDemand", T.INT24),
    (_M, 0x040E): ("PreviousDayMaxDemand", T.INT24),
    (_M, 0x040F): ("CurrentMonthMaxDemand", T.INT24),
    (_M, 0x0410): ("CurrentYearMaxDemand", T.INT24),
    (_M, 0x045C): ("HistoricalFreezeTime", T.UINT16),
    (_M, 0x0500): ("MaxNumberOfPeriodsDelivered", T.UINT8),
    # Metering: meter status / supply limit set
    (_M, 0x0600): ("CurrentDemandDelivered", T.UINT24),
    (_M, 0x0601): ("DemandLimit", T.UINT24),
    (_M, 0x0602): ("DemandIntegrationPeriod", T.UINT8),
    (_M, 0x0603): ("NumberOfDemandSubintervals", T.UINT8),
    (_M, 0x0604): ("DemandLimitArmDuration", T.UINT16),
    (_M, 0x0605): ("LoadLimitSupplyState", T.ENUM8),
    (_M, 0x0606): ("LoadLimitCounter", T.UINT8),
    (_M, 0x0607): ("SupplyTamperState", T.ENUM8),
    (_M, 0x0608): ("SupplyDepletionState", T.ENUM8),
    (_M, 0x0609): ("SupplyUncontrolledFlowState", T.ENUM8),
    # Metering: alarms
    (_M, 0x0800): ("GenericAlarmMask", T.BITMAP16),
    (_M, 0x0801): ("ElectricityAlarmMask", T.BITMAP32),
    (_M, 0x0802): ("GenericFlowPressureAlarmMask", T.BITMAP16),
    (_M, 0x0803): ("WaterSpecificAlarmMask", T.BITMAP16),
    (_M, 0x0804): ("HeatAndCoolingSpecificAlarmMask", T.BITMAP16),
    (_M, 0x0805): ("GasSpecificAlarmMask", T.BITMAP16),
    (_M, 0x0806): ("ExtendedGenericAlarmMask", T.BITMAP48),
    (_M, 0x0807): ("ManufacturerAlarmMask", T.BITMAP16),
    # Metering: billing
    (_M, 0x0A00): ("BillToDateDelivered", T.UINT32),
    (_M, 0x0A01): ("BillToDateTimeStampDelivered", T.UTC_TIME),
    (_M, 0x0A02): ("ProjectedBillDelivered", T.UINT32),
    (_M, 0x0A03): ("ProjectedBillTimeStampDelivered", T.UTC_TIME),
    (_M, 0x0A04): ("BillDeliveredTrailingDigit", T.BITMAP8),
    (_M, 0x0A10): ("BillToDateReceived", T.UINT32),
    (_M, 0x0A11): ("BillToDateTimeStampReceived", T.UTC_TIME),
    (_M, 0x0A12): ("ProjectedBillReceived", T.UINT32),
    (_M, 0x0A13): ("ProjectedBillTimeStampReceived", T.UTC_TIME),
    (_M, 0x0A14): ("BillReceivedTrailingDigit", T.BITMAP8),
    # Metering: supply control, alternative historical consumption (GB uncontrolled gas flow)
    (_M, 0x0B00): ("ProposedChangeSupplyImplementationTime", T.UTC_TIME),
    (_M, 0x0B01): ("ProposedChangeSupplyStatus", T.ENUM8),
    (_M, 0x0B10): ("UncontrolledFlowThreshold", T.UINT16),
    (_M, 0x0B11): ("UncontrolledFlowThresholdUnitOfMeasure", T.ENUM8),
    (_M, 0x0B12): ("UncontrolledFlowMultiplier", T.UINT16),
    (_M, 0x0B13): ("UncontrolledFlowDivisor", T.UINT16),
    (_M, 0x0B14): ("FlowStabilisationPeriod", T.UINT8),
    (_M, 0x0B15): ("FlowMeasurementPeriod", T.UINT16),
    # Price: block period, commodity, billing, tariff information
    (_PR, 0x010F): ("BlockThresholdCount", T.UINT8),
    (_PR, 0x0200): ("StartOfBlockPeriod", T.UTC_TIME),
    (_PR, 0x0201): ("BlockPeriodDuration", T.UINT24),
    (_PR, 0x0202): ("ThresholdMultiplier", T.UINT24),
    (_PR, 0x0203): ("ThresholdDivisor", T.UINT24),
    (_PR, 0x0204): ("BlockPeriodDurationType", T.BITMAP8),
    (_PR, 0x0300): ("CommodityType", T.ENUM8),
    (_PR, 0x0301): ("StandingCharge", T.UINT32),
    (_PR, 0x0302): ("ConversionFactor", T.UINT32),
    (_PR, 0x0303): ("ConversionFactorTrailingDigit", T.BITMAP8),
    (_PR, 0x0304): ("CalorificValue", T.UINT32),
    (_PR, 0x0305): ("CalorificValueUnit", T.ENUM8),
    (_PR, 0x0306): ("CalorificValueTrailingDigit", T.BITMAP8),
    (_PR, 0x0610): ("TariffLabel", T.OCTET_STRING),
    (_PR, 0x0611): ("NumberOfPriceTiersInUse", T.UINT8),
    (_PR, 0x0612): ("NumberOfBlockThresholdsInUse", T.UINT8),
    (_PR, 0x0613): ("TierBlockMode", T.ENUM8),
    (_PR, 0x0615): ("UnitOfMeasure", T.ENUM8),
    (_PR, 0x0616): ("Currency", T.UINT16),
    (_PR, 0x0617): ("PriceTrailingDigit", T.BITMAP8),
    (_PR, 0x0619): ("TariffResolutionPeriod", T.ENUM8),
    (_PR, 0x0620): ("CO2", T.UINT32),
    (_PR, 0x0621): ("CO2Unit", T.ENUM8),
    (_PR, 0x0622): ("CO2TrailingDigit", T.BITMAP8),
    (_PR, 0x0700): ("CurrentBillingPeriodStart", T.UTC_TIME),
    (_PR, 0x0701): ("CurrentBillingPeriodDuration", T.UINT24),
    (_PR, 0x0702): ("LastBillingPeriodStart", T.UTC_TIME),
    (_PR, 0x0703): ("LastBillingPeriodDuration", T.UINT24),
    (_PR, 0x0704): ("LastBillingPeriodConsolidatedBill", T.UINT32),
    # Prepayment
    (_PP, 0x0000): ("PaymentControlConfiguration", T.BITMAP16),
    (_PP, 0x0001): ("CreditRemaining", T.INT32),
    (_PP, 0x0002): ("EmergencyCreditRemaining", T.INT32),
    (_PP, 0x0003): ("CreditStatus", T.BITMAP8),
    (_PP, 0x0004): ("CreditRemainingTimeStamp", T.UTC_TIME),
    (_PP, 0x0005): ("AccumulatedDebt", T.INT32),
    (_PP, 0x0006): ("OverallDebtCap", T.INT32),
    (_PP, 0x0010): ("EmergencyCreditLimitAllowance", T.UINT32),
    (_PP, 0x0011): ("EmergencyCreditThreshold", T.UINT32),
    (_PP, 0x0020): ("TotalCreditAdded", T.UINT48),
    (_PP, 0x0021): ("MaxCreditLimit", T.UINT32),
    (_PP, 0x0022): ("MaxCreditPerTopUp", T.UINT32),
    (_PP, 0x0030): ("FriendlyCreditWarning", T.UINT8),
    (_PP, 0x0031): ("LowCreditWarningLevel", T.UINT32),
    (_PP, 0x0032): ("IHDLowCreditWarningLevel", T.UINT32),
    (_PP, 0x0033): ("InterruptSuspendTime", T.UINT8),
    (_PP, 0x0034): ("RemainingFriendlyCreditTime", T.UINT16),
    (_PP, 0x0035): ("NextFriendlyCreditPeriod", T.UTC_TIME),
    (_PP, 0x0040): ("CutOffValue", T.INT32),
    (_PP, 0x0080): ("TokenCarrierID", T.OCTET_STRING),
    (_PP, 0x0400): ("PrepaymentAlarmStatus", T.BITMAP16),
    (_PP, 0x0401): ("PrepayGenericAlarmMask", T.BITMAP16),
    (_PP, 0x0402): ("PrepaySwitchAlarmMask", T.BITMAP16),
    (_PP, 0x0403): ("PrepayEventAlarmMask", T.BITMAP16),
    (_PP, 0x0500): ("HistoricalCostConsumptionFormatting", T.BITMAP8),
    (_PP, 0x0501): ("ConsumptionUnitOfMeasurement", T.ENUM8),
    (_PP, 0x0502): ("CurrencyScalingFactor", T.BITMAP8),
    (_PP, 0x0503): ("Currency", T.UINT16),
}


def _fill_attribute_ranges() -> None:
    """The numbered families (tiers, blocks, top-up and debt slots) follow fixed strides."""
    for tier in range(1, 49):  # Metering CurrentTierNSummationDelivered/Received
        ATTRIBUTES[(_M, 0x0100 + 2 * (tier - 1))] = (f"CurrentTier{tier}SummationDelivered", T.UINT48)
        ATTRIBUTES[(_M, 0x0101 + 2 * (tier - 1))] = (f"CurrentTier{tier}SummationReceived", T.UINT48)
    for day in range(2, 9):  # PreviousDayN consumption
        ATTRIBUTES[(_M, 0x0420 + 2 * (day - 2))] = (f"PreviousDay{day}ConsumptionDelivered", T.UINT24)
        ATTRIBUTES[(_M, 0x0421 + 2 * (day - 2))] = (f"PreviousDay{day}ConsumptionReceived", T.UINT24)
    ATTRIBUTES[(_M, 0x0430)] = ("CurrentWeekConsumptionDelivered", T.UINT24)
    ATTRIBUTES[(_M, 0x0431)] = ("CurrentWeekConsumptionReceived", T.UINT24)
    for week in range(1, 6):
        ATTRIBUTES[(_M, 0x0432 + 2 * (week - 1))] = (f"PreviousWeek{'' if week == 1 else week}ConsumptionDelivered", T.UINT24)
        ATTRIBUTES[(_M, 0x0433 + 2 * (week - 1))] = (f"PreviousWeek{'' if week == 1 else week}ConsumptionReceived", T.UINT24)
    ATTRIBUTES[(_M, 0x0440)] = ("CurrentMonthConsumptionDelivered", T.UINT32)
    ATTRIBUTES[(_M, 0x0441)] = ("CurrentMonthConsumptionReceived", T.UINT32)
    for month in range(1, 14):
        ATTRIBUTES[(_M, 0x0442 + 2 * (month - 1))] = (f"PreviousMonth{'' if month == 1 else month}ConsumptionDelivered", T.UINT32)
        ATTRIBUTES[(_M, 0x0443 + 2 * (month - 1))] = (f"PreviousMonth{'' if month == 1 else month}ConsumptionReceived", T.UINT32)
    for block in range(1, 17):  # Metering block summations; Price block prices
        ATTRIBUTES[(_M, 0x0700 + block - 1)] = (f"CurrentNoTierBlock{block}SummationDelivered", T.UINT48)
        ATTRIBUTES[(_PR, 0x0400 + block - 1)] = (f"NoTierBlock{block}Price", T.UINT32)
        for tier in range(1, 16):
            ATTRIBUTES[(_M, 0x0700 + 16 * tier + block - 1)] = (f"CurrentTier{tier}Block{block}SummationDelivered", T.UINT48)
            ATTRIBUTES[(_PR, 0x0400 + 16 * tier + block - 1)] = (f"Tier{tier}Block{block}Price", T.UINT32)
    for tier in range(1, 49):  # Price tier labels
        ATTRIBUTES[(_PR, tier - 1)] = (f"Tier{tier}PriceLabel", T.OCTET_STRING)
    for block in range(1, 16):  # Price block thresholds
        ATTRIBUTES[(_PR, 0x0100 + block - 1)] = (f"Block{block}Threshold", T.UINT48)
    for slot in range(1, 6):  # Prepayment top-up log attributes
        base = 0x0100 + 0x10 * (slot - 1)
        ATTRIBUTES[(_PP, base)] = (f"TopUpDateTime{slot}", T.UTC_TIME)
        ATTRIBUTES[(_PP, base + 1)] = (f"TopUpAmount{slot}", T.INT32)
        ATTRIBUTES[(_PP, base + 2)] = (f"OriginatingDevice{slot}", T.ENUM8)
        ATTRIBUTES[(_PP, base + 3)] = (f"TopUpCode{slot}", T.OCTET_STRING)
    for debt in range(1, 4):  # Prepayment debt attributes (debt 1 at 0x0210, as GP names them)
        base = 0x0200 + 0x10 * debt
        ATTRIBUTES[(_PP, base)] = (f"DebtLabel{debt}", T.OCTET_STRING)
        ATTRIBUTES[(_PP, base + 1)] = (f"DebtAmount{debt}", T.UINT32)
        ATTRIBUTES[(_PP, base + 2)] = (f"DebtRecoveryMethod{debt}", T.ENUM8)
        ATTRIBUTES[(_PP, base + 3)] = (f"DebtRecoveryStartTime{debt}", T.UTC_TIME)
        ATTRIBUTES[(_PP, base + 4)] = (f"DebtRecoveryCollectionTime{debt}", T.UINT16)
        ATTRIBUTES[(_PP, base + 6)] = (f"DebtRecoveryFrequency{debt}", T.ENUM8)
        ATTRIBUTES[(_PP, base + 7)] = (f"DebtRecoveryAmount{debt}", T.UINT32)
        ATTRIBUTES[(_PP, base + 9)] = (f"DebtRecoveryTopUpPercentage{debt}", T.UINT16)


_fill_attribute_ranges()


def attribute_type(cluster_id: int, attribute_id: int) -> int | None:
    """The ZCL data type of a known attribute, None when the table does not know it."""
    hit = ATTRIBUTES.get((cluster_id, attribute_id))
    return None if hit is None else hit[1]


def attribute_name(cluster_id: int, attribute_id: int) -> str:
    hit = ATTRIBUTES.get((cluster_id, attribute_id))
    return hit[0] if hit else f"attribute 0x{attribute_id:04X}"


def attribute_id(cluster_id: int, name: str) -> int:
    """Reverse lookup by name; KeyError when unknown."""
    for (cluster, attr), (attr_name, _) in ATTRIBUTES.items():
        if cluster == cluster_id and attr_name == name:
            return attr
    raise KeyError(f"{name} is not an attribute of {cluster_name(cluster_id)}")


# --------------------------------------------------------------------------------------------
# Frame header
# --------------------------------------------------------------------------------------------


class FrameType(IntEnum):
    GLOBAL = 0  # profile-wide ("general") command
    CLUSTER = 1  # cluster-specific command


class Direction(IntEnum):
    CLIENT_TO_SERVER = 0
    SERVER_TO_CLIENT = 1


FC_FRAME_TYPE = 0x03
FC_MANUFACTURER_SPECIFIC = 0x04
FC_DIRECTION = 0x08
FC_DISABLE_DEFAULT_RESPONSE = 0x10


@frozen_dataclass
class ZclHeader:
    """ZCL frame header: frame control, optional manufacturer code, sequence number, command id."""

    frame_type: FrameType
    command_id: int
    sequence: int = 0
    direction: Direction = Direction.CLIENT_TO_SERVER
    disable_default_response: bool = False
    manufacturer_code: int | None = None
    reserved: int = 0  # frame-control bits 5..7, kept so odd frames re-encode exactly

    def __post_init__(self) -> None:
        if type(self.frame_type) is not FrameType:
            object.__setattr__(self, "frame_type", FrameType(self.frame_type))
        if type(self.direction) is not Direction:
            object.__setattr__(self, "direction", Direction(self.direction))
        _set_plain_ints(self, "command_id", "sequence", "manufacturer_code", "reserved")

    @property
    def frame_control(self) -> int:
        return (
            int(self.frame_type)
            | (FC_MANUFACTURER_SPECIFIC if self.manufacturer_code is not None else 0)
            | (FC_DIRECTION if self.direction else 0)
            | (FC_DISABLE_DEFAULT_RESPONSE if self.disable_default_response else 0)
            | (self.reserved << 5)
        )

    @property
    def server_to_client(self) -> bool:
        return self.direction == Direction.SERVER_TO_CLIENT

    def __len__(self) -> int:
        return 3 if self.manufacturer_code is None else 5

    def encode(self) -> bytes:
        if not isinstance(self.reserved, int) or not 0 <= self.reserved < 8:
            raise EncodeError("reserved frame-control bits must be 0..7")
        for name, value in (("sequence", self.sequence), ("command_id", self.command_id)):
            if not 0 <= value <= 0xFF:
                raise EncodeError(f"{name} must be 0..255")
        out = bytes((self.frame_control,))
        if self.manufacturer_code is not None:
            if not 0 <= self.manufacturer_code <= 0xFFFF:
                raise EncodeError("manufacturer code must be 0..0xFFFF")
            out += self.manufacturer_code.to_bytes(2, "little")
        return out + bytes((self.sequence, self.command_id))

    @classmethod
    def decode(cls, data: bytes, pos: int = 0, end: int | None = None) -> tuple["ZclHeader", int]:
        """Decode the header at `pos`; returns (header, position of the payload)."""
        if end is None:
            end = len(data)
        if pos + 3 > end:
            _need(data, pos, 3, end, "zcl_header")
        fc = data[pos]
        frame_type = fc & FC_FRAME_TYPE
        if frame_type > 1:
            raise DecodeError(f"reserved ZCL frame type {frame_type}", pos, "zcl_header.frame_control")
        p = pos + 1
        manufacturer = None
        if fc & FC_MANUFACTURER_SPECIFIC:
            _need(data, p, 4, end, "zcl_header.manufacturer_code")
            manufacturer = data[p] | (data[p + 1] << 8)
            p += 2
        cache = _HEADERS if cls is ZclHeader and type(data) is bytes else None
        if cache is not None:
            key = data[pos : p + 2]
            header = cache.get(key)
            if header is not None:
                return header, p + 2
        header = cls(
            frame_type=FrameType.CLUSTER if frame_type else FrameType.GLOBAL,
            command_id=data[p + 1],
            sequence=data[p],
            direction=Direction.SERVER_TO_CLIENT if fc & FC_DIRECTION else Direction.CLIENT_TO_SERVER,
            disable_default_response=bool(fc & FC_DISABLE_DEFAULT_RESPONSE),
            manufacturer_code=manufacturer,
            reserved=fc >> 5,
        )
        if cache is not None and len(cache) < _HEADERS_MAX:
            cache[key] = header
        return header, p + 2

    def tree(self, cluster_id: int | None = None) -> Node:
        fc = self.frame_control
        parts = ["general" if self.frame_type == FrameType.GLOBAL else "cluster-specific"]
        parts.append("server→client" if self.server_to_client else "client→server")
        if self.disable_default_response:
            parts.append("no default response")
        children = [Node("frame_control", bytes((fc,)), ", ".join(parts))]
        if self.manufacturer_code is not None:
            children.append(Node("manufacturer_code", self.manufacturer_code.to_bytes(2, "little"), f"0x{self.manufacturer_code:04X}"))
        children.append(Node("sequence", bytes((self.sequence,)), str(self.sequence)))
        children.append(
            Node("command_id", bytes((self.command_id,)), command_name(cluster_id, self.frame_type, self.direction, self.command_id, self.manufacturer_code))
        )
        return Node("zcl_header", self.encode(), "", tuple(children))

    def to_json(self) -> dict:
        # What codec.jsonable's dataclass rule gives, written out: one header per GBZ component.
        return {
            "type": "ZclHeader",
            "frame_type": _FRAME_TYPE_NAMES[self.frame_type],
            "command_id": self.command_id,
            "sequence": self.sequence,
            "direction": _DIRECTION_NAMES[self.direction],
            "disable_default_response": self.disable_default_response,
            "manufacturer_code": self.manufacturer_code,
            "reserved": self.reserved,
        }


# Decoded headers by their bytes: headers are immutable and a GBZ message carries several alike.
# Bounded (outside input): once full, headers are built as before.
_HEADERS: dict[bytes, ZclHeader] = {}
_HEADERS_MAX = 4096

_FRAME_TYPE_NAMES = {m: m.name for m in FrameType}  # enum .name is a slow property lookup
_DIRECTION_NAMES = {m: m.name for m in Direction}


# --------------------------------------------------------------------------------------------
# General (profile-wide) commands
# --------------------------------------------------------------------------------------------


class GeneralCommand(IntEnum):
    READ_ATTRIBUTES = 0x00
    READ_ATTRIBUTES_RESPONSE = 0x01
    WRITE_ATTRIBUTES = 0x02
    WRITE_ATTRIBUTES_UNDIVIDED = 0x03
    WRITE_ATTRIBUTES_RESPONSE = 0x04
    WRITE_ATTRIBUTES_NO_RESPONSE = 0x05
    CONFIGURE_REPORTING = 0x06
    CONFIGURE_REPORTING_RESPONSE = 0x07
    READ_REPORTING_CONFIGURATION = 0x08
    READ_REPORTING_CONFIGURATION_RESPONSE = 0x09
    REPORT_ATTRIBUTES = 0x0A
    DEFAULT_RESPONSE = 0x0B
    DISCOVER_ATTRIBUTES = 0x0C
    DISCOVER_ATTRIBUTES_RESPONSE = 0x0D


def _set_plain_ints(obj: Any, *names: str) -> None:
    """Store enum members given by a caller as plain ints, so built and decoded objects
    compare, print and serialise alike."""
    for name in names:
        value = getattr(obj, name)
        if value is not None and type(value) is not int and isinstance(value, int):
            object.__setattr__(obj, name, int(value))


def _u16(value: int, what: str) -> bytes:
    if not isinstance(value, int) or not 0 <= value <= 0xFFFF:
        raise EncodeError(f"{what} must be 0..0xFFFF")
    return value.to_bytes(2, "little")


def _u8(value: int, what: str) -> bytes:
    if not isinstance(value, int) or not 0 <= value <= 0xFF:
        raise EncodeError(f"{what} must be 0..255")
    return bytes((value,))


def _attr_node(cluster_id: int | None, attr: int) -> Node:
    name = attribute_name(cluster_id, attr) if cluster_id is not None else f"attribute 0x{attr:04X}"
    return Node("attribute_id", attr.to_bytes(2, "little"), f"0x{attr:04X} {name}")


def _value_node(type_id: int, value: Any) -> list[Node]:
    return [
        Node("data_type", bytes((type_id,)), type_name(type_id)),
        Node("value", encode_attribute_value(type_id, value), value_text(type_id, value)),
    ]


@frozen_dataclass
class ReadAttributes:
    attribute_ids: tuple[int, ...]

    command_id: ClassVar[int] = GeneralCommand.READ_ATTRIBUTES

    def encode(self) -> bytes:
        return b"".join(_u16(a, "attribute id") for a in self.attribute_ids)

    @classmethod
    def decode(cls, data: bytes, pos: int, end: int) -> "ReadAttributes":
        if (end - pos) % 2:
            raise DecodeError("attribute id list has an odd length", end - 1, "attribute_ids")
        return cls(tuple(data[i] | (data[i + 1] << 8) for i in range(pos, end, 2)))

    def tree(self, cluster_id: int | None = None) -> Node:
        return Node("read_attributes", self.encode(), f"{len(self.attribute_ids)} attributes", tuple(_attr_node(cluster_id, a) for a in self.attribute_ids))


@frozen_dataclass
class ReadAttributeRecord:
    """One Read Attributes Response record: value and type only when status is SUCCESS."""

    attribute_id: int
    status: int = 0
    type_id: int | None = None
    value: Any = None

    def __post_init__(self) -> None:
        # every record of every poll's answer passes here, nearly always with plain ints already
        if self.attribute_id.__class__ is not int or self.status.__class__ is not int \
                or (self.type_id is not None and self.type_id.__class__ is not int):
            _set_plain_ints(self, "attribute_id", "status", "type_id")

    @classmethod
    def success(cls, attribute_id: int, type_id: int, value: Any) -> "ReadAttributeRecord":
        return cls(attribute_id, 0, type_id, value)

    @classmethod
    def failure(cls, attribute_id: int, status: int = Status.UNSUPPORTED_ATTRIBUTE) -> "ReadAttributeRecord":
        return cls(attribute_id, status)

    @staticmethod
    def success_bytes(attribute_id: int, type_id: int, value: Any) -> bytes:
        """The bytes of `success(attribute_id, type_id, value).encode()` without making the
        record: what a server writes for each attribute of every poll's answer."""
        return _u16(attribute_id, "attribute id") + bytes((Status.SUCCESS, type_id)) + encode_attribute_value(type_id, value)

    def encode(self) -> bytes:
        if self.status == Status.SUCCESS:
            if self.type_id is None:
                raise EncodeError("a successful record needs a data type")
            return self.success_bytes(self.attribute_id, self.type_id, self.value)
        return _u16(self.attribute_id, "attribute id") + _u8(self.status, "status")

    def tree(self, cluster_id: int | None = None) -> Node:
        children = [_attr_node(cluster_id, self.attribute_id), Node("status", bytes((self.status,)), status_name(self.status))]
        if self.status == Status.SUCCESS and self.type_id is not None:
            children += _value_node(self.type_id, self.value)
        name = attribute_name(cluster_id, self.attribute_id) if cluster_id is not None else f"0x{self.attribute_id:04X}"
        meaning = value_text(self.type_id, self.value) if self.status == Status.SUCCESS and self.type_id is not None else status_name(self.status)
        return Node("record", self.encode(), f"{name} = {meaning}", tuple(children))


@frozen_dataclass
class ReadAttributesResponse:
    records: tuple[ReadAttributeRecord, ...]

    command_id: ClassVar[int] = GeneralCommand.READ_ATTRIBUTES_RESPONSE

    def encode(self) -> bytes:
        return b"".join(r.encode() for r in self.records)

    @classmethod
    def decode(cls, data: bytes, pos: int, end: int) -> "ReadAttributesResponse":
        records = []
        while pos < end:
            _need(data, pos, 3, end, "record")
            attr = data[pos] | (data[pos + 1] << 8)
            status = data[pos + 2]
            pos += 3
            if status != Status.SUCCESS:
                records.append(ReadAttributeRecord(attr, status))
                continue
            _need(data, pos, 1, end, "record.data_type")
            type_id = data[pos]
            value, pos = decode_attribute_value(type_id, data, pos + 1, end)
            records.append(ReadAttributeRecord(attr, status, type_id, value))
        return cls(tuple(records))

    def get(self, attribute_id: int, default: Any = None) -> Any:
        """The value of a successfully read attribute."""
        for r in self.records:
            if r.attribute_id == attribute_id and r.status == Status.SUCCESS:
                return r.value
        return default

    def tree(self, cluster_id: int | None = None) -> Node:
        return Node("read_attributes_response", self.encode(), f"{len(self.records)} records", tuple(r.tree(cluster_id) for r in self.records))


@frozen_dataclass
class AttributeValue:
    """(attribute id, type, value): the record of Write Attributes and Report Attributes."""

    attribute_id: int
    type_id: int
    value: Any

    def __post_init__(self) -> None:
        _set_plain_ints(self, "attribute_id", "type_id")

    def encode(self) -> bytes:
        return _u16(self.attribute_id, "attribute id") + _u8(self.type_id, "data type") + encode_attribute_value(self.type_id, self.value)

    def tree(self, cluster_id: int | None = None) -> Node:
        name = attribute_name(cluster_id, self.attribute_id) if cluster_id is not None else f"0x{self.attribute_id:04X}"
        return Node("record", self.encode(), f"{name} = {value_text(self.type_id, self.value)}", tuple([_attr_node(cluster_id, self.attribute_id)] + _value_node(self.type_id, self.value)))


def _decode_attribute_values(data: bytes, pos: int, end: int) -> tuple[AttributeValue, ...]:
    records = []
    while pos < end:
        _need(data, pos, 3, end, "record")
        attr = data[pos] | (data[pos + 1] << 8)
        type_id = data[pos + 2]
        value, pos = decode_attribute_value(type_id, data, pos + 3, end)
        records.append(AttributeValue(attr, type_id, value))
    return tuple(records)


@frozen_dataclass
class WriteAttributes:
    """Write Attributes; `command_id` 0x02, 0x03 (undivided) or 0x05 (no response)."""

    records: tuple[AttributeValue, ...]
    command_id: int = 0x02

    def __post_init__(self) -> None:
        _set_plain_ints(self, "command_id")

    def encode(self) -> bytes:
        return b"".join(r.encode() for r in self.records)

    def tree(self, cluster_id: int | None = None) -> Node:
        return Node("write_attributes", self.encode(), f"{len(self.records)} records", tuple(r.tree(cluster_id) for r in self.records))


@frozen_dataclass
class ReportAttributes:
    records: tuple[AttributeValue, ...]

    command_id: ClassVar[int] = GeneralCommand.REPORT_ATTRIBUTES

    def encode(self) -> bytes:
        return b"".join(r.encode() for r in self.records)

    def tree(self, cluster_id: int | None = None) -> Node:
        return Node("report_attributes", self.encode(), f"{len(self.records)} records", tuple(r.tree(cluster_id) for r in self.records))


@frozen_dataclass
class AttributeStatus:
    """A failure record of Write Attributes Response."""

    status: int
    attribute_id: int

    def encode(self) -> bytes:
        return _u8(self.status, "status") + _u16(self.attribute_id, "attribute id")


@frozen_dataclass
class WriteAttributesResponse:
    """Empty `records` is the all-success form (a single 00 status byte)."""

    records: tuple[AttributeStatus, ...] = ()

    command_id: ClassVar[int] = GeneralCommand.WRITE_ATTRIBUTES_RESPONSE

    def encode(self) -> bytes:
        return b"".join(r.encode() for r in self.records) if self.records else b"\x00"

    @classmethod
    def decode(cls, data: bytes, pos: int, end: int) -> "WriteAttributesResponse":
        if end - pos == 1 and data[pos] == 0:
            return cls(())
        if end == pos or (end - pos) % 3:
            raise DecodeError("write-attributes response must be 00 or 3-byte records", pos, "records")
        return cls(tuple(AttributeStatus(data[i], data[i + 1] | (data[i + 2] << 8)) for i in range(pos, end, 3)))

    def tree(self, cluster_id: int | None = None) -> Node:
        if not self.records:
            return Node("write_attributes_response", b"\x00", "all attributes written")
        return Node(
            "write_attributes_response",
            self.encode(),
            f"{len(self.records)} failures",
            tuple(Node("record", r.encode(), f"{attribute_name(cluster_id, r.attribute_id) if cluster_id is not None else hex(r.attribute_id)}: {status_name(r.status)}") for r in self.records),
        )


@frozen_dataclass
class ReportingConfiguration:
    """A Configure Reporting record. direction 0: the sender's attribute will be reported (type,
    intervals, reportable change for analog types); direction 1: expect reports (timeout)."""

    direction: int
    attribute_id: int
    type_id: int | None = None
    min_interval: int | None = None
    max_interval: int | None = None
    reportable_change: Any = None
    timeout: int | None = None

    def encode(self) -> bytes:
        out = _u8(self.direction, "direction") + _u16(self.attribute_id, "attribute id")
        if self.direction == 0:
            if self.type_id is None or self.min_interval is None or self.max_interval is None:
                raise EncodeError("direction 0 needs type_id, min_interval and max_interval")
            out += _u8(self.type_id, "data type") + _u16(self.min_interval, "min interval") + _u16(self.max_interval, "max interval")
            if is_analog(self.type_id):
                out += encode_attribute_value(self.type_id, self.reportable_change)
            return out
        if self.timeout is None:
            raise EncodeError("direction 1 needs a timeout")
        return out + _u16(self.timeout, "timeout")


@frozen_dataclass
class ConfigureReporting:
    records: tuple[ReportingConfiguration, ...]

    command_id: ClassVar[int] = GeneralCommand.CONFIGURE_REPORTING

    def encode(self) -> bytes:
        return b"".join(r.encode() for r in self.records)

    @classmethod
    def decode(cls, data: bytes, pos: int, end: int) -> "ConfigureReporting":
        records = []
        while pos < end:
            _need(data, pos, 3, end, "record")
            direction = data[pos]
            attr = data[pos + 1] | (data[pos + 2] << 8)
            pos += 3
            if direction == 0:
                _need(data, pos, 5, end, "record")
                type_id = data[pos]
                lo = data[pos + 1] | (data[pos + 2] << 8)
                hi = data[pos + 3] | (data[pos + 4] << 8)
                pos += 5
                change = None
                if is_analog(type_id):
                    change, pos = decode_attribute_value(type_id, data, pos, end)
                elif type_id not in DATA_TYPES:
                    raise DecodeError(f"unknown ZCL data type 0x{type_id:02X}", pos - 5, "record.data_type")
                records.append(ReportingConfiguration(0, attr, type_id, lo, hi, change))
            elif direction == 1:
                _need(data, pos, 2, end, "record.timeout")
                records.append(ReportingConfiguration(1, attr, timeout=data[pos] | (data[pos + 1] << 8)))
                pos += 2
            else:
                raise DecodeError(f"reporting direction must be 0 or 1, got {direction}", pos - 3, "record.direction")
        return cls(tuple(records))

    def tree(self, cluster_id: int | None = None) -> Node:
        return Node(
            "configure_reporting",
            self.encode(),
            f"{len(self.records)} records",
            tuple(Node("record", r.encode(), attribute_name(cluster_id, r.attribute_id) if cluster_id is not None else hex(r.attribute_id)) for r in self.records),
        )


@frozen_dataclass
class ReportingStatus:
    status: int
    direction: int
    attribute_id: int

    def encode(self) -> bytes:
        return _u8(self.status, "status") + _u8(self.direction, "direction") + _u16(self.attribute_id, "attribute id")


@frozen_dataclass
class ConfigureReportingResponse:
    """Empty `records` is the all-success form (a single 00 status byte)."""

    records: tuple[ReportingStatus, ...] = ()

    command_id: ClassVar[int] = GeneralCommand.CONFIGURE_REPORTING_RESPONSE

    def encode(self) -> bytes:
        return b"".join(r.encode() for r in self.records) if self.records else b"\x00"

    @classmethod
    def decode(cls, data: bytes, pos: int, end: int) -> "ConfigureReportingResponse":
        if end - pos == 1 and data[pos] == 0:
            return cls(())
        if end == pos or (end - pos) % 4:
            raise DecodeError("configure-reporting response must be 00 or 4-byte records", pos, "records")
        return cls(tuple(ReportingStatus(data[i], data[i + 1], data[i + 2] | (data[i + 3] << 8)) for i in range(pos, end, 4)))

    def tree(self, cluster_id: int | None = None) -> Node:
        return Node("configure_reporting_response", self.encode(), "all configured" if not self.records else f"{len(self.records)} records")


@frozen_dataclass
class DefaultResponse:
    command_id_answered: int
    status: int

    command_id: ClassVar[int] = GeneralCommand.DEFAULT_RESPONSE

    def __post_init__(self) -> None:
        if type(self.command_id_answered) is not int or type(self.status) is not int:
            _set_plain_ints(self, "command_id_answered", "status")

    def encode(self) -> bytes:
        return _u8(self.command_id_answered, "command id") + _u8(self.status, "status")

    def to_json(self) -> dict:  # codec.jsonable's dataclass rule, written out (most GBZ responses)
        return {"type": "DefaultResponse", "command_id_answered": self.command_id_answered, "status": self.status}

    @classmethod
    def decode(cls, data: bytes, pos: int, end: int) -> "DefaultResponse":
        if end - pos != 2:
            raise DecodeError(f"default response must be 2 bytes, got {end - pos}", pos, "default_response")
        if cls is not DefaultResponse:
            return cls(data[pos], data[pos + 1])
        out = _new(cls)  # without the frozen-dataclass __init__: most GBZ responses are these
        _set_answered(out, data[pos])
        _set_status(out, data[pos + 1])
        return out

    def tree(self, cluster_id: int | None = None) -> Node:
        return Node(
            "default_response",
            self.encode(),
            f"command 0x{self.command_id_answered:02X}: {status_name(self.status)}",
            (
                Node("command_id", bytes((self.command_id_answered,)), f"0x{self.command_id_answered:02X}"),
                Node("status", bytes((self.status,)), status_name(self.status)),
            ),
        )


_new = object.__new__
_set_answered, _set_status = slot_setters(DefaultResponse, *(f.name for f in dataclass_fields(DefaultResponse)))


@frozen_dataclass
class DiscoverAttributes:
    start_attribute_id: int
    maximum_attribute_ids: int

    command_id: ClassVar[int] = GeneralCommand.DISCOVER_ATTRIBUTES

    def encode(self) -> bytes:
        return _u16(self.start_attribute_id, "start attribute id") + _u8(self.maximum_attribute_ids, "maximum")

    @classmethod
    def decode(cls, data: bytes, pos: int, end: int) -> "DiscoverAttributes":
        if end - pos != 3:
            raise DecodeError(f"discover attributes must be 3 bytes, got {end - pos}", pos, "discover_attributes")
        return cls(data[pos] | (data[pos + 1] << 8), data[pos + 2])

    def tree(self, cluster_id: int | None = None) -> Node:
        return Node("discover_attributes", self.encode(), f"from 0x{self.start_attribute_id:04X}, at most {self.maximum_attribute_ids}")


@frozen_dataclass
class AttributeInfo:
    attribute_id: int
    type_id: int


@frozen_dataclass
class DiscoverAttributesResponse:
    discovery_complete: int
    records: tuple[AttributeInfo, ...]

    command_id: ClassVar[int] = GeneralCommand.DISCOVER_ATTRIBUTES_RESPONSE

    def encode(self) -> bytes:
        return _u8(int(self.discovery_complete), "discovery complete") + b"".join(
            _u16(r.attribute_id, "attribute id") + _u8(r.type_id, "data type") for r in self.records
        )

    @classmethod
    def decode(cls, data: bytes, pos: int, end: int) -> "DiscoverAttributesResponse":
        if end == pos or (end - pos - 1) % 3:
            raise DecodeError("discover attributes response must be 1 + 3n bytes", pos, "discover_attributes_response")
        return cls(data[pos], tuple(AttributeInfo(data[i] | (data[i + 1] << 8), data[i + 2]) for i in range(pos + 1, end, 3)))

    def tree(self, cluster_id: int | None = None) -> Node:
        return Node("discover_attributes_response", self.encode(), f"{len(self.records)} attributes")


def read_attributes_response(
    cluster_id: int, attribute_ids: Iterable[int], values: Mapping[int, Any]
) -> ReadAttributesResponse:
    """Answer a Read Attributes request from a value map.  A value may be given bare (its type
    then comes from `ATTRIBUTES`) or as `(type_id, value)`; ids missing from `values` or of
    unknown type get UNSUPPORTED_ATTRIBUTE."""
    records = []
    for attr in attribute_ids:
        if attr not in values:
            records.append(ReadAttributeRecord.failure(attr))
            continue
        value = values[attr]
        if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], int) and value[0] in DATA_TYPES:
            type_id, value = value
        else:
            type_id = attribute_type(cluster_id, attr)
            if type_id is None:
                records.append(ReadAttributeRecord.failure(attr))
                continue
        records.append(ReadAttributeRecord.success(attr, type_id, value))
    return ReadAttributesResponse(tuple(records))


# --------------------------------------------------------------------------------------------
# Cluster-specific commands: layouts as data
# --------------------------------------------------------------------------------------------

REST = -1  # pseudo-type: all remaining bytes, raw
OPTIONAL = "?"  # marker: every later field may be absent (the payload may end here)


@frozen_dataclass
class Rep:
    """A repeated group: `count` names an earlier field of the same scope (masked with `mask`);
    without it the group repeats until the payload ends."""

    name: str
    fields: tuple
    count: str | None = None
    mask: int | None = None


@frozen_dataclass
class Switch:
    """Fields chosen by the value of an earlier field; `default` when the value is not listed."""

    selector: str
    cases: dict
    default: tuple = (("data", REST),)


# Plain ints (not IntEnum members) keep the layout interpreter's table lookups fast.
U8, U16, U24, U32, U48 = 0x20, 0x21, 0x22, 0x23, 0x25
I8, I16, I32 = 0x28, 0x29, 0x2B
E8, E16, B8, B16, B24, B32 = 0x30, 0x31, 0x18, 0x19, 0x1A, 0x1B
UTC, DATE, OCT, STR, BOOL, IEEE = 0xE2, 0xE1, 0x41, 0x42, 0x10, 0xF0

# Issuer event ids are UTC times in GB practice (0x1C374A80 = 2015-01-01), so they are typed UTC.
_PROVIDER = ("provider_id", U32)
_ISSUER = ("issuer_event_id", UTC)

_METERING_SNAPSHOT = Switch(
    "snapshot_payload_type",
    {
        # TOU information set delivered (no billing)
        4: (("current_summation_delivered", U48), ("number_of_tiers_in_use", U8), Rep("tier_summations", (("value", U48),), count="number_of_tiers_in_use")),
        # Block tier information set delivered (no billing): the GB snapshot [O RTDS GCS15b/16a/53]
        6: (
            ("current_summation_delivered", U48),
            ("number_of_tiers_in_use", U8),
            Rep("tier_summations", (("value", U48),), count="number_of_tiers_in_use"),
            ("number_of_tiers_and_block_thresholds_in_use", B8),
            Rep("tier_block_summations", (("value", U48),)),
        ),
    },
    default=(("snapshot_payload", REST),),
)

_PREPAY_SNAPSHOT = Switch(
    "snapshot_payload_type",
    {
        0: (  # debt/credit status [O RTDS GCS15b/16b; EC and credit remaining are signed]
            ("accumulated_debt", I32),
            ("type1_debt_remaining", U32),
            ("type2_debt_remaining", U32),
            ("type3_debt_remaining", U32),
            ("emergency_credit_remaining", I32),
            ("credit_remaining", I32),
        ),
    },
    default=(("snapshot_payload", REST),),
)

_EVENT_CONFIGURATION = Switch(
    "configuration_control",
    {
        0: (("number_of_events", U8), Rep("event_ids", (("event_id", U16),), count="number_of_events")),
        1: (("event_group_id", U16),),
        2: (("log_id", E8),),
        3: (("configuration_value_match", B8),),
    },
    default=(("configuration_payload", REST),),
)

_C2S, _S2C = False, True

# (cluster, server_to_client, command id) -> (name, fields)
COMMANDS: dict[tuple[int, bool, int], tuple[str, tuple]] = {
    # Basic
    (Cluster.BASIC, _C2S, 0x00): ("ResetToFactoryDefaults", ()),
    # Price: client -> server
    (Cluster.PRICE, _C2S, 0x00): ("GetCurrentPrice", (("command_options", B8),)),
    (Cluster.PRICE, _C2S, 0x01): ("GetScheduledPrices", (("start_time", UTC), ("number_of_events", U8))),
    (Cluster.PRICE, _C2S, 0x02): ("PriceAcknowledgement", (_PROVIDER, _ISSUER, ("price_ack_time", UTC), ("control", B8))),
    (Cluster.PRICE, _C2S, 0x03): ("GetBlockPeriods", (("start_time", UTC), ("number_of_events", U8), ("tariff_type", B8))),
    (Cluster.PRICE, _C2S, 0x04): ("GetConversionFactor", (("earliest_start_time", UTC), ("min_issuer_event_id", U32), ("number_of_commands", U8))),
    (Cluster.PRICE, _C2S, 0x05): ("GetCalorificValue", (("earliest_start_time", UTC), ("min_issuer_event_id", U32), ("number_of_commands", U8))),
    (Cluster.PRICE, _C2S, 0x06): ("GetTariffInformation", (("earliest_start_time", UTC), ("min_issuer_event_id", U32), ("number_of_commands", U8), ("tariff_type", B8))),
    (Cluster.PRICE, _C2S, 0x07): ("GetPriceMatrix", (("issuer_tariff_id", U32),)),
    (Cluster.PRICE, _C2S, 0x08): ("GetBlockThresholds", (("issuer_tariff_id", U32),)),
    (Cluster.PRICE, _C2S, 0x09): ("GetCO2Value", (("earliest_start_time", UTC), ("min_issuer_event_id", U32), ("number_of_commands", U8), ("tariff_type", B8))),
    (Cluster.PRICE, _C2S, 0x0A): ("GetTierLabels", (("issuer_tariff_id", U32),)),
    (Cluster.PRICE, _C2S, 0x0B): ("GetBillingPeriod", (("earliest_start_time", UTC), ("min_issuer_event_id", U32), ("number_of_commands", U8), ("tariff_type", B8))),
    (Cluster.PRICE, _C2S, 0x10): ("GetTariffCancellation", ()),
    # Price: server -> client
    (Cluster.PRICE, _S2C, 0x00): (
        "PublishPrice",
        (
            _PROVIDER, ("rate_label", OCT), _ISSUER, ("current_time", UTC), ("unit_of_measure", E8), ("currency", U16),
            ("price_trailing_digit_and_price_tier", B8), ("number_of_price_tiers_and_register_tier", B8), ("start_time", UTC),
            ("duration_in_minutes", U16), ("price", U32),
            OPTIONAL,  # GBCS: the 19 further octets carry no meaningful information [S GP]
            ("price_ratio", U8), ("generation_price", U32), ("generation_price_ratio", U8), ("alternate_cost_delivered", U32),
            ("alternate_cost_unit", E8), ("alternate_cost_trailing_digit", B8), ("number_of_block_thresholds", U8),
            ("price_control", B8), ("number_of_generation_tiers", U8), ("generation_tier", U8),
            ("extended_number_of_price_tiers", U8), ("extended_price_tier", U8), ("extended_register_tier", U8),
        ),
    ),
    (Cluster.PRICE, _S2C, 0x01): (
        "PublishBlockPeriod",
        (_PROVIDER, _ISSUER, ("block_period_start_time", UTC), ("block_period_duration", U24), ("block_period_control", B8),
         ("block_period_duration_type", B8), ("tariff_type", B8), ("tariff_resolution_period", E8)),
    ),
    (Cluster.PRICE, _S2C, 0x02): ("PublishConversionFactor", (_ISSUER, ("start_time", UTC), ("conversion_factor", U32), ("conversion_factor_trailing_digit", B8))),
    (Cluster.PRICE, _S2C, 0x03): (
        "PublishCalorificValue",
        (_ISSUER, ("start_time", UTC), ("calorific_value", U32), ("calorific_value_unit", E8), ("calorific_value_trailing_digit", B8)),
    ),
    (Cluster.PRICE, _S2C, 0x04): (
        "PublishTariffInformation",
        (_PROVIDER, _ISSUER, ("issuer_tariff_id", U32), ("start_time", UTC), ("tariff_type_charging_scheme", B8), ("tariff_label", OCT),
         ("number_of_price_tiers_in_use", U8), ("number_of_block_thresholds_in_use", U8), ("unit_of_measure", E8), ("currency", U16),
         ("price_trailing_digit", B8), ("standing_charge", U32), ("tier_block_mode", U8), ("block_threshold_multiplier", U24),
         ("block_threshold_divisor", U24)),
    ),
    (Cluster.PRICE, _S2C, 0x05): (
        "PublishPriceMatrix",
        (_PROVIDER, _ISSUER, ("start_time", UTC), ("issuer_tariff_id", U32), ("command_index", U8), ("number_of_commands", U8),
         ("sub_payload_control", B8), Rep("prices", (("tier_block_id", U8), ("price", U32)))),
    ),
    (Cluster.PRICE, _S2C, 0x06): (
        "PublishBlockThresholds",
        (_PROVIDER, _ISSUER, ("start_time", UTC), ("issuer_tariff_id", U32), ("command_index", U8), ("number_of_commands", U8),
         ("sub_payload_control", B8),
         Rep("tiers", (("tier_number_of_block_thresholds", B8), Rep("block_thresholds", (("threshold", U48),), count="tier_number_of_block_thresholds", mask=0x0F)))),
    ),
    (Cluster.PRICE, _S2C, 0x07): (
        "PublishCO2Value",
        (_PROVIDER, _ISSUER, ("start_time", UTC), ("tariff_type", B8), ("co2_value", U32), ("co2_value_unit", E8), ("co2_value_trailing_digit", B8)),
    ),
    (Cluster.PRICE, _S2C, 0x08): (
        "PublishTierLabels",
        (_PROVIDER, _ISSUER, ("issuer_tariff_id", U32), ("command_index", U8), ("number_of_commands", U8), ("number_of_labels", U8),
         Rep("labels", (("tier_id", U8), ("tier_label", OCT)), count="number_of_labels")),
    ),
    (Cluster.PRICE, _S2C, 0x09): (
        "PublishBillingPeriod",
        (_PROVIDER, _ISSUER, ("billing_period_start_time", UTC), ("billing_period_duration", U24), ("billing_period_duration_type", B8), ("tariff_type", B8)),
    ),
    (Cluster.PRICE, _S2C, 0x0A): (
        "PublishConsolidatedBill",
        (_PROVIDER, _ISSUER, ("billing_period_start_time", UTC), ("billing_period_duration", U24), ("billing_period_duration_type", B8),
         ("tariff_type", B8), ("consolidated_bill", U32), ("currency", U16), ("bill_trailing_digit", B8)),
    ),
    (Cluster.PRICE, _S2C, 0x0E): ("CancelTariff", (_PROVIDER, ("issuer_tariff_id", U32), ("tariff_type", B8))),
    # Demand Response / Load Control (HCALCS)
    (Cluster.DEMAND_RESPONSE_LOAD_CONTROL, _S2C, 0x00): (
        "LoadControlEvent",
        (("issuer_event_id", U32), ("device_class", B16), ("utility_enrollment_group", U8), ("start_time", UTC), ("duration_in_minutes", U16),
         ("criticality_level", U8), ("cooling_temperature_offset", U8), ("heating_temperature_offset", U8),
         ("cooling_temperature_set_point", I16), ("heating_temperature_set_point", I16), ("average_load_adjustment_percentage", I8),
         ("duty_cycle", U8), ("event_control", B8)),
    ),
    (Cluster.DEMAND_RESPONSE_LOAD_CONTROL, _S2C, 0x01): (
        "CancelLoadControlEvent",
        (("issuer_event_id", U32), ("device_class", B16), ("utility_enrollment_group", U8), ("cancel_control", B8), ("effective_time", UTC)),
    ),
    (Cluster.DEMAND_RESPONSE_LOAD_CONTROL, _S2C, 0x02): ("CancelAllLoadControlEvents", (("cancel_control", B8),)),
    (Cluster.DEMAND_RESPONSE_LOAD_CONTROL, _C2S, 0x00): (
        "ReportEventStatus",
        (("issuer_event_id", U32), ("event_status", E8), ("event_status_time", UTC), ("criticality_level_applied", U8),
         ("cooling_temperature_set_point_applied", U16), ("heating_temperature_set_point_applied", U16),
         ("average_load_adjustment_percentage_applied", I8), ("duty_cycle_applied", U8), ("event_control", B8),
         ("signature_type", E8), ("signature", REST)),
    ),
    (Cluster.DEMAND_RESPONSE_LOAD_CONTROL, _C2S, 0x01): (
        "GetScheduledEvents", (("start_time", UTC), ("number_of_events", U8), OPTIONAL, ("issuer_event_id", U32)),
    ),
    # Metering: client -> server
    (Cluster.METERING, _C2S, 0x00): ("GetProfile", (("interval_channel", E8), ("end_time", UTC), ("number_of_periods", U8))),
    (Cluster.METERING, _C2S, 0x01): ("RequestMirrorResponse", (("endpoint_id", U16),)),
    (Cluster.METERING, _C2S, 0x02): ("MirrorRemoved", (("endpoint_id", U16),)),
    (Cluster.METERING, _C2S, 0x03): ("RequestFastPollMode", (("fast_poll_update_period", U8), ("duration_in_minutes", U8))),
    (Cluster.METERING, _C2S, 0x04): (
        "ScheduleSnapshot",
        (("issuer_event_id", U32), ("command_index", U8), ("command_count", U8),
         Rep("schedules", (("snapshot_schedule_id", U8), ("snapshot_start_time", UTC), ("snapshot_schedule", B24), ("snapshot_payload_type", E8), ("snapshot_cause", B32)))),
    ),
    (Cluster.METERING, _C2S, 0x05): ("TakeSnapshot", (("snapshot_cause", B32),)),
    (Cluster.METERING, _C2S, 0x06): ("GetSnapshot", (("earliest_start_time", UTC), ("latest_end_time", UTC), ("snapshot_offset", U8), ("snapshot_cause", B32))),
    (Cluster.METERING, _C2S, 0x07): (
        "StartSampling",
        (_ISSUER, ("start_sampling_time", UTC), ("sample_type", E8), ("sample_request_interval", U16), ("max_number_of_samples", U16)),
    ),
    (Cluster.METERING, _C2S, 0x08): ("GetSampledData", (("sample_id", U16), ("earliest_sample_time", UTC), ("sample_type", E8), ("number_of_samples", U16))),
    (Cluster.METERING, _C2S, 0x09): ("MirrorReportAttributeResponse", (("notification_scheme", U8), Rep("notification_flags", (("flags", B32),)))),
    (Cluster.METERING, _C2S, 0x0A): ("ResetLoadLimitCounter", (_PROVIDER, _ISSUER)),
    (Cluster.METERING, _C2S, 0x0B): (
        "ChangeSupply",
        (_PROVIDER, _ISSUER, ("request_date_time", UTC), ("implementation_date_time", UTC), ("proposed_supply_status", E8), ("supply_control_bits", B8)),
    ),
    (Cluster.METERING, _C2S, 0x0C): ("LocalChangeSupply", (("proposed_supply_status", E8),)),
    (Cluster.METERING, _C2S, 0x0D): (
        "SetSupplyStatus",
        (_ISSUER, ("supply_tamper_state", E8), ("supply_depletion_state", E8), ("supply_uncontrolled_flow_state", E8), ("load_limit_supply_state", E8)),
    ),
    (Cluster.METERING, _C2S, 0x0E): (
        "SetUncontrolledFlowThreshold",
        (_PROVIDER, _ISSUER, ("uncontrolled_flow_threshold", U16), ("unit_of_measure", E8), ("multiplier", U16), ("divisor", U16),
         ("stabilisation_period", U8), ("measurement_period", U16)),
    ),
    # Metering: server -> client
    (Cluster.METERING, _S2C, 0x00): (
        "GetProfileResponse",
        (("end_time", UTC), ("status", E8), ("profile_interval_period", E8), ("number_of_periods_delivered", U8), Rep("intervals", (("value", U24),))),
    ),
    (Cluster.METERING, _S2C, 0x01): ("RequestMirror", ()),
    (Cluster.METERING, _S2C, 0x02): ("RemoveMirror", ()),
    (Cluster.METERING, _S2C, 0x03): ("RequestFastPollModeResponse", (("applied_update_period", U8), ("fast_poll_mode_end_time", UTC))),
    (Cluster.METERING, _S2C, 0x04): (
        "ScheduleSnapshotResponse", (("issuer_event_id", U32), Rep("confirmations", (("snapshot_schedule_id", U8), ("snapshot_schedule_confirmation", E8)))),
    ),
    (Cluster.METERING, _S2C, 0x05): ("TakeSnapshotResponse", (("snapshot_id", U32), ("snapshot_confirmation", E8))),
    (Cluster.METERING, _S2C, 0x06): (
        "PublishSnapshot",
        (("snapshot_id", U32), ("snapshot_time", UTC), ("total_snapshots_found", U8), ("command_index", U8), ("total_number_of_commands", U8),
         ("snapshot_cause", B32), ("snapshot_payload_type", E8), _METERING_SNAPSHOT),
    ),
    (Cluster.METERING, _S2C, 0x07): (
        "GetSampledDataResponse",
        (("sample_id", U16), ("sample_start_time", UTC), ("sample_type", E8), ("sample_request_interval", U16), ("number_of_samples", U16),
         Rep("samples", (("value", U24),), count="number_of_samples")),
    ),
    (Cluster.METERING, _S2C, 0x08): (
        "ConfigureMirror", (("issuer_event_id", U32), ("reporting_interval", U24), ("mirror_notification_reporting", BOOL), ("notification_scheme", U8)),
    ),
    (Cluster.METERING, _S2C, 0x09): ("ConfigureNotificationScheme", (("issuer_event_id", U32), ("notification_scheme", U8), ("notification_flag_order", B32))),
    (Cluster.METERING, _S2C, 0x0A): (
        "ConfigureNotificationFlags",
        (("issuer_event_id", U32), ("notification_scheme", U8), ("notification_flag_attribute_id", U16), ("cluster_id", U16),
         ("manufacturer_code", U16), ("number_of_commands", U8), Rep("command_ids", (("command_id", U8),), count="number_of_commands")),
    ),
    (Cluster.METERING, _S2C, 0x0B): (
        "GetNotifiedMessage", (("notification_scheme", U8), ("notification_flag_attribute_id", U16), ("notification_flags", B32)),
    ),
    (Cluster.METERING, _S2C, 0x0C): (
        "SupplyStatusResponse", (_PROVIDER, _ISSUER, ("implementation_date_time", UTC), ("supply_status", E8)),
    ),
    (Cluster.METERING, _S2C, 0x0D): ("StartSamplingResponse", (("sample_id", U16),)),
    # Messaging
    (Cluster.MESSAGING, _S2C, 0x00): (
        "DisplayMessage",
        (("message_id", UTC), ("message_control", B8), ("start_time", UTC), ("duration_in_minutes", U16), ("message", STR),
         OPTIONAL, ("extended_message_control", B8)),
    ),
    (Cluster.MESSAGING, _S2C, 0x01): ("CancelMessage", (("message_id", UTC), ("message_control", B8))),
    (Cluster.MESSAGING, _S2C, 0x02): (
        "DisplayProtectedMessage",
        (("message_id", UTC), ("message_control", B8), ("start_time", UTC), ("duration_in_minutes", U16), ("message", STR),
         OPTIONAL, ("extended_message_control", B8)),
    ),
    (Cluster.MESSAGING, _S2C, 0x03): ("CancelAllMessages", (("implementation_date_time", UTC),)),
    (Cluster.MESSAGING, _C2S, 0x00): ("GetLastMessage", ()),
    (Cluster.MESSAGING, _C2S, 0x01): (
        "MessageConfirmation",
        (("message_id", UTC), ("confirmation_time", UTC), OPTIONAL, ("message_confirmation_control", B8), ("message_response", OCT)),
    ),
    # Tunneling (GBCS "GB-HGRP" tunnel, protocol id 6)
    (Cluster.TUNNELING, _C2S, 0x00): (
        "RequestTunnel", (("protocol_id", E8), ("manufacturer_code", U16), ("flow_control_support", BOOL), ("maximum_incoming_transfer_size", U16)),
    ),
    (Cluster.TUNNELING, _C2S, 0x01): ("CloseTunnel", (("tunnel_id", U16),)),
    (Cluster.TUNNELING, _C2S, 0x02): ("TransferData", (("tunnel_id", U16), ("data", REST))),
    (Cluster.TUNNELING, _C2S, 0x03): ("TransferDataError", (("tunnel_id", U16), ("transfer_data_status", U8))),
    (Cluster.TUNNELING, _C2S, 0x04): ("AckTransferData", (("tunnel_id", U16), ("number_of_bytes_left", U16))),
    (Cluster.TUNNELING, _C2S, 0x05): ("ReadyData", (("tunnel_id", U16), ("number_of_octets_left", U16))),
    (Cluster.TUNNELING, _C2S, 0x06): ("GetSupportedTunnelProtocols", (("protocol_offset", U8),)),
    (Cluster.TUNNELING, _S2C, 0x00): ("RequestTunnelResponse", (("tunnel_id", U16), ("tunnel_status", U8), ("maximum_incoming_transfer_size", U16))),
    (Cluster.TUNNELING, _S2C, 0x01): ("TransferDataServer", (("tunnel_id", U16), ("data", REST))),
    (Cluster.TUNNELING, _S2C, 0x02): ("TransferDataErrorServer", (("tunnel_id", U16), ("transfer_data_status", U8))),
    (Cluster.TUNNELING, _S2C, 0x03): ("AckTransferDataServer", (("tunnel_id", U16), ("number_of_bytes_left", U16))),
    (Cluster.TUNNELING, _S2C, 0x04): ("ReadyDataServer", (("tunnel_id", U16), ("number_of_octets_left", U16))),
    (Cluster.TUNNELING, _S2C, 0x05): (
        "SupportedTunnelProtocolsResponse",
        (("protocol_list_complete", BOOL), ("protocol_count", U8),
         Rep("protocols", (("manufacturer_code", U16), ("protocol_id", U8)), count="protocol_count")),
    ),
    (Cluster.TUNNELING, _S2C, 0x06): ("TunnelClosureNotification", (("tunnel_id", U16),)),
    # Prepayment: client -> server
    (Cluster.PREPAYMENT, _C2S, 0x00): ("SelectAvailableEmergencyCredit", (("command_issue_date_time", UTC), ("originating_device", E8))),
    (Cluster.PREPAYMENT, _C2S, 0x02): (
        "ChangeDebt",
        (_ISSUER, ("debt_label", OCT), ("debt_amount", I32), ("debt_recovery_method", E8), ("debt_amount_type", E8),
         ("debt_recovery_start_time", UTC), ("debt_recovery_collection_time", U16), ("debt_recovery_frequency", E8),
         ("debt_recovery_amount", I32), ("debt_recovery_balance_percentage", U16)),
    ),
    (Cluster.PREPAYMENT, _C2S, 0x03): (
        "EmergencyCreditSetup", (_ISSUER, ("start_time", UTC), ("emergency_credit_limit", U32), ("emergency_credit_threshold", U32)),
    ),
    (Cluster.PREPAYMENT, _C2S, 0x04): ("ConsumerTopUp", (("originating_device", E8), ("top_up_code", OCT))),
    (Cluster.PREPAYMENT, _C2S, 0x05): (
        "CreditAdjustment", (_ISSUER, ("start_time", UTC), ("credit_adjustment_type", E8), ("credit_adjustment_value", I32)),
    ),
    (Cluster.PREPAYMENT, _C2S, 0x06): (
        "ChangePaymentMode",
        (_PROVIDER, _ISSUER, ("implementation_date_time", UTC), ("proposed_payment_control_configuration", B16), ("cut_off_value", I32)),
    ),
    (Cluster.PREPAYMENT, _C2S, 0x07): (
        "GetPrepaySnapshot", (("earliest_start_time", UTC), ("latest_end_time", UTC), ("snapshot_offset", U8), ("snapshot_cause", B32)),
    ),
    (Cluster.PREPAYMENT, _C2S, 0x08): ("GetTopUpLog", (("latest_end_time", UTC), ("number_of_records", U8))),
    (Cluster.PREPAYMENT, _C2S, 0x09): ("SetLowCreditWarningLevel", (("low_credit_warning_level", U32),)),
    (Cluster.PREPAYMENT, _C2S, 0x0A): ("GetDebtRepaymentLog", (("latest_end_time", UTC), ("number_of_debts", U8), ("debt_type", E8))),
    (Cluster.PREPAYMENT, _C2S, 0x0B): (
        "SetMaximumCreditLimit",
        (_PROVIDER, _ISSUER, ("implementation_date_time", UTC), ("maximum_credit_level", U32), ("maximum_credit_per_top_up", U32)),
    ),
    (Cluster.PREPAYMENT, _C2S, 0x0C): ("SetOverallDebtCap", (_PROVIDER, _ISSUER, ("implementation_date_time", UTC), ("overall_debt_cap", I32))),
    # Prepayment: server -> client
    (Cluster.PREPAYMENT, _S2C, 0x01): (
        "PublishPrepaySnapshot",
        (("snapshot_id", U32), ("snapshot_time", UTC), ("total_snapshots_found", U8), ("command_index", U8), ("total_number_of_commands", U8),
         ("snapshot_cause", B32), ("snapshot_payload_type", E8), _PREPAY_SNAPSHOT),
    ),
    (Cluster.PREPAYMENT, _S2C, 0x02): (
        "ChangePaymentModeResponse",
        (("friendly_credit", B8), ("friendly_credit_calendar_id", U32), ("emergency_credit_limit", U32), ("emergency_credit_threshold", U32)),
    ),
    (Cluster.PREPAYMENT, _S2C, 0x03): (
        "ConsumerTopUpResponse", (("result_type", E8), ("top_up_value", I32), ("source_of_top_up", E8), ("credit_remaining", I32)),
    ),
    (Cluster.PREPAYMENT, _S2C, 0x05): (
        "PublishTopUpLog",
        (("command_index", U8), ("total_number_of_commands", U8), Rep("top_ups", (("top_up_code", OCT), ("top_up_amount", I32), ("top_up_time", UTC)))),
    ),
    (Cluster.PREPAYMENT, _S2C, 0x06): (
        "PublishDebtLog",
        (("command_index", U8), ("total_number_of_commands", U8),
         Rep("debts", (("collection_time", UTC), ("amount_collected", U32), ("debt_type", E8), ("outstanding_debt", U32)))),
    ),
    # Calendar: client -> server
    (Cluster.CALENDAR, _C2S, 0x00): (
        "GetCalendar",
        (OPTIONAL, ("earliest_start_time", UTC), ("min_issuer_event_id", U32), ("number_of_calendars", U8), ("calendar_type", E8), _PROVIDER),
    ),
    (Cluster.CALENDAR, _C2S, 0x01): (
        "GetDayProfiles", (_PROVIDER, ("issuer_calendar_id", U32), ("start_day_id", U8), ("number_of_days", U8)),
    ),
    (Cluster.CALENDAR, _C2S, 0x02): (
        "GetWeekProfiles", (_PROVIDER, ("issuer_calendar_id", U32), ("start_week_id", U8), ("number_of_weeks", U8)),
    ),
    (Cluster.CALENDAR, _C2S, 0x03): ("GetSeasons", (_PROVIDER, ("issuer_calendar_id", U32))),
    (Cluster.CALENDAR, _C2S, 0x04): (
        "GetSpecialDays", (("start_time", UTC), ("number_of_events", U8), ("calendar_type", E8), _PROVIDER, ("issuer_calendar_id", U32)),
    ),
    (Cluster.CALENDAR, _C2S, 0x05): ("GetCalendarCancellation", ()),
    # Calendar: server -> client
    (Cluster.CALENDAR, _S2C, 0x00): (
        "PublishCalendar",
        (_PROVIDER, _ISSUER, ("issuer_calendar_id", U32), ("start_time", UTC), ("calendar_type", E8), ("calendar_time_reference", U8),
         ("calendar_name", OCT), ("number_of_seasons", U8), ("number_of_week_profiles", U8), ("number_of_day_profiles", U8)),
    ),
    (Cluster.CALENDAR, _S2C, 0x01): (
        "PublishDayProfile",
        (_PROVIDER, _ISSUER, ("issuer_calendar_id", U32), ("day_id", U8), ("total_number_of_schedule_entries", U8), ("command_index", U8),
         ("total_number_of_commands", U8), ("calendar_type", E8),
         # value = price tier (TOU calendars), friendly credit enable or auxiliary switch state
         Rep("schedule_entries", (("start_time", U16), ("value", U8)))),
    ),
    (Cluster.CALENDAR, _S2C, 0x02): (
        "PublishWeekProfile",
        (_PROVIDER, _ISSUER, ("issuer_calendar_id", U32), ("week_id", U8), ("day_id_ref_monday", U8), ("day_id_ref_tuesday", U8),
         ("day_id_ref_wednesday", U8), ("day_id_ref_thursday", U8), ("day_id_ref_friday", U8), ("day_id_ref_saturday", U8),
         ("day_id_ref_sunday", U8)),
    ),
    (Cluster.CALENDAR, _S2C, 0x03): (
        "PublishSeasons",
        (_PROVIDER, _ISSUER, ("issuer_calendar_id", U32), ("command_index", U8), ("total_number_of_commands", U8),
         Rep("seasons", (("season_start_date", DATE), ("week_id_ref", U8)))),
    ),
    (Cluster.CALENDAR, _S2C, 0x04): (
        "PublishSpecialDays",
        (_PROVIDER, _ISSUER, ("issuer_calendar_id", U32), ("start_time", UTC), ("calendar_type", E8), ("total_number_of_special_days", U8),
         ("command_index", U8), ("total_number_of_commands", U8), Rep("special_days", (("special_day_date", DATE), ("day_id_ref", U8)))),
    ),
    (Cluster.CALENDAR, _S2C, 0x05): ("CancelCalendar", (_PROVIDER, ("issuer_calendar_id", U32), ("calendar_type", E8))),
    # Device Management
    (Cluster.DEVICE_MANAGEMENT, _C2S, 0x00): ("GetChangeOfTenancy", ()),
    (Cluster.DEVICE_MANAGEMENT, _C2S, 0x01): ("GetChangeOfSupplier", ()),
    (Cluster.DEVICE_MANAGEMENT, _C2S, 0x02): ("RequestNewPassword", (("password_type", E8),)),
    (Cluster.DEVICE_MANAGEMENT, _C2S, 0x03): ("GetSiteId", ()),
    (Cluster.DEVICE_MANAGEMENT, _C2S, 0x04): (
        "ReportEventConfiguration", (("command_index", U8), ("total_commands", U8), Rep("events", (("event_id", U16), ("event_configuration", B8)))),
    ),
    (Cluster.DEVICE_MANAGEMENT, _C2S, 0x05): ("GetCIN", ()),
    (Cluster.DEVICE_MANAGEMENT, _S2C, 0x00): (
        "PublishChangeOfTenancy",
        (_PROVIDER, _ISSUER, ("tariff_type", B8), ("implementation_date_time", UTC), ("proposed_tenancy_change_control", B32)),
    ),
    (Cluster.DEVICE_MANAGEMENT, _S2C, 0x01): (
        "PublishChangeOfSupplier",
        (("current_provider_id", U32), _ISSUER, ("tariff_type", B8), ("proposed_provider_id", U32), ("provider_change_implementation_time", UTC),
         ("provider_change_control", B32), ("proposed_provider_name", OCT), ("proposed_provider_contact_details", OCT)),
    ),
    (Cluster.DEVICE_MANAGEMENT, _S2C, 0x02): (
        "RequestNewPasswordResponse",
        (_ISSUER, ("implementation_date_time", UTC), ("duration_in_minutes", U16), ("password_type", E8), ("password", OCT)),
    ),
    (Cluster.DEVICE_MANAGEMENT, _S2C, 0x03): ("UpdateSiteId", (_ISSUER, ("site_id_time", UTC), _PROVIDER, ("site_id", OCT))),
    (Cluster.DEVICE_MANAGEMENT, _S2C, 0x04): (
        "SetEventConfiguration",
        (_ISSUER, ("start_date_time", UTC), ("event_configuration", B8), ("configuration_control", E8), _EVENT_CONFIGURATION),
    ),
    (Cluster.DEVICE_MANAGEMENT, _S2C, 0x05): ("GetEventConfiguration", (("event_id", U16),)),
    (Cluster.DEVICE_MANAGEMENT, _S2C, 0x06): ("UpdateCIN", (_ISSUER, ("cin_implementation_time", UTC), _PROVIDER, ("customer_id_number", OCT))),
    # Events
    (Cluster.EVENTS, _C2S, 0x00): (
        "GetEventLog",
        (("event_control_log_id", B8), ("event_id", U16), ("start_time", UTC), ("end_time", UTC), ("number_of_events", U8), ("event_offset", U16)),
    ),
    (Cluster.EVENTS, _C2S, 0x01): ("ClearEventLogRequest", (("log_id", B8),)),
    (Cluster.EVENTS, _S2C, 0x00): (
        "PublishEvent", (("log_id", E8), ("event_id", U16), ("event_time", UTC), ("event_control", B8), ("event_data", OCT)),
    ),
    (Cluster.EVENTS, _S2C, 0x01): (
        "PublishEventLog",
        (("total_number_of_events", U16), ("command_index", U8), ("total_commands", U8), ("log_payload_control", B8),
         Rep("events", (("log_id", E8), ("event_id", U16), ("event_time", UTC), ("event_data", OCT)))),
    ),
    (Cluster.EVENTS, _S2C, 0x02): ("ClearEventLogResponse", (("cleared_event_logs", B8),)),
    # Sub-GHz
    (Cluster.SUB_GHZ, _S2C, 0x00): ("SuspendZCLMessages", (("period", U8),)),
    (Cluster.SUB_GHZ, _C2S, 0x00): ("GetSuspendZCLMessagesStatus", ()),
    # OTA Upgrade
    (Cluster.OTA_UPGRADE, _S2C, 0x00): (
        "ImageNotify",
        (("payload_type", E8), ("query_jitter", U8), OPTIONAL, ("manufacturer_code", U16), ("image_type", U16), ("new_file_version", U32)),
    ),
    (Cluster.OTA_UPGRADE, _C2S, 0x01): (
        "QueryNextImageRequest",
        (("field_control", B8), ("manufacturer_code", U16), ("image_type", U16), ("current_file_version", U32), OPTIONAL, ("hardware_version", U16)),
    ),
    (Cluster.OTA_UPGRADE, _S2C, 0x02): (
        "QueryNextImageResponse",
        (("status", E8), OPTIONAL, ("manufacturer_code", U16), ("image_type", U16), ("file_version", U32), ("image_size", U32)),
    ),
    (Cluster.OTA_UPGRADE, _C2S, 0x03): (
        "ImageBlockRequest",
        (("field_control", B8), ("manufacturer_code", U16), ("image_type", U16), ("file_version", U32), ("file_offset", U32),
         ("maximum_data_size", U8), OPTIONAL, ("request_node_address", IEEE), ("minimum_block_period", U16)),
    ),
    (Cluster.OTA_UPGRADE, _S2C, 0x05): (
        "ImageBlockResponse",
        (("status", E8), Switch("status", {
            0x00: (("manufacturer_code", U16), ("image_type", U16), ("file_version", U32), ("file_offset", U32), ("image_data", OCT)),
            0x97: (("current_time", UTC), ("request_time", UTC), ("minimum_block_period", U16)),
        }, default=())),
    ),
    (Cluster.OTA_UPGRADE, _C2S, 0x06): (
        "UpgradeEndRequest", (("status", E8), ("manufacturer_code", U16), ("image_type", U16), ("file_version", U32)),
    ),
    (Cluster.OTA_UPGRADE, _S2C, 0x07): (
        "UpgradeEndResponse", (("manufacturer_code", U16), ("image_type", U16), ("file_version", U32), ("current_time", UTC), ("upgrade_time", UTC)),
    ),
    # Key Establishment (CBKE)
    (Cluster.KEY_ESTABLISHMENT, _C2S, 0x00): (
        "InitiateKeyEstablishmentRequest",
        (("key_establishment_suite", B16), ("ephemeral_data_generate_time", U8), ("confirm_key_generate_time", U8), ("identity", REST)),
    ),
    (Cluster.KEY_ESTABLISHMENT, _C2S, 0x01): ("EphemeralDataRequest", (("ephemeral_data", REST),)),
    (Cluster.KEY_ESTABLISHMENT, _C2S, 0x02): ("ConfirmKeyDataRequest", (("secure_message_authentication_code", REST),)),
    (Cluster.KEY_ESTABLISHMENT, _C2S, 0x03): (
        "TerminateKeyEstablishment", (("status_code", E8), ("wait_time", U8), ("key_establishment_suite", B16)),
    ),
    (Cluster.KEY_ESTABLISHMENT, _S2C, 0x00): (
        "InitiateKeyEstablishmentResponse",
        (("key_establishment_suite", B16), ("ephemeral_data_generate_time", U8), ("confirm_key_generate_time", U8), ("identity", REST)),
    ),
    (Cluster.KEY_ESTABLISHMENT, _S2C, 0x01): ("EphemeralDataResponse", (("ephemeral_data", REST),)),
    (Cluster.KEY_ESTABLISHMENT, _S2C, 0x02): ("ConfirmKeyDataResponse", (("secure_message_authentication_code", REST),)),
    (Cluster.KEY_ESTABLISHMENT, _S2C, 0x03): (
        "TerminateKeyEstablishmentServer", (("status_code", E8), ("wait_time", U8), ("key_establishment_suite", B16)),
    ),
}

_COMMANDS_BY_NAME: dict[tuple[int, str], tuple[bool, int]] = {}
for (_cl, _s2c, _cmd), (_name, _) in COMMANDS.items():
    assert (_cl, _name) not in _COMMANDS_BY_NAME, _name
    _COMMANDS_BY_NAME[(_cl, _name)] = (_s2c, _cmd)
del _cl, _s2c, _cmd, _name


def command_name(cluster_id: int | None, frame_type: int, direction: int, command_id: int, manufacturer_code: int | None = None) -> str:
    if manufacturer_code is not None and frame_type == FrameType.CLUSTER:
        return f"manufacturer-specific command 0x{command_id:02X}"
    if frame_type == FrameType.GLOBAL:
        try:
            return GeneralCommand(command_id).name.replace("_", " ").title().replace(" ", "")
        except ValueError:
            return f"general command 0x{command_id:02X}"
    hit = COMMANDS.get((cluster_id, bool(direction), command_id)) if cluster_id is not None else None
    return hit[0] if hit else f"command 0x{command_id:02X}"


Fields = tuple[tuple[str, Any], ...]


def _decode_fields_into(spec: tuple, data: bytes, pos: int, end: int, out: list, scope: dict) -> int:
    optional = False
    for item in spec:
        if type(item) is tuple:
            if optional and pos >= end:
                return pos
            name, type_id = item
            if type_id == REST:
                value, pos = bytes(data[pos:end]), end
            else:
                try:
                    value, pos = decode_attribute_value(type_id, data, pos, end)
                except DecodeError as exc:
                    raise DecodeError(exc.args[0], exc.offset, name) from None
            out.append((name, value))
            scope[name] = value
        elif item is OPTIONAL:
            optional = True
        elif optional and pos >= end:
            return pos
        elif type(item) is Rep:
            groups = []
            if item.count is None:
                while pos < end:
                    sub: list = []
                    start = pos
                    pos = _decode_fields_into(item.fields, data, pos, end, sub, {})
                    if pos == start:  # pragma: no cover - every group field takes bytes
                        raise DecodeError("empty repeated group", pos, item.name)
                    groups.append(tuple(sub))
            else:
                count = scope[item.count]
                if item.mask is not None:
                    count &= item.mask
                if count > end - pos:
                    raise DecodeError(f"{item.count} = {count} exceeds the bytes left", pos, item.name)
                for _ in range(count):
                    sub = []
                    pos = _decode_fields_into(item.fields, data, pos, end, sub, {})
                    groups.append(tuple(sub))
            value = tuple(groups)
            out.append((item.name, value))
            scope[item.name] = value
        else:  # Switch
            pos = _decode_fields_into(item.cases.get(scope.get(item.selector), item.default), data, pos, end, out, scope)
    return pos


# --- Compiled layouts: the same reading as `_decode_fields_into`, faster ----------------------
#
# A layout is compiled once into steps.  A run of adjacent fixed-width fields becomes one
# struct.unpack_from (widths struct has no letter for are read as bytes and converted after); a
# run that does not fit in the bytes left, and every variable-length or float field, goes to
# `_decode_fields_into` itself, so errors and the optional tail read exactly as there.  Only the
# names a Rep count or a Switch selector reads are kept in the scope dict.

_RUN, _REST, _STR, _ITEMS, _REP, _SWITCH = range(6)
_UINT_LETTERS = {1: "B", 2: "H", 4: "I", 8: "Q"}
_INT_LETTERS = {1: "b", 2: "h", 4: "i", 8: "q"}


def _bool_value(b: int) -> Any:
    return bool(b) if b < 2 else b


def _fixed_reader(type_id: int) -> tuple[str, Any] | None:
    """(struct letter(s), conversion of the unpacked value or None) for a fixed-width type that
    `decode_attribute_value` reads without fail given its bytes; None for the rest."""
    if type_id == REST or type_id not in DATA_TYPES:
        return None
    kind, size = DATA_TYPES[type_id]
    if kind == "uint":
        letter = _UINT_LETTERS.get(size)
        return (letter, None) if letter else (f"{size}s", lambda raw: int.from_bytes(raw, "little"))
    if kind == "int":
        letter = _INT_LETTERS.get(size)
        return (letter, None) if letter else (f"{size}s", lambda raw: int.from_bytes(raw, "little", signed=True))
    if kind == "bool":
        return "B", _bool_value
    if kind == "ieee":
        return "8s", lambda raw: raw[::-1]
    if kind == "key":
        return "16s", None
    if kind == "tod":
        return "4s", lambda raw: TimeOfDay(raw[0], raw[1], raw[2], raw[3])
    if kind == "date":
        return "4s", lambda raw: ZclDate(raw[0], raw[1], raw[2], raw[3])
    return None  # none (no bytes), float (NaN check), variable length


def _scoped_names(spec: tuple, out: set) -> set:
    for item in spec:
        if type(item) is Rep:
            if item.count is not None:
                out.add(item.count)
            _scoped_names(item.fields, out)
        elif type(item) is Switch:
            out.add(item.selector)
            for case in (*item.cases.values(), item.default):
                _scoped_names(case, out)
    return out


def _compile(spec: tuple, scoped: frozenset) -> tuple:
    steps: list = []
    run: list = []  # (item, reader) of the current run of fixed-width fields
    optional = False

    def close_run() -> None:
        if run:
            fmt = "<" + "".join(r[0] for _, r in run)
            names = tuple(item[0] for item, _ in run)
            fixes = tuple((i, r[1]) for i, (_, r) in enumerate(run) if r[1] is not None)
            keep = tuple((i, item[0]) for i, (item, _) in enumerate(run) if item[0] in scoped)
            items = ((OPTIONAL,) if optional else ()) + tuple(item for item, _ in run)
            steps.append((_RUN, struct.Struct(fmt), struct.calcsize(fmt), names, fixes, keep, optional, items))
            run.clear()

    for item in spec:
        if item is OPTIONAL:
            close_run()
            optional = True
            continue
        if type(item) is tuple:
            reader = _fixed_reader(item[1])
            if reader is not None:
                run.append((item, reader))
                continue
        close_run()
        if type(item) is tuple:
            kind = DATA_TYPES.get(item[1], ("",))[0]
            if item[0] in scoped:
                steps.append((_ITEMS, ((OPTIONAL,) if optional else ()) + (item,)))
            elif item[1] == REST:
                steps.append((_REST, item[0], optional))
            elif kind in ("octets", "string"):
                steps.append((_STR, item[0], kind == "string", optional, ((OPTIONAL,) if optional else ()) + (item,)))
            else:
                steps.append((_ITEMS, ((OPTIONAL,) if optional else ()) + (item,)))
        elif type(item) is Rep:
            mask = item.mask
            steps.append((_REP, item.name, _compile(item.fields, scoped), item.count, mask, optional, item.name in scoped))
        else:
            cases = {k: _compile(v, scoped) for k, v in item.cases.items()}
            steps.append((_SWITCH, item.selector, cases, _compile(item.default, scoped), optional))
    close_run()
    return tuple(steps)


def _read_fields(steps: tuple, data: bytes, pos: int, end: int, out: list, scope: dict) -> int:
    """`_decode_fields_into` for a compiled layout."""
    for step in steps:
        op = step[0]
        if op is _RUN:
            _, unpacker, size, names, fixes, keep, optional, items = step
            if optional and pos >= end:
                return pos
            if pos + size > end:  # short: the general reader fails or stops where it should
                pos = _decode_fields_into(items, data, pos, end, out, scope)
                continue
            values = unpacker.unpack_from(data, pos)
            pos += size
            if fixes:
                values = list(values)
                for i, fix in fixes:
                    values[i] = fix(values[i])
            out += zip(names, values)
            for i, name in keep:
                scope[name] = values[i]
        elif op is _REST:
            if step[2] and pos >= end:
                return pos
            out.append((step[1], bytes(data[pos:end])))
            pos = end
        elif op is _STR:  # octet or character string with a one-byte length
            _, name, text, optional, items = step
            if optional and pos >= end:
                return pos
            n = data[pos] if pos < end else 0
            stop = pos + 1 + n
            if n == 0xFF:
                out.append((name, None))
                pos += 1
            elif stop <= end:
                raw = bytes(data[pos + 1 : stop])
                out.append((name, _text(raw) if text else raw))
                pos = stop
            else:  # short: the general reader raises as it should
                pos = _decode_fields_into(items, data, pos, end, out, scope)
        elif op is _ITEMS:
            pos = _decode_fields_into(step[1], data, pos, end, out, scope)
        elif op is _REP:
            _, name, sub, count_name, mask, optional, keep = step
            if optional and pos >= end:
                return pos
            groups = []
            if count_name is None:
                while pos < end:
                    group: list = []
                    start = pos
                    pos = _read_fields(sub, data, pos, end, group, {})
                    if pos == start:  # pragma: no cover - every group field takes bytes
                        raise DecodeError("empty repeated group", pos, name)
                    groups.append(tuple(group))
            else:
                count = scope[count_name]
                if mask is not None:
                    count &= mask
                if count > end - pos:
                    raise DecodeError(f"{count_name} = {count} exceeds the bytes left", pos, name)
                for _ in range(count):
                    group = []
                    pos = _read_fields(sub, data, pos, end, group, {})
                    groups.append(tuple(group))
            value = tuple(groups)
            out.append((name, value))
            if keep:
                scope[name] = value
        else:  # _SWITCH
            _, selector, cases, default, optional = step
            if optional and pos >= end:
                return pos
            pos = _read_fields(cases.get(scope.get(selector), default), data, pos, end, out, scope)
    return pos


def _item_name(item) -> str | None:
    if type(item) is tuple:
        return item[0]
    if type(item) is Rep:
        return item.name
    return None


def _encode_fields_into(spec: tuple, values: Mapping[str, Any], out: list) -> None:
    optional = False
    for index, item in enumerate(spec):
        if item is OPTIONAL:
            optional = True
            continue
        if type(item) is Switch:
            _encode_fields_into(item.cases.get(values.get(item.selector), item.default), values, out)
            continue
        name = item[0] if type(item) is tuple else item.name
        if name not in values:
            if not optional:
                raise EncodeError(f"missing field {name}")
            later = [n for n in map(_item_name, spec[index + 1 :]) if n is not None and n in values]
            if later:
                raise EncodeError(f"optional field {name} missing but later field {later[0]} given")
            return
        value = values[name]
        if type(item) is Rep:
            if not isinstance(value, (tuple, list)):
                raise EncodeError(f"{name} must be a sequence of groups")
            for group in value:
                _encode_fields_into(item.fields, dict(group), out)
            continue
        type_id = item[1]
        if type_id == REST:
            if not isinstance(value, (bytes, bytearray)):
                raise EncodeError(f"{name} must be bytes")
            out.append(bytes(value))
            continue
        try:
            out.append(encode_attribute_value(type_id, value))
        except EncodeError as exc:
            raise EncodeError(f"{name}: {exc}") from None


def _normalise(spec: tuple, values: Mapping[str, Any]) -> Fields:
    """Builder input (dicts, lists) -> the canonical ordered pairs; fills in group counts."""
    given = dict(values)
    out: list = []
    used: set[str] = set()
    _normalise_into(spec, given, out, used)
    unknown = set(given) - used
    if unknown:
        raise EncodeError(f"unknown fields: {', '.join(sorted(unknown))}")
    return tuple(out)


def _normalise_into(spec: tuple, values: dict, out: list, used: set) -> None:
    for item in spec:
        if isinstance(item, Rep) and item.count is not None and item.mask is None and item.name in values and item.count not in values:
            values[item.count] = len(values[item.name])
    optional = False
    for item in spec:
        if item is OPTIONAL:
            optional = True
            continue
        if isinstance(item, Switch):
            _normalise_into(item.cases.get(values.get(item.selector), item.default), values, out, used)
            continue
        name = _item_name(item)
        if name not in values:
            if optional:
                continue
            raise EncodeError(f"missing field {name}")
        used.add(name)
        value = values[name]
        if isinstance(item, Rep):
            if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
                raise EncodeError(f"{name} must be a sequence of groups")
            value = tuple(_normalise(item.fields, g if isinstance(g, Mapping) else dict(g)) for g in value)
        out.append((name, value))


@frozen_dataclass
class ClusterCommand:
    """A cluster-specific command decoded by its layout in `COMMANDS`.

    `fields` are (name, value) pairs in wire order; repeated groups are (name, tuple of groups),
    each group again a tuple of pairs.  `extra` keeps trailing bytes beyond the layout (ZCL
    receivers must tolerate fields added by later spec versions)."""

    cluster_id: int
    command_id: int
    server_to_client: bool
    fields: Fields
    extra: bytes = b""

    def __post_init__(self) -> None:
        if type(self.cluster_id) is not int or type(self.command_id) is not int:
            _set_plain_ints(self, "cluster_id", "command_id")

    @property
    def name(self) -> str:
        hit = COMMANDS.get((self.cluster_id, self.server_to_client, self.command_id))
        return hit[0] if hit else f"command 0x{self.command_id:02X}"

    @property
    def direction(self) -> Direction:
        return Direction.SERVER_TO_CLIENT if self.server_to_client else Direction.CLIENT_TO_SERVER

    def get(self, name: str, default: Any = None) -> Any:
        for k, v in self.fields:
            if k == name:
                return v
        return default

    def __getitem__(self, name: str) -> Any:
        for k, v in self.fields:
            if k == name:
                return v
        raise KeyError(name)

    def as_dict(self) -> dict[str, Any]:
        """Fields as a dict, repeated groups as lists of dicts (the builder's input form)."""
        return _pairs_to_dict(self.fields)

    @classmethod
    def build(cls, cluster_id: int, command: int | str, /, *, server_to_client: bool | None = None, **values: Any) -> "ClusterCommand":
        """Build from field values (repeated groups as lists of dicts; group counts are filled in).
        `command` is the id or the name from `COMMANDS` (the name also fixes the direction)."""
        if isinstance(command, str):
            hit = _COMMANDS_BY_NAME.get((int(cluster_id), command))
            if hit is None:
                raise EncodeError(f"{cluster_name(cluster_id)} has no command {command}")
            s2c, command_id = hit
            if server_to_client is not None and server_to_client != s2c:
                raise EncodeError(f"{command} is {'server→client' if s2c else 'client→server'}")
        else:
            if server_to_client is None:
                raise EncodeError("server_to_client is needed with a numeric command id")
            s2c, command_id = server_to_client, command
        spec = COMMANDS.get((int(cluster_id), s2c, command_id))
        if spec is None:
            raise EncodeError(f"no layout for {cluster_name(cluster_id)} command 0x{command_id:02X}")
        extra = values.pop("extra", b"")
        cmd = cls(int(cluster_id), command_id, s2c, _normalise(spec[1], values), bytes(extra))
        cmd.encode()  # fail early on out-of-range values
        return cmd

    def encode(self) -> bytes:
        spec = COMMANDS.get((self.cluster_id, self.server_to_client, self.command_id))
        if spec is None:
            raise EncodeError(f"no layout for {cluster_name(self.cluster_id)} command 0x{self.command_id:02X}")
        out: list = []
        _encode_fields_into(spec[1], dict(self.fields), out)
        return b"".join(out) + self.extra

    def tree(self, cluster_id: int | None = None) -> Node:
        spec = COMMANDS.get((self.cluster_id, self.server_to_client, self.command_id))
        if spec is None:
            return Node(self.name, b"", "no layout known")
        children = _tree_fields(spec[1], dict(self.fields))
        if self.extra:
            children.append(Node("extra", self.extra, f"{len(self.extra)} trailing bytes beyond the known layout"))
        return Node(self.name, self.encode(), "", tuple(children))

    def to_json(self) -> dict:
        out = {
            "type": "ClusterCommand",
            "cluster_id": self.cluster_id,
            "command_id": self.command_id,
            "direction": "SERVER_TO_CLIENT" if self.server_to_client else "CLIENT_TO_SERVER",
            "name": self.name,
            "fields": _fields_json(self.fields),
        }
        if self.extra:
            out["extra"] = self.extra.hex().upper()
        return out


# Decoded ClusterCommands are built without the frozen-dataclass __init__ (decode hot path).
# Setters in field order; adding a field breaks this unpacking at import, so none is missed.
_set_cluster_id, _set_command_id, _set_server_to_client, _set_fields, _set_extra = slot_setters(
    ClusterCommand, *(f.name for f in dataclass_fields(ClusterCommand))
)


def _cluster_command(cluster_id: int, command_id: int, server_to_client: bool, fields: Fields, extra: bytes) -> ClusterCommand:
    if type(cluster_id) is not int and isinstance(cluster_id, int):  # as __post_init__ does
        cluster_id = int(cluster_id)
    if type(command_id) is not int and isinstance(command_id, int):
        command_id = int(command_id)
    cmd = _new(ClusterCommand)
    _set_cluster_id(cmd, cluster_id)
    _set_command_id(cmd, command_id)
    _set_server_to_client(cmd, server_to_client)
    _set_fields(cmd, fields)
    _set_extra(cmd, extra)
    return cmd


def _pairs_to_dict(pairs: Fields) -> dict[str, Any]:
    # Only repeated groups are tuples among field values (scalars are ints, strings, bytes,
    # None or small dataclasses), so a tuple value is always a tuple of groups.
    return {k: [_pairs_to_dict(g) for g in v] if isinstance(v, tuple) else v for k, v in pairs}


_JSON_PLAIN = frozenset((int, str, bool, float, type(None)))  # as in codec.jsonable: JSON already


def _fields_json(pairs: Fields) -> dict[str, Any]:
    """`jsonable(_pairs_to_dict(pairs))` in one pass (tuples are repeated groups, as there)."""
    out = {}
    for k, v in pairs:
        t = type(v)
        if t in _JSON_PLAIN:
            out[k] = v
        elif t is tuple or isinstance(v, tuple):
            out[k] = [_fields_json(g) for g in v]
        else:
            out[k] = jsonable(v)
    return out


def _tree_fields(spec: tuple, values: Mapping[str, Any]) -> list[Node]:
    nodes: list[Node] = []
    for item in spec:
        if item is OPTIONAL:
            continue
        if isinstance(item, Switch):
            nodes += _tree_fields(item.cases.get(values.get(item.selector), item.default), values)
            continue
        if isinstance(item, Rep):
            if item.name not in values:
                continue
            groups = values[item.name]
            entries = []
            for i, group in enumerate(groups):
                sub = _tree_fields(item.fields, dict(group))
                raw = b"".join(n.raw for n in sub)
                entries.append(Node(f"{item.name}[{i}]", raw, ", ".join(f"{n.name}={n.meaning}" for n in sub if not n.children), tuple(sub)))
            nodes.append(Node(item.name, b"".join(n.raw for n in entries), f"{len(groups)} entries", tuple(entries)))
            continue
        name, type_id = item
        if name not in values:
            continue
        value = values[name]
        if type_id == REST:
            nodes.append(Node(name, value, f"{len(value)} bytes"))
        else:
            nodes.append(Node(name, encode_attribute_value(type_id, value), value_text(type_id, value)))
    return nodes


@frozen_dataclass
class RawPayload:
    """A payload kept as bytes: unknown command, or one that did not match its layout
    (`problem` says why)."""

    data: bytes
    problem: str = ""

    def encode(self) -> bytes:
        return self.data

    def tree(self, cluster_id: int | None = None) -> Node:
        return Node("payload", self.data, self.problem or f"{len(self.data)} bytes, not decoded")


ZclPayload = Union[
    ReadAttributes, ReadAttributesResponse, WriteAttributes, WriteAttributesResponse, ConfigureReporting,
    ConfigureReportingResponse, ReportAttributes, DefaultResponse, DiscoverAttributes, DiscoverAttributesResponse,
    ClusterCommand, RawPayload,
]


# --------------------------------------------------------------------------------------------
# Frame
# --------------------------------------------------------------------------------------------


@frozen_dataclass
class ZclFrame:
    header: ZclHeader
    payload: ZclPayload

    def encode(self) -> bytes:
        return self.header.encode() + self.payload.encode()

    @classmethod
    def build(
        cls,
        payload: ZclPayload,
        *,
        sequence: int = 0,
        direction: Direction | int | None = None,
        disable_default_response: bool = False,
        manufacturer_code: int | None = None,
        command_id: int | None = None,
        frame_type: FrameType | int | None = None,
    ) -> "ZclFrame":
        """Frame a payload: frame type and command id come from it (give `command_id`, and
        `frame_type` if not cluster-specific, for a RawPayload); a ClusterCommand also fixes the
        direction.  General responses default to server→client, requests to client→server."""
        if frame_type is not None and not isinstance(payload, RawPayload):
            raise EncodeError("frame_type comes from the payload")
        if isinstance(payload, ClusterCommand):
            frame_type = FrameType.CLUSTER
            cid = payload.command_id
            d = payload.direction
            if direction is not None and Direction(direction) != d:
                raise EncodeError(f"{payload.name} is {d.name}")
        elif isinstance(payload, RawPayload):
            if command_id is None:
                raise EncodeError("a raw payload needs command_id")
            frame_type, cid = FrameType(FrameType.CLUSTER if frame_type is None else frame_type), command_id
            d = Direction(direction or 0)
        else:
            frame_type = FrameType.GLOBAL
            cid = payload.command_id
            if direction is None:
                direction = Direction.SERVER_TO_CLIENT if isinstance(payload, _RESPONSES) else Direction.CLIENT_TO_SERVER
            d = Direction(direction)
        if command_id is not None and command_id != cid:
            raise EncodeError("command_id does not match the payload")
        header = ZclHeader(frame_type, cid, sequence, d, disable_default_response, manufacturer_code)
        return cls(header, payload)

    def tree(self, cluster_id: int | None = None) -> Node:
        return Node("zcl", self.encode(), "", (self.header.tree(cluster_id), self.payload.tree(cluster_id)))


_RESPONSES = (ReadAttributesResponse, WriteAttributesResponse, ConfigureReportingResponse, DiscoverAttributesResponse)

_GENERAL_DECODERS = {
    GeneralCommand.READ_ATTRIBUTES: ReadAttributes.decode,
    GeneralCommand.READ_ATTRIBUTES_RESPONSE: ReadAttributesResponse.decode,
    GeneralCommand.WRITE_ATTRIBUTES: lambda d, p, e: WriteAttributes(_decode_attribute_values(d, p, e), 0x02),
    GeneralCommand.WRITE_ATTRIBUTES_UNDIVIDED: lambda d, p, e: WriteAttributes(_decode_attribute_values(d, p, e), 0x03),
    GeneralCommand.WRITE_ATTRIBUTES_RESPONSE: WriteAttributesResponse.decode,
    GeneralCommand.WRITE_ATTRIBUTES_NO_RESPONSE: lambda d, p, e: WriteAttributes(_decode_attribute_values(d, p, e), 0x05),
    GeneralCommand.CONFIGURE_REPORTING: ConfigureReporting.decode,
    GeneralCommand.CONFIGURE_REPORTING_RESPONSE: ConfigureReportingResponse.decode,
    GeneralCommand.REPORT_ATTRIBUTES: lambda d, p, e: ReportAttributes(_decode_attribute_values(d, p, e)),
    GeneralCommand.DEFAULT_RESPONSE: DefaultResponse.decode,
    GeneralCommand.DISCOVER_ATTRIBUTES: DiscoverAttributes.decode,
    GeneralCommand.DISCOVER_ATTRIBUTES_RESPONSE: DiscoverAttributesResponse.decode,
}


# General commands whose decoder gives back every byte on re-encoding, so the guard in
# `decode_payload` is skipped (tests/test_zcl_fast.py re-encodes what each decodes): fixed
# records of ids, statuses and counts, and attribute values, which `decode_attribute_value`
# reads losslessly (integers in full range, bool 0/1 or the byte, floats bit-exact or kept as
# bytes, strict UTF-8 text or bytes, arrays and structures element by element).
_EXACT_GENERAL = frozenset(_GENERAL_DECODERS)

_GLOBAL, _SERVER_TO_CLIENT = FrameType.GLOBAL, Direction.SERVER_TO_CLIENT  # ZclHeader holds members
_COMPILED: dict[tuple, tuple] = {}  # COMMANDS key -> (layout, compiled steps, round-trips); only known keys


def decode_payload(header: ZclHeader, cluster_id: int, data: bytes, pos: int = 0, end: int | None = None, *, strict: bool = False) -> ZclPayload:
    """Decode the payload after `header`.  Lenient by default: a payload that is unknown or does
    not fit its layout becomes RawPayload; with `strict=True` a known command that does not fit
    raises DecodeError (unknown commands are still RawPayload)."""
    if end is None:
        end = len(data)
    payload: ZclPayload
    command_id = header.command_id
    if header.frame_type is _GLOBAL:
        decoder = _GENERAL_DECODERS.get(command_id)
        if decoder is None:
            return RawPayload(bytes(data[pos:end]))
        try:
            payload = decoder(data, pos, end)
        except DecodeError as exc:
            if strict:
                raise
            return RawPayload(bytes(data[pos:end]), f"undecodable: {exc}")
        exact = command_id in _EXACT_GENERAL  # True: the guard below cannot fail
    else:
        s2c = header.direction is _SERVER_TO_CLIENT
        key = (cluster_id, s2c, command_id)
        spec = None if header.manufacturer_code is not None else COMMANDS.get(key)
        if spec is None:
            return RawPayload(bytes(data[pos:end]))
        compiled = _COMPILED.get(key)
        if compiled is None or compiled[0] is not spec:
            compiled = _COMPILED[key] = (spec, _compile(spec[1], frozenset(_scoped_names(spec[1], set()))), _round_trips(spec[1]))
        out: list = []
        try:
            stop = _read_fields(compiled[1], data, pos, end, out, {})
        except DecodeError as exc:
            if strict:
                raise
            return RawPayload(bytes(data[pos:end]), f"undecodable: {exc}")
        payload = _cluster_command(cluster_id, command_id, s2c, tuple(out), bytes(data[stop:end]))
        exact = compiled[2]
    if not strict and not exact:
        # Guard: whatever we accept must re-encode to the same bytes.
        try:
            same = payload.encode() == data[pos:end]
        except EncodeError:
            same = False
        if not same:
            return RawPayload(bytes(data[pos:end]), "non-canonical encoding, kept raw")
    return payload


# Kinds whose decode -> encode gives back every input byte for byte: fixed-width integers in
# their full range, booleans (0/1 as bool, any other byte kept as int), raw bytes, counted
# strings (0xFF/0xFFFF = None; text is strict UTF-8, which re-encodes to the same bytes), time
# of day and date (four raw bytes), floats (bit-exact, or kept as bytes when not).
_ROUND_TRIP_KINDS = frozenset(
    ("uint", "int", "bool", "none", "ieee", "key", "octets", "string", "long_octets", "long_string", "tod", "date", "float")
)
_ROUND_TRIPS: dict[int, bool] = {}  # by id() of a COMMANDS layout (the layouts live as long as the module)


def _round_trips(spec: tuple) -> bool:
    """True when any payload this layout decodes re-encodes to exactly its bytes, so the
    re-encoding guard in `decode_payload` is skipped (tests/test_fast_paths.py re-encodes what
    every such layout decodes): every field of a round-trip kind or REST, names unique within
    each level (the encoder looks fields up by name), and a Switch only where the encoder picks
    the case the decoder took (see `_layout_round_trips`)."""
    hit = _ROUND_TRIPS.get(id(spec))
    if hit is None:
        hit = _ROUND_TRIPS[id(spec)] = _layout_round_trips(spec)
    return hit


def _layout_round_trips(spec: tuple, outer: frozenset = frozenset(), read: frozenset = frozenset()) -> bool:
    """A Switch round-trips when it is not optional (the encoder writes a case whether or not the
    payload ended before it), its selector is read before it (the encoder looks the selector up
    among all the fields), it is the only Switch of its level, and each case, read in the same
    scope, round-trips with names unique across the level and the case.  `outer`: the names of the enclosing levels a case shares its
    scope with; `read`: those of them read before the Switch."""
    names = set(outer)
    before = set(read)
    switches = []
    optional = False
    for item in spec:
        if item is OPTIONAL:
            optional = True
            continue
        if type(item) is tuple:
            name, type_id = item
            if type_id != REST and DATA_TYPES.get(type_id, ("",))[0] not in _ROUND_TRIP_KINDS:
                return False
        elif type(item) is Rep:
            name = item.name
            if not _layout_round_trips(item.fields):
                return False
        else:
            if optional or item.selector not in before:
                return False
            switches.append((item, frozenset(before)))
            continue
        if name in names:
            return False
        names.add(name)
        before.add(name)
    if len(switches) > 1:  # the cases of two Switches could share a name unseen here
        return False
    level = frozenset(names)
    return all(
        _layout_round_trips(case, level, read_before)
        for sw, read_before in switches
        for case in (*sw.cases.values(), sw.default)
    )


def decode_zcl(data: bytes, cluster_id: int, *, strict: bool = False) -> ZclFrame:
    """Decode a whole ZCL frame (header + payload) of cluster `cluster_id`."""
    data = bytes(data)
    header, pos = ZclHeader.decode(data, 0)
    return ZclFrame(header, decode_payload(header, cluster_id, data, pos, len(data), strict=strict))
