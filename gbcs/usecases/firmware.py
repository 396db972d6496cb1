"""Firmware use cases every device type serves: CS06 Activate Firmware (critical, ASN.1, may be
future-dated or cancel a pending activation) and CS08 Read PPMID/HCALCS Firmware Version (ASN.1).
ECS52 (ESME and CHF, DLMS) is in `esme`; GCS38 (GSME, GBZ) belongs with the gas use cases.

CS06 content: `SEQUENCE { manufacturerImageHash OCTET STRING(32), originatorCounter INTEGER (the
message's originator counter), executionDateTime GeneralizedTime OPTIONAL }`; cancellation is the
date 9999-12-31T23:59:59Z [O RTDS CS06]. The hash is SHA-256 of the OTA image's manufacturer image
(`gbcs.ota.OtaImage.image_hash`); `gbhub send CS06 image=FILE` takes it from an image file.
"""
from __future__ import annotations

import datetime as _dt
import enum
from typing import Any

from ..asn1 import (
    CANCELLATION_DATE_TIME,
    ActivateFirmware,
    ActivateFirmwareOutcome,
    CommandAccepted,
    FirmwareVersionResponse,
    ReadFirmwareVersion,
)
from ..frame import Message
from .common import Unexpected, define
from .params import Param, length

_ALL = ("esme", "chf", "gpf", "gsme", "ppmid")


def _name(v: Any) -> Any:
    return v.name if isinstance(v, enum.Enum) else v


# -- CS06 Activate Firmware ----------------------------------------------------------------------------------


def _b_cs06(counter: int, *, hash: bytes, execution_date_time: "_dt.datetime | str | None") -> bytes:
    when = CANCELLATION_DATE_TIME if execution_date_time == "never" else execution_date_time
    return ActivateFirmware(hash, counter, when).encode()


def _i_cs06(p: Any, m: Message | None) -> dict:
    if isinstance(p, CommandAccepted):
        return {"ok": True, "accepted": True}
    if not isinstance(p, ActivateFirmwareOutcome):
        raise Unexpected(f"expected an activation outcome, got {type(p).__name__}")
    return {"ok": int(p.code) == 0, "code": _name(p.code), "firmware_version": p.firmware_version.hex().upper()}


define("CS06", target="esme", targets=_ALL, build=_b_cs06, interpret=_i_cs06, params=(
    Param("hash", "hex", help="manufacturer image hash (SHA-256 of the manufacturer image, 32 bytes) of the image "
                              "to activate", check=length(32)),
    Param("execution_date_time", "when", None, "when to activate: a date-time (future-dated: answered "
          "'accepted', then alert 0x8F66/0x8F67), immediate (default) or never (cancels a pending one)"),
), response="ASN.1 {code, firmware version}, or NULL (accepted) when future-dated or cancelled")


# -- CS08 Read PPMID/HCALCS Firmware Version -------------------------------------------------------------------


def _b_cs08(counter: int) -> bytes:
    return ReadFirmwareVersion().encode()


def _i_cs08(p: Any, m: Message | None) -> dict:
    if not isinstance(p, FirmwareVersionResponse):
        raise Unexpected(f"expected a firmware version response, got {type(p).__name__}")
    return {"ok": int(p.code) == 0, "code": _name(p.code), "firmware_version": p.firmware_version.hex().upper()}


define("CS08", target="ppmid", targets=("ppmid", "hcalcs"), build=_b_cs08, interpret=_i_cs08,
       response="ASN.1 {firmware version, code}")
