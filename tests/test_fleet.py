"""Fleets (tools/fleet.py), the load generator (tools/load.py), the fleet TCP listener, and the
MQTT bridge under load with a broker restart, against a real Mosquitto started here."""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gbcs.codec import eui_hex
from gbhub.tools.fleet import FleetKeystore, FleetWorker, derive_private_key, fleet_eui, fleet_identity, manifest, member_rig
from gbhub.tools.load import fleet_headend, gas_deadline_for, run_load, sleepy_devices, targets_for
from gbhub.tools.mosquitto import Mosquitto, mosquitto_binary
from gbhub.tools.rig import DEFAULT_DEVICES
from gbhub.wan.mqtt import parse_wan

HAVE_BROKER = mosquitto_binary() is not None
if not HAVE_BROKER and os.environ.get("CI") == "true":
    raise RuntimeError("mosquitto missing in CI: .ci/run installs it (apt-get install mosquitto)")
needs_broker = pytest.mark.skipif(not HAVE_BROKER, reason="mosquitto not installed (apt-get install mosquitto)")

KEYS = ("per_s", "p50_ms", "p99_ms", "errors", "lost", "duplicated")


@pytest.fixture(scope="module")
def identity(tmp_path_factory):
    return fleet_identity(tmp_path_factory.mktemp("fleet-keys") / "keys", 5)


@pytest.fixture
def broker(tmp_path):
    if not HAVE_BROKER:
        pytest.skip("mosquitto not installed")
    b = Mosquitto(tmp_path / "broker").start()
    yield b
    b.stop()


def test_euis_are_deterministic_and_never_collide():
    seen = set()
    for seed in (1, 2):
        for index in (0, 1, 2, 70000):
            for t in ("chf", "gpf", "esme", "ihd", "gsme"):
                for n in (1, 2):
                    e = fleet_eui(seed, index, t, n)
                    assert len(e) == 8 and e == fleet_eui(seed, index, t, n)
                    seen.add(e)
    assert len(seen) == 2 * 4 * 5 * 2
    rig = member_rig(3, 42)
    assert [d.type for d in rig.devices] == [t["type"] for t in DEFAULT_DEVICES]  # the demo premises' devices
    assert {d.eui for d in rig.devices} == {fleet_eui(3, 42, d.type) for d in rig.devices}
    assert member_rig(3, 42).devices[0].eui == rig.devices[0].eui
    slow = member_rig(3, 42, options={"ihd": {"poll_interval": 30.0}})
    assert [d.options["poll_interval"] for d in slow.devices if d.type == "ihd"] == [30.0]
    assert "ihd" not in [d.type for d in member_rig(3, 42, without=("ihd",)).devices]


def test_derived_keys_are_fixed_by_seed_eui_and_usage(identity):
    eui = fleet_eui(5, 9, "esme")
    a, b = FleetKeystore(5), FleetKeystore(5)
    assert a.public_key(eui, "ka").public_numbers() == b.public_key(eui, "ka").public_numbers()
    assert a.public_key(eui, "ka").public_numbers() != a.public_key(eui, "ds").public_numbers()
    assert FleetKeystore(6).public_key(eui, "ka") is None  # another fleet's device: not derived here
    assert derive_private_key(5, eui, "ka").private_numbers() == a.private_key(eui, "ka").private_numbers()
    assert identity.keystore.private_key(identity.supplier, "ds") is not None  # organisations from the PKI
    cert = identity.keystore.certificate(eui, "ka")  # issued by the test PKI's device CA on first use
    assert cert is not None and cert.public_key().public_numbers() == a.public_key(eui, "ka").public_numbers()
    assert identity.keystore.is_device(eui) and identity.keystore.role(eui) is None


@needs_broker
async def test_fleet_worker_on_a_broker_and_load_generator_figures(broker, identity):
    w = FleetWorker(5, range(10, 13), identity, wan=parse_wan(broker.url))
    await w.start()
    try:
        assert w.errors == 0 and len(w.premises) == 3
        m = manifest(5, 10, 3, wan=broker.url, identity=identity, keys=[])
        m["wans"] = [m["wan"]]
        he, dup = await fleet_headend(m, parse_wan(broker.url), identifier="test-load")
        he.keystore = FleetKeystore(5, identity.keystore)
        targets, mix, skipped = targets_for({"ECS17b": 80, "ECS42": 20}, m["types"], m["devices"])
        out = await run_load(he, targets, mix, rate=40, duration=2.0, timeout=20, duplicates=dup)
        await he.close()
        assert all(k in out for k in KEYS)
        assert out["answered"] == out["sent"] > 50
        assert (out["errors"], out["lost"], out["duplicated"]) == (0, 0, 0)
        assert 0 < out["p50_ms"] <= out["p99_ms"]
    finally:
        await w.stop()


@needs_broker
async def test_load_mix_with_gas_reads_from_the_gpf_and_commands_queued_for_the_gsme(broker, identity):
    """GCS13a goes to the GPF (answered from its mirror at once, no wake); GCS07 waits in the
    CHF's queue for the GSME's next wake: the generator gives it the gas deadline, keeps it out
    of the latency percentiles and waits for it after the run; nothing counts as lost."""
    w = FleetWorker(5, range(40, 42), identity, wan=parse_wan(broker.url), options={"gsme": {"wake_interval": 2.0}})
    await w.start()
    try:
        m = manifest(5, 40, 2, wan=broker.url, identity=identity, keys=[])
        m["wans"] = [m["wan"]]
        he, dup = await fleet_headend(m, parse_wan(broker.url), identifier="test-load-gas")
        he.keystore = FleetKeystore(5, identity.keystore)
        targets, mix, skipped = targets_for({"ECS17b": 70, "ECS42": 10, "GCS13a": 10, "GCS07": 10}, m["types"], m["devices"])
        kinds = {e: m["types"][n] for n, e in ((n, bytes.fromhex(h)) for n, h in m["devices"].items())}
        assert {kinds[e] for e in targets["GCS13a"]} == {"gpf"} and {kinds[e] for e in targets["GCS07"]} == {"gsme"}
        sleepy = sleepy_devices(m["types"], m["devices"])
        assert sleepy == set(targets["GCS07"]) and gas_deadline_for({"gsme_wake_s": 2.0}, 30) == 32
        out = await run_load(he, targets, mix, rate=40, duration=2.0, timeout=20, duplicates=dup, sleepy=sleepy,
                             gas_deadline=gas_deadline_for({"gsme_wake_s": 2.0}, 10), gas_queue=3)
        await he.close()
        assert (out["errors"], out["lost"], out["duplicated"]) == (0, 0, 0), (out["error_kinds"], out)
        assert out["answered"] + out["queue_full"] == out["sent"] + out["queue_full"] > 50
        assert 0 < out["queued"] == out["queued_answered"] and out["queued_lost"] == 0
        assert out["queued_max_ms"] <= 12_000 and out["gas_deadline_s"] == 12
    finally:
        await w.stop()


@needs_broker
async def test_broker_restart_in_the_middle_of_a_load_run_loses_nothing_and_applies_nothing_twice(broker, identity):
    w = FleetWorker(5, range(20, 23), identity, wan=parse_wan(broker.url))
    await w.start()
    try:
        m = manifest(5, 20, 3, wan=broker.url, identity=identity, keys=[])
        m["wans"] = [m["wan"]]
        he, dup = await fleet_headend(m, parse_wan(broker.url), identifier="test-load-restart")
        he.keystore = FleetKeystore(5, identity.keystore)
        targets, mix, _ = targets_for({"ECS17b": 70, "ECS42": 30}, m["types"], m["devices"])

        async def restart():
            await asyncio.sleep(1.5)
            await asyncio.get_running_loop().run_in_executor(None, broker.restart)

        r = asyncio.ensure_future(restart())
        out = await run_load(he, targets, mix, rate=40, duration=5.0, timeout=30, duplicates=dup)
        await r
        await he.close()
        assert w.session.stats["disconnects"] >= 1  # the broker did go away mid-run
        assert out["sent"] > 100
        assert (out["lost"], out["errors"], out["duplicated"]) == (0, 0, 0), (out, [hex(a.code or 0) for a in he.received_alerts])
        assert out["answered"] == out["sent"]
        # nothing applied twice: a command reaching a device a second time is a replay, which the
        # device rejects with a security alert; none came, and every command was answered once
        assert not he.received_alerts, [hex(a.code or 0) for a in he.received_alerts]
    finally:
        await w.stop()


async def test_fleet_tcp_listener_routes_by_recipient(identity):
    from gbhub.tools.load import fleet_headend

    w = FleetWorker(5, range(30, 33), identity, wan=parse_wan("tcp://127.0.0.1:0"))
    await w.start()
    try:
        m = manifest(5, 30, 3, wan=None, identity=identity, keys=[])
        m["wans"] = [{"tcp": [{"host": "127.0.0.1", "port": w.port, "first": 30, "premises": 3}]}]
        he, dup = await fleet_headend(m, None)
        he.keystore = FleetKeystore(5, identity.keystore)
        for p in w.premises:
            r = await he.send_use_case("ECS17b", recipient=p.esme.eui, timeout=10)
            assert r.ok and r.reply.valid
        await he.close()
    finally:
        await w.stop()


# ----------------------------------------------------------------------------------------------
# The commands, as a user runs them
# ----------------------------------------------------------------------------------------------


def _gbhub(*args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-P", "-m", "gbhub.tools.cli", *args], capture_output=True, text=True,
                          timeout=kw.pop("timeout", 120), **kw)


@pytest.mark.parametrize("wan", ["mqtt", "tcp"])
def test_gbhub_fleet_send_and_load(wan, tmp_path, request):
    url = request.getfixturevalue("broker").url if wan == "mqtt" else "tcp"
    data = tmp_path / "fleet"
    proc = subprocess.Popen([sys.executable, "-P", "-m", "gbhub.tools.cli", "fleet", "--premises", "4", "--processes", "2",
                             "--wan", url, "--seed", "9", "--first", "100", "--data", str(data), "--for", "120",
                             "--summary-every", "1", "--gsme-wake", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        manifest_path = data / "premises.json"
        while time.monotonic() < deadline and not manifest_path.is_file():
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.2)
        m = json.loads(manifest_path.read_text())
        assert m["fleet"] == {"seed": 9, "first": 100, "premises": 4, "processes": 2}
        assert m["devices"]["p103.esme"] == eui_hex(fleet_eui(9, 103, "esme"))
        assert m["hubs"][m["devices"]["p103.esme"]] == m["devices"]["p103.chf"]
        r = _gbhub("send", "ECS17b", "--to", m["devices"]["p101.esme"], "--data", str(data), "--summary")
        assert r.returncode == 0 and r.stdout.startswith("ECS17b ok"), r.stderr
        r = _gbhub("send", "ECS17b", "--to", "p102.esme", "--data", str(data), "--summary")  # the second worker's
        assert r.returncode == 0, r.stderr
        out = tmp_path / "load.json"
        r = _gbhub("load", "--data", str(data), "--rate", "30", "--duration", "2", "--mix",
                   "ECS17b:70,ECS42:10,GCS13a:10,GCS07:10", "--json", str(out))
        assert r.returncode == 0, r.stderr
        figures = json.loads(out.read_text())
        assert all(k in figures for k in KEYS)
        assert figures["sent"] == figures["answered"] > 30 and figures["lost"] == figures["duplicated"] == 0
        assert figures["errors"] == 0 and figures["skipped"] == []
        # GCS07 waited for a GSME wake (every 2 s here: the manifest's gsme_wake_s sets the deadline)
        assert figures["queued"] == figures["queued_answered"] > 0 and figures["gas_deadline_s"] == 2 + 30
    finally:
        proc.terminate()
        try:
            out, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
    assert proc.returncode == 0, err
    assert "premises up in" in out and "stopping" in err
    assert json.loads((data / "premises.json").read_text())["state"] == "stopped"


@needs_broker
def test_gbhub_run_on_a_broker_and_send(broker, tmp_path):
    data = tmp_path / "p"
    proc = subprocess.Popen([sys.executable, "-P", "-m", "gbhub.tools.cli", "run", "--wan", broker.url, "--data", str(data),
                             "--for", "120"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            m = json.loads((data / "premises.json").read_text()) if (data / "premises.json").is_file() else {}
            if m.get("state") == "ready":
                break
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.2)
        assert m["wan"]["url"] == broker.url
        r = _gbhub("send", "ECS17b", "--data", str(data), "--summary")
        assert r.returncode == 0 and r.stdout.startswith("ECS17b ok"), r.stderr
        r = _gbhub("send", "ECS17b", "--data", str(data), "--wan", broker.url, "--summary")
        assert r.returncode == 0, r.stderr
        # `gbhub alerts` keeps a persistent session: alerts raised while it is away wait for it
        _gbhub("alerts", "--data", str(data), "--timeout", "2")
        r = _gbhub("ctl", "alert", "esme", "0x8F3F", "--data", str(data))
        assert r.returncode == 0, r.stderr
        r = _gbhub("alerts", "--data", str(data), "--count", "1", "--timeout", "30")
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout.splitlines()[0])["code"] == "0x8F3F"
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=60)
    assert "WAN (MQTT)" in out


def test_bad_wan_addresses_are_usage_errors(tmp_path):
    r = _gbhub("send", "ECS17b", "--wan", "ftp://x:1", "--data", str(tmp_path))
    assert r.returncode == 2 and "--wan" in r.stderr and "Traceback" not in r.stderr
    r = _gbhub("fleet", "--premises", "0", "--data", str(tmp_path))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    r = _gbhub("load", "--data", str(tmp_path), "--mix", "ECS17b:x")
    assert r.returncode == 2 and "--mix" in r.stderr
    r = _gbhub("run", "--wan", "mqtt://127.0.0.1:1", "--data", str(tmp_path / "p"), "--for", "5")
    assert r.returncode == 1 and "cannot be reached" in r.stderr and "Traceback" not in r.stderr


def test_decode_batch_with_jobs_keeps_input_order(tmp_path):
    from conftest import VECTORS, vectors_dir

    vectors_dir()
    rows = [json.loads(line) for line in (VECTORS / "rtds" / "expected.jsonl").read_text().splitlines()]
    frames = [(VECTORS / "rtds" / r["file"]).read_text().strip() for r in rows]
    lines = (frames + ["# a comment", "not hex"]) * 3
    path = tmp_path / "batch.txt"
    path.write_text("\n".join(lines) + "\n")
    keys = ["--keys", str(VECTORS / "keys" / "rtds"), "--keys", str(VECTORS / "keys" / "device-test")]
    one = _gbhub("decode", "--batch", f"@{path}", *keys, "--jobs", "1")
    two = _gbhub("decode", "--batch", f"@{path}", *keys, "--jobs", "2")
    assert one.returncode == two.returncode == 2  # the "not hex" lines
    assert one.stdout == two.stdout
    got = [json.loads(line)["line"] for line in two.stdout.splitlines()]
    assert got == [n for n, text in enumerate(lines, 1) if not text.startswith("#")]


@needs_broker
async def test_two_fleets_started_independently_are_one_fleet_to_the_head_end(broker, identity):
    a = FleetWorker(5, range(40, 42), identity, wan=parse_wan(broker.url), worker=0)
    b = FleetWorker(5, range(42, 44), identity, wan=parse_wan(broker.url), worker=0)  # another "machine"
    await a.start()
    await b.start()
    try:
        m = manifest(5, 40, 4, wan=broker.url, identity=identity, keys=[])
        m["wans"] = [m["wan"]]
        he, _ = await fleet_headend(m, parse_wan(broker.url))
        he.keystore = FleetKeystore(5, identity.keystore)
        for p in a.premises + b.premises:
            r = await he.send_use_case("ECS17b", recipient=p.esme.eui, timeout=10)
            assert r.ok and r.reply.valid
        await he.close()
    finally:
        await a.stop()
        await b.stop()


def test_bench_registry_takes_plain_benchmark_functions(monkeypatch):
    """Benchmarks other issues add as plain functions (gas with `days`) join `gbhub bench all`."""
    import argparse

    from gbhub.tools import bench

    monkeypatch.setattr(bench, "gas", lambda days=None, progress=print: {"days": days}, raising=False)
    monkeypatch.setattr(bench, "BENCHMARKS", dict(bench.BENCHMARKS))
    benches = bench.load_benchmarks()
    assert {"codec", "e2e", "soak", "fleet", "mqtt", "gas"} <= set(benches)
    args = argparse.Namespace(days=None)
    assert benches["gas"].run(args, True, print) == {"days": bench._SHORT_DAYS}
    assert benches["gas"].run(args, False, print) == {"days": None}
    assert "fleet.start_s  1" in bench.table({"fleet": {"start_s": 1}})
