"""ESME use cases beyond the first twenty (esme.py): prepayment, billing, maximum demand, load
limiting, voltage quality, randomisation, identities, event behaviours, auxiliary load control and
the further register and log reads, each declared as a table of DLMS requests.

Most of these use cases are plain Gets, Sets or Actions on named COSEM objects, so a use case is a
list of `Item`s (request kind, object, attribute or method, the summary name of its value and, for
a Set or an Action, the parameter that carries the value): `table()` makes the builder, the
interpreter (every value named) and the allowed requests from that one list. Reads of protected
registers and logs (Get Protected Attributes, encrypted for the requester) and range reads of
logs use the helpers below (`protected_register`, `protected_logs`, `log_read`). Who originates
each follows its DUIS roles (`originator_of`): the supplier, else the network operator, else the
DCC's ACB on the supplier's behalf.

Layouts of use cases with an RTDS vector were taken from it (the request list and the value types
of the COMMAND, the response types of the RESPONSE) [O]; every SUCCESS vector's content is rebuilt
byte-exactly from named parameters (tests/test_rtds_esme.py). Use cases without a vector (ECS01c/d,
ECS03, ECS04a/b, ECS05, ECS07, ECS09, ECS10, ECS14, ECS15c, ECS16, ECS17a/d, ECS18a, ECS20d,
ECS21b/c, ECS22c, ECS23/23b, ECS24b, ECS25a1/b/r1/r2, ECS26d/e/f/j/m, ECS28a/b, ECS29f, ECS30/30a,
ECS34, ECS35e/f, ECS40, ECS46a/c, ECS47e, ECS61c/d/e, ECS82) are built by analogy with
their siblings and the DLMS Blue Book classes (account 111, credit 112, charge 113, limiter 71,
schedule 10, special days 11, single action schedule 22) [I]: they are not checked against
reference data and may differ from a real ESME's object list.

Units: money values are in units of 10^-5 of the currency (GBP) as RTDS ECS26a's scalers show
(`price_scale` -5) [I]; thresholds in volts, durations in seconds [I].
"""
from __future__ import annotations

import datetime as _dt
import enum
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from .. import catalogue
from ..dlms import BitString, Data, DataType, RequestKind, RequestSpec, decode_data
from ..frame import Message
from ..obis import OBIS, CosemObjectId
from .common import (
    Unexpected,
    access_request,
    access_response,
    date_text,
    datetime_text,
    day_range,
    define,
    dlms_dt,
    elements,
    log_range,
    plain_value,
    protected_get,
    protected_plaintext,
    request_keys,
    results,
    seconds_text,
    text_or_hex,
    time_text,
    when_bytes,
)
from .params import Param

_G, _GS, _S, _A = RequestKind.GET, RequestKind.GET_WITH_SELECTION, RequestKind.SET, RequestKind.ACTION
_BUFFER, _RANGE = 2, 1


# =============================================================================================
# Values: parameter value -> DLMS value
# =============================================================================================


def _dlu(v: int) -> Data:
    return Data.double_long_unsigned(int(v))


def _dl(v: int) -> Data:
    return Data.double_long(int(v))


def _lu(v: int) -> Data:
    return Data.long_unsigned(int(v))


def _i8(v: int) -> Data:
    return Data.integer(int(v))


def _bool(v: bool) -> Data:
    return Data.boolean(bool(v))


def _when(v: Any) -> Data:
    return Data.octet_string(when_bytes(v))


def _stamp(v: _dt.datetime | None) -> Data:
    return Data.octet_string(dlms_dt(v) if v is not None else when_bytes("never"))


def _ascii(v: str) -> Data:
    return Data.octet_string(v.encode("ascii"))


def _visible(v: str) -> Data:
    return Data.visible_string(v)


def _raw(v: bytes) -> Data:
    return Data.octet_string(bytes(v))


def _axdr(v: bytes) -> Data:
    """A structured value given as the hex of its A-XDR encoding (calendars, schedules)."""
    try:
        return decode_data(bytes(v))
    except Exception as exc:  # DecodeError and friends: a bad parameter
        raise ValueError(f"not a DLMS value: {exc}") from None


def _mask(bits: Sequence[int]) -> Data:
    """A 512-bit behaviour mask (ECS25*) from the numbers of the bits that are set [O RTDS: 512 bits]."""
    raw = bytearray(64)
    for b in bits:
        if not 0 <= b < 512:
            raise ValueError(f"bit {b} is outside 0..511")
        raw[b // 8] |= 0x80 >> (b % 8)
    return Data.bit_string(BitString(512, bytes(raw)))


def _mask_bits(d: Data) -> list[int]:
    bs = d.value
    data = bs.data if isinstance(bs, BitString) else b""
    return [i for i in range(len(data) * 8) if data[i // 8] & (0x80 >> (i % 8))]


def originator_of(use_case: str) -> str:
    """Who sends it: the supplier when its role may, else the network operator, else the DCC's
    ACB on behalf of the supplier (as RTDS ECS39b/ECS50 are sent), else a load controller (ECS47e,
    the only role DUIS allows it) [O; I for the others]."""
    roles = catalogue.allowed_remote_party_roles(catalogue.by_use_case(use_case).message_code)
    if catalogue.RemotePartyRole.SUPPLIER in roles:
        return "supplier"
    if catalogue.RemotePartyRole.NETWORK_OPERATOR in roles:
        return "network_operator"
    if catalogue.RemotePartyRole.ACCESS_CONTROL_BROKER in roles:
        return "acb"
    if catalogue.RemotePartyRole.LOAD_CONTROLLER in roles:
        return "load_controller"
    return "supplier"


# =============================================================================================
# Table use cases
# =============================================================================================


@dataclass(frozen=True)
class Item:
    """One DLMS request of a table use case: `kind` and object/attribute (or method), the name its
    result and value take in the summary, and for Sets/Actions the parameter whose value `encode`
    turns into the request's data (or a fixed value)."""

    kind: RequestKind
    obj: CosemObjectId
    id: int
    name: str
    param: Param | None = None
    encode: Callable[[Any], Data] | None = None
    fixed: Data | None = None
    read: Callable[[Data], Any] | None = None  # a Get's value as a summary value (default: `plain`)

    def spec(self) -> RequestSpec:
        o = self.obj
        if self.kind is _G:
            return RequestSpec.get(o.class_id, o.obis, self.id)
        if self.kind is _S:
            return RequestSpec.set(o.class_id, o.obis, self.id)
        return RequestSpec.action(o.class_id, o.obis, self.id)


def get(obj: CosemObjectId, attr: int, name: str, read: Callable[[Data], Any] | None = None) -> Item:
    return Item(_G, obj, attr, name, read=read)


def put(obj: CosemObjectId, attr: int, name: str, param: Param | None, encode: Callable[[Any], Data] | None = None,
        fixed: Data | None = None) -> Item:
    return Item(_S, obj, attr, name, param, encode, fixed)


def act(obj: CosemObjectId, method: int, name: str, param: Param | None = None,
        encode: Callable[[Any], Data] | None = None, fixed: Data | None = None) -> Item:
    return Item(_A, obj, method, name, param, encode, fixed if fixed is not None or param else Data.integer(0))


def plain(d: Data) -> Any:
    """A value as a summary shows it: 12-byte date-times as ISO text, text as text, masks as
    the numbers of their set bits, the rest as plain JSON values."""
    t = d.type
    if t is DataType.OCTET_STRING:
        raw = d.value
        if len(raw) == 12:
            return datetime_text(raw)
        return text_or_hex(raw)
    if t is DataType.VISIBLE_STRING:
        return d.value
    if t is DataType.BIT_STRING and isinstance(d.value, BitString) and d.value.nbits >= 64:
        return {"bits_set": _mask_bits(d)}
    if t in (DataType.ARRAY, DataType.STRUCTURE):
        return [plain(x) for x in d.value]
    return plain_value(d)


_UNITS = {7: "s", 27: "W", 28: "VA", 29: "var", 30: "Wh", 31: "VAh", 32: "varh", 33: "A", 35: "V", 254: "currency",
          255: "count"}


def scaler_unit(d: Data) -> Any:
    """A scaler_unit structure as {"scaler": n, "unit": name} (DLMS unit enumeration) [S Blue Book]."""
    s, u = elements(d, (DataType.STRUCTURE,))
    return {"scaler": plain_value(s), "unit": _UNITS.get(plain_value(u), plain_value(u))}


def _obis_of(d: Data) -> str:
    from ..dlms import obis_text
    from ..obis import by_obis

    raw = d.value
    known = by_obis(raw) if isinstance(raw, bytes) and len(raw) == 6 else None
    return known.name if known is not None else (obis_text(raw) if isinstance(raw, bytes) and len(raw) == 6 else plain(d))


def _schedule(d: Data) -> list[dict]:
    """Schedule (class 10) entries, named [S Blue Book class 10 attribute 2]."""
    out = []
    for e in elements(d):
        x = elements(e, (DataType.STRUCTURE,))
        if len(x) != 10:
            raise Unexpected("schedule entry of 10 elements expected")
        out.append({"index": plain_value(x[0]), "enabled": plain_value(x[1]), "script": _obis_of(x[2]),
                    "selector": plain_value(x[3]), "time": time_text(x[4].value) if x[4].type is DataType.OCTET_STRING else plain(x[4]),
                    "validity_window": plain_value(x[5]), "weekdays": plain_value(x[6]), "special_days": plain_value(x[7]),
                    "begin": date_text(x[8].value), "end": date_text(x[9].value)})
    return out


def _special_days(d: Data) -> list[dict]:
    return [{"index": plain_value(x[0]), "date": date_text(x[1].value), "day": plain_value(x[2])}
            for x in (elements(e, (DataType.STRUCTURE,)) for e in elements(d))]


def _execution_times(d: Data) -> list[dict]:
    return [{"time": time_text(x[0].value), "date": date_text(x[1].value)}
            for x in (elements(e, (DataType.STRUCTURE,)) for e in elements(d))]


def _charge(d: Data) -> dict:
    scaling, commodity, table_ = elements(d, (DataType.STRUCTURE,))
    cs, ps = (plain_value(x) for x in elements(scaling))
    return {"commodity_scale": cs, "price_scale": ps,
            "charges": [{"index": plain(x[0]), "charge": plain_value(x[1])}
                        for x in (elements(e, (DataType.STRUCTURE,)) for e in elements(table_))]}


def _credit_charges(d: Data) -> list[dict]:
    return [{"credit": _obis_of(x[0]), "charge": _obis_of(x[1]), "configuration": plain_value(x[2])}
            for x in (elements(e, (DataType.STRUCTURE,)) for e in elements(d))]


def _account_mode(d: Data) -> dict:
    mode, status = (plain_value(x) for x in elements(d, (DataType.STRUCTURE,)))
    return {"payment_mode": {1: "credit", 2: "prepayment"}.get(mode, mode), "mode": mode, "status": status}


# readers of structured values by (interface class, attribute) [S Blue Book]
_READERS: dict[tuple[int, int], Callable[[Data], Any]] = {
    (10, 2): _schedule, (11, 2): _special_days, (22, 4): _execution_times, (113, 5): _charge, (113, 6): _charge,
    (111, 11): _credit_charges, (111, 2): _account_mode,
}


def table(use_case: str, items: Sequence[Item], *, response: str = "", extra_params: Sequence[Param] = (),
          optional: dict[str, str] | None = None,
          choose: tuple[str, dict[str, Sequence[Item]]] | None = None,
          now_defaults: Callable[[_dt.datetime | None, dict[str, Any]], dict[str, Any]] | None = None) -> None:
    """Define a use case whose content is `items`, in order. `optional` maps an item's name to the
    bool parameter that includes it (default all included); `choose` = (parameter, {value: items})
    picks the items by an enum-like text parameter instead (ECS47a: which switch times);
    `now_defaults(now, given)` resolves parameters left at None (from the caller's clock)."""
    alternatives = list(choose[1].values()) if choose else [items]
    params: list[Param] = []
    for its in alternatives:
        for it in its:
            if it.param is not None and all(p.name != it.param.name for p in params):
                params.append(it.param)
    params.extend(extra_params)
    names = [it.name for it in items]
    optional = optional or {}

    def build(counter: int, *, now: _dt.datetime | None = None, **given: Any) -> bytes:
        if now_defaults is not None:
            given = {**given, **now_defaults(now, given)}
        pairs = []
        chosen = items
        if choose is not None:
            key = given[choose[0]]
            if key not in choose[1]:
                raise ValueError(f"parameter {choose[0]!r} is one of {', '.join(choose[1])}")
            chosen = choose[1][key]
        for it in chosen:
            if it.name in optional and not given[optional[it.name]]:
                continue
            if it.kind is _G:
                pairs.append((it.spec(), None))
                continue
            if it.param is not None:
                value = given[it.param.name]
                data = it.encode(value) if it.encode is not None else value
            else:
                data = it.fixed
            pairs.append((it.spec(), data))
        if not pairs:
            raise ValueError(f"nothing to do: set at least one of {', '.join(sorted(set(optional.values())))}")
        return access_request(counter, *pairs)

    def interpret(p: Any, m: Message | None) -> dict:
        r = access_response(p)
        out = results(r, names)
        values: dict[str, Any] = {}
        for it, d, res in zip(items if len(items) == len(r.results) else (), r.data, r.results):
            if it.kind is not _G or not res.ok or d is None:
                continue
            read = it.read or _READERS.get((it.obj.class_id, it.id), plain)
            try:
                values[it.name] = read(d)
            except (Unexpected, AttributeError, IndexError, TypeError, ValueError):
                values[it.name] = plain_value(d)
        if values:
            out["values"] = values
            if out["ok"]:
                out.pop("results", None)  # every one succeeded: the values say it
                out.pop("result", None)
        return out

    define(use_case, target="esme", originator=originator_of(use_case), build=build, interpret=interpret, params=tuple(params),
           requests=request_keys(*((it.kind, it.obj, it.id) for its in alternatives for it in its)),
           response=response or _describe(items))


def _describe(items: Sequence[Item]) -> str:
    kinds = {it.kind for it in items}
    what = "values" if kinds == {_G} else "results"
    return f"ACCESS.response: {len(items)} {what}"


# =============================================================================================
# Protected reads and log range reads
# =============================================================================================


_ORIGINATOR = Param("originator", "eui", bytes.fromhex("90B3D51F30010000"),
                    "the command's originator EUI, named again inside the content; build_content fills it")
_RECIPIENT = Param("recipient", "eui", bytes.fromhex("00DB1234567890A0"),
                   "the command's recipient EUI (the ESME), named again inside the content; build_content fills it")


def _range_params(what: str, days: int) -> tuple[Param, Param]:
    return (Param("start", "datetime", None, f"start of the {what} (UTC); default: {days} day(s) before 'end'"),
            Param("end", "datetime", None, f"end of the {what} (UTC); default: 'start' + {days} day(s), or the end "
                  "of today (the next 00:00 UTC after now)"))


_EPOCH_2000 = _dt.datetime(2000, 1, 1, tzinfo=_dt.timezone.utc)


def _days(start: _dt.datetime | None, end: _dt.datetime | None, days: int, now: _dt.datetime | None):
    """`day_range`, a defaulted start kept at or after 2000 (log times count seconds from 2000)."""
    lo, hi = day_range(start, end, days, now)
    if start is None and lo < _EPOCH_2000:
        lo = _EPOCH_2000
    return lo, hi


def _window(start: _dt.datetime, end: _dt.datetime) -> Data:
    return Data.structure(Data.octet_string(dlms_dt(start)), Data.octet_string(dlms_dt(end)))


def _rows(d: Data, columns: Sequence[str]) -> list[dict]:
    out = []
    for e in elements(d, (DataType.ARRAY, DataType.COMPACT_ARRAY)):
        items = elements(e, (DataType.STRUCTURE,))
        row: dict[str, Any] = {}
        for i, x in enumerate(items):
            name = columns[i] if i < len(columns) else f"value_{i}"
            if name == "time" and x.type is DataType.DOUBLE_LONG_UNSIGNED:
                row[name] = seconds_text(x.value)
            else:
                row[name] = plain(x)
        out.append(row)
    return out


def protected_register(use_case: str, protection: CosemObjectId, obj: CosemObjectId, names: Sequence[str],
                       response: str) -> None:
    """A Get Protected Attributes read of one register object: its structure's members named."""

    def build(counter: int, *, originator: bytes, recipient: bytes) -> bytes:
        return protected_get(counter, protection, ((obj, 2, 0, Data.null()),), originator, recipient)

    def interpret(p: Any, m: Message | None) -> dict:
        r = access_response(p)
        out = results(r)
        if not out["ok"]:
            return out
        plain_ = protected_plaintext(r, 0, out)
        if plain_ is None:
            return out
        value = elements(plain_, (DataType.STRUCTURE,))[0]
        members = value.value if value.type in (DataType.STRUCTURE, DataType.ARRAY) else (value,)
        if len(members) == 1 and members[0].type is DataType.ARRAY:
            out[names[0]] = plain(members[0])
        else:
            out.update({(names[i] if i < len(names) else f"value_{i}"): plain(x) for i, x in enumerate(members)})
        return out

    define(use_case, target="esme", originator=originator_of(use_case), build=build, interpret=interpret, params=(_ORIGINATOR, _RECIPIENT),
           requests=request_keys((_A, protection)), response=response)


def protected_logs(use_case: str, protection: CosemObjectId, logs: Sequence[tuple[CosemObjectId, Sequence[str]]],
                   days: int, what: str, response: str) -> None:
    """A Get Protected Attributes read of one or more logs over a date range; rows named by column."""

    def build(counter: int, *, originator: bytes, recipient: bytes, start: _dt.datetime | None,
              end: _dt.datetime | None, now: _dt.datetime | None) -> bytes:
        window = _window(*_days(start, end, days, now))
        return protected_get(counter, protection, tuple((log, _BUFFER, _RANGE, window) for log, _ in logs),
                             originator, recipient)

    def interpret(p: Any, m: Message | None) -> dict:
        r = access_response(p)
        out = results(r)
        if not out["ok"]:
            return out
        plain_ = protected_plaintext(r, 0, out)
        if plain_ is None:
            return out
        values = elements(plain_, (DataType.STRUCTURE,))
        for (log, columns), v in zip(logs, values):
            out[log.name.lower()] = _rows(v, columns)
        return out

    define(use_case, target="esme", originator=originator_of(use_case), build=build, interpret=interpret,
           params=(_ORIGINATOR, _RECIPIENT, *_range_params(what, days)),
           requests=request_keys((_A, protection)), response=response)


def log_read(use_case: str, log: CosemObjectId, columns: Sequence[str], days: int, what: str, response: str) -> None:
    """A log's buffer by a range_descriptor over UTC time [O RTDS ECS20a/ECS22a/ECS35g]; rows named."""

    def build(counter: int, *, start: _dt.datetime | None, end: _dt.datetime | None,
              now: _dt.datetime | None) -> bytes:
        spec = RequestSpec.get_with_selection(log.class_id, log.obis, _BUFFER, _RANGE,
                                              log_range(*_days(start, end, days, now)))
        return access_request(counter, (spec, None))

    def interpret(p: Any, m: Message | None) -> dict:
        r = access_response(p)
        out = results(r)
        if out["ok"]:
            out["entries"] = _rows(r.data[0], columns)
        return out

    define(use_case, target="esme", originator=originator_of(use_case), build=build, interpret=interpret, params=_range_params(what, days),
           requests=request_keys((_GS, log), (_G, log)), response=response)


# =============================================================================================
# The use cases
# =============================================================================================

# -- common parameters
def _p(name: str, type_: str, default: Any, help_: str = "", **kw: Any) -> Param:
    return Param(name, type_, default, help_, **kw)


_EXEC = _p("execution_date_time", "when", None, "when the change applies: a date-time, immediate (default) or "
           "never (cancels a pending future-dated change)")

# A single action schedule entry (class 10 entries / class 22 execution times) in the A-XDR form
# the RTDS ESME used; defaults below are the RTDS values [O].
_SCHEDULE_MD = bytes.fromhex(
    "0102" "020a" "120000" "03ff" "0906" "00000a8064ff" "120001" "0904" "11000000" "12ffff" "0407fe" "0400"
    "0905" "000001ffff" "0905" "ffffffffff"
    "020a" "120001" "03ff" "0906" "00000a8064ff" "120002" "0904" "16000000" "12ffff" "0407fe" "0400"
    "0905" "000001ffff" "0905" "ffffffffff")
_NO_ENTRIES = bytes.fromhex("0100")


def _schedule_param(name: str, help_: str, default: bytes = _NO_ENTRIES) -> Param:
    return _p(name, "dlms", default, help_ + " (A-XDR array of entries)")


# -- 1.5 / 2.x prepayment ---------------------------------------------------------------------------------

_MODE_CREDIT, _MODE_PREPAYMENT = 1, 2  # account_mode_and_status payment mode [O RTDS ECS02: 1 = credit; 2 I]


def _account_items(mode: int) -> list[Item]:
    return [
        put(OBIS.ACCOUNT_PASSIVE, 2, "payment_mode", None, fixed=Data.structure(Data.enum(mode), Data.enum(1))),
        put(OBIS.ACCOUNT_PASSIVE, 11, "credit_charge_configuration",
            _p("credit_charge_configuration", "dlms", bytes.fromhex(
                "0102" "0203" "0906" "0000130a00ff" "0906" "0000131400ff" "0403e0"
                "0203" "0906" "0000130a00ff" "0906" "0000131404ff" "0403e0"),
               "account credit_charge_configuration: which credits pay which charges (hex of the A-XDR array) [O RTDS ECS02]"),
            _axdr),
        put(OBIS.ACCOUNT_PASSIVE, 13, "activation", _EXEC, _when),
    ]


table("ECS02", _account_items(_MODE_CREDIT), response="signed ACCESS.response: 3 set results")
table("ECS03", _account_items(_MODE_PREPAYMENT), response="signed ACCESS.response: 3 set results")

_MONEY = dict(min=-(2**31), max=2**31 - 1)
_AMOUNT = _p("amount", "int", 0, "amount in 10^-5 GBP (negative takes credit away)", min=-(2**31), max=2**31 - 1)
table("ECS04a", [act(OBIS.TOKEN_CREDIT, 1, "adjust_meter_balance", _AMOUNT, _dl)])
table("ECS04b", [act(OBIS.TOKEN_CREDIT, 2, "reset_meter_balance", fixed=Data.double_long(0))])
# ECS05: the block counter matrix is reset by method 1 of the TOU/block register object [I]
table("ECS05", [act(OBIS.REGISTERS_TOU_BLOCK, 1, "reset_block_counters", fixed=Data.integer(0))])
table("ECS07", [
    act(OBIS.TIME_DEBT_1, 4, "time_debt_1_adjustment", _p("time_debt_1", "int", 0, "time-based debt 1 adjustment, 10^-5 GBP", **_MONEY), _dl),
    act(OBIS.TIME_DEBT_2, 4, "time_debt_2_adjustment", _p("time_debt_2", "int", 0, "time-based debt 2 adjustment, 10^-5 GBP", **_MONEY), _dl),
    act(OBIS.PAYMENT_DEBT, 4, "payment_debt_adjustment", _p("payment_debt", "int", 0, "payment-based debt adjustment, 10^-5 GBP", **_MONEY), _dl),
])


def _prepay_config_items() -> list[Item]:
    """ECS08a [O RTDS]: passive values, then one activation time each (immediate, future, never)."""
    money = dict(min=-(2**31), max=2**31 - 1)
    return [
        put(OBIS.NON_DISABLEMENT_SPECIAL_DAYS_PASSIVE, 2, "non_disablement_special_days",
            _p("non_disablement_special_days", "dlms", _NO_ENTRIES, "special days on which the supply is not disabled "
               "(hex of the A-XDR array of {index, date, day id})"), _axdr),
        put(OBIS.MAX_METER_BALANCE, 4, "max_meter_balance", _p("max_meter_balance", "int", 5000000, "maximum meter balance, 10^-5 GBP", **money), _dl),
        put(OBIS.MAX_CREDIT_THRESHOLD, 4, "max_credit_threshold", _p("max_credit_threshold", "int", 1000000, "maximum credit threshold (top-up), 10^-5 GBP", **money), _dl),
        put(OBIS.NON_DISABLEMENT_SCHEDULE_PASSIVE, 2, "non_disablement_calendar",
            _schedule_param("non_disablement_calendar", "periods in which the supply is not disabled"), _axdr),
        put(OBIS.DEBT_RECOVERY_CAP_PERIOD, 4, "debt_recovery_cap_period",
            _p("debt_recovery_cap_period", "int", 30, "debt recovery rate cap: period (RTDS 30) [I]", min=0, max=65535), _lu),
        put(OBIS.DEBT_RECOVERY_CAP_AMOUNT, 4, "debt_recovery_cap_amount",
            _p("debt_recovery_cap_amount", "int", 604800, "debt recovery rate cap: amount (RTDS 604800) [I]", **money), _dl),
        put(OBIS.EMERGENCY_CREDIT_LIMIT, 4, "emergency_credit_limit", _p("emergency_credit_limit", "int", 200000, "emergency credit limit, 10^-5 GBP", **money), _dl),
        put(OBIS.EMERGENCY_CREDIT_THRESHOLD, 4, "emergency_credit_threshold", _p("emergency_credit_threshold", "int", 300000, "emergency credit threshold, 10^-5 GBP", **money), _dl),
        put(OBIS.NON_DISABLEMENT_SPECIAL_DAYS_SWITCH, 6, "non_disablement_special_days_activation", _EXEC, _when),
        put(OBIS.LOW_CREDIT_THRESHOLD, 4, "low_credit_threshold", _p("low_credit_threshold", "int", 100000, "low credit threshold, 10^-5 GBP", **money), _dl),
        *(put(o, 6, f"{o.name.lower()}_activation", _EXEC, _when) for o in (
            OBIS.MAX_METER_BALANCE, OBIS.MAX_CREDIT_THRESHOLD, OBIS.DEBT_RECOVERY_CAP_PERIOD, OBIS.DEBT_RECOVERY_CAP_AMOUNT,
            OBIS.EMERGENCY_CREDIT_LIMIT, OBIS.EMERGENCY_CREDIT_THRESHOLD, OBIS.LOW_CREDIT_THRESHOLD,
            OBIS.NON_DISABLEMENT_SCHEDULE_SWITCH)),
    ]


table("ECS08a", _prepay_config_items(), response="signed ACCESS.response: 18 set results")
table("ECS08", _prepay_config_items(), response="signed ACCESS.response: 18 set results")
table("ECS09", [act(OBIS.EMERGENCY_CREDIT, 3, "activate_emergency_credit", fixed=Data.integer(0))])

# -- 3.x consumer-facing ---------------------------------------------------------------------------------
table("ECS10", [put(OBIS.SUPPLIER_MESSAGE, 2, "message", _p("message", "str", "Hello from your supplier",
                                                              "message for the consumer (ASCII)"), _ascii)])
def _tenancy_from(now: _dt.datetime | None, given: dict[str, Any]) -> dict[str, Any]:
    if given.get("change_of_tenancy_date") is not None:
        return {}
    if now is None:
        raise ValueError("parameter 'change_of_tenancy_date' defaults to now: pass it, or the caller's clock")
    return {"change_of_tenancy_date": now.replace(microsecond=0)}


table("ECS12", [put(OBIS.CHANGE_OF_TENANCY, 2, "change_of_tenancy",
                    _p("change_of_tenancy_date", "datetime", None,
                       "date-time of the change of tenancy (UTC); default: now (the caller's clock)"), _stamp)],
      now_defaults=_tenancy_from)
table("ECS14", [put(OBIS.PRIVACY_PIN, 2, "privacy_pin_protection", None, fixed=Data.boolean(False))])
table("ECS15a", [act(OBIS.EVENT_LOG, 1, "clear_event_log", fixed=Data.integer(0))])
table("ECS15c", [act(OBIS.ALCS_EVENT_LOG, 1, "clear_alcs_event_log", fixed=Data.integer(0))])
table("ECS16", [put(OBIS.SUPPLIER_CONTACT, 2, "supplier_contact",
                    _p("contact", "str", "Supplier 0800 000 000", "supplier name and telephone number (ASCII)"), _ascii)])

# -- 4.x reads ---------------------------------------------------------------------------------------------
table("ECS17a", [get(OBIS.EXPORT_ENERGY_REGISTER, 2, "export_wh"), get(OBIS.EXPORT_ENERGY_REGISTER, 3, "export_scaler_unit", scaler_unit),
                 get(OBIS.REACTIVE_EXPORT_REGISTER, 2, "reactive_export_varh"),
                 get(OBIS.REACTIVE_EXPORT_REGISTER, 3, "reactive_export_scaler_unit", scaler_unit)])
table("ECS17d", [get(OBIS.TOU_REGISTERS, 2, "tou_registers_wh")])
protected_register("ECS17e", OBIS.TOU_BLOCK_PROTECTION, OBIS.REGISTERS_TOU_BLOCK, ("tou_block_registers_wh",),
                   "ACCESS.response: protected structure{array of TOU and block registers}")
_MD = [get(OBIS.MAX_DEMAND_PERIOD_START, 2, "period_start"), get(OBIS.MAX_DEMAND_PERIOD_END, 2, "period_end")]
table("ECS18a", [get(OBIS.MAX_DEMAND_EXPORT, 2, "max_demand_export_w"), get(OBIS.MAX_DEMAND_EXPORT, 3, "scaler_unit", scaler_unit),
                 get(OBIS.MAX_DEMAND_EXPORT, 5, "max_demand_export_time")])
table("ECS18b", [*_MD,
                 get(OBIS.MAX_DEMAND_IMPORT, 2, "max_demand_import_w"), get(OBIS.MAX_DEMAND_IMPORT, 3, "scaler_unit", scaler_unit),
                 get(OBIS.MAX_DEMAND_IMPORT, 5, "max_demand_import_time"),
                 get(OBIS.MAX_DEMAND_IMPORT_PERIOD, 2, "max_demand_period_w"),
                 get(OBIS.MAX_DEMAND_IMPORT_PERIOD, 3, "period_scaler_unit", scaler_unit),
                 get(OBIS.MAX_DEMAND_IMPORT_PERIOD, 5, "max_demand_period_time"),
                 get(OBIS.MAX_DEMAND_SCHEDULE, 2, "configurable_period")])
protected_register("ECS19", OBIS.PREPAYMENT_PROTECTION, OBIS.PREPAYMENT_REGISTERS,
                   ("meter_balance", "emergency_credit_balance", "accumulated_debt", "time_debt_1", "time_debt_2",
                    "payment_debt"),
                   "ACCESS.response: protected structure of six double-long money registers (10^-5 GBP) [I names]")
_BILLING_COLUMNS = ("time", "import_wh", "tou_registers_wh", "block_1_wh", "block_2_wh", "block_3_wh", "block_4_wh",
                    "meter_balance", "emergency_credit_balance", "accumulated_debt", "time_debt_1", "time_debt_2",
                    "payment_debt")
log_read("ECS20a", OBIS.DEBT_PAYMENT_LOG, ("time", "payment"), 10, "debt payment log range",
         "ACCESS.response: compact-array of {time, payment}")
protected_logs("ECS20b", OBIS.BILLING_LOG_CHANGE_PROTECTION, ((OBIS.BILLING_LOG_CHANGE, _BILLING_COLUMNS),), 150,
               "billing data log range", "ACCESS.response: protected compact-array of billing snapshots")
protected_logs("ECS20c", OBIS.BILLING_LOG_CALENDAR_PROTECTION,
               ((OBIS.BILLING_LOG_CALENDAR, _BILLING_COLUMNS[:7]),
                (OBIS.BILLING_LOG_CALENDAR_PREPAYMENT, ("time",) + _BILLING_COLUMNS[7:])), 120,
               "billing data log range", "ACCESS.response: protected compact-arrays of billing snapshots")
log_read("ECS20d", OBIS.PREPAYMENT_CREDIT_LOG, ("time", "credit", "origin"), 30, "prepayment credit log range",
         "ACCESS.response: compact-array of {time, credit}")
log_read("ECS21b", OBIS.PREPAYMENT_DAILY_READ_LOG, ("time",) + _BILLING_COLUMNS[7:], 2, "prepayment daily read log range",
         "ACCESS.response: compact-array of daily prepayment snapshots")
log_read("ECS21c", OBIS.EXPORT_DAILY_READ_LOG, ("time", "export_wh"), 2, "export daily read log range",
         "ACCESS.response: compact-array of {time, export}")
log_read("ECS22a", OBIS.EXPORT_PROFILE, ("time", "export_wh", "reactive_export_varh"), 1, "half-hour export profile range",
         "ACCESS.response: compact-array of {time, export, reactive export}")
log_read("ECS22c", OBIS.REACTIVE_IMPORT_PROFILE, ("time", "reactive_import_varh"), 1, "half-hour reactive profile range",
         "ACCESS.response: compact-array of {time, reactive import}")
_V1 = [get(OBIS.AVERAGE_RMS_VOLTAGE, 2, "average_rms_voltage"), get(OBIS.SAG_COUNTER, 2, "sag_count"),
       get(OBIS.SWELL_COUNTER, 2, "swell_count"), get(OBIS.SAG_DURATION, 2, "sag_duration_s"),
       get(OBIS.SWELL_DURATION, 2, "swell_duration_s")]
table("ECS23", _V1)
table("ECS23b", [*_V1, get(OBIS.AVERAGE_RMS_VOLTAGE_L2, 2, "average_rms_voltage_l2"),
                 get(OBIS.SAG_COUNTER_L2, 2, "sag_count_l2"), get(OBIS.SWELL_COUNTER_L2, 2, "swell_count_l2"),
                 get(OBIS.AVERAGE_RMS_VOLTAGE_L3, 2, "average_rms_voltage_l3"),
                 get(OBIS.SAG_COUNTER_L3, 2, "sag_count_l3"), get(OBIS.SWELL_COUNTER_L3, 2, "swell_count_l3")])
table("ECS26a", [
    get(OBIS.TIME_DEBT_1, 5, "time_debt_1_charge"), get(OBIS.NON_DISABLEMENT_SPECIAL_DAYS, 2, "non_disablement_special_days"),
    get(OBIS.TIME_DEBT_1, 8, "time_debt_1_period"), get(OBIS.TIME_DEBT_1, 5, "time_debt_1_charge_again"),
    get(OBIS.TIME_DEBT_2, 5, "time_debt_2_charge"), get(OBIS.TIME_DEBT_2, 8, "time_debt_2_period"),
    get(OBIS.TIME_DEBT_2, 5, "time_debt_2_charge_again"), get(OBIS.PAYMENT_DEBT, 13, "payment_debt_recovery_proportion"),
    get(OBIS.MAX_CREDIT_THRESHOLD, 2, "max_credit_threshold"), get(OBIS.DEBT_RECOVERY_THRESHOLD, 2, "debt_recovery_thresholds"),
    get(OBIS.MAX_METER_BALANCE, 2, "max_meter_balance"), get(OBIS.ACCOUNT, 16, "low_credit_threshold"),
    get(OBIS.ACCOUNT, 18, "max_provision"), get(OBIS.ACCOUNT, 19, "max_provision_period"),
    get(OBIS.EMERGENCY_CREDIT, 9, "emergency_credit_limit"), get(OBIS.EMERGENCY_CREDIT, 10, "emergency_credit_threshold"),
    get(OBIS.NON_DISABLEMENT_SCHEDULE, 2, "non_disablement_calendar"),
    get(OBIS.ACCOUNT, 11, "credit_charge_configuration"),
])
_VOLTAGE_CONFIG = [
    get(OBIS.AVERAGE_OVER_VOLTAGE, 4, "average_over_voltage_threshold"), get(OBIS.AVERAGE_OVER_VOLTAGE, 6, "average_over_voltage_period"),
    get(OBIS.AVERAGE_UNDER_VOLTAGE, 4, "average_under_voltage_threshold"), get(OBIS.AVERAGE_UNDER_VOLTAGE, 6, "average_under_voltage_period"),
    get(OBIS.EXTREME_OVER_VOLTAGE, 4, "extreme_over_voltage_threshold"), get(OBIS.EXTREME_OVER_VOLTAGE, 6, "extreme_over_voltage_period"),
    get(OBIS.EXTREME_UNDER_VOLTAGE, 4, "extreme_under_voltage_threshold"), get(OBIS.EXTREME_UNDER_VOLTAGE, 6, "extreme_under_voltage_period"),
    get(OBIS.SWELL_THRESHOLD, 2, "swell_threshold"), get(OBIS.SAG_THRESHOLD, 2, "sag_threshold"),
]
table("ECS26b", _VOLTAGE_CONFIG)
table("ECS26k", [*_VOLTAGE_CONFIG, get(OBIS.SAG_THRESHOLD_L2, 2, "sag_threshold_l2"), get(OBIS.SWELL_THRESHOLD_L2, 2, "swell_threshold_l2"),
                 get(OBIS.SAG_THRESHOLD_L3, 2, "sag_threshold_l3"), get(OBIS.SWELL_THRESHOLD_L3, 2, "swell_threshold_l3")])
table("ECS26c", [get(OBIS.RANDOMISED_OFFSET_LIMIT, 2, "randomised_offset_limit"),
                 get(OBIS.RANDOMISED_OFFSET_PERIOD, 2, "randomisation_period"),
                 get(OBIS.RANDOMISED_OFFSET, 2, "randomised_offset")])
table("ECS26d", [get(OBIS.BILLING_CALENDAR, 4, "billing_calendar")])
table("ECS26l", [get(OBIS.BILLING_CALENDAR, 4, "billing_calendar")])
table("ECS26e", [get(OBIS.DEVICE_IDENTITY, 2, "device_identity"), get(OBIS.DEVICE_TYPE_ID, 2, "device_type"),
                 get(OBIS.DEVICE_FIRMWARE_VERSION, 2, "firmware_version")])
table("ECS26f", [get(OBIS.POWER_THRESHOLDS, 2, "power_thresholds_w")])
table("ECS26j", [get(OBIS.ACCOUNT, 2, "payment_mode")])
table("ECS26m", [get(OBIS.DEVICE_IDENTITY, 2, "device_identity"), get(OBIS.DEVICE_TYPE_ID, 2, "device_type"),
                 get(OBIS.SUPPLY_TAMPER_STATE, 2, "supply_tamper_state")])
table("ECS27", [get(OBIS.LOAD_LIMIT_SUPPLY_STATE, 2, "load_limit_restoration"),
                get(OBIS.LOAD_LIMIT_COUNTER, 2, "load_limit_counter"), get(OBIS.LOAD_LIMIT_COUNTER, 3, "counter_scaler_unit", scaler_unit),
                get(OBIS.VOLTAGE_MONITOR, 4, "load_limit_threshold_w"), get(OBIS.VOLTAGE_MONITOR, 6, "load_limit_period_s"),
                get(OBIS.VOLTAGE_MONITOR, 7, "load_limit_over_period_s")])
table("ECS28a", [  # passive settings and one activation time [I: the future-dated pattern of ECS08a]
    put(OBIS.LOAD_LIMIT_PASSIVE, 4, "load_limit_threshold_w", _p("threshold_w", "int", 6900, "load limit power threshold (W)", min=0, max=2**32 - 1), _dlu),
    put(OBIS.LOAD_LIMIT_PASSIVE, 6, "load_limit_period_s", _p("period_s", "int", 300, "period over the threshold before load limiting (s)", min=0, max=2**32 - 1), _dlu),
    put(OBIS.LOAD_LIMIT_PASSIVE, 7, "load_limit_restore_period_s", _p("restore_period_s", "int", 30, "period under the threshold before restoring (s)", min=0, max=2**32 - 1), _dlu),
    put(OBIS.LOAD_LIMIT_SUPPLY_STATE_PASSIVE, 2, "load_limit_restoration", _p("restore_supply", "bool", False, "restore the supply after load limiting"), _bool),
    put(OBIS.LOAD_LIMIT_SWITCH, 6, "activation", _EXEC, _when),
], response="signed ACCESS.response: 5 set results")
table("ECS28b", [act(OBIS.LOAD_LIMIT_COUNTER, 1, "reset_load_limit_counter", fixed=Data.integer(0))])


def _voltage_sets(phases: int, resets: bool, order: str) -> list[Item]:
    volts = dict(min=0, max=2**32 - 1)
    phase_objs = [(OBIS.RMS_VOLTAGE_PROFILE, OBIS.SAG_THRESHOLD, OBIS.SWELL_THRESHOLD, OBIS.SAG_COUNTER, OBIS.SWELL_COUNTER, ""),
                  (OBIS.RMS_VOLTAGE_PROFILE_L2, OBIS.SAG_THRESHOLD_L2, OBIS.SWELL_THRESHOLD_L2, OBIS.SAG_COUNTER_L2, OBIS.SWELL_COUNTER_L2, "_l2"),
                  (OBIS.RMS_VOLTAGE_PROFILE_L3, OBIS.SAG_THRESHOLD_L3, OBIS.SWELL_THRESHOLD_L3, OBIS.SAG_COUNTER_L3, OBIS.SWELL_COUNTER_L3, "_l3")][:phases]
    period = [put(prof, 4, f"average_rms_period{sfx}", _p(f"average_rms_period{sfx}", "int", 30, f"average RMS voltage measurement period{sfx} (RTDS 30)", **volts), _dlu)
              for prof, *_rest, sfx in phase_objs]
    limits = []
    for obj, name, default in ((OBIS.AVERAGE_OVER_VOLTAGE, "average_over_voltage", 287), (OBIS.AVERAGE_UNDER_VOLTAGE, "average_under_voltage", 180),
                               (OBIS.EXTREME_OVER_VOLTAGE, "extreme_over_voltage", 216), (OBIS.EXTREME_UNDER_VOLTAGE, "extreme_under_voltage", 253)):
        limits.append(put(obj, 4, f"{name}_threshold", _p(f"{name}_threshold", "int", default, f"{name.replace('_', ' ')} threshold (V) (RTDS {default})", **volts), _dlu))
        limits.append(put(obj, 6, f"{name}_period", _p(f"{name}_period", "int", 30, f"{name.replace('_', ' ')} period (s)", **volts), _dlu))
    sag_swell = {}
    for prof, sag, swell, _sc, _wc, sfx in phase_objs:
        sag_swell[f"sag{sfx}"] = put(sag, 2, f"sag_threshold{sfx}", _p(f"sag_threshold{sfx}", "int", 200 if not sfx else 96, f"voltage sag threshold{sfx} (V)", **volts), _dlu)
        sag_swell[f"swell{sfx}"] = put(swell, 2, f"swell_threshold{sfx}", _p(f"swell_threshold{sfx}", "int", 264 if not sfx else 126, f"voltage swell threshold{sfx} (V)", **volts), _dlu)
    reset = [act(c, 1, f"reset_{c.name.lower()}") for _p0, _s, _w, sc, wc, _sfx in phase_objs for c in (sc, wc)]
    if order == "a":  # ECS29a/b: periods, limits, swell then sag (phase 1), then the other phases, resets [O]
        ss = [sag_swell["swell"], sag_swell["sag"]]
        for sfx in ("_l2", "_l3")[:phases - 1]:
            ss += [sag_swell[f"sag{sfx}"], sag_swell[f"swell{sfx}"]]
        return period + limits + ss + (reset if resets else [])
    # ECS29c/d: sag/swell first, then periods, then limits [O]
    ss = [sag_swell["sag"], sag_swell["swell"]]
    for sfx in ("_l2", "_l3")[:phases - 1]:
        ss += [sag_swell[f"sag{sfx}"], sag_swell[f"swell{sfx}"]]
    return ss + period + limits + (reset if resets else [])


table("ECS29a", _voltage_sets(1, True, "a"))
table("ECS29b", _voltage_sets(3, True, "a"))
table("ECS29c", _voltage_sets(1, False, "c"))
table("ECS29d", _voltage_sets(3, False, "c"))
table("ECS29e", [act(OBIS.SAG_COUNTER, 1, "reset_sag_counter"), act(OBIS.SWELL_COUNTER, 1, "reset_swell_counter")])
table("ECS29f", [act(o, 1, f"reset_{o.name.lower()}") for o in (OBIS.SAG_COUNTER, OBIS.SWELL_COUNTER, OBIS.SAG_COUNTER_L2,
                                                                   OBIS.SWELL_COUNTER_L2, OBIS.SAG_COUNTER_L3, OBIS.SWELL_COUNTER_L3)])
_BILLING_DEFAULT = bytes.fromhex("0101" "0202" "0904" "00000000" "0905" "ffffff01ff")  # monthly on the 1st at 00:00 [I]
table("ECS30", [put(OBIS.BILLING_CALENDAR, 4, "billing_calendar", _schedule_param(
    "billing_calendar", "billing calendar execution times {time, date}", _BILLING_DEFAULT), _axdr)])
table("ECS30a", [put(OBIS.BILLING_CALENDAR, 4, "billing_calendar", _schedule_param(
    "billing_calendar", "billing calendar execution times {time, date}, all periodicities", _BILLING_DEFAULT), _axdr)])
table("ECS34", [put(OBIS.POWER_THRESHOLDS, 2, "power_thresholds_w", _p(
    "power_thresholds", "dlms", bytes.fromhex("0203" "0600000fa0" "0600001f40" "0600002ee0"),
    "low / medium / high instantaneous power thresholds (hex of structure of three W values; default 4000, 8000, 12000)"),
    _axdr)])
log_read("ECS35e", OBIS.POWER_EVENT_LOG, ("time", "event_code"), 1, "power event log range",
         "ACCESS.response: compact-array of {time, event code}")
log_read("ECS35f", OBIS.ALCS_EVENT_LOG, ("time", "event_code", "alcs", "data"), 1, "ALCS event log range",
         "ACCESS.response: compact-array of {time, event code, switch, data}")
log_read("ECS35g", OBIS.ALCS_EVENT_LOG, ("time", "event_code", "alcs", "data"), 17, "ALCS event log range",
         "ACCESS.response: compact-array of {time, event code, switch, data}")
table("ECS37", [put(OBIS.MAX_DEMAND_SCHEDULE, 2, "configurable_period", _schedule_param(
    "configurable_period", "maximum demand configurable time period: start and end entries", _SCHEDULE_MD), _axdr)])
table("ECS38", [put(OBIS.RANDOMISED_OFFSET, 2, "randomised_offset_limit",
                    _p("randomised_offset_limit", "int", 900, "randomised offset limit (s)", min=0, max=65535), _lu)])
table("ECS39a", [put(OBIS.MPAN_IMPORT, 2, "mpan", _p("mpan", "str", "1312345678333", "import MPAN (13 digits; a twin-element meter takes two)"), _ascii)])
table("ECS39b", [put(OBIS.MPAN_EXPORT, 2, "export_mpan", _p("export_mpan", "str", "1312345678333", "export MPAN (13 digits)"), _ascii)])
table("ECS40", [get(OBIS.MPAN_IMPORT, 2, "mpan"), get(OBIS.MPAN_EXPORT, 2, "export_mpan")])

# -- 6.14 / 7.x auxiliary load control --------------------------------------------------------------------------
table("ECS46a", [put(getattr(OBIS, f"ALCS_LABEL_{i}"), 2, f"label_{i}",
                     _p(f"label_{i}", "str", f"ALCS_{i}_Description", f"label of ALCS / HCALCS {i}"), _visible) for i in range(1, 6)])
table("ECS46c", [*(put(getattr(OBIS, f"ALCS_HCALCS_{i}_PASSIVE"), 2, f"hcalcs_{i}",
                      _p(f"hcalcs_{i}", "hex", bytes(8), f"EUI-64 of the HCALCS at position {i} (zeros: an ALCS)"), _raw) for i in range(1, 6)),
                 put(OBIS.ALCS_CONFIG_SWITCH, 6, "activation", _EXEC, _when)],
      response="signed ACCESS.response: 6 set results")
_AUX_CALENDAR = bytes.fromhex("0101" "020a" "120001" "03ff" "0906" "00000a0067ff" "121180" "0904" "09000000" "12ffff"
                              "0407f8" "0403e0" "0905" "07df0615ff" "0905" "07df0c15ff")
table("ECS46d", [
    put(OBIS.AUX_SPECIAL_DAYS_PASSIVE, 2, "special_days", _p("special_days", "dlms", bytes.fromhex("0101" "0203" "120001" "0905" "ffff0c19ff" "1101"),
                                                              "auxiliary controller special days (hex of the A-XDR array)"), _axdr),
    put(OBIS.AUX_SCHEDULE_PASSIVE, 2, "calendar", _schedule_param("calendar", "auxiliary controller switching calendar", _AUX_CALENDAR), _axdr),
    put(OBIS.AUX_SPECIAL_DAYS_SWITCH, 6, "special_days_activation", _EXEC, _when),
    put(OBIS.AUX_SCHEDULE_SWITCH, 6, "calendar_activation", _EXEC, _when),
], response="signed ACCESS.response: 4 set results")
_ALCS_SCRIPT = _p("script", "int", 273, "auxiliary switch script (RTDS 273: ALCS 1 on for the boost duration) [O]", min=0, max=65535)
table("ECS47", [put(OBIS.BOOST_DURATION, 2, "boost_duration", _p("duration", "int", 30, "boost / on duration (minutes) [I]", min=0, max=65535), _lu),
                act(OBIS.AUX_SWITCH_SCRIPT_TABLE, 1, "execute", _ALCS_SCRIPT, _lu)])
_ALCS_TIMES = {  # which pair of date-time objects an ECS47a names [O RTDS ECS47a: 121 activate, 117 deactivate, 119 APC]
    "activate": (OBIS.AUX_STATE_START, OBIS.AUX_STATE_END, 5476),
    "deactivate": (OBIS.BOOST_DURATION, OBIS.BOOST_DURATION_2, 4352),
    "apc": (OBIS.APC_INPUT_START, OBIS.APC_INPUT_END, 9010),
}
_AUX_START = _p("start", "datetime", None, "start of the state (UTC); default: now (the caller's clock)")
_AUX_END = _p("end", "datetime", None, "end of the state (UTC); default: 'start' + 1 hour")


def _hour_from(now: _dt.datetime | None, given: dict[str, Any]) -> dict[str, Any]:
    """start: now; end: an hour after start."""
    start = given.get("start")
    if start is None:
        if now is None:
            raise ValueError("parameter 'start' defaults to now: pass it, or the caller's clock")
        start = now.replace(microsecond=0)
    return {"start": start, "end": given.get("end") or start + _dt.timedelta(hours=1)}


class AuxTimes(enum.IntEnum):
    """Which pair of date-time objects an ECS47a names [O RTDS ECS47a variants]."""

    ACTIVATE = 1
    DEACTIVATE = 2
    APC = 3


_AUX_SCRIPT = _p("script", "int", 5476, "auxiliary controller script (RTDS 5476 activate, 4352 deactivate, 9010 APC) [O]",
                 min=0, max=65535)


def _aux_items(start: CosemObjectId, end: CosemObjectId) -> list[Item]:
    return [put(start, 2, "start", _AUX_START, _stamp), put(end, 2, "end", _AUX_END, _stamp),
            act(OBIS.AUX_SWITCH_SCRIPT_TABLE, 1, "execute", _AUX_SCRIPT, _lu)]


table("ECS47a", _aux_items(*_ALCS_TIMES["activate"][:2]),
      extra_params=(Param("switch", "enum", AuxTimes.ACTIVATE, "which times: activate, deactivate or apc [O RTDS variants]",
                          enum=AuxTimes),),
      choose=("switch", {AuxTimes[k.upper()]: _aux_items(a, b) for k, (a, b, _s) in _ALCS_TIMES.items()}),
      now_defaults=_hour_from)
table("ECS47e", [put(OBIS.APC_INPUT_START, 2, "start", _AUX_START, _stamp), put(OBIS.APC_INPUT_END, 2, "end", _AUX_END, _stamp),
                 act(OBIS.AUX_SWITCH_SCRIPT_TABLE, 1, "execute", _p("script", "int", 5477, "APC limit script [I]", min=0, max=65535), _lu)],
      now_defaults=_hour_from)
table("ECS48", [put(OBIS.BLOCK_COUNTER_RESET, 4, "daily_reset", _schedule_param(
    "daily_reset", "daily block counter reset time {time, date}", bytes.fromhex("0101" "0202" "0904" "00000000" "0905" "ffffffffff")), _axdr)])
table("ECS50", [put(OBIS.CIN, 2, "cin", _p("cin", "str", "1234", "customer identification number (ASCII digits)"), _ascii)])
table("ECS57", [act(OBIS.MAX_DEMAND_IMPORT, 1, "reset_max_demand_import"), act(OBIS.MAX_DEMAND_IMPORT_PERIOD, 1, "reset_max_demand_period"),
                act(OBIS.MAX_DEMAND_EXPORT, 1, "reset_max_demand_export")],
      extra_params=(_p("import", "bool", True, "reset the import maximum demand"),
                    _p("period", "bool", True, "reset the configurable-period maximum demand"),
                    _p("export", "bool", True, "reset the export maximum demand")),
      optional={"reset_max_demand_import": "import", "reset_max_demand_period": "period", "reset_max_demand_export": "export"})
_ALCS_READ = [*(get(getattr(OBIS, f"ALCS_LABEL_{i}"), 2, f"label_{i}") for i in range(1, 6)),
              *(get(getattr(OBIS, f"ALCS_HCALCS_{i}"), 2, f"hcalcs_{i}") for i in range(1, 6)),
              get(OBIS.AUX_SPECIAL_DAYS, 2, "special_days"), get(OBIS.AUX_SCHEDULE, 2, "calendar"),
              *(get(getattr(OBIS, f"ALCS_{i}"), 2, f"alcs_{i}_on") for i in range(1, 6))]
table("ECS61a", _ALCS_READ)
table("ECS61c", [get(getattr(OBIS, f"BOOST_BUTTON_{i}"), 2, f"boost_button_alcs_{i}") for i in range(1, 6)])
table("ECS61d", _ALCS_READ[:12])
table("ECS61e", [*(get(getattr(OBIS, f"ALCS_{i}"), 2, f"alcs_{i}_on") for i in range(1, 6)),
                 get(OBIS.BOOST_DURATION, 2, "boost_duration")])
table("ECS62", [put(getattr(OBIS, f"BOOST_BUTTON_{i}"), 2, f"boost_button_alcs_{i}",
                    _p(f"alcs_{i}", "bool", True, f"the boost button controls ALCS {i}"), _bool) for i in range(1, 6)])
protected_logs("ECS66", OBIS.DAILY_CONSUMPTION_PROTECTION, ((OBIS.DAILY_CONSUMPTION_LOG, ("time", "consumption_wh")),), 4,
               "daily consumption log range", "ACCESS.response: protected compact-array of {time, consumption}")
table("ECS81", [put(OBIS.SUPPLY_TAMPER_STATE, 2, "supply_tamper_state",
                    _p("lock_supply", "bool", True, "disable the supply when a tamper is detected"), _bool)])
table("ECS82", [get(OBIS.METER_BALANCE, 2, "meter_balance"), get(OBIS.METER_BALANCE, 3, "scaler_unit", scaler_unit)])

# -- 6.22 alert and event behaviours ------------------------------------------------------------------------------------
for _uc, _obj, _what in (("ECS25a", OBIS.ALERT_BEHAVIOURS_SUPPLIER, "alerts sent to the supplier"),
                         ("ECS25b", OBIS.ALERT_BEHAVIOURS_NETWORK_OPERATOR, "alerts sent to the network operator"),
                         ("ECS25a1", OBIS.EVENT_BEHAVIOURS_HAN, "events sent to HAN devices"),
                         ("ECS25a2", OBIS.EVENT_BEHAVIOURS_AUDIBLE, "events that sound the audible alarm"),
                         ("ECS25a3", OBIS.EVENT_BEHAVIOURS_LOG, "events logged (supplier)"),
                         ("ECS25b3", OBIS.EVENT_BEHAVIOURS_LOG_NETWORK_OPERATOR, "events logged (network operator)")):
    table(_uc, [put(_obj, 2, "behaviours", _p("bits", "ints", (), min=0, max=511, help_=f"numbers of the bits set in the 512-bit mask of {_what} [O layout]: bit n set turns it off for event 0x8000 + n [I]; none set (default, factory): every event"), _mask)])
table("ECS25r1", [get(o, 2, o.name.lower()) for o in (OBIS.ALERT_BEHAVIOURS_SUPPLIER, OBIS.EVENT_BEHAVIOURS_HAN,
                                                     OBIS.EVENT_BEHAVIOURS_AUDIBLE, OBIS.EVENT_BEHAVIOURS_LOG)])
table("ECS25r2", [get(o, 2, o.name.lower()) for o in (OBIS.ALERT_BEHAVIOURS_NETWORK_OPERATOR, OBIS.EVENT_BEHAVIOURS_LOG_NETWORK_OPERATOR)])

# -- 1.1.2 / 1.2.2 / 4.11.2 the second element's tariff (twin element) [I: objects by analogy with ECS01a/b/ECS24]
def _tariff_defaults() -> dict[str, bytes]:
    season = Data.array(Data.structure(Data.octet_string(b"\x01"), Data.octet_string(
        dlms_dt(_dt.datetime(2015, 1, 1, tzinfo=_dt.timezone.utc))), Data.octet_string(b"\x01")))
    week = Data.array(Data.structure(Data.octet_string(b"\x01"), *(Data.unsigned(1) for _ in range(7))))
    day = Data.array(Data.structure(Data.unsigned(1), Data.array(Data.structure(
        Data.octet_string(bytes(4)), Data.obis(OBIS.TARIFF_SWITCHING_SCRIPT_TABLE.obis), Data.long_unsigned(1)))))
    prices = Data.structure(
        Data.structure(Data.integer(3), Data.integer(-5)),
        Data.structure(Data.long_unsigned(OBIS.SECONDARY_IMPORT_REGISTER.class_id), Data.obis(OBIS.SECONDARY_IMPORT_REGISTER.obis),
                       Data.integer(2)),
        Data.array(*(Data.structure(Data.octet_string(bytes((i,))), Data.long(3221 if i == 1 else 0)) for i in range(1, 49))))
    return {"seasons": season.encode(), "week_profiles": week.encode(), "day_profiles": day.encode(),
            "price_matrix": prices.encode()}


_T2 = _tariff_defaults()
_CAL2, _PRICE2 = OBIS.ACTIVITY_CALENDAR_SECONDARY, OBIS.UNIT_CHARGE_SECONDARY
_PRICE2_ITEMS = [put(_PRICE2, 6, "price_matrix", _p("price_matrix", "dlms", _T2["price_matrix"],
                                                    "the second element's unit charge (class 113 unit_charge; default 3.221 p/kWh rate 1)"), _axdr)]
table("ECS01c", [
    put(_CAL2, 7, "seasons", _p("seasons", "dlms", _T2["seasons"], "season_profile_passive of the second element's calendar"), _axdr),
    put(_CAL2, 8, "week_profiles", _p("week_profiles", "dlms", _T2["week_profiles"], "week_profile_table_passive"), _axdr),
    put(_CAL2, 9, "day_profiles", _p("day_profiles", "dlms", _T2["day_profiles"], "day_profile_table_passive"), _axdr),
    *_PRICE2_ITEMS,
    put(_CAL2, 10, "calendar_activation", _EXEC, _when), put(_PRICE2, 7, "price_matrix_activation", _EXEC, _when),
], response="signed ACCESS.response: 6 set results")
table("ECS01d", [*_PRICE2_ITEMS, put(_PRICE2, 7, "price_matrix_activation", _EXEC, _when)],
      response="signed ACCESS.response: 2 set results")
table("ECS24b", [get(_CAL2, 3, "seasons"), get(_CAL2, 4, "week_profiles"), get(_CAL2, 5, "day_profiles"),
                 get(_PRICE2, 5, "price_matrix")])

# the use cases a variant of ESME serves only when it has the element / phases [I]
POLYPHASE_ONLY = frozenset({"ECS23b", "ECS26k", "ECS29b", "ECS29d", "ECS29f"})
TWIN_ONLY = frozenset({"ECS01c", "ECS01d", "ECS24b"})
