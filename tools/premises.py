"""A premises: one CHF and any number of registered devices (GPF, ESMEs, IHDs ...) wired on a
HAN and a WAN bridge, with a head-end.

This is the composition root (`gbhub run`, the `premises` pytest fixture, `gbhub bench e2e`): it
turns a `Rig` into running devices, each built and attached by its type's registration
(`gbhub.firmware.registry`; the registrations live in `hub/__init__.py` and `meter/__init__.py`).
State lives in the rig's data folder — `nvm.sqlite` (SQLite WAL, every device's NVM under its EUI),
`keys/` (test PKI in DCC naming, created on first start and reused), `premises.json` (what `gbhub
send` needs: WAN address, device names -> EUIs and types, roles) — or in memory when the rig has
no data folder (tests, benchmarks).

Commissioning (first start, or whenever a device is missing from the logs), for every HAN device
(each after the meter it pairs with): the head-end, as the ACB, adds it to the CHF device log (CCS01); an ESME joins the
HAN with its install code; the supplier adds an IHD to its own meter's HAN device log (CS03B); the
IHD then joins and binds by itself.

Split across a serial HAN link (`[han] transport = "serial"`, `[han] local`): this process builds
only its local devices; each device across the link is a `RemoteDevice` (name, type, EUI). The
side that runs the CHF (the hub side) holds the WAN and commissions: CCS01 for every HAN device,
CS03B for a display whose meter or self is across the link (sent while the display is not yet
joined: the CHF device log is the record it trusts), and it waits for remote devices that join
through commissioning (ESME, GSME, PPMID) to show as joined in the CHF device log. The other side
(the meter side) opens no WAN port and only joins its devices, retrying until the CHF accepts
them; it records each join in its NVM so a restart does not try again. A PPMID's pairing
(CS03A1/CS03A2/CS03C) is not done for a PPMID across the link [I]: send those use cases yourself.
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

from gbcs.codec import eui_hex, parse_eui
from gbcs.keystore import Keystore
from gbhub.firmware import Nvm, RealClock, SimClock
from gbhub.firmware.gbcs_device import TrustAnchors
from gbhub.firmware.registry import DeviceContext, device_kind, device_kinds
from gbhub.han.ota import OtaClient
from gbhub.han.virtual import VirtualAir
from gbhub.wan.bridge import InProcessBridge, TcpBridge
from gbhub.wan.counters import HeadEndCounters
from gbhub.wan.headend import HeadEnd

from .rig import AddressError, Rig, RigError, resolve_device

log = logging.getLogger("gbhub.premises")

DEFAULT_SIM_START = 1767225600.0  # 2026-01-01T00:00:00Z: a fixed start makes simulated runs repeatable


@dataclass(frozen=True)
class RemoteDevice:
    """A device of the rig that runs in the gbhub process across the serial HAN link: what this
    process knows of it."""

    name: str
    type: str
    eui: bytes
    state: str = "remote"


#: How long the hub side waits for a device across the link to join, and the meter side for the
#: CHF to accept its devices (real seconds) [I].
REMOTE_JOIN_WAIT = 300.0
SPLIT_NS = "premises_split"  # NVM namespace: the meter side's record of its devices' joins


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
    pki: Path | None = None  # the test PKI folder, where keys for more devices can be made

    def ensure_devices(self, rig: Rig) -> None:
        """Keys for every GBCS device of `rig` that this identity lacks (e.g. a second ESME
        added to a premises built on a shared test PKI); needs the test PKI folder."""
        from gbhub.tools.pki import add_device

        for d in rig.devices:
            if device_kind(d.type).keys and self.keystore.private_key(d.eui, "ka") is None and self.pki is not None:
                self.keystore.merge(add_device(self.pki, d.eui, d.type, not_before=_pki_not_before(rig)))


def ensure_keys(rig: Rig) -> Identity:
    """Keys for a rig.

    Without `[keystore] folders`: a test PKI in DATA/keys, created on first start and reused.
    With folders (e.g. the RTDS keystore): the remote parties come from those folders only; a
    device whose private keys are not there gets fresh ones, kept in DATA/keys so a restart
    reuses them (an RTDS device has no DS private key: its signatures then verify with the DS
    public key gbhub writes beside it, not with the RTDS certificate)."""
    if rig.data is None:
        import tempfile

        return _ensure_keys(rig, Path(tempfile.mkdtemp(prefix="gbhub-keys-")))
    folder = rig.data / "keys"
    if folder.is_dir():
        return _ensure_keys(rig, folder)
    # first start: make every key in a partial folder and rename it when complete, so a kill
    # during key generation leaves no half PKI (the next start makes it again)
    import shutil

    partial = rig.data / ".keys-partial"
    shutil.rmtree(partial, ignore_errors=True)
    identity = _ensure_keys(rig, partial)
    os.rename(partial, folder)
    if identity.pki is not None:
        identity.pki = folder
    return identity


def _ensure_keys(rig: Rig, folder: Path) -> Identity:
    from gbhub.tools.keys import load_keystore, save_keystore
    from gbhub.tools.pki import add_device, init_pki, load_pki

    if not (folder / "pki.json").is_file():
        init_pki(folder, not_before=_pki_not_before(rig))
    if not rig.key_folders:
        pki = load_pki(folder)
        for d in rig.devices:
            if device_kind(d.type).keys and d.eui not in pki.devices:
                add_device(folder, d.eui, d.type, not_before=_pki_not_before(rig))
        pki = load_pki(folder)
        ks = pki.keystore
        for d in rig.devices:
            if d.keys is not None:
                ks.merge(load_keystore(d.keys))
        return Identity(ks, TrustAnchors.from_keystore(ks), rig.acb or pki.acb, rig.supplier or pki.supplier,
                        rig.network_operator or pki.network_operator, pki=folder)
    # Remote parties from the rig's folders; devices' missing keys made here.
    parties = load_keystore(*dict.fromkeys(rig.key_folders))
    device_folders = [d.keys for d in rig.devices if d.keys is not None]
    devices = load_keystore(*dict.fromkeys(device_folders)) if device_folders else Keystore()
    own = load_keystore(folder)
    for d in rig.devices:
        if not device_kind(d.type).keys:
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
    """Running devices of one premises plus a connected head-end.

    `devices_by_name` holds every device under its rig name, in the order they were built (the
    CHF first, then each device after the ones it needs); `device(name_or_eui)` finds one;
    `.chf`, `.gpf`, `.esme`, `.ihd` (an attribute per registered type) are the first device of
    that type, or None."""

    chf: Any
    gpf: Any
    esme: Any
    ihd: Any

    def __init__(self, rig: Rig, *, tcp: bool | None = None, sim: bool | None = None, identity: Identity | None = None,
                 headend_takes_queued: bool = True, clock: Any = None, nvm: Nvm | None = None,
                 bridge: Any = None) -> None:
        """`clock`, `nvm`, `bridge`: shared with other premises (a fleet worker: one clock, one
        NVM keyed by device EUI, bridges on one MQTT session); by default each premises has its own."""
        self.rig = rig
        self.sim = (rig.clock == "sim") if sim is None else sim
        self.use_tcp = tcp if tcp is not None else True
        if rig.wan_broker is not None or bridge is not None:
            self.use_tcp = False  # the broker is the WAN; the premises' own head-end attaches in process
        self.identity = identity or ensure_keys(rig)
        self.identity.ensure_devices(rig)
        for d in rig.devices:
            if device_kind(d.type).keys and self.identity.keystore.private_key(d.eui, "ka") is None:
                from .datafolder import DataFolderError

                where = f" in {rig.data / 'keys'}" if rig.data is not None else ""
                raise DataFolderError(f"{d.name}: no KA private key for {eui_hex(d.eui)}{where}; restore the key files"
                                      + (f", or start over with `gbhub run --reset --data {rig.data}`" if rig.data else ""))
        if clock is not None:
            self.clock = clock
        elif self.sim:
            self.clock = SimClock(rig.start if rig.start is not None else DEFAULT_SIM_START)
        else:
            self.clock = RealClock(speed=rig.speed, start=rig.start)
        if nvm is not None:
            self.nvm = nvm
            self.counters = None
        elif rig.data is not None:
            rig.data.mkdir(parents=True, exist_ok=True)
            self.nvm = Nvm(rig.data / "nvm.sqlite")
            self.counters: HeadEndCounters | None = HeadEndCounters(rig.data / "counters.json")
        else:
            self.nvm = Nvm(None)
            self.counters = None
        self.air = VirtualAir(clock=self.clock, latency=rig.han_latency, loss=rig.han_loss, seed=rig.han_seed)
        from .radio import han_link

        self.han = han_link(rig, self.clock, self.air)  # the rig's [han] transport (tools/radio.py)
        self.capture = None
        if rig.han_pcap is not None:
            from gbhub.han.capture import HanCapture

            try:
                self.capture = HanCapture(rig.han_pcap, coordinator=rig.device("chf").eui)
            except OSError as exc:
                from .inputs import Failure

                raise Failure(f"HAN capture: cannot write {rig.han_pcap}: {exc.strerror}") from None
            self.capture.attach(self.han.transport)
        # No head-end attached counts as WAN down: the CHF keeps alerts until one takes them. The
        # premises' own head-end takes them (tests, benchmarks) unless told not to (`gbhub run`:
        # they wait for a head-end such as `gbhub alerts`).
        self.headend_takes_queued = headend_takes_queued
        self._shared_nvm = nvm is not None
        if bridge is not None:
            self.bridge = bridge
        elif rig.wan_broker is not None:
            from gbhub.wan.mqtt import MqttBridge, parse_wan

            chf = rig.device("chf")
            self.bridge = MqttBridge(chf.eui if chf is not None else bytes(8), address=parse_wan(rig.wan_broker))
        else:
            self.bridge = (TcpBridge(rig.wan_host, rig.wan_port, require_client=True) if self.use_tcp
                           else InProcessBridge(require_client=True))
        if rig.trace is not None:
            self.bridge.trace_to(rig.trace)
        self.trust = self.identity.trust
        self.specs = {d.name: d for d in rig.devices}
        self.types = {d.name: d.type for d in rig.devices}
        self._euis = {d.name: eui_hex(d.eui) for d in rig.devices}
        self._addresses: dict[str, bytes] = {}  # resolved `to=` names: every send asks again
        self.devices_by_name: dict[str, Any] = {}
        self.remote: dict[str, RemoteDevice] = {}  # devices across the serial HAN link
        self.contexts: dict[str, DeviceContext] = {}
        self.attachments: dict[str, Any] = {}  # what each device's attachment serves (e.g. its ZCL server)
        self._building: set[str] = set()
        chf_spec = rig.device("chf")
        if chf_spec is None:
            raise RigError("a rig needs exactly one chf device")
        self.chf = None
        self.chf = self._build(chf_spec.name)
        self.chf_eui = chf_spec.eui
        #: False on the meter side of a split rig: the CHF is across the link, so no WAN here
        self.hub_side = rig.is_local(chf_spec.name)
        for spec in rig.devices:
            self._build(spec.name)
        for kind in device_kinds():
            if kind.type.isidentifier() and not hasattr(type(self), kind.type):  # never shadow a method
                setattr(self, kind.type, self.first(kind.type))
        self.esme_zcl = None
        self.headend: HeadEnd | None = None
        self._client = None
        self.started = False

    def _build(self, name: str) -> Any:
        """Build the device `name` (and, through its context's lookups, those it needs first)."""
        device = self.devices_by_name.get(name)
        if device is not None:
            return device
        spec = self.specs.get(name)
        if spec is None:
            raise RigError(f"no device named {name!r} in the rig")
        if not self.rig.is_local(name):
            remote = self.remote.get(name)
            if remote is None:
                remote = self.remote[name] = RemoteDevice(name, spec.type, spec.eui)
            return remote
        if name in self._building:
            raise RigError(f"{name}: its devices depend on each other in a circle")
        self._building.add(name)
        ctx = DeviceContext(spec, clock=self.clock, nvm=self.nvm, keystore=self.identity.keystore, trust=self.trust,
                            supplier=self.identity.supplier, han=self.han.transport_for(spec), wan=self.bridge, chf=self.chf,
                            lookup=self._build, specs=self.specs)
        device = device_kind(spec.type).create(ctx)
        self._building.discard(name)
        self.contexts[name] = ctx
        self.devices_by_name[name] = device
        return device

    # ------------------------------------------------------------------ lookup
    @property
    def devices(self) -> list:
        return list(self.devices_by_name.values())

    def first(self, type_: str) -> Any:
        """The first device of a type in the rig, or None."""
        return next((d for n, d in self.devices_by_name.items() if self.types[n] == type_), None)

    def name_of(self, device: Any) -> str:
        return next(n for n, d in self.devices_by_name.items() if d is device)

    def device(self, who: str | bytes) -> Any:
        """The device a name, a unique type or an EUI names (AddressError otherwise)."""
        if isinstance(who, str) and who in self.devices_by_name and sum(t == who for t in self.types.values()) <= 1:
            return self.devices_by_name[who]
        eui = self.eui_of(who)
        for d in self.devices_by_name.values():
            if d.eui == eui:
                return d
        raise AddressError(f"no device {eui_hex(eui)} in this premises")

    @property
    def wan_port(self) -> int | None:
        return getattr(self.bridge, "port", None)

    # ------------------------------------------------------------------ lifecycle
    async def start(self, *, commission: bool | None = None, listen_when_ready: bool = False,
                    derived: bytes | None = None) -> None:
        """Start the bridge and the devices, connect the head-end, commission if needed.

        `derived` (test fleets): commission by `commission_derived(derived)` before the devices
        boot, instead of by messages.

        `listen_when_ready` (gbhub run): the rig's WAN address opens only once commissioning is
        done, so no outside command meets a half-built premises; commissioning, when anything is
        left to do, runs through a private loopback port, and the premises keeps no head-end of its
        own afterwards (`headend` is None), so frames the CHF queued are left for real head-ends."""
        if not self.hub_side:
            return await self._start_meter_side()
        broker = self.rig.wan_broker is not None
        private = self.use_tcp and listen_when_ready
        if self.use_tcp and not private:
            await self.bridge.start()
        await self._attach()
        self._mirror_models()
        if derived is not None:
            await self.commission_derived(derived)
            commission = False
        late = await self._start_early()
        if derived is not None:
            self._derived_first_push()
        self.raise_counter_floors()
        commissioning = commission if commission is not None else self.rig.commission
        if private:
            commissioning = commissioning and self.needs_commissioning()
            if commissioning:
                host, port = self.bridge.host, self.bridge.port
                self.bridge.host, self.bridge.port = "127.0.0.1", 0
                await self.bridge.start()
        if commissioning or not private:
            await self.connect_headend()
        self.started = True
        if commissioning:
            await self.commission()
        for device in late:
            await device.start()
        if late:
            await self._settle()
        if private:
            if commissioning:
                await self.headend.close()
                self.headend = None
                await self.bridge.close()
                self.bridge.host, self.bridge.port = host, port
                if self.rig.trace is not None:
                    self.bridge.trace_to(self.rig.trace)
            await self.bridge.start()
        if broker:
            if listen_when_ready and self.headend is not None:
                await self.headend.close()  # queued frames are for head-ends on the broker
                self.headend = None
            await self.bridge.start()
        self.write_manifest()

    async def _attach(self) -> None:
        for name, device in self.devices_by_name.items():
            kind = device_kind(self.types[name])
            if kind.attach is not None:
                self.attachments[name] = kind.attach(device, self.contexts[name])
            if kind.ota and device.ota_client is None:  # firmware images from the CHF (README "Firmware")
                OtaClient(device, device.han_port, device.han_dispatch, server=self.chf_eui, clock=self.clock)
        if self.esme is not None:
            self.esme_zcl = self.attachments.get(self.name_of(self.esme))
        await self.han.start(self)  # after attaching: a radio registers the endpoints of attached devices

    async def _start_early(self) -> list:
        """Start every device that does not wait for commissioning; those that do, in order."""
        late = []
        for name, device in self.devices_by_name.items():
            if device_kind(self.types[name]).starts_after_commissioning:
                late.append(device)
            else:
                await device.start()
        return late

    async def _start_meter_side(self) -> None:
        """The side of a split rig without the CHF: start the devices, join those commissioning
        joins (retrying until the CHF, across the link, accepts them), then the rest."""
        await self._attach()
        late = await self._start_early()
        self.started = True
        if self.rig.commission:
            for name, device in self.devices_by_name.items():
                kind = device_kind(self.types[name])
                if kind.han_member and kind.join is not None and self.nvm.get(SPLIT_NS, eui_hex(device.eui)) is None:
                    await self._join_across(name, device, kind)
        for device in late:
            await device.start()
        self.write_manifest()

    async def _join_across(self, name: str, device: Any, kind: Any) -> None:
        from gbhub.han import HanError
        from gbhub.han.join import JoinError

        log.info("commissioning %s: joining the CHF across the HAN link", name)
        deadline = time.monotonic() + REMOTE_JOIN_WAIT
        while True:
            try:
                await kind.join(device, self.contexts[name])
                break
            except (JoinError, HanError) as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} could not join the CHF across the HAN link within "
                                       f"{REMOTE_JOIN_WAIT:.0f} s: {exc}") from None
                log.info("%s: join not accepted yet (%s); trying again", name, exc)
                await asyncio.sleep(1.0)
        self.nvm.put(SPLIT_NS, eui_hex(device.eui), {"joined": True})

    async def _wait_joined(self, name: str, eui: bytes) -> None:
        """The hub side: until the CHF device log shows `eui` (across the link) as joined."""
        log.info("commissioning %s: waiting for it to join across the HAN link", name)
        deadline = time.monotonic() + REMOTE_JOIN_WAIT
        while True:
            entry = self.chf.device_log_entry(eui)
            if entry is not None and entry.joined:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} ({eui_hex(eui)}) across the HAN link did not join within "
                                   f"{REMOTE_JOIN_WAIT:.0f} s: is the gbhub process on the other side running?")
            await asyncio.sleep(0.2)

    def _han_members(self) -> list[tuple[str, Any]]:
        """(name, device or RemoteDevice) of every HAN device, in commissioning order: as built,
        then the devices across the link, meters before the displays that pair with them."""
        members = [(n, d) for n, d in self.devices_by_name.items() if device_kind(self.types[n]).han_member]
        remote = [(n, d) for n, d in self.remote.items() if device_kind(d.type).han_member]
        remote.sort(key=lambda item: device_kind(item[1].type).pairs_with is not None)
        return members + remote

    def needs_commissioning(self) -> bool:
        """Whether `commission()` has anything left to do (the steps it would skip, checked)."""
        chf = self.chf
        for name, device in self._han_members():
            kind, spec = device_kind(self.types[name]), self.specs[name]
            entry = chf.device_log_entry(device.eui)
            if entry is None or (kind.join is not None and not entry.joined):
                return True
            if self._across(name):
                if kind.pair is None and kind.pairs_with is not None and not entry.joined:
                    return True
                continue
            if kind.pair is not None:
                if not kind.paired(device, self.contexts[name]):
                    return True
            elif kind.pairs_with is not None and not self.devices_by_name[spec.meter].in_device_log(device.eui):
                return True
        return False

    def _across(self, name: str) -> bool:
        """Whether commissioning `name` involves a device across the link (itself or its meter)."""
        spec = self.specs[name]
        return name in self.remote or (spec.meter is not None and spec.meter in self.remote)

    def raise_counter_floors(self) -> None:
        """The head-end's counters never start below what a device already accepted (a counter
        file lost or older than the NVM)."""
        if self.counters is None:
            return
        for device in self.devices:
            counters = getattr(device, "counters", None)
            if counters is None or not hasattr(counters, "items"):
                continue
            for party, counter in counters.items():
                self.counters.raise_floor(party, counter)

    async def connect_headend(self) -> HeadEnd:
        if self.use_tcp:
            from gbhub.wan.bridge import TcpClient

            self._client = TcpClient(self.rig.wan_host if self.rig.wan_host != "0.0.0.0" else "127.0.0.1", self.bridge.port)
            await self._client.connect()
        else:
            self._client = self.bridge.client()
        from gbhub.tools.pki import ca_certificates

        self.headend = HeadEnd(self._client, self.identity.keystore, supplier=self.identity.supplier,
                               acb=self.identity.acb, clock=self.clock, counters=self.counters,
                               take_queued=self.headend_takes_queued,
                               ca_certificates=ca_certificates(self.identity.pki) if self.identity.pki else ())
        return self.headend

    async def _settle(self, seconds: float = 0.0) -> None:
        if isinstance(self.clock, SimClock):
            await self.clock.advance(seconds)
        else:
            await asyncio.sleep(max(seconds, 0.01))

    async def commission(self) -> None:
        """Bring the HAN into its working state; idempotent (skips what is already done). Every
        HAN device, in rig order: CCS01 into the CHF device log; a device its type joins (an
        ESME) joins; a device that pairs with a meter (an IHD) goes into that meter's device
        log (CS03B) and joins by itself once started."""
        chf, he = self.chf, self.headend
        assert he is not None
        for name, device in self._han_members():
            kind, spec = device_kind(self.types[name]), self.specs[name]
            entry = chf.device_log_entry(device.eui)
            if entry is None:
                log.info("commissioning %s %s: CCS01 into the CHF device log", name, eui_hex(device.eui))
                r = await he.send_use_case("CCS01", recipient=chf.eui, params={
                    "device": device.eui, "install_code": spec.install_code})
                if not r.ok:
                    raise RuntimeError(f"CCS01 for {name} failed: {r.summary}")
                entry = chf.device_log_entry(device.eui)
            if self._across(name):
                await self._commission_across(name, device, kind, spec, entry)
                continue
            if kind.join is not None and not entry.joined:
                log.info("commissioning %s: joining the HAN", name)
                await kind.join(device, self.contexts[name])
                await self._settle(1)
            if kind.pair is not None:
                if not kind.paired(device, self.contexts[name]):
                    log.info("commissioning %s: pairing with its meters", name)
                    await kind.pair(device, self.contexts[name], self._deliver)
            elif kind.pairs_with is not None:
                meter = self.devices_by_name[spec.meter]
                if not meter.in_device_log(device.eui):
                    from gbcs.asn1 import JoinMethodAndRole

                    log.info("commissioning %s: CS03B into %s's device log", name, spec.meter)
                    r = await he.send_use_case("CS03B", recipient=meter.eui, params={
                        "other_entity_id": device.eui, "other_device_type": kind.device_type,
                        "join_method_and_role": JoinMethodAndRole.METHOD_B})
                    if not r.ok:
                        raise RuntimeError(f"CS03B for {name} on {spec.meter} failed: {r.summary}")

    async def _commission_across(self, name: str, device: Any, kind: Any, spec: Any, entry: Any) -> None:
        """Commissioning steps for a device that is, or whose meter is, across the link."""
        if kind.join is not None and not entry.joined:
            if name in self.remote:
                await self._wait_joined(name, device.eui)
            else:
                await kind.join(device, self.contexts[name])
        if kind.pair is not None:
            log.warning("commissioning %s: pairing across the HAN link is not automatic; send its CS03A1/CS03A2/CS03C "
                        "use cases yourself", name)
        elif kind.pairs_with is not None and not entry.joined:
            from gbcs.asn1 import JoinMethodAndRole

            meter = self.devices_by_name.get(spec.meter) or self.remote[spec.meter]
            log.info("commissioning %s: CS03B into %s's device log (across the HAN link)", name, spec.meter)
            r = await self.headend.send_use_case("CS03B", recipient=meter.eui, params={
                "other_entity_id": device.eui, "other_device_type": kind.device_type,
                "join_method_and_role": JoinMethodAndRole.METHOD_B})
            if not r.ok:
                raise RuntimeError(f"CS03B for {name} on {spec.meter} failed: {r.summary}")
    async def _deliver(self, use_case: str, to: Any, params: dict) -> None:
        """One pairing command from the head-end (`DeviceKind.pair`); a sleepy recipient's
        button is pressed first, so it wakes to fetch it, as an installer would have it."""
        press = getattr(to, "press_button", None) if getattr(to, "wake_interval", None) else None
        if press is not None:
            press()
        assert self.headend is not None
        r = await self.headend.send_use_case(use_case, recipient=to.eui, params=params)
        if not r.ok:
            raise RuntimeError(f"{use_case} on {eui_hex(to.eui)} failed: {r.summary}")

    def _mirror_models(self) -> None:
        """A GSME that derives its profile from its model (`profile_storage = "derived"`) pushes
        segments, not rows: the GPF's mirror derives them with the same model (`Gsme.litres_series`)."""
        gpfs = [d for n, d in self.devices_by_name.items() if self.types[n] == "gpf"]
        for name, device in self.devices_by_name.items():
            if self.types[name] == "gsme" and getattr(device, "derived_profile", False):
                for gpf in gpfs:
                    gpf.mirror_litres[device.eui] = device.litres_series
                    gpf.mirror_ledgers[device.eui] = device.data.ledger  # its derived daily reads' charges

    def _derived_first_push(self) -> None:
        """Derived commissioning: the GPF's mirror as the GSME's first push after its join leaves
        it (in process), so the GPF answers gas reads from the start as after GBCS commissioning."""
        gpfs = [d for n, d in self.devices_by_name.items() if self.types[n] == "gpf"]
        if not gpfs:
            return
        gpf = gpfs[0]
        for name, device in self.devices_by_name.items():
            if self.types[name] == "gsme" and gpf.last_sync(device.eui) is None:
                device.push_in_process(lambda data, eui=device.eui: gpf.apply_push(eui, data))

    async def commission_derived(self, secret: bytes) -> None:
        """TEST FLEETS ONLY (`gbhub fleet`, README "Fleets"): leave every device in the state
        `commission()` would, without its messages — the CHF device log entry and join window of
        CCS01 (its default content) and of the device's join, a TC link key derived from `secret`
        (`han.join.derived_tc_link_key`) kept by the CHF and by a device that keeps it (the IHD),
        the meters' device logs of CS03B and of each `DeviceKind.pair` command. Idempotent; before
        the devices boot, so they come up as after a restart of a commissioned premises. Not
        derived [I]: event-log records, anti-replay counters and the alerts those commands raise
        (no head-end sent any). The GSME's first push reaches the GPF in process once the devices
        have booted (`_derived_first_push`)."""
        from gbcs.asn1 import JoinDevice, JoinMethodAndRole, JoinResponseCode
        from gbcs.catalogue import MessageCode
        from gbcs.usecases import get as use_case
        from gbhub.han.join import derived_tc_link_key

        ccs01 = use_case("CCS01").defaults()
        chf = self.chf

        def apply(code: MessageCode, to: Any, join: JoinDevice) -> None:
            result, _ = to.joined_devices.apply_join(code, join)
            if result != JoinResponseCode.SUCCESS:
                raise RuntimeError(f"{code.name} on {eui_hex(to.eui)}: {JoinResponseCode(result).name}")

        async def deliver(name: str, to: Any, params: dict) -> None:
            apply(MessageCode[name], to, JoinDevice(**params))

        with self.nvm.transaction():
            for name, device in self.devices_by_name.items():
                kind, spec = device_kind(self.types[name]), self.specs[name]
                if not kind.han_member:
                    continue
                if chf.device_log_entry(device.eui) is None:
                    key = derived_tc_link_key(secret, spec.install_code, device.eui, chf.eui)
                    chf.commissioned(device.eui, spec.install_code, kind.device_type, key,
                                     join_timeout=ccs01["join_timeout"], enable_joining=ccs01["enable_joining"])
                    if kind.keeps_join is not None:
                        kind.keeps_join(device, key)
                if kind.pair is not None:
                    if not kind.paired(device, self.contexts[name]):
                        await kind.pair(device, self.contexts[name], deliver)  # never suspends: no messages
                elif kind.pairs_with is not None:
                    meter = self.devices_by_name[spec.meter]
                    if not meter.in_device_log(device.eui):
                        apply(MessageCode.CS03B, meter, JoinDevice(join_method_and_role=JoinMethodAndRole.METHOD_B,
                                                              other_entity_id=device.eui, other_device_type=kind.device_type))

    async def stop(self) -> None:
        """Clean shutdown: devices off (NVM keeps state), head-end and bridge closed."""
        for device in reversed(self.devices):
            try:
                await device.stop()
            except Exception:  # noqa: BLE001 - shutting down regardless
                log.exception("stopping %s", device)
        await self.han.stop()
        if self.capture is not None:
            self.capture.close()
        if self.headend is not None:
            await self.headend.close()
        await self.bridge.close()
        if not self._shared_nvm:
            self.nvm.close()
        self.started = False

    async def __aenter__(self) -> "Premises":
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    # ------------------------------------------------------------------ convenience
    async def send(self, use_case: str, to: str | bytes = "esme", **params: Any):
        """Send a named use case to a device name, a unique type ('esme', 'chf', ...) or an EUI;
        returns a UseCaseReply."""
        assert self.headend is not None
        return await self.headend.send_use_case(use_case, recipient=self.eui_of(to), params=params)

    def eui_of(self, who: str | bytes) -> bytes:
        """The EUI a device name, a unique type or an EUI (text or bytes) names."""
        if isinstance(who, bytes):
            return who
        eui = self._addresses.get(who)
        if eui is None:
            eui = self._addresses[who] = parse_eui(resolve_device(who, self._euis, self.types))
        return eui

    def manifest_devices(self) -> dict[str, str]:
        return dict(self._euis)

    def manifest(self) -> dict:
        return {
            "pid": os.getpid(),
            "wan": (None if not self.hub_side else {"host": self.rig.wan_host, "port": self.wan_port} if self.use_tcp
                    else {"url": self.rig.wan_broker, "chf": self._euis[self.rig.device("chf").name]}
                    if self.rig.wan_broker is not None else None),
            "devices": self.manifest_devices(),
            # sleepy devices' wake intervals in real seconds (`gbhub send` waits that long for them)
            "wake": {n: d.wake_interval / (self.rig.speed or 1.0) for n, d in self.devices_by_name.items()
                     if getattr(d, "wake_interval", None)},
            "types": dict(self.types),
            "acb": eui_hex(self.identity.acb),
            "supplier": eui_hex(self.identity.supplier),
            "keys": [str(p) for p in (self.rig.key_folders or ([self.rig.data / "keys"] if self.rig.data else []))],
            "clock": self.rig.clock,
            # the rig file it was started with (`gbhub doctor` without a rig file checks that one)
            "rig": str(Path(self.rig.source).resolve()) if self.rig.source is not None else None,
            "state": "ready",
        }

    def write_manifest(self) -> None:
        if self.rig.data is None:
            return
        path = self.rig.data / "premises.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.manifest(), indent=2) + "\n")
        os.replace(tmp, path)

    def status(self) -> dict:
        """One status line: the time, the WAN port, each device's part (its type's `status`,
        under its name), the CHF's WAN queue."""
        out = {"time": self.clock.utcnow().isoformat(), "wan_port": self.wan_port}
        for name, device in self.devices_by_name.items():
            kind = device_kind(self.types[name])
            if kind.status is not None:
                out[name] = kind.status(device)
        if self.chf is not None:
            out["wan_queue"] = self.chf.wan_queue_length
        return out
