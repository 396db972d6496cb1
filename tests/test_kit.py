"""The Raspberry Pi rig kit in hardware/ (issue 14): the installer run twice into a temporary prefix
(idempotent, nothing written outside the prefix and the data folder), the systemd unit (systemd's
own verifier where installed, and the keys that matter: readiness, restart, serial access, the data
folder as the only writable path), the udev rules against the radio table, every example rig
loading, and the virtual rig as the service runs it: READY=1 on $NOTIFY_SOCKET, `gbhub wait`
ready, a clean stop on SIGTERM with STOPPING=1."""
from __future__ import annotations

import configparser
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT

from test_cli_run import ENV, gbhub

HARDWARE = ROOT / "hardware"
RIGS = sorted((HARDWARE / "rigs").glob("*.toml"))
# where a host install would write: none of them may appear or change when installing into a prefix
HOST_PATHS = ("/opt/gbhub", "/etc/gbhub", "/var/lib/gbhub", "/etc/systemd/system/gbhub.service",
              "/usr/local/bin/gbhub", "/etc/udev/rules.d/99-gbhub-radios.rules")


def tree(*roots: Path) -> dict[str, tuple]:
    """Every path under the roots with its type, mode, size and modification time."""
    out = {}
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames + filenames:
                p = Path(dirpath) / name
                st = p.lstat()
                out[str(p)] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return out


def install(*args: str) -> str:
    out = subprocess.run(["sh", str(HARDWARE / "install.sh"), *args], capture_output=True, text=True, timeout=600,
                         env=dict(os.environ, PYTHON=sys.executable))
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def git_status() -> str:
    return subprocess.run(["git", "status", "--porcelain", "--ignored", "--untracked-files=all"], cwd=ROOT,
                          capture_output=True, text=True).stdout


def unit_keys(path: Path) -> dict[str, list[str]]:
    """[Service] of a unit: key -> every value it is given (systemd keys may repeat)."""
    parser = configparser.RawConfigParser(strict=False, dict_type=_Multi, interpolation=None)
    parser.optionxform = str
    parser.read(path)
    return {k: v.split("\n") for k, v in parser["Service"].items()}


class _Multi(dict):
    def __setitem__(self, key, value):
        if isinstance(value, list) and key in self:
            self[key].extend(value)
        else:
            super().__setitem__(key, value)


def test_install_twice_into_a_prefix(tmp_path):
    prefix, data = tmp_path / "root", tmp_path / "data"
    before = {p: os.path.lexists(p) for p in HOST_PATHS}
    had_user = _user_exists("gbhub")
    checkout = git_status()

    first = install("--prefix", str(prefix), "--data", str(data))
    for step in ("service user gbhub: skipped", "systemctl daemon-reload: skipped", "udevadm trigger: skipped"):
        assert step in first, first
    venv = prefix / "opt/gbhub/venv"
    rig = prefix / "etc/gbhub/rig.toml"
    unit = prefix / "etc/systemd/system/gbhub.service"
    assert os.readlink(prefix / "usr/local/bin/gbhub") == str(venv / "bin/gbhub")
    version = subprocess.run([str(prefix / "usr/local/bin/gbhub"), "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.startswith("gbhub "), version.stderr
    loaded = subprocess.run([str(venv / "bin/python"), "-P", "-c", "import sys; from gbhub.tools.rig import load_rig; "
                             "print(load_rig(sys.argv[1]).data)", str(rig)], capture_output=True, text=True)
    assert loaded.stdout.strip() == str(data), loaded.stderr
    assert (data.stat().st_mode & 0o7777) == 0o750
    assert (prefix / "etc/udev/rules.d/99-gbhub-radios.rules").read_text() == (HARDWARE / "99-gbhub-radios.rules").read_text()
    assert json.loads((prefix / "opt/gbhub/installed.json").read_text())["extras"] == []

    snapshot = tree(prefix, data)
    second = install("--prefix", str(prefix), "--data", str(data))
    assert not re.search(r": (made|updated|installed|mode set)", second), second
    assert "nothing changed" in second
    assert tree(prefix, data) == snapshot  # idempotent: not one file written again
    third = install("--prefix", str(prefix))  # after a `git pull`, without the first run's options
    assert "nothing changed" in third and tree(prefix, data) == snapshot, third

    # nothing outside the prefix and the data folder: not the host, not the checkout, no user
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "root"]
    assert {p: os.path.lexists(p) for p in HOST_PATHS} == before
    assert _user_exists("gbhub") == had_user
    assert git_status() == checkout

    keys = unit_keys(unit)
    assert keys["ExecStart"] == [f"{venv}/bin/gbhub run {rig} --status-every 0"]
    assert keys["Type"] == ["notify"] and keys["Restart"] == ["on-failure"]
    assert "dialout" in keys["SupplementaryGroups"][0].split()
    # the service can write nowhere but the data folder (power cuts: no state elsewhere)
    assert keys["ProtectSystem"] == ["strict"] and keys["ReadWritePaths"] == [str(data)]
    assert keys["WorkingDirectory"] == [str(data)]
    for cuts_the_radio_off in ("PrivateDevices", "DevicePolicy", "DeviceAllow", "ProtectClock", "PrivateUsers"):
        assert cuts_the_radio_off not in keys
    if shutil.which("systemd-analyze"):
        out = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
        assert out.returncode == 0 and unit.name not in out.stderr, out.stderr


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def test_unit_file_as_shipped():
    keys = unit_keys(HARDWARE / "gbhub.service")
    assert keys["ExecStart"] == ["/opt/gbhub/venv/bin/gbhub run /etc/gbhub/rig.toml --status-every 0"]
    assert keys["ReadWritePaths"] == ["/var/lib/gbhub"] and keys["User"] == ["gbhub"]
    assert keys["KillSignal"] == ["SIGTERM"] and keys["NotifyAccess"] == ["main"]


@pytest.mark.parametrize("path", RIGS, ids=[p.stem for p in RIGS])
def test_example_rig_loads(path):
    from gbhub.tools.rig import HAN_TRANSPORTS_BUILT, load_rig

    text = path.read_text()
    transport = re.search(r'(?m)^transport = "(\w+)"', text).group(1)
    if transport not in HAN_TRANSPORTS_BUILT:
        pytest.skip(f"{path.name}: [han] transport {transport!r} is not in this build yet (issue 12's serial rig)")
    rig = load_rig(path)
    assert rig.data == Path("/var/lib/gbhub")
    # every file the rig writes is in its data folder
    for written in (rig.trace, rig.han_pcap):
        assert written is None or Path(written).is_relative_to(rig.data)
    assert rig.wan_port == 8040
    if rig.han == "zigbee":
        assert rig.han_port == f"/dev/gbhub-{rig.han_radio}"


def test_every_rig_is_named_in_the_installer():
    names = {p.stem for p in RIGS}
    assert names == {"ezsp", "znp", "deconz", "serial-pair", "virtual"}


def test_udev_rules_match_the_radio_table():
    from gbhub.tools.radio import USB_RADIOS

    rules = [line for line in (HARDWARE / "99-gbhub-radios.rules").read_text().splitlines()
             if line and not line.startswith("#")]
    usb = [line for line in rules if "idVendor" in line]
    assert len(usb) >= 6
    links = set()
    for line in usb:
        vid = int(re.search(r'ATTRS\{idVendor\}=="([0-9a-f]{4})"', line).group(1), 16)
        pid = int(re.search(r'ATTRS\{idProduct\}=="([0-9a-f]{4})"', line).group(1), 16)
        symlinks = re.search(r'SYMLINK\+="([^"]+)"', line).group(1).split()
        radio = symlinks[0].removeprefix("gbhub-")
        assert (vid, pid) in USB_RADIOS, line
        assert radio in USB_RADIOS[(vid, pid)][1], line
        assert 'GROUP="dialout"' in line and 'MODE="0660"' in line, line
        links.update(symlinks)
    assert {"gbhub-ezsp", "gbhub-znp", "gbhub-deconz", "gbhub-radio"} <= links
    assert any("ttyAMA0" in line and "gbhub-uart" in line for line in rules)
    if shutil.which("udevadm") and "verify" in subprocess.run(["udevadm", "--help"], capture_output=True, text=True).stdout:
        out = subprocess.run(["udevadm", "verify", str(HARDWARE / "99-gbhub-radios.rules")], capture_output=True, text=True)
        assert out.returncode == 0, out.stdout + out.stderr


def test_virtual_rig_as_the_service_runs_it(tmp_path):
    """`gbhub run hardware/rigs/virtual.toml` (data and WAN address moved into the test's reach):
    READY=1 once ready, `gbhub wait` agrees, doctor finds the folder locked by it; a power cut
    (SIGKILL) and the restart systemd would make: READY=1 again, resumed; SIGTERM stops it cleanly
    (exit 0, STOPPING=1, manifest `stopped`); and it kept no state outside its data folder."""
    data = tmp_path / "data"
    checkout = git_status()
    address = f"@gbhub-test-notify-{os.getpid()}"
    command = [sys.executable, "-m", "gbhub", "run", str(HARDWARE / "rigs/virtual.toml"), "--data", str(data),
               "--wan", "127.0.0.1:0", "--status-every", "0"]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind("\0" + address[1:])
        notify.settimeout(120)

        def start() -> subprocess.Popen:
            return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                    cwd=tmp_path, env=dict(ENV, NOTIFY_SOCKET=address))

        proc = start()
        try:
            ready = notify.recv(4096).decode()
            assert ready.startswith("READY=1\n") and "STATUS=premises commissioned" in ready, ready
            waited = gbhub("wait", "--data", str(data), "--timeout", "30")
            assert waited.returncode == 0, waited.stderr
            doctor = gbhub("doctor", "--data", str(data))
            assert doctor.returncode == 1
            assert f"locked by a running gbhub run (PID {proc.pid})" in doctor.stdout, doctor.stdout
            assert str(HARDWARE / "rigs/virtual.toml") in doctor.stdout.splitlines()[0]

            proc.kill()  # the power cut
            proc.wait(timeout=30)
            proc = start()  # Restart=on-failure, or the next boot
            ready = notify.recv(4096).decode()
            assert ready.startswith("READY=1\n") and "STATUS=premises resumed" in ready, ready

            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=60) == 0, proc.stdout.read()
            assert notify.recv(4096).decode() == "STOPPING=1"
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert json.loads((data / "premises.json").read_text())["state"] == "stopped"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]
    assert git_status() == checkout


def test_every_package_folder_is_installed():
    """A non-editable install (the kit's) carries only the packages pyproject.toml lists: a
    subpackage left out (gbcs.usecases was) breaks the installed gbhub while the checkout works."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    dirs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    folders = {v: k for k, v in dirs.items()}
    for init in ROOT.glob("*/**/__init__.py"):
        rel = init.parent.relative_to(ROOT).parts
        if rel[0] not in {"gbcs", "gbhub", *folders}:
            continue
        name = ".".join([folders.get(rel[0], rel[0]), *rel[1:]])
        assert name in listed, f"{name} ({init.parent}) is missing from [tool.setuptools] packages"
