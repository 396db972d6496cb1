"""What the emulated household draws (or a roof generates): a deterministic, seedable power curve.

The ESME only ever asks two things: the power at an instant (`power_w(t)`, for instantaneous
demand) and the energy over an interval (`energy_wh(t0, t1)`, for registers and the half-hourly
profile). Power is constant within each minute, so the energy integral is exact and cheap, and
the same seed and the same clock always give the same readings (no wall clock, no global RNG:
the per-minute noise is a pure hash of (seed, minute)).

Times are UTC epoch seconds (the device's own clock). The daily shape is a typical British
domestic load [I]: a night base, a morning peak around 07:30 and a larger evening peak around
18:30; `export=True` gives a generation curve instead (zero at night, a bell around solar noon);
`night=True` an off-peak load such as storage heaters charging 00:30-07:30 UTC [I] (what a twin
element meter's second element measures).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

from gbhub.firmware.clock import HALF_HOUR

MINUTE = 60
_MASK64 = (1 << 64) - 1


def _splitmix64(x: int) -> int:
    """A well-mixed 64-bit hash (SplitMix64 finaliser): cheap, portable, no global state."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def _bump(hour: float, centre: float, width: float) -> float:
    d = (hour - centre + 12.0) % 24.0 - 12.0  # wrap around midnight
    return math.exp(-0.5 * (d / width) ** 2)


@dataclass(frozen=True, slots=True)
class ConsumptionModel:
    """Power as a function of time: `base_w` at night, up to about `peak_w` at the evening peak
    (import), or a daylight bell peaking near `peak_w` (export). `noise` is the relative spread
    of the per-minute seeded noise (0 = a smooth curve)."""

    seed: int = 0
    base_w: float = 250.0
    peak_w: float = 2500.0
    export: bool = False
    noise: float = 0.25
    night: bool = False

    def shape(self, t: float) -> float:
        """The noise-free curve in [0, 1] at time `t` (0 = base, 1 = peak)."""
        hour = (t % 86400.0) / 3600.0
        if self.night:
            return 1.0 if 0.5 <= hour < 7.5 else 0.0
        if self.export:
            return max(0.0, math.sin(math.pi * (hour - 6.0) / 13.0)) if 6.0 <= hour <= 19.0 else 0.0
        return min(1.0, 0.45 * _bump(hour, 7.5, 1.0) + 1.0 * _bump(hour, 18.5, 1.6) + 0.15 * _bump(hour, 13.0, 2.5))

    def _minute_power(self, minute: int) -> float:
        return _minute_power(self, minute)

    def _compute_minute_power(self, minute: int) -> float:
        t = minute * MINUTE + MINUTE / 2
        level = self.shape(t)
        if self.export:
            mean = self.peak_w * level
        else:
            mean = self.base_w + (self.peak_w - self.base_w) * level
        if self.noise and mean > 0:
            u = _splitmix64((self.seed & _MASK64) ^ _splitmix64(minute & _MASK64)) / float(1 << 64)  # [0, 1)
            mean *= max(0.0, 1.0 + self.noise * (2.0 * u - 1.0))
        return mean

    def power_w(self, t: float) -> float:
        """Instantaneous power at `t` (W, constant within each minute)."""
        return self._minute_power(int(t // MINUTE))

    def energy_wh(self, t0: float, t1: float) -> float:
        """Energy drawn (or generated) in [t0, t1) in Wh; 0 when t1 <= t0."""
        if t1 <= t0:
            return 0.0
        if t1 - t0 == HALF_HOUR and t0 % MINUTE == 0:  # a whole half hour: one cache entry, not 30
            return _half_hour(self, t1)
        m0, m1 = int(t0 // MINUTE), int(t1 // MINUTE)
        if m0 == m1:
            return self._minute_power(m0) * (t1 - t0) / 3600.0
        total = self._minute_power(m0) * ((m0 + 1) * MINUTE - t0)
        for m in range(m0 + 1, m1):
            total += self._minute_power(m) * MINUTE
        total += self._minute_power(m1) * (t1 - m1 * MINUTE)
        return total / 3600.0

    def half_hour_wh(self, end: float) -> float:
        """Energy of the half hour ending at `end` (a profile entry's capture time)."""
        return self.energy_wh(end - 1800.0, end)

    def _compute_half_hour(self, end: float) -> float:
        """`energy_wh(end - 30 min, end)` for a minute-aligned `end`, summed in the same order
        (so the same float), without the per-minute cache."""
        m0 = int((end - HALF_HOUR) // MINUTE)
        power = self._compute_minute_power
        total = power(m0) * MINUTE
        for m in range(m0 + 1, m0 + int(HALF_HOUR // MINUTE)):
            total += power(m) * MINUTE
        return total / 3600.0


# Every register read asks for the current minute again: remember recent minutes per model
# (models are frozen, so hashable; the value is a pure function of model and minute).
_minute_power = lru_cache(maxsize=4096)(ConsumptionModel._compute_minute_power)
# Half-hour closes and derived profiles ask for whole half hours, often twice in a row (the close,
# then its check against the derived value): one entry per model and half hour.
_half_hour = lru_cache(maxsize=8192)(ConsumptionModel._compute_half_hour)

__all__ = ["ConsumptionModel"]


CATCH_UP_CHUNK = 48  # half-hours closed per NVM transaction when a meter catches up after downtime


def close_half_hours(nvm, close: Callable[[float], None], first: float, newest: float) -> int:
    """Close each half hour ending at `first`, `first` + 30 min, ... up to `newest` with `close(end)`,
    `CATCH_UP_CHUNK` per NVM transaction (a long downtime does not hold one huge transaction, and
    the rows a chunk stored stay stored). The closes' key/value writes are deferred
    (`Nvm.deferring`): a close is the meter's own arithmetic over its model and what is on disk,
    so after a restart the catch-up from the last state on disk closes them again to the same
    values; they reach the disk with the meter's next durable write (a command's, a stored profile
    row's) or before it acknowledges anything. Returns how many were closed."""
    done = 0
    b = first
    while b <= newest + 1e-6:
        with nvm.transaction(), nvm.deferring():
            for _ in range(CATCH_UP_CHUNK):
                if b > newest + 1e-6:
                    break
                close(b)
                b += HALF_HOUR
                done += 1
    return done
