"""The CHF Device Log (the HAN whitelist), its Historic Device Log, the join window, and the
ZigBee Network Control object (class 104) through which CCS01/02/03/05/06/07 reach them. Mixed into
`hub.chf.Chf` (`ChfDeviceLog`): it keeps its state in the CHF's NVM and RAM (`_log_cache`,
`_last_comm`, `_han_stats`) and raises CS14 through the CHF.

Device Log [S FACTS §3.2, DT CCS01/CCS02/CS14; O RTDS]: only devices in it may join and talk on
the HAN. An entry holds the EUI, the install code and the link key derived from it
(`han.join.link_key_from_install_code`: AES-MMO of install code ‖ CRC), the device type (learnt at
join), the TC link key once joined (CS14 reports its AES-MMO hash, zero-length before), and the
last communication time. Capacity `device_log_capacity` (default 16 [S HG ch.h; real limit U]).
Removed entries that had a TC link key go to the Historic Device Log (15 entries, oldest
overwritten [S DT CCS02]); an EUI added back from there may rejoin with its old TC link key
during the first half of the join window, and with its install code in the second half.

Use cases (DLMS ACCESS on ZigBee Network Control, class 104, `OBIS.ZIGBEE_NETWORK_CONTROL` [O RTDS]):
  CCS01 0x0001  action 1 register_device(structure{eui, key_type, install code, option}),
                set 3 join_timeout, set 2 enable_disable_joining. Already in the log: success,
                key ignored [S DT].
  CCS02 0x0002  action 2 unregister_device(eui); not in the log: action-result 1 [O RTDS ERROR].
  CCS03 0x0003  action 5 restore_PAN, set 3 join_timeout, set 2 enable_disable_joining [U: our
                layout, see below].
  CCS05CCS04 0x0004, CCS06 0x010F, CCS07 0x00FE  get 4 active_devices (and 2, 3).
  ECS52 0x0059  get attribute 2 of the firmware version object: firmware version (CH variant of ECS52).
Requests are executed in order; with the invoke-id's break-on-error bit (always set in GBCS) the
first failure stops execution and the rest answer other-reason (250), as the RTDS CCS01 ERROR
response shows. Requests outside the use case's objects reject the command (alert 0x8F1E).
After every change of the log (add, remove, join) the CHF sends CS14 (0x0018, alert 0x8F12) to
the ACB: DATA-NOTIFICATION structure{alert, time, structure{time, extended PAN id, array of
structure{eui, hash}}} — byte-identical in shape to RTDS NA_CS14.

CCS03 Restore CHF Device Log [U]: no source gives its payload (FACTS §3.2 only says it "restores
device log and PAN (network formed with given Extended PAN ID)" [S DT]), so we chose one on the
DLMS Blue Book's class 104, whose method 5 restore_PAN "restores a PAN using backup information":
  action 5 restore_PAN(structure{extended PAN id octet-string(8), array of register_device
  structures (as CCS01)}), then set 3 join_timeout and set 2 enable_disable_joining, as CCS01.
The Device Log becomes exactly the backup, in one NVM transaction: entries not in it are removed
(TC link key → historic log, as CCS02), entries already in the log are kept as they are (key
ignored, as CCS01), new ones are registered from their install code (taking a historic TC link key
along, as CCS01); the extended PAN id is adopted and persisted (`extended_pan_id`, carried by CS14).
Devices that must (re)join do so during the join window the two sets open. The action's return
data is an array of enum, one per backup entry in order: 0 restored/kept, 1 invalid entry (key
type not install code, bad install code, EUI repeated), 2 device log full (beyond
`device_log_capacity`). Any non-zero entry makes the action result other-reason (250) [I] and
nothing changes; an extended PAN id not of 8 bytes or a malformed structure answers
type-unmatched (12), nothing changes. A change raises CS14 (and removed devices lose their HAN
tunnels), as CCS01/CCS02 do.

Semantics we chose where no source reaches [I]/[U]:
* register_device key_type 1 = install code (the only one accepted); the 4th element (RTDS: enum 0)
  is kept as `registration_option`, meaning unknown [U].
* join_timeout unit: `join_timeout_unit` seconds (default 60: minutes) [U: RTDS value 90].
* active_device status bit-string, MSB first: bit 0 registered, bit 1 joined (TC link key),
  bit 4 has communicated since joining (RTDS 0xC8 = a joined, talking device). RSSI/LQI are the
  fixed values of the virtual air; hops 1; failure/success counts are the CHF's HAN sends
  since boot (saturating at 255).
* A device that holds a TC link key may rejoin at any time with it (trust-centre rejoin); it
  keeps that key and the log does not change.
* CHF alerts (CS14 and security alerts) go to the ACB by default; 0x00D5 delivery failures go to
  the undelivered command's originator.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Iterable

from gbcs.catalogue import AlertCode, MessageCode, RemotePartyRole
from gbcs.codec import eui_hex, parse_eui
from gbcs.dlms import BitString, Data, DataNotification, DataType, DlmsDateTime
from gbcs.obis import OBIS
from gbhub.firmware.cosem import (
    HARDWARE_FAULT,
    OTHER_REASON,
    SUCCESS,
    TYPE_UNMATCHED,
    Attribute,
    CosemError,
    CosemObject,
)
from gbhub.han.join import link_key_from_install_code, tc_link_key_hash

# ZigBee Network Control (class 104) attributes and methods [O RTDS CCS01/02/06; U restore_PAN]
ENABLE_DISABLE_JOINING = 2
JOIN_TIMEOUT = 3
ACTIVE_DEVICES = 4
REGISTER_DEVICE = 1
UNREGISTER_DEVICE = 2
RESTORE_PAN = 5
KEY_TYPE_INSTALL_CODE = 1

# restore_PAN per-entry results (the action's return data) [U, see module doc]
RESTORED = 0
INVALID_ENTRY = 1
DEVICE_LOG_FULL = 2

# Virtual-air link figures reported by CCS06 (max, average, min) [I].
RSSI = (-40, -45, -50)
LQI = (255, 250, 245)
# active_device status bits (MSB first) [I, see module doc]
STATUS_REGISTERED = 0x80
STATUS_JOINED = 0x40
STATUS_COMMUNICATING = 0x08

LOG_NS = "chf_device_log"
HISTORIC_NS = "chf_historic_log"
JOINING_NS = "chf_joining"
NETWORK_NS = "chf_network"  # the extended PAN id a CCS03 restore set
_MISSING_ENTRY = object()


# ---------------------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChfDeviceLogEntry:
    """One CHF Device Log entry. `tc_link_key` is None until the device joins."""

    eui: bytes
    install_code: bytes
    link_key: bytes = field(repr=False)
    key_type: int = KEY_TYPE_INSTALL_CODE
    registration_option: int = 0
    device_type: int | None = None
    tc_link_key: bytes | None = field(default=None, repr=False)
    previous_tc_link_key: bytes | None = field(default=None, repr=False)  # from the historic log
    added_at: float = 0.0
    joined_at: float | None = None
    last_communication: float | None = None

    @property
    def joined(self) -> bool:
        return self.tc_link_key is not None

    @property
    def tc_link_key_hash(self) -> bytes:
        return tc_link_key_hash(self.tc_link_key)

    def to_nvm(self) -> dict:
        return {name: getattr(self, name) for name in _ENTRY_FIELDS}

    @classmethod
    def from_nvm(cls, d: dict) -> "ChfDeviceLogEntry":
        return cls(**{name: d.get(name) for name in _ENTRY_FIELDS if name in d})


_ENTRY_FIELDS = tuple(f.name for f in dataclasses.fields(ChfDeviceLogEntry))


@dataclass(frozen=True, slots=True)
class HistoricLogEntry:
    """A removed device and the TC link key it had (CHF Historic Device Log)."""

    eui: bytes
    tc_link_key: bytes = field(repr=False)
    device_type: int | None = None
    removed_at: float = 0.0

    def to_nvm(self) -> dict:
        return {"eui": self.eui, "tc_link_key": self.tc_link_key, "device_type": self.device_type, "removed_at": self.removed_at}


@dataclass(frozen=True, slots=True)
class DeviceLogRestore:
    """What `Chf.restore_device_log` did: the DLMS action result, one result per backup entry
    (RESTORED / INVALID_ENTRY / DEVICE_LOG_FULL), and on success what changed."""

    result: int
    entries: tuple[int, ...]
    added: tuple[bytes, ...] = ()
    removed: tuple[bytes, ...] = ()
    extended_pan_id_changed: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed or self.extended_pan_id_changed)


class _RestoreAborted(Exception):
    """Rolls a restore's NVM savepoint back."""


# ---------------------------------------------------------------------------------------------
# Payload builders (also used by the tests to compare with the RTDS vectors)
# ---------------------------------------------------------------------------------------------


def device_log_backup(when: "datetime | DlmsDateTime | bytes", extended_pan_id: bytes,
                      entries: Iterable[tuple[bytes, bytes]]) -> Data:
    """CS14's use-case element: structure{date-time, extended PAN id, array of {eui, TC link key
    hash}} [O RTDS NA_CS14]."""
    return Data.structure(
        Data.timestamp(when),
        Data.octet_string(extended_pan_id),
        Data.array(*(Data.structure(Data.octet_string(eui), Data.octet_string(h)) for eui, h in entries)),
    )


def cs14_content(counter: int, when: "datetime | DlmsDateTime | bytes", extended_pan_id: bytes,
                 entries: Iterable[tuple[bytes, bytes]]) -> bytes:
    """The DATA-NOTIFICATION of a CS14 alert (alert 0x8F12)."""
    return DataNotification.build(counter, AlertCode.CHF_DEVICE_LOG_CHANGED, when, device_log_backup(when, extended_pan_id, entries)).encode()


def active_device(
    eui: bytes,
    status: int,
    *,
    rssi: tuple[int, int, int] = RSSI,
    lqi: tuple[int, int, int] = LQI,
    last_communication: "datetime | DlmsDateTime | bytes | None" = None,
    hops: int = 1,
    failures: int = 0,
    successes: int = 0,
    application_version: int = 1,
    stack_version: int = 1,
) -> Data:
    """One element of active_devices (CCS06): structure{mac, status bit-string(8), max/avg/min
    RSSI, max/avg/min LQI, last communication date-time, hops, failures, successes, application
    version, stack version} [O RTDS CCS06]."""
    return Data.structure(
        Data.octet_string(eui),
        Data.bit_string(BitString(8, bytes((status & 0xFF,)))),
        *(Data.integer(v) for v in rssi),
        *(Data.unsigned(v) for v in lqi),
        Data.timestamp(last_communication),
        Data.unsigned(hops),
        Data.unsigned(min(failures, 255)),
        Data.unsigned(min(successes, 255)),
        Data.unsigned(application_version),
        Data.unsigned(stack_version),
    )


# ---------------------------------------------------------------------------------------------
# The CHF's device log, mixed into Chf
# ---------------------------------------------------------------------------------------------


class LogChanges:
    """What the DLMS requests of one command changed in the log (for CS14 and the tunnels)."""

    __slots__ = ("added", "removed", "pan_changed")

    def __init__(self) -> None:
        self.added: list[bytes] = []
        self.removed: list[bytes] = []
        self.pan_changed = False

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.pan_changed)


class ChfDeviceLog:
    """The CHF Device Log part of `Chf` (module doc)."""

    def device_log(self) -> list[ChfDeviceLogEntry]:
        """The CHF Device Log, ordered by EUI."""
        return [self._with_ram(ChfDeviceLogEntry.from_nvm(v)) for _, v in self.nvm.items(LOG_NS)]

    def device_log_entry(self, eui: bytes | str) -> ChfDeviceLogEntry | None:
        """The entry for `eui` (with its latest communication time), or None."""
        hit = self._entry(parse_eui(eui))
        return None if hit is None else self._with_ram(hit)

    def _entry(self, eui: bytes) -> ChfDeviceLogEntry | None:
        # Looked up for every routed frame: entries are frozen, so a RAM copy is shared safely;
        # every write to the log clears it (also on rollback). Routing needs no communication
        # time, so it skips `_with_ram`.
        hit = self._log_cache.get(eui, _MISSING_ENTRY)
        if hit is _MISSING_ENTRY:
            raw = self.nvm.get(LOG_NS, eui_hex(eui))
            hit = None if raw is None else ChfDeviceLogEntry.from_nvm(raw)
            self._log_cache[eui] = hit
        return hit

    def _log_changed(self) -> None:
        self._log_cache.clear()
        self.nvm.on_rollback(self._log_cache.clear)

    def historic_log(self) -> list[HistoricLogEntry]:
        """The CHF Historic Device Log, oldest first."""
        return [HistoricLogEntry(**d) for d in self.nvm.get(HISTORIC_NS, "entries", [])]

    def _with_ram(self, entry: ChfDeviceLogEntry) -> ChfDeviceLogEntry:
        seen = self._last_comm.get(entry.eui)
        if seen is not None and (entry.last_communication is None or seen > entry.last_communication):
            return dataclasses.replace(entry, last_communication=seen)
        return entry

    def _put_entry(self, entry: ChfDeviceLogEntry) -> None:
        self.nvm.put(LOG_NS, eui_hex(entry.eui), entry.to_nvm())
        self._log_changed()

    def register_device(
        self, eui: bytes | str, install_code: bytes, *, key_type: int = KEY_TYPE_INSTALL_CODE, registration_option: int = 0
    ) -> tuple[int, bool]:
        """Add a device to the log: (DLMS action result, whether the log changed). Synchronous
        (for `execute`); rigs use `add_device`."""
        eui = parse_eui(eui)
        if self.nvm.get(LOG_NS, eui_hex(eui)) is not None:
            return SUCCESS, False  # already whitelisted: success, key ignored [S DT CCS01]
        if key_type != KEY_TYPE_INSTALL_CODE:
            return OTHER_REASON, False
        try:
            link_key = link_key_from_install_code(install_code)
        except ValueError:
            return TYPE_UNMATCHED, False
        if len(self.nvm.keys(LOG_NS)) >= self.device_log_capacity:
            self.log_event("device_log_full", eui=eui_hex(eui))
            return OTHER_REASON, False
        historic = self.historic_log()
        previous = next((h for h in historic if h.eui == eui), None)
        if previous is not None:
            self.nvm.put(HISTORIC_NS, "entries", [h.to_nvm() for h in historic if h.eui != eui])
        self._put_entry(ChfDeviceLogEntry(
            eui, bytes(install_code), link_key, key_type, registration_option,
            device_type=None if previous is None else previous.device_type,
            previous_tc_link_key=None if previous is None else previous.tc_link_key,
            added_at=self.clock.now(),
        ))
        self.log_event("device_added", eui=eui_hex(eui), from_historic=previous is not None)
        return SUCCESS, True

    def commissioned(self, eui: bytes, install_code: bytes, device_type: int, tc_link_key: bytes, *,
                     join_timeout: int, enable_joining: bool) -> None:
        """Derived commissioning (test fleets, `tools/premises.py`): the entry and join window
        CCS01 (with these join settings) and the device's join leave, dated now, without the
        messages — no event-log records, no CS14 alert [I]. Before the CHF boots."""
        now = self.clock.now()
        self._put_entry(ChfDeviceLogEntry(eui, bytes(install_code), link_key_from_install_code(install_code),
                                          device_type=int(device_type), tc_link_key=tc_link_key, added_at=now,
                                          joined_at=now, last_communication=now))
        state = self._joining()
        state["timeout"] = int(join_timeout)
        if enable_joining:
            state.update(enabled=True, start=now, end=now + state["timeout"] * self.join_timeout_unit)
        self.nvm.put(JOINING_NS, "state", state)

    def unregister_device(self, eui: bytes | str) -> tuple[int, bool]:
        """Remove a device (its TC link key goes to the historic log): (DLMS result, changed)."""
        eui = parse_eui(eui)
        raw = self.nvm.get(LOG_NS, eui_hex(eui))
        if raw is None:
            return HARDWARE_FAULT, False
        entry = ChfDeviceLogEntry.from_nvm(raw)
        self.nvm.delete(LOG_NS, eui_hex(eui))
        self._log_changed()
        if entry.tc_link_key is not None:
            historic = [h for h in self.historic_log() if h.eui != eui]
            historic.append(HistoricLogEntry(eui, entry.tc_link_key, entry.device_type, self.clock.now()))
            self.nvm.put(HISTORIC_NS, "entries", [h.to_nvm() for h in historic[-self.historic_log_capacity:]])
        self.log_event("device_removed", eui=eui_hex(eui))
        return SUCCESS, True

    def restore_device_log(
        self, extended_pan_id: bytes | str, devices: Iterable[tuple[bytes, int, bytes, int]]
    ) -> DeviceLogRestore:
        """Make the Device Log exactly the backup `devices` ((eui, key_type, install_code,
        registration_option) each, as register_device takes them) and adopt `extended_pan_id`:
        all or nothing (CCS03, module doc). Synchronous (for `execute`); a savepoint of the
        caller's transaction when there is one."""
        pan = parse_eui(extended_pan_id)
        devices = [(parse_eui(eui), key_type, bytes(code), option) for eui, key_type, code, option in devices]
        present = {e.eui for e in self.device_log()}
        codes: list[int] = []
        seen: set[bytes] = set()
        slots = 0
        for eui, key_type, code, _ in devices:
            if eui in seen or (eui not in present and not _valid_install_code_entry(key_type, code)):
                codes.append(INVALID_ENTRY)
            elif slots >= self.device_log_capacity:
                codes.append(DEVICE_LOG_FULL)
            else:
                codes.append(RESTORED)
                slots += 1
            seen.add(eui)
        if any(codes):
            self.log_event("device_log_restore_failed", invalid=codes.count(INVALID_ENTRY), full=codes.count(DEVICE_LOG_FULL))
            return DeviceLogRestore(OTHER_REASON, tuple(codes))
        removed = [eui for eui in sorted(present) if eui not in seen]
        added: list[bytes] = []
        try:
            with self.nvm.transaction():
                for eui in removed:
                    if self.unregister_device(eui)[0] != SUCCESS:
                        raise _RestoreAborted(eui_hex(eui))
                for eui, key_type, code, option in devices:
                    result, changed = self.register_device(eui, code, key_type=key_type, registration_option=option)
                    if result != SUCCESS:
                        raise _RestoreAborted(eui_hex(eui))
                    if changed:
                        added.append(eui)
                pan_changed = pan != self.extended_pan_id
                if self.nvm.get(NETWORK_NS, "extended_pan_id") != pan:
                    self.nvm.put(NETWORK_NS, "extended_pan_id", pan)
                self.log_event("device_log_restored", kept=len(devices) - len(added), added=len(added),
                               removed=len(removed), extended_pan_id=eui_hex(pan))
        except _RestoreAborted as exc:  # not expected after the checks above; nothing changed
            self.log_event("device_log_restore_failed", entry=str(exc))
            return DeviceLogRestore(OTHER_REASON, tuple(codes))
        return DeviceLogRestore(SUCCESS, tuple(codes), tuple(added), tuple(removed), pan_changed)

    async def add_device(self, eui: bytes | str, install_code: bytes, *, join_window: float | None = None) -> bool:
        """Rig convenience (no WAN needed): whitelist a device, optionally open joining for
        `join_window` seconds, and send CS14 if the log changed. Returns whether it changed."""
        with self.nvm.transaction():
            code, changed = self.register_device(eui, install_code)
        if code != SUCCESS:
            raise ValueError(f"device log refused {eui_hex(parse_eui(eui))} (result {code})")
        if join_window is not None:
            self.open_joining(join_window)
        if changed:
            await self.raise_cs14()
        return changed

    async def remove_device(self, eui: bytes | str) -> bool:
        with self.nvm.transaction():
            code, changed = self.unregister_device(eui)
        if changed:
            await self._forget_han_device(parse_eui(eui))
            await self.raise_cs14()
        return changed

    # ------------------------------------------------------------------ joining window
    def _joining(self) -> dict:
        return self.nvm.get(JOINING_NS, "state", {"enabled": False, "timeout": 0, "start": None, "end": None})

    @property
    def joining_open(self) -> bool:
        s = self._joining()
        return bool(s["enabled"]) and s["end"] is not None and s["start"] <= self.clock.now() < s["end"]

    @property
    def join_timeout(self) -> int:
        return int(self._joining()["timeout"])

    def open_joining(self, seconds: float) -> None:
        now = self.clock.now()
        state = self._joining()
        state.update(enabled=True, start=now, end=now + seconds)
        self.nvm.put(JOINING_NS, "state", state)

    def _set_join_timeout(self, value: int) -> None:
        state = self._joining()
        state["timeout"] = value
        if self.joining_open:
            state["end"] = self.clock.now() + value * self.join_timeout_unit
        self.nvm.put(JOINING_NS, "state", state)

    def _set_joining(self, enabled: bool) -> None:
        state = self._joining()
        now = self.clock.now()
        if enabled:
            state.update(enabled=True, start=now, end=now + state["timeout"] * self.join_timeout_unit)
        else:
            state.update(enabled=False, end=now)
        self.nvm.put(JOINING_NS, "state", state)
        self.log_event("joining", enabled=enabled)


    # ------------------------------------------------------------------ ZigBee Network Control
    @classmethod
    def network_control(cls) -> CosemObject:
        """The ZigBee Network Control object (class 104) over this log: what CCS01/02/03 and the
        device-log reads address (attributes and methods take the CHF: `firmware.cosem`)."""
        return CosemObject.of(OBIS.ZIGBEE_NETWORK_CONTROL, {
            ENABLE_DISABLE_JOINING: Attribute(get=lambda chf: Data.boolean(chf.joining_open), set=cls._set_joining_value),
            JOIN_TIMEOUT: Attribute(get=lambda chf: Data.long_unsigned(chf.join_timeout), set=cls._set_join_timeout_value),
            ACTIVE_DEVICES: Attribute(get=cls.active_devices),
        }, {
            REGISTER_DEVICE: cls._register_device_action,
            UNREGISTER_DEVICE: cls._unregister_device_action,
            RESTORE_PAN: cls._restore_pan_action,
        })

    def _set_join_timeout_value(self, value: Data) -> None:
        if value.type is not DataType.LONG_UNSIGNED:
            raise CosemError(TYPE_UNMATCHED, "join_timeout is long-unsigned")
        self._set_join_timeout(value.value)

    def _set_joining_value(self, value: Data) -> None:
        if value.type is not DataType.BOOLEAN:
            raise CosemError(TYPE_UNMATCHED, "enable_disable_joining is boolean")
        self._set_joining(bool(value.value))

    def _register_device_action(self, value: Data) -> None:
        fields = _register_device_fields(value)
        if fields is None:
            raise CosemError(TYPE_UNMATCHED, "not a register_device structure")
        eui, key_type, code, option = fields
        result, changed = self.register_device(eui, code, key_type=key_type, registration_option=option)
        if result != SUCCESS:
            raise CosemError(result, "register_device refused")
        if changed:
            self._changes.added.append(eui)
        return None

    def _unregister_device_action(self, value: Data) -> None:
        if value.type is not DataType.OCTET_STRING or len(value.value) != 8:
            raise CosemError(TYPE_UNMATCHED, "unregister_device takes an 8-byte EUI")
        result, changed = self.unregister_device(value.value)
        if result != SUCCESS:
            raise CosemError(result, "not in the device log")
        if changed:
            self._changes.removed.append(value.value)
        return None

    def _restore_pan_action(self, value: Data) -> Data:
        backup = _restore_pan_fields(value)
        if backup is None:
            raise CosemError(TYPE_UNMATCHED, "not a restore_PAN structure")
        outcome = self.restore_device_log(*backup)
        entries = Data.array(*(Data.enum(c) for c in outcome.entries))
        if outcome.result != SUCCESS:
            raise CosemError(outcome.result, "restore refused", data=entries)
        self._changes.added.extend(outcome.added)
        self._changes.removed.extend(outcome.removed)
        self._changes.pan_changed = self._changes.pan_changed or outcome.extended_pan_id_changed
        return entries

    def active_devices(self) -> Data:
        """active_devices (attribute 4): one structure per Device Log entry, ordered by EUI."""
        items = []
        for entry in self.device_log():
            successes, failures = self._han_stats.get(entry.eui, (0, 0))
            status = STATUS_REGISTERED
            if entry.joined:
                status |= STATUS_JOINED
                if entry.last_communication is not None:
                    status |= STATUS_COMMUNICATING
            last = None if entry.last_communication is None else datetime.fromtimestamp(entry.last_communication, tz=timezone.utc)
            items.append(active_device(entry.eui, status, last_communication=last, failures=failures, successes=successes))
        return Data.array(*items)

    # ------------------------------------------------------------------ CS14
    def cs14_elements(self) -> tuple[Data, ...]:
        entries = [(e.eui, e.tc_link_key_hash) for e in self.device_log()]
        return (device_log_backup(self.clock.utcnow(), self.extended_pan_id, entries),)

    async def raise_cs14(self) -> bytes | None:
        """Send the CS14 Device Log backup alert (0x0018 / 0x8F12) to the ACB."""
        recipient = self.trust.by_role(RemotePartyRole.ACCESS_CONTROL_BROKER) or self.alert_recipient
        return await self.raise_alert(AlertCode.CHF_DEVICE_LOG_CHANGED, message_code=MessageCode.CS14, elements=self.cs14_elements(), recipient=recipient)



def _register_device_fields(value: Data) -> tuple[bytes, int, bytes, int] | None:
    """register_device data: structure{eui octet-string(8), key_type enum, key octet-string,
    [option enum]} [O RTDS CCS01]."""
    if value.type is not DataType.STRUCTURE or len(value.value) not in (3, 4):
        return None
    items = value.value
    eui, key_type, key = items[0], items[1], items[2]
    if eui.type is not DataType.OCTET_STRING or len(eui.value) != 8:
        return None
    if key_type.type is not DataType.ENUM or key.type is not DataType.OCTET_STRING:
        return None
    option = 0
    if len(items) == 4:
        if items[3].type is not DataType.ENUM:
            return None
        option = items[3].value
    return eui.value, key_type.value, key.value, option


def _restore_pan_fields(value: Data) -> tuple[bytes, list[tuple[bytes, int, bytes, int]]] | None:
    """restore_PAN data [U: our layout, module doc]: structure{extended PAN id octet-string(8),
    array of register_device structures}."""
    if value.type is not DataType.STRUCTURE or len(value.value) != 2:
        return None
    pan, backup = value.value
    if pan.type is not DataType.OCTET_STRING or len(pan.value) != 8 or backup.type is not DataType.ARRAY:
        return None
    devices = []
    for item in backup.value:
        fields = _register_device_fields(item)
        if fields is None:
            return None
        devices.append(fields)
    return pan.value, devices


def _valid_install_code_entry(key_type: int, install_code: bytes) -> bool:
    """Whether register_device would accept this key (install code, of a ZigBee length)."""
    if key_type != KEY_TYPE_INSTALL_CODE:
        return False
    try:
        link_key_from_install_code(install_code)
    except ValueError:
        return False
    return True


__all__ = [
    "ChfDeviceLog",
    "ChfDeviceLogEntry",
    "DeviceLogRestore",
    "HistoricLogEntry",
    "active_device",
    "cs14_content",
    "LogChanges",
    "device_log_backup",
    "RESTORED",
    "INVALID_ENTRY",
    "DEVICE_LOG_FULL",
    "KEY_TYPE_INSTALL_CODE",
]
