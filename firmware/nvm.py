"""Non-volatile memory: namespaced key/value pairs and bounded logs, durable before return.

`Nvm(path)` keeps the data in SQLite (WAL, synchronous=FULL by default), so a SIGKILL or a power
cut right after a call returns loses nothing (with synchronous="GROUP", group commit, a power
cut or a kill may take back writes nobody acknowledged yet: `Nvm` doc). `Nvm(None)` keeps it in memory
only, for fast test premises. Both behave the same: values go through the same JSON rules (a tuple comes back as a
list, a dict key as a str), reads come from an in-memory cache, and `transaction()` is atomic in
both.

Values: None, bool, int, float, str, bytes, or lists/dicts of those (bytes nested in a container
are kept as bytes). Keys and namespaces are str. Log entries are dicts of the same.

Scopes: `nvm.scope(name)` is a view whose namespaces and log names are prefixed `name/`, so many
devices share one database file (one per rig data folder). One process per file; use it from one
thread at a time (the event loop's).

Transactions are synchronous: never `await` inside `with nvm.transaction():` (another task
would write into it; that write raises RuntimeError).

Deferred writes (`with nvm.transaction(), nvm.deferring():`): the key/value writes inside go to the
RAM image only, for state its owner recomputes after a restart by replaying from what is on disk
(a meter's half-hour close: registers, remainders, prepayment charges; `meter.model.close_half_hours`).
They reach the disk together with the next durable write under the deferring view's scope (its
own or a sub-scope's; at that transaction's commit), at `durable()` of that scope (which a device
awaits before it acknowledges anything), or at `close()`. So the disk always holds a consistent
state of that scope from which the replay gives what RAM held, and a quiet device writes nothing
while its closes are pure model. A write that leaves a value as it is writes nothing.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import queue
import sqlite3
import threading
import time
from collections import deque
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

__all__ = ["Nvm", "NvmView", "NvmError"]

log = logging.getLogger(__name__)

_SCALARS = (type(None), bool, int, float, str)
_INLINE_FSYNC_S = 0.0004  # group commit: an fsync up to this long (recent average) runs on the loop
_BYTES_TAG = "$bytes"
_MISSING = object()

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    ns    TEXT NOT NULL,
    key   TEXT NOT NULL,
    value BLOB,
    PRIMARY KEY (ns, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS log (
    name  TEXT NOT NULL,
    seq   INTEGER NOT NULL,
    entry TEXT NOT NULL,
    PRIMARY KEY (name, seq)
) WITHOUT ROWID;
"""


class NvmError(Exception):
    """Misuse of NVM (closed store, cross-task write inside a transaction), or the store failing
    to read or write (disk full, read-only, corrupt file): the message says which."""


def _failed(path: Path | None, exc: sqlite3.Error) -> NvmError:
    return NvmError(f"NVM {path}: {exc}")


# id(stored JSON text) -> (that text, its decoded value); the text object is kept alive with its
# value, so an id can only match the very same stored version.
_PEEK_MEMO: dict[int, tuple[Any, Any]] = {}


class _Json(str):
    """A container value held as its JSON text, so callers never share a mutable object."""

    __slots__ = ()


def _tag_bytes(obj: Any) -> Any:
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return {_BYTES_TAG: bytes(obj).hex()}
    raise TypeError(f"NVM cannot store {type(obj).__name__}")


def _untag_bytes(d: dict) -> Any:
    if len(d) == 1 and _BYTES_TAG in d:
        return bytes.fromhex(d[_BYTES_TAG])
    return d


def _dumps(value: Any) -> str:
    return json.dumps(value, default=_tag_bytes, separators=(",", ":"))


def _loads(text: str) -> Any:
    if _BYTES_TAG in text:
        return json.loads(text, object_hook=_untag_bytes)
    return json.loads(text)


def _to_cache(value: Any) -> Any:
    """The cached (immutable) form of a value; raises TypeError for what NVM cannot store."""
    if type(value) in _SCALARS:
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    return _Json(_dumps(value))


def _from_cache(cached: Any) -> Any:
    return _loads(cached) if type(cached) is _Json else cached


def _to_db(cached: Any) -> Any:
    if type(cached) is bytes:
        return cached
    if type(cached) is _Json:
        return str(cached)
    return json.dumps(cached)


def _from_db(raw: Any) -> Any:
    if isinstance(raw, bytes):
        return raw
    value = _loads(raw)
    return value if type(value) in _SCALARS else _Json(raw)


def _scopes(prefix: str) -> list[str]:
    """A view prefix and the prefixes of the scopes around it: "a/b/" -> "", "a/", "a/b/"."""
    out = [""]
    i = prefix.find("/")
    while i >= 0:
        out.append(prefix[:i + 1])
        i = prefix.find("/", i + 1)
    return out


def _current_task() -> asyncio.Task | None:
    try:
        return asyncio.current_task()
    except RuntimeError:
        return None


class _Log:
    __slots__ = ("entries", "last_seq")

    def __init__(self) -> None:
        self.entries: deque[str] = deque()  # JSON texts, oldest first
        self.last_seq = 0  # seq of the newest entry (or of the last dropped one)


class _Store:
    """The shared state behind every view: caches, the SQLite connection, the transaction."""

    def __init__(self, path: str | Path | None, synchronous: str, exclusive: bool = False) -> None:
        self.path = None if path is None else Path(path)
        self.exclusive = exclusive and self.path is not None
        self.kv: dict[str, dict[str, Any]] = {}
        self.logs: dict[str, _Log] = {}
        self.depth = 0
        self.owner: asyncio.Task | None = None
        self.undo: list[Any] = []
        self.closed = False
        self.db: sqlite3.Connection | None = None
        # group commit (synchronous="GROUP"): commits so far / made durable by an fsync of the WAL
        self.group = synchronous == "GROUP" and self.path is not None
        self.committed = 0
        self.synced = 0
        self.fsyncs = 0
        self._flush: asyncio.Future | None = None
        self._fsyncer: queue.SimpleQueue | None = None  # the group's fsync thread's requests
        self._fsyncer_pid = 0  # the process that thread runs in (a fork has no threads)
        self.fsync_s = 0.0  # recent fsync time (moving average): on the loop while it is short
        # group commit batches the SQL too: the writes between two flushes are one SQLite
        # transaction (`batch`), committed by the flush just before its fsync; what the batch
        # touched is remembered until a commit succeeds, so a failed one is rewritten from RAM
        self.batch = False
        self.lost = False
        self.dirty_kv: set[tuple[str, str | None]] = set()
        self.dirty_logs: set[str] = set()
        # deferred writes (module doc): deferring view prefix -> kv (namespace, key) in RAM only
        self.deferred: dict[str, dict[tuple[str, str], None]] = {}
        self.defer_prefix: str | None = None  # inside `deferring()`: whose writes are deferred
        self.settle_due: set[str] = set()  # writers' prefixes the open transaction settles at its commit
        self.statements = 0  # SQL writes executed (`gbhub bench fleet` counts a day's)
        self.opened = 0  # transaction levels whose BEGIN / SAVEPOINT ran (`_Transaction` doc)
        self.level0_batched = False  # the outermost one is a savepoint of the group's batch
        if self.group:
            synchronous = "NORMAL"
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = None
            try:
                db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
                if exclusive:  # before WAL mode: no shared-memory index, no file locks per transaction
                    db.execute("PRAGMA locking_mode=EXCLUSIVE")
                mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise NvmError(f"cannot put {self.path} in WAL mode (got {mode})")
                db.execute(f"PRAGMA synchronous={synchronous}")
                db.execute("PRAGMA busy_timeout=5000")
                db.executescript(_SCHEMA)
            except (sqlite3.Error, NvmError) as exc:
                if db is not None:
                    db.close()
                raise exc if isinstance(exc, NvmError) else _failed(self.path, exc) from None
            self.db = db

    # -- group commit --
    def note_commit(self) -> None:
        """A write is in the batch (or, without an event loop, committed to the WAL file): flush
        soon, in the background, so writes nobody awaits become durable too."""
        self.committed += 1
        if self._flush is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no event loop (start-up, tools): durable at once
                self.fsync()
                return
            self._start_flush(loop)

    def _fsync_wal(self, first: bool | None = None) -> None:
        """fsync the WAL file (through a descriptor of its own, so the fsync thread never races
        `close`); the first time also the folder, for the WAL's entry."""
        wal = f"{self.path}-wal"
        if self.synced == 0 if first is None else first:
            dfd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        try:
            fd = os.open(wal, os.O_RDONLY)
        except FileNotFoundError:  # checkpointed away on close: the database file has it all
            return
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def fsync(self) -> None:
        """Make every commit so far durable now (blocking); NvmError or OSError if the disk refuses."""
        target = self.committed
        if self.synced < target and self.db is not None:
            self.commit_batch()
            self._fsync_wal()
            self.fsyncs += 1
            self.synced = target

    def _start_flush(self, loop: asyncio.AbstractEventLoop) -> asyncio.Future:
        fut = self._flush = loop.create_future()
        fut.gbhub_target = self.committed
        loop.call_soon(self._flush_now, fut)

        def done(f: asyncio.Future) -> None:
            if self._settle(f) and self.synced < self.committed and not self.closed:
                self._start_flush(loop)

        fut.add_done_callback(done)
        return fut

    def _flush_now(self, fut: asyncio.Future) -> None:
        """Commit the group's batch, on the event loop after the callbacks that were ready when
        the flush was asked for (their writes ride on it too), and fsync it: on the loop while
        recent fsyncs took at most `_INLINE_FSYNC_S`, else in the fsync thread, where the loop goes
        on while the disk works and what is written meanwhile is the next group. (On the loop
        only, a busy disk's fsyncs, over 1 ms each, kept a fleet worker at 1,500 commands a second
        waiting for the disk most of the time; in the thread only, each flush's GIL hand-offs cost
        a fleet worker ~20-35 us of CPU a command on an idle disk, whose fsync takes ~0.1 ms.)"""
        if fut.done():
            return
        loop = asyncio.get_running_loop()
        if self.depth:  # a transaction is open (awaiting inside one is refused): after it
            loop.call_soon(self._flush_now, fut)
            return
        fut.gbhub_target = self.committed
        if self.closed:  # close() made every commit durable itself
            fut.set_result(None)
            return
        try:
            self.commit_batch()
        except NvmError as exc:
            fut.set_exception(exc)
            return
        if self.fsync_s <= _INLINE_FSYNC_S:
            t = time.perf_counter()
            try:
                self._fsync_wal()
            except OSError as exc:
                fut.set_exception(exc)
                return
            self._fsynced(fut, None, time.perf_counter() - t)
            return
        if self._fsyncer is None or self._fsyncer_pid != os.getpid():
            self._fsyncer, self._fsyncer_pid = queue.SimpleQueue(), os.getpid()
            threading.Thread(target=self._fsync_thread, args=(self._fsyncer,), name=f"gbhub-nvm-fsync {self.path.name}",
                             daemon=True).start()
        self._fsyncer.put((fut, loop, self.synced == 0))

    def _fsync_thread(self, requests: queue.SimpleQueue) -> None:
        """Serve flushes until the store closes. The WAL stays open here between them (the store
        is open, so the WAL file stays): each system call drops and takes back the GIL, which
        the event loop's thread holds most of the time."""
        fd = -1
        try:
            while (item := requests.get()) is not None:
                fut, loop, first = item
                error = None
                t = time.perf_counter()
                try:
                    if fd < 0 or first:
                        self._fsync_wal(first)  # the folder too, the first time
                        if fd < 0:
                            try:
                                fd = os.open(f"{self.path}-wal", os.O_RDONLY)
                            except FileNotFoundError:  # nothing in a WAL yet: next time
                                pass
                    else:
                        os.fsync(fd)
                except OSError as exc:
                    error = exc
                try:
                    loop.call_soon_threadsafe(self._fsynced, fut, error, time.perf_counter() - t)
                except RuntimeError:  # the loop is closed: nobody waits any more
                    pass
        finally:
            if fd >= 0:
                os.close(fd)

    def _fsynced(self, fut: asyncio.Future, error: OSError | None, seconds: float) -> None:
        self.fsync_s += 0.2 * (seconds - self.fsync_s)
        if fut.done():
            return
        if error is not None:
            fut.set_exception(error)
        else:
            self.fsyncs += 1
            fut.set_result(None)

    def _settle(self, f: asyncio.Future) -> bool:
        """Account for a finished flush (once; from its callback or from a waiter that got
        there first); True if it succeeded."""
        if self._flush is f:
            self._flush = None
        if f.cancelled() or f.exception() is not None:
            if not getattr(f, "gbhub_logged", False):
                f.gbhub_logged = True
                log.error("NVM %s: fsync failed: %s", self.path, "cancelled" if f.cancelled() else f.exception())
            return False  # the next commit or durable() tries again
        self.synced = max(self.synced, f.gbhub_target)
        return True

    async def durable(self) -> None:
        """Return once every commit made so far is on disk (one fsync serves every waiter);
        raises NvmError if the disk refuses."""
        target = self.committed
        while self.synced < target:
            if self.closed:
                raise NvmError("NVM is closed")
            fut = self._flush
            if fut is None:
                fut = self._start_flush(asyncio.get_running_loop())
            try:
                await asyncio.shield(fut)
            except OSError as exc:
                raise NvmError(f"NVM {self.path}: fsync failed: {exc}") from None
            finally:
                if fut.done():
                    self._settle(fut)  # its callback may not have run yet

    # -- loading (lazy, per namespace / log) --
    def ns(self, ns: str) -> dict[str, Any]:
        d = self.kv.get(ns)
        if d is None:
            if self.closed:
                raise NvmError("NVM is closed")
            d = {}
            if self.db is not None:
                for key, raw in self.db.execute("SELECT key, value FROM kv WHERE ns=?", (ns,)):
                    d[key] = _from_db(raw)
            self.kv[ns] = d
        return d

    def log(self, name: str) -> _Log:
        lg = self.logs.get(name)
        if lg is None:
            if self.closed:
                raise NvmError("NVM is closed")
            lg = _Log()
            if self.db is not None:
                for seq, entry in self.db.execute(
                    "SELECT seq, entry FROM log WHERE name=? ORDER BY seq", (name,)
                ):
                    lg.entries.append(entry)
                    lg.last_seq = seq
            self.logs[name] = lg
        return lg

    # -- writes --
    def check_writer(self) -> None:
        if self.closed:
            raise NvmError("NVM is closed")
        if self.depth and self.owner is not _current_task():
            raise NvmError("an NVM transaction is open in another task (await inside transaction()?)")

    def open_levels(self) -> None:
        """Open the SQL transaction and savepoints of the `transaction()` levels not opened yet
        (before their first write); in the group's batch the outermost is a savepoint of it."""
        db = self.db
        for d in range(self.opened, self.depth):
            if d == 0:
                self.level0_batched = self.group and self._open_batch()
                db.execute("SAVEPOINT s0" if self.level0_batched else "BEGIN IMMEDIATE")
            else:
                db.execute(f"SAVEPOINT s{d}")
            self.opened = d + 1

    # -- deferred writes (module doc) --
    def has_deferred(self, prefix: str) -> bool:
        deferred = self.deferred
        return bool(deferred) and any(p in deferred for p in _scopes(prefix))

    def _take_deferred(self, prefixes: list[str]) -> dict[str, dict[tuple[str, str], None]]:
        deferred = self.deferred
        return {p: deferred.pop(p) for p in prefixes if p in deferred}

    def _give_back(self, taken: dict[str, dict[tuple[str, str], None]]) -> None:
        """Writing `taken` failed or was rolled back: deferred again."""
        for p, keys in taken.items():
            self.deferred.setdefault(p, {}).update(keys)

    def _settle_sql(self, taken: dict[str, dict[tuple[str, str], None]],
                    skip: tuple[str, str | None] | str | None = None) -> list[tuple[str, tuple]]:
        """The statements writing the RAM values of `taken` (`skip`: what the write they join
        writes itself)."""
        out = []
        for keys in taken.values():
            for full, key in keys:
                if type(skip) is tuple and skip[0] == full and (skip[1] is None or skip[1] == key):
                    continue
                d = self.kv.get(full, {})
                if key in d:
                    out.append(("INSERT OR REPLACE INTO kv VALUES (?,?,?)", (full, key, _to_db(d[key]))))
                else:
                    out.append(("DELETE FROM kv WHERE ns=? AND key=?", (full, key)))
                if self.group:
                    self.dirty_kv.add((full, key))
        return out

    def settle_due_now(self) -> None:
        """At the outermost commit: write what the transaction's durable writes settle (their
        scopes' deferred values, as RAM holds them now); given back if the commit fails."""
        due, self.settle_due = self.settle_due, set()
        taken = self._take_deferred(sorted({p for w in due for p in _scopes(w)}))
        if not taken:
            return
        self.undo.append(lambda: self._give_back(taken))
        self._execute(self._settle_sql(taken), None)

    def settle(self, prefixes: list[str]) -> None:
        """Write the deferred values of `prefixes` now (outside a transaction: one durable unit)."""
        taken = self._take_deferred(prefixes)
        if taken:
            self._run(self._settle_sql(taken), None, taken)

    def run(self, statements: list[tuple[str, tuple]], touched: tuple[str, str | None] | str,
            prefix: str) -> None:
        """Execute statements durably: inside the open transaction, in the group's batch, or as
        one committed unit, with the deferred values of the writer's (`prefix`) scopes (module
        doc). `touched`: the kv (namespace, key; key None for all of it) or the log name they
        write. A failing write (disk full, read-only) raises NvmError."""
        taken = None
        if self.deferred:
            if self.depth:
                self.settle_due.add(prefix)
            else:
                taken = self._take_deferred(_scopes(prefix))
                statements = statements + self._settle_sql(taken, touched)
        self._run(statements, touched, taken)

    def _run(self, statements: list[tuple[str, tuple]], touched: tuple[str, str | None] | str | None,
             taken: dict[str, dict[tuple[str, str], None]] | None = None) -> None:
        """`run`'s work; `touched` None: only deferred values (`_settle_sql` marks them), `taken`
        given back should the write fail."""
        try:
            self._execute(statements, touched)
        except BaseException:
            if taken:
                self._give_back(taken)
            raise

    def _execute(self, statements: list[tuple[str, tuple]], touched: tuple[str, str | None] | str | None) -> None:
        db = self.db
        self.statements += len(statements)
        try:
            if self.depth and self.opened < self.depth:
                self.open_levels()
            if self.depth or (self.group and self._open_batch()):
                if self.batch and touched is not None:
                    (self.dirty_logs.add if type(touched) is str else self.dirty_kv.add)(touched)
                if self.depth or len(statements) == 1:
                    for sql, params in statements:
                        db.execute(sql, params)
                else:  # several statements land together inside the batch
                    db.execute("SAVEPOINT w")
                    try:
                        for sql, params in statements:
                            db.execute(sql, params)
                    except BaseException:
                        db.execute("ROLLBACK TO w")
                        raise
                    finally:
                        db.execute("RELEASE w")
                if not self.depth:
                    self.note_commit()
                return
            if len(statements) == 1:
                db.execute(*statements[0])  # autocommit: one durable transaction
                if self.group:
                    self.note_commit()
                return
            db.execute("BEGIN IMMEDIATE")
            try:
                for sql, params in statements:
                    db.execute(sql, params)
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            if self.group:
                self.note_commit()
        except sqlite3.Error as exc:
            raise _failed(self.path, exc) from None

    def _open_batch(self) -> bool:
        """Group commit with an event loop running: make sure the batch transaction is open (a
        lost batch's writes first); False without a loop (start-up, tools: each write commits
        and is synced at once)."""
        if self.batch:
            return True
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return False
        self._begin()
        return True

    def _begin(self) -> None:
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        self.batch = True
        if self.lost:
            try:
                self._rewrite(db)
            except BaseException:
                db.execute("ROLLBACK")
                self.batch = False
                raise
            self.lost = False

    def _rewrite(self, db: sqlite3.Connection) -> None:
        """Write again, from the RAM image, what a batch that failed to commit had touched."""
        put = "INSERT OR REPLACE INTO kv VALUES (?,?,?)"
        for ns, key in self.dirty_kv:
            d = self.kv.get(ns, {})
            if key is None:
                db.execute("DELETE FROM kv WHERE ns=?", (ns,))
                db.executemany(put, [(ns, k, _to_db(v)) for k, v in d.items()])
            elif key in d:
                db.execute(put, (ns, key, _to_db(d[key])))
            else:
                db.execute("DELETE FROM kv WHERE ns=? AND key=?", (ns, key))
        taken = self._take_deferred(list(self.deferred))  # whole scopes, consistent with the above
        try:
            for sql, params in self._settle_sql(taken):
                db.execute(sql, params)
        except BaseException:
            self._give_back(taken)
            raise
        for name in self.dirty_logs:
            lg = self.logs[name]
            db.execute("DELETE FROM log WHERE name=?", (name,))
            first = lg.last_seq - len(lg.entries) + 1
            db.executemany("INSERT INTO log VALUES (?,?,?)", [(name, first + i, t) for i, t in enumerate(lg.entries)])

    def commit_batch(self) -> None:
        """Commit the group's batch (before its fsync). On failure the batch is rolled back and
        rewritten from RAM by the next one; raises NvmError."""
        db = self.db
        try:
            if not self.batch:
                if not self.lost:
                    return
                self._begin()  # nothing written since the batch that failed: write it again now
        except sqlite3.Error as exc:
            raise _failed(self.path, exc) from None
        self.batch = False
        try:
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            self.lost = True
            try:
                if db.in_transaction:
                    db.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            raise _failed(self.path, exc) from None
        self.dirty_kv.clear()
        self.dirty_logs.clear()

    def rollback_to(self, mark: int) -> None:
        undo = self.undo
        while len(undo) > mark:
            item = undo.pop()
            if type(item) is tuple:
                d, key, old = item
                if old is _MISSING:
                    d.pop(key, None)
                else:
                    d[key] = old
            else:
                try:
                    item()
                except Exception:  # a rollback hook must not stop the others
                    log.exception("NVM rollback hook failed")


class _Transaction:
    """`Nvm.transaction()`. Its SQL transaction (or savepoint) opens only with its first SQL write
    (`_Store.open_levels`): one that writes nothing (a meter's pure half-hour close, all of it
    deferred) costs no statement and no commit."""

    __slots__ = ("_store", "_depth", "_mark")

    def __init__(self, store: _Store) -> None:
        self._store = store

    def __enter__(self) -> "_Transaction":
        store = self._store
        if store.closed:
            raise NvmError("NVM is closed")
        task = _current_task()
        if store.depth and store.owner is not task:
            raise NvmError("an NVM transaction is open in another task (await inside transaction()?)")
        self._depth = depth = store.depth
        self._mark = len(store.undo)
        if depth == 0:
            store.owner = task
        store.depth = depth + 1
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        store, depth = self._store, self._depth
        db = store.db
        committed = False
        try:
            if exc_type is not None:
                self._undo()
                return
            if db is None:
                return
            try:
                if depth == 0 and store.settle_due:
                    store.settle_due_now()
                if store.opened > depth:
                    db.execute(f"RELEASE s{depth}" if self._savepoint() else "COMMIT")
                    committed = True
            except BaseException as exc:
                self._undo()
                if isinstance(exc, sqlite3.Error):
                    raise _failed(store.path, exc) from None
                raise
        finally:
            store.depth = depth
            store.opened = min(store.opened, depth)
            if depth == 0:
                store.undo.clear()
                store.settle_due.clear()
                store.owner = None
        if committed and depth == 0 and store.group:
            store.note_commit()

    def _savepoint(self) -> bool:
        return self._depth > 0 or self._store.level0_batched

    def _undo(self) -> None:
        """Take back this level: its SQL (if it opened any) and its RAM writes."""
        store = self._store
        if store.db is not None and store.opened > self._depth:
            self._rollback_db(store.db, self._depth, self._savepoint())
        store.rollback_to(self._mark)

    @staticmethod
    def _rollback_db(db: sqlite3.Connection, depth: int, savepoint: bool) -> None:
        try:
            if not savepoint:
                if db.in_transaction:
                    db.execute("ROLLBACK")
            else:
                db.execute(f"ROLLBACK TO s{depth}")
                db.execute(f"RELEASE s{depth}")
        except sqlite3.Error as exc:  # the store is failing; the caller's error says why
            log.warning("NVM rollback failed: %s", exc)


class NvmView:
    """The NVM API over a store, with a name prefix (see `scope`)."""

    __slots__ = ("_store", "prefix")

    def __init__(self, store: _Store, prefix: str) -> None:
        self._store = store
        self.prefix = prefix

    def scope(self, name: str) -> "NvmView":
        """A view whose namespaces and logs live under `name/` (e.g. a device's EUI in hex)."""
        if not name or "/" in name:
            raise ValueError("scope name must be non-empty and contain no '/'")
        return NvmView(self._store, f"{self.prefix}{name}/")

    @property
    def unsynced(self) -> bool:
        """Commits are waiting for their fsync (only ever with synchronous="GROUP"), or this
        scope has deferred writes (module doc)."""
        store = self._store
        return store.synced < store.committed or store.has_deferred(self.prefix)

    async def durable(self) -> None:
        """Wait until every commit so far, and this scope's deferred writes, are on disk: at
        once unless synchronous="GROUP" (then one fsync of the WAL serves every commit made
        before it started)."""
        store = self._store
        if store.deferred:
            self.settle()
        if store.synced < store.committed:
            await store.durable()

    def settle(self) -> None:
        """Write this scope's deferred values (module doc) now, or at the commit of the open
        transaction."""
        store = self._store
        if not store.has_deferred(self.prefix):
            return
        store.check_writer()
        if store.depth:
            store.settle_due.add(self.prefix)
        else:
            store.settle(_scopes(self.prefix))

    @contextmanager
    def deferring(self) -> Iterator[None]:
        """Inside a transaction: defer its key/value writes (module doc) to this scope's next
        durable write, `durable()` or `close()`. Only for state replayed after a restart."""
        store = self._store
        if not store.depth:
            raise NvmError("deferring() belongs inside a transaction")
        outer = store.defer_prefix
        if outer is None:
            store.defer_prefix = self.prefix
        try:
            yield
        finally:
            store.defer_prefix = outer

    @property
    def persistent(self) -> bool:
        return self._store.db is not None

    @property
    def in_transaction(self) -> bool:
        return self._store.depth > 0

    # -- key/value --
    def get(self, ns: str, key: str, default: Any = None) -> Any:
        cached = self._store.ns(self.prefix + ns).get(key, _MISSING)
        if cached is _MISSING:
            return default
        return _loads(cached) if type(cached) is _Json else cached

    def peek(self, ns: str, key: str, default: Any = None) -> Any:
        """Like `get`, but the value may be shared with other callers: never mutate it. Decoded
        once per stored version, so hot read paths (a register read per command) skip the JSON
        decode that `get` pays to hand out a private copy."""
        cached = self._store.ns(self.prefix + ns).get(key, _MISSING)
        if cached is _MISSING:
            return default
        if type(cached) is not _Json:
            return cached
        memo = _PEEK_MEMO
        hit = memo.get(id(cached))
        if hit is not None and hit[0] is cached:
            return hit[1]
        value = _loads(cached)
        if len(memo) >= 4096:
            memo.clear()
        memo[id(cached)] = (cached, value)
        return value

    def put(self, ns: str, key: str, value: Any) -> None:
        """Store `value`; durable when this returns (or when the enclosing transaction commits;
        inside `deferring()`, later: module doc). Storing the value a key holds writes nothing."""
        if type(key) is not str:
            raise TypeError("NVM keys are str")
        store = self._store
        cached = _to_cache(value)
        full = self.prefix + ns
        d = store.ns(full)
        old = d.get(key, _MISSING)
        if store.depth or store.db is not None:
            store.check_writer()
        if type(old) is type(cached) and old == cached:
            return
        if store.db is not None:
            if store.depth and store.defer_prefix is not None:
                store.deferred.setdefault(store.defer_prefix, {})[(full, key)] = None
            else:
                store.run([("INSERT OR REPLACE INTO kv VALUES (?,?,?)", (full, key, _to_db(cached)))], (full, key),
                          self.prefix)
        if store.depth:
            store.undo.append((d, key, old))
        d[key] = cached

    def delete(self, ns: str, key: str) -> bool:
        """Remove `key`; returns whether it was there."""
        store = self._store
        full = self.prefix + ns
        d = store.ns(full)
        if key not in d:
            return False
        store.check_writer()
        if store.db is not None:
            store.run([("DELETE FROM kv WHERE ns=? AND key=?", (full, key))], (full, key), self.prefix)
        if store.depth:
            store.undo.append((d, key, d[key]))
        del d[key]
        return True

    def items(self, ns: str) -> list[tuple[str, Any]]:
        """(key, value) pairs of a namespace, in key order."""
        return [(k, _from_cache(v)) for k, v in sorted(self._store.ns(self.prefix + ns).items())]

    def keys(self, ns: str) -> list[str]:
        return sorted(self._store.ns(self.prefix + ns))

    def clear(self, ns: str) -> None:
        """Remove every key of a namespace."""
        store = self._store
        full = self.prefix + ns
        d = store.ns(full)
        store.check_writer()
        if store.db is not None:
            store.run([("DELETE FROM kv WHERE ns=?", (full,))], (full, None), self.prefix)
        if store.depth:
            snapshot = dict(d)
            store.undo.append(lambda: (d.clear(), d.update(snapshot)))
        d.clear()

    # -- transactions --
    def transaction(self) -> _Transaction:
        """`with nvm.transaction():` — every write inside lands together or not at all (an
        exception leaving the block undoes them, in the cache too). Nests (inner blocks are
        savepoints). Covers the whole store, not just this view's scope."""
        return _Transaction(self._store)

    def on_rollback(self, callback: Callable[[], Any]) -> None:
        """Inside a transaction: call `callback()` if it rolls back (for RAM state derived from
        NVM writes). Outside a transaction: nothing."""
        if self._store.depth:
            self._store.undo.append(callback)

    # -- bounded logs --
    def log_append(self, name: str, entry: dict, capacity: int = 100) -> None:
        """Append `entry`; beyond `capacity` entries the oldest are dropped (FIFO)."""
        if not isinstance(entry, dict):
            raise TypeError("log entries are dicts")
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        store = self._store
        full = self.prefix + name
        lg = store.log(full)
        text = _dumps(entry)
        seq = lg.last_seq + 1
        if store.depth or store.db is not None:
            store.check_writer()
        if store.db is not None:
            store.run(
                [
                    ("INSERT INTO log VALUES (?,?,?)", (full, seq, text)),
                    ("DELETE FROM log WHERE name=? AND seq<=?", (full, seq - capacity)),
                ],
                full,
                self.prefix,
            )
        entries = lg.entries
        if store.depth:
            snapshot, last = list(entries), lg.last_seq
            store.undo.append(lambda: (entries.clear(), entries.extend(snapshot), setattr(lg, "last_seq", last)))
        entries.append(text)
        lg.last_seq = seq
        while len(entries) > capacity:
            entries.popleft()

    def log_entries(self, name: str) -> list[dict]:
        """All entries, oldest first."""
        return [_loads(t) for t in self._store.log(self.prefix + name).entries]

    def log_len(self, name: str) -> int:
        return len(self._store.log(self.prefix + name).entries)

    def log_clear(self, name: str) -> None:
        store = self._store
        full = self.prefix + name
        lg = store.log(full)
        store.check_writer()
        if store.db is not None:
            store.run([("DELETE FROM log WHERE name=?", (full,))], full, self.prefix)
        entries = lg.entries
        if store.depth:
            snapshot = list(entries)
            store.undo.append(lambda: (entries.clear(), entries.extend(snapshot)))
        entries.clear()

    def __repr__(self) -> str:
        where = self._store.path or "memory"
        return f"<NvmView {where} {self.prefix!r}>"


class Nvm(NvmView):
    """The root of one store: `Nvm(path)` for SQLite in WAL mode, `Nvm(None)` for memory only.

    `synchronous` is SQLite's PRAGMA synchronous: FULL (default) survives power cuts; NORMAL
    survives process kills but may lose the last commits on power loss. GROUP is group commit:
    while an event loop runs, the writes between two flushes are one SQLite transaction (each
    `transaction()` a savepoint of it) and a flush commits it and fsyncs the WAL once; whoever
    acknowledges something awaits `durable()` first (a device before sending a response or an
    alert, `GbcsDevice._send_one`), other writes are flushed soon anyway. So a power cut or a
    process kill takes back only writes nobody acknowledged. A flush commits on the event loop
    once the callbacks ready at the first write have run (their writes ride on it) and fsyncs,
    one fsync at a time: on the loop while recent fsyncs were short, else in a thread of its own
    while the loop goes on and what it writes meanwhile is the next group (`_Store._flush_now`).
    So a store shared by many devices (a fleet worker's) pays one commit and one fsync for many
    commands, more of them the slower the disk. (Committed one by one, a fleet worker's reads
    wrote a 4 KiB WAL page each, 7 MB/s a worker at 1,500 reads/s; fsynced on the loop whatever
    the disk, a busy disk's 1 ms fsyncs stopped it most of the time.) A batch whose commit
    fails (disk full) is rolled back and written again from RAM by the next one; its waiters
    get NvmError. Without an event loop (start-up, tools) each write commits and is synced at once.

    `exclusive`: the process keeps the file locked while it is open (SQLite's EXCLUSIVE locking
    mode, set before WAL: no shared-memory index and no file-lock system calls per transaction,
    about six per command); no other process can read the store meanwhile. For stores only their
    own process ever opens (a fleet worker's)."""

    __slots__ = ()

    def __init__(self, path: str | Path | None = None, *, synchronous: str = "FULL", exclusive: bool = False) -> None:
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA", "GROUP"):
            raise ValueError(f"bad synchronous mode {synchronous!r}")
        super().__init__(_Store(path, synchronous.upper(), exclusive), "")

    @property
    def path(self) -> Path | None:
        return self._store.path

    @property
    def statements(self) -> int:
        """SQL writes executed so far (`gbhub bench fleet` counts a simulated day's)."""
        return self._store.statements

    @property
    def exclusive(self) -> bool:
        """The file is this process's alone while open (class doc)."""
        return self._store.exclusive

    def close(self) -> None:
        store = self._store
        if store.closed:
            return
        if store.depth:
            raise NvmError("cannot close NVM inside a transaction")
        if store.deferred and store.db is not None:
            try:
                store.settle(list(store.deferred))
            except NvmError as exc:
                log.error("NVM %s: writing deferred values at close failed: %s", store.path, exc)
        if store.group and store.db is not None:
            try:
                store.fsync()
            except (OSError, NvmError) as exc:
                log.error("NVM %s: commit or fsync at close failed: %s", store.path, exc)
        store.closed = True
        if store._fsyncer is not None:
            store._fsyncer.put(None)
            store._fsyncer = None
        store.kv.clear()
        store.logs.clear()
        if store.db is not None:
            store.db.close()
            store.db = None

    def __enter__(self) -> "Nvm":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
