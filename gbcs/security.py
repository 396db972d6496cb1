"""GBCS security: KDF, 12-byte GMAC, raw r‖s ECDSA P-256, encrypted payload parts, a cache of
static ECDH secrets, and the anti-replay counter rule.

All crypto goes through `cryptography`. Nothing here does I/O: keys come in as objects.
"""
from __future__ import annotations

import hashlib
import hmac
from enum import IntEnum
from typing import Iterable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .codec import SecurityError
from .frame import MAC_LENGTH, Message

ALGORITHM_ID = bytes.fromhex("60857406080300")  # DLMS OID 2.16.756.5.8.3.0, aes-gcm-128
MAC_AAD_PREFIX = b"\x11\x00\x00\x00\x00\x00"
ENCRYPTED_AAD = b"\x31"
ENCRYPTED_HEADER = b"\x31\x00\x00\x00\x00"
_ECDSA = ec.ECDSA(hashes.SHA256())
_CURVE = ec.SECP256R1()
_ORDER_BYTES = 32


class KdfMode(IntEnum):
    """The KDF mode byte: the CRA flag for MACs, 4 for payload encryption."""

    COMMAND = 1
    RESPONSE = 2
    ALERT = 3
    ENCRYPTION = 4


def kdf(secret: bytes, originator: bytes, mode: int, counter: int, recipient: bytes) -> bytes:
    """GBCS single-step concatenation KDF (SHA-256, one round) → AES-128 key."""
    other_info = ALGORITHM_ID + originator + bytes((0x09, mode)) + counter.to_bytes(8, "big") + recipient
    return hashlib.sha256(b"\x00\x00\x00\x01" + secret + other_info).digest()[:16]


def iv_for(originator: bytes) -> bytes:
    return originator + b"\x00\x00\x00\x00"


def gmac(key: bytes, originator: bytes, general_signing_apdu: bytes) -> bytes:
    """The 12-byte MAC over a General-Signing APDU."""
    return AESGCM(key).encrypt(iv_for(originator), b"", MAC_AAD_PREFIX + general_signing_apdu)[:MAC_LENGTH]


def encrypt_part(key: bytes, originator: bytes, plaintext: bytes) -> bytes:
    """Encrypted payload part as carried in GBZ/DLMS: 31 00000000 ‖ ciphertext ‖ 12-byte tag."""
    sealed = AESGCM(key).encrypt(iv_for(originator), plaintext, ENCRYPTED_AAD)
    return ENCRYPTED_HEADER + sealed[:-16] + sealed[-16:-4]


def decrypt_part(key: bytes, originator: bytes, block: bytes) -> bytes:
    """Inverse of `encrypt_part`. AESGCM only checks 16-byte tags, so: GCM encryption is CTR (the
    keystream depends on neither data nor AAD), hence "encrypting" the ciphertext gives the
    plaintext; the 12-byte tag is checked by encrypting the recovered plaintext again (about
    half the cost of a Cipher context)."""
    if len(block) < 5 + MAC_LENGTH or block[:5] != ENCRYPTED_HEADER:
        raise SecurityError("encrypted part must start 31 00000000 and hold a 12-byte tag")
    ciphertext, tag = block[5:-MAC_LENGTH], block[-MAC_LENGTH:]
    n = len(ciphertext)
    aead = AESGCM(key)
    iv = iv_for(originator)
    plaintext = aead.encrypt(iv, ciphertext, b"")[:n]
    if not hmac.compare_digest(aead.encrypt(iv, plaintext, ENCRYPTED_AAD)[n : n + MAC_LENGTH], tag):
        raise SecurityError("encrypted part: GCM tag does not verify")
    return plaintext


def sign(private_key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    """ECDSA P-256/SHA-256 as raw 64-byte r‖s (IEEE P1363), the GBCS form."""
    r, s = decode_dss_signature(private_key.sign(data, _ECDSA))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def verify(public_key: ec.EllipticCurvePublicKey, signature: bytes, data: bytes) -> bool:
    if len(signature) != 64:
        return False
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:], "big")
    try:
        public_key.verify(encode_dss_signature(r, s), data, _ECDSA)
    except (InvalidSignature, ValueError):
        return False
    return True


class SecretCache:
    """Static ECDH shared secrets per (private key, public key) pair.

    KA keys are static for the life of a certificate, so the ~50 us ECDH is paid once per pair.
    Bounded: the oldest entry goes when full.
    """

    def __init__(self, max_entries: int = 65536) -> None:
        self.max_entries = max_entries
        # value keeps the private key object alive so its id() stays unique while cached
        self._secrets: dict[tuple[int, bytes], tuple[object, bytes]] = {}
        # values keep both key objects alive, so their ids stay unique while cached
        self._by_objects: dict[tuple[int, int], tuple[object, object, bytes]] = {}

    def secret(self, private_key: ec.EllipticCurvePrivateKey, public_key: ec.EllipticCurvePublicKey) -> bytes:
        fast = self._by_objects.get((id(private_key), id(public_key)))
        if fast is not None and fast[0] is private_key and fast[1] is public_key:
            return fast[2]  # the same key objects as last time: no public-key serialisation
        secret = self._secret(private_key, public_key)
        if len(self._by_objects) >= self.max_entries:
            self._by_objects.clear()
        self._by_objects[(id(private_key), id(public_key))] = (private_key, public_key, secret)
        return secret

    def _secret(self, private_key: ec.EllipticCurvePrivateKey, public_key: ec.EllipticCurvePublicKey) -> bytes:
        key = (id(private_key), _public_key_id(public_key))
        hit = self._secrets.get(key)
        if hit is None:
            hit = (private_key, private_key.exchange(ec.ECDH(), public_key))
            if len(self._secrets) >= self.max_entries:
                self._secrets.pop(next(iter(self._secrets)))
            self._secrets[key] = hit
        return hit[1]

    def __len__(self) -> int:
        return len(self._secrets)


_KEY_IDS: dict[int, tuple[object, bytes]] = {}


def _public_key_id(public_key: ec.EllipticCurvePublicKey) -> bytes:
    hit = _KEY_IDS.get(id(public_key))
    if hit is not None and hit[0] is public_key:
        return hit[1]
    # the point's coordinates identify the key; public_bytes would import cryptography's whole
    # serialization package (~13 ms, in every `gbhub decode --batch` worker)
    n = public_key.public_numbers()
    raw = public_key.curve.name.encode() + n.x.to_bytes(66, "big") + n.y.to_bytes(66, "big")
    if len(_KEY_IDS) > 65536:
        _KEY_IDS.clear()
    _KEY_IDS[id(public_key)] = (public_key, raw)
    return raw


default_secrets = SecretCache()


def message_key(secret: bytes, message: Message) -> bytes:
    """The MAC key of a message: KDF with the message's own originator, CRA, counter, recipient."""
    return kdf(secret, message.originator, int(message.cra), message.originator_counter, message.recipient)


def encryption_key(secret: bytes, message: Message) -> bytes:
    """Key for encrypted payload parts (mode 04): supplementary originator counter and
    supplementary remote party, when present, replace the header's counter and recipient."""
    counter = message.supplementary_originator_counter
    if counter is None:
        counter = message.originator_counter
    recipient = message.supplementary_remote_party_id or message.recipient
    return kdf(secret, message.originator, KdfMode.ENCRYPTION, counter, recipient)


def compute_mac(secret: bytes, message: Message) -> bytes:
    return gmac(message_key(secret, message), message.originator, message.general_signing())


def check_mac(secret: bytes, message: Message) -> bool:
    if message.mac is None:
        return False
    return compute_mac(secret, message) == message.mac


def check_signature(public_key: ec.EllipticCurvePublicKey, message: Message) -> bool:
    if not message.signature:
        return False
    return verify(public_key, message.signature, message.signed_bytes())


class CounterStore:
    """Anti-replay: per remote party, accept only a counter strictly greater than the last one
    accepted [I FACTS 1.8]. Sans-IO: persistence is the caller's (see firmware.nvm), via `items()`
    and the constructor."""

    def __init__(self, initial: Iterable[tuple[bytes, int]] = ()) -> None:
        self._last: dict[bytes, int] = dict(initial)

    def fresh(self, party: bytes, counter: int) -> bool:
        """Would `counter` from `party` be accepted? (No state change.)"""
        last = self._last.get(party)
        return last is None or counter > last

    def accept(self, party: bytes, counter: int) -> bool:
        """Record `counter` if fresh; returns False (and changes nothing) for a replay."""
        if not self.fresh(party, counter):
            return False
        self._last[party] = counter
        return True

    def last(self, party: bytes) -> int | None:
        return self._last.get(party)

    def items(self) -> list[tuple[bytes, int]]:
        return list(self._last.items())
