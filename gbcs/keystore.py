"""In-memory keystore in the DCC naming: `<eui>[-pp]-(ka|ds).(pem|key)`.

`.pem` holds an X.509 certificate, `.key` a PKCS#8 private key. `-pp` marks a supplier's
prepayment KA key (UTRNs). The folder read/write is in `tools.keys` (gbcs does no I/O); here names
and bytes go in and come out.

A certificate file is read as far as the keystore needs it (public key, remote-party role, device
EUI) straight off its DER, and a P-256 PKCS#8 key off its fields; the `x509.Certificate` object
is made by cryptography only when asked for. `gbhub decode` loads hundreds of key files and
uses a few: importing and running cryptography's X.509 and serialization loaders cost it ~45 ms
of its start-up. Any file of another shape takes cryptography's loaders as before.
"""
from __future__ import annotations

import binascii
import re

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec

from .codec import DecodeError, KeystoreError, der_items, eui_hex, parse_eui

NAME_RE = re.compile(r"^(?P<eui>[0-9a-fA-F]{16})(?P<pp>-pp)?-(?P<usage>ka|ds)\.(?P<kind>pem|key)$")


def __getattr__(name: str):
    """The X.509 object identifiers, imported with cryptography's X.509 module when first used."""
    dotted = {"HARDWARE_MODULE_NAME": _HARDWARE_MODULE_NAME, "X500_UNIQUE_IDENTIFIER": _X500_UNIQUE_IDENTIFIER}.get(name)
    if dotted is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from cryptography.x509.oid import ObjectIdentifier

    value = globals()[name] = ObjectIdentifier(dotted)
    return value


class Slot:
    """One key usage of one party: certificate and/or private key."""

    __slots__ = ("_cert_der", "_certificate", "private_key", "_public", "bare_public", "_names")

    def __init__(self) -> None:
        self._cert_der: bytes | None = None
        self._certificate = None
        self.private_key: ec.EllipticCurvePrivateKey | None = None
        self._public: ec.EllipticCurvePublicKey | None = None
        self.bare_public = False
        self._names: list | None = None  # [role, device EUI], each read when first asked

    @property
    def certificate(self):
        """The `cryptography.x509.Certificate`, parsed on first use."""
        if self._certificate is None and self._cert_der is not None:
            from cryptography import x509

            self._certificate = x509.load_der_x509_certificate(self._cert_der)
        return self._certificate

    def set_certificate(self, cert=None, der: bytes | None = None) -> None:
        """A certificate object, or its DER (read when its key or names are first asked for)."""
        self._certificate, self._cert_der, self.bare_public, self._names = cert, der, False, None
        self._public = cert.public_key() if cert is not None else None

    def name(self, which: int):
        """The certificate's remote-party role (which=0) or device EUI (which=1), or None."""
        if self._names is None:
            self._names = [_UNREAD, _UNREAD]
        value = self._names[which]
        if value is _UNREAD:
            try:
                if self._cert_der is None:
                    raise _Unusual
                value = (_certificate_role if which == 0 else _certificate_device)(self._cert_der)
            except (DecodeError, _Unusual, ValueError):
                value = (certificate_role if which == 0 else certificate_device_eui)(self.certificate)
            self._names[which] = value
        return value

    @property
    def has_certificate(self) -> bool:
        return self._cert_der is not None or self._certificate is not None

    @property
    def public_key(self) -> ec.EllipticCurvePublicKey | None:
        if self._public is None:
            if self._cert_der is not None:
                try:
                    self._public = _certificate_key(self._cert_der)
                except (DecodeError, _Unusual):
                    self._public = self.certificate.public_key()
            elif self.private_key is not None:
                self._public = self.private_key.public_key()
        return self._public


class Keystore:
    """Keys and certificates by (EUI, usage). Usage is 'ka', 'ds' or 'pp-ka'."""

    def __init__(self) -> None:
        self._slots: dict[tuple[bytes, str], Slot] = {}
        self._meta: dict[tuple[bytes, int], object] = {}  # (eui, 0: role / 1: device EUI) -> value

    # -- filling -------------------------------------------------------------------------------
    def add_file(self, name: str, data: bytes) -> None:
        """Add one file by its DCC name; raises KeystoreError for a name or content it can't use."""
        m = NAME_RE.match(name)
        if not m:
            raise KeystoreError(f"not a DCC key file name: {name}")
        eui = bytes.fromhex(m["eui"])
        usage = ("pp-" if m["pp"] else "") + m["usage"]
        try:
            label, der = _pem(data) if b"-----BEGIN" in data else (None, data)
            if m["kind"] == "pem" and label == "PUBLIC KEY":
                self.add_public_key(eui, usage, _public_key(der))
            elif m["kind"] == "pem":
                if label != "CERTIFICATE":
                    raise KeystoreError(f"{name}: not a PEM certificate")
                slot = self._slot(eui, usage)
                try:
                    _certificate_point(der)  # the shape read here, the key made when first used
                    slot.set_certificate(der=der)
                except (DecodeError, _Unusual):  # cryptography's loader says what is wrong, or reads it
                    from cryptography import x509

                    slot.set_certificate(x509.load_der_x509_certificate(der))
                self._forget(eui)
            else:
                self.add_private_key(eui, usage, _private_key(der, label))
        except KeystoreError:
            raise
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise KeystoreError(f"{name}: {exc}") from None

    def add_certificate(self, eui: bytes | str, usage: str, cert) -> None:
        """A `cryptography.x509.Certificate`."""
        eui = parse_eui(eui)
        self._slot(eui, usage).set_certificate(cert)
        self._forget(eui)

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
            if slot.has_certificate:
                mine._cert_der, mine._certificate, mine.bare_public = slot._cert_der, slot._certificate, False
                mine._public, mine._names = slot._public, None
            elif slot.bare_public:
                mine._public, mine.bare_public = slot._public, True
            if slot.private_key is not None:
                mine.private_key = slot.private_key
        self._meta.clear()

    def _forget(self, eui: bytes) -> None:
        self._meta.pop((eui, 0), None)
        self._meta.pop((eui, 1), None)

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

    def certificate(self, eui: bytes, usage: str = "ka"):
        """The `cryptography.x509.Certificate` of (eui, usage), or None."""
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
        return self._info(eui, 0)

    def is_device(self, eui: bytes) -> bool:
        """True when a certificate of `eui` carries a hardwareModuleName (device certificate)."""
        return self._info(eui, 1) is not None

    def _info(self, eui: bytes, which: int):
        """The first certificate's (ds, ka, pp-ka) role (which=0) or device EUI (which=1)."""
        key = (eui, which)
        if key in self._meta:
            return self._meta[key]
        value = None
        for usage in ("ds", "ka", "pp-ka"):
            slot = self._slots.get((eui, usage))
            if slot is not None and slot.has_certificate:
                value = slot.name(which)
                if value is not None:
                    break
        self._meta[key] = value
        return value

    # -- output --------------------------------------------------------------------------------
    def files(self) -> dict[str, bytes]:
        """Everything as DCC-named files (certificates PEM, keys PKCS#8 PEM)."""
        from cryptography.hazmat.primitives import serialization

        out: dict[str, bytes] = {}
        for (eui, usage), slot in sorted(self._slots.items()):
            stem = eui.hex() + "-" + usage
            if slot.has_certificate:
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
            if slot.has_certificate:
                parts.append("cert")
            if slot.private_key is not None:
                parts.append("key")
            role = self.role(eui)
            if role is not None:
                parts.append(f"role {role}")
            lines.append(" ".join(parts))
        return lines


def certificate_role(cert) -> int | None:
    """Organisation certificates carry the remote-party role as OU (2 hex digits)."""
    from cryptography.x509.oid import NameOID

    ous = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    if not ous:
        return None
    try:
        return int(str(ous[0].value), 16)
    except ValueError:
        return None


def certificate_device_eui(cert) -> bytes | None:
    """Device certificates name their EUI in subjectAltName otherName hardwareModuleName."""
    from cryptography import x509

    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    for name in san:
        if isinstance(name, x509.OtherName) and name.type_id.dotted_string == _HARDWARE_MODULE_NAME:
            return _hw_serial(name.value)
    return None


def certificate_org_eui(cert) -> bytes | None:
    """Organisation certificates carry the EUI in x500UniqueIdentifier (a BIT STRING)."""
    from cryptography.x509.oid import ObjectIdentifier

    attrs = cert.subject.get_attributes_for_oid(ObjectIdentifier(_X500_UNIQUE_IDENTIFIER))
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


# -- reading certificates and keys off their DER ---------------------------------------------------

_HARDWARE_MODULE_NAME = "1.3.6.1.5.5.7.8.4"
_X500_UNIQUE_IDENTIFIER = "2.5.4.45"
_OID = 0x06
_OU = b"\x55\x04\x0b"  # id-at-organizationalUnitName 2.5.4.11
_SAN = b"\x55\x1d\x11"  # id-ce-subjectAltName 2.5.29.17
_HW_NAME = b"\x2b\x06\x01\x05\x05\x07\x08\x04"  # id-on-hardwareModuleName 1.3.6.1.5.5.7.8.4
_EC_PUBLIC_KEY = b"\x2a\x86\x48\xce\x3d\x02\x01"  # id-ecPublicKey 1.2.840.10045.2.1
_P256 = b"\x2a\x86\x48\xce\x3d\x03\x01\x07"  # prime256v1 1.2.840.10045.3.1.7
_STRINGS = (0x0C, 0x13, 0x16)  # UTF8String, PrintableString, IA5String
_EC_P256 = [(_OID, _EC_PUBLIC_KEY), (_OID, _P256)]


def _oids(der: bytes, items) -> list[tuple[int, bytes]]:
    return [(ident, der[a:b]) for ident, a, b in items]


_UNREAD = object()


class _Unusual(Exception):
    """A certificate or key this reader does not take: cryptography's loader decides."""


def _pem(data: bytes) -> tuple[str, bytes]:
    """(label, DER) of the first PEM block."""
    text = data.decode("ascii", "replace")
    begin = text.find("-----BEGIN ")
    label_end = text.find("-----", begin + 11)
    end = text.find("-----END ", label_end)
    if begin < 0 or label_end < 0 or end < 0:
        raise ValueError("not a PEM block")
    try:
        return text[begin + 11 : label_end], binascii.a2b_base64(text[label_end + 5 : end])
    except binascii.Error as exc:
        raise ValueError(f"bad PEM base64: {exc}") from None


def _one(buf: bytes, start: int, end: int, ident: int) -> tuple[int, int]:
    items = der_items(buf, start, end)
    if len(items) != 1 or items[0][0] != ident:
        raise _Unusual
    return items[0][1], items[0][2]


def _spki_point(der: bytes, start: int, end: int) -> bytes:
    """The P-256 point of a SubjectPublicKeyInfo's contents."""
    alg, bits = der_items(der, start, end)
    oids = der_items(der, alg[1], alg[2])
    if alg[0] != 0x30 or bits[0] != 0x03 or _oids(der, oids) != _EC_P256:
        raise _Unusual
    if bits[2] - bits[1] != 66 or der[bits[1]] != 0 or der[bits[1] + 1] != 4:  # uncompressed: others by cryptography
        raise _Unusual
    return der[bits[1] + 1 : bits[2]]


def _public_key(der: bytes) -> ec.EllipticCurvePublicKey:
    """A PUBLIC KEY (SubjectPublicKeyInfo) file's key."""
    try:
        point = _spki_point(der, *_one(der, 0, len(der), 0x30))
    except (DecodeError, _Unusual, ValueError):
        from cryptography.hazmat.primitives import serialization

        key = serialization.load_der_public_key(der)
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise KeystoreError("not an EC public key") from None
        return key
    return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)


def _private_key(der: bytes, label: str | None) -> ec.EllipticCurvePrivateKey:
    """A PKCS#8 P-256 key read off its fields (RFC 5208, RFC 5915); anything else by cryptography."""
    try:
        if label not in (None, "PRIVATE KEY"):
            raise _Unusual
        top = der_items(der, *_one(der, 0, len(der), 0x30))
        if len(top) != 3:
            raise _Unusual
        version, alg, octets = top
        if (version[0], alg[0], octets[0]) != (0x02, 0x30, 0x04) or der[version[1] : version[2]] != b"\x00" \
                or _oids(der, der_items(der, alg[1], alg[2])) != _EC_P256:
            raise _Unusual
        inner = der_items(der, *_one(der, octets[1], octets[2], 0x30))
        # ECPrivateKey: version 1, the 32-byte scalar, [0] the curve and [1] the public key, each optional
        if len(inner) < 2 or inner[0][0] != 0x02 or der[inner[0][1] : inner[0][2]] != b"\x01" \
                or inner[1][0] != 0x04 or inner[1][2] - inner[1][1] != 32:
            raise _Unusual
        rest = inner[2:]
        if [ident for ident, _, _ in rest] not in ([], [0xA0], [0xA1], [0xA0, 0xA1]):
            raise _Unusual
        key = ec.derive_private_key(int.from_bytes(der[inner[1][1] : inner[1][2]], "big"), ec.SECP256R1())
        for ident, a, b in rest:
            if ident == 0xA0 and _oids(der, der_items(der, a, b)) != _EC_P256[1:]:
                raise _Unusual
            if ident == 0xA1:  # the public key, when given, must be the key's own
                bits = _one(der, a, b, 0x03)
                n = key.public_key().public_numbers()
                if der[bits[0] : bits[1]] != b"\x00\x04" + n.x.to_bytes(32, "big") + n.y.to_bytes(32, "big"):
                    raise _Unusual
        return key
    except (DecodeError, _Unusual, IndexError, ValueError):
        from cryptography.hazmat.primitives import serialization

        if label is None:
            key = serialization.load_der_private_key(der, password=None)
        else:
            key = serialization.load_pem_private_key(f"-----BEGIN {label}-----\n".encode()
                                                     + binascii.b2a_base64(der) + f"-----END {label}-----\n".encode(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise KeystoreError("not an EC private key") from None
        return key


def _tbs(der: bytes) -> list[tuple[int, int, int]]:
    """The TBSCertificate's fields, [0] version first when present."""
    cert = der_items(der, *_one(der, 0, len(der), 0x30))
    if len(cert) != 3 or cert[0][0] != 0x30:
        raise _Unusual
    tbs = der_items(der, cert[0][1], cert[0][2])
    if len(tbs) < (7 if tbs and tbs[0][0] == 0xA0 else 6):
        raise _Unusual
    return tbs


def _certificate_point(der: bytes) -> bytes:
    """The P-256 public key point of an X.509 certificate; _Unusual for another key type."""
    tbs = _tbs(der)
    spki = tbs[6 if tbs[0][0] == 0xA0 else 5]
    if spki[0] != 0x30:
        raise _Unusual
    return _spki_point(der, spki[1], spki[2])


def _certificate_key(der: bytes) -> ec.EllipticCurvePublicKey:
    return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), _certificate_point(der))


def _certificate_role(der: bytes) -> int | None:
    """The remote-party role, as `certificate_role` reads it."""
    if _OU not in der:  # most certificates (devices') have no OU: no walk of their subject
        return None
    tbs = _tbs(der)
    subject = tbs[5 if tbs[0][0] == 0xA0 else 4]
    for _, a, b in der_items(der, subject[1], subject[2]):  # RDN SETs in order
        for _, c, d in der_items(der, a, b):  # AttributeTypeAndValue
            oid, value = der_items(der, c, d)[:2]
            if der[oid[1] : oid[2]] == _OU:
                if value[0] not in _STRINGS:
                    raise _Unusual
                try:
                    return int(der[value[1] : value[2]].decode("utf-8"), 16)
                except ValueError:
                    return None  # an OU that is not a role
    return None


def _certificate_device(der: bytes) -> bytes | None:
    """The device EUI (subjectAltName hardwareModuleName), as `certificate_device_eui` reads it."""
    if _HW_NAME not in der:
        return None
    tbs = _tbs(der)
    for ident, a, b in tbs[7 if tbs[0][0] == 0xA0 else 6 :]:
        if ident != 0xA3:  # [3] extensions
            continue
        for _, c, d in der_items(der, *_one(der, a, b, 0x30)):
            ext = der_items(der, c, d)
            if der[ext[0][1] : ext[0][2]] != _SAN:
                continue
            if ext[-1][0] != 0x04:
                raise _Unusual
            for gident, e, f in der_items(der, *_one(der, ext[-1][1], ext[-1][2], 0x30)):
                if gident != 0xA0:  # otherName
                    continue
                type_id, value = der_items(der, e, f)
                if type_id[0] == _OID and der[type_id[1] : type_id[2]] == _HW_NAME and value[0] == 0xA0:
                    return _hw_serial(der[value[1] : value[2]])
    return None
