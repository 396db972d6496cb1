"""Fleet ESMEs and GSMEs (`profile_storage="derived"`) replay their daily read log from the profile
instead of storing a read each midnight (meter/esme_daily.py, firmware/gas_data.py
`GasData.close_daily`; a prepayment GSME's replay runs its own charges, and the GPF's mirror
replays the stretches the GSME pushes) and answer every daily-log read exactly as a meter that
stores them: over days, across a power cut, a restart from NVM, a crash of the midnight close,
supply off/on, clock changes, a tariff change, top-ups, emergency credit and a debt."""
from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gbcs.utrn import generate_utrn
from gbhub.firmware import gas_data
from gbhub.meter.esme_state import DAILY_LOG, DAILY_STORED, DAILY_STRETCHES, NS

from test_fleet_profile import DAY, HOUR, SEED, _advance, _pair, _utc

# the reads of the daily read log: by range, and whole (ECS20c: billing calendar = first-of-month reads)
RANGED = ("ECS21a", "ECS21b", "ECS66", "ECS20c")


@pytest.fixture(scope="module")
def identity(tmp_path_factory):
    from gbhub.tools.fleet import fleet_identity
    return fleet_identity(tmp_path_factory.mktemp("daily-keys") / "keys", SEED)


def _stored_reads(esme) -> int:
    return len(esme.nvm.keys(DAILY_STORED)) + esme.nvm.log_len(DAILY_LOG)


async def _same_daily(stored, derived, span: float) -> int:
    """Every daily-log read answered alike (payload bytes and interpretation, the entries count
    and each range); returns how many reads the log holds."""
    a, b = stored.premises[0].esme, derived.premises[0].esme
    assert not a.derived_profile and b.derived_profile
    log = a.daily_log()
    assert b.daily_log() == log
    assert b.daily_log_len() == a.daily_log_len() == len(log)
    now = stored.clock.now()
    for lo, hi in ((now - span, now), (now - span / 2, now - span / 4), (now - 3 * DAY, now - DAY + 1)):
        assert b.daily_log(lo, hi) == a.daily_log(lo, hi) == [e for e in log if lo <= e["t"] <= hi]
    for use_case in RANGED:
        for lo in (now - span, now - DAY - HOUR):
            ra = await stored.premises[0].send(use_case, to="esme", start=_utc(lo), end=_utc(now))
            rb = await derived.premises[0].send(use_case, to="esme", start=_utc(lo), end=_utc(now))
            assert ra.ok and rb.ok, (use_case, ra.summary, rb.summary)
            assert ra.reply.message.content == rb.reply.message.content, use_case
            assert ra.summary == rb.summary, use_case
    # the whole buffer and its entries count (attribute 7), as the object model answers them
    for esme_ in (a, b):
        esme_._whole = (esme_._daily_buffer(None).encode(), esme_.objects.get(*_attr7()).encode())
    assert a._whole == b._whole
    return len(log)


def _attr7():
    from gbcs.obis import OBIS
    return (OBIS.DAILY_READ_LOG.class_id, OBIS.DAILY_READ_LOG.obis, 7)


async def test_daily_reads_derived_over_days_power_cut_supply_clock_and_tariff(identity):
    stored, derived = ws = await _pair(identity)
    try:
        await _advance(ws, 3 * DAY + 7 * 60)
        assert await _same_daily(stored, derived, 3 * DAY) >= 3
        d = derived.premises[0].esme
        assert _stored_reads(d) == 1 and d.daily_log_len() >= 3  # the first read only: the rest replayed

        # a power cut: the RAM memo goes; the catch-up closes a midnight
        now = stored.clock.now()
        cut = (now // DAY + 1) * DAY - 2 * HOUR - now
        await _advance(ws, cut)
        for w in ws:
            await w.premises[0].esme.power_off()
        await _advance(ws, 5 * HOUR)
        for w in ws:
            await w.premises[0].esme.start()
        await _advance(ws, HOUR)
        await _same_daily(stored, derived, 4 * DAY)
        assert _stored_reads(d) == 1

        # supply off across a midnight, then on: zero half hours, the same registers
        for uc in ("ECS43", "ECS42"):
            for w in ws:
                assert (await w.premises[0].send(uc, to="esme")).ok, uc
            await _advance(ws, 13 * HOUR + 11 * 60)
        # the clock set (ECS70) and moved by a HAN time sync
        for w in ws:
            assert (await w.premises[0].send("ECS70", to="esme")).ok
            esme = w.premises[0].esme
            assert esme.sync_clock(esme.device_now() + 7.5)
        await _advance(ws, DAY)
        await _same_daily(stored, derived, 6 * DAY)
        assert _stored_reads(d) == 1

        # a tariff change: the replay's calendar changes, so the reads derived so far are stored first
        before = d.daily_log()
        for w in ws:
            r = await w.premises[0].send("ECS01a", to="esme")
            assert r.ok, r.summary
        assert d.daily_log() == before and _stored_reads(d) == len(before)
        assert d.nvm.peek(NS, DAILY_STRETCHES) == []
        await _advance(ws, 3 * DAY)
        n = await _same_daily(stored, derived, 9 * DAY)
        assert _stored_reads(d) == len(before) + 1 < n  # derived again after one stored read
    finally:
        for w in ws:
            await w.stop()


async def test_prepayment_top_ups_answer_alike(identity):
    """In prepayment mode charges move the balance every half hour: the reads are stored, not
    replayed, and answer alike."""
    options = {"payment_mode": "prepayment", "credit_pence": 900.0, "emergency_credit_pence": 500.0}
    stored, derived = ws = await _pair(identity, esme=options)
    try:
        await _advance(ws, DAY + 7 * 60)
        ks = identity.keystore
        for counter in (3, 4):
            for w in ws:
                esme = w.premises[0].esme
                utrn = generate_utrn(value=700, utrn_counter=counter, supplier=identity.supplier, device=esme.eui,
                                     private_key=ks.private_key(identity.supplier, "pp-ka"),
                                     public_key=ks.public_key(esme.eui, "ka"))
                assert esme.enter_utrn(str(utrn)).accepted
            await _advance(ws, DAY + HOUR)
        a, b = stored.premises[0].esme, derived.premises[0].esme
        assert a.credit_pence == b.credit_pence and a.daily_log()[-1]["prepayment"] != a.daily_log()[0]["prepayment"]
        n = await _same_daily(stored, derived, 3 * DAY)
        assert _stored_reads(b) == n and not b.nvm.peek(NS, DAILY_STRETCHES)
    finally:
        for w in ws:
            await w.stop()


async def test_workers_restarted_from_their_nvm_files_answer_alike(identity, tmp_path):
    stored, derived = ws = await _pair(identity, tmp_path)
    try:
        await _advance(ws, 2 * DAY + 3 * HOUR)
        before = derived.premises[0].esme.daily_log()
        now = stored.clock.now()
    finally:
        for w in ws:
            await w.stop()
    stored, derived = ws = await _pair(identity, tmp_path, at=now + 26 * HOUR)  # a midnight missed
    try:
        await _advance(ws, HOUR)
        d = derived.premises[0].esme
        assert d.daily_log()[:len(before)] == before and len(d.daily_log()) == len(before) + 1
        assert await _same_daily(stored, derived, 3 * DAY) >= 3
        assert _stored_reads(d) == 1
        assert await _same_gas_daily(stored, derived) >= 3
        assert _gas_stored(derived.premises[0].gsme) == 1  # prepayment (the default): the charges replayed
    finally:
        for w in ws:
            await w.stop()


async def test_stretches_end_age_out_and_trim(identity, monkeypatch):
    """A stretch replays at most MAX_STRETCH_DAYS reads (then one is stored), stretches about to
    leave the profile's window are stored, and the log keeps its capacity."""
    import gbhub.meter.esme as esme
    import gbhub.meter.esme_daily as esme_daily

    monkeypatch.setattr(esme_daily, "MAX_STRETCH_DAYS", 2)
    monkeypatch.setattr(esme_daily, "DAILY_LOG_CAPACITY", 6)
    monkeypatch.setattr(esme, "PROFILE_LOG_CAPACITY", 6 * 48)
    stored, derived = ws = await _pair(identity)
    try:
        await _advance(ws, 4 * DAY + 600)
        d = derived.premises[0].esme
        assert len(d.nvm.peek(NS, DAILY_STRETCHES)) == 2 and _stored_reads(d) == 2
        await _same_daily(stored, derived, 4 * DAY)
        await _advance(ws, 6 * DAY)
        assert await _same_daily(stored, derived, 10 * DAY) == 6
        assert _stored_reads(d) <= 6
    finally:
        for w in ws:
            await w.stop()


async def _same_gas_daily(stored, derived) -> int:
    """The GSME's daily reads and the GPF's mirror of them alike, and the reads of them."""
    a, b = stored.premises[0], derived.premises[0]
    log = a.gsme.data.daily()
    assert b.gsme.data.daily() == log
    now = stored.clock.now()
    assert b.gsme.data.daily_between(int(now - 3 * DAY), int(now)) == a.gsme.data.daily_between(int(now - 3 * DAY), int(now))
    mirror = b.gpf.mirror(b.gsme.eui)
    assert mirror.daily() == a.gpf.mirror(a.gsme.eui).daily()
    assert len(mirror.nvm.keys(gas_data.DAILY_NS)) == len(b.gsme.nvm.keys(gas_data.DAILY_NS))  # the mirror replays too
    for use_case in ("GCS16a", "GCS16b"):
        ra = await a.send(use_case, to="gpf")
        rb = await b.send(use_case, to="gpf")
        assert ra.reply.message.content == rb.reply.message.content and ra.summary == rb.summary, use_case
        assert ra.ok or use_case == "GCS16b"  # credit mode: no prepayment snapshots (NOT_FOUND)
    # the GSME itself at its next wake
    ra, rb = await _at_wake((stored, derived), "GCS16a")
    assert ra.ok and rb.ok and ra.summary == rb.summary and ra.summary["snapshots"]
    return len(log)


async def _at_wake(ws, use_case, **params):
    tasks = [asyncio.ensure_future(w.premises[0].send(use_case, to="gsme", **params)) for w in ws]
    await _advance(ws, 1)
    for w in ws:
        w.premises[0].gsme.press()
    for _ in range(30):
        await _advance(ws, 1)
        if all(t.done() for t in tasks):
            break
    return [await t for t in tasks]


async def test_gas_daily_reads_derived_over_days_a_tariff_change_and_a_power_cut(identity):
    stored, derived = ws = await _pair(identity, gsme={"payment_mode": "credit"})
    try:
        await _advance(ws, 3 * DAY + 7 * 60)
        assert await _same_gas_daily(stored, derived) >= 3
        g = derived.premises[0].gsme
        assert len(g.nvm.keys(gas_data.DAILY_NS)) == 1 and len(g.data.daily()) >= 3
        # a TOU tariff: the tier columns move; the reads replayed so far keep the settings they had
        for r in await _at_wake(ws, "GCS01a", tou_prices=(10000, 20000), day_schedules="00:00=1,07:00=2,19:00=1"):
            assert r.ok, r.summary
        await _advance(ws, 2 * DAY)
        assert await _same_gas_daily(stored, derived) >= 5
        assert g.data.daily()[-1]["tier_l"][1] > 0
        # a power cut of the GSME: the RAM memo goes
        for w in ws:
            w.premises[0].gsme.inject_fault("power", ["off"])
        await _advance(ws, 5 * HOUR)
        for w in ws:
            w.premises[0].gsme.inject_fault("power", ["on"])
        await _advance(ws, DAY)
        n = await _same_gas_daily(stored, derived)
        assert len(g.nvm.keys(gas_data.DAILY_NS)) < n - 2
        # the stretches before and after the tariff replay with their own settings; none kept unused
        used = {x[3] for x in g.nvm.peek(gas_data.NS, gas_data.DAILY_STRETCHES)}
        assert len(used) == 2 and set(g.nvm.keys(gas_data.SETTINGS_NS)) == used
    finally:
        for w in ws:
            await w.stop()


def _gas_stored(gsme) -> int:
    return len(gsme.nvm.keys(gas_data.DAILY_NS))


async def _gsme_power_cut(ws, seconds: float) -> None:
    """Both GSMEs off for `seconds`, then on (the RAM memo goes; the catch-up closes what passed)."""
    for w in ws:
        w.premises[0].gsme.inject_fault("power", ["off"])
    await _advance(ws, seconds)
    for w in ws:
        w.premises[0].gsme.inject_fault("power", ["on"])


async def test_prepayment_gas_daily_reads_replay_the_charges(identity):
    """A prepayment GSME (the fleets' default) replays its own charges (standing charge, energy,
    emergency credit, debt recovery) in the daily read replay: its reads, the mirror's and
    GCS16a/b answer alike over days of running out of credit, emergency credit, a top-up, a debt,
    a credit adjustment, supply off/on, a TOU tariff (GCS01a), a clock change and a power cut; the stretches end where a
    command moved what the replay reads."""
    options = {"credit_pence": 700.0, "emergency_credit_pence": 300.0}
    stored, derived = ws = await _pair(identity, gsme=options)
    a, b = stored.premises[0], derived.premises[0]
    g = b.gsme
    try:
        await _advance(ws, 2 * DAY + 7 * 60)
        assert g.payment_mode == "prepayment"
        assert await _same_gas_daily(stored, derived) >= 2 and _gas_stored(g) == 1  # the charges replayed
        reads = g.data.daily()
        assert reads[-1]["credit"] < reads[0]["credit"]
        # days until credit and emergency credit are gone: the valve closes, the charges go on
        for _ in range(6):
            await _advance(ws, DAY)
            if g.supply_state != "enabled":
                break
        assert a.gsme.supply_state == g.supply_state == "disabled" and a.gsme.credit_pence == g.credit_pence < 0
        await _advance(ws, DAY)
        await _same_gas_daily(stored, derived)
        n_before = _gas_stored(g)
        # a top-up typed on the meter: the balance jumps, the stretch ends, the valve is armed then opened
        ks = identity.keystore
        for w in ws:
            gsme = w.premises[0].gsme
            utrn = generate_utrn(value=3000, utrn_counter=5, supplier=identity.supplier, device=gsme.eui,
                                 private_key=ks.private_key(identity.supplier, "pp-ka"),
                                 public_key=ks.public_key(gsme.eui, "ka"))
            assert gsme.enter_utrn(str(utrn)).accepted
            gsme.press()
        await _advance(ws, DAY)
        assert g.supply_state == "enabled"
        await _same_gas_daily(stored, derived)
        assert _gas_stored(g) == n_before + 1
        # a debt (time- and payment-based recovery), a credit adjustment, supply off and on (armed, opened), a TOU tariff
        for uc, params in (("GCS04", {"debt1": 50000, "debt2": 20000, "debt3": 10000}), ("GCS40a", {"value": 1000}),
                           ("GCS32", {}), ("GCS39", {}),
                           ("GCS01a", {"tou_prices": (10000, 20000), "day_schedules": "00:00=1,07:00=2,19:00=1"})):
            for r in await _at_wake(ws, uc, **params):
                assert r.ok, (uc, r.summary)
            await _advance(ws, 9 * HOUR)
        for w in ws:
            w.premises[0].gsme.press()
        await _advance(ws, 2 * DAY)
        assert a.gsme.nvm.get(gas_data.NS, "prepayment") == g.nvm.get(gas_data.NS, "prepayment")
        assert g.nvm.get(gas_data.NS, "prepayment")["time_debt_1"] < 500
        await _same_gas_daily(stored, derived)
        # the clock set (GCS28) and a power cut: the RAM memo goes
        for r in await _at_wake(ws, "GCS28"):
            assert r.ok, r.summary
        await _gsme_power_cut(ws, 5 * HOUR)
        await _advance(ws, 2 * DAY)
        n = await _same_gas_daily(stored, derived)
        assert _gas_stored(g) < n - 4
        stretches = g.nvm.peek(gas_data.NS, gas_data.DAILY_STRETCHES)
        assert stretches and all(len(x) == 5 for x in stretches)  # each with its prepayment state
    finally:
        for w in ws:
            await w.stop()


class _Crash(Exception):
    pass


async def test_prepayment_gas_close_crashing_after_the_decision_loses_nothing(identity):
    """The midnight close of a prepayment GSME dying right after its daily read was decided
    (derived: nothing written; the RAM memo moved) leaves the NVM as before the close; after the
    restart the reads and the charges are those of a meter that never crashed."""
    stored, derived = ws = await _pair(identity)
    g = derived.premises[0].gsme
    try:
        await _advance(ws, 2 * DAY + 7 * 60)
        now = stored.clock.now()
        midnight = (now // DAY + 1) * DAY
        await _advance(ws, midnight - 60 - now)
        assert g.nvm.get(gas_data.NS, "metering")["last_period"] < midnight

        def snapshot():
            return ({k: v for k, v in g.nvm.items(gas_data.NS)}, dict(g.nvm.items(gas_data.DAILY_NS)),
                    dict(g.nvm.items(gas_data.SETTINGS_NS)))

        before = snapshot()
        close = g.data.close_daily
        decided = []

        def crashing(*args):
            close(*args)
            decided.append(g.data._daily_memo)
            raise _Crash

        g.data.close_daily = crashing
        with pytest.raises(_Crash):
            g._catch_up(midnight + 1)
        del g.data.close_daily
        assert decided and decided[0] is not None and decided[0][1] == midnight  # derived, memo moved
        assert snapshot() == before and g.data._daily_memo is None
        await _gsme_power_cut(ws, 3 * HOUR)
        await _advance(ws, 2 * DAY)
        n = await _same_gas_daily(stored, derived)
        assert n >= 5 and _gas_stored(g) == 1
        assert stored.premises[0].gsme.nvm.get(gas_data.NS, "prepayment") == g.nvm.get(gas_data.NS, "prepayment")
    finally:
        for w in ws:
            await w.stop()


# ------------------------------------------------------------------ pushed stretches (outside input)
_MID = 1767225600  # 2026-01-01T00:00Z
_SETTINGS = {"cv": 39.5, "cf": 1.02264, "tariff": None, "calendars": None, "billing_start": None,
             "billing_duration": None, "price": 6.0, "standing": 30.0}
_KEY = gas_data.settings_key(_SETTINGS)
_OLD = {k: v for k, v in _SETTINGS.items() if k != "standing"}  # an older build's version: no standing charge
_OLD_KEY = gas_data.settings_key(_OLD)
_P = {"mode": "prepayment", "credit": 500.0, "ec_remaining": 300.0, "ec_limit": 300.0, "time_debt_1": 90.0,
      "debt_recovery": {"time_debt_1": {"method": 0, "frequency": 1, "amount": 50.0, "share": 0.0}}}
_PART = st.sampled_from([_MID, _MID + int(DAY), _MID + 2 * int(DAY), _MID + 40 * int(DAY), _MID + 1800, 0, -1, 1.5,
                         "x", None, _KEY, _OLD_KEY, _P, {"mode": "prepayment"}, {**_P, "credit": "1"},
                         {**_P, "debt_recovery": {"time_debt_1": {"amount": "x"}}}, 0.0, [], {}])


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(_PART, min_size=3, max_size=6), max_size=4),
       st.sampled_from([{_KEY: _SETTINGS}, {}, {_KEY: {**_SETTINGS, "cv": 0}}, {"k": _SETTINGS},
                        {_KEY: {**_SETTINGS, "tariff": 3}}, [], None, {_OLD_KEY: _OLD}, {_KEY: _SETTINGS, _OLD_KEY: _OLD}]),
       st.booleans())
def test_a_push_with_malformed_stretches_changes_nothing_and_never_raises(stretches, kept, wrap):
    """The GPF checks a push's stretches (`gas_data.check_stretches`) like the rest of it: what it
    accepts replays without error, what it refuses changes nothing."""
    import json

    from cryptography.hazmat.primitives.asymmetric import ec

    from gbhub.firmware.clock import SimClock
    from gbhub.firmware.gbcs_device import Credentials, TrustAnchors
    from gbhub.firmware.nvm import Nvm
    from gbhub.hub.gpf import Gpf
    from gbhub.meter.gsme import ReplayLedger, litres_series
    from gbhub.meter.model import ConsumptionModel

    gpf = Gpf("02474248400000A3", clock=SimClock(_MID + 3 * DAY - 600), credentials=Credentials(ec.generate_private_key(ec.SECP256R1())),
              trust=TrustAnchors(), nvm=Nvm(None))
    gsme = bytes.fromhex("02474248400000A1")
    gpf.mirror_litres[gsme] = lambda cv, cf: litres_series(ConsumptionModel(seed=1), cv, cf)
    gpf.mirror_ledgers[gsme] = ReplayLedger()
    base = {"t": _MID, "volume_l": 0, "tier_l": [0] * 4, "block_l": [0] * 4, "credit": 500.0}
    body = {"profile": {str(_MID // int(DAY) + d): [10] * 48 for d in range(3)}, "daily": [base],
            "stretches": {"stretches": stretches, "settings": kept} if wrap else stretches}
    stored = gpf._apply_push(gsme, json.dumps(body).encode())
    mirror = gpf.mirror(gsme)
    if stored:
        reads = mirror.daily()  # whatever was accepted replays without error
        assert all(type(e["t"]) is int for e in reads) and reads[0] == base
    else:
        assert not mirror.nvm.peek(gas_data.NS, gas_data.DAILY_STRETCHES) and gpf.last_sync(gsme) is None
