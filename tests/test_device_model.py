"""firmware/: the shared device model — the device-log service (the same answers from the ESME and
the GPF), the handler tables (supported use cases, allowed requests from the use-case
definitions), and the COSEM object model's break-on-error — on a running premises."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gbcs import usecases
from gbcs.asn1 import (
    DeviceJoinDetails,
    DeviceLogEntry,
    GpfDeviceLogRestore,
    GpfDeviceLogRestoreResponse,
    JoinDevice,
    JoinMethodAndRole,
    ReadDeviceJoinDetails,
    UnjoinDevice,
    decode_asn1,
)
from gbcs.catalogue import AlertCode, DeviceType, MessageCode
from gbcs.dlms import AccessRequest, Data, RequestSpec, decode_apdu
from gbcs.obis import OBIS
from gbhub.firmware.cosem import BREAK_ON_ERROR, OTHER_REASON, SUCCESS, CosemError, CosemObject, ObjectModel
from gbhub.firmware.cosem import Attribute
from gbhub.firmware.device_log import JOIN_ROLES, join
from gbhub.firmware.gbcs_device import GbcsDevice, Handler, call, dlms, handlers
from gbhub.hub.chf import Chf
from gbhub.hub.gpf import Gpf
from gbhub.meter.esme import DEVICE_LOG_CAPACITY, Esme
from gbhub.meter.gsme import Gsme

CS03A1, CS03B, CS04B, CS07 = MessageCode.CS03A1, MessageCode.CS03B, MessageCode.CS04B, MessageCode.CS07
IHD = bytes.fromhex("02474248400000E1")
OTHER = bytes.fromhex("02474248400000E2")
B, C = JoinMethodAndRole.METHOD_B, JoinMethodAndRole.METHOD_C
INTEGRITY = AlertCode.INTEGRITY_CHECK_OF_CONTENT_OR_FORMAT_OF_COMMAND_FAILED

pytestmark = pytest.mark.premises(tcp=False, ihd=False, ppmid=False)


async def asn1(p, device, code, payload, **kw):
    reply = await p.headend.request(recipient=device.eui, message_code=code, content=payload.encode(), critical=False, **kw)
    assert reply.valid and reply.message.originator == device.eui
    return decode_asn1(reply.message.content, message_code=code, cra=2)


def event_codes(device) -> list[int]:
    return [e["code"] for e in device.event_log() if isinstance(e["code"], int)]


# -- the device-log service: one answer per command, whichever device keeps the log ----------------
@pytest.mark.parametrize("kind", ["esme", "gpf"])
async def test_device_log_answers_alike_on_esme_and_gpf(premises, kind):
    p = premises
    device = getattr(p, kind)
    steps = [
        (CS07, ReadDeviceJoinDetails(), DeviceJoinDetails(entries=(), code=0)),
        (CS03B, JoinDevice(B, IHD, DeviceType.TYPE_2), 0),
        (CS03B, JoinDevice(B, IHD, DeviceType.TYPE_2), 0),  # already there, same type: success, no change
        (CS03B, JoinDevice(B, IHD, DeviceType.GPF), 3),  # already there with another type
        (CS03B, JoinDevice(C, OTHER, DeviceType.TYPE_2), 2),  # Method C: neither device takes part in it
        (CS03B, JoinDevice(7, OTHER, DeviceType.TYPE_2), 2),  # no such join method
        (CS07, ReadDeviceJoinDetails(), DeviceJoinDetails(entries=(DeviceLogEntry(IHD, DeviceType.TYPE_2),))),
        (CS04B, UnjoinDevice(IHD), 0),
        (CS04B, UnjoinDevice(IHD), 1),
        (CS07, ReadDeviceJoinDetails(), DeviceJoinDetails(entries=(), code=0)),
    ]
    for code, payload, expected in steps:
        answer = await asn1(p, device, code, payload)
        assert (answer if isinstance(expected, DeviceJoinDetails) else answer.code) == expected, (code.name, payload)
    joined, failed = AlertCode.DEVICE_JOINING_SUCCEEDED, AlertCode.DEVICE_JOINING_FAILED
    unjoined, not_unjoined = AlertCode.DEVICE_UNJOINING_SUCCEEDED, AlertCode.DEVICE_UNJOINING_FAILED
    assert event_codes(device)[-7:] == [joined, joined, failed, failed, failed, unjoined, not_unjoined]


@pytest.mark.parametrize("kind", ["esme", "gpf"])
async def test_device_log_full_alike_on_esme_and_gpf(premises, kind):
    p = premises
    device = getattr(p, kind)
    assert device.joined_devices.capacity == DEVICE_LOG_CAPACITY == 16
    for i in range(DEVICE_LOG_CAPACITY):
        eui = bytes.fromhex(f"02474248410000{i:02X}")
        assert (await asn1(p, device, CS03B, JoinDevice(B, eui, DeviceType.TYPE_2))).code == 0
    assert (await asn1(p, device, CS03B, JoinDevice(B, OTHER, DeviceType.TYPE_2))).code == 4  # device log full
    assert len(device.joined_devices) == DEVICE_LOG_CAPACITY and OTHER not in device.joined_devices


@pytest.mark.parametrize("seed", range(4))
async def test_random_joins_and_unjoins_agree_on_esme_and_gpf(premises, seed):
    """A differential check: any sequence of Method B/C (or unknown method) joins of device types
    both may add, and unjoins, leaves both logs answering and holding the same."""
    import random

    rng = random.Random(seed)
    pool = [bytes.fromhex(f"02474248420000{i:02X}") for i in range(20)]
    esme, gpf = premises.esme.joined_devices, premises.gpf.joined_devices
    for _ in range(120):
        eui = rng.choice(pool)
        if rng.random() < 0.3:
            assert esme.remove(eui) == gpf.remove(eui)
            continue
        join = JoinDevice(rng.choice([B, B, B, C, 4, 9]), eui, rng.choice([DeviceType.TYPE_2, DeviceType.GPF]))
        assert esme.join_code(CS03B, join) == gpf.join_code(CS03B, join), join
    assert esme.entries() == gpf.entries()
    assert len(esme) <= DEVICE_LOG_CAPACITY


async def test_method_a_through_cs03b_depends_on_the_methods_a_device_takes_part_in(premises):
    """FACTS §3.2: 1 = message code wrong for the method, 2 = bad method. The ESME takes part in
    Method A (CS03A1): a CS03B carrying it has the wrong message code. The GPF joins by Method B
    only: Method A is a bad method there."""
    p = premises
    payload = JoinDevice(JoinMethodAndRole.METHOD_A_INITIATOR, OTHER, DeviceType.PPMID)
    assert (await asn1(p, p.esme, CS03B, payload)).code == 1
    assert (await asn1(p, p.gpf, CS03B, payload)).code == 2
    assert p.esme.joined_devices.roles == JOIN_ROLES[CS03A1] | JOIN_ROLES[CS03B]
    assert p.gpf.joined_devices.roles == JOIN_ROLES[CS03B]


async def test_gpf_restore_and_backup_use_the_same_log(premises):
    p = premises
    since = len(p.headend.received_alerts)
    backup = (DeviceLogEntry(IHD, DeviceType.TYPE_2), DeviceLogEntry(OTHER, DeviceType.PPMID))
    he = p.headend  # GCS59 is DCC-originated: the ACB, with the supplier as supplementary remote party
    answer = await asn1(p, p.gpf, MessageCode.GCS59, GpfDeviceLogRestore(entries=backup), originator=he.acb,
                        supplementary_remote_party_id=he.supplier,
                        supplementary_remote_party_counter=he.next_counter(he.supplier))
    assert isinstance(answer, GpfDeviceLogRestoreResponse) and [o.code for o in answer.outcomes] == [0, 0]
    alert = await p.headend.wait_alert(lambda a: a.message.message_code == MessageCode.GCS62, since=since)
    assert decode_asn1(alert.message.content, message_code=MessageCode.GCS62, cra=3).entries == backup
    assert (await asn1(p, p.gpf, CS07, ReadDeviceJoinDetails())).entries == backup


async def test_older_data_folders_keep_their_device_log(premises):
    """The ESME used to key its log by lower-case hex: such entries are rewritten at boot."""
    p = premises
    esme = p.esme
    eui = bytes.fromhex("02474248400000AB")
    await esme.power_off()
    esme.nvm.put("device_log", eui.hex(), int(DeviceType.TYPE_2))
    await esme.start()
    assert esme.in_device_log(eui) and esme.device_log() == {eui: DeviceType.TYPE_2}
    assert [k for k, _ in esme.nvm.items("device_log")] == [eui.hex().upper()]


# -- handler tables ------------------------------------------------------------------------------
async def command_alert(p, recipient, code, content):
    """Send a command the device must refuse; the security alert it raises."""
    since = len(p.headend.received_alerts)
    _msg, frame = p.headend.build_command(recipient=recipient, message_code=code, content=content, critical=False)
    await p.headend.link.send(frame)
    alert = await p.headend.wait_alert(lambda a: a.message.originator == recipient, since=since)
    assert alert.valid
    return decode_apdu(alert.message.content, message_code=alert.message.message_code).alert_code


async def test_a_use_case_outside_the_table_is_refused(premises):
    p = premises
    assert not p.gpf.supports(MessageCode.ECS17c) and p.esme.supports(MessageCode.ECS17c)
    content = AccessRequest.build(7, [RequestSpec.get(*OBIS.INSTANTANEOUS_ACTIVE_POWER_IMPORT.key, 2)]).encode()
    assert await command_alert(p, p.gpf.eui, MessageCode.ECS17c, content) == INTEGRITY
    assert p.gpf.security_log()[-1]["reason"] == "unsupported"


async def test_a_request_outside_the_definition_is_refused(premises):
    p = premises
    # ECS17c may read the instantaneous power, not the clock
    clock = RequestSpec.get(*OBIS.CLOCK.key, 2)
    assert not usecases.get("ECS17c").allows(clock)
    content = AccessRequest.build(8, [clock]).encode()
    assert await command_alert(p, p.esme.eui, MessageCode.ECS17c, content) == INTEGRITY
    assert p.esme.security_log()[-1]["reason"] == "malformed"
    # ECS52 to the CHF: attribute 2 of the firmware version only
    content = AccessRequest.build(9, [RequestSpec.get(*OBIS.DEVICE_FIRMWARE_VERSION.key, 1)]).encode()
    assert await command_alert(p, p.chf.eui, MessageCode.ECS52, content) == INTEGRITY


def test_tables_are_derived_not_restated():
    for device in (Esme, Gpf, Chf, Gsme):
        for code, handler in device.HANDLERS.items():
            assert isinstance(handler, Handler) and handler.message_code == code
            if handler.use_case is not None:
                assert handler.use_case.message_code == code
    from gbhub.firmware.credentials import credential_handlers

    credentials = {h.message_code for h in credential_handlers()}  # CS02a-g: every GBCS device
    assert {MessageCode.CS07, MessageCode.CS03B, MessageCode.CS04B, MessageCode.GCS59, MessageCode.CS06} | credentials <= set(Gpf.HANDLERS)
    assert credentials <= set(Esme.HANDLERS) and credentials <= set(Chf.HANDLERS)
    # the GPF answers gas reads from its store; state-changing gas commands are the GSME's only
    assert {MessageCode.GCS13a, MessageCode.GCS16a, MessageCode.GCS17} <= set(Gpf.HANDLERS) & set(Gsme.HANDLERS)
    assert not {MessageCode.GCS32, MessageCode.GCS39, MessageCode.CS01b} & set(Gpf.HANDLERS)
    assert {MessageCode.CCS01, MessageCode.CCS06, MessageCode.ECS52} <= set(Chf.HANDLERS)
    # an object-model binding needs a definition that says what its content may carry
    with pytest.raises(ValueError):
        dlms(MessageCode.CS07)
    with pytest.raises(ValueError):
        join(MessageCode.CS07)
    with pytest.raises(ValueError):
        handlers(call(MessageCode.CS07, lambda d, m: b""), call(MessageCode.CS07, lambda d, m: b""))
    assert GbcsDevice.HANDLERS == {} and not GbcsDevice.supports(Gpf, MessageCode.ECS17b)


# -- the COSEM object model ----------------------------------------------------------------------
def _model():
    log = []

    def fail(value):
        log.append(value)
        raise CosemError(3, "denied", data=Data.enum(9))

    return log, ObjectModel([CosemObject.of(OBIS.CLOCK, {2: Attribute(get=lambda _d: Data.long(1), set=lambda _d, v: log.append(v))},
                                            {4: lambda _d, v: fail(v)})]).bind(None)


@pytest.mark.parametrize("break_on_error", [True, False])
def test_object_model_answers_in_order_with_break_on_error(break_on_error):
    log, model = _model()
    clock = OBIS.CLOCK.key
    specs = [RequestSpec.action(*clock, 4), RequestSpec.set(*clock, 2), RequestSpec.get(*clock, 2)]
    request = AccessRequest.build(5, specs, [Data.null(), Data.long(2), Data.null()])
    assert request.invoke_id & BREAK_ON_ERROR  # GBCS always sets it
    response = model.answer(request, break_on_error=break_on_error)
    if break_on_error:
        assert [r.result for r in response.results] == [3, OTHER_REASON, OTHER_REASON]
        assert log == [Data.null()]
    else:
        assert [r.result for r in response.results] == [3, SUCCESS, SUCCESS]
        assert log == [Data.null(), Data.long(2)] and response.data[2] == Data.long(1)
    assert response.data[0] == Data.enum(9)  # return data of a failed action


@settings(max_examples=60, deadline=None)
@given(outcomes=st.lists(st.sampled_from([None, 1, 3, 4, 12, 250]), min_size=1, max_size=6),
       flag=st.booleans(), honour=st.booleans())
def test_object_model_answer_matches_a_plain_loop(outcomes, flag, honour):
    """Each request in order; with the flag honoured, everything after the first failure is other-reason."""
    calls = []

    def method(i):
        def run(_owner, _value):
            calls.append(i)
            if outcomes[i] is not None:
                raise CosemError(outcomes[i])
            return Data.long(i)
        return run

    model = ObjectModel([CosemObject.of(OBIS.CLOCK, {}, {i + 1: method(i) for i in range(len(outcomes))})]).bind(None)
    request = AccessRequest.build(3, [RequestSpec.action(*OBIS.CLOCK.key, i + 1) for i in range(len(outcomes))])
    if not flag:  # the same request without the invoke-id's break-on-error flag
        raw = bytearray(request.encode())
        raw[1] &= ~(BREAK_ON_ERROR >> 24)
        request = decode_apdu(bytes(raw))
    assert bool(request.invoke_id & BREAK_ON_ERROR) == flag
    stop = honour and flag
    expected, served, failed = [], [], False
    for i, o in enumerate(outcomes):
        if failed and stop:
            expected.append(OTHER_REASON)
            continue
        served.append(i)
        expected.append(SUCCESS if o is None else o)
        failed = failed or o is not None
    response = model.answer(request, break_on_error=honour)
    assert [r.result for r in response.results] == expected and calls == served
