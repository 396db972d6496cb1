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
