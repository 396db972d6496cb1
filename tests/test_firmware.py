"""firmware/: clocks, NVM, device runtime."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gbhub.firmware import (
    DAY,
    EVENT_LOG_CLEARED,
    HALF_HOUR,
    Device,
    DeviceOff,
    FirmwareError,
    FirmwareImage,
    FirmwareSlots,
    InboxFull,
    Nvm,
    NvmError,
    RealClock,
    SimClock,
    next_boundary,
    next_half_hour,
    next_midnight,
    to_datetime,
    to_epoch,
)

ROOT = Path(__file__).resolve().parent.parent
T0 = datetime(2024, 3, 1, 0, 10, tzinfo=timezone.utc)  # 00:10 UTC, off a boundary
EUI = bytes.fromhex("0011223344556677")
PARTY = bytes.fromhex("90B3D51F30010000")


@pytest.fixture(params=["memory", "file", "group", "group-exclusive"])
def nvm(request, tmp_path):
    store = (Nvm(None) if request.param == "memory" else
             Nvm(tmp_path / "nvm.db", synchronous="GROUP") if request.param == "group" else
             Nvm(tmp_path / "nvm.db", synchronous="GROUP", exclusive=True) if request.param == "group-exclusive" else
             Nvm(tmp_path / "nvm.db"))
    yield store
    store.close()


# ---------------------------------------------------------------------------------- time helpers
def test_boundaries_are_strictly_after_and_utc_aligned():
    t = to_epoch(T0)
    assert to_datetime(next_half_hour(t)) == datetime(2024, 3, 1, 0, 30, tzinfo=timezone.utc)
    on = to_epoch(datetime(2024, 3, 1, 1, 0, tzinfo=timezone.utc))
    assert next_half_hour(on) == on + HALF_HOUR
    assert next_half_hour(on - 0.001) == on
    assert to_datetime(next_midnight(t)) == datetime(2024, 3, 2, tzinfo=timezone.utc)
    assert to_datetime(next_boundary(t, DAY, offset=3600)) == datetime(2024, 3, 1, 1, 0, tzinfo=timezone.utc)
    assert to_epoch(datetime(2024, 3, 1)) == to_epoch(datetime(2024, 3, 1, tzinfo=timezone.utc))  # naive = UTC


# ---------------------------------------------------------------------------------- SimClock
async def test_simclock_fires_in_time_order_with_each_timers_now():
    clock = SimClock(T0)
    start = clock.now()
    seen = []
    for offset in (50, 10, 30, 10, 20):
        clock.call_at(start + offset, lambda o=offset: seen.append((o, clock.now() - start)))
    dropped = clock.call_at(start + 15, lambda: seen.append("cancelled"))
    dropped.cancel()
    await clock.advance(40)
    assert seen == [(10, 10), (10, 10), (20, 20), (30, 30)]
    assert clock.now() == start + 40
    assert clock.utcnow() == T0 + timedelta(seconds=40) and clock.utcnow().tzinfo is not None
    await clock.run_until(T0 + timedelta(seconds=100))
    assert seen[-1] == (50, 50) and clock.now() == start + 100
    assert clock.pending() == 0


async def test_simclock_woken_tasks_see_their_own_time_and_settle():
    clock = SimClock(T0)
    start = clock.now()
    queue: asyncio.Queue = asyncio.Queue()
    seen = []

    async def sleeper():  # wakes every 10 s and hands work to a consumer (two hops)
        for _ in range(3):
            await clock.sleep(10)
            queue.put_nowait(clock.now() - start)

    async def consumer():
        while True:
            value = await queue.get()
            await asyncio.sleep(0)
            seen.append((value, clock.now() - start))

    tasks = [asyncio.create_task(sleeper()), asyncio.create_task(consumer())]
    await clock.advance(35)
    assert seen == [(10, 10), (20, 20), (30, 30)]
    tasks[1].cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_simclock_every_aligns_to_half_hours_and_midnight():
    clock = SimClock(T0)
    halves, days = [], []
    clock.every(HALF_HOUR, lambda t: halves.append((t, clock.now())))
    clock.every(DAY, days.append)
    await clock.advance(DAY)
    assert len(halves) == 48
    assert all(t == now and t % HALF_HOUR == 0 for t, now in halves)
    assert to_datetime(halves[0][0]) == datetime(2024, 3, 1, 0, 30, tzinfo=timezone.utc)
    assert [to_datetime(t) for t in days] == [datetime(2024, 3, 2, tzinfo=timezone.utc)]


async def test_simclock_async_callbacks_run_and_failures_do_not_stop_it():
    clock = SimClock(T0)
    seen = []

    async def job(t):
        await clock.sleep(5)
        seen.append(clock.now() - t)

    def broken(t):
        raise RuntimeError("boom")

    clock.every(60, job, align=False)
    clock.every(60, broken, align=False)
    await clock.advance(200)
    assert seen == [5, 5, 5]


async def test_simclock_autojump_lets_awaiters_through():
    clock = SimClock(T0)
    start = clock.now()

    async def slow():
        await clock.sleep(3600)
        return clock.now() - start

    clock.start_autojump()
    try:
        assert await asyncio.wait_for(slow(), 5) == 3600
        await clock.advance(10)  # advance() still works alongside
        assert clock.now() == start + 3610
    finally:
        await clock.stop_autojump()


async def test_simclock_advance_from_a_woken_task_is_refused():
    clock = SimClock(T0)
    errors = []

    async def rogue():
        await clock.sleep(1)
        try:
            await clock.advance(1)
        except RuntimeError as exc:
            errors.append(exc)

    task = asyncio.create_task(rogue())
    await clock.advance(5)
    await task
    assert len(errors) == 1


# ---------------------------------------------------------------------------------- RealClock
async def test_realclock_runs_at_speed_from_start():
    start = T0
    clock = RealClock(speed=3600.0, start=start)  # one real millisecond = 3.6 clock seconds
    assert abs(clock.now() - to_epoch(start)) < 60
    assert clock.utcnow().tzinfo is not None
    t0 = time.monotonic()
    await clock.sleep(360)  # 0.1 s real
    assert 0.08 < time.monotonic() - t0 < 1.0
    fired = asyncio.get_running_loop().create_future()
    clock.every(HALF_HOUR, lambda t: fired.done() or fired.set_result((t, clock.now())))
    t, now = await asyncio.wait_for(fired, 5)  # next :00/:30 is at most 0.5 s real away
    assert t % HALF_HOUR == 0 and now >= t
    target = clock.now() + 100
    await clock.sleep_until(target)
    assert clock.now() >= target
    assert RealClock().now() == pytest.approx(time.time(), abs=1)


async def test_realclock_timers_in_its_own_heap_fire_in_order_and_cancel():
    """RealClock keeps its timers in its own heap with one loop timer for the earliest: order by
    time then by setting, cancelled ones never fire, and a timer set by a firing callback for
    `now` fires on a later loop turn (never inside the same batch)."""
    clock = RealClock()
    loop = asyncio.get_running_loop()
    fired: list = []
    base = clock.now() + 0.05
    clock.call_at(base + 0.02, fired.append, "c")
    clock.call_at(base, fired.append, "a1")
    clock.call_at(base, fired.append, "a2")
    gone = clock.call_at(base + 0.01, fired.append, "cancelled")
    gone.cancel()
    clock.call_at(base + 0.01, fired.append, "b")
    turns = []

    def chain(_):
        fired.append("chain")
        clock.call_later(0, fired.append, "later")
        loop.call_soon(turns.append, "soon")

    clock.call_at(base + 0.03, chain, None)
    assert clock.pending() == 5
    done = loop.create_future()
    clock.call_at(base + 0.1, done.set_result, None)
    await asyncio.wait_for(done, 5)
    assert fired == ["a1", "a2", "b", "c", "chain", "later"]
    assert turns == ["soon"] and clock.pending() == 0
    # Many cancelled timers: the heap is rebuilt, the live ones still fire.
    handles = [clock.call_later(3600 + i, fired.append, i) for i in range(2000)]
    for h in handles[1:]:
        h.cancel()
    assert len(clock._heap) < 1000 and clock.pending() == 1
    handles[0].cancel()
    rep = clock.every(0.01, lambda t: fired.append("tick"), align=False)
    await asyncio.sleep(0.1)
    rep.cancel()
    assert fired.count("tick") >= 2


async def test_realclock_on_a_new_loop_starts_afresh():
    clock = RealClock()
    clock.call_later(0.01, lambda: None)
    fired = []

    def other_loop():
        async def main():
            clock.call_later(0.01, fired.append, "new")
            await asyncio.sleep(0.1)

        asyncio.run(main())

    await asyncio.get_running_loop().run_in_executor(None, other_loop)
    assert fired == ["new"]


# ---------------------------------------------------------------------------------- NVM
def test_nvm_values_round_trip(nvm):
    v = nvm.scope("A")
    values = {
        "none": None, "bool": True, "int": 2**70, "float": 1.5, "str": "é", "bytes": b"\x00\xff",
        "list": [1, "x", b"\x01"], "dict": {"k": [b"\x02", {"n": None}]}, "tuple": (1, 2),
    }
    for key, value in values.items():
        v.put("ns", key, value)
    assert v.get("ns", "tuple") == [1, 2]  # JSON rules in both modes
    assert v.get("ns", "dict") == {"k": [b"\x02", {"n": None}]}
    assert dict(v.items("ns")) == {**values, "tuple": [1, 2]}
    assert v.get("ns", "missing", 7) == 7
    got = v.get("ns", "list")
    got.append("mutated")
    assert v.get("ns", "list") == [1, "x", b"\x01"]  # callers never share the stored object
    with pytest.raises(TypeError):
        v.put("ns", "bad", object())
    with pytest.raises(TypeError):
        v.put("ns", 5, 1)
    assert v.delete("ns", "int") and not v.delete("ns", "int")
    assert v.keys("ns") == sorted(set(values) - {"int"})
    v.clear("ns")
    assert v.items("ns") == []


def test_nvm_scopes_are_isolated(nvm):
    a, b = nvm.scope("AAAA"), nvm.scope("BBBB")
    a.put("ns", "k", 1)
    b.put("ns", "k", 2)
    a.log_append("event", {"n": 1})
    assert (a.get("ns", "k"), b.get("ns", "k"), nvm.get("ns", "k")) == (1, 2, None)
    assert b.log_entries("event") == [] and a.scope("x").get("ns", "k") is None
    with pytest.raises(ValueError):
        nvm.scope("a/b")


def test_nvm_file_reopen_keeps_everything(tmp_path):
    path = tmp_path / "rig" / "nvm.db"
    with Nvm(path) as store:
        dev = store.scope("00")
        dev.put("state", "mode", {"credit": 10, "eui": EUI})
        for i in range(5):
            dev.log_append("event", {"i": i}, capacity=3)
        assert store.get("state", "mode") is None
    with Nvm(path) as store:
        dev = store.scope("00")
        assert dev.get("state", "mode") == {"credit": 10, "eui": EUI}
        assert dev.log_entries("event") == [{"i": 2}, {"i": 3}, {"i": 4}]
        dev.log_append("event", {"i": 5}, capacity=3)
        assert [e["i"] for e in dev.log_entries("event")] == [3, 4, 5]
        mode = store._store.db.execute("PRAGMA journal_mode").fetchone()[0]
        assert mode == "wal"
    with pytest.raises(NvmError):
        store.get("state", "mode")


def test_nvm_logs_cap_fifo(nvm):
    for i in range(250):
        nvm.log_append("event", {"i": i, "raw": b"\x01"})
    entries = nvm.log_entries("event")
    assert len(entries) == 100 == nvm.log_len("event")
    assert [e["i"] for e in entries] == list(range(150, 250))
    assert entries[0]["raw"] == b"\x01"
    nvm.log_clear("event")
    assert nvm.log_entries("event") == []
    nvm.log_append("event", {"i": "after"})
    assert nvm.log_entries("event") == [{"i": "after"}]
    with pytest.raises(TypeError):
        nvm.log_append("event", ["not", "a", "dict"])


def test_nvm_transaction_is_atomic(nvm, tmp_path):
    nvm.put("state", "balance", 100)
    nvm.log_append("log", {"n": 0}, capacity=2)
    undone = []
    with pytest.raises(ZeroDivisionError):
        with nvm.transaction():
            nvm.put("state", "balance", 50)
            nvm.put("counters", "X", 9)
            nvm.delete("state", "balance")
            nvm.log_append("log", {"n": 1}, capacity=2)
            nvm.log_append("log", {"n": 2}, capacity=2)
            nvm.log_clear("log")
            nvm.clear("state")
            nvm.on_rollback(lambda: undone.append(True))
            assert nvm.in_transaction and nvm.get("counters", "X") == 9
            1 / 0
    assert undone == [True] and not nvm.in_transaction
    assert nvm.get("state", "balance") == 100 and nvm.get("counters", "X") is None
    assert nvm.log_entries("log") == [{"n": 0}]
    with nvm.transaction():
        nvm.put("state", "balance", 40)
        try:
            with nvm.transaction():  # nested: a savepoint
                nvm.put("state", "balance", 0)
                nvm.log_append("log", {"n": 9})
                raise KeyError("inner")
        except KeyError:
            pass
        nvm.put("counters", "X", 10)
    assert nvm.get("state", "balance") == 40 and nvm.get("counters", "X") == 10
    assert nvm.log_entries("log") == [{"n": 0}]
    if nvm.persistent:  # and the file agrees with the cache
        if nvm.exclusive:  # nobody else may open it meanwhile
            nvm.close()
        again = Nvm(nvm.path)
        assert again.get("state", "balance") == 40 and again.get("counters", "X") == 10
        assert again.log_entries("log") == [{"n": 0}]
        again.close()


async def test_nvm_write_into_another_tasks_transaction_is_refused(nvm):
    async def other():
        nvm.put("x", "y", 1)

    with pytest.raises(NvmError):
        with nvm.transaction():
            nvm.put("x", "z", 1)
            await asyncio.create_task(other())  # awaiting inside a transaction: the bug caught
    assert nvm.get("x", "y") is None and nvm.get("x", "z") is None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text() | st.binary(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=12,
).filter(lambda v: not (isinstance(v, dict) and list(v) == ["$bytes"]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=json_values)
def test_nvm_memory_and_file_agree(tmp_path, value):
    memory = Nvm(None)
    with Nvm(tmp_path / "prop.db") as store:
        memory.put("ns", "k", value)
        store.put("ns", "k", value)
        memory.log_append("l", {"v": value})
        store.log_append("l", {"v": value})
        assert memory.get("ns", "k") == store.get("ns", "k")
        assert memory.log_entries("l")[-1] == store.log_entries("l")[-1]
    with Nvm(tmp_path / "prop.db") as store:
        assert store.get("ns", "k") == memory.get("ns", "k")


CHILD = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {root!r})
    from gbhub.firmware import Nvm
    nvm = Nvm({path!r}).scope("0011223344556677")
    i = 0
    while True:
        i += 1
        with nvm.transaction():  # a command: state change + its counter + its log entry
            nvm.put("state", "balance", i * 10)
            nvm.put("counters", "90B3D51F30010000", i)
            nvm.log_append("event", {{"i": i}})
        nvm.put("plain", "last", i)
        print(i, flush=True)
    """
)


def _on_disk(path, ns: str, key: str):
    """What a process starting now would read (another connection: committed data only)."""
    db = sqlite3.connect(str(path))
    try:
        row = db.execute("SELECT value FROM kv WHERE ns=? AND key=?", (ns, key)).fetchone()
    finally:
        db.close()
    return None if row is None else json.loads(row[0])


@pytest.mark.parametrize("sync", ["FULL", "GROUP"])
async def test_nvm_deferred_writes_land_with_their_scopes_next_durable_write(tmp_path, sync):
    path = tmp_path / "deferred.db"
    store = Nvm(path, synchronous=sync)
    meter, other = store.scope("p1").scope("m"), store.scope("p1").scope("o")
    with meter.transaction():
        meter.put("meter", "registers", {"wh": 1})
        meter.put("meter", "metering", {"t": 0})
    await store.durable()
    with meter.transaction(), meter.deferring():  # a close: RAM only
        meter.put("meter", "registers", {"wh": 2})
        meter.put("meter", "metering", {"t": 1800})
    await store.durable()
    assert meter.get("meter", "registers") == {"wh": 2} and meter.unsynced and not other.unsynced
    assert _on_disk(path, "p1/m/meter", "registers") == {"wh": 1}
    other.put("x", "k", 1)  # another device's write: not this scope's
    await store.durable()
    assert _on_disk(path, "p1/m/meter", "registers") == {"wh": 1}
    with meter.transaction():  # a rolled-back durable write settles nothing
        meter.scope("log").log_append("event", {"i": 1})
        with pytest.raises(ZeroDivisionError):
            with meter.transaction():
                meter.put("meter", "supply", "off")
                1 / 0
    await store.durable()
    assert _on_disk(path, "p1/m/meter", "metering") == {"t": 1800}  # a sub-scope's write settled both
    assert _on_disk(path, "p1/m/meter", "registers") == {"wh": 2} and not meter.unsynced
    # a failing commit gives the deferred values back; the next durable write writes them
    with meter.transaction(), meter.deferring():
        meter.put("meter", "registers", {"wh": 3})
    with pytest.raises(RuntimeError):
        with meter.transaction():
            meter.put("meter", "supply", "armed")
            raise RuntimeError("dies before its commit")
    await store.durable()
    assert _on_disk(path, "p1/m/meter", "registers") == {"wh": 2} and meter.unsynced
    await meter.durable()  # what a device awaits before it acknowledges anything
    assert _on_disk(path, "p1/m/meter", "registers") == {"wh": 3} and not meter.unsynced
    # a hard write of the deferred key itself writes its newest value, once
    with meter.transaction(), meter.deferring():
        meter.put("meter", "registers", {"wh": 4})
        meter.delete("meter", "metering")  # deletes are never deferred
    meter.put("meter", "registers", {"wh": 5})
    await store.durable()
    assert _on_disk(path, "p1/m/meter", "registers") == {"wh": 5} and _on_disk(path, "p1/m/meter", "metering") is None
    with meter.transaction(), meter.deferring():
        meter.put("meter", "registers", {"wh": 6})
    with pytest.raises(NvmError):
        meter.deferring().__enter__()  # outside a transaction
    store.close()  # writes what is deferred
    with Nvm(path) as again:
        assert again.scope("p1").scope("m").get("meter", "registers") == {"wh": 6}


def test_nvm_writing_the_value_a_key_holds_writes_nothing(tmp_path):
    with Nvm(tmp_path / "same.db") as store:
        nvm = store.scope("d")
        nvm.put("s", "k", {"a": [1, 2]})
        nvm.put("s", "n", 1)
        changes = store._store.db.total_changes
        nvm.put("s", "k", {"a": [1, 2]})
        nvm.put("s", "n", 1)
        assert store._store.db.total_changes == changes
        nvm.put("s", "n", 1.0)  # a different value (JSON says 1.0)
        nvm.put("s", "n", True)
        assert store._store.db.total_changes == changes + 2 and nvm.get("s", "n") is True


def test_nvm_survives_sigkill(tmp_path):
    path = tmp_path / "kill.db"
    script = CHILD.format(root=str(ROOT), path=str(path))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        last = 0
        for _ in range(40):
            line = proc.stdout.readline()
            assert line, "child died"
            last = int(line)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    with Nvm(path) as store:
        nvm = store.scope("0011223344556677")
        n = nvm.get("counters", "90B3D51F30010000")
        assert n >= last  # everything reported done was durable
        assert nvm.get("plain", "last") >= last
        assert nvm.get("state", "balance") == n * 10  # and each transaction landed whole
        entries = nvm.log_entries("event")
        assert entries[-1] == {"i": n} and len(entries) == min(n, 100)


GROUP_CHILD = textwrap.dedent(
    """
    import asyncio, sys
    sys.path.insert(0, {root!r})
    from gbhub.firmware import Nvm
    nvm = Nvm({path!r}, synchronous="GROUP", exclusive={exclusive!r}).scope("0011223344556677")

    async def command(i):
        with nvm.transaction():
            nvm.put("counters", str(i % 4), i)
            nvm.put("state", str(i % 4), i * 10)
        await nvm.durable()  # what a device does before it answers
        print(i, flush=True)

    async def main():
        i = 0
        while True:
            await asyncio.gather(*(command(i + k) for k in range(1, 5)))
            i += 4
    asyncio.run(main())
    """
)


@pytest.mark.parametrize("exclusive", [False, True])  # True: a fleet worker's store
def test_nvm_group_commit_survives_sigkill_and_acknowledges_only_what_is_on_disk(tmp_path, exclusive):
    path = tmp_path / "group.db"
    proc = subprocess.Popen([sys.executable, "-c", GROUP_CHILD.format(root=str(ROOT), path=str(path), exclusive=exclusive)],
                            stdout=subprocess.PIPE, text=True)
    try:
        done = [int(proc.stdout.readline()) for _ in range(200)]
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    with Nvm(path) as store:
        nvm = store.scope("0011223344556677")
        for i in done[-4:]:
            assert nvm.get("counters", str(i % 4)) >= i  # every acknowledged command is there
        for k in range(4):
            assert nvm.get("state", str(k)) == nvm.get("counters", str(k)) * 10  # transactions whole


async def test_nvm_group_commit_one_fsync_serves_many_commits(tmp_path):
    store = Nvm(tmp_path / "g.db", synchronous="GROUP")
    nvm = store.scope("a")

    async def command(i: int) -> int:
        with nvm.transaction():
            nvm.put("counters", "x", i)
        assert nvm.unsynced
        await nvm.durable()
        assert store._store.synced >= i  # this commit, at least, is on disk
        return i

    assert await asyncio.gather(*(command(i) for i in range(1, 201))) == list(range(1, 201))
    assert not nvm.unsynced
    assert 1 <= store._store.fsyncs < 50  # grouped, not one per commit
    nvm.put("plain", "y", 1)  # nobody awaits it: flushed in the background anyway
    for _ in range(200):
        if not nvm.unsynced:
            break
        await asyncio.sleep(0.01)
    assert not nvm.unsynced
    store.close()
    assert Nvm(None).unsynced is False  # memory and FULL stores never wait


@pytest.mark.parametrize("slow_disk", [False, True])
async def test_nvm_group_commit_batches_the_writes_of_a_flush_into_one_transaction(tmp_path, slow_disk):
    """A fleet worker's reads each write a counter: committed one by one they wrote a WAL page
    each; batched, many writes between two flushes cost one commit. Transactions inside the batch
    are savepoints: one rolled back takes back its own writes only. `slow_disk`: recent fsyncs
    were slow, so they run in the fsync thread (until fast ones bring the average down)."""
    path = tmp_path / "b.db"
    store = Nvm(path, synchronous="GROUP", exclusive=True)
    nvm = store.scope("a")
    if slow_disk:
        store._store.fsync_s = 1.0

    async def command(i: int) -> None:
        nvm.put("counters", str(i % 7), i)
        await nvm.durable()

    for i in range(0, 2000, 100):
        await asyncio.gather(*(command(i + k) for k in range(100)))
    assert os.path.getsize(f"{path}-wal") < 200 * 4096  # 2,000 writes one by one: over 2,000 pages
    nvm.put("kept", "x", 1)
    with pytest.raises(ZeroDivisionError):
        with nvm.transaction():
            nvm.put("gone", "x", 1)
            nvm.log_append("events", {"i": 1})
            1 / 0
    with nvm.transaction():
        nvm.put("kept", "y", 2)
        with pytest.raises(ZeroDivisionError):
            with nvm.transaction():
                nvm.delete("kept", "x")
                1 / 0
        nvm.log_append("events", {"i": 2})
    nvm.clear("counters")
    await nvm.durable()
    if slow_disk:
        assert store._store._fsyncer is not None  # (a fast disk may see a slow fsync too)
    store.close()
    with Nvm(path) as again:
        a = again.scope("a")
        assert a.items("kept") == [("x", 1), ("y", 2)]
        assert a.get("gone", "x") is None and a.keys("counters") == []
        assert a.log_entries("events") == [{"i": 2}]


DISK_FULL_CHILD = textwrap.dedent(
    """
    import asyncio, os, resource, signal, sys
    sys.path.insert(0, {root!r})
    from gbhub.firmware import Nvm, NvmError
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
    store = Nvm({path!r}, synchronous="GROUP", exclusive=True)
    nvm = store.scope("a")

    async def main():
        nvm.put("kv", "before", 1)
        await nvm.durable()
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (os.path.getsize({path!r} + "-wal") + 1, hard))  # the disk is full
        for i in range(50):
            nvm.put("kv", str(i), "x" * 500)
            nvm.log_append("log", {{"i": i}}, capacity=10)
        nvm.delete("kv", "before")
        try:
            await nvm.durable()
            print("durable despite a full disk")
        except NvmError as exc:
            print("refused", exc)
        resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))  # space again
        await nvm.durable()  # nothing written since: the failed batch's writes, again from RAM
        print("durable", flush=True)
        os._exit(0)  # as if killed now: only what the flushes wrote is there
    asyncio.run(main())
    """
)


def test_nvm_group_commit_that_fails_is_written_again_from_ram(tmp_path):
    """Disk full at a group commit: the waiters get NvmError (nothing is acknowledged), the
    batch is rolled back, and the next flush writes what it had touched from the RAM image."""
    path = tmp_path / "full.db"
    r = subprocess.run([sys.executable, "-c", DISK_FULL_CHILD.format(root=str(ROOT), path=str(path))],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("refused NVM") and lines[-1] == "durable", r.stdout
    with Nvm(path) as again:
        a = again.scope("a")
        assert a.get("kv", "before") is None
        assert [a.get("kv", str(i)) for i in range(50)] == ["x" * 500] * 50
        assert a.log_entries("log") == [{"i": i} for i in range(40, 50)]


# ---------------------------------------------------------------------------------- devices
class Meter(Device):
    """A test device: counts half-hour ticks in NVM, keeps a RAM cache, answers commands."""

    kind = "esme"

    async def on_boot(self):
        self.ram["booted_at"] = self.clock.now()
        self.every(HALF_HOUR, lambda t: self.post(("tick", t)))

    async def handle(self, item):
        op, arg = item
        if op == "tick":
            assert self.clock.now() == arg
            self.nvm.put("profile", "ticks", self.nvm.get("profile", "ticks", 0) + 1)
            self.ram["last_tick"] = arg
            return None
        if op == "command":  # state change + counter + log entry, atomically
            party, counter, fail = arg
            with self.nvm.transaction():
                if not self.accept_counter(party, counter):
                    self.log_security(0x8F3E, reason="replay", counter=counter)
                    return "replay"
                self.nvm.put("state", "balance", counter * 10)
                self.log_event(0x0001, counter=counter)
                if fail:
                    raise ValueError("fails after the writes")
            return "ok"
        if op == "boom":
            raise RuntimeError("handler bug")
        if op == "sleep":
            await self.clock.sleep(arg)
            return self.clock.now()
        if op == "reboot":
            self.schedule_reboot()
            return "rebooting"
        if op == "self_off":
            await self.power_off()
        return op


async def test_device_counts_half_hour_ticks_over_days(nvm):
    clock = SimClock(T0)
    meter = Meter(EUI, clock=clock, nvm=nvm)
    await meter.start()
    await clock.advance(10 * DAY)
    assert meter.nvm.get("profile", "ticks") == 480 == meter.handled
    assert meter.ram["last_tick"] % HALF_HOUR == 0
    await meter.power_off()
    await clock.advance(DAY)  # off: no ticks
    await meter.start()
    await clock.advance(DAY)
    assert meter.nvm.get("profile", "ticks") == 528
    await meter.stop()


async def test_device_commands_counters_and_power_cycle(nvm):
    clock = SimClock(T0)
    meter = Meter(EUI, clock=clock, nvm=nvm)
    assert meter.running is False and meter.boot_count == 0
    await meter.start()
    assert meter.running and meter.boot_count == 1 and meter.nvm.prefix == "0011223344556677/"
    assert await meter.call(("command", (PARTY, 5, False))) == "ok"
    assert await meter.call(("command", (PARTY, 5, False))) == "replay"
    with pytest.raises(ValueError):  # fails after its writes: nothing of it lands
        await meter.call(("command", (PARTY, 6, True)))
    assert meter.counters.last(PARTY) == 5 and meter.nvm.get("state", "balance") == 50
    assert [e["counter"] for e in meter.event_log()] == [5]
    assert meter.security_log()[-1]["code"] == 0x8F3E
    await meter.reboot()
    assert meter.boot_count == 2 and "last_tick" not in meter.ram  # RAM dropped, NVM kept
    assert meter.counters.last(PARTY) == 5
    assert await meter.call(("command", (PARTY, 5, False))) == "replay"
    assert await meter.call(("command", (PARTY, 6, False))) == "ok"
    assert [e["counter"] for e in meter.event_log()] == [5, 6]
    assert meter.event_log()[0]["time"] == clock.now()
    await meter.power_off()
    assert meter.state == "off" and meter.ram == {}
    await meter.stop()  # already off: no-op


async def test_device_survives_handler_exceptions():
    clock = SimClock(T0)
    meter = Meter(EUI, clock=clock)
    await meter.start()
    assert meter.post(("boom", None))
    assert await meter.call(("echo", None)) == "echo"
    with pytest.raises(RuntimeError, match="handler bug"):
        await meter.call(("boom", None))
    assert meter.running and meter.fault_count == 2
    assert meter.faults[-1].source == "handle" and "boom" in meter.faults[-1].item

    def bad_timer():
        raise KeyError("timer bug")

    meter.call_later(1, bad_timer)
    await clock.advance(2)
    assert meter.fault_count == 3 and meter.faults[-1].source == "timer"
    assert await meter.call(("echo", None)) == "echo"
    await meter.stop()


async def test_device_off_drops_and_fails_pending_calls():
    clock = SimClock(T0)
    meter = Meter(EUI, clock=clock)
    assert meter.post(("echo", None)) is False and meter.dropped == 1
    with pytest.raises(DeviceOff):
        await meter.call(("echo", None))
    await meter.start()
    sleeping = asyncio.create_task(meter.call(("sleep", 100)))
    queued = asyncio.create_task(meter.call(("echo", None)))
    await clock.advance(1)
    await meter.power_off()
    for task in (sleeping, queued):
        with pytest.raises(DeviceOff):
            await task
    with pytest.raises(DeviceOff):
        meter.call_later(1, print)
    await meter.start()
    answer = asyncio.create_task(meter.call(("sleep", 100)))
    await clock.advance(100)
    assert await answer == clock.now()
    await meter.stop()


async def test_device_bounded_inbox():
    clock = SimClock(T0)
    meter = Meter(EUI, clock=clock, inbox_size=2)
    await meter.start()
    assert meter.post(("echo", 1)) and meter.post(("echo", 2))
    assert not meter.post(("echo", 3)) and meter.dropped == 1
    with pytest.raises(InboxFull):
        await meter.call(("echo", 4))
    await clock.advance(0)
    assert meter.handled == 2
    await meter.stop()


async def test_device_stop_finishes_work():
    clock = SimClock(T0)
    meter = Meter(EUI, clock=clock)
    await meter.start()
    clock.start_autojump()
    try:
        slow = asyncio.create_task(meter.call(("sleep", 60)))
        for i in range(3):
            meter.post(("echo", i))
        await asyncio.sleep(0)
        await meter.stop(drain=True)  # everything queued is handled first
        assert await slow == to_epoch(T0) + 60 and meter.handled == 4
    finally:
        await clock.stop_autojump()
    await meter.start()
    slow = asyncio.create_task(meter.call(("sleep", 60)))
    queued = asyncio.create_task(meter.call(("echo", None)))
    await clock.settle()  # the device is now inside the sleep item
    stopping = asyncio.create_task(meter.stop())  # finishes the current item only
    await clock.settle()
    assert meter.state == "stopping" and not meter.post(("echo", "late"))
    await clock.advance(60)
    await stopping
    assert await slow == to_epoch(T0) + 120 and meter.state == "off"
    with pytest.raises(DeviceOff):
        await queued


async def test_device_reboots_itself_only_via_schedule():
    clock = SimClock(T0)
    meter = Meter(EUI, clock=clock)
    await meter.start()
    assert await meter.call(("reboot", None)) == "rebooting"
    await clock.advance(0)
    assert meter.running and meter.boot_count == 2
    with pytest.raises(FirmwareError):
        await meter.call(("self_off", None))
    assert meter.running
    await meter.stop()


async def test_device_logs_cap_and_clearing_is_recorded(nvm):
    clock = SimClock(T0)
    meter = Meter(EUI, clock=clock, nvm=nvm)
    for i in range(130):
        meter.log_event(0x0100 + i, n=i)
        meter.log_security(0x8F3E, n=i, sender=PARTY)
    events, security = meter.event_log(), meter.security_log()
    assert len(events) == len(security) == 100
    assert events[0]["n"] == 30 and events[-1] == {"time": clock.now(), "code": 0x0100 + 129, "n": 129}
    assert security[-1]["sender"] == PARTY
    await clock.advance(5)
    meter.clear_event_log(requested_by=PARTY)
    assert meter.event_log() == []
    last = meter.security_log()[-1]
    assert last == {"time": clock.now(), "code": EVENT_LOG_CLEARED, "requested_by": PARTY}
    assert len(meter.security_log()) == 100 and not hasattr(meter, "clear_security_log")
    meter.append_log("power", 0x8F35, capacity_test=True)
    assert meter.read_log("power")[0]["code"] == 0x8F35


async def test_device_firmware_slots_persist(tmp_path):
    clock = SimClock(T0)
    path = tmp_path / "fw.db"
    with Nvm(path) as store:
        meter = Meter(EUI, clock=clock, nvm=store, firmware_version="1.0.0")
        assert meter.firmware_version == b"1.0.0"
        await meter.start()
        slots = meter.store_firmware_image(b"\x00\x02", b"\xAA" * 32)
        assert slots.active == "A" and slots.standby == FirmwareImage(b"\x00\x02", b"\xAA" * 32)
        meter.set_firmware(slots.swapped())
        await meter.stop()
    with Nvm(path) as store:  # persisted: the factory version given now is ignored
        meter = Meter(EUI, clock=clock, nvm=store, firmware_version="9.9")
        assert meter.firmware_version == b"\x00\x02"
        assert meter.firmware.active == "B" and meter.firmware.standby.version == b"1.0.0"
        assert meter.next_counter() == 1 and meter.next_counter() == 2
        assert meter.next_counter(floor=1000) == 1000
    with pytest.raises(ValueError):
        FirmwareSlots("C")
    with pytest.raises(ValueError):
        FirmwareSlots("A", FirmwareImage(b"1")).swapped()


async def test_devices_share_one_file(tmp_path):
    clock = SimClock(T0)
    with Nvm(tmp_path / "rig.db") as store:
        meters = [Meter(bytes([i]) * 8, clock=clock, nvm=store) for i in range(3)]
        for i, meter in enumerate(meters):
            await meter.start()
            assert meter.accept_counter(PARTY, 10 + i)
            meter.log_event(i)
        await clock.advance(HALF_HOUR)
        for meter in meters:
            await meter.stop()
    with Nvm(tmp_path / "rig.db") as store:
        for i in range(3):
            dev = store.scope((bytes([i]) * 8).hex().upper())
            assert dev.get("counters", PARTY.hex().upper()) == 10 + i
            assert dev.log_entries("event")[0]["code"] == i
            assert dev.get("profile", "ticks") == 1


def test_device_rejects_unknown_kind():
    with pytest.raises(ValueError):
        Device(EUI, clock=SimClock(T0), kind="toaster")


async def test_device_failed_boot_leaves_it_off():
    class Broken(Meter):
        fail = True

        async def on_boot(self):
            await super().on_boot()
            if self.fail:
                raise RuntimeError("corrupt state")

    clock = SimClock(T0)
    dev = Broken(EUI, clock=clock)
    with pytest.raises(RuntimeError):
        await dev.start()
    assert dev.state == "off" and not dev.post(("echo", None))
    await clock.advance(HALF_HOUR)  # its timers were cancelled
    assert dev.nvm.get("profile", "ticks") is None
    dev.fail = False
    await dev.start()
    assert dev.running and dev.boot_count == 2
    await dev.stop()


def test_nvm_exclusive_keeps_the_file_to_itself_while_open(tmp_path):
    """`exclusive=True` (a fleet worker's store): no other connection reads it while it is open;
    once closed, everything is there for the next opener."""
    path = tmp_path / "x.db"
    store = Nvm(path, synchronous="GROUP", exclusive=True)
    store.scope("a").put("counters", "x", 7)
    other = sqlite3.connect(str(path), timeout=0.1)
    try:
        with pytest.raises(sqlite3.OperationalError):
            other.execute("SELECT count(*) FROM kv").fetchone()
    finally:
        other.close()
    store.close()
    with Nvm(path) as again:
        assert again.scope("a").get("counters", "x") == 7
