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

Future-dated forms (GCS01a/b, GCS05, GCS24a, GCS25a carry a start / implementation date-time [O])
are built with an immediate time here; the shared future-dated mechanism adds the stored form.
"""
from __future__ import annotations

import datetime as _dt
from typing import Any

from .. import catalogue
from ..asn1 import DeviceTimeStatus, SetTime, SetTimeResponse
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
    attribute_name,
    status_name,
    utc_seconds,
    utc_text,
)
from .common import Unexpected, define
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
SNAPSHOT_COMPONENTS = 31  # GCS16a asks for 31 daily snapshots [O RTDS]


def zcl_time(moment: _dt.datetime) -> int:
    return utc_seconds(moment)


def _now_stamp(value: int | None, now: _dt.datetime | None, what: str) -> int:
    if value is not None:
        return value
    if now is None:
        raise ValueError(f"{what} defaults to the caller's time; none was given")
    return zcl_time(now)


def gbz(*items: tuple[int, Any], renumber: bool = False) -> bytes:
    """A GBZ command of one component per (cluster, ZCL payload): ZCL sequence 0, or with
    `renumber` the component index (GCS16a) [O RTDS]."""
    return GbzPayload.build([GbzComponent.build(cluster, payload) for cluster, payload in items], renumber=renumber).encode()


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
    if end is None:
        if now is None:
            raise ValueError("end defaults to the caller's time; none was given")
        end = now
    if start is None:
        start = end - _dt.timedelta(days=SNAPSHOT_COMPONENTS)
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

__all__ = ["RELIABILITY", "GPF_RELIABLE", "GSME_RELIABLE", "UNRELIABLE", "gbz", "zcl_time", "SUPPLY_OFF", "SUPPLY_ON",
           "SUPPLY_ARMED", "REGISTER_READ", "catalogue"]
