"""HAN links of a premises (the rig's `[han]` table): which transport each device attaches to, and
the ZigBee radio's start, stop and trust-centre wiring to the CHF device log.

`transport = "virtual"`: every device on one `VirtualAir`.
`transport = "zigbee"`: the CHF's coordinator radio through zigpy (`gbhub.han.zigbee`). The CHF
and the meters are local devices on its Smart Energy endpoints. With `radio = "virtual"` (CI) the
devices that pair with a meter (IHD, PPMID) and GSMEs are ZigBee end devices on the virtual
network, joining with their install codes; with a real radio they are the physical devices that
join over the air. `radio = "auto"` probes the serial ports (`gbhub radios`).
"""
from __future__ import annotations

import logging
from typing import Any

from gbcs.codec import eui_hex
from gbhub.firmware.registry import device_kind

from .inputs import Failure
from .rig import Rig

log = logging.getLogger("gbhub.radio")

#: Device types that are ZigBee end devices (not coordinator endpoints) on the virtual radio.
END_DEVICE_TYPES = ("gsme",)


class VirtualLink:
    """Every device on the premises' virtual air."""

    def __init__(self, air: Any) -> None:
        self.air = air
        self.transport = air

    def transport_for(self, spec: Any) -> Any:
        return self.air

    async def start(self, premises: Any) -> None:
        pass

    async def stop(self) -> None:
        pass


class ZigbeeLink:
    """The CHF's coordinator radio; see the module docstring for who is local."""

    def __init__(self, rig: Rig, clock: Any) -> None:
        try:
            from gbhub.han.zigbee import RadioError, ZigbeeTransport, build_app
        except ImportError as exc:
            raise Failure(f"[han] transport \"zigbee\" needs zigpy: pip install 'gbhub[zigbee]' ({exc})") from None
        chf = rig.device("chf")
        assert chf is not None
        self.rig = rig
        self.clock = clock
        self.radio = rig.han_radio
        self.network = None
        if self.radio == "virtual":
            from gbhub.han.zigbee_virtual import VirtualZigbeeNetwork

            self.network = VirtualZigbeeNetwork(coordinator=chf.eui)
            path, channel = self.network.path, rig.han_channel or 15
        else:
            path, channel = rig.han_port, rig.han_channel
            if self.radio == "auto":
                self.radio, path = probe_radio(rig.han_port)
        try:
            app = build_app(self.radio, path, rig.han_baudrate, channel=channel)
        except RadioError as exc:
            raise Failure(str(exc)) from None
        self.ca = None
        identity = None
        if rig.han_cbke_identity is not None:  # a lab's own certificate for the hub's EUI
            identity = rig.han_cbke_identity
        elif rig.han_cbke if rig.han_cbke is not None else self.radio == "virtual":
            from gbcs.cbke import TestCa

            self.ca = TestCa()  # gbhub's test CA: certificates for the emulated devices of this run
            identity = self.ca.issue(chf.eui)
        self.transport = ZigbeeTransport(app, coordinator=chf.eui, clock=clock, joinable=self._joinable,
                                         allowed=self._allowed, on_refused=self._refused, cbke=identity,
                                         proxy_joins=self.network is None)
        self.chf: Any = None
        self.local: set[bytes] = set()

    def transport_for(self, spec: Any) -> Any:
        kind = device_kind(spec.type)
        if self.network is not None and (kind.pairs_with is not None or spec.type in END_DEVICE_TYPES):
            from gbhub.han.zigbee_virtual import ZigbeeNode

            return ZigbeeNode(self.network, install_code=spec.install_code, device_type=kind.device_type,
                              clock=self.clock, cbke=None if self.ca is None else self.ca.issue(spec.eui))
        if kind.device_type is not None:
            self.transport.describe(spec.eui, kind.device_type)
        self.local.add(spec.eui)
        return self.transport

    async def start(self, premises: Any) -> None:
        self.chf = premises.chf
        from gbhub.han.zigbee import RadioError

        try:
            await self.transport.start()
        except RadioError as exc:
            raise Failure(str(exc)) from None
        log.info("ZigBee radio %s up as %s", self.radio, eui_hex(self.transport.ieee or b"\0" * 8))

    async def stop(self) -> None:
        await self.transport.stop()

    # -- trust centre: the CHF device log decides ------------------------------------------------
    def _joinable(self):
        chf = self.chf
        if chf is None or chf.state != "on" or not chf.joining_open:
            return []
        return [(e.eui, e.link_key) for e in chf.device_log()
                if not e.joined and e.eui not in self.local and e.link_key is not None]

    def _allowed(self, eui: bytes) -> bool:
        chf = self.chf
        return chf is not None and chf.device_log_entry(eui) is not None

    def _refused(self, eui: bytes, status: str, reason: str) -> None:
        if self.chf is not None:
            self.chf.log_security("join_refused", eui=eui_hex(eui), status=status, reason=reason)


def han_link(rig: Rig, clock: Any, air: Any) -> Any:
    if rig.han == "zigbee":
        return ZigbeeLink(rig, clock)
    return VirtualLink(air)


def probe_radio(port: str | None) -> tuple[str, str]:
    """(radio type, port) of the first ZigBee radio found (`port`, or every serial port)."""
    raise Failure("[han] radio \"auto\": no ZigBee radio found (name it with [han] radio and port)")
