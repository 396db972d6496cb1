"""`gbhub load`: verified commands across a fleet at a steady rate, with throughput, latency and
what went missing.

    gbhub load --wan mqtt://HOST:PORT --data DATA --rate R --mix ECS17b:80,ECS42:10,GCS13a:10 --duration D [--gas-deadline S] [--gas-queue N] [--json FILE]

Every 10 ms the commands due at `--rate` per second are started, as long as fewer than
`--max-inflight` (default 256, the CHF's per-connection WAN inbox) are waiting for their
response; what could not be started on time is reported as `behind` (the fleet, the broker or
the load generator itself is saturated: `per_s` is then the most it carries). More in flight
than the hubs' WAN inboxes take is refused by the hubs (their bound) and shows as `lost`. Each
picks a use case by the mix weights and a device of the use case's type at random (seeded,
`--seed`), is built, signed/MACed, sent, and its response verified and interpreted by one
head-end (`wan.headend.HeadEnd`) holding the fleet's keys (`DATA/premises.json`: the organisations'
test PKI, device keys derived from the fleet seed). Use cases whose device type the fleet has
none of (gas before the GSME exists) are left out of the mix and listed under `skipped`.

Gas: a read the GPF answers (GCS13a, GCS16a, GCS17, ... whose targets include the GPF) goes to a
GPF, which answers from its copy of the GSME's data at once. A command for the GSME itself
(GCS07, GCS01a, ...) waits in the CHF's queue until the GSME's next wake (every 1800 s by
default; `gbhub fleet --gsme-wake S` for load tests), and the CHF says nothing to the head-end
meanwhile (GBCS has no "queued" answer), so the load generator knows these by the recipient's
type: such a command may take `--gas-deadline` seconds (default: the manifest's `gsme_wake_s`, or
1800, plus `--timeout`), at most `--gas-queue` (32, the CHF's per-GSME queue limit) wait per GSME
(a command for a full one goes to another GSME, or is not sent and counted in `queue_full`),
they do not take room in `--max-inflight` nor count in `p50_ms`..`p99_ms`, and after the run the
generator waits for them: `queued`, `queued_answered`, `queued_lost` (also in `lost`),
`queued_p50_ms`, `queued_max_ms`, `gas_deadline_s`. A queued command that times out keeps its
place in the count of its GSME for the rest of the run [I]: it may still wait in the CHF's queue,
and one more there than the queue takes is refused by the CHF with alert 0x8F84.

Outcomes: answered and ok (latency counted); `errors`: a rejection, a failed verification, a
response that is not ok, a command that could not be sent; `lost`: no response within
`--timeout` (default 30 s, so a broker restart is waited out); `duplicated`: responses that
reached the head-end with no command waiting for them (a second copy of an answered one);
`redelivered`: QoS 1 copies the MQTT link recognised (same bytes, seen recently) and dropped
before the head-end saw them. JSON keys: `per_s` (answered per second of the run), `p50_ms`,
`p95_ms`, `p99_ms`, `errors`, `lost`, `duplicated`, `redelivered`, `sent`, `answered`,
`seconds`, `drain_s`, `rate`, `behind`, `error_kinds`, `mix`, `skipped`, and the gas keys above.
Several `--data` folders (fleets on several machines, each with its manifest) make one fleet.
"""
from __future__ import annotations

import asyncio
import json
import logging
import random
import sys
import time
from pathlib import Path

from gbcs.codec import parse_eui

from .inputs import Failure, UsageError

log = logging.getLogger("gbhub.load")


def register(sub) -> None:
    lp = sub.add_parser("load", help="drive a fleet with verified commands and report throughput, latency, losses")
    lp.add_argument("--wan", metavar="ADDRESS", help="mqtt://HOST:PORT, mqtts://..., or HOST:PORT (default: from the manifest)")
    lp.add_argument("--data", action="append", metavar="DIR", help="fleet data folder(s) with premises.json (repeatable)")
    lp.add_argument("--rate", type=float, default=100.0, metavar="R", help="commands per second (default 100)")
    lp.add_argument("--mix", default="ECS17b:100", metavar="UC:W,...", help="use cases and weights (default ECS17b:100)")
    lp.add_argument("--duration", type=float, default=10.0, metavar="S", help="seconds of sending (default 10)")
    lp.add_argument("--timeout", type=float, default=30.0, metavar="S", help="seconds a response may take (default 30)")
    lp.add_argument("--max-inflight", type=int, default=256, metavar="N", help="commands in flight at most (default 256)")
    lp.add_argument("--gas-deadline", type=float, metavar="S",
                    help="seconds a command to a sleepy GSME may take (it waits in the CHF's queue for the next "
                         "wake; default: the fleet's GSME wake interval, `gbhub fleet --gsme-wake`, plus --timeout)")
    lp.add_argument("--gas-queue", type=int, default=GAS_QUEUE, metavar="N",
                    help=f"commands waiting per GSME at most (default {GAS_QUEUE}, the CHF's queue limit)")
    lp.add_argument("--seed", type=int, default=0, help="seed of the device and use-case choice (default 0)")
    lp.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    lp.set_defaults(func=cmd_load)


def parse_mix(text: str) -> dict[str, float]:
    from gbcs import usecases

    mix: dict[str, float] = {}
    for item in text.split(","):
        name, _, weight = item.strip().partition(":")
        try:
            w = float(weight) if weight else 1.0
            if not w > 0:
                raise ValueError
        except ValueError:
            raise UsageError(f"--mix: bad weight in {item!r} (USE_CASE:WEIGHT, weight > 0)") from None
        try:
            d = usecases.get(name)
        except KeyError:  # e.g. GCS13a before the gas meter exists: left out, said so
            print(f"gbhub load: --mix: {name} is not a use case of this gbhub (gbhub send --list); left out",
                  file=sys.stderr)
            mix[name] = 0.0
            continue
        if d.is_alert:
            raise UsageError(f"--mix: {name} is an alert, nothing to send")
        mix[d.use_case] = mix.get(d.use_case, 0.0) + w
    if not any(mix.values()):
        raise UsageError("--mix: give at least one use case this gbhub has")
    return mix


def read_manifests(folders: list[str]) -> dict:
    """The union of the fleets' manifests (devices, types, hubs), and the first one's keys."""
    out: dict = {"devices": {}, "types": {}, "hubs": {}, "wans": []}
    for folder in folders:
        path = Path(folder) / "premises.json"
        try:
            m = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise UsageError(f"{path}: no fleet manifest ({exc}); start `gbhub fleet --data {folder}` first") from None
        for key in ("devices", "types", "hubs"):
            out[key].update(m.get(key) or {})
        out["wans"].append(m.get("wan") or {})
        for key in ("acb", "supplier", "keys", "fleet", "gsme_wake_s"):
            out.setdefault(key, m.get(key))
    return out


SLEEPY = ("gsme",)  # device types that fetch their commands from the CHF's queue when they wake
GAS_QUEUE = 32  # commands waiting per GSME at most: the CHF's default gsme_queue_limit


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


async def run_load(headend, targets: dict[str, list[bytes]], mix: dict[str, float], *, rate: float, duration: float,
                   timeout: float = 30.0, max_inflight: int = 256, seed: int = 0, duplicates=lambda: 0,
                   progress=None, sleepy: frozenset[bytes] | set[bytes] = frozenset(), gas_deadline: float | None = None,
                   gas_queue: int = GAS_QUEUE) -> dict:
    """Drive `headend` (module doc) and return the figures. `sleepy`: EUIs of devices whose
    commands wait in the CHF's queue for their next wake (GSMEs): such a command may take
    `gas_deadline` seconds, at most `gas_queue` wait per device, and they neither count against
    `max_inflight` nor in the latency percentiles (they have their own)."""
    from gbhub.wan.headend import CommandRejected, HeadEndError

    rng = random.Random(seed)
    names = list(mix)
    weights = [mix[n] for n in names]
    latencies: list[float] = []
    queued_latencies: list[float] = []
    counts = {"sent": 0, "answered": 0, "errors": 0, "lost": 0, "queued": 0, "queued_lost": 0, "queue_full": 0}
    kinds: dict[str, int] = {}  # what the errors were
    waiting: dict[bytes, int] = {}  # sleepy device -> its commands waiting for a wake
    gas_deadline = timeout if gas_deadline is None else gas_deadline

    def error(what: str) -> None:
        counts["errors"] += 1
        kinds[what] = kinds.get(what, 0) + 1
    tasks: set[asyncio.Task] = set()  # answered at once (the WAN inbox window)
    queued_tasks: set[asyncio.Task] = set()  # waiting for a sleepy device's wake
    late0 = len(headend.late_responses)

    async def one(uc: str, recipient: bytes, queued: bool) -> None:
        t0 = time.perf_counter()
        try:
            r = await headend.send_use_case(uc, recipient=recipient, timeout=gas_deadline if queued else timeout)
        except (TimeoutError, asyncio.TimeoutError):
            counts["lost"] += 1
            if queued:
                # it may still wait in the CHF's queue: its place there stays taken for the rest
                # of the run (freed, the next command could overflow that queue: alert 0x8F84)
                counts["queued_lost"] += 1
                queued = False
            return
        except CommandRejected as exc:
            error(f"{uc} rejected 0x{exc.code:04X}")
            log.info("%s to %s: %s", uc, recipient.hex(), exc)
            return
        except (HeadEndError, ValueError) as exc:
            error(f"{uc} {type(exc).__name__}")
            log.info("%s to %s: %s", uc, recipient.hex(), exc)
            return
        except Exception as exc:  # noqa: BLE001 - a link failure counts, the run goes on
            error(f"{uc} {type(exc).__name__}")
            log.warning("%s: %s: %s", uc, type(exc).__name__, exc)
            return
        finally:
            if queued:
                waiting[recipient] -= 1
        if r.ok:
            counts["answered"] += 1
            (queued_latencies if queued else latencies).append((time.perf_counter() - t0) * 1000.0)
        else:
            error(f"{uc} not ok" if r.reply.valid else f"{uc} failed verification")

    def pick(pool: list[bytes]) -> bytes | None:
        """A device of `pool` at random; a sleepy one only while its queue has room."""
        for _ in range(min(len(pool), 8)):
            recipient = pool[rng.randrange(len(pool))]
            if recipient not in sleepy or waiting.get(recipient, 0) < gas_queue:
                return recipient
        return None

    start = time.perf_counter()
    tick = 0.01
    due = 0.0
    next_report = start + 5.0
    while True:
        now = time.perf_counter()
        elapsed = now - start
        if elapsed >= duration:
            break
        due = min(int(rate * elapsed) - counts["sent"] - counts["queue_full"], max_inflight - len(tasks))
        for _ in range(due):
            uc = rng.choices(names, weights)[0]
            recipient = pick(targets[uc])
            if recipient is None:  # every device tried has a full queue: not sent (counted)
                counts["queue_full"] += 1
                continue
            counts["sent"] += 1
            queued = recipient in sleepy
            if queued:
                counts["queued"] += 1
                waiting[recipient] = waiting.get(recipient, 0) + 1
            t = asyncio.ensure_future(one(uc, recipient, queued))
            group = queued_tasks if queued else tasks
            group.add(t)
            t.add_done_callback(group.discard)
        if progress is not None and now >= next_report:
            next_report = now + 5.0
            progress(f"gbhub load: {elapsed:.0f} s, sent {counts['sent']}, answered {counts['answered']}, "
                     f"in flight {len(tasks)}, waiting for a GSME wake {len(queued_tasks)}, errors {counts['errors']}, "
                     f"lost {counts['lost']}")
        await asyncio.sleep(tick)
    sent_seconds = time.perf_counter() - start
    if tasks:
        await asyncio.gather(*list(tasks), return_exceptions=True)
    if queued_tasks:
        if progress is not None:
            progress(f"gbhub load: waiting up to {gas_deadline:.0f} s for {len(queued_tasks)} command(s) queued "
                     f"for sleepy GSMEs (answered at their next wake)")
        await asyncio.gather(*list(queued_tasks), return_exceptions=True)
    total = time.perf_counter() - start
    dup = len(headend.late_responses) - late0
    return {
        "per_s": round(counts["answered"] / sent_seconds, 1) if sent_seconds else 0.0,
        "p50_ms": round(_pct(latencies, 0.50), 2),
        "p95_ms": round(_pct(latencies, 0.95), 2),
        "p99_ms": round(_pct(latencies, 0.99), 2),
        "errors": counts["errors"],
        "lost": counts["lost"],
        "duplicated": dup,
        "redelivered": duplicates(),
        "sent": counts["sent"],
        "answered": counts["answered"],
        "seconds": round(sent_seconds, 2),
        "drain_s": round(total - sent_seconds, 2),
        "rate": rate,
        "behind": max(0, int(rate * sent_seconds) - counts["sent"] - counts["queue_full"]),
        "error_kinds": kinds,
        "queued": counts["queued"],
        "queued_answered": len(queued_latencies),
        "queued_lost": counts["queued_lost"],
        "queued_p50_ms": round(_pct(queued_latencies, 0.50), 2),
        "queued_max_ms": round(max(queued_latencies, default=0.0), 2),
        "queue_full": counts["queue_full"],
        "gas_deadline_s": gas_deadline,
    }


def targets_for(mix: dict[str, float], types: dict[str, str], devices: dict[str, str]) -> tuple[dict, dict, list]:
    """Devices per use case of the mix (by the use case's device types), and what is skipped. A
    use case the GPF answers (GCS13a, GCS16a, ...) goes to the GPFs only: the GPF answers from its
    copy of the GSME's data at once, the GSME only at its next wake."""
    from gbcs import usecases

    by_type: dict[str, list[bytes]] = {}
    for name, kind in types.items():
        by_type.setdefault(kind, []).append(parse_eui(devices[name]))
    targets, kept, skipped = {}, {}, []
    for uc, w in mix.items():
        if not w:
            skipped.append(uc)
            continue
        d = usecases.get(uc)
        kinds = [t for t in dict.fromkeys((d.target, *d.targets)) if not (t in SLEEPY and "gpf" in d.targets)]
        pool = [e for t in kinds for e in by_type.get(t, [])]
        if pool:
            targets[uc], kept[uc] = pool, w
        else:
            skipped.append(uc)
    return targets, kept, skipped


def sleepy_devices(types: dict[str, str], devices: dict[str, str]) -> set[bytes]:
    """EUIs of the manifest's sleepy devices (GSMEs): their commands wait for a wake."""
    return {parse_eui(devices[name]) for name, kind in types.items() if kind in SLEEPY}


def gas_deadline_for(m: dict, timeout: float) -> float:
    """How long a command queued for a GSME may take: its wake interval (the manifest's
    `gsme_wake_s`, `gbhub fleet --gsme-wake`, else the GSME's default) plus `timeout`."""
    from gbhub.meter.gsme import WAKE_INTERVAL

    return float(m.get("gsme_wake_s") or WAKE_INTERVAL) + timeout


def cmd_load(args) -> int:
    if not args.data:
        args.data = ["gbhub-fleet"]
    if not args.rate > 0 or not args.duration > 0 or not args.timeout > 0:
        raise UsageError("--rate, --duration and --timeout must be positive")
    if (args.gas_deadline is not None and not args.gas_deadline > 0) or args.gas_queue < 1:
        raise UsageError("--gas-deadline must be positive and --gas-queue at least 1")
    mix = parse_mix(args.mix)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    figures = asyncio.run(_load(args, mix))
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0 if figures["errors"] == 0 and figures["lost"] == 0 and figures["duplicated"] == 0 else 1


async def fleet_headend(m: dict, address, *, counters=None, identifier: str | None = None):
    """One head-end for every premises of the manifest(s) `m`, and its link(s)' duplicate count."""
    from gbhub.wan.bridge import TcpClient
    from gbhub.wan.headend import HeadEnd
    from gbhub.wan.mqtt import connect_link

    from .fleet import FleetKeystore
    from .inputs import load_keys

    keys = load_keys(m.get("keys"))
    fleet = m.get("fleet") or {}
    if fleet:
        keys = FleetKeystore(int(fleet["seed"]), keys)
    hubs = {parse_eui(d): parse_eui(c) for d, c in m["hubs"].items()}
    if address is not None and address.mqtt:
        link = await connect_link(address, hubs=hubs, identifier=identifier)
        dup = lambda: link.stats["duplicates"]  # noqa: E731
    else:
        if address is not None:
            link = await TcpClient(address.host, address.port).connect()
        else:
            from .fleet import tcp_link

            link = await tcp_link(m).connect()
        dup = lambda: 0  # noqa: E731
    he = HeadEnd(link, keys, supplier=parse_eui(m["supplier"]), acb=parse_eui(m["acb"]), counters=counters)
    return he, dup


async def _load(args, mix: dict[str, float]) -> dict:
    import os

    from gbhub.wan.bridge import WanError
    from gbhub.wan.counters import HeadEndCounters
    from gbhub.wan.mqtt import parse_wan

    m = read_manifests(args.data)
    wan = args.wan
    if wan is None:
        urls = [w.get("url") for w in m["wans"] if w.get("url")]
        wan = urls[0] if urls else None
    try:
        address = parse_wan(wan) if wan else None
    except ValueError as exc:
        raise UsageError(f"--wan: {exc}") from None
    targets, kept, skipped = targets_for(mix, m["types"], m["devices"])
    if not kept:
        raise UsageError(f"--mix: the fleet has no device for {', '.join(mix)}")
    counters = HeadEndCounters(Path(args.data[0]) / "counters.json")
    try:
        he, dup = await fleet_headend(m, address, counters=counters, identifier=f"gbhub-load-{os.getpid()}")
    except (OSError, WanError) as exc:
        raise Failure(f"cannot connect to the fleet WAN at {wan}: {exc}") from None
    try:
        deadline = args.gas_deadline if args.gas_deadline is not None else gas_deadline_for(m, args.timeout)
        out = await run_load(he, targets, kept, rate=args.rate, duration=args.duration, timeout=args.timeout,
                             max_inflight=args.max_inflight, seed=args.seed, duplicates=dup,
                             progress=lambda s: print(s, file=sys.stderr, flush=True),
                             sleepy=sleepy_devices(m["types"], m["devices"]), gas_deadline=deadline,
                             gas_queue=args.gas_queue)
    finally:
        await he.close()
    out["mix"] = kept
    out["skipped"] = skipped
    return out
