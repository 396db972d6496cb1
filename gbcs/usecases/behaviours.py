"""Alert and event behaviours (ECS25a, ECS25a1, ECS25a2, ECS25a3): which of the configurable
(non-critical, 0x8000-0x81FF) events an ESME sends as alerts to the supplier, shows on HAN devices,
sounds, or logs. Each use case Sets attribute 2 of its behaviour object (class 1) to a 512-bit
bit-string [O RTDS ECS25a/a2/a3]; bit n (first bit = 0) stands for event code 0x8000 + n, set =
enabled [I: no source gives the bit map; RTDS sets bits in pairs 0x100 apart, which fits].
Critical alerts (0x8Fxx) are never filtered.
"""
from __future__ import annotations

from typing import Any, Iterable

from ..dlms import Data, RequestKind
from ..frame import Message
from ..obis import OBIS, CosemObjectId
from .common import access_request, action_results, define, request_keys, set_attribute
from .params import Param

BEHAVIOUR_BITS = 512
FIRST_CODE = 0x8000  # bit 0
LAST_CODE = FIRST_CODE + BEHAVIOUR_BITS - 1


def behaviour_bits(codes: Iterable[int] | None) -> str:
    """The bit-string text ("0101...", 512 bits) enabling exactly `codes` (None: all)."""
    if codes is None:
        return "1" * BEHAVIOUR_BITS
    bits = ["0"] * BEHAVIOUR_BITS
    for code in codes:
        if not FIRST_CODE <= code <= LAST_CODE:
            raise ValueError(f"event code 0x{code:04X} is not configurable (0x8000-0x81FF)")
        bits[code - FIRST_CODE] = "1"
    return "".join(bits)


def enabled_codes(bits: str) -> list[int]:
    """The event codes a behaviour bit-string enables."""
    return [FIRST_CODE + i for i, b in enumerate(bits[:BEHAVIOUR_BITS]) if b == "1"]


def _b_behaviour(obj: CosemObjectId):
    def build(counter: int, *, codes: tuple[int, ...] | None) -> bytes:
        return access_request(counter, (set_attribute(obj, 2), Data.bit_string(behaviour_bits(codes))))
    return build


def _i_behaviour(p: Any, m: Message | None) -> dict:
    return action_results(p, m)


_CODES = Param("codes", "ints", None, "event codes to enable, 0x8000-0x81FF (comma-separated; all others are "
               "disabled; an empty list disables every configurable one); default: all enabled",
               min=FIRST_CODE, max=LAST_CODE)

for _uc, _obj, _what in (
    ("ECS25a", OBIS.ALERT_BEHAVIOURS_SUPPLIER, "alerts sent to the supplier"),
    ("ECS25a1", OBIS.EVENT_BEHAVIOURS_HAN_SUPPLIER, "events shown on HAN devices"),
    ("ECS25a2", OBIS.EVENT_BEHAVIOURS_AUDIBLE_SUPPLIER, "events that sound the audible alarm"),
    ("ECS25a3", OBIS.EVENT_BEHAVIOURS_LOGGING_SUPPLIER, "events logged"),
):
    define(_uc, target="esme", build=_b_behaviour(_obj), interpret=_i_behaviour, params=(_CODES,),
           requests=request_keys((RequestKind.SET, _obj, 2)), response=f"ACCESS.response: one set result ({_what})")

__all__ = ["BEHAVIOUR_BITS", "behaviour_bits", "enabled_codes"]
