"""The ESME's state as ZigBee Smart Energy clusters (Basic, Metering, Price, Prepayment, Messaging):
what the ZCL server an IHD or PPMID reads from the meter serves (`han.zcl_server`). Mixed into
`meter.esme.Esme` (`EsmeZcl`); it reads the ESME's registers, tariff and prepayment state.
ZCL cluster and attribute ids are the ZSE spec's numbers."""
from __future__ import annotations

import math
from typing import Any, Callable

from gbcs.catalogue import DeviceType
from gbcs.obis import OBIS
from gbcs.usecases.ppmid import TopUpResult
from gbcs.utrn import UtrnStatus
from gbcs.zcl import Cluster, ClusterCommand, Status
from gbhub.firmware import cosem

from .esme_state import SUPPLY_ARMED, SUPPLY_DISABLED, SUPPLY_ENABLED, TOU_TIERS, clamp

ZCL_SUPPLY_STATUS = {SUPPLY_DISABLED: 0, SUPPLY_ARMED: 1, SUPPLY_ENABLED: 2}  # ZSE Metering SupplyStatus
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
        }

    def zcl_commands(self) -> dict[tuple[int, int], Callable[..., Any]]:
        """Prepayment commands a PPMID sends (ZSE, event-logged as PECS01 / PECS02): the
        ZCL server refuses them from devices not in the ESME's device log."""
        return {
            (Cluster.PREPAYMENT, 0x04): self._zcl_consumer_top_up,  # ConsumerTopUp
            (Cluster.PREPAYMENT, 0x00): self._zcl_select_emergency_credit,  # SelectAvailableEmergencyCredit
        }

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
            result = TopUpResult.REJECTED_DUPLICATE if check.status is UtrnStatus.DUPLICATE else TopUpResult.REJECTED_INVALID
        return ClusterCommand.build(Cluster.PREPAYMENT, "ConsumerTopUpResponse", result_type=int(result),
                                    top_up_value=check.amount_pennies if check.accepted else 0,
                                    source_of_top_up=command["originating_device"],
                                    credit_remaining=clamp(math.floor(self.credit_pence), -(1 << 31), (1 << 31) - 1))

    def _zcl_select_emergency_credit(self, frame: Any, command: ClusterCommand) -> int:
        if not self._from_ppmid(frame, command):
            return Status.NOT_AUTHORIZED
        return Status.SUCCESS if self.activate_emergency_credit() else Status.FAILURE

    def _zcl_basic(self) -> dict[int, Any]:
        return {0x0000: 3, 0x0001: 1, 0x0003: 1, 0x0004: "gbhub", 0x0005: "gbhub ESME", 0x0007: 0x01,
                0x4000: self.firmware_version.hex().upper()}

    def _zcl_metering(self) -> dict[int, Any]:
        r = self.registers()
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
