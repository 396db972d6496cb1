"""The ZigBee transport (han/zigbee.py) through the virtual zigpy radio (han/zigbee_virtual.py):
the CHF as coordinator and trust centre, Smart Energy endpoints served below zigpy's dispatch,
gbhub's IHD joining as a ZigBee end device with its install code."""
from __future__ import annotations

import pytest

pytest.importorskip("zigpy")

from gbhub.tools.premises import Premises  # noqa: E402
from gbhub.tools.rig import default_rig  # noqa: E402


def zigbee_rig(**han):
    rig = default_rig(None)
    rig.clock = "sim"
    rig.han = "zigbee"
    rig.han_radio = "virtual"
    for k, v in han.items():
        setattr(rig, f"han_{k}", v)
    return rig


@pytest.fixture
async def zpremises(gbhub_identity):
    made = []

    async def make(rig=None, **kw):
        p = Premises(rig or zigbee_rig(), tcp=False, sim=True, identity=gbhub_identity)
        await p.start(**kw)
        made.append(p)
        return p

    yield make
    for p in made:
        if p.started:
            await p.stop()


async def test_ihd_joins_over_zigbee_and_reads_the_esme(zpremises):
    p = await zpremises()
    link = p.han
    assert link.transport.started
    entry = p.chf.device_log_entry(p.ihd.eui)
    assert entry is not None and entry.joined
    # the IHD is a zigpy device of the coordinator, known by its IEEE address (GBCS order reversed)
    import zigpy.types as zt
    from gbhub.han.aps import ieee_from_eui

    assert zt.EUI64(ieee_from_eui(p.ihd.eui)) in link.transport.app.devices
    display = await p.ihd.poll_now()
    assert display.status == "ok", display
    assert link.transport.counters.received > 0
