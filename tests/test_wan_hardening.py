"""Issue 8, the WAN side: acknowledged delivery of queued frames (defect 1), responses correlated
per frame (defect 2), byte bounds on unauthenticated input (defect 3), a fair bounded CHF inbox
(defect 4) and malformed frames for HAN devices answered with 0x8F1E (defect 6).

Real premises on a real TCP bridge, with raw TCP clients written here as the hostile party."""
from __future__ import annotations

import asyncio
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gbcs import usecases
from gbcs.catalogue import AlertCode, MessageCode
from gbcs.frame import CRA, GbtBlock, Reassembler, decode_message, peek_header
from gbcs.payload import decode_payload
from gbhub.tools.premises import Premises
from gbhub.tools.rig import default_rig
from gbhub.wan.bridge import TAKE, ack_frame, InProcessBridge, TcpBridge, TcpClient, WanDown, encode_frame
from gbhub.wan.headend import HeadEnd

MALFORMED = AlertCode.INTEGRITY_CHECK_OF_CONTENT_OR_FORMAT_OF_COMMAND_FAILED


async def wait_for(pred, timeout=5.0):
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not pred():
        if loop.time() > end:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def alert_code(alert) -> int | None:
    try:
        return getattr(decode_payload(alert.message), "alert_code", None)
    except Exception:  # noqa: BLE001
        return None


def headend_for(p, link, **kw) -> HeadEnd:
    ident = p.identity
    return HeadEnd(link, ident.keystore, supplier=ident.supplier, acb=ident.acb, clock=p.clock, **kw)


def ecs17b(p, he: HeadEnd):
    """A prepared ECS17b command to the ESME: (message, frame)."""
    counter = he.next_counter()
    content = usecases.build_content("ECS17b", counter, now=he.utcnow(), originator=he.supplier, recipient=p.esme.eui)
    return he.build_command(recipient=p.esme.eui, message_code=MessageCode.ECS17b, content=content, critical=False,
                            counter=counter)


# --------------------------------------------------------------------------------------------
# Defect 1: queued frames only to a head-end that takes them
# --------------------------------------------------------------------------------------------


async def test_queued_alerts_survive_a_restart_and_a_port_probe(premises_factory, gbhub_identity, tmp_path):
    """Defect 1: alerts queued while the WAN was down are not drained at boot into a bridge with
    no head-end, nor into a client that connects and closes; a head-end that takes them gets
    them in order, and only its acknowledgement empties the queue. `set_link(False)` is runtime
    state: the restarted premises has its link enabled."""
    p = await premises_factory(tmp_path / "site")
    p.bridge.set_link(False)
    for code in (0x8F32, 0x8F35, 0x8F36):
        await p.esme.raise_alert(code)
    await p.clock.advance(1)
    queued = p.chf.wan_queue()
    assert len(queued) >= 3
    await p.stop()

    rig = default_rig(tmp_path / "site")
    rig.clock = "sim"
    rig.start = p.clock.now()
    q = Premises(rig, tcp=True, sim=True, identity=gbhub_identity, headend_takes_queued=False)  # as `gbhub run` does
    await q.start()
    try:
        assert q.bridge.link_enabled and not q.bridge.up  # no head-end takes frames: WAN down
        await q.clock.advance(1)
        assert q.chf.wan_queue()[: len(queued)] == queued
        for _ in range(3):  # port probes
            _, w = await asyncio.open_connection("127.0.0.1", q.wan_port)
            w.close()
            await w.wait_closed()
        # a client that claims to take queued frames, reads nothing and never acknowledges
        q.bridge.ack_timeout = 0.3
        r, w = await asyncio.open_connection("127.0.0.1", q.wan_port)
        w.write(encode_frame(TAKE))
        await wait_for(lambda: q.bridge.stats["takers_demoted"] == 1)
        w.close()
        await q.clock.advance(1)
        assert q.chf.wan_queue()[: len(queued)] == queued
        link = await TcpClient("127.0.0.1", q.wan_port).connect()
        bystander = headend_for(q, await TcpClient("127.0.0.1", q.wan_port).connect())  # `gbhub send`: takes nothing
        he = headend_for(q, link, take_queued=True)
        await wait_for(lambda: q.chf.wan_queue_length == 0)
        assert [a.raw for a in he.received_alerts][: len(queued)] == queued
        assert all(a.valid for a in he.received_alerts)
        assert not any(a.raw in queued for a in bystander.received_alerts)
        await he.close()
        await bystander.close()
    finally:
        await q.stop()


async def test_deliver_stored_needs_an_acknowledgement():
    """Defect 1 (bridge): STORED frames count as delivered only when acknowledged, never beyond
    what the client was given; a bridge with no taker is down."""
    async with TcpBridge(require_client=True, ack_timeout=0.3) as bridge:
        assert not bridge.up
        with pytest.raises(WanDown):
            await bridge.deliver_stored([(1, b"\xdfA")])
        r, w = await asyncio.open_connection("127.0.0.1", bridge.port)
        w.write(encode_frame(TAKE) + encode_frame(ack_frame(99)))  # acknowledges ahead of time
        await wait_for(lambda: bridge.up)
        assert await bridge.deliver_stored([(7, b"\xdfA"), (8, b"\xdfB")]) == 8  # capped at what it got
        w.close()
        await wait_for(lambda: bridge.clients == 0 and not bridge.up)
        async with TcpClient("127.0.0.1", bridge.port) as c:
            got = []
            c.set_receiver(got.append)
            c.take_stored()
            await wait_for(lambda: bridge.up and bridge.takers == 1)
            assert await bridge.deliver_stored([(9, b"\xdfC"), (10, b"\xdfD")]) == 10
            assert got == [b"\xdfC", b"\xdfD"]
    inproc = InProcessBridge(require_client=True)
    quiet = inproc.client()  # in-process: a taker that acknowledges when the frame is read
    assert inproc.up
    task = asyncio.ensure_future(inproc.deliver_stored([(3, b"\xdfE")]))
    await asyncio.sleep(0.01)
    assert not task.done()
    assert await quiet.recv() == b"\xdfE"
    assert await task == 3


async def test_live_alerts_reach_every_connected_head_end(premises):
    """Defect 1: every attached head-end receives live alerts, whether it takes queued frames
    or not."""
    p = premises
    others = [headend_for(p, await TcpClient("127.0.0.1", p.wan_port).connect(), take_queued=take) for take in (True, False)]
    raw = await TcpClient("127.0.0.1", p.wan_port).connect()
    await wait_for(lambda: p.bridge.takers == 2)
    frame = await p.esme.raise_alert(0x8F32)
    await p.clock.advance(1)
    for he in (p.headend, *others):
        await wait_for(lambda: any(a.raw == frame for a in he.received_alerts))
    assert await asyncio.wait_for(raw.recv(), 5) == frame
    for he in others:
        await he.close()
    await raw.close()


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=1, max_size=24).map(lambda b: b"\x00" + b))
def test_control_frames_from_outside_never_break_the_bridge(frame):
    """Defect 1 (new parser of outside input): any control frame from a client is either TAKE,
    LEAVE or a well-formed ACK, or counted and ignored; it never reaches the hub."""
    bridge = InProcessBridge(require_client=True)
    got = []

    async def handler(f):
        got.append(f)

    bridge.on_frame(handler)
    client = bridge.client(take_stored=False)
    asyncio.run(bridge._down(client, frame))
    assert got == []
    known = frame in (TAKE, b"\x00\x00") or (len(frame) == 10 and frame[1] == 0x03)
    assert bridge.stats["control_errors"] == (0 if known else 1)
    assert bridge.up == (frame == TAKE)


# --------------------------------------------------------------------------------------------
# Defect 2: a spoofed header never diverts or suppresses a response
# --------------------------------------------------------------------------------------------


async def test_spoofed_header_never_diverts_the_response(premises):
    """Defect 2: a client repeating the (originator, counter) header of a pending command, with
    garbage after it, before or after the real command: the real head-end gets its response
    every time, the spoofer never gets a response."""
    p = premises
    he = p.headend
    spoofer = await TcpClient("127.0.0.1", p.wan_port).connect()
    for i in range(10):
        msg, frame = ecs17b(p, he)
        spoof = frame[:60] + os.urandom(20)
        assert peek_header(spoof) == peek_header(frame)
        if i % 2:
            await spoofer.send(spoof)
            await asyncio.sleep(0.005)
        task = asyncio.ensure_future(he.exchange(msg, frame, critical=False, timeout=5))
        await asyncio.sleep(0)
        if not i % 2:
            await spoofer.send(spoof)
        reply = await task
        assert reply.valid and reply.message.originator_counter == msg.originator_counter
    await asyncio.sleep(0.05)
    up = []
    while (f := spoofer.recv_nowait()) is not None:
        up.append(decode_message(f))
    assert up and all(m.cra is CRA.ALERT for m in up)  # its garbage was answered, never with a response
    await spoofer.close()


# --------------------------------------------------------------------------------------------
# Defect 3: bounds on what unauthenticated input can make us hold
# --------------------------------------------------------------------------------------------

ORIG = bytes.fromhex("0247424830010000")
RECIP = bytes.fromhex("02474248400000A0")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 5), st.integers(1, 6), st.integers(0, 3000), st.booleans()),
                max_size=120),
       st.integers(1, 6), st.integers(1, 4), st.integers(2000, 9000), st.integers(2000, 20000))
def test_reassembler_bounds_hold_for_any_input(blocks, max_partial, max_sender_partial, max_sender_bytes, max_bytes):
    """Defect 3: whatever blocks arrive, from whichever senders, the partials held stay within
    every bound (count and bytes, per sender and in total); `discard` frees a sender entirely."""
    r = Reassembler(max_partial=max_partial, max_blocks=8, max_bytes=max_bytes, max_sender_partial=max_sender_partial,
                    max_sender_bytes=max_sender_bytes, max_age=10.0)
    now = 0.0
    for sender, counter, number, size, last in blocks:
        now += 0.5
        r.add(GbtBlock(CRA.COMMAND, counter, ORIG, RECIP, MessageCode.ECS17b, number, b"x" * size, last=last), sender=sender, now=now)
        held = {}
        for key, entry in r._partial.items():
            n, b = held.get(key[0], (0, 0))
            held[key[0]] = (n + 1, b + sum(len(x.data) for x in entry[0].values()))
        assert r.pending <= max_partial and r.bytes <= max_bytes
        assert r.bytes == sum(b for _, b in held.values())
        assert all(n <= max_sender_partial and b <= max_sender_bytes for n, b in held.values())
    for sender in range(4):
        r.discard(sender)
    assert r.pending == 0 and r.bytes == 0


def test_reassembler_expires_old_partials():
    """Defect 3: a partial message older than `max_age` is dropped and counted."""
    r = Reassembler(max_age=60.0)
    r.add(GbtBlock(CRA.COMMAND, 1, ORIG, RECIP, MessageCode.ECS17b, 1, b"abc"), sender="a", now=0.0)
    assert r.pending == 1
    r.add(GbtBlock(CRA.COMMAND, 2, ORIG, RECIP, MessageCode.ECS17b, 1, b"abc"), sender="b", now=61.0)
    assert r.pending == 1 and r.expired == 1 and r.bytes == 3


async def test_tcp_connection_cap_and_idle_timeout():
    """Defect 3: connections beyond `max_connections` are closed at once; half a frame with
    nothing more for `idle_timeout` closes the connection."""
    async with TcpBridge(max_connections=2, idle_timeout=0.2) as bridge:
        conns = [await asyncio.open_connection("127.0.0.1", bridge.port) for _ in range(2)]
        await wait_for(lambda: bridge.clients == 2)
        r3, w3 = await asyncio.open_connection("127.0.0.1", bridge.port)
        assert await asyncio.wait_for(r3.read(), 5) == b""
        assert bridge.stats["connections_refused"] == 1
        r1, w1 = conns[0]
        w1.write(b"\x00\x00\x01\x00" + b"x" * 10)  # half a frame, then silence
        assert await asyncio.wait_for(r1.read(), 5) == b""
        assert bridge.stats["idle_closed"] == 1 and bridge.clients == 1
        for _, w in conns + [(r3, w3)]:
            w.close()


async def test_gbt_partials_bounded_per_sender_and_freed_on_disconnect(premises):
    """Defect 3: first blocks of many large GBT messages from one connection are held within the
    per-sender bound, and freed when that connection closes."""
    p = premises
    limit = p.chf._reassembler.max_sender_bytes
    r, w = await asyncio.open_connection("127.0.0.1", p.wan_port)
    for counter in range(1, 41):
        for number in range(1, 6):
            block = GbtBlock(CRA.COMMAND, counter, ORIG, p.esme.eui, MessageCode.ECS17b, number, os.urandom(60_000))
            w.write(encode_frame(block.encode()))
        await w.drain()
    await wait_for(lambda: p.chf._reassembler.overflows > 0)
    assert 0 < p.chf._reassembler.bytes <= limit
    w.close()
    await wait_for(lambda: p.chf._reassembler.bytes == 0 and p.chf._reassembler.pending == 0)


# --------------------------------------------------------------------------------------------
# Defect 4: a flood from one connection does not starve another
# --------------------------------------------------------------------------------------------


async def test_garbage_flood_does_not_starve_a_read(premises_factory, tmp_path):
    """Defect 4: while another connection sends 30,000 garbage frames (each rejected with an
    alert and a security-log line in SQLite, as under `gbhub run`), a read is answered within a
    bounded wait (2 s here; the goal, 1 s, is measured by `gbhub bench soak`: ~50 ms)."""
    p = await premises_factory(tmp_path / "site")
    r, w = await asyncio.open_connection("127.0.0.1", p.wan_port)
    w.write(b"".join(encode_frame(b"\xdf" + os.urandom(19)) for _ in range(30_000)))
    await asyncio.sleep(0.01)
    reply = await p.headend.send_use_case("ECS17b", recipient=p.esme.eui, timeout=2)
    assert reply.ok
    assert p.chf.wan_inbox_dropped > 0
    w.close()


# --------------------------------------------------------------------------------------------
# Defect 6: a malformed frame addressed to a HAN device is answered
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["cra", "truncated"])
async def test_malformed_frame_for_a_han_device_gets_0x8f1e(premises, damage):
    """Defect 6: an invalid CRA byte (or a cut frame) addressed to the ESME is answered with
    alert 0x8F1E, not only a security-log line."""
    p = premises
    _, frame = ecs17b(p, p.headend)
    if damage == "cra":
        s = frame.index(b"\xdf")
        bad = frame[: s + 2] + b"\x07" + frame[s + 3 :]
    else:
        bad = frame[:-20]
    assert peek_header(bad)[3] == p.esme.eui
    since = len(p.headend.received_alerts)
    await p.headend.link.send(bad)
    alert = await p.headend.wait_alert(lambda a: alert_code(a) == MALFORMED, since=since, timeout=5)
    assert alert.valid and alert.message.originator == p.chf.eui
    assert any(e["code"] == "command_rejected" and e["reason"] == "malformed" for e in p.chf.security_log())


# --------------------------------------------------------------------------------------------
# gbhub bench soak
# --------------------------------------------------------------------------------------------


def test_bench_soak_reports_its_figures():
    """`gbhub bench soak --seconds S` as a process: JSON figures on stdout, progress on stderr,
    every legitimate command answered."""
    import json
    import subprocess
    import sys

    from conftest import ROOT

    proc = subprocess.run([sys.executable, "-m", "gbhub", "bench", "soak", "--seconds", "2"], capture_output=True,
                          text=True, timeout=180, cwd=ROOT, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    figures = json.loads(proc.stdout)
    assert figures["legitimate_sent"] > 0 and figures["answered_pct"] == 100.0
    for key in ("p99_ms", "rss_growth_mb", "rejected_with_alerts", "burst_read_ms", "gbt_32x300x60kB_growth_mb"):
        assert key in figures
    assert figures["rejected_with_alerts"] > 0
    assert "soak:" in proc.stderr
