"""The few ZigBee Device Profile (ZDP) frames a Smart Energy coordinator must answer or ask
itself, sans-IO: service discovery (Match_Desc, Simple_Desc, Active_EP), Node_Desc and
Device_annce; plus gbhub's endpoint table (cluster 0xFC48), which names the GBCS entity behind
each Smart Energy endpoint of a coordinator that hosts several devices.

Why here and not zigpy's ZDO: zigpy (2.4) answers every Match_Desc_req whose profile is not Home
Automation with an empty list, so a Smart Energy IHD asking for the Metering server of profile
0x0109 finds nothing. The ZigBee transport answers these requests itself, below zigpy's device
dispatch (`han.zigbee`).

Layouts [S ZigBee spec 05-3474 §2.4.3.1 / §2.4.4.1]: every ZDP frame starts with a transaction
sequence number; 16-bit fields are little-endian. `decode_*` raise `gbcs.codec.DecodeError` only.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from gbcs.codec import DecodeError

NODE_DESC_REQ = 0x0002
SIMPLE_DESC_REQ = 0x0004
ACTIVE_EP_REQ = 0x0005
MATCH_DESC_REQ = 0x0006
DEVICE_ANNCE = 0x0013
RESPONSE = 0x8000  # a ZDP response's cluster id is its request's with this bit set
NODE_DESC_RSP = RESPONSE | NODE_DESC_REQ
SIMPLE_DESC_RSP = RESPONSE | SIMPLE_DESC_REQ
ACTIVE_EP_RSP = RESPONSE | ACTIVE_EP_REQ
MATCH_DESC_RSP = RESPONSE | MATCH_DESC_REQ

#: gbhub's endpoint table: which GBCS entity (EUI) stands behind which endpoint of a node.
ENDPOINT_TABLE_CLUSTER = 0xFC48

SUCCESS = 0x00
NOT_ACTIVE = 0x83  # ZDP status: the endpoint asked for is not active

#: Node descriptor of an end device / the coordinator (13 bytes), as a radio would report.
COORDINATOR_NODE_DESCRIPTOR = bytes.fromhex("00408e3412505000002c500000")
END_DEVICE_NODE_DESCRIPTOR = bytes.fromhex("02408034125050000000500000")


@dataclass(frozen=True, slots=True)
class SimpleDescriptor:
    endpoint: int
    profile: int
    device_id: int
    device_version: int = 0
    in_clusters: tuple[int, ...] = ()
    out_clusters: tuple[int, ...] = ()

    def encode(self) -> bytes:
        return (struct.pack("<BHHB", self.endpoint, self.profile, self.device_id, self.device_version & 0x0F)
                + _cluster_list(self.in_clusters) + _cluster_list(self.out_clusters))


def _cluster_list(clusters: tuple[int, ...]) -> bytes:
    if len(clusters) > 0xFF:
        raise ValueError("at most 255 clusters")
    return bytes((len(clusters),)) + b"".join(struct.pack("<H", c) for c in clusters)


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = bytes(data)
        self.pos = 0

    def take(self, n: int, what: str) -> bytes:
        if self.pos + n > len(self.data):
            raise DecodeError(f"truncated {what}", self.pos, what)
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u8(self, what: str) -> int:
        return self.take(1, what)[0]

    def u16(self, what: str) -> int:
        return int.from_bytes(self.take(2, what), "little")

    def clusters(self, what: str) -> tuple[int, ...]:
        n = self.u8(what)
        return tuple(self.u16(what) for _ in range(n))

    def end(self, what: str) -> None:
        if self.pos != len(self.data):
            raise DecodeError(f"{len(self.data) - self.pos} trailing bytes after {what}", self.pos, what)


@dataclass(frozen=True, slots=True)
class MatchDescRequest:
    tsn: int
    nwk: int
    profile: int
    in_clusters: tuple[int, ...] = ()
    out_clusters: tuple[int, ...] = ()

    def encode(self) -> bytes:
        return struct.pack("<BHH", self.tsn, self.nwk, self.profile) + _cluster_list(self.in_clusters) + _cluster_list(self.out_clusters)


def decode_match_desc_request(data: bytes) -> MatchDescRequest:
    r = _Reader(data)
    out = MatchDescRequest(r.u8("tsn"), r.u16("nwk"), r.u16("profile"), r.clusters("in clusters"), r.clusters("out clusters"))
    r.end("Match_Desc_req")
    return out


@dataclass(frozen=True, slots=True)
class MatchDescResponse:
    tsn: int
    status: int
    nwk: int
    endpoints: tuple[int, ...]

    def encode(self) -> bytes:
        return struct.pack("<BBHB", self.tsn, self.status, self.nwk, len(self.endpoints)) + bytes(self.endpoints)


def decode_match_desc_response(data: bytes) -> MatchDescResponse:
    r = _Reader(data)
    tsn, status, nwk, n = r.u8("tsn"), r.u8("status"), r.u16("nwk"), r.u8("match length")
    out = MatchDescResponse(tsn, status, nwk, tuple(r.take(n, "match list")))
    r.end("Match_Desc_rsp")
    return out


def matches(descriptor: SimpleDescriptor, request: MatchDescRequest) -> bool:
    """The ZDP match rule: same profile, and one requested input cluster among the endpoint's
    input (server) clusters or one requested output cluster among its output clusters."""
    if request.profile != descriptor.profile:
        return False
    return bool(set(request.in_clusters) & set(descriptor.in_clusters)
                or set(request.out_clusters) & set(descriptor.out_clusters))


def decode_addr_request(data: bytes, what: str) -> tuple[int, int, int | None]:
    """Node_Desc_req / Active_EP_req (tsn, nwk) and Simple_Desc_req (tsn, nwk, endpoint)."""
    r = _Reader(data)
    tsn, nwk = r.u8("tsn"), r.u16("nwk")
    endpoint = r.u8("endpoint") if what == "Simple_Desc_req" else None
    r.end(what)
    return tsn, nwk, endpoint


def simple_desc_response(tsn: int, nwk: int, descriptor: SimpleDescriptor | None) -> bytes:
    if descriptor is None:
        return struct.pack("<BBHB", tsn, NOT_ACTIVE, nwk, 0)
    body = descriptor.encode()
    return struct.pack("<BBHB", tsn, SUCCESS, nwk, len(body)) + body


def decode_simple_desc_response(data: bytes) -> tuple[int, int, int, SimpleDescriptor | None]:
    r = _Reader(data)
    tsn, status, nwk, n = r.u8("tsn"), r.u8("status"), r.u16("nwk"), r.u8("length")
    if n == 0:
        r.end("Simple_Desc_rsp")
        return tsn, status, nwk, None
    body = _Reader(r.take(n, "simple descriptor"))
    r.end("Simple_Desc_rsp")
    ep, profile, device_id, version = body.u8("endpoint"), body.u16("profile"), body.u16("device id"), body.u8("version")
    d = SimpleDescriptor(ep, profile, device_id, version & 0x0F, body.clusters("in clusters"), body.clusters("out clusters"))
    body.end("simple descriptor")
    return tsn, status, nwk, d


def active_ep_response(tsn: int, nwk: int, endpoints: tuple[int, ...]) -> bytes:
    return struct.pack("<BBHB", tsn, SUCCESS, nwk, len(endpoints)) + bytes(endpoints)


def decode_active_ep_response(data: bytes) -> tuple[int, int, int, tuple[int, ...]]:
    """(tsn, status, nwk, endpoints)."""
    r = _Reader(data)
    tsn, status, nwk, n = r.u8("tsn"), r.u8("status"), r.u16("nwk"), r.u8("count")
    endpoints = tuple(r.take(n, "endpoints"))
    r.end("Active_EP_rsp")
    return tsn, status, nwk, endpoints


def node_desc_response(tsn: int, nwk: int, descriptor: bytes) -> bytes:
    return struct.pack("<BBH", tsn, SUCCESS, nwk) + descriptor


def device_annce(tsn: int, nwk: int, ieee: bytes, capability: int = 0x80) -> bytes:
    """Device_annce: nwk, IEEE (on-air order), MAC capability flags."""
    return struct.pack("<BH", tsn, nwk) + bytes(ieee) + bytes((capability,))


# -- gbhub endpoint table (ENDPOINT_TABLE_CLUSTER, endpoint 0, profile 0) -------------------------
#   request  01 ‖ tsn
#   response 02 ‖ tsn ‖ count ‖ (endpoint(1) ‖ eui(8)) * count      (eui in GBCS order)
#   response 03 ‖ tsn ‖ count ‖ (endpoint(1) ‖ eui(8) ‖ device endpoint(1)) * count
# The second form also names the endpoint each entity uses itself, for an entity served on more
# than one endpoint of the node (the CHF's address: the CHF, and the GPF's gas mirror on 2 [I]).

_TABLE_REQUEST, _TABLE_RESPONSE, _TABLE_RESPONSE_EP = 1, 2, 3


def endpoint_table_request(tsn: int) -> bytes:
    return bytes((_TABLE_REQUEST, tsn & 0xFF))


def endpoint_table_response(tsn: int, table: dict[int, bytes], device_endpoints: dict[int, int] | None = None) -> bytes:
    """The table {node endpoint: EUI}; with `device_endpoints` {node endpoint: the entity's own
    endpoint} (others: 1) the second form."""
    if len(table) > 0xFF:
        raise ValueError("at most 255 endpoints")
    if not device_endpoints:
        return bytes((_TABLE_RESPONSE, tsn & 0xFF, len(table))) + b"".join(bytes((ep,)) + eui for ep, eui in sorted(table.items()))
    return bytes((_TABLE_RESPONSE_EP, tsn & 0xFF, len(table))) + b"".join(
        bytes((ep,)) + eui + bytes((device_endpoints.get(ep, 1),)) for ep, eui in sorted(table.items()))


def decode_endpoint_table(data: bytes) -> tuple[int, int, dict[int, bytes] | None]:
    """(command, tsn, table): table is None for a request."""
    return decode_endpoint_table_full(data)[:3]  # type: ignore[return-value]


def decode_endpoint_table_full(data: bytes) -> tuple[int, int, dict[int, bytes] | None, dict[int, int]]:
    """(command, tsn, table, device endpoints): table is None for a request; device endpoints
    {node endpoint: the entity's own endpoint} are those of the second response form."""
    r = _Reader(data)
    command, tsn = r.u8("command"), r.u8("tsn")
    if command == _TABLE_REQUEST:
        r.end("endpoint table request")
        return command, tsn, None, {}
    if command not in (_TABLE_RESPONSE, _TABLE_RESPONSE_EP):
        raise DecodeError(f"unknown endpoint table command 0x{command:02X}", 0, "command")
    n = r.u8("count")
    table: dict[int, bytes] = {}
    own: dict[int, int] = {}
    for _ in range(n):
        ep = r.u8("endpoint")
        table[ep] = r.take(8, "eui")
        if command == _TABLE_RESPONSE_EP:
            own[ep] = r.u8("device endpoint")
    r.end("endpoint table response")
    return command, tsn, table, own
