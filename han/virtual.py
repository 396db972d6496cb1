"""The virtual air: an in-memory HAN for CI, benchmarks and fleets.

Zero latency is the fast path: a frame is handed to the recipient's receive callback inside
`send` (no timer, no task for plain-function receivers), so one process can make many thousand
HAN hops per second; a ZCL server answers through `send_now` (no coroutine), so a read's answer
reaches the client inside the client's own send (no task, no timeout timer: a fleet's idle CPU). With latency, frames are scheduled on the injected clock and each
sender→recipient link stays first-in first-out, like a real APS link.

Loss is decided at send time from one seeded `random.Random`, so a run with the same seed and the
same sequence of sends loses the same frames.
"""
from __future__ import annotations

import logging
import random
from collections import deque
from dataclasses import dataclass
from functools import partial

from .aps import ApsFrame, DeviceAsleep, HanError, LinkDown, NoRoute, PortClosed
from .transport import AirTaps, Clock, LoopClock, Receiver, deliver

log = logging.getLogger("gbhub.han")

# AirEvent outcomes.
DELIVERED = "delivered"  # handed to the recipient's receive callback
LOST = "lost"  # lost on the air (random loss); send returned False
DROPPED = "dropped"  # was in flight when the recipient went away, down or asleep
NO_ROUTE = "no-route"  # send raised NoRoute
LINK_DOWN = "link-down"  # send raised LinkDown
ASLEEP = "asleep"  # send raised DeviceAsleep
CLOSED = "closed"  # send raised PortClosed


@dataclass(slots=True)
class AirCounters:
    """Frame counters. Every send attempt counts in `sent` and ends in exactly one of the others
    (or is still in flight): sent == delivered + lost + dropped + failed + air.in_flight."""

    sent: int = 0
    delivered: int = 0
    lost: int = 0
    dropped: int = 0
    failed: int = 0


class VirtualPort:
    """A device's attachment to the virtual air (implements `HanPort`)."""

    __slots__ = ("eui", "_air", "_receive", "attached")

    def __init__(self, air: "VirtualAir", eui: bytes, receive: Receiver) -> None:
        self.eui = eui
        self._air = air
        self._receive = receive
        self.attached = True

    async def send(self, frame: ApsFrame) -> bool:
        return self.send_now(frame)

    def send_now(self, frame: ApsFrame) -> bool:
        """`send` without a coroutine (the air never waits): what a ZCL server answers with."""
        if frame.src != self.eui:
            raise ValueError("frame.src must be the sending port's EUI (use VirtualAir.inject to spoof)")
        return self._air._send(frame, self)

    def detach(self) -> None:
        self._air._detach(self)

    def set_asleep(self, asleep: bool) -> None:
        """Sleepy devices call this as they doze off and wake up."""
        self._air.set_sleepy(self.eui, asleep)

    def __repr__(self) -> str:
        return f"VirtualPort({self.eui.hex().upper()}{'' if self.attached else ', detached'})"


class VirtualAir(AirTaps):
    """In-memory HAN medium (implements `HanTransport`).

    `latency` (seconds) and `loss` (probability 0..1) are the defaults for every link;
    `configure_link` overrides them per sender→recipient pair."""

    def __init__(
        self,
        clock: Clock | None = None,
        latency: float = 0.0,
        loss: float = 0.0,
        seed: int = 0,
    ) -> None:
        if latency < 0 or not 0.0 <= loss <= 1.0:
            raise ValueError("latency must be >= 0 and loss within 0..1")
        self.clock: Clock = clock if clock is not None else LoopClock()
        self.latency = latency
        self.loss = loss
        self.counters = AirCounters()
        self._rng = random.Random(seed)
        self._ports: dict[bytes, VirtualPort] = {}
        self._down: set[bytes] = set()
        self._asleep: set[bytes] = set()
        self._links: dict[tuple[bytes, bytes], tuple[float | None, float | None]] = {}
        self._flight: dict[tuple[bytes, bytes], deque[tuple[float, ApsFrame]]] = {}
        self._init_taps()

    # -- membership -----------------------------------------------------------------------

    def attach(self, eui: bytes, receive: Receiver) -> VirtualPort:
        if len(eui) != 8:
            raise ValueError("an EUI-64 is 8 bytes")
        if eui in self._ports:
            raise HanError(f"{eui.hex().upper()} is already attached")
        port = VirtualPort(self, bytes(eui), receive)
        self._ports[port.eui] = port
        return port

    def _detach(self, port: VirtualPort) -> None:
        port.attached = False
        if self._ports.get(port.eui) is port:
            del self._ports[port.eui]

    @property
    def euis(self) -> list[bytes]:
        return list(self._ports)

    # -- link conditions ------------------------------------------------------------------

    def set_link(self, eui: bytes, up: bool) -> None:
        """Take a device's radio link down (frames from or to it raise LinkDown) or up again."""
        if up:
            self._down.discard(eui)
        else:
            self._down.add(eui)

    def is_up(self, eui: bytes) -> bool:
        return eui not in self._down

    def set_sleepy(self, eui: bytes, asleep: bool = True) -> None:
        """Mark a device asleep (frames to it raise DeviceAsleep) or awake."""
        if asleep:
            self._asleep.add(eui)
        else:
            self._asleep.discard(eui)

    def is_asleep(self, eui: bytes) -> bool:
        return eui in self._asleep

    def configure_link(
        self,
        src: bytes,
        dst: bytes,
        *,
        latency: float | None = None,
        loss: float | None = None,
        symmetric: bool = True,
    ) -> None:
        """Per-link latency/loss; None keeps the air's default for that parameter."""
        if (latency is not None and latency < 0) or (loss is not None and not 0.0 <= loss <= 1.0):
            raise ValueError("latency must be >= 0 and loss within 0..1")
        self._links[(src, dst)] = (latency, loss)
        if symmetric:
            self._links[(dst, src)] = (latency, loss)

    @property
    def in_flight(self) -> int:
        return sum(len(q) for q in self._flight.values())

    # -- moving frames ----------------------------------------------------------------------

    def inject(self, frame: ApsFrame) -> bool:
        """Put a frame on the air as if `frame.src` sent it (spoofing, replay and fuzz tests)."""
        return self._send(frame, None)

    def _fail(self, frame: ApsFrame, outcome: str, error: HanError) -> HanError:
        self.counters.failed += 1
        if self._observers:
            self._emit(frame, outcome)
        return error

    def _send(self, frame: ApsFrame, port: VirtualPort | None) -> bool:
        counters = self.counters
        counters.sent += 1
        if port is not None and not port.attached:
            raise self._fail(frame, CLOSED, PortClosed(f"{port.eui.hex().upper()} is detached"))
        dst = self._ports.get(frame.dst)
        if dst is None:
            raise self._fail(frame, NO_ROUTE, NoRoute(f"no route to {frame.dst.hex().upper()}"))
        down = self._down
        if down and (frame.src in down or frame.dst in down):
            which = frame.src if frame.src in down else frame.dst
            raise self._fail(frame, LINK_DOWN, LinkDown(f"link of {which.hex().upper()} is down"))
        if self._asleep and frame.dst in self._asleep:
            raise self._fail(frame, ASLEEP, DeviceAsleep(f"{frame.dst.hex().upper()} is asleep"))
        latency, loss = self.latency, self.loss
        if self._links:
            override = self._links.get((frame.src, frame.dst))
            if override is not None:
                if override[0] is not None:
                    latency = override[0]
                if override[1] is not None:
                    loss = override[1]
        if loss and self._rng.random() < loss:
            counters.lost += 1
            if self._observers:
                self._emit(frame, LOST)
            return False
        if latency <= 0:
            counters.delivered += 1
            if self._observers:
                self._emit(frame, DELIVERED)
            deliver(dst._receive, frame)
            return True
        key = (frame.src, frame.dst)
        queue = self._flight.get(key)
        if queue is None:
            queue = self._flight[key] = deque()
        due = self.clock.now() + latency
        queue.append((due, frame))
        self.clock.call_at(due, partial(self._land, key, due))
        return True

    def _land(self, key: tuple[bytes, bytes], due: float) -> None:
        # Each timer releases every frame of its link that was due by its own time, oldest first;
        # so a link stays FIFO even when timers with equal times fire in any order.
        queue = self._flight.get(key)
        while queue and queue[0][0] <= due:
            self._arrive(queue.popleft()[1])
        if queue is not None and not queue:
            del self._flight[key]

    def _arrive(self, frame: ApsFrame) -> None:
        dst = self._ports.get(frame.dst)
        if dst is None or frame.dst in self._down or frame.src in self._down or frame.dst in self._asleep:
            self.counters.dropped += 1
            if self._observers:
                self._emit(frame, DROPPED)
            return
        self.counters.delivered += 1
        if self._observers:
            self._emit(frame, DELIVERED)
        deliver(dst._receive, frame)
