"""GBCS "GBZ" payloads: ZCL commands wrapped in GBZ components, used by the GSME/GPF use cases
(GCSxx, CS01b, CS10a, CS11, PCSxx) and by GBZ alerts [FACTS 1.10, 1.11; FRAMING 7].

    payload    01 09 ‖ component count ‖ component…
    component  control ‖ cluster id (2, BE) ‖ length (2, BE) ‖ [from date-time (4, BE)]
               ‖ [additional header control ‖ frame counter]            (encrypted only)
               ‖ ZCL header ‖ ZCL payload  |  ZCL header ‖ ciphered length (2, BE) ‖ 31 00000000 ‖ ciphertext ‖ tag
    alert      01 09 ‖ component count ‖ alert code (2, BE) ‖ UTC time (4, BE) ‖ use-case-specific data

The GBZ framing is big-endian; the ZCL inside is little-endian (`gbcs.zcl`).  Encrypted parts
are kept as received, so a decoded payload always re-encodes byte-exactly whether or not it was
decrypted; decryption and encryption are callbacks so this module never sees keys.
"""
from __future__ import annotations

from dataclasses import field, fields, replace
from typing import Callable, Union

from .catalogue import alert_label, alert_name
from .codec import DecodeError, EncodeError, Node, encode_length, frozen_dataclass, jsonable, read_length, slot_setters
from .frame import CRA
from .security import SecurityError, decrypt_part, encrypt_part
from .zcl import (
    ClusterCommand,
    Direction,
    FrameType,
    RawPayload,
    ZclFrame,
    ZclHeader,
    ZclPayload,
    cluster_name,
    command_name,
    decode_payload,
    utc_text,
)

PROFILE_ID = b"\x01\x09"  # ZigBee Smart Energy
CONTROL_LAST = 0x01
CONTROL_ENCRYPTED = 0x02
CONTROL_FROM_DATE_TIME = 0x10
_CONTROL_KNOWN = CONTROL_LAST | CONTROL_ENCRYPTED | CONTROL_FROM_DATE_TIME
_CONTROL_RESERVED = ~_CONTROL_KNOWN & 0xFF
ENCRYPTED_OVERHEAD = 5 + 12  # 31 00000000 security header + 12-byte tag
MAX_COMPONENTS = 255

# Message codes whose alert bodies are not plain components [S GP parser.ts/zigbee.ts; O RTDS]
GCS53_ALERT = 0x008B  # push of a (encrypted) Publish Snapshot component
FUTURE_DATED_ALERT_GBZ = 0x00CD
FIRMWARE_DISTRIBUTION_RECEIPT_ALERT_GBZ = 0x00CF
METER_INTEGRITY_ALERT_GBZ = 0x00F2
FUTURE_DATED_LENGTH = 0x0E  # bytes after the length byte: message code, counter, cluster, fc, command

Decrypt = Callable[[bytes], bytes]
Encrypt = Callable[[bytes], bytes]


def decryptor(key: bytes, originator: bytes) -> Decrypt:
    """A `decrypt` callback for `decode_gbz`: key from `security.encryption_key`, originator =
    the message's originator system title (the IV)."""
    return lambda block: decrypt_part(key, originator, block)


def encryptor(key: bytes, originator: bytes) -> Encrypt:
    """An `encrypt` callback for `GbzComponent.build_encrypted`."""
    return lambda plaintext: encrypt_part(key, originator, plaintext)


def is_gbz(content: bytes) -> bool:
    return content[:2] == PROFILE_ID


# --------------------------------------------------------------------------------------------
# Components
# --------------------------------------------------------------------------------------------


@frozen_dataclass
class GbzComponent:
    """One GBZ component.

    `payload` is the decoded ZCL payload; for an encrypted component it is the decrypted payload,
    or None when it was not decrypted.  `ciphered` (encrypted components only) is the block as
    carried: `31 00000000 ‖ ciphertext ‖ 12-byte tag`; it is what `encode()` writes."""

    cluster_id: int
    header: ZclHeader
    payload: ZclPayload | None = None
    ciphered: bytes | None = None
    from_date_time: int | None = None  # UTC seconds since 2000 (big-endian in GBZ)
    last: bool = False
    additional_header_control: int = 0
    additional_header_frame_counter: int = 0
    control_reserved: int = 0  # control bits other than 0x01/0x02/0x10, kept for exactness
    plaintext: bytes | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if type(self.cluster_id) is not int:
            object.__setattr__(self, "cluster_id", int(self.cluster_id))

    @property
    def encrypted(self) -> bool:
        return self.ciphered is not None

    @property
    def decrypted(self) -> bool:
        return self.ciphered is not None and self.payload is not None

    @property
    def control(self) -> int:
        return (
            (CONTROL_LAST if self.last else 0)
            | (CONTROL_ENCRYPTED if self.ciphered is not None else 0)
            | (CONTROL_FROM_DATE_TIME if self.from_date_time is not None else 0)
            | self.control_reserved
        )

    @property
    def frame(self) -> ZclFrame | None:
        """The (plaintext) ZCL frame, None for an encrypted component not decrypted."""
        return None if self.payload is None else ZclFrame(self.header, self.payload)

    @property
    def command_name(self) -> str:
        h = self.header
        return command_name(self.cluster_id, h.frame_type, h.direction, h.command_id, h.manufacturer_code)

    def _body(self) -> bytes:
        parts = []
        if self.from_date_time is not None:
            parts.append(_u32be(self.from_date_time, "from_date_time"))
        if self.ciphered is not None:
            parts.append(_u8(self.additional_header_control, "additional_header_control"))
            parts.append(_u8(self.additional_header_frame_counter, "additional_header_frame_counter"))
        parts.append(self.header.encode())
        if self.ciphered is not None:
            if len(self.ciphered) < ENCRYPTED_OVERHEAD:
                raise EncodeError("ciphered part must hold the security header and the 12-byte tag")
            parts.append(_u16be(len(self.ciphered), "ciphered length"))
            parts.append(self.ciphered)
        else:
            if self.payload is None:
                raise EncodeError("a plaintext component needs a payload")
            parts.append(self.payload.encode())
        return b"".join(parts)

    def encode(self) -> bytes:
        if self.control_reserved & _CONTROL_KNOWN or not 0 <= self.control_reserved <= 0xFF:
            raise EncodeError("control_reserved must not overlap the last/encrypted/from-date-time bits")
        body = self._body()
        return bytes((self.control,)) + _u16be(self.cluster_id, "cluster_id") + _u16be(len(body), "component length") + body

    def to_json(self) -> dict:
        # What codec.jsonable's dataclass rule gives, written out (`gbhub decode --batch` speed).
        payload, ciphered, plaintext = self.payload, self.ciphered, self.plaintext
        return {
            "type": "GbzComponent",
            "cluster_id": self.cluster_id,
            "header": self.header.to_json(),
            "payload": None if payload is None else jsonable(payload),
            "ciphered": None if ciphered is None else ciphered.hex().upper(),
            "from_date_time": self.from_date_time,
            "last": self.last,
            "additional_header_control": self.additional_header_control,
            "additional_header_frame_counter": self.additional_header_frame_counter,
            "control_reserved": self.control_reserved,
            "plaintext": None if plaintext is None else plaintext.hex().upper(),
        }

    # -- builders ------------------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        cluster_id: int,
        payload: ZclPayload,
        *,
        sequence: int = 0,
        direction: Direction | int | None = None,
        disable_default_response: bool = False,
        command_id: int | None = None,
        frame_type: FrameType | int | None = None,
        from_date_time: int | None = None,
        last: bool = False,
    ) -> "GbzComponent":
        """A plaintext component; header fields as in `ZclFrame.build`."""
        frame = ZclFrame.build(
            payload,
            sequence=sequence,
            direction=direction,
            disable_default_response=disable_default_response,
            command_id=command_id,
            frame_type=frame_type,
        )
        comp = cls(int(cluster_id), frame.header, payload, None, from_date_time, last)
        comp.encode()
        return comp

    @classmethod
    def build_encrypted(
        cls,
        cluster_id: int,
        payload: ZclPayload,
        encrypt: Encrypt,
        *,
        sequence: int = 0,
        direction: Direction | int | None = None,
        disable_default_response: bool = False,
        command_id: int | None = None,
        frame_type: FrameType | int | None = None,
        from_date_time: int | None = None,
        last: bool = False,
        additional_header_control: int = 0,
        additional_header_frame_counter: int = 0,
    ) -> "GbzComponent":
        """An encrypted component: `encrypt(plaintext ZCL payload)` must return the block
        `31 00000000 ‖ ciphertext ‖ tag` (see `encryptor`)."""
        frame = ZclFrame.build(
            payload,
            sequence=sequence,
            direction=direction,
            disable_default_response=disable_default_response,
            command_id=command_id,
            frame_type=frame_type,
        )
        plaintext = payload.encode()
        comp = cls(
            int(cluster_id),
            frame.header,
            payload,
            bytes(encrypt(plaintext)),
            from_date_time,
            last,
            additional_header_control,
            additional_header_frame_counter,
            plaintext=plaintext,
        )
        comp.encode()
        return comp

    # -- views ---------------------------------------------------------------------------------
    def tree(self, index: int | None = None) -> Node:
        body = self._body()
        flags = [name for bit, name in ((CONTROL_LAST, "last"), (CONTROL_ENCRYPTED, "encrypted"), (CONTROL_FROM_DATE_TIME, "from date-time")) if self.control & bit]
        if self.control_reserved:
            flags.append(f"reserved bits 0x{self.control_reserved:02X}")
        children = [
            Node("control", bytes((self.control,)), ", ".join(flags) or "none"),
            Node("cluster_id", self.cluster_id.to_bytes(2, "big"), cluster_name(self.cluster_id)),
            Node("length", len(body).to_bytes(2, "big"), str(len(body))),
        ]
        if self.from_date_time is not None:
            children.append(Node("from_date_time", self.from_date_time.to_bytes(4, "big"), utc_text(self.from_date_time)))
        if self.ciphered is not None:
            children.append(Node("additional_header_control", bytes((self.additional_header_control,)), f"0x{self.additional_header_control:02X}"))
            children.append(Node("additional_header_frame_counter", bytes((self.additional_header_frame_counter,)), str(self.additional_header_frame_counter)))
        children.append(self.header.tree(self.cluster_id))
        if self.ciphered is not None:
            c = self.ciphered
            children.append(Node("ciphered_length", len(c).to_bytes(2, "big"), str(len(c))))
            children.append(
                Node(
                    "ciphered",
                    c,
                    "AES-128-GCM (KDF mode 04)",
                    (
                        Node("security_header", c[:5], "security control 0x31, invocation counter"),
                        Node("ciphertext", c[5:-12], f"{len(c) - ENCRYPTED_OVERHEAD} bytes"),
                        Node("tag", c[-12:], "12-byte GCM tag"),
                    ),
                )
            )
            if self.payload is not None:
                children.append(Node("decrypted", b"", self.command_name, (self.payload.tree(self.cluster_id),)))
        elif self.payload is not None:
            children.append(self.payload.tree(self.cluster_id))
        name = "component" if index is None else f"component[{index}]"
        return Node(name, b"", f"{cluster_name(self.cluster_id)}: {self.command_name}", tuple(children))


def _u8(v: int, what: str) -> bytes:
    if not isinstance(v, int) or not 0 <= v <= 0xFF:
        raise EncodeError(f"{what} must be 0..255")
    return bytes((v,))


def _u16be(v: int, what: str) -> bytes:
    if not isinstance(v, int) or not 0 <= v <= 0xFFFF:
        raise EncodeError(f"{what} must be 0..0xFFFF")
    return v.to_bytes(2, "big")


def _u32be(v: int, what: str) -> bytes:
    if not isinstance(v, int) or not 0 <= v <= 0xFFFFFFFF:
        raise EncodeError(f"{what} must be 0..0xFFFFFFFF")
    return v.to_bytes(4, "big")


def _decode_component(data: bytes, pos: int, end: int, decrypt: Decrypt | None, strict: bool) -> tuple[GbzComponent, int]:
    if pos + 5 > end:
        raise DecodeError("truncated GBZ component header", pos, "component")
    control = data[pos]
    cluster_id = (data[pos + 1] << 8) | data[pos + 2]
    length = (data[pos + 3] << 8) | data[pos + 4]
    p = pos + 5
    stop = p + length
    if stop > end:
        raise DecodeError(f"component length {length} runs past the end ({end - p} bytes left)", pos + 3, "component.length")
    from_date_time = None
    if control & CONTROL_FROM_DATE_TIME:
        if p + 4 > stop:
            raise DecodeError("truncated from date-time", p, "component.from_date_time")
        from_date_time = int.from_bytes(data[p : p + 4], "big")
        p += 4
    encrypted = bool(control & CONTROL_ENCRYPTED)
    ahc = afc = 0
    if encrypted:
        if p + 2 > stop:
            raise DecodeError("truncated additional header", p, "component.additional_header")
        ahc, afc = data[p], data[p + 1]
        p += 2
    header, p = ZclHeader.decode(data, p, stop)
    ciphered = plaintext = None
    payload: ZclPayload | None
    if encrypted:
        if p + 2 > stop:
            raise DecodeError("truncated ciphered length", p, "component.ciphered_length")
        clen = (data[p] << 8) | data[p + 1]
        if p + 2 + clen != stop:
            raise DecodeError(f"ciphered length {clen} does not fill the component ({stop - p - 2} bytes)", p, "component.ciphered_length")
        if clen < ENCRYPTED_OVERHEAD:
            raise DecodeError(f"ciphered part of {clen} bytes cannot hold header and tag", p, "component.ciphered_length")
        ciphered = bytes(data[p + 2 : stop])
        payload = None
        if decrypt is not None:
            try:
                plaintext = bytes(decrypt(ciphered))
            except SecurityError:
                plaintext = None
            if plaintext is not None:
                try:
                    payload = decode_payload(header, cluster_id, plaintext, 0, len(plaintext), strict=strict)
                except DecodeError as exc:
                    raise DecodeError(f"decrypted payload: {exc.args[0]}", p + 2, "component.decrypted." + exc.field) from None
    else:
        payload = decode_payload(header, cluster_id, data, p, stop, strict=strict)
    comp = _new(GbzComponent)  # without the frozen-dataclass __init__: decode hot path
    _set_cluster_id(comp, cluster_id)
    _set_header(comp, header)
    _set_payload(comp, payload)
    _set_ciphered(comp, ciphered)
    _set_from_date_time(comp, from_date_time)
    _set_last(comp, bool(control & CONTROL_LAST))
    _set_ahc(comp, ahc)
    _set_afc(comp, afc)
    _set_control_reserved(comp, control & _CONTROL_RESERVED)
    _set_plaintext(comp, plaintext)
    return comp, stop


_new = object.__new__
# Setters in field order; adding a GbzComponent field breaks this unpacking at import.
(_set_cluster_id, _set_header, _set_payload, _set_ciphered, _set_from_date_time, _set_last, _set_ahc, _set_afc,
 _set_control_reserved, _set_plaintext) = slot_setters(GbzComponent, *(f.name for f in fields(GbzComponent)))


def _decode_components(data: bytes, pos: int, end: int, count: int, decrypt: Decrypt | None, strict: bool) -> tuple[tuple[GbzComponent, ...], int]:
    comps = []
    for _ in range(count):
        comp, pos = _decode_component(data, pos, end, decrypt, strict)
        comps.append(comp)
    return tuple(comps), pos


def _encryption_status(components: tuple[GbzComponent, ...]) -> str:
    enc = [c for c in components if c.encrypted]
    if not enc:
        return "none"
    return "decrypted" if all(c.payload is not None for c in enc) else "not_decrypted"


# --------------------------------------------------------------------------------------------
# Command / response payload
# --------------------------------------------------------------------------------------------


@frozen_dataclass
class GbzPayload:
    """A GBZ command or response: the profile id, a count and the components."""

    components: tuple[GbzComponent, ...]

    def encode(self) -> bytes:
        if len(self.components) > MAX_COMPONENTS:
            raise EncodeError("at most 255 GBZ components")
        return PROFILE_ID + bytes((len(self.components),)) + b"".join(c.encode() for c in self.components)

    @classmethod
    def build(cls, components, *, renumber: bool = False) -> "GbzPayload":
        """Components in order; the last-component flag is set on the final one only.  With
        `renumber`, ZCL sequence numbers become the component index (as GBCS devices do)."""
        comps = list(components)
        out = []
        for i, c in enumerate(comps):
            c = replace(c, last=i == len(comps) - 1)
            if renumber:
                c = replace(c, header=replace(c.header, sequence=i & 0xFF))
            out.append(c)
        payload = cls(tuple(out))
        payload.encode()
        return payload

    @property
    def encryption_status(self) -> str:
        """none / decrypted / not_decrypted (the `encrypted` verdict of gbcs.analyse)."""
        return _encryption_status(self.components)

    def to_json(self) -> dict:
        return {"type": "GbzPayload", "components": [c.to_json() if type(c) is GbzComponent else jsonable(c) for c in self.components]}

    def tree(self) -> Node:
        return Node(
            "GBZ payload",
            b"",
            f"{len(self.components)} components",
            (
                Node("profile_id", PROFILE_ID, "ZigBee Smart Energy (0x0109)"),
                Node("component_count", bytes((len(self.components),)), str(len(self.components))),
            )
            + tuple(c.tree(i) for i, c in enumerate(self.components)),
        )


# --------------------------------------------------------------------------------------------
# Alerts
# --------------------------------------------------------------------------------------------


@frozen_dataclass
class FutureDatedAlertData:
    """Body of the future-dated execution alert (message code 0x00CD; alert 0x8F66/0x8F67):
    which command ran: `0E ‖ message code ‖ originator counter ‖ cluster id ‖ frame control ‖
    command id` [S WS; O RTDS GCS01a/GCS05]."""

    message_code: int
    originator_counter: int
    cluster_id: int
    frame_control: int
    command_id: int

    def encode(self) -> bytes:
        return (
            bytes((FUTURE_DATED_LENGTH,))
            + _u16be(self.message_code, "message_code")
            + self.originator_counter.to_bytes(8, "big")
            + _u16be(self.cluster_id, "cluster_id")
            + _u8(self.frame_control, "frame_control")
            + _u8(self.command_id, "command_id")
        )

    @property
    def command_name(self) -> str:
        return command_name(self.cluster_id, self.frame_control & 0x03, (self.frame_control >> 3) & 1, self.command_id)

    def tree(self) -> Node:
        raw = self.encode()
        return Node(
            "future_dated_alert_data",
            raw,
            f"{cluster_name(self.cluster_id)}: {self.command_name}",
            (
                Node("length", raw[:1], str(FUTURE_DATED_LENGTH)),
                Node("message_code", raw[1:3], f"0x{self.message_code:04X}"),
                Node("originator_counter", raw[3:11], str(self.originator_counter)),
                Node("cluster_id", raw[11:13], cluster_name(self.cluster_id)),
                Node("frame_control", raw[13:14], f"0x{self.frame_control:02X}"),
                Node("command_id", raw[14:15], self.command_name),
            ),
        )


@frozen_dataclass
class FirmwareDistributionReceipt:
    """Body of the GSME firmware distribution receipt alert (0x00CF, alert 0x8F72): the hash
    the device calculated over the image, as a DLMS octet-string `09 len hash` [S GP; O RTDS]."""

    manufacturer_hash: bytes

    def encode(self) -> bytes:
        return b"\x09" + encode_length(len(self.manufacturer_hash)) + self.manufacturer_hash

    def tree(self) -> Node:
        return Node("calculated_manufacturer_hash", self.encode(), self.manufacturer_hash.hex().upper())


METER_INTEGRITY_ISSUES = {
    0x0000: "Other",
    0x0001: "Error Non Volatile Memory",
    0x0002: "Error Program Execution",
    0x0003: "Error Program Storage",
    0x0004: "Error RAM",
    0x0005: "Error Unexpected Hardware Reset",
    0x0006: "Error Watchdog",
    0x0007: "Error Metrology Firmware Verification Failure",
    0x0008: "Error Measurement Fault",
    0x0009: "Unspecified Smart Meter Operational Integrity Error",
}


@frozen_dataclass
class MeterIntegrityIssue:
    """Body of the GSME meter integrity issue warning (0x00F2, alert 0x81A0): a 2-byte
    big-endian reason code [S GP common.ts; no RTDS vector]."""

    other_info: int

    def encode(self) -> bytes:
        return _u16be(self.other_info, "other_info")

    def tree(self) -> Node:
        return Node("other_info", self.encode(), METER_INTEGRITY_ISSUES.get(self.other_info, f"0x{self.other_info:04X}"))


AlertBody = Union[tuple, FutureDatedAlertData, FirmwareDistributionReceipt, MeterIntegrityIssue, bytes]


@frozen_dataclass
class GbzAlert:
    """A GBZ alert.  `body` is a tuple of GbzComponents, one of the special bodies above, or the
    raw bytes that follow the time stamp (empty for most alerts).  `component_count` is kept as
    sent: the special bodies count as one component."""

    alert_code: int
    timestamp: int  # UTC seconds since 2000-01-01 (big-endian in GBZ)
    component_count: int = 0
    body: AlertBody = b""

    @property
    def components(self) -> tuple[GbzComponent, ...]:
        return self.body if isinstance(self.body, tuple) else ()

    @property
    def encryption_status(self) -> str:
        return _encryption_status(self.components)

    def encode(self) -> bytes:
        body = self.body
        if isinstance(body, tuple):
            raw = b"".join(c.encode() for c in body)
        elif isinstance(body, (bytes, bytearray)):
            raw = bytes(body)
        else:
            raw = body.encode()
        return PROFILE_ID + _u8(self.component_count, "component_count") + _u16be(self.alert_code, "alert_code") + _u32be(self.timestamp, "timestamp") + raw

    @classmethod
    def build(cls, alert_code: int, timestamp: int, body: AlertBody = b"", *, component_count: int | None = None) -> "GbzAlert":
        """An alert; components get their last flag fixed; the count defaults to the number of
        components, or 1 for a special body and 0 for none."""
        if isinstance(body, (list, tuple)):
            comps = list(body)
            body = tuple(replace(c, last=i == len(comps) - 1) for i, c in enumerate(comps))
            count = len(body)
        elif isinstance(body, (bytes, bytearray)):
            body = bytes(body)
            count = 1 if body else 0
        else:
            count = 1
        alert = cls(alert_code, timestamp, count if component_count is None else component_count, body)
        alert.encode()
        return alert

    def tree(self) -> Node:
        children = [
            Node("profile_id", PROFILE_ID, "ZigBee Smart Energy (0x0109)"),
            Node("component_count", bytes((self.component_count,)), str(self.component_count)),
            Node("alert_code", self.alert_code.to_bytes(2, "big"), alert_label(self.alert_code)),
            Node("timestamp", self.timestamp.to_bytes(4, "big"), utc_text(self.timestamp)),
        ]
        body = self.body
        if isinstance(body, tuple):
            children += [c.tree(i) for i, c in enumerate(body)]
        elif isinstance(body, bytes):
            if body:
                children.append(Node("use_case_specific_data", body, f"{len(body)} bytes"))
        else:
            children.append(body.tree())
        return Node("GBZ alert", b"", f"alert {alert_label(self.alert_code)}", tuple(children))

    def to_json(self) -> dict:
        return {"type": "GbzAlert", "alert_code": f"0x{self.alert_code:04X}", "alert_name": alert_name(self.alert_code),
                "timestamp": self.timestamp, "component_count": self.component_count, "body": jsonable(self.body)}


def _decode_alert(data: bytes, message_code: int | None, decrypt: Decrypt | None, strict: bool) -> GbzAlert:
    n = len(data)
    if n < 9:
        raise DecodeError("truncated GBZ alert header", min(n, 3), "alert")
    count = data[2]
    alert_code = (data[3] << 8) | data[4]
    timestamp = int.from_bytes(data[5:9], "big")
    rest = data[9:]
    body: AlertBody
    if message_code == FUTURE_DATED_ALERT_GBZ:
        if len(rest) != 1 + FUTURE_DATED_LENGTH or rest[0] != FUTURE_DATED_LENGTH:
            raise DecodeError("future-dated alert data must be 0E followed by 14 bytes", 9, "future_dated_alert_data")
        body = FutureDatedAlertData(
            (rest[1] << 8) | rest[2], int.from_bytes(rest[3:11], "big"), (rest[11] << 8) | rest[12], rest[13], rest[14]
        )
    elif message_code == FIRMWARE_DISTRIBUTION_RECEIPT_ALERT_GBZ:
        if not rest or rest[0] != 0x09:
            raise DecodeError("expected a DLMS octet-string (09) holding the hash", 9, "calculated_manufacturer_hash")
        length, p = read_length(data, 10, what="calculated_manufacturer_hash.length")
        if p + length != n:
            raise DecodeError(f"hash length {length} does not match the {n - p} bytes that follow", 10, "calculated_manufacturer_hash.length")
        body = FirmwareDistributionReceipt(bytes(data[p:]))
    elif message_code == METER_INTEGRITY_ALERT_GBZ:
        if len(rest) != 2:
            raise DecodeError(f"meter integrity alert data must be 2 bytes, got {len(rest)}", 9, "other_info")
        body = MeterIntegrityIssue((rest[0] << 8) | rest[1])
    elif message_code == GCS53_ALERT:
        comps, pos = _decode_components(data, 9, n, count, decrypt, strict)
        if pos != n:
            raise DecodeError(f"{n - pos} bytes after the last component", pos, "trailer")
        body = comps
    elif count and rest:
        # Generic alert: use-case-specific components when they parse cleanly, else raw bytes.
        try:
            comps, pos = _decode_components(data, 9, n, count, decrypt, strict)
        except DecodeError:
            comps, pos = (), -1
        body = comps if pos == n else bytes(rest)
    else:
        body = bytes(rest)
    return GbzAlert(alert_code, timestamp, count, body)


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


def decode_gbz(
    data: bytes,
    *,
    cra: CRA | int,
    message_code: int | None = None,
    decrypt: Decrypt | None = None,
    strict: bool = False,
) -> GbzPayload | GbzAlert:
    """Decode a GBZ payload (the content of a GBCS message starting 01 09).

    `cra` picks the alert form (3) or the command/response form (1, 2).  `message_code` selects
    the special alert bodies (0x00CD, 0x00CF, 0x00F2, 0x008B).  `decrypt(block) -> plaintext`,
    when given, decrypts encrypted components (SecurityError leaves them undecrypted).  ZCL
    payloads that do not fit their layout are kept raw unless `strict`."""
    data = bytes(data)
    if len(data) < 3:
        raise DecodeError("truncated GBZ header", len(data), "profile_id")
    if data[:2] != PROFILE_ID:
        raise DecodeError(f"GBZ profile id must be 0109, got {data[:2].hex().upper()}", 0, "profile_id")
    if int(cra) == CRA.ALERT:
        return _decode_alert(data, message_code, decrypt, strict)
    comps, pos = _decode_components(data, 3, len(data), data[2], decrypt, strict)
    if pos != len(data):
        raise DecodeError(f"{len(data) - pos} bytes after the last component", pos, "trailer")
    return GbzPayload(comps)


__all__ = [
    "PROFILE_ID",
    "CONTROL_LAST",
    "CONTROL_ENCRYPTED",
    "CONTROL_FROM_DATE_TIME",
    "FUTURE_DATED_ALERT_GBZ",
    "FIRMWARE_DISTRIBUTION_RECEIPT_ALERT_GBZ",
    "METER_INTEGRITY_ALERT_GBZ",
    "GCS53_ALERT",
    "GbzComponent",
    "GbzPayload",
    "GbzAlert",
    "FutureDatedAlertData",
    "FirmwareDistributionReceipt",
    "MeterIntegrityIssue",
    "decode_gbz",
    "decryptor",
    "encryptor",
    "is_gbz",
    "ClusterCommand",
    "RawPayload",
]
