"""The ZigBee transport (han/zigbee.py) through the virtual zigpy radio (han/zigbee_virtual.py):
the CHF as coordinator and trust centre, Smart Energy endpoints served below zigpy's dispatch,
gbhub's IHD joining as a ZigBee end device with its install code."""
from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("zigpy")

from gbhub.tools.premises import Premises  # noqa: E402
from gbhub.tools.rig import default_rig  # noqa: E402


def zigbee_rig(**han):
    rig = default_rig(None)
    rig.clock = "sim"
    rig.han = "zigbee"
    rig.han_radio = "virtual"
    for k, v in han.items():
        setattr(rig, f"han_{k}", v)
    return rig


@pytest.fixture
async def zpremises(gbhub_identity):
    made = []

    async def make(rig=None, **kw):
        p = Premises(rig or zigbee_rig(), tcp=False, sim=True, identity=gbhub_identity)
        await p.start(**kw)
        made.append(p)
        return p

    yield make
    for p in made:
        if p.started:
            await p.stop()


async def test_ihd_joins_over_zigbee_and_reads_the_esme(zpremises):
    p = await zpremises()
    link = p.han
    assert link.transport.started
    entry = p.chf.device_log_entry(p.ihd.eui)
    assert entry is not None and entry.joined
    # the IHD is a zigpy device of the coordinator, known by its IEEE address (GBCS order reversed)
    import zigpy.types as zt
    from gbhub.han.aps import ieee_from_eui

    assert zt.EUI64(ieee_from_eui(p.ihd.eui)) in link.transport.app.devices
    display = await p.ihd.poll_now()
    assert display.status == "ok", display
    assert link.transport.counters.received > 0
    # CBKE with the trust centre completed as part of the join: both ends hold the same link key
    node = p.ihd.han
    assert node.link_key_established is not None and len(node.link_key_established) == 16
    assert link.transport.link_keys[p.ihd.eui] == node.link_key_established


async def test_the_ihd_receives_metering_reports_over_zigbee(zpremises):
    from gbhub.han.aps import METERING_CLUSTER

    p = await zpremises()
    await p.ihd.poll_now()
    reports = []
    p.ihd.zcl.on_report = reports.append
    await p.ihd.zcl.configure_reporting(p.esme.eui, METERING_CLUSTER, 0x0000, min_interval=0, max_interval=60,
                                        reportable_change=0)
    for _ in range(3):
        await p.clock.advance(61)
    assert reports and reports[-1].src == p.esme.eui and 0x0000 in reports[-1].values
    assert reports[-1].cluster == METERING_CLUSTER


async def test_a_gsme_s_tunnel_to_the_chf_works_over_zigbee(zpremises):
    """A sleepy GSME-type end device joins (radio, CBKE, handshake), opens its GB-HGRP tunnel to
    the CHF through the coordinator's Tunneling endpoint, and pulls its messages."""
    from gbcs.catalogue import DeviceType
    from gbhub.han.aps import TUNNELING_CLUSTER
    from gbhub.han.join import join
    from gbhub.han.transport import ClusterDispatch
    from gbhub.han.tunnel import TunnelClient
    from gbhub.han.zigbee_virtual import ZigbeeNode

    p = await zpremises()
    # (a stand-in beside the premises' own GSME, which joined over zigbee during commissioning)
    assert p.chf.device_log_entry(p.gsme.eui).joined
    gsme, code = bytes.fromhex("02474248400000B1"), bytes(range(32, 48))
    await p.chf.add_device(gsme, code, join_window=600)
    node = ZigbeeNode(p.han.network, install_code=code, clock=p.clock, device_type=DeviceType.GSME,
                      cbke=p.han.ca.issue(gsme))
    dispatch = ClusterDispatch()
    port = node.attach(gsme, dispatch)
    await join(port, p.chf.eui, code, dispatch=dispatch, device_type=DeviceType.GSME, clock=p.clock)
    entry = p.chf.device_log_entry(gsme)
    assert entry.joined and entry.device_type == DeviceType.GSME and gsme in p.han.transport.link_keys
    client = TunnelClient(port, p.chf.eui, clock=p.clock, sleepy=True)
    dispatch.add(TUNNELING_CLUSTER, client.handle)
    assert await client.open() is not None
    assert await client.poll() == 0  # nothing queued for it yet: an answered GET


async def test_endpoints_are_discovered_by_match_desc(zpremises):
    from gbhub.han.aps import (BASIC_CLUSTER, KEY_ESTABLISHMENT_CLUSTER, MESSAGING_CLUSTER, METERING_CLUSTER,
                               OTA_UPGRADE_CLUSTER, TIME_CLUSTER)
    from gbhub.han.zigbee_virtual import ZigbeeNode

    p = await zpremises()
    transport = p.han.transport
    node = p.ihd.han
    assert isinstance(node, ZigbeeNode)
    esme_ep, chf_ep = transport.endpoint_of(p.esme.eui), transport.endpoint_of(p.chf.eui)
    mirror_ep = transport.endpoint_of(p.chf.eui, 2)
    assert len({esme_ep, chf_ep, mirror_ep}) == 3
    # the ESME; the CHF (the GSME pushes to the GPF there) and the GPF's gas mirror that IHDs read
    assert set(await node.match(METERING_CLUSTER)) == {esme_ep, chf_ep, mirror_ep}
    assert await node.match(TIME_CLUSTER) == (chf_ep,)
    assert set(await node.match(BASIC_CLUSTER)) == {esme_ep, chf_ep}
    assert await node.match(KEY_ESTABLISHMENT_CLUSTER) == (chf_ep,)  # the trust centre only
    assert await node.match(OTA_UPGRADE_CLUSTER) == (chf_ep,)  # the CHF serves firmware images (README "Firmware")
    assert await node.match(MESSAGING_CLUSTER) == (esme_ep,)
    table = await node.endpoint_table(refresh=True)
    assert table[esme_ep] == p.esme.eui and table[chf_ep] == p.chf.eui and table[0] == p.chf.eui
    assert table[mirror_ep] == p.chf.eui


async def test_the_gas_mirror_endpoint_is_advertised_and_serves_the_ihd_and_ppmid(zpremises):
    """The GPF's gas mirror (the CHF's address, endpoint 2) is a Smart Energy endpoint of the
    coordinator of its own: in the radio's endpoint list, Active_EP, Simple_Desc (a Metering
    Device with Metering, Price and Prepayment servers) and Match_Desc; ZCL to it reaches the mirror."""
    from gbhub.han.aps import METERING_CLUSTER, PREPAYMENT_CLUSTER, PRICE_CLUSTER, SMART_ENERGY_PROFILE
    from gbhub.han.zigbee import METERING_DEVICE

    p = await zpremises()
    transport, node = p.han.transport, p.ihd.han
    mirror_ep = transport.endpoint_of(p.chf.eui, 2)
    registered = transport.app.endpoints[mirror_ep]  # what the radio firmware was given at start
    assert (registered.profile, registered.device_type) == (SMART_ENERGY_PROFILE, METERING_DEVICE)
    assert set(registered.input_clusters) == {METERING_CLUSTER, PRICE_CLUSTER, PREPAYMENT_CLUSTER}
    assert mirror_ep in await node.active_endpoints()
    d = await node.simple_descriptor(mirror_ep)
    assert d.endpoint == mirror_ep and d.device_id == METERING_DEVICE and d.profile == SMART_ENERGY_PROFILE
    assert set(d.in_clusters) == {METERING_CLUSTER, PRICE_CLUSTER, PREPAYMENT_CLUSTER}
    assert await node.match(PREPAYMENT_CLUSTER) == tuple(sorted((transport.endpoint_of(p.esme.eui), mirror_ep)))
    # the IHD and the PPMID read gas from it over the radio, after the GSME's push
    await p.clock.advance(1805)
    shown = (await p.ihd.poll_now()).gas
    assert shown.error is None and shown.total_m3 == p.gpf.mirror(p.gsme.eui).get("registers")["volume_l"] / 1000
    assert shown.credit is not None and shown.today_kwh is not None
    assert (await p.ppmid.poll_now()).gas.credit == shown.credit
    assert p.gpf.mirror_server.requests >= 4


async def test_a_device_not_in_the_device_log_cannot_join(zpremises):
    from gbhub.han.aps import ApsFrame, METERING_CLUSTER
    from gbhub.han.zigbee_virtual import NotOnNetwork, ZigbeeNode

    p = await zpremises()
    stranger = bytes.fromhex("00DB1234567890FF")
    node = ZigbeeNode(p.han.network, install_code=bytes(range(16)), clock=p.clock)
    port = node.attach(stranger, lambda frame: None)
    with pytest.raises(NotOnNetwork):
        await port.send(ApsFrame(stranger, p.esme.eui, 1, 1, METERING_CLUSTER, b"\x00\x01\x00\x00\x00"))
    radio = p.han.transport.app
    from gbhub.han.aps import ieee_from_eui

    assert ieee_from_eui(stranger) in radio.refused
    assert p.han.network.refusals == 1


async def test_the_well_known_key_never_joins(zpremises):
    from gbhub.han.zigbee_virtual import DEFAULT_TC_LINK_KEY, NotOnNetwork, ZigbeeNode

    p = await zpremises()
    node = ZigbeeNode(p.han.network, link_key=DEFAULT_TC_LINK_KEY, clock=p.clock)
    node.attach(bytes.fromhex("00DB1234567890FE"), lambda frame: None)
    with pytest.raises(NotOnNetwork):
        await node.ensure_joined()


async def test_a_device_the_radio_let_in_but_the_log_refuses_is_removed_and_logged(zpremises):
    import asyncio

    import zigpy.types as zt
    from gbhub.han.aps import ieee_from_eui
    from gbhub.han.zigbee_virtual import ZigbeeNode

    p = await zpremises()
    stranger = bytes.fromhex("00DB1234567890FD")
    key = bytes(range(16))
    radio = p.han.transport.app
    await radio.permit_with_link_key(zt.EUI64(ieee_from_eui(stranger)), zt.KeyData(key), 60)  # a radio that lets it in
    node = ZigbeeNode(p.han.network, link_key=key, clock=p.clock)
    node.attach(stranger, lambda frame: None)
    await node.ensure_joined()
    for _ in range(200):  # zigpy pops it once its leave request has been tried (real time)
        if zt.EUI64(ieee_from_eui(stranger)) not in radio.devices:
            break
        await asyncio.sleep(0.01)
    assert p.han.transport.counters.refused == 1
    assert zt.EUI64(ieee_from_eui(stranger)) not in radio.devices
    assert node.nwk is None or node.nwk not in p.han.network.nodes
    refused = [e for e in p.chf.security_log() if e.get("code") == "join_refused"]
    assert refused and refused[-1]["eui"] == stranger.hex().upper()


@pytest.mark.parametrize("case", ["other CA", "certificate of another device"])
async def test_cbke_with_a_bad_certificate_is_refused_and_logged(zpremises, case):
    from gbcs.cbke import TestCa
    from gbhub.han.aps import ApsFrame, METERING_CLUSTER
    from gbhub.han.zigbee_virtual import NotOnNetwork, ZigbeeNode

    p = await zpremises()
    device = bytes.fromhex("00DB1234567890FC")
    code = bytes(range(16))
    await p.chf.add_device(device, code, join_window=600)
    ca = TestCa() if case == "other CA" else p.han.ca
    identity = ca.issue(device if case == "other CA" else p.ihd.eui)
    node = ZigbeeNode(p.han.network, install_code=code, clock=p.clock, cbke=identity)
    port = node.attach(device, lambda frame: None)
    with pytest.raises(NotOnNetwork, match="key establishment"):
        await port.send(ApsFrame(device, p.esme.eui, 1, 1, METERING_CLUSTER, b"\x00\x01\x00\x00\x00"))
    assert device not in p.han.transport.link_keys
    refused = [e for e in p.chf.security_log() if e.get("code") == "join_refused" and e.get("eui") == device.hex().upper()]
    assert refused and refused[-1]["status"] == "CBKE_FAILED"
    assert ("UNKNOWN_ISSUER" if case == "other CA" else "INVALID_CERTIFICATE") in refused[-1]["reason"]


async def test_a_physical_device_s_radio_join_is_recorded_in_the_chf_device_log(zpremises):
    """A device that only joins the radio (no gbhub handshake, like a physical IHD): with
    proxy_joins the trust centre runs the handshake for it with the admitted key."""
    import asyncio

    from gbhub.han.zigbee_virtual import ZigbeeNode

    p = await zpremises()
    p.han.transport.proxy_joins = True
    device, code = bytes.fromhex("00DB1234567890FB"), bytes(range(16, 32))
    await p.chf.add_device(device, code, join_window=600)
    node = ZigbeeNode(p.han.network, install_code=code, clock=p.clock)
    node.attach(device, lambda frame: None)
    await node.ensure_joined()
    for _ in range(100):
        entry = p.chf.device_log_entry(device)
        if entry.joined and p.han.transport.proxied:
            break
        await asyncio.sleep(0)
    assert entry.joined and device in p.han.transport.proxied
    assert device not in p.han.transport._local  # the stand-in is gone


async def test_garbage_from_the_air_changes_nothing(zpremises):
    """Random packets from a joined device and from unknown addresses, on every cluster the
    transport takes below zigpy's dispatch: none raises, and the HAN still works afterwards."""
    import random

    import zigpy.types as zt

    from gbhub.han.aps import KEY_ESTABLISHMENT_CLUSTER, METERING_CLUSTER, TUNNELING_CLUSTER

    p = await zpremises()
    radio, node = p.han.transport.app, p.ihd.han
    log_before = [(e.eui, e.joined) for e in p.chf.device_log()]
    rng = random.Random(7)
    clusters = [zdo.MATCH_DESC_REQ, zdo.SIMPLE_DESC_REQ, zdo.ACTIVE_EP_REQ, zdo.ENDPOINT_TABLE_CLUSTER, 0xFC47,
                KEY_ESTABLISHMENT_CLUSTER, METERING_CLUSTER, TUNNELING_CLUSTER, 0x0000, 0x1234]
    for _ in range(400):
        cluster = rng.choice(clusters)
        profile = 0x0000 if cluster in clusters[:5] else rng.choice([0x0109, 0x0104, 0x0000])
        packet = zt.ZigbeePacket(
            src=zt.AddrModeAddress(addr_mode=zt.AddrMode.NWK, address=zt.NWK(rng.choice([node.nwk, 0x4242]))),
            src_ep=rng.randrange(256), dst=zt.AddrModeAddress(addr_mode=zt.AddrMode.NWK, address=zt.NWK(0)),
            dst_ep=rng.choice([0, 1, 2, 3, 200]), profile_id=profile, cluster_id=cluster,
            data=zt.SerializableBytes(bytes(rng.randrange(256) for _ in range(rng.randrange(40)))))
        radio.packet_received(packet)
    for _ in range(20):
        await asyncio.sleep(0)
    assert [(e.eui, e.joined) for e in p.chf.device_log()] == log_before
    assert (await p.ihd.poll_now()).status == "ok"


# -- ZDP frames (han/zdo.py): outside input, property-tested ------------------------------------

from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from gbcs.codec import DecodeError  # noqa: E402
from gbhub.han import zdo  # noqa: E402

_clusters = st.lists(st.integers(0, 0xFFFF), max_size=6).map(tuple)


@given(st.binary(max_size=40))
def test_zdp_decoders_raise_only_decode_error(data):
    for decode in (zdo.decode_match_desc_request, zdo.decode_match_desc_response, zdo.decode_endpoint_table,
                   zdo.decode_endpoint_table_full, zdo.decode_active_ep_response,
                   zdo.decode_simple_desc_response, lambda d: zdo.decode_addr_request(d, "Simple_Desc_req"),
                   lambda d: zdo.decode_addr_request(d, "Active_EP_req")):
        try:
            decode(data)
        except DecodeError:
            pass


@given(st.integers(0, 255), st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), _clusters, _clusters)
def test_match_desc_round_trips(tsn, nwk, profile, ins, outs):
    request = zdo.MatchDescRequest(tsn, nwk, profile, ins, outs)
    assert zdo.decode_match_desc_request(request.encode()) == request


@given(st.integers(1, 240), st.integers(0, 0xFFFF), _clusters, _clusters)
def test_simple_descriptor_round_trips(ep, device_id, ins, outs):
    d = zdo.SimpleDescriptor(ep, 0x0109, device_id, 0, ins, outs)
    assert zdo.decode_simple_desc_response(zdo.simple_desc_response(7, 0x1234, d)) == (7, 0, 0x1234, d)


@given(st.dictionaries(st.integers(0, 255), st.binary(min_size=8, max_size=8), max_size=5))
def test_endpoint_table_round_trips(table):
    assert zdo.decode_endpoint_table(zdo.endpoint_table_response(9, table)) == (2, 9, table)
    own = {ep: (ep * 7) % 240 + 1 for ep in list(table)[::2]}
    assert zdo.decode_endpoint_table_full(zdo.endpoint_table_response(9, table, own)) == (
        3 if own else 2, 9, table, {ep: own.get(ep, 1) for ep in table} if own else {})


def test_rig_keys_for_the_zigbee_transport(tmp_path):
    from gbhub.tools.rig import RigError, parse_rig

    rig = parse_rig({"han": {"transport": "zigbee", "radio": "znp", "port": "/dev/ttyUSB0", "baudrate": 115200,
                             "channel": 20, "pcap": "han.pcap"}}, tmp_path)
    assert (rig.han, rig.han_radio, rig.han_port, rig.han_baudrate, rig.han_channel) == ("zigbee", "znp", "/dev/ttyUSB0", 115200, 20)
    assert rig.han_pcap == tmp_path / "han.pcap"
    assert parse_rig({"han": {"transport": "zigbee"}}, tmp_path).han_radio == "virtual"
    assert parse_rig({"han": {"transport": "zigbee", "port": "/dev/ttyACM0"}}, tmp_path).han_radio == "auto"
    for bad, message in (({"transport": "zigbee", "radio": "xbee"}, "radio"), ({"transport": "zigbee", "radio": "ezsp"}, "port"),
                         ({"transport": "zigbee", "channel": 27}, "channel"), ({"radio": "znp"}, "only with transport"),
                         ({"transport": "ble"}, "not available"), ({"transport": "serial"}, "give port")):
        with pytest.raises(RigError, match=message):
            parse_rig({"han": bad}, tmp_path)


def test_gbhub_radios_without_a_radio_says_so_in_one_line(monkeypatch, capsys):
    from gbhub.tools import radio

    monkeypatch.setattr(radio, "serial_ports", lambda: [])
    assert radio.cmd_radios(type("Args", (), {"probe": False})()) == 0
    assert capsys.readouterr().out == "no serial ports found: no ZigBee radio is attached\n"


def test_gbhub_radios_names_known_usb_radios(monkeypatch, capsys):
    from gbhub.tools import radio

    monkeypatch.setattr(radio, "serial_ports", lambda: [
        {"port": "/dev/ttyUSB0", "vid": 0x1A86, "pid": 0x55D4, "description": "Sonoff"},
        {"port": "/dev/ttyACM0", "vid": 0x1234, "pid": 0x5678, "description": "a modem"},
        {"port": "/dev/serial0", "vid": None, "pid": None, "description": "UART (Raspberry Pi)"}])
    assert radio.cmd_radios(type("Args", (), {"probe": False})()) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("/dev/ttyUSB0") and "'ezsp'" in lines[0]
    assert "USB 1234:5678" in lines[1] and "->" not in lines[1]
    assert lines[2].startswith("/dev/serial0") and "'znp'" in lines[2]


def test_gbhub_radios_process_exits_0():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-P", "-m", "gbhub", "radios"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() and not out.stderr


async def test_radio_auto_without_a_radio_fails_in_one_line(gbhub_identity, tmp_path):
    from gbhub.tools.inputs import Failure

    rig = zigbee_rig(radio="auto", port=str(tmp_path / "ttyNONE"))
    with pytest.raises(Failure, match="no ZigBee radio found"):
        Premises(rig, tcp=False, sim=True, identity=gbhub_identity)


def test_rig_keys_for_a_lab_cbke_certificate(tmp_path):
    from gbcs.cbke import SUITE_1, SUITE_2
    from gbhub.tools.rig import RigError, parse_rig

    suite1 = {"certificate": "02020882B1D7DF05538F37CDD09A4F6B15368998642B002208000000000154455354534543410109108301234567890A",
              "private_key": "0392BA4AFC2453A49EEBE9BCA8DE73210F02479A4A", "ca_public": "0200FDE8A7F3D1084224962A4E7C54E69AC3F04DA6B8"}
    rig = parse_rig({"han": {"transport": "zigbee", **suite1}}, tmp_path)
    assert rig.han_cbke_identity.suite == SUITE_1 and rig.han_cbke_identity.issuer == b"TESTSECA"
    suite2 = {"certificate": "002622A505E8938F270D081112131415161718005292A35BFFFFFFFF0A0B0C0D0E0F1011"
                             "880303B4E9DC543A64333C982308022B54E67E2F15F532551B0A11E2E2C1C1D3097A4324E7ED",
              "private_key": "0151CD0DBCB80474BF7AC9FEEBE39C7A32A63518938FCA9754AAE132BC9C73BE94A7E1BE",
              "ca_public": "0207A445022D9F39F49BDC38380026A27A9E0A1799313AB28C5C1A1C6B605154DB1DFF6752"}
    assert parse_rig({"han": {"transport": "zigbee", **suite2}}, tmp_path).han_cbke_identity.suite == SUITE_2
    both = {k: [suite2[k], suite1[k]] for k in suite1}  # one certificate per suite: the hub offers both
    assert [i.suite for i in parse_rig({"han": {"transport": "zigbee", **both}}, tmp_path).han_cbke_identity] == [SUITE_2, SUITE_1]
    for bad, message in (({"certificate": suite1["certificate"]}, "all three"),
                         ({**both, "private_key": suite1["private_key"]}, "lists of the same length"),
                         ({k: [suite1[k], suite1[k]] for k in suite1}, "one certificate per crypto suite"),
                         ({**suite1, "private_key": "00"}, "private_key: expected 21 bytes"),
                         ({**suite1, "certificate": "zz"}, "not hex"),
                         ({**suite1, "certificate": "00" * 50}, "74 bytes")):
        with pytest.raises(RigError, match=message):
            parse_rig({"han": {"transport": "zigbee", **bad}}, tmp_path)


def test_gbhub_run_the_zigbee_example(tmp_path):
    """`gbhub run examples/zigbee.toml --pcap`: the IHD joins over the virtual zigpy radio, finds
    the coordinator's endpoints by Match_Desc and completes CBKE; all of it is in the capture."""
    import subprocess
    import sys
    from pathlib import Path

    from gbcs.capture import parse_frame, read_pcap

    example = Path(__file__).parent.parent / "examples" / "zigbee.toml"
    pcap = tmp_path / "han.pcap"
    out = subprocess.run([sys.executable, "-P", "-m", "gbhub", "run", str(example), "--data", str(tmp_path / "d"),
                          "--pcap", str(pcap), "--for", "6"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    frames = [parse_frame(r) for _, r in read_pcap(pcap.read_bytes())[1]]
    clusters = {(f.profile, f.cluster) for f in frames}
    assert (0x0000, 0x0006) in clusters and (0x0000, 0x8006) in clusters  # Match_Desc request and response
    ke = [f.payload[2] for f in frames if f.cluster == 0x0800]
    # the trust centre's KeyEstablishmentSuite read (global Read Attributes 00 / response 01), then
    # Initiate, Ephemeral Data, Confirm Key: request and response each
    assert ke == [0, 1, 0, 0, 1, 1, 2, 2]
    assert any(f.cluster == 0x0702 for f in frames)  # and the IHD reads the ESME's Metering
    assert "CBKE with 02474248400000A6 complete" in (tmp_path / "d" / "gbhub.log").read_text()


async def test_zigpy_features_that_reach_out_are_off(zpremises):
    import zigpy.config as zconf

    p = await zpremises()
    app = p.han.transport.app
    ota = app.config[zconf.CONF_OTA]
    assert not ota[zconf.CONF_OTA_ENABLED] and not ota[zconf.CONF_OTA_BROADCAST_ENABLED]
    assert ota[zconf.CONF_OTA_PROVIDERS] == [] and ota[zconf.CONF_OTA_EXTRA_PROVIDERS] == []
    assert not app.config[zconf.CONF_TOPO_SCAN_ENABLED] and not app.config[zconf.CONF_NWK_BACKUP_ENABLED]
    # only the Smart Energy endpoints are registered with the radio (no HA, ZLL or Green Power ones)
    assert {d.profile for d in app.endpoints.values()} == {0x0109}
    assert sorted(app.endpoints) == sorted(d.endpoint for d in p.han.transport.descriptors())


def test_a_missing_radio_fails_in_one_line(tmp_path):
    import subprocess
    import sys

    rig = tmp_path / "rig.toml"
    rig.write_text('[han]\ntransport = "zigbee"\nradio = "znp"\nport = "/dev/ttyGBHUBNONE"\n')
    out = subprocess.run([sys.executable, "-P", "-m", "gbhub", "run", str(rig), "--data", str(tmp_path / "d"), "--for", "2"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith("gbhub run: cannot start the ZigBee radio:")


async def test_a_lab_certificate_must_name_the_hub_and_fit_its_key(gbhub_identity):
    from gbcs.cbke import TestCa
    from gbhub.tools.inputs import Failure

    rig = zigbee_rig()
    chf = rig.device("chf").eui
    ca = TestCa()
    rig.han_cbke_identity = ca.issue(bytes.fromhex("0011223344556677"))
    with pytest.raises(Failure, match="issued for 0011223344556677, not the hub's EUI"):
        Premises(rig, tcp=False, sim=True, identity=gbhub_identity)
    good = ca.issue(chf)
    rig.han_cbke_identity = type(good)(good.certificate, good.private_key + 1, good.ca_public)
    with pytest.raises(Failure, match="does not fit the certificate"):
        Premises(rig, tcp=False, sim=True, identity=gbhub_identity)


async def test_a_lab_certificate_serves_the_trust_centre(zpremises):
    """A lab CA's certificate for the hub (here made by another test CA): the IHD, holding one
    from the same CA, completes CBKE with it."""
    from gbcs.cbke import TestCa

    rig = zigbee_rig()
    lab = TestCa()
    rig.han_cbke_identity = lab.issue(rig.device("chf").eui)
    p = await zpremises(rig)
    assert p.han.transport.cbke is rig.han_cbke_identity and p.han.ca is None
    # without the test CA, gbhub's own nodes run no CBKE; give the IHD a lab certificate and rejoin
    node = p.ihd.han
    node.cbke = lab.issue(p.ihd.eui)
    assert await node.key_establishment() == p.han.transport.link_keys[p.ihd.eui]


async def test_ctl_han_cuts_and_restores_links_on_the_zigbee_transport(zpremises, tmp_path):
    """`gbhub ctl han EUI down|up` on the zigbee transport: an end device on the radio (the IHD) and
    a meter served on a coordinator endpoint (the ESME), each cut and restored."""
    from gbhub.han import LinkDown
    from gbhub.han.aps import ApsFrame
    from gbhub.tools.control import ControlServer

    async def _poll(p):  # the IHD's read, with simulated time running for its time-outs
        task = asyncio.ensure_future(p.ihd.poll_now())
        while not task.done():
            await p.clock.advance(1)
        return task.result()

    p = await zpremises()
    ctl = ControlServer(tmp_path, p, asyncio.Event())
    transport = p.han.transport
    assert (await _poll(p)).status == "ok"

    assert await ctl.handle({"op": "han", "eui": "ihd", "up": False}) == {"eui": p.ihd.eui.hex().upper(), "han": "down"}
    assert not transport.is_up(p.ihd.eui)
    hello = ApsFrame(p.ihd.eui, p.esme.eui, 1, 1, 0x0702, b"\x00\x01\x00\x00\x00")
    with pytest.raises(LinkDown):  # the IHD's own radio is cut
        await p.ihd.port.send(hello)
    reply = ApsFrame(p.esme.eui, p.ihd.eui, 1, 1, 0x0702, b"\x08\x01\x01\x00\x00\x86")
    with pytest.raises(LinkDown):  # and the coordinator does not reach it
        await p.esme.han_port.send(reply)
    display = await _poll(p)
    assert display.error, display  # the display shows the lost link
    await ctl.handle({"op": "han", "eui": "ihd", "up": True})
    display = await _poll(p)
    assert display.status == "ok" and not display.error, display

    # a local device on a coordinator endpoint: frames to it from the air are not heard
    await ctl.handle({"op": "han", "eui": "esme", "up": False})
    ignored = transport.counters.ignored
    display = await _poll(p)
    assert display.error and transport.counters.ignored > ignored, display
    with pytest.raises(LinkDown):
        await p.esme.han_port.send(reply)
    await ctl.handle({"op": "han", "eui": "esme", "up": True})
    assert (await _poll(p)).status == "ok"


async def test_the_trust_centre_offers_both_suites_and_a_suite_1_device_completes_cbke(zpremises):
    """With certificates of both suites the trust centre's KeyEstablishmentSuite is 0x0003; a
    device holding only a suite 1 certificate uses suite 1, one holding both uses suite 2. The
    established key becomes the device's link key in the radio: its rejoin takes that key and no
    longer the install-code one."""
    from gbcs.catalogue import DeviceType
    from gbcs.cbke import SUITE_1, SUITE_2
    from gbhub.han.aps import ieee_from_eui
    from gbhub.han.join import join
    from gbhub.han.transport import ClusterDispatch
    from gbhub.han.zigbee_virtual import ZigbeeNode

    p = await zpremises()
    radio, transport = p.han.transport.app, p.han.transport
    # the IHD (suite 2) joined at commissioning: its CBKE key is the radio's link key for it
    assert transport.link_key_installed[p.ihd.eui] == "virtual"
    assert radio._key_table[ieee_from_eui(p.ihd.eui)] == p.ihd.han.link_key_established == p.ihd.han.link_key
    for n, held in enumerate(((SUITE_1,), (SUITE_1, SUITE_2))):
        eui, code = bytes.fromhex(f"02474248400000C{n}"), bytes(range(16 + n, 32 + n))
        await p.chf.add_device(eui, code, join_window=600)
        node = ZigbeeNode(p.han.network, install_code=code, clock=p.clock, device_type=DeviceType.TYPE_2,
                          cbke=[p.han.cas[s].issue(eui) for s in held])
        dispatch = ClusterDispatch()
        port = node.attach(eui, dispatch)
        await join(port, p.chf.eui, code, dispatch=dispatch, device_type=DeviceType.TYPE_2, clock=p.clock)
        assert p.chf.device_log_entry(eui).joined
        assert await node.key_establishment_suites(next(iter(await node.match(0x0800)))) == SUITE_1 | SUITE_2
        assert node.suite == max(held) and transport.link_keys[eui] == node.link_key_established
        for _ in range(3):
            await asyncio.sleep(0)
        assert radio._key_table[ieee_from_eui(eui)] == node.link_key_established
        # a rejoin with the install-code key is refused; with the established key it goes through
        node.leave()
        install_key = ZigbeeNode(p.han.network, install_code=code).link_key
        assert not await radio.trust_centre_join(ieee_from_eui(eui), install_key)
        assert await radio.trust_centre_join(ieee_from_eui(eui), node.link_key)


async def test_a_trust_centre_with_suite_2_only_refuses_a_suite_1_device(zpremises, gbhub_identity):
    from gbcs.catalogue import DeviceType
    from gbcs.cbke import SUITE_1, TestCa
    from gbhub.han.zigbee_virtual import NotOnNetwork, ZigbeeNode

    rig = zigbee_rig()
    ca = TestCa()
    rig.han_cbke_identity = ca.issue(rig.device("chf").eui)
    p = await zpremises(rig)
    eui, code = bytes.fromhex("02474248400000C7"), bytes(range(40, 56))
    await p.chf.add_device(eui, code, join_window=600)
    node = ZigbeeNode(p.han.network, install_code=code, clock=p.clock, device_type=DeviceType.TYPE_2,
                      cbke=TestCa(suite=SUITE_1).issue(eui))
    node.attach(eui, lambda frame: None)
    with pytest.raises(NotOnNetwork, match="UNSUPPORTED_SUITE"):
        await node.ensure_joined()
