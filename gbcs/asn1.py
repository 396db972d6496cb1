"""ASN.1 DER payloads of the GBCS security, join, firmware and time use cases.

CS02a-g (security credentials), CS03/CS04 (join/unjoin), CS06 (activate firmware), CS07 (read
device log), GCS28 (set time), GCS59/GCS62 (GPF device log restore/backup), CCS08 (firmware
transfer alert) and CS08 (read PPMID/HCALCS firmware version) carry DER instead of DLMS or GBZ
(FRAMING.md §7). The types are declared once, in `asn1crypto`'s shape (its classes are made from
the declarations on demand, for the fallback decode and the tree); the decoded values are
frozen dataclasses in the project's own names whose fields carry the same names as the ASN.1
fields, so the same declarations drive decoding (asn1crypto parses), encoding (TLVs assembled
here from the declared tags), the annotated tree and JSON.

Robustness rules:
* Every input is first checked by a small TLV scanner that bounds nesting and reports byte
  offsets, so malformed input raises `DecodeError` only (never an asn1crypto or recursion error).
* Well-formed DER that does not fit the type expected for the message code (or an unknown code)
  decodes generically as `DerPayload`, never an error.
* A typed decode is only accepted if re-encoding its fields reproduces the input (up to length
  forms), so no element is silently dropped; `encode()` then returns the original bytes, which
  keeps the non-minimal length forms seen in RTDS (`30 82 00 9F`) byte-exact. The exact read
  (`_read`) takes only forms that provably re-encode so, and skips the re-encoding.
* Certificates and certification requests are carried as opaque DER bytes.

Facts: FACTS.md §3.2, §3.5, §4.2-4.3, §5 and the RTDS vectors. CredentialsReplacementMode 10/11
(load controller), CS02f = CS02a types and CS02g = CS02b types are observed in RTDS only [O]; the
CS08 response/alert shapes come from the DCC parser without an RTDS sample [S].
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
from dataclasses import field
from enum import IntEnum, IntFlag
from typing import Any, ClassVar

from .catalogue import DeviceType, RemotePartyRole  # one enum each, shared with the catalogue
from .codec import DecodeError, EncodeError, Node, encode_length, eui_hex, frozen_dataclass, jsonable, parse_eui, read_length, slot_setters

# --------------------------------------------------------------------------------------------
# Enumerations (FACTS.md §3.2, §3.5, §4.2, §4.3, §5)
# --------------------------------------------------------------------------------------------


class KeyUsage(IntFlag):
    """X.509 KeyUsage bits; bit n of the BIT STRING is `1 << n` here."""

    DIGITAL_SIGNATURE = 1 << 0
    NON_REPUDIATION = 1 << 1
    KEY_ENCIPHERMENT = 1 << 2
    DATA_ENCIPHERMENT = 1 << 3
    KEY_AGREEMENT = 1 << 4
    KEY_CERT_SIGN = 1 << 5
    CRL_SIGN = 1 << 6
    ENCIPHER_ONLY = 1 << 7
    DECIPHER_ONLY = 1 << 8


class CellUsage(IntEnum):
    MANAGEMENT = 0
    PREPAYMENT_TOP_UP = 1


class StatusCode(IntEnum):
    """Trust anchor replacement / credential details status (CS02a, CS02b)."""

    SUCCESS = 0
    BAD_CERTIFICATE = 5
    NO_TRUST_ANCHOR = 10
    INSUFFICIENT_MEMORY = 17
    TRUST_ANCHOR_NOT_FOUND = 25
    RESOURCES_BUSY = 30
    OTHER = 127


class CredentialsReplacementMode(IntEnum):
    """CS02b message code 0x0100 + mode for modes 0-9; 10/11 are the CS02g load-controller modes [O]."""

    ROOT_BY_SUPPLIER = 0
    ROOT_BY_WAN_PROVIDER = 1
    SUPPLIER_BY_SUPPLIER = 2
    NETWORK_OPERATOR_BY_NETWORK_OPERATOR = 3
    ACB_BY_ACB = 4
    WAN_PROVIDER_BY_WAN_PROVIDER = 5
    TRANS_COS_BY_TRANS_COS = 6
    SUPPLIER_BY_TRANS_COS = 7
    ANY_EXCEPT_ABNORMAL_ROOT_BY_RECOVERY = 8
    ANY_BY_CONTINGENCY = 9
    LOAD_CONTROLLER_BY_LOAD_CONTROLLER = 10
    LOAD_CONTROLLER_BY_SUPPLIER = 11


class ApplyTimeBasedCpvChecks(IntEnum):
    APPLY = 0
    DISAPPLY = 1


class SeqNumberUsage(IntEnum):
    PREPAYMENT_TOP_UP = 0


class IssueSecurityCredentialsCode(IntEnum):
    INVALID_KEY_USAGE = 1
    KEY_PAIR_GENERATION_FAILED = 2
    CR_PRODUCTION_FAILED = 3


class UpdateDeviceCertificateCode(IntEnum):
    SUCCESS = 0
    INVALID_CERTIFICATE = 1
    WRONG_DEVICE_IDENTITY = 2
    INVALID_KEY_USAGE = 3
    NO_CORRESPONDING_KEY_PAIR = 4
    WRONG_PUBLIC_KEY = 5
    CERTIFICATE_STORAGE_FAILED = 6
    PRIVATE_KEY_CHANGE_FAILED = 7


class ProvideDeviceCertificateCode(IntEnum):
    INVALID_KEY_USAGE = 1
    NO_CERTIFICATE_HELD = 2
    CERTIFICATE_RETRIEVAL_FAILURE = 3


class JoinMethodAndRole(IntEnum):
    METHOD_A_INITIATOR = 0
    METHOD_A_RESPONDER = 1
    METHOD_B = 2
    METHOD_C = 3


class JoinResponseCode(IntEnum):
    SUCCESS = 0
    INVALID_MESSAGE_CODE_FOR_JOIN_METHOD_AND_ROLE = 1
    INVALID_JOIN_METHOD_AND_ROLE = 2
    INCOMPATIBLE_WITH_EXISTING_ENTRY = 3
    DEVICE_LOG_FULL = 4
    WRITE_FAILURE = 5
    KEY_AGREEMENT_NO_RESOURCES = 6
    KEY_AGREEMENT_UNKNOWN_ISSUER = 7
    KEY_AGREEMENT_UNSUPPORTED_SUITE = 8
    KEY_AGREEMENT_BAD_MESSAGE = 9
    KEY_AGREEMENT_BAD_KEY_CONFIRM = 10
    INVALID_OR_MISSING_CERTIFICATE = 11
    NO_PARTNER_LINK_KEY_RECEIVED = 12
    NO_CBKE_RESPONSE = 13


class UnjoinResponseCode(IntEnum):
    SUCCESS = 0
    NOT_IN_DEVICE_LOG = 1
    OTHER_FAILURE = 2


class ActivateFirmwareCode(IntEnum):
    SUCCESS = 0
    NO_IMAGE_HELD = 1
    HASH_MISMATCH = 2
    ACTIVATION_FAILURE = 3


class ReadResponseCode(IntEnum):
    """CS07 device log read and CS08 firmware version read."""

    SUCCESS = 0
    READ_FAILURE = 1


class DeviceTimeStatus(IntEnum):
    RELIABLE = 0
    INVALID = 1
    UNRELIABLE = 2


class FirmwareTransferCode(IntEnum):
    SUCCESS = 0
    IMAGE_DISCARDED = 1
    HARDWARE_VERSION_MISMATCH = 2
    FILE_TRANSFER_FAILURE = 3


class ActivateImageResult(IntEnum):
    SUCCESS = 0
    FAILURE = 1


# --------------------------------------------------------------------------------------------
# ASN.1 declarations, in asn1crypto's shape (`_fields`, `_child_spec`, `class_`, `tag`) on small
# stand-ins, so that importing this module does not import asn1crypto (~10 ms of every start-up):
# the typed read, the encoding and JSON need only tags and field lists; `_asn1crypto(spec)` makes
# the asn1crypto class of a declaration when the fallback decode or tree() needs it. Field names
# equal the dataclass field names below.
# --------------------------------------------------------------------------------------------


class _Decl:
    """An ASN.1 type (stand-in for an asn1crypto class; `_asn1crypto` maps it)."""

    class_ = 0
    tag = 0
    constructed = False


class _Integer(_Decl):
    tag = 2


class _BitString(_Decl):
    tag = 3


class _OctetString(_Decl):
    tag = 4


class _Null(_Decl):
    tag = 5


class _Enumerated(_Decl):
    """ENUMERATED read as a plain integer (asn1crypto's Enumerated insists on a name map)."""

    tag = 10


class _GeneralizedTime(_Decl):
    tag = 24


class _Sequence(_Decl):
    tag = 16
    constructed = True
    _fields: list = []


class _SequenceOf(_Decl):
    tag = 16
    constructed = True
    _child_spec: type = _Decl


class _Certificate(_Sequence):
    """X.509 Certificate (asn1crypto.x509.Certificate), only ever kept as DER here."""


class _CertificationRequest(_Sequence):
    """PKCS#10 CertificationRequest (asn1crypto.csr.CertificationRequest), kept as DER."""


_ASN1CRYPTO: dict[type, type] = {}


def _asn1crypto(spec: type) -> type:
    """The asn1crypto class of a declaration (made once, importing asn1crypto on first use)."""
    hit = _ASN1CRYPTO.get(spec)
    if hit is not None:
        return hit
    from asn1crypto import core, csr, x509

    if spec is _Certificate:
        hit = x509.Certificate
    elif spec is _CertificationRequest:
        hit = csr.CertificationRequest
    elif issubclass(spec, _SequenceOf):
        hit = type(spec.__name__, (core.SequenceOf,), {"_child_spec": _asn1crypto(spec._child_spec)})
    elif issubclass(spec, _Sequence):
        hit = type(spec.__name__, (core.Sequence,), {"_fields": [(f[0], _asn1crypto(f[1]), *f[2:]) for f in spec._fields]})
    elif spec is _Enumerated:
        hit = type("_Enumerated", (core.Integer,), {"tag": 10})
    else:
        hit = {_Integer: core.Integer, _BitString: core.BitString, _OctetString: core.OctetString, _Null: core.Null,
               _GeneralizedTime: core.GeneralizedTime, _Decl: core.Asn1Value}[spec]
    _ASN1CRYPTO[spec] = hit
    return hit


_OPT = {"optional": True}


def _seq_of(child) -> type:
    return type(f"_SeqOf{child.__name__}", (_SequenceOf,), {"_child_spec": child})


class _A_TrustAnchorCellIdentifier(_Sequence):
    _fields = [
        ("remote_party_role", _Integer),
        ("key_usage", _BitString),
        ("cell_usage", _Integer, _OPT),  # DEFAULT management; kept absent/present as received
    ]


class _A_TrustAnchorCellContents(_Sequence):
    _fields = [
        ("key_usage", _BitString),
        ("cell_usage", _Integer, _OPT),
        ("subject_unique_id", _OctetString),
        ("subject_key_identifier", _OctetString),
    ]


class _A_RemotePartyDetails(_Sequence):
    _fields = [
        ("remote_party_role", _Integer),
        ("status", _Enumerated),
        ("seq_number", _Integer, _OPT),
        ("cells", _seq_of(_A_TrustAnchorCellContents), _OPT),
    ]


class _A_ProvideSecurityCredentialDetailsCommand(_Sequence):
    _fields = [
        ("authorising_cell", _A_TrustAnchorCellIdentifier),
        ("remote_party_roles", _seq_of(_Integer)),
    ]


class _A_SpecialistSeqNumber(_Sequence):
    _fields = [("usage", _Integer), ("seq_number", _Integer)]


class _A_RemotePartySeqNumberChange(_Sequence):
    _fields = [
        ("remote_party_role", _Integer),
        ("floor_seq_number", _Integer),
        ("specialist_floor_seq_numbers", _seq_of(_A_SpecialistSeqNumber), _OPT),
    ]


class _A_AuthorisingRemotePartyControl(_Sequence):
    _fields = [
        ("credentials_replacement_mode", _Integer),
        ("plaintext_symmetric_key", _OctetString, {"implicit": 0, "optional": True}),
        ("apply_time_based_cpv_checks", _Integer, {"implicit": 1, "optional": True}),
        ("authorising_cell", _A_TrustAnchorCellIdentifier, {"implicit": 2, "optional": True}),
        ("authorising_seq_number", _Integer, {"implicit": 3}),
        ("new_floor_seq_number", _Integer, {"implicit": 4, "optional": True}),
        ("new_specialist_floor_seq_numbers", _seq_of(_A_SpecialistSeqNumber), {"implicit": 5, "optional": True}),
        ("other_seq_number_changes", _seq_of(_A_RemotePartySeqNumberChange), {"implicit": 6, "optional": True}),
    ]


class _A_TrustAnchorReplacement(_Sequence):
    _fields = [("certificate", _Certificate), ("target_cell", _A_TrustAnchorCellIdentifier)]


class _A_UpdateSecurityCredentialsCommand(_Sequence):
    _fields = [
        ("control", _A_AuthorisingRemotePartyControl),
        ("replacements", _seq_of(_A_TrustAnchorReplacement)),
        ("certification_path_certificates", _seq_of(_Certificate)),
        ("execution_date_time", _GeneralizedTime, _OPT),
    ]


class _A_ReplacementOutcome(_Sequence):
    _fields = [
        ("affected_cell", _A_TrustAnchorCellIdentifier),
        ("status", _Enumerated),
        ("existing_subject_unique_id", _OctetString),
        ("existing_subject_key_id", _OctetString),
        ("replacing_subject_unique_id", _OctetString),
        ("replacing_subject_key_id", _OctetString),
    ]


class _A_UpdateSecurityCredentialsOutcome(_Sequence):
    _fields = [
        ("authorising_seq_number", _Integer),
        ("credentials_replacement_mode", _Integer),
        ("seq_number_changes", _seq_of(_A_RemotePartySeqNumberChange)),
        ("replacement_outcomes", _seq_of(_A_ReplacementOutcome)),
    ]


class _A_UpdateSecurityCredentialsResponse(_Sequence):
    _fields = [("command_accepted", _Null), ("outcome", _A_UpdateSecurityCredentialsOutcome, _OPT)]


class _A_UpdateSecurityCredentialsAlert(_Sequence):
    _fields = [
        ("alert_code", _Integer),
        ("execution_date_time", _GeneralizedTime),
        ("outcome", _A_UpdateSecurityCredentialsOutcome),
    ]


class _A_KeyUsageCommand(_Sequence):
    _fields = [("key_usage", _BitString)]


class _A_JoinDevice(_Sequence):
    _fields = [
        ("join_method_and_role", _Integer),
        ("other_entity_id", _OctetString),
        ("other_device_type", _Integer),
        ("ka_certificate", _Certificate, _OPT),
    ]


class _A_ActivateFirmware(_Sequence):
    _fields = [
        ("manufacturer_image_hash", _OctetString),
        ("originator_counter", _Integer),
        ("execution_date_time", _GeneralizedTime, _OPT),
    ]


class _A_ActivateFirmwareOutcome(_Sequence):
    _fields = [("code", _Integer), ("firmware_version", _OctetString)]


class _A_ActivateFirmwareAlert(_Sequence):
    _fields = [
        ("alert_code", _Integer),
        ("execution_date_time", _GeneralizedTime),
        ("originator_counter", _Integer),
        ("outcome", _A_ActivateFirmwareOutcome),
    ]


class _A_DeviceLogEntry(_Sequence):
    _fields = [("entity_id", _OctetString), ("device_type", _Integer)]


class _A_DeviceJoinDetails(_Sequence):
    _fields = [("code", _Integer), ("entries", _seq_of(_A_DeviceLogEntry), _OPT)]


class _A_SetTime(_Sequence):
    _fields = [("validity_interval_start", _GeneralizedTime), ("validity_interval_end", _GeneralizedTime)]


class _A_SetTimeResponse(_Sequence):
    _fields = [("device_time", _GeneralizedTime), ("status", _Integer)]


class _A_GpfDeviceLogRestore(_Sequence):
    _fields = [("entries", _seq_of(_A_DeviceLogEntry))]


class _A_RestoreOutcome(_Sequence):
    _fields = [("entry", _A_DeviceLogEntry), ("code", _Integer)]


class _A_GpfDeviceLogRestoreResponse(_Sequence):
    _fields = [("outcomes", _seq_of(_A_RestoreOutcome))]


class _A_GpfDeviceLogBackupAlert(_Sequence):
    _fields = [
        ("alert_code", _Integer),
        ("backup_date_time", _GeneralizedTime),
        ("entries", _seq_of(_A_DeviceLogEntry)),
    ]


class _A_FirmwareTransferAlert(_Sequence):
    _fields = [
        ("alert_code", _Integer),
        ("execution_date_time", _GeneralizedTime),
        ("entity_id", _OctetString),
        ("firmware_version", _OctetString),
        ("code", _Integer),
    ]


class _A_FirmwareVersionResponse(_Sequence):
    _fields = [("firmware_version", _OctetString), ("code", _Integer)]


class _A_FirmwareVersionAlert(_Sequence):
    _fields = [
        ("alert_code", _Integer),
        ("execution_date_time", _GeneralizedTime),
        ("firmware_version", _OctetString),
        ("activate_image", _Integer),
    ]


# --------------------------------------------------------------------------------------------
# Field descriptors: how one dataclass field maps to its ASN.1 value
# --------------------------------------------------------------------------------------------
# kinds: int, enum, bytes, eui, time, key_usage, blob (opaque DER kept as bytes), nested, list


def _f(kind: str, arg: Any = None, default: Any = dataclasses.MISSING) -> Any:
    return field(default=default, metadata={"asn1": (kind, arg)})


def _int(default=dataclasses.MISSING):
    return _f("int", None, default)


def _enum(enum_cls, default=dataclasses.MISSING):
    return _f("enum", enum_cls, default)


def _bytes(default=dataclasses.MISSING):
    return _f("bytes", None, default)


def _eui(default=dataclasses.MISSING):
    return _f("eui", None, default)


def _time(default=dataclasses.MISSING):
    return _f("time", None, default)


def _key_usage(default=dataclasses.MISSING):
    return _f("key_usage", None, default)


def _blob(spec, default=dataclasses.MISSING):
    return _f("blob", spec, default)


def _nested(cls_name: str, default=dataclasses.MISSING):
    return _f("nested", cls_name, default)


def _list(item: tuple[str, Any], default=dataclasses.MISSING):
    return _f("list", item, default)


class _Mismatch(Exception):
    """The DER is well formed but is not the expected type (internal; leads to DerPayload)."""


_META_CACHE: dict[type, tuple[tuple[str, str, Any], ...]] = {}


def _meta(cls: type) -> tuple[tuple[str, str, Any], ...]:
    try:
        return _META_CACHE[cls]
    except KeyError:
        pass
    out = []
    for f in dataclasses.fields(cls):
        spec = f.metadata.get("asn1")
        if spec is not None:
            kind, arg = spec
            if kind == "nested":
                arg = _resolve(arg)
            elif kind == "list" and arg[0] == "nested":
                arg = ("nested", _resolve(arg[1]))
            out.append((f.name, kind, arg))
    result = tuple(out)
    _META_CACHE[cls] = result
    return result


def _resolve(name):
    return globals()[name] if isinstance(name, str) else name


def _coerce_enum(enum_cls, value):
    if isinstance(value, enum_cls) or isinstance(value, bool):
        return value
    try:
        return enum_cls(value)
    except (ValueError, TypeError):
        return value


def _utc(value):
    if isinstance(value, _dt.datetime) and value.tzinfo is None:
        return value.replace(tzinfo=_dt.timezone.utc)
    return value


def _normalise(kind: str, arg: Any, value: Any) -> Any:
    if value is None:
        return None
    if kind == "enum":
        return _coerce_enum(arg, value)
    if kind == "eui" and isinstance(value, str):
        return parse_eui(value)  # builders may pass "00DB1234567890A0"
    if kind in ("bytes", "eui", "blob") and isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if kind == "time":
        return _utc(value)
    if kind == "key_usage" and isinstance(value, int) and not isinstance(value, KeyUsage):
        return KeyUsage(value)
    if kind == "list":
        return tuple(_normalise(arg[0], arg[1], v) for v in value)
    return value


# --------------------------------------------------------------------------------------------
# Base class
# --------------------------------------------------------------------------------------------


@frozen_dataclass
class Asn1Payload:
    """Base of every typed ASN.1 value (each a `frozen_dataclass`). `KIND` names the payload as
    the DCC parser does."""

    KIND: ClassVar[str] = ""
    _SPEC: ClassVar[type] = _Decl
    _SINGLE: ClassVar[bool] = False  # the whole DER value is the one field (not a SEQUENCE of fields)
    # The DER this value was decoded from; encode() returns it untouched (byte-exact).
    _der: bytes = field(default=b"", init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name, kind, arg in _meta(type(self)):
            value = getattr(self, name)
            new = _normalise(kind, arg, value)
            if new is not value:
                object.__setattr__(self, name, new)

    def encode(self) -> bytes:
        if self._der:
            return self._der
        try:
            return _encode_obj(self, fresh=False)
        except EncodeError:
            raise
        except (ValueError, TypeError, OverflowError, AttributeError) as exc:
            raise EncodeError(f"{type(self).__name__}: {exc}") from None

    def tree(self) -> Node:
        return _tree_value(self, self.KIND, _asn1crypto(type(self)._SPEC).load(self.encode()))

    def to_json(self) -> dict:
        cls = type(self)
        head, fields = _JSON_PLANS.get(cls) or _json_plan(cls)
        out = dict(head)
        for name, conv in fields:
            out[name] = conv(getattr(self, name))
        return out


def _json_value(value):
    """The JSON of any field value (the per-kind converters of `_json_plan` take their usual
    types directly and hand anything else here)."""
    if isinstance(value, _dt.datetime):
        return _time_text(value)
    if isinstance(value, KeyUsage):
        return _key_usage_names(value)
    if isinstance(value, tuple):
        return [_json_value(v) for v in value]
    return jsonable(value)


_JSON_PLANS: dict[type, tuple] = {}


def _json_plan(cls: type) -> tuple:
    """(the "type"/"kind" items, (name, converter) per field) of a payload class, made once."""
    hit = _JSON_PLANS[cls] = (
        (("type", cls.__name__), ("kind", cls.KIND)),
        tuple((name, _json_converter(kind, arg)) for name, kind, arg in _meta(cls)),
    )
    return hit


def _json_converter(kind: str, arg):
    if kind == "int":
        return lambda v: v if type(v) is int else _json_value(v)
    if kind == "enum":
        def enum_json(v):
            t = type(v)
            if t is int:
                return v
            return v._name_ if t is arg else _json_value(v)

        return enum_json
    if kind in ("bytes", "eui", "blob"):
        return lambda v: v.hex().upper() if type(v) is bytes else _json_value(v)
    if kind == "time":
        return lambda v: _time_text(v) if type(v) is _dt.datetime else _json_value(v)
    if kind == "key_usage":
        return lambda v: _key_usage_names(v) if type(v) is KeyUsage else _json_value(v)
    if kind == "nested":
        return lambda v: v.to_json() if isinstance(v, Asn1Payload) else _json_value(v)
    if kind == "list":
        item = _json_converter(*arg)
        return lambda v: [item(x) for x in v] if type(v) is tuple else _json_value(v)
    raise AssertionError(kind)


# --------------------------------------------------------------------------------------------
# Shared structures
# --------------------------------------------------------------------------------------------


@frozen_dataclass
class TrustAnchorCellIdentifier(Asn1Payload):
    """A device trust anchor cell: {remotePartyRole, keyUsage, cellUsage DEFAULT management}.
    `cell_usage` None = absent on the wire (implicit management), kept so re-encoding is exact."""

    KIND: ClassVar[str] = "Trust Anchor Cell Identifier"
    _SPEC: ClassVar[type] = _A_TrustAnchorCellIdentifier
    remote_party_role: RemotePartyRole | int = _enum(RemotePartyRole)
    key_usage: KeyUsage = _key_usage()
    cell_usage: CellUsage | int | None = _enum(CellUsage, None)

    @property
    def effective_cell_usage(self) -> CellUsage | int:
        return CellUsage.MANAGEMENT if self.cell_usage is None else self.cell_usage


@frozen_dataclass
class DeviceLogEntry(Asn1Payload):
    KIND: ClassVar[str] = "Device Log Entry"
    _SPEC: ClassVar[type] = _A_DeviceLogEntry
    entity_id: bytes = _eui()
    device_type: DeviceType | int = _enum(DeviceType)


# --------------------------------------------------------------------------------------------
# CS02a / CS02f Provide Security Credential Details
# --------------------------------------------------------------------------------------------


@frozen_dataclass
class ProvideSecurityCredentialDetailsCommand(Asn1Payload):
    KIND: ClassVar[str] = "Provide Security Credential Details Command"
    _SPEC: ClassVar[type] = _A_ProvideSecurityCredentialDetailsCommand
    authorising_cell: TrustAnchorCellIdentifier = _nested("TrustAnchorCellIdentifier")
    remote_party_roles: tuple[RemotePartyRole | int, ...] = _list(("enum", RemotePartyRole))


@frozen_dataclass
class TrustAnchorCellContents(Asn1Payload):
    KIND: ClassVar[str] = "Trust Anchor Cell Contents"
    _SPEC: ClassVar[type] = _A_TrustAnchorCellContents
    key_usage: KeyUsage = _key_usage()
    cell_usage: CellUsage | int | None = _enum(CellUsage, None)
    subject_unique_id: bytes = _eui(b"")
    subject_key_identifier: bytes = _bytes(b"")


@frozen_dataclass
class RemotePartyDetails(Asn1Payload):
    """One role's answer; `seq_number`/`cells` are absent (None) when the status is an error."""

    KIND: ClassVar[str] = "Remote Party Details"
    _SPEC: ClassVar[type] = _A_RemotePartyDetails
    remote_party_role: RemotePartyRole | int = _enum(RemotePartyRole)
    status: StatusCode | int = _enum(StatusCode, StatusCode.SUCCESS)
    seq_number: int | None = _int(None)
    cells: tuple[TrustAnchorCellContents, ...] | None = _list(("nested", "TrustAnchorCellContents"), None)


@frozen_dataclass
class ProvideSecurityCredentialDetailsResponse(Asn1Payload):
    KIND: ClassVar[str] = "Provide Security Credential Details Response"
    _SPEC: ClassVar[type] = _seq_of(_A_RemotePartyDetails)
    _SINGLE: ClassVar[bool] = True
    parties: tuple[RemotePartyDetails, ...] = _list(("nested", "RemotePartyDetails"))


# --------------------------------------------------------------------------------------------
# CS02b / CS02g Update Security Credentials
# --------------------------------------------------------------------------------------------


@frozen_dataclass
class SpecialistSeqNumber(Asn1Payload):
    KIND: ClassVar[str] = "Specialist Seq Number"
    _SPEC: ClassVar[type] = _A_SpecialistSeqNumber
    usage: SeqNumberUsage | int = _enum(SeqNumberUsage)
    seq_number: int = _int()


@frozen_dataclass
class RemotePartySeqNumberChange(Asn1Payload):
    KIND: ClassVar[str] = "Remote Party Seq Number Change"
    _SPEC: ClassVar[type] = _A_RemotePartySeqNumberChange
    remote_party_role: RemotePartyRole | int = _enum(RemotePartyRole)
    floor_seq_number: int = _int()
    specialist_floor_seq_numbers: tuple[SpecialistSeqNumber, ...] | None = _list(("nested", "SpecialistSeqNumber"), None)


@frozen_dataclass
class AuthorisingRemotePartyControl(Asn1Payload):
    KIND: ClassVar[str] = "Authorising Remote Party Control"
    _SPEC: ClassVar[type] = _A_AuthorisingRemotePartyControl
    credentials_replacement_mode: CredentialsReplacementMode | int = _enum(CredentialsReplacementMode)
    authorising_seq_number: int = _int()
    plaintext_symmetric_key: bytes | None = _bytes(None)
    apply_time_based_cpv_checks: ApplyTimeBasedCpvChecks | int | None = _enum(ApplyTimeBasedCpvChecks, None)
    authorising_cell: TrustAnchorCellIdentifier | None = _nested("TrustAnchorCellIdentifier", None)
    new_floor_seq_number: int | None = _int(None)
    new_specialist_floor_seq_numbers: tuple[SpecialistSeqNumber, ...] | None = _list(("nested", "SpecialistSeqNumber"), None)
    other_seq_number_changes: tuple[RemotePartySeqNumberChange, ...] | None = _list(("nested", "RemotePartySeqNumberChange"), None)


@frozen_dataclass
class TrustAnchorReplacement(Asn1Payload):
    KIND: ClassVar[str] = "Trust Anchor Replacement"
    _SPEC: ClassVar[type] = _A_TrustAnchorReplacement
    certificate: bytes = _blob(_Certificate)
    target_cell: TrustAnchorCellIdentifier = _nested("TrustAnchorCellIdentifier")


@frozen_dataclass
class UpdateSecurityCredentialsCommand(Asn1Payload):
    KIND: ClassVar[str] = "Update Security Credentials Command"
    _SPEC: ClassVar[type] = _A_UpdateSecurityCredentialsCommand
    control: AuthorisingRemotePartyControl = _nested("AuthorisingRemotePartyControl")
    replacements: tuple[TrustAnchorReplacement, ...] = _list(("nested", "TrustAnchorReplacement"))
    certification_path_certificates: tuple[bytes, ...] = _list(("blob", _Certificate), ())
    execution_date_time: _dt.datetime | None = _time(None)


@frozen_dataclass
class ReplacementOutcome(Asn1Payload):
    KIND: ClassVar[str] = "Replacement Outcome"
    _SPEC: ClassVar[type] = _A_ReplacementOutcome
    affected_cell: TrustAnchorCellIdentifier = _nested("TrustAnchorCellIdentifier")
    status: StatusCode | int = _enum(StatusCode)
    existing_subject_unique_id: bytes = _eui()
    existing_subject_key_id: bytes = _bytes()
    replacing_subject_unique_id: bytes = _eui()
    replacing_subject_key_id: bytes = _bytes()


@frozen_dataclass
class UpdateSecurityCredentialsOutcome(Asn1Payload):
    KIND: ClassVar[str] = "Execution Outcome"
    _SPEC: ClassVar[type] = _A_UpdateSecurityCredentialsOutcome
    authorising_seq_number: int = _int()
    credentials_replacement_mode: CredentialsReplacementMode | int = _enum(CredentialsReplacementMode)
    seq_number_changes: tuple[RemotePartySeqNumberChange, ...] = _list(("nested", "RemotePartySeqNumberChange"), ())
    replacement_outcomes: tuple[ReplacementOutcome, ...] = _list(("nested", "ReplacementOutcome"), ())


@frozen_dataclass
class UpdateSecurityCredentialsResponse(Asn1Payload):
    """`SEQUENCE { commandAccepted NULL, executionOutcome OPTIONAL }`; outcome absent when future-dated."""

    KIND: ClassVar[str] = "Update Security Credentials Response"
    _SPEC: ClassVar[type] = _A_UpdateSecurityCredentialsResponse
    outcome: UpdateSecurityCredentialsOutcome | None = _nested("UpdateSecurityCredentialsOutcome", None)


@frozen_dataclass
class UpdateSecurityCredentialsAlert(Asn1Payload):
    """Future-dated outcome (message code 0x00CB, CS02g 0x0124; alert 0x8F66/0x8F67)."""

    KIND: ClassVar[str] = "Update Security Credentials Alert"
    _SPEC: ClassVar[type] = _A_UpdateSecurityCredentialsAlert
    alert_code: int = _int()
    execution_date_time: _dt.datetime = _time()
    outcome: UpdateSecurityCredentialsOutcome = _nested("UpdateSecurityCredentialsOutcome")


# --------------------------------------------------------------------------------------------
# CS02c / CS02d / CS02e device credentials
# --------------------------------------------------------------------------------------------


@frozen_dataclass
class _CodeResponse(Asn1Payload):
    """A bare `INTEGER` response code; subclasses pick the enumeration."""

    KIND: ClassVar[str] = "Response Code"
    _SPEC: ClassVar[type] = _Integer
    _SINGLE: ClassVar[bool] = True
    code: int = _int()


@frozen_dataclass
class IssueSecurityCredentialsCommand(Asn1Payload):
    KIND: ClassVar[str] = "Issue Security Credentials Command"
    _SPEC: ClassVar[type] = _A_KeyUsageCommand
    key_usage: KeyUsage = _key_usage()


@frozen_dataclass
class CertificationRequest(Asn1Payload):
    """CS02c success: the device's PKCS#10 request for the new key pair, kept as DER."""

    KIND: ClassVar[str] = "Certification Request"
    _SPEC: ClassVar[type] = _CertificationRequest
    _SINGLE: ClassVar[bool] = True
    certification_request: bytes = _blob(_CertificationRequest)


@frozen_dataclass
class IssueSecurityCredentialsResponse(_CodeResponse):
    code: IssueSecurityCredentialsCode | int = _enum(IssueSecurityCredentialsCode)


@frozen_dataclass
class UpdateDeviceCertificateCommand(Asn1Payload):
    KIND: ClassVar[str] = "Certificate"
    _SPEC: ClassVar[type] = _Certificate
    _SINGLE: ClassVar[bool] = True
    certificate: bytes = _blob(_Certificate)


@frozen_dataclass
class UpdateDeviceCertificateResponse(_CodeResponse):
    code: UpdateDeviceCertificateCode | int = _enum(UpdateDeviceCertificateCode)


@frozen_dataclass
class ProvideDeviceCertificateCommand(Asn1Payload):
    KIND: ClassVar[str] = "Provide Device Certificate Command"
    _SPEC: ClassVar[type] = _A_KeyUsageCommand
    key_usage: KeyUsage = _key_usage()


@frozen_dataclass
class DeviceCertificate(Asn1Payload):
    """CS02e success: the device certificate for the requested key usage."""

    KIND: ClassVar[str] = "Certificate"
    _SPEC: ClassVar[type] = _Certificate
    _SINGLE: ClassVar[bool] = True
    certificate: bytes = _blob(_Certificate)


@frozen_dataclass
class ProvideDeviceCertificateResponse(_CodeResponse):
    code: ProvideDeviceCertificateCode | int = _enum(ProvideDeviceCertificateCode)


# --------------------------------------------------------------------------------------------
# CS03 join, CS04 unjoin, CS07 read device join details
# --------------------------------------------------------------------------------------------


@frozen_dataclass
class JoinDevice(Asn1Payload):
    """Tell a device to add another to its own Device Log; `ka_certificate` only for Method C."""

    KIND: ClassVar[str] = "Join Device Command"
    _SPEC: ClassVar[type] = _A_JoinDevice
    join_method_and_role: JoinMethodAndRole | int = _enum(JoinMethodAndRole)
    other_entity_id: bytes = _eui()
    other_device_type: DeviceType | int = _enum(DeviceType)
    ka_certificate: bytes | None = _blob(_Certificate, None)


@frozen_dataclass
class JoinResponse(_CodeResponse):
    code: JoinResponseCode | int = _enum(JoinResponseCode)


@frozen_dataclass
class UnjoinDevice(Asn1Payload):
    KIND: ClassVar[str] = "Entity Id"
    _SPEC: ClassVar[type] = _OctetString
    _SINGLE: ClassVar[bool] = True
    entity_id: bytes = _eui()


@frozen_dataclass
class UnjoinResponse(_CodeResponse):
    code: UnjoinResponseCode | int = _enum(UnjoinResponseCode)


@frozen_dataclass
class _NullPayload(Asn1Payload):
    _SPEC: ClassVar[type] = _Null
    _SINGLE: ClassVar[bool] = True


@frozen_dataclass
class ReadDeviceJoinDetails(_NullPayload):
    KIND: ClassVar[str] = "Read Device Join Details Command"


@frozen_dataclass
class DeviceJoinDetails(Asn1Payload):
    """CS07 response `{responseCode, entries OPTIONAL}`; `entries` None = absent (read failure)."""

    KIND: ClassVar[str] = "Read Device Join Details Response"
    _SPEC: ClassVar[type] = _A_DeviceJoinDetails
    entries: tuple[DeviceLogEntry, ...] | None = _list(("nested", "DeviceLogEntry"), ())
    code: ReadResponseCode | int = _enum(ReadResponseCode, ReadResponseCode.SUCCESS)


# --------------------------------------------------------------------------------------------
# CS06 activate firmware, CCS08 firmware transfer alert, CS08 firmware version
# --------------------------------------------------------------------------------------------


CANCELLATION_DATE_TIME = _dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=_dt.timezone.utc)


@frozen_dataclass
class ActivateFirmware(Asn1Payload):
    """`execution_date_time` = CANCELLATION_DATE_TIME cancels a pending activation [O RTDS]."""

    KIND: ClassVar[str] = "Activate Firmware Command"
    _SPEC: ClassVar[type] = _A_ActivateFirmware
    manufacturer_image_hash: bytes = _bytes()
    originator_counter: int = _int()
    execution_date_time: _dt.datetime | None = _time(None)

    @property
    def is_cancellation(self) -> bool:
        return self.execution_date_time == CANCELLATION_DATE_TIME


@frozen_dataclass
class CommandAccepted(_NullPayload):
    """NULL: a future-dated command was accepted (CS06); the outcome follows as an alert."""

    KIND: ClassVar[str] = "Command Accepted"


@frozen_dataclass
class ActivateFirmwareOutcome(Asn1Payload):
    KIND: ClassVar[str] = "Execution Outcome"
    _SPEC: ClassVar[type] = _A_ActivateFirmwareOutcome
    code: ActivateFirmwareCode | int = _enum(ActivateFirmwareCode)
    firmware_version: bytes = _bytes()


@frozen_dataclass
class ActivateFirmwareAlert(Asn1Payload):
    """Future-dated activation outcome, message code 0x00CA (alert 0x8F66/0x8F67)."""

    KIND: ClassVar[str] = "Activate Firmware Alert"
    _SPEC: ClassVar[type] = _A_ActivateFirmwareAlert
    alert_code: int = _int()
    execution_date_time: _dt.datetime = _time()
    originator_counter: int = _int()
    outcome: ActivateFirmwareOutcome = _nested("ActivateFirmwareOutcome")


@frozen_dataclass
class FirmwareTransferAlert(Asn1Payload):
    """CCS08 (0x0128): CHF reports the OTA transfer to a HAN device (0x8F8A success / 0x8F89 fail)."""

    KIND: ClassVar[str] = "Firmware Transfer Alert"
    _SPEC: ClassVar[type] = _A_FirmwareTransferAlert
    alert_code: int = _int()
    execution_date_time: _dt.datetime = _time()
    entity_id: bytes = _eui()
    firmware_version: bytes = _bytes()
    code: FirmwareTransferCode | int = _enum(FirmwareTransferCode)


@frozen_dataclass
class ReadFirmwareVersion(_NullPayload):
    KIND: ClassVar[str] = "Read Firmware Version Command"


@frozen_dataclass
class FirmwareVersionResponse(Asn1Payload):
    KIND: ClassVar[str] = "Read Firmware Version Response"
    _SPEC: ClassVar[type] = _A_FirmwareVersionResponse
    firmware_version: bytes = _bytes()
    code: ReadResponseCode | int = _enum(ReadResponseCode, ReadResponseCode.SUCCESS)


@frozen_dataclass
class FirmwareVersionAlert(Asn1Payload):
    """CS08 alert shape (PPMID/HCALCS activation result), per the DCC parser; no RTDS sample. The
    PPMID sends it as CS09 (0x012B, alert 0x8F8B) after an activation [I]."""

    KIND: ClassVar[str] = "Firmware Version Alert"
    _SPEC: ClassVar[type] = _A_FirmwareVersionAlert
    alert_code: int = _int()
    execution_date_time: _dt.datetime = _time()
    firmware_version: bytes = _bytes()
    activate_image: ActivateImageResult | int = _enum(ActivateImageResult)


# --------------------------------------------------------------------------------------------
# GCS28 set time, GCS59/GCS62 GPF device log
# --------------------------------------------------------------------------------------------


@frozen_dataclass
class SetTime(Asn1Payload):
    KIND: ClassVar[str] = "Set Time Command"
    _SPEC: ClassVar[type] = _A_SetTime
    validity_interval_start: _dt.datetime = _time()
    validity_interval_end: _dt.datetime = _time()


@frozen_dataclass
class SetTimeResponse(Asn1Payload):
    KIND: ClassVar[str] = "Set Time Response"
    _SPEC: ClassVar[type] = _A_SetTimeResponse
    device_time: _dt.datetime = _time()
    status: DeviceTimeStatus | int = _enum(DeviceTimeStatus, DeviceTimeStatus.RELIABLE)


@frozen_dataclass
class GpfDeviceLogRestore(Asn1Payload):
    KIND: ClassVar[str] = "GPF Device Log Restore Command"
    _SPEC: ClassVar[type] = _A_GpfDeviceLogRestore
    entries: tuple[DeviceLogEntry, ...] = _list(("nested", "DeviceLogEntry"))


@frozen_dataclass
class RestoreOutcome(Asn1Payload):
    KIND: ClassVar[str] = "Restore Outcome"
    _SPEC: ClassVar[type] = _A_RestoreOutcome
    entry: DeviceLogEntry = _nested("DeviceLogEntry")
    code: JoinResponseCode | int = _enum(JoinResponseCode)


@frozen_dataclass
class GpfDeviceLogRestoreResponse(Asn1Payload):
    KIND: ClassVar[str] = "GPF Device Log Restore Response"
    _SPEC: ClassVar[type] = _A_GpfDeviceLogRestoreResponse
    outcomes: tuple[RestoreOutcome, ...] = _list(("nested", "RestoreOutcome"))


@frozen_dataclass
class GpfDeviceLogBackupAlert(Asn1Payload):
    """GCS62 (0x00B2, alert 0x8071): the whole GPF device log after a change."""

    KIND: ClassVar[str] = "GPF Device Log Backup Alert"
    _SPEC: ClassVar[type] = _A_GpfDeviceLogBackupAlert
    alert_code: int = _int()
    backup_date_time: _dt.datetime = _time()
    entries: tuple[DeviceLogEntry, ...] = _list(("nested", "DeviceLogEntry"))


# --------------------------------------------------------------------------------------------
# Generic DER (anything well formed that is not the expected type)
# --------------------------------------------------------------------------------------------

MAX_DEPTH = 48  # certificates nest ~10 deep inside a payload; deeper input is refused
_CLASS_NAMES = ("UNIVERSAL", "APPLICATION", "CONTEXT", "PRIVATE")
_UNIVERSAL_NAMES = {
    0: "EOC", 1: "BOOLEAN", 2: "INTEGER", 3: "BIT STRING", 4: "OCTET STRING", 5: "NULL", 6: "OBJECT IDENTIFIER",
    10: "ENUMERATED", 12: "UTF8String", 16: "SEQUENCE", 17: "SET", 19: "PrintableString", 22: "IA5String",
    23: "UTCTime", 24: "GeneralizedTime",
}


@frozen_dataclass
class DerNode:
    """One TLV as received. `children` is None for primitive encodings."""

    tag_class: int
    constructed: bool
    number: int
    header: bytes  # identifier and length octets exactly as received
    contents: bytes
    children: tuple["DerNode", ...] | None = None

    @property
    def name(self) -> str:
        if self.tag_class == 0:
            return _UNIVERSAL_NAMES.get(self.number, f"UNIVERSAL {self.number}")
        return f"[{'' if self.tag_class == 2 else _CLASS_NAMES[self.tag_class] + ' '}{self.number}]"

    def encode(self) -> bytes:
        return self.header + self.contents

    def tree(self, label: str | None = None) -> Node:
        name = label or self.name
        if self.children is None:
            return Node(name, self.header + self.contents, _primitive_text(self))
        return Node(name, self.header, f"{len(self.children)} element(s)", tuple(c.tree() for c in self.children))

    def to_json(self) -> dict:
        out: dict[str, Any] = {"tag": self.name}
        if self.children is None:
            out["value"] = self.contents.hex().upper()
        else:
            out["children"] = [c.to_json() for c in self.children]
        return out


@frozen_dataclass
class DerPayload:
    """Well-formed DER that is not the type expected for its message code (or an unknown code)."""

    KIND: ClassVar[str] = "DER"
    values: tuple[DerNode, ...]

    def encode(self) -> bytes:
        return b"".join(v.encode() for v in self.values)

    def tree(self) -> Node:
        return Node(self.KIND, b"", "not a recognised GBCS ASN.1 type", tuple(v.tree() for v in self.values))

    def to_json(self) -> dict:
        return {"type": "DerPayload", "kind": self.KIND, "values": [v.to_json() for v in self.values]}


def _primitive_text(node: DerNode) -> str:
    c = node.contents
    if node.tag_class == 0:
        if node.number in (2, 10) and c:
            return str(int.from_bytes(c, "big", signed=True))
        if node.number == 5:
            return "NULL"
        if node.number in (12, 19, 22, 23, 24):
            return c.decode("latin-1")
    if len(c) == 8 and node.tag_class == 0 and node.number == 4:
        return eui_hex(c)
    return c.hex().upper() if c else "empty"


def _walk(buf: bytes, start: int, end: int, depth: int) -> tuple[DerNode, ...]:
    """Parse the TLVs in buf[start:end]; offsets in errors are relative to buf. Hot path (every
    ASN.1 payload, certificates included): short lengths read inline, nodes built without the
    frozen-dataclass __init__."""
    if depth > MAX_DEPTH:
        raise DecodeError(f"DER nested deeper than {MAX_DEPTH} levels", start, "asn1")
    nodes = []
    pos = start
    while pos < end:
        at = pos
        first = buf[pos]
        pos += 1
        number = first & 0x1F
        if number == 0x1F:  # high-tag-number form
            number = 0
            for i in range(4):
                if pos >= end:
                    raise DecodeError("truncated tag", at, "asn1")
                b = buf[pos]
                pos += 1
                if i == 0 and b == 0x80:
                    raise DecodeError("non-minimal tag number", at, "asn1")
                number = (number << 7) | (b & 0x7F)
                if not b & 0x80:
                    break
            else:
                raise DecodeError("tag number too large", at, "asn1")
        if pos >= end:
            raise DecodeError("truncated: no length", pos, "asn1")
        length = buf[pos]
        if length < 0x80:
            pos += 1
        elif length == 0x80:
            raise DecodeError("indefinite length is not DER", pos, "asn1")
        else:
            length, pos = read_length(buf, pos, end, "asn1", minimal=False)  # long forms as some RTDS use
        stop = pos + length
        if stop > end:
            raise DecodeError(f"truncated: value needs {length} bytes, {end - pos} left", at, "asn1")
        node = _new_node(DerNode)
        _set_class(node, first >> 6)
        _set_number(node, number)
        _set_header(node, buf[at:pos])
        _set_contents(node, buf[pos:stop])
        if first & 0x20:
            _set_constructed(node, True)
            _set_children(node, _walk(buf, pos, stop, depth + 1))
        else:
            _set_constructed(node, False)
            _set_children(node, None)
        nodes.append(node)
        pos = stop
    return tuple(nodes)


_new_node = object.__new__
_set_class, _set_constructed, _set_number, _set_header, _set_contents, _set_children = slot_setters(
    DerNode, "tag_class", "constructed", "number", "header", "contents", "children")


def _scan(buf: bytes, end: int) -> int:
    """Check the TLV structure of buf[0:end] as `_walk` does, building nothing: the same
    DecodeErrors (message and offset, found in the same depth-first order). Returns the number of
    top-level values. Hot path: every ASN.1 payload, certificates included, passes here once and
    is walked into nodes only when no typed read takes it."""
    count = 0
    pos = 0
    while pos < end:
        count += 1
        pos = _scan_value(buf, pos, end)
    return count


def _scan_value(buf: bytes, pos: int, end: int) -> int:
    """`_scan` of the one value at `pos` (its contents iteratively, depth first); returns its end."""
    level_end = end  # the end of the constructed value being read
    depth = 0
    outer: list[int] = []  # the ends of the enclosing ones
    push = outer.append
    pop = outer.pop
    while True:
        if pos < level_end:
            at = pos
            form = _FORMS[buf[pos]]
            pos += 1
            if form > 1:
                pos = _scan_tag(buf, at, level_end)
                form -= 2
            if pos >= level_end:
                raise DecodeError("truncated: no length", pos, "asn1")
            length = buf[pos]
            if length < 0x80:
                pos += 1
            else:
                length, pos = _scan_length(buf, pos, level_end)
            stop = pos + length
            if stop > level_end:
                raise DecodeError(f"truncated: value needs {length} bytes, {level_end - pos} left", at, "asn1")
            if form:
                if depth == MAX_DEPTH:
                    raise DecodeError(f"DER nested deeper than {MAX_DEPTH} levels", pos, "asn1")
                push(level_end)
                level_end = stop
                depth += 1
            elif depth:
                pos = stop
            else:
                return stop
        elif depth > 1:
            level_end = pop()
            depth -= 1
        else:
            return pos


# By identifier octet: 1 if constructed, plus 2 if in the high-tag-number form.
_FORMS = tuple((first & 0x20 != 0) + 2 * (first & 0x1F == 0x1F) for first in range(256))


def _scan_tag(buf: bytes, at: int, end: int) -> int:
    """The position after the high-tag-number identifier at `at` (checked as `_walk` does)."""
    pos = at + 1
    for i in range(4):
        if pos >= end:
            raise DecodeError("truncated tag", at, "asn1")
        b = buf[pos]
        pos += 1
        if i == 0 and b == 0x80:
            raise DecodeError("non-minimal tag number", at, "asn1")
        if not b & 0x80:
            return pos
    raise DecodeError("tag number too large", at, "asn1")


def _scan_length(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """A long-form length at `pos` as `_walk` reads it: (length, position after it)."""
    if buf[pos] == 0x80:
        raise DecodeError("indefinite length is not DER", pos, "asn1")
    return read_length(buf, pos, end, "asn1", minimal=False)

def _canonical(node: DerNode) -> bytes:
    """The node with minimal length forms: what a fresh DER encoder would emit."""
    ident_len = _identifier_length(node.header)
    if node.children is None:
        body = node.contents
    else:
        body = b"".join(_canonical(c) for c in node.children)
    return node.header[:ident_len] + encode_length(len(body)) + body


def _identifier_length(header: bytes) -> int:
    if header[0] & 0x1F != 0x1F:
        return 1
    n = 1
    while header[n] & 0x80:
        n += 1
    return n + 1


def decode_der(data: bytes) -> DerPayload:
    """Any DER as a generic tree. Raises DecodeError on malformed input (offsets into `data`)."""
    data = bytes(data)
    if not data:
        raise DecodeError("empty ASN.1 payload", 0, "asn1")
    return DerPayload(_walk(data, 0, len(data), 0))


# --------------------------------------------------------------------------------------------
# Conversion between asn1crypto values and dataclasses
# --------------------------------------------------------------------------------------------


def _present(a) -> bool:
    from asn1crypto.core import Void

    return a is not None and not isinstance(a, Void)


def _from_value(kind: str, arg, a):
    if kind in ("int", "enum"):
        v = a.native
        if not isinstance(v, int):
            raise _Mismatch("not an integer")
        return _coerce_enum(arg, v) if kind == "enum" else v
    if kind in ("bytes", "eui"):
        v = a.native
        if not isinstance(v, bytes):
            raise _Mismatch("not an octet string")
        return v
    if kind == "time":
        v = a.native
        if type(v) is not _dt.datetime:
            raise _Mismatch("unsupported time value")
        return v
    if kind == "key_usage":
        bits = a.native
        value = 0
        for i, b in enumerate(bits):
            if b:
                value |= 1 << i
        return KeyUsage(value)
    if kind == "blob":
        return _raw(a)
    if kind == "nested":
        return _from_asn1(arg, a)
    if kind == "list":
        return tuple(_from_value(arg[0], arg[1], item) for item in a)
    raise AssertionError(kind)


def _from_asn1(cls: type, a) -> Asn1Payload:
    meta = _meta(cls)
    if cls._SINGLE:
        kwargs = {name: _from_value(kind, arg, a) for name, kind, arg in meta}
    else:
        kwargs = {}
        for name, kind, arg in meta:
            child = a[name]
            kwargs[name] = _from_value(kind, arg, child) if _present(child) else None
    obj = cls(**kwargs)
    if not a.implicit and not a.explicit:  # an implicitly tagged copy would not stand alone
        object.__setattr__(obj, "_der", _raw(a))
    return obj


def _raw(a) -> bytes:
    """The bytes a parsed value came from (not dump(): see _encode_value)."""
    return a._header + a.contents + (a._trailer or b"")


# The same conversion read straight off the TLV tree `_walk` already built (no asn1crypto parse):
# tags matched in declaration order, optional fields skipped when their tag is not next. It takes
# only the plain forms (a DER primitive where one is declared, canonical GeneralizedTime); on
# anything else it raises _Mismatch and `_try` asks asn1crypto, so what is accepted, and the value
# it gives, stay those of the declarations (tests/test_asn1_fast.py compares both on every input).

_UTC = _dt.timezone.utc


def _from_node(cls: type, node: DerNode, params: dict | None = None) -> Asn1Payload:
    ident, single, plan = _plan(cls)
    if single:
        if plan is None:
            if node.header[0] != (ident if params is None else _identifier(cls._SPEC, params)[0]):
                raise _Mismatch("tag")
            kwargs = {}
        else:
            name, kind, arg = plan
            kwargs = {name: _node_value(kind, arg, cls._SPEC, params, node)}
    else:
        if node.header[0] != (ident if params is None else _identifier(cls._SPEC, params)[0]) or node.children is None:
            raise _Mismatch("tag")
        children = node.children
        i, n = 0, len(children)
        kwargs = {}
        for fname, fident, optional, km, fspec, fparams in plan:
            child = children[i] if i < n else None
            if child is None or child.header[0] != fident:
                if optional:
                    if km is not None:
                        kwargs[fname] = None
                    continue
                raise _Mismatch(f"{fname} missing")
            i += 1
            if km is not None:  # else a fixed NULL (commandAccepted): the re-encoding checks it
                kwargs[fname] = _node_value(km[0], km[1], fspec, fparams, child)
        if i != n:
            raise _Mismatch("elements left over")
    obj = cls(**kwargs)
    if params is None or "implicit" not in params:
        object.__setattr__(obj, "_der", node.header + node.contents)
    return obj


_PLANS: dict[type, tuple] = {}


def _plan(cls: type) -> tuple:
    """(identifier byte, single, fields) of a payload class, worked out once: for a SEQUENCE each
    declared field as (name, identifier byte, optional, (kind, arg) or None, spec, params); for a
    single value its (name, kind, arg), or None for NULL."""
    hit = _PLANS.get(cls)
    if hit is not None:
        return hit
    meta = _meta(cls)
    spec = cls._SPEC
    if cls._SINGLE:
        fields = meta[0] if meta else None
    else:
        kinds = {name: (kind, arg) for name, kind, arg in meta}
        fields = tuple(
            (f[0], _identifier(f[1], f[2] if len(f) > 2 else None)[0], bool(len(f) > 2 and f[2].get("optional")),
             kinds.get(f[0]), f[1], f[2] if len(f) > 2 else None)
            for f in spec._fields
        )
    hit = _PLANS[cls] = (_identifier(spec, None)[0], cls._SINGLE, fields)
    return hit


def _node_value(kind: str, arg, spec: type, params: dict | None, node: DerNode):
    if kind == "nested":
        return _from_node(arg, node, params)
    if node.header[0] != _identifier(spec, params)[0]:
        raise _Mismatch("tag")
    c = node.contents
    if kind == "int" or kind == "enum":
        if node.children is not None or not c:
            raise _Mismatch("not a primitive INTEGER")
        v = int.from_bytes(c, "big", signed=True)
        return _coerce_enum(arg, v) if kind == "enum" else v
    if kind == "bytes" or kind == "eui":
        if node.children is not None:
            raise _Mismatch("constructed OCTET STRING")
        return c
    if kind == "time":
        return _parse_generalized_time(c)
    if kind == "key_usage":
        if node.children is not None or not c or c[0] > 7 or (len(c) == 1 and c[0]):
            raise _Mismatch("BIT STRING form")
        nbits = 8 * (len(c) - 1) - c[0]
        whole = int.from_bytes(c[1:], "big") >> c[0] if len(c) > 1 else 0
        value = 0
        for i in range(nbits):  # bit 0 is the first (most significant) bit
            if whole >> (nbits - 1 - i) & 1:
                value |= 1 << i
        return KeyUsage(value)
    if kind == "blob":
        if node.children is None:
            raise _Mismatch("blob is not constructed")
        return node.header + c
    if kind == "list":
        if node.children is None:
            raise _Mismatch("not a SEQUENCE OF")
        item_kind, item_arg = arg
        item_spec = spec._child_spec
        return tuple(_node_value(item_kind, item_arg, item_spec, None, child) for child in node.children)
    raise AssertionError(kind)


def _parse_generalized_time(c: bytes) -> _dt.datetime:
    """Only the form `_generalized_time` writes (UTC, 'Z', fraction without trailing zeros)."""
    try:
        text = c.decode("ascii")
        if len(text) < 15 or text[-1] != "Z" or not text[:14].isdigit():
            raise _Mismatch("GeneralizedTime form")
        micro = 0
        if len(text) > 15:
            frac = text[14:-1]
            if frac[:1] != "." or not frac[1:].isdigit() or len(frac) > 7 or frac.endswith("0"):
                raise _Mismatch("GeneralizedTime fraction")
            micro = int(frac[1:].ljust(6, "0"))
        t = _dt.datetime(int(text[0:4]), int(text[4:6]), int(text[6:8]), int(text[8:10]), int(text[10:12]),
                         int(text[12:14]), micro, tzinfo=_UTC)
    except (UnicodeDecodeError, ValueError):
        raise _Mismatch("GeneralizedTime value") from None
    if t.year < 1:
        raise _Mismatch("year")
    return t


# The typed read straight off the bytes, for input `_scan` has checked: the plain forms of
# `_from_node` and no more, narrowed to what `_encode_obj` writes back exactly (minimal INTEGERs,
# BIT STRINGs without trailing zero bits, empty NULLs, the GeneralizedTime form it writes), so a
# value it gives re-encodes to the input up to length forms and `decode_asn1` skips the
# re-encoding proof; anything else raises _Mismatch and `_try` decides as before
# (tests/test_asn1_fast.py checks both claims on RTDS payloads, mutations and random DER). It
# descends only into the fields it reads: certificates are kept as bytes without being walked.


def _contents_at(buf: bytes, pos: int) -> tuple[int, int]:
    """(contents start, end) of the checked TLV at `pos` whose identifier is one byte."""
    n = buf[pos + 1]
    if n < 0x80:
        return pos + 2, pos + 2 + n
    cs = pos + 2 + (n & 0x7F)
    return cs, cs + int.from_bytes(buf[pos + 2 : cs], "big")


def _read_int(buf: bytes, at: int, cs: int, stop: int) -> int:
    if stop - cs > 1:
        a, b = buf[cs], buf[cs + 1]
        if (a == 0 and b < 0x80) or (a == 0xFF and b >= 0x80):
            raise _Mismatch("INTEGER not minimal")
    elif stop == cs:
        raise _Mismatch("empty INTEGER")
    return int.from_bytes(buf[cs:stop], "big", signed=True)


def _enum_reader(enum_cls):
    members = {int(m): m for m in enum_cls}
    get = members.get

    def read(buf: bytes, at: int, cs: int, stop: int):
        v = _read_int(buf, at, cs, stop)
        m = get(v)
        return v if m is None else m

    return read


def _read_bytes(buf: bytes, at: int, cs: int, stop: int) -> bytes:
    return buf[cs:stop]


def _read_time(buf: bytes, at: int, cs: int, stop: int) -> _dt.datetime:
    return _parse_generalized_time(buf[cs:stop])


def _read_key_usage(buf: bytes, at: int, cs: int, stop: int) -> KeyUsage:
    c = buf[cs:stop]
    if not c or c[0] > 7 or (len(c) == 1 and c[0]):
        raise _Mismatch("BIT STRING form")
    nbits = 8 * (len(c) - 1) - c[0]
    whole = int.from_bytes(c[1:], "big") >> c[0] if len(c) > 1 else 0
    value = 0
    for i in range(nbits):  # bit 0 is the first (most significant) bit
        if whole >> (nbits - 1 - i) & 1:
            value |= 1 << i
    if _bit_string_contents(value) != c:
        raise _Mismatch("BIT STRING not minimal")
    return KeyUsage(value)


def _read_blob(buf: bytes, at: int, cs: int, stop: int) -> bytes:
    return buf[at:stop]


def _value_reader(kind: str, arg):
    if kind == "int":
        return _read_int
    if kind == "enum":
        return _enum_reader(arg)
    if kind == "bytes" or kind == "eui":
        return _read_bytes
    if kind == "time":
        return _read_time
    if kind == "key_usage":
        return _read_key_usage
    if kind == "blob":
        return _read_blob
    raise AssertionError(kind)


def _field_reader(kind: str, arg, spec: type, params: dict | None):
    """(identifier byte, reader) of one declared value."""
    ident = _identifier(spec, params)[0]
    if kind == "nested":
        keep_der = not (params and "implicit" in params)

        def read_nested(buf: bytes, at: int, cs: int, stop: int):
            return _read(arg, buf, at, cs, stop, keep_der)

        return ident, read_nested
    if kind == "list":
        item_ident, item = _field_reader(arg[0], arg[1], spec._child_spec, None)

        def read_list(buf: bytes, at: int, cs: int, stop: int) -> tuple:
            out = []
            pos = cs
            while pos < stop:
                if buf[pos] != item_ident:
                    raise _Mismatch("SEQUENCE OF item tag")
                ics, istop = _contents_at(buf, pos)
                out.append(item(buf, pos, ics, istop))
                pos = istop
            return tuple(out)

        return ident, read_list
    return ident, _value_reader(kind, arg)


_READERS: dict[type, tuple] = {}


def _reader(cls: type) -> tuple:
    """(identifier byte, single, fields, `_der` setter) of a payload class for `_read`, worked out
    once: for a SEQUENCE each declared field as (identifier byte, optional, reader and setter of
    the dataclass field, both None for a fixed NULL); for a single value its (reader, setter), or
    None for NULL."""
    hit = _READERS.get(cls)
    if hit is not None:
        return hit
    _plan(cls)  # the asn1 metadata resolved
    meta = _meta(cls)
    spec = cls._SPEC
    if cls._SINGLE:
        fields = (_field_reader(meta[0][1], meta[0][2], spec, None)[1], _slot_setter(cls, meta[0][0])) if meta else None
        order = [m[0] for m in meta]
    else:
        kinds = {name: (kind, arg) for name, kind, arg in meta}
        fields = []
        order = []
        for f in spec._fields:
            params = f[2] if len(f) > 2 else None
            optional = bool(params and params.get("optional"))
            km = kinds.get(f[0])
            if km is None:
                fields.append((_identifier(f[1], params)[0], optional, None, None))
                continue
            ident, read = _field_reader(km[0], km[1], f[1], params)
            fields.append((ident, optional, read, _slot_setter(cls, f[0])))
            order.append(f[0])
        fields = tuple(fields)
    names = [f.name for f in dataclasses.fields(cls)]
    assert sorted(order + ["_der"]) == sorted(names), cls  # every field is read
    hit = _READERS[cls] = (_identifier(spec, None)[0], cls._SINGLE, fields, _slot_setter(cls, "_der"))
    return hit


def _slot_setter(cls: type, name: str):
    for base in cls.__mro__:
        slot = base.__dict__.get(name)
        if slot is not None and hasattr(slot, "__set__"):
            return slot.__set__
    raise AssertionError(f"{cls.__name__}.{name}")


def _read(cls: type, buf: bytes, at: int, cs: int, stop: int, keep_der: bool = True) -> Asn1Payload:
    """The value of `cls` in the checked TLV buf[at:stop] (contents from `cs`), its identifier
    already matched by the caller; raises _Mismatch. Fields are set on a bare instance as they are
    read (no __init__, no normalising: the values read are in their normal form)."""
    _, single, fields, set_der = _READERS.get(cls) or _reader(cls)
    obj = _new_payload(cls)
    if single:
        if fields is None:
            if cs != stop:
                raise _Mismatch("NULL with contents")
        else:
            read, setter = fields
            setter(obj, read(buf, at, cs, stop))
    else:
        pos = cs
        for fident, optional, read, setter in fields:
            if pos >= stop or buf[pos] != fident:
                if optional:
                    if setter is not None:
                        setter(obj, None)
                    continue
                raise _Mismatch("field missing")
            n = buf[pos + 1]  # _contents_at, inline: the one hot call per field
            if n < 0x80:
                fcs = pos + 2
                fstop = fcs + n
            else:
                fcs = pos + 2 + (n & 0x7F)
                fstop = fcs + int.from_bytes(buf[pos + 2 : fcs], "big")
            if read is not None:
                setter(obj, read(buf, pos, fcs, fstop))
            elif fcs != fstop:
                raise _Mismatch("NULL with contents")
            pos = fstop
        if pos != stop:
            raise _Mismatch("elements left over")
    set_der(obj, buf[at:stop] if keep_der else b"")
    return obj


_new_payload = object.__new__


def _generalized_time(t: _dt.datetime) -> str:
    """DER GeneralizedTime text (UTC, 'Z', fraction only if needed). Formatted here because
    asn1crypto does not zero-pad years before 1000."""
    t = _utc(t).astimezone(_dt.timezone.utc)
    text = f"{t.year:04d}{t.month:02d}{t.day:02d}{t.hour:02d}{t.minute:02d}{t.second:02d}"
    if t.microsecond:
        text += f".{t.microsecond:06d}".rstrip("0")
    return text + "Z"


# The bytes are assembled here from the asn1crypto declarations (tags, implicit tagging, field
# order) rather than by asn1crypto's dump(): dump() re-encodes any value whose length octets end
# in 0x80 (it mistakes them for an indefinite length), which would rewrite received certificates.


def _identifier(spec: type, params: dict | None) -> bytes:
    implicit = params.get("implicit") if params else None
    key = (spec, implicit)
    hit = _IDENTIFIERS.get(key)
    if hit is None:
        constructed = 0x20 if spec.constructed else 0
        if implicit is not None:
            hit = bytes((0x80 | constructed | implicit,))
        else:
            hit = bytes(((spec.class_ << 6) | constructed | spec.tag,))
        _IDENTIFIERS[key] = hit
    return hit


_IDENTIFIERS: dict[tuple[type, int | None], bytes] = {}  # by (spec, implicit tag): declarations only


def _tlv(identifier: bytes, contents: bytes) -> bytes:
    return identifier + encode_length(len(contents)) + contents


def _encode_value(kind: str, arg, value, spec: type, params: dict | None, fresh: bool) -> bytes:
    if kind in ("int", "enum"):
        return _tlv(_identifier(spec, params), _integer_contents(int(value)))
    if kind in ("bytes", "eui"):
        return _tlv(_identifier(spec, params), bytes(value))
    if kind == "time":
        if not isinstance(value, _dt.datetime):
            raise EncodeError(f"expected a datetime, got {type(value).__name__}")
        return _tlv(_identifier(spec, params), _generalized_time(value).encode("ascii"))
    if kind == "key_usage":
        v = int(value)
        if v < 0:
            raise EncodeError("negative key usage")
        return _tlv(_identifier(spec, params), _bit_string_contents(v))
    if kind == "blob":
        raw = bytes(value)
        if raw[:1] != _identifier(spec, None) or _single_tlv_length(raw) != len(raw):
            raise EncodeError(f"embedded {spec.__name__.lstrip('_')} must be exactly one DER SEQUENCE")
        return raw
    if kind == "nested":
        inner = _encode_obj(value, fresh)
        return _identifier(spec, params) + inner[1:] if params and "implicit" in params else inner
    if kind == "list":
        item_spec = spec._child_spec
        body = b"".join(_encode_value(arg[0], arg[1], item, item_spec, None, fresh) for item in value)
        return _tlv(_identifier(spec, params), body)
    raise AssertionError(kind)


def _integer_contents(v: int) -> bytes:
    """DER INTEGER contents: minimal two's complement."""
    return v.to_bytes(((v if v >= 0 else ~v).bit_length() + 8) // 8, "big", signed=True)


def _bit_string_contents(v: int) -> bytes:
    """DER BIT STRING contents of a bit set (bit n of `v` is the n-th bit), no trailing zero bits."""
    n = v.bit_length()
    msb_first = 0
    for i in range(n):
        if v >> i & 1:
            msb_first |= 1 << (n - 1 - i)
    pad = -n % 8
    return bytes((pad,)) + (msb_first << pad).to_bytes((n + pad) // 8, "big")


def _single_tlv_length(raw: bytes) -> int:
    """Total size the outer TLV of `raw` claims (one-byte identifier), or -1."""
    try:
        length, pos = read_length(raw, 1, len(raw), minimal=False)
    except DecodeError:
        return -1
    return pos + length


def _encode_obj(obj: Asn1Payload, fresh: bool) -> bytes:
    """DER for `obj`; reuses the received DER of it (and of nested values) unless `fresh`."""
    if not fresh and obj._der:
        return obj._der
    cls = type(obj)
    meta = _meta(cls)
    if cls._SINGLE:
        if not meta:
            return _tlv(_identifier(cls._SPEC, None), b"")
        name, kind, arg = meta[0]
        return _encode_value(kind, arg, getattr(obj, name), cls._SPEC, None, fresh)
    by_name = {m[0]: m for m in meta}
    parts = []
    for spec_field in cls._SPEC._fields:
        fname, fspec = spec_field[0], spec_field[1]
        params = spec_field[2] if len(spec_field) > 2 else {}
        if fname not in by_name:  # fixed NULL (commandAccepted)
            parts.append(_tlv(_identifier(fspec, params), b""))
            continue
        value = getattr(obj, fname)
        if value is None:
            if not params.get("optional"):
                raise EncodeError(f"{cls.__name__}.{fname} is required")
            continue
        _, kind, arg = by_name[fname]
        parts.append(_encode_value(kind, arg, value, fspec, params, fresh))
    return _tlv(_identifier(cls._SPEC, None), b"".join(parts))


# --------------------------------------------------------------------------------------------
# Annotated tree
# --------------------------------------------------------------------------------------------


def _header_of(a) -> bytes:
    return a._header


def _time_text(t: _dt.datetime) -> str:
    g = _generalized_time(t)
    return f"{g[0:4]}-{g[4:6]}-{g[6:8]}T{g[8:10]}:{g[10:12]}:{g[12:]}"


def _key_usage_names(v: int) -> list:
    v = int(v)
    names: list = [name for bit, name in _KEY_USAGE_BITS if v & bit]
    rest = v & ~_KEY_USAGE_ALL
    if rest:
        names.append(rest)
    return names


_KEY_USAGE_BITS = tuple((int(m), m.name) for m in KeyUsage)
_KEY_USAGE_ALL = sum(int(m) for m in KeyUsage)


def _certificate_text(raw: bytes) -> str:
    try:
        cert = _asn1crypto(_Certificate).load(raw)
        tbs = cert["tbs_certificate"]
        serial = tbs["serial_number"].native
        issuer = tbs["issuer"].human_friendly
        usage = cert.key_usage_value
        usage_text = ", ".join(sorted(usage.native)) if usage is not None else "no key usage"
        return f"X.509 certificate, {len(raw)} bytes, serial {serial:X}, issuer {issuer}, {usage_text}"
    except Exception:  # summary only; the bytes are shown regardless
        return f"DER certificate, {len(raw)} bytes"


def _meaning(kind: str, name: str, value) -> str:
    if isinstance(value, IntEnum):
        return f"{value.name} ({int(value)})"
    if kind == "int" and name == "alert_code" and isinstance(value, int) and value >= 0:
        return f"0x{value:04X}"
    if kind in ("int", "enum"):
        return str(value)
    if kind == "eui":
        return eui_hex(value) if len(value) == 8 else value.hex().upper()
    if kind == "bytes":
        return value.hex().upper() if value else "empty"
    if kind == "time":
        return _time_text(value)
    if kind == "key_usage":
        return " ".join(str(n) for n in _key_usage_names(value)) or "none"
    if kind == "blob":
        if name == "certification_request":
            return f"PKCS#10 certification request, {len(value)} bytes"
        return _certificate_text(value)
    return ""


def _field_tree(name: str, kind: str, arg, value, a) -> Node:
    if kind == "nested":
        return _tree_value(value, name, a)
    if kind == "list":
        items = []
        for i, (item, ai) in enumerate(zip(value, a)):
            items.append(_field_tree(f"[{i}]", arg[0], arg[1], item, ai))
        return Node(name, _header_of(a), f"{len(items)} item(s)", tuple(items))
    return Node(name, _raw(a), _meaning(kind, name, value))


def _tree_value(obj: Asn1Payload, name: str, a) -> Node:
    cls = type(obj)
    meta = _meta(cls)
    if cls._SINGLE:
        if not meta:
            return Node(name, _raw(a), "NULL")
        fname, kind, arg = meta[0]
        node = _field_tree(name, kind, arg, getattr(obj, fname), a)
        return node
    by_name = {m[0]: m for m in meta}
    children = []
    for spec_field in cls._SPEC._fields:
        fname = spec_field[0]
        child = a[fname]
        if not _present(child):
            continue
        if fname not in by_name:
            children.append(Node(fname, _raw(child), "NULL"))
            continue
        _, kind, arg = by_name[fname]
        children.append(_field_tree(fname, kind, arg, getattr(obj, fname), child))
    return Node(name, _header_of(a), obj.KIND if name != obj.KIND else f"{len(_raw(a))} bytes", tuple(children))


# --------------------------------------------------------------------------------------------
# Dispatch by message code (FRAMING.md §7)
# --------------------------------------------------------------------------------------------

_COMMAND, _RESPONSE, _ALERT = 1, 2, 3
_TABLE: dict[tuple[int, int], tuple[type, ...]] = {}


def _register(codes, cra: int, *classes: type) -> None:
    for code in codes:
        _TABLE[(code, cra)] = classes


_CS02B = tuple(range(0x0100, 0x010A)) + (0x0125, 0x0126)
_register((0x0008, 0x011B), _COMMAND, ProvideSecurityCredentialDetailsCommand)
_register((0x0008, 0x011B), _RESPONSE, ProvideSecurityCredentialDetailsResponse)
_register(_CS02B, _COMMAND, UpdateSecurityCredentialsCommand)
_register(_CS02B, _RESPONSE, UpdateSecurityCredentialsResponse)
_register((0x00CB, 0x0124), _ALERT, UpdateSecurityCredentialsAlert)
_register((0x000A,), _COMMAND, IssueSecurityCredentialsCommand)
_register((0x000A,), _RESPONSE, CertificationRequest, IssueSecurityCredentialsResponse)
_register((0x000B,), _COMMAND, UpdateDeviceCertificateCommand)
_register((0x000B,), _RESPONSE, UpdateDeviceCertificateResponse)
_register((0x000C,), _COMMAND, ProvideDeviceCertificateCommand)
_register((0x000C,), _RESPONSE, DeviceCertificate, ProvideDeviceCertificateResponse)
_register((0x000D, 0x00AB, 0x000E, 0x00AF), _COMMAND, JoinDevice)
_register((0x000D, 0x00AB, 0x000E, 0x00AF), _RESPONSE, JoinResponse)
_register((0x000F, 0x0010), _COMMAND, UnjoinDevice)
_register((0x000F, 0x0010), _RESPONSE, UnjoinResponse)
_register((0x0012,), _COMMAND, ActivateFirmware)
_register((0x0012,), _RESPONSE, CommandAccepted, ActivateFirmwareOutcome)
_register((0x00CA,), _ALERT, ActivateFirmwareAlert)
_register((0x0013,), _COMMAND, ReadDeviceJoinDetails)
_register((0x0013,), _RESPONSE, DeviceJoinDetails)
_register((0x007F,), _COMMAND, SetTime)
_register((0x007F,), _RESPONSE, SetTimeResponse)
_register((0x008C,), _COMMAND, GpfDeviceLogRestore)
_register((0x008C,), _RESPONSE, GpfDeviceLogRestoreResponse)
_register((0x00B2,), _ALERT, GpfDeviceLogBackupAlert)
_register((0x0128,), _ALERT, FirmwareTransferAlert)
_register((0x0129,), _COMMAND, ReadFirmwareVersion)
_register((0x0129,), _RESPONSE, FirmwareVersionResponse)
_register((0x0129, 0x012B), _ALERT, FirmwareVersionAlert)  # 0x012B CS09, the PPMID's activation alert [I: the shape of the DCC parser's 0x0129 alert]

ASN1_MESSAGE_CODES: frozenset[int] = frozenset(code for code, _ in _TABLE)


def expected_types(message_code: int, cra: int) -> tuple[type, ...]:
    """The payload classes a message code + CRA flag may carry (empty if none)."""
    return _TABLE.get((message_code, int(cra)), ())


def _try(cls: type, data: bytes, node: DerNode):
    try:
        try:
            obj = _from_node(cls, node)
        except Exception:  # not the plain form (_Mismatch), or no value of this type: asn1crypto decides
            obj = _from_asn1(cls, _asn1crypto(cls._SPEC).load(data, strict=True))
        fresh = _encode_obj(obj, fresh=True)
    except Exception:  # any asn1crypto complaint just means "not this type" (the TLVs are already valid)
        return None
    if fresh != data:  # slow path: the input (or an embedded certificate) may use long length forms
        try:
            (fresh_node,) = _walk(fresh, 0, len(fresh), 0)
        except (DecodeError, ValueError):
            return None
        if _canonical(fresh_node) != _canonical(node):
            return None  # some element was not taken up by the type, or was not in DER form
    object.__setattr__(obj, "_der", data)
    return obj


def decode_asn1(data: bytes, *, message_code: int, cra: int) -> Asn1Payload | DerPayload:
    """Decode the DER content of a GBCS message.

    Returns the typed payload for (message_code, cra), or `DerPayload` for well-formed DER of
    another shape. Raises `DecodeError` only for malformed DER (offsets relative to `data`).
    """
    data = bytes(data)
    end = len(data)
    if not end:
        raise DecodeError("empty ASN.1 payload", 0, "asn1")
    generic = None
    if _scan(data, end) == 1:
        for cls in _TABLE.get((message_code, int(cra)), ()):
            ident = _READERS.get(cls) or _reader(cls)
            if data[0] != ident[0]:
                continue  # every encoding of cls starts with its identifier: `_try` would refuse too
            try:
                cs, stop = _contents_at(data, 0)
                obj = _read(cls, data, 0, cs, stop)
            except Exception:  # not the exact plain form: the declarations decide, as before
                if generic is None:
                    generic = DerPayload(_walk(data, 0, end, 0))
                obj = _try(cls, data, generic.values[0])
                if obj is not None:
                    return obj
            else:
                return obj  # re-encodes to `data` up to length forms: no proof needed
    return generic or DerPayload(_walk(data, 0, end, 0))


__all__ = [
    "ASN1_MESSAGE_CODES",
    "ActivateFirmware",
    "ActivateFirmwareAlert",
    "ActivateFirmwareCode",
    "ActivateFirmwareOutcome",
    "ActivateImageResult",
    "ApplyTimeBasedCpvChecks",
    "Asn1Payload",
    "AuthorisingRemotePartyControl",
    "CANCELLATION_DATE_TIME",
    "CellUsage",
    "CertificationRequest",
    "CommandAccepted",
    "CredentialsReplacementMode",
    "DecodeError",
    "DerNode",
    "DerPayload",
    "DeviceCertificate",
    "DeviceJoinDetails",
    "DeviceLogEntry",
    "DeviceTimeStatus",
    "DeviceType",
    "FirmwareTransferAlert",
    "FirmwareTransferCode",
    "FirmwareVersionAlert",
    "FirmwareVersionResponse",
    "GpfDeviceLogBackupAlert",
    "GpfDeviceLogRestore",
    "GpfDeviceLogRestoreResponse",
    "IssueSecurityCredentialsCode",
    "IssueSecurityCredentialsCommand",
    "IssueSecurityCredentialsResponse",
    "JoinDevice",
    "JoinMethodAndRole",
    "JoinResponse",
    "JoinResponseCode",
    "KeyUsage",
    "MAX_DEPTH",
    "ProvideDeviceCertificateCode",
    "ProvideDeviceCertificateCommand",
    "ProvideDeviceCertificateResponse",
    "ProvideSecurityCredentialDetailsCommand",
    "ProvideSecurityCredentialDetailsResponse",
    "ReadDeviceJoinDetails",
    "ReadFirmwareVersion",
    "ReadResponseCode",
    "RemotePartyDetails",
    "RemotePartyRole",
    "RemotePartySeqNumberChange",
    "ReplacementOutcome",
    "RestoreOutcome",
    "SeqNumberUsage",
    "SetTime",
    "SetTimeResponse",
    "SpecialistSeqNumber",
    "StatusCode",
    "TrustAnchorCellContents",
    "TrustAnchorCellIdentifier",
    "TrustAnchorReplacement",
    "UnjoinDevice",
    "UnjoinResponse",
    "UnjoinResponseCode",
    "UpdateDeviceCertificateCode",
    "UpdateDeviceCertificateCommand",
    "UpdateDeviceCertificateResponse",
    "UpdateSecurityCredentialsAlert",
    "UpdateSecurityCredentialsCommand",
    "UpdateSecurityCredentialsOutcome",
    "UpdateSecurityCredentialsResponse",
    "decode_asn1",
    "decode_der",
    "expected_types",
]
