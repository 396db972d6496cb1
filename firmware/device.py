"""The device process every emulated device runs on: an inbox-driven asyncio task with boot,
run, power-off and reboot, plus the platform services a SMETS2 device keeps in NVM: event and
security logs, anti-replay counters, firmware identity and A/B image slots.

Subclasses implement `handle(item)` (one inbox item at a time, in order), `on_boot()` (load
persisted state, arm timers) and, if they keep RAM state outside `self.ram`, `on_power_off()`.
Anything that must survive a power cut goes to `self.nvm`; anything else is lost on power-off,
as on the real device.
"""
from __future__ import annotations

import asyncio
import inspect
import logging
from collections import deque
from dataclasses import dataclass, replace
from types import CoroutineType
from typing import Any, Awaitable, Callable, ClassVar

from gbcs.catalogue import AlertCode
from gbcs.codec import eui_hex, parse_eui
from gbcs.security import CounterStore

from . import faults as _faults
from .clock import Clock, Repeating, TimerHandle
from .nvm import Nvm, NvmError, NvmView

__all__ = [
    "KINDS",
    "EVENT_LOG",
    "SECURITY_LOG",
    "EVENT_LOG_CLEARED",
    "LOG_CAPACITY",
    "RESERVED_NAMESPACES",
    "Device",
    "DeviceOff",
    "Inbox",
    "InboxFull",
    "FirmwareError",
    "Fault",
    "FirmwareImage",
    "FirmwareSlots",
]

log = logging.getLogger(__name__)

KINDS = ("chf", "gpf", "esme", "gsme", "ihd", "ppmid")
EVENT_LOG = "event"
SECURITY_LOG = "security"
LOG_CAPACITY = 100  # event and security logs: 100 entries FIFO [S FACTS 3.4]
EVENT_LOG_CLEARED = int(AlertCode.EVENT_LOG_CLEARED)  # recorded in the security log [S ALERTS]

_SYS_NS = "sys"  # boot count, firmware slots
_COUNTERS_NS = "counters"  # anti-replay: last accepted counter per remote party (hex EUI)
_OWN_COUNTERS_NS = "own_counters"  # this device's own outgoing counters, by name
RESERVED_NAMESPACES = (_SYS_NS, _COUNTERS_NS, _OWN_COUNTERS_NS, EVENT_LOG, SECURITY_LOG)


class FirmwareError(Exception):
    """Base of the device runtime's errors."""


class Inbox:
    """A device's inbox: FIFO of (item, future | None), bounded (`maxsize` 0: unbounded), one
    consumer (the device task). Does what `asyncio.Queue` did here (`put_nowait` raising
    `asyncio.QueueFull`, `get`, `task_done`, `join`, `empty`, `qsize`) without its per-item
    getter/putter bookkeeping: every command crosses two or three inboxes."""

    __slots__ = ("maxsize", "items", "_getter", "_unfinished", "_joiners")

    def __init__(self, maxsize: int = 0) -> None:
        self.maxsize = maxsize
        self.items: deque[tuple[Any, Any]] = deque()
        self._getter: asyncio.Future | None = None
        self._unfinished = 0
        self._joiners: list[asyncio.Future] = []

    def qsize(self) -> int:
        return len(self.items)

    def empty(self) -> bool:
        return not self.items

    def put_nowait(self, entry: tuple[Any, Any]) -> None:
        if self.maxsize > 0 and len(self.items) >= self.maxsize:
            raise asyncio.QueueFull
        self.items.append(entry)
        self._unfinished += 1
        getter = self._getter
        if getter is not None and not getter.done():
            getter.set_result(None)

    def get_nowait(self) -> tuple[Any, Any]:
        if not self.items:
            raise asyncio.QueueEmpty
        return self.items.popleft()

    async def wait(self) -> None:
        """Until an item is queued (returns at once if one is)."""
        while not self.items:
            getter = self._getter = asyncio.get_running_loop().create_future()
            try:
                await getter
            finally:
                self._getter = None

    async def get(self) -> tuple[Any, Any]:
        await self.wait()
        return self.items.popleft()

    def task_done(self) -> None:
        if self._unfinished <= 0:
            raise ValueError("task_done() called too many times")
        self._unfinished -= 1
        if self._unfinished == 0 and self._joiners:
            joiners, self._joiners = self._joiners, []
            for f in joiners:
                if not f.done():
                    f.set_result(None)

    async def join(self) -> None:
        """Until every item put has been marked done."""
        if self._unfinished > 0:
            fut = asyncio.get_running_loop().create_future()
            self._joiners.append(fut)
            await fut


class DeviceOff(FirmwareError):
    """The device is powered off (or went off while the request was queued or running)."""


class InboxFull(FirmwareError):
    """The device's bounded inbox is full."""


@dataclass(frozen=True, slots=True)
class Fault:
    """An exception caught by the runtime (emulator diagnostics, kept across power-off)."""

    time: float
    source: str  # "handle", "timer", "task", "on_power_off"
    item: str  # short repr of what was being handled
    error: BaseException


@dataclass(frozen=True, slots=True)
class FirmwareImage:
    """One image slot's content: its version (GBCS firmware version octets) and the manufacturer
    image hash (SHA-256, 32 bytes; None for the factory image)."""

    version: bytes
    image_hash: bytes | None = None

    def to_nvm(self) -> dict:
        return {"version": self.version, "image_hash": self.image_hash}

    @classmethod
    def from_nvm(cls, d: dict | None) -> "FirmwareImage | None":
        return None if d is None else cls(d["version"], d.get("image_hash"))


@dataclass(frozen=True, slots=True)
class FirmwareSlots:
    """A/B image slots: the device runs the `active` slot; a received image is stored in the
    other one and activation (later) swaps them."""

    active: str = "A"
    a: FirmwareImage | None = None
    b: FirmwareImage | None = None

    def __post_init__(self) -> None:
        if self.active not in ("A", "B"):
            raise ValueError("active slot is 'A' or 'B'")

    def slot(self, name: str) -> FirmwareImage | None:
        return self.a if name == "A" else self.b

    @property
    def inactive(self) -> str:
        return "B" if self.active == "A" else "A"

    @property
    def running(self) -> FirmwareImage:
        image = self.slot(self.active)
        if image is None:
            raise ValueError("active slot is empty")
        return image

    @property
    def standby(self) -> FirmwareImage | None:
        """The image in the inactive slot (a received, not yet activated image, or the previous one)."""
        return self.slot(self.inactive)

    def with_standby(self, image: FirmwareImage | None) -> "FirmwareSlots":
        return replace(self, **{self.inactive.lower(): image})

    def swapped(self) -> "FirmwareSlots":
        if self.standby is None:
            raise ValueError("no image in the inactive slot")
        return replace(self, active=self.inactive)

    def to_nvm(self) -> dict:
        return {
            "active": self.active,
            "A": None if self.a is None else self.a.to_nvm(),
            "B": None if self.b is None else self.b.to_nvm(),
        }

    @classmethod
    def from_nvm(cls, d: dict) -> "FirmwareSlots":
        return cls(d["active"], FirmwareImage.from_nvm(d.get("A")), FirmwareImage.from_nvm(d.get("B")))


def _as_bytes(version: bytes | str) -> bytes:
    return version.encode() if isinstance(version, str) else bytes(version)


def _short(item: Any, limit: int = 200) -> str:
    try:
        text = repr(item)
    except Exception:  # a broken __repr__ must not hide the original fault
        text = f"<{type(item).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Device:
    """Base of every emulated device (see module doc). States: off -> booting -> on
    (-> stopping) -> off."""

    kind: ClassVar[str] = ""
    factory_firmware_version: ClassVar[bytes] = b"\x00\x01\x00\x00"
    log_capacity: ClassVar[int] = LOG_CAPACITY
    fault_capacity: ClassVar[int] = 32

    def __init__(
        self,
        eui: bytes | str,
        *,
        clock: Clock,
        nvm: NvmView | None = None,
        kind: str | None = None,
        firmware_version: bytes | str | None = None,
        inbox_size: int = 0,
    ) -> None:
        self.eui = parse_eui(eui)
        self.eui_hex = eui_hex(self.eui)
        kind = kind or type(self).kind
        if kind not in KINDS:
            raise ValueError(f"device kind must be one of {KINDS}, not {kind!r}")
        self.kind = kind
        self.clock = clock
        self.nvm = (Nvm(None) if nvm is None else nvm).scope(self.eui_hex)
        self._factory_version = _as_bytes(
            self.factory_firmware_version if firmware_version is None else firmware_version
        )
        self.inbox_size = inbox_size
        self.inbox = Inbox(inbox_size)
        self.ram: dict[str, Any] = {}  # volatile scratch state, cleared on power-off
        self.handled = 0  # items handled without an exception
        self.dropped = 0  # items refused: powered off or inbox full
        self.fault_count = 0
        self.faults: deque[Fault] = deque(maxlen=self.fault_capacity)
        self._state = "off"
        self._task: asyncio.Task | None = None
        self._tasks: set[asyncio.Future] = set()
        self._timers: set[TimerHandle | Repeating] = set()
        self._counters: CounterStore | None = None
        self._unsaved_counters: dict[str, int] = {}  # own counters NVM failed to store
        self._busy = False
        self._idle_waiter: asyncio.Future | None = None
        self._background: set[asyncio.Future] = set()

    # ------------------------------------------------------------------ hooks
    async def handle(self, item: Any) -> Any:
        """Process one inbox item; the return value goes to `call()`'s caller."""
        raise NotImplementedError(f"{type(self).__name__}.handle")

    async def on_boot(self) -> None:
        """Load persisted state into RAM and arm timers. Runs before the inbox task starts;
        `post`, `call_at`, `every` and `spawn` already work."""

    def on_power_off(self) -> None:
        """Drop RAM state kept outside `self.ram` (timers, tasks and the inbox are handled)."""

    # ------------------------------------------------------------------ state
    @property
    def state(self) -> str:
        return self._state

    @property
    def running(self) -> bool:
        return self._state == "on"

    @property
    def boot_count(self) -> int:
        return self.nvm.get(_SYS_NS, "boot_count", 0)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.kind} {self.eui_hex} {self._state}>"

    # ------------------------------------------------------------------ fault injection
    #: The faults this device type can suffer (`firmware.faults`: `fault_kinds(fault(...), ...)`).
    FAULT_KINDS: ClassVar[Any] = {}

    def inject_fault(self, kind: str, args: list | tuple = (), options: dict | None = None) -> dict:
        """Apply fault `kind` now (`gbhub ctl fault`); returns what it did. `UnknownFault` when
        this device has no such fault, `FaultError` (one line) for bad arguments, `DeviceOff` when
        it is off (unless the fault is declared `while_off`)."""
        return _faults.inject(self, kind, args, options)

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Boot: count the boot, make sure the firmware slots exist, load the counters, run
        `on_boot()`, then start the inbox task. No-op unless off. If boot fails the device is
        left off and the exception propagates."""
        if self._state != "off":
            return
        self._state = "booting"
        self.inbox = Inbox(self.inbox_size)
        try:
            with self.nvm.transaction():
                self.nvm.put(_SYS_NS, "boot_count", self.boot_count + 1)
                if self.nvm.get(_SYS_NS, "firmware") is None:
                    self.set_firmware(self.firmware)
            self._counters = self._load_counters()
            await self.on_boot()
        except BaseException:
            await self._teardown()
            raise
        if self._state != "booting":  # powered off during on_boot
            return
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"{self.kind}-{self.eui_hex}")
        self._state = "on"

    async def power_off(self) -> None:
        """Power cut: stop at once (the item being handled is abandoned, its caller gets
        DeviceOff), cancel timers and tasks, drop the inbox and RAM state. NVM stays."""
        if self._state == "off":
            return
        self._check_not_own_task("power_off")
        await self._teardown()

    async def reboot(self) -> None:
        await self.power_off()
        await self.start()

    async def stop(self, drain: bool = False) -> None:
        """Orderly shutdown: refuse new items, finish the item being handled (and, with `drain`,
        everything already queued), then as `power_off()`."""
        if self._state == "off":
            return
        self._check_not_own_task("stop")
        if self._state == "on":
            self._state = "stopping"
        if drain and self._task is not None:
            await self.inbox.join()
        if self._busy and self._task is not None:
            self._idle_waiter = asyncio.get_running_loop().create_future()
            await self._idle_waiter
        await self._teardown()

    def schedule_reboot(self, delay: float = 0.0) -> None:
        """Reboot `delay` clock-seconds from now, from outside the device's own task (for use
        inside `handle`, e.g. after answering a command)."""

        def go() -> None:
            task = asyncio.get_running_loop().create_task(self.reboot())
            self._background.add(task)
            task.add_done_callback(self._background.discard)

        self.call_later(delay, go)

    def _check_not_own_task(self, what: str) -> None:
        current = asyncio.current_task()
        if current is not None and (current is self._task or current in self._tasks):
            raise FirmwareError(f"{what}() from the device's own task would cancel itself; use schedule_reboot()")

    async def _teardown(self) -> None:
        self._state = "off"
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        tasks = [t for t in (self._task, *self._tasks) if t is not None]
        self._task = None
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        inbox, self.inbox = self.inbox, Inbox(self.inbox_size)
        while not inbox.empty():
            _, fut = inbox.get_nowait()
            if fut is not None and not fut.done():
                fut.set_exception(DeviceOff(f"{self.kind} {self.eui_hex} powered off"))
        self._busy = False
        if self._idle_waiter is not None and not self._idle_waiter.done():
            self._idle_waiter.set_result(None)
        self._idle_waiter = None
        self._counters = None
        self.ram.clear()
        try:
            self.on_power_off()
        except Exception as exc:
            self._fault("on_power_off", None, exc)

    # ------------------------------------------------------------------ inbox
    def post(self, item: Any) -> bool:
        """Queue `item` for `handle`. Returns False (and counts it in `dropped`) if the device
        is not accepting (off, stopping) or its bounded inbox is full."""
        if self._state not in ("on", "booting"):
            self.dropped += 1
            return False
        try:
            self.inbox.put_nowait((item, None))
        except asyncio.QueueFull:
            self.dropped += 1
            return False
        return True

    async def call(self, item: Any) -> Any:
        """Queue `item` and wait for what `handle` returns (or raises). Raises DeviceOff if the
        device is off or goes off first, InboxFull if its inbox is full. Never call it from the
        device's own `handle` (it would wait for itself)."""
        if self._state not in ("on", "booting"):
            self.dropped += 1
            raise DeviceOff(f"{self.kind} {self.eui_hex} is off")
        fut = asyncio.get_running_loop().create_future()
        try:
            self.inbox.put_nowait((item, fut))
        except asyncio.QueueFull:
            self.dropped += 1
            raise InboxFull(f"{self.kind} {self.eui_hex} inbox full") from None
        return await fut

    async def _run(self) -> None:
        inbox = self.inbox
        items = inbox.items
        while True:
            if not items:
                await inbox.wait()
            item, fut = items.popleft()
            self._busy = True
            try:
                if fut is not None and fut.done():  # the caller gave up
                    continue
                try:
                    result = self.handle(item)
                    if result.__class__ is CoroutineType or inspect.isawaitable(result):
                        result = await result
                except asyncio.CancelledError:
                    if fut is not None and not fut.done():
                        fut.set_exception(DeviceOff(f"{self.kind} {self.eui_hex} powered off"))
                    raise
                except Exception as exc:
                    self._fault("handle", item, exc)
                    if fut is not None and not fut.done():
                        fut.set_exception(exc)
                else:
                    self.handled += 1
                    if fut is not None and not fut.done():
                        fut.set_result(result)
            finally:
                self._busy = False
                inbox.task_done()
            waiter = self._idle_waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(None)  # stop(): this item is finished; end here
                return

    def _fault(self, source: str, item: Any, exc: BaseException) -> None:
        self.fault_count += 1
        short = _short(item)
        self.faults.append(Fault(self.clock.now(), source, short, exc))
        log.error("%s %s: %s failed on %s", self.kind, self.eui_hex, source, short, exc_info=exc)

    # ------------------------------------------------------------------ timers and tasks
    def _check_alive(self) -> None:
        if self._state == "off":
            raise DeviceOff(f"{self.kind} {self.eui_hex} is off")

    def _invoke(self, source: str, callback: Callable[..., Any], args: tuple) -> None:
        try:
            result = callback(*args)
        except Exception as exc:
            self._fault(source, callback, exc)
            return
        if result is not None and inspect.isawaitable(result):
            self.spawn(result)

    def _track(self, timer: TimerHandle | Repeating) -> None:
        if len(self._timers) > 64:
            self._timers = {t for t in self._timers if not t.cancelled}
        self._timers.add(timer)

    def call_at(self, t: float, callback: Callable[..., Any], *args: Any) -> TimerHandle:
        """A clock timer owned by the device: cancelled on power-off; exceptions are faults;
        an awaitable result runs as a device task. Use it for future-dated actions."""
        self._check_alive()
        box: list[TimerHandle] = []

        def fire() -> None:
            self._timers.discard(box[0])
            self._invoke("timer", callback, args)

        handle = self.clock.call_at(t, fire)
        box.append(handle)
        self._track(handle)
        return handle

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> TimerHandle:
        return self.call_at(self.clock.now() + delay, callback, *args)

    def every(
        self,
        period: float,
        callback: Callable[[float], Any],
        *,
        align: bool = True,
        offset: float = 0.0,
    ) -> Repeating:
        """`clock.every` owned by the device (see `call_at`); `callback(t)` gets the boundary."""
        self._check_alive()
        rep = self.clock.every(period, lambda t: self._invoke("timer", callback, (t,)), align=align, offset=offset)
        self._track(rep)
        return rep

    def spawn(self, awaitable: Awaitable[Any], *, name: str | None = None) -> asyncio.Future:
        """Run a background task owned by the device (cancelled on power-off; a failure is a fault)."""
        if self._state == "off":
            if inspect.iscoroutine(awaitable):
                awaitable.close()
            raise DeviceOff(f"{self.kind} {self.eui_hex} is off")
        task = asyncio.ensure_future(awaitable)
        if name is not None and isinstance(task, asyncio.Task):
            task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._task_finished)
        return task

    def _task_finished(self, task: asyncio.Future) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self._fault("task", task, exc)

    # ------------------------------------------------------------------ logs
    def append_log(self, name: str, code: Any, **detail: Any) -> dict:
        """Append `{time, code, **detail}` to the persisted log `name` (FIFO, `log_capacity`).
        `detail` may override `time`. Values: JSON-able or bytes."""
        entry = {"time": self.clock.now(), "code": code, **detail}
        self.nvm.log_append(name, entry, self.log_capacity)
        return entry

    def read_log(self, name: str) -> list[dict]:
        return self.nvm.log_entries(name)

    def log_event(self, code: Any, **detail: Any) -> dict:
        return self.append_log(EVENT_LOG, code, **detail)

    def log_security(self, code: Any, **detail: Any) -> dict:
        return self.append_log(SECURITY_LOG, code, **detail)

    def event_log(self) -> list[dict]:
        return self.nvm.log_entries(EVENT_LOG)

    def security_log(self) -> list[dict]:
        return self.nvm.log_entries(SECURITY_LOG)

    def clear_event_log(self, **detail: Any) -> None:
        """Clear the event log and record that in the security log (which cannot be cleared),
        atomically. `detail` goes into the security-log entry (e.g. who asked)."""
        with self.nvm.transaction():
            self.nvm.log_clear(EVENT_LOG)
            self.log_security(EVENT_LOG_CLEARED, **detail)

    # ------------------------------------------------------------------ counters
    def _load_counters(self) -> CounterStore:
        return CounterStore((bytes.fromhex(k), v) for k, v in self.nvm.items(_COUNTERS_NS))

    def _forget_counters(self) -> None:
        self._counters = None  # reloaded from NVM on next use

    @property
    def counters(self) -> CounterStore:
        """Anti-replay counters (last accepted originator counter per remote party)."""
        if self._counters is None:
            self._counters = self._load_counters()
        return self._counters

    def accept_counter(self, party: bytes, counter: int) -> bool:
        """Anti-replay check: accept and persist `counter` if it is above the last one accepted
        from `party`; False (nothing changes) for a replay. Inside `nvm.transaction()` the new
        value commits or rolls back with the caller's other writes (RAM copy included)."""
        store = self.counters
        if not store.fresh(party, counter):
            return False
        self.nvm.put(_COUNTERS_NS, party.hex().upper(), counter)
        store.accept(party, counter)
        self.nvm.on_rollback(self._forget_counters)
        return True

    def next_counter(self, name: str = "originator", floor: int = 0) -> int:
        """This device's own strictly increasing counter `name` (persisted): max(last + 1, floor).
        `floor` allows time-based counters."""
        value = max(self.nvm.get(_OWN_COUNTERS_NS, name, 0) + 1, floor, self._unsaved_counters.get(name, -1) + 1)
        try:
            self.nvm.put(_OWN_COUNTERS_NS, name, value)
        except NvmError:  # NVM failing: stay increasing in RAM, so the alert saying so still goes out
            self._unsaved_counters[name] = value
        return value

    # ------------------------------------------------------------------ firmware identity
    @property
    def firmware(self) -> FirmwareSlots:
        raw = self.nvm.get(_SYS_NS, "firmware")
        if raw is None:
            return FirmwareSlots("A", FirmwareImage(self._factory_version))
        return FirmwareSlots.from_nvm(raw)

    def set_firmware(self, slots: FirmwareSlots) -> None:
        self.nvm.put(_SYS_NS, "firmware", slots.to_nvm())

    @property
    def firmware_version(self) -> bytes:
        """Version of the running image (GBCS firmware version octets)."""
        return self.firmware.running.version

    def store_firmware_image(self, version: bytes | str, image_hash: bytes | None) -> FirmwareSlots:
        """Put a received image in the inactive slot (replacing what was there)."""
        slots = self.firmware.with_standby(FirmwareImage(_as_bytes(version), image_hash))
        self.set_firmware(slots)
        return slots
