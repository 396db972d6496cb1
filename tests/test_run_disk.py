"""Issue 8, defect 5: a data folder on a read-only or a full file system gives one clear line and
exit 1 at start, and at run time the device's failure alert (0x81AE Error Non Volatile Memory),
never silence. Tests run as root (CI), where permissions do not stop a write, so each test mounts
a small tmpfs of its own: remounted read-only, or too small for what is written."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from test_run_datafolder import Running, gbhub, one_line


@pytest.fixture
def tmpfs(tmp_path):
    """mount(size_kb) -> a fresh tmpfs of that size under tmp_path, unmounted afterwards."""
    points: list[Path] = []

    def mount(size_kb: int) -> Path:
        point = tmp_path / f"fs{len(points)}"
        point.mkdir()
        out = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(point)],
                             capture_output=True, text=True)
        if out.returncode != 0:
            pytest.skip(f"mounting a tmpfs needs root: {out.stderr.strip()}")
        points.append(point)
        return point

    yield mount
    for point in reversed(points):
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


def _remount_read_only(point: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(point)], check=True)


def _fill(point: Path) -> None:
    """Take every free byte of the file system."""
    with open(point / "ballast", "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass


def test_a_read_only_file_system_is_one_line_at_start(tmpfs):
    fs = tmpfs(16 * 1024)
    data = fs / "site"
    run = Running("--data", str(data))
    assert run.stop() == 0
    _remount_read_only(fs)
    out = gbhub("run", "--data", str(data), "--for", "1")
    assert out.returncode == 1
    line = one_line(out)
    assert str(data) in line and ("read-only" in line.lower() or "not writable" in line), line

    out = gbhub("run", "--data", str(fs / "new-site"), "--for", "1")  # cannot even be created
    assert out.returncode == 1
    assert "new-site" in one_line(out)


def test_a_full_file_system_is_one_line_at_first_start(tmpfs):
    fs = tmpfs(64)  # far too small for the keys and the NVM of a first start
    _fill(fs)
    out = gbhub("run", "--data", str(fs / "site"), "--for", "1")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "No space left" in one_line(out) or "space" in one_line(out).lower()


def test_a_full_file_system_at_run_time_answers_with_an_alert(tmpfs, tmp_path):
    fs = tmpfs(16 * 1024)
    data = fs / "site"
    run = Running("--data", str(data))
    try:
        assert json.loads(gbhub("send", "ECS17b", "--data", str(data)).stdout)["ok"]
        _fill(fs)
        # `gbhub send --data` reserves its counters in the data folder first: that write fails,
        # in one line.
        out = gbhub("send", "ECS43", "--data", str(data), "--timeout", "20")
        assert out.returncode == 1 and "counters.json" in one_line(out) and "space" in one_line(out), out.stderr
        # A head-end that keeps its counters on another disk (a copy of the manifest and the counter
        # file): ECS43 opens the supply; the ESME must store that, cannot, and says so (0x81AE)
        # instead of going silent, and `gbhub send` reports the alert at once (exit 1, one line).
        mirror = tmp_path / "head-end"
        mirror.mkdir()
        for name in ("premises.json", "counters.json"):
            shutil.copy(data / name, mirror / name)
        out = gbhub("send", "ECS43", "--data", str(mirror), "--timeout", "20")
        assert out.returncode == 1, out.stdout + out.stderr
        line = one_line(out)
        assert "0x81AE" in line, line
        (fs / "ballast").unlink()
        status = json.loads(gbhub("status", "--data", str(data)).stdout)
        esme = next(d for d in status["devices"] if d["type"] == "esme")
        assert esme["supply"] == "enabled"  # nothing changed
        again = gbhub("send", "ECS43", "--data", str(mirror), "--summary")  # room again: it works
        assert again.returncode == 0, again.stdout + again.stderr
    finally:
        run.kill()
