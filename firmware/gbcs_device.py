"""The GBCS security services every emulated smart-metering device runs: checking an incoming
command (MAC, signature, role, counter, recipient), answering it (MAC or signature), and raising
alerts; and the handler table through which a device declares the use cases it serves.

Handler table: a device application (`hub/`, `meter/`) subclasses `GbcsDevice` and sets the class
attribute `HANDLERS`, built with `handlers(...)` from one entry per use case, keyed by
`gbcs.catalogue.MessageCode`:

    HANDLERS = handlers(
        dlms(MessageCode.ECS17c),                    # served by the device's ObjectModel
        dlms(MessageCode.ECS42, check=runs_script),  # ... with a content check of its own
        call(MessageCode.GCS59, _restore),           # a function (device, command) -> content
        join(MessageCode.CS03B, DeviceType.TYPE_2),  # the device-log service (firmware.device_log)
    )

Each entry is a `Handler(message_code, run, use_case, dated, fail)`: `run(device, command)` returns
the response content (bytes) or an `Outcome`; `use_case` is the `gbcs.usecases` definition when
there is one; `dated` puts a date-time in the response's header; `fail` (a `FailNext`) says how the
use case answers when a test armed `fail-next` for it (`gbhub ctl fault EUI fail-next USE_CASE
RESULT`): `dlms` entries answer each request with the given DLMS data-access / action result
(`hardware-fault`, or one result per request: `success,hardware-fault,other-reason`, the last
repeated; `success` requests are served as usual), as the reference device did for the DCC's
ERROR vectors; ASN.1 entries take their response code (`asn1_failure`). A `dlms` binding decodes the
ACCESS.request, refuses (`malformed`, alert 0x8F1E) any request the use case's definition does not
allow (`UseCaseDef.allows` — the allowed requests are written once, in `gbcs.usecases`), and
answers through `device.objects` (`firmware.cosem.ObjectModel.answer`; `BREAK_ON_ERROR` says
whether the device honours the invoke-id's break-on-error flag). `supports()` is derived from the
table; a command whose use case is not in it is refused `unsupported` (alert 0x8F1E).

Every rejected command is logged in the security log, answered with the alert in
`SECURITY_ALERTS`, and changes no state: `execute()` and the counter update run inside one NVM
transaction that only commits when the command was accepted and executed.

Which alert for which failure is not fixed by the facts we have [U]; the choice below follows the
alert names in GBCS Appendix B and is configurable per device (`security_alerts=`).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Awaitable, Callable, ClassVar, Iterable, Mapping

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from gbcs import catalogue, usecases
from gbcs.catalogue import AlertCode, MessageCode, RemotePartyRole
from gbcs.codec import DecodeError, eui_hex
from gbcs.dlms import ACTION_RESULTS, DATA_ACCESS_RESULTS, AccessRequest, AccessResponse, Data, RequestSpec, decode_apdu, obis_text
from gbcs.frame import CRA, Message, decode_message, mac_frame, segment
from gbcs.keystore import Keystore
from gbcs.obis import OBIS
from gbcs.security import SecretCache, check_mac, check_signature, compute_mac, kdf, sign

from . import faults as _faults
from .future import FutureDated, execution_times
from .cosem import SUCCESS, Attribute, CosemError, CosemObject, datetime_bytes
from .device import Device
from .update import FirmwareUpdates, FutureDatedActivation, fire_firmware_activation
from .nvm import NvmError
from .trust import CREDENTIALS_ACTION, DeviceTrust, fire_credentials, own_credentials

log = logging.getLogger("gbhub.device")

# failure -> alert code (GBCS Appendix B names)
SECURITY_ALERTS: dict[str, int] = {
    "malformed": AlertCode.INTEGRITY_CHECK_OF_CONTENT_OR_FORMAT_OF_COMMAND_FAILED,
    "authentication": AlertCode.TRUSTED_SOURCE_AUTHENTICATION_FAILURE,  # bad MAC or signature
    "unknown_party": AlertCode.TRUSTED_SOURCE_AUTHENTICATION_FAILURE,  # originator not a trust anchor
    "role": AlertCode.SOURCE_DOES_NOT_HAVE_AUTHORITY_FOR_COMMAND,
    "replay": AlertCode.FAILED_AUTHENTICATION_OR_AUTHORISATION_NOT_COVERED_BY_OTHER_CODES,
    "recipient": AlertCode.FAILED_AUTHENTICATION_OR_AUTHORISATION_NOT_COVERED_BY_OTHER_CODES,
    "unsupported": AlertCode.INTEGRITY_CHECK_OF_CONTENT_OR_FORMAT_OF_COMMAND_FAILED,
}

# Messages a device sends up (responses, alerts) longer than this many bytes go as GBT blocks
# (FACTS 1.9) [I]: above the largest response the reference device sent whole (1,307 bytes, RTDS
# ECS20b TWIN), so none of those is segmented.
DEFAULT_GBT_LIMIT = 2048

# Commands a device accepts with a KRP signature and no ACB MAC [S FACTS §5; O RTDS].
SIGNATURE_ONLY_COMMANDS = frozenset({
    MessageCode.CS02a, MessageCode.CS02e, MessageCode.CS02f,
    MessageCode.CS02bAnyExceptAbnormalRootByRecovery, MessageCode.CS02bAnyByContingency,
})

GENERIC_CRITICAL_ALERT = MessageCode.GCA
GENERIC_NON_CRITICAL_ALERT = MessageCode.GNCA


@dataclass(frozen=True)
class RemoteParty:
    """One trust anchor: an organisation the device accepts commands from / reports to."""

    eui: bytes
    role: RemotePartyRole
    ds_public: ec.EllipticCurvePublicKey | None = None
    ka_public: ec.EllipticCurvePublicKey | None = None
    # Its certificates (DER) by usage ("ds", "ka", "pp-ka": the supplier's prepayment KA), for
    # the trust anchor cells (`firmware.trust`); the prepayment KA public key.
    certificates: tuple[tuple[str, bytes], ...] = ()
    pp_public: ec.EllipticCurvePublicKey | None = None


class TrustAnchors:
    """The device's trust anchor cells, by EUI and by role (first party of a role wins)."""

    def __init__(self, parties: Iterable[RemoteParty] = ()) -> None:
        self._by_eui: dict[bytes, RemoteParty] = {}
        self._by_role: dict[RemotePartyRole, RemoteParty] = {}
        for p in parties:
            self.add(p)

    def add(self, party: RemoteParty) -> None:
        self._by_eui[party.eui] = party
        self._by_role.setdefault(party.role, party)

    def by_eui(self, eui: bytes) -> RemoteParty | None:
        return self._by_eui.get(eui)

    def by_role(self, role: RemotePartyRole) -> RemoteParty | None:
        return self._by_role.get(role)

    def __iter__(self):
        return iter(self._by_eui.values())

    @classmethod
    def from_keystore(cls, keystore: Keystore, euis: Iterable[bytes] | None = None) -> "TrustAnchors":
        """Every organisation (certificate with a role) in `keystore`, or just `euis`."""
        anchors = cls()
        for eui in euis if euis is not None else keystore.euis():
            role = keystore.role(eui)
            if role is None:
                continue
            try:
                role = RemotePartyRole(role)
            except ValueError:
                continue
            certs = tuple((usage, cert.public_bytes(Encoding.DER)) for usage in ("ds", "ka", "pp-ka")
                          if (cert := keystore.certificate(eui, usage)) is not None)
            anchors.add(RemoteParty(eui, role, keystore.public_key(eui, "ds"), keystore.public_key(eui, "ka"),
                                    certs, keystore.public_key(eui, "pp-ka")))
        return anchors


@dataclass(frozen=True)
class Credentials:
    """The device's own private keys (KA for MACs and encryption, DS for signatures)."""

    ka: ec.EllipticCurvePrivateKey
    ds: ec.EllipticCurvePrivateKey | None = None
    # The device certificates (DER) by usage ("ka", "ds"), for CS02e: (usage, DER) pairs.
    certificates: Iterable[tuple[str, bytes]] = ()

    @classmethod
    def from_keystore(cls, keystore: Keystore, eui: bytes) -> "Credentials":
        ka = keystore.private_key(eui, "ka")
        if ka is None:
            raise ValueError(f"no KA private key for {eui_hex(eui)} in the keystore")
        return cls(ka=ka, ds=keystore.private_key(eui, "ds"), certificates=_KeystoreCertificates(keystore, eui))


class _KeystoreCertificates:
    """A device's certificates, read from the keystore when first asked for (CS02e): a test
    fleet's keystore issues them on demand (`tools/fleet.py`), and most devices never need them."""

    __slots__ = ("_keystore", "_eui", "_pairs")

    def __init__(self, keystore: Keystore, eui: bytes) -> None:
        self._keystore, self._eui, self._pairs = keystore, eui, None

    def __iter__(self):
        if self._pairs is None:
            self._pairs = tuple((usage, cert.public_bytes(Encoding.DER)) for usage in ("ds", "ka")
                                if (cert := self._keystore.certificate(self._eui, usage)) is not None)
        return iter(self._pairs)


class CommandRejected(Exception):
    """Raised by a security check or by `execute()`: the command is refused, nothing changes."""

    def __init__(self, reason: str, detail: str = "", alert: bool = True) -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
        self.alert = alert


@dataclass
class Outcome:
    """What `execute()` returns: the response content, optionally a date-time for the header."""

    content: bytes
    date_time: bytes | None = None
    after: Callable[[], Any] | None = None  # run once the response has been sent
    signed: bool | None = None  # sign (True) or MAC (False) the response; None: by the use case


SendGbcs = Callable[[bytes], Awaitable[Any]]


# ------------------------------------------------------------------------------- handler table
Run = Callable[[Any, Message], "bytes | Outcome"]  # (device, command) -> response content or Outcome


@dataclass(frozen=True, slots=True)
class FailNext:
    """How a use case answers a command `fail-next` armed for it: `parse(result text)` checks the
    RESULT a person typed (ValueError with one line if bad), `respond(device, command, parsed)` builds
    the response content (authenticated command, inside its NVM transaction)."""

    parse: Callable[[str], Any]
    respond: Callable[[Any, Message, Any], "bytes | Outcome"]


@dataclass(frozen=True, slots=True)
class Handler:
    """What executes one use case on a device (module doc: the handler table)."""

    message_code: MessageCode
    run: Run
    use_case: "usecases.UseCaseDef | None" = None
    dated: bool = False  # the response carries a date-time in its header [O RTDS]
    fail: FailNext | None = None  # its answer under `fail-next`


def handlers(*entries: Handler) -> Mapping[int, Handler]:
    """A device's handler table (`HANDLERS`) from its entries; one entry per message code."""
    table: dict[int, Handler] = {}
    for h in entries:
        if h.message_code in table:
            raise ValueError(f"{h.message_code.name} has two handlers")
        table[h.message_code] = h
    return MappingProxyType(table)


def definition(message_code: MessageCode) -> "usecases.UseCaseDef | None":
    """The `gbcs.usecases` definition of a use case, None when it has none yet."""
    try:
        return usecases.get(message_code.name)
    except KeyError:
        return None


def call(message_code: MessageCode, run: Run, *, dated: bool = False, fail: FailNext | None = None) -> Handler:
    """A use case executed by a function `run(device, command)` -> content bytes or `Outcome`;
    `fail` its answer under `fail-next` (e.g. `asn1_failure(...)`)."""
    return Handler(message_code, run, definition(message_code), dated, fail)


# ------------------------------------------------------------------------------- fail-next
_RESULT_NAMES = {name: code for code, name in {**DATA_ACCESS_RESULTS, **ACTION_RESULTS}.items()}


def _parse_dlms_results(text: str) -> tuple[int, ...]:
    codes = []
    for part in text.split(","):
        part = part.strip().lower().replace("_", "-")
        if part in _RESULT_NAMES:
            codes.append(_RESULT_NAMES[part])
        elif part.isdigit() and int(part) <= 255:
            codes.append(int(part))
        else:
            raise ValueError(f"{part!r} is not a DLMS result (e.g. hardware-fault, temporary-failure, other-reason, "
                             "or a number 0-255; one per request, comma-separated)")
    if not codes:
        raise ValueError("no result given")
    return tuple(codes)


def _dlms_fail_respond(device: "GbcsDevice", request: AccessRequest, codes: tuple[int, ...]) -> bytes:
    """Each request answers its result (the last one repeated); `success` ones are served."""
    data: list[Data | None] = []
    results: list[int] = []
    for i, (spec, value) in enumerate(zip(request.specs, request.data)):
        code = codes[min(i, len(codes) - 1)]
        if code == SUCCESS:
            try:
                data.append(device.objects.serve(spec, value))
                results.append(SUCCESS)
            except CosemError as exc:
                data.append(exc.data)
                results.append(exc.result)
        else:
            data.append(None)
            results.append(code)
    return AccessResponse.answer(request, data, results).encode()


def asn1_failure(codes: type, build: Callable[[int, Any], bytes]) -> FailNext:
    """`fail-next` for an ASN.1 use case: RESULT names a member of the response-code enum `codes`
    (`NOT_IN_DEVICE_LOG`, any case) or gives its number; `build(code, device)` is the response
    content."""

    def parse(text: str) -> int:
        t = text.strip()
        try:
            return int(codes[t.upper().replace("-", "_")])
        except KeyError:
            pass
        if t.isdigit():
            return int(t)
        names = ", ".join(m.name for m in codes)
        raise ValueError(f"{text!r} is not a response code here ({names}, or a number)")

    return FailNext(parse, lambda device, message, code: build(code, device))


RequestCheck = Callable[[RequestSpec, Any], None]  # raises CommandRejected


def dlms(message_code: MessageCode, *, check: RequestCheck | None = None, dated: bool = False,
         future: bool = False) -> Handler:
    """A use case served by the device's ObjectModel (`device.objects`): its ACCESS.request may
    carry only what the use case's definition allows; `check(spec, value)` refuses content the
    definition cannot express (a script id). `future`: it may carry an execution date-time in
    activation attributes (`firmware.future`); all of one command's must be the same."""
    uc = definition(message_code)
    if uc is None or not uc.requests:
        raise ValueError(f"{message_code.name}: no use-case definition says which DLMS requests it carries")
    if future and not catalogue.device_future_dated(message_code):
        raise ValueError(f"{message_code.name}: GBCS does not let a device future-date it (DUIS pattern)")
    allows = uc.allows
    name = message_code.name

    def request_of(message: Message) -> AccessRequest:
        """The command's ACCESS.request, refused (malformed) when it asks for what the use case's
        definition does not allow or fails the entry's content check."""
        try:
            request = decode_apdu(message.content, message_code=message.message_code)
        except DecodeError as exc:
            raise CommandRejected("malformed", str(exc)) from None
        if not isinstance(request, AccessRequest) or len(request.data) != len(request.specs):
            raise CommandRejected("malformed", "not an ACCESS.request")
        for spec, value in zip(request.specs, request.data):
            if not allows(spec):
                raise CommandRejected("malformed", f"{spec.kind.name} {spec.class_id}/{obis_text(spec.obis)}/{spec.id} "
                                                   f"is not part of {name}")
            if check is not None:
                check(spec, value)
        return request

    def same_execution_time(device: "GbcsDevice", request: AccessRequest) -> None:
        activations = device.objects.activations
        times = execution_times([v for s, v in zip(request.specs, request.data)
                                 if (s.class_id, s.obis, s.id) in activations])
        if len(times) > 1:
            raise CommandRejected("malformed", "future-dated times within one command differ")

    def run(device: "GbcsDevice", message: Message) -> bytes:
        request = request_of(message)
        if future:
            same_execution_time(device, request)
        return device.objects.answer(request, break_on_error=device.BREAK_ON_ERROR).encode()

    def fail(device: "GbcsDevice", message: Message, codes: tuple[int, ...]) -> bytes:
        return _dlms_fail_respond(device, request_of(message), codes)

    return Handler(message_code, run, uc, dated, FailNext(_parse_dlms_results, fail))


# ECS52 reads attribute 2; one object shared by every device's model (firmware.cosem)
_FIRMWARE_VERSION_OBJECT = CosemObject.of(OBIS.DEVICE_FIRMWARE_VERSION,
                                          {2: Attribute(get=lambda device: Data.octet_string(device.firmware_version))})


class GbcsDevice(FirmwareUpdates, Device):
    """A device that speaks GBCS end to end. `send_gbcs` (set by the wiring) carries messages
    it originates (responses, alerts) towards the Comms Hub; `handle(frame)` takes a command."""

    def __init__(
        self,
        eui: bytes | str,
        *,
        clock,
        credentials: Credentials,
        trust: TrustAnchors,
        nvm=None,
        secrets: SecretCache | None = None,
        send_gbcs: SendGbcs | None = None,
        security_alerts: dict[str, int] | None = None,
        alert_recipient: bytes | None = None,
        gbt_limit: int | None = None,
        gbt_block_size: int | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(eui, clock=clock, nvm=nvm, **kw)
        # GBT: frames longer than `gbt_limit` go up in blocks of `gbt_block_size` data bytes; without
        # a limit, the block size when one is given, else DEFAULT_GBT_LIMIT (0: never segment)
        if (gbt_limit is not None and gbt_limit < 0) or (gbt_block_size is not None and gbt_block_size <= 0):
            raise ValueError("gbt_limit must be >= 0 (0: never segment) and gbt_block_size > 0")
        self.gbt_limit = gbt_limit
        self.gbt_block_size = gbt_block_size
        # the device's own cells and keys, as persisted over what commissioning gave (firmware.trust)
        self._commissioned_credentials = credentials
        self.credentials = own_credentials(self, credentials)
        self.trust = DeviceTrust.of(self, trust, RemoteParty)
        self.secrets = secrets or SecretCache()
        self.send_gbcs = send_gbcs
        self.security_alerts = dict(SECURITY_ALERTS, **(security_alerts or {}))
        self._alert_recipient = alert_recipient
        self.rejected = 0
        self.accepted = 0
        self._fail_next: dict[int, Any] = {}  # message code -> parsed RESULT (`fail-next`; RAM only)
        self.current_command: Message | None = None  # the command `execute()` is running
        self.future = FutureDated(self)  # pending future-dated instructions (firmware.future)

    #: The use cases this device serves and what executes each (module doc).
    HANDLERS: ClassVar[Mapping[int, Handler]] = MappingProxyType({})
    #: Faults every GBCS device can suffer (`firmware.faults`); device types extend it with `base=`.
    FAULT_KINDS = _faults.fault_kinds(_faults.fault(
        "fail-next", lambda device, args, options: device.arm_fail_next(args), "USE_CASE RESULT",
        "the next authentic command of USE_CASE is answered with RESULT: a DLMS result (`hardware-fault`, "
        "or one per request: `success,hardware-fault,other-reason`), the ASN.1 response code (CS02*, CS03*, "
        "CS04*, CS06, CS07), or for GBZ commands a ZCL status with the failing component (and, for a read, attribute): "
        "`hardware-failure@6`, `hardware-failure@0.1`"))
    #: Future-dated actions other than DLMS activations: {name: fn(device, entry) -> FdaOutcome}
    #: (`firmware.future`; ASN.1 CS06 / CS02*, GBZ).
    FUTURE_ACTIONS: ClassVar[Mapping[str, Callable[[Any, dict], Any]]] = MappingProxyType({
        FutureDatedActivation.ACTION: fire_firmware_activation, CREDENTIALS_ACTION: fire_credentials})
    #: Whether DLMS requests honour the invoke-id's break-on-error flag (`ObjectModel.answer`).
    BREAK_ON_ERROR: ClassVar[bool] = True
    #: The device's COSEM objects, for `dlms` handlers (set by devices that serve DLMS).
    objects: Any = None

    async def start(self) -> None:
        if self.state == "off":  # a reboot reads what NVM holds, as a real device would
            self.credentials = own_credentials(self, self._commissioned_credentials)
            self.trust.forget()
        await super().start()
        if self.state == "on":
            self.future.arm()  # pending future-dated instructions (firmware.future)

    # ------------------------------------------------------------------ hooks
    def supports(self, message_code: int) -> bool:
        """Use cases this device implements: those in its handler table."""
        return message_code in self.HANDLERS

    def execute(self, message: Message) -> Outcome:
        """Carry out an authenticated, authorised, fresh command through its handler; return the
        response. Runs inside an NVM transaction, so it is synchronous (never await inside a
        transaction): raise `CommandRejected` to refuse with no state change; put follow-up async
        work (forwarding, alerts) in `Outcome.after`."""
        handler = self.HANDLERS.get(message.message_code)
        if handler is None:
            raise CommandRejected("unsupported", f"message code 0x{message.message_code:04X}")
        armed = self._fail_next
        self.current_command = message
        try:
            if armed and message.message_code in armed and handler.fail is not None:
                out = handler.fail.respond(self, message, armed.pop(message.message_code))
                log.info("%s %s answered %s as fail-next said", self.kind, self.eui_hex, handler.message_code.name)
            else:
                out = handler.run(self, message)
        finally:
            self.current_command = None
        if type(out) is not Outcome:
            out = Outcome(out)
        if handler.dated:
            out.date_time = self.response_date_time()
        return out

    def arm_fail_next(self, args: list[str]) -> dict:
        """`fail-next USE_CASE RESULT` (see FAULT_KINDS); a second one for the same use case replaces
        the first. Not kept across a restart."""
        _faults.arity("fail-next", args, 2, "USE_CASE RESULT")
        name, result = args
        code = next((c for c, h in self.HANDLERS.items() if h.message_code.name.lower() == name.lower()), None)
        if code is None:
            raise _faults.FaultError(f"{self.kind} {self.eui_hex} does not serve {name}")
        handler = self.HANDLERS[code]
        if handler.fail is None:
            raise _faults.FaultError(f"{handler.message_code.name} has no failure answer on {self.kind}")
        try:
            parsed = handler.fail.parse(result)
        except ValueError as exc:
            raise _faults.FaultError(str(exc)) from None
        self._fail_next[code] = parsed
        return {"use_case": handler.message_code.name, "result": result}

    @staticmethod
    def firmware_version_object() -> CosemObject:
        """The firmware version object (ECS52 reads attribute 2) every DLMS device exposes."""
        return _FIRMWARE_VERSION_OBJECT

    def response_date_time(self) -> bytes:
        """The date-time a dated response carries (the device's clock, whole seconds)."""
        return datetime_bytes(self.clock.now())

    def check_freshness(self, message: Message) -> bool:
        """Anti-replay: the originator counter must be above the last one accepted from that
        party (persisted in the caller's transaction). Use cases with their own freshness rule
        (CS01a top-ups: the UTRN counter cache) override this."""
        return self.accept_counter(message.originator, message.originator_counter)

    def alert_content(self, alert_code: int, counter: int, elements: tuple = ()) -> bytes:
        """Payload of an alert (DLMS DATA-NOTIFICATION by default; GBZ devices override)."""
        from gbcs.dlms import DataNotification

        return DataNotification.build(counter, alert_code, self.clock.utcnow(), *elements).encode()

    # ------------------------------------------------------------------ inbox
    async def handle(self, item: Any) -> Any:
        if isinstance(item, (bytes, bytearray)):
            return await self.process(bytes(item))
        return await self.handle_other(item)

    async def handle_other(self, item: Any) -> Any:
        raise TypeError(f"{self.kind} cannot handle {type(item).__name__}")

    async def process(self, frame: bytes) -> bytes | None:
        """Check and execute one command; send and return its response (None if rejected)."""
        try:
            msg = decode_message(frame)
        except DecodeError as exc:
            await self._reject(None, CommandRejected("malformed", str(exc)))
            return None
        if msg.cra != CRA.COMMAND:
            self.log_security("unexpected_message", cra=msg.cra.name.lower(), message_code=msg.message_code)
            return None
        try:
            party = self.authenticate(msg)
        except CommandRejected as exc:
            await self._reject(msg, exc)
            return None
        nvm = self.nvm
        try:
            with nvm.transaction():
                if not self.check_freshness(msg):
                    raise CommandRejected("replay", f"counter {msg.originator_counter} not above {self.counters.last(msg.originator)}")
                outcome = self.execute(msg)
        except CommandRejected as exc:
            await self._reject(msg, exc)
            return None
        except NvmError as exc:  # nothing was stored: answer, never stay silent
            self.rejected += 1
            log.error("%s %s cannot store a command's effects: %s", self.kind, self.eui_hex, exc)
            await self.raise_alert(AlertCode.ERROR_NON_VOLATILE_MEMORY)
            return None
        self.accepted += 1
        if log.isEnabledFor(logging.INFO):  # `gbhub run -v`: every command
            uc = catalogue.by_message_code(msg.message_code)
            log.info("%s %s executed %s from %s (counter %d)", self.kind, self.eui_hex,
                     uc.use_case if uc else f"0x{msg.message_code:04X}", eui_hex(msg.originator), msg.originator_counter)
        response = self.respond(msg, outcome, party)
        await self._send(response)
        if outcome.after is not None:
            result = outcome.after()
            if hasattr(result, "__await__"):
                await result
        return response

    def peer_device_key(self, eui: bytes) -> ec.EllipticCurvePublicKey | None:
        """KA public key of a HAN device allowed to send this one HAN-only commands (a GSME's
        PPMID: PCS01 / PCS02): the certificate a Method C join left in the device log."""
        log = getattr(self, "joined_devices", None)
        return None if log is None else log.ka_key(eui)

    def authenticate(self, msg: Message) -> RemoteParty:
        """MAC (ACB), recipient, originator known, role allowed, signature of critical commands.
        A HAN-only device-to-device command (PCS01 / PCS02) instead carries a MAC from the KA keys
        of the two devices, and its originator must be a device joined by Method C."""
        if msg.recipient != self.eui:
            raise CommandRejected("recipient", f"addressed to {eui_hex(msg.recipient)}")
        use_case = catalogue.by_message_code(msg.message_code)
        if use_case is None or not self.supports(msg.message_code):
            raise CommandRejected("unsupported", f"message code 0x{msg.message_code:04X}")
        if use_case.message_type == catalogue.SME_C_PPMID_GSME:
            key = self.peer_device_key(msg.originator)
            if key is None:
                raise CommandRejected("unknown_party", f"originator {eui_hex(msg.originator)} has not joined by Method C")
            if msg.mac is None or not check_mac(self.secrets.secret(self.credentials.ka, key), msg):
                raise CommandRejected("authentication", "device-to-device MAC does not verify")
            return RemoteParty(msg.originator, RemotePartyRole.OTHER, ka_public=key)  # a device, not a party [I]
        party = self.trust.by_eui(msg.originator)
        if party is None:
            raise CommandRejected("unknown_party", f"originator {eui_hex(msg.originator)} not a trust anchor")
        if msg.mac is None:
            # Signature-only commands: the "Signature" variants of CS02a/CS02e/CS02f and recovery /
            # contingency CS02b [S FACTS §5; O RTDS CS02aSignature, CS02fSignature, CS02b...ByRecovery].
            if msg.message_code not in SIGNATURE_ONLY_COMMANDS:
                raise CommandRejected("authentication", "command carries no MAC")
            if not msg.signature or party.ds_public is None or not check_signature(party.ds_public, msg):
                raise CommandRejected("authentication", "signature-only command: signature missing or invalid")
        else:
            acb = self.trust.by_role(RemotePartyRole.ACCESS_CONTROL_BROKER)
            if acb is None or acb.ka_public is None:
                raise CommandRejected("authentication", "no ACB trust anchor to check the MAC")
            if not check_mac(self.secrets.secret(self.credentials.ka, acb.ka_public), msg):
                raise CommandRejected("authentication", "MAC does not verify")
        if party.role not in catalogue.allowed_remote_party_roles(msg.message_code):
            raise CommandRejected("role", f"{party.role.name} may not send {use_case.use_case}")
        if catalogue.is_critical_command(msg.message_code) and msg.mac is not None:
            if not msg.signature or party.ds_public is None or not check_signature(party.ds_public, msg):
                raise CommandRejected("authentication", "critical command signature missing or invalid")
        return party

    # ------------------------------------------------------------------ outgoing
    def respond(self, command: Message, outcome: Outcome, party: RemoteParty | None = None) -> bytes:
        """Response: same counter and other-information; signed if the command was critical,
        else MACed for the command's originator."""
        msg = Message(
            cra=CRA.RESPONSE,
            originator_counter=command.originator_counter,
            originator=self.eui,
            recipient=command.originator,
            message_code=command.message_code,
            content=outcome.content,
            date_time=outcome.date_time,
            supplementary_remote_party_id=command.supplementary_remote_party_id,
            supplementary_remote_party_counter=command.supplementary_remote_party_counter,
            supplementary_originator_counter=command.supplementary_originator_counter,
            signature=b"",
        )
        critical = catalogue.is_critical_command(command.message_code) if outcome.signed is None else outcome.signed
        party = party or self.trust.by_eui(command.originator)
        return self.seal(msg, critical=critical, peer=party)

    def seal(self, msg: Message, *, critical: bool, peer: RemoteParty | None) -> bytes:
        """Sign (critical) or MAC (non-critical, needs the peer's KA key) and encode."""
        if critical:
            if self.credentials.ds is None:
                raise ValueError(f"{self.kind} {self.eui_hex} has no DS key to sign with")
            return msg.signed(sign(self.credentials.ds, msg.signed_bytes())).encode()
        if peer is None or peer.ka_public is None:
            raise ValueError(f"no KA key for {eui_hex(msg.recipient)} to MAC with")
        secret = self.secrets.secret(self.credentials.ka, peer.ka_public)
        msg = msg.with_apdu()  # encoded once for the MAC and the frame
        return mac_frame(msg.general_signing(), compute_mac(secret, msg))

    def encryption_key_for(self, command: Message) -> bytes:
        """Key for encrypted parts of the response to `command` (mode 04)."""
        party = command.supplementary_remote_party_id or command.originator
        anchor = self.trust.by_eui(party)
        if anchor is None or anchor.ka_public is None:
            raise CommandRejected("unknown_party", f"no KA key for {eui_hex(party)} to encrypt for", alert=False)
        secret = self.secrets.secret(self.credentials.ka, anchor.ka_public)
        counter = command.supplementary_originator_counter
        return kdf(secret, self.eui, 4, command.originator_counter if counter is None else counter, party)

    @property
    def alert_recipient(self) -> RemoteParty | None:
        if self._alert_recipient is not None:
            return self.trust.by_eui(self._alert_recipient)
        return self.trust.by_role(RemotePartyRole.SUPPLIER)

    def build_alert(
        self,
        alert_code: int,
        *,
        critical: bool = False,
        message_code: int | None = None,
        content: bytes | None = None,
        elements: tuple = (),
        recipient: RemoteParty | None = None,
    ) -> bytes:
        recipient = recipient or self.alert_recipient
        if recipient is None:
            raise ValueError("no alert recipient (supplier trust anchor) configured")
        counter = self.next_counter("alert", floor=int(self.clock.now() * 1000))
        if content is None:
            content = self.alert_content(alert_code, counter, elements)
        if message_code is None:
            message_code = GENERIC_CRITICAL_ALERT if critical else GENERIC_NON_CRITICAL_ALERT
        msg = Message(
            cra=CRA.ALERT,
            originator_counter=counter,
            originator=self.eui,
            recipient=recipient.eui,
            message_code=message_code,
            content=content,
            signature=b"",
        )
        return self.seal(msg, critical=critical, peer=recipient)

    async def raise_alert(self, alert_code: int, *, log_it: bool = True, **kw: Any) -> bytes | None:
        """Build and send an alert; logged in the event log (unless `log_it` is False: the
        device's event behaviours say not to). Never raises (an alert that can't be built or sent
        is logged instead)."""
        try:
            frame = self.build_alert(alert_code, **kw)
        except Exception as exc:  # noqa: BLE001 - a device must not crash on its own alert
            log.warning("%s %s: cannot build alert %04X: %s", self.kind, self.eui_hex, alert_code, exc)
            return None
        try:
            if log_it:
                self.log_event("alert", alert_code=f"{alert_code:04X}")
        except NvmError as exc:  # the alert still goes out (it may be the one reporting this)
            log.warning("%s %s: alert %04X not logged: %s", self.kind, self.eui_hex, alert_code, exc)
        await self._send(frame)
        return frame

    async def _send(self, frame: bytes) -> None:
        """Send a frame up; one longer than `gbt_limit` as GBT blocks (the head-end reassembles)."""
        block_size = self.gbt_block_size
        limit = self.gbt_limit if self.gbt_limit is not None else (block_size or DEFAULT_GBT_LIMIT)
        if limit and len(frame) > limit:
            for block in segment(frame, block_size or limit):
                await self._send_one(block.encode())
            return
        await self._send_one(frame)

    async def _send_one(self, frame: bytes) -> None:
        if self.send_gbcs is None:
            log.debug("%s %s: no uplink, frame dropped", self.kind, self.eui_hex)
            return
        try:
            if self.nvm.unsynced:  # group commit: what the frame acknowledges is on disk first
                await self.nvm.durable()
            await self.send_gbcs(frame)
        except Exception as exc:  # noqa: BLE001 - HAN trouble is logged, the device lives on
            try:
                self.log_event("uplink_failure", error=str(exc))
            except NvmError:
                pass
            log.info("%s %s: uplink failed: %s", self.kind, self.eui_hex, exc)

    async def _reject(self, msg: Message | None, exc: CommandRejected) -> None:
        self.rejected += 1
        detail = {"reason": exc.reason, "detail": exc.detail}
        if msg is not None:
            detail.update(
                message_code=f"{msg.message_code:04X}",
                originator=eui_hex(msg.originator),
                counter=msg.originator_counter,
            )
        try:
            self.log_security("command_rejected", **detail)
        except NvmError as err:  # a full or read-only NVM: the rejection is still answered
            log.warning("%s %s: security log not written: %s", self.kind, self.eui_hex, err)
        log.info("%s %s rejected a command: %s", self.kind, self.eui_hex, exc)
        code = self.security_alerts.get(exc.reason)
        if exc.alert and code is not None:
            await self.raise_alert(code)
