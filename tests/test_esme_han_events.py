"""The network operator's alert and event-logging behaviours (ECS25b, ECS25b3), events shown on
HAN devices (ECS25a1: the ESME's ZCL Events cluster, the IHD's display) and the change of tenancy
restricting what HAN devices see (ECS12, SRV 3.2) — all on a running premises."""
from __future__ import annotations

import datetime as dt

from gbcs.catalogue import AlertCode

OVER = AlertCode.AVERAGE_RMS_VOLTAGE_ABOVE_AVERAGE_RMS_OVER_VOLTAGE_THRESHOLD
BACK = AlertCode.AVERAGE_RMS_VOLTAGE_BELOW_AVERAGE_RMS_OVER_VOLTAGE_THRESHOLD


async def _alert(premises, code: int, timeout: float = 5.0):
    return await premises.headend.wait_alert(lambda a: a.code == code and a.valid, timeout=timeout)


def _codes(premises) -> list[int]:
    return [a.code for a in premises.headend.received_alerts]


async def test_network_operator_alert_behaviours_suppress_an_alert(premises):
    esme = premises.esme
    reply = await premises.send("ECS25b", bits=[OVER - 0x8000])
    assert reply.ok, reply.summary
    assert not esme.behaviour_enabled("send", OVER)
    assert esme.behaviour_enabled("send", BACK)
    reply = await premises.send("ECS25r2")
    assert reply.ok
    esme.inject_fault("voltage", ["255"], {})
    await premises.clock.advance(1801)
    assert OVER not in _codes(premises)
    assert any(e["code"] == "alert_suppressed" for e in esme.event_log())
    reply = await premises.send("ECS25b", bits=[])
    assert reply.ok
    esme.inject_fault("voltage", ["230"], {})
    await premises.clock.advance(1801)
    await _alert(premises, BACK)


async def test_network_operator_logging_behaviour_stops_logging(premises):
    esme = premises.esme
    reply = await premises.send("ECS25b3", bits=[OVER - 0x8000])
    assert reply.ok, reply.summary
    assert not esme.behaviour_enabled("log", OVER)
    before = len(esme.event_log())
    esme.inject_fault("voltage", ["255"], {})
    await premises.clock.advance(1801)
    await _alert(premises, OVER)  # still sent: only logging is off
    assert not any(e.get("code") == int(OVER) for e in esme.event_log()[before:])


async def test_ihd_shows_the_events_the_esme_shows_on_han_devices(premises):
    ihd, esme = premises.ihd, premises.esme
    await ihd.poll_now()
    assert ihd.display.events == ()
    esme.inject_fault("voltage", ["255"], {})
    await premises.clock.advance(1801)
    await _alert(premises, OVER)
    await premises.clock.advance(61)  # the IHD asks for events every 60 s
    display = await ihd.poll_now()
    assert [code for _t, code in display.events] == [OVER]
    shown = display.to_json()["events"][0]
    assert shown["code"] == f"{OVER:04X}" and shown["name"]


async def test_event_behaviour_han_bit_hides_an_event_from_the_ihd(premises):
    ihd, esme = premises.ihd, premises.esme
    reply = await premises.send("ECS25a1", bits=[OVER - 0x8000])
    assert reply.ok, reply.summary
    esme.inject_fault("voltage", ["255"], {})
    await premises.clock.advance(1801)
    await _alert(premises, OVER)  # sent to the head-end, not shown on the HAN
    await premises.clock.advance(61)
    display = await ihd.poll_now()
    assert OVER not in [code for _t, code in display.events]


async def test_change_of_tenancy_hides_the_previous_tenants_consumption(premises):
    ihd, esme = premises.ihd, premises.esme
    await premises.clock.advance(6 * 3600)  # some consumption today
    display = await ihd.poll_now()
    assert display.today_import_kwh and display.today_import_kwh > 0
    now = dt.datetime.fromtimestamp(esme.device_now(), dt.timezone.utc).replace(microsecond=0)
    reply = await premises.send("ECS12", change_of_tenancy_date=now)
    assert reply.ok, reply.summary
    await premises.clock.advance(11)
    display = await ihd.poll_now()
    assert display.today_import_kwh is not None and display.today_import_kwh < 0.2  # only since the change
    # a change of tenancy in the future restricts nothing yet
    later = now + dt.timedelta(days=2)
    reply = await premises.send("ECS12", change_of_tenancy_date=later)
    assert reply.ok
    assert esme.tenancy_start() is None


async def test_events_before_the_change_of_tenancy_are_not_shown(premises):
    ihd, esme = premises.ihd, premises.esme
    esme.inject_fault("voltage", ["255"], {})
    await premises.clock.advance(1801)
    await _alert(premises, OVER)
    await premises.clock.advance(5)
    now = dt.datetime.fromtimestamp(esme.device_now(), dt.timezone.utc).replace(microsecond=0)
    assert (await premises.send("ECS12", change_of_tenancy_date=now)).ok
    await premises.clock.advance(61)
    display = await ihd.poll_now()
    assert display.events == ()
