"""A premises: CHF + GPF + ESME + IHD wired on a HAN and a WAN bridge, with a head-end.

This is the composition root (`gbhub run`, the `premises` pytest fixture, `gbhub bench e2e`): it
turns a `Rig` into running devices. State lives in the rig's data folder — `nvm.sqlite` (SQLite
WAL, every device's NVM), `keys/` (test PKI in DCC naming, created on first start and reused),
`premises.json` (what `gbhub send` needs: WAN address, EUIs, roles) — or in memory when the rig has
no data folder (tests, benchmarks).

Commissioning (first start, or whenever a device is missing from the logs): the head-end, as the
ACB, adds the ESME and IHD to the CHF device log (CCS01); the ESME joins the HAN with its install
code; the supplier adds the IHD to the ESME's HAN device log (CS03B); the IHD joins and binds.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gbhub.firmware import Nvm, RealClock, SimClock
from gbhub.firmware.gbcs_device import Credentials, TrustAnchors
from gbcs.catalogue import DeviceType
from gbcs.codec import eui_hex
from gbcs.keystore import Keystore
from gbhub.han.join import join
from gbhub.han.virtual import VirtualAir
from gbhub.han.zcl_server import ZclServer
from gbhub.hub.chf import Chf
from gbhub.hub.gpf import Gpf
from gbhub.meter.esme import Esme
from gbhub.meter.ihd import Ihd
from gbhub.wan.bridge import InProcessBridge, TcpBridge
from gbhub.wan.headend import HeadEnd

from .rig import Rig, RigError, default_rig

log = logging.getLogger("gbhub.premises")

DEFAULT_SIM_START = 1767225600.0  # 2026-01-01T00:00:00Z: a fixed start makes simulated runs repeatable


@dataclass
class Identity:
    """Where the keys of a premises come from and who the remote parties are. `trust` holds
    the organisations the devices accept (their trust anchors); `keystore` everything the
    head-end needs (remote parties' private keys, devices' public keys)."""

    keystore: Keystore
    trust: TrustAnchors
    acb: bytes
    supplier: bytes
    network_operator: bytes | None


def ensure_keys(rig: Rig) -> Identity:
    """Keys for a rig.

    Without `[keystore] folders`: a test PKI in DATA/keys, created on first start and reused.
    With folders (e.g. the RTDS keystore): the remote parties come from those folders only; a
    device whose private keys are not there gets fresh ones, kept in DATA/keys so a restart
    reuses them (an RTDS device has no DS private key: its signatures then verify with the DS
    public key gbhub writes beside it, not with the RTDS certificate)."""
    from gbhub.tools.keys import load_keystore, save_keystore
    from gbhub.tools.pki import add_device, init_pki, load_pki

    folder = (rig.data / "keys") if rig.data is not None else None
    if folder is None:
        import tempfile

        folder = Path(tempfile.mkdtemp(prefix="gbhub-keys-"))
    if not (folder / "pki.json").is_file():
        init_pki(folder, not_before=_pki_not_before(rig))
    if not rig.key_folders:
        pki = load_pki(folder)
        for d in rig.devices:
            if d.type in ("chf", "gpf", "esme") and d.eui not in pki.devices:
                add_device(folder, d.eui, d.type, not_before=_pki_not_before(rig))
        pki = load_pki(folder)
        ks = pki.keystore
        for d in rig.devices:
            if d.keys is not None:
                ks.merge(load_keystore(d.keys))
        return Identity(ks, TrustAnchors.from_keystore(ks), rig.acb or pki.acb, rig.supplier or pki.supplier,
                        rig.network_operator or pki.network_operator)
    # Remote parties from the rig's folders; devices' missing keys made here.
    parties = load_keystore(*dict.fromkeys(rig.key_folders))
    device_folders = [d.keys for d in rig.devices if d.keys is not None]
    devices = load_keystore(*dict.fromkeys(device_folders)) if device_folders else Keystore()
    own = load_keystore(folder)
    for d in rig.devices:
        if d.type not in ("chf", "gpf", "esme"):
            continue
        if devices.private_key(d.eui, "ka") is None and own.private_key(d.eui, "ka") is None:
            add_device(folder, d.eui, d.type, not_before=_pki_not_before(rig))
            own = load_keystore(folder)
        elif devices.private_key(d.eui, "ds") is None and own.private_key(d.eui, "ds") is None:
            from cryptography.hazmat.primitives.asymmetric import ec

            extra = Keystore()
            key = ec.generate_private_key(ec.SECP256R1())
            extra.add_private_key(d.eui, "ds", key)
            extra.add_public_key(d.eui, "ds", key.public_key())
            save_keystore(extra, folder)
            own = load_keystore(folder)
    ks = Keystore()
    ks.merge(parties)
    ks.merge(devices)
    for eui in own.euis():  # only our devices' keys, never our test organisations
        if own.role(eui) is None:
            mine = Keystore()
            for usage in ("ka", "ds"):
                slot = own.slot(eui, usage)
                if slot is None:
                    continue
                if slot.private_key is not None:
                    mine.add_private_key(eui, usage, slot.private_key)
                    pub = slot.public_key
                    if pub is not None:
                        mine.add_public_key(eui, usage, pub)
            ks.merge(mine)
    roles = {parties.role(e): e for e in parties.euis() if parties.role(e) is not None}
    acb = rig.acb or roles.get(4)
    supplier = rig.supplier or roles.get(2)
    if acb is None or supplier is None:
        raise RigError("[keystore]: no ACB / supplier found in the folders (give acb = ... and supplier = ...)")
    trust = TrustAnchors.from_keystore(parties)
    return Identity(ks, trust, acb, supplier, rig.network_operator or roles.get(3))


def _pki_not_before(rig: Rig):
    import datetime as dt

    if rig.clock == "sim" or rig.start is not None:
        start = rig.start if rig.start is not None else DEFAULT_SIM_START
        return dt.datetime.fromtimestamp(min(start, time.time()) - 86400 * 366, dt.timezone.utc)
    return None


class Premises:
    """Running devices of one premises plus a connected head-end."""

    def __init__(self, rig: Rig, *, tcp: bool | None = None, sim: bool | None = None, identity: Identity | None = None) -> None:
        self.rig = rig
        self.sim = (rig.clock == "sim") if sim is None else sim
        self.use_tcp = tcp if tcp is not None else True
        self.identity = identity or ensure_keys(rig)
        ks = self.identity.keystore
        if self.sim:
            self.clock = SimClock(rig.start if rig.start is not None else DEFAULT_SIM_START)
        else:
            self.clock = RealClock(speed=rig.speed, start=rig.start)
        if rig.data is not None:
            rig.data.mkdir(parents=True, exist_ok=True)
            self.nvm = Nvm(rig.data / "nvm.sqlite")
        else:
            self.nvm = Nvm(None)
        self.air = VirtualAir(clock=self.clock, latency=rig.han_latency, loss=rig.han_loss, seed=rig.han_seed)
        self.bridge = TcpBridge(rig.wan_host, rig.wan_port) if self.use_tcp else InProcessBridge()
        if rig.trace is not None:
            self.bridge.trace_to(rig.trace)
        self.trust = self.identity.trust
        self.specs = {d.type: d for d in rig.devices}
        chf_spec = self.specs["chf"]
        self.chf = Chf(chf_spec.eui, clock=self.clock, credentials=Credentials.from_keystore(ks, chf_spec.eui),
                       trust=self.trust, nvm=self.nvm, **_firmware(chf_spec), **chf_spec.options)
        self.gpf = None
        if "gpf" in self.specs:
            s = self.specs["gpf"]
            self.gpf = Gpf(s.eui, clock=self.clock, credentials=Credentials.from_keystore(ks, s.eui), trust=self.trust,
                           nvm=self.nvm, **_firmware(s), **s.options)
        self.esme = self.esme_zcl = None
        if "esme" in self.specs:
            s = self.specs["esme"]
            self.esme = Esme(s.eui, clock=self.clock, credentials=Credentials.from_keystore(ks, s.eui), trust=self.trust,
                             nvm=self.nvm, chf_eui=chf_spec.eui, prepayment_key=ks.public_key(self.identity.supplier, "pp-ka"),
                             prepayment_supplier=self.identity.supplier, **_firmware(s), **s.options)
        self.ihd = None
        if "ihd" in self.specs and self.esme is not None:
            s = self.specs["ihd"]
            self.ihd = Ihd(s.eui, clock=self.clock, han=self.air, chf_eui=chf_spec.eui, esme_eui=self.esme.eui,
                           install_code=s.install_code, nvm=self.nvm, **s.options)
        self.headend: HeadEnd | None = None
        self._client = None
        self.started = False

    # ------------------------------------------------------------------ lifecycle
    @property
    def devices(self) -> list:
        return [d for d in (self.chf, self.gpf, self.esme, self.ihd) if d is not None]

    @property
    def wan_port(self) -> int | None:
        return getattr(self.bridge, "port", None)

    async def start(self, *, commission: bool | None = None) -> None:
        """Start the bridge and the devices, connect the head-end, commission if needed."""
        if self.use_tcp:
            await self.bridge.start()
        self.chf.attach_wan(self.bridge)
        self.chf.attach_han(self.air)
        if self.gpf is not None:
            self.chf.attach_gpf(self.gpf)
        if self.esme is not None:
            dispatch = self.esme.attach_han(self.air)
            self.esme_zcl = ZclServer(dispatch, clusters=self.esme.zcl_attributes(), allow=self.esme.in_device_log,
                                      port=self.esme.han_port, clock=self.clock)
        for device in (self.chf, self.gpf, self.esme):
            if device is not None:
                await device.start()
        await self.connect_headend()
        self.started = True
        if commission if commission is not None else self.rig.commission:
            await self.commission()
        if self.ihd is not None:
            await self.ihd.start()
            await self._settle()
        self.write_manifest()

    async def connect_headend(self) -> HeadEnd:
        if self.use_tcp:
            from gbhub.wan.bridge import TcpClient

            self._client = TcpClient(self.rig.wan_host if self.rig.wan_host != "0.0.0.0" else "127.0.0.1", self.bridge.port)
            await self._client.connect()
        else:
            self._client = self.bridge.client()
        self.headend = HeadEnd(self._client, self.identity.keystore, supplier=self.identity.supplier,
                               acb=self.identity.acb, clock=self.clock)
        return self.headend

    async def _settle(self, seconds: float = 0.0) -> None:
        if isinstance(self.clock, SimClock):
            await self.clock.advance(seconds)
        else:
            await asyncio.sleep(max(seconds, 0.01))

    async def commission(self) -> None:
        """Bring the HAN into its working state; idempotent (skips what is already done)."""
        chf, esme, ihd = self.chf, self.esme, self.ihd
        he = self.headend
        assert he is not None
        if esme is not None:
            entry = chf.device_log_entry(esme.eui)
            if entry is None:
                r = await he.send_use_case("CCS01", recipient=chf.eui, params={
                    "device": esme.eui, "install_code": self.specs["esme"].install_code})
                if not r.ok:
                    raise RuntimeError(f"CCS01 for the ESME failed: {r.summary}")
                entry = chf.device_log_entry(esme.eui)
            if not entry.joined:
                await join(esme.han_port, chf.eui, self.specs["esme"].install_code, dispatch=esme.han_dispatch,
                           device_type=DeviceType.ESME, clock=self.clock)
                await self._settle(1)
        if ihd is not None and esme is not None:
            if chf.device_log_entry(ihd.eui) is None:
                r = await he.send_use_case("CCS01", recipient=chf.eui, params={
                    "device": ihd.eui, "install_code": self.specs["ihd"].install_code})
                if not r.ok:
                    raise RuntimeError(f"CCS01 for the IHD failed: {r.summary}")
            if not esme.in_device_log(ihd.eui):
                from gbcs.asn1 import DeviceType as Asn1DeviceType, JoinMethodAndRole

                r = await he.send_use_case("CS03B", recipient=esme.eui, params={
                    "other_entity_id": ihd.eui, "other_device_type": Asn1DeviceType.TYPE_2,
                    "join_method_and_role": JoinMethodAndRole.METHOD_B})
                if not r.ok:
                    raise RuntimeError(f"CS03B for the IHD failed: {r.summary}")

    async def stop(self) -> None:
        """Clean shutdown: devices off (NVM keeps state), head-end and bridge closed."""
        for device in reversed(self.devices):
            try:
                await device.stop()
            except Exception:  # noqa: BLE001 - shutting down regardless
                log.exception("stopping %s", device)
        if self.headend is not None:
            await self.headend.close()
        await self.bridge.close()
        self.nvm.close()
        self.started = False

    async def __aenter__(self) -> "Premises":
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    # ------------------------------------------------------------------ convenience
    async def send(self, use_case: str, to: str | bytes = "esme", **params: Any):
        """Send a named use case to 'esme', 'chf', 'gpf' or an EUI; returns a UseCaseReply."""
        assert self.headend is not None
        return await self.headend.send_use_case(use_case, recipient=self.eui_of(to), params=params)

    def eui_of(self, who: str | bytes) -> bytes:
        if isinstance(who, bytes):
            return who
        if who in self.specs:
            return self.specs[who].eui
        from gbcs.codec import parse_eui

        return parse_eui(who)

    def manifest(self) -> dict:
        return {
            "pid": os.getpid(),
            "wan": {"host": self.rig.wan_host, "port": self.wan_port} if self.use_tcp else None,
            "devices": {d.type: eui_hex(d.eui) for d in self.rig.devices},
            "acb": eui_hex(self.identity.acb),
            "supplier": eui_hex(self.identity.supplier),
            "keys": [str(p) for p in (self.rig.key_folders or ([self.rig.data / "keys"] if self.rig.data else []))],
            "clock": self.rig.clock,
        }

    def write_manifest(self) -> None:
        if self.rig.data is None:
            return
        path = self.rig.data / "premises.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.manifest(), indent=2) + "\n")
        os.replace(tmp, path)

    def status(self) -> dict:
        out = {"time": self.clock.utcnow().isoformat(), "wan_port": self.wan_port}
        if self.esme is not None:
            regs = self.esme.registers()
            out["esme"] = {"import_kwh": regs.get("import_wh", 0) / 1000, "today_kwh": regs.get("current_day_wh", 0) / 1000,
                           "power_w": self.esme.power_w(), "supply": getattr(self.esme, "supply_state", None)}
        if self.ihd is not None:
            d = self.ihd.display
            out["ihd"] = {"status": d.status, "demand_w": d.instantaneous_demand_w, "today_kwh": d.today_import_kwh,
                          "price": d.current_price, "credit": d.credit}
        out["wan_queue"] = self.chf.wan_queue_length
        return out


def _firmware(spec) -> dict:
    return {"firmware_version": spec.firmware_version} if spec.firmware_version else {}
