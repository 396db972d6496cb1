"""ESME events from their causes (meter.esme_events) and fault injection (firmware.faults):
each mandated alert provoked by its fault reaches the head-end with the right code, with the
thresholds of the meter's COSEM configuration (factory values of meter.esme_objects, or as the
use cases set them); alert behaviours (ECS25a: a set bit suppresses its event) suppress or enable
it; fail-next answers like the RTDS ERROR vectors."""
from __future__ import annotations

import pytest

from gbcs.catalogue import AlertCode
from gbhub.firmware.faults import FaultError, UnknownFault
from gbhub.meter.esme_state import NS, SUPPLY_ARMED, SUPPLY_DISABLED, SUPPLY_ENABLED


def _set_bits(bits) -> list[int]:
    """The numbers of the bits set in a behaviour mask (a `BitString`)."""
    data = bits.data
    return [i for i in range(len(data) * 8) if data[i // 8] & (0x80 >> (i % 8))]


async def _alert(premises, code: int, since: int = 0, timeout: float = 5.0):
    return await premises.headend.wait_alert(lambda a: a.code == code and a.valid, since=since, timeout=timeout)


def _codes(premises, since: int = 0) -> list[int]:
    return [a.code for a in premises.headend.received_alerts[since:]]


@pytest.mark.parametrize("kind,code", [
    ("tamper", AlertCode.UNAUTHORISED_PHYSICAL_ACCESS_TAMPER_DETECT),
    ("cover-removed", AlertCode.UNAUTHORISED_PHYSICAL_ACCESS_METER_COVER_REMOVED),
    ("magnet", AlertCode.UNAUTHORISED_PHYSICAL_ACCESS_STRONG_MAGNETIC_FIELD),
    ("terminal-cover", AlertCode.UNAUTHORISED_PHYSICAL_ACCESS_TERMINAL_COVER_REMOVED),
    ("unauthorised-access", AlertCode.UNAUTHORISED_COMMUNICATION_ACCESS_ATTEMPTED),
])
async def test_physical_faults_raise_their_alerts(premises, kind, code):
    result = premises.esme.inject_fault(kind, [], {})
    assert result["alert"] == f"0x{code:04X}"
    alert = await _alert(premises, code)
    assert alert.critical  # 0x8Fxx alerts are signed
    assert any(e["code"] == int(code) for e in premises.esme.security_log())


async def test_cover_closes_after_seconds_on_the_device_clock(premises):
    premises.esme.inject_fault("cover-removed", [], {"seconds": 60})
    await _alert(premises, AlertCode.UNAUTHORISED_PHYSICAL_ACCESS_METER_COVER_REMOVED)
    assert AlertCode.METER_COVER_CLOSED not in _codes(premises)
    await premises.clock.advance(61)
    await _alert(premises, AlertCode.METER_COVER_CLOSED)


async def test_unknown_fault_and_bad_arguments(premises):
    with pytest.raises(UnknownFault, match="has no fault battery"):
        premises.esme.inject_fault("battery", [], {})
    with pytest.raises(FaultError, match="VOLTS must be a number"):
        premises.esme.inject_fault("voltage", ["high"], {})
    with pytest.raises(FaultError, match="takes VOLTS"):
        premises.esme.inject_fault("voltage", [], {})
    with pytest.raises(FaultError, match="single-phase"):
        premises.esme.inject_fault("voltage", ["250"], {"phase": 2})
    with pytest.raises(FaultError, match="takes no --phase"):
        premises.esme.inject_fault("tamper", [], {"phase": 1})
    with pytest.raises(FaultError, match="does not serve ECS99"):
        premises.esme.inject_fault("fail-next", ["ECS99", "hardware-fault"], {})
    with pytest.raises(FaultError, match="not a DLMS result"):
        premises.esme.inject_fault("fail-next", ["ECS17c", "broken"], {})


async def test_sag_and_its_clearing_after_their_periods(premises):
    assert premises.esme.voltage_settings()["sag"] == 200  # factory (ECS29a sets it)
    premises.esme.inject_fault("voltage", ["195"], {"seconds": 120})
    await premises.clock.advance(29)
    assert AlertCode.RMS_VOLTAGE_BELOW_VOLTAGE_SAG_THRESHOLD_VOLTAGE_FALLS_BELOW_FOR_LONGER_THAN_THE_CONFIGURABLE_PERIOD \
        not in _codes(premises)
    await premises.clock.advance(2)
    await _alert(premises, AlertCode.RMS_VOLTAGE_BELOW_VOLTAGE_SAG_THRESHOLD_VOLTAGE_FALLS_BELOW_FOR_LONGER_THAN_THE_CONFIGURABLE_PERIOD)
    await premises.clock.advance(120)  # back to 230 V at 120 s, then 30 s above the sag threshold
    await _alert(premises, AlertCode.RMS_VOLTAGE_BELOW_VOLTAGE_SAG_THRESHOLD_VOLTAGE_RETURNS_ABOVE_FOR_LONGER_THAN_THE_CONFIGURABLE_PERIOD)
    reply = await premises.send("ECS23")  # the sag counter the sag counted up
    assert reply.ok
    from gbcs.obis import OBIS
    assert premises.esme._tariff(OBIS.SAG_COUNTER, 2).value == 1


@pytest.mark.parametrize("volts,codes", [
    (290, [AlertCode.RMS_VOLTAGE_ABOVE_EXTREME_OVER_VOLTAGE_THRESHOLD_VOLTAGE_RISES_ABOVE_FOR_LONGER_THAN_THE_CONFIGURABLE_PERIOD,
           AlertCode.RMS_VOLTAGE_ABOVE_VOLTAGE_SWELL_THRESHOLD_VOLTAGE_RISES_ABOVE_FOR_LONGER_THAN_THE_CONFIGURABLE_PERIOD,
           AlertCode.AVERAGE_RMS_VOLTAGE_ABOVE_AVERAGE_RMS_OVER_VOLTAGE_THRESHOLD]),
    (150, [AlertCode.RMS_VOLTAGE_BELOW_EXTREME_UNDER_VOLTAGE_THRESHOLD_VOLTAGE_FALLS_BELOW_FOR_LONGER_THAN_THE_CONFIGURABLE_PERIOD,
           AlertCode.RMS_VOLTAGE_BELOW_VOLTAGE_SAG_THRESHOLD_VOLTAGE_FALLS_BELOW_FOR_LONGER_THAN_THE_CONFIGURABLE_PERIOD,
           AlertCode.AVERAGE_RMS_VOLTAGE_BELOW_AVERAGE_RMS_UNDER_VOLTAGE_THRESHOLD]),
])
async def test_voltage_extremes_and_averages(premises, volts, codes):
    premises.esme.inject_fault("voltage", [str(volts)], {})
    await premises.clock.advance(3700)  # two average periods (factory 1800 s)
    got = _codes(premises)
    for code in codes:
        assert code in got, f"0x{code:04X} missing from {[hex(c) for c in got if c]}"
    from gbcs.obis import OBIS
    assert premises.esme._tariff(OBIS.AVERAGE_RMS_VOLTAGE, 2).value == volts  # ECS23 reads the average
    premises.esme.inject_fault("voltage", ["230"], {})
    n = len(premises.headend.received_alerts)
    await premises.clock.advance(3700)
    cleared = _codes(premises, n)
    assert len([c for c in cleared if 0x8080 <= c <= 0x809C]) == 3  # each condition clears once


async def test_load_limit_disables_arms_and_restores(premises):
    esme = premises.esme
    # ECS28a: factory threshold and periods (6900 W, 300 s, 30 s), restoring the supply (factory: not)
    assert (await premises.send("ECS28a", restore_supply=True)).ok
    assert esme.load_limit_settings()["restore_supply"]
    result = esme.inject_fault("load", ["30000"], {"seconds": 400})
    assert result["power_threshold"] == "very high"  # above the third power threshold (12 kW)
    assert esme.power_w() == 30000
    await premises.clock.advance(301)
    await _alert(premises, AlertCode.ACTIVE_POWER_IMPORT_ABOVE_LOAD_LIMIT_THRESHOLD)
    await _alert(premises, AlertCode.SUPPLY_DISABLED_THEN_ARMED_LOAD_LIMIT_TRIGGERED)
    assert esme.supply_state == SUPPLY_ARMED
    assert AlertCode.SUPPLY_ARMED not in _codes(premises)
    assert esme.nvm.get(NS, "load_limit_counter") == 1  # what ECS27 reads
    await premises.clock.advance(100)
    await _alert(premises, AlertCode.SUPPLY_ENABLED_AFTER_LOAD_LIMIT_RESTORATION_PERIOD)
    assert esme.supply_state == SUPPLY_ENABLED
    assert esme.power_w() != 30000  # the load fault ended after 400 s


async def test_load_limit_without_restoration_stays_armed(premises):
    esme = premises.esme
    esme.inject_fault("load", ["30000"], {})
    await premises.clock.advance(301)
    await _alert(premises, AlertCode.SUPPLY_DISABLED_THEN_ARMED_LOAD_LIMIT_TRIGGERED)
    await premises.clock.advance(600)
    assert esme.supply_state == SUPPLY_ARMED  # factory ECS28a: the consumer enables it
    assert AlertCode.SUPPLY_ENABLED_AFTER_LOAD_LIMIT_RESTORATION_PERIOD not in _codes(premises)


async def test_outage_and_restore(premises):
    esme = premises.esme
    before = esme.registers()["import_wh"]
    esme.inject_fault("power", ["off"], {})
    assert esme.power_w() == 0
    await premises.clock.advance(60)
    result = esme.inject_fault("power", ["on"], {})
    assert result["alerts"] == ["0x8F35"]
    await _alert(premises, AlertCode.SUPPLY_OUTAGE_RESTORED)
    assert esme.registers()["import_wh"] - before <= 1
    esme.inject_fault("power", ["off"], {"seconds": 240})
    await premises.clock.advance(241)
    await _alert(premises, AlertCode.SUPPLY_OUTAGE_RESTORED_OUTAGE_3_MINUTES)
    codes = [e["code"] for e in esme.power_events()]
    assert codes == [int(AlertCode.SUPPLY_INTERRUPTED), int(AlertCode.SUPPLY_OUTAGE_RESTORED),
                     int(AlertCode.SUPPLY_INTERRUPTED), int(AlertCode.SUPPLY_OUTAGE_RESTORED_OUTAGE_3_MINUTES)]


async def test_outage_survives_a_restart(premises_factory, tmp_path):
    p = await premises_factory(tmp_path / "site")
    p.esme.inject_fault("power", ["off"], {})
    await p.stop()
    p = await premises_factory(tmp_path / "site")
    assert p.esme.power_w() == 0
    p.esme.inject_fault("power", ["on"], {})
    await _alert(p, AlertCode.SUPPLY_OUTAGE_RESTORED)


@pytest.mark.premises(devices=[{"type": "esme", "name": "prepay", "options": {"payment_mode": "prepayment", "credit_pence": 2000}}])
async def test_credit_low_then_disablement(premises):
    esme = premises.device("prepay")
    assert esme.prepayment_settings()["low_credit"] == 100  # factory £1.00 (ECS08a sets it)
    esme.inject_fault("credit", ["0.50"], {})
    await _alert(premises, AlertCode.COMBINED_CREDIT_BELOW_LOW_CREDIT_THRESHOLD)
    assert esme.supply_state == SUPPLY_ENABLED
    result = esme.inject_fault("credit", ["-0.5"], {})
    assert result["supply"] == SUPPLY_DISABLED and esme.credit_pence == -50
    await _alert(premises, AlertCode.CREDIT_BELOW_DISABLEMENT_THRESHOLD)
    esme.inject_fault("credit", ["10"], {})
    assert esme.supply_state == SUPPLY_ARMED


@pytest.mark.premises(devices=[{"type": "esme", "name": "prepay", "options": {"payment_mode": "prepayment", "credit_pence": 150}}])
async def test_consumption_reaches_low_credit(premises):
    esme = premises.device("prepay")
    esme.inject_fault("load", ["5000"], {})
    await premises.clock.advance(1800)  # 2.5 kWh at 25 p/kWh
    await _alert(premises, AlertCode.COMBINED_CREDIT_BELOW_LOW_CREDIT_THRESHOLD)


async def test_ecs25a_suppresses_and_enables_an_alert(premises):
    """Overvoltage average (0x8002) is configurable: ECS25a with its bit (2) set suppresses it (not
    sent, logged as suppressed); ECS25a with no bit set enables it again. Factory: all sent."""
    esme = premises.esme
    assert esme.behaviour_enabled("send", AlertCode.AVERAGE_RMS_VOLTAGE_ABOVE_AVERAGE_RMS_OVER_VOLTAGE_THRESHOLD)
    reply = await premises.send("ECS25a", bits=[AlertCode.AVERAGE_RMS_VOLTAGE_ABOVE_AVERAGE_RMS_OVER_VOLTAGE_THRESHOLD - 0x8000])
    assert reply.ok
    assert not esme.behaviour_enabled("send", AlertCode.AVERAGE_RMS_VOLTAGE_ABOVE_AVERAGE_RMS_OVER_VOLTAGE_THRESHOLD)
    assert esme.behaviour_enabled("send", AlertCode.AVERAGE_RMS_VOLTAGE_BELOW_AVERAGE_RMS_OVER_VOLTAGE_THRESHOLD)
    esme.inject_fault("voltage", ["255"], {})
    await premises.clock.advance(1801)
    assert AlertCode.AVERAGE_RMS_VOLTAGE_ABOVE_AVERAGE_RMS_OVER_VOLTAGE_THRESHOLD not in _codes(premises)
    assert any(e["code"] == "alert_suppressed" for e in esme.event_log())
    esme.inject_fault("tamper", [], {})  # critical alerts are never filtered
    await _alert(premises, AlertCode.UNAUTHORISED_PHYSICAL_ACCESS_TAMPER_DETECT)
    reply = await premises.send("ECS25a", bits=[])
    assert reply.ok
    esme.inject_fault("voltage", ["230"], {})
    await premises.clock.advance(1801)
    await _alert(premises, AlertCode.AVERAGE_RMS_VOLTAGE_BELOW_AVERAGE_RMS_OVER_VOLTAGE_THRESHOLD)


async def test_fail_next_answers_once(premises):
    premises.esme.inject_fault("fail-next", ["ECS17c", "hardware-fault"], {})
    reply = await premises.send("ECS17c")
    assert not reply.ok and reply.summary["result"] == "hardware-fault"
    reply = await premises.send("ECS17c")
    assert reply.ok


# -- ECS25a/a2/a3 against the RTDS vectors ----------------------------------------------------

def _behaviour_rows():
    from conftest import rtds_rows

    return [r for r in rtds_rows() if r["file"].split("/")[0] in ("6.22_ECS25a", "6.22_ECS25a2", "6.22_ECS25a3")
            and "SUCCESS_COMMAND" in r["file"]]


@pytest.mark.parametrize("row", _behaviour_rows(), ids=lambda r: r["file"].split("/")[-1])
def test_behaviour_builders_match_rtds(row):
    from gbcs import usecases
    from gbcs.frame import decode_message
    from gbcs.payload import decode_payload

    message = decode_message(row["bytes"])
    payload = decode_payload(message)
    bits = _set_bits(payload.data[0].value)
    uc = row["file"].split("/")[0].split("_", 1)[1]
    assert usecases.get(uc).build(message.originator_counter, bits=bits) == message.content


@pytest.fixture(scope="module")
def rtds_rig(tmp_path_factory):
    from pathlib import Path

    from conftest import vectors_dir
    from gbhub.tools.premises import ensure_keys
    from gbhub.tools.rig import load_rig

    vectors_dir()
    rig = load_rig(Path(__file__).resolve().parent.parent / "examples" / "rtds.toml")
    rig.data = tmp_path_factory.mktemp("rtds")
    return rig, ensure_keys(rig)


@pytest.mark.parametrize("row", _behaviour_rows(), ids=lambda r: r["file"].split("/")[-1])
async def test_rtds_behaviour_commands_answered_and_applied(row, rtds_rig):
    import dataclasses

    from conftest import rtds_rows
    from gbcs.frame import decode_message
    from gbcs.payload import decode_payload
    from gbhub.tools.premises import Premises

    rig, identity = rtds_rig
    p = Premises(dataclasses.replace(rig, data=None, clock="sim", start=1420070405), tcp=True, sim=True, identity=identity)
    await p.start()
    try:
        sent = decode_message(row["bytes"])
        response = decode_message(await p.headend.send_raw(row["bytes"], timeout=5))
        reference = next(r for r in rtds_rows() if r["file"] == row["file"].replace("_COMMAND_", "_RESPONSE_"))
        expected = decode_payload(decode_message(reference["bytes"]))
        assert response.originator_counter == sent.originator_counter
        assert [r.result for r in decode_payload(response).results] == [r.result for r in expected.results]
        behaviour = {"ECS25a": "send", "ECS25a2": "audible", "ECS25a3": "log"}[row["file"].split("/")[0].split("_", 1)[1]]
        codes = [0x8000 + b for b in _set_bits(decode_payload(sent).data[0].value)]
        assert codes and not any(p.esme.behaviour_enabled(behaviour, c) for c in codes)  # a set bit: off
        assert p.esme.behaviour_enabled(behaviour, AlertCode.CREDIT_ADDED_LOCALLY) or AlertCode.CREDIT_ADDED_LOCALLY in codes
    finally:
        await p.stop()


async def test_settings_set_by_commands_persist(premises_factory, tmp_path):
    """The thresholds a use case sets (ECS29a: the sag threshold) are the COSEM values, kept in
    NVM and in force at once."""
    p = await premises_factory(tmp_path / "site")
    reply = await p.send("ECS29a", average_rms_period=1800, average_over_voltage_threshold=253,
                         average_under_voltage_threshold=216, extreme_over_voltage_threshold=287,
                         extreme_under_voltage_threshold=180, sag_threshold=220, swell_threshold=264)
    assert reply.ok
    await p.stop()
    p = await premises_factory(tmp_path / "site")
    assert p.esme.voltage_settings()["sag"] == 220
    p.esme.inject_fault("voltage", ["215"], {})
    await p.clock.advance(31)
    await _alert(p, AlertCode.RMS_VOLTAGE_BELOW_VOLTAGE_SAG_THRESHOLD_VOLTAGE_FALLS_BELOW_FOR_LONGER_THAN_THE_CONFIGURABLE_PERIOD)


@pytest.mark.premises(devices=[{"type": "esme", "name": "prepay", "options": {
    "payment_mode": "prepayment", "credit_pence": 260, "disablement_threshold_pence": 200}}])
async def test_consumption_reaches_a_disablement_threshold_above_zero(premises):
    esme = premises.device("prepay")
    esme.inject_fault("load", ["2000"], {})
    await premises.clock.advance(7200)  # 1 kWh (25 p) a half hour: below £2 after the third
    await _alert(premises, AlertCode.CREDIT_BELOW_DISABLEMENT_THRESHOLD)
    assert esme.supply_state == SUPPLY_DISABLED and esme.credit_pence > 0


async def test_tamper_locks_the_supply_when_ecs81_says_so(premises):
    """ECS81 (supply tamper state set): a detected tamper disables the supply, 0x81BE."""
    esme = premises.esme
    assert (await premises.send("ECS81", lock_supply=True)).ok
    result = esme.inject_fault("tamper", [], {})
    assert result["supply"] == SUPPLY_DISABLED and esme.supply_state == SUPPLY_DISABLED
    await _alert(premises, AlertCode.SUPPLY_DISABLED_THEN_LOCKED_SUPPLY_TAMPER_STATE_CAUSE)


async def test_a_new_measurement_period_applies_at_once(premises):
    """ECS29a's average RMS measurement period is in force from the command on."""
    reply = await premises.send("ECS29a", average_rms_period=60, average_over_voltage_threshold=253,
                                average_under_voltage_threshold=216, extreme_over_voltage_threshold=287,
                                extreme_under_voltage_threshold=180, sag_threshold=200, swell_threshold=264)
    assert reply.ok
    premises.esme.inject_fault("voltage", ["255"], {})
    await premises.clock.advance(125)
    await _alert(premises, AlertCode.AVERAGE_RMS_VOLTAGE_ABOVE_AVERAGE_RMS_OVER_VOLTAGE_THRESHOLD)


async def test_outage_in_the_power_event_log_ecs35e_reads(premises):
    premises.esme.inject_fault("power", ["off"], {})
    await premises.clock.advance(10)
    premises.esme.inject_fault("power", ["on"], {})
    reply = await premises.send("ECS35e")
    assert reply.ok
    assert [e["event_code"] for e in reply.summary["entries"]] == [int(AlertCode.SUPPLY_INTERRUPTED),
                                                                   int(AlertCode.SUPPLY_OUTAGE_RESTORED)]
    assert [e["code"] for e in premises.esme.power_events()] == [int(AlertCode.SUPPLY_INTERRUPTED),
                                                                 int(AlertCode.SUPPLY_OUTAGE_RESTORED)]


async def test_top_up_above_the_esme_maximum_credit_threshold_is_refused(premises, gbhub_identity):
    """ECS08a's maximum credit threshold (factory £50) and maximum meter balance (£100): an
    authentic UTRN above either adds nothing (0x8F5B / 0x8F47)."""
    from gbcs.utrn import UtrnStatus, ValueClass, generate_utrn

    esme = premises.esme
    ks = gbhub_identity.keystore
    limits = esme.top_up_limits()
    assert limits == (5000.0, 10000.0)

    def utrn(pounds, counter):
        return generate_utrn(value=pounds, utrn_counter=counter, supplier=gbhub_identity.supplier, device=esme.eui,
                             private_key=ks.private_key(gbhub_identity.supplier, "pp-ka"),
                             public_key=ks.public_key(esme.eui, "ka"), value_class=ValueClass.POUNDS).encode()

    before = esme.credit_pence
    assert esme.enter_utrn(utrn(60, 31)).status is UtrnStatus.ABOVE_MAX_CREDIT
    esme.inject_fault("credit", ["80"], {})
    assert esme.enter_utrn(utrn(40, 32)).status is UtrnStatus.ABOVE_MAX_BALANCE
    assert esme.credit_pence == 8000 and before != 8000
    await _alert(premises, AlertCode.UTRN_EXCEEDS_MAXIMUM_CREDIT_THRESHOLD)
    await _alert(premises, AlertCode.CREDIT_WOULD_CAUSE_METER_BALANCE_TO_EXCEED_MAXIMUM_METER_BALANCE_THRESHOLD)
