"""Future-dated execution and cancellation (firmware.future): the RTDS FUTURE_DATED and
CANCELLATION vectors sent unchanged to an RTDS rig, and future-dated commands from the head-end
firing at the simulated time, surviving a restart, and cancelled with the "never" date."""
from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest

from conftest import rtds_rows, vectors_dir
from gbcs.catalogue import AlertCode, MessageCode
from gbcs.dlms import AccessRequest, Data, DataNotification, RequestSpec
from gbcs.frame import decode_message
from gbcs.obis import OBIS
from gbcs.payload import decode_payload

FOLDER = "1.2.1_ECS01b/ECS01b_1.2.1_"
DUE = dt.datetime(2030, 1, 15, 9, 0, tzinfo=dt.timezone.utc)  # the vectors' execution time
FDA = AlertCode.FUTURE_DATE_HAN_INTERFACE_COMMAND_SUCCESSFULLY_ACTIONED


def _row(name: str) -> dict:
    rows = {r["file"]: r for r in rtds_rows()}
    if not rows:
        pytest.skip("no RTDS vectors")
    return rows[FOLDER + name + "_GBCS.HEX"]


@pytest.fixture(scope="module")
def rtds_rig(tmp_path_factory):
    vectors_dir()
    from gbhub.tools.premises import ensure_keys
    from gbhub.tools.rig import load_rig

    rig = load_rig(Path(__file__).resolve().parent.parent / "examples" / "rtds.toml")
    rig.data = tmp_path_factory.mktemp("rtds")
    return rig, ensure_keys(rig)


async def _rtds_premises(rtds_rig):
    from gbhub.tools.premises import Premises

    rig, identity = rtds_rig
    rig = dataclasses.replace(rig, data=None, clock="sim", start=(DUE - dt.timedelta(hours=1)).timestamp())
    p = Premises(rig, tcp=True, sim=True, identity=identity)
    await p.start()
    return p


def _fdas(p, since=0):
    return [a for a in p.headend.received_alerts[since:] if a.message.message_code == MessageCode.FDA_DLMS]


async def test_rtds_future_dated_then_fda_alerts_like_the_reference(rtds_rig):
    p = await _rtds_premises(rtds_rig)
    try:
        command = _row("FUTURE_DATED_TOU_BLOCK_SUCCESS_COMMAND")
        reference = decode_payload(decode_message(_row("FUTURE_DATED_TOU_BLOCK_SUCCESS_RESPONSE")["bytes"]))
        response = decode_payload(decode_message(await p.headend.send_raw(command["bytes"], timeout=5)))
        assert [(r.kind, r.result) for r in response.results] == [(r.kind, r.result) for r in reference.results]
        assert len(p.esme.pending_activations()) == 2
        assert p.esme.unit_price_pence(1) == pytest.approx(25.0)  # not yet
        await p.clock.advance(3601)
        await p.headend.wait_alert(lambda a: a.message.message_code == MessageCode.FDA_DLMS, timeout=5)
        fdas = _fdas(p)
        refs = [decode_message(_row(f"8F66_FUTURE_DATED_TOU_BLOCK_SUCCESS_ALERT_{n}")["bytes"])
                for n in ("STANDING_CHARGE", "PRICE_MATRIX")]
        assert sorted(map(repr, (decode_payload(a.message).details for a in fdas))) == sorted(
            map(repr, (decode_payload(r).details for r in refs)))
        for alert in fdas:
            assert alert.code == FDA and alert.critical
            got, ref = decode_payload(alert.message), decode_payload(refs[0])
            assert isinstance(got, DataNotification)
            assert [e.type for e in got.body.value] == [e.type for e in ref.body.value]
        assert not p.esme.pending_activations()
        assert p.esme.unit_price_pence(1) != pytest.approx(25.0)  # the new prices apply
    finally:
        await p.stop()


async def test_rtds_cancellation(rtds_rig):
    p = await _rtds_premises(rtds_rig)
    try:
        await p.headend.send_raw(_row("FUTURE_DATED_TOU_BLOCK_SUCCESS_COMMAND")["bytes"], timeout=5)
        assert len(p.esme.pending_activations()) == 2
        reference = decode_payload(decode_message(_row("CANCELLATION_TOU_BLOCK_SUCCESS_RESPONSE")["bytes"]))
        response = decode_payload(decode_message(
            await p.headend.send_raw(_row("CANCELLATION_TOU_BLOCK_SUCCESS_COMMAND")["bytes"], timeout=5)))
        assert [r.result for r in response.results] == [r.result for r in reference.results]
        assert not p.esme.pending_activations()
        await p.clock.advance(7200)
        assert not _fdas(p)
        assert p.esme.unit_price_pence(1) == pytest.approx(25.0)
    finally:
        await p.stop()


async def test_future_dated_tariff_survives_a_restart_and_fires(premises_factory, tmp_path):
    start = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    p = await premises_factory(tmp_path / "site", start=start)
    due = start + dt.timedelta(hours=2)
    reply = await p.send("ECS01b", tou_prices=[18000], execution_date_time=due)
    assert reply.ok
    assert p.esme.unit_price_pence(1) == pytest.approx(25.0)
    await p.stop()
    p = await premises_factory(tmp_path / "site", start=start)
    assert len(p.esme.pending_activations()) == 2  # in NVM across the restart
    n = len(p.headend.received_alerts)
    await p.clock.advance(2 * 3600 + 1)
    alert = await p.headend.wait_alert(lambda a: a.message.message_code == MessageCode.FDA_DLMS, since=n)
    assert alert.code == FDA
    assert p.esme.unit_price_pence(1) == pytest.approx(18.0)


async def test_future_dated_cancelled_with_never(premises):
    due = premises.clock.now() + 3600
    when = dt.datetime.fromtimestamp(due, dt.timezone.utc)
    assert (await premises.send("ECS01b", tou_prices=[18000], execution_date_time=when)).ok
    assert (await premises.send("ECS01b", tou_prices=[1], execution_date_time="never")).ok
    assert not premises.esme.pending_activations()
    await premises.clock.advance(7200)
    assert not _fdas(premises)
    assert premises.esme.unit_price_pence(1) == pytest.approx(25.0)


async def test_execution_times_within_one_command_must_match(premises):
    """GB081: every future date-time in one command is the same; else the command is refused
    (malformed, 0x8F1E) and nothing is scheduled [I]."""
    from gbhub.wan.headend import CommandRejected

    t1 = Data.timestamp(dt.datetime.fromtimestamp(premises.clock.now() + 3600, dt.timezone.utc))
    t2 = Data.timestamp(dt.datetime.fromtimestamp(premises.clock.now() + 7200, dt.timezone.utc))
    he = premises.headend
    counter = he.next_counter()
    content = AccessRequest.build(counter, [RequestSpec.set(OBIS.STANDING_CHARGE.class_id, OBIS.STANDING_CHARGE.obis, 7),
                                            RequestSpec.set(OBIS.UNIT_CHARGE.class_id, OBIS.UNIT_CHARGE.obis, 7)],
                                  [t1, t2]).encode()
    _, frame = he.build_command(recipient=premises.esme.eui, message_code=MessageCode.ECS01b, content=content,
                                critical=True, counter=counter)
    with pytest.raises(CommandRejected) as err:
        await he.send_raw(frame, timeout=5)
    assert err.value.code == AlertCode.INTEGRITY_CHECK_OF_CONTENT_OR_FORMAT_OF_COMMAND_FAILED
    assert not premises.esme.pending_activations()


# -- the ASN.1 path: FUTURE_ACTIONS (as CS06 / CS02* use it) ------------------------------------

async def test_asn1_future_action_accepted_then_alerts_and_cancels(premises):
    """A device class with a future-dated ASN.1 use case: "command accepted" at once, the action at
    its time with the use case's own FDA (0x00CA, 0x8F66 / 0x8F67), cancellation by the never date,
    persistence in NVM. (The firmware issue serves CS06 for real; this one shows the mechanism.)"""
    from gbcs.asn1 import (
        CANCELLATION_DATE_TIME,
        ActivateFirmware,
        ActivateFirmwareAlert,
        ActivateFirmwareCode,
        ActivateFirmwareOutcome,
        CommandAccepted,
        decode_asn1,
    )
    from gbcs.frame import CRA
    from gbhub.firmware.device_log import command_payload
    from gbhub.firmware.future import FdaOutcome
    from gbhub.firmware.gbcs_device import call, handlers
    from gbhub.firmware.nvm import Nvm
    from gbhub.meter import Esme

    def activate_later(device, message):
        command = command_payload(message, ActivateFirmware)
        if command.is_cancellation:
            device.future.cancel("cs06")
        else:
            device.future.schedule("cs06", command.execution_date_time.timestamp(), "activate",
                                   {"execution": command.execution_date_time.timestamp()})
        return CommandAccepted().encode()

    def activated(device, entry):
        ok = device.nvm.get("test", "image") is not None
        execution = dt.datetime.fromtimestamp(entry["execution"], dt.timezone.utc)
        outcome = ActivateFirmwareOutcome(code=ActivateFirmwareCode.SUCCESS if ok else ActivateFirmwareCode.NO_IMAGE_HELD,
                                          firmware_version=device.firmware_version)
        return FdaOutcome(ok, MessageCode.FDA_CS06, content_for=lambda code: ActivateFirmwareAlert(
            alert_code=code, execution_date_time=execution, originator_counter=entry["counter"], outcome=outcome).encode())

    class FirmwareEsme(Esme):
        HANDLERS = handlers(*(h for code, h in Esme.HANDLERS.items() if code != MessageCode.CS06),
                            call(MessageCode.CS06, activate_later))
        FUTURE_ACTIONS = {"activate": activated}

    real = premises.esme
    nvm = Nvm(None)
    device = FirmwareEsme(real.eui, clock=premises.clock, credentials=real.credentials, trust=real.trust, nvm=nvm)
    up: list[bytes] = []

    async def send(frame: bytes) -> None:
        up.append(frame)

    device.send_gbcs = send
    await device.start()
    he = premises.headend

    async def cs06(when):
        counter = he.next_counter()
        content = ActivateFirmware(manufacturer_image_hash=bytes(32), originator_counter=counter,
                                   execution_date_time=when).encode()
        _, frame = he.build_command(recipient=real.eui, message_code=MessageCode.CS06, content=content,
                                    critical=True, counter=counter)
        response = decode_message(await device.process(frame))
        assert isinstance(decode_asn1(response.content, message_code=MessageCode.CS06, cra=CRA.RESPONSE), CommandAccepted)
        return counter

    def fdas():
        return [decode_message(f) for f in up if decode_message(f).message_code == MessageCode.FDA_CS06]

    try:
        when = dt.datetime.fromtimestamp(premises.clock.now() + 600, dt.timezone.utc).replace(microsecond=0)
        counter = await cs06(when)
        await device.power_off()  # kept in NVM
        await device.start()
        await premises.clock.advance(601)
        (alert,) = fdas()
        body = decode_asn1(alert.content, message_code=MessageCode.FDA_CS06, cra=CRA.ALERT)
        assert body.alert_code == AlertCode.FUTURE_DATE_HAN_INTERFACE_COMMAND_NOT_SUCCESSFULLY_ACTIONED  # no image
        assert body.originator_counter == counter and body.execution_date_time == when
        assert alert.signature  # FDAs are signed
        # with an image, 0x8F66; a cancelled one never runs
        nvm.scope(real.eui_hex).put("test", "image", 1)
        when = dt.datetime.fromtimestamp(premises.clock.now() + 600, dt.timezone.utc).replace(microsecond=0)
        await cs06(when)
        await premises.clock.advance(601)
        assert decode_asn1(fdas()[-1].content, message_code=MessageCode.FDA_CS06, cra=CRA.ALERT).alert_code == FDA
        await cs06(dt.datetime.fromtimestamp(premises.clock.now() + 600, dt.timezone.utc).replace(microsecond=0))
        await cs06(CANCELLATION_DATE_TIME)
        assert not device.future.pending()
        await premises.clock.advance(601)
        assert len(fdas()) == 2
    finally:
        await device.stop()


def test_future_flag_only_where_gbcs_allows_an_execution_date_time():
    from gbcs import catalogue
    from gbhub.firmware.gbcs_device import dlms

    allowed = sorted(m.name for m in catalogue.MessageCode if catalogue.device_future_dated(m))
    for uc in ("ECS01a", "ECS01b", "ECS02", "ECS08a", "ECS28a", "ECS46c", "CS02bSupplierBySupplier", "CS06"):
        assert uc in allowed  # tariff, price, payment mode, prepayment, load limiting, ALC, credentials, firmware
    assert "ECS17b" not in allowed
    with pytest.raises(ValueError, match="does not let a device future-date"):
        dlms(MessageCode.ECS17b, future=True)
