"""`gbhub ctl fault gsme fail-next USE_CASE RESULT` for the GSME's reads, GCS06, GCS28 and GCS32 /
GCS39: each RTDS ERROR vector's command content, sent from our head-end to our GSME after arming
fail-next, is answered with the reference response's GBZ (or ASN.1) content: the components before
the failing one answered as usual, the failing one with the reference's status (a Read Attributes:
on the reference's attribute), each one after it "not processed" (Default Response 0xFF, FAILURE).
The references are decrypted with the RTDS keystore, ours with the premises' (`gbcs.analyse`);
RTDS publishes no GSME private key, so the content is re-framed to our GSME (as test_gas_future)."""
from __future__ import annotations

import pytest

from gbcs.analyse import analyse
from gbcs.asn1 import DeviceTimeStatus, SetTimeResponse, decode_asn1
from gbcs.catalogue import MessageCode
from gbcs.gbz import decode_gbz
from gbcs.zcl import DefaultResponse, ReadAttributesResponse, Status

from test_gas_future import _send_content, _vector

pytestmark = pytest.mark.premises(ihd=False, ppmid=False)

READ_ERRORS = ["GCS13a_4.1.1_ERROR", "GCS38_11.2_ERROR", "GCS21f_4.11.1_ERROR", "GCS21m_6.2.4_ERROR",
               "GCS16b_4.14_KRP_ERROR", "GCS15b_4.4.2_ERROR", "GCS15d_4.4.4_ERROR", "GCS16a_4.6.1_ERROR",
               "GCS17_4.8.1_ERROR"]
COMMAND_ERRORS = ["GCS06_2.5_ERROR", "GCS32_7.2_ERROR", "GCS39_7.3_ERROR"]
_ANSWERED = (Status.SUCCESS, Status.NOT_FOUND)  # a component answered as usual (with data, or none kept)


def _outcomes(frame: bytes, keystore) -> list[tuple]:
    """Per component: (cluster, "DR", command answered, status) | (cluster, "RAR", ((attribute,
    status), ...)) | (cluster, "data")."""
    a = analyse(frame, keystore)
    out = []
    for c in a.payload.components:
        p = c.payload
        assert p is not None, "an encrypted component that could not be decrypted"
        if isinstance(p, DefaultResponse):
            out.append((c.cluster_id, "DR", p.command_id_answered, p.status))
        elif isinstance(p, ReadAttributesResponse):
            out.append((c.cluster_id, "RAR", tuple((r.attribute_id, r.status) for r in p.records)))
        else:
            out.append((c.cluster_id, "data"))
    return out


def _failing(outcomes: list[tuple]) -> tuple[int, int, int]:
    """(response component index, attribute index, status) of the reference's failure."""
    for i, o in enumerate(outcomes):
        if o[1] == "DR" and o[3] not in _ANSWERED:
            return i, 0, o[3]
        if o[1] == "RAR":
            for k, (_attr, status) in enumerate(o[2]):
                if status != Status.SUCCESS:
                    return i, k, status
    raise AssertionError("the reference has no failing component")


def _rtds_frame(name: str) -> bytes:
    from conftest import rtds_rows

    return next(r["bytes"] for r in rtds_rows() if r["file"].endswith(name + "_GBCS.HEX"))


@pytest.mark.parametrize("name", READ_ERRORS + COMMAND_ERRORS)
async def test_rtds_read_and_command_error_vectors_with_fail_next(premises, rtds_keystore, name):
    gsme = premises.gsme
    reference = _vector(name + "_RESPONSE")
    expected = _outcomes(_rtds_frame(name + "_RESPONSE"), rtds_keystore)
    at, attribute, status = _failing(expected)
    command = _vector(name + "_COMMAND")
    requests = len(decode_gbz(command.content, cra=command.cra).components)
    tail = len(expected) - at  # the failing component and one per request component after it
    index = requests - tail  # ... so the failing request component (a request may have several answers: GCS21f)
    use_case = MessageCode(reference.message_code).name
    await premises.clock.advance(1800)  # a wake first: the GSME's data as usual
    before = (gsme.supply_state, dict(gsme._prepay()))
    gsme.inject_fault("fail-next", [use_case, f"{status}@{index}.{attribute}"], {})
    response, _ = await _send_content(premises, command)
    ours = _outcomes(response.encode(), premises.headend.keystore)
    assert ours[-tail:] == expected[-tail:]  # the failure and what was not processed, exactly
    assert {o[0] for o in ours[:-tail]} == {o[0] for o in expected[:-tail]}
    for mine in ours[:-tail]:  # before it: answered as usual (with data, or none kept, or not supported here)
        assert (mine[1] == "data" or (mine[1] == "DR" and mine[3] in _ANSWERED)
                or (mine[1] == "RAR" and all(s in (Status.SUCCESS, Status.UNSUPPORTED_ATTRIBUTE) for _a, s in mine[2])))
    assert bool(response.date_time) == bool(reference.date_time)
    after = (gsme.supply_state, dict(gsme._prepay()))
    assert after[0] == before[0] and after[1].get("ec_active") == before[1].get("ec_active")  # nothing executed
    # armed once: the same command is answered as usual the next time
    response, _ = await _send_content(premises, _vector(name + "_COMMAND"))
    again = _outcomes(response.encode(), premises.headend.keystore)
    assert not any((o[1] == "DR" and (o[3] == status or o[2] == 0xFF)) or (o[1] == "RAR" and status in dict(o[2]).values())
                   for o in again)


@pytest.mark.parametrize("name", ["GCS28_6.11_ERROR", "GCS28Commission_8.1.1_ERROR"])
async def test_rtds_gcs28_error_vectors_with_fail_next(premises, name):
    gsme = premises.gsme
    reference = decode_asn1(_vector(name + "_RESPONSE").content, message_code=MessageCode.GCS28, cra=2)
    assert isinstance(reference, SetTimeResponse) and reference.status == DeviceTimeStatus.UNRELIABLE
    offset = gsme.nvm.get("meter", "clock_offset")
    gsme.inject_fault("fail-next", ["GCS28", reference.status.name.lower()], {})
    response, _ = await _send_content(premises, _vector(name + "_COMMAND"))
    ours = decode_asn1(response.content, message_code=MessageCode.GCS28, cra=2)
    assert isinstance(ours, SetTimeResponse) and ours.status == reference.status
    assert abs(ours.device_time.timestamp() - gsme.device_now()) < 60
    assert gsme.nvm.get("meter", "clock_offset") == offset  # the clock was not set


async def test_fail_next_read_results_are_checked(premises):
    gsme = premises.gsme
    for bad in ("melted", "failure@", "failure@x", "failure@1.y", "failure@.1"):
        with pytest.raises(ValueError):
            gsme.inject_fault("fail-next", ["GCS13a", bad], {})
    with pytest.raises(ValueError):
        gsme.inject_fault("fail-next", ["GCS28", "late"], {})
    assert gsme.inject_fault("fail-next", ["GCS13a", "hardware-failure@0.2"], {})["use_case"] == "GCS13a"
