"""The Communications Hub: CHF device log use cases, joins, CS14, routing over the HAN tunnel,
delivery-failure alerts, the WAN outage queue, reboots, and the GPF's device log.

Everything runs for real: a head-end (wan.headend.HeadEnd) on an InProcessBridge / TcpBridge, the
CHF and GPF on a SimClock with NVM, HAN devices on a VirtualAir. The meter here is a tiny
GbcsDevice subclass answering one use case (ECS52) behind its own tunnel server: a peer."""
from __future__ import annotations

import asyncio
import dataclasses
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gbhub.firmware.clock import SimClock
from gbhub.firmware.gbcs_device import Credentials, GbcsDevice, Outcome, TrustAnchors
from gbhub.firmware.nvm import Nvm
from gbcs.asn1 import (
    DeviceJoinDetails,
    DeviceLogEntry,
    GpfDeviceLogBackupAlert,
    JoinDevice,
    JoinMethodAndRole,
    ReadDeviceJoinDetails,
    UnjoinDevice,
    UnjoinResponse,
    decode_asn1,
)
from gbcs.catalogue import AlertCode, DeviceType, MessageCode
from gbcs.codec import DecodeError
from gbcs.dlms import (
    AccessRequest,
    AccessResponse,
    Data,
    DataNotification,
    DataType,
    FailureToDeliverAlert,
    RequestSpec,
    decode_apdu,
)
from gbcs.frame import CRA, decode_message, segment
from gbhub.han import ClusterDispatch, TUNNELING_CLUSTER, VirtualAir
from gbhub.han.join import (
    Challenge,
    JoinProof,
    JoinRefused,
    JoinRequest,
    JoinResult,
    JoinStatus,
    JoinTimeout,
    KeyKind,
    decode_join_frame,
    install_code_crc,
    join,
    link_key_from_install_code,
    mmo_hash,
    tc_link_key_hash,
)
from gbhub.han.tunnel import TunnelServer
from gbhub.hub.chf import Chf
from gbhub.hub.chf_log import active_device, cs14_content
from gbhub.hub.gpf import Gpf
from gbhub.tools.pki import add_device, init_pki, load_pki
from gbhub.wan.bridge import InProcessBridge, TcpBridge, TcpClient, WanDown
from gbhub.wan.headend import HeadEnd

CCS01, CCS02, CCS06, CS14, ECS52 = MessageCode.CCS01, MessageCode.CCS02, MessageCode.CCS06, MessageCode.CS14, MessageCode.ECS52
CS14_ALERT = AlertCode.CHF_DEVICE_LOG_CHANGED
DELIVERY_FAILURE, DELIVERY_FAILURE_ALERT = MessageCode.MessageDeliveryFailure, AlertCode.FAILURE_TO_DELIVER_REMOTE_PARTY_MESSAGE_TO_ESME
CS03B, CS04B, CS07, GCS62 = MessageCode.CS03B, MessageCode.CS04B, MessageCode.CS07, MessageCode.GCS62
GCS62_ALERT = AlertCode.GPF_DEVICE_LOG_CHANGED

CHF = bytes.fromhex("0247424840000002")
GPF = bytes.fromhex("0247424840000003")
ESME = bytes.fromhex("0247424840000010")
ESME2 = bytes.fromhex("0247424840000011")
STRANGER = bytes.fromhex("0247424840000012")  # has keys, never whitelisted
GHOST = bytes.fromhex("0247424840000013")  # has keys, whitelisted but never joins
GSME = bytes.fromhex("0247424840000020")
IC = b"0123456789ABCDEF"  # the RTDS CCS01 install code
IC2 = bytes.fromhex("83FED3407A939723A5C639B26916D505")
START = datetime(2024, 1, 15, 9, 0, tzinfo=timezone.utc)
FIRMWARE = bytes.fromhex("0123ABCD")
NC = "0-0:30.3.0.255"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pki")
    init_pki(folder)
    for eui, kind in ((CHF, "chf"), (GPF, "gpf"), (ESME, "esme"), (ESME2, "esme"), (STRANGER, "esme"), (GHOST, "esme"), (GSME, "gsme")):
        add_device(folder, eui, kind)
    return load_pki(folder)


# ---------------------------------------------------------------------------------------------
# The premises: CHF + GPF + WAN bridge + head-end + virtual air
# ---------------------------------------------------------------------------------------------


class Meter(GbcsDevice):
    """A minimal ESME: answers ECS52 (firmware version) and raises alerts, over its tunnel server."""

    kind = "esme"

    def supports(self, message_code: int) -> bool:
        return message_code == ECS52

    def execute(self, message):
        request = decode_apdu(message.content)
        return Outcome(AccessResponse.answer(request, [Data.octet_string(FIRMWARE)]).encode())


class Premises:
    def __init__(self, pki, *, nvm=None, clock=None, wan=None, **chf_kw):
        self.pki = pki
        self.clock = clock or SimClock(START)
        self.nvm = nvm or Nvm(None)
        ks = pki.keystore
        self.trust = TrustAnchors.from_keystore(ks)
        self.gpf = Gpf(GPF, clock=self.clock, credentials=Credentials.from_keystore(ks, GPF), trust=self.trust, nvm=self.nvm)
        self.chf = Chf(CHF, clock=self.clock, credentials=Credentials.from_keystore(ks, CHF), trust=self.trust,
                       nvm=self.nvm, gpf=self.gpf, **chf_kw)
        self.air = VirtualAir(self.clock)
        self.bridge = wan or InProcessBridge()
        self.chf.attach_wan(self.bridge)
        self.chf.attach_han(self.air)
        self.head: HeadEnd | None = None
        self.meters: dict[bytes, tuple[Meter, object, ClusterDispatch]] = {}

    async def start(self, link=None):
        await self.chf.start()
        await self.gpf.start()
        if link is None:
            link = self.bridge.client()
        self.head = HeadEnd(link, self.pki.keystore, supplier=self.pki.supplier, acb=self.pki.acb)
        await self.settle()
        return self

    async def settle(self):
        for _ in range(3):
            await self.clock.settle()
            await asyncio.sleep(0)

    async def stop(self):
        for meter, _, _ in self.meters.values():
            await meter.power_off()
        await self.chf.power_off()
        await self.gpf.power_off()
        if self.head is not None:
            await self.head.close()

    # -- head-end helpers --------------------------------------------------------------------
    async def acb_request(self, message_code, make_content, recipient=CHF, **kw):
        """A DCC-originated (ACB) command with the supplier as supplementary remote party."""
        head = self.head
        counter = head.next_counter(self.pki.acb)
        return await head.request(
            recipient=recipient, message_code=message_code, content=make_content(counter), critical=False,
            originator=self.pki.acb, counter=counter, supplementary_remote_party_id=self.pki.supplier,
            supplementary_remote_party_counter=head.next_counter(self.pki.supplier), **kw,
        )

    async def add(self, eui, install_code=IC, timeout=90):
        reply = await self.acb_request(CCS01, lambda c: ccs01_content(c, eui, install_code, timeout))
        return decode_apdu(reply.message.content)

    async def remove(self, eui):
        reply = await self.acb_request(CCS02, lambda c: ccs02_content(c, eui))
        return decode_apdu(reply.message.content)

    async def read_log(self):
        reply = await self.acb_request(CCS06, ccs06_content)
        return decode_apdu(reply.message.content)

    # -- HAN devices -------------------------------------------------------------------------
    def attach_meter(self, eui):
        ks = self.pki.keystore
        meter = Meter(eui, clock=self.clock, credentials=Credentials.from_keystore(ks, eui), trust=self.trust, nvm=self.nvm)
        dispatch = ClusterDispatch()
        port = self.air.attach(eui, dispatch)
        server = TunnelServer(port, clock=self.clock, accept=lambda client: True if client == CHF else None,
                              on_message=lambda peer, message: meter.post(message))
        dispatch.add(TUNNELING_CLUSTER, server.handle)
        meter.send_gbcs = lambda frame: server.send_gbcs(CHF, frame)
        self.meters[eui] = (meter, port, dispatch)
        return meter

    async def join(self, eui, install_code=IC, **kw):
        _, port, dispatch = self.meters[eui]
        joined = await join(port, CHF, install_code, dispatch=dispatch, clock=self.clock, **kw)
        await self.settle()
        return joined

    async def alert(self, predicate, since=0, timeout=3.0):
        return await self.head.wait_alert(predicate, since=since, timeout=timeout)


def ccs01_content(counter, eui, install_code=IC, timeout=90):
    """The RTDS CCS01 shape: register_device, join_timeout, enable joining."""
    return AccessRequest.build(
        counter,
        [RequestSpec.action(104, NC, 1), RequestSpec.set(104, NC, 3), RequestSpec.set(104, NC, 2)],
        [Data.structure(Data.octet_string(eui), Data.enum(1), Data.octet_string(install_code), Data.enum(0)),
         Data.long_unsigned(timeout), Data.boolean(True)],
    ).encode()


def ccs02_content(counter, eui):
    return AccessRequest.build(counter, [RequestSpec.action(104, NC, 2)], [Data.octet_string(eui)]).encode()


def ccs06_content(counter):
    return AccessRequest.build(counter, [RequestSpec.get(104, NC, 4)]).encode()


def ecs52_content(counter):
    return AccessRequest.build(counter, [RequestSpec.get(1, "0-0:0.2.1.255", 2)]).encode()


def results(apdu):
    return [r.result for r in apdu.results]


def cs14_entries(alert):
    note = decode_apdu(alert.message.content, message_code=alert.message.message_code)
    assert isinstance(note, DataNotification) and note.alert_code == CS14_ALERT
    (backup,) = note.elements
    return [(e[0].value, e[1].value) for e in backup[2].value]


def is_cs14(alert):
    return alert.message.message_code == CS14


def alert_code(alert):
    return decode_apdu(alert.message.content, message_code=alert.message.message_code).alert_code


@pytest.fixture
async def premises(pki):
    p = await Premises(pki).start()
    yield p
    await p.stop()


async def joined_meter(p, eui=ESME, install_code=IC):
    await p.add(eui, install_code)
    p.attach_meter(eui)
    await p.meters[eui][0].start()
    joined = await p.join(eui, install_code)
    return joined


# ---------------------------------------------------------------------------------------------
# Install codes, link keys, join frames
# ---------------------------------------------------------------------------------------------


def test_install_code_link_key_zigbee_vector():
    # ZigBee's example install code: CRC C3B5, link key 66B69009...
    assert install_code_crc(IC2) == bytes.fromhex("C3B5")
    assert link_key_from_install_code(IC2) == bytes.fromhex("66B6900981E1EE3CA4206B6B861C02BB")
    assert link_key_from_install_code(IC2 + bytes.fromhex("C3B5"), with_crc=True) == link_key_from_install_code(IC2)
    with pytest.raises(ValueError):
        link_key_from_install_code(IC2 + b"\x00\x00", with_crc=True)
    with pytest.raises(ValueError):
        link_key_from_install_code(b"short")
    assert len(mmo_hash(b"")) == 16 and mmo_hash(b"a") != mmo_hash(b"b")
    assert tc_link_key_hash(None) == b""


JOIN_FRAMES = [
    JoinRequest(1, ESME, 1, bytes(range(16))),
    Challenge(1, JoinStatus.SUCCESS, KeyKind.INSTALL_CODE, bytes(16)),
    Challenge(7, JoinStatus.NOT_IN_DEVICE_LOG),
    JoinProof(2, ESME, bytes(range(16, 32))),
    JoinResult(2, JoinStatus.SUCCESS, bytes(16)),
    JoinResult(2, JoinStatus.AUTHENTICATION_FAILED),
]


@pytest.mark.parametrize("message", JOIN_FRAMES)
def test_join_frames_round_trip(message):
    raw = message.encode()
    assert decode_join_frame(raw) == message
    assert decode_join_frame(raw).encode() == raw
    for cut in range(len(raw)):
        with pytest.raises(DecodeError):
            decode_join_frame(raw[:cut])
    with pytest.raises(DecodeError):
        decode_join_frame(raw + b"\x00")


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=40))
def test_join_frame_fuzz(data):
    try:
        message = decode_join_frame(data)
    except DecodeError:
        return
    assert message.encode() == data


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(JOIN_FRAMES), st.integers(0, 30), st.integers(0, 255))
def test_join_frame_mutations(message, index, byte):
    raw = bytearray(message.encode())
    raw[index % len(raw)] = byte
    try:
        decoded = decode_join_frame(bytes(raw))
    except DecodeError:
        return
    assert decoded.encode() == bytes(raw)


# ---------------------------------------------------------------------------------------------
# Payload shapes against the RTDS vectors
# ---------------------------------------------------------------------------------------------


def _vector(rtds, name):
    return next(row["bytes"] for row in rtds if row["file"].endswith(name))


def test_cs14_content_matches_rtds(rtds):
    alert = decode_message(_vector(rtds, "CS14_NA_8F12_ALERT_GBCS.HEX"))
    when = datetime(2015, 1, 1, tzinfo=timezone.utc)
    entries = [(bytes.fromhex("00DB1234567890A0"), bytes.fromhex("83FED3407A939723A5C639B26916D506")),
               (bytes.fromhex("00DB1234567890A1"), bytes.fromhex("83FED3407A939723A5C639B26916D505"))]
    assert cs14_content(alert.originator_counter, when, bytes(range(8)), entries) == alert.content


def test_active_device_matches_rtds(rtds):
    response = decode_message(_vector(rtds, "CCS06_8.9_SUCCESS_RESPONSE_GBCS.HEX"))
    (devices,) = decode_apdu(response.content).data
    first = devices.value[0]
    built = active_device(first[0].value, 0xC8, rssi=(-35, -50, -100), lqi=(2, 39, 247), last_communication=first[8].value,
                          hops=1, failures=0, successes=100, application_version=1, stack_version=1)
    assert built.encode() == first.encode()


def _rtds_chf(pki):
    clock = SimClock(START)
    ks = pki.keystore
    return Chf(bytes.fromhex("00DB1234567890A2"), clock=clock, credentials=Credentials.from_keystore(ks, CHF),
               trust=TrustAnchors.from_keystore(ks), nvm=Nvm(None))


def test_rtds_ccs01_ccs02_responses(rtds, pki):
    """Executing the RTDS commands gives the RTDS responses byte for byte."""
    chf = _rtds_chf(pki)
    for name in ("CCS01_8.11_SUCCESS", "CCS02_8.11_SUCCESS", "CCS02_8.11_ERROR"):
        command = decode_message(_vector(rtds, f"{name}_COMMAND_GBCS.HEX"))
        expected = decode_message(_vector(rtds, f"{name}_RESPONSE_GBCS.HEX"))
        assert chf.execute(command).content == expected.content, name
    assert chf.historic_log() == []  # never joined: no TC link key to keep


def test_rtds_ccs01_twice_and_ccs06_shape(rtds, pki):
    chf = _rtds_chf(pki)
    command = decode_message(_vector(rtds, "CCS01_8.11_SUCCESS_COMMAND_GBCS.HEX"))
    expected = decode_message(_vector(rtds, "CCS01_8.11_SUCCESS_RESPONSE_GBCS.HEX"))
    first = chf.execute(command)
    assert first.after is not None  # the log changed: CS14 follows the response
    again = chf.execute(command)  # already in the log: success, key ignored, no CS14
    assert again.content == expected.content and again.after is None
    assert chf.joining_open and chf.join_timeout == 90
    read = decode_message(_vector(rtds, "CCS06_8.9_SUCCESS_COMMAND_GBCS.HEX"))
    ours = decode_apdu(chf.execute(read).content)
    theirs = decode_apdu(decode_message(_vector(rtds, "CCS06_8.9_SUCCESS_RESPONSE_GBCS.HEX")).content)
    assert ours.invoke_id == theirs.invoke_id and results(ours) == [0]
    (entry,) = ours.data[0].value
    assert [d.type for d in entry.value] == [d.type for d in theirs.data[0].value[0].value]
    assert entry[0].value == bytes.fromhex("00DB1234567890A0") and entry[1].value.data == b"\x80"


def test_device_log_capacity_and_break_on_error(pki):
    chf = Chf(CHF, clock=SimClock(START), credentials=Credentials.from_keystore(pki.keystore, CHF),
              trust=TrustAnchors.from_keystore(pki.keystore), nvm=Nvm(None), device_log_capacity=1)
    chf.execute(decode_message(_command(pki, CCS01, ccs01_content(1, ESME))))
    second = decode_apdu(chf.execute(decode_message(_command(pki, CCS01, ccs01_content(2, ESME2)))).content)
    assert results(second) == [250, 250, 250]
    assert [e.eui for e in chf.device_log()] == [ESME]
    bad = AccessRequest.build(3, [RequestSpec.set(104, NC, 3)], [Data.boolean(True)]).encode()
    assert results(decode_apdu(chf.execute(decode_message(_command(pki, CCS01, bad))).content)) == [12]


def test_historic_log_keeps_fifteen(pki):
    chf = Chf(CHF, clock=SimClock(START), credentials=Credentials.from_keystore(pki.keystore, CHF),
              trust=TrustAnchors.from_keystore(pki.keystore), nvm=Nvm(None))
    euis = [bytes.fromhex(f"02474248500000{i:02X}") for i in range(17)]
    for i, eui in enumerate(euis):
        chf.register_device(eui, IC)
        chf._put_entry(dataclasses.replace(chf.device_log_entry(eui), tc_link_key=bytes([i]) * 16))
        assert chf.unregister_device(eui) == (0, True)
    historic = chf.historic_log()
    assert [h.eui for h in historic] == euis[2:] and historic[0].tc_link_key == bytes([2]) * 16
    # re-adding an EUI from the historic log takes its old TC link key along
    chf.register_device(euis[5], IC)
    assert chf.device_log_entry(euis[5]).previous_tc_link_key == bytes([5]) * 16
    assert euis[5] not in [h.eui for h in chf.historic_log()]


def _command(pki, code, content):
    """A command frame from the ACB to CHF (for direct `execute` tests; MAC irrelevant there)."""
    from gbcs.frame import Message

    return Message(CRA.COMMAND, 1, pki.acb, CHF, code, content, mac=b"\x00" * 12).encode()


def test_time_attributes(pki):
    clock = SimClock(datetime(2024, 7, 1, 12, 0, tzinfo=timezone.utc))
    chf = Chf(CHF, clock=clock, credentials=Credentials.from_keystore(pki.keystore, CHF),
              trust=TrustAnchors.from_keystore(pki.keystore), nvm=Nvm(None))
    providers = chf.zcl_attributes()
    time = providers[0x000A]()
    expected = int((datetime(2024, 7, 1, 12, 0, tzinfo=timezone.utc) - datetime(2000, 1, 1, tzinfo=timezone.utc)).total_seconds())
    assert time[0x0000] == expected and time[0x0001] == 0x09 and time[0x0007] == expected + 3600
    assert providers[0x0000]()[0x0011] == 1


# ---------------------------------------------------------------------------------------------
# CCS01, joins, CS14
# ---------------------------------------------------------------------------------------------


async def test_ccs01_join_and_cs14(premises):
    p = premises
    apdu = await p.add(ESME)
    assert results(apdu) == [0, 0, 0]
    alert = await p.alert(is_cs14)
    assert alert.valid and alert.message.recipient == p.pki.acb and alert.message.originator == CHF
    assert cs14_entries(alert) == [(ESME, b"")]
    assert p.chf.device_log_entry(ESME).joined is False

    since = len(p.head.received_alerts)
    meter = p.attach_meter(ESME)
    await meter.start()
    joined = await p.join(ESME, IC, device_type=DeviceType.ESME)
    assert joined.key_kind is KeyKind.INSTALL_CODE
    entry = p.chf.device_log_entry(ESME)
    assert entry.joined and entry.device_type == DeviceType.ESME and entry.tc_link_key_hash == joined.tc_link_key_hash
    alert = await p.alert(is_cs14, since=since)
    assert alert.valid and cs14_entries(alert) == [(ESME, joined.tc_link_key_hash)]
    assert len(joined.tc_link_key_hash) == 16

    # already in the log: success, key ignored, nothing changes (no CS14)
    since = len(p.head.received_alerts)
    assert results(await p.add(ESME, IC2)) == [0, 0, 0]
    assert p.chf.device_log_entry(ESME).install_code == IC
    await p.settle()
    assert not any(is_cs14(a) for a in p.head.received_alerts[since:])


async def test_join_refusals(premises):
    p = premises
    await p.add(ESME2, IC)
    p.attach_meter(ESME2)
    with pytest.raises(JoinRefused) as wrong:
        await p.join(ESME2, IC2)  # wrong install code
    assert wrong.value.status == JoinStatus.AUTHENTICATION_FAILED
    p.attach_meter(STRANGER)
    with pytest.raises(JoinRefused) as unknown:
        await p.join(STRANGER, IC)  # not in the device log
    assert unknown.value.status == JoinStatus.NOT_IN_DEVICE_LOG
    refused = [e for e in p.chf.security_log() if e["code"] == "join_refused"]
    assert {e["status"] for e in refused} == {"AUTHENTICATION_FAILED", "NOT_IN_DEVICE_LOG"}
    assert not p.chf.device_log_entry(ESME2).joined and p.chf.device_log_entry(STRANGER) is None
    # the window closes: even the right install code is refused afterwards
    await p.clock.advance(90 * 60 + 1)
    with pytest.raises(JoinRefused) as closed:
        await p.join(ESME2, IC)
    assert closed.value.status == JoinStatus.JOINING_NOT_PERMITTED


async def test_ccs02_moves_to_historic_log_and_rejoin_rules(premises):
    p = premises
    joined = await joined_meter(p)
    apdu = await p.remove(ESME)
    assert results(apdu) == [0]
    alert = await p.alert(lambda a: is_cs14(a) and cs14_entries(a) == [])
    assert alert.valid
    (historic,) = p.chf.historic_log()
    assert historic.eui == ESME and historic.tc_link_key == joined.tc_link_key
    assert p.chf.device_log_entry(ESME) is None
    assert results(await p.remove(ESME)) == [1]  # not in the log (RTDS ERROR shape)

    # back in: during the first half of the window only the old TC link key joins ...
    await p.add(ESME)
    assert p.chf.historic_log() == []
    with pytest.raises(JoinRefused):
        await p.join(ESME, IC)  # asked for the TC link key, holds none
    again = await p.join(ESME, IC, tc_link_key=joined.tc_link_key)
    assert again.key_kind is KeyKind.TC_LINK_KEY and again.tc_link_key == joined.tc_link_key
    assert p.chf.device_log_entry(ESME).joined

    # ... and in the second half, the install code
    await p.remove(ESME)
    await p.add(ESME)
    await p.clock.advance(90 * 60 * 0.6)
    third = await p.join(ESME, IC, tc_link_key=joined.tc_link_key)
    assert third.key_kind is KeyKind.INSTALL_CODE and third.tc_link_key != joined.tc_link_key


async def test_ccs06_returns_the_log(premises):
    p = premises
    await joined_meter(p)
    await p.add(GHOST, IC2)
    apdu = await p.read_log()
    assert results(apdu) == [0]
    entries = {e[0].value: e for e in apdu.data[0].value}
    assert set(entries) == {ESME, GHOST}
    assert entries[ESME][1].value.data == b"\xc8"  # registered, joined, communicating (as RTDS)
    assert entries[GHOST][1].value.data == b"\x80"  # registered only
    assert entries[GHOST][8].value[:9] == b"\xff" * 9  # never communicated
    assert entries[ESME][8].type is DataType.OCTET_STRING and entries[ESME][8].value[:2] == (2024).to_bytes(2, "big")


# ---------------------------------------------------------------------------------------------
# Routing
# ---------------------------------------------------------------------------------------------


async def test_command_routed_to_a_joined_meter(premises):
    p = premises
    await joined_meter(p)
    reply = await p.head.request(recipient=ESME, message_code=ECS52, content=ecs52_content(p.head.next_counter()), critical=False)
    assert reply.valid and reply.message.originator == ESME
    assert decode_apdu(reply.message.content).data[0].value == FIRMWARE
    # the CHF answers ECS52 itself too (CH variant)
    reply = await p.head.request(recipient=CHF, message_code=ECS52, content=ecs52_content(p.head.next_counter()), critical=False)
    assert reply.valid and decode_apdu(reply.message.content).data[0].value == p.chf.firmware_version
    # an alert from the meter goes up unchanged
    frame = await p.meters[ESME][0].raise_alert(0x8F3F)
    await p.settle()
    assert p.head.received_alerts[-1].raw == frame and p.head.received_alerts[-1].valid


async def _send_and_wait_failure(p, recipient):
    since = len(p.head.received_alerts)
    msg, frame = p.head.build_command(recipient=recipient, message_code=ECS52, content=ecs52_content(p.head.next_counter() + 1),
                                      critical=False)
    await p.head.link.send(frame)
    alert = await p.alert(lambda a: a.message.message_code == DELIVERY_FAILURE, since=since)
    assert alert.valid and alert.message.originator == CHF and alert.message.recipient == p.pki.supplier
    note = decode_apdu(alert.message.content, message_code=DELIVERY_FAILURE)
    assert note.alert_code == DELIVERY_FAILURE_ALERT
    assert note.details == FailureToDeliverAlert(p.pki.supplier, recipient, 1, msg.originator_counter)
    return alert


async def test_delivery_failures_are_reported(premises):
    p = premises
    await _send_and_wait_failure(p, STRANGER)  # not in the device log
    await p.add(GHOST, IC2)
    await _send_and_wait_failure(p, GHOST)  # in the log, never joined
    await joined_meter(p)
    _, port, _ = p.meters[ESME]
    port.detach()  # the meter vanishes from the HAN
    await _send_and_wait_failure(p, ESME)
    assert p.chf.delivery_failures == 3
    reasons = [e["reason"] for e in p.chf.event_log() if e["code"] == "delivery_failure"]
    assert "recipient not in the CHF device log" in reasons[0] and "not joined" in reasons[1] and "NoRoute" in reasons[2]


async def test_gbt_blocks_are_reassembled(premises):
    p = premises
    counter = p.head.next_counter(p.pki.acb)
    msg, frame = p.head.build_command(recipient=CHF, message_code=CCS06, content=ccs06_content(counter), critical=False,
                                      originator=p.pki.acb, counter=counter, supplementary_remote_party_id=p.pki.supplier,
                                      supplementary_remote_party_counter=p.head.next_counter(p.pki.supplier))
    blocks = segment(frame, 30)
    assert len(blocks) > 2
    waiting = asyncio.ensure_future(p.head.send_raw(blocks[-1].encode(), counter=counter))
    for block in reversed(blocks[:-1]):  # any order
        await p.head.link.send(block.encode())
    raw = await waiting
    assert decode_message(raw).cra is CRA.RESPONSE


# ---------------------------------------------------------------------------------------------
# WAN outage: queue, overflow, reboot
# ---------------------------------------------------------------------------------------------


async def test_wan_outage_queues_alerts_in_order(premises):
    p = premises
    await joined_meter(p)
    meter = p.meters[ESME][0]
    since = len(p.head.received_alerts)
    p.bridge.set_link(False)
    with pytest.raises(WanDown):
        await p.head.link.send(b"\xdf")
    sent = [await meter.raise_alert(code) for code in (0x8F3F, 0x8F73, 0x8F74, 0x8F75)]
    await p.settle()
    assert p.chf.wan_queue() == sent and len(p.head.received_alerts) == since
    p.bridge.set_link(True)
    await p.settle()
    got = [a.raw for a in p.head.received_alerts[since:]]
    assert got == sent and all(a.valid for a in p.head.received_alerts[since:])
    assert p.chf.wan_queue_length == 0 and p.chf.wan_queue_dropped == 0


async def test_wan_queue_overflow_is_counted_and_reported(pki):
    p = await Premises(pki, wan_queue_limit=2).start()
    try:
        await joined_meter(p)
        meter = p.meters[ESME][0]
        since = len(p.head.received_alerts)
        p.bridge.set_link(False)
        sent = [await meter.raise_alert(code) for code in (0x8F3F, 0x8F73, 0x8F74, 0x8F75, 0x8F76)]
        await p.settle()
        assert p.chf.wan_queue() == sent[:2] and p.chf.wan_queue_dropped == 3
        assert sum(e["code"] == "wan_queue_overflow" for e in p.chf.event_log()) == 1
        p.bridge.set_link(True)
        await p.settle()
        assert [a.raw for a in p.head.received_alerts[since:]] == sent[:2]
        (report,) = [e for e in p.chf.event_log() if e["code"] == "wan_queue_overflow_reported"]
        assert report["dropped"] == 3 and report["total"] == 3
    finally:
        await p.stop()


async def test_reboot_keeps_device_log_and_queued_alerts(premises):
    p = premises
    joined = await joined_meter(p)
    meter = p.meters[ESME][0]
    since = len(p.head.received_alerts)
    p.bridge.set_link(False)
    sent = [await meter.raise_alert(code) for code in (0x8F3F, 0x8F73)]
    await p.settle()
    await p.chf.reboot()
    await p.settle()
    entry = p.chf.device_log_entry(ESME)
    assert entry.joined and entry.tc_link_key == joined.tc_link_key
    assert p.chf.wan_queue() == sent
    sent.append(await meter.raise_alert(0x8F74))  # the tunnel came back with the CHF
    await p.settle()
    p.bridge.set_link(True)
    await p.settle()
    assert [a.raw for a in p.head.received_alerts[since:]] == sent
    reply = await p.head.request(recipient=ESME, message_code=ECS52, content=ecs52_content(p.head.next_counter()), critical=False)
    assert reply.valid


async def test_queue_survives_power_cut_before_wan_returns(pki):
    nvm = Nvm(None)
    p = await Premises(pki, nvm=nvm).start()
    try:
        await joined_meter(p)
        p.bridge.set_link(False)
        sent = [await p.meters[ESME][0].raise_alert(0x8F3F)]
        await p.settle()
        await p.chf.power_off()
        p.bridge.set_link(True)  # nobody home
        await p.settle()
        assert p.chf.wan_queue() == sent
        since = len(p.head.received_alerts)
        await p.chf.start()  # released at boot
        await p.settle()
        assert [a.raw for a in p.head.received_alerts[since:]] == sent
    finally:
        await p.stop()


# ---------------------------------------------------------------------------------------------
# Negative: role, replay
# ---------------------------------------------------------------------------------------------


async def test_ccs01_from_the_supplier_is_refused(premises):
    p = premises
    since = len(p.head.received_alerts)
    counter = p.head.next_counter()
    _, frame = p.head.build_command(recipient=CHF, message_code=CCS01, content=ccs01_content(counter, ESME), critical=False,
                                    counter=counter)
    await p.head.link.send(frame)
    alert = await p.alert(lambda a: a.message.originator == CHF, since=since)
    assert alert.valid and alert_code(alert) == 0x8F30  # Source does not have Authority for Command
    assert p.chf.device_log() == []
    (entry,) = [e for e in p.chf.security_log() if e["code"] == "command_rejected"]
    assert entry["reason"] == "role"


async def test_replayed_command_is_refused(premises):
    p = premises
    counter = p.head.next_counter(p.pki.acb)
    msg, frame = p.head.build_command(recipient=CHF, message_code=CCS01, content=ccs01_content(counter, ESME), critical=False,
                                      originator=p.pki.acb, counter=counter, supplementary_remote_party_id=p.pki.supplier,
                                      supplementary_remote_party_counter=p.head.next_counter(p.pki.supplier))
    reply = await p.head.exchange(msg, frame, critical=False)
    assert reply.valid
    await p.remove(ESME)
    since = len(p.head.received_alerts)
    await p.head.link.send(frame)  # the same CCS01 again
    alert = await p.alert(lambda a: a.message.message_code != CS14, since=since)
    assert alert.valid and alert_code(alert) == 0x8F53
    assert p.chf.device_log() == []  # not re-added
    assert any(e["code"] == "command_rejected" and e["reason"] == "replay" for e in p.chf.security_log())


# ---------------------------------------------------------------------------------------------
# GPF device log
# ---------------------------------------------------------------------------------------------


async def test_gpf_device_log(premises):
    p = premises

    async def gpf(code, payload):
        counter = p.head.next_counter()
        reply = await p.head.request(recipient=GPF, message_code=code, content=payload.encode(), critical=False, counter=counter)
        assert reply.valid and reply.message.originator == GPF
        return decode_asn1(reply.message.content, message_code=code, cra=2)

    assert await gpf(CS07, ReadDeviceJoinDetails()) == DeviceJoinDetails(entries=(), code=0)
    assert (await gpf(CS03B, JoinDevice(JoinMethodAndRole.METHOD_B, GSME, DeviceType.GSME))).code == 0
    alert = await p.alert(lambda a: a.message.message_code == GCS62)
    assert alert.valid and alert.message.originator == GPF
    backup = decode_asn1(alert.message.content, message_code=GCS62, cra=3)
    assert isinstance(backup, GpfDeviceLogBackupAlert) and backup.alert_code == GCS62_ALERT
    assert backup.entries == (DeviceLogEntry(GSME, DeviceType.GSME),)
    assert (await gpf(CS03B, JoinDevice(JoinMethodAndRole.METHOD_B, GSME, DeviceType.PPMID))).code == 3  # incompatible
    assert (await gpf(CS03B, JoinDevice(JoinMethodAndRole.METHOD_C, ESME, DeviceType.PPMID))).code == 2
    details = await gpf(CS07, ReadDeviceJoinDetails())
    assert details.entries == (DeviceLogEntry(GSME, DeviceType.GSME),)
    assert await gpf(CS04B, UnjoinDevice(GSME)) == UnjoinResponse(code=0)
    assert await gpf(CS04B, UnjoinDevice(GSME)) == UnjoinResponse(code=1)
    assert p.gpf.device_log() == []


# ---------------------------------------------------------------------------------------------
# TCP bridge
# ---------------------------------------------------------------------------------------------


async def test_over_tcp(pki):
    bridge = TcpBridge()
    await bridge.start()
    p = Premises(pki, wan=bridge)
    client = await TcpClient(port=bridge.port).connect()
    await p.start(link=client)
    try:
        await joined_meter(p)
        apdu = await p.read_log()
        assert [e[0].value for e in apdu.data[0].value] == [ESME]
        reply = await p.head.request(recipient=ESME, message_code=ECS52, content=ecs52_content(p.head.next_counter()), critical=False)
        assert reply.valid
        await p.head.wait_alert(is_cs14)
    finally:
        await p.stop()
        await bridge.close()


# ---------------------------------------------------------------------------------------------
# A sleepy GSME (its own tunnel to the CHF, GET/PUT), and a HAN with latency
# ---------------------------------------------------------------------------------------------


class SleepyMeter(Meter):
    kind = "gsme"


async def test_gsme_pulls_its_commands_through_its_tunnel(premises):
    from gbhub.han.tunnel import TunnelClient

    p = premises
    await p.add(GSME, IC2)
    ks = p.pki.keystore
    gsme = SleepyMeter(GSME, clock=p.clock, credentials=Credentials.from_keystore(ks, GSME), trust=p.trust, nvm=p.nvm)
    dispatch = ClusterDispatch()
    port = p.air.attach(GSME, dispatch)
    client = TunnelClient(port, CHF, clock=p.clock, sleepy=True, on_message=lambda peer, message: gsme.post(message))
    dispatch.add(TUNNELING_CLUSTER, client.handle)
    gsme.send_gbcs = client.send_gbcs  # PUT
    await gsme.start()
    try:
        joined = await join(port, CHF, IC2, dispatch=dispatch, device_type=DeviceType.GSME, clock=p.clock)
        await p.settle()
        assert p.chf.device_log_entry(GSME).device_type == DeviceType.GSME
        assert joined.key_kind is KeyKind.INSTALL_CODE
        await client.open()
        counter = p.head.next_counter()
        msg, frame = p.head.build_command(recipient=GSME, message_code=ECS52, content=ecs52_content(counter), critical=False, counter=counter)
        reply = asyncio.ensure_future(p.head.exchange(msg, frame, critical=False))
        await p.settle()
        assert not reply.done()  # queued at the CHF until the GSME asks
        assert await client.poll() == 1
        await p.settle()
        assert (await reply).valid
    finally:
        await gsme.power_off()


async def test_han_with_latency(pki):
    clock = SimClock(START)
    p = Premises(pki, clock=clock)
    p.air.latency = 0.05
    await p.start()
    clock.start_autojump()
    try:
        await joined_meter(p)
        reply = await p.head.request(recipient=ESME, message_code=ECS52, content=ecs52_content(p.head.next_counter()), critical=False)
        assert reply.valid
        await _send_and_wait_failure(p, STRANGER)
    finally:
        await clock.stop_autojump()
        await p.stop()


async def test_powered_off_chf_hears_nothing(premises):
    p = premises
    await p.chf.power_off()
    counter = p.head.next_counter(p.pki.acb)
    _, frame = p.head.build_command(recipient=CHF, message_code=CCS06, content=ccs06_content(counter), critical=False,
                                    originator=p.pki.acb, counter=counter)
    await p.head.link.send(frame)
    assert p.chf.wan_dropped == 1
    p.attach_meter(ESME)
    attempt = asyncio.ensure_future(join(p.meters[ESME][1], CHF, IC, dispatch=p.meters[ESME][2], clock=p.clock, timeout=5))
    await p.clock.advance(6)
    with pytest.raises(JoinTimeout):
        await attempt


async def test_tunnel_is_re_requested_every_0xffff_seconds(premises):
    from gbcs.hgrp import RequestTunnel, decode_tunnel_frame

    p = premises
    await joined_meter(p)
    requests = []
    p.air.observe(lambda event: requests.append(event.time) if event.frame.cluster == TUNNELING_CLUSTER
                  and event.frame.src == CHF and isinstance(decode_tunnel_frame(event.frame.payload).command, RequestTunnel) else None)
    await p.clock.advance(0xFFFF + 3600)
    await p.settle()
    assert len(requests) == 1 and requests[0] - START.timestamp() >= 0xFFFF
    reply = await p.head.request(recipient=ESME, message_code=ECS52, content=ecs52_content(p.head.next_counter()), critical=False)
    assert reply.valid


# ---------------------------------------------------------------------------------------------
# Robustness: any command content only ever answers or raises CommandRejected
# ---------------------------------------------------------------------------------------------

_SEEDS = {
    CCS01: ccs01_content(5, ESME),
    CCS02: ccs02_content(5, ESME),
    CCS06: ccs06_content(5),
    ECS52: ecs52_content(5),
}


@pytest.fixture(scope="module")
def bare(pki):
    ks = pki.keystore
    trust = TrustAnchors.from_keystore(ks)
    chf = Chf(CHF, clock=SimClock(START), credentials=Credentials.from_keystore(ks, CHF), trust=trust, nvm=Nvm(None))
    gpf = Gpf(GPF, clock=SimClock(START), credentials=Credentials.from_keystore(ks, GPF), trust=trust, nvm=Nvm(None))
    return chf, gpf


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(_SEEDS)), st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=4),
       st.integers(0, 60))
def test_chf_execute_never_crashes(bare, code, mutations, cut):
    from gbhub.firmware.gbcs_device import CommandRejected
    from gbcs.frame import Message

    chf, _ = bare
    content = bytearray(_SEEDS[code])
    for index, byte in mutations:
        content[index % len(content)] = byte
    content = bytes(content[: len(content) - cut % 8])
    message = Message(CRA.COMMAND, 9, bytes(8), CHF, code, content, mac=b"\x00" * 12)
    try:
        outcome = chf.execute(message)
    except CommandRejected:
        return
    assert isinstance(decode_apdu(outcome.content), AccessResponse)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([CS07, CS03B, CS04B, 0x008C]), st.binary(max_size=40))
def test_gpf_execute_never_crashes(bare, code, content):
    from gbhub.firmware.gbcs_device import CommandRejected
    from gbcs.frame import Message

    _, gpf = bare
    seed = {CS07: ReadDeviceJoinDetails(), CS03B: JoinDevice(2, GSME, 0), CS04B: UnjoinDevice(GSME)}.get(code)
    for data in (content, seed.encode() + content[:1] if seed else content):
        message = Message(CRA.COMMAND, 9, bytes(8), GPF, code, data, mac=b"\x00" * 12)
        try:
            outcome = gpf.execute(message)
        except CommandRejected:
            continue
        decode_asn1(outcome.content, message_code=code, cra=2)
