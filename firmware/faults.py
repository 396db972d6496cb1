"""Fault injection: the causes a test or a lab drives into a running device (`gbhub ctl fault EUI
KIND [ARGS...] [--phase N] [--seconds S]`), declared per device type like its use cases.

A device class lists the faults it can suffer in `FAULT_KINDS = fault_kinds(fault("tamper", fn,
"usage", "help"), ..., base=Parent.FAULT_KINDS)`; `fn(device, args, options) -> dict` applies the
fault at once and returns what it did (JSON-able). Anything that lasts (`--seconds`) runs on the
device's own clock, never by sleeping in the caller. `Device.inject_fault(kind, args, options)`
dispatches through the table: an unknown kind raises `UnknownFault`, bad arguments `FaultError`
(one line for the user).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Callable, Mapping

FaultRun = Callable[[Any, list, dict], dict]  # (device, args, options) -> result


class FaultError(ValueError):
    """The fault's arguments are wrong (the message is one line for the user)."""


class UnknownFault(FaultError):
    """The device has no fault of that kind."""


@dataclass(frozen=True, slots=True)
class FaultKind:
    """One fault a device type can suffer: name, what applies it, its argument usage and help."""

    kind: str
    run: FaultRun
    usage: str = ""
    help: str = ""
    options: tuple[str, ...] = ()  # the options it reads ("phase", "seconds")
    while_off: bool = False  # it applies to a device that is off too (switching its power on)


def fault(kind: str, run: FaultRun, usage: str = "", help: str = "", *, options: tuple[str, ...] = (),
          while_off: bool = False) -> FaultKind:
    return FaultKind(kind, run, usage, help, options, while_off)


def fault_kinds(*entries: FaultKind, base: Mapping[str, FaultKind] | None = None) -> Mapping[str, FaultKind]:
    """A device's fault table: `base` (the parent class's) plus `entries` (which may replace one)."""
    table = dict(base or {})
    seen: set[str] = set()
    for f in entries:
        if f.kind in seen:
            raise ValueError(f"fault {f.kind!r} declared twice")
        seen.add(f.kind)
        table[f.kind] = f
    return MappingProxyType(table)


def inject(device: Any, kind: str, args: list | tuple = (), options: dict | None = None) -> dict:
    """Apply fault `kind` to `device` through its `FAULT_KINDS` table (a device that is off takes
    only the faults declared `while_off`: `DeviceOff` for the others)."""
    table: Mapping[str, FaultKind] = getattr(device, "FAULT_KINDS", {})
    entry = table.get(kind)
    if entry is None:
        raise UnknownFault(f"{device.kind} {device.eui_hex} has no fault {kind}")
    if not entry.while_off:
        device._check_alive()
    options = {k: v for k, v in (options or {}).items() if v is not None}
    extra = sorted(set(options) - set(entry.options))
    if extra:
        raise FaultError(f"fault {kind} takes no --{extra[0]}")
    return entry.run(device, [str(a) for a in args], options)


# ---------------------------------------------------------------------------- argument helpers
def arity(kind: str, args: list, n: int, usage: str) -> None:
    if len(args) != n:
        raise FaultError(f"fault {kind} takes {usage or 'no arguments'}")


def number(text: Any, what: str, *, low: float | None = None, high: float | None = None) -> float:
    """A finite decimal number typed by a person (`230`, `-3.5`), within [low, high]."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise FaultError(f"{what} must be a number, not {text!r}") from None
    if not math.isfinite(value):
        raise FaultError(f"{what} must be a finite number")
    if low is not None and value < low:
        raise FaultError(f"{what} must be at least {low:g}")
    if high is not None and value > high:
        raise FaultError(f"{what} must be at most {high:g}")
    return value


def choice(text: str, what: str, allowed: tuple[str, ...]) -> str:
    if text not in allowed:
        raise FaultError(f"{what} must be {' or '.join(allowed)}, not {text!r}")
    return text


def table_markdown(table: Mapping[str, FaultKind]) -> str:
    rows = ["| fault | arguments | what it does |", "|---|---|---|"]
    rows += [f"| `{f.kind}` | {f.usage or '—'} | {f.help} |" for f in table.values()]
    return "\n".join(rows)


__all__ = ["FaultKind", "FaultError", "UnknownFault", "fault", "fault_kinds", "inject", "arity", "number", "choice",
           "table_markdown"]
