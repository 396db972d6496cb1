"""The head-end's originator counters, persisted per originator in a file (`DATA/counters.json`).

A device accepts a command only when its originator counter is above the last one it accepted from
that originator, so the counters a head-end uses must only ever grow: across restarts, across clock
speeds (`gbhub run --speed`), and across processes sharing a data folder (`gbhub run`'s own head-end,
every `gbhub send`). Wall-clock milliseconds do none of that; this store does.

Counters are reserved in blocks (`block`, default 4096): the file records the top of each
originator's last reserved block, written (temporary file, fsync, rename) under an exclusive lock
(`counters.json.lock`) only when a block runs out, so a benchmark pays one file write per block.
A process that starts, or whose block runs out, continues above the file's top, i.e. above every
counter any process reserved before it. `resync(party)` drops the current block, so the next counter
comes from above the file's top: what a head-end does once when a device rejects a counter as a replay.
"""
from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

from gbcs.codec import eui_hex

COUNTER_MAX = (1 << 64) - 1
DEFAULT_BLOCK = 4096


class CounterFileError(OSError):
    """The counter file cannot be read (corrupt) or written (disk full, read-only folder)."""


class HeadEndCounters:
    """Strictly increasing originator counters, persisted in `path` (None: memory only)."""

    def __init__(self, path: str | os.PathLike | None, *, block: int = DEFAULT_BLOCK) -> None:
        if block < 1:
            raise ValueError("block must be at least 1")
        self.path = None if path is None else Path(path)
        self.block = block
        self._last: dict[bytes, int] = {}  # last counter handed out, per originator
        self._top: dict[bytes, int] = {}  # top of the reserved block (inclusive), per originator
        if self.path is not None:
            self._read()  # a corrupt file is reported now, not at the first command

    # -- public ----------------------------------------------------------------------------
    def take(self, party: bytes, at_least: int = 0, *, align: int = 0) -> int:
        """The next counter for `party`: above every one taken before (by any process sharing the
        file) and at least `at_least`; with `align` = k, a multiple of 2**k (UTRN counters)."""
        last = self._last.get(party)
        counter = max(at_least, 0 if last is None else last + 1)
        counter = _round_up(counter, align)
        if counter > self._top.get(party, -1):
            counter = self._reserve(party, counter, align)
        if counter > COUNTER_MAX:
            raise OverflowError(f"originator counter for {eui_hex(party)} exhausted")
        self._last[party] = counter
        return counter

    def note(self, party: bytes, counter: int) -> None:
        """A counter used outside `take` (an explicit one): later counters stay above it."""
        last = self._last.get(party)
        if last is None or counter > last:
            self._last[party] = counter
            if counter > self._top.get(party, -1):
                self._reserve(party, counter, 0)

    def raise_floor(self, party: bytes, counter: int) -> None:
        """Make sure later counters are above `counter` (what a device already accepted)."""
        if counter >= self.floor(party):
            self.note(party, counter)

    def floor(self, party: bytes) -> int:
        """The lowest counter `take` could return next for `party`."""
        last = self._last.get(party)
        if last is not None:
            return last + 1
        return self._read().get(party, -1) + 1

    def last(self, party: bytes) -> int | None:
        return self._last.get(party)

    def resync(self, party: bytes) -> int:
        """Give up the current block: the next counter comes from above the file's top. Returns
        that next counter's lower bound."""
        self._top.pop(party, None)
        top = self._read().get(party, -1)
        last = self._last.get(party, -1)
        self._last[party] = max(top, last)
        return self._last[party] + 1

    # -- file ------------------------------------------------------------------------------
    def _reserve(self, party: bytes, counter: int, align: int) -> int:
        if self.path is None:
            self._top[party] = counter + self.block - 1
            return counter
        with self._locked():
            tops = self._read()
            counter = _round_up(max(counter, tops.get(party, -1) + 1), align)
            top = counter + self.block - 1
            tops[party] = top
            self._write(tops)
        self._top[party] = top
        return counter

    def _locked(self):
        return _FileLock(self.path.with_name(self.path.name + ".lock"))

    def _read(self) -> dict[bytes, int]:
        try:
            blob = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise CounterFileError(f"cannot read {self.path}: {exc.strerror}") from None
        try:
            doc = json.loads(blob.decode("utf-8"))
            if not isinstance(doc, dict):
                raise ValueError("not an object")
            return {bytes.fromhex(k): _counter(v) for k, v in doc.items()}
        except ValueError as exc:
            raise CounterFileError(f"{self.path} is corrupt ({exc}); delete it only if no device holds "
                                   "higher counters (gbhub run raises it to what the devices hold)") from None

    def _write(self, tops: dict[bytes, int]) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        text = json.dumps({eui_hex(k): v for k, v in sorted(tops.items())}, indent=1) + "\n"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            with os.fdopen(fd, "w") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:
            raise CounterFileError(f"cannot write {self.path}: {exc.strerror or exc}") from None


def _counter(value) -> int:
    if type(value) is not int or not 0 <= value <= COUNTER_MAX:
        raise ValueError(f"bad counter {value!r}")
    return value


def _round_up(counter: int, align: int) -> int:
    if not align:
        return counter
    mask = (1 << align) - 1
    return (counter + mask) >> align << align


class _FileLock:
    """An exclusive flock on a lock file, held for a `with` block."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = -1

    def __enter__(self) -> "_FileLock":
        try:
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise CounterFileError(f"cannot open {self.path}: {exc.strerror}") from None
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


__all__ = ["CounterFileError", "HeadEndCounters"]
