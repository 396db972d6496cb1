"""Future-dated execution and cancellation (FACTS §1.11), one mechanism for every GBCS device.

A command that carries an execution date-time is answered at once ("command accepted": DLMS Set
success, ASN.1 NULL); the device keeps the instruction in NVM and, at that time on its own clock,
executes it and sends the future-dated alert (FDA): 0x8F66 when it succeeded, 0x8F67 when not,
signed, in the message code of the payload kind — FDA_DLMS (0x00CC) for DLMS activations, and the
use case's own FDA for ASN.1 / GBZ ones (0x00CA firmware activation, 0x00CB security credentials,
0x00CD GBZ), whose payload the action builds. The "never" date-time cancels (DLMS all 0xFF, ASN.1
99991231235959Z); a date-time that is "now" (all zero) or past executes at once. Pending
instructions survive power cuts and restarts (`FutureDated`, NVM namespace "pending").

Two ways in:

* DLMS: an *activation attribute* (`activation(model, oid, attribute, run)`) in the device class's
  shared COSEM object model (`firmware.cosem`). Writing it does the above; `run(device)` copies
  passive values to active ones (or whatever the activation means). Its FDA carries `FutureDatedAlert(message code, originator
  counter, class, OBIS, attribute)` [O RTDS ECS01b/ECS02/ECS08a 8F66 alerts: one alert per
  activation attribute]. A use case whose content sets activation attributes is declared
  `dlms(MessageCode.X, future=True)`: its execution times must all be the same (GB081 p.2;
  otherwise the command is refused as malformed [I]).
* anything else (ASN.1 CS06/CS02*, GBZ): `device.future.schedule(key, due, action, data)` inside the
  command's execution, with `action` a name in the device class's `FUTURE_ACTIONS` table
  (`{name: fn(device, entry) -> FdaOutcome}`); `device.future.cancel(key)` for the "never" date.
  CS06 does so on every device (`firmware.update.FutureDatedActivation`, action
  "firmware_activation": FDA-CS06 0x00CA to the command's originator, then the reboot).

Times are device time (`device.device_now()` when the device keeps its own clock offset). A device
may hold instructions instead of arming timers for them (`device.holds_future_dated(due)` true) and
run them itself with `run_due()` (the sleepy GSME, when told to execute them at its next wake).
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Callable

from gbcs.catalogue import AlertCode, MessageCode
from gbcs.dlms import Data, DataType, DlmsDateTime, FutureDatedAlert
from gbcs.obis import CosemObjectId

from . import cosem
from .cosem import Attribute, CosemError
from .nvm import NvmError

log = logging.getLogger("gbhub.device")

PENDING_NS = "pending"
DLMS_ACTIVATION = "activation"  # the action of DLMS activation attributes


@dataclass
class FdaOutcome:
    """What a future-dated action reports: success (0x8F66) or not (0x8F67), and the FDA's
    message code and payload (`content`, or `elements` after the alert code in a DLMS
    DATA-NOTIFICATION)."""

    ok: bool
    message_code: int = MessageCode.FDA_DLMS
    content: bytes | None = None
    content_for: Callable[[int], bytes] | None = None  # (alert code) -> content, when it names the code
    elements: tuple = ()
    recipient: Any = None  # the FDA's recipient (a trust anchor; default: the device's alert recipient)
    then: Callable[[], Any] | None = None  # after the FDA went (CS06: the reboot into the new image)


def _key(class_id: int, ln: bytes, attribute: int) -> str:
    return f"{class_id}/{ln.hex()}/{attribute}"


class FutureDated:
    """A device's pending future-dated instructions (module doc)."""

    def __init__(self, device: Any, namespace: str = PENDING_NS) -> None:
        """`device`: the `GbcsDevice` whose NVM, clock and alerts it uses."""
        self.device = device
        self.namespace = namespace
        self._timers: dict[str, Any] = {}

    def now(self) -> float:
        d = self.device
        return d.device_now() if hasattr(d, "device_now") else d.clock.now()

    # -- scheduling (inside the command's transaction) --
    def schedule(self, key: str, due: float, action: str, data: dict | None = None, *,
                 command: Any = None) -> None:
        """Keep instruction `key` (one per key: a newer one replaces it) to run `action` at device
        time `due`; `command` (default: the one executing) is named in its FDA."""
        command = command if command is not None else getattr(self.device, "current_command", None)
        self.device.nvm.put(self.namespace, key, {
            "due": due, "action": action, **(data or {}),
            "message_code": command.message_code if command is not None else 0,
            "counter": command.originator_counter if command is not None else 0,
        })
        self.device.nvm.on_rollback(self._arm_soon)
        self._arm_one(key, due)

    def cancel(self, key: str) -> bool:
        existed = self.device.nvm.get(self.namespace, key) is not None
        self.device.nvm.delete(self.namespace, key)
        self.device.nvm.on_rollback(self._arm_soon)
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        return existed

    def pending(self) -> dict[str, dict]:
        return dict(self.device.nvm.items(self.namespace))

    # -- timers --
    def arm(self) -> None:
        """(Re)arm every pending instruction: on boot and after the device clock moved."""
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for key, entry in self.device.nvm.items(self.namespace):
            self._arm_one(key, entry["due"])

    def _arm_soon(self) -> None:
        """After a rollback (its NVM restored first): arm what is pending again."""
        try:
            asyncio.get_running_loop().call_soon(self.arm)
        except RuntimeError:  # no loop: nothing is armed either
            pass

    def disarm(self) -> None:
        self._timers.clear()  # the device's own timers die with it on power-off

    def run_due(self) -> int:
        """Execute every pending instruction whose time has come, now; how many ran (a sleepy
        device that holds them until it wakes: `holds_future_dated` below)."""
        due = [key for key, entry in self.device.nvm.items(self.namespace) if entry["due"] <= self.now() + 1e-3]
        for key in due:
            self._run(key)
        return len(due)

    def _arm_one(self, key: str, due: float) -> None:
        d = self.device
        if d.state == "off":
            return
        hold = getattr(d, "holds_future_dated", None)
        if hold is not None and hold(due):  # the device runs it itself (`run_due`), e.g. at its next wake
            return
        old = self._timers.pop(key, None)
        if old is not None:
            old.cancel()
        shared = due - (self.now() - d.clock.now())
        self._timers[key] = d.call_at(max(shared, d.clock.now()), self._run, key)

    def _run(self, key: str) -> None:
        """Time has come: execute, forget, and send the FDA (all or nothing in NVM)."""
        self._timers.pop(key, None)
        d = self.device
        entry = d.nvm.get(self.namespace, key)
        if entry is None:  # cancelled, or its command rolled back
            return
        if entry["due"] > self.now() + 1e-3:  # the device clock went back: later
            self._arm_one(key, entry["due"])
            return
        try:
            with d.nvm.transaction():
                d.nvm.delete(self.namespace, key)
                outcome = self._execute(key, entry)
        except NvmError as exc:
            log.error("%s %s: future-dated %s not stored: %s", d.kind, d.eui_hex, key, exc)
            return
        code = (AlertCode.FUTURE_DATE_HAN_INTERFACE_COMMAND_SUCCESSFULLY_ACTIONED if outcome.ok
                else AlertCode.FUTURE_DATE_HAN_INTERFACE_COMMAND_NOT_SUCCESSFULLY_ACTIONED)
        content = outcome.content if outcome.content_for is None else outcome.content_for(code)
        kw: dict[str, Any] = {"critical": True, "message_code": outcome.message_code}
        if content is not None:
            kw["content"] = content
        else:
            kw["elements"] = outcome.elements
        if outcome.recipient is not None:
            kw["recipient"] = outcome.recipient

        async def fda() -> None:
            await d.raise_alert(code, **kw)
            if outcome.then is not None:
                outcome.then()

        d.spawn(fda())
        after = getattr(d, "after_future_dated", None)
        if after is not None:
            after()

    def _execute(self, key: str, entry: dict) -> FdaOutcome:
        action = entry.get("action", DLMS_ACTIVATION)
        d = self.device
        if action == DLMS_ACTIVATION:
            ln = bytes.fromhex(entry["obis"])
            note = FutureDatedAlert(entry["message_code"], entry["counter"], entry["class_id"], ln, entry["attribute"])
            objects = getattr(d, "objects", None)
            run = None if objects is None else objects.activations.get((entry["class_id"], ln, entry["attribute"]))
            ok = run is not None
            if run is not None:
                try:
                    with d.nvm.transaction():
                        run(d)
                except (CosemError, ValueError, KeyError) as exc:
                    log.warning("%s %s: future-dated activation %s failed: %s", d.kind, d.eui_hex, key, exc)
                    ok = False
            return FdaOutcome(ok, MessageCode.FDA_DLMS, elements=(Data.octet_string(note.to_bytes()),))
        fn = type(d).FUTURE_ACTIONS.get(action)
        if fn is None:
            log.warning("%s %s: no future-dated action %r", d.kind, d.eui_hex, action)
            return FdaOutcome(False)
        return fn(d, entry)



def activation(model: Any, oid: CosemObjectId | tuple[int, bytes], attribute: int, run: Callable[[Any], None], *,
               load: Callable[[Any], Data | None] | None = None,
               store: Callable[[Any, Data], None] | None = None) -> Attribute:
    """A COSEM attribute holding an activation date-time (module doc), for the shared object
    `model` (`firmware.cosem.ObjectModel`, which records `run` in its `activations`). Its value is
    kept by `load(device)`/`store(device, value)` (default: the device's FutureDated NVM
    namespace); `run(device)` activates."""
    class_id, ln = (oid.class_id, oid.obis) if isinstance(oid, CosemObjectId) else oid
    key = _key(class_id, ln, attribute)
    model.activations[(class_id, ln, attribute)] = run
    value_key = "value:" + key
    if load is None:
        def load(d: Any) -> Data | None:
            raw = d.nvm.get(d.future.namespace + "_values", value_key)
            return None if raw is None else Data.octet_string(bytes.fromhex(raw))
    if store is None:
        def store(d: Any, v: Data) -> None:
            d.nvm.put(d.future.namespace + "_values", value_key, v.value.hex())

    def get(d: Any) -> Data:
        value = load(d)
        return value if value is not None else Data.timestamp(None)

    def put(d: Any, value: Data) -> None:
        if value.type is not DataType.OCTET_STRING or len(value.value) != 12:
            raise CosemError(cosem.TYPE_UNMATCHED, "activation time must be a 12-byte date-time")
        dt = DlmsDateTime.from_bytes(value.value)
        when = None if dt.is_immediate or dt.is_never else cosem.epoch_of(value)
        if not (dt.is_immediate or dt.is_never) and when is None:
            raise CosemError(cosem.OTHER_REASON, "activation time not understood")
        store(d, value)
        future = d.future
        if dt.is_never:
            future.cancel(key)
        elif when is None or when <= future.now():
            future.cancel(key)
            run(d)
        else:
            future.schedule(key, when, DLMS_ACTIVATION, {"class_id": class_id, "obis": ln.hex(), "attribute": attribute})

    return Attribute(get=get, set=put)


def execution_times(values: list[Data]) -> set[bytes]:
    """The distinct future execution date-times among activation values (GB081: must be one)."""
    out = set()
    for v in values:
        if v.type is DataType.OCTET_STRING and len(v.value) == 12:
            dt = DlmsDateTime.from_bytes(v.value)
            if not dt.is_never and not dt.is_immediate:
                out.add(bytes(v.value))
    return out


__all__ = ["FutureDated", "FdaOutcome", "activation", "PENDING_NS", "DLMS_ACTIVATION", "execution_times"]
