"""In-memory keystore in the DCC naming: `<eui>[-pp]-(ka|ds).(pem|key)`.

`.pem` holds an X.509 certificate, `.key` a PKCS#8 private key. `-pp` marks a supplier's
prepayment KA key (UTRNs). The folder read/write is in `tools.keys` (gbcs does no I/O); here names
and bytes go in and come out.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID, ObjectIdentifier

from .codec import KeystoreError, eui_hex, parse_eui

NAME_RE = re.compile(r"^(?P<eui>[0-9a-fA-F]{16})(?P<pp>-pp)?-(?P<usage>ka|ds)\.(?P<kind>pem|key)$")
HARDWARE_MODULE_NAME = ObjectIdentifier("1.3.6.1.5.5.7.8.4")
X500_UNIQUE_IDENTIFIER = ObjectIdentifier("2.5.4.45")


@dataclass
class Slot:
    """One key usage of one party: certificate and/or private key."""

    certificate: x509.Certificate | None = None
    private_key: ec.EllipticCurvePrivateKey | None = None
    _public: ec.EllipticCurvePublicKey | None = None
    bare_public: bool = False

    @property
    def public_key(self) -> ec.EllipticCurvePublicKey | None:
        if self._public is None:
            if self.certificate is not None:
                self._public = self.certificate.public_key()  # type: ignore[assignment]
            elif self.private_key is not None:
                self._public = self.private_key.public_key()
        return self._public


class Keystore:
    """Keys and certificates by (EUI, usage). Usage is 'ka', 'ds' or 'pp-ka'."""

    def __init__(self) -> None:
        self._slots: dict[tuple[bytes, str], Slot] = {}
        self._meta: dict[bytes, tuple[int | None, bool]] = {}

    # -- filling -------------------------------------------------------------------------------
    def add_file(self, name: str, data: bytes) -> None:
        """Add one file by its DCC name; raises KeystoreError for a name or content it can't use."""
        m = NAME_RE.match(name)
        if not m:
            raise KeystoreError(f"not a DCC key file name: {name}")
        eui = bytes.fromhex(m["eui"])
        usage = ("pp-" if m["pp"] else "") + m["usage"]
        try:
            if m["kind"] == "pem" and b"PUBLIC KEY-----" in data:
                pub = serialization.load_pem_public_key(data)
                if not isinstance(pub, ec.EllipticCurvePublicKey):
                    raise KeystoreError(f"{name}: not an EC public key")
                self.add_public_key(eui, usage, pub)
            elif m["kind"] == "pem":
                self.add_certificate(eui, usage, x509.load_pem_x509_certificate(data))
            else:
                key = serialization.load_pem_private_key(data, password=None) if b"-----BEGIN" in data else serialization.load_der_private_key(data, password=None)
                if not isinstance(key, ec.EllipticCurvePrivateKey):
                    raise KeystoreError(f"{name}: not an EC private key")
                self.add_private_key(eui, usage, key)
        except KeystoreError:
            raise
        except ValueError as exc:
            raise KeystoreError(f"{name}: {exc}") from None

    def add_certificate(self, eui: bytes | str, usage: str, cert: x509.Certificate) -> None:
        eui = parse_eui(eui)
        slot = self._slot(eui, usage)
        slot.certificate, slot._public, slot.bare_public = cert, None, False
        self._meta.pop(eui, None)

    def add_public_key(self, eui: bytes | str, usage: str, key: ec.EllipticCurvePublicKey) -> None:
        """A bare public key (some test folders ship `.pem` files holding only a PUBLIC KEY)."""
        eui = parse_eui(eui)
        slot = self._slot(eui, usage)
        slot._public = key
        slot.bare_public = True

    def add_private_key(self, eui: bytes | str, usage: str, key: ec.EllipticCurvePrivateKey) -> None:
        eui = parse_eui(eui)
        self._slot(eui, usage).private_key = key

    def merge(self, other: "Keystore") -> None:
        for (eui, usage), slot in other._slots.items():
            mine = self._slot(eui, usage)
            if slot.certificate is not None:
                mine.certificate, mine._public, mine.bare_public = slot.certificate, None, False
            elif slot.bare_public:
                mine._public, mine.bare_public = slot._public, True
            if slot.private_key is not None:
                mine.private_key = slot.private_key
        self._meta.clear()

    def _slot(self, eui: bytes, usage: str) -> Slot:
        if usage not in ("ka", "ds", "pp-ka"):
            raise KeystoreError(f"unknown key usage {usage!r}")
        slot = self._slots.get((eui, usage))
        if slot is None:
            slot = self._slots[(eui, usage)] = Slot()
        return slot

    # -- lookups -------------------------------------------------------------------------------
    def slot(self, eui: bytes, usage: str) -> Slot | None:
        return self._slots.get((eui, usage))

    def public_key(self, eui: bytes, usage: str = "ka") -> ec.EllipticCurvePublicKey | None:
        s = self._slots.get((eui, usage))
        return s.public_key if s else None

    def private_key(self, eui: bytes, usage: str = "ka") -> ec.EllipticCurvePrivateKey | None:
        s = self._slots.get((eui, usage))
        return s.private_key if s else None

    def certificate(self, eui: bytes, usage: str = "ka") -> x509.Certificate | None:
        s = self._slots.get((eui, usage))
        return s.certificate if s else None

    def euis(self) -> list[bytes]:
        return sorted({eui for eui, _ in self._slots})

    def __contains__(self, eui: bytes) -> bool:
        return any(k[0] == eui for k in self._slots)

    def __len__(self) -> int:
        return len(self._slots)

    def role(self, eui: bytes) -> int | None:
        """Remote-party role (organisation certificate OU, 2 hex digits), None for devices."""
        return self._info(eui)[0]

    def is_device(self, eui: bytes) -> bool:
        """True when a certificate of `eui` carries a hardwareModuleName (device certificate)."""
        return self._info(eui)[1]

    def _info(self, eui: bytes) -> tuple[int | None, bool]:
        hit = self._meta.get(eui)
        if hit is None:
            role, device = None, False
            for usage in ("ds", "ka", "pp-ka"):
                cert = self.certificate(eui, usage)
                if cert is None:
                    continue
                role = role if role is not None else certificate_role(cert)
                device = device or certificate_device_eui(cert) is not None
            hit = self._meta[eui] = (role, device)
        return hit

    # -- output --------------------------------------------------------------------------------
    def files(self) -> dict[str, bytes]:
        """Everything as DCC-named files (certificates PEM, keys PKCS#8 PEM)."""
        out: dict[str, bytes] = {}
        for (eui, usage), slot in sorted(self._slots.items()):
            stem = eui.hex() + "-" + usage
            if slot.certificate is not None:
                out[stem + ".pem"] = slot.certificate.public_bytes(serialization.Encoding.PEM)
            elif slot.bare_public and slot._public is not None:
                out[stem + ".pem"] = slot._public.public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                )
            if slot.private_key is not None:
                out[stem + ".key"] = slot.private_key.private_bytes(
                    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                )
        return out

    def describe(self) -> list[str]:
        lines = []
        for (eui, usage), slot in sorted(self._slots.items()):
            parts = [eui_hex(eui), usage]
            if slot.certificate is not None:
                parts.append("cert")
            if slot.private_key is not None:
                parts.append("key")
            role = self.role(eui)
            if role is not None:
                parts.append(f"role {role}")
            lines.append(" ".join(parts))
        return lines


def certificate_role(cert: x509.Certificate) -> int | None:
    """Organisation certificates carry the remote-party role as OU (2 hex digits)."""
    ous = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    if not ous:
        return None
    try:
        return int(str(ous[0].value), 16)
    except ValueError:
        return None


def certificate_device_eui(cert: x509.Certificate) -> bytes | None:
    """Device certificates name their EUI in subjectAltName otherName hardwareModuleName."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    for name in san:
        if isinstance(name, x509.OtherName) and name.type_id == HARDWARE_MODULE_NAME:
            return _hw_serial(name.value)
    return None


def certificate_org_eui(cert: x509.Certificate) -> bytes | None:
    """Organisation certificates carry the EUI in x500UniqueIdentifier (a BIT STRING)."""
    attrs = cert.subject.get_attributes_for_oid(X500_UNIQUE_IDENTIFIER)
    if not attrs:
        return None
    value = attrs[0].value
    raw = value if isinstance(value, bytes) else str(value).encode("latin-1")
    return raw[-8:] if len(raw) >= 8 else None


def _hw_serial(der: bytes) -> bytes | None:
    """HardwareModuleName ::= SEQUENCE { hwType OID, hwSerialNum OCTET STRING }: the serial is the
    trailing 8-byte OCTET STRING (`04 08 …`), whatever explicit tagging wraps the sequence."""
    if len(der) >= 10 and der[-10:-8] == b"\x04\x08":
        return der[-8:]
    return None
