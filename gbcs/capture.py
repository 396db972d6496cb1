"""HAN capture format, sans-IO: APS frames as pcap records Wireshark and tshark dissect down to
the ZCL (Smart Energy cluster and attribute names, the GB-HGRP tunnel).

Encapsulation (documented, [I]): link type 195 (LINKTYPE_IEEE802_15_4_WITHFCS). Each record is an
unsecured IEEE 802.15.4 data frame (short addresses, PAN id compression, FCS CRC-16/KERMIT)
around a ZigBee NWK data frame (protocol version 2, both IEEE addresses present, no security)
around an APS data frame (unicast, no security) whose payload is the APS payload as sent. The HAN
carries these encrypted; a capture shows them in the clear because the emulator holds the
plaintext, which is what makes it useful.

Addresses: each GBCS entity is shown as its own node: IEEE address = its entity id (least
significant byte first on air), NWK address = 0x0000 for the coordinator (`coordinator`) and a
stable 16-bit value derived from the entity id for the others (`nwk_address`). On a real radio the
ESME served by the coordinator shares its address (`gbhub.han.zigbee`); the capture shows the
logical view.

`read_pcap` parses a pcap file (outside input: raises `CaptureError` only) and `parse_frame`
takes one record apart again; the pair round-trips `frame_bytes`.
"""
from __future__ import annotations

import hashlib
import struct


from .codec import DecodeError, frozen_dataclass

LINKTYPE_IEEE802_15_4_WITHFCS = 195
PCAP_MAGIC = 0xA1B2C3D4  # microsecond timestamps
SNAPLEN = 65535
PAN_ID = 0x1A62  # [I] the PAN id shown in captures of the virtual HAN

_MAC_FC = 0x0001 | 0x0020 | 0x0040 | (2 << 10) | (2 << 14)  # data, ack request, PAN compression, short/short
_NWK_FC = 0x0000 | (2 << 2) | (1 << 11) | (1 << 12)  # data, version 2, dst + src IEEE present
_APS_FC = 0x00  # data, unicast


class CaptureError(DecodeError):
    """A pcap file or record that cannot be read."""


def crc16_kermit(data: bytes) -> int:
    """The IEEE 802.15.4 FCS: CRC-16/KERMIT (poly 0x1021 reflected, init 0, no final xor)."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc


def nwk_address(eui: bytes, coordinator: bytes | None = None) -> int:
    """A stable NWK short address for an entity: 0x0000 for the coordinator, else 0x0001..0xFFF7."""
    if coordinator is not None and eui == coordinator:
        return 0x0000
    value = int.from_bytes(hashlib.sha256(b"gbhub nwk" + eui).digest()[:2], "little")
    return 1 + value % 0xFFF7


@frozen_dataclass
class CapturedFrame:
    """One APS data frame as the capture shows it (entity ids in GBCS order)."""

    src: bytes
    dst: bytes
    src_endpoint: int
    dst_endpoint: int
    profile: int
    cluster: int
    payload: bytes
    sequence: int = 0  # MAC, NWK and APS sequence numbers (mod 256)
    src_nwk: int = 0xFFFF
    dst_nwk: int = 0xFFFF


def frame_bytes(frame: CapturedFrame, pan_id: int = PAN_ID) -> bytes:
    """802.15.4 ‖ NWK ‖ APS ‖ payload ‖ FCS."""
    seq = frame.sequence & 0xFF
    mac = struct.pack("<HBHHH", _MAC_FC, seq, pan_id, frame.dst_nwk, frame.src_nwk)
    nwk = struct.pack("<HHHBB", _NWK_FC, frame.dst_nwk, frame.src_nwk, 30, seq) + frame.dst[::-1] + frame.src[::-1]
    aps = struct.pack("<BBHHBB", _APS_FC, frame.dst_endpoint, frame.cluster, frame.profile, frame.src_endpoint, seq)
    body = mac + nwk + aps + bytes(frame.payload)
    return body + struct.pack("<H", crc16_kermit(body))


def parse_frame(data: bytes) -> CapturedFrame:
    """The inverse of `frame_bytes` (only that encapsulation); raises CaptureError."""
    data = bytes(data)
    if len(data) < 9 + 22 + 8 + 2:
        raise CaptureError("record too short for 802.15.4 + NWK + APS", len(data), "record")
    body, fcs = data[:-2], int.from_bytes(data[-2:], "little")
    if crc16_kermit(body) != fcs:
        raise CaptureError("FCS does not match", len(body), "fcs")
    mac_fc, seq, _pan, dst_nwk, src_nwk = struct.unpack_from("<HBHHH", body, 0)
    if mac_fc != _MAC_FC:
        raise CaptureError(f"unexpected 802.15.4 frame control 0x{mac_fc:04X}", 0, "mac")
    nwk_fc, _d, _s, _radius, _nseq = struct.unpack_from("<HHHBB", body, 9)
    if nwk_fc != _NWK_FC:
        raise CaptureError(f"unexpected NWK frame control 0x{nwk_fc:04X}", 9, "nwk")
    dst, src = body[17:25][::-1], body[25:33][::-1]
    aps_fc, dst_ep, cluster, profile, src_ep, _aseq = struct.unpack_from("<BBHHBB", body, 33)
    if aps_fc != _APS_FC:
        raise CaptureError(f"unexpected APS frame control 0x{aps_fc:02X}", 33, "aps")
    return CapturedFrame(src, dst, src_ep, dst_ep, profile, cluster, body[41:], seq, src_nwk, dst_nwk)


def pcap_header(linktype: int = LINKTYPE_IEEE802_15_4_WITHFCS) -> bytes:
    return struct.pack("<IHHiIII", PCAP_MAGIC, 2, 4, 0, 0, SNAPLEN, linktype)


def pcap_record(timestamp: float, data: bytes) -> bytes:
    seconds = int(timestamp)
    micros = min(int(round((timestamp - seconds) * 1_000_000)), 999_999)
    return struct.pack("<IIII", seconds & 0xFFFFFFFF, micros, len(data), len(data)) + data


#: The most records `read_pcap` returns (outside input never grows memory unbounded).
MAX_RECORDS = 1_000_000


def read_pcap(data: bytes) -> tuple[int, list[tuple[float, bytes]]]:
    """(link type, [(timestamp, record bytes)]) of a classic pcap file (either byte order,
    micro- or nanosecond timestamps); raises CaptureError."""
    data = bytes(data)
    if len(data) < 24:
        raise CaptureError("shorter than a pcap header", len(data), "header")
    for order in ("<", ">"):
        magic = struct.unpack_from(order + "I", data, 0)[0]
        if magic in (0xA1B2C3D4, 0xA1B23C4D):
            break
    else:
        raise CaptureError("not a pcap file (bad magic)", 0, "magic")
    scale = 1e-6 if magic == 0xA1B2C3D4 else 1e-9
    _m, _major, _minor, _zone, _sig, snaplen, linktype = struct.unpack_from(order + "IHHiIII", data, 0)
    records: list[tuple[float, bytes]] = []
    pos = 24
    while pos < len(data):
        if len(records) >= MAX_RECORDS:
            raise CaptureError("too many records", pos, "record")
        if pos + 16 > len(data):
            raise CaptureError("truncated record header", pos, "record")
        seconds, fraction, incl, _orig = struct.unpack_from(order + "IIII", data, pos)
        if incl > max(snaplen, SNAPLEN) or pos + 16 + incl > len(data):
            raise CaptureError("record longer than the file or the snap length", pos, "record")
        records.append((seconds + fraction * scale, data[pos + 16 : pos + 16 + incl]))
        pos += 16 + incl
    return linktype, records
