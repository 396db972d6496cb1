"""HAN links: APS frames between devices (virtual air, later zigpy/serial/BLE) and the GB-HGRP
tunnel over the ZSE Tunneling cluster. Imports only `gbcs` and `firmware`."""
from .aps import (
    SMART_ENERGY_PROFILE,
    TUNNELING_CLUSTER,
    ApsFrame,
    DeviceAsleep,
    HanError,
    LinkDown,
    NoRoute,
    PortClosed,
    eui_from_ieee,
    ieee_from_eui,
)
from .transport import AirEvent, Clock, ClusterDispatch, HanPort, HanTransport, LoopClock, Receiver
from .tunnel import (
    NoTunnel,
    QueueFull,
    TunnelClient,
    TunnelError,
    TunnelHost,
    TunnelRejected,
    TunnelServer,
    TunnelStatus,
    TunnelTimeout,
)
from .virtual import AirCounters, VirtualAir, VirtualPort

__all__ = [
    "SMART_ENERGY_PROFILE",
    "TUNNELING_CLUSTER",
    "AirCounters",
    "AirEvent",
    "ApsFrame",
    "Clock",
    "ClusterDispatch",
    "DeviceAsleep",
    "HanError",
    "HanPort",
    "HanTransport",
    "LinkDown",
    "LoopClock",
    "NoRoute",
    "NoTunnel",
    "PortClosed",
    "QueueFull",
    "Receiver",
    "TunnelClient",
    "TunnelError",
    "TunnelHost",
    "TunnelRejected",
    "TunnelServer",
    "TunnelStatus",
    "TunnelTimeout",
    "VirtualAir",
    "VirtualPort",
    "eui_from_ieee",
    "ieee_from_eui",
]
