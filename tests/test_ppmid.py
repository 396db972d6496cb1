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


@pytest.mark.premises(devices=[PPMID])
async def test_ppmid_joins_esme_and_shows_credit(premises):
    ppmid, esme = premises.ppmid, premises.esme
    assert esme.in_device_log(ppmid.eui) and ppmid.paired_with(esme.eui)
    await premises.clock.advance(1)
    shown = await ppmid.poll_now()
    assert shown.status == "ok" and shown.electricity.credit == esme.credit_pence


@pytest.mark.premises(devices=[PPMID], gsme=False)  # electricity only: no GSME to offer a refused UTRN to
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


PREPAY_ESME = {"type": "esme", "options": {"payment_mode": "prepayment", "credit_pence": 1.0,
                                          "emergency_credit_pence": 500.0, "emergency_credit_activation": "consumer"}}


@pytest.mark.premises(devices=[PREPAY_ESME, {"type": "ppmid", "meter": "esme-2"}])
async def test_ppmid_emergency_credit_arms_a_supply_out_of_credit(premises):
    ppmid, esme = premises.ppmid, premises.device("esme-2")
    await premises.clock.advance(3 * 3600)  # energy uses the penny up; emergency credit waits to be asked for
    assert esme.supply_state == "disabled" and esme.credit_pence <= 0
    since = len(premises.headend.received_alerts)
    out = await ppmid.activate_emergency_credit()
    assert out["accepted"] and out["result"] == "activated"
    assert esme.supply_state == "armed"
    await premises.headend.wait_alert(
        lambda a: a.code == AlertCode.SUPPLY_DISABLED_THEN_ARMED_ACTIVATE_EMERGENCY_CREDIT_TRIGGERED, since=since)
    assert esme.press_button() and esme.supply_state == "enabled"
    # a top-up repays the emergency credit used first
    used = 500.0 - esme._prepay()["ec_remaining"]
    out = await ppmid.enter_utrn(vend(premises, 3, 2000, device=esme.eui))
    assert out["accepted"] and esme._prepay()["ec_remaining"] == pytest.approx(500.0)
    assert esme.credit_pence == pytest.approx(2000 - used, abs=1)
    assert premises.esme.activate_emergency_credit() is False  # a meter with no emergency credit refuses


def _gsme_keys(premises):
    """A GSME's keys from the premises' test PKI (no GSME device runs here)."""
    from gbhub.tools.pki import add_device

    eui = bytes.fromhex("02474248400000A1")
    ks = premises.identity.keystore
    if ks.private_key(eui, "ka") is None:
        ks.merge(add_device(premises.identity.pki, eui, "gsme"))
    return eui, ks


@pytest.mark.premises(devices=[PPMID])
async def test_ppmid_pcs01_and_pcs02_for_a_gsme(premises):
    """CS03C gives the PPMID the GSME's KA certificate; its PCS01 / PCS02 are MACed with it and
    carry the typed UTRN; the GSME's answer (MACed back) updates the display, once."""
    from cryptography.hazmat.primitives.serialization import Encoding

    from gbcs.asn1 import DeviceType, JoinMethodAndRole
    from gbcs.frame import CRA, Message, decode_message, mac_frame
    from gbcs.gbz import GbzComponent, GbzPayload
    from gbcs.payload import decode_payload
    from gbcs.security import check_mac, compute_mac
    from gbcs.usecases.ppmid import TopUpResult
    from gbcs.zcl import Cluster, ClusterCommand

    ppmid = premises.ppmid
    gsme, ks = _gsme_keys(premises)
    cert = ks.certificate(gsme, "ka").public_bytes(Encoding.DER)
    r = await premises.send("CS03C", "ppmid", other_entity_id=gsme, other_device_type=DeviceType.GSME,
                            join_method_and_role=JoinMethodAndRole.METHOD_C, ka_certificate=cert)
    assert r.ok and ppmid.paired_with(gsme)
    log = ppmid.joined_devices
    key = log.ka_key(gsme)
    assert key.public_numbers() == ks.public_key(gsme, "ka").public_numbers()
    assert log.ka_key(gsme) is key  # parsed once and kept: every poll asks
    from gbcs.codec import eui_hex

    other = ks.certificate(ppmid.eui, "ka").public_bytes(Encoding.DER)
    ppmid.nvm.put(log.certificates, eui_hex(gsme), other.hex())  # another certificate: its own key
    assert log.ka_key(gsme).public_numbers() == ks.public_key(ppmid.eui, "ka").public_numbers()
    ppmid.nvm.put(log.certificates, eui_hex(gsme), cert.hex())
    assert log.ka_key(gsme).public_numbers() == key.public_numbers()
    secret = ks.private_key(gsme, "ka").exchange(__import__("cryptography.hazmat.primitives.asymmetric.ec",
                                                            fromlist=["ECDH"]).ECDH(), ks.public_key(ppmid.eui, "ka"))
    utrn = vend(premises, 4, 700, device=gsme)
    frame, counter = ppmid.build_gas_command(MessageCode.PCS01, utrn=utrn)
    m = decode_message(frame)
    assert (m.originator, m.recipient, m.message_code, m.cra) == (ppmid.eui, gsme, MessageCode.PCS01, CRA.COMMAND)
    assert check_mac(secret, m) and not m.signature
    (comp,) = decode_payload(m).components
    assert comp.payload.name == "ConsumerTopUp" and comp.payload["top_up_code"] == utrn.encode()
    frame2, counter2 = ppmid.build_gas_command(MessageCode.PCS02, now=premises.clock.utcnow())
    assert counter2 > counter
    assert decode_payload(decode_message(frame2)).components[0].payload.name == "SelectAvailableEmergencyCredit"
    # a top-up typed for gas goes to the GSME (through the CHF) and waits for its answer
    out = await ppmid.enter_utrn(utrn, fuel="gas")
    assert out["result"] == "pending" and out["counter"] in ppmid.pending_gas
    answer = ClusterCommand.build(Cluster.PREPAYMENT, "ConsumerTopUpResponse", result_type=int(TopUpResult.ACCEPTED),
                                  top_up_value=700, source_of_top_up=2, credit_remaining=4200)
    content = GbzPayload.build([GbzComponent.build(Cluster.PREPAYMENT, answer, disable_default_response=True)]).encode()
    resp = Message(CRA.RESPONSE, out["counter"], gsme, ppmid.eui, MessageCode.PCS01, content, signature=b"").with_apdu()
    forged = mac_frame(resp.general_signing(), bytes(12))
    await ppmid.process(forged)
    assert out["counter"] in ppmid.pending_gas  # a bad MAC changes nothing
    await ppmid.process(mac_frame(resp.general_signing(), compute_mac(secret, resp)))
    assert ppmid.pending_gas == {} and ppmid.display.gas.credit == pytest.approx(4.2)  # ZSE money 4200 = 4.2p
    assert ppmid.last_gas_result["accepted"] and ppmid.last_gas_result["amount"] == 700
    await ppmid.process(mac_frame(resp.general_signing(), compute_mac(secret, resp)))  # replayed: ignored
    assert [r["fuel"] for r in ppmid.results] == ["gas"]
    # gas figures from a ZCL server mirroring the GSME's Prepayment cluster (here the ESME's stands in)
    ppmid.gas_source = (premises.esme.eui, 1)
    shown = await ppmid.poll_now()
    assert shown.gas.credit == premises.esme.credit_pence and shown.gas.prepayment is False


@given(st.integers(0, 0x3FF), st.sampled_from(list(ValueClass)), st.integers(0, 8191), st.binary(min_size=4, max_size=4),
       st.sampled_from(["", " ", "-", "  "]))
def test_parse_utrn_text_accepts_grouped_utrns(counter, value_class, value, mac, sep):
    text = Utrn(counter, value_class, value, mac).encode()
    typed = sep.join(text[i:i + 4] for i in range(0, 20, 4))
    assert parse_utrn_text(typed) == text


@given(st.text(max_size=40))
def test_parse_utrn_text_refuses_anything_else_with_a_decode_error(text):
    try:
        out = parse_utrn_text(text)
    except DecodeError:
        return
    assert len(out) == 20 and out.isdigit() and check_digit(out[:-1]) == out[-1]


LOW_CREDIT_ESME = {"type": "esme", "options": {"payment_mode": "prepayment", "credit_pence": 1.0}}


@pytest.mark.premises(devices=[LOW_CREDIT_ESME, {"type": "ppmid", "meter": "esme-2"}], gsme=False)  # (gas: below)
async def test_no_wan_prepayment_top_up_and_alerts_in_order_when_the_wan_returns(premises):
    """With the WAN cut the PPMID still tops the ESME up (no WAN needed): the supply that ran out
    of credit re-arms, the consumer enables it, and every alert of the outage reaches the
    head-end in the order raised once the WAN returns."""
    ppmid, esme = premises.ppmid, premises.device("esme-2")
    he = premises.headend
    premises.bridge.set_link(False)  # gbhub ctl wan down
    since = len(he.received_alerts)
    await premises.clock.advance(3 * 3600)
    assert esme.supply_state == "disabled"
    forged = vend(premises, 9, 500, device=premises.esme.eui)  # another meter's token
    assert (await ppmid.enter_utrn(forged))["result"] == "REJECTED_INVALID"
    out = await ppmid.enter_utrn(vend(premises, 9, 1500, device=esme.eui))
    assert out["accepted"] and out["result"] == "ACCEPTED_SUPPLY_ARMED" and esme.supply_state == "armed"
    assert esme.press_button() and esme.supply_state == "enabled"
    await ppmid.poll_now()
    assert ppmid.display.electricity.credit == pytest.approx(esme.credit_pence, abs=1)
    await premises.clock.advance(60)
    from_esme = [a for a in he.received_alerts[since:] if a.message.originator == esme.eui]
    assert from_esme == []  # nothing crossed the cut WAN
    assert premises.chf.wan_queue_length >= 4
    premises.bridge.set_link(True)  # gbhub ctl wan up
    wanted = [AlertCode.CREDIT_BELOW_DISABLEMENT_THRESHOLD, AlertCode.UTRN_NOT_AUTHENTIC, AlertCode.CREDIT_ADDED_LOCALLY]
    await he.wait_alert(lambda a: a.message.originator == esme.eui and a.code == wanted[-1], since=since)
    await premises.clock.advance(1)
    arrived = [a for a in he.received_alerts[since:] if a.message.originator == esme.eui]
    codes = [a.code for a in arrived]
    assert [c for c in codes if c in wanted] == wanted
    assert len(codes) >= 4  # ... and the supply enabled by the button after them
    counters = [a.message.originator_counter for a in arrived]
    assert counters == sorted(counters) and all(a.valid for a in arrived)
    assert premises.chf.wan_queue_length == 0


@given(st.text(max_size=30))
def test_gbhub_utrn_amounts_are_refused_as_usage_errors_or_fit_13_bits(text):
    from gbhub.tools.inputs import UsageError
    from gbhub.tools.utrn import parse_amount

    try:
        value_class, value = parse_amount(text)
    except UsageError:
        return
    assert 0 < value <= 8191 and value_class in (ValueClass.PENNIES, ValueClass.POUNDS)


def test_gbhub_utrn_amounts():
    from gbhub.tools.utrn import parse_amount

    assert parse_amount("12.50") == (ValueClass.PENNIES, 1250)
    assert parse_amount("£81.91") == (ValueClass.PENNIES, 8191)
    assert parse_amount("82") == (ValueClass.POUNDS, 82)
    assert parse_amount(" 8191 ") == (ValueClass.POUNDS, 8191)


@pytest.mark.premises(tcp=False)
async def test_esme_takes_top_ups_and_emergency_credit_requests_from_its_ppmid_only(premises):
    """The IHD is in the ESME's device log (it reads) but may not pay; a device not in it at all
    is refused by the ZCL server. Neither changes the credit; both refusals are logged."""
    from gbcs.zcl import Status
    from gbcs.usecases.ppmid import consumer_top_up, select_emergency_credit
    from gbhub.han.zcl_server import ZclStatusError

    esme, ihd = premises.esme, premises.ihd
    before = esme.credit_pence
    utrn = vend(premises, 11, 100)
    for command in (consumer_top_up(utrn), select_emergency_credit(0)):
        with pytest.raises(ZclStatusError) as refused:
            await ihd.zcl.command(esme.eui, command)
        assert refused.value.status == Status.NOT_AUTHORIZED
    assert esme.credit_pence == before
    assert [e["code"] for e in esme.security_log()][-2:] == ["zcl_command_refused"] * 2
    out = await premises.ppmid.enter_utrn(utrn)  # the same UTRN was never used: the PPMID's goes in
    assert out["accepted"] and esme.credit_pence == before + 100


# -- the PPMID's own GBCS security and device log ----------------------------------------------------
@pytest.mark.premises(gsme=False)  # the PPMID's log then holds only the ESMEs it joins here
async def test_ppmid_device_log_and_security(premises):
    """Join codes on the PPMID's log (Method A via CS03A2, Method C via CS03C), CS07 reads it, and a
    replayed or wrongly-signed command is refused with the security alert and changes nothing."""
    from gbcs.asn1 import DeviceType, JoinDevice, JoinMethodAndRole as Role, ReadDeviceJoinDetails, decode_asn1
    from gbhub.wan.headend import CommandRejected

    p, ppmid = premises, premises.ppmid
    he = p.headend

    async def join(code, payload, counter=None):
        reply = await he.request(recipient=ppmid.eui, message_code=code, content=payload.encode(), critical=True,
                                 counter=counter)
        assert reply.valid and reply.message.originator == ppmid.eui
        return decode_asn1(reply.message.content, message_code=code, cra=2).code, reply

    other = bytes.fromhex("0247424841000077")
    assert (await join(MessageCode.CS03A2, JoinDevice(Role.METHOD_C, other, DeviceType.GSME)))[0] == 1  # C: CS03C's
    assert (await join(MessageCode.CS03A2, JoinDevice(Role.METHOD_B, other, DeviceType.TYPE_2)))[0] == 2  # B: not here
    assert (await join(MessageCode.CS03A2, JoinDevice(Role.METHOD_A_RESPONDER, other, DeviceType.GSME)))[0] == 2
    code, reply = await join(MessageCode.CS03A2, JoinDevice(Role.METHOD_A_RESPONDER, other, DeviceType.ESME))
    assert code == 0 and ppmid.paired_with(other)
    read = await he.request(recipient=ppmid.eui, message_code=MessageCode.CS07, content=ReadDeviceJoinDetails().encode(),
                            critical=False)
    entries = decode_asn1(read.message.content, message_code=MessageCode.CS07, cra=2).entries
    assert {(e.entity_id, e.device_type) for e in entries} == {(p.esme.eui, DeviceType.ESME), (other, DeviceType.ESME)}
    # the same command again (its counter already used): refused, logged, nothing changes
    again = bytes.fromhex("0247424841000078")
    with pytest.raises(CommandRejected) as refused:
        await join(MessageCode.CS03A2, JoinDevice(Role.METHOD_A_RESPONDER, again, DeviceType.ESME),
                   counter=reply.message.originator_counter)
    assert refused.value.code == AlertCode.FAILED_AUTHENTICATION_OR_AUTHORISATION_NOT_COVERED_BY_OTHER_CODES
    assert not ppmid.paired_with(again) and ppmid.security_log()[-1]["code"] == "command_rejected"
    # critical without the supplier's signature
    with pytest.raises(CommandRejected) as unsigned:
        await he.request(recipient=ppmid.eui, message_code=MessageCode.CS03A2, critical=False,
                         content=JoinDevice(Role.METHOD_A_RESPONDER, again, DeviceType.ESME).encode())
    assert unsigned.value.code == AlertCode.TRUSTED_SOURCE_AUTHENTICATION_FAILURE and not ppmid.paired_with(again)


# -- with a GSME (runs once a GSME type that takes the PPMID's join and PCS01 is registered) ----------
def _gsme_ready() -> bool:
    from gbhub.firmware.registry import device_kinds

    kinds = {k.type: k for k in device_kinds()}
    if "gsme" not in kinds:
        return False
    from gbhub.meter import gsme as module  # noqa: F401  (the gas helper's module)

    handlers = getattr(getattr(module, "Gsme", None), "HANDLERS", {})
    return MessageCode.PCS01 in handlers and MessageCode.CS03C in handlers


needs_gsme = pytest.mark.skipif(not _gsme_ready(), reason="no GSME serving CS03C and PCS01 in this build")


@needs_gsme
@pytest.mark.premises(devices=[{"type": "gsme"}, {"type": "ppmid"}])
async def test_ppmid_tops_up_the_gsme_through_the_chf_queue(premises):
    ppmid, gsme = premises.ppmid, premises.gsme
    assert ppmid.paired_with(gsme.eui) and gsme.in_device_log(ppmid.eui)
    before = gsme.credit_pence
    out = await ppmid.enter_utrn(vend(premises, 5, 900, device=gsme.eui), fuel="gas")
    assert out["result"] == "pending"
    gsme.press_button()  # wake it rather than wait half an hour
    await premises.clock.advance(60)
    assert ppmid.pending_gas == {} and ppmid.last_gas_result["accepted"]
    assert gsme.credit_pence == pytest.approx(before + 900)


@needs_gsme
@pytest.mark.premises(devices=[{"type": "gsme"}, {"type": "ppmid"}])
async def test_no_wan_gas_top_up_from_the_ppmid(premises):
    """PPMID → CHF → GSME is HAN only: with the WAN cut a gas top-up still applies, and the GSME's
    alerts reach the head-end when the WAN returns."""
    ppmid, gsme, he = premises.ppmid, premises.gsme, premises.headend
    premises.bridge.set_link(False)
    since = len(he.received_alerts)
    before = gsme.credit_pence
    out = await ppmid.enter_utrn(vend(premises, 6, 400, device=gsme.eui), fuel="gas")
    assert out["result"] == "pending"
    gsme.press_button()
    await premises.clock.advance(60)
    assert ppmid.last_gas_result["accepted"] and gsme.credit_pence == pytest.approx(before + 400)
    premises.bridge.set_link(True)
    await he.wait_alert(lambda a: a.message.originator == gsme.eui and a.code == AlertCode.CREDIT_ADDED_LOCALLY,
                        since=since)


# -- the receiving side of PCS01: the shared device-to-device check in GbcsDevice ----------------------
async def test_pcs01_is_authenticated_by_the_method_c_certificate_on_the_receiving_device(premises):
    """A GBCS device that takes PCS01 (as a GSME does) checks it with the KA key of the PPMID that
    CS03C put in its device log (`GbcsDevice.peer_device_key`), answers it MACed for the PPMID,
    and refuses PCS01 from a device not joined by Method C, with a bad MAC or a replayed counter.
    Here a minimal device stands in for the GSME (the gas helper's GSME plugs into the same)."""
    from cryptography.hazmat.primitives.serialization import Encoding

    from gbcs.asn1 import DeviceType, JoinDevice, JoinMethodAndRole
    from gbcs.frame import decode_message
    from gbcs.gbz import GbzComponent, GbzPayload
    from gbcs.payload import decode_payload
    from gbcs.usecases.ppmid import TopUpResult
    from gbcs.zcl import Cluster, ClusterCommand
    from gbhub.firmware import Nvm
    from gbhub.firmware.device_log import DeviceLog, join
    from gbhub.firmware.gbcs_device import Credentials, GbcsDevice, call, handlers

    def top_up(device, message):
        (comp,) = decode_payload(message).components
        device.topped_up.append(comp.payload["top_up_code"].decode())
        answer = ClusterCommand.build(Cluster.PREPAYMENT, "ConsumerTopUpResponse", result_type=int(TopUpResult.ACCEPTED),
                                      top_up_value=300, source_of_top_up=comp.payload["originating_device"],
                                      credit_remaining=1300)
        return GbzPayload.build([GbzComponent.build(Cluster.PREPAYMENT, answer, disable_default_response=True)]).encode()

    class GasMeter(GbcsDevice):
        kind = "gsme"
        HANDLERS = handlers(join(MessageCode.CS03C, DeviceType.PPMID), call(MessageCode.PCS01, top_up))

        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            self.joined_devices = DeviceLog(self, namespace="gas_device_log", capacity=4)
            self.topped_up = []

    ppmid, he = premises.ppmid, premises.headend
    eui, ks = _gsme_keys(premises)
    sent: list[bytes] = []

    async def uplink(frame: bytes) -> None:
        sent.append(frame)

    gas = GasMeter(eui, clock=premises.clock, credentials=Credentials.from_keystore(ks, eui), trust=premises.trust,
                   nvm=Nvm(None), send_gbcs=uplink)
    await gas.start()
    try:
        utrn = vend(premises, 2, 300, device=eui)
        await _joined_gsme(premises, eui, ks)
        frame, _ = ppmid.build_gas_command(MessageCode.PCS01, utrn=utrn)
        assert await gas.process(frame) is None  # the GSME has not joined the PPMID yet: unknown party
        cert = ks.certificate(ppmid.eui, "ka").public_bytes(Encoding.DER)
        _, join_frame = he.build_command(recipient=eui, message_code=MessageCode.CS03C, critical=True, content=JoinDevice(
            JoinMethodAndRole.METHOD_C, ppmid.eui, DeviceType.PPMID, cert).encode())
        assert await gas.process(join_frame) is not None and ppmid.eui in gas.joined_devices
        forged = frame[:-12] + bytes(12)
        assert await gas.process(forged) is None  # bad MAC
        response = await gas.process(frame)
        assert response is not None and gas.topped_up == [utrn]
        assert await gas.process(frame) is None  # replayed
        assert [e["reason"] for e in gas.security_log() if e["code"] == "command_rejected"] == [
            "unknown_party", "authentication", "replay"]
        # the answer, MACed for the PPMID, is what the PPMID accepts
        counter = decode_message(frame).originator_counter
        ppmid.nvm.put("ppmid", "pending_gas", {str(counter): {"use_case": "PCS01", "t": 0}})
        await ppmid.process(response)
        assert ppmid.pending_gas == {} and ppmid.last_gas_result["amount"] == 300
        assert ppmid.display.gas.credit == pytest.approx(1.3)  # ZSE money 1300, shown in pence
    finally:
        await gas.stop()


async def _joined_gsme(premises, eui, ks):
    """CS03C to the PPMID: it joins the GSME `eui` with the GSME's KA certificate."""
    from cryptography.hazmat.primitives.serialization import Encoding

    from gbcs.asn1 import DeviceType, JoinMethodAndRole

    r = await premises.send("CS03C", "ppmid", other_entity_id=eui, other_device_type=DeviceType.GSME,
                            join_method_and_role=JoinMethodAndRole.METHOD_C,
                            ka_certificate=ks.certificate(eui, "ka").public_bytes(Encoding.DER))
    assert r.ok


def test_rig_file_with_a_ppmid(tmp_path):
    from gbhub.tools.rig import RigError, load_rig

    rig = tmp_path / "rig.toml"
    rig.write_text('[[device]]\ntype = "chf"\n[[device]]\ntype = "esme"\n[[device]]\ntype = "ppmid"\n'
                   'options = { poll_interval = 5.0, gas_source = "02474248400000A3:2" }\n')
    (ppmid,) = [d for d in load_rig(rig).devices if d.type == "ppmid"]
    assert (ppmid.name, ppmid.meter, ppmid.eui.hex().upper()) == ("ppmid", "esme", "02474248400000A4")
    assert ppmid.options == {"poll_interval": 5.0, "gas_source": "02474248400000A3:2"}
    rig.write_text('[[device]]\ntype = "chf"\n[[device]]\ntype = "ppmid"\n')
    with pytest.raises(RigError, match="pairs with a esme"):
        load_rig(rig)


async def test_ppmid_survives_a_power_cut(premises):
    """Its device log (the ESME it serves) is in NVM: after a power cut it reads and tops up again
    without being paired anew; what it displayed is gone until the next read."""
    ppmid = premises.ppmid
    await ppmid.poll_now()
    await ppmid.power_off()
    await ppmid.start()
    assert ppmid.paired_with(premises.esme.eui) and ppmid.display.electricity.credit is None
    await premises.clock.advance(ppmid.poll_interval + 1)
    assert ppmid.display.status == "ok"
    out = await ppmid.enter_utrn(vend(premises, 21, 50))
    assert out["accepted"] and out["amount"] == 50


def test_gbhub_utrn_counters_never_repeat_under_concurrent_vending(tmp_path):
    """Counters advance under a lock and are on disk before a UTRN is returned."""
    import json
    from concurrent.futures import ThreadPoolExecutor

    from gbhub.tools.utrn import next_utrn_counter

    supplier, device = bytes(range(8)), bytes(range(8, 16))
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda _: next_utrn_counter(tmp_path, supplier, device), range(40)))
    assert sorted(got) == list(range(1, 41))
    assert json.loads((tmp_path / "utrn-counters.json").read_text()) == {
        f"{supplier.hex().upper()}:{device.hex().upper()}": 40}
