"""HAN link layer: the virtual air and the GB-HGRP tunnel over the Tunneling cluster."""
from __future__ import annotations

import asyncio

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gbhub.firmware.clock import SimClock
from gbcs.codec import DecodeError
from gbhub.han import (
    ApsFrame,
    ClusterDispatch,
    DeviceAsleep,
    HanError,
    LinkDown,
    NoRoute,
    PortClosed,
    TUNNELING_CLUSTER,
    VirtualAir,
    eui_from_ieee,
    ieee_from_eui,
)
from gbcs.hgrp import (
    AckTransferData,
    CloseTunnel,
    Get,
    GetResponse,
    GetSupportedTunnelProtocols,
    Put,
    Raw,
    ReadyData,
    RequestTunnel,
    RequestTunnelResponse,
    SupportedTunnelProtocolsResponse,
    TransferData,
    TransferDataError,
    TransferDataStatus,
    TunnelClosureNotification,
    TunnelFrame,
    TunnelStatus,
    decode_tunnel_data,
    decode_tunnel_frame,
    encode_tunnel_command,
)
from gbcs.zcl import Direction, FrameType, ZclHeader
from gbhub.han.tunnel import (
    NoTunnel,
    QueueFull,
    QueueJournal,
    TunnelClient,
    TunnelHost,
    TunnelRejected,
    TunnelServer,
    TunnelTimeout,
)
from gbhub.han.virtual import DELIVERED, DROPPED, LINK_DOWN, LOST

# RTDS entity ids (FACTS §3.1): ESME …A0, GSME …A1, CHF …A2, GPF …A3, PPMID …A4.
ESME = bytes.fromhex("00DB1234567890A0")
GSME = bytes.fromhex("00DB1234567890A1")
CHF = bytes.fromhex("00DB1234567890A2")
PPMID = bytes.fromhex("00DB1234567890A4")

START = 1_700_000_000.0
GBCS_A = bytes.fromhex("DD000000000000") + b"command-a"
GBCS_B = bytes.fromhex("DF09") + b"response-b"


def frame(src: bytes, dst: bytes, payload: bytes = b"\x11\x01\x00", cluster: int = TUNNELING_CLUSTER) -> ApsFrame:
    return ApsFrame(src, dst, 1, 1, cluster, payload)


async def settle(turns: int = 20) -> None:
    for _ in range(turns):
        await asyncio.sleep(0)


# ---------------------------------------------------------------------------------------------
# ApsFrame
# ---------------------------------------------------------------------------------------------


def test_aps_frame_defaults_and_reply():
    f = ApsFrame(CHF, ESME, 1, 2, TUNNELING_CLUSTER, b"\x11\x00\x00")
    assert f.profile == 0x0109
    r = f.reply(b"\x19\x00\x00")
    assert (r.src, r.dst, r.src_endpoint, r.dst_endpoint, r.cluster) == (ESME, CHF, 2, 1, TUNNELING_CLUSTER)
    with pytest.raises(ValueError):
        ApsFrame(CHF[:7], ESME, 1, 1, 0, b"")


def test_ieee_byte_order_is_reversed_entity_id():
    assert ieee_from_eui(CHF) == bytes.fromhex("A29078563412DB00")
    assert eui_from_ieee(ieee_from_eui(ESME)) == ESME


# ---------------------------------------------------------------------------------------------
# Virtual air
# ---------------------------------------------------------------------------------------------


async def test_two_ports_exchange_frames():
    air = VirtualAir()
    got_a: list[ApsFrame] = []
    got_b: list[ApsFrame] = []

    async def receive_b(f: ApsFrame) -> None:  # coroutine receivers run as tasks
        got_b.append(f)
        await b.send(f.reply(b"pong"))

    a = air.attach(CHF, got_a.append)  # plain receivers run inline
    b = air.attach(ESME, receive_b)
    assert await a.send(frame(CHF, ESME, b"ping")) is True
    await settle()
    assert [f.payload for f in got_b] == [b"ping"]
    assert [f.payload for f in got_a] == [b"pong"]
    assert (air.counters.sent, air.counters.delivered, air.counters.lost) == (2, 2, 0)


async def test_zero_latency_delivers_inline_in_order():
    air = VirtualAir()
    got: list[bytes] = []
    a = air.attach(CHF, lambda f: None)
    air.attach(ESME, lambda f: got.append(f.payload))
    for i in range(100):
        await a.send(frame(CHF, ESME, bytes([i])))
        assert len(got) == i + 1  # no timer, no task: delivered inside send
    assert got == [bytes([i]) for i in range(100)]


async def test_send_errors_are_raised_not_silent():
    air = VirtualAir()
    a = air.attach(CHF, lambda f: None)
    b = air.attach(ESME, lambda f: None)
    with pytest.raises(NoRoute):
        await a.send(frame(CHF, GSME))
    air.set_link(ESME, False)
    with pytest.raises(LinkDown):
        await a.send(frame(CHF, ESME))
    with pytest.raises(LinkDown):
        await b.send(frame(ESME, CHF))
    air.set_link(ESME, True)
    assert await a.send(frame(CHF, ESME))
    air.set_sleepy(ESME, True)
    with pytest.raises(DeviceAsleep):
        await a.send(frame(CHF, ESME))
    b.set_asleep(False)
    assert await a.send(frame(CHF, ESME))
    b.detach()
    with pytest.raises(NoRoute):
        await a.send(frame(CHF, ESME))
    with pytest.raises(PortClosed):
        await b.send(frame(ESME, CHF))
    with pytest.raises(ValueError):
        await a.send(frame(ESME, CHF))  # a port sends only as itself
    with pytest.raises(HanError):
        air.attach(CHF, lambda f: None)  # already attached
    c = air.counters
    assert c.failed == 6 and c.sent == c.delivered + c.lost + c.dropped + c.failed


async def _loss_pattern(seed: int, n: int = 400) -> list[bool]:
    air = VirtualAir(loss=0.3, seed=seed)
    a = air.attach(CHF, lambda f: None)
    air.attach(ESME, lambda f: None)
    return [await a.send(frame(CHF, ESME, bytes([i % 256]))) for i in range(n)]


async def test_loss_is_deterministic_with_seed():
    first = await _loss_pattern(7)
    assert first == await _loss_pattern(7)
    assert first != await _loss_pattern(8)
    lost = first.count(False)
    assert 80 < lost < 160  # ~30 % of 400


async def test_loss_counters_and_tap():
    air = VirtualAir(loss=0.5, seed=1)
    events = []
    stop = air.observe(events.append)
    got = []
    a = air.attach(CHF, lambda f: None)
    air.attach(ESME, got.append)
    results = [await a.send(frame(CHF, ESME)) for _ in range(50)]
    c = air.counters
    assert c.sent == 50 and c.delivered == results.count(True) == len(got) and c.lost == results.count(False)
    assert [e.outcome for e in events] == [DELIVERED if r else LOST for r in results]
    stop()
    await a.send(frame(CHF, ESME))
    assert len(events) == 50


async def test_per_link_loss_override():
    air = VirtualAir(loss=0.0, seed=3)
    a = air.attach(CHF, lambda f: None)
    air.attach(ESME, lambda f: None)
    air.attach(PPMID, lambda f: None)
    air.configure_link(CHF, PPMID, loss=1.0)
    assert await a.send(frame(CHF, ESME)) is True
    assert await a.send(frame(CHF, PPMID)) is False


async def test_latency_on_simulated_clock_keeps_links_fifo():
    clock = SimClock(START)
    air = VirtualAir(clock=clock, latency=0.5)
    got: list[tuple[float, bytes]] = []
    a = air.attach(CHF, lambda f: None)
    air.attach(ESME, lambda f: got.append((clock.now(), f.payload)))
    assert await a.send(frame(CHF, ESME, b"1"))
    air.configure_link(CHF, ESME, latency=0.1)  # a later, faster frame must not overtake
    assert await a.send(frame(CHF, ESME, b"2"))
    assert air.in_flight == 2 and got == []
    await clock.advance(0.2)
    assert got == []
    await clock.advance(0.3)
    assert [p for _, p in got] == [b"1", b"2"]
    assert got[0][0] == START + 0.5
    assert air.in_flight == 0


async def test_latency_in_flight_frame_dropped_when_link_goes_down():
    clock = SimClock(START)
    air = VirtualAir(clock=clock, latency=1.0)
    events = []
    air.observe(events.append)
    got = []
    a = air.attach(CHF, lambda f: None)
    air.attach(ESME, got.append)
    await a.send(frame(CHF, ESME))
    air.set_link(ESME, False)
    with pytest.raises(LinkDown):
        await a.send(frame(CHF, ESME))
    await clock.advance(2)
    assert got == [] and air.counters.dropped == 1
    assert [e.outcome for e in events] == [LINK_DOWN, DROPPED]


async def test_latency_on_event_loop_clock():
    air = VirtualAir(latency=0.01)
    got = asyncio.Event()
    a = air.attach(CHF, lambda f: None)
    air.attach(ESME, lambda f: got.set())
    await a.send(frame(CHF, ESME))
    assert not got.is_set()
    await asyncio.wait_for(got.wait(), 1.0)


async def test_receiver_failure_never_reaches_sender():
    air = VirtualAir()
    a = air.attach(CHF, lambda f: None)

    def broken(f):
        raise RuntimeError("device bug")

    air.attach(ESME, broken)
    assert await a.send(frame(CHF, ESME)) is True


async def test_cluster_dispatch():
    air = VirtualAir()
    tunnel, time_, other = [], [], []
    dispatch = ClusterDispatch(default=other.append)
    a = air.attach(CHF, lambda f: None)
    air.attach(ESME, dispatch)
    dispatch.add(TUNNELING_CLUSTER, tunnel.append)
    dispatch.add(0x000A, time_.append)
    await a.send(frame(CHF, ESME, cluster=TUNNELING_CLUSTER))
    await a.send(frame(CHF, ESME, cluster=0x000A))
    await a.send(frame(CHF, ESME, cluster=0x0702))
    assert (len(tunnel), len(time_), len(other)) == (1, 1, 1)
    dispatch.default = None
    await a.send(frame(CHF, ESME, cluster=0x0702))
    assert dispatch.unhandled == 1


# ---------------------------------------------------------------------------------------------
# Tunneling cluster codec
# ---------------------------------------------------------------------------------------------


def test_request_tunnel_bytes():
    data = encode_tunnel_command(RequestTunnel(), Direction.CLIENT_TO_SERVER, 0x42)
    # cluster-specific, client→server, default response disabled; RequestTunnel 0x00;
    # protocol 6 (GB-HGRP), manufacturer 0xFFFF, no flow control, 1500 bytes.
    assert data == bytes.fromhex("11 42 00 06 FFFF 00 DC05")
    decoded = decode_tunnel_frame(data)
    assert decoded.command == RequestTunnel(6, 0xFFFF, False, 1500)
    assert decoded.header == ZclHeader(FrameType.CLUSTER, 0x00, 0x42, Direction.CLIENT_TO_SERVER, True, None)


@pytest.mark.parametrize(
    "command, direction, hex_",
    [
        (RequestTunnelResponse(3, TunnelStatus.SUCCESS, 1500), Direction.SERVER_TO_CLIENT, "19 07 00 0300 00 DC05"),
        (RequestTunnelResponse(0xFFFF, TunnelStatus.BUSY, 1500), Direction.SERVER_TO_CLIENT, "19 07 00 FFFF 01 DC05"),
        (CloseTunnel(3), Direction.CLIENT_TO_SERVER, "11 07 01 0300"),
        (TransferData(3, b"\xdd\x00"), Direction.CLIENT_TO_SERVER, "11 07 02 0300 DD00"),
        (TransferData(3, b"\x02\x00"), Direction.SERVER_TO_CLIENT, "19 07 01 0300 0200"),
        (TransferDataError(3, TransferDataStatus.NO_SUCH_TUNNEL), Direction.CLIENT_TO_SERVER, "11 07 03 0300 00"),
        (TransferDataError(3, TransferDataStatus.WRONG_DEVICE), Direction.SERVER_TO_CLIENT, "19 07 02 0300 01"),
        (AckTransferData(3, 10), Direction.CLIENT_TO_SERVER, "11 07 04 0300 0A00"),
        (AckTransferData(3, 10), Direction.SERVER_TO_CLIENT, "19 07 03 0300 0A00"),
        (ReadyData(3, 10), Direction.CLIENT_TO_SERVER, "11 07 05 0300 0A00"),
        (ReadyData(3, 10), Direction.SERVER_TO_CLIENT, "19 07 04 0300 0A00"),
        (GetSupportedTunnelProtocols(0), Direction.CLIENT_TO_SERVER, "11 07 06 00"),
        (SupportedTunnelProtocolsResponse(), Direction.SERVER_TO_CLIENT, "19 07 05 01 01 FFFF 06"),
        (TunnelClosureNotification(3), Direction.SERVER_TO_CLIENT, "19 07 06 0300"),
    ],
)
def test_tunnel_command_ids_and_round_trip(command, direction, hex_):
    data = encode_tunnel_command(command, direction, 7)
    assert data == bytes.fromhex(hex_)
    decoded = decode_tunnel_frame(data)
    assert decoded.command == command and decoded.header.direction == direction
    assert decoded.encode() == data


def test_tunnel_codec_rejects():
    from gbcs.codec import EncodeError

    with pytest.raises(EncodeError):
        encode_tunnel_command(RequestTunnel(), Direction.SERVER_TO_CLIENT, 1)  # wrong direction
    with pytest.raises(DecodeError):
        decode_tunnel_frame(bytes.fromhex("10 01 0B 00 00"))  # global Default Response
    with pytest.raises(DecodeError):
        decode_tunnel_frame(bytes.fromhex("15 3412 01 00 06FFFF00DC05"))  # manufacturer-specific
    with pytest.raises(DecodeError):
        decode_tunnel_frame(bytes.fromhex("11 01 00 06 FFFF 02 DC05"))  # boolean 2
    with pytest.raises(DecodeError):
        decode_tunnel_frame(bytes.fromhex("11 01 00 06 FFFF 00 DC05 00"))  # trailing byte
    with pytest.raises(DecodeError):
        decode_tunnel_frame(bytes.fromhex("11 01 07"))  # unknown command
    with pytest.raises(DecodeError) as err:
        decode_tunnel_frame(bytes.fromhex("11 01 02 03"))  # TransferData, truncated tunnel id
    assert err.value.offset == 4


def test_tunnel_data_framing():
    assert decode_tunnel_data(b"\x01") == Get()
    assert decode_tunnel_data(b"\x02\x00") == GetResponse(0, b"")
    assert decode_tunnel_data(b"\x02\x03" + GBCS_A) == GetResponse(3, GBCS_A)
    assert decode_tunnel_data(b"\x03" + GBCS_B) == Put(GBCS_B)
    assert decode_tunnel_data(GBCS_A) == Raw(GBCS_A)
    assert GetResponse().encode() == b"\x02\x00"
    for bad in (b"", b"\x01\x00", b"\x02", b"\x02\x01", b"\x03"):
        with pytest.raises(DecodeError):
            decode_tunnel_data(bad)


valid_commands = st.one_of(
    st.builds(RequestTunnel, st.integers(0, 255), st.integers(0, 0xFFFF), st.booleans(), st.integers(0, 0xFFFF)).map(
        lambda c: (c, Direction.CLIENT_TO_SERVER)
    ),
    st.builds(RequestTunnelResponse, st.integers(0, 0xFFFF), st.integers(0, 255), st.integers(0, 0xFFFF)).map(
        lambda c: (c, Direction.SERVER_TO_CLIENT)
    ),
    st.tuples(
        st.builds(TransferData, st.integers(0, 0xFFFF), st.binary(max_size=64)), st.sampled_from(list(Direction))
    ),
    st.tuples(
        st.builds(TransferDataError, st.integers(0, 0xFFFF), st.integers(0, 255)), st.sampled_from(list(Direction))
    ),
    st.builds(
        SupportedTunnelProtocolsResponse,
        st.booleans(),
        st.lists(st.tuples(st.integers(0, 0xFFFF), st.integers(0, 255)), max_size=5).map(tuple),
    ).map(lambda c: (c, Direction.SERVER_TO_CLIENT)),
    st.builds(CloseTunnel, st.integers(0, 0xFFFF)).map(lambda c: (c, Direction.CLIENT_TO_SERVER)),
)


@settings(max_examples=300)
@given(valid_commands, st.integers(0, 255), st.booleans())
def test_build_decode_round_trip(pair, sequence, ddr):
    command, direction = pair
    data = encode_tunnel_command(command, direction, sequence, disable_default_response=ddr)
    decoded = decode_tunnel_frame(data)
    assert decoded.command == command
    assert decoded.header.sequence == sequence and decoded.header.disable_default_response == ddr
    assert decoded.encode() == data


@settings(max_examples=1500)
@given(st.binary(max_size=40))
def test_random_bytes_only_raise_decode_error(data):
    for decoder in (decode_tunnel_frame, decode_tunnel_data, lambda d: ZclHeader.decode(d)):
        try:
            decoded = decoder(data)
        except DecodeError:
            continue
        if isinstance(decoded, TunnelFrame):
            assert decoded.encode() == data
        elif isinstance(decoded, tuple):  # ZclHeader.decode
            header, pos = decoded
            assert header.encode() == data[:pos]
        else:
            assert decoded.encode() == data


@settings(max_examples=500)
@given(valid_commands, st.data())
def test_mutated_frames_only_raise_decode_error(pair, data):
    command, direction = pair
    raw = bytearray(encode_tunnel_command(command, direction, 1))
    i = data.draw(st.integers(0, len(raw)))
    action = data.draw(st.sampled_from(["flip", "cut", "insert"]))
    if action == "flip" and i < len(raw):
        raw[i] ^= 1 << data.draw(st.integers(0, 7))
    elif action == "cut":
        del raw[i:]
    else:
        raw.insert(i, data.draw(st.integers(0, 255)))
    try:
        decoded = decode_tunnel_frame(bytes(raw))
    except DecodeError:
        return
    assert decoded.encode() == bytes(raw)


# ---------------------------------------------------------------------------------------------
# Tunnel endpoints
# ---------------------------------------------------------------------------------------------


class Premises:
    """CHF, ESME and GSME on one virtual air; the CHF uses a TunnelHost (client of the ESME,
    server of the GSME)."""

    def __init__(self, clock=None, *, esme_accept=None, chf_server_kw=None, client_kw=None, gsme_kw=None):
        self.air = VirtualAir(clock=clock)
        self.clock = clock
        self.at_chf: list[tuple[bytes, bytes]] = []
        self.at_esme: list[tuple[bytes, bytes]] = []
        self.at_gsme: list[tuple[bytes, bytes]] = []
        self.pending: list[tuple[bytes, int]] = []
        self.discarded: list[tuple[bytes, bytes]] = []

        chf_dispatch = ClusterDispatch()
        self.chf_port = self.air.attach(CHF, chf_dispatch)
        self.chf = TunnelHost(self.chf_port, clock=clock, on_message=lambda e, m: self.at_chf.append((e, m)))
        chf_dispatch.add(TUNNELING_CLUSTER, self.chf.handle)
        self.gsme_server = self.chf.serve(
            sleepy=[GSME],
            on_pending=lambda e, n: self.pending.append((e, n)),
            on_discard=lambda e, m: self.discarded.append((e, m)),
            **(chf_server_kw or {}),
        )
        self.to_esme = self.chf.connect(ESME, **(client_kw or {}))

        esme_dispatch = ClusterDispatch()
        self.esme_port = self.air.attach(ESME, esme_dispatch)

        async def esme_message(peer, message):  # an ESME that answers every command
            self.at_esme.append((peer, message))
            await self.esme.send_gbcs(peer, GBCS_B)

        self.esme = TunnelServer(self.esme_port, clock=clock, on_message=esme_message, accept=esme_accept)
        esme_dispatch.add(TUNNELING_CLUSTER, self.esme.handle)

        gsme_dispatch = ClusterDispatch()
        self.gsme_port = self.air.attach(GSME, gsme_dispatch)
        self.gsme = TunnelClient(
            self.gsme_port,
            CHF,
            clock=clock,
            sleepy=True,
            on_message=lambda e, m: self.at_gsme.append((e, m)),
            **(gsme_kw or {}),
        )
        gsme_dispatch.add(TUNNELING_CLUSTER, self.gsme.handle)
        self.gsme_port.set_asleep(True)


async def test_tunnel_setup_and_gbcs_both_ways():
    p = Premises()
    assert p.to_esme.tunnel_id is None
    assert await p.to_esme.send_gbcs(GBCS_A) is True  # sets the tunnel up on first use
    await settle()
    assert p.to_esme.tunnel_id is not None
    assert p.esme.tunnel_for(CHF).tunnel_id == p.to_esme.tunnel_id
    assert p.at_esme == [(CHF, GBCS_A)]
    assert p.at_chf == [(ESME, GBCS_B)]
    # Re-request (the CHF's periodic refresh) keeps the same id: ids are never exhausted.
    old = p.to_esme.tunnel_id
    assert await p.to_esme.open(force=True) == old
    assert len(p.esme.tunnels) == 1
    # Large messages pass through whole.
    big = b"\xdf" + bytes(range(256)) * 20
    await p.to_esme.send_gbcs(big)
    await settle()
    assert p.at_esme[-1] == (CHF, big)


async def test_esme_cannot_push_without_tunnel():
    p = Premises()
    with pytest.raises(NoTunnel):
        await p.esme.send_gbcs(CHF, GBCS_B)


async def test_tunnel_frames_on_the_air():
    p = Premises()
    seen = []
    p.air.observe(lambda e: seen.append(e.frame.payload))
    await p.to_esme.send_gbcs(GBCS_A)
    await settle()
    tid = p.to_esme.tunnel_id.to_bytes(2, "little")
    assert seen[0][2:] == bytes.fromhex("00 06 FFFF 00 DC05")  # RequestTunnel
    assert seen[1][0] == 0x19 and seen[1][2] == 0x00 and seen[1][3:6] == tid + b"\x00"  # response, success
    assert seen[1][1] == seen[0][1]  # response carries the request's sequence number
    assert seen[2] == bytes((0x11, seen[2][1], 0x02)) + tid + GBCS_A  # raw GBCS, no HGRP header
    assert seen[3] == bytes((0x19, seen[3][1], 0x01)) + tid + GBCS_B


async def test_sleepy_gsme_get_get_response_put():
    p = Premises()
    seen = []
    p.air.observe(lambda e: seen.append((e.frame.src, e.frame.payload)))
    # Commands for the sleeping GSME queue on the CHF.
    assert await p.gsme_server.send_gbcs(GSME, GBCS_A) is True
    assert await p.gsme_server.send_gbcs(GSME, GBCS_B) is True
    assert p.gsme_server.pending(GSME) == 2
    assert p.pending == [(GSME, 1), (GSME, 2)]
    assert seen == []  # nothing pushed to a sleepy device
    # The GSME wakes, opens its tunnel to the CHF, pulls, answers with a PUT, sleeps.
    p.gsme_port.set_asleep(False)
    assert await p.gsme.poll() == 2
    await settle()
    assert p.at_gsme == [(CHF, GBCS_A), (CHF, GBCS_B)]
    assert p.gsme_server.pending(GSME) == 0 and p.pending[-1] == (GSME, 0)
    get_responses = [d[5:] for s, d in seen if s == CHF and d[2] == 0x01]
    assert get_responses == [b"\x02\x01" + GBCS_A, b"\x02\x00" + GBCS_B]
    assert await p.gsme.send_gbcs(GBCS_B) is True
    await settle()
    assert p.at_chf == [(GSME, GBCS_B)]
    assert seen[-1][1][5:] == b"\x03" + GBCS_B  # PUT
    # Nothing queued: GET → 02 00.
    assert await p.gsme.get() == GetResponse(0, b"")
    assert seen[-1][1][5:] == b"\x02\x00"
    assert await p.gsme.poll() == 0
    p.gsme_port.set_asleep(True)


async def test_sleepy_queue_bounded_and_expired():
    clock = SimClock(START)
    p = Premises(clock, chf_server_kw={"queue_limit": 2, "queue_timeout": 3600.0})
    await p.gsme_server.send_gbcs(GSME, b"\xdd1")
    await clock.advance(1000)
    await p.gsme_server.send_gbcs(GSME, b"\xdd2")
    with pytest.raises(QueueFull):
        await p.gsme_server.send_gbcs(GSME, b"\xdd3")
    assert p.gsme_server.dropped == 1 and p.gsme_server.pending(GSME) == 2
    await clock.advance(2700)  # the first message is now 3700 s old
    assert p.gsme_server.expire() == 1
    assert p.discarded == [(GSME, b"\xdd1")] and p.gsme_server.expired == 1
    p.gsme_port.set_asleep(False)
    clock.start_autojump()
    try:
        assert await p.gsme.poll() == 1
    finally:
        await clock.stop_autojump()
    assert p.at_gsme == [(CHF, b"\xdd2")]


class DictJournal(QueueJournal):
    """A journal in a dict (what the CHF keeps in its NVM)."""

    def __init__(self) -> None:
        self.kept: dict[int, tuple[bytes, float, bytes]] = {}
        self.next = 0

    def add(self, eui, queued_at, message):
        self.next += 1
        self.kept[self.next] = (eui, queued_at, message)
        return self.next

    def remove(self, eui, key, fetched):
        del self.kept[key]


async def test_sleepy_queue_journal_written_on_queueing_and_cleared_on_fetch_or_expiry():
    clock = SimClock(START)
    journal = DictJournal()
    p = Premises(clock, chf_server_kw={"queue_limit": 2, "queue_timeout": 3600.0, "journal": journal})
    await p.gsme_server.send_gbcs(GSME, b"\xdd1")
    await clock.advance(1000)
    await p.gsme_server.send_gbcs(GSME, b"\xdd2")
    with pytest.raises(QueueFull):
        await p.gsme_server.send_gbcs(GSME, b"\xdd3")
    assert [m for _, _, m in journal.kept.values()] == [b"\xdd1", b"\xdd2"]  # the refused one is not kept
    # a restarted server restores what the journal kept, with the original queueing times
    q = Premises(clock, chf_server_kw={"queue_limit": 2, "queue_timeout": 3600.0, "journal": journal})
    for key, (eui, t, message) in sorted(journal.kept.items()):
        q.gsme_server.restore(eui, t, message, key)
    assert q.gsme_server.pending(GSME) == 2 and q.gsme_server.is_sleepy(GSME)
    with pytest.raises(QueueFull):  # the overflow answer survives the restart
        await q.gsme_server.send_gbcs(GSME, b"\xdd3")
    await clock.advance(2700)
    assert q.gsme_server.expire() == 1 and q.discarded == [(GSME, b"\xdd1")]
    assert [m for _, _, m in journal.kept.values()] == [b"\xdd2"]
    q.gsme_port.set_asleep(False)
    clock.start_autojump()
    try:
        assert await q.gsme.poll() == 1
    finally:
        await clock.stop_autojump()
    assert q.at_gsme == [(CHF, b"\xdd2")] and journal.kept == {}


async def test_get_response_kept_when_gsme_fell_asleep():
    p = Premises()
    p.gsme_port.set_asleep(False)
    await p.gsme.open()
    await p.gsme_server.send_gbcs(GSME, GBCS_A)
    p.gsme_port.set_asleep(True)
    # A GET whose answer cannot be delivered: the message stays queued.
    tunnel = p.gsme_server.tunnel_for(GSME)
    p.air.inject(ApsFrame(GSME, CHF, 1, 1, TUNNELING_CLUSTER, encode_tunnel_command(
        TransferData(tunnel.tunnel_id, b"\x01"), Direction.CLIENT_TO_SERVER, 9)))
    await settle()
    assert p.gsme_server.pending(GSME) == 1
    p.gsme_port.set_asleep(False)
    assert await p.gsme.poll() == 1
    assert p.at_gsme == [(CHF, GBCS_A)]


async def test_busy_is_retried_after_three_minutes():
    clock = SimClock(START)
    verdicts = [TunnelStatus.BUSY, TunnelStatus.SUCCESS]
    p = Premises(clock, esme_accept=lambda eui: verdicts.pop(0))
    clock.start_autojump()
    try:
        assert await p.to_esme.send_gbcs(GBCS_A) is True
        await clock.advance(0)
    finally:
        await clock.stop_autojump()
    assert clock.now() == START + 180.0
    assert p.at_esme == [(CHF, GBCS_A)] and p.at_chf == [(ESME, GBCS_B)]


async def test_busy_forever_is_rejected():
    clock = SimClock(START)
    p = Premises(clock, esme_accept=lambda eui: TunnelStatus.BUSY, client_kw={"max_attempts": 3})
    clock.start_autojump()
    try:
        with pytest.raises(TunnelRejected) as err:
            await p.to_esme.open()
    finally:
        await clock.stop_autojump()
    assert err.value.status == TunnelStatus.BUSY
    assert clock.now() == START + 360.0  # two waits between three requests


async def test_no_more_tunnel_ids():
    p = Premises(chf_server_kw={"max_tunnels": 0})
    p.gsme_port.set_asleep(False)
    p.gsme.busy_retry = 0.0
    with pytest.raises(TunnelRejected) as err:
        await p.gsme.open()
    assert err.value.status == TunnelStatus.NO_MORE_TUNNEL_IDS


async def test_no_more_tunnel_ids_closes_stale_tunnels_then_retries():
    p = Premises()
    await p.to_esme.open()
    first = p.to_esme.tunnel_id
    # The ESME restarts with room for one tunnel, which is still held by the CHF's old id.
    p.esme.max_tunnels = 1
    p.esme._by_eui.clear()  # forgets who holds it, as after a restart with stale state
    new = await p.to_esme.open(force=True)  # closed the stale id, asked again
    assert new != first and list(p.esme.tunnels) == [new]


async def test_unknown_protocol_is_rejected():
    p = Premises()
    answers = []
    probe = p.air.attach(PPMID, answers.append)
    request = RequestTunnel(protocol_id=5)
    await probe.send(ApsFrame(PPMID, ESME, 1, 1, TUNNELING_CLUSTER, encode_tunnel_command(request, Direction.CLIENT_TO_SERVER, 1)))
    request = RequestTunnel(flow_control_support=True)
    await probe.send(ApsFrame(PPMID, ESME, 1, 1, TUNNELING_CLUSTER, encode_tunnel_command(request, Direction.CLIENT_TO_SERVER, 2)))
    await settle()
    statuses = [decode_tunnel_frame(f.payload).command.status for f in answers]
    assert statuses == [TunnelStatus.PROTOCOL_NOT_SUPPORTED, TunnelStatus.FLOW_CONTROL_NOT_SUPPORTED]
    assert p.esme.tunnels == {}


async def test_ignored_request_times_out():
    clock = SimClock(START)
    p = Premises(clock, esme_accept=lambda eui: None, client_kw={"response_timeout": 5.0, "max_attempts": 2})
    clock.start_autojump()
    try:
        with pytest.raises(TunnelTimeout):
            await p.to_esme.send_gbcs(GBCS_A)
    finally:
        await clock.stop_autojump()
    assert clock.now() == START + 10.0


async def test_link_down_raises_through_the_tunnel():
    p = Premises()
    await p.to_esme.open()
    p.air.set_link(ESME, False)
    with pytest.raises(LinkDown):
        await p.to_esme.send_gbcs(GBCS_A)


async def test_stale_tunnel_id_is_reported_and_reopened():
    p = Premises()
    errors = []
    p.to_esme.on_error = lambda eui, status: errors.append((eui, status))
    await p.to_esme.open()
    old = p.to_esme.tunnel_id
    # The ESME reboots and forgets every tunnel.
    p.esme.tunnels.clear()
    p.esme._by_eui.clear()
    await p.to_esme.send_gbcs(GBCS_A)
    await settle()
    assert errors == [(ESME, TransferDataStatus.NO_SUCH_TUNNEL)]
    assert p.to_esme.tunnel_id is None and p.at_esme == []
    await p.to_esme.send_gbcs(GBCS_A)  # the next message sets a new tunnel up
    await settle()
    assert p.at_esme == [(CHF, GBCS_A)] and p.esme.tunnels
    assert old is not None


async def test_data_from_wrong_device_is_refused():
    p = Premises()
    await p.to_esme.open()
    answers = []
    intruder = p.air.attach(PPMID, answers.append)
    tid = p.to_esme.tunnel_id
    await intruder.send(ApsFrame(PPMID, ESME, 1, 1, TUNNELING_CLUSTER, encode_tunnel_command(
        TransferData(tid, GBCS_A), Direction.CLIENT_TO_SERVER, 1)))
    await settle()
    assert p.at_esme == []
    assert decode_tunnel_frame(answers[0].payload).command == TransferDataError(tid, TransferDataStatus.WRONG_DEVICE)


async def test_close_and_closure_notification():
    p = Premises()
    await p.to_esme.open()
    await p.to_esme.close()
    await settle()
    assert p.esme.tunnels == {} and p.to_esme.tunnel_id is None
    await p.to_esme.open()
    assert await p.esme.close(CHF) is True
    await settle()
    assert p.to_esme.tunnel_id is None
    assert await p.esme.close(CHF) is False


async def test_malformed_frames_are_counted_not_fatal():
    p = Premises()
    for junk in (b"", b"\xff", b"\x11\x01", b"\x11\x01\x02\x00", b"\x19\x01\x07\x00"):
        p.air.inject(ApsFrame(PPMID, ESME, 1, 1, TUNNELING_CLUSTER, junk))
    p.air.inject(ApsFrame(PPMID, ESME, 1, 1, TUNNELING_CLUSTER, b"\x18\x01\x0b\x00\x00"))  # global: ignored
    await settle()
    assert p.esme.errors == 5
    await p.to_esme.send_gbcs(GBCS_A)  # still serving
    await settle()
    assert p.at_esme == [(CHF, GBCS_A)]


async def test_supported_protocols_query():
    p = Premises()
    answers = []
    probe = p.air.attach(PPMID, answers.append)
    await probe.send(ApsFrame(PPMID, ESME, 1, 1, TUNNELING_CLUSTER, encode_tunnel_command(
        GetSupportedTunnelProtocols(), Direction.CLIENT_TO_SERVER, 4)))
    await settle()
    assert decode_tunnel_frame(answers[0].payload).command == SupportedTunnelProtocolsResponse(True, ((0xFFFF, 6),))


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=24), st.booleans())
def test_endpoints_survive_random_frames(data, to_client):
    async def run():
        p = Premises()
        await p.to_esme.open()
        p.gsme_port.set_asleep(False)
        await p.gsme.open()
        target = CHF if to_client else ESME
        source = ESME if to_client else GSME
        p.air.inject(ApsFrame(source, target, 1, 1, TUNNELING_CLUSTER, data))
        await settle()
        await p.to_esme.send_gbcs(GBCS_A)
        await settle()
        assert (CHF, GBCS_A) in p.at_esme

    asyncio.run(run())


@given(st.sampled_from(list(Direction)), st.integers(0, 255), st.integers(0, 0xFFFF), st.binary(max_size=64))
@settings(max_examples=200)
def test_transfer_data_fast_path_matches_the_general_codec(direction, sequence, tunnel_id, data):
    """TransferData frames are built and recognised by a fixed header on the hot path; the bytes
    and the decoded command must be exactly what the general tunnel codec gives."""
    from gbcs.hgrp import recognise_transfer_data, transfer_data_frame

    general = encode_tunnel_command(TransferData(tunnel_id, data), direction, sequence)
    assert transfer_data_frame(direction, sequence, tunnel_id, data) == general
    assert recognise_transfer_data(general, direction) == decode_tunnel_frame(general).command
    other = Direction(1 - direction)
    assert recognise_transfer_data(general, other) is None  # the other direction's frame is not taken
