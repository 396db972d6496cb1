"""Firmware updates on a device, the same for every GBCS device (ESME, CHF, GPF; GSME and PPMID
get it by subclassing `GbcsDevice` and one `HANDLERS` line): receiving an OTA image into NVM,
checking it, keeping it in the inactive A/B slot (`firmware.device.FirmwareSlots`), activating it
(CS06: immediate, future-dated, cancelled), rebooting into it, and falling back to the last good
image when it fails its boot check.

Receiving (`ota_begin` / `ota_block` / `ota_end`; driven by `han.ota.OtaClient` over the OTA
Upgrade cluster, or by anything else that has the bytes): blocks are kept in RAM and written to
NVM in 4 KiB chunks (`CHUNK`), so after a power cut the transfer resumes from the last whole chunk;
a different image offered later starts over. When the last byte is in, the image is checked:
it decodes (`gbcs.ota.OtaImage`), its size is at most `max_image_size`, its hardware version range
takes this device's `hardware_version`, its manufacturer code / image type are this device's
(when the device has them), and the supplier signature over the manufacturer image verifies
against the device's supplier trust anchor (its DS key). A good image goes into the inactive slot
(version + manufacturer image hash; the emulated device keeps no more of it) and the device sends
the Firmware Distribution Receipt alert 0x8F72 (message code FDRA-DLMS 0x00CE, signed, body: the
calculated manufacturer image hash); a bad one changes nothing and is reported with 0x8F1C (same
body) [S FACTS §4.2]; a GBZ device (the GSME) sets `RECEIPT_FORM = "gbz"` for FDRA-ZigBee 0x00CF.

Activation (CS06, `firmware.update_handlers.activate_firmware`, critical; response dated [O RTDS]):
the hash must name the
image in the inactive slot (else 1 "no image held" when the slot holds no received image, 2 "hash
mismatch", 3 "activation failure" when that image already failed its boot check on this device
[I]); the slots swap and a boot trial is recorded in the same NVM transaction as the
command's counter; the response (0 success + the new version) goes out, then the device reboots.
At boot (`start`), a trial is settled first: the image passes its boot check (alert 0x8F43 Change
in the executing firmware version) or fails it (the slots swap back to the last good image; alert
0x8F1B Firmware verification failed at power on). A power cut at any instant leaves either the
old image running (nothing acknowledged) or the trial recorded (the new image boots and is checked).

Future-dated CS06 (`FutureDatedActivation`, on the shared future-dated mechanism
`firmware.future`, action "firmware_activation"): the command is answered "command accepted"
(ASN.1 NULL), its hash, originator counter, originator and time are kept in NVM and run at the
time on the device clock, also after a restart (a time passed while off runs at boot). Firing runs the activation and sends
message code FDA-CS06 (0x00CA) with alert 0x8F66 / 0x8F67, the execution time, the originator
counter and the outcome; success then reboots as above. A CS06 with execution time
9999-12-31T23:59:59Z cancels the pending one (also answered "command accepted") [O RTDS]. A new
future-dated CS06 replaces a pending one [I].

Emulation knobs (device options, rig `options`): `hardware_version` (default 1), `manufacturer_code`
/ `image_type` (None: any), `max_image_size` (default 1 MiB), `held_image` (`{hash, version}`: at
first start the inactive slot already holds an image under that manufacturer image hash, for labs
replaying DCC scripts whose hashes name images they do not have), `boot_fail_versions` (versions,
hex, whose images fail their boot check) [I: no source gives the boot check or rollback rules;
FACTS §4.3 marks them U], `version_behaviour` (`{version: {option: value}}`: while an image of
that version runs, those device options take those values, e.g. an ESME's `gbt_block_size`, so a
campaign has behaviour to check beyond the version; an unknown option fails the first boot).
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import logging
from typing import Any, ClassVar, Iterable

from gbcs.asn1 import ActivateFirmwareAlert, ActivateFirmwareCode, ActivateFirmwareOutcome
from gbcs.catalogue import AlertCode, MessageCode, RemotePartyRole
from gbcs.codec import DecodeError, eui_hex
from gbcs.dlms import Data
from gbcs.gbz import FirmwareDistributionReceipt, GbzAlert
from gbcs.ota import OtaHeader, OtaImage

from .device import FirmwareImage, FirmwareSlots
from .future import FdaOutcome

log = logging.getLogger("gbhub.firmware.update")

UPDATE_NS = "firmware_update"
CHUNK = 4096  # bytes of a transfer written to NVM at once
_SYS_NS = "sys"
_UTC = _dt.timezone.utc
_EPOCH_2000 = 946684800  # GBZ times count seconds from 2000-01-01T00:00Z


def _hex_bytes(value: Any) -> bytes:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    text = str(value).strip()
    if text.lower().startswith("0x"):
        text = text[2:]
    return bytes.fromhex(text)


def _hash_of(data: bytes) -> bytes:
    """The calculated manufacturer image hash of received bytes, also of a bad image: its
    manufacturer image when the header says where it is, else the whole file [I]."""
    try:
        header = OtaHeader.decode(data)
        if header.size + 66 <= len(data):
            return hashlib.sha256(data[header.size:len(data) - 66]).digest()
    except DecodeError:
        pass
    return hashlib.sha256(data).digest()


class FirmwareUpdates:
    """Mixin of `GbcsDevice` (module doc). Keeps its state in NVM namespace `UPDATE_NS`."""

    def __init__(self, eui: Any, *, hardware_version: int = 1, manufacturer_code: int | None = None,
                 image_type: int | None = None, max_image_size: int = 1 << 20, held_image: dict | None = None,
                 boot_fail_versions: Iterable[Any] = (), version_behaviour: dict | None = None, **kw: Any) -> None:
        super().__init__(eui, **kw)
        self.version_behaviour = {_hex_bytes(v): dict(attrs) for v, attrs in (version_behaviour or {}).items()}
        self._base_behaviour: dict[str, Any] | None = None  # the options as built (taken at first boot)
        self.hardware_version = int(hardware_version)
        self.manufacturer_code = None if manufacturer_code is None else int(manufacturer_code)
        self.image_type = None if image_type is None else int(image_type)
        self.max_image_size = int(max_image_size)
        self.held_image = None if not held_image else FirmwareImage(_hex_bytes(held_image["version"]),
                                                                     _hex_bytes(held_image["hash"]))
        if self.held_image is not None and len(self.held_image.image_hash or b"") != 32:
            raise ValueError("held_image hash must be 32 bytes (64 hex digits)")
        self.boot_fail_versions = frozenset(_hex_bytes(v) for v in boot_fail_versions)
        self._staged: bytearray = bytearray()  # received bytes not yet in NVM (beyond the last chunk)
        self._transfer: dict | None = None
        self.activation = FutureDatedActivation(self)
        self.ota_client: Any = None  # what fetches images over the HAN (`han.ota.OtaClient`), if any

    # ------------------------------------------------------------------ boot
    async def start(self) -> None:
        """Settle a boot trial before the device runs (module doc), then boot."""
        if self.state == "off":
            alert = None
            with self.nvm.transaction():
                if self.nvm.get(_SYS_NS, "firmware") is None:
                    self.set_firmware(FirmwareSlots("A", self.firmware.running, self.held_image))
                trial = self.nvm.get(UPDATE_NS, "trial")
                if trial is not None:
                    self.nvm.delete(UPDATE_NS, "trial")
                    if self.firmware_version in self.boot_fail_versions:
                        bad = self.firmware_version
                        self.nvm.put(UPDATE_NS, "failed_boot", self.firmware.running.image_hash)
                        self.set_firmware(self.firmware.swapped())
                        alert = AlertCode.FIRMWARE_VERIFICATION_FAILED_AT_POWER_ON
                        self.log_event("firmware_boot_check_failed", version=bad.hex().upper())
                    else:
                        alert = AlertCode.CHANGE_IN_THE_EXECUTING_FIRMWARE_VERSION
                        self.log_event("firmware_activated", version=self.firmware_version.hex().upper())
            self._staged = bytearray()
            self._transfer = self.nvm.get(UPDATE_NS, "transfer")
            self._apply_version_behaviour()
        else:
            alert = None
        await super().start()
        if self.state == "on":
            if self.ota_client is not None:
                self.ota_client.on_boot()
            if alert is not None:
                self.spawn(self.firmware_boot_alert(alert), name=f"{self.kind}-firmware-boot")

    async def firmware_boot_alert(self, alert_code: int) -> None:
        """The alert of a settled boot trial: 0x8F43 (new image running) or 0x8F1B (rolled back).
        A device whose spec gives it another (the PPMID's CS09) overrides this."""
        await self.raise_alert(alert_code, critical=True)

    def _apply_version_behaviour(self) -> None:
        """Set the options the running version's `version_behaviour` names (others as built)."""
        if self._base_behaviour is None:
            names = {name for attrs in self.version_behaviour.values() for name in attrs}
            unknown = sorted(n for n in names if n.startswith("_") or not hasattr(self, n))
            if unknown:
                raise ValueError(f"version_behaviour: a {self.kind} has no option {unknown[0]!r}")
            self._base_behaviour = {name: getattr(self, name) for name in names}
        behaviour = self.version_behaviour.get(self.firmware_version, {})
        for name, base in self._base_behaviour.items():
            setattr(self, name, behaviour.get(name, base))

    # ------------------------------------------------------------------ receiving
    @property
    def transfer(self) -> dict | None:
        """The image being received: manufacturer_code, image_type, file_version, size, offset
        (bytes safely in NVM plus those in RAM), server (hex EUI); None when none."""
        if self._transfer is None:
            return None
        return dict(self._transfer, offset=self._transfer["offset"] + len(self._staged))

    def ota_begin(self, *, manufacturer_code: int, image_type: int, file_version: int, size: int,
                  server: bytes | None = None) -> int:
        """Start (or resume) receiving an image; returns the offset to ask for next. Raises
        ValueError for an image this device cannot take (size)."""
        if not 0 < size <= self.max_image_size:
            raise ValueError(f"image of {size} bytes (this device takes up to {self.max_image_size})")
        ident = {"manufacturer_code": manufacturer_code, "image_type": image_type, "file_version": file_version, "size": size}
        current = self._transfer
        if current is not None and all(current[k] == v for k, v in ident.items()):
            return current["offset"] + len(self._staged)
        transfer = dict(ident, offset=0, server=None if server is None else eui_hex(server))
        with self.nvm.transaction():
            self.nvm.clear(UPDATE_NS + ".chunks")
            self.nvm.put(UPDATE_NS, "transfer", transfer)
        self._transfer = transfer
        self._staged = bytearray()
        return 0

    def ota_block(self, offset: int, data: bytes) -> int:
        """Take the block at `offset` (one out of order is ignored); returns the next offset."""
        t = self._transfer
        if t is None:
            raise ValueError("no transfer under way")
        expected = t["offset"] + len(self._staged)
        if offset != expected or not data:
            return expected
        data = bytes(data[: t["size"] - expected])
        self._staged += data
        while len(self._staged) >= CHUNK or (self._staged and t["offset"] + len(self._staged) >= t["size"]):
            piece = bytes(self._staged[:CHUNK])
            with self.nvm.transaction():
                self.nvm.put(UPDATE_NS + ".chunks", f"{t['offset'] // CHUNK:06d}", piece)
                t = dict(t, offset=t["offset"] + len(piece))
                self.nvm.put(UPDATE_NS, "transfer", t)
            self._transfer = t
            del self._staged[: len(piece)]
        return t["offset"] + len(self._staged)

    def ota_abort(self) -> None:
        """Forget a partly received image."""
        with self.nvm.transaction():
            self.nvm.delete(UPDATE_NS, "transfer")
            self.nvm.clear(UPDATE_NS + ".chunks")
        self._transfer = None
        self._staged = bytearray()

    async def ota_end(self) -> tuple[bool, str]:
        """The whole image is in: check it, keep it (or not), send the distribution receipt
        alert. Returns (verified, reason)."""
        t = self._transfer
        if t is None or t["offset"] < t["size"]:
            return False, "incomplete"
        data = b"".join(v for _, v in sorted(self.nvm.items(UPDATE_NS + ".chunks")))
        reason, image = self.check_image(data)
        with self.nvm.transaction():
            if image is not None:
                self.set_firmware(self.firmware.with_standby(FirmwareImage(image.version, image.image_hash)))
                self.nvm.delete(UPDATE_NS, "failed_boot")  # received anew: may be tried again
            self.nvm.delete(UPDATE_NS, "transfer")
            self.nvm.clear(UPDATE_NS + ".chunks")
            self.log_event("firmware_received", version=f"{t['file_version']:08X}", verified=image is not None,
                           reason=reason)
        self._transfer = None
        digest = image.image_hash if image is not None else _hash_of(data)
        ok = image is not None
        await self.firmware_receipt_alert(AlertCode.FIRMWARE_VERIFICATION_SUCCESSFUL if ok
                                          else AlertCode.FIRMWARE_VERIFICATION_FAILED, digest)
        if not ok:
            log.info("%s %s: received image refused: %s", self.kind, self.eui_hex, reason)
            self.log_security("firmware_rejected", reason=reason, image_hash=digest.hex().upper())
        return ok, reason

    def check_image(self, data: bytes) -> tuple[str, OtaImage | None]:
        """(reason, image): the image if it may go into the inactive slot, else None and why."""
        if len(data) > self.max_image_size:
            return "too large", None
        try:
            image = OtaImage.decode(data)
        except DecodeError as exc:
            return f"malformed: {exc}", None
        h = image.header
        if not h.accepts_hardware(self.hardware_version):
            return f"hardware version {self.hardware_version} outside {h.hw_min}..{h.hw_max}", None
        if self.manufacturer_code is not None and h.manufacturer_code != self.manufacturer_code:
            return f"manufacturer code 0x{h.manufacturer_code:04X}", None
        if self.image_type is not None and h.image_type != self.image_type:
            return f"image type 0x{h.image_type:04X}", None
        supplier = self.trust.by_role(RemotePartyRole.SUPPLIER)
        if not image.verify(None if supplier is None else supplier.ds_public):
            return "supplier signature does not verify", None
        return "verified", image

    #: Form of the distribution receipt alert: "dlms" (FDRA-DLMS 0x00CE: ESME, CHF, GPF) or "gbz"
    #: (FDRA-ZigBee 0x00CF, a GBZ alert: the GSME sets it) [O RTDS FDRA-*].
    RECEIPT_FORM: ClassVar[str] = "dlms"
    #: A sleepy device (the GSME) fetches images on its own wakes, when its notification flag says
    #: one waits, `ota_blocks_per_wake` blocks at a time; its OTA client ignores ImageNotify.
    OTA_FETCH_ON_WAKE: ClassVar[bool] = False

    async def firmware_receipt_alert(self, alert_code: int, image_hash: bytes) -> None:
        """Firmware Distribution Receipt alert: the calculated manufacturer image hash, signed."""
        if self.RECEIPT_FORM == "gbz":
            now = int(self.clock.now()) - _EPOCH_2000
            content = GbzAlert.build(alert_code, now, FirmwareDistributionReceipt(image_hash)).encode()
            await self.raise_alert(alert_code, critical=True, message_code=MessageCode.FDRA_ZigBee, content=content)
            return
        await self.raise_alert(alert_code, critical=True, message_code=MessageCode.FDRA_DLMS,
                               elements=(Data.octet_string(image_hash),))

    # ------------------------------------------------------------------ activation
    def activate_image(self, image_hash: bytes) -> ActivateFirmwareCode:
        """Swap to the inactive image if `image_hash` names it, recording a boot trial (call
        inside an NVM transaction; the caller reboots once its answer is out)."""
        slots = self.firmware
        standby = slots.standby
        if standby is None or standby.image_hash is None:
            return ActivateFirmwareCode.NO_IMAGE_HELD
        if standby.image_hash != image_hash:
            return ActivateFirmwareCode.HASH_MISMATCH
        if self.nvm.get(UPDATE_NS, "failed_boot") == image_hash:  # it failed its boot check here before
            return ActivateFirmwareCode.ACTIVATION_FAILURE
        self.set_firmware(slots.swapped())
        self.nvm.put(UPDATE_NS, "trial", {"from": slots.running.version.hex(), "to": standby.version.hex()})
        return ActivateFirmwareCode.SUCCESS


class FutureDatedActivation:
    """A device's pending future-dated CS06 (module doc): one instruction (`KEY`) of its
    `firmware.future.FutureDated`, run by `fire_firmware_activation`."""

    KEY = "cs06"
    ACTION = "firmware_activation"

    def __init__(self, device: Any) -> None:
        self.device = device

    @property
    def pending(self) -> dict | None:
        """The pending activation: {hash, when, counter, originator}, or None."""
        entry = self.device.nvm.get(self.device.future.namespace, self.KEY)
        if entry is None:
            return None
        return {k: entry[k] for k in ("hash", "when", "counter", "originator")}

    def set(self, image_hash: bytes, when: float, counter: int, originator: bytes) -> None:
        """Keep it (a newer one replaces a pending one [I]); inside the command's transaction."""
        self.device.future.schedule(self.KEY, when, self.ACTION, {"hash": image_hash.hex(), "when": when,
                                                                   "originator": originator.hex()})

    def cancel(self) -> bool:
        return self.device.future.cancel(self.KEY)


def fire_firmware_activation(device: Any, entry: dict) -> Any:
    """The future-dated CS06's time has come (inside the FDA's NVM transaction): activate, and
    report in FDA-CS06 (0x00CA) to the command's originator; success then reboots."""
    code = device.activate_image(bytes.fromhex(entry["hash"]))
    ok = code == ActivateFirmwareCode.SUCCESS

    def content(alert_code: int) -> bytes:
        return ActivateFirmwareAlert(
            alert_code=alert_code,
            execution_date_time=_dt.datetime.fromtimestamp(int(entry["when"]), _UTC),
            originator_counter=entry["counter"],
            outcome=ActivateFirmwareOutcome(code=code, firmware_version=device.firmware_version),
        ).encode()

    return FdaOutcome(ok, MessageCode.FDA_CS06, content_for=content,
                      recipient=device.trust.by_eui(bytes.fromhex(entry["originator"])),
                      then=device.schedule_reboot if ok else None)


__all__ = ["UPDATE_NS", "CHUNK", "FirmwareUpdates", "FutureDatedActivation", "fire_firmware_activation"]
