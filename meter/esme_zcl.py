"""The ESME's state as ZigBee Smart Energy clusters (Basic, Metering, Price, Prepayment, Messaging,
Events): what the ZCL server an IHD or PPMID reads from the meter serves (`han.zcl_server`). Mixed
into `meter.esme.Esme` (`EsmeZcl`); it reads the ESME's registers, tariff and prepayment state.
ZCL cluster and attribute ids are the ZSE spec's numbers.

Events shown on HAN devices (ECS25a1) are answered to GetEventLog as the General Event Log (log
id 3) with the GBCS event code as the ZSE event id, newest first, at most `HAN_EVENTS` of them [I:
ZSE leaves the event ids of a log to the application; GBCS's mapping is not in the sources].

Change of tenancy (ECS12, SRV 3.2): HAN devices see no consumption from before the tenancy date:
the day and previous-day consumption attributes count only from the change of tenancy, and events
logged before it are not shown [I: GBCS restricts the HAN's access to the previous tenant's data;
the sources do not list the attributes, so every historical one that is served is restricted]."""
from __future__ import annotations

import math
from typing import Any, Callable

from gbcs.catalogue import DeviceType
from gbcs.obis import OBIS
from gbcs.usecases.ppmid import TopUpResult
from gbcs.zcl import Cluster, ClusterCommand, Status
from gbhub.firmware import cosem
from gbhub.firmware.clock import DAY

from .prepayment import top_up_result
from .esme_state import SUPPLY_ARMED, SUPPLY_DISABLED, SUPPLY_ENABLED, TOU_TIERS, clamp

ZCL_SUPPLY_STATUS = {SUPPLY_DISABLED: 0, SUPPLY_ARMED: 1, SUPPLY_ENABLED: 2}  # ZSE Metering SupplyStatus
HAN_EVENT_LOG = 3  # ZSE Log ID: General Event Log [I]
_ACCEPTED = {SUPPLY_DISABLED: TopUpResult.ACCEPTED_SUPPLY_DISABLED, SUPPLY_ARMED: TopUpResult.ACCEPTED_SUPPLY_ARMED,
             SUPPLY_ENABLED: TopUpResult.ACCEPTED_SUPPLY_ENABLED}


class EsmeZcl:
    """The ZCL projection part of `Esme` (module doc)."""

    def zcl_attributes(self) -> dict[int, Callable[[], dict[int, Any]]]:
        """Live ZCL attribute values per cluster (Basic, Metering, Price, Prepayment, Messaging),
        for the ZCL server an IHD/PPMID reads. Units: Wh with Divisor 1000 (kWh), W for demand,
        pence for credit."""
        return {
            0x0000: self._zcl_basic,
            0x0702: self._zcl_metering,
            0x0700: self._zcl_price,
            0x0705: self._zcl_prepayment,
            0x0703: lambda: {},  # Messaging has commands only
            0x0709: lambda: {},  # Events: GetEventLog only
        }

    def zcl_commands(self) -> dict[tuple[int, int], Callable[..., Any]]:
        """Prepayment commands a PPMID sends (ZSE, event-logged as PECS01 / PECS02): the
        ZCL server refuses them from devices not in the ESME's device log."""
        return {
            (Cluster.PREPAYMENT, 0x04): self._zcl_consumer_top_up,  # ConsumerTopUp
            (Cluster.PREPAYMENT, 0x00): self._zcl_select_emergency_credit,  # SelectAvailableEmergencyCredit
            (Cluster.EVENTS, 0x00): self._zcl_get_event_log,  # GetEventLog
        }

    def _zcl_get_event_log(self, frame: Any, command: ClusterCommand) -> ClusterCommand | int:
        """The events the ESME shows on HAN devices (module doc), filtered as GetEventLog asks:
        log id (0 all), event id (0 all), start..end time (end 0: open), count (0 all), offset."""
        log_id = command["event_control_log_id"] & 0x0F
        wanted = command["event_id"]
        start, end = command["start_time"], command["end_time"]
        if end in (0, 0xFFFFFFFF):
            end = 0xFFFFFFFE
        tenancy = self.tenancy_start()
        events = [(zcl_t, code) for t, code in reversed(self.han_events)
                  if (tenancy is None or t >= tenancy) and wanted in (0, code)
                  and start <= (zcl_t := cosem.t2000(t)) <= end]
        events = events[command["event_offset"]:]
        if command["number_of_events"]:
            events = events[:command["number_of_events"]]
        if log_id not in (0, HAN_EVENT_LOG) or not events:
            return Status.NOT_FOUND
        return ClusterCommand.build(Cluster.EVENTS, "PublishEventLog", total_number_of_events=len(events),
                                    command_index=0, total_commands=1, log_payload_control=len(events) & 0x0F,
                                    events=[{"log_id": HAN_EVENT_LOG, "event_id": code & 0xFFFF,
                                             "event_time": zcl_t, "event_data": b""} for zcl_t, code in events])

    def _from_ppmid(self, frame: Any, command: ClusterCommand) -> bool:
        """Only a PPMID in the device log may top up or ask for emergency credit [I] (an IHD
        there may read, not pay); anything else is logged and refused NOT_AUTHORIZED."""
        if self.joined_devices.device_type(frame.src) == DeviceType.PPMID:
            return True
        self.log_security("zcl_command_refused", command=command.name, src=frame.src.hex().upper())
        return False

    def _zcl_consumer_top_up(self, frame: Any, command: ClusterCommand) -> ClusterCommand | int:
        if not self._from_ppmid(frame, command):
            return Status.NOT_AUTHORIZED
        code = command["top_up_code"]
        check = self.enter_utrn(bytes(code).decode("ascii", "replace"), origin="ppmid")
        if check.accepted:
            result = _ACCEPTED[self._supply_state()]
        else:
            result = top_up_result(check)
        return ClusterCommand.build(Cluster.PREPAYMENT, "ConsumerTopUpResponse", result_type=int(result),
                                    top_up_value=check.amount_pennies if check.accepted else 0,
                                    source_of_top_up=command["originating_device"],
                                    credit_remaining=clamp(math.floor(self.credit_pence), -(1 << 31), (1 << 31) - 1))

    def _zcl_select_emergency_credit(self, frame: Any, command: ClusterCommand) -> int:
        if not self._from_ppmid(frame, command):
            return Status.NOT_AUTHORIZED
        return Status.SUCCESS if self.activate_emergency_credit() else Status.FAILURE

    def tenancy_start(self) -> float | None:
        """The change of tenancy date-time (ECS12) once it has come (device time), else None."""
        t = cosem.epoch_of(self._tariff(OBIS.CHANGE_OF_TENANCY, 2))
        return t if t is not None and t <= self.device_now() else None

    def _since_tenancy(self, wh: int, day_start: float, tenancy: float | None) -> int:
        """`wh` drawn in the day from `day_start` less what was drawn in it before the change of
        tenancy (whole half hours, from the profile log)."""
        if tenancy is None or tenancy <= day_start:
            return wh
        if tenancy >= day_start + DAY:
            return 0
        before = sum(e[1] for e in self.profile(day_start + 1, tenancy))
        return max(0, wh - before)

    def _zcl_basic(self) -> dict[int, Any]:
        return {0x0000: 3, 0x0001: 1, 0x0003: 1, 0x0004: "gbhub", 0x0005: "gbhub ESME", 0x0007: 0x01,
                0x4000: self.firmware_version.hex().upper()}

    def _zcl_metering(self) -> dict[int, Any]:
        r = self.registers()
        tenancy = self.tenancy_start()
        if tenancy is not None:  # SRV 3.2: nothing of the previous tenant's (module doc)
            today = math.floor(self.device_now() / DAY) * DAY
            r["current_day_wh"] = self._since_tenancy(r["current_day_wh"], today, tenancy)
            r["previous_day_wh"] = self._since_tenancy(r["previous_day_wh"], today - DAY, tenancy)
        values: dict[int, Any] = {
            0x0000: r["import_wh"], 0x0001: r["export_wh"], 0x0014: ZCL_SUPPLY_STATUS[self._supply_state()],
            0x000E: 0,  # CurrentBlock: no block tariff in use
            0x0020: self._tier_at(self.device_now()),
            0x0200: 0, 0x0300: 0, 0x0301: 1, 0x0302: 1000, 0x0303: 0x33, 0x0306: 0,
            0x0400: clamp(r["power_w"], 0, (1 << 23) - 1), 0x0401: clamp(r["current_day_wh"], 0, 0xFFFFFF),
            0x0403: clamp(r["previous_day_wh"], 0, 0xFFFFFF),
        }
        for tier in range(1, TOU_TIERS + 1):
            values[0x0100 + 2 * (tier - 1)] = r["tou_wh"][tier - 1]
        return values

    def _zcl_price(self) -> dict[int, Any]:
        _cs, _ps, table = self._charge_table(OBIS.UNIT_CHARGE)
        tiers = [t for t in range(1, TOU_TIERS + 1) if table.get(bytes((t,)), 0)]
        values: dict[int, Any] = {
            0x0300: 0, 0x0301: clamp(self.standing_charge_pence() * 1000, 0, 0xFFFFFFFF), 0x0611: len(tiers),
            0x0615: 0, 0x0616: 826, 0x0617: 0x30,  # GBP, 3 digits after the point (milli-pence) [I]
        }
        for t in tiers:
            values[0x0400 + 16 * t] = clamp(self.unit_price_pence(t) * 1000, 0, 0xFFFFFFFF)
        return values

    def _zcl_prepayment(self) -> dict[int, Any]:
        p = self._prepay()
        return {
            0x0000: 0x0001 if p["mode"] == "prepayment" else 0x0000,
            0x0001: clamp(math.floor(p["credit"]), -(1 << 31), (1 << 31) - 1),
            0x0002: clamp(math.floor(p["ec_remaining"]), -(1 << 31), (1 << 31) - 1),
            0x0004: clamp(self.device_now() - cosem.EPOCH_2000, 0, 0xFFFFFFFE),
            0x0005: clamp(p["debt"], -(1 << 31), (1 << 31) - 1), 0x0010: clamp(p["ec_limit"], 0, 0xFFFFFFFF),
            0x0020: clamp(p["total_added"], 0, (1 << 48) - 1),
            0x0501: 0, 0x0502: 0x00, 0x0503: 826,  # kWh; credit in whole pence; GBP
        }


__all__ = ["EsmeZcl", "ZCL_SUPPLY_STATUS"]
