"""The ESME's daily read log (`EsmeDaily`, mixed into `meter.esme.Esme`): stored in NVM one read a
midnight, or with `profile_storage="derived"` (fleets) replayed from the profile (README "Daily
read logs derived too") [I].

A stretch [S, e] says: the daily reads of the midnights in (S, e] (e None: up to the last midnight
closed) are what replaying the meter's own close (`Esme._register_half_hour`, `Esme._daily_entry`)
over the profile's half hours (stored or derived: `Esme._rows`) from the read stored at S gives.
Each midnight close checks it (`firmware.derived.close_daily`: a read the replay does not give is
stored and ends the stretch), so a derived read is always the read the meter would have stored.
The replay's one input a command can change afterwards is the active calendar (the TOU tier of
each half hour): a change stores every derived read first (`_store_derived_daily`), as does a
stretch whose first half hours would leave the profile's window.
"""
from __future__ import annotations

import math
from typing import Iterable

from gbhub.firmware.clock import DAY, HALF_HOUR
from gbhub.firmware.derived import close_daily

from .esme_state import DAILY_LOG, DAILY_STORED, DAILY_STRETCHES, NS

DAILY_LOG_CAPACITY = 731  # [U] two years of midnight snapshots
MAX_STRETCH_DAYS = 31  # [I] derived mode: daily reads replayed from one stored read at most (bounds a replay)


class EsmeDaily:
    """The daily read log part of `Esme` (module doc)."""

    _daily_memo: tuple[float, float, dict] | None = None  # (stretch, midnight, read) last derived

    @staticmethod
    def daily_log_capacity() -> int:
        return DAILY_LOG_CAPACITY

    def _log_daily(self, entry: dict) -> None:
        """The midnight close's read (caller holds the close's transaction)."""
        if self.derived_profile:
            self._derive_or_store_daily(entry)
        else:
            self.nvm.log_append(DAILY_LOG, entry, DAILY_LOG_CAPACITY)

    def daily_log(self, start: float | None = None, end: float | None = None) -> list[dict]:
        """The daily read log (the newest DAILY_LOG_CAPACITY midnights), oldest first, optionally
        only the entries with start <= t <= end."""
        if not self.derived_profile:
            entries = self.nvm.log_entries(DAILY_LOG)
            if start is None and end is None:
                return entries
            return [e for e in entries if (start is None or start <= e["t"]) and (end is None or e["t"] <= end)]
        stored = self._stored_daily()
        spans = self._daily_spans(self.nvm.peek(NS, DAILY_STRETCHES) or (), self._last_midnight())
        times = sorted({e["t"] for e in stored}.union(*(range(int(s) + int(DAY), int(last) + 1, int(DAY)) for s, last in spans)))
        if len(times) > DAILY_LOG_CAPACITY:
            start = max(start if start is not None else -math.inf, times[-DAILY_LOG_CAPACITY])
        out = {e["t"]: e for e in stored if (start is None or start <= e["t"]) and (end is None or e["t"] <= end)}
        for s, last in spans:
            if (start is not None and last < start) or (end is not None and s + DAY > end):
                continue
            for e in self._replay_daily(self.nvm.peek(DAILY_STORED, str(int(s))), last if end is None else min(last, end)):
                if (start is None or start <= e["t"]) and e["t"] not in out:
                    out[e["t"]] = e
        return [out[t] for t in sorted(out)]

    def daily_log_len(self) -> int:
        """How many entries `daily_log()` holds (without replaying them)."""
        if not self.derived_profile:
            return self.nvm.log_len(DAILY_LOG)
        spans = self._daily_spans(self.nvm.peek(NS, DAILY_STRETCHES) or (), self._last_midnight())
        times = {e["t"] for e in self._stored_daily()}.union(*(range(int(s) + int(DAY), int(last) + 1, int(DAY)) for s, last in spans))
        return min(len(times), DAILY_LOG_CAPACITY)

    def _last_midnight(self) -> float:
        return math.floor(self.nvm.peek(NS, "metering")["last_period"] / DAY + 1e-9) * DAY

    def _stored_daily(self) -> list[dict]:
        """Derived mode's stored reads (and any a stored-mode build logged), oldest first."""
        stored = [v for _k, v in self.nvm.items(DAILY_STORED)]
        if self.nvm.log_len(DAILY_LOG):
            stored += self.nvm.log_entries(DAILY_LOG)
        return sorted(stored, key=lambda e: e["t"])

    def _daily_spans(self, stretches: Iterable, top: float) -> list[tuple[float, float]]:
        """(S, last derived midnight) of each stretch deriving at least one read; `top`: the open
        stretch's last midnight."""
        out = []
        for s, e in stretches:
            last = top if e is None else e
            if last >= s + DAY and self.nvm.peek(DAILY_STORED, str(int(s))) is not None:
                out.append((s, last))
        return out

    def _replay_daily(self, base: dict, upto: float) -> list[dict]:
        """The daily reads after the read `base` up to `upto`: the close's register arithmetic over
        the profile's half hours (stored or derived), prepayment values as in `base`."""
        reg = {"import_wh": base["import_wh"], "export_wh": 0, "reactive_varh": 0, "tou_wh": list(base["tou_wh"]),
               "block_wh": base["block_wh"], "secondary_wh": base.get("secondary_wh", 0)}
        twin = self.secondary_model is not None
        out = []
        for t, wh, ex, sec in self._rows(base["t"] + 1, upto):
            self._register_half_hour(reg, t, wh, ex, sec if twin else None)
            if t % DAY == 0:
                out.append(self._daily_entry(reg, t, base["prepayment"]))
        return out

    def _derive_or_store_daily(self, entry: dict) -> None:
        """At a midnight close: nothing to write when the open stretch's replay gives `entry`; else
        store it, end the stretch, and (credit mode: nothing but the close moves the registers)
        start the next from it (`firmware.derived.close_daily`)."""
        end = entry["t"]

        def check(open_: list) -> bool:
            memo = self._daily_memo
            base = memo[2] if memo is not None and memo[:2] == (open_[0], end - DAY) else \
                self.nvm.peek(DAILY_STORED, str(int(open_[0])))
            derived = self._replay_daily(base, end) if base is not None else []
            if not derived or derived[-1] != entry:
                return False
            self._daily_memo = (open_[0], end, derived[-1])
            self.nvm.on_rollback(self._forget_daily)
            return True

        close_daily(self.nvm.peek(NS, DAILY_STRETCHES) or (), end, check=check,
                    store=lambda: self.nvm.put(DAILY_STORED, str(int(end)), entry),
                    start=lambda: [end, None] if self._prepay()["mode"] == "credit" else None,
                    put=lambda stretches: self.nvm.put(NS, DAILY_STRETCHES, stretches),
                    max_days=MAX_STRETCH_DAYS, age=self._age_daily, trim=self._trim_daily)

    def _forget_daily(self) -> None:
        self._daily_memo = None

    def _age_daily(self, stretches: list, end: float) -> bool:
        """Store the reads of the stretches whose first half hours leave the profile's window
        before the next midnight (their replay would lack them); True when any did."""
        oldest_next = end + DAY - (self._profile_span() - HALF_HOUR)
        old = [s for s in stretches if s[0] + HALF_HOUR < oldest_next]
        if not old:
            return False
        for s, last in self._daily_spans(old, end - DAY):
            for e in self._replay_daily(self.nvm.peek(DAILY_STORED, str(int(s))), last):
                self.nvm.put(DAILY_STORED, str(e["t"]), e)
        stretches[:] = [s for s in stretches if s not in old]
        self._forget_daily()
        return True

    def _store_derived_daily(self) -> None:
        """Store every derived read (before a change of what the replay reads: the calendar)."""
        stretches = self.nvm.peek(NS, DAILY_STRETCHES)
        if not stretches:
            return
        with self.nvm.transaction():
            for s, last in self._daily_spans(stretches, self._last_midnight()):
                for e in self._replay_daily(self.nvm.peek(DAILY_STORED, str(int(s))), last):
                    self.nvm.put(DAILY_STORED, str(e["t"]), e)
            self.nvm.put(NS, DAILY_STRETCHES, [])
            self._forget_daily()

    def _trim_daily(self, stretches: list, end: float) -> None:
        """Drop what fell out of the log's capacity: stored reads no stretch replays from, and
        stretches wholly older."""
        keys = self.nvm.keys(DAILY_STORED)
        spans = self._daily_spans(stretches, end)
        times = sorted({int(k) for k in keys}.union(*(range(int(s) + int(DAY), int(last) + 1, int(DAY)) for s, last in spans)))
        if len(times) <= DAILY_LOG_CAPACITY:
            return
        cutoff = times[-DAILY_LOG_CAPACITY]
        stretches[:] = [s for s in stretches if s[1] is None or s[1] >= cutoff]
        bases = {int(s[0]) for s in stretches}
        for k in keys:
            if int(k) < cutoff and int(k) not in bases:
                self.nvm.delete(DAILY_STORED, k)


__all__ = ["EsmeDaily", "DAILY_LOG_CAPACITY", "MAX_STRETCH_DAYS"]
