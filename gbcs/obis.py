"""The COSEM objects GBCS use cases address: interface class and logical name (OBIS), by the
object's name in the GBCS object list / DLMS Blue Book, written once.

Use `OBIS.CLOCK` (or `OBJECTS["CLOCK"]`): `.class_id`, `.obis` (6 bytes) and `.text`
("0-0:1.0.0.255"). Devices and builders name objects through this table; nothing above `gbcs/`
writes an OBIS literal. Confidence tags as in FACTS.md: [O] observed in RTDS, [I] inferred.
"""
from __future__ import annotations

from .codec import frozen_dataclass
from .dlms import obis as _obis


@frozen_dataclass
class CosemObjectId:
    """One interface object: its name, interface class and logical name."""

    name: str
    class_id: int
    obis: bytes
    text: str
    note: str = ""

    @property
    def key(self) -> tuple[int, bytes]:
        return (self.class_id, self.obis)


# name, interface class, logical name, note. Names follow the GBCS ESME/CHF object lists where RTDS
# shows the object in a use case [O]; meanings we could not confirm are tagged [I].
_ROWS: tuple[tuple[str, int, str, str], ...] = (
    # -- common
    ("CLOCK", 8, "0-0:1.0.0.255", "Clock (ECS70) [O]"),
    ("DEVICE_FIRMWARE_VERSION", 1, "0-0:0.2.1.255", "firmware version (ECS52) [O]"),
    ("UTC_TIME", 1, "0-0:94.44.100.255", "GBCS UTC time: the restricting object of log range selections [O]"),
    ("EVENT_LOG", 7, "0-0:99.98.0.255", "event log (ECS35a) [O]"),
    ("SECURITY_LOG", 7, "0-0:99.98.1.255", "security log (ECS35b) [O]"),
    # -- CHF
    ("ZIGBEE_NETWORK_CONTROL", 104, "0-0:30.3.0.255", "CHF device log, joining (CCS01/02/03/06) [O]"),
    # -- ESME metering
    ("ACTIVE_IMPORT_REGISTER", 3, "1-0:1.8.0.255", "total active import energy [O]"),
    ("IMPORT_ENERGY_REGISTERS", 1, "0-0:94.44.34.10", "import energy read (ECS17b) [O]"),
    ("INSTANTANEOUS_ACTIVE_POWER_IMPORT", 1, "0-0:94.44.34.20", "power read (ECS17c) [O]"),
    ("ACTIVE_IMPORT_PROFILE", 7, "0-0:99.1.0.255", "half-hour profile data log (ECS22b) [O]"),
    ("DAILY_READ_LOG", 7, "0-0:98.1.9.255", "daily read log (ECS21a) [O]"),
    ("DAILY_READ_PROTECTION", 30, "0-0:43.2.5.255", "data protection for daily reads (ECS21a) [O]"),
    ("PROFILE_DATA_PROTECTION", 30, "0-0:43.2.7.255", "data protection for profile data (ECS22b) [O]"),
    ("ENERGY_REGISTERS_PROTECTION", 30, "0-0:43.2.8.255", "data protection for register reads (ECS17b) [O]"),
    # -- ESME supply
    ("LOAD_SWITCH_SCRIPT_TABLE", 9, "0-0:10.0.106.255", "disconnect control scripts (ECS42/43/44) [O]"),
    ("DISCONNECT_CONTROL", 70, "0-0:96.3.10.255", "supply state (ECS45) [O]"),
    # -- ESME tariff and prepayment
    ("TOKEN_GATEWAY", 115, "0-0:19.40.0.255", "UTRN entry (CS01a) [O]"),
    ("TARIFF_SWITCHING_SCRIPT_TABLE", 9, "0-0:10.0.100.255", "TOU switching scripts named by day profiles [O]"),
    ("ACTIVITY_CALENDAR", 20, "0-0:13.0.0.255", "tariff calendar (ECS01a, ECS24) [O]"),
    ("SPECIAL_DAYS_TABLE", 11, "0-0:11.0.0.255", "special days, active [O]"),
    ("SPECIAL_DAYS_TABLE_PASSIVE", 11, "0-1:11.0.0.255", "special days, passive [O]"),
    ("BLOCK_MODE", 9000, "0-0:94.44.2.0", "tariff block mode: attr 2 active, 4 passive, 6 activation time [O; I]"),
    ("SPECIAL_DAYS_SWITCH", 9000, "0-0:94.44.128.29", "attr 6: special days activation time [I]"),
    ("BLOCK_THRESHOLDS_SWITCH", 9000, "0-0:63.1.1.255", "attr 6: block thresholds activation time [I]"),
    ("CURRENCY_UNITS", 3, "0-0:94.44.1.7", "currency units / price scale [O; meaning U]"),
    ("STANDING_CHARGE", 113, "0-0:19.20.4.255", "standing charge (ECS01a/b, ECS24) [O]"),
    ("UNIT_CHARGE", 113, "0-0:19.20.0.255", "price matrix (ECS01a/b, ECS24) [O]"),
    # -- ESME: the rest of the GBCS ESME object list as RTDS shows it (class, OBIS, attribute per request;
    # types from the reference responses) [O]; names from the use case that addresses them, meanings [I]
    ("REGISTERS_TOU_BLOCK", 1, "0-0:94.44.34.2", "TOU and block registers (ECS17e, protected) [O]"),
    ("TOU_BLOCK_PROTECTION", 30, "0-0:43.2.10.255", "data protection for TOU/block registers (ECS17e) [O]"),
    ("PREPAYMENT_REGISTERS", 1, "0-0:94.44.34.30", "meter balance, emergency credit, debts (ECS19, protected) [O; meanings I]"),
    ("PREPAYMENT_PROTECTION", 30, "0-0:43.2.1.255", "data protection for prepayment registers (ECS19) [O]"),
    ("BILLING_LOG_CALENDAR", 7, "0-0:98.1.0.255", "billing data log, billing calendar triggered (ECS20c) [O]"),
    ("BILLING_LOG_CALENDAR_PREPAYMENT", 7, "0-0:98.1.1.255", "billing data log, calendar triggered: prepayment part (ECS20c) [O]"),
    ("BILLING_LOG_CHANGE", 7, "0-0:98.1.2.255", "billing data log, change of mode / tariff triggered (ECS20b) [O]"),
    ("BILLING_LOG_CALENDAR_PROTECTION", 30, "0-0:43.2.2.255", "data protection for the calendar billing log (ECS20c) [O]"),
    ("BILLING_LOG_CHANGE_PROTECTION", 30, "0-0:43.2.3.255", "data protection for the change billing log (ECS20b) [O]"),
    ("DEBT_PAYMENT_LOG", 7, "0-0:98.1.4.255", "billing data log: payment-based debt payments (ECS20a) [O]"),
    ("PREPAYMENT_CREDIT_LOG", 7, "0-0:98.1.5.255", "billing data log: prepayment credits (ECS20d) [I]"),
    ("PREPAYMENT_DAILY_READ_LOG", 7, "0-0:98.1.3.255", "prepayment daily read log (ECS21b) [I]"),
    ("EXPORT_DAILY_READ_LOG", 7, "0-0:98.1.6.255", "daily read log, export (ECS21c) [I]"),
    ("DAILY_CONSUMPTION_LOG", 7, "0-0:99.1.3.255", "daily consumption log (ECS66) [O]"),
    ("DAILY_CONSUMPTION_PROTECTION", 30, "0-0:43.2.4.255", "data protection for the daily consumption log (ECS66) [O]"),
    ("EXPORT_PROFILE", 7, "0-0:99.1.1.255", "half-hour profile data log, export (ECS22a) [O]"),
    ("REACTIVE_IMPORT_PROFILE", 7, "0-0:99.1.2.255", "half-hour profile data log, reactive import (ECS22c) [I]"),
    ("ALCS_EVENT_LOG", 7, "0-17:99.98.2.255", "ALCS event log (ECS35g) [O]"),
    ("POWER_EVENT_LOG", 7, "0-0:99.97.0.255", "power event log (ECS35e) [I]"),
    ("EXPORT_ENERGY_REGISTER", 3, "1-0:2.8.0.255", "total active export energy (ECS17a) [I]"),
    ("REACTIVE_EXPORT_REGISTER", 3, "1-0:4.8.0.255", "total reactive export energy (ECS17a) [I]"),
    ("TOU_REGISTERS", 1, "0-0:94.44.34.1", "TOU registers (ECS17d) [I]"),
    ("MAX_DEMAND_PERIOD_START", 1, "0-0:94.44.5.0", "maximum demand configurable period: start (ECS18b) [O]"),
    ("MAX_DEMAND_PERIOD_END", 1, "0-0:94.44.5.1", "maximum demand configurable period: end (ECS18b) [O]"),
    ("MAX_DEMAND_IMPORT", 4, "1-0:1.6.0.255", "maximum demand, active import (ECS18b, ECS57) [O]"),
    ("MAX_DEMAND_IMPORT_PERIOD", 4, "1-0:1.6.1.255", "maximum demand, active import in the configurable period (ECS18b, ECS57) [O]"),
    ("MAX_DEMAND_EXPORT", 4, "1-0:2.6.0.255", "maximum demand, active export (ECS18a, ECS57) [O]"),
    ("MAX_DEMAND_SCHEDULE", 10, "0-0:12.0.0.255", "maximum demand configurable time period (ECS37, ECS18b) [O]"),
    ("NON_DISABLEMENT_SCHEDULE", 10, "0-0:12.0.1.255", "prepayment non-disablement calendar, active (ECS26a) [O; meaning I]"),
    ("NON_DISABLEMENT_SCHEDULE_PASSIVE", 10, "0-1:12.0.1.255", "prepayment non-disablement calendar, passive (ECS08a) [O; meaning I]"),
    ("AUX_SCHEDULE", 10, "0-0:12.0.2.255", "auxiliary controller calendar, active (ECS61a) [O]"),
    ("AUX_SCHEDULE_PASSIVE", 10, "0-1:12.0.2.255", "auxiliary controller calendar, passive (ECS46d) [O]"),
    ("NON_DISABLEMENT_SPECIAL_DAYS", 11, "0-0:11.0.2.255", "prepayment non-disablement special days, active (ECS26a) [O; meaning I]"),
    ("NON_DISABLEMENT_SPECIAL_DAYS_PASSIVE", 11, "0-1:11.0.2.255", "non-disablement special days, passive (ECS08a) [O]"),
    ("AUX_SPECIAL_DAYS", 11, "0-0:11.0.3.255", "auxiliary controller special days, active (ECS61a) [O]"),
    ("AUX_SPECIAL_DAYS_PASSIVE", 11, "0-1:11.0.3.255", "auxiliary controller special days, passive (ECS46d) [O]"),
    ("BILLING_CALENDAR", 22, "0-0:15.0.0.255", "billing calendar, single action schedule (ECS26l, ECS30a) [O]"),
    ("BLOCK_COUNTER_RESET", 22, "0-0:15.1.0.255", "daily reset of the tariff block counter matrix (ECS48) [O]"),
    ("DEBT_RECOVERY_THRESHOLD", 21, "0-0:16.0.1.255", "register monitor: thresholds (ECS26a) [O; meaning I]"),
    ("VOLTAGE_MONITOR", 71, "0-0:17.0.0.255", "limiter: load limit (ECS27, ECS28a) [O]"),
    ("AVERAGE_OVER_VOLTAGE", 71, "0-0:17.0.1.255", "limiter: average RMS over-voltage threshold / period (ECS26b, ECS29a) [O]"),
    ("AVERAGE_UNDER_VOLTAGE", 71, "0-0:17.0.2.255", "limiter: average RMS under-voltage (ECS26b, ECS29a) [O]"),
    ("EXTREME_OVER_VOLTAGE", 71, "0-0:17.0.3.255", "limiter: extreme over-voltage (ECS26b, ECS29a) [O]"),
    ("EXTREME_UNDER_VOLTAGE", 71, "0-0:17.0.4.255", "limiter: extreme under-voltage (ECS26b, ECS29a) [O]"),
    ("ACCOUNT", 111, "0-0:19.0.0.255", "account: payment mode, credit configuration (ECS26a) [O]"),
    ("ACCOUNT_PASSIVE", 111, "0-1:19.0.0.255", "account, passive: payment mode change (ECS02/ECS03) [O]"),
    ("TOKEN_CREDIT", 112, "0-0:19.10.0.255", "credit: token credit = meter balance (ECS04a/b) [I]"),
    ("EMERGENCY_CREDIT", 112, "0-0:19.10.1.255", "credit: emergency credit (ECS26a, ECS09) [O; method I]"),
    ("TIME_DEBT_1", 113, "0-0:19.20.1.255", "charge: time-based debt 1 (ECS26a, ECS07) [O]"),
    ("TIME_DEBT_2", 113, "0-0:19.20.2.255", "charge: time-based debt 2 (ECS26a, ECS07) [O]"),
    ("PAYMENT_DEBT", 113, "0-0:19.20.3.255", "charge: payment-based debt (ECS26a, ECS07) [O]"),
    ("RANDOMISED_OFFSET_LIMIT", 1, "0-0:94.44.0.0", "randomised offset limit (ECS26c) [O]"),
    ("RANDOMISED_OFFSET", 1, "0-0:94.44.0.1", "randomised offset number (ECS26c, ECS38) [O]"),
    ("RANDOMISED_OFFSET_PERIOD", 1, "0-0:94.44.0.2", "randomisation period (ECS26c) [O]"),
    ("LOAD_LIMIT_SUPPLY_STATE", 9000, "0-0:94.44.0.3", "load limit supply state flag (ECS27, ECS28a) [O]"),
    ("SUPPLY_TAMPER_STATE", 1, "0-0:94.44.0.4", "supply tamper state (ECS81, ECS26m) [O]"),
    ("LOAD_LIMIT_COUNTER", 3, "0-0:94.44.42.255", "load limit counter (ECS27, ECS28b) [O]"),
    ("CHANGE_OF_TENANCY", 1, "0-0:94.44.3.2", "change of tenancy date (ECS12) [O]"),
    ("MPAN_IMPORT", 1, "0-0:94.44.34.11", "MPAN (ECS39a, ECS40) [O]"),
    ("MPAN_EXPORT", 1, "1-0:0.0.2.255", "export MPAN (ECS39b, ECS40) [O]"),
    ("CIN", 1, "0-3:96.13.1.255", "customer identification number (ECS50) [O]"),
    ("SUPPLIER_MESSAGE", 1, "0-0:96.13.0.255", "message for the consumer (ECS10) [I]"),
    ("SUPPLIER_CONTACT", 1, "0-0:94.44.3.1", "supplier name and telephone (ECS16) [I]"),
    ("PRIVACY_PIN", 1, "0-0:94.44.3.3", "privacy PIN protection (ECS14) [I]"),
    ("MAX_METER_BALANCE", 9000, "0-0:94.44.2.20", "maximum meter balance (ECS08a, ECS26a) [O; meaning I]"),
    ("MAX_CREDIT_THRESHOLD", 9000, "0-0:94.44.2.10", "maximum credit threshold (ECS08a, ECS26a) [O; meaning I]"),
    ("LOW_CREDIT_THRESHOLD", 9000, "0-0:94.44.128.3", "low credit threshold (ECS08a) [O; meaning I]"),
    ("EMERGENCY_CREDIT_THRESHOLD", 9000, "0-0:94.44.128.2", "emergency credit threshold (ECS08a) [O; meaning I]"),
    ("EMERGENCY_CREDIT_LIMIT", 9000, "0-0:94.44.128.9", "emergency credit limit (ECS08a) [O; meaning I]"),
    ("DEBT_RECOVERY_CAP_PERIOD", 9000, "0-0:94.44.128.12", "debt recovery rate cap period (ECS08a) [O; meaning I]"),
    ("DEBT_RECOVERY_CAP_AMOUNT", 9000, "0-0:94.44.128.13", "debt recovery rate cap amount (ECS08a) [O; meaning I]"),
    ("AUX_SPECIAL_DAYS_SWITCH", 9000, "0-0:94.44.128.26", "attr 6: auxiliary special days activation (ECS46d) [O]"),
    ("NON_DISABLEMENT_SCHEDULE_SWITCH", 9000, "0-0:94.44.128.28", "attr 6: non-disablement calendar activation (ECS08a) [O]"),
    ("NON_DISABLEMENT_SPECIAL_DAYS_SWITCH", 9000, "0-0:94.44.128.31", "attr 6: non-disablement special days activation (ECS08a) [O]"),
    ("AUX_SCHEDULE_SWITCH", 9000, "0-0:94.44.128.35", "attr 6: auxiliary calendar activation (ECS46d) [O]"),
    ("MAX_DEMAND_SCRIPT_TABLE", 9, "0-0:10.128.100.255", "scripts the max demand period schedule runs (ECS37) [O]"),
    ("AUX_SWITCH_SCRIPT_TABLE", 9, "0-0:10.0.103.255", "auxiliary load control switch scripts (ECS47, ECS47a) [O]"),
    ("BOOST_DURATION", 1, "0-0:94.44.117.1", "ALCS boost duration (ECS47) [O; meaning I]"),
    ("BOOST_DURATION_2", 1, "0-0:94.44.117.2", "second boost duration (ECS47a) [O; meaning I]"),
    ("APC_INPUT_START", 1, "0-0:94.44.119.1", "APC input: start (ECS47a) [O; meaning I]"),
    ("APC_INPUT_END", 1, "0-0:94.44.119.2", "APC input: end (ECS47a) [O; meaning I]"),
    ("AUX_STATE_START", 1, "0-0:94.44.121.1", "auxiliary controller state: start (ECS47a) [O; meaning I]"),
    ("AUX_STATE_END", 1, "0-0:94.44.121.2", "auxiliary controller state: end (ECS47a) [O; meaning I]"),
    *((f"ALCS_LABEL_{i}", 1, f"0-0:94.44.0.{10 + i}", f"ALCS / HCALCS {i} label (ECS61a, ECS46a) [O]") for i in range(1, 6)),
    *((f"ALCS_HCALCS_{i}", 1, f"0-0:94.44.0.{20 + i}", f"HCALCS {i} EUI (ECS61a, ECS46c) [O]") for i in range(1, 6)),
    *((f"BOOST_BUTTON_{i}", 1, f"0-0:94.44.6.{i}", f"boost button associated with ALCS {i} (ECS62, ECS61c) [O]") for i in range(1, 6)),
    *((f"ALCS_{i}", 70, f"0-{i}:96.3.10.255", f"auxiliary load control switch {i} state (ECS61a) [O]") for i in range(1, 6)),
    ("ALERT_BEHAVIOURS_SUPPLIER", 1, "0-30:97.98.11.255", "alert behaviours, supplier: 512-bit mask (ECS25a) [O]"),
    ("ALERT_BEHAVIOURS_NETWORK_OPERATOR", 1, "0-33:97.98.11.255", "alert behaviours, network operator (ECS25b) [I]"),
    ("EVENT_BEHAVIOURS_HAN", 1, "0-30:97.98.12.255", "event behaviours: to HAN device, supplier (ECS25a1) [I]"),
    ("EVENT_BEHAVIOURS_AUDIBLE", 1, "0-30:97.98.13.255", "event behaviours: audible alarm, supplier (ECS25a2) [O]"),
    ("EVENT_BEHAVIOURS_LOG", 1, "0-30:97.98.14.255", "event behaviours: logging, supplier (ECS25a3) [O]"),
    ("EVENT_BEHAVIOURS_LOG_NETWORK_OPERATOR", 1, "0-33:97.98.14.255", "event behaviours: logging, network operator (ECS25b3) [O]"),
    ("RMS_VOLTAGE_PROFILE", 7, "1-0:32.24.0.255", "average RMS voltage profile: attr 4 period (ECS29a) [O]"),
    ("RMS_VOLTAGE_PROFILE_L2", 7, "1-0:52.24.0.255", "phase 2 (ECS29b) [O]"),
    ("RMS_VOLTAGE_PROFILE_L3", 7, "1-0:72.24.0.255", "phase 3 (ECS29b) [O]"),
    ("SAG_THRESHOLD", 1, "1-0:32.31.0.4", "voltage sag threshold (ECS26b, ECS29a) [O; meaning I]"),
    ("SWELL_THRESHOLD", 1, "1-0:32.35.0.4", "voltage swell threshold (ECS26b, ECS29a) [O; meaning I]"),
    ("SAG_THRESHOLD_L2", 1, "1-0:52.31.0.4", "phase 2 (ECS26k, ECS29b) [O]"),
    ("SWELL_THRESHOLD_L2", 1, "1-0:52.35.0.4", "phase 2 (ECS26k, ECS29b) [O]"),
    ("SAG_THRESHOLD_L3", 1, "1-0:72.31.0.4", "phase 3 (ECS26k, ECS29b) [O]"),
    ("SWELL_THRESHOLD_L3", 1, "1-0:72.35.0.4", "phase 3 (ECS26k, ECS29b) [O]"),
    ("SAG_COUNTER", 3, "1-0:32.32.0.4", "voltage sag counter: method 1 reset (ECS29a/e, ECS23) [O]"),
    ("SWELL_COUNTER", 3, "1-0:32.36.0.4", "voltage swell counter (ECS29a/e, ECS23) [O]"),
    ("SAG_COUNTER_L2", 3, "1-0:52.32.0.4", "phase 2 (ECS29b/f) [O]"),
    ("SWELL_COUNTER_L2", 3, "1-0:52.36.0.4", "phase 2 (ECS29b/f) [O]"),
    ("SAG_COUNTER_L3", 3, "1-0:72.32.0.4", "phase 3 (ECS29b/f) [O]"),
    ("SWELL_COUNTER_L3", 3, "1-0:72.36.0.4", "phase 3 (ECS29b/f) [O]"),
    ("AVERAGE_RMS_VOLTAGE", 3, "1-0:32.25.0.255", "average RMS voltage (ECS23) [I]"),
    ("AVERAGE_RMS_VOLTAGE_L2", 3, "1-0:52.25.0.255", "phase 2 (ECS23b) [I]"),
    ("AVERAGE_RMS_VOLTAGE_L3", 3, "1-0:72.25.0.255", "phase 3 (ECS23b) [I]"),
    ("SAG_DURATION", 3, "1-0:32.33.0.4", "voltage sag duration (ECS23) [I]"),
    ("SWELL_DURATION", 3, "1-0:32.37.0.4", "voltage swell duration (ECS23) [I]"),
    ("POWER_THRESHOLDS", 1, "0-0:94.44.4.0", "instantaneous power thresholds (ECS34, ECS26f) [I]"),
    ("DEVICE_IDENTITY", 1, "0-0:96.1.0.255", "device identity: meter serial number (ECS26e, ECS26m) [I]"),
    ("DEVICE_TYPE_ID", 1, "0-0:96.1.1.255", "device type / model (ECS26e, ECS26m) [I]"),
    ("METER_BALANCE", 3, "0-0:94.44.14.0", "meter balance (ECS82) [I]"),
    ("LOAD_LIMIT_PASSIVE", 71, "0-1:17.0.0.255", "load limit settings, passive (ECS28a future-dated) [I]"),
    ("LOAD_LIMIT_SUPPLY_STATE_PASSIVE", 9000, "0-1:94.44.0.3", "load limit restoration flag, passive (ECS28a) [I]"),
    ("LOAD_LIMIT_SWITCH", 9000, "0-0:94.44.128.40", "attr 6: load limit settings activation (ECS28a) [I]"),
    *((f"ALCS_HCALCS_{i}_PASSIVE", 1, f"0-1:94.44.0.{20 + i}", f"HCALCS {i} EUI, passive (ECS46c future-dated) [I]")
      for i in range(1, 6)),
    ("ALCS_CONFIG_SWITCH", 9000, "0-0:94.44.128.41", "attr 6: ALCS / HCALCS configuration activation (ECS46c) [I]"),
    ("ACTIVITY_CALENDAR_SECONDARY", 20, "0-0:13.0.1.255", "tariff calendar of the second element (ECS01c, ECS24b) [I]"),
    ("UNIT_CHARGE_SECONDARY", 113, "0-0:19.20.5.255", "price matrix of the second element (ECS01c/d, ECS24b) [I]"),
    ("SECONDARY_IMPORT_REGISTER", 3, "1-0:1.8.1.255", "secondary element active import (twin element, ECS17b) [I]"),
    *((f"BLOCK_THRESHOLDS_{i + 1}", 21, f"0-0:16.0.{11 + i}.255", f"block tariff {i + 1} thresholds, active [O]")
      for i in range(8)),
    *((f"BLOCK_THRESHOLDS_{i + 1}_PASSIVE", 21, f"0-0:16.1.{11 + i}.255", f"block tariff {i + 1} thresholds, passive [O]")
      for i in range(8)),
)

OBJECTS: dict[str, CosemObjectId] = {
    name: CosemObjectId(name, class_id, _obis(text), text, note) for name, class_id, text, note in _ROWS
}
BY_OBIS: dict[bytes, CosemObjectId] = {o.obis: o for o in OBJECTS.values()}


class _Names:
    """Attribute access to `OBJECTS` (`OBIS.CLOCK`)."""

    def __init__(self, objects: dict[str, CosemObjectId]) -> None:
        self.__dict__.update(objects)

    def __iter__(self):
        return iter(OBJECTS.values())


OBIS = _Names(OBJECTS)
BLOCK_THRESHOLDS = tuple(OBJECTS[f"BLOCK_THRESHOLDS_{i + 1}"] for i in range(8))
BLOCK_THRESHOLDS_PASSIVE = tuple(OBJECTS[f"BLOCK_THRESHOLDS_{i + 1}_PASSIVE"] for i in range(8))


def by_obis(ln: bytes) -> CosemObjectId | None:
    return BY_OBIS.get(bytes(ln))


__all__ = ["CosemObjectId", "OBIS", "OBJECTS", "BY_OBIS", "BLOCK_THRESHOLDS", "BLOCK_THRESHOLDS_PASSIVE",
           "by_obis"]
