"""Device time: one `Clock` interface, a wall clock (`RealClock`) and a simulated one (`SimClock`).

Device code must take all its time from its clock (`now`, `sleep`, `call_at`, `every`) and never
from `time`/`asyncio.sleep`, so the same firmware runs in real time on a rig and fast-forwarded
in CI. Times are float UTC epoch seconds; `utcnow()` gives a tz-aware datetime.

Timer callbacks may be plain functions or return an awaitable (e.g. an `async def`); awaitables
are run as tasks. An exception in a callback is logged and never stops the clock.
"""
from __future__ import annotations

import asyncio
import heapq
import inspect
import itertools
import logging
import math
import time
from abc import ABC, abstractmethod
from datetime import datetime, timezone
from typing import Any, Callable

__all__ = [
    "HALF_HOUR",
    "DAY",
    "Clock",
    "RealClock",
    "SimClock",
    "TimerHandle",
    "Repeating",
    "to_epoch",
    "to_datetime",
    "next_boundary",
    "next_half_hour",
    "next_midnight",
]

HALF_HOUR = 1800.0
DAY = 86400.0

log = logging.getLogger(__name__)


def to_epoch(t: float | int | datetime) -> float:
    """Epoch seconds from a number or a datetime (a naive datetime is taken as UTC)."""
    if isinstance(t, datetime):
        if t.tzinfo is None:
            t = t.replace(tzinfo=timezone.utc)
        return t.timestamp()
    return float(t)


def to_datetime(t: float) -> datetime:
    """Tz-aware UTC datetime for epoch seconds."""
    return datetime.fromtimestamp(t, timezone.utc)


def next_boundary(t: float, period: float, offset: float = 0.0) -> float:
    """First instant strictly after `t` of the form `offset + k * period` (epoch-aligned, UTC).

    Strictly after: a device booted exactly on a boundary has no period to close there yet."""
    if period <= 0:
        raise ValueError("period must be positive")
    return offset + (math.floor((t - offset) / period) + 1) * period


def next_half_hour(t: float) -> float:
    """Next half-hour boundary (hh:00 or hh:30 UTC) strictly after `t`."""
    return next_boundary(t, HALF_HOUR)


def next_midnight(t: float) -> float:
    """Next UTC midnight strictly after `t`."""
    return next_boundary(t, DAY)


class TimerHandle:
    """A one-shot timer from `Clock.call_at`; `cancel()` is safe at any time, also after firing."""

    __slots__ = ("when", "_callback", "_args", "_clock", "_done")

    def __init__(self, clock: "Clock", when: float, callback: Callable[..., Any], args: tuple) -> None:
        self.when = when
        self._callback = callback
        self._args = args
        self._clock = clock
        self._done = False  # fired or cancelled

    @property
    def cancelled(self) -> bool:
        """True once the timer can no longer fire (cancelled or already fired)."""
        return self._done

    def cancel(self) -> None:
        if self._done:
            return
        self._done = True
        self._clock._timer_cancelled()

    def _run(self) -> None:
        if self._done:
            return
        self._done = True
        try:
            result = self._callback(*self._args)
        except Exception:
            log.exception("timer callback %r failed", self._callback)
            return
        if result is not None and inspect.isawaitable(result):
            self._clock._spawn(result)

    def __repr__(self) -> str:
        state = "done" if self._done else "pending"
        return f"<TimerHandle at {self.when} {state} {self._callback!r}>"


class Repeating:
    """A periodic timer from `Clock.every`. The callback gets the scheduled boundary time `t`
    (not `now()`), so late firing on a busy rig still files data under the right period."""

    __slots__ = ("period", "next_time", "_clock", "_callback", "_timer", "_cancelled")

    def __init__(self, clock: "Clock", period: float, callback: Callable[[float], Any]) -> None:
        self.period = period
        self.next_time = math.nan
        self._clock = clock
        self._callback = callback
        self._timer: TimerHandle | None = None
        self._cancelled = False

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def cancel(self) -> None:
        self._cancelled = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self, t: float) -> None:
        self.next_time = t
        self._timer = self._clock.call_at(t, self._fire, t)

    def _fire(self, t: float) -> Any:
        if self._cancelled:
            return None
        self._arm(t + self.period)  # before the callback: a failing callback keeps its schedule
        return self._callback(t)

    def __repr__(self) -> str:
        return f"<Repeating every {self.period}s next {self.next_time} {self._callback!r}>"


class Clock(ABC):
    """What device firmware sees as time."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Future] = set()

    @abstractmethod
    def now(self) -> float:
        """UTC epoch seconds."""

    def utcnow(self) -> datetime:
        return to_datetime(self.now())

    async def sleep(self, seconds: float) -> None:
        await self.sleep_until(self.now() + seconds)

    @abstractmethod
    async def sleep_until(self, t: float) -> None:
        """Return once `now() >= t` (at once, after one loop turn, if already past)."""

    @abstractmethod
    def call_at(self, t: float, callback: Callable[..., Any], *args: Any) -> TimerHandle:
        """Run `callback(*args)` when `now()` reaches `t` (soon, if `t` is already past)."""

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> TimerHandle:
        return self.call_at(self.now() + delay, callback, *args)

    def every(
        self,
        period: float,
        callback: Callable[[float], Any],
        *,
        align: bool = True,
        offset: float = 0.0,
    ) -> Repeating:
        """Call `callback(t)` every `period` seconds. With `align`, at the epoch-aligned instants
        `offset + k * period` (HALF_HOUR: hh:00/hh:30 UTC; DAY: UTC midnight, plus `offset`),
        starting strictly after now; otherwise first at `now() + period`."""
        if period <= 0:
            raise ValueError("period must be positive")
        now = self.now()
        first = next_boundary(now, period, offset) if align else now + period
        rep = Repeating(self, float(period), callback)
        rep._arm(first)
        return rep

    def next_half_hour(self, t: float | None = None) -> float:
        """Next half-hour boundary strictly after `t` (default: now)."""
        return next_half_hour(self.now() if t is None else t)

    # -- internals --
    def _spawn(self, awaitable) -> None:
        task = asyncio.ensure_future(awaitable)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Future) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("timer task failed", exc_info=task.exception())

    def _timer_cancelled(self) -> None:
        pass


def _resolve(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_result(None)


class RealClock(Clock):
    """Wall-clock UTC. With `speed` != 1 or a `start`, time runs `speed`x from `start` (default:
    the moment of construction) and is measured on the monotonic clock from then on.

    Timers wait in the clock's own heap, ordered by (time, order of setting) with C-level tuple
    comparisons; the event loop holds one timer, for the earliest. A fleet keeps ~8 timers a
    premises (80,000 in a worker): in the loop's own heap every push and pop compared
    `asyncio.TimerHandle`s in Python. Cancelled timers stay until due, or until they are most of
    the heap. Timers belong to the loop that set the first of them (a clock used by a later
    loop starts afresh: timers of a finished loop never fire, as before)."""

    def __init__(self, speed: float = 1.0, start: float | datetime | None = None) -> None:
        super().__init__()
        if not speed > 0:
            raise ValueError("speed must be positive")
        self.speed = float(speed)
        self._mono0 = time.monotonic()
        if start is None and self.speed == 1.0:
            self._origin: float | None = None
        else:
            self._origin = time.time() if start is None else to_epoch(start)
        self._heap: list[tuple[float, int, TimerHandle]] = []
        self._seq = itertools.count()
        self._cancelled_in_heap = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.TimerHandle | None = None
        self._wake_at = math.inf

    def now(self) -> float:
        if self._origin is None:
            return time.time()
        return self._origin + (time.monotonic() - self._mono0) * self.speed

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.speed)

    async def sleep_until(self, t: float) -> None:
        await asyncio.sleep(0)
        while (remaining := t - self.now()) > 0:
            await asyncio.sleep(remaining / self.speed)

    def call_at(self, t: float, callback: Callable[..., Any], *args: Any) -> TimerHandle:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._adopt(loop)
        handle = TimerHandle(self, float(t), callback, args)
        heapq.heappush(self._heap, (handle.when, next(self._seq), handle))
        if handle.when < self._wake_at:
            self._arm(loop)
        return handle

    def pending(self) -> int:
        """Number of live (not cancelled, not fired) timers."""
        return sum(1 for _, _, h in self._heap if not h._done)

    def _adopt(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._wake is not None:
            self._wake.cancel()
        self._loop, self._wake, self._wake_at = loop, None, math.inf
        self._heap, self._cancelled_in_heap = [], 0

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop's one timer, for the earliest timer in the heap."""
        heap = self._heap
        while heap and heap[0][2]._done:
            heapq.heappop(heap)
            self._cancelled_in_heap = max(0, self._cancelled_in_heap - 1)
        if self._wake is not None:
            self._wake.cancel()
            self._wake = None
        if not heap:
            self._wake_at = math.inf
            return
        self._wake_at = heap[0][0]
        self._wake = loop.call_later(max(0.0, (self._wake_at - self.now()) / self.speed), self._fire_due, loop)

    def _fire_due(self, loop: asyncio.AbstractEventLoop) -> None:
        # The loop runs on the monotonic clock; the wall clock may have been stepped meanwhile:
        # what is not due by `now()` waits again. Timers set by these callbacks, even for now,
        # fire at a later turn of the loop (as a loop timer set from a timer callback would).
        self._wake, self._wake_at = None, math.inf
        now, heap, due = self.now(), self._heap, []
        while heap and heap[0][0] <= now:
            handle = heapq.heappop(heap)[2]
            if handle._done:
                self._cancelled_in_heap = max(0, self._cancelled_in_heap - 1)
            else:
                due.append(handle)
        for i, handle in enumerate(due):
            try:
                handle._run()  # an Exception is logged there; a BaseException ends the batch here
            except BaseException:
                for rest in due[i + 1:]:
                    heapq.heappush(heap, (rest.when, next(self._seq), rest))
                if self._loop is loop and self._wake is None:
                    self._arm(loop)
                raise
        if self._loop is loop and self._wake is None:
            self._arm(loop)

    def _timer_cancelled(self) -> None:
        # Cancelled timers stay in the heap until due; rebuild when they dominate it.
        self._cancelled_in_heap += 1
        if self._cancelled_in_heap > 512 and self._cancelled_in_heap * 2 > len(self._heap):
            self._heap[:] = [e for e in self._heap if not e[2]._done]
            heapq.heapify(self._heap)
            self._cancelled_in_heap = 0


class SimClock(Clock):
    """Simulated time that moves only in `advance()` / `run_until()` (or with `start_autojump()`).

    Settling rule: after each batch of timers due at one instant fires, and before and after the
    whole run, the clock yields to the event loop until the loop's ready queue is empty, i.e.
    every task woken directly or indirectly by those timers has run until it waits on something
    else (another timer, a queue, I/O). At most `max_settle_turns` turns per settle, so a task
    that never waits cannot hang the clock. Work waiting on real I/O, real-time sleeps or
    threads is not waited for. On event loops without an inspectable ready queue (not CPython's
    asyncio), settling is a fixed `settle_turns` turns.

    `advance`/`run_until` must be awaited from outside the devices (a test or a driver task);
    calling them from inside a timer-woken task raises RuntimeError.
    """

    def __init__(
        self,
        start: float | datetime,
        *,
        settle_turns: int = 16,
        max_settle_turns: int = 10_000,
    ) -> None:
        super().__init__()
        self._now = to_epoch(start)
        self._heap: list[tuple[float, int, TimerHandle]] = []
        self._seq = itertools.count()
        self._cancelled_in_heap = 0
        self._advancer: asyncio.Task | None = None
        self._advance_done: asyncio.Future | None = None
        self._wake: asyncio.Future | None = None
        self._autojump: asyncio.Task | None = None
        self.settle_turns = settle_turns
        self.max_settle_turns = max_settle_turns

    def now(self) -> float:
        return self._now

    def call_at(self, t: float, callback: Callable[..., Any], *args: Any) -> TimerHandle:
        handle = TimerHandle(self, float(t), callback, args)
        heapq.heappush(self._heap, (handle.when, next(self._seq), handle))
        if self._wake is not None:
            _resolve(self._wake)
        return handle

    async def sleep_until(self, t: float) -> None:
        if t <= self._now:
            await asyncio.sleep(0)
            return
        fut = asyncio.get_running_loop().create_future()
        handle = self.call_at(t, _resolve, fut)
        try:
            await fut
        finally:
            handle.cancel()

    def pending(self) -> int:
        """Number of live (not cancelled, not fired) timers."""
        return sum(1 for _, _, h in self._heap if not h._done)

    def next_timer(self) -> float | None:
        """When the earliest live timer is due, or None."""
        heap = self._heap
        while heap and heap[0][2]._done:
            heapq.heappop(heap)
            self._cancelled_in_heap = max(0, self._cancelled_in_heap - 1)
        return heap[0][0] if heap else None

    async def advance(self, seconds: float) -> None:
        """Move time forward by `seconds`, firing every timer due on the way (see class doc)."""
        if seconds < 0:
            raise ValueError("cannot advance by a negative time")
        await self.run_until(self._now + seconds)

    async def run_until(self, t: float | datetime) -> None:
        """Move time forward to `t` (no-op on time if `t` is past), firing due timers in time
        order; each timer sees `now()` equal to its own due time; settles after each instant."""
        t = to_epoch(t)
        me = asyncio.current_task()
        while self._advancer is not None:
            if self._advancer is self._autojump and me is not self._autojump:
                await asyncio.shield(self._advance_done)  # let the autojump step finish
                continue
            raise RuntimeError("SimClock is already advancing (advance() called from a timer-woken task?)")
        self._advancer = me
        self._advance_done = asyncio.get_running_loop().create_future()
        try:
            await self.settle()
            heap = self._heap
            while heap:
                when, _, handle = heap[0]
                if handle._done:
                    heapq.heappop(heap)
                    self._cancelled_in_heap = max(0, self._cancelled_in_heap - 1)
                    continue
                if when > t:
                    break
                if when > self._now:
                    self._now = when
                # Fire everything due at this instant (including timers set for it by earlier ones).
                while heap and heap[0][0] <= when:
                    handle = heapq.heappop(heap)[2]
                    if handle._done:
                        self._cancelled_in_heap = max(0, self._cancelled_in_heap - 1)
                    else:
                        handle._run()
                await self.settle()
            if t > self._now:
                self._now = t
            await self.settle()
        finally:
            self._advancer = None
            _resolve(self._advance_done)

    async def settle(self) -> None:
        """Yield until the event loop has nothing ready to run (see class doc)."""
        ready = getattr(asyncio.get_running_loop(), "_ready", None)
        if ready is None:
            for _ in range(self.settle_turns):
                await asyncio.sleep(0)
            return
        for _ in range(self.max_settle_turns):
            await asyncio.sleep(0)
            if not ready:
                return
        log.warning("SimClock.settle: loop still busy after %d turns", self.max_settle_turns)

    # -- autojump: for tests that just await results from devices that sleep on the clock --
    def start_autojump(self, idle: float = 0.0) -> None:
        """Jump straight to the next timer whenever the event loop has nothing else to do (and,
        if `idle` > 0, after that many real seconds of quiet, to give real I/O a chance). Time
        then runs as fast as the devices allow; `advance()` may still be used alongside."""
        if self._autojump is not None:
            return
        self._autojump = asyncio.get_running_loop().create_task(self._autojump_loop(idle))

    async def stop_autojump(self) -> None:
        task, self._autojump = self._autojump, None
        if task is None:
            return
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass

    async def _autojump_loop(self, idle: float) -> None:
        loop = asyncio.get_running_loop()
        ready = getattr(loop, "_ready", None)
        while True:
            if self._advancer is not None:
                await asyncio.shield(self._advance_done)
                continue
            await asyncio.sleep(0)
            if ready is None:  # the loop cannot tell us: fixed turns
                await self.settle()
            elif ready:  # someone is still working
                continue
            if idle > 0:
                await asyncio.sleep(idle)
                await asyncio.sleep(0)
                if ready or self._advancer is not None:
                    continue
            due = self.next_timer()
            if due is None:
                self._wake = loop.create_future()
                try:
                    await self._wake
                finally:
                    self._wake = None
                continue
            await self.run_until(due)

    def _timer_cancelled(self) -> None:
        # Cancelled timers stay in the heap until due; rebuild when they dominate it.
        self._cancelled_in_heap += 1
        if self._cancelled_in_heap > 512 and self._cancelled_in_heap * 2 > len(self._heap):
            self._heap[:] = [e for e in self._heap if not e[2]._done]  # in place: run_until holds it
            heapq.heapify(self._heap)
            self._cancelled_in_heap = 0
