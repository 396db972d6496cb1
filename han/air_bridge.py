"""Two virtual airs joined by a link: devices in another process (or on another machine) reached
as if they were on this process's HAN.

Each process runs its own devices on its own `VirtualAir`. The `AirBridge` stands in on that air
for every device across the link (a proxy port per remote EUI): a frame a local device sends to a
remote one is handed to the proxy, which puts it on the `Carrier`; a frame the carrier brings is
put on the local air as sent by its remote source. So every HAN frame — ZCL, GB-HGRP tunnel, the
join handshake — crosses unchanged, and the device log and join rules of the CHF apply as on one
air. The remote devices' links on the local air are down until the carrier is up, go down with
it (senders get LinkDown at once) and come back up with it.

A `Carrier` is any link that moves APS frames to the far side: `han.serial_link.SerialLink`
and the BLE GATT link (`han.ble`). It needs only:

    up: bool                                      the link is up now
    async start() / async stop()
    async carry(frame) -> bool                    across the link; False: lost after the link's
                                                  retries; raises LinkDown when down
    on_frame(callback(frame))                     frames from the far side
    on_link(callback(up: bool))                   up / down changes

Guard [I]: a frame from the link must come from a device the rig places across it and go to a
local one; anything else (a spoofed local source, an unknown destination) is dropped and counted.
The queue towards the carrier is bounded (`max_queue`); overflow is dropped and counted.
"""
from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Protocol

from .aps import ApsFrame, HanError
from .transport import spawn

log = logging.getLogger("gbhub.han.bridge")


class Carrier(Protocol):
    """A link that moves APS frames to the far side (see the module docstring)."""

    up: bool

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def carry(self, frame: ApsFrame) -> bool: ...

    def on_frame(self, callback: Callable[[ApsFrame], Any]) -> None: ...

    def on_link(self, callback: Callable[[bool], Any]) -> None: ...


@dataclass(slots=True)
class BridgeCounters:
    out: int = 0  # frames handed to the carrier and acknowledged by it
    lost: int = 0  # frames the carrier lost after its retries, or could not send (link down)
    overflow: int = 0  # frames dropped because the queue to the carrier was full
    inbound: int = 0  # frames from the carrier put on the local air
    refused: int = 0  # frames from the carrier with a source or destination the rig does not allow


class AirBridge:
    """Joins `air` (a VirtualAir) to the far side through `carrier`; `remote` are the EUIs of
    the devices across the link."""

    def __init__(self, air: Any, carrier: Carrier, remote: Iterable[bytes], *, max_queue: int = 256) -> None:
        self.air = air
        self.carrier = carrier
        self.remote = frozenset(bytes(e) for e in remote)
        self.max_queue = max_queue
        self.counters = BridgeCounters()
        self._queue: deque[ApsFrame] = deque()
        self._wake = asyncio.Event()
        self._pump: asyncio.Task | None = None
        self._ports: list[Any] = []
        self._downed: set[bytes] = set()  # remote links this bridge took down (not `gbhub ctl han`'s)
        carrier.on_frame(self._inbound)
        carrier.on_link(self._link)

    async def start(self) -> None:
        for eui in sorted(self.remote):
            self._ports.append(self.air.attach(eui, self._outbound))
        self._link(False)  # the remote devices are unreachable until the carrier is up
        await self.carrier.start()
        self._link(self.carrier.up)
        self._pump = spawn(self._run())

    async def stop(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
            self._pump = None
        await self.carrier.stop()
        for port in self._ports:
            port.detach()
        self._ports.clear()

    # -- local air -> carrier ---------------------------------------------------------------------
    def _outbound(self, frame: ApsFrame) -> None:
        if len(self._queue) >= self.max_queue:
            self.counters.overflow += 1
            log.warning("bridge queue full: frame to %s dropped", frame.dst.hex().upper())
            return
        self._queue.append(frame)
        self._wake.set()

    async def _run(self) -> None:
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            frame = self._queue.popleft()
            try:
                if await self.carrier.carry(frame):
                    self.counters.out += 1
                    continue
                log.info("frame for %s lost on the link", frame.dst.hex().upper())
            except HanError as exc:
                log.info("frame for %s not sent: %s", frame.dst.hex().upper(), exc)
            self.counters.lost += 1

    # -- carrier -> local air ---------------------------------------------------------------------
    def _inbound(self, frame: ApsFrame) -> None:
        if frame.src not in self.remote or frame.dst in self.remote:
            self.counters.refused += 1
            log.warning("link frame %s -> %s refused: not from across the link to a local device",
                        frame.src.hex().upper(), frame.dst.hex().upper())
            return
        try:
            self.air.inject(frame)
        except HanError as exc:  # no such local device, or its link is down (`gbhub ctl han`)
            log.info("link frame for %s not delivered: %s", frame.dst.hex().upper(), exc)
            return
        self.counters.inbound += 1

    def _link(self, up: bool) -> None:
        if up:
            for eui in self._downed:
                self.air.set_link(eui, True)
            self._downed.clear()
            return
        for eui in self.remote:
            if self.air.is_up(eui):
                self.air.set_link(eui, False)
                self._downed.add(eui)
        self.counters.lost += len(self._queue)
        self._queue.clear()  # frames for a link that is down are lost, as on the air
