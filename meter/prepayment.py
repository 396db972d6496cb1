"""Prepayment of both meters (`Prepayment`, mixed into `meter.esme.Esme` and `meter.gsme.Gsme`):
credit, emergency credit and debt, charged per half hour and per day from the active tariff;
top-ups by UTRN, remote (CS01a / CS01b) or typed locally, checked against the UTRN counter cache
(`gbcs.utrn`). Its state is the meter's NVM (namespace "meter", keys "prepayment",
"utrn_counters", "utrn_lockout", the top-up log); running out of credit disables the supply
(alert 0x8F0F).

Emergency credit (`emergency_credit_activation`, an ESME option) [I]: "auto" (the default) lets
the emergency credit cover a shortfall unasked; "consumer" uses it only once the consumer has
activated it (`activate_emergency_credit`: the PPMID's ZSE SelectAvailableEmergencyCredit,
PECS02), which arms a supply that ran out of credit (alert 0x8168, else 0x81AB); a top-up that
repays it in full ends the activation. A PPMID's ZSE ConsumerTopUp (PECS01) is `enter_utrn` with
origin "ppmid".

Debt recovery (both meters; each meter says where its settings come from) [I]: time-based debts 1
and 2 (`time_debt_1`, `time_debt_2`) are recovered once a day at their daily rate
(`time_debt_rates_pence`); the payment-based debt (`payment_debt`) takes its share
(`payment_debt_share`) of each top-up before the rest becomes credit. Recovery never takes more
than is owed; the collection that clears a debt raises its "Debt Collection Completed" alert
(0x81A7 / 0x81A8 / 0x81A9), is logged, and recovery stops (nothing is owed).

UTRN lock-out (both meters) [I: SMETS2's thresholds not retrieved]: `utrn_lockout_attempts`
(default 5; 0 never locks) UTRNs typed on the meter or the PPMID in a row that fail authentication
(not authentic, not for this device, malformed: what guessing produces; a duplicate or an authentic
UTRN above a limit is a real token and does not count) suspend manual UTRN entry for
`utrn_lockout_seconds` (default 3600) from the last one: alert 0x81C4 (UTRN Manual Entry
Suspended). While suspended every manually entered UTRN is refused unchecked (its counter is not
used up) with alert 0x81C5 (UTRN rejected as locked out). The state (`utrn_lockout` in NVM)
survives a restart; the suspension lifts once its time has passed (logged at the next entry).
Top-ups carried by a supplier's command (CS01a / CS01b) are not manual entry: no lock-out."""
from __future__ import annotations

from typing import Any

from gbcs.catalogue import AlertCode, RemotePartyRole
from gbcs.dlms import Data, DataType
from gbcs.usecases.ppmid import TopUpResult
from gbcs.utrn import UtrnCheck, UtrnCounterCache, UtrnStatus, validate_utrn
from gbhub.firmware import cosem
from gbhub.firmware.cosem import CosemError
from gbhub.firmware.gas_data import DEBTS

from .esme_state import NS, SUPPLY_ARMED, SUPPLY_DISABLED, SUPPLY_ENABLED, TOPUP_LOG

TOPUP_LOG_CAPACITY = 5  # ZSE Prepayment top-up log has five slots [S gbcs.zcl attribute table]
UTRN_LOCKOUT_ATTEMPTS = 5  # failed manual UTRN entries in a row before entry is suspended [I]
UTRN_LOCKOUT_SECONDS = 3600.0  # how long manual UTRN entry stays suspended [I]
DEBT_COMPLETED = dict(zip(DEBTS, (AlertCode.DEBT_COLLECTION_COMPLETED_TIME_DEBT_1,
                                  AlertCode.DEBT_COLLECTION_COMPLETED_TIME_DEBT_2,
                                  AlertCode.DEBT_COLLECTION_COMPLETED_PAYMENT_DEBT)))
# failing authentication: what guessing produces (module doc "UTRN lock-out")
_LOCKOUT_COUNTS = frozenset((UtrnStatus.NOT_AUTHENTIC, UtrnStatus.NOT_FOR_DEVICE, UtrnStatus.MALFORMED))


def top_up_result(check: UtrnCheck) -> TopUpResult:
    """The ZSE ConsumerTopUpResponse result of a rejected UTRN."""
    if check.status is UtrnStatus.DUPLICATE:
        return TopUpResult.REJECTED_DUPLICATE
    if check.status is UtrnStatus.LOCKED_OUT:
        return TopUpResult.REJECTED_KEYPAD_LOCK
    return TopUpResult.REJECTED_INVALID


class Prepayment:
    """The prepayment part of `Esme` (module doc)."""

    emergency_credit_activation = "auto"  # or "consumer" (module doc); the ESME takes it as an option
    utrn_lockout_attempts = UTRN_LOCKOUT_ATTEMPTS  # module doc "UTRN lock-out"; meter options
    utrn_lockout_seconds = UTRN_LOCKOUT_SECONDS
    DEBT_TOTAL = False  # whether `prepayment["debt"]` is the sum of `DEBTS` (the GSME's) or kept apart (the ESME's)

    def _prepay(self) -> dict:
        return self.nvm.get(NS, "prepayment")

    @property
    def payment_mode(self) -> str:
        return self._prepay()["mode"]

    @property
    def credit_pence(self) -> float:
        return self._prepay()["credit"]

    def _charge_energy(self, wh: int, tier: int, at: float, **price: Any) -> None:
        """Debit `wh` at the price of `tier` (`price`: which unit charge, where a meter has more)."""
        if wh and self._prepay()["mode"] == "prepayment":
            self._debit(wh / 1000.0 * self.unit_price_pence(tier, **price), at)

    def _charge_standing(self, at: float) -> None:
        if self._prepay()["mode"] == "prepayment":
            self._debit(self.standing_charge_pence(), at)
            self._recover_time_debts(at)

    def check_freshness(self, message) -> bool:
        """Top-ups (CS01a, CS01b) are protected by the UTRN counter cache, not the supplier's command
        counter: their originator counter is UTRN counter ‖ 00000000 [S FACTS 1.8]."""
        handler = self.HANDLERS.get(message.message_code)
        if handler is not None and handler.use_case is not None and handler.use_case.utrn:
            return True
        return super().check_freshness(message)

    def time_debt_rates_pence(self) -> dict[str, float]:
        """Daily recovery rate (pence) of each time-based debt this meter keeps, by prepayment key;
        none by default (the ESME's come from its ECS26a-readable debt charges)."""
        return {}

    def payment_debt_share(self) -> float:
        """The fraction (0..1) of each top-up that repays the payment-based debt; none by default."""
        return 0.0

    def _recover_time_debts(self, at: float) -> None:
        """Once a day in prepayment mode each time-based debt (ECS07, ECS19; GCS04) is recovered at
        its configured rate (`time_debt_rates_pence`), never more than is owed [I: daily period]."""
        rates = self.time_debt_rates_pence()
        for key, rate in rates.items():
            p = self._prepay()
            owed = p.get(key, 0.0)
            take = min(owed, rate)
            if take > 0:
                self._collect_debt(p, key, take)
                self._debit(take, at)

    def _collect_debt(self, p: dict, key: str, pence: float) -> None:
        """Take `pence` off debt `key` in `p` (and stores `p`); the collection that clears it raises
        its Debt Collection Completed alert (module doc)."""
        owed = p.get(key, 0.0)
        left = owed - pence
        p[key] = 0.0 if left < 1e-9 else left
        if self.DEBT_TOTAL:
            p["debt"] = sum(p.get(k, 0.0) for k in DEBTS)
        self.nvm.put(NS, "prepayment", p)
        self.log_event("debt_collected", debt=key, pence=round(pence, 5), left=round(p[key], 5))
        if owed > 0 and p[key] == 0.0:
            self.log_event("debt_collection_completed", debt=key)
            self._queue_alert(DEBT_COMPLETED[key])

    def _debit(self, pence: float, at: float) -> None:
        """Take a charge from credit; emergency credit (when granted) covers a shortfall. When
        both are gone the supply is disabled (alert 0x8F0F)."""
        p = self._prepay()
        usable = self._ec_usable(p)
        was_exhausted = p["credit"] <= 0 and (p["ec_remaining"] <= 0 or not usable)
        p["credit"] -= pence
        if p["credit"] < 0 and p["ec_remaining"] > 0 and usable:
            take = min(p["ec_remaining"], -p["credit"])
            p["ec_remaining"] -= take
            p["credit"] += take
        self.nvm.put(NS, "prepayment", p)
        exhausted = p["credit"] <= 0 and (p["ec_remaining"] <= 0 or not usable)
        if exhausted and not was_exhausted and self._supply_state() == SUPPLY_ENABLED:
            self._set_supply(SUPPLY_DISABLED, cause="credit", at=at)
            self._queue_alert(AlertCode.CREDIT_BELOW_DISABLEMENT_THRESHOLD)

    def _add_credit(self, pence: int, origin: str) -> None:
        """A top-up first repays its share of the payment-based debt (prepayment mode), then
        emergency credit used [I]; the rest is credit."""
        p = self._prepay()
        share = self.payment_debt_share()
        collected = 0.0
        if p["mode"] == "prepayment" and share > 0 and p.get("payment_debt", 0.0) > 0:
            collected = min(p["payment_debt"], pence * min(1.0, share))
            self._collect_debt(p, "payment_debt", collected)
        repay = max(0.0, min(float(pence) - collected, p["ec_limit"] - p["ec_remaining"]))
        p["ec_remaining"] += repay
        p["credit"] += pence - collected - repay
        p["total_added"] += pence
        if self.emergency_credit_activation == "consumer" and p.get("ec_active") and p["ec_remaining"] >= p["ec_limit"]:
            p["ec_active"] = False  # repaid in full: the next use needs a new activation
        self.nvm.put(NS, "prepayment", p)
        self.nvm.log_append(TOPUP_LOG, {"t": int(self.device_now()), "pence": pence, "origin": origin}, TOPUP_LOG_CAPACITY)
        supply = self.nvm.get(NS, "supply")
        if supply["state"] == SUPPLY_DISABLED and supply.get("cause") == "credit" and p["credit"] > 0:
            self._set_supply(SUPPLY_ARMED, cause="credit")  # the consumer re-enables locally [I]

    def _utrn_cache(self) -> UtrnCounterCache:
        return UtrnCounterCache(self.nvm.get(NS, "utrn_counters", []), size=self.utrn_cache_size)

    def _prepayment_cell(self):
        """The supplier's prepayment KA trust anchor once a CS02b replaced it (change of supplier:
        UTRNs then come from the new supplier, `firmware.trust`); None while as commissioned."""
        replaced = getattr(self.trust, "replaced", None)
        return None if replaced is None else replaced(RemotePartyRole.SUPPLIER, "ka", 1)

    @property
    def prepayment_supplier(self) -> bytes | None:
        cell = self._prepayment_cell()
        if cell is not None:
            return cell.eui
        if self._prepayment_supplier is not None:
            return self._prepayment_supplier
        anchor = self.trust.by_role(RemotePartyRole.SUPPLIER)
        return None if anchor is None else anchor.eui

    def _check_utrn(self, utrn: bytes | str, supplier: bytes | None, target: bytes | None,
                    originator_counter: int | None) -> UtrnCheck:
        cell = self._prepayment_cell()
        key = self.prepayment_key if cell is None else cell.public_key
        if key is None or supplier is None:
            return UtrnCheck(UtrnStatus.NOT_AUTHENTIC)
        cache = self._utrn_cache()
        check = validate_utrn(utrn, supplier=supplier, device=self.eui, private_key=self.credentials.ka,
                              public_key=key, cache=cache, target=target,
                              originator_counter=originator_counter, secrets=self.secrets)
        if check.accepted:
            refused = self._top_up_refusal(check.amount_pennies)
            if refused is not None:  # the counter is not used up: the same UTRN may come back later [I]
                return UtrnCheck(refused, check.utrn, check.utrn_counter)
            self.nvm.put(NS, "utrn_counters", cache.counters())
        return check

    def top_up_limits(self) -> tuple[float | None, float | None]:
        """(maximum credit per top-up, maximum meter balance) in pence, None where there is none;
        each meter reads them from its prepayment configuration."""
        return None, None

    def _top_up_refusal(self, pence: int | None) -> UtrnStatus | None:
        """An authentic UTRN the meter still refuses: above the maximum credit threshold (0x8F5B)
        or taking the meter balance above its maximum (0x8F47)."""
        max_credit, max_balance = self.top_up_limits()
        if pence is None:
            return None
        if max_credit is not None and max_credit > 0 and pence > max_credit:
            return UtrnStatus.ABOVE_MAX_CREDIT
        if max_balance is not None and max_balance > 0 and self._prepay()["credit"] + pence > max_balance:
            return UtrnStatus.ABOVE_MAX_BALANCE
        return None

    def enter_utrn(self, utrn: str, origin: str = "local") -> UtrnCheck:
        """A UTRN typed on the meter's keypad (origin "local") or sent by a PPMID (ZSE
        ConsumerTopUp, "ppmid"): `local_top_up`. The credit and the UTRN counter commit before this returns."""
        self._check_alive()
        self._alerts.clear()
        with self.nvm.transaction():
            check = self.local_top_up(utrn, origin)
        self._after_local(self._take_alerts())
        return check

    def local_top_up(self, utrn: str, origin: str) -> UtrnCheck:
        """A manually entered UTRN (caller holds the transaction): credit added locally (alert
        0x810E), or the rejection alert (0x8F51 / 0x8F63 / 0x8F64; 0x8F5B / 0x8F47 above the
        meter's maximum credit / balance; 0x81C5 while entry is suspended, 0x81C4 when this entry
        suspends it: module doc "UTRN lock-out")."""
        now = self.device_now()
        lock = dict(self.nvm.get(NS, "utrn_lockout", None) or {"failures": 0, "until": 0.0})
        if lock["until"]:
            if now < lock["until"]:
                self._queue_alert(AlertCode.UTRN_REJECTED_AS_LOCKED_OUT)
                self.log_event("top_up_rejected", status=UtrnStatus.LOCKED_OUT.value, origin=origin,
                               until=int(lock["until"]))
                return UtrnCheck(UtrnStatus.LOCKED_OUT)
            lock = {"failures": 0, "until": 0.0}
            self.log_event("utrn_entry_resumed", origin=origin)
        check = self._check_utrn(utrn, self.prepayment_supplier, None, None)
        if check.accepted:
            lock["failures"] = 0
            self._add_credit(check.amount_pennies, origin)
            self._queue_alert(AlertCode.CREDIT_ADDED_LOCALLY)
            self.log_event("top_up", pence=check.amount_pennies, utrn_counter=check.utrn_counter, origin=origin)
        else:
            self._queue_alert(check.alert_code)
            self.log_event("top_up_rejected", status=check.status.value, origin=origin)
            if check.status in _LOCKOUT_COUNTS:
                lock["failures"] += 1
                if 0 < self.utrn_lockout_attempts <= lock["failures"]:
                    lock["until"] = now + self.utrn_lockout_seconds
                    self._queue_alert(AlertCode.UTRN_MANUAL_ENTRY_SUSPENDED)
                    self.log_event("utrn_entry_suspended", failures=lock["failures"], until=int(lock["until"]))
        self.nvm.put(NS, "utrn_lockout", lock)
        return check

    @property
    def utrn_locked_until(self) -> float | None:
        """Device time until which manual UTRN entry is suspended, None when it is not."""
        until = (self.nvm.peek(NS, "utrn_lockout") or {}).get("until") or 0.0
        return until if until > self.device_now() else None

    def _ec_usable(self, p: dict) -> bool:
        return self.emergency_credit_activation == "auto" or bool(p.get("ec_active"))

    def activate_emergency_credit(self, origin: str = "ppmid") -> bool:
        """The consumer asks for emergency credit (PPMID: ZSE SelectAvailableEmergencyCredit).
        True when emergency credit remains and is (now) in use; a supply disabled for want of
        credit is armed (alert 0x8168), else alert 0x81AB [I]. False (nothing changes) when none
        remains."""
        self._check_alive()
        self._alerts.clear()
        with self.nvm.transaction():
            p = self._prepay()
            if p["ec_remaining"] <= 0:
                self.log_event("emergency_credit_refused", origin=origin)
                return False
            p["ec_active"] = True
            if p["credit"] < 0:  # the shortfall so far comes out of the emergency credit
                take = min(p["ec_remaining"], -p["credit"])
                p["ec_remaining"] -= take
                p["credit"] += take
            self.nvm.put(NS, "prepayment", p)
            supply = self.nvm.get(NS, "supply")
            if supply["state"] == SUPPLY_DISABLED and supply.get("cause") == "credit" and p["ec_remaining"] > 0:
                self._set_supply(SUPPLY_ARMED, cause="credit")
                self._queue_alert(AlertCode.SUPPLY_DISABLED_THEN_ARMED_ACTIVATE_EMERGENCY_CREDIT_TRIGGERED)
            else:
                self._queue_alert(AlertCode.EMERGENCY_CREDIT_ACTIVATED)
            self.log_event("emergency_credit_activated", origin=origin)
        self._after_local(self._take_alerts())
        return True


    def _enter_token(self, parameters: Data) -> None:
        """CS01a: a UTRN carried by the supplier's command (its counter = UTRN counter ‖ 0)."""
        command = self._command
        if parameters.type is not DataType.OCTET_STRING or command is None:
            raise CosemError(cosem.TYPE_UNMATCHED, "token must be an octet-string")
        check = self._check_utrn(parameters.value, command.originator, command.recipient, command.originator_counter)
        if not check.accepted:
            self._queue_alert(check.alert_code)
            self.log_event("top_up_rejected", status=check.status.value, message_code=f"{command.message_code:04X}")
            raise CosemError(cosem.OTHER_REASON, f"UTRN {check.status.value}")  # [I] result code
        self._add_credit(check.amount_pennies, "remote")
        self.log_event("top_up", pence=check.amount_pennies, utrn_counter=check.utrn_counter)
        return None



__all__ = ["Prepayment", "TOPUP_LOG_CAPACITY", "UTRN_LOCKOUT_ATTEMPTS", "UTRN_LOCKOUT_SECONDS", "DEBT_COMPLETED", "top_up_result"]
