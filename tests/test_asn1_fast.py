"""The ASN.1 fast path (gbcs/asn1.py `_from_node`, `_walk`, `_integer_contents`,
`_bit_string_contents`) gives what the asn1crypto declarations give: on every RTDS ASN.1 payload,
on mutations of them and on random DER, the typed value (nested `_der` included) and the verdict
of `decode_asn1` are those of the declaration-driven path."""
from __future__ import annotations

import dataclasses

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
    return asn1._from_asn1(cls, cls._SPEC.load(data, strict=True))


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
                         b"\x80\x01\x07", b"\x82\x01\x01", b"\x83\x02\x00\x05", b"\x18\x0f2015010100000aZ"]),
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
