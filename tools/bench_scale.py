"""`gbhub bench fleet|mqtt`: how many premises one process carries, and verified reads per second
over a real broker.

Method (fleet): in a fresh interpreter (so RSS is the fleet's, not a previous benchmark's), one
`FleetWorker` of `--premises` premises (default 10,000; short form 200) on in-process WAN ports,
real clock: `start_s` from the first premises built to the last commissioned; `rss_mb`
(/proc/self/status VmRSS) after a full garbage collection; memory per premises and per device
= (RSS - RSS before the first premises) / premises (or devices); `idle_cpu_pct`: process CPU
time over 10 s of wall time with nothing sent (timers only). Then `day_1k_s`: a second fleet of
1,000 premises (short form 100, figure scaled by 1000/N and marked `day_premises`) on a
simulated clock is moved forward one day (half-hourly profile capture, daily snapshots, every
device's timers), wall seconds. [I] Its premises have no IHD: an IHD reads its meter every 10 s
of device time, 8.6 million ZCL reads a day for 1,000 premises, the IHD's work, not metering's
(the idle figure above includes them, in real time). RSS does not depend on the load: the figures are measured on an
idle fleet, on a machine shared with whatever else runs.

Method (mqtt): a local Mosquitto (tools/mosquitto.py, persistence on), `gbhub fleet --processes
2` of `--premises` (default 200; short form 100) on it, and the load generator (tools/load.py,
same machine, one process) sending ECS17b reads at 3,000/s for 60 s (short form 10 s): figures
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


def _fleet_child(n: int, day_n: int, queue) -> None:
    try:
        queue.put(asyncio.run(_fleet_figures(n, day_n, queue.put)))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        queue.put({"failed": f"{type(exc).__name__}: {exc}"})


async def _fleet_figures(n: int, day_n: int, queue_put) -> dict:
    from .fleet import FleetWorker, fleet_identity

    keys = Path(tempfile.mkdtemp(prefix="gbhub-bench-fleet-")) / "keys"
    identity = fleet_identity(keys, 1)
    gc.collect()
    rss0 = _rss_mb()
    w = FleetWorker(1, range(n), identity)
    t0 = time.perf_counter()
    await w.start()
    start_s = time.perf_counter() - t0
    gc.collect()
    rss = _rss_mb()
    devices = sum(len(p.devices) for p in w.premises)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.sleep(10.0)
    idle = 100.0 * (time.process_time() - cpu0) / (time.perf_counter() - wall0)
    await w.stop()
    out = {"premises": n, "devices": devices, "start_s": round(start_s, 1), "rss_mb": round(rss, 1),
           "rss_per_premises_kb": round((rss - rss0) * 1024 / max(n, 1), 1),
           "rss_per_device_kb": round((rss - rss0) * 1024 / max(devices, 1), 1),
           "idle_cpu_pct": round(idle, 1), "errors": w.errors}
    del w
    gc.collect()
    queue_put(dict(out))  # the first part, should the day not finish
    day = FleetWorker(1, range(n, n + day_n), identity, sim=True, without=("ihd",))
    t0 = time.perf_counter()
    await day.start()
    out["day_start_s"] = round(time.perf_counter() - t0, 1)
    t0 = time.perf_counter()
    await day.clock.advance(86400)
    took = time.perf_counter() - t0
    await day.stop()
    out["day_1k_s"] = round(took * 1000 / day_n, 1)
    out["day_premises"] = day_n
    out["day_errors"] = day.errors
    return out


@benchmark("fleet", "premises in one process: start, RSS, idle CPU, one simulated day")
def fleet(args, short: bool, progress) -> dict:
    import multiprocessing as mp

    n = args.premises or (200 if short else 10_000)
    day_n = 100 if short else 1000
    progress(f"fleet: {n} premises in one fresh process; then a simulated day for {day_n}")
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    proc = ctx.Process(target=_fleet_child, args=(n, day_n, q))
    proc.start()
    out = q.get()  # start, memory, idle CPU
    if "failed" not in out:
        for k, v in out.items():
            progress(f"  {k:22} {v}")
        first = set(out)
        out = q.get()  # and the day
        for k, v in out.items():
            if k not in first:
                progress(f"  {k:22} {v}")
    proc.join()
    return out


@benchmark("mqtt", "verified reads per second across a fleet over a local Mosquitto")
def mqtt(args, short: bool, progress) -> dict:
    from .mosquitto import Mosquitto, mosquitto_binary

    if mosquitto_binary() is None:
        return {"skipped": "mosquitto not installed (apt-get install mosquitto)"}
    n = args.premises or 100 if short else args.premises or 200
    seconds = args.seconds or (10.0 if short else 60.0)
    rate = 3000.0
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
