"""CCS03 Restore CHF Device Log (0x0003), end to end: the builder and its parameters, the CHF's
all-or-nothing restore (per-entry results, capacity, malformed backups, roles), CS14 with the new
extended PAN id, persistence, and two premises stories on the real devices — a hub whose log is
trimmed to a backup, and a replacement hub restored from the first one's log that the ESME
re-joins. The layout is ours [U] (hub/chf.py module doc)."""
from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from gbhub.firmware.clock import SimClock
from gbhub.firmware.gbcs_device import CommandRejected, Credentials, TrustAnchors
from gbhub.firmware.nvm import Nvm
from gbcs import catalogue, usecases
from gbcs.catalogue import DeviceType, MessageCode, RemotePartyRole
from gbcs.codec import eui_hex
from gbcs.dlms import AccessRequest, AccessResponse, Data, DataType, RequestKind, RequestSpec, decode_apdu, obis
from gbcs.frame import CRA, Message
from gbcs.payload import decode_payload
from gbhub.han.join import KeyKind, join
from gbhub.hub.chf import Chf
from gbhub.hub.chf_log import DEVICE_LOG_FULL, INVALID_ENTRY, RESTORED
from gbhub.tools.pki import add_device, init_pki, load_pki

from test_hub import (
    CHF,
    ESME,
    ESME2,
    GHOST,
    GPF,
    IC,
    IC2,
    NC,
    START,
    Premises,
    alert_code,
    ccs06_content,
    cs14_entries,
    ecs52_content,
    is_cs14,
    joined_meter,
    results,
)

CCS03, CS14 = MessageCode.CCS03, MessageCode.CS14
NEW_PAN = bytes.fromhex("0247424840000099")
NEWCOMER = bytes.fromhex("02474248400000B7")


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pki-ccs03")
    init_pki(folder)
    for eui, kind in ((CHF, "chf"), (GPF, "gpf"), (ESME, "esme"), (ESME2, "esme"), (GHOST, "esme")):
        add_device(folder, eui, kind)
    return load_pki(folder)


def ccs03_content(counter, devices, pan=NEW_PAN, timeout=90, key_type=1):
    return usecases.build_content("CCS03", counter, extended_pan_id=pan, devices=devices, join_timeout=timeout,
                                  key_type=key_type)


def raw_ccs03(counter, parameter, timeout=90):
    """A CCS03 with any restore_PAN parameter (malformed ones included)."""
    return AccessRequest.build(
        counter,
        [RequestSpec.action(104, NC, 5), RequestSpec.set(104, NC, 3), RequestSpec.set(104, NC, 2)],
        [parameter, Data.long_unsigned(timeout), Data.boolean(True)],
    ).encode()


def entry(eui, code=IC, key_type=1, option=0):
    return Data.structure(Data.octet_string(eui), Data.enum(key_type), Data.octet_string(code), Data.enum(option))


def backup(pan, *entries):
    return Data.structure(Data.octet_string(pan), Data.array(*entries))


def entry_codes(apdu):
    first = apdu.data[0]
    return None if first.type is DataType.NULL_DATA else [d.value for d in first.value]


def euis(chf):
    return [e.eui for e in chf.device_log()]


# ---------------------------------------------------------------------------------------------
# The builder, its parameters, the interpreter
# ---------------------------------------------------------------------------------------------


def test_definition():
    d = usecases.get("CCS03")
    uc = catalogue.by_use_case("CCS03")
    assert (d.message_code, d.name, d.target, d.originator, d.critical) == (CCS03, uc.name, "chf", "acb", False)
    assert catalogue.allowed_remote_party_roles(CCS03) == frozenset({RemotePartyRole.ACCESS_CONTROL_BROKER})
    assert "| CCS03 Restore CHF Device Log | 0003 | chf | no | acb |" in usecases.usecase_table_markdown()
    assert "`devices` (devices)" in usecases.usecase_table_markdown()


def test_build_layout_and_byte_exact_round_trip():
    devices = ((ESME, IC), (NEWCOMER, IC2))
    content = ccs03_content(77, devices, timeout=30)
    payload = decode_payload(Message(CRA.COMMAND, 77, catalogue.RTDS_ACB, CHF, CCS03, content))
    assert isinstance(payload, AccessRequest) and payload.encode() == content
    apdu = decode_apdu(content, message_code=CCS03)
    assert apdu.encode() == content
    assert [(s.kind, s.class_id, s.obis, s.id) for s in apdu.specs] == [
        (RequestKind.ACTION, 104, obis(NC), 5), (RequestKind.SET, 104, obis(NC), 3), (RequestKind.SET, 104, obis(NC), 2)]
    expected = raw_ccs03(77, backup(NEW_PAN, entry(ESME), entry(NEWCOMER, IC2)), timeout=30)
    assert content == expected
    # defaults: the RTDS GPF's EUI as extended PAN id, the RTDS ESME with the CCS01 install code
    default = decode_apdu(usecases.build_content("CCS03", 1))
    assert default.data[0] == backup(catalogue.RTDS_GPF, entry(catalogue.RTDS_ESME, b"0123456789ABCDEF"))
    assert default.data[1:] == (Data.long_unsigned(90), Data.boolean(True))
    # an empty backup is a valid restore (it clears the log)
    assert decode_apdu(ccs03_content(2, ())).data[0] == backup(NEW_PAN)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.binary(min_size=8, max_size=8), st.binary(min_size=16, max_size=16)), max_size=20),
       st.binary(min_size=8, max_size=8), st.integers(0, (1 << 64) - 1), st.integers(0, 65535), st.booleans())
def test_random_builds_round_trip(devices, pan, counter, timeout, enable):
    content = usecases.build_content("CCS03", counter, extended_pan_id=pan, devices=devices, join_timeout=timeout,
                                     enable_joining=enable)
    apdu = decode_apdu(content, message_code=CCS03)
    assert apdu.encode() == content
    restore = apdu.data[0]
    assert restore[0].value == pan
    assert [(e[0].value, e[2].value) for e in restore[1].value] == [tuple(d) for d in devices]
    # the text form the CLI takes gives the same parameters
    text = ",".join(f"{eui_hex(e)}:{c.hex()}" for e, c in devices)
    assert usecases.parse_params("CCS03", [f"devices={text}"])["devices"] == tuple(devices)


def test_parse_params():
    p = usecases.parse_params("CCS03", [
        "extended_pan_id=02-47-42-48-40-00-00-99",
        "devices=0247424840000010:30313233343536373839414243444546, 02474248400000B7 : 83FED340-7A939723-A5C639B2-6916D505",
        "join_timeout=30", "enable-joining=yes"])
    assert p == {"extended_pan_id": NEW_PAN, "devices": ((ESME, IC), (NEWCOMER, IC2)), "join_timeout": 30,
                 "enable_joining": True}
    assert usecases.parse_params("CCS03", ["devices="]) == {"devices": ()}
    d = usecases.get("CCS03").param("devices")
    assert d.coerce(d.default_text()) == d.default
    assert d.coerce([(eui_hex(ESME), IC.hex()), [NEWCOMER, IC2]]) == ((ESME, IC), (NEWCOMER, IC2))


@pytest.mark.parametrize("value, match", [
    ("0247424840000010", "not EUI:INSTALL_CODE"),
    ("02:47:42:48:40:00:00:10:30313233343536373839414243444546", "not EUI:INSTALL_CODE"),
    ("0247424840000010:0011", "device 1: install code must be 16 bytes, got 2"),
    (f"{ESME.hex()}:{IC.hex()},0247:{IC.hex()}", "device 2: not an EUI-64"),
    ("0247424840000010:zz", "device 1: not hex bytes"),
])
def test_parse_params_errors(value, match):
    with pytest.raises(ValueError, match=match) as exc:
        usecases.parse_params("CCS03", [f"devices={value}"])
    assert type(exc.value) is ValueError and str(exc.value).startswith("CCS03: parameter 'devices'")
    with pytest.raises(ValueError, match="expected an \\(EUI, install code\\) pair"):
        usecases.build_content("CCS03", 1, devices=[ESME])


def test_interpret():
    request = decode_apdu(ccs03_content(5, ((ESME, IC), (NEWCOMER, IC2))))
    ok = AccessResponse.answer(request, [Data.array(Data.enum(0), Data.enum(0)), None, None])
    out = usecases.interpret("CCS03", None, ok)
    assert out["ok"] and out["entries"] == ["restored", "restored"]
    assert out["results"] == {"restore_pan": "success", "join_timeout": "success", "enable_joining": "success"}
    failed = AccessResponse.answer(request, [Data.array(Data.enum(0), Data.enum(2), Data.enum(1), Data.enum(9)), None, None],
                                   [250, 250, 250])
    out = usecases.interpret("CCS03", None, failed)
    assert not out["ok"] and out["entries"] == ["restored", "device_log_full", "invalid_entry", "unknown (9)"]
    malformed = usecases.interpret("CCS03", None, AccessResponse.answer(request, [None, None, None], [12, 250, 250]))
    assert not malformed["ok"] and "entries" not in malformed and malformed["results"]["restore_pan"] != "success"
    json.dumps(out)


# ---------------------------------------------------------------------------------------------
# The CHF, executing directly (model check) and robustness
# ---------------------------------------------------------------------------------------------


def _bare_chf(pki, capacity=4):
    ks = pki.keystore
    return Chf(CHF, clock=SimClock(START), credentials=Credentials.from_keystore(ks, CHF),
               trust=TrustAnchors.from_keystore(ks), nvm=Nvm(None), device_log_capacity=capacity)


def _execute(chf, content):
    return decode_apdu(chf.execute(Message(CRA.COMMAND, 1, bytes(8), CHF, CCS03, content, mac=b"\x00" * 12)).content)


_POOL = [bytes.fromhex(f"02474248500000{i:02X}") for i in range(6)]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(_POOL), max_size=4, unique=True),
       st.lists(st.tuples(st.sampled_from(_POOL), st.sampled_from([1, 1, 1, 2]), st.sampled_from([16, 16, 16, 5])),
                max_size=7),
       st.integers(1, 5))
def test_restore_model(pki, before, wanted, capacity):
    """All or nothing: the per-entry codes follow the documented rules; on success the log is the
    backup (kept entries untouched), on failure nothing changed."""
    chf = _bare_chf(pki, capacity=max(capacity, len(before)))
    for eui in before:
        chf.register_device(eui, IC)
    snapshot = chf.device_log()
    pan_before = chf.extended_pan_id
    entries = [entry(eui, bytes(range(n)), key_type=kt) for eui, kt, n in wanted]
    apdu = _execute(chf, raw_ccs03(3, backup(NEW_PAN, *entries)))
    expected, seen, slots = [], set(), 0
    for eui, kt, n in wanted:
        if eui in seen or (eui not in before and (kt != 1 or n != 16)):
            expected.append(INVALID_ENTRY)
        elif slots >= chf.device_log_capacity:
            expected.append(DEVICE_LOG_FULL)
        else:
            expected.append(RESTORED)
            slots += 1
        seen.add(eui)
    assert entry_codes(apdu) == expected
    event("refused" if any(expected) else "restored")
    if any(expected):
        assert results(apdu) == [250, 250, 250]
        assert chf.device_log() == snapshot and chf.extended_pan_id == pan_before
    else:
        assert results(apdu) == [0, 0, 0]
        assert euis(chf) == sorted({eui for eui, _, _ in wanted})
        assert chf.extended_pan_id == NEW_PAN
        kept = {e.eui: e for e in snapshot}
        for e in chf.device_log():
            if e.eui in kept:
                assert e == kept[e.eui]


_SEED = raw_ccs03(5, backup(NEW_PAN, entry(ESME), entry(ESME2, IC2)))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=4), st.integers(0, 60))
def test_execute_never_crashes_on_mutated_ccs03(pki, mutations, cut):
    chf = _bare_chf(pki)
    content = bytearray(_SEED)
    for index, byte in mutations:
        content[index % len(content)] = byte
    content = bytes(content[: len(content) - cut % 8])
    try:
        outcome = chf.execute(Message(CRA.COMMAND, 9, bytes(8), CHF, CCS03, content, mac=b"\x00" * 12))
    except CommandRejected:
        return
    assert isinstance(decode_apdu(outcome.content), AccessResponse)


# ---------------------------------------------------------------------------------------------
# Over the WAN: the hub test premises (CHF + GPF + head-end + virtual air, a minimal meter)
# ---------------------------------------------------------------------------------------------


@pytest.fixture
async def hub(pki):
    p = await Premises(pki).start()
    yield p
    await p.stop()


async def restore(p, devices, pan=NEW_PAN, **kw):
    reply = await p.acb_request(CCS03, lambda c: ccs03_content(c, devices, pan, **kw))
    assert reply.valid
    return decode_apdu(reply.message.content)


async def test_restore_trims_adds_and_keeps(hub):
    p = hub
    joined = await joined_meter(p)
    await p.add(GHOST, IC2)  # whitelisted, never joined
    await p.add(ESME2, IC)
    since = len(p.head.received_alerts)
    apdu = await restore(p, ((ESME, IC2), (NEWCOMER, IC)))
    assert results(apdu) == [0, 0, 0] and entry_codes(apdu) == [0, 0]
    assert euis(p.chf) == [ESME, NEWCOMER]
    esme = p.chf.device_log_entry(ESME)
    assert esme.joined and esme.tc_link_key == joined.tc_link_key and esme.install_code == IC  # kept, key ignored
    assert not p.chf.device_log_entry(NEWCOMER).joined
    assert p.chf.historic_log() == []  # the removed two had never joined: no TC link key to keep
    assert p.chf.extended_pan_id == NEW_PAN and p.chf.joining_open and p.chf.join_timeout == 90
    alert = await p.alert(is_cs14, since=since)
    assert alert.valid and cs14_entries(alert) == [(ESME, joined.tc_link_key_hash), (NEWCOMER, b"")]
    assert usecases.interpret("CS14", alert)["extended_pan_id"] == NEW_PAN.hex().upper()
    (event,) = [e for e in p.chf.event_log() if e["code"] == "device_log_restored"]
    assert (event["kept"], event["added"], event["removed"], event["extended_pan_id"]) == (1, 1, 2, eui_hex(NEW_PAN))

    # the same backup again: success, nothing changes, no CS14
    since = len(p.head.received_alerts)
    apdu = await restore(p, ((ESME, IC), (NEWCOMER, IC)))
    assert results(apdu) == [0, 0, 0] and entry_codes(apdu) == [0, 0]
    await p.settle()
    assert not any(is_cs14(a) for a in p.head.received_alerts[since:])


async def test_removed_joined_device_goes_to_historic_log_and_loses_its_route(hub):
    p = hub
    joined = await joined_meter(p)
    apdu = await restore(p, ((NEWCOMER, IC),))
    assert entry_codes(apdu) == [0] and results(apdu) == [0, 0, 0]
    (historic,) = p.chf.historic_log()
    assert historic.eui == ESME and historic.tc_link_key == joined.tc_link_key
    assert p.chf._tunnels.clients.get(ESME) is None  # HAN state forgotten, as CCS02
    since = len(p.head.received_alerts)
    counter = p.head.next_counter()
    _, frame = p.head.build_command(recipient=ESME, message_code=0x0059, content=ecs52_content(counter), critical=False,
                                    counter=counter)
    await p.head.link.send(frame)
    failure = await p.alert(lambda a: a.message.message_code == 0x00D5, since=since)
    assert failure.valid
    # restored again from the backup: it rejoins with its old TC link key (first half of the window)
    apdu = await restore(p, ((ESME, IC), (NEWCOMER, IC)))
    assert entry_codes(apdu) == [0, 0]
    assert p.chf.device_log_entry(ESME).previous_tc_link_key == joined.tc_link_key
    again = await p.join(ESME, IC, tc_link_key=joined.tc_link_key)
    assert again.tc_link_key == joined.tc_link_key
    reply = await p.head.request(recipient=ESME, message_code=0x0059, content=ecs52_content(p.head.next_counter()),
                                 critical=False)
    assert reply.valid


async def test_capacity_failure_changes_nothing(pki):
    p = await Premises(pki, device_log_capacity=2).start()
    try:
        await joined_meter(p)
        await p.add(GHOST, IC2)
        await p.settle()
        before, pan, timeout = p.chf.device_log(), p.chf.extended_pan_id, p.chf.join_timeout
        since = len(p.head.received_alerts)
        apdu = await restore(p, ((ESME, IC), (ESME2, IC), (GHOST, IC2), (NEWCOMER, IC)), timeout=7)
        assert entry_codes(apdu) == [0, 0, 2, 2]
        assert results(apdu) == [250, 250, 250]  # break-on-error: the sets are not executed
        assert p.chf.device_log() == before and p.chf.extended_pan_id == pan == GPF and p.chf.join_timeout == timeout
        await p.settle()
        assert not any(is_cs14(a) for a in p.head.received_alerts[since:])
        assert any(e["code"] == "device_log_restore_failed" and e["full"] == 2 for e in p.chf.event_log())
        assert not any(e["code"] == "device_log_restored" for e in p.chf.event_log())
    finally:
        await p.stop()


async def test_invalid_entries_change_nothing(hub):
    p = hub
    await p.add(ESME, IC)
    before = p.chf.device_log()
    cases = [
        (backup(NEW_PAN, entry(ESME, b"short", key_type=7), entry(ESME2, key_type=2)), [0, 1]),  # kept: key ignored
        (backup(NEW_PAN, entry(ESME2, b"12345")), [1]),  # install code of no ZigBee length
        (backup(NEW_PAN, entry(ESME2), entry(NEWCOMER), entry(ESME2)), [0, 0, 1]),  # repeated EUI
    ]
    for parameter, codes in cases:
        reply = await p.acb_request(CCS03, lambda c: raw_ccs03(c, parameter))
        apdu = decode_apdu(reply.message.content)
        assert entry_codes(apdu) == codes and results(apdu) == [250, 250, 250]
        assert p.chf.device_log() == before and p.chf.extended_pan_id == GPF


@pytest.mark.parametrize("parameter", [
    backup(bytes(7), entry(ESME)),  # extended PAN id not 8 bytes
    backup(bytes(9), entry(ESME)),
    Data.structure(Data.octet_string(NEW_PAN), Data.structure(entry(ESME))),  # not an array
    Data.structure(Data.octet_string(NEW_PAN)),  # one element
    backup(NEW_PAN, Data.structure(Data.octet_string(ESME), Data.enum(1))),  # short entry
    backup(NEW_PAN, entry(ESME[:7])),  # EUI not 8 bytes
    backup(NEW_PAN, Data.octet_string(ESME)),
    Data.array(Data.octet_string(NEW_PAN)),
    Data.null(),
])
async def test_malformed_parameter_is_type_unmatched(hub, parameter):
    p = hub
    await p.add(ESME, IC)
    before = p.chf.device_log()
    since = len(p.head.received_alerts)
    reply = await p.acb_request(CCS03, lambda c: raw_ccs03(c, parameter))
    apdu = decode_apdu(reply.message.content)
    assert results(apdu) == [12, 250, 250] and entry_codes(apdu) is None
    assert p.chf.device_log() == before and p.chf.extended_pan_id == GPF
    await p.settle()
    assert not any(is_cs14(a) for a in p.head.received_alerts[since:])


async def test_ccs03_from_the_supplier_is_refused(hub):
    p = hub
    await p.add(ESME, IC)
    before = p.chf.device_log()
    since = len(p.head.received_alerts)
    counter = p.head.next_counter()
    _, frame = p.head.build_command(recipient=CHF, message_code=CCS03, content=ccs03_content(counter, ((NEWCOMER, IC),)),
                                    critical=False, counter=counter)
    await p.head.link.send(frame)
    alert = await p.alert(lambda a: a.message.originator == CHF and not is_cs14(a), since=since)
    assert alert.valid and alert_code(alert) == 0x8F30  # Source does not have Authority for Command
    assert p.chf.device_log() == before and p.chf.extended_pan_id == GPF
    (entry_,) = [e for e in p.chf.security_log() if e["code"] == "command_rejected"]
    assert entry_["reason"] == "role" and entry_["message_code"] == "0003"


async def test_restored_log_and_pan_survive_a_restart(pki, tmp_path):
    path = tmp_path / "nvm.sqlite"
    p = await Premises(pki, nvm=Nvm(path)).start()
    try:
        joined = await joined_meter(p)
        await p.add(GHOST, IC2)
        apdu = await restore(p, ((ESME, IC), (NEWCOMER, IC2)))
        assert entry_codes(apdu) == [0, 0]
        log = p.chf.device_log()
    finally:
        await p.stop()
        p.nvm.close()
    q = await Premises(pki, nvm=Nvm(path)).start()
    try:
        assert q.chf.extended_pan_id == NEW_PAN
        assert [(e.eui, e.install_code, e.tc_link_key) for e in q.chf.device_log()] == \
            [(e.eui, e.install_code, e.tc_link_key) for e in log]
        assert q.chf.device_log_entry(ESME).tc_link_key == joined.tc_link_key
        assert [h.eui for h in q.chf.historic_log()] == []
        reply = await q.acb_request(0x010F, ccs06_content)
        assert [e[0].value for e in decode_apdu(reply.message.content).data[0].value] == [ESME, NEWCOMER]
        # CS14 after the next change carries the restored PAN id
        since = len(q.head.received_alerts)
        await q.remove(NEWCOMER)
        alert = await q.alert(is_cs14, since=since)
        assert decode_apdu(alert.message.content, message_code=CS14).elements[0][1].value == NEW_PAN
    finally:
        await q.stop()
        q.nvm.close()


# ---------------------------------------------------------------------------------------------
# The full premises (tools.premises: CHF, GPF, ESME and IHD commissioned, head-end over TCP)
# ---------------------------------------------------------------------------------------------


def _cs14_after(p, since):
    return p.headend.wait_alert(lambda a: a.message.message_code == CS14, since=since, timeout=5)


async def test_premises_restore_keeps_esme_drops_ihd(premises_factory):
    p = await premises_factory(ppmid=False)
    chf, esme, ihd = p.chf, p.esme, p.ihd
    assert chf.device_log_entry(ihd.eui).joined and chf.device_log_entry(esme.eui).joined
    esme_key = chf.device_log_entry(esme.eui).tc_link_key
    ihd_key = chf.device_log_entry(ihd.eui).tc_link_key
    since = len(p.headend.received_alerts)
    r = await p.send("CCS03", "chf", extended_pan_id=NEW_PAN,
                     devices=[(esme.eui, p.specs["esme"].install_code), (NEWCOMER, IC2)])
    assert r.ok and r.reply.mac == "valid"
    assert r.summary["entries"] == ["restored", "restored"]
    assert entry_codes(decode_apdu(r.reply.message.content)) == [0, 0]
    # the IHD is out (its TC link key in the historic log), the newcomer in, the ESME untouched
    assert chf.device_log_entry(ihd.eui) is None
    (historic,) = chf.historic_log()
    assert historic.eui == ihd.eui and historic.tc_link_key == ihd_key
    newcomer = chf.device_log_entry(NEWCOMER)
    assert newcomer.install_code == IC2 and not newcomer.joined
    kept = chf.device_log_entry(esme.eui)
    assert kept.joined and kept.tc_link_key == esme_key and kept.device_type == DeviceType.ESME
    assert chf.extended_pan_id == NEW_PAN
    alert = await _cs14_after(p, since)
    assert alert.valid and alert.mac == "valid"
    cs14 = usecases.interpret("CS14", alert)
    assert cs14["extended_pan_id"] == NEW_PAN.hex().upper()
    assert [d["eui"] for d in cs14["devices"]] == sorted([eui_hex(esme.eui), eui_hex(NEWCOMER)])
    # the ESME is still routable
    read = await p.send("ECS17b")
    assert read.ok and read.summary["decrypted"]


async def test_replacement_hub_restored_from_the_first_ones_log(premises_factory):
    """The DCC keeps the first hub's log (CCS06 read, CS14 for the extended PAN id) and restores
    it onto a replacement CHF with an empty log (same identity, new NVM); the ESME re-joins with
    its install code, and reads work again."""
    p = await premises_factory(ppmid=False)
    esme, ihd = p.esme, p.ihd
    first = p.chf
    listed = (await p.send("CCS06", "chf")).summary
    backup_euis = [bytes.fromhex(d["eui"]) for d in listed["devices"]]
    assert sorted(backup_euis) == sorted([esme.eui, ihd.eui])
    pan = first.extended_pan_id
    install_codes = {esme.eui: p.specs["esme"].install_code, ihd.eui: p.specs["ihd"].install_code}

    # swap the CHF: the old unit goes dark, a fresh one (empty NVM) takes the WAN and the HAN
    await first.stop()
    first.han_port.detach()
    fresh = Chf(first.eui, clock=p.clock, credentials=first.credentials, trust=p.trust, nvm=Nvm(None),
                     firmware_version=first.firmware_version)
    fresh.attach_wan(p.bridge)
    fresh.attach_han(p.air)
    fresh.attach_gpf(p.gpf)
    p.chf = fresh
    await fresh.start()
    assert fresh.device_log() == []
    since = len(p.headend.received_alerts)
    r = await p.send("CCS03", "chf", extended_pan_id=pan,
                     devices=[(eui, install_codes[eui]) for eui in backup_euis], join_timeout=10)
    assert r.ok and r.summary["entries"] == ["restored", "restored"]
    assert sorted(e.eui for e in fresh.device_log()) == sorted(backup_euis)
    assert fresh.extended_pan_id == pan and fresh.joining_open
    alert = await _cs14_after(p, since)
    assert usecases.interpret("CS14", alert)["extended_pan_id"] == pan.hex().upper()

    # in the log but not joined: the CHF reports a command to the ESME as undeliverable
    since = len(p.headend.received_alerts)
    counter = p.headend.next_counter()
    _, frame = p.headend.build_command(recipient=esme.eui, message_code=0x0052, critical=False,
                                       content=usecases.build_content("ECS45", counter), counter=counter)
    await p.headend.link.send(frame)
    undelivered = await p.headend.wait_alert(lambda a: a.message.message_code == 0x00D5, since=since, timeout=5)
    assert undelivered.valid
    # the ESME re-joins with its install code; the CHF opens its tunnel; reads work again
    joined = await join(esme.han_port, fresh.eui, install_codes[esme.eui], dispatch=esme.han_dispatch,
                        device_type=DeviceType.ESME, clock=p.clock)
    assert joined.key_kind is KeyKind.INSTALL_CODE
    await p.clock.advance(1)
    assert fresh.device_log_entry(esme.eui).joined
    read = await p.send("ECS17b")
    assert read.ok and read.summary["decrypted"]
    assert (await p.send("ECS52", "chf")).ok


# ---------------------------------------------------------------------------------------------
# `gbhub send CCS03 ...` against `gbhub run` (processes, as a lab engineer uses them)
# ---------------------------------------------------------------------------------------------


def test_gbhub_send_ccs03(tmp_path):
    from test_cli_run import Running, gbhub, send
    from gbhub.tools.rig import DEFAULT_INSTALL_CODES

    data = tmp_path / "site"
    run = Running("--data", str(data))
    try:
        devices = json.loads((data / "premises.json").read_text())["devices"]
        backup_text = f"{devices['esme']}:{DEFAULT_INSTALL_CODES['esme']},{eui_hex(NEWCOMER)}:{IC2.hex()}"
        out = send(data, "CCS03", f"devices={backup_text}", f"extended_pan_id={eui_hex(NEW_PAN)}", "join_timeout=5")
        assert out["ok"] and out["response"]["mac"] == "valid"
        assert out["summary"]["entries"] == ["restored", "restored"]
        listed = [d["eui"] for d in send(data, "CCS06")["summary"]["devices"]]
        assert listed == sorted([devices["esme"], eui_hex(NEWCOMER)])  # the IHD is gone
        assert send(data, "ECS17b")["ok"]
        bad = gbhub("send", "CCS03", "devices=0247424840000010", "--data", str(data))
        assert bad.returncode == 2 and "not EUI:INSTALL_CODE" in bad.stderr and "Traceback" not in bad.stderr
    finally:
        assert run.stop() == 0
