"""`gbhub send`, `send-raw`, `build`, `alerts`: a head-end client for a running premises.

Each connects (or, for `build`, only prepares) a `wan.headend.HeadEnd` through `run._headend`, the
one place that reads `DATA/premises.json` and the key folders, so every command takes its counters
from the same source. Output is for people and scripts alike: JSON on stdout, one-line errors on
stderr; exit 0 success, 1 for what the premises or the environment did (a rejection, no answer, no
connection), 2 for what the user typed (inputs.UsageError).
"""
from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path
from datetime import datetime, timedelta, timezone
from pathlib import Path

from gbcs.codec import eui_hex

from .inputs import Failure, UsageError
from .run import _client_args, _headend, recipient_of

log = logging.getLogger("gbhub.send")


def register(sub) -> None:
    s = sub.add_parser(
        "send", add_help=False, help="send a use case to a running premises and print the decoded response",
        usage="gbhub send USE_CASE [key=value ...] [--to NAME|TYPE|EUI] [--summary | --full] [options]  "
              "(gbhub send --list; gbhub send USE_CASE --help)")
    s.add_argument("use_case", nargs="?", help="use case name, e.g. ECS17b, CCS01 (gbhub send --list)")
    s.add_argument("params", nargs="*", metavar="key=value", help="use-case parameters (gbhub send USE_CASE --help)")
    _to_arg(s)
    _as_arg(s)
    s.add_argument("--summary", action="store_true", help="print one line (use case, ok, interpreted response) instead of JSON")
    s.add_argument("--wake", action="store_true",
                   help="a sleepy GSME: press its button first (gbhub ctl press) instead of waiting for its next wake")
    s.add_argument("--full", action="store_true", help="include the response's decoded payload tree in the JSON")
    s.add_argument("--list", action="store_true", help="list the use cases and exit")
    s.add_argument("-h", "--help", action="store_true", help="this help, or with USE_CASE its parameters")
    s.add_argument("-v", "--verbose", action="store_true", help="log the command and the WAN traffic on stderr")
    _client_args(s)
    s.set_defaults(func=cmd_send, intermixed=True, parser=s)

    w = sub.add_parser("send-raw", help="send a prepared GBCS frame and print the response frame's hex")
    w.add_argument("frame", help="hex or base64 frame, @FILE, or - for stdin")
    w.add_argument("-v", "--verbose", action="store_true", help="log the WAN traffic on stderr")
    _client_args(w)
    w.set_defaults(func=cmd_send_raw)

    b = sub.add_parser("build", help="print a use case's command frame (hex) without sending it",
                       usage="gbhub build USE_CASE [key=value ...] [--to NAME|TYPE|EUI] [--data DIR | --keys DIR]")
    b.add_argument("use_case", help="use case name (gbhub send --list)")
    b.add_argument("params", nargs="*", metavar="key=value", help="use-case parameters")
    _to_arg(b)
    _as_arg(b)
    b.add_argument("--keys", action="append", metavar="DIR", help="key folder(s) (default: the premises' keys)")
    b.add_argument("--data", metavar="DIR", default="gbhub-data", help="data folder of the premises (default ./gbhub-data)")
    b.set_defaults(func=cmd_build, intermixed=True, wan=None)

    a = sub.add_parser("alerts", help="connect as a head-end and print each verified alert as a JSON line")
    _client_args(a, timeout=None)
    a.add_argument("--count", type=int, metavar="N", help="exit 0 after N alerts (default: run until --timeout or Ctrl-C)")
    a.add_argument("-v", "--verbose", action="store_true", help="log the WAN traffic on stderr")
    a.set_defaults(func=cmd_alerts)


def _to_arg(p) -> None:
    p.add_argument("--to", metavar="NAME|TYPE|EUI",
                   help="recipient: a device name (esme-2), a type when only one device has it (esme, chf), or an EUI "
                        "(default: the use case's device type)")


def _as_arg(p) -> None:
    p.add_argument("--as", dest="originator", metavar="NAME|ROLE|EUI",
                   help="originator: an organisation's name in the PKI's pki.json (new_supplier), a role "
                        "(supplier, transitional_cos, recovery, ...) or an EUI (default: the use case's originator)")


def _originator(args, headend) -> bytes | None:
    """`--as`: an EUI, a pki.json organisation name, or a remote-party role name."""
    who = getattr(args, "originator", None)
    if not who:
        return None
    from gbcs.codec import parse_eui
    from gbhub.wan.headend import MissingKey

    try:
        return parse_eui(who)
    except ValueError:
        pass
    for folder in (getattr(args, "keys", None) or []) + list(getattr(args, "_manifest_keys", []) or []):
        try:
            roles = json.loads((Path(folder) / "pki.json").read_text()).get("roles", {})
        except (OSError, ValueError):
            continue
        if who in roles:
            return parse_eui(roles[who]["eui"])
    try:
        return headend.party(who.lower())
    except MissingKey as exc:
        raise UsageError(f"--as {who}: {exc} (and no organisation of that name in pki.json)") from None


def _logging(args) -> None:
    """Quiet unless -v: the one-line errors say what went wrong; -v shows the traffic."""
    logging.basicConfig(level=logging.INFO if getattr(args, "verbose", False) else logging.CRITICAL,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)


def _closed(args) -> Failure:
    where = args.wan or "the premises WAN"
    return Failure(f"the connection to {where} closed without an answer (is it a gbhub premises WAN port?)")


# ----------------------------------------------------------------------------------------------
# use cases: definitions, parameters, recipients
# ----------------------------------------------------------------------------------------------


def _definition(name: str):
    from gbcs import usecases

    try:
        return usecases.get(name)
    except KeyError as exc:
        raise UsageError(str(exc.args[0] if exc.args else exc)) from None


def _params(definition, items: list[str]) -> dict:
    """Typed parameters, checked by building the content once (wrong values, a missing `utrn`,
    `end` before `start`, an alert: one line, exit 2, before anything is sent)."""
    from gbcs import usecases

    if definition.is_alert:
        raise UsageError(f"{definition.use_case} is an alert a device sends: there is nothing to send "
                         f"(`gbhub alerts` prints alerts as they come)")
    if definition.originator == "ppmid":
        raise UsageError(f"{definition.use_case} is sent by a PPMID over the HAN, not by a head-end: type the UTRN "
                         f"on the PPMID (`gbhub ctl utrn ppmid DIGITS --fuel gas`, `gbhub ctl emergency-credit ppmid --fuel gas`)")
    items = [_certificate_file(item) for item in items]
    from .firmware import expand_image_param

    items = expand_image_param(definition.use_case, items)  # CS06 image=FILE
    try:
        params = usecases.parse_params(definition.use_case, items)
        if definition.use_case in usecases.credentials.CS02B_MODES:
            return params  # certificates come from the head-end's keystore: checked when built
        counter = 1 << 32 if definition.utrn else 1
        usecases.build_content(definition.use_case, counter, now=datetime.now(timezone.utc), **params)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return params


def _certificate_file(item: str) -> str:
    """`ds_certificate=@cert.pem` (any `*certificate=@FILE`, PEM or DER) as hex."""
    key, sep, value = item.partition("=")
    if not sep or not key.strip().replace("-", "_").endswith("certificate") or not value.startswith("@"):
        return item
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    path = Path(value[1:])
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"{key}: cannot read {path}: {exc.strerror or exc}") from None
    try:
        cert = x509.load_pem_x509_certificate(data) if b"-----BEGIN" in data else x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise UsageError(f"{key}: {path} is not a certificate: {exc}") from None
    return f"{key}={cert.public_bytes(Encoding.DER).hex()}"


def _recipient(args, definition, manifest: dict) -> bytes:
    """`--to`, else the first of the use case's device types this premises has."""
    if args.to:
        return recipient_of(args.to, manifest)
    types = set((manifest.get("types") or {n: n for n in manifest.get("devices", {})}).values())
    target = next((t for t in (definition.target, *definition.targets) if t in types), None)
    if target is None:
        if not manifest.get("devices"):
            raise UsageError(f"{definition.use_case}: give --to EUI (no premises.json names the devices)")
        kinds = " or ".join(dict.fromkeys((definition.target, *definition.targets)))
        raise UsageError(f"{definition.use_case} goes to a {kinds}; this premises has none "
                         f"(devices: {', '.join(manifest['devices'])})")
    return recipient_of(None, manifest, target)


def use_case_list() -> str:
    from gbcs import usecases

    lines = []
    for d in usecases.USE_CASES.values():
        kinds = "/".join(dict.fromkeys((d.target, *d.targets)))
        params = " ".join(p.name + ("=" if p.required else "=…") for p in d.params
                          if p.name not in ("originator", "recipient"))
        what = "alert (gbhub alerts)" if d.is_alert else ("critical" if d.critical else "")
        lines.append(f"{d.use_case:11} {d.message_code:04X} {kinds:28} {what:20} {d.name}" + (f"  [{params}]" if params else ""))
    return "\n".join(lines)


def use_case_help(definition) -> str:
    d = definition
    kinds = ", ".join(dict.fromkeys((d.target, *d.targets)))
    head = [f"{d.use_case} {d.name} (message code {d.message_code:04X})",
            f"  goes to: {kinds}; originator: {d.originator}{' (UTRN counter)' if d.utrn else ''}; "
            f"{'critical (signed)' if d.critical else 'non-critical (MAC)'}"]
    if d.is_alert:
        head.append("  an alert a device sends: `gbhub alerts` prints it; nothing to send")
    elif not d.params:
        head.append("  parameters: none")
    else:
        head.append("  parameters (key=value):")
        for p in d.params:
            kind = p.type + ("" if p.enum is None else ": " + "/".join(p.enum.__members__))
            head.append(f"    {p.name} ({kind}) = {p.default_text()}: {p.help}")
    head.append(f"usage: gbhub send {d.use_case} [key=value ...] [--to NAME|TYPE|EUI] [--summary | --full] "
                "[--data DIR | --wan ADDRESS] [--keys DIR] [--timeout S] [-v]")
    return "\n".join(head)


# ----------------------------------------------------------------------------------------------
# gbhub send
# ----------------------------------------------------------------------------------------------


def cmd_send(args) -> int:
    if args.list:
        print(use_case_list())
        return 0
    if args.help:
        print(use_case_help(_definition(args.use_case)) if args.use_case else args.parser.format_help().rstrip())
        return 0
    if not args.use_case:
        raise UsageError("give a use case (gbhub send --list shows them)")
    _logging(args)
    return asyncio.run(_send(args))


def _brief(response: dict) -> dict:
    """The decode analysis without its payload tree (the summary interprets it; --full keeps it)."""
    return {k: v for k, v in response.items() if k != "payload"}


def summary_line(use_case: str, ok: bool, summary: dict) -> str:
    rest = {k: v for k, v in summary.items() if k not in ("ok", "payload", "use_case", "message_code", "cra")}
    return f"{use_case} {'ok' if ok else 'failed'} " + json.dumps(rest, separators=(", ", ": "), default=str)


async def _send(args) -> int:
    definition = _definition(args.use_case)
    params = _params(definition, args.params)
    headend, m = await _headend(args)
    try:
        recipient = _recipient(args, definition, m)
        args._manifest_keys = m.get("keys") or []
        timeout, wake = _sleepy_wait(args, definition, m, recipient)
        press = (lambda: _press(args, recipient)) if wake else None
        result, reply = await send_command(headend, definition, params, recipient, timeout=timeout, press=press,
                                           originator=_originator(args, headend), closed=lambda: _closed(args))
        if args.summary:
            print(summary_line(definition.use_case, result.ok, result.summary))
        else:
            print(json.dumps(send_report(headend, definition.use_case, result, reply, full=args.full), indent=2, default=str))
        if not reply.valid:
            print(f"gbhub send: response failed verification (mac {reply.mac}, signature {reply.signature})", file=sys.stderr)
            return 1
        return 0 if result.ok else 1
    finally:
        await headend.close()


async def send_command(headend, definition, params: dict, recipient: bytes, *, timeout: float | None,
                       press=None, originator: bytes | None = None, closed=None):
    """Build, send and verify one use case (`gbhub send`, the dashboard): (UseCaseReply, Reply).
    `press`: a coroutine function that wakes a sleepy GSME once the hub holds the command.
    Raises UsageError (cannot be built) or Failure (rejected, no answer, link closed)."""
    from gbhub.wan.bridge import WanClosed
    from gbhub.wan.headend import CommandRejected, HeadEndError, MissingKey

    try:
        _, command, frame = headend.build_use_case(definition.use_case, recipient=recipient, params=params,
                                                   originator=originator)
    except (ValueError, MissingKey) as exc:
        raise UsageError(str(exc)) from None
    log.info("send %s counter %d originator %s recipient %s", definition.use_case, command.originator_counter,
             eui_hex(command.originator), eui_hex(recipient))
    try:
        exchange = asyncio.ensure_future(headend.exchange(command, frame, critical=definition.critical,
                                                          timeout=timeout, verify=False))
        if press is not None:  # once the Comms Hub holds the command: the GSME fetches it as it wakes
            await asyncio.sleep(WAKE_AFTER_SEND)
            try:
                await press()
            except BaseException:
                exchange.cancel()
                raise
        reply = await exchange
    except CommandRejected as exc:
        log.info("%s rejected: alert 0x%04X", definition.use_case, exc.code)
        raise Failure(f"{definition.use_case} rejected by {eui_hex(exc.device)}: alert 0x{exc.code:04X} {exc.name}") from None
    except WanClosed:
        raise (closed() if closed else Failure("the WAN connection closed without an answer")) from None
    except (HeadEndError, TimeoutError) as exc:
        raise Failure(f"{type(exc).__name__}: {exc}") from None
    result = headend.interpret(definition.use_case, reply)
    log.info("%s answered: ok %s, mac %s, signature %s", definition.use_case, result.ok, reply.mac, reply.signature)
    return result, reply


def send_report(headend, use_case: str, result, reply, *, full: bool = False) -> dict:
    """What `gbhub send` prints: use case, ok, the interpreted summary, the decoded response."""
    from gbcs.analyse import analyse

    report = analyse(reply.raw, headend.keystore, headend.acb).to_json()
    return {"use_case": use_case, "ok": result.ok, "summary": result.summary,
            "response": report if full else _brief(report)}


WAKE_AFTER_SEND = 0.3  # seconds between sending a command for a GSME and pressing its button (--wake)


def _sleepy_wait(args, definition, manifest: dict, recipient: bytes) -> tuple[float | None, bool]:
    """A command for a sleepy GSME is queued by the Comms Hub until the GSME's next wake: say so
    and wait up to its wake interval (`premises.json` "wake", real seconds) plus --timeout; with
    --wake, its button is pressed once the command is sent (control channel) and --timeout is the
    wait. Returns (timeout, press)."""
    types = manifest.get("types") or {}
    name = next((n for n, e in (manifest.get("devices") or {}).items()
                 if types.get(n) == "gsme" and e.upper() == eui_hex(recipient)), None)
    if name is None:
        if args.wake:
            raise UsageError("--wake is for a sleepy GSME: --to names none")
        return args.timeout, False
    if args.wake:
        return args.timeout, True
    wake = float((manifest.get("wake") or {}).get(name, 1800.0))
    print(f"gbhub send: {definition.use_case} queued for {name} ({eui_hex(recipient)}), a sleepy GSME; waiting for its "
          f"next wake (up to {wake:g} s; --wake presses its button)", file=sys.stderr)
    return (None if args.timeout is None else args.timeout + wake), False


async def _press(args, recipient: bytes) -> None:
    from .control import ControlError, request

    try:
        await asyncio.to_thread(request, Path(args.data), {"op": "press", "eui": eui_hex(recipient)}, 10.0)
    except ControlError as exc:
        raise Failure(f"--wake: {exc}") from None


# ----------------------------------------------------------------------------------------------
# gbhub send-raw
# ----------------------------------------------------------------------------------------------


def cmd_send_raw(args) -> int:
    _logging(args)
    return asyncio.run(_send_raw(args))


async def _send_raw(args) -> int:
    from gbhub.tools.inputs import read_frame
    from gbhub.wan.bridge import WanClosed
    from gbhub.wan.headend import CommandRejected, HeadEndError, MissingKey

    from gbcs.frame import peek_header

    frame = read_frame(args.frame)
    if peek_header(frame) is None:
        raise UsageError("not a GBCS frame: its header (originator counter, recipient) cannot be read")
    headend, _ = await _headend(args, need_keys=False)
    try:
        try:
            response = await headend.send_raw(frame, timeout=args.timeout)
        except CommandRejected as exc:
            raise Failure(f"no response: {eui_hex(exc.device)} rejected the frame: alert 0x{exc.code:04X} {exc.name}") from None
        except WanClosed:
            raise _closed(args) from None
        except (HeadEndError, TimeoutError) as exc:
            raise Failure(f"no response: {exc}") from None
        print(response.hex().upper())
        return 0
    finally:
        await headend.close()


# ----------------------------------------------------------------------------------------------
# gbhub build
# ----------------------------------------------------------------------------------------------


def cmd_build(args) -> int:
    return asyncio.run(_build(args))


async def _build(args) -> int:
    from gbhub.wan.headend import MissingKey

    definition = _definition(args.use_case)
    params = _params(definition, args.params)
    headend, m = await _headend(args, connect=False)
    try:
        recipient = _recipient(args, definition, m)
        args._manifest_keys = m.get("keys") or []
        try:
            _, _, frame = headend.build_use_case(definition.use_case, recipient=recipient, params=params,
                                                 originator=_originator(args, headend))
        except MissingKey as exc:
            raise UsageError(f"{exc} (give --data DIR of the premises, or --keys DIR holding it)") from None
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        print(frame.hex().upper())
        return 0
    finally:
        await headend.close()


# ----------------------------------------------------------------------------------------------
# gbhub alerts
# ----------------------------------------------------------------------------------------------


def cmd_alerts(args) -> int:
    if args.count is not None and args.count < 1:
        raise UsageError("--count must be 1 or more")
    if args.timeout is not None and args.timeout <= 0:
        raise UsageError("--timeout must be positive")
    _logging(args)
    return asyncio.run(_alerts(args))


def alert_json(headend, alert) -> dict:
    """One alert as `gbhub alerts` prints it: time (ISO 8601, the device's own time stamp, else
    when it arrived), device, code (0x8F3F), name, message code and use case, counter, and the
    decoded payload as `gbhub decode` shows it."""
    from gbcs import catalogue
    from gbcs.analyse import analyse, dlms_datetime_iso

    msg = alert.message
    analysis = analyse(alert.raw, headend.keystore, headend.acb)
    payload = analysis.payload
    when = None
    if getattr(payload, "alert_time", None) is not None:
        when = dlms_datetime_iso(payload.alert_time)
    elif isinstance(getattr(payload, "timestamp", None), int):
        when = (datetime(2000, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=payload.timestamp)).isoformat()
    if when is None:
        when = datetime.fromtimestamp(alert.received_at, timezone.utc).isoformat()
    code = getattr(payload, "alert_code", None)
    uc = catalogue.by_message_code(msg.message_code)
    return {
        "time": when,
        "device": eui_hex(msg.originator),
        "code": None if code is None else f"0x{code:04X}",
        "name": None if code is None else catalogue.alert_name(code),
        "message_code": f"{msg.message_code:04X}",
        "use_case": uc.use_case if uc else None,
        "counter": msg.originator_counter,
        "recipient": eui_hex(msg.recipient),
        "payload": analysis.to_json()["payload"],
    }


async def _alerts(args) -> int:
    headend, _ = await _headend(args, take_queued=True)  # also the alerts queued while none was watching
    loop = asyncio.get_running_loop()
    deadline = None if args.timeout is None else loop.time() + args.timeout
    seen = taken = 0
    stream = headend.alerts()

    def show(alert) -> bool:
        if not alert.valid:
            print(f"gbhub alerts: alert {alert.message.originator_counter} from {eui_hex(alert.message.originator)} "
                  f"fails verification (mac {alert.mac}, signature {alert.signature}): skipped", file=sys.stderr)
            return False
        print(json.dumps(alert_json(headend, alert), default=str), flush=True)
        return True

    try:
        while args.count is None or seen < args.count:
            left = None if deadline is None else deadline - loop.time()
            if left is not None and left <= 0:
                break
            try:
                alert = await asyncio.wait_for(anext(stream), left)
            except (asyncio.TimeoutError, StopAsyncIteration):
                if deadline is None or loop.time() < deadline:
                    raise _closed(args) from None
                break
            taken += 1
            seen += show(alert)
    finally:
        await stream.aclose()
        await headend.close()
    # Queued alerts come in batches and are acknowledged once received: any this head-end took
    # beyond --count are printed too, never dropped (they have left the hub's queue).
    for alert in headend.received_alerts[taken:]:
        seen += show(alert)
    if args.count is not None and seen < args.count:
        raise Failure(f"{seen} of {args.count} alerts within {args.timeout} s")
    return 0
