"""The GSME applies its tariff (GCS01a/b; `firmware.tariff`, the ESME's calendar engine, through
`firmware.gas_data.tariff_parts`): the calendar's TOU tier and the block thresholds choose the price
each half-hour is charged at and the tier / block register it accrues to; GCS13c / GCS13b reads
from the GPF show the registers; a future-dated tariff takes over at its time."""
from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from gbhub.firmware.tariff import Calendar, block_of, split_blocks

WAKE = 1800
FRIDAY = dt.datetime(2026, 3, 6, 5, 50, tzinfo=dt.timezone.utc)  # a Friday
LPH = 100.0  # fixed flow: 50 litres a half-hour


async def _send_at_wake(p, use_case, to="gsme", **params):
    task = asyncio.ensure_future(p.send(use_case, to=to, **params))
    await p.clock.advance(1)
    p.gsme.press()
    for _ in range(30):
        await p.clock.advance(1)
        if task.done():
            break
    return await task


def _kwh(gsme, litres: float) -> float:
    return gsme._gas_kwh(litres)


def _pence(gsme, litres: float, price: float) -> float:
    return int(_kwh(gsme, litres) * 1000) / 1000.0 * price


async def _until(p, when: dt.datetime) -> None:
    await p.clock.advance(when.timestamp() - p.clock.now())


def _state(gsme):
    reg = gsme.registers()
    return list(reg["tier_l"]), list(reg["block_l"]), gsme.credit_pence


@pytest.mark.premises(start=FRIDAY, ihd=False, ppmid=False)
async def test_tou_tariff_charges_each_tier_at_its_price_across_a_switch(premises):
    """A day profile 00:00 tier 1, 07:00 tier 2, 19:00 tier 1 at 10 p / 20 p per kWh: from 06:00
    to 08:00 the first hour accrues to tier 1 at 10 p, the second to tier 2 at 20 p; GCS13c from
    the GPF shows the tier registers."""
    gsme = premises.gsme
    gsme.inject_fault("credit", ["100"], {})
    reply = await _send_at_wake(premises, "GCS01a", tou_prices=(10000, 20000), day_schedules="00:00=1,07:00=2,19:00=1")
    assert reply.ok
    gsme.inject_fault("flow", [str(LPH)], {})
    await _until(premises, FRIDAY.replace(hour=6, minute=0, second=30))
    tiers0, blocks0, credit0 = _state(gsme)
    await _until(premises, FRIDAY.replace(hour=8, minute=0, second=30))
    tiers1, blocks1, credit1 = _state(gsme)
    assert [b - a for a, b in zip(tiers0, tiers1)] == [100, 100, 0, 0]
    assert [b - a for a, b in zip(blocks0, blocks1)] == [200, 0, 0, 0]
    assert credit0 - credit1 == pytest.approx(2 * _pence(gsme, 50, 10) + 2 * _pence(gsme, 50, 20), abs=1e-6)
    read = await premises.send("GCS13c", to="gpf")
    assert read.ok
    assert read.ok and read.summary["reliability"] == "gpf"
    assert [read.summary["attributes"][f"CurrentTier{i}SummationDelivered"] for i in range(1, 5)] == tiers1


@pytest.mark.premises(start=FRIDAY, ihd=False, ppmid=False)
async def test_block_tariff_splits_the_half_hour_that_crosses_a_threshold(premises):
    """Blocks at 9.6 / 10.2 / 10.75 / 11 p with thresholds 1, 2, 3 kWh (divisor 1000): about
    0.56 kWh a half-hour, so the second threshold is crossed inside a half-hour; the litres and
    the charge before it go to block 2, the rest to block 3; GCS13b shows the block registers."""
    gsme = premises.gsme
    gsme.inject_fault("credit", ["100"], {})
    reply = await _send_at_wake(premises, "GCS01a", block_thresholds=(1000, 2000, 3000))
    assert reply.ok
    gsme.inject_fault("flow", [str(LPH)], {})
    await _until(premises, FRIDAY.replace(hour=6, minute=0, second=30))
    tiers0, blocks0, credit0 = _state(gsme)
    used0 = gsme.registers()["block_kwh"]
    await _until(premises, FRIDAY.replace(hour=8, minute=0, second=30))
    tiers1, blocks1, credit1 = _state(gsme)
    kwh = _kwh(gsme, 50)
    expect_blocks = [0.0] * 4
    expect_pence = 0.0
    prices = (9.6, 10.2, 10.75, 11.0)
    used = used0
    for _ in range(4):
        for block, part in split_blocks(used, kwh, (1.0, 2.0, 3.0)):
            expect_blocks[block] += part
            expect_pence += int(part * 1000) / 1000.0 * prices[block]
        used += kwh
    assert sum(1 for v in expect_blocks if v) >= 2  # the window crosses a threshold
    deltas = [b - a for a, b in zip(blocks0, blocks1)]
    assert sum(deltas) == 200 and [b - a for a, b in zip(tiers0, tiers1)] == [200, 0, 0, 0]
    for got, want in zip(deltas, expect_blocks):
        assert got == pytest.approx(want / kwh * 50, abs=1)
    assert credit0 - credit1 == pytest.approx(expect_pence, abs=1e-6)
    assert gsme.registers()["block_kwh"] == pytest.approx(used)
    read = await premises.send("GCS13b", to="gpf")
    assert read.ok and read.summary["reliability"] == "gpf"
    assert list(read.summary["attributes"].values()) == blocks1


@pytest.mark.premises(start=FRIDAY, ihd=False, ppmid=False)
async def test_a_future_dated_tou_tariff_takes_over_at_its_time(premises):
    """GCS01a future-dated to 07:00 (tier 2 all day at 30 p) while a one-price TOU tariff at
    10 p runs: until 07:00 tier 1 at 10 p, from 07:00 tier 2 at 30 p."""
    gsme = premises.gsme
    gsme.inject_fault("credit", ["100"], {})
    assert (await _send_at_wake(premises, "GCS01a", tou_prices=(10000,), day_profiles=(1,))).ok
    when = FRIDAY.replace(hour=7, minute=0)
    reply = await _send_at_wake(premises, "GCS01a", tou_prices=(10000, 30000), day_profiles=(2,),
                                execution_date_time=when)
    assert reply.ok and gsme.pending_future_dated()
    gsme.inject_fault("flow", [str(LPH)], {})
    await _until(premises, FRIDAY.replace(hour=6, minute=0, second=30))
    tiers0, _b, credit0 = _state(gsme)
    await _until(premises, FRIDAY.replace(hour=8, minute=0, second=30))
    tiers1, _b, credit1 = _state(gsme)
    assert not gsme.pending_future_dated()
    assert [b - a for a, b in zip(tiers0, tiers1)] == [100, 100, 0, 0]
    assert credit0 - credit1 == pytest.approx(2 * _pence(gsme, 50, 10) + 2 * _pence(gsme, 50, 30), abs=1e-6)


def test_calendar_seasons_weeks_special_days_and_the_evening_before():
    """`firmware.tariff.Calendar` alone: a recurring season from 20 March, an absolute one, the
    weekday's day profile, a special day, and the day's last switch in force before its first."""
    def at(text):
        return dt.datetime.fromisoformat(text).replace(tzinfo=dt.timezone.utc).timestamp()

    cal = Calendar(seasons=(((3, 20), 1), ((10, 1), 2)),
                   weeks={1: (1, 1, 1, 1, 1, 2, 2), 2: (3,) * 7},
                   days={1: ((7 * 3600, 1), (19 * 3600, 3)), 2: ((0, 2),), 3: ((0, 4),)},
                   special_days=((None, 12, 25, 2),))
    assert cal.value_at(at("2026-06-01T06:59:59")) == 3  # Monday before 07:00: the evening's tier
    assert cal.value_at(at("2026-06-01T07:00:00")) == 1
    assert cal.value_at(at("2026-06-06T12:00:00")) == 2  # Saturday
    assert cal.value_at(at("2026-11-02T12:00:00")) == 4  # winter season (from 1 October)
    assert cal.value_at(at("2026-02-02T12:00:00")) == 4  # still last year's winter
    summer = Calendar(seasons=(((3, 20), 1),), weeks={1: (1,) * 7}, days={1: ((0, 1),), 2: ((0, 2),)},
                      special_days=((None, 12, 25, 2),))
    assert summer.value_at(at("2026-12-25T10:00:00")) == 2
    assert Calendar().value_at(at("2026-12-25T10:00:00")) is None
    assert block_of(0.5, (1, 2, 3)) == 0 and block_of(2, (1, 2, 3)) == 2 and block_of(9, (1, 2, 3)) == 3
    assert split_blocks(0.8, 0.5, (1, 2)) == [(0, pytest.approx(0.2)), (1, pytest.approx(0.3))]


# -- property tests: the calendar and price commands come from outside (a head-end's GCS01a) --------
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from gbcs.zcl import Cluster, ClusterCommand, ZclDate  # noqa: E402
from gbhub.firmware.gas_data import GAS_BLOCKS, GAS_TIERS, gas_calendar, tariff_parts, unit_price  # noqa: E402
from gbhub.firmware.gas_data import _apply_calendar, _apply_price  # noqa: E402

_u8 = st.integers(0, 255)
_date = st.builds(ZclDate, _u8, _u8, _u8, st.just(0xFF))


@st.composite
def _commands(draw):
    """Any sequence of ZSE calendar and price commands a GCS01a could carry, fields in range."""
    out = [ClusterCommand.build(Cluster.CALENDAR, "PublishCalendar", provider_id=0, issuer_event_id=1, issuer_calendar_id=1,
                                start_time=0, calendar_type=draw(st.sampled_from((0, 3))), calendar_time_reference=0,
                                calendar_name=b"", number_of_seasons=0, number_of_week_profiles=0, number_of_day_profiles=0)]
    for day_id in draw(st.lists(_u8, max_size=4)):
        entries = draw(st.lists(st.fixed_dictionaries({"start_time": st.integers(0, 0xFFFF), "value": _u8}), max_size=6))
        out.append(ClusterCommand.build(Cluster.CALENDAR, "PublishDayProfile", provider_id=0, issuer_event_id=1,
                                        issuer_calendar_id=1, day_id=day_id, total_number_of_schedule_entries=len(entries),
                                        command_index=0, total_number_of_commands=1, calendar_type=0, schedule_entries=entries))
    for week_id in draw(st.lists(_u8, max_size=3)):
        days = draw(st.lists(_u8, min_size=7, max_size=7))
        out.append(ClusterCommand.build(Cluster.CALENDAR, "PublishWeekProfile", provider_id=0, issuer_event_id=1,
                                        issuer_calendar_id=1, week_id=week_id,
                                        **{f"day_id_ref_{d}": v for d, v in zip(("monday", "tuesday", "wednesday", "thursday",
                                                                                 "friday", "saturday", "sunday"), days)}))
    seasons = draw(st.lists(st.fixed_dictionaries({"season_start_date": _date, "week_id_ref": _u8}), max_size=4))
    out.append(ClusterCommand.build(Cluster.CALENDAR, "PublishSeasons", provider_id=0, issuer_event_id=1, issuer_calendar_id=1,
                                    command_index=0, total_number_of_commands=1, seasons=seasons))
    special = draw(st.lists(st.fixed_dictionaries({"special_day_date": _date, "day_id_ref": _u8}), max_size=4))
    out.append(ClusterCommand.build(Cluster.CALENDAR, "PublishSpecialDays", provider_id=0, issuer_event_id=1, issuer_calendar_id=1,
                                    start_time=0, calendar_type=0, total_number_of_special_days=len(special), command_index=0,
                                    total_number_of_commands=1, special_days=special))
    out.append(ClusterCommand.build(Cluster.PRICE, "PublishTariffInformation", provider_id=0, issuer_event_id=1, issuer_tariff_id=1,
                                    start_time=0, tariff_type_charging_scheme=draw(_u8), tariff_label=b"",
                                    number_of_price_tiers_in_use=0, number_of_block_thresholds_in_use=0, unit_of_measure=0,
                                    currency=826, price_trailing_digit=0x50, standing_charge=draw(st.integers(0, 0xFFFFFFFF)),
                                    tier_block_mode=0xFF, block_threshold_multiplier=draw(st.integers(0, 0xFFFFFF)),
                                    block_threshold_divisor=draw(st.integers(0, 0xFFFFFF))))
    tiers = draw(st.lists(st.tuples(st.integers(0, 15), st.lists(st.integers(0, (1 << 48) - 1), max_size=15)), max_size=3))
    out.append(ClusterCommand.build(Cluster.PRICE, "PublishBlockThresholds", provider_id=0, issuer_event_id=1, start_time=0,
                                    issuer_tariff_id=1, command_index=0, number_of_commands=1, sub_payload_control=1,
                                    tiers=[{"tier_number_of_block_thresholds": (t << 4) | len(th),
                                            "block_thresholds": [{"threshold": v} for v in th]} for t, th in tiers]))
    prices = draw(st.lists(st.fixed_dictionaries({"tier_block_id": _u8, "price": st.integers(0, 0xFFFFFFFF)}), max_size=8))
    out.append(ClusterCommand.build(Cluster.PRICE, "PublishPriceMatrix", provider_id=0, issuer_event_id=1, start_time=0,
                                    issuer_tariff_id=1, command_index=0, number_of_commands=1,
                                    sub_payload_control=draw(st.integers(0, 1)), prices=prices))
    return out


@settings(max_examples=200, deadline=None)
@given(_commands(), st.integers(946684800, 4102444800), st.floats(0, 1e4), st.floats(0, 1e6))
def test_any_tariff_resolves_to_a_register_and_a_price(commands, t, kwh, used):
    """Whatever calendar and prices arrive, each half-hour resolves to tier 1..4 / block 0..3
    parts that sum to its energy, each with a finite price; nothing raises."""
    gas = {"price": 6.0}
    for c in commands:
        (_apply_calendar if c.cluster_id == Cluster.CALENDAR else _apply_price)(gas, c.name, c)
    gas_calendar(gas).value_at(t)
    parts = tariff_parts(gas, t, kwh, used)
    assert sum(p for _t, _b, p in parts) == pytest.approx(kwh, rel=1e-9, abs=1e-6)
    for tier, block, part in parts:
        assert 1 <= tier <= GAS_TIERS and 0 <= block < GAS_BLOCKS and part >= 0
        assert unit_price(gas, tier, block) >= 0


@settings(max_examples=300, deadline=None)
@given(st.floats(0, 1e6), st.floats(0, 1e4), st.lists(st.floats(0, 1e6), max_size=5))
def test_split_blocks_conserves_the_amount_in_rising_blocks(used, amount, thresholds):
    parts = split_blocks(used, amount, thresholds)
    assert sum(p for _b, p in parts) == pytest.approx(amount, rel=1e-9, abs=1e-9)
    blocks = [b for b, _p in parts]
    assert blocks == sorted(blocks) and all(0 <= b <= len(thresholds) for b in blocks)
