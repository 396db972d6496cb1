"""Where the ESME keeps its state: NVM namespaces and logs (under the device's EUI scope), and the
supply switch states. Shared by `meter.esme`, `meter.prepayment` and `meter.esme_zcl`."""
from __future__ import annotations

NS = "meter"  # registers, metering, supply, prepayment, clock offset, UTRN counters
COSEM_NS = "cosem"  # tariff objects and other written COSEM attributes
DEVICE_LOG_NS = "device_log"  # the ESME's own Device Log (firmware.device_log)
PROFILE_LOG = "profile"
PROFILE_SEGMENTS = "profile_segments"  # NS key: the derived profile's segments (meter.esme)
PROFILE_STORAGE = ("stored", "derived")  # option profile_storage: rows stored per half hour, or derived [I]
DAILY_LOG = "daily"
DAILY_STORED = "daily_stored"  # derived mode: the daily reads stored, one key per midnight (meter.esme)
DAILY_STRETCHES = "daily_stretches"  # NS key: derived mode's stretches of daily reads replayed, not stored
TOPUP_LOG = "topup"

REACTIVE_RATIO = 0.2  # [I] varh per Wh the model draws (the model is active power only)
TOU_TIERS = 48
BLOCKS, BLOCK_TIERS = 4, 8

SUPPLY_ENABLED, SUPPLY_DISABLED, SUPPLY_ARMED = "enabled", "disabled", "armed"
SUPPLY_STATES = (SUPPLY_ENABLED, SUPPLY_DISABLED, SUPPLY_ARMED)


def clamp(value: float, lo: int, hi: int) -> int:
    """`value` rounded into [lo, hi] (a register or attribute of fixed width)."""
    return max(lo, min(hi, int(round(value))))
