"""`gbhub status`, `gbhub stop`, `gbhub wait`, `gbhub ctl`: talking to the `gbhub run` of a data folder.

The control channel is a spool folder, DATA/control/: a client writes a request `ID.req` (JSON,
written under a temporary name and renamed, so it is read whole), the running premises answers with
`ID.resp` and the client deletes both. No network port is opened, only the folder's permissions
guard it, and any path length works (a Unix socket path is limited to about 100 bytes). The premises
looks for requests every 50 ms; a request left by a client that gave up is removed at the next start.
"""
from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import logging
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from gbcs.codec import eui_hex

from .datafolder import CONTROL, MANIFEST, running_pid
from .inputs import Failure

log = logging.getLogger("gbhub.control")

POLL_S = 0.05


class ControlError(Failure):
    """A control request that cannot be carried out; the message is the one line for the user."""


def parse_alert_code(text: str) -> int:
    """An alert code as a person types it: `0x8F3F`, `8F3F`, a decimal number or an AlertCode
    name (`ERROR_NON_VOLATILE_MEMORY`, any case) -> 0..0xFFFF. ValueError otherwise."""
    from gbcs.catalogue import AlertCode

    t = text.strip()
    try:
        return AlertCode[t.upper()].value
    except KeyError:
        pass
    if t[:2].lower() == "0x":
        digits, base = t[2:], 16
    elif t.isdigit():
        digits, base = t, 10
    else:
        digits, base = t, 16
    allowed = "0123456789abcdefABCDEF" if base == 16 else "0123456789"
    if not digits or len(digits) > 6 or not all(c in allowed for c in digits):
        raise ValueError(f"not an alert code: {text!r} (give 0x8F3F, a decimal number or an AlertCode name)")
    code = int(digits, base)
    if code > 0xFFFF:
        raise ValueError(f"alert code {text!r} is above 0xFFFF")
    return code


# --------------------------------------------------------------------------------------------
# premises side
# --------------------------------------------------------------------------------------------


def premises_status(premises, started_at: float) -> dict:
    """The status document `gbhub status` prints."""
    from gbhub.firmware.registry import device_kind

    chf = premises.chf
    devices = []
    for name, device in premises.devices_by_name.items():
        kind = device_kind(premises.types[name])
        entry = chf.device_log_entry(device.eui) if kind.han_member and chf is not None else None
        d: dict[str, Any] = {"name": name, "type": premises.types[name], "eui": eui_hex(device.eui),
                             "joined": bool(entry is not None and entry.joined) if kind.han_member else True,
                             "state": device.state}
        if kind.status is not None:
            d.update(kind.status(device))
        if hasattr(device, "activation"):  # a GBCS device: its firmware (README "Firmware")
            slots = device.firmware
            d["firmware"] = {"version": slots.running.version.hex().upper(), "slot": slots.active,
                             "standby": None if slots.standby is None else slots.standby.version.hex().upper(),
                             "transfer": device.transfer, "pending_activation": device.activation.pending}
        if hasattr(device, "credit_pence") and hasattr(device, "registers"):  # a meter
            regs = device.registers()
            d["supply"] = device.supply_state
            d["credit"] = round(device.credit_pence / 100, 5)
            d["registers"] = {k: regs[k] for k in ("import_wh", "export_wh", "reactive_varh") if k in regs}
        else:  # what a display shows, in pence: pounds here too
            for key in ("credit", "gas_credit"):
                if isinstance(d.get(key), (int, float)):
                    d[key] = round(d[key] / 100, 5)
        devices.append(d)
    for name, remote in premises.remote.items():  # across the serial HAN link, in the other process
        devices.append({"name": name, "type": remote.type, "eui": eui_hex(remote.eui), "state": remote.state})
    link = getattr(premises.han, "link_status", None)
    if chf is None:  # the meter side of a split rig: no CHF, no WAN here
        return {"state": "ready", "time": premises.clock.utcnow().isoformat(),
                "uptime_s": round(time.monotonic() - started_at, 3), "devices": devices,
                **({"han_link": link()} if link is not None else {})}
    log_entries = [{"eui": eui_hex(e.eui), "device_type": e.device_type, "joined": e.joined,
                    "added_at": e.added_at, "joined_at": e.joined_at, "last_communication": e.last_communication}
                   for e in chf.device_log()]
    bridge = premises.bridge
    return {
        **({"han_link": link()} if link is not None else {}),
        "state": "ready",
        "time": premises.clock.utcnow().isoformat(),
        "uptime_s": round(time.monotonic() - started_at, 3),
        "devices": devices,
        "chf_device_log": log_entries,
        "wan": {"host": premises.rig.wan_host, "port": premises.wan_port, "link": bridge.link_enabled,
                "up": bridge.up, "clients": bridge.clients, "takers": bridge.takers,
                "queue": chf.wan_queue_length, "queue_dropped": chf.wan_queue_dropped,
                "inbox_dropped": chf.wan_inbox_dropped, **{k: v for k, v in bridge.stats.items() if v}},
    }


class ControlServer:
    """Answers the requests in DATA/control/ for a running premises."""

    def __init__(self, data: Path, premises, stop: asyncio.Event) -> None:
        self.folder = data / CONTROL
        self.premises = premises
        self.stop = stop
        self.started_at = time.monotonic()
        self.web: dict | None = None  # the dashboard's URL and token (tools/dashboard.py), shown in status
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self.folder.mkdir(exist_ok=True)
        for stale in self.folder.iterdir():
            stale.unlink(missing_ok=True)
        self._task = asyncio.create_task(self._serve(), name="gbhub-control")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def _serve(self) -> None:
        while True:
            try:
                names = sorted(n for n in os.listdir(self.folder) if n.endswith(".req"))
            except OSError:
                names = []
            for name in names:
                path = self.folder / name
                try:
                    request = json.loads(path.read_text())
                    path.unlink()
                except (OSError, ValueError):
                    continue
                try:
                    reply = {"ok": True, "result": await self.handle(request)}
                except ControlError as exc:
                    reply = {"ok": False, "error": str(exc)}
                except Exception as exc:  # noqa: BLE001 - a bad request never stops the premises
                    log.exception("control request %s failed", request)
                    reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
                _write_atomic(path.with_suffix(".resp"), json.dumps(reply, default=str))
            await asyncio.sleep(POLL_S)

    def _device(self, who: str):
        from .rig import AddressError

        try:
            return self.premises.device(who)
        except (AddressError, ValueError) as exc:
            raise ControlError(str(exc.args[0] if exc.args else exc)) from None

    async def handle(self, req: dict) -> Any:
        op = req.get("op")
        p = self.premises
        log.info("control: %s", req)
        if op == "status":
            doc = premises_status(p, self.started_at)
            if self.web is not None:
                doc["web"] = self.web
            return doc
        if op == "stop":
            self.stop.set()
            return {"stopping": True}
        if op == "wan":
            p.bridge.set_link(bool(req["up"]))  # runtime state only: a restart comes up with the WAN up
            return {"wan": "up" if req["up"] else "down"}
        if op == "han":  # on whichever HAN transport the rig has (virtual air, zigbee radio, serial link)
            who = req["eui"]
            remote = p.remote.get(who) or next((r for r in p.remote.values() if who in (r.type, eui_hex(r.eui))), None)
            eui = remote.eui if remote is not None else self._device(who).eui
            p.han.set_link(eui, bool(req["up"]))
            return {"eui": eui_hex(eui), "han": "up" if req["up"] else "down"}
        if op == "press":
            device = self._device(req["eui"])
            press = getattr(device, "press_button", None)
            if press is None:
                raise ControlError(f"{p.name_of(device)} ({eui_hex(device.eui)}) has no button")
            return {"eui": eui_hex(device.eui), "actioned": bool(press())}
        if op == "alert":
            device = self._device(req["eui"])
            if not hasattr(device, "raise_alert"):
                raise ControlError(f"{p.name_of(device)} ({eui_hex(device.eui)}) raises no GBCS alerts")
            count, rate = int(req.get("count", 1)), float(req.get("rate", 0) or 0)
            sent = 0
            for i in range(count):
                if await device.raise_alert(int(req["code"])) is not None:
                    sent += 1
                if rate > 0 and i + 1 < count:
                    await asyncio.sleep(1.0 / rate)
            return {"eui": eui_hex(device.eui), "code": f"0x{int(req['code']):04X}", "raised": sent}
        if op == "utrn":
            return await self._utrn(self._device(req["eui"]), str(req["utrn"]), req.get("fuel"))
        if op == "emergency-credit":
            device = self._device(req["eui"])
            activate = getattr(device, "activate_emergency_credit", None)
            if activate is None:
                raise ControlError(f"{p.name_of(device)} ({eui_hex(device.eui)}) has no emergency credit button")
            result = activate(req["fuel"]) if req.get("fuel") else activate()
            if asyncio.iscoroutine(result):
                result = await result
            if not isinstance(result, dict):  # a meter's own: True / False
                result = {"accepted": bool(result), "result": "activated" if result else "refused"}
            return {"eui": eui_hex(device.eui), **result}
        if op == "fault":
            return self._fault(req)
        raise ControlError(f"unknown control request {op!r}")

    def _fault(self, req: dict) -> dict:
        """`gbhub ctl fault`: the device applies the fault at once (anything that lasts runs on its
        own clock), so the request returns at once."""
        from gbhub.firmware.device import DeviceOff
        from gbhub.firmware.faults import FaultError, UnknownFault

        device = self._device(req["eui"])
        kind = str(req.get("kind", ""))
        who = f"{self.premises.name_of(device)} ({eui_hex(device.eui)})"
        inject = getattr(device, "inject_fault", None)
        if inject is None:
            raise ControlError(f"{who} has no fault {kind}")
        args = req.get("args") or []
        options = req.get("options") or {}
        if not isinstance(args, list) or not isinstance(options, dict):
            raise ControlError("fault: args must be a list and options an object")
        try:
            result = inject(kind, [str(a) for a in args], options)
        except UnknownFault:
            raise ControlError(f"{who} has no fault {kind}") from None
        except FaultError as exc:
            raise ControlError(f"{who}: {exc}") from None
        except DeviceOff:
            raise ControlError(f"{who} is off") from None
        return {"eui": eui_hex(device.eui), "fault": kind, **(result or {})}

    async def _utrn(self, device, digits: str, fuel: str | None) -> dict:
        """A UTRN typed on a device's keypad: a PPMID's `enter_utrn` (a dict), or a meter's own
        (a `gbcs.utrn.UtrnCheck`)."""
        enter = getattr(device, "enter_utrn", None)
        if enter is None:
            raise ControlError(f"{self.premises.name_of(device)} ({eui_hex(device.eui)}) has no keypad")
        if not inspect.iscoroutinefunction(enter):  # a meter's keypad takes the bare digits
            digits = "".join(c for c in digits if c not in " \t-")
        result = enter(digits, fuel=fuel) if fuel is not None else enter(digits)
        if asyncio.iscoroutine(result):
            result = await result
        if not isinstance(result, dict):  # a meter's UtrnCheck
            result = {"accepted": result.accepted, "result": result.status.value, "amount": result.amount_pennies}
        return {"eui": eui_hex(device.eui), **result}


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("control: cannot write %s: %s", path, exc)


# --------------------------------------------------------------------------------------------
# client side (the commands)
# --------------------------------------------------------------------------------------------


def request(data: Path, req: dict, timeout: float) -> Any:
    """Send one request to the premises running on `data`; its result, or ControlError."""
    pid = running_pid(data)
    if pid is None:
        raise ControlError(f"no premises running on {data} (start one with `gbhub run --data {data}`)")
    folder = data / CONTROL
    rid = uuid.uuid4().hex
    resp = folder / f"{rid}.resp"
    tmp = folder / f"{rid}.tmp"
    try:
        tmp.write_text(json.dumps(req))
        os.replace(tmp, folder / f"{rid}.req")
    except OSError as exc:
        raise ControlError(f"cannot write to the control folder {folder}: {exc.strerror}") from None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            reply = json.loads(resp.read_text())
        except (OSError, ValueError):
            time.sleep(POLL_S / 2)
            continue
        resp.unlink(missing_ok=True)
        if not reply.get("ok"):
            raise ControlError(reply.get("error", "request failed"))
        return reply.get("result")
    (folder / f"{rid}.req").unlink(missing_ok=True)
    raise ControlError(f"the premises on {data} (PID {pid}) did not answer within {timeout:g} s")


def register(sub) -> None:
    def data_arg(p, default: Any = "gbhub-data") -> None:
        p.add_argument("--data", metavar="DIR", default=default, help="data folder of the running premises (default ./gbhub-data)")

    s = sub.add_parser("status", help="JSON status of the premises running on a data folder")
    data_arg(s)
    s.add_argument("--timeout", type=float, default=10.0, metavar="S", help="seconds to wait for the answer (default 10)")
    s.set_defaults(func=cmd_status)

    s = sub.add_parser("stop", help="stop the premises running on a data folder (clean shutdown)")
    data_arg(s)
    s.add_argument("--timeout", type=float, default=30.0, metavar="S", help="seconds to wait for it to stop (default 30)")
    s.set_defaults(func=cmd_stop)

    s = sub.add_parser("wait", help="wait until the premises on a data folder is ready for commands")
    data_arg(s)
    s.add_argument("--timeout", type=float, default=60.0, metavar="S", help="give up after S seconds (default 60): exit 1")
    s.set_defaults(func=cmd_wait)

    c = sub.add_parser("ctl", help="control a running premises: wan down|up, han EUI down|up, press EUI, utrn EUI DIGITS, "
                                   "emergency-credit EUI, alert EUI CODE, fault EUI KIND [ARGS...]")
    data_arg(c)
    c.add_argument("--timeout", type=float, default=10.0, metavar="S", help="seconds to wait for the answer (default 10)")
    ops = c.add_subparsers(dest="op", metavar="OP", required=True)
    w = ops.add_parser("wan", help="cut (down) or restore (up) the WAN link; not kept across a restart")
    w.add_argument("state", choices=("down", "up"))
    h = ops.add_parser("han", help="cut (down) or restore (up) one device's HAN link")
    h.add_argument("eui", metavar="EUI", help="device EUI (or name)")
    h.add_argument("state", choices=("down", "up"))
    pr = ops.add_parser("press", help="press the device's button (ESME: enables an armed supply)")
    pr.add_argument("eui", metavar="EUI", help="device EUI (or name)")
    u = ops.add_parser("utrn", help="type a UTRN on a device's keypad (PPMID: tops up its meters)")
    u.add_argument("eui", metavar="EUI", help="device EUI (or name)")
    u.add_argument("digits", metavar="DIGITS", nargs="+", help="the 20 digits (groups separated by spaces allowed)")
    u.add_argument("--fuel", choices=("electricity", "gas"), help="PPMID: the meter it is for (default: the one that takes it)")
    ec = ops.add_parser("emergency-credit", help="ask for emergency credit on a PPMID (or a meter)")
    ec.add_argument("eui", metavar="EUI", help="device EUI (or name)")
    ec.add_argument("--fuel", choices=("electricity", "gas"), help="PPMID: which meter (default: the ESME)")
    a = ops.add_parser("alert", help="make the device raise an alert (e.g. to rehearse an alert storm)")
    a.add_argument("eui", metavar="EUI", help="device EUI (or name)")
    a.add_argument("code", metavar="CODE", help="alert code: 0x8F3F, decimal, or an AlertCode name")
    a.add_argument("--count", type=int, default=1, metavar="N", help="how many (default 1)")
    a.add_argument("--rate", type=float, default=0.0, metavar="PER_S", help="alerts per second (default: as fast as possible)")
    f = ops.add_parser("fault", help="inject a fault into a device, e.g. tamper, voltage VOLTS, load WATTS, power off|on, "
                                     "credit POUNDS, fail-next USE_CASE RESULT (README: Fault injection)")
    f.add_argument("eui", metavar="EUI", help="device EUI (or name)")
    f.add_argument("kind", metavar="KIND", help="the fault (the device type's table in the README)")
    f.add_argument("args", metavar="ARGS", nargs="*", help="the fault's arguments")
    f.add_argument("--phase", type=int, default=None, metavar="N", help="the phase it affects (voltage; default all)")
    f.add_argument("--seconds", type=float, default=None, metavar="S",
                   help="how long it lasts on the device's clock (default: until changed)")
    for p in (w, h, pr, u, ec, a, f):
        data_arg(p, argparse.SUPPRESS)  # --data also after the operation (not overriding one before it)
    c.set_defaults(func=cmd_ctl)


def _fail(command: str, exc: Exception) -> int:
    print(f"gbhub {command}: {exc}", file=sys.stderr)
    return 1


def cmd_status(args) -> int:
    try:
        result = request(Path(args.data), {"op": "status"}, args.timeout)
    except ControlError as exc:
        return _fail("status", exc)
    print(json.dumps(result, indent=2))
    return 0


def cmd_stop(args) -> int:
    data = Path(args.data)
    pid = running_pid(data)
    try:
        request(data, {"op": "stop"}, min(args.timeout, 10.0))
    except ControlError as exc:
        return _fail("stop", exc)
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        if running_pid(data) is None:
            print(f"gbhub stop: stopped the premises on {data} (PID {pid})")
            return 0
        time.sleep(0.1)
    return _fail("stop", ControlError(f"the premises on {data} (PID {pid}) did not stop within {args.timeout:g} s"))


def cmd_wait(args) -> int:
    data = Path(args.data)
    deadline = time.monotonic() + args.timeout
    while True:
        if running_pid(data) is not None:
            return 0
        if time.monotonic() >= deadline:
            return _fail("wait", ControlError(f"no premises ready on {data} within {args.timeout:g} s "
                                              f"({MANIFEST} with state ready)"))
        time.sleep(0.1)


def cmd_ctl(args) -> int:
    from .inputs import UsageError

    if args.op == "wan":
        req = {"op": "wan", "up": args.state == "up"}
    elif args.op == "han":
        req = {"op": "han", "eui": args.eui, "up": args.state == "up"}
    elif args.op == "press":
        req = {"op": "press", "eui": args.eui}
    elif args.op == "fault":
        if args.phase is not None and not 1 <= args.phase <= 3:
            raise UsageError("--phase must be 1, 2 or 3")
        if args.seconds is not None and not (args.seconds > 0 and args.seconds < 1e9):
            raise UsageError("--seconds must be a positive number of seconds")
        options = {k: v for k, v in (("phase", args.phase), ("seconds", args.seconds)) if v is not None}
        req = {"op": "fault", "eui": args.eui, "kind": args.kind, "args": list(args.args), "options": options}
    elif args.op == "utrn":
        req = {"op": "utrn", "eui": args.eui, "utrn": " ".join(args.digits), "fuel": args.fuel}
    elif args.op == "emergency-credit":
        req = {"op": "emergency-credit", "eui": args.eui, "fuel": args.fuel}
    else:
        try:
            code = parse_alert_code(args.code)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        if args.count < 1:
            raise UsageError("--count must be at least 1")
        if args.rate < 0:
            raise UsageError("--rate must not be negative")
        req = {"op": "alert", "eui": args.eui, "code": code, "count": args.count, "rate": args.rate}
        if args.rate > 0:
            args.timeout = max(args.timeout, args.count / args.rate + 10)
    try:
        result = request(Path(args.data), req, args.timeout)
    except ControlError as exc:
        return _fail("ctl", exc)
    print(json.dumps(result))
    if args.op in ("utrn", "emergency-credit") and isinstance(result, dict) and result.get("accepted") is False:
        return 1  # refused (its reason is in the JSON): a script can tell
    return 0
