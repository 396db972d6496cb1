"""`gbhub bench fleet|mqtt`: how many premises one process carries, and verified reads per second
over a real broker.

Method (fleet): in a fresh interpreter (so RSS is the fleet's, not a previous benchmark's), one
`FleetWorker` of `--premises` dual-fuel premises (default 10,000; short form 200; derived
commissioning, fleet poll defaults: `tools/fleet.py`) on in-process WAN ports, real clock:
`start_s` wall seconds from the first premises built to the last started, `start_cpu_s` the
process CPU seconds of it (the machine is shared: CPU is the figure load does not inflate);
`rss_mb` (/proc/self/status VmRSS) after a full garbage collection; memory per premises and per
device = (RSS - RSS before the first premises) / premises (or devices); `idle_cpu_pct`: process
CPU time over `--seconds` (default 60, short form 10) of wall time with nothing sent (timers
only). `traced_kb_per_premises`: 100 more premises started under tracemalloc, each allocation
attributed to the device type whose module holds its innermost device frame (`premises`: links,
bridges, composition), kB per premises. Then `day_1k_s`: a second fleet of 1,000 premises (short
form 100, figure scaled by 1000/N and marked `day_premises`) on a simulated clock moved forward one
day (half-hourly profile capture, daily snapshots, GSME wakes, every device's timers), wall
seconds (`day_1k_cpu_s`: process CPU seconds; `day_nvm_kb_per_premises`: what the worker's NVM
holds per premises after the day, keys, values and log entries as stored; `..._growth_...`: what the
day added). That fleet keeps its NVM in memory (the model's cost); `day_file_1k_s` (and
`_cpu_s`): 100 more premises (short form: as many as the day's) through the same day on a
worker NVM file as `gbhub fleet` keeps one (group commit), scaled to 1,000, and
`day_nvm_writes_per_premises` the SQL statements that day wrote per premises. [I] Its premises
have no IHD or PPMID: their polling is the displays' work, not metering's (the idle figure above
includes it, in real time). RSS does not depend on the load: the figures are measured on an idle
fleet, on a machine shared with whatever else runs.

Method (mqtt): a local Mosquitto (tools/mosquitto.py, persistence on), `gbhub fleet --processes
2` of `--premises` (default 200; short form 100) on it, and the load generator (tools/load.py,
same machine, one process) sending ECS17b reads at 3,150/s for 60 s (short form 10 s; 5% above
the 3,000/s goal, since the answered rate can only approach what is offered): figures
`reads_per_s` (answered and verified per second), `p99_ms`, `lost`, `duplicated` (and the rest of
the load generator's report), and what the machine's load does not inflate as much: `cpu_s`
(user + system CPU seconds over the load run of the fleet processes, the broker and the load
generator, from /proc/PID/stat), `cpu_us_per_read` (their sum per answered read), `load_avg`
(one-minute load average when the run started). Skipped (said so) when mosquitto is not installed.
"""
from __future__ import annotations

import asyncio
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .bench import _rss_mb, benchmark


def _nvm_bytes(nvm) -> int:
    """What a store holds (keys, values and log entries as stored, JSON text or bytes)."""
    store = nvm._store
    total = sum(len(ns) + len(k) + (len(v) if isinstance(v, (str, bytes)) else len(repr(v)))
                for ns, d in store.kv.items() for k, v in d.items())
    return total + sum(len(name) + len(e) for name, lg in store.logs.items() for e in lg.entries)


def _fleet_child(n: int, day_n: int, idle_s: float, queue) -> None:
    try:
        queue.put(asyncio.run(_fleet_figures(n, day_n, idle_s, queue.put)))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        queue.put({"failed": f"{type(exc).__name__}: {exc}"})


# Which device a traced allocation belongs to: the innermost frame in a device's own module.
_DEVICE_MODULES = (("hub/chf", "chf"), ("hub/gpf", "gpf"), ("meter/esme", "esme"), ("meter/gsme", "gsme"),
                   ("meter/ihd", "ihd"), ("meter/ppmid", "ppmid"))


def _owner(traceback) -> str:
    for frame in traceback:  # innermost first
        name = frame.filename.replace("\\", "/")
        for module, device in _DEVICE_MODULES:
            if f"/{module}" in name:
                return device
    return "premises"  # bridges, HAN links, head-end, composition


async def _memory_by_device(identity, first: int, n: int) -> dict[str, float]:
    """kB per premises of the Python objects each device type's code allocated (tracemalloc, 40
    frames) while `n` more premises started and settled: measured, attributed by the innermost
    frame in a device module (`premises`: everything else)."""
    import tracemalloc

    from .fleet import FleetWorker

    gc.collect()
    tracemalloc.start(40)
    w = FleetWorker(1, range(first, first + n), identity)
    await w.start()
    await asyncio.sleep(1.0)
    gc.collect()
    snapshot = tracemalloc.take_snapshot()
    tracemalloc.stop()
    out: dict[str, float] = {}
    for stat in snapshot.statistics("traceback"):
        owner = _owner(stat.traceback)
        out[owner] = out.get(owner, 0.0) + stat.size
    await w.stop()
    return {k: round(v / 1024 / n, 1) for k, v in sorted(out.items(), key=lambda kv: -kv[1])}


async def _fleet_figures(n: int, day_n: int, idle_s: float, queue_put) -> dict:
    from .fleet import FleetWorker, fleet_identity

    keys = Path(tempfile.mkdtemp(prefix="gbhub-bench-fleet-")) / "keys"
    identity = fleet_identity(keys, 1)
    gc.collect()
    rss0 = _rss_mb()
    w = FleetWorker(1, range(n), identity)
    t0, cpu0 = time.perf_counter(), time.process_time()
    await w.start()
    start_s, start_cpu = time.perf_counter() - t0, time.process_time() - cpu0
    gc.collect()
    rss = _rss_mb()
    devices = sum(len(p.devices) for p in w.premises)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.sleep(idle_s)
    idle = 100.0 * (time.process_time() - cpu0) / (time.perf_counter() - wall0)
    await w.stop()
    out = {"premises": n, "devices": devices, "start_s": round(start_s, 1), "start_cpu_s": round(start_cpu, 1),
           "start_cpu_ms_per_premises": round(1000 * start_cpu / max(n, 1), 2), "rss_mb": round(rss, 1),
           "rss_per_premises_kb": round((rss - rss0) * 1024 / max(n, 1), 1),
           "rss_per_device_kb": round((rss - rss0) * 1024 / max(devices, 1), 1),
           "idle_cpu_pct": round(idle, 1), "idle_s": idle_s, "errors": w.errors}
    del w
    gc.collect()
    gc.unfreeze()
    queue_put(dict(out))  # the first part, should the rest not finish
    out["traced_kb_per_premises"] = await _memory_by_device(identity, n, min(n, 100))
    gc.unfreeze()
    queue_put(dict(out))
    first = n + 100
    day = await _day(identity, range(first, first + day_n), None)
    out["day_start_s"] = round(day["start_s"], 1)
    out["day_1k_s"] = round(day["day_s"] * 1000 / day_n, 1)
    out["day_1k_cpu_s"] = round(day["cpu_s"] * 1000 / day_n, 1)
    out["day_nvm_kb_per_premises"] = round(day["nvm_after"] / 1024 / day_n, 2)
    out["day_nvm_growth_kb_per_premises"] = round((day["nvm_after"] - day["nvm_before"]) / 1024 / day_n, 2)
    file_n = min(day_n, 100)
    with tempfile.TemporaryDirectory(prefix="gbhub-bench-day-") as folder:
        first += day_n
        on_file = await _day(identity, range(first, first + file_n), Path(folder) / "worker-1.sqlite")
    out["day_file_1k_s"] = round(on_file["day_s"] * 1000 / file_n, 1)
    out["day_file_1k_cpu_s"] = round(on_file["cpu_s"] * 1000 / file_n, 1)
    out["day_nvm_writes_per_premises"] = round(on_file["writes"] / file_n, 1)
    out["day_premises"] = day_n
    out["day_errors"] = day["errors"] + on_file["errors"]
    return out


async def _day(identity, indices: range, nvm_path: Path | None) -> dict:
    """A fleet of `indices` on a simulated clock moved forward one day (module doc): its start
    and day in wall seconds, the day's CPU seconds, NVM bytes before and after it, the SQL
    statements it wrote, errors."""
    from .fleet import FleetWorker

    day = FleetWorker(1, indices, identity, sim=True, without=("ihd", "ppmid"), nvm_path=nvm_path)
    t0 = time.perf_counter()
    await day.start()
    out = {"start_s": time.perf_counter() - t0, "nvm_before": _nvm_bytes(day.nvm)}
    t0, cpu0, writes0 = time.perf_counter(), time.process_time(), day.nvm.statements
    await day.clock.advance(86400)
    out.update(day_s=time.perf_counter() - t0, cpu_s=time.process_time() - cpu0,
               writes=day.nvm.statements - writes0, nvm_after=_nvm_bytes(day.nvm))
    await day.stop()
    out["errors"] = day.errors
    return out


@benchmark("fleet", "premises in one process: start, RSS, idle CPU, one simulated day")
def fleet(args, short: bool, progress) -> dict:
    import multiprocessing as mp

    n = args.premises or (200 if short else 10_000)
    day_n = 100 if short else 1000
    idle_s = args.seconds or (10.0 if short else 60.0)
    progress(f"fleet: {n} premises in one fresh process, idle for {idle_s:.0f} s; memory by device; "
             f"then a simulated day for {day_n}")
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    proc = ctx.Process(target=_fleet_child, args=(n, day_n, idle_s, q))
    proc.start()
    shown: set[str] = set()
    out: dict = {}
    for _part in range(3):  # start, memory, idle CPU; memory by device; the day
        out = q.get()
        for k, v in out.items():
            if k not in shown:
                progress(f"  {k:26} {v}")
                shown.add(k)
        if "failed" in out or "day_1k_s" in out:
            break
    proc.join()
    return out


@benchmark("mqtt", "verified reads per second across a fleet over a local Mosquitto")
def mqtt(args, short: bool, progress) -> dict:
    from .mosquitto import Mosquitto, mosquitto_binary

    if mosquitto_binary() is None:
        return {"skipped": "mosquitto not installed (apt-get install mosquitto)"}
    n = args.premises or 100 if short else args.premises or 200
    seconds = args.seconds or (10.0 if short else 60.0)
    rate = 3150.0  # 5% above the goal (>= 3,000/s): the answered rate only approaches the offered one
    with tempfile.TemporaryDirectory(prefix="gbhub-bench-mqtt-") as tmp, Mosquitto(Path(tmp) / "broker") as broker:
        data = Path(tmp) / "fleet"
        progress(f"mqtt: {n} premises over 2 worker processes on {broker.url}; ECS17b at {rate:.0f}/s for {seconds:.0f} s")
        fleet_proc = subprocess.Popen([sys.executable, "-P", "-m", "gbhub.tools.cli", "fleet", "--premises", str(n),
                                       "--processes", "2", "--wan", broker.url, "--data", str(data), "--summary-every", "3600"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 600
            while not (data / "premises.json").is_file():
                if fleet_proc.poll() is not None or time.monotonic() > deadline:
                    return {"failed": "the fleet did not start"}
                time.sleep(0.5)
            pids = {"fleet": [fleet_proc.pid, *_children(fleet_proc.pid)], "broker": [broker.proc.pid],
                    "load": [os.getpid()]}
            cpu0 = {k: _cpu_s(v) for k, v in pids.items()}
            load_avg = os.getloadavg()[0]
            out = asyncio.run(_mqtt_load(data, broker.url, rate, seconds))
            cpu = {k: round(_cpu_s(v) - cpu0[k], 2) for k, v in pids.items()}
        finally:
            fleet_proc.terminate()
            try:
                fleet_proc.wait(60)
            except subprocess.TimeoutExpired:
                fleet_proc.kill()
    answered = max(out["answered"], 1)
    out = {"reads_per_s": out.pop("per_s"), **out, "premises": n, "processes": 2,
           "cpu_us_per_read": round(sum(cpu.values()) * 1e6 / answered), "cpu_s": cpu,
           "load_avg": round(load_avg, 2), "load_avg_after": round(os.getloadavg()[0], 2)}
    for k in ("reads_per_s", "p50_ms", "p99_ms", "lost", "duplicated", "errors", "cpu_us_per_read", "cpu_s", "load_avg"):
        progress(f"  {k:12} {out.get(k)}")
    return out


def _children(pid: int) -> list[int]:
    """`pid`'s child processes (a fleet's workers)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(c) for c in f.read().split()]
    except OSError:
        return []


def _cpu_s(pids: list[int]) -> float:
    """User + system CPU seconds of `pids` so far (/proc/PID/stat; 0 for one that is gone)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


async def _mqtt_load(data: Path, url: str, rate: float, seconds: float) -> dict:
    from gbhub.wan.counters import HeadEndCounters
    from gbhub.wan.mqtt import parse_wan

    from .load import fleet_headend, read_manifests, run_load, targets_for

    m = read_manifests([str(data)])
    he, dup = await fleet_headend(m, parse_wan(url), counters=HeadEndCounters(data / "counters.json"),
                                  identifier=f"gbhub-bench-{os.getpid()}")
    try:
        targets, mix, _ = targets_for({"ECS17b": 1.0}, m["types"], m["devices"])
        return await run_load(he, targets, mix, rate=rate, duration=seconds, timeout=30.0, duplicates=dup)
    finally:
        await he.close()
