"""pytest plugin (entry point `gbhub`): a running premises as a fixture.

    async def test_reads(premises):
        reply = await premises.send("ECS17b")            # to the ESME, verified and interpreted
        assert reply.ok and reply.summary["import_kwh"] >= 0
        await premises.clock.advance(3600)               # simulated time: timers, half-hours
        alert = await premises.headend.wait_alert()      # alerts arrive verified

`premises` is a commissioned CHF + GPF + ESME + IHD on the virtual HAN, with a head-end on a TCP
WAN bridge, on a simulated clock starting 2026-01-01T00:00Z, state in memory. Mark a test with
`@pytest.mark.premises(tcp=False, start=..., commission=False, ihd=False, devices=[...])` to change
that (`start`: Unix seconds, a datetime or ISO 8601 text), or use `premises_factory` to build
several / restart one over a data folder (its head-end counters then persist in DATA/counters.json). `devices` adds
[[device]] tables as in a rig file: `devices=[{"type": "esme"}]` adds a second ESME (named
`esme-2`, EUI 02474248400001A0), `{"type": "ihd", "meter": "esme-2"}` an IHD paired with it.

Needs pytest-asyncio (installed with gbhub[test]).
"""
from __future__ import annotations

import pytest
import pytest_asyncio


def pytest_configure(config):
    config.addinivalue_line("markers", "premises(tcp=True, start=None, commission=True, ihd=True, ppmid=True, devices=()): premises fixture options")


@pytest.fixture(scope="session")
def gbhub_identity(tmp_path_factory):
    """One test PKI per session (key generation is the slow part of building a premises)."""
    from gbhub.tools.premises import ensure_keys
    from gbhub.tools.rig import default_rig

    rig = default_rig(tmp_path_factory.mktemp("gbhub-pki"))
    rig.clock = "sim"
    return ensure_keys(rig)


@pytest_asyncio.fixture
async def premises_factory(gbhub_identity):
    """`await make(data=None, tcp=True, start=None, commission=True, ihd=True, devices=())` →
    started Premises; all are stopped at teardown. `devices`: extra [[device]] tables (dicts, as
    in a rig file) beside the default CHF, GPF, ESME (and IHD). With the same `data` folder (and
    devices) a second call restarts the same premises from its stored state."""
    from gbhub.tools.premises import Premises
    from gbhub.tools.rig import default_rig, parse_start

    made = []

    async def make(data=None, *, tcp=True, start=None, commission=True, ihd=True, ppmid=True, devices=(), rig=None):
        if rig is None:
            rig = default_rig(data, devices, ihd=ihd, ppmid=ppmid)
            rig.clock = "sim"
            if start is not None:
                rig.start = parse_start(start)  # Unix seconds, a datetime or ISO 8601 text
        p = Premises(rig, tcp=tcp, sim=True, identity=gbhub_identity if rig.key_folders == [] else None)
        await p.start(commission=commission)
        made.append(p)
        return p

    yield make
    for p in made:
        if p.started:
            await p.stop()


@pytest_asyncio.fixture
async def premises(request, premises_factory):
    marker = request.node.get_closest_marker("premises")
    kwargs = dict(marker.kwargs) if marker else {}
    return await premises_factory(**kwargs)
