"""What a lab engineer asks of a captured frame: what is it, and is it genuine?

`analyse(data, keystore, acb)` decodes a frame, picks the key pair its MAC and signature must
verify with, checks them, decrypts encrypted payload parts where the keystore allows, and decodes
the payload. The result renders as the JSON and the annotated tree of `gbhub decode`.

Which keys (FRAMING.md §4):
- MAC of a command: ECDH(ACB KA, recipient KA) — the ACB MACs every DCC-delivered command, even
  when the header's originator is a supplier — unless the originator is itself a device
  (device-to-device PPMID→GSME commands), then ECDH(originator KA, recipient KA).
- MAC of a response or alert: ECDH(originator device KA, recipient KA).
- Signature: the originator's DS public key.
- Encrypted parts: ECDH(originator KA, supplementary remote party or recipient KA), mode 04.
ECDH is symmetric, so either side's private key will do.
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field

from . import catalogue
from .codec import DecodeError, Node, eui_hex, jsonable
from .frame import CRA, GbtBlock, Message, decode
from .keystore import Keystore
from .payload import decode_payload, payload_kind
from .security import SecretCache, SecurityError, check_mac, check_signature, decrypt_part, encryption_key

_default_secrets = SecretCache()
_CRA_NAMES = [None] + [CRA(i).name.lower() for i in (1, 2, 3)]  # by flag (an IntEnum indexes as its int)
_CODE_NAMES: dict[int, tuple[str, str | None, str | None]] = {}  # message code -> JSON code, use case, its name


@dataclass
class Analysis:
    """A decoded frame with its verdicts. `payload_error` is set when the frame parsed but its
    content did not (offset relative to the whole input)."""

    raw: bytes
    message: Message | None = None
    block: GbtBlock | None = None
    mac: str = "absent"  # valid / invalid / unknown / absent
    signature: str = "absent"  # valid / invalid / unverified / absent / empty
    encrypted: str = "none"  # none / decrypted / not_decrypted
    payload: object | None = None
    payload_error: DecodeError | None = None
    content_offset: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def use_case(self):
        code = self.message.message_code if self.message else self.block.message_code if self.block else None
        return catalogue.by_message_code(code) if code is not None else None

    def to_json(self) -> dict:
        if self.block is not None:
            b = self.block
            uc = self.use_case
            return {
                "frame": "gbt-block",
                "cra": _CRA_NAMES[b.cra],
                "message_code": f"{b.message_code:04X}",
                "use_case": uc.use_case if uc else None,
                "originator_counter": b.originator_counter,
                "originator": eui_hex(b.originator),
                "recipient": eui_hex(b.recipient),
                "block_number": b.block_number,
                "last_block": b.last,
                "block_data": b.data.hex().upper(),
            }
        m = self.message
        assert m is not None
        code = m.message_code
        names = _CODE_NAMES.get(code)
        if names is None:
            uc = catalogue.by_message_code(code)
            names = (f"{code:04X}", uc.use_case if uc else None, uc.name if uc else None)
            if len(_CODE_NAMES) < 0x10000:  # (a message code is 2 bytes)
                _CODE_NAMES[code] = names
        out = {
            "frame": m.frame,
            "cra": _CRA_NAMES[m.cra],
            "message_code": names[0],
            "use_case": names[1],
            "use_case_name": names[2],
            "originator_counter": m.originator_counter,
            "originator": eui_hex(m.originator),
            "recipient": eui_hex(m.recipient),
            "date_time": dlms_datetime_iso(m.date_time),
            "mac": self.mac,
            "signature": self.signature,
            "encrypted": self.encrypted,
        }
        if m.supplementary_remote_party_id is not None:
            out["supplementary_remote_party_id"] = eui_hex(m.supplementary_remote_party_id)
        if m.supplementary_remote_party_counter is not None:
            out["supplementary_remote_party_counter"] = m.supplementary_remote_party_counter
        if m.supplementary_originator_counter is not None:
            out["supplementary_originator_counter"] = m.supplementary_originator_counter
        if m.remote_party_ka_certificate is not None:
            out["remote_party_ka_certificate"] = m.remote_party_ka_certificate.hex().upper()
        out["payload_kind"] = payload_kind(m)
        if self.payload_error is not None:
            out["payload"] = None
            out["payload_error"] = str(self.payload_error)
        else:
            out["payload"] = jsonable(self.payload)
        if self.notes:
            out["notes"] = list(self.notes)
        return out

    def tree(self) -> Node:
        if self.block is not None:
            return self.block.tree()
        m = self.message
        assert m is not None
        top = m.tree()
        uc = self.use_case
        children = list(top.children)
        for i, child in enumerate(children):
            if child.name == "content":
                if self.payload is not None and hasattr(self.payload, "tree"):
                    sub = self.payload.tree()
                    children[i] = Node("content", m.content, payload_kind(m), (sub,))
                elif self.payload_error is not None:
                    children[i] = Node("content", m.content, f"undecodable: {self.payload_error}")
            elif child.name == "signature" and m.signature:
                children[i] = Node(child.name, child.raw, f"{child.meaning}: {self.signature}")
            elif child.name == "mac":
                children[i] = Node(child.name, child.raw, f"{child.meaning}: {self.mac}")
        meaning = f"{m.frame}; {uc.use_case + ' ' + uc.name if uc else 'unknown use case'}"
        return Node(top.name, top.raw, meaning, tuple(children))


def dlms_datetime_iso(raw: bytes | None) -> str | None:
    """12-byte DLMS date-time as ISO text ('?' for unspecified fields), None when absent."""
    if raw is None:
        return None
    year = int.from_bytes(raw[0:2], "big")
    fields = [year, raw[2], raw[3], raw[5], raw[6], raw[7]]
    if all(v not in (0xFF, 0xFFFF) for v in fields):
        try:
            dev = int.from_bytes(raw[9:11], "big", signed=True)
            t = _dt.datetime(year, raw[2], raw[3], raw[5], raw[6], raw[7])
            if dev != -0x8000:
                # DLMS deviation: minutes local time is behind UTC
                t = t.replace(tzinfo=_dt.timezone(_dt.timedelta(minutes=-dev)))
                return t.isoformat()
            return t.isoformat() + "Z"
        except ValueError:
            pass
    names = ["year", "month", "day", "hour", "minute", "second"]
    parts = {n: ("?" if v in (0xFF, 0xFFFF) else v) for n, v in zip(names, fields)}
    return "{year}-{month}-{day}T{hour}:{minute}:{second}".format(**parts)


def _secret(keystore: Keystore, a: bytes, b: bytes, secrets: SecretCache) -> bytes | None:
    pa, pb = keystore.private_key(a, "ka"), keystore.private_key(b, "ka")
    if pa is not None:
        pub = keystore.public_key(b, "ka")
        if pub is not None:
            return secrets.secret(pa, pub)
    if pb is not None:
        pub = keystore.public_key(a, "ka")
        if pub is not None:
            return secrets.secret(pb, pub)
    return None


def mac_parties(message: Message, keystore: Keystore | None, acb: bytes | None) -> tuple[bytes, bytes] | None:
    """The two parties whose KA keys make the MAC key, or None if unknown (no ACB given)."""
    if message.cra == CRA.COMMAND and not (keystore is not None and keystore.is_device(message.originator)):
        return (acb, message.recipient) if acb is not None else None
    return message.originator, message.recipient


def analyse(
    data: bytes,
    keystore: Keystore | None = None,
    acb: bytes | None = None,
    secrets: SecretCache | None = None,
    decode_content: bool = True,
) -> Analysis:
    """Decode and check one frame. Raises DecodeError only when the frame itself is malformed."""
    data = bytes(data)
    secrets = secrets if secrets is not None else _default_secrets  # (an empty cache is falsy)
    frame = decode(data)
    if isinstance(frame, GbtBlock):
        return Analysis(raw=data, block=frame, mac="absent", signature="absent")
    m = frame
    a = Analysis(raw=data, message=m)
    a.content_offset = _content_offset(data, m)
    # MAC
    if m.mac is not None:
        parties = mac_parties(m, keystore, acb)
        secret = _secret(keystore, *parties, secrets) if (parties and keystore is not None) else None
        if secret is None:
            a.mac = "unknown"
        else:
            a.mac = "valid" if check_mac(secret, m) else "invalid"
    # Signature
    if m.signature is None:
        a.signature = "absent"
    elif not m.signature:
        a.signature = "empty"
    else:
        pub = keystore.public_key(m.originator, "ds") if keystore is not None else None
        if pub is None:
            a.signature = "unverified"
        else:
            a.signature = "valid" if check_signature(pub, m) else "invalid"
    if not decode_content:
        return a
    # Payload, decrypting where we can
    attempts = {"tried": 0, "ok": 0}
    key_holder: dict[str, bytes | None] = {}

    def decrypt(block: bytes) -> bytes:
        attempts["tried"] += 1
        if "key" not in key_holder:
            party = m.supplementary_remote_party_id or m.recipient
            secret = _secret(keystore, m.originator, party, secrets) if keystore is not None else None
            key_holder["key"] = encryption_key(secret, m) if secret is not None else None
        key = key_holder["key"]
        if key is None:
            raise SecurityError("no key to decrypt this part")
        plain = decrypt_part(key, m.originator, block)
        attempts["ok"] += 1
        return plain

    try:
        try:
            a.payload = decode_payload(m, decrypt=decrypt)
        except SecurityError as exc:
            a.notes.append(f"decryption failed: {exc}")
            a.payload = decode_payload(m, decrypt=None)
    except DecodeError as exc:
        a.payload_error = exc.shifted(a.content_offset, "content")
    if attempts["tried"]:
        a.encrypted = "decrypted" if attempts["ok"] == attempts["tried"] else "not_decrypted"
    elif a.payload is not None and _has_encrypted_parts(a.payload):
        a.encrypted = "not_decrypted"
    return a


def _has_encrypted_parts(payload) -> bool:
    flag = getattr(payload, "encrypted", None)
    if isinstance(flag, bool):
        return flag
    return False


def _content_offset(data: bytes, m: Message) -> int:
    """Byte offset of the content within the whole frame (for error messages)."""
    apdu = m.general_signing()
    start = data.find(apdu) if m.mac is not None else 0
    tail = 0 if m.signature is None else 1 + len(m.signature)
    return start + len(apdu) - tail - len(m.content)


__all__ = ["Analysis", "analyse", "dlms_datetime_iso", "mac_parties"]
