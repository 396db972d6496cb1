"""Fleet meters derive their half-hourly profile from the seeded model (`profile_storage="derived"`,
meter/esme.py, meter/model.py) and answer every profile, daily and register read exactly as a meter
that stores a row per half hour: over days, across a power cut, after commands that stop or move
consumption."""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
import shutil
import sqlite3

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gbhub.firmware import SimClock
from gbhub.firmware.derived import Cumulative, rounded_steps
from gbhub.meter.model import ConsumptionModel
from gbhub.tools.fleet import FleetWorker, fleet_identity

SEED, INDEX = 7, 43
HOUR, DAY = 3600.0, 86400.0
# what a head-end reads of profiles, daily logs and registers (ranges: the last `span`)
RANGED = ("ECS22a", "ECS22b", "ECS22c", "ECS21a", "ECS21b", "ECS21c")
PLAIN = ("ECS17a", "ECS17b", "ECS17d", "ECS17e", "ECS23")


@pytest.fixture(scope="module")
def identity(tmp_path_factory):
    return fleet_identity(tmp_path_factory.mktemp("profile-keys") / "keys", SEED)


def _utc(t: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc)


async def _pair(identity, folder=None, at: float | None = None, esme: dict | None = None,
                gsme: dict | None = None) -> tuple[FleetWorker, FleetWorker]:
    """Premises INDEX twice, storing and deriving profiles (in `folder`'s NVM files, at `at`;
    `esme`, `gsme`: further options)."""
    ws = []
    for storage in ("stored", "derived"):
        w = FleetWorker(SEED, range(INDEX, INDEX + 1), identity, sim=True, clock=None if at is None else SimClock(at),
                        nvm_path=None if folder is None else folder / f"{storage}.sqlite",
                        options={"esme": {**(esme or {}), "profile_storage": storage},
                                 "gsme": {**(gsme or {}), "profile_storage": storage}})
        await w.start()
        assert w.errors == 0
        ws.append(w)
    if at is not None:
        return ws[0], ws[1]
    t = max(w.clock.now() for w in ws) + HOUR
    for w in ws:
        await w.clock.advance(t - w.clock.now())
    return ws[0], ws[1]


async def _advance(ws, seconds: float) -> None:
    for w in ws:
        await w.clock.advance(seconds)
    assert ws[0].clock.now() == ws[1].clock.now()


async def _same_answers(stored: FleetWorker, derived: FleetWorker, span: float) -> int:
    """Every read answered alike (decoded payload bytes and interpretation); returns the profile
    entries compared."""
    now = stored.clock.now()
    a, b = stored.premises[0], derived.premises[0]
    assert a.esme.profile() == b.esme.profile()
    assert a.esme.registers() == b.esme.registers()
    reads = [(uc, {}) for uc in PLAIN] + [(uc, {"start": _utc(now - span), "end": _utc(now)}) for uc in RANGED]
    for use_case, params in reads:
        ra = await a.send(use_case, to="esme", **params)
        rb = await b.send(use_case, to="esme", **params)
        assert ra.ok and rb.ok, (use_case, ra.summary, rb.summary)
        assert ra.reply.message.content == rb.reply.message.content, use_case
        assert ra.summary == rb.summary, use_case
    # gas: the GSME's profile and the GPF's mirror of it; reads the GPF answers at once
    day0 = int(now - span) // 1800 * 1800
    n = int(span // 1800) + 2
    assert a.gsme.data.intervals(day0, n) == b.gsme.data.intervals(day0, n)
    assert a.gpf.mirror(a.gsme.eui).intervals(day0, n) == b.gpf.mirror(b.gsme.eui).intervals(day0, n)
    assert a.gsme.registers() == b.gsme.registers()
    gas = [("GCS13a", {}), ("GCS16a", {}), ("GCS17", {"start": _utc(day0), "samples": n})]
    for use_case, params in gas:
        ra = await a.send(use_case, to="gpf", **params)
        rb = await b.send(use_case, to="gpf", **params)
        assert ra.ok and rb.ok, (use_case, ra.summary, rb.summary)
        assert ra.reply.message.content == rb.reply.message.content, use_case
        assert ra.summary == rb.summary, use_case
    # and the GSME itself at its next wake
    tasks = [asyncio.ensure_future(p.send("GCS17", to="gsme", start=_utc(day0), samples=n)) for p in (a, b)]
    for _ in range(3):
        await _advance((stored, derived), 1800)
        if all(t.done() for t in tasks):
            break
    ra, rb = [await t for t in tasks]
    assert ra.ok and rb.ok and ra.summary == rb.summary and ra.summary["volumes"]
    return len(a.esme.profile(now - span, now))


async def test_a_derived_profile_answers_as_stored_rows_over_days_a_power_cut_and_commands(identity):
    stored, derived = ws = await _pair(identity)
    try:
        assert derived.premises[0].esme.derived_profile and not stored.premises[0].esme.derived_profile
        await _advance(ws, 2 * DAY + 7 * 60)
        assert await _same_answers(stored, derived, 2 * DAY) >= 90
        d = derived.premises[0].esme
        # nothing stored but the first half hour (the meter started within it)
        assert d.nvm.log_len("profile") == 1 and len(d.profile()) > 90
        assert stored.premises[0].esme.nvm.log_len("profile") == len(d.profile())

        g = derived.premises[0].gsme
        assert g.nvm.get("meter", "derived_profile")["segments"] and len(g.nvm.keys("gas_profile")) == 1
        assert len(derived.premises[0].gpf.nvm.scope("mirror-" + g.eui_hex).keys("gas_profile")) == 1

        # a power cut of both meters: the RAM memo goes, the catch-up closes the half hours missed
        for w in ws:
            await w.premises[0].esme.power_off()
            w.premises[0].gsme.inject_fault("power", ["off"])
        await _advance(ws, 5 * HOUR)
        for w in ws:
            await w.premises[0].esme.start()
            w.premises[0].gsme.inject_fault("power", ["on"])
        await _advance(ws, HOUR)
        await _same_answers(stored, derived, 3 * DAY)

        # a steady gas flow (not the model's) for two hours
        for flow in ("150", "0"):
            for w in ws:
                w.premises[0].gsme.inject_fault("flow", [flow])
            await _advance(ws, 2 * HOUR + 13 * 60)

        # supply off for three hours, then on (consumption stops: rows stored, segments end)
        for uc in ("ECS43", "ECS42"):
            for w in ws:
                assert (await w.premises[0].send(uc, to="esme")).ok, uc
            await _advance(ws, 3 * HOUR + 11 * 60)
        # the clock set (ECS70) and moved by a HAN time sync, on both
        for w in ws:
            r = await w.premises[0].send("ECS70", to="esme")
            assert r.ok, r.summary
            esme = w.premises[0].esme
            assert esme.sync_clock(esme.device_now() + 7.5)
        await _advance(ws, DAY + 5 * 60)
        assert await _same_answers(stored, derived, 3 * DAY) > 140
        assert 1 < d.nvm.log_len("profile") < 20  # only what the model could not give
        assert d.profile_len() == len(d.profile()) == len(stored.premises[0].esme.profile())
    finally:
        for w in ws:
            await w.stop()


async def test_workers_restarted_from_their_nvm_files_answer_alike(identity, tmp_path):
    stored, derived = ws = await _pair(identity, tmp_path)
    try:
        await _advance(ws, DAY + 3 * HOUR)
        before = derived.premises[0].esme.profile()
        now = stored.clock.now()
    finally:
        for w in ws:
            await w.stop()
    stored, derived = ws = await _pair(identity, tmp_path, at=now + 2 * HOUR)  # two hours off
    try:
        await _advance(ws, HOUR)
        assert derived.premises[0].esme.profile()[:len(before)] == before
        assert await _same_answers(stored, derived, DAY) > 45
        assert derived.premises[0].esme.nvm.log_len("profile") == 1
    finally:
        for w in ws:
            await w.stop()


def _crash_image(live, crash) -> None:
    """The NVM files as a crash now would leave them (SQLite replays the WAL's committed part)."""
    crash.mkdir(exist_ok=True)
    for src in live.iterdir():
        shutil.copyfile(src, crash / src.name)


def _metering_on_disk(path, nvm) -> dict:
    db = sqlite3.connect(str(path))
    try:
        row = db.execute("SELECT value FROM kv WHERE ns=? AND key='metering'", (nvm.prefix + "meter",)).fetchone()
    finally:
        db.close()
    return json.loads(row[0])


async def test_a_crash_between_closes_loses_nothing_the_restart_closes_them_again(identity, tmp_path):
    """A fleet meter's half-hour closes write nothing (`meter.model.close_half_hours` defers their
    writes): a crash between them leaves the state of the meter's last durable write on disk,
    and the restart's catch-up closes the rest again to the same registers, profile and reads."""
    live, crash = tmp_path / "live", tmp_path / "crash"
    stored, derived = ws = await _pair(identity, live)
    try:
        await _advance(ws, DAY + 3 * HOUR)
        for w in ws:
            assert (await w.premises[0].send("ECS42", to="esme")).ok  # a command: on disk before its answer
        await _advance(ws, 5 * HOUR + 7 * 60)
        e = derived.premises[0].esme
        assert e.nvm.unsynced  # ten closes since, in RAM only
        _crash_image(live, crash)
        last = e.nvm.peek("meter", "metering")["last_period"]
        assert _metering_on_disk(crash / "derived.sqlite", e.nvm)["last_period"] <= last - 10 * 1800
        registers = [w.premises[0].esme.registers() for w in ws]
        assert registers[0] == registers[1]
        now = stored.clock.now()
    finally:
        for w in ws:
            await w.stop()
    stored, derived = ws = await _pair(identity, crash, at=now)
    try:
        assert derived.premises[0].esme.registers() == registers[1]
        assert derived.premises[0].esme.nvm.peek("meter", "metering")["last_period"] == last
        await _advance(ws, 1800)  # a GSME wake: it pushes again what a batch lost in the crash had recorded
        assert await _same_answers(stored, derived, DAY) > 45
        await _advance(ws, DAY)
        assert await _same_answers(stored, derived, 2 * DAY) > 90
    finally:
        for w in ws:
            await w.stop()


async def test_long_segments_end_and_the_next_starts(identity, monkeypatch):
    """A segment never grows beyond the log's length (so deriving one costs a bounded amount of
    model): at that age it ends and the next starts, with nothing stored."""
    import gbhub.firmware.gas_data as gas_data
    import gbhub.hub.gpf as gpf
    import gbhub.meter.esme as esme

    monkeypatch.setattr(esme, "PROFILE_LOG_CAPACITY", 48)
    monkeypatch.setattr(gas_data, "MAX_SEGMENT_DAYS", 1)
    monkeypatch.setattr(gpf, "MAX_SEGMENT_DAYS", 1)
    stored, derived = ws = await _pair(identity)
    try:
        await _advance(ws, 3 * DAY + 600)
        p = derived.premises[0]
        assert len(p.esme.nvm.peek("meter", "profile_segments")) >= 2
        assert len(p.gsme.nvm.peek("meter", "derived_profile")["segments"]) >= 3
        assert p.esme.nvm.log_len("profile") == 1
        assert await _same_answers(stored, derived, DAY) >= 47
    finally:
        for w in ws:
            await w.stop()


async def test_derived_profile_shrinks_nvm(identity):
    stored, derived = ws = await _pair(identity)
    try:
        await _advance(ws, DAY)
        sizes = [sum(len(text) for lg in w.nvm._store.logs.values() for text in lg.entries) for w in ws]
        assert sizes[1] < sizes[0] - 40 * 20, sizes
    finally:
        for w in ws:
            await w.stop()


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**64 - 1), start=st.integers(0, 20000), first=st.integers(1, 200),
       n=st.integers(1, 120), remainder=st.floats(-0.5, 0.4999))
def test_rounded_steps_are_a_function_of_the_time_alone(seed, start, first, n, remainder):
    """Whatever was asked before, a half hour's derived value is the same, and the values add up
    to the rounded running total (what a meter carrying its rounding remainder records)."""
    model = ConsumptionModel(seed=seed)
    s = 1_700_000_000 // 1800 * 1800 + start * 1800.0
    lo, hi = s + first * 1800, s + (first + n - 1) * 1800
    fresh = rounded_steps(Cumulative(model.half_hour_wh, s), remainder, lo, hi)
    warm = Cumulative(model.half_hour_wh, s)
    rounded_steps(warm, remainder, s + 1800, hi + 3 * 1800)  # a different history of asks
    assert rounded_steps(warm, remainder, lo, hi) == fresh
    total = Cumulative(model.half_hour_wh, s)
    assert sum(fresh) == math.floor(remainder + total.at(hi) + 0.5) - math.floor(remainder + total.at(lo - 1800) + 0.5)


_NUM = st.one_of(st.integers(-2**40, 2**40), st.floats(allow_nan=True, allow_infinity=True), st.none(), st.text(max_size=3),
                 st.sampled_from([1767225600, 1767227400, 1767229200, 1767400200, 0.4, 39.5, 1.02264]))


@settings(max_examples=150, deadline=None)
@given(st.one_of(st.lists(st.lists(_NUM, max_size=6), max_size=6), _NUM, st.dictionaries(st.text(max_size=3), _NUM, max_size=2)),
       st.booleans())
def test_a_push_with_malformed_segments_changes_nothing_and_never_raises(segments, wrap):
    """The GPF checks a derived profile's segments in a push (outside input) like the rest of it."""
    import json

    from cryptography.hazmat.primitives.asymmetric import ec

    from gbhub.firmware.gbcs_device import Credentials, TrustAnchors
    from gbhub.firmware.nvm import Nvm
    from gbhub.hub.gpf import Gpf
    from gbhub.meter.gsme import litres_series

    gpf = Gpf("02474248400000A3", clock=SimClock(1767400800.0), credentials=Credentials(ec.generate_private_key(ec.SECP256R1())),
              trust=TrustAnchors(), nvm=Nvm(None))
    gsme = bytes.fromhex("02474248400000A1")
    gpf.mirror_litres[gsme] = lambda cv, cf: litres_series(ConsumptionModel(seed=1), cv, cf)
    state = {"derived_profile": {"segments": segments} if wrap else segments}
    try:
        data = json.dumps({"state": state}).encode()
    except ValueError:
        return
    stored = gpf._apply_push(gsme, data)
    mirror = gpf.mirror(gsme)
    if stored:
        values = mirror.intervals(1767225600, 96)  # whatever was accepted derives without error
        assert len(values) == 96 and all(v is None or v >= 0 for v in values)
    else:
        assert mirror.nvm.peek("meter", "derived_profile") is None and gpf.last_sync(gsme) is None
