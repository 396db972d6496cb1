"""The JSON of decoded values (`Data.to_json`, `gbcs.codec.jsonable`) after its shortcuts for
plain leaves and attrgetter field access: equal to the rules written out plainly, on random DLMS
Data trees (including ones decoded from random bytes) and random dataclass trees."""
from __future__ import annotations

import dataclasses
import enum
import json
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from gbcs.codec import DecodeError, jsonable
from gbcs.dlms import BitString, Data, DataType, decode_data
from test_dlms import data_values


def _data_json_reference(d: Data):
    t, v = d.type, d.value
    if t is DataType.ARRAY or t is DataType.STRUCTURE:
        jv = [_data_json_reference(x) for x in v]
    elif isinstance(v, BitString):
        jv = v.bits
    elif isinstance(v, (bytes, bytearray)):
        jv = bytes(v).hex().upper()
    elif isinstance(v, float) and not math.isfinite(v):
        jv = repr(v)
    else:
        jv = v
    name = t.name.lower().replace("_", "-") if isinstance(t, DataType) else f"type {t!r}"
    return {"type": name, "value": jv}


@settings(max_examples=300, deadline=None)
@given(data_values)
def test_data_to_json_as_the_plain_rules(d):
    assert json.dumps(d.to_json()) == json.dumps(_data_json_reference(d))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=60))
def test_decoded_data_to_json_as_the_plain_rules(raw):
    try:
        d = decode_data(raw)
    except DecodeError:
        return
    assert json.dumps(d.to_json()) == json.dumps(_data_json_reference(d))


class Colour(enum.Enum):
    RED = 1


class Level(enum.IntEnum):
    HIGH = 7


@dataclasses.dataclass(frozen=True)
class One:
    a: object


@dataclasses.dataclass(frozen=True)
class Many:
    a: object
    b: object
    _hidden: object = None
    c: object = None


@dataclasses.dataclass(frozen=True)
class Empty:
    pass


def _jsonable_reference(value):
    if hasattr(type(value), "to_json") and not isinstance(value, type):
        return value.to_json()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex().upper()
    if isinstance(value, enum.Enum):
        return value.name
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {"type": type(value).__name__}
        for f in dataclasses.fields(value):
            if not f.name.startswith("_"):
                out[f.name] = _jsonable_reference(getattr(value, f.name))
        return out
    if isinstance(value, dict):
        return {str(k): _jsonable_reference(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable_reference(v) for v in value]
    return value


_leaves = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=5),
                    st.binary(max_size=4), st.just(Colour.RED), st.just(Level.HIGH), st.just(Empty()))
_values = st.recursive(
    _leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(st.one_of(st.text(max_size=3), st.integers()), inner, max_size=3),
        inner.map(One), st.tuples(inner, inner, inner, inner).map(lambda t: Many(*t)),
    ),
    max_leaves=15,
)


@settings(max_examples=400, deadline=None)
@given(_values)
def test_jsonable_as_the_plain_rules(value):
    assert json.dumps(jsonable(value)) == json.dumps(_jsonable_reference(value))  # True is not 1 here


# -- JSON fragments of recurring subtrees (gbcs.dlms.json_fragments, `gbhub decode --batch`) ------

import orjson  # noqa: E402

from gbcs.dlms import AccessRequest, AccessResponse, RequestSpec, ResponseSpec, decode_apdu, frozen, json_fragments  # noqa: E402


def _with_fragments(fn):
    before = json_fragments(orjson.Fragment, orjson.dumps)
    try:
        return fn()
    finally:
        json_fragments(*before)


@settings(max_examples=300, deadline=None)
@given(data_values)
def test_fragments_write_the_same_json(d):
    """Decoded twice (the second decode shares its small subtrees with the first), frozen, and
    converted three times (a fragment from the second time on): orjson writes the plain bytes."""
    plain = orjson.dumps(_data_json_reference(d))
    raw = d.encode()
    trees = [decode_data(raw), decode_data(raw), frozen(d), Data.structure(frozen(d), frozen(d))]

    def written():
        return [orjson.dumps(t.to_json()) for t in trees for _ in range(3)]

    out = _with_fragments(written)
    if d.type in (DataType.ARRAY, DataType.STRUCTURE):
        assert isinstance(_with_fragments(lambda: [trees[2].to_json() for _ in range(2)])[1], orjson.Fragment)
    assert out[:9] == [plain] * 9
    assert out[9:] == [orjson.dumps({"type": "structure", "value": [_data_json_reference(d)] * 2})] * 3
    assert written() == out  # and fragments off again: plain dicts
    assert json.dumps(trees[0].to_json()) == json.dumps(_data_json_reference(d))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=60))
def test_fragments_of_random_bytes_write_the_same_json(raw):
    try:
        d = decode_data(raw)
    except DecodeError:
        return
    plain = orjson.dumps(_data_json_reference(d))
    assert _with_fragments(lambda: [orjson.dumps(decode_data(raw).to_json()) for _ in range(3)]) == [plain] * 3


def test_batch_encoder_makes_lines_with_fragments_again_for_json():
    """A line orjson refuses (an integer beyond 64 bits) is made again without fragments and
    written by `json`, compact the same way."""
    from gbhub.tools.decode import _line_encoder

    shared = frozen(Data.structure(Data.long_unsigned(5), Data.octet_string(b"\x01\x02\x03\x04")))

    def make():
        return {"line": 1, "big": 2**70, "data": [shared.to_json(), shared.to_json()]}

    encode = _line_encoder()
    line = _with_fragments(lambda: encode(make(), make))
    assert line == (json.dumps(make(), separators=(",", ":")) + "\n").encode()
    assert json.loads(line)["data"][1] == _data_json_reference(shared)


_specs = st.one_of(
    st.builds(lambda c, o, a: RequestSpec.get(c, o, a), st.integers(0, 2), st.binary(min_size=6, max_size=6), st.integers(0, 2)),
    st.builds(lambda c, o, a: RequestSpec.set(c, o, a), st.integers(0, 2), st.binary(min_size=6, max_size=6), st.integers(0, 2)),
    st.builds(lambda c, o, a: RequestSpec.action(c, o, a), st.integers(0, 2), st.binary(min_size=6, max_size=6), st.integers(0, 2)),
    st.builds(lambda o, s, p: RequestSpec.get_with_selection(7, o, 2, s, p), st.binary(min_size=6, max_size=6),
              st.integers(0, 2), data_values),
)
_results = st.builds(lambda k, r: k(r), st.sampled_from([ResponseSpec.get, ResponseSpec.set, ResponseSpec.action]),
                     st.sampled_from([0, 1, 3, 250, 255]))


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**64 - 1), st.lists(st.tuples(_specs, data_values, _results), min_size=1, max_size=3))
def test_fragments_of_apdus_write_the_same_json(counter, rows):
    """Whole ACCESS.request and .response APDUs (specifications and results memoised by the
    decoder), decoded and converted three times with fragments on: the bytes of the plain JSON."""
    request = AccessRequest.build(counter, [r[0] for r in rows], [r[1] for r in rows])
    response = AccessResponse.build(counter, [r[1] for r in rows], [r[2] for r in rows],
                                    request_specs=[r[0] for r in rows])
    for apdu in (request, response):
        raw = apdu.encode()
        plain = orjson.dumps(decode_apdu(raw).to_json())
        assert _with_fragments(lambda: [orjson.dumps(decode_apdu(raw).to_json()) for _ in range(3)]) == [plain] * 3
