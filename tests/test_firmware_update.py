"""Firmware updates end to end: OTA images built and signed, distributed by the CHF over the OTA
Upgrade cluster on the virtual HAN, checked by the device, activated by CS06 (immediate,
future-dated, cancelled), booted with a boot check and rollback; the RTDS CS06 and firmware-alert
vectors; property tests of the image parser."""
from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from gbcs.asn1 import ActivateFirmwareAlert, FirmwareTransferAlert
from gbcs.catalogue import AlertCode, MessageCode
from gbcs.codec import DecodeError
from gbcs.dlms import DataNotification
from gbcs.frame import decode_message
from gbcs.ota import OtaHeader, OtaImage, build_image
from gbcs.payload import decode_payload
from gbcs.usecases import build_content

from conftest import rtds_rows, vectors_dir

UTC = dt.timezone.utc
_KEY = ec.generate_private_key(ec.SECP256R1())


def _supplier_key(premises):
    return premises.identity.keystore.private_key(premises.identity.supplier, "ds")


def _image(premises, version=0x00020000, size=3000, **kw):
    return build_image(bytes(range(256)) * (size // 256) + b"x" * (size % 256), manufacturer_code=0x1234, image_type=1,
                       version=version, sign_key=kw.pop("sign_key", None) or _supplier_key(premises), **kw)


async def _alert(premises, code, pred=lambda a: True):
    return await premises.headend.wait_alert(lambda a: a.message.message_code == code and pred(a), timeout=30)


def _alert_code(alert):
    p = decode_payload(alert.message)
    return p.alert_code if isinstance(p, DataNotification) else getattr(p, "alert_code", None)


async def _distribute(premises, image, target):
    events = []
    premises.chf.ota_listeners.append(events.append)
    premises.chf.distribute_firmware(image.encode(), [target.eui])
    await premises.clock.advance(image.size / 48 * 0.02 + 10)
    return events


# ------------------------------------------------------------------------------------- end to end
async def test_esme_update_success(premises):
    esme = premises.esme
    image = _image(premises, size=20000)
    events = await _distribute(premises, image, esme)
    assert [e["event"] for e in events][-1] == "transferred" and events[-1]["verified"]
    receipt = await _alert(premises, MessageCode.FDRA_DLMS)
    assert receipt.signature == "valid" and _alert_code(receipt) == AlertCode.FIRMWARE_VERIFICATION_SUCCESSFUL
    assert decode_payload(receipt.message).details.hash == image.image_hash
    ccs08 = await _alert(premises, MessageCode.CCS08)
    body = decode_payload(ccs08.message)
    assert isinstance(body, FirmwareTransferAlert) and body.alert_code == AlertCode.FIRMWARE_TRANSFER_ALERT_SUCCESS
    assert body.entity_id == esme.eui and body.firmware_version == bytes.fromhex("00020000") and int(body.code) == 0
    assert esme.firmware.standby.image_hash == image.image_hash
    before = (await premises.send("ECS52")).summary["firmware_version"]
    reply = await premises.send("CS06", hash=image.image_hash.hex())
    assert reply.ok and reply.summary == {**reply.summary, "code": "SUCCESS", "firmware_version": "00020000"}
    await premises.clock.advance(1)
    change = await _alert(premises, MessageCode.GCA,
                          lambda a: _alert_code(a) == AlertCode.CHANGE_IN_THE_EXECUTING_FIRMWARE_VERSION)
    assert change.signature == "valid"
    after = await premises.send("ECS52")
    assert after.summary["firmware_version"] == "00020000" != before
    # the previous image stays in the inactive slot; activating it again is a hash mismatch
    again = await premises.send("CS06", hash=image.image_hash.hex())
    assert again.summary["code"] == "NO_IMAGE_HELD"
    import json

    from gbhub.tools.control import premises_status

    status = json.loads(json.dumps(premises_status(premises, 0.0)))  # `gbhub status`
    shown = next(d for d in status["devices"] if d["name"] == "esme")["firmware"]
    assert shown["version"] == "00020000" and shown["standby"] == before and shown["transfer"] is None


async def test_chf_updates_itself(premises):
    chf = premises.chf
    image = _image(premises, version=0x00030000)
    events = await _distribute(premises, image, chf)
    assert events[-1]["event"] == "transferred" and events[-1]["verified"]
    await _alert(premises, MessageCode.FDRA_DLMS, lambda a: a.message.originator == chf.eui)
    await _alert(premises, MessageCode.CCS08)
    reply = await premises.send("CS06", to="chf", hash=image.image_hash.hex())
    assert reply.summary["code"] == "SUCCESS"
    await premises.clock.advance(1)
    assert (await premises.send("ECS52", to="chf")).summary["firmware_version"] == "00030000"
    assert (await premises.send("ECS17b")).ok  # the HAN still routes after the CHF's reboot


async def test_gpf_updates_itself(premises):
    gpf = premises.gpf
    image = _image(premises, version=0x00030001)
    events = await _distribute(premises, image, gpf)
    assert events[-1]["verified"]
    reply = await premises.send("CS06", to="gpf", hash=image.image_hash.hex())
    assert reply.summary["code"] == "SUCCESS"
    await premises.clock.advance(1)
    assert gpf.firmware_version == bytes.fromhex("00030001")


async def test_bad_signature_refused(premises):
    esme = premises.esme
    image = _image(premises, sign_key=_KEY)  # not the supplier's key
    events = await _distribute(premises, image, esme)
    assert events[-1]["event"] == "transferred" and not events[-1]["verified"]
    receipt = await _alert(premises, MessageCode.FDRA_DLMS)
    assert _alert_code(receipt) == AlertCode.FIRMWARE_VERIFICATION_FAILED
    assert decode_payload(receipt.message).details.hash == image.image_hash
    ccs08 = decode_payload((await _alert(premises, MessageCode.CCS08)).message)
    assert ccs08.alert_code == AlertCode.FIRMWARE_TRANSFER_ALERT_FAIL and ccs08.code.name == "IMAGE_DISCARDED"
    assert esme.firmware.standby is None
    reply = await premises.send("CS06", hash=image.image_hash.hex())
    assert reply.summary["code"] == "NO_IMAGE_HELD"


async def test_wrong_hardware_version(premises):
    esme = premises.esme
    image = _image(premises, hw_min=5, hw_max=9)  # the ESME is hardware version 1
    events = await _distribute(premises, image, esme)
    assert events[-1]["event"] == "failed" and events[-1]["code"] == "HARDWARE_VERSION_MISMATCH"
    ccs08 = decode_payload((await _alert(premises, MessageCode.CCS08)).message)
    assert ccs08.code.name == "HARDWARE_VERSION_MISMATCH" and esme.firmware.standby is None


async def test_hash_mismatch_at_activation(premises):
    image = _image(premises)
    await _distribute(premises, image, premises.esme)
    reply = await premises.send("CS06", hash="11" * 32)
    assert not reply.ok and reply.summary["code"] == "HASH_MISMATCH"
    assert premises.esme.firmware_version != image.version


async def test_future_dated_activation_fires_at_simulated_time(premises):
    esme = premises.esme
    image = _image(premises)
    await _distribute(premises, image, esme)
    when = dt.datetime.fromtimestamp(premises.clock.now(), UTC).replace(microsecond=0) + dt.timedelta(hours=2)
    reply = await premises.send("CS06", hash=image.image_hash.hex(), execution_date_time=when)
    assert reply.ok and reply.summary["accepted"]
    await premises.clock.advance(3600)
    assert esme.firmware_version != image.version
    await premises.clock.advance(3600 + 2)
    alert = await _alert(premises, MessageCode.FDA_CS06)
    body = decode_payload(alert.message)
    assert isinstance(body, ActivateFirmwareAlert) and alert.signature == "valid"
    assert body.alert_code == AlertCode.FUTURE_DATE_HAN_INTERFACE_COMMAND_SUCCESSFULLY_ACTIONED
    assert body.execution_date_time == when and body.originator_counter == reply.reply.message.originator_counter
    assert body.outcome.firmware_version == image.version
    assert esme.firmware_version == image.version


async def test_future_dated_activation_survives_restart(premises_factory, tmp_path):
    p = await premises_factory(tmp_path / "site", ihd=False)
    image = _image(p)
    await _distribute(p, image, p.esme)
    when = dt.datetime.fromtimestamp(p.clock.now(), UTC).replace(microsecond=0) + dt.timedelta(hours=1)
    assert (await p.send("CS06", hash=image.image_hash.hex(), execution_date_time=when)).ok
    start = p.clock.now()
    await p.stop()
    p2 = await premises_factory(tmp_path / "site", ihd=False, start=start + 7200)
    await p2.clock.advance(2)
    body = decode_payload((await _alert(p2, MessageCode.FDA_CS06)).message)
    assert int(body.outcome.code) == 0
    await p2.clock.advance(1)
    assert p2.esme.firmware_version == image.version


async def test_future_dated_activation_cancelled(premises):
    esme = premises.esme
    image = _image(premises)
    await _distribute(premises, image, esme)
    when = dt.datetime.fromtimestamp(premises.clock.now(), UTC).replace(microsecond=0) + dt.timedelta(hours=1)
    assert (await premises.send("CS06", hash=image.image_hash.hex(), execution_date_time=when)).ok
    cancel = await premises.send("CS06", hash=image.image_hash.hex(), execution_date_time="never")
    assert cancel.ok and cancel.summary["accepted"] and esme.activation.pending is None
    await premises.clock.advance(7200)
    assert esme.firmware_version != image.version
    with pytest.raises(Exception):
        await premises.headend.wait_alert(lambda a: a.message.message_code == MessageCode.FDA_CS06, timeout=1)


@pytest.mark.premises(devices=[])
async def test_boot_check_failure_rolls_back(premises_factory):
    p = await premises_factory(devices=[{"type": "esme", "name": "meter2", "options": {"boot_fail_versions": ["00020000"]}}])
    meter = p.device("meter2")
    good = meter.firmware_version
    image = _image(p)
    await _distribute(p, image, meter)
    reply = await p.send("CS06", to="meter2", hash=image.image_hash.hex())
    assert reply.summary["code"] == "SUCCESS"  # accepted: the check happens at boot
    await p.clock.advance(1)
    alert = await _alert(p, MessageCode.GCA, lambda a: _alert_code(a) == AlertCode.FIRMWARE_VERIFICATION_FAILED_AT_POWER_ON)
    assert alert.message.originator == meter.eui and alert.signature == "valid"
    assert meter.firmware_version == good
    assert (await p.send("ECS52", to="meter2")).summary["firmware_version"] == good.hex().upper()
    # the image that failed its boot check is not tried again: activation failure
    assert (await p.send("CS06", to="meter2", hash=image.image_hash.hex())).summary["code"] == "ACTIVATION_FAILURE"


async def test_transfer_resumes_after_power_cut(premises):
    esme = premises.esme
    image = _image(premises, size=30000)
    premises.chf.distribute_firmware(image.encode(), [esme.eui])
    await premises.clock.advance(400 * 0.02)  # about 19 kB through
    got = esme.transfer["offset"]
    assert 4096 <= got < image.size
    await esme.power_off()
    await esme.start()
    assert esme.transfer["offset"] == got // 4096 * 4096  # whole chunks survive
    events = []
    premises.chf.ota_listeners.append(events.append)
    await premises.clock.advance(image.size / 48 * 0.02 + 10)
    assert events[-1]["event"] == "transferred" and events[-1]["verified"]
    assert esme.firmware.standby.image_hash == image.image_hash


async def test_cs06_rejects_counter_mismatch_and_short_hash(premises):
    from gbcs.asn1 import ActivateFirmware

    from gbhub.wan.headend import CommandRejected

    he = premises.headend
    with pytest.raises(CommandRejected):
        await he.request(recipient=premises.esme.eui, message_code=MessageCode.CS06, critical=True,
                         content=ActivateFirmware(b"\x01" * 32, 7).encode())
    with pytest.raises(ValueError):
        build_content("CS06", 1, hash="0102")


# ------------------------------------------------------------------------------------- RTDS
def _rtds(folder):
    vectors_dir()
    return sorted((r for r in rtds_rows() if r["file"].startswith(folder + "/")), key=lambda r: r["file"])


def test_rtds_firmware_vectors_decode_and_reencode():
    for folder in ("11.3_CS06", "NA_CCS08", "NA_FDRA-DLMS", "NA_FDRA-ZigBee"):
        rows = _rtds(folder)
        assert rows
        for row in rows:
            m = decode_message(row["bytes"])
            assert m.encode() == row["bytes"]
            p = decode_payload(m)
            assert p.encode() == m.content, row["file"]
            if "_COMMAND_" in row["file"] or "PRECOMMAND" in row["file"]:
                kw = {"hash": p.manufacturer_image_hash}
                if p.execution_date_time is not None:
                    kw["execution_date_time"] = "never" if p.is_cancellation else p.execution_date_time
                assert build_content("CS06", m.originator_counter, **kw) == m.content


async def test_rtds_cs06_answered_like_reference_with_held_image(tmp_path_factory, rtds_keystore):
    """examples/rtds.toml declares the image RTDS names (hash AA75...) held by the ESME with
    version 0123ABCE: the RTDS CS06 commands, sent in counter order, get the reference answers."""
    from pathlib import Path

    from gbhub.tools.premises import Premises, ensure_keys
    from gbhub.tools.rig import load_rig

    vectors_dir()
    rig = load_rig(Path(__file__).resolve().parent.parent / "examples" / "rtds.toml")
    rig.data = tmp_path_factory.mktemp("rtds-cs06")
    identity = ensure_keys(rig)
    rig = dataclasses.replace(rig, data=None, clock="sim", start=dt.datetime(2015, 1, 1, tzinfo=UTC).timestamp())
    p = Premises(rig, tcp=False, sim=True, identity=identity)
    await p.start()
    try:
        rows = {r["file"]: r["bytes"] for r in _rtds("11.3_CS06")}
        commands = sorted((decode_message(b).originator_counter, f, b) for f, b in rows.items()
                          if "_COMMAND_" in f and "PRECOMMAND" not in f)
        for _, name, frame in commands:
            ours = decode_message(await p.headend.send_raw(frame, timeout=5))
            theirs = decode_message(rows[name.replace("_COMMAND_", "_RESPONSE_")])
            assert (ours.message_code, ours.originator_counter, ours.recipient, ours.frame) == \
                (theirs.message_code, theirs.originator_counter, theirs.recipient, theirs.frame), name
            assert ours.date_time[:6] == theirs.date_time[:6], name  # dated by the device's clock: 2015-01-01
            mine, ref = decode_payload(ours), decode_payload(theirs)
            assert type(mine) is type(ref), name
            if "IMMEDIATE_SUCCESS" in name or type(ref).__name__ == "CommandAccepted":
                assert ours.content == theirs.content, name
            else:  # the error answer names the version running (ours: the one activated above)
                assert mine.code == ref.code, name
            await p.clock.advance(0)
    finally:
        await p.stop()


# ------------------------------------------------------------------------------------- parser
def test_image_round_trip_and_fields():
    image = build_image(b"firmware", manufacturer_code=0x1234, image_type=7, version=0x0123ABCD, sign_key=_KEY,
                        hw_min=1, hw_max=2, header_string="I am a GFI ESME[] firmware image")
    data = image.encode()
    assert data[:4] == bytes.fromhex("1EF1EE0B") and data[6:8] == (60).to_bytes(2, "little")
    assert OtaImage.decode(data) == image and image.verify(_KEY.public_key())
    assert image.version == bytes.fromhex("0123ABCD") and image.header.field_control == 4
    assert data[-66:-64] == b"\x00\x40"


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_image_parser_takes_any_bytes(data):
    try:
        image = OtaImage.decode(data)
    except DecodeError:
        return
    assert image.encode() == data


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200), st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF),
       st.one_of(st.none(), st.integers(0, 0xFFFF)), st.binary(max_size=32), st.integers(0, 255), st.data())
def test_image_round_trips_and_mutations_never_crash(body, mc, it, version, hw, text, force, data):
    header = OtaHeader(mc, it, version, text, hw, None if hw is None else 0xFFFF)
    image = OtaImage(header, body, bytes(64), force)
    encoded = image.encode()
    again = OtaImage.decode(encoded)
    assert again.encode() == encoded and again.manufacturer_image == body and again.header.file_version == version
    i = data.draw(st.integers(0, len(encoded) - 1))
    mutated = encoded[:i] + bytes([encoded[i] ^ data.draw(st.integers(1, 255))]) + encoded[i + 1:]
    try:
        OtaImage.decode(mutated[: data.draw(st.integers(0, len(mutated)))])
    except DecodeError:
        pass


# ------------------------------------------------------------------------------------- WAN, wakes, CLI
async def test_update_firmware_request_over_the_wan(premises):
    """The distribution request as a head-end sends it (UPDATE_FIRMWARE control frames over the
    TCP bridge, in parts), and the CHF's events coming back to that head-end."""
    import asyncio

    image = _image(premises, size=70000)  # more than one control frame
    he = premises.headend
    request = await he.update_firmware(image.encode(), [premises.esme.eui, b"\x00\x11" * 4])
    for _ in range(500):
        if len(he.firmware_events) >= 2:
            break
        await asyncio.sleep(0.01)
    by = {e["device"]: e for e in he.firmware_events}
    assert by["0011001100110011"]["event"] == "failed" and by["0011001100110011"]["code"] == "FILE_TRANSFER_FAILURE"
    assert by[premises.esme.eui_hex]["event"] == "offered" and by[premises.esme.eui_hex]["request"] == request
    await premises.clock.advance(image.size / 48 * 0.02 + 10)
    for _ in range(200):
        if he.firmware_events[-1]["event"] == "transferred":
            break
        await asyncio.sleep(0.01)
    events = [e for e in he.firmware_events if e["device"] == premises.esme.eui_hex]
    assert [e["event"] for e in events][0] == "offered" and "progress" in [e["event"] for e in events]
    assert events[-1] == {**events[-1], "event": "transferred", "verified": True, "request": request, "version": "00020000"}
    # a part that does not follow the previous one drops the upload; a too-large image is refused
    await he.link.send(bytes((0, 4)) + (7).to_bytes(4, "big") + (1 << 30).to_bytes(4, "big") + bytes(4) + b"\x01" + bytes(8) + b"x")
    for _ in range(200):
        if he.firmware_events[-1].get("request") == 7:
            break
        await asyncio.sleep(0.01)
    assert he.firmware_events[-1]["code"] == "REQUEST_REFUSED"


async def test_fetch_spread_over_wakes(premises):
    """A sleepy device (as the GSME will be) misses the ImageNotify and fetches a limited number
    of blocks per wake; the transfer continues across wakes and ends verified."""
    import asyncio

    esme, air, clock = premises.esme, premises.air, premises.clock
    image = _image(premises, size=12000)
    air.set_sleepy(esme.eui, True)
    premises.chf.distribute_firmware(image.encode(), [esme.eui])
    await clock.advance(120)
    assert esme.transfer is None and premises.chf.ota_server.pending_for(esme.eui)
    wakes, result = 0, "paused"
    while result == "paused":
        air.set_sleepy(esme.eui, False)
        task = asyncio.ensure_future(esme.ota_client.fetch(max_blocks=60))
        while not task.done():
            await clock.advance(0.5)
        result = task.result()
        air.set_sleepy(esme.eui, True)
        wakes += 1
        await clock.advance(1800)
    assert result == "verified" and wakes == -(-image.size // (48 * 60))
    assert esme.firmware.standby.image_hash == image.image_hash and not premises.chf.ota_server.pending_for(esme.eui)


def test_cli_build_inspect(tmp_path):
    import json
    import subprocess
    import sys

    from cryptography.hazmat.primitives import serialization

    from conftest import ROOT

    key = tmp_path / "supplier-ds.key"
    key.write_bytes(_KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    (tmp_path / "fw.bin").write_bytes(b"firmware" * 100)

    def gbhub(*args):
        return subprocess.run([sys.executable, "-m", "gbhub", *args], capture_output=True, text=True, cwd=ROOT, timeout=60)

    out = gbhub("firmware", "build", "--manufacturer-code", "4660", "--image-type", "0x0002", "--version", "0x0123ABCE",
                "--hw-min", "1", "--hw-max", "3", "--sign-key", str(key), str(tmp_path / "fw.bin"), str(tmp_path / "fw.ota"))
    assert out.returncode == 0, out.stderr
    info = json.loads(gbhub("firmware", "inspect", str(tmp_path / "fw.ota")).stdout)
    assert info["manufacturer_code"] == "0x1234" and info["version"] == "0123ABCE" and info["hw_max"] == 3
    assert info["signature"] == "unverified" and len(info["manufacturer_image_hash"]) == 64
    bad = gbhub("firmware", "inspect", str(tmp_path / "fw.bin"))
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "not an OTA image" in bad.stderr
    assert gbhub("firmware", "build", "--manufacturer-code", "x", "--image-type", "1", "--version", "1", "--sign-key",
                 str(key), "a", "b").returncode == 2


async def test_distribution_requests_from_outside_are_bounded(premises):
    """Random UPDATE_FIRMWARE frames (outside input) never crash the CHF and never make it hold
    more than a few partial uploads or remember unbounded requesters."""
    import random

    chf, rng = premises.chf, random.Random(0)
    for i in range(3000):
        head = bytes((0, 4)) + rng.randbytes(4) + rng.randrange(1 << 21).to_bytes(4, "big")
        frame = head + rng.choice([bytes(4), rng.randbytes(4)]) + bytes((rng.randrange(4),)) + rng.randbytes(rng.randrange(80))
        chf._on_firmware_control(object(), frame)
        assert len(chf._uploads) <= 4 and len(chf._requesters) <= 64
    assert chf.fault_count == 0 and not chf.ota_server.offers


async def test_bad_image_is_in_the_security_log(premises):
    image = _image(premises, sign_key=_KEY)
    await _distribute(premises, image, premises.esme)
    entry = premises.esme.security_log()[-1]
    assert entry["code"] == "firmware_rejected" and "signature" in entry["reason"]


async def test_gbz_receipt_form_matches_rtds(premises):
    """The GSME's form of the receipt (FDRA-ZigBee, GBZ alert) as the RTDS vector has it
    (tests/test_firmware_gas.py has the GSME receive images end to end)."""
    vectors_dir()
    row = next(r for r in rtds_rows() if r["file"].startswith("NA_FDRA-ZigBee/"))
    reference = decode_payload(decode_message(row["bytes"]))
    gsme = premises.device("gsme")
    assert gsme.RECEIPT_FORM == "gbz"
    await gsme.firmware_receipt_alert(AlertCode.FIRMWARE_VERIFICATION_SUCCESSFUL, reference.body.manufacturer_hash)
    alert = await _alert(premises, MessageCode.FDRA_ZigBee)
    ours, theirs = alert.message.content, decode_message(row["bytes"]).content
    assert ours[:5] + ours[9:] == theirs[:5] + theirs[9:] and alert.signature == "valid"  # all but the time
    assert decode_payload(alert.message).timestamp == int(premises.clock.now()) - 946684800


@pytest.mark.premises(devices=[{"type": "esme", "name": "small", "options": {"max_image_size": 2000}}])
async def test_image_too_large_for_the_device(premises):
    events = await _distribute(premises, _image(premises, size=5000), premises.device("small"))
    assert events[-1]["event"] == "failed" and events[-1]["code"] == "IMAGE_DISCARDED"
    assert not premises.chf.ota_server.offers


@pytest.mark.premises(devices=[{"type": "esme", "name": "v2", "options": {"version_behaviour": {"00020000": {"gbt_block_size": 64}}}}])
async def test_rig_declared_behaviour_per_version(premises):
    meter = premises.device("v2")
    assert meter.gbt_block_size is None
    image = _image(premises)
    await _distribute(premises, image, meter)
    assert (await premises.send("CS06", to="v2", hash=image.image_hash.hex())).summary["code"] == "SUCCESS"
    await premises.clock.advance(1)
    assert meter.gbt_block_size == 64  # the new image answers in GBT blocks of 64 bytes
    reply = await premises.send("ECS17b", to="v2")
    assert reply.ok and len(reply.reply.raw) > 64
    other = type(meter)(b"\x00" * 8, clock=premises.clock, credentials=meter.credentials, trust=meter.trust,
                        version_behaviour={"00020000": {"no_such_option": 1}})
    with pytest.raises(ValueError):
        await other.start()


async def test_no_firmware_for_an_ihd(premises):
    events = await _distribute(premises, _image(premises), premises.ihd)
    assert events[-1]["event"] == "failed" and events[-1]["code"] == "FILE_TRANSFER_FAILURE"
    ccs08 = decode_payload((await _alert(premises, MessageCode.CCS08)).message)
    assert ccs08.entity_id == premises.ihd.eui and ccs08.code.name == "FILE_TRANSFER_FAILURE"


async def test_a_server_that_does_not_move_the_transfer_on_is_given_up(premises):
    """A misbehaving OTA server (the CHF's handler answering blocks for other offsets than asked)
    never loops the client forever: it gives up, ends with ABORT, and keeps nothing."""
    server = premises.chf.ota_server
    real = server._block

    async def wrong_offset(frame, command):
        answer = await real(frame, command)
        return answer.__class__.build(answer.cluster_id, "ImageBlockResponse", server_to_client=True,
                                      **{**answer.as_dict(), "file_offset": answer["file_offset"] + 1})

    premises.chf.zcl_server.add_command(0x0019, 0x03, wrong_offset)
    events = await _distribute(premises, _image(premises), premises.esme)
    assert events[-1]["event"] == "failed" and premises.esme.transfer is None
