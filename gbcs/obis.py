"""The COSEM objects GBCS use cases address: interface class and logical name (OBIS), by the
object's name in the GBCS object list / DLMS Blue Book, written once.

Use `OBIS.CLOCK` (or `OBJECTS["CLOCK"]`): `.class_id`, `.obis` (6 bytes) and `.text`
("0-0:1.0.0.255"). Devices and builders name objects through this table; nothing above `gbcs/`
writes an OBIS literal. Confidence tags as in FACTS.md: [O] observed in RTDS, [I] inferred.
"""
from __future__ import annotations

from dataclasses import dataclass

from .dlms import obis as _obis


@dataclass(frozen=True, slots=True)
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
    *((f"BLOCK_THRESHOLDS_{i + 1}", 21, f"0-0:16.0.{11 + i}.255", f"block tariff {i + 1} thresholds, active [O]")
      for i in range(8)),
    *((f"BLOCK_THRESHOLDS_{i + 1}_PASSIVE", 21, f"0-0:16.1.{11 + i}.255", f"block tariff {i + 1} thresholds, passive [O]")
      for i in range(8)),
    # -- ESME alert and event behaviours (ECS25*): 512-bit filters, bit n = event code 0x8000 + n [O objects; bit map I]
    ("ALERT_BEHAVIOURS_SUPPLIER", 1, "0-30:97.98.11.255", "alerts sent to the supplier (ECS25a) [O]"),
    ("EVENT_BEHAVIOURS_HAN_SUPPLIER", 1, "0-30:97.98.12.255", "events shown on HAN devices (ECS25a1) [I]"),
    ("EVENT_BEHAVIOURS_AUDIBLE_SUPPLIER", 1, "0-30:97.98.13.255", "audible alarm (ECS25a2) [O]"),
    ("EVENT_BEHAVIOURS_LOGGING_SUPPLIER", 1, "0-30:97.98.14.255", "events logged (ECS25a3) [O]"),
    ("ALERT_BEHAVIOURS_NETWORK_OPERATOR", 1, "0-33:97.98.11.255", "alerts sent to the network operator (ECS25b) [I]"),
    ("EVENT_BEHAVIOURS_LOGGING_NETWORK_OPERATOR", 1, "0-33:97.98.14.255", "events logged (ECS25b3) [O]"),
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
