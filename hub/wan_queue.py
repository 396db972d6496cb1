"""The CHF's WAN side outbound: `uplink`, and the queue that holds frames while the WAN is down.
Mixed into `hub.chf.Chf` (`WanQueue`): it uses the CHF's NVM, its `wan` port and its RAM queue
(`_queue`, `_draining`, rebuilt at boot).

WAN outage: everything the hub sends up (responses, alerts, relayed messages) goes through
`uplink`. While the WAN is down (or earlier frames still wait) frames join a FIFO persisted in
NVM, bounded by `wan_queue_limit` (default 1000). When full, the new frame is dropped and
counted (`wan_queue_dropped`, persisted); the first drop of an outage is logged
(`wan_queue_overflow` event) and once the queue has drained after the WAN returns, an event
`wan_queue_overflow_reported` records how many were lost. The queue is released in order when the
WAN comes back (`HubPort.on_link_change`), a head-end that takes queued frames attaches, or at
boot; a frame leaves the queue only once a head-end acknowledged it (`HubPort.deliver_stored`),
so a client that connects and closes takes nothing away. A response to a command whose client is
still attached goes to it at once, even while older frames wait in the queue.
"""
from __future__ import annotations

import asyncio
import logging
from itertools import islice

from gbhub.wan.bridge import WanDown

log = logging.getLogger("gbhub.chf")

QUEUE_NS = "chf_wan_queue"
QUEUE_META_NS = "chf_wan_meta"
_DRAIN_BATCH = 64  # queued frames released per NVM commit


class WanQueue:
    """The WAN outage queue part of `Chf` (module doc)."""

    # -- uplink and the outage queue -----------------------------------------------------------
    async def uplink(self, frame: bytes) -> None:
        """Send a frame up the WAN, or queue it (in order, persisted) while the WAN is down."""
        port = self.wan
        if port is not None:
            if not self._queue or port.routes(frame):
                try:
                    await port.send_up(frame)
                    return
                except WanDown:
                    pass  # send_up copied it to the attached clients that take nothing
            else:
                port.copy_to_watchers(frame)
        self._enqueue(frame)

    @property
    def wan_queue_length(self) -> int:
        return len(self.nvm.keys(QUEUE_NS))

    def wan_queue(self) -> list[bytes]:
        """The frames waiting for the WAN, oldest first."""
        return [v for _, v in self.nvm.items(QUEUE_NS)]

    @property
    def wan_queue_dropped(self) -> int:
        """Frames dropped because the queue was full (total, persisted)."""
        return self.nvm.get(QUEUE_META_NS, "dropped_total", 0)

    def _enqueue(self, frame: bytes) -> None:
        nvm = self.nvm
        queued = len(self._queue) if self._alive else len(nvm.keys(QUEUE_NS))
        if queued >= self.wan_queue_limit:
            pending = nvm.get(QUEUE_META_NS, "dropped_pending", 0)
            with nvm.transaction():
                nvm.put(QUEUE_META_NS, "dropped_pending", pending + 1)
                nvm.put(QUEUE_META_NS, "dropped_total", self.wan_queue_dropped + 1)
                if pending == 0:
                    self.log_event("wan_queue_overflow", limit=self.wan_queue_limit)
            log.warning("CHF %s: WAN queue full (%d), frame dropped", self.eui_hex, self.wan_queue_limit)
            return
        with nvm.transaction():
            seq = nvm.get(QUEUE_META_NS, "next_seq", 0)
            key = f"{seq:020d}"
            nvm.put(QUEUE_NS, key, bytes(frame))
            nvm.put(QUEUE_META_NS, "next_seq", seq + 1)
        self._queue.append((key, bytes(frame)))

    def _start_drain(self) -> None:
        if not self._draining:
            self._draining = True
            self.spawn(self._drain(), name=f"chf-drain-{self.eui_hex}")

    async def _drain(self) -> None:
        """Release queued frames in order while the WAN stays up."""
        try:
            port = self.wan
            queue = self._queue
            while queue and port is not None and port.up:
                batch = [(int(key), frame) for key, frame in islice(queue, _DRAIN_BATCH)]
                try:
                    acked = await port.deliver_stored(batch)
                except WanDown:
                    break
                taken: list[str] = []
                while queue and int(queue[0][0]) <= acked:
                    taken.append(queue.popleft()[0])
                # One NVM commit per batch; a power cut before it re-sends the batch
                # (at least once, never lost).
                if taken:
                    with self.nvm.transaction():
                        for key in taken:
                            self.nvm.delete(QUEUE_NS, key)
                await asyncio.sleep(0)  # let the rest of the hub breathe between batches
            if not queue:
                pending = self.nvm.get(QUEUE_META_NS, "dropped_pending", 0)
                if pending:
                    with self.nvm.transaction():
                        self.nvm.put(QUEUE_META_NS, "dropped_pending", 0)
                        self.log_event("wan_queue_overflow_reported", dropped=pending, total=self.wan_queue_dropped)
        finally:
            self._draining = False
        if self._queue and self.wan is not None and self.wan.up and self.wan.takers:
            self._start_drain()  # went down and up again while we were sending



__all__ = ["WanQueue", "QUEUE_NS", "QUEUE_META_NS"]
