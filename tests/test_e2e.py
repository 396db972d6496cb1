"""A whole premises driven through its TCP WAN port like a DCC head-end drives a real one: every
listed use case end to end (head-end verifies MAC / signature), negative security tests, WAN
outage, restarts, and the RTDS commands against an RTDS-keyed ESME."""
from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt

import pytest

from conftest import VECTORS, rtds_rows, vectors_dir
from gbcs import catalogue, usecases
from gbcs.analyse import analyse
from gbcs.frame import decode_message
from gbcs.utrn import generate_utrn

DAY = 86400


async def _send(p, use_case, to=None, **params):
    d = usecases.get(use_case)
    r = await p.send(use_case, to or d.target, **params)
    assert r.reply.valid, (use_case, r.reply.mac, r.reply.signature)
    if d.critical:
        assert r.reply.signature == "valid" and r.reply.message.mac is None
    else:
        assert r.reply.mac == "valid"
    assert r.reply.message.message_code == d.message_code
    return r


async def test_reads(premises):
    p = premises
    await p.clock.advance(2 * DAY)
    regs = p.esme.registers()
    r = await _send(p, "ECS17b")
    assert r.ok and r.summary["decrypted"]
    assert r.summary["import_kwh"] == pytest.approx(regs["import_wh"] / 1000)
    r = await _send(p, "ECS17c")
    assert r.ok
    now = p.clock.now()
    r = await _send(p, "ECS22b", start=dt.datetime.fromtimestamp(now - DAY, dt.timezone.utc),
                    end=dt.datetime.fromtimestamp(now, dt.timezone.utc))
    assert r.ok and len(r.summary["entries"]) >= 46
    r = await _send(p, "ECS21a", start=dt.datetime.fromtimestamp(now - 2 * DAY, dt.timezone.utc),
                    end=dt.datetime.fromtimestamp(now, dt.timezone.utc))
    assert r.ok and r.summary["entries"]
    for uc in ("ECS24", "ECS45", "ECS52"):
        assert (await _send(p, uc)).ok, uc
    assert (await _send(p, "CS07", "esme")).ok
    r = await _send(p, "ECS35a", start=dt.datetime.fromtimestamp(now - 3 * DAY, dt.timezone.utc),
                    end=dt.datetime.fromtimestamp(now + 60, dt.timezone.utc))
    assert r.ok
    assert (await _send(p, "ECS35b", start=dt.datetime.fromtimestamp(now - 3 * DAY, dt.timezone.utc),
                        end=dt.datetime.fromtimestamp(now + 60, dt.timezone.utc))).ok


async def test_supply_switch_and_button(premises):
    p = premises
    assert (await _send(p, "ECS43")).ok
    assert (await _send(p, "ECS45")).summary["supply_state"] != "on"
    assert (await _send(p, "ECS44")).ok
    armed = (await _send(p, "ECS45")).summary["supply_state"]
    assert armed != "on"
    p.esme.press_button()
    await p.clock.advance(1)
    assert (await _send(p, "ECS45")).summary["supply_state"] == "on"
    assert (await _send(p, "ECS43")).ok
    assert (await _send(p, "ECS42")).ok
    assert (await _send(p, "ECS45")).summary["supply_state"] == "on"


async def test_clock_tariff_and_top_up(premises):
    p = premises
    now = dt.datetime.fromtimestamp(p.clock.now(), dt.timezone.utc)
    assert (await _send(p, "ECS70", validity_start=now, validity_end=now + dt.timedelta(minutes=1))).ok
    assert (await _send(p, "ECS01a")).ok
    assert (await _send(p, "ECS24")).ok
    ks = p.identity.keystore
    counter = 7
    utrn = generate_utrn(value=500, utrn_counter=counter, supplier=p.identity.supplier, device=p.esme.eui,
                         private_key=ks.private_key(p.identity.supplier, "pp-ka"), public_key=ks.public_key(p.esme.eui, "ka"))
    before = p.esme.credit_pence
    # a top-up's originator counter is its UTRN counter << 32 (freshness comes from the UTRN cache)
    r = await p.headend.send_use_case("CS01a", recipient=p.esme.eui, params={"utrn": str(utrn)}, counter=counter << 32)
    assert r.ok and r.reply.mac == "valid"
    assert p.esme.credit_pence == before + 500
    # the same UTRN again: rejected (duplicate UTRN alert 0x8F51), credit unchanged
    since = len(p.headend.received_alerts)
    again = await p.headend.send_use_case("CS01a", recipient=p.esme.eui, params={"utrn": str(utrn)}, counter=counter << 32)
    assert not again.ok
    await _alert_after(p, since, 0x8F51)
    assert p.esme.credit_pence == before + 500


async def test_device_logs(premises):
    p = premises
    other = bytes.fromhex("02474248400000B1")
    assert (await _send(p, "CS03B", "esme", other_entity_id=other)).ok
    listed = (await _send(p, "CS07", "esme")).summary
    assert other.hex().upper() in str(listed).upper()
    assert (await _send(p, "CS04B", "esme", entity_id=other)).ok
    assert other.hex().upper() not in str((await _send(p, "CS07", "esme")).summary).upper()
    # CHF device log: CCS01 adds, CS14 alert follows, CCS06 lists, CCS02 removes
    since = len(p.headend.received_alerts)
    newcomer = bytes.fromhex("02474248400000B2")
    assert (await _send(p, "CCS01", device=newcomer, install_code=bytes(range(16)))).ok
    alert = await p.headend.wait_alert(lambda a: a.message.message_code == 0x0018, since=since, timeout=5)
    assert alert.valid and alert.mac == "valid"
    log = (await _send(p, "CCS06")).summary
    assert newcomer.hex().upper() in str(log).upper()
    assert (await _send(p, "CCS02", device=newcomer)).ok
    assert newcomer.hex().upper() not in str((await _send(p, "CCS06")).summary).upper()


async def test_chf_device_log_restore(premises):
    """CCS03 (our [U] layout): the CHF log becomes the backup, CS14 carries the new extended PAN
    id, the ESME stays routable; a backup larger than the log is refused whole."""
    p = premises
    newcomer = bytes.fromhex("02474248400000B3")
    pan = bytes.fromhex("02474248400000F3")
    devices = [(p.esme.eui, p.specs["esme"].install_code), (p.ihd.eui, p.specs["ihd"].install_code),
               (newcomer, bytes(range(16)))]
    since = len(p.headend.received_alerts)
    r = await _send(p, "CCS03", extended_pan_id=pan, devices=devices)
    assert r.ok and r.summary["entries"] == ["restored"] * 3
    alert = await p.headend.wait_alert(lambda a: a.message.message_code == 0x0018, since=since, timeout=5)
    assert alert.valid and alert.mac == "valid"
    cs14 = usecases.interpret("CS14", alert)
    assert cs14["extended_pan_id"] == pan.hex().upper()
    assert sorted(d["eui"] for d in cs14["devices"]) == sorted(e.hex().upper() for e, _ in devices)
    assert sorted(d["eui"] for d in (await _send(p, "CCS06")).summary["devices"]) == \
        sorted(e.hex().upper() for e, _ in devices)
    assert (await _send(p, "ECS17b")).ok
    too_many = devices + [(bytes.fromhex(f"02474248400001{i:02X}"), bytes(16)) for i in range(16)]
    r = await _send(p, "CCS03", devices=too_many)
    assert not r.ok and r.summary["entries"] == ["restored"] * 16 + ["device_log_full"] * 3
    assert len(p.chf.device_log()) == 3 and p.chf.extended_pan_id == pan


# -- negative: each gives the alert, a security-log entry and no state change -----------------


async def _alert_after(p, since, code):
    a = await p.headend.wait_alert(lambda a: _alert_code(a) == code, since=since, timeout=5)
    assert a.valid
    return a


def _alert_code(alert) -> int | None:
    from gbcs.payload import decode_payload

    try:
        return getattr(decode_payload(alert.message), "alert_code", None)
    except Exception:  # noqa: BLE001
        return None


async def test_replayed_counter_rejected(premises):
    p = premises
    d = usecases.get("ECS43")
    counter = p.headend.next_counter()
    msg, frame = p.headend.build_command(recipient=p.esme.eui, message_code=d.message_code, critical=True,
                                         content=usecases.build_content("ECS43", counter), counter=counter)
    reply = await p.headend.exchange(msg, frame, critical=True)
    assert reply.valid
    assert (await _send(p, "ECS42")).ok
    since, sec = len(p.headend.received_alerts), len(p.esme.security_log())
    await p.headend.link.send(frame)  # the same ECS43 again: a replay
    await _alert_after(p, since, catalogue_alert("replay"))
    assert len(p.esme.security_log()) == sec + 1 and p.esme.security_log()[-1]["reason"] == "replay"
    assert (await _send(p, "ECS45")).summary["supply_state"] == "on"  # not opened again


def catalogue_alert(reason: str) -> int:
    from gbhub.firmware.gbcs_device import SECURITY_ALERTS

    return SECURITY_ALERTS[reason]


async def test_tampered_byte_rejected(premises):
    p = premises
    d = usecases.get("ECS43")
    counter = p.headend.next_counter()
    _, frame = p.headend.build_command(recipient=p.esme.eui, message_code=d.message_code, critical=True,
                                       content=usecases.build_content("ECS43", counter), counter=counter)
    bad = bytearray(frame)
    bad[-20] ^= 0x01  # inside the signature: MAC breaks too
    since, sec = len(p.headend.received_alerts), len(p.esme.security_log())
    await p.headend.link.send(bytes(bad))
    await _alert_after(p, since, catalogue_alert("authentication"))
    assert len(p.esme.security_log()) == sec + 1
    assert (await _send(p, "ECS45")).summary["supply_state"] == "on"


async def test_wrong_role_rejected(premises):
    p = premises
    no = p.identity.network_operator
    d = usecases.get("ECS43")
    assert catalogue.RemotePartyRole.NETWORK_OPERATOR not in catalogue.allowed_remote_party_roles(d.message_code)
    counter = p.headend.next_counter(no)
    _, frame = p.headend.build_command(recipient=p.esme.eui, message_code=d.message_code, critical=True, originator=no,
                                       content=usecases.build_content("ECS43", counter), counter=counter)
    since, sec = len(p.headend.received_alerts), len(p.esme.security_log())
    await p.headend.link.send(frame)
    await _alert_after(p, since, catalogue_alert("role"))
    assert p.esme.security_log()[-1]["reason"] == "role" and len(p.esme.security_log()) == sec + 1
    assert (await _send(p, "ECS45")).summary["supply_state"] == "on"


async def test_wrong_recipient_rejected(premises):
    """A command MACed for the ESME but naming another recipient: the MAC no longer matches the
    header, so whoever receives it must refuse it. Sent through the CHF to the ESME's EUI with
    the recipient field rewritten to the GPF's, it reaches the GPF and is refused there."""
    p = premises
    counter = p.headend.next_counter()
    msg, frame = p.headend.build_command(recipient=p.esme.eui, message_code=0x0052, critical=False,
                                         content=usecases.build_content("ECS45", counter), counter=counter)
    moved = dataclasses.replace(msg, recipient=p.gpf.eui)
    since, sec = len(p.headend.received_alerts), len(p.gpf.security_log())
    await p.headend.link.send(moved.encode())
    await _alert_after(p, since, catalogue_alert("unsupported"))
    assert len(p.gpf.security_log()) == sec + 1


async def test_device_not_in_log_reported(premises):
    p = premises
    stranger = bytes.fromhex("02474248400000C9")
    p.identity.keystore.add_public_key(stranger, "ka", p.identity.keystore.public_key(p.esme.eui, "ka"))
    counter = p.headend.next_counter()
    _, frame = p.headend.build_command(recipient=stranger, message_code=0x0052, critical=False,
                                       content=usecases.build_content("ECS45", counter), counter=counter)
    since = len(p.headend.received_alerts)
    await p.headend.link.send(frame)
    alert = await p.headend.wait_alert(lambda a: a.message.message_code == 0x00D5, since=since, timeout=5)
    assert alert.valid


# -- WAN outage, restart ------------------------------------------------------------------------


async def test_wan_cut_alerts_delivered_in_order(premises):
    p = premises
    p.bridge.set_link(False)
    codes = [0x8F32, 0x8F35, 0x8F36, 0x8F01]
    for code in codes:
        await p.esme.raise_alert(code)
    await p.clock.advance(1)
    since = len(p.headend.received_alerts)
    p.bridge.set_link(True)
    for _ in range(50):
        await asyncio.sleep(0.02)
        got = [_alert_code(a) for a in p.headend.received_alerts[since:]]
        if all(c in got for c in codes):
            break
    got = [c for c in (_alert_code(a) for a in p.headend.received_alerts[since:]) if c in codes]
    assert got == codes


async def test_restart_keeps_state(premises_factory, tmp_path):
    p = await premises_factory(tmp_path / "site")
    await p.clock.advance(DAY)
    regs = p.esme.registers()
    counters = p.esme.counters.items()
    log = [e.eui for e in p.chf.device_log()] if hasattr(p.chf, "device_log") else None
    await p.stop()
    q = await premises_factory(tmp_path / "site", start=p.clock.now())
    assert q.esme.registers()["import_wh"] >= regs["import_wh"]
    assert dict(q.esme.counters.items()) == dict(counters)
    if log is not None:
        assert [e.eui for e in q.chf.device_log()] == log
    assert (await _send(q, "ECS17b")).ok


# -- RTDS commands against an RTDS-keyed ESME -------------------------------------------------

LISTED = ["ECS17b", "ECS17c", "ECS22b", "ECS21a", "ECS24", "ECS35a", "ECS35b", "ECS42", "ECS43", "ECS44",
          "ECS45", "ECS52", "ECS70", "ECS01a", "CS01a", "CS03B", "CS04B", "CS07"]


def _rtds_esme_commands():
    rows = rtds_rows()
    out = []
    for r in rows:
        uc = r["file"].split("/")[0].split("_", 1)[1]
        if uc in LISTED and "_COMMAND_" in r["file"] and r["recipient"] == "00DB1234567890A0" and r["cra"] == "Command":
            out.append(r)
    return out


RTDS_COMMANDS = _rtds_esme_commands()


@pytest.fixture(scope="module")
def rtds_identity(tmp_path_factory):
    vectors_dir()
    from gbhub.tools.premises import ensure_keys
    from gbhub.tools.rig import load_rig

    from pathlib import Path

    rig = load_rig(Path(__file__).resolve().parent.parent / "examples" / "rtds.toml")
    rig.data = tmp_path_factory.mktemp("rtds")
    return rig, ensure_keys(rig)


@pytest.mark.parametrize("row", RTDS_COMMANDS, ids=lambda r: r["file"].split("/")[-1])
async def test_rtds_command_accepted(row, rtds_identity, rtds_keystore):
    from gbhub.tools.premises import Premises

    rig, identity = rtds_identity
    rig = dataclasses.replace(rig, data=None, clock="sim",
                              start=dt.datetime(2015, 1, 1, 0, 0, 30, tzinfo=dt.timezone.utc).timestamp())
    p = Premises(rig, tcp=True, sim=True, identity=identity)
    await p.start()
    try:
        command = decode_message(row["bytes"])
        response = await p.headend.send_raw(row["bytes"], timeout=5)
        rsp = decode_message(response)
        assert rsp.originator_counter == command.originator_counter
        expected = next(r for r in rtds_rows() if r["file"] == row["file"].replace("_COMMAND_", "_RESPONSE_"))
        assert f"{rsp.message_code:04X}" == expected["messageCode"]
        verdict = analyse(response, rtds_keystore, bytes.fromhex("90B3D51F30000002"))
        if rsp.mac is not None:
            assert verdict.mac == "valid"  # ESME KA (RTDS) x supplier KA: verifies with the RTDS keystore
        else:
            # RTDS publishes no DS private key for the ESME: the signature verifies with the DS
            # public key gbhub made for it (data folder), not with the RTDS certificate.
            from gbhub.tools.keys import load_keystore

            own = analyse(response, load_keystore(VECTORS / "keys" / "rtds", rig_keys(rtds_identity)),
                          bytes.fromhex("90B3D51F30000002"))
            assert own.signature == "valid"
    finally:
        await p.stop()


def rig_keys(rtds_identity):
    rig, _ = rtds_identity
    return rig.data / "keys"


async def test_reference_ecs01a_accepted(rtds_identity, rtds_keystore):
    """RTDS has no ECS01a vector; extra.json carries a reference ECS01a (tariff) command for the
    RTDS ESME, signed by the RTDS supplier and MACed by the RTDS ACB."""
    import json

    from gbhub.tools.premises import Premises

    example = next(e for e in json.loads((VECTORS / "extra.json").read_text()) if "ecs01a" in e["name"])
    frame = bytes.fromhex(example["hex"])
    rig, identity = rtds_identity
    rig = dataclasses.replace(rig, data=None, clock="sim",
                              start=dt.datetime(2015, 1, 1, 0, 0, 30, tzinfo=dt.timezone.utc).timestamp())
    p = Premises(rig, tcp=True, sim=True, identity=identity)
    await p.start()
    try:
        response = decode_message(await p.headend.send_raw(frame, timeout=5))
        assert response.message_code == 0x0019 and response.originator_counter == decode_message(frame).originator_counter
        assert usecases.interpret("ECS01a", response)["ok"]
    finally:
        await p.stop()
