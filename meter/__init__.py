"""Meters and the displays paired with them: the ESME and the IHD. Imports han, wan, firmware
and gbcs; never hub.

Both register as device types (`gbhub.firmware.registry`), so a rig composes any number of them:
each ESME joins the HAN with its install code and serves the ZCL clusters its IHDs read; each
IHD pairs with the meter the rig names (`meter = "esme-2"`)."""
from gbcs.catalogue import DeviceType
from gbhub.firmware.registry import DeviceContext, DeviceKind, register_device_type
from gbhub.han.join import join
from gbhub.han.zcl_server import ZclServer

from .esme import Esme
from .ihd import Ihd

__all__ = ["Esme", "Ihd"]


def _create_esme(ctx: DeviceContext) -> Esme:
    s, ks = ctx.spec, ctx.keystore
    return Esme(s.eui, clock=ctx.clock, credentials=ctx.credentials(), trust=ctx.trust, nvm=ctx.nvm,
                chf_eui=ctx.chf.eui, prepayment_key=ks.public_key(ctx.supplier, "pp-ka"),
                prepayment_supplier=ctx.supplier, **ctx.firmware(), **s.options)


def _attach_esme(esme: Esme, ctx: DeviceContext) -> ZclServer:
    """On the HAN: the GB-HGRP tunnel from the CHF, and the ZCL clusters (Metering, Price,
    Prepayment ...) that the HAN devices in its device log read."""
    dispatch = esme.attach_han(ctx.han)
    return ZclServer(dispatch, clusters=esme.zcl_attributes(), allow=esme.in_device_log, port=esme.han_port,
                     clock=ctx.clock)


async def _join_esme(esme: Esme, ctx: DeviceContext) -> None:
    await join(esme.han_port, ctx.chf.eui, ctx.spec.install_code, dispatch=esme.han_dispatch,
               device_type=DeviceType.ESME, clock=ctx.clock)


def _esme_status(esme: Esme) -> dict:
    regs = esme.registers()
    return {"import_kwh": regs.get("import_wh", 0) / 1000, "today_kwh": regs.get("current_day_wh", 0) / 1000,
            "power_w": esme.power_w(), "supply": getattr(esme, "supply_state", None),
            "voltage": esme.measured_voltage(), "outage": esme.in_outage,
            "power_threshold": esme.power_threshold_status()}


def _create_ihd(ctx: DeviceContext) -> Ihd:
    s = ctx.spec
    return Ihd(s.eui, clock=ctx.clock, han=ctx.han, chf_eui=ctx.chf.eui, esme_eui=ctx.meter.eui,
               install_code=s.install_code, nvm=ctx.nvm, **s.options)


def _ihd_status(ihd: Ihd) -> dict:
    d = ihd.display
    return {"status": d.status, "demand_w": d.instantaneous_demand_w, "today_kwh": d.today_import_kwh,
            "price": d.current_price, "credit": d.credit}


register_device_type(DeviceKind("esme", _create_esme, _attach_esme, device_type=DeviceType.ESME,
                                default_eui="02474248400000A0",
                                default_install_code="83FED3407A939723A5C639B26916D505",
                                keys=True, han_member=True, join=_join_esme, status=_esme_status))
register_device_type(DeviceKind("ihd", _create_ihd, None, device_type=DeviceType.TYPE_2,
                                default_eui="02474248400000A6",
                                default_install_code="3D6F7A24CF1B8E42A1F0C6B3E27D9A15",
                                han_member=True, pairs_with="esme", starts_after_commissioning=True,
                                status=_ihd_status))
