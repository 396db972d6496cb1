"""What every use case stands on: `UseCaseDef` and `define` (which registers a definition in
`REGISTRY`), the DLMS content builders several use cases share, and the helpers interpreters read
responses with.

A family module (chf, esme, devicelog) writes one block per use case: its parameters, builder,
interpreter and `define(...)` call with the DLMS requests its content may carry. A builder is
`raw(counter, *, <params>) -> bytes`; one with a `now` argument gets the caller's time (aware UTC
datetime, or None when the caller gave none) and must raise ValueError when it needs `now` for a
default and has none. Nothing here reads a clock.

Confidence tags as in FACTS.md: [O] observed in RTDS, [I] inferred, [U] not found in any source.
"""
from __future__ import annotations

import datetime as _dt
import inspect
from dataclasses import field
from functools import lru_cache
from typing import Any, Callable, Mapping, Sequence

from .. import catalogue
from ..codec import DecodeError, EncodeError, frozen_dataclass, jsonable
from ..dlms import (
    AccessRequest,
    AccessResponse,
    Data,
    DataNotification,
    DataType,
    DlmsDateTime,
    ProtectionParameters,
    RequestSpec,
    decode_apdu,
    decode_compact_array,
    frozen,
    invoke_id_for,
)
from ..frame import CRA, Message, decode_message
from ..obis import OBIS, CosemObjectId
from ..payload import Decrypt, decode_payload
from .params import Param, iso, utc

_EPOCH_2000 = _dt.datetime(2000, 1, 1, tzinfo=_dt.timezone.utc)
_U32 = 0xFFFFFFFF
_DAY = _dt.timedelta(days=1)
_UTC = _dt.timezone.utc
_GET_PROTECTED_ATTRIBUTES = 1  # data protection (class 30) method [O RTDS ECS17b]
_TIME_VALUE = 2  # the UTC time object's attribute: value


# =============================================================================================
# The definition and the registry
# =============================================================================================


@frozen_dataclass
class UseCaseDef:
    """One use case the head-end can send (or, with `build` None, an alert it can read).

    `target` is the device kind the command normally goes to ('esme', 'chf', 'gpf', 'gsme');
    `targets` every kind it may go to. `originator` is 'supplier', 'network_operator' or 'acb'
    (DCC-originated commands, carrying the supplier as supplementary remote party); for an alert, the party it is
    sent to. `utrn`: the originator counter is a top-up counter (low 32 bits zero). `response`
    says what the device answers; `requests` the DLMS requests its content may carry.

    `build(counter, *, now=None, **params)`: `now` is the caller's time (aware datetime), used
    only by time defaults; a use case that needs it and lacks it raises ValueError."""

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
    param_names: frozenset[str] = field(init=False, default=frozenset())  # of `params`, kept for speed

    def __post_init__(self) -> None:
        object.__setattr__(self, "param_names", frozenset(p.name for p in self.params))

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


class Unexpected(Exception):
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


def _check_now(uc: str, now: Any) -> _dt.datetime | None:
    if now is None or (now.__class__ is _dt.datetime and now.tzinfo is _UTC):
        return now
    if not isinstance(now, _dt.datetime) or now.utcoffset() is None:
        raise ValueError(f"{uc}: 'now' must be a timezone-aware datetime (the caller's clock), got {now!r}")
    return now.astimezone(_dt.timezone.utc)


def _make_build(uc: str, params: tuple[Param, ...], raw: Callable[..., bytes], utrn: bool) -> Callable[..., bytes]:
    takes_now = "now" in inspect.signature(raw).parameters

    def build(counter: int, *, now: _dt.datetime | None = None, **params_given: Any) -> bytes:
        c = _check_counter(uc, counter, utrn)
        values = _resolve_params(uc, params, params_given)
        now = _check_now(uc, now)
        if takes_now:
            values["now"] = now
        try:
            return raw(c, **values)
        except ValueError as exc:  # EncodeError included
            text = str(exc)
            raise ValueError(text if text.startswith(f"{uc}:") else f"{uc}: {text}") from None

    build.__name__ = f"build_{uc}"
    build.__doc__ = f"Content of a {uc} command for originator counter `counter` at time `now`."
    return build


def _make_interpret(uc: str, code: int, fn: Callable[[Any, Message | None], dict]) -> Callable[..., dict]:
    def interpret_response(response: Any, *, decrypt: Decrypt | None = None, message: Message | None = None) -> dict:
        return _interpret(uc, code, fn, response, decrypt, message)

    interpret_response.__name__ = f"interpret_{uc}"
    return interpret_response


def request_keys(*items: tuple) -> frozenset[tuple]:
    """(kind, CosemObjectId[, id, ...]) -> the (kind, class id, obis, id|None) keys `UseCaseDef.allows` looks up."""
    out = set()
    for kind, obj, *ids in items:
        for i in ids or (None,):
            out.add((kind, obj.class_id, obj.obis, i))
    return frozenset(out)


REGISTRY: dict[str, UseCaseDef] = {}  # by use case name, in definition order (gbcs.usecases.USE_CASES)


def define(use_case: str, *, target: str, build: Callable[..., bytes] | None, interpret: Callable,
           params: tuple[Param, ...] = (), originator: str = "supplier", targets: tuple[str, ...] = (), utrn: bool = False,
           response: str = "", requests: frozenset[tuple] = frozenset()) -> UseCaseDef:
    """Define use case `use_case` (its catalogue row gives code, name, payload kind and whether it
    is critical) and register it. `build` is `raw(counter, *, <params>[, now]) -> bytes`, or None
    for an alert; `interpret` is `fn(payload, message) -> dict`, raising `Unexpected` (or a
    ValueError, IndexError...) for a shape it does not know."""
    if use_case in REGISTRY:
        raise ValueError(f"use case {use_case} defined twice")
    uc = catalogue.by_use_case(use_case)
    code = uc.message_code
    d = UseCaseDef(
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
        requests=requests,
    )
    REGISTRY[use_case] = d
    return d


# =============================================================================================
# Building content
# =============================================================================================


def get_attribute(obj: CosemObjectId, attribute: int) -> RequestSpec:
    return RequestSpec.get(obj.class_id, obj.obis, attribute)


def set_attribute(obj: CosemObjectId, attribute: int) -> RequestSpec:
    return RequestSpec.set(obj.class_id, obj.obis, attribute)


def invoke(obj: CosemObjectId, method: int) -> RequestSpec:
    return RequestSpec.action(obj.class_id, obj.obis, method)


def access_request(counter: int, *pairs: tuple[RequestSpec, Data | None]) -> bytes:
    specs = [s for s, _ in pairs]
    data = [Data.null() if d is None else d for _, d in pairs]
    return AccessRequest.build(counter, specs, data).encode()


def seconds_2000(dt: _dt.datetime) -> int:
    n = int((utc(dt) - _EPOCH_2000).total_seconds())
    if not 0 <= n <= _U32:
        raise ValueError(f"{iso(dt)} cannot be counted in seconds since 2000 in 32 bits")
    return n


def dlms_dt(dt: _dt.datetime) -> bytes:
    """A UTC DLMS date-time the RTDS way: weekday and deviation unspecified, status 0xFF."""
    return DlmsDateTime.from_datetime(utc(dt)).to_bytes()


def when_bytes(when: "_dt.datetime | str | None") -> bytes:
    if when is None:
        return DlmsDateTime.IMMEDIATE.to_bytes()
    if when == "never":
        return DlmsDateTime.NEVER.to_bytes()
    return dlms_dt(when)  # type: ignore[arg-type]


def end_of_day(now: _dt.datetime) -> _dt.datetime:
    """The next UTC midnight after `now`: the end of `now`'s UTC day."""
    return utc(now).replace(hour=0, minute=0, second=0, microsecond=0) + _DAY


def day_range(start: _dt.datetime | None, end: _dt.datetime | None, days: int,
              now: _dt.datetime | None) -> tuple[_dt.datetime, _dt.datetime]:
    """A range of `days` days: from `start` or up to `end`, whichever is given; with neither, the
    `days` UTC days up to the end of `now`'s day (today included, so a fresh demo reads today)."""
    if end is None:
        if start is not None:
            end = start + days * _DAY
        elif now is None:
            raise ValueError("parameters 'start' and 'end' default to the days up to the end of today: pass "
                             "now= (the caller's clock), or give 'start' or 'end'")
        else:
            end = end_of_day(now)
    if start is None:
        start = end - _dt.timedelta(days=days)
    if end < start:
        raise ValueError(f"parameter 'end' ({iso(end)}) is before 'start' ({iso(start)})")
    return start, end


def span_until(start: _dt.datetime | None, end: _dt.datetime | None, span: _dt.timedelta,
               now: _dt.datetime | None) -> tuple[_dt.datetime, _dt.datetime]:
    """A read range ending at `end` (default: the caller's `now`) and starting at `start` (default:
    `span` before the end): the GBZ log and snapshot reads, whose latest end time is "now"."""
    if end is None:
        if now is None:
            raise ValueError("end defaults to the caller's time; none was given")
        end = now
    return (end - span if start is None else start), end


def protected_get(counter: int, protection: CosemObjectId, objects: tuple[tuple[CosemObjectId, int, int, Data], ...],
                  originator: bytes, recipient: bytes) -> bytes:
    """GBCS Get Protected Attributes: action on the data-protection object (class 30) method 1 with
    structure{array of structure{class long-unsigned, LN, attribute integer, data index 0,
    structure{access selector enum, access parameters}}, array{protection parameters}}; the
    response carries the values encrypted for the requester [O RTDS ECS17b/ECS21a/ECS22b].

    Written by template (every read of a kind differs only in invoke-id and protection parameters):
    the bytes between the two are the general encoder's, once per kind (`_protected_get_middle`);
    tests/test_fast_paths.py checks the result against the general encoding."""
    originator, recipient = bytes(originator), bytes(recipient)
    if len(originator) != 8 or len(recipient) != 8:
        return _protected_get(counter, protection, objects, originator, recipient)
    return (b"\xd9" + invoke_id_for(counter).to_bytes(4, "big") + _protected_get_middle(protection, objects)
            + ProtectionParameters.gbcs_encoding(counter, originator, recipient))


def _protected_get(counter: int, protection: CosemObjectId, objects: tuple[tuple[CosemObjectId, int, int, Data], ...],
                   originator: bytes, recipient: bytes) -> bytes:
    """`protected_get` by the general encoder."""
    params = ProtectionParameters.build(counter, originator, recipient).to_data()
    listed = _protected_objects(objects)
    return access_request(counter, (invoke(protection, _GET_PROTECTED_ATTRIBUTES), Data.structure(listed, Data.array(params))))


@lru_cache(maxsize=1024)
def _protected_get_middle(protection: CosemObjectId, objects: tuple[tuple[CosemObjectId, int, int, Data], ...]) -> bytes:
    """What lies between the invoke-id (ACCESS.request header) and the protection parameters (the
    end) in every `protected_get` of this kind: the general encoding of one, cut there."""
    whole = _protected_get(0, protection, objects, bytes(8), bytes(8))
    tail = ProtectionParameters.gbcs_encoding(0, bytes(8), bytes(8))
    if whole[:1] != b"\xd9" or not whole.endswith(tail):
        raise EncodeError("Get Protected Attributes does not end with the GBCS protection parameters")
    return whole[5 : len(whole) - len(tail)]


@lru_cache(maxsize=1024)  # the same object list on every read of a kind: encode it once
def _protected_objects(objects: tuple[tuple[CosemObjectId, int, int, Data], ...]) -> Data:
    return frozen(Data.array(*(
        Data.structure(Data.long_unsigned(o.class_id), Data.obis(o.obis), Data.integer(attr), Data.long_unsigned(0),
                       Data.structure(Data.enum(selector), parameters))
        for o, attr, selector, parameters in objects)))


def log_range(start: _dt.datetime, end: _dt.datetime) -> Data:
    """Profile-generic range_descriptor (selector 1) over the GBCS UTC time object (OBIS.UTC_TIME,
    attribute 2), times in seconds since 2000 [O RTDS ECS35a/b]."""
    t = OBIS.UTC_TIME
    return Data.structure(
        Data.structure(Data.long_unsigned(t.class_id), Data.obis(t.obis), Data.integer(_TIME_VALUE), Data.long_unsigned(0)),
        Data.double_long_unsigned(seconds_2000(start)), Data.double_long_unsigned(seconds_2000(end)), Data.array())


# =============================================================================================
# Reading responses
# =============================================================================================


def seconds_text(n: int) -> str:
    return iso(_EPOCH_2000 + _dt.timedelta(seconds=n))


def datetime_text(raw: bytes) -> str:
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
        return iso(d.to_datetime())
    except (ValueError, OverflowError):
        return d.text()


def date_text(raw: bytes) -> str:
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


def time_text(raw: bytes) -> str:
    if len(raw) != 4 or raw[0] > 23 or raw[1] > 59 or raw[2] > 59:
        return raw.hex().upper()
    out = f"{raw[0]:02d}:{raw[1]:02d}:{raw[2]:02d}"
    return out + (f".{raw[3]:02d}" if raw[3] not in (0, 0xFF) else "")


def text_or_hex(raw: bytes) -> str:
    if raw and all(0x20 <= b < 0x7F for b in raw):
        return raw.decode("ascii")
    return raw.hex().upper()


def plain_value(d: Data) -> Any:
    """Data as plain JSON values: integers, hex strings, lists."""
    t = d.type
    if t in (DataType.ARRAY, DataType.STRUCTURE):
        return [plain_value(x) for x in d.value]  # type: ignore[union-attr]
    if t is DataType.COMPACT_ARRAY:
        try:
            return [plain_value(x) for x in decode_compact_array(d)]
        except DecodeError:
            return bytes(d.value).hex().upper()  # type: ignore[arg-type]
    j = d.to_json()
    return j["value"]


def as_int(d: Data) -> int:
    v = d.value
    if v.__class__ is int:  # the common case, cheaply (bool is not int here)
        return v
    if d.type in (DataType.ARRAY, DataType.STRUCTURE, DataType.COMPACT_ARRAY) or isinstance(d.value, bool) \
            or not isinstance(d.value, int):
        raise Unexpected(f"expected an integer, got {d.type.name.lower()}")
    return d.value


def octets(d: Data) -> bytes:
    if d.type is not DataType.OCTET_STRING:
        raise Unexpected(f"expected an octet-string, got {d.type.name.lower()}")
    return d.value  # type: ignore[return-value]


def elements(d: Data, kinds: tuple[DataType, ...] = (DataType.ARRAY, DataType.STRUCTURE)) -> tuple[Data, ...]:
    if d.type is DataType.COMPACT_ARRAY and DataType.COMPACT_ARRAY in kinds:
        try:
            return decode_compact_array(d)
        except DecodeError as exc:
            raise Unexpected(f"bad compact-array: {exc}") from None
    if d.type not in kinds:
        raise Unexpected(f"expected {'/'.join(k.name.lower() for k in kinds)}, got {d.type.name.lower()}")
    return d.value  # type: ignore[return-value]


def access_response(payload: Any) -> AccessResponse:
    if not isinstance(payload, AccessResponse):
        raise Unexpected(f"expected a DLMS ACCESS.response, got {type(payload).__name__}")
    return payload


def results(r: AccessResponse, names: Sequence[str] | None = None) -> dict:
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


def protected_plaintext(r: AccessResponse, index: int, out: dict) -> Data | None:
    """The decrypted value of response item `index`, or None (and out says why)."""
    prot = next((p for p in r.protected if p.index == index), None)
    if prot is None:
        if index < len(r.data) and r.data[index].type is not DataType.NULL_DATA:
            out["encrypted"] = False
            return r.data[index]
        raise Unexpected("no protected data in the response")
    out["encrypted"] = True
    out["decrypted"] = prot.plaintext is not None
    if prot.plaintext is None:
        if prot.error:
            out["decryption_error"] = prot.error
        else:
            out["note"] = "values are encrypted: pass decrypt= (or the payload gbcs.analyse / HeadEnd decrypted)"
        return None
    return prot.plaintext


def protected_read(p: Any) -> tuple[dict, Data | None]:
    """A Get Protected Attributes response (ECS17b, ECS21a, ECS22b): the summary so far, and the
    decrypted value of its one item, or None when the read failed or is still encrypted."""
    r = access_response(p)
    out = results(r)
    if not out["ok"]:
        return out, None
    return out, protected_plaintext(r, 0, out)


def single_value(plain: Data) -> Data:
    """Get Protected Attributes plaintext: structure of one value per requested object."""
    items = elements(plain, (DataType.STRUCTURE,))
    if len(items) != 1:
        raise Unexpected(f"expected one protected value, got {len(items)}")
    return items[0]


def action_results(p: Any, m: Message | None) -> dict:
    return results(access_response(p))


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
            out["alert_time"] = datetime_text(payload.alert_time)
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


_CRA_NAMES = {c: c.name.lower() for c in CRA}  # Enum .name is a Python-level property: looked up once


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
        out["cra"] = _CRA_NAMES[message.cra]
        if message.message_code != code:
            out["warning"] = f"message code {message.message_code:04X} is not {uc}'s {code:04X}"
        if message.date_time:
            out["date_time"] = datetime_text(message.date_time)
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
    except (Unexpected, ValueError, TypeError, IndexError, KeyError, AttributeError) as exc:
        out["note"] = f"unexpected {uc} response shape ({exc}); generic payload follows"
        out.update(_generic(payload))
    return out
