"""Future-dated gas commands on the sleepy GSME (`meter.gsme` "Future-dated commands",
`firmware.future`): answered at once, held in NVM, executed at the time with their FDA (0x00CD,
0x8F66) to the originator, cancelled by the "never" time, surviving a restart; the GPF's mirror
takes the change from the FDA's tap-off, not when the command was queued."""
from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from gbcs.catalogue import AlertCode, MessageCode
from gbcs.frame import decode_message
from gbcs.gbz import FutureDatedAlertData, decode_gbz

WAKE = 1800
FDA = AlertCode.FUTURE_DATE_HAN_INTERFACE_COMMAND_SUCCESSFULLY_ACTIONED
pytestmark = pytest.mark.premises(ihd=False, ppmid=False)


async def _send_at_wake(premises, use_case, **params):
    task = asyncio.ensure_future(premises.send(use_case, to="gsme", **params))
    await premises.clock.advance(1)
    premises.gsme.press()
    for _ in range(20):
        await premises.clock.advance(1)
        if task.done():
            break
    return await task


def _fdas(premises, since=0):
    return [a for a in premises.headend.received_alerts[since:] if a.message.message_code == MessageCode.FDA_ZigBee]


def _when(premises, seconds):
    return dt.datetime.fromtimestamp(int(premises.clock.now() + seconds), dt.timezone.utc)


async def test_future_dated_tariff_is_held_then_applied_with_one_fda_per_timed_component(premises):
    gsme = premises.gsme
    price = gsme.unit_price_pence(1)
    reply = await _send_at_wake(premises, "GCS01a", execution_date_time=_when(premises, 3 * 3600))
    assert reply.ok
    assert len(gsme.pending_future_dated()) >= 3
    assert gsme.unit_price_pence(1) == pytest.approx(price)
    await premises.clock.advance(2 * 3600)
    assert not _fdas(premises)
    await premises.clock.advance(3600 + 60)
    fdas = _fdas(premises)
    assert fdas and all(a.code == FDA and a.critical for a in fdas)
    bodies = [decode_gbz(a.message.content, cra=a.message.cra, message_code=a.message.message_code).body for a in fdas]
    assert all(isinstance(b, FutureDatedAlertData) and b.message_code == MessageCode.GCS01a
               and b.originator_counter == reply.reply.message.originator_counter for b in bodies)
    assert not gsme.pending_future_dated()
    assert gsme.unit_price_pence(1) != pytest.approx(price)


# -- the RTDS FUTURE_DATED / CANCELLATION / IMMEDIATE gas vectors ---------------------------------
# The RTDS GSME (00DB1234567890A1) has no published KA private key, so its commands cannot be
# verified by an emulated GSME as they stand: their GBZ content is sent unchanged, in a frame the
# head-end builds for our GSME; responses and FDA alerts are compared with the references.
RTDS_DUE = dt.datetime(2030, 1, 15, 9, 0, tzinfo=dt.timezone.utc)  # the vectors' execution time


def _vector(name: str):
    from conftest import rtds_rows

    rows = [r for r in rtds_rows() if r["file"].endswith(name + "_GBCS.HEX")]
    if not rows:
        pytest.skip("RTDS vectors not available")
    return decode_message(rows[0]["bytes"])


async def _send_content(premises, reference, *, timeout=30.0):
    """`reference`'s content, in a command from our head-end to our GSME, fetched at a button wake."""
    from gbcs import catalogue

    he = premises.headend
    counter = he.next_counter()
    _, frame = he.build_command(recipient=premises.gsme.eui, message_code=reference.message_code,
                                content=reference.content, critical=catalogue.is_critical_command(reference.message_code),
                                counter=counter)
    task = asyncio.ensure_future(he.send_raw(frame, timeout=timeout))
    await premises.clock.advance(1)
    premises.gsme.press()
    for _ in range(20):
        await premises.clock.advance(1)
        if task.done():
            break
    return decode_message(await task), counter


def _rtds_fda_bodies(folder: str, names: tuple[str, ...], counter: int):
    """The reference FDAs' (alert code, time, body) with the command's counter replaced by ours."""
    import dataclasses

    out = []
    for n in names:
        ref = _vector(f"{folder}8F66_{n}")
        alert = decode_gbz(ref.content, cra=ref.cra, message_code=ref.message_code)
        out.append((alert.alert_code, alert.timestamp, dataclasses.replace(alert.body, originator_counter=counter)))
    return sorted(out, key=repr)


def _our_fda_bodies(premises, since=0):
    out = []
    for a in _fdas(premises, since):
        alert = decode_gbz(a.message.content, cra=a.message.cra, message_code=a.message.message_code)
        out.append((alert.alert_code, alert.timestamp, alert.body))
    return sorted(out, key=repr)


_GCS01A = "GCS01a_1.1.1_"
_GCS01A_FDAS = tuple(f"FUTURE_DATED_BLOCK_SUCCESS_ALERT_{n}" for n in
                     ("PUBLISH_CALENDAR", "PUBLISH_SPECIAL_DAYS", "PUBLISH_TARIFF_INFORMATION", "PUBLISH_BLOCK_THRESHOLDS",
                      "PUBLISH_PRICE_MATRIX"))
_GCS05 = "GCS05_2.1_"
_GCS05_FDAS = tuple(f"FUTURE_DATED_SUCCESS_ALERT_{n}" for n in
                    ("EMERGENCY_CREDIT_SETUP", "SET_OVERALL_DEBT_CAP", "SET_LOW_CREDIT_WARNING_LEVEL",
                     "SET_MAXIMUM_CREDIT_LIMIT", "PUBLISH_CALENDAR", "PUBLISH_SPECIAL_DAYS"))


@pytest.mark.premises(ihd=False, ppmid=False, start=(RTDS_DUE - dt.timedelta(hours=2)).isoformat())
@pytest.mark.parametrize("folder, command, fdas", [
    (_GCS01A, "FUTURE_DATED_BLOCK_SUCCESS", _GCS01A_FDAS),
    (_GCS05, "FUTURE_DATED_SUCCESS", _GCS05_FDAS),
])
async def test_rtds_future_dated_then_fda_alerts_like_the_reference(premises, folder, command, fdas):
    from test_gas import _shape

    reference = _vector(folder + command + "_RESPONSE")
    response, counter = await _send_content(premises, _vector(folder + command + "_COMMAND"))
    assert _shape(response.content) == _shape(reference.content)
    assert bool(response.date_time) == bool(reference.date_time)
    assert len(premises.gsme.pending_future_dated()) == len(fdas)
    await premises.clock.advance((RTDS_DUE.timestamp() - premises.clock.now()) - 60)
    assert not _fdas(premises)
    await premises.clock.advance(120)
    assert _our_fda_bodies(premises) == _rtds_fda_bodies(folder, fdas, counter)
    assert not premises.gsme.pending_future_dated()


@pytest.mark.premises(ihd=False, ppmid=False, start=(RTDS_DUE - dt.timedelta(hours=2)).isoformat())
@pytest.mark.parametrize("folder, future, cancel", [
    (_GCS01A, "FUTURE_DATED_BLOCK_SUCCESS", "CANCELLATION_BLOCK_SUCCESS"),
    (_GCS05, "FUTURE_DATED_SUCCESS", "CANCELLATION_SUCCESS"),
])
async def test_rtds_cancellation(premises, folder, future, cancel):
    from test_gas import _shape

    gsme = premises.gsme
    before = dict(gsme.data.get("gas")), dict(gsme.data.get("prepayment"))
    await _send_content(premises, _vector(folder + future + "_COMMAND"))
    assert gsme.pending_future_dated()
    reference = _vector(folder + cancel + "_RESPONSE")
    response, _ = await _send_content(premises, _vector(folder + cancel + "_COMMAND"))
    assert _shape(response.content) == _shape(reference.content)
    assert not gsme.pending_future_dated()
    await premises.clock.advance(3 * 3600)
    assert not _fdas(premises)
    assert gsme.data.get("gas")["price"] == before[0]["price"]
    assert gsme.data.get("prepayment").get("max_credit") == before[1].get("max_credit")


@pytest.mark.premises(ihd=False, ppmid=False, start=(RTDS_DUE - dt.timedelta(hours=2)).isoformat())
@pytest.mark.parametrize("name", ["GCS01a_1.1.1_IMMEDIATE_TOU_SUCCESS", "GCS05_2.1_IMMEDIATE_SUCCESS"])
async def test_rtds_immediate_executes_at_once(premises, name):
    from test_gas import _shape

    reference = _vector(name + "_RESPONSE")
    response, _ = await _send_content(premises, _vector(name + "_COMMAND"))
    assert _shape(response.content) == _shape(reference.content)
    assert not premises.gsme.pending_future_dated()
    assert not _fdas(premises)


async def test_the_gpf_mirror_changes_at_the_fda_not_when_the_command_was_answered(premises):
    gsme, gpf = premises.gsme, premises.gpf
    await premises.clock.advance(WAKE)  # a first push
    price = gpf.mirror(gsme.eui).get("gas")["price"]
    reply = await _send_at_wake(premises, "GCS01a", tou_prices=[12345], execution_date_time=_when(premises, 3 * 3600))
    assert reply.ok
    await premises.clock.advance(WAKE)  # tap-off of the response, and another push: still the old price
    assert gpf.mirror(gsme.eui).get("gas")["price"] == price
    assert gpf.held_future_dated()
    await premises.clock.advance(3 * 3600)
    assert _fdas(premises)
    assert gpf.mirror(gsme.eui).get("gas")["price"] == pytest.approx(12.345)
    assert not gpf.held_future_dated()
    assert any(e.get("future_dated") == "8F66" for e in gpf.event_log())


async def test_held_instructions_survive_a_restart_and_run_at_their_time(premises_factory, tmp_path):
    start = dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc)
    p = await premises_factory(tmp_path / "site", start=start, ihd=False, ppmid=False)
    reply = await _send_at_wake(p, "GCS05", max_credit=12300000, execution_date_time=start + dt.timedelta(hours=5))
    assert reply.ok and p.gsme.pending_future_dated()
    await p.stop()
    p = await premises_factory(tmp_path / "site", start=start, ihd=False, ppmid=False)
    try:
        assert len(p.gsme.pending_future_dated()) == 6  # in NVM across the restart
        await p.clock.advance(5 * 3600 + 60)
        assert len(_fdas(p)) == 6
        assert p.gsme.data.get("prepayment")["max_credit"] == pytest.approx(12300)
    finally:
        await p.stop()


@pytest.mark.premises(ihd=False, ppmid=False, devices=())
async def test_future_dated_wake_mode_runs_at_the_first_wake_after_its_time(premises):
    gsme = premises.gsme
    gsme.future_dated = "wake"
    reply = await _send_at_wake(premises, "GCS03", execution_date_time=_when(premises, 600))
    assert reply.ok and gsme.pending_future_dated()
    gsme.inject_fault("asleep", [], {})
    await premises.clock.advance(3 * WAKE)
    assert gsme.pending_future_dated() and not _fdas(premises)  # asleep: held
    gsme.press()
    await premises.clock.advance(5)
    assert not gsme.pending_future_dated() and len(_fdas(premises)) == 1
    assert gsme.payment_mode == "prepayment"


async def test_times_within_one_command_must_agree(premises):
    """GB081: a command with two different execution times is refused (0x8F1E) and nothing is held."""
    import dataclasses
    from types import SimpleNamespace

    from gbcs.gbz import GbzPayload
    from gbcs.usecases import build_content
    from gbhub.wan.headend import CommandRejected

    content = build_content("GCS05", 1, now=premises.headend.utcnow(), execution_date_time=_when(premises, 3600))
    comps = list(decode_gbz(content, cra=1).components)
    comps[2] = dataclasses.replace(comps[2], from_date_time=comps[2].from_date_time + 60)
    command = SimpleNamespace(message_code=MessageCode.GCS05, content=GbzPayload.build(comps).encode())
    with pytest.raises(CommandRejected) as err:
        await _send_content(premises, command)
    assert err.value.code == AlertCode.INTEGRITY_CHECK_OF_CONTENT_OR_FORMAT_OF_COMMAND_FAILED
    assert not premises.gsme.pending_future_dated()


# -- the RTDS ERROR variants: `fail-next USE_CASE STATUS@INDEX` answers like the reference -----------
def _statuses(content: bytes) -> list[tuple[int, int, int]]:
    return [(c.cluster_id, c.payload.command_id_answered, c.payload.status)
            for c in decode_gbz(content, cra=2).components]


@pytest.mark.premises(ihd=False, ppmid=False, start=(RTDS_DUE - dt.timedelta(hours=2)).isoformat())
@pytest.mark.parametrize("name", ["GCS01a_1.1.1_FUTURE_DATED_BLOCK_ERROR", "GCS05_2.1_FUTURE_DATED_ERROR",
                                  "GCS04_2.3_ERROR", "GCS24a_6.7_ERROR", "GCS25a_6.8_ERROR", "GCS40a_1.5_ERROR"])
async def test_rtds_error_vectors_with_fail_next(premises, name):
    gsme = premises.gsme
    reference = _vector(name + "_RESPONSE")
    expected = _statuses(reference.content)
    index = next(i for i, (_, _, status) in enumerate(expected) if status)
    use_case = MessageCode(reference.message_code).name
    before = _settings(gsme)
    gsme.inject_fault("fail-next", [use_case, f"hardware-failure@{index}"], {})
    response, _ = await _send_content(premises, _vector(name + "_COMMAND"))
    assert _statuses(response.content) == expected
    assert bool(response.date_time) == bool(reference.date_time)
    assert not gsme.pending_future_dated()
    assert _settings(gsme) == before  # nothing executed


def _settings(gsme):
    """What the ERROR vectors' commands would change (not the battery or credit that time spends)."""
    gas = {k: v for k, v in gsme.data.get("gas").items() if k != "battery"}
    prepay = {k: v for k, v in gsme.data.get("prepayment").items() if k not in ("credit", "total_added")}
    return gas, prepay


async def test_fail_next_refuses_a_bad_zcl_status(premises):
    with pytest.raises(ValueError):
        premises.gsme.inject_fault("fail-next", ["GCS01a", "melted"], {})
    with pytest.raises(ValueError):
        premises.gsme.inject_fault("fail-next", ["GCS01a", "failure@x"], {})


def test_sigkill_after_the_answer_keeps_the_held_instruction_which_runs_after_the_restart(tmp_path):
    """`gbhub run` in a child process: a future-dated GCS01a answered (so held in the GSME's NVM),
    then SIGKILL; after the restart the instruction is still held, runs at its time, and the GPF's
    mirror takes the new price from its FDA."""
    import json
    import time

    from test_cli_run import Running, gbhub

    from gbhub.firmware.future import PENDING_NS
    from gbhub.firmware.gas_data import NS
    from gbhub.firmware.nvm import Nvm

    data = tmp_path / "site"
    run = Running("--data", str(data))
    due = time.time() + 25
    when = dt.datetime.fromtimestamp(int(due), dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    try:
        out = gbhub("send", "GCS01a", f"execution_date_time={when}", "tou_prices=12345", "--wake", "--data", str(data),
                    "--summary", "--timeout", "10")
        assert out.returncode == 0, out.stdout + out.stderr
    finally:
        run.kill()
    devices = json.loads((data / "premises.json").read_text())["devices"]

    def state():
        nvm = Nvm(data / "nvm.sqlite")
        try:
            gsme, gpf = nvm.scope(devices["gsme"]), nvm.scope(devices["gpf"])
            return (dict(gsme.items(PENDING_NS)), gsme.get(NS, "gas")["price"],
                    gpf.scope("mirror-" + devices["gsme"]).get(NS, "gas")["price"])
        finally:
            nvm.close()

    pending, price, mirrored = state()
    assert pending and all(e["action"] == "gbz" for e in pending.values())
    assert price != pytest.approx(12.345) and mirrored != pytest.approx(12.345)
    run = Running("--data", str(data))
    try:
        time.sleep(max(0.0, due - time.time()) + 8)
    finally:
        assert run.stop() == 0
    pending, price, mirrored = state()
    assert not pending
    assert price == pytest.approx(12.345) and mirrored == pytest.approx(12.345)
