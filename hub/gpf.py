"""The Gas Proxy Function: its own GBCS Device Log, and the data store that answers for the sleepy
GSME (`firmware.gas_data.GasData`: the same schema and the same read answers as the GSME's own).

Data store (NVM, scope `mirror-<GSME EUI>` under the GPF's EUI, so SQLite in the data folder):
registers, tier / block registers, the half-hourly profile (13 months), the daily read log,
prepayment state, valve, battery, the GSME's recent events, and the last sync time, all written
by the GSME's push at each wake (`meter.gsme`: a ZCL Write Attributes to the CHF's address that
the GPF answers only after its NVM write). The GPF's own event log records each sync, tap-off
and discarded message.

IHDs and PPMIDs read the mirror like a meter (ZSE Read Attributes of Metering 0x0702, Prepayment
0x0705 and Price 0x0700 (conversion factor, calorific value, unit price) at the CHF's address,
endpoint `MIRROR_ENDPOINT` 2 [I]; money in pence like the ESME's own server): a PPMID's and an
IHD's `gas_source` default to it, so gas credit shows without waiting for a PCS01
answer. Only joined IHDs / PPMIDs of the CHF device log may read it (others: NOT_AUTHORIZED).

The GSME also reads the mirror's FunctionalNotificationFlags each wake (`notification_flags`, a
Read Attributes of `NOTIFICATION_FLAGS_ATTRIBUTE`): bit 0 "New OTA firmware" is set while the
CHF's OTA server offers it an image, so it fetches the image across its wakes (README "Firmware").

Reads the GPF answers (GCS13a, GCS14, GCS33, GCS38, GCS60, GCS16a, GCS17 addressed to the GPF, as
RTDS addresses GCS13a [O]) come from the store at once; the response's date-time carries the
reliability in its clock status byte [O RTDS GCS13a]: 0x00 (GPF-reliable) when the last sync is
at most `stale_after` seconds old (default two wake intervals, 3600 s [I]), else 0x02
(unreliable). Commands that change the GSME go to the GSME's EUI: the CHF queues them for its next
wake (`Chf(gsme_queue_limit=32, gsme_queue_timeout=86400)`: a message not retrieved in time is
discarded and the GPF raises alert 0x819D; a full queue is a delivery failure, alert 0x8F84 via
the CHF [I: GBCS's "Failure to Deliver Remote Party Message"]). Tap-off: the CHF shows the GPF
each queued command and the GSME's response to it; a pair that matches (same originator counter
and message code, from the GSME it was queued for, signature checked when signed) is applied to
the copy (valve state, credit) and logged (event 0x0054 for the command [S FACTS §3.3]).

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

import json
import logging
import math
from typing import Any

from gbcs.asn1 import DeviceLogEntry, GpfDeviceLogBackupAlert, GpfDeviceLogRestore, GpfDeviceLogRestoreResponse
from gbcs import catalogue
from gbcs.catalogue import AlertCode, DeviceType, MessageCode, RemotePartyRole
from gbcs.codec import DecodeError, eui_hex
from gbcs.frame import CRA, Message, decode_message
from gbcs.gbz import FutureDatedAlertData, GbzPayload, decode_gbz, encryptor
from gbcs.security import check_signature
from gbcs.usecases.gas import ENCRYPTED_RESPONSES, GPF_RELIABLE, NEVER_TIMES, UNRELIABLE, execution_time
from gbcs.zcl import (
    Cluster,
    ClusterCommand,
    DefaultResponse,
    Direction,
    FrameType,
    GeneralCommand,
    ReadAttributeRecord,
    ReadAttributes,
    ReadAttributesResponse,
    Status,
    WriteAttributes,
    WriteAttributesResponse,
    ZclFrame,
    ZclHeader,
    ZclType,
    decode_payload,
)
from gbhub.firmware.cosem import datetime_bytes
from gbhub.firmware.credentials import credential_handlers
from gbhub.firmware.device_log import DeviceLog, command_payload, join, read, unjoin
from gbhub.firmware.gas_data import (DAILY_DAYS, DERIVED, MAX_SEGMENT_DAYS, MIRROR_ATTRIBUTE, MIRROR_CLUSTERS, MIRROR_ENDPOINT,
                                      MONEY, NEW_OTA_FIRMWARE, NOTIFICATION_FLAGS_ATTRIBUTE, PROFILE_DAYS, ZCL_EPOCH, GasData,
                                      apply_command, check_stretches, default_response, gbz_command)
from gbhub.firmware.gbcs_device import CommandRejected, GbcsDevice, Outcome, RemoteParty, call, handlers
from gbhub.firmware.update_handlers import ACTIVATE_FIRMWARE_FAILURE, activate_firmware
from gbhub.han.aps import HanError
from gbhub.han.zcl_server import ZclServer

log = logging.getLogger("gbhub.gpf")

DEVICE_LOG_NS = "gpf_device_log"


def _restore(gpf: "Gpf", message: Message) -> Outcome:
    """GCS59: the backup replaces the log."""
    backup = command_payload(message, GpfDeviceLogRestore)
    outcomes, changed = gpf.joined_devices.restore(backup.entries)
    return Outcome(GpfDeviceLogRestoreResponse(outcomes=outcomes).encode(), after=gpf.raise_gcs62 if changed else None)


MIRRORS_NS = "gsme_mirrors"  # GSME EUI -> {"last_sync": t}
FUTURE_NS = "gsme_future_dated"  # "GSME-EUI:counter" -> a future-dated command held until its FDA
TAP_OFF_EVENT = 0x0054  # GPF event: GSME command and outcome [S FACTS §3.3]
_PENDING_TAPS = 64  # commands remembered for tap-off per GPF (oldest forgotten)


def _read_from_store(gpf: "Gpf", message: Message) -> Outcome:
    """A GSME read addressed to the GPF: answered from the store (module doc)."""
    gsme = gpf.mirrored_gsme()
    if gsme is None:
        raise CommandRejected("malformed", "no GSME mirrored yet")
    comps = gbz_command(message)
    data = gpf.mirror(gsme)
    encrypt = (encryptor(gpf.encryption_key_for(message), gpf.eui) if message.message_code in ENCRYPTED_RESPONSES
               else None)
    content = data.answer(comps, now=gpf.clock.now(), firmware_version=bytes.fromhex(
        (data.get("gas") or {}).get("firmware", "")) or b"", encrypt=encrypt)
    return Outcome(content, datetime_bytes(gpf.clock.now())[:-1] + bytes((gpf.reliability(gsme),)))


def _change_of_tenancy(gpf: "Gpf", message: Message) -> bytes:
    """GCS09 on the GPF: the date that limits what the consumer may read of the store [I]."""
    try:
        p = decode_gbz(message.content, cra=message.cra)
        c = p.components[0]
        date = c.payload["implementation_date_time"]
    except (DecodeError, AttributeError, IndexError, KeyError, TypeError):
        raise CommandRejected("malformed", "not a PublishChangeOfTenancy") from None
    gpf.nvm.put(MIRRORS_NS + "_tenancy", "date", date)
    gpf.log_event("change_of_tenancy", date=date)
    return GbzPayload.build([default_response(c)]).encode()


class Gpf(GbcsDevice):
    kind = "gpf"

    HANDLERS = handlers(
        read(MessageCode.CS07),
        join(MessageCode.CS03B),  # any device type [I]
        unjoin(MessageCode.CS04B),
        call(MessageCode.GCS59, _restore),
        *credential_handlers(),  # CS02a-g (firmware.credentials)
        call(MessageCode.CS06, activate_firmware, dated=True, fail=ACTIVATE_FIRMWARE_FAILURE),
        call(MessageCode.GCS13a, _read_from_store),
        call(MessageCode.GCS14, _read_from_store),
        call(MessageCode.GCS33, _read_from_store),
        call(MessageCode.GCS38, _read_from_store),
        call(MessageCode.GCS60, _read_from_store),
        call(MessageCode.GCS16a, _read_from_store),
        call(MessageCode.GCS17, _read_from_store),
        call(MessageCode.GCS16b, _read_from_store),
        call(MessageCode.GCS21m, _read_from_store),
        call(MessageCode.GCS09, _change_of_tenancy),
        *(call(MessageCode[n], _read_from_store) for n in ("GCS15b", "GCS15c", "GCS15d", "GCS15e", "GCS18", "GCS21f", "GCS21d", "GCS21k", "GCS13b", "GCS13c", "GCS21a",
                                                           "GCS21b", "GCS21e", "GCS21j",
                                                           "GCS46", "GCS61")),
    )

    def __init__(self, eui: bytes | str, *, clock, credentials, trust, nvm=None, device_log_capacity: int = 16,
                 stale_after: float = 3600.0, keystore=None, **kw: Any) -> None:
        super().__init__(eui, clock=clock, credentials=credentials, trust=trust, nvm=nvm, **kw)
        self.joined_devices = DeviceLog(self, namespace=DEVICE_LOG_NS, capacity=device_log_capacity,
                                        on_change=self.raise_gcs62)
        self.stale_after = float(stale_after)
        self.keystore = keystore
        self._chf = None
        self.mirror_server: ZclServer | None = None
        self._taps: dict[tuple[bytes, int], tuple[bytes, Message]] = {}
        self.syncs = 0
        self.not_retrieved = 0
        self._pruned: dict[bytes, int] = {}
        # a GSME's model as `litres(cv, cf)`, for the mirror of a GSME that pushes a derived profile
        # (segments, `firmware.derived`) rather than rows: given by the composition (tools.premises)
        self.mirror_litres: dict[bytes, Any] = {}
        # and its prepayment charges (`GasData.ledger`), for the mirror of a GSME that pushes its
        # derived daily reads as stretches to replay (`GasData.pushed_daily`): the composition's too
        self.mirror_ledgers: dict[bytes, Any] = {}
        self._mirrors: dict[bytes, GasData] = {}

    # ------------------------------------------------------------------ the data store
    def mirror(self, gsme: bytes) -> GasData:
        litres = self.mirror_litres.get(gsme)
        if litres is None:
            return GasData(self.nvm.scope("mirror-" + eui_hex(gsme)))
        data = self._mirrors.get(gsme)  # kept: its RAM memo of the derived profile (one per GSME the composition named)
        ledger = self.mirror_ledgers.get(gsme)
        if data is None or data.litres is not litres or data.ledger is not ledger:
            data = self._mirrors[gsme] = GasData(self.nvm.scope("mirror-" + eui_hex(gsme)), litres=litres, ledger=ledger)
        return data

    def mirrored_gsme(self) -> bytes | None:
        keys = self.nvm.keys(MIRRORS_NS)
        return bytes.fromhex(keys[0]) if keys else None

    def last_sync(self, gsme: bytes) -> float | None:
        entry = self.nvm.get(MIRRORS_NS, eui_hex(gsme))
        return None if entry is None else entry.get("last_sync")

    def reliability(self, gsme: bytes) -> int:
        last = self.last_sync(gsme)
        return GPF_RELIABLE if last is not None and self.clock.now() - last <= self.stale_after else UNRELIABLE

    def attach_mirror(self, chf) -> None:
        """Serve the GSME's pushes on the CHF's HAN address (Metering cluster), and the mirror's
        Metering / Prepayment / Price attributes to IHDs and PPMIDs on `MIRROR_ENDPOINT` (module doc)."""
        self._chf = chf
        chf.han_dispatch.add(Cluster.METERING, self._on_mirror_frame)
        self.mirror_server = ZclServer(chf.han_dispatch, endpoint=MIRROR_ENDPOINT, port=chf.han_port,
                                       allow=self._may_read_mirror, clusters={
                                           cluster: self._mirror_provider(cluster)
                                           for cluster in MIRROR_CLUSTERS})

    def _mirror_provider(self, cluster: int):
        def values() -> dict:
            gsme = self.mirrored_gsme()
            return {} if gsme is None else self.mirror(gsme).han_clusters()[cluster]()
        return values

    def _may_read_mirror(self, eui: bytes) -> bool:
        """Joined IHDs and PPMIDs of the CHF device log read the gas mirror [I]; others are
        refused NOT_AUTHORIZED (and logged)."""
        entry = self._chf.device_log_entry(eui) if self._chf is not None else None
        if entry is not None and entry.joined and entry.device_type in (DeviceType.PPMID, DeviceType.TYPE_2):
            return True
        self.log_security("mirror_read_refused", eui=eui_hex(eui))
        return False

    def _on_mirror_frame(self, frame):
        try:
            header, pos = ZclHeader.decode(frame.payload)
            if (header.server_to_client or header.frame_type != FrameType.GLOBAL
                    or header.command_id not in (GeneralCommand.WRITE_ATTRIBUTES, GeneralCommand.READ_ATTRIBUTES)):
                return None
            payload = decode_payload(header, frame.cluster, frame.payload, pos, strict=True)
        except DecodeError:
            return None
        if not isinstance(payload, (WriteAttributes, ReadAttributes)):
            return None
        chf = self._chf
        entry = chf.device_log_entry(frame.src) if chf is not None else None
        if entry is None or not entry.joined or entry.device_type != DeviceType.GSME:
            self.log_security("mirror_refused", eui=eui_hex(frame.src))
            return None
        if isinstance(payload, ReadAttributes):
            return self._answer_flags(frame, header.sequence, payload)
        data = next((r.value for r in payload.records if r.attribute_id == MIRROR_ATTRIBUTE), None)
        if data is None:
            return None
        return self._store_push(frame, header.sequence, bytes(data))

    def notification_flags(self, gsme: bytes) -> int:
        """The GSME's FunctionalNotificationFlags: bit 0 "New OTA firmware" while the CHF offers it
        an image (`han.ota.OtaServer.pending_for`) [S FACTS §3.3]; it reads them each wake."""
        server = getattr(self._chf, "ota_server", None)
        return NEW_OTA_FIRMWARE if server is not None and server.pending_for(gsme) else 0

    async def _answer_flags(self, frame, sequence: int, request: ReadAttributes) -> None:
        records = tuple(ReadAttributeRecord.success(a, ZclType.BITMAP32, self.notification_flags(frame.src))
                        if a == NOTIFICATION_FLAGS_ATTRIBUTE else ReadAttributeRecord.failure(a)
                        for a in request.attribute_ids)
        await self._reply(frame, ReadAttributesResponse(records), sequence, "notification flags")

    async def _store_push(self, frame, sequence: int, data: bytes) -> None:
        try:
            ok = await self.call(("mirror", frame.src, data))
        except Exception as exc:  # noqa: BLE001 - the GSME retries; nothing acknowledged
            log.info("GPF %s: push from %s not stored: %s", self.eui_hex, eui_hex(frame.src), exc)
            return
        if not ok:
            return
        await self._reply(frame, WriteAttributesResponse(), sequence, "push acknowledgement")

    async def _reply(self, frame, payload, sequence: int, what: str) -> None:
        """Answer a GSME's mirror frame from the CHF's HAN address (lost answers are retried by the GSME)."""
        port = self._chf.han_port if self._chf is not None else None
        if port is None:
            return
        reply = ZclFrame.build(payload, sequence=sequence, direction=Direction.SERVER_TO_CLIENT, disable_default_response=True)
        try:
            await port.send(frame.reply(reply.encode()))
        except HanError as exc:
            log.info("GPF %s: %s not sent: %s", self.eui_hex, what, exc)

    def apply_push(self, gsme: bytes, data: bytes) -> bool:
        """A GSME push given in process (derived commissioning of test fleets): as from the HAN."""
        return self._apply_push(gsme, data)

    def _apply_push(self, gsme: bytes, data: bytes) -> bool:
        """Store a push (outside input: every part checked; a malformed one changes nothing and is
        not acknowledged, so the GSME sends it again or the security log tells why)."""
        try:
            body = _checked_push(json.loads(data, object_hook=_unhex), int(self.clock.now()) // 86400)
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
            self.log_security("mirror_malformed", eui=eui_hex(gsme), detail=str(exc)[:200])
            return False
        store = self.mirror(gsme)
        with self.nvm.transaction():
            for day, slots in body["profile"].items():
                store.put_profile_day(day, slots)
            for entry in body["daily"]:
                store.put_daily(entry)
            if body["stretches"]:
                store.apply_stretches(body["stretches"])
            if body["state"]:
                store.apply_state(body["state"])
                if body["events"]:
                    store.put("events", body["events"])
            today = int(self.clock.now()) // 86400
            if self._pruned.get(gsme) != today:  # once a day: the logs keep 13 months
                store.age_daily(today)
                store.prune(today)
                self._pruned[gsme] = today
            self.nvm.put(MIRRORS_NS, eui_hex(gsme), {"last_sync": self.clock.now()})
        self.syncs += 1
        return True

    async def handle_other(self, item: Any) -> Any:
        if isinstance(item, tuple) and item:
            if item[0] == "mirror":
                return self._apply_push(item[1], item[2])
            if item[0] == "tap_command":
                return self._note_command(item[1], item[2])
            if item[0] == "tap_response":
                return self._tap_off(item[1], item[2])
            if item[0] == "not_retrieved":
                return await self._not_retrieved(item[1], item[2])
        return await super().handle_other(item)

    # ------------------------------------------------------------------ tap-off
    def _note_command(self, gsme: bytes, frame: bytes) -> None:
        try:
            command = decode_message(frame)
        except DecodeError:
            return
        if len(self._taps) >= _PENDING_TAPS:
            self._taps.pop(next(iter(self._taps)))
        self._taps[(command.originator, command.originator_counter)] = (gsme, command)

    def _tap_off(self, gsme: bytes, frame: bytes) -> None:
        try:
            response = decode_message(frame)
        except DecodeError:
            return
        if response.cra == CRA.ALERT and response.message_code == MessageCode.FDA_ZigBee and response.originator == gsme:
            self._tap_fda(gsme, response)
            return
        if response.cra != CRA.RESPONSE:
            return
        hit = self._taps.pop((response.recipient, response.originator_counter), None)
        if hit is None:
            return
        queued_for, command = hit
        if queued_for != gsme or response.originator != gsme or response.message_code != command.message_code:
            self._tap_failed(gsme, command, "pair does not match")
            return
        if response.signature and self.keystore is not None:
            key = self.keystore.public_key(gsme, "ds")
            if key is None or not check_signature(key, response):
                self._tap_failed(gsme, command, "response signature")
                return
        store = self.mirror(gsme)
        with self.nvm.transaction():
            try:
                p = decode_gbz(response.content, cra=response.cra)
                if self._hold_future_dated(gsme, command, p):
                    return
                self._apply_command(store, command, p)
                for c in getattr(p, "components", ()):
                    cmd = c.payload
                    if isinstance(cmd, ClusterCommand) and cmd.name == "SupplyStatusResponse":
                        state = {0: "disabled", 1: "armed", 2: "enabled"}.get(cmd["supply_status"])
                        if state:
                            store.put("supply", {"state": state, "cause": "remote"})
                    if isinstance(cmd, ClusterCommand) and cmd.name == "ConsumerTopUpResponse" and cmd["result_type"] == 0:
                        prepay = store.get("prepayment") or {}
                        prepay["credit"] = cmd["credit_remaining"] / MONEY
                        store.put("prepayment", prepay)
            except DecodeError:
                pass  # not GBZ (GCS28's ASN.1): nothing to copy
            self.log_event(TAP_OFF_EVENT, message_code=f"{command.message_code:04X}", counter=command.originator_counter,
                           gsme=eui_hex(gsme))

    # -- future-dated commands: applied when the GSME's FDA says they ran (meter.gsme) --
    def _hold_future_dated(self, gsme: bytes, command: Message, response: Any) -> bool:
        """A future-dated GSME command the GSME accepted: kept (NVM) until its FDA, not applied."""
        if not catalogue.device_future_dated(command.message_code):
            return False
        if any(isinstance(c.payload, DefaultResponse) and c.payload.status != Status.SUCCESS
               for c in getattr(response, "components", ())):
            return False  # refused (fail-next): nothing was held
        try:
            comps = decode_gbz(command.content, cra=command.cra).components
        except (DecodeError, AttributeError):
            return False
        times = {t for t in map(execution_time, comps) if t is not None and t not in NEVER_TIMES}
        if not times or min(times) + ZCL_EPOCH <= self.clock.now():
            return False
        key = f"{eui_hex(gsme)}:{command.originator_counter}"
        held = self.nvm.keys(FUTURE_NS)
        if len(held) >= _PENDING_TAPS:  # bounded: the oldest is forgotten (the GSME's push still carries it)
            self.nvm.delete(FUTURE_NS, held[0])
        self.nvm.put(FUTURE_NS, key, {"message_code": command.message_code, "content": command.content.hex()})
        self.log_event(TAP_OFF_EVENT, message_code=f"{command.message_code:04X}", counter=command.originator_counter,
                       gsme=eui_hex(gsme), held_until=min(times) + ZCL_EPOCH)
        return True

    def _tap_fda(self, gsme: bytes, alert: Message) -> None:
        """The GSME's future-dated alert (0x00CD): on 0x8F66 the held command's named component is
        applied to the mirror now [S FACTS §3.3 Tap-Off Messages: the GPF applies a GSME's alerts too]."""
        if self.keystore is not None:
            key = self.keystore.public_key(gsme, "ds")
            if key is None or not alert.signature or not check_signature(key, alert):
                self.log_security("tap_off_refused", gsme=eui_hex(gsme), reason="FDA signature")
                return
        try:
            body = decode_gbz(alert.content, cra=alert.cra, message_code=alert.message_code)
        except DecodeError:
            return
        fda = getattr(body, "body", None)
        if not isinstance(fda, FutureDatedAlertData):
            return
        key = f"{eui_hex(gsme)}:{fda.originator_counter}"
        held = self.nvm.get(FUTURE_NS, key)
        if held is None or held["message_code"] != fda.message_code:
            return
        ok = body.alert_code == AlertCode.FUTURE_DATE_HAN_INTERFACE_COMMAND_SUCCESSFULLY_ACTIONED
        with self.nvm.transaction():
            try:
                comps = decode_gbz(bytes.fromhex(held["content"]), cra=CRA.COMMAND).components
            except DecodeError:
                comps = ()
            left = [c for c in comps if execution_time(c) is not None and
                    (c.cluster_id, c.header.command_id) != (fda.cluster_id, fda.command_id)]
            store = self.mirror(gsme)
            if ok and store.get("gas") is not None:  # (before its first push the GPF holds no copy)
                for c in comps:
                    if (c.cluster_id, c.header.command_id) == (fda.cluster_id, fda.command_id):
                        apply_command(store, c.payload)
            if left:
                held["content"] = GbzPayload.build(left).encode().hex()
                self.nvm.put(FUTURE_NS, key, held)
            else:
                self.nvm.delete(FUTURE_NS, key)
            self.log_event(TAP_OFF_EVENT, message_code=f"{fda.message_code:04X}", counter=fda.originator_counter,
                           gsme=eui_hex(gsme), future_dated=f"{body.alert_code:04X}")

    def held_future_dated(self) -> dict[str, dict]:
        """Future-dated GSME commands the GPF holds until their FDA, by "GSME-EUI:counter"."""
        return dict(self.nvm.items(FUTURE_NS))

    @staticmethod
    def _apply_command(store: GasData, command: Message, response: Any) -> None:
        """An executed command / response pair: each command component changes the copy as it
        changed the GSME (`gas_data.apply_command`); a response that refuses any changes nothing."""
        if store.get("gas") is None:  # no push yet: the first one carries the whole state
            return
        try:
            comps = decode_gbz(command.content, cra=command.cra).components
        except (DecodeError, AttributeError):
            return
        if any(isinstance(c.payload, DefaultResponse) and c.payload.status != Status.SUCCESS
               for c in getattr(response, "components", ())):
            return  # a refused component: the GSME executed none of them (`gas_data.gbz_failure`)
        for c in comps:
            if c.payload is not None:
                apply_command(store, c.payload)

    def _tap_failed(self, gsme: bytes, command: Message, why: str) -> None:
        self.log_event("tap_off_failed", gsme=eui_hex(gsme), counter=command.originator_counter, reason=why)
        self.spawn(self.raise_alert(AlertCode.TAP_OFF_MESSAGE_RESPONSE_OR_ALERT_FAILURE))

    async def _not_retrieved(self, gsme: bytes, frame: bytes) -> None:
        """A message the GSME did not fetch in time: discarded, logged, alert 0x819D."""
        self.not_retrieved += 1
        counter = None
        try:
            counter = decode_message(frame).originator_counter
        except DecodeError:
            pass
        self.log_event("gsme_command_not_retrieved", gsme=eui_hex(gsme), counter=counter)
        await self.raise_alert(AlertCode.GSME_COMMAND_NOT_RETRIEVED)

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


_MAX_EVENTS = 10  # the GSME sends its last ten events


def _checked_push(body: Any, today: int) -> dict:
    """The parts of a push the store takes, checked: profile days within the 13 months up to
    tomorrow, 48 slots of litres or None; daily reads with an integer time and volume; state
    only under the known keys (`GasData.apply_state`); at most ten events. Raises ValueError."""
    if not isinstance(body, dict):
        raise ValueError("not an object")
    profile = {}
    raw = body.get("profile") or {}
    if not isinstance(raw, dict):
        raise ValueError("profile: an object of days")
    for day, slots in raw.items():
        d = int(day)
        if not today - PROFILE_DAYS <= d <= today + 1:
            raise ValueError(f"profile day {d} out of range")
        if slots is None:
            continue
        if not isinstance(slots, list) or len(slots) != 48 or not all(
                v is None or (type(v) is int and 0 <= v < 1 << 24) for v in slots):
            raise ValueError(f"profile day {d}: 48 slots of litres")
        profile[d] = slots
    daily = []
    entries = body.get("daily") or []
    if not isinstance(entries, list):
        raise ValueError("daily: a list")
    for entry in entries:
        if not (isinstance(entry, dict) and type(entry.get("t")) is int and type(entry.get("volume_l")) is int
                and (today - DAILY_DAYS) * 86400 <= entry["t"] <= (today + 1) * 86400):
            raise ValueError("daily read: integer t (in range) and volume_l")
        daily.append(entry)
    state = body.get("state") or {}
    if not isinstance(state, dict) or not all(isinstance(v, dict) for v in state.values()):
        raise ValueError("state: objects by key")
    if DERIVED in state:
        _check_segments(state[DERIVED], today)
    events = body.get("events") or []
    if not isinstance(events, list) or len(events) > _MAX_EVENTS:
        raise ValueError("events: at most ten")
    stretches = body.get("stretches")
    if stretches is not None:
        check_stretches(stretches, (today - DAILY_DAYS) * 86400, (today + 1) * 86400)
    return {"profile": profile, "daily": daily, "state": state, "events": events, "stretches": stretches}


def _number(v: Any) -> bool:
    return type(v) in (int, float) and math.isfinite(v)


def _check_segments(derived: dict, today: int) -> None:
    """A derived profile's segments (`GasData`): at most one per half hour of the log, each
    [S, e, R, cv, cf], closed (S < e half-hour ends, e within the log's days, in order, none
    overlapping or longer than `MAX_SEGMENT_DAYS`: what deriving them costs is bounded), R within
    a unit, cv and cf positive. Raises ValueError."""
    segs = derived.get("segments")
    if not isinstance(segs, list) or len(segs) > 48 * PROFILE_DAYS or set(derived) != {"segments"}:
        raise ValueError("derived profile: segments, a list")
    lo, hi = (today - PROFILE_DAYS - 1) * 86400, (today + 2) * 86400
    after = 0
    for seg in segs:
        if not (isinstance(seg, list) and len(seg) == 5 and all(_number(v) for v in seg)
                and after <= seg[0] < seg[1] and lo <= seg[1] <= hi and seg[0] % 1800 == 0 and seg[1] % 1800 == 0
                and seg[1] - seg[0] <= MAX_SEGMENT_DAYS * 86400 and -1 <= seg[2] <= 1 and seg[3] > 0 and seg[4] > 0):
            raise ValueError("derived profile: segments [start, end, remainder, cv, cf] in order, none longer "
                             f"than {MAX_SEGMENT_DAYS} days")
        after = seg[1]


def _unhex(d: dict) -> Any:
    return bytes.fromhex(d["hex"]) if len(d) == 1 and "hex" in d else d


__all__ = ["Gpf", "MIRRORS_NS"]
