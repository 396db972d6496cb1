"""The prepayment interface's use cases: the joins that pair a PPMID with its meters (CS03A1 on
the ESME, CS03A2 on the PPMID; CS03C on the GSME and on the PPMID, carrying the other side's KA
certificate), and the two HAN-only commands a PPMID sends to the GSME itself (PCS01 top-up, PCS02
emergency credit), MACed with the PPMID's own KA key (`gbcs.frame.Message`, `gbcs.security`).

PCS01 / PCS02 are GBZ payloads carrying one ZSE Prepayment command each [O RTDS NA_PCS01]:
PCS01 = ConsumerTopUp(originating device, 20 ASCII digits), PCS02 =
SelectAvailableEmergencyCredit(command issue date-time, originating device). The originating
device is ZSE's 0x02 "In-Home Display device" in RTDS; we send the same. The GSME answers with
ConsumerTopUpResponse / a Default Response. Their originator counter is the PPMID's own
(monotonic, persisted) [I: the RTDS PCS01 counter 0x2710 is not UTRN-shaped].

Join roles [O RTDS 8.7.1]: the ESME is the Method A initiator (CS03A1 role 0 adding a PPMID), the
PPMID the responder (CS03A2 role 1 adding the ESME); both sides of Method C use role 3.
"""
from __future__ import annotations

import datetime as _dt
import enum
from typing import Any

from ..asn1 import DeviceType, JoinDevice, JoinMethodAndRole
from ..gbz import GbzPayload, GbzComponent
from ..zcl import ClusterCommand, Cluster, DefaultResponse, Status
from .common import Unexpected, define, seconds_2000
from .devicelog import _i_join
from .params import REQUIRED, Param

#: ZSE Prepayment OriginatingDevice: 0 Energy Service Interface, 1 Meter, 2 In-Home Display device.
ORIGINATING_DEVICE_PPMID = 0x02  # [O RTDS NA_PCS01]


class TopUpResult(enum.IntEnum):
    """ZSE ConsumerTopUpResponse ResultType."""

    ACCEPTED = 0x00
    REJECTED_INVALID = 0x01
    REJECTED_DUPLICATE = 0x02
    REJECTED_ERROR = 0x03
    REJECTED_MAX_CREDIT_REACHED = 0x04
    REJECTED_KEYPAD_LOCK = 0x05
    REJECTED_VALUE_TOO_LARGE = 0x06
    ACCEPTED_SUPPLY_ENABLED = 0x10
    ACCEPTED_SUPPLY_DISABLED = 0x11
    ACCEPTED_SUPPLY_ARMED = 0x12

    @property
    def accepted(self) -> bool:
        return self in (TopUpResult.ACCEPTED, TopUpResult.ACCEPTED_SUPPLY_ENABLED,
                        TopUpResult.ACCEPTED_SUPPLY_DISABLED, TopUpResult.ACCEPTED_SUPPLY_ARMED)


def consumer_top_up(utrn: str, originating_device: int = ORIGINATING_DEVICE_PPMID) -> ClusterCommand:
    """The ZSE ConsumerTopUp a PPMID sends (to the ESME over the HAN, inside PCS01 to the GSME)."""
    return ClusterCommand.build(Cluster.PREPAYMENT, "ConsumerTopUp", originating_device=originating_device,
                                top_up_code=utrn.encode("ascii"))


def select_emergency_credit(issued: int, originating_device: int = ORIGINATING_DEVICE_PPMID) -> ClusterCommand:
    """ZSE SelectAvailableEmergencyCredit; `issued` in UTC seconds since 2000."""
    return ClusterCommand.build(Cluster.PREPAYMENT, "SelectAvailableEmergencyCredit", command_issue_date_time=issued,
                                originating_device=originating_device)


def _single(command: ClusterCommand) -> bytes:
    return GbzPayload.build([GbzComponent.build(Cluster.PREPAYMENT, command)]).encode()


def _zcl(payload: Any) -> Any:
    """The one ZCL payload of a GBZ response."""
    components = getattr(payload, "components", None)
    if not components or len(components) != 1 or components[0].payload is None:
        raise Unexpected("expected a GBZ payload with one component")
    return components[0].payload


# -- PCS01 Apply Prepayment Top Up to a GSME using PPMID -------------------------------------------------


def _b_pcs01(counter: int, *, utrn: str, originating_device: int) -> bytes:
    return _single(consumer_top_up(utrn, originating_device))


def _i_top_up(p: Any, m: Any) -> dict:
    z = _zcl(p)
    if isinstance(z, DefaultResponse):
        return {"ok": False, "status": Status(z.status).name if z.status in Status._value2member_map_ else z.status}
    if not isinstance(z, ClusterCommand) or z.name != "ConsumerTopUpResponse":
        raise Unexpected("expected ConsumerTopUpResponse")
    code = z["result_type"]
    result = TopUpResult(code) if code in TopUpResult._value2member_map_ else None
    return {"ok": result is not None and result.accepted, "result": code if result is None else result.name,
            "top_up_value": z["top_up_value"], "source_of_top_up": z["source_of_top_up"],
            "credit_remaining": z["credit_remaining"]}


define("PCS01", target="gsme", originator="ppmid", build=_b_pcs01, interpret=_i_top_up, params=(
    Param("utrn", "utrn", REQUIRED, "the UTRN the consumer typed (20 digits)"),
    Param("originating_device", "int", ORIGINATING_DEVICE_PPMID, "ZSE OriginatingDevice (2: IHD/PPMID)", min=0,
          max=255),
), response="GBZ ConsumerTopUpResponse (result, value, source, credit remaining)")


# -- PCS02 Activate Emergency Credit on GSME from PPMID ------------------------------------------------


def _b_pcs02(counter: int, *, issued: _dt.datetime | None, originating_device: int, now: _dt.datetime | None) -> bytes:
    when = issued if issued is not None else now
    if when is None:
        raise ValueError("parameter 'issued' defaults to now: pass now= (the caller's clock) or an explicit time")
    return _single(select_emergency_credit(seconds_2000(when), originating_device))


def _i_pcs02(p: Any, m: Any) -> dict:
    z = _zcl(p)
    if not isinstance(z, DefaultResponse):
        raise Unexpected("expected a Default Response")
    status = Status(z.status) if z.status in Status._value2member_map_ else z.status
    return {"ok": z.status == Status.SUCCESS, "status": status.name if isinstance(status, Status) else status}


define("PCS02", target="gsme", originator="ppmid", build=_b_pcs02, interpret=_i_pcs02, params=(
    Param("issued", "datetime", None, "command issue date-time (default: now)"),
    Param("originating_device", "int", ORIGINATING_DEVICE_PPMID, "ZSE OriginatingDevice (2: IHD/PPMID)", min=0,
          max=255),
), response="GBZ Default Response")


# -- Joins: CS03A1 (ESME side), CS03A2 (PPMID side), CS03C (GSME and PPMID sides) ---------------------


def _b_join(counter: int, *, other_entity_id: bytes, other_device_type: DeviceType,
            join_method_and_role: JoinMethodAndRole, ka_certificate: bytes | None = None) -> bytes:
    return JoinDevice(join_method_and_role, other_entity_id, other_device_type, ka_certificate).encode()


def _join_params(other: DeviceType, role: JoinMethodAndRole, example: str) -> tuple[Param, ...]:
    return (
        Param("other_entity_id", "eui", bytes.fromhex(example), "EUI-64 of the device to join with"),
        Param("other_device_type", "enum", other, "its device type", enum=DeviceType),
        Param("join_method_and_role", "enum", role, "join method and this device's role", enum=JoinMethodAndRole),
    )


define("CS03A1", target="esme", build=_b_join, interpret=_i_join,
       params=_join_params(DeviceType.PPMID, JoinMethodAndRole.METHOD_A_INITIATOR, "00DB12345678909A"),
       response="ASN.1 join response code")
define("CS03A2", target="ppmid", targets=("ppmid", "hcalcs"), build=_b_join, interpret=_i_join,
       params=_join_params(DeviceType.ESME, JoinMethodAndRole.METHOD_A_RESPONDER, "00DB123456789093"),
       response="ASN.1 join response code")
define("CS03C", target="gsme", targets=("gsme", "ppmid"), build=_b_join, interpret=_i_join, params=(
    *_join_params(DeviceType.PPMID, JoinMethodAndRole.METHOD_C, "00DB123456789098"),
    Param("ka_certificate", "hex", None, "the other device's KA certificate (DER)"),
), response="ASN.1 join response code")


__all__ = ["ORIGINATING_DEVICE_PPMID", "TopUpResult", "consumer_top_up", "select_emergency_credit"]
