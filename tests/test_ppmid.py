"""The PPMID: joined to the ESME by commissioning (CS03A1 / CS03A2), shows its credit, tops it up
with a typed UTRN (ZSE ConsumerTopUp), activates emergency credit, refuses duplicates and forged
UTRNs with the meter's alerts; PCS01 / PCS02 built and MACed for a GSME (gbcs level)."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gbcs.catalogue import AlertCode, MessageCode
from gbcs.codec import DecodeError
from gbcs.utrn import Utrn, ValueClass, check_digit, generate_utrn

from gbhub.meter.ppmid import parse_utrn_text

PPMID = {"type": "ppmid"}


def vend(premises, counter: int, pence: int, device=None):
    ks = premises.identity.keystore
    supplier = premises.identity.supplier
    device = device or premises.esme.eui
    return generate_utrn(value=pence, utrn_counter=counter, supplier=supplier, device=device,
                         private_key=ks.private_key(supplier, "pp-ka"), public_key=ks.public_key(device, "ka")).encode()


def alerts_with(premises, code, since=0):
    from gbcs.dlms import DataNotification  # noqa: F401
    return [a for a in premises.headend.received_alerts[since:] if a.code == code]


@pytest.mark.premises(devices=[PPMID])
async def test_ppmid_joins_esme_and_shows_credit(premises):
    ppmid, esme = premises.ppmid, premises.esme
    assert esme.in_device_log(ppmid.eui) and ppmid.paired_with(esme.eui)
    await premises.clock.advance(1)
    shown = await ppmid.poll_now()
    assert shown.status == "ok" and shown.electricity.credit == esme.credit_pence


@pytest.mark.premises(devices=[PPMID])
async def test_ppmid_top_up_duplicate_and_forged(premises):
    ppmid, esme = premises.ppmid, premises.esme
    before = esme.credit_pence
    utrn = vend(premises, 7, 1250)
    out = await ppmid.enter_utrn(" ".join(utrn[i:i + 4] for i in range(0, 20, 4)))
    assert out["accepted"] and out["amount"] == 1250 and out["fuel"] == "electricity"
    assert esme.credit_pence == pytest.approx(before + 1250)
    since = len(premises.headend.received_alerts)
    again = await ppmid.enter_utrn(utrn)
    assert not again["accepted"] and again["result"] == "REJECTED_DUPLICATE"
    await premises.headend.wait_alert(lambda a: a.code == AlertCode.DUPLICATE_UTRN_ENTERED, since=since)
    forged = vend(premises, 8, 1250, device=premises.chf.eui)  # made for another device's key
    out = await ppmid.enter_utrn(forged)
    assert not out["accepted"] and out["result"] == "REJECTED_INVALID"
    await premises.headend.wait_alert(lambda a: a.code == AlertCode.UTRN_NOT_AUTHENTIC, since=since)
    assert esme.credit_pence == pytest.approx(before + 1250)
    mistyped = utrn[:-1] + str((int(utrn[-1]) + 1) % 10)
    assert (await ppmid.enter_utrn(mistyped))["result"] == "invalid"
    assert [r["result"] for r in ppmid.results][-3:] == ["ACCEPTED_SUPPLY_ENABLED", "REJECTED_DUPLICATE", "REJECTED_INVALID"]
