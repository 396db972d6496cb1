"""A device's own Device Log: the HAN devices it exchanges data with, added and removed by the
device-to-device join use cases (CS03A1/CS03A2/CS03B/CS03C join, CS04AC/CS04B unjoin, CS07 read;
GCS59 restores the GPF's) [S FACTS §3.2]. One service for every device that keeps such a log:
ESME and GPF now, GSME and PPMID later. The CHF Device Log (the HAN whitelist) is another thing
(`hub.chf_log`).

A device declares the join use cases it serves in its handler table with `join(code, *types)`
(the device types that join method may add; none: any), `unjoin(code)` and `read(code)`, and
keeps a `DeviceLog` as `device.joined_devices`. Entries persist in the device's NVM under its
namespace, keyed by the EUI as `gbcs.codec.eui_hex` writes it (keys in any other spelling, as older
ESME data folders hold them, are rewritten by `migrate()` at boot).

Join response codes [S FACTS §3.2: 1 "bad message code for method", 2 "bad method"; reading I]:
  2 INVALID_JOIN_METHOD_AND_ROLE  the join method and role is none this device takes part in
                                  (none of its join use cases carries it), or the other device's
                                  type is not one that method may add here;
  1 INVALID_MESSAGE_CODE_FOR_...  the device takes part in that method, but through another use
                                  case (a CS03B carrying Method A to an ESME);
  3 INCOMPATIBLE_WITH_EXISTING    the EUI is already there with another device type (the same type:
                                  success, nothing changes);
  4 DEVICE_LOG_FULL               `capacity` entries already.
Unjoin: 0 success, 1 not in the log. Every join and unjoin is recorded in the event log with the
GBCS event code (0x8F48/0x8F49 joining failed/succeeded, 0x8F4A/0x8F4B unjoining).

A Method C join (CS03C: GSME and PPMID) carries the other device's KA certificate: the log keeps it
beside the entry (namespace `<namespace>_ka`, dropped with the entry), and `ka_key(eui)` gives the
key the two devices MAC their HAN-only messages with (PCS01 / PCS02; `GbcsDevice.peer_device_key`).
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

from gbcs.asn1 import (
    DeviceJoinDetails,
    DeviceLogEntry,
    JoinDevice,
    JoinMethodAndRole,
    JoinResponse,
    JoinResponseCode,
    ReadDeviceJoinDetails,
    ReadResponseCode,
    RestoreOutcome,
    UnjoinDevice,
    UnjoinResponse,
    UnjoinResponseCode,
    decode_asn1,
)
from gbcs.catalogue import AlertCode, DeviceType, MessageCode
from gbcs.codec import DecodeError, eui_hex, parse_eui
from gbcs.frame import CRA, Message

from .gbcs_device import CommandRejected, Handler, Outcome, asn1_failure, definition

_A = frozenset({JoinMethodAndRole.METHOD_A_INITIATOR, JoinMethodAndRole.METHOD_A_RESPONDER})
#: The join method and roles each join use case carries [S FACTS §3.2, Appendix A names].
JOIN_ROLES: dict[int, frozenset[int]] = {
    MessageCode.CS03A1: _A,
    MessageCode.CS03A2: _A,
    MessageCode.CS03B: frozenset({JoinMethodAndRole.METHOD_B}),
    MessageCode.CS03C: frozenset({JoinMethodAndRole.METHOD_C}),
}

_JOIN_OK, _JOIN_FAILED = int(AlertCode.DEVICE_JOINING_SUCCEEDED), int(AlertCode.DEVICE_JOINING_FAILED)
_UNJOIN_OK, _UNJOIN_FAILED = int(AlertCode.DEVICE_UNJOINING_SUCCEEDED), int(AlertCode.DEVICE_UNJOINING_FAILED)


class DeviceLog:
    """The Device Log of `device` (a `GbcsDevice`): NVM namespace `namespace`, at most `capacity`
    entries. `on_change` (async, optional) runs after a command that changed the log has been
    answered (the GPF's GCS62 backup alert). Which join methods and device types it accepts comes
    from the device's handler table (`join` entries)."""

    def __init__(self, device: Any, *, namespace: str, capacity: int,
                 on_change: Callable[[], Any] | None = None) -> None:
        self.device = device
        self.namespace = namespace
        self.capacity = capacity
        self.on_change = on_change
        # join use case -> device types it may add (empty: any), from the device's `join` entries
        self.types, self.roles = _join_table(type(device))
        self._ka_parsed: tuple[bytes, Any] | None = None  # (certificate, its key): see ka_key

    # ------------------------------------------------------------------ the log
    def entries(self) -> list[DeviceLogEntry]:
        """The log, ordered by EUI."""
        return sorted((DeviceLogEntry(bytes.fromhex(k), v) for k, v in self.device.nvm.items(self.namespace)),
                      key=lambda e: e.entity_id)

    def device_type(self, eui: bytes | str) -> int | None:
        return self.device.nvm.get(self.namespace, eui_hex(parse_eui(eui)))

    def __contains__(self, eui: bytes | str) -> bool:
        return self.device_type(eui) is not None

    def __len__(self) -> int:
        return len(self.device.nvm.keys(self.namespace))

    def add(self, eui: bytes, device_type: int) -> tuple[JoinResponseCode, bool]:
        """Add an entry: (join response code, whether the log changed)."""
        nvm, key = self.device.nvm, eui_hex(eui)
        current = nvm.get(self.namespace, key)
        if current is not None:
            if current == int(device_type):
                return JoinResponseCode.SUCCESS, False
            return JoinResponseCode.INCOMPATIBLE_WITH_EXISTING_ENTRY, False
        if len(self) >= self.capacity:
            return JoinResponseCode.DEVICE_LOG_FULL, False
        nvm.put(self.namespace, key, int(device_type))
        return JoinResponseCode.SUCCESS, True

    def remove(self, eui: bytes) -> bool:
        self.device.nvm.delete(self.certificates, eui_hex(eui))
        return self.device.nvm.delete(self.namespace, eui_hex(eui))

    @property
    def certificates(self) -> str:
        return self.namespace + "_ka"

    def ka_certificate(self, eui: bytes) -> bytes | None:
        """The KA certificate (DER) a Method C join gave for `eui`, while it is in the log."""
        if eui not in self:
            return None
        der = self.device.nvm.get(self.certificates, eui_hex(eui))
        return None if der is None else bytes.fromhex(der)

    def ka_key(self, eui: bytes) -> Any:
        """The KA public key from that certificate (None without one, or when it does not parse).
        The last certificate parsed is kept with its key: a PPMID asks at every poll (parsing was
        a sixth of the poll's CPU)."""
        der = self.ka_certificate(eui)
        if der is None:
            return None
        parsed = self._ka_parsed
        if parsed is not None and parsed[0] == der:
            return parsed[1]
        from cryptography import x509

        try:
            key = x509.load_der_x509_certificate(der).public_key()
        except ValueError:
            key = None
        self._ka_parsed = (der, key)
        return key

    def restore(self, entries: Iterable[DeviceLogEntry]) -> tuple[tuple[RestoreOutcome, ...], bool]:
        """Replace the log by a backup (GCS59): one outcome per entry, and whether it changed."""
        before = self.entries()
        self.device.nvm.clear(self.namespace)
        self.device.nvm.clear(self.certificates)
        outcomes = tuple(RestoreOutcome(entry=e, code=self.add(e.entity_id, e.device_type)[0]) for e in entries)
        self.device.log_event("device_log_restored", entries=len(outcomes))
        return outcomes, before != self.entries()

    def migrate(self) -> None:
        """Rewrite keys not spelt as `eui_hex` writes them (older data folders)."""
        nvm = self.device.nvm
        stale = [(k, v) for k, v in nvm.items(self.namespace) if k != k.upper()]
        if stale:
            with nvm.transaction():
                for k, v in stale:
                    nvm.delete(self.namespace, k)
                    nvm.put(self.namespace, k.upper(), v)

    # ------------------------------------------------------------------ the use cases
    def join_code(self, message_code: int, join: JoinDevice) -> tuple[JoinResponseCode, bool]:
        """The response code of a join command (module doc), and whether the log changed."""
        role, dtype = int(join.join_method_and_role), int(join.other_device_type)
        if role not in self.roles:
            return JoinResponseCode.INVALID_JOIN_METHOD_AND_ROLE, False
        if role not in JOIN_ROLES[message_code]:
            return JoinResponseCode.INVALID_MESSAGE_CODE_FOR_JOIN_METHOD_AND_ROLE, False
        types = self.types[message_code]
        if types and dtype not in types:
            return JoinResponseCode.INVALID_JOIN_METHOD_AND_ROLE, False
        return self.add(join.other_entity_id, dtype)

    def apply_join(self, message_code: int, join: JoinDevice) -> tuple[JoinResponseCode, bool]:
        """What a join command does to the log (its response code, whether the log changed),
        without the message: `execute_join`, and derived commissioning (`gbhub fleet`)."""
        code, changed = self.join_code(message_code, join)
        if code == JoinResponseCode.SUCCESS and join.ka_certificate is not None:
            self.device.nvm.put(self.certificates, eui_hex(join.other_entity_id), join.ka_certificate.hex())
        return code, changed

    def execute_join(self, message: Message) -> Outcome:
        join = command_payload(message, JoinDevice)
        code, changed = self.apply_join(message.message_code, join)
        self.device.log_event(_JOIN_OK if code == JoinResponseCode.SUCCESS else _JOIN_FAILED,
                              entity=eui_hex(join.other_entity_id), message_code=f"{message.message_code:04X}")
        return Outcome(JoinResponse(code=code).encode(), after=self.on_change if changed else None)

    def execute_unjoin(self, message: Message) -> Outcome:
        unjoin = command_payload(message, UnjoinDevice)
        removed = self.remove(unjoin.entity_id)
        self.device.log_event(_UNJOIN_OK if removed else _UNJOIN_FAILED, entity=eui_hex(unjoin.entity_id),
                              message_code=f"{message.message_code:04X}")
        code = UnjoinResponseCode.SUCCESS if removed else UnjoinResponseCode.NOT_IN_DEVICE_LOG
        return Outcome(UnjoinResponse(code=code).encode(), after=self.on_change if removed else None)

    def execute_read(self, message: Message) -> bytes:
        command_payload(message, ReadDeviceJoinDetails)
        return DeviceJoinDetails(entries=tuple(self.entries())).encode()


def command_payload(message: Message, expected: type) -> Any:
    """The ASN.1 payload of a command, which must be an `expected`; else the command is malformed."""
    try:
        payload = decode_asn1(message.content, message_code=message.message_code, cra=CRA.COMMAND)
    except DecodeError as exc:
        raise CommandRejected("malformed", str(exc)) from None
    if not isinstance(payload, expected):
        raise CommandRejected("malformed", f"payload is not a {expected.__name__}")
    return payload


_JOIN_TABLES: dict[type, tuple[dict[int, frozenset[int]], frozenset[int]]] = {}


def _join_table(cls: type) -> tuple[dict[int, frozenset[int]], frozenset[int]]:
    """(join use case -> device types, join roles) of a device class's handler table, once per class."""
    table = _JOIN_TABLES.get(cls)
    if table is None:
        types = {code: h.run.types for code, h in cls.HANDLERS.items() if isinstance(h.run, _Join)}
        table = _JOIN_TABLES[cls] = (types, frozenset(r for code in types for r in JOIN_ROLES[code]))
    return table


# ------------------------------------------------------------------ handler-table entries
class _Join:
    """Run of a join entry; `types` are the device types its join method may add (empty: any)."""

    __slots__ = ("types",)

    def __init__(self, types: frozenset[int]) -> None:
        self.types = types

    def __call__(self, device: Any, message: Message) -> Outcome:
        return device.joined_devices.execute_join(message)


def join(message_code: MessageCode, *device_types: DeviceType) -> Handler:
    """A join use case (CS03A1/A2/B/C) served by the device's Device Log, adding `device_types`."""
    if message_code not in JOIN_ROLES:
        raise ValueError(f"{message_code.name} is not a join use case")
    return Handler(message_code, _Join(frozenset(int(t) for t in device_types)), definition(message_code),
                   fail=asn1_failure(JoinResponseCode, lambda code, _device: JoinResponse(code=code).encode()))


def unjoin(message_code: MessageCode) -> Handler:
    """An unjoin use case (CS04AC/CS04B) served by the device's Device Log."""
    return Handler(message_code, lambda device, message: device.joined_devices.execute_unjoin(message),
                   definition(message_code),
                   fail=asn1_failure(UnjoinResponseCode, lambda code, _device: UnjoinResponse(code=code).encode()))


def read(message_code: MessageCode) -> Handler:
    """CS07 Read Device Join Details, served by the device's Device Log."""
    return Handler(message_code, lambda device, message: device.joined_devices.execute_read(message),
                   definition(message_code),
                   fail=asn1_failure(ReadResponseCode, lambda code, _device: DeviceJoinDetails(entries=None, code=code).encode()))


__all__ = ["DeviceLog", "JOIN_ROLES", "command_payload", "join", "unjoin", "read"]
