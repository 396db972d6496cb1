"""Firmware updates of the GSME and the PPMID end to end (README "Firmware"): the sleepy GSME
learns of an image from the GPF's notification flag and fetches it across its wakes (receipt in
GBZ form, CS06 through its queue, GCS38 after the reboot); the PPMID takes an image like the
ESME, CS06 activates it, CS08 reads the version and CS09 (0x8F8B) reports the activation."""
from __future__ import annotations

import asyncio

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from gbcs.asn1 import ActivateImageResult, FirmwareTransferAlert, FirmwareVersionAlert
from gbcs.catalogue import AlertCode, MessageCode
from gbcs.gbz import FirmwareDistributionReceipt
from gbcs.ota import build_image
from gbcs.payload import decode_payload
from gbhub.firmware.gas_data import NEW_OTA_FIRMWARE

WAKE = 1800
pytestmark = pytest.mark.premises(ihd=False)
_KEY = ec.generate_private_key(ec.SECP256R1())


def _image(premises, version=0x00020000, size=5000, sign_key=None):
    key = sign_key or premises.identity.keystore.private_key(premises.identity.supplier, "ds")
    return build_image(bytes(range(256)) * (size // 256) + b"g" * (size % 256), manufacturer_code=0x1234, image_type=1,
                       version=version, sign_key=key)


async def _alert(premises, code, pred=lambda a: True):
    return await premises.headend.wait_alert(lambda a: a.message.message_code == code and pred(a), timeout=30)


async def _queued(premises, use_case, to="gsme", **params):
    task = asyncio.ensure_future(premises.send(use_case, to=to, **params))
    await premises.clock.advance(1)
    return task


async def _after_wake(premises, task):
    for _ in range(3):
        await premises.clock.advance(WAKE)
        if task.done():
            break
    return await task


async def _fetch_across_wakes(premises, gsme, image, per_wake=40):
    """Offer `image` to the GSME and let it wake until the CHF saw the end; returns (events,
    offsets after each wake)."""
    gsme.ota_blocks_per_wake = per_wake
    events = []
    premises.chf.ota_listeners.append(events.append)
    premises.chf.distribute_firmware(image.encode(), [gsme.eui])
    assert premises.gpf.notification_flags(gsme.eui) & NEW_OTA_FIRMWARE
    await premises.clock.advance(5)  # ImageNotify reached it: a sleepy GSME waits for its wake
    offsets = [(gsme.transfer or {}).get("offset", 0)]
    for _ in range(12):
        await premises.clock.advance(WAKE)
        if any(e["event"] in ("transferred", "failed") for e in events):
            break
        offsets.append(gsme.transfer["offset"])
    return events, offsets


async def test_gsme_update_across_wakes(premises):
    gsme, gpf = premises.device("gsme"), premises.gpf
    before = gsme.firmware_version
    image = _image(premises)
    events, offsets = await _fetch_across_wakes(premises, gsme, image)
    # 5000 bytes in 48-byte blocks, 40 a wake: the image came over three wakes, never all at once
    assert offsets[0] < 40 * 48 and len(offsets) >= 3 and offsets == sorted(offsets) and offsets[-1] < image.size
    assert events[-1]["event"] == "transferred" and events[-1]["verified"]
    assert not gpf.notification_flags(gsme.eui) & NEW_OTA_FIRMWARE  # nothing waits any more
    receipt = await _alert(premises, MessageCode.FDRA_ZigBee)
    body = decode_payload(receipt.message)
    assert receipt.signature == "valid" and body.alert_code == AlertCode.FIRMWARE_VERIFICATION_SUCCESSFUL
    assert body.body == FirmwareDistributionReceipt(image.image_hash)
    ccs08 = decode_payload((await _alert(premises, MessageCode.CCS08)).message)
    assert isinstance(ccs08, FirmwareTransferAlert) and ccs08.entity_id == gsme.eui and int(ccs08.code) == 0
    assert gsme.firmware.standby.image_hash == image.image_hash
    # CS06 goes through the CHF's queue and is executed at the next wake; the GSME reboots
    reply = await _after_wake(premises, await _queued(premises, "CS06", hash=image.image_hash.hex()))
    assert reply.ok and reply.summary["code"] == "SUCCESS" and reply.summary["firmware_version"] == "00020000"
    await premises.clock.advance(1)
    change = await _alert(premises, MessageCode.GCA,
                          lambda a: a.message.originator == gsme.eui
                          and a.code == AlertCode.CHANGE_IN_THE_EXECUTING_FIRMWARE_VERSION)
    assert change.signature == "valid"
    assert gsme.state == "on" and gsme.firmware_version == image.version != before
    version = await _after_wake(premises, await _queued(premises, "GCS38"))
    assert version.ok and "00020000" in str(version.summary).upper()


async def test_gsme_refuses_a_bad_signature(premises):
    gsme = premises.device("gsme")
    image = _image(premises, sign_key=_KEY)  # not the supplier's key
    events, _ = await _fetch_across_wakes(premises, gsme, image, per_wake=200)
    assert events[-1]["event"] == "transferred" and not events[-1]["verified"]
    receipt = decode_payload((await _alert(premises, MessageCode.FDRA_ZigBee)).message)
    assert receipt.alert_code == AlertCode.FIRMWARE_VERIFICATION_FAILED
    assert receipt.body == FirmwareDistributionReceipt(image.image_hash)
    ccs08 = decode_payload((await _alert(premises, MessageCode.CCS08)).message)
    assert ccs08.alert_code == AlertCode.FIRMWARE_TRANSFER_ALERT_FAIL and ccs08.code.name == "IMAGE_DISCARDED"
    assert gsme.firmware.standby is None
    assert gsme.security_log()[-1]["code"] == "firmware_rejected"


async def test_ppmid_update_success(premises):
    ppmid = premises.device("ppmid")
    before = (await premises.send("CS08", to="ppmid")).summary
    image = _image(premises, version=0x00020003, size=4000)
    events = []
    premises.chf.ota_listeners.append(events.append)
    premises.chf.distribute_firmware(image.encode(), [ppmid.eui])
    await premises.clock.advance(image.size / 48 * 0.02 + 10)
    assert events[-1]["event"] == "transferred" and events[-1]["verified"]
    receipt = await _alert(premises, MessageCode.FDRA_DLMS, lambda a: a.message.originator == ppmid.eui)
    assert receipt.signature == "valid" and decode_payload(receipt.message).details.hash == image.image_hash
    reply = await premises.send("CS06", to="ppmid", hash=image.image_hash.hex())
    assert reply.ok and reply.summary["code"] == "SUCCESS" and reply.summary["firmware_version"] == "00020003"
    await premises.clock.advance(1)
    cs09 = await _alert(premises, MessageCode.CS09, lambda a: a.message.originator == ppmid.eui)
    body = decode_payload(cs09.message)
    assert cs09.signature == "valid" and isinstance(body, FirmwareVersionAlert)
    assert body.alert_code == AlertCode.READ_FIRMWARE_VERSION_ALERT and cs09.code == AlertCode.READ_FIRMWARE_VERSION_ALERT
    assert body.firmware_version == image.version and body.activate_image == ActivateImageResult.SUCCESS
    after = await premises.send("CS08", to="ppmid")
    assert after.ok and after.summary != before and "00020003" in str(after.summary).upper()
    assert ppmid.firmware_version == image.version


async def test_gsme_transfer_resumes_after_a_power_cut(premises):
    """A power cut between wakes loses at most the blocks not yet in a whole 4 KiB chunk; the next
    wakes go on from there and the image is verified."""
    gsme = premises.device("gsme")
    image = _image(premises, version=0x00020004, size=12000)
    gsme.ota_blocks_per_wake = 120  # 5760 bytes a wake: one whole chunk and some in RAM
    events = []
    premises.chf.ota_listeners.append(events.append)
    premises.chf.distribute_firmware(image.encode(), [gsme.eui])
    while gsme.transfer is None or gsme.transfer["offset"] < 4096:
        await premises.clock.advance(WAKE)
    await gsme.power_off()
    await gsme.start()
    assert gsme.transfer["offset"] % 4096 == 0 and gsme.transfer["offset"] >= 4096  # resumed from NVM, not from 0
    for _ in range(6):
        await premises.clock.advance(WAKE)
        if events and events[-1]["event"] == "transferred":
            break
    assert events[-1]["event"] == "transferred" and events[-1]["verified"]
    assert gsme.firmware.standby.image_hash == image.image_hash


async def test_ppmid_image_failing_its_boot_check_is_reported_by_cs09(premises):
    ppmid = premises.device("ppmid")
    before = ppmid.firmware_version
    image = _image(premises, version=0x00020005, size=3000)
    ppmid.boot_fail_versions = frozenset({image.version})  # as the rig option `boot_fail_versions` declares
    premises.chf.distribute_firmware(image.encode(), [ppmid.eui])
    await premises.clock.advance(image.size / 48 * 0.02 + 10)
    assert (await premises.send("CS06", to="ppmid", hash=image.image_hash.hex())).summary["code"] == "SUCCESS"
    await premises.clock.advance(1)
    body = decode_payload((await _alert(premises, MessageCode.CS09)).message)
    assert body.activate_image == ActivateImageResult.FAILURE and body.firmware_version == before
    assert ppmid.firmware_version == before
