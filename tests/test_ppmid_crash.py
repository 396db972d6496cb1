"""Crash safety of PPMID top-ups: `gbhub run` in a child process, UTRNs typed on the PPMID
(`gbhub ctl utrn`) while the process is SIGKILLed at random instants, restarted over its data
folder. No acknowledged top-up is lost and none is applied twice.

Each UTRN carries a different power of two in pennies, so the ESME's credit (a credit-mode ESME:
nothing is charged against it) says exactly which top-ups it applied."""
from __future__ import annotations

import json
import random
import signal
import threading
from pathlib import Path

from test_cli_run import Running, gbhub

from gbhub.tools.utrn import vend

ESME = "02474248400000A0"
GSME = "02474248400000A1"


def _type(data: Path, utrn: str) -> dict | None:
    """The PPMID's answer (`ctl utrn` exits 1 for a refused UTRN, with the answer on stdout), or
    None when the premises did not answer (killed)."""
    out = gbhub("ctl", "--data", str(data), "--timeout", "5", "utrn", "ppmid", utrn, timeout=60)
    if not out.stdout.strip():
        return None
    answer = json.loads(out.stdout)
    assert (out.returncode == 0) == (answer["accepted"] is not False)
    return answer


def _type_fast(data: Path, utrn: str) -> dict | None:
    """The same request through the control channel in-process (no client start-up per UTRN, so
    the kills land while top-ups are under way)."""
    from gbhub.tools.control import ControlError, request

    try:
        return request(data, {"op": "utrn", "eui": "ppmid", "utrn": utrn}, 5.0)
    except ControlError:
        return None


def _credit_pence(data: Path) -> int:
    out = gbhub("status", "--data", str(data), timeout=60)
    assert out.returncode == 0, out.stderr
    (esme,) = [d for d in json.loads(out.stdout)["devices"] if d["eui"] == ESME]
    return round(esme["credit"] * 100)


def test_sigkill_while_the_ppmid_tops_up_loses_nothing_acknowledged_and_applies_nothing_twice(tmp_path):
    data = tmp_path / "site"
    rng = random.Random(20261205)
    run = Running("--data", str(data))
    utrns: dict[str, int] = {}  # sent UTRN -> pennies
    acked: set[str] = set()
    bit = 0
    try:
        for _round in range(5):
            killer = threading.Timer(rng.uniform(0.05, 0.6), run.kill)
            killer.start()
            while run.proc.poll() is None and bit < 13:
                utrn = vend(data, ESME, f"{(1 << bit) / 100:.2f}")["utrn"]  # counter advanced before use
                utrns[utrn] = 1 << bit
                bit += 1
                answer = _type_fast(data, utrn)
                if answer is not None and answer.get("accepted"):
                    acked.add(utrn)
            killer.join()
            run.kill()
            assert run.proc.returncode == -signal.SIGKILL
            run = Running("--data", str(data))
        credit = _credit_pence(data)
        applied = {u for u, v in utrns.items() if credit & v}
        assert credit == sum(utrns[u] for u in applied)  # only values that were sent, each once
        assert acked <= applied  # nothing acknowledged was lost
        # typing every UTRN again: an applied one is a duplicate; one never applied goes in now, or
        # is refused as possibly used when it is older than all the meter's UTRN counter cache holds
        late = set()
        for utrn in utrns:
            answer = _type_fast(data, utrn)
            assert answer is not None
            if utrn in applied:
                assert answer["result"] == "REJECTED_DUPLICATE", answer
            elif answer["accepted"]:
                late.add(utrn)
            else:
                assert answer["result"] == "REJECTED_DUPLICATE", answer
        assert _credit_pence(data) == sum(utrns[u] for u in applied | late)
        assert len(acked) >= 3 and bit >= 8
    finally:
        run.kill()


def test_gbhub_utrn_prints_a_valid_utrn_and_refuses_bad_input_in_one_line(tmp_path):
    from gbcs.utrn import ValueClass, decode_utrn

    data = tmp_path / "site"
    run = Running("--data", str(data), "--for", "60")
    try:
        out = gbhub("utrn", "--data", str(data), "--to", "esme", "--value", "12.50")
        assert out.returncode == 0, out.stderr
        first = decode_utrn(out.stdout.strip())
        assert (first.value_class, first.value, first.truncated_counter) == (ValueClass.PENNIES, 1250, 1)
        big = json.loads(gbhub("utrn", "--data", str(data), "--to", ESME, "--value", "£100", "--json").stdout)
        assert (big["value_class"], big["value"], big["utrn_counter"]) == ("POUNDS", 100, 2)
        answer = _type(data, out.stdout.strip())
        assert answer["accepted"] and answer["amount"] == 1250
        status = json.loads(gbhub("status", "--data", str(data)).stdout)
        (ppmid,) = [d for d in status["devices"] if d["type"] == "ppmid"]
        assert ppmid["credit"] == 12.5 and ppmid["message"] == "ACCEPTED_SUPPLY_ENABLED"
        ec = gbhub("ctl", "--data", str(data), "emergency-credit", "ppmid")  # the demo ESME has none
        assert ec.returncode == 1 and json.loads(ec.stdout)["result"] == "FAILURE"
        assert gbhub("ctl", "--data", str(data), "utrn", "chf", "1" * 20).returncode == 1  # no keypad
        sent = gbhub("send", "PCS01", f"utrn={first.encode()}", "--to", "ppmid", "--data", str(data))
        assert sent.returncode == 2 and "sent by a PPMID over the HAN" in sent.stderr  # not a head-end's
        read = json.loads(gbhub("send", "CS07", "--to", "ppmid", "--data", str(data)).stdout)
        # the demo premises is dual fuel: the PPMID joined the ESME (Method A) and the GSME (Method C)
        assert read["ok"] and read["summary"]["devices"] == [{"eui": ESME, "device_type": "ESME"}, {"eui": GSME, "device_type": "GSME"}]
        for bad in (("--value", "0"), ("--value", "1.005"), ("--value", "9000"), ("--value", "ten"),
                    ("--to", "nosuch", "--value", "1")):
            args = ["utrn", "--data", str(data), "--to", "esme", *bad]
            out = gbhub(*args)
            assert out.returncode == 2 and out.stderr.count("\n") == 1 and "Traceback" not in out.stderr, out.stderr
        assert json.loads((data / "utrn-counters.json").read_text()) == {
            f"{json.loads((data / 'premises.json').read_text())['supplier']}:{ESME}": 2}
    finally:
        run.kill()


def _nvm_read(data: Path, read):
    """`read(nvm, devices)` over the stopped (or killed) premises' NVM."""
    from gbhub.firmware.nvm import Nvm

    devices = json.loads((data / "premises.json").read_text())["devices"]
    nvm = Nvm(data / "nvm.sqlite")
    try:
        return read(nvm, devices)
    finally:
        nvm.close()


def _gas_answers(data: Path) -> dict[int, str]:
    """The GSME's answers the PPMID persisted: PCS01 counter -> result."""
    from gbhub.meter.ppmid import NS as PPMID_NS

    def read(nvm, devices):
        results = nvm.scope(devices["ppmid"]).get(PPMID_NS, "results", [])
        return {r["counter"]: r["result"] for r in results if r.get("fuel") == "gas" and r.get("counter") is not None}
    return _nvm_read(data, read)


def _chf_queued_counters(data: Path) -> set[int]:
    """Originator counters of the messages the running CHF holds in its NVM queue for the GSME
    (read-only, beside the running process)."""
    import sqlite3

    from gbcs.frame import decode_message

    try:
        db = sqlite3.connect(f"file:{data / 'nvm.sqlite'}?mode=ro", uri=True, timeout=5)
        try:
            rows = db.execute("SELECT value FROM kv WHERE ns LIKE '%chf_gsme_queue'").fetchall()
        finally:
            db.close()
    except sqlite3.Error:
        return set()
    out = set()
    for (raw,) in rows:
        frame = json.loads(raw)["frame"]
        out.add(decode_message(bytes.fromhex(next(iter(frame.values())))).originator_counter)
    return out


def test_sigkill_while_the_ppmid_tops_up_the_gsme_through_the_chf_queue(tmp_path):
    """Gas top-ups go PPMID → CHF (queued in its NVM for the sleepy GSME) → GSME at its wake (the
    button pressed here, as `gbhub ctl press`) → answer to the PPMID. SIGKILLed at random points of
    that path and restarted: every top-up the GSME answered as accepted is in its credit, none twice,
    and what was queued when the hub died is applied after the restart (each power of two once)."""
    from gbhub.firmware.device import EVENT_LOG
    from gbhub.meter.esme_state import NS as METER_NS
    from gbhub.tools.control import ControlError, request

    def press() -> None:
        try:
            request(data, {"op": "press", "eui": "gsme"}, 5.0)
        except ControlError:
            pass

    data = tmp_path / "site"
    rng = random.Random(20261206)
    run = Running("--data", str(data))
    by_counter: dict[int, str] = {}  # PCS01 counter -> UTRN (from the PPMID's "pending" answer)
    utrns: dict[str, int] = {}  # sent UTRN -> pennies
    acked: set[str] = set()
    queued: set[str] = set()  # PCS01s seen stored in the CHF's queue before a kill
    bit = 0
    try:
        for _round in range(6):
            asleep = _round % 2 == 1  # every other life nobody presses: PCS01s wait in the CHF's queue
            killer = threading.Timer(rng.uniform(0.1, 1.5), run.kill)
            killer.start()
            while run.proc.poll() is None and bit < 13:
                utrn = vend(data, GSME, f"{(1 << bit) / 100:.2f}")["utrn"]
                utrns[utrn] = 1 << bit
                bit += 1
                try:
                    answer = request(data, {"op": "utrn", "eui": "ppmid", "utrn": utrn, "fuel": "gas"}, 5.0)
                except ControlError:
                    answer = None
                if answer is not None and answer.get("counter") is not None:
                    assert answer["result"] == "pending", answer
                    by_counter[answer["counter"]] = utrn
                if asleep:
                    queued |= {by_counter[c] for c in _chf_queued_counters(data) if c in by_counter}
                else:
                    press()  # wake the GSME: it fetches the queued PCS01 and answers
            killer.join()
            run.kill()
            assert run.proc.returncode == -signal.SIGKILL
            acked |= {by_counter[c] for c, result in _gas_answers(data).items()
                      if c in by_counter and result.startswith("ACCEPTED")}
            run = Running("--data", str(data))
        for _ in range(3):  # the last life: what the CHF kept queued is fetched at the next wakes
            press()
            threading.Event().wait(1.0)
        acked |= {by_counter[c] for c, result in _gas_answers(data).items() if c in by_counter and result.startswith("ACCEPTED")}
        assert run.stop() == 0

        def read(nvm, devices):
            gsme = nvm.scope(devices["gsme"])
            left = nvm.scope(devices["chf"]).keys("chf_gsme_queue")
            return gsme.get(METER_NS, "prepayment")["total_added"], gsme.log_entries(EVENT_LOG), left
        total, events, left = _nvm_read(data, read)
        added = [e["pence"] for e in events if e["code"] == "top_up" and e.get("origin") == "ppmid"]
        assert len(added) == len(set(added)) and set(added) <= set(utrns.values())  # only values sent, none twice
        assert round(total) == sum(added)  # (the credit the GSME holds counts each of them once)
        applied = {u for u, v in utrns.items() if v in added}
        assert acked <= applied  # nothing acknowledged was lost
        assert queued <= applied  # nor anything the CHF had queued for the GSME when it died
        assert left == []  # nothing left behind in the CHF's queue
        assert len(acked) >= 3 and queued and bit >= 8
    finally:
        run.kill()
