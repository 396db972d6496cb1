"""Composition by registry: device types register themselves, a rig holds any number of devices of
a type behind one CHF, each with a unique name and EUI, HAN devices paired with the meter the rig
names; devices are addressed by name, unique type or EUI (fixture, `premises.send`, `gbhub send`)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gbcs.codec import eui_hex
from gbhub.firmware.registry import DeviceKind, device_kind, device_kinds, register_device_type
from gbhub.tools.rig import (
    DEFAULT_EUIS,
    AddressError,
    RigError,
    default_eui,
    default_rig,
    load_rig,
    parse_rig,
    resolve_device,
)

from conftest import ROOT

ESME_2 = bytes.fromhex("02474248400001A0")


def rig_of(*tables: dict, **top):
    return parse_rig({**top, "device": list(tables)}, Path("."))


CHF = {"type": "chf"}


# -- the registry --------------------------------------------------------------------------------


def test_registered_types():
    assert [k.type for k in device_kinds()][:4] == ["chf", "gpf", "esme", "ihd"]
    assert device_kind("esme").keys and device_kind("esme").han_member and device_kind("esme").join is not None
    assert device_kind("ihd").pairs_with == "esme" and device_kind("ihd").starts_after_commissioning
    assert device_kind("chf").max_count == 1 and device_kind("gpf").max_count == 1
    with pytest.raises(KeyError, match="unknown device type 'toaster'"):
        device_kind("toaster")


def test_a_type_is_registered_once():
    esme = device_kind("esme")
    assert register_device_type(esme) is esme  # the same registration again: harmless
    with pytest.raises(ValueError, match="already registered"):
        register_device_type(DeviceKind("esme", esme.create))


# -- rig parsing ---------------------------------------------------------------------------------


def test_default_names_and_euis():
    rig = rig_of(CHF, {"type": "esme"}, {"type": "esme"}, {"type": "esme", "name": "garage"}, {"type": "esme"},
                 {"type": "ihd", "meter": "garage"})
    assert [(d.name, d.type) for d in rig.devices] == [
        ("chf", "chf"), ("esme", "esme"), ("esme-2", "esme"), ("garage", "esme"), ("esme-3", "esme"), ("ihd", "ihd")]
    assert [eui_hex(d.eui) for d in rig.devices if d.type == "esme"] == [
        "02474248400000A0", "02474248400001A0", "02474248400002A0", "02474248400003A0"]
    codes = [d.install_code for d in rig.devices if d.type == "esme"]
    assert codes[0] == bytes.fromhex("83FED3407A939723A5C639B26916D505") and len(set(codes)) == 4
    assert rig.devices[-1].meter == "garage"


def test_explicit_names_and_euis_are_kept_free():
    rig = rig_of(CHF, {"type": "esme"}, {"type": "esme", "name": "esme-2", "eui": "02474248400000A0"},
                 {"type": "esme"}, {"type": "esme", "eui": "02474248400001A0"})
    assert [d.name for d in rig.devices[1:]] == ["esme", "esme-2", "esme-3", "esme-4"]
    assert [eui_hex(d.eui) for d in rig.devices[1:]] == [
        "02474248400002A0", "02474248400000A0", "02474248400003A0", "02474248400001A0"]


def test_single_ihd_pairs_with_the_only_esme():
    rig = rig_of(CHF, {"type": "ihd"}, {"type": "esme", "name": "meter"})
    assert rig.devices[1].meter == "meter"


@pytest.mark.parametrize("tables, message", [
    ([CHF, {"type": "esme", "name": "a"}, {"type": "esme", "name": "a"}], "name: 'a' used twice"),
    ([CHF, {"type": "esme", "eui": "02474248400000A0"}, {"type": "esme", "eui": "02474248400000A0"}],
     "02474248400000A0 used twice"),
    ([CHF, {"type": "esme", "name": "ihd"}], "'ihd' is another device type"),
    ([CHF, {"type": "esme", "name": "DEADBEEFDEADBEEF"}], "reads as an EUI"),
    ([CHF, {"type": "esme", "name": "two words"}], "name: expected a name"),
    ([CHF, {"type": "esme"}, {"type": "esme"}, {"type": "ihd"}], r"2 esme devices \(esme, esme-2\); say which with meter"),
    ([CHF, {"type": "ihd"}], "pairs with a esme, and this rig has none"),
    ([CHF, {"type": "esme"}, {"type": "ihd", "meter": "esme-9"}], "meter 'esme-9' is no device of this rig"),
    ([CHF, {"type": "gpf"}, {"type": "esme"}, {"type": "ihd", "meter": "gpf"}], "meter 'gpf' is a gpf, not a esme"),
    ([CHF, {"type": "esme", "meter": "esme"}], r"#2 \(esme\): unknown key\(s\) meter"),
    ([CHF, {"type": "esme", "colour": "blue"}], "unknown key"),
    ([CHF, {"type": "toaster"}], "type: expected one of"),
    ([CHF, CHF], "at most 1 chf"),
    ([CHF, {"type": "gpf"}, {"type": "gpf"}], "at most 1 gpf"),
    ([{"type": "esme"}], "exactly one chf"),
    ([CHF, {"type": "esme", "install_code": "0011"}], "install_code: expected 6, 8, 12 or 16 bytes"),
    ([CHF, {"type": "esme", "options": 3}], "options: expected a table"),
])
def test_rig_errors(tables, message):
    with pytest.raises(RigError, match=message):
        rig_of(*tables)


_TYPES = st.sampled_from(["esme", "ihd", "gpf"])
_TABLE = st.builds(lambda t, name, eui: {"type": t, **({"name": name} if name else {}),
                                         **({"eui": eui} if eui else {})},
                   _TYPES, st.one_of(st.none(), st.sampled_from(["esme", "esme-2", "a", "b", "ihd"])),
                   st.one_of(st.none(), st.sampled_from(["02474248400000A0", "02474248400001A0", "0000000000000001"])))


@settings(max_examples=200, deadline=None)
@given(st.lists(_TABLE, max_size=8), st.data())
def test_parsed_rigs_have_unique_names_and_euis(tables, data):
    """Any list of [[device]] tables either parses into devices with unique names and EUIs, each
    HAN device paired with a meter of the right type, or fails with a RigError."""
    tables = [dict(CHF)] + tables
    ihds = [t for t in tables if t["type"] == "ihd"]
    for t in ihds:
        if data.draw(st.booleans()):
            t["meter"] = data.draw(st.sampled_from(["esme", "esme-2", "a", "gpf"]))
    try:
        rig = rig_of(*tables)
    except RigError:
        return
    names = [d.name for d in rig.devices]
    assert len(set(names)) == len(names) and len({d.eui for d in rig.devices}) == len(names)
    assert [d.type for d in rig.devices] == [t["type"] for t in tables]
    assert all(d.name == t["name"] for d, t in zip(rig.devices, tables) if "name" in t)
    by_name = {d.name: d for d in rig.devices}
    for d in rig.devices:
        if d.type == "ihd":
            assert by_name[d.meter].type == "esme"
        if d.name in ("esme", "ihd", "gpf", "chf"):
            assert d.type == d.name  # a name that is a type is its own type


def test_default_rig_with_extra_devices():
    rig = default_rig(None, [{"type": "esme"}, {"type": "ihd", "meter": "esme-2"}])
    assert [d.name for d in rig.devices] == ["chf", "gpf", "esme", "ihd", "ppmid", "esme-2", "ihd-2"]
    assert [d.meter for d in rig.devices if d.type == "ihd"] == ["esme", "esme-2"]
    assert default_eui("ihd", 2) == bytes.fromhex("02474248400001A6")
    assert [d.name for d in default_rig(None, ihd=False).devices] == ["chf", "gpf", "esme", "ppmid"]
    assert [d.name for d in default_rig(None, ihd=False, ppmid=False).devices] == ["chf", "gpf", "esme"]
    assert [d.meter for d in default_rig(None, [{"type": "ppmid", "meter": "esme-2"}, {"type": "esme"}]).devices
            if d.type == "ppmid"] == ["esme-2"]  # a ppmid table replaces the default one
    assert DEFAULT_EUIS["esme"] == "02474248400000A0"


def test_example_rig_two_esmes():
    rig = load_rig(ROOT / "examples" / "two-esme.toml")
    assert [(d.name, d.type, eui_hex(d.eui)) for d in rig.devices] == [
        ("chf", "chf", "02474248400000A2"), ("gpf", "gpf", "02474248400000A3"), ("esme", "esme", "02474248400000A0"),
        ("esme-2", "esme", "02474248400001A0"), ("ihd", "ihd", "02474248400000A6")]
    assert rig.devices[-1].meter == "esme-2"


# -- addressing ----------------------------------------------------------------------------------

DEVICES = {"chf": "02474248400000A2", "esme": "02474248400000A0", "esme-2": "02474248400001A0",
           "ihd": "02474248400000A6"}
TYPES = {"chf": "chf", "esme": "esme", "esme-2": "esme", "ihd": "ihd"}


def test_resolve_device():
    assert resolve_device("esme-2", DEVICES, TYPES) == "02474248400001A0"
    assert resolve_device("chf", DEVICES, TYPES) == "02474248400000A2"
    assert resolve_device("ihd", DEVICES, TYPES) == "02474248400000A6"
    assert resolve_device("02474248400000a0", DEVICES, TYPES) == "02474248400000A0"
    assert resolve_device("00DB1234567890A0", DEVICES, TYPES) == "00DB1234567890A0"  # any EUI
    with pytest.raises(AddressError) as err:
        resolve_device("esme", DEVICES, TYPES)
    text = str(err.value)
    assert "2 esme devices" in text and "esme 02474248400000A0" in text and "esme-2 02474248400001A0" in text
    with pytest.raises(AddressError, match="unknown device 'gsme'"):
        resolve_device("gsme", DEVICES, TYPES)
    # a unique type addresses its device even when it is named otherwise
    assert resolve_device("esme", {"meter": "02474248400000A0"}, {"meter": "esme"}) == "02474248400000A0"


@settings(max_examples=200, deadline=None)
@given(st.lists(_TABLE, max_size=8))
def test_every_device_is_addressable(tables):
    """In any valid rig every device answers to its EUI, every name that is not a shared type
    answers to its device, and a shared type is refused naming each of its devices."""
    try:
        rig = rig_of(CHF, *tables)
    except RigError:
        return
    devices = {d.name: eui_hex(d.eui) for d in rig.devices}
    types = {d.name: d.type for d in rig.devices}
    for d in rig.devices:
        assert resolve_device(eui_hex(d.eui), devices, types) == eui_hex(d.eui)
        shared = sum(t == d.name for t in types.values()) > 1
        if shared:
            with pytest.raises(AddressError) as err:
                resolve_device(d.name, devices, types)
            assert all(f"{n} {devices[n]}" in str(err.value) for n in devices if types[n] == d.name)
        else:
            assert resolve_device(d.name, devices, types) == eui_hex(d.eui)


def test_send_target_from_premises_json():
    from gbhub.tools.cli import UsageError
    from gbhub.tools.run import recipient_of

    manifest = {"devices": DEVICES, "types": TYPES}
    assert recipient_of("esme-2", manifest) == bytes.fromhex(DEVICES["esme-2"])
    assert recipient_of(None, manifest, "chf") == bytes.fromhex(DEVICES["chf"])
    with pytest.raises(UsageError, match=r"^--to: 'esme' is ambiguous"):
        recipient_of("esme", manifest)
    with pytest.raises(UsageError, match=r"^no --to given .*'esme' is ambiguous"):
        recipient_of(None, manifest, "esme")
    # a premises.json written before devices had names (no `types`): names are types
    old = {"devices": {"chf": DEVICES["chf"], "esme": DEVICES["esme"]}}
    assert recipient_of(None, old, "esme") == bytes.fromhex(DEVICES["esme"])


# -- two ESMEs and an IHD with the fixture -------------------------------------------------------


@pytest.mark.premises(devices=[{"type": "esme"}])
async def test_fixture_two_esmes_answer_each_for_itself(premises):
    p = premises
    assert list(p.devices_by_name) == ["chf", "gpf", "esme", "ihd", "ppmid", "esme-2"]
    second = p.device("esme-2")
    assert second.eui == ESME_2 and p.esme.eui == bytes.fromhex("02474248400000A0")
    assert p.device(ESME_2) is second and p.device(eui_hex(ESME_2)) is second and p.device("chf") is p.chf
    assert p.chf.device_log_entry(ESME_2).joined and p.chf.device_log_entry(p.esme.eui).joined
    for who, eui in (("esme-2", ESME_2), (p.esme.eui, p.esme.eui), (eui_hex(ESME_2), ESME_2)):
        reply = await p.send("ECS17b", to=who)
        assert reply.ok and reply.reply.message.originator == eui
    with pytest.raises(AddressError, match="2 esme devices"):
        await p.send("ECS17b")  # the default target, 'esme', is ambiguous here
    with pytest.raises(AddressError):
        p.device("esme")
    # state is per device: open the second one's load switch only
    assert (await p.send("ECS43", to="esme-2")).ok
    assert second.supply_state != "enabled" and p.esme.supply_state == "enabled"
    status = p.status()
    assert status["esme"]["supply"] == "enabled" and status["esme-2"]["supply"] != "enabled"


@pytest.mark.premises(devices=[{"type": "esme", "name": "garage"}, {"type": "ihd", "name": "kitchen", "meter": "garage"}])
async def test_fixture_ihd_pairs_with_its_own_meter(premises):
    p = premises
    garage, kitchen = p.device("garage"), p.device("kitchen")
    assert kitchen.esme_eui == garage.eui and p.ihd.esme_eui == p.esme.eui
    assert garage.in_device_log(kitchen.eui) and not garage.in_device_log(p.ihd.eui)
    assert p.esme.in_device_log(p.ihd.eui) and not p.esme.in_device_log(kitchen.eui)
    await p.clock.advance(60)
    assert kitchen.display.status == "ok" and p.ihd.display.status == "ok"
    # a third ESME's worth of state has not been made up: CS07 lists each meter's own join
    listed = (await p.send("CS07", to="garage")).summary
    assert eui_hex(kitchen.eui) in str(listed).upper() and eui_hex(p.ihd.eui) not in str(listed).upper()


async def test_fixture_restart_keeps_each_esmes_state(premises_factory, tmp_path):
    extra = [{"type": "esme"}]
    p = await premises_factory(tmp_path / "site", devices=extra)
    assert (await p.send("ECS43", to="esme-2")).ok
    esmes = {"esme": p.esme.eui, "esme-2": ESME_2}  # by EUI: with two ESMEs, 'esme' names no single one
    counters = {n: dict(p.device(eui).counters.items()) for n, eui in esmes.items()}
    assert counters["esme"] != counters["esme-2"]
    await p.clock.advance(60)  # the new head-end's counters (clock-based) must move past the old ones
    await p.stop()
    q = await premises_factory(tmp_path / "site", devices=extra, start=p.clock.now())
    assert q.device("esme-2").supply_state != "enabled" and q.esme.supply_state == "enabled"
    assert {n: dict(q.device(eui).counters.items()) for n, eui in esmes.items()} == counters
    assert (await q.send("ECS45", to="esme-2")).summary["supply_state"] != "on"
    assert (await q.send("ECS45", to=q.esme.eui)).summary["supply_state"] == "on"


# -- the same as processes: gbhub run RIG, gbhub send --to ---------------------------------------


def test_cli_two_esmes_by_eui_restart_and_ambiguity(tmp_path):
    from test_cli_run import Running, gbhub, send

    rig, data = ROOT / "examples" / "two-esme.toml", tmp_path / "site"
    first, second = "02474248400000A0", "02474248400001A0"
    run = Running(str(rig), "--data", str(data))
    try:
        manifest = json.loads((data / "premises.json").read_text())
        assert manifest["devices"] == {"chf": "02474248400000A2", "gpf": "02474248400000A3", "esme": first,
                                       "esme-2": second, "ihd": "02474248400000A6"}
        assert manifest["types"] == {"chf": "chf", "gpf": "gpf", "esme": "esme", "esme-2": "esme", "ihd": "ihd"}
        for eui in (first, second):
            reply = send(data, "ECS17b", "--to", eui)
            assert reply["ok"] and reply["response"]["originator"] == eui and reply["response"]["mac"] == "valid"
        assert send(data, "ECS17b", "--to", "esme-2")["response"]["originator"] == second
        assert send(data, "ECS43", "--to", second)["ok"]  # open the second ESME's load switch only
        assert send(data, "CS07", "--to", "esme-2")["ok"]
        for args in (("--to", "esme"), ()):  # by type, and the use case's default target
            out = gbhub("send", "ECS17b", *args, "--data", str(data))
            assert out.returncode == 2 and out.stdout == "", out.stderr
            lines = out.stderr.strip().splitlines()
            assert len(lines) == 1 and "2 esme devices" in lines[0] and first in lines[0] and second in lines[0]
    finally:
        assert run.stop() == 0

    run = Running(str(rig), "--data", str(data))  # restart over the same data folder
    try:
        assert send(data, "ECS45", "--to", second)["summary"]["supply_state"] != "on"
        assert send(data, "ECS45", "--to", first)["summary"]["supply_state"] == "on"
        for eui in (first, second):
            assert send(data, "ECS17b", "--to", eui)["response"]["originator"] == eui
        assert json.loads((data / "premises.json").read_text())["devices"] == manifest["devices"]
    finally:
        assert run.stop() == 0
