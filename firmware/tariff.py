"""The tariff engine both meters share: which TOU tier a calendar puts in force at a time, and
which price blocks a consumption falls in. Each meter feeds it from its own objects — the ESME from
its DLMS activity calendar and special days table (`meter.esme`), the GSME from the ZSE calendar
and price commands of GCS01a/b (`firmware.gas_data`) — and maps the calendar's value to a tier.

Calendar rules [I, from the DLMS activity calendar and the ZSE Calendar cluster alike]: the season
in force is the one whose start is latest at or before the time (a start without a year recurs
every year); before every start, the first season's week applies. Its week profile names a day
profile per weekday; a special day (year and month may be wildcards) replaces it, the last match
winning. In the day profile the last switch at or before the time of day applies; before the
first switch of the day, the day's last one (still in force from the evening before).

Blocks: thresholds are cumulative consumption within the block period; block n (0-based) holds
what lies between thresholds n-1 and n, the last block everything above the last threshold."""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Mapping, Sequence

# a season's start: absolute (epoch seconds) or (month, day) recurring every year
SeasonStart = float | tuple[int, int]


@dataclass(frozen=True)
class Calendar:
    seasons: tuple[tuple[SeasonStart, int], ...] = ()  # (start, week id)
    weeks: Mapping[int, Sequence[int]] = field(default_factory=dict)  # week id -> day ids Monday..Sunday
    days: Mapping[int, Sequence[tuple[int, int]]] = field(default_factory=dict)  # day id -> (second of day, value)
    special_days: tuple[tuple[int | None, int | None, int, int], ...] = ()  # (year, month, day, day id); None: any

    def value_at(self, t: float) -> int | None:
        """The calendar's value (a tier, or the ESME's script selector) in force at epoch `t`
        (UTC); None when the calendar does not say (no season, week or day that resolves)."""
        if not self.seasons:
            return None
        now = _dt.datetime.fromtimestamp(t, _dt.timezone.utc)
        week_id, best = self.seasons[0][1], None
        for start, week in self.seasons:
            began = _last_start(start, now)
            if began is not None and began <= t and (best is None or began >= best):
                best, week_id = began, week
        week = self.weeks.get(week_id)
        if week is None or len(week) != 7:
            return None
        day_id = week[now.weekday()]
        for year, month, day, special in self.special_days:
            if year in (None, now.year) and month in (None, now.month) and day == now.day:
                day_id = special
        entries = sorted(self.days.get(day_id) or ())
        if not entries:
            return None
        second = now.hour * 3600 + now.minute * 60 + now.second
        value = entries[-1][1]  # before the day's first switch: the last one, from the evening before
        for start, v in entries:
            if start <= second:
                value = v
        return value


def _last_start(start: SeasonStart, now: _dt.datetime) -> float | None:
    if not isinstance(start, tuple):
        return float(start)
    month, day = start
    for year in (now.year, now.year - 1):
        try:
            began = _dt.datetime(year, month, day, tzinfo=_dt.timezone.utc).timestamp()
        except ValueError:  # 29 February in another year, or no such date
            return None
        if began <= now.timestamp():
            return began
    return None


def block_of(consumed: float, thresholds: Sequence[float]) -> int:
    """The 0-based block that consumption `consumed` (within the block period) has reached."""
    return sum(1 for th in thresholds if consumed >= th)


def split_blocks(consumed: float, amount: float, thresholds: Sequence[float]) -> list[tuple[int, float]]:
    """`amount` consumed on top of `consumed` split at the thresholds it crosses: (block, part)
    pairs, parts summing to `amount` (one pair when no threshold is crossed)."""
    thresholds = sorted(thresholds)
    out: list[tuple[int, float]] = []
    at, left = consumed, amount
    while left > 0:
        block = block_of(at, thresholds)
        room = thresholds[block] - at if block < len(thresholds) else left
        part = min(left, room)
        out.append((block, part))
        at, left = at + part, left - part
    return out or [(block_of(consumed, thresholds), 0.0)]


__all__ = ["Calendar", "SeasonStart", "block_of", "split_blocks"]
