"""Meters and the displays paired with them: the ESME, the GSME, the IHD and the PPMID. Imports han,
wan, firmware and gbcs; never hub.

Each registers as a device type (`gbhub.firmware.registry`), so a rig composes any number of them:
each ESME joins the HAN with its install code and serves the ZCL clusters its IHDs and PPMIDs
read; each IHD pairs with the meter the rig names (`meter = "esme-2"`); a PPMID joins the HAN
like an ESME and is paired by commissioning with its ESME (CS03A1 / CS03A2) and, when the rig
has one, the GSME (CS03C both ways; the GSME is the device named by option `gsme`, default the
one named "gsme")."""
from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding

from gbcs.catalogue import DeviceType, MessageCode
from gbhub.firmware.gas_data import MIRROR_ENDPOINT
from gbhub.firmware.registry import DeviceContext, DeviceKind, register_device_type
from gbhub.han.join import join
from gbhub.han.zcl_server import ZclServer

from .esme import Esme
from .gsme import Gsme
from .ihd import Ihd
from .ppmid import Ppmid

__all__ = ["Esme", "Gsme", "Ihd", "Ppmid"]


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
                     clock=ctx.clock, commands=esme.zcl_commands())


async def _join_esme(esme: Esme, ctx: DeviceContext) -> None:
    await join(esme.han_port, ctx.chf.eui, ctx.spec.install_code, dispatch=esme.han_dispatch,
               device_type=DeviceType.ESME, clock=ctx.clock)


def _esme_status(esme: Esme) -> dict:
    regs = esme.registers()
    return {"import_kwh": regs.get("import_wh", 0) / 1000, "today_kwh": regs.get("current_day_wh", 0) / 1000,
            "power_w": esme.power_w(), "supply": getattr(esme, "supply_state", None),
            "credit": round(esme.credit_pence / 100, 2),
            "voltage": esme.measured_voltage(), "outage": esme.in_outage,
            "power_threshold": esme.power_threshold_status()}


def _create_gsme(ctx: DeviceContext) -> Gsme:
    s, ks = ctx.spec, ctx.keystore
    return Gsme(s.eui, clock=ctx.clock, credentials=ctx.credentials(), trust=ctx.trust, nvm=ctx.nvm,
                chf_eui=ctx.chf.eui, install_code=s.install_code, prepayment_key=ks.public_key(ctx.supplier, "pp-ka"),
                prepayment_supplier=ctx.supplier, **ctx.firmware(), **s.options)


def _attach_gsme(gsme: Gsme, ctx: DeviceContext) -> None:
    gsme.attach_han(ctx.han)


async def _join_gsme(gsme: Gsme, ctx: DeviceContext) -> None:
    await join(gsme.han_port, ctx.chf.eui, ctx.spec.install_code, dispatch=gsme.han_dispatch,
               device_type=DeviceType.GSME, clock=ctx.clock)


def _gsme_status(gsme: Gsme) -> dict:
    regs = gsme.registers() if gsme.state == "on" else {}
    return {"volume_m3": regs.get("volume_l", 0) / 1000, "supply": gsme._supply_state() if gsme.state == "on" else None,
            "credit": round(gsme.credit_pence / 100, 2) if gsme.state == "on" else None,
            "battery": (gsme.data.get("gas") or {}).get("battery") if gsme.state == "on" else None,
            "wakes": gsme.wakes}


def _create_ihd(ctx: DeviceContext) -> Ihd:
    s = ctx.spec
    options = {k: v for k, v in s.options.items() if k != "gsme"}
    if ctx.type_of(s.options.get("gsme", "gsme")) == "gsme":  # gas from the GPF's mirror of the GSME (hub.gpf) [I]
        options.setdefault("gas_source", (ctx.chf.eui, MIRROR_ENDPOINT))
    return Ihd(s.eui, clock=ctx.clock, han=ctx.han, chf_eui=ctx.chf.eui, esme_eui=ctx.meter.eui,
               install_code=s.install_code, nvm=ctx.nvm, **options)


def _ihd_status(ihd: Ihd) -> dict:
    d = ihd.display
    out = {"status": d.status, "demand_w": d.instantaneous_demand_w, "today_kwh": d.today_import_kwh,
           "price": d.current_price, "credit": d.credit, "events": [f"{code:04X}" for _t, code in d.events]}
    if d.gas is not None:  # money in pounds like the status's other credits, price in pence per kWh
        g = d.gas
        pounds = lambda pence: None if pence is None else round(pence / 100, 5)  # noqa: E731
        out["gas"] = {"today_m3": g.today_m3, "today_kwh": g.today_kwh, "total_m3": g.total_m3,
                      "price": g.current_price, "today_cost": pounds(g.today_cost), "credit": pounds(g.credit),
                      "error": g.error}
    return out


register_device_type(DeviceKind("esme", _create_esme, _attach_esme, device_type=DeviceType.ESME,
                                default_eui="02474248400000A0",
                                default_install_code="83FED3407A939723A5C639B26916D505",
                                keys=True, han_member=True, join=_join_esme, status=_esme_status, ota=True))
register_device_type(DeviceKind("ihd", _create_ihd, None, device_type=DeviceType.TYPE_2,
                                default_eui="02474248400000A6",
                                default_install_code="3D6F7A24CF1B8E42A1F0C6B3E27D9A15",
                                han_member=True, pairs_with="esme", starts_after_commissioning=True,
                                status=_ihd_status, keeps_join=Ihd.keep_network))
register_device_type(DeviceKind("gsme", _create_gsme, _attach_gsme, device_type=DeviceType.GSME,
                                default_eui="02474248400000A1",
                                default_install_code="5C7E1A3B9D2F4E6081A3C5E7092B4D6F",
                                keys=True, han_member=True, join=_join_gsme, status=_gsme_status, ota=True))


# ---------------------------------------------------------------------------------------------- PPMID
def _ppmid_gsme(ctx: DeviceContext) -> Any:
    """The GSME a PPMID pairs with: option `gsme` (a device name, default "gsme"), when the rig
    has it and it serves the Method C join (CS03C) with a device log."""
    name = ctx.spec.options.get("gsme", "gsme")
    try:
        device = ctx.device(name)
    except Exception:  # noqa: BLE001 - no such device: a PPMID for electricity only
        return None
    if getattr(device, "kind", None) != "gsme" or not hasattr(device, "in_device_log"):
        return None
    return device if device.supports(MessageCode.CS03C) else None


def _create_ppmid(ctx: DeviceContext) -> Ppmid:
    s = ctx.spec
    options = {k: v for k, v in s.options.items() if k != "gsme"}
    gsme = _ppmid_gsme(ctx)
    if gsme is not None:  # the gas figures from the GPF's mirror of the GSME (hub.gpf) [I]
        options.setdefault("gas_source", (ctx.chf.eui, MIRROR_ENDPOINT))
    return Ppmid(s.eui, clock=ctx.clock, credentials=ctx.credentials(), trust=ctx.trust, nvm=ctx.nvm,
                 chf_eui=ctx.chf.eui, esme_eui=ctx.meter.eui, gsme_eui=None if gsme is None else gsme.eui,
                 **ctx.firmware(), **options)


def _attach_ppmid(ppmid: Ppmid, ctx: DeviceContext) -> None:
    ppmid.attach_han(ctx.han)


async def _join_ppmid(ppmid: Ppmid, ctx: DeviceContext) -> None:
    await join(ppmid.han_port, ctx.chf.eui, ctx.spec.install_code, dispatch=ppmid.han_dispatch,
               device_type=DeviceType.PPMID, clock=ctx.clock)


def _ka_certificate(ctx: DeviceContext, eui: bytes) -> bytes:
    cert = ctx.keystore.certificate(eui, "ka")
    if cert is None:
        raise RuntimeError(f"no KA certificate of {eui.hex().upper()} to join with")
    return cert.public_bytes(Encoding.DER)


def _ppmid_paired(ppmid: Ppmid, ctx: DeviceContext) -> bool:
    esme = ctx.meter
    if not (esme.in_device_log(ppmid.eui) and ppmid.paired_with(esme.eui)):
        return False
    gsme = _ppmid_gsme(ctx)
    return gsme is None or (ppmid.paired_with(gsme.eui) and gsme.in_device_log(ppmid.eui))


async def _pair_ppmid(ppmid: Ppmid, ctx: DeviceContext, deliver: Any) -> None:
    """Method A with the ESME (CS03A1 on it, CS03A2 on the PPMID), Method C with the GSME
    (CS03C on each, with the other's KA certificate); each step only when still missing.
    `deliver(use case, device, params)`: `DeviceKind.pair`."""
    from gbcs.asn1 import JoinMethodAndRole as Role

    async def send(use_case: str, to: Any, other: Any, other_type: DeviceType, role: Role, **extra: Any) -> None:
        await deliver(use_case, to, {"other_entity_id": other.eui, "other_device_type": other_type,
                                     "join_method_and_role": role, **extra})

    esme = ctx.meter
    if not esme.in_device_log(ppmid.eui):
        await send("CS03A1", esme, ppmid, DeviceType.PPMID, Role.METHOD_A_INITIATOR)
    if not ppmid.paired_with(esme.eui):
        await send("CS03A2", ppmid, esme, DeviceType.ESME, Role.METHOD_A_RESPONDER)
    gsme = _ppmid_gsme(ctx)
    if gsme is not None:
        if not gsme.in_device_log(ppmid.eui):
            await send("CS03C", gsme, ppmid, DeviceType.PPMID, Role.METHOD_C, ka_certificate=_ka_certificate(ctx, ppmid.eui))
        if not ppmid.paired_with(gsme.eui):
            await send("CS03C", ppmid, gsme, DeviceType.GSME, Role.METHOD_C, ka_certificate=_ka_certificate(ctx, gsme.eui))


def _ppmid_status(ppmid: Ppmid) -> dict:
    d = ppmid.display
    return {"status": d.status, "credit": d.electricity.credit, "gas_credit": d.gas.credit, "message": d.message,
            "pending_gas": len(ppmid.pending_gas)}


register_device_type(DeviceKind("ppmid", _create_ppmid, _attach_ppmid, device_type=DeviceType.PPMID,
                                default_eui="02474248400000A4",
                                default_install_code="5C2E9A71D4B03F68E1A7C95B20D84F3E",
                                keys=True, han_member=True, join=_join_ppmid, pairs_with="esme",
                                pair=_pair_ppmid, paired=_ppmid_paired, status=_ppmid_status, ota=True))
