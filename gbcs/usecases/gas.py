"""Gas use cases (GSME, and the GPF answering for it): GBZ payloads (ZCL commands in GBZ
components, `gbcs.gbz`) and GCS28's ASN.1.

Every layout was taken from the use case's RTDS COMMAND vectors [O]; use cases without a vector
(GCS14, GCS33, GCS60) read the ZSE attributes the DUIS response names [I]. Where RTDS sends a read
to the GPF (GCS13a SUCCESS_RELIABLE_GPF / _GSME) the definition's `target` is the GPF, which
answers from its data store at once; any read may also be sent to the GSME, which answers at its
next wake. The response's header date-time carries the reliability of the data in its clock
status byte [O RTDS GCS13a]: 0x00 GPF-reliable, 0x04 GSME-reliable, 0x02 unreliable.

Timestamps in ZCL are UTC seconds since 2000-01-01. `issuer_event_id` (and other "now" stamps)
default to the caller's `now` as ZCL UTC seconds [O RTDS: 473385600 = 2015-01-01T00:00Z, the
vectors' date].

Future-dated forms: GCS01a/b, GCS05 and GCS02/03 (the gas use cases whose DUIS pattern lets the
device hold them, `catalogue.device_future_dated`) carry their execution date-time in each timed
component's start / implementation date-time field, or in the GBZ from-date-time (GCS05's
SetLowCreditWarningLevel) [O RTDS 1.1.1_GCS01a, 2.1_GCS05]: 0 is "now", 0xFFFFFFFE / 0xFFFFFFFF
"never" (cancel) [O RTDS CANCELLATION], anything else a ZCL UTC time (`execution_time`). Calendar
day / week profiles and seasons carry none: they go with their PublishCalendar.
"""
from __future__ import annotations

import datetime as _dt
from typing import Any

from .. import catalogue
from ..asn1 import (
    DeviceLogEntry,
    DeviceTimeStatus,
    GpfDeviceLogBackupAlert,
    GpfDeviceLogRestore,
    GpfDeviceLogRestoreResponse,
    SetTime,
    SetTimeResponse,
)
from ..codec import jsonable
from ..frame import Message
from ..gbz import GbzAlert, GbzPayload, GbzComponent
from ..zcl import (
    Cluster,
    ClusterCommand,
    DefaultResponse,
    ReadAttributes,
    ReadAttributesResponse,
    Status,
    ZclDate,
    attribute_name,
    status_name,
    utc_seconds,
    utc_text,
)
from .common import REGISTRY, Unexpected, define, span_until
from .params import REQUIRED, Param

_M, _PP = Cluster.METERING, Cluster.PREPAYMENT
_ZCL_EPOCH = _dt.datetime(2000, 1, 1, tzinfo=_dt.timezone.utc)

#: clock status byte of a gas response's date-time -> who vouches for the data [O RTDS GCS13a]
RELIABILITY = {0x00: "gpf", 0x04: "gsme", 0x02: "unreliable"}
GPF_RELIABLE, GSME_RELIABLE, UNRELIABLE = 0x00, 0x04, 0x02

# attribute ids the reads ask for [O RTDS GCS13a/GCS38; I for GCS14/GCS33/GCS60]
REGISTER_READ = (0x0302, 0x0301, 0x0300, 0x0000)  # divisor, multiplier, unit, CurrentSummationDelivered
FIRMWARE_READ = (0x0206,)  # [O RTDS GCS38]
SUPPLY_STATUS = 0x0014
SUPPLY_READ = (SUPPLY_STATUS,)
BALANCE_READ = (0x0001, 0x0002, 0x0005)  # credit, emergency credit remaining, accumulated debt
PREPAYMENT_READ = (0x0000, 0x0001, 0x0002, 0x0003, 0x0005, 0x0010, 0x0011, 0x0020)
SUPPLY_OFF, SUPPLY_ARMED, SUPPLY_ON = 0, 1, 2  # ZSE SupplyStatus: off, off/armed, on [S ZSE; O RTDS GCS39 = 1]
#: reads whose response components carry meter data encrypted [O RTDS GCS13a/GCS15d/GCS16a/GCS16b/GCS17; I GCS14/GCS60]
ENCRYPTED_RESPONSES = frozenset(catalogue.MessageCode[n] for n in ("GCS13a", "GCS14", "GCS60", "GCS15b", "GCS15d", "GCS16a",
                                                                   "GCS16b", "GCS17"))
SNAPSHOT_COMPONENTS = 31  # GCS16a asks for 31 daily snapshots [O RTDS]


def zcl_time(moment: _dt.datetime) -> int:
    """ZCL UTCTime of `moment`, clamped to what the field holds (2000-01-01 .. 2136)."""
    return min(max(0, utc_seconds(moment)), 0xFFFFFFFE)


def _now_stamp(value: int | None, now: _dt.datetime | None, what: str) -> int:
    if value is not None:
        return value
    if now is None:
        raise ValueError(f"{what} defaults to the caller's time; none was given")
    return zcl_time(now)


def gbz(*items: tuple, renumber: bool = False) -> bytes:
    """A GBZ command of one component per (cluster, ZCL payload[, from date-time]): ZCL sequence
    0, or with `renumber` the component index (GCS16a) [O RTDS]."""
    return GbzPayload.build([GbzComponent.build(item[0], item[1], from_date_time=item[2] if len(item) > 2 else None)
                             for item in items], renumber=renumber).encode()


def cmd(cluster: int, name: str, **fields: Any) -> tuple[int, ClusterCommand]:
    return cluster, ClusterCommand.build(cluster, name, **fields)


def _read(cluster: int, ids: tuple[int, ...]):
    def build(counter: int) -> bytes:
        return gbz((cluster, ReadAttributes(ids)))
    return build


_EVENT = Param("issuer_event_id", "int", None, "ZSE issuer event id (UTC seconds since 2000); default: now", min=0, max=0xFFFFFFFF)


# ------------------------------------------------------------------------------- interpreters


def components(p: Any) -> tuple[GbzComponent, ...]:
    if isinstance(p, GbzAlert) or not isinstance(p, GbzPayload):
        raise Unexpected("not a GBZ response")
    return p.components


def _component_summary(c: GbzComponent) -> dict:
    if c.payload is None:
        return {"encrypted": True, "decrypted": False}
    p = c.payload
    if isinstance(p, ReadAttributesResponse):
        out: dict[str, Any] = {}
        for r in p.records:
            name = attribute_name(c.cluster_id, r.attribute_id)
            out[name] = jsonable(r.value) if r.status == Status.SUCCESS else status_name(r.status)
        return {"attributes": out}
    if isinstance(p, DefaultResponse):
        return {"status": status_name(p.status), "status_code": p.status}
    if isinstance(p, ClusterCommand):
        return {"command": p.name, "fields": jsonable(p.as_dict())}
    return {"payload": type(p).__name__}


def _reliability(m: Message | None) -> dict:
    if m is None or not m.date_time or len(m.date_time) != 12:
        return {}
    status = m.date_time[-1]
    return {"clock_status": status, "reliability": RELIABILITY.get(status, f"0x{status:02X}")}


def _failed(c: GbzComponent) -> bool:
    p = c.payload
    if isinstance(p, DefaultResponse):
        return p.status != Status.SUCCESS
    if isinstance(p, ReadAttributesResponse):
        return any(r.status != Status.SUCCESS for r in p.records)
    return False


def _i_generic(p: Any, m: Message | None) -> dict:
    comps = components(p)
    out: dict[str, Any] = {"ok": not any(_failed(c) for c in comps), **_reliability(m)}
    summaries = [_component_summary(c) for c in comps]
    if len(summaries) == 1:
        out.update(summaries[0])
    else:
        out["components"] = summaries
    return out


def _attrs(p: Any, m: Message | None) -> tuple[dict, dict]:
    out = _i_generic(p, m)
    return out, out.get("attributes", {})


def _i_gcs13a(p: Any, m: Message | None) -> dict:
    out, a = _attrs(p, m)
    if "CurrentSummationDelivered" in a and isinstance(a.get("Divisor"), int) and a["Divisor"]:
        out["volume_m3"] = a["CurrentSummationDelivered"] * a.get("Multiplier", 1) / a["Divisor"]
    return out


def _money(v: Any) -> Any:
    return v / 100000 if isinstance(v, int) else v  # ZSE money in 1/100000 £ [O RTDS CS01b: 1250000 = £12.50]


def _i_balance(p: Any, m: Message | None) -> dict:
    out, a = _attrs(p, m)
    for key, name in (("credit", "CreditRemaining"), ("emergency_credit", "EmergencyCreditRemaining"),
                      ("debt", "AccumulatedDebt")):
        if name in a:
            out[key] = _money(a[name])
    return out


def _i_supply(p: Any, m: Message | None) -> dict:
    out = _i_generic(p, m)
    value = out.get("attributes", {}).get("SupplyStatus")
    if value is None:
        value = out.get("fields", {}).get("supply_status")
    if value is not None:
        out["supply"] = {SUPPLY_OFF: "disabled", SUPPLY_ON: "enabled", SUPPLY_ARMED: "armed"}.get(value, value)
    return out


def _i_topup(p: Any, m: Message | None) -> dict:
    out = _i_generic(p, m)
    f = out.get("fields", {})
    if "result_type" in f:
        out["ok"] = f["result_type"] == 0
        out["top_up"] = _money(f.get("top_up_value"))
        out["credit"] = _money(f.get("credit_remaining"))
    return out


def _i_profile(p: Any, m: Message | None) -> dict:
    out = _i_generic(p, m)
    f = out.get("fields", {})
    if "samples" in f:
        out["start"] = utc_text(f["sample_start_time"])
        out["interval_s"] = f.get("sample_request_interval")
        out["volumes"] = [s["value"] if isinstance(s, dict) else s for s in f["samples"]]
    return out


def _i_snapshots(p: Any, m: Message | None) -> dict:
    out = _i_generic(p, m)
    days = []
    for s in out.get("components", [out]):
        f = s.get("fields") or {}
        if s.get("command") == "PublishSnapshot":
            day: dict[str, Any] = {"time": utc_text(f.get("snapshot_time", 0))}
            if "current_summation_delivered" in f:
                day["volume_l"] = f["current_summation_delivered"]
                day["volume_m3"] = f["current_summation_delivered"] / 1000
            days.append(day)
    out["ok"] = bool(days) or out["ok"]
    out["snapshots"] = days
    return out


def _i_set_time(p: Any, m: Message | None) -> dict:
    if not isinstance(p, SetTimeResponse):
        raise Unexpected("expected a Set Time Response")
    status = DeviceTimeStatus(p.status) if p.status in DeviceTimeStatus._value2member_map_ else p.status
    return {"ok": p.status == DeviceTimeStatus.RELIABLE, "device_time": p.device_time.isoformat().replace("+00:00", "Z"),
            "status": getattr(status, "name", status)}


# ------------------------------------------------------------------------------ definitions
_GAS_READ_TARGETS = ("gpf", "gsme")

define("GCS13a", target="gpf", targets=_GAS_READ_TARGETS, build=_read(_M, REGISTER_READ), interpret=_i_gcs13a,
       response="GBZ: encrypted ReadAttributesResponse{Divisor, Multiplier, UnitOfMeasure, CurrentSummationDelivered}; "
                "date-time clock status = reliability")
define("GCS38", target="gsme", targets=("gsme", "gpf"), build=_read(_M, FIRMWARE_READ), interpret=_i_generic,
       response="GBZ: ReadAttributesResponse{0x0206 firmware version octets}")
define("GCS33", target="gpf", targets=_GAS_READ_TARGETS, build=_read(_M, SUPPLY_READ), interpret=_i_supply,
       response="GBZ: ReadAttributesResponse{SupplyStatus} [I: no RTDS vector]")
define("GCS60", target="gpf", targets=_GAS_READ_TARGETS, build=_read(_PP, BALANCE_READ), interpret=_i_balance,
       response="GBZ: encrypted ReadAttributesResponse{CreditRemaining, EmergencyCreditRemaining, AccumulatedDebt} [I]")
define("GCS14", target="gpf", targets=_GAS_READ_TARGETS, build=_read(_PP, PREPAYMENT_READ), interpret=_i_balance,
       response="GBZ: encrypted ReadAttributesResponse of the Prepayment registers [I: no RTDS vector]")


def _supply(status: int):
    def build(counter: int, *, issuer_event_id: int | None, now: _dt.datetime | None) -> bytes:
        event = _now_stamp(issuer_event_id, now, "issuer_event_id")
        return gbz((_M, ClusterCommand.build(_M, "ChangeSupply", provider_id=0, issuer_event_id=event, request_date_time=0,
                                             implementation_date_time=0, proposed_supply_status=status,
                                             supply_control_bits=1)))
    return build


define("GCS32", target="gsme", build=_supply(SUPPLY_OFF), interpret=_i_supply, params=(_EVENT,),
       response="GBZ: SupplyStatusResponse{supply_status 0}")
define("GCS39", target="gsme", build=_supply(SUPPLY_ARMED), interpret=_i_supply, params=(_EVENT,),
       response="GBZ: SupplyStatusResponse{supply_status 1 (armed)}")


def _b_cs01b(counter: int, *, utrn: str) -> bytes:
    return gbz((_PP, ClusterCommand.build(_PP, "ConsumerTopUp", originating_device=0, top_up_code=utrn.encode())))


define("CS01b", target="gsme", build=_b_cs01b, interpret=_i_topup, utrn=True,
       params=(Param("utrn", "utrn", REQUIRED, "the 20-digit UTRN (made with the supplier's prepayment key; its 10 "
                             "counter bits match the originator counter's UTRN counter)"),),
       response="GBZ: ConsumerTopUpResponse{result, value, source, credit remaining}")


def _b_gcs06(counter: int) -> bytes:
    return gbz((_PP, ClusterCommand.build(_PP, "SelectAvailableEmergencyCredit", command_issue_date_time=0,
                                          originating_device=0)))


define("GCS06", target="gsme", build=_b_gcs06, interpret=_i_generic, response="GBZ: DefaultResponse")


def _adjust(kind: int):
    def build(counter: int, *, issuer_event_id: int | None, value: int, now: _dt.datetime | None) -> bytes:
        event = _now_stamp(issuer_event_id, now, "issuer_event_id")
        return gbz((_PP, ClusterCommand.build(_PP, "CreditAdjustment", issuer_event_id=event, start_time=0,
                                              credit_adjustment_type=kind, credit_adjustment_value=value)))
    return build


define("GCS40a", target="gsme", build=_adjust(0), interpret=_i_generic, response="GBZ: DefaultResponse",
       params=(_EVENT, Param("value", "int", 23130, "credit adjustment (ZSE money, 1/100000 £; RTDS 23130)",
                             min=-(1 << 31), max=(1 << 31) - 1)))
define("GCS40b", target="gsme", build=_adjust(1), interpret=_i_generic, response="GBZ: DefaultResponse",
       params=(_EVENT, Param("value", "int", 0, "the balance to reset to (ZSE money)", min=-(1 << 31), max=(1 << 31) - 1)))


def _b_gcs17(counter: int, *, start: _dt.datetime | None, samples: int, now: _dt.datetime | None) -> bytes:
    if start is None:
        if now is None:
            raise ValueError("start defaults to the caller's day; no time was given")
        start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return gbz((_M, ClusterCommand.build(_M, "GetSampledData", sample_id=0, earliest_sample_time=zcl_time(start),
                                         sample_type=0, number_of_samples=samples)))


define("GCS17", target="gsme", targets=("gsme", "gpf"), build=_b_gcs17, interpret=_i_profile,
       params=(Param("start", "datetime", None, "first half-hour (UTC); default: the start of today"),
               Param("samples", "int", 48, "number of half-hour samples (RTDS 97)", min=1, max=0xFFFF)),
       response="GBZ: encrypted GetSampledDataResponse (half-hour volumes) or DefaultResponse NOT_FOUND")


def _b_gcs16a(counter: int, *, start: _dt.datetime | None, end: _dt.datetime | None, now: _dt.datetime | None) -> bytes:
    start, end = span_until(start, end, _dt.timedelta(days=SNAPSHOT_COMPONENTS), now)
    e0, e1 = zcl_time(start), zcl_time(end)
    return gbz(*((_M, ClusterCommand.build(_M, "GetSnapshot", earliest_start_time=e0, latest_end_time=e1,
                                           snapshot_offset=i, snapshot_cause=1)) for i in range(SNAPSHOT_COMPONENTS)),
               renumber=True)


define("GCS16a", target="gsme", targets=("gsme", "gpf"), build=_b_gcs16a, interpret=_i_snapshots,
       params=(Param("start", "datetime", None, "earliest snapshot (UTC); default: 31 days before 'end'"),
               Param("end", "datetime", None, "latest snapshot (UTC); default: now")),
       response="GBZ: 31 components, each an encrypted PublishSnapshot (daily read) or DefaultResponse NOT_FOUND")


def _b_gcs28(counter: int, *, validity_start: _dt.datetime | None, validity_end: _dt.datetime | None,
             now: _dt.datetime | None) -> bytes:
    if validity_start is None:
        if now is None:
            raise ValueError("validity_start defaults to the caller's time; none was given")
        validity_start = now.replace(microsecond=0)
    if validity_end is None:
        validity_end = validity_start + _dt.timedelta(hours=1)  # [O RTDS: a one-hour window]
    return SetTime(validity_interval_start=validity_start, validity_interval_end=validity_end).encode()


define("GCS28", target="gsme", build=_b_gcs28, interpret=_i_set_time,
       params=(Param("validity_start", "datetime", None, "start of the validity window (UTC); default: now"),
               Param("validity_end", "datetime", None, "end of the validity window; default: start + 1 hour")),
       response="ASN.1 Set Time Response{device time, status 0 reliable / 1 invalid / 2 unreliable}")

# -- more GSME use cases: messages, PIN, supplier details, event logs, flow / tamper settings, billing
# calendar, prepayment logs and snapshots, debt, tariff read (layouts [O RTDS]) ------------------
_MSG, _DM, _EV, _PR, _CAL = Cluster.MESSAGING, Cluster.DEVICE_MANAGEMENT, Cluster.EVENTS, Cluster.PRICE, Cluster.CALENDAR


def _b_gcs07(counter: int, *, issuer_event_id: int | None, text: str, now: _dt.datetime | None) -> bytes:
    event = _now_stamp(issuer_event_id, now, "issuer_event_id")
    return gbz(cmd(_MSG, "DisplayMessage", message_id=event, message_control=0, start_time=0, duration_in_minutes=0xFFFF,
                   message=text))


define("GCS07", target="gsme", build=_b_gcs07, interpret=_i_generic, response="GBZ: DefaultResponse",
       params=(_EVENT, Param("text", "str", "Reset", "the message the GSME shows (RTDS 'Reset')")))


def _b_gcs11(counter: int, *, issuer_event_id: int | None, now: _dt.datetime | None) -> bytes:
    event = _now_stamp(issuer_event_id, now, "issuer_event_id")
    return gbz(cmd(_DM, "RequestNewPasswordResponse", issuer_event_id=event, implementation_date_time=0,
                   duration_in_minutes=0, password_type=2, password=b""))


define("GCS11", target="gsme", build=_b_gcs11, interpret=_i_generic, params=(_EVENT,), response="GBZ: DefaultResponse")


def _b_gcs44(counter: int, *, issuer_event_id: int | None, name: str, contact: str, now: _dt.datetime | None) -> bytes:
    event = _now_stamp(issuer_event_id, now, "issuer_event_id")
    return gbz(cmd(_DM, "PublishChangeOfSupplier", current_provider_id=0, issuer_event_id=event, tariff_type=0,
                   proposed_provider_id=0, provider_change_implementation_time=0, provider_change_control=0x1800,
                   proposed_provider_name=name.encode(), proposed_provider_contact_details=contact.encode()))


define("GCS44", target="gsme", build=_b_gcs44, interpret=_i_generic, response="GBZ: DefaultResponse",
       params=(_EVENT, Param("name", "str", "E-ON", "supplier name (RTDS E-ON)"),
               Param("contact", "str", "0333 202 4650", "supplier contact details")))


def _b_cs11(counter: int, *, log_id: int) -> bytes:
    return gbz(cmd(_EV, "ClearEventLogRequest", log_id=log_id))


define("CS11", target="gsme", targets=("gsme", "esme", "ppmid"), build=_b_cs11, interpret=_i_generic,
       params=(Param("log_id", "int", 3, "logs to clear (bitmap; RTDS 3)", min=0, max=255),),
       response="GBZ: ClearEventLogResponse{cleared logs}")


def _b_cs10a(counter: int, *, start: _dt.datetime | None, end: _dt.datetime | None, log_id: int,
             now: _dt.datetime | None) -> bytes:
    start, end = span_until(start, end, _dt.timedelta(days=1), now)
    return gbz(cmd(_EV, "GetEventLog", event_control_log_id=log_id, event_id=0, start_time=zcl_time(start),
                   end_time=zcl_time(end), number_of_events=0, event_offset=0))


define("CS10a", target="gsme", targets=("gsme", "ppmid"), build=_b_cs10a, interpret=_i_generic,
       params=(Param("start", "datetime", None, "earliest event (UTC); default: a day before 'end'"),
               Param("end", "datetime", None, "latest event (UTC); default: now"),
               Param("log_id", "int", 0x13, "event control / log id (RTDS 0x13)", min=0, max=255)),
       response="GBZ: PublishEventLog or DefaultResponse NOT_FOUND")


def _b_gcs21m(counter: int) -> bytes:
    return gbz((Cluster.BASIC, ReadAttributes((4, 5))), (_M, ReadAttributes((0x0608, 0x0607))), renumber=True)


define("GCS21m", target="gsme", targets=("gsme", "gpf"), build=_b_gcs21m, interpret=_i_generic,
       response="GBZ: Basic{manufacturer, model} + Metering{tamper / depletion states}")


def _b_gcs21f(counter: int) -> bytes:
    never = 0xFFFFFFFF
    return gbz((_PR, ReadAttributes((0x0203, 0x0202, 0x0100, 0x0101, 0x0102, 0x0615, 0x0400, 0x0401, 0x0402, 0x0403,
                                     0x0410, 0x0420, 0x0430, 0x0440, 0x0616, 0x0617, 0x0301))),
               cmd(_CAL, "GetDayProfiles", provider_id=0, issuer_calendar_id=never, start_day_id=1, number_of_days=0),
               cmd(_CAL, "GetWeekProfiles", provider_id=0, issuer_calendar_id=never, start_week_id=1, number_of_weeks=0),
               cmd(_CAL, "GetSeasons", provider_id=0, issuer_calendar_id=never),
               cmd(_CAL, "GetSpecialDays", start_time=0, number_of_events=0, calendar_type=0, provider_id=0,
                   issuer_calendar_id=never),
               cmd(_PR, "GetCurrentPrice", command_options=0), renumber=True)


define("GCS21f", target="gsme", build=_b_gcs21f, interpret=_i_generic,
       response="GBZ: Price attributes, calendar day/week profiles, seasons, special days, current price")


def _b_gcs24a(counter: int, *, issuer_event_id: int | None, threshold: int, tamper_state: int,
              now: _dt.datetime | None) -> bytes:
    event = _now_stamp(issuer_event_id, now, "issuer_event_id")
    return gbz(cmd(_M, "SetUncontrolledFlowThreshold", provider_id=0, issuer_event_id=event,
                   uncontrolled_flow_threshold=threshold, unit_of_measure=1, multiplier=1, divisor=10000,
                   stabilisation_period=60, measurement_period=300),
               cmd(_M, "SetSupplyStatus", issuer_event_id=event, supply_tamper_state=tamper_state,
                   supply_depletion_state=3, supply_uncontrolled_flow_state=0, load_limit_supply_state=3), renumber=True)


define("GCS24a", target="gsme", build=_b_gcs24a, interpret=_i_generic,
       params=(_EVENT, Param("threshold", "int", 61680, "uncontrolled flow threshold, m³/h × 10000 (RTDS 61680)",
                             min=0, max=0xFFFF),
               Param("tamper_state", "int", 3, "supply tamper state (RTDS 3)", min=0, max=255)),
       response="GBZ: DefaultResponse per component")


def _b_gcs25a(counter: int, *, issuer_event_id: int | None, start: _dt.datetime | None, duration: int,
              now: _dt.datetime | None) -> bytes:
    event = _now_stamp(issuer_event_id, now, "issuer_event_id")
    t = event if start is None else zcl_time(start)
    return gbz(cmd(_PR, "PublishBillingPeriod", provider_id=0, issuer_event_id=event, billing_period_start_time=t,
                   billing_period_duration=duration, billing_period_duration_type=35, tariff_type=0),
               cmd(_PR, "PublishBlockPeriod", provider_id=0, issuer_event_id=event, block_period_start_time=t,
                   block_period_duration=duration, block_period_control=2, block_period_duration_type=35, tariff_type=0,
                   tariff_resolution_period=1), renumber=True)


define("GCS25a", target="gsme", build=_b_gcs25a, interpret=_i_generic,
       params=(_EVENT, Param("start", "datetime", None, "billing period start (UTC); default: issuer_event_id"),
               Param("duration", "int", 6, "billing period duration in its units (type 35: months [I]; RTDS 6)",
                     min=1, max=0xFFFFFF)),
       response="GBZ: DefaultResponse per component")


def _prepay_snapshots(counter: int, *, start: _dt.datetime | None, end: _dt.datetime | None, now: _dt.datetime | None) -> bytes:
    start, end = span_until(start, end, _dt.timedelta(days=2), now)
    e0, e1 = zcl_time(start), zcl_time(end)
    return gbz(*(cmd(_PP, "GetPrepaySnapshot", earliest_start_time=e0, latest_end_time=e1, snapshot_offset=i,
                     snapshot_cause=1) for i in range(SNAPSHOT_COMPONENTS)), renumber=True)


define("GCS16b", target="gsme", targets=("gsme", "gpf"), build=_prepay_snapshots, interpret=_i_generic,
       params=(Param("start", "datetime", None, "earliest (UTC); default: two days before 'end'"),
               Param("end", "datetime", None, "latest (UTC); default: now")),
       response="GBZ: 31 components, encrypted PublishPrepaySnapshot or DefaultResponse NOT_FOUND")


BILLING_SNAPSHOT_CAUSE = 0x6008  # change of mode / tariff triggered billing snapshots [O RTDS GCS15b]
BILLING_COMPONENTS = 12  # [O RTDS GCS15b: 12 prepayment + 12 metering snapshots]


def _b_gcs15b(counter: int, *, start: _dt.datetime | None, end: _dt.datetime | None, now: _dt.datetime | None) -> bytes:
    start, end = span_until(start, end, _dt.timedelta(days=335), now)
    e0, e1 = zcl_time(start), zcl_time(end)
    prepay = [cmd(_PP, "GetPrepaySnapshot", earliest_start_time=e0, latest_end_time=e1, snapshot_offset=i,
                  snapshot_cause=BILLING_SNAPSHOT_CAUSE) for i in range(BILLING_COMPONENTS)]
    metering = [cmd(_M, "GetSnapshot", earliest_start_time=e0, latest_end_time=e1, snapshot_offset=i,
                    snapshot_cause=BILLING_SNAPSHOT_CAUSE) for i in range(BILLING_COMPONENTS)]
    return gbz(*prepay, *metering, renumber=True)


define("GCS15b", target="gsme", build=_b_gcs15b, interpret=_i_generic,
       params=(Param("start", "datetime", None, "earliest billing snapshot (UTC); default: 335 days before 'end'"),
               Param("end", "datetime", None, "latest (UTC); default: now")),
       response="GBZ: 24 components, encrypted PublishPrepaySnapshot / PublishSnapshot or DefaultResponse NOT_FOUND")


def _b_gcs15d(counter: int, *, start: _dt.datetime | None, end: _dt.datetime | None, debts: int,
              now: _dt.datetime | None) -> bytes:
    start, end = span_until(start, end, _dt.timedelta(days=31), now)
    return gbz((_PP, ClusterCommand.build(_PP, "GetDebtRepaymentLog", latest_end_time=zcl_time(end), number_of_debts=debts,
                                          debt_type=2), zcl_time(start)))


define("GCS15d", target="gsme", build=_b_gcs15d, interpret=_i_generic,
       params=(Param("start", "datetime", None, "from (UTC; the component's from date-time); default: 31 days before 'end'"),
               Param("end", "datetime", None, "latest (UTC); default: now"),
               Param("debts", "int", 10, "number of debt payments (RTDS 10)", min=0, max=255)),
       response="GBZ: encrypted PublishDebtLog or DefaultResponse NOT_FOUND")

def _b_gcs04(counter: int, *, issuer_event_id: int | None, debt1: int, debt2: int, debt3: int,
             now: _dt.datetime | None) -> bytes:
    """Three ChangeDebt components: debts 1 and 2 time-based, debt 3 payment-based, RTDS's
    recovery settings [O RTDS GCS04]; the three debt amounts in ZSE money."""
    event = _now_stamp(issuer_event_id, now, "issuer_event_id")
    amounts = (debt1, debt2, debt3)
    shapes = ((0, 1, 1, 50000, 0), (0, 3, 0, 50000, 0), (1, 5, 1, 0, 100))  # method, amount type, freq, amount, %
    comps = []
    for amount, (method, kind, freq, recovery, pct) in zip(amounts, shapes):
        comps.append(cmd(_PP, "ChangeDebt", issuer_event_id=event, debt_label=b"", debt_amount=amount,
                         debt_recovery_method=method, debt_amount_type=kind, debt_recovery_start_time=0,
                         debt_recovery_collection_time=0, debt_recovery_frequency=freq, debt_recovery_amount=recovery,
                         debt_recovery_balance_percentage=pct))
    return gbz(*comps, renumber=True)


define("GCS04", target="gsme", build=_b_gcs04, interpret=_i_generic, response="GBZ: DefaultResponse per debt",
       params=(_EVENT, *(Param(f"debt{i}", "int", v, f"debt {i} amount (ZSE money, 1/100000 £; RTDS {v})",
                                min=-(1 << 31), max=(1 << 31) - 1) for i, v in ((1, 1000000), (2, 500000), (3, 1000000)))))

# -- use cases RTDS has no vector for: ZSE commands and attributes chosen from the use case's
# purpose (DUIS / GBCS use-case descriptions) [I] ----------------------------------------------


def _payment_mode(config: int):
    def build(counter: int, *, issuer_event_id: int | None, cut_off: int, execution_date_time: Any,
              now: _dt.datetime | None) -> bytes:
        event = _now_stamp(issuer_event_id, now, "issuer_event_id")
        return gbz(cmd(_PP, "ChangePaymentMode", provider_id=0, issuer_event_id=event,
                       implementation_date_time=_starts(execution_date_time)[1],
                       proposed_payment_control_configuration=config, cut_off_value=cut_off))
    return build


_CUT_OFF = Param("cut_off", "int", 0, "cut-off value (ZSE money)", min=-(1 << 31), max=(1 << 31) - 1)
_WHEN = Param("execution_date_time", "when", None, "immediate (default), a date-time (future-dated) or never")
PAYMENT_CREDIT, PAYMENT_PREPAYMENT = 0x0000, 0x0001  # PaymentControlConfiguration bit 0: prepayment [I]
define("GCS02", target="gsme", build=_payment_mode(PAYMENT_CREDIT), interpret=_i_generic, params=(_EVENT, _CUT_OFF, _WHEN),
       response="GBZ: ChangePaymentModeResponse [I]")
define("GCS03", target="gsme", build=_payment_mode(PAYMENT_PREPAYMENT), interpret=_i_generic, params=(_EVENT, _CUT_OFF, _WHEN),
       response="GBZ: ChangePaymentModeResponse [I]")
define("GCS40c", target="gsme", build=_adjust(0), interpret=_i_generic, response="GBZ: DefaultResponse [I]",
       params=(_EVENT, Param("value", "int", 0, "credit-mode balance adjustment (ZSE money)", min=-(1 << 31), max=(1 << 31) - 1)))
define("GCS40d", target="gsme", build=_adjust(1), interpret=_i_generic, response="GBZ: DefaultResponse [I]",
       params=(_EVENT, Param("value", "int", 0, "the credit-mode balance to reset to (ZSE money)", min=-(1 << 31),
                             max=(1 << 31) - 1)))


def _b_gcs09(counter: int, *, issuer_event_id: int | None, date: _dt.datetime | None, now: _dt.datetime | None) -> bytes:
    event = _now_stamp(issuer_event_id, now, "issuer_event_id")
    return gbz(cmd(_DM, "PublishChangeOfTenancy", provider_id=0, issuer_event_id=event, tariff_type=0,
                   implementation_date_time=event if date is None else zcl_time(date), proposed_tenancy_change_control=0))


define("GCS09", target="gpf", targets=("gpf", "gsme"), build=_b_gcs09, interpret=_i_generic,
       params=(_EVENT, Param("date", "datetime", None, "the change of tenancy date (UTC); default: now")),
       response="GBZ: DefaultResponse [I]")


def _positive(limit: float):
    def check(v: float) -> None:
        if not 0 <= v <= limit:
            raise ValueError(f"must be 0..{limit:g}")
    return check


def _b_gcs23(counter: int, *, issuer_event_id: int | None, cv: float, cf: float, now: _dt.datetime | None) -> bytes:
    event = _now_stamp(issuer_event_id, now, "issuer_event_id")
    # trailing digits: 0x30 = 3 digits after the point (ZSE: the high nibble) [I]
    return gbz(cmd(_PR, "PublishConversionFactor", issuer_event_id=event, start_time=0,
                   conversion_factor=round(cf * 1000000), conversion_factor_trailing_digit=0x60),
               cmd(_PR, "PublishCalorificValue", issuer_event_id=event, start_time=0, calorific_value=round(cv * 1000),
                   calorific_value_unit=1, calorific_value_trailing_digit=0x30), renumber=True)


define("GCS23", target="gsme", build=_b_gcs23, interpret=_i_generic,
       params=(_EVENT, Param("cv", "float", 39.5, "calorific value, MJ/m³ (0..4000)", check=_positive(4000.0)),
               Param("cf", "float", 1.02264, "volume conversion factor (0..4000)", check=_positive(4000.0))),
       response="GBZ: DefaultResponse per component [I]")


def _b_gcs41(counter: int, *, issuer_event_id: int | None, mprn: str, now: _dt.datetime | None) -> bytes:
    event = _now_stamp(issuer_event_id, now, "issuer_event_id")
    return gbz(cmd(_DM, "UpdateSiteId", issuer_event_id=event, site_id_time=0, provider_id=0, site_id=mprn.encode()))


define("GCS41", target="gsme", build=_b_gcs41, interpret=_i_generic,
       params=(_EVENT, Param("mprn", "str", "1234567890", "the MPRN (utf-8 text)")), response="GBZ: DefaultResponse [I]")


def _b_gcs36(counter: int, *, issuer_event_id: int | None, cin: str, now: _dt.datetime | None) -> bytes:
    event = _now_stamp(issuer_event_id, now, "issuer_event_id")
    return gbz(cmd(_DM, "UpdateCIN", issuer_event_id=event, cin_implementation_time=0, provider_id=0,
                   customer_id_number=cin.encode()))


define("GCS36", target="gsme", originator="acb", build=_b_gcs36, interpret=_i_generic,
       params=(_EVENT, Param("cin", "str", "1234", "customer identification number")), response="GBZ: DefaultResponse [I]")

DAILY_CONSUMPTION_READ = (0x0401, 0x0403, 0x0420, 0x0422, 0x0424, 0x0426, 0x0428, 0x042A, 0x042C,  # days
                          0x0430, 0x0432, 0x0434, 0x0436, 0x0438, 0x043A,  # current week, previous weeks 1..5
                          0x0440, 0x0442, 0x0444, 0x0446)  # current month, previous months 1..3
_READS_I = {
    "GCS13b": (_M, (0x0700, 0x0701, 0x0702, 0x0703)),  # block registers
    "GCS13c": (_M, (0x0100, 0x0102, 0x0104, 0x0106)),  # tier (TOU) registers
    "GCS21a": (_M, (0x0300, 0x0301, 0x0302, 0x0306, 0x0307)),
    "GCS21b": (_PP, (0x0010, 0x0011, 0x0006, 0x0021, 0x0022, 0x0031)),
    "GCS21e": (Cluster.BASIC, (0x0004, 0x0005)),
    "GCS21j": (_PP, (0x0000,)),
    "GCS46": (_M, (0x0307,)),
    "GCS61": (_M, DAILY_CONSUMPTION_READ),
}
for _name, (_cluster, _ids) in _READS_I.items():
    define(_name, target="gpf", targets=_GAS_READ_TARGETS, build=_read(_cluster, _ids), interpret=_i_generic,
           response="GBZ: ReadAttributesResponse [I: no RTDS vector]")

# -- GCS01a Set Tariff and Price on GSME, GCS01b Set Price on GSME [O RTDS 1.1.1_GCS01a; GCS01b: the
# tariff information, block thresholds and price matrix of GCS01a, no calendar [I]] ---------------
_NEVER_CALENDAR, _NEVER_TARIFF = 0xFFFFFFFE, 0xFFFFFFFF  # [O RTDS GCS01a CANCELLATION]
SCHEME_TOU, SCHEME_BLOCK = 0x00, 0x10  # TariffType / charging scheme: TOU, block [O RTDS]


#: ZCL date-times that cancel a future-dated GSME instruction [O RTDS GCS01a/GCS05 CANCELLATION]
NEVER_TIMES = frozenset((_NEVER_CALENDAR, _NEVER_TARIFF))
_EXECUTION_FIELDS = ("start_time", "implementation_date_time")


def execution_time(component: GbzComponent) -> int | None:
    """The execution date-time a component of a future-dateable gas command carries (module doc):
    ZCL UTC seconds, 0 for now, one of `NEVER_TIMES` to cancel; None when it carries none."""
    if component.from_date_time is not None:
        return component.from_date_time
    payload = component.payload
    if isinstance(payload, ClusterCommand):
        names = {k for k, _ in payload.fields}
        for name in _EXECUTION_FIELDS:
            if name in names:
                return payload[name]
    return None


def _starts(when: Any) -> tuple[int, int]:
    """(calendar / price start, tariff information start) for immediate, never or a time."""
    if when is None:
        return 0, 0
    if when == "never":
        return _NEVER_CALENDAR, _NEVER_TARIFF
    t = zcl_time(when)
    return t, t


def _zcl_date(text: str) -> ZclDate:
    """YYYY-MM-DD, or MM-DD for a date recurring every year (year 0xFF) [O RTDS GCS01a/GCS05]."""
    parts = [int(x) for x in text.split("-")]
    if len(parts) == 2:
        return ZclDate(0xFF, parts[0], parts[1], 0xFF)
    if len(parts) == 3 and 1900 <= parts[0] <= 2154:
        return ZclDate(parts[0] - 1900, parts[1], parts[2], 0xFF)
    raise ValueError


def _dated_refs(text: str, what: str) -> list[tuple[ZclDate, int]]:
    """'DATE=n,...' with DATE as in `_zcl_date`."""
    out = []
    for item in filter(None, (x.strip() for x in text.split(","))):
        try:
            date, _, ref = item.partition("=")
            out.append((_zcl_date(date.strip()), int(ref)))
        except ValueError:
            raise ValueError(f"{what} {item!r} is not [YYYY-]MM-DD=n") from None
    return out


def _recurring_seasons(text: str) -> list[dict]:
    return [{"season_start_date": d, "week_id_ref": w} for d, w in _dated_refs(text, "season")]


def _schedules(text: str) -> list[list[tuple[int, int]]]:
    """'HH:MM=value,...;...' -> day profiles of (minutes after midnight, value)."""
    out = []
    for profile in text.split(";"):
        entries = []
        for item in filter(None, (x.strip() for x in profile.split(","))):
            try:
                hm, _, value = item.partition("=")
                h, m = (int(x) for x in hm.split(":"))
                if not (0 <= h < 24 and 0 <= m < 60):
                    raise ValueError
                entries.append((h * 60 + m, int(value)))
            except ValueError:
                raise ValueError(f"day profile entry {item!r} is not HH:MM=value") from None
        out.append(entries)
    return out


_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def _calendar(event: int, start: int, calendar_type: int, day_profiles: list, week_profiles: tuple, seasons: list,
              special_days: list) -> list:
    """ZSE Calendar: PublishCalendar, its day and week profiles, seasons and special days [O RTDS]."""
    comps = [cmd(_CAL, "PublishCalendar", provider_id=0, issuer_event_id=event, issuer_calendar_id=event, start_time=start,
                 calendar_type=calendar_type, calendar_time_reference=0, calendar_name=b"", number_of_seasons=len(seasons),
                 number_of_week_profiles=len(week_profiles), number_of_day_profiles=len(day_profiles))]
    for day_id, entries in enumerate(day_profiles, 1):
        comps.append(cmd(_CAL, "PublishDayProfile", provider_id=0, issuer_event_id=event, issuer_calendar_id=event,
                         day_id=day_id, total_number_of_schedule_entries=len(entries), command_index=0,
                         total_number_of_commands=1, calendar_type=calendar_type,
                         schedule_entries=[{"start_time": t, "value": v} for t, v in entries]))
    for week_id, row in enumerate(week_profiles, 1):
        if len(row) != 7:
            raise ValueError(f"week profile {week_id}: seven day profile numbers, Monday..Sunday")
        comps.append(cmd(_CAL, "PublishWeekProfile", provider_id=0, issuer_event_id=event, issuer_calendar_id=event,
                         week_id=week_id, **{f"day_id_ref_{d}": v for d, v in zip(_WEEKDAYS, row)}))
    comps.append(cmd(_CAL, "PublishSeasons", provider_id=0, issuer_event_id=event, issuer_calendar_id=event,
                     command_index=0, total_number_of_commands=1, seasons=seasons))
    comps.append(cmd(_CAL, "PublishSpecialDays", provider_id=0, issuer_event_id=event, issuer_calendar_id=event,
                     start_time=start, calendar_type=calendar_type, total_number_of_special_days=len(special_days),
                     command_index=0, total_number_of_commands=1,
                     special_days=[{"special_day_date": d, "day_id_ref": ref} for d, ref in special_days]))
    return comps


def _tariff_components(event: int, start: int, info_start: int, tou_prices: tuple, block_prices: tuple,
                       block_thresholds: tuple, standing_charge: int) -> list:
    tou = bool(tou_prices)
    prices = tou_prices if tou else block_prices
    comps = [cmd(_PR, "PublishTariffInformation", provider_id=0, issuer_event_id=event, issuer_tariff_id=1,
                 start_time=info_start, tariff_type_charging_scheme=SCHEME_TOU if tou else SCHEME_BLOCK, tariff_label=b"",
                 number_of_price_tiers_in_use=len(prices) if tou else 0,
                 number_of_block_thresholds_in_use=0 if tou else len(block_thresholds), unit_of_measure=0, currency=826,
                 price_trailing_digit=0x50, standing_charge=standing_charge, tier_block_mode=0xFF,
                 block_threshold_multiplier=1, block_threshold_divisor=1000)]
    if not tou:
        comps.append(cmd(_PR, "PublishBlockThresholds", provider_id=0, issuer_event_id=event, start_time=start,
                         issuer_tariff_id=1, command_index=0, number_of_commands=1, sub_payload_control=1,
                         tiers=[{"tier_number_of_block_thresholds": len(block_thresholds),
                                 "block_thresholds": [{"threshold": t} for t in block_thresholds]}]))
    comps.append(cmd(_PR, "PublishPriceMatrix", provider_id=0, issuer_event_id=event, start_time=start, issuer_tariff_id=1,
                     command_index=0, number_of_commands=1, sub_payload_control=1 if tou else 0,
                     prices=[{"tier_block_id": i + 1 if tou else i, "price": v} for i, v in enumerate(prices)]))
    return comps


def _b_gcs01a(counter: int, *, issuer_event_id: int | None, tou_prices: tuple, block_prices: tuple,
              block_thresholds: tuple, standing_charge: int, day_profiles: tuple, week_profiles: tuple, seasons: str,
              special_days: tuple, execution_date_time: Any, now: _dt.datetime | None, day_schedules: str = "") -> bytes:
    event = _now_stamp(issuer_event_id, now, "issuer_event_id")
    start, info_start = _starts(execution_date_time)
    specials = [(ZclDate(d.year - 1900, d.month, d.day, 0xFF), ref) for d, ref in special_days]
    days = _schedules(day_schedules) if day_schedules else [[(0, v)] for v in day_profiles]
    comps = _calendar(event, start, 0, days, week_profiles, _recurring_seasons(seasons), specials)
    comps += _tariff_components(event, start, info_start, tou_prices, block_prices, block_thresholds, standing_charge)
    return gbz(*comps, renumber=True)


_PRICES = (Param("tou_prices", "ints", (), "TOU prices for tiers 1..n (ZSE price, trailing digit 0x50: 5 decimals [O RTDS]); empty: a "
                 "block tariff", min=0, max=0xFFFFFFFF),
           Param("block_prices", "ints", (9600, 10200, 10750, 11000), "block tariff: prices of blocks 1..4 (RTDS)",
                 min=0, max=0xFFFFFFFF),
           Param("block_thresholds", "ints", (1000000, 2000000, 3000000), "block thresholds (RTDS; divisor 1000)",
                 min=0, max=0xFFFFFFFFFFFF),
           Param("standing_charge", "int", 54794, "standing charge per day (ZSE price units; RTDS 54794)", min=0,
                 max=0xFFFFFFFF),
           Param("execution_date_time", "when", None, "when the tariff applies: immediate (default), a date-time "
                 "(future-dated) or never (cancels)"))
define("GCS01a", target="gsme", build=_b_gcs01a, interpret=_i_generic,
       params=(_EVENT, *_PRICES,
               Param("day_profiles", "ints", (0,), "day profiles 1..n: the tier each applies from 00:00 (0: block)",
                     min=0, max=255),
               Param("day_schedules", "str", "", "day profiles with switches, overriding day_profiles: "
                     "'HH:MM=tier,...' per profile, profiles separated by ';' (e.g. '00:00=2,07:00=1;00:00=2')"),
               Param("week_profiles", "int_rows", ((1, 1, 1, 1, 1, 1, 1),), "week profiles: day profile numbers Monday..Sunday",
                     min=1, max=255),
               Param("seasons", "str", "03-20=1", "seasons: [YYYY-]MM-DD=week profile, comma-separated (MM-DD: every year)"),
               Param("special_days", "special_days", (), "special days: YYYY-MM-DD=day profile, comma-separated")),
       response="GBZ: DefaultResponse per component")


def _b_gcs01b(counter: int, *, issuer_event_id: int | None, tou_prices: tuple, block_prices: tuple,
              block_thresholds: tuple, standing_charge: int, execution_date_time: Any, now: _dt.datetime | None) -> bytes:
    event = _now_stamp(issuer_event_id, now, "issuer_event_id")
    start, info_start = _starts(execution_date_time)
    return gbz(*_tariff_components(event, start, info_start, tou_prices, block_prices, block_thresholds, standing_charge),
               renumber=True)


define("GCS01b", target="gsme", build=_b_gcs01b, interpret=_i_generic, params=(_EVENT, *_PRICES),
       response="GBZ: DefaultResponse per component [I: no RTDS vector]")


REGISTRY_PARAMS = {name: REGISTRY[name].params for name in ("GCS24a", "GCS25a")}

# -- more use cases without an RTDS vector [I]: the SMETS2 forms of GCS24a / GCS25a take the same
# layout; billing-calendar reads ask for the billing and block periods; the other billing data log
# reads ask for snapshots of their own cause [U: ZSE SnapshotCause bits chosen by us] ---------------
define("GCS24", target="gsme", build=_b_gcs24a, interpret=_i_generic, params=(_EVENT,) + tuple(
    p for p in REGISTRY_PARAMS["GCS24a"] if p.name != "issuer_event_id"), response="GBZ: DefaultResponse per component [I]")
define("GCS25", target="gsme", build=_b_gcs25a, interpret=_i_generic, params=(_EVENT,) + tuple(
    p for p in REGISTRY_PARAMS["GCS25a"] if p.name != "issuer_event_id"), response="GBZ: DefaultResponse per component [I]")


def _b_billing_calendar_read(counter: int) -> bytes:
    return gbz(cmd(_PR, "GetBillingPeriod", earliest_start_time=0, min_issuer_event_id=0, number_of_commands=1, tariff_type=0),
               cmd(_PR, "GetBlockPeriods", start_time=0, number_of_events=1, tariff_type=0), renumber=True)


for _name in ("GCS21d", "GCS21k"):
    define(_name, target="gsme", targets=("gsme", "gpf"), build=_b_billing_calendar_read, interpret=_i_generic,
           response="GBZ: PublishBillingPeriod + PublishBlockPeriod, or DefaultResponse NOT_FOUND [I]")

BILLING_CALENDAR_CAUSE, PREPAYMENT_CREDIT_CAUSE = 0x0002, 0x0400  # [U]
#: ZSE snapshot cause bits inside GCS15b's 0x6008: change of tariff information, change of meter mode
TARIFF_CHANGE_CAUSE, MODE_CHANGE_CAUSE = 0x0008, 0x4000


def _billing_log(cause: int):
    def build(counter: int, *, start: _dt.datetime | None, end: _dt.datetime | None, now: _dt.datetime | None) -> bytes:
        start, end = span_until(start, end, _dt.timedelta(days=335), now)
        e0, e1 = zcl_time(start), zcl_time(end)
        return gbz(*(cmd(_PP, "GetPrepaySnapshot", earliest_start_time=e0, latest_end_time=e1, snapshot_offset=i,
                         snapshot_cause=cause) for i in range(BILLING_COMPONENTS)),
                   *(cmd(_M, "GetSnapshot", earliest_start_time=e0, latest_end_time=e1, snapshot_offset=i,
                         snapshot_cause=cause) for i in range(BILLING_COMPONENTS)), renumber=True)
    return build


for _name, _cause in (("GCS15c", BILLING_CALENDAR_CAUSE), ("GCS15e", PREPAYMENT_CREDIT_CAUSE)):
    define(_name, target="gsme", build=_billing_log(_cause), interpret=_i_generic,
           params=(Param("start", "datetime", None, "earliest (UTC); default: 335 days before 'end'"),
                   Param("end", "datetime", None, "latest (UTC); default: now")),
           response="GBZ: 24 components, PublishPrepaySnapshot / PublishSnapshot or DefaultResponse NOT_FOUND [I]")


# -- GCS05 Update Prepayment Configurations on GSME: emergency credit, debt cap, low-credit warning,
# maximum credit, and the friendly-credit calendar (calendar type 3) [O RTDS 2.1_GCS05] --------------
FRIENDLY_CREDIT_CALENDAR = 3


def _b_gcs05(counter: int, *, issuer_event_id: int | None, ec_limit: int, ec_threshold: int, debt_cap: int,
             low_credit: int, max_credit: int, max_top_up: int, friendly_days: str, friendly_weeks: tuple,
             friendly_seasons: str, friendly_special_days: str, execution_date_time: Any, now: _dt.datetime | None) -> bytes:
    event = _now_stamp(issuer_event_id, now, "issuer_event_id")
    start, at = _starts(execution_date_time)  # calendar start; the settings' own start / implementation time
    comps = [cmd(_PP, "EmergencyCreditSetup", issuer_event_id=event, start_time=at, emergency_credit_limit=ec_limit,
                 emergency_credit_threshold=ec_threshold),
             cmd(_PP, "SetOverallDebtCap", provider_id=0, issuer_event_id=event, implementation_date_time=at,
                 overall_debt_cap=debt_cap),
             (*cmd(_PP, "SetLowCreditWarningLevel", low_credit_warning_level=low_credit), at),
             cmd(_PP, "SetMaximumCreditLimit", provider_id=0, issuer_event_id=event, implementation_date_time=at,
                 maximum_credit_level=max_credit, maximum_credit_per_top_up=max_top_up)]
    comps += _calendar(event, start, FRIENDLY_CREDIT_CALENDAR, _schedules(friendly_days), friendly_weeks,
                       _recurring_seasons(friendly_seasons), _dated_refs(friendly_special_days, "special day"))
    return gbz(*comps, renumber=True)


def _money_param(name: str, default: int, what: str) -> Param:
    return Param(name, "int", default, f"{what} (ZSE money, 1/100000 £; RTDS {default})", min=0, max=0x7FFFFFFF)


define("GCS05", target="gsme", build=_b_gcs05, interpret=_i_generic, response="GBZ: DefaultResponse per component",
       params=(_EVENT, _money_param("ec_limit", 10000000, "emergency credit limit"),
               _money_param("ec_threshold", 100000, "emergency credit threshold"),
               _money_param("debt_cap", 100000, "overall debt cap"),
               _money_param("low_credit", 5000000, "low credit warning level"),
               _money_param("max_credit", 25000000, "maximum credit level"),
               _money_param("max_top_up", 25000000, "maximum credit per top-up"),
               Param("friendly_days", "str", "00:00=1,08:00=0,18:00=1;00:00=1,07:00=0,17:00=1;00:00=1",
                     "friendly-credit day profiles: HH:MM=1 (on) / 0 (off), ';' between profiles"),
               Param("friendly_weeks", "int_rows", ((1, 1, 1, 1, 1, 3, 3), (2, 2, 2, 2, 2, 3, 3)),
                     "friendly-credit week profiles: day profiles Monday..Sunday", min=1, max=255),
               Param("friendly_seasons", "str", "2014-10-27=1,2015-03-29=2", "[YYYY-]MM-DD=week profile, comma-separated"),
               Param("friendly_special_days", "str", "2015-04-05=1,2015-08-31=2,01-01=3,12-25=1",
                     "[YYYY-]MM-DD=day profile, comma-separated (MM-DD: every year)"),
               Param("execution_date_time", "when", None, "immediate (default), a date-time (future-dated) or never")))


# -- alert behaviours (GCS20 / GCS20r) and the gas network data log read (GCS18): ZSE Device
# Management event configuration and Metering sampling [I: no RTDS vector]. GCS31 (start the network
# data log) is the network operator's alone (GT, the catalogue's only role for it). --
NETWORK_DATA_SAMPLE_ID = 1  # the network data log's sample id (the profile is 0 [O RTDS GCS17]) [I]
NETWORK_DATA_INTERVAL = 1800  # default network data sampling interval, seconds (a multiple of the half-hour) [I]
NETWORK_DATA_SAMPLES = 1440  # default network data log length: 30 days of half-hours [I]


def _b_gcs31(counter: int, *, issuer_event_id: int | None, start: _dt.datetime | None, interval: int, samples: int,
             now: _dt.datetime | None) -> bytes:
    event = _now_stamp(issuer_event_id, now, "issuer_event_id")
    return gbz(cmd(_M, "StartSampling", issuer_event_id=event, start_sampling_time=0 if start is None else zcl_time(start),
                   sample_type=0, sample_request_interval=interval, max_number_of_samples=samples))


define("GCS31", target="gsme", originator="network_operator", build=_b_gcs31, interpret=_i_generic,
       response="GBZ: StartSamplingResponse (the network data log's sample id) or DefaultResponse INVALID_VALUE [I]",
       params=(_EVENT, Param("start", "datetime", None, "first sample (UTC); default: now (0)"),
               Param("interval", "int", NETWORK_DATA_INTERVAL, "seconds per sample, a multiple of 1800 [I]", min=1, max=0xFFFF),
               Param("samples", "int", NETWORK_DATA_SAMPLES, "samples the log keeps [I]", min=1, max=0xFFFF)))


def _b_gcs20(counter: int, *, issuer_event_id: int | None, alert_codes: tuple, configuration: int,
             now: _dt.datetime | None) -> bytes:
    event = _now_stamp(issuer_event_id, now, "issuer_event_id")
    return gbz(cmd(_DM, "SetEventConfiguration", issuer_event_id=event, start_date_time=0, event_configuration=configuration,
                   configuration_control=0, number_of_events=len(alert_codes), event_ids=[{"event_id": a} for a in alert_codes]))


define("GCS20", target="gsme", build=_b_gcs20, interpret=_i_generic, response="GBZ: DefaultResponse [I]",
       params=(_EVENT, Param("alert_codes", "ints", (0x8F1F,), "alert / event codes to configure", min=0, max=0xFFFF),
               Param("configuration", "int", 0x03, "event configuration bitmap (bit 0 log, bit 1 alert) [I]", min=0, max=255)))


def _b_gcs20r(counter: int, *, alert_code: int) -> bytes:
    return gbz(cmd(_DM, "GetEventConfiguration", event_id=alert_code))


define("GCS20r", target="gsme", build=_b_gcs20r, interpret=_i_generic, response="GBZ: ReportEventConfiguration [I]",
       params=(Param("alert_code", "int", 0x8F1F, "the alert / event code to read", min=0, max=0xFFFF),))


def _b_gcs18(counter: int, *, start: _dt.datetime | None, samples: int, now: _dt.datetime | None) -> bytes:
    if start is None:
        if now is None:
            raise ValueError("start defaults to the caller's day; no time was given")
        start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return gbz(cmd(_M, "GetSampledData", sample_id=NETWORK_DATA_SAMPLE_ID, earliest_sample_time=zcl_time(start),
                   sample_type=0, number_of_samples=samples))


define("GCS18", target="gsme", build=_b_gcs18, interpret=_i_profile, response="GBZ: GetSampledDataResponse [I]",
       params=(Param("start", "datetime", None, "first sample (UTC); default: the start of today"),
               Param("samples", "int", 240, "number of samples", min=1, max=0xFFFF)))


# -- GCS53 Push Billing Data Log as an Alert (0x8F0A; alert: interpret only) [O RTDS NA_GCS53] ------


def _i_gcs53(p: Any, m: Message | None) -> dict:
    if not isinstance(p, GbzAlert):
        raise Unexpected("expected a GBZ alert")
    out: dict[str, Any] = {"ok": True, "alert_code": f"{p.alert_code:04X}", "alert": catalogue.alert_name(p.alert_code),
                           "alert_time": utc_text(p.timestamp)}
    snap = getattr(p.body, "component", None) or next(iter(p.components), None)
    payload = getattr(snap, "payload", None)
    if isinstance(payload, ClusterCommand):
        out["snapshot"] = jsonable(payload.as_dict())
    elif snap is not None:
        out["snapshot"] = {"encrypted": True, "decrypted": False}
    return out


define("GCS53", target="gsme", build=None, interpret=_i_gcs53,
       response="alert 0x8F0A: the billing data log as an encrypted PublishSnapshot (critical)")


# -- GCS59 Restore GPF Device Log, GCS62 its backup alert (ASN.1) [O RTDS 8.12.2_GCS59, NA_GCS62] -----


def _entries(text: str) -> tuple[DeviceLogEntry, ...]:
    """'EUI:TYPE,...' (TYPE a device type name or number: ppmid, type2 / 5, 6)."""
    out = []
    for item in filter(None, (x.strip() for x in text.split(","))):
        eui, _, kind = item.partition(":")
        try:
            entity = bytes.fromhex(eui)
            device_type = catalogue.DEVICE_TYPE_BY_NAME[kind.lower()] if not kind.isdigit() else catalogue.DeviceType(int(kind))
        except (ValueError, KeyError):
            raise ValueError(f"{item!r}: give EUI:TYPE (16 hex digits, a device type name or number)") from None
        if len(entity) != 8:
            raise ValueError(f"{item!r}: an EUI is 16 hex digits")
        out.append(DeviceLogEntry(entity_id=entity, device_type=device_type))
    return tuple(out)


def _b_gcs59(counter: int, *, entries: str) -> bytes:
    return GpfDeviceLogRestore(entries=_entries(entries)).encode()


def _log_entries(entries) -> list[dict]:
    return [{"eui": e.entity_id.hex().upper(), "device_type": getattr(e.device_type, "name", e.device_type)} for e in entries]


def _i_gcs59(p: Any, m: Message | None) -> dict:
    if not isinstance(p, GpfDeviceLogRestoreResponse):
        raise Unexpected("expected a GPF Device Log Restore Response")
    outcomes = [{**_log_entries([o.entry])[0], "code": getattr(o.code, "name", o.code)} for o in p.outcomes]
    return {"ok": all(o.code == 0 for o in p.outcomes), "outcomes": outcomes}


define("GCS59", target="gpf", originator="acb", build=_b_gcs59, interpret=_i_gcs59,
       params=(Param("entries", "str", "0011223344556677:ppmid,8899AABBCCDDEEFF:type2",
                     "the backup: EUI:TYPE pairs, comma-separated (RTDS: a PPMID and a Type 2 device)"),),
       response="ASN.1 GpfDeviceLogRestoreResponse: a join response code per entry")


def _i_gcs62(p: Any, m: Message | None) -> dict:
    if not isinstance(p, GpfDeviceLogBackupAlert):
        raise Unexpected("expected a GPF Device Log Backup Alert")
    return {"ok": True, "alert_code": f"{p.alert_code:04X}", "alert": catalogue.alert_name(p.alert_code),
            "backup_time": p.backup_date_time.isoformat().replace("+00:00", "Z"), "devices": _log_entries(p.entries)}


define("GCS62", target="gpf", originator="acb", build=None, interpret=_i_gcs62,
       response="alert 0x8071: ASN.1 GpfDeviceLogBackupAlert with the whole GPF device log")

__all__ = ["NEVER_TIMES", "execution_time", "ENCRYPTED_RESPONSES", "RELIABILITY", "GPF_RELIABLE", "GSME_RELIABLE", "UNRELIABLE", "gbz", "zcl_time", "SUPPLY_OFF", "SUPPLY_ON",
           "SUPPLY_ARMED", "REGISTER_READ"]
