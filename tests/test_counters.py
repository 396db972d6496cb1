"""Head-end counters persisted per originator (issue 8, defect 8), the fixture's restart over a data
folder, an NVM that fails at run time (defect 5), and the parsers of what people type for them."""
from __future__ import annotations

import datetime as dt
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gbcs.catalogue import AlertCode
from gbhub.tools.control import parse_alert_code
from gbhub.tools.rig import RigError, parse_start
from gbhub.wan.counters import CounterFileError, HeadEndCounters

A = bytes.fromhex("0247424830010000")
B = bytes.fromhex("0247424830000002")


def test_counters_grow_across_instances_and_blocks(tmp_path):
    path = tmp_path / "counters.json"
    one = HeadEndCounters(path, block=4)
    taken = [one.take(A) for _ in range(10)]
    assert taken == sorted(set(taken))
    two = HeadEndCounters(path, block=4)  # a restart, or another process
    assert two.take(A) > max(taken)
    assert two.take(B, at_least=1000) == 1000
    assert json.loads(path.read_text())["0247424830010000"] >= max(taken)


def test_utrn_alignment_and_resync(tmp_path):
    path = tmp_path / "counters.json"
    one = HeadEndCounters(path, block=8)
    c = one.take(A, 5, align=32)
    assert c % (1 << 32) == 0 and c >= 5
    other = HeadEndCounters(path, block=8)
    used = [other.take(A) for _ in range(3)]
    # `one` still has its block; after a replay rejection it resynchronises above the file
    nxt = one.resync(A)
    assert nxt > max(used) and one.take(A) >= nxt


def test_corrupt_counter_file_is_one_error(tmp_path):
    path = tmp_path / "counters.json"
    path.write_text("{not json")
    with pytest.raises(CounterFileError, match="corrupt"):
        HeadEndCounters(path)
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(CounterFileError, match="corrupt"):
        HeadEndCounters(path)
    path.write_text('{"0247424830010000": -5}')
    with pytest.raises(CounterFileError):
        HeadEndCounters(path)


@settings(max_examples=80, deadline=None)
@given(st.one_of(st.text(max_size=60), st.dictionaries(st.text(max_size=18), st.one_of(
    st.integers(-5, 2**65), st.text(max_size=4), st.none(), st.booleans()), max_size=3).map(json.dumps)))
def test_property_counter_file_content_loads_or_is_one_error(tmp_path_factory, text):
    """A counter file edited or damaged by hand: it loads, or CounterFileError says it is corrupt."""
    path = tmp_path_factory.mktemp("c") / "counters.json"
    path.write_text(text)
    try:
        counters = HeadEndCounters(path)
    except CounterFileError as exc:
        assert "corrupt" in str(exc)
        return
    assert counters.take(A) >= 0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 3), st.integers(0, 2**40)), max_size=40), st.integers(1, 8))
def test_property_a_new_instance_starts_above_everything_taken(tmp_path_factory, ops, block):
    """Whatever was taken, by how many instances: one made afterwards continues above it all."""
    path = tmp_path_factory.mktemp("c") / "counters.json"
    instances = [HeadEndCounters(path, block=block)]
    taken: list[int] = []
    for new, which, at_least in ops:
        if new:
            instances.append(HeadEndCounters(path, block=block))
        counters = instances[which % len(instances)]
        before = counters.last(A)
        c = counters.take(A, at_least)
        assert c >= at_least and (before is None or c > before)
        taken.append(c)
    assert HeadEndCounters(path, block=block).take(A) > max(taken, default=-1)


@given(st.integers(0, 0xFFFF))
def test_property_alert_code_forms(code):
    assert parse_alert_code(f"0x{code:04X}") == code
    assert parse_alert_code(f"0X{code:x}") == code
    assert parse_alert_code(str(code)) == code


def test_alert_code_names():
    assert parse_alert_code("error_non_volatile_memory") == AlertCode.ERROR_NON_VOLATILE_MEMORY
    assert parse_alert_code("8F3F") == 0x8F3F


@given(st.text(max_size=20))
def test_property_alert_code_text_never_crashes(text):
    try:
        code = parse_alert_code(text)
    except ValueError:
        return
    assert 0 <= code <= 0xFFFF


@given(st.datetimes(min_value=dt.datetime(1971, 1, 1), max_value=dt.datetime(2200, 1, 1)))
def test_property_start_iso_text(when):
    expected = when.replace(tzinfo=dt.timezone.utc).timestamp()
    assert parse_start(when.isoformat()) == expected
    assert parse_start(when.isoformat() + "Z") == expected
    assert parse_start(when) == expected


@given(st.text(max_size=30))
def test_property_start_text_never_crashes(text):
    try:
        parse_start(text)
    except RigError:
        pass


async def test_fixture_restart_example_with_iso_start(premises_factory, tmp_path):
    """Defect 8: the README's restart example (`await make(tmp_path / "site")` twice) failed: the
    second head-end's counters started again at the simulated clock's milliseconds, below what
    the devices held. `start` takes ISO 8601 text."""
    site = tmp_path / "site"
    first = await premises_factory(site, start="2026-03-01T00:00:00Z")
    assert first.clock.utcnow().isoformat().startswith("2026-03-01T00:00")
    for _ in range(3):
        assert (await first.send("ECS17b")).ok
    await first.stop()
    again = await premises_factory(site, start="2026-03-01T00:00:00Z")
    reply = await again.send("ECS17b")
    assert reply.ok
    await again.stop()
    third = await premises_factory(site)  # even with an earlier clock than the devices saw
    assert (await third.send("ECS45")).ok


async def test_nvm_write_failure_answers_with_an_alert(premises_factory, tmp_path):
    """Defect 5: an NVM that cannot be written (disk full, read-only) gave silence; the device now
    answers the command it could not store with alert 0x81AE (Error Non Volatile Memory)."""
    from gbhub.wan.headend import CommandRejected

    p = await premises_factory(tmp_path / "site")
    assert (await p.send("ECS17b")).ok
    since = len(p.headend.received_alerts)
    p.nvm._store.db.execute("PRAGMA query_only = 1")  # SQLite now refuses every write: a read-only disk
    try:
        with pytest.raises(CommandRejected):  # the alert fails the command at once (defect 7)
            await p.headend.send_use_case("ECS43", recipient=p.esme.eui, timeout=2)
        alert = await p.headend.wait_alert(since=since, timeout=5)
    finally:
        p.nvm._store.db.execute("PRAGMA query_only = 0")
    assert alert.message.originator == p.esme.eui
    assert AlertCode.ERROR_NON_VOLATILE_MEMORY.to_bytes(2, "big") in alert.message.content
    assert p.esme.supply_state == "enabled"  # nothing changed


async def test_headend_resynchronises_once_after_a_replay_rejection(premises_factory, tmp_path):
    """Defect 8: a head-end that meets a replay rejection resynchronises once and says so. Two
    head-ends on one counter file (two processes): the second reserves a block above the first's
    and uses it, so the first's next counter is a replay; after the rejection it continues above."""
    from gbhub.wan.bridge import TcpClient
    from gbhub.wan.headend import CommandRejected, HeadEnd

    site = tmp_path / "site"
    p = await premises_factory(site)
    first = p.headend
    assert (await p.send("ECS17b")).ok
    client = await TcpClient("127.0.0.1", p.wan_port).connect()
    ident = p.identity
    second = HeadEnd(client, ident.keystore, supplier=ident.supplier, acb=ident.acb, clock=p.clock,
                     counters=HeadEndCounters(site / "counters.json"))
    try:
        assert (await second.send_use_case("ECS17b", recipient=p.esme.eui)).ok
        with pytest.raises(CommandRejected) as rejected:  # the replay alert, at once (defect 7)
            await first.send_use_case("ECS17b", recipient=p.esme.eui, timeout=2)
        assert rejected.value.code == 0x8F53
        assert (await first.send_use_case("ECS17b", recipient=p.esme.eui)).ok
    finally:
        await second.close()
