"""Test fleets at scale (tools/fleet.py): derived commissioning leaves a premises as commissioning by
messages does, and the COSEM object model the devices of a fleet share keeps no premises' state."""
from __future__ import annotations

from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from gbcs.dlms import Data
from gbcs.obis import OBIS
from gbhub.firmware.nvm import _from_cache
from gbhub.tools.fleet import FleetWorker, fleet_identity

SEED, INDEX = 7, 41
HOUR = 3600.0
# Per command or per handshake, not commissioned state (Premises.commission_derived says so):
# anti-replay counters, alerts queued for a head-end, event / security logs.
NOT_STATE = {"counters", "own_counters", "chf_wan_queue", "chf_wan_meta"}
EVENTS = "events"  # the GPF's copy of the GSME's recent event log
TIMES = {"added_at", "joined_at", "last_communication", "last_sync"}  # when it happened
RANDOM = {"tc_link_key"}  # the join handshake's nonces are random; derived ones come from the seed
WAKES = {"battery"}  # commissioning by messages presses the GSME's button: one wake more


@pytest.fixture(scope="module")
def identity(tmp_path_factory):
    return fleet_identity(tmp_path_factory.mktemp("derived-keys") / "keys", SEED)


def _normal(ns: str, key: str, value: Any) -> Any:
    if ns.endswith("_ka"):  # a KA certificate: the key it certifies (serial and signature are random)
        cert = x509.load_der_x509_certificate(bytes.fromhex(value))
        return cert.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    if ns.endswith("chf_joining"):
        return {**value, "start": "T", "end": value["end"] - value["start"]}
    if isinstance(value, dict):
        return {k: "T" if k in TIMES else "K" if k in RANDOM and v else "W" if k in WAKES else _normal(ns, k, v)
                for k, v in value.items()}
    return value


def _state(worker: FleetWorker) -> dict:
    """Every device's NVM, keyed without the device, normalised (above)."""
    out = {}
    for ns, d in worker.nvm._store.kv.items():
        if ns.split("/", 1)[1] in NOT_STATE:
            continue
        for key, cached in d.items():
            if "/mirror-" in ns and key == EVENTS:
                continue
            out[(ns, key)] = _normal(ns, key, _from_cache(cached))
    return out


def _tc_keys(worker: FleetWorker) -> dict:
    p = worker.premises[0]
    return {e.eui: e.tc_link_key for e in p.chf.device_log()}


async def _premises(identity, commission: str) -> FleetWorker:
    w = FleetWorker(SEED, range(INDEX, INDEX + 1), identity, sim=True, commission=commission)
    await w.start()
    assert w.errors == 0 and len(w.premises) == 1
    start = w.clock.now()
    await w.clock.advance(HOUR - (start % HOUR) + HOUR)  # both to the same time: two hours in
    return w


async def test_derived_commissioning_leaves_the_state_and_behaviour_of_commissioning_by_messages(identity):
    slow = await _premises(identity, "gbcs")
    fast = await _premises(identity, "derived")
    try:
        assert slow.clock.now() == fast.clock.now()
        a, b = slow.premises[0], fast.premises[0]
        assert not a.needs_commissioning() and not b.needs_commissioning()
        # the same state in every device (what differs by nature is normalised: _normal)
        sa, sb = _state(slow), _state(fast)
        assert set(sa) == set(sb)
        assert {k: v for k, v in sa.items() if v != sb[k]} == {}, {k: (sa[k], sb[k]) for k in sa if sa[k] != sb[k]}
        # each keeps one TC link key per joined device, the same at the CHF and at the IHD
        for w, p in ((slow, a), (fast, b)):
            keys = _tc_keys(w)
            assert len(keys) == 4 and all(len(k) == 16 for k in keys.values())
            assert p.ihd.tc_link_key == keys[p.ihd.eui]
        # derived keys follow from the seed
        again = await _premises(identity, "derived")
        try:
            assert _tc_keys(again) == _tc_keys(fast) != _tc_keys(slow)
        finally:
            await again.stop()
        # and they behave alike: the displays, a read through the hub, device logs (the sleepy GSME's: in
        # the state above)
        assert a.ihd.display == b.ihd.display and a.ihd.display.status == "ok"
        assert a.ppmid.display == b.ppmid.display and a.ppmid.display.status == "ok"
        for use_case, to in (("ECS17b", "esme"), ("CS07", "esme"), ("CS07", "ppmid")):
            ra, rb = await a.send(use_case, to=to), await b.send(use_case, to=to)
            assert ra.ok and rb.ok, (use_case, ra.summary, rb.summary)
            assert ra.summary == rb.summary, use_case
    finally:
        await slow.stop()
        await fast.stop()


async def test_a_write_on_one_premises_shows_on_no_other(identity):
    """The ESMEs of a fleet share one COSEM object model (firmware.cosem): state stays each one's."""
    w = FleetWorker(SEED, range(100, 103), identity, sim=True)
    await w.start()
    try:
        one, two, three = (p.esme for p in w.premises)
        assert one.objects.model is two.objects.model is three.objects.model
        o = OBIS.SUPPLIER_MESSAGE
        factory = two.objects.get(o.class_id, o.obis, 2)
        one.objects.set(o.class_id, o.obis, 2, Data.octet_string(b"premises 100 only"))
        assert one.objects.get(o.class_id, o.obis, 2) == Data.octet_string(b"premises 100 only")
        assert two.objects.get(o.class_id, o.obis, 2) == factory == three.objects.get(o.class_id, o.obis, 2)
        # through the use cases too: a tariff activated on one meter only
        r = await w.premises[1].send("ECS24", to="esme")
        before = r.summary
        cal = OBIS.ACTIVITY_CALENDAR
        name = Data.octet_string(b"\x07")
        w.premises[0].esme.objects.set(cal.class_id, cal.obis, 6, name)
        w.premises[0].esme.objects.set(cal.class_id, cal.obis, 10, Data.octet_string(bytes(12)))  # activate now
        assert w.premises[0].esme.objects.get(cal.class_id, cal.obis, 2) == name
        assert w.premises[1].esme.objects.get(cal.class_id, cal.obis, 2) != name
        assert (await w.premises[1].send("ECS24", to="esme")).summary == before
        # each answers with its own identity and registers
        ids = {p.esme.objects.get(OBIS.DEVICE_IDENTITY.class_id, OBIS.DEVICE_IDENTITY.obis, 2).value for p in w.premises}
        assert ids == {p.esme.eui for p in w.premises}
    finally:
        await w.stop()
