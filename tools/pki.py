"""A private SMKI-like test PKI: root CA, device CA, organisation CA (issuing authority), the
organisation key pairs a head-end needs, and device key pairs on demand.

Certificates copy the *profile* of the DCC RTDS test certificates (FACTS.md §5) so that code which
reads roles and EUIs out of real SMKI test certificates (gbcs.keystore) reads ours the same way:

* organisation: Subject [CN,] OU = remote-party role (2 hex digits), x500UniqueIdentifier = BIT
  STRING of the 8-byte EUI; Issuer = organisation CA (OU=07); keyUsage critical, exactly
  digitalSignature or keyAgreement; certificatePolicies critical; 8-byte SKI/AKI; 10-year validity.
* device: empty Subject; Issuer = device CA (short CN, like RTDS "E357"); valid to
  9999-12-31 23:59:59Z; critical subjectAltName otherName hardwareModuleName {hwType, EUI};
  critical certificatePolicies; keyUsage as above.

EUIs: ours live under the prefix 02474248 ("02" = unicast, locally administered, so never an
IEEE-assigned OUI; 47 42 48 = "GBH"), laid out like the DCC test range 90B3D51F3xxxxxxx:
organisations 0247424830xxxxxx (e.g. supplier 0247424830010000, ACB 0247424830000002) and,
as a suggestion for rigs, devices 0247424840xxxxxx (`DEVICE_EUI_PREFIX`).

On disk (one folder): DCC-named organisation and device files (`<eui>[-pp]-(ka|ds).(pem|key)`,
via tools.keys), the CA certificates and keys under `ca/` (not DCC names, so DCC tools and
`load_keystore` ignore them), and `pki.json` (role → EUI, device EUI → type). Only this module
and tools.keys write key files.
"""
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import NameOID, ObjectIdentifier

from gbcs.codec import eui_hex, parse_eui
from gbcs.keystore import HARDWARE_MODULE_NAME, NAME_RE, X500_UNIQUE_IDENTIFIER, Keystore, KeystoreError
from gbhub.tools.keys import load_keystore, save_keystore

MANIFEST = "pki.json"
MANIFEST_FORMAT = "gbhub-pki/1"
CA_DIR = "ca"
CA_NAMES = ("root", "device-ca", "org-ca")

EUI_PREFIX = bytes.fromhex("02474248")
DEVICE_EUI_PREFIX = bytes.fromhex("0247424840")

# Remote-party roles (FACTS.md §5) of the organisations init_pki creates.
ROLE_CODES: dict[str, int] = {
    "recovery": 1,
    "supplier": 2,
    "network_operator": 3,
    "acb": 4,
    "transitional_cos": 5,
    "wan_provider": 6,
    "load_controller": 8,
}
DEFAULT_EUIS: dict[str, bytes] = {
    "recovery": bytes.fromhex("0247424830000001"),
    "acb": bytes.fromhex("0247424830000002"),
    "transitional_cos": bytes.fromhex("0247424830000004"),
    "wan_provider": bytes.fromhex("0247424830000007"),
    "supplier": bytes.fromhex("0247424830010000"),
    "network_operator": bytes.fromhex("0247424830020000"),
    "load_controller": bytes.fromhex("0247424830010008"),
}
_COMMON_NAMES = {
    "recovery": "GBHUB RECOVERY",
    "supplier": "GBHUB SUPPLIER",
    "network_operator": "GBHUB NETWORK OPERATOR",
    "acb": "GBHUB ACB",
    "transitional_cos": "GBHUB TRANSITIONAL COS",
    "wan_provider": "GBHUB WAN PROVIDER",
    "load_controller": "GBHUB LOAD CONTROLLER",
}
DEVICE_TYPES = ("esme", "gsme", "chf", "gpf", "ppmid", "ihd")

# Test OIDs as in the RTDS certificates (DCC test arcs), so policy checks written for those pass.
HW_TYPE = ObjectIdentifier("1.2.826.0.1.8641679.1.2.2.1")
DEVICE_POLICY = ObjectIdentifier("1.2.826.0.1.1800000.1.2.1.4")
ORGANISATION_POLICY = ObjectIdentifier("1.2.826.0.1.8641679.1.2.1.4")

_P = _ASN1Type.PrintableString
ROOT_NAME = x509.Name(
    [x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "00", _P), x509.NameAttribute(NameOID.COMMON_NAME, "GR", _P)]
)
ORG_CA_NAME = x509.Name(
    [x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "07", _P), x509.NameAttribute(NameOID.COMMON_NAME, "G1", _P)]
)
DEVICE_CA_NAME = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "GB01", _P)])

NO_EXPIRY = dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.timezone.utc)
_CURVE = ec.SECP256R1()


class PkiError(ValueError):
    """A PKI folder is missing, already there, or an argument is unusable (one-line message)."""


# -- certificate building ------------------------------------------------------------------------
def _key_id(public_key: ec.EllipticCurvePublicKey) -> bytes:
    """8-byte key identifier: leftmost 64 bits of SHA-256 over the public key (RFC 7093 m.1)."""
    point = public_key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return hashlib.sha256(point).digest()[:8]


def _serial() -> int:
    """16-byte positive serial, as in the RTDS certificates."""
    return (int.from_bytes(os.urandom(16), "big") & ((1 << 127) - 1)) | (1 << 120)


def _start_of_day(when: dt.datetime | None) -> dt.datetime:
    when = when or dt.datetime.now(dt.timezone.utc)
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return when.astimezone(dt.timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)


def _plus_years(start: dt.datetime, years: int) -> dt.datetime:
    try:
        end = start.replace(year=start.year + years)
    except ValueError:  # 29 February
        end = start.replace(year=start.year + years, month=3, day=1)
    return end - dt.timedelta(seconds=1)


def _key_usage(usage: str) -> x509.KeyUsage:
    ds = usage == "ds"
    return x509.KeyUsage(
        digital_signature=ds,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=not ds,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def _der_oid(oid: ObjectIdentifier) -> bytes:
    arcs = [int(a) for a in oid.dotted_string.split(".")]
    body = bytearray((40 * arcs[0] + arcs[1],))
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body += bytes(reversed(chunk))
    return b"\x06" + bytes((len(body),)) + bytes(body)


def hardware_module_name(eui: bytes) -> bytes:
    """DER HardwareModuleName ::= SEQUENCE { hwType OID, hwSerialNum OCTET STRING (EUI) }."""
    body = _der_oid(HW_TYPE) + b"\x04\x08" + eui
    return b"\x30" + bytes((len(body),)) + body


@dataclass
class Issuer:
    certificate: x509.Certificate
    private_key: ec.EllipticCurvePrivateKey

    @property
    def key_id(self) -> bytes:
        return self.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest


def _builder(subject: x509.Name, issuer_name: x509.Name, public_key, not_before, not_after) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(public_key)
        .serial_number(_serial())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )


def _make_ca(
    name: x509.Name, key: ec.EllipticCurvePrivateKey, issuer: Issuer | None, not_before: dt.datetime
) -> x509.Certificate:
    issuer_name = issuer.certificate.subject if issuer else name
    b = _builder(name, issuer_name, key.public_key(), not_before, NO_EXPIRY)
    b = b.add_extension(
        x509.KeyUsage(
            digital_signature=False,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=True,
            crl_sign=True,
            encipher_only=False,
            decipher_only=False,
        ),
        critical=True,
    )
    b = b.add_extension(x509.BasicConstraints(ca=True, path_length=None if issuer is None else 0), critical=True)
    b = b.add_extension(x509.SubjectKeyIdentifier(_key_id(key.public_key())), critical=False)
    if issuer is not None:
        b = b.add_extension(x509.AuthorityKeyIdentifier(issuer.key_id, None, None), critical=False)
    return b.sign(issuer.private_key if issuer else key, hashes.SHA256())


def organisation_certificate(
    issuer: Issuer,
    public_key: ec.EllipticCurvePublicKey,
    eui: bytes,
    role: int,
    usage: str,
    common_name: str | None,
    not_before: dt.datetime,
) -> x509.Certificate:
    attrs = []
    if common_name:
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, f"{role:02X}"))
    # cryptography takes a BIT STRING value as its raw contents: unused-bits octet first.
    attrs.append(x509.NameAttribute(X500_UNIQUE_IDENTIFIER, b"\x00" + eui, _ASN1Type.BitString))
    b = _builder(x509.Name(attrs), issuer.certificate.subject, public_key, not_before, _plus_years(not_before, 10))
    b = b.add_extension(_key_usage(usage), critical=True)
    b = b.add_extension(x509.SubjectKeyIdentifier(_key_id(public_key)), critical=False)
    b = b.add_extension(x509.CertificatePolicies([x509.PolicyInformation(ORGANISATION_POLICY, None)]), critical=True)
    b = b.add_extension(x509.AuthorityKeyIdentifier(issuer.key_id, None, None), critical=False)
    return b.sign(issuer.private_key, hashes.SHA256())


def device_certificate(
    issuer: Issuer, public_key: ec.EllipticCurvePublicKey, eui: bytes, usage: str, not_before: dt.datetime
) -> x509.Certificate:
    b = _builder(x509.Name([]), issuer.certificate.subject, public_key, not_before, NO_EXPIRY)
    b = b.add_extension(_key_usage(usage), critical=True)
    b = b.add_extension(x509.SubjectKeyIdentifier(_key_id(public_key)), critical=False)
    b = b.add_extension(
        x509.SubjectAlternativeName([x509.OtherName(HARDWARE_MODULE_NAME, hardware_module_name(eui))]), critical=True
    )
    b = b.add_extension(x509.CertificatePolicies([x509.PolicyInformation(DEVICE_POLICY, None)]), critical=True)
    b = b.add_extension(x509.AuthorityKeyIdentifier(issuer.key_id, None, None), critical=False)
    return b.sign(issuer.private_key, hashes.SHA256())


# -- files ---------------------------------------------------------------------------------------
def _write(path: Path, data: bytes, secret: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if secret else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _read_manifest(folder: Path) -> dict:
    path = folder / MANIFEST
    if not path.is_file():
        raise PkiError(f"no test PKI in {folder} ({MANIFEST} missing); create one with 'gbhub pki init {folder}'")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PkiError(f"{path}: unreadable manifest: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise PkiError(f"{path}: not a {MANIFEST_FORMAT} manifest")
    return manifest


def _write_manifest(folder: Path, manifest: dict) -> None:
    _write(folder / MANIFEST, (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode(), secret=False)


def _load_issuer(folder: Path, name: str) -> Issuer:
    try:
        cert = x509.load_pem_x509_certificate((folder / CA_DIR / f"{name}.pem").read_bytes())
        key = serialization.load_pem_private_key((folder / CA_DIR / f"{name}.key").read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise PkiError(f"{folder / CA_DIR}: cannot load {name}: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PkiError(f"{folder / CA_DIR / name}.key: not an EC private key")
    return Issuer(cert, key)


def _role_name(role: str | int) -> str:
    if isinstance(role, int) and not isinstance(role, bool):
        for name, code in ROLE_CODES.items():
            if code == role:
                return name
    elif isinstance(role, str) and role in ROLE_CODES:
        return role
    raise PkiError(f"unknown organisation role {role!r} (one of {', '.join(ROLE_CODES)} or its code)")


def _eui(value: bytes | str) -> bytes:
    try:
        return parse_eui(value)
    except (ValueError, TypeError) as exc:
        raise PkiError(str(exc)) from None


# -- public API ----------------------------------------------------------------------------------
def init_pki(
    folder: str | os.PathLike,
    *,
    seed_euis: Mapping[str | int, bytes | str] | None = None,
    force: bool = False,
    not_before: dt.datetime | None = None,
) -> Keystore:
    """Create a fresh hierarchy and organisation keys in `folder`; returns the organisations'
    keystore. `seed_euis` overrides DEFAULT_EUIS per role (name or code). An existing PKI (or any
    DCC key file) in `folder` is refused unless `force`, which first removes the DCC-named key
    files, `ca/` files and manifest there, so no certificate of an old hierarchy lingers."""
    path = Path(folder)
    euis = dict(DEFAULT_EUIS)
    for role, eui in (seed_euis or {}).items():
        euis[_role_name(role)] = _eui(eui)
    seen: dict[bytes, str] = {}
    for name, eui in euis.items():
        if eui in seen:
            raise PkiError(f"roles {seen[eui]} and {name} would share EUI {eui_hex(eui)}")
        seen[eui] = name

    stale = _existing_pki_files(path)
    if stale and not force:
        what = MANIFEST if (path / MANIFEST).exists() else stale[0].name
        raise PkiError(f"{path} already holds a PKI ({what}); use force=True / --force to replace it")
    if path.exists() and not path.is_dir():
        raise PkiError(f"{path} is not a folder")

    start = _start_of_day(not_before)
    root_key = ec.generate_private_key(_CURVE)
    root = Issuer(_make_ca(ROOT_NAME, root_key, None, start), root_key)
    cas = {"root": root}
    for name, subject in (("device-ca", DEVICE_CA_NAME), ("org-ca", ORG_CA_NAME)):
        key = ec.generate_private_key(_CURVE)
        cas[name] = Issuer(_make_ca(subject, key, root, start), key)

    ks = Keystore()
    roles = {}
    for name, eui in sorted(euis.items(), key=lambda kv: ROLE_CODES[kv[0]]):
        usages = ["ds", "ka", "pp-ka"] if name == "supplier" else ["ds", "ka"]
        for usage in usages:
            key = ec.generate_private_key(_CURVE)
            cn = None if usage == "pp-ka" else _COMMON_NAMES[name]
            cert = organisation_certificate(cas["org-ca"], key.public_key(), eui, ROLE_CODES[name], usage, cn, start)
            ks.add_certificate(eui, usage, cert)
            ks.add_private_key(eui, usage, key)
        roles[name] = {"eui": eui_hex(eui), "role": ROLE_CODES[name], "usages": usages}

    for p in stale:
        p.unlink()
    for name, issuer in cas.items():
        _write(path / CA_DIR / f"{name}.key", _pem_key(issuer.private_key), secret=True)
        _write(path / CA_DIR / f"{name}.pem", _pem_cert(issuer.certificate), secret=False)
    save_keystore(ks, path)
    _write_manifest(
        path,
        {
            "format": MANIFEST_FORMAT,
            "created": start.isoformat(),
            "eui_prefix": EUI_PREFIX.hex().upper(),
            "ca": {name: {"certificate": f"{CA_DIR}/{name}.pem", "key": f"{CA_DIR}/{name}.key"} for name in CA_NAMES},
            "roles": roles,
            "prepayment": {"role": "supplier", "usage": "pp-ka", "cell_usage": "prePaymentTopUp"},
            "devices": {},
        },
    )
    return ks


def _existing_pki_files(path: Path) -> list[Path]:
    if not path.is_dir():
        return []
    found = [p for p in sorted(path.iterdir()) if p.is_file() and NAME_RE.match(p.name)]
    for name in CA_NAMES:
        found += [p for p in (path / CA_DIR / f"{name}.pem", path / CA_DIR / f"{name}.key") if p.is_file()]
    if (path / MANIFEST).is_file():
        found.insert(0, path / MANIFEST)
    return found


def add_device(
    folder: str | os.PathLike,
    eui: bytes | str,
    device_type: str = "esme",
    *,
    force: bool = False,
    not_before: dt.datetime | None = None,
) -> Keystore:
    """Issue KA and DS key pairs + device certificates for `eui` from the folder's device CA and
    write them there; returns a keystore holding just this device. Refuses to replace an existing
    device's keys unless `force`, and always refuses an organisation's EUI."""
    path = Path(folder)
    eui = _eui(eui)
    if device_type not in DEVICE_TYPES:
        raise PkiError(f"unknown device type {device_type!r} (one of {', '.join(DEVICE_TYPES)})")
    manifest = _read_manifest(path)
    for name, entry in manifest.get("roles", {}).items():
        if entry.get("eui", "").upper() == eui_hex(eui):
            raise PkiError(f"EUI {eui_hex(eui)} is the {name}'s; pick another device EUI")
    existing = [p for p in sorted(path.iterdir()) if p.is_file() and (m := NAME_RE.match(p.name)) and m["eui"].lower() == eui.hex()]
    if existing and not force:
        raise PkiError(f"device {eui_hex(eui)} already has keys in {path} ({existing[0].name}); use force to replace them")
    issuer = _load_issuer(path, "device-ca")
    start = _start_of_day(not_before)
    ks = Keystore()
    for usage in ("ka", "ds"):
        key = ec.generate_private_key(_CURVE)
        ks.add_certificate(eui, usage, device_certificate(issuer, key.public_key(), eui, usage, start))
        ks.add_private_key(eui, usage, key)
    for p in existing:
        p.unlink()
    save_keystore(ks, path)
    manifest.setdefault("devices", {})[eui_hex(eui)] = device_type
    _write_manifest(path, manifest)
    return ks


def add_organisation(
    folder: str | os.PathLike,
    role: str | int,
    eui: bytes | str,
    *,
    name: str | None = None,
    force: bool = False,
    not_before: dt.datetime | None = None,
) -> Keystore:
    """Issue DS and KA (a supplier also prepayment KA) key pairs + organisation certificates for
    one more organisation of `role` (e.g. the new supplier of a change of supplier) from the
    folder's organisation CA; recorded in pki.json under `name` (default `<role>-<EUI>`).
    Returns a keystore holding just it."""
    path = Path(folder)
    eui = _eui(eui)
    role_name = _role_name(role)
    name = name or f"{role_name}-{eui_hex(eui)}"
    manifest = _read_manifest(path)
    for other, entry in manifest.get("roles", {}).items():
        if entry.get("eui", "").upper() == eui_hex(eui) and not force:
            raise PkiError(f"EUI {eui_hex(eui)} is already the {other}'s")
        if other == name and not force:
            raise PkiError(f"{name} already exists in {path / MANIFEST}")
    if eui_hex(eui) in manifest.get("devices", {}):
        raise PkiError(f"EUI {eui_hex(eui)} is a device's")
    issuer = _load_issuer(path, "org-ca")
    start = _start_of_day(not_before)
    usages = ["ds", "ka", "pp-ka"] if role_name == "supplier" else ["ds", "ka"]
    ks = Keystore()
    for usage in usages:
        key = ec.generate_private_key(_CURVE)
        cn = None if usage == "pp-ka" else name.upper()
        ks.add_certificate(eui, usage, organisation_certificate(issuer, key.public_key(), eui, ROLE_CODES[role_name],
                                                                usage, cn, start))
        ks.add_private_key(eui, usage, key)
    save_keystore(ks, path)
    manifest.setdefault("roles", {})[name] = {"eui": eui_hex(eui), "role": ROLE_CODES[role_name], "usages": usages}
    _write_manifest(path, manifest)
    return ks


def ca_certificates(folder: str | os.PathLike) -> tuple[bytes, ...]:
    """DER of the PKI's CA certificates (root, device CA, organisation CA); () without a PKI.
    A head-end sends the organisation CA as the certification path of CS02b/CS02g."""
    out = []
    for name in CA_NAMES:
        try:
            cert = x509.load_pem_x509_certificate((Path(folder) / CA_DIR / f"{name}.pem").read_bytes())
        except (OSError, ValueError):
            continue
        out.append(cert.public_bytes(serialization.Encoding.DER))
    return tuple(out)


def certify_request(folder: str | os.PathLike, request: bytes, *, not_before: dt.datetime | None = None) -> bytes:
    """A device certificate (DER) from the folder's device CA for a device's PKCS#10 request
    (CS02c), to install with CS02d: the EUI and key usage come from the request."""
    try:
        csr = x509.load_der_x509_csr(bytes(request))
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        ku = csr.extensions.get_extension_for_class(x509.KeyUsage).value
    except (ValueError, x509.ExtensionNotFound) as exc:
        raise PkiError(f"not a device certification request: {exc}") from None
    if not csr.is_signature_valid:
        raise PkiError("the certification request's signature does not verify")
    from gbcs.keystore import certificate_device_eui

    eui = next((n.value[-8:] for n in san if isinstance(n, x509.OtherName) and n.type_id == HARDWARE_MODULE_NAME), None)
    if eui is None:
        raise PkiError("the request names no device EUI (hardwareModuleName)")
    usage = "ds" if ku.digital_signature else "ka"
    key = csr.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or ku.digital_signature == ku.key_agreement:
        raise PkiError("the request is not for one P-256 DS or KA key")
    cert = device_certificate(_load_issuer(Path(folder), "device-ca"), key, eui, usage, _start_of_day(not_before))
    assert certificate_device_eui(cert) == eui
    return cert.public_bytes(serialization.Encoding.DER)


@dataclass
class Pki:
    """A loaded test PKI: the keystore (organisations + devices) and who is who."""

    folder: Path
    keystore: Keystore
    roles: dict[str, bytes]
    devices: dict[bytes, str]
    root_ca: x509.Certificate
    device_ca: x509.Certificate
    org_ca: x509.Certificate
    manifest: dict = field(repr=False, default_factory=dict)

    def eui_of(self, role: str | int) -> bytes:
        """EUI of an organisation by role name ('supplier', 'acb', ...) or remote-party role code."""
        name = _role_name(role)
        try:
            return self.roles[name]
        except KeyError:
            raise PkiError(f"this PKI has no {name}") from None

    def role_name(self, eui: bytes) -> str | None:
        return next((name for name, e in self.roles.items() if e == eui), None)

    def device_type(self, eui: bytes) -> str | None:
        return self.devices.get(eui)

    def verify(self, cert: x509.Certificate) -> bool:
        """Does `cert` chain to this PKI's root (through the device or organisation CA)?"""
        for ca in (self.device_ca, self.org_ca):
            if cert.issuer == ca.subject:
                return _issued_by(cert, ca) and _issued_by(ca, self.root_ca)
        return False

    recovery = property(lambda self: self.eui_of("recovery"))
    supplier = property(lambda self: self.eui_of("supplier"))
    network_operator = property(lambda self: self.eui_of("network_operator"))
    acb = property(lambda self: self.eui_of("acb"))
    transitional_cos = property(lambda self: self.eui_of("transitional_cos"))
    wan_provider = property(lambda self: self.eui_of("wan_provider"))
    load_controller = property(lambda self: self.eui_of("load_controller"))


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def load_pki(folder: str | os.PathLike) -> Pki:
    path = Path(folder)
    manifest = _read_manifest(path)
    try:
        roles = {name: parse_eui(entry["eui"]) for name, entry in manifest.get("roles", {}).items()}
        devices = {parse_eui(eui): kind for eui, kind in manifest.get("devices", {}).items()}
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise PkiError(f"{path / MANIFEST}: bad entry: {exc}") from None
    cas = {}
    for name in CA_NAMES:
        try:
            cas[name] = x509.load_pem_x509_certificate((path / CA_DIR / f"{name}.pem").read_bytes())
        except (OSError, ValueError) as exc:
            raise PkiError(f"{path / CA_DIR}: cannot load {name} certificate: {exc}") from None
    try:
        ks = load_keystore(path)
    except KeystoreError as exc:
        raise PkiError(str(exc)) from None
    return Pki(path, ks, roles, devices, cas["root"], cas["device-ca"], cas["org-ca"], manifest)


# -- CLI -----------------------------------------------------------------------------------------
def register(subparsers) -> argparse.ArgumentParser:
    """Add `pki init DIR [--force]`, `pki device DIR EUI [--type T] [--force]`,
    `pki org DIR ROLE EUI [--name NAME] [--force]` and `pki certify DIR REQUEST_HEX`."""
    p = subparsers.add_parser("pki", help="create a private test PKI and device keys (DCC file naming)")
    sub = p.add_subparsers(dest="pki_command", metavar="{init,device,org,certify}")
    sub.required = True
    init = sub.add_parser("init", help="new root/device/organisation CAs and organisation keys")
    init.add_argument("dir", help="folder to write (DCC-named key files, ca/, pki.json)")
    init.add_argument("--force", action="store_true", help="replace an existing PKI in DIR")
    dev = sub.add_parser("device", help="issue KA+DS keys and device certificates for one EUI")
    dev.add_argument("dir", help="folder holding a PKI made by 'pki init'")
    dev.add_argument("eui", help="device EUI-64: 16 hex digits, '-' or ':' allowed")
    # Checked in run() rather than with choices=, so bad input gives one line, not usage + error.
    dev.add_argument("--type", dest="device_type", default="esme", metavar="{" + ",".join(DEVICE_TYPES) + "}")
    dev.add_argument("--force", action="store_true", help="replace this device's existing keys")
    org = sub.add_parser("org", help="one more organisation (e.g. a new supplier for a change of supplier)")
    org.add_argument("dir", help="folder holding a PKI made by 'pki init'")
    org.add_argument("role", help="its role: " + ", ".join(ROLE_CODES))
    org.add_argument("eui", help="its EUI-64: 16 hex digits")
    org.add_argument("--name", help="its name in pki.json (default ROLE-EUI)")
    org.add_argument("--force", action="store_true", help="replace an organisation of that name or EUI")
    cert = sub.add_parser("certify", help="a device certificate (hex DER) for a device's CS02c certification request")
    cert.add_argument("dir", help="folder holding a PKI made by 'pki init'")
    cert.add_argument("request", help="the request as hex (the certification_request of `gbhub send CS02c`)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """0 done; 2 bad argument (EUI, device type); 1 refused or failed (existing PKI, no PKI, I/O)."""
    try:
        if args.pki_command == "init":
            init_pki(args.dir, force=args.force)
            pki = load_pki(args.dir)
            print(f"test PKI written to {pki.folder}")
            for name, eui in sorted(pki.roles.items(), key=lambda kv: ROLE_CODES.get(kv[0], 0)):
                print(f"  {eui_hex(eui)}  role {ROLE_CODES.get(name, 0)}  {name}")
            return 0
        if args.pki_command == "org":
            try:
                eui = parse_eui(args.eui)
            except ValueError as exc:
                return _fail(f"gbhub pki org: {exc}", 2)
            try:
                role = _role_name(args.role)
            except PkiError as exc:
                return _fail(f"gbhub pki org: {exc}", 2)
            add_organisation(args.dir, role, eui, name=args.name, force=args.force)
            print(f"{role} {eui_hex(eui)}: organisation keys and certificates written to {args.dir}")
            return 0
        if args.pki_command == "certify":
            try:
                request = bytes.fromhex("".join(args.request.split()))
            except ValueError:
                return _fail("gbhub pki certify: the request is not hex", 2)
            print(certify_request(args.dir, request).hex().upper())
            return 0
        if args.pki_command == "device":
            try:
                eui = parse_eui(args.eui)
            except ValueError as exc:
                return _fail(f"gbhub pki device: {exc}", 2)
            kind = str(args.device_type).lower()
            if kind not in DEVICE_TYPES:
                return _fail(f"gbhub pki device: unknown device type {args.device_type!r} (one of {', '.join(DEVICE_TYPES)})", 2)
            add_device(args.dir, eui, kind, force=args.force)
            print(f"{kind} {eui_hex(eui)}: {eui.hex()}-ka.pem/.key, {eui.hex()}-ds.pem/.key written to {args.dir}")
            return 0
        return _fail(f"gbhub pki: unknown subcommand {args.pki_command!r}", 2)
    except (PkiError, KeystoreError) as exc:
        return _fail(f"gbhub pki {args.pki_command}: {exc}", 1)
    except OSError as exc:
        return _fail(f"gbhub pki {args.pki_command}: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), 1)


def _fail(line: str, code: int) -> int:
    print(line, file=sys.stderr)
    return code
