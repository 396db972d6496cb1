"""ESME events from their causes, and the faults that provoke them (`gbhub ctl fault EUI KIND ...`):
physical tamper, an unauthorised local-port attempt, supply voltage quality, load limiting, supply
outage and restore, low credit and disablement; and the alert / event behaviours (ECS25a, a1, a2,
a3) that decide whether each configurable event is sent as an alert, shown on HAN devices or
logged. Mixed into `meter.esme.Esme` (`EsmeEvents`, first in its bases).

Thresholds and periods are rig options of the ESME (`options = { voltage = {...}, load_limit =
{...}, credit_thresholds = {...} }`); the defaults follow GB practice where it is known [I: nominal
230 V, ESQCR statutory limits +10 % / -6 % for the average; the rest chosen]:

| option | default | drives |
|---|---|---|
| `voltage.nominal` | 230 V | the voltage when no fault is set |
| `voltage.average_over` / `average_under` | 253 / 216.2 V | average RMS over / under (0x8002 / 0x8006; back: 0x8085 / 0x8089) |
| `voltage.average_period_s` | 600 s | the averaging period (GBCS "RMS voltage measurement period") |
| `voltage.extreme_over` / `extreme_over_period_s` | 264.5 V / 10 s | extreme over voltage (0x8020; back: 0x808D) |
| `voltage.swell` / `swell_period_s` | 257.6 V / 30 s | swell (0x8024; back: 0x8091) |
| `voltage.sag` / `sag_period_s` | 207 V / 30 s | sag (0x802C; back: 0x8099) |
| `voltage.extreme_under` / `extreme_under_period_s` | 184 V / 10 s | extreme under voltage (0x8028; back: 0x8095) |
| `load_limit.threshold_w` / `period_s` | 23000 W / 60 s | active power import above the load limit (0x8F01) |
| `load_limit.action` | `"disable"` | `disable`: supply disabled then armed (0x8F33); `alert`: 0x8F01 only |
| `load_limit.restoration_s` | 300 s | armed supply enabled again after this (0x8F34); 0: stays armed |
| `power_thresholds.low_w` / `high_w` | 1000 / 3000 W | the power threshold status (low / medium / high) in `gbhub status` |
| `credit_thresholds.low` / `disablement` | £5.00 / £0.00 | low credit (0x810D), disablement (0x8F0F, supply disabled) |
| `outage_long_s` | 180 s | a restore after at least this is 0x8F36, else 0x8F35 |

A condition must hold for its period before its alert goes (and fail for the period before the
clearing alert); "average" compares the average over each measurement period. A polyphase meter
(`self.phases == 3`) uses the per-phase codes (0x8003.., 0x8021.., ...). During a supply outage the
meter draws nothing, measures no voltage events, and on restore sends 0x8F35 / 0x8F36 [I: the
real meter is unpowered; the emulated one keeps answering]. Voltage and load faults are measured
inputs and live in RAM (a restart measures normal again); an outage and the behaviours are in NVM.

Behaviours: bit n of a 512-bit filter stands for event code 0x8000 + n (`gbcs.usecases.behaviours`)
[I]; every bit set by default (all configurable events sent, shown and logged) [I]; critical alerts
(0x8Fxx) are always sent and logged.
"""
from __future__ import annotations

import logging
from collections import deque
from typing import Any, Callable

from gbcs.catalogue import AlertCode
from gbcs.dlms import Data, DataType
from gbcs.obis import OBIS, CosemObjectId
from gbcs.usecases.behaviours import BEHAVIOUR_BITS, FIRST_CODE, LAST_CODE
from gbhub.firmware import cosem
from gbhub.firmware.cosem import Attribute, CosemError, CosemObject, ObjectModel
from gbhub.firmware.faults import FaultError, arity, choice, fault, fault_kinds, number
from gbhub.firmware.gbcs_device import GbcsDevice

from .esme_state import NS, SUPPLY_ARMED, SUPPLY_DISABLED, SUPPLY_ENABLED

log = logging.getLogger("gbhub.esme")

BEHAVIOURS_NS = "behaviours"
POWER_LOG = "power_events"  # the power event log (outages and restores)

VOLTAGE_DEFAULTS = {
    "nominal": 230.0,
    "average_over": 253.0, "average_under": 216.2, "average_period_s": 600.0,
    "extreme_over": 264.5, "extreme_over_period_s": 10.0,
    "swell": 257.6, "swell_period_s": 30.0,
    "sag": 207.0, "sag_period_s": 30.0,
    "extreme_under": 184.0, "extreme_under_period_s": 10.0,
}
LOAD_LIMIT_DEFAULTS = {"threshold_w": 23000.0, "period_s": 60.0, "restoration_s": 300.0, "action": "disable"}
POWER_THRESHOLD_DEFAULTS = {"low_w": 1000.0, "high_w": 3000.0}
CREDIT_THRESHOLD_DEFAULTS = {"low": 5.0, "disablement": 0.0}
OUTAGE_LONG_S = 180.0

# instantaneous voltage conditions: name -> (is it met at volts v, raise code, clearing code)
_INSTANT: dict[str, tuple[Callable[[dict, float], bool], int, int]] = {
    "extreme_over": (lambda c, v: v > c["extreme_over"],
                     AlertCode.RMS_VOLTAGE_ABOVE_EXTREME_OVER_VOLTAGE_THRESHOLD_VOLTAGE_RISES_ABOVE_FOR_LONGER_THAN_THE_CONFIGURABLE_PERIOD,
                     AlertCode.RMS_VOLTAGE_ABOVE_EXTREME_OVER_VOLTAGE_THRESHOLD_VOLTAGE_RETURNS_BELOW_FOR_LONGER_THAN_THE_CONFIGURABLE_PERIOD),
    "swell": (lambda c, v: v > c["swell"],
              AlertCode.RMS_VOLTAGE_ABOVE_VOLTAGE_SWELL_THRESHOLD_VOLTAGE_RISES_ABOVE_FOR_LONGER_THAN_THE_CONFIGURABLE_PERIOD,
              AlertCode.RMS_VOLTAGE_ABOVE_VOLTAGE_SWELL_THRESHOLD_VOLTAGE_RETURNS_BELOW_FOR_LONGER_THAN_THE_CONFIGURABLE_PERIOD),
    "sag": (lambda c, v: v < c["sag"],
            AlertCode.RMS_VOLTAGE_BELOW_VOLTAGE_SAG_THRESHOLD_VOLTAGE_FALLS_BELOW_FOR_LONGER_THAN_THE_CONFIGURABLE_PERIOD,
            AlertCode.RMS_VOLTAGE_BELOW_VOLTAGE_SAG_THRESHOLD_VOLTAGE_RETURNS_ABOVE_FOR_LONGER_THAN_THE_CONFIGURABLE_PERIOD),
    "extreme_under": (lambda c, v: v < c["extreme_under"],
                      AlertCode.RMS_VOLTAGE_BELOW_EXTREME_UNDER_VOLTAGE_THRESHOLD_VOLTAGE_FALLS_BELOW_FOR_LONGER_THAN_THE_CONFIGURABLE_PERIOD,
                      AlertCode.RMS_VOLTAGE_BELOW_EXTREME_UNDER_VOLTAGE_THRESHOLD_VOLTAGE_RETURNS_ABOVE_FOR_LONGER_THAN_THE_CONFIGURABLE_PERIOD),
}
# average conditions: name -> (met at average v, raise code, clearing code)
_AVERAGE: dict[str, tuple[Callable[[dict, float], bool], int, int]] = {
    "average_over": (lambda c, v: v > c["average_over"],
                     AlertCode.AVERAGE_RMS_VOLTAGE_ABOVE_AVERAGE_RMS_OVER_VOLTAGE_THRESHOLD,
                     AlertCode.AVERAGE_RMS_VOLTAGE_BELOW_AVERAGE_RMS_OVER_VOLTAGE_THRESHOLD),
    "average_under": (lambda c, v: v < c["average_under"],
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
# ECS25* behaviour objects: behaviour -> object
BEHAVIOUR_OBJECTS: dict[str, CosemObjectId] = {
    "send": OBIS.ALERT_BEHAVIOURS_SUPPLIER,
    "han": OBIS.EVENT_BEHAVIOURS_HAN_SUPPLIER,
    "audible": OBIS.EVENT_BEHAVIOURS_AUDIBLE_SUPPLIER,
    "log": OBIS.EVENT_BEHAVIOURS_LOGGING_SUPPLIER,
}
HAN_EVENTS = 16  # events kept for HAN devices to show [I]


def _phase_code(code: int, phase: int | None) -> int:
    """The per-phase variant of a voltage / outage alert (phase 1..3 = code + 1..3) [S ALERTS]."""
    return code if phase is None else AlertCode(code + phase)


def _settings(defaults: dict, given: Any, what: str) -> dict:
    if given is None:
        return dict(defaults)
    if not isinstance(given, dict):
        raise ValueError(f"{what} must be a table of settings")
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise ValueError(f"{what}: unknown setting {unknown[0]!r} (known: {', '.join(defaults)})")
    out = dict(defaults)
    for k, v in given.items():
        if isinstance(defaults[k], str):
            out[k] = str(v)
        else:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ValueError(f"{what}.{k} must be a number")
            out[k] = float(v)
    return out


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

    def __init__(self, *args: Any, voltage: dict | None = None, load_limit: dict | None = None,
                 power_thresholds: dict | None = None, credit_thresholds: dict | None = None,
                 outage_long_s: float = OUTAGE_LONG_S, **kw: Any) -> None:
        self.voltage_settings = _settings(VOLTAGE_DEFAULTS, voltage, "voltage")
        self.load_limit_settings = _settings(LOAD_LIMIT_DEFAULTS, load_limit, "load_limit")
        if self.load_limit_settings["action"] not in ("disable", "alert"):
            raise ValueError("load_limit.action must be 'disable' or 'alert'")
        self.power_threshold_settings = _settings(POWER_THRESHOLD_DEFAULTS, power_thresholds, "power_thresholds")
        self.credit_threshold_settings = _settings(CREDIT_THRESHOLD_DEFAULTS, credit_thresholds, "credit_thresholds")
        self.outage_long_s = float(outage_long_s)
        self._measured: MeasuredLoad | None = None
        self._outage_since: float | None = None
        self._reset_measurements()
        self.han_events: deque[tuple[float, int]] = deque(maxlen=HAN_EVENTS)
        super().__init__(*args, **kw)

    def _reset_measurements(self) -> None:
        nominal = self.voltage_settings["nominal"]
        self._volts: dict[int, float] = {p: nominal for p in (1, 2, 3)}
        self._volt_timers: dict[int, Any] = {}
        self._conditions: dict[tuple[int, str], list] = {}  # (phase, name) -> [met, since, reported]
        self._average: dict[int, list] = {}  # phase -> [integral V*s, since]
        self._average_start = 0.0
        self._average_state: dict[tuple[int, str], bool] = {}  # (phase, name) -> reported
        self._average_timer = None
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
    # ---------------------------------------------------------------- settings set by commands
    _GROUPS = ("voltage", "load_limit", "power_thresholds", "credit_thresholds")

    def _settings_group(self, group: str) -> dict:
        if group not in self._GROUPS:
            raise KeyError(f"no event settings {group!r}")
        return getattr(self, f"{group.replace('thresholds', 'threshold')}_settings")

    def set_event_setting(self, group: str, key: str, value: float | str) -> None:
        """A threshold or period a command sets (e.g. the voltage, load limit or credit use cases'
        COSEM setters): kept in NVM over the rig's value (caller's transaction), in force at once."""
        settings = self._settings_group(group)
        if key not in settings:
            raise KeyError(f"no {group} setting {key!r}")
        value = str(value) if isinstance(settings[key], str) else float(value)
        overrides = self.nvm.get(BEHAVIOURS_NS, "settings", {})
        overrides.setdefault(group, {})[key] = value
        self.nvm.put(BEHAVIOURS_NS, "settings", overrides)
        old = settings[key]
        settings[key] = value
        self.nvm.on_rollback(lambda: settings.__setitem__(key, old))
        if (group, key) == ("voltage", "average_period_s") and self.state == "on":
            self._start_average()

    def _load_settings(self) -> None:
        for group, values in self.nvm.get(BEHAVIOURS_NS, "settings", {}).items():
            if group in self._GROUPS:
                settings = self._settings_group(group)
                settings.update({k: v for k, v in values.items() if k in settings})

    def _events_boot(self) -> None:
        self._load_settings()
        outage = self.nvm.get(NS, "outage")
        self._outage_since = None if outage is None else float(outage["since"])
        self._load_behaviours()
        self._start_average()

    def _events_off(self) -> None:
        if self._measured is not None:
            self._measured.watts = None
        self._reset_measurements()

    @property
    def phase_count(self) -> int:
        return 3 if getattr(self, "phases", 1) == 3 else 1

    # ---------------------------------------------------------------- alerts outside a command
    def _local_event(self, change: Callable[[], Any]) -> Any:
        """Run `change` in one NVM transaction, then send the alerts it queued."""
        self._alerts.clear()
        with self.nvm.transaction():
            result = change()
        self._after_local(self._take_alerts())
        return result

    # ================================================================ behaviours (ECS25*)
    def _load_behaviours(self) -> None:
        self._behaviours = {name: self.nvm.get(BEHAVIOURS_NS, name) for name in BEHAVIOUR_OBJECTS}

    def behaviour_enabled(self, behaviour: str, code: int) -> bool:
        """Whether configurable event `code` is sent / shown on HAN devices / logged; non-configurable
        (critical) ones always are."""
        if not FIRST_CODE <= code <= LAST_CODE:
            return True
        bits = getattr(self, "_behaviours", {}).get(behaviour)
        return bits is None or bits[code - FIRST_CODE] == "1"

    def _behaviour_attribute(self, behaviour: str) -> Attribute:
        def get() -> Data:
            bits = self._behaviours.get(behaviour)
            return Data.bit_string(bits if bits is not None else "1" * BEHAVIOUR_BITS)

        def put(value: Data) -> None:
            if value.type is not DataType.BIT_STRING or len(value.value.bits) != BEHAVIOUR_BITS:
                raise CosemError(cosem.TYPE_UNMATCHED, f"behaviours are a bit-string of {BEHAVIOUR_BITS} bits")
            bits = value.value.bits
            self.nvm.put(BEHAVIOURS_NS, behaviour, bits)
            self._behaviours[behaviour] = bits
            self.nvm.on_rollback(self._load_behaviours)

        return Attribute(get=get, set=put)

    def _add_event_objects(self, model: ObjectModel) -> None:
        """The behaviour objects (ECS25a, a1, a2, a3) in the ESME's object model."""
        self._behaviours = {}
        for behaviour, oid in BEHAVIOUR_OBJECTS.items():
            model.add(CosemObject.of(oid, {2: self._behaviour_attribute(behaviour)}))

    async def raise_alert(self, alert_code: int, **kw: Any) -> bytes | None:
        if self.behaviour_enabled("han", alert_code) and FIRST_CODE <= alert_code <= LAST_CODE:
            self.han_events.append((self.clock.now(), alert_code))
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

        def change() -> None:
            self.log_security(int(code), cause=what)
            self._queue_alert(code)

        self._local_event(change)
        if seconds is not None:
            old = self._physical_timers.pop(kind, None)
            if old is not None:
                old.cancel()
            self._physical_timers[kind] = self.call_later(float(seconds), self._physical_end, kind)
        return {"alert": f"0x{code:04X}", **({"ends_in_s": seconds, "end_alert": f"0x{end_code:04X}"} if seconds else {})}

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
                self._volt_timers[p] = self.call_later(float(seconds), self._set_voltage, p, self.voltage_settings["nominal"])
        return {"volts": volts, "phases": phases, **({"for_s": seconds} if seconds is not None else {})}

    def _set_voltage(self, phase: int, volts: float) -> None:
        now = self.clock.now()
        self._accumulate(now)
        self._volts[phase] = volts
        c = self.voltage_settings
        for name, (met_at, _code, _clear) in _INSTANT.items():
            state = self._conditions.setdefault((phase, name), [False, now, False])
            met = met_at(c, volts)
            if met != state[0]:
                state[0], state[1] = met, now
                if met != state[2]:
                    self.call_at(now + c[f"{name}_period_s"], self._check_voltage)
        self._check_voltage()

    def _check_voltage(self) -> None:
        """Raise or clear each instantaneous condition that has held for its period."""
        if self._outage_since is not None or self.state == "off":
            return
        now = self.clock.now()
        c = self.voltage_settings
        polyphase = self.phase_count == 3

        def change() -> None:
            for (phase, name), state in self._conditions.items():
                met, since, reported = state
                if met != reported and now - since >= c[f"{name}_period_s"] - 1e-6:
                    state[2] = met
                    _met, raise_code, clear_code = _INSTANT[name]
                    code = _phase_code(raise_code if met else clear_code, phase if polyphase else None)
                    self.log_event(int(code), volts=self._volts[phase], phase=phase)
                    self._queue_alert(code)

        self._local_event(change)

    def _start_average(self) -> None:
        now = self.clock.now()
        self._average = {p: [0.0, now] for p in (1, 2, 3)}
        self._average_start = now
        if self._average_timer is not None:
            self._average_timer.cancel()
        self._average_timer = self.every(self.voltage_settings["average_period_s"], self._close_average)

    def _accumulate(self, now: float) -> None:
        for p, acc in self._average.items():
            if now > acc[1]:
                acc[0] += self.measured_voltage(p) * (now - acc[1])
                acc[1] = now

    def _close_average(self, _t: float) -> None:
        """End of a measurement period: compare each phase's average with the average limits."""
        now = self.clock.now()
        self._accumulate(now)
        span = now - self._average_start  # the first period after boot is a part of one
        outage = self._outage_since is not None
        averages = {p: self._average[p][0] / span for p in range(1, self.phase_count + 1)} if span > 0 else {}
        self._average = {p: [0.0, now] for p in (1, 2, 3)}
        self._average_start = now
        if outage or not averages:
            return
        c = self.voltage_settings
        polyphase = self.phase_count == 3

        def change() -> None:
            for phase, avg in averages.items():
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
        w = self.power_w() if watts is None else watts
        t = self.power_threshold_settings
        return "low" if w < t["low_w"] else "medium" if w < t["high_w"] else "high"

    def _check_load(self) -> None:
        if self._load_timer is not None:
            self._load_timer.cancel()
            self._load_timer = None
        if self.power_w() > self.load_limit_settings["threshold_w"]:
            self._load_timer = self.call_later(self.load_limit_settings["period_s"], self._load_limit_reached)

    def _load_limit_reached(self) -> None:
        self._load_timer = None
        s = self.load_limit_settings
        if self.power_w() <= s["threshold_w"]:
            return

        def change() -> bool:
            self.log_event(int(AlertCode.ACTIVE_POWER_IMPORT_ABOVE_LOAD_LIMIT_THRESHOLD), watts=self.power_w())
            self._queue_alert(AlertCode.ACTIVE_POWER_IMPORT_ABOVE_LOAD_LIMIT_THRESHOLD)
            if s["action"] != "disable" or self._supply_state() != SUPPLY_ENABLED:
                return False
            self._set_supply(SUPPLY_ARMED, cause="load_limit")
            self._alerts[:] = [a for a in self._alerts if a[0] != AlertCode.SUPPLY_ARMED]  # 0x8F33 says it
            self._queue_alert(AlertCode.SUPPLY_DISABLED_THEN_ARMED_LOAD_LIMIT_TRIGGERED)
            return True

        if self._local_event(change) and s["restoration_s"] > 0:
            self._restore_timer = self.call_later(s["restoration_s"], self._load_limit_restore)
        elif s["action"] == "alert":
            self._check_load()  # still above: alert again after another period

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
            self.append_log(POWER_LOG, int(AlertCode.SUPPLY_INTERRUPTED), time=self.device_now())
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
                self.append_log(POWER_LOG, int(code), outage_s=round(length, 3), time=self.device_now())
                self._queue_alert(code)

        self._local_event(change)
        self._outage_since = None
        self._check_load()  # the load is back
        return {"outage_s": round(length, 3), "alerts": [f"0x{c:04X}" for c in codes]}

    def power_events(self) -> list[dict]:
        """The power event log: outages and restores."""
        return self.read_log(POWER_LOG)

    # ================================================================ credit
    def _combined_credit(self) -> float:
        p = self._prepay()
        return p["credit"] + max(0.0, p["ec_remaining"])

    def _debit(self, pence: float, at: float) -> None:
        before = self._combined_credit()
        super()._debit(pence, at)  # disables the supply when credit and emergency credit are gone
        self._check_credit(before)
        if (self._prepay()["mode"] == "prepayment" and self._supply_state() == SUPPLY_ENABLED
                and self._combined_credit() <= self.credit_threshold_settings["disablement"] * 100):
            self._set_supply(SUPPLY_DISABLED, cause="credit", at=at)  # a disablement threshold above £0
            self._queue_alert(AlertCode.CREDIT_BELOW_DISABLEMENT_THRESHOLD)

    def _check_credit(self, before: float) -> None:
        """Combined credit fell below the low credit threshold: 0x810D (prepayment mode)."""
        if self._prepay()["mode"] != "prepayment":
            return
        low = self.credit_threshold_settings["low"] * 100
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
            disablement = self.credit_threshold_settings["disablement"] * 100
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


__all__ = ["EsmeEvents", "MeasuredLoad", "VOLTAGE_DEFAULTS", "LOAD_LIMIT_DEFAULTS", "CREDIT_THRESHOLD_DEFAULTS",
           "POWER_THRESHOLD_DEFAULTS", "BEHAVIOUR_OBJECTS", "POWER_LOG"]
