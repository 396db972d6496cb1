"""The HAN transport interface every link (virtual, zigbee, serial, ble) implements, and the
small pieces shared by transports and tunnel endpoints: the clock they run on and a per-cluster
dispatcher for a device's receive callback."""
from __future__ import annotations

import asyncio
import inspect
import logging
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Protocol, runtime_checkable

from .aps import ApsFrame

log = logging.getLogger("gbhub.han")

#: A device's receive callback: plain functions run inline, coroutine functions run as a task.
Receiver = Callable[[ApsFrame], "Awaitable[Any] | None"]



@dataclass(frozen=True, slots=True)
class AirEvent:
    """What a tap sees: one per send attempt, when its fate is known."""

    time: float
    frame: ApsFrame
    outcome: str


class AirTaps:
    """Observers of every frame a transport moves (HAN capture, tests); a failing observer is
    logged and never stops the air. Subclasses set `clock` and call `_init_taps()`."""

    clock: Any

    def _init_taps(self) -> None:
        self._observers: list[Callable[[AirEvent], Any]] = []

    def observe(self, callback: Callable[[AirEvent], Any]) -> Callable[[], None]:
        """Call `callback(AirEvent)` for every send attempt; returns a function that stops it."""
        self._observers.append(callback)

        def stop() -> None:
            if callback in self._observers:
                self._observers.remove(callback)

        return stop

    def _emit(self, frame: ApsFrame, outcome: str) -> None:
        if not self._observers:
            return
        event = AirEvent(self.clock.now(), frame, outcome)
        for observer in list(self._observers):
            try:
                observer(event)
            except Exception:
                log.exception("HAN observer failed")


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    """What han needs from a clock; `firmware.clock.SimClock` and `RealClock` provide it. Times
    are seconds on the clock's own scale (only differences matter here)."""

    def now(self) -> float: ...

    def call_at(self, when: float, callback: Callable[[], Any]) -> TimerHandle: ...

    async def sleep(self, seconds: float) -> None: ...


class LoopClock:
    """The running event loop's monotonic time: the default when no firmware clock is given."""

    def now(self) -> float:
        try:
            return asyncio.get_running_loop().time()
        except RuntimeError:  # outside the loop (e.g. a tap fired from sync set-up code)
            return time.monotonic()

    def call_at(self, when: float, callback: Callable[[], Any]) -> TimerHandle:
        return asyncio.get_running_loop().call_at(when, callback)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@runtime_checkable
class HanPort(Protocol):
    """One device's attachment to a HAN transport."""

    eui: bytes

    async def send(self, frame: ApsFrame) -> bool:
        """Hand `frame` to the link. True: accepted for delivery (the link-level ack). False: lost
        on the air after the link's own retries. Raises `HanError` (NoRoute, LinkDown,
        DeviceAsleep, PortClosed) when it cannot even be attempted."""
        ...

    def detach(self) -> None: ...


@runtime_checkable
class HanTransport(Protocol):
    """A HAN medium devices attach to."""

    def attach(self, eui: bytes, receive: Receiver) -> HanPort:
        """Attach device `eui`; every frame addressed to it goes to `receive`. When `receive`
        returns an awaitable the transport runs it as a task (see `deliver`)."""
        ...


# Tasks spawned for coroutine receivers; kept referenced so they are not collected mid-flight.
_background: set[asyncio.Task] = set()


def _task_done(task: asyncio.Task) -> None:
    _background.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.error("HAN receiver failed", exc_info=task.exception())


def spawn(awaitable: Awaitable[Any]) -> asyncio.Task:
    """Run `awaitable` in the background, logging (never raising) its failure."""
    task = asyncio.ensure_future(awaitable)
    _background.add(task)
    task.add_done_callback(_task_done)
    return task


def deliver(receive: Receiver, frame: ApsFrame) -> None:
    """Give `frame` to a receiver: inline if it is a plain function (the fast path), as a task if
    it returns an awaitable. A failing receiver is logged and never reaches the sender."""
    try:
        result = receive(frame)
    except Exception:  # a receiver bug must not become the sender's problem
        log.exception("HAN receiver failed")
        return
    if result is not None and inspect.isawaitable(result):
        spawn(result)


class ClusterDispatch:
    """A receive callback that routes frames by cluster id, so one port can serve the tunnel,
    Time, Metering ... handlers of a device. Create it before attaching, add handlers after.

    Frames for clusters with no handler go to `default` (if any), else are counted in
    `unhandled` and dropped."""

    __slots__ = ("handlers", "default", "unhandled")

    def __init__(
        self,
        handlers: dict[int, Receiver] | None = None,
        default: Receiver | None = None,
    ) -> None:
        self.handlers: dict[int, Receiver] = dict(handlers or {})
        self.default = default
        self.unhandled = 0

    def add(self, cluster: int, handler: Receiver) -> None:
        self.handlers[cluster] = handler

    def remove(self, cluster: int) -> None:
        self.handlers.pop(cluster, None)

    def __call__(self, frame: ApsFrame) -> "Awaitable[Any] | None":
        handler = self.handlers.get(frame.cluster, self.default)
        if handler is None:
            self.unhandled += 1
            log.debug("no handler for cluster 0x%04X from %s", frame.cluster, frame.src.hex())
            return None
        return handler(frame)
