"""The BLE link on real adapters (marked `hardware`): runs when GBHUB_BLE_ADAPTER names the
adapter the premises' GATT server takes over through bumble (e.g. `hci0`, `usb:0`) and
GBHUB_BLE_CLIENT the far side's (`hci1` through BlueZ with bleak, or `bumble:usb:1`); skipped
otherwise. Two adapters in one machine, a few metres apart at most; no other device is needed."""
from __future__ import annotations

import os

import pytest

pytestmark = pytest.mark.hardware

SERVER = os.environ.get("GBHUB_BLE_ADAPTER", "")
CLIENT = os.environ.get("GBHUB_BLE_CLIENT", "")


def _settings(**kw):
    from gbhub.han.ble import BleSettings

    if CLIENT.startswith("bumble:"):
        client = {"client": "bumble", "client_adapter": CLIENT.partition(":")[2], "client_address": "F0:F0:F0:F0:F0:02"}
    else:
        client = {"client": "bleak", "client_adapter": CLIENT}
    return BleSettings(adapter=SERVER, address="F0:F0:F0:F0:F0:01", **client, **kw)


@pytest.mark.skipif(not (SERVER and CLIENT), reason="no BLE adapters: set GBHUB_BLE_ADAPTER=hci0 and GBHUB_BLE_CLIENT=hci1")
async def test_an_ihd_and_a_ppmid_beyond_a_real_ble_link(premises_factory):
    pytest.importorskip("bumble")
    from gbhub.tools.rig import default_rig

    rig = default_rig(None, gsme=False)
    rig.clock = "sim"
    rig.han_ble = _settings(remote=("ihd", "ppmid"))
    p = await premises_factory(rig=rig)
    server, client = (b.carrier for b in p.han.bridges)
    assert server.up and client.up and server.mtu >= 23
    await p.clock.advance(1)
    shown = await p.ihd.poll_now()
    assert shown.status == "ok" and shown.total_import_kwh is not None
    assert (await p.ppmid.poll_now()).electricity.credit == p.esme.credit_pence
    assert (await p.send("ECS17b")).ok
    assert sum(server.reassembler.dropped.values()) == 0
