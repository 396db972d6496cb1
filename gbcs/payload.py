"""Which decoder a message's content goes to (FRAMING.md §7): first by message code for the ASN.1
use cases, then by the first content bytes (01 09 GBZ; D9/DA/0F DLMS), else kept raw."""
from __future__ import annotations
from typing import Callable

from .codec import DecodeError, Node, frozen_dataclass
from .dlms import decode_apdu
from .frame import Message

Decrypt = Callable[[bytes], bytes]


@frozen_dataclass
class RawPayload:
    """Content no decoder claims: kept as bytes, never an error."""

    data: bytes

    def encode(self) -> bytes:
        return self.data

    def tree(self) -> Node:
        return Node("payload", self.data, f"{len(self.data)} bytes, undecoded")

    def to_json(self) -> dict:
        return {"type": "RawPayload", "hex": self.data.hex().upper()}


_asn1_codes: frozenset | None = None  # loaded on first use (gbcs.asn1 need not be imported for DLMS or GBZ)


def payload_kind(message: Message) -> str:
    """'asn1', 'gbz', 'dlms' or 'raw', without decoding."""
    global _asn1_codes
    if _asn1_codes is None:
        from .asn1 import ASN1_MESSAGE_CODES

        _asn1_codes = frozenset(ASN1_MESSAGE_CODES)
    if message.message_code in _asn1_codes:
        return "asn1"
    head = message.content[:2]
    if head == b"\x01\x09":
        return "gbz"
    if head[:1] in (b"\xd9", b"\xda", b"\x0f"):
        return "dlms"
    return "raw"


def decode_payload(message: Message, decrypt: Decrypt | None = None):
    """Decode `message.content`. Raises DecodeError with offsets relative to the content."""
    kind = payload_kind(message)
    content = message.content
    if kind == "asn1":
        from .asn1 import decode_asn1

        return decode_asn1(content, message_code=message.message_code, cra=int(message.cra))
    if kind == "gbz":
        from .gbz import decode_gbz

        return decode_gbz(content, cra=int(message.cra), message_code=message.message_code, decrypt=decrypt)
    if kind == "dlms":
        return decode_apdu(content, message_code=message.message_code, decrypt=decrypt)
    return RawPayload(content)


__all__ = ["DecodeError", "RawPayload", "decode_payload", "payload_kind"]
