"""Shared test helpers: where the DCC reference vectors are (skip cleanly when absent)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

# The composition root registers the device types in their canonical order (hub functions, then
# meters and displays); a test module that imports one device package first must not change it.
import gbhub.tools.rig  # noqa: E402,F401

ROOT = Path(__file__).resolve().parent.parent
VECTORS = Path(os.environ.get("GBHUB_VECTORS", ROOT.parent / "shared" / "vectors"))


def vectors_dir() -> Path:
    if not (VECTORS / "rtds" / "expected.jsonl").is_file():
        pytest.skip(f"RTDS vectors not found at {VECTORS} (set GBHUB_VECTORS)")
    return VECTORS


def rtds_rows() -> list[dict]:
    """expected.jsonl rows, each with 'bytes' added; [] when the vectors are absent."""
    path = VECTORS / "rtds" / "expected.jsonl"
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        row = json.loads(line)
        row["bytes"] = bytes.fromhex((VECTORS / "rtds" / row["file"]).read_text().strip())
        rows.append(row)
    return rows


@pytest.fixture(scope="session")
def rtds():
    vectors_dir()
    return rtds_rows()


@pytest.fixture(scope="session")
def rtds_keystore():
    from gbhub.tools.keys import load_keystore

    base = vectors_dir()
    return load_keystore(base / "keys" / "rtds", base / "keys" / "device-test")
