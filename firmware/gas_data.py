"""The gas meter's data, as the GSME keeps it and as the GPF mirrors it: one schema in NVM, one
projection onto ZSE attributes, and one way of answering the GBZ reads (Read Attributes,
GetSampledData, GetSnapshot), so a read answered by the GPF from its copy has exactly the shape
of the same read answered by the GSME.

`GasData(nvm)` works on an NVM view: the GSME's own (its EUI scope) or the GPF's mirror of one
GSME (`gpf.nvm.scope("mirror-<eui>")`). Keys of namespace `NS`: registers (volume in litres,
tier and block registers), supply (valve), prepayment (as `meter.prepayment` keeps it), gas
(calorific value, conversion factor, battery, tamper), sync (last push), billing (the billing data
log: snapshots taken at the billing date, on a change of mode or tariff and on a top-up, the last
`BILLING_KEEP` of each cause [I]; GCS15b/c/e read them by snapshot cause). The half-hourly profile
and the daily read log are kept one UTC day per key (`PROFILE_NS`, `DAILY_NS`), so a push of the
same interval twice is idempotent and 13 months cost ~400 keys. A GSME with a derived profile
(`GasData(litres=...)`, `firmware.derived`) stores only the half hours its model cannot give and keeps
segments under `DERIVED`, which its push carries: the GPF's mirror, given the same model, derives them.
Such a GSME also stores only the daily reads that replaying its close (`accrue`, `daily_read`,
`billing_date`, and in prepayment mode its own charges: `ledger`) over the profile does not give
(`close_daily`, `DAILY_STRETCHES`); its push carries the stored reads and the stretches
(`pushed_daily`), which the mirror, given the same model and ledger, replays too [I].

Units [I]: volume registers in litres (ZSE CurrentSummationDelivered with unit m³, divisor 1000,
as RTDS GCS13a shows [O]); money in pence, shown in ZSE money units of 1/100000 £ [O RTDS CS01b].
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from gbcs.codec import DecodeError
from gbcs.frame import Message
from gbcs.gbz import GbzComponent, GbzPayload, decode_gbz
from gbcs.zcl import (
    Cluster,
    ClusterCommand,
    DefaultResponse,
    ReadAttributeRecord,
    ReadAttributes,
    ReadAttributesResponse,
    Status,
    ZclDate,
    read_attributes_response,
)

from gbcs.usecases.gas import NETWORK_DATA_SAMPLE_ID

from .derived import Cumulative, boundaries, close_daily, rounded_steps
from .gbcs_device import CommandRejected, FailNext, Outcome
from .tariff import Calendar, split_blocks

NS = "meter"  # the namespace `meter.prepayment` keeps its state in
DEBTS = ("time_debt_1", "time_debt_2", "payment_debt")  # prepayment keys of the debt registers (pence)
DEBT_TIME_BASED, DEBT_PAYMENT_BASED = 0, 1  # ZSE DebtRecoveryMethod (2 catch-up: not recovered [I])
# ZSE DebtRecoveryFrequency -> periods per day (month 30.4375 days, quarter 91.3125 days) [S ZSE; I lengths]
DEBT_PERIODS_PER_DAY = {0: 24.0, 1: 1.0, 2: 1 / 7, 3: 1 / 30.4375, 4: 1 / 91.3125}
PROFILE_NS = "gas_profile"
DAILY_NS = "gas_daily"
HALF_HOUR = 1800
DAY = 86400
ZCL_EPOCH = 946684800  # 2000-01-01T00:00Z as Unix seconds
PROFILE_DAYS = 13 * 31  # 13 months of half-hours [S FACTS 3.4 by analogy with the ESME; U for the GSME]
DAILY_DAYS = 731  # [U] two years of daily reads
# The endpoint of the CHF's address where the GPF serves its GSME mirror's Metering / Prepayment
# attributes to IHDs and PPMIDs [I: FACTS §3.3 "Gas ESI endpoint" with a mirrored Metering cluster]
MIRROR_ENDPOINT = 2
MIRROR_CLUSTERS = (Cluster.METERING, Cluster.PREPAYMENT, Cluster.PRICE)  # what it serves there (`han_clusters`)
MIRROR_ATTRIBUTE = 0xFF00  # the GSME's push: one long octet string on the GPF's Metering mirror [I]
# The mirror's FunctionalNotificationFlags (bitmap32) the GSME reads each wake [S FACTS §3.3: ZSE keeps
# them as the mirror's client attribute 0x0000; gbhub reads them as this manufacturer attribute, I]
NOTIFICATION_FLAGS_ATTRIBUTE = 0xFF01
NEW_OTA_FIRMWARE = 1 << 0  # FunctionalNotificationFlags bit 0 "New OTA firmware" [S FACTS §3.3]
MONEY = 1000  # ZSE money units (1/100000 £) per penny
DEBT_MAX = ((1 << 31) - 1) / MONEY / len(DEBTS)  # pence per debt: their sum stays a ZSE int32 [I]
SUPPLY_ZCL = {"disabled": 0, "armed": 1, "enabled": 2}
_M, _PP, _CAL = Cluster.METERING, Cluster.PREPAYMENT, Cluster.CALENDAR
_NOT_FOUND = Status.NOT_FOUND
BILLING_KEEP = 12  # billing snapshots kept per cause [I; RTDS GCS15b asks for 12 of each kind]


def gbz_command(message: Message) -> tuple[GbzComponent, ...]:
    """The plaintext GBZ components of a gas command (GSME or GPF); anything else is refused as
    malformed (0x8F1E)."""
    try:
        p = decode_gbz(message.content, cra=message.cra)
    except DecodeError as exc:
        raise CommandRejected("malformed", str(exc)) from None
    comps = getattr(p, "components", ())
    if not comps or any(c.payload is None for c in comps):
        raise CommandRejected("malformed", "not a plaintext GBZ command")
    return comps


def _octets(v: Any) -> bytes:
    if v is None:
        return b""
    return v.encode() if isinstance(v, str) else bytes(v)


def zcl_seconds(t: float) -> int:
    return max(0, int(t) - ZCL_EPOCH)


class GasData:
    """One GSME's data in an NVM view (module doc). `litres(cv, cf)`, when given, is the model's
    half-hourly gas use (`half_hour(end) -> litres`) at those settings: the half-hourly profile is
    then derived where it can be (`close_interval`, `DERIVED`) rather than stored row by row."""

    def __init__(self, nvm, litres: Callable[[float, float], Callable[[float], float]] | None = None,
                 ledger: Any = None) -> None:
        self.nvm = nvm
        self.litres = litres
        self.ledger = ledger  # the GSME's prepayment charges on a scratch state (`close_daily`); None: credit mode only
        self._cumulative: dict[tuple, Cumulative] = {}
        self._daily_memo: tuple | None = None  # (stretch, midnight, registers, prepayment) last checked
        self._last_reg: tuple | None = None  # the same, of the last replay

    def forget(self) -> None:
        """Drop the RAM memos (a power cut)."""
        self._cumulative = {}
        self._daily_memo = None

    # -- state -------------------------------------------------------------------------------
    def get(self, key: str, default: Any = None) -> Any:
        return self.nvm.get(NS, key, default)

    def put(self, key: str, value: Any) -> None:
        self.nvm.put(NS, key, value)

    def state(self) -> dict:
        """Everything but the logs (what a push carries); the derived profile's open segment ends
        at the last half hour closed (the mirror derives what was pushed, no more)."""
        out = {k: v for k, v in self.nvm.items(NS) if k in STATE_KEYS}
        derived = out.get(DERIVED)
        if derived and derived["segments"] and derived["segments"][-1][1] is None:
            last = self._last_period()
            if derived["segments"][-1][0] < last:
                derived["segments"][-1][1] = last
            else:  # nothing derived from it yet
                derived["segments"].pop()
        return out

    def apply_state(self, state: dict) -> None:
        for k, v in state.items():
            if k in STATE_KEYS:
                self.nvm.put(NS, k, v)

    # -- logs ---------------------------------------------------------------------------------
    def take_billing_snapshot(self, t: int, cause: int) -> None:
        """Snapshot the registers and the prepayment state into the billing data log (`cause`: a
        ZSE snapshot cause bit, `gbcs.usecases.gas`); the oldest of that cause beyond `BILLING_KEEP` goes."""
        reg = self.get("registers") or {}
        p = self.get("prepayment") or {}
        entry = {"t": int(t), "cause": cause, "volume_l": reg.get("volume_l", 0), "tier_l": list(reg.get("tier_l", [0] * 4)),
                 "block_l": list(reg.get("block_l", [0] * 4)), "credit": p.get("credit", 0), "debt": p.get("debt", 0),
                 "debts": [p.get(k, 0.0) for k in DEBTS],
                 "ec": p.get("ec_remaining", 0)}
        kept = list((self.get("billing") or {}).get("snapshots", [])) + [entry]
        same = [e for e in kept if e["cause"] == cause]
        if len(same) > BILLING_KEEP:
            kept.remove(same[0])
        self.put("billing", {"snapshots": kept})

    def billing_snapshots(self, mask: int, lo: int, hi: int) -> list[dict]:
        """Billing snapshots whose cause is in `mask`, taken in [lo, hi], newest first (offset 0)."""
        found = [e for e in (self.get("billing") or {}).get("snapshots", []) if e["cause"] & mask and lo <= e["t"] <= hi]
        return sorted(found, key=lambda e: e["t"], reverse=True)

    def put_interval(self, end: int, litres: int) -> None:
        """The half-hour ending at `end` (Unix seconds) used `litres`."""
        start = end - HALF_HOUR
        day = start // DAY
        slots = list(self.nvm.get(PROFILE_NS, str(day)) or [None] * 48)
        slots[(start % DAY) // HALF_HOUR] = litres
        self.nvm.put(PROFILE_NS, str(day), slots)

    def put_profile_day(self, day: int, slots: list) -> None:
        """Merge a day of intervals (None = not known) into the log."""
        mine = list(self.nvm.get(PROFILE_NS, str(day)) or [None] * 48)
        self.nvm.put(PROFILE_NS, str(day), [s if s is not None else m for s, m in zip(slots, mine)])

    def profile_day(self, day: int) -> list | None:
        return self.nvm.get(PROFILE_NS, str(day))

    def intervals(self, start: int, count: int) -> list[int | None]:
        """`count` half-hour volumes from the interval starting at `start` (Unix, aligned)."""
        out: list[int | None] = []
        t0 = t = start - start % HALF_HOUR
        cache: dict[int, list | None] = {}
        for _ in range(count):
            day = t // DAY
            if day not in cache:
                cache[day] = self.nvm.peek(PROFILE_NS, str(day))
            slots = cache[day]
            out.append(None if slots is None else slots[(t % DAY) // HALF_HOUR])
            t += HALF_HOUR
        if count > 0 and self.nvm.peek(NS, DERIVED):
            self._derived_into(out, t0)
        return out

    # -- derived profile (firmware.derived): segments [S, e, R, cv, cf] under key DERIVED --
    def _last_period(self) -> float:
        m = self.nvm.peek(NS, "metering")  # the GSME's own; a mirror has closed segments only
        return float(m["last_period"]) if m else 0.0

    def _values(self, seg: list, first: float, last: float) -> list[int]:
        key = (seg[0], seg[3], seg[4])
        cum = self._cumulative.get(key)
        if cum is None:
            cum = self._cumulative[key] = Cumulative(self.litres(seg[3], seg[4]), seg[0])
        return rounded_steps(cum, seg[2], first, last)

    def _derived_into(self, out: list, t0: int) -> None:
        """Fill `out` (half hours starting at t0) from the derived segments, within the days
        the log keeps."""
        if self.litres is None:
            return
        segs = self.nvm.peek(NS, DERIVED)["segments"]
        newest = max([self._last_period()] + [s[1] for s in segs if s[1] is not None])
        lo = max(t0 + HALF_HOUR, (int(newest) // DAY - PROFILE_DAYS) * DAY + HALF_HOUR)
        hi = t0 + len(out) * HALF_HOUR
        for seg in segs:
            first, last = boundaries(seg[0], self._last_period() if seg[1] is None else seg[1], lo, hi)
            if first <= last:
                i = int((first - HALF_HOUR - t0) // HALF_HOUR)
                for j, v in enumerate(self._values(seg, first, last)):
                    out[i + j] = v

    def close_interval(self, end: int, litres: int, clean: bool, remainder: float, settings: tuple[float, float]) -> None:
        """Derived mode's `put_interval`: nothing to write when the open segment gives `litres`
        for this half hour (`clean`: nothing but the model drew gas in it); else store the row,
        end the segment and start the next (at `settings` = (cv, cf)) when the model may go on."""
        derived = self.nvm.peek(NS, DERIVED) or {"segments": []}
        segs = derived["segments"]
        open_ = segs[-1] if segs and segs[-1][1] is None else None
        if clean and open_ is not None and self._values(open_, end, end) == [litres]:
            if end - open_[0] < MAX_SEGMENT_DAYS * DAY:
                return
            segs = [list(x) for x in segs]  # a long one ends here, the next starts: deriving stays bounded
            segs[-1][1] = end
            segs.append([end, None, remainder, *settings])
            self.nvm.put(NS, DERIVED, {"segments": segs})
            return
        self.put_interval(end, litres)
        segs = [list(x) for x in segs]
        if open_ is not None:
            if open_[0] == end - HALF_HOUR:
                segs.pop()
            else:
                segs[-1][1] = end - HALF_HOUR
        if clean:
            segs.append([end, None, remainder, *settings])
        oldest = (end // DAY - PROFILE_DAYS) * DAY
        segs = [x for x in segs if x[1] is None or x[1] > oldest]
        self.nvm.put(NS, DERIVED, {"segments": segs})
        live = {(x[0], x[3], x[4]) for x in segs}
        for key in [k for k in self._cumulative if k not in live]:
            del self._cumulative[key]

    def put_daily(self, entry: dict) -> None:
        self.nvm.put(DAILY_NS, str(entry["t"] // DAY), entry)

    def daily_between(self, after: int, upto: int) -> list[dict]:
        """Daily reads taken after `after` up to `upto` (Unix seconds), oldest first: one key
        lookup per day, so a push costs the same in month 13 as on day 1."""
        return self._with_replayed(self._stored_between(after, upto), after, upto)

    def _stored_between(self, after: int, upto: int) -> list[dict]:
        out = []
        first, last = after // DAY + 1, upto // DAY
        days: Any = range(first, last + 1)
        if last - first > 31:  # a long span (nothing pushed yet): the days the log holds, not every day
            days = sorted(d for d in map(int, self.nvm.keys(DAILY_NS)) if first <= d <= last)
        for day in days:
            entry = self.nvm.get(DAILY_NS, str(day))
            if entry is not None and after < entry["t"] <= upto:
                out.append(entry)
        return out

    def pushed_daily(self, after: int, upto: int) -> tuple[list[dict], dict | None]:
        """What a push carries of the daily reads taken after `after` up to `upto`: the reads, or
        in derived mode the stored ones and `{"stretches": ..., "settings": ...}`: the stretches
        with reads in that span closed at the last midnight and the settings they replay with,
        which the GPF's mirror replays as the GSME does (`apply_stretches`) [I]."""
        stretches = self._stretches()
        if not stretches:
            return self.daily_between(after, upto), None
        top = min(self._last_midnight(), upto // DAY * DAY)
        out = []
        for x in stretches:
            e = top if x[1] is None else min(x[1], top)
            if e > max(x[0], after):
                out.append([x[0], e, *x[2:]])
        if not out:
            return self._stored_between(after, upto), None
        settings = {x[3]: self.nvm.peek(SETTINGS_NS, x[3]) for x in out}
        return self._stored_between(after, upto), {"stretches": out, "settings": settings}

    def apply_stretches(self, pushed: dict) -> None:
        """A push's stretches (`pushed_daily`, checked: `check_stretches`) into the mirror's: each
        replaces the one with the same start (a stretch the GSME still extends comes again)."""
        for key, settings in pushed["settings"].items():
            if self.nvm.peek(SETTINGS_NS, key) is None:
                self.nvm.put(SETTINGS_NS, key, settings)
        mine = {x[0]: list(x) for x in self._stretches()}
        for x in pushed["stretches"]:
            mine[x[0]] = list(x)
        self._put_stretches([mine[s] for s in sorted(mine)])

    def age_daily(self, today: int) -> None:
        """The mirror's ageing (the GSME ages at its close): the reads of stretches whose first
        half hours leave the profile are stored, before `prune`."""
        stretches = [list(x) for x in self._stretches()]
        if stretches and self._age_daily(stretches, today * DAY):
            self._put_stretches(stretches)

    def daily(self) -> list[dict]:
        return self._with_replayed(sorted((v for _k, v in self.nvm.items(DAILY_NS)), key=lambda e: e["t"]), None, None)

    # -- derived daily read log (the GSME's, in derived mode; `meter.gsme`, README "Fleets") --
    # A stretch [S, e, block_kwh, settings(, prepayment)] says: the reads of the midnights in (S, e]
    # (e None: up to the last midnight closed) are what replaying the close (`accrue`, `daily_read`,
    # `billing_date`; in prepayment mode the meter's own charges, `ledger`) over the profile's half
    # hours from the read stored at S gives, with the block period's kWh at S, the gas settings the
    # replay reads (`REPLAY_SETTINGS`, stored once per version under `SETTINGS_NS`) and, in
    # prepayment mode, the prepayment state the close at S left. Each midnight close checks it
    # (`close_daily`, `firmware.derived.close_daily`).
    def _stretches(self) -> list:
        return self.nvm.peek(NS, DAILY_STRETCHES) or []

    def _last_midnight(self) -> int:
        return int(self._last_period()) // DAY * DAY

    def _replay(self, stretch: list, after: float, upto: float) -> list[dict]:
        """The reads of `stretch` taken after `after` up to `upto`; from the RAM memo when it is
        a later starting point than the stored read."""
        s, _e, block_kwh, key = stretch[:4]
        prepay = stretch[4] if len(stretch) > 4 else None
        base = self.nvm.peek(DAILY_NS, str(int(s) // DAY))
        gas = self.nvm.peek(SETTINGS_NS, key)
        ledger = self.ledger
        if base is None or gas is None or (prepay is not None and ledger is None):
            return []
        t0, reg = s, {"volume_l": base["volume_l"], "tier_l": list(base["tier_l"]), "block_l": list(base["block_l"]),
                      "block_kwh": block_kwh}
        p = None if prepay is None else dict(prepay)
        memo = self._daily_memo
        if memo is not None and memo[0] == s and s < memo[1] <= max(after, s) and memo[1] < upto:
            t0, reg = memo[1], {k: (list(v) if isinstance(v, list) else v) for k, v in memo[2].items()}
            p = None if memo[3] is None else dict(memo[3])
        out: list[dict] = []
        n = int((upto - t0) // HALF_HOUR)
        for i, litres in enumerate(self.intervals(int(t0), n) if n > 0 else ()):
            t = int(t0) + (i + 1) * HALF_HOUR
            if litres is None:  # not in the profile (cannot happen within a checked stretch)
                return out
            reg["volume_l"] += litres
            parts = accrue(gas, reg, litres, t)
            if p is not None:
                ledger.energy(p, gas, parts, t)
            if t % DAY == 0:
                if t > after:
                    out.append(daily_read(reg, t, base["credit"] if p is None else p["credit"]))
                if p is not None:
                    ledger.midnight(p, gas, t)
                if billing_date(gas, t):
                    reg["block_kwh"] = 0.0
                self._last_reg = (s, t, {"volume_l": reg["volume_l"], "tier_l": list(reg["tier_l"]),
                                         "block_l": list(reg["block_l"]), "block_kwh": reg["block_kwh"]},
                                  None if p is None else dict(p))
        return out

    def _with_replayed(self, stored: list[dict], after: float | None, upto: float | None) -> list[dict]:
        stretches = self._stretches()
        if not stretches:
            return stored
        top = max(self._last_midnight(), max(x[1] or 0 for x in stretches))  # a mirror's are closed
        hi = top if upto is None else min(upto, top)
        lo = -1 if after is None else after
        out = {e["t"]: e for e in stored}
        for st in stretches:
            last = top if st[1] is None else st[1]
            if last <= lo or st[0] >= hi:
                continue
            for e in self._replay(st, max(lo, st[0]), min(last, hi)):
                out.setdefault(e["t"], e)
        return [out[t] for t in sorted(out)]

    def close_daily(self, entry: dict, block_kwh: float, gas: dict, prepay: dict | None) -> None:
        """At a midnight close (derived mode): nothing to write when the open stretch's replay
        gives `entry` and leaves `block_kwh` (the block period's kWh after this midnight) and
        `prepay` (prepayment mode: the prepayment state after this midnight's charges; None in
        credit mode); else store the read, end the stretch and start the next from it at settings
        `gas` (prepayment mode: when the meter gave a `ledger` to replay its charges with)."""
        end = entry["t"]

        def check(open_: list) -> bool:
            self._last_reg = None
            got = self._replay(open_, end - DAY, end)
            last = self._last_reg
            if not got or got[-1] != entry or last is None or last[1] != end or last[2]["block_kwh"] != block_kwh \
                    or last[3] != prepay:
                return False
            self._daily_memo = last
            self.nvm.on_rollback(self.forget)
            return True

        def start() -> list | None:
            if prepay is not None and self.ledger is None:
                return None
            settings = {k: gas.get(k) for k in REPLAY_SETTINGS}
            key = settings_key(settings)
            if self.nvm.peek(SETTINGS_NS, key) is None:
                self.nvm.put(SETTINGS_NS, key, settings)
            return [end, None, block_kwh, key] + ([] if prepay is None else [dict(prepay)])

        close_daily(self._stretches(), end, check=check, store=lambda: self.put_daily(entry), start=start,
                    put=self._put_stretches, max_days=MAX_STRETCH_DAYS, age=self._age_daily)

    def _put_stretches(self, stretches: list) -> None:
        self.nvm.put(NS, DAILY_STRETCHES, stretches)
        used = {x[3] for x in stretches}
        for key in self.nvm.keys(SETTINGS_NS):
            if key not in used:
                self.nvm.delete(SETTINGS_NS, key)

    def _age_daily(self, stretches: list, end: int) -> bool:
        """Store the reads of the stretches whose first half hours leave the profile (the days
        kept) before the next midnight; True when any did."""
        horizon = (end // DAY + 1 - PROFILE_DAYS) * DAY
        old = [x for x in stretches if x[0] < horizon]
        if not old:
            return False
        for x in old:
            for e in self._replay(x, x[0], end - DAY if x[1] is None else x[1]):
                self.put_daily(e)
        stretches[:] = [x for x in stretches if x not in old]
        self._daily_memo = None
        return True

    def prune(self, today: int) -> None:
        for ns, keep in ((PROFILE_NS, PROFILE_DAYS), (DAILY_NS, DAILY_DAYS)):
            for key in self.nvm.keys(ns):
                if int(key) < today - keep:
                    self.nvm.delete(ns, key)

    # -- ZSE projection -----------------------------------------------------------------------
    def metering_attributes(self, firmware_version: bytes = b"") -> dict[int, Any]:
        reg = self.get("registers") or {}
        gas = self.get("gas") or {}
        supply = (self.get("supply") or {}).get("state", "enabled")
        status = (0x01 if gas.get("battery", 100) < gas.get("low_battery", 10) else 0) | (0x02 if gas.get("tamper") else 0)
        tiers = reg.get("tier_l", [0] * 4)
        blocks = reg.get("block_l", [0] * 4)
        values: dict[int, Any] = {
            0x0000: reg.get("volume_l", 0), 0x0014: SUPPLY_ZCL.get(supply, 0), 0x0200: status,
            0x0201: int(gas.get("battery", 100)), 0x0205: int(gas.get("battery", 100) * 36.5),
            0x0300: 1, 0x0301: 1, 0x0302: 1000, 0x0306: 0x80,  # m³, divisor 1000 [O RTDS GCS13a]; gas mirror type
            0x0307: _octets(gas.get("mprn")),
        }
        if firmware_version:
            values[0x0206] = firmware_version
        for i in range(4):
            values[0x0100 + 2 * i] = tiers[i]  # CurrentTier<i>SummationDelivered
            values[0x0700 + i] = blocks[i] if 0x0700 + i else 0
        values[0x0607] = 1 if gas.get("locked") else 0  # SupplyTamperState: 0 unchanged, 1 locked [I]
        values[0x0608] = 0  # SupplyDepletionState
        values[0x0401] = reg.get("volume_l", 0) - reg.get("day_start_l", 0)  # CurrentDayConsumptionDelivered
        values[0x0403] = reg.get("previous_day_l", 0)
        values.update(self._period_consumption(reg))
        return values

    def _period_consumption(self, reg: dict) -> dict[int, int]:
        """Daily (previous days 2..8), weekly (current + 5 weeks) and monthly (current + 13 months)
        consumption from the daily read log: each period's use is the register at its end minus
        the register at its start (the midnight reads; the live register for the current one) [I]."""
        daily = self.daily()[-420:]
        if not daily:
            return {}
        at = {e["t"] // DAY: e["volume_l"] for e in daily}  # day -> register at that midnight
        today = daily[-1]["t"] // DAY  # the last midnight read
        out: dict[int, int] = {}

        def use(d0: int, d1: int | None) -> int | None:
            start = at.get(d0)
            end = reg.get("volume_l", 0) if d1 is None else at.get(d1)
            return None if start is None or end is None else max(0, end - start)

        for n in range(2, 9):  # PreviousDay<n>ConsumptionDelivered
            v = use(today - n, today - n + 1)
            if v is not None:
                out[0x0420 + 2 * (n - 2)] = min(v, 0xFFFFFF)
        monday = today - (today + 3) % 7  # 1970-01-01 was a Thursday
        for k in range(0, 6):  # current week, previous weeks 1..5
            v = use(monday - 7 * k, None if k == 0 else monday - 7 * (k - 1))
            if v is not None:
                out[0x0430 if k == 0 else 0x0432 + 2 * (k - 1)] = min(v, 0xFFFFFF)
        first = _dt.date.fromordinal(_dt.date(1970, 1, 1).toordinal() + today).replace(day=1)
        starts = [first]
        for _ in range(13):
            prev = starts[-1]
            starts.append((prev - _dt.timedelta(days=1)).replace(day=1))
        epoch = _dt.date(1970, 1, 1).toordinal()
        for k, start in enumerate(starts):  # current month, previous months 1..13
            d0 = start.toordinal() - epoch
            d1 = None if k == 0 else starts[k - 1].toordinal() - epoch
            v = use(d0, d1)
            if v is not None:
                out[0x0440 if k == 0 else 0x0442 + 2 * (k - 1)] = v
        return out

    def prepayment_attributes(self, unit: int = MONEY) -> dict[int, Any]:
        """Prepayment cluster values; money in ZSE units (`unit` MONEY per penny, as GBZ answers
        carry it [O RTDS]) or, with `unit=1`, whole pence as the HAN mirror serves it (`han_clusters`)."""
        p = self.get("prepayment") or {}

        def money(key: str, default: float = 0) -> int:
            return int(round(p.get(key, default) * unit))

        credit = money("credit")
        values = {
            0x0000: 0x0001 if p.get("mode") == "prepayment" else 0, 0x0001: credit, 0x0002: money("ec_remaining"),
            0x0003: (0x01 if credit > 0 else 0) | (0x02 if p.get("ec_active") else 0), 0x0005: money("debt"),
            0x0010: money("ec_limit"), 0x0011: money("ec_threshold"), 0x0020: money("total_added"),
            0x0006: money("debt_cap"), 0x0021: money("max_credit", 25000), 0x0022: money("max_top_up", 25000),
            0x0031: money("low_credit", 500),
        }
        if unit == 1:
            values.update({0x0501: 0, 0x0502: 0x00, 0x0503: 826})  # kWh; whole pence; GBP (as the ESME serves) [I]
        return values

    def price_attributes(self) -> dict[int, Any]:
        """The gas Price attributes an IHD needs to show energy and cost: the unit price and
        standing charge in milli-pence (trailing digit 3, like the ESME's own server), the
        conversion factor and the calorific value (MJ/m³) [I: ZSE Price commodity attributes]."""
        gas = self.get("gas") or {}
        values: dict[int, Any] = {0x0300: 1, 0x0616: 826, 0x0617: 0x30}  # CommodityType gas metering; GBP
        if gas.get("standing") is not None:
            values[0x0301] = max(0, int(round(gas["standing"] * 1000)))
        if gas.get("price") is not None:
            values[0x0400] = values[0x0410] = max(0, int(round(gas["price"] * 1000)))  # NoTierBlock1, Tier1Block1
        if gas.get("cf"):
            values.update({0x0302: int(round(gas["cf"] * 10**6)), 0x0303: 0x60})
        if gas.get("cv"):
            values.update({0x0304: int(round(gas["cv"] * 1000)), 0x0305: 0x01, 0x0306: 0x30})
        return values

    def tariff_attributes(self) -> dict[int, Any]:
        """The Price attributes a GBZ read (GCS21f) answers: the tariff GCS01a/b wrote as it came
        (ZSE prices, trailing digit 0x50 [O RTDS]; block thresholds raw, with their multiplier and
        divisor; TariffType), each price of the matrix at 0x0400 + tier << 4 + block [S ZSE], and
        0 for what no tariff set, so every attribute is answered, as RTDS answers a GSME with no
        calendar [O RTDS GCS21f NOT_FOUND]."""
        gas = self.get("gas") or {}
        t = gas.get("tariff") or {}
        values = {**self.price_attributes(), 0x0617: t.get("trailing_digit", 0x50), 0x0615: t.get("type", 0),
                  0x0202: t.get("multiplier", 1), 0x0203: t.get("divisor", 1)}
        values.update({0x0400 + (tier << 4) + block: 0 for tier in range(GAS_TIERS + 1) for block in range(GAS_BLOCKS)})
        values.update({0x0400 + (int(k.split(":")[0]) << 4) + int(k.split(":")[1]): max(0, int(round(v * 1000)))
                       for k, v in (t.get("prices") or {}).items()})
        thresholds = t.get("thresholds") or {}
        raw = thresholds.get("0") or next(iter(thresholds.values()), [])
        values.update({0x0100 + i: raw[i] if i < len(raw) else 0 for i in range(GAS_BLOCKS - 1)})
        values.setdefault(0x0301, 0)
        return values

    def _calendar_answers(self, c: GbzComponent, p: ClusterCommand, now: float, tier_block) -> list[GbzComponent]:
        """GCS21f's calendar and price gets, from the stored import calendar (`gas_calendar`) and
        tariff: a PublishDayProfile per day, a PublishWeekProfile per week, PublishSeasons,
        PublishSpecialDays, PublishPrice, each a command of the request's sequence [O RTDS GCS21f];
        nothing stored: none, so NOT_FOUND (the caller) [O RTDS GCS21f NOT_FOUND]. The price runs
        "until changed" (0xFFFF minutes) [I]."""
        gas = self.get("gas") or {}
        kind = p["calendar_type"] if p.name == "GetSpecialDays" else DELIVERED_CALENDAR
        cal = (gas.get("calendars") or {}).get(str(kind)) or {}
        ids = {"provider_id": 0, "issuer_event_id": cal.get("event", 0), "issuer_calendar_id": cal.get("id", 0)}
        out = []
        if p.name in ("GetDayProfiles", "GetWeekProfiles"):
            day = p.name == "GetDayProfiles"
            first, count = (p["start_day_id"], p["number_of_days"]) if day else (p["start_week_id"], p["number_of_weeks"])
            rows = sorted((int(k), v) for k, v in (cal.get("days" if day else "weeks") or {}).items() if int(k) >= first)
            for n, row in rows[:count or None]:
                out.append(ClusterCommand.build(
                    _CAL, "PublishDayProfile", **ids, day_id=n, total_number_of_schedule_entries=len(row), command_index=0,
                    total_number_of_commands=1, calendar_type=kind,
                    schedule_entries=[{"start_time": s // 60, "value": v} for s, v in row]) if day else ClusterCommand.build(
                    _CAL, "PublishWeekProfile", **ids, week_id=n, **{f"day_id_ref_{d}": r for d, r in zip(_WEEKDAYS, row)}))
        elif p.name == "GetSeasons" and cal.get("seasons"):
            out.append(ClusterCommand.build(_CAL, "PublishSeasons", **ids, command_index=0, total_number_of_commands=1,
                                            seasons=[{"season_start_date": _date(y, m, d), "week_id_ref": w}
                                                     for y, m, d, w in cal["seasons"]]))
        elif p.name == "GetSpecialDays" and cal.get("special"):
            days = cal["special"][:p["number_of_events"] or None]  # 0: all of them [S ZSE]
            out.append(ClusterCommand.build(_CAL, "PublishSpecialDays", **ids, start_time=0, calendar_type=kind,
                                            total_number_of_special_days=len(days), command_index=0,
                                            total_number_of_commands=1,
                                            special_days=[{"special_day_date": _date(y, m, d), "day_id_ref": r}
                                                          for y, m, d, r in days]))
        elif p.name == "GetCurrentPrice" and gas.get("tariff"):
            t = gas["tariff"]
            tier, block = tier_block
            out.append(ClusterCommand.build(
                Cluster.PRICE, "PublishPrice", provider_id=0, rate_label=b"", issuer_event_id=t.get("event", 0),
                current_time=zcl_seconds(now), unit_of_measure=t.get("unit", 0), currency=826,
                price_trailing_digit_and_price_tier=(t.get("trailing_digit", 0x50) & 0xF0) | tier,
                number_of_price_tiers_and_register_tier=(min(15, t.get("tiers", GAS_TIERS)) << 4) | tier, start_time=0,
                duration_in_minutes=0xFFFF, price=max(0, int(round(unit_price(gas, tier, block) * 1000)))))
        return [_component(c.cluster_id, x, c.header.sequence, None, disable_default_response=True) for x in out]

    def han_clusters(self) -> dict[int, Callable[[], dict[int, Any]]]:
        """What the GPF's gas mirror serves to IHDs and PPMIDs on the HAN (`MIRROR_ENDPOINT` of the
        CHF's address): Metering, Prepayment and Price, read live from the copy, money in pence like
        the ESME's own ZCL server [I]."""
        return {Cluster.METERING: self.metering_attributes, Cluster.PREPAYMENT: lambda: self.prepayment_attributes(1),
                Cluster.PRICE: self.price_attributes}

    def _network_data(self, c: GbzComponent, p: ClusterCommand, encrypt) -> GbzComponent:
        """GCS18: the network data log GCS31 started (`gas.network_log`: start, interval, samples),
        each sample the gas used in its interval, summed from the half-hourly profile [I]."""
        log = (self.get("gas") or {}).get("network_log")
        if not log:
            return not_found(c)
        step = log["interval"]
        start = max(p["earliest_sample_time"] + ZCL_EPOCH, log["start"])
        start += (log["start"] - start) % step  # on the log's grid
        per = step // HALF_HOUR
        count = min(p["number_of_samples"], log["samples"], 48 * PROFILE_DAYS // per)  # no more than the profile holds
        halves = self.intervals(start, count * per)
        values = [halves[i:i + per] for i in range(0, len(halves), per)]
        values = [None if all(v is None for v in chunk) else sum(v or 0 for v in chunk) for chunk in values]
        while values and values[-1] is None:
            values.pop()
        if not values:
            return not_found(c)
        resp = ClusterCommand.build(_M, "GetSampledDataResponse", sample_id=p["sample_id"], sample_start_time=zcl_seconds(start),
                                    sample_type=0, sample_request_interval=step, number_of_samples=len(values),
                                    samples=[{"value": v or 0} for v in values])
        return _component(c.cluster_id, resp, c.header.sequence, encrypt, disable_default_response=True)

    # -- answering GBZ reads ------------------------------------------------------------------
    def answer(self, components: Iterable[GbzComponent], *, now: float, firmware_version: bytes = b"",
               encrypt: Callable[[bytes], bytes] | None = None, fail: "ZclFailure | None" = None) -> bytes:
        """The response content to GBZ reads: each component answered in order; data components
        encrypted with `encrypt` when given (the use cases in `gbcs.usecases.gas.ENCRYPTED_RESPONSES`).
        `fail` (`fail-next`, `read_failure`): the components before its index are answered as
        usual, that one fails with its status, the rest are not processed [O RTDS read ERROR vectors]."""
        components = list(components)
        out = []
        at = None if fail is None else (len(components) - 1 if fail.index is None else min(fail.index, len(components) - 1))
        for i, c in enumerate(components):
            if at is None or i < at:
                answered = self._answer_one(c, now, firmware_version, encrypt, i)
                out.extend(answered if isinstance(answered, list) else [answered])
            else:
                out.append(self._fail_one(c, fail, firmware_version, encrypt) if i == at else _not_processed(c))
        return GbzPayload.build(out).encode()

    def _read_values(self, cluster: int, fw: bytes) -> dict[int, Any]:
        """What a GBZ Read Attributes of `cluster` reads (money in ZSE units)."""
        return (self.metering_attributes(fw) if cluster == _M else self.prepayment_attributes() if cluster == _PP
                else BASIC_ATTRIBUTES if cluster == Cluster.BASIC else self.tariff_attributes() if cluster == Cluster.PRICE
                else {})

    def _fail_one(self, c: GbzComponent, fail: "ZclFailure", fw: bytes, encrypt) -> GbzComponent:
        """The failing component: a Read Attributes answers its records with the attribute at
        `fail.attribute` failing [O RTDS GCS13a / GCS21m / GCS38 ERROR]; any other command a
        Default Response with the status, in clear [O RTDS GCS16a / GCS15b / GCS17 ERROR]."""
        p = c.payload
        if isinstance(p, ReadAttributes):
            records = list(read_attributes_response(c.cluster_id, p.attribute_ids, self._read_values(c.cluster_id, fw)).records)
            k = min(fail.attribute, len(records) - 1)
            if records:
                records[k] = ReadAttributeRecord(records[k].attribute_id, fail.status)
            return _component(c.cluster_id, ReadAttributesResponse(tuple(records)), c.header.sequence, encrypt,
                              disable_default_response=encrypt is not None)
        return default_response(c, fail.status)

    def _answer_one(self, c: GbzComponent, now: float, fw: bytes, encrypt, index: int) -> GbzComponent:
        p = c.payload
        seq = c.header.sequence
        if isinstance(p, ReadAttributes):
            resp = read_attributes_response(c.cluster_id, p.attribute_ids, self._read_values(c.cluster_id, fw))
            return _component(c.cluster_id, resp, seq, encrypt, disable_default_response=encrypt is not None)
        if isinstance(p, ClusterCommand) and p.name == "GetSampledData" and p["sample_id"] == NETWORK_DATA_SAMPLE_ID:
            return self._network_data(c, p, encrypt)
        if isinstance(p, ClusterCommand) and p.name == "GetSampledData" and p["sample_id"] != 0:
            return not_found(c)  # only the profile (sample id 0) and the network data log are kept [I]
        if isinstance(p, ClusterCommand) and p.name == "GetSampledData":
            start = p["earliest_sample_time"] + ZCL_EPOCH
            start -= start % HALF_HOUR
            n = min(p["number_of_samples"], 48 * PROFILE_DAYS)
            values = self.intervals(start, n)
            while values and values[-1] is None:
                values.pop()
            if not values:
                return not_found(c)
            resp = ClusterCommand.build(_M, "GetSampledDataResponse", sample_id=p["sample_id"],
                                        sample_start_time=zcl_seconds(start), sample_type=0,
                                        sample_request_interval=HALF_HOUR,
                                        number_of_samples=len(values),
                                        samples=[{"value": v or 0} for v in values])
            return _component(c.cluster_id, resp, seq, encrypt, disable_default_response=True)
        if isinstance(p, ClusterCommand) and p.name == "GetBillingPeriod" and self.get("gas", {}).get("billing_start"):
            gas = self.get("gas")
            resp = ClusterCommand.build(Cluster.PRICE, "PublishBillingPeriod", provider_id=0, issuer_event_id=0,
                                        billing_period_start_time=gas["billing_start"],
                                        billing_period_duration=gas.get("billing_duration", 0),
                                        billing_period_duration_type=35, tariff_type=0)
            return _component(c.cluster_id, resp, seq, None)
        if isinstance(p, ClusterCommand) and p.name in ("GetSnapshot", "GetPrepaySnapshot") and p["snapshot_cause"] != 1:
            found = self.billing_snapshots(p["snapshot_cause"], p["earliest_start_time"] + ZCL_EPOCH, p["latest_end_time"] + ZCL_EPOCH)
            k = p["snapshot_offset"]
            if k >= len(found):
                return not_found(c)
            resp = (_snapshot(found[k], len(found), found[k]["cause"]) if p.name == "GetSnapshot"
                    else _prepay_snapshot(found[k], len(found), found[k]["cause"]))
            return _component(c.cluster_id, resp, seq, encrypt, disable_default_response=True)
        if isinstance(p, ClusterCommand) and p.name == "GetSnapshot":
            lo, hi = p["earliest_start_time"] + ZCL_EPOCH, p["latest_end_time"] + ZCL_EPOCH
            days = [e for e in self.daily() if lo <= e["t"] <= hi]
            days.reverse()  # offset 0 = the most recent [I]
            k = p["snapshot_offset"]
            if k >= len(days):
                return not_found(c)
            e = days[k]
            resp = _snapshot(e, len(days))
            return _component(c.cluster_id, resp, seq, encrypt, disable_default_response=True)
        if isinstance(p, ClusterCommand) and p.name == "GetPrepaySnapshot":
            lo, hi = p["earliest_start_time"] + ZCL_EPOCH, p["latest_end_time"] + ZCL_EPOCH
            days = [e for e in self.daily() if lo <= e["t"] <= hi and "credit" in e]
            days.reverse()
            k = p["snapshot_offset"]
            if k >= len(days):
                return not_found(c)
            resp = _prepay_snapshot(days[k], len(days))
            return _component(c.cluster_id, resp, seq, encrypt, disable_default_response=True)
        if isinstance(p, ClusterCommand) and p.name in CALENDAR_READS:
            reg = self.get("registers") or {}
            tier, block, _ = tariff_parts(self.get("gas") or {}, now, 1e-9, reg.get("block_kwh", 0.0))[-1]
            return self._calendar_answers(c, p, now, (tier, block)) or not_found(c)
        return not_found(c)  # logs this meter keeps empty (debt payments) [I]


DERIVED = "derived_profile"  # {"segments": [[S, e, R, cv, cf], ...]}: the derived profile (GasData)
MAX_SEGMENT_DAYS = PROFILE_DAYS  # a segment no longer: deriving one costs at most this many days of model
CALENDAR_READS = frozenset(("GetDayProfiles", "GetWeekProfiles", "GetSeasons", "GetSpecialDays", "GetCurrentPrice"))
STATE_KEYS = ("registers", "supply", "prepayment", "gas", "sync", "billing", DERIVED)
DAILY_STRETCHES = "daily_stretches"  # the GSME's own (not pushed): its derived daily reads (GasData.close_daily)
SETTINGS_NS = "gas_daily_settings"  # the gas settings a stretch replays with, one key per version
REPLAY_SETTINGS = ("cv", "cf", "tariff", "calendars", "billing_start", "billing_duration", "price", "standing")  # what the replay reads
MAX_STRETCH_DAYS = 31  # [I] reads replayed from one stored read at most (bounds a replay)


def settings_key(settings: dict) -> str:
    """The name of a version of the replay's gas settings (`SETTINGS_NS`)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _finite(v: Any) -> bool:
    return type(v) in (int, float) and math.isfinite(v)


def check_stretches(pushed: Any, lo: int, hi: int) -> dict:
    """A push's stretches (outside input, `GasData.pushed_daily`), checked: at most one per day of
    the log, each [S, e, block kWh, settings(, prepayment)] with S < e midnights within [lo, hi], in
    order, none longer than `MAX_STRETCH_DAYS` (what a replay costs stays bounded), settings sent
    along under their own name, prepayment states of numbers. Raises ValueError."""
    if not isinstance(pushed, dict) or set(pushed) != {"stretches", "settings"}:
        raise ValueError("stretches: {stretches, settings}")
    stretches, settings = pushed["stretches"], pushed["settings"]
    if not isinstance(stretches, list) or not isinstance(settings, dict) or len(stretches) > DAILY_DAYS:
        raise ValueError("stretches: a list, settings: an object")
    for key, value in settings.items():  # (an older build's versions lack the standing charge)
        if not (isinstance(value, dict) and {"cv", "cf"} <= set(value) <= set(REPLAY_SETTINGS) and settings_key(value) == key
                and all(_finite(value[k]) and value[k] > 0 for k in ("cv", "cf"))
                and all(value.get(k) is None or _finite(value[k]) for k in ("price", "standing", "billing_start", "billing_duration"))
                and all(value.get(k) is None or isinstance(value[k], dict) for k in ("tariff", "calendars"))):
            raise ValueError("stretch settings: the replay's, under their name")
    after = lo
    for x in stretches:
        if not (isinstance(x, list) and len(x) in (4, 5) and type(x[0]) is int and type(x[1]) is int
                and after <= x[0] < x[1] <= hi and x[0] % DAY == 0 and x[1] % DAY == 0
                and x[1] - x[0] <= MAX_STRETCH_DAYS * DAY and _finite(x[2]) and x[3] in settings
                and (len(x) == 4 or (_prepayment_state(x[4]) and _finite(settings[x[3]].get("standing"))))):
            raise ValueError(f"stretches [start, end, block kWh, settings(, prepayment)] in order, none longer "
                             f"than {MAX_STRETCH_DAYS} days")
        after = x[1]
    return pushed


def _prepayment_state(p: Any) -> bool:
    if not (isinstance(p, dict) and p.get("mode") in ("credit", "prepayment") and _finite(p.get("credit"))
            and _finite(p.get("ec_remaining")) and all(_finite(p.get(k, 0.0)) for k in DEBTS)):
        return False
    recovery = p.get("debt_recovery") or {}
    return isinstance(recovery, dict) and all(
        isinstance(r, dict) and all(_finite(r.get(f, 0)) for f in ("method", "frequency", "amount", "share"))
        for r in recovery.values())


def _prepay_snapshot(e: dict, total: int, cause: int = 1) -> ClusterCommand:
    """A daily read or billing snapshot as PublishPrepaySnapshot, payload type 0 (debt / credit status)."""
    return ClusterCommand.build(
        _PP, "PublishPrepaySnapshot", snapshot_id=(e["t"] // DAY) & 0xFFFFFFFF, snapshot_time=zcl_seconds(e["t"]),
        total_snapshots_found=min(total, 255), command_index=0, total_number_of_commands=1, snapshot_cause=cause,
        snapshot_payload_type=0, accumulated_debt=int(e.get("debt", 0) * MONEY),
        **{f"type{i}_debt_remaining": int(d * MONEY) for i, d in enumerate(e.get("debts") or (0, 0, 0), 1)},
        emergency_credit_remaining=int(e.get("ec", 0) * MONEY),
        credit_remaining=int(e["credit"] * MONEY))


def _snapshot(e: dict, total: int, cause: int = 1) -> ClusterCommand:
    """A daily read (or billing snapshot, with its cause) as PublishSnapshot, payload type 6 (block
    tier information set delivered), the GB daily snapshot [O RTDS GCS16a]."""
    tiers = list(e.get("tier_l", [0] * 4))
    blocks = list(e.get("block_l", [0] * 4))
    return ClusterCommand.build(
        _M, "PublishSnapshot", snapshot_id=(e["t"] // DAY) & 0xFFFFFFFF, snapshot_time=zcl_seconds(e["t"]),
        total_snapshots_found=min(total, 255), command_index=0, total_number_of_commands=1, snapshot_cause=cause,
        snapshot_payload_type=6, current_summation_delivered=e["volume_l"], number_of_tiers_in_use=len(tiers),
        tier_summations=[{"value": v} for v in tiers], number_of_tiers_and_block_thresholds_in_use=len(blocks),
        tier_block_summations=[{"value": v} for v in blocks],
    )


BASIC_ATTRIBUTES = {0x0004: "GBHUB", 0x0005: "GSME-EMULATOR"}  # manufacturer, model [I]


# settings a command writes into the "gas" state: command name -> {field: state key} [I]
GAS_SETTINGS = {
    "DisplayMessage": {"message": "message"},
    "PublishChangeOfSupplier": {"proposed_provider_name": "supplier_name", "proposed_provider_contact_details": "supplier_contact"},
    "RequestNewPasswordResponse": {"password_type": "pin_disabled"},
    "SetUncontrolledFlowThreshold": {"uncontrolled_flow_threshold": "flow_threshold"},
    "SetSupplyStatus": {"supply_tamper_state": "tamper_state", "supply_depletion_state": "depletion_state"},
    "PublishBillingPeriod": {"billing_period_start_time": "billing_start", "billing_period_duration": "billing_duration"},
    "PublishBlockPeriod": {"block_period_start_time": "block_start", "block_period_duration": "block_duration"},
    "PublishChangeOfTenancy": {"implementation_date_time": "tenancy_date"},
    "UpdateSiteId": {"site_id": "mprn"},
    "UpdateCIN": {"customer_id_number": "cin"},
    "PublishConversionFactor": {},
    "PublishCalorificValue": {},
    "ChangeDebt": {},
}
# prepayment settings: command -> {field: prepayment state key (pence)}
PREPAY_SETTINGS = {
    "EmergencyCreditSetup": {"emergency_credit_limit": "ec_limit", "emergency_credit_threshold": "ec_threshold"},
    "SetOverallDebtCap": {"overall_debt_cap": "debt_cap"},
    "SetLowCreditWarningLevel": {"low_credit_warning_level": "low_credit"},
    "SetMaximumCreditLimit": {"maximum_credit_level": "max_credit", "maximum_credit_per_top_up": "max_top_up"},
}
TARIFF_COMMANDS = frozenset(("PublishCalendar", "PublishDayProfile", "PublishWeekProfile", "PublishSeasons",
                             "PublishSpecialDays", "PublishTariffInformation", "PublishBlockThresholds",
                             "PublishPriceMatrix"))
PAYMENT_PREPAYMENT_BIT = 0x0001  # PaymentControlConfiguration bit 0: prepayment [I]


def apply_command(data: GasData, cmd: Any) -> bool:
    """What one GBZ command component changes in the gas state: the GSME executing it, and the
    GPF applying a tap-off (an executed command / response pair, or a future-dated one's 0x8F66)
    to its mirror, in one place. False when the command changes none of this state."""
    name = getattr(cmd, "name", "")
    if name in PREPAY_SETTINGS or name == "ChangePaymentMode":
        p = dict(data.get("prepayment") or {})
        if name == "ChangePaymentMode":
            p["mode"] = "prepayment" if cmd["proposed_payment_control_configuration"] & PAYMENT_PREPAYMENT_BIT else "credit"
        else:
            for field, key in PREPAY_SETTINGS[name].items():
                p[key] = cmd[field] / MONEY
            if name == "EmergencyCreditSetup":
                p["ec_remaining"] = min(p.get("ec_remaining", 0.0), p["ec_limit"])
        data.put("prepayment", p)
        return True
    gas = dict(data.get("gas") or {})
    if name in _PRICE_COMMANDS:
        _apply_price(gas, name, cmd)
    elif name in _CALENDAR_COMMANDS:
        _apply_calendar(gas, name, cmd)
    elif name in GAS_SETTINGS:
        for field, key in GAS_SETTINGS[name].items():
            value = cmd[field]
            gas[key] = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        if name == "PublishConversionFactor":
            gas["cf"] = cmd["conversion_factor"] / 10 ** (cmd["conversion_factor_trailing_digit"] >> 4)
        elif name == "PublishCalorificValue":
            gas["cv"] = cmd["calorific_value"] / 10 ** (cmd["calorific_value_trailing_digit"] >> 4)
        elif name == "SetUncontrolledFlowThreshold":
            # threshold in m³/h × divisor [O RTDS: divisor 10000] -> litres per hour
            gas["uncontrolled_flow_lph"] = (cmd["uncontrolled_flow_threshold"] * cmd["multiplier"]
                                            / max(1, cmd["divisor"]) * 1000)
        elif name == "ChangeDebt":
            _change_debt(data, cmd)
    else:
        return False
    data.put("gas", gas)
    return True


# -- the tariff (GCS01a/b): what the GSME charges and where consumption accrues (`firmware.tariff`) --
GAS_TIERS, GAS_BLOCKS = 4, 4  # the GSME's tier and block registers [S FACTS §3.3: tier 1-4, block 1-4 summations]
DELIVERED_CALENDAR = 0x00  # ZSE CalendarType of the import (TOU) calendar; GCS05's friendly credit one is 0x03
TOU, BLOCK, BLOCK_TOU_COMMON, BLOCK_TOU = 0, 1, 2, 3  # ZSE TariffType high nibble: charging scheme [S ZSE]
_PRICE_COMMANDS = frozenset(("PublishTariffInformation", "PublishPriceMatrix", "PublishBlockThresholds"))
_CALENDAR_COMMANDS = frozenset(("PublishCalendar", "PublishDayProfile", "PublishWeekProfile", "PublishSeasons",
                                "PublishSpecialDays"))
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def _apply_price(gas: dict, name: str, cmd: Any) -> None:
    """Prices in pence per kWh (ZSE price /1000: trailing digit 0x50 [O RTDS]) keyed "tier:block"
    (tier 0: none; block 0-based) from the TierBlockID (a TOU matrix, sub-payload bit 0: the tier;
    else tier in the high nibble, block in the low [S ZSE]); block thresholds per tier (raw, scaled
    to kWh by the tariff information's multiplier / divisor)."""
    t = dict(gas.get("tariff") or {})
    if name == "PublishTariffInformation":
        gas["standing"] = cmd["standing_charge"] / 1000
        t["scheme"] = cmd["tariff_type_charging_scheme"] >> 4
        t["threshold_scale"] = cmd["block_threshold_multiplier"] / (cmd["block_threshold_divisor"] or 1)
        t.update(event=cmd["issuer_event_id"], type=cmd["tariff_type_charging_scheme"], unit=cmd["unit_of_measure"],
                 trailing_digit=cmd["price_trailing_digit"], tiers=cmd["number_of_price_tiers_in_use"],
                 multiplier=cmd["block_threshold_multiplier"], divisor=cmd["block_threshold_divisor"])
    elif name == "PublishPriceMatrix" and cmd["prices"]:
        tou = bool(cmd["sub_payload_control"] & 0x01)
        prices = {}
        for row in map(dict, cmd["prices"]):
            i = row["tier_block_id"]
            prices[f"{i}:0" if tou else f"{i >> 4}:{i & 0x0F}"] = row["price"] / 1000
        t["prices"] = prices
        gas["price"] = dict(cmd["prices"][0])["price"] / 1000
    elif name == "PublishBlockThresholds":
        t["thresholds"] = {str(row["tier_number_of_block_thresholds"] >> 4): [dict(b)["threshold"] for b in row["block_thresholds"]]
                           for row in map(dict, cmd["tiers"])}
    gas["tariff"] = t


def _apply_calendar(gas: dict, name: str, cmd: Any) -> None:
    """The ZSE calendars by type: PublishCalendar starts a new one (day and week profiles and
    seasons follow it in the same command and belong to it; special days are replaced by their own
    command) [I]."""
    calendars = dict(gas.get("calendars") or {})
    kind = cmd["calendar_type"] if "calendar_type" in {k for k, _ in cmd.fields} else gas.get("calendar_type", DELIVERED_CALENDAR)
    cal = dict(calendars.get(str(kind)) or {})
    if name == "PublishCalendar":
        cal = {"special": cal.get("special", [])}
        gas["calendar_type"] = kind
    elif name == "PublishDayProfile":
        cal["days"] = {**(cal.get("days") or {}), str(cmd["day_id"]): [[dict(e)["start_time"] * 60, dict(e)["value"]]
                                                                        for e in cmd["schedule_entries"]]}
    elif name == "PublishWeekProfile":
        cal["weeks"] = {**(cal.get("weeks") or {}), str(cmd["week_id"]): [cmd[f"day_id_ref_{d}"] for d in _WEEKDAYS]}
    elif name == "PublishSeasons":
        cal["seasons"] = [[d.year, d.month, d.day, ref] for d, ref in
                          ((dict(x)["season_start_date"], dict(x)["week_id_ref"]) for x in cmd["seasons"])]
    elif name == "PublishSpecialDays":
        cal["special"] = [[d.year, None if d.month == 0xFF else d.month, d.day, ref] for d, ref in
                          ((dict(x)["special_day_date"], dict(x)["day_id_ref"]) for x in cmd["special_days"])]
    cal.update(event=cmd["issuer_event_id"], id=cmd["issuer_calendar_id"])  # what GCS21f answers with
    calendars[str(kind)] = cal
    gas["calendars"] = calendars


def _date(year: int | None, month: int | None, day: int) -> ZclDate:
    """A stored calendar date back as the ZCL date it came as (None: any year / month)."""
    return ZclDate(0xFF if year is None else year - 1900, 0xFF if month is None else month, day, 0xFF)


def gas_calendar(gas: dict) -> Calendar:
    """The GSME's import (TOU) calendar as a `firmware.tariff.Calendar`."""
    cal = (gas.get("calendars") or {}).get(str(DELIVERED_CALENDAR)) or {}
    seasons = []
    for year, month, day, week in cal.get("seasons") or ():
        if year is None:
            seasons.append(((month, day), week))
        else:
            try:
                seasons.append((_dt.datetime(year, month, day, tzinfo=_dt.timezone.utc).timestamp(), week))
            except ValueError:
                continue
    return Calendar(tuple(seasons), {int(k): v for k, v in (cal.get("weeks") or {}).items()},
                    {int(k): [tuple(e) for e in v] for k, v in (cal.get("days") or {}).items()},
                    tuple(tuple(x) for x in cal.get("special") or ()))


def gas_kwh(gas: dict, litres: float) -> float:
    """kWh of `litres` at the calorific value and conversion factor in `gas`."""
    return litres / 1000.0 * gas["cv"] * gas["cf"] / 3.6


def accrue(gas: dict, reg: dict, litres: int, end: float) -> list[tuple[int, int, float]]:
    """The half hour ending at `end`'s litres into `reg`'s tier and block registers by the tariff
    in `gas` (`tariff_parts`: the calendar's tier, split where it crosses a block threshold);
    returns the (tier, block, kWh) parts to charge. The GSME's close and its daily read replay."""
    kwh = gas_kwh(gas, litres)
    parts = tariff_parts(gas, end - HALF_HOUR, kwh, reg.get("block_kwh", 0.0))
    reg["block_kwh"] = reg.get("block_kwh", 0.0) + kwh
    left = litres
    for i, (tier, block, part) in enumerate(parts):
        share = left if i == len(parts) - 1 else int(round(litres * part / kwh))
        left -= share
        reg["tier_l"][tier - 1] += share
        reg["block_l"][block] += share
    return parts


def daily_read(reg: dict, t: int, credit: float) -> dict:
    """The daily read log entry of midnight `t` (the close, and the replay)."""
    return {"t": int(t), "volume_l": reg["volume_l"], "tier_l": list(reg["tier_l"]), "block_l": list(reg["block_l"]),
            "credit": credit}


def billing_date(gas: dict, midnight: int) -> bool:
    """Whether `midnight` starts a billing period of the billing calendar (GCS25/GCS25a: start,
    duration in months [I]); without a calendar, the first of each month [I]."""
    day = _dt.datetime.fromtimestamp(midnight, _dt.timezone.utc).date()
    if not gas.get("billing_start"):
        return day.day == 1
    start = _dt.datetime.fromtimestamp(gas["billing_start"] + ZCL_EPOCH, _dt.timezone.utc).date()
    months = (day.year - start.year) * 12 + day.month - start.month
    last = (day.replace(day=28) + _dt.timedelta(days=4)).replace(day=1) - _dt.timedelta(days=1)
    return months >= 0 and months % max(1, int(gas.get("billing_duration") or 1)) == 0 and day.day == min(start.day, last.day)


def tariff_parts(gas: dict, t: float, kwh: float, consumed_kwh: float) -> list[tuple[int, int, float]]:
    """How `kwh` used at device time `t` is charged and registered: (tier 1..4, block 0..3, kWh)
    parts. The tier comes from the calendar (TOU schemes; a value outside 1..4 is tier 1 [I]),
    the blocks from the thresholds that `consumed_kwh` (so far in the block period) plus `kwh`
    crosses (block schemes); a scheme without one has tier 1 / block 1 [I]."""
    tariff = gas.get("tariff") or {}
    scheme = tariff.get("scheme", TOU)
    tier = 1
    if scheme != BLOCK:
        value = gas_calendar(gas).value_at(t)
        tier = value if value is not None and 1 <= value <= GAS_TIERS else 1
    if scheme == TOU:
        return [(tier, 0, kwh)]
    by_tier = tariff.get("thresholds") or {}
    raw = by_tier.get(str(tier) if scheme == BLOCK_TOU else "0") or next(iter(by_tier.values()), [])
    scale = tariff.get("threshold_scale", 1.0)
    thresholds = [v * scale for v in raw][:GAS_BLOCKS - 1]
    return [(tier, block, part) for block, part in split_blocks(consumed_kwh, kwh, thresholds)]


def unit_price(gas: dict, tier: int, block: int = 0) -> float:
    """Pence per kWh of a tier and block under the tariff's scheme; the first price when the
    matrix has none for them (and the factory price before any tariff)."""
    tariff = gas.get("tariff") or {}
    scheme = tariff.get("scheme", TOU)
    key = {TOU: f"{tier}:0", BLOCK: f"0:{block}"}.get(scheme, f"{tier}:{block}")
    return float((tariff.get("prices") or {}).get(key, gas.get("price", 0.0)))


def _change_debt(data: GasData, cmd: Any) -> None:
    """ZSE ChangeDebt: amount type 2n is debt n+1's new amount, 2n+1 an increment to it [S ZSE
    DebtAmountType]; debts 1 and 2 are the time-based ones, debt 3 the payment-based one [O RTDS
    GCS04]. Its recovery settings (`meter.prepayment` recovers it): method 0 time-based (amount per
    frequency: 0 hour, 1 day, 2 week, 3 month, 4 quarter [S ZSE]), 1 payment-based (the share of
    each top-up, in 0.01 % [I units])."""
    p = dict(data.get("prepayment") or {})
    kind = cmd["debt_amount_type"]
    key = DEBTS[min(len(DEBTS) - 1, kind // 2)]
    amount = cmd["debt_amount"] / MONEY
    p[key] = min(DEBT_MAX, max(0.0, p.get(key, 0.0) + amount if kind & 1 else amount))
    recovery = dict(p.get("debt_recovery") or {})
    recovery[key] = {"method": cmd["debt_recovery_method"], "frequency": cmd["debt_recovery_frequency"],
                     "amount": cmd["debt_recovery_amount"] / MONEY,
                     "share": cmd["debt_recovery_balance_percentage"] / 10000.0}
    p["debt_recovery"] = recovery
    p["debt"] = sum(p.get(k, 0.0) for k in DEBTS)
    data.put("prepayment", p)


def debt_rate_per_day(recovery: dict) -> float:
    """A time-based debt's recovery amount per day in pence, from ChangeDebt's settings (`_change_debt`)."""
    if recovery.get("method") != DEBT_TIME_BASED:
        return 0.0
    return recovery.get("amount", 0.0) * DEBT_PERIODS_PER_DAY.get(recovery.get("frequency"), 0.0)


def default_response(c: GbzComponent, status: int = Status.SUCCESS) -> GbzComponent:
    """A Default Response to component `c`, in the opposite direction [O RTDS GCS07/GCS40a]."""
    back = 0 if c.header.direction else 1
    return GbzComponent.build(c.cluster_id, DefaultResponse(c.header.command_id, status), sequence=c.header.sequence,
                              direction=back)


@dataclass(frozen=True, slots=True)
class ZclFailure:
    """`fail-next` for a GBZ command: `status` (a ZCL status) of component `index` (None: the
    last), and for a Read Attributes the record `attribute` (from 0) that carries it."""

    status: int
    index: int | None = None
    attribute: int = 0


def _parse_zcl_failure(text: str) -> ZclFailure:
    """`STATUS[@INDEX[.ATTRIBUTE]]`: a ZCL status (name such as `hardware-failure`, or a number),
    the index of the component that fails (default: the last) and, when it is a Read Attributes,
    which of its attributes (default: the first)."""
    name, at, where = text.strip().partition("@")
    key = name.strip().upper().replace("-", "_")
    if key in Status.__members__:
        status = int(Status[key])
    elif key.isdigit() and int(key) <= 0xFF:
        status = int(key)
    else:
        raise ValueError(f"{name!r} is not a ZCL status (e.g. hardware-failure, failure, or a number 0-255), "
                         "optionally followed by @COMPONENT_INDEX[.ATTRIBUTE_INDEX]")
    index, _, attribute = where.partition(".")
    if (index and not index.isdigit()) or (attribute and not attribute.isdigit()) or (at and not index):
        raise ValueError(f"@{where}: the failing component's index (and attribute's) are numbers from 0")
    return ZclFailure(status, int(index) if index else None, int(attribute) if attribute else 0)


def gbz_failure(dated: Callable[[Any], bytes | None] | None = None) -> FailNext:
    """`fail-next USE_CASE STATUS[@INDEX]` for a GBZ command answered with Default Responses: the
    components before INDEX answer SUCCESS, component INDEX answers STATUS, and each one after it,
    not processed, a Default Response for command 0xFF with FAILURE [O RTDS GCS01a / GCS05
    FUTURE_DATED_*ERROR, GCS04 / GCS24a / GCS25a / GCS40a / GCS06 / GCS32 / GCS39 ERROR; GCS15b /
    GCS16b ERROR show one per component]; nothing is executed [I].
    `dated(device)` is the response's date-time when the use case dates it."""

    def respond(device: Any, message: Message, fail: ZclFailure) -> Outcome:
        comps = gbz_command(message)
        i = len(comps) - 1 if fail.index is None else min(fail.index, len(comps) - 1)
        out = ([default_response(c) for c in comps[:i]] + [default_response(comps[i], fail.status)]
               + [_not_processed(c) for c in comps[i + 1:]])
        return Outcome(GbzPayload.build(out).encode(), None if dated is None else dated(device))

    return FailNext(_parse_zcl_failure, respond)


def read_failure(answer: Callable[[Any, Message, ZclFailure], Any]) -> FailNext:
    """`fail-next USE_CASE STATUS[@INDEX[.ATTRIBUTE]]` for a GBZ read: `answer(device, command,
    failure)` answers it as usual up to the failing component (`GasData.answer(fail=...)`)."""
    return FailNext(_parse_zcl_failure, answer)


def _not_processed(c: GbzComponent) -> GbzComponent:
    """The Default Response (command 0xFF, FAILURE) for a component not processed after a failing one."""
    return GbzComponent.build(c.cluster_id, DefaultResponse(0xFF, Status.FAILURE), sequence=c.header.sequence,
                              direction=0 if c.header.direction else 1)


def not_found(c: GbzComponent) -> GbzComponent:
    return default_response(c, _NOT_FOUND)


def _component(cluster: int, payload: Any, sequence: int, encrypt, *, disable_default_response: bool = False) -> GbzComponent:
    if encrypt is not None:
        return GbzComponent.build_encrypted(cluster, payload, encrypt, sequence=sequence,
                                            disable_default_response=disable_default_response)
    return GbzComponent.build(cluster, payload, sequence=sequence, disable_default_response=disable_default_response)


__all__ = ["GasData", "MIRROR_ENDPOINT", "MIRROR_CLUSTERS", "apply_command", "GAS_SETTINGS", "PREPAY_SETTINGS", "TARIFF_COMMANDS", "MIRROR_ATTRIBUTE", "NOTIFICATION_FLAGS_ATTRIBUTE", "NEW_OTA_FIRMWARE", "default_response", "gbz_failure", "not_found", "BASIC_ATTRIBUTES", "NS", "PROFILE_NS", "DAILY_NS", "HALF_HOUR", "DAY", "ZCL_EPOCH", "SUPPLY_ZCL", "MONEY", "zcl_seconds",
           "PROFILE_DAYS", "DAILY_DAYS", "DERIVED", "MAX_SEGMENT_DAYS"]
