"""The security-credential use cases every GBCS device serves (FACTS.md §5): CS02a / CS02f
read the trust anchor cells, CS02b / CS02g replace them (rules, seq numbers, future dating:
`firmware.trust`), CS02c / CS02d / CS02e the device's own key pairs and certificates. A device
type serves them all with `*credential_handlers()` in its `HANDLERS`.

A device keeps at most `PENDING_LIMIT` (8) future-dated CS02b/CS02g; one more is answered at once
with every replacement INSUFFICIENT_MEMORY and nothing replaced [I].

**Responses** are signed for every CS02b/CS02g mode (the ACB-by-ACB command is only MACed, its
response still signed [O RTDS]) and for signature-only CS02a/CS02e/CS02f; MACed otherwise. CS02a
and CS02f answer per role asked: TRUST_ANCHOR_NOT_FOUND for a role the device holds no cell for,
else its seq number and cells (DS, KA, prepayment KA) [O RTDS]; the authorising cell must be the
originator's role [I].

**Own credentials.** CS02c makes a fresh P-256 key pair for the key usage asked and answers a
PKCS#10 request (empty subject, hardwareModuleName = the EUI, keyUsage) [O RTDS]; the key pair
waits in NVM. CS02d installs a device certificate for it (checks in the order of the response
codes: parse, key usage, identity, key pair, public key) and raises 0x8F4D / 0x8F4F (0x8F4C /
0x8F4E on failure) after the response [I]; the response is still signed with the old DS key
[I]. CS02e returns the current certificate. `inject_failure(device, message_code, code)`
answers the next CS02c/CS02d with that response code, and gives every replacement of the next
CS02b/CS02g of that message code that status (the issue's `fail-next`).
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ObjectIdentifier

from gbcs.asn1 import (
    CANCELLATION_DATE_TIME,
    CertificationRequest,
    DeviceCertificate,
    IssueSecurityCredentialsCode,
    IssueSecurityCredentialsCommand,
    IssueSecurityCredentialsResponse,
    KeyUsage,
    ProvideDeviceCertificateCode,
    ProvideDeviceCertificateCommand,
    ProvideDeviceCertificateResponse,
    ProvideSecurityCredentialDetailsCommand,
    ProvideSecurityCredentialDetailsResponse,
    RemotePartyDetails,
    StatusCode,
    TrustAnchorCellContents,
    UpdateDeviceCertificateCode,
    UpdateDeviceCertificateCommand,
    UpdateDeviceCertificateResponse,
    UpdateSecurityCredentialsCommand,
    UpdateSecurityCredentialsResponse,
)
from gbcs.catalogue import AlertCode, MessageCode
from gbcs.codec import eui_hex
from gbcs.frame import Message
from gbcs.keystore import HARDWARE_MODULE_NAME

from .device_log import command_payload
from .gbcs_device import CommandRejected, FailNext, Handler, Outcome, asn1_failure, call
from .trust import (
    DS,
    KA,
    KEYPAIR_NS,
    MANAGEMENT,
    MODE_OF_CODE,
    MODES,
    OWN_NS,
    CREDENTIALS_ACTION,
    pending_credentials,
    CertificateError,
    DeviceTrust,
    _M,
    _HANDOVER_ROLES,
    _R,
    _apply,
    _injected,
    cell_of,
    inject_failure,
    parse_certificate,
)

if TYPE_CHECKING:
    from .gbcs_device import GbcsDevice

PENDING_LIMIT = 8  # future-dated CS02b/CS02g a device keeps; more are answered INSUFFICIENT_MEMORY [I]
HW_TYPE = ObjectIdentifier("1.2.826.0.1.8641679.1.2.2.1")  # hwType of GB device certificates [V FACTS §5]

def provide_details(device: "GbcsDevice", message: Message):
    """CS02a / CS02f: per role asked, status, seq number and cells."""
    cmd: ProvideSecurityCredentialDetailsCommand = command_payload(message, ProvideSecurityCredentialDetailsCommand)
    party = device.trust.by_eui(message.originator)
    if party is None or int(cmd.authorising_cell.remote_party_role) != int(party.role):
        raise CommandRejected("role", "the authorising cell is not the originator's")
    trust: DeviceTrust = device.trust
    out = []
    for role in cmd.remote_party_roles:
        cells = trust.cells_of(int(role))
        if not cells:
            out.append(RemotePartyDetails(role, StatusCode.TRUST_ANCHOR_NOT_FOUND))
            continue
        contents = tuple(TrustAnchorCellContents(KeyUsage.DIGITAL_SIGNATURE if c.usage == DS else KeyUsage.KEY_AGREEMENT,
                                                 None if c.cell_usage == MANAGEMENT else c.cell_usage, c.eui, c.key_id)
                         for c in cells)
        out.append(RemotePartyDetails(role, StatusCode.SUCCESS, trust.seq(int(role)), contents))
    return Outcome(ProvideSecurityCredentialDetailsResponse(tuple(out)).encode(), signed=message.mac is None)


def update_credentials(device: "GbcsDevice", message: Message):
    """CS02b / CS02g: check the authorisation (module doc), then replace now or later."""
    cmd: UpdateSecurityCredentialsCommand = command_payload(message, UpdateSecurityCredentialsCommand)
    control = cmd.control
    mode_value = int(control.credentials_replacement_mode)
    if MODE_OF_CODE.get(message.message_code) != mode_value:
        raise CommandRejected("malformed", f"mode {mode_value} does not match message code 0x{message.message_code:04X}")
    mode = MODES[mode_value]
    trust: DeviceTrust = device.trust
    party = trust.by_eui(message.originator)
    if party is None:
        raise CommandRejected("unknown_party", "originator holds no cell")
    handover = party.role == _R.ACCESS_CONTROL_BROKER and mode.authoriser in _HANDOVER_ROLES
    if mode_value != _M.ACB_BY_ACB:
        cell_id = control.authorising_cell
        key = None if cell_id is None else cell_of(cell_id)
        if key is None or key[0] != int(mode.authoriser) or key[1] != DS:
            raise CommandRejected("role", f"authorising cell is not the {mode.authoriser.name} DS cell")
        cell = trust.cell(*key)
        if cell is None or (cell.eui != message.originator and not handover):
            raise CommandRejected("role", "the authorising cell does not hold the originator")
    elif party.role != _R.ACCESS_CONTROL_BROKER:
        raise CommandRejected("role", "ACB-by-ACB from another party")
    if control.authorising_seq_number <= trust.seq(mode.authoriser):
        raise CommandRejected("replay", f"authorising seq number {control.authorising_seq_number} not above "
                                  f"{trust.seq(mode.authoriser)}")
    if not cmd.replacements:
        raise CommandRejected("malformed", "no replacement")
    for r in cmd.replacements:
        if int(r.target_cell.remote_party_role) not in {int(x) for x in mode.targets}:
            raise CommandRejected("role", f"{mode_value} may not replace a {r.target_cell.remote_party_role!r} cell")
    when = cmd.execution_date_time
    if when is not None and when == CANCELLATION_DATE_TIME:
        for key, entry in pending_credentials(device).items():
            if entry["code"] == message.message_code and entry["originator"] == eui_hex(message.originator):
                device.future.cancel(key)
        trust.set_seq(mode.authoriser, control.authorising_seq_number)
        return Outcome(UpdateSecurityCredentialsResponse(None).encode(), signed=True)
    forced = _injected(device, message.message_code)
    now = device.future.now()  # the device's clock
    if when is not None and when.timestamp() > now and len(pending_credentials(device)) >= PENDING_LIMIT:
        forced, when = StatusCode.INSUFFICIENT_MEMORY, None  # answered at once, nothing replaced [I]
    if when is not None and when.timestamp() > now:
        device.future.schedule(f"cs02:{message.originator_counter}", when.timestamp(), CREDENTIALS_ACTION, {
            "code": message.message_code, "originator": eui_hex(message.originator),
            "content": message.content, "at": when.timestamp(), "forced": forced})
        trust.set_seq(mode.authoriser, control.authorising_seq_number)
        return Outcome(UpdateSecurityCredentialsResponse(None).encode(), signed=True)
    outcome = _apply(device, cmd, mode, forced)
    return Outcome(UpdateSecurityCredentialsResponse(outcome).encode(), signed=True)


def issue_credentials(device: "GbcsDevice", message: Message):
    """CS02c: a new key pair for the key usage asked, answered with its certification request."""
    cmd: IssueSecurityCredentialsCommand = command_payload(message, IssueSecurityCredentialsCommand)
    usage = _usage(cmd.key_usage)
    code = _injected(device, message.message_code)
    if usage is None:
        code = IssueSecurityCredentialsCode.INVALID_KEY_USAGE
    if code is not None:
        return Outcome(IssueSecurityCredentialsResponse(code).encode(), signed=True)
    key = ec.generate_private_key(ec.SECP256R1())
    ku = x509.KeyUsage(digital_signature=usage == DS, content_commitment=False, key_encipherment=False,
                       data_encipherment=False, key_agreement=usage == KA, key_cert_sign=False, crl_sign=False,
                       encipher_only=False, decipher_only=False)
    san = x509.SubjectAlternativeName([x509.OtherName(HARDWARE_MODULE_NAME, _hardware_module_name(device.eui))])
    csr = (x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
           .add_extension(ku, critical=True).add_extension(san, critical=True).sign(key, hashes.SHA256()))
    device.nvm.put(KEYPAIR_NS, usage, key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                                        serialization.NoEncryption()))
    return Outcome(CertificationRequest(csr.public_bytes(serialization.Encoding.DER)).encode(), signed=True)


def _hardware_module_name(eui: bytes) -> bytes:
    oid = HW_TYPE.dotted_string.split(".")
    body = bytes([40 * int(oid[0]) + int(oid[1])])
    for part in oid[2:]:
        n, enc = int(part), [int(part) & 0x7F]
        n >>= 7
        while n:
            enc.insert(0, 0x80 | (n & 0x7F))
            n >>= 7
        body += bytes(enc)
    inner = b"\x06" + bytes([len(body)]) + body + b"\x04\x08" + eui
    return b"\x30" + bytes([len(inner)]) + inner


def _usage(key_usage: int) -> str | None:
    ku = int(key_usage)
    return DS if ku == KeyUsage.DIGITAL_SIGNATURE else KA if ku == KeyUsage.KEY_AGREEMENT else None


def update_device_certificate(device: "GbcsDevice", message: Message):
    """CS02d: install a device certificate for the key pair CS02c made."""
    cmd: UpdateDeviceCertificateCommand = command_payload(message, UpdateDeviceCertificateCommand)
    C = UpdateDeviceCertificateCode
    code = _injected(device, message.message_code)
    usage = None
    private = None
    if code is None:
        try:
            info = parse_certificate(cmd.certificate)
        except CertificateError:
            info, code = None, C.INVALID_CERTIFICATE
        if info is not None:
            usage = info.usage
            raw = device.nvm.get(KEYPAIR_NS, usage) if usage else None
            if usage is None:
                code = C.INVALID_KEY_USAGE
            elif info.eui != device.eui:
                code = C.WRONG_DEVICE_IDENTITY
            elif raw is None:
                code = C.NO_CORRESPONDING_KEY_PAIR
            else:
                private = serialization.load_der_private_key(raw, None)
                same = private.public_key().public_bytes(serialization.Encoding.X962,
                                                         serialization.PublicFormat.UncompressedPoint) == \
                    info.public_key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
                code = C.SUCCESS if same else C.WRONG_PUBLIC_KEY
    after = None
    if code == C.SUCCESS and usage is not None and private is not None:
        device.nvm.put(OWN_NS, usage, {"key": raw, "certificate": cmd.certificate})
        device.nvm.delete(KEYPAIR_NS, usage)
        new = dataclasses.replace(device.credentials, **{usage: private},
                                  certificates=tuple({**dict(device.credentials.certificates), usage: cmd.certificate}.items()))

        async def after():  # switch keys once the response (signed with the old DS key) is out
            device.credentials = new
            await device.raise_alert(_CERT_ALERTS[usage][True])
    elif usage is not None:
        async def after():
            await device.raise_alert(_CERT_ALERTS[usage][False])
    return Outcome(UpdateDeviceCertificateResponse(code).encode(), signed=True, after=after)


_CERT_ALERTS = {
    DS: {True: AlertCode.DEVICE_S_OWN_DIGITAL_SIGNING_CERTIFICATE_REPLACEMENT_SUCCEEDED,
         False: AlertCode.DEVICE_S_OWN_DIGITAL_SIGNING_CERTIFICATE_REPLACEMENT_FAILED},
    KA: {True: AlertCode.DEVICE_S_OWN_KEY_AGREEMENT_CERTIFICATE_REPLACEMENT_SUCCEEDED,
         False: AlertCode.DEVICE_S_OWN_KEY_AGREEMENT_CERTIFICATE_REPLACEMENT_FAILED},
}


def provide_device_certificate(device: "GbcsDevice", message: Message):
    """CS02e: the device's certificate for the key usage asked."""
    cmd: ProvideDeviceCertificateCommand = command_payload(message, ProvideDeviceCertificateCommand)
    usage = _usage(cmd.key_usage)
    der = dict(device.credentials.certificates).get(usage) if usage else None
    content = (DeviceCertificate(der).encode() if der
               else ProvideDeviceCertificateResponse(ProvideDeviceCertificateCode.INVALID_KEY_USAGE).encode())
    return Outcome(content, signed=message.mac is None)


def credential_handlers(*codes: int) -> tuple[Handler, ...]:
    """The handler-table entries of the security-credential use cases: every CS02a-g one, or
    those of `codes`. A device type serves them with `*credential_handlers()` in `HANDLERS`."""
    runs: dict[int, Any] = {MessageCode.CS02a: provide_details, MessageCode.CS02f: provide_details,
                            MessageCode.CS02c: issue_credentials, MessageCode.CS02d: update_device_certificate,
                            MessageCode.CS02e: provide_device_certificate}
    for code in MODE_OF_CODE:
        runs[code] = update_credentials
    dated = {code for code in MODE_OF_CODE}  # CS02b/CS02g responses carry a date-time [O RTDS]
    # `fail-next` (firmware.gbcs_device): the response code goes through inject_failure
    failing = {MessageCode.CS02c: IssueSecurityCredentialsCode, MessageCode.CS02d: UpdateDeviceCertificateCode,
               **{code: StatusCode for code in MODE_OF_CODE}}

    def fail(run: Any, enum: type) -> FailNext:
        def respond(device: Any, message: Message, code: int) -> Any:
            inject_failure(device, message.message_code, code)
            return run(device, message)
        return FailNext(asn1_failure(enum, lambda code, device: b"").parse, respond)

    return tuple(call(MessageCode(code), run, dated=code in dated,
                      fail=fail(run, failing[code]) if code in failing else None)
                 for code, run in runs.items() if not codes or code in codes)


__all__ = ["credential_handlers", "inject_failure", "issue_credentials", "provide_details", "provide_device_certificate",
           "update_credentials", "update_device_certificate"]
