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

        # tamper, then after 30 s (device clock; factory ECS29a period, and the sag period) extreme
        # under 0x8028 and sag 0x802C, and their clearing alerts once the voltage is back (60 s + 30 s)
        # (the CHF's commissioning alerts are queued before them); 90 s of device time = 3 s here
        out = gbhub("alerts", "--data", str(data), "--timeout", "15", timeout=90)
        assert out.returncode == 0, out.stderr
        alerts = [json.loads(line) for line in out.stdout.splitlines()]
        codes = [a["code"] for a in alerts if a["device"] == "02474248400000A0"]
        assert codes[0] == "0x8F3F" and set(codes[1:3]) == {"0x8028", "0x802C"}, codes
        assert {"0x8095", "0x8099"} <= set(codes[3:]), codes  # (and 0x8006 if an average period ended)
    finally:
        assert run.stop() == 0


RIG = """
data = "site"

[clock]
mode = "real"
speed = 30.0

[[device]]
type = "chf"

[[device]]
type = "gpf"

[[device]]
type = "esme"

[device.options]
payment_mode = "prepayment"
credit_pence = 2000
outage_long_s = 120
"""

# every mandated alert and the clearing alerts, as `gbhub alerts` prints them
MANDATED = {"0x8F3F", "0x8F74", "0x8F75", "0x8F76", "0x8F3E",  # physical, local port
            "0x8020", "0x8024", "0x8002", "0x808D", "0x8091", "0x8085",  # over voltage and back
            "0x8028", "0x802C", "0x8006", "0x8095", "0x8099", "0x8089",  # under voltage and back
            "0x8F01", "0x8F33", "0x8F34",  # load limit
            "0x8F35", "0x8F36",  # outage restored
            "0x810D", "0x8F0F"}  # low credit, disablement


def test_every_mandated_alert_through_the_cli(tmp_path):
    """One running premises (device clock 30x real time), every fault through `gbhub ctl fault`,
    every mandated alert out of `gbhub alerts`, verified."""
    import time

    rig = tmp_path / "rig.toml"
    rig.write_text(RIG)
    data = tmp_path / "site"
    run = Running(str(rig))
    try:
        def ok(*args):
            out = ctl(data, "esme", *args)
            assert out.returncode == 0, out.stderr
            return json.loads(out.stdout)

        # thresholds and periods are the meter's COSEM configuration: load limiting after 30 s over
        # the factory 6900 W, restored 60 s later (ECS28a); average RMS voltage over 60 s (ECS29a)
        for args in (("ECS28a", "period_s=30", "restore_period_s=60", "restore_supply=true"),
                     ("ECS29a", "average_rms_period=60", "average_over_voltage_threshold=253",
                      "average_under_voltage_threshold=216", "extreme_over_voltage_threshold=287",
                      "extreme_under_voltage_threshold=180", "sag_threshold=200", "swell_threshold=264")):
            sent = gbhub("send", *args, "--data", str(data), "--summary")
            assert sent.returncode == 0 and " ok" in sent.stdout, sent.stdout + sent.stderr
        for kind in ("tamper", "cover-removed", "magnet", "terminal-cover", "unauthorised-access"):
            ok(kind)
        ok("power", "off")  # back on within outage_long_s (120 s = 4 s real: CLI start-up under load fits)
        assert ok("power", "on")["alerts"] == ["0x8F35"]
        ok("power", "off", "--seconds", "130")  # >= outage_long_s: 0x8F36
        time.sleep(140 / 30)  # the supply is back before the load and voltage faults (nothing is measured in an outage)
        ok("load", "30000", "--seconds", "100")  # 0x8F01 + 0x8F33 after 30 s, 0x8F34 60 s later
        ok("voltage", "290", "--seconds", "130")  # above 287 V extreme; a whole average period above 253 V
        time.sleep(260 / 30)  # the clearing alerts, the next average period
        ok("voltage", "150", "--seconds", "130")
        time.sleep(260 / 30)
        ok("credit", "0.5")  # below the factory £1 low credit; last: disablement opens the supply (no load after it)
        ok("credit", "-1")
        out = gbhub("alerts", "--data", str(data), "--timeout", "5", timeout=90)
        assert out.returncode == 0, out.stderr
        alerts = [json.loads(line) for line in out.stdout.splitlines()]
        codes = {a["code"] for a in alerts if a["device"] == "02474248400000A0"}
        assert MANDATED <= codes, sorted(MANDATED - codes)
    finally:
        assert run.stop() == 0
