"""The Communications Hub: the CHF (HAN whitelist, trust centre, WAN/HAN router, alert buffer,
HAN time source) and the GPF. Imports han, wan, firmware and gbcs; never meter.

Both register as device types (`gbhub.firmware.registry`), so a rig composes them by name."""
from gbcs.catalogue import DeviceType
from gbhub.firmware.registry import DeviceContext, DeviceKind, register_device_type

from .chf import Chf
from .chf_log import ChfDeviceLogEntry, HistoricLogEntry
from .gpf import Gpf

__all__ = ["Chf", "ChfDeviceLogEntry", "Gpf", "HistoricLogEntry"]


def _create_chf(ctx: DeviceContext) -> Chf:
    s = ctx.spec
    return Chf(s.eui, clock=ctx.clock, credentials=ctx.credentials(), trust=ctx.trust, nvm=ctx.nvm,
               **ctx.firmware(), **s.options)


def _attach_chf(chf: Chf, ctx: DeviceContext) -> None:
    chf.attach_wan(ctx.wan)
    chf.attach_han(ctx.han)


def _create_gpf(ctx: DeviceContext) -> Gpf:
    s = ctx.spec
    return Gpf(s.eui, clock=ctx.clock, credentials=ctx.credentials(), trust=ctx.trust, nvm=ctx.nvm,
               keystore=ctx.keystore, **ctx.firmware(), **s.options)


def _attach_gpf(gpf: Gpf, ctx: DeviceContext) -> None:
    ctx.chf.attach_gpf(gpf)
    gpf.attach_mirror(ctx.chf)


register_device_type(DeviceKind("chf", _create_chf, _attach_chf, device_type=DeviceType.CHF,
                                default_eui="02474248400000A2", keys=True, max_count=1))
register_device_type(DeviceKind("gpf", _create_gpf, _attach_gpf, device_type=DeviceType.GPF,
                                default_eui="02474248400000A3", keys=True, max_count=1))
