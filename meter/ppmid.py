"""The PrePayment Meter Interface Device (PPMID): a GBCS device with its own KA / DS keys that
the Comms Hub reaches through a tunnel, joined to the ESME (Method A: CS03A2 here, CS03A1 on the
ESME) and to the GSME (Method C: CS03C on both sides, each carrying the other's KA certificate).

What it does for the household:
* shows credit, emergency credit and debt: the ESME's from its ZSE Prepayment cluster (read
  every `poll_interval` s, like the IHD reads Metering), the GSME's from the PCS01 / PCS02 answers
  and, when `gas_source` names a ZCL server mirroring the GSME (the GPF), from its Prepayment
  cluster [I];
* takes a UTRN a person types (`enter_utrn(digits, fuel=None)`, `gbhub ctl utrn EUI DIGITS`):
  its format and check digit are checked here (a mistyped one is refused at once, nothing is
  sent [I]); electricity goes to the ESME as ZSE ConsumerTopUp (event-logged there as PECS01),
  gas to the GSME as PCS01, which this device builds and MACs itself (KA key agreement with the
  GSME's KA certificate from CS03C). Without `fuel`, a PPMID joined to both meters offers the UTRN
  to the ESME first and, when the ESME finds it not authentic, to the GSME [I: a token is made
  for one meter's KA key, and only that meter can tell]. The meter checks the MAC, the UTRN
  counter and duplicates and raises the spec's alert (0x8F63 not authentic, 0x8F51 duplicate);
  the PPMID shows its verdict;
* activates emergency credit (`activate_emergency_credit(fuel=None)`): ZSE
  SelectAvailableEmergencyCredit to the ESME (PECS02), PCS02 to the GSME.

The GSME is sleepy: PCS01 / PCS02 go up the tunnel to the CHF, which queues them for the GSME's
next wake, so a gas request returns `pending` and its answer arrives later (`display.gas`,
`last_gas_result`). Outgoing gas requests are kept in NVM until answered (`pending_gas`).

Firmware (README "Firmware"; `firmware.update`): it takes images from the CHF over the HAN like
the ESME, CS06 activates one, CS08 reads the running version, and after the reboot it reports
the activation with CS09 (alert 0x8F8B, `gbcs.asn1.FirmwareVersionAlert`: execution time, the
running version, activate-image result 0 success / 1 failure when the image failed its boot check
and the last good one runs again) instead of the generic 0x8F43 / 0x8F1B [I: the payload is the
DCC parser's firmware version alert; no RTDS sample].

State in NVM (namespace "ppmid"): the gas requests awaiting an answer, the last top-up results;
its device log (`firmware.device_log`, which keeps the GSME's KA certificate from CS03C).
"""
from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from gbcs.asn1 import ActivateImageResult, FirmwareVersionAlert
from gbcs.catalogue import AlertCode, DeviceType, MessageCode
from gbcs.codec import DecodeError, eui_hex, parse_eui
from gbcs.frame import CRA, Message, decode_message, mac_frame
from gbcs.security import check_mac, compute_mac
from gbcs.usecases import get as use_case
from gbcs.usecases.ppmid import TopUpResult, consumer_top_up, select_emergency_credit
from gbcs.utrn import UTRN_LENGTH, UtrnError, decode_utrn
from gbcs.zcl import Cluster, Status
from gbhub.firmware.clock import to_datetime
from gbhub.firmware.cosem import EPOCH_2000
from gbhub.firmware.device_log import DeviceLog, join, read, unjoin
from gbhub.firmware.gas_data import MONEY
from gbhub.firmware.gbcs_device import GbcsDevice, call, handlers
from gbhub.firmware.update_handlers import activate_firmware, read_firmware_version
from gbhub.han.aps import HanError
from gbhub.han.zcl_server import ZclClient, ZclError, ZclStatusError, ZclTimeout

from .han_link import TunnelServed

__all__ = ["Ppmid", "MeterCredit", "PpmidDisplay", "parse_utrn_text"]

log = logging.getLogger("gbhub.ppmid")

NS = "ppmid"
DEVICE_LOG_NS = "ppmid_device_log"
DEVICE_LOG_CAPACITY = 4  # an ESME, a GSME and room to change them [I]
RESULTS_KEPT = 5  # last top-up results remembered (like a meter's top-up log)
PENDING_GAS_MAX = 8  # gas requests awaiting the GSME's answer; the oldest is forgotten beyond [I]

# ZSE Prepayment attributes read from the ESME (gbcs.zcl.ATTRIBUTES names)
PAYMENT_CONTROL_CONFIGURATION, CREDIT_REMAINING, EMERGENCY_CREDIT_REMAINING, ACCUMULATED_DEBT = 0x0000, 0x0001, 0x0002, 0x0005
PREPAYMENT_READ = (PAYMENT_CONTROL_CONFIGURATION, CREDIT_REMAINING, EMERGENCY_CREDIT_REMAINING, ACCUMULATED_DEBT)

FUELS = ("electricity", "gas")
_SEPARATORS = re.compile(r"[\s\-]+")


def parse_utrn_text(text: str) -> str:
    """The 20 digits of a UTRN as a person types it (spaces and dashes between groups allowed);
    `UtrnError` (a `gbcs.DecodeError`) for anything else, including a wrong check digit."""
    if not isinstance(text, str):
        raise UtrnError("a UTRN is text", 0, "utrn")
    digits = _SEPARATORS.sub("", text.strip())
    if len(digits) > UTRN_LENGTH:
        raise UtrnError(f"UTRN must be {UTRN_LENGTH} digits, got {len(digits)}", UTRN_LENGTH, "utrn")
    return decode_utrn(digits).encode()


@dataclass(frozen=True, slots=True)
class MeterCredit:
    """One meter's prepayment figures as the PPMID shows them, in pence; None: never read."""

    credit: float | None = None
    emergency_credit: float | None = None
    debt: float | None = None
    prepayment: bool | None = None
    updated_at: float | None = None


@dataclass(frozen=True, slots=True)
class PpmidDisplay:
    electricity: MeterCredit = field(default_factory=MeterCredit)
    gas: MeterCredit = field(default_factory=MeterCredit)
    status: str = "joining"  # joining | joined | ok
    message: str | None = None  # the last top-up / emergency credit outcome, as shown
    error: str | None = None  # why the last ESME read failed

    def to_json(self) -> dict:
        out = {"type": "PpmidDisplay", **asdict(self)}
        for fuel in FUELS:
            t = out[fuel]["updated_at"]
            out[fuel]["updated_at"] = None if t is None else to_datetime(t).isoformat().replace("+00:00", "Z")
        return out


class Ppmid(TunnelServed, GbcsDevice):
    """A PPMID (module doc). `esme_eui` is the meter whose ZSE clusters it reads and tops up
    (the rig's `meter`); `gsme_eui` the gas meter, when there is one; `gas_source` the
    (EUI, endpoint) of a ZCL server mirroring the GSME's Prepayment cluster, if any (rig option
    `gas_source = "EUI:ENDPOINT"`)."""

    kind = "ppmid"

    HANDLERS = handlers(
        join(MessageCode.CS03A2, DeviceType.ESME),
        join(MessageCode.CS03C, DeviceType.GSME),
        unjoin(MessageCode.CS04AC),
        read(MessageCode.CS07),
        call(MessageCode.CS06, activate_firmware, dated=True),  # firmware (README "Firmware")
        call(MessageCode.CS08, read_firmware_version),
    )

    def __init__(
        self,
        eui: bytes | str,
        *,
        clock,
        credentials,
        trust,
        nvm=None,
        chf_eui: bytes | str | None = None,
        esme_eui: bytes | str | None = None,
        gsme_eui: bytes | str | None = None,
        gas_source: tuple[bytes, int] | str | None = None,
        poll_interval: float = 30.0,
        response_timeout: float = 2.0,
        poll_phase: float = 0.0,
        **kw: Any,
    ) -> None:
        super().__init__(eui, clock=clock, credentials=credentials, trust=trust, nvm=nvm, **kw)
        if poll_interval <= 0:
            raise ValueError("poll_interval must be positive")
        if not 0 <= poll_phase < 1:
            raise ValueError("poll_phase is 0 .. 1 (a fraction of poll_interval)")
        self.poll_phase = poll_phase  # where in each interval it polls (fleets spread them) [I]
        self.chf_eui = None if chf_eui is None else parse_eui(chf_eui)
        self.esme_eui = None if esme_eui is None else parse_eui(esme_eui)
        self.gsme_eui = None if gsme_eui is None else parse_eui(gsme_eui)
        if isinstance(gas_source, str):  # rig option "EUI" or "EUI:ENDPOINT"
            eui, _, endpoint = gas_source.partition(":")
            gas_source = (parse_eui(eui), int(endpoint or 1))
        self.gas_source = gas_source
        self.poll_interval = float(poll_interval)
        self.response_timeout = response_timeout
        self.joined_devices = DeviceLog(self, namespace=DEVICE_LOG_NS, capacity=DEVICE_LOG_CAPACITY)
        self.zcl: ZclClient | None = None
        self._keypad = asyncio.Lock()  # one person, one keypad: entries are served in turn
        self._display = PpmidDisplay()

    # ------------------------------------------------------------------ lifecycle
    async def on_boot(self) -> None:
        self.joined_devices.migrate()
        if self.han_port is not None and self.han_dispatch is not None:
            self.zcl = ZclClient(self.han_port, self.han_dispatch, endpoint=1, clock=self.clock,
                                 timeout=self.response_timeout)
        self.every(self.poll_interval, self._tick, offset=self.poll_phase * self.poll_interval)

    def on_power_off(self) -> None:
        if self.zcl is not None:
            self.zcl.close()
        self.zcl = None
        self._display = PpmidDisplay()

    def _tick(self, t: float) -> None:
        if not self.ram.get("poll_queued"):
            self.ram["poll_queued"] = self.post("poll")

    async def handle_other(self, item: Any) -> Any:
        if item == "poll":
            self.ram["poll_queued"] = False
            await self._poll()
            return self.display
        return await super().handle_other(item)

    async def firmware_boot_alert(self, alert_code: int) -> None:
        """CS09 PPMID Firmware Activation Alert (0x012B, alert 0x8F8B, signed) instead of 0x8F43 /
        0x8F1B: the version now running and whether the activated image runs (module doc) [I]."""
        ok = alert_code == AlertCode.CHANGE_IN_THE_EXECUTING_FIRMWARE_VERSION
        content = FirmwareVersionAlert(
            alert_code=AlertCode.READ_FIRMWARE_VERSION_ALERT, execution_date_time=to_datetime(int(self.clock.now())),
            firmware_version=self.firmware_version,
            activate_image=ActivateImageResult.SUCCESS if ok else ActivateImageResult.FAILURE).encode()
        await self.raise_alert(AlertCode.READ_FIRMWARE_VERSION_ALERT, critical=True, message_code=MessageCode.CS09,
                               content=content)

    async def poll_now(self) -> PpmidDisplay:
        """Read the meters now (through the inbox, never overlapping a timed poll)."""
        return await self.call("poll")

    # ------------------------------------------------------------------ joins
    def paired_with(self, eui: bytes) -> bool:
        return eui in self.joined_devices

    def _gsme(self) -> tuple[bytes, ec.EllipticCurvePublicKey] | None:
        """The GSME joined by Method C (CS03C), with the KA key its certificate gave; the
        configured one when `gsme_eui` is set."""
        log = self.joined_devices
        candidates = [self.gsme_eui] if self.gsme_eui is not None else [
            e.entity_id for e in log.entries() if e.device_type == DeviceType.GSME]
        for eui in candidates:
            key = log.ka_key(eui)
            if key is not None:
                return eui, key
        return None

    @property
    def esme(self) -> bytes | None:
        """The ESME this PPMID serves: configured, and in its device log (CS03A2)."""
        return self.esme_eui if self.esme_eui is not None and self.esme_eui in self.joined_devices else None

    # ------------------------------------------------------------------ display
    @property
    def display(self) -> PpmidDisplay:
        d = self._display
        status = "ok" if d.electricity.updated_at is not None or d.gas.updated_at is not None else (
            "joined" if self.esme is not None or self._gsme() is not None else "joining")
        return replace(d, status=status)

    def _show(self, **changes: Any) -> None:
        self._display = replace(self._display, **changes)

    def _update(self, fuel: str, **values: Any) -> None:
        current = getattr(self._display, fuel)
        self._show(**{fuel: replace(current, updated_at=self.clock.now(), **values)})

    async def _poll(self) -> None:
        if self.zcl is None:
            return
        esme = self.esme
        if esme is not None:
            values = await self._read_prepayment(esme, 1)
            if values is not None:
                self._update("electricity", **values)
        if self.gas_source is not None and self._gsme() is not None:
            values = await self._read_prepayment(*self.gas_source)
            if values is not None:
                self._update("gas", **values)

    async def _read_prepayment(self, eui: bytes, endpoint: int) -> dict | None:
        assert self.zcl is not None
        try:
            values = await self.zcl.read_attributes(eui, Cluster.PREPAYMENT, PREPAYMENT_READ, dst_endpoint=endpoint)
        except ZclStatusError as exc:
            self._show(error="not authorised by the meter" if exc.status == Status.NOT_AUTHORIZED else str(exc))
            return None
        except ZclTimeout:
            self._show(error="meter not answering")
            return None
        except (ZclError, HanError) as exc:
            self._show(error=str(exc))
            return None
        if self._display.error is not None:
            self._show(error=None)
        out: dict[str, Any] = {}
        for attr, key in ((CREDIT_REMAINING, "credit"), (EMERGENCY_CREDIT_REMAINING, "emergency_credit"),
                          (ACCUMULATED_DEBT, "debt")):
            if isinstance(values.get(attr), int):
                out[key] = float(values[attr])
        if isinstance(values.get(PAYMENT_CONTROL_CONFIGURATION), int):
            out["prepayment"] = bool(values[PAYMENT_CONTROL_CONFIGURATION] & 0x0001)
        return out

    # ------------------------------------------------------------------ the keypad
    def _fuels(self, fuel: str | None) -> list[str]:
        if fuel is not None:
            if fuel not in FUELS:
                raise ValueError(f"fuel is one of {', '.join(FUELS)}, not {fuel!r}")
            return [fuel]
        return [f for f, ok in (("electricity", self.esme is not None), ("gas", self._gsme() is not None)) if ok]

    async def enter_utrn(self, digits: str, fuel: str | None = None) -> dict:
        """A UTRN typed on the keypad (module doc). Returns what the display shows: `accepted`,
        `result` (a ZSE ConsumerTopUpResponse result name, `pending` for the sleepy GSME,
        `invalid` for a mistyped UTRN, `no_meter` when nothing is joined), `fuel`, and for an
        answered top-up `amount` and `credit` (pence)."""
        self._check_alive()
        try:
            utrn = parse_utrn_text(digits)
        except DecodeError as exc:
            self.log_event("utrn_mistyped", reason=str(exc))
            return self._result({"accepted": False, "result": "invalid", "reason": str(exc)})
        fuels = self._fuels(fuel)
        if not fuels:
            return self._result({"accepted": False, "result": "no_meter", "reason": "joined to no meter"})
        async with self._keypad:
            outcome: dict = {}
            for f in fuels:
                if f == "electricity":
                    outcome = await self._top_up_esme(utrn)
                    if outcome.get("result") != TopUpResult.REJECTED_INVALID.name or len(fuels) == 1:
                        break
                else:
                    outcome = await self._send_gas(MessageCode.PCS01, utrn=utrn)
            return self._result(outcome)

    async def activate_emergency_credit(self, fuel: str | None = None) -> dict:
        """The consumer asks for emergency credit: the ESME (ZSE SelectAvailableEmergencyCredit)
        unless `fuel` is "gas" (PCS02 to the GSME) or only the GSME is joined."""
        self._check_alive()
        fuels = self._fuels(fuel)
        if not fuels:
            return self._result({"accepted": False, "result": "no_meter", "reason": "joined to no meter"})
        async with self._keypad:
            if fuels[0] == "gas":
                return self._result(await self._send_gas(MessageCode.PCS02, now=self.clock.utcnow()))
            assert self.zcl is not None and self.esme is not None
            command = select_emergency_credit(_seconds_2000(self.clock.now()))
            try:
                await self.zcl.command(self.esme, command)
            except ZclStatusError as exc:
                return self._result({"accepted": False, "fuel": "electricity", "result": Status(exc.status).name
                                     if exc.status in Status._value2member_map_ else exc.status})
            except (ZclError, HanError) as exc:
                return self._result({"accepted": False, "fuel": "electricity", "result": "no_answer", "reason": str(exc)})
            self.log_event("emergency_credit_requested", fuel="electricity")
            self.post("poll")
            return self._result({"accepted": True, "fuel": "electricity", "result": "activated"})

    def _result(self, outcome: dict) -> dict:
        self._show(message=outcome.get("result"))
        return outcome

    async def _top_up_esme(self, utrn: str) -> dict:
        assert self.esme is not None
        if self.zcl is None:
            return {"accepted": False, "fuel": "electricity", "result": "no_answer", "reason": "not on a HAN"}
        try:
            answer = await self.zcl.command(self.esme, consumer_top_up(utrn))
        except ZclStatusError as exc:
            return {"accepted": False, "fuel": "electricity", "result": "refused", "reason": str(exc)}
        except (ZclError, HanError) as exc:
            return {"accepted": False, "fuel": "electricity", "result": "no_answer", "reason": str(exc)}
        if answer is None or answer.name != "ConsumerTopUpResponse":
            return {"accepted": False, "fuel": "electricity", "result": "no_answer", "reason": "unexpected answer"}
        code = answer["result_type"]
        result = TopUpResult(code) if code in TopUpResult._value2member_map_ else None
        accepted = result is not None and result.accepted
        out = {"accepted": accepted, "fuel": "electricity", "result": result.name if result is not None else code,
               "amount": answer["top_up_value"], "credit": answer["credit_remaining"]}
        self._update("electricity", credit=float(answer["credit_remaining"]))
        self._remember(out)
        return out

    def _remember(self, outcome: dict) -> None:
        with self.nvm.transaction():
            results = self.nvm.get(NS, "results", [])
            results.append({"t": int(self.clock.now()), **{k: outcome.get(k) for k in ("fuel", "result", "amount", "counter")}})
            self.nvm.put(NS, "results", results[-RESULTS_KEPT:])
            self.log_event("top_up_result", **{k: v for k, v in outcome.items() if k in ("fuel", "result", "amount")})

    # ------------------------------------------------------------------ the GSME (PCS01 / PCS02)
    async def _send_gas(self, code: MessageCode, **params: Any) -> dict:
        gsme = self._gsme()
        if gsme is None:
            return {"accepted": False, "fuel": "gas", "result": "no_meter", "reason": "joined to no GSME"}
        frame, counter = self.build_gas_command(code, **params)
        pending = self.nvm.get(NS, "pending_gas", {})
        pending[str(counter)] = {"use_case": code.name, "t": int(self.clock.now())}
        for old in sorted(pending, key=int)[:-PENDING_GAS_MAX]:
            del pending[old]
        self.nvm.put(NS, "pending_gas", pending)
        await self._send(frame)
        self.log_event("gas_request_sent", use_case=code.name, counter=counter)
        return {"accepted": None, "fuel": "gas", "result": "pending", "counter": counter}

    def build_gas_command(self, code: MessageCode, **params: Any) -> tuple[bytes, int]:
        """PCS01 / PCS02 for the joined GSME: built from its `gbcs.usecases` definition, with
        this PPMID's next counter, MACed with the KA key agreement of the two devices."""
        gsme = self._gsme()
        if gsme is None:
            raise LookupError("this PPMID has joined no GSME (CS03C)")
        eui, key = gsme
        counter = self.next_counter("pcs")
        content = use_case(code.name).build(counter, **params)
        msg = Message(CRA.COMMAND, counter, self.eui, eui, code, content, signature=b"").with_apdu()
        return mac_frame(msg.general_signing(), compute_mac(self.secrets.secret(self.credentials.ka, key), msg)), counter

    @property
    def pending_gas(self) -> dict[int, dict]:
        return {int(k): v for k, v in self.nvm.get(NS, "pending_gas", {}).items()}

    async def process(self, frame: bytes) -> bytes | None:
        """Commands as every GBCS device; the GSME's answers to PCS01 / PCS02 here."""
        try:
            msg = decode_message(frame)
        except DecodeError:
            return await super().process(frame)
        if msg.cra == CRA.RESPONSE and msg.message_code in (MessageCode.PCS01, MessageCode.PCS02):
            self._gas_answer(msg)
            return None
        return await super().process(frame)

    def _gas_answer(self, msg: Message) -> None:
        gsme = self._gsme()
        pending = self.nvm.get(NS, "pending_gas", {})
        key = str(msg.originator_counter)
        if gsme is None or msg.originator != gsme[0] or msg.recipient != self.eui or key not in pending:
            self.log_security("unexpected_message", cra="response", message_code=msg.message_code)
            return
        if msg.mac is None or not check_mac(self.secrets.secret(self.credentials.ka, gsme[1]), msg):
            self.log_security("bad_mac", message_code=msg.message_code, originator=eui_hex(msg.originator))
            return
        summary = use_case(MessageCode(msg.message_code).name).interpret(msg)
        outcome = {"accepted": bool(summary.get("ok")), "fuel": "gas", "counter": msg.originator_counter,
                   "result": summary.get("result", summary.get("status", "answered"))}
        if "top_up_value" in summary:
            outcome["amount"] = summary["top_up_value"]
        with self.nvm.transaction():
            del pending[key]
            self.nvm.put(NS, "pending_gas", pending)
            self._remember(outcome)
        if isinstance(summary.get("credit_remaining"), int):  # ZSE money (1/100000 £) [O RTDS PCS01]: shown in pence
            self._update("gas", credit=summary["credit_remaining"] / MONEY)
        self._show(message=outcome["result"])
        self.ram["last_gas_result"] = outcome

    @property
    def last_gas_result(self) -> dict | None:
        return self.ram.get("last_gas_result")

    @property
    def results(self) -> list[dict]:
        """The last top-up results (persisted)."""
        return list(self.nvm.get(NS, "results", []))

    def to_json(self) -> dict:
        return {"type": "Ppmid", "eui": self.eui_hex, "state": self.state,
                "esme": None if self.esme is None else eui_hex(self.esme),
                "gsme": None if self._gsme() is None else eui_hex(self._gsme()[0]),
                "display": self.display.to_json()}


def _seconds_2000(t: float) -> int:
    return max(0, int(t - EPOCH_2000))

