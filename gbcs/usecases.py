"""Use cases by name: build a command's content from named parameters, and read a response back
as a small JSON-able summary.

This is what `gbhub send USE_CASE key=value ...` and `wan.headend` stand on: one registry,
`USE_CASES`, of `UseCaseDef`s, each knowing its message code, the device kind it goes to, whether it
is critical, who originates it, its typed parameters (with defaults) and two functions:

* `build(counter, **params) -> bytes` — the content (DLMS ACCESS.request or ASN.1 DER). Every layout
  was taken from the use case's RTDS COMMAND/PRECOMMAND vectors, and with a vector's own parameters
  and counter the build reproduces its content byte-exactly (tests/test_usecases.py) — except
  CCS03, which has no vector nor source: its layout is ours [U] (`_b_ccs03`, hub/chf.py).
* `interpret(response, *, decrypt=None) -> dict` — the response as a lab engineer wants it
  (`{"import_kwh": 0.01, "unit": "Wh", ...}`), falling back to the generic payload JSON for any
  shape the use case does not expect.

Message-level matters stay with the caller (`wan.headend.HeadEnd.build_command`): the originator
(`UseCaseDef.originator`: the supplier, or the DCC's ACB for CHF use cases, which then carry the
supplier as supplementary remote party [O RTDS CCS01/02/06]), signing (`critical`), and the top-up
counter rule (`utrn`: low 32 bits of the originator counter zero, high 32 bits the UTRN counter).
The Get Protected Attributes reads (ECS17b, ECS21a, ECS22b) name the message's originator and
recipient inside the content, so they take `originator` / `recipient` parameters; `build_content`
passes the header's EUIs to any use case that declares them.

Sans-IO: no I/O. The only outside input is the system clock, read when a time parameter is left at
its "now"-relative default (ECS22b/ECS21a/ECS35a/b ranges, ECS70 validity window); pass explicit
times for deterministic content.

Confidence tags as in FACTS.md: [O] observed in RTDS, [I] inferred, [U] not found in any source.
"""
from __future__ import annotations

import datetime as _dt
import enum
import math
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable, Iterable, Mapping, Sequence

from . import catalogue
from .asn1 import (
    DeviceJoinDetails,
    DeviceType,
    JoinDevice,
    JoinMethodAndRole,
    JoinResponse,
    ReadDeviceJoinDetails,
    UnjoinDevice,
    UnjoinResponse,
)
from .codec import DecodeError, EncodeError, eui_hex, jsonable, parse_eui
from .dlms import (
    AccessResponse,
    AccessRequest,
    Data,
    DataNotification,
    DataType,
    DlmsDateTime,
    ProtectionParameters,
    RequestKind,
    RequestSpec,
    decode_apdu,
    decode_compact_array,
    frozen,
)
from .frame import Message, decode_message
from .obis import BLOCK_THRESHOLDS, BLOCK_THRESHOLDS_PASSIVE, OBIS
from .payload import Decrypt, decode_payload

__all__ = [
    "REQUIRED", "Param", "UseCaseDef", "USE_CASES", "PARAM_TYPES", "get", "build_content", "parse_params",
    "interpret", "usecase_table_markdown", "SupplyState",
]

_EPOCH_2000 = _dt.datetime(2000, 1, 1, tzinfo=_dt.timezone.utc)
_U32 = 0xFFFFFFFF


class _Required:
    __slots__ = ()

    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()  # a Param default meaning "no default: must be given"


# =============================================================================================
# Parameters
# =============================================================================================

# Param.type values, with the text form `parse_params` (the CLI) accepts. `build` accepts either
# the Python value or that text.
PARAM_TYPES: dict[str, str] = {
    "int": "integer: decimal or 0x-hex",
    "float": "decimal number",
    "bool": "true/false, yes/no, on/off, 1/0",
    "str": "text",
    "hex": "bytes as hex digits (spaces, ':' and '-' ignored)",
    "eui": "EUI-64: 16 hex digits",
    "enum": "member name (case-insensitive) or number",
    "datetime": "ISO 8601 date-time, UTC unless an offset is given (2015-01-01T00:00:00Z)",
    "when": "ISO 8601 date-time, or 'immediate' (also 'now'), or 'never' (cancels a pending one)",
    "utrn": "20-digit UTRN (spaces allowed)",
    "ints": "comma-separated integers (1,2,3)",
    "int_rows": "rows separated by ';', values by ',' (1,2;3,4)",
    "day_profiles": "profiles separated by ';', switches by ',': HH:MM[:SS]=T<n>|B<n> (00:00=T1;07:00=B1,17:00=B2)",
    "seasons": "name@YYYY-MM-DD=week, comma-separated (all@2015-01-01=1)",
    "special_days": "YYYY-MM-DD=day, comma-separated (2015-12-25=2)",
    "devices": "EUI:INSTALL_CODE pairs, comma-separated: 16 and 32 hex digits "
               "(00DB1234567890A0:30313233343536373839414243444546,00DB1234567890A1:...)",
}


@dataclass(frozen=True, slots=True)
class Param:
    """One named parameter of a use case. `default` is REQUIRED when there is none; None defaults
    are resolved at build time and explained in `help`. `min`/`max` bound an int (or each element
    of an ints/int_rows value); `check(value)` raises ValueError for rules beyond the type."""

    name: str
    type: str
    default: Any = REQUIRED
    help: str = ""
    enum: type[enum.IntEnum] | None = None
    min: int | None = None
    max: int | None = None
    check: Callable[[Any], None] | None = field(default=None, compare=False, repr=False)

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def coerce(self, value: Any) -> Any:
        """The value in its canonical Python form; ValueError (without the parameter's name) if
        it is not valid."""
        conv = _COERCE.get(self.type)
        if conv is None:  # pragma: no cover - registry is static
            raise ValueError(f"unknown parameter type {self.type!r}")
        if value is None:
            if self.default is None:
                return None
            raise ValueError("may not be empty")
        out = conv(self, value)
        if self.check is not None:
            self.check(out)
        return out

    def default_text(self) -> str:
        if self.required:
            return "(required)"
        return _format_value(self, self.default)


def _format_value(p: Param, v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, enum.Enum):
        return v.name
    if isinstance(v, (bytes, bytearray)):
        return v.hex().upper()
    if isinstance(v, _dt.datetime):
        return _iso(v)
    if p.type == "ints":
        return ",".join(str(x) for x in v) or "(none)"
    if p.type == "int_rows":
        return ";".join(",".join(str(x) for x in row) for row in v) or "(none)"
    if p.type == "day_profiles":
        return ";".join(",".join(f"{t.strftime('%H:%M:%S' if t.second else '%H:%M')}={a}" for t, a in prof) for prof in v)
    if p.type == "seasons":
        return ",".join(f"{n}@{d.isoformat()}={w}" for n, d, w in v) or "(none)"
    if p.type == "special_days":
        return ",".join(f"{d.isoformat()}={day}" for d, day in v) or "(none)"
    if p.type == "devices":
        return ",".join(f"{eui.hex().upper()}:{code.hex().upper()}" for eui, code in v) or "(none)"
    return str(v)


def _bounded(p: Param, n: int, what: str = "") -> int:
    if p.min is not None and n < p.min:
        raise ValueError(f"{what}{n} is below the minimum {p.min}")
    if p.max is not None and n > p.max:
        raise ValueError(f"{what}{n} is above the maximum {p.max}")
    return n


def _to_int(v: Any) -> int:
    if isinstance(v, bool):
        raise ValueError("expected an integer, got a boolean")
    if isinstance(v, int):
        return int(v)
    if isinstance(v, str):
        t = v.strip().replace("_", "")
        try:
            return int(t, 0)
        except ValueError:
            raise ValueError(f"not an integer: {v!r}") from None
    if isinstance(v, float) and v.is_integer():
        return int(v)
    raise ValueError(f"expected an integer, got {type(v).__name__}")


def _c_int(p: Param, v: Any) -> int:
    return _bounded(p, _to_int(v))


def _c_float(p: Param, v: Any) -> float:
    if isinstance(v, bool):
        raise ValueError("expected a number, got a boolean")
    try:
        x = float(v.strip()) if isinstance(v, str) else float(v)
    except (TypeError, ValueError):
        raise ValueError(f"not a number: {v!r}") from None
    if not math.isfinite(x):
        raise ValueError("must be finite")
    return x


_TRUE = {"1", "true", "yes", "on", "y", "t"}
_FALSE = {"0", "false", "no", "off", "n", "f"}


def _c_bool(p: Param, v: Any) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, int) and v in (0, 1):
        return bool(v)
    if isinstance(v, str):
        t = v.strip().lower()
        if t in _TRUE:
            return True
        if t in _FALSE:
            return False
    raise ValueError(f"not a boolean: {v!r} (use true/false)")


def _c_str(p: Param, v: Any) -> str:
    if not isinstance(v, str):
        raise ValueError(f"expected text, got {type(v).__name__}")
    return v


def _c_hex(p: Param, v: Any) -> bytes:
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v)
    if isinstance(v, str):
        t = re.sub(r"[\s:\-]", "", v)
        if t[:2].lower() == "0x":
            t = t[2:]
        try:
            return bytes.fromhex(t)
        except ValueError:
            raise ValueError(f"not hex bytes: {v!r}") from None
    raise ValueError(f"expected bytes or hex text, got {type(v).__name__}")


def _c_eui(p: Param, v: Any) -> bytes:
    if isinstance(v, (bytearray, memoryview)):
        v = bytes(v)
    if not isinstance(v, (bytes, str)):
        raise ValueError(f"expected an EUI-64, got {type(v).__name__}")
    return parse_eui(v.strip() if isinstance(v, str) else v)


def _c_enum(p: Param, v: Any) -> enum.IntEnum:
    cls = p.enum
    assert cls is not None
    if isinstance(v, cls):
        return v
    if isinstance(v, bool):
        raise ValueError("expected an enumeration member, got a boolean")
    if isinstance(v, str):
        t = v.strip().upper().replace("-", "_").replace(" ", "_")
        if t in cls.__members__:
            return cls[t]
        try:
            v = int(t, 0)
        except ValueError:
            raise ValueError(f"{v!r} is not one of {', '.join(cls.__members__)}") from None
    if isinstance(v, int):
        try:
            return cls(v)
        except ValueError:
            raise ValueError(f"{v} is not one of {', '.join(f'{m.name}={m.value}' for m in cls)}") from None
    raise ValueError(f"expected one of {', '.join(cls.__members__)}")


def _parse_datetime_text(text: str) -> _dt.datetime:
    t = text.strip()
    try:
        if len(t) == 10:
            d = _dt.date.fromisoformat(t)
            return _dt.datetime(d.year, d.month, d.day, tzinfo=_dt.timezone.utc)
        return _dt.datetime.fromisoformat(t.replace("z", "Z"))
    except ValueError:
        raise ValueError(f"not an ISO 8601 date-time: {text!r}") from None


def _utc(dt: _dt.datetime) -> _dt.datetime:
    return dt.replace(tzinfo=_dt.timezone.utc) if dt.tzinfo is None else dt.astimezone(_dt.timezone.utc)


def _c_datetime(p: Param, v: Any) -> _dt.datetime:
    if isinstance(v, str):
        v = _parse_datetime_text(v)
    elif isinstance(v, _dt.date) and not isinstance(v, _dt.datetime):
        v = _dt.datetime(v.year, v.month, v.day)
    if not isinstance(v, _dt.datetime):
        raise ValueError(f"expected a date-time, got {type(v).__name__}")
    v = _utc(v)
    if not 2000 <= v.year <= 2135:
        raise ValueError(f"year {v.year} is outside 2000..2135")
    return v


def _c_when(p: Param, v: Any) -> "_dt.datetime | str | None":
    if isinstance(v, str):
        t = v.strip().lower()
        if t in ("immediate", "now", ""):
            return None
        if t == "never":
            return "never"
    return _c_datetime(p, v)


def _c_utrn(p: Param, v: Any) -> str:
    from .utrn import decode_utrn

    if isinstance(v, (bytes, bytearray, memoryview)):
        v = bytes(v).decode("ascii", "replace")
    if not isinstance(v, str):
        v = str(v)
    t = re.sub(r"[\s\-]", "", v)
    try:
        return decode_utrn(t).encode()
    except DecodeError as exc:
        raise ValueError(f"not a valid UTRN: {exc.args[0]}") from None


def _as_sequence(v: Any, what: str) -> Sequence:
    if isinstance(v, (str, bytes, bytearray)) or not isinstance(v, Iterable):
        raise ValueError(f"expected {what}")
    return list(v)


def _c_ints(p: Param, v: Any) -> tuple[int, ...]:
    if isinstance(v, str):
        t = v.strip()
        v = [x for x in re.split(r"[,\s]+", t) if x] if t else []
    return tuple(_bounded(p, _to_int(x), f"element {i}: ") for i, x in enumerate(_as_sequence(v, "a list of integers")))


def _c_int_rows(p: Param, v: Any) -> tuple[tuple[int, ...], ...]:
    if isinstance(v, str):
        t = v.strip()
        v = [[x for x in re.split(r"[,\s]+", row.strip()) if x] for row in t.split(";")] if t else []
    rows = []
    for r, row in enumerate(_as_sequence(v, "a list of rows of integers")):
        rows.append(tuple(_bounded(p, _to_int(x), f"row {r + 1} element {i + 1}: ")
                          for i, x in enumerate(_as_sequence(row, f"row {r + 1} to be a list of integers"))))
    return tuple(rows)


def _parse_time_of_day(v: Any) -> _dt.time:
    if isinstance(v, _dt.time):
        if v.tzinfo is not None or v.microsecond % 10000:
            raise ValueError(f"time of day must be naive UTC with at most hundredths: {v!r}")
        return v
    if isinstance(v, str):
        try:
            t = _dt.time.fromisoformat(v.strip())
        except ValueError:
            raise ValueError(f"not a time of day HH:MM[:SS]: {v!r}") from None
        return _parse_time_of_day(t.replace(microsecond=t.microsecond - t.microsecond % 10000))
    raise ValueError(f"expected a time of day, got {type(v).__name__}")


_ACTION = re.compile(r"([TB])(\d{1,2})", re.IGNORECASE)


def _parse_action(v: Any) -> str:
    """'T<n>' (TOU rate n, 1..48) or 'B<n>' (block tariff n, 1..8); an int is the raw script
    selector (1..48 TOU, 101..108 block) [I: selector n / 100+n, from RTDS ECS24 and a GFI ECS01a]."""
    if isinstance(v, int) and not isinstance(v, bool):
        if 1 <= v <= 48:
            return f"T{v}"
        if 101 <= v <= 108:
            return f"B{v - 100}"
        raise ValueError(f"script selector {v} is neither 1..48 (TOU) nor 101..108 (block)")
    if not isinstance(v, str):
        raise ValueError(f"expected an action T<n> or B<n>, got {type(v).__name__}")
    m = _ACTION.fullmatch(v.strip())
    if not m:
        raise ValueError(f"not an action T<n> or B<n>: {v!r}")
    kind, n = m.group(1).upper(), int(m.group(2))
    if kind == "T" and not 1 <= n <= 48:
        raise ValueError(f"TOU rate {n} is outside 1..48")
    if kind == "B" and not 1 <= n <= 8:
        raise ValueError(f"block tariff {n} is outside 1..8")
    return f"{kind}{n}"


def _c_day_profiles(p: Param, v: Any) -> tuple[tuple[tuple[_dt.time, str], ...], ...]:
    if isinstance(v, str):
        profiles = []
        for text in v.split(";"):
            switches = []
            for item in (x for x in text.split(",") if x.strip()):
                if "=" not in item:
                    raise ValueError(f"switch {item.strip()!r} is not HH:MM=action")
                t, a = item.split("=", 1)
                switches.append((t, a))
            profiles.append(switches)
        v = profiles
    out = []
    for i, prof in enumerate(_as_sequence(v, "a list of day profiles")):
        switches = []
        for sw in _as_sequence(prof, f"day profile {i + 1} to be a list of (time, action)"):
            try:
                t, a = sw
            except (TypeError, ValueError):
                raise ValueError(f"day profile {i + 1}: each switch is (time, action)") from None
            switches.append((_parse_time_of_day(t), _parse_action(a)))
        if not switches:
            raise ValueError(f"day profile {i + 1} has no switches")
        times = [t for t, _ in switches]
        if times != sorted(times) or len(set(times)) != len(times):
            raise ValueError(f"day profile {i + 1}: switch times must increase")
        out.append(tuple(switches))
    if not 1 <= len(out) <= 255:
        raise ValueError("need 1..255 day profiles")
    return tuple(out)


def _to_date(v: Any) -> _dt.date:
    if isinstance(v, _dt.datetime):
        return v.date()
    if isinstance(v, _dt.date):
        return v
    if isinstance(v, str):
        try:
            return _dt.date.fromisoformat(v.strip())
        except ValueError:
            raise ValueError(f"not a date YYYY-MM-DD: {v!r}") from None
    raise ValueError(f"expected a date, got {type(v).__name__}")


def _c_seasons(p: Param, v: Any) -> tuple[tuple[str, _dt.date, int], ...]:
    if isinstance(v, str):
        items = []
        for text in (x for x in v.split(",") if x.strip()):
            m = re.fullmatch(r"\s*([^@=]*)@([^=]+)=\s*(\S+)\s*", text)
            if not m:
                raise ValueError(f"season {text.strip()!r} is not name@YYYY-MM-DD=week")
            items.append((m.group(1), m.group(2), m.group(3)))
        v = items
    out = []
    for i, s in enumerate(_as_sequence(v, "a list of seasons")):
        try:
            name, start, week = s
        except (TypeError, ValueError):
            raise ValueError(f"season {i + 1}: expected (name, start date, week)") from None
        raw = name.encode("latin-1", "strict") if isinstance(name, str) else bytes(name)
        if not 1 <= len(raw) <= 32:
            raise ValueError(f"season {i + 1}: name must be 1..32 bytes")
        week = _to_int(week)
        if not 1 <= week <= 255:
            raise ValueError(f"season {i + 1}: week {week} is outside 1..255")
        out.append((raw.decode("latin-1"), _to_date(start), week))
    if not out:
        raise ValueError("need at least one season")
    return tuple(out)


def _c_special_days(p: Param, v: Any) -> tuple[tuple[_dt.date, int], ...]:
    if isinstance(v, str):
        items = []
        for text in (x for x in v.split(",") if x.strip()):
            if "=" not in text:
                raise ValueError(f"special day {text.strip()!r} is not YYYY-MM-DD=day")
            d, day = text.split("=", 1)
            items.append((d, day))
        v = items
    out = []
    for i, s in enumerate(_as_sequence(v, "a list of special days")):
        try:
            d, day = s
        except (TypeError, ValueError):
            raise ValueError(f"special day {i + 1}: expected (date, day profile)") from None
        day = _to_int(day)
        if not 1 <= day <= 255:
            raise ValueError(f"special day {i + 1}: day profile {day} is outside 1..255")
        out.append((_to_date(d), day))
    return tuple(out)


def _c_devices(p: Param, v: Any) -> tuple[tuple[bytes, bytes], ...]:
    """(EUI, install code) pairs: text 'EUI:CODE,...' or a sequence of pairs; codes of 16 bytes."""
    if isinstance(v, str):
        items = []
        for text in (x for x in v.split(",") if x.strip()):
            parts = text.split(":")
            if len(parts) != 2:
                raise ValueError(f"device {text.strip()!r} is not EUI:INSTALL_CODE")
            items.append(tuple(parts))
        v = items
    out = []
    for i, item in enumerate(_as_sequence(v, "a list of (EUI, install code) pairs")):
        if isinstance(item, (str, bytes, bytearray)) or not isinstance(item, Iterable):
            raise ValueError(f"device {i + 1}: expected an (EUI, install code) pair")
        pair = list(item)
        if len(pair) != 2:
            raise ValueError(f"device {i + 1}: expected an (EUI, install code) pair")
        try:
            eui = _c_eui(p, pair[0])
            code = _c_hex(p, pair[1])
        except ValueError as exc:
            raise ValueError(f"device {i + 1}: {exc}") from None
        if len(code) != 16:
            raise ValueError(f"device {i + 1}: install code must be 16 bytes, got {len(code)}")
        out.append((eui, code))
    return tuple(out)


_COERCE: dict[str, Callable[[Param, Any], Any]] = {
    "int": _c_int, "float": _c_float, "bool": _c_bool, "str": _c_str, "hex": _c_hex, "eui": _c_eui,
    "enum": _c_enum, "datetime": _c_datetime, "when": _c_when, "utrn": _c_utrn, "ints": _c_ints,
    "int_rows": _c_int_rows, "day_profiles": _c_day_profiles, "seasons": _c_seasons,
    "special_days": _c_special_days, "devices": _c_devices,
}
assert set(_COERCE) == set(PARAM_TYPES)


def _length(*sizes: int) -> Callable[[bytes], None]:
    def check(b: bytes) -> None:
        if len(b) not in sizes:
            raise ValueError(f"must be {' or '.join(map(str, sizes))} bytes, got {len(b)}")
    return check


# =============================================================================================
# The definition
# =============================================================================================


@dataclass(frozen=True, slots=True)
class UseCaseDef:
    """One use case the head-end can send (or, with `build` None, an alert it can read).

    `target` is the device kind the command normally goes to ('esme', 'chf', 'gpf', 'gsme');
    `targets` every kind it may go to. `originator` is 'supplier' or 'acb' (DCC-originated CHF
    commands, carrying the supplier as supplementary remote party); for an alert, the party it is
    sent to. `utrn`: the originator counter is a top-up counter (low 32 bits zero). `response`
    says what the device answers."""

    use_case: str
    message_code: int
    target: str
    critical: bool
    originator: str
    params: tuple[Param, ...]
    build: Callable[..., bytes] | None
    interpret: Callable[..., dict]
    name: str = ""
    targets: tuple[str, ...] = ()
    payload: str = "dlms"
    utrn: bool = False
    response: str = ""
    requests: frozenset[tuple] = frozenset()

    @property
    def is_alert(self) -> bool:
        return self.build is None

    def allows(self, spec: RequestSpec) -> bool:
        """Whether a DLMS request of this use case's content may ask for `spec`: the use case's
        `requests` are (kind, class id, logical name, attribute or method id, or None for any).
        A device refuses a command whose content asks for anything else."""
        key = (spec.kind, spec.class_id, bytes(spec.obis))
        return key + (spec.id,) in self.requests or key + (None,) in self.requests

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(f"{self.use_case} has no parameter {name!r}")

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params if not p.required}


class _Unexpected(Exception):
    """The response does not have the shape this use case expects (→ generic fallback)."""


def _resolve_params(uc: str, params: tuple[Param, ...], given: Mapping[str, Any]) -> dict[str, Any]:
    known = {p.name: p for p in params}
    unknown = [k for k in given if k not in known]
    if unknown:
        names = ", ".join(known) or "none"
        raise ValueError(f"{uc}: unknown parameter {unknown[0]!r} (parameters: {names})")
    out = {}
    for p in params:
        if p.name in given:
            value = given[p.name]
        elif p.required:
            raise ValueError(f"{uc}: parameter {p.name!r} is required ({p.help})")
        else:
            out[p.name] = p.default
            continue
        try:
            out[p.name] = p.coerce(value)
        except ValueError as exc:
            raise ValueError(f"{uc}: parameter {p.name!r}: {exc}") from None
    return out


def _check_counter(uc: str, counter: Any, utrn: bool) -> int:
    if isinstance(counter, bool) or not isinstance(counter, int):
        raise ValueError(f"{uc}: parameter 'counter' must be an integer")
    if not 0 <= counter < 1 << 64:
        raise ValueError(f"{uc}: parameter 'counter' must be 0..2**64-1, got {counter}")
    if utrn and counter & _U32:
        raise ValueError(f"{uc}: parameter 'counter': a top-up's originator counter has its low 32 bits zero "
                         f"(UTRN counter << 32), got 0x{counter:016X}")
    return counter


def _make_build(uc: str, params: tuple[Param, ...], raw: Callable[..., bytes], utrn: bool) -> Callable[..., bytes]:
    def build(counter: int, **params_given: Any) -> bytes:
        c = _check_counter(uc, counter, utrn)
        values = _resolve_params(uc, params, params_given)
        try:
            return raw(c, **values)
        except ValueError as exc:  # EncodeError included
            text = str(exc)
            raise ValueError(text if text.startswith(f"{uc}:") else f"{uc}: {text}") from None

    build.__name__ = f"build_{uc}"
    build.__doc__ = f"Content of a {uc} command for originator counter `counter`."
    return build


def _make_interpret(uc: str, code: int, fn: Callable[[Any, Message | None], dict]) -> Callable[..., dict]:
    def interpret_response(response: Any, *, decrypt: Decrypt | None = None, message: Message | None = None) -> dict:
        return _interpret(uc, code, fn, response, decrypt, message)

    interpret_response.__name__ = f"interpret_{uc}"
    return interpret_response


# =============================================================================================
# Shared builders
# =============================================================================================


def _request(counter: int, *pairs: tuple[RequestSpec, Data | None]) -> bytes:
    specs = [s for s, _ in pairs]
    data = [Data.null() if d is None else d for _, d in pairs]
    return AccessRequest.build(counter, specs, data).encode()


def _seconds_2000(dt: _dt.datetime) -> int:
    n = int((_utc(dt) - _EPOCH_2000).total_seconds())
    if not 0 <= n <= _U32:
        raise ValueError(f"{_iso(dt)} cannot be counted in seconds since 2000 in 32 bits")
    return n


def _dlms_dt(dt: _dt.datetime) -> bytes:
    """A UTC DLMS date-time the RTDS way: weekday and deviation unspecified, status 0xFF."""
    return DlmsDateTime.from_datetime(_utc(dt)).to_bytes()


def _when_bytes(when: "_dt.datetime | str | None") -> bytes:
    if when is None:
        return DlmsDateTime.IMMEDIATE.to_bytes()
    if when == "never":
        return DlmsDateTime.NEVER.to_bytes()
    return _dlms_dt(when)  # type: ignore[arg-type]


def _midnight_today() -> _dt.datetime:
    now = _dt.datetime.now(_dt.timezone.utc)
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def _range(start: _dt.datetime | None, end: _dt.datetime | None, days: int) -> tuple[_dt.datetime, _dt.datetime]:
    """None ends resolve to the `days` whole UTC days before today's midnight."""
    if end is None:
        end = _midnight_today() if start is None else start + _dt.timedelta(days=days)
    if start is None:
        start = end - _dt.timedelta(days=days)
    if end < start:
        raise ValueError(f"parameter 'end' ({_iso(end)}) is before 'start' ({_iso(start)})")
    return start, end


def _protected_get(counter: int, protection_obis: str, objects: Sequence[tuple[int, str, int, int, Data]],
                   originator: bytes, recipient: bytes) -> bytes:
    """GBCS Get Protected Attributes: action on the data-protection object (class 30) method 1 with
    structure{array of structure{class long-unsigned, LN, attribute integer, data index 0,
    structure{access selector enum, access parameters}}, array{protection parameters}}; the
    response carries the values encrypted for the requester [O RTDS ECS17b/ECS21a/ECS22b]."""
    params = ProtectionParameters.build(counter, originator, recipient).to_data()
    listed = _protected_objects(tuple(objects))
    return _request(counter, (RequestSpec.action(30, protection_obis, 1), Data.structure(listed, Data.array(params))))


@lru_cache(maxsize=1024)  # the same object list on every read of a kind: encode it once
def _protected_objects(objects: tuple[tuple[int, str, int, int, Data], ...]) -> Data:
    return frozen(Data.array(*(
        Data.structure(Data.long_unsigned(cid), Data.obis(ln), Data.integer(attr), Data.long_unsigned(0),
                       Data.structure(Data.enum(selector), parameters))
        for cid, ln, attr, selector, parameters in objects)))


def _log_range(start: _dt.datetime, end: _dt.datetime) -> Data:
    """Profile-generic range_descriptor (selector 1) over the GBCS UTC time object
    0-0:94.44.100.255 (class 1, attribute 2), times in seconds since 2000 [O RTDS ECS35a/b]."""
    return Data.structure(
        Data.structure(Data.long_unsigned(1), Data.obis("0-0:94.44.100.255"), Data.integer(2), Data.long_unsigned(0)),
        Data.double_long_unsigned(_seconds_2000(start)), Data.double_long_unsigned(_seconds_2000(end)), Data.array())


# -- CHF (ZigBee network control, class 104, 0-0:30.3.0.255) ------------------------------------------

_ZNC = "0-0:30.3.0.255"


def _register_device(eui: bytes, key_type: int, install_code: bytes, option: int) -> Data:
    """register_device's structure{eui, key type, install code, option} (CCS01; each CCS03 entry)."""
    return Data.structure(Data.octet_string(eui), Data.enum(key_type), Data.octet_string(install_code), Data.enum(option))


def _b_ccs01(counter: int, *, device: bytes, install_code: bytes, join_timeout: int, enable_joining: bool,
             key_type: int, option: int) -> bytes:
    return _request(
        counter,
        (RequestSpec.action(104, _ZNC, 1), _register_device(device, key_type, install_code, option)),
        (RequestSpec.set(104, _ZNC, 3), Data.long_unsigned(join_timeout)),
        (RequestSpec.set(104, _ZNC, 2), Data.boolean(enable_joining)),
    )


def _b_ccs03(counter: int, *, extended_pan_id: bytes, devices: tuple[tuple[bytes, bytes], ...], join_timeout: int,
             enable_joining: bool, key_type: int, option: int) -> bytes:
    """CCS03 Restore CHF Device Log [U: no source gives the payload; our layout on DLMS class 104
    (hub/chf.py module doc)]: action 5 restore_PAN(structure{extended PAN id, array of CCS01
    register_device structures}), then join_timeout and enable_disable_joining as CCS01."""
    backup = Data.array(*(_register_device(eui, key_type, code, option) for eui, code in devices))
    return _request(
        counter,
        (RequestSpec.action(104, _ZNC, 5), Data.structure(Data.octet_string(extended_pan_id), backup)),
        (RequestSpec.set(104, _ZNC, 3), Data.long_unsigned(join_timeout)),
        (RequestSpec.set(104, _ZNC, 2), Data.boolean(enable_joining)),
    )


def _b_ccs02(counter: int, *, device: bytes) -> bytes:
    return _request(counter, (RequestSpec.action(104, _ZNC, 2), Data.octet_string(device)))


def _b_ccs06(counter: int) -> bytes:
    return _request(counter, (RequestSpec.get(104, _ZNC, 4), None))


# -- ESME reads ---------------------------------------------------------------------------------------


def _b_ecs17b(counter: int, *, originator: bytes, recipient: bytes) -> bytes:
    return _protected_get(counter, "0-0:43.2.8.255", [(1, "0-0:94.44.34.10", 2, 0, Data.null())], originator, recipient)


def _b_ecs17c(counter: int) -> bytes:
    return _request(counter, (RequestSpec.get(1, "0-0:94.44.34.20", 2), None))


def _b_ecs22b(counter: int, *, originator: bytes, recipient: bytes, start: _dt.datetime | None,
              end: _dt.datetime | None) -> bytes:
    a, b = _range(start, end, 1)
    window = Data.structure(Data.octet_string(_dlms_dt(a)), Data.octet_string(_dlms_dt(b)))
    return _protected_get(counter, "0-0:43.2.7.255", [(7, "0-0:99.1.0.255", 2, 1, window)], originator, recipient)


def _b_ecs21a(counter: int, *, originator: bytes, recipient: bytes, start: _dt.datetime | None,
              end: _dt.datetime | None) -> bytes:
    a, b = _range(start, end, 2)
    window = Data.structure(Data.octet_string(_dlms_dt(a)), Data.octet_string(_dlms_dt(b)))
    return _protected_get(counter, "0-0:43.2.5.255", [(7, "0-0:98.1.9.255", 2, 1, window)], originator, recipient)


# ECS24: the tariff as the ESME holds it, one Get per object [O RTDS ECS24]. Names are ours [I].
_ECS24_OBJECTS: tuple[tuple[int, str, int, str], ...] = (
    (3, "0-0:94.44.1.7", 2, "currency_units"),
    (3, "0-0:94.44.1.7", 3, "price_scale"),
    (20, "0-0:13.0.0.255", 3, "seasons"),
    (20, "0-0:13.0.0.255", 4, "week_profiles"),
    (20, "0-0:13.0.0.255", 5, "day_profiles"),
    (11, "0-0:11.0.0.255", 2, "special_days"),
    *((21, f"0-0:16.0.{11 + i}.255", 2, f"block_thresholds_{i + 1}") for i in range(8)),
    (9000, "0-0:94.44.2.0", 2, "block_mode"),
    (113, "0-0:19.20.4.255", 5, "standing_charge"),
    (113, "0-0:19.20.0.255", 5, "price_matrix"),
)


def _b_ecs24(counter: int) -> bytes:
    return _request(counter, *((RequestSpec.get(c, ln, a), None) for c, ln, a, _ in _ECS24_OBJECTS))


def _b_log(obis_code: str) -> Callable[..., bytes]:
    def build(counter: int, *, start: _dt.datetime | None, end: _dt.datetime | None) -> bytes:
        a, b = _range(start, end, 1)
        spec = RequestSpec.get_with_selection(7, obis_code, 2, 1, _log_range(a, b))
        return _request(counter, (spec, None))
    return build


def _b_script(script_id: int) -> Callable[..., bytes]:
    """Supply control: execute a script of the script table 0-0:10.0.106.255 [O RTDS ECS42/43/44]."""
    def build(counter: int) -> bytes:
        return _request(counter, (RequestSpec.action(9, "0-0:10.0.106.255", 1), Data.long_unsigned(script_id)))
    return build


def _b_ecs45(counter: int) -> bytes:
    return _request(counter, (RequestSpec.get(70, "0-0:96.3.10.255", 3), None))


def _b_ecs52(counter: int) -> bytes:
    return _request(counter, (RequestSpec.get(1, "0-0:0.2.1.255", 2), None))


_CLOCK = "0-0:1.0.0.255"


def _b_ecs70(counter: int, *, validity_start: _dt.datetime | None, validity_end: _dt.datetime | None,
             clock_base: int) -> bytes:
    if validity_start is None:
        validity_start = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0)
    if validity_end is None:
        validity_end = validity_start + _dt.timedelta(seconds=60)
    if validity_end < validity_start:
        raise ValueError(f"ECS70: parameter 'validity_end' ({_iso(validity_end)}) is before 'validity_start'")
    preset = Data.structure(Data.octet_string(DlmsDateTime.NEVER.to_bytes()), Data.octet_string(_dlms_dt(validity_start)),
                            Data.octet_string(_dlms_dt(validity_end)))
    return _request(
        counter,
        (RequestSpec.set(8, _CLOCK, 9), Data.enum(clock_base)),  # clock_base
        (RequestSpec.action(8, _CLOCK, 5), preset),  # preset_adjusting_time(unspecified, window)
        (RequestSpec.action(8, _CLOCK, 4), Data.integer(0)),  # adjust_to_preset_time
        (RequestSpec.get(8, _CLOCK, 2), None),  # time
        (RequestSpec.get(8, _CLOCK, 4), None),  # status
    )


# -- tariff and price (ECS01a, ECS01b) -----------------------------------------------------------------

_STANDING_CHARGE = "0-0:19.20.4.255"
_PRICE_MATRIX = "0-0:19.20.0.255"
_CALENDAR = "0-0:13.0.0.255"
_TARIFF_SCRIPTS = "0-0:10.0.100.255"
_BAND_LETTERS = "ABCD"


def _price_index(tariff: int, band: int) -> int:
    """Price-matrix index of block tariff `tariff` (0..7), price band `band` (0..3): A1..A8, B1..,
    C1.., D1..D8 as bytes 0xA1.. [O RTDS ECS01b / ECS24: A/B = band, digit = block tariff]."""
    return 0xA1 + 0x10 * band + tariff


def _unit_charges(standing_charge: int, standing_charge_scale: int, price_scale: int,
                  tou_prices: Sequence[int], block_prices: Sequence[Sequence[int]]) -> tuple[Data, Data]:
    standing = Data.structure(
        Data.structure(Data.integer(0), Data.integer(standing_charge_scale)),
        Data.structure(Data.long_unsigned(0), Data.octet_string(bytes(6)), Data.integer(0)),
        Data.array(Data.structure(Data.octet_string(b""), Data.long(standing_charge))))
    tou = list(tou_prices) + [0] * (48 - len(tou_prices))
    entries = [Data.structure(Data.octet_string(bytes((i + 1,))), Data.long(p)) for i, p in enumerate(tou)]
    for band in range(4):
        for tariff in range(8):
            row = block_prices[tariff] if tariff < len(block_prices) else ()
            price = row[band] if band < len(row) else 0
            entries.append(Data.structure(Data.octet_string(bytes((_price_index(tariff, band),))), Data.long(price)))
    matrix = Data.structure(
        Data.structure(Data.integer(3), Data.integer(price_scale)),
        Data.structure(Data.long_unsigned(3), Data.obis("1-0:1.8.0.255"), Data.integer(2)),
        Data.array(*entries))
    return standing, matrix


def _b_ecs01b(counter: int, *, standing_charge: int, standing_charge_scale: int, price_scale: int,
              tou_prices: tuple[int, ...], block_prices: tuple[tuple[int, ...], ...],
              execution_date_time: "_dt.datetime | str | None") -> bytes:
    standing, matrix = _unit_charges(standing_charge, standing_charge_scale, price_scale, tou_prices, block_prices)
    when = Data.octet_string(_when_bytes(execution_date_time))
    return _request(
        counter,
        (RequestSpec.set(113, _STANDING_CHARGE, 6), standing),  # unit_charge_passive
        (RequestSpec.set(113, _PRICE_MATRIX, 6), matrix),
        (RequestSpec.set(113, _STANDING_CHARGE, 7), when),  # unit_charge_activation_time
        (RequestSpec.set(113, _PRICE_MATRIX, 7), when),
    )


def _date5(d: _dt.date) -> bytes:
    return d.year.to_bytes(2, "big") + bytes((d.month, d.day, 0xFF))


def _time4(t: _dt.time) -> bytes:
    return bytes((t.hour, t.minute, t.second, t.microsecond // 10000))


def _selector(action: str) -> int:
    n = int(action[1:])
    return n if action[0] == "T" else 100 + n


def _b_ecs01a(counter: int, *, seasons, week_profiles, day_profiles, special_days, block_thresholds, block_mode,
              standing_charge, standing_charge_scale, price_scale, tou_prices, block_prices,
              execution_date_time) -> bytes:
    """Passive calendar, passive special days, passive block thresholds, tariff mode and unit
    charges, then one activation time for each; layout of a DCC/GFI ECS01a test message (valid
    RTDS-key MAC and signature) [O], object meanings from DLMS classes 11/20/21/113 [I]."""
    days = len(day_profiles)
    for i, week in enumerate(week_profiles):
        for d in week:
            if not 1 <= d <= days:
                raise ValueError(f"ECS01a: parameter 'week_profiles': week {i + 1} uses day profile {d}, "
                                 f"but there are {days}")
    for name, _start, week in seasons:
        if not 1 <= week <= len(week_profiles):
            raise ValueError(f"ECS01a: parameter 'seasons': season {name!r} uses week {week}, "
                             f"but there are {len(week_profiles)}")
    for d, day in special_days:
        if not 1 <= day <= days:
            raise ValueError(f"ECS01a: parameter 'special_days': {d.isoformat()} uses day profile {day}, "
                             f"but there are {days}")
    if block_mode is None:
        block_mode = any(a[0] == "B" for prof in day_profiles for _, a in prof)
    season_data = Data.array(*(
        Data.structure(Data.octet_string(name.encode("latin-1")),
                       Data.octet_string(_dlms_dt(_dt.datetime(start.year, start.month, start.day))),
                       Data.octet_string(bytes((week,))))
        for name, start, week in seasons))
    week_data = Data.array(*(
        Data.structure(Data.octet_string(bytes((i + 1,))), *(Data.unsigned(d) for d in week))
        for i, week in enumerate(week_profiles)))
    day_data = Data.array(*(
        Data.structure(Data.unsigned(i + 1), Data.array(*(
            Data.structure(Data.octet_string(_time4(t)), Data.obis(_TARIFF_SCRIPTS), Data.long_unsigned(_selector(a)))
            for t, a in prof)))
        for i, prof in enumerate(day_profiles)))
    special = Data.array(*(
        Data.structure(Data.long_unsigned(i + 1), Data.octet_string(_date5(d)), Data.unsigned(day))
        for i, (d, day) in enumerate(special_days)))
    thresholds = [tuple(block_thresholds[i]) if i < len(block_thresholds) else (_U32,) for i in range(8)]
    standing, matrix = _unit_charges(standing_charge, standing_charge_scale, price_scale, tou_prices, block_prices)
    when = Data.octet_string(_when_bytes(execution_date_time))
    return _request(
        counter,
        (RequestSpec.set(20, _CALENDAR, 7), season_data),  # season_profile_passive
        (RequestSpec.set(20, _CALENDAR, 8), week_data),  # week_profile_table_passive
        (RequestSpec.set(20, _CALENDAR, 9), day_data),  # day_profile_table_passive
        (RequestSpec.set(11, "0-1:11.0.0.255", 2), special),  # passive special days
        *((RequestSpec.set(21, f"0-0:16.1.{11 + i}.255", 2), Data.array(*(Data.double_long_unsigned(x) for x in row)))
          for i, row in enumerate(thresholds)),  # passive register monitors: block thresholds
        (RequestSpec.set(9000, "0-0:94.44.2.0", 4), Data.boolean(block_mode)),
        (RequestSpec.set(113, _STANDING_CHARGE, 6), standing),
        (RequestSpec.set(113, _PRICE_MATRIX, 6), matrix),
        (RequestSpec.set(20, _CALENDAR, 10), when),  # activate_passive_calendar_time
        (RequestSpec.set(9000, "0-0:94.44.128.29", 6), when),
        (RequestSpec.set(9000, "0-0:94.44.2.0", 6), when),
        (RequestSpec.set(113, _STANDING_CHARGE, 7), when),
        (RequestSpec.set(113, _PRICE_MATRIX, 7), when),
        (RequestSpec.set(9000, "0-0:63.1.1.255", 6), when),
    )


# -- top-up ------------------------------------------------------------------------------------------


def _b_cs01a(counter: int, *, utrn: str) -> bytes:
    """Token gateway (class 115) 0-0:19.40.0.255 method 1 `enter` with the UTRN as 20 ASCII digits [O]."""
    from .utrn import decode_utrn

    utrn_counter = counter >> 32
    if decode_utrn(utrn).truncated_counter != utrn_counter & 0x3FF:
        raise ValueError(f"CS01a: parameter 'utrn' was made for another UTRN counter (its 10 counter bits are "
                         f"{decode_utrn(utrn).truncated_counter}, the originator counter's UTRN counter is {utrn_counter})")
    return _request(counter, (RequestSpec.action(115, "0-0:19.40.0.255", 1), Data.octet_string(utrn.encode("ascii"))))


# -- ASN.1 join / unjoin / read device log ---------------------------------------------------------------


def _b_cs03b(counter: int, *, other_entity_id: bytes, other_device_type: DeviceType,
             join_method_and_role: JoinMethodAndRole) -> bytes:
    return JoinDevice(join_method_and_role, other_entity_id, other_device_type).encode()


def _b_cs04b(counter: int, *, entity_id: bytes) -> bytes:
    return UnjoinDevice(entity_id).encode()


def _b_cs07(counter: int) -> bytes:
    return ReadDeviceJoinDetails().encode()


# =============================================================================================
# Interpreting responses
# =============================================================================================


def _iso(dt: _dt.datetime) -> str:
    dt = _utc(dt)
    text = dt.strftime("%Y-%m-%dT%H:%M:%S")
    if dt.microsecond:
        text += f".{dt.microsecond // 10000:02d}"
    return text + "Z"


def _seconds_text(n: int) -> str:
    return _iso(_EPOCH_2000 + _dt.timedelta(seconds=n))


def _datetime_text(raw: bytes) -> str:
    """A 12-byte DLMS date-time as ISO 8601 when fully specified, else its `text()` form."""
    return _datetime_text_of(raw if raw.__class__ is bytes else bytes(raw))


@lru_cache(maxsize=4096)  # responses in the same second carry the same date-time
def _datetime_text_of(raw: bytes) -> str:
    if len(raw) != 12:
        return raw.hex().upper()
    d = DlmsDateTime.from_bytes(raw)
    if d.is_never:
        return "never"
    if d.is_immediate:
        return "immediate"
    try:
        return _iso(d.to_datetime())
    except (ValueError, OverflowError):
        return d.text()


def _date_text(raw: bytes) -> str:
    if len(raw) != 5:
        return raw.hex().upper()
    year = int.from_bytes(raw[:2], "big")
    try:
        return _dt.date(year, raw[2], raw[3]).isoformat()
    except ValueError:
        y = "****" if year == 0xFFFF else f"{year:04d}"
        m = "**" if raw[2] == 0xFF else f"{raw[2]:02d}"
        d = "**" if raw[3] == 0xFF else f"{raw[3]:02d}"
        return f"{y}-{m}-{d}"


def _time_text(raw: bytes) -> str:
    if len(raw) != 4 or raw[0] > 23 or raw[1] > 59 or raw[2] > 59:
        return raw.hex().upper()
    out = f"{raw[0]:02d}:{raw[1]:02d}:{raw[2]:02d}"
    return out + (f".{raw[3]:02d}" if raw[3] not in (0, 0xFF) else "")


def _text_or_hex(raw: bytes) -> str:
    if raw and all(0x20 <= b < 0x7F for b in raw):
        return raw.decode("ascii")
    return raw.hex().upper()


def _plain(d: Data) -> Any:
    """Data as plain JSON values: integers, hex strings, lists."""
    t = d.type
    if t in (DataType.ARRAY, DataType.STRUCTURE):
        return [_plain(x) for x in d.value]  # type: ignore[union-attr]
    if t is DataType.COMPACT_ARRAY:
        try:
            return [_plain(x) for x in decode_compact_array(d)]
        except DecodeError:
            return bytes(d.value).hex().upper()  # type: ignore[arg-type]
    j = d.to_json()
    return j["value"]


def _int(d: Data) -> int:
    v = d.value
    if v.__class__ is int:  # the common case, cheaply (bool is not int here)
        return v
    if d.type in (DataType.ARRAY, DataType.STRUCTURE, DataType.COMPACT_ARRAY) or isinstance(d.value, bool) \
            or not isinstance(d.value, int):
        raise _Unexpected(f"expected an integer, got {d.type.name.lower()}")
    return d.value


def _octets(d: Data) -> bytes:
    if d.type is not DataType.OCTET_STRING:
        raise _Unexpected(f"expected an octet-string, got {d.type.name.lower()}")
    return d.value  # type: ignore[return-value]


def _items(d: Data, kinds: tuple[DataType, ...] = (DataType.ARRAY, DataType.STRUCTURE)) -> tuple[Data, ...]:
    if d.type is DataType.COMPACT_ARRAY and DataType.COMPACT_ARRAY in kinds:
        try:
            return decode_compact_array(d)
        except DecodeError as exc:
            raise _Unexpected(f"bad compact-array: {exc}") from None
    if d.type not in kinds:
        raise _Unexpected(f"expected {'/'.join(k.name.lower() for k in kinds)}, got {d.type.name.lower()}")
    return d.value  # type: ignore[return-value]


_UNITS = {27: "W", 28: "VA", 29: "var", 30: "Wh", 31: "VAh", 32: "varh", 33: "A", 35: "V", 44: "Hz", 254: "other",
          255: "count"}


def _unit_name(code: int) -> str:
    return _UNITS.get(code, f"unit {code}")


def _scaler_unit(d: Data) -> tuple[int, int]:
    s, u = _items(d, (DataType.STRUCTURE,))
    return _int(s), _int(u)


def _scaled(value: int, scaler: int) -> float:
    return value * 10.0 ** scaler if scaler < 0 else float(value * 10 ** scaler)


def _access_response(payload: Any) -> AccessResponse:
    if not isinstance(payload, AccessResponse):
        raise _Unexpected(f"expected a DLMS ACCESS.response, got {type(payload).__name__}")
    return payload


def _results(r: AccessResponse, names: Sequence[str] | None = None) -> dict:
    """ok / result(s) of a DLMS response; `names` labels the results in request order."""
    res = [x.result_name for x in r.results]
    out: dict[str, Any] = {"ok": bool(r.results) and all(x.ok for x in r.results)}
    if len(res) == 1:
        out["result"] = res[0]
    elif names is not None and len(names) == len(res):
        out["results"] = dict(zip(names, res))
    else:
        out["results"] = res
    return out


def _protected_plaintext(r: AccessResponse, index: int, out: dict) -> Data | None:
    """The decrypted value of response item `index`, or None (and out says why)."""
    prot = next((p for p in r.protected if p.index == index), None)
    if prot is None:
        if index < len(r.data) and r.data[index].type is not DataType.NULL_DATA:
            out["encrypted"] = False
            return r.data[index]
        raise _Unexpected("no protected data in the response")
    out["encrypted"] = True
    out["decrypted"] = prot.plaintext is not None
    if prot.plaintext is None:
        if prot.error:
            out["decryption_error"] = prot.error
        else:
            out["note"] = "values are encrypted: pass decrypt= (or the payload gbcs.analyse / HeadEnd decrypted)"
        return None
    return prot.plaintext


def _single_value(plain: Data) -> Data:
    """Get Protected Attributes plaintext: structure of one value per requested object."""
    items = _items(plain, (DataType.STRUCTURE,))
    if len(items) != 1:
        raise _Unexpected(f"expected one protected value, got {len(items)}")
    return items[0]


def _i_ecs17b(p: Any, m: Message | None) -> dict:
    r = _access_response(p)
    out = _results(r)
    if not out["ok"]:
        return out
    plain = _protected_plaintext(r, 0, out)
    if plain is None:
        return out
    regs = _items(_single_value(plain), (DataType.STRUCTURE,))
    if len(regs) < 4:
        raise _Unexpected("expected {import, scaler_unit, reactive import, scaler_unit, ...}")
    value, (scaler, unit) = _int(regs[0]), _scaler_unit(regs[1])
    rvalue, (rscaler, runit) = _int(regs[2]), _scaler_unit(regs[3])
    out.update(import_value=value, scaler=scaler, unit=_unit_name(unit),
               reactive_import_value=rvalue, reactive_scaler=rscaler, reactive_unit=_unit_name(runit))
    if unit == 30:
        out["import_kwh"] = _scaled(value, scaler) / 1000
    if runit == 32:
        out["reactive_import_kvarh"] = _scaled(rvalue, rscaler) / 1000
    if len(regs) > 4:  # twin-element ESME [O RTDS TWIN]: one more register, same scaling [I]
        extra = [_int(x) for x in regs[4:]]
        out["secondary_import_value"] = extra[0]
        if unit == 30:
            out["secondary_import_kwh"] = _scaled(extra[0], scaler) / 1000
        if len(extra) > 1:
            out["extra_values"] = extra[1:]
    return out


def _i_ecs17c(p: Any, m: Message | None) -> dict:
    r = _access_response(p)
    out = _results(r)
    if not out["ok"]:
        return out
    regs = _items(r.data[0], (DataType.STRUCTURE,))
    value, (scaler, unit) = _int(regs[0]), _scaler_unit(regs[1])
    out.update(power_value=value, scaler=scaler, unit=_unit_name(unit))
    if unit == 27:
        out["power_w"] = _scaled(value, scaler)
    rest = [_plain(x) for x in regs[2:]]
    if rest:
        out["extra_values"] = rest  # [I] meaning not identified (RTDS: one more double-long-unsigned)
    return out


def _profile_entries(plain: Data) -> tuple[Data, ...]:
    return _items(_single_value(plain), (DataType.ARRAY, DataType.COMPACT_ARRAY))


def _i_ecs22b(p: Any, m: Message | None) -> dict:
    r = _access_response(p)
    out = _results(r)
    if not out["ok"]:
        return out
    plain = _protected_plaintext(r, 0, out)
    if plain is None:
        return out
    entries = []
    for e in _profile_entries(plain):
        items = _items(e, (DataType.STRUCTURE,))
        entry: dict[str, Any] = {"time": _seconds_text(_int(items[0])), "value": _int(items[1])}
        if len(items) > 2:  # twin element [O RTDS TWIN]
            entry["values"] = [_int(x) for x in items[1:]]
        entries.append(entry)
    out["entries"] = entries
    return out


def _i_ecs21a(p: Any, m: Message | None) -> dict:
    r = _access_response(p)
    out = _results(r)
    if not out["ok"]:
        return out
    plain = _protected_plaintext(r, 0, out)
    if plain is None:
        return out
    entries = []
    for e in _profile_entries(plain):
        items = _items(e, (DataType.STRUCTURE,))
        registers = [_int(x) for x in items[1:] if x.type not in (DataType.ARRAY, DataType.STRUCTURE)]
        arrays = [[_plain(y) for y in x.value] for x in items[1:] if x.type in (DataType.ARRAY, DataType.STRUCTURE)]
        entry: dict[str, Any] = {"time": _seconds_text(_int(items[0])), "import_register": registers[0] if registers else None,
                                 "registers": registers}
        # [O RTDS single element]: 48 TOU registers then four arrays of 8 block counters
        if arrays and len(arrays[0]) == 48:
            entry["tou_registers"] = arrays[0]
            entry["block_registers"] = arrays[1:]
        else:
            entry["arrays"] = arrays
        entries.append(entry)
    out["entries"] = entries
    return out


def _i_log() -> Callable[[Any, Message | None], dict]:
    def interp(p: Any, m: Message | None) -> dict:
        r = _access_response(p)
        out = _results(r)
        if not out["ok"]:
            return out
        events = []
        for e in _items(r.data[0], (DataType.ARRAY, DataType.COMPACT_ARRAY)):
            items = _items(e, (DataType.STRUCTURE,))
            code = _int(items[1])
            ev: dict[str, Any] = {"time": _seconds_text(_int(items[0])), "event_code": f"{code:04X}",
                                  "event": catalogue.alert_name(code)}
            if len(items) > 2:
                ev["data"] = _plain(items[2]) if items[2].type is not DataType.OCTET_STRING else _octets(items[2]).hex().upper()
            events.append(ev)
        out["events"] = events
        return out
    return interp


def _i_action(p: Any, m: Message | None) -> dict:
    return _results(_access_response(p))


class SupplyState(enum.IntEnum):
    """Disconnect control (class 70) control_state, in GBCS words [I: DLMS disconnected /
    connected / ready_for_reconnection = GBCS supply Off / On / Armed]."""

    OFF = 0
    ON = 1
    ARMED = 2


def _i_ecs45(p: Any, m: Message | None) -> dict:
    r = _access_response(p)
    out = _results(r)
    if not out["ok"]:
        return out
    state = _int(r.data[0])
    out["control_state"] = state
    try:
        out["supply_state"] = SupplyState(state).name.lower()
    except ValueError:
        out["supply_state"] = f"unknown ({state})"
    return out


def _i_ecs52(p: Any, m: Message | None) -> dict:
    r = _access_response(p)
    out = _results(r)
    versions = [_octets(d) for d, res in zip(r.data, r.results) if res.ok]
    if versions:
        out["firmware_version"] = versions[0].hex().upper()
        out["firmware_versions"] = [{"hex": v.hex().upper(), "text": _text_or_hex(v)} for v in versions]
    return out


def _i_ecs70(p: Any, m: Message | None) -> dict:
    r = _access_response(p)
    out = _results(r, ("set_clock_base", "preset_adjusting_time", "adjust_to_preset_time", "time", "status"))
    if len(r.data) >= 5 and len(r.results) >= 5:
        if r.results[3].ok and r.data[3].type in (DataType.OCTET_STRING, DataType.DATE_TIME):
            out["device_time"] = _datetime_text(r.data[3].value)  # type: ignore[arg-type]
        if r.results[4].ok and r.data[4].type is not DataType.NULL_DATA:
            out["clock_status"] = _int(r.data[4])
    return out


def _i_ccs01(p: Any, m: Message | None) -> dict:
    return _results(_access_response(p), ("register_device", "join_timeout", "enable_joining"))


_RESTORE_ENTRY_RESULTS = {0: "restored", 1: "invalid_entry", 2: "device_log_full"}  # [U] hub/chf.py


def _i_ccs03(p: Any, m: Message | None) -> dict:
    """results of the three requests, and `entries`: restore_PAN's per-backup-entry results in
    order (restored / invalid_entry / device_log_full) when the CHF returned them."""
    r = _access_response(p)
    out = _results(r, ("restore_pan", "join_timeout", "enable_joining"))
    if r.data and r.data[0].type is DataType.ARRAY:
        out["entries"] = [_RESTORE_ENTRY_RESULTS.get(n, f"unknown ({n})") for n in map(_int, _items(r.data[0]))]
    return out


def _i_tariff_write(names: Sequence[str]) -> Callable[[Any, Message | None], dict]:
    def interp(p: Any, m: Message | None) -> dict:
        r = _access_response(p)
        out = _results(r, names)
        if not out["ok"]:
            out["failed"] = [n for n, x in zip(names, r.results) if not x.ok] if len(names) == len(r.results) else None
        return out
    return interp


_ECS01B_NAMES = ("standing_charge", "price_matrix", "standing_charge_activation", "price_matrix_activation")
_ECS01A_NAMES = ("seasons", "week_profiles", "day_profiles", "special_days",
                 *(f"block_thresholds_{i + 1}" for i in range(8)), "block_mode", "standing_charge", "price_matrix",
                 "calendar_activation", "special_days_activation", "block_mode_activation",
                 "standing_charge_activation", "price_matrix_activation", "thresholds_activation")


def _action_text(selector: int) -> str | int:
    if 1 <= selector <= 48:
        return f"T{selector}"
    if 101 <= selector <= 108:
        return f"B{selector - 100}"
    return selector


def _tariff_from(values: dict[str, Data]) -> dict:
    """The tariff as ECS01a parameters (times and dates as text), from the ECS24 values."""
    out: dict[str, Any] = {}
    if "currency_units" in values:
        out["currency_units"] = _int(values["currency_units"])  # [I] 1 = GBP
    if "price_scale" in values:
        scaler, unit = _scaler_unit(values["price_scale"])
        out["currency_scale"] = scaler
    if "seasons" in values:
        out["seasons"] = [{"name": _text_or_hex(_octets(s[0])), "start": _datetime_text(_octets(s[1])),
                           "week": _octets(s[2])[0] if len(_octets(s[2])) == 1 else _octets(s[2]).hex().upper()}
                          for s in _items(values["seasons"])]
    if "week_profiles" in values:
        out["week_profiles"] = [[_int(d) for d in _items(w)[1:]] for w in _items(values["week_profiles"])]
    if "day_profiles" in values:
        out["day_profiles"] = [{"day": _int(_items(d)[0]),
                                "switches": [{"start": _time_text(_octets(_items(s)[0])),
                                              "action": _action_text(_int(_items(s)[2]))}
                                             for s in _items(_items(d)[1])]}
                               for d in _items(values["day_profiles"])]
    if "special_days" in values:
        out["special_days"] = [{"index": _int(_items(s)[0]), "date": _date_text(_octets(_items(s)[1])),
                                "day": _int(_items(s)[2])} for s in _items(values["special_days"])]
    rows = [values.get(f"block_thresholds_{i + 1}") for i in range(8)]
    if any(x is not None for x in rows):
        out["block_thresholds"] = [[_int(t) for t in _items(x)] if x is not None else None for x in rows]
    if "block_mode" in values and values["block_mode"].type is DataType.BOOLEAN:
        out["block_mode"] = bool(values["block_mode"].value)
    if "standing_charge" in values:
        sc = _items(values["standing_charge"])
        _commodity, scale = _scaler_unit(sc[0])
        charges = [_int(_items(e)[1]) for e in _items(sc[2])]
        out["standing_charge"] = charges[0] if len(charges) == 1 else charges
        out["standing_charge_scale"] = scale
    if "price_matrix" in values:
        pm = _items(values["price_matrix"])
        _commodity, scale = _scaler_unit(pm[0])
        prices = {(_octets(_items(e)[0]) or b"\x00")[0]: _int(_items(e)[1]) for e in _items(pm[2])}
        tou = [prices.get(i, 0) for i in range(1, 49)]
        while tou and tou[-1] == 0:
            tou.pop()
        blocks = [[prices.get(_price_index(t, b), 0) for b in range(4)] for t in range(8)]
        for row in blocks:
            while row and row[-1] == 0:
                row.pop()
        while blocks and not blocks[-1]:
            blocks.pop()
        out.update(price_scale=scale, tou_prices=tou, block_prices=blocks)
    return out


def _i_ecs24(p: Any, m: Message | None) -> dict:
    r = _access_response(p)
    names = [n for *_, n in _ECS24_OBJECTS]
    out = _results(r, names)
    if len(r.data) != len(names) or len(r.results) != len(names):
        raise _Unexpected(f"expected {len(names)} values")
    values = {n: d for n, d, res in zip(names, r.data, r.results) if res.ok}
    out["tariff"] = _tariff_from(values)
    return out


def _i_ccs06(p: Any, m: Message | None) -> dict:
    """active_devices of the ZigBee network control object [I: element names from DLMS class 104
    attribute 4 active_device; RTDS shows 14 elements of exactly those types]."""
    r = _access_response(p)
    out = _results(r)
    if not out["ok"]:
        return out
    devices = []
    for e in _items(r.data[0], (DataType.ARRAY,)):
        x = _items(e, (DataType.STRUCTURE,))
        dev: dict[str, Any] = {"eui": eui_hex(_octets(x[0])) if len(_octets(x[0])) == 8 else _octets(x[0]).hex().upper()}
        if len(x) >= 14:
            dev.update(
                status=_plain(x[1]),
                rssi={"max": _int(x[2]), "average": _int(x[3]), "min": _int(x[4])},
                lqi={"max": _int(x[5]), "average": _int(x[6]), "min": _int(x[7])},
                last_communication=_datetime_text(_octets(x[8])),
                hops=_int(x[9]), transmission_failures=_int(x[10]), transmission_successes=_int(x[11]),
                application_version=_int(x[12]), stack_version=_int(x[13]))
            if len(x) > 14:
                dev["extra"] = [_plain(y) for y in x[14:]]
        else:
            dev["values"] = [_plain(y) for y in x[1:]]
        devices.append(dev)
    out["devices"] = devices
    return out


def _i_join(p: Any, m: Message | None) -> dict:
    if not isinstance(p, (JoinResponse, UnjoinResponse)):
        raise _Unexpected(f"expected a join/unjoin response code, got {type(p).__name__}")
    code = p.code
    return {"ok": int(code) == 0, "code": code.name if isinstance(code, enum.Enum) else code}


def _i_cs07(p: Any, m: Message | None) -> dict:
    if not isinstance(p, DeviceJoinDetails):
        raise _Unexpected(f"expected Read Device Join Details Response, got {type(p).__name__}")
    code = p.code
    out: dict[str, Any] = {"ok": int(code) == 0, "code": code.name if isinstance(code, enum.Enum) else code}
    if p.entries is not None:
        out["devices"] = [{"eui": eui_hex(e.entity_id),
                           "device_type": e.device_type.name if isinstance(e.device_type, enum.Enum) else e.device_type}
                          for e in p.entries]
    return out


def _i_cs14(p: Any, m: Message | None) -> dict:
    """CHF device log backup alert (0x8F12): structure{alert code, time, structure{backup time,
    8 bytes [I: the HAN's extended PAN id, needed to restore it with CCS03], array of {EUI,
    16-byte hash of the TC link key (empty when none yet)}}} [O RTDS NA_CS14; S DT]."""
    if not isinstance(p, DataNotification):
        raise _Unexpected(f"expected a DLMS DATA-NOTIFICATION, got {type(p).__name__}")
    out: dict[str, Any] = {"ok": True}
    if p.alert_code is not None:
        out["alert_code"] = f"{p.alert_code:04X}"
        out["alert"] = catalogue.alert_name(p.alert_code)
    if p.alert_time is not None:
        out["alert_time"] = _datetime_text(p.alert_time)
    els = p.elements
    if not els:
        raise _Unexpected("no device log in the alert")
    log = _items(els[0], (DataType.STRUCTURE,))
    out["backup_time"] = _datetime_text(_octets(log[0]))
    out["extended_pan_id"] = _octets(log[1]).hex().upper()
    out["devices"] = [{"eui": eui_hex(_octets(_items(e)[0])), "link_key_hash": _octets(_items(e)[1]).hex().upper()}
                      for e in _items(log[2], (DataType.ARRAY,))]
    return out


def _generic(payload: Any) -> dict:
    """Any payload: DLMS results or alert code when there are some, then the payload's JSON. A
    command use case meets alerts here too (e.g. 0x8F66/0x8F67 after a future-dated ECS01a/b)."""
    out: dict[str, Any] = {}
    if isinstance(payload, AccessResponse):
        out["ok"] = bool(payload.results) and all(x.ok for x in payload.results)
        out["results"] = [x.result_name for x in payload.results]
    elif isinstance(payload, DataNotification):
        code = payload.alert_code
        if code is not None:
            out["alert_code"] = f"{code:04X}"
            out["alert"] = catalogue.alert_name(code)
        if payload.alert_time is not None:
            out["alert_time"] = _datetime_text(payload.alert_time)
        if payload.details is not None:
            out["details"] = jsonable(payload.details)
    out["payload"] = jsonable(payload)
    return out


def _redecode(payload: Any, decrypt: Decrypt) -> Any:
    """Open protected data in an already decoded payload that was decoded without keys."""
    if isinstance(payload, AccessResponse) and any(x.plaintext is None for x in payload.protected):
        try:
            return decode_apdu(payload.encode(), decrypt=decrypt)
        except (DecodeError, EncodeError):
            return payload
    return payload


def _interpret(uc: str, code: int, fn: Callable[[Any, Message | None], dict], response: Any,
               decrypt: Decrypt | None, message: Message | None) -> dict:
    out: dict[str, Any] = {"use_case": uc, "message_code": f"{code:04X}"}
    payload = None
    if isinstance(response, (bytes, bytearray, memoryview)):
        try:
            response = decode_message(bytes(response))
        except DecodeError as exc:
            out.update(ok=False, error=f"not a GBCS message: {exc}")
            return out
    if isinstance(response, Message):
        message = response
    elif hasattr(response, "message") and isinstance(getattr(response, "message"), Message):
        message = response.message  # gbcs.analyse.Analysis, wan.headend.Reply / Alert
        payload = getattr(response, "payload", None)
    else:
        payload = response
    if message is not None:
        out["cra"] = message.cra.name.lower()
        if message.message_code != code:
            out["warning"] = f"message code {message.message_code:04X} is not {uc}'s {code:04X}"
        if message.date_time:
            out["date_time"] = _datetime_text(message.date_time)
    if payload is None:
        if message is None:
            out.update(ok=False, error="nothing to interpret")
            return out
        try:
            payload = decode_payload(message, decrypt)
        except DecodeError as exc:
            out.update(ok=False, error=f"payload does not decode: {exc}")
            return out
    elif decrypt is not None:
        payload = _redecode(payload, decrypt)
    try:
        out.update(fn(payload, message))
    except (_Unexpected, ValueError, TypeError, IndexError, KeyError, AttributeError) as exc:
        out["note"] = f"unexpected {uc} response shape ({exc}); generic payload follows"
        out.update(_generic(payload))
    return out


# =============================================================================================
# The registry
# =============================================================================================

_ORIGINATOR = Param("originator", "eui", catalogue.RTDS_SUPPLIER,
                    "the command's originator EUI, named again inside the content (protection parameters); "
                    "build_content fills it from the message header")
_RECIPIENT = Param("recipient", "eui", catalogue.RTDS_ESME,
                   "the command's recipient EUI (the ESME), named again inside the content; build_content fills it")


def _range_params(what: str, days: int) -> tuple[Param, Param]:
    return (Param("start", "datetime", None, f"start of the {what} (UTC); default: {days} day(s) before 'end'"),
            Param("end", "datetime", None, f"end of the {what} (UTC); default: 'start' + {days} day(s), or today 00:00 UTC"))


_PRICE = dict(min=-32768, max=32767)
_SCALE = dict(min=-128, max=127)


def _rows_check(max_rows: int, max_cols: int, what: str) -> Callable[[tuple], None]:
    def check(rows: tuple) -> None:
        if len(rows) > max_rows:
            raise ValueError(f"at most {max_rows} {what}, got {len(rows)}")
        for i, row in enumerate(rows):
            if len(row) > max_cols:
                raise ValueError(f"row {i + 1}: at most {max_cols} values, got {len(row)}")
    return check


def _max_len(n: int, what: str) -> Callable[[tuple], None]:
    def check(v: tuple) -> None:
        if len(v) > n:
            raise ValueError(f"at most {n} {what}, got {len(v)}")
    return check


def _week_check(rows: tuple) -> None:
    if not 1 <= len(rows) <= 255:
        raise ValueError("need 1..255 week profiles")
    for i, row in enumerate(rows):
        if len(row) != 7:
            raise ValueError(f"week {i + 1} must list 7 day profiles (Monday..Sunday), got {len(row)}")


_PRICE_PARAMS: tuple[Param, ...] = (
    Param("standing_charge", "int", 20000, "standing charge per day, in units of 10^standing_charge_scale", **_PRICE),
    Param("standing_charge_scale", "int", -5, "decimal exponent of the standing charge", **_SCALE),
    Param("price_scale", "int", -5, "decimal exponent of the prices (per kWh)", **_SCALE),
    Param("tou_prices", "ints", (3221,), "TOU prices for rates 1..48 (missing ones 0)", **_PRICE,
          check=_max_len(48, "TOU prices")),
    Param("block_prices", "int_rows", (), "per block tariff 1..8, the prices of bands A..D (missing ones 0)",
          **_PRICE, check=_rows_check(8, 4, "block tariffs")),
    Param("execution_date_time", "when", None, "when the new prices apply: a date-time, immediate (default) or "
          "never (cancels a pending future-dated change)"),
)

_STRUCTURE_DEFAULTS = {
    "seasons": (("all", _dt.date(2015, 1, 1), 1),),
    "week_profiles": ((1, 1, 1, 1, 1, 1, 1),),
    "day_profiles": (((_dt.time(0, 0), "T1"),),),
}


def _requests(*items: tuple) -> frozenset[tuple]:
    """(kind, CosemObjectId[, id, ...]) -> the (kind, class id, obis, id|None) keys `UseCaseDef.allows` looks up."""
    out = set()
    for kind, obj, *ids in items:
        for i in ids or (None,):
            out.add((kind, obj.class_id, obj.obis, i))
    return frozenset(out)


_G, _GS, _S, _A = RequestKind.GET, RequestKind.GET_WITH_SELECTION, RequestKind.SET, RequestKind.ACTION
_NC = OBIS.ZIGBEE_NETWORK_CONTROL
# ZigBee network control (class 104) attributes and methods [O RTDS CCS01/02/06; U restore_PAN]
NC_ENABLE_DISABLE_JOINING, NC_JOIN_TIMEOUT, NC_ACTIVE_DEVICES = 2, 3, 4
NC_REGISTER_DEVICE, NC_UNREGISTER_DEVICE, NC_RESTORE_PAN = 1, 2, 5
_READ_CHF_LOG = _requests((_G, _NC, NC_ACTIVE_DEVICES, NC_ENABLE_DISABLE_JOINING, NC_JOIN_TIMEOUT))
_TARIFF_OBJECTS = (OBIS.CURRENCY_UNITS, OBIS.ACTIVITY_CALENDAR, OBIS.SPECIAL_DAYS_TABLE, OBIS.SPECIAL_DAYS_TABLE_PASSIVE,
                   OBIS.BLOCK_MODE, OBIS.SPECIAL_DAYS_SWITCH, OBIS.BLOCK_THRESHOLDS_SWITCH, OBIS.STANDING_CHARGE,
                   OBIS.UNIT_CHARGE, *BLOCK_THRESHOLDS, *BLOCK_THRESHOLDS_PASSIVE)
# what a tariff command may write: passive values, activation times, the currency register [I]
_TARIFF_WRITES = (OBIS.CURRENCY_UNITS, OBIS.ACTIVITY_CALENDAR, OBIS.SPECIAL_DAYS_TABLE_PASSIVE, OBIS.BLOCK_MODE,
                  OBIS.SPECIAL_DAYS_SWITCH, OBIS.BLOCK_THRESHOLDS_SWITCH, OBIS.STANDING_CHARGE, OBIS.UNIT_CHARGE,
                  *BLOCK_THRESHOLDS_PASSIVE)
_REQUESTS: dict[str, frozenset[tuple]] = {
    "CCS01": _requests((_A, _NC, NC_REGISTER_DEVICE), (_S, _NC, NC_JOIN_TIMEOUT, NC_ENABLE_DISABLE_JOINING)),
    "CCS02": _requests((_A, _NC, NC_UNREGISTER_DEVICE)),
    "CCS03": _requests((_A, _NC, NC_RESTORE_PAN), (_S, _NC, NC_JOIN_TIMEOUT, NC_ENABLE_DISABLE_JOINING)),
    "CCS05CCS04": _READ_CHF_LOG,
    "CCS06": _READ_CHF_LOG,
    "CCS07": _READ_CHF_LOG,
    "ECS17b": _requests((_A, OBIS.ENERGY_REGISTERS_PROTECTION)),
    "ECS17c": _requests((_G, OBIS.INSTANTANEOUS_ACTIVE_POWER_IMPORT)),
    "ECS22b": _requests((_A, OBIS.PROFILE_DATA_PROTECTION)),
    "ECS21a": _requests((_A, OBIS.DAILY_READ_PROTECTION)),
    "ECS24": _requests(*((_G, o) for o in _TARIFF_OBJECTS)),
    "ECS01a": _requests(*((_S, o) for o in _TARIFF_WRITES), (_A, OBIS.ACTIVITY_CALENDAR)),
    "ECS01b": _requests((_S, OBIS.STANDING_CHARGE), (_S, OBIS.UNIT_CHARGE)),
    "ECS35a": _requests((_GS, OBIS.EVENT_LOG), (_G, OBIS.EVENT_LOG)),
    "ECS35b": _requests((_GS, OBIS.SECURITY_LOG), (_G, OBIS.SECURITY_LOG)),
    "ECS42": _requests((_A, OBIS.LOAD_SWITCH_SCRIPT_TABLE)),
    "ECS43": _requests((_A, OBIS.LOAD_SWITCH_SCRIPT_TABLE)),
    "ECS44": _requests((_A, OBIS.LOAD_SWITCH_SCRIPT_TABLE)),
    "ECS45": _requests((_G, OBIS.DISCONNECT_CONTROL)),
    "ECS52": _requests((_G, OBIS.DEVICE_FIRMWARE_VERSION, 2)),
    "ECS70": _requests((_S, OBIS.CLOCK), (_A, OBIS.CLOCK), (_G, OBIS.CLOCK)),
    "CS01a": _requests((_A, OBIS.TOKEN_GATEWAY)),
}


def _def(use_case: str, *, target: str, build: Callable[..., bytes] | None, interpret: Callable, params: tuple[Param, ...] = (),
         originator: str = "supplier", targets: tuple[str, ...] = (), utrn: bool = False, response: str = "") -> UseCaseDef:
    uc = catalogue.by_use_case(use_case)
    code = uc.message_code
    return UseCaseDef(
        use_case=use_case,
        message_code=code,
        target=target,
        critical=catalogue.is_critical_command(code),
        originator=originator,
        params=params,
        build=None if build is None else _make_build(use_case, params, build, utrn),
        interpret=_make_interpret(use_case, code, interpret),
        name=uc.name,
        targets=targets or (target,),
        payload=uc.payload or "dlms",
        utrn=utrn,
        response=response,
        requests=_REQUESTS.get(use_case, frozenset()),
    )


_DEFS: tuple[UseCaseDef, ...] = (
    _def("CCS01", target="chf", originator="acb", build=_b_ccs01, interpret=_i_ccs01, params=(
        Param("device", "eui", catalogue.RTDS_ESME, "EUI-64 of the device to add to the CHF device log"),
        Param("install_code", "hex", b"0123456789ABCDEF", "16-byte install code (DUIS InstallCode)", check=_length(16)),
        Param("join_timeout", "int", 90, "join_timeout attribute (RTDS 90; unit not confirmed [U])", min=0, max=65535),
        Param("enable_joining", "bool", True, "enable_disable_joining attribute"),
        Param("key_type", "int", 1, "register_device key type (RTDS 1 with an install code) [I]", min=0, max=255),
        Param("option", "int", 0, "fourth register_device element (RTDS 0; meaning not found [U])", min=0, max=255),
    ), response="ACCESS.response: action + 2 set results, null data"),
    _def("CCS02", target="chf", originator="acb", build=_b_ccs02, interpret=_i_action, params=(
        Param("device", "eui", catalogue.RTDS_ESME, "EUI-64 of the device to remove from the CHF device log"),
    ), response="ACCESS.response: one action result"),
    _def("CCS03", target="chf", originator="acb", build=_b_ccs03, interpret=_i_ccs03, params=(
        Param("extended_pan_id", "eui", catalogue.RTDS_GPF, "ZigBee extended PAN id the CHF adopts (normally the "
              "GPF's EUI; CS14 reports the current one)"),
        Param("devices", "devices", ((catalogue.RTDS_ESME, b"0123456789ABCDEF"),),
              "the backup: every device the CHF device log is to hold, with its 16-byte install code "
              "(CS14 lists the EUIs); others are removed"),
        Param("join_timeout", "int", 90, "join_timeout attribute, as CCS01", min=0, max=65535),
        Param("enable_joining", "bool", True, "enable_disable_joining attribute, as CCS01"),
        Param("key_type", "int", 1, "key type of every entry (1: install code), as CCS01", min=0, max=255),
        Param("option", "int", 0, "fourth element of every entry, as CCS01 (meaning not found [U])", min=0, max=255),
    ), response="ACCESS.response: action (return data: array of per-entry enum) + 2 set results [U]"),
    _def("CCS06", target="chf", originator="acb", build=_b_ccs06, interpret=_i_ccs06,
         response="ACCESS.response: array of 14-element active_device structures"),
    _def("ECS17b", target="esme", build=_b_ecs17b, interpret=_i_ecs17b, params=(_ORIGINATOR, _RECIPIENT),
         response="ACCESS.response: protected (encrypted) structure{import, scaler_unit, reactive import, scaler_unit[, secondary]}"),
    _def("ECS17c", target="esme", build=_b_ecs17c, interpret=_i_ecs17c,
         response="ACCESS.response: structure{power, scaler_unit, value}"),
    _def("ECS21a", target="esme", build=_b_ecs21a, interpret=_i_ecs21a,
         params=(_ORIGINATOR, _RECIPIENT, *_range_params("daily read log range", 2)),
         response="ACCESS.response: protected compact-array of daily reads"),
    _def("ECS22b", target="esme", build=_b_ecs22b, interpret=_i_ecs22b,
         params=(_ORIGINATOR, _RECIPIENT, *_range_params("half-hour profile range", 1)),
         response="ACCESS.response: protected compact-array of {time, value}"),
    _def("ECS24", target="esme", build=_b_ecs24, interpret=_i_ecs24,
         response="ACCESS.response: 17 values (calendar, special days, thresholds, prices)"),
    _def("ECS35a", target="esme", build=_b_log("0-0:99.98.0.255"), interpret=_i_log(),
         params=_range_params("event log range", 1), response="ACCESS.response: compact-array of {time, event code, data}"),
    _def("ECS35b", target="esme", build=_b_log("0-0:99.98.1.255"), interpret=_i_log(),
         params=_range_params("security log range", 1), response="ACCESS.response: compact-array of {time, event code}"),
    _def("ECS42", target="esme", build=_b_script(51), interpret=_i_action, response="signed ACCESS.response: one action result"),
    _def("ECS43", target="esme", build=_b_script(52), interpret=_i_action, response="signed ACCESS.response: one action result"),
    _def("ECS44", target="esme", build=_b_script(54), interpret=_i_action, response="signed ACCESS.response: one action result"),
    _def("ECS45", target="esme", build=_b_ecs45, interpret=_i_ecs45, response="ACCESS.response: enum control_state"),
    _def("ECS52", target="esme", targets=("esme", "chf"), build=_b_ecs52, interpret=_i_ecs52,
         response="ACCESS.response: octet-string firmware version"),
    _def("ECS70", target="esme", build=_b_ecs70, interpret=_i_ecs70, params=(
        Param("validity_start", "datetime", None, "start of the time window in which the meter may set its clock; "
              "default: now (system clock, UTC)"),
        Param("validity_end", "datetime", None, "end of the window; default: validity_start + 60 s (the RTDS window)"),
        Param("clock_base", "int", 5, "clock_base attribute written first (RTDS 5)", min=0, max=255),
    ), response="signed ACCESS.response: set/action/action results, time, status"),
    _def("ECS01a", target="esme", build=_b_ecs01a, interpret=_i_tariff_write(_ECS01A_NAMES), params=(
        Param("seasons", "seasons", _STRUCTURE_DEFAULTS["seasons"], "seasons: (name, start date, week profile number)"),
        Param("week_profiles", "int_rows", _STRUCTURE_DEFAULTS["week_profiles"],
              "week profiles 1..n: day profile numbers for Monday..Sunday", min=1, max=255, check=_week_check),
        Param("day_profiles", "day_profiles", _STRUCTURE_DEFAULTS["day_profiles"],
              "day profiles 1..n: switch times (UTC) and actions T<rate> / B<block tariff>"),
        Param("special_days", "special_days", (), "special days: (date, day profile number)",
              check=_max_len(255, "special days")),
        Param("block_thresholds", "int_rows", ((_U32,),) * 8,
              "per block tariff 1..8, up to 3 thresholds (missing rows: 4294967295)", min=0, max=_U32,
              check=_rows_check(8, 3, "block tariffs")),
        Param("block_mode", "bool", None, "tariff flag 0-0:94.44.2.0; default: true iff a day profile uses a "
              "block tariff [I]"),
        *_PRICE_PARAMS,
    ), response="signed ACCESS.response: 21 set results"),
    _def("ECS01b", target="esme", build=_b_ecs01b, interpret=_i_tariff_write(_ECS01B_NAMES), params=_PRICE_PARAMS,
         response="signed ACCESS.response: 4 set results"),
    _def("CS01a", target="esme", build=_b_cs01a, interpret=_i_action, utrn=True, params=(
        Param("utrn", "utrn", REQUIRED, "the UTRN (20 digits; its 10 counter bits must match the originator "
              "counter's UTRN counter)"),
    ), response="ACCESS.response: one action result"),
    _def("CS03B", target="gsme", targets=("gsme", "esme", "gpf"), build=_b_cs03b, interpret=_i_join, params=(
        Param("other_entity_id", "eui", bytes.fromhex("00DB12345678909C"), "EUI-64 of the device to join with"),
        Param("other_device_type", "enum", DeviceType.GPF, "its device type", enum=DeviceType),
        Param("join_method_and_role", "enum", JoinMethodAndRole.METHOD_B, "join method (CS03B: METHOD_B)",
              enum=JoinMethodAndRole),
    ), response="ASN.1 join response code"),
    _def("CS04B", target="gsme", targets=("gsme", "esme", "gpf"), build=_b_cs04b, interpret=_i_join, params=(
        Param("entity_id", "eui", bytes.fromhex("00DB123456789099"), "EUI-64 of the device to unjoin"),
    ), response="ASN.1 unjoin response code"),
    _def("CS07", target="gsme", targets=("gsme", "esme", "gpf", "ppmid", "hcalcs"), build=_b_cs07, interpret=_i_cs07,
         response="ASN.1 {code, entries {entity id, device type}}"),
    _def("CS14", target="chf", originator="acb", build=None, interpret=_i_cs14,
         response="alert: DATA-NOTIFICATION 0x8F12 with the CHF device log backup"),
)

USE_CASES: dict[str, UseCaseDef] = {d.use_case: d for d in _DEFS}
_BY_LOWER = {k.lower(): v for k, v in USE_CASES.items()}


def get(name: str) -> UseCaseDef:
    """The definition of a use case, case-insensitively; KeyError listing the known names."""
    d = _BY_LOWER.get(str(name).strip().lower())
    if d is None:
        raise KeyError(f"no use case {name!r}; known: {', '.join(USE_CASES)}")
    return d


def build_content(name: str, counter: int, *, originator: bytes | str | None = None,
                  recipient: bytes | str | None = None, **params: Any) -> bytes:
    """Content of use case `name` for `counter`. `originator` / `recipient` are the message
    header's EUIs: passed on only to use cases that name them in their content."""
    d = get(name)
    if d.build is None:
        raise ValueError(f"{d.use_case} is an alert: there is nothing to build")
    names = {p.name for p in d.params}
    if originator is not None and "originator" in names:
        params["originator"] = originator
    if recipient is not None and "recipient" in names:
        params["recipient"] = recipient
    return d.build(counter, **params)


def parse_params(name: str, items: Iterable[str]) -> dict[str, Any]:
    """['key=value', ...] as typed parameter values for use case `name` (the CLI's form).
    Raises ValueError naming the parameter for a malformed item, unknown or repeated key, or bad value."""
    d = get(name)
    known = {p.name: p for p in d.params}
    out: dict[str, Any] = {}
    for item in items:
        if not isinstance(item, str) or "=" not in item:
            raise ValueError(f"{d.use_case}: {item!r} is not key=value")
        key, value = item.split("=", 1)
        key = key.strip().replace("-", "_")
        p = known.get(key)
        if p is None:
            raise ValueError(f"{d.use_case}: unknown parameter {key!r} (parameters: {', '.join(known) or 'none'})")
        if key in out:
            raise ValueError(f"{d.use_case}: parameter {key!r} given twice")
        try:
            out[key] = p.coerce(value)
        except ValueError as exc:
            raise ValueError(f"{d.use_case}: parameter {key!r}: {exc}") from None
    return out


def interpret(name: str, message: Any = None, payload: Any = None, *, decrypt: Decrypt | None = None) -> dict:
    """A JSON-able summary of a response (or alert) to use case `name`. Give the Message (or the
    raw frame, or a gbcs.analyse Analysis / head-end Reply) and/or its decoded payload; a payload
    that gbcs.analyse or the head-end already decrypted needs no keys, else pass `decrypt`
    (ciphered block → plaintext)."""
    d = get(name)
    if payload is not None:
        msg = message if isinstance(message, Message) else getattr(message, "message", None)
        return d.interpret(payload, decrypt=decrypt, message=msg if isinstance(msg, Message) else None)
    return d.interpret(message, decrypt=decrypt)


def usecase_table_markdown() -> str:
    """The use cases and their parameters as a Markdown table (for the README)."""
    lines = [
        "| Use case | Code | Target | Critical | Originator | Parameters (type = default: meaning) |",
        "|---|---|---|---|---|---|",
    ]
    for d in USE_CASES.values():
        if d.params:
            ps = "<br>".join(f"`{p.name}` ({p.type}{'' if p.enum is None else ': ' + '/'.join(p.enum.__members__)}) "
                             f"= {_md(p.default_text())}: {_md(p.help)}" for p in d.params)
        else:
            ps = "—" if d.build is not None else "(alert: interpret only)"
        origin = (f"— (alert to the {d.originator})" if d.is_alert
                  else d.originator + (" (UTRN counter)" if d.utrn else ""))
        targets = d.target + (f" ({', '.join(t for t in d.targets if t != d.target)} too)" if len(d.targets) > 1 else "")
        lines.append(f"| {d.use_case} {_md(d.name)} | {d.message_code:04X} | {targets} | {'yes' if d.critical else 'no'} "
                     f"| {origin} | {ps} |")
    lines.append("")
    lines.append("Parameter types (`gbhub send USE_CASE key=value ...`): " +
                 "; ".join(f"`{k}` {_md(v)}" for k, v in PARAM_TYPES.items()) + ".")
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|")
