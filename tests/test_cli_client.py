"""`gbhub send`, `send-raw`, `build`, `alerts`, `decode --batch` as real processes against one
running `gbhub run` (issue 8: defect 7, the client side of defects 9 and 10, the new commands)."""
from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import ROOT
from gbhub.tools.inputs import UsageError, parse_frame_line
from test_cli_run import ENV, Running, gbhub

CHF = "02474248400000A2"
ESME = "02474248400000A0"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    data = tmp_path_factory.mktemp("client") / "site"
    trace = data.parent / "wan.jsonl"
    run = Running("--data", str(data), "--trace", str(trace))
    try:
        yield data
    finally:
        assert run.stop() == 0


def one_line(out: subprocess.CompletedProcess, code: int) -> str:
    """The single stderr line of a failed command with exit status `code`."""
    lines = out.stderr.strip().splitlines()
    assert out.returncode == code and len(lines) == 1 and "Traceback" not in out.stderr, (out.returncode, out.stderr)
    return lines[0]


def send(site, *args: str) -> subprocess.CompletedProcess:
    return gbhub("send", *args, "--data", str(site))


# -- defect 7: rejections at once -----------------------------------------------------------------


def test_send_rejection_prints_alert_code_name_and_device(site):
    """Defect 7: the CHF does not serve CS07; it answers 0x8F1E. Before: RequestTimeout after the
    whole --timeout. The 120 s timeout is never reached: the line names the alert."""
    line = one_line(send(site, "CS07", "--to", "chf", "--timeout", "120"), 1)
    assert "0x8F1E" in line and "Integrity check of content or format of command failed" in line and CHF in line


def test_send_raw_rejection_prints_alert(site):
    """Defect 7 for send-raw: a frame sent twice is a replay, answered 0x8F53."""
    frame = gbhub("build", "ECS17b", "--data", str(site))
    assert frame.returncode == 0, frame.stderr
    hex_frame = frame.stdout.strip()
    assert re.fullmatch(r"[0-9A-F]+", hex_frame)
    first = gbhub("send-raw", hex_frame, "--data", str(site))
    assert first.returncode == 0 and re.fullmatch(r"[0-9A-F]+", first.stdout.strip()), first.stderr
    line = one_line(gbhub("send-raw", hex_frame, "--data", str(site), "--timeout", "120"), 1)
    assert "0x8F53" in line and "Failed Authentication or Authorisation not covered by other codes" in line and ESME in line
    assert "not a GBCS frame" in one_line(gbhub("send-raw", "DF00", "--data", str(site)), 2)


# -- gbhub send ---------------------------------------------------------------------------------


def test_send_json_is_short_and_full_on_request(site):
    """Defect 10: `send` printed the whole payload tree (up to 1,600 lines); the documented keys stay."""
    out = send(site, "ECS22b")
    assert out.returncode == 0, out.stderr
    obj = json.loads(out.stdout)
    assert set(obj) == {"use_case", "ok", "summary", "response"} and obj["ok"]
    assert obj["response"]["mac"] == "valid" and "payload" not in obj["response"]
    assert len(out.stdout.splitlines()) < 120
    full = json.loads(send(site, "ECS22b", "--full").stdout)
    assert "payload" in full["response"]


def test_send_summary_and_options_anywhere(site):
    """Defect 10: options had to follow the parameters."""
    out = gbhub("send", "--summary", "--data", str(site), "ECS22b", "--to", "esme", "start=2026-01-01T00:00:00Z",
                "--timeout", "20", "end=2026-01-02T00:00:00Z")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ECS22b ok {")


def test_send_without_to_picks_a_device_the_premises_has(site):
    """Defect 10: `send CS07` complained about a --to never given; CS07 goes to a GSME first (this
    dual-fuel premises has one: --wake presses its button rather than waiting for its wake)."""
    out = send(site, "CS07", "--summary", "--wake")
    assert out.returncode == 0 and out.stdout.startswith("CS07 ok"), out.stderr
    assert "--to" not in out.stderr


@pytest.mark.parametrize("args, words", [
    (("CS14",), ("CS14", "alert")),
    (("CS01a",), ("utrn", "required")),
    (("ECS22b", "start=2026-01-02T00:00:00Z", "end=2026-01-01T00:00:00Z"), ("before",)),
    (("ECS17b", "colour=blue"), ("colour",)),
    (("ECS17b", "--bogus"), ("--bogus",)),
    (("NOTAUSECASE",), ("NOTAUSECASE",)),
])
def test_send_user_errors_are_one_line_exit_2(site, args, words):
    """Defect 9: these were tracebacks."""
    line = one_line(send(site, *args), 2)
    assert all(w in line for w in words), line


def test_send_list_help_and_version():
    listing = gbhub("send", "--list")
    assert listing.returncode == 0 and re.search(r"^ECS17b\s+0027\s+esme", listing.stdout, re.M)
    assert re.search(r"^CS01a .*utrn=", listing.stdout, re.M)
    helped = gbhub("send", "ECS22b", "--help")
    assert helped.returncode == 0 and "start (datetime)" in helped.stdout and "end (datetime)" in helped.stdout
    assert gbhub("send", "--help").returncode == 0
    version = gbhub("--version")
    assert version.returncode == 0 and re.fullmatch(r"gbhub \d+\.\d+\.\d+\S*", version.stdout.strip())


# -- gbhub build --------------------------------------------------------------------------------


def test_build_takes_fresh_counters_and_decodes(site):
    a = gbhub("build", "ECS43", "--data", str(site))
    b = gbhub("build", "--data", str(site), "ECS43")
    assert a.returncode == b.returncode == 0, a.stderr + b.stderr
    decoded = [json.loads(gbhub("decode", x.stdout.strip(), "--keys", str(site / "keys")).stdout) for x in (a, b)]
    assert all(d["use_case"] == "ECS43" and d["mac"] == "valid" and d["signature"] == "valid" for d in decoded)
    assert decoded[1]["originator_counter"] > decoded[0]["originator_counter"]
    assert decoded[0]["recipient"] == ESME
    keys_only = gbhub("build", "ECS17b", "--keys", str(site / "keys"), "--to", ESME, "--data", str(site.parent / "none"))
    assert keys_only.returncode == 0, keys_only.stderr
    assert "--to EUI" in one_line(gbhub("build", "ECS17b", "--keys", str(site / "keys"), "--data", str(site.parent / "none")), 2)


# -- gbhub alerts -------------------------------------------------------------------------------


def test_alerts_prints_verified_alerts_as_json_lines(site):
    # Alerts queued while no head-end took them (commissioning's CS14, earlier tests' rejections)
    # come first, oldest first, and leave the hub's queue (issue 8, defect 1): take them all.
    queued = gbhub("alerts", "--data", str(site), "--count", "1", "--timeout", "60")
    assert queued.returncode == 0, queued.stderr
    assert json.loads(queued.stdout.splitlines()[0])["code"] == "0x8F12"  # CS14: the CHF device log changed
    drained = gbhub("alerts", "--data", str(site), "--timeout", "3")
    assert drained.returncode == 0, drained.stderr
    watcher = subprocess.Popen([sys.executable, "-m", "gbhub", "alerts", "--data", str(site), "--count", "1",
                                "--timeout", "60"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               cwd=ROOT, env=ENV)
    try:
        # the watcher needs a moment to connect; keep provoking rejections until it has one
        for _ in range(20):
            send(site, "CS07", "--to", "chf", "--timeout", "20")
            try:
                out, err = watcher.communicate(timeout=1.5)
                break
            except subprocess.TimeoutExpired:
                continue
        else:
            raise AssertionError("gbhub alerts printed nothing")
    finally:
        if watcher.poll() is None:
            watcher.kill()
            watcher.wait()
    assert watcher.returncode == 0, err
    lines = out.strip().splitlines()
    assert len(lines) >= 1  # one, or more if several rejections were queued before it connected
    for line in lines:
        alert = json.loads(line)
        assert alert["device"] == CHF and alert["code"] == "0x8F1E"
        assert alert["name"] == "Integrity check of content or format of command failed"
        assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", alert["time"]) and alert["payload"]["alert_code"] == "0x8F1E"
    line = one_line(gbhub("alerts", "--data", str(site), "--count", "1", "--timeout", "0.5"), 1)
    assert "0 of 1" in line


# -- gbhub decode on the trace ------------------------------------------------------------------


def test_decode_batch_reads_the_trace_and_names_alert_codes(site):
    """Defect 10: decode --batch could not read gbhub's own trace; alert codes were decimal."""
    send(site, "CS07", "--to", "chf")
    trace = site.parent / "wan.jsonl"
    out = gbhub("decode", "--batch", f"@{trace}", "--keys", str(site / "keys"))
    assert out.returncode == 0, out.stdout[-2000:]
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(rows) == len(trace.read_text().splitlines()) and all("error" not in r for r in rows)
    alerts = [r for r in rows if r["cra"] == "alert"]
    assert any(r["payload"]["alert_code"] == "0x8F1E" and r["payload"]["alert_name"].startswith("Integrity") for r in alerts)
    tree = gbhub("decode", "--tree", json.loads(trace.read_text().splitlines()[-1])["hex"])
    assert tree.returncode == 0


# -- the environment --------------------------------------------------------------------------


def test_wan_pointing_at_another_server_is_one_line(site):
    """Defect 9: --wan at a server that is not a gbhub premises (here: one that answers like HTTP)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    port = srv.getsockname()[1]

    def serve():
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            conn.recv(1000)
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    try:
        wan = f"127.0.0.1:{port}"
        line = one_line(gbhub("send", "ECS17b", "--wan", wan, "--data", str(site), "--timeout", "30"), 1)
        assert wan in line and "gbhub" in line
        frame = gbhub("build", "ECS17b", "--data", str(site)).stdout.strip()
        assert wan in one_line(gbhub("send-raw", frame, "--wan", wan, "--timeout", "30"), 1)
    finally:
        srv.close()
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()
    assert "cannot connect" in one_line(gbhub("send", "ECS17b", "--wan", f"127.0.0.1:{port}", "--data", str(site)), 1)
    assert "HOST:PORT" in one_line(gbhub("send", "ECS17b", "--wan", "nowhere", "--data", str(site)), 2)


# -- parsers of outside input ---------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.one_of(
    st.text(max_size=80),
    st.builds(lambda h, t: json.dumps({"t": t, "dir": "up", "hex": h}), st.text(max_size=40), st.floats()),
    st.builds(json.dumps, st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                                       lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=4), c, max_size=3),
                                       max_leaves=8)),
))
def test_parse_frame_line_only_usage_errors(text):
    """A `decode --batch` line (frame text or trace JSON) gives bytes or a UsageError, nothing else."""
    try:
        parse_frame_line(text)
    except UsageError:
        pass


@given(st.binary(min_size=1, max_size=60), st.sampled_from(["down", "up"]))
def test_trace_line_reads_as_its_frame(frame, direction):
    line = json.dumps({"t": 1767225600.25, "dir": direction, "hex": frame.hex().upper()})
    assert parse_frame_line(line) == frame == parse_frame_line(frame.hex())


def test_send_verbose_logs_the_command(site):
    """Defect 10: `-v` logged almost nothing."""
    out = send(site, "ECS17b", "-v", "--summary")
    assert out.returncode == 0, out.stderr
    assert re.search(r"send ECS17b counter \d+ originator \w{16} recipient " + ESME, out.stderr)
    assert "ECS17b answered: ok True" in out.stderr


def test_examples_name_files_that_exist():
    """Defect 10: examples/rtds.toml named a vector file that does not exist."""
    from conftest import VECTORS, vectors_dir

    vectors_dir()
    named = [m for f in (ROOT / "examples").glob("*.toml")
             for m in re.findall(r"\$GBHUB_VECTORS/(\S+)", f.read_text())]
    assert named
    for rel in named:
        assert (VECTORS / rel.strip('"],')).exists(), rel


def test_vectors_default_outside_a_checkout_is_one_line(tmp_path):
    """Defect 10: after `pip install .` the default vectors path pointed into site-packages; it
    now fails in one line saying to set GBHUB_VECTORS. An installed copy of gbhub (no checkout
    beside it), run from a folder with no ../shared/vectors."""
    target = tmp_path / "site"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target),
                          str(ROOT)], capture_output=True, text=True, timeout=300)
    if pip.returncode != 0:
        pytest.skip(f"cannot install a copy: {pip.stderr.strip().splitlines()[-1:]}")
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    env = {k: v for k, v in ENV.items() if k != "GBHUB_VECTORS"}
    env["PYTHONPATH"] = str(target)

    def installed(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-P", "-m", "gbhub", *args], capture_output=True, text=True,
                              timeout=120, cwd=work, env=env)

    assert "GBHUB_VECTORS" in one_line(installed("bench", "codec"), 1)
    # a rig naming $GBHUB_VECTORS (before: a traceback, and a stray data folder)
    out = installed("run", str(ROOT / "examples" / "rtds.toml"), "--data", str(tmp_path / "data"), "--for", "1")
    lines = out.stderr.strip().splitlines()
    assert out.returncode != 0 and len(lines) == 1 and "GBHUB_VECTORS" in lines[0], out.stderr
    assert not (tmp_path / "data").exists()


def test_readme_next_command_after_demo_runs():
    """Defect 10: after `./dev.sh demo`, the README's next command (`gbhub send ...`) failed: gbhub
    lives in .venv, not on PATH. The README now says to run it as `./dev.sh gbhub ...`."""
    readme = (ROOT / "README.md").read_text()
    demo = readme.index("./dev.sh demo")
    assert "./dev.sh gbhub send ECS17b" in readme[demo:demo + 800]
    venv = ROOT / ".venv"
    if not (venv / "bin" / "gbhub").exists() or not (venv / ".installed").exists() \
            or (ROOT / "pyproject.toml").stat().st_mtime > (venv / ".installed").stat().st_mtime:
        pytest.skip("no set-up .venv here (./dev.sh setup makes one)")
    out = subprocess.run(["bash", str(ROOT / "dev.sh"), "gbhub", "--version"], capture_output=True, text=True,
                         timeout=120, cwd=ROOT)
    assert out.returncode == 0 and out.stdout.startswith("gbhub "), out.stderr
