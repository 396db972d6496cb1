"""ESME events from their causes, and the faults that provoke them (`gbhub ctl fault EUI KIND ...`):
physical tamper, an unauthorised local-port attempt, supply voltage quality, load limiting, supply
outage and restore, low credit and disablement; and the alert / event behaviours (ECS25a, a1, a2,
a3) that decide whether each configurable event is sent as an alert, shown on HAN devices or
logged. Mixed into `meter.esme.Esme` (`EsmeEvents`, first in its bases).

Thresholds and periods are the meter's COSEM configuration in force (`meter.esme_objects`; set by
the use cases, factory values there): voltage quality `voltage_settings(phase)` (ECS29a-d: average
over / under, extreme over / under and their periods, sag / swell, the average RMS measurement
period), load limiting `load_limit_settings()` (ECS28a: threshold, period, restoration period and
whether the supply is restored), low credit `prepayment_settings()["low_credit"]` (ECS08a), the
power thresholds (ECS34). What no COSEM object holds is an ESME rig option [I]:

| option | default | drives |
|---|---|---|
| `nominal_voltage` | 230 V | the voltage when no fault is set |
| `sag_swell_period_s` | 30 s | how long a sag / swell must last before its alert (and its end before the clearing one) |
| `disablement_threshold_pence` | 0 | combined credit at or below this disables the supply (0x8F0F) |
| `outage_long_s` | 180 s | a restore after at least this is 0x8F36, else 0x8F35 |

A condition must hold for its period before its alert goes (and fail for the period before the
clearing alert); "average" compares each phase's average over each measurement period (phase 1's
period) and stores it (ECS23 reads it). Sags and swells count up their counters (ECS23, reset by
ECS29e/f); a load limiting event counts up ECS27's counter; `tamper` with the supply tamper state
set (ECS81) disables the supply (0x81BE); outages and restores go into the power event log
(ECS35e). Load limiting disables then arms the supply (0x8F33) and, when the restoration flag is
set, enables it again after the restoration period (0x8F34) [I]. A polyphase meter (`variant`
polyphase or twin-polyphase) uses the per-phase codes (0x8003.., 0x8021.., ...). During a supply
outage the meter draws nothing, measures no voltage events, and on restore sends 0x8F35 / 0x8F36
[I: the real meter is unpowered; the emulated one keeps answering]. Voltage and load faults are
measured inputs and live in RAM (a restart measures normal again); an outage is in NVM.

Behaviours (ECS25a / a1 / a2 / a3 objects of `meter.esme_objects`, read by `Esme.behaviours()`):
bit n of the 512-bit mask stands for event code 0x8000 + n, and a SET bit turns that behaviour OFF
for that event [I: no source gives the meaning; the factory masks are all zeros and a factory-fresh
ESME must send every mandated alert, and the RTDS ECS25a/a2/a3 commands set only a handful of bits
(pairs 0x100 apart), which fits "exceptions to the default" and not "the only events enabled"].
Critical alerts (0x8Fxx) are always sent and logged. The network operator's masks (ECS25b: alerts
sent, ECS25b3: events logged) work the same way and either party's set bit turns the behaviour off
[I: GBCS gives each configurable alert an owner role; the sources at hand do not say which, so the
ESME honours both parties' exceptions rather than guess]. Events shown on HAN devices (ECS25a1)
are kept in `han_events` and served to the IHD through the ZCL Events cluster (`meter.esme_zcl`).
"""
from __future__ import annotations

import logging
from collections import deque
from typing import Any, Callable

from gbcs.catalogue import AlertCode
from gbcs.dlms import BitString, RequestKind, RequestSpec
from gbcs.obis import OBIS, CosemObjectId
from gbcs.usecases import USE_CASES
from gbhub.firmware.faults import FaultError, arity, choice, fault, fault_kinds, number
from gbhub.firmware.gbcs_device import GbcsDevice

from .esme_objects import POWER_EVENT_LOG
from .esme_state import NS, SUPPLY_ARMED, SUPPLY_DISABLED, SUPPLY_ENABLED

log = logging.getLogger("gbhub.esme")

NOMINAL_VOLTAGE = 230.0  # [I GB nominal]
SAG_SWELL_PERIOD_S = 30.0  # [I]
OUTAGE_LONG_S = 180.0
BEHAVIOUR_BITS = 512
FIRST_CODE = 0x8000  # bit 0 of a behaviour mask [I]
LAST_CODE = FIRST_CODE + BEHAVIOUR_BITS - 1

# instantaneous voltage conditions: name -> (is it met at volts v, raise code, clearing code);
# `s` is `voltage_settings(phase)` (meter.esme_objects)
_INSTANT: dict[str, tuple[Callable[[dict, float], bool], int, int]] = {
    "extreme_over": (lambda s, v: v > s["extreme_over_voltage"],
                     AlertCode.RMS_VOLTAGE_ABOVE_EXTREME_OVER_VOLTAGE_THRESHOLD_VOLTAGE_RISES_ABOVE_FOR_LONGER_THAN_THE_CONFIGURABLE_PERIOD,
                     AlertCode.RMS_VOLTAGE_ABOVE_EXTREME_OVER_VOLTAGE_THRESHOLD_VOLTAGE_RETURNS_BELOW_FOR_LONGER_THAN_THE_CONFIGURABLE_PERIOD),
    "swell": (lambda s, v: v > s["swell"],
              AlertCode.RMS_VOLTAGE_ABOVE_VOLTAGE_SWELL_THRESHOLD_VOLTAGE_RISES_ABOVE_FOR_LONGER_THAN_THE_CONFIGURABLE_PERIOD,
              AlertCode.RMS_VOLTAGE_ABOVE_VOLTAGE_SWELL_THRESHOLD_VOLTAGE_RETURNS_BELOW_FOR_LONGER_THAN_THE_CONFIGURABLE_PERIOD),
    "sag": (lambda s, v: v < s["sag"],
            AlertCode.RMS_VOLTAGE_BELOW_VOLTAGE_SAG_THRESHOLD_VOLTAGE_FALLS_BELOW_FOR_LONGER_THAN_THE_CONFIGURABLE_PERIOD,
            AlertCode.RMS_VOLTAGE_BELOW_VOLTAGE_SAG_THRESHOLD_VOLTAGE_RETURNS_ABOVE_FOR_LONGER_THAN_THE_CONFIGURABLE_PERIOD),
    "extreme_under": (lambda s, v: v < s["extreme_under_voltage"],
                      AlertCode.RMS_VOLTAGE_BELOW_EXTREME_UNDER_VOLTAGE_THRESHOLD_VOLTAGE_FALLS_BELOW_FOR_LONGER_THAN_THE_CONFIGURABLE_PERIOD,
                      AlertCode.RMS_VOLTAGE_BELOW_EXTREME_UNDER_VOLTAGE_THRESHOLD_VOLTAGE_RETURNS_ABOVE_FOR_LONGER_THAN_THE_CONFIGURABLE_PERIOD),
}
# average conditions: name -> (met at average v, raise code, clearing code)
_AVERAGE: dict[str, tuple[Callable[[dict, float], bool], int, int]] = {
    "average_over": (lambda s, v: v > s["average_over_voltage"],
                     AlertCode.AVERAGE_RMS_VOLTAGE_ABOVE_AVERAGE_RMS_OVER_VOLTAGE_THRESHOLD,
                     AlertCode.AVERAGE_RMS_VOLTAGE_BELOW_AVERAGE_RMS_OVER_VOLTAGE_THRESHOLD),
    "average_under": (lambda s, v: v < s["average_under_voltage"],
                      AlertCode.AVERAGE_RMS_VOLTAGE_BELOW_AVERAGE_RMS_UNDER_VOLTAGE_THRESHOLD,
                      AlertCode.AVERAGE_RMS_VOLTAGE_ABOVE_AVERAGE_RMS_UNDER_VOLTAGE_THRESHOLD),
}
# physical faults: kind -> (alert, alert when it ends (None: none), what)
_PHYSICAL: dict[str, tuple[int, int | None, str]] = {
    "tamper": (AlertCode.UNAUTHORISED_PHYSICAL_ACCESS_TAMPER_DETECT, None, "tamper detected"),
    "cover-removed": (AlertCode.UNAUTHORISED_PHYSICAL_ACCESS_METER_COVER_REMOVED, AlertCode.METER_COVER_CLOSED,
                      "meter cover removed"),
    "magnet": (AlertCode.UNAUTHORISED_PHYSICAL_ACCESS_STRONG_MAGNETIC_FIELD, AlertCode.STRONG_MAGNETIC_FIELD_REMOVED,
               "strong magnetic field"),
    "terminal-cover": (AlertCode.UNAUTHORISED_PHYSICAL_ACCESS_TERMINAL_COVER_REMOVED, AlertCode.TERMINAL_COVER_CLOSED,
                       "terminal cover removed"),
    "unauthorised-access": (AlertCode.UNAUTHORISED_COMMUNICATION_ACCESS_ATTEMPTED, None,
                            "unauthorised communication attempted on a local port"),
}
# behaviour -> its ECS25* objects (meter.esme_objects): the supplier's mask, and the network
# operator's where it has one (ECS25b, ECS25b3); either party's set bit turns the behaviour off [I]
BEHAVIOUR_OBJECTS: dict[str, tuple[CosemObjectId, ...]] = {
    "send": (OBIS.ALERT_BEHAVIOURS_SUPPLIER, OBIS.ALERT_BEHAVIOURS_NETWORK_OPERATOR),
    "han": (OBIS.EVENT_BEHAVIOURS_HAN,),
    "audible": (OBIS.EVENT_BEHAVIOURS_AUDIBLE,),
    "log": (OBIS.EVENT_BEHAVIOURS_LOG, OBIS.EVENT_BEHAVIOURS_LOG_NETWORK_OPERATOR),
}
HAN_EVENTS = 16  # events kept for HAN devices to show [I]
# The use cases whose content may set a measurement period (RMS voltage profile capture period,
# attribute 4): only after those is the period read again (every command would cost 11 reads).
_PERIOD_WRITERS = frozenset(
    d.message_code for d in USE_CASES.values()
    if any(d.allows(RequestSpec(RequestKind.SET, o.class_id, o.obis, 4))
           for o in (OBIS.RMS_VOLTAGE_PROFILE, OBIS.RMS_VOLTAGE_PROFILE_L2, OBIS.RMS_VOLTAGE_PROFILE_L3)))
POWER_BANDS = ("low", "medium", "high", "very high")  # below each of the three power thresholds, or above [I]


def _phase_code(code: int, phase: int | None) -> int:
    """The per-phase variant of a voltage / outage alert (phase 1..3 = code + 1..3) [S ALERTS]."""
    return code if phase is None else AlertCode(code + phase)


class MeasuredLoad:
    """The active power the meter measures: its consumption model, unless a `load` fault sets a
    constant power or an outage cuts it to nothing. Other attributes are the model's."""

    def __init__(self, base: Any, device: "EsmeEvents") -> None:
        self.base = base
        self.device = device
        self.watts: float | None = None

    def power_w(self, t: float) -> float:
        if self.device._outage_since is not None:
            return 0.0
        return self.base.power_w(t) if self.watts is None else self.watts

    def energy_wh(self, t0: float, t1: float) -> float:
        if self.device._outage_since is not None:
            return 0.0
        return self.base.energy_wh(t0, t1) if self.watts is None else self.watts * max(0.0, t1 - t0) / 3600.0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.base, name)


class EsmeEvents:
    """The events part of `Esme` (module doc)."""

    def __init__(self, *args: Any, nominal_voltage: float = NOMINAL_VOLTAGE, sag_swell_period_s: float = SAG_SWELL_PERIOD_S,
                 disablement_threshold_pence: float = 0.0, outage_long_s: float = OUTAGE_LONG_S, **kw: Any) -> None:
        for name, value in (("nominal_voltage", nominal_voltage), ("sag_swell_period_s", sag_swell_period_s),
                            ("disablement_threshold_pence", disablement_threshold_pence), ("outage_long_s", outage_long_s)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or (name != "disablement_threshold_pence" and value < 0):
                raise ValueError(f"{name} must be a number" + ("" if name == "disablement_threshold_pence" else " >= 0"))
        self.nominal_voltage = float(nominal_voltage)
        self.sag_swell_period_s = float(sag_swell_period_s)
        self.disablement_threshold_pence = float(disablement_threshold_pence)
        self.outage_long_s = float(outage_long_s)
        self._measured: MeasuredLoad | None = None
        self._outage_since: float | None = None
        self._reset_measurements()
        self.han_events: deque[tuple[float, int]] = deque(maxlen=HAN_EVENTS)
        super().__init__(*args, **kw)

    def _reset_measurements(self) -> None:
        self._volts: dict[int, float] = {p: self.nominal_voltage for p in (1, 2, 3)}
        self._volt_timers: dict[int, Any] = {}
        self._conditions: dict[tuple[int, str], list] = {}  # (phase, name) -> [met, since, reported]
        self._average: dict[int, list] = {}  # phase -> [integral V*s, since]
        self._average_start = 0.0
        self._average_state: dict[tuple[int, str], bool] = {}  # (phase, name) -> reported
        self._average_timer = None
        self._average_period = 0.0
        self._load_timer = None
        self._load_expiry = None
        self._restore_timer = None
        self._outage_timer = None
        self._physical_timers: dict[str, Any] = {}

    # ---------------------------------------------------------------- the measured load
    @property
    def model(self) -> MeasuredLoad:
        return self._measured

    @model.setter
    def model(self, value: Any) -> None:
        self._measured = MeasuredLoad(value.base if isinstance(value, MeasuredLoad) else value, self)

    # ---------------------------------------------------------------- lifecycle hooks (Esme calls them)
    def _events_boot(self) -> None:
        outage = self.nvm.get(NS, "outage")
        self._outage_since = None if outage is None else float(outage["since"])
        self._start_average()

    def _events_off(self) -> None:
        if self._measured is not None:
            self._measured.watts = None
        self._reset_measurements()

    @property
    def phase_count(self) -> int:
        return 3 if self.polyphase else 1

    # ---------------------------------------------------------------- alerts outside a command
    def _local_event(self, change: Callable[[], Any]) -> Any:
        """Run `change` in one NVM transaction, then send the alerts it queued."""
        self._alerts.clear()
        with self.nvm.transaction():
            result = change()
        self._after_local(self._take_alerts())
        return result

    # ================================================================ behaviours (ECS25*)
    def behaviour_enabled(self, behaviour: str, code: int) -> bool:
        """Whether configurable event `code` is sent / shown on HAN devices / sounds / is logged:
        its bit in the behaviour mask is clear (module doc); non-configurable (critical) ones
        always are."""
        if not FIRST_CODE <= code <= LAST_CODE:
            return True
        bit = code - FIRST_CODE
        for obj in BEHAVIOUR_OBJECTS[behaviour]:
            mask = self._tariff(obj, 2).value
            data = mask.data if isinstance(mask, BitString) else b""
            if bit // 8 < len(data) and data[bit // 8] & (0x80 >> (bit % 8)):
                return False
        return True

    def log_event(self, code: Any, **detail: Any) -> dict | None:
        """A configurable event (0x8000-0x81FF) goes into the event log only while its logging
        behaviour (ECS25a3 / ECS25b3) is on; None when it is off."""
        if isinstance(code, int) and not self.behaviour_enabled("log", code):
            return None
        return super().log_event(code, **detail)

    async def raise_alert(self, alert_code: int, **kw: Any) -> bytes | None:
        if self.behaviour_enabled("han", alert_code) and FIRST_CODE <= alert_code <= LAST_CODE:
            self.han_events.append((self.device_now(), alert_code))
        if not self.behaviour_enabled("send", alert_code):
            if self.behaviour_enabled("log", alert_code):
                self.log_event("alert_suppressed", alert_code=f"{alert_code:04X}")
            log.info("%s %s: alert %04X not sent (alert behaviours)", self.kind, self.eui_hex, alert_code)
            return None
        kw.setdefault("log_it", self.behaviour_enabled("log", alert_code))
        return await super().raise_alert(alert_code, **kw)

    # ================================================================ physical tamper
    def _fault_physical(self, kind: str, args: list, options: dict) -> dict:
        arity(kind, args, 0, "")
        code, end_code, what = _PHYSICAL[kind]
        seconds = options.get("seconds")
        if seconds is not None and end_code is None:
            raise FaultError(f"fault {kind} has no end (takes no --seconds)")

        def change() -> bool:
            self.log_security(int(code), cause=what)
            self._queue_alert(code)
            # ECS81: with the supply tamper state set, a tamper disables (locks) the supply [I: `tamper` only]
            if kind == "tamper" and self.supply_tamper_lock and self._supply_state() != SUPPLY_DISABLED:
                self._set_supply(SUPPLY_DISABLED, cause="tamper")
                self._queue_alert(AlertCode.SUPPLY_DISABLED_THEN_LOCKED_SUPPLY_TAMPER_STATE_CAUSE)
                return True
            return False

        locked = self._local_event(change)
        if seconds is not None:
            old = self._physical_timers.pop(kind, None)
            if old is not None:
                old.cancel()
            self._physical_timers[kind] = self.call_later(float(seconds), self._physical_end, kind)
        return {"alert": f"0x{code:04X}", **({"ends_in_s": seconds, "end_alert": f"0x{end_code:04X}"} if seconds else {}),
                **({"supply": SUPPLY_DISABLED} if locked else {})}

    def _physical_end(self, kind: str) -> None:
        self._physical_timers.pop(kind, None)
        _code, end_code, what = _PHYSICAL[kind]

        def change() -> None:
            self.log_event(int(end_code), cause=f"{what}: ended")
            self._queue_alert(end_code)

        self._local_event(change)

    # ================================================================ voltage
    @property
    def in_outage(self) -> bool:
        return self._outage_since is not None

    def measured_voltage(self, phase: int = 1) -> float:
        return 0.0 if self._outage_since is not None else self._volts[phase]

    def _phases_of(self, options: dict) -> list[int]:
        phase = options.get("phase")
        if phase is None:
            return list(range(1, self.phase_count + 1))
        phase = int(number(phase, "--phase", low=1, high=3))
        if phase > self.phase_count:
            raise FaultError(f"{self.kind} {self.eui_hex} is a single-phase meter: --phase must be 1")
        return [phase]

    def _fault_voltage(self, args: list, options: dict) -> dict:
        arity("voltage", args, 1, "VOLTS")
        volts = number(args[0], "VOLTS", low=0, high=1000)
        phases = self._phases_of(options)
        seconds = options.get("seconds")
        for p in phases:
            self._set_voltage(p, volts)
            old = self._volt_timers.pop(p, None)
            if old is not None:
                old.cancel()
            if seconds is not None:
                self._volt_timers[p] = self.call_later(float(seconds), self._set_voltage, p, self.nominal_voltage)
        return {"volts": volts, "phases": phases, **({"for_s": seconds} if seconds is not None else {})}

    def _period(self, settings: dict, name: str) -> float:
        """How long an instantaneous condition must hold: ECS29's extreme periods; sag / swell a rig option."""
        return float(settings[f"{name}_voltage_period"]) if name.startswith("extreme") else self.sag_swell_period_s

    def _set_voltage(self, phase: int, volts: float) -> None:
        now = self.clock.now()
        self._accumulate(now)
        self._volts[phase] = volts
        c = self.voltage_settings(phase)
        for name, (met_at, _code, _clear) in _INSTANT.items():
            state = self._conditions.setdefault((phase, name), [False, now, False])
            met = met_at(c, volts)
            if met != state[0]:
                state[0], state[1] = met, now
                if met != state[2]:
                    self.call_at(now + self._period(c, name), self._check_voltage)
        self._check_voltage()

    def _check_voltage(self) -> None:
        """Raise or clear each instantaneous condition that has held for its period."""
        if self._outage_since is not None or self.state == "off":
            return
        now = self.clock.now()
        settings = {p: self.voltage_settings(p) for p in range(1, self.phase_count + 1)}
        polyphase = self.phase_count == 3

        def change() -> None:
            for (phase, name), state in self._conditions.items():
                met, since, reported = state
                if met != reported and now - since >= self._period(settings[phase], name) - 1e-6:
                    state[2] = met
                    _met, raise_code, clear_code = _INSTANT[name]
                    code = _phase_code(raise_code if met else clear_code, phase if polyphase else None)
                    self.log_event(int(code), volts=self._volts[phase], phase=phase)
                    if met and name in ("sag", "swell"):  # ECS23's counters and (phase 1) duration
                        self.count_voltage_event(name, phase, int(now - since))
                    self._queue_alert(code)

        self._local_event(change)

    def _start_average(self) -> None:
        now = self.clock.now()
        self._average = {p: [0.0, now] for p in (1, 2, 3)}
        self._average_start = now
        self._arm_average()

    def _arm_average(self) -> None:
        """The next end of a measurement period (ECS29's average RMS period, phase 1's, read each time)."""
        if self._average_timer is not None:
            self._average_timer.cancel()
        period = max(1.0, float(self.voltage_settings(1)["average_period"]))
        self._average_period = period
        self._average_timer = self.call_later(period, self._close_average, None)

    def execute(self, message: Any) -> Any:
        """A command that changed the measurement period (ECS29a-d) starts a new period at once."""
        outcome = super().execute(message)
        if message.message_code in _PERIOD_WRITERS and self._average_timer is not None and self.state == "on" \
                and max(1.0, float(self.voltage_settings(1)["average_period"])) != self._average_period:
            self._start_average()
        return outcome

    def _accumulate(self, now: float) -> None:
        for p, acc in self._average.items():
            if now > acc[1]:
                acc[0] += self.measured_voltage(p) * (now - acc[1])
                acc[1] = now

    def _close_average(self, _t: float | None) -> None:
        """End of a measurement period: store each phase's average (ECS23) and compare it with the
        average limits."""
        self._average_timer = None
        if self.state != "off":
            self._arm_average()
        now = self.clock.now()
        self._accumulate(now)
        span = now - self._average_start  # the first period after boot is a part of one
        outage = self._outage_since is not None
        averages = {p: self._average[p][0] / span for p in range(1, self.phase_count + 1)} if span > 0 else {}
        self._average = {p: [0.0, now] for p in (1, 2, 3)}
        self._average_start = now
        if outage or not averages:
            return
        settings = {p: self.voltage_settings(p) for p in averages}
        polyphase = self.phase_count == 3

        def change() -> None:
            for phase, avg in averages.items():
                self.set_average_voltage(avg, phase)
                c = settings[phase]
                for name, (met_at, raise_code, clear_code) in _AVERAGE.items():
                    met = met_at(c, avg)
                    if met != self._average_state.get((phase, name), False):
                        self._average_state[(phase, name)] = met
                        code = _phase_code(raise_code if met else clear_code, phase if polyphase else None)
                        self.log_event(int(code), average_volts=round(avg, 2), phase=phase)
                        self._queue_alert(code)

        self._local_event(change)

    # ================================================================ load and load limiting
    def _fault_load(self, args: list, options: dict) -> dict:
        arity("load", args, 1, "WATTS")
        watts = number(args[0], "WATTS", low=0, high=1e6)
        self._set_load(watts)
        if self._load_expiry is not None:
            self._load_expiry.cancel()
            self._load_expiry = None
        seconds = options.get("seconds")
        if seconds is not None:
            self._load_expiry = self.call_later(float(seconds), self._set_load, None)
        return {"watts": watts, "power_threshold": self.power_threshold_status(watts),
                **({"for_s": seconds} if seconds is not None else {})}

    def _set_load(self, watts: float | None) -> None:
        """From now on the meter measures `watts` (None: its consumption model again)."""
        with self.nvm.transaction():
            self._account(self.device_now())  # energy so far at the old power
        self._measured.watts = watts
        self._check_load()

    def power_threshold_status(self, watts: float | None = None) -> str:
        """The band the power is in, between the three power thresholds (ECS34; factory 4 / 8 / 12
        kW): low, medium, high or very high [I]."""
        w = self.power_w() if watts is None else watts
        try:
            limits = [int(v.value) for v in self._tariff(OBIS.POWER_THRESHOLDS, 2).value][:3]
        except (AttributeError, TypeError, ValueError):
            limits = []
        return POWER_BANDS[sum(1 for limit in limits if w >= limit)]

    def _check_load(self) -> None:
        if self._load_timer is not None:
            self._load_timer.cancel()
            self._load_timer = None
        s = self.load_limit_settings()
        if self.power_w() > s["threshold_w"]:
            self._load_timer = self.call_later(s["period_s"], self._load_limit_reached)

    def _load_limit_reached(self) -> None:
        self._load_timer = None
        s = self.load_limit_settings()
        if self.power_w() <= s["threshold_w"]:
            return

        def change() -> bool:
            self.log_event(int(AlertCode.ACTIVE_POWER_IMPORT_ABOVE_LOAD_LIMIT_THRESHOLD), watts=self.power_w())
            self._queue_alert(AlertCode.ACTIVE_POWER_IMPORT_ABOVE_LOAD_LIMIT_THRESHOLD)
            self.count_load_limit()  # ECS27's counter
            if self._supply_state() != SUPPLY_ENABLED:
                return False
            self._set_supply(SUPPLY_ARMED, cause="load_limit")
            self._alerts[:] = [a for a in self._alerts if a[0] != AlertCode.SUPPLY_ARMED]  # 0x8F33 says it
            self._queue_alert(AlertCode.SUPPLY_DISABLED_THEN_ARMED_LOAD_LIMIT_TRIGGERED)
            return True

        if self._local_event(change) and s["restore_supply"]:  # ECS28a's restoration flag
            self._restore_timer = self.call_later(s["restore_period_s"], self._load_limit_restore)

    def _load_limit_restore(self) -> None:
        self._restore_timer = None
        supply = self.nvm.get(NS, "supply")
        if supply["state"] != SUPPLY_ARMED or supply.get("cause") != "load_limit":
            return

        def change() -> None:
            self._set_supply(SUPPLY_ENABLED, cause="load_limit_restoration")
            self._queue_alert(AlertCode.SUPPLY_ENABLED_AFTER_LOAD_LIMIT_RESTORATION_PERIOD)

        self._local_event(change)
        self._check_load()

    # ================================================================ supply outage
    def _fault_power(self, args: list, options: dict) -> dict:
        arity("power", args, 1, "off|on")
        state = choice(args[0], "power", ("off", "on"))
        seconds = options.get("seconds")
        if self._outage_timer is not None:
            self._outage_timer.cancel()
            self._outage_timer = None
        if state == "off":
            if self._outage_since is None:
                self._outage_begins()
            if seconds is not None:
                self._outage_timer = self.call_later(float(seconds), self._outage_ends)
            return {"power": "off", **({"for_s": seconds} if seconds is not None else {})}
        if seconds is not None:
            raise FaultError("fault power on takes no --seconds")
        if self._outage_since is None:
            return {"power": "on", "outage_s": 0}
        return {"power": "on", **self._outage_ends()}

    def _outage_begins(self) -> None:
        now = self.clock.now()
        self._accumulate(now)
        with self.nvm.transaction():
            self._account(self.device_now())
            self.nvm.put(NS, "outage", {"since": now})
            self.log_power_event(AlertCode.SUPPLY_INTERRUPTED)
        self._outage_since = now

    def _outage_ends(self) -> dict:
        self._outage_timer = None
        now = self.clock.now()
        since = self._outage_since if self._outage_since is not None else now
        length = max(0.0, now - since)
        long = length >= self.outage_long_s
        polyphase = self.phase_count == 3
        codes = [AlertCode.SUPPLY_OUTAGE_RESTORED_OUTAGE_3_MINUTES if long else AlertCode.SUPPLY_OUTAGE_RESTORED]
        if polyphase:  # per phase too [I]
            base = (AlertCode.SUPPLY_OUTAGE_RESTORED_ON_PHASE_1_RESTORED_OUTAGE_3_MINUTES if long
                    else AlertCode.SUPPLY_OUTAGE_RESTORED_ON_PHASE_1)
            codes += [AlertCode(base + 2 * i) for i in range(3)]
        self._accumulate(now)

        def change() -> None:
            self._account(self.device_now())  # nothing was drawn during the outage
            self.nvm.delete(NS, "outage")
            for code in codes:
                self.log_power_event(code)
                self._queue_alert(code)

        self._local_event(change)
        self._outage_since = None
        self._check_load()  # the load is back
        return {"outage_s": round(length, 3), "alerts": [f"0x{c:04X}" for c in codes]}

    def power_events(self) -> list[dict]:
        """The power event log (ECS35e): outages and restores, `{"t", "code"}` (`log_power_event`)."""
        return self.nvm.log_entries(POWER_EVENT_LOG)

    # ================================================================ credit
    def _combined_credit(self) -> float:
        p = self._prepay()
        return p["credit"] + max(0.0, p["ec_remaining"])

    def _debit(self, pence: float, at: float) -> None:
        before = self._combined_credit()
        super()._debit(pence, at)  # disables the supply when credit and emergency credit are gone
        self._check_credit(before)
        if (self._prepay()["mode"] == "prepayment" and self._supply_state() == SUPPLY_ENABLED
                and self._combined_credit() <= self.disablement_threshold_pence):
            self._set_supply(SUPPLY_DISABLED, cause="credit", at=at)  # a disablement threshold above £0
            self._queue_alert(AlertCode.CREDIT_BELOW_DISABLEMENT_THRESHOLD)

    def _check_credit(self, before: float) -> None:
        """Combined credit fell below the low credit threshold: 0x810D (prepayment mode)."""
        if self._prepay()["mode"] != "prepayment":
            return
        low = self.prepayment_settings()["low_credit"]  # ECS08a
        after = self._combined_credit()
        if before >= low > after:
            self.log_event(int(AlertCode.COMBINED_CREDIT_BELOW_LOW_CREDIT_THRESHOLD), credit=round(after / 100, 5))
            self._queue_alert(AlertCode.COMBINED_CREDIT_BELOW_LOW_CREDIT_THRESHOLD)

    def _fault_credit(self, args: list, options: dict) -> dict:
        arity("credit", args, 1, "AMOUNT (pounds)")
        pounds = number(args[0], "AMOUNT", low=-1e7, high=1e7)

        def change() -> dict:
            before = self._combined_credit()
            p = self._prepay()
            p["credit"] = round(pounds * 100, 5)
            self.nvm.put(NS, "prepayment", p)
            if p["mode"] != "prepayment":
                return {"mode": p["mode"]}
            self._check_credit(before)
            disablement = self.disablement_threshold_pence
            supply = self.nvm.get(NS, "supply")
            if self._combined_credit() <= disablement:
                if supply["state"] == SUPPLY_ENABLED:
                    self._set_supply(SUPPLY_DISABLED, cause="credit")
                    self._queue_alert(AlertCode.CREDIT_BELOW_DISABLEMENT_THRESHOLD)
            elif supply["state"] == SUPPLY_DISABLED and supply.get("cause") == "credit":
                self._set_supply(SUPPLY_ARMED, cause="credit")  # as after a top-up
            return {"mode": p["mode"]}

        out = self._local_event(change)
        return {"credit": pounds, **out, "supply": self._supply_state()}

    # ================================================================ the fault table
    FAULT_KINDS = fault_kinds(
        *(fault(kind, (lambda k: lambda d, a, o: d._fault_physical(k, a, o))(kind), "",
                f"{what} (alert 0x{code:04X}" + (f"; with --seconds S, 0x{end:04X} when it ends)" if end else ")"),
                options=("seconds",) if end else ())
          for kind, (code, end, what) in _PHYSICAL.items()),
        fault("voltage", lambda d, a, o: d._fault_voltage(a, o), "VOLTS [--phase N] [--seconds S]",
              "the measured RMS voltage: average over/under (0x8002/0x8006), extreme over/under (0x8020/0x8028), "
              "swell/sag (0x8024/0x802C) and their clearing alerts, per the voltage settings",
              options=("phase", "seconds")),
        fault("load", lambda d, a, o: d._fault_load(a, o), "WATTS [--seconds S]",
              "active power import: load limit (0x8F01, 0x8F33, then 0x8F34) and the power thresholds",
              options=("seconds",)),
        fault("power", lambda d, a, o: d._fault_power(a, o), "off|on [--seconds S]",
              "supply outage and restore: power event log; 0x8F35, or 0x8F36 after 3 minutes or more",
              options=("seconds",)),
        fault("credit", lambda d, a, o: d._fault_credit(a, o), "AMOUNT",
              "sets the meter balance in pounds (decimals, negative allowed): low credit 0x810D, disablement "
              "0x8F0F with the supply disabled (prepayment mode)"),
        base=GbcsDevice.FAULT_KINDS,
    )


__all__ = ["EsmeEvents", "MeasuredLoad", "BEHAVIOUR_OBJECTS", "FIRST_CODE", "LAST_CODE", "BEHAVIOUR_BITS"]
