"""The IHD shows gas (`meter.ihd` "Gas"): it reads the GPF's mirror of the GSME on the CHF's address,
endpoint 2, which changes only when the GSME wakes and pushes."""
from __future__ import annotations

import pytest

from gbhub.firmware.gas_data import MIRROR_ENDPOINT

WAKE = 1800


def _mirror(premises):
    return premises.gpf.mirror(premises.gsme.eui)


async def test_gas_consumption_appears_on_the_ihd_after_the_gsme_s_next_wake(premises):
    ihd, gsme, chf = premises.ihd, premises.gsme, premises.chf
    assert ihd.gas_source == (chf.eui, MIRROR_ENDPOINT)
    await premises.clock.advance(WAKE)  # a push fills the mirror
    shown = (await ihd.poll_now()).gas
    assert shown.error is None and shown.updated_at is not None
    registers = _mirror(premises).get("registers")
    assert shown.total_m3 == pytest.approx(registers["volume_l"] / 1000)
    before = shown.total_m3
    # gas flows; until the GSME's next wake the mirror (so the IHD) still shows the old figures
    next_wake = WAKE - premises.clock.now() % WAKE
    gsme.inject_fault("flow", ["3000"], {})
    await premises.clock.advance(next_wake - 60)
    assert (await ihd.poll_now()).gas.total_m3 == pytest.approx(before)
    await premises.clock.advance(120)  # the wake: the push updates the mirror
    shown = (await ihd.poll_now()).gas
    assert shown.total_m3 == pytest.approx(_mirror(premises).get("registers")["volume_l"] / 1000)
    assert shown.total_m3 > before + 1
    # energy from the conversion factor and calorific value, cost at the unit price, credit (prepayment)
    gas = gsme.data.get("gas")
    assert shown.today_m3 is not None and shown.today_m3 > 0
    assert shown.today_kwh == pytest.approx(shown.today_m3 * gas["cf"] * gas["cv"] / 3.6, rel=1e-6)
    assert shown.total_kwh == pytest.approx(shown.total_m3 * gas["cf"] * gas["cv"] / 3.6, rel=1e-6)
    assert shown.current_price == pytest.approx(gsme.unit_price_pence(1))
    assert shown.today_cost == pytest.approx(shown.today_kwh * shown.current_price)
    assert shown.credit == pytest.approx(round(_mirror(premises).get("prepayment")["credit"]), abs=1)
    # what the dashboard shows (`gbhub status`: below)
    out = ihd.display.to_json()["gas"]
    assert out["total_m3"] == shown.total_m3 and out["updated_at"].endswith("Z")


async def test_the_ihd_shows_no_gas_credit_on_a_credit_mode_gsme(premises):
    from gbhub.meter import _ihd_status

    gsme = premises.gsme
    await premises.clock.advance(WAKE)
    p = dict(gsme.data.get("prepayment"))
    p["mode"] = "credit"
    gsme.data.put("prepayment", p)
    gsme.press()
    await premises.clock.advance(30)
    shown = (await premises.ihd.poll_now()).gas
    assert shown.credit is None and shown.total_m3 is not None
    assert _ihd_status(premises.ihd)["gas"]["credit"] is None


@pytest.mark.premises(gsme=False, ppmid=False)
async def test_an_ihd_of_an_electricity_only_premises_shows_no_gas(premises):
    from gbhub.meter import _ihd_status

    shown = await premises.ihd.poll_now()
    assert premises.ihd.gas_source is None and shown.gas is None and "gas" not in _ihd_status(premises.ihd)
    assert shown.to_json()["gas"] is None


@pytest.mark.premises(ihd=False, ppmid=False,
                      devices=[{"type": "ihd", "options": {"poll_interval": 60.0, "detail_interval": 600.0}}])
async def test_the_gas_mirror_is_read_no_more_often_than_price_and_credit(premises):
    """Fleets read price and credit every ten minutes: gas (three more reads) no more often [I]."""
    ihd = premises.ihd
    assert ihd.gas_interval == 600.0
    await premises.clock.advance(WAKE + 5)  # the mirror is filled
    for _ in range(11):  # the next gas read, at most one interval later
        await premises.clock.advance(60)
        if ihd.display.gas.updated_at is not None:
            break
    first = ihd.display.gas.updated_at
    assert first is not None
    await premises.clock.advance(540)
    assert ihd.display.gas.updated_at == first and ihd.display.updated_at > first + 400
    await premises.clock.advance(120)
    assert ihd.display.gas.updated_at > first


def test_gas_options_are_checked():
    from gbhub.firmware.clock import SimClock
    from gbhub.han import VirtualAir
    from gbhub.meter.ihd import Ihd

    clock = SimClock(1_700_000_000.0)
    make = dict(clock=clock, han=VirtualAir(clock=clock), chf_eui="00DB1234567890A2", esme_eui="00DB1234567890A0",
                install_code="00" * 16)
    ihd = Ihd("00DB1234567890B1", gas_source="00DB1234567890A2:2", gas_interval=900, **make)
    assert ihd.gas_source == (bytes.fromhex("00DB1234567890A2"), 2) and ihd.gas_interval == 900
    assert ihd.display.gas is not None and ihd.display.gas.total_m3 is None
    with pytest.raises(ValueError):
        Ihd("00DB1234567890B1", gas_source="00DB1234567890A2:2", gas_interval=-1, **make)


@pytest.mark.premises(ihd=False, ppmid=False,
                      devices=[{"type": "ihd", "options": {"poll_interval": 60.0, "detail_interval": 600.0,
                                                           "events_interval": 600.0, "poll_phase": 0.5}}])
async def test_a_phased_ihd_reads_events_at_its_phase_like_price_and_credit(premises):
    """A fleet's IHD (a `poll_phase`) reads the ESME's HAN events at that phase of their interval,
    with price and credit, the first time too: not every IHD of a fleet at its first poll [I]."""
    ihd = premises.ihd
    events, detail, polls = ihd._events_read_at, ihd._detail_at, ihd.polls
    assert events is not None and detail is not None
    await premises.clock.advance(60)
    assert ihd.polls == polls + 1 and ihd._events_read_at == events and ihd._detail_at == detail
    for _ in range(10):
        await premises.clock.advance(60)
        if ihd._detail_at != detail:
            break
    assert ihd._detail_at != detail and ihd._events_read_at == ihd._detail_at
    assert ihd.display.current_price is not None
