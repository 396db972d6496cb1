"""Joining the HAN: install-code link keys and the emulator's trust-centre join handshake.

What comes from ZigBee [S ZigBee SE / FACTS §5 "link keys during joining come from the install
code"; checked against the ZigBee example 83FED3407A939723A5C639B26916D505 + CRC C3B5 →
66B6900981E1EE3CA4206B6B861C02BB]:

* An install code (6, 8, 12 or 16 bytes; GB uses 16) is followed by its CRC-16/X-25 (poly 0x1021
  reflected, init 0xFFFF, xorout 0xFFFF), appended least significant byte first.
* The preconfigured link key is the AES-MMO hash (Matyas-Meyer-Oseas over AES-128, ZigBee
  padding) of install code ‖ CRC: `link_key_from_install_code`.

What is ours [I]: real devices then get the network key and run CBKE (ZSE key establishment) to
replace that link key. The emulator keeps the install-code key as the proof of identity and
replaces the rest with four small frames, so a CHF can tell an allowed device with the right
install code from anything else, and both ends end up sharing a fresh TC link key:

    device → CHF  JoinRequest   01 ‖ seq ‖ eui(8) ‖ device_type(1) ‖ device_nonce(16)
    CHF → device  Challenge     02 ‖ seq ‖ status(1) [‖ key_kind(1) ‖ chf_nonce(16)]   (status 0)
    device → CHF  JoinProof     03 ‖ seq ‖ eui(8) ‖ proof(16)
    CHF → device  JoinResult    04 ‖ seq ‖ status(1) [‖ confirm(16)]                  (status 0)

    proof   = AES-CMAC(key, "gbhub-join-proof" ‖ device eui ‖ chf eui ‖ device_type ‖ device_nonce ‖ chf_nonce)
    tc key  = AES-CMAC(key, "gbhub-tc-link-key" ‖ device eui ‖ chf eui ‖ device_nonce ‖ chf_nonce)
              for key_kind 0 (install-code link key); the key itself for key_kind 1 (a TC link key
              the device already holds: trust-centre rejoin, or the CHF historic-log rejoin)
    confirm = AES-CMAC(tc key, "gbhub-join-confirm" ‖ chf eui ‖ device eui ‖ chf_nonce ‖ device_nonce)

The frames travel as `ApsFrame`s from endpoint 0 to endpoint 0 (ZDO-like), profile 0x0000, on
cluster `JOIN_CLUSTER` 0xFC47: a manufacturer-specific id, so it collides with neither ZDO nor
ZCL clusters in a `ClusterDispatch`. Which devices may join, with which key, is the caller's
policy (`JoinServer(authorise=...)`): the CHF answers from its Device Log and join window.

Device side: `await join(port, chf_eui, install_code, dispatch=..., device_type=...)` (or a
`JoinClient`). Keep `JoinResult.tc_link_key` if the device may need to rejoin: once joined, the
CHF only accepts that key (a device reboot needs no rejoin: the CHF reopens its tunnel itself).
"""
from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import logging
import os
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Awaitable, Callable, Union

from cryptography.hazmat.primitives.cmac import CMAC
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from gbcs.catalogue import DeviceType
from gbcs.cbke import aes_mmo
from gbcs.codec import DecodeError, EncodeError

from .aps import ApsFrame, HanError
from .transport import Clock, ClusterDispatch, HanPort, LoopClock

log = logging.getLogger("gbhub.han.join")

#: Manufacturer-specific cluster id of the join handshake ("G" = 0x47).
JOIN_CLUSTER = 0xFC47
#: ZigBee Device Profile: the handshake is ZDO-like (endpoint 0).
ZDP_PROFILE = 0x0000
JOIN_ENDPOINT = 0

NONCE_LENGTH = 16
KEY_LENGTH = 16

_PROOF_LABEL = b"gbhub-join-proof"
_TC_KEY_LABEL = b"gbhub-tc-link-key"
_CONFIRM_LABEL = b"gbhub-join-confirm"

__all__ = [
    "JOIN_CLUSTER",
    "JOIN_ENDPOINT",
    "ZDP_PROFILE",
    "KeyKind",
    "JoinStatus",
    "JoinRequest",
    "Challenge",
    "JoinProof",
    "JoinResult",
    "JoinFrame",
    "decode_join_frame",
    "install_code_crc",
    "mmo_hash",
    "link_key_from_install_code",
    "tc_link_key_hash",
    "join_proof",
    "derive_tc_link_key",
    "derived_tc_link_key",
    "join_confirm",
    "JoinError",
    "JoinRefused",
    "JoinTimeout",
    "Joined",
    "JoinServer",
    "JoinClient",
    "join",
    "receive",
]


# ---------------------------------------------------------------------------------------------
# ZigBee install codes → link keys
# ---------------------------------------------------------------------------------------------

INSTALL_CODE_LENGTHS = (6, 8, 12, 16)


def install_code_crc(code: bytes) -> bytes:
    """CRC-16/X-25 of an install code, as the two bytes ZigBee appends (LSB first)."""
    crc = 0xFFFF
    for byte in code:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return (crc ^ 0xFFFF).to_bytes(2, "little")


def _aes_block(key: bytes, block: bytes) -> bytes:
    return Cipher(algorithms.AES(key), modes.ECB()).encryptor().update(block)


def mmo_hash(data: bytes) -> bytes:
    """ZigBee AES-MMO hash (`gbcs.cbke.aes_mmo`, which CBKE's KDF shares)."""
    return aes_mmo(data)


def link_key_from_install_code(install_code: bytes, *, with_crc: bool = False) -> bytes:
    """The preconfigured link key of an install code: AES-MMO(code ‖ CRC). Pass `with_crc=True`
    when `install_code` already ends with its two CRC bytes (they are checked)."""
    code = bytes(install_code)
    if with_crc:
        code, crc = code[:-2], code[-2:]
        if install_code_crc(code) != crc:
            raise ValueError("install code CRC does not match")
    if len(code) not in INSTALL_CODE_LENGTHS:
        raise ValueError(f"an install code is {', '.join(map(str, INSTALL_CODE_LENGTHS))} bytes, not {len(code)}")
    return _link_key(code)


@functools.lru_cache(maxsize=1024)  # a fleet's premises share their install codes
def _link_key(code: bytes) -> bytes:
    return mmo_hash(code + install_code_crc(code))


def tc_link_key_hash(tc_link_key: bytes | None) -> bytes:
    """What CS14 / CCS07 report for a TC link key: its AES-MMO hash [I: "hash of TC link key",
    FACTS §3.2, names no algorithm; AES-MMO is ZigBee's hash]; b"" while none is established."""
    return mmo_hash(tc_link_key) if tc_link_key else b""


def _cmac(key: bytes, *parts: bytes) -> bytes:
    mac = CMAC(algorithms.AES(key))
    for part in parts:
        mac.update(part)
    return mac.finalize()


def join_proof(key: bytes, device: bytes, chf: bytes, device_type: int, device_nonce: bytes, chf_nonce: bytes) -> bytes:
    return _cmac(key, _PROOF_LABEL, device, chf, bytes((device_type,)), device_nonce, chf_nonce)


def derive_tc_link_key(key: bytes, key_kind: int, device: bytes, chf: bytes, device_nonce: bytes, chf_nonce: bytes) -> bytes:
    if key_kind == KeyKind.TC_LINK_KEY:
        return bytes(key)
    return _cmac(key, _TC_KEY_LABEL, device, chf, device_nonce, chf_nonce)


def derived_tc_link_key(secret: bytes, install_code: bytes, device: bytes, chf: bytes) -> bytes:
    """TEST ONLY (derived commissioning of test fleets, `gbhub fleet`): the TC link key a join
    with `install_code` agrees, with both nonces derived from `secret` instead of drawn at random,
    so a fleet's keys follow from its seed without running the handshake."""
    def nonce(who: bytes) -> bytes:
        return hashlib.sha256(b"gbhub derived join nonce\0" + who + secret + device + chf).digest()[:NONCE_LENGTH]

    return derive_tc_link_key(link_key_from_install_code(install_code), KeyKind.INSTALL_CODE, device, chf,
                              nonce(b"device"), nonce(b"chf"))


def join_confirm(tc_link_key: bytes, device: bytes, chf: bytes, device_nonce: bytes, chf_nonce: bytes) -> bytes:
    return _cmac(tc_link_key, _CONFIRM_LABEL, chf, device, chf_nonce, device_nonce)


# ---------------------------------------------------------------------------------------------
# Frames (sans-IO)
# ---------------------------------------------------------------------------------------------


class KeyKind(IntEnum):
    """Which key the CHF expects the proof under."""

    INSTALL_CODE = 0  # the install-code link key
    TC_LINK_KEY = 1  # a TC link key the device already holds (rejoin)


class JoinStatus(IntEnum):
    SUCCESS = 0
    NOT_IN_DEVICE_LOG = 1  # the CHF's whitelist does not hold this EUI
    JOINING_NOT_PERMITTED = 2  # no join window open (and no TC link key to rejoin with)
    AUTHENTICATION_FAILED = 3  # wrong key (install code or TC link key)
    NO_CHALLENGE = 4  # proof without a live challenge (expired, or never asked)
    BAD_REQUEST = 5  # request inconsistent with the frame (EUI mismatch)


_REQUEST, _CHALLENGE, _PROOF, _RESULT = 1, 2, 3, 4


def _u8(value: int, what: str) -> bytes:
    if not 0 <= int(value) <= 0xFF:
        raise EncodeError(f"{what} is one byte")
    return bytes((int(value),))


def _fixed(value: bytes, size: int, what: str) -> bytes:
    if len(value) != size:
        raise EncodeError(f"{what} is {size} bytes, not {len(value)}")
    return bytes(value)


@dataclass(frozen=True, slots=True)
class JoinRequest:
    sequence: int
    eui: bytes
    device_type: int
    device_nonce: bytes

    def encode(self) -> bytes:
        return (bytes((_REQUEST,)) + _u8(self.sequence, "sequence") + _fixed(self.eui, 8, "eui")
                + _u8(self.device_type, "device_type") + _fixed(self.device_nonce, NONCE_LENGTH, "device_nonce"))


@dataclass(frozen=True, slots=True)
class Challenge:
    sequence: int
    status: int
    key_kind: int | None = None
    chf_nonce: bytes | None = None

    def encode(self) -> bytes:
        head = bytes((_CHALLENGE,)) + _u8(self.sequence, "sequence") + _u8(self.status, "status")
        if self.status != JoinStatus.SUCCESS:
            if self.chf_nonce is not None or self.key_kind is not None:
                raise EncodeError("a refusal carries no nonce")
            return head
        if self.chf_nonce is None or self.key_kind is None:
            raise EncodeError("a challenge carries a key kind and a nonce")
        return head + _u8(self.key_kind, "key_kind") + _fixed(self.chf_nonce, NONCE_LENGTH, "chf_nonce")


@dataclass(frozen=True, slots=True)
class JoinProof:
    sequence: int
    eui: bytes
    proof: bytes

    def encode(self) -> bytes:
        return bytes((_PROOF,)) + _u8(self.sequence, "sequence") + _fixed(self.eui, 8, "eui") + _fixed(self.proof, 16, "proof")


@dataclass(frozen=True, slots=True)
class JoinResult:
    sequence: int
    status: int
    confirm: bytes | None = None

    def encode(self) -> bytes:
        head = bytes((_RESULT,)) + _u8(self.sequence, "sequence") + _u8(self.status, "status")
        if self.status != JoinStatus.SUCCESS:
            if self.confirm is not None:
                raise EncodeError("a refusal carries no confirmation")
            return head
        if self.confirm is None:
            raise EncodeError("a successful result carries the key confirmation")
        return head + _fixed(self.confirm, 16, "confirm")


JoinFrame = Union[JoinRequest, Challenge, JoinProof, JoinResult]


def _status(value: int) -> int:
    try:
        return JoinStatus(value)
    except ValueError:
        return value


def decode_join_frame(data: bytes) -> JoinFrame:
    """Decode one join frame (an `ApsFrame.payload` on JOIN_CLUSTER); only raises DecodeError."""
    data = bytes(data)
    n = len(data)
    if n < 2:
        raise DecodeError("truncated join frame", n, "command" if n == 0 else "sequence")
    command, sequence = data[0], data[1]

    def exact(size: int, what: str) -> None:
        if n < size:
            raise DecodeError(f"truncated {what}", n, what)
        if n > size:
            raise DecodeError(f"{n - size} trailing bytes after {what}", size, what)

    if command == _REQUEST:
        exact(27, "JoinRequest")
        return JoinRequest(sequence, data[2:10], data[10], data[11:27])
    if command == _PROOF:
        exact(26, "JoinProof")
        return JoinProof(sequence, data[2:10], data[10:26])
    if command in (_CHALLENGE, _RESULT):
        if n < 3:
            raise DecodeError("truncated status", n, "status")
        status = _status(data[2])
        if command == _CHALLENGE:
            if status != JoinStatus.SUCCESS:
                exact(3, "Challenge")
                return Challenge(sequence, status)
            exact(20, "Challenge")
            kind = data[3]
            try:
                kind = KeyKind(kind)
            except ValueError:
                raise DecodeError(f"unknown key kind {kind}", 3, "key_kind") from None
            return Challenge(sequence, status, kind, data[4:20])
        if status != JoinStatus.SUCCESS:
            exact(3, "JoinResult")
            return JoinResult(sequence, status)
        exact(19, "JoinResult")
        return JoinResult(sequence, status, data[3:19])
    raise DecodeError(f"unknown join command 0x{command:02X}", 0, "command")


def _frame(src: bytes, dst: bytes, payload: bytes) -> ApsFrame:
    return ApsFrame(src, dst, JOIN_ENDPOINT, JOIN_ENDPOINT, JOIN_CLUSTER, payload, profile=ZDP_PROFILE)


# ---------------------------------------------------------------------------------------------
# Errors and results
# ---------------------------------------------------------------------------------------------


class JoinError(HanError):
    """The device could not join."""


class JoinRefused(JoinError):
    def __init__(self, status: int, message: str = "") -> None:
        self.status = status
        name = status.name if isinstance(status, JoinStatus) else f"status {status}"
        super().__init__(message or f"join refused: {name}")


class JoinTimeout(JoinError):
    """The CHF did not answer in time."""


@dataclass(frozen=True, slots=True)
class Joined:
    """A successful join as the device sees it."""

    chf_eui: bytes
    tc_link_key: bytes
    key_kind: KeyKind

    @property
    def tc_link_key_hash(self) -> bytes:
        return tc_link_key_hash(self.tc_link_key)


# ---------------------------------------------------------------------------------------------
# Trust centre (CHF side)
# ---------------------------------------------------------------------------------------------

#: authorise(eui, device_type) → (KeyKind, key) to challenge, or a JoinStatus refusal.
Authorise = Callable[[bytes, int], "tuple[int, bytes] | int"]
#: on_joined(eui, device_type, tc_link_key, key_kind)
OnJoined = Callable[[bytes, int, bytes, int], Any]
#: on_refused(eui, status, reason)
OnRefused = Callable[[bytes, int, str], Any]


@dataclass(slots=True)
class _Pending:
    sequence: int
    device_type: int
    device_nonce: bytes
    chf_nonce: bytes
    key_kind: int
    key: bytes
    expires: float


class JoinServer:
    """The trust-centre end of the handshake on the CHF's port. `handle(frame)` is the receiver
    for JOIN_CLUSTER frames; it returns an awaitable (the answer being sent) or None.

    `authorise` is asked on every JoinRequest; `on_joined` is called (synchronously, before the
    JoinResult goes out, so the CHF's record never lags the device's belief) once the proof
    checks; `on_refused` on every refusal (the CHF logs them in its security log)."""

    def __init__(
        self,
        port: HanPort,
        *,
        authorise: Authorise,
        on_joined: OnJoined,
        on_refused: OnRefused | None = None,
        clock: Clock | None = None,
        challenge_lifetime: float = 30.0,
        max_pending: int = 64,
        random_bytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.port = port
        self.eui: bytes = port.eui
        self.authorise = authorise
        self.on_joined = on_joined
        self.on_refused = on_refused
        self.clock: Clock = clock if clock is not None else LoopClock()
        self.challenge_lifetime = challenge_lifetime
        self.max_pending = max_pending
        self._random = random_bytes
        self._pending: dict[bytes, _Pending] = {}
        self.errors = 0  # malformed or spoofed frames
        self.joins = 0
        self.refusals = 0

    def handle(self, frame: ApsFrame) -> "Awaitable[Any] | None":
        try:
            message = decode_join_frame(frame.payload)
        except DecodeError as exc:
            self.errors += 1
            log.warning("bad join frame from %s: %s", frame.src.hex().upper(), exc)
            return None
        if type(message) is JoinRequest:
            return self._on_request(frame, message)
        if type(message) is JoinProof:
            return self._on_proof(frame, message)
        self.errors += 1  # Challenge / JoinResult travel CHF → device only
        return None

    def _refuse(self, eui: bytes, status: int, reason: str) -> None:
        self.refusals += 1
        self._pending.pop(eui, None)
        if self.on_refused is not None:
            try:
                self.on_refused(eui, status, reason)
            except Exception:  # a policy bug must not stop the trust centre
                log.exception("join on_refused callback failed")

    def _on_request(self, frame: ApsFrame, request: JoinRequest) -> "Awaitable[Any] | None":
        if request.eui != frame.src:
            self.errors += 1
            self._refuse(frame.src, JoinStatus.BAD_REQUEST, f"request names {request.eui.hex().upper()}")
            return self._send(frame.src, Challenge(request.sequence, JoinStatus.BAD_REQUEST))
        try:
            verdict = self.authorise(request.eui, request.device_type)
        except Exception:
            log.exception("join authorise callback failed")
            verdict = JoinStatus.JOINING_NOT_PERMITTED
        if not isinstance(verdict, tuple):
            status = _status(int(verdict))
            self._refuse(request.eui, status, "join request refused")
            return self._send(frame.src, Challenge(request.sequence, status))
        key_kind, key = verdict
        now = self.clock.now()
        for eui in [e for e, p in self._pending.items() if p.expires <= now]:
            del self._pending[eui]
        if request.eui not in self._pending and len(self._pending) >= self.max_pending:
            self._pending.pop(next(iter(self._pending)))
        chf_nonce = self._random(NONCE_LENGTH)
        self._pending[request.eui] = _Pending(
            request.sequence, request.device_type, request.device_nonce, chf_nonce, int(key_kind), bytes(key),
            now + self.challenge_lifetime,
        )
        return self._send(frame.src, Challenge(request.sequence, JoinStatus.SUCCESS, KeyKind(key_kind), chf_nonce))

    def _on_proof(self, frame: ApsFrame, proof: JoinProof) -> "Awaitable[Any] | None":
        eui = frame.src
        if proof.eui != eui:
            self.errors += 1
            self._refuse(eui, JoinStatus.BAD_REQUEST, f"proof names {proof.eui.hex().upper()}")
            return self._send(eui, JoinResult(proof.sequence, JoinStatus.BAD_REQUEST))
        pending = self._pending.pop(eui, None)
        if pending is None or pending.expires <= self.clock.now() or pending.sequence != proof.sequence:
            self._refuse(eui, JoinStatus.NO_CHALLENGE, "proof without a live challenge")
            return self._send(eui, JoinResult(proof.sequence, JoinStatus.NO_CHALLENGE))
        expected = join_proof(pending.key, eui, self.eui, pending.device_type, pending.device_nonce, pending.chf_nonce)
        if not _equal(expected, proof.proof):
            kind = "TC link key" if pending.key_kind == KeyKind.TC_LINK_KEY else "install code"
            self._refuse(eui, JoinStatus.AUTHENTICATION_FAILED, f"proof does not verify ({kind})")
            return self._send(eui, JoinResult(proof.sequence, JoinStatus.AUTHENTICATION_FAILED))
        tc_key = derive_tc_link_key(pending.key, pending.key_kind, eui, self.eui, pending.device_nonce, pending.chf_nonce)
        try:
            self.on_joined(eui, pending.device_type, tc_key, pending.key_kind)
        except Exception as exc:  # the CHF could not record it: the device is not joined
            log.exception("join on_joined callback failed")
            self._refuse(eui, JoinStatus.JOINING_NOT_PERMITTED, f"could not record the join: {exc}")
            return self._send(eui, JoinResult(proof.sequence, JoinStatus.JOINING_NOT_PERMITTED))
        self.joins += 1
        confirm = join_confirm(tc_key, eui, self.eui, pending.device_nonce, pending.chf_nonce)
        return self._send(eui, JoinResult(proof.sequence, JoinStatus.SUCCESS, confirm))

    async def _send(self, dst: bytes, message: JoinFrame) -> bool:
        try:
            return await self.port.send(_frame(self.eui, dst, message.encode()))
        except HanError as exc:
            log.info("join answer to %s not sent: %s", dst.hex().upper(), exc)
            return False


def _equal(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)


# ---------------------------------------------------------------------------------------------
# Device side
# ---------------------------------------------------------------------------------------------

# Clients waiting for answers, by device EUI: `receive` (a module-level Receiver devices may put
# in their ClusterDispatch once) hands them their frames.
_active: dict[bytes, "JoinClient"] = {}


def receive(frame: ApsFrame) -> None:
    """A Receiver for JOIN_CLUSTER frames on a device: passes them to that device's running
    `join()`. Add it once: `dispatch.add(JOIN_CLUSTER, han.join.receive)`."""
    client = _active.get(frame.dst)
    if client is not None:
        client.handle(frame)


class JoinClient:
    """The device end: `await client.join()` runs the handshake once. Route the device's
    JOIN_CLUSTER frames to `client.handle` (or use `join()`, which does it)."""

    def __init__(
        self,
        port: HanPort,
        chf_eui: bytes,
        install_code: bytes | None,
        *,
        device_type: int = DeviceType.ESME,
        tc_link_key: bytes | None = None,
        clock: Clock | None = None,
        timeout: float = 10.0,
        random_bytes: Callable[[int], bytes] = os.urandom,
        link_key: bytes | None = None,
    ) -> None:
        self.port = port
        self.eui: bytes = port.eui
        self.chf_eui = bytes(chf_eui)
        # the install-code link key: derived from the code, or given (a trust centre that joins
        # for a physical device holds only the key it gave the radio)
        self.link_key = link_key if install_code is None else link_key_from_install_code(install_code)
        self.tc_link_key = None if tc_link_key is None else bytes(tc_link_key)
        self.device_type = int(device_type)
        self.clock: Clock = clock if clock is not None else LoopClock()
        self.timeout = timeout
        self._random = random_bytes
        self._sequence = 0
        self._waiting: asyncio.Future | None = None
        self._expect: tuple[type, int] | None = None
        self.errors = 0

    def handle(self, frame: ApsFrame) -> None:
        if frame.src != self.chf_eui:
            self.errors += 1
            return
        try:
            message = decode_join_frame(frame.payload)
        except DecodeError as exc:
            self.errors += 1
            log.warning("bad join frame from %s: %s", frame.src.hex().upper(), exc)
            return
        waiting, expect = self._waiting, self._expect
        if waiting is None or waiting.done() or expect is None:
            return
        if type(message) is expect[0] and message.sequence == expect[1]:
            waiting.set_result(message)

    async def _exchange(self, message: JoinFrame, answer: type) -> Any:
        future = asyncio.get_running_loop().create_future()
        self._waiting, self._expect = future, (answer, message.sequence)  # before sending: may answer inline

        def expire() -> None:
            if not future.done():
                future.set_result(None)

        timer = self.clock.call_at(self.clock.now() + self.timeout, expire)
        try:
            if not await self.port.send(_frame(self.eui, self.chf_eui, message.encode())):
                raise JoinTimeout("join frame lost on the air")
            reply = await future
        finally:
            timer.cancel()
            self._waiting = self._expect = None
        if reply is None:
            raise JoinTimeout(f"no answer from {self.chf_eui.hex().upper()} within {self.timeout} s")
        return reply

    async def join(self) -> Joined:
        """Raises JoinRefused(status), JoinTimeout or the link's HanError."""
        self._sequence = (self._sequence + 1) & 0xFF
        seq = self._sequence
        device_nonce = self._random(NONCE_LENGTH)
        challenge: Challenge = await self._exchange(JoinRequest(seq, self.eui, self.device_type, device_nonce), Challenge)
        if challenge.status != JoinStatus.SUCCESS:
            raise JoinRefused(challenge.status)
        if challenge.key_kind == KeyKind.TC_LINK_KEY:
            key = self.tc_link_key
            if key is None:
                raise JoinRefused(JoinStatus.AUTHENTICATION_FAILED, "the CHF asks for a TC link key this device does not hold")
        else:
            key = self.link_key
            if key is None:
                raise JoinRefused(JoinStatus.AUTHENTICATION_FAILED, "the CHF asks for the install-code key; none given")
        assert challenge.chf_nonce is not None
        proof = join_proof(key, self.eui, self.chf_eui, self.device_type, device_nonce, challenge.chf_nonce)
        result: JoinResult = await self._exchange(JoinProof(seq, self.eui, proof), JoinResult)
        if result.status != JoinStatus.SUCCESS:
            raise JoinRefused(result.status)
        tc_key = derive_tc_link_key(key, challenge.key_kind, self.eui, self.chf_eui, device_nonce, challenge.chf_nonce)
        if result.confirm is None or not _equal(result.confirm, join_confirm(tc_key, self.eui, self.chf_eui, device_nonce, challenge.chf_nonce)):
            raise JoinError("the CHF's key confirmation does not verify")
        self.tc_link_key = tc_key
        return Joined(self.chf_eui, tc_key, KeyKind(challenge.key_kind))


async def join(
    port: HanPort,
    chf_eui: bytes,
    install_code: bytes | None,
    *,
    dispatch: ClusterDispatch | None = None,
    device_type: int = DeviceType.ESME,
    tc_link_key: bytes | None = None,
    clock: Clock | None = None,
    timeout: float = 10.0,
) -> Joined:
    """Join the CHF `chf_eui` from `port`. The answers reach the client through `dispatch` (a
    JOIN_CLUSTER handler is added for the duration) or, without one, through the module-level
    `receive` the device routes JOIN_CLUSTER frames to."""
    client = JoinClient(port, chf_eui, install_code, device_type=device_type, tc_link_key=tc_link_key,
                        clock=clock, timeout=timeout)
    eui = port.eui
    if dispatch is not None:
        previous = dispatch.handlers.get(JOIN_CLUSTER)
        dispatch.add(JOIN_CLUSTER, client.handle)
    _active[eui] = client
    try:
        return await client.join()
    finally:
        if _active.get(eui) is client:
            del _active[eui]
        if dispatch is not None:
            if previous is None:
                dispatch.remove(JOIN_CLUSTER)
            else:
                dispatch.add(JOIN_CLUSTER, previous)
