"""gbcs.codec.frozen_dataclass behaves as `dataclass(frozen=True, slots=True)`: the same
constructor, equality, hash, repr, immutability, copies, pickles and dataclasses helpers."""
from __future__ import annotations

import copy
import dataclasses
import pickle
from dataclasses import FrozenInstanceError, dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gbcs.codec import frozen_dataclass


def _body(ns: dict) -> dict:
    ns.update(__annotations__={"a": "int", "b": "bytes", "c": "tuple", "d": "object", "_raw": "bytes"},
              b=b"", c=field(default_factory=tuple), d=field(default=None, compare=False),
              _raw=field(default=b"", init=False, repr=False, compare=False))

    def __post_init__(self):
        object.__setattr__(self, "_raw", bytes(self.b[:1]))

    ns["__post_init__"] = __post_init__
    return ns


Ours = frozen_dataclass(type("Ours", (), _body({"__module__": __name__, "__qualname__": "Ours"})))
Theirs = dataclass(frozen=True, slots=True)(type("Theirs", (), _body({"__module__": __name__, "__qualname__": "Theirs"})))
globals().update(Ours=Ours, Theirs=Theirs)  # pickle finds them by name

_VALUES = st.fixed_dictionaries({"a": st.integers()}, optional={"b": st.binary(max_size=4), "c": st.tuples(st.integers()),
                                                               "d": st.integers()})


def _same(ours, theirs):
    assert repr(ours).replace("Ours", "X") == repr(theirs).replace("Theirs", "X")
    assert [getattr(ours, f.name) for f in dataclasses.fields(ours)] == [getattr(theirs, f.name) for f in dataclasses.fields(theirs)]


@settings(max_examples=200, deadline=None)
@given(_VALUES, _VALUES)
def test_behaves_as_a_frozen_slotted_dataclass(x, y):
    o1, o2, t1, t2 = Ours(**x), Ours(**y), Theirs(**x), Theirs(**y)
    _same(o1, t1)
    assert (o1 == o2) == (t1 == t2) and (o1 != o2) == (t1 != t2)
    assert (hash(o1) == hash(o2)) == (hash(t1) == hash(t2))
    assert hash(o1) == hash(t1)  # the same tuple of compared fields
    assert (o1 == t1) is False and o1.__eq__(t1) is NotImplemented
    assert dataclasses.asdict(o1) == dataclasses.asdict(t1)
    assert dataclasses.astuple(o1) == dataclasses.astuple(t1)
    _same(dataclasses.replace(o1, a=7), dataclasses.replace(t1, a=7))
    for made in (copy.copy(o1), copy.deepcopy(o1), pickle.loads(pickle.dumps(o1))):
        assert made == o1 and made._raw == o1._raw
    for obj in (o1, t1):
        with pytest.raises(FrozenInstanceError):
            obj.a = 1
        with pytest.raises(FrozenInstanceError):
            del obj.b
    with pytest.raises(FrozenInstanceError):  # (CPython 3.11's own raises TypeError from super() here)
        o1.other = 1
    assert Ours.__slots__ == Theirs.__slots__ and Ours.__match_args__ == Theirs.__match_args__


def test_constructor_errors_match():
    for cls in (Ours, Theirs):
        with pytest.raises(TypeError):
            cls()
        with pytest.raises(TypeError):
            cls(1, b"", (), None, b"")  # _raw is not an argument
        with pytest.raises(TypeError):
            cls(1, e=2)


def test_the_class_may_write_its_own_methods():
    @frozen_dataclass(repr=False)
    class Shown:
        a: int

        def __repr__(self):
            return "shown"

        def __eq__(self, other):
            return True

        __hash__ = object.__hash__

    s = Shown(1)
    assert repr(s) == "shown" and s == 5 and hash(s) == object.__hash__(s)


def test_default_factories_run_per_instance():
    @frozen_dataclass
    class Listed:
        items: list = field(default_factory=list)

    one, two = Listed(), Listed()
    assert one.items == [] and one.items is not two.items and Listed([1]).items == [1]


def test_init_is_compiled_on_first_construction():
    """__init__ is compiled when the class is first constructed (directly or through a plain
    subclass); from then on it is the compiled one, with dataclass's parameters."""
    import inspect

    @frozen_dataclass
    class Late:
        a: int
        b: bytes = b""

    @dataclass(frozen=True, slots=True)
    class Plain:
        a: int
        b: bytes = b""

    class Sub(Late):
        __slots__ = ()

    lazy = Late.__dict__["__init__"]
    assert Sub(3).a == 3 and Sub(3, b"x").b == b"x"
    assert Late.__dict__["__init__"] is not lazy
    assert Late(1) == Late(1, b"") and Late(a=1, b=b"z").b == b"z"
    ours, theirs = inspect.signature(Late).parameters, inspect.signature(Plain).parameters
    assert [(p.name, p.kind, p.default) for p in ours.values()] == [(p.name, p.kind, p.default) for p in theirs.values()]
    with pytest.raises(TypeError):
        Late()
