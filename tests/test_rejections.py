"""Defect 7 (issue 8): a device that refuses a command answers with an alert, not a response; the
head-end must report that alert at once instead of waiting out its timeout (`CommandRejected`).

Every wait below is far longer than a premises needs to answer: on the starting commit these
tests end in `RequestTimeout`, not in the rejection."""
from __future__ import annotations

import asyncio

import pytest

from gbcs import usecases
from gbcs.catalogue import AlertCode, MessageCode
from gbcs.frame import decode_message
from gbhub.wan.headend import CommandRejected

LONG = 30.0  # seconds: never reached when the rejection is matched


async def test_security_alert_rejects_the_pending_command(premises):
    """A use case the CHF does not serve: it raises 0x8F1E to the ACB; send_use_case raises it."""
    p = premises
    since = len(p.headend.received_alerts)
    with pytest.raises(CommandRejected) as info:
        await p.headend.send_use_case("CS07", recipient=p.chf.eui, timeout=LONG)
    exc = info.value
    assert exc.code == AlertCode.INTEGRITY_CHECK_OF_CONTENT_OR_FORMAT_OF_COMMAND_FAILED
    assert exc.device == p.chf.eui and exc.alert.valid
    assert exc.name == "Integrity check of content or format of command failed"
    assert "0x8F1E" in str(exc) and "02474248400000A2" in str(exc)
    assert not isinstance(exc, TimeoutError)
    # the alert is still an alert like any other
    assert p.headend.received_alerts[since:] and p.headend.received_alerts[-1] is exc.alert
    assert p.headend._pending == {} and p.headend._awaiting == {}
    # and the fixture's own send reports it too
    with pytest.raises(CommandRejected):
        await p.send("CS07", "chf")


async def test_replayed_frame_rejected_through_send_raw(premises):
    """send-raw of a frame the ESME already executed: 0x8F53 (replay) at once."""
    p = premises
    _, _, frame = p.headend.build_use_case("ECS17b", recipient=p.esme.eui)
    first = decode_message(await p.headend.send_raw(frame, timeout=LONG))
    assert first.originator == p.esme.eui
    with pytest.raises(CommandRejected) as info:
        await p.headend.send_raw(frame, timeout=LONG)
    assert info.value.code == AlertCode.FAILED_AUTHENTICATION_OR_AUTHORISATION_NOT_COVERED_BY_OTHER_CODES
    assert info.value.device == p.esme.eui


async def test_delivery_failure_matches_its_command_exactly(premises):
    """A device not in the CHF device log: the CHF's 0x8F84 (message code 0x00D5) names the
    command's originator, recipient and counter, and fails exactly that command."""
    p = premises
    stranger = bytes.fromhex("02474248400000C9")
    p.identity.keystore.add_public_key(stranger, "ka", p.identity.keystore.public_key(p.esme.eui, "ka"))
    counter = p.headend.next_counter()
    with pytest.raises(CommandRejected) as info:
        await p.headend.request(recipient=stranger, message_code=MessageCode.ECS45, critical=False, timeout=LONG,
                                content=usecases.build_content("ECS45", counter), counter=counter)
    exc = info.value
    assert exc.code == AlertCode.FAILURE_TO_DELIVER_REMOTE_PARTY_MESSAGE_TO_ESME and exc.device == p.chf.eui
    assert exc.alert.message.message_code == MessageCode.MessageDeliveryFailure


async def test_a_rejection_fails_only_a_command_to_that_device(premises):
    """Commands to other devices in flight at the same time are answered as usual."""
    p = premises
    read = asyncio.ensure_future(p.headend.send_use_case("ECS17b", recipient=p.esme.eui, timeout=LONG))
    refused = asyncio.ensure_future(p.headend.send_use_case("CS07", recipient=p.chf.eui, timeout=LONG))
    reply = await read
    assert reply.ok
    with pytest.raises(CommandRejected):
        await refused


async def test_alerts_unrelated_to_commands_reject_nothing(premises):
    """CS14 (device log changed) from the CHF while more commands to the CHF are in flight is no
    rejection: they are all answered."""
    p = premises
    since = len(p.headend.received_alerts)
    replies = await asyncio.gather(
        p.headend.send_use_case("CCS02", recipient=p.chf.eui, params={"device": p.ihd.eui}, timeout=LONG),
        *(p.headend.send_use_case("CCS06", recipient=p.chf.eui, timeout=LONG) for _ in range(5)),
    )
    assert all(r.ok for r in replies)
    await p.headend.wait_alert(lambda a: a.message.message_code == MessageCode.CS14, since=since)
