"""DLMS COSEM payloads as GBCS uses them: A-XDR `Data`, ACCESS.request (D9), ACCESS.response (DA),
DATA-NOTIFICATION (0F), GBCS "protected attributes" (encrypted sensitive data) and the alert bodies
GBCS dispatches by message code.

Layouts are checked against every DLMS payload in the RTDS 4.5.0 vectors (FRAMING.md 7):
  D9 ‖ long-invoke-id-and-priority(4) ‖ date-time octet-string ‖ n ‖ n × request-specification ‖
     m ‖ m × Data
  DA ‖ long-invoke-id-and-priority(4) ‖ date-time octet-string ‖ OPTIONAL(00 | 01 ‖ request specs) ‖
     m ‖ m × Data ‖ n ‖ n × (kind ‖ result)
  0F ‖ long-invoke-id-and-priority(4) ‖ date-time octet-string ‖ Data (GBCS: structure{alert code
     long-unsigned, date-time octet-string(12), body...})

The A-XDR parser is hand-written: the emulated ESME decodes a request and builds its response
thousands of times a second, and construct costs tens of microseconds for this. Sans-IO: crypto is
the caller's, passed in as `decrypt` / `encrypt` callbacks.
"""
from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from enum import IntEnum
from functools import lru_cache
from typing import Callable, Iterable, NamedTuple, Sequence

from .catalogue import alert_label, alert_name
from .codec import DecodeError, EncodeError, Node, SecurityError, encode_length, eui_hex, frozen_dataclass, read_length, slot_setters

ACCESS_REQUEST = 0xD9
ACCESS_RESPONSE = 0xDA
DATA_NOTIFICATION = 0x0F
MAX_DEPTH = 48  # nesting of arrays/structures; GBCS payloads stay below 10
ENCRYPTED_HEADER = b"\x31\x00\x00\x00\x00"  # security control 0x31 + invocation counter 0
TAG_LENGTH = 12

__all__ = [
    "DataType", "Data", "BitString", "DlmsDateTime", "obis", "obis_text", "invoke_id_for",
    "RequestKind", "ResponseKind", "RequestSpec", "ResponseSpec", "DATA_ACCESS_RESULTS", "ACTION_RESULTS",
    "AccessRequest", "AccessResponse", "DataNotification", "ProtectionParameters", "ProtectedData",
    "FutureDatedAlert", "FirmwareDistributionReceipt", "BillingDataLogAlert", "FailureToDeliverAlert",
    "MeterIntegrityWarning", "Apdu", "decode_apdu", "decode_data", "decode_compact_array", "get_protected_attributes_request",
    "frozen", "json_fragments",
]


# =============================================================================================
# A-XDR Data
# =============================================================================================


class DataType(IntEnum):
    """DLMS `Data` CHOICE tags (Blue/Green Book). DER_SEQUENCE is not A-XDR: see `Data`."""

    NULL_DATA = 0
    ARRAY = 1
    STRUCTURE = 2
    BOOLEAN = 3
    BIT_STRING = 4
    DOUBLE_LONG = 5
    DOUBLE_LONG_UNSIGNED = 6
    OCTET_STRING = 9
    VISIBLE_STRING = 10
    UTF8_STRING = 12
    BCD = 13
    INTEGER = 15
    LONG = 16
    UNSIGNED = 17
    LONG_UNSIGNED = 18
    COMPACT_ARRAY = 19
    LONG64 = 20
    LONG64_UNSIGNED = 21
    ENUM = 22
    FLOAT32 = 23
    FLOAT64 = 24
    DATE_TIME = 25
    DATE = 26
    TIME = 27
    DER_SEQUENCE = 0x30
    DONT_CARE = 255


class BitString(NamedTuple):
    """A bit-string: `nbits` bits, MSB first, in `data` (ceil(nbits/8) bytes, padding kept)."""

    nbits: int
    data: bytes

    @classmethod
    def from_bits(cls, bits: str) -> "BitString":
        n = len(bits)
        padded = bits + "0" * (-n % 8)
        return cls(n, int(padded, 2).to_bytes(len(padded) // 8, "big") if n else b"")

    @property
    def bits(self) -> str:
        if not self.data:
            return ""
        return bin(int.from_bytes(self.data, "big"))[2:].zfill(8 * len(self.data))[: self.nbits]


# type → (size, signed) for the fixed-size integer types
_INT_SIZES: dict[int, tuple[int, bool]] = {
    5: (4, True), 6: (4, False), 13: (1, False), 15: (1, True), 16: (2, True), 17: (1, False),
    18: (2, False), 20: (8, True), 21: (8, False), 22: (1, False),
}
# fixed-size octet types kept as raw bytes
_RAW_SIZES = {25: 12, 26: 5, 27: 4}
_TYPES: dict[int, DataType] = {t.value: t for t in DataType}


def _type_name(t: DataType) -> str:
    if type(t) is DataType:
        return _TYPE_NAMES[t]
    if isinstance(t, DataType):
        return t.name.lower().replace("_", "-")
    return f"type {t!r}"


_TYPE_NAMES: dict[DataType, str] = {t: t.name.lower().replace("_", "-") for t in DataType}
_JSON_TYPE_NAMES: list[str | None] = [None] * 256  # by tag, for _data_json
for _t, _n in _TYPE_NAMES.items():
    _JSON_TYPE_NAMES[_t] = _n


@frozen_dataclass(repr=False)
class Data:
    """One tagged DLMS value.

    value by type: null-data/dont-care None; array/structure tuple[Data, ...]; boolean bool (an int
    for a TRUE byte other than 0xFF, kept so re-encoding is byte-exact); bit-string BitString;
    integer types (incl. enum, bcd) int; octet-string bytes; visible-string str (latin-1, lossless);
    utf8-string str (surrogateescape, lossless); float32/float64 float; date-time/date/time the raw
    12/5/4 bytes; compact-array the raw bytes after the tag (type description ‖ length ‖ contents,
    see `decode_compact_array`).

    DER_SEQUENCE (raw DER contents) is not DLMS: GBCS alert 0x00D5 is read by the SmartDCC parser
    as carrying an ASN.1 SEQUENCE inside the notification structure; only that body accepts it.
    """

    type: DataType
    value: object = None
    # The encoding of an immutable array/structure, once known (decoded from a recurring
    # subtree, or `frozen()`): encoding copies it instead of walking the subtree again.
    _raw: bytes | None = field(default=None, init=False, repr=False, compare=False)

    # -- constructors ---------------------------------------------------------------------------
    @staticmethod
    def null() -> "Data":
        return _mk(DataType.NULL_DATA, None)

    @staticmethod
    def dont_care() -> "Data":
        return _mk(DataType.DONT_CARE, None)

    @staticmethod
    def array(*items: "Data") -> "Data":
        return _mk(DataType.ARRAY, tuple(items))

    @staticmethod
    def structure(*items: "Data") -> "Data":
        return _mk(DataType.STRUCTURE, tuple(items))

    @staticmethod
    def boolean(value: bool) -> "Data":
        return _mk(DataType.BOOLEAN, bool(value))

    @staticmethod
    def bit_string(bits: "str | BitString") -> "Data":
        return _mk(DataType.BIT_STRING, bits if isinstance(bits, BitString) else BitString.from_bits(bits))

    @staticmethod
    def double_long(n: int) -> "Data":
        return _mk(DataType.DOUBLE_LONG, n)

    @staticmethod
    def double_long_unsigned(n: int) -> "Data":
        return _mk(DataType.DOUBLE_LONG_UNSIGNED, n)

    @staticmethod
    def octet_string(b: bytes) -> "Data":
        return _mk(DataType.OCTET_STRING, bytes(b))

    @staticmethod
    def visible_string(s: str) -> "Data":
        return _mk(DataType.VISIBLE_STRING, s)

    @staticmethod
    def utf8_string(s: str) -> "Data":
        return _mk(DataType.UTF8_STRING, s)

    @staticmethod
    def bcd(n: int) -> "Data":
        return _mk(DataType.BCD, n)

    @staticmethod
    def integer(n: int) -> "Data":
        return _mk(DataType.INTEGER, n)

    @staticmethod
    def long(n: int) -> "Data":
        return _mk(DataType.LONG, n)

    @staticmethod
    def unsigned(n: int) -> "Data":
        return _mk(DataType.UNSIGNED, n)

    @staticmethod
    def long_unsigned(n: int) -> "Data":
        return _mk(DataType.LONG_UNSIGNED, n)

    @staticmethod
    def compact_array(raw: bytes) -> "Data":
        """From the raw bytes after the tag: type description ‖ A-XDR length ‖ contents."""
        return _mk(DataType.COMPACT_ARRAY, bytes(raw))

    @staticmethod
    def long64(n: int) -> "Data":
        return _mk(DataType.LONG64, n)

    @staticmethod
    def long64_unsigned(n: int) -> "Data":
        return _mk(DataType.LONG64_UNSIGNED, n)

    @staticmethod
    def enum(n: int) -> "Data":
        return _mk(DataType.ENUM, int(n))

    @staticmethod
    def float32(x: float) -> "Data":
        return _mk(DataType.FLOAT32, float(x))

    @staticmethod
    def float64(x: float) -> "Data":
        return _mk(DataType.FLOAT64, float(x))

    @staticmethod
    def date_time(value: "datetime | DlmsDateTime | bytes") -> "Data":
        """Tagged date-time (tag 25). GBCS itself carries date-times as octet-string(12): see
        `Data.timestamp`."""
        return _mk(DataType.DATE_TIME, _datetime_bytes(value))

    @staticmethod
    def timestamp(value: "datetime | DlmsDateTime | bytes | None") -> "Data":
        """A date-time the GBCS way: octet-string of the 12-byte DLMS date-time. None → "never"."""
        return _mk(DataType.OCTET_STRING, _datetime_bytes(DlmsDateTime.NEVER if value is None else value))

    @staticmethod
    def date(raw: bytes) -> "Data":
        return _mk(DataType.DATE, bytes(raw))

    @staticmethod
    def time(raw: bytes) -> "Data":
        return _mk(DataType.TIME, bytes(raw))

    @staticmethod
    def obis(text_or_bytes: "str | bytes") -> "Data":
        """A logical name: octet-string(6)."""
        return _mk(DataType.OCTET_STRING, obis(text_or_bytes))

    # -- access ---------------------------------------------------------------------------------
    def __getitem__(self, i):
        """Element `i` of an array or structure."""
        if self.type is DataType.ARRAY or self.type is DataType.STRUCTURE:
            return self.value[i]  # type: ignore[index]
        raise TypeError(f"{_type_name(self.type)} has no elements")

    def __repr__(self) -> str:
        name = self.type.name.lower() if isinstance(self.type, DataType) else f"Data[{self.type!r}]"
        if isinstance(self.value, tuple) and self.type in (DataType.ARRAY, DataType.STRUCTURE):
            return f"{name}({', '.join(map(repr, self.value))})"  # type: ignore[arg-type]
        if self.value is None:
            return f"{name}()"
        return f"{name}({self.value!r})"

    # -- encoding -------------------------------------------------------------------------------
    def encode(self) -> bytes:
        out = bytearray()
        _encode_data_into(self, out, 0)
        return bytes(out)

    # -- presentation ---------------------------------------------------------------------------
    def text(self) -> str:
        """One-line human meaning of a scalar (arrays/structures give their size)."""
        return _data_text(self)

    def tree(self, name: str = "data") -> Node:
        return _data_tree(self, name)

    def to_json(self):
        return _child_json(self)


def _data_json(d: Data) -> dict:
    """Data as JSON data, `{"type": "long-unsigned", "value": 5}`; arrays and structures hold a list.
    Hot in `gbhub decode --batch` (every node of every DLMS payload): the type's name is read from a
    list by tag (an IntEnum member indexes as its int; hashing one calls Enum.__hash__)."""
    t = d.type
    v = d.value
    name = _JSON_TYPE_NAMES[t] if type(t) is DataType else _type_name(t)
    if t is _STRUCTURE or t is _ARRAY:
        return {"type": name, "value": [_child_json(x) for x in v]}  # type: ignore[union-attr]
    tv = type(v)
    if tv in _JSON_PLAIN:  # the common leaves first (what the chain below gives them)
        return {"type": name, "value": v}
    if tv is bytes or tv is bytearray:
        return {"type": name, "value": v.hex().upper()}
    if isinstance(v, BitString):
        return {"type": name, "value": v.bits}
    if isinstance(v, (bytes, bytearray)):
        return {"type": name, "value": bytes(v).hex().upper()}
    if isinstance(v, float) and not math.isfinite(v):
        return {"type": name, "value": repr(v)}
    return {"type": name, "value": v}


_JSON_PLAIN = frozenset((int, str, bool, type(None)))

# JSON fragments (`json_fragments`): the serialised JSON of Data objects converted more than once
# (the leaves and small subtrees the decoder shares through _LEAVES and _SUBTREES, and `frozen`
# constants), by object: (the object, its fragment, or None when seen once so far).
_fragment = None
_dumps = None
_FRAGMENTS: dict[int, tuple[object, object]] = {}
_child_json = _data_json  # how `_data_json` converts elements (`_fragment_json` with fragments on)


def json_fragments(fragment: "Callable[[bytes], object] | None", dumps: "Callable[[object], bytes] | None" = None) -> tuple:
    """Make `Data.to_json` return a Data object it has converted before as
    `fragment(dumps(its JSON))` (orjson.Fragment, orjson.dumps: `gbhub decode --batch`, which
    writes each result with orjson at once) instead of a fresh dict; `json_fragments(None)`
    turns it off. Data is immutable and the serialiser writes a fragment as its bytes, so the
    output is the same; a value that `dumps` refuses (an integer beyond 64 bits) stays a dict.
    Returns the setting it replaces."""
    global _fragment, _dumps, _child_json
    before = (_fragment, _dumps)
    _fragment, _dumps = fragment, dumps
    _child_json = _data_json if fragment is None else _fragment_json
    _FRAGMENTS.clear()
    return before


def _fragment_json(d: Data):
    """`_data_json` with fragments on. Structures without a known encoding are made afresh by
    every decode: never listed."""
    if (d.type is _STRUCTURE or d.type is _ARRAY) and d._raw is None:
        return _data_json(d)
    return _shared_json(d, _data_json)


def _shared_json(obj, make):
    """`make(obj)` for an immutable value (Data, a request or response specification) that
    decoders share: with fragments on, its fragment if it has one; else `make(obj)`, `obj`
    listed the first time and its fragment made the second."""
    hit = _FRAGMENTS.get(id(obj))
    if hit is not None and hit[0] is obj and hit[1] is not None:
        return hit[1]
    out = make(obj)
    if _fragment is None:
        return out
    if hit is not None and hit[0] is obj:
        try:
            frag = _fragment(_dumps(out))  # type: ignore[misc]
        except (TypeError, ValueError):  # orjson.JSONEncodeError is a TypeError
            return out
        _FRAGMENTS[id(obj)] = (obj, frag)
        return frag
    if len(_FRAGMENTS) >= _LEAVES_MAX:
        _FRAGMENTS.clear()
    _FRAGMENTS[id(obj)] = (obj, None)  # (holds obj: its id stays its own while listed)
    return out


_new = object.__new__
_set_type, _set_value, _set_raw = slot_setters(Data, "type", "value", "_raw")


def _mk(t: DataType, v: object) -> Data:
    """Data without the frozen-dataclass __init__ (about twice as fast; decode hot path)."""
    d = _new(Data)
    _set_type(d, t)
    _set_value(d, v)
    _set_raw(d, None)
    return d


def frozen(d: Data) -> Data:
    """A copy of `d` with its encoding remembered, for constant subtrees that builders put into
    many messages (scaler-units, key info, object references): encoding them is then one copy."""
    if (d.type is DataType.ARRAY or d.type is DataType.STRUCTURE) and d._raw is None:
        raw = d.encode()
        d = _mk(d.type, d.value)
        _set_raw(d, raw)
    return d


_T = DataType
_NULL = Data(DataType.NULL_DATA, None)
_DONT_CARE = Data(DataType.DONT_CARE, None)
_TRUE = Data(DataType.BOOLEAN, True)
_FALSE = Data(DataType.BOOLEAN, False)
_STRUCTURE = DataType.STRUCTURE
_ARRAY = DataType.ARRAY
_OCTET_STRING = DataType.OCTET_STRING
_VISIBLE_STRING = DataType.VISIBLE_STRING
_UTF8_STRING = DataType.UTF8_STRING
_LONG_UNSIGNED = DataType.LONG_UNSIGNED
_ENUM = DataType.ENUM
_ENUM_2 = Data(DataType.ENUM, 2)
# Decoded leaves (integers, short strings) by their encoding. Data is immutable, so decodes may
# share them; GBCS traffic repeats the same OBIS codes, EUIs and small numbers, and a dict hit is
# several times cheaper than building the object. Bounded: cleared when full.
_LEAVES: dict[bytes, Data] = {}
_LEAVES_MAX = 8192
# Decoded structures/arrays of 6..32 bytes by their first 6 bytes, with their whole encoding:
# object references, key info and scaler-units recur in every command and response, and a
# prefix probe plus one comparison is far cheaper than decoding the subtree again. One entry
# per prefix (the last seen); a probe that does not match the whole encoding decodes normally.
_SUBTREES: dict[bytes, tuple[bytes, Data]] = {}
_PROBE = 6
_SUBTREE_MAX = 32
# Whole encoded size of the fixed-size leaves _LEAVES holds, by tag (0: not one of them).
_LEAF_SIZES = [0] * 256
for _tag, (_size, _signed) in _INT_SIZES.items():
    _LEAF_SIZES[_tag] = 1 + _size


# -- Data decoding ------------------------------------------------------------------------------

_unpack_f32 = struct.Struct(">f").unpack_from
_unpack_f64 = struct.Struct(">d").unpack_from
_pack_f32 = struct.Struct(">f").pack
_pack_f64 = struct.Struct(">d").pack


def _decode_data(buf: bytes, pos: int, end: int, depth: int, der: bool = False) -> tuple[Data, int]:
    """One Data at `pos`; returns (Data, next position). Hot path: object creation and short
    lengths are inlined, the frequent GBCS tags tested first."""
    if pos >= end:
        raise DecodeError("truncated: Data expected", pos, "data")
    tag = buf[pos]
    p = pos + 1
    if tag == 0x02 or tag == 0x01:  # structure / array
        if tag == 0x02 and buf.startswith(_GBCS_PARAMETERS_HEAD, pos):
            fast = _gbcs_parameters_at(buf, pos, end)
            if fast is not None:
                return fast
        probe = buf[pos : pos + _PROBE]
        hit = _SUBTREES.get(probe)
        if hit is not None:
            raw, d = hit
            q = pos + len(raw)
            if q <= end and buf.startswith(raw, pos):
                return d, q
        if p < end and buf[p] < 0x80:
            n = buf[p]
            p += 1
        else:
            n, p = read_length(buf, p, end, "data.count")
        if n > end - p:
            raise DecodeError(f"{n} elements cannot fit in {end - p} bytes", pos, "data.count")
        if depth >= MAX_DEPTH:
            raise DecodeError("nesting too deep", pos, "data")
        items = []
        append = items.append
        d1 = depth + 1
        leaf = _LEAVES.get
        for _ in range(n):
            # Elements already in _LEAVES/_SUBTREES (keyed by their whole encoding, so a hit is
            # what decoding would give) are taken here without a call: most elements are.
            if p < end:
                t = buf[p]
                size = _LEAF_SIZES[t]
                if size:
                    q = p + size
                elif t == 0x09 and p + 1 < end:
                    q = p + 2 + buf[p + 1]  # (a long-form length is in no key: no hit)
                elif t == 0x04 and p + 1 < end:
                    q = p + 2 + ((buf[p + 1] + 7) >> 3)
                else:
                    q = 0
                if q:
                    if q <= end:
                        hit = leaf(buf[p:q])
                        if hit is not None:
                            append(hit)
                            p = q
                            continue
                elif t == 0x02 or t == 0x01:
                    sub = _SUBTREES.get(buf[p : p + _PROBE])
                    if sub is not None:
                        raw = sub[0]
                        q = p + len(raw)
                        if q <= end and buf.startswith(raw, p):
                            append(sub[1])
                            p = q
                            continue
                elif t == 0x00:
                    append(_NULL)
                    p += 1
                    continue
                elif t == 0x03 and p + 1 < end and (buf[p + 1] == 0xFF or buf[p + 1] == 0):
                    append(_TRUE if buf[p + 1] else _FALSE)
                    p += 2
                    continue
            item, p = _decode_data(buf, p, end, d1)
            append(item)
        d = _new(Data)
        _set_type(d, _STRUCTURE if tag == 2 else _ARRAY)
        _set_value(d, tuple(items))
        if _PROBE <= p - pos <= _SUBTREE_MAX:
            if len(_SUBTREES) >= _LEAVES_MAX:
                _SUBTREES.clear()
            raw = buf[pos:p]
            _set_raw(d, raw)
            _SUBTREES[probe] = (raw, d)
        else:
            _set_raw(d, None)
        return d, p
    if tag == 0x09 or tag == 0x0A or tag == 0x0C:  # octet / visible / utf8 string
        if p < end and buf[p] < 0x80:
            q = p + 1 + buf[p]
            p += 1
        else:
            n, p = read_length(buf, p, end, "data.length")
            q = p + n
        if q > end:
            raise DecodeError(f"truncated: string of {q - p} bytes, {end - p} left", pos, "data")
        key = None
        if q - pos <= 18:
            key = buf[pos:q]
            d = _LEAVES.get(key)
            if d is not None:
                return d, q
        d = _new(Data)
        if tag == 0x09:
            _set_type(d, _OCTET_STRING)
            _set_value(d, buf[p:q])
        elif tag == 0x0A:
            _set_type(d, _VISIBLE_STRING)
            _set_value(d, buf[p:q].decode("latin-1"))
        else:
            _set_type(d, _UTF8_STRING)
            _set_value(d, buf[p:q].decode("utf-8", "surrogateescape"))
        if key is not None:
            if len(_LEAVES) >= _LEAVES_MAX:
                _LEAVES.clear()
            _LEAVES[key] = d
        return d, q
    if tag == 0x12:  # long-unsigned
        q = p + 2
        if q > end:
            raise DecodeError("truncated long-unsigned", pos, "data")
        key = buf[pos:q]
        d = _LEAVES.get(key)
        if d is None:
            d = _new(Data)
            _set_type(d, _LONG_UNSIGNED)
            _set_value(d, (buf[p] << 8) | buf[p + 1])
            if len(_LEAVES) >= _LEAVES_MAX:
                _LEAVES.clear()
            _LEAVES[key] = d
        return d, q
    if tag == 0x00:
        return _NULL, p
    size_signed = _INT_SIZES.get(tag)
    if size_signed is not None:
        size, signed = size_signed
        q = p + size
        if q > end:
            raise DecodeError("truncated integer", pos, "data")
        key = buf[pos:q]
        d = _LEAVES.get(key)
        if d is None:
            d = _new(Data)
            _set_type(d, _TYPES[tag])
            _set_value(d, buf[p] if size == 1 and not signed else int.from_bytes(buf[p:q], "big", signed=signed))
            if len(_LEAVES) >= _LEAVES_MAX:
                _LEAVES.clear()
            _LEAVES[key] = d
        return d, q
    if tag == 0x03:
        if p >= end:
            raise DecodeError("truncated boolean", pos, "data")
        b = buf[p]
        if b == 0xFF:
            return _TRUE, p + 1
        if b == 0:
            return _FALSE, p + 1
        return _mk(_T.BOOLEAN, b), p + 1
    if tag == 0x04 and p < end and buf[p] < 0x80:  # bit-string, short form
        q = p + 1 + ((buf[p] + 7) >> 3)
        if q <= end and q - pos <= 18:
            key = buf[pos:q]
            d = _LEAVES.get(key)
            if d is None:
                d = _mk(_T.BIT_STRING, BitString(buf[p], buf[p + 1 : q]))
                if len(_LEAVES) >= _LEAVES_MAX:
                    _LEAVES.clear()
                _LEAVES[key] = d
            return d, q
    if tag == 0x04 or tag == 0x17 or tag == 0x18 or tag in _RAW_SIZES:
        return _decode_scalar(buf, p, end, tag, pos)
    if tag == 0x13:
        q = _skip_type_description(buf, p, end, depth)
        n, q = read_length(buf, q, end, "data.compact_array.length")
        if q + n > end:
            raise DecodeError("truncated compact-array contents", pos, "data")
        return _mk(_T.COMPACT_ARRAY, buf[p : q + n]), q + n
    if tag == 0xFF:
        return _DONT_CARE, p
    if tag == 0x30 and der:
        n, q = read_length(buf, p, end, "data.der_length")
        if q + n > end:
            raise DecodeError("truncated DER SEQUENCE", pos, "data")
        return _mk(_T.DER_SEQUENCE, buf[q : q + n]), q + n
    raise DecodeError(f"unknown Data tag 0x{tag:02X}", pos, "data")


def _skip_type_description(buf: bytes, pos: int, end: int, depth: int) -> int:
    if depth >= MAX_DEPTH:
        raise DecodeError("nesting too deep", pos, "type_description")
    if pos >= end:
        raise DecodeError("truncated type description", pos, "type_description")
    tag = buf[pos]
    if tag == 1:
        if pos + 3 > end:
            raise DecodeError("truncated type description", pos, "type_description")
        return _skip_type_description(buf, pos + 3, end, depth + 1)
    if tag == 2:
        n, p = read_length(buf, pos + 1, end, "type_description.count")
        if n > end - p:
            raise DecodeError("type description count too large", pos, "type_description")
        for _ in range(n):
            p = _skip_type_description(buf, p, end, depth + 1)
        return p
    if tag in _TYPES and tag not in (0x13, 0x30):
        return pos + 1
    raise DecodeError(f"unknown type in type description 0x{tag:02X}", pos, "type_description")


def decode_data(data: bytes) -> Data:
    """Exactly one Data filling `data`."""
    data = bytes(data)
    try:
        d, pos = _decode_data(data, 0, len(data), 0)
    except RecursionError:  # pragma: no cover - MAX_DEPTH keeps us far from the limit
        raise DecodeError("nesting too deep", 0, "data") from None
    if pos != len(data):
        raise DecodeError(f"{len(data) - pos} trailing bytes after Data", pos, "data")
    return d


def decode_compact_array(value: "Data | bytes") -> tuple[Data, ...]:
    """Expand a compact-array (its raw value) into ordinary Data elements."""
    raw = value.value if isinstance(value, Data) else value
    if not isinstance(raw, (bytes, bytearray)):
        raise TypeError("not a compact-array")
    raw = bytes(raw)
    end = len(raw)
    desc, p = _parse_type_description(raw, 0, end, 0)
    n, p = read_length(raw, p, end, "compact_array.length")
    if p + n != end:
        raise DecodeError("compact-array length does not match its contents", p, "compact_array.length")
    budget = 8 * n + 64  # guards against descriptions of zero-size elements
    out = []
    while p < end:
        d, q, budget = _decode_untagged(raw, p, end, desc, budget)
        if q == p:
            raise DecodeError("zero-size compact-array element", p, "compact_array")
        out.append(d)
        p = q
    return tuple(out)


def _parse_type_description(buf: bytes, pos: int, end: int, depth: int):
    if depth >= MAX_DEPTH:
        raise DecodeError("nesting too deep", pos, "type_description")
    if pos >= end:
        raise DecodeError("truncated type description", pos, "type_description")
    tag = buf[pos]
    if tag == 1:
        if pos + 3 > end:
            raise DecodeError("truncated type description", pos, "type_description")
        count = int.from_bytes(buf[pos + 1 : pos + 3], "big")
        inner, p = _parse_type_description(buf, pos + 3, end, depth + 1)
        return (1, count, inner), p
    if tag == 2:
        n, p = read_length(buf, pos + 1, end, "type_description.count")
        if n > end - p:
            raise DecodeError("type description count too large", pos, "type_description")
        parts = []
        for _ in range(n):
            t, p = _parse_type_description(buf, p, end, depth + 1)
            parts.append(t)
        return (2, tuple(parts)), p
    if tag in _TYPES and tag not in (0x13, 0x30):
        return (tag,), pos + 1
    raise DecodeError(f"unknown type in type description 0x{tag:02X}", pos, "type_description")


def _decode_untagged(buf: bytes, pos: int, end: int, desc, budget: int) -> tuple[Data, int, int]:
    """One compact-array element of type `desc` at `pos`: (Data, next position, budget left)."""
    budget -= 1
    if budget < 0:
        raise DecodeError("compact-array expands too far", pos, "compact_array")
    tag = desc[0]
    if tag == 1:
        items = []
        p = pos
        for _ in range(desc[1]):
            d, p, budget = _decode_untagged(buf, p, end, desc[2], budget)
            items.append(d)
        return _mk(DataType.ARRAY, tuple(items)), p, budget
    if tag == 2:
        items = []
        p = pos
        for sub in desc[1]:
            d, p, budget = _decode_untagged(buf, p, end, sub, budget)
            items.append(d)
        return _mk(DataType.STRUCTURE, tuple(items)), p, budget
    if tag in (0, 0xFF):
        return _mk(_TYPES[tag], None), pos, budget
    d, p = _decode_scalar(buf, pos, end, tag, pos)
    return d, p, budget


def _decode_scalar(buf: bytes, p: int, end: int, tag: int, pos: int) -> tuple[Data, int]:
    """The body of a scalar of type `tag` at `p` (no tag byte): compact-array elements."""
    size_signed = _INT_SIZES.get(tag)
    if size_signed is not None:
        size, signed = size_signed
        q = p + size
        if q > end:
            raise DecodeError("truncated integer", pos, "data")
        return _mk(_TYPES[tag], int.from_bytes(buf[p:q], "big", signed=signed)), q
    if tag in (0x09, 0x0A, 0x0C):
        n, p = read_length(buf, p, end, "data.length")
        q = p + n
        if q > end:
            raise DecodeError("truncated string", pos, "data")
        raw = buf[p:q]
        value = raw if tag == 0x09 else raw.decode("latin-1") if tag == 0x0A else raw.decode("utf-8", "surrogateescape")
        return _mk(_TYPES[tag], value), q
    if tag == 0x03:
        if p >= end:
            raise DecodeError("truncated boolean", pos, "data")
        b = buf[p]
        return _mk(_T.BOOLEAN, False if b == 0 else True if b == 0xFF else b), p + 1
    if tag == 0x04:
        nbits, p = read_length(buf, p, end, "data.length")
        q = p + (nbits + 7) // 8
        if q > end:
            raise DecodeError("truncated bit-string", pos, "data")
        return _mk(_T.BIT_STRING, BitString(nbits, buf[p:q])), q
    size = _RAW_SIZES.get(tag)
    if size is not None:
        q = p + size
        if q > end:
            raise DecodeError("truncated date/time", pos, "data")
        return _mk(_TYPES[tag], buf[p:q]), q
    if tag == 0x17 or tag == 0x18:
        q = p + (4 if tag == 0x17 else 8)
        if q > end:
            raise DecodeError("truncated float", pos, "data")
        if tag == 0x17:
            x = _unpack_f32(buf, p)[0]
            if _pack_f32(x) != buf[p:q]:
                raise DecodeError("float32 NaN payload cannot be kept", pos, "data")
            return _mk(_T.FLOAT32, x), q
        return _mk(_T.FLOAT64, _unpack_f64(buf, p)[0]), q
    raise DecodeError(f"type 0x{tag:02X} not allowed here", pos, "data")


# -- Data encoding ------------------------------------------------------------------------------


def _encode_data_into(d: Data, out: bytearray, depth: int) -> None:
    """Append the encoding of `d`. Tags are compared as plain ints: hashing or comparing IntEnum
    members goes through Python-level Enum methods and costs several times more."""
    v = d.value
    try:
        tag = d.type + 0
    except TypeError:
        raise EncodeError(f"not a DataType: {d.type!r}") from None
    if tag == 2 or tag == 1:
        raw = d._raw
        if raw is not None:
            out += raw
            return
        if not isinstance(v, tuple):
            if not isinstance(v, list):
                raise EncodeError(f"{_type_label(tag)} needs a tuple of Data")
        if depth >= MAX_DEPTH:
            raise EncodeError("nesting too deep")
        n = len(v)
        out.append(tag)
        if n < 0x80:
            out.append(n)
        else:
            out += encode_length(n)
        d1 = depth + 1
        for item in v:
            if item.__class__ is not Data:
                raise EncodeError(f"{_type_label(tag)} element is not Data: {item!r}")
            _encode_data_into(item, out, d1)
        return
    if tag == 9:
        if not isinstance(v, bytes):
            if not isinstance(v, (bytearray, memoryview)):
                raise EncodeError(f"octet-string needs bytes, got {v!r}")
            v = bytes(v)
        n = len(v)
        out.append(9)
        if n < 0x80:
            out.append(n)
        else:
            out += encode_length(n)
        out += v
        return
    size_signed = _INT_SIZES.get(tag)
    if size_signed is not None:
        if v.__class__ is not int:
            if isinstance(v, bool) or not isinstance(v, int):
                raise EncodeError(f"{_type_label(tag)} needs an int, got {v!r}")
        out.append(tag)
        size, signed = size_signed
        if size == 1 and 0 <= v < (0x80 if signed else 0x100):
            out.append(v)
            return
        try:
            out += v.to_bytes(size, "big", signed=signed)
        except OverflowError:
            raise EncodeError(f"{v} out of range for {_type_label(tag)}") from None
        return
    if tag == 0 or tag == 255:
        if v is not None:
            raise EncodeError(f"{_type_label(tag)} carries no value")
        out.append(tag)
        return
    if tag == 10 or tag == 12:
        if isinstance(v, str):
            try:
                raw = v.encode("latin-1") if tag == 10 else v.encode("utf-8", "surrogateescape")
            except UnicodeEncodeError:
                raise EncodeError(f"{_type_label(tag)} cannot encode {v!r}") from None
        elif isinstance(v, (bytes, bytearray, memoryview)):
            raw = bytes(v)
        else:
            raise EncodeError(f"{_type_label(tag)} needs str or bytes, got {v!r}")
        out.append(tag)
        out += encode_length(len(raw))
        out += raw
        return
    if tag == 3:
        if v is True:
            b = 0xFF
        elif v is False:
            b = 0
        elif isinstance(v, int) and 0 < v < 0x100:
            b = v
        else:
            raise EncodeError(f"boolean needs a bool, got {v!r}")
        out.append(3)
        out.append(b)
        return
    if tag in _RAW_SIZES:
        if not isinstance(v, (bytes, bytearray)) or len(v) != _RAW_SIZES[tag]:
            raise EncodeError(f"{_type_label(tag)} needs {_RAW_SIZES[tag]} bytes")
        out.append(tag)
        out += v
        return
    if tag == 4:
        if not isinstance(v, BitString) or not isinstance(v.data, (bytes, bytearray)) or len(v.data) != (v.nbits + 7) // 8:
            raise EncodeError("bit-string needs a BitString with ceil(nbits/8) bytes")
        out.append(4)
        out += encode_length(v.nbits)
        out += v.data
        return
    if tag == 23 or tag == 24:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise EncodeError(f"{_type_label(tag)} needs a float")
        out.append(tag)
        try:
            out += _pack_f32(v) if tag == 23 else _pack_f64(v)
        except (OverflowError, struct.error):
            raise EncodeError(f"{v} out of range for {_type_label(tag)}") from None
        return
    if tag == 19:
        if not isinstance(v, (bytes, bytearray)):
            raise EncodeError("compact-array needs its raw bytes")
        out.append(0x13)
        out += v
        return
    if tag == 0x30:
        if not isinstance(v, (bytes, bytearray)):
            raise EncodeError("DER SEQUENCE needs its raw contents")
        if len(v) >= 0x1000000:
            raise EncodeError("DER SEQUENCE too long")
        out.append(0x30)
        out += encode_length(len(v))
        out += v
        return
    raise EncodeError(f"not a DataType: {d.type!r}")


def _type_label(tag: int) -> str:
    t = _TYPES.get(tag)
    return _type_name(t) if t is not None else f"type {tag}"


# -- Data presentation --------------------------------------------------------------------------


def _printable(b: bytes) -> bool:
    return len(b) > 1 and all(0x20 <= c < 0x7F for c in b)


def _data_text(d: Data) -> str:
    t, v = d.type, d.value
    name = _type_name(t)
    if t is _T.ARRAY or t is _T.STRUCTURE:
        n = len(v)  # type: ignore[arg-type]
        return f"{name}, {n} element{'s' if n != 1 else ''}"
    if v is None:
        return name
    if t is _T.OCTET_STRING:
        b = v  # type: ignore[assignment]
        hint = ""
        if len(b) == 12:
            hint = f" (date-time {DlmsDateTime.from_bytes(b).text()})"
        elif len(b) == 6:
            hint = f" (OBIS {obis_text(b)})"
        elif _printable(b):
            hint = f' ("{b.decode("ascii")}")'
        return f"{name} {b.hex().upper() or '(empty)'}{hint}"
    if t is _T.DATE_TIME:
        return f"{name} {DlmsDateTime.from_bytes(v).text()}"  # type: ignore[arg-type]
    if isinstance(v, (bytes, bytearray)):
        return f"{name} {bytes(v).hex().upper()}"
    if isinstance(v, BitString):
        return f"{name} {v.bits or '(empty)'}"
    if t is _T.BOOLEAN:
        return f"{name} {'TRUE' if v else 'FALSE'}"
    if isinstance(v, str):
        return f"{name} {v!r}"
    return f"{name} {v}"


def _data_tree(d: Data, name: str) -> Node:
    t = d.type
    children: tuple[Node, ...] = ()
    if t is _T.ARRAY or t is _T.STRUCTURE:
        children = tuple(_data_tree(x, f"[{i}]") for i, x in enumerate(d.value))  # type: ignore[arg-type]
    elif t is _T.COMPACT_ARRAY:
        try:
            children = tuple(_data_tree(x, f"[{i}]") for i, x in enumerate(decode_compact_array(d)))
        except DecodeError:
            children = ()
    try:
        raw = d.encode()
    except EncodeError:
        raw = b""
    return Node(name, raw, _data_text(d), children)


# =============================================================================================
# Date-time and OBIS helpers
# =============================================================================================


@frozen_dataclass
class DlmsDateTime:
    """The 12-byte DLMS date-time. 0xFF(FF) fields mean "not specified"; `deviation` is minutes
    (local time minus UTC), None for 0x8000 "not specified", which GBCS always uses (its times
    are UTC)."""

    year: int = 0xFFFF
    month: int = 0xFF
    day: int = 0xFF
    weekday: int = 0xFF
    hour: int = 0xFF
    minute: int = 0xFF
    second: int = 0xFF
    hundredths: int = 0xFF
    deviation: int | None = None
    clock_status: int = 0xFF

    NEVER = None  # type: ignore[assignment]  # set below: all-FF "never" used to cancel future-dated commands
    IMMEDIATE = None  # type: ignore[assignment]  # set below: all-zero "now" in activation date-times

    @classmethod
    def from_bytes(cls, raw: bytes) -> "DlmsDateTime":
        if len(raw) != 12:
            raise ValueError("a DLMS date-time is 12 bytes")
        dev = int.from_bytes(raw[9:11], "big", signed=True)
        return cls(
            int.from_bytes(raw[0:2], "big"), raw[2], raw[3], raw[4], raw[5], raw[6], raw[7], raw[8],
            None if dev == -0x8000 else dev, raw[11],
        )

    def to_bytes(self) -> bytes:
        dev = -0x8000 if self.deviation is None else self.deviation
        try:
            return (
                self.year.to_bytes(2, "big")
                + bytes((self.month, self.day, self.weekday, self.hour, self.minute, self.second, self.hundredths))
                + dev.to_bytes(2, "big", signed=True)
                + bytes((self.clock_status,))
            )
        except (OverflowError, ValueError):
            raise EncodeError(f"date-time field out of range: {self!r}") from None

    @classmethod
    def from_datetime(cls, dt: datetime, *, weekday: bool = False, clock_status: int = 0xFF) -> "DlmsDateTime":
        """A UTC date-time in the form RTDS uses: weekday and deviation not specified, clock
        status 0xFF. Naive datetimes are taken as UTC."""
        if dt.tzinfo is not None:
            dt = dt.astimezone(timezone.utc)
        return cls(
            dt.year, dt.month, dt.day, dt.isoweekday() if weekday else 0xFF, dt.hour, dt.minute, dt.second,
            dt.microsecond // 10000, None, clock_status,
        )

    def to_datetime(self) -> datetime:
        """Aware UTC datetime; ValueError when a date or time field is not specified."""
        if 0xFFFF == self.year or 0xFF in (self.month, self.day, self.hour, self.minute, self.second):
            raise ValueError("date-time has unspecified fields")
        hundredths = 0 if self.hundredths == 0xFF else self.hundredths
        dt = datetime(self.year, self.month, self.day, self.hour, self.minute, self.second, hundredths * 10000, tzinfo=timezone.utc)
        if self.deviation is not None:
            dt -= timedelta(minutes=self.deviation)
        return dt

    @property
    def is_never(self) -> bool:
        return self.to_bytes()[:9] == b"\xff" * 9

    @property
    def is_immediate(self) -> bool:
        return self.to_bytes()[:9] == b"\x00" * 9

    def text(self) -> str:
        if self.is_never:
            return "never"
        if self.is_immediate:
            return "immediate"

        def f(v: int, width: int = 2) -> str:
            return "*" * width if v in (0xFF, 0xFFFF) else str(v).zfill(width)

        out = f"{f(self.year, 4)}-{f(self.month)}-{f(self.day)} {f(self.hour)}:{f(self.minute)}:{f(self.second)}"
        if self.hundredths not in (0, 0xFF):
            out += f".{self.hundredths:02d}"
        return out + (" UTC" if self.deviation is None else f" dev {self.deviation:+d}min")


DlmsDateTime.NEVER = DlmsDateTime(0xFFFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, None, 0xFF)  # type: ignore[misc]
DlmsDateTime.IMMEDIATE = DlmsDateTime(0, 0, 0, 0, 0, 0, 0, 0, None, 0xFF)  # type: ignore[misc]


def _datetime_bytes(value) -> bytes:
    if isinstance(value, DlmsDateTime):
        return value.to_bytes()
    if isinstance(value, datetime):
        return DlmsDateTime.from_datetime(value).to_bytes()
    if isinstance(value, (bytes, bytearray)) and len(value) == 12:
        return bytes(value)
    raise EncodeError(f"not a date-time: {value!r}")


def obis(text: "str | bytes") -> bytes:
    """OBIS logical name "A-B:C.D.E.F" (or six dot-separated numbers) → 6 bytes."""
    if isinstance(text, (bytes, bytearray)):
        if len(text) != 6:
            raise ValueError("an OBIS code is 6 bytes")
        return bytes(text)
    return _parse_obis(text)


@lru_cache(maxsize=4096)  # builders name the same few logical names on every command
def _parse_obis(text: str) -> bytes:
    parts = text.strip().replace("-", ".").replace(":", ".").split(".")
    if len(parts) == 5:
        parts.append("255")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise ValueError(f"not an OBIS code: {text!r}") from None
    if len(values) != 6 or not all(0 <= v <= 255 for v in values):
        raise ValueError(f"not an OBIS code: {text!r}")
    return bytes(values)


def _obis_str(raw: bytes) -> str:
    if len(raw) == 6:
        a, b, c, d, e, f = raw
        return f"{a}-{b}:{c}.{d}.{e}.{f}"
    return raw.hex().upper()


def obis_text(raw: bytes) -> str:
    if len(raw) != 6:
        raise ValueError("an OBIS code is 6 bytes")
    a, b, c, d, e, f = raw
    return f"{a}-{b}:{c}.{d}.{e}.{f}"


def invoke_id_for(counter: int) -> int:
    """GBCS long-invoke-id-and-priority: 0x20 ‖ low 24 bits of the originator counter (all 702
    RTDS DLMS APDUs). 0x20 is bit 29, "break on error"."""
    return 0x20000000 | (counter & 0xFFFFFF)


# =============================================================================================
# ACCESS request / response specifications
# =============================================================================================


class RequestKind(IntEnum):
    GET = 1
    SET = 2
    ACTION = 3
    GET_WITH_SELECTION = 4
    SET_WITH_SELECTION = 5


class ResponseKind(IntEnum):
    GET = 1
    SET = 2
    ACTION = 3


_REQ_KINDS = {k.value: k for k in RequestKind}
_RESP_KINDS = {k.value: k for k in ResponseKind}
_RESPONSE_FOR = {1: ResponseKind.GET, 2: ResponseKind.SET, 3: ResponseKind.ACTION, 4: ResponseKind.GET, 5: ResponseKind.SET}

DATA_ACCESS_RESULTS = {
    0: "success", 1: "hardware-fault", 2: "temporary-failure", 3: "read-write-denied", 4: "object-undefined",
    9: "object-class-inconsistent", 11: "object-unavailable", 12: "type-unmatched", 13: "scope-of-access-violated",
    14: "data-block-unavailable", 15: "long-get-aborted", 16: "no-long-get-in-progress", 17: "long-set-aborted",
    18: "no-long-set-in-progress", 19: "data-block-number-invalid", 250: "other-reason",
}
ACTION_RESULTS = {
    0: "success", 1: "hardware-fault", 2: "temporary-failure", 3: "read-write-denied", 4: "object-undefined",
    9: "object-class-inconsistent", 11: "object-unavailable", 12: "type-unmatched", 13: "scope-of-access-violated",
    14: "data-block-unavailable", 15: "long-action-aborted", 16: "no-long-action-in-progress", 250: "other-reason",
}


@frozen_dataclass
class RequestSpec:
    """One access-request-specification: COSEM attribute (get/set) or method (action) descriptor,
    plus the selective access descriptor of the *-with-selection kinds. `id` is the attribute or
    method id."""

    kind: RequestKind
    class_id: int
    obis: bytes
    id: int
    selector: int | None = None
    parameters: Data | None = None

    @staticmethod
    def get(class_id: int, obis_code: "str | bytes", attribute: int) -> "RequestSpec":
        return RequestSpec(RequestKind.GET, class_id, obis(obis_code), attribute)

    @staticmethod
    def set(class_id: int, obis_code: "str | bytes", attribute: int) -> "RequestSpec":
        return RequestSpec(RequestKind.SET, class_id, obis(obis_code), attribute)

    @staticmethod
    def action(class_id: int, obis_code: "str | bytes", method: int) -> "RequestSpec":
        return RequestSpec(RequestKind.ACTION, class_id, obis(obis_code), method)

    @staticmethod
    def get_with_selection(class_id: int, obis_code: "str | bytes", attribute: int, selector: int, parameters: Data) -> "RequestSpec":
        return RequestSpec(RequestKind.GET_WITH_SELECTION, class_id, obis(obis_code), attribute, selector, parameters)

    @staticmethod
    def set_with_selection(class_id: int, obis_code: "str | bytes", attribute: int, selector: int, parameters: Data) -> "RequestSpec":
        return RequestSpec(RequestKind.SET_WITH_SELECTION, class_id, obis(obis_code), attribute, selector, parameters)

    @property
    def obis_text(self) -> str:
        return obis_text(self.obis)

    @property
    def has_selection(self) -> bool:
        return self.kind in (RequestKind.GET_WITH_SELECTION, RequestKind.SET_WITH_SELECTION)

    @property
    def response_kind(self) -> ResponseKind:
        """The access-response-specification kind that answers this request."""
        return _RESPONSE_FOR[self.kind + 0]

    def _encode_into(self, out: bytearray) -> None:
        try:
            kind = int(self.kind)
            if kind not in _REQ_KINDS:
                raise EncodeError(f"unknown request kind {self.kind!r}")
            if len(self.obis) != 6:
                raise EncodeError("OBIS must be 6 bytes")
            out.append(kind)
            out += self.class_id.to_bytes(2, "big")
            out += self.obis
            out.append(self.id)
        except (OverflowError, ValueError, TypeError) as exc:
            if isinstance(exc, EncodeError):
                raise
            raise EncodeError(f"bad request specification {self!r}: {exc}") from None
        if kind in (4, 5):
            if self.selector is None or self.parameters is None:
                raise EncodeError("a *-with-selection request needs selector and parameters")
            if not 0 <= self.selector < 256:
                raise EncodeError("selector must be 0..255")
            out.append(self.selector)
            _encode_data_into(self.parameters, out, 0)
        elif self.selector is not None or self.parameters is not None:
            raise EncodeError(f"{RequestKind(kind).name} carries no selective access")

    def tree(self, name: str = "spec") -> Node:
        what = "method" if self.kind is RequestKind.ACTION else "attribute"
        children = [
            Node("class_id", self.class_id.to_bytes(2, "big"), str(self.class_id)),
            Node("obis", self.obis, _obis_str(self.obis)),
            Node(what, bytes((self.id,)), str(self.id)),
        ]
        if self.selector is not None:
            children.append(Node("selector", bytes((self.selector,)), str(self.selector)))
        if self.parameters is not None:
            children.append(self.parameters.tree("parameters"))
        raw = bytearray()
        try:
            self._encode_into(raw)
        except EncodeError:
            raw = bytearray()
        return Node(name, bytes(raw), f"{self.kind.name.lower().replace('_', '-')} {self.class_id}/{_obis_str(self.obis)}/{self.id}", tuple(children))


@frozen_dataclass
class ResponseSpec:
    """One access-response-specification: Get/Set → data-access-result, Action → action-result."""

    kind: ResponseKind
    result: int = 0

    @staticmethod
    def get(result: int = 0) -> "ResponseSpec":
        return ResponseSpec(ResponseKind.GET, result)

    @staticmethod
    def set(result: int = 0) -> "ResponseSpec":
        return ResponseSpec(ResponseKind.SET, result)

    @staticmethod
    def action(result: int = 0) -> "ResponseSpec":
        return ResponseSpec(ResponseKind.ACTION, result)

    @property
    def ok(self) -> bool:
        return self.result == 0

    @property
    def result_name(self) -> str:
        table = ACTION_RESULTS if self.kind is ResponseKind.ACTION else DATA_ACCESS_RESULTS
        name = table.get(self.result)
        return f"result {self.result}" if name is None else name

    def tree(self, name: str = "result") -> Node:
        return Node(name, bytes((int(self.kind), self.result)), f"{self.kind.name.lower()}: {self.result_name}")


def _decode_request_spec(buf: bytes, pos: int, end: int) -> tuple[RequestSpec, int]:
    if pos >= end:
        raise DecodeError("truncated: request specification expected", pos, "request_spec")
    kind = _REQ_KINDS.get(buf[pos])
    if kind is None:
        raise DecodeError(f"unknown access-request-specification 0x{buf[pos]:02X}", pos, "request_spec.kind")
    if pos + 10 > end:
        raise DecodeError("truncated request specification", pos, "request_spec")
    class_id = (buf[pos + 1] << 8) | buf[pos + 2]
    spec_obis = buf[pos + 3 : pos + 9]
    ident = buf[pos + 9]
    p = pos + 10
    if kind is RequestKind.GET_WITH_SELECTION or kind is RequestKind.SET_WITH_SELECTION:
        if p >= end:
            raise DecodeError("truncated selective access", p, "request_spec.selector")
        selector = buf[p]
        params, p = _decode_data(buf, p + 1, end, 1)
        return RequestSpec(kind, class_id, spec_obis, ident, selector, params), p
    key = buf[pos:p]
    spec = _SPECS.get(key)
    if spec is None:
        spec = _new(RequestSpec)
        _rs_kind(spec, kind)
        _rs_class(spec, class_id)
        _rs_obis(spec, spec_obis)
        _rs_id(spec, ident)
        _rs_sel(spec, None)
        _rs_par(spec, None)
        if len(_SPECS) >= _LEAVES_MAX:
            _SPECS.clear()
        _SPECS[key] = spec
    return spec, p


# Decoded request specifications without selective access by their 10 bytes, and response
# specifications by their 2: immutable, and GBCS traffic repeats the same few (as _LEAVES).
_SPECS: dict[bytes, "RequestSpec"] = {}
_RESULTS: dict[int, "ResponseSpec"] = {}


_rs_kind, _rs_class, _rs_obis, _rs_id, _rs_sel, _rs_par = slot_setters(RequestSpec, "kind", "class_id", "obis", "id", "selector", "parameters")


def _read_octets(buf: bytes, pos: int, end: int, what: str) -> tuple[bytes, int]:
    n, p = read_length(buf, pos, end, what)
    q = p + n
    if q > end:
        raise DecodeError("truncated", pos, what)
    return buf[p:q], q


def _read_data_list(buf: bytes, pos: int, end: int, what: str) -> tuple[tuple[Data, ...], int]:
    n, p = read_length(buf, pos, end, f"{what}.count")
    if n > end - p:
        raise DecodeError(f"{n} items cannot fit in {end - p} bytes", pos, f"{what}.count")
    items = []
    for i in range(n):
        try:
            d, p = _decode_data(buf, p, end, 0)
        except DecodeError as exc:
            raise DecodeError(exc.args[0], exc.offset, f"{what}[{i}].{exc.field}") from None
        items.append(d)
    return tuple(items), p


def _read_request_specs(buf: bytes, pos: int, end: int, what: str) -> tuple[tuple[RequestSpec, ...], int]:
    n, p = read_length(buf, pos, end, f"{what}.count")
    if n > (end - p) // 10:
        raise DecodeError(f"{n} specifications cannot fit in {end - p} bytes", pos, f"{what}.count")
    specs = []
    for _ in range(n):
        s, p = _decode_request_spec(buf, p, end)
        specs.append(s)
    return tuple(specs), p


def _encode_header_into(tag: int, invoke_id: int, date_time: bytes | None, out: bytearray) -> None:
    out.append(tag)
    try:
        out += invoke_id.to_bytes(4, "big")
    except (OverflowError, AttributeError):
        raise EncodeError("invoke_id must be a 32-bit unsigned int") from None
    if date_time:
        out += encode_length(len(date_time))
        out += date_time
    else:
        out.append(0)


def _header_nodes(tag: int, invoke_id: int, date_time: bytes | None) -> list[Node]:
    flags = []
    if invoke_id & 0x80000000:
        flags.append("high priority")
    if invoke_id & 0x40000000:
        flags.append("confirmed")
    if invoke_id & 0x20000000:
        flags.append("break on error")
    if invoke_id & 0x10000000:
        flags.append("self-descriptive")
    return [
        Node("tag", bytes((tag,)), {0xD9: "ACCESS.request", 0xDA: "ACCESS.response", 0x0F: "DATA-NOTIFICATION"}[tag]),
        Node("invoke_id", invoke_id.to_bytes(4, "big"), f"id {invoke_id & 0xFFFFFF}" + (f" ({', '.join(flags)})" if flags else "")),
        Node("date_time", (encode_length(len(date_time)) + date_time) if date_time else b"\x00",
             "absent" if not date_time else (DlmsDateTime.from_bytes(date_time).text() if len(date_time) == 12 else date_time.hex().upper())),
    ]


# =============================================================================================
# GBCS protected attributes (encrypted sensitive data)
# =============================================================================================


@frozen_dataclass
class ProtectionParameters:
    """One element of DLMS data-protection `protection_parameters` as GBCS fills it: protection type
    2 (authentication + encryption); transaction-id `04 ‖ counter(8)` (04 = the KDF mode byte);
    originator and recipient system titles; other-information (empty); key info "agreed key"
    structure{enum 2, structure{key parameters 02 = C(0e, 2s ECC CDH), key ciphered data ""}}."""

    transaction_id: bytes
    originator: bytes
    recipient: bytes
    other_information: bytes = b""
    key_info: Data = field(default_factory=lambda: _GBCS_KEY_INFO)
    protection_type: int = 2

    @classmethod
    def build(cls, counter: int, originator: bytes, recipient: bytes) -> "ProtectionParameters":
        return cls(b"\x04" + counter.to_bytes(8, "big"), bytes(originator), bytes(recipient))

    @property
    def counter(self) -> int | None:
        """The originator counter carried in the transaction-id (None if not the GBCS form)."""
        if len(self.transaction_id) == 9:
            return int.from_bytes(self.transaction_id[1:], "big")
        return None

    def to_data(self) -> Data:
        tid, orig, recip, other = (bytes(self.transaction_id), bytes(self.originator), bytes(self.recipient),
                                   bytes(self.other_information))
        d = _mk(_STRUCTURE, (
            _ENUM_2 if self.protection_type == 2 else _mk(_ENUM, self.protection_type),
            _mk(_STRUCTURE, (
                _mk(_OCTET_STRING, tid),
                _mk(_OCTET_STRING, orig),
                _mk(_OCTET_STRING, recip),
                _mk(_OCTET_STRING, other),
                self.key_info,
            )),
        ))
        if (self.protection_type == 2 and self.key_info is _GBCS_KEY_INFO and len(tid) == 9 and len(orig) == 8
                and len(recip) == 8 and not other):
            # The GBCS form, in every protected read and its response: encoded by template.
            _set_raw(d, _GBCS_PARAMETERS_HEAD + tid + b"\x09\x08" + orig + b"\x09\x08" + recip + _GBCS_PARAMETERS_TAIL)
        return d

    @staticmethod
    def gbcs_encoding(counter: int, originator: bytes, recipient: bytes) -> bytes:
        """`build(counter, originator, recipient).to_data().encode()` for 8-byte EUIs, by the
        template alone (no Data tree): for builders that write the parameters straight into bytes."""
        if len(originator) != 8 or len(recipient) != 8:
            raise EncodeError("the GBCS protection parameters name 8-byte EUIs")
        return (_GBCS_PARAMETERS_HEAD + b"\x04" + counter.to_bytes(8, "big") + b"\x09\x08" + originator
                + b"\x09\x08" + recipient + _GBCS_PARAMETERS_TAIL)

    @classmethod
    def from_data(cls, d: Data) -> "ProtectionParameters | None":
        """The parameters in `d` (a structure), or None if `d` does not have that shape."""
        if d.type is not _T.STRUCTURE or len(d.value) != 2:  # type: ignore[arg-type]
            return None
        ptype, opts = d.value  # type: ignore[misc]
        if ptype.type is not _T.ENUM or opts.type is not _T.STRUCTURE or len(opts.value) != 5:
            return None
        tid, orig, recip, other, key_info = opts.value
        o = _T.OCTET_STRING
        if tid.type is not o or orig.type is not o or recip.type is not o or other.type is not o or key_info.type is not _T.STRUCTURE:
            return None
        return cls(tid.value, orig.value, recip.value, other.value, key_info, ptype.value)

    def tree(self, name: str = "protection_parameters") -> Node:
        raw = self.to_data().encode()
        return Node(name, raw, f"protection type {self.protection_type}" + (" (authentication+encryption)" if self.protection_type == 2 else ""), (
            Node("transaction_id", self.transaction_id, f"mode {self.transaction_id[:1].hex()} counter {self.counter}" if self.counter is not None else ""),
            Node("originator", self.originator, eui_hex(self.originator) if len(self.originator) == 8 else ""),
            Node("recipient", self.recipient, eui_hex(self.recipient) if len(self.recipient) == 8 else ""),
            Node("other_information", self.other_information, "absent" if not self.other_information else ""),
            self.key_info.tree("key_info"),
        ))


_GBCS_KEY_INFO = frozen(Data.structure(Data.enum(2), Data.structure(Data.octet_string(b"\x02"), Data.octet_string(b""))))
# structure{enum 2, structure{octet-string(9) ... | octet-string(0), key info}} around the three fields
_GBCS_PARAMETERS_HEAD = b"\x02\x02\x16\x02\x02\x05\x09\x09"
_GBCS_PARAMETERS_TAIL = b"\x09\x00" + _GBCS_KEY_INFO.encode()
_GBCS_PARAMETERS_SIZE = len(_GBCS_PARAMETERS_HEAD) + 9 + 2 + 8 + 2 + 8 + len(_GBCS_PARAMETERS_TAIL)


def _gbcs_parameters_at(buf: bytes, pos: int, end: int) -> "tuple[Data, int] | None":
    """The GBCS protection parameters (every protected read and its response carry them) read by
    their template, byte by byte, into the same tree the general decoder makes; None when `buf`
    differs anywhere from the template (→ general decoder)."""
    q = pos + 8
    e = pos + _GBCS_PARAMETERS_SIZE
    if (e > end or buf[q + 9] != 0x09 or buf[q + 10] != 0x08 or buf[q + 19] != 0x09 or buf[q + 20] != 0x08
            or not buf.startswith(_GBCS_PARAMETERS_TAIL, q + 29)):
        return None
    d = _mk(_STRUCTURE, (_ENUM_2, _mk(_STRUCTURE, (
        _mk(_OCTET_STRING, buf[q : q + 9]),
        _mk(_OCTET_STRING, buf[q + 11 : q + 19]),
        _mk(_OCTET_STRING, buf[q + 21 : q + 29]),
        _EMPTY_OCTETS,
        _GBCS_KEY_INFO,
    ))))
    _set_raw(d, buf[pos:e])
    return d, e


_EMPTY_OCTETS = Data.octet_string(b"")


@frozen_dataclass
class ProtectedData:
    """A view of GBCS protected data: protection parameters + the `31 00000000 ‖ ciphertext ‖ tag`
    block. In a Get Protected Attributes response it is one list-of-data item, structure{array of
    parameters, octet-string block}; in ECS68 (0x0061) the two sit directly in the alert structure.

    With a `decrypt` callback the plaintext is decoded as one Data (`plaintext`); `error` says why
    not when that failed (tag mismatch, bad Data). The APDU always re-encodes from its own Data, so
    the original block is kept byte-exact."""

    parameters: ProtectionParameters
    ciphered: bytes
    index: int | None = None  # position in the response list-of-data
    plaintext_bytes: bytes | None = None
    plaintext: Data | None = None
    error: str | None = None

    @property
    def counter(self) -> int | None:
        return self.parameters.counter

    @property
    def decrypted(self) -> bool:
        return self.plaintext_bytes is not None

    @staticmethod
    def build(parameters: ProtectionParameters, plaintext: "Data | bytes", encrypt: Callable[[bytes], bytes]) -> Data:
        """The response list-of-data item: structure{array{parameters}, octet-string(encrypt(pt))}.
        `encrypt` maps plaintext to the whole `31 00000000 ‖ ct ‖ tag` block."""
        params, block = ProtectedData.build_elements(parameters, plaintext, encrypt)
        return Data.structure(params, block)

    @staticmethod
    def build_elements(parameters: ProtectionParameters, plaintext: "Data | bytes", encrypt: Callable[[bytes], bytes]) -> tuple[Data, Data]:
        """(array{parameters}, octet-string block) — the two elements, for alert bodies (ECS68)."""
        pt = plaintext.encode() if isinstance(plaintext, Data) else bytes(plaintext)
        block = encrypt(pt)
        if not isinstance(block, (bytes, bytearray)) or block[:5] != ENCRYPTED_HEADER or len(block) < 5 + TAG_LENGTH:
            raise EncodeError("encrypt must return 31 00000000 ‖ ciphertext ‖ 12-byte tag")
        return Data.array(parameters.to_data()), Data.octet_string(bytes(block))

    def tree(self, name: str = "protected_data") -> Node:
        children = [self.parameters.tree(), Node("security_header", self.ciphered[:5], "security control 0x31, IC 0"),
                    Node("ciphertext", self.ciphered[5:-TAG_LENGTH], f"{len(self.ciphered) - 5 - TAG_LENGTH} bytes"),
                    Node("tag", self.ciphered[-TAG_LENGTH:], "GCM tag, 12 bytes")]
        if self.plaintext is not None:
            children.append(self.plaintext.tree("plaintext"))
        elif self.plaintext_bytes is not None:
            children.append(Node("plaintext", self.plaintext_bytes, self.error or ""))
        state = "decrypted" if self.plaintext is not None else (f"not decrypted: {self.error}" if self.error else "encrypted")
        return Node(name, b"", state, tuple(children))


def _protected_view(params: Data, block: Data, index: int | None, decrypt) -> ProtectedData | None:
    """ProtectedData if (params, block) have the GBCS shape, else None (left as plain Data)."""
    if params.type is not _T.ARRAY or len(params.value) != 1 or block.type is not _T.OCTET_STRING:  # type: ignore[arg-type]
        return None
    raw = block.value
    if raw[:5] != ENCRYPTED_HEADER or len(raw) < 5 + TAG_LENGTH:  # type: ignore[index, arg-type]
        return None
    pp = ProtectionParameters.from_data(params.value[0])  # type: ignore[index]
    if pp is None:
        return None
    if decrypt is None:
        return ProtectedData(pp, raw, index)  # type: ignore[arg-type]
    try:
        pt = decrypt(raw)
    except SecurityError as exc:
        return ProtectedData(pp, raw, index, None, None, str(exc) or "decryption failed")  # type: ignore[arg-type]
    pt = bytes(pt)
    try:
        plain = decode_data(pt)
    except DecodeError as exc:
        return ProtectedData(pp, raw, index, pt, None, f"plaintext is not one DLMS Data: {exc}")  # type: ignore[arg-type]
    return ProtectedData(pp, raw, index, pt, plain, None)  # type: ignore[arg-type]


def _find_protected(items: Sequence[Data], decrypt) -> tuple[ProtectedData, ...]:
    found = []
    for i, item in enumerate(items):
        if item.type is _T.STRUCTURE and len(item.value) == 2:  # type: ignore[arg-type]
            view = _protected_view(item.value[0], item.value[1], i, decrypt)  # type: ignore[index]
            if view is not None:
                found.append(view)
    return tuple(found)


def get_protected_attributes_request(spec: RequestSpec, data: Data) -> "tuple[tuple[tuple[int, bytes, int, int], ...], ProtectionParameters] | None":
    """Read an ECS17b-style Get Protected Attributes request (action on class 30 method 1): returns
    ((class_id, obis, attribute, data_index) per requested object, the request's protection
    parameters), or None if `spec`/`data` are not of that shape."""
    if spec.kind is not RequestKind.ACTION or spec.class_id != 30 or spec.id != 1:
        return None
    if data.type is not _T.STRUCTURE or len(data.value) != 2:  # type: ignore[arg-type]
        return None
    objects, params = data.value  # type: ignore[misc]
    if objects.type is not _T.ARRAY or params.type is not _T.ARRAY or len(params.value) != 1:
        return None
    pp = ProtectionParameters.from_data(params.value[0])
    if pp is None:
        return None
    refs = []
    for o in objects.value:
        if o.type is not _T.STRUCTURE or len(o.value) < 4:
            return None
        cid, ln, attr, idx = o.value[:4]
        if cid.type is not _T.LONG_UNSIGNED or ln.type is not _T.OCTET_STRING or not isinstance(attr.value, int) or not isinstance(idx.value, int):
            return None
        refs.append((cid.value, ln.value, attr.value, idx.value))
    return tuple(refs), pp


# =============================================================================================
# Alert bodies dispatched by message code
# =============================================================================================


@frozen_dataclass
class FutureDatedAlert:
    """0x00CC (DLMS form): which future-dated command ran: its message code, originator counter and
    the COSEM attribute it set (octet-string of 19 bytes in RTDS)."""

    message_code: int
    originator_counter: int
    class_id: int
    obis: bytes
    attribute: int

    @classmethod
    def parse(cls, raw: bytes) -> "FutureDatedAlert | None":
        if len(raw) != 19:
            return None
        return cls(int.from_bytes(raw[0:2], "big"), int.from_bytes(raw[2:10], "big"),
                   int.from_bytes(raw[10:12], "big"), raw[12:18], raw[18])

    def to_bytes(self) -> bytes:
        return (self.message_code.to_bytes(2, "big") + self.originator_counter.to_bytes(8, "big")
                + self.class_id.to_bytes(2, "big") + obis(self.obis) + bytes((self.attribute,)))


@frozen_dataclass
class FirmwareDistributionReceipt:
    """0x00CE (ESME/CHF, DLMS form): the calculated manufacturer image hash (32 bytes)."""

    hash: bytes


@frozen_dataclass
class BillingDataLogAlert:
    """0x0061 ECS68: billing data log as protected (encrypted) data."""

    protected: ProtectedData


@frozen_dataclass
class FailureToDeliverAlert:
    """0x00D5 (alert 0x8F84): the remote party message that could not be delivered to the ESME.
    [unverified: no RTDS vector; layout from the SmartDCC parser: originator(8) ‖ target(8) ‖
    CRA(1) ‖ counter(8), seen as a DER SEQUENCE or an octet-string]"""

    originator: bytes
    recipient: bytes
    cra: int
    originator_counter: int


@frozen_dataclass
class MeterIntegrityWarning:
    """0x00F0 (alert 0x81A0): the integrity issue code (0 other, 1 NVM, 2 program execution, ...)."""

    issue: int


def _alert_details(message_code: int | None, body: Data, decrypt):
    """Message-code-specific reading of a notification body; None when it does not apply."""
    if body.type is not _T.STRUCTURE or len(body.value) < 3:  # type: ignore[arg-type]
        return None
    items = body.value
    third = items[2]  # type: ignore[index]
    if message_code == 0x00CC:
        if third.type is _T.OCTET_STRING:
            return FutureDatedAlert.parse(third.value)
    elif message_code == 0x00CE:
        if third.type is _T.OCTET_STRING and len(third.value) == 32:
            return FirmwareDistributionReceipt(third.value)
    elif message_code == 0x0061:
        if len(items) == 4:  # type: ignore[arg-type]
            view = _protected_view(third, items[3], None, decrypt)  # type: ignore[index]
            if view is not None:
                return BillingDataLogAlert(view)
    elif message_code == 0x00D5:
        if third.type in (_T.DER_SEQUENCE, _T.OCTET_STRING) and len(third.value) == 25:
            raw = third.value
            return FailureToDeliverAlert(raw[0:8], raw[8:16], raw[16], int.from_bytes(raw[17:25], "big"))
    elif message_code == 0x00F0:
        if third.type is _T.OCTET_STRING and len(third.value) == 2:
            return MeterIntegrityWarning(int.from_bytes(third.value, "big"))
        if third.type in (_T.LONG_UNSIGNED, _T.ENUM, _T.UNSIGNED):
            return MeterIntegrityWarning(third.value)  # type: ignore[arg-type]
    return None


def _details_tree(details) -> Node | None:
    if details is None:
        return None
    if isinstance(details, BillingDataLogAlert):
        return Node("billing_data_log", b"", "ECS68", (details.protected.tree(),))
    if isinstance(details, FutureDatedAlert):
        return Node("future_dated", details.to_bytes(), "future-dated command executed", (
            Node("message_code", details.message_code.to_bytes(2, "big"), f"0x{details.message_code:04X}"),
            Node("originator_counter", details.originator_counter.to_bytes(8, "big"), str(details.originator_counter)),
            Node("class_id", details.class_id.to_bytes(2, "big"), str(details.class_id)),
            Node("obis", details.obis, _obis_str(details.obis)),
            Node("attribute", bytes((details.attribute,)), str(details.attribute)),
        ))
    if isinstance(details, FirmwareDistributionReceipt):
        return Node("firmware_receipt", details.hash, "calculated manufacturer image hash")
    if isinstance(details, FailureToDeliverAlert):
        return Node("undelivered_message", b"", "remote party message not delivered", (
            Node("originator", details.originator, eui_hex(details.originator)),
            Node("recipient", details.recipient, eui_hex(details.recipient)),
            Node("cra", bytes((details.cra,)), str(details.cra)),
            Node("originator_counter", details.originator_counter.to_bytes(8, "big"), str(details.originator_counter)),
        ))
    if isinstance(details, MeterIntegrityWarning):
        return Node("integrity_issue", details.issue.to_bytes(2, "big"), str(details.issue))
    return None  # pragma: no cover


# =============================================================================================
# APDUs
# =============================================================================================


@frozen_dataclass
class AccessRequest:
    """ACCESS.request (D9). `data[i]` goes with `specs[i]` (null-data for a Get)."""

    invoke_id: int
    specs: tuple[RequestSpec, ...]
    data: tuple[Data, ...]
    date_time: bytes | None = None
    _raw: bytes = field(default=b"", init=False, repr=False, compare=False)

    @classmethod
    def build(cls, counter: int, specs: Iterable[RequestSpec], data: Iterable[Data] | None = None,
              date_time: "bytes | datetime | None" = None) -> "AccessRequest":
        """Request for the originator `counter` (invoke-id rule). `data` defaults to null-data per spec."""
        specs = tuple(specs)
        data = tuple(data) if data is not None else (_NULL,) * len(specs)
        if len(data) != len(specs):
            raise EncodeError(f"{len(specs)} specifications but {len(data)} data items")
        dt = None if date_time is None else _datetime_bytes(date_time)
        return cls(invoke_id_for(counter), specs, data, dt or None)

    def encode(self) -> bytes:
        if self._raw:
            return self._raw
        out = bytearray()
        _encode_header_into(ACCESS_REQUEST, self.invoke_id, self.date_time, out)
        out += encode_length(len(self.specs))
        for s in self.specs:
            if not isinstance(s, RequestSpec):
                raise EncodeError(f"not a RequestSpec: {s!r}")
            s._encode_into(out)
        out += encode_length(len(self.data))
        for d in self.data:
            if not isinstance(d, Data):
                raise EncodeError(f"not Data: {d!r}")
            _encode_data_into(d, out, 0)
        return bytes(out)

    def tree(self) -> Node:
        children = _header_nodes(ACCESS_REQUEST, self.invoke_id, self.date_time)
        children.append(Node("specs", encode_length(len(self.specs)), f"{len(self.specs)} request specification(s)",
                             tuple(s.tree(f"[{i}]") for i, s in enumerate(self.specs))))
        children.append(Node("data", encode_length(len(self.data)), f"{len(self.data)} data item(s)",
                             tuple(d.tree(f"[{i}]") for i, d in enumerate(self.data))))
        return Node("DLMS ACCESS.request", b"", f"{len(self.specs)} request(s)", tuple(children))

    def to_json(self):
        return {"type": "AccessRequest", "invoke_id": self.invoke_id,
                "date_time": self.date_time.hex().upper() if self.date_time else None,
                "specs": [_shared_json(s, _spec_json) for s in self.specs], "data": [d.to_json() for d in self.data]}


def _result_json(r: ResponseSpec) -> dict:
    return {"kind": r.kind._name_, "result": r.result, "name": r.result_name}


def _spec_json(s: RequestSpec) -> dict:
    out = {"kind": s.kind._name_, "class_id": s.class_id, "obis": _obis_str(s.obis), "id": s.id}
    if s.selector is not None:
        out["selector"] = s.selector
    if s.parameters is not None:
        out["parameters"] = s.parameters.to_json()
    return out


@frozen_dataclass
class AccessResponse:
    """ACCESS.response (DA). `results[i]` answers request i; return data (Get values, Action
    return parameters) are in `data`, null-data where there is none. `protected` lists the GBCS
    protected-attribute items found in `data` by `decode_apdu` (decrypted when it was given a
    callback); builders leave it empty — use `find_protected()`."""

    invoke_id: int
    data: tuple[Data, ...]
    results: tuple[ResponseSpec, ...]
    date_time: bytes | None = None
    request_specs: tuple[RequestSpec, ...] | None = None
    protected: tuple[ProtectedData, ...] = field(default=(), compare=False)
    _raw: bytes = field(default=b"", init=False, repr=False, compare=False)

    @classmethod
    def build(cls, counter: int, data: Iterable[Data], results: Iterable[ResponseSpec],
              date_time: "bytes | datetime | None" = None, request_specs: Iterable[RequestSpec] | None = None) -> "AccessResponse":
        data = tuple(data)
        results = tuple(results)
        dt = None if date_time is None else _datetime_bytes(date_time)
        return cls(invoke_id_for(counter), data, results, dt or None,
                   None if request_specs is None else tuple(request_specs))

    @classmethod
    def answer(cls, request: AccessRequest, data: Iterable[Data | None], results: Iterable[int] | None = None,
               counter: int | None = None, date_time: "bytes | datetime | None" = None) -> "AccessResponse":
        """The response to `request`: same invoke-id (or that of `counter`), one result per
        request specification of the matching kind (`results` as codes, default all success)."""
        data = tuple(_NULL if d is None else d for d in data)
        codes = tuple(results) if results is not None else (0,) * len(request.specs)
        if len(codes) != len(request.specs):
            raise EncodeError(f"{len(request.specs)} requests but {len(codes)} results")
        specs = []
        for s, c in zip(request.specs, codes):
            r = _new(ResponseSpec)
            _rr_kind(r, _RESPONSE_FOR[s.kind + 0])
            _rr_result(r, c)
            specs.append(r)
        dt = None if date_time is None else _datetime_bytes(date_time)
        invoke = request.invoke_id if counter is None else invoke_id_for(counter)
        return _fast_response(invoke, data, tuple(specs), dt or None, None, ())

    def find_protected(self, decrypt: Callable[[bytes], bytes] | None = None) -> tuple[ProtectedData, ...]:
        """The protected-attribute items in `data`, decrypted with `decrypt` if given."""
        return _find_protected(self.data, decrypt)

    def encode(self) -> bytes:
        if self._raw:
            return self._raw
        out = bytearray()
        _encode_header_into(ACCESS_RESPONSE, self.invoke_id, self.date_time, out)
        if self.request_specs is None:
            out.append(0)
        else:
            out.append(1)
            out += encode_length(len(self.request_specs))
            for s in self.request_specs:
                s._encode_into(out)
        out += encode_length(len(self.data))
        for d in self.data:
            if not isinstance(d, Data):
                raise EncodeError(f"not Data: {d!r}")
            _encode_data_into(d, out, 0)
        out += encode_length(len(self.results))
        for r in self.results:
            try:
                kind = int(r.kind)
                if kind not in _RESP_KINDS or not 0 <= r.result < 256:
                    raise ValueError
            except (ValueError, TypeError, AttributeError):
                raise EncodeError(f"bad response specification {r!r}") from None
            out.append(kind)
            out.append(r.result)
        return bytes(out)

    def tree(self) -> Node:
        children = _header_nodes(ACCESS_RESPONSE, self.invoke_id, self.date_time)
        if self.request_specs is None:
            children.append(Node("request_specs", b"\x00", "absent"))
        else:
            children.append(Node("request_specs", b"\x01" + encode_length(len(self.request_specs)), f"{len(self.request_specs)} echoed",
                                 tuple(s.tree(f"[{i}]") for i, s in enumerate(self.request_specs))))
        prot = {p.index: p for p in self.protected}
        items = []
        for i, d in enumerate(self.data):
            if i in prot:
                node = d.tree(f"[{i}]")
                items.append(Node(node.name, node.raw, "Get Protected Attributes response", (prot[i].tree(),)))
            else:
                items.append(d.tree(f"[{i}]"))
        children.append(Node("data", encode_length(len(self.data)), f"{len(self.data)} data item(s)", tuple(items)))
        children.append(Node("results", encode_length(len(self.results)), f"{len(self.results)} result(s)",
                             tuple(r.tree(f"[{i}]") for i, r in enumerate(self.results))))
        ok = all(r.ok for r in self.results)
        return Node("DLMS ACCESS.response", b"", "all success" if ok else "with errors", tuple(children))

    def to_json(self):
        out = {"type": "AccessResponse", "invoke_id": self.invoke_id,
               "date_time": self.date_time.hex().upper() if self.date_time else None,
               "data": [d.to_json() for d in self.data],
               "results": [_shared_json(r, _result_json) for r in self.results]}
        if self.request_specs is not None:
            out["request_specs"] = [_shared_json(s, _spec_json) for s in self.request_specs]
        if self.protected:
            out["protected"] = [_protected_json(p) for p in self.protected]
        return out


def _protected_json(p: ProtectedData) -> dict:
    return {"index": p.index, "counter": p.counter, "originator": p.parameters.originator.hex().upper(),
            "recipient": p.parameters.recipient.hex().upper(), "ciphered": p.ciphered.hex().upper(),
            "decrypted": p.decrypted, "plaintext": p.plaintext.to_json() if p.plaintext is not None else None,
            "error": p.error}


@frozen_dataclass
class DataNotification:
    """DATA-NOTIFICATION (0F), GBCS alerts: `body` is structure{alert code (long-unsigned), date-time
    octet-string(12), use-case specific elements...}. `details` is the message-code specific view
    (FutureDatedAlert, FirmwareDistributionReceipt, BillingDataLogAlert, FailureToDeliverAlert,
    MeterIntegrityWarning) or None."""

    invoke_id: int
    body: Data
    date_time: bytes | None = None
    details: object = field(default=None, compare=False)
    _raw: bytes = field(default=b"", init=False, repr=False, compare=False)

    @classmethod
    def build(cls, counter: int, alert_code: int, when: "datetime | DlmsDateTime | bytes", *elements: Data,
              message_code: int | None = None, date_time: "bytes | datetime | None" = None) -> "DataNotification":
        """An alert: structure{long-unsigned alert code, octet-string date-time, *elements}."""
        body = Data.structure(Data.long_unsigned(alert_code), Data.timestamp(when), *elements)
        dt = None if date_time is None else _datetime_bytes(date_time)
        return cls(invoke_id_for(counter), body, dt or None, _alert_details(message_code, body, None))

    @property
    def alert_code(self) -> int | None:
        b = self.body
        if b.type is _T.STRUCTURE and b.value and b.value[0].type is _T.LONG_UNSIGNED:  # type: ignore[index]
            return b.value[0].value  # type: ignore[index]
        return None

    @property
    def alert_time(self) -> bytes | None:
        """The alert's raw 12-byte date-time (second element), if present."""
        b = self.body
        if b.type is _T.STRUCTURE and len(b.value) >= 2:  # type: ignore[arg-type]
            t = b.value[1]  # type: ignore[index]
            if t.type in (_T.OCTET_STRING, _T.DATE_TIME) and len(t.value) == 12:
                return t.value
        return None

    @property
    def elements(self) -> tuple[Data, ...]:
        """The use-case specific elements after alert code and date-time."""
        b = self.body
        if b.type is _T.STRUCTURE and len(b.value) >= 2:  # type: ignore[arg-type]
            return b.value[2:]  # type: ignore[index, return-value]
        return ()

    def encode(self) -> bytes:
        if self._raw:
            return self._raw
        out = bytearray()
        _encode_header_into(DATA_NOTIFICATION, self.invoke_id, self.date_time, out)
        if not isinstance(self.body, Data):
            raise EncodeError("body must be Data")
        _encode_data_into(self.body, out, 0)
        return bytes(out)

    def tree(self) -> Node:
        children = _header_nodes(DATA_NOTIFICATION, self.invoke_id, self.date_time)
        body = self.body.tree("body")
        code = self.alert_code
        if code is not None and body.children:
            kids = list(body.children)
            kids[0] = Node("alert_code", kids[0].raw, alert_label(code))
            if len(kids) > 1 and self.alert_time is not None:
                kids[1] = Node("alert_time", kids[1].raw, DlmsDateTime.from_bytes(self.alert_time).text())
            body = Node(body.name, body.raw, body.meaning, tuple(kids))
        children.append(body)
        extra = _details_tree(self.details)
        if extra is not None:
            children.append(extra)
        return Node("DLMS DATA-NOTIFICATION", b"", f"alert {alert_label(code)}" if code is not None else "", tuple(children))

    def to_json(self):
        code = self.alert_code
        out = {"type": "DataNotification", "invoke_id": self.invoke_id,
               "date_time": self.date_time.hex().upper() if self.date_time else None,
               "alert_code": None if code is None else f"0x{code:04X}",
               "alert_name": None if code is None else alert_name(code), "body": self.body.to_json()}
        d = self.details
        if isinstance(d, BillingDataLogAlert):
            out["details"] = {"type": "BillingDataLogAlert", "protected": _protected_json(d.protected)}
        elif d is not None:
            from .codec import jsonable

            out["details"] = jsonable(d)
        return out


# =============================================================================================
# Decoding entry point
# =============================================================================================

Apdu = AccessRequest | AccessResponse | DataNotification


def decode_apdu(data: bytes, *, message_code: int | None = None,
                decrypt: Callable[[bytes], bytes] | None = None) -> Apdu:
    """Decode a GBCS DLMS payload (`Message.content`). `message_code` selects the special alert
    bodies; `decrypt` (block → plaintext, raising gbcs.security.SecurityError) opens protected
    data. Raises only DecodeError, offsets relative to `data`."""
    data = bytes(data)
    end = len(data)
    if end == 0:
        raise DecodeError("empty DLMS payload", 0, "tag")
    tag = data[0]
    if tag not in (ACCESS_REQUEST, ACCESS_RESPONSE, DATA_NOTIFICATION):
        raise DecodeError(f"not a GBCS DLMS APDU tag 0x{tag:02X} (expected D9, DA or 0F)", 0, "tag")
    if end < 6:
        raise DecodeError("truncated APDU header", end, "invoke_id")
    try:
        return _decode_apdu(data, end, tag, message_code, decrypt)
    except RecursionError:  # pragma: no cover - MAX_DEPTH keeps well clear
        raise DecodeError("nesting too deep", 0, "data") from None


def _decode_apdu(data: bytes, end: int, tag: int, message_code, decrypt):
    invoke = int.from_bytes(data[1:5], "big")
    dt_raw, pos = _read_octets(data, 5, end, "date_time")
    dt = dt_raw or None
    if tag == ACCESS_REQUEST:
        specs, pos = _read_request_specs(data, pos, end, "specs")
        items, pos = _read_data_list(data, pos, end, "data")
        _expect_end(pos, end)
        apdu = _new(AccessRequest)
        _ar_invoke(apdu, invoke)
        _ar_specs(apdu, specs)
        _ar_data(apdu, items)
        _ar_dt(apdu, dt)
        _ar_raw(apdu, data)
        return apdu
    if tag == ACCESS_RESPONSE:
        if pos >= end:
            raise DecodeError("truncated", pos, "request_specs")
        flag = data[pos]
        if flag == 0:
            req_specs = None
            pos += 1
        elif flag == 1:
            req_specs, pos = _read_request_specs(data, pos + 1, end, "request_specs")
        else:
            raise DecodeError(f"OPTIONAL flag must be 00 or 01, got 0x{flag:02X}", pos, "request_specs")
        items, pos = _read_data_list(data, pos, end, "data")
        n, pos = read_length(data, pos, end, "results.count")
        if 2 * n > end - pos:
            raise DecodeError(f"{n} results cannot fit in {end - pos} bytes", pos, "results.count")
        results = []
        for _ in range(n):
            kind = _RESP_KINDS.get(data[pos])
            if kind is None:
                raise DecodeError(f"unknown access-response-specification 0x{data[pos]:02X}", pos, "results.kind")
            r = _RESULTS.get((data[pos] << 8) | data[pos + 1])
            if r is None:
                r = _RESULTS[(data[pos] << 8) | data[pos + 1]] = _new(ResponseSpec)  # (at most 3 × 256)
                _rr_kind(r, kind)
                _rr_result(r, data[pos + 1])
            results.append(r)
            pos += 2
        _expect_end(pos, end)
        resp = _fast_response(invoke, items, tuple(results), dt, req_specs, _find_protected(items, decrypt))
        _resp_raw(resp, data)
        return resp
    # DATA-NOTIFICATION
    if message_code == 0x00D5 and pos + 1 < end and data[pos] == 0x02:
        body, pos = _decode_notification_structure(data, pos, end)
    else:
        try:
            body, pos = _decode_data(data, pos, end, 0)
        except DecodeError as exc:
            raise DecodeError(exc.args[0], exc.offset, f"body.{exc.field}") from None
    _expect_end(pos, end)
    note = DataNotification(invoke, body, dt, _alert_details(message_code, body, decrypt))
    object.__setattr__(note, "_raw", data)
    return note


def _decode_notification_structure(data: bytes, pos: int, end: int) -> tuple[Data, int]:
    """Top-level notification structure whose direct elements may be DER SEQUENCEs (0x00D5)."""
    n, p = read_length(data, pos + 1, end, "body.count")
    if n > end - p:
        raise DecodeError(f"{n} elements cannot fit in {end - p} bytes", pos, "body.count")
    items = []
    for _ in range(n):
        d, p = _decode_data(data, p, end, 1, der=True)
        items.append(d)
    return _mk(_T.STRUCTURE, tuple(items)), p


def _expect_end(pos: int, end: int) -> None:
    if pos != end:
        raise DecodeError(f"{end - pos} unexpected trailing bytes", pos, "trailer")


_ar_invoke, _ar_specs, _ar_data, _ar_dt, _ar_raw = slot_setters(AccessRequest, "invoke_id", "specs", "data", "date_time", "_raw")
_rr_kind = ResponseSpec.__dict__["kind"].__set__  # type: ignore[attr-defined]
_resp_setters = tuple(AccessResponse.__dict__[f].__set__ for f in  # type: ignore[attr-defined]
                      ("invoke_id", "data", "results", "date_time", "request_specs", "protected", "_raw"))
_resp_raw = _resp_setters[-1]


def _fast_response(invoke_id, data, results, date_time, request_specs, protected) -> AccessResponse:
    """AccessResponse without the frozen-dataclass __init__ (hot path of the emulated ESME)."""
    r = _new(AccessResponse)
    s = _resp_setters
    s[0](r, invoke_id)
    s[1](r, data)
    s[2](r, results)
    s[3](r, date_time)
    s[4](r, request_specs)
    s[5](r, protected)
    s[6](r, b"")
    return r
_rr_result = ResponseSpec.__dict__["result"].__set__  # type: ignore[attr-defined]
