"""gbcs.keystore reads key files off their DER (public key, role, device EUI, P-256 PKCS#8 keys)
and leaves cryptography's loaders for the rest: both readings must agree on every file, and a
damaged file is a KeystoreError when loaded, never a wrong key."""
from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gbcs.keystore import Keystore, KeystoreError, certificate_device_eui, certificate_role
from gbhub.tools.keys import load_keystore
from gbhub.tools.pki import add_device, init_pki
from conftest import VECTORS


DEVICE = bytes.fromhex("00DB1234567890C1")


@pytest.fixture(scope="module")
def pki_folder(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pki")
    init_pki(path)
    add_device(path, DEVICE, "esme")
    return path


def _folders(pki_folder: Path) -> list[Path]:
    found = [pki_folder]
    for name in ("rtds", "device-test"):
        if (VECTORS / "keys" / name).is_dir():
            found.append(VECTORS / "keys" / name)
    return found


def _reference(data: bytes, kind: str):
    """What cryptography's own loaders make of a file."""
    if kind == "key":
        return serialization.load_pem_private_key(data, password=None)
    if b"PUBLIC KEY-----" in data:
        return serialization.load_pem_public_key(data)
    return x509.load_pem_x509_certificate(data)


def _numbers(key):
    return key.public_numbers() if isinstance(key, ec.EllipticCurvePublicKey) else key.private_numbers()


def test_every_file_reads_as_cryptography_reads_it(pki_folder):
    """Public key, role and device EUI of every certificate, and every private key, of the test PKI
    and (when present) the RTDS and device-test folders, against cryptography's parse."""
    checked = 0
    for folder in _folders(pki_folder):
        ks = load_keystore(folder)
        for path in sorted(folder.iterdir()):
            if not path.is_file() or path.suffix not in (".pem", ".key"):
                continue
            eui, usage = bytes.fromhex(path.name[:16]), path.stem[17:]
            slot = ks.slot(eui, usage)
            ref = _reference(path.read_bytes(), path.suffix[1:])
            if isinstance(ref, x509.Certificate):
                assert _numbers(slot.public_key) == _numbers(ref.public_key()), path
                assert slot.name(0) == certificate_role(ref), path
                assert slot.name(1) == certificate_device_eui(ref), path
                assert slot.certificate == ref
            elif isinstance(ref, ec.EllipticCurvePublicKey):
                assert _numbers(slot.public_key) == _numbers(ref), path
            else:
                assert _numbers(slot.private_key) == _numbers(ref), path
            checked += 1
    assert checked >= 10
    ks = load_keystore(pki_folder)
    assert ks.is_device(DEVICE) and ks.role(DEVICE) is None


def test_the_decode_path_imports_no_x509():
    """`gbhub decode` loads hundreds of key files: cryptography's X.509 and serialization modules
    (~45 ms of start-up) are imported only when a certificate object is asked for."""
    code = ("import sys; from gbhub.tools.inputs import load_keys, resolve_acb; "
            f"ks = load_keys([{str(VECTORS / 'keys' / 'rtds')!r}]) if {(VECTORS / 'keys' / 'rtds').is_dir()!r} else None; "
            "ks and resolve_acb(None, ks); "
            "print(sorted(m for m in sys.modules if m.startswith(('cryptography.x509', 'cryptography.hazmat.primitives.serialization'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def _pem(label: str, der: bytes) -> bytes:
    return f"-----BEGIN {label}-----\n".encode() + base64.encodebytes(der) + f"-----END {label}-----\n".encode()


def _files(pki_folder: Path) -> tuple[bytes, bytes]:
    cert = (pki_folder / f"{DEVICE.hex()}-ka.pem").read_bytes()
    key = (pki_folder / f"{DEVICE.hex()}-ka.key").read_bytes()
    return (x509.load_pem_x509_certificate(cert).public_bytes(serialization.Encoding.DER),
            serialization.load_pem_private_key(key, None).private_bytes(
                serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_damaged_files_are_refused_or_read_as_cryptography_reads_them(pki_folder, data):
    """A certificate or key with bytes changed, cut or added: loading it either raises
    KeystoreError, or gives exactly what cryptography's loaders give for it."""
    cert_der, key_der = _files(pki_folder)
    which = data.draw(st.sampled_from(["pem", "key"]))
    der = bytearray(cert_der if which == "pem" else key_der)
    for _ in range(data.draw(st.integers(1, 3))):
        edit = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        at = data.draw(st.integers(0, len(der) - 1))
        if edit == "flip":
            der[at] ^= data.draw(st.integers(1, 255))
        elif edit == "cut":
            del der[at : at + data.draw(st.integers(1, 8))]
        else:
            der[at:at] = data.draw(st.binary(min_size=1, max_size=4))
        if not der:
            der = bytearray(b"\x30")
    label = "CERTIFICATE" if which == "pem" else "PRIVATE KEY"
    file = _pem(label, bytes(der))
    ks = Keystore()
    try:
        ks.add_file(f"{DEVICE.hex()}-ka.{which}", file)
        slot = ks.slot(DEVICE, "ka")
        got = (slot.public_key, slot.name(0), slot.name(1)) if which == "pem" else slot.private_key
    except (KeystoreError, ValueError) as exc:  # ValueError: a key cryptography itself refuses on use
        try:
            ref = _reference(file, which)
            if which == "pem":
                ref.public_key()
                certificate_role(ref)
                certificate_device_eui(ref)
        except Exception:  # noqa: BLE001 - cryptography refuses it too
            return
        raise AssertionError(f"refused a file cryptography reads: {exc}") from None
    try:
        ref = _reference(file, which)
        if which == "pem":
            expected = (ref.public_key(), certificate_role(ref), certificate_device_eui(ref))
    except Exception:  # noqa: BLE001
        # read where cryptography refuses: only a certificate whose damage lies outside the
        # fields read (signature, validity ...) is allowed; its key and names are still sound
        assert which == "pem", "a damaged private key was accepted"
        return
    if which == "pem":
        assert (_numbers(got[0]), got[1], got[2]) == (_numbers(expected[0]), expected[1], expected[2])
    else:
        assert _numbers(got) == _numbers(ref)
