"""The trust anchor cells every GBCS device keeps (FACTS.md §5), what replaces them (CS02b /
CS02g, checked and answered by `firmware.credentials`), and the device's own key pairs as CS02d
left them. `GbcsDevice` reads its remote parties from here (`DeviceTrust`).

**Trust anchor cells.** A device holds one cell per {remote-party role, key usage, cell usage}
(`Cell`): the subject's EUI, its subject key identifier, public key and certificate. Commissioning
fills them from the premises' organisations, one party per role (the first; `roles_for` says
which roles a device kind holds: the CHF alone holds a WAN-provider cell [O RTDS CS02aSignature:
the ESME answers TRUST_ANCHOR_NOT_FOUND, CS02bWPByWP goes to the CHF]). A device accepts commands
only from the parties in its cells (`DeviceTrust.by_eui`): once a cell is replaced, the old party
is an unknown remote party (alert 0x8F3D, logged, nothing changes) and the new one is accepted.
Replacements are stored in NVM (namespace `trust_cells`) inside the command's transaction, so they
commit with its counter before the response leaves, and survive restarts.

**CS02b / CS02g rules** (`MODES`: mode -> authorising role, roles it may replace) [S mode names;
O RTDS]. The message code fixes the mode (a mismatch is malformed, 0x8F1E). The authorising cell
must be the mode's authoriser's Digital Signing cell and hold the originator, except that the
ACB may authorise a handover (SRV 6.21) of the supplier / network operator cells [O RTDS
CS02b...Handover from the ACB]; the authorising seq number must be above the role's current seq
number (CS02a `seq_number`; else refused as a replay, 0x8F53); a target cell of a role the mode
may not replace refuses the whole command (0x8F30). All refusals change nothing. Then each
replacement gets its own status [O RTDS IMMEDIATE_ERROR: a partial success is kept]:
certificate not parseable, key usage not exactly the cell's, no EUI, or (with
`applyTimeBasedCPVChecks` = apply) outside its validity -> BAD_CERTIFICATE (the certificate's
role is not compared with the cell's: the reference device put supplier certificates into
load-controller cells [O RTDS CS02g]); not signed by a
certificate of the certification path -> NO_TRUST_ANCHOR [O RTDS: a certificate from issuer Z2
with a Z1 path]; a cell the device does not hold -> TRUST_ANCHOR_NOT_FOUND. Seq numbers after success: the
authorising role's = the authorising seq number, then each floor (the new floor applies to the
authorising role [O RTDS recovery, handover, ACB]; `other_seq_number_changes` to theirs) sets
that role's seq number and the anti-replay counter of the party now in its cells (a new party
starts at the floor; the same party keeps max(counter, floor)) [I]. Specialist (prepayment)
floors are recorded in the seq numbers only [I].

**Future-dated** CS02b/CS02g (execution date-time in the future): answered "command accepted"
(no outcome) at once, kept in NVM (`firmware.future`, action "credentials": `CREDENTIALS_ACTION`;
at most `PENDING_LIMIT` of them), executed at that time on the device clock, which sends alert 0x8F66/0x8F67 in
message code 0x00CB (CS02g: 0x0124) to the originator, signed, with the outcome [O RTDS]. The
"never" date (9999-12-31T23:59:59Z) cancels every pending one of that message code from that
originator [I]; answered "command accepted".

ACB-by-ACB is accepted MAC-only by every device, the CHF included (GBCS signs it for the CHF
[S FACTS §5]; the head-end MACs non-critical commands only) [I].

Not modelled: the root cell. The certification path is not checked up to a root, so a path
certificate with a broken signature is not noticed [I] (RTDS publishes no root certificate; the
reference device answered NO_TRUST_ANCHOR for one [O RTDS CS02g IMMEDIATE_ERROR]: fail-next).

Confidence tags as in FACTS.md.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import functools
import hashlib
import logging
import weakref
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gbcs.asn1 import (
    ApplyTimeBasedCpvChecks,
    CellUsage,
    CredentialsReplacementMode,
    KeyUsage,
    RemotePartySeqNumberChange,
    ReplacementOutcome,
    StatusCode,
    TrustAnchorCellIdentifier,
    UpdateSecurityCredentialsAlert,
    UpdateSecurityCredentialsCommand,
    UpdateSecurityCredentialsOutcome,
    decode_asn1,
)
from gbcs.catalogue import MessageCode, RemotePartyRole
from gbcs.codec import eui_hex
from gbcs.frame import Message
from gbcs.keystore import certificate_device_eui, certificate_org_eui, certificate_role
from gbcs.usecases.credentials import CS02B_MODES

from .future import FdaOutcome

log = logging.getLogger("gbhub.credentials")

_R = RemotePartyRole
DS, KA = "ds", "ka"
MANAGEMENT, PREPAYMENT = int(CellUsage.MANAGEMENT), int(CellUsage.PREPAYMENT_TOP_UP)
CELLS_NS = "trust_cells"
SEQ_NS = "trust_seq"
OWN_NS = "own_credentials"
KEYPAIR_NS = "credential_key_pairs"
CREDENTIALS_ACTION = "credentials"  # future-dated CS02b/CS02g (firmware.future action)

_ALL_ROLES = frozenset(RemotePartyRole)
_ROLES_BY_KIND: dict[str, frozenset[RemotePartyRole]] = {"chf": _ALL_ROLES}
_DEFAULT_ROLES = _ALL_ROLES - {_R.WAN_PROVIDER}  # [O RTDS CS02aSignature ERROR: ESME has none]


def roles_for(kind: str) -> frozenset[RemotePartyRole]:
    """The remote-party roles a device kind holds trust anchor cells for [I/O]."""
    return _ROLES_BY_KIND.get(kind, _DEFAULT_ROLES)


@dataclass(frozen=True)
class Mode:
    authoriser: RemotePartyRole
    targets: frozenset[RemotePartyRole]


_M = CredentialsReplacementMode
MODES: dict[int, Mode] = {
    _M.ROOT_BY_SUPPLIER: Mode(_R.SUPPLIER, frozenset({_R.ROOT})),
    _M.ROOT_BY_WAN_PROVIDER: Mode(_R.WAN_PROVIDER, frozenset({_R.ROOT})),
    _M.SUPPLIER_BY_SUPPLIER: Mode(_R.SUPPLIER, frozenset({_R.SUPPLIER})),
    _M.NETWORK_OPERATOR_BY_NETWORK_OPERATOR: Mode(_R.NETWORK_OPERATOR, frozenset({_R.NETWORK_OPERATOR})),
    _M.ACB_BY_ACB: Mode(_R.ACCESS_CONTROL_BROKER, frozenset({_R.ACCESS_CONTROL_BROKER})),
    _M.WAN_PROVIDER_BY_WAN_PROVIDER: Mode(_R.WAN_PROVIDER, frozenset({_R.WAN_PROVIDER})),
    _M.TRANS_COS_BY_TRANS_COS: Mode(_R.TRANSITIONAL_COS, frozenset({_R.TRANSITIONAL_COS})),
    _M.SUPPLIER_BY_TRANS_COS: Mode(_R.TRANSITIONAL_COS, frozenset({_R.SUPPLIER})),
    # "except abnormal root": every cell but the root's [I]
    _M.ANY_EXCEPT_ABNORMAL_ROOT_BY_RECOVERY: Mode(_R.RECOVERY, _ALL_ROLES - {_R.ROOT}),
    _M.ANY_BY_CONTINGENCY: Mode(_R.ROOT, _ALL_ROLES),  # [U] the contingency key sits with the root
    _M.LOAD_CONTROLLER_BY_LOAD_CONTROLLER: Mode(_R.LOAD_CONTROLLER, frozenset({_R.LOAD_CONTROLLER})),
    _M.LOAD_CONTROLLER_BY_SUPPLIER: Mode(_R.SUPPLIER, frozenset({_R.LOAD_CONTROLLER})),
}
# message code -> mode [S GP; O RTDS]
MODE_OF_CODE: dict[int, int] = {MessageCode[name]: mode for name, mode in CS02B_MODES.items()}
_HANDOVER_ROLES = frozenset({_R.SUPPLIER, _R.NETWORK_OPERATOR})  # SRV 6.21 [O RTDS]


# ============================================================================ certificates
class CertificateError(ValueError):
    """Outside input that is not a usable GB certificate."""


@dataclass(frozen=True)
class CertificateInfo:
    """What a device reads out of an organisation or device certificate."""

    der: bytes
    usage: str | None  # "ds" / "ka" when keyUsage is exactly one of them
    role: int | None  # organisation certificates: OU
    eui: bytes | None  # x500UniqueIdentifier (organisation) or hardwareModuleName (device)
    key_id: bytes
    public_key: ec.EllipticCurvePublicKey
    not_before: _dt.datetime
    not_after: _dt.datetime
    issuer: bytes  # DER of the issuer name
    _cert: Any = dataclasses.field(repr=False, compare=False, default=None)

    def issued_by(self, issuer: "CertificateInfo") -> bool:
        if issuer._cert.subject.public_bytes() != self.issuer:
            return False
        try:
            issuer.public_key.verify(self._cert.signature, self._cert.tbs_certificate_bytes,
                                     ec.ECDSA(self._cert.signature_hash_algorithm))
        except (InvalidSignature, TypeError, ValueError):
            return False
        return True


def key_id_of(public_key: ec.EllipticCurvePublicKey) -> bytes:
    """8-byte key identifier for a key with no certificate (RFC 7093 method 1, like tools.pki)."""
    point = public_key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return hashlib.sha256(point).digest()[:8]


def parse_certificate(der: bytes) -> CertificateInfo:
    """A P-256 certificate from outside (a command); CertificateError for anything else."""
    try:
        cert = x509.load_der_x509_certificate(bytes(der))
        public_key = cert.public_key()
        if not isinstance(public_key, ec.EllipticCurvePublicKey) or public_key.curve.name != "secp256r1":
            raise CertificateError("not a P-256 key")
        try:
            ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
            bits = {DS: ku.digital_signature, KA: ku.key_agreement, "other": ku.content_commitment
                    or ku.key_encipherment or ku.data_encipherment or ku.key_cert_sign or ku.crl_sign}
            usage = None if bits["other"] or bits[DS] == bits[KA] else (DS if bits[DS] else KA)
        except x509.ExtensionNotFound:
            usage = None
        try:
            key_id = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
        except x509.ExtensionNotFound:
            key_id = key_id_of(public_key)
        role = certificate_role(cert)
        eui = certificate_org_eui(cert) if role is not None else certificate_device_eui(cert)
        return CertificateInfo(bytes(der), usage, role, eui, bytes(key_id), public_key, cert.not_valid_before_utc,
                               cert.not_valid_after_utc, cert.issuer.public_bytes(), cert)
    except CertificateError:
        raise
    except Exception as exc:  # noqa: BLE001 - any parse failure of outside input is one error
        raise CertificateError(f"certificate does not parse: {exc}") from None


# ============================================================================ trust anchor cells
@dataclass(frozen=True)
class Cell:
    """One trust anchor cell's contents."""

    role: int
    usage: str  # "ds" | "ka"
    cell_usage: int
    eui: bytes
    key_id: bytes
    public_key: ec.EllipticCurvePublicKey
    certificate: bytes = b""
    owner_role: int | None = None  # the role its certificate names, when known

    @property
    def key(self) -> tuple[int, str, int]:
        return (self.role, self.usage, self.cell_usage)

    def to_nvm(self) -> dict:
        spki = self.public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        return {"eui": eui_hex(self.eui), "key_id": self.key_id.hex(), "certificate": self.certificate,
                "public_key": spki, "owner_role": self.owner_role}

    @classmethod
    def from_nvm(cls, key: str, d: dict) -> "Cell":
        role, usage, cell_usage = key.split("/")
        public_key = serialization.load_der_public_key(d["public_key"])
        return cls(int(role), usage, int(cell_usage), bytes.fromhex(d["eui"]), bytes.fromhex(d["key_id"]),
                   public_key, d.get("certificate") or b"", d.get("owner_role"))  # type: ignore[arg-type]


@functools.lru_cache(maxsize=1024)
def _certificate_key_id(der: bytes) -> bytes | None:
    """Subject key id of a commissioned certificate (every device of a premises reads the same)."""
    try:
        return parse_certificate(der).key_id
    except CertificateError:
        return None


def _cell_key(key: tuple[int, str, int]) -> str:
    return f"{key[0]}/{key[1]}/{key[2]}"


def cell_of(identifier: TrustAnchorCellIdentifier) -> tuple[int, str, int] | None:
    """The cell key a TrustAnchorCellIdentifier names; None for a key usage no cell has."""
    ku = int(identifier.key_usage)
    usage = DS if ku == KeyUsage.DIGITAL_SIGNATURE else KA if ku == KeyUsage.KEY_AGREEMENT else None
    if usage is None:
        return None
    return (int(identifier.remote_party_role), usage, int(identifier.effective_cell_usage))


# base trust anchors -> {(roles, party class): (cells, by EUI, by role)} of devices holding only
# the commissioned cells (read-only; a replacement copies them first)
_COMMISSIONED: "weakref.WeakKeyDictionary[Any, dict]" = weakref.WeakKeyDictionary()


class DeviceTrust:
    """A device's trust anchor cells: the commissioned ones (`base`, shared by the premises)
    overlaid with the replacements in the device's NVM. Same reading API as `TrustAnchors`."""

    def __init__(self, base: Any, nvm, roles: frozenset[RemotePartyRole], party: Any) -> None:
        self.base = base
        self._party = party  # the RemoteParty class (firmware.gbcs_device)
        self._nvm = nvm
        self._roles = roles
        self._cells: dict[tuple[int, str, int], Cell] | None = None
        self._by_eui: dict[bytes, Any] = {}
        self._by_role: dict[int, Any] = {}

    @classmethod
    def of(cls, device: Any, trust: Any, party: Any) -> "DeviceTrust":
        """`device`'s cells over `trust` (the premises' commissioned TrustAnchors, or another
        device's DeviceTrust: its base); `party` makes a RemoteParty."""
        base = trust.base if isinstance(trust, DeviceTrust) else trust
        return cls(base, device.nvm, roles_for(device.kind), party)

    # -- cells
    def _initial(self) -> dict[tuple[int, str, int], Cell]:
        cells: dict[tuple[int, str, int], Cell] = {}
        for role in RemotePartyRole:
            party = self.base.by_role(role) if role in self._roles else None
            if party is None:
                continue
            certs = dict(getattr(party, "certificates", ()) or ())
            slots = ((DS, party.ds_public, "ds", MANAGEMENT), (KA, party.ka_public, "ka", MANAGEMENT),
                     (KA, getattr(party, "pp_public", None) if role == _R.SUPPLIER else None, "pp-ka", PREPAYMENT))
            for usage, key, name, cu in slots:
                if key is None:
                    continue
                der = certs.get(name, b"")
                key_id = (_certificate_key_id(der) if der else None) or key_id_of(key)
                cells[(int(role), usage, cu)] = Cell(int(role), usage, cu, party.eui, key_id, key, der, int(role))
        return cells

    def cells(self) -> dict[tuple[int, str, int], Cell]:
        if self._cells is None:
            replaced = self._nvm.items(CELLS_NS)
            if not replaced:  # as commissioned: the cells and indexes every such device shares
                shared = _COMMISSIONED.get(self.base)
                if shared is None:
                    try:
                        shared = _COMMISSIONED[self.base] = {}
                    except TypeError:  # a base that cannot be weakly referenced: not shared
                        shared = {}
                entry = shared.get((self._roles, self._party))
                if entry is None:
                    self._cells = self._initial()
                    self._index()
                    entry = shared[(self._roles, self._party)] = (self._cells, self._by_eui, self._by_role)
                self._cells, self._by_eui, self._by_role = entry
                return self._cells
            cells = self._initial()
            for key, value in replaced:
                try:
                    cell = Cell.from_nvm(key, value)
                except (ValueError, KeyError, TypeError) as exc:
                    log.warning("trust anchor cell %s unreadable in NVM: %s", key, exc)
                    continue
                cells[cell.key] = cell
            self._cells = cells
            self._index()
        return self._cells

    def cell(self, role: int, usage: str, cell_usage: int = MANAGEMENT) -> Cell | None:
        return self.cells().get((int(role), usage, int(cell_usage)))

    def replaced(self, role: int, usage: str, cell_usage: int = MANAGEMENT) -> Cell | None:
        """The cell if a CS02b/CS02g replaced it; None while it is as commissioned."""
        key = (int(role), usage, int(cell_usage))
        return self.cell(*key) if self._nvm.get(CELLS_NS, _cell_key(key)) is not None else None

    def cells_of(self, role: int) -> list[Cell]:
        """A role's cells in the order CS02a lists them: DS, KA, KA prepayment [O RTDS]."""
        order = {(DS, MANAGEMENT): 0, (KA, MANAGEMENT): 1, (KA, PREPAYMENT): 2}
        found = [c for c in self.cells().values() if c.role == int(role)]
        return sorted(found, key=lambda c: order.get((c.usage, c.cell_usage), 9))

    def holds(self, key: tuple[int, str, int]) -> bool:
        """Whether the device has this cell at all (a role it holds; prepayment only for suppliers)."""
        role, usage, cu = key
        try:
            rp = RemotePartyRole(role)
        except ValueError:
            return False
        return rp in self._roles and (cu == MANAGEMENT or (rp == _R.SUPPLIER and usage == KA))

    def replace(self, cell: Cell) -> None:
        """Store a replacement (caller's NVM transaction)."""
        self._cells = dict(self.cells())  # copy on write: the commissioned cells may be shared
        self._nvm.put(CELLS_NS, _cell_key(cell.key), cell.to_nvm())
        self._nvm.on_rollback(self.forget)
        self._cells[cell.key] = cell
        self._index()

    def forget(self) -> None:
        self._cells = None  # reloaded from NVM on next use

    def seq(self, role: int) -> int:
        return int(self._nvm.get(SEQ_NS, str(int(role)), 0))

    def set_seq(self, role: int, value: int, usage: str = "") -> None:
        self._nvm.put(SEQ_NS, f"{int(role)}{'/' + usage if usage else ''}", int(value))

    # -- parties (the `TrustAnchors` reading API)
    def _index(self) -> None:
        RemoteParty = self._party
        cells = self._cells or {}
        by_eui: dict[bytes, Any] = {}
        groups: dict[bytes, list[Cell]] = {}
        for c in cells.values():
            if c.cell_usage == MANAGEMENT:
                groups.setdefault(c.eui, []).append(c)
        for eui, group in groups.items():
            own = [c for c in group if c.owner_role == c.role]
            role = (own or group)[0].role
            pick = lambda usage: next((c.public_key for c in sorted(group, key=lambda c: c.role != role)  # noqa: E731
                                       if c.usage == usage), None)
            pp = cells.get((int(_R.SUPPLIER), KA, PREPAYMENT))
            by_eui[eui] = RemoteParty(eui, RemotePartyRole(role), pick(DS), pick(KA),
                                      pp_public=pp.public_key if pp is not None and pp.eui == eui else None)
        by_role: dict[int, Any] = {}
        for role in {c.role for c in cells.values()}:
            ds, ka = cells.get((role, DS, MANAGEMENT)), cells.get((role, KA, MANAGEMENT))
            head = ka or ds
            if head is None:
                continue
            pp = cells.get((role, KA, PREPAYMENT))
            by_role[role] = RemoteParty(head.eui, RemotePartyRole(role), ds.public_key if ds else None,
                                        ka.public_key if ka else None,
                                        pp_public=pp.public_key if pp is not None else None)
        self._by_eui, self._by_role = by_eui, by_role

    def by_eui(self, eui: bytes) -> Any:
        if self._cells is None:
            self.cells()
        return self._by_eui.get(eui)

    def by_role(self, role: RemotePartyRole) -> Any:
        if self._cells is None:
            self.cells()
        return self._by_role.get(int(role))

    def add(self, party: Any) -> None:
        """Commission one more party (its role's cells, if it is the first of its role)."""
        self.base.add(party)
        self.forget()

    def __iter__(self):
        if self._cells is None:
            self.cells()
        return iter(list(self._by_eui.values()))

    def prepayment_key(self) -> ec.EllipticCurvePublicKey | None:
        cell = self.cell(_R.SUPPLIER, KA, PREPAYMENT)
        return None if cell is None else cell.public_key


# ============================================================================ own credentials
def own_credentials(device: Any, credentials: Any) -> Any:
    """The device's key pairs and certificates: commissioning's, overlaid with CS02d's in NVM."""
    stored = dict(device.nvm.items(OWN_NS))
    if not stored:
        return credentials
    keys = {"ka": credentials.ka, "ds": credentials.ds}
    certs = dict(credentials.certificates)
    for usage, d in stored.items():
        try:
            keys[usage] = serialization.load_der_private_key(d["key"], None)  # type: ignore[assignment]
            certs[usage] = d["certificate"]
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("%s %s: own %s credentials unreadable in NVM: %s", device.kind, device.eui_hex, usage, exc)
    return dataclasses.replace(credentials, ka=keys["ka"], ds=keys["ds"], certificates=tuple(certs.items()))


def inject_failure(device: Any, message_code: int, code: int) -> None:
    """Answer the next CS02c/CS02d (`message_code`) with response code `code` (RAM only)."""
    device.ram.setdefault("credential_failures", {})[int(message_code)] = int(code)


def _injected(device: Any, message_code: int) -> int | None:
    return device.ram.get("credential_failures", {}).pop(int(message_code), None)


def _apply(device: Any, cmd: UpdateSecurityCredentialsCommand, mode: Mode,
           forced: int | None = None) -> UpdateSecurityCredentialsOutcome:
    """Replace the cells (each with its own status, or `forced` for all: fail-next) and set the
    seq numbers (caller's transaction)."""
    trust: DeviceTrust = device.trust
    control = cmd.control
    path = []
    for der in cmd.certification_path_certificates:
        try:
            path.append(parse_certificate(der))
        except CertificateError:
            pass
    check_time = control.apply_time_based_cpv_checks == ApplyTimeBasedCpvChecks.APPLY
    now = _dt.datetime.fromtimestamp(device.clock.now(), _dt.timezone.utc)
    results = []
    changed_euis: dict[int, set[bytes]] = {}
    for r in cmd.replacements:
        key = cell_of(r.target_cell)
        existing = None if key is None else trust.cell(*key)
        status, new = _check_replacement(trust, key, r.certificate, path, check_time, now)
        if forced is not None:
            status, new = _status(forced), None
        if status == StatusCode.SUCCESS and new is not None and key is not None:
            trust.replace(new)
            if existing is None or existing.eui != new.eui:
                changed_euis.setdefault(key[0], set()).add(new.eui)
        ex_eui = existing.eui if existing else b"\0" * 8
        ex_id = existing.key_id if existing else b""
        results.append(ReplacementOutcome(r.target_cell, status, ex_eui, ex_id,
                                          new.eui if status == StatusCode.SUCCESS and new else ex_eui,
                                          new.key_id if status == StatusCode.SUCCESS and new else ex_id))
    trust.set_seq(mode.authoriser, control.authorising_seq_number)
    changes = []
    if control.new_floor_seq_number is not None:
        changes.append(RemotePartySeqNumberChange(mode.authoriser, control.new_floor_seq_number,
                                                  control.new_specialist_floor_seq_numbers))
    changes.extend(control.other_seq_number_changes or ())
    for change in changes:
        role = int(change.remote_party_role)
        trust.set_seq(role, change.floor_seq_number)
        for sp in change.specialist_floor_seq_numbers or ():
            trust.set_seq(role, sp.seq_number, usage=f"specialist{int(sp.usage)}")
        for c in trust.cells_of(role):
            if c.cell_usage == MANAGEMENT:
                _set_counter_floor(device, c.eui, change.floor_seq_number, c.eui in changed_euis.get(role, ()))
    return UpdateSecurityCredentialsOutcome(control.authorising_seq_number, control.credentials_replacement_mode,
                                            tuple(changes), tuple(results))


def _status(code: int) -> StatusCode | int:
    try:
        return StatusCode(code)
    except ValueError:
        return code


def _set_counter_floor(device: Any, eui: bytes, floor: int, new_party: bool) -> None:
    last = device.counters.last(eui)
    value = floor if new_party or last is None else max(last, floor)
    device.nvm.put("counters", eui.hex().upper(), value)
    device.nvm.on_rollback(device._forget_counters)
    device._forget_counters()


def _check_replacement(trust: DeviceTrust, key, der: bytes, path, check_time: bool, now) -> tuple[StatusCode, Cell | None]:
    if key is None:
        return StatusCode.BAD_CERTIFICATE, None
    if not trust.holds(key):
        return StatusCode.TRUST_ANCHOR_NOT_FOUND, None
    try:
        info = parse_certificate(der)
    except CertificateError:
        return StatusCode.BAD_CERTIFICATE, None
    role, usage, cu = key
    if info.usage != usage or info.eui is None:
        return StatusCode.BAD_CERTIFICATE, None
    if check_time and not info.not_before <= now <= info.not_after:
        return StatusCode.BAD_CERTIFICATE, None
    if not any(info.issued_by(p) for p in path):
        return StatusCode.NO_TRUST_ANCHOR, None
    return StatusCode.SUCCESS, Cell(role, usage, cu, info.eui, info.key_id, info.public_key, info.der, info.role)


def pending_credentials(device: Any) -> dict[str, dict]:
    """The future-dated credential updates a device keeps (`firmware.future` entries), by key."""
    return {k: e for k, e in device.future.pending().items() if e.get("action") == CREDENTIALS_ACTION}


def fire_credentials(device: Any, entry: dict) -> FdaOutcome:
    """A future-dated CS02b/CS02g's time has come (inside the FDA's NVM transaction): apply it and
    report the outcome to its originator (FDA-CS02b 0x00CB, CS02g: 0x0124)."""
    from gbcs.frame import CRA

    code = int(entry["code"])
    message = Message(cra=CRA.COMMAND, originator_counter=int(entry["counter"]), originator=bytes.fromhex(entry["originator"]),
                      recipient=device.eui, message_code=code, content=entry["content"])
    cmd = decode_asn1(message.content, message_code=code, cra=CRA.COMMAND)
    mode = MODES[int(cmd.control.credentials_replacement_mode)]
    party = device.trust.by_eui(message.originator)
    outcome = _apply(device, cmd, mode, entry.get("forced"))
    ok = all(int(r.status) == StatusCode.SUCCESS for r in outcome.replacement_outcomes)
    when = _dt.datetime.fromtimestamp(float(entry["at"]), _dt.timezone.utc).replace(microsecond=0)
    fda = MessageCode.FDA_CS02g if code in (MessageCode.CS02gLoadControllerByLoadController,
                                            MessageCode.CS02gLoadControllerBySupplier) else MessageCode.FDA_CS02b
    return FdaOutcome(ok, fda, content_for=lambda alert: UpdateSecurityCredentialsAlert(int(alert), when, outcome).encode(),
                      recipient=party)


__all__ = [
    "Cell", "CertificateError", "CertificateInfo", "DeviceTrust", "MODES", "MODE_OF_CODE", "Mode", "CREDENTIALS_ACTION",
    "fire_credentials", "pending_credentials",
    "cell_of", "inject_failure", "key_id_of", "own_credentials", "parse_certificate", "roles_for",
]
