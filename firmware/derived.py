"""Logs derived from a deterministic model instead of stored row by row: the half-hourly profile
of a meter whose consumption is a pure function of time (a fleet's seeded model, `meter.model`).

A meter accumulates each half hour's quantity (Wh, litres) and records its whole units, carrying
the rounding remainder into the next half hour; so the values recorded from a boundary S with
remainder R on are the steps of the rounded running total, round(R + Q(t)) - round(R + Q(t - 30
min)), Q(t) being the quantity from S to t. `Cumulative` gives Q at any boundary as the same float
every time it is asked (so a value read twice never differs), memoising whole days (8 bytes a
day) and continuing where the last ask stopped, so reading a range or closing the next half hour
costs one half hour of model each. A meter keeps *segments* `[S, e, R, ...]` in NVM (e: the last
boundary derived, None while open) and stores a row only for a half hour whose recorded value
the segment does not give (the supply was off, the clock moved, a fault set the flow ...): it
checks every close, so a derived value is always the value the meter would have stored.

Daily read logs are derived the same way one level up (`close_daily`, the ESME's and the GSME's
bookkeeping): a *stretch* `[S, e, ...]` says the reads of the midnights in (S, e] (e None: up to
the last midnight closed) are what replaying the meter's own close from the read stored at S
gives; each midnight close checks the replay against the read it took, so a derived read is
always the read the meter would have stored.
"""
from __future__ import annotations

import math
from array import array
from typing import Callable

DAY = 86400.0
HALF_HOUR = 1800.0

__all__ = ["Cumulative", "rounded_steps", "boundaries", "close_daily"]


class Cumulative:
    """`half_hour(end)` (the quantity of the half hour ending at `end`) summed from `start` (a
    boundary) to each later boundary, always as the same float (module doc)."""

    __slots__ = ("half_hour", "start", "_days", "_at", "_c")

    def __init__(self, half_hour: Callable[[float], float], start: float) -> None:
        self.half_hour = half_hour
        self.start = float(start)
        self._days = array("d", [0.0])
        self._at = self.start
        self._c = 0.0

    def _sum(self, b: float, t: float, c: float) -> float:
        hh = self.half_hour
        while b < t - 1e-6:
            b += HALF_HOUR
            c += hh(b)
        return c

    def at(self, t: float) -> float:
        """The quantity in [start, t) for a boundary t >= start."""
        start, days = self.start, self._days
        k = int((t - start + 1e-6) // DAY)
        while len(days) <= k:
            n = len(days) - 1
            b0 = start + n * DAY
            if b0 <= self._at < b0 + DAY:  # the same sum, continued
                days.append(self._sum(self._at, b0 + DAY, self._c))
            else:
                days.append(self._sum(b0, b0 + DAY, days[n]))
        base = start + k * DAY
        if base <= self._at <= t + 1e-6 and self._at < base + DAY:
            c = self._sum(self._at, t, self._c)
        else:
            c = self._sum(base, t, days[k])
        self._at, self._c = t, c
        return c


def _round(x: float) -> int:
    return int(math.floor(x + 0.5))


def rounded_steps(cum: Cumulative, remainder: float, first: float, last: float) -> list[int]:
    """The whole units recorded for the half hours ending at `first` .. `last` (boundaries after
    `cum.start`) by a meter carrying its rounding remainder from `remainder` at `cum.start`."""
    out = []
    prev = _round(remainder + cum.at(first - HALF_HOUR))
    t = first
    while t <= last + 1e-6:
        cur = _round(remainder + cum.at(t))
        out.append(cur - prev)
        prev = cur
        t += HALF_HOUR
    return out


def boundaries(seg_start: float, seg_end: float, start: float | None, end: float | None) -> tuple[float, float]:
    """(first, last) half-hour ends of a segment (S, e] within [start, end]; first > last: none."""
    first, last = seg_start + HALF_HOUR, seg_end
    if start is not None:
        first = max(first, math.ceil(start / HALF_HOUR - 1e-9) * HALF_HOUR)
    if end is not None:
        last = min(last, math.floor(end / HALF_HOUR + 1e-9) * HALF_HOUR)
    return first, last


def close_daily(stretches: list, end: float, *, check: Callable[[list], bool], store: Callable[[], None],
                start: Callable[[], list | None], put: Callable[[list], None], max_days: int,
                age: Callable[[list, float], bool] | None = None, trim: Callable[[list, float], None] | None = None) -> bool:
    """The midnight close `end` of a derived daily read log (module doc), given its stretches as
    stored. `check(open stretch)`: whether its replay gives the read just taken (the caller keeps
    its RAM memo); else `store()` the read, end the open stretch and append `start()` (None: the
    read cannot start one). `age` stores the reads of stretches the replay is about to lose (True
    when it changed any), `trim` drops what left the log; `put` writes the stretches when they
    changed. The caller holds the close's transaction: a derived read writes nothing. True when
    the read was derived."""
    now = [list(x) for x in stretches]
    todo = [list(x) for x in stretches]
    changed = age(todo, end) if age is not None else False
    open_ = todo[-1] if todo and todo[-1][1] is None else None
    if open_ is not None and end - open_[0] <= max_days * DAY and check(open_):
        if changed:
            put(todo)
        return True
    if open_ is not None:
        if open_[0] >= end - DAY:
            todo.pop()  # no read derived from it
        else:
            open_[1] = end - DAY
    store()
    new = start()
    if new is not None:
        todo.append(new)
    if trim is not None:
        trim(todo, end)
    if todo != now:
        put(todo)
    return False
