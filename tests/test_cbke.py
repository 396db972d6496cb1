"""CBKE maths (gbcs/cbke.py): sect283k1 / sect163k1, ECQV implicit certificates, ECMQV.

Vectors: the sect283k1 example of ZigBee SE 1.2 Annex C.5 (CA public key, two device key pairs,
the initiator's implicit certificate), as published in open ZigBee stacks' test suites; Certicom's
published suite 1 (sect163k1) test certificates with their private and public keys."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gbcs.cbke import (
    SECT163K1,
    SECT283K1,
    CbkeError,
    Certificate283,
    confirmation_macs,
    decode_certificate283,
    ecmqv,
    issue,
    kdf,
    reconstruct_public_key,
)
from gbcs.codec import DecodeError

# Suite 2: the ZigBee SE 1.2 Annex C.5 example (as published in open stacks' test suites).
CA_PUBLIC = bytes.fromhex("0207A445022D9F39F49BDC38380026A27A9E0A1799313AB28C5C1A1C6B605154DB1DFF6752")
PRIVATE_1 = bytes.fromhex("0151CD0DBCB80474BF7AC9FEEBE39C7A32A63518938FCA9754AAE132BC9C73BE94A7E1BE")
PUBLIC_1 = bytes.fromhex("0202F4FA2A3040433C6820299D182A1042E41404E337C57F47716B42DFAF970F1580A04C9B")
PRIVATE_2 = bytes.fromhex("00F2561ADB39EF49C1D62EF5186C6E0C158A5A45BFCE38660931ACC3694592D5ACDE9006")
PUBLIC_2 = bytes.fromhex("03030E56F7ADE866E76372764BA20A9FF1FE4CAE522F94839E70F2ADFC1CA3E97F4DDCAF2E")
CERT_1 = bytes.fromhex(
    "002622A505E8938F270D081112131415161718005292A35BFFFFFFFF0A0B0C0D0E0F1011"
    "880303B4E9DC543A64333C982308022B54E67E2F15F532551B0A11E2E2C1C1D3097A4324E7ED")


#: Certicom's published suite 1 test certificates (CA "TESTSECA"): certificate, private key, public key.
SUITE1_CA = bytes.fromhex("0200FDE8A7F3D1084224962A4E7C54E69AC3F04DA6B8")
SUITE1 = [
    ("02020882B1D7DF05538F37CDD09A4F6B15368998642B002208000000000154455354534543410109108301234567890A",
     "0392BA4AFC2453A49EEBE9BCA8DE73210F02479A4A", "0207D1CA014786B5E552CFD5F04339A2E856F00EAAEF"),
    ("0200CAA15B4BEEDE65C3139A5C3BC40C9AD153854A270022A300001731F354455354534543410109108301234567890A",
     "019FCC486FC46980AB4A612725B36F005EDFF075FE", "020366D312A0ABF55654EAD3E1624C31FAED89C3BB20"),
]


@pytest.mark.parametrize("cert, private, public", SUITE1)
def test_published_suite1_certificates(cert, private, public):
    from gbcs.cbke import decode_certificate163

    c, cert, public = SECT163K1, bytes.fromhex(cert), bytes.fromhex(public)
    assert c.compress(c.multiply(int(private, 16), c.g)) == public
    decoded = decode_certificate163(cert)
    assert decoded.encode() == cert and decoded.issuer == b"TESTSECA"
    assert reconstruct_public_key(cert, decoded.reconstruction, SUITE1_CA, c) == public


def test_suite1_exchange_between_the_published_certificates():
    from gbcs.cbke import SUITE_1, CbkeIdentity, Initiator, Responder

    (c1, d1, _), (c2, d2, _) = SUITE1
    u = CbkeIdentity(bytes.fromhex(c1), int(d1, 16), SUITE1_CA, SUITE_1)
    v = CbkeIdentity(bytes.fromhex(c2), int(d2, 16), SUITE1_CA, SUITE_1)
    i, r = Initiator(u), Responder(v)
    answer = r.on_ephemeral(i.on_initiate_response(r.on_initiate(i.initiate())))
    assert i.on_confirm_response(r.on_confirm(i.on_ephemeral_response(answer))) == r.key
    assert r.peer == bytes.fromhex("0022080000000001")


@pytest.mark.parametrize("curve", [SECT283K1, SECT163K1], ids=lambda c: c.name)
def test_curve_parameters(curve):
    assert curve.on_curve(curve.g)
    assert curve.multiply(curve.n, curve.g) is None


@pytest.mark.parametrize("private, public", [(PRIVATE_1, PUBLIC_1), (PRIVATE_2, PUBLIC_2)])
def test_published_key_pairs(private, public):
    c = SECT283K1
    assert c.compress(c.multiply(int.from_bytes(private, "big"), c.g)) == public
    assert c.compress(c.public_key(public)) == public


def test_published_implicit_certificate_reconstructs_its_public_key():
    cert = decode_certificate283(CERT_1)
    assert cert.encode() == CERT_1 and cert.subject == bytes.fromhex("0A0B0C0D0E0F1011")
    assert reconstruct_public_key(CERT_1, cert.reconstruction, CA_PUBLIC, SECT283K1) == PUBLIC_1


@pytest.mark.parametrize("curve", [SECT283K1, SECT163K1], ids=lambda c: c.name)
def test_two_parties_agree(curve):
    """A test CA issues implicit certificates; ECMQV gives both ends the same keys and MACs."""
    ca_private, ca_point = curve.generate()
    ca_public = curve.compress(ca_point)
    subjects = (bytes.fromhex("02474248400000A2"), bytes.fromhex("02474248400000A6"))
    certs, keys = [], []
    for subject in subjects:
        def build(reconstruction, subject=subject):
            return Certificate283(bytes(8), bytes(8), 0, 0xFFFFFFFF, subject, 0x88, reconstruction).encode()

        cert, d = issue(build, ca_private, curve)
        public = reconstruct_public_key(cert, cert[37:], ca_public, curve)
        assert curve.compress(curve.multiply(d, curve.g)) == public  # ECQV: the private key fits
        certs.append(cert)
        keys.append(d)
    eph_u, eph_v = curve.generate(), curve.generate()
    qe_u, qe_v = curve.compress(eph_u[1]), curve.compress(eph_v[1])
    q_u, q_v = (curve.compress(curve.multiply(d, curve.g)) for d in keys)
    z_u = ecmqv(keys[0], eph_u, q_v, qe_v, curve)
    z_v = ecmqv(keys[1], eph_v, q_u, qe_u, curve)
    assert z_u == z_v
    mac_key, key_data = kdf(z_u)
    assert len(key_data) == 16
    assert confirmation_macs(mac_key, *subjects, qe_u, qe_v) == confirmation_macs(kdf(z_v)[0], *subjects, qe_u, qe_v)


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=40))
def test_points_from_outside_raise_only_cbke_error(data):
    try:
        SECT283K1.decompress(data)
    except CbkeError:
        pass


@given(st.binary(max_size=80))
def test_certificates_from_outside_raise_only_decode_error(data):
    try:
        assert decode_certificate283(data).encode() == data
    except DecodeError:
        pass


def test_the_exchange_and_its_failures():
    from gbcs.cbke import Initiator, KeyEstablishmentFailed, Responder, Terminate, TestCa

    ca = TestCa()
    u, v = ca.issue(bytes.fromhex("02474248400000A6")), ca.issue(bytes.fromhex("02474248400000A2"))
    i, r = Initiator(u), Responder(v)
    answer = r.on_initiate(i.initiate())
    assert r.peer == u.subject
    answer = r.on_ephemeral(i.on_initiate_response(answer))
    mac_u = i.on_ephemeral_response(answer)
    with pytest.raises(KeyEstablishmentFailed) as bad:
        Responder(v).on_confirm(mac_u)  # no exchange in progress
    assert bad.value.status == Terminate.BAD_MESSAGE
    assert i.on_confirm_response(r.on_confirm(mac_u)) == r.key == i.key
    # a wrong confirmation MAC, a foreign CA, an unsupported suite
    i2, r2 = Initiator(u), Responder(v)
    r2.on_ephemeral(i2.on_initiate_response(r2.on_initiate(i2.initiate())))
    with pytest.raises(KeyEstablishmentFailed) as bad:
        r2.on_confirm(bytes(16))
    assert bad.value.status == Terminate.BAD_KEY_CONFIRM
    stranger = TestCa().issue(u.subject)
    with pytest.raises(KeyEstablishmentFailed) as bad:
        Responder(v).on_initiate(Initiator(stranger).initiate())
    assert bad.value.status == Terminate.UNKNOWN_ISSUER
    with pytest.raises(KeyEstablishmentFailed) as bad:
        Responder(v).on_initiate(b"\x01\x00\x0a\x0a" + u.certificate)
    assert bad.value.status == Terminate.UNSUPPORTED_SUITE


def test_a_responder_holding_both_suites_answers_in_the_initiator_s_suite():
    """Suite negotiation: the responder answers in the suite the initiator asked for when it holds
    a certificate of it, else terminates UNSUPPORTED_SUITE; the initiator picks the highest suite
    both KeyEstablishmentSuite bitmaps hold."""
    from gbcs.cbke import (SUITE_1, SUITE_2, Initiator, KeyEstablishmentFailed, Responder, Terminate, TestCa,
                           choose_suite, suite_bitmap)

    device, hub = bytes.fromhex("02474248400000A6"), bytes.fromhex("02474248400000A2")
    cas = {SUITE_1: TestCa(suite=SUITE_1), SUITE_2: TestCa()}
    hub_ids = [cas[SUITE_2].issue(hub), cas[SUITE_1].issue(hub)]
    assert suite_bitmap(hub_ids) == SUITE_1 | SUITE_2 == Responder(hub_ids).suites
    assert (choose_suite(SUITE_1 | SUITE_2, SUITE_1 | SUITE_2), choose_suite(SUITE_1, SUITE_1 | SUITE_2),
            choose_suite(SUITE_2, SUITE_1), choose_suite(SUITE_1 | SUITE_2, 0x0004)) == (SUITE_2, SUITE_1, None, None)
    for suite in (SUITE_1, SUITE_2):
        i, r = Initiator(cas[suite].issue(device)), Responder(hub_ids)
        answer = r.on_initiate(i.initiate())
        assert r.identity.suite == suite and int.from_bytes(answer[:2], "little") == suite
        mac_u = i.on_ephemeral_response(r.on_ephemeral(i.on_initiate_response(answer)))
        assert i.on_confirm_response(r.on_confirm(mac_u)) == r.key == i.key and len(i.key) == 16
    with pytest.raises(KeyEstablishmentFailed) as bad:  # a hub with suite 2 only
        Responder(hub_ids[0]).on_initiate(Initiator(cas[SUITE_1].issue(device)).initiate())
    assert bad.value.status == Terminate.UNSUPPORTED_SUITE


def test_bench_cbke_reports_cbke_s():
    from gbhub.tools.bench import cbke

    figures = cbke(runs=1, progress=lambda s: None)
    assert figures["cbke_s"] > 0 and figures["suite"] == 2


def _reference_product(curve, a: int, b: int) -> int:
    """Schoolbook GF(2^m) product: shift-and-add, reduce one bit at a time."""
    product = 0
    for i in range(b.bit_length()):
        if b >> i & 1:
            product ^= a << i
    while product.bit_length() > curve.m:
        product ^= curve.poly << (product.bit_length() - 1 - curve.m)
    return product


@settings(max_examples=60, deadline=None)
@given(st.sampled_from([SECT283K1, SECT163K1]), st.data())
def test_field_arithmetic_against_the_schoolbook(curve, data):
    a = data.draw(st.integers(0, (1 << curve.m) - 1))
    b = data.draw(st.integers(0, (1 << curve.m) - 1))
    assert curve.mul(a, b) == _reference_product(curve, a, b)
    assert curve.sqr(a) == _reference_product(curve, a, a)
    if a:
        assert curve.mul(a, curve.inv(a)) == 1


@settings(max_examples=10, deadline=None)
@given(st.integers(1, SECT163K1.n - 1), st.integers(1, SECT163K1.n - 1))
def test_scalar_multiplication_is_linear(j, k):
    c = SECT163K1
    assert c.add(c.multiply(j, c.g), c.multiply(k, c.g)) == c.multiply((j + k) % c.n, c.g)
