"""Low-level codec pieces shared by every GBCS structure.

Everything here is sans-IO: bytes in, values out. A `DecodeError` always names the byte offset
(relative to the outermost buffer being decoded) and the field, so a lab engineer can find the bad
byte in a captured frame.
"""
from __future__ import annotations

import dataclasses
from dataclasses import FrozenInstanceError, dataclass, field
from operator import attrgetter


def frozen_dataclass(cls=None, /, *, init: bool = True, repr: bool = True):
    """`@dataclass(frozen=True, slots=True)` made cheaply: gbcs's ~100 decoded-value classes.

    `dataclasses` compiles six functions per frozen class (__init__, __repr__, __eq__, __hash__,
    __setattr__, __delattr__): ~4 M instructions a class on CPython 3.11, about half of `gbhub
    decode`'s start-up. Here only __init__ is compiled, when the class is first constructed;
    equality, hash, repr and immutability are closures over the class's field names, with the
    same behaviour: __eq__ compares the
    `compare` fields when the classes are identical (else NotImplemented), __hash__ hashes them,
    __repr__ shows the `repr` fields as `QualName(a=1, b=2)`, assigning or deleting a field
    raises FrozenInstanceError, copy and pickle go through __getstate__/__setstate__, and
    `dataclasses.fields`, `replace`, `asdict` and `is_dataclass` see an ordinary dataclass.
    """
    def wrap(cls):
        own = set(cls.__dict__)  # methods the class writes itself stay (as with dataclasses)
        if not cls.__dict__.get("__doc__"):  # dataclasses would make one with inspect.signature (~0.3 ms)
            shown = [n for n, a in cls.__dict__.get("__annotations__", {}).items() if not str(a).startswith(("ClassVar", "typing.ClassVar"))]
            cls.__doc__ = f"{cls.__name__}({', '.join(shown)})"
        cls = dataclass(cls, init=False, repr=False, eq=False, slots=True)
        fields = dataclasses.fields(cls)
        names = tuple(f.name for f in fields)
        if init and "__init__" not in own:
            cls.__init__ = _lazy_init(cls, fields)
        compared = _getter(tuple(f.name for f in fields if f.compare))
        hashed = _getter(tuple(f.name for f in fields if (f.compare if f.hash is None else f.hash)))
        shown = tuple(f.name for f in fields if f.repr)
        name_set = frozenset(names)

        def __eq__(self, other):
            if other.__class__ is self.__class__:
                return compared(self) == compared(other)
            return NotImplemented

        def __hash__(self):
            return hash(hashed(self))

        def __setattr__(self, name, value):
            if type(self) is cls or name in name_set:
                raise FrozenInstanceError(f"cannot assign to field {name!r}")
            super(cls, self).__setattr__(name, value)

        def __delattr__(self, name):
            if type(self) is cls or name in name_set:
                raise FrozenInstanceError(f"cannot delete field {name!r}")
            super(cls, self).__delattr__(name)

        def __getstate__(self):
            return [getattr(self, n) for n in names]

        def __setstate__(self, state):
            for n, v in zip(names, state):
                object.__setattr__(self, n, v)

        methods = dict(__eq__=__eq__, __hash__=__hash__, __setattr__=__setattr__, __delattr__=__delattr__,
                       __getstate__=__getstate__, __setstate__=__setstate__)
        if repr:
            methods["__repr__"] = _frozen_repr(shown)
        for key, fn in methods.items():
            if key not in own:
                fn.__qualname__ = f"{cls.__qualname__}.{key}"
                setattr(cls, key, fn)
        return cls

    return wrap if cls is None else wrap(cls)


def _getter(names: tuple[str, ...]):
    """obj -> the tuple of those attributes (dataclasses compares and hashes such tuples)."""
    if not names:
        return lambda obj: ()
    if len(names) == 1:
        get = attrgetter(names[0])
        return lambda obj: (get(obj),)
    return attrgetter(*names)


def _frozen_repr(shown: tuple[str, ...]):
    import reprlib

    @reprlib.recursive_repr()
    def __repr__(self):
        return f"{self.__class__.__qualname__}(" + ", ".join(f"{n}={getattr(self, n)!r}" for n in shown) + ")"

    return __repr__


def _lazy_init(cls: type, fields) -> object:
    """An __init__ that compiles the real one (`_frozen_init`) on the class's first construction
    and hands over to it: compiling is most of a class's cost, and a process uses few of gbcs's
    classes (`gbhub decode` builds most decoded values without __init__)."""
    def __init__(self, *args, **kwargs):
        if cls.__dict__.get("__init__") is __init__:
            cls.__init__ = _frozen_init(cls, fields)
        cls.__dict__["__init__"](self, *args, **kwargs)

    __init__.__qualname__ = f"{cls.__qualname__}.__init__"
    return __init__


def _frozen_init(cls: type, fields) -> object:
    """__init__ as dataclasses writes it for a frozen class: arguments in field order with their
    defaults, default factories called per instance, `init=False` fields set to their defaults,
    then __post_init__."""
    missing = dataclasses.MISSING
    env: dict = {"__set": object.__setattr__, "__no_arg": _NO_ARG}
    params, body = [], []
    for f in fields:
        if f.init:
            if f.default is not missing:
                env[f"__d_{f.name}"] = f.default
                params.append(f"{f.name}=__d_{f.name}")
                value = f.name
            elif f.default_factory is not missing:
                env[f"__f_{f.name}"] = f.default_factory
                params.append(f"{f.name}=__no_arg")
                value = f"__f_{f.name}() if {f.name} is __no_arg else {f.name}"
            else:
                params.append(f.name)
                value = f.name
        elif f.default is not missing:
            env[f"__d_{f.name}"] = f.default
            value = f"__d_{f.name}"
        elif f.default_factory is not missing:
            env[f"__f_{f.name}"] = f.default_factory
            value = f"__f_{f.name}()"
        else:
            continue
        body.append(f"  __set(self, {f.name!r}, {value})")
    if hasattr(cls, "__post_init__"):
        body.append("  self.__post_init__()")
    text = (f"def __make({', '.join(env)}):\n def __init__(self{''.join(', ' + p for p in params)}):\n"
            + "\n".join(" " + line for line in body or ["  pass"]) + "\n return __init__")
    scope: dict = {}
    exec(text, {"__builtins__": __builtins__}, scope)  # noqa: S102 - our own text, from field names
    fn = scope["__make"](**env)
    fn.__qualname__ = f"{cls.__qualname__}.__init__"
    return fn


_NO_ARG = object()  # "argument not given" for fields with a default factory


class GbcsError(ValueError):
    """Base of every error `gbcs` raises on purpose (a ValueError: the input or a value is wrong)."""


class DecodeError(GbcsError):
    """Malformed input. `offset` is the byte offset of the failing field, `field` its name."""

    def __init__(self, message: str, offset: int = 0, field: str = "") -> None:
        super().__init__(message)
        self.offset = offset
        self.field = field

    def shifted(self, by: int, prefix: str = "") -> "DecodeError":
        """The same error seen from an enclosing buffer that starts `by` bytes earlier."""
        name = f"{prefix}.{self.field}" if prefix and self.field else (prefix or self.field)
        return DecodeError(str(self), self.offset + by, name)

    def __str__(self) -> str:  # one line: "offset 12 (field): message"
        base = super().__str__()
        where = f"offset {self.offset}" + (f" ({self.field})" if self.field else "")
        return f"{where}: {base}"


class EncodeError(GbcsError):
    """A value cannot be encoded (out of range, wrong length)."""


class SecurityError(GbcsError):
    """A MAC, signature or decryption check failed, or a key is missing."""


class KeystoreError(GbcsError):
    """A key or certificate cannot be loaded, or does not fit the entity it is filed under."""


@frozen_dataclass
class Node:
    """One line of the annotated tree shown by `gbhub decode --tree`: field, its bytes, meaning."""

    name: str
    raw: bytes = b""
    meaning: str = ""
    children: tuple["Node", ...] = field(default=())


def slot_setters(cls: type, *names: str) -> tuple:
    """Setters of frozen slotted dataclass fields, for decoders that build instances with
    `object.__new__` on hot paths (no `__init__`, no frozen check): one per name, in order."""
    return tuple(cls.__dict__[n].__set__ for n in names)


def read_length(buf: bytes, pos: int, end: int | None = None, what: str = "length", minimal: bool = True) -> tuple[int, int]:
    """The one length codec of `gbcs`: a definite length at `pos` (BER/DER X.690 8.1.3, which the
    DLMS A-XDR variable-length integer and the GBCS frame lengths share), one byte below 0x80,
    else 0x8n and n = 1..4 big-endian bytes. Returns (length, new_pos). `end` bounds the read
    (default: the buffer's end). Only minimal forms are accepted unless `minimal` is False, so
    that every accepted structure re-encodes byte-exactly."""
    if end is None:
        end = len(buf)
    if pos >= end:
        raise DecodeError("truncated", pos, what)
    first = buf[pos]
    if first < 0x80:
        return first, pos + 1
    n = first & 0x7F
    if n == 0 or n > 4:
        raise DecodeError(f"unsupported length form 0x{first:02X}", pos, what)
    stop = pos + 1 + n
    if stop > end:
        raise DecodeError("truncated", pos, what)
    value = int.from_bytes(buf[pos + 1 : stop], "big")
    if minimal and (value < 0x80 or value < (1 << (8 * (n - 1)))):
        raise DecodeError("non-minimal length encoding", pos, what)
    return value, stop


def der_items(buf: bytes, start: int = 0, end: int | None = None) -> list[tuple[int, int, int]]:
    """The DER TLVs side by side in buf[start:end], one level deep, as (identifier octet, contents
    start, contents end): enough to pick fields out of a certificate or key without building a
    tree. Low tag numbers only (X.509 and PKCS#8 use no others); DecodeError on anything else."""
    if end is None:
        end = len(buf)
    items = []
    pos = start
    while pos < end:
        ident = buf[pos]
        if ident & 0x1F == 0x1F:
            raise DecodeError("high tag number", pos, "der")
        length, pos = read_length(buf, pos + 1, end, "der", minimal=False)
        stop = pos + length
        if stop > end:
            raise DecodeError("truncated", pos, "der")
        items.append((ident, pos, stop))
        pos = stop
    return items


def encode_length(n: int) -> bytes:
    """The minimal definite length `read_length` reads."""
    if n < 0x80:
        if n < 0:
            raise EncodeError("negative length")
        return bytes((n,))
    if n < 0x100:
        return bytes((0x81, n))
    if n < 0x10000:
        return b"\x82" + n.to_bytes(2, "big")
    if n < 0x1000000:
        return b"\x83" + n.to_bytes(3, "big")
    if n < 0x100000000:
        return b"\x84" + n.to_bytes(4, "big")
    raise EncodeError("length too large")


def take(buf: bytes, pos: int, n: int, what: str) -> tuple[bytes, int]:
    """`n` bytes at `pos`, or a DecodeError naming `what`."""
    end = pos + n
    if n < 0 or end > len(buf):
        raise DecodeError(f"truncated: need {n} bytes, have {max(0, len(buf) - pos)}", pos, what)
    return buf[pos:end], end


def eui_hex(eui: bytes) -> str:
    """EUI-64 as 16 upper-case hex digits, the form used in DCC tools and file names."""
    return eui.hex().upper()


def parse_eui(text: str | bytes) -> bytes:
    """Accepts 16 hex digits, optionally with '-', ':' or spaces; or 8 raw bytes."""
    if isinstance(text, bytes):
        if len(text) != 8:
            raise ValueError("an EUI-64 is 8 bytes")
        return text
    cleaned = text.replace("-", "").replace(":", "").replace(" ", "")
    try:
        raw = bytes.fromhex(cleaned)
    except ValueError:
        raise ValueError(f"not an EUI-64: {text!r}") from None
    if len(raw) != 8:
        raise ValueError(f"not an EUI-64 (need 16 hex digits): {text!r}")
    return raw


def jsonable(value):
    """Turn decoded values into JSON-ready data: bytes become upper-case hex, dataclasses dicts,
    enums their names. Payload classes may define `to_json()` to override. The way to convert
    is chosen once per type (`gbhub decode --batch` converts millions of values)."""
    conv = _JSON_BY_TYPE.get(type(value))
    if conv is None:
        conv = _json_converter(type(value))
    return conv(value)


_JSON_BY_TYPE: dict = {}
_JSON_PLAIN = frozenset((int, str, bool, float, type(None)))  # JSON already: no conversion


def _json_identity(value):
    return value


def _json_converter(t: type):
    import dataclasses
    import enum

    if isinstance(t, type) and issubclass(t, type):  # a class as a value: no per-type rule
        return _json_identity
    if hasattr(t, "to_json"):
        conv = t.to_json
    elif issubclass(t, (bytes, bytearray, memoryview)):
        def conv(value):
            return bytes(value).hex().upper()
    elif issubclass(t, enum.Enum):
        def conv(value):
            return value._name_  # what .name returns, without the property
    elif dataclasses.is_dataclass(t):
        from operator import attrgetter

        names = tuple(f.name for f in dataclasses.fields(t) if not f.name.startswith("_"))
        tname = t.__name__
        values = attrgetter(*names) if len(names) > 1 else (lambda v: (getattr(v, names[0]),)) if names else (lambda v: ())
        by_type = _JSON_BY_TYPE

        def conv(value):
            out = {"type": tname}
            for name, v in zip(names, values(value)):
                tv = type(v)
                out[name] = v if tv in _JSON_PLAIN else (by_type.get(tv) or _json_converter(tv))(v)
            return out
    elif issubclass(t, dict):
        def conv(value):
            return {str(k): v if type(v) in _JSON_PLAIN else jsonable(v) for k, v in value.items()}
    elif issubclass(t, (list, tuple)):
        def conv(value):
            return [v if type(v) in _JSON_PLAIN else jsonable(v) for v in value]
    else:
        conv = _json_identity
    _JSON_BY_TYPE[t] = conv
    return conv
