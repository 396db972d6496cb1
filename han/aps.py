"""APS-level HAN frames and the HAN error family.

Every HAN transport (virtual air, zigpy radio, serial line, BLE) moves `ApsFrame`s: the unit a
ZigBee APS data request/indication carries. Addresses are GBCS entity ids (8 bytes, the order
printed on the device and used in GBCS headers and certificates).

Byte order of addresses: a ZigBee radio puts the IEEE (EUI-64) address on the air least
significant byte first, so the raw 8 bytes a radio stack hands over are the GBCS entity id
reversed (FACTS §3.1). Real-radio transports must convert with `ieee_from_eui` when they build
a frame for the stack and with `eui_from_ieee` when they receive one; nothing above the
transport ever sees the on-air order. The virtual air needs no conversion.
"""
from __future__ import annotations

from dataclasses import dataclass, field

#: ZigBee Smart Energy application profile.
SMART_ENERGY_PROFILE = 0x0109

#: Cluster ids used on the GB HAN (FACTS §6).
BASIC_CLUSTER = 0x0000
TIME_CLUSTER = 0x000A
OTA_UPGRADE_CLUSTER = 0x0019
PRICE_CLUSTER = 0x0700
METERING_CLUSTER = 0x0702
MESSAGING_CLUSTER = 0x0703
TUNNELING_CLUSTER = 0x0704
PREPAYMENT_CLUSTER = 0x0705
CALENDAR_CLUSTER = 0x0707
DEVICE_MANAGEMENT_CLUSTER = 0x0708
EVENTS_CLUSTER = 0x0709
KEY_ESTABLISHMENT_CLUSTER = 0x0800


class HanError(Exception):
    """A HAN hop failed. Callers must report it (e.g. the CHF's HAN delivery failure), never
    swallow it: the GBCS message it carried did not reach its recipient."""


class NoRoute(HanError):
    """The destination is not attached to this HAN (never joined, or detached)."""


class LinkDown(HanError):
    """The sender's or the recipient's radio link is down."""


class DeviceAsleep(HanError):
    """The recipient is a sleepy device that is asleep; it pulls its messages through the tunnel."""


class PortClosed(HanError):
    """The sending port was detached from its transport."""


def ieee_from_eui(eui: bytes) -> bytes:
    """GBCS entity id → on-air IEEE address bytes (least significant byte first)."""
    if len(eui) != 8:
        raise ValueError("an EUI-64 is 8 bytes")
    return bytes(reversed(eui))


def eui_from_ieee(ieee: bytes) -> bytes:
    """On-air IEEE address bytes → GBCS entity id."""
    if len(ieee) != 8:
        raise ValueError("an IEEE address is 8 bytes")
    return bytes(reversed(ieee))


@dataclass(frozen=True, slots=True)
class ApsFrame:
    """One APS data frame. `payload` is a whole ZCL frame (ZCL header ‖ command payload).

    `profile` is keyword-only so that the common case reads
    `ApsFrame(src, dst, 1, 1, TUNNELING_CLUSTER, zcl)`."""

    src: bytes
    dst: bytes
    src_endpoint: int
    dst_endpoint: int
    cluster: int
    payload: bytes
    profile: int = field(default=SMART_ENERGY_PROFILE, kw_only=True)

    def __post_init__(self) -> None:
        if len(self.src) != 8 or len(self.dst) != 8:
            raise ValueError("src and dst must be 8-byte EUI-64s")

    def reply(self, payload: bytes, cluster: int | None = None) -> "ApsFrame":
        """A frame back to this frame's sender, from the endpoint it was addressed to."""
        return ApsFrame(
            self.dst,
            self.src,
            self.dst_endpoint,
            self.src_endpoint,
            self.cluster if cluster is None else cluster,
            payload,
            profile=self.profile,
        )

    def to_json(self) -> dict:
        return {
            "type": "ApsFrame",
            "src": self.src.hex().upper(),
            "dst": self.dst.hex().upper(),
            "src_endpoint": self.src_endpoint,
            "dst_endpoint": self.dst_endpoint,
            "profile": f"0x{self.profile:04X}",
            "cluster": f"0x{self.cluster:04X}",
            "payload": self.payload.hex().upper(),
        }
