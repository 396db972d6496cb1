"""The CHF's part in firmware distribution (SRV 11.1; FACTS §4.2), mixed into `Chf`.

A distribution request names an OTA image and target devices (`distribute_firmware`; over the WAN
the UPDATE_FIRMWARE control frame of `wan.bridge`, sent in parts, answered by FIRMWARE_EVENT
frames to the requesting connection). The image must decode (`gbcs.ota`) and fit
`ota_max_image_size`; a target that is a joined HAN device gets it offered by the OTA Upgrade
server (`han.ota.OtaServer`); the CHF itself and its GPF take it at once (they are the Comms Hub).
Offers are kept in NVM (images once, by manufacturer image hash), so a CHF restart keeps serving
them. For each target the CHF sends CCS08 Firmware Transfer Alert (message code 0x0128, signed,
to the ACB): 0x8F8A with code 0 when the device received and verified the image; 0x8F89 with code
1 (image discarded: the device's checks refused it), 2 (hardware version outside the image's
range) or 3 (transfer failure: not in the device log, not joined, a Type 2 device (IHD: no GBCS
firmware), or the transfer aborted)
[S FACTS §4.2; which failure gets which code is ours: I].

Events (`ota_listeners`, and FIRMWARE_EVENT JSON): `{"request", "device", "event": "offered" |
"progress" | "transferred" | "failed", "bytes", "size", "verified", "code", "version"}`.
"""
from __future__ import annotations

import json
import logging
from typing import Any, Callable

from gbcs.asn1 import FirmwareTransferAlert, FirmwareTransferCode
from gbcs.catalogue import AlertCode, DeviceType, MessageCode
from gbcs.codec import DecodeError, eui_hex
from gbcs.ota import OtaImage
from gbhub.han.ota import DEFAULT_BLOCK_PERIOD, DEFAULT_BLOCK_SIZE, OtaServer
from gbhub.wan.bridge import FIRMWARE_EVENT

log = logging.getLogger("gbhub.chf.ota")

IMAGES_NS = "ota_images"  # manufacturer image hash (hex) -> image bytes
OFFERS_NS = "ota_offers"  # target EUI (hex) -> {"hash", "request"}
_MAX_UPLOADS = 4  # partial WAN uploads held at once (oldest dropped)

Listener = Callable[[dict], Any]


class ChfFirmware:
    """Mixin of `Chf` (module doc). Options: `ota_block_size`, `ota_block_period` (HAN pace,
    seconds per block), `ota_max_image_size`."""

    def __init__(self, eui: Any, *, ota_block_size: int = DEFAULT_BLOCK_SIZE, ota_block_period: float = DEFAULT_BLOCK_PERIOD,
                 ota_max_image_size: int = 1 << 20, **kw: Any) -> None:
        super().__init__(eui, **kw)
        self.ota_block_size = int(ota_block_size)
        self.ota_block_period = float(ota_block_period)
        self.ota_max_image_size = int(ota_max_image_size)
        self.ota_server: OtaServer | None = None
        self.ota_listeners: list[Listener] = []
        self._uploads: dict[tuple[Any, int], dict] = {}
        self._requesters: dict[int, Any] = {}

    # ------------------------------------------------------------------ wiring
    def _start_ota(self) -> None:
        """On the HAN (attach_han / boot): the OTA server, with the persisted offers."""
        if self.zcl_server is None or self.han_port is None:
            return
        if self.ota_server is None:
            self.ota_server = OtaServer(self.zcl_server, self.han_port, clock=self.clock, block_size=self.ota_block_size,
                                        block_period=self.ota_block_period, on_event=self._on_ota_event)
        self.ota_server.offers.clear()
        for key, offer in self.nvm.items(OFFERS_NS):
            data = self.nvm.get(IMAGES_NS, offer["hash"])
            if data is not None:
                self.ota_server.offer(bytes.fromhex(key), data, notify=False)
        if self.wan is not None:
            self.wan.on_firmware(self._on_firmware_control)
        if self.state in ("on", "booting"):
            self.every(60.0, self._renotify, align=False)

    def _renotify(self, t: float) -> None:
        if self.ota_server is not None and self.ota_server.offers:
            self.ota_server.renotify(t)

    # ------------------------------------------------------------------ requests
    def distribute_firmware(self, data: bytes, targets: list[bytes], request: int = 0) -> OtaImage:
        """Offer image `data` to `targets` (module doc). Raises ValueError for an image that does
        not decode or is too large."""
        if len(data) > self.ota_max_image_size:
            raise ValueError(f"image of {len(data)} bytes (at most {self.ota_max_image_size})")
        try:
            image = OtaImage.decode(data)
        except DecodeError as exc:
            raise ValueError(f"not an OTA image: {exc}") from None
        key = image.image_hash.hex().upper()
        gpf = getattr(self, "gpf", None)
        for eui in targets:
            if eui == self.eui or (gpf is not None and eui == gpf.eui):
                target = self if eui == self.eui else gpf
                self._emit(eui, "offered", request=request, version=image.version.hex().upper(), size=len(data))
                self.spawn(self._update_local(target, image, data, request), name=f"chf-ota-{eui_hex(eui)}")
                continue
            entry = self._entry(eui)
            if entry is None or not entry.joined or self.ota_server is None or entry.device_type == DeviceType.TYPE_2:
                self._emit(eui, "failed", request=request, code=FirmwareTransferCode.FILE_TRANSFER_FAILURE.name)
                self.spawn(self._ccs08(eui, image, FirmwareTransferCode.FILE_TRANSFER_FAILURE))
                continue
            with self.nvm.transaction():
                self.nvm.put(IMAGES_NS, key, bytes(data))
                self.nvm.put(OFFERS_NS, eui_hex(eui), {"hash": key, "request": request})
            self.ota_server.offer(eui, data)
            self._emit(eui, "offered", request=request, version=image.version.hex().upper(), size=len(data))
        return image

    async def _update_local(self, device: Any, image: OtaImage, data: bytes, request: int) -> None:
        h = image.header
        try:
            device.ota_begin(manufacturer_code=h.manufacturer_code, image_type=h.image_type,
                             file_version=h.file_version, size=len(data))
        except ValueError:
            self._emit(device.eui, "failed", request=request, code=FirmwareTransferCode.IMAGE_DISCARDED.name)
            await self._ccs08(device.eui, image, FirmwareTransferCode.IMAGE_DISCARDED)
            return
        device.ota_block(0, data)
        ok, _ = await device.ota_end()
        self._on_ota_event(device.eui, "transferred", {"verified": ok, "image": image, "request": request})

    def _on_ota_event(self, eui: bytes, event: str, detail: dict) -> None:
        image = detail.get("image")
        offer = self.nvm.get(OFFERS_NS, eui_hex(eui)) or {}
        request = detail.get("request", offer.get("request", 0))
        if event == "progress":
            self._emit(eui, "progress", request=request, bytes=detail["bytes"], size=detail["size"])
            return
        if event == "transferred":
            code = FirmwareTransferCode.SUCCESS if detail["verified"] else FirmwareTransferCode.IMAGE_DISCARDED
        else:
            code = detail["code"]
        self._forget_offer(eui)
        self._emit(eui, event, request=request, verified=bool(detail.get("verified")), code=code.name,
                   version=None if image is None else image.version.hex().upper())
        if image is not None and self.state == "on":
            self.spawn(self._ccs08(eui, image, code))

    def _forget_offer(self, eui: bytes) -> None:
        offer = self.nvm.get(OFFERS_NS, eui_hex(eui))
        if offer is None:
            return
        with self.nvm.transaction():
            self.nvm.delete(OFFERS_NS, eui_hex(eui))
            if not any(o["hash"] == offer["hash"] for _, o in self.nvm.items(OFFERS_NS)):
                self.nvm.delete(IMAGES_NS, offer["hash"])

    async def _ccs08(self, eui: bytes, image: OtaImage, code: FirmwareTransferCode) -> None:
        alert_code = (AlertCode.FIRMWARE_TRANSFER_ALERT_SUCCESS if code == FirmwareTransferCode.SUCCESS
                      else AlertCode.FIRMWARE_TRANSFER_ALERT_FAIL)
        content = FirmwareTransferAlert(alert_code=alert_code, execution_date_time=self.clock.utcnow().replace(microsecond=0),
                                        entity_id=eui, firmware_version=image.version, code=code).encode()
        await self.raise_alert(alert_code, critical=True, message_code=MessageCode.CCS08, content=content)

    def _emit(self, eui: bytes, event: str, **detail: Any) -> None:
        record = {"device": eui_hex(eui), "event": event, **detail}
        for listener in list(self.ota_listeners):
            try:
                listener(record)
            except Exception:  # noqa: BLE001
                log.exception("firmware event listener failed")
        client = self._requesters.get(record.get("request", 0))
        if client is not None and self.wan is not None:
            self.wan.send_control(client, bytes((0, FIRMWARE_EVENT)) + json.dumps(record).encode())

    # ------------------------------------------------------------------ WAN control frames
    def _note_requester(self, request: int, client: Any) -> None:
        """Where a request's events go (the last 64 requests are remembered)."""
        self._requesters.pop(request, None)
        self._requesters[request] = client
        while len(self._requesters) > 64:
            self._requesters.pop(next(iter(self._requesters)))

    def _on_firmware_control(self, client: Any, frame: bytes) -> None:
        """UPDATE_FIRMWARE parts (wan.bridge doc): bounded (`_MAX_UPLOADS` partial uploads, each
        at most `ota_max_image_size`); a bad part drops its upload."""
        request = int.from_bytes(frame[2:6], "big")
        total = int.from_bytes(frame[6:10], "big")
        offset = int.from_bytes(frame[10:14], "big")
        n = frame[14]
        targets = [frame[15 + 8 * i:23 + 8 * i] for i in range(n)]
        chunk = frame[15 + 8 * n:]
        key = (client, request)
        if not targets or len(frame) < 15 + 8 * n or total > self.ota_max_image_size or total == 0:
            self._uploads.pop(key, None)
            self._note_requester(request, client)
            self._emit(b"\x00" * 8, "failed", request=request, code="REQUEST_REFUSED")
            return
        upload = self._uploads.get(key)
        if upload is None:
            if len(self._uploads) >= _MAX_UPLOADS:
                self._uploads.pop(next(iter(self._uploads)))
            upload = self._uploads[key] = {"data": bytearray(), "total": total}
        if offset != len(upload["data"]) or upload["total"] != total or offset + len(chunk) > total:
            del self._uploads[key]
            return
        upload["data"] += chunk
        if len(upload["data"]) < total:
            return
        del self._uploads[key]
        self._note_requester(request, client)
        try:
            self.distribute_firmware(bytes(upload["data"]), targets, request)
        except ValueError as exc:
            self._emit(b"\x00" * 8, "failed", request=request, code="REQUEST_REFUSED", error=str(exc))


__all__ = ["ChfFirmware", "IMAGES_NS", "OFFERS_NS"]
