"""The MQTT WAN bridge against a real Mosquitto broker started here (skipped only when mosquitto is
not installed and not in CI; `.ci/run` installs it)."""
from __future__ import annotations

import asyncio
import os
import socket

import pytest

from gbcs.codec import eui_hex
from gbhub.tools.mosquitto import Mosquitto, mosquitto_binary
from gbhub.wan.bridge import WanDown
from gbhub.wan.headend import HeadEnd
from gbhub.wan.mqtt import MqttClient, parse_wan, topic

if mosquitto_binary() is None:
    if os.environ.get("CI") == "true":
        raise RuntimeError("mosquitto missing in CI: .ci/run installs it (apt-get install mosquitto)")
    pytest.skip("mosquitto not installed (apt-get install mosquitto)", allow_module_level=True)


@pytest.fixture
def broker(tmp_path):
    b = Mosquitto(tmp_path / "broker").start()
    yield b
    b.stop()


def test_parse_wan():
    a = parse_wan("10.0.0.5:4059")
    assert (a.scheme, a.host, a.port, a.mqtt) == ("tcp", "10.0.0.5", 4059, False)
    assert parse_wan("tcp://h:1").port == 1
    m = parse_wan("mqtt://broker.example")
    assert (m.scheme, m.host, m.port, m.mqtt, m.tls) == ("mqtt", "broker.example", 1883, True, False)
    s = parse_wan("mqtts://hub:secret@b:8884?ca=/etc/ca.pem&insecure=1")
    assert (s.port, s.username, s.password, s.ca, s.insecure, s.tls) == (8884, "hub", "secret", "/etc/ca.pem", True, True)
    assert "secret" not in str(s)
    for bad in ("h", "ftp://h:1", "tcp://h", "mqtt://h:1/x", "mqtt://h:1?ca=x", "h:99999"):
        with pytest.raises(ValueError):
            parse_wan(bad)


async def _premises_on(broker, premises_factory, **kw):
    from gbhub.tools.rig import default_rig

    rig = default_rig(None, ihd=kw.pop("ihd", True))
    rig.clock = "sim"
    rig.wan_broker = broker.url
    return await premises_factory(rig=rig)


async def _headend(broker, p, **kw) -> HeadEnd:
    if not hasattr(p, "counters_used"):
        p.counters_used = p.headend.counters
    link = await MqttClient(parse_wan(broker.url), chf=p.chf.eui, **kw).connect()
    ident = p.identity
    return HeadEnd(link, ident.keystore, supplier=ident.supplier, acb=ident.acb, clock=p.clock, counters=p.counters_used)


async def test_round_trip_through_the_premises(broker, premises_factory):
    p = await _premises_on(broker, premises_factory)
    p.counters_used = p.headend.counters  # the new head-end goes on above the commissioning counters
    await p.headend.close()  # only the broker's head-ends from here
    p.headend = None
    he = await _headend(broker, p)
    try:
        r = await he.send_use_case("ECS17b", recipient=p.esme.eui, timeout=10)
        assert r.ok and r.reply.valid
        r = await he.send_use_case("ECS42", recipient=p.esme.eui, timeout=10)  # critical: signed both ways
        assert r.reply.valid
        assert p.bridge.session.stats["duplicates"] == 0
    finally:
        await he.close()


async def test_state_is_retained_online_and_offline_by_last_will(broker, premises_factory):
    p = await _premises_on(broker, premises_factory)
    watcher = MqttClient(parse_wan(broker.url), chf=p.chf.eui, watch=[])
    seen: list[bytes] = []
    watcher._subscriptions = lambda: [topic(p.chf.eui, "state")]  # a plain subscriber to the state topic
    watcher._on_message = lambda c, u, msg: seen.append(msg.payload)
    await watcher.connect()
    try:
        for _ in range(100):
            if seen:
                break
            await asyncio.sleep(0.05)
        assert seen[-1] == b"online"
        # a hub that vanishes without saying goodbye: the broker publishes its last will
        p.bridge.session._paho.socket().close()
        for _ in range(200):
            if seen[-1] == b"offline":
                break
            await asyncio.sleep(0.05)
        assert seen[-1] == b"offline"
    finally:
        await watcher.close()


async def test_frames_queued_while_the_broker_is_away_arrive_in_order(broker, premises_factory):
    p = await _premises_on(broker, premises_factory)
    p.counters_used = p.headend.counters  # the new head-end goes on above the commissioning counters
    await p.headend.close()
    p.headend = None
    he = await _headend(broker, p, identifier="test-headend")  # persistent session
    try:
        assert p.bridge.up
        broker.stop()
        for _ in range(100):
            if not p.bridge.up:
                break
            await asyncio.sleep(0.05)
        assert not p.bridge.up
        with pytest.raises(WanDown):
            await p.bridge.send_up(b"\xdf" + bytes(40))
        # the ESME raises alerts while the WAN is away: the CHF queues them in order
        since = len(he.received_alerts)
        sent = [await p.esme.raise_alert(code) for code in (0x8F3F, 0x8F73, 0x8F74, 0x8F75)]
        await p._settle(1)
        assert p.chf.wan_queue() == sent
        broker.start()
        for _ in range(400):
            if len(he.received_alerts) >= since + len(sent):
                break
            await asyncio.sleep(0.05)
        assert [a.raw for a in he.received_alerts[since:]] == sent
        assert all(a.valid for a in he.received_alerts[since:])
        assert p.chf.wan_queue_length == 0
        r = await he.send_use_case("ECS17b", recipient=p.esme.eui, timeout=15)
        assert r.ok
    finally:
        await he.close()


def _tls_files(folder):
    """A CA and a server certificate for 127.0.0.1 (test only)."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gbhub test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(1).not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(2)
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / "ca.pem", folder / "server.pem", folder / "server.key"]
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return [str(p) for p in paths]


async def test_tls_and_password(tmp_path, premises_factory, monkeypatch):
    from gbhub.tools.rig import default_rig
    from gbhub.wan.bridge import WanError

    ca, cert, key = _tls_files(tmp_path / "tls")
    b = Mosquitto(tmp_path / "broker", tls=(ca, cert, key), users={"hub": "s3cret"}).start()
    try:
        url = f"mqtts://hub@127.0.0.1:{b.port}?ca={ca}"
        monkeypatch.setenv("GBHUB_MQTT_PASSWORD", "s3cret")  # the password from the environment
        rig = default_rig(None, ihd=False)
        rig.clock = "sim"
        rig.wan_broker = url
        p = await premises_factory(rig=rig)
        assert p.bridge.session.connected
        he = await _headend_on(url, p)
        try:
            r = await he.send_use_case("ECS17b", recipient=p.esme.eui, timeout=10)
            assert r.ok
        finally:
            await he.close()
        monkeypatch.setenv("GBHUB_MQTT_PASSWORD", "wrong")
        with pytest.raises(WanError):
            await MqttClient(parse_wan(url), chf=p.chf.eui).connect(timeout=3)
    finally:
        b.stop()


async def _headend_on(url, p) -> HeadEnd:
    link = await MqttClient(parse_wan(url), chf=p.chf.eui).connect()
    ident = p.identity
    return HeadEnd(link, ident.keystore, supplier=ident.supplier, acb=ident.acb, clock=p.clock, counters=p.headend.counters)


from hypothesis import given, settings, strategies as st  # noqa: E402


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_parse_wan_takes_any_text_and_only_raises_value_error(text):
    try:
        a = parse_wan(text)
    except ValueError:
        return
    assert a.scheme in ("tcp", "mqtt", "mqtts") and 0 <= a.port < 65536 and a.host
    assert parse_wan(str(a)).port == a.port


async def test_garbage_on_the_down_topic_changes_nothing(broker, premises_factory):
    import aiomqtt

    p = await _premises_on(broker, premises_factory)
    he = await _headend(broker, p)
    down = topic(p.chf.eui, "down")
    session = p.bridge.session
    try:
        async with aiomqtt.Client("127.0.0.1", broker.port) as attacker:
            for payload in (b"", b"\x00", b"\xdf" * 3, b"\xdd" + bytes(100), os.urandom(300), b"\x00\x03" + bytes(8),
                            bytes(70 * 1024)):
                await attacker.publish(down, payload, qos=1)
        await asyncio.sleep(0.5)
        await p._settle(1)
        assert session.stats["dropped"] >= 3  # the 70 KiB frame (over max_frame) and the control frames
        assert p.bridge.session.connected
        r = await he.send_use_case("ECS17b", recipient=p.esme.eui, timeout=10)
        assert r.ok
    finally:
        await he.close()


# ------------------------------------------------------------------------- firmware distribution
async def _wait(pred, seconds: float = 10.0) -> None:
    for _ in range(int(seconds / 0.02)):
        if pred():
            return
        await asyncio.sleep(0.02)


async def test_firmware_distribution_over_the_broker(broker, premises_factory):
    """UPDATE_FIRMWARE in parts on the down topic, FIRMWARE_EVENTs back on up, the CCS08 transfer
    alert on alert, then activation (CS06): all through the broker."""
    from gbcs.asn1 import FirmwareTransferAlert
    from gbcs.catalogue import AlertCode, MessageCode
    from gbcs.payload import decode_payload
    from test_firmware_update import _image

    p = await _premises_on(broker, premises_factory)
    p.counters_used = p.headend.counters
    await p.headend.close()  # only the broker's head-end from here
    p.headend = None
    he = await _headend(broker, p)
    try:
        image = _image(p, size=70000)  # two parts
        request = await he.update_firmware(image.encode(), [p.esme.eui])
        await _wait(lambda: he.firmware_events)
        assert he.firmware_events[0] == {**he.firmware_events[0], "event": "offered", "request": request,
                                         "device": p.esme.eui_hex}
        await p.clock.advance(image.size / 48 * 0.02 + 10)
        await _wait(lambda: he.firmware_events[-1]["event"] == "transferred")
        events = he.firmware_events
        assert "progress" in [e["event"] for e in events]
        assert events[-1] == {**events[-1], "event": "transferred", "verified": True, "request": request, "version": "00020000"}
        ccs08 = await he.wait_alert(lambda a: a.message.message_code == MessageCode.CCS08, timeout=10)
        body = decode_payload(ccs08.message)
        assert isinstance(body, FirmwareTransferAlert) and body.alert_code == AlertCode.FIRMWARE_TRANSFER_ALERT_SUCCESS
        assert body.entity_id == p.esme.eui and int(body.code) == 0
        assert p.esme.firmware.standby.image_hash == image.image_hash
        reply = await he.send_use_case("CS06", recipient=p.esme.eui, params={"hash": image.image_hash}, timeout=10)
        assert reply.ok and reply.summary == {**reply.summary, "code": "SUCCESS", "firmware_version": "00020000"}
        # a request that is refused still comes back over the broker
        await he.link.send(bytes((0, 4)) + (7).to_bytes(4, "big") + (1 << 30).to_bytes(4, "big") + bytes(4)
                           + b"\x01" + p.esme.eui + b"x")
        await _wait(lambda: he.firmware_events[-1].get("request") == 7)
        assert he.firmware_events[-1]["code"] == "REQUEST_REFUSED"
    finally:
        await he.close()


async def test_only_firmware_requests_pass_as_control_frames(broker, premises_factory):
    """ACK / TAKE / LEAVE and truncated UPDATE_FIRMWARE frames on the down topic are dropped
    (counted, logged): a forged ACK releases nothing, and the CHF holds no upload for them."""
    import aiomqtt

    p = await _premises_on(broker, premises_factory)
    down = topic(p.chf.eui, "down")
    session, bridge = p.bridge.session, p.bridge
    acked, takers = dict(bridge._acked), list(bridge._takers)
    forged = [b"\x00\x03" + (1 << 40).to_bytes(8, "big"), b"\x00\x01", b"\x00\x00", b"\x00\x02" + bytes(20),
              b"\x00\x04" + bytes(13), b"\x00\x04" + bytes(12) + b"\x00" + b"x" * 9,  # no target
              b"\x00\x04" + bytes(12) + b"\x03" + bytes(16)]  # 3 targets announced, 2 present
    async with aiomqtt.Client("127.0.0.1", broker.port) as attacker:
        for payload in forged:
            await attacker.publish(down, payload, qos=1)
    await _wait(lambda: session.stats["control_dropped"] >= len(forged))
    await p._settle(1)
    assert session.stats["control_dropped"] == len(forged)
    assert dict(bridge._acked) == acked and list(bridge._takers) == takers and not p.chf._uploads
    assert (await p.send("ECS17b")).ok


def test_cli_firmware_push_over_mqtt(broker, tmp_path):
    """`gbhub firmware push --activate` against a `gbhub run --wan mqtt://` child process, found
    through its data folder and then named by `--wan mqtt://HOST:PORT`."""
    import json

    from test_cli_run import Running, gbhub
    from test_firmware_powercut import NEW, _build, _version

    data = tmp_path / "site"
    run = Running("--data", str(data), "--wan", broker.url)
    try:
        ota = _build(data, tmp_path)
        out = gbhub("firmware", "push", str(ota), "--to", "esme", "--data", str(data), "--activate", "--timeout", "120",
                    timeout=180)
        assert out.returncode == 0, out.stdout + out.stderr
        rows = [json.loads(line) for line in out.stdout.splitlines() if line.startswith('{"device"')]
        assert len(rows) == 1 and rows[0]["verified"] and rows[0]["activated"] and rows[0]["version"] == NEW, out.stdout
        # the ESME's Firmware Verification Successful, then the CHF's CCS08 Firmware Transfer Alert SUCCESS
        assert {"0x8F72", "0x8F8A"} <= set(rows[0]["alerts"]), rows
        assert _version(data) == NEW
        again = gbhub("firmware", "push", str(ota), "--to", "esme", "--data", str(data), "--wan", broker.url,
                      "--timeout", "120", timeout=180)
        assert again.returncode == 0 and '"verified": true' in again.stdout, again.stdout + again.stderr
    finally:
        assert run.stop() == 0


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=64), st.integers(0, 255))
def test_firmware_request_check_takes_any_bytes(data, kind):
    """The down topic's control-frame filter (outside input): never raises, and what it passes
    has a whole header (every announced target present)."""
    from gbhub.wan.mqtt import _firmware_request

    for frame in (data, b"\x00" + bytes((kind,)) + data):
        if _firmware_request(frame):
            assert frame[:2] == b"\x00\x04" and frame[14] > 0 and len(frame) >= 15 + 8 * frame[14]


@given(st.binary(max_size=3000), st.lists(st.integers(1, 700), min_size=1, max_size=60))
@settings(max_examples=60, deadline=None)
def test_batched_socket_reads_hand_paho_the_stream_unchanged(data, sizes):
    """However paho asks for the bytes (one for the packet type, one per length byte, then the
    body), it gets the stream as sent, and `pending` says what is read but not yet taken."""
    import socket

    from gbhub.wan.mqtt import _BatchedSocket

    a, b = socket.socketpair()
    try:
        a.sendall(data)
        a.shutdown(socket.SHUT_WR)
        s = _BatchedSocket(b, None, None, None)
        got = bytearray()
        i = 0
        while True:
            chunk = s.recv(sizes[i % len(sizes)])
            i += 1
            if not chunk:
                break
            assert len(chunk) <= sizes[(i - 1) % len(sizes)]
            got += chunk
            assert s.pending() >= 0
        assert bytes(got) == data and s.pending() == 0
    finally:
        a.close()
        b.close()


async def test_a_burst_of_frames_crosses_the_broker_whole_and_in_order(broker):
    """Thousands of publishes in one event-loop turn leave in a few writes and arrive as they were
    sent, in order, QoS 1 acknowledged, with frames larger than one socket read among them."""
    from gbhub.wan.mqtt import _BatchedSocket, _Connection

    got: list[bytes] = []
    done = asyncio.Event()
    frames = [bytes([i % 251]) * (1 + (i * 37) % 300) for i in range(3000)] + [b"\x5a" * 200_000, b"end"]

    class Echo(_Connection):
        def _subscriptions(self):
            return ["test/burst"]

        def _on_message(self, client, userdata, msg):
            got.append(bytes(msg.payload))
            if len(got) == len(frames):
                done.set()

    c = Echo(parse_wan(broker.url), max_frame=1 << 20)
    await c.start(wait=10)
    try:
        await c._client.subscribe("test/burst", qos=1)
        assert isinstance(c._paho._sock, _BatchedSocket)
        # the socket under it sends at once (aiomqtt sets its options only on a plain socket):
        # with Nagle every request/response exchange waited ~40 ms for a delayed ACK
        assert c._paho._sock.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        acked = []
        for i, f in enumerate(frames):
            c.publish("test/burst", f, on_ack=lambda i=i: acked.append(i))
        await asyncio.wait_for(done.wait(), 30)
        assert got == frames
        for _ in range(100):
            if len(acked) == len(frames):
                break
            await asyncio.sleep(0.05)
        assert sorted(acked) == list(range(len(frames)))
    finally:
        await c.close()
