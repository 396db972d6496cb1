"""Handler-table functions of the firmware use cases, apart from `firmware.update` so that module
stays below `gbcs_device` (what they do is described there):

    call(MessageCode.CS06, activate_firmware, dated=True, fail=ACTIVATE_FIRMWARE_FAILURE)   # every device
    call(MessageCode.CS08, read_firmware_version)           # PPMID / HCALCS (ECS52 is DLMS, GCS38 GBZ)
"""
from __future__ import annotations

from typing import Any

from gbcs.asn1 import (
    ActivateFirmware,
    ActivateFirmwareCode,
    ActivateFirmwareOutcome,
    CommandAccepted,
    FirmwareVersionResponse,
    ReadFirmwareVersion,
)
from gbcs.frame import Message

from .device_log import command_payload
from .gbcs_device import CommandRejected, Outcome, asn1_failure


def activate_firmware(device: Any, message: Message) -> Any:
    """CS06 Activate Firmware (handler-table function; module doc)."""
    command = command_payload(message, ActivateFirmware)
    if command.originator_counter != message.originator_counter:
        raise CommandRejected("malformed", "CS06 originator counter differs from the message's")
    if len(command.manufacturer_image_hash) != 32:
        raise CommandRejected("malformed", "manufacturer image hash is not 32 bytes")
    when = command.execution_date_time
    if when is not None:
        activation = device.activation
        if command.is_cancellation:
            activation.cancel()
        else:
            activation.set(command.manufacturer_image_hash, when.timestamp(), message.originator_counter,
                           message.originator)
        return Outcome(CommandAccepted().encode())  # firmware.future runs it at its time
    code = device.activate_image(command.manufacturer_image_hash)
    outcome = ActivateFirmwareOutcome(code=code, firmware_version=device.firmware_version).encode()
    return Outcome(outcome, after=device.schedule_reboot if code == ActivateFirmwareCode.SUCCESS else None)


# `fail-next CS06 RESULT` (firmware.gbcs_device): an immediate outcome with that response code
ACTIVATE_FIRMWARE_FAILURE = asn1_failure(
    ActivateFirmwareCode, lambda code, device: ActivateFirmwareOutcome(code=code, firmware_version=device.firmware_version).encode())


def read_firmware_version(device: Any, message: Message) -> bytes:
    """CS08 Read PPMID/HCALCS Firmware Version: the running image's version."""
    command_payload(message, ReadFirmwareVersion)
    return FirmwareVersionResponse(firmware_version=device.firmware_version).encode()


__all__ = ["ACTIVATE_FIRMWARE_FAILURE", "activate_firmware", "read_firmware_version"]
