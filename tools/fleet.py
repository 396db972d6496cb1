"""`gbhub fleet`: many premises in one process, or over several worker processes and machines.

Numbering: a seed S numbers its premises 0, 1, 2 ...; `--first K --premises N` runs K .. K+N-1,
so fleets started independently (another process, another machine) never collide as long as
their ranges do not overlap. Every device EUI is derived from (seed, premises number, type, n):

    F1 ‖ seed (2 bytes) ‖ type code (1 byte) ‖ premises number (4 bytes)

(type code: chf 0x10, gpf 0x20, esme 0x30, gsme 0x40, ihd 0x50, ppmid 0x60, plus n - 1 for the
n-th device of a type; other registered types get a code from their name's CRC). A premises has
the devices of the demo premises (`rig.DEFAULT_DEVICES`: whatever device types are registered
there, so dual-fuel premises arrive with the GSME), composed by `tools/premises.py` like any
other: one member rig per premises (`member_rig`).

Keys (TEST ONLY, never for anything real): the organisations (ACB, supplier ...) come from a
test PKI in DATA/keys (made on first start; copy it to the other machines of a fleet, or give
`--keys DIR`); every device's KA and DS key pairs are derived on first use from (seed, EUI,
usage) by `FleetKeystore`, so nothing per device is generated or stored at start, and any head-
end knowing the seed knows the devices' public keys. Devices have no certificates.

Commissioning (TEST ONLY, default `--commission derived`): each premises is written in the state
GBCS commissioning leaves (`Premises.commission_derived`: CHF device log entries and join window,
TC link keys derived from the seed, the meters' device logs of CS03B and of the PPMID's pairing)
before its devices boot, so they come up as after a restart of a commissioned premises — no
messages, no round trips; tests/test_fleet_derived.py checks the state and behaviour against
commissioning by messages (`--commission gbcs`, what a single premises does).

Timers [I]: a fleet's IHDs, PPMIDs and GSMEs poll or wake at a phase of their interval fixed by
their EUI (`phase_of`), not all at the same instant, and the displays poll less often than a
single premises' (`FLEET_OPTIONS`: IHD demand every 60 s, price and credit every 600 s; PPMID
every 120 s; `--ihd-poll`, `--ppmid-poll`). After start the worker's objects are frozen out of
the garbage collector's view (`gc.freeze`; `stop()` gives them back): they live as long as the fleet.

Sharing inside a worker: one clock, one NVM store (DATA/worker-<n>.sqlite, every device under
its EUI, locked by the worker while it runs: `Nvm(exclusive=True)`; in memory without a data folder), one keystore, one trust-anchor set, one MQTT session;
each premises keeps its own virtual HAN and devices. Consumption is seeded per premises
(ConsumptionModel seed from (seed, premises number)), so it is computed on demand, never stored
ahead; the ESMEs' and GSMEs' half-hourly profiles are derived from it when read, not stored per half
hour, and their daily read logs replayed from the profile where they can be (`PROFILE_DEVICES`,
`profile_storage="derived"`; `gbhub fleet --profile stored` stores them).

The manifest DATA/premises.json has the shape of a single premises' (devices by name, types,
keys, acb, supplier, wan) plus `hubs` (device EUI -> CHF EUI) and `fleet` (seed, first,
premises): `gbhub send --to EUI --data DATA` and `gbhub load --data DATA` use it. Device names
are `p<number>.<name>` (p42.esme).
"""
from __future__ import annotations

import asyncio
import gc
import hashlib
import json
import logging
import os
import signal
import sys
import time
import zlib
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from gbcs.codec import eui_hex
from gbcs.keystore import Keystore

log = logging.getLogger("gbhub.fleet")

FLEET_MARK = 0xF1
COMMISSIONING = ("derived", "gbcs")
TYPE_CODES = {"chf": 1, "gpf": 2, "esme": 3, "gsme": 4, "ihd": 5, "ppmid": 6}  # high nibble of the type code
_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551  # P-256 group order


def type_code(type_: str, n: int = 1) -> int:
    high = TYPE_CODES.get(type_)
    if high is None:
        high = 7 + zlib.crc32(type_.encode()) % 9  # 7 .. 15
    return ((high << 4) + n - 1) & 0xFF


def fleet_eui(seed: int, index: int, type_: str, n: int = 1) -> bytes:
    """The EUI of the n-th device of a type in premises `index` of fleet `seed` (module doc)."""
    if not 0 <= index < 1 << 32:
        raise ValueError("premises numbers are 0 .. 2^32 - 1")
    return bytes((FLEET_MARK,)) + (seed & 0xFFFF).to_bytes(2, "big") + bytes((type_code(type_, n),)) + index.to_bytes(4, "big")


def member_name(index: int, name: str) -> str:
    return f"p{index}.{name}"


def derive_private_key(seed: int, eui: bytes, usage: str) -> ec.EllipticCurvePrivateKey:
    """TEST ONLY: a P-256 key fixed by (seed, EUI, usage)."""
    digest = hashlib.sha256(b"gbhub fleet test-only key\0" + seed.to_bytes(8, "big", signed=True) + eui + usage.encode()).digest()
    return ec.derive_private_key(int.from_bytes(digest, "big") % (_ORDER - 1) + 1, ec.SECP256R1())


class FleetKeystore(Keystore):
    """Organisations from a test PKI; fleet devices' KA and DS keys derived on first use (module
    doc), and, given the PKI folder (`pki`), their certificates issued by its device CA on first
    use (what a device presents when it joins by CBKE). TEST ONLY: anyone who knows the seed has
    every device's private keys."""

    def __init__(self, seed: int, base: Keystore | None = None, *, pki: Path | None = None) -> None:
        super().__init__()
        if base is not None:
            self.merge(base)
        self.seed = seed
        self.pki = pki
        self._issuer = None
        self._prefix = bytes((FLEET_MARK,)) + (seed & 0xFFFF).to_bytes(2, "big")

    def _derive(self, eui: bytes, usage: str) -> None:
        if usage in ("ka", "ds") and len(eui) == 8 and eui[:3] == self._prefix and (eui, usage) not in self._slots:
            self.add_private_key(eui, usage, derive_private_key(self.seed, eui, usage))

    def certificate(self, eui: bytes, usage: str = "ka"):
        self._derive(eui, usage)
        slot = self._slots.get((eui, usage))
        if slot is not None and slot.certificate is None and slot.private_key is not None and self.pki is not None \
                and eui[:3] == self._prefix:
            import datetime as dt

            from .pki import _load_issuer, device_certificate

            if self._issuer is None:
                self._issuer = _load_issuer(self.pki, "device-ca")
            start = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)
            slot.set_certificate(device_certificate(self._issuer, slot.private_key.public_key(), eui, usage, start))
            self._forget(eui)
        return super().certificate(eui, usage)

    def slot(self, eui: bytes, usage: str):
        self._derive(eui, usage)
        return super().slot(eui, usage)

    def public_key(self, eui: bytes, usage: str = "ka"):
        self._derive(eui, usage)
        return super().public_key(eui, usage)

    def private_key(self, eui: bytes, usage: str = "ka"):
        self._derive(eui, usage)
        return super().private_key(eui, usage)


def commissioning_secret(seed: int) -> bytes:
    """TEST ONLY: what derived commissioning derives a fleet's TC link keys from (module doc)."""
    return hashlib.sha256(b"gbhub fleet test-only commissioning\0" + seed.to_bytes(8, "big", signed=True)).digest()


# A fleet's meters derive their half-hourly profile from the seeded model on demand instead of
# storing a row per half hour (README "Fleets"; `gbhub fleet --profile stored` stores them).
PROFILE_DEVICES = ("esme", "gsme")
PROFILES = ("derived", "stored")

# Where in its interval each device's periodic work falls: spread by EUI, so a fleet's IHDs,
# PPMIDs and GSMEs do not all poll or wake at the same instant [I] (README "Fleets").
PHASES = {"ihd": "poll_phase", "ppmid": "poll_phase", "gsme": "wake_phase"}
# A fleet's displays poll less often than a single premises' [I] (README "Fleets"): the IHD reads
# demand every minute and price, credit and the ESME's HAN events every ten, the PPMID its meters'
# credit every two minutes; `gbhub fleet --ihd-poll / --ppmid-poll` (or `options`) say otherwise.
# The IHD reads the GPF's gas mirror once per GSME wake (30 min): it changes no more often [I].
FLEET_OPTIONS: dict[str, dict[str, Any]] = {"ihd": {"poll_interval": 60.0, "detail_interval": 600.0,
                                                    "events_interval": 600.0, "gas_interval": 1800.0},
                                            "ppmid": {"poll_interval": 120.0},
                                            **{t: {"profile_storage": "derived"} for t in PROFILE_DEVICES}}


def fleet_options(options: dict[str, dict] | None) -> dict[str, dict]:
    """FLEET_OPTIONS, overlaid type by type with `options`."""
    out = {t: dict(o) for t, o in FLEET_OPTIONS.items()}
    for t, o in (options or {}).items():
        out[t] = {**out.get(t, {}), **o}
    return out


def phase_of(eui: bytes) -> float:
    """A device's phase, 0 .. 1, fixed by its EUI."""
    return int.from_bytes(hashlib.sha256(b"gbhub fleet phase" + eui).digest()[:4], "big") / 2**32


def member_rig(seed: int, index: int, without: tuple[str, ...] = (), options: dict[str, dict] | None = None):
    """The rig of premises `index`: the demo premises' devices (less the types in `without`)
    with fleet EUIs and a seeded consumption model; `options`: extra device options by type
    (e.g. {"ihd": {"poll_interval": 30}})."""
    from gbhub.meter.model import ConsumptionModel

    from .rig import DEFAULT_DEVICES, Rig, parse_devices

    count: dict[str, int] = {}
    tables = []
    for t in DEFAULT_DEVICES:
        if t["type"] in without:
            continue
        t = dict(t)
        n = count[t["type"]] = count.get(t["type"], 0) + 1
        t["eui"] = fleet_eui(seed, index, t["type"], n).hex()
        tables.append(t)
    rig = Rig(data=None, devices=parse_devices(tables, Path.cwd()))
    mix = int.from_bytes(hashlib.sha256(b"gbhub fleet model" + seed.to_bytes(8, "big", signed=True)
                                        + index.to_bytes(4, "big")).digest()[:8], "big")
    for d in rig.devices:
        if d.type in PHASES:
            d.options = {**d.options, PHASES[d.type]: phase_of(d.eui)}
        if d.type == "esme":
            d.options = {**d.options, "model": ConsumptionModel(seed=mix, base_w=150.0 + mix % 300, peak_w=1500.0 + (mix >> 16) % 2500)}
        if options and d.type in options:
            d.options = {**d.options, **options[d.type]}
    return rig


def manifest(seed: int, first: int, count: int, *, wan: str | None, identity, keys: list[str], processes: int = 1) -> dict:
    """DATA/premises.json of a fleet (module doc)."""
    devices: dict[str, str] = {}
    types: dict[str, str] = {}
    hubs: dict[str, str] = {}
    for index in range(first, first + count):
        rig = member_rig(seed, index)
        chf = eui_hex(rig.device("chf").eui)
        for d in rig.devices:
            name = member_name(index, d.name)
            devices[name] = eui_hex(d.eui)
            types[name] = d.type
            hubs[eui_hex(d.eui)] = chf
    return {"pid": os.getpid(), "wan": {"url": wan} if wan else None, "devices": devices, "types": types, "hubs": hubs,
            "acb": eui_hex(identity.acb), "supplier": eui_hex(identity.supplier), "keys": keys,
            "fleet": {"seed": seed, "first": first, "premises": count, "processes": processes},
            "clock": "real", "state": "ready"}


def tcp_link(manifest: dict):
    """A head-end link to every TCP listener a fleet manifest names, routing by recipient."""
    from gbcs.codec import parse_eui
    from gbhub.wan.fleet_tcp import FleetTcpLink

    listeners = [t for w in manifest.get("wans", [manifest.get("wan") or {}]) for t in (w.get("tcp") or [])]
    routes: dict[bytes, int] = {}
    for name, eui in manifest["devices"].items():
        number = int(name[1:].split(".", 1)[0])
        for i, t in enumerate(listeners):
            if t["first"] <= number < t["first"] + t["premises"]:
                routes[parse_eui(eui)] = i
    return FleetTcpLink([(t["host"], t["port"]) for t in listeners], routes)


def fleet_identity(keys: Path, seed: int):
    """The Identity fleet premises share: organisations from the test PKI folder `keys` (made
    there if missing), devices' keys derived (FleetKeystore)."""
    from gbhub.firmware.gbcs_device import TrustAnchors

    from .pki import init_pki, load_pki
    from .premises import Identity

    if not (keys / "pki.json").is_file():
        keys.mkdir(parents=True, exist_ok=True)
        init_pki(keys)
    pki = load_pki(keys)
    ks = FleetKeystore(seed, pki.keystore, pki=keys)
    return Identity(ks, TrustAnchors.from_keystore(pki.keystore), pki.acb, pki.supplier, pki.network_operator)


# --------------------------------------------------------------------------------------------
# One worker: premises in one event loop
# --------------------------------------------------------------------------------------------


class FleetWorker:
    """Premises `indices` of fleet `seed` in this event loop, sharing clock, NVM, keystore and
    broker session (module doc). `start(progress)` builds, commissions (in process, no broker
    round trips) and connects them; `stats()` for the live summary; `stop()`."""

    def __init__(self, seed: int, indices: range, identity, *, wan=None, nvm_path: Path | None = None,
                 clock=None, sim: bool = False, speed: float = 1.0, worker: int = 0, concurrency: int = 128,
                 without: tuple[str, ...] = (), options: dict[str, dict] | None = None,
                 nvm_sync: str = "GROUP", commission: str = "derived") -> None:
        """`commission`: "derived" (default: `Premises.commission_derived`, no messages) or
        "gbcs" (the use cases, as a single premises commissions)."""
        from gbhub.firmware import Nvm, RealClock, SimClock

        if commission not in COMMISSIONING:
            raise ValueError(f"commission is one of {', '.join(COMMISSIONING)}")
        self.commission = commission

        from .premises import DEFAULT_SIM_START

        self.seed = seed
        self.indices = indices
        self.identity = identity
        self.wan = wan
        self.worker = worker
        self.concurrency = concurrency
        self.without = without
        self.options = fleet_options(options)
        self.clock = clock if clock is not None else (SimClock(DEFAULT_SIM_START) if sim else RealClock(speed=speed))
        self.sim = sim
        self.nvm = Nvm(nvm_path, synchronous=nvm_sync, exclusive=True)  # the worker's own file
        self.session = None
        self.tcp = None
        self.premises: list = []
        self.errors = 0

    async def start(self, progress=None) -> None:
        from .premises import Premises

        if self.wan is not None and self.wan.mqtt:
            from gbhub.wan.mqtt import MqttSession

            self.session = MqttSession(self.wan, identifier=f"gbhub-fleet-{self.seed}-{self.indices.start}-{self.worker}")
        elif self.wan is not None:
            from gbhub.wan.fleet_tcp import FleetTcpServer

            self.tcp = FleetTcpServer(self.wan.host, self.wan.port)
        # a simulated clock is advanced by each commissioning in turn (one advance at a time)
        sem = asyncio.Semaphore(1 if self.sim else self.concurrency)
        done = 0

        async def one(index: int):
            nonlocal done
            rig = member_rig(self.seed, index, self.without, self.options)
            bridge = None
            if self.session is not None:
                from gbhub.wan.mqtt import MqttBridge

                bridge = MqttBridge(rig.device("chf").eui, self.session)
            elif self.tcp is not None:
                bridge = self.tcp.hub(rig.device("chf").eui)
            async with sem:
                p = Premises(rig, tcp=False, sim=self.sim, identity=self.identity, clock=self.clock, nvm=self.nvm,
                             bridge=bridge, headend_takes_queued=False)
                await p.start(derived=commissioning_secret(self.seed) if self.commission == "derived" else None)
                if self.wan is not None and p.headend is not None:
                    await p.headend.close()  # from now on the broker (or the TCP listener) is the WAN
                    p.headend = None
            if self.tcp is not None:
                self.tcp.route(p)
            done += 1
            if progress is not None:
                progress(done)
            return p

        # Start-up builds millions of long-lived objects: the collector's full passes over them
        # are wasted work, during start and every few seconds afterwards. It is off while the
        # premises start, then they are frozen out of its view (`gc.freeze`); what runs later is
        # collected as usual. (A full collection after 3,000 premises found 33 objects: start-up
        # leaves no cyclic garbage worth its seconds.)
        collecting = gc.isenabled()
        gc.disable()
        try:
            results = await asyncio.gather(*(one(i) for i in self.indices), return_exceptions=True)
        finally:
            if collecting:
                gc.enable()
        gc.freeze()
        for r in results:
            if isinstance(r, BaseException):
                self.errors += 1
                log.error("premises failed to start: %s", r)
            else:
                self.premises.append(r)
        if self.session is not None:
            await self.session.start(wait=30.0)
        if self.tcp is not None:
            await self.tcp.start()

    @property
    def port(self) -> int | None:
        return self.tcp.port if self.tcp is not None else None

    def stats(self) -> dict:
        s = self.session.stats if self.session is not None else (self.tcp.stats if self.tcp is not None else {})
        return {"up": len(self.premises), "received": s.get("received", 0), "published": s.get("published", 0),
                "alerts": s.get("alerts", 0), "errors": self.errors + s.get("dropped", 0),
                "connected": bool(self.session.connected) if self.session is not None else True}

    async def stop(self) -> None:
        for p in self.premises:
            try:
                await p.stop()
            except Exception:  # noqa: BLE001 - shutting down regardless
                log.exception("stopping a premises")
        if self.session is not None:
            await self.session.close()
        if self.tcp is not None:
            await self.tcp.close()
        self.nvm.close()
        gc.unfreeze()  # what start froze goes back to the collector (the fleet's cycles with it)


# --------------------------------------------------------------------------------------------
# gbhub fleet
# --------------------------------------------------------------------------------------------


def register(sub) -> None:
    f = sub.add_parser("fleet", help="run many premises (over worker processes) on an MQTT broker or TCP listeners")
    f.add_argument("--premises", type=int, required=True, metavar="N", help="number of premises")
    f.add_argument("--processes", type=int, default=1, metavar="P", help="worker processes (default 1)")
    f.add_argument("--wan", default="tcp", metavar="mqtt://HOST:PORT|tcp",
                   help="mqtt://HOST:PORT (mqtts:// with TLS) puts every premises on a broker; tcp (default) or "
                        "tcp://HOST:PORT opens one TCP listener per worker (ports PORT, PORT+1 ...; 0: any)")
    f.add_argument("--seed", type=int, default=1, metavar="S", help="fleet seed: EUIs, keys, consumption (default 1)")
    f.add_argument("--first", type=int, default=0, metavar="K", help="number of the first premises (default 0)")
    f.add_argument("--speed", type=float, default=1.0, metavar="X", help="clock speed (default 1)")
    f.add_argument("--data", metavar="DIR", default="gbhub-fleet", help="data folder (default ./gbhub-fleet)")
    f.add_argument("--keys", metavar="DIR", help="test PKI folder of the organisations (default DATA/keys)")
    f.add_argument("--ihd-poll", type=float, metavar="S",
                   help="seconds between an IHD's reads of its meter's demand (default 60; price and credit every "
                        "10 polls; a single premises' IHD: 10 s); shorter polls cost more CPU in large fleets")
    f.add_argument("--ppmid-poll", type=float, metavar="S",
                   help="seconds between a PPMID's reads of its meters' credit (default 120; a single premises' "
                        "PPMID: 30 s)")
    f.add_argument("--commission", choices=COMMISSIONING, default="derived",
                   help="derived (default, TEST ONLY: the commissioned state written from the seed, no messages) "
                        "or gbcs (CCS01, joins, CS03B ... as a single premises commissions)")
    f.add_argument("--gsme-wake", type=float, metavar="S",
                   help="seconds between a GSME's wakes (default: the GSME's own, 1800 s); commands to a "
                        "GSME wait in the CHF's queue until its next wake (`gbhub load --gas-deadline`)")
    f.add_argument("--nvm-sync", choices=("group", "full", "normal"), default="group",
                   help="how a worker's NVM reaches the disk: group (default: one fsync for many commands, "
                        "each answered only once on disk), full (one fsync per commit), normal (no fsync "
                        "before answering: survives a process kill, not a power cut)")
    f.add_argument("--profile", choices=PROFILES, default="derived",
                   help="derived (default: meters compute their half-hourly profile from the seeded model when "
                        "read, and replay their daily reads from it; only what cannot be given so is stored) or "
                        "stored (a row per half hour, a read per midnight)")
    f.add_argument("--for", dest="duration", type=float, metavar="S", help="stop after S seconds")
    f.add_argument("--summary-every", type=float, default=5.0, metavar="S", help="live summary period (default 5 s)")
    f.set_defaults(func=cmd_fleet)


def _worker_main(conn, seed: int, indices: range, keys: str, wan: str | None, data: str, speed: float, worker: int,
                 options: dict | None = None, nvm_sync: str = "group", commission: str = "derived") -> None:
    """A worker process: runs its premises until the parent says stop (or goes away)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    logging.basicConfig(level=logging.WARNING, format=f"%(asctime)s worker {worker} %(name)s %(levelname)s %(message)s")
    from gbhub.wan.mqtt import parse_wan

    async def main() -> None:
        identity = fleet_identity(Path(keys), seed)
        address = parse_wan(wan) if wan else None
        if address is not None and not address.mqtt and address.port:
            address = type(address)("tcp", address.host, address.port + worker)
        w = FleetWorker(seed, indices, identity, wan=address, nvm_path=Path(data) / f"worker-{worker}.sqlite",
                        speed=speed, worker=worker, options=options, nvm_sync=nvm_sync.upper(), commission=commission)
        last = [0.0]

        def progress(n: int) -> None:
            now = time.monotonic()
            if now - last[0] > 0.2 or n == len(indices):
                last[0] = now
                conn.send(("progress", worker, n))

        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_reader(conn.fileno(), stop.set)
        try:
            await w.start(progress)
            conn.send(("ready", worker, {"port": w.port, "errors": w.errors}))
            while not stop.is_set():
                try:
                    await asyncio.wait_for(stop.wait(), 1.0)
                except asyncio.TimeoutError:
                    pass
                conn.send(("stats", worker, w.stats()))
        finally:
            loop.remove_reader(conn.fileno())
            await w.stop()

    try:
        asyncio.run(main())
        conn.send(("stopped", worker, None))
    except Exception as exc:  # noqa: BLE001 - reported to the parent in one line
        try:
            conn.send(("error", worker, f"{type(exc).__name__}: {exc}"))
        except OSError:
            pass


def _bar(done: int, total: int, width: int = 30) -> str:
    filled = int(width * done / max(total, 1))
    return f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total}"


def cmd_fleet(args) -> int:
    import multiprocessing as mp

    from gbhub.wan.mqtt import parse_wan

    from .inputs import Failure, UsageError

    if args.premises < 1:
        raise UsageError("--premises must be 1 or more")
    if not 1 <= args.processes <= args.premises:
        raise UsageError("--processes must be 1 .. --premises")
    if not (0 <= args.first and args.first + args.premises <= 1 << 32):
        raise UsageError("--first must be 0 .. 2^32 - N")
    if not args.speed > 0:
        raise UsageError("--speed must be positive")
    for flag, value in (("--ihd-poll", args.ihd_poll), ("--ppmid-poll", args.ppmid_poll), ("--gsme-wake", args.gsme_wake)):
        if value is not None and not value > 0:
            raise UsageError(f"{flag} must be positive")
    options: dict[str, dict] = {}
    if args.ihd_poll:
        options["ihd"] = {"poll_interval": args.ihd_poll, "detail_interval": 10 * args.ihd_poll,
                          "events_interval": 10 * args.ihd_poll, "gas_interval": max(1800.0, 10 * args.ihd_poll)}
    if args.ppmid_poll:
        options["ppmid"] = {"poll_interval": args.ppmid_poll}
    if args.gsme_wake:
        options["gsme"] = {"wake_interval": args.gsme_wake}
    if args.profile != "derived":
        for t in PROFILE_DEVICES:
            options.setdefault(t, {})["profile_storage"] = args.profile
    wan = "tcp://127.0.0.1:0" if args.wan == "tcp" else args.wan
    try:
        address = parse_wan(wan) if wan else None
    except ValueError as exc:
        raise UsageError(f"--wan: {exc}") from None
    data = Path(args.data).resolve()
    data.mkdir(parents=True, exist_ok=True)
    keys = Path(args.keys).resolve() if args.keys else data / "keys"
    identity = fleet_identity(keys, args.seed)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    n, p = args.premises, args.processes
    bounds = [args.first + (n * i) // p for i in range(p + 1)]
    ctx = mp.get_context("fork")
    workers = []
    for i in range(p):
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_worker_main, daemon=True, name=f"gbhub-fleet-{i}",
                           args=(child, args.seed, range(bounds[i], bounds[i + 1]), str(keys), wan, str(data), args.speed, i,
                                 options or None, args.nvm_sync, args.commission))
        proc.start()
        child.close()
        workers.append((proc, parent))
    t0 = time.monotonic()
    done = [0] * p
    ready: dict[int, dict] = {}
    stats: dict[int, dict] = {}
    stop = False

    def on_signal(*_):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    from multiprocessing.connection import wait as mp_wait

    failed = None
    prev = (time.monotonic(), 0)
    next_summary = time.monotonic() + args.summary_every
    deadline = None
    tty = sys.stderr.isatty()
    try:
        while not stop:
            for conn in mp_wait([c for _, c in workers], timeout=0.5):
                try:
                    kind, w, payload = conn.recv()
                except (EOFError, OSError):
                    failed = failed or "a worker process ended unexpectedly"
                    stop = True
                    break
                if kind == "progress":
                    done[w] = payload
                    line = f"gbhub fleet: starting {_bar(sum(done), n)}"
                    print(("\r" + line) if tty else line, end="" if tty else "\n", file=sys.stderr, flush=True)
                elif kind == "ready":
                    ready[w] = payload
                    if len(ready) == p:
                        if tty:
                            print(file=sys.stderr)
                        m = manifest(args.seed, args.first, n, wan=wan, identity=identity, keys=[str(keys)], processes=p)
                        if args.gsme_wake:
                            m["gsme_wake_s"] = args.gsme_wake  # the load generator's gas deadline
                        if not address.mqtt:
                            host = address.host
                            m["wan"] = {"tcp": [{"host": host, "port": ready[i]["port"], "first": bounds[i],
                                                 "premises": bounds[i + 1] - bounds[i]} for i in range(p)]}
                            m["wan"].update(host=host, port=ready[0]["port"])
                        tmp = data / "premises.json.tmp"
                        tmp.write_text(json.dumps(m) + "\n")
                        os.replace(tmp, data / "premises.json")
                        errors = sum(r["errors"] for r in ready.values())
                        where = address if address.mqtt else "TCP " + ", ".join(f"{address.host}:{ready[i]['port']}" for i in range(p))
                        print(f"gbhub fleet: {n - errors} premises up in {time.monotonic() - t0:.1f} s over {p} process(es), "
                              f"WAN {where}; manifest {data / 'premises.json'}", flush=True)
                        if args.duration:
                            deadline = time.monotonic() + args.duration
                elif kind == "stats":
                    stats[w] = payload
                elif kind == "error":
                    failed = f"worker {w}: {payload}"
                    stop = True
            now = time.monotonic()
            if len(ready) == p and stats and now >= next_summary:
                total = {k: sum(s.get(k, 0) for s in stats.values()) for k in ("up", "received", "published", "alerts", "errors")}
                msgs = total["received"] + total["published"]
                rate = (msgs - prev[1]) / max(now - prev[0], 1e-9)
                prev = (now, msgs)
                offline = sum(1 for s in stats.values() if not s.get("connected", True))
                print(f"gbhub fleet: premises up {total['up']}, messages/s {rate:.0f}, alerts {total['alerts']}, "
                      f"errors {total['errors']}" + (f", {offline} worker(s) waiting for the broker" if offline else ""),
                      flush=True)
                next_summary = now + args.summary_every
            if deadline is not None and now >= deadline:
                break
            if any(not proc.is_alive() for proc, _ in workers) and not stop:
                failed = failed or "a worker process ended unexpectedly"
                break
    finally:
        print("gbhub fleet: stopping", file=sys.stderr, flush=True)
        for _, conn in workers:
            try:
                conn.send("stop")
            except OSError:
                pass
        for proc, _ in workers:
            proc.join(30)
            if proc.is_alive():
                proc.terminate()
        mpath = data / "premises.json"
        if mpath.is_file():
            try:
                m = json.loads(mpath.read_text())
                m["state"] = "stopped"
                mpath.write_text(json.dumps(m) + "\n")
            except (OSError, ValueError):
                pass
    if failed:
        raise Failure(failed)
    return 0
