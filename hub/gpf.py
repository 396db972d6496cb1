"""The Gas Proxy Function: for now, its own GBCS Device Log (the gas side comes later).

Use cases (ASN.1 payloads, gbcs.asn1) [S FACTS §3.2; O RTDS CS07/CS03B/GCS59 shapes], served by
the shared device-log service (`firmware.device_log`, which gives the response codes):
  CS07   Read Device Join Details → DeviceJoinDetails{code 0, entries}
  CS03B  Method B Join: add {entity id, device type} (any type) → JoinResponse code
  CS04B  Method B Unjoin → UnjoinResponse (0 success, 1 not in the log)
  GCS59  Restore GPF Device Log: replaces the log; one RestoreOutcome per entry
After every change the GPF sends GCS62 (alert 0x8071, GpfDeviceLogBackupAlert with the whole log)
to the ACB [I: by analogy with the CHF's CS14; FACTS §2 lists GCS62 as the GPF device log backup
alert]. The GPF lives in the CH: the CHF posts its frames to it and carries what it sends
(`Chf.attach_gpf`).
"""
from __future__ import annotations

import logging
from typing import Any

from gbhub.firmware.credentials import credential_handlers
from gbhub.firmware.device_log import DeviceLog, command_payload, join, read, unjoin
from gbhub.firmware.gbcs_device import GbcsDevice, Outcome, RemoteParty, call, handlers
from gbhub.firmware.update_handlers import ACTIVATE_FIRMWARE_FAILURE, activate_firmware
from gbcs.asn1 import DeviceLogEntry, GpfDeviceLogBackupAlert, GpfDeviceLogRestore, GpfDeviceLogRestoreResponse
from gbcs.catalogue import AlertCode, MessageCode, RemotePartyRole
from gbcs.frame import Message

log = logging.getLogger("gbhub.gpf")

DEVICE_LOG_NS = "gpf_device_log"


def _restore(gpf: "Gpf", message: Message) -> Outcome:
    """GCS59: the backup replaces the log."""
    backup = command_payload(message, GpfDeviceLogRestore)
    outcomes, changed = gpf.joined_devices.restore(backup.entries)
    return Outcome(GpfDeviceLogRestoreResponse(outcomes=outcomes).encode(), after=gpf.raise_gcs62 if changed else None)


class Gpf(GbcsDevice):
    kind = "gpf"

    HANDLERS = handlers(
        read(MessageCode.CS07),
        join(MessageCode.CS03B),  # any device type [I]
        unjoin(MessageCode.CS04B),
        call(MessageCode.GCS59, _restore),
        *credential_handlers(),  # CS02a-g (firmware.credentials)
        call(MessageCode.CS06, activate_firmware, dated=True, fail=ACTIVATE_FIRMWARE_FAILURE),
    )

    def __init__(self, eui: bytes | str, *, clock, credentials, trust, nvm=None, device_log_capacity: int = 16, **kw: Any) -> None:
        super().__init__(eui, clock=clock, credentials=credentials, trust=trust, nvm=nvm, **kw)
        self.joined_devices = DeviceLog(self, namespace=DEVICE_LOG_NS, capacity=device_log_capacity,
                                        on_change=self.raise_gcs62)

    @property
    def device_log_capacity(self) -> int:
        return self.joined_devices.capacity

    @property
    def alert_recipient(self) -> RemoteParty | None:
        if self._alert_recipient is not None:
            return self.trust.by_eui(self._alert_recipient)
        return self.trust.by_role(RemotePartyRole.ACCESS_CONTROL_BROKER) or self.trust.by_role(RemotePartyRole.SUPPLIER)

    async def on_boot(self) -> None:
        self.joined_devices.migrate()

    def device_log(self) -> list[DeviceLogEntry]:
        """The GPF Device Log (entity id, device type), ordered by EUI."""
        return self.joined_devices.entries()

    async def raise_gcs62(self) -> bytes | None:
        """GCS62 GPF Device Log backup alert (alert 0x8071) to the ACB."""
        recipient = self.trust.by_role(RemotePartyRole.ACCESS_CONTROL_BROKER) or self.alert_recipient
        content = GpfDeviceLogBackupAlert(
            alert_code=AlertCode.GPF_DEVICE_LOG_CHANGED, backup_date_time=self.clock.utcnow().replace(microsecond=0),
            entries=tuple(self.device_log())
        ).encode()
        return await self.raise_alert(AlertCode.GPF_DEVICE_LOG_CHANGED, message_code=MessageCode.GCS62, content=content,
                                      recipient=recipient)


__all__ = ["Gpf"]
