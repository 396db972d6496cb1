"""`gbhub run`: a premises as a process; and how a head-end client (tools/client.py) reaches it."""
from __future__ import annotations

import asyncio
import json
import logging
import signal
from pathlib import Path

from gbcs.codec import parse_eui


def register(sub) -> None:
    r = sub.add_parser("run", help="run a premises (demo without a rig file)")
    r.add_argument("rig", nargs="?", help="rig file (TOML); default: the demo premises")
    r.add_argument("--data", metavar="DIR", help="data folder (default ./gbhub-data, or the rig's `data`)")
    r.add_argument("--wan-port", type=int, metavar="N", help="TCP WAN port (default: the rig's, else any free port)")
    r.add_argument("--wan-host", metavar="HOST", help="TCP WAN address (default 127.0.0.1)")
    r.add_argument("--trace", metavar="FILE", help="append one JSON line per WAN frame")
    r.add_argument("--speed", type=float, metavar="N", help="run the clock N times faster than real time")
    r.add_argument("--status-every", type=float, default=60.0, metavar="S", help="print a status line every S seconds (0: never)")
    r.add_argument("--for", dest="duration", type=float, metavar="S", help="stop after S seconds of real time")
    r.add_argument("-v", "--verbose", action="store_true", help="log device activity")
    r.set_defaults(func=cmd_run)


def _client_args(p, timeout: float | None = 10.0) -> None:
    p.add_argument("--wan", metavar="HOST:PORT", help="premises WAN address (default: from DATA/premises.json)")
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
    if args.wan_port is not None:
        if not 0 <= args.wan_port < 65536:
            raise UsageError("--wan-port must be 0..65535")
        rig.wan_port = args.wan_port
    if args.wan_host:
        rig.wan_host = args.wan_host
    if args.trace:
        rig.trace = Path(args.trace)
    if args.speed is not None:
        if args.speed <= 0:
            raise UsageError("--speed must be positive")
        rig.speed = args.speed
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        return asyncio.run(_run(rig, args))
    except RigError as exc:
        raise UsageError(str(exc)) from None


async def _run(rig, args) -> int:
    from gbhub.tools.premises import Premises

    premises = Premises(rig, tcp=True, sim=False)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    print(f"gbhub: starting premises (data {rig.data})", flush=True)
    await premises.start()
    try:
        m = premises.manifest()
        print(f"gbhub: WAN (TCP) on {rig.wan_host}:{premises.wan_port}", flush=True)
        for name, eui in m["devices"].items():
            kind = m["types"][name]
            label = name if name == kind else f"{name} ({kind})"
            print(f"gbhub:   {label:5} {eui}", flush=True)
        print(f"gbhub:   keys {', '.join(m['keys'])}; ACB {m['acb']}, supplier {m['supplier']}", flush=True)
        meters = [name for name, kind in m["types"].items() if kind == "esme"]
        hint = "`gbhub send ECS17b`" if len(meters) <= 1 else f"`gbhub send ECS17b --to {meters[-1]}`"
        print(f"gbhub: running; try {hint} in another shell. Ctrl-C stops.", flush=True)
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
        await premises.stop()
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


async def _headend(args, need_keys: bool = True, connect: bool = True):
    """The head-end the client commands share (premises.json, key folders, counters); with
    `connect=False` (gbhub build) on a link nothing listens on."""
    from gbhub.tools.inputs import Failure, UsageError, load_keys
    from gbhub.wan.bridge import TcpClient
    from gbhub.wan.headend import HeadEnd

    m = _manifest(args)
    wan = args.wan
    if wan is None and connect:
        if not m.get("wan"):
            raise UsageError(f"no --wan given and no running premises found in {args.data}/premises.json")
        wan = f"{m['wan']['host']}:{m['wan']['port']}"
    host, _, port = (wan or ":0").rpartition(":")
    try:
        port_n = int(port)
        if not 0 <= port_n < 65536:
            raise ValueError
    except ValueError:
        raise UsageError(f"--wan must be HOST:PORT, got {wan!r}") from None
    keys = load_keys(args.keys or m.get("keys"))
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
    if not connect:
        from gbhub.wan.bridge import InProcessBridge

        return HeadEnd(InProcessBridge().client(), keys, supplier=supplier, acb=acb), m
    client = TcpClient(host or "127.0.0.1", port_n)
    try:
        await client.connect()
    except OSError as exc:
        raise Failure(f"cannot connect to the premises WAN at {wan}: {exc.strerror or exc}") from None
    return HeadEnd(client, keys, supplier=supplier, acb=acb), m


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
