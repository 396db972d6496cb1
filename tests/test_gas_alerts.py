"""The GSME's meter-integrity alerts (README "Gas", `meter.gsme` faults): each one provoked through
`gbhub ctl fault gsme ...` (`inject_fault`) or its natural cause, reaching the head-end decoded, and
changing the state it names."""
from __future__ import annotations

import pytest

from gbcs.catalogue import AlertCode, MessageCode
from gbcs.gbz import GbzAlert, MeterIntegrityIssue, decode_gbz

WAKE = 1800
pytestmark = pytest.mark.premises(ihd=False, ppmid=False)


def _alerts(premises, code):
    """The alerts with `code` the head-end received (verified), decoded as GBZ alerts."""
    out = []
    for a in premises.headend.received_alerts:
        if a.code == code:
            m = a.message
            body = decode_gbz(m.content, cra=m.cra, message_code=m.message_code)
            assert isinstance(body, GbzAlert) and body.alert_code == code
            out.append((m, body))
    return out


async def _settle(premises, seconds=5):
    await premises.clock.advance(seconds)


@pytest.mark.parametrize("kind, args, key, value, code", [
    ("tilt", [], "tilt", True, AlertCode.TILT_TAMPER),
    ("tilt", ["end"], "tilt", False, AlertCode.TILT_TAMPER_ENDED),
    ("battery-cover", ["removed"], "battery_cover", "removed", AlertCode.UNAUTHORISED_PHYSICAL_ACCESS_BATTERY_COVER_REMOVED),
    ("battery-cover", ["closed"], "battery_cover", "closed", AlertCode.BATTERY_COVER_CLOSED),
    ("magnet", ["on"], "magnet", True, AlertCode.UNAUTHORISED_PHYSICAL_ACCESS_STRONG_MAGNETIC_FIELD),
    ("magnet", ["off"], "magnet", False, AlertCode.STRONG_MAGNETIC_FIELD_REMOVED),
    ("flow-sensor", ["air"], "flow_sensor", "air", AlertCode.FLOW_SENSOR_DETECTS_AIR_IN_GAS_FLOW),
    ("flow-sensor", ["reverse"], "flow_sensor", "reverse", AlertCode.FLOW_SENSOR_DETECTS_REVERSE_FLOW_OF_GAS),
])
async def test_sensor_alerts_reach_the_head_end_and_set_the_state(premises, kind, args, key, value, code):
    gsme = premises.gsme
    result = gsme.inject_fault(kind, args, {})
    assert result["alert"] == f"0x{code:04X}"
    await _settle(premises)
    assert _alerts(premises, code)
    assert gsme.data.get("gas")[key] == value
    await premises.clock.advance(WAKE)  # the GPF's mirror has it after the next push
    assert premises.gpf.mirror(gsme.eui).get("gas")[key] == value
    if code & 0xFF00 == 0x8F00:  # unauthorised physical access: signed, and in the security log
        assert all(m.signature for m, _ in _alerts(premises, code))
        assert any(e.get("alert") == f"{code:04X}" for e in gsme.security_log())


async def test_sensor_faults_refuse_bad_arguments(premises):
    with pytest.raises(ValueError):
        premises.gsme.inject_fault("magnet", ["sideways"], {})
    with pytest.raises(ValueError):
        premises.gsme.inject_fault("integrity", ["melted"], {})
    with pytest.raises(ValueError):
        premises.gsme.inject_fault("valve", [], {})


@pytest.mark.parametrize("reason, number", [("ram", 4), ("measurement", 8), ("7", 7)])
async def test_meter_integrity_warning_0x81a0_in_message_code_0x00f2(premises, reason, number):
    gsme = premises.gsme
    assert gsme.inject_fault("integrity", [reason], {})["reason"] == number
    await _settle(premises)
    ((message, alert),) = _alerts(premises, AlertCode.SMART_METER_INTEGRITY_ISSUE_WARNING)
    assert message.message_code == MessageCode.MeterIntegrityWarning_GSME
    assert alert.body == MeterIntegrityIssue(number)
    assert gsme.data.get("gas")["integrity"]["reason"] == number


async def test_excess_gas_flow_beyond_meter_capacity(premises):
    gsme = premises.gsme
    r = gsme.inject_fault("flow", [str(gsme.max_flow_lph + 1000)], {})
    assert r["excess"]
    await _settle(premises)
    assert len(_alerts(premises, AlertCode.EXCESS_GAS_FLOW_BEYOND_METER_CAPACITY)) == 1
    assert gsme.data.get("gas")["excess_flow"]
    gsme.inject_fault("flow", ["0"], {})
    assert not gsme.data.get("gas")["excess_flow"]


async def test_new_battery_resets_the_remaining_capacity(premises):
    gsme = premises.gsme
    gsme.inject_fault("battery", ["5"], {})
    await premises.clock.advance(WAKE)
    assert _alerts(premises, AlertCode.LOW_BATTERY_CAPACITY)
    gsme.inject_fault("battery", ["100"], {})
    await premises.clock.advance(WAKE)
    assert _alerts(premises, AlertCode.REMAINING_BATTERY_CAPACITY_RESET)
    assert gsme.data.get("gas")["battery"] == pytest.approx(100, abs=0.01)


async def test_power_supply_loss_is_reported_after_power_returns(premises):
    gsme = premises.gsme
    gsme.inject_fault("power", ["off"], {})
    await premises.clock.advance(1)
    assert gsme.state == "off"
    gsme.inject_fault("power", ["on"], {})
    await premises.clock.advance(WAKE + 5)
    assert len(_alerts(premises, AlertCode.GSME_POWER_SUPPLY_LOSS)) == 1


async def test_a_stuck_valve_fails_to_close_and_to_open(premises):
    gsme = premises.gsme
    gsme.inject_fault("valve", ["stuck"], {})
    gsme.inject_fault("flow", ["20000"], {})  # uncontrolled flow: would close it
    await _settle(premises)
    assert gsme.supply_state == "enabled"
    assert _alerts(premises, AlertCode.SUPPLY_DISCONNECT_FAILURE)
    gsme.inject_fault("flow", ["0"], {})
    gsme.inject_fault("valve", ["free"], {})
    gsme.inject_fault("flow", ["20000"], {})  # closes then arms
    await _settle(premises)
    assert gsme.supply_state == "armed"
    gsme.inject_fault("flow", ["0"], {})
    gsme.inject_fault("valve", ["stuck"], {})
    gsme.press()  # the consumer tries to open the armed valve
    await _settle(premises)
    assert gsme.supply_state == "armed"
    assert _alerts(premises, AlertCode.SUPPLY_CONNECT_FAILURE)


async def test_three_lost_searches_are_reported_when_the_chf_is_found_again(premises):
    gsme = premises.gsme
    await premises.clock.advance(WAKE)
    premises.air.set_link(gsme.eui, False)
    await premises.clock.advance(3 * WAKE)
    assert not _alerts(premises, AlertCode.THREE_LOST_GSME_SEARCHES_FAILED)
    premises.air.set_link(gsme.eui, True)
    await premises.clock.advance(WAKE)
    assert len(_alerts(premises, AlertCode.THREE_LOST_GSME_SEARCHES_FAILED)) == 1
    await premises.clock.advance(WAKE)
    assert len(_alerts(premises, AlertCode.THREE_LOST_GSME_SEARCHES_FAILED)) == 1


# -- the GPF's gas mirror on the HAN, read by the PPMID ------------------------------------------
@pytest.mark.premises(ihd=False)
async def test_the_ppmid_shows_gas_credit_from_the_gpf_mirror(premises):
    from gbhub.firmware.gas_data import MIRROR_ENDPOINT

    ppmid, gsme, chf = premises.ppmid, premises.gsme, premises.chf
    assert ppmid.gas_source == (chf.eui, MIRROR_ENDPOINT)
    await premises.clock.advance(WAKE)  # a push fills the mirror
    shown = await ppmid.poll_now()
    assert shown.gas.credit == pytest.approx(round(gsme.credit_pence), abs=1)
    assert shown.gas.prepayment is True
    # the GSME spends: the next push, then the next poll, show it; no PCS01 involved
    gsme.inject_fault("flow", ["3000"], {})
    await premises.clock.advance(2 * WAKE)
    shown = await ppmid.poll_now()
    assert shown.gas.credit == pytest.approx(round(premises.gpf.mirror(gsme.eui).get("prepayment")["credit"]), abs=1)
    assert shown.gas.credit < 1000


@pytest.mark.premises(ihd=False, ppmid=False)
async def test_the_gas_mirror_refuses_readers_outside_the_chf_device_log(premises):
    from gbcs.zcl import Cluster
    from gbhub.firmware.gas_data import MIRROR_ENDPOINT
    from gbhub.han.zcl_server import ZclClient, ZclStatusError
    from gbhub.han.transport import ClusterDispatch

    dispatch = ClusterDispatch()
    stranger = bytes.fromhex("0011223344556677")
    port = premises.air.attach(stranger, dispatch)
    client = ZclClient(port, dispatch, clock=premises.clock, timeout=2.0, retries=0)
    with pytest.raises(ZclStatusError):
        await client.read_attributes(premises.chf.eui, Cluster.PREPAYMENT, (0x0001,), dst_endpoint=MIRROR_ENDPOINT)
    assert any(e.get("eui") == "0011223344556677" for e in premises.gpf.security_log())


async def test_prepayment_credit_alerts_from_the_credit_fault_and_consumption(premises):
    """Falling credit on a prepayment GSME: below the low credit warning level (0x810D) and the
    emergency credit threshold (0x8119) from `ctl fault gsme credit`; emergency credit taken, then
    used up by gas flowing (0x81AA) closes the valve (0x8F0F); all reach the head-end at a wake."""
    gsme = premises.gsme
    assert gsme._prepay()["mode"] == "prepayment"
    result = gsme.inject_fault("credit", ["4.00"], {})  # from £10: below £5 (low credit, EC threshold)
    assert {"0x810D", "0x8119"} <= set(result["alerts"])
    await premises.clock.advance(WAKE)
    assert _alerts(premises, AlertCode.COMBINED_CREDIT_BELOW_LOW_CREDIT_THRESHOLD)
    assert _alerts(premises, AlertCode.EMERGENCY_CREDIT_HAS_BECOME_AVAILABLE)
    gsme.inject_fault("credit", ["0.01"], {})
    assert gsme.activate_emergency_credit()
    gsme.inject_fault("flow", ["5000"], {})  # ~56 kWh an hour at 6 p: £5 of emergency credit in ~1.5 h
    await premises.clock.advance(3 * WAKE + 5)
    assert gsme._prepay()["ec_remaining"] <= 0
    assert gsme.supply_state == "disabled"
    await premises.clock.advance(WAKE)
    assert _alerts(premises, AlertCode.EMERGENCY_CREDIT_EXHAUSTED)
    assert _alerts(premises, AlertCode.CREDIT_BELOW_DISABLEMENT_THRESHOLD)


async def test_credit_fault_refuses_bad_amounts(premises):
    with pytest.raises(ValueError):
        premises.gsme.inject_fault("credit", ["lots"], {})
    with pytest.raises(ValueError):
        premises.gsme.inject_fault("credit", [], {})


async def test_top_up_above_the_maximum_credit_or_balance_is_refused(premises, gbhub_identity):
    """An authentic UTRN above the maximum credit per top-up (0x8F5B) or one that would take the
    balance above the maximum meter balance (0x8F47; GCS05 sets both, factory £250) adds nothing,
    and does not use its counter up: it is accepted once the balance allows it."""
    from gbcs.utrn import UtrnStatus, ValueClass, generate_utrn

    gsme = premises.gsme
    ks = gbhub_identity.keystore

    def utrn(pounds, counter):
        return generate_utrn(value=pounds, utrn_counter=counter, supplier=gbhub_identity.supplier, device=gsme.eui,
                             private_key=ks.private_key(gbhub_identity.supplier, "pp-ka"),
                             public_key=ks.public_key(gsme.eui, "ka"), value_class=ValueClass.POUNDS).encode()

    before = gsme._prepay()["credit"]
    check = gsme.apply_top_up(utrn(300, 21))
    assert check.status is UtrnStatus.ABOVE_MAX_CREDIT and gsme._prepay()["credit"] == before
    gsme.inject_fault("credit", ["100"], {})
    big = utrn(200, 22)
    check = gsme.apply_top_up(big)
    assert check.status is UtrnStatus.ABOVE_MAX_BALANCE and gsme._prepay()["credit"] == 10000
    gsme.inject_fault("credit", ["10"], {})
    assert gsme.apply_top_up(big).accepted and gsme._prepay()["credit"] == 21000
    await premises.clock.advance(WAKE)
    assert _alerts(premises, AlertCode.UTRN_EXCEEDS_MAXIMUM_CREDIT_THRESHOLD)
    assert _alerts(premises, AlertCode.CREDIT_WOULD_CAUSE_METER_BALANCE_TO_EXCEED_MAXIMUM_METER_BALANCE_THRESHOLD)
