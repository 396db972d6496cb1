"""Debt collection completed (0x81A7 / 0x81A8 / 0x81A9) and UTRN lock-out (0x81C4 / 0x81C5), the
shared prepayment model's (`meter.prepayment`) on the GSME — set up by GCS04 and provoked by time,
top-ups and UTRNs typed on the PPMID — and on the ESME: each alert reaches the head-end decoded
over the TCP bridge, changes the state it names, and the state survives a restart."""
from __future__ import annotations

import datetime as dt

import pytest

from gbcs.catalogue import AlertCode
from gbcs.gbz import GbzAlert, decode_gbz
from gbcs.utrn import UtrnStatus, generate_utrn
from test_gas_tariff import _send_at_wake  # (a command the GSME executes at the wake its button starts)

WAKE = 1800
DAY = 86400
START = dt.datetime(2026, 3, 1, 0, 10, tzinfo=dt.timezone.utc)


def _vend(p, counter: int, pence: int, device: bytes) -> str:
    ks, supplier = p.identity.keystore, p.identity.supplier
    return generate_utrn(value=pence, utrn_counter=counter, supplier=supplier, device=device,
                         private_key=ks.private_key(supplier, "pp-ka"), public_key=ks.public_key(device, "ka")).encode()


def _gas_alerts(p, code) -> list[GbzAlert]:
    out = []
    for a in p.headend.received_alerts:
        if a.code == code and a.message.originator == p.gsme.eui:
            body = decode_gbz(a.message.content, cra=a.message.cra, message_code=a.message.message_code)
            assert isinstance(body, GbzAlert) and body.alert_code == code
            out.append(body)
    return out


async def test_time_debts_are_recovered_daily_until_collected_then_recovery_stops(premises_factory, tmp_path):
    """GCS04 (RTDS's recovery settings: debt 1 50 p a day, debt 2 50 p an hour): each midnight
    recovers its rate from credit; the collection that clears debt 2 (£10) on the first day raises
    0x81A8, debt 1 (75 p) on the second 0x81A7; afterwards nothing more is taken, the GPF's mirror
    shows no debt, and a restart brings neither the debts nor the alerts back."""
    p = await premises_factory(tmp_path / "site", start=START, ihd=False, ppmid=False)
    gsme = p.gsme
    gsme.inject_fault("credit", ["100"], {})
    reply = await _send_at_wake(p, "GCS04", debt1=75000, debt2=1000000, debt3=0)
    assert reply.ok
    debts = gsme._prepay()
    assert (debts["time_debt_1"], debts["time_debt_2"], debts["payment_debt"]) == (75, 1000, 0)
    assert debts["debt"] == 1075
    await p.clock.advance(DAY + WAKE)  # past the first midnight, and the wake after it
    debts = gsme._prepay()
    assert debts["time_debt_1"] == pytest.approx(25) and debts["time_debt_2"] == 0
    (alert,) = _gas_alerts(p, AlertCode.DEBT_COLLECTION_COMPLETED_TIME_DEBT_2)
    assert not _gas_alerts(p, AlertCode.DEBT_COLLECTION_COMPLETED_TIME_DEBT_1)
    await p.clock.advance(DAY)
    assert gsme._prepay()["time_debt_1"] == 0 and gsme._prepay()["debt"] == 0
    assert len(_gas_alerts(p, AlertCode.DEBT_COLLECTION_COMPLETED_TIME_DEBT_1)) == 1
    completed = [e for e in gsme.event_log() if e.get("code") == "debt_collection_completed"]
    assert [e["debt"] for e in completed] == ["time_debt_2", "time_debt_1"]
    collected = len([e for e in gsme.event_log() if e.get("code") == "debt_collected"])
    await p.clock.advance(2 * DAY)  # recovery has stopped: nothing more is collected
    assert len([e for e in gsme.event_log() if e.get("code") == "debt_collected"]) == collected
    assert p.gpf.mirror(gsme.eui).get("prepayment")["debt"] == 0
    await p.stop()
    p = await premises_factory(tmp_path / "site", start=START, ihd=False, ppmid=False)
    try:
        await p.clock.advance(DAY + WAKE)
        assert p.gsme._prepay()["time_debt_1"] == 0 and p.gsme._prepay()["time_debt_2"] == 0
        assert not _gas_alerts(p, AlertCode.DEBT_COLLECTION_COMPLETED_TIME_DEBT_1)
    finally:
        await p.stop()


@pytest.mark.premises(ihd=False, ppmid=False)
async def test_payment_debt_takes_its_share_of_each_top_up_until_collected(premises):
    """Debt 3 is payment-based (GCS04: 1 % of each top-up, RTDS's setting): a £10 top-up repays
    10 p of it and credits the rest; the top-up that clears it raises 0x81A9 at the next wake."""
    gsme = premises.gsme
    reply = await _send_at_wake(premises, "GCS04", debt1=0, debt2=0, debt3=15000)  # 15 p
    assert reply.ok and gsme._prepay()["payment_debt"] == 15
    before = gsme.credit_pence
    assert gsme.apply_top_up(_vend(premises, 31, 1000, gsme.eui)).accepted
    assert gsme._prepay()["payment_debt"] == pytest.approx(5)
    assert gsme.credit_pence == pytest.approx(before + 990)
    assert gsme.apply_top_up(_vend(premises, 32, 1000, gsme.eui)).accepted
    assert gsme._prepay()["payment_debt"] == 0
    assert gsme.credit_pence == pytest.approx(before + 990 + 995)
    assert gsme.apply_top_up(_vend(premises, 33, 1000, gsme.eui)).accepted  # nothing left to take
    assert gsme.credit_pence == pytest.approx(before + 990 + 995 + 1000)
    await premises.clock.advance(WAKE)
    assert len(_gas_alerts(premises, AlertCode.DEBT_COLLECTION_COMPLETED_PAYMENT_DEBT)) == 1


async def test_forged_utrns_on_the_ppmid_lock_out_gas_top_ups_for_the_period(premises_factory, tmp_path):
    """Five UTRNs in a row that fail authentication, typed on the PPMID (`gbhub ctl utrn`) for gas
    (PCS01 through the CHF's queue): the fifth suspends manual entry (0x81C4); a genuine UTRN is
    then refused unchecked (0x81C5, REJECTED_KEYPAD_LOCK) and adds nothing; the lock-out survives a
    restart and lifts after `utrn_lockout_seconds`, when the same UTRN goes in."""
    p = await premises_factory(tmp_path / "site", start=START, ihd=False)
    ppmid, gsme = p.ppmid, p.gsme
    assert ppmid.paired_with(gsme.eui)

    async def type_gas(utrn):
        out = await ppmid.enter_utrn(utrn, fuel="gas")
        assert out["result"] == "pending"
        gsme.press_button()
        await p.clock.advance(60)
        return ppmid.last_gas_result

    for counter in range(40, 45):
        forged = _vend(p, counter, 500, p.chf.eui)  # made for another device's key
        assert (await type_gas(forged))["result"] == "REJECTED_INVALID"
    assert gsme.utrn_locked_until == pytest.approx(gsme.device_now() + 3600, abs=120)
    await p.clock.advance(WAKE)
    assert len(_gas_alerts(p, AlertCode.UTRN_NOT_AUTHENTIC)) == 5
    assert len(_gas_alerts(p, AlertCode.UTRN_MANUAL_ENTRY_SUSPENDED)) == 1
    before = gsme.credit_pence
    genuine = _vend(p, 46, 700, gsme.eui)
    assert (await type_gas(genuine))["result"] == "REJECTED_KEYPAD_LOCK"
    assert gsme.credit_pence == pytest.approx(before, abs=50)  # only gas used since
    await p.clock.advance(WAKE)
    assert len(_gas_alerts(p, AlertCode.UTRN_REJECTED_AS_LOCKED_OUT)) == 1
    assert any(e.get("status") == "locked_out" for e in gsme.event_log() if e.get("code") == "top_up_rejected")
    await p.stop()

    p = await premises_factory(tmp_path / "site", start=START, ihd=False)
    try:
        gsme = p.gsme
        assert gsme.utrn_locked_until is not None  # in NVM across the restart
        assert gsme.apply_top_up(genuine).status is UtrnStatus.LOCKED_OUT
        await p.clock.advance(gsme.utrn_locked_until - gsme.device_now() + 1)  # (the restart's clock starts at START)
        assert gsme.utrn_locked_until is None
        before = gsme.credit_pence
        assert gsme.apply_top_up(genuine).accepted  # its counter was not used up while locked out
        assert gsme.credit_pence == pytest.approx(before + 700)
        assert any(e.get("code") == "utrn_entry_resumed" for e in gsme.event_log())
    finally:
        await p.stop()


@pytest.mark.premises(ihd=False, ppmid=False)
async def test_duplicates_and_a_supplier_top_up_do_not_count_towards_the_lock_out(premises):
    """Only UTRNs failing authentication count, in a row: a duplicate (a real token typed again)
    does not, an accepted one resets the count; a lock-out set to 2 attempts by the option."""
    gsme = premises.gsme
    gsme.utrn_lockout_attempts = 2
    utrn = _vend(premises, 50, 100, gsme.eui)
    assert gsme.apply_top_up(utrn).accepted
    for _ in range(3):
        assert gsme.apply_top_up(utrn).status is UtrnStatus.DUPLICATE
    assert gsme.utrn_locked_until is None
    assert gsme.apply_top_up(_vend(premises, 51, 100, premises.chf.eui)).status is UtrnStatus.NOT_AUTHENTIC
    assert gsme.apply_top_up(_vend(premises, 52, 100, gsme.eui)).accepted  # resets the count
    assert gsme.apply_top_up(_vend(premises, 53, 100, premises.chf.eui)).status is UtrnStatus.NOT_AUTHENTIC
    assert gsme.utrn_locked_until is None
    assert gsme.apply_top_up(_vend(premises, 54, 100, premises.chf.eui)).status is UtrnStatus.NOT_AUTHENTIC
    assert gsme.utrn_locked_until is not None


@pytest.mark.premises(ihd=False, ppmid=False, gsme=False)
async def test_the_esme_shares_the_lock_out_and_the_payment_debt_recovery(premises):
    """The same model on the ESME: five forged UTRNs typed on it suspend entry (0x81C4, then
    0x81C5 for a genuine one), reaching the head-end at once; and its payment-based debt (ECS07)
    takes the charge's proportion (factory 50 %) of a top-up, 0x81A9 when it is collected."""
    esme, he = premises.esme, premises.headend
    since = len(he.received_alerts)
    for counter in range(60, 65):
        assert esme.enter_utrn(_vend(premises, counter, 100, premises.chf.eui)).status is UtrnStatus.NOT_AUTHENTIC
    await he.wait_alert(lambda a: a.code == AlertCode.UTRN_MANUAL_ENTRY_SUSPENDED, since=since)
    assert esme.enter_utrn(_vend(premises, 65, 100, esme.eui)).status is UtrnStatus.LOCKED_OUT
    await he.wait_alert(lambda a: a.code == AlertCode.UTRN_REJECTED_AS_LOCKED_OUT, since=since)
    await premises.clock.advance(3601)
    reply = await premises.send("ECS03")  # prepayment mode
    assert reply.ok
    await premises.clock.advance(5)
    reply = await premises.send("ECS07", payment_debt=30000)  # 30 p
    assert reply.ok and esme._prepay()["payment_debt"] == pytest.approx(30)
    before = esme.credit_pence
    assert esme.enter_utrn(_vend(premises, 66, 100, esme.eui)).accepted  # £1: 50 p repays the 30 p
    assert esme._prepay()["payment_debt"] == 0
    assert esme.credit_pence == pytest.approx(before + 70, abs=1)
    await he.wait_alert(lambda a: a.code == AlertCode.DEBT_COLLECTION_COMPLETED_PAYMENT_DEBT, since=since)


@pytest.mark.premises(ihd=False, ppmid=False)
async def test_debts_show_in_the_prepayment_snapshots_and_stay_within_zse_range(premises):
    """GCS04 sent again adds to the debts (RTDS's incremental amount types), never beyond what a
    ZSE int32 carries; a billing snapshot (here after a top-up, GCS15e) carries debts 1-3."""
    gsme = premises.gsme
    for _ in range(3):
        assert (await _send_at_wake(premises, "GCS04", debt1=(1 << 31) - 1, debt2=1000, debt3=2000)).ok
    p = gsme._prepay()
    assert p["time_debt_1"] * 1000 * 3 <= (1 << 31) - 1 and p["time_debt_2"] == 3 and p["payment_debt"] == 6
    assert gsme.apply_top_up(_vend(premises, 70, 500, gsme.eui)).accepted  # 1 % of £5 repays 5 p of debt 3
    snap = gsme.data.get("billing")["snapshots"][-1]
    assert snap["debts"][1:] == [3, pytest.approx(1)]
    await premises.clock.advance(WAKE)
    reply = await _send_at_wake(premises, "GCS15e")
    snapshot = next(c["fields"] for c in reply.summary["components"] if c.get("command") == "PublishPrepaySnapshot")
    assert (snapshot["type2_debt_remaining"], snapshot["type3_debt_remaining"]) == (3000, 1000)
    assert snapshot["accumulated_debt"] == sum(snapshot[f"type{i}_debt_remaining"] for i in (1, 2, 3))
