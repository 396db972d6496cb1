"""Frames and security against the DCC reference vectors, plus property tests of the frame codec."""
from __future__ import annotations

import base64
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import VECTORS, rtds_rows, vectors_dir
from gbcs import security
from gbcs.analyse import analyse
from gbcs.codec import DecodeError
from gbcs.frame import CRA, GbtBlock, Message, Reassembler, decode, decode_gbt_block, decode_message, segment

ROWS = rtds_rows()
RTDS_ACB = bytes.fromhex("90B3D51F30000002")


def _id(row):
    return row["file"].split("/")[-1]


@pytest.mark.parametrize("row", ROWS, ids=_id)
def test_rtds_decodes_reencodes_and_verifies(row, rtds_keystore):
    data = row["bytes"]
    msg = decode_message(data)
    assert msg.encode() == data
    assert f"{msg.message_code:04X}" == row["messageCode"]
    assert msg.cra.name == row["cra"].upper()
    assert msg.originator_counter == int(row["originatorCounter"])
    assert msg.originator.hex().upper() == row["originator"]
    assert msg.recipient.hex().upper() == row["recipient"]
    result = analyse(data, rtds_keystore, bytes.fromhex(row["acb"]))
    assert result.payload_error is None
    assert result.encrypted == ("decrypted" if row["encryptedContent"].startswith("decrypted") else "none")
    assert result.payload.encode() == msg.content
    expected_mac = row["mac"].split()[0]  # "absent (no General Ciphering wrapper)" -> absent
    assert result.mac == expected_mac
    expected_sig = {"null": "empty"}.get(row["signature"].split()[0], row["signature"].split()[0])
    assert result.signature == expected_sig


def test_rtds_present():
    vectors_dir()
    assert len(ROWS) >= 679


def _ka(name):
    from cryptography.hazmat.primitives import serialization

    return serialization.load_pem_private_key((VECTORS / "keys" / name).read_bytes(), None)


def test_kdf_known_answers():
    vectors_dir()
    from cryptography.hazmat.primitives.asymmetric import ec

    acb = _ka("rtds/90b3d51f30000002-ka.key")
    supplier = _ka("rtds/90b3d51f30010000-ka.key")
    device = _ka("device-test/00db1234567890a0-ka.key")
    supplier_eui = bytes.fromhex("90B3D51F30010000")
    esme = bytes.fromhex("00DB1234567890A0")
    z_cmd = acb.exchange(ec.ECDH(), device.public_key())
    assert security.kdf(z_cmd, supplier_eui, 1, 0x0000000100000000, esme).hex().upper() == "6A93E360717394015DF93E031218C9A6"
    z_rsp = supplier.exchange(ec.ECDH(), device.public_key())
    assert security.kdf(z_rsp, esme, 2, 0x0000000100000000, supplier_eui).hex().upper() == "03FD30815577C49EB7E3834B63EF8302"
    assert security.kdf(z_rsp, esme, 3, 0x7D1, supplier_eui).hex().upper() == "558FB1FA6660AF0D9E8365C47804B8FA"


def _extra():
    path = VECTORS / "extra.json"
    return json.loads(path.read_text()) if path.is_file() else []


@pytest.mark.parametrize("example", _extra(), ids=lambda e: e["name"][:60])
def test_extra_examples(example):
    from gbhub.tools.inputs import parse_frame_text
    from gbhub.tools.keys import load_keystore

    data = parse_frame_text(example["hex"])
    folders = [VECTORS / "keys" / "rtds"]
    if example.get("keys"):
        folders.append(VECTORS / example["keys"])
    ks = load_keystore(*folders)
    result = analyse(data, ks, bytes.fromhex(example["acb"]))
    assert result.message.encode() == data
    expect = example.get("expect", {})
    if "mac" in expect:
        assert result.mac == expect["mac"]
    if "signature" in expect:
        assert result.signature == expect["signature"]
    if "signatureLength" in expect:
        assert len(result.message.signature) == int(expect["signatureLength"], 16)


# -- encoder round trips and tampering -------------------------------------------------------

eui = st.binary(min_size=8, max_size=8)
counter = st.integers(min_value=0, max_value=2**64 - 1)


@st.composite
def messages(draw):
    ext = draw(st.sampled_from(["none", "id", "id+ctr", "id+ctr+orig", "cert"]))
    kwargs = {}
    if ext != "none":
        kwargs["supplementary_remote_party_id"] = draw(eui)
    if ext in ("id+ctr", "id+ctr+orig", "cert"):
        kwargs["supplementary_remote_party_counter"] = draw(counter)
    if ext == "id+ctr+orig":
        kwargs["supplementary_originator_counter"] = draw(counter)
    if ext == "cert":
        body = draw(st.binary(min_size=8, max_size=300))  # a real certificate is never 8 bytes
        from gbcs.codec import encode_length

        kwargs["remote_party_ka_certificate"] = b"\x30" + encode_length(len(body)) + body
    mac = draw(st.one_of(st.none(), st.binary(min_size=12, max_size=12)))
    sig_choices = [st.just(b""), st.binary(min_size=64, max_size=64)]
    if mac is None:
        sig_choices.append(st.none())
    return Message(
        cra=draw(st.sampled_from(list(CRA))),
        originator_counter=draw(counter),
        originator=draw(eui),
        recipient=draw(eui),
        message_code=draw(st.integers(0, 0xFFFF)),
        content=draw(st.binary(max_size=600)),
        date_time=draw(st.one_of(st.none(), st.binary(min_size=12, max_size=12))),
        signature=draw(st.one_of(*sig_choices)),
        mac=mac,
        **kwargs,
    )


@settings(max_examples=300, deadline=None)
@given(messages())
def test_built_messages_decode_to_same_values(m):
    data = m.encode()
    back = decode_message(data)
    assert back == m
    assert back.encode() == data


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
def test_random_bytes_only_raise_decode_error(data):
    try:
        decode(data)
    except DecodeError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_rtds_frames_only_raise_decode_error(data):
    if not ROWS:
        pytest.skip("no vectors")
    row = data.draw(st.sampled_from(ROWS))
    frame = bytearray(row["bytes"])
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        pos = data.draw(st.integers(0, max(0, len(frame) - 1)))
        if op == "flip" and frame:
            frame[pos] ^= data.draw(st.integers(1, 255))
        elif op == "cut":
            del frame[pos:]
        else:
            frame.insert(pos, data.draw(st.integers(0, 255)))
    try:
        m = decode(bytes(frame))
    except DecodeError:
        return
    if isinstance(m, Message):
        assert m.encode() == bytes(frame)


def test_decode_error_names_offset_and_field():
    with pytest.raises(DecodeError) as exc:
        decode_message(bytes.fromhex("DF0904"))
    assert exc.value.offset == 0
    with pytest.raises(DecodeError) as exc:
        decode_message(bytes.fromhex("DF0904" + "00" * 40))
    assert exc.value.offset == 2 and exc.value.field == "cra"
    assert "offset 2 (cra)" in str(exc.value)


def _own_keys():
    from cryptography.hazmat.primitives.asymmetric import ec

    return {name: ec.generate_private_key(ec.SECP256R1()) for name in ("acb_ka", "sup_ds", "dev_ka", "dev_ds")}


KEYS = _own_keys()


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_tampering_any_byte_breaks_mac_or_signature(data):
    from cryptography.hazmat.primitives.asymmetric import ec

    secret = KEYS["acb_ka"].exchange(ec.ECDH(), KEYS["dev_ka"].public_key())
    m = Message(
        cra=CRA.COMMAND,
        originator_counter=1000,
        originator=bytes.fromhex("90B3D51F30010000"),
        recipient=bytes.fromhex("00DB1234567890A0"),
        message_code=0x004F,
        content=bytes.fromhex("D9200003E80001030009 00000A006AFF01 0112 0033".replace(" ", "")),
        signature=b"",
    )
    import dataclasses

    m = dataclasses.replace(m, signature=security.sign(KEYS["sup_ds"], m.signed_bytes()))
    m = dataclasses.replace(m, mac=b"\0" * 12)
    m = dataclasses.replace(m, mac=security.compute_mac(secret, m))
    frame = bytearray(m.encode())
    back = decode_message(bytes(frame))
    assert security.check_mac(secret, back)
    assert security.check_signature(KEYS["sup_ds"].public_key(), back)
    pos = data.draw(st.integers(0, len(frame) - 1))
    frame[pos] ^= data.draw(st.integers(1, 255))
    try:
        t = decode_message(bytes(frame))
    except DecodeError:
        return
    ok_mac = security.check_mac(secret, t)
    ok_sig = bool(t.signature) and security.check_signature(KEYS["sup_ds"].public_key(), t)
    assert not (ok_mac and ok_sig)
    assert not ok_mac  # the MAC covers every byte of the General-Signing APDU and itself


# -- GBT ---------------------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(messages(), st.integers(1, 200), st.randoms(use_true_random=False))
def test_gbt_segment_and_reassemble_any_order(m, size, rnd):
    data = m.encode()
    blocks = segment(data, size)
    assert blocks[-1].last and all(not b.last for b in blocks[:-1])
    wire = [b.encode() for b in blocks]
    for w, b in zip(wire, blocks):
        assert decode_gbt_block(w) == b
        assert isinstance(decode(w), GbtBlock)
    rnd.shuffle(wire)
    r = Reassembler()
    results = [r.add(decode_gbt_block(w)) for w in wire + wire[:1]]
    done = [x for x in results if x is not None]
    assert done == [data]
    assert r.pending <= 1


def test_reassembler_is_bounded():
    r = Reassembler(max_partial=3)
    for i in range(10):
        r.add(GbtBlock(CRA.RESPONSE, i, b"\1" * 8, b"\2" * 8, 0x27, 1, b"x"))
    assert r.pending == 3


def test_encrypted_part_round_trip():
    key = bytes(range(16))
    orig = bytes.fromhex("00DB1234567890A3")
    block = security.encrypt_part(key, orig, b"hello world")
    assert block[:5] == b"\x31\x00\x00\x00\x00" and len(block) == 5 + 11 + 12
    assert security.decrypt_part(key, orig, block) == b"hello world"
    bad = bytearray(block)
    bad[7] ^= 1
    with pytest.raises(security.SecurityError):
        security.decrypt_part(key, orig, bytes(bad))


def test_counter_store_strictly_greater():
    store = security.CounterStore()
    party = b"\1" * 8
    assert store.accept(party, 5)
    assert not store.accept(party, 5)
    assert not store.accept(party, 4)
    assert store.accept(party, 6)
    assert store.last(party) == 6
    assert store.accept(b"\2" * 8, 1)


@given(st.binary(min_size=16, max_size=16), st.binary(min_size=8, max_size=8), st.binary(max_size=300),
       st.integers(0, 10_000), st.integers(1, 255))
@settings(max_examples=200)
def test_encrypted_part_matches_gcm_and_any_flip_is_refused(key, orig, plaintext, where, flip):
    """decrypt_part reads GCM with a 12-byte tag through AESGCM (keystream + tag re-check): it must
    agree with a plain Cipher GCM decryption and refuse every altered byte."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    block = security.encrypt_part(key, orig, plaintext)
    assert security.decrypt_part(key, orig, block) == plaintext
    dec = Cipher(algorithms.AES(key), modes.GCM(orig + bytes(4), block[-12:], min_tag_length=12)).decryptor()
    dec.authenticate_additional_data(security.ENCRYPTED_AAD)
    assert dec.update(block[5:-12]) + dec.finalize() == plaintext
    bad = bytearray(block)
    bad[5 + where % (len(block) - 5)] ^= flip  # ciphertext or tag
    with pytest.raises(security.SecurityError):
        security.decrypt_part(key, orig, bytes(bad))
