"""`gbhub ctl fault` against a real `gbhub run`: each fault returns at once, the alerts it provokes
reach `gbhub alerts` with the right codes (verified), bad requests give one line and exit 1 or 2."""
from __future__ import annotations

import json

from test_cli_run import Running, gbhub


def ctl(data, *args):
    return gbhub("ctl", "--data", str(data), "fault", *args)


def test_ctl_fault_alerts_reach_gbhub_alerts(tmp_path):
    data = tmp_path / "site"
    run = Running("--data", str(data), "--speed", "30")  # durations run on the device clock
    try:
        out = ctl(data, "esme", "tamper")
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout) == {"eui": "02474248400000A0", "fault": "tamper", "alert": "0x8F3F"}
        out = ctl(data, "esme", "voltage", "150", "--seconds", "60")
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["volts"] == 150.0
        out = ctl(data, "esme", "credit", "-2.5")  # credit mode: the balance only
        assert out.returncode == 0 and json.loads(out.stdout)["credit"] == -2.5

        bad = ctl(data, "esme", "battery")
        assert bad.returncode == 1 and bad.stderr.strip() == "gbhub ctl: esme (02474248400000A0) has no fault battery"
        bad = ctl(data, "esme", "voltage", "high")
        assert bad.returncode == 1 and "VOLTS must be a number" in bad.stderr and len(bad.stderr.splitlines()) == 1
        bad = ctl(data, "esme", "voltage", "250", "--phase", "5")
        assert bad.returncode == 2 and "--phase" in bad.stderr
        bad = ctl(data, "ihd", "tamper")
        assert bad.returncode == 1 and "has no fault tamper" in bad.stderr

        # tamper, then after 10 s (device clock) extreme under 0x8028, after 30 s sag 0x802C, and
        # their clearing alerts once the voltage is back (60 s + 10 s / 30 s)
        # (the CHF's commissioning alerts are queued before them); 90 s of device time = 3 s here
        out = gbhub("alerts", "--data", str(data), "--timeout", "15", timeout=90)
        assert out.returncode == 0, out.stderr
        alerts = [json.loads(line) for line in out.stdout.splitlines()]
        codes = [a["code"] for a in alerts if a["device"] == "02474248400000A0"]
        assert codes[:3] == ["0x8F3F", "0x8028", "0x802C"], codes
        assert {"0x8095", "0x8099"} <= set(codes[3:]), codes  # (and 0x8006 if an average period ended)
    finally:
        assert run.stop() == 0
