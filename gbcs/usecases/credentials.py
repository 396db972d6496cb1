"""Security-credential use cases (FACTS.md §5), served by every GBCS device
(`gbhub.firmware.credentials`): CS02a / CS02f read the trust anchor cells, the CS02b modes and
CS02g replace them (change of supplier is CS02bSupplierByTransCoS), CS02c / CS02d / CS02e the
device's own key pairs and certificates. Content is ASN.1 DER (gbcs.asn1); layouts as in the
RTDS COMMAND vectors.

CS02b/CS02g carry whole certificates. Give them as hex DER (`ds_certificate=`, `ka_certificate=`,
`pp_certificate=`, `path_certificate=`), or let the head-end take them from its keystore:
`fill_certificates` (called by `wan.headend.HeadEnd.build_use_case`) fills the empty ones with
`new_party`'s certificates (default: the party now in the target role) and the issuing CA's
certificate from `issuers`. `gbhub send CS02b` is CS02bSupplierBySupplier; `CS02g` is
CS02gLoadControllerBySupplier.
"""
from __future__ import annotations

import enum
from typing import Any, Iterable

from ..asn1 import (
    CANCELLATION_DATE_TIME,
    ApplyTimeBasedCpvChecks,
    AuthorisingRemotePartyControl,
    CellUsage,
    CertificationRequest,
    CredentialsReplacementMode,
    DeviceCertificate,
    IssueSecurityCredentialsCommand,
    IssueSecurityCredentialsResponse,
    KeyUsage,
    ProvideDeviceCertificateCommand,
    ProvideDeviceCertificateResponse,
    ProvideSecurityCredentialDetailsCommand,
    ProvideSecurityCredentialDetailsResponse,
    RemotePartySeqNumberChange,
    SeqNumberUsage,
    SpecialistSeqNumber,
    TrustAnchorCellIdentifier,
    TrustAnchorReplacement,
    UpdateDeviceCertificateCommand,
    UpdateDeviceCertificateResponse,
    UpdateSecurityCredentialsAlert,
    UpdateSecurityCredentialsCommand,
    UpdateSecurityCredentialsResponse,
)
from ..catalogue import RemotePartyRole
from ..codec import eui_hex
from ..frame import Message
from .common import REGISTRY, Unexpected, define
from .params import REQUIRED, Param

_R = RemotePartyRole
_M = CredentialsReplacementMode
_SERVED_BY = ("esme", "gsme", "chf", "gpf")


def _name(v: Any) -> Any:
    return v.name if isinstance(v, enum.Enum) else v


def _roles(text: str) -> tuple[RemotePartyRole, ...]:
    out = []
    for part in str(text).replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            out.append(_R(int(part, 0)) if part[0].isdigit() else _R[part.upper()])
        except (KeyError, ValueError):
            raise ValueError(f"not a remote-party role: {part!r} (one of {', '.join(r.name.lower() for r in _R)})") from None
    if not out:
        raise ValueError("no role given")
    return tuple(out)


def _check_roles(v: str) -> None:
    _roles(v)


def _usage_name(ku: Any, cu: Any) -> str:
    base = "ds" if int(ku) == KeyUsage.DIGITAL_SIGNATURE else "ka" if int(ku) == KeyUsage.KEY_AGREEMENT else str(_name(ku))
    return "pp-ka" if cu is not None and int(cu) == CellUsage.PREPAYMENT_TOP_UP else base


# -- CS02a / CS02f Provide Security Credential Details --------------------------------------------


def _b_cs02a(counter: int, *, roles: str, authorising_role: RemotePartyRole) -> bytes:
    usage = KeyUsage.KEY_AGREEMENT if authorising_role == _R.ACCESS_CONTROL_BROKER else KeyUsage.DIGITAL_SIGNATURE
    return ProvideSecurityCredentialDetailsCommand(TrustAnchorCellIdentifier(authorising_role, usage), _roles(roles)).encode()


def _i_cs02a(p: Any, m: Message | None) -> dict:
    if not isinstance(p, ProvideSecurityCredentialDetailsResponse):
        raise Unexpected(f"expected Provide Security Credential Details Response, got {type(p).__name__}")
    roles = []
    for d in p.parties:
        entry: dict[str, Any] = {"role": _name(d.remote_party_role), "status": _name(d.status)}
        if d.seq_number is not None:
            entry["seq_number"] = d.seq_number
        if d.cells is not None:
            entry["cells"] = [{"usage": _usage_name(c.key_usage, c.cell_usage), "eui": eui_hex(c.subject_unique_id),
                               "key_id": c.subject_key_identifier.hex().upper()} for c in d.cells]
        roles.append(entry)
    return {"ok": True, "roles": roles}


_CS02A_PARAMS = (
    Param("roles", "str", "supplier,network_operator", "remote-party roles to report, comma-separated "
          "(supplier, network_operator, access_control_broker, transitional_cos, recovery, ...)", check=_check_roles),
    Param("authorising_role", "enum", _R.SUPPLIER, "role of the authorising cell (the originator's)", enum=_R),
)
for _uc in ("CS02a", "CS02f"):
    define(_uc, target="esme", targets=_SERVED_BY, build=_b_cs02a, interpret=_i_cs02a, params=_CS02A_PARAMS,
           response="per role: status, seq number, trust anchor cells")


# -- CS02b / CS02g Update Security Credentials ----------------------------------------------------

# mode -> (authorising role, the role it replaces by default) [S mode names; O RTDS]
MODE_ROLES: dict[int, tuple[RemotePartyRole, RemotePartyRole]] = {
    _M.ROOT_BY_SUPPLIER: (_R.SUPPLIER, _R.ROOT),
    _M.ROOT_BY_WAN_PROVIDER: (_R.WAN_PROVIDER, _R.ROOT),
    _M.SUPPLIER_BY_SUPPLIER: (_R.SUPPLIER, _R.SUPPLIER),
    _M.NETWORK_OPERATOR_BY_NETWORK_OPERATOR: (_R.NETWORK_OPERATOR, _R.NETWORK_OPERATOR),
    _M.ACB_BY_ACB: (_R.ACCESS_CONTROL_BROKER, _R.ACCESS_CONTROL_BROKER),
    _M.WAN_PROVIDER_BY_WAN_PROVIDER: (_R.WAN_PROVIDER, _R.WAN_PROVIDER),
    _M.TRANS_COS_BY_TRANS_COS: (_R.TRANSITIONAL_COS, _R.TRANSITIONAL_COS),
    _M.SUPPLIER_BY_TRANS_COS: (_R.TRANSITIONAL_COS, _R.SUPPLIER),
    _M.ANY_EXCEPT_ABNORMAL_ROOT_BY_RECOVERY: (_R.RECOVERY, _R.RECOVERY),
    _M.ANY_BY_CONTINGENCY: (_R.ROOT, _R.ROOT),
    _M.LOAD_CONTROLLER_BY_LOAD_CONTROLLER: (_R.LOAD_CONTROLLER, _R.LOAD_CONTROLLER),
    _M.LOAD_CONTROLLER_BY_SUPPLIER: (_R.SUPPLIER, _R.LOAD_CONTROLLER),
}
_ORIGINATOR = {_R.SUPPLIER: "supplier", _R.ACCESS_CONTROL_BROKER: "acb", _R.NETWORK_OPERATOR: "network_operator",
               _R.TRANSITIONAL_COS: "transitional_cos", _R.RECOVERY: "recovery", _R.WAN_PROVIDER: "wan_provider",
               _R.LOAD_CONTROLLER: "load_controller", _R.ROOT: "root"}
# use case -> mode (MessageCode names)
CS02B_MODES: dict[str, int] = {
    "CS02bRootBySupplier": _M.ROOT_BY_SUPPLIER, "CS02bRootByWanProvider": _M.ROOT_BY_WAN_PROVIDER,
    "CS02bSupplierBySupplier": _M.SUPPLIER_BY_SUPPLIER,
    "CS02bNetworkOperatorByNetworkOperator": _M.NETWORK_OPERATOR_BY_NETWORK_OPERATOR,
    "CS02bAccessControlBrokerByACB": _M.ACB_BY_ACB, "CS02bWanProviderByWanProvider": _M.WAN_PROVIDER_BY_WAN_PROVIDER,
    "CS02bTransCoSByTransCoS": _M.TRANS_COS_BY_TRANS_COS, "CS02bSupplierByTransCoS": _M.SUPPLIER_BY_TRANS_COS,
    "CS02bAnyExceptAbnormalRootByRecovery": _M.ANY_EXCEPT_ABNORMAL_ROOT_BY_RECOVERY,
    "CS02bAnyByContingency": _M.ANY_BY_CONTINGENCY,
    "CS02gLoadControllerByLoadController": _M.LOAD_CONTROLLER_BY_LOAD_CONTROLLER,
    "CS02gLoadControllerBySupplier": _M.LOAD_CONTROLLER_BY_SUPPLIER,
}
_CERT_PARAMS = ("ds_certificate", "ka_certificate", "pp_certificate")


def _cs02b_builder(mode: int):
    authoriser, default_target = MODE_ROLES[mode]

    def build(counter: int, *, new_party: bytes | None, target_role: RemotePartyRole, ds_certificate: bytes,
              ka_certificate: bytes, pp_certificate: bytes, path_certificate: bytes, floor: int, floors: bool,
              execution: Any, time_checks: bool, seq_number: int | None) -> bytes:
        target = _R(target_role)
        replacements = []
        for der, usage, cu in ((ds_certificate, KeyUsage.DIGITAL_SIGNATURE, None),
                               (ka_certificate, KeyUsage.KEY_AGREEMENT, None),
                               (pp_certificate, KeyUsage.KEY_AGREEMENT, CellUsage.PREPAYMENT_TOP_UP)):
            if der:
                replacements.append(TrustAnchorReplacement(der, TrustAnchorCellIdentifier(target, usage, cu)))
        if not replacements:
            raise ValueError("give at least one of ds_certificate, ka_certificate, pp_certificate (hex DER), or "
                             "new_party with a head-end keystore that holds its certificates")
        # seq number floors as RTDS sets them [O]: none for TransCoS-by-TransCoS
        specialist = ((SpecialistSeqNumber(SeqNumberUsage.PREPAYMENT_TOP_UP, 0),) if target == _R.SUPPLIER else None)
        new_floor = other = None
        if mode == _M.TRANS_COS_BY_TRANS_COS or not floors:
            specialist = None
        elif target == authoriser:
            new_floor = floor
        else:
            other = (RemotePartySeqNumberChange(target, floor, specialist),)
            specialist = None
        control = AuthorisingRemotePartyControl(
            mode, counter if seq_number is None else seq_number,
            apply_time_based_cpv_checks=None if time_checks else ApplyTimeBasedCpvChecks.DISAPPLY,
            authorising_cell=None if mode == _M.ACB_BY_ACB else TrustAnchorCellIdentifier(authoriser, KeyUsage.DIGITAL_SIGNATURE),
            new_floor_seq_number=new_floor, new_specialist_floor_seq_numbers=specialist if new_floor is not None else None,
            other_seq_number_changes=other)
        when = CANCELLATION_DATE_TIME if execution == "never" else execution
        paths = (path_certificate,) if path_certificate else ()
        return UpdateSecurityCredentialsCommand(control, tuple(replacements), paths, when).encode()

    return build, default_target


def _i_cs02b(p: Any, m: Message | None) -> dict:
    if not isinstance(p, (UpdateSecurityCredentialsResponse, UpdateSecurityCredentialsAlert)):
        raise Unexpected(f"expected Update Security Credentials Response, got {type(p).__name__}")
    out: dict[str, Any] = {}
    if isinstance(p, UpdateSecurityCredentialsAlert):
        out["alert_code"] = f"0x{p.alert_code:04X}"
        out["execution"] = p.execution_date_time.isoformat().replace("+00:00", "Z")
    outcome = p.outcome
    if outcome is None:
        return {"ok": True, "accepted": True, "executed": False}
    reps = [{"cell": f"{_name(r.affected_cell.remote_party_role)}/{_usage_name(r.affected_cell.key_usage, r.affected_cell.cell_usage)}",
             "status": _name(r.status), "from": eui_hex(r.existing_subject_unique_id),
             "to": eui_hex(r.replacing_subject_unique_id), "key_id": r.replacing_subject_key_id.hex().upper()}
            for r in outcome.replacement_outcomes]
    out.update(ok=all(r["status"] == "SUCCESS" for r in reps), accepted=True, executed=True,
               mode=_name(outcome.credentials_replacement_mode), seq_number=outcome.authorising_seq_number,
               replacements=reps,
               floors={str(_name(c.remote_party_role)).lower(): c.floor_seq_number for c in outcome.seq_number_changes})
    return out


for _uc, _mode in CS02B_MODES.items():
    _build, _target = _cs02b_builder(_mode)
    _authoriser = MODE_ROLES[_mode][0]
    # only the CHF holds a WAN-provider cell [O RTDS CS02bWPByWP]
    define(_uc, target="chf" if _mode == _M.WAN_PROVIDER_BY_WAN_PROVIDER else "esme",
           targets=("chf",) if _mode == _M.WAN_PROVIDER_BY_WAN_PROVIDER else _SERVED_BY, build=_build, interpret=_i_cs02b,
           originator=_ORIGINATOR[_authoriser], response="command accepted, with the per-cell outcome unless future-dated",
           params=(
               Param("new_party", "eui", None, "the organisation whose certificates go in (default: the party now in "
                     "the target role; CS02bSupplierByTransCoS: another supplier in the keystore); the head-end "
                     "takes its certificates from its keystore"),
               Param("target_role", "enum", _target, "the role whose cells are replaced", enum=_R),
               Param("ds_certificate", "hex", b"", "DER of the new Digital Signing certificate (default: new_party's)"),
               Param("ka_certificate", "hex", b"", "DER of the new Key Agreement certificate (default: new_party's)"),
               Param("pp_certificate", "hex", b"", "DER of the new prepayment KA certificate (supplier; default: new_party's)"),
               Param("path_certificate", "hex", b"", "DER of the issuing CA certificate (default: the head-end's CA)"),
               Param("floor", "int", 0, "new floor seq number of the replaced role", min=0),
               Param("floors", "bool", True, "set the replaced role's floor seq numbers (floor=, prepayment 0)"),
               Param("execution", "when", None, "immediate, an execution date-time, or never (cancels a pending one)"),
               Param("time_checks", "bool", False, "apply the time-based certificate path checks"),
               Param("seq_number", "int", None, "authorising seq number (default: the originator counter)", min=0),
           ))


def fill_certificates(use_case: str, params: dict, keystore: Any, *, parties: dict[RemotePartyRole, bytes],
                      issuers: Iterable[bytes] = ()) -> dict:
    """`params` of a CS02b/CS02g use case with empty certificate parameters taken from `keystore`
    (a gbcs.keystore.Keystore): `new_party`'s (default: for a change of supplier the keystore's
    first supplier other than `parties[SUPPLIER]`; else `parties[target role]`, else the first
    keystore organisation of that role) DS / KA / prepayment-KA certificates, and the issuer
    among `issuers` (DER) as the path certificate. Other use cases: `params` unchanged."""
    mode = CS02B_MODES.get(use_case)
    if mode is None:
        return params
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    definition = REGISTRY[use_case]
    out = {k: definition.param(k).coerce(v) if k in definition.param_names else v for k, v in params.items()}
    target = _R(out.get("target_role", MODE_ROLES[mode][1]))
    party = out.get("new_party")
    if party is None and mode == _M.SUPPLIER_BY_TRANS_COS:  # change of supplier: another supplier
        party = next((e for e in keystore.euis() if keystore.role(e) == int(_R.SUPPLIER)
                      and e != parties.get(_R.SUPPLIER) and keystore.certificate(e, "ds") is not None), None)
    party = party or parties.get(target)
    if party is None:
        party = next((e for e in keystore.euis() if keystore.role(e) == int(target)), None)
    if party is None:
        return out
    names = {"ds_certificate": "ds", "ka_certificate": "ka"}
    if target == _R.SUPPLIER:
        names["pp_certificate"] = "pp-ka"
    if not any(out.get(k) for k in _CERT_PARAMS):
        for key, usage in names.items():
            cert = keystore.certificate(party, usage)
            if cert is not None:
                out[key] = cert.public_bytes(Encoding.DER)
    if not out.get("path_certificate"):
        first = next((out[k] for k in _CERT_PARAMS if out.get(k)), None)
        if first:
            issuer = x509.load_der_x509_certificate(first).issuer
            for der in issuers:
                if x509.load_der_x509_certificate(der).subject == issuer:
                    out["path_certificate"] = der
                    break
    return out


# -- CS02c Issue Security Credentials --------------------------------------------------------------


class _KeyUsageParam(enum.IntEnum):
    DIGITAL_SIGNATURE = KeyUsage.DIGITAL_SIGNATURE
    KEY_AGREEMENT = KeyUsage.KEY_AGREEMENT


def _b_cs02c(counter: int, *, key_usage: _KeyUsageParam) -> bytes:
    return IssueSecurityCredentialsCommand(KeyUsage(int(key_usage))).encode()


def _i_cs02c(p: Any, m: Message | None) -> dict:
    if isinstance(p, CertificationRequest):
        return {"ok": True, "certification_request": p.certification_request.hex().upper()}
    if isinstance(p, IssueSecurityCredentialsResponse):
        return {"ok": False, "code": _name(p.code)}
    raise Unexpected(f"expected a certification request, got {type(p).__name__}")


define("CS02c", target="esme", targets=_SERVED_BY, build=_b_cs02c, interpret=_i_cs02c, params=(
    Param("key_usage", "enum", _KeyUsageParam.DIGITAL_SIGNATURE, "the key pair to make", enum=_KeyUsageParam),
), response="a PKCS#10 certification request, or an error code")


# -- CS02d Update Device Certificates on Device -----------------------------------------------------


def _b_cs02d(counter: int, *, certificate: bytes) -> bytes:
    if not certificate:
        raise ValueError("give certificate= (hex DER of the device certificate for the key pair CS02c made)")
    return UpdateDeviceCertificateCommand(certificate).encode()


def _i_code(p: Any, m: Message | None) -> dict:
    if not isinstance(p, (UpdateDeviceCertificateResponse, ProvideDeviceCertificateResponse)):
        raise Unexpected(f"expected a response code, got {type(p).__name__}")
    return {"ok": int(p.code) == 0, "code": _name(p.code)}


define("CS02d", target="esme", targets=_SERVED_BY, build=_b_cs02d, interpret=_i_code, params=(
    Param("certificate", "hex", REQUIRED, "hex DER of the new device certificate"),
), response="ASN.1 response code")


# -- CS02e Provide Device Certificates from Device ---------------------------------------------------


def _b_cs02e(counter: int, *, key_usage: _KeyUsageParam) -> bytes:
    return ProvideDeviceCertificateCommand(KeyUsage(int(key_usage))).encode()


def _i_cs02e(p: Any, m: Message | None) -> dict:
    if isinstance(p, DeviceCertificate):
        from cryptography import x509

        from ..keystore import certificate_device_eui

        cert = x509.load_der_x509_certificate(p.certificate)
        eui = certificate_device_eui(cert)
        return {"ok": True, "eui": eui_hex(eui) if eui else None, "certificate": p.certificate.hex().upper()}
    return _i_code(p, m)


define("CS02e", target="esme", targets=_SERVED_BY, build=_b_cs02e, interpret=_i_cs02e, params=(
    Param("key_usage", "enum", _KeyUsageParam.DIGITAL_SIGNATURE, "which certificate", enum=_KeyUsageParam),
), response="the device certificate, or an error code")

# `gbhub send CS02b` / `CS02g`: the supplier's own modes
ALIASES = {"CS02b": "CS02bSupplierBySupplier", "CS02g": "CS02gLoadControllerBySupplier"}
assert all(a in REGISTRY for a in ALIASES.values())
