"""`gbhub bench codec|e2e|soak|firmware|cbke|gas|fleet|mqtt|...|all`: the figures the README's Performance section quotes.

Benchmarks register themselves (`@benchmark(name)`, here or in a module tools/bench_*.py, which
`gbhub bench` imports); `all` runs the short form of each and keys its JSON by benchmark.

Method (codec): every RTDS vector is taken in turn; for each, the operation is repeated enough
times to last ~2 ms and the per-call time recorded; the figure is the median over messages.
GC is disabled while timing. Secrets are warmed first (the device case: KA keys are static).

Method (e2e): commands per second through a whole premises, one process. Each command is built
by the head-end (counter, content, supplier signature if critical, ACB MAC), crosses the WAN
bridge, is routed by the CHF through the GB-HGRP tunnel on the virtual HAN to the ESME, which
checks MAC, signature, role and counter, executes, and answers (MAC or signature, encrypted parts
for ECS17b); the head-end matches, verifies and interprets (decrypting) the response. `window`
commands are kept in flight. Figures: completed commands / elapsed seconds.

Method (soak): one premises on the TCP bridge, its NVM in SQLite in a temporary data folder (as
under `gbhub run`), several clients at once for `--seconds`: the
premises' head-end keeps 4 legitimate commands in flight (ECS17b reads and ECS42/ECS43 critical
commands in turn), while hostile raw TCP clients send garbage frames (20 bytes, bursts of 500
every 20 ms), spoofed headers (each repeating the header of a command about to be pending, by
guessing the head-end's next counters, with garbage after it; 200/s) and GBT fragments (first
blocks of 60 kB of messages that never complete; 50 blocks/s). Every client reads what comes up
(the head-end's alert list is emptied each second, as a consumer would). Figures: legitimate
commands answered (ok responses / sent), their p50/p99/max latency, RSS growth of the process
(/proc/self/status VmRSS after warm-up to the largest seen), frames rejected with alerts (the
CHF's and ESME's rejections), and what the bounds refused. Before the steady phase it checks
the two goals once: a read sent right after another connection wrote 30,000 garbage frames
(`burst_read_ms`), and RSS growth while one connection sends 32 messages x 300 GBT blocks of
60 kB that never complete (`gbt_32x300x60kB_growth_mb`); both count in `rss_growth_mb`.

Method (firmware): one premises (CHF, GPF, ESME, GSME) on the virtual HAN, simulated clock, NVM in
SQLite in a temporary data folder; a signed 200 KiB OTA image (48-byte blocks, 4,267 of them)
distributed by the CHF to the ESME over the OTA Upgrade cluster until the ESME has verified it.
`blocks_per_s`: blocks per host second with no HAN pace (ImageBlockRequest/Response through the
virtual air, NVM chunk writes, the final check). `awake_200k_min`: minutes until an awake ESME
holds the image at the default pace (0.02 s per block): simulated time of the paced transfer
plus the host time the blocks take (what `gbhub run` at real speed would show). `sleepy_200k_min`:
simulated minutes until the GSME, waking every `wake_interval` (1800 s, its default [S FACTS
§3.3]) and fetching `BLOCKS_PER_WAKE` blocks on each wake its notification flag shows an image
(its option `ota_blocks_per_wake`, default 200 [I]), has verified the image.
"""
from __future__ import annotations

import asyncio
import dataclasses
import gc
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

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
        rig = default_rig(None, ihd=False, ppmid=False)
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


# --------------------------------------------------------------------------------------------
# soak
# --------------------------------------------------------------------------------------------


def _rss_mb() -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


async def _soak(seconds: float, progress) -> dict:
    from gbcs.catalogue import MessageCode
    from gbcs.frame import CRA, GbtBlock, Message
    from gbhub.tools.premises import Premises
    from gbhub.tools.rig import default_rig
    from gbhub.wan.bridge import encode_frame
    from gbhub.wan.headend import HeadEndError

    import shutil
    import tempfile

    data = Path(tempfile.mkdtemp(prefix="gbhub-soak-"))  # SQLite NVM, as under `gbhub run`
    rig = default_rig(data, ihd=False, ppmid=False)
    rig.clock = "sim"
    p = Premises(rig, tcp=True, sim=True)
    try:
        await p.start()
    except BaseException:
        shutil.rmtree(data, ignore_errors=True)
        raise
    he, esme, chf = p.headend, p.esme, p.chf
    port = p.wan_port
    latencies: list[float] = []
    sent = answered = 0
    counts = {"garbage": 0, "spoofs": 0, "gbt_blocks": 0}
    stop = asyncio.Event()
    tasks: list[asyncio.Task] = []

    async def legit(slot: int) -> None:
        nonlocal sent, answered
        i = slot
        while not stop.is_set():
            uc = ("ECS17b", "ECS42", "ECS17b", "ECS43")[i % 4]
            i += 1
            sent += 1
            t0 = time.perf_counter()
            try:
                r = await p.send(uc, "esme")
            except HeadEndError as exc:
                progress(f"  legitimate {uc} failed: {type(exc).__name__}: {exc}")
                continue
            latencies.append(time.perf_counter() - t0)
            if r.ok:
                answered += 1
            else:
                progress(f"  legitimate {uc} not ok: {r.summary}")

    async def raw_client(body) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)

        async def drain_reads() -> None:
            while await reader.read(65536):
                pass

        reading = asyncio.ensure_future(drain_reads())
        try:
            await body(writer)
        finally:
            reading.cancel()
            writer.close()

    async def garbage(writer) -> None:
        while not stop.is_set():
            writer.write(b"".join(encode_frame(b"\xdf" + os.urandom(19)) for _ in range(500)))
            counts["garbage"] += 500
            await writer.drain()
            await asyncio.sleep(0.02)

    async def spoofer(writer) -> None:
        while not stop.is_set():
            last = he.last_counter() or 0
            for guess in (last + 1, last + 2):
                header = Message(CRA.COMMAND, guess, he.supplier, esme.eui, MessageCode.ECS17b, b"\x00" * 40, mac=b"\x00" * 12).encode()
                writer.write(encode_frame(header[:60] + os.urandom(20)))
                counts["spoofs"] += 1
            await writer.drain()
            await asyncio.sleep(0.01)

    async def fragments(writer) -> None:
        counter = 1
        while not stop.is_set():
            for number in range(1, 6):
                block = GbtBlock(CRA.COMMAND, counter, he.supplier, esme.eui, MessageCode.ECS17b, number, os.urandom(60_000))
                writer.write(encode_frame(block.encode()))
                counts["gbt_blocks"] += 1
            counter += 1
            await writer.drain()
            await asyncio.sleep(0.1)

    def rejected() -> int:
        return chf.rejected + esme.rejected + (p.gpf.rejected if p.gpf is not None else 0)

    try:
        # warm-up: caches, secrets, imports
        for uc in ("ECS17b", "ECS42", "ECS43"):
            await p.send(uc, "esme")
        gc.collect()
        rss_start = rss_max = _rss_mb()
        rejected_start = rejected()
        progress(f"soak: one premises (TCP), 4 legitimate commands in flight, 3 hostile clients, {seconds:.0f} s; "
                 f"RSS {rss_start:.0f} MB")
        burst_ms, gbt_growth = await _soak_goals(p, port)
        rss_max = max(rss_max, rss_start + gbt_growth)
        progress(f"  goals: a read under a 30,000-frame garbage burst took {burst_ms:.1f} ms; "
                 f"32 x 300 GBT blocks of 60 kB grew RSS by {gbt_growth:.1f} MB")
        t_start = time.perf_counter()
        tasks = [asyncio.ensure_future(legit(i)) for i in range(4)]
        tasks += [asyncio.ensure_future(raw_client(body)) for body in (garbage, spoofer, fragments)]
        next_report = t_start + 10
        while (now := time.perf_counter()) < t_start + seconds:
            await asyncio.sleep(min(1.0, t_start + seconds - now))
            he.received_alerts.clear()  # a consumer takes them away
            he.late_responses.clear()
            rss_max = max(rss_max, _rss_mb())
            if time.perf_counter() >= next_report:
                next_report += 10
                lat = sorted(latencies)
                p99 = lat[int(0.99 * (len(lat) - 1))] * 1000 if lat else float("nan")
                progress(f"  {time.perf_counter() - t_start:5.0f} s: {answered}/{sent} answered, p99 {p99:.1f} ms, "
                         f"RSS {_rss_mb():.0f} MB, {rejected() - rejected_start} rejected with alerts")
        stop.set()
        await asyncio.wait(tasks, timeout=10)
        elapsed = time.perf_counter() - t_start
        rss_end = _rss_mb()
        rss_max = max(rss_max, rss_end)
        lat = sorted(latencies)

        def pct(q: float) -> float:
            return round(lat[int(q * (len(lat) - 1))] * 1000, 2) if lat else float("nan")

        out = {
            "seconds": round(elapsed, 1),
            "clients": 4,
            "legitimate_sent": sent,
            "legitimate_answered": answered,
            "answered_pct": round(100.0 * answered / sent, 3) if sent else 0.0,
            "p50_ms": pct(0.50),
            "p99_ms": pct(0.99),
            "max_ms": round(lat[-1] * 1000, 2) if lat else float("nan"),
            "rss_start_mb": round(rss_start, 1),
            "rss_end_mb": round(rss_end, 1),
            "rss_growth_mb": round(rss_max - rss_start, 1),
            "burst_read_ms": round(burst_ms, 1),
            "gbt_32x300x60kB_growth_mb": round(gbt_growth, 1),
            "rejected_with_alerts": rejected() - rejected_start,
            "garbage_sent": counts["garbage"],
            "spoofs_sent": counts["spoofs"],
            "gbt_blocks_sent": counts["gbt_blocks"],
            "wan_inbox_dropped": chf.wan_inbox_dropped,
            "gbt_partials_dropped": chf._reassembler.overflows + chf._reassembler.expired,
            "bridge": dict(p.bridge.stats),
        }
        progress(f"soak: {answered}/{sent} legitimate commands answered ({out['answered_pct']}%), p99 {out['p99_ms']} ms, "
                 f"RSS growth {out['rss_growth_mb']} MB, {out['rejected_with_alerts']} frames rejected with alerts")
        return out
    finally:
        stop.set()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await p.stop()
        shutil.rmtree(data, ignore_errors=True)


async def _soak_goals(p, port: int) -> tuple[float, float]:
    """The issue's two goals, once: (ms for an ECS17b sent right after another connection wrote
    30,000 garbage frames of 20 bytes; RSS growth in MB while one connection sends 32 messages x
    300 GBT blocks of 60 kB that never complete)."""
    from gbcs.catalogue import MessageCode
    from gbcs.frame import CRA, GbtBlock
    from gbhub.wan.bridge import encode_frame

    async def hostile():
        reader, writer = await asyncio.open_connection("127.0.0.1", port)

        async def drain_reads() -> None:
            while await reader.read(65536):
                pass

        return writer, asyncio.ensure_future(drain_reads())

    writer, reading = await hostile()
    writer.write(b"".join(encode_frame(b"\xdf" + os.urandom(19)) for _ in range(30_000)))
    await asyncio.sleep(0)
    t0 = time.perf_counter()
    await p.send("ECS17b", "esme")
    burst_ms = (time.perf_counter() - t0) * 1000
    writer.close()
    reading.cancel()
    writer, reading = await hostile()
    rss0 = peak = _rss_mb()
    data = os.urandom(60_000)
    for counter in range(1, 33):
        for number in range(1, 301):
            block = GbtBlock(CRA.COMMAND, counter, p.headend.supplier, p.esme.eui, MessageCode.ECS17b, number, data)
            writer.write(encode_frame(block.encode()))
            if number % 20 == 0:
                await writer.drain()
        peak = max(peak, _rss_mb())
    await writer.drain()
    await asyncio.sleep(0.2)
    peak = max(peak, _rss_mb())
    writer.close()
    reading.cancel()
    return burst_ms, peak - rss0


def soak(seconds: float | None = None, progress=print) -> dict:
    return asyncio.run(_soak(60.0 if seconds is None else seconds, progress))


# --------------------------------------------------------------------------------------------
# firmware
# --------------------------------------------------------------------------------------------

BLOCKS_PER_WAKE = 200  # blocks a sleepy device fetches per wake [I]


def firmware(progress=print) -> dict:
    progress("firmware: a 200 KiB image from the CHF to the ESME over the virtual HAN")
    return asyncio.run(_firmware(progress))


async def _firmware(progress) -> dict:
    import shutil
    import tempfile

    from gbcs.ota import build_image
    from gbhub.han.ota import DEFAULT_BLOCK_PERIOD
    from gbhub.tools.premises import Premises
    from gbhub.tools.rig import default_rig

    data = Path(tempfile.mkdtemp(prefix="gbhub-fw-"))
    rig = default_rig(data, ihd=False)
    rig.clock = "sim"
    p = Premises(rig, tcp=False, sim=True)
    try:
        await p.start()
        chf, esme, clock = p.chf, p.esme, p.clock
        key = p.identity.keystore.private_key(p.identity.supplier, "ds")
        out: dict = {}

        async def transfer(version: int, pace: float) -> tuple[float, float, int]:
            image = build_image(os.urandom(200 * 1024 - 122), manufacturer_code=1, image_type=1, version=version, sign_key=key)
            done = asyncio.get_running_loop().create_future()
            listener = lambda e: e["event"] in ("transferred", "failed") and not done.done() and done.set_result(e)  # noqa: E731
            chf.ota_listeners.append(listener)
            chf.ota_server.block_period = pace
            served = chf.ota_server.blocks_served
            t_sim, t_host = clock.now(), time.perf_counter()
            chf.distribute_firmware(image.encode(), [esme.eui])
            while not done.done():
                await clock.advance(1.0)
            chf.ota_listeners.remove(listener)
            assert done.result().get("verified"), done.result()
            return clock.now() - t_sim, time.perf_counter() - t_host, chf.ota_server.blocks_served - served

        _, host, blocks = await transfer(0x00020000, 0.0)
        out["blocks_per_s"] = round(blocks / host)
        progress(f"firmware: {blocks} blocks in {host:.1f} s: {out['blocks_per_s']} blocks/s")
        sim, _, _ = await transfer(0x00020001, DEFAULT_BLOCK_PERIOD)
        out["awake_200k_min"] = round((sim + blocks / out["blocks_per_s"]) / 60, 2)
        progress(f"firmware: awake ESME at {DEFAULT_BLOCK_PERIOD} s per block: {out['awake_200k_min']} min")
        # the sleepy GSME: ignores ImageNotify, fetches BLOCKS_PER_WAKE blocks on each of its wakes
        gsme = p.devices_by_name["gsme"]
        gsme.ota_blocks_per_wake = BLOCKS_PER_WAKE
        wake_interval = gsme.wake_interval
        image = build_image(os.urandom(200 * 1024 - 122), manufacturer_code=1, image_type=1, version=0x00020002,
                            sign_key=key)
        chf.ota_server.block_period = DEFAULT_BLOCK_PERIOD
        done = asyncio.get_running_loop().create_future()
        listener = lambda e: e["event"] in ("transferred", "failed") and not done.done() and done.set_result(e)  # noqa: E731
        chf.ota_listeners.append(listener)
        wakes_before = gsme.wakes
        t0 = clock.now()
        chf.distribute_firmware(image.encode(), [gsme.eui])
        while not done.done() and clock.now() - t0 < 7 * 86400:
            await clock.advance(60.0)
        chf.ota_listeners.remove(listener)
        result = "verified" if done.done() and done.result().get("verified") else "not verified"
        wakes = gsme.wakes - wakes_before
        out["sleepy_200k_min"] = round((clock.now() - t0) / 60, 1)
        out["sleepy_wakes"] = wakes
        out["sleepy_result"] = result
        progress(f"firmware: sleepy GSME, {wakes} wakes every {wake_interval:.0f} s: {out['sleepy_200k_min']} min")
        out["method"] = {"image_bytes": 200 * 1024, "block_bytes": chf.ota_block_size,
                         "block_period_s": DEFAULT_BLOCK_PERIOD, "wake_interval_s": wake_interval,
                         "blocks_per_wake": BLOCKS_PER_WAKE}
        return out
    finally:
        await p.stop()
        shutil.rmtree(data, ignore_errors=True)


def cbke(runs: int = 5, progress=print) -> dict:
    """One CBKE (crypto suite 2, sect283k1) between two parties holding test-CA certificates:
    both ends' work, from Initiate Key Establishment to the confirmed key (median of `runs`)."""
    from gbcs.cbke import Initiator, Responder, TestCa

    ca = TestCa()
    u, v = ca.issue(bytes.fromhex("02474248400000A6")), ca.issue(bytes.fromhex("02474248400000A2"))
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        i, r = Initiator(u), Responder(v)
        answer = r.on_ephemeral(i.on_initiate_response(r.on_initiate(i.initiate())))
        i.on_confirm_response(r.on_confirm(i.on_ephemeral_response(answer)))
        times.append(time.perf_counter() - start)
        assert i.key == r.key
    times.sort()
    figure = round(times[len(times) // 2], 3)
    progress(f"cbke: {figure} s per key establishment (median of {runs}; goal < 2 s)")
    return {"cbke_s": figure, "runs": runs, "suite": 2, "curve": "sect283k1"}


# ---------------------------------------------------------------------------------------------
# gas: 13 simulated months of one dual-fuel premises
# ---------------------------------------------------------------------------------------------
THIRTEEN_MONTHS_DAYS = 395


async def _gas(days: int, progress) -> dict:
    import datetime as dt

    from gbhub.tools.premises import Premises
    from gbhub.tools.rig import default_rig

    # CHF, GPF, ESME, GSME; NVM in memory, in-process bridge. No IHD or PPMID [I]: their polls
    # (every 10 s by default: ~3.4 M over 13 months, ~90% of the run with a PPMID) are the
    # displays' work, not the gas metering this measures (as `bench fleet`'s day leaves them out)
    rig = default_rig(None, ihd=False, ppmid=False)
    rig.clock = "sim"
    p = Premises(rig, tcp=False, sim=True)
    await p.start()
    try:
        gsme, gpf = p.gsme, p.gpf
        gc.collect()
        start = time.perf_counter()
        cpu = time.process_time()
        for day in range(days):
            await p.clock.advance(86400)
            if day % 30 == 29:
                progress(f"gas: day {day + 1} of {days}, {time.perf_counter() - start:.1f} s, {gsme.wakes} wakes")
        elapsed = time.perf_counter() - start
        cpu = time.process_time() - cpu
        # the slices the head-end gets from the GPF after the run: yesterday's half-hours, the daily reads
        now = p.clock.now()
        y0 = now - now % 86400 - 86400
        yesterday = dt.datetime.fromtimestamp(y0, dt.timezone.utc)
        profile = await p.send("GCS17", to="gpf", start=yesterday, samples=48)
        daily = await p.send("GCS16a", to="gpf")
        want = gsme.data.intervals(int(y0), 48)
        snaps = [s["volume_l"] for s in daily.summary.get("snapshots", [])]
        want_daily = [e["volume_l"] for e in reversed(gsme.data.daily())][:len(snaps)]
        slices_ok = profile.summary.get("volumes") == want and bool(snaps) and snaps == want_daily
        return {"days": days, "seconds": round(elapsed, 2), "cpu_s": round(cpu, 2), "wakes": gsme.wakes,
                "gpf_syncs": gpf.syncs, "slices_ok": slices_ok,
                **({"thirteen_months_s": round(elapsed, 2)} if days == THIRTEEN_MONTHS_DAYS else {})}
    finally:
        await p.stop()


def gas(days: int | None = None, progress=print) -> dict:
    days = THIRTEEN_MONTHS_DAYS if days is None else int(days)
    progress(f"gas: one dual-fuel premises (CHF, GPF, ESME, GSME), {days} simulated days, half-hourly data, a GSME wake "
             "every 30 minutes")
    out = asyncio.run(_gas(days, progress))
    if not out["slices_ok"]:
        raise RuntimeError("GCS17 / GCS16a from the GPF did not return the GSME's slices")
    return out


def environment() -> dict:
    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "date": time.strftime("%Y-%m-%d"),
    }


# --------------------------------------------------------------------------------------------
# The registry: `gbhub bench NAME` and `gbhub bench all`
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Benchmark:
    """A registered benchmark: `run(args, short, progress) -> figures` (a JSON-able dict);
    `short` asks for the short form `gbhub bench all` runs; `needs` says what it needs to run
    (shown when it is skipped)."""

    name: str
    run: Any
    help: str = ""


BENCHMARKS: dict[str, Benchmark] = {}


def benchmark(name: str, help: str = ""):
    """Register a benchmark (decorator). A module `gbhub/tools/bench_*.py` is imported by
    `gbhub bench`, so a benchmark added there plugs in by registering itself."""

    def deco(fn):
        BENCHMARKS[name] = Benchmark(name, fn, help)
        return fn

    return deco


# Benchmarks of other issues written as plain functions of this module, `name(progress=...)`
# (with `days=` for gas: its short form simulates `_SHORT_DAYS`), are registered by name when
# present, so `gbhub bench NAME` and `all` run them without a decorator.
_PLAIN = {"firmware": "firmware images: build, verify, activate", "cbke": "CBKE key establishment",
          "gas": "the gas meter and the GPF over simulated months"}
_SHORT_DAYS = 31


def _register_plain() -> None:
    import inspect

    for name, help_text in _PLAIN.items():
        fn = globals().get(name)
        if not callable(fn) or name in BENCHMARKS:
            continue
        takes_days = "days" in inspect.signature(fn).parameters

        def run_plain(args, short: bool, progress, fn=fn, takes_days=takes_days) -> dict:
            if takes_days:
                days = getattr(args, "days", None)
                if days is not None and days < 1:
                    raise UsageError("--days must be at least 1")
                return fn(days=days if days is not None else (_SHORT_DAYS if short else None), progress=progress)
            return fn(progress=progress)

        BENCHMARKS[name] = Benchmark(name, run_plain, help_text)


def load_benchmarks() -> dict[str, Benchmark]:
    """Every registered benchmark: this module's and those of the tools/bench_*.py modules."""
    import importlib
    import pkgutil

    import gbhub.tools as tools_pkg

    _register_plain()
    for info in pkgutil.iter_modules(tools_pkg.__path__):
        if info.name.startswith("bench_"):
            importlib.import_module(f"gbhub.tools.{info.name}")
    return BENCHMARKS


@benchmark("codec", "decode / encode / MAC / signature / batch line, per RTDS message")
def _codec(args, short: bool, progress) -> dict:
    vectors = vectors_path(getattr(args, "vectors", None))
    if not (vectors / "rtds" / "expected.jsonl").is_file():
        if short:
            return {"skipped": f"RTDS vectors not found at {vectors}"}
        raise UsageError(f"RTDS vectors not found at {vectors} (use --vectors or GBHUB_VECTORS)")
    return codec(vectors, progress=progress)


@benchmark("e2e", "commands per second through one premises, in process and over TCP")
def _e2e(args, short: bool, progress) -> dict:
    return e2e(seconds=args.seconds if args.seconds is not None else (2.0 if short else None), progress=progress)


@benchmark("soak", "hostile clients against one premises on the TCP bridge")
def _soak_bench(args, short: bool, progress) -> dict:
    return soak(seconds=args.seconds if args.seconds is not None else (20.0 if short else None), progress=progress)


def register(sub) -> None:
    names = list(load_benchmarks())
    b = sub.add_parser("bench", help=f"benchmarks ({', '.join(names)}, all)")
    b.add_argument("what", choices=[*names, "all"], help="which benchmark; all: the short form of each")
    b.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    b.add_argument("--vectors", metavar="DIR", help="RTDS vectors (default $GBHUB_VECTORS or ../shared/vectors)")
    b.add_argument("--seconds", type=float, default=None, help="time budget per figure (e2e), or of the whole run (soak, default 60)")
    b.add_argument("--premises", type=int, default=None, metavar="N", help="fleet / mqtt: number of premises")
    b.add_argument("--days", type=int, default=None, help="gas: simulated days (default: the benchmark's own)")
    b.set_defaults(func=run)


def _flatten(prefix: str, value, out: list) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else k, v, out)
    else:
        out.append((prefix, value))


def table(figures: dict) -> str:
    """One table of every figure (benchmark.figure  value)."""
    rows: list = []
    _flatten("", figures, rows)
    width = max((len(k) for k, _ in rows), default=10)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def run(args) -> int:
    progress = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    benches = load_benchmarks()
    if args.what == "all":
        figures: dict = {}
        t0 = time.perf_counter()
        for name, bench in benches.items():
            progress(f"== {name}")
            t = time.perf_counter()
            try:
                figures[name] = bench.run(args, True, progress)
            except Exception as exc:  # noqa: BLE001 - one failing benchmark does not hide the others
                figures[name] = {"failed": f"{type(exc).__name__}: {exc}"}
            figures[name]["bench_s"] = round(time.perf_counter() - t, 1)
        figures["all_s"] = round(time.perf_counter() - t0, 1)
    else:
        figures = benches[args.what].run(args, False, progress)
    figures["environment"] = environment()
    print(table(figures), file=sys.stderr)
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0
