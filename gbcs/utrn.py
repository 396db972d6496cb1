"""UTRN: the 20-digit prepayment top-up token (Unique Transaction Reference Number).

Layout [S FACTS §6, §1.8; GB081 p.258; Aclara SGM1430 manual p.56]:

    PTUT (64 bits)  = high word ‖ low word
    high word       = 0000000 ‖ truncated UTRN counter (10) ‖ value class (2: 00 pennies, 01 pounds) ‖ value (13)
    low word        = last 4 bytes of a 16-byte GMAC
    PPTD (19 digits)= 7394156990786306048 + PTUT
    UTRN (20 digits)= PPTD ‖ check digit (GBCS §14.8 Verhoeff variant)

The GMAC key is the GBCS command KDF (mode 01) over ECDH(supplier prepayment KA key, device KA key),
with originator = supplier, recipient = device and counter = the originator counter, whose high 32
bits are the UTRN counter and whose low 32 bits are zero. IV = supplier ‖ 00000000 and
AAD = 11 00 00 00 00 00 ‖ supplier ‖ device ‖ 01 ‖ originator counter (8) ‖ high word (4).

Verified, not just read: our implementation reproduces the gbcs-parser utrn test answers (PPTDs
7394333345718904331, 7394725241674520163, 7394368095646343255 and four check digits) with the RTDS
supplier pp-ka key and ESME 00DB1234567890A0, and validates the UTRNs inside the RTDS CS01a
(counters 3 and 5, ESME) and CS01b (counter 6, GSME) commands. The RTDS PCS01 UTRN did not verify
with either RTDS supplier and counters 0/1024/2048/3072 (its originator is unknown to us).

The device side rebuilds the 32-bit UTRN counter from its 10 truncated bits within ±512 of the
highest counter in its UTRN Counter Cache (GBCS table 27 worked example; the example's x/y lines use
r where the text says p — we follow the text) and rejects duplicates. Cache size, the duplicate rule
for counters older than a full cache, and when "not for this device" applies are not in our sources
([U]/[I] below). Sans-IO: keys come in as `cryptography` objects; the cache is persisted by the caller.
"""
from __future__ import annotations

import re

from enum import Enum, IntEnum
from typing import Iterable

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .codec import DecodeError, EncodeError, frozen_dataclass, parse_eui
from .security import MAC_AAD_PREFIX, KdfMode, SecretCache, default_secrets, iv_for, kdf

UTRN_BASE = 7394156990786306048  # the "K-Class 5 offset" added to the PTUT
UTRN_LENGTH = 20
MAX_VALUE = 8191  # 13 bits
COUNTER_BITS = 10  # truncated UTRN counter
COUNTER_WINDOW = 512  # ± around the highest cached counter
MAX_UTRN_COUNTER = 0xFFFFFFFF
DEFAULT_CACHE_SIZE = 5  # [U] number of UTRN counters a device remembers
_PTUT_LIMIT = 1 << 57  # the 7 top bits of the PTUT are zero
_DIGITS = re.compile(r"[0-9]{20}")

# GBCS tables 14.8a (permutation), 14.8b (multiplication: the dihedral group D5) and 14.8c
# ("inverse": not the textbook Verhoeff inverse). Digits are taken left to right starting at row 4.
_PERMUTATION = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 5, 7, 6, 2, 8, 3, 0, 9, 4),
    (5, 8, 0, 3, 7, 9, 6, 1, 4, 2),
    (8, 9, 1, 6, 0, 4, 3, 5, 2, 7),
    (9, 4, 5, 3, 1, 2, 6, 8, 7, 0),
    (4, 2, 8, 6, 5, 7, 3, 9, 0, 1),
    (2, 7, 9, 3, 8, 0, 6, 4, 1, 5),
    (7, 0, 4, 6, 9, 1, 3, 2, 5, 8),
)
_MULTIPLICATION = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 2, 3, 4, 0, 6, 7, 8, 9, 5),
    (2, 3, 4, 0, 1, 7, 8, 9, 5, 6),
    (3, 4, 0, 1, 2, 8, 9, 5, 6, 7),
    (4, 0, 1, 2, 3, 9, 5, 6, 7, 8),
    (5, 9, 8, 7, 6, 0, 4, 3, 2, 1),
    (6, 5, 9, 8, 7, 1, 0, 4, 3, 2),
    (7, 6, 5, 9, 8, 2, 1, 0, 4, 3),
    (8, 7, 6, 5, 9, 3, 2, 1, 0, 4),
    (9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
)
_INVERSE = (1, 2, 6, 7, 5, 8, 3, 0, 9, 4)


class ValueClass(IntEnum):
    PENNIES = 0
    POUNDS = 1


class UtrnError(DecodeError):
    """A malformed UTRN string; `offset` is the character index."""


def check_digit(digits: str) -> str:
    """The GBCS §14.8 check digit of a non-empty string of ASCII digits."""
    if not digits or not digits.isascii() or not digits.isdigit():
        raise ValueError("check digit needs a non-empty string of digits 0-9")
    acc, row = 0, 4
    for ch in digits:
        acc = _MULTIPLICATION[acc][_PERMUTATION[row][ord(ch) - 48]]
        row = (row + 1) & 7
    return chr(48 + _INVERSE[acc])


def originator_counter(utrn_counter: int) -> int:
    """The 64-bit originator counter of a top-up: UTRN counter in the high word, low word zero."""
    if not 0 <= utrn_counter <= MAX_UTRN_COUNTER:
        raise EncodeError(f"UTRN counter out of range: {utrn_counter}")
    return utrn_counter << 32


@frozen_dataclass
class Utrn:
    """A decoded UTRN. Only 10 bits of the UTRN counter travel in it."""

    truncated_counter: int
    value_class: ValueClass
    value: int
    mac: bytes  # low word: last 4 bytes of the GMAC tag

    def __post_init__(self) -> None:
        if not 0 <= self.truncated_counter < 1 << COUNTER_BITS:
            raise EncodeError(f"truncated counter out of range: {self.truncated_counter}")
        if self.value_class not in (ValueClass.PENNIES, ValueClass.POUNDS) or isinstance(self.value_class, bool):
            raise EncodeError(f"value class must be 0 (pennies) or 1 (pounds): {self.value_class!r}")
        object.__setattr__(self, "value_class", ValueClass(self.value_class))
        if not 0 <= self.value <= MAX_VALUE:
            raise EncodeError(f"value out of range 0..{MAX_VALUE}: {self.value}")
        if not isinstance(self.mac, bytes) or len(self.mac) != 4:
            raise EncodeError("UTRN MAC must be 4 bytes")

    @property
    def high_word(self) -> int:
        return (self.truncated_counter << 15) | (int(self.value_class) << 13) | self.value

    @property
    def ptut(self) -> int:
        return (self.high_word << 32) | int.from_bytes(self.mac, "big")

    @property
    def pptd(self) -> int:
        return UTRN_BASE + self.ptut

    @property
    def amount_pennies(self) -> int:
        return self.value * 100 if self.value_class == ValueClass.POUNDS else self.value

    def encode(self) -> str:
        digits = str(self.pptd)
        return digits + check_digit(digits)

    def __str__(self) -> str:
        return self.encode()

    def grouped(self) -> str:
        """Five groups of four digits, as printed on receipts and typed on keypads."""
        s = self.encode()
        return " ".join(s[i : i + 4] for i in range(0, UTRN_LENGTH, 4))

    def to_json(self) -> dict:
        return {"type": "Utrn", "utrn": self.encode(), "truncated_counter": self.truncated_counter,
                "value_class": self.value_class.name, "value": self.value,
                "amount_pennies": self.amount_pennies, "mac": self.mac.hex().upper()}


def decode_utrn(text: str | bytes | bytearray | memoryview) -> Utrn:
    """Parse exactly 20 ASCII digits (str, or bytes as carried in CS01a/CS01b/PCS01 payloads).
    Raises `UtrnError` (a `DecodeError`) for anything else, including a wrong check digit."""
    if isinstance(text, (bytes, bytearray, memoryview)):
        raw = bytes(text)
        for i, b in enumerate(raw):
            if not 0x30 <= b <= 0x39:
                raise UtrnError(f"non-digit byte 0x{b:02X} in UTRN", i, "utrn")
        text = raw.decode("ascii")
    elif not isinstance(text, str):
        raise UtrnError(f"UTRN must be str or bytes, not {type(text).__name__}", 0, "utrn")
    if not _DIGITS.fullmatch(text):
        for i, ch in enumerate(text[:UTRN_LENGTH]):
            if not "0" <= ch <= "9":
                raise UtrnError(f"non-digit character {ch!r} in UTRN", i, "utrn")
        raise UtrnError(f"UTRN must be {UTRN_LENGTH} digits, got {len(text)}", min(len(text), UTRN_LENGTH), "utrn")
    if check_digit(text[:-1]) != text[-1]:
        raise UtrnError("UTRN check digit does not match", UTRN_LENGTH - 1, "check_digit")
    ptut = int(text[:-1]) - UTRN_BASE
    if not 0 <= ptut < _PTUT_LIMIT:
        raise UtrnError("not a prepayment top-up token (PPTD outside the class 5 range)", 0, "ptut")
    high = ptut >> 32
    value_class = (high >> 13) & 3
    if value_class > 1:
        raise UtrnError(f"reserved value class {value_class}", 0, "value_class")
    return Utrn(high >> 15, ValueClass(value_class), high & 0x1FFF, (ptut & 0xFFFFFFFF).to_bytes(4, "big"))


def utrn_mac(secret: bytes, supplier: bytes, device: bytes, utrn_counter: int, high_word: int) -> bytes:
    """The 4-byte PTUT MAC from the ECDH shared secret of the supplier pp-KA and device KA keys."""
    counter = originator_counter(utrn_counter)
    key = kdf(secret, supplier, KdfMode.COMMAND, counter, device)
    aad = MAC_AAD_PREFIX + supplier + device + b"\x01" + counter.to_bytes(8, "big") + high_word.to_bytes(4, "big")
    return AESGCM(key).encrypt(iv_for(supplier), b"", aad)[-4:]


def generate_utrn(
    *,
    value: int,
    utrn_counter: int,
    supplier: bytes | str,
    device: bytes | str,
    private_key: ec.EllipticCurvePrivateKey,
    public_key: ec.EllipticCurvePublicKey,
    value_class: ValueClass = ValueClass.PENNIES,
    secrets: SecretCache | None = None,
) -> Utrn:
    """Vend a UTRN (supplier side): `private_key` is the supplier's prepayment KA key ("pp-ka"),
    `public_key` the device's KA key. `utrn_counter` must grow per supplier/device pair; the
    carrying CS01a/CS01b command uses `originator_counter(utrn_counter)`."""
    supplier, device = parse_eui(supplier), parse_eui(device)
    if not 0 <= utrn_counter <= MAX_UTRN_COUNTER:
        raise EncodeError(f"UTRN counter out of range: {utrn_counter}")
    draft = Utrn(utrn_counter & 0x3FF, value_class, value, bytes(4))
    secret = (secrets if secrets is not None else default_secrets).secret(private_key, public_key)
    return Utrn(draft.truncated_counter, draft.value_class, value,
                utrn_mac(secret, supplier, device, utrn_counter, draft.high_word))


def verify_utrn(
    utrn: Utrn,
    *,
    utrn_counter: int,
    supplier: bytes | str,
    device: bytes | str,
    private_key: ec.EllipticCurvePrivateKey,
    public_key: ec.EllipticCurvePublicKey,
    secrets: SecretCache | None = None,
) -> bool:
    """Is `utrn` authentic for this supplier, device and full UTRN counter? Either side's key pair
    works (ECDH is symmetric): device KA private + supplier pp-KA public, or the reverse."""
    supplier, device = parse_eui(supplier), parse_eui(device)
    if not 0 <= utrn_counter <= MAX_UTRN_COUNTER or utrn_counter & 0x3FF != utrn.truncated_counter:
        return False
    secret = (secrets if secrets is not None else default_secrets).secret(private_key, public_key)
    return utrn_mac(secret, supplier, device, utrn_counter, utrn.high_word) == utrn.mac


# -- device side -------------------------------------------------------------------------------------


class UtrnCounterCache:
    """A device's UTRN Counter Cache: the UTRN counters it accepted most recently. Sans-IO:
    persist `counters()` and pass them back to the constructor."""

    def __init__(self, counters: Iterable[int] = (), size: int = DEFAULT_CACHE_SIZE) -> None:
        if size < 1:
            raise ValueError("cache size must be at least 1")
        self.size = size
        self._counters: list[int] = []
        for c in counters:
            self.record(c)

    @property
    def highest(self) -> int | None:
        return self._counters[-1] if self._counters else None

    def deduce(self, truncated: int) -> int | None:
        """The full UTRN counter whose low 10 bits are `truncated`, within ±512 of the highest
        cached counter V (GBCS table 27). V - 512 and V + 512 share their low bits: the rule keeps
        V + 512 when V's low bits are < 512, else V - 512. An empty cache counts as V = 0, and a
        candidate below 0 is moved up by 1024 [I]; None when the result is not a 32-bit counter."""
        if not 0 <= truncated < 1 << COUNTER_BITS:
            return None
        v = self.highest or 0
        p = v & 0x3FF
        q = v - p
        if truncated < p - COUNTER_WINDOW:
            s = truncated + (1 << COUNTER_BITS)
        elif truncated > p + COUNTER_WINDOW:
            s = truncated - (1 << COUNTER_BITS)
        else:
            s = truncated
        counter = q + s
        if counter < 0:
            counter += 1 << COUNTER_BITS
        return counter if counter <= MAX_UTRN_COUNTER else None

    def is_duplicate(self, counter: int) -> bool:
        """Already used, or older than everything a full cache remembers (so possibly used) [I]."""
        if counter in self._counters:
            return True
        return len(self._counters) >= self.size and counter < self._counters[0]

    def record(self, counter: int) -> None:
        if not 0 <= counter <= MAX_UTRN_COUNTER:
            raise ValueError(f"UTRN counter out of range: {counter}")
        if counter in self._counters:
            return
        self._counters.append(counter)
        self._counters.sort()
        del self._counters[: max(0, len(self._counters) - self.size)]

    def counters(self) -> list[int]:
        return list(self._counters)

    def __contains__(self, counter: object) -> bool:
        return counter in self._counters

    def __len__(self) -> int:
        return len(self._counters)


_ALERTS = {"not_authentic": 0x8F63, "not_for_device": 0x8F64, "duplicate": 0x8F51, "malformed": 0x8F63,
           "above_max_credit": 0x8F5B, "above_max_balance": 0x8F47, "locked_out": 0x81C5}


class UtrnStatus(Enum):
    """Outcome of `validate_utrn`; `alert_code` is the alert a meter raises for it."""

    ACCEPTED = "accepted"
    MALFORMED = "malformed"  # wrong length / characters / check digit: alert 0x8F63 [I]
    NOT_AUTHENTIC = "not_authentic"  # 0x8F63 UTRN not Authentic
    NOT_FOR_DEVICE = "not_for_device"  # 0x8F64 UTRN not for this Device
    DUPLICATE = "duplicate"  # 0x8F51 Duplicate UTRN entered
    # authentic, but the meter refuses the amount (its prepayment configuration; the meter decides):
    ABOVE_MAX_CREDIT = "above_max_credit"  # 0x8F5B UTRN exceeds Maximum Credit Threshold
    ABOVE_MAX_BALANCE = "above_max_balance"  # 0x8F47 Credit would cause Meter Balance to exceed Maximum Meter Balance Threshold
    # not checked at all: the meter suspended manual UTRN entry after too many invalid ones
    LOCKED_OUT = "locked_out"  # 0x81C5 UTRN rejected as locked out

    @property
    def alert_code(self) -> int | None:
        return _ALERTS.get(self.value)


@frozen_dataclass
class UtrnCheck:
    status: UtrnStatus
    utrn: Utrn | None = None
    utrn_counter: int | None = None  # the full counter used for the MAC check, when one was found

    @property
    def accepted(self) -> bool:
        return self.status is UtrnStatus.ACCEPTED

    @property
    def alert_code(self) -> int | None:
        return self.status.alert_code

    @property
    def amount_pennies(self) -> int | None:
        return self.utrn.amount_pennies if self.utrn is not None else None


def validate_utrn(
    utrn: str | bytes | Utrn,
    *,
    supplier: bytes | str,
    device: bytes | str,
    private_key: ec.EllipticCurvePrivateKey,
    public_key: ec.EllipticCurvePublicKey,
    cache: UtrnCounterCache,
    target: bytes | str | None = None,
    originator_counter: int | None = None,
    record: bool = True,
    secrets: SecretCache | None = None,
) -> UtrnCheck:
    """Device-side UTRN check, in this order: format, target, counter, MAC, duplicate; an accepted
    UTRN's counter is recorded in `cache` unless `record` is False.

    `private_key` is the device's KA key and `public_key` the supplier's prepayment KA key (from its
    prePaymentTopUp trust anchor). `target` is the device a carrying message names (CS01a/CS01b/PCS01
    recipient): a different EUI gives NOT_FOR_DEVICE [U: our reading of alert 0x8F64]. A remote
    top-up's `originator_counter` (UTRN counter ‖ 00000000) replaces the window deduction; its low
    word must be zero and its truncated bits must match [S FACTS 1.8].
    """
    supplier, device = parse_eui(supplier), parse_eui(device)
    if not isinstance(utrn, Utrn):
        try:
            utrn = decode_utrn(utrn)
        except UtrnError:
            return UtrnCheck(UtrnStatus.MALFORMED)
    if target is not None and parse_eui(target) != device:
        return UtrnCheck(UtrnStatus.NOT_FOR_DEVICE, utrn)
    if originator_counter is not None:
        ok = 0 <= originator_counter < 1 << 64 and originator_counter & 0xFFFFFFFF == 0
        counter = originator_counter >> 32 if ok else None
        if counter is not None and counter & 0x3FF != utrn.truncated_counter:
            counter = None
    else:
        counter = cache.deduce(utrn.truncated_counter)
    if counter is None:
        return UtrnCheck(UtrnStatus.NOT_AUTHENTIC, utrn)
    if not verify_utrn(utrn, utrn_counter=counter, supplier=supplier, device=device, private_key=private_key,
                       public_key=public_key, secrets=secrets):
        return UtrnCheck(UtrnStatus.NOT_AUTHENTIC, utrn, counter)
    if cache.is_duplicate(counter):
        return UtrnCheck(UtrnStatus.DUPLICATE, utrn, counter)
    if record:
        cache.record(counter)
    return UtrnCheck(UtrnStatus.ACCEPTED, utrn, counter)
