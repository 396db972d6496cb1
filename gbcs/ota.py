"""The GBCS OTA upgrade image (FACTS §4.1): a ZigBee OTA file header, the manufacturer image (the
firmware, opaque), one "force replace" byte, and the supplier's ECDSA P-256 signature over the
manufacturer image alone.

    header (little-endian)   file id 0x0BEEF11E, header version 0x0100, header length,
                             field control (bit0 security credential version, bit1 upgrade file
                             destination, bit2 hardware versions), manufacturer code, image type,
                             file version, stack version, 32-byte header string, total image size,
                             [credential version (1)] [destination (8)] [min hw (2), max hw (2)]
    manufacturer image       n bytes
    force replace            1 byte (0x00 [O sample]; HG names it, only the CH uses it)
    signature length         0x40
    signature                64 bytes r||s

No ZigBee OTA sub-element tags are used [V]. The manufacturer image hash (SHA-256 of the
manufacturer image) is what CS06 names and what the distribution receipt alert carries. The
firmware version a device reports (ECS52 / CS06 outcome) is the file version as 4 big-endian
octets [I: RTDS versions are 4 octets, `0123ABCD`].

Sans-IO: `OtaImage.decode(bytes)` (raises `DecodeError` naming the offset and field, never
anything else) and `encode()`, `build_image(...)` to make and sign one, `verify(public_key)`.
"""
from __future__ import annotations

import hashlib
from dataclasses import replace

import construct as cs
from cryptography.hazmat.primitives.asymmetric import ec

from .codec import DecodeError, EncodeError, frozen_dataclass
from .security import sign, verify

__all__ = [
    "FILE_IDENTIFIER",
    "HEADER_STRING_LENGTH",
    "SIGNATURE_LENGTH",
    "OtaHeader",
    "OtaImage",
    "build_image",
    "version_bytes",
    "file_version",
]

FILE_IDENTIFIER = 0x0BEEF11E
HEADER_VERSION = 0x0100
STACK_VERSION = 0x0002  # ZigBee PRO [O sample]
HEADER_STRING_LENGTH = 32
SIGNATURE_LENGTH = 64
_BASE_HEADER = 56  # bytes up to and including the total image size
_TRAILER = 2 + SIGNATURE_LENGTH  # force replace, signature length, signature

FC_CREDENTIAL_VERSION = 0x01
FC_DESTINATION = 0x02
FC_HARDWARE_VERSIONS = 0x04

_HEADER = cs.Struct(
    "file_identifier" / cs.Int32ul,
    "header_version" / cs.Int16ul,
    "header_length" / cs.Int16ul,
    "field_control" / cs.Int16ul,
    "manufacturer_code" / cs.Int16ul,
    "image_type" / cs.Int16ul,
    "file_version" / cs.Int32ul,
    "stack_version" / cs.Int16ul,
    "header_string" / cs.Bytes(HEADER_STRING_LENGTH),
    "total_image_size" / cs.Int32ul,
    "security_credential_version" / cs.If(cs.this.field_control & FC_CREDENTIAL_VERSION, cs.Int8ul),
    "destination" / cs.If(cs.this.field_control & FC_DESTINATION, cs.Bytes(8)),
    "hw_min" / cs.If(cs.this.field_control & FC_HARDWARE_VERSIONS, cs.Int16ul),
    "hw_max" / cs.If(cs.this.field_control & FC_HARDWARE_VERSIONS, cs.Int16ul),
)


def version_bytes(version: int) -> bytes:
    """The firmware version octets a device reports for an image's file version."""
    return version.to_bytes(4, "big")


def file_version(octets: bytes) -> int:
    """Inverse of `version_bytes` (shorter octet strings are right-aligned)."""
    return int.from_bytes(octets[-4:], "big")


@frozen_dataclass
class OtaHeader:
    """The ZigBee OTA file header as GBCS uses it. `header_length` and `total_image_size` are
    what the file says (`OtaImage.decode` checks them against the file)."""

    manufacturer_code: int
    image_type: int
    file_version: int
    header_string: bytes = b""
    hw_min: int | None = None
    hw_max: int | None = None
    security_credential_version: int | None = None
    destination: bytes | None = None
    stack_version: int = STACK_VERSION
    header_version: int = HEADER_VERSION
    header_length: int = 0
    total_image_size: int = 0

    @property
    def field_control(self) -> int:
        fc = 0
        if self.security_credential_version is not None:
            fc |= FC_CREDENTIAL_VERSION
        if self.destination is not None:
            fc |= FC_DESTINATION
        if self.hw_min is not None or self.hw_max is not None:
            fc |= FC_HARDWARE_VERSIONS
        return fc

    @property
    def size(self) -> int:
        """Encoded length of this header."""
        fc = self.field_control
        return (_BASE_HEADER + (1 if fc & FC_CREDENTIAL_VERSION else 0) + (8 if fc & FC_DESTINATION else 0)
                + (4 if fc & FC_HARDWARE_VERSIONS else 0))

    @property
    def version(self) -> bytes:
        return version_bytes(self.file_version)

    @property
    def text(self) -> str:
        return self.header_string.rstrip(b"\x00").decode("latin-1")

    def accepts_hardware(self, hardware_version: int | None) -> bool:
        """Whether a device of `hardware_version` may take the image (no range: any)."""
        if hardware_version is None:
            return True
        low = 0 if self.hw_min is None else self.hw_min
        high = 0xFFFF if self.hw_max is None else self.hw_max
        return low <= hardware_version <= high

    def encode(self) -> bytes:
        text = self.header_string
        if len(text) > HEADER_STRING_LENGTH:
            raise EncodeError(f"header string is {len(text)} bytes, at most {HEADER_STRING_LENGTH}")
        hw = self.field_control & FC_HARDWARE_VERSIONS
        try:
            return _HEADER.build(dict(
                file_identifier=FILE_IDENTIFIER, header_version=self.header_version,
                header_length=self.header_length or self.size, field_control=self.field_control,
                manufacturer_code=self.manufacturer_code, image_type=self.image_type, file_version=self.file_version,
                stack_version=self.stack_version, header_string=text.ljust(HEADER_STRING_LENGTH, b"\x00"),
                total_image_size=self.total_image_size,
                security_credential_version=self.security_credential_version, destination=self.destination,
                hw_min=(self.hw_min or 0) if hw else None, hw_max=(0xFFFF if self.hw_max is None else self.hw_max) if hw else None,
            ))
        except (cs.ConstructError, OverflowError) as exc:
            raise EncodeError(f"OTA header: {exc}") from None

    @classmethod
    def decode(cls, data: bytes) -> "OtaHeader":
        """The header at the start of `data` (the rest is not looked at)."""
        if len(data) < _BASE_HEADER:
            raise DecodeError(f"{len(data)} bytes: an OTA header needs at least {_BASE_HEADER}", len(data), "header")
        try:
            h = _HEADER.parse(data)
        except cs.ConstructError:
            raise DecodeError("OTA header ends inside its optional fields", len(data), "header") from None
        if h.file_identifier != FILE_IDENTIFIER:
            raise DecodeError(f"file identifier 0x{h.file_identifier:08X}, not 0x{FILE_IDENTIFIER:08X}", 0, "file_identifier")
        header = cls(h.manufacturer_code, h.image_type, h.file_version, bytes(h.header_string), h.hw_min, h.hw_max,
                     h.security_credential_version, None if h.destination is None else bytes(h.destination),
                     h.stack_version, h.header_version, h.header_length, h.total_image_size)
        if h.header_length != header.size:
            raise DecodeError(f"header length {h.header_length}, but its fields take {header.size}", 6, "header_length")
        return header


@frozen_dataclass
class OtaImage:
    """A whole upgrade image. `encode(decode(b)) == b` for every valid image."""

    header: OtaHeader
    manufacturer_image: bytes
    signature: bytes
    force_replace: int = 0

    @property
    def image_hash(self) -> bytes:
        """Manufacturer image hash: SHA-256 of the manufacturer image (FACTS §4.1)."""
        return hashlib.sha256(self.manufacturer_image).digest()

    @property
    def version(self) -> bytes:
        return self.header.version

    @property
    def size(self) -> int:
        return self.header.size + len(self.manufacturer_image) + _TRAILER

    def verify(self, public_key: ec.EllipticCurvePublicKey | None) -> bool:
        """The supplier signature over the manufacturer image."""
        return public_key is not None and verify(public_key, self.signature, self.manufacturer_image)

    def encode(self) -> bytes:
        if len(self.signature) != SIGNATURE_LENGTH:
            raise EncodeError(f"signature is {len(self.signature)} bytes, not {SIGNATURE_LENGTH}")
        if not 0 <= self.force_replace <= 0xFF:
            raise EncodeError("force replace is one byte")
        header = replace(self.header, header_length=self.header.size, total_image_size=self.size)
        return b"".join((header.encode(), self.manufacturer_image, bytes((self.force_replace, SIGNATURE_LENGTH)), self.signature))

    @classmethod
    def decode(cls, data: bytes) -> "OtaImage":
        data = bytes(data)
        header = OtaHeader.decode(data)
        if header.total_image_size != len(data):
            raise DecodeError(f"total image size {header.total_image_size}, but the file has {len(data)} bytes",
                              52, "total_image_size")
        start, end = header.size, len(data) - _TRAILER
        if end < start:
            raise DecodeError("no room for the signature after the header", len(data), "signature")
        if data[end + 1] != SIGNATURE_LENGTH:
            raise DecodeError(f"signature length 0x{data[end + 1]:02X}, not 0x40", end + 1, "signature_length")
        return cls(header, data[start:end], data[end + 2:], data[end])

    def describe(self) -> dict:
        """JSON-able summary (`gbhub firmware inspect`)."""
        h = self.header
        return {
            "manufacturer_code": f"0x{h.manufacturer_code:04X}", "image_type": f"0x{h.image_type:04X}",
            "file_version": f"0x{h.file_version:08X}", "version": h.version.hex().upper(),
            "header_string": h.text, "stack_version": f"0x{h.stack_version:04X}",
            "hw_min": h.hw_min, "hw_max": h.hw_max,
            "security_credential_version": h.security_credential_version,
            "destination": None if h.destination is None else h.destination.hex().upper(),
            "total_image_size": h.total_image_size, "manufacturer_image_size": len(self.manufacturer_image),
            "force_replace": self.force_replace, "manufacturer_image_hash": self.image_hash.hex().upper(),
        }


def build_image(manufacturer_image: bytes, *, manufacturer_code: int, image_type: int, version: int,
                sign_key: ec.EllipticCurvePrivateKey, hw_min: int | None = None, hw_max: int | None = None,
                header_string: bytes | str = b"", force_replace: int = 0) -> OtaImage:
    """A signed image: the supplier's DS key signs the manufacturer image."""
    if isinstance(header_string, str):
        header_string = header_string.encode("latin-1")
    for name, value, bits in (("manufacturer code", manufacturer_code, 16), ("image type", image_type, 16),
                              ("version", version, 32), ("hw_min", hw_min or 0, 16), ("hw_max", hw_max or 0, 16)):
        if not 0 <= value < 1 << bits:
            raise EncodeError(f"{name} {value} does not fit {bits} bits")
    header = OtaHeader(manufacturer_code, image_type, version, header_string[:HEADER_STRING_LENGTH], hw_min,
                       hw_max if hw_max is not None or hw_min is None else 0xFFFF)
    image = OtaImage(header, bytes(manufacturer_image), sign(sign_key, bytes(manufacturer_image)), force_replace)
    return OtaImage.decode(image.encode())  # header length and total size filled in
