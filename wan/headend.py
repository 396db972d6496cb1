"""Head-end client core: what the DCC and a DUIS user do between them for one command.

`HeadEnd.request` builds a CRA command, signs it with the originator's Digital-Signing key when
critical (the Known Remote Party's signature), MACs it as the DCC Access Control Broker does
(ECDH(ACB KA, device KA), KDF over the message's own originator/counter/recipient), sends it over a
WAN link, waits for the response carrying the same counter from that device, and verifies it:
a response to a critical command must be signed by the device, any other response MACed for its
recipient (ECDH(our originator's KA, device KA), mode = response) [FRAMING.md §4, FACTS.md 1.5].

Alerts arriving unasked are verified the same way and kept in `received_alerts`. With
`take_queued=True` the head-end also takes the frames the CHF queued while no head-end was
attached, and its link acknowledges each once it is kept here (`wan.bridge` module doc); with
False it leaves them for a head-end that watches alerts; None (the default) leaves the link as
it is (an in-process client takes them, a TCP client does not).

Rejections: a device that refuses a command sends no response but an alert (GBCS security alerts
0x8F1E, 0x8F30, 0x8F3D, 0x8F53; the CHF's 0x8F84 in message code 0x00D5 when it cannot deliver).
The waiting request then fails at once with `CommandRejected` instead of timing out. The 0x00D5
alert names the undelivered command (originator, recipient, counter) and matches it exactly. The
security alerts carry only their code and a time, so they are matched by device and time: a
verifying (or, without keys, unverifiable) rejection alert from a device fails the oldest command
still pending to that device. A device executes its commands in order and answers each before
taking the next, so that is the command it refused — unless another client's command to the same
device was refused in the same moment, which this matching cannot tell apart. The alert stays in
`received_alerts` either way, and a response arriving later goes to `late_responses`.

Payloads are the caller's: `request()` takes ready content bytes (use cases are layered on top).
"""
from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import partial
from typing import Any, AsyncIterator, Callable, Iterable

from gbcs.codec import DecodeError, eui_hex, parse_eui
from gbcs.frame import CRA, Message, Reassembler, decode_gbt_block, decode_message, mac_frame, peek_header
from gbcs.payload import decode_payload
from gbcs import catalogue, usecases
from gbcs.catalogue import AlertCode, MessageCode, RemotePartyRole
from gbcs.dlms import FailureToDeliverAlert
from gbcs.keystore import Keystore
from gbcs.usecases.credentials import fill_certificates
from gbcs.security import (
    SecretCache,
    check_mac,
    check_signature,
    decrypt_part,
    default_secrets,
    encryption_key,
    gmac,
    message_key,
    sign,
)

from gbhub.firmware.gbcs_device import SECURITY_ALERTS

from .bridge import UPDATE_FIRMWARE, WanClosed, WanError, WanLink
from .counters import HeadEndCounters

log = logging.getLogger(__name__)

#: Alerts a device sends instead of a response to a command it refuses: the emulated devices'
#: security alerts (module doc: Rejections), and Error Non Volatile Memory for a command it could
#: not store. 0x8F84 (in 0x00D5) is matched by its own body.
REJECTION_ALERTS = frozenset(SECURITY_ALERTS.values()) | {AlertCode.ERROR_NON_VOLATILE_MEMORY,
                                                           AlertCode.COMMAND_NOT_SUPPORTED_BY_DEVICE}
_ALERT_MESSAGE_CODES = frozenset({MessageCode.GCA, MessageCode.GNCA, MessageCode.MessageDeliveryFailure, MessageCode.ECS100})



def _unsupported_command(payload: object) -> int | None:
    """The originator counter an ECS100 alert names: its details are the refused command's
    message code (2 bytes) and originator counter (8 bytes) [O RTDS NA_ECS100]."""
    body = getattr(payload, "body", None)
    try:
        raw = body.value[-1].value
        if isinstance(raw, bytes) and len(raw) == 10:
            return int.from_bytes(raw[2:], "big")
    except (AttributeError, IndexError, TypeError):
        return None
    return None


# --------------------------------------------------------------------------------------------
# Errors and results
# --------------------------------------------------------------------------------------------


class HeadEndError(WanError):
    """Base of the head-end's errors."""


class RequestTimeout(HeadEndError, TimeoutError):
    """No response with the command's counter arrived in time."""


class VerificationError(HeadEndError):
    """A response arrived but its MAC or signature does not verify; `reply` holds it."""

    def __init__(self, message: str, reply: "Reply") -> None:
        super().__init__(message)
        self.reply = reply


class MissingKey(HeadEndError):
    """The keystore lacks a key needed to sign or MAC a command."""


class CommandRejected(HeadEndError):
    """The device answered the command with an alert instead of a response (module doc:
    Rejections). `alert` is the Alert received; `code` its alert code (0x8F53), `name` the
    Appendix B name, `device` the EUI of the device that raised it."""

    def __init__(self, alert: "Alert", code: int) -> None:
        self.alert = alert
        self.code = code
        self.name = catalogue.alert_name(code) or "unknown alert"
        self.device = alert.message.originator
        super().__init__(f"{eui_hex(self.device)} rejected the command: alert 0x{code:04X} {self.name}")


def _valid(mac: str, signature: str, need_signature: bool) -> bool:
    if mac == "invalid" or signature == "invalid":
        return False
    if need_signature:
        return signature == "valid"
    # a signed response to a non-critical command (CS02b ACB-by-ACB [O RTDS]) is at least as good
    return mac == "valid" or (mac == "absent" and signature == "valid")


@dataclass(frozen=True, slots=True)
class Reply:
    """A verified (or, with `verify=False`, merely matched) response.

    Verdicts use the `gbhub decode` vocabulary: mac valid/invalid/unknown/absent; signature
    valid/invalid/unverified/absent/empty. `critical` says which of the two must be valid.
    """

    message: Message
    raw: bytes
    mac: str
    signature: str
    critical: bool = False

    @property
    def valid(self) -> bool:
        return _valid(self.mac, self.signature, self.critical)


@dataclass(frozen=True)
class UseCaseReply:
    """A verified response to a named use case and its interpretation (`summary`, JSON-able)."""

    reply: "Reply"
    summary: dict

    @property
    def ok(self) -> bool:
        return bool(self.summary.get("ok")) and self.reply.valid


@dataclass(frozen=True, slots=True)
class Alert:
    """An alert as received, with its verdicts. Critical alerts are signed by the device,
    non-critical ones MACed for their recipient; `valid` says whether the one present verifies."""

    message: Message
    raw: bytes
    mac: str
    signature: str
    received_at: float = 0.0

    @property
    def critical(self) -> bool:
        return bool(self.message.signature)

    @property
    def valid(self) -> bool:
        return _valid(self.mac, self.signature, self.critical)

    @property
    def code(self) -> int | None:
        """The alert code (0x8F53) its payload carries, None when it carries none we can read."""
        return alert_code(self.message)


def alert_code(message: Message) -> int | None:
    """The alert code of an alert message's payload (DLMS DATA-NOTIFICATION or GBZ alert)."""
    try:
        return getattr(decode_payload(message), "alert_code", None)
    except (DecodeError, ValueError):
        return None


def _clock_fn(clock: Any) -> Callable[[], float]:
    """Unix time in seconds from `clock`: None (wall clock), a callable, or an object with
    `time()` or `now()` (epoch seconds or a datetime, e.g. `firmware.clock.Clock`)."""
    if clock is None:
        return time.time
    if callable(getattr(clock, "time", None)):
        return clock.time
    if callable(getattr(clock, "now", None)):
        def now() -> float:
            t = clock.now()
            return t.timestamp() if hasattr(t, "timestamp") else float(t)

        return now
    if callable(clock):
        return clock
    raise TypeError("clock must be callable or have time() / now()")


# --------------------------------------------------------------------------------------------
# The head-end
# --------------------------------------------------------------------------------------------


class HeadEnd:
    """One head-end (DCC + DUIS users) on a WAN link.

    `supplier` is the default originator of commands; `acb` is the Access Control Broker whose KA
    key MACs every command. `keystore` must hold the ACB's KA private key, the originators' DS
    private keys (critical commands) and KA private keys (response MACs), and the devices' KA and
    DS public keys.
    """

    def __init__(
        self,
        link: WanLink,
        keystore: Keystore,
        *,
        supplier: bytes | str,
        acb: bytes | str,
        secrets: SecretCache | None = None,
        clock: Any = None,
        counter_seed: int | None = None,
        rejection_alerts: frozenset[int] = REJECTION_ALERTS,
        counters: HeadEndCounters | None = None,
        take_queued: bool | None = None,
        ca_certificates: Iterable[bytes] = (),
    ) -> None:
        self.link = link
        # CA certificates (DER) a CS02b/CS02g carries as its certification path (`gbcs.usecases.credentials`)
        self.ca_certificates = tuple(ca_certificates)
        self.keystore = keystore
        self.supplier = parse_eui(supplier)
        self.acb = parse_eui(acb)
        self.secrets = secrets if secrets is not None else default_secrets
        self._now = _clock_fn(clock)
        self._counter_seed = counter_seed
        # persisted counters (a data folder's counters.json) start from the clock only once;
        # in memory they follow the clock as before
        self._timed = counters is None
        self._resynced: set[tuple[bytes, int]] = set()  # commands whose rejection made us resynchronise
        self.counters = counters if counters is not None else HeadEndCounters(None)
        self._pending: dict[tuple[bytes, bytes, int], asyncio.Future] = {}
        self._raw_waiters: dict[int, list[asyncio.Future]] = {}
        # every command awaiting its response, oldest first, with its recipient (rejections)
        self._awaiting: dict[asyncio.Future, bytes] = {}
        self._deadlines = _Deadlines()  # their timeouts
        self.rejection_alerts = frozenset(rejection_alerts)
        self._alert_waiters: list[asyncio.Future] = []
        self._reassembler = Reassembler(max_sender_partial=32, max_sender_bytes=8 << 20)  # one sender: the hub
        self.received_alerts: list[Alert] = []
        self.late_responses: list[Reply] = []  # responses no request was waiting for
        self.undecodable = 0  # frames up that did not decode as GBCS
        self._closed = False
        self.firmware_events: list[dict] = []  # FIRMWARE_EVENT records (update_firmware), in arrival order
        self._firmware_waiters: list[asyncio.Future] = []
        link.set_receiver(self._on_frame, self._on_link_closed)
        if hasattr(link, "on_control"):
            link.on_control = self._on_control
        take = getattr(link, "take_stored", None)
        if take is not None and take_queued is not None:
            take(take_queued)

    def utcnow(self) -> datetime:
        """The head-end clock's time as an aware UTC datetime (what use-case builders take as `now`)."""
        return datetime.fromtimestamp(self._now(), timezone.utc)

    # -- counters --------------------------------------------------------------------------
    def next_counter(self, party: bytes | str | None = None, utrn: bool = False) -> int:
        """The next originator counter for `party` (default the supplier): strictly greater than
        any used before (`self.counters`); in memory at least the clock's milliseconds since the
        epoch, persisted at least them only for an originator the store has never seen. With
        `utrn=True` the low 32 bits are 0 (top-ups, CS01a: the high half is the UTRN counter)."""
        party = self.supplier if party is None else parse_eui(party)
        counters = self.counters
        if self._counter_seed is not None:
            floor = self._counter_seed
        elif self._timed or counters.last(party) is None and counters.floor(party) == 0:
            floor = int(self._now() * 1000)
        else:
            floor = 0
        try:
            return counters.take(party, floor, align=32 if utrn else 0)
        except OverflowError:
            raise HeadEndError("originator counter exhausted") from None

    def note_counter(self, party: bytes | str, counter: int) -> None:
        """Record a counter used outside `next_counter` so later ones stay above it."""
        self.counters.note(parse_eui(party), counter)

    def last_counter(self, party: bytes | str | None = None) -> int | None:
        return self.counters.last(self.supplier if party is None else parse_eui(party))

    def resync_counter(self, party: bytes | str | None = None) -> int:
        """After a replay rejection: continue above every counter reserved in the counter file
        (another process may have used ours); logged. Returns the next counter's lower bound."""
        party = self.supplier if party is None else parse_eui(party)
        before = self.counters.last(party)
        after = self.counters.resync(party)
        log.warning("originator counter of %s resynchronised: %s -> %d", eui_hex(party), before, after)
        return after

    def _after_rejection(self, alert: Message) -> None:
        """Alert 0x8F53 from a device a command of ours waits on may be a replay rejection (another
        head-end on the counter file used higher counters): that command's originator continues
        above the file, once per command."""
        from gbcs.catalogue import AlertCode
        from gbcs.dlms import DataNotification, decode_apdu

        try:
            note = decode_apdu(alert.content, message_code=alert.message_code)
        except Exception:  # noqa: BLE001 - not a DLMS alert: not a rejection we can read
            return
        if not isinstance(note, DataNotification) or \
                note.alert_code != AlertCode.FAILED_AUTHENTICATION_OR_AUTHORISATION_NOT_COVERED_BY_OTHER_CODES:
            return
        for device, originator, counter in list(self._pending):
            if device == alert.originator and (originator, counter) not in self._resynced:
                self._resynced.add((originator, counter))
                log.warning("device %s rejected counter %d (alert 0x8F53): resynchronising", eui_hex(device), counter)
                self.resync_counter(originator)

    # -- keys ------------------------------------------------------------------------------
    def _secret(self, a: bytes, b: bytes) -> bytes | None:
        """Static ECDH secret between parties a and b, from whichever side's private key we hold."""
        ks = self.keystore
        priv = ks.private_key(a, "ka")
        if priv is not None:
            pub = ks.public_key(b, "ka")
            if pub is not None:
                return self.secrets.secret(priv, pub)
        priv = ks.private_key(b, "ka")
        if priv is not None:
            pub = ks.public_key(a, "ka")
            if pub is not None:
                return self.secrets.secret(priv, pub)
        return None

    def verdicts(self, message: Message) -> tuple[str, str]:
        """(mac, signature) verdicts of a response or alert from a device."""
        if message.mac is None:
            mac = "absent"
        else:
            secret = self._secret(message.recipient, message.originator)
            mac = "unknown" if secret is None else ("valid" if check_mac(secret, message) else "invalid")
        sig = message.signature
        if sig is None:
            signature = "absent"
        elif not sig:
            signature = "empty"
        else:
            pub = self.keystore.public_key(message.originator, "ds")
            if pub is None:
                signature = "unverified"
            else:
                signature = "valid" if check_signature(pub, message) else "invalid"
        return mac, signature

    def content_key(self, message: Message) -> bytes | None:
        """AES key of the encrypted parts of a device's response/alert (mode 04), or None when
        the keystore cannot make it."""
        party = message.supplementary_remote_party_id or message.recipient
        secret = self._secret(party, message.originator)
        return None if secret is None else encryption_key(secret, message)

    # -- building --------------------------------------------------------------------------
    def build_command(
        self,
        *,
        recipient: bytes | str,
        message_code: int,
        content: bytes,
        critical: bool,
        originator: bytes | str | None = None,
        counter: int | None = None,
        utrn: bool = False,
        supplementary_remote_party_id: bytes | str | None = None,
        supplementary_remote_party_counter: int | None = None,
        date_time: bytes | None = None,
        sign_command: bool | None = None,
    ) -> tuple[Message, bytes]:
        """A signed (if critical, or `sign_command=True`) and ACB-MACed command: (message, frame).

        `counter` defaults to `next_counter(originator, utrn)`; an explicit one is recorded so later
        counters stay above it (pass an old one for replay tests)."""
        recipient = parse_eui(recipient)
        originator = self.supplier if originator is None else parse_eui(originator)
        if counter is None:
            counter = self.next_counter(originator, utrn)
        else:
            self.note_counter(originator, counter)
        srp = None if supplementary_remote_party_id is None else parse_eui(supplementary_remote_party_id)
        msg = Message(
            cra=CRA.COMMAND,
            originator_counter=counter,
            originator=originator,
            recipient=recipient,
            message_code=message_code,
            content=bytes(content),
            date_time=date_time,
            supplementary_remote_party_id=srp,
            supplementary_remote_party_counter=supplementary_remote_party_counter,
            signature=b"",
        )
        if critical if sign_command is None else sign_command:
            ds = self.keystore.private_key(originator, "ds")
            if ds is None:
                raise MissingKey(f"no DS private key for originator {eui_hex(originator)}")
            msg = msg.signed(sign(ds, msg.signed_bytes()))
        acb_ka = self.keystore.private_key(self.acb, "ka")
        if acb_ka is None:
            raise MissingKey(f"no KA private key for the ACB {eui_hex(self.acb)}")
        device_ka = self.keystore.public_key(recipient, "ka")
        if device_ka is None:
            raise MissingKey(f"no KA public key for recipient {eui_hex(recipient)}")
        secret = self.secrets.secret(acb_ka, device_ka)
        msg = msg.with_apdu()
        apdu = msg.general_signing()
        mac = gmac(message_key(secret, msg), originator, apdu)
        return msg.with_mac(mac), mac_frame(apdu, mac)

    def party(self, role: str) -> bytes:
        """The EUI originating a use case whose definition names `role` ('supplier', 'acb',
        'transitional_cos', 'recovery', ...): the head-end's supplier / ACB, else the first
        organisation of that role in the keystore. MissingKey when there is none."""
        if role == "supplier":
            return self.supplier
        if role == "acb":
            return self.acb
        try:
            code = RemotePartyRole[role.upper()]
        except KeyError:
            raise MissingKey(f"no remote-party role {role!r}") from None
        eui = next((e for e in self.keystore.euis() if self.keystore.role(e) == code), None)
        if eui is None:
            raise MissingKey(f"the keystore holds no {role} organisation")
        return eui

    # -- exchanging ------------------------------------------------------------------------
    async def request(
        self,
        *,
        recipient: bytes | str,
        message_code: int,
        content: bytes,
        critical: bool,
        originator: bytes | str | None = None,
        supplementary_remote_party_id: bytes | str | None = None,
        supplementary_remote_party_counter: int | None = None,
        timeout: float | None = 5.0,
        verify: bool = True,
        counter: int | None = None,
        utrn: bool = False,
        date_time: bytes | None = None,
        sign_command: bool | None = None,
    ) -> Reply:
        """Send one command and return its verified response.

        Raises `RequestTimeout`, `VerificationError` (unless `verify=False`), `MissingKey`, or the
        link's `WanDown` / `WanClosed`."""
        msg, frame = self.build_command(
            recipient=recipient,
            message_code=message_code,
            content=content,
            critical=critical,
            originator=originator,
            counter=counter,
            utrn=utrn,
            supplementary_remote_party_id=supplementary_remote_party_id,
            supplementary_remote_party_counter=supplementary_remote_party_counter,
            date_time=date_time,
            sign_command=sign_command,
        )
        return await self.exchange(msg, frame, critical=critical, timeout=timeout, verify=verify)

    def build_use_case(
        self,
        use_case: str,
        *,
        recipient: bytes | str,
        params: dict | None = None,
        counter: int | None = None,
        originator: bytes | str | None = None,
    ) -> tuple["usecases.UseCaseDef", Message, bytes]:
        """The named use case (gbcs.usecases) as a ready command: (definition, message, frame).

        CHF use cases are originated by the ACB on behalf of the supplier (supplementary remote
        party = supplier, with the supplier's own counter); CS01a gets a UTRN-shaped counter.
        Time defaults (ECS70's window, read ranges) come from the head-end's clock. Raises
        ValueError for parameters the use case refuses (and for an alert: nothing to build)."""
        definition = usecases.get(use_case)
        params = dict(params or {})
        recipient = parse_eui(recipient)
        srp = srp_counter = None
        if originator is None:
            originator = self.party(definition.originator)
        originator = parse_eui(originator)
        params = fill_certificates(definition.use_case, params, self.keystore, issuers=self.ca_certificates,
                                   parties={RemotePartyRole.SUPPLIER: self.supplier, RemotePartyRole.ACCESS_CONTROL_BROKER: self.acb})
        if originator == self.acb and definition.originator == "acb":
            srp = self.supplier
            srp_counter = self.next_counter(self.supplier)
        if counter is None:
            counter = self.next_counter(originator, utrn=definition.utrn)
        content = usecases.build_content(
            definition, counter, now=self.utcnow(), originator=originator, recipient=recipient, **params
        )
        msg, frame = self.build_command(
            recipient=recipient,
            message_code=definition.message_code,
            content=content,
            critical=definition.critical,
            originator=originator,
            supplementary_remote_party_id=srp,
            supplementary_remote_party_counter=srp_counter,
            counter=counter,
        )
        return definition, msg, frame

    @property
    def network_operator(self) -> bytes:
        """The network operator of the keystore, which originates distributor use cases (voltage
        configuration, export reads ...)."""
        return self.party("network_operator")

    async def send_use_case(
        self,
        use_case: str,
        *,
        recipient: bytes | str,
        params: dict | None = None,
        timeout: float | None = 5.0,
        verify: bool = True,
        counter: int | None = None,
        originator: bytes | str | None = None,
    ) -> "UseCaseReply":
        """Build the named use case (`build_use_case`), send it, verify and interpret the response.
        A device that refuses it raises `CommandRejected` at once (module doc: Rejections)."""
        definition, msg, frame = self.build_use_case(use_case, recipient=recipient, params=params, counter=counter,
                                                     originator=originator)
        reply = await self.exchange(msg, frame, critical=definition.critical, timeout=timeout, verify=verify)
        return self.interpret(definition.use_case, reply)

    def interpret(self, use_case: str, reply: Reply) -> "UseCaseReply":
        """A response to the named use case, decrypted where our keys allow and interpreted."""
        key = self.content_key(reply.message)
        decrypt = None if key is None else partial(decrypt_part, key, reply.message.originator)
        summary = usecases.get(use_case).interpret(reply.message, decrypt=decrypt, message=reply.message)
        return UseCaseReply(reply=reply, summary=summary)

    async def exchange(
        self, command: Message, frame: bytes, *, critical: bool, timeout: float | None = 5.0, verify: bool = True
    ) -> Reply:
        """Send a prepared command frame (`command` is its decoded form) and await the response."""
        if self._closed:
            raise WanClosed("head-end closed")
        key = (command.recipient, command.originator, command.originator_counter)
        if key in self._pending:
            raise HeadEndError(f"counter {command.originator_counter} to {eui_hex(command.recipient)} already in flight")
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._pending[key] = fut
        self._awaiting[fut] = command.recipient
        timed = False
        try:
            await self.link.send(frame)
            if not fut.done():
                if timeout is not None:
                    timed = True
                    self._deadlines.add(loop, fut, timeout, _expire_command, command, timeout)
                await fut
            response, raw = fut.result()
        finally:
            if timed:
                self._deadlines.discard(fut)
            if self._pending.get(key) is fut:
                del self._pending[key]
            self._awaiting.pop(fut, None)
        mac, signature = self.verdicts(response)
        reply = Reply(response, raw, mac, signature, critical)
        if verify and not reply.valid:
            what = "signature" if critical else "MAC"
            raise VerificationError(
                f"response {command.originator_counter} from {eui_hex(response.originator)}: "
                f"{what} does not verify (mac {mac}, signature {signature})",
                reply,
            )
        return reply

    async def send_raw(self, frame: bytes, timeout: float | None = 5.0, *, counter: int | None = None) -> bytes:
        """Send a prepared frame as is; return the first response frame carrying its originator
        counter (or `counter`). Nothing is checked: this is for replay and negative tests. A
        rejection alert from the frame's recipient raises `CommandRejected` (module doc)."""
        header = peek_header(frame)
        if counter is None:
            if header is None:
                raise HeadEndError("cannot read an originator counter from the frame; pass counter=")
            counter = header[1]
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._raw_waiters.setdefault(counter, []).append(fut)
        if header is not None:
            self._awaiting[fut] = bytes(header[3])
        timer = None
        try:
            await self.link.send(bytes(frame))
            if not fut.done():
                if timeout is not None:
                    timer = loop.call_later(timeout, _expire, fut, f"no response with counter {counter}", timeout)
                await fut
            return fut.result()
        finally:
            if timer is not None:
                timer.cancel()
            self._awaiting.pop(fut, None)
            waiters = self._raw_waiters.get(counter)
            if waiters is not None:
                if fut in waiters:
                    waiters.remove(fut)
                if not waiters:
                    del self._raw_waiters[counter]

    # -- alerts ----------------------------------------------------------------------------
    async def alerts(self, since: int = 0) -> AsyncIterator[Alert]:
        """Every alert from index `since` of `received_alerts` on, then each new one as it comes
        (never ends on its own; stops when the head-end or its link closes)."""
        i = since
        while True:
            while i < len(self.received_alerts):
                yield self.received_alerts[i]
                i += 1
            if self._closed:
                return
            fut = asyncio.get_running_loop().create_future()
            self._alert_waiters.append(fut)
            await fut

    async def wait_alert(
        self, predicate: Callable[[Alert], bool] | None = None, *, since: int = 0, timeout: float | None = 5.0
    ) -> Alert:
        """The first alert (from index `since`) that satisfies `predicate`."""

        async def find() -> Alert:
            async for alert in self.alerts(since):
                if predicate is None or predicate(alert):
                    return alert
            raise WanClosed("head-end closed while waiting for an alert")

        try:
            if timeout is None:
                return await find()
            return await asyncio.wait_for(find(), timeout)
        except asyncio.TimeoutError:
            raise RequestTimeout(f"no matching alert within {timeout} s") from None

    # -- receiving -------------------------------------------------------------------------
    def _on_frame(self, frame: bytes) -> None:
        try:
            if len(frame) > 1 and frame[0] == 0xDD and frame[1] == 0x09:
                whole = self._reassembler.add(decode_gbt_block(frame))
                if whole is None:
                    return
                frame = whole
            msg = decode_message(frame)
        except DecodeError as exc:
            self.undecodable += 1
            log.warning("undecodable frame from the WAN (%s): %s", exc, frame[:48].hex().upper())
            return
        cra = msg.cra
        if cra is CRA.RESPONSE:
            matched = False
            fut = self._pending.get((msg.originator, msg.recipient, msg.originator_counter))
            if fut is not None and not fut.done():
                fut.set_result((msg, frame))
                matched = True
            waiters = self._raw_waiters.get(msg.originator_counter)
            if waiters:
                for w in waiters:
                    if not w.done():
                        w.set_result(frame)
                        matched = True
            if not matched:
                mac, signature = self.verdicts(msg)
                self.late_responses.append(Reply(msg, frame, mac, signature, bool(msg.signature)))
                log.info("response %d from %s matched no request", msg.originator_counter, eui_hex(msg.originator))
        elif cra is CRA.ALERT:
            mac, signature = self.verdicts(msg)
            alert = Alert(msg, frame, mac, signature, self._now())
            if not alert.valid:
                log.warning("alert %d from %s fails verification (mac %s, signature %s)",
                            msg.originator_counter, eui_hex(msg.originator), mac, signature)
            self.received_alerts.append(alert)
            if self._pending and not self._timed and alert.valid:
                self._after_rejection(msg)
            self._wake_alert_waiters()
            if self._awaiting and msg.message_code in _ALERT_MESSAGE_CODES and alert.mac != "invalid" \
                    and alert.signature != "invalid":
                self._match_rejection(alert)
        else:
            # A raw waiter may still want it (negative tests echoing a command); nothing else does.
            log.warning("command frame came up the WAN from %s: ignored", eui_hex(msg.originator))

    def _match_rejection(self, alert: Alert) -> None:
        """Fail the command this alert refuses, if one is waiting (module doc: Rejections)."""
        msg = alert.message
        try:
            payload = decode_payload(msg)
        except (DecodeError, ValueError):
            return
        code = getattr(payload, "alert_code", None)
        failed = getattr(payload, "details", None)
        if isinstance(failed, FailureToDeliverAlert):  # names the command: exact match
            target = [self._pending.get((failed.recipient, failed.originator, failed.originator_counter))]
            target += [w for w in self._raw_waiters.get(failed.originator_counter, ())
                       if self._awaiting.get(w) == failed.recipient]
        elif msg.message_code == MessageCode.ECS100 and _unsupported_command(payload) is not None:
            # ECS100 names the command it refuses: its message code and originator counter [O RTDS]
            counter = _unsupported_command(payload)
            target = [self._pending.get((msg.originator, msg.recipient, counter))]
            target += [w for w in self._raw_waiters.get(counter, ()) if self._awaiting.get(w) == msg.originator]
        elif code in self.rejection_alerts:  # names no command: the oldest one pending to the device
            device = msg.originator
            target = [next((f for f, to in self._awaiting.items() if to == device and not f.done()), None)]
        else:
            return
        for fut in target:
            if fut is not None and not fut.done():
                exc = CommandRejected(alert, code)
                fut.set_exception(exc)
                log.info("%s", exc)
                return

    def _wake_alert_waiters(self) -> None:
        waiters, self._alert_waiters = self._alert_waiters, []
        for w in waiters:
            if not w.done():
                w.set_result(None)

    def _on_link_closed(self) -> None:
        self._fail_all(WanClosed("WAN link closed"))

    def _fail_all(self, exc: Exception) -> None:
        for fut in list(self._pending.values()):
            if not fut.done():
                fut.set_exception(exc)
        for waiters in list(self._raw_waiters.values()):
            for fut in waiters:
                if not fut.done():
                    fut.set_exception(exc)
        self._closed = True
        self._wake_alert_waiters()
        for fut in self._firmware_waiters:
            if not fut.done():
                fut.set_result(None)

    # -- firmware distribution (DUIS 11.1; wan.bridge UPDATE_FIRMWARE / FIRMWARE_EVENT) ----------
    async def update_firmware(self, image: bytes, targets: Iterable[bytes | str], *, request: int | None = None,
                              part_size: int = 60000) -> int:
        """Ask the hub to distribute OTA `image` to `targets` (EUIs); returns the request id. The
        hub's progress comes back as events (`firmware_events`, `next_firmware_event`)."""
        euis = [parse_eui(t) for t in targets]
        if not 0 < len(euis) < 256:
            raise ValueError("1..255 target devices")
        request = int.from_bytes(os.urandom(4), "big") if request is None else request
        head = request.to_bytes(4, "big") + len(image).to_bytes(4, "big")
        tail = bytes((len(euis),)) + b"".join(euis)
        for offset in range(0, len(image), part_size):
            await self.link.send(bytes((0, UPDATE_FIRMWARE)) + head + offset.to_bytes(4, "big") + tail
                                 + image[offset:offset + part_size])
        return request

    async def next_firmware_event(self, since: int, timeout: float | None = None) -> dict:
        """`firmware_events[since]`, waiting for it (RequestTimeout after `timeout` s)."""
        while len(self.firmware_events) <= since:
            if self._closed:
                raise WanClosed("head-end closed")
            fut = asyncio.get_running_loop().create_future()
            self._firmware_waiters.append(fut)
            try:
                await asyncio.wait_for(fut, timeout)
            except asyncio.TimeoutError:
                raise RequestTimeout(f"no firmware event within {timeout} s") from None
        return self.firmware_events[since]

    def _on_control(self, frame: bytes) -> None:
        try:
            record = json.loads(frame[2:].decode())
        except (UnicodeDecodeError, ValueError):
            return
        if isinstance(record, dict):
            self.firmware_events.append(record)
            waiters, self._firmware_waiters = self._firmware_waiters, []
            for fut in waiters:
                if not fut.done():
                    fut.set_result(None)

    async def close(self, close_link: bool = True) -> None:
        """Detach from the link (and close it), failing requests still waiting."""
        self.link.set_receiver(None)
        self._fail_all(WanClosed("head-end closed"))
        if close_link:
            await self.link.close()

    async def __aenter__(self) -> "HeadEnd":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()


class _Deadlines:
    """Timeouts of the commands in flight on one loop timer, armed at the earliest deadline: a
    command answered in time costs a dict entry, not a timer of its own (a loop timer per command
    was a sizeable share of a read's host time: heap pushes, cancelled handles in the heap)."""

    __slots__ = ("_due", "_timer", "_timer_at", "_loop")

    def __init__(self) -> None:
        self._due: dict[asyncio.Future, tuple[float, Callable[..., None], tuple]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf
        self._loop: asyncio.AbstractEventLoop | None = None

    def add(self, loop: asyncio.AbstractEventLoop, fut: asyncio.Future, timeout: float,
            expire: Callable[..., None], *args: Any) -> None:
        """`expire(fut, *args)` at `timeout` seconds of `loop` time from now, unless discarded first."""
        if loop is not self._loop:  # a new event loop (tests): the old one's timer is gone
            self._loop, self._timer, self._timer_at = loop, None, math.inf
        at = loop.time() + timeout
        self._due[fut] = (at, expire, args)
        if at < self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = loop.call_at(at, self._sweep)
            self._timer_at = at

    def discard(self, fut: asyncio.Future) -> None:
        self._due.pop(fut, None)

    def _sweep(self) -> None:
        loop = self._loop
        self._timer, self._timer_at = None, math.inf
        if loop is None:
            return
        now = loop.time() + _CLOCK_RESOLUTION  # as the loop decides a timer is due
        later = math.inf
        for fut, (at, expire, args) in list(self._due.items()):
            if at <= now:
                del self._due[fut]
                expire(fut, *args)
            elif at < later:
                later = at
        if later < math.inf and self._due:
            self._timer = loop.call_at(later, self._sweep)
            self._timer_at = later


_CLOCK_RESOLUTION = time.get_clock_info("monotonic").resolution


def _expire(fut: asyncio.Future, what: str, timeout: float) -> None:
    if not fut.done():
        fut.set_exception(RequestTimeout(f"{what} within {timeout} s"))


def _expire_command(fut: asyncio.Future, command: Message, timeout: float) -> None:
    if not fut.done():  # the text is made only when it is needed
        what = f"no response to counter {command.originator_counter} from {eui_hex(command.recipient)}"
        fut.set_exception(RequestTimeout(f"{what} within {timeout} s"))


__all__ = [
    "REJECTION_ALERTS",
    "Alert",
    "CommandRejected",
    "HeadEnd",
    "HeadEndError",
    "MissingKey",
    "Reply",
    "RequestTimeout",
    "VerificationError",
    "alert_code",
]
