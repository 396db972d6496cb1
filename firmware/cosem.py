"""The COSEM object model every device serving DLMS uses (ESME, CHF, GPF): interface objects
addressed by (class id, OBIS), with attributes and methods, answering the Get / Set / Action
requests of a GBCS DLMS ACCESS.request generically (`ObjectModel.answer`).

A device projects its state into such objects, so a use case needs no code of its own unless it has
a semantic hook (load switch script, clock adjustment, tariff activation, top-up, CHF device log).
Getters, setters and methods take the device they serve as their first argument (`owner`), so one
`ObjectModel` (objects, attribute descriptors, access rights, factory values) is built once per
device class and variant and shared by every instance — a fleet of 10,000 ESMEs holds one — while
each device's state stays its own (NVM, RAM); `model.bind(device)` is the device's view
(`device.objects`, a `BoundModel` of two references). Failures are `CosemError(result)`
with the DLMS data-access-result / action-result code that goes into the ACCESS.response (and,
rarely, return data that goes with a failure: CCS03's per-entry results).

Also here: profile-generic helpers (compact arrays, as GBCS returns log buffers) and the GBCS
forms of range selective access. Sans-IO: nothing here touches NVM or the clock.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any, Callable, Iterable, Sequence

from gbcs.codec import encode_length
from gbcs.dlms import AccessRequest, AccessResponse, Data, DataType, DlmsDateTime, RequestKind, RequestSpec, obis, obis_text
from gbcs.obis import CosemObjectId

log = logging.getLogger("gbhub.cosem")

# DLMS data-access-result / action-result codes (Green Book; gbcs.dlms names them)
SUCCESS = 0
HARDWARE_FAULT = 1
TEMPORARY_FAILURE = 2
READ_WRITE_DENIED = 3
OBJECT_UNDEFINED = 4
OBJECT_CLASS_INCONSISTENT = 9
OBJECT_UNAVAILABLE = 11
TYPE_UNMATCHED = 12
SCOPE_OF_ACCESS_VIOLATED = 13
OTHER_REASON = 250

# DLMS invoke-id-and-priority flag: stop at the first failing request (GBCS always sets it);
# the rest answer other-reason.
BREAK_ON_ERROR = 0x20000000

# Profile-generic selective access (Blue Book): 1 = range descriptor, 2 = entry descriptor
RANGE_SELECTOR = 1

# GBCS counts "seconds since 2000-01-01T00:00Z" in log buffers (RTDS ECS22b/ECS35a buffers) [O].
EPOCH_2000 = 946684800

# A-XDR type tags used in compact-array type descriptions
DOUBLE_LONG_UNSIGNED = 0x06
OCTET_STRING = 0x09
LONG_UNSIGNED = 0x12
UNSIGNED = 0x11
ENUM = 0x16


class CosemError(Exception):
    """A request on a COSEM object failed; `result` goes into the response, with `data` (return
    data of a failed action, when it has any)."""

    def __init__(self, result: int, detail: str = "", data: Data | None = None) -> None:
        super().__init__(detail or f"result {result}")
        self.result = result
        self.detail = detail
        self.data = data


Getter = Callable[[Any], Data]  # (owner) -> value
Setter = Callable[[Any, Data], None]  # (owner, value)
Selector = Callable[[Any, int, Data], Data]  # (owner, selector, parameters) -> value
Method = Callable[[Any, Data], "Data | None"]  # (owner, parameters) -> return data


@dataclass(slots=True)
class Attribute:
    """One attribute: readable with `get`, writable with `set`, selectively readable with
    `select` (profile buffers); each takes the owning device first (module doc)."""

    get: Getter | None = None
    set: Setter | None = None
    select: Selector | None = None


@dataclass(slots=True)
class CosemObject:
    """An interface object. Attribute 1 (logical_name) is always readable."""

    class_id: int
    obis: bytes
    attributes: dict[int, Attribute] = field(default_factory=dict)
    methods: dict[int, Method] = field(default_factory=dict)
    name: str = ""

    def __post_init__(self) -> None:
        self.obis = obis(self.obis)
        self.attributes.setdefault(1, Attribute(get=lambda _owner, ln=self.obis: Data.octet_string(ln)))

    @classmethod
    def of(cls, oid: CosemObjectId, attributes: dict[int, Attribute] | None = None,
           methods: dict[int, Method] | None = None) -> "CosemObject":
        """The object named by `oid` (`gbcs.obis.OBIS.CLOCK`), with the device's attributes and methods."""
        return cls(oid.class_id, oid.obis, attributes or {}, methods or {}, name=oid.name)

    @property
    def key(self) -> tuple[int, bytes]:
        return (self.class_id, self.obis)

    def __repr__(self) -> str:
        return f"<CosemObject {self.class_id}/{obis_text(self.obis)} {self.name}>"


class ObjectModel:
    """The objects a device class exposes, and generic Get / Set / Action on them for one owner
    (module doc). `activations`: the activation attributes' runs, (class id, OBIS, attribute) ->
    run(owner) (`firmware.future`). Shared: build it once, never per device."""

    def __init__(self, objects: Iterable[CosemObject] = ()) -> None:
        self._objects: dict[tuple[int, bytes], CosemObject] = {}
        self._by_obis: dict[bytes, CosemObject] = {}
        self.activations: dict[tuple[int, bytes, int], Callable[[Any], None]] = {}
        for o in objects:
            self.add(o)

    def add(self, obj: CosemObject) -> CosemObject:
        self._objects[obj.key] = obj
        self._by_obis[obj.obis] = obj
        return obj

    def bind(self, owner: Any) -> "BoundModel":
        return BoundModel(self, owner)

    def __iter__(self):
        return iter(self._objects.values())

    def __len__(self) -> int:
        return len(self._objects)

    def find(self, class_id: int, ln: bytes | str) -> CosemObject:
        ln = obis(ln)
        obj = self._objects.get((class_id, ln))
        if obj is not None:
            return obj
        if ln in self._by_obis:
            raise CosemError(OBJECT_CLASS_INCONSISTENT, f"{obis_text(ln)} is not of class {class_id}")
        raise CosemError(OBJECT_UNDEFINED, f"no object {class_id}/{obis_text(ln)}")

    def get(self, owner: Any, class_id: int, ln: bytes | str, attribute: int,
            selector: int | None = None, parameters: Data | None = None) -> Data:
        attr = self.find(class_id, ln).attributes.get(attribute)
        if attr is None:
            raise CosemError(OBJECT_UNDEFINED, f"no attribute {attribute}")
        if selector:
            if attr.select is None:
                raise CosemError(SCOPE_OF_ACCESS_VIOLATED, f"attribute {attribute} has no selective access")
            return attr.select(owner, selector, parameters if parameters is not None else Data.null())
        if attr.get is None:
            raise CosemError(READ_WRITE_DENIED, f"attribute {attribute} is write-only")
        return attr.get(owner)

    def set(self, owner: Any, class_id: int, ln: bytes | str, attribute: int, value: Data) -> None:
        attr = self.find(class_id, ln).attributes.get(attribute)
        if attr is None:
            raise CosemError(OBJECT_UNDEFINED, f"no attribute {attribute}")
        if attr.set is None:
            raise CosemError(READ_WRITE_DENIED, f"attribute {attribute} is read-only")
        attr.set(owner, value)

    def action(self, owner: Any, class_id: int, ln: bytes | str, method: int, parameters: Data) -> Data | None:
        m = self.find(class_id, ln).methods.get(method)
        if m is None:
            raise CosemError(OBJECT_UNDEFINED, f"no method {method}")
        return m(owner, parameters)

    def serve(self, owner: Any, spec: RequestSpec, value: Data) -> Data | None:
        """One request specification (with its data item): the return value, or CosemError."""
        kind = spec.kind
        if kind is RequestKind.GET:
            return self.get(owner, spec.class_id, spec.obis, spec.id)
        if kind is RequestKind.GET_WITH_SELECTION:
            return self.get(owner, spec.class_id, spec.obis, spec.id, spec.selector, spec.parameters)
        if kind is RequestKind.SET:
            self.set(owner, spec.class_id, spec.obis, spec.id, value)
            return None
        if kind is RequestKind.ACTION:
            return self.action(owner, spec.class_id, spec.obis, spec.id, value)
        raise CosemError(SCOPE_OF_ACCESS_VIOLATED, f"{kind.name} not supported")

    def answer(self, owner: Any, request: AccessRequest, *, break_on_error: bool = False) -> AccessResponse:
        """Serve every request of an ACCESS.request in order: the ACCESS.response. With
        `break_on_error`, a request whose invoke-id sets the break-on-error flag stops at the
        first failure and the rest answer other-reason (as the RTDS CCS01 ERROR response shows);
        without it every request is served on its own."""
        data: list[Data | None] = []
        results: list[int] = []
        stop = break_on_error and bool(request.invoke_id & BREAK_ON_ERROR)
        failed = False
        serve = self.serve
        for spec, value in zip(request.specs, request.data):
            if failed:
                data.append(None)
                results.append(OTHER_REASON)
                continue
            try:
                data.append(serve(owner, spec, value))
                results.append(SUCCESS)
            except CosemError as exc:
                log.debug("%s %s: %s", spec.kind.name, obis_text(spec.obis), exc)
                data.append(exc.data)
                results.append(exc.result)
                failed = stop
        return AccessResponse.answer(request, data, results)


class BoundModel:
    """A shared `ObjectModel` seen from one device (`device.objects`): the same operations
    without the owner argument."""

    __slots__ = ("model", "owner")

    def __init__(self, model: ObjectModel, owner: Any) -> None:
        self.model = model
        self.owner = owner

    @property
    def activations(self) -> dict[tuple[int, bytes, int], Callable[[Any], None]]:
        return self.model.activations

    def __iter__(self):
        return iter(self.model)

    def __len__(self) -> int:
        return len(self.model)

    def find(self, class_id: int, ln: bytes | str) -> CosemObject:
        return self.model.find(class_id, ln)

    def get(self, class_id: int, ln: bytes | str, attribute: int,
            selector: int | None = None, parameters: Data | None = None) -> Data:
        return self.model.get(self.owner, class_id, ln, attribute, selector, parameters)

    def set(self, class_id: int, ln: bytes | str, attribute: int, value: Data) -> None:
        self.model.set(self.owner, class_id, ln, attribute, value)

    def action(self, class_id: int, ln: bytes | str, method: int, parameters: Data) -> Data | None:
        return self.model.action(self.owner, class_id, ln, method, parameters)

    def serve(self, spec: RequestSpec, value: Data) -> Data | None:
        return self.model.serve(self.owner, spec, value)

    def answer(self, request: AccessRequest, *, break_on_error: bool = False) -> AccessResponse:
        return self.model.answer(self.owner, request, break_on_error=break_on_error)


def stored(initial: Data, load: Callable[[Any], Data | None], store: Callable[[Any, Data], None] | None,
           check: Callable[[Data], bool] | None = None) -> Attribute:
    """An attribute kept by the device (`load(owner)`/`store(owner, value)`), `initial` until
    first written; `check` refuses values of the wrong shape (type-unmatched)."""

    def get(owner: Any) -> Data:
        value = load(owner)
        return initial if value is None else value

    def put(owner: Any, value: Data) -> None:
        if check is not None and not check(value):
            raise CosemError(TYPE_UNMATCHED, "value has the wrong shape")
        assert store is not None
        store(owner, value)

    return Attribute(get=get, set=put if store is not None else None)


# ------------------------------------------------------------------------------------ values
def t2000(epoch: float) -> int:
    """Epoch seconds as GBCS log-buffer time (seconds since 2000-01-01Z; double-long-unsigned,
    so clamped to its range)."""
    return max(0, min(0xFFFFFFFF, int(epoch) - EPOCH_2000))


def timestamp(epoch: float) -> Data:
    """A GBCS date-time value (octet-string of the 12-byte DLMS date-time, whole seconds)."""
    return Data.timestamp(datetime.fromtimestamp(int(epoch), timezone.utc))


def datetime_bytes(epoch: float) -> bytes:
    return _second_bytes(int(epoch))


@lru_cache(maxsize=64)  # every dated response in the same second asks for the same one
def _second_bytes(second: int) -> bytes:
    return DlmsDateTime.from_datetime(datetime.fromtimestamp(second, timezone.utc)).to_bytes()


def epoch_of(value: Data) -> float | None:
    """A time given as a DLMS date-time octet-string (or date-time) or as seconds since 2000 (any
    unsigned integer); None when unspecified or malformed."""
    v = value.value
    if value.type in (DataType.OCTET_STRING, DataType.DATE_TIME) and isinstance(v, bytes) and len(v) == 12:
        try:
            return DlmsDateTime.from_bytes(v).to_datetime().timestamp()
        except (ValueError, OverflowError):
            return None
    if value.type in (DataType.DOUBLE_LONG_UNSIGNED, DataType.LONG64_UNSIGNED, DataType.DOUBLE_LONG) and isinstance(v, int):
        return float(v + EPOCH_2000)
    return None


def range_bounds(parameters: Data) -> tuple[float, float]:
    """(from, to) epoch seconds of a GBCS range selective access, inclusive. Accepts the full
    DLMS range_descriptor {restricting object, from, to, selected values} with seconds since 2000
    (RTDS ECS35a/b) and the short {from, to} date-time form (RTDS ECS22b, ECS21a) [O]."""
    if parameters.type is not DataType.STRUCTURE:
        raise CosemError(OTHER_REASON, "range descriptor must be a structure")
    items = parameters.value
    if len(items) == 2:
        lo, hi = items
    elif len(items) == 4:
        lo, hi = items[1], items[2]
    else:
        raise CosemError(OTHER_REASON, "range descriptor has 2 or 4 elements")
    t0, t1 = epoch_of(lo), epoch_of(hi)
    if t0 is None or t1 is None:
        raise CosemError(OTHER_REASON, "range bounds are not times")
    return t0, t1


# ------------------------------------------------------------------------------ compact arrays
TypeDesc = Any  # int tag | ("structure", (TypeDesc, ...)) | ("array", n, TypeDesc)


def structure(*members: TypeDesc) -> TypeDesc:
    return ("structure", tuple(members))


def array(n: int, element: TypeDesc) -> TypeDesc:
    return ("array", n, element)


def type_description(desc: TypeDesc) -> bytes:
    if isinstance(desc, int):
        return bytes((desc,))
    if desc[0] == "structure":
        return bytes((0x02, len(desc[1]))) + b"".join(type_description(d) for d in desc[1])
    _, n, element = desc
    return b"\x01" + n.to_bytes(2, "big") + type_description(element)


_FIXED = {DOUBLE_LONG_UNSIGNED: 4, LONG_UNSIGNED: 2, UNSIGNED: 1, ENUM: 1, 0x05: 4, 0x10: 2, 0x0F: 1, 0x15: 8, 0x14: 8}
_SIGNED = {0x05, 0x10, 0x0F, 0x14}


def _append_untagged(desc: TypeDesc, value: Any, out: bytearray) -> None:
    if isinstance(desc, int):
        if desc == OCTET_STRING:
            raw = bytes(value)
            out += encode_length(len(raw))
            out += raw
            return
        size = _FIXED[desc]
        out += int(value).to_bytes(size, "big", signed=desc in _SIGNED)
        return
    if desc[0] == "structure":
        members = desc[1]
        if len(value) != len(members):
            raise ValueError(f"structure of {len(members)} needs {len(members)} values, got {len(value)}")
        for d, v in zip(members, value):
            _append_untagged(d, v, out)
        return
    _, n, element = desc
    if len(value) != n:
        raise ValueError(f"array of {n} needs {n} values, got {len(value)}")
    for v in value:
        _append_untagged(element, v, out)


def compact_array(desc: TypeDesc, rows: Sequence[Any]) -> Data:
    """A DLMS compact-array (how GBCS returns profile and log buffers): one type description, then
    the untagged values of every row. Integers are Python ints, octet strings bytes, structures
    and arrays sequences."""
    contents = bytearray()
    for row in rows:
        _append_untagged(desc, row, contents)
    return Data.compact_array(type_description(desc) + encode_length(len(contents)) + bytes(contents))


__all__ = [
    "Attribute", "BoundModel", "CosemError", "CosemObject", "ObjectModel", "stored", "compact_array", "structure", "array",
    "type_description", "range_bounds", "epoch_of", "t2000", "timestamp", "datetime_bytes", "EPOCH_2000",
    "RANGE_SELECTOR", "BREAK_ON_ERROR", "SUCCESS", "HARDWARE_FAULT", "TEMPORARY_FAILURE", "READ_WRITE_DENIED", "OBJECT_UNDEFINED",
    "OBJECT_CLASS_INCONSISTENT", "OBJECT_UNAVAILABLE", "TYPE_UNMATCHED", "SCOPE_OF_ACCESS_VIOLATED", "OTHER_REASON",
    "DOUBLE_LONG_UNSIGNED", "OCTET_STRING", "LONG_UNSIGNED", "UNSIGNED", "ENUM",
]
