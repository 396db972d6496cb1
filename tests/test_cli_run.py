"""`gbhub run` / `send` / `send-raw` as processes: the way a lab engineer uses them, including a
SIGKILL in the middle and a restart from the stored state."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, VECTORS, vectors_dir

ENV = dict(os.environ, PYTHONUNBUFFERED="1")


def gbhub(*args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gbhub", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env=ENV)


class Running:
    """`gbhub run ... --status-every 0` in the background, returned once it says it runs (or at
    once with `wait=False`: then `wait_running` before use)."""

    def __init__(self, *args: str, cwd: Path | str = ROOT, env: dict | None = None, timeout: float = 90.0,
                 wait: bool = True) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "gbhub", "run", *args, "--status-every", "0"],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=cwd,
                                     env=ENV if env is None else env)
        self.lines: list[str] = []
        if wait:
            self.wait_running(time.time() + timeout)

    def wait_running(self, deadline: float) -> None:
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.lines.append(line)
            if "running;" in line:
                return
        self.kill()
        raise AssertionError("gbhub run did not start:\n" + "".join(self.lines))

    @property
    def text(self) -> str:
        return "".join(self.lines)

    @property
    def port(self) -> int:
        return int(re.search(r"127\.0\.0\.1:(\d+)", "".join(self.lines)).group(1))

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout=60)


def send(data: Path, *args: str) -> dict:
    out = gbhub("send", *args, "--data", str(data))
    assert out.returncode == 0, out.stdout + out.stderr
    return json.loads(out.stdout)


def test_run_send_sigkill_restart(tmp_path):
    data = tmp_path / "site"
    trace = tmp_path / "wan.jsonl"
    run = Running("--data", str(data), "--trace", str(trace))
    try:
        first = send(data, "ECS17b")
        assert first["ok"] and first["response"]["mac"] == "valid"
        opened = send(data, "ECS43")
        assert opened["ok"] and opened["response"]["signature"] == "valid"
        assert send(data, "ECS45")["summary"]["supply_state"] != "on"
        log = send(data, "CCS06")["summary"]
        manifest = json.loads((data / "premises.json").read_text())
    finally:
        run.kill()  # SIGKILL: no clean shutdown
    lines = [json.loads(l) for l in trace.read_text().splitlines()]
    assert {l["dir"] for l in lines} == {"down", "up"} and all(re.fullmatch(r"[0-9A-F]+", l["hex"]) for l in lines)

    run = Running("--data", str(data))  # restart from the stored state
    try:
        again = json.loads((data / "premises.json").read_text())
        assert again["devices"] == manifest["devices"]
        assert send(data, "ECS45")["summary"]["supply_state"] != "on"  # still off: state survived
        # the CHF device log survived (last-communication times move on, the entries do not)
        assert [d["eui"] for d in send(data, "CCS06")["summary"]["devices"]] == [d["eui"] for d in log["devices"]]
        later = send(data, "ECS17b")
        assert later["summary"]["import_kwh"] >= first["summary"]["import_kwh"]
        # anti-replay counters survived: the first ECS17b frame sent again gets no response
        down = [l["hex"] for l in lines if l["dir"] == "down"]
        replay = gbhub("send-raw", down[0], "--data", str(data), "--timeout", "2")
        assert replay.returncode == 1 and "no response" in replay.stderr
    finally:
        assert run.stop() == 0


def test_send_errors_are_one_line(tmp_path):
    out = gbhub("send", "ECS17b", "--data", str(tmp_path))
    assert out.returncode == 2 and "no running premises" in out.stderr and "Traceback" not in out.stderr
    out = gbhub("send", "NOTAUSECASE", "--data", str(tmp_path))
    assert out.returncode == 2 and "NOTAUSECASE" in out.stderr
    bad_rig = tmp_path / "bad.toml"
    bad_rig.write_text('[clock]\nmode = "warp"\n')
    out = gbhub("run", str(bad_rig))
    assert out.returncode == 2 and "mode" in out.stderr and "Traceback" not in out.stderr


def test_rtds_rig_send_raw_and_decode(tmp_path):
    vectors_dir()
    data = tmp_path / "rtds"
    run = Running(str(ROOT / "examples" / "rtds.toml"), "--data", str(data))
    try:
        command = VECTORS / "rtds" / "4.1.1_ECS17b" / "ECS17b_4.1.1_SINGLE_SUCCESS_COMMAND_GBCS.HEX"
        out = gbhub("send-raw", f"@{command}", "--data", str(data))
        assert out.returncode == 0, out.stderr
        response = out.stdout.strip()
        decoded = gbhub("decode", response, "--keys", str(VECTORS / "keys" / "rtds"),
                        "--keys", str(VECTORS / "keys" / "device-test"))
        obj = json.loads(decoded.stdout)
        assert obj["message_code"] == "0027" and obj["originator_counter"] == 1000
        assert obj["mac"] == "valid" and obj["encrypted"] == "decrypted"
    finally:
        assert run.stop() == 0
