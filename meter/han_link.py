"""The HAN end of a GBCS device that the Comms Hub reaches through a GB-HGRP tunnel it opens
(ESME, PPMID, HCALCS: the tunnel-server device types, FACTS §6): commands arriving through the
tunnel go to the device's inbox as if from the WAN, and what the device originates (responses,
alerts, a PPMID's PCS01 to the GSME) goes back up the same tunnel. Mixed into the device class
before `GbcsDevice`; the device sets `chf_eui` (None: any Comms Hub) before `attach_han`."""
from __future__ import annotations

from gbhub.han.aps import TUNNELING_CLUSTER
from gbhub.han.transport import ClusterDispatch
from gbhub.han.tunnel import TunnelHost, TunnelServer


class TunnelServed:
    """`attach_han(transport)` and the tunnel plumbing (module doc)."""

    chf_eui: bytes | None = None
    tunnel: TunnelServer | None = None
    tunnel_host: TunnelHost | None = None
    han_port = None
    han_dispatch: ClusterDispatch | None = None
    _last_tunnel_peer: bytes | None = None

    def attach_han(self, transport, *, endpoint: int = 1) -> ClusterDispatch:
        """Attach to a HAN transport and serve the GB-HGRP tunnel the CHF opens to this device:
        commands arriving through it are processed as from the WAN, and responses and alerts go
        back through it (unless `send_gbcs` was wired elsewhere). Returns the port's dispatcher,
        to which other cluster servers and clients (Metering, Prepayment ...) can be added."""
        dispatch = ClusterDispatch()
        port = transport.attach(self.eui, dispatch)
        host = TunnelHost(port, endpoint=endpoint, clock=self.clock, on_message=self._on_tunnel_message)
        self.tunnel = host.serve(accept=self._accept_tunnel)
        dispatch.add(TUNNELING_CLUSTER, host.handle)
        self.tunnel_host = host
        self.han_port = port
        self.han_dispatch = dispatch
        if self.send_gbcs is None:
            self.send_gbcs = self._send_via_tunnel
        return dispatch

    def _accept_tunnel(self, eui: bytes) -> bool | None:
        if self.chf_eui is None or eui == self.chf_eui:
            return True
        return None  # not our Comms Hub: ignored

    def _on_tunnel_message(self, peer: bytes, message: bytes) -> None:
        if self.chf_eui is not None and peer != self.chf_eui:
            return
        self._last_tunnel_peer = peer
        self.post(bytes(message))

    async def _send_via_tunnel(self, frame: bytes) -> None:
        peer = self.chf_eui or self._last_tunnel_peer
        if self.tunnel is None or peer is None:
            raise ConnectionError("no tunnel to a Comms Hub")
        await self.tunnel.send_gbcs(peer, frame)


__all__ = ["TunnelServed"]
