"""`gbhub run --web [HOST:]PORT` (rig key `[web] listen`): a web dashboard for the running premises.

One page (`tools/web/`, package data: plain HTML, JS and CSS, nothing fetched from the internet, no
build step) shows every device (type, EUI, join state, firmware, supply, credit, registers, the
IHD's display), the CHF device log, and a live feed of WAN and HAN frames decoded (use case,
originator, recipient, MAC and signature verdicts) and of alerts; its buttons do what `gbhub ctl`
does and send use cases.

It reads the same state as `gbhub status` (`control.premises_status`) and acts through the same
control channel (`ControlServer.handle`, in process); a use case goes out through the premises' own
head-end when it has one (the `premises` fixture), else through a head-end made as `gbhub send`
makes it (`run._headend`: premises.json, key folders, counters), with the same build, send and
verification (`client.send_command`). A command for the sleepy GSME presses its button once the
hub holds it, as `gbhub send --wake` does.

Access: on a loopback address no token is asked (like the control folder, the machine's users are
trusted). Bound anywhere else, every request needs the token printed at start (stderr, and in
`gbhub status` under `web`): `?token=...` once (the answer sets an HttpOnly cookie), the cookie, or
the header `Authorization: Bearer TOKEN`; without it 401. Actions are POSTs with a JSON body
(`Content-Type: application/json`, so another web site cannot send them from a visitor's browser
without a CORS preflight), and a request whose `Origin` is another site's is refused (403); without
a token only loopback names are accepted in `Host` (403 otherwise: DNS rebinding).

Live feed: Server-Sent Events on `/api/feed`. Frames are decoded once, only while a browser watches;
each browser has a bounded queue (`FEED_QUEUE` events): when it reads too slowly the oldest events
are dropped and the next message says how many, which the page shows.

HTTP API (JSON): `GET /api/status`, `GET /api/usecases`, `POST /api/ctl` (`{"op": "wan", "up":
false}`, `{"op": "han"|"press"|"utrn"|"emergency-credit"|"alert"|"fault", "eui": NAME|EUI, ...}`:
the fields of the control request), `POST /api/send` (`{"use_case": "ECS43", "to": "esme",
"params": ["key=value", ...] or {"key": "value"}}`). Bad input: 400 with `{"error": "..."}`.
"""
from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
import secrets
from collections import deque
from pathlib import Path
from typing import Any

from gbcs.codec import DecodeError, eui_hex

from .inputs import Failure, UsageError
from .rig import parse_listen

log = logging.getLogger("gbhub.web")

WEB_FOLDER = Path(__file__).with_name("web")
STATIC_FILES = {"index.html": "text/html", "app.js": "text/javascript", "style.css": "text/css"}
FEED_QUEUE = 500  # events kept per browser; the oldest go first
TOKEN_COOKIE = "gbhub_token"
SEND_TIMEOUT = 30.0  # seconds a use case sent from the page waits for its response
MAX_BODY = 64 * 1024
MAX_PARAMS = 64


class BadRequest(ValueError):
    """A request the dashboard refuses with 400 (the message is one line for the user)."""


def needs_token(host: str) -> bool:
    """Whether a dashboard bound to `host` asks for a token: everywhere but loopback."""
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True


# --------------------------------------------------------------------------------------------
# request parsing (outside input: BadRequest, never anything else)
# --------------------------------------------------------------------------------------------


def _text(body: dict, key: str, *, required: bool = True, limit: int = 64) -> str | None:
    value = body.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise BadRequest(f"{key}: expected text of 1..{limit} characters")
    return value.strip()


def _flag(body: dict, key: str) -> bool:
    value = body.get(key)
    if not isinstance(value, bool):
        raise BadRequest(f"{key}: expected true or false")
    return value


def _fuel(body: dict) -> str | None:
    fuel = body.get("fuel")
    if fuel in (None, ""):
        return None
    if fuel not in ("electricity", "gas"):
        raise BadRequest("fuel: expected electricity or gas")
    return fuel


def _number(body: dict, key: str, default: float | None, lo: float, hi: float, *, integer: bool = False) -> float | None:
    value = body.get(key, default)
    if value is None or value == "":
        return default
    if isinstance(value, str):
        try:
            value = int(value) if integer else float(value)
        except ValueError:
            raise BadRequest(f"{key}: expected a number") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
        raise BadRequest(f"{key}: expected {'a whole number' if integer else 'a number'}")
    if not lo <= value <= hi:  # also refuses NaN
        raise BadRequest(f"{key}: expected {lo:g}..{hi:g}")
    return value


def control_request(body: Any) -> dict:
    """A `POST /api/ctl` body -> the control request `ControlServer.handle` takes (the shapes
    `gbhub ctl` sends), checked field by field."""
    from .control import parse_alert_code

    if not isinstance(body, dict):
        raise BadRequest("expected a JSON object")
    op = body.get("op")
    if op == "wan":
        return {"op": "wan", "up": _flag(body, "up")}
    if op not in ("han", "press", "utrn", "emergency-credit", "alert", "fault"):
        raise BadRequest("op: expected wan, han, press, utrn, emergency-credit, alert or fault")
    req: dict[str, Any] = {"op": op, "eui": _text(body, "eui")}
    if op == "han":
        req["up"] = _flag(body, "up")
    elif op == "utrn":
        digits = _text(body, "utrn", limit=40)
        if not all(c.isdigit() or c in " -" for c in digits) or not 1 <= sum(c.isdigit() for c in digits) <= 20:
            raise BadRequest("utrn: expected up to 20 digits (spaces and dashes allowed)")
        req["utrn"], req["fuel"] = digits, _fuel(body)
    elif op == "emergency-credit":
        req["fuel"] = _fuel(body)
    elif op == "alert":
        code = body.get("code")
        if isinstance(code, bool) or not isinstance(code, (str, int)):
            raise BadRequest("code: expected an alert code (0x8F3F, decimal or an AlertCode name)")
        try:
            req["code"] = parse_alert_code(str(code))
        except ValueError as exc:
            raise BadRequest(f"code: {exc}") from None
        req["count"] = _number(body, "count", 1, 1, 1000, integer=True)
        req["rate"] = _number(body, "rate", 0.0, 0.0, 1000.0)
        if req["rate"] and req["count"] / req["rate"] > 600:
            raise BadRequest("count / rate: an alert storm from the page lasts at most 600 s")
    elif op == "fault":
        req["kind"] = _text(body, "kind", limit=32)
        args = body.get("args", [])
        if isinstance(args, str):
            args = args.split()
        if not isinstance(args, list) or len(args) > 8 or not all(isinstance(a, (str, int, float)) and not isinstance(a, bool)
                                                                   and len(str(a)) <= 64 for a in args):
            raise BadRequest("args: expected up to 8 words")
        options = {}
        phase = _number(body, "phase", None, 1, 3, integer=True)
        seconds = _number(body, "seconds", None, 1e-3, 1e9)
        if phase is not None:
            options["phase"] = phase
        if seconds is not None:
            options["seconds"] = seconds
        req["args"], req["options"] = [str(a) for a in args], options
    return req


def send_request(body: Any) -> tuple[str, str | None, list[str]]:
    """A `POST /api/send` body -> (use case, recipient name/type/EUI or None, ["key=value", ...])."""
    if not isinstance(body, dict):
        raise BadRequest("expected a JSON object")
    use_case = _text(body, "use_case", limit=16)
    to = _text(body, "to", required=False)
    params = body.get("params") or []
    if isinstance(params, dict):
        items = []
        for k, v in params.items():
            if isinstance(v, bool):
                v = "true" if v else "false"
            if not isinstance(v, (str, int, float)):
                raise BadRequest(f"params: {str(k)[:32]!r}: expected a text or number value")
            items.append(f"{k}={v}")
        params = items
    elif isinstance(params, str):
        params = [line.strip() for line in params.splitlines() if line.strip()]
    if not isinstance(params, list) or len(params) > MAX_PARAMS:
        raise BadRequest(f"params: expected up to {MAX_PARAMS} key=value items")
    for item in params:
        if not isinstance(item, str) or len(item) > 4096:
            raise BadRequest("params: expected key=value text items")
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise BadRequest(f"params: {item[:40]!r} is not key=value")
        if value.strip().startswith("@"):
            raise BadRequest(f"params: {key.strip()}: files (@FILE) cannot be named from the dashboard")
    return use_case, to, params


# --------------------------------------------------------------------------------------------
# live feed
# --------------------------------------------------------------------------------------------


class Subscriber:
    """One browser's queue: bounded, the oldest event goes first, the loss is counted."""

    def __init__(self, size: int = FEED_QUEUE) -> None:
        self.events: deque[dict] = deque(maxlen=size)
        self.dropped = 0
        self.ready = asyncio.Event()

    def put(self, event: dict) -> None:
        if len(self.events) == self.events.maxlen:
            self.dropped += 1
        self.events.append(event)
        self.ready.set()


class Feed:
    """WAN and HAN frames of a premises, decoded once for every watching browser. The taps are on
    only while someone watches."""

    def __init__(self, premises, keystore, acb: bytes, queue: int = FEED_QUEUE) -> None:
        self.premises = premises
        self.keystore, self.acb = keystore, acb
        self.queue = queue
        self.subscribers: set[Subscriber] = set()
        self._stops: list = []
        identity = premises.identity
        self._names = {eui: role for role, eui in (("acb", identity.acb), ("supplier", identity.supplier),
                                                   ("network_operator", identity.network_operator)) if eui}
        self._names.update({d.eui: n for n, d in premises.devices_by_name.items()})
        self._seq = 0

    def subscribe(self) -> Subscriber:
        sub = Subscriber(self.queue)
        if not self.subscribers:
            self._tap()
        self.subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)
        if not self.subscribers:
            self._untap()

    def _tap(self) -> None:
        observe = getattr(self.premises.bridge, "observe", None)
        if observe is not None:
            self._stops.append(observe(self._wan))
        transport = getattr(getattr(self.premises, "han", None), "transport", None)
        if transport is not None and hasattr(transport, "observe"):
            self._stops.append(transport.observe(self._han))

    def _untap(self) -> None:
        for stop in self._stops:
            stop()
        self._stops.clear()

    def close(self) -> None:
        self._untap()
        for sub in self.subscribers:
            sub.ready.set()
        self.subscribers.clear()

    def publish(self, event: dict) -> None:
        self._seq += 1
        event["seq"] = self._seq
        for sub in self.subscribers:
            sub.put(event)

    def _name(self, eui: bytes) -> str:
        return self._names.get(eui) or eui_hex(eui)

    def _time(self) -> str:
        return self.premises.clock.utcnow().isoformat(timespec="milliseconds")

    def _wan(self, direction: str, frame: bytes) -> None:
        self.publish({"kind": "wan", "time": self._time(), "dir": direction, **self.gbcs(frame)})

    def _han(self, event) -> None:
        from gbcs.zcl import cluster_name

        frame = event.frame
        out = {"kind": "han", "time": self._time(), "from": self._name(frame.src), "to": self._name(frame.dst),
               "cluster": cluster_name(frame.cluster), "outcome": event.outcome}
        message = tunnelled_message(frame)
        if message is not None:
            out.update(self.gbcs(message))
        self.publish(out)

    def gbcs(self, frame: bytes) -> dict:
        return describe(frame, self.keystore, self.acb, self._names)


def tunnelled_message(frame) -> bytes | None:
    """The GBCS message a GB-HGRP TransferData carries, if this frame is one."""
    from gbcs.hgrp import GetResponse, Put, Raw, TransferData, decode_tunnel_data, decode_tunnel_frame
    from gbhub.han.aps import TUNNELING_CLUSTER

    if frame.cluster != TUNNELING_CLUSTER:
        return None
    try:
        command = decode_tunnel_frame(frame.payload).command
        if not isinstance(command, TransferData):
            return None
        data = decode_tunnel_data(command.data)
    except DecodeError:
        return None
    if isinstance(data, (Raw, Put, GetResponse)) and data.message:
        return data.message
    return None


def describe(frame: bytes, keystore, acb: bytes | None, names: dict[bytes, str]) -> dict:
    """A GBCS frame (outside input) as the feed shows it: use case, originator, recipient (by
    name when `names` has it), counter, verdicts; an alert's code and name; or `error`."""
    from gbcs import catalogue
    from gbcs.analyse import analyse

    try:
        a = analyse(frame, keystore, acb, decode_content=True)
    except DecodeError as exc:
        return {"error": f"undecodable: {exc}", "bytes": len(frame)}
    except Exception as exc:  # noqa: BLE001 - a frame the feed cannot show never stops the premises
        return {"error": f"{type(exc).__name__}: {exc}", "bytes": len(frame)}
    m = a.message or a.block
    uc = a.use_case
    out: dict[str, Any] = {"use_case": uc.use_case if uc else None, "use_case_name": uc.name if uc else None,
                           "message_code": f"{m.message_code:04X}", "cra": m.cra.name.lower(),
                           "originator_counter": m.originator_counter,
                           "originator": names.get(m.originator) or eui_hex(m.originator),
                           "recipient": names.get(m.recipient) or eui_hex(m.recipient)}
    if a.block is not None:
        out["block_number"] = a.block.block_number
    else:
        out["mac"], out["signature"] = a.mac, a.signature
    code = getattr(a.payload, "alert_code", None)
    if isinstance(code, int) or (uc is not None and uc.is_alert) or out["cra"] == "alert":
        out["alert"] = True
        if isinstance(code, int):
            out["alert_code"] = f"0x{code:04X}"
            out["alert_name"] = catalogue.alert_name(code)
    out["bytes"] = len(frame)
    return out


# --------------------------------------------------------------------------------------------
# the server
# --------------------------------------------------------------------------------------------


class Dashboard:
    """The dashboard of one running premises; `control` is its `ControlServer` (started or not:
    only its `handle` and `started_at` are used)."""

    def __init__(self, premises, control, host: str = "127.0.0.1", port: int = 0, *, token: str | None = None,
                 queue: int = FEED_QUEUE) -> None:
        self.premises = premises
        self.control = control
        self.host, self.port = host, port
        self.token = token if token is not None else (secrets.token_urlsafe(24) if needs_token(host) else None)
        identity = premises.identity
        self.feed = Feed(premises, identity.keystore, identity.acb, queue)
        self._runner = None
        self._closing = asyncio.Event()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    async def start(self) -> str:
        """Serve; returns the URL (the port is the one bound when 0 was asked)."""
        from aiohttp import web

        app = web.Application(middlewares=[self._guard], client_max_size=MAX_BODY)
        app.router.add_get("/", self._index)
        app.router.add_get("/static/{name}", self._static)
        app.router.add_get("/api/status", self._status)
        app.router.add_get("/api/usecases", self._usecases)
        app.router.add_get("/api/feed", self._feed)
        app.router.add_post("/api/ctl", self._ctl)
        app.router.add_post("/api/send", self._send)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        if self._runner.addresses:  # the port bound when 0 was asked
            self.port = self._runner.addresses[0][1]
        if self.control is not None:
            self.control.web = {"url": self.url, "token": self.token}
        return self.url

    async def close(self) -> None:
        self._closing.set()
        self.feed.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- access ------------------------------------------------------------------------------
    def _authorised(self, request) -> bool:
        if self.token is None:
            return True
        given = [request.query.get("token"), request.cookies.get(TOKEN_COOKIE)]
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            given.append(auth[7:].strip())
        return any(isinstance(g, str) and hmac.compare_digest(g.encode(), self.token.encode()) for g in given if g)

    def _host_allowed(self, request) -> bool:
        """Without a token (loopback) only loopback names: a web page whose name a DNS trick
        points at 127.0.0.1 gets nothing (DNS rebinding)."""
        if self.token is not None:
            return True
        host = request.host or ""
        name = host[1:host.find("]")] if host.startswith("[") else host.rpartition(":")[0] if ":" in host else host
        return not needs_token(name)

    @staticmethod
    def _same_origin(request) -> bool:
        origin = request.headers.get("Origin")
        return origin is None or origin in (f"http://{request.host}", f"https://{request.host}")

    @property
    def _guard(self):
        from aiohttp import web

        @web.middleware
        async def guard(request, handler):
            if not self._authorised(request):
                return web.json_response({"error": "token required: open the URL gbhub run printed (…/?token=…) "
                                                   "or send Authorization: Bearer TOKEN"}, status=401)
            if not self._host_allowed(request):
                return web.json_response({"error": f"unexpected Host {request.host!r}: use {self.url}"}, status=403)
            if request.method == "POST":
                if not self._same_origin(request):
                    return web.json_response({"error": "cross-site request refused"}, status=403)
                if request.content_type != "application/json":
                    return web.json_response({"error": "expected Content-Type: application/json"}, status=415)
            try:
                response = await handler(request)
            except BadRequest as exc:
                return web.json_response({"error": str(exc)}, status=400)
            except web.HTTPException:
                raise
            except Exception as exc:  # noqa: BLE001 - one line for the page, the traceback in the log
                log.exception("dashboard: %s %s failed", request.method, request.path)
                return web.json_response({"error": f"{type(exc).__name__}: {exc}"}, status=500)
            if self.token is not None and request.query.get("token"):
                response.set_cookie(TOKEN_COOKIE, self.token, httponly=True, samesite="Strict")
            return response

        return guard

    # -- pages -------------------------------------------------------------------------------
    async def _index(self, request):
        return await self._file("index.html")

    async def _static(self, request):
        return await self._file(request.match_info["name"])

    async def _file(self, name: str):
        from aiohttp import web

        kind = STATIC_FILES.get(name)
        if kind is None:
            raise web.HTTPNotFound()
        body = (WEB_FOLDER / name).read_bytes()
        return web.Response(body=body, content_type=kind, charset="utf-8",
                            headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})

    # -- API ---------------------------------------------------------------------------------
    async def _status(self, request):
        from aiohttp import web

        from .control import premises_status

        doc = premises_status(self.premises, self.control.started_at)
        devices = self.premises.devices_by_name
        doc["controls"] = {name: device_controls(device) for name, device in devices.items()}
        # what an IHD's screen shows, whole (the status above has its main figures)
        doc["displays"] = {name: d.display.to_json() for name, d in devices.items()
                           if hasattr(getattr(d, "display", None), "to_json")}
        doc["web"] = {"token_required": self.token is not None}
        return web.json_response(doc, dumps=_dumps)

    async def _usecases(self, request):
        from aiohttp import web

        return web.json_response(use_cases(set(self.premises.types.values())))

    async def _body(self, request) -> Any:
        try:
            return json.loads(await request.text())
        except (ValueError, UnicodeDecodeError):
            raise BadRequest("the body is not JSON") from None

    async def _ctl(self, request):
        from aiohttp import web

        from .control import ControlError

        req = control_request(await self._body(request))
        try:
            result = await self.control.handle(req)
        except ControlError as exc:
            raise BadRequest(str(exc)) from None
        except (KeyError, TypeError, ValueError) as exc:  # a value the device refuses
            raise BadRequest(f"{req['op']}: {exc}") from None
        return web.json_response({"ok": True, "result": result}, dumps=_dumps)

    async def _send(self, request):
        from aiohttp import web

        use_case, to, items = send_request(await self._body(request))
        try:
            out = await self.send(use_case, to, items)
        except UsageError as exc:
            raise BadRequest(str(exc)) from None
        except Failure as exc:
            return web.json_response({"use_case": use_case, "ok": False, "error": str(exc)}, status=502)
        return web.json_response(out, dumps=_dumps)

    async def send(self, use_case: str, to: str | None, items: list[str]) -> dict:
        """Send a use case as `gbhub send` does, through the premises' head-end (or one made like
        `gbhub send`'s); the response verified and decoded."""
        import argparse

        from gbhub.tools.rig import AddressError

        from .client import _definition, _params, send_command, send_report

        definition = _definition(use_case)
        params = _params(definition, items)
        p = self.premises
        try:
            if to:
                device = p.device(to)
            else:
                types = (definition.target, *definition.targets)
                device = next((p.first(t) for t in types if p.first(t) is not None), None)
                if device is None:
                    raise UsageError(f"{definition.use_case} goes to a {' or '.join(dict.fromkeys(types))}; "
                                     f"this premises has none")
        except (AddressError, ValueError) as exc:
            raise UsageError(str(exc.args[0] if exc.args else exc)) from None
        press = None
        if p.types[p.name_of(device)] == "gsme" and hasattr(device, "press_button"):
            async def press():  # the sleepy GSME fetches the command as it wakes (gbhub send --wake)
                await self.control.handle({"op": "press", "eui": eui_hex(device.eui)})
        headend, own = p.headend, None
        if headend is None:
            if p.rig.data is None:
                raise Failure("this premises has no head-end to send with")
            from .run import _headend

            own, _ = await _headend(argparse.Namespace(data=str(p.rig.data), wan=None, keys=None, to=None,
                                                       timeout=SEND_TIMEOUT))
            headend = own
        try:
            result, reply = await send_command(headend, definition, params, device.eui, timeout=SEND_TIMEOUT,
                                               press=press)
            out = send_report(headend, definition.use_case, result, reply)
        finally:
            if own is not None:
                await own.close()
        out["to"] = p.name_of(device)
        out["valid"] = reply.valid
        return out

    async def _feed(self, request):
        from aiohttp import web

        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                               "X-Accel-Buffering": "no"})
        await response.prepare(request)
        sub = self.feed.subscribe()
        try:
            await response.write(b"retry: 2000\n\n")
            idle = 0.0
            while not self._closing.is_set():
                transport = request.transport
                if transport is None or transport.is_closing():  # the browser left
                    break
                if not sub.events:
                    sub.ready.clear()
                    try:
                        await asyncio.wait_for(sub.ready.wait(), 1.0)
                    except asyncio.TimeoutError:
                        idle += 1.0
                        if idle >= 15.0:
                            idle = 0.0
                            await response.write(b": keep-alive\n\n")
                    continue
                idle = 0.0
                chunk = []
                if sub.dropped:
                    chunk.append({"kind": "dropped", "count": sub.dropped})
                    sub.dropped = 0
                while sub.events and len(chunk) < 100:
                    chunk.append(sub.events.popleft())
                await response.write("".join(f"data: {_dumps(e)}\n\n" for e in chunk).encode())
        except ConnectionError:
            pass
        finally:
            self.feed.unsubscribe(sub)
        return response


def _dumps(obj) -> str:
    return json.dumps(obj, default=str)


def device_controls(device) -> dict:
    """What the page offers for a device: the `gbhub ctl` operations it takes, its faults."""
    faults = getattr(device, "FAULT_KINDS", None) or {}
    return {"press": hasattr(device, "press_button"), "utrn": hasattr(device, "enter_utrn"),
            "emergency_credit": hasattr(device, "activate_emergency_credit"),
            "alert": hasattr(device, "raise_alert"), "han": hasattr(device, "eui"),
            "faults": {k: {"usage": f.usage, "help": f.help} for k, f in faults.items()}
            if hasattr(device, "inject_fault") else {}}


def use_cases(types: set[str]) -> list[dict]:
    """The use cases a head-end can send to a device of `types`, with their parameters."""
    from gbcs import usecases

    out = []
    for d in usecases.USE_CASES.values():
        targets = list(dict.fromkeys((d.target, *d.targets)))
        if d.is_alert or d.originator == "ppmid" or not any(t in types for t in targets):
            continue
        out.append({"use_case": d.use_case, "name": d.name, "targets": targets, "critical": d.critical,
                    "params": [{"name": p.name, "type": p.type, "required": p.required, "default": p.default_text(),
                                "help": p.help, "enum": None if p.enum is None else list(p.enum.__members__)}
                               for p in d.params if p.name not in ("originator", "recipient")]})
    return out


async def serve(rig, premises, control) -> Dashboard | None:
    """`gbhub run` with `--web` or `[web] listen` (a `run.SERVICES` entry): serve the dashboard once
    the premises is ready and say where (with the token, when one is needed) on stderr."""
    import sys

    if rig.web_listen is None:
        return None
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        raise Failure("the web dashboard needs aiohttp: pip install 'gbhub[web]'") from None
    host, port = parse_listen(rig.web_listen)
    dashboard = Dashboard(premises, control, host, port)
    try:
        url = await dashboard.start()
    except OSError as exc:
        from .datafolder import DataFolderError

        raise DataFolderError(f"web dashboard {rig.web_listen}: {exc.strerror or exc}") from None
    if dashboard.token is not None:
        print(f"gbhub: dashboard on {url}?token={dashboard.token} (token required: bound beyond loopback)",
              file=sys.stderr, flush=True)
    else:
        print(f"gbhub: dashboard on {url}", file=sys.stderr, flush=True)
    return dashboard


def register(sub) -> None:
    """`gbhub run --web` is run's option (tools/run.py); the dashboard joins `gbhub run` here."""
    from . import run

    if serve not in run.SERVICES:
        run.SERVICES.append(serve)
