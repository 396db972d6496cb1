"""Gas end to end: the sleepy GSME and the GPF's data store, over the TCP WAN bridge on a simulated
clock, every response verified by the head-end; response payloads compared with the shape of the
RTDS reference RESPONSE of the same use case."""
from __future__ import annotations

import asyncio
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import rtds_rows
from gbcs.catalogue import AlertCode
from gbcs.frame import decode_message
from gbcs.gbz import GbzPayload, decode_gbz
from gbcs.utrn import generate_utrn, originator_counter
from gbcs.zcl import ClusterCommand, DefaultResponse, ReadAttributesResponse

WAKE = 1800
AWAKE_POLL = 10
# dual fuel without the IHD (its polling costs these day-long simulations most of their time);
# still over the TCP bridge
pytestmark = pytest.mark.premises(ihd=False)


async def _queued(premises, use_case: str, to: str = "gsme", **params):
    """Send a command to the GSME without waiting: the task completes when it is answered."""
    task = asyncio.ensure_future(premises.send(use_case, to=to, **params))
    await premises.clock.advance(1)
    return task


async def _after_wake(premises, task):
    for _ in range(3):
        await premises.clock.advance(WAKE)
        if task.done():
            break
    return await task


def _gbz_alert_codes(premises) -> list[int]:
    """Codes of the alerts the head-end received (GBZ from the GSME, DLMS from the others)."""
    return [a.code for a in premises.headend.received_alerts]


def _shape(content: bytes, cra: int = 2) -> list:
    """What a GBZ response looks like, values aside: per component its cluster, frame type,
    command and, for plaintext payloads, record ids and types or the command's field names."""
    p = decode_gbz(content, cra=cra)
    out = []
    for c in p.components:
        item = [c.cluster_id, int(c.header.frame_type), c.header.command_id, c.encrypted]
        if isinstance(c.payload, ReadAttributesResponse):
            item.append([(r.attribute_id, r.type_id) for r in c.payload.records])
        elif isinstance(c.payload, ClusterCommand):
            item.append([k for k, _ in c.payload.fields])
        elif isinstance(c.payload, DefaultResponse):
            item.append(c.payload.command_id_answered)
        out.append(item)
    return out


def _rtds_shape(name: str):
    rows = [r for r in rtds_rows() if r["file"].endswith(name)]
    if not rows:
        pytest.skip("RTDS vectors not available")
    m = decode_message(rows[0]["bytes"])
    return m, _shape(m.content)


# ----------------------------------------------------------------------------------------------


async def test_command_to_sleeping_gsme_is_answered_at_its_next_wake_and_not_before(premises):
    gsme, chf = premises.gsme, premises.chf
    await premises.clock.advance(WAKE)  # a first sync
    task = await _queued(premises, "GCS32")
    assert not task.done() and chf._tunnels.server.pending(gsme.eui) == 1
    await premises.clock.advance(WAKE / 3)
    assert not task.done()
    reply = await _after_wake(premises, task)
    assert reply.ok and reply.summary["supply"] == "disabled"
    assert gsme._supply_state() == "disabled"
    # the GPF applied the command/response pair to its copy (tap-off), then the next push agrees
    read = await premises.send("GCS33", to="gpf")
    assert read.ok and read.summary["supply"] == "disabled" and read.summary["reliability"] == "gpf"
    assert any(e["code"] == 0x0054 for e in premises.gpf.event_log())
    # arm; the consumer's button opens the valve
    reply = await _after_wake(premises, await _queued(premises, "GCS39"))
    assert reply.summary["supply"] == "armed"
    assert gsme.press()["valve_opened"] and gsme._supply_state() == "enabled"


async def test_press_wakes_the_gsme_at_once(premises):
    task = await _queued(premises, "GCS13a", to="gsme")
    premises.gsme.press()
    await premises.clock.advance(5)
    assert task.done()
    reply = await task
    assert reply.ok and reply.summary["reliability"] == "gsme"


async def test_reads_while_asleep_come_from_the_gpf_with_the_reliability_flag(premises):
    await premises.clock.advance(2 * WAKE)
    gsme, gpf = premises.gsme, premises.gpf
    reply = await premises.send("GCS13a", to="gpf")
    assert reply.ok and reply.summary["reliability"] == "gpf" and reply.summary["clock_status"] == 0
    assert reply.summary["volume_m3"] == gsme.registers()["volume_l"] / 1000
    assert reply.reply.message.originator == gpf.eui
    # the GSME stops waking: after `stale_after` the GPF's data is flagged unreliable
    gsme.inject_fault("gone", [str(4 * WAKE)], {})
    await premises.clock.advance(3 * WAKE)
    reply = await premises.send("GCS13a", to="gpf")
    assert reply.ok and reply.summary["reliability"] == "unreliable" and reply.summary["clock_status"] == 2
    balance = await premises.send("GCS60", to="gpf")
    assert balance.ok and balance.summary["credit"] == pytest.approx(gsme.credit_pence / 100, abs=0.1)


async def test_unretrieved_message_is_discarded_with_alert_0x819d(premises):
    premises.gsme.inject_fault("asleep", [], {})
    task = await _queued(premises, "GCS32")
    await premises.clock.advance(86400 + 1000)
    assert AlertCode.GSME_COMMAND_NOT_RETRIEVED in _gbz_alert_codes(premises)
    assert premises.chf._tunnels.server.pending(premises.gsme.eui) == 0
    assert premises.gsme._supply_state() == "enabled"  # never executed
    task.cancel()


async def test_profile_and_daily_reads_return_the_right_slices(premises):
    gsme = premises.gsme
    await premises.clock.advance(2 * 86400 + 3 * WAKE)
    start = premises.clock.now() - premises.clock.now() % 86400 - 86400  # yesterday 00:00
    import datetime as dt

    day = dt.datetime.fromtimestamp(start, dt.timezone.utc)
    want = gsme.data.intervals(int(start), 48)
    for to in ("gpf", "gsme"):
        task = await _queued(premises, "GCS17", to=to, start=day, samples=48)
        reply = await (task if to == "gpf" else _after_wake(premises, task))
        assert reply.ok and reply.summary["volumes"] == want, to
    task = await _queued(premises, "GCS16a", to="gpf")
    reply = await task
    snaps = reply.summary["snapshots"]
    daily = gsme.data.daily()
    assert snaps and snaps[0]["volume_l"] == daily[-1]["volume_l"]


async def test_top_up_cs01b_and_emergency_credit(premises, gbhub_identity):
    gsme = premises.gsme
    ks = gbhub_identity.keystore
    utrn = generate_utrn(value=500, utrn_counter=7, supplier=gbhub_identity.supplier, device=gsme.eui,
                         private_key=ks.private_key(gbhub_identity.supplier, "pp-ka"), public_key=ks.public_key(gsme.eui, "ka"))
    before = gsme.credit_pence
    task = asyncio.ensure_future(premises.headend.send_use_case(
        "CS01b", recipient=gsme.eui, params={"utrn": utrn.encode()}, counter=originator_counter(7)))
    reply = await _after_wake(premises, task)
    assert reply.ok and reply.summary["top_up"] == 5.0
    assert gsme.credit_pence >= before + 500 - 50  # minus what the half-hours charged
    # the same UTRN locally (PPMID hook): a duplicate
    assert not gsme.apply_top_up(utrn.encode()).accepted
    reply = await _after_wake(premises, await _queued(premises, "GCS06"))
    assert reply.ok is False or reply.summary.get("status") in ("SUCCESS", "FAILURE")


async def test_gas_faults(premises):
    gsme = premises.gsme
    assert gsme.inject_fault("battery", ["5"], {})["percent"] == 5
    await premises.clock.advance(WAKE)
    assert AlertCode.LOW_BATTERY_CAPACITY in _gbz_alert_codes(premises)
    r = gsme.inject_fault("tamper", [], {})
    await premises.clock.advance(5)
    assert r["valve_closed"] and gsme._supply_state() == "disabled"
    assert AlertCode.UNAUTHORISED_PHYSICAL_ACCESS_TAMPER_DETECT in _gbz_alert_codes(premises)
    gsme.inject_fault("tilt", [], {})
    await premises.clock.advance(5)
    assert AlertCode.TILT_TAMPER in _gbz_alert_codes(premises)
    with pytest.raises(ValueError):
        gsme.inject_fault("battery", ["lots"], {})
    with pytest.raises(ValueError):
        gsme.inject_fault("melt", [], {})


async def test_uncontrolled_flow_closes_then_arms_the_valve(premises):
    gsme = premises.gsme
    r = gsme.inject_fault("flow", ["20000"], {})
    assert r["valve_closed"] and gsme._supply_state() == "armed"
    await premises.clock.advance(5)
    assert AlertCode.SUPPLY_DISABLED_THEN_ARMED_UNCONTROLLED_GAS_FLOW_RATE in _gbz_alert_codes(premises)


async def test_power_off_and_on_keeps_the_registers(premises):
    gsme = premises.gsme
    await premises.clock.advance(2 * WAKE)
    volume = gsme.registers()["volume_l"]
    gsme.inject_fault("power", ["off"], {})
    await premises.clock.advance(1)
    assert gsme.state == "off"
    gsme.inject_fault("power", ["on"], {})
    await premises.clock.advance(1)
    assert gsme.state == "on" and gsme.registers()["volume_l"] >= volume


@pytest.mark.parametrize("use_case, vector, to, params", [
    ("GCS13a", "GCS13a_4.1.1_SUCCESS_RELIABLE_GPF_RESPONSE_GBCS.HEX", "gpf", {}),
    ("GCS32", "GCS32_7.2_SUCCESS_RESPONSE_GBCS.HEX", "gsme", {}),
    ("GCS39", "GCS39_7.3_SUCCESS_RESPONSE_GBCS.HEX", "gsme", {}),
    ("GCS38", "GCS38_11.2_SUCCESS_RESPONSE_GBCS.HEX", "gsme", {}),
    ("GCS40a", "GCS40a_1.5_SUCCESS_RESPONSE_GBCS.HEX", "gsme", {}),
    ("GCS17", "GCS17_4.8.1_SUCCESS_RESPONSE_GBCS.HEX", "gsme", {"start": "2026-01-01T00:00:00Z", "samples": 4}),
    ("GCS17", "GCS17_4.8.1_NOT_FOUND_RESPONSE_GBCS.HEX", "gsme", {"start": "2025-01-01T00:00:00Z", "samples": 4}),
    ("GCS06", "GCS06_2.5_SUCCESS_RESPONSE_GBCS.HEX", "gsme", {}),
    ("GCS07", "GCS07_3.1_SUCCESS_RESPONSE_GBCS.HEX", "gsme", {}),
    ("GCS11", "GCS11_3.5_SUCCESS_RESPONSE_GBCS.HEX", "gsme", {}),
    ("GCS44", "GCS44_3.4_SUCCESS_RESPONSE_GBCS.HEX", "gsme", {}),
    ("CS11", "CS11_3.3_SUCCESS_RESPONSE_GBCS.HEX", "gsme", {}),
    ("CS10a", "CS10a_6.13_NOT_FOUND_RESPONSE_GBCS.HEX", "gsme", {"start": "2030-01-26T00:00:00Z", "end": "2030-01-26T07:00:00Z"}),
    ("GCS24a", "GCS24a_6.7_SUCCESS_RESPONSE_GBCS.HEX", "gsme", {}),
    ("GCS25a", "GCS25a_6.8_SUCCESS_RESPONSE_GBCS.HEX", "gsme", {}),
    ("GCS21m", "GCS21m_6.2.4_SUCCESS_RESPONSE_GBCS.HEX", "gsme", {}),
    ("GCS21m", "GCS21m_6.2.4_SUCCESS_RESPONSE_GBCS.HEX", "gpf", {}),
    ("GCS15d", "GCS15d_4.4.4_NOT_FOUND_RESPONSE_GBCS.HEX", "gsme", {}),
    ("GCS01a", "GCS01a_1.1.1_FUTURE_DATED_BLOCK_SUCCESS_RESPONSE_GBCS.HEX", "gsme", {}),
    ("GCS04", "GCS04_2.3_SUCCESS_RESPONSE_GBCS.HEX", "gsme", {}),
    ("GCS05", "GCS05_2.1_IMMEDIATE_SUCCESS_RESPONSE_GBCS.HEX", "gsme", {}),
])
async def test_response_has_the_shape_of_the_rtds_reference(premises, use_case, vector, to, params):
    ref, ref_shape = _rtds_shape(vector)
    await premises.clock.advance(2 * WAKE)
    task = await _queued(premises, use_case, to=to, **params)
    reply = await (task if to == "gpf" else _after_wake(premises, task))
    ours = _shape(reply.reply.message.content)
    if any(c[3] for c in ref_shape):  # encrypted in RTDS: compare the frame of the components only
        ref_shape = [c[:4] for c in ref_shape]
        ours = [c[:4] for c in ours]
    assert ours == ref_shape
    if to == "gsme":  # (the GPF always dates its answers: the date-time carries the reliability)
        assert bool(reply.reply.message.date_time) == bool(ref.date_time)


@pytest.mark.premises(gsme=False)
async def test_a_premises_may_leave_the_gsme_out(premises):
    assert premises.gsme is None
    assert "credit" in premises.status()["esme"]


async def test_status_shows_credit(premises):
    status = premises.status()
    assert "credit" in status["gsme"] and "credit" in status["esme"]


# -------------------------------------------------------------------------------- the CLI, as processes


def test_cli_send_to_the_sleepy_gsme_waits_for_its_wake_or_wakes_it(tmp_path):
    import json

    from test_cli_run import Running, gbhub

    data = tmp_path / "site"
    run = Running("--data", str(data), "--speed", "300")  # a wake every 6 s of real time
    try:
        manifest = json.loads((data / "premises.json").read_text())
        assert manifest["wake"]["gsme"] == pytest.approx(6.0)
        out = gbhub("send", "GCS32", "--data", str(data), "--summary")
        assert out.returncode == 0, out.stdout + out.stderr
        assert "queued for gsme" in out.stderr and "next wake" in out.stderr
        assert out.stdout.startswith("GCS32 ok") and '"supply": "disabled"' in out.stdout
        out = gbhub("send", "GCS13a", "--to", "gsme", "--wake", "--data", str(data), "--summary", "--timeout", "5")
        assert out.returncode == 0, out.stdout + out.stderr
        assert "queued" not in out.stderr and '"reliability": "gsme"' in out.stdout
        assert gbhub("send", "ECS17b", "--wake", "--data", str(data)).returncode == 2  # not a sleepy GSME
        fault = gbhub("ctl", "fault", "gsme", "battery", "5", "--data", str(data))
        assert fault.returncode == 0 and json.loads(fault.stdout)["percent"] == 5
        bad = gbhub("ctl", "fault", "gsme", "battery", "lots", "--data", str(data))
        assert bad.returncode == 1 and "PERCENT" in bad.stderr
        status = json.loads(gbhub("status", "--data", str(data)).stdout)
        devices = status.get("devices", status)
        assert "credit" in json.dumps(devices)
    finally:
        assert run.stop() == 0


def test_crash_while_the_gsme_syncs_loses_and_doubles_nothing(tmp_path):
    """`gbhub run --speed 3600` SIGKILLed at random moments while the GSME wakes and pushes (every
    half a second of real time); after the restarts every interval the GPF acknowledged is still
    there, equal to the GSME's own, and the GSME's register is the sum of its intervals (none
    counted twice). (A sped-up real clock starts again from the wall clock at each start: the
    first and the last lives are the longest, so the GSME has intervals to sync.)"""
    import json
    import random
    import time

    from test_cli_run import Running

    from gbhub.firmware.gas_data import DAILY_NS, NS, PROFILE_NS
    from gbhub.firmware.nvm import Nvm

    data = tmp_path / "site"
    rng = random.Random(20261205)
    for life in [3.0] + [rng.uniform(0.3, 2.5) for _ in range(4)]:
        run = Running("--data", str(data), "--speed", "3600")
        time.sleep(life)
        run.kill()
    run = Running("--data", str(data), "--speed", "3600")
    time.sleep(5.0)
    assert run.stop() == 0
    devices = json.loads((data / "premises.json").read_text())["devices"]
    nvm = Nvm(data / "nvm.sqlite")
    try:
        gsme = nvm.scope(devices["gsme"])
        mirror = nvm.scope(devices["gpf"]).scope("mirror-" + devices["gsme"])
        regs = gsme.get(NS, "registers")
        days = {int(k): v for k, v in gsme.items(PROFILE_NS)}
        assert regs["volume_l"] == sum(v for slots in days.values() for v in slots if v is not None)
        pushed_to = gsme.get(NS, "sync")["pushed_to"]
        assert pushed_to > min(days) * 86400, "the GSME never synced"
        mirrored = {int(k): v for k, v in mirror.items(PROFILE_NS)}
        for day, slots in days.items():
            theirs = mirrored.get(day, [None] * 48)
            for i, (mine, copy) in enumerate(zip(slots, theirs)):
                end = day * 86400 + (i + 1) * 1800
                if end <= pushed_to:  # acknowledged by the GPF: kept, and equal
                    assert copy == mine, (day, i)
                else:
                    assert copy in (None, mine), (day, i)
        assert mirror.get(NS, "registers")["volume_l"] <= regs["volume_l"]
        assert set(k for k, _ in mirror.items(DAILY_NS)) <= set(k for k, _ in gsme.items(DAILY_NS))
    finally:
        nvm.close()


def test_bench_gas_returns_the_right_slices_at_small_scale():
    from gbhub.tools.bench import gas

    out = gas(days=3, progress=lambda s: None)
    assert out["slices_ok"] and out["wakes"] >= 3 * 48 - 2 and out["gpf_syncs"] >= out["wakes"] - 2
    assert "thirteen_months_s" not in out  # only the full run reports the figure


def _gas_use_cases():
    from gbcs.usecases import USE_CASES

    # device-log use cases (test_device_model, test_ppmid), top-up (above), firmware (test_firmware_update),
    # the PPMID's own PCS01/PCS02 (test_ppmid) and the shared CS02 credentials (test_credentials)
    skip = {"CS03B", "CS04B", "CS07", "CS03A1", "CS03A2", "CS03C", "CS01b", "CS06", "CS08"}
    return [d for d in USE_CASES.values() if not d.is_alert and set(d.targets) & {"gsme", "gpf"} and d.use_case not in skip
            and d.originator != "ppmid" and not d.use_case.startswith("CS02")]


async def test_every_gas_use_case_is_answered_end_to_end_and_verified(premises):
    """Each gas use case, to the device RTDS addresses it to (and reads to both), in batches the
    GSME's queue holds; every answer verified by the head-end and read by its interpreter."""
    await premises.clock.advance(2 * 86400)  # daily reads and a profile to read
    cases = [(d, to) for d in _gas_use_cases() for to in dict.fromkeys((d.target, *(t for t in d.targets
                                                                                    if t in ("gsme", "gpf"))))]
    assert len({d.use_case for d, _ in cases}) >= 40
    for i in range(0, len(cases), 12):
        batch = cases[i:i + 12]
        tasks = [asyncio.ensure_future(premises.send(d.use_case, to=to)) for d, to in batch]
        await premises.clock.advance(1)
        for _ in range(3):
            if all(t.done() for t in tasks):
                break
            await premises.clock.advance(WAKE)
        for (d, to), task in zip(batch, tasks):
            reply = await task
            assert reply.reply.valid, (d.use_case, to)
            assert "note" not in reply.summary and "error" not in reply.summary, (d.use_case, to, reply.summary)
            assert reply.reply.message.originator == premises.eui_of(to), (d.use_case, to)


async def test_full_gsme_queue_is_a_delivery_failure_and_a_forged_command_is_refused_at_wake(premises):
    from gbhub.wan.headend import CommandRejected

    gsme, chf = premises.gsme, premises.chf
    gsme.inject_fault("asleep", [], {})
    tasks = [asyncio.ensure_future(premises.send("GCS38", to="gsme")) for _ in range(chf.gsme_queue_limit)]
    for _ in range(500):  # (over TCP: let the frames arrive)
        await asyncio.sleep(0.01)
        if chf._tunnels.server.pending(gsme.eui) == chf.gsme_queue_limit:
            break
    assert chf._tunnels.server.pending(gsme.eui) == chf.gsme_queue_limit
    with pytest.raises(CommandRejected) as refused:  # one more: the CHF cannot deliver it
        await premises.send("GCS38", to="gsme")
    assert refused.value.code == AlertCode.FAILURE_TO_DELIVER_REMOTE_PARTY_MESSAGE_TO_ESME
    gsme.inject_fault("awake", [], {})  # the queue drains
    await premises.clock.advance(WAKE)
    for t in tasks:
        assert (await t).reply.valid
    # a command whose MAC does not verify: refused by the GSME at its wake, state unchanged
    he = premises.headend
    _, msg, frame = he.build_use_case("GCS32", recipient=gsme.eui)
    forged = frame[:-1] + bytes([frame[-1] ^ 1])
    since = len(he.received_alerts)
    await he.link.send(forged)
    await premises.clock.advance(2 * AWAKE_POLL)
    codes = [a.code for a in he.received_alerts[since:] if a.message.originator == gsme.eui]
    assert AlertCode.TRUSTED_SOURCE_AUTHENTICATION_FAILURE in codes
    assert gsme._supply_state() == "enabled"
    assert gsme.security_log()[-1]["reason"] == "authentication"


# ------------------------------------------------------------------------- the GPF's push parser


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.binary(max_size=300), st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2**40, 2**40), st.text(max_size=8)),
    lambda inner: st.one_of(st.lists(inner, max_size=50), st.dictionaries(
        st.sampled_from(["profile", "daily", "state", "events", "t", "volume_l", "20454", "registers", "x"]), inner,
        max_size=5)), max_leaves=60).map(lambda v: json.dumps(v).encode())))
def test_a_malformed_push_changes_nothing_and_never_raises(data):
    from gbhub.firmware.clock import SimClock
    from gbhub.firmware.gbcs_device import Credentials, TrustAnchors
    from gbhub.firmware.nvm import Nvm
    from gbhub.hub.gpf import Gpf
    from cryptography.hazmat.primitives.asymmetric import ec

    gpf = Gpf("02474248400000A3", clock=SimClock(1767225600.0), credentials=Credentials(ec.generate_private_key(ec.SECP256R1())),
              trust=TrustAnchors(), nvm=Nvm(None))
    gsme = bytes.fromhex("02474248400000A1")
    before = gpf.mirror(gsme).nvm.items("gas_profile")
    stored = gpf._apply_push(gsme, data)
    mirror = gpf.mirror(gsme)
    days = [int(k) for k in mirror.nvm.keys("gas_profile")]
    assert all(20454 - 13 * 31 <= d <= 20455 for d in days)
    if not stored:
        assert mirror.nvm.items("gas_profile") == before and gpf.last_sync(gsme) is None


async def test_ppmid_pcs01_shape_is_rtds(premises, gbhub_identity):
    """The PCS01 answer has the RTDS shape (its device-to-device MAC comes with the shared model's
    Method C rule; here the handler runs through the GSME's own hooks)."""
    ref, ref_shape = _rtds_shape("PCS01_NA_SUCCESS_RESPONSE_GBCS.HEX")
    from gbcs.frame import CRA, Message
    from gbcs.catalogue import MessageCode
    from gbcs.usecases.gas import gbz
    from gbcs.zcl import Cluster

    gsme = premises.gsme
    ks = gbhub_identity.keystore
    utrn = generate_utrn(value=300, utrn_counter=9, supplier=gbhub_identity.supplier, device=gsme.eui,
                         private_key=ks.private_key(gbhub_identity.supplier, "pp-ka"), public_key=ks.public_key(gsme.eui, "ka"))
    content = gbz((Cluster.PREPAYMENT, ClusterCommand.build(Cluster.PREPAYMENT, "ConsumerTopUp", originating_device=2,
                                                             top_up_code=utrn.encode().encode())))
    msg = Message(CRA.COMMAND, 9, bytes.fromhex("02474248400000A4"), gsme.eui, MessageCode.PCS01, content)
    before = gsme.credit_pence
    with gsme.nvm.transaction():
        out = gsme.HANDLERS[MessageCode.PCS01].run(gsme, msg)
    assert _shape(out) == ref_shape
    assert gsme.credit_pence == pytest.approx(before + 300)
    assert gsme.activate_emergency_credit() in (True, False)


@pytest.mark.premises(ihd=False, tcp=False)
async def test_daily_weekly_monthly_consumption_from_the_gpf(premises):
    """GCS61 from the GPF's store: previous days, weeks and months, each the register at the
    period's end less the register at its start (the midnight reads); periods the log does not
    cover yet are unsupported."""
    await premises.clock.advance(62 * 86400 + WAKE)  # 2026-01-01 .. 2026-03-04
    daily = premises.gsme.data.daily()
    reply = await premises.send("GCS61", to="gpf")
    a = reply.summary["attributes"]
    assert reply.summary["reliability"] == "gpf"
    assert a["PreviousMonth3ConsumptionDelivered"] == "UNSUPPORTED_ATTRIBUTE"  # December: before the meter
    assert a["PreviousDay2ConsumptionDelivered"] == daily[-2]["volume_l"] - daily[-3]["volume_l"]
    assert a["PreviousDay8ConsumptionDelivered"] == daily[-8]["volume_l"] - daily[-9]["volume_l"]
    by_day = {e["t"] // 86400: e["volume_l"] for e in daily}
    feb, mar = 20485, 20513  # 2026-02-01, 2026-03-01 (days since 1970)
    assert a["PreviousMonthConsumptionDelivered"] == by_day[mar] - by_day[feb]
    today = daily[-1]["t"] // 86400  # the last midnight read (2026-03-04)
    monday = today - (today + 3) % 7  # of the current week (1970-01-01 was a Thursday)
    assert a["PreviousWeekConsumptionDelivered"] == by_day[monday] - by_day[monday - 7]
    assert a["PreviousMonth2ConsumptionDelivered"] == "UNSUPPORTED_ATTRIBUTE"  # January: no read at 01-01 00:00
    assert a["CurrentMonthConsumptionDelivered"] <= premises.gsme.registers()["volume_l"]


async def test_clock_gcs28_inside_and_outside_its_window(premises):
    import datetime as dt

    now = premises.clock.utcnow().replace(microsecond=0)
    ok = await _after_wake(premises, await _queued(premises, "GCS28", validity_start=now - dt.timedelta(minutes=5),
                                                  validity_end=now + dt.timedelta(hours=1)))
    assert ok.ok and ok.summary["status"] == "RELIABLE"
    late = await _after_wake(premises, await _queued(premises, "GCS28", validity_start=now - dt.timedelta(days=2),
                                                    validity_end=now - dt.timedelta(days=1)))
    assert not late.ok and late.summary["status"] == "UNRELIABLE"  # as the RTDS GCS28 ERROR response
    assert _gcs28_error_status() in (None, late.summary["status"])  # (None: no vectors here)


def _gcs28_error_status() -> str | None:
    from gbcs.asn1 import decode_asn1

    rows = [r for r in rtds_rows() if r["file"].endswith("GCS28_6.11_ERROR_RESPONSE_GBCS.HEX")]
    if not rows:
        return None
    ref = decode_message(rows[0]["bytes"])
    return decode_asn1(ref.content, message_code=ref.message_code, cra=ref.cra).status.name


async def test_running_out_of_credit_closes_the_valve_and_a_top_up_rearms_it(premises, gbhub_identity):
    gsme = premises.gsme
    with gsme.nvm.transaction():  # almost no credit left, no emergency credit
        p = gsme._prepay()
        p.update(credit=1.0, ec_remaining=0.0, ec_limit=0.0)
        gsme.nvm.put("meter", "prepayment", p)
    await premises.clock.advance(6 * WAKE)
    assert gsme._supply_state() == "disabled"
    assert AlertCode.CREDIT_BELOW_DISABLEMENT_THRESHOLD in _gbz_alert_codes(premises)
    volume = gsme.registers()["volume_l"]
    await premises.clock.advance(2 * WAKE)
    assert gsme.registers()["volume_l"] == volume  # no gas flows through a closed valve
    ks = gbhub_identity.keystore
    utrn = generate_utrn(value=2000, utrn_counter=11, supplier=gbhub_identity.supplier, device=gsme.eui,
                         private_key=ks.private_key(gbhub_identity.supplier, "pp-ka"), public_key=ks.public_key(gsme.eui, "ka"))
    assert gsme.apply_top_up(utrn.encode()).accepted  # typed locally (the PPMID's path)
    assert gsme._supply_state() == "armed"  # re-armed on credit; the consumer opens it
    assert gsme.press()["valve_opened"] and gsme._supply_state() == "enabled"
    await premises.clock.advance(WAKE)
    assert AlertCode.CREDIT_ADDED_LOCALLY in _gbz_alert_codes(premises)


@pytest.mark.parametrize("use_case, vector", [
    ("GCS16a", "GCS16a_4.6.1_SUCCESS_RESPONSE_GBCS.HEX"),
    ("GCS16b", "GCS16b_4.14_KRP_SUCCESS_RESPONSE_GBCS.HEX"),
])
async def test_daily_read_logs_have_the_rtds_shape(premises, use_case, vector):
    """Two days of midnight reads: two snapshots, then NOT_FOUND, as the RTDS reference."""
    _, ref_shape = _rtds_shape(vector)
    await premises.clock.advance(2 * 86400 + WAKE)
    for to in ("gsme", "gpf"):
        task = await _queued(premises, use_case, to=to)
        reply = await (task if to == "gpf" else _after_wake(premises, task))
        ours = [c[:4] if c[3] else c for c in _shape(reply.reply.message.content)]
        assert ours == [c[:4] if c[3] else c for c in ref_shape], to


async def test_gcs40b_and_gcs28_have_the_rtds_shape(premises):
    from gbcs.asn1 import SetTimeResponse, decode_asn1

    ref, ref_shape = _rtds_shape("GCS40b_1.5_SUCCESS_RESPONSE_GBCS.HEX")
    reply = await _after_wake(premises, await _queued(premises, "GCS40b", value=500000))
    assert _shape(reply.reply.message.content) == ref_shape and premises.gsme.credit_pence == pytest.approx(500.0)
    reply = await _after_wake(premises, await _queued(premises, "GCS28"))
    m = reply.reply.message
    assert isinstance(decode_asn1(m.content, message_code=m.message_code, cra=m.cra), SetTimeResponse)


# ---------------------------------------------------------------- the GSME queue survives restarts


async def test_a_command_queued_for_a_sleeping_gsme_survives_a_hub_restart_and_runs_once(premises_factory, tmp_path):
    data = tmp_path / "site"
    p = await premises_factory(data, ihd=False)
    p.gsme.inject_fault("asleep", [], {})
    task = await _queued(p, "GCS32")  # supply disable: queued for the sleeping GSME
    assert p.chf._tunnels.server.pending(p.gsme.eui) == 1
    task.cancel()
    taps = sum(e["code"] == 0x0054 for e in p.gpf.event_log())
    now = p.clock.now()
    await p.stop()
    q = await premises_factory(data, ihd=False, start=now + 60)
    gsme, chf = q.gsme, q.chf
    assert chf._tunnels.server.pending(gsme.eui) == 1  # reloaded from the CHF's NVM
    assert gsme._supply_state() == "enabled"
    gsme.press()
    for _ in range(10):
        await q.clock.advance(AWAKE_POLL)
        if q.headend.late_responses:
            break
    assert gsme._supply_state() == "disabled"
    (reply,) = q.headend.late_responses  # answered once, to the head-end that sent it
    assert reply.message.originator == gsme.eui
    assert chf._tunnels.server.pending(gsme.eui) == 0
    await q.clock.advance(2 * WAKE)  # later wakes fetch nothing more
    assert len(q.headend.late_responses) == 1
    # the GPF paired it with its response again (tap-off) after the restart
    assert sum(e["code"] == 0x0054 for e in q.gpf.event_log()) == taps + 1
    read = await q.send("GCS33", to="gpf")
    assert read.summary["supply"] == "disabled"
    await q.stop()
    r = await premises_factory(data, ihd=False, start=q.clock.now() + 60)  # nothing left to replay
    assert r.chf._tunnels.server.pending(r.gsme.eui) == 0


async def test_the_24h_discard_counts_from_the_first_queueing_across_a_restart(premises_factory, tmp_path):
    data = tmp_path / "site"
    p = await premises_factory(data, ihd=False)
    p.gsme.inject_fault("asleep", [], {})
    task = await _queued(p, "GCS32")
    task.cancel()
    now = p.clock.now()
    await p.stop()
    q = await premises_factory(data, ihd=False, start=now + 12 * 3600)
    q.gsme.inject_fault("asleep", [], {})  # (fault state is the GSME's: keep it asleep)
    assert q.chf._tunnels.server.pending(q.gsme.eui) == 1
    await q.clock.advance(12 * 3600 + 1000)
    assert AlertCode.GSME_COMMAND_NOT_RETRIEVED in _gbz_alert_codes(q)
    assert q.chf._tunnels.server.pending(q.gsme.eui) == 0
    assert q.gsme._supply_state() == "enabled"  # never executed


# -------------------------------------------------------------------------------- billing data log


def _billing_shape(reply) -> list:
    """Per component: (cluster, command id, found): a snapshot, or a NOT_FOUND Default Response."""
    return [(c[0], c[2], c[2] != 0x0B) for c in _shape(reply.reply.message.content)]


async def test_gcs15b_answers_the_change_of_mode_and_tariff_snapshots_with_the_rtds_shape(premises):
    _, ref_shape = _rtds_shape("GCS15b_4.4.2_SUCCESS_RESPONSE_GBCS.HEX")
    await premises.clock.advance(WAKE)
    for use_case in ("GCS02", "GCS01a"):  # a change of payment mode, then of tariff: two billing snapshots
        assert (await _after_wake(premises, await _queued(premises, use_case))).ok
    reply = await _after_wake(premises, await _queued(premises, "GCS15b"))
    assert [c[:4] for c in _shape(reply.reply.message.content)] == [c[:4] for c in ref_shape]  # 2 found, 10 NOT_FOUND, twice
    assert reply.reply.valid and reply.reply.message.originator == premises.gsme.eui
    snaps = premises.gsme.data.billing_snapshots(0x6008, 0, 2 ** 32)
    assert [s["cause"] for s in snaps] == [0x0008, 0x4000]  # newest first
    # the GPF's mirror holds the same billing data log after the next push, and answers with the same shape
    await premises.clock.advance(WAKE)
    assert premises.gpf.mirror(premises.gsme.eui).billing_snapshots(0x6008, 0, 2 ** 32) == snaps
    reply = await premises.send("GCS15b", to="gpf")
    assert [c[:4] for c in _shape(reply.reply.message.content)] == [c[:4] for c in ref_shape]
    assert reply.reply.message.originator == premises.gpf.eui


async def test_gcs15c_billing_calendar_snapshots_and_gcs15e_top_up_snapshots(premises, gbhub_identity):
    gsme = premises.gsme
    await premises.clock.advance(WAKE)
    reply = await _after_wake(premises, await _queued(premises, "GCS25a", start="2026-01-03T00:00:00Z", duration=1))
    assert reply.ok
    nothing = await _after_wake(premises, await _queued(premises, "GCS15c"))
    assert not any(found for _, _, found in _billing_shape(nothing))  # no billing date yet: NOT_FOUND throughout
    await premises.clock.advance(3 * 86400)  # past the billing date, 2026-01-03T00:00Z
    reply = reply15c = await _after_wake(premises, await _queued(premises, "GCS15c"))
    shape = _billing_shape(reply)
    assert len(shape) == 24 and [found for _, _, found in shape] == [True] + [False] * 11 + [True] + [False] * 11
    (snap,) = gsme.data.billing_snapshots(0x0002, 0, 2 ** 32)
    assert snap["t"] == 1767398400 and snap["volume_l"] > 0  # 2026-01-03T00:00Z
    # a top-up snapshots the prepayment credit (GCS15e)
    ks = gbhub_identity.keystore
    utrn = generate_utrn(value=700, utrn_counter=12, supplier=gbhub_identity.supplier, device=gsme.eui,
                         private_key=ks.private_key(gbhub_identity.supplier, "pp-ka"), public_key=ks.public_key(gsme.eui, "ka"))
    assert gsme.apply_top_up(utrn.encode()).accepted
    reply = await _after_wake(premises, await _queued(premises, "GCS15e"))
    assert [found for _, _, found in _billing_shape(reply)] == [True] + [False] * 11 + [True] + [False] * 11
    (snap,) = gsme.data.billing_snapshots(0x0400, 0, 2 ** 32)
    assert snap["credit"] == pytest.approx(gsme.credit_pence, abs=1)
    # the GPF answers both from its mirror after the next push, with the same shape and snapshots
    await premises.clock.advance(WAKE)
    for use_case, cause in (("GCS15c", 0x0002), ("GCS15e", 0x0400)):
        assert premises.gpf.mirror(gsme.eui).billing_snapshots(cause, 0, 2 ** 32) == gsme.data.billing_snapshots(cause, 0, 2 ** 32)
        mirrored = await premises.send(use_case, to="gpf")
        assert mirrored.reply.valid and mirrored.reply.message.originator == premises.gpf.eui  # (NOT_FOUND parts: not .ok)
        assert _billing_shape(mirrored) == _billing_shape(reply if use_case == "GCS15e" else reply15c)


async def test_the_billing_data_log_keeps_the_last_twelve_of_each_cause(premises):
    from gbhub.firmware.gas_data import BILLING_KEEP

    data = premises.gsme.data
    for i in range(BILLING_KEEP + 5):
        data.take_billing_snapshot(1767225600 + i * 86400, 0x0002)
    data.take_billing_snapshot(1767225600, 0x4000)
    kept = data.billing_snapshots(0x0002, 0, 2 ** 32)
    assert len(kept) == BILLING_KEEP and kept[-1]["t"] == 1767225600 + 5 * 86400  # the oldest went
    assert len(data.billing_snapshots(0x4000, 0, 2 ** 32)) == 1


# ------------------------------------------------------------------ GCS31: the network operator's


async def test_gcs31_from_the_network_operator_starts_the_network_data_log_read_by_gcs18(premises):
    from gbcs.usecases.gas import NETWORK_DATA_SAMPLE_ID

    gsme, he = premises.gsme, premises.headend
    task = await _queued(premises, "GCS31", start="2026-01-01T02:00:00Z", interval=3600, samples=48)
    reply = await _after_wake(premises, task)
    assert reply.ok and reply.reply.valid and reply.summary["fields"]["sample_id"] == NETWORK_DATA_SAMPLE_ID
    assert reply.reply.message.recipient == he.party("network_operator") == premises.identity.network_operator
    await premises.clock.advance(6 * 3600)
    read = await _after_wake(premises, await _queued(premises, "GCS18", start="2026-01-01T00:00:00Z", samples=10))
    assert read.ok and read.summary["interval_s"] == 3600 and read.summary["start"].startswith("2026-01-01T02:00")
    halves = gsme.data.intervals(1767232800, 2 * len(read.summary["volumes"]))  # 2026-01-01T02:00Z on
    assert read.summary["volumes"] == [halves[i] + halves[i + 1] for i in range(0, len(halves), 2)]
    assert len(read.summary["volumes"]) >= 5
    # an interval that is not whole half-hours: INVALID_VALUE, the log unchanged
    bad = await _after_wake(premises, await _queued(premises, "GCS31", interval=1000))
    assert not bad.ok and gsme.data.get("gas")["network_log"]["interval"] == 3600


async def test_gcs31_from_the_supplier_is_refused_for_its_role(premises):
    from gbcs import usecases
    from gbhub.firmware.gbcs_device import SECURITY_ALERTS

    gsme, he = premises.gsme, premises.headend
    d = usecases.get("GCS31")
    assert d.originator == "network_operator"
    counter = he.next_counter()
    now = premises.clock.now()
    import datetime as dt
    content = usecases.build_content("GCS31", counter, now=dt.datetime.fromtimestamp(now, dt.timezone.utc))
    _, frame = he.build_command(recipient=gsme.eui, message_code=d.message_code, critical=False, content=content,
                                counter=counter)  # from the supplier
    since = len(he.received_alerts)
    await he.link.send(frame)
    await premises.clock.advance(1)
    gsme.press()
    await premises.clock.advance(2 * AWAKE_POLL)
    assert SECURITY_ALERTS["role"] in [a.code for a in he.received_alerts[since:]]
    assert "network_log" not in gsme.data.get("gas")


@pytest.mark.parametrize("use_case, params", [("GCS15d", {}), ("GCS21f", {}), ("GCS18", {"start": "2026-01-01T00:00:00Z", "samples": 4})])
async def test_non_tap_off_reads_are_answered_by_the_gpf_as_by_the_gsme(premises, use_case, params):
    """GBCS: a command that changes no GSME state is answered by the GPF from its copy (FACTS, TOM)."""
    await premises.clock.advance(3 * WAKE)
    at_gsme = await _after_wake(premises, await _queued(premises, use_case, **params))
    await premises.clock.advance(WAKE)  # the next push brings what the GSME answered from
    at_gpf = await premises.send(use_case, to="gpf", **params)
    assert at_gsme.reply.valid and at_gpf.reply.valid and at_gpf.reply.message.originator == premises.gpf.eui
    assert at_gpf.ok == at_gsme.ok
    gsme_shape, gpf_shape = (_shape(r.reply.message.content) for r in (at_gsme, at_gpf))
    assert gpf_shape == gsme_shape


# RTDS GCS21f's tariff: 4 day profiles, 2 week profiles, 2 seasons, 3 special days, a block tariff
_GCS21F_TARIFF = {"day_profiles": "1,2,3,4", "week_profiles": "1,1,1,1,1,2,2;3,3,3,3,3,4,4",
                  "seasons": "2014-09-23=1,2015-03-20=2", "special_days": "2014-12-25=2,2014-12-26=2,2015-04-03=4"}


async def test_gcs21f_answers_the_tariff_as_rtds_from_the_gsme_and_the_gpf(premises):
    """GCS21f before any tariff: the Price attributes, NOT_FOUND for the calendar and the current
    price [O RTDS NOT_FOUND]; after GCS01a (and GCS01b, which keeps the calendar): the attributes, a
    PublishDayProfile per day, a PublishWeekProfile per week, seasons, special days and the current
    price, from the GSME and from the GPF's mirror [O RTDS SUCCESS]."""
    _, empty = _rtds_shape("GCS21f_4.11.1_NOT_FOUND_RESPONSE_GBCS.HEX")
    _, full = _rtds_shape("GCS21f_4.11.1_SUCCESS_RESPONSE_GBCS.HEX")
    await premises.clock.advance(2 * WAKE)
    before = await _after_wake(premises, await _queued(premises, "GCS21f"))
    assert _shape(before.reply.message.content) == empty
    assert (await _after_wake(premises, await _queued(premises, "GCS01a", **_GCS21F_TARIFF))).ok
    for step in ("GCS01a", "GCS01b"):
        if step == "GCS01b":
            assert (await _after_wake(premises, await _queued(premises, "GCS01b", block_prices="9000,9500,9900,10000"))).ok
        at_gsme = await _after_wake(premises, await _queued(premises, "GCS21f"))
        await premises.clock.advance(WAKE)  # the next push brings the GSME's state to the mirror
        at_gpf = await premises.send("GCS21f", to="gpf")
        for reply in (at_gsme, at_gpf):
            assert _shape(reply.reply.message.content) == full
        prices = {r.attribute_id: r.value for r in decode_gbz(at_gpf.reply.message.content, cra=2).components[0].payload.records}
        assert prices[0x0400] == (9000 if step == "GCS01b" else 9600) and prices[0x0101] == 2000000
