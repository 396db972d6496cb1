"""tools.pki: the private test PKI (hierarchy, certificate profiles, files, CLI) and GBCS
messages signed and MAC'd with its keys."""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtensionOID, NameOID

from gbcs.codec import DecodeError
from gbcs.frame import CRA, Message, decode_message
from gbcs.keystore import HARDWARE_MODULE_NAME, NAME_RE, X500_UNIQUE_IDENTIFIER, certificate_device_eui, certificate_org_eui
from gbcs.security import check_mac, check_signature, compute_mac, sign
from gbhub.tools.keys import load_keystore
from gbhub.tools.pki import (
    DEFAULT_EUIS,
    DEVICE_POLICY,
    DEVICE_TYPES,
    HW_TYPE,
    NO_EXPIRY,
    ORGANISATION_POLICY,
    ROLE_CODES,
    PkiError,
    add_device,
    hardware_module_name,
    init_pki,
    load_pki,
    register,
    run,
)

ROOT = Path(__file__).resolve().parent.parent
DEVICES = {t: bytes.fromhex(f"02474248400000{0xA0 + i:02X}") for i, t in enumerate(DEVICE_TYPES)}
ESME = DEVICES["esme"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pki")
    init_pki(path)
    for kind, eui in DEVICES.items():
        add_device(path, eui, kind)
    return path


@pytest.fixture(scope="module")
def pki(folder):
    return load_pki(folder)


# -- files and keystore ------------------------------------------------------------------------
def test_files_have_dcc_names(folder):
    names = {p.name for p in folder.iterdir() if p.is_file()}
    expected = {"pki.json"}
    for role, eui in DEFAULT_EUIS.items():
        for usage in (["ds", "ka", "pp-ka"] if role == "supplier" else ["ds", "ka"]):
            expected |= {f"{eui.hex()}-{usage}.pem", f"{eui.hex()}-{usage}.key"}
    for eui in DEVICES.values():
        for usage in ("ds", "ka"):
            expected |= {f"{eui.hex()}-{usage}.pem", f"{eui.hex()}-{usage}.key"}
    assert names == expected
    assert all(NAME_RE.match(n) for n in names - {"pki.json"})
    assert {p.name for p in (folder / "ca").iterdir()} == {f"{n}.{k}" for n in ("root", "device-ca", "org-ca") for k in ("pem", "key")}
    for p in list(folder.glob("*.key")) + list((folder / "ca").glob("*.key")):
        assert p.stat().st_mode & 0o077 == 0, p


def test_keystore_loads_roles_and_devices(folder):
    ks = load_keystore(folder)
    for role, eui in DEFAULT_EUIS.items():
        assert ks.role(eui) == ROLE_CODES[role]
        assert not ks.is_device(eui)
        for usage in ("ds", "ka"):
            assert ks.certificate(eui, usage) is not None and ks.private_key(eui, usage) is not None
    sup = DEFAULT_EUIS["supplier"]
    assert ks.certificate(sup, "pp-ka") is not None and ks.private_key(sup, "pp-ka") is not None
    for eui in DEVICES.values():
        assert ks.is_device(eui) and ks.role(eui) is None
    # the certificate's public key matches the private key next to it
    for eui in ks.euis():
        for usage in ("ds", "ka", "pp-ka"):
            slot = ks.slot(eui, usage)
            if slot is not None:
                assert slot.certificate.public_key() == slot.private_key.public_key()


def test_load_pki_manifest(pki):
    assert pki.supplier == DEFAULT_EUIS["supplier"]
    assert pki.acb == DEFAULT_EUIS["acb"]
    assert pki.network_operator == DEFAULT_EUIS["network_operator"]
    assert pki.wan_provider == DEFAULT_EUIS["wan_provider"]
    assert pki.recovery == DEFAULT_EUIS["recovery"]
    assert pki.transitional_cos == DEFAULT_EUIS["transitional_cos"]
    assert pki.eui_of(2) == pki.eui_of("supplier") == pki.supplier
    assert pki.eui_of(4) == pki.acb
    assert pki.role_name(pki.acb) == "acb" and pki.role_name(ESME) is None
    assert pki.devices == {eui: kind for kind, eui in DEVICES.items()}
    assert pki.device_type(DEVICES["gsme"]) == "gsme"
    with pytest.raises(PkiError):
        pki.eui_of("plumber")
    with pytest.raises(PkiError):
        pki.eui_of(99)
    manifest = json.loads((pki.folder / "pki.json").read_text())
    assert manifest["roles"]["supplier"]["eui"] == "0247424830010000"


def test_default_euis_are_ours():
    assert len(set(DEFAULT_EUIS.values())) == len(DEFAULT_EUIS)
    for eui in DEFAULT_EUIS.values():
        assert eui[:4] == bytes.fromhex("02474248")
        assert eui[0] & 0x02 and not eui[0] & 0x01  # locally administered, unicast
        assert not eui.hex().startswith(("90b3d51f", "00db1234"))


# -- certificate chains and profiles -----------------------------------------------------------
def test_chains_verify(pki):
    root, dca, oca = pki.root_ca, pki.device_ca, pki.org_ca
    root.verify_directly_issued_by(root)
    dca.verify_directly_issued_by(root)
    oca.verify_directly_issued_by(root)
    ks = pki.keystore
    for eui in DEFAULT_EUIS.values():
        for usage in ("ds", "ka"):
            cert = ks.certificate(eui, usage)
            cert.verify_directly_issued_by(oca)
            assert pki.verify(cert)
    for eui in DEVICES.values():
        for usage in ("ds", "ka"):
            cert = ks.certificate(eui, usage)
            cert.verify_directly_issued_by(dca)
            assert pki.verify(cert)
            with pytest.raises(ValueError):
                cert.verify_directly_issued_by(oca)
    for ca in (root, dca, oca):
        bc = ca.extensions.get_extension_for_class(x509.BasicConstraints)
        assert bc.critical and bc.value.ca


def test_foreign_certificates_do_not_verify(pki, tmp_path):
    other = init_pki(tmp_path / "other")  # same CA names, different keys
    assert not pki.verify(other.certificate(DEFAULT_EUIS["supplier"], "ds"))
    rtds = Path(os.environ.get("GBHUB_VECTORS", ROOT.parent / "shared" / "vectors")) / "keys" / "rtds" / "90b3d51f30010000-ds.pem"
    if rtds.is_file():
        assert not pki.verify(x509.load_pem_x509_certificate(rtds.read_bytes()))


def _ku(cert):
    ext = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert ext.critical
    ku = ext.value
    flags = {
        "digital_signature": ku.digital_signature,
        "content_commitment": ku.content_commitment,
        "key_encipherment": ku.key_encipherment,
        "data_encipherment": ku.data_encipherment,
        "key_agreement": ku.key_agreement,
        "key_cert_sign": ku.key_cert_sign,
        "crl_sign": ku.crl_sign,
    }
    return {k for k, v in flags.items() if v}


def _key_ids(cert, issuer):
    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    assert len(ski) == 8 and len(aki) == 8
    assert aki == issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest


def _policies(cert):
    ext = cert.extensions.get_extension_for_class(x509.CertificatePolicies)
    assert ext.critical
    return [p.policy_identifier for p in ext.value]


def test_organisation_profile(pki):
    ks = pki.keystore
    for role, eui in DEFAULT_EUIS.items():
        for usage in (["ds", "ka", "pp-ka"] if role == "supplier" else ["ds", "ka"]):
            cert = ks.certificate(eui, usage)
            assert cert.version == x509.Version.v3
            assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey) and cert.public_key().curve.name == "secp256r1"
            assert _ku(cert) == ({"digital_signature"} if usage == "ds" else {"key_agreement"})
            ous = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
            assert [a.value for a in ous] == [f"{ROLE_CODES[role]:02X}"]
            uid = cert.subject.get_attributes_for_oid(X500_UNIQUE_IDENTIFIER)
            assert len(uid) == 1 and uid[0].value == b"\x00" + eui  # BIT STRING, 0 unused bits
            assert certificate_org_eui(cert) == eui
            assert cert.issuer == pki.org_ca.subject
            assert [a.value for a in cert.issuer.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)] == ["07"]
            assert _policies(cert) == [ORGANISATION_POLICY]
            _key_ids(cert, pki.org_ca)
            nb, na = cert.not_valid_before_utc, cert.not_valid_after_utc
            assert na == nb.replace(year=nb.year + 10) - dt.timedelta(seconds=1)
            with pytest.raises(x509.ExtensionNotFound):
                cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
            # DER of the unique identifier as in the RTDS certificates: 03 09 00 <eui>
            assert b"\x06\x03\x55\x04\x2d\x03\x09\x00" + eui in cert.tbs_certificate_bytes


def test_device_profile(pki):
    ks = pki.keystore
    for eui in DEVICES.values():
        for usage in ("ds", "ka"):
            cert = ks.certificate(eui, usage)
            assert len(cert.subject) == 0
            assert cert.issuer == pki.device_ca.subject
            cn = pki.device_ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
            assert len(cn) == 4
            assert cert.not_valid_after_utc == NO_EXPIRY
            assert _ku(cert) == ({"digital_signature"} if usage == "ds" else {"key_agreement"})
            san = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
            assert san.critical and len(san.value) == 1
            other = san.value[0]
            assert isinstance(other, x509.OtherName) and other.type_id == HARDWARE_MODULE_NAME
            assert other.value == hardware_module_name(eui)
            assert other.value == bytes.fromhex("3019060d2a863a0001848fb90f010202010408") + eui
            assert certificate_device_eui(cert) == eui
            assert _policies(cert) == [DEVICE_POLICY]
            _key_ids(cert, pki.device_ca)


def test_hw_type_oid_encoding():
    assert hardware_module_name(b"\x00" * 8)[2:17] == bytes.fromhex("060d2a863a0001848fb90f01020201")
    assert HW_TYPE.dotted_string == "1.2.826.0.1.8641679.1.2.2.1"


# -- GBCS messages with our keys ---------------------------------------------------------------
@pytest.fixture(scope="module")
def critical_command(pki):
    ks = pki.keystore
    unsigned = Message(
        cra=CRA.COMMAND,
        originator_counter=0x0000000100000123,
        originator=pki.supplier,
        recipient=ESME,
        message_code=0x0001,
        content=bytes.fromhex("D920000123000103000F0000010000FF0201010900"),
        signature=b"\x00" * 64,
    )
    signature = sign(ks.private_key(pki.supplier, "ds"), unsigned.signed_bytes())
    signed = dataclasses.replace(unsigned, signature=signature)
    acb_secret = ks.private_key(pki.acb, "ka").exchange(ec.ECDH(), ks.public_key(ESME, "ka"))
    mac = compute_mac(acb_secret, signed)
    return dataclasses.replace(signed, mac=mac).encode()


@pytest.fixture(scope="module")
def device_view(pki):
    """What the ESME checks with: its own KA private key × the ACB KA public key, and the
    supplier's DS certificate."""
    ks = pki.keystore
    secret = ks.private_key(ESME, "ka").exchange(ec.ECDH(), ks.public_key(pki.acb, "ka"))
    return secret, ks.public_key(pki.supplier, "ds")


def test_signed_maced_command_verifies(critical_command, device_view, pki):
    secret, supplier_ds = device_view
    msg = decode_message(critical_command)
    assert msg.encode() == critical_command
    assert msg.originator == pki.supplier and msg.recipient == ESME
    assert check_mac(secret, msg)
    assert check_signature(supplier_ds, msg)
    # the wrong parties' keys do not verify it
    ks = pki.keystore
    wrong = ks.private_key(ESME, "ka").exchange(ec.ECDH(), ks.public_key(pki.network_operator, "ka"))
    assert not check_mac(wrong, msg)
    assert not check_signature(ks.public_key(pki.network_operator, "ds"), msg)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_tampering_breaks_mac_or_signature(critical_command, device_view, data):
    secret, supplier_ds = device_view
    pos = data.draw(st.integers(0, len(critical_command) - 1), label="position")
    flip = data.draw(st.integers(1, 255), label="xor")
    tampered = bytearray(critical_command)
    tampered[pos] ^= flip
    try:
        msg = decode_message(bytes(tampered))
    except DecodeError:
        return
    # the MAC covers the whole General-Signing APDU, so any change that still decodes breaks it
    assert not check_mac(secret, msg)
    # and any change to the signed bytes or the signature breaks the signature
    original = decode_message(critical_command)
    if msg.signed_bytes() != original.signed_bytes() or msg.signature != original.signature:
        assert not check_signature(supplier_ds, msg)


# -- refusals, overrides, force ----------------------------------------------------------------
def test_init_refuses_existing_and_force_replaces(tmp_path):
    path = tmp_path / "p"
    init_pki(path)
    add_device(path, ESME, "esme")
    before = (path / "ca" / "root.pem").read_bytes()
    with pytest.raises(PkiError, match="already holds a PKI"):
        init_pki(path)
    assert (path / "ca" / "root.pem").read_bytes() == before
    init_pki(path, force=True)
    assert (path / "ca" / "root.pem").read_bytes() != before
    assert not (path / f"{ESME.hex()}-ka.pem").exists()  # old hierarchy's device is gone
    assert load_pki(path).devices == {}


def test_init_refuses_folder_with_dcc_files(tmp_path):
    (tmp_path / "90b3d51f30010000-ds.pem").write_text("x")
    with pytest.raises(PkiError):
        init_pki(tmp_path)


def test_seed_euis(tmp_path):
    ks = init_pki(tmp_path, seed_euis={"supplier": "02-47-42-48-30-03-00-00", 4: bytes.fromhex("02474248300000AB")})
    pki = load_pki(tmp_path)
    assert pki.supplier == bytes.fromhex("0247424830030000")
    assert pki.acb == bytes.fromhex("02474248300000AB")
    assert pki.network_operator == DEFAULT_EUIS["network_operator"]
    assert ks.role(pki.acb) == 4 and ks.certificate(pki.supplier, "pp-ka") is not None
    with pytest.raises(PkiError, match="unknown organisation role"):
        init_pki(tmp_path / "a", seed_euis={"landlord": "0247424830030000"})
    with pytest.raises(PkiError, match="share EUI"):
        init_pki(tmp_path / "b", seed_euis={"supplier": DEFAULT_EUIS["acb"]})
    with pytest.raises(PkiError):
        init_pki(tmp_path / "c", seed_euis={"supplier": "0247"})


def test_add_device_refusals(tmp_path):
    with pytest.raises(PkiError, match="no test PKI"):
        add_device(tmp_path, ESME, "esme")
    init_pki(tmp_path)
    first = add_device(tmp_path, ESME, "esme").public_key(ESME, "ka")
    with pytest.raises(PkiError, match="already has keys"):
        add_device(tmp_path, ESME, "esme")
    assert load_keystore(tmp_path).public_key(ESME, "ka") == first
    second = add_device(tmp_path, ESME, "gsme", force=True).public_key(ESME, "ka")
    assert second != first and load_keystore(tmp_path).public_key(ESME, "ka") == second
    assert load_pki(tmp_path).device_type(ESME) == "gsme"
    with pytest.raises(PkiError, match="supplier"):
        add_device(tmp_path, DEFAULT_EUIS["supplier"], "esme", force=True)
    with pytest.raises(PkiError, match="device type"):
        add_device(tmp_path, DEVICES["gsme"], "toaster")
    with pytest.raises(PkiError):
        add_device(tmp_path, "zz", "esme")


# -- CLI ---------------------------------------------------------------------------------------
def _parse(argv):
    parser = argparse.ArgumentParser(prog="gbhub")
    register(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_cli_init_and_device(tmp_path, capsys):
    path = tmp_path / "k"
    assert run(_parse(["pki", "init", str(path)])) == 0
    assert "0247424830010000" in capsys.readouterr().out
    assert run(_parse(["pki", "init", str(path)])) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--force" in err
    assert run(_parse(["pki", "init", str(path), "--force"])) == 0
    assert run(_parse(["pki", "device", str(path), "02:47:42:48:40:00:00:A1", "--type", "gsme"])) == 0
    assert load_pki(path).device_type(bytes.fromhex("02474248400000A1")) == "gsme"
    assert run(_parse(["pki", "device", str(path), "02-47-42-48-40-00-00-A1"])) == 1
    assert run(_parse(["pki", "device", str(path), "02474248400000A1", "--force"])) == 0
    assert load_pki(path).device_type(bytes.fromhex("02474248400000A1")) == "esme"
    capsys.readouterr()
    for argv in (["pki", "device", str(path), "0247"], ["pki", "device", str(path), "02474248400000A2", "--type", "toaster"]):
        assert run(_parse(argv)) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err
    assert run(_parse(["pki", "device", str(tmp_path / "none"), "02474248400000A2"])) == 1
    assert "pki init" in capsys.readouterr().err


def test_cli_bad_eui_in_a_subprocess(tmp_path):
    code = (
        "import argparse, sys; from tools.pki import register, run; "
        "p = argparse.ArgumentParser(prog='gbhub'); register(p.add_subparsers(dest='command')); "
        "sys.exit(run(p.parse_args(sys.argv[1:])))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, "pki", "device", str(tmp_path), "not-an-eui"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr and "EUI" in proc.stderr
