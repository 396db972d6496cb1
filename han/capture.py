"""HAN capture: every frame a HAN transport carries, written as a pcap Wireshark dissects
(`gbcs.capture` describes the encapsulation). Works on any transport with `observe(callback)`
(the virtual air, the ZigBee transport); `gbhub run --pcap FILE` and the rig key `[han] pcap`
open one."""
from __future__ import annotations

import logging
import os
from typing import Any, Callable

from gbcs.capture import CapturedFrame, frame_bytes, nwk_address, pcap_header, pcap_record

from .virtual import DELIVERED, LOST, AirEvent

log = logging.getLogger("gbhub.han.capture")

#: Outcomes that put a frame on the air (a frame refused before sending never got there).
ON_AIR = (DELIVERED, LOST)


class HanCapture:
    """Appends a pcap record per frame on the air; the file is valid after every record."""

    def __init__(self, path: str | os.PathLike, *, coordinator: bytes | None = None) -> None:
        self.path = os.fspath(path)
        self.coordinator = coordinator
        self._file = open(self.path, "wb")
        self._file.write(pcap_header())
        self._file.flush()
        self._stops: list[Callable[[], None]] = []
        self._sequence = 0
        self.frames = 0

    def attach(self, transport: Any) -> None:
        self._stops.append(transport.observe(self.on_event))

    def on_event(self, event: AirEvent) -> None:
        if event.outcome not in ON_AIR or self._file.closed:
            return
        f = event.frame
        self._sequence = (self._sequence + 1) & 0xFF
        captured = CapturedFrame(f.src, f.dst, f.src_endpoint, f.dst_endpoint, f.profile, f.cluster, f.payload,
                                 self._sequence, nwk_address(f.src, self.coordinator), nwk_address(f.dst, self.coordinator))
        try:
            self._file.write(pcap_record(event.time, frame_bytes(captured)))
            self._file.flush()
        except OSError as exc:  # a full disk stops the capture, never the HAN
            log.error("HAN capture %s stopped: %s", self.path, exc)
            self.close()
            return
        self.frames += 1

    def close(self) -> None:
        for stop in self._stops:
            stop()
        self._stops.clear()
        if not self._file.closed:
            self._file.close()
