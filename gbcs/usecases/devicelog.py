"""Device-to-device log use cases, served by every device that keeps a device log (GSME, ESME, GPF,
PPMID, HCALCS): join (CS03B), unjoin (CS04B) and read (CS07). Their content is ASN.1 DER, not DLMS.
"""
from __future__ import annotations

import enum
from typing import Any

from ..asn1 import (
    DeviceJoinDetails,
    DeviceType,
    JoinDevice,
    JoinMethodAndRole,
    JoinResponse,
    ReadDeviceJoinDetails,
    UnjoinDevice,
    UnjoinResponse,
)
from ..codec import eui_hex
from ..frame import Message
from .common import Unexpected, define
from .params import Param

_SERVED_BY = ("gsme", "esme", "gpf")


def _i_join(p: Any, m: Message | None) -> dict:
    if not isinstance(p, (JoinResponse, UnjoinResponse)):
        raise Unexpected(f"expected a join/unjoin response code, got {type(p).__name__}")
    code = p.code
    return {"ok": int(code) == 0, "code": code.name if isinstance(code, enum.Enum) else code}


# -- CS03B Method B Join --------------------------------------------------------------------------------


def _b_cs03b(counter: int, *, other_entity_id: bytes, other_device_type: DeviceType,
             join_method_and_role: JoinMethodAndRole) -> bytes:
    return JoinDevice(join_method_and_role, other_entity_id, other_device_type).encode()


define("CS03B", target="gsme", targets=_SERVED_BY, build=_b_cs03b, interpret=_i_join, params=(
    Param("other_entity_id", "eui", bytes.fromhex("00DB12345678909C"), "EUI-64 of the device to join with"),
    Param("other_device_type", "enum", DeviceType.GPF, "its device type", enum=DeviceType),
    Param("join_method_and_role", "enum", JoinMethodAndRole.METHOD_B, "join method (CS03B: METHOD_B)",
          enum=JoinMethodAndRole),
), response="ASN.1 join response code")


# -- CS04B Method B Unjoin---------------------------------------------------------------------------------------


def _b_cs04b(counter: int, *, entity_id: bytes) -> bytes:
    return UnjoinDevice(entity_id).encode()


define("CS04B", target="gsme", targets=_SERVED_BY, build=_b_cs04b, interpret=_i_join, params=(
    Param("entity_id", "eui", bytes.fromhex("00DB123456789099"), "EUI-64 of the device to unjoin"),
), response="ASN.1 unjoin response code")


# -- CS07 Read Device Join Details ----------------------------------------------------------------------------


def _b_cs07(counter: int) -> bytes:
    return ReadDeviceJoinDetails().encode()


def _i_cs07(p: Any, m: Message | None) -> dict:
    if not isinstance(p, DeviceJoinDetails):
        raise Unexpected(f"expected Read Device Join Details Response, got {type(p).__name__}")
    code = p.code
    out: dict[str, Any] = {"ok": int(code) == 0, "code": code.name if isinstance(code, enum.Enum) else code}
    if p.entries is not None:
        out["devices"] = [{"eui": eui_hex(e.entity_id),
                           "device_type": e.device_type.name if isinstance(e.device_type, enum.Enum) else e.device_type}
                          for e in p.entries]
    return out


define("CS07", target="gsme", targets=(*_SERVED_BY, "ppmid", "hcalcs"), build=_b_cs07, interpret=_i_cs07,
       response="ASN.1 {code, entries {entity id, device type}}")
