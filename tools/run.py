"""`gbhub run`: a premises as a process; and how a head-end client (tools/client.py) reaches it."""
from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
from pathlib import Path

from gbcs.codec import parse_eui


def register(sub) -> None:
    r = sub.add_parser("run", help="run a premises (demo without a rig file)")
    r.add_argument("rig", nargs="?", help="rig file (TOML); default: the demo premises")
    r.add_argument("--data", metavar="DIR", help="data folder (default ./gbhub-data, or the rig's `data`)")
    r.add_argument("--wan", metavar="ADDRESS",
                   help="WAN: HOST:PORT or tcp://HOST:PORT to listen on, or mqtt://HOST:PORT (mqtts:// with TLS) "
                        "to put the premises on a broker")
    r.add_argument("--wan-port", type=int, metavar="N", help="TCP WAN port (default: the rig's, else any free port)")
    r.add_argument("--wan-host", metavar="HOST", help="TCP WAN address (default 127.0.0.1)")
    r.add_argument("--trace", metavar="FILE", help="append one JSON line per WAN frame")
    r.add_argument("--pcap", metavar="FILE", help="write all HAN traffic as a pcap for Wireshark (rig key [han] pcap)")
    r.add_argument("--web", metavar="[HOST:]PORT",
                   help="serve the web dashboard (127.0.0.1 unless HOST is given; beyond loopback it asks for the "
                        "token printed at start); rig key [web] listen")
    r.add_argument("--speed", type=float, metavar="N", help="run the clock N times faster than real time")
    r.add_argument("--status-every", type=float, default=60.0, metavar="S", help="print a status line every S seconds (0: never)")
    r.add_argument("--for", dest="duration", type=float, metavar="S", help="stop after S seconds of real time")
    r.add_argument("--reset", action="store_true",
                   help="start over: delete the data folder's keys, NVM, counters and manifest (listed first)")
    r.add_argument("-v", "--verbose", action="store_true", help="log commissioning steps and every command")
    r.set_defaults(func=cmd_run)


def wan_address(text: str):
    """A `--wan` value (`gbhub.wan.mqtt.parse_wan`), or a one-line usage error."""
    from gbhub.tools.inputs import UsageError
    from gbhub.wan.mqtt import parse_wan

    try:
        return parse_wan(text)
    except ValueError as exc:
        raise UsageError(f"--wan: {exc} (HOST:PORT, tcp://HOST:PORT, mqtt://HOST:PORT or mqtts://HOST:PORT)") from None


def _client_args(p, timeout: float | None = 10.0) -> None:
    p.add_argument("--wan", metavar="ADDRESS",
                   help="premises WAN: HOST:PORT, tcp://HOST:PORT, mqtt://HOST:PORT or mqtts://HOST:PORT "
                        "(default: from DATA/premises.json)")
    p.add_argument("--keys", action="append", metavar="DIR", help="key folder(s) (default: the premises' keys)")
    p.add_argument("--data", metavar="DIR", default="gbhub-data", help="data folder of the running premises (default ./gbhub-data)")
    p.add_argument("--timeout", type=float, default=timeout, metavar="S",
                   help=f"seconds to wait for the answer (default {timeout or 'none'})")


# ----------------------------------------------------------------------------------------------
# gbhub run
# ----------------------------------------------------------------------------------------------


def cmd_run(args) -> int:
    from gbhub.tools.inputs import UsageError
    from gbhub.tools.rig import RigError, default_rig, load_rig

    try:
        if args.rig:
            rig = load_rig(args.rig)
            if args.data:
                rig.data = Path(args.data).resolve()
            elif rig.data is None:
                rig.data = Path(f"gbhub-data-{Path(args.rig).stem}").resolve()
        else:
            rig = default_rig(Path(args.data or "gbhub-data").resolve())
    except RigError as exc:
        raise UsageError(str(exc)) from None
    if args.wan:
        address = wan_address(args.wan)
        if address.mqtt:
            rig.wan_broker = args.wan
        else:
            rig.wan_host, rig.wan_port = address.host, address.port
    if args.wan_port is not None:
        if not 0 <= args.wan_port < 65536:
            raise UsageError("--wan-port must be 0..65535")
        rig.wan_port = args.wan_port
    if args.wan_host:
        rig.wan_host = args.wan_host
    if args.trace:
        rig.trace = Path(args.trace)
    if getattr(args, "pcap", None):
        rig.han_pcap = Path(args.pcap)
    if getattr(args, "web", None):
        from gbhub.tools.rig import parse_listen

        try:
            parse_listen(args.web)
        except ValueError as exc:
            raise UsageError(f"--web: {exc}") from None
        rig.web_listen = args.web
    if args.speed is not None:
        if not args.speed > 0:
            raise UsageError("--speed must be positive")
        rig.speed = args.speed
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        return _start(rig, args)
    except RigError as exc:
        raise UsageError(str(exc)) from None
    except _ENVIRONMENT_ERRORS() as exc:
        print(f"gbhub run: {_one_line(exc)}", file=sys.stderr)
        return 1


def _ENVIRONMENT_ERRORS() -> tuple[type[BaseException], ...]:
    """What the environment or the data folder can do to a start: one line, exit 1."""
    import sqlite3

    from gbhub.firmware.nvm import NvmError
    from gbhub.tools.datafolder import DataFolderError
    from gbhub.tools.pki import PkiError
    from gbhub.wan.counters import CounterFileError
    from gbhub.wan.bridge import WanError
    from gbcs.keystore import KeystoreError

    # RuntimeError: commissioning that failed (a device refused CCS01 ...)
    return (DataFolderError, NvmError, CounterFileError, PkiError, KeystoreError, WanError, sqlite3.Error, OSError,
            RuntimeError)


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        where = f" {exc.filename}" if exc.filename else ""
        return f"{exc.strerror}{where}"
    return " ".join(str(exc).split()) or type(exc).__name__


def _check_port(host: str, port: int, what: str = "WAN") -> None:
    """A taken WAN (or dashboard) port is reported before commissioning, not after it."""
    import socket

    from gbhub.tools.datafolder import DataFolderError

    if port == 0:
        return
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise DataFolderError(f"{what} address {host}:{port}: {exc.strerror or exc}") from None
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(addr)
        except OSError as exc:
            raise DataFolderError(f"{what} port {host}:{port} is not available: {exc.strerror or exc}") from None


def _check_broker(url: str) -> None:
    """An MQTT broker that cannot be reached is reported before commissioning, not after it."""
    import socket

    from gbhub.tools.datafolder import DataFolderError
    from gbhub.wan.mqtt import parse_wan

    a = parse_wan(url)
    try:
        socket.create_connection((a.host, a.port), timeout=5).close()
    except OSError as exc:
        raise DataFolderError(f"MQTT broker {a} cannot be reached: {exc.strerror or exc}") from None


def _start(rig, args) -> int:
    """Everything `gbhub run` checks before the premises runs, in the order that leaves nothing
    behind: rig folders exist (before the data folder is made), the folder, its lock, --reset,
    the folder's state, the NVM, the WAN port."""
    from gbhub.tools import datafolder as df

    missing = [p for p in [*rig.key_folders, *(d.keys for d in rig.devices if d.keys is not None)] if not p.is_dir()]
    if missing:
        raise df.DataFolderError(f"key folder {missing[0]} (named in {rig.source or 'the rig'}) does not exist")
    data = rig.data
    df.make_folder(data)
    lock = df.FolderLock(data).acquire()
    try:
        if args.reset:
            gone = df.reset_targets(data)
            if gone:
                print(f"gbhub run --reset: deleting {', '.join(str(p) for p in gone)}", flush=True)
            else:
                print(f"gbhub run --reset: nothing to delete in {data}", flush=True)
            df.reset(data)
        df.check_resumable(data, needs_pki=not rig.key_folders)
        df.check_nvm(data)
        if rig.wan_broker is None:
            _check_port(rig.wan_host, rig.wan_port)
        else:
            _check_broker(rig.wan_broker)
        if rig.web_listen is not None:
            from gbhub.tools.rig import parse_listen

            _check_port(*parse_listen(rig.web_listen), what="dashboard")
        resumed = df.commissioned(data)
        df.mark_manifest(data, "starting")
        handler = _log_file(data, args.verbose)
        try:
            return asyncio.run(_run(rig, args, resumed))
        finally:
            logging.getLogger().removeHandler(handler)
            handler.close()
    finally:
        lock.release()


def _log_file(data: Path, verbose: bool) -> logging.Handler:
    """DATA/gbhub.log: 1 MB x 5 files, INFO and above (the console shows them with -v). Device
    activity (every command executed or rejected) is logged only with -v: a flood of frames
    must not become a flood of log writes."""
    from logging.handlers import RotatingFileHandler

    from gbhub.tools.datafolder import LOG

    class LogFile(RotatingFileHandler):
        warned = False

        def handleError(self, record) -> None:  # a full disk: one line, not a traceback per record
            if not self.warned:
                self.warned = True
                print(f"gbhub run: cannot write the log file {self.baseFilename}; its records are lost until it can",
                      file=sys.stderr, flush=True)

    handler = LogFile(data / LOG, maxBytes=1_000_000, backupCount=5, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    handler.setLevel(logging.INFO)
    root = logging.getLogger()
    root.addHandler(handler)
    if not verbose:  # the console stays at WARNING: its handler filters, the file takes INFO
        for h in root.handlers:
            if h is not handler:
                h.setLevel(logging.WARNING)
        root.setLevel(logging.INFO)
        logging.getLogger("gbhub.device").setLevel(logging.WARNING)
    return handler


#: What runs beside a premises in `gbhub run`: `await start(rig, premises, control)` once it is
#: ready -> an object with `await close()` (closed before the premises stops), or None. The web
#: dashboard adds itself (tools/dashboard.py, wired by cli.py), so run.py never imports it.
SERVICES: list = []
def sd_notify(state: str) -> None:
    """Tell systemd (a Type=notify unit, hardware/gbhub.service) READY=1 once the premises serves its
    WAN, STOPPING=1 on the way down: one datagram to $NOTIFY_SOCKET, nothing without it."""
    import socket

    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return
    address = "\0" + path[1:] if path.startswith("@") else path  # '@': an abstract socket
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.sendto(state.encode(), address)
    except OSError as exc:
        logging.getLogger("gbhub.run").warning("cannot notify systemd at %s: %s", path, exc)


async def _run(rig, args, resumed: bool) -> int:
    from gbhub.tools.control import ControlServer
    from gbhub.tools.datafolder import mark_manifest
    from gbhub.tools.premises import Premises

    print(f"gbhub: starting premises (data {rig.data})", flush=True)
    premises = Premises(rig, tcp=True, sim=False, headend_takes_queued=False)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    control = ControlServer(rig.data, premises, stop)
    services = []
    try:
        await premises.start(listen_when_ready=True)
        control.start()
        for start in SERVICES:
            service = await start(rig, premises, control)
            if service is not None:
                services.append(service)
        m = premises.manifest()
        print(f"gbhub: premises {'resumed' if resumed else 'commissioned'}", flush=True)
        if not premises.hub_side:
            print(f"gbhub: no WAN in this process: the CHF runs across the serial HAN link on {rig.han_port}", flush=True)
        elif rig.wan_broker is not None:
            print(f"gbhub: WAN (MQTT) on {premises.bridge.address}, topics {premises.bridge.down_topic[:-5]}/...", flush=True)
        else:
            print(f"gbhub: WAN (TCP) on {rig.wan_host}:{premises.wan_port}", flush=True)
        for name, eui in m["devices"].items():
            kind = m["types"][name]
            label = name if name == kind else f"{name} ({kind})"
            across = "  (across the serial HAN link)" if name in premises.remote else ""
            print(f"gbhub:   {label:5} {eui}{across}", flush=True)
        print(f"gbhub:   keys {', '.join(m['keys'])}; ACB {m['acb']}, supplier {m['supplier']}", flush=True)
        meters = [name for name, kind in m["types"].items() if kind == "esme"]
        hint = "`gbhub send ECS17b`" if len(meters) <= 1 else f"`gbhub send ECS17b --to {meters[-1]}`"
        print(f"gbhub: running; try {hint} in another shell. Ctrl-C or `gbhub stop` stops.", flush=True)
        sd_notify(f"READY=1\nSTATUS=premises {'resumed' if resumed else 'commissioned'}, {len(m['devices'])} devices")
        deadline = loop.time() + args.duration if args.duration else None
        while not stop.is_set():
            wait = args.status_every if args.status_every > 0 else 3600.0
            if deadline is not None:
                wait = min(wait, max(0.0, deadline - loop.time()))
            try:
                await asyncio.wait_for(stop.wait(), timeout=wait)
            except asyncio.TimeoutError:
                pass
            if deadline is not None and loop.time() >= deadline:
                break
            if args.status_every > 0 and not stop.is_set():
                print("gbhub: " + json.dumps(premises.status()), flush=True)
    finally:
        print("gbhub: stopping", flush=True)
        for service in reversed(services):
            await service.close()
        sd_notify("STOPPING=1")
        await control.close()
        try:
            await premises.stop()
        finally:
            mark_manifest(rig.data, "stopped")
    return 0


# ----------------------------------------------------------------------------------------------
# gbhub send / send-raw
# ----------------------------------------------------------------------------------------------


def _manifest(args) -> dict:
    path = Path(args.data) / "premises.json"
    if path.is_file():
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            pass
    return {}


async def _headend(args, need_keys: bool = True, connect: bool = True, take_queued: bool | None = None):
    """The head-end the client commands share (premises.json, key folders, counters); with
    `connect=False` (gbhub build) on a link nothing listens on; `take_queued=True` (gbhub alerts)
    takes, and acknowledges, the frames the CHF queued while no head-end was attached."""
    from gbhub.tools.inputs import Failure, UsageError, load_keys
    from gbhub.wan.bridge import WanError
    from gbhub.wan.headend import HeadEnd

    m = _manifest(args)
    wan = args.wan
    mw = m.get("wan") or {}
    if wan is None and connect:
        if not mw:
            raise UsageError(f"no --wan given and no running premises found in {args.data}/premises.json")
        wan = mw["url"] if "url" in mw else f"{mw['host']}:{mw['port']}"
    address = wan_address(wan) if wan else None
    keys = load_keys(args.keys or m.get("keys"))
    if m.get("fleet"):  # a fleet's devices' keys are derived from its seed (tools/fleet.py)
        from gbhub.tools.fleet import FleetKeystore

        keys = FleetKeystore(int(m["fleet"]["seed"]), keys)
    if not len(keys) and not need_keys:
        # send-raw only relays bytes: no keys needed, the EUIs just fill the head-end's slots
        from gbcs.catalogue import RTDS_ACB as acb, RTDS_SUPPLIER as supplier
    else:
        if not len(keys):
            raise UsageError("no keys: give --keys DIR (or run the premises with a data folder)")
        roles = {keys.role(e): e for e in keys.euis() if keys.role(e) is not None}
        acb = parse_eui(m["acb"]) if m.get("acb") else roles.get(4)
        supplier = parse_eui(m["supplier"]) if m.get("supplier") else roles.get(2)
        if acb is None or supplier is None:
            raise UsageError("the keystore has no ACB / supplier organisation certificate")
    from gbhub.tools.pki import ca_certificates

    cas = tuple(c for folder in (args.keys or m.get("keys") or ()) for c in ca_certificates(folder))
    if not connect:
        from gbhub.wan.bridge import InProcessBridge

        return HeadEnd(InProcessBridge().client(), keys, supplier=supplier, acb=acb, counters=_counters(args, m),
                       ca_certificates=cas), m
    try:
        client = await _link(address, m, take_queued, getattr(args, "to", None))
    except (OSError, WanError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise Failure(f"cannot connect to the premises WAN at {wan}: {why}") from None
    return HeadEnd(client, keys, supplier=supplier, acb=acb, counters=_counters(args, m), take_queued=take_queued,
                   ca_certificates=cas), m


async def _link(address, manifest: dict, take_queued: bool | None, to: str | None = None):
    """The head-end's link: TCP, or the broker with the hub(s) the manifest names (one premises'
    CHF, or a fleet's recipient -> CHF map); a head-end that takes queued frames (gbhub alerts)
    keeps a persistent session, so alerts published while it reconnects wait for it."""
    from gbhub.wan.mqtt import connect_link

    mw = manifest.get("wan") or {}
    if not address.mqtt and mw.get("tcp") and manifest.get("fleet") and address == wan_address(f"{mw['host']}:{mw['port']}"):
        from gbhub.tools.fleet import tcp_link  # a TCP fleet: every worker's listener, routed by recipient

        return await tcp_link(manifest).connect()
    chf = parse_eui(mw["chf"]) if mw.get("chf") else None
    hubs = {parse_eui(d): parse_eui(c) for d, c in (manifest.get("hubs") or {}).items()} or None
    if address.mqtt and chf is None and hubs is None:
        from gbhub.tools.inputs import UsageError

        raise UsageError("over MQTT the head-end needs the premises' premises.json (give --data DIR) to know its hub")
    ident = None
    if take_queued and address.mqtt:
        ident = f"gbhub-alerts-{mw.get('chf') or 'fleet'}"
    watch = None
    if hubs and to:  # one command into a fleet: watch only its hub's topics, not the whole fleet's traffic
        try:
            watch = [hubs[recipient_of(to, manifest)]]
        except Exception:  # noqa: BLE001 - a bad --to is reported where it is resolved
            watch = None
    return await connect_link(address, chf=chf, hubs=hubs, watch=watch, identifier=ident)


def _counters(args, manifest: dict):
    """The data folder's counter file when it belongs to the premises we talk to (`gbhub run`
    keeps it there): counters then only grow, whatever the clocks say (`--speed`)."""
    from gbhub.tools.datafolder import COUNTERS
    from gbhub.wan.counters import CounterFileError, HeadEndCounters

    data = Path(args.data)
    if not manifest or not data.is_dir() or not os.access(data, os.W_OK):
        return None
    try:
        return HeadEndCounters(data / COUNTERS)
    except CounterFileError as exc:  # the clock's milliseconds then, as without a data folder
        print(f"gbhub: warning: {exc}", file=sys.stderr)
        return None


def recipient_of(to: str | None, manifest: dict, default: str = "esme") -> bytes:
    """The EUI `--to` names in a running premises (premises.json `devices` and `types`; a
    manifest without `types` is from before devices had names other than their type)."""
    from gbhub.tools.inputs import UsageError
    from gbhub.tools.rig import AddressError, resolve_device

    devices = manifest.get("devices", {})
    types = manifest.get("types") or {name: name for name in devices}
    try:
        return parse_eui(resolve_device(to or default, devices, types))
    except AddressError as exc:
        where = "--to" if to else "no --to given (default: the use case's device type)"
        raise UsageError(f"{where}: {exc.args[0]}") from None
