"""The BLE HAN link (han/ble.py): fragmentation and reassembly (property tests), and real GATT over
bumble's virtual controllers: discovery, MTU exchange, writes and notifications carrying the same
HAN exchanges as the virtual air (an IHD, a PPMID and a GSME beyond the link)."""
from __future__ import annotations

import asyncio
import importlib.util
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gbhub.han.ble import (
    ATT_MAX_MTU,
    ATT_MIN_MTU,
    DROP_REASONS,
    HEADER_SIZE,
    MAX_MESSAGE,
    BleSettings,
    MessageTooLong,
    Reassembler,
    fragment,
)

# the GATT tests need bumble (extra `ble`, installed by ./dev.sh and CI); the framing tests do not
needs_bumble = pytest.mark.skipif(importlib.util.find_spec("bumble") is None, reason="needs the `ble` extra (bumble)")

METER = bytes.fromhex("02474248400000A0")
DISPLAY = bytes.fromhex("02474248400000A6")
SUMMATION = 123_456_789


# -- framing (sans-IO) ----------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.integers(ATT_MIN_MTU, ATT_MAX_MTU), st.binary(max_size=MAX_MESSAGE), st.integers(0, 1000))
def test_fragments_fit_the_mtu_and_reassemble(mtu, message, seq):
    pieces = fragment(message, seq, mtu)
    assert all(len(p) <= mtu - 3 for p in pieces)
    r = Reassembler()
    out = [r.feed(p, 0.0) for p in pieces]
    assert out[-1] == message and all(o is None for o in out[:-1])
    assert r.pending == 0 and sum(r.dropped.values()) == 0
    assert [r.feed(p, 0.0) for p in pieces][-1] is None and r.dropped["duplicate"] == 1  # the same seq again


def test_largest_message_at_every_edge_mtu():
    message = bytes(range(256)) * (MAX_MESSAGE // 256)
    for mtu in (ATT_MIN_MTU, 24, 185, 247, ATT_MAX_MTU):
        pieces = fragment(message, 7, mtu)
        assert len(pieces) == -(-MAX_MESSAGE // (mtu - 3 - HEADER_SIZE))
        r = Reassembler()
        assert [r.feed(p, 0.0) for p in pieces][-1] == message
    with pytest.raises(MessageTooLong):
        fragment(message + b"!", 1, 247)
    with pytest.raises(ValueError):
        fragment(b"x", 1, ATT_MIN_MTU - 1)


@settings(deadline=None)
@given(st.lists(st.binary(max_size=600), max_size=60), st.integers(8, 512))
def test_garbage_never_raises_nor_grows(garbage, max_message):
    r = Reassembler(max_message=max_message)
    for i, data in enumerate(garbage):
        got = r.feed(data, float(i))
        assert got is None or len(got) <= max_message
        assert r.pending <= max_message
    assert set(r.dropped) == set(DROP_REASONS)


@settings(deadline=None)
@given(st.binary(min_size=1, max_size=300), st.integers(ATT_MIN_MTU, 60), st.data())
def test_a_lost_duplicated_or_foreign_fragment_never_yields_a_wrong_message(message, mtu, data):
    pieces = fragment(message, 1, mtu)
    kind = data.draw(st.sampled_from(["drop", "duplicate", "foreign"]))
    i = data.draw(st.integers(0, len(pieces) - 1))
    if kind == "drop":
        stream = pieces[:i] + pieces[i + 1:]
    elif kind == "duplicate":
        stream = pieces[:i + 1] + pieces[i:]
    else:
        stream = pieces[:i] + fragment(b"other" * 20, 2, mtu)[1:2] + pieces[i:]
    r = Reassembler()
    got = [m for m in (r.feed(p, 0.0) for p in stream) if m is not None]
    assert all(m == message for m in got)
    # the reassembler is ready for the next message at once (a partial one left over is dropped)
    assert [r.feed(p, 1.0) for p in fragment(b"next", 3, mtu)][-1] == b"next"
    assert len(got) <= 1
    if len(pieces) > 1 and not (kind == "foreign" and i == 0):
        assert sum(r.dropped.values()) > 0
        # a repeated first fragment restarts the message, a repeated last one comes after it;
        # any other fault loses the message
        assert not got or (kind == "duplicate" and i in (0, len(pieces) - 1))
    elif kind == "duplicate":
        assert got == [message] and r.dropped["duplicate"] == 1


def test_a_partial_message_times_out():
    pieces = fragment(bytes(100), 1, ATT_MIN_MTU)
    r = Reassembler(timeout=5.0)
    r.feed(pieces[0], 0.0)
    assert r.pending > 0
    r.expire(6.0)
    assert r.pending == 0 and r.dropped["timeout"] == 1
    assert r.feed(pieces[1], 6.0) is None and r.dropped["no_first"] == 1


# -- rig keys -----------------------------------------------------------------------------------------


def test_rig_keys(tmp_path):
    from gbhub.tools.rig import RigError, load_rig

    def rig(ble: str):
        path = tmp_path / "rig.toml"
        path.write_text(f"[han.ble]\n{ble}\n")
        return load_rig(path)

    r = rig('remote = ["ihd", "ppmid"]\nmtu = 185')
    assert r.han_ble == BleSettings(remote=("ihd", "ppmid"), mtu=185)
    for bad, says in (('remote = ["chf"]', "hub's own chf"), ('remote = ["nobody"]', "no device 'nobody'"),
                      ("remote = []", "remote"), ('remote = ["ihd"]\nmtu = 600', "mtu"),
                      ('remote = ["ihd"]\nclient = "web"', "client"), ('remote = ["ihd"]\ncolour = 1', "colour")):
        with pytest.raises(RigError, match=says):
            rig(bad)


_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-10, 70000), st.floats(allow_nan=True), st.text(max_size=8),
                    st.lists(st.text(max_size=6), max_size=3))


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.sampled_from([*BleSettings.__dataclass_fields__, "colour"]), _VALUES, max_size=6)
       .map(lambda t: {"remote": ["ihd"], **t}))
def test_any_ble_table_is_settings_or_one_clear_error(table):
    try:
        settings = BleSettings.from_table(table)
    except ValueError as exc:
        message = str(exc)  # one line that names the key at fault
        assert "\n" not in message and any(message.startswith(k) or repr(k) in message
                                            for k in (*BleSettings.__dataclass_fields__, "colour"))
        return
    assert settings.remote and ATT_MIN_MTU <= settings.mtu <= ATT_MAX_MTU and 0 < settings.timeout < float("inf")


# -- two airs over a bumble GATT link -------------------------------------------------------------


async def _linked(mtu: int, server_mtu: int | None = None, link: str = "t"):
    """A meter's air and a display's air joined by a BLE link (server on the meter's side)."""
    from gbhub.han import ClusterDispatch, VirtualAir
    from gbhub.han.air_bridge import AirBridge
    from gbhub.han.ble import BleClient, BleServer, BumbleClient
    from gbhub.han.zcl_server import ZclClient, ZclServer

    here, there = VirtualAir(), VirtualAir()
    dispatch = ClusterDispatch()
    meter_port = here.attach(METER, dispatch)
    ZclServer(dispatch, clusters={0x0702: lambda: {0x0000: SUMMATION, 0x0206: b"\x5A" * 200}}, port=meter_port)
    server = BleServer(f"virtual:{link}", mtu=server_mtu or mtu)
    client = BleClient(BumbleClient("F0:F0:F0:F0:F0:01", f"virtual:{link}", mtu=mtu), reconnect=0.05)
    bridges = [AirBridge(here, server, [DISPLAY]), AirBridge(there, client, [METER])]
    for b in bridges:
        await b.start()
    cd = ClusterDispatch()
    zcl = ZclClient(there.attach(DISPLAY, cd), cd, timeout=2.0)
    return bridges, server, client, zcl


@needs_bumble
@pytest.mark.parametrize("mtu,server_mtu", [(23, 23), (247, 100), (517, 517)])
async def test_zcl_reads_over_gatt_at_the_negotiated_mtu(mtu, server_mtu):
    bridges, server, client, zcl = await _linked(mtu, server_mtu)
    try:
        assert server.up and client.up and server.mtu == client.mtu == min(mtu, server_mtu)
        for _ in range(20):
            assert await zcl.read_attributes(METER, 0x0702, [0x0000, 0x0206]) == {0x0000: SUMMATION, 0x0206: b"\x5A" * 200}
        # every write and notification fitted the MTU: below it the response (> 200 bytes) took several
        assert server.counters["fragments_out"] >= server.counters["sent"] >= 20
        if server.mtu < 200:
            assert server.counters["fragments_out"] > server.counters["sent"]
        assert server.reassembler.pending == 0 and sum(server.reassembler.dropped.values()) == 0
    finally:
        for b in reversed(bridges):
            await b.stop()


@needs_bumble
async def test_link_down_is_link_down_and_the_client_reconnects():
    from gbhub.han import ApsFrame, LinkDown

    bridges, server, client, zcl = await _linked(185)
    try:
        assert await zcl.read_attributes(METER, 0x0702, [0x0000]) == {0x0000: SUMMATION}
        await client.client._peer.connection.disconnect()  # the radio link drops (as out of range)
        for _ in range(1000):
            if not server.up and not client.up:
                break
            await asyncio.sleep(0.01)
        assert not server.up and not client.up
        meter_side = bridges[0].air
        with pytest.raises(LinkDown):  # a local sender learns at once, as on the virtual air
            meter_side.inject(ApsFrame(METER, DISPLAY, 1, 1, 0x0702, b"\x18\x01\x0b\x00\x00"))
        for _ in range(1000):
            if server.up and client.up:
                break
            await asyncio.sleep(0.01)
        assert server.up and client.up and client.connects == 2
        assert await zcl.read_attributes(METER, 0x0702, [0x0000]) == {0x0000: SUMMATION}
    finally:
        for b in reversed(bridges):
            await b.stop()


@needs_bumble
async def test_garbage_and_spoofed_frames_from_a_central_change_nothing():
    """A rogue central writes raw bytes: every bad fragment is dropped and counted, memory stays
    bounded, and a well-formed frame claiming a local device's address is refused."""
    import random

    from gbhub.han.ble import encode_aps
    from gbhub.han import ApsFrame

    bridges, server, client, zcl = await _linked(100)
    try:
        rng = random.Random(5)
        got_before = server.counters["received"]
        for _ in range(300):
            await client.client.write(bytes(rng.randrange(256) for _ in range(rng.randrange(0, 97))))
            assert server.reassembler.pending <= server.max_message
        assert sum(server.reassembler.dropped.values()) > 0
        # a well-formed frame whose source is a device on the premises' side (spoofing the meter)
        for piece in fragment(encode_aps(ApsFrame(METER, METER, 1, 1, 0x0702, b"\x18\x01\x0b\x00\x00")), 9, 100):
            await client.client.write(piece)
        for piece in fragment(b"\x00" * 10, 10, 100):  # too short to be an APS frame
            await client.client.write(piece)
        await asyncio.sleep(0.05)
        assert bridges[0].counters.refused >= 1 and server.counters["bad"] >= 1
        assert server.counters["received"] - got_before <= 300
        # the link still works
        for piece in fragment(b"", 11, 100):
            await client.client.write(piece)
        assert await zcl.read_attributes(METER, 0x0702, [0x0000]) == {0x0000: SUMMATION}
    finally:
        for b in reversed(bridges):
            await b.stop()


@needs_bumble
async def test_one_central_at_a_time_and_oversized_frames_stay_home():
    """While a central is connected the server does not advertise: a second central finds nobody
    (and one that got through would be disconnected and counted). A frame longer than the link
    carries is counted and dropped by the bridge; the link goes on."""
    from gbhub.han import ApsFrame, HanError
    from gbhub.han.ble import BleClient, BumbleClient

    bridges, server, client, zcl = await _linked(185, link="second")
    other = BleClient(BumbleClient("F0:F0:F0:F0:F0:01", "virtual:second", "F0:F0:F0:F0:F0:03"), connect_timeout=0.5)
    try:
        with pytest.raises(HanError, match="no connection within"):
            await other.start()
        assert not other.up and server.connection is not None
        far = bridges[1].air
        assert far.inject(ApsFrame(DISPLAY, METER, 1, 1, 0x0702, bytes(MAX_MESSAGE)))  # accepted by the proxy ...
        for _ in range(500):
            if bridges[1].counters.lost:
                break
            await asyncio.sleep(0.01)
        assert bridges[1].counters.lost == 1 and client.counters["too_long"] == 1  # ... and refused by the link
        assert await zcl.read_attributes(METER, 0x0702, [0x0000]) == {0x0000: SUMMATION}
    finally:
        await other.stop()
        for b in reversed(bridges):
            await b.stop()


# -- a premises with devices beyond the BLE link ----------------------------------------------------

REMOTE = ("ihd", "ppmid", "gsme")


async def _exchanges(premises, pause: float = 0.0) -> dict:
    """The same HAN exchanges, whatever carries them: the IHD's display after joining and polling
    the ESME, a PPMID top-up (ZSE ConsumerTopUp, GBCS alerts), a GSME command through the GB-HGRP
    tunnel at its wake, and a WAN read of the ESME. `pause`: real seconds between simulated steps
    while the GSME is awake, for links whose I/O the simulated clock cannot wait for."""
    from gbcs.utrn import generate_utrn

    ks, supplier = premises.identity.keystore, premises.identity.supplier
    out: dict = {}
    t0 = premises.clock.now()
    for _ in range(200):  # the IHD joins and binds by itself after commissioning
        if premises.ihd.joined:
            break
        await asyncio.sleep(pause)
        await premises.clock.advance(0.1)
    await premises.clock.run_until(t0 + 30)  # the same instant whatever the link took
    out["ihd"] = (await premises.ihd.poll_now()).to_json()
    out["ppmid"] = (await premises.ppmid.poll_now()).electricity.credit
    utrn = generate_utrn(value=1250, utrn_counter=7, supplier=supplier, device=premises.esme.eui,
                         private_key=ks.private_key(supplier, "pp-ka"), public_key=ks.public_key(premises.esme.eui, "ka"))
    out["top_up"] = await premises.ppmid.enter_utrn(utrn.encode())
    out["top_up_again"] = (await premises.ppmid.enter_utrn(utrn.encode()))["result"]
    task = asyncio.ensure_future(premises.send("GCS32", to="gsme"))  # valve close, queued for the sleepy GSME
    await premises.clock.advance(1)
    assert not task.done()
    premises.gsme.press()  # the consumer's button wakes it: it pulls the command through the tunnel
    for _ in range(100):
        await asyncio.sleep(pause)
        await premises.clock.advance(0.5)
        if task.done():
            break
    reply = await task
    out["gcs32"] = (reply.ok, reply.summary.get("supply"))
    out["gsme_supply"] = premises.gsme._supply_state()
    await premises.clock.run_until(t0 + 120)
    read = await premises.send("ECS17b")
    out["ecs17b"] = (read.ok, read.summary.get("import_kwh"))
    out["alerts"] = sorted(a.code for a in premises.headend.received_alerts)
    out["joined"] = sorted(e.eui.hex() for e in premises.chf.device_log() if e.joined)
    return out


def _ble_rig(mtu: int):
    from gbhub.tools.rig import default_rig

    rig = default_rig(None)
    rig.clock = "sim"
    rig.han_ble = BleSettings(remote=REMOTE, mtu=mtu)
    return rig


@needs_bumble
@pytest.mark.parametrize("mtu", [23, 247])
async def test_devices_beyond_the_ble_link_behave_as_on_the_virtual_air(premises_factory, mtu):
    reference = await _exchanges(await premises_factory())
    p = await premises_factory(rig=_ble_rig(mtu))
    got = await _exchanges(p)
    assert got == reference
    assert got["top_up"]["accepted"] and got["gcs32"] == (True, "disabled")
    server_bridge, client_bridge = p.han.bridges
    server, client = server_bridge.carrier, client_bridge.carrier
    assert server.mtu == client.mtu == mtu
    # it really crossed BLE: every remote device's traffic, both ways, fragmented to the MTU
    assert server_bridge.counters.inbound > 20 and server_bridge.counters.out > 20
    assert client.counters["fragments_out"] > client.counters["sent"]
    for bridge in p.han.bridges:
        assert bridge.counters.lost == bridge.counters.overflow == bridge.counters.refused == 0
    assert sum(server.reassembler.dropped.values()) == 0 and server.counters["bad"] == 0
    for name in REMOTE:
        assert p.han.transport_for(p.specs[name]) is p.han.far
    status = p.han.link_status()  # what `gbhub status` shows as han_link
    assert status["server"]["up"] and status["client"]["mtu"] == mtu and status["server"]["bridge"]["refused"] == 0
    # `gbhub ctl han IHD down` holds on both airs, also when the BLE link comes back
    ihd = p.ihd.eui
    p.han.set_link(ihd, False)
    server_bridge._link(False)
    server_bridge._link(True)
    assert not p.air.is_up(ihd) and not p.han.far.is_up(ihd)
    p.han.set_link(ihd, True)
    assert p.air.is_up(ihd) and p.han.far.is_up(ihd)
    await p.stop()


def _free_ports(n: int) -> list[int]:
    import socket

    socks = [socket.socket() for _ in range(n)]
    for sock in socks:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in socks]
    for sock in socks:
        sock.close()
    return ports


@needs_bumble
async def test_real_hci_to_controllers_in_another_process(premises_factory):
    """The nearest thing to adapters without hardware: the premises' two BLE ends speak HCI (H4
    packets over TCP, what a UART or USB dongle gets) to two bumble controllers in another process,
    sharing one radio link there. Same results as on the virtual air."""
    import subprocess
    import sys

    ports = _free_ports(2)
    controllers = subprocess.Popen([sys.executable, "-m", "bumble.apps.controllers",
                                    *(f"tcp-server:127.0.0.1:{port}" for port in ports)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        rig = _ble_rig(185)
        rig.han_ble = BleSettings(remote=REMOTE, mtu=185, adapter=f"tcp-client:127.0.0.1:{ports[0]}",
                                  client_adapter=f"tcp-client:127.0.0.1:{ports[1]}")
        p = None
        for _ in range(100):  # until the controllers' process listens
            try:
                p = await premises_factory(rig=rig)
                break
            except Exception as exc:  # noqa: BLE001 - connection refused while it starts
                if "Connection refused" not in str(exc) and "Errno 111" not in str(exc):
                    raise
                await asyncio.sleep(0.1)
        assert p is not None, "the bumble controllers never listened"
        got = await _exchanges(p, pause=0.05)
        assert got == await _exchanges(await premises_factory(), pause=0.05)
        server = p.han.bridges[0].carrier
        assert server.bumble.transport is not None and server.mtu == 185  # a real HCI transport, not a virtual one
        assert server.counters["fragments_in"] > server.counters["received"] > 20
        await p.stop()
    finally:
        controllers.terminate()
        controllers.wait(10)


@needs_bumble
def test_gbhub_run_the_ble_example(tmp_path):
    """`gbhub run examples/ble.toml --pcap`: the IHD and the PPMID join and read the ESME across
    the BLE link; their frames are on the premises' capture like any HAN frame."""
    import subprocess
    import sys
    from pathlib import Path

    from gbcs.capture import parse_frame, read_pcap

    example = Path(__file__).parent.parent / "examples" / "ble.toml"
    pcap = tmp_path / "han.pcap"
    out = subprocess.run([sys.executable, "-P", "-m", "gbhub", "run", str(example), "--data", str(tmp_path / "d"),
                          "--pcap", str(pcap), "--for", "6"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    frames = [parse_frame(r) for _, r in read_pcap(pcap.read_bytes())[1]]
    ihd, ppmid, esme, chf = (bytes.fromhex(e) for e in ("02474248400000A6", "02474248400000A4", "02474248400000A0",
                                                         "02474248400000A2"))
    seen = {(f.src, f.dst, f.cluster) for f in frames}
    assert (ihd, esme, 0x0702) in seen and (esme, ihd, 0x0702) in seen  # Metering, both ways
    for device in (ihd, ppmid):  # both joined through the CHF (gbhub's join handshake, cluster 0xFC47)
        assert {(device, chf, 0xFC47), (chf, device, 0xFC47)} <= seen
    assert {(ppmid, chf, 0x0704), (chf, ppmid, 0x0704)} <= seen  # and the PPMID's GB-HGRP tunnel
    log = (tmp_path / "d" / "gbhub.log").read_text()
    assert "BLE link (server) up, ATT MTU 247" in log and "BLE link up: 2 device(s) beyond it" in log


@needs_bumble
def test_an_adapter_that_cannot_open_fails_in_one_line(tmp_path):
    import subprocess
    import sys

    rig = tmp_path / "rig.toml"
    rig.write_text('[han.ble]\nremote = ["ihd"]\nadapter = "serial:/dev/ttyGBHUBNONE"\n')
    out = subprocess.run([sys.executable, "-P", "-m", "gbhub", "run", str(rig), "--data", str(tmp_path / "d"), "--for", "2"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith("gbhub run: [han.ble]: cannot start the BLE link: BLE adapter")


@pytest.mark.skipif(importlib.util.find_spec("bleak") is None or os.path.exists("/run/dbus/system_bus_socket"),
                    reason="needs bleak, and a machine without BlueZ's D-Bus (with it this would really connect)")
def test_the_bleak_client_without_bluez_fails_in_one_line(tmp_path):
    import subprocess
    import sys

    rig = tmp_path / "rig.toml"
    rig.write_text('[han.ble]\nremote = ["ihd"]\nclient = "bleak"\nclient_adapter = "hci1"\n')
    out = subprocess.run([sys.executable, "-P", "-m", "gbhub", "run", str(rig), "--data", str(tmp_path / "d"), "--for", "2"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("gbhub run: [han.ble]: cannot start the BLE link: bleak on hci1: ") and "BlueZ" in last
