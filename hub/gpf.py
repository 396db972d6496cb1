"""The Gas Proxy Function: for now, its own GBCS Device Log (the gas side comes later).

Use cases (ASN.1 payloads, gbcs.asn1) [S FACTS §3.2; O RTDS CS07/CS03B/GCS59 shapes]:
  CS07  0x0013  Read Device Join Details → DeviceJoinDetails{code 0, entries}
  CS03B 0x000E  Method B Join: add {entity id, device type} → JoinResponse code
                (0 success, 2 not Method B, 3 EUI already there with another type, 4 log full);
                an EUI already in the log with the same type is a success, nothing changes [I]
  CS04B 0x0010  Method B Unjoin → UnjoinResponse (0 success, 1 not in the log)
  GCS59 0x008C  Restore GPF Device Log: replaces the log; one RestoreOutcome per entry
After every change the GPF sends GCS62 (0x00B2, alert 0x8071, GpfDeviceLogBackupAlert with the
whole log) to the ACB [I: by analogy with the CHF's CS14; FACTS §2 lists GCS62 as the GPF
device log backup alert]. The GPF lives in the CH: the CHF posts its frames to it and carries what
it sends (`Chf.attach_gpf`).
"""
from __future__ import annotations

import logging
from typing import Any

from gbhub.firmware.gbcs_device import CommandRejected, GbcsDevice, Outcome, RemoteParty
from gbcs.asn1 import (
    DeviceJoinDetails,
    DeviceLogEntry,
    GpfDeviceLogBackupAlert,
    GpfDeviceLogRestore,
    GpfDeviceLogRestoreResponse,
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
from gbcs.catalogue import RemotePartyRole
from gbcs.codec import DecodeError, eui_hex
from gbcs.frame import CRA, Message

log = logging.getLogger("gbhub.gpf")

CS07 = 0x0013
CS03B = 0x000E
CS04B = 0x0010
GCS59 = 0x008C
GCS62 = 0x00B2
GCS62_ALERT = 0x8071

_LOG_NS = "gpf_device_log"

_EXPECTED = {CS07: ReadDeviceJoinDetails, CS03B: JoinDevice, CS04B: UnjoinDevice, GCS59: GpfDeviceLogRestore}


class Gpf(GbcsDevice):
    kind = "gpf"

    def __init__(self, eui: bytes | str, *, clock, credentials, trust, nvm=None, device_log_capacity: int = 16, **kw: Any) -> None:
        super().__init__(eui, clock=clock, credentials=credentials, trust=trust, nvm=nvm, **kw)
        self.device_log_capacity = device_log_capacity

    @property
    def alert_recipient(self) -> RemoteParty | None:
        if self._alert_recipient is not None:
            return self.trust.by_eui(self._alert_recipient)
        return self.trust.by_role(RemotePartyRole.ACCESS_CONTROL_BROKER) or self.trust.by_role(RemotePartyRole.SUPPLIER)

    # ------------------------------------------------------------------ device log
    def device_log(self) -> list[DeviceLogEntry]:
        """The GPF Device Log (entity id, device type), ordered by EUI."""
        return [DeviceLogEntry(bytes.fromhex(k), v) for k, v in self.nvm.items(_LOG_NS)]

    def _join(self, eui: bytes, device_type: int) -> tuple[JoinResponseCode, bool]:
        key = eui_hex(eui)
        current = self.nvm.get(_LOG_NS, key)
        if current is not None:
            if current == int(device_type):
                return JoinResponseCode.SUCCESS, False
            return JoinResponseCode.INCOMPATIBLE_WITH_EXISTING_ENTRY, False
        if len(self.nvm.keys(_LOG_NS)) >= self.device_log_capacity:
            return JoinResponseCode.DEVICE_LOG_FULL, False
        self.nvm.put(_LOG_NS, key, int(device_type))
        self.log_event("device_joined", eui=key, device_type=int(device_type))
        return JoinResponseCode.SUCCESS, True

    # ------------------------------------------------------------------ use cases
    def supports(self, message_code: int) -> bool:
        return message_code in _EXPECTED

    def execute(self, message: Message) -> Outcome:
        code = message.message_code
        try:
            payload = decode_asn1(message.content, message_code=code, cra=CRA.COMMAND)
        except DecodeError as exc:
            raise CommandRejected("malformed", str(exc)) from None
        if not isinstance(payload, _EXPECTED[code]):
            raise CommandRejected("malformed", f"payload is not a {_EXPECTED[code].__name__}")
        changed = False
        if code == CS07:
            response = DeviceJoinDetails(entries=tuple(self.device_log()), code=ReadResponseCode.SUCCESS)
        elif code == CS03B:
            if payload.join_method_and_role != JoinMethodAndRole.METHOD_B:
                response = JoinResponse(code=JoinResponseCode.INVALID_JOIN_METHOD_AND_ROLE)
            else:
                result, changed = self._join(payload.other_entity_id, payload.other_device_type)
                response = JoinResponse(code=result)
        elif code == CS04B:
            key = eui_hex(payload.entity_id)
            if self.nvm.delete(_LOG_NS, key):
                self.log_event("device_unjoined", eui=key)
                response, changed = UnjoinResponse(code=UnjoinResponseCode.SUCCESS), True
            else:
                response = UnjoinResponse(code=UnjoinResponseCode.NOT_IN_DEVICE_LOG)
        else:  # GCS59
            before = self.device_log()
            self.nvm.clear(_LOG_NS)
            outcomes = []
            for entry in payload.entries:
                result, _ = self._join(entry.entity_id, entry.device_type)
                outcomes.append(RestoreOutcome(entry=entry, code=result))
            changed = before != self.device_log()
            self.log_event("device_log_restored", entries=len(payload.entries))
            response = GpfDeviceLogRestoreResponse(outcomes=tuple(outcomes))
        return Outcome(response.encode(), after=self.raise_gcs62 if changed else None)

    async def raise_gcs62(self) -> bytes | None:
        """GCS62 GPF Device Log backup alert (0x00B2 / 0x8071) to the ACB."""
        recipient = self.trust.by_role(RemotePartyRole.ACCESS_CONTROL_BROKER) or self.alert_recipient
        content = GpfDeviceLogBackupAlert(
            alert_code=GCS62_ALERT, backup_date_time=self.clock.utcnow().replace(microsecond=0), entries=tuple(self.device_log())
        ).encode()
        return await self.raise_alert(GCS62_ALERT, message_code=GCS62, content=content, recipient=recipient)


__all__ = ["Gpf", "CS07", "CS03B", "CS04B", "GCS59", "GCS62", "GCS62_ALERT"]
