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
same interval twice is idempotent and 13 months cost ~400 keys.

Units [I]: volume registers in litres (ZSE CurrentSummationDelivered with unit m³, divisor 1000,
as RTDS GCS13a shows [O]); money in pence, shown in ZSE money units of 1/100000 £ [O RTDS CS01b].
"""
from __future__ import annotations

import datetime as _dt
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
    read_attributes_response,
)

from gbcs.usecases.gas import NETWORK_DATA_SAMPLE_ID

from .gbcs_device import CommandRejected, FailNext, Outcome

NS = "meter"  # the namespace `meter.prepayment` keeps its state in
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
SUPPLY_ZCL = {"disabled": 0, "armed": 1, "enabled": 2}
_M, _PP = Cluster.METERING, Cluster.PREPAYMENT
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
    """One GSME's data in an NVM view (module doc)."""

    def __init__(self, nvm) -> None:
        self.nvm = nvm

    # -- state -------------------------------------------------------------------------------
    def get(self, key: str, default: Any = None) -> Any:
        return self.nvm.get(NS, key, default)

    def put(self, key: str, value: Any) -> None:
        self.nvm.put(NS, key, value)

    def state(self) -> dict:
        """Everything but the logs (what a push carries)."""
        return {k: v for k, v in self.nvm.items(NS) if k in STATE_KEYS}

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
        t = start - start % HALF_HOUR
        cache: dict[int, list | None] = {}
        for _ in range(count):
            day = t // DAY
            if day not in cache:
                cache[day] = self.nvm.get(PROFILE_NS, str(day))
            slots = cache[day]
            out.append(None if slots is None else slots[(t % DAY) // HALF_HOUR])
            t += HALF_HOUR
        return out

    def put_daily(self, entry: dict) -> None:
        self.nvm.put(DAILY_NS, str(entry["t"] // DAY), entry)

    def daily_between(self, after: int, upto: int) -> list[dict]:
        """Daily reads taken after `after` up to `upto` (Unix seconds), oldest first: one key
        lookup per day, so a push costs the same in month 13 as on day 1."""
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

    def daily(self) -> list[dict]:
        return sorted((v for _k, v in self.nvm.items(DAILY_NS)), key=lambda e: e["t"])

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
                out.append(self._answer_one(c, now, firmware_version, encrypt, i))
            else:
                out.append(self._fail_one(c, fail, firmware_version, encrypt) if i == at else _not_processed(c))
        return GbzPayload.build(out).encode()

    def _read_values(self, cluster: int, fw: bytes) -> dict[int, Any]:
        """What a GBZ Read Attributes of `cluster` reads (money in ZSE units)."""
        return (self.metering_attributes(fw) if cluster == _M else self.prepayment_attributes() if cluster == _PP
                else BASIC_ATTRIBUTES if cluster == Cluster.BASIC else {})

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
        return not_found(c)  # logs this meter keeps empty (debt payments), calendar and price reads [I]


STATE_KEYS = ("registers", "supply", "prepayment", "gas", "sync", "billing")


def _prepay_snapshot(e: dict, total: int, cause: int = 1) -> ClusterCommand:
    """A daily read or billing snapshot as PublishPrepaySnapshot, payload type 0 (debt / credit status)."""
    return ClusterCommand.build(
        _PP, "PublishPrepaySnapshot", snapshot_id=(e["t"] // DAY) & 0xFFFFFFFF, snapshot_time=zcl_seconds(e["t"]),
        total_snapshots_found=min(total, 255), command_index=0, total_number_of_commands=1, snapshot_cause=cause,
        snapshot_payload_type=0, accumulated_debt=int(e.get("debt", 0) * MONEY), type1_debt_remaining=0,
        type2_debt_remaining=0, type3_debt_remaining=0, emergency_credit_remaining=int(e.get("ec", 0) * MONEY),
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
    to its mirror, in one place. False when the command changes none of this state (calendar
    profiles, seasons: kept by neither [I])."""
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
    if name == "PublishTariffInformation":
        gas["standing"] = cmd["standing_charge"] / 1000
    elif name == "PublishPriceMatrix" and cmd["prices"]:
        gas["price"] = dict(cmd["prices"][0])["price"] / 1000
        gas["prices"] = [dict(p)["price"] / 1000 for p in cmd["prices"]]
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
        elif name == "ChangeDebt":  # debt registers 1..3 by amount type (1/2 debt 1, 3/4 debt 2, 5/6 debt 3) [I]
            p = dict(data.get("prepayment") or {})
            debts = list(p.get("debts", [0.0, 0.0, 0.0]))
            debts[min(2, max(0, (cmd["debt_amount_type"] - 1) // 2))] = cmd["debt_amount"] / MONEY
            p["debts"] = debts
            p["debt"] = sum(debts)
            data.put("prepayment", p)
    else:
        return False
    data.put("gas", gas)
    return True


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


__all__ = ["GasData", "MIRROR_ENDPOINT", "MIRROR_CLUSTERS", "apply_command", "GAS_SETTINGS", "PREPAY_SETTINGS", "TARIFF_COMMANDS", "MIRROR_ATTRIBUTE", "NOTIFICATION_FLAGS_ATTRIBUTE", "NEW_OTA_FIRMWARE", "default_response", "gbz_failure", "read_failure", "ZclFailure", "not_found", "BASIC_ATTRIBUTES", "NS", "PROFILE_NS", "DAILY_NS", "HALF_HOUR", "DAY", "ZCL_EPOCH", "SUPPLY_ZCL", "MONEY", "zcl_seconds",
           "PROFILE_DAYS", "DAILY_DAYS"]
