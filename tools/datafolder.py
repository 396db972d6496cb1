"""A premises' data folder as `gbhub run` keeps it: who owns it, whether it can start, starting over.

    DATA/gbhub.lock      exclusive flock held by the running `gbhub run` (its PID inside)
    DATA/keys/           test PKI / device keys; made in DATA/.keys-partial and renamed when complete
    DATA/nvm.sqlite      every device's NVM (SQLite WAL)
    DATA/counters.json   the head-end's originator counters (`gbhub.wan.counters`)
    DATA/premises.json   written when the premises is ready (`state`: ready, then stopped)
    DATA/control/        the local control channel (`gbhub.tools.control`)
    DATA/gbhub.log       rotating log of `gbhub run`

A folder is *commissioned* once a premises was ready in it (premises.json exists). Such a folder
never quietly starts over: missing keys or an empty NVM is refused, with `gbhub run --reset` as
the way to start again. Everything here raises `DataFolderError` with one line for the user.
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import sqlite3
from pathlib import Path

from .inputs import Failure

LOCK = "gbhub.lock"
KEYS = "keys"
PARTIAL_KEYS = ".keys-partial"
NVM = "nvm.sqlite"
COUNTERS = "counters.json"
MANIFEST = "premises.json"
CONTROL = "control"
LOG = "gbhub.log"

# what `gbhub run --reset` deletes (everything gbhub made; never other files a user keeps there)
UTRN_COUNTERS = "utrn-counters.json"  # `gbhub utrn`
_RESET = (KEYS, PARTIAL_KEYS, NVM, NVM + "-wal", NVM + "-shm", NVM + "-journal", COUNTERS, COUNTERS + ".lock",
          COUNTERS + ".tmp", MANIFEST, MANIFEST[:-5] + ".tmp", CONTROL, UTRN_COUNTERS, UTRN_COUNTERS + ".tmp",
          UTRN_COUNTERS + ".lock")


class DataFolderError(Failure):
    """The data folder cannot be used as it is (an environment problem: exit 1)."""


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)


def make_folder(data: Path) -> None:
    """Create the data folder (and parents); a file in its place or a read-only parent is one line."""
    if data.exists() and not data.is_dir():
        raise DataFolderError(f"data folder {data} is not a folder")
    try:
        data.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataFolderError(f"cannot create data folder {data}: {_why(exc)}") from None
    if not os.access(data, os.W_OK | os.X_OK):
        raise DataFolderError(f"data folder {data} is not writable")


class FolderLock:
    """The exclusive lock of a data folder: one `gbhub run` per folder. The lock is an flock on
    DATA/gbhub.lock, so the kernel drops it when the process dies (even by SIGKILL)."""

    def __init__(self, data: Path) -> None:
        self.path = data / LOCK
        self.fd: int | None = None

    def acquire(self) -> "FolderLock":
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise DataFolderError(f"cannot open {self.path}: {_why(exc)}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                pid = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            finally:
                os.close(fd)
            raise DataFolderError(f"{self.path.parent} is in use by a running gbhub run (PID {pid}); "
                                  "stop it first (gbhub stop --data DIR)") from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError as exc:
            os.close(fd)
            raise DataFolderError(f"cannot write {self.path}: {_why(exc)}") from None
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing drops the flock; the file stays (its PID is only read while locked)
            self.fd = None


def lock_holder(data: Path) -> str | None:
    """The PID (text) of the `gbhub run` holding DATA's lock, or None when the lock is free. Takes a
    shared flock and drops it at once (`gbhub doctor`): a `gbhub run` starting in that instant
    refuses, as it would with any other holder."""
    try:
        fd = os.open(data / LOCK, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def running_pid(data: Path) -> int | None:
    """The PID of the `gbhub run` holding DATA's lock, or None when none does. Read without
    taking the lock, so a client never makes a starting `gbhub run` refuse."""
    try:
        m = json.loads((data / MANIFEST).read_text())
        pid = int(m.get("pid"))
    except (OSError, ValueError, TypeError):
        return None
    if m.get("state", "ready") != "ready":
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return pid


def commissioned(data: Path) -> bool:
    return (data / MANIFEST).is_file()


def check_resumable(data: Path, needs_pki: bool) -> None:
    """A commissioned folder starts only with its keys and its NVM; the line says how to start over."""
    if not commissioned(data):
        return
    again = f"to start over (new keys, new commissioning) run `gbhub run --reset --data {data}`"
    keys = data / KEYS
    if not keys.is_dir() or (needs_pki and not (keys / "pki.json").is_file()):
        raise DataFolderError(f"{data} was commissioned but its keys folder {keys} is missing; {again}")
    nvm = data / NVM
    if not nvm.is_file() or nvm.stat().st_size == 0:
        raise DataFolderError(f"{data} was commissioned but its NVM {nvm} is missing or empty; {again}")


def check_nvm(data: Path) -> None:
    """Open the NVM file read-only and look at every stored value, so corruption (a truncated
    file, bad JSON inside) is one line at start, not a traceback later."""
    path = data / NVM
    if not path.exists():
        return
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise DataFolderError(f"NVM {path} cannot be opened: {exc}") from None
    try:
        ok = db.execute("PRAGMA quick_check").fetchone()[0]
        if ok != "ok":
            raise DataFolderError(f"NVM {path} is corrupt ({ok}); restore it or run `gbhub run --reset --data {data}`")
        for table, ns, col in (("kv", "ns", "value"), ("log", "name", "entry")):
            for name, raw in db.execute(f"SELECT {ns}, {col} FROM {table}"):
                if isinstance(raw, bytes):
                    continue
                try:
                    json.loads(raw)
                except (TypeError, ValueError):
                    raise DataFolderError(f"NVM {path} is corrupt (bad JSON under {name!r}); restore it or run "
                                          f"`gbhub run --reset --data {data}`") from None
    except sqlite3.DatabaseError as exc:
        raise DataFolderError(f"NVM {path} is corrupt ({exc}); restore it or run `gbhub run --reset --data {data}`") from None
    finally:
        db.close()


def reset_targets(data: Path) -> list[Path]:
    """What `gbhub run --reset` deletes: the files and folders gbhub made that exist."""
    return [data / name for name in _RESET if (data / name).exists() or (data / name).is_symlink()]


def reset(data: Path) -> list[Path]:
    gone = reset_targets(data)
    for p in gone:
        try:
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
        except OSError as exc:
            raise DataFolderError(f"cannot delete {p}: {_why(exc)}") from None
    return gone


def mark_manifest(data: Path, state: str) -> None:
    """Set `state` in an existing premises.json (starting / stopped), atomically."""
    path = data / MANIFEST
    try:
        m = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    m["state"] = state
    tmp = path.with_suffix(".tmp")
    try:
        tmp.write_text(json.dumps(m, indent=2) + "\n")
        os.replace(tmp, path)
    except OSError:
        pass
