"""Certificate-based key establishment (ZigBee SE Key Establishment cluster 0x0800), the maths:
binary-field elliptic curves sect283k1 (crypto suite 2) and sect163k1 (suite 1), ECQV implicit
certificates and ECMQV key agreement, sans-IO.

Why it is written here: `cryptography` dropped binary curves (version 47) and no maintained
package on the registry does ECQV/ECMQV on them. This module is the one place gbhub does curve
arithmetic itself; everything else comes from `cryptography` (AES) and `han.join` (AES-MMO).

Facts [S SEC 2 v1 §3.4 (curve parameters); SEC 1 v2 §2.3.3-2.3.4 (point compression),
§3.4 (ECMQV); SEC 4 (ECQV); ZigBee SE 1.2 Annex C (CBKE: certificate layouts, KDF, MACs)]:

* sect283k1: y² + xy = x³ + 1 over GF(2^283), f = x^283 + x^12 + x^7 + x^5 + 1, cofactor 4.
  sect163k1: y² + xy = x³ + x² + 1 over GF(2^163), f = x^163 + x^7 + x^6 + x^3 + 1, cofactor 2.
* Points travel compressed (02/03 ‖ x), 37 bytes (283k1) or 22 bytes (163k1).
* ECQV: the public key of a certificate's subject is Q = e·P + Q_CA, P its reconstruction point,
  e = AES-MMO(certificate) as an integer mod n; its private key d = e·k + r (r from the CA).
* ECMQV: x̄(R) = (x mod 2^⌈log2(n)/2⌉) + 2^⌈log2(n)/2⌉; s = r + x̄(R)·d mod n;
  Z = x(h·s·(R' + x̄(R')·Q')).
* KDF: MacKey ‖ KeyData = AES-MMO(Z ‖ 00000001) ‖ AES-MMO(Z ‖ 00000002); MACs are HMAC with
  AES-MMO: MAC_U = H(MacKey, 02 ‖ ID_U ‖ ID_V ‖ QE_U ‖ QE_V), MAC_V with 03 and the other order.

Test vectors used (tests/test_cbke.py): the key pairs and implicit certificates of the ZigBee SE
1.2 Annex C.5 sect283k1 example as published in open stacks' test suites.
"""
from __future__ import annotations

import hmac
from dataclasses import dataclass
from enum import IntEnum
from secrets import token_bytes
from typing import Callable, Iterable

from .codec import DecodeError, frozen_dataclass


class CbkeError(ValueError):
    """A point, key or certificate that is not valid on the curve."""


# ---------------------------------------------------------------------------------------------
# GF(2^m) arithmetic on Python integers (bit i = coefficient of x^i)
# ---------------------------------------------------------------------------------------------


def _clmul(a: int, b: int) -> int:
    """Carry-less product, 4 bits of `b` at a time."""
    table = [0] * 16
    table[1] = a
    for i in range(2, 16, 2):
        table[i] = table[i >> 1] << 1
        table[i + 1] = table[i] ^ a
    result = 0
    shift = 0
    while b:
        nibble = b & 0xF
        if nibble:
            result ^= table[nibble] << shift
        b >>= 4
        shift += 4
    return result


#: Each byte with a zero bit inserted after every bit (b7..b0 → 0b7 0b6 ... 0b0): squaring.
_SPREAD = tuple(sum(((b >> i) & 1) << (2 * i) for i in range(8)) for b in range(256))


@dataclass(frozen=True)
class Curve:
    """A Koblitz curve y² + xy = x³ + a·x² + b over GF(2^m) with reduction polynomial `poly`."""

    name: str
    m: int
    poly: int
    a: int
    b: int
    gx: int
    gy: int
    n: int
    h: int

    @property
    def size(self) -> int:
        """Bytes of a field element (and of a private key)."""
        return (self.m + 7) // 8

    @property
    def point_size(self) -> int:
        return 1 + self.size

    # -- field --------------------------------------------------------------------------------
    def __post_init__(self) -> None:
        # x^m = the reduction polynomial's lower terms: their exponents fold the high part down
        object.__setattr__(self, "_taps", tuple(k for k in range(self.m) if self.poly >> k & 1))
        object.__setattr__(self, "_mask", (1 << self.m) - 1)

    def reduce(self, v: int) -> int:
        m, mask, taps = self.m, self._mask, self._taps
        while v >> m:
            high = v >> m
            v &= mask
            for k in taps:
                v ^= high << k
        return v

    def mul(self, a: int, b: int) -> int:
        return self.reduce(_clmul(a, b))

    def sqr(self, a: int) -> int:
        """Squaring in GF(2^m) spreads the bits (x^i → x^2i), a byte at a time."""
        out, shift = 0, 0
        while a:
            out |= _SPREAD[a & 0xFF] << shift
            a >>= 8
            shift += 16
        return self.reduce(out)

    def inv(self, a: int) -> int:
        """Inverse by the extended Euclidean algorithm on polynomials."""
        if a == 0:
            raise ZeroDivisionError("0 has no inverse")
        u, v, g1, g2 = a, self.poly, 1, 0
        while u != 1:
            j = u.bit_length() - v.bit_length()
            if j < 0:
                u, v, g1, g2 = v, u, g2, g1
                j = -j
            u ^= v << j
            g1 ^= g2 << j
        return self.reduce(g1)

    def half_trace(self, c: int) -> int:
        """A solution z of z² + z = c (m odd) when one exists."""
        z = c
        for _ in range((self.m - 1) // 2):
            z = self.sqr(self.sqr(z)) ^ c
        return z

    # -- points (affine; None is the point at infinity) ----------------------------------------
    @property
    def g(self) -> tuple[int, int]:
        return (self.gx, self.gy)

    def on_curve(self, p: tuple[int, int] | None) -> bool:
        if p is None:
            return True
        x, y = p
        return self.sqr(y) ^ self.mul(x, y) == self.mul(self.sqr(x), x) ^ self.mul(self.a, self.sqr(x)) ^ self.b

    def add(self, p: tuple[int, int] | None, q: tuple[int, int] | None) -> tuple[int, int] | None:
        if p is None:
            return q
        if q is None:
            return p
        x1, y1 = p
        x2, y2 = q
        if x1 == x2:
            if y1 ^ y2 == x2 or x1 == 0:  # q = -p (or doubling a point of order 2)
                return None
            return self.double(p)
        lam = self.mul(y1 ^ y2, self.inv(x1 ^ x2))
        x3 = self.sqr(lam) ^ lam ^ x1 ^ x2 ^ self.a
        y3 = self.mul(lam, x1 ^ x3) ^ x3 ^ y1
        return (x3, y3)

    def double(self, p: tuple[int, int] | None) -> tuple[int, int] | None:
        if p is None or p[0] == 0:
            return None
        x, y = p
        lam = x ^ self.mul(y, self.inv(x))
        x3 = self.sqr(lam) ^ lam ^ self.a
        y3 = self.sqr(x) ^ self.mul(lam ^ 1, x3)
        return (x3, y3)

    def multiply(self, k: int, p: tuple[int, int] | None) -> tuple[int, int] | None:
        """k·p by a width-4 window (points precomputed once per call)."""
        if p is None or k == 0:
            return None
        if k < 0:
            return self.negate(self.multiply(-k, p))
        table: list[tuple[int, int] | None] = [None, p]
        for _ in range(14):
            table.append(self.add(table[-1], p))
        result = None
        for shift in range((k.bit_length() + 3) // 4 * 4 - 4, -1, -4):
            for _ in range(4):
                result = self.double(result)
            nibble = (k >> shift) & 0xF
            if nibble:
                result = self.add(result, table[nibble])
        return result

    def negate(self, p: tuple[int, int] | None) -> tuple[int, int] | None:
        return None if p is None else (p[0], p[0] ^ p[1])

    # -- encodings ----------------------------------------------------------------------------
    def compress(self, p: tuple[int, int] | None) -> bytes:
        if p is None:
            raise CbkeError("the point at infinity has no compressed form")
        x, y = p
        bit = 0 if x == 0 else self.mul(y, self.inv(x)) & 1
        return bytes((2 | bit,)) + x.to_bytes(self.size, "big")

    def decompress(self, data: bytes) -> tuple[int, int]:
        """A compressed point (outside input): raises CbkeError unless it is on the curve."""
        data = bytes(data)
        if len(data) != self.point_size or data[0] not in (2, 3):
            raise CbkeError(f"a compressed {self.name} point is 02/03 followed by {self.size} bytes")
        x = int.from_bytes(data[1:], "big")
        if x.bit_length() > self.m:
            raise CbkeError("x is not a field element")
        if x == 0:
            return (0, self._sqrt(self.b))  # y² = b
        beta = x ^ self.a ^ self.mul(self.b, self.inv(self.sqr(x)))
        z = self.half_trace(beta)
        if self.sqr(z) ^ z != beta:
            raise CbkeError("not a point of the curve")
        if (z & 1) != (data[0] & 1):
            z ^= 1
        return (x, self.mul(x, z))

    def _sqrt(self, a: int) -> int:
        for _ in range(self.m - 1):
            a = self.sqr(a)
        return a

    def public_key(self, data: bytes) -> tuple[int, int]:
        """A peer's public key: on the curve, not infinity, of order n (SEC 1 §3.2.2)."""
        q = self.decompress(data)
        if self.multiply(self.n, q) is not None:
            raise CbkeError("the point is not in the subgroup of order n")
        return q

    def private_key_bytes(self, d: int) -> bytes:
        return d.to_bytes(self.size, "big")

    def generate(self, random_bytes=token_bytes) -> tuple[int, tuple[int, int]]:
        """(d, Q = d·G) with d uniform in 1..n-1."""
        while True:
            d = int.from_bytes(random_bytes(self.size + 8), "big") % self.n
            if d:
                return d, self.multiply(d, self.g)


SECT283K1 = Curve(
    "sect283k1", 283, (1 << 283) | (1 << 12) | (1 << 7) | (1 << 5) | 1, 0, 1,
    0x0503213F78CA44883F1A3B8162F188E553CD265F23C1567A16876913B0C2AC2458492836,
    0x01CCDA380F1C9E318D90F95D07E5426FE87E45C0E8184698E45962364E34116177DD2259,
    0x01FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFE9AE2ED07577265DFF7F94451E061E163C61, 4,
)
SECT163K1 = Curve(
    "sect163k1", 163, (1 << 163) | (1 << 7) | (1 << 6) | (1 << 3) | 1, 1, 1,
    0x02FE13C0537BBC11ACAA07D793DE4E6D5E5C94EEE8,
    0x0289070FB05D38FF58321F2E800536D538CCDAA3D9,
    0x04000000000000000000020108A2E0CC0D99F8A5EF, 2,
)


# ---------------------------------------------------------------------------------------------
# ECQV implicit certificates and ECMQV
# ---------------------------------------------------------------------------------------------


def aes_mmo(data: bytes) -> bytes:
    """ZigBee AES-MMO hash (Matyas-Meyer-Oseas: H_i = E(H_{i-1}, M_i) xor M_i, H_0 = 0), with the
    ZigBee padding: 0x80, zeros, then the bit length in 16 bits (inputs under 8 KiB)."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    bits = 8 * len(data)
    if bits >= 1 << 16:
        raise ValueError("aes_mmo handles inputs shorter than 8192 bytes")
    padded = bytearray(data)
    padded.append(0x80)
    while (len(padded) + 2) % 16:
        padded.append(0)
    padded += bits.to_bytes(2, "big")
    digest = bytes(16)
    for i in range(0, len(padded), 16):
        block = bytes(padded[i : i + 16])
        out = Cipher(algorithms.AES(digest), modes.ECB()).encryptor().update(block)
        digest = bytes(a ^ b for a, b in zip(out, block))
    return digest


_mmo = aes_mmo


def certificate_hash(certificate: bytes, curve: Curve) -> int:
    """e = AES-MMO(certificate) as an integer mod n (ECQV)."""
    return int.from_bytes(_mmo(certificate), "big") % curve.n


def reconstruct_public_key(certificate: bytes, reconstruction: bytes, ca_public: bytes, curve: Curve) -> bytes:
    """The subject's public key from its implicit certificate: Q = e·P + Q_CA (compressed)."""
    p = curve.decompress(reconstruction)
    q = curve.add(curve.multiply(certificate_hash(certificate, curve), p), curve.decompress(ca_public))
    if q is None:
        raise CbkeError("the certificate reconstructs the point at infinity")
    return curve.compress(q)


def issue(certificate_without_key: Callable[[bytes], bytes], ca_private: int, curve: Curve, *, request: tuple[int, tuple[int, int]] | None = None,
          random_bytes=token_bytes) -> tuple[bytes, int]:
    """A CA's side of ECQV: `certificate_without_key(reconstruction_point_bytes) -> certificate`
    builds the certificate around P; returns (certificate, subject private key d)."""
    k, ru = request if request is not None else curve.generate(random_bytes)
    while True:
        kc, _ = curve.generate(random_bytes)
        p = curve.add(ru, curve.multiply(kc, curve.g))
        if p is None:
            continue
        cert = certificate_without_key(curve.compress(p))
        e = certificate_hash(cert, curve)
        r = (e * kc + ca_private) % curve.n
        d = (e * k + r) % curve.n
        return cert, d


def _xbar(point: tuple[int, int], curve: Curve) -> int:
    half = (curve.n.bit_length() + 1) // 2
    return (point[0] % (1 << half)) + (1 << half)


def ecmqv(d_static: int, ephemeral: tuple[int, tuple[int, int]], peer_static: bytes, peer_ephemeral: bytes,
          curve: Curve) -> bytes:
    """The shared secret Z (x coordinate, `curve.size` bytes) of ECMQV."""
    r, big_r = ephemeral
    # Embedded validation (on the curve) suffices: the cofactor h in Z kills small-subgroup parts.
    q2 = curve.decompress(peer_static)
    r2 = curve.decompress(peer_ephemeral)
    s = (r + _xbar(big_r, curve) * d_static) % curve.n
    point = curve.multiply((curve.h * s) % curve.n, curve.add(r2, curve.multiply(_xbar(r2, curve), q2)))
    if point is None:
        raise CbkeError("ECMQV gave the point at infinity")
    return point[0].to_bytes(curve.size, "big")


def kdf(z: bytes) -> tuple[bytes, bytes]:
    """(MacKey, KeyData) from the shared secret."""
    return _mmo(z + b"\x00\x00\x00\x01"), _mmo(z + b"\x00\x00\x00\x02")


def hmac_mmo(key: bytes, message: bytes) -> bytes:
    """HMAC over AES-MMO (block 16 bytes)."""
    key = key if len(key) <= 16 else _mmo(key)
    key = key.ljust(16, b"\0")
    inner = _mmo(bytes(b ^ 0x36 for b in key) + message)
    return _mmo(bytes(b ^ 0x5C for b in key) + inner)


def confirmation_macs(mac_key: bytes, id_u: bytes, id_v: bytes, qe_u: bytes, qe_v: bytes) -> tuple[bytes, bytes]:
    """(MAC_U, MAC_V): what initiator U and responder V send in Confirm Key Data."""
    return (hmac_mmo(mac_key, b"\x02" + id_u + id_v + qe_u + qe_v),
            hmac_mmo(mac_key, b"\x03" + id_v + id_u + qe_v + qe_u))


# ---------------------------------------------------------------------------------------------
# Crypto suite 2 implicit certificate (74 bytes) [S ZigBee SE 1.2 C.4.2.2.4]
# ---------------------------------------------------------------------------------------------


@frozen_dataclass
class Certificate283:
    """type(1) serial(8) curve(1) hash(1) issuer(8) valid_from(5) valid_to(4) subject(8)
    key_usage(1) reconstruction(37)."""

    serial: bytes
    issuer: bytes
    valid_from: int
    valid_to: int
    subject: bytes
    key_usage: int
    reconstruction: bytes
    type: int = 0
    curve: int = 0x0D
    hash: int = 0x08

    LENGTH = 74

    def encode(self) -> bytes:
        return (bytes((self.type,)) + self.serial + bytes((self.curve, self.hash)) + self.issuer
                + self.valid_from.to_bytes(5, "big") + self.valid_to.to_bytes(4, "big") + self.subject
                + bytes((self.key_usage,)) + self.reconstruction)


def decode_certificate283(data: bytes) -> Certificate283:
    data = bytes(data)
    if len(data) != Certificate283.LENGTH:
        raise DecodeError(f"a suite 2 certificate is 74 bytes, not {len(data)}", len(data), "certificate")
    return Certificate283(data[1:9], data[11:19], int.from_bytes(data[19:24], "big"), int.from_bytes(data[24:28], "big"),
                          data[28:36], data[36], data[37:74], data[0], data[9], data[10])


@frozen_dataclass
class Certificate163:
    """Crypto suite 1 implicit certificate (48 bytes): reconstruction(22) subject(8) issuer(8)
    profile attribute data(10) [S ZigBee SE 1.1 C.4.2.2.4]."""

    reconstruction: bytes
    subject: bytes
    issuer: bytes
    profile_data: bytes = bytes(10)

    LENGTH = 48

    def encode(self) -> bytes:
        return self.reconstruction + self.subject + self.issuer + self.profile_data


def decode_certificate163(data: bytes) -> Certificate163:
    data = bytes(data)
    if len(data) != Certificate163.LENGTH:
        raise DecodeError(f"a suite 1 certificate is 48 bytes, not {len(data)}", len(data), "certificate")
    return Certificate163(data[:22], data[22:30], data[30:38], data[38:48])


def decode_certificate(suite: int, data: bytes) -> "Certificate163 | Certificate283":
    """The certificate of a key establishment suite (DecodeError for a malformed one)."""
    return decode_certificate163(data) if suite == SUITE_1 else decode_certificate283(data)


# ---------------------------------------------------------------------------------------------
# The Key Establishment exchange (cluster 0x0800), sans-IO
# ---------------------------------------------------------------------------------------------

#: KeyEstablishmentSuite bitmap values.
SUITE_1 = 0x0001  # sect163k1, 48-byte certificates
SUITE_2 = 0x0002  # sect283k1, 74-byte certificates
CURVES = {SUITE_1: SECT163K1, SUITE_2: SECT283K1}

# Command ids (the same in both directions).
INITIATE, EPHEMERAL, CONFIRM, TERMINATE = 0x00, 0x01, 0x02, 0x03


class Terminate(IntEnum):
    """Terminate Key Establishment status codes."""

    UNKNOWN_ISSUER = 0x01
    BAD_KEY_CONFIRM = 0x02
    BAD_MESSAGE = 0x03
    NO_RESOURCES = 0x04
    UNSUPPORTED_SUITE = 0x05
    INVALID_CERTIFICATE = 0x06


class KeyEstablishmentFailed(CbkeError):
    def __init__(self, status: int, message: str = "") -> None:
        self.status = status
        name = status.name if isinstance(status, Terminate) else f"status {status}"
        super().__init__(f"key establishment terminated: {name}" + (f" ({message})" if message else ""))


@dataclass(frozen=True)
class CbkeIdentity:
    """What one party holds: its implicit certificate and private key, and the CA public key
    it trusts (suite 2)."""

    certificate: bytes
    private_key: int
    ca_public: bytes
    suite: int = SUITE_2

    @property
    def curve(self) -> Curve:
        return CURVES[self.suite]

    @property
    def subject(self) -> bytes:
        return decode_certificate(self.suite, self.certificate).subject

    @property
    def issuer(self) -> bytes:
        return decode_certificate(self.suite, self.certificate).issuer


class TestCa:
    """A gbhub test certification authority for emulated devices (suite 2, or suite 1)."""

    def __init__(self, issuer: bytes | None = None, private_key: int | None = None, random_bytes=token_bytes,
                 suite: int = SUITE_2) -> None:
        self.suite = suite
        self.curve = curve = CURVES[suite]
        self._random = random_bytes
        if private_key is None:
            private_key, point = curve.generate(random_bytes)
        else:
            point = curve.multiply(private_key, curve.g)
        self.private_key = private_key
        self.public = curve.compress(point)
        # default issuer id: from the CA key, so two test CAs never pass for each other
        self.issuer = bytes(issuer) if issuer is not None else aes_mmo(self.public)[:8]
        self._serial = 0

    def issue(self, subject: bytes, *, valid_from: int = 0, valid_to: int = 0xFFFFFFFF) -> CbkeIdentity:
        self._serial += 1
        serial = self._serial.to_bytes(8, "big")

        def build(reconstruction: bytes) -> bytes:
            if self.suite == SUITE_1:
                return Certificate163(reconstruction, bytes(subject), self.issuer).encode()
            return Certificate283(serial, self.issuer, valid_from, valid_to, bytes(subject), 0x88, reconstruction).encode()

        cert, d = issue(build, self.private_key, self.curve, random_bytes=self._random)
        return CbkeIdentity(cert, d, self.public, self.suite)


def _peer_public(identity: CbkeIdentity, certificate: bytes) -> tuple[bytes, bytes]:
    """(subject, public key) of a peer certificate; KeyEstablishmentFailed when unusable."""
    try:
        cert = decode_certificate(identity.suite, certificate)
    except DecodeError:
        raise KeyEstablishmentFailed(Terminate.BAD_MESSAGE, "malformed certificate") from None
    if cert.issuer != identity.issuer:
        raise KeyEstablishmentFailed(Terminate.UNKNOWN_ISSUER)
    try:
        public = reconstruct_public_key(certificate, cert.reconstruction, identity.ca_public, identity.curve)
    except CbkeError:
        raise KeyEstablishmentFailed(Terminate.INVALID_CERTIFICATE) from None
    return cert.subject, public


def _suite_field(payload: bytes) -> int:
    return int.from_bytes(payload[:2], "little")


#: The Key Establishment cluster's KeyEstablishmentSuite attribute (bitmap16, both sides).
SUITE_ATTRIBUTE = 0x0000


def suite_bitmap(identities: "CbkeIdentity | Iterable[CbkeIdentity]") -> int:
    """The KeyEstablishmentSuite bitmap of the suites a party holds certificates for."""
    if isinstance(identities, CbkeIdentity):
        identities = (identities,)
    bits = 0
    for identity in identities:
        bits |= identity.suite
    return bits


def choose_suite(own: int, offered: int) -> int | None:
    """The suite an initiator uses: the highest one both bitmaps hold (suite 2 before suite 1),
    None when they share none [S ZigBee SE 1.2 C.3.1.2: the KeyEstablishmentSuite attribute]."""
    common = own & offered & (SUITE_1 | SUITE_2)
    return SUITE_2 if common & SUITE_2 else SUITE_1 if common & SUITE_1 else None


def initiate_payload(identity: CbkeIdentity, ephemeral_time: int = 10, confirm_time: int = 10) -> bytes:
    """Initiate Key Establishment Request/Response payload."""
    return identity.suite.to_bytes(2, "little") + bytes((ephemeral_time, confirm_time)) + identity.certificate


def terminate_payload(status: int, suite: int = SUITE_2, wait: int = 10) -> bytes:
    return bytes((int(status), wait)) + suite.to_bytes(2, "little")


class _Party:
    def __init__(self, identity: CbkeIdentity, random_bytes=token_bytes) -> None:
        self.identity = identity
        self._random = random_bytes
        self.peer: bytes | None = None
        self.peer_public: bytes | None = None
        self.ephemeral: tuple[int, tuple[int, int]] | None = None
        self.key: bytes | None = None  # the established link key (KeyData)
        self._macs: tuple[bytes, bytes] | None = None

    def _accept_identity(self, payload: bytes) -> None:
        if len(payload) < 4:
            raise KeyEstablishmentFailed(Terminate.BAD_MESSAGE)
        if _suite_field(payload) != self.identity.suite:
            raise KeyEstablishmentFailed(Terminate.UNSUPPORTED_SUITE)
        self.peer, self.peer_public = _peer_public(self.identity, payload[4:])

    def _agree(self, qe_u: bytes, qe_v: bytes, own_ephemeral_first: bool) -> None:
        curve = self.identity.curve
        peer_qe = qe_v if own_ephemeral_first else qe_u
        try:
            z = ecmqv(self.identity.private_key, self.ephemeral, self.peer_public, peer_qe, curve)
        except CbkeError:
            raise KeyEstablishmentFailed(Terminate.BAD_MESSAGE, "bad ephemeral data") from None
        mac_key, key_data = kdf(z)
        id_u, id_v = (self.identity.subject, self.peer) if own_ephemeral_first else (self.peer, self.identity.subject)
        self._macs = confirmation_macs(mac_key, id_u, id_v, qe_u, qe_v)
        self._key_data = key_data


class Initiator(_Party):
    """The client end: `initiate()`, then feed each response payload to `on_<step>`; each
    returns the next request payload (KeyEstablishmentFailed on a bad answer)."""

    def initiate(self) -> bytes:
        return initiate_payload(self.identity)

    def on_initiate_response(self, payload: bytes) -> bytes:
        self._accept_identity(payload)
        self.ephemeral = self.identity.curve.generate(self._random)
        self._qe_u = self.identity.curve.compress(self.ephemeral[1])
        return self._qe_u

    def on_ephemeral_response(self, payload: bytes) -> bytes:
        self._agree(self._qe_u, bytes(payload), own_ephemeral_first=True)
        return self._macs[0]

    def on_confirm_response(self, payload: bytes) -> bytes:
        if not hmac.compare_digest(bytes(payload), self._macs[1]):
            raise KeyEstablishmentFailed(Terminate.BAD_KEY_CONFIRM)
        self.key = self._key_data
        return self.key


class Responder(_Party):
    """The server end: each `on_<step>(request payload)` returns the response payload. Given
    identities of several suites it answers in the suite the initiator asked for, and terminates
    with UNSUPPORTED_SUITE when it holds no certificate of that suite."""

    def __init__(self, identity: "CbkeIdentity | Iterable[CbkeIdentity]", random_bytes=token_bytes) -> None:
        identities = (identity,) if isinstance(identity, CbkeIdentity) else tuple(identity)
        if not identities:
            raise ValueError("a responder needs at least one identity")
        self.identities = {i.suite: i for i in identities}
        super().__init__(identities[0], random_bytes)

    @property
    def suites(self) -> int:
        return suite_bitmap(self.identities.values())

    def on_initiate(self, payload: bytes) -> bytes:
        if len(payload) >= 2:
            self.identity = self.identities.get(_suite_field(payload), self.identity)
        self._accept_identity(payload)
        return initiate_payload(self.identity)

    def on_ephemeral(self, payload: bytes) -> bytes:
        if self.peer is None:
            raise KeyEstablishmentFailed(Terminate.BAD_MESSAGE, "ephemeral data before initiate")
        self.ephemeral = self.identity.curve.generate(self._random)
        qe_v = self.identity.curve.compress(self.ephemeral[1])
        self._agree(bytes(payload), qe_v, own_ephemeral_first=False)
        return qe_v

    def on_confirm(self, payload: bytes) -> bytes:
        if self._macs is None:
            raise KeyEstablishmentFailed(Terminate.BAD_MESSAGE, "confirm before ephemeral data")
        if not hmac.compare_digest(bytes(payload), self._macs[0]):
            raise KeyEstablishmentFailed(Terminate.BAD_KEY_CONFIRM)
        self.key = self._key_data
        return self._macs[1]
