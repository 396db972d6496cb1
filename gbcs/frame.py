"""GBCS frames: MAC header (General-Ciphering, DD), grouping header (General-Signing, DF), and the
GBT routing header + General Block Transfer blocks that carry large messages in pieces.

The four outer shapes (FACTS.md 1.1):
  1. DD-MAC ‖ DF ‖ content ‖ 00 ‖ MAC          non-critical command / response / alert
  2. DD-MAC ‖ DF ‖ content ‖ 40 sig ‖ MAC       critical command (KRP signature + ACB MAC)
  3. DF ‖ content ‖ 40 sig                      response to critical command, critical alert
  4. DF ‖ content [‖ 00]                        pre-command

This is the hot path of every device and of `gbhub decode --batch`, so it is hand-written over
`bytes` slicing rather than `construct` (which costs ~50 us a frame); the payload is left as bytes
and decoded on demand by `gbcs.payload`.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from enum import IntEnum
from typing import Any

from .codec import DecodeError, EncodeError, Node, encode_length, eui_hex, frozen_dataclass, read_length, take
from .dlms import DlmsDateTime  # the one DLMS date-time type (the tree shows the header's)

GENERAL_CIPHERING = 0xDD
GENERAL_SIGNING = 0xDF
GBT_TAG = 0xE0
SECURITY_HEADER_MAC = b"\x11\x00\x00\x00\x00"  # security-control 0x11 (authenticated) + IC 0
MAC_LENGTH = 12
SIGNATURE_LENGTH = 64
_MAC_PREFIX = b"\xdd\x00\x00\x00\x00\x00\x00"


class CRA(IntEnum):
    """The CRA flag: first byte of the transaction-id."""

    COMMAND = 1
    RESPONSE = 2
    ALERT = 3


_CRA = {1: CRA.COMMAND, 2: CRA.RESPONSE, 3: CRA.ALERT}


@frozen_dataclass(init=False)
class Message:
    """One GBCS message. `mac` is None for the bare General-Signing shapes (3 and 4).

    `signature` is None when the signature field is absent (RTDS pre-commands), b"" for the null
    signature `00`, else the 64-byte raw r‖s.  `date_time` is the raw 12-byte DLMS date-time or None.
    """

    cra: CRA
    originator_counter: int
    originator: bytes
    recipient: bytes
    message_code: int
    content: bytes
    date_time: bytes | None = None
    supplementary_remote_party_id: bytes | None = None
    supplementary_remote_party_counter: int | None = None
    supplementary_originator_counter: int | None = None
    remote_party_ka_certificate: bytes | None = None
    signature: bytes | None = b""
    mac: bytes | None = None
    # Raw General-Signing APDU as decoded; saves a re-encode when checking the MAC/signature.
    _apdu: bytes = field(default=b"", init=False, repr=False, compare=False)

    def __init__(
        self,
        cra: CRA,
        originator_counter: int,
        originator: bytes,
        recipient: bytes,
        message_code: int,
        content: bytes,
        date_time: bytes | None = None,
        supplementary_remote_party_id: bytes | None = None,
        supplementary_remote_party_counter: int | None = None,
        supplementary_originator_counter: int | None = None,
        remote_party_ka_certificate: bytes | None = None,
        signature: bytes | None = b"",
        mac: bytes | None = None,
    ) -> None:
        # Written out (not dataclass-generated) to set the slots through their descriptors:
        # the generated frozen __init__ costs about twice as much, and every command, response
        # and alert builds one or more.
        _set_cra(self, cra)
        _set_counter(self, originator_counter)
        _set_originator(self, originator)
        _set_recipient(self, recipient)
        _set_message_code(self, message_code)
        _set_content(self, content)
        _set_date_time(self, date_time)
        _set_rp_id(self, supplementary_remote_party_id)
        _set_rp_counter(self, supplementary_remote_party_counter)
        _set_orig_counter(self, supplementary_originator_counter)
        _set_cert(self, remote_party_ka_certificate)
        _set_signature(self, signature)
        _set_mac(self, mac)
        _set_apdu(self, b"")

    # -- derived views ---------------------------------------------------------------------
    @property
    def mac_wrapped(self) -> bool:
        return self.mac is not None

    @property
    def frame(self) -> str:
        """Short name of the outer shape."""
        if self.mac is not None:
            return "mac+signature" if self.signature else "mac"
        if self.signature:
            return "signature"
        return "unsigned"

    @property
    def other_information(self) -> bytes:
        out = self.message_code.to_bytes(2, "big")
        if self.supplementary_remote_party_id is not None:
            out += self.supplementary_remote_party_id
            if self.supplementary_remote_party_counter is not None:
                out += self.supplementary_remote_party_counter.to_bytes(8, "big")
                if self.supplementary_originator_counter is not None:
                    out += self.supplementary_originator_counter.to_bytes(8, "big")
                if self.remote_party_ka_certificate is not None:
                    if len(self.remote_party_ka_certificate) == 8 and self.supplementary_originator_counter is None:
                        # other-information of 26 bytes means "supplementary originator counter"
                        raise EncodeError("an 8-byte certificate cannot be told from a counter")
                    out += self.remote_party_ka_certificate
        return out

    def general_signing(self) -> bytes:
        """The General-Signing APDU (DF … signature field): the MAC's additional data."""
        return self._apdu or _encode_general_signing(self)

    def signed_bytes(self) -> bytes:
        """What the signature covers: from after the DF tag to the last content byte."""
        apdu = self.general_signing()
        sig = self.signature
        tail = 0 if sig is None else 1 + len(sig)
        return apdu[1 : len(apdu) - tail]

    def encode(self) -> bytes:
        apdu = self.general_signing()
        if self.mac is None:
            return apdu
        return mac_frame(apdu, self.mac)

    def with_apdu(self) -> "Message":
        """This message, its General-Signing APDU encoded once and memoised on it, so MAC,
        signature and frame building that follow do not re-encode it. The memo is derived from
        the fields, so the message does not change (no copy on this hot path)."""
        if not self._apdu:
            _set_apdu(self, _encode_general_signing(self))
        return self

    def signed(self, signature: bytes) -> "Message":
        """A copy carrying `signature` (cheaper than dataclasses.replace on this hot path)."""
        return _copy(self, signature=signature)

    def with_mac(self, mac: bytes) -> "Message":
        """A copy carrying `mac`, keeping the encoded APDU (the MAC does not cover itself)."""
        out = _copy(self, mac=mac)
        _set_apdu(out, self._apdu)
        return out

    def tree(self) -> Node:
        return _tree(self)


_MISSING = object()
# Slot setters in field order; adding a Message field breaks this unpacking at import, so
# __init__ and _copy cannot silently miss it.
(_set_cra, _set_counter, _set_originator, _set_recipient, _set_message_code, _set_content, _set_date_time,
 _set_rp_id, _set_rp_counter, _set_orig_counter, _set_cert, _set_signature, _set_mac, _set_apdu) = (
    Message.__dict__[f.name].__set__ for f in fields(Message))


def _copy(m: Message, *, signature: bytes | None | object = _MISSING, mac: bytes | None | object = _MISSING) -> Message:
    return Message(m.cra, m.originator_counter, m.originator, m.recipient, m.message_code, m.content, m.date_time,
                   m.supplementary_remote_party_id, m.supplementary_remote_party_counter,
                   m.supplementary_originator_counter, m.remote_party_ka_certificate,
                   m.signature if signature is _MISSING else signature, m.mac if mac is _MISSING else mac)


def mac_frame(apdu: bytes, mac: bytes) -> bytes:
    """The MACed frame (shapes 1 and 2): General-Ciphering header ‖ APDU ‖ 12-byte MAC."""
    if len(mac) != MAC_LENGTH:
        raise EncodeError("MAC must be 12 bytes")
    return _MAC_PREFIX + encode_length(5 + len(apdu) + MAC_LENGTH) + SECURITY_HEADER_MAC + apdu + mac


def _encode_general_signing(m: Message) -> bytes:
    if len(m.originator) != 8 or len(m.recipient) != 8:
        raise EncodeError("originator and recipient must be 8-byte EUIs")
    if m.date_time is None:
        dt = b"\x00"
    elif len(m.date_time) == 12:
        dt = b"\x0c" + m.date_time
    else:
        raise EncodeError("date_time must be 12 bytes")
    other = m.other_information
    sig = m.signature
    if sig is None:
        sig_field = b""
    elif len(sig) in (0, SIGNATURE_LENGTH):
        sig_field = bytes((len(sig),)) + sig
    else:
        raise EncodeError("signature must be empty or 64 bytes")
    return b"".join(
        (
            b"\xdf\x09",
            bytes((int(m.cra),)),
            m.originator_counter.to_bytes(8, "big"),
            b"\x08",
            m.originator,
            b"\x08",
            m.recipient,
            dt,
            encode_length(len(other)),
            other,
            encode_length(len(m.content)),
            m.content,
            sig_field,
        )
    )


def decode(data: bytes) -> "Message | GbtBlock":
    """Decode any GBCS frame: a message (DD 00… or DF…) or a GBT block (DD 09…)."""
    if len(data) >= 2 and data[0] == GENERAL_CIPHERING and data[1] == 0x09:
        return decode_gbt_block(data)
    return decode_message(data)


def peek_header(frame: bytes) -> tuple[int, int, bytes, bytes, bool] | None:
    """(cra, originator_counter, originator, recipient, final) from a GBCS frame's header, or None.

    Reads only fixed offsets (DF grouping header, inside a DD MAC header or not; DD 09 GBT routing
    header), never raises. `final` is False for a GBT block other than the last one. The CHF and
    the WAN bridge route every frame by it without decoding; wherever `decode` accepts a frame the
    two agree (property-tested).
    """
    try:
        n = len(frame)
        tag = frame[0]
        if tag == 0xDF:
            s = 0
        elif tag == 0xDD:
            if frame[1] == 0x09:  # GBT routing header
                if n < 36:
                    return None
                final = True
                first = frame[34]
                pos = 35 if first < 0x80 else 35 + (first & 0x7F)
                if pos + 6 < n and frame[pos + 5] == 0xE0:
                    final = bool(frame[pos + 6] & 0x80)
                return frame[2], int.from_bytes(frame[3:11], "big"), frame[12:20], frame[21:29], final
            first = frame[7]
            s = 8 + 5 if first < 0x80 else 8 + (first & 0x7F) + 5
        else:
            return None
        if n < s + 29 or frame[s] != 0xDF:
            return None
        return frame[s + 2], int.from_bytes(frame[s + 3 : s + 11], "big"), frame[s + 12 : s + 20], frame[s + 21 : s + 29], True
    except IndexError:
        return None


def decode_message(data: bytes) -> Message:
    """Decode a whole GBCS message; raises DecodeError naming the offset and field."""
    return _decode_message(data, True)  # type: ignore[return-value]


def check_message(data: bytes) -> None:
    """Raise DecodeError wherever `decode_message` would, building nothing: the structural check
    of a router that passes the message on undecoded (the CHF, for a HAN device's command)."""
    _decode_message(data, False)


def _decode_message(data: bytes, build: bool) -> Message | None:
    data = bytes(data)
    n = len(data)
    if n == 0:
        raise DecodeError("empty input", 0, "tag")
    tag = data[0]
    if tag == GENERAL_CIPHERING:
        if data[:7] != _MAC_PREFIX:
            if n >= 2 and data[1] == 0x09:
                raise DecodeError("GBT block, not a whole message", 1, "mac_header.transaction_id")
            bad = next((i for i in range(1, min(7, n)) if data[i] != 0), min(7, n))
            raise DecodeError("MAC header must carry six empty fields", bad, "mac_header")
        length, pos = read_length(data, 7, n, "mac_header.length")
        if pos + length != n:
            raise DecodeError(f"MAC header length {length} does not match {n - pos} bytes that follow", 7, "mac_header.length")
        if data[pos : pos + 5] != SECURITY_HEADER_MAC:
            raise DecodeError("security header must be 11 00000000", pos, "mac_header.security_header")
        start = pos + 5
        end = n - MAC_LENGTH
        if end <= start:
            raise DecodeError("truncated", start, "general_signing")
        msg = _decode_general_signing(data, start, end, True, build)
        if msg is not None:
            _set_mac(msg, data[end:])
        return msg
    if tag == GENERAL_SIGNING:
        return _decode_general_signing(data, 0, n, False, build)
    raise DecodeError(f"unknown frame tag 0x{tag:02X} (expected DD or DF)", 0, "tag")


def _decode_general_signing(data: bytes, start: int, end: int, in_mac: bool, build: bool = True) -> Message | None:
    # Fixed part: DF 09 CRA ctr(8) 08 orig(8) 08 recip(8) = 30 bytes
    if data[start] != GENERAL_SIGNING:
        raise DecodeError(f"expected General-Signing tag DF, got 0x{data[start]:02X}", start, "general_signing.tag")
    if end - start < 31:
        raise DecodeError("truncated", start, "general_signing")
    if data[start + 1] != 0x09:
        raise DecodeError("transaction-id length must be 9", start + 1, "transaction_id")
    cra = _CRA.get(data[start + 2])
    if cra is None:
        raise DecodeError(f"CRA flag must be 1, 2 or 3, got {data[start + 2]}", start + 2, "cra")
    counter = int.from_bytes(data[start + 3 : start + 11], "big")
    if data[start + 11] != 8:
        raise DecodeError("originator system title length must be 8", start + 11, "originator")
    originator = data[start + 12 : start + 20]
    if data[start + 20] != 8:
        raise DecodeError("recipient system title length must be 8", start + 20, "recipient")
    recipient = data[start + 21 : start + 29]
    pos = start + 29
    dt_len = data[pos]
    if dt_len == 0:
        date_time = None
        pos += 1
    elif dt_len == 12:
        date_time, pos = take(data, pos + 1, 12, "date_time")
    else:
        raise DecodeError(f"date-time length must be 0 or 12, got {dt_len}", pos, "date_time")
    if pos >= end:
        raise DecodeError("truncated", pos, "other_information")
    other_len, p2 = read_length(data, pos, len(data), "other_information.length")
    if other_len < 2:
        raise DecodeError("other-information must hold the message code", pos, "other_information.length")
    other, pos = take(data, p2, other_len, "other_information")
    if pos > end:
        raise DecodeError("truncated", p2, "other_information")
    message_code = (other[0] << 8) | other[1]
    rp_id = rp_ctr = orig_ctr = cert = None
    if other_len > 2:
        rp_id, rp_ctr, orig_ctr, cert = _split_other_information(other, p2)
    if pos >= end:
        raise DecodeError("truncated", pos, "content.length")
    content_len, p3 = read_length(data, pos, len(data), "content.length")
    content, pos = take(data, p3, content_len, "content")
    if pos > end:
        raise DecodeError("content runs past the end of the General-Signing APDU", p3, "content")
    # Signature field
    if pos == end:
        if in_mac:
            raise DecodeError("signature field missing inside MAC header", pos, "signature")
        signature = None
    else:
        sig_len = data[pos]
        if sig_len == 0:
            signature = b""
            pos += 1
        elif sig_len == SIGNATURE_LENGTH:
            signature, pos = take(data, pos + 1, SIGNATURE_LENGTH, "signature")
        else:
            raise DecodeError(f"signature length must be 0 or 64, got {sig_len}", pos, "signature.length")
        if pos != end:
            raise DecodeError(f"{end - pos} unexpected trailing bytes", pos, "trailer")
    if not build:
        return None
    msg = Message(cra, counter, originator, recipient, message_code, content, date_time, rp_id, rp_ctr, orig_ctr,
                  cert, signature)
    _set_apdu(msg, data[start:end])
    return msg


def _split_other_information(other: bytes, base: int):
    n = len(other)
    if n < 10:
        raise DecodeError(f"other-information length {n}: expected 2, 10, 18, 26 or more", base, "other_information")
    rp_id = other[2:10]
    if n == 10:
        return rp_id, None, None, None
    if n < 18:
        raise DecodeError(f"other-information length {n}: expected 2, 10, 18, 26 or more", base, "other_information")
    rp_ctr = int.from_bytes(other[10:18], "big")
    if n == 18:
        return rp_id, rp_ctr, None, None
    if n == 26:
        return rp_id, rp_ctr, int.from_bytes(other[18:26], "big"), None
    # Longer: a DER KA certificate (URP variants), optionally after a supplementary originator counter.
    if _is_der_sequence(other, 18):
        return rp_id, rp_ctr, None, other[18:]
    if n > 26 and _is_der_sequence(other, 26):
        return rp_id, rp_ctr, int.from_bytes(other[18:26], "big"), other[26:]
    raise DecodeError("other-information extension is neither a counter nor a DER certificate", base + 18, "other_information.certificate")


def _is_der_sequence(buf: bytes, pos: int) -> bool:
    if pos >= len(buf) or buf[pos] != 0x30:
        return False
    try:
        length, p = read_length(buf, pos + 1)
    except DecodeError:
        return False
    return p + length == len(buf)


# --------------------------------------------------------------------------------------------
# GBT: routing header + General Block Transfer (FACTS.md 1.9)
# --------------------------------------------------------------------------------------------

GBT_LAST_BLOCK = 0x80
GBT_STREAMING = 0x40


@frozen_dataclass
class GbtBlock:
    """One block of a segmented message: routing header fields + GBT header + block data.

    Layout [S WS packet-gbcs.c]: DD ‖ 09 CRA ctr ‖ 08 orig ‖ 08 recip ‖ 00 (date-time) ‖
    02 message-code ‖ 00 (key-info) ‖ len ‖ 11 00000000 ‖ E0 ‖ block-control ‖ block-number(2) ‖
    block-number-ack(2) ‖ len ‖ data.  Block numbers start at 1; the blocks' data concatenated
    is the whole GBCS message.
    """

    cra: CRA
    originator_counter: int
    originator: bytes
    recipient: bytes
    message_code: int
    block_number: int
    data: bytes
    last: bool = False
    streaming: bool = False
    window: int = 1
    block_number_ack: int = 0
    security_control: int = 0x11

    def encode(self) -> bytes:
        if not 0 <= self.window < 64:
            raise EncodeError("window must be 0..63")
        control = (GBT_LAST_BLOCK if self.last else 0) | (GBT_STREAMING if self.streaming else 0) | self.window
        gbt = (
            bytes((GBT_TAG, control))
            + self.block_number.to_bytes(2, "big")
            + self.block_number_ack.to_bytes(2, "big")
            + encode_length(len(self.data))
            + self.data
        )
        inner = bytes((self.security_control,)) + b"\x00\x00\x00\x00" + gbt
        return (
            b"\xdd\x09"
            + bytes((int(self.cra),))
            + self.originator_counter.to_bytes(8, "big")
            + b"\x08" + self.originator
            + b"\x08" + self.recipient
            + b"\x00\x02" + self.message_code.to_bytes(2, "big")
            + b"\x00"
            + encode_length(len(inner))
            + inner
        )

    def tree(self) -> Node:
        return Node(
            "GBT block",
            b"",
            f"block {self.block_number}{' (last)' if self.last else ''}",
            (
                Node("cra", bytes((int(self.cra),)), self.cra.name.lower()),
                Node("originator_counter", self.originator_counter.to_bytes(8, "big"), str(self.originator_counter)),
                Node("originator", self.originator, eui_hex(self.originator)),
                Node("recipient", self.recipient, eui_hex(self.recipient)),
                Node("message_code", self.message_code.to_bytes(2, "big"), f"{self.message_code:04X}"),
                Node("block_number", self.block_number.to_bytes(2, "big"), str(self.block_number)),
                Node("block_number_ack", self.block_number_ack.to_bytes(2, "big"), str(self.block_number_ack)),
                Node("data", self.data, f"{len(self.data)} bytes"),
            ),
        )


def decode_gbt_block(data: bytes) -> GbtBlock:
    data = bytes(data)
    if len(data) < 2 or data[0] != GENERAL_CIPHERING or data[1] != 0x09:
        raise DecodeError("not a GBT routing header (expected DD 09)", 0, "routing_header")
    if len(data) < 36:
        raise DecodeError("truncated", len(data), "routing_header")
    cra = _CRA.get(data[2])
    if cra is None:
        raise DecodeError(f"CRA flag must be 1, 2 or 3, got {data[2]}", 2, "routing_header.cra")
    counter = int.from_bytes(data[3:11], "big")
    if data[11] != 8:
        raise DecodeError("originator length must be 8", 11, "routing_header.originator")
    if data[20] != 8:
        raise DecodeError("recipient length must be 8", 20, "routing_header.recipient")
    if data[29] != 0:
        raise DecodeError("routing header date-time must be absent", 29, "routing_header.date_time")
    if data[30] != 2:
        raise DecodeError("routing header other-information must be the message code", 30, "routing_header.other_information")
    code = int.from_bytes(data[31:33], "big")
    if data[33] != 0:
        raise DecodeError("routing header key-info must be absent", 33, "routing_header.key_info")
    length, pos = read_length(data, 34, what="routing_header.length")
    if pos + length != len(data):
        raise DecodeError("routing header length does not match the bytes that follow", 34, "routing_header.length")
    sc = data[pos]
    if data[pos + 1 : pos + 5] != b"\x00\x00\x00\x00":
        raise DecodeError("invocation counter must be 0", pos + 1, "routing_header.invocation_counter")
    pos += 5
    if pos + 6 > len(data) or data[pos] != GBT_TAG:
        raise DecodeError("expected GBT tag E0", pos, "gbt.tag")
    control = data[pos + 1]
    number = int.from_bytes(data[pos + 2 : pos + 4], "big")
    ack = int.from_bytes(data[pos + 4 : pos + 6], "big")
    dlen, p = read_length(data, pos + 6, what="gbt.length")
    if p + dlen != len(data):
        raise DecodeError("GBT block length does not match the bytes that follow", pos + 6, "gbt.length")
    return GbtBlock(
        cra=cra,
        originator_counter=counter,
        originator=data[12:20],
        recipient=data[21:29],
        message_code=code,
        block_number=number,
        data=data[p:],
        last=bool(control & GBT_LAST_BLOCK),
        streaming=bool(control & GBT_STREAMING),
        window=control & 0x3F,
        block_number_ack=ack,
        security_control=sc,
    )


def segment(message: bytes, block_size: int) -> list[GbtBlock]:
    """Split an encoded GBCS message into GBT blocks of at most `block_size` data bytes."""
    if block_size <= 0:
        raise ValueError("block_size must be positive")
    m = decode_message(message)
    pieces = [message[i : i + block_size] for i in range(0, len(message), block_size)]
    return [
        GbtBlock(
            cra=m.cra,
            originator_counter=m.originator_counter,
            originator=m.originator,
            recipient=m.recipient,
            message_code=m.message_code,
            block_number=i + 1,
            data=piece,
            last=i == len(pieces) - 1,
        )
        for i, piece in enumerate(pieces)
    ]


class Reassembler:
    """Collects GBT blocks (in any order, duplicates ignored) and yields whole messages.

    Partial messages are keyed by (sender, originator, originator counter): `sender` is whoever
    fed the block (e.g. a WAN connection; None when there is only one). Everything held is fed by
    unauthenticated input, so it is bounded in count and bytes, per sender and in total; when a
    bound would be passed the oldest partial messages (of that sender first) are dropped and
    counted in `overflows`. A partial older than `max_age` seconds (by the `now` the caller
    passes; sans-IO) is dropped and counted in `expired`. `discard(sender)` frees a sender's
    partials (a closed connection).
    """

    def __init__(
        self,
        max_partial: int = 32,
        max_blocks: int = 1024,
        *,
        max_bytes: int = 8 << 20,
        max_sender_partial: int = 8,
        max_sender_bytes: int = 1 << 20,
        max_age: float = 60.0,
    ) -> None:
        self.max_partial = max_partial
        self.max_blocks = max_blocks
        self.max_bytes = max_bytes
        self.max_sender_partial = max_sender_partial
        self.max_sender_bytes = max_sender_bytes
        self.max_age = max_age
        # key -> [blocks by number, last block number or 0, bytes held, first seen]
        self._partial: dict[tuple, list] = {}
        self._senders: dict[Any, list] = {}  # sender -> [partials, bytes]
        self._done: dict[tuple, None] = {}  # recently completed: late duplicates ignored
        self.bytes = 0
        self.overflows = 0
        self.expired = 0

    def add(self, block: GbtBlock, *, sender: Any = None, now: float | None = None) -> bytes | None:
        """Add one block; returns the whole message bytes once every block is present."""
        if block.block_number < 1 or block.block_number > self.max_blocks:
            raise DecodeError(f"block number {block.block_number} out of range", 0, "gbt.block_number")
        key = (sender, block.originator, block.originator_counter)
        if key in self._done:
            return None
        if now is not None and self._partial:
            self._expire(now)
        entry = self._partial.get(key)
        size = len(block.data)
        if entry is None:
            if size > self.max_sender_bytes or size > self.max_bytes:
                self.overflows += 1
                return None
            totals = self._senders.get(sender)
            if totals is None:
                totals = self._senders[sender] = [0, 0]
            while totals[0] >= self.max_sender_partial or totals[0] and totals[1] + size > self.max_sender_bytes:
                self._drop(self._oldest(sender))
            while len(self._partial) >= self.max_partial or self._partial and self.bytes + size > self.max_bytes:
                self._drop(next(iter(self._partial)))
            totals = self._senders.setdefault(sender, [0, 0])
            entry = self._partial[key] = [{}, 0, 0, now]
            totals[0] += 1
        blocks = entry[0]
        if block.block_number not in blocks:
            totals = self._senders[sender]
            if totals[1] + size > self.max_sender_bytes or self.bytes + size > self.max_bytes:
                self._drop(key)  # over a bound: the message growing goes, older ones keep their place
                return None
            blocks[block.block_number] = block
            entry[2] += size
            totals[1] += size
            self.bytes += size
        if block.last:
            entry[1] = block.block_number
        last = entry[1]
        if not last or len(blocks) < last or any(n not in blocks for n in range(1, last + 1)):
            return None
        self._remove(key)
        self._done[key] = None
        if len(self._done) > 4 * self.max_partial:
            self._done.pop(next(iter(self._done)))
        return b"".join(blocks[n].data for n in range(1, last + 1))

    def discard(self, sender: Any) -> None:
        """Free every partial message of `sender`."""
        for key in [k for k in self._partial if k[0] == sender]:
            self._remove(key)
        self._senders.pop(sender, None)
        self._done = {k: None for k in self._done if k[0] != sender}

    @property
    def pending(self) -> int:
        return len(self._partial)

    def _oldest(self, sender: Any) -> tuple:
        return next(k for k in self._partial if k[0] == sender)

    def _expire(self, now: float) -> None:
        limit = now - self.max_age
        for key, entry in list(self._partial.items()):
            if entry[3] is not None and entry[3] < limit:
                self._remove(key)
                self.expired += 1
            else:
                break  # insertion order: the rest are younger

    def _drop(self, key: tuple) -> None:
        self._remove(key)
        self.overflows += 1

    def _remove(self, key: tuple) -> None:
        entry = self._partial.pop(key)
        self.bytes -= entry[2]
        totals = self._senders.get(key[0])
        if totals is not None:
            totals[0] -= 1
            totals[1] -= entry[2]
            if totals[0] <= 0:
                del self._senders[key[0]]


# --------------------------------------------------------------------------------------------
# Annotated tree (`gbhub decode --tree`)
# --------------------------------------------------------------------------------------------


def _tree(m: Message) -> Node:
    ctr = m.originator_counter.to_bytes(8, "big")
    header = [
        Node("cra", bytes((int(m.cra),)), m.cra.name.lower()),
        Node("originator_counter", ctr, str(m.originator_counter)),
        Node("originator", m.originator, eui_hex(m.originator)),
        Node("recipient", m.recipient, eui_hex(m.recipient)),
        Node("date_time", m.date_time or b"", "absent" if m.date_time is None else _datetime_text(m.date_time)),
        Node("message_code", m.message_code.to_bytes(2, "big"), f"0x{m.message_code:04X}"),
    ]
    if m.supplementary_remote_party_id is not None:
        header.append(Node("supplementary_remote_party_id", m.supplementary_remote_party_id, eui_hex(m.supplementary_remote_party_id)))
    if m.supplementary_remote_party_counter is not None:
        header.append(Node("supplementary_remote_party_counter", m.supplementary_remote_party_counter.to_bytes(8, "big"), str(m.supplementary_remote_party_counter)))
    if m.supplementary_originator_counter is not None:
        header.append(Node("supplementary_originator_counter", m.supplementary_originator_counter.to_bytes(8, "big"), str(m.supplementary_originator_counter)))
    if m.remote_party_ka_certificate is not None:
        header.append(Node("remote_party_ka_certificate", m.remote_party_ka_certificate, f"{len(m.remote_party_ka_certificate)}-byte DER certificate"))
    parts = []
    if m.mac is not None:
        parts.append(Node("mac_header", _MAC_PREFIX + SECURITY_HEADER_MAC, "General-Ciphering, security control 0x11 (authenticated only)"))
    parts.append(Node("general_signing", b"\xdf", "grouping header", tuple(header)))
    parts.append(Node("content", m.content, f"{len(m.content)} bytes"))
    if m.signature is None:
        parts.append(Node("signature", b"", "absent"))
    elif not m.signature:
        parts.append(Node("signature", b"\x00", "null"))
    else:
        parts.append(Node("signature", b"\x40" + m.signature, "ECDSA P-256 r||s"))
    if m.mac is not None:
        parts.append(Node("mac", m.mac, "GMAC, 12 bytes"))
    return Node("GBCS message", b"", m.frame, tuple(parts))


def _datetime_text(raw: bytes) -> str:
    return DlmsDateTime.from_bytes(raw).text()
