"""`gbhub bench codec|e2e`: the figures the README's Performance section quotes.

Method (codec): every RTDS vector is taken in turn; for each, the operation is repeated enough
times to last ~2 ms and the per-call time recorded; the figure is the median over messages.
GC is disabled while timing. Secrets are warmed first (the device case: KA keys are static).

Method (e2e): commands per second through a whole premises, one process. Each command is built
by the head-end (counter, content, supplier signature if critical, ACB MAC), crosses the WAN
bridge, is routed by the CHF through the GB-HGRP tunnel on the virtual HAN to the ESME, which
checks MAC, signature, role and counter, executes, and answers (MAC or signature, encrypted parts
for ECS17b); the head-end matches, verifies and interprets (decrypting) the response. `window`
commands are kept in flight. Figures: completed commands / elapsed seconds.
"""
from __future__ import annotations

import asyncio
import gc
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

from .inputs import UsageError, default_vectors


def vectors_path(arg: str | None) -> Path:
    return Path(arg) if arg else default_vectors()


def _per_call_us(fn, arg, budget_ns: int = 2_000_000) -> float:
    n = 1
    while True:
        t0 = time.perf_counter_ns()
        for _ in range(n):
            fn(arg)
        dt = time.perf_counter_ns() - t0
        if dt >= budget_ns or n >= 1 << 16:
            return dt / n / 1000.0
        n *= 4 if dt < budget_ns // 8 else 2


def _median(fn, items) -> float:
    gc.disable()
    try:
        return statistics.median(_per_call_us(fn, x) for x in items)
    finally:
        gc.enable()


def codec(vectors: Path, progress=print) -> dict:
    from gbcs.analyse import analyse, mac_parties, _secret
    from gbcs.frame import decode_message
    from gbcs.payload import decode_payload
    from gbcs.security import SecretCache, check_mac, check_signature
    from gbhub.tools.keys import load_keystore

    rows = [json.loads(l) for l in (vectors / "rtds" / "expected.jsonl").read_text().splitlines()]
    frames = [bytes.fromhex((vectors / "rtds" / r["file"]).read_text().strip()) for r in rows]
    keystore = load_keystore(vectors / "keys" / "rtds", vectors / "keys" / "device-test")
    acb = bytes.fromhex(rows[0].get("acb", "90B3D51F30000002"))
    secrets = SecretCache()
    progress(f"codec: {len(frames)} RTDS messages")

    decoded = [decode_message(f) for f in frames]
    out: dict = {"messages": len(frames)}
    out["decode_us"] = _median(decode_message, frames)
    progress(f"  decode            {out['decode_us']:7.2f} us")
    import dataclasses

    fresh = [dataclasses.replace(m) for m in decoded]  # no cached APDU: a real encode
    out["encode_us"] = _median(lambda m: m.encode(), fresh)
    progress(f"  encode            {out['encode_us']:7.2f} us")

    def decode_with_payload(f):
        decode_payload(decode_message(f))

    out["decode_payload_us"] = _median(decode_with_payload, frames)
    progress(f"  decode+payload    {out['decode_payload_us']:7.2f} us")

    mac_frames = []
    for f, m in zip(frames, decoded):
        if m.mac is None:
            continue
        parties = mac_parties(m, keystore, acb)
        if parties and _secret(keystore, *parties, secrets) is not None:
            mac_frames.append(f)

    def decode_mac(f):
        m = decode_message(f)
        a, b = mac_parties(m, keystore, acb)
        if not check_mac(_secret(keystore, a, b, secrets), m):
            raise AssertionError("MAC invalid")

    out["decode_mac_us"] = _median(decode_mac, mac_frames)
    out["mac_messages"] = len(mac_frames)
    progress(f"  decode+MAC        {out['decode_mac_us']:7.2f} us  ({len(mac_frames)} MACed messages, warm secret cache)")

    sig_frames = [f for f, m in zip(frames, decoded) if m.signature and keystore.public_key(m.originator, "ds")]

    def decode_sig(f):
        m = decode_message(f)
        if not check_signature(keystore.public_key(m.originator, "ds"), m):
            raise AssertionError("signature invalid")

    out["decode_sig_us"] = _median(decode_sig, sig_frames)
    out["sig_messages"] = len(sig_frames)
    progress(f"  decode+signature  {out['decode_sig_us']:7.2f} us  ({len(sig_frames)} signed messages)")

    # `gbhub decode --batch` per line: full analysis + JSON, as the CLI does it
    def batch_line(f):
        json.dumps(analyse(f, keystore, acb, secrets).to_json())

    out["batch_line_us"] = _median(batch_line, frames)
    progress(f"  decode --batch    {out['batch_line_us']:7.2f} us per line (analysis + payload + JSON)")
    return out


# --------------------------------------------------------------------------------------------
# e2e
# --------------------------------------------------------------------------------------------


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


def e2e(seconds: float | None = None, window: int = 32, progress=print) -> dict:
    seconds = 5.0 if seconds is None else seconds
    progress(f"e2e: one premises, {window} commands in flight, {seconds:.0f} s per figure")
    return asyncio.run(_bench(seconds, window, progress))


def environment() -> dict:
    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "date": time.strftime("%Y-%m-%d"),
    }


def register(sub) -> None:
    b = sub.add_parser("bench", help="benchmarks (codec, e2e)")
    b.add_argument("what", choices=["codec", "e2e"], help="which benchmark")
    b.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    b.add_argument("--vectors", metavar="DIR", help="RTDS vectors (default $GBHUB_VECTORS or ../shared/vectors)")
    b.add_argument("--seconds", type=float, default=None, help="time budget per figure (e2e)")
    b.set_defaults(func=run)


def run(args) -> int:
    if args.what == "codec":
        vectors = vectors_path(args.vectors)
        if not (vectors / "rtds" / "expected.jsonl").is_file():
            raise UsageError(f"RTDS vectors not found at {vectors} (use --vectors or GBHUB_VECTORS)")
        figures = codec(vectors, progress=lambda s: print(s, file=sys.stderr))
    else:
        figures = e2e(seconds=args.seconds, progress=lambda s: print(s, file=sys.stderr))
    figures["environment"] = environment()
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0
