"""`gbhub doctor` (issue 14): each problem it must find, made real: a missing extra (the module's
import blocked), a serial port the service user cannot open, a radio that is absent, a WAN port in
use, a data folder locked by a running premises, a deleted key file; and a clean rig that passes."""
from __future__ import annotations

import json
import os
import pwd
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

from test_cli_run import ENV, gbhub


def doctor(*args: str, blocked: tuple[str, ...] = ()) -> tuple[int, list[str]]:
    """Run `gbhub doctor` in its own process; `blocked` modules fail to import there, as they do when
    their extra is not installed (None in sys.modules is Python's own way to refuse an import)."""
    code = (f"import sys\nfor m in {list(blocked)!r}: sys.modules[m] = None\n"
            "from gbhub.tools.cli import main\nsys.exit(main(sys.argv[1:]))")
    out = subprocess.run([sys.executable, "-c", code, "doctor", *args], capture_output=True, text=True, timeout=120,
                         cwd=ROOT, env=ENV)
    assert "Traceback" not in out.stderr, out.stderr
    return out.returncode, out.stdout.splitlines()


def failures(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("FAIL")]


def rig(tmp_path: Path, text: str, name: str = "rig.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


ZIGBEE = '[han]\ntransport = "zigbee"\nradio = "{radio}"\nport = "{port}"\n'


def test_clean_demo_folder_passes(tmp_path):
    rc, lines = doctor("--data", str(tmp_path / "site"))
    assert rc == 0, lines
    assert not failures(lines)
    checks = {line.split()[1].rstrip(":") for line in lines[1:-1]}
    assert {"python", "extras", "wan", "keystore", "data", "clock"} <= checks, lines
    assert lines[-1].startswith("gbhub doctor: all checks passed")


def test_missing_extra(tmp_path):
    path = rig(tmp_path, ZIGBEE.format(radio="ezsp", port="/dev/null"))
    rc, lines = doctor(str(path), "--data", str(tmp_path / "d"), blocked=("bellows",))
    assert rc == 1
    bad = failures(lines)
    assert any("extras" in line and "bellows" in line and "gbhub[zigbee]" in line for line in bad), lines
    assert any("radio: not probed" in line for line in bad), lines  # nothing probed without the library


def test_port_permission_for_the_service_user(tmp_path):
    """As root (CI) every mode bit is granted to the current user, so the check that counts is the
    service user's: a pseudo-terminal (a real character device) made mode 000 is judged for
    `--user nobody` by its mode bits and groups, as the service (user gbhub, group dialout) would
    meet it. As another user the current user's own access fails the same way."""
    master, slave = os.openpty()
    try:
        port = os.ttyname(slave)
        os.chmod(port, 0)
        path = rig(tmp_path, ZIGBEE.format(radio="ezsp", port=port))
        nobody = "nobody" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
        rc, lines = doctor(str(path), "--data", str(tmp_path / "d"), "--user", nobody)
        assert rc == 1
        bad = failures(lines)
        assert any("serial port: permission" in line and port in line for line in bad), lines
        assert not any(line.startswith("FAIL  radio") for line in lines), lines  # not probed without access
    finally:
        os.close(slave)
        os.close(master)


def test_port_that_is_not_a_serial_device(tmp_path):
    path = rig(tmp_path, ZIGBEE.format(radio="znp", port=str(tmp_path)))
    rc, lines = doctor(str(path), "--data", str(tmp_path / "d"))
    assert rc == 1
    assert any("not a serial device" in line for line in failures(lines)), lines


def test_radio_absent(tmp_path):
    port = tmp_path / "ttyUSB-unplugged"
    path = rig(tmp_path, ZIGBEE.format(radio="ezsp", port=port))
    rc, lines = doctor(str(path), "--data", str(tmp_path / "d"))
    assert rc == 1
    assert any("radio absent" in line and str(port) in line for line in failures(lines)), lines


def test_auto_radio_without_any_serial_port(tmp_path):
    from gbhub.tools.radio import serial_ports

    if serial_ports():
        pytest.skip("this machine has serial ports: `radio = \"auto\"` would probe them")
    path = rig(tmp_path, '[han]\ntransport = "zigbee"\nradio = "auto"\n')
    rc, lines = doctor(str(path), "--data", str(tmp_path / "d"))
    assert rc == 1
    assert any("radio absent: no serial ports found" in line for line in failures(lines)), lines


def test_wan_and_web_ports_in_use(tmp_path):
    with socket.socket() as taken, socket.socket() as web:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        web.bind(("127.0.0.1", 0))
        web.listen()
        port, web_port = taken.getsockname()[1], web.getsockname()[1]
        path = rig(tmp_path, f"[wan]\nhost = \"127.0.0.1\"\nport = {port}\n")
        rc, lines = doctor(str(path), "--data", str(tmp_path / "d"), "--web", f"127.0.0.1:{web_port}")
    assert rc == 1
    bad = failures(lines)
    assert any(line.startswith("FAIL  wan") and f":{port} in use" in line for line in bad), lines
    assert any(line.startswith("FAIL  web") and f":{web_port} in use" in line for line in bad), lines


def test_locked_data_folder(tmp_path):
    from gbhub.tools.datafolder import FolderLock

    data = tmp_path / "site"
    data.mkdir()
    lock = FolderLock(data).acquire()  # the lock code `gbhub run` holds its folder with
    try:
        rc, lines = doctor("--data", str(data))
    finally:
        lock.release()
    assert rc == 1
    assert any("locked" in line and f"PID {os.getpid()}" in line for line in failures(lines)), lines
    rc, lines = doctor("--data", str(data))
    assert rc == 0, lines


def test_missing_key_and_the_recorded_rig(tmp_path):
    """A commissioned folder with a device's key file deleted; doctor without a rig file checks
    the rig the folder was started with (premises.json `rig`)."""
    path = rig(tmp_path, "[[device]]\ntype = \"chf\"\n\n[[device]]\ntype = \"esme\"\n", "small.toml")
    data = tmp_path / "site"
    out = gbhub("run", str(path), "--data", str(data), "--for", "0.2", "--status-every", "0")
    assert out.returncode == 0, out.stderr
    assert json.loads((data / "premises.json").read_text())["rig"] == str(path.resolve())
    rc, lines = doctor("--data", str(data))
    assert rc == 0, lines
    assert str(path.resolve()) in lines[0]
    esme = json.loads((data / "premises.json").read_text())["devices"]["esme"].lower()
    (data / "keys" / f"{esme}-ds.key").unlink()
    rc, lines = doctor("--data", str(data))
    assert rc == 1
    assert any("keystore" in line and f"{esme}-ds.key" in line for line in failures(lines)), lines


def test_bad_arguments_exit_2(tmp_path):
    rc, _ = doctor(str(tmp_path / "missing.toml"))
    assert rc == 2
    rc, _ = doctor("--web", "nope:port")
    assert rc == 2


@pytest.mark.hardware
@pytest.mark.skipif(not os.environ.get("GBHUB_RADIO", "").partition(":")[2],
                    reason="no radio: set GBHUB_RADIO=type:/dev/port[:baud]")
def test_a_real_radio_answers_with_its_firmware(tmp_path):
    radio, _, rest = os.environ["GBHUB_RADIO"].partition(":")
    port, _, baud = rest.partition(":")
    text = ZIGBEE.format(radio=radio, port=port) + (f"baudrate = {int(baud)}\n" if baud else "")
    rc, lines = doctor(str(rig(tmp_path, text)), "--data", str(tmp_path / "d"))
    assert any(line.startswith("ok    radio:") and f"{radio} radio answers on {port}" in line for line in lines), lines
