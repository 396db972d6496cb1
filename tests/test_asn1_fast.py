"""The ASN.1 fast paths (gbcs/asn1.py `_from_node`, `_walk`, `_scan`, `_read`, `_integer_contents`,
`_bit_string_contents`, the per-class JSON) give what the asn1crypto declarations give: on every
RTDS ASN.1 payload, on mutations of them and on random DER, the typed value (nested `_der`
included) and the verdict of `decode_asn1` are those of the declaration-driven path; `_scan`
refuses what `_walk` refuses with the same error; a value `_read` takes re-encodes to its input up
to length forms (so `decode_asn1` may skip that proof)."""
from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from asn1crypto import core
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import rtds_rows
from gbcs import asn1
from gbcs.asn1 import ASN1_MESSAGE_CODES, DerNode, decode_asn1, decode_der, expected_types
from gbcs.codec import DecodeError
from gbcs.frame import decode_message


def _payloads() -> list[tuple[bytes, int, int]]:
    out = []
    for row in rtds_rows():
        if int(row["messageCode"], 16) in ASN1_MESSAGE_CODES:
            m = decode_message(row["bytes"])
            out.append((m.content, m.message_code, int(m.cra)))
    return out


PAYLOADS = _payloads()


def _deep(value):
    """A value with every nested payload's remembered DER made visible to ==."""
    if isinstance(value, asn1.Asn1Payload):
        fields = tuple((f.name, _deep(getattr(value, f.name))) for f in dataclasses.fields(value))
        return (type(value).__name__, value._der, fields)
    if isinstance(value, tuple):
        return tuple(_deep(v) for v in value)
    return (type(value).__name__, value)


def _declared(cls, data: bytes):
    """The typed value as asn1crypto reads the declarations (the path the fast one stands in for)."""
    return asn1._from_asn1(cls, asn1._asn1crypto(cls._SPEC).load(data, strict=True))


def _reference_decode(data: bytes, code: int, cra: int):
    """decode_asn1 with asn1crypto alone reading the typed value (the method before the fast path)."""
    generic = decode_der(data)
    if len(generic.values) == 1:
        for cls in expected_types(code, cra):
            try:
                obj = _declared(cls, data)
                fresh = asn1._encode_obj(obj, fresh=True)
            except Exception:
                continue
            if fresh != data:
                try:
                    (node,) = asn1._walk(fresh, 0, len(fresh), 0)
                except (DecodeError, ValueError):
                    continue
                if asn1._canonical(node) != asn1._canonical(generic.values[0]):
                    continue
            object.__setattr__(obj, "_der", data)
            return obj
    return generic


def _same_decode(data: bytes, code: int, cra: int) -> None:
    try:
        ours = decode_asn1(data, message_code=code, cra=cra)
    except DecodeError as exc:
        with pytest.raises(DecodeError) as ref:
            _reference_decode(data, code, cra)
        assert str(ref.value) == str(exc)
        return
    ref = _reference_decode(data, code, cra)
    assert type(ours) is type(ref)
    assert _deep(ours) == _deep(ref)


def test_rtds_payloads_take_the_fast_path_with_the_declared_values():
    if not PAYLOADS:
        pytest.skip("RTDS vectors not found (set GBHUB_VECTORS)")
    fast = 0
    for data, code, cra in PAYLOADS:
        (node,) = decode_der(data).values
        for cls in expected_types(code, cra):
            try:
                declared = _declared(cls, data)
            except Exception:
                declared = None
            try:
                value = asn1._from_node(cls, node)
            except asn1._Mismatch:
                continue
            fast += 1
            assert declared is not None and _deep(value) == _deep(declared), cls
        _same_decode(data, code, cra)
    assert fast >= len(PAYLOADS) * 9 // 10  # the RTDS set is plain DER: nearly all of it is fast


_CODES = sorted({(code, cra) for code, cra in asn1._TABLE})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_rtds_payloads_decode_as_declared(data):
    if not PAYLOADS:
        pytest.skip("RTDS vectors not found (set GBHUB_VECTORS)")
    payload, code, cra = data.draw(st.sampled_from(PAYLOADS))
    buf = bytearray(payload)
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(buf) - 1))
        buf[i] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        code, cra = data.draw(st.sampled_from(_CODES))
    _same_decode(bytes(buf), code, cra)


def _der_values():
    """Random DER built from the primitives the declarations use, nested in SEQUENCEs."""
    leaf = st.one_of(
        st.integers(-(2**70), 2**70).map(lambda v: b"\x02" + bytes((len(c := asn1._integer_contents(v)),)) + c),
        st.binary(max_size=12).map(lambda b: b"\x04" + bytes((len(b),)) + b),
        st.sampled_from([b"\x05\x00", b"\x0a\x01\x00", b"\x03\x02\x07\x80", b"\x03\x01\x00",
                         b"\x18\x0f20150101000000Z", b"\x18\x1120150101000000.5Z", b"\x18\x0f20150101000000+",
                         b"\x80\x01\x07", b"\x82\x01\x01", b"\x83\x02\x00\x05", b"\x18\x0f2015010100000aZ",
                         # forms the exact read refuses and the declarations may still take
                         b"\x02\x02\x00\x05", b"\x02\x02\xff\x80", b"\x0a\x02\x00\x01", b"\x05\x01\x00",
                         b"\x03\x02\x00\x80", b"\x03\x02\x06\x80", b"\x03\x02\x07\x81", b"\x80\x02\x00\x07",
                         b"\x02\x81\x01\x05", b"\x04\x81\x01\x00"]),
    )

    def seq(children):
        return st.lists(children, max_size=6).map(lambda xs: b"\x30" + bytes((len(b"".join(xs)),)) + b"".join(xs)
                                                  if len(b"".join(xs)) < 128 else b"\x30\x00")

    return st.recursive(leaf, seq, max_leaves=12)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_der_values(), st.sampled_from(_CODES))
def test_random_der_decodes_as_declared(der, code_cra):
    _same_decode(der, *code_cra)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64), st.sampled_from(_CODES))
def test_random_bytes_decode_as_declared(data, code_cra):
    _same_decode(data, *code_cra)


@given(st.binary(max_size=200))
def test_walk_takes_exactly_the_input(data):
    try:
        nodes = asn1._walk(data, 0, len(data), 0)
    except DecodeError:
        return
    assert b"".join(n.encode() for n in nodes) == data
    for n in nodes:
        assert isinstance(n, DerNode) and n == DerNode(n.tag_class, n.constructed, n.number, n.header, n.contents, n.children)


@given(st.integers(-(2**130), 2**130))
def test_integer_contents_as_asn1crypto(v):
    assert asn1._integer_contents(v) == core.Integer(v).contents


@given(st.integers(0, 2**40))
def test_bit_string_contents_as_asn1crypto(v):
    bits = tuple((v >> i) & 1 for i in range(v.bit_length()))
    assert asn1._bit_string_contents(v) == core.BitString(bits).contents


# ---- _scan (structure check without nodes) and _read (exact typed read off the bytes) ----


def _walk_verdict(data: bytes):
    try:
        return len(asn1._walk(data, 0, len(data), 0))
    except DecodeError as exc:
        return (str(exc), exc.offset, exc.field)


def _scan_verdict(data: bytes):
    try:
        return asn1._scan(data, len(data))
    except DecodeError as exc:
        return (str(exc), exc.offset, exc.field)


def _mutations():
    def mutate(args):
        (payload, _code, _cra), edits, cut = args
        buf = bytearray(payload)
        for i, b in edits:
            buf[i % len(buf)] = b
        return bytes(buf[: max(1, len(buf) - cut)])

    return st.tuples(st.sampled_from(PAYLOADS), st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=4),
                     st.integers(0, 3)).map(mutate)


def _nested_der():
    """DER nested around MAX_DEPTH (constructed values, empty or not, with high tag numbers)."""
    def build(args):
        depth, idents, tail = args
        out = tail
        for i in range(depth):
            ident = idents[i % len(idents)]
            out = ident + asn1.encode_length(len(out)) + out
        return out

    return st.tuples(st.integers(0, asn1.MAX_DEPTH + 3),
                     st.lists(st.sampled_from([b"\x30", b"\xa0", b"\x3f\x81\x00", b"\x31", b"\x3f\x1f"]), min_size=1, max_size=3),
                     st.sampled_from([b"", b"\x05\x00", b"\x30\x00", b"\x02", b"\x30\x80"])).map(build)


@given(st.one_of(st.binary(max_size=200), _der_values(), _nested_der()))
@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_scan_refuses_what_walk_refuses(data):
    assert _scan_verdict(data) == _walk_verdict(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_scan_refuses_what_walk_refuses_on_mutated_rtds(data):
    if not PAYLOADS:
        pytest.skip("RTDS vectors not found (set GBHUB_VECTORS)")
    buf = data.draw(_mutations())
    assert _scan_verdict(buf) == _walk_verdict(buf)


@pytest.mark.parametrize("hexdata", ["020100", "0201000500", "3000020101", "30030201000400", "3003020100300030",
                                     "3f8100003000", "300230003000", "02810100", "3003020100ff"])
def test_scan_counts_top_level_values_as_walk(hexdata):
    data = bytes.fromhex(hexdata)
    assert _scan_verdict(data) == _walk_verdict(data)


def test_scan_takes_the_rtds_payloads():
    for data, _code, _cra in PAYLOADS:
        assert asn1._scan(data, len(data)) == 1


def _exact_read(cls, data: bytes):
    """`_read` as decode_asn1 calls it, or None where it refuses."""
    if asn1._scan(data, len(data)) != 1 or data[0] != asn1._reader(cls)[0]:
        return None
    cs, stop = asn1._contents_at(data, 0)
    try:
        return asn1._read(cls, data, 0, cs, stop)
    except asn1._Mismatch:
        return None


def _check_exact_read(data: bytes, classes) -> int:
    """Where `_read` takes `data` as one of `classes`: the value is `_try`'s (the proof path) and
    re-encodes to `data` up to length forms. Returns how many classes it took."""
    try:
        (node,) = decode_der(data).values
    except (DecodeError, ValueError):
        return 0
    taken = 0
    for cls in classes:
        value = _exact_read(cls, data)
        if value is None:
            continue
        taken += 1
        fresh = asn1._encode_obj(value, fresh=True)
        (fresh_node,) = asn1._walk(fresh, 0, len(fresh), 0)
        assert asn1._canonical(fresh_node) == asn1._canonical(node)
        proved = asn1._try(cls, data, node)
        assert proved is not None and _deep(value) == _deep(proved), cls
    return taken


def test_rtds_payloads_take_the_exact_read():
    if not PAYLOADS:
        pytest.skip("RTDS vectors not found (set GBHUB_VECTORS)")
    taken = sum(_check_exact_read(data, expected_types(code, cra)) for data, code, cra in PAYLOADS)
    assert taken >= len(PAYLOADS) * 9 // 10


_CLASSES = sorted({cls for classes in asn1._TABLE.values() for cls in classes}, key=lambda c: c.__name__)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_exact_read_is_proved_on_mutated_rtds(data):
    if not PAYLOADS:
        pytest.skip("RTDS vectors not found (set GBHUB_VECTORS)")
    _check_exact_read(data.draw(_mutations()), _CLASSES)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_der_values())
def test_exact_read_is_proved_on_random_der(der):
    _check_exact_read(der, _CLASSES)


# ---- to_json: the per-class converters give what the generic conversion gives ----


def _json_reference(value):
    """to_json as written before the per-class converters (field by field through _json_value)."""
    out = {"type": type(value).__name__, "kind": value.KIND}
    for f in dataclasses.fields(value):
        if f.metadata.get("asn1") is not None:
            out[f.name] = _json_reference_value(getattr(value, f.name))
    return out


def _json_reference_value(v):
    if isinstance(v, asn1.Asn1Payload):
        return _json_reference(v)
    if isinstance(v, tuple):
        return [_json_reference_value(x) for x in v]
    return asn1._json_value(v)


def test_rtds_payload_json_as_the_generic_conversion():
    for data, code, cra in PAYLOADS:
        value = decode_asn1(data, message_code=code, cra=cra)
        if isinstance(value, asn1.Asn1Payload):
            assert value.to_json() == _json_reference(value)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_payload_json_as_the_generic_conversion(data):
    if not PAYLOADS:
        pytest.skip("RTDS vectors not found (set GBHUB_VECTORS)")
    buf = data.draw(_mutations())
    code, cra = data.draw(st.sampled_from(_CODES))
    try:
        value = decode_asn1(buf, message_code=code, cra=cra)
    except DecodeError:
        return
    if isinstance(value, asn1.Asn1Payload):
        assert value.to_json() == _json_reference(value)


def _other_forms(value):
    """Copies of a decoded value with one field given in another form a builder may use: a plain
    int for an enumeration, an enumeration (or a bool) for an int, a bytearray for bytes, a naive
    datetime, key usage bits no member names, a list for a tuple."""
    from gbcs.catalogue import DeviceType

    for name, kind, _arg in asn1._meta(type(value)):
        v = getattr(value, name)
        if v is None:
            continue
        if kind == "enum":
            yield dataclasses.replace(value, **{name: int(v)})
            yield dataclasses.replace(value, **{name: DeviceType.ESME})
        elif kind == "int":
            yield dataclasses.replace(value, **{name: DeviceType.GSME})
            yield dataclasses.replace(value, **{name: True})
        elif kind in ("bytes", "eui", "blob"):
            yield dataclasses.replace(value, **{name: bytearray(v)})
        elif kind == "time":
            yield dataclasses.replace(value, **{name: v.replace(tzinfo=None)})
        elif kind == "key_usage":
            yield dataclasses.replace(value, **{name: int(v) | 1 << 12})
        elif kind == "list":
            yield dataclasses.replace(value, **{name: list(v)})
        elif kind == "nested":
            yield from (dataclasses.replace(value, **{name: other}) for other in _other_forms(v))


def test_built_payload_json_as_the_generic_conversion():
    if not PAYLOADS:
        pytest.skip("RTDS vectors not found (set GBHUB_VECTORS)")
    n = 0
    for data, code, cra in PAYLOADS:
        value = decode_asn1(data, message_code=code, cra=cra)
        if isinstance(value, asn1.Asn1Payload):
            for other in _other_forms(value):
                assert other.to_json() == _json_reference(other)
                n += 1
    assert n > 100


# ---- __eq__/__hash__/__repr__ written once in Asn1Payload: as dataclass writes them per class ----

_TWINS: dict = {}


def _twin(value):
    """The same field values in a class `dataclass` writes every method of (one per payload class)."""
    cls = type(value)
    twin_cls = _TWINS.get(cls)
    if twin_cls is None:
        fields = [(f.name, Any, dataclasses.field(compare=f.compare, repr=f.repr)) for f in dataclasses.fields(cls)]
        twin_cls = _TWINS[cls] = dataclasses.make_dataclass(cls.__name__, fields, frozen=True)
    return twin_cls(**{f.name: getattr(value, f.name) for f in dataclasses.fields(cls)})


def test_payload_eq_hash_repr_as_dataclass_writes_them():
    if not PAYLOADS:
        pytest.skip("RTDS vectors not found (set GBHUB_VECTORS)")
    values = [v for data, code, cra in PAYLOADS
              if isinstance(v := decode_asn1(data, message_code=code, cra=cra), asn1.Asn1Payload)]
    values += [other for v in values[:40] for other in _other_forms(v)]
    twins = [_twin(v) for v in values]
    for v, t in zip(values, twins):
        assert repr(v) == repr(t)
        assert hash(v) == hash(t)
        assert v == dataclasses.replace(v) and v != t  # another class is never equal
    equal = 0
    for i in range(len(values)):
        for j in range(len(values)):
            assert (values[i] == values[j]) == (twins[i] == twins[j])
            equal += i != j and values[i] == values[j]
    assert equal  # the RTDS set repeats some payloads
