"""The gas meter (GSME): battery powered and sleepy. It wakes every `wake_interval` seconds (30
minutes by default [S FACTS §3.3]) and when its button is pressed (`press()`, `gbhub ctl press`);
each wake it closes the half-hours since the last one, pushes its data to the GPF's mirror, then
pulls the messages the Comms Hub queued for it through its GB-HGRP tunnel (GET / GET-RESPONSE),
executes them and PUTs the responses and alerts [S FACTS §3.3].

What it keeps in NVM (`firmware.gas_data.GasData` schema, shared with the GPF's mirror): volume
registers (litres; tiers and blocks), the half-hourly profile (13 months; with
`profile_storage="derived"`, fleets, only what its model cannot give: `firmware.derived`) and daily read log
(midnight UTC snapshots; derived mode: only the reads a replay of its close over the profile, its
prepayment charges included (`ReplayLedger`), does not give, `GasData.close_daily`), the valve (`supply`), prepayment (`meter.prepayment`, the ESME's
model: credit, emergency credit, debt, UTRN counter cache), calorific value and conversion
factor, battery, tamper state, its event / security logs and its own device log.

Energy from volume: kWh = m³ × CV (MJ/m³) × CF / 3.6 (CV 39.5, CF 1.02264 until GCS23 sets them
[I]); the tariff (GCS01a/b: calendar, prices, block thresholds) puts each half-hour in a tier and
block register and prices it (`firmware.gas_data.tariff_parts` on the shared `firmware.tariff`), and
prepayment (`meter.prepayment`, shared with the ESME: debt recovery, UTRN lock-out) charges it.

Valve rules [I, from the SMETS2 intent]: GCS32 closes it; GCS39 arms it and the consumer opens an
armed valve with the button; a flow above `uncontrolled_flow_lph` closes and arms it (alert 0x81BF);
a tamper closes and locks it when `tamper_closes_valve` (0x8F3F, 0x81BE); running out of credit
closes it (0x8F0F) and a top-up re-arms it.

PPMID: PCS01 (a UTRN typed on the PPMID, checked as locally entered), PCS02 (emergency credit)
and CS03C (the PPMID's Method C join) are in the handler table; their device-to-device MAC check
is the shared model's. `apply_top_up` / `activate_emergency_credit` are the same actions as calls.

Push to the GPF [I]: a ZCL Write Attributes on the Metering cluster to the CHF's address, one
manufacturer-range attribute 0xFF00 (long octet string) holding the state and the new log
entries as compact JSON — instead of the ZSE mirror reports, PublishSnapshot and GetSampledData a
real GSME uses. The GPF answers only once the data is in its NVM; the GSME then records how far
it pushed, so a crash between the two pushes the same intervals again, which the day-keyed log
absorbs (nothing is lost, nothing counted twice).

Firmware (README "Firmware"; `firmware.update`): each wake, after its push, the GSME reads the
GPF's FunctionalNotificationFlags (`NOTIFICATION_FLAGS_ATTRIBUTE` of the mirror); while bit 0 "New
OTA firmware" is set it fetches `ota_blocks_per_wake` blocks (default 200 [I]) from the CHF's OTA
server, so an image arrives across wakes; the receipt alert is FDRA-ZigBee (GBZ, 0x00CF); CS06
comes through its queue like any command; GCS38 reads the running version.

Future-dated commands (`firmware.future`; README "Gas"): the use cases GBCS lets the GSME hold
(`catalogue.device_future_dated`: GCS01a/b tariff, GCS05 prepayment configuration, GCS02/03 payment
mode) carry their execution date-time in each timed component (`gbcs.usecases.gas.execution_time`).
"Now" (0) or a past time executes at once; a future time is answered at once (a Default Response per
component, as RTDS shows) and kept in NVM, one instruction per timed component (`FutureDateable`;
calendar profiles and seasons go with their PublishCalendar); at the time each is applied and its
FDA goes to the command's originator: message code 0x00CD, alert 0x8F66 (0x8F67 when it failed),
alert time = the execution time, body = message code, originator counter, cluster, frame control
(the command's first component's [O RTDS]) and command id. The "never" time (0xFFFFFFFE /
0xFFFFFFFF) cancels the pending components it names. Times within one command must agree (GB081),
else the command is refused as malformed. Sleepiness, option `future_dated` [I]: "clock" (default;
a GSME keeps its own clock — GCS28 sets it — and a tariff must switch at its time for billing, so
its clock runs the instruction at the due time and wakes the meter to send the FDA and push the new
state), or "wake" (the instruction runs at the first wake at or after its time). Other gas use
cases with a time field (GCS24/24a, GCS25/25a, GCS04, GCS40a-d) have no "Device" future-dated
pattern in DUIS and execute at once, as before.

Alerts are GBZ (alert code, time) and go out as PUTs in the wake that raised them, or the next.
Faults (`FAULT_KINDS`, `firmware.faults`): battery, tamper, tilt, battery-cover, magnet, flow-sensor,
flow, integrity, valve, power, asleep / awake, gone, fail-next (README "Gas", "Fault injection"):
each raises the meter-integrity alert GBCS names for it and sets the state it names; the natural
causes add 0x8F29 (three wakes in a row without the CHF) and 0x8F1D (power back after a loss).
"""
from __future__ import annotations

import asyncio
import datetime as _dt
import json
import logging
import math
from datetime import datetime, timezone
from types import MappingProxyType
from typing import Any

from gbcs.asn1 import DeviceTimeStatus, SetTime, SetTimeResponse, decode_asn1
from gbcs.catalogue import AlertCode, DeviceType, MessageCode
from gbcs.codec import DecodeError, parse_eui
from gbcs.frame import CRA, Message
from gbcs.gbz import FutureDatedAlertData, GbzAlert, GbzComponent, GbzPayload, MeterIntegrityIssue, decode_gbz, encryptor
from gbcs.usecases.gas import ENCRYPTED_RESPONSES, GSME_RELIABLE, SUPPLY_ARMED, SUPPLY_OFF
from gbcs.usecases.gas import BILLING_CALENDAR_CAUSE, MODE_CHANGE_CAUSE, PREPAYMENT_CREDIT_CAUSE, TARIFF_CHANGE_CAUSE
from gbcs.usecases.gas import NETWORK_DATA_SAMPLE_ID, NEVER_TIMES, execution_time
from gbhub.firmware.gas_data import ZCL_EPOCH
from gbcs.utrn import DEFAULT_CACHE_SIZE, UtrnCheck
from gbcs.zcl import AttributeValue, Cluster, ClusterCommand, DefaultResponse, Status, WriteAttributes, ZclType
from gbhub.firmware.cosem import datetime_bytes
from gbhub.firmware.credentials import credential_handlers
from gbhub.firmware.device_log import DeviceLog, join, read, unjoin
from gbhub.firmware.faults import FaultError, arity, fault, fault_kinds, number
from gbhub.firmware.gas_data import DAY, HALF_HOUR, MIRROR_ATTRIBUTE, MONEY, NS, SUPPLY_ZCL, GasData, default_response, gbz_command
from gbhub.firmware.gas_data import NEW_OTA_FIRMWARE, NOTIFICATION_FLAGS_ATTRIBUTE
from gbhub.firmware.gas_data import DEBT_PAYMENT_BASED, DEBTS, accrue, billing_date, daily_read, debt_rate_per_day, gas_kwh, unit_price
from gbhub.firmware.gas_data import (GAS_SETTINGS, PREPAY_SETTINGS, TARIFF_COMMANDS, ZclFailure, apply_command, gbz_failure,
                                     read_failure)
from gbhub.firmware.future import FdaOutcome
from gbhub.firmware.nvm import NvmError
from gbhub.firmware.update_handlers import activate_firmware
from gbhub.firmware.gbcs_device import CommandRejected, GbcsDevice, Outcome, asn1_failure, call, handlers
from gbhub.han.aps import TUNNELING_CLUSTER, HanError
from gbhub.han.transport import ClusterDispatch
from gbhub.han.tunnel import TunnelClient, TunnelHost
from gbhub.han.zcl_server import ZclClient, ZclError

from .esme_state import PROFILE_STORAGE
from .esme_state import SUPPLY_ARMED as ARMED, SUPPLY_DISABLED as DISABLED, SUPPLY_ENABLED as ENABLED
from .model import ConsumptionModel, close_half_hours
from .prepayment import UTRN_LOCKOUT_ATTEMPTS, UTRN_LOCKOUT_SECONDS, Prepayment, top_up_result

log = logging.getLogger("gbhub.gsme")

WAKE_INTERVAL = 1800.0  # [S FACTS §3.3]
AWAKE_POLL = 10.0  # seconds between polls while kept awake (`fault awake`) [I]
PUSH_CHUNK_DAYS = 7  # profile days per push frame after a long sleep
LOW_BATTERY = 10.0  # percent: alert 0x8F1F below it [I]
BATTERY_PER_WAKE = 0.0005  # percent a wake costs [I]: about 15 years of half-hourly wakes
CV_DEFAULT, CF_DEFAULT = 39.5, 1.02264  # MJ/m³, conversion factor [I typical GB values]
DEVICE_LOG_CAPACITY = 8  # [U]
OTA_BLOCKS_PER_WAKE = 200  # firmware blocks fetched per wake [I]: 200 x 48 bytes take 4 s at the default HAN pace
MAX_FLOW_LPH = 6000.0  # the meter's capacity, litres per hour [I: a G4 meter's Qmax, 6 m³/h]: above it 0x81B4
LOST_SEARCHES = 3  # failed wakes in a row (the CHF not found) before 0x8F29 [I: its name]
NO_TOP_UP = -1  # ConsumerTopUpResponse top_up_value of a refused UTRN [O RTDS CS01b ERROR]
FUTURE_DATED_MODES = ("clock", "wake")  # when held instructions run (module doc "Future-dated commands") [I]


def _litres_model(seed: int) -> ConsumptionModel:
    """A household's gas use as a power curve in W of gas burnt [I: 0.3 kW base, 8 kW peak]."""
    return ConsumptionModel(seed=seed, base_w=300.0, peak_w=8000.0)


def litres_series(model: ConsumptionModel, cv: float, cf: float):
    """The litres `model` burns in the half hour ending at a boundary, at calorific value `cv` and
    conversion factor `cf`, computed as `Gsme._litres` does (what a derived profile sums:
    `GasData.litres`; the GPF's mirror gets the same from the composition, `tools.premises`)."""
    def half_hour(end: float) -> float:
        return model.energy_wh(end - HALF_HOUR, end) / 1000.0 * 3.6 / (cv * cf) * 1000.0
    return half_hour


def _component(payload: Any, cluster: int, seq: int = 0, **kw: Any) -> bytes:
    return GbzPayload.build([GbzComponent.build(cluster, payload, sequence=seq, **kw)]).encode()


def _one_command(message: Message, name: str) -> ClusterCommand:
    comps = gbz_command(message)
    cmd = comps[0].payload
    if len(comps) != 1 or not isinstance(cmd, ClusterCommand) or cmd.name != name:
        raise CommandRejected("malformed", f"expected one {name}")
    return cmd


# ------------------------------------------------------------------------------- handlers
def _read(gsme: "Gsme", message: Message, fail: ZclFailure | None = None) -> Outcome:
    """GBZ reads, answered from the GSME's data; `fail` (fail-next): as the RTDS ERROR vectors."""
    comps = gbz_command(message)
    encrypt = (encryptor(gsme.encryption_key_for(message), gsme.eui) if message.message_code in ENCRYPTED_RESPONSES
               else None)
    content = gsme.data.answer(comps, now=gsme.device_now(), firmware_version=gsme.firmware_version, encrypt=encrypt,
                               fail=fail)
    undated = message.message_code in _UNDATED_READS  # [O RTDS GCS38/GCS16a/GCS17 responses carry no date-time]
    return Outcome(content, None if undated else gsme.dated(GSME_RELIABLE))


_UNDATED_READS = frozenset((MessageCode.GCS18, MessageCode.GCS15c, MessageCode.GCS15e, MessageCode.GCS21d, MessageCode.GCS21k, MessageCode.GCS38, MessageCode.GCS16a, MessageCode.GCS17, MessageCode.GCS21m, MessageCode.GCS15b,
                            MessageCode.GCS21f, MessageCode.GCS16b, MessageCode.GCS15d))

def _settings(gsme: "Gsme", message: Message) -> bytes:
    """Commands that only store settings (`gas_data.apply_command`): each component stored and
    answered with a Default Response [O RTDS GCS07/GCS11/GCS24a/GCS25a/GCS44 responses]."""
    out = []
    for c in gbz_command(message):
        if getattr(c.payload, "name", "") not in GAS_SETTINGS:
            raise CommandRejected("malformed", f"{_name_of(c)} is not part of this use case")
        apply_command(gsme.data, c.payload)
        out.append(default_response(c))
    lph = gsme.data.get("gas").get("uncontrolled_flow_lph")
    if lph is not None:
        gsme.uncontrolled_flow_lph = lph
    return GbzPayload.build(out).encode()


def _name_of(c: GbzComponent) -> str:
    return getattr(c.payload, "name", "") or type(c.payload).__name__


# -- future-dateable use cases (module doc "Future-dated commands") -------------------------------
def _apply_tariff(gsme: "Gsme", comps) -> list[GbzComponent]:
    """GCS01a / GCS01b: calendar, prices (ZSE price, 5 decimals of a pound: /1000 is pence [O RTDS
    trailing digit 0x50]), block thresholds and standing charge (`gas_data.tariff_parts` applies them)."""
    gsme.data.take_billing_snapshot(int(gsme.device_now()), TARIFF_CHANGE_CAUSE)  # the old tariff's billing data
    for c in comps:
        apply_command(gsme.data, c.payload)
    gas = gsme.data.get("gas")
    gsme.log_event("tariff", price=gas["price"], standing=gas["standing"])
    return [default_response(c) for c in comps]


def _apply_prepayment_configuration(gsme: "Gsme", comps) -> list[GbzComponent]:
    """GCS05: emergency credit, debt cap, low-credit warning and maximum credit settings (money in
    ZSE units: /1000 is pence), and the friendly-credit calendar (kept, not applied [I])."""
    for c in comps:
        apply_command(gsme.data, c.payload)
    return [default_response(c) for c in comps]


def _apply_payment_mode(gsme: "Gsme", comps) -> list[GbzComponent]:
    gsme.data.take_billing_snapshot(int(gsme.device_now()), MODE_CHANGE_CAUSE)  # billing data of the old mode
    apply_command(gsme.data, comps[0].payload)
    gsme.log_event("payment_mode", mode=gsme._prepay()["mode"])
    return _payment_mode_response(gsme, comps)


def _payment_mode_response(gsme: "Gsme", comps) -> list[GbzComponent]:
    p = gsme._prepay()
    resp = ClusterCommand.build(Cluster.PREPAYMENT, "ChangePaymentModeResponse", friendly_credit=0,
                                friendly_credit_calendar_id=0, emergency_credit_limit=int(p["ec_limit"] * MONEY),
                                emergency_credit_threshold=int(p.get("ec_threshold", 0) * MONEY))
    return [GbzComponent.build(Cluster.PREPAYMENT, resp)]


def _accepted(gsme: "Gsme", comps) -> list[GbzComponent]:
    return [default_response(c) for c in comps]


class FutureDateable:
    """One gas use case family GBCS lets the GSME hold until its execution date-time [S DP via
    `catalogue.device_future_dated`]: the commands it may carry, how it is applied (now, or at the
    time by the future-dated action `GBZ_ACTION`), how it is answered when held or cancelled, and
    whether the response is dated."""

    def __init__(self, family: str, names: frozenset, apply, held=_accepted, dated: bool = True, one: bool = False):
        self.family, self.names, self.apply, self.held, self.dated, self.one = family, names, apply, held, dated, one

    def __call__(self, gsme: "Gsme", message: Message) -> Outcome:
        comps = gbz_command(message)
        for c in comps:
            if getattr(c.payload, "name", "") not in self.names:
                raise CommandRejected("malformed", f"{_name_of(c)} is not part of {MessageCode(message.message_code).name}")
        if self.one and len(comps) != 1:
            raise CommandRejected("malformed", "expected one component")
        times = {NEVER if t in NEVER_TIMES else t for t in map(execution_time, comps) if t is not None}
        if len(times) > 1:  # GB081: all future dated times within one command are the same [I: else malformed]
            raise CommandRejected("malformed", "execution date-times within one command differ")
        when = next(iter(times), 0)
        if when == NEVER:
            for key in self.keys(comps):
                gsme.future.cancel(key)
            out = self.held(gsme, comps)
        elif when == 0 or when + ZCL_EPOCH <= gsme.device_now():  # now, or a time already past: at once
            out = self.apply(gsme, comps)
        else:
            self.schedule(gsme, message, comps, when)
            out = self.held(gsme, comps)
        return Outcome(GbzPayload.build(out).encode(), gsme.dated(0xFF) if self.dated else None)

    def key(self, c: GbzComponent) -> str:
        return f"gbz:{self.family}:{c.cluster_id:04X}:{c.header.command_id:02X}"

    def keys(self, comps) -> list[str]:
        return [self.key(c) for c in comps if execution_time(c) is not None]

    def schedule(self, gsme: "Gsme", message: Message, comps, when: int) -> None:
        """One instruction per timed component (each has its FDA [O RTDS 8F66 alerts]); the untimed
        ones (calendar profiles, seasons) go with the timed component before them."""
        groups: list[list[GbzComponent]] = []
        loose: list[GbzComponent] = []
        for c in comps:
            if execution_time(c) is not None:
                groups.append(loose + [c])
                loose = []
            elif groups:
                groups[-1].append(c)
            else:
                loose.append(c)
        # the FDA names the cluster and command; its frame control is the command's first
        # component's [O RTDS GCS05: 0x01 for its calendar's alerts too, GCS01a: 0x09]
        frame_control = comps[0].header.encode()[0]
        for group in groups:
            timed = next(c for c in group if execution_time(c) is not None)
            gsme.future.schedule(self.key(timed), when + ZCL_EPOCH, GBZ_ACTION, {
                "family": self.family, "components": GbzPayload.build(group).encode().hex(), "execution": when,
                "cluster": timed.cluster_id, "command_id": timed.header.command_id, "frame_control": frame_control,
                "originator": message.originator.hex()})


GBZ_ACTION = "gbz"  # the GSME's future-dated action (FUTURE_ACTIONS)
NEVER = -1  # any of NEVER_TIMES (RTDS cancels a calendar with 0xFFFFFFFE, its tariff with 0xFFFFFFFF)
_PRICE_COMMANDS = frozenset(("PublishTariffInformation", "PublishBlockThresholds", "PublishPriceMatrix"))
_FUTURE_DATEABLE = {f.family: f for f in (
    FutureDateable("tariff", TARIFF_COMMANDS, _apply_tariff),
    FutureDateable("prepayment", frozenset(PREPAY_SETTINGS) | (TARIFF_COMMANDS - _PRICE_COMMANDS), _apply_prepayment_configuration),
    FutureDateable("payment_mode", frozenset(("ChangePaymentMode",)), _apply_payment_mode, _payment_mode_response,
                   dated=False, one=True),
)}


def _fire_gbz(gsme: "Gsme", entry: dict) -> FdaOutcome:
    """A held GBZ instruction's time has come: applied, and its FDA (0x00CD, 0x8F66 / 0x8F67: alert
    time = the execution date-time, the command's message code and counter, the component's
    cluster and command [O RTDS]) goes to the command's originator."""
    family = _FUTURE_DATEABLE.get(entry.get("family"))
    ok = False
    if family is not None:
        try:
            comps = decode_gbz(bytes.fromhex(entry["components"]), cra=CRA.COMMAND).components
            with gsme.nvm.transaction():
                gsme._catch_up(gsme.device_now())  # the half-hours before its time at the old settings
                family.apply(gsme, comps)
            ok = True
        except (CommandRejected, DecodeError, KeyError, ValueError, TypeError) as exc:
            log.warning("gsme %s: future-dated %s failed: %s", gsme.eui_hex, entry.get("family"), exc)
    body = FutureDatedAlertData(entry["message_code"], entry["counter"], entry["cluster"], entry["frame_control"],
                                entry["command_id"])
    originator = entry.get("originator")
    recipient = gsme.trust.by_eui(bytes.fromhex(originator)) if originator else None
    return FdaOutcome(ok, MessageCode.FDA_ZigBee, recipient=recipient,
                      content_for=lambda code: GbzAlert.build(code, entry["execution"], body).encode())


def _event_configuration(gsme: "Gsme", message: Message) -> bytes:
    """GCS20 stores each code's configuration; GCS20r reports one [I: ZSE Device Management]."""
    comps = gbz_command(message)
    gas = gsme.nvm.get(NS, "gas")
    configs = dict(gas.get("event_configuration") or {})
    cmd = comps[0].payload
    if len(comps) != 1 or not isinstance(cmd, ClusterCommand):
        raise CommandRejected("malformed", "one event configuration command")
    if cmd.name == "SetEventConfiguration":
        for e in cmd.get("event_ids") or ():
            configs[str(dict(e)["event_id"])] = cmd["event_configuration"]
        gas["event_configuration"] = configs
        gsme.nvm.put(NS, "gas", gas)
        return GbzPayload.build([default_response(comps[0])]).encode()
    if cmd.name == "GetEventConfiguration":
        code = cmd["event_id"]
        resp = ClusterCommand.build(Cluster.DEVICE_MANAGEMENT, "ReportEventConfiguration", command_index=0, total_commands=1,
                                    events=[{"event_id": code, "event_configuration": configs.get(str(code), 0x03)}])
        return _component(resp, Cluster.DEVICE_MANAGEMENT)
    raise CommandRejected("malformed", f"{cmd.name} is not an event configuration command")


def _start_network_log(gsme: "Gsme", message: Message) -> bytes:
    """GCS31 (network operator): start the network data log (GCS18 reads it, sample id
    `NETWORK_DATA_SAMPLE_ID`) from the half-hourly profile, at an interval that is a multiple of the
    half-hour [I]; any other interval is answered INVALID_VALUE and changes nothing [I]."""
    comps = gbz_command(message)
    cmd = _one_command(message, "StartSampling")
    interval = cmd["sample_request_interval"]
    if interval % HALF_HOUR or cmd["sample_type"] != 0:
        return GbzPayload.build([default_response(comps[0], Status.INVALID_VALUE)]).encode()
    start = cmd["start_sampling_time"] + ZCL_EPOCH if cmd["start_sampling_time"] else int(gsme.device_now())
    gas = gsme.nvm.get(NS, "gas")
    gas["network_log"] = {"start": int(start - start % HALF_HOUR), "interval": interval, "samples": cmd["max_number_of_samples"]}
    gsme.nvm.put(NS, "gas", gas)
    gsme.log_event("network_data_log", **gas["network_log"])
    resp = ClusterCommand.build(Cluster.METERING, "StartSamplingResponse", sample_id=NETWORK_DATA_SAMPLE_ID)
    return GbzPayload.build([GbzComponent.build(Cluster.METERING, resp, sequence=comps[0].header.sequence,
                                                disable_default_response=True)]).encode()


def _clear_event_log(gsme: "Gsme", message: Message) -> bytes:
    cmd = _one_command(message, "ClearEventLogRequest")
    gsme.clear_event_log(by=message.originator.hex())
    resp = ClusterCommand.build(Cluster.EVENTS, "ClearEventLogResponse", cleared_event_logs=cmd["log_id"] & 0x08 or 0x08)
    return _component(resp, Cluster.EVENTS)


def _event_log(gsme: "Gsme", message: Message) -> bytes:
    cmd = _one_command(message, "GetEventLog")
    lo, hi = cmd["start_time"] + 946684800, cmd["end_time"] + 946684800
    events = [e for e in gsme.event_log() if lo <= e["time"] <= hi and isinstance(e.get("code"), int)]
    comp = gbz_command(message)[0]
    if not events:
        return GbzPayload.build([default_response(comp, Status.NOT_FOUND)]).encode()
    events = events[-10:]
    resp = ClusterCommand.build(Cluster.EVENTS, "PublishEventLog", total_number_of_events=len(events), command_index=0,
                                total_commands=1, log_payload_control=0,
                                events=[{"log_id": 1, "event_id": e["code"] & 0xFFFF,
                                         "event_time": max(0, int(e["time"]) - 946684800), "event_data": b""} for e in events])
    return _component(resp, Cluster.EVENTS)


def _change_supply(gsme: "Gsme", message: Message) -> bytes:
    cmd = _one_command(message, "ChangeSupply")
    proposed = cmd["proposed_supply_status"]
    if proposed == SUPPLY_OFF:
        gsme._set_supply(DISABLED, cause="remote")
    elif proposed == SUPPLY_ARMED:
        if gsme._supply_state() == DISABLED and not gsme.data.get("gas", {}).get("locked"):
            gsme._set_supply(ARMED, cause="remote")
    else:
        raise CommandRejected("malformed", "a GSME valve is never opened remotely [I]")
    state = gsme._supply_state()
    resp = ClusterCommand.build(Cluster.METERING, "SupplyStatusResponse", provider_id=cmd["provider_id"],
                                issuer_event_id=cmd["issuer_event_id"], implementation_date_time=0,
                                supply_status=SUPPLY_ZCL[state])
    return _component(resp, Cluster.METERING)


def _top_up(gsme: "Gsme", message: Message) -> Outcome:
    cmd = _one_command(message, "ConsumerTopUp")
    code = bytes(cmd["top_up_code"]).decode("ascii", "replace")
    check = gsme._check_utrn(code, message.originator, message.recipient, message.originator_counter)
    if check.accepted:
        gsme._add_credit(check.amount_pennies, "remote")
        gsme.log_event("top_up", pence=check.amount_pennies, utrn_counter=check.utrn_counter)
    else:
        gsme._queue_alert(check.alert_code)
        gsme.log_event("top_up_rejected", status=check.status.value)
    credit = int(round(gsme.credit_pence * MONEY))
    resp = ClusterCommand.build(Cluster.PREPAYMENT, "ConsumerTopUpResponse", result_type=0 if check.accepted else 1,
                                top_up_value=check.amount_pennies * MONEY if check.accepted else NO_TOP_UP,
                                source_of_top_up=cmd["originating_device"], credit_remaining=credit)
    return Outcome(_component(resp, Cluster.PREPAYMENT), gsme.dated(0xFF))


def _ppmid_top_up(gsme: "Gsme", message: Message) -> bytes:
    """PCS01: a UTRN the consumer typed on the PPMID (the PPMID MACs the command with the two
    devices' KA keys: checked by the shared device-to-device rule once the PPMID has joined by
    Method C, CS03C). The UTRN itself is the supplier's, checked as a locally entered one
    (`Prepayment.local_top_up`, with its lock-out): credit added (alert 0x810E) or the rejection
    alert (0x8F51 / 0x8F63 / 0x8F64; 0x81C5 while locked out, 0x81C4 when this entry locks it)."""
    cmd = _one_command(message, "ConsumerTopUp")
    code = bytes(cmd["top_up_code"]).decode("ascii", "replace")
    check = gsme.local_top_up(code, "ppmid")
    resp = ClusterCommand.build(Cluster.PREPAYMENT, "ConsumerTopUpResponse",
                                result_type=0 if check.accepted else int(top_up_result(check)),
                                top_up_value=check.amount_pennies * MONEY if check.accepted else NO_TOP_UP,
                                source_of_top_up=cmd["originating_device"],
                                credit_remaining=int(round(gsme.credit_pence * MONEY)))
    return _component(resp, Cluster.PREPAYMENT)


def _emergency_credit(gsme: "Gsme", message: Message) -> bytes:
    _one_command(message, "SelectAvailableEmergencyCredit")
    ok = gsme._activate_ec()
    status = Status.SUCCESS if ok else Status.FAILURE
    return _component(DefaultResponse(0, status), Cluster.PREPAYMENT)


def _credit_adjustment(gsme: "Gsme", message: Message) -> bytes:
    cmd = _one_command(message, "CreditAdjustment")
    p = gsme._prepay()
    pence = cmd["credit_adjustment_value"] / MONEY
    if cmd["credit_adjustment_type"] == 0:
        p["credit"] += pence
    else:
        p["credit"] = pence
    gsme.nvm.put(NS, "prepayment", p)
    return _component(DefaultResponse(5, Status.SUCCESS), Cluster.PREPAYMENT)


def _set_time(gsme: "Gsme", message: Message) -> bytes:
    try:
        cmd = decode_asn1(message.content, message_code=message.message_code, cra=message.cra)
    except DecodeError as exc:
        raise CommandRejected("malformed", str(exc)) from None
    if not isinstance(cmd, SetTime):
        raise CommandRejected("malformed", "not a Set Time command")
    now = gsme.clock.now()
    t0, t1 = cmd.validity_interval_start.timestamp(), cmd.validity_interval_end.timestamp()
    status = DeviceTimeStatus.RELIABLE
    if t0 <= now <= t1:
        gsme.nvm.put(NS, "clock_offset", 0.0)  # the command's window holds the true time: follow it [I]
    else:
        # the window does not hold the GSME's time: not adjusted, and the time is reported
        # unreliable [O RTDS GCS28 ERROR: device time 00:00 outside 01:00-02:00, status 2]
        status = DeviceTimeStatus.UNRELIABLE
    device_time = datetime.fromtimestamp(int(gsme.device_now()), timezone.utc)
    return SetTimeResponse(device_time=device_time, status=status).encode()


# `fail-next` answers of the GBZ commands answered with Default Responses (`gas_data.gbz_failure`),
# of the reads (`gas_data.read_failure`) and of GCS28 (the SetTimeResponse's status: `unreliable` as
# RTDS GCS28 ERROR; the clock is not set)
_FAIL, _FAIL_DATED = gbz_failure(), gbz_failure(lambda gsme: gsme.dated(0xFF))
_FAIL_READ = read_failure(_read)
_FAIL_SET_TIME = asn1_failure(DeviceTimeStatus, lambda code, gsme: SetTimeResponse(
    device_time=datetime.fromtimestamp(int(gsme.device_now()), timezone.utc), status=code).encode())


class Gsme(Prepayment, GbcsDevice):
    """The gas meter (module doc)."""

    kind = "gsme"

    HANDLERS = handlers(
        call(MessageCode.GCS13a, _read, fail=_FAIL_READ),
        call(MessageCode.GCS14, _read, fail=_FAIL_READ),
        call(MessageCode.GCS60, _read, fail=_FAIL_READ),
        call(MessageCode.GCS33, _read, fail=_FAIL_READ),
        call(MessageCode.GCS38, _read, fail=_FAIL_READ),
        call(MessageCode.GCS17, _read, fail=_FAIL_READ),
        call(MessageCode.GCS16a, _read, fail=_FAIL_READ),
        call(MessageCode.GCS32, _change_supply, fail=_FAIL),
        call(MessageCode.GCS39, _change_supply, fail=_FAIL),
        call(MessageCode.CS01b, _top_up),
        call(MessageCode.GCS06, _emergency_credit, fail=_FAIL),
        call(MessageCode.PCS01, _ppmid_top_up),  # from the PPMID (device-to-device MAC: see _ppmid_top_up)
        call(MessageCode.PCS02, _emergency_credit),
        *credential_handlers(),  # CS02a-g (firmware.credentials)
        join(MessageCode.CS03C, DeviceType.PPMID),  # Method C: the PPMID and its KA certificate
        call(MessageCode.GCS40a, _credit_adjustment, fail=_FAIL),
        call(MessageCode.GCS40b, _credit_adjustment, fail=_FAIL),
        call(MessageCode.GCS28, _set_time, fail=_FAIL_SET_TIME),
        call(MessageCode.GCS21m, _read, fail=_FAIL_READ),
        call(MessageCode.GCS21f, _read, fail=_FAIL_READ),
        call(MessageCode.GCS16b, _read, fail=_FAIL_READ),
        call(MessageCode.GCS15d, _read, fail=_FAIL_READ),
        call(MessageCode.GCS07, _settings, fail=_FAIL),
        call(MessageCode.GCS11, _settings, fail=_FAIL),
        call(MessageCode.GCS44, _settings, fail=_FAIL),
        call(MessageCode.GCS24a, _settings, fail=_FAIL),
        call(MessageCode.GCS25a, _settings, fail=_FAIL),
        call(MessageCode.GCS24, _settings, fail=_FAIL),
        call(MessageCode.GCS25, _settings, fail=_FAIL),
        call(MessageCode.CS11, _clear_event_log),
        call(MessageCode.GCS01a, _FUTURE_DATEABLE["tariff"], fail=_FAIL_DATED),
        call(MessageCode.GCS01b, _FUTURE_DATEABLE["tariff"], fail=_FAIL_DATED),
        call(MessageCode.GCS05, _FUTURE_DATEABLE["prepayment"], fail=_FAIL_DATED),
        call(MessageCode.GCS20, _event_configuration),
        call(MessageCode.GCS20r, _event_configuration),
        call(MessageCode.GCS31, _start_network_log),
        call(MessageCode.GCS02, _FUTURE_DATEABLE["payment_mode"]),
        call(MessageCode.GCS03, _FUTURE_DATEABLE["payment_mode"]),
        call(MessageCode.GCS40c, _credit_adjustment, fail=_FAIL),
        call(MessageCode.GCS40d, _credit_adjustment, fail=_FAIL),
        call(MessageCode.GCS04, _settings, fail=_FAIL),
        call(MessageCode.GCS09, _settings),
        call(MessageCode.GCS23, _settings),
        call(MessageCode.GCS41, _settings),
        call(MessageCode.GCS36, _settings),
        *(call(MessageCode[n], _read, fail=_FAIL_READ) for n in ("GCS18", "GCS15b", "GCS15c", "GCS15e", "GCS21d", "GCS21k", "GCS13b", "GCS13c", "GCS21a", "GCS21b", "GCS21e", "GCS21j", "GCS46",
                                                "GCS61")),
        call(MessageCode.CS10a, _event_log),
        read(MessageCode.CS07),
        join(MessageCode.CS03B),
        unjoin(MessageCode.CS04B),
        call(MessageCode.CS06, activate_firmware, dated=True),  # firmware (README "Firmware")
    )
    FUTURE_ACTIONS = MappingProxyType({**GbcsDevice.FUTURE_ACTIONS, GBZ_ACTION: _fire_gbz})
    RECEIPT_FORM = "gbz"  # FDRA-ZigBee 0x00CF
    OTA_FETCH_ON_WAKE = True

    def __init__(self, eui: bytes | str, *, clock, credentials, trust, nvm=None, chf_eui: bytes | str | None = None,
                 install_code: bytes | None = None, prepayment_key=None, prepayment_supplier: bytes | None = None,
                 wake_interval: float = WAKE_INTERVAL, payment_mode: str = "prepayment", credit_pence: float = 1000.0,
                 emergency_credit_pence: float = 500.0, price_pence_per_kwh: float = 6.0,
                 standing_charge_pence: float = 30.0, battery_percent: float = 100.0, seed: int = 1,
                 uncontrolled_flow_lph: float = 6000.0, tamper_closes_valve: bool = True,
                 utrn_cache_size: int = DEFAULT_CACHE_SIZE, ota_blocks_per_wake: int = OTA_BLOCKS_PER_WAKE,
                 future_dated: str = "clock", max_flow_lph: float = MAX_FLOW_LPH, wake_phase: float = 0.0,
                 utrn_lockout_attempts: int = UTRN_LOCKOUT_ATTEMPTS, utrn_lockout_seconds: float = UTRN_LOCKOUT_SECONDS,
                 profile_storage: str = "stored", **kw: Any) -> None:
        super().__init__(eui, clock=clock, credentials=credentials, trust=trust, nvm=nvm, **kw)
        if payment_mode not in ("credit", "prepayment"):
            raise ValueError("payment_mode is 'credit' or 'prepayment'")
        if future_dated not in FUTURE_DATED_MODES:
            raise ValueError(f"future_dated is one of {', '.join(FUTURE_DATED_MODES)}")
        self.future_dated = future_dated
        if int(utrn_lockout_attempts) < 0 or float(utrn_lockout_seconds) < 0:
            raise ValueError("utrn_lockout_attempts and utrn_lockout_seconds are >= 0")
        self.utrn_lockout_attempts, self.utrn_lockout_seconds = int(utrn_lockout_attempts), float(utrn_lockout_seconds)
        self.max_flow_lph = float(max_flow_lph)
        self._failed_wakes = 0  # wakes in a row that did not reach the CHF (0x8F29)
        self._searches_failed = False
        self._power_lost = False
        self.chf_eui = None if chf_eui is None else parse_eui(chf_eui)
        self.install_code = install_code
        self.prepayment_key = prepayment_key
        self._prepayment_supplier = None if prepayment_supplier is None else parse_eui(prepayment_supplier)
        self.wake_interval = float(wake_interval)
        if not 0 <= wake_phase < 1:
            raise ValueError("wake_phase is 0 .. 1 (a fraction of wake_interval)")
        self.wake_phase = wake_phase  # where in each interval it wakes (fleets spread their GSMEs) [I]
        self.ota_blocks_per_wake = int(ota_blocks_per_wake)
        self.utrn_cache_size = utrn_cache_size
        self.model = _litres_model(seed)
        self.uncontrolled_flow_lph = uncontrolled_flow_lph
        self.tamper_closes_valve = tamper_closes_valve
        self._factory = {"mode": payment_mode, "credit": float(credit_pence), "ec": float(emergency_credit_pence),
                         "price": float(price_pence_per_kwh), "standing": float(standing_charge_pence),
                         "battery": float(battery_percent)}
        if profile_storage not in PROFILE_STORAGE:
            raise ValueError(f"profile_storage is one of {', '.join(PROFILE_STORAGE)}")
        self.derived_profile = profile_storage == "derived"
        self.data = GasData(self.nvm, litres=self.litres_series if self.derived_profile else None,
                            ledger=ReplayLedger() if self.derived_profile else None)
        self.joined_devices = DeviceLog(self, namespace="device_log", capacity=DEVICE_LOG_CAPACITY)
        self._alerts: list[tuple[int, dict]] = []
        self._pending_alerts: list[tuple[int, dict]] = []  # raised while asleep: sent next wake
        self._command: Message | None = None
        self.han_port = None
        self.han_dispatch: ClusterDispatch | None = None
        self.tunnel: TunnelClient | None = None
        self.zcl: ZclClient | None = None
        self._wake_lock: asyncio.Lock | None = None
        self.awake = False
        self.mode = "normal"  # normal | asleep | awake (faults)
        self.gone_until = 0.0
        self.wakes = 0
        self.pushes = 0
        self._accepted_at_push = -1

    # ======================================================================= future-dated
    def holds_future_dated(self, due: float) -> bool:
        """`future_dated = "wake"`: instructions wait for the first wake at or after their time."""
        return self.future_dated == "wake" and (not self.awake or due > self.device_now() + 1e-3)

    def after_future_dated(self) -> None:
        """`future_dated = "clock"`: the meter's clock ran an instruction; it wakes to send the FDA
        and push the new state to the GPF."""
        if self.future_dated == "clock" and self.state == "on":
            self.spawn(self.wake("future_dated"))

    def pending_future_dated(self) -> dict[str, dict]:
        """Held future-dated instructions by key (`gbz:FAMILY:CLUSTER:COMMAND`, or CS06 / CS02's)."""
        return self.future.pending()

    # ======================================================================= state
    def device_now(self) -> float:
        return self.clock.now() + float(self.nvm.get(NS, "clock_offset", 0.0) or 0.0)

    def dated(self, status: int) -> bytes:
        return datetime_bytes(self.device_now())[:-1] + bytes((status,))

    def _ensure_state(self) -> None:
        if self.nvm.get(NS, "metering") is not None:
            return
        f = self._factory
        now = self.device_now()
        last = math.floor(now / HALF_HOUR) * HALF_HOUR
        with self.nvm.transaction():
            self.nvm.put(NS, "registers", {"volume_l": 0, "tier_l": [0] * 4, "block_l": [0] * 4, "day_start_l": 0,
                                           "previous_day_l": 0})
            self.nvm.put(NS, "metering", {"last_period": last, "acc_l": 0.0, "acc_t": now})
            self.nvm.put(NS, "supply", {"state": ENABLED, "cause": None})
            self.nvm.put(NS, "prepayment", {"mode": f["mode"], "credit": f["credit"], "ec_limit": f["ec"],
                                            "ec_remaining": f["ec"], "ec_active": False, "ec_threshold": f["ec"],
                                            "debt": 0.0, "total_added": 0.0})
            self.nvm.put(NS, "gas", {"cv": CV_DEFAULT, "cf": CF_DEFAULT, "battery": f["battery"], "low_battery": LOW_BATTERY,
                                     "tamper": False, "locked": False, "flow_lph": None, "price": f["price"],
                                     "standing": f["standing"], "mprn": b""})
            self.nvm.put(NS, "sync", {"pushed_to": last, "daily_pushed_to": 0, "last_push": None})

    async def on_boot(self) -> None:
        if self._power_lost:  # `fault power off` then on: reported at the first wake [I]
            self._power_lost = False
            self._pending_alerts.append((AlertCode.GSME_POWER_SUPPLY_LOSS, {}))
        self._ensure_state()
        self.joined_devices.migrate()
        self._wake_lock = asyncio.Lock()
        self._catch_up(self.device_now())
        self.every(self.wake_interval, self._on_wake_timer, align=True, offset=self.wake_phase * self.wake_interval)

    def on_power_off(self) -> None:
        self.data.forget()
        self._alerts.clear()
        self._wake_lock = None
        self.awake = False

    @property
    def supply_state(self) -> str:
        """The valve: enabled (open), disabled (closed) or armed."""
        return self._supply_state()

    # -- hooks `meter.prepayment` needs --
    def _supply_state(self) -> str:
        return (self.nvm.peek(NS, "supply") or {}).get("state", ENABLED)

    def _set_supply(self, state: str, cause: str | None = None, at: float | None = None) -> None:
        before = self._supply_state()
        if (before == ENABLED) != (state == ENABLED) and (self.nvm.peek(NS, "gas") or {}).get("valve_stuck"):
            # a stuck valve does not move: supply connect (0x81BD) / disconnect (0x81C0) failure [I]
            code = AlertCode.SUPPLY_CONNECT_FAILURE if state == ENABLED else AlertCode.SUPPLY_DISCONNECT_FAILURE
            self.log_event("supply_failure", state=before, wanted=state, cause=cause)
            self._queue_alert(code)
            return
        self.nvm.put(NS, "supply", {"state": state, "cause": cause})
        self.log_event("supply", state=state, cause=cause)

    def _queue_alert(self, code: int | None, **kw: Any) -> None:
        if code is not None:
            self._alerts.append((code, kw))

    def _take_alerts(self) -> list[tuple[int, dict]]:
        alerts, self._alerts = self._alerts, []
        return alerts

    def _after_local(self, alerts: list[tuple[int, dict]], rearm: bool = False) -> None:
        self._pending_alerts.extend(alerts)  # a sleepy meter says it on its next wake

    def unit_price_pence(self, tier: int, block: int = 0) -> float:
        return unit_price(self.data.get("gas"), tier, block)

    def standing_charge_pence(self) -> float:
        return float(self.data.get("gas")["standing"])

    # ======================================================================= metering
    def _gas_kwh(self, litres: float) -> float:
        return gas_kwh(self.data.get("gas"), litres)

    def _litres(self, t0: float, t1: float) -> float:
        gas = self.nvm.peek(NS, "gas")
        if self._supply_state() != ENABLED:
            return 0.0
        if gas.get("flow_lph") is not None:
            return gas["flow_lph"] * (t1 - t0) / 3600.0
        kwh = self.model.energy_wh(t0, t1) / 1000.0
        return kwh * 3.6 / (gas["cv"] * gas["cf"]) * 1000.0

    def _catch_up(self, now: float) -> int:
        m = self.nvm.get(NS, "metering")
        newest = math.floor(now / HALF_HOUR + 1e-9) * HALF_HOUR
        return close_half_hours(self.nvm, self._close_period, m["last_period"] + HALF_HOUR, newest)

    def litres_series(self, cv: float, cf: float):
        """This meter's model as `litres_series` (what its derived profile sums)."""
        return litres_series(self.model, cv, cf)

    def _close_period(self, end: float) -> None:
        m = self.nvm.get(NS, "metering")
        reg = self.nvm.get(NS, "registers")
        gas = self.nvm.peek(NS, "gas")
        # the model's own half hour (derived profile): nothing else accounted gas in it
        clean = m["acc_t"] == end - HALF_HOUR and self._supply_state() == ENABLED and gas.get("flow_lph") is None
        m["acc_l"] += self._litres(max(m["acc_t"], end - HALF_HOUR), end)
        litres = int(math.floor(m["acc_l"] + 0.5))
        m["acc_l"] -= litres
        m["acc_t"] = end
        m["last_period"] = end
        reg["volume_l"] += litres
        self._accrue(reg, litres, end)
        if self.derived_profile:
            self.data.close_interval(int(end), litres, clean, m["acc_l"], (gas["cv"], gas["cf"]))
        else:
            self.data.put_interval(int(end), litres)
        if int(end) % DAY == 0:
            reg["previous_day_l"] = reg["volume_l"] - reg["day_start_l"]
            reg["day_start_l"] = reg["volume_l"]
            entry = daily_read(reg, int(end), self._prepay()["credit"])
            if not self.derived_profile:
                self.data.put_daily(entry)
            self._charge_standing(end)
            self.data.prune(int(end) // DAY)
            if self._billing_date(int(end)):
                self.data.take_billing_snapshot(int(end), BILLING_CALENDAR_CAUSE)
                reg["block_kwh"] = 0.0  # a new block period [I: the billing period]
            if self.derived_profile:  # replayed from the profile where it can be (GasData.close_daily)
                self.nvm.put(NS, "metering", m)  # the replay reads the profile up to this close
                p = self._prepay()
                self.data.close_daily(entry, reg.get("block_kwh", 0.0), gas, None if p["mode"] == "credit" else p)
        self.nvm.put(NS, "registers", reg)
        self.nvm.put(NS, "metering", m)

    def _accrue(self, reg: dict, litres: int, end: float) -> None:
        """The half-hour's litres into the tier and block registers (`gas_data.accrue`, which the
        daily read replay runs too), and charged, by the tariff."""
        _charge_parts(self, accrue(self.data.get("gas"), reg, litres, end), end)

    def _billing_date(self, midnight: int) -> bool:
        return billing_date(self.nvm.get(NS, "gas") or {}, midnight)

    def _add_credit(self, pence: int, origin: str) -> None:
        super()._add_credit(pence, origin)
        self.data.take_billing_snapshot(int(self.device_now()), PREPAYMENT_CREDIT_CAUSE)  # GCS15e

    def registers(self) -> dict:
        return dict(self.nvm.get(NS, "registers"))

    # ======================================================================= prepayment
    def _activate_ec(self) -> bool:
        p = self._prepay()
        if p.get("ec_active") or p["credit"] > p.get("ec_threshold", 0):
            return False
        p["ec_active"] = True
        p["ec_remaining"] = p["ec_limit"]
        self.nvm.put(NS, "prepayment", p)
        if self._supply_state() == DISABLED and (self.nvm.get(NS, "supply") or {}).get("cause") == "credit":
            self._set_supply(ARMED, cause="credit")
        self.log_event("emergency_credit_activated")
        return True

    def _debit(self, pence: float, at: float) -> None:
        before = dict(self._prepay())
        super()._debit(pence, at)  # closes the valve when credit and emergency credit are gone (0x8F0F)
        self._credit_alerts(before)

    def _credit_alerts(self, before: dict) -> None:
        """The prepayment alerts of falling credit (prepayment mode), each when its threshold is
        crossed: combined credit below the low credit warning level (GCS05; 0x810D), credit at or
        below the emergency credit threshold with emergency credit not yet taken (0x8119: the
        consumer may activate it), emergency credit used up (0x81AA) [I: thresholds as ZSE's
        Prepayment attributes; the GSME's own reading of them]."""
        p = self._prepay()
        if p.get("mode") != "prepayment":
            return

        def combined(q: dict) -> float:
            return q["credit"] + (max(0.0, q["ec_remaining"]) if q.get("ec_active") else 0.0)

        low = float(p.get("low_credit", 500))
        if combined(before) >= low > combined(p):
            self.log_event(int(AlertCode.COMBINED_CREDIT_BELOW_LOW_CREDIT_THRESHOLD), credit=round(combined(p) / 100, 5))
            self._queue_alert(AlertCode.COMBINED_CREDIT_BELOW_LOW_CREDIT_THRESHOLD)
        threshold = float(p.get("ec_threshold", 0))
        if not p.get("ec_active") and p["ec_remaining"] > 0 and before["credit"] > threshold >= p["credit"]:
            self._queue_alert(AlertCode.EMERGENCY_CREDIT_HAS_BECOME_AVAILABLE)
        if p.get("ec_active") and before["ec_remaining"] > 0 >= p["ec_remaining"]:
            self.log_event(int(AlertCode.EMERGENCY_CREDIT_EXHAUSTED))
            self._queue_alert(AlertCode.EMERGENCY_CREDIT_EXHAUSTED)

    DEBT_TOTAL = True  # AccumulatedDebt (`prepayment["debt"]`) is the sum of the three debts

    def time_debt_rates_pence(self) -> dict[str, float]:
        """Debts 1 and 2 as GCS04 (ChangeDebt) set their recovery (`gas_data.debt_rate_per_day`)."""
        recovery = self._prepay().get("debt_recovery") or {}
        return {k: debt_rate_per_day(recovery[k]) for k in DEBTS[:2] if k in recovery}

    def payment_debt_share(self) -> float:
        """Debt 3's share of each top-up as GCS04 set it (payment-based recovery)."""
        r = (self._prepay().get("debt_recovery") or {}).get(DEBTS[2]) or {}
        return float(r.get("share", 0.0)) if r.get("method") == DEBT_PAYMENT_BASED else 0.0

    def top_up_limits(self) -> tuple[float | None, float | None]:
        """GCS05 (SetMaximumCreditLimit): maximum credit per top-up and maximum balance (pence;
        factory £250 each [I])."""
        p = self._prepay()
        return float(p.get("max_top_up", 25000)), float(p.get("max_credit", 25000))

    def _fault_credit(self, args: list[str], options: dict) -> dict:
        """Set the meter balance (pounds): the alerts of crossing the thresholds on the way down
        (`_credit_alerts`), the valve closed at no credit (0x8F0F) or armed again above it, all
        said at the next wake."""
        arity("credit", args, 1, "AMOUNT (pounds)")
        pounds = number(args[0], "AMOUNT", low=-1e7, high=1e7)
        self._alerts.clear()
        with self.nvm.transaction():
            p = self._prepay()
            before = dict(p)
            p["credit"] = round(pounds * 100, 5)
            self.nvm.put(NS, "prepayment", p)
            if p.get("mode") == "prepayment":
                self._credit_alerts(before)
                usable = p.get("ec_active") and p["ec_remaining"] > 0
                cause = (self.nvm.get(NS, "supply") or {}).get("cause")
                if p["credit"] <= 0 and not usable and self._supply_state() == ENABLED:
                    self._set_supply(DISABLED, cause="credit")
                    self._queue_alert(AlertCode.CREDIT_BELOW_DISABLEMENT_THRESHOLD)
                elif p["credit"] > 0 and self._supply_state() == DISABLED and cause == "credit":
                    self._set_supply(ARMED, cause="credit")  # as after a top-up
        self._after_local(self._take_alerts())
        return {"fault": "credit", "credit": pounds, "mode": p.get("mode"), "supply": self._supply_state(),
                "alerts": [f"0x{c:04X}" for c, _kw in self._pending_alerts]}

    def apply_top_up(self, utrn_digits: str) -> UtrnCheck:
        """A UTRN relayed by the PPMID (PCS01) or typed on the meter: credit added locally (alert
        0x810E) or the rejection alert (0x8F51 / 0x8F63 / 0x8F64). Hook for the PPMID's PCS01."""
        return self.enter_utrn(utrn_digits)

    def activate_emergency_credit(self) -> bool:
        """Emergency credit asked locally (PPMID PCS02, or the meter's button). Hook for PCS02."""
        self._check_alive()
        with self.nvm.transaction():
            return self._activate_ec()

    # ======================================================================= HAN
    def attach_han(self, transport, *, endpoint: int = 1) -> ClusterDispatch:
        dispatch = ClusterDispatch()
        port = transport.attach(self.eui, dispatch)
        host = TunnelHost(port, endpoint=endpoint, clock=self.clock, on_message=self._on_tunnel_message)
        dispatch.add(TUNNELING_CLUSTER, host.handle)
        self.han_port, self.han_dispatch, self._tunnel_host = port, dispatch, host
        if self.chf_eui is not None:
            self.tunnel = host.connect(self.chf_eui, sleepy=True, response_timeout=10.0)
            self.send_gbcs = self.tunnel.send_gbcs
        self.zcl = ZclClient(port, dispatch, endpoint=endpoint, clock=self.clock, timeout=5.0, retries=2)
        return dispatch

    def _on_tunnel_message(self, peer: bytes, message: bytes) -> None:
        if peer == self.chf_eui and self.awake:
            self.post(message)

    # ======================================================================= waking
    def _on_wake_timer(self, _t: float) -> None:
        if self.mode == "asleep" or self.clock.now() < self.gone_until:
            return
        self.spawn(self.wake("timer"))

    def press(self) -> dict:
        """The consumer's / installer's button: an armed valve opens, and the meter wakes."""
        self._check_alive()
        opened = False
        if self._supply_state() == ARMED and not self.data.get("gas").get("locked"):
            with self.nvm.transaction():
                self._set_supply(ENABLED, cause="button")
            opened = True
        self.spawn(self.wake("button"))
        return {"woken": True, "valve_opened": opened}

    def press_button(self) -> dict:
        """`gbhub ctl press EUI`."""
        return self.press()

    async def wake(self, reason: str = "timer") -> dict:
        """One wake: catch up, push to the GPF, pull and execute queued messages."""
        lock = self._wake_lock
        if lock is None or lock.locked():
            return {"woken": False}
        async with lock:
            self.awake = True
            self.wakes += 1
            fetched = 0
            try:
                with self.nvm.transaction():
                    gas = self.nvm.get(NS, "gas")
                    before = gas["battery"]
                    gas["battery"] = max(0.0, before - BATTERY_PER_WAKE)
                    self.nvm.put(NS, "gas", gas)
                if before >= gas["low_battery"] > gas["battery"]:
                    self._pending_alerts.append((AlertCode.LOW_BATTERY_CAPACITY, {}))
                self._catch_up(self.device_now())
                if self.future_dated == "wake":
                    self.future.run_due()
                if self.tunnel is None:
                    return {"woken": True}
                try:
                    await self._push()
                except (HanError, ZclError) as exc:  # pushed at the next wake; commands are still fetched
                    log.info("gsme %s: push to the GPF failed: %s", self.eui_hex, exc)
                    self.log_event("push_failed", reason=str(exc))
                alerts, self._pending_alerts = self._pending_alerts, []
                for code, kw in alerts:
                    await self.raise_alert(code, **kw)
                fetched = await self.tunnel.poll()
                self._failed_wakes = 0
                if self._searches_failed:  # it found the CHF again: the three failed searches are told
                    self._searches_failed = False
                    await self.raise_alert(AlertCode.THREE_LOST_GSME_SEARCHES_FAILED)
                await self.idle()
                await self._fetch_firmware()  # after the commands: they are never kept waiting by it
                if self._alerts or self._pending_alerts:  # raised by what it executed
                    alerts = self._take_alerts() + self._pending_alerts
                    self._pending_alerts = []
                    for code, kw in alerts:
                        await self.raise_alert(code, **kw)
            except (HanError, ZclError) as exc:
                log.info("gsme %s: wake (%s) cut short: %s", self.eui_hex, reason, exc)
                self.log_event("wake_failed", reason=str(exc))
                self._failed_wakes += 1
                if self._failed_wakes >= LOST_SEARCHES and not self._searches_failed:
                    self._searches_failed = True
                    self.log_event("lost_gsme_searches_failed", wakes=self._failed_wakes)
            finally:
                self.awake = self.mode == "awake"
            return {"woken": True, "fetched": fetched}

    async def _fetch_firmware(self) -> None:
        """Part of an image, when the GPF's notification flags say one waits (module doc)."""
        if self.ota_client is None or self.zcl is None:
            return
        try:
            flags = (await self.zcl.read_attributes(self.chf_eui, Cluster.METERING, (NOTIFICATION_FLAGS_ATTRIBUTE,))
                     ).get(NOTIFICATION_FLAGS_ATTRIBUTE, 0)
            if flags & NEW_OTA_FIRMWARE:
                result = await self.ota_client.fetch(max_blocks=self.ota_blocks_per_wake)
                log.info("gsme %s: firmware fetch %s", self.eui_hex, result)
        except (HanError, ZclError, NvmError) as exc:  # tried again next wake
            log.info("gsme %s: firmware fetch stopped: %s", self.eui_hex, exc)

    async def idle(self) -> None:
        """Let the inbox finish what the tunnel brought (responses go out before sleeping)."""
        for _ in range(1000):
            if self.inbox.empty() and not self._busy:
                return
            await asyncio.sleep(0)

    def _push_frames(self) -> list[tuple[bytes, dict]]:
        sync = self.data.get("sync")
        frames = []
        m = self.nvm.get(NS, "metering")
        start = int(sync["pushed_to"])
        end = int(m["last_period"])
        day0, day1 = (start // DAY), (max(end - 1, start) // DAY)
        days = list(range(day0, day1 + 1)) if end > start else []
        daily_from = int(sync.get("daily_pushed_to", 0)) or (int(m["last_period"]) // DAY - 800) * DAY
        daily, stretches = self.data.pushed_daily(daily_from, int(m["last_period"]))
        newest = max([e["t"] for e in daily] + [x[1] for x in (stretches or {}).get("stretches", ())], default=None)
        events = self.accepted != self._accepted_at_push or newest is not None
        chunks = [days[i:i + PUSH_CHUNK_DAYS] for i in range(0, len(days), PUSH_CHUNK_DAYS)] or [[]]
        for i, chunk in enumerate(chunks):
            body: dict[str, Any] = {"profile": {str(d): self.data.profile_day(d) for d in chunk}}
            last = i == len(chunks) - 1
            if last:
                state = self.data.state()
                state["gas"] = dict(state.get("gas") or {}, firmware=self.firmware_version.hex())
                body["state"] = state
                body["daily"] = daily
                if stretches:  # derived daily reads: the mirror replays them (`GasData.pushed_daily`)
                    body["stretches"] = stretches
                if events:  # what it executed, or once a day: the GPF's copy of its recent events
                    body["events"] = self.event_log()[-10:]
            body["t"] = self.device_now()
            mark = {"pushed_to": min(end, (chunk[-1] + 1) * DAY) if chunk else end}
            if last:
                mark["daily_pushed_to"] = newest if newest is not None else sync.get("daily_pushed_to", 0)
            frames.append((json.dumps(body, separators=(",", ":"), default=_bytes_hex).encode(), mark))
        return frames

    def push_in_process(self, apply: Any) -> None:
        """Derived commissioning (test fleets, `tools.premises`): hand what the first push after
        the join would carry to `apply(data) -> bool` (the GPF's) directly, no HAN frames."""
        for data, mark in self._push_frames():
            if not apply(data):
                return
            sync = self.data.get("sync")
            sync.update(mark, last_push=self.device_now())
            self.data.put("sync", sync)
        self._accepted_at_push = self.accepted

    async def _push(self) -> None:
        assert self.zcl is not None and self.chf_eui is not None
        # what the GPF is told reaches the disk with or before what the GPF stores of it (its closes
        # are deferred writes; one store per rig or fleet worker writes in order): no wait for the
        # fsync, which under a simulated clock would hold the wake across the next one
        self.nvm.settle()
        for data, mark in self._push_frames():
            await self.zcl.request(self.chf_eui, Cluster.METERING,
                                   WriteAttributes((AttributeValue(MIRROR_ATTRIBUTE, ZclType.LONG_OCTET_STRING, data),)))
            sync = self.data.get("sync")
            sync.update(mark, last_push=self.device_now())
            self.data.put("sync", sync)
            self.pushes += 1
        self._accepted_at_push = self.accepted

    # ======================================================================= alerts
    def alert_content(self, alert_code: int, counter: int, elements: tuple = ()) -> bytes:
        return GbzAlert.build(alert_code, max(0, int(self.device_now()) - 946684800)).encode()

    async def raise_alert(self, alert_code: int, **kw: Any) -> bytes | None:
        kw.setdefault("critical", alert_code & 0xFF00 == 0x8F00)
        return await super().raise_alert(alert_code, **kw)

    def append_log(self, name: str, code: Any, **detail: Any) -> dict:
        detail.setdefault("time", self.device_now())
        return super().append_log(name, code, **detail)

    def in_device_log(self, eui: bytes | str) -> bool:
        eui = parse_eui(eui)
        return any(e.entity_id == eui for e in self.joined_devices.entries())

    # ======================================================================= faults
    # (declared in FAULT_KINDS below, `firmware.faults`; `gbhub ctl fault EUI KIND [ARGS...]`)
    def _fault_power(self, args: list[str], options: dict) -> dict:
        if len(args) != 1 or args[0] not in ("off", "on"):
            raise FaultError("power takes off or on")
        if args[0] == "off" and self.state == "on":
            self._power_lost = True
        loop = asyncio.get_running_loop()
        task = loop.create_task(self.power_off() if args[0] == "off" else self._power_on())
        _BACKGROUND.add(task)
        task.add_done_callback(_BACKGROUND.discard)
        return {"fault": "power", "state": args[0]}

    def _fault_battery(self, args: list[str], options: dict) -> dict:
        pct = _number(args, "battery takes PERCENT", 0, 100)
        with self.nvm.transaction():
            gas = self.nvm.get(NS, "gas")
            before = gas["battery"]
            gas["battery"] = pct
            self.nvm.put(NS, "gas", gas)
        if pct < gas["low_battery"]:
            self._pending_alerts.append((AlertCode.LOW_BATTERY_CAPACITY, {}))
        elif pct > before:  # a level that rises is a new battery [I]
            self.log_event("battery_reset", percent=pct)
            self._pending_alerts.append((AlertCode.REMAINING_BATTERY_CAPACITY_RESET, {}))
        return {"fault": "battery", "percent": pct}

    def _fault_sensor(self, kind: str, args: list[str], options: dict) -> dict:
        """A two-state sensor (`SENSORS`): its state in the "gas" state, its alert at the next
        wake, and a wake now for a tamper [I]."""
        key, states = SENSORS[kind]
        if len(args) > 1 or (args[0] if args else "") not in states:
            raise FaultError(f"{kind} takes {' | '.join(a or '(nothing)' for a in states)}")
        value, code = states[args[0] if args else ""]
        with self.nvm.transaction():
            gas = self.nvm.get(NS, "gas")
            gas[key] = value
            self.nvm.put(NS, "gas", gas)
            if code & 0xFF00 == 0x8F00:  # unauthorised physical access: the security log too
                self.log_security(kind, alert=f"{code:04X}")
            else:
                self.log_event(kind, state=value)
        self._pending_alerts.append((code, {}))
        self.spawn(self.wake("alert"))
        return {"fault": kind, "state": value, "alert": f"0x{code:04X}"}

    def _fault_integrity(self, args: list[str], options: dict) -> dict:
        """A meter integrity issue: warning 0x81A0 in its own message code (0x00F2) carrying the
        reason [S FACTS §2; GP common.ts]; kept in the "gas" state until the next one [I]."""
        usage = "integrity takes a reason: " + ", ".join(INTEGRITY_REASONS) + " (or its number)"
        arity("integrity", args, 1, "REASON")
        text = args[0].lower()
        reason = INTEGRITY_REASONS.get(text)
        if reason is None:
            if not text.isdigit() or int(text) > 0xFFFF:
                raise FaultError(usage)
            reason = int(text)
        now = self.device_now()
        with self.nvm.transaction():
            gas = self.nvm.get(NS, "gas")
            gas["integrity"] = {"reason": reason, "time": now}
            self.nvm.put(NS, "gas", gas)
            self.log_event("integrity_issue", reason=reason)
        content = GbzAlert.build(AlertCode.SMART_METER_INTEGRITY_ISSUE_WARNING, max(0, int(now) - ZCL_EPOCH),
                                 MeterIntegrityIssue(reason)).encode()
        self._pending_alerts.append((AlertCode.SMART_METER_INTEGRITY_ISSUE_WARNING,
                                     {"message_code": MessageCode.MeterIntegrityWarning_GSME, "content": content}))
        self.spawn(self.wake("alert"))
        return {"fault": "integrity", "reason": reason}

    def _fault_valve(self, args: list[str], options: dict) -> dict:
        if len(args) != 1 or args[0] not in ("stuck", "free"):
            raise FaultError("valve takes stuck or free")
        with self.nvm.transaction():
            gas = self.nvm.get(NS, "gas")
            gas["valve_stuck"] = args[0] == "stuck"
            self.nvm.put(NS, "gas", gas)
        return {"fault": "valve", "state": args[0]}

    def _fault_tamper(self, kind: str, args: list[str], options: dict) -> dict:
        arity(kind, args, 0, "")
        code = AlertCode.UNAUTHORISED_PHYSICAL_ACCESS_TAMPER_DETECT
        closed = False
        with self.nvm.transaction():
            gas = self.nvm.get(NS, "gas")
            gas["tamper"] = True
            if self.tamper_closes_valve:
                gas["locked"] = True
                if self._supply_state() != DISABLED:
                    self._set_supply(DISABLED, cause="tamper")
                    closed = self._supply_state() == DISABLED
            self.nvm.put(NS, "gas", gas)
            self.log_security(kind, alert=f"{code:04X}")
        self._pending_alerts.append((code, {}))
        if closed:
            self._pending_alerts.append((AlertCode.SUPPLY_DISABLED_THEN_LOCKED_SUPPLY_TAMPER_STATE_CAUSE, {}))
        self.spawn(self.wake("alert"))  # a tamper wakes the meter [I]
        return {"fault": kind, "alert": f"0x{code:04X}", "valve_closed": closed}

    def _fault_flow(self, args: list[str], options: dict) -> dict:
        lph = _number(args, "flow takes LITRES_PER_HOUR", 0, 1e7)
        closed = False
        with self.nvm.transaction():
            self._close_period_partial()
            gas = self.nvm.get(NS, "gas")
            gas["flow_lph"] = lph or None
            excess = lph > self.max_flow_lph
            if excess and not gas.get("excess_flow"):  # beyond the meter's capacity [I]
                self._pending_alerts.append((AlertCode.EXCESS_GAS_FLOW_BEYOND_METER_CAPACITY, {}))
            gas["excess_flow"] = excess
            self.nvm.put(NS, "gas", gas)
            if lph > self.uncontrolled_flow_lph and self._supply_state() == ENABLED:
                self._set_supply(ARMED, cause="flow")  # closed, then armed for the consumer [I]
                closed = self._supply_state() == ARMED
        if closed:
            self._pending_alerts.append((AlertCode.SUPPLY_DISABLED_THEN_ARMED_UNCONTROLLED_GAS_FLOW_RATE, {}))
        if closed or excess:
            self.spawn(self.wake("alert"))
        return {"fault": "flow", "litres_per_hour": lph, "valve_closed": closed, "excess": excess}

    def _fault_mode(self, kind: str, args: list[str], options: dict) -> dict:
        arity(kind, args, 0, "")
        self.mode = kind
        self.awake = kind == "awake"
        if kind == "awake":
            self.spawn(self._stay_awake())
        return {"fault": kind}

    def _fault_gone(self, args: list[str], options: dict) -> dict:
        seconds = _number(args, "gone takes SECONDS", 0, 1e9)
        self.gone_until = self.clock.now() + seconds
        return {"fault": "gone", "until": self.gone_until}

    FAULT_KINDS = fault_kinds(
        fault("battery", lambda d, a, o: d._fault_battery(a, o), "PERCENT",
              "battery level; below the low battery level: low battery 0x8F1F at the next wake"),
        fault("tamper", lambda d, a, o: d._fault_tamper("tamper", a, o), "",
              "tamper detected (0x8F3F); closes and locks the valve when `tamper_closes_valve`"),
        fault("tilt", lambda d, a, o: d._fault_sensor("tilt", a, o), "[end]", "tilt tamper (0x81C3); `end`: it ended (0x81C2)"),
        fault("battery-cover", lambda d, a, o: d._fault_sensor("battery-cover", a, o), "removed|closed",
              "battery cover removed (0x8F73) or closed (0x81A1)"),
        fault("magnet", lambda d, a, o: d._fault_sensor("magnet", a, o), "on|off",
              "strong magnetic field (0x8F75) or its removal (0x81BC)"),
        fault("flow-sensor", lambda d, a, o: d._fault_sensor("flow-sensor", a, o), "air|reverse|ok",
              "the flow sensor detects air (0x81B5) or reverse flow (0x81B6); `ok`: neither"),
        fault("integrity", lambda d, a, o: d._fault_integrity(a, o), "REASON",
              "meter integrity issue warning 0x81A0 (message code 0x00F2) with REASON: nvm, program-execution, "
              "program-storage, ram, hardware-reset, watchdog, firmware, measurement, unspecified, other, or a number"),
        fault("valve", lambda d, a, o: d._fault_valve(a, o), "stuck|free",
              "a stuck valve does not move: closing fails with 0x81C0, opening with 0x81BD"),
        fault("flow", lambda d, a, o: d._fault_flow(a, o), "LITRES_PER_HOUR",
              "gas flow; above the uncontrolled flow rate the valve closes then arms (0x81BF)"),
        fault("power", lambda d, a, o: d._fault_power(a, o), "off|on", "the meter's power: off, or on again (boots)",
              while_off=True),
        fault("credit", lambda d, a, o: d._fault_credit(a, o), "AMOUNT",
              "the meter balance in pounds (prepayment mode): low credit (0x810D), emergency credit available "
              "(0x8119) or exhausted (0x81AA), the valve closed at no credit (0x8F0F); said at the next wake"),
        fault("asleep", lambda d, a, o: d._fault_mode("asleep", a, o), "", "the meter stops waking (until `awake`)"),
        fault("awake", lambda d, a, o: d._fault_mode("awake", a, o), "", "the meter stays awake, polling"),
        fault("gone", lambda d, a, o: d._fault_gone(a, o), "SECONDS", "the meter is off the HAN for SECONDS"),
        base=GbcsDevice.FAULT_KINDS,
    )

    def _close_period_partial(self) -> None:
        m = self.nvm.get(NS, "metering")
        now = self.device_now()
        m["acc_l"] += self._litres(m["acc_t"], now)
        m["acc_t"] = now
        self.nvm.put(NS, "metering", m)

    async def _power_on(self) -> None:
        await self.start()

    async def _stay_awake(self) -> None:
        while self.mode == "awake" and self.state == "on":
            await self.wake("awake")
            self.awake = True
            await self.clock.sleep(AWAKE_POLL)


# two-state sensors (`fault KIND [STATE]`): fault kind -> ("gas" state key, {argument: (value, alert)})
# [I: the SMETS2 GSME's tamper and flow sensors, alert codes from GBCS Appendix B]
SENSORS = {
    "tilt": ("tilt", {"": (True, AlertCode.TILT_TAMPER), "end": (False, AlertCode.TILT_TAMPER_ENDED)}),
    "battery-cover": ("battery_cover", {
        "removed": ("removed", AlertCode.UNAUTHORISED_PHYSICAL_ACCESS_BATTERY_COVER_REMOVED),
        "closed": ("closed", AlertCode.BATTERY_COVER_CLOSED)}),
    "magnet": ("magnet", {"on": (True, AlertCode.UNAUTHORISED_PHYSICAL_ACCESS_STRONG_MAGNETIC_FIELD),
                          "off": (False, AlertCode.STRONG_MAGNETIC_FIELD_REMOVED)}),
    "flow-sensor": ("flow_sensor", {"air": ("air", AlertCode.FLOW_SENSOR_DETECTS_AIR_IN_GAS_FLOW),
                                    "reverse": ("reverse", AlertCode.FLOW_SENSOR_DETECTS_REVERSE_FLOW_OF_GAS)}),
}
# meter integrity issue reasons by fault argument [S GP common.ts via gbcs.gbz.METER_INTEGRITY_ISSUES]
INTEGRITY_REASONS = {"other": 0, "nvm": 1, "program-execution": 2, "program-storage": 3, "ram": 4,
                     "hardware-reset": 5, "watchdog": 6, "firmware": 7, "measurement": 8, "unspecified": 9}

_BACKGROUND: set = set()


def _charge_parts(meter: Any, parts: list[tuple[int, int, float]], end: float) -> None:
    """Charge a half hour's (tier, block, kWh) parts (`gas_data.accrue`): the close's and the
    replay's (`ReplayLedger`)."""
    for tier, block, part in parts:
        meter._charge_energy(int(part * 1000), tier, end, block=block)


class _Scratch:
    """The one NVM value a `ReplayLedger` charges: the prepayment state it was handed."""

    __slots__ = ("value",)

    def get(self, _ns: str, _key: str, default: Any = None) -> Any:
        return self.value

    peek = get

    def put(self, _ns: str, _key: str, value: Any) -> None:
        self.value = value


class ReplayLedger:
    """The GSME's own prepayment charges run on a scratch prepayment state: what the derived daily
    read replay charges (`GasData(ledger=...)`, `GasData.close_daily`). The functions are the
    meter's (`Prepayment._charge_energy`, `_charge_standing`, `_recover_time_debts`, `_debit` with
    its emergency credit, `_collect_debt`), not copies. What they do beside the balance is the
    meter's alone and not replayed: alerts, events, the valve (its effect on the gas is in the
    profile the replay reads)."""

    DEBT_TOTAL = Gsme.DEBT_TOTAL
    emergency_credit_activation = Gsme.emergency_credit_activation
    _prepay = Prepayment._prepay
    _ec_usable = Prepayment._ec_usable
    _charge_energy = Prepayment._charge_energy
    _charge_standing = Prepayment._charge_standing
    _recover_time_debts = Prepayment._recover_time_debts
    _collect_debt = Prepayment._collect_debt
    _debit = Prepayment._debit
    time_debt_rates_pence = Gsme.time_debt_rates_pence

    def __init__(self) -> None:
        self.nvm = _Scratch()
        self.gas: dict = {}

    def energy(self, p: dict, gas: dict, parts: list[tuple[int, int, float]], end: float) -> None:
        """The half hour ending at `end`'s charges, into `p`."""
        self.nvm.value, self.gas = p, gas
        _charge_parts(self, parts, end)

    def midnight(self, p: dict, gas: dict, end: float) -> None:
        """The midnight `end`'s charges (standing charge, time-based debt recovery), into `p`."""
        self.nvm.value, self.gas = p, gas
        self._charge_standing(end)

    def unit_price_pence(self, tier: int, block: int = 0) -> float:
        return unit_price(self.gas, tier, block)

    def standing_charge_pence(self) -> float:
        return float(self.gas["standing"])

    def _supply_state(self) -> None:
        return None  # not the valve's: `_debit` never moves it here

    def log_event(self, *_a: Any, **_kw: Any) -> None:
        pass

    def _queue_alert(self, *_a: Any, **_kw: Any) -> None:
        pass


def _number(args: list[str], usage: str, lo: float, hi: float) -> float:
    if len(args) != 1:
        raise FaultError(usage)
    try:
        v = float(args[0])
    except ValueError:
        raise FaultError(usage) from None
    if not math.isfinite(v) or not lo <= v <= hi:
        raise FaultError(f"{usage} ({lo:g}..{hi:g})")
    return v


def _bytes_hex(o: Any) -> Any:
    if isinstance(o, (bytes, bytearray)):
        return {"hex": bytes(o).hex()}
    raise TypeError(type(o).__name__)


__all__ = ["Gsme", "WAKE_INTERVAL"]
