"""Every ESME use case end to end with its default parameters, as `gbhub send` sends it: built by
the head-end, sent over the TCP WAN bridge, executed by a twin-element polyphase ESME, verified
(MAC or signature) and interpreted into named values. Also: the variants refuse the use cases they
do not serve, and a few semantics (payment mode change, meter balance, counters, max demand)."""
from __future__ import annotations

import pytest

from gbcs import usecases
from gbcs.catalogue import AlertCode, MessageCode
from gbcs.payload import decode_payload
from gbcs.usecases import esme_config
from gbhub.wan.headend import CommandRejected

DAY = 86400
POLY = {"type": "esme", "name": "poly", "options": {"variant": "twin-polyphase"}}
# use cases whose defaults cannot be sent as they are, and why
NOT_BY_DEFAULT = {
    "CS01a": "needs a UTRN made for the head-end's UTRN counter (tests/test_e2e.py sends one)",
}
ESME_USE_CASES = sorted(n for n, d in usecases.USE_CASES.items()
                        if d.target == "esme" and d.build is not None and d.payload == "dlms" and n not in NOT_BY_DEFAULT)


async def _send(p, use_case, to="poly", **params):
    d = usecases.get(use_case)
    r = await p.send(use_case, to, **params)
    assert r.reply.valid, (use_case, r.reply.mac, r.reply.signature)
    assert r.reply.message.message_code == d.message_code
    return r


@pytest.mark.premises(devices=[POLY], ihd=False)
@pytest.mark.parametrize("use_case", ESME_USE_CASES)
async def test_every_esme_use_case_with_defaults(premises, use_case):
    p = premises
    await p.clock.advance(DAY + 3600)  # a daily read and profile entries exist
    r = await _send(p, use_case)
    assert r.ok, (use_case, r.summary)
    s = r.summary
    values = s.get("values")
    if values is not None:  # a table read: every value read is named after what it is
        assert values and all(isinstance(k, str) and not k.startswith("value_") for k in values), s
        assert "results" not in s  # all succeeded: the values are the summary
    for log in ("entries", "billing_log_change", "billing_log_calendar", "daily_consumption_log"):
        for row in s.get(log, []):  # log rows: named columns, time as ISO text
            assert "time" in row and not any(k.startswith("value_") for k in row), (log, row)


@pytest.mark.premises(ihd=False)
async def test_single_element_meter_refuses_polyphase_and_twin_use_cases(premises):
    p = premises
    assert p.esme.variant == "single"
    for use_case in sorted((esme_config.POLYPHASE_ONLY | esme_config.TWIN_ONLY) & set(usecases.USE_CASES)):
        d, msg, frame = p.headend.build_use_case(use_case, recipient=p.esme.eui)
        with pytest.raises(CommandRejected) as exc:
            await p.headend.exchange(msg, frame, critical=d.critical)
        assert exc.value.code == AlertCode.COMMAND_NOT_SUPPORTED_BY_DEVICE  # ECS100, as GBCS defines
        alert = exc.value.alert
        assert alert.message.message_code == MessageCode.ECS100 and alert.valid
        details = decode_payload(alert.message).body.value[2].value  # the refused command [O RTDS NA_ECS100]
        assert details == d.message_code.to_bytes(2, "big") + msg.originator_counter.to_bytes(8, "big")
        assert p.esme.security_log()[-1]["reason"] == "unsupported"
    r = await _send(p, "ECS26b", "esme")  # single-phase voltage configuration still served
    assert r.ok and set(r.summary["values"]) >= {"sag_threshold", "swell_threshold"}


@pytest.mark.premises(ihd=False)
async def test_payment_mode_balance_and_debt(premises):
    p = premises
    esme = p.esme
    assert esme.payment_mode == "credit"
    r = await _send(p, "ECS03", "esme")  # to prepayment, immediately
    assert r.ok and esme.payment_mode == "prepayment"
    assert (await _send(p, "ECS26j", "esme")).summary["values"]["payment_mode"]["payment_mode"] == "prepayment"
    before = esme.credit_pence
    assert (await _send(p, "ECS04a", "esme", amount=150000)).ok  # + £1.50 (10^-5 GBP units)
    assert esme.credit_pence == pytest.approx(before + 150)
    balance = await _send(p, "ECS82", "esme")
    assert balance.summary["values"]["meter_balance"] == round((before + 150) * 1000)
    regs = await _send(p, "ECS19", "esme")
    assert regs.summary["decrypted"] and regs.summary["meter_balance"] == round((before + 150) * 1000)
    assert (await _send(p, "ECS04b", "esme")).ok and esme.credit_pence == 0
    assert (await _send(p, "ECS07", "esme", time_debt_1=500000)).ok
    assert (await _send(p, "ECS19", "esme")).summary["time_debt_1"] == 500000
    r = await _send(p, "ECS02", "esme")  # back to credit
    assert esme.payment_mode == "credit"
    changes = await _send(p, "ECS20b", "esme")  # both changes snapshot the billing data log
    assert len(changes.summary["billing_log_change"]) == 2


@pytest.mark.premises(ihd=False)
async def test_configuration_written_is_read_back(premises):
    p = premises
    assert (await _send(p, "ECS29a", "esme", sag_threshold=190, swell_threshold=260, average_rms_period=60)).ok
    v = (await _send(p, "ECS26b", "esme")).summary["values"]
    assert v["sag_threshold"] == 190 and v["swell_threshold"] == 260
    assert (await _send(p, "ECS38", "esme", randomised_offset_limit=600)).ok
    assert (await _send(p, "ECS26c", "esme")).summary["values"]["randomised_offset"] == 600
    assert (await _send(p, "ECS39a", "esme", mpan="1900000000001")).ok
    assert (await _send(p, "ECS40", "esme")).summary["values"]["mpan"] == "1900000000001"
    assert (await _send(p, "ECS28a", "esme", threshold_w=5000)).ok
    assert (await _send(p, "ECS27", "esme")).summary["values"]["load_limit_threshold_w"] == 5000
    assert (await _send(p, "ECS81", "esme", lock_supply=True)).ok
    assert (await _send(p, "ECS26m", "esme")).summary["values"]["supply_tamper_state"] is True
    assert (await _send(p, "ECS25a", "esme", bits=(3, 200))).ok
    assert (await _send(p, "ECS25r1", "esme")).summary["values"]["alert_behaviours_supplier"] == {"bits_set": [3, 200]}
    # prepayment configuration: passive values take effect at the activation time
    assert (await _send(p, "ECS08a", "esme", low_credit_threshold=123456)).ok
    assert (await _send(p, "ECS26a", "esme")).summary["ok"]


@pytest.mark.premises(ihd=False)
async def test_max_demand_and_reset(premises):
    p = premises
    await p.clock.advance(DAY)
    md = (await _send(p, "ECS18b", "esme")).summary["values"]
    assert md["max_demand_import_w"] > 0
    assert (await _send(p, "ECS57", "esme", export=False)).ok
    assert (await _send(p, "ECS18b", "esme")).summary["values"]["max_demand_import_w"] == 0


@pytest.mark.premises(ihd=False)
async def test_wrong_shape_is_type_unmatched_and_changes_nothing(premises):
    """A Set whose value does not have the object's shape fails type-unmatched; nothing changes."""
    from gbcs.dlms import Data
    from gbcs.obis import OBIS
    from gbhub.firmware.cosem import TYPE_UNMATCHED, CosemError

    esme = premises.esme
    o = OBIS.SAG_THRESHOLD
    with pytest.raises(CosemError) as exc:
        esme.objects.set(o.class_id, o.obis, 2, Data.octet_string(b"x"))
    assert exc.value.result == TYPE_UNMATCHED
    o = OBIS.NON_DISABLEMENT_SPECIAL_DAYS_PASSIVE  # an array whose elements have the wrong shape
    with pytest.raises(CosemError):
        esme.objects.set(o.class_id, o.obis, 2, Data.array(Data.structure(Data.unsigned(1))))
    assert (await _send(premises, "ECS26b", "esme")).summary["values"]["sag_threshold"] == 200


@pytest.mark.premises(ihd=False)
async def test_future_dated_payment_mode_and_load_limit(premises):
    """ECS03 and ECS28a with an execution date-time: accepted at once, effective at that time
    (with the future-dated execution alert, message code FDA-DLMS); 'never' cancels."""
    import datetime as dt

    from gbcs.catalogue import MessageCode

    p = premises
    esme = p.esme
    when = dt.datetime.fromtimestamp(p.clock.now() + 3600, dt.timezone.utc)
    assert (await _send(p, "ECS03", "esme", execution_date_time=when)).ok
    assert esme.payment_mode == "credit"
    assert (await _send(p, "ECS28a", "esme", threshold_w=4000, execution_date_time=when)).ok
    assert (await _send(p, "ECS27", "esme")).summary["values"]["load_limit_threshold_w"] == 6900
    await p.clock.advance(2 * 3600)
    assert esme.payment_mode == "prepayment"
    assert (await _send(p, "ECS27", "esme")).summary["values"]["load_limit_threshold_w"] == 4000
    alert = await p.headend.wait_alert(lambda a: a.message.message_code == MessageCode.FDA_DLMS)
    assert alert.message.originator == esme.eui
    # cancelled before it is due: nothing changes
    later = dt.datetime.fromtimestamp(p.clock.now() + 3600, dt.timezone.utc)
    assert (await _send(p, "ECS02", "esme", execution_date_time=later)).ok
    assert (await _send(p, "ECS02", "esme", execution_date_time="never")).ok
    await p.clock.advance(2 * 3600)
    assert esme.payment_mode == "prepayment"


@pytest.mark.premises(ihd=False)
async def test_voltage_and_power_event_hooks_show_in_reads(premises):
    """What drives the meter (fault injection) records through the ESME's hooks; ECS23, ECS35e
    and the ECS29e reset see it."""
    from gbcs.catalogue import AlertCode, MessageCode

    p = premises
    esme = p.esme
    assert esme.voltage_settings()["sag"] == 200
    with esme.nvm.transaction():
        esme.count_voltage_event("sag", duration_s=12)
        esme.count_voltage_event("swell")
        esme.set_average_voltage(251.4)
        esme.log_power_event(AlertCode.SUPPLY_OUTAGE_RESTORED)
    v = (await _send(p, "ECS23", "esme")).summary["values"]
    assert (v["sag_count"], v["swell_count"], v["sag_duration_s"], v["average_rms_voltage"]) == (1, 1, 12, 251)
    events = (await _send(p, "ECS35e", "esme")).summary["entries"]
    assert len(events) == 1
    assert (await _send(p, "ECS29e", "esme")).ok
    v = (await _send(p, "ECS23", "esme")).summary["values"]
    assert (v["sag_count"], v["swell_count"]) == (0, 0)


@pytest.mark.premises(ihd=False)
async def test_time_debt_is_recovered_daily_in_prepayment(premises):
    p = premises
    esme = p.esme
    assert (await _send(p, "ECS03", "esme")).ok
    assert (await _send(p, "ECS04a", "esme", amount=2000000)).ok  # £20 credit
    assert (await _send(p, "ECS07", "esme", time_debt_1=10000)).ok  # 10 p owed
    rate = esme.time_debt_rates_pence()["time_debt_1"]
    assert rate == pytest.approx(5.0)  # the factory charge: 5000 x 10^-5 GBP a day
    await p.clock.advance(DAY)
    assert (await _send(p, "ECS19", "esme")).summary["time_debt_1"] == 5000  # half recovered after a day
    await p.clock.advance(2 * DAY)
    assert (await _send(p, "ECS19", "esme")).summary["time_debt_1"] == 0  # never more than owed
    assert esme.prepayment_settings()["low_credit"] == pytest.approx(100.0)


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=40), st.text(max_size=40)))
def test_dlms_parameter_parser_takes_any_input(value):
    """`dlms` parameters (typed by a user): a DLMS value in canonical A-XDR, or ValueError."""
    p = usecases.get("ECS37").param("configurable_period")
    try:
        raw = p.coerce(value)
    except ValueError:
        return
    from gbcs.dlms import decode_data

    assert decode_data(raw).encode() == raw


@pytest.mark.premises(ihd=False)
async def test_configuration_hooks_follow_the_commands(premises):
    """What raises alerts from causes reads the configuration through these."""
    p = premises
    esme = p.esme
    assert (await _send(p, "ECS25a", "esme", bits=(1, 300))).ok
    assert esme.behaviours()["ALERT_BEHAVIOURS_SUPPLIER"] == {1, 300}
    assert (await _send(p, "ECS81", "esme", lock_supply=True)).ok and esme.supply_tamper_lock
    assert (await _send(p, "ECS28a", "esme", threshold_w=3000, restore_supply=True)).ok
    assert esme.load_limit_settings() == {"threshold_w": 3000, "period_s": 300, "restore_period_s": 30, "restore_supply": True}
    with esme.nvm.transaction():
        esme.count_load_limit()
    assert (await _send(p, "ECS27", "esme")).summary["values"]["load_limit_counter"] == 1
    assert (await _send(p, "ECS28b", "esme")).ok
    assert (await _send(p, "ECS27", "esme")).summary["values"]["load_limit_counter"] == 0


@pytest.mark.premises(devices=[POLY], ihd=False, start="2026-01-05T00:00:00Z")
async def test_twin_element_second_element_draws_its_own_energy(premises):
    """The second element of a twin element meter measures an off-peak load (storage heating,
    00:30-07:30 UTC by default): its register, profile column and daily log grow at night only."""
    p = premises
    esme = p.device("poly")
    assert esme.secondary_model is not None and esme.secondary_model.night
    await p.clock.advance(8 * 3600)  # 00:00 -> 08:00: the off-peak window
    night = esme.registers()["secondary_wh"]
    assert night > 15000  # ~7 h at ~3 kW
    await p.clock.advance(8 * 3600)  # 08:00 -> 16:00: nothing on the second element
    assert esme.registers()["secondary_wh"] - night < 100
    r = await _send(p, "ECS17b")
    assert r.ok
    rows = esme.secondary_profile()
    assert sum(wh for _t, wh in rows) == esme.registers()["secondary_wh"] - 0
    await p.clock.advance(8 * 3600 + 60)  # past midnight: the daily log holds the second register
    assert esme.daily_log()[-1]["secondary_wh"] >= night
