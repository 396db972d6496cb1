"""Firmware distribution over the HAN: the ZigBee OTA Upgrade cluster 0x0019 (FACTS §4.2).

`OtaServer` (the CHF) offers one image per target device: it answers QueryNextImageRequest
(SUCCESS with the image's manufacturer code, image type, file version and size;
NO_IMAGE_AVAILABLE when nothing is offered to that device, or when the device's hardware version
is outside the image's range, which ends the offer as a hardware-version mismatch),
ImageBlockRequest (up to `block_size` bytes, never more than the client's maximum data size; ABORT
for an image not offered), and UpgradeEndRequest (the device's verdict). After each answered
block it waits `block_period` seconds of its clock: the HAN pace (default 0.02 s, so a 200 KiB
image in 48-byte blocks reaches an awake device in about 90 s; a realistic ZigBee pace is about
one block per 0.25-1 s [I]). Offering an image sends ImageNotify to the device, again every minute
while it does not ask (`renotify`: it or the CHF restarted); a sleepy device learns of it instead
from `pending_for(eui)` (the GPF sets FunctionalNotificationFlags bit 0 "New OTA firmware" [S FACTS
§3.3]) and fetches across wakes. Outcomes go to `on_event(eui, event, detail)`: "progress"
(bytes), "transferred" (verified or not), "failed" (a `FirmwareTransferCode`).

A device that fetched an image ends with UpgradeEnd: SUCCESS when it verified the image,
INVALID_IMAGE when its checks refused it, ABORT when it would not take it (too large); an
UpgradeEnd about an image no longer offered (replaced meanwhile) changes nothing.

`OtaClient` (every device that takes images over the HAN) fetches the offered image block by
block into the device's staging (`firmware.update.FirmwareUpdates.ota_begin/ota_block/ota_end`),
which persists it in 4 KiB chunks: after a power cut `on_boot()` resumes from the last whole
chunk. `fetch(max_blocks=N)` stops after N blocks and returns "paused" (a sleepy device's wake);
the next call resumes. A device with `OTA_FETCH_ON_WAKE` (the GSME) is never kicked by ImageNotify
or at boot: it calls `fetch` itself on the wakes its notification flag says an image waits.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Callable

from gbcs.asn1 import FirmwareTransferCode
from gbcs.codec import eui_hex
from gbcs.ota import OtaImage, file_version
from gbcs.zcl import Cluster, ClusterCommand, Status, ZclFrame, utc_seconds
from gbhub.firmware.nvm import NvmError

from .aps import ApsFrame, HanError
from .transport import ClusterDispatch, HanPort
from .zcl_server import ZclClient, ZclError, ZclServer

log = logging.getLogger("gbhub.han.ota")

OTA_CLUSTER = Cluster.OTA_UPGRADE
QUERY_NEXT_IMAGE, IMAGE_BLOCK, UPGRADE_END = 0x01, 0x03, 0x06
DEFAULT_BLOCK_SIZE = 48  # bytes of image per block: ZigBee OTA with APS security [I FACTS §1.9: 61-byte fragments]
DEFAULT_BLOCK_PERIOD = 0.02  # seconds between blocks (HAN pace) [I]
_MAX_STALLS = 3  # answers in a row that do not move the transfer on before the client gives up
_UPGRADE_LATER = 0xFFFFFFFF  # UpgradeEndResponse upgrade time: wait for the activation command (CS06)

Event = Callable[[bytes, str, dict], Any]


@dataclass
class Offer:
    """One image offered to one device."""

    image: OtaImage
    data: bytes
    sent: int = 0  # highest offset served + block
    last_request: float = float("-inf")  # clock time of the device's last request


class OtaServer:
    """The OTA Upgrade server of a CHF (module doc), on the CHF's `ZclServer`."""

    def __init__(self, server: ZclServer, port: HanPort, *, clock, block_size: int = DEFAULT_BLOCK_SIZE,
                 block_period: float = DEFAULT_BLOCK_PERIOD, on_event: Event | None = None) -> None:
        self.port = port
        self.clock = clock
        self.block_size = block_size
        self.block_period = block_period
        self.on_event = on_event
        self.offers: dict[bytes, Offer] = {}
        self.blocks_served = 0
        for command, handler in ((QUERY_NEXT_IMAGE, self._query), (IMAGE_BLOCK, self._block), (UPGRADE_END, self._end)):
            server.add_command(OTA_CLUSTER, command, handler)

    def offer(self, eui: bytes, data: bytes, *, notify: bool = True) -> OtaImage:
        image = OtaImage.decode(data)
        self.offers[eui] = Offer(image, bytes(data))
        if notify:
            asyncio.ensure_future(self._notify(eui, image))
        return image

    def renotify(self, now: float, quiet: float = 60.0) -> None:
        """ImageNotify again to devices that have not asked for `quiet` seconds (they or the CHF
        restarted, or the first notice was lost); sleepy ones ask on their own."""
        for eui, offer in self.offers.items():
            if now - offer.last_request >= quiet:
                offer.last_request = now
                asyncio.ensure_future(self._notify(eui, offer.image))

    def withdraw(self, eui: bytes) -> None:
        self.offers.pop(eui, None)

    def pending_for(self, eui: bytes) -> bool:
        """Whether an image waits for `eui` (a sleepy device's notification flag)."""
        return eui in self.offers

    async def _notify(self, eui: bytes, image: OtaImage) -> None:
        h = image.header
        command = ClusterCommand.build(OTA_CLUSTER, "ImageNotify", server_to_client=True, payload_type=3, query_jitter=100,
                                       manufacturer_code=h.manufacturer_code, image_type=h.image_type,
                                       new_file_version=h.file_version)
        frame = ZclFrame.build(command, sequence=0, disable_default_response=True)
        try:
            await self.port.send(ApsFrame(self.port.eui, eui, 1, 1, OTA_CLUSTER, frame.encode()))
        except HanError as exc:  # asleep or away: it asks when it wakes
            log.debug("ImageNotify to %s not sent: %s", eui_hex(eui), exc)

    def _event(self, eui: bytes, event: str, **detail: Any) -> None:
        if self.on_event is not None:
            try:
                self.on_event(eui, event, detail)
            except Exception:  # noqa: BLE001 - a listener must not break the server
                log.exception("OTA event listener failed")

    def _query(self, frame: ApsFrame, command: ClusterCommand) -> ClusterCommand:
        offer = self.offers.get(frame.src)
        if offer is not None:
            offer.last_request = self.clock.now()
        if offer is None:
            return ClusterCommand.build(OTA_CLUSTER, "QueryNextImageResponse", server_to_client=True,
                                        status=Status.NO_IMAGE_AVAILABLE)
        h = offer.image.header
        hw = command.get("hardware_version")
        if not h.accepts_hardware(hw):
            del self.offers[frame.src]
            self._event(frame.src, "failed", code=FirmwareTransferCode.HARDWARE_VERSION_MISMATCH, image=offer.image)
            return ClusterCommand.build(OTA_CLUSTER, "QueryNextImageResponse", server_to_client=True,
                                        status=Status.NO_IMAGE_AVAILABLE)
        return ClusterCommand.build(OTA_CLUSTER, "QueryNextImageResponse", server_to_client=True, status=Status.SUCCESS,
                                    manufacturer_code=h.manufacturer_code, image_type=h.image_type,
                                    file_version=h.file_version, image_size=len(offer.data))

    async def _block(self, frame: ApsFrame, command: ClusterCommand) -> ClusterCommand:
        offer = self.offers.get(frame.src)
        h = None if offer is None else offer.image.header
        if (offer is None or (command["manufacturer_code"], command["image_type"], command["file_version"])
                != (h.manufacturer_code, h.image_type, h.file_version) or command["file_offset"] >= len(offer.data)):
            return ClusterCommand.build(OTA_CLUSTER, "ImageBlockResponse", server_to_client=True, status=Status.ABORT)
        if self.block_period > 0:
            await self.clock.sleep(self.block_period)
        offset = command["file_offset"]
        offer.last_request = self.clock.now()
        chunk = offer.data[offset:offset + max(1, min(self.block_size, command["maximum_data_size"]))]
        self.blocks_served += 1
        if offset + len(chunk) > offer.sent:
            offer.sent = offset + len(chunk)
            if offer.sent == len(offer.data) or offer.sent // 16384 != offset // 16384:
                self._event(frame.src, "progress", bytes=offer.sent, size=len(offer.data))
        return ClusterCommand.build(OTA_CLUSTER, "ImageBlockResponse", server_to_client=True, status=Status.SUCCESS,
                                    manufacturer_code=h.manufacturer_code, image_type=h.image_type,
                                    file_version=h.file_version, file_offset=offset, image_data=chunk)

    def _end(self, frame: ApsFrame, command: ClusterCommand) -> ClusterCommand | int:
        offer = self.offers.get(frame.src)
        h = None if offer is None else offer.image.header
        if offer is None or (command["manufacturer_code"], command["image_type"], command["file_version"]) != \
                (h.manufacturer_code, h.image_type, h.file_version):
            return Status.SUCCESS  # about an image no longer offered: nothing to end
        del self.offers[frame.src]
        status = command["status"]
        if status == Status.SUCCESS:
            self._event(frame.src, "transferred", verified=True, image=offer.image)
        elif status == Status.INVALID_IMAGE:
            self._event(frame.src, "transferred", verified=False, image=offer.image)
        elif status == Status.ABORT:  # the device would not take it (too large for it)
            self._event(frame.src, "failed", code=FirmwareTransferCode.IMAGE_DISCARDED, image=offer.image)
        else:
            self._event(frame.src, "failed", code=FirmwareTransferCode.FILE_TRANSFER_FAILURE, image=offer.image)
        now = utc_seconds(self.clock.utcnow()) if hasattr(self.clock, "utcnow") else 0
        return ClusterCommand.build(OTA_CLUSTER, "UpgradeEndResponse", server_to_client=True,
                                    manufacturer_code=h.manufacturer_code, image_type=h.image_type,
                                    file_version=h.file_version, current_time=now, upgrade_time=_UPGRADE_LATER)


class OtaClient:
    """Fetches images offered by `server` for `device` (a `FirmwareUpdates`; module doc)."""

    def __init__(self, device: Any, port: HanPort, dispatch: ClusterDispatch, *, server: bytes, clock,
                 max_data_size: int = DEFAULT_BLOCK_SIZE, timeout: float = 5.0, retries: int = 3) -> None:
        self.device = device
        self.server = server
        self.max_data_size = max_data_size
        self.zcl = ZclClient(port, dispatch, clock=clock, timeout=timeout, retries=retries)
        self._running: asyncio.Future | None = None
        self._busy = False
        if OTA_CLUSTER not in dispatch.handlers:
            dispatch.add(OTA_CLUSTER, self._on_frame)
        self._claim_fallback(dispatch)
        device.ota_client = self

    def _claim_fallback(self, dispatch: ClusterDispatch) -> None:
        # Server→client frames nobody waits for (ImageNotify) reach us through the ZCL router's fallback.
        from .zcl_server import _ZclRouter

        router = _ZclRouter.of(dispatch)
        if dispatch.handlers.get(OTA_CLUSTER) is router:
            router.fallback[OTA_CLUSTER] = self._on_frame

    def _on_frame(self, frame: ApsFrame) -> None:
        if frame.src == self.server and frame.payload and frame.payload[0] & 0x08:  # server→client: ImageNotify
            self.kick()

    def on_boot(self) -> None:
        """Resume an interrupted transfer (called by the device after it booted)."""
        if self.device.transfer is not None:
            self.kick()

    def kick(self) -> None:
        """Fetch now (in the background, owned by the device) unless already fetching."""
        if self._running is not None and not self._running.done():
            return
        if self.device.state != "on" or getattr(self.device, "OTA_FETCH_ON_WAKE", False):
            return  # off, or a sleepy device that fetches on its wakes
        self._running = self.device.spawn(self._fetch_logged(), name=f"{self.device.kind}-ota")

    async def _fetch_logged(self) -> None:
        try:
            result = await self.fetch()
        except (ZclError, HanError, NvmError) as exc:  # the CHF away or refusing, or NVM full: notified again later
            log.info("%s %s: firmware fetch stopped: %s", self.device.kind, self.device.eui_hex, exc)
            return
        log.info("%s %s: firmware fetch %s", self.device.kind, self.device.eui_hex, result)

    async def fetch(self, max_blocks: int | None = None) -> str:
        """Query, then fetch blocks; "none" (nothing offered), "paused" (after `max_blocks`),
        "aborted", "verified", "invalid", or "busy" (a fetch is already under way)."""
        if self._busy:
            return "busy"
        self._busy = True
        try:
            return await self._fetch(max_blocks)
        finally:
            self._busy = False

    async def _fetch(self, max_blocks: int | None) -> str:
        d = self.device
        query = ClusterCommand.build(OTA_CLUSTER, "QueryNextImageRequest", field_control=1,
                                     manufacturer_code=d.manufacturer_code or 0, image_type=d.image_type or 0,
                                     current_file_version=file_version(d.firmware_version),
                                     hardware_version=d.hardware_version)
        self._claim_fallback(self.zcl.dispatch)
        answer = await self.zcl.command(self.server, query)
        self._claim_fallback(self.zcl.dispatch)
        if answer is None or answer["status"] != Status.SUCCESS:
            return "none"
        ident = dict(manufacturer_code=answer["manufacturer_code"], image_type=answer["image_type"],
                     file_version=answer["file_version"])
        size = answer["image_size"]
        try:
            offset = d.ota_begin(size=size, server=self.server, **ident)
        except ValueError as exc:
            log.info("%s %s: image refused: %s", d.kind, d.eui_hex, exc)
            await self._upgrade_end(Status.ABORT, ident)
            return "aborted"
        blocks = stalls = 0
        while offset < size:
            if max_blocks is not None and blocks >= max_blocks:
                return "paused"
            request = ClusterCommand.build(OTA_CLUSTER, "ImageBlockRequest", field_control=0, file_offset=offset,
                                           maximum_data_size=self.max_data_size, **ident)
            block = await self.zcl.command(self.server, request)
            if block is None or block["status"] != Status.SUCCESS:
                d.ota_abort()
                return "aborted"
            before, offset = offset, d.ota_block(block["file_offset"], block["image_data"])
            stalls = stalls + 1 if offset == before else 0
            if stalls >= _MAX_STALLS:  # a server that answers with other offsets or no data
                d.ota_abort()
                await self._upgrade_end(Status.ABORT, ident)
                return "aborted"
            blocks += 1
        ok, _ = await d.ota_end()
        await self._upgrade_end(Status.SUCCESS if ok else Status.INVALID_IMAGE, ident)
        return "verified" if ok else "invalid"

    async def _upgrade_end(self, status: int, ident: dict) -> None:
        try:
            await self.zcl.command(self.server, ClusterCommand.build(OTA_CLUSTER, "UpgradeEndRequest", status=status, **ident))
        except (ZclError, HanError) as exc:
            log.info("%s %s: UpgradeEnd not acknowledged: %s", self.device.kind, self.device.eui_hex, exc)


__all__ = ["OTA_CLUSTER", "DEFAULT_BLOCK_SIZE", "DEFAULT_BLOCK_PERIOD", "Offer", "OtaServer", "OtaClient"]
