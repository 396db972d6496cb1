"""Large responses as GBT blocks (FACTS 1.9): a device sends a message longer than its `gbt_limit`
as GBT blocks, the CHF passes them through, the head-end reassembles and verifies them; the
default limit leaves every response the reference device sent whole unsegmented."""
from __future__ import annotations

import datetime as dt

import pytest

from conftest import rtds_rows
from gbhub.firmware.gbcs_device import DEFAULT_GBT_LIMIT


def test_default_limit_keeps_reference_responses_whole():
    rows = [r for r in rtds_rows() if r["cra"] == "Response"]
    if not rows:
        pytest.skip("no RTDS vectors")
    assert max(len(r["bytes"]) for r in rows) < DEFAULT_GBT_LIMIT


@pytest.mark.premises(devices=[{"type": "esme", "name": "small", "options": {"gbt_limit": 300, "gbt_block_size": 128}}])
async def test_long_response_goes_up_in_blocks_and_is_reassembled(premises):
    esme = premises.device("small")
    sent: list[bytes] = []
    send = esme.send_gbcs

    async def tap(frame: bytes) -> None:
        sent.append(frame)
        await send(frame)

    esme.send_gbcs = tap
    await premises.clock.advance(12 * 3600)  # 24 half-hour profile entries
    start = dt.datetime.fromtimestamp(premises.clock.now() - 86400, dt.timezone.utc)
    reply = await premises.send("ECS22b", to="small", start=start, end=premises.headend.utcnow())
    assert reply.ok and len(reply.reply.raw) > 300
    blocks = [f for f in sent if f[:2] == b"\xdd\x09"]
    assert len(blocks) == len(sent) >= 3  # only blocks went up, each at most 128 data bytes
    # the default ESME sends the same read whole
    reply = await premises.send("ECS22b", to=premises.esme.eui, start=start, end=premises.headend.utcnow())
    assert reply.ok and len(reply.reply.raw) < DEFAULT_GBT_LIMIT


def test_bad_limits_are_refused():
    from gbhub.firmware.clock import SimClock
    from gbhub.meter import Esme

    with pytest.raises(ValueError, match="gbt_limit"):
        Esme("02474248400000A0", clock=SimClock(0), credentials=None, trust=None, gbt_limit=-1)
