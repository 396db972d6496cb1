"""`fail-next`: the DCC's ERROR vectors, sent unchanged to a fresh RTDS rig after arming fail-next
with the result the reference device gave, are answered with a response of the same shape (message
code, counter, result codes, data types) as the reference ERROR RESPONSE."""
from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest

from conftest import rtds_rows, vectors_dir
from gbcs.dlms import AccessResponse
from gbcs.frame import decode_message
from gbcs.payload import decode_payload

ESME = "00DB1234567890A0"


def _error_commands() -> list[tuple[dict, dict]]:
    from gbhub.meter import Esme

    served = {h.message_code.name for h in Esme.HANDLERS.values()}
    rows = rtds_rows()
    by_file = {r["file"]: r for r in rows}
    out = []
    for r in rows:
        name = r["file"].split("/")[-1]
        if "ERROR_COMMAND" not in name or "FUTURE_DATED" in name or r["recipient"] != ESME:
            continue
        response = by_file.get(r["file"].replace("_COMMAND_", "_RESPONSE_"))
        if response is None:
            continue
        uc = decode_message(r["bytes"]).message_code
        from gbcs.catalogue import MessageCode

        expected = decode_payload(decode_message(response["bytes"]))
        if not isinstance(expected, AccessResponse) and not hasattr(expected, "code"):
            continue  # CS02b/CS02g outcomes, per replacement: tests/test_credentials_rtds.py

        try:
            if MessageCode(uc).name in served:
                out.append((r, response))
        except ValueError:
            continue
    return out


ERRORS = _error_commands()


def _result_of(reference) -> str:
    """The RESULT that makes fail-next answer like `reference` (a decoded response payload)."""
    if isinstance(reference, AccessResponse):
        return ",".join(str(r.result) for r in reference.results)
    return str(int(reference.code))


def _shape(payload):
    if isinstance(payload, AccessResponse):
        return ("dlms", tuple((r.kind, r.result) for r in payload.results), tuple(d.type for d in payload.data))
    return (type(payload).__name__, int(payload.code))


@pytest.fixture(scope="module")
def rtds_rig(tmp_path_factory):
    vectors_dir()
    from gbhub.tools.premises import ensure_keys
    from gbhub.tools.rig import load_rig

    rig = load_rig(Path(__file__).resolve().parent.parent / "examples" / "rtds.toml")
    rig.data = tmp_path_factory.mktemp("rtds")
    return rig, ensure_keys(rig)


def test_error_vectors_found():
    if not rtds_rows():
        pytest.skip("no RTDS vectors")
    assert len(ERRORS) >= 10


@pytest.mark.parametrize("command,reference", ERRORS, ids=lambda r: r["file"].split("/")[-1] if isinstance(r, dict) else "")
async def test_error_vector_with_fail_next(command, reference, rtds_rig):
    from gbcs.catalogue import MessageCode
    from gbhub.tools.premises import Premises

    rig, identity = rtds_rig
    rig = dataclasses.replace(rig, data=None, clock="sim",
                              start=dt.datetime(2015, 1, 1, 0, 0, 5, tzinfo=dt.timezone.utc).timestamp())  # inside ECS70's window
    p = Premises(rig, tcp=True, sim=True, identity=identity)
    await p.start()
    try:
        sent = decode_message(command["bytes"])
        expected = decode_message(reference["bytes"])
        expected_payload = decode_payload(expected)
        p.esme.inject_fault("fail-next", [MessageCode(sent.message_code).name, _result_of(expected_payload)], {})
        response = decode_message(await p.headend.send_raw(command["bytes"], timeout=5))
        assert response.message_code == expected.message_code
        assert response.originator_counter == sent.originator_counter
        got = decode_payload(response)
        if isinstance(expected_payload, AccessResponse) and any(r.result == 0 for r in expected_payload.results):
            # requests the reference device served: same results, data types at the top level
            assert _shape(got)[:2] == _shape(expected_payload)[:2]
            for e, g, r in zip(expected_payload.data, got.data, expected_payload.results):
                if r.result != 0:
                    assert g.type == e.type
        else:
            assert _shape(got) == _shape(expected_payload)
    finally:
        await p.stop()
