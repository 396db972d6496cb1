"""The RTDS acceptance test of the ESME: every ESME COMMAND vector in ../shared/vectors/rtds, sent
unchanged (the head-end's raw send) to a fresh RTDS rig (examples/rtds.toml; fresh because the
vectors reuse counters), is answered like the reference device: the same response message code,
the counter echoed, a valid MAC (or signature: verified with the DS key gbhub made for the RTDS
ESME, RTDS publishes none), and a payload of the same shape as the reference RESPONSE (same result
codes, same data types and structure, decrypted where encrypted; values and array lengths may
differ).

The reference device answered single-element, twin-element and polyphase commands alike; the rig
runs the twin-polyphase variant for `TWIN_` vectors and the single-element polyphase variant for
the others, whose reference responses have single-element shapes.

Not here: ERROR variants (reproduced with `gbhub ctl fault ... fail-next`, issue 9 part 6), CS02*
(security credentials) and CS06 (firmware activation), which other parts of issue 9 build.
"""
from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from conftest import VECTORS, rtds_rows, vectors_dir
from gbcs.analyse import analyse
from gbcs.dlms import AccessResponse, Data, DataType, decode_compact_array
from gbcs.frame import decode_message

ACB = bytes.fromhex("90B3D51F30000002")
START = dt.datetime(2015, 1, 1, tzinfo=dt.timezone.utc)  # inside the RTDS ECS70 clock windows
ESME = "00DB1234567890A0"
OTHER_PARTS = ("CS02", "CS06")  # use cases other parts of issue 9 build


def _esme_commands() -> list[dict]:
    rows = rtds_rows()
    responses = {r["file"] for r in rows}
    out = []
    for r in rows:
        name = r["file"].split("/")[-1]
        uc = r["file"].split("/")[0].split("_", 1)[1]
        if (r.get("cra") != "Command" or r.get("recipient") != ESME or "_COMMAND_" not in name
                or "ERROR" in name or uc.startswith(OTHER_PARTS)):
            continue
        if r["file"].replace("_COMMAND_", "_RESPONSE_") in responses:
            out.append(r)
    return out


COMMANDS = _esme_commands()


def shape(d: Data | None):
    """A value's shape: types and structure, not values nor array lengths."""
    if d is None:
        return None
    t = d.type
    if t is DataType.STRUCTURE:
        return ("structure", tuple(shape(x) for x in d.value))
    if t is DataType.ARRAY:
        return ("array", shape(d.value[0]) if d.value else None)
    if t is DataType.COMPACT_ARRAY:
        rows = decode_compact_array(d)
        return ("compact-array", bytes(d.value)[:_desc_len(d)].hex(), shape(rows[0]) if rows else None)
    return t.name


def _desc_len(d: Data) -> int:
    from gbcs.dlms import _skip_type_description

    raw = bytes(d.value)
    return _skip_type_description(raw, 0, len(raw), 0)


def same_shape(ours, theirs) -> bool:
    if ours == theirs:
        return True
    if isinstance(ours, tuple) and isinstance(theirs, tuple) and ours[0] == theirs[0]:
        if ours[0] == "array":
            return ours[1] is None or theirs[1] is None or same_shape(ours[1], theirs[1])
        if ours[0] == "compact-array":
            return ours[1] == theirs[1]
        if ours[0] == "structure":
            return len(ours[1]) == len(theirs[1]) and all(same_shape(a, b) for a, b in zip(ours[1], theirs[1]))
    return False


def payload_shape(verdict) -> object:
    p = verdict.payload
    if isinstance(p, AccessResponse):
        plain = {x.index: x.plaintext for x in p.protected}
        return [(res.result, shape(plain.get(i, d))) for i, (d, res) in enumerate(zip(p.data, p.results))]
    return type(p).__name__


@pytest.fixture(scope="module")
def rtds_identity(tmp_path_factory):
    vectors_dir()
    from pathlib import Path

    from gbhub.tools.premises import ensure_keys
    from gbhub.tools.rig import load_rig

    rig = load_rig(Path(__file__).resolve().parent.parent / "examples" / "rtds.toml")
    rig.data = tmp_path_factory.mktemp("rtds-esme")
    return rig, ensure_keys(rig)


@pytest.fixture(scope="module")
def own_keystore(rtds_identity):
    from gbhub.tools.keys import load_keystore

    rig, _ = rtds_identity
    return load_keystore(VECTORS / "keys" / "rtds", VECTORS / "keys" / "device-test", rig.data / "keys")


def variant_for(file: str) -> str:
    return "twin-polyphase" if "_TWIN_" in file else "polyphase"


@pytest.mark.parametrize("row", COMMANDS, ids=lambda r: r["file"].split("/")[-1].replace("_COMMAND_GBCS.HEX", ""))
async def test_rtds_esme_command_answered_like_the_reference(row, rtds_identity, rtds_keystore, own_keystore):
    from gbhub.tools.premises import Premises

    rig, identity = rtds_identity
    devices = [dataclasses.replace(d, options={**d.options, "variant": variant_for(row["file"])}) if d.type == "esme" else d
               for d in rig.devices]
    rig = dataclasses.replace(rig, data=None, clock="sim", devices=devices,
                              start=START.timestamp())
    reference = next(r for r in rtds_rows() if r["file"] == row["file"].replace("_COMMAND_", "_RESPONSE_"))
    p = Premises(rig, tcp=True, sim=True, identity=identity)
    await p.start()
    try:
        command = decode_message(row["bytes"])
        response = await p.headend.send_raw(row["bytes"], timeout=5)
    finally:
        await p.stop()
    ours = analyse(response, own_keystore, ACB)
    theirs = analyse(reference["bytes"], rtds_keystore, ACB)
    msg = decode_message(response)
    assert f"{msg.message_code:04X}" == reference["messageCode"]
    assert msg.originator_counter == command.originator_counter
    if msg.mac is not None:
        assert ours.mac == "valid"
        assert analyse(response, rtds_keystore, ACB).mac == "valid"  # RTDS ESME KA x supplier KA
    else:
        assert ours.signature == "valid"  # the DS key gbhub made for the RTDS ESME
    assert ours.encrypted in ("none", "decrypted") and theirs.encrypted in ("none", "decrypted")
    got, want = payload_shape(ours), payload_shape(theirs)
    if isinstance(want, list):
        assert [r for r, _ in got] == [r for r, _ in want], "result codes"
        for i, ((_, a), (_, b)) in enumerate(zip(got, want)):
            assert same_shape(a, b), f"item {i}: {a} != {b}"
    else:
        assert got == want


def test_acceptance_covers_the_esme_vectors():
    """Every ESME use case with a SUCCESS vector is in the acceptance test (skips without vectors)."""
    vectors_dir()
    use_cases = {r["file"].split("/")[0].split("_", 1)[1] for r in COMMANDS}
    assert len(use_cases) >= 50, sorted(use_cases)
