"""Use-case parameters: `Param` and the parameter types, with the text forms `gbhub send USE_CASE
key=value ...` accepts (`PARAM_TYPES`) and their canonical Python values.

A use case declares a tuple of `Param`s; `UseCaseDef.build` coerces what it is given through them
(Python values or text alike), so every error names the parameter.
"""
from __future__ import annotations

import datetime as _dt
import enum
import math
import re
from dataclasses import field
from typing import Any, Callable, Iterable, Sequence

from ..codec import DecodeError, frozen_dataclass, parse_eui
from ..utrn import decode_utrn

__all__ = ["REQUIRED", "PARAM_TYPES", "Param", "length", "max_len", "rows_check", "utc", "iso"]


class _Required:
    __slots__ = ()

    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()  # a Param default meaning "no default: must be given"


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
    "dlms": "a DLMS value (calendar, schedule, structure) as the hex of its A-XDR encoding (0101020212000109...)",
    "devices": "EUI:INSTALL_CODE pairs, comma-separated: 16 and 32 hex digits "
               "(00DB1234567890A0:30313233343536373839414243444546,00DB1234567890A1:...)",
}


@frozen_dataclass
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
        return iso(v)
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


def _c_dlms(p: Param, v: Any) -> bytes:
    from ..dlms import decode_data

    raw = _c_hex(p, v)
    try:
        if decode_data(raw).encode() != raw:
            raise ValueError("not in canonical A-XDR form")
    except DecodeError as exc:
        raise ValueError(f"not a DLMS value: {exc}") from None
    return raw


def _c_eui(p: Param, v: Any) -> bytes:
    if type(v) is bytes and len(v) == 8:  # the head-end passes header EUIs on every build
        return v
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


def utc(dt: _dt.datetime) -> _dt.datetime:
    return dt.replace(tzinfo=_dt.timezone.utc) if dt.tzinfo is None else dt.astimezone(_dt.timezone.utc)


def iso(dt: _dt.datetime) -> str:
    dt = utc(dt)
    text = dt.strftime("%Y-%m-%dT%H:%M:%S")
    if dt.microsecond:
        text += f".{dt.microsecond // 10000:02d}"
    return text + "Z"


def _c_datetime(p: Param, v: Any) -> _dt.datetime:
    if isinstance(v, str):
        v = _parse_datetime_text(v)
    elif isinstance(v, _dt.date) and not isinstance(v, _dt.datetime):
        v = _dt.datetime(v.year, v.month, v.day)
    if not isinstance(v, _dt.datetime):
        raise ValueError(f"expected a date-time, got {type(v).__name__}")
    v = utc(v)
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
    "special_days": _c_special_days, "devices": _c_devices, "dlms": _c_dlms,
}
assert set(_COERCE) == set(PARAM_TYPES)


# -- checks beyond the type (Param.check) ------------------------------------------------------


def length(*sizes: int) -> Callable[[bytes], None]:
    def check(b: bytes) -> None:
        if len(b) not in sizes:
            raise ValueError(f"must be {' or '.join(map(str, sizes))} bytes, got {len(b)}")
    return check


def max_len(n: int, what: str) -> Callable[[tuple], None]:
    def check(v: tuple) -> None:
        if len(v) > n:
            raise ValueError(f"at most {n} {what}, got {len(v)}")
    return check


def rows_check(max_rows: int, max_cols: int, what: str) -> Callable[[tuple], None]:
    def check(rows: tuple) -> None:
        if len(rows) > max_rows:
            raise ValueError(f"at most {max_rows} {what}, got {len(rows)}")
        for i, row in enumerate(rows):
            if len(row) > max_cols:
                raise ValueError(f"row {i + 1}: at most {max_cols} values, got {len(row)}")
    return check
