"""`gbhub decode` as a user runs it: a real subprocess of the installed console script's module."""
from __future__ import annotations

import base64
import json
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import VECTORS, rtds_rows, vectors_dir
from gbhub.tools.inputs import UsageError, parse_frame_text

ROWS = rtds_rows()


def gbhub(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gbhub", *args], input=stdin, capture_output=True, timeout=120
    )


def _keys():
    return ["--keys", str(VECTORS / "keys" / "rtds"), "--keys", str(VECTORS / "keys" / "device-test")]


def _row(kind: str, folder: str):
    vectors_dir()
    return next(r for r in ROWS if r["file"].startswith(folder) and kind in r["file"])


def test_decode_json_fields():
    row = _row("SUCCESS_RESPONSE", "4.1.1_ECS17b")
    out = gbhub("decode", row["bytes"].hex(), *_keys())
    assert out.returncode == 0, out.stderr
    obj = json.loads(out.stdout)
    for key in ("frame", "cra", "message_code", "use_case", "originator_counter", "originator", "recipient",
                "date_time", "mac", "signature", "encrypted", "payload"):
        assert key in obj
    assert obj["message_code"] == "0027" and obj["use_case"] == "ECS17b"
    assert obj["cra"] == "response" and obj["mac"] == "valid" and obj["signature"] == "empty"
    assert obj["originator_counter"] == int(row["originatorCounter"])


def test_decode_base64_colons_file_and_stdin(tmp_path):
    row = _row("SUCCESS_COMMAND", "7.1_ECS42")
    data = row["bytes"]
    b64 = gbhub("decode", base64.b64encode(data).decode(), *_keys())
    colons = gbhub("decode", ":".join(f"{b:02x}" for b in data), *_keys())
    f = tmp_path / "frame.hex"
    f.write_text(" ".join(f"{b:02X}" for b in data) + "\n")
    at_file = gbhub("decode", f"@{f}", *_keys())
    stdin = gbhub("decode", *_keys(), stdin=data.hex().encode())
    results = [json.loads(p.stdout) for p in (b64, colons, at_file, stdin)]
    assert all(r == results[0] for r in results)
    assert results[0]["mac"] == "valid" and results[0]["signature"] == "valid"


def test_decode_tree_shows_fields_bytes_meaning():
    row = _row("SUCCESS_COMMAND", "7.1_ECS42")
    out = gbhub("decode", row["bytes"].hex(), "--tree", *_keys())
    assert out.returncode == 0
    text = out.stdout.decode()
    assert "message_code  [004F]" in text
    assert "ECDSA P-256 r||s: valid" in text
    assert "GMAC, 12 bytes: valid" in text


def test_decode_parse_error_exit_2_one_line():
    out = gbhub("decode", "DF0904" + "00" * 40)
    assert out.returncode == 2
    err = out.stderr.decode().strip().splitlines()
    assert len(err) == 1 and "offset 2 (cra)" in err[0]
    bad = gbhub("decode", "not hex at all!")
    assert bad.returncode == 2 and "neither hex nor base64" in bad.stderr.decode()
    missing = gbhub("decode", "DF", "--keys", "/nonexistent/keys")
    assert missing.returncode == 2 and "key folder not found" in missing.stderr.decode()


def test_batch_one_object_per_line_bad_lines_in_place():
    vectors_dir()
    lines = [r["bytes"].hex() for r in ROWS[:50]]
    lines.insert(10, "DEADBEEF")
    lines.insert(20, "zz")
    out = gbhub("decode", "--batch", *_keys(), stdin=("\n".join(lines) + "\n").encode())
    assert out.returncode == 2  # some lines were bad
    objs = [json.loads(l) for l in out.stdout.decode().splitlines()]
    assert len(objs) == 52
    assert "error" in objs[10] and objs[10]["line"] == 11
    assert "error" in objs[20] and objs[20]["line"] == 21
    good = [o for o in objs if "error" not in o]
    assert len(good) == 50 and all(o["message_code"] for o in good)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_parse_frame_text_only_usage_errors(text):
    try:
        parse_frame_text(text)
    except UsageError:
        pass


def test_bench_decode_runs_the_batch_over_the_rtds_set_whole_process(monkeypatch):
    """`gbhub bench decode` (short form): our whole-process figures, and the DCC parser's only
    when it is there (`GBHUB_DCC_PARSER`); here it is not, and the figures say why."""
    import argparse

    from gbcs.codec import jsonable
    from gbhub.tools.bench_decode import decode

    vectors_dir()
    monkeypatch.delenv("GBHUB_DCC_PARSER", raising=False)
    out = decode(argparse.Namespace(vectors=str(VECTORS)), True, lambda s: None)  # the registry is left alone
    assert out["messages"] == 2 * len(list((VECTORS / "rtds").rglob("*.HEX"))) > 0
    assert out["ours_s"] > 0 and out["ours_cpu_s"] > 0 and out["ours_per_s"] > 0
    assert "ratio" not in out and out["dcc"].startswith(("GBHUB_DCC_PARSER", "node"))
    # the per-type JSON conversion the batch relies on keeps its rules
    assert jsonable({1: [b"\x01\xab", (True, None)]}) == {"1": ["01AB", [True, None]]}


def _parse_frame_text_reference(text: str) -> bytes:
    """parse_frame_text as written before its plain-hex fast path."""
    import binascii

    compact = "".join(text.split())
    if not compact:
        raise UsageError("empty input")
    hexish = compact.replace(":", "").replace("-", "")
    if hexish and set(hexish) <= set("0123456789abcdefABCDEF"):
        if len(hexish) % 2:
            raise UsageError(f"odd number of hex digits ({len(hexish)})")
        return bytes.fromhex(hexish)
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise UsageError("input is neither hex nor base64") from None


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.text(alphabet="0123456789abcdefABCDEF \t\n\r\x0b\x0c\u00a0\u2003:-=+/xyZ", max_size=40),
                 st.binary(max_size=20).map(lambda b: " ".join(f"{x:02x}" for x in b)),
                 st.binary(max_size=20).map(lambda b: base64.b64encode(b).decode())))
def test_parse_frame_text_fast_path_as_before(text):
    try:
        want = _parse_frame_text_reference(text)
    except UsageError as exc:
        with pytest.raises(UsageError) as got:
            parse_frame_text(text)
        assert str(got.value) == str(exc)
    else:
        assert parse_frame_text(text) == want


def test_batch_workers_on_stdin_and_file_give_one_process_output(tmp_path):
    """Workers decode inherited line ranges (a file) or lines sent to them (stdin): both give what
    one process gives, across chunk boundaries, with blank, comment and bad lines in place."""
    vectors_dir()
    lines = []
    for i, r in enumerate(ROWS[:300]):
        lines.append(r["bytes"].hex())
        if i % 97 == 0:
            lines += ["", "# comment", "zz", "DF09é"]
    path = tmp_path / "batch.txt"
    path.write_text("\n".join(lines) + "\n")
    one = gbhub("decode", "--batch", f"@{path}", *_keys(), "--jobs", "1")
    file2 = gbhub("decode", "--batch", f"@{path}", *_keys(), "--jobs", "2")
    stdin2 = gbhub("decode", "--batch", *_keys(), "--jobs", "2", stdin=path.read_bytes())
    assert one.returncode == file2.returncode == stdin2.returncode == 2
    assert one.stdout == file2.stdout == stdin2.stdout
    assert len(one.stdout.splitlines()) == len([t for t in lines if t and not t.startswith("#")])


_JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.integers(min_value=2**63), st.integers(max_value=-2**63 - 1),
              st.floats(allow_nan=False, allow_infinity=False), st.text()),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(), inner, max_size=4)),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(_JSON)
def test_batch_line_encoder_writes_the_value(value):
    """Each batch line is one compact JSON text of exactly the value, whatever orjson refuses
    (integers beyond 64 bits) included, UTF-8, one newline at the end."""
    from gbhub.tools.decode import _line_encoder

    line = _line_encoder()(value)
    assert line.endswith(b"\n") and b"\n" not in line[:-1]
    assert json.loads(line) == value


def test_batch_says_so_when_a_worker_dies(tmp_path):
    """A worker killed mid-batch: one line on stderr, exit 1, output stops before its lines, no hang."""
    import os
    import signal
    import time

    vectors_dir()
    lines = [r["bytes"].hex() for r in ROWS] * 20
    path = tmp_path / "big.txt"
    path.write_text("\n".join(lines) + "\n")
    proc = subprocess.Popen([sys.executable, "-m", "gbhub", "decode", "--batch", f"@{path}", *_keys(), "--jobs", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    children = f"/proc/{proc.pid}/task/{proc.pid}/children"
    deadline = time.monotonic() + 60
    worker = None
    while worker is None and time.monotonic() < deadline and proc.poll() is None:
        try:
            with open(children) as f:
                pids = f.read().split()
        except FileNotFoundError:
            pids = []
        worker = int(pids[0]) if pids else None
        time.sleep(0.01)
    if worker is None:
        proc.kill()
        pytest.skip("no worker process seen (finished first, or no /proc)")
    os.kill(worker, signal.SIGKILL)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    assert err.decode().count("\n") == 1 and "worker stopped" in err.decode()
    assert len(out.splitlines()) < len(lines)
    assert [json.loads(line)["line"] for line in out.splitlines()] == list(range(1, len(out.splitlines()) + 1))
