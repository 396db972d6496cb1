"""A real ZigBee radio (marked `hardware`): runs when GBHUB_RADIO names one, e.g.
GBHUB_RADIO=ezsp:/dev/ttyUSB0 (or znp:/dev/ttyACM0, deconz:/dev/ttyACM0; optional :BAUD),
skipped otherwise. It forms a network on the radio and serves the demo premises' Smart Energy
endpoints; no device needs to be nearby."""
from __future__ import annotations

import os

import pytest

pytestmark = pytest.mark.hardware

RADIO = os.environ.get("GBHUB_RADIO", "")


@pytest.mark.skipif(not RADIO, reason="no radio: set GBHUB_RADIO=type:/dev/port[:baud]")
async def test_the_coordinator_starts_on_the_radio(gbhub_identity):
    pytest.importorskip("zigpy")
    from gbhub.tools.premises import Premises
    from gbhub.tools.rig import default_rig

    radio, _, rest = RADIO.partition(":")
    port, _, baud = rest.partition(":")
    rig = default_rig(None, ihd=False)
    rig.clock = "sim"
    rig.han, rig.han_radio, rig.han_port = "zigbee", radio, port
    rig.han_baudrate = int(baud) if baud else None
    p = Premises(rig, tcp=False, sim=True, identity=gbhub_identity)
    await p.start()
    try:
        assert p.han.transport.started and p.han.transport.ieee is not None
        assert {d.device_id for d in p.han.transport.descriptors()} == {0x0500, 0x0501}
        assert p.chf.device_log_entry(p.esme.eui).joined
    finally:
        await p.stop()
