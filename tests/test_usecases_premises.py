"""Use cases end to end on a premises with a simulated clock: time defaults come from the
head-end's clock (not the wall clock) and include the current day; the CHF answers the device-log
reads CCS05CCS04 and CCS07 built from their definitions."""
from __future__ import annotations

import datetime as dt

from gbcs import usecases

HOUR = 3600


async def _send(p, use_case, to=None, **params):
    d = usecases.get(use_case)
    r = await p.send(use_case, to or d.target, **params)
    assert r.reply.valid, (use_case, r.reply.mac, r.reply.signature)
    assert r.reply.message.message_code == d.message_code
    return r


async def test_default_times_follow_the_simulated_clock(premises):
    p = premises
    await p.clock.advance(5 * HOUR)
    today = dt.datetime.fromtimestamp(p.clock.now(), dt.timezone.utc).date()
    assert today == dt.date(2026, 1, 1)  # the fixture's simulated clock, far from the wall clock's day
    clock = await _send(p, "ECS70")  # validity window from the head-end's (simulated) now
    assert clock.ok, clock.summary
    assert clock.summary["device_time"].startswith(today.isoformat())
    profile = await _send(p, "ECS22b")  # default range: the day up to the end of today
    assert profile.ok and profile.summary["decrypted"]
    times = [e["time"] for e in profile.summary["entries"]]
    assert any(t.startswith(today.isoformat()) for t in times), times
    assert all(t <= (today + dt.timedelta(days=1)).isoformat() for t in times)
    events = await _send(p, "ECS35a")
    assert events.ok
    assert any(e["time"].startswith(today.isoformat()) for e in events.summary["events"]), events.summary


async def test_chf_device_log_reads(premises):
    p = premises
    listed = {x["eui"] for x in (await _send(p, "CCS06")).summary["devices"]}
    assert p.esme.eui.hex().upper() in listed
    for use_case in ("CCS05CCS04", "CCS07"):
        r = await _send(p, use_case)
        assert r.ok and r.reply.message.message_code == usecases.get(use_case).message_code
        assert {x["eui"] for x in r.summary["devices"]} == listed, use_case
        assert all("last_communication" in x for x in r.summary["devices"])
