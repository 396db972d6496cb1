"""ZCL attribute server/client on the HAN (han/zcl_server.py) and the In-Home Display (meter/ihd.py)."""
from __future__ import annotations

import asyncio

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gbhub.firmware.clock import SimClock
from gbcs.zcl import (
    ClusterCommand,
    DefaultResponse,
    GeneralCommand,
    ReadAttributesResponse,
    Status,
    WriteAttributesResponse,
    ZclType,
    decode_zcl,
)
from gbhub.han import ApsFrame, ClusterDispatch, HanError, NoRoute, VirtualAir
from gbhub.han.zcl_server import (
    Report,
    ZclClient,
    ZclServer,
    ZclStatusError,
    ZclTimeout,
    default_response,
)

ESME = bytes.fromhex("00DB1234567890A0")
CHF = bytes.fromhex("00DB1234567890A2")
IHD = bytes.fromhex("00DB1234567890B1")
STRANGER = bytes.fromhex("00DB1234567890FF")

START = 1_700_000_000.0  # 2023-11-14T22:13:20Z
METERING, PRICE, PREPAYMENT, TIME, BASIC = 0x0702, 0x0700, 0x0705, 0x000A, 0x0000


class Meter:
    """A provider standing in for the ESME's live data."""

    def __init__(self) -> None:
        self.summation = 1_234_567  # Wh
        self.demand = -250  # W (exporting)

    def metering(self) -> dict:
        return {
            0x0000: self.summation,
            0x0400: self.demand,
            0x0300: 0x00,
            0x0301: 1,
            0x0302: 1000,
            0x0206: b"\x01\x02\x03",
        }


def zcl_bytes(frame_control: int, sequence: int, command: int, payload: bytes = b"") -> bytes:
    return bytes((frame_control, sequence, command)) + payload


class Rig:
    """A server device and a client device on one virtual air."""

    def __init__(self, *, allow=None, clock=None, latency: float = 0.0, commands=None, clusters=None) -> None:
        self.clock = clock
        self.air = VirtualAir(clock=clock, latency=latency)
        self.meter = Meter()
        self.server_dispatch = ClusterDispatch()
        self.server_port = self.air.attach(ESME, self.server_dispatch)
        self.server = ZclServer(
            self.server_dispatch,
            clusters=clusters if clusters is not None else {METERING: self.meter.metering, BASIC: lambda: {0x0004: "gbhub", 0x0000: 3}},
            allow=allow,
            port=self.server_port,
            commands=commands,
            clock=clock,
        )
        self.client_dispatch = ClusterDispatch()
        self.client_port = self.air.attach(IHD, self.client_dispatch)
        self.reports: list[Report] = []
        self.client = ZclClient(self.client_port, self.client_dispatch, clock=clock, timeout=1.0, on_report=self.reports.append)
        # A raw peer that records whatever the server sends it.
        self.raw_received: list[ApsFrame] = []
        self.raw_port = self.air.attach(STRANGER, self.raw_received.append)

    async def raw(self, cluster: int, payload: bytes, dst_endpoint: int = 1) -> list:
        """Send raw ZCL bytes from the raw peer; the decoded answers (if any)."""
        self.raw_received.clear()
        await self.raw_port.send(ApsFrame(STRANGER, ESME, 1, dst_endpoint, cluster, payload))
        for _ in range(10):
            await asyncio.sleep(0)
        return [decode_zcl(f.payload, f.cluster) for f in self.raw_received]


# ---------------------------------------------------------------------------------------------
# ZclServer / ZclClient
# ---------------------------------------------------------------------------------------------


async def test_read_attributes_types_and_values():
    rig = Rig()
    seen = []
    rig.air.observe(lambda e: seen.append(e.frame))
    values = await rig.client.read_attributes(ESME, METERING, [0x0000, 0x0400, 0x0301, 0x0302, 0x0206])
    assert values == {0x0000: 1_234_567, 0x0400: -250, 0x0301: 1, 0x0302: 1000, 0x0206: b"\x01\x02\x03"}
    # On the air: types from gbcs.zcl's attribute table.
    answer = decode_zcl(seen[-1].payload, METERING)
    assert answer.header.server_to_client and answer.header.command_id == GeneralCommand.READ_ATTRIBUTES_RESPONSE
    assert isinstance(answer.payload, ReadAttributesResponse)
    types = {r.attribute_id: r.type_id for r in answer.payload.records}
    assert types == {0x0000: ZclType.UINT48, 0x0400: ZclType.INT24, 0x0301: ZclType.UINT24, 0x0302: ZclType.UINT24, 0x0206: ZclType.OCTET_STRING}
    assert seen[-1].src_endpoint == 1 and seen[-1].dst == IHD
    # Same sequence number as the request.
    assert decode_zcl(seen[-2].payload, METERING).header.sequence == answer.header.sequence
    basic = await rig.client.read_attributes(ESME, BASIC, [0x0004, 0x0000])
    assert basic == {0x0004: "gbhub", 0x0000: 3}


async def test_values_are_live_and_explicit_types_win():
    rig = Rig()
    assert (await rig.client.read_attributes(ESME, METERING, [0]))[0] == 1_234_567
    rig.meter.summation += 42
    assert (await rig.client.read_attributes(ESME, METERING, [0]))[0] == 1_234_609
    rig.server.add_cluster(0xFC00, lambda: {0x0001: (ZclType.UINT16, 7), 0x0002: 5})  # 0x0002: type unknown
    records = await rig.client.read_records(ESME, 0xFC00, [1, 2])
    assert [(r.status, r.type_id, r.value) for r in records] == [(0, ZclType.UINT16, 7), (Status.UNSUPPORTED_ATTRIBUTE, None, None)]


async def test_unsupported_attribute_status():
    rig = Rig()
    records = await rig.client.read_records(ESME, METERING, [0x0000, 0x0999, 0x0401])
    assert [(r.attribute_id, r.status) for r in records] == [
        (0x0000, Status.SUCCESS),
        (0x0999, Status.UNSUPPORTED_ATTRIBUTE),
        (0x0401, Status.UNSUPPORTED_ATTRIBUTE),  # known attribute, not provided
    ]
    assert await rig.client.read_attributes(ESME, METERING, [0x0999]) == {}


async def test_value_out_of_range_is_invalid_value_not_a_crash():
    rig = Rig()
    rig.meter.demand = 1 << 30  # does not fit INT24
    records = await rig.client.read_records(ESME, METERING, [0x0400, 0x0000])
    assert [r.status for r in records] == [Status.INVALID_VALUE, Status.SUCCESS]


async def test_not_authorized_for_refused_eui():
    allowed = {IHD}
    rig = Rig(allow=lambda eui: eui in allowed)
    assert (await rig.client.read_attributes(ESME, METERING, [0]))[0] == 1_234_567
    allowed.clear()  # removed from the ESME's device log
    with pytest.raises(ZclStatusError) as info:
        await rig.client.read_attributes(ESME, METERING, [0])
    assert info.value.status == Status.NOT_AUTHORIZED == 0x7E
    assert info.value.command_id == GeneralCommand.READ_ATTRIBUTES
    assert isinstance(info.value, HanError)
    # Also for every other command, and on the air it is a Default Response.
    (answer,) = await rig.raw(METERING, zcl_bytes(0x00, 9, 0x00, b"\x00\x00"))
    assert answer.payload == DefaultResponse(0x00, Status.NOT_AUTHORIZED)
    assert answer.header.sequence == 9 and answer.header.server_to_client
    assert rig.server.refused == 2


async def test_timeout_when_server_detached():
    clock = SimClock(START)
    rig = Rig(clock=clock)
    assert (await rig.client.read_attributes(ESME, METERING, [0]))[0] == 1_234_567
    rig.server.detach()  # the ESME stops serving: frames now go unanswered
    task = asyncio.ensure_future(rig.client.read_attributes(ESME, METERING, [0], timeout=5.0))
    await clock.advance(4.9)
    assert not task.done()
    await clock.advance(0.2)
    with pytest.raises(ZclTimeout):
        await task
    assert rig.server_dispatch.unhandled == 1
    assert rig.client._pending == {}
    # The port itself detached: the link layer says so at once.
    rig.server_port.detach()
    with pytest.raises(NoRoute):
        await rig.client.read_attributes(ESME, METERING, [0])


async def test_virtual_air_answer_comes_inside_the_send():
    """On the virtual air a ZCL server answers at once (`VirtualPort.send_now`): no task for the
    answer and no timeout timer for the client; a timer is still set when the answer waits
    (latency), and the exchange on the air is the same."""
    from gbhub.han import transport

    clock = SimClock(START)
    rig = Rig(clock=clock)
    seen = []
    rig.air.observe(lambda e: seen.append((e.frame.src, e.frame.dst, e.outcome)))
    background = len(transport._background)
    assert await rig.client.read_attributes(ESME, METERING, [0x0000]) == {0x0000: 1_234_567}
    assert len(transport._background) == background and clock.pending() == 0
    assert seen == [(IHD, ESME, "delivered"), (ESME, IHD, "delivered")]
    slow = Rig(clock=clock, latency=0.05)
    task = asyncio.ensure_future(slow.client.read_attributes(ESME, METERING, [0x0000]))
    await clock.advance(0)
    assert clock.pending() >= 1  # the frame in flight and the client's timeout
    await clock.advance(0.2)
    assert await task == {0x0000: 1_234_567}


def test_server_read_bytes_are_the_records_encoding():
    """The server writes Read Attributes Response records straight to bytes: the same bytes as
    ReadAttributeRecord.encode, failures and values that do not fit their type included."""
    from gbcs.zcl import ReadAttributeRecord, ReadAttributesResponse
    from gbhub.han.zcl_server import _typed

    values = {**Meter().metering(), 0x0001: (ZclType.UINT16, 7), 0x0002: 1 << 60, 0x0014: 2, 0x0020: 3}
    ids = (*values, 0x0003, 0xFFFF)
    got = ZclServer._read(METERING, ids, values)
    expected = []
    for attr in ids:
        typed = _typed(METERING, attr, values.get(attr))
        if typed is None:
            expected.append(ReadAttributeRecord.failure(attr))
            continue
        try:
            ReadAttributeRecord.success(attr, *typed).encode()
            expected.append(ReadAttributeRecord.success(attr, *typed))
        except Exception:
            expected.append(ReadAttributeRecord.failure(attr, Status.INVALID_VALUE))
    assert got == b"".join(r.encode() for r in expected)
    assert Status.INVALID_VALUE in [r.status for r in expected] and ReadAttributesResponse.decode(got, 0, len(got)).records == tuple(expected)


async def test_lost_frames_are_retried_then_time_out():
    rig = Rig()
    rig.air.configure_link(IHD, ESME, loss=1.0, symmetric=False)
    client = ZclClient(rig.client_port, rig.client_dispatch, timeout=100.0, retries=2)
    with pytest.raises(ZclTimeout, match="3 attempt"):
        await client.read_attributes(ESME, METERING, [0])  # no waiting: every send reports the loss
    assert rig.air.counters.lost == 3


async def test_concurrent_requests_are_matched_by_sequence():
    clock = SimClock(START)
    rig = Rig(clock=clock, latency=0.05)
    rig.server.add_cluster(PRICE, lambda: {0x0616: 826, 0x0617: 0x02})
    tasks = [
        asyncio.ensure_future(rig.client.read_attributes(ESME, METERING, [0])),
        asyncio.ensure_future(rig.client.read_attributes(ESME, PRICE, [0x0616])),
        asyncio.ensure_future(rig.client.read_attributes(ESME, METERING, [0x0400])),
    ]
    await clock.advance(1.0)
    assert [t.result() for t in tasks] == [{0: 1_234_567}, {0x0616: 826}, {0x0400: -250}]


async def test_general_commands_at_byte_level():
    rig = Rig()
    # Unsupported general command (Read Reporting Configuration) -> UNSUP_GENERAL_COMMAND.
    (answer,) = await rig.raw(METERING, zcl_bytes(0x00, 1, 0x08, b"\x00\x00\x00"))
    assert answer.payload == DefaultResponse(0x08, Status.UNSUP_GENERAL_COMMAND)
    # Malformed Read Attributes (odd length) -> MALFORMED_COMMAND.
    (answer,) = await rig.raw(METERING, zcl_bytes(0x00, 2, 0x00, b"\x00"))
    assert answer.payload == DefaultResponse(0x00, Status.MALFORMED_COMMAND)
    # Cluster-specific command with no handler -> UNSUP_CLUSTER_COMMAND (even with DDR set).
    (answer,) = await rig.raw(METERING, zcl_bytes(0x11, 3, 0x00, b"\x00" * 6))
    assert answer.payload == DefaultResponse(0x00, Status.UNSUP_CLUSTER_COMMAND)
    # Manufacturer-specific -> UNSUP_MANUF_GENERAL_COMMAND.
    (answer,) = await rig.raw(METERING, bytes((0x04, 0x34, 0x12, 4, 0x00)) + b"\x00\x00")
    assert answer.payload == DefaultResponse(0x00, Status.UNSUP_MANUF_GENERAL_COMMAND)
    # Never an answer to a Default Response, nor to a server->client frame, nor to garbage.
    assert await rig.raw(METERING, zcl_bytes(0x00, 5, 0x0B, b"\x00\x00")) == []
    assert await rig.raw(METERING, zcl_bytes(0x08, 6, 0x01, b"")) == []
    assert await rig.raw(METERING, b"\x03") == []
    # Another endpoint: not ours.
    assert await rig.raw(METERING, zcl_bytes(0x00, 7, 0x00, b"\x00\x00"), dst_endpoint=2) == []
    # Read from the raw peer: answer mirrors the request's sequence and goes back to its endpoint.
    (answer,) = await rig.raw(METERING, zcl_bytes(0x00, 200, 0x00, b"\x00\x00\x00\x04"))
    assert answer.header.sequence == 200 and answer.header.disable_default_response
    assert answer.payload.get(0x0000) == 1_234_567 and answer.payload.get(0x0400) == -250


async def test_write_and_discover_attributes():
    rig = Rig()
    # Write Attributes: everything served is read-only.
    (answer,) = await rig.raw(METERING, zcl_bytes(0x00, 1, 0x02, b"\x00\x00\x25" + (5).to_bytes(6, "little") + b"\x99\x09\x20\x01"))
    assert answer.payload == WriteAttributesResponse(
        (type(answer.payload.records[0])(Status.READ_ONLY, 0x0000), type(answer.payload.records[0])(Status.UNSUPPORTED_ATTRIBUTE, 0x0999))
    )
    assert await rig.raw(METERING, zcl_bytes(0x00, 2, 0x05, b"\x00\x00\x25" + bytes(6))) == []  # no-response variant
    discovered = await rig.client.discover_attributes(ESME, METERING)
    assert discovered.discovery_complete == 1
    assert [(r.attribute_id, r.type_id) for r in discovered.records] == [
        (0x0000, ZclType.UINT48), (0x0206, ZclType.OCTET_STRING), (0x0300, ZclType.ENUM8),
        (0x0301, ZclType.UINT24), (0x0302, ZclType.UINT24), (0x0400, ZclType.INT24),
    ]
    partial = await rig.client.discover_attributes(ESME, METERING, start=0x0300, maximum=2)
    assert partial.discovery_complete == 0 and [r.attribute_id for r in partial.records] == [0x0300, 0x0301]


async def test_cluster_command_handler_get_current_price():
    def get_current_price(frame: ApsFrame, command: ClusterCommand):
        assert frame.src == IHD and command.name == "GetCurrentPrice"
        return ClusterCommand.build(
            PRICE, "PublishPrice", provider_id=1, rate_label=b"Std", issuer_event_id=0, current_time=0, unit_of_measure=0,
            currency=826, price_trailing_digit_and_price_tier=0x41, number_of_price_tiers_and_register_tier=0x11,
            start_time=0, duration_in_minutes=0xFFFF, price=2845,
        )

    async def select_ec(frame: ApsFrame, command: ClusterCommand):
        return Status.NOT_FOUND if command.get("originating_device") == 9 else None

    rig = Rig(commands={(PRICE, 0x00): get_current_price, (PREPAYMENT, 0x00): select_ec})
    answer = await rig.client.command(ESME, ClusterCommand.build(PRICE, "GetCurrentPrice", command_options=0))
    assert answer.name == "PublishPrice" and answer["price"] == 2845
    assert await rig.client.command(ESME, ClusterCommand.build(PREPAYMENT, "SelectAvailableEmergencyCredit", command_issue_date_time=1, originating_device=2)) is None
    with pytest.raises(ZclStatusError) as info:
        await rig.client.command(ESME, ClusterCommand.build(PREPAYMENT, "SelectAvailableEmergencyCredit", command_issue_date_time=1, originating_device=9))
    assert info.value.status == Status.NOT_FOUND


async def test_configure_reporting_periodic_and_on_change():
    clock = SimClock(START)
    rig = Rig(clock=clock)
    await rig.client.configure_reporting(ESME, METERING, 0x0400, min_interval=1, max_interval=60, reportable_change=100)
    await clock.advance(0.5)
    assert [r.values for r in rig.reports] == [{0x0400: -250}]  # first report at once (first check)
    await clock.advance(30)
    assert len(rig.reports) == 1  # small changes below the threshold are not reported
    rig.meter.demand = -200
    await clock.advance(5)
    assert len(rig.reports) == 1
    rig.meter.demand = 500
    await clock.advance(1.5)
    assert rig.reports[-1].values == {0x0400: 500} and rig.reports[-1].src == ESME
    before = len(rig.reports)
    await clock.advance(61)
    assert len(rig.reports) == before + 1  # periodic (max interval)
    # Unsupported attribute and stop.
    with pytest.raises(ZclStatusError) as info:
        await rig.client.configure_reporting(ESME, METERING, 0x0401, min_interval=1, max_interval=60)
    assert info.value.status == Status.UNSUPPORTED_ATTRIBUTE
    await rig.client.configure_reporting(ESME, METERING, 0x0400, min_interval=0, max_interval=0xFFFF)
    assert rig.server.reporting == []
    count = len(rig.reports)
    await clock.advance(200)
    assert len(rig.reports) == count


async def test_configure_reporting_needs_a_clock():
    rig = Rig()
    with pytest.raises(ZclStatusError) as info:
        await rig.client.configure_reporting(ESME, METERING, 0x0000, min_interval=1, max_interval=10)
    assert info.value.status == Status.UNSUP_GENERAL_COMMAND


async def test_server_and_client_share_a_dispatch_and_fall_back():
    """A meter that serves Metering and reads the CHF's Time on one port; a handler that held a
    cluster before keeps getting what the ZCL endpoints do not take, and gets it back."""
    air = VirtualAir()
    chf_dispatch = ClusterDispatch()
    chf_port = air.attach(CHF, chf_dispatch)
    ZclServer(chf_dispatch, clusters={TIME: lambda: {0x0000: 123, 0x0001: 0x09}}, port=chf_port)
    chf_client = ZclClient(chf_port, chf_dispatch)

    esme_dispatch = ClusterDispatch()
    legacy: list[ApsFrame] = []
    esme_dispatch.add(METERING, legacy.append)
    esme_port = air.attach(ESME, esme_dispatch)
    meter = Meter()
    server = ZclServer(esme_dispatch, clusters={METERING: meter.metering}, port=esme_port)
    esme_client = ZclClient(esme_port, esme_dispatch)

    assert await esme_client.read_attributes(CHF, TIME, [0, 1]) == {0: 123, 1: 0x09}
    assert (await chf_client.read_attributes(ESME, METERING, [0]))[0] == 1_234_567
    # A Metering client->server request on another endpoint goes to the previous handler.
    await chf_port.send(ApsFrame(CHF, ESME, 1, 7, METERING, zcl_bytes(0x00, 1, 0x00, b"\x00\x00")))
    assert len(legacy) == 1
    server.detach()
    assert esme_dispatch.handlers[METERING] == legacy.append
    with pytest.raises(ZclTimeout):
        await chf_client.read_attributes(ESME, METERING, [0], timeout=0.01)
    assert len(legacy) == 2


def test_default_response_helper():
    from gbcs.zcl import ZclHeader

    header, _ = ZclHeader.decode(zcl_bytes(0x00, 77, 0x00))
    raw = default_response(header, Status.NOT_AUTHORIZED)
    assert raw == bytes((0x18, 77, 0x0B, 0x00, 0x7E))


# Every attribute of the table reads back as served (build -> encode -> decode round trip).

from gbcs.zcl import ATTRIBUTES  # noqa: E402

_SIMPLE_KINDS = {
    **{t: ("uint", n) for n, t in enumerate(range(0x20, 0x28), 1)},
    **{t: ("uint", n) for n, t in enumerate(range(0x18, 0x20), 1)},
    **{t: ("int", n) for n, t in enumerate(range(0x28, 0x30), 1)},
    0x30: ("uint", 1), 0x31: ("uint", 2), 0xE2: ("uint", 4), 0x10: ("bool", 1),
    0x41: ("octets", 0), 0x42: ("string", 0),
}
_READABLE = sorted(k for k, (_, t) in ATTRIBUTES.items() if t in _SIMPLE_KINDS)


def _value_for(type_id: int):
    kind, size = _SIMPLE_KINDS[type_id]
    if kind == "uint":
        return st.integers(0, (1 << (8 * size)) - 1)
    if kind == "int":
        return st.integers(-(1 << (8 * size - 1)), (1 << (8 * size - 1)) - 1)
    if kind == "bool":
        return st.booleans()
    if kind == "octets":
        return st.binary(max_size=40)
    return st.text(st.characters(min_codepoint=32, max_codepoint=0x2FF), max_size=20).filter(lambda s: len(s.encode()) < 0xFF)


@st.composite
def _attribute_sets(draw):
    cluster = draw(st.sampled_from(sorted({c for c, _ in _READABLE})))
    ids = draw(st.lists(st.sampled_from([a for c, a in _READABLE if c == cluster]), min_size=1, max_size=6, unique=True))
    return cluster, {a: draw(_value_for(ATTRIBUTES[(cluster, a)][1])) for a in ids}


@settings(max_examples=150, deadline=None)
@given(case=_attribute_sets())
def test_every_table_attribute_round_trips(case):
    cluster, values = case

    async def run() -> None:
        rig = Rig(clusters={cluster: lambda: values})
        got = await rig.client.read_attributes(ESME, cluster, list(values))
        assert got == values

    asyncio.run(run())


# Malformed outside input: the server and client never raise on any bytes.

_payloads = st.one_of(
    st.binary(max_size=40),
    st.builds(lambda fc, seq, cmd, rest: bytes((fc, seq, cmd)) + rest, st.integers(0, 255), st.integers(0, 255), st.integers(0, 16), st.binary(max_size=30)),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=_payloads, cluster=st.sampled_from([METERING, PRICE, BASIC, TIME]))
def test_fuzz_server_and_client_never_raise(payload: bytes, cluster: int):
    async def run() -> None:
        rig = Rig(commands={(PRICE, 0x00): lambda f, c: None})
        rig.server.add_cluster(PRICE, lambda: {0x0616: 826})
        frame = ApsFrame(STRANGER, ESME, 1, 1, cluster, payload)
        work = rig.server.handle(frame)
        if work is not None:
            await work
        for f in rig.raw_received:  # whatever it sent is well-formed ZCL
            decode_zcl(f.payload, f.cluster, strict=False)
        # The client side: a random server->client frame (with a pending request to match).
        reply = ApsFrame(ESME, IHD, 1, 1, cluster, bytes([payload[0] | 0x08]) + payload[1:] if payload else payload)
        consumed, work = rig.client._receive(reply)
        if work is not None:
            await work

    asyncio.run(run())


# ---------------------------------------------------------------------------------------------
# The IHD against stand-ins: a CHF (han.join trust centre + Time cluster) and an ESME (ZCL
# providers over the household consumption model). The real CHF and ESME are in the next section.
# ---------------------------------------------------------------------------------------------

import json  # noqa: E402
from datetime import datetime, timezone  # noqa: E402

from gbhub.firmware.nvm import Nvm  # noqa: E402
from gbcs.zcl import utc_seconds  # noqa: E402
from gbhub.han.join import JOIN_CLUSTER, JoinServer, JoinStatus, KeyKind, link_key_from_install_code  # noqa: E402
from gbhub.meter.ihd import Display, Ihd  # noqa: E402
from gbhub.meter.model import ConsumptionModel  # noqa: E402

INSTALL_CODE = bytes.fromhex("83FED3407A939723A5C639B26916D505")
WINTER = datetime(2024, 1, 15, 8, 0, tzinfo=timezone.utc).timestamp()
SUMMER = datetime(2024, 7, 15, 8, 0, tzinfo=timezone.utc).timestamp()


class StandInChf:
    """Trust centre answering from a device log, and the HAN Time server."""

    def __init__(self, air: VirtualAir, clock: SimClock, *, time_error: float = 0.0, local_offset: int = 0) -> None:
        self.clock = clock
        self.device_log: dict[bytes, bytes] = {}  # eui -> install code
        self.tc_keys: dict[bytes, bytes] = {}
        self.time_error = time_error
        self.local_offset = local_offset
        self.dispatch = ClusterDispatch()
        self.port = air.attach(CHF, self.dispatch)
        self.join_server = JoinServer(self.port, authorise=self.authorise, on_joined=self.on_joined, clock=clock)
        self.dispatch.add(JOIN_CLUSTER, self.join_server.handle)
        self.zcl = ZclServer(self.dispatch, clusters={TIME: self.time}, port=self.port)

    def authorise(self, eui: bytes, device_type: int):
        if eui in self.tc_keys:
            return KeyKind.TC_LINK_KEY, self.tc_keys[eui]
        if eui not in self.device_log:
            return JoinStatus.NOT_IN_DEVICE_LOG
        return KeyKind.INSTALL_CODE, link_key_from_install_code(self.device_log[eui])

    def on_joined(self, eui: bytes, device_type: int, key: bytes, kind: int) -> None:
        self.tc_keys[eui] = key

    def time(self) -> dict:
        utc = utc_seconds(datetime.fromtimestamp(self.clock.now() + self.time_error, timezone.utc))
        return {0x0000: utc, 0x0001: 0x09, 0x0002: 0, 0x0007: utc + self.local_offset}


class StandInEsme:
    """ZCL attributes of an ESME whose import register integrates the consumption model."""

    def __init__(self, air: VirtualAir, clock: SimClock, *, day_consumption: bool = False, price_command: bool = False) -> None:
        self.clock = clock
        self.model = ConsumptionModel(seed=7)
        self.t0 = clock.now()
        self.register_at_t0 = 5_000_000  # Wh
        self._integrated = (self.t0, 0.0)
        self.day_consumption = day_consumption
        self.device_log: set[bytes] = set()
        self.dispatch = ClusterDispatch()
        self.port = air.attach(ESME, self.dispatch)
        commands = {(PRICE, 0x00): self.get_current_price} if price_command else None
        clusters = {METERING: self.metering, PREPAYMENT: lambda: {0x0001: 1234}}
        if not price_command:
            clusters[PRICE] = lambda: {0x0616: 826, 0x0617: 0x30, 0x0410: 28450, 0x0411: 31000}
        self.zcl = ZclServer(self.dispatch, clusters=clusters, allow=self.device_log.__contains__, port=self.port, commands=commands)

    def register_wh(self, t: float | None = None) -> int:
        t = self.clock.now() if t is None else t
        last_t, last_wh = self._integrated
        if t >= last_t:  # integrate on from the last point: hours of polls stay cheap
            wh = last_wh + self.model.energy_wh(last_t, t)
            self._integrated = (t, wh)
        else:
            wh = self.model.energy_wh(self.t0, t)
        return self.register_at_t0 + int(wh)

    def demand_w(self, t: float | None = None) -> int:
        return int(self.model.power_w(self.clock.now() if t is None else t))

    def metering(self) -> dict:
        values = {0x0000: self.register_wh(), 0x0400: self.demand_w(), 0x0300: 0, 0x0301: 1, 0x0302: 1000, 0x0020: 1, 0x000E: 0}
        if self.day_consumption:
            midnight = self.clock.now() // 86400 * 86400
            values[0x0401] = self.register_wh() - self.register_wh(midnight)
        return values

    def get_current_price(self, frame: ApsFrame, command: ClusterCommand) -> ClusterCommand:
        return ClusterCommand.build(
            PRICE, "PublishPrice", provider_id=1, rate_label=b"Std", issuer_event_id=0, current_time=0, unit_of_measure=0,
            currency=826, price_trailing_digit_and_price_tier=0x31, number_of_price_tiers_and_register_tier=0x11,
            start_time=0, duration_in_minutes=0xFFFF, price=28450,
        )


class Home:
    def __init__(self, start: float = WINTER, **options) -> None:
        self.clock = SimClock(start)
        self.air = VirtualAir(clock=self.clock)
        self.nvm = Nvm(None)
        chf_options = {k: options.pop(k) for k in ("time_error", "local_offset") if k in options}
        self.chf = StandInChf(self.air, self.clock, **chf_options)
        self.esme = StandInEsme(self.air, self.clock, **options)
        self.ihd = Ihd(IHD, clock=self.clock, han=self.air, chf_eui=CHF, esme_eui=ESME, install_code=INSTALL_CODE, nvm=self.nvm)

    def install(self) -> None:
        self.chf.device_log[IHD] = INSTALL_CODE
        self.esme.device_log.add(IHD)


async def test_ihd_joins_then_follows_the_meter():
    home = Home()
    home.install()
    ihd = home.ihd
    assert ihd.display.status == "joining"
    await ihd.start()
    await home.clock.advance(0)
    assert ihd.joined and IHD in home.chf.tc_keys
    d = ihd.display
    assert d.status == "ok" and d.updated_at == home.clock.now()
    assert d.total_import_kwh == home.esme.register_wh() / 1000
    assert d.instantaneous_demand_w == home.esme.demand_w()
    assert d.today_import_kwh == 0.0  # computed from summation deltas: first reading is the baseline
    assert d.current_price == pytest.approx(28.45) and d.currency == 826  # Tier1Block1Price, 3 decimals: pence
    assert d.credit == 1234.0  # pence
    totals = [d.total_import_kwh]
    for _ in range(6):  # through the morning peak
        await home.clock.advance(1800)
        d = ihd.display
        assert d.status == "ok" and d.updated_at == home.clock.now()
        assert d.instantaneous_demand_w == home.esme.demand_w()
        assert d.total_import_kwh == home.esme.register_wh() / 1000
        totals.append(d.total_import_kwh)
    assert totals == sorted(totals) and totals[-1] > totals[0]
    assert d.today_import_kwh == pytest.approx(totals[-1] - totals[0])
    assert ihd.polls == 1 + 6 * 180
    assert [e["code"] for e in ihd.event_log()] == ["joined"]
    json.dumps(ihd.to_json())
    await ihd.power_off()


async def test_today_import_resets_at_local_midnight_and_survives_reboot():
    home = Home()
    home.install()
    await home.ihd.start()
    midnight = (home.clock.now() // 86400 + 1) * 86400
    await home.clock.run_until(midnight - 10)
    before = home.ihd.display
    assert before.today_import_kwh == pytest.approx((home.esme.register_wh() - home.esme.register_wh(WINTER)) / 1000)
    await home.clock.run_until(midnight + 3600)
    after = home.ihd.display
    # The day's baseline is the last reading of the day before (taken at 23:59:50).
    assert after.today_import_kwh == pytest.approx((home.esme.register_wh() - home.esme.register_wh(midnight - 10)) / 1000)
    assert after.today_import_kwh < before.today_import_kwh
    # Reboot: no rejoin handshake, same baseline from NVM.
    joins = home.chf.join_server.joins
    await home.ihd.reboot()
    await home.clock.advance(60)
    assert home.chf.join_server.joins == joins and home.ihd.joined
    assert home.ihd.display.today_import_kwh == pytest.approx((home.esme.register_wh() - home.esme.register_wh(midnight - 10)) / 1000)
    await home.ihd.power_off()


async def test_today_import_from_the_meter_when_it_gives_it():
    home = Home(day_consumption=True)
    home.install()
    await home.ihd.start()
    await home.clock.advance(3 * 3600)
    midnight = home.clock.now() // 86400 * 86400
    assert home.ihd.display.today_import_kwh == (home.esme.register_wh() - home.esme.register_wh(midnight)) / 1000
    await home.ihd.power_off()


async def test_ihd_not_in_chf_device_log_keeps_trying():
    home = Home()
    home.esme.device_log.add(IHD)
    await home.ihd.start()
    await home.clock.advance(60)
    d = home.ihd.display
    assert d.status == "joining" and "NOT_IN_DEVICE_LOG" in d.error
    home.chf.device_log[IHD] = INSTALL_CODE  # CCS01
    await home.clock.advance(home.ihd.join_retry_interval)
    assert home.ihd.display.status == "ok"
    await home.ihd.power_off()


async def test_wrong_install_code_never_joins():
    home = Home()
    home.install()
    home.chf.device_log[IHD] = bytes(16)
    await home.ihd.start()
    await home.clock.advance(120)
    assert home.ihd.display.status == "joining" and "AUTHENTICATION_FAILED" in home.ihd.display.error
    await home.ihd.power_off()


async def test_ihd_not_in_esme_device_log_has_no_data():
    home = Home()
    home.chf.device_log[IHD] = INSTALL_CODE
    await home.ihd.start()
    await home.clock.advance(30)
    d = home.ihd.display
    assert d.status == "no-data" and d.error == "not authorised by the ESME" and d.total_import_kwh is None
    home.esme.device_log.add(IHD)  # CS03B
    await home.clock.advance(10)
    assert home.ihd.display.status == "ok"
    await home.ihd.power_off()


async def test_display_goes_stale_when_the_meter_is_silent():
    home = Home()
    home.install()
    await home.ihd.start()
    await home.clock.advance(10)
    assert home.ihd.display.status == "ok"
    home.esme.zcl.detach()
    await home.clock.advance(30)
    assert home.ihd.display.status == "ok"  # within stale_after (3 polls)
    await home.clock.advance(20)
    d = home.ihd.display
    assert d.status == "stale" and d.error == "ESME not answering" and d.total_import_kwh is not None
    home.air.set_link(ESME, False)
    await home.clock.advance(10)
    assert "down" in home.ihd.display.error
    await home.ihd.power_off()


async def test_ihd_clock_follows_the_chf_time_cluster():
    home = Home(SUMMER, time_error=120.0, local_offset=3600)  # BST: local = UTC + 1 h
    home.install()
    await home.ihd.start()
    await home.clock.advance(0)
    assert home.ihd.time_offset == 120.0 and home.ihd.local_offset == 3600.0
    assert home.ihd.display.updated_at == home.clock.now() + 120
    # Local midnight is 23:00 UTC (and the IHD is 2 minutes ahead).
    local_midnight = (SUMMER // 86400 + 1) * 86400 - 3600 - 120
    await home.clock.run_until(local_midnight - 10)
    assert home.ihd.display.today_import_kwh > 1.0
    await home.clock.run_until(local_midnight + 20)
    assert home.ihd.display.today_import_kwh < 0.1
    await home.ihd.power_off()


async def test_price_from_get_current_price():
    home = Home(price_command=True)
    home.install()
    await home.ihd.start()
    await home.clock.advance(0)
    d = home.ihd.display
    assert d.current_price == pytest.approx(28.45) and d.currency == 826
    await home.ihd.power_off()


async def test_display_to_json():
    d = Display(instantaneous_demand_w=250.0, updated_at=WINTER, status="ok")
    j = d.to_json()
    assert j["type"] == "Display" and j["updated_at"] == "2024-01-15T08:00:00Z" and j["status"] == "ok"
    json.dumps(j)


# ---------------------------------------------------------------------------------------------
# End to end: the real CHF (hub/chf.py) and ESME (meter/esme.py), commanded over the WAN by a
# head-end: CCS01 puts the ESME and the IHD in the CHF Device Log, CS03B puts the IHD in the
# ESME's device log (through the CHF's tunnel), the IHD joins and reads the ESME over ZCL.
# ---------------------------------------------------------------------------------------------

from gbhub.firmware.gbcs_device import Credentials, TrustAnchors  # noqa: E402
from gbcs import usecases  # noqa: E402
from gbcs.asn1 import DeviceType as Asn1DeviceType, JoinMethodAndRole  # noqa: E402
from gbcs.catalogue import DeviceType  # noqa: E402
from gbhub.han.join import join  # noqa: E402
from gbhub.hub.chf import Chf  # noqa: E402
from gbhub.meter.esme import Esme  # noqa: E402
from gbhub.tools.pki import add_device, init_pki, load_pki  # noqa: E402
from gbhub.wan.bridge import InProcessBridge  # noqa: E402
from gbhub.wan.headend import HeadEnd  # noqa: E402

E2E_CHF = bytes.fromhex("02474248400000A2")
E2E_ESME = bytes.fromhex("02474248400000A0")
E2E_IHD = bytes.fromhex("02474248400000A6")
ESME_INSTALL_CODE = bytes.fromhex("83FED3407A939723A5C639B26916D505")
IHD_INSTALL_CODE = bytes.fromhex("3D6F7A24CF1B8E42A1F0C6B3E27D9A15")


@pytest.fixture(scope="module")
def e2e_pki(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pki")
    init_pki(folder)
    add_device(folder, E2E_CHF, "chf")
    add_device(folder, E2E_ESME, "esme")
    return load_pki(folder)


class Premises:
    """CHF + ESME + IHD on a virtual air with a simulated clock, a head-end on the WAN."""

    def __init__(self, pki, start: float) -> None:
        ks = pki.keystore
        trust = TrustAnchors.from_keystore(ks)
        self.acb, self.supplier = pki.roles["acb"], pki.roles["supplier"]
        self.clock = SimClock(start)
        self.air = VirtualAir(clock=self.clock)
        self.nvm = Nvm(None)
        self.bridge = InProcessBridge()
        self.headend = HeadEnd(self.bridge.client(), ks, supplier=self.supplier, acb=self.acb, clock=self.clock)
        self.chf = Chf(E2E_CHF, clock=self.clock, credentials=Credentials.from_keystore(ks, E2E_CHF), trust=trust, nvm=self.nvm)
        self.chf.attach_wan(self.bridge)
        self.chf.attach_han(self.air)
        self.esme = Esme(E2E_ESME, clock=self.clock, credentials=Credentials.from_keystore(ks, E2E_ESME), trust=trust,
                         nvm=self.nvm, chf_eui=E2E_CHF, registers={"import_wh": 5_000_000})
        self.esme_dispatch = self.esme.attach_han(self.air)
        # The ESME's ZCL attributes, served to the devices in its HAN device log.
        self.esme_zcl = ZclServer(self.esme_dispatch, clusters=self.esme.zcl_attributes(), allow=self.esme.in_device_log,
                                  port=self.esme.han_port, clock=self.clock)
        self.ihd = Ihd(E2E_IHD, clock=self.clock, han=self.air, chf_eui=E2E_CHF, esme_eui=E2E_ESME,
                       install_code=IHD_INSTALL_CODE, nvm=self.nvm)

    async def ccs01(self, device: bytes, install_code: bytes) -> dict:
        counter = self.headend.next_counter(self.acb)
        content = usecases.build_content("CCS01", counter, device=device, install_code=install_code, join_timeout=90,
                                         enable_joining=True, key_type=1, option=0)
        reply = await self.headend.request(recipient=E2E_CHF, message_code=0x0001, content=content, critical=False,
                                           originator=self.acb, counter=counter, supplementary_remote_party_id=self.supplier,
                                           supplementary_remote_party_counter=counter)
        return usecases.interpret("CCS01", reply)

    async def esme_command(self, use_case: str, **params) -> dict:
        d = usecases.get(use_case)
        counter = self.headend.next_counter()
        reply = await self.headend.request(recipient=E2E_ESME, message_code=d.message_code,
                                           content=usecases.build_content(use_case, counter, **params),
                                           critical=d.critical, counter=counter)
        return usecases.interpret(use_case, reply)

    async def install(self) -> None:
        await self.chf.start()
        await self.esme.start()
        assert (await self.ccs01(E2E_ESME, ESME_INSTALL_CODE))["ok"]
        await join(self.esme.han_port, E2E_CHF, ESME_INSTALL_CODE, dispatch=self.esme_dispatch,
                   device_type=DeviceType.ESME, clock=self.clock)
        await self.clock.advance(1)  # the CHF opens its tunnel to the ESME
        assert (await self.ccs01(E2E_IHD, IHD_INSTALL_CODE))["ok"]  # CCS01: IHD in the CHF Device Log
        result = await self.esme_command("CS03B", other_entity_id=E2E_IHD, other_device_type=Asn1DeviceType.TYPE_2,
                                         join_method_and_role=JoinMethodAndRole.METHOD_B)
        assert result["ok"], result  # CS03B: IHD in the ESME's HAN device log

    async def close(self) -> None:
        for device in (self.ihd, self.esme, self.chf):
            await device.power_off()
        await self.headend.close()
        await self.bridge.close()


async def test_end_to_end_ihd_follows_the_esme(e2e_pki):
    start = datetime(2024, 1, 15, 6, 0, 5, tzinfo=timezone.utc).timestamp()
    site = Premises(e2e_pki, start)
    try:
        await site.install()
        chf_entry = site.chf.device_log_entry(E2E_IHD)
        assert chf_entry is not None and not chf_entry.joined
        assert site.esme.in_device_log(E2E_IHD)

        await site.ihd.start()
        await site.clock.advance(0)
        assert site.ihd.joined and site.chf.device_log_entry(E2E_IHD).joined  # TC link key in the CHF log
        assert site.ihd.time_synced_at is not None and site.ihd.time_offset == 0.0  # CHF Time cluster
        assert site.ihd.display.status == "ok"

        seen_today = []
        for hour in range(1, 19):  # 06:10 .. 23:10 UTC: the morning and evening peaks
            await site.clock.run_until(start - 5 + hour * 3600 - 3000)  # hh:10:00, off the half-hour closes
            now = site.clock.now()
            d = site.ihd.display
            registers = site.esme.registers()
            assert d.status == "ok" and d.updated_at == now, d
            assert d.instantaneous_demand_w == site.esme.power_w() == round(site.esme.model.power_w(now))
            assert d.total_import_kwh == registers["import_wh"] / 1000
            assert d.today_import_kwh == registers["current_day_wh"] / 1000
            assert d.current_price == pytest.approx(site.esme.unit_price_pence(1)) and d.currency == 826
            assert d.credit == 0.0
            seen_today.append(d.today_import_kwh)
        assert seen_today == sorted(seen_today) and seen_today[-1] > seen_today[0] + 1.0
        # Past midnight the ESME's day restarts, and so does the display's; the total goes on.
        total_before = site.ihd.display.total_import_kwh
        await site.clock.run_until(datetime(2024, 1, 16, 1, 10, tzinfo=timezone.utc).timestamp())
        d = site.ihd.display
        assert d.today_import_kwh < seen_today[-1] and d.total_import_kwh > total_before
        assert d.total_import_kwh == site.esme.registers()["import_wh"] / 1000

        # CS04B: the IHD leaves the ESME's device log; its reads are refused and the display ages.
        assert (await site.esme_command("CS04B", entity_id=E2E_IHD))["ok"]
        await site.clock.advance(60)
        d = site.ihd.display
        assert d.status == "stale" and d.error == "not authorised by the ESME"
        assert site.esme_zcl.refused >= 3
    finally:
        await site.close()
