"""`gbhub bench e2e`: commands per second through a whole premises, one process.

Each command is built by the head-end (counter, content, supplier signature if critical, ACB MAC),
crosses the WAN bridge, is routed by the CHF through the GB-HGRP tunnel on the virtual HAN to the
ESME, which checks MAC, signature, role and counter, executes, and answers (MAC or signature,
encrypted parts for ECS17b); the head-end matches, verifies and interprets (decrypting) the
response. `window` commands are kept in flight. Figures: completed commands / elapsed seconds.
"""
from __future__ import annotations

import asyncio
import gc
import time


async def _measure(p, use_cases: list[str], seconds: float, window: int) -> tuple[float, int]:
    done = 0
    stop_at = time.perf_counter() + seconds
    failures = 0
    i = 0

    async def worker():
        nonlocal done, failures, i
        while time.perf_counter() < stop_at:
            uc = use_cases[i % len(use_cases)]
            i += 1
            r = await p.send(uc, "esme")
            if not r.ok:
                failures += 1
            done += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(window)))
    elapsed = time.perf_counter() - t0
    if failures:
        raise RuntimeError(f"{failures} commands failed verification or execution")
    return done / elapsed, done


async def _bench(seconds: float, window: int, progress) -> dict:
    from gbhub.tools.premises import Premises
    from gbhub.tools.rig import default_rig

    out: dict = {"seconds_per_figure": seconds, "window": window}
    for tcp in (False, True):
        rig = default_rig(None, ihd=False)
        rig.clock = "sim"
        p = Premises(rig, tcp=tcp, sim=True)
        await p.start()
        try:
            await _measure(p, ["ECS17b"], 0.3, window)  # warm caches (ECDH secrets, imports)
            gc.collect()
            reads, n = await _measure(p, ["ECS17b"], seconds, window)
            key = "tcp_reads_per_s" if tcp else "reads_per_s"
            out[key] = round(reads, 1)
            progress(f"  {'TCP' if tcp else 'in-process'} ECS17b reads: {reads:8.0f}/s ({n} in {seconds:.0f} s)")
            if not tcp:
                crit, n = await _measure(p, ["ECS43", "ECS42"], seconds, window)
                out["critical_per_s"] = round(crit, 1)
                progress(f"  in-process ECS42/ECS43 critical: {crit:8.0f}/s ({n} in {seconds:.0f} s)")
            else:
                crit, n = await _measure(p, ["ECS43", "ECS42"], seconds, window)
                out["tcp_critical_per_s"] = round(crit, 1)
                progress(f"  TCP ECS42/ECS43 critical: {crit:8.0f}/s ({n} in {seconds:.0f} s)")
        finally:
            await p.stop()
    return out


def run(seconds: float | None = None, window: int = 32, progress=print) -> dict:
    seconds = 5.0 if seconds is None else seconds
    progress(f"e2e: one premises, {window} commands in flight, {seconds:.0f} s per figure")
    return asyncio.run(_bench(seconds, window, progress))
