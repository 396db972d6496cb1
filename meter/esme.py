"""The electricity meter (ESME): the GBCS use cases an SMETS2 ESME answers, over a COSEM object
model projected from its state (`firmware.cosem`), with metering driven by a seeded consumption
model. Prepayment is in `meter.prepayment`, the ZCL projection IHDs read in `meter.esme_zcl`.

What it keeps in NVM (survives power cuts and SIGKILL; `self.nvm`, scoped to the EUI):
registers (import / export / reactive, 48 TOU registers), the half-hourly profile log (13 months)
and the daily read log, the supply switch state (enabled / disabled / armed), the clock offset
(device clock = shared clock + offset), tariff objects (active and passive), pending future-dated
tariff activations, prepayment (mode, credit, emergency credit, debt, UTRN counter cache), and
its own device log of HAN devices (`firmware.device_log`). With `profile_storage="derived"` (fleets)
the profile log keeps only the half hours its consumption model cannot give; the rest are computed
when read from the segments it keeps (`firmware.derived`, README "Profiles derived from the seeded
model") [I], and the daily read log only the reads that replaying its close over the profile does not
give (`meter.esme_daily`) [I]. A half-hour close's writes are deferred to the meter's next durable
write (`meter.model.close_half_hours`): after a crash the catch-up closes them again.

Use cases (`Esme.HANDLERS`; what each may ask for is the use case's definition in `gbcs.usecases`;
response shapes follow the RTDS response vectors):
  ECS17b  Get Protected Attributes of the import registers (import Wh + reactive varh), encrypted
  ECS17c  Get instantaneous power
  ECS22b  Get Protected Attributes of the half-hour profile by range, encrypted
  ECS21a  Get Protected Attributes of the daily read log by range, encrypted
  ECS24   Gets on the tariff objects (calendar, charges, thresholds, special days)
  ECS01a / ECS01b  Sets on the passive tariff + activation times (now, future, never; a future
          one runs on time and alerts 0x8F66 in message code FDA_DLMS: `firmware.future`
          activation attributes); ACTIVATIONS
  ECS35a/b  event / security log by range (compact arrays)
  ECS42/43/44  load switch script table, scripts 51 / 52 / 54
  ECS45   disconnect control control_state
  ECS52   firmware version
  CS06    activate firmware (immediate, future-dated, cancelled; `firmware.update`)
  ECS70   clock: preset with validity window, adjust, read back
  CS01a   top-up: UTRN into the token gateway (gbcs.utrn)
  PECS01/PECS02  its PPMID's ZSE ConsumerTopUp / SelectAvailableEmergencyCredit (`meter.esme_zcl`)
  CS03A1/CS03B/CS04AC/CS04B/CS07  the ESME's own device log (ASN.1, `firmware.device_log`)
  the rest of the catalogue's ESME use cases (prepayment, billing, maximum demand, load limiting,
          voltage quality, identities, event behaviours, auxiliary load control ...): tables of
          Gets/Sets/Actions (`gbcs.usecases.esme_config`) on the objects of `meter.esme_objects`,
          whose passive values take effect through the same activation attributes as the tariff
          (`firmware.future`; ECS02/03, ECS08/08a, ECS28a, ECS46c/d, ECS01c/d: now, a future
          date-time, or never)
  Meter variants (`variant`: single, twin, polyphase, twin-polyphase): `meter.esme_objects`.
  ECS25a/a1/a2/a3  alert and event behaviours (`meter.esme_events`, which also raises the ESME's
          events from their causes and declares its faults: `gbhub ctl fault`)

Choices no source fixes are tagged [I]/[U] where they are made.
"""
from __future__ import annotations

import bisect
import logging
import math
from datetime import datetime, timezone
from typing import Any, Callable, Iterable

from cryptography.hazmat.primitives.asymmetric import ec

from gbcs.catalogue import AlertCode, DeviceType, MessageCode
from gbcs.codec import parse_eui
from gbcs.dlms import (
    Data,
    DataNotification,
    DataType,
    ProtectedData,
    ProtectionParameters,
    RequestSpec,
    decode_data,
    frozen,
    obis_text,
)
from gbcs.frame import Message
from gbcs.obis import BLOCK_THRESHOLDS, BLOCK_THRESHOLDS_PASSIVE, OBIS, CosemObjectId
from gbcs.usecases.esme_config import POLYPHASE_ONLY, TWIN_ONLY
from gbcs.security import encrypt_part
from gbcs.utrn import DEFAULT_CACHE_SIZE
from gbhub.firmware import cosem
from gbhub.firmware.clock import DAY, HALF_HOUR
from gbhub.firmware.cosem import (
    DOUBLE_LONG_UNSIGNED,
    LONG_UNSIGNED,
    OCTET_STRING,
    Attribute,
    CosemError,
    CosemObject,
    ObjectModel,
    compact_array,
)
from gbhub.firmware.credentials import credential_handlers
from gbhub.firmware.device import EVENT_LOG, SECURITY_LOG
from gbhub.firmware.derived import Cumulative, boundaries, rounded_steps
from gbhub.firmware.device_log import DeviceLog, join, read, unjoin
from gbhub.firmware.future import activation as future_activation
from gbhub.firmware.gbcs_device import CommandRejected, GbcsDevice, Outcome, call, dlms, handlers
from gbhub.firmware.tariff import Calendar
from gbhub.firmware.update_handlers import ACTIVATE_FIRMWARE_FAILURE, activate_firmware
from gbhub.han.transport import ClusterDispatch
from gbhub.han.tunnel import TunnelHost, TunnelServer

from .han_link import TunnelServed
from .esme_state import (
    BLOCK_TIERS,
    BLOCKS,
    COSEM_NS,
    DEVICE_LOG_NS,
    NS,
    PROFILE_LOG,
    PROFILE_SEGMENTS,
    PROFILE_STORAGE,
    REACTIVE_RATIO,
    SUPPLY_ARMED,
    SUPPLY_DISABLED,
    SUPPLY_ENABLED,
    SUPPLY_STATES,
    TOU_TIERS,
)
from .esme_objects import CONFIG_ACTIVATIONS, PAYMENT_MODE_ACTIVATION, EsmeObjects, config_defaults
from .esme_daily import DAILY_LOG_CAPACITY, EsmeDaily
from .esme_events import EsmeEvents
from .esme_zcl import EsmeZcl
from .model import ConsumptionModel, close_half_hours

from .prepayment import UTRN_LOCKOUT_ATTEMPTS, UTRN_LOCKOUT_SECONDS, Prepayment

log = logging.getLogger("gbhub.esme")

# ------------------------------------------------------------------------------------------ data
# scaler-units (scaler 0) of the register reads, encoded once
_SCALER_UNIT_WH = frozen(Data.structure(Data.integer(0), Data.enum(30)))
_SCALER_UNIT_VARH = frozen(Data.structure(Data.integer(0), Data.enum(32)))
_SCALER_UNIT_W = frozen(Data.structure(Data.integer(0), Data.enum(27)))

PROFILE_LOG_CAPACITY = 13 * 31 * 48  # 13 months of half-hours [S FACTS 3.4, L+G E470]
DEVICE_LOG_CAPACITY = 16  # [U] HAN devices the ESME keeps in its own Device Log

CONTROL_STATE = {SUPPLY_DISABLED: 0, SUPPLY_ENABLED: 1, SUPPLY_ARMED: 2}  # DLMS disconnect control
SCRIPT_ENABLE, SCRIPT_DISABLE, SCRIPT_ARM = 51, 52, 54  # load switch scripts [O RTDS ECS42/43/44]

HAN_CLOCK_TOLERANCE = 10.0  # seconds: a HAN time sync never moves the clock further (alert 0x8F0C) [I]
# security-log code of an unexpected message [I]
_UNEXPECTED_MESSAGE = AlertCode.UNUSUAL_NUMBERS_OF_MALFORMED_OUT_OF_ORDER_OR_UNEXPECTED_COMMANDS_RECEIVED


def is_critical_alert(alert_code: int) -> bool:
    """0x8Fxx alerts are signed (critical), the others MACed [I from RTDS: GCA carries 0x8F30,
    GNCA 0x810E; FACTS Appendix C]."""
    return alert_code & 0xFF00 == 0x8F00


# ---------------------------------------------------------------------------------- objects
_Attr = tuple  # (class id, OBIS, attribute)


def _attr(oid: CosemObjectId, attribute: int) -> _Attr:
    return (oid.class_id, oid.obis, attribute)


# Tariff switching: writing an activation attribute (key) copies passive values to active ones.
# Layout of ECS01a as a DCC/GFI test message sets it (gbcs.usecases) [O there; meanings I].
ACTIVATIONS: dict[_Attr, tuple[tuple[_Attr, _Attr], ...]] = {
    _attr(OBIS.ACTIVITY_CALENDAR, 10): tuple((_attr(OBIS.ACTIVITY_CALENDAR, p), _attr(OBIS.ACTIVITY_CALENDAR, a))
                                             for p, a in ((6, 2), (7, 3), (8, 4), (9, 5))),
    _attr(OBIS.STANDING_CHARGE, 7): ((_attr(OBIS.STANDING_CHARGE, 6), _attr(OBIS.STANDING_CHARGE, 5)),),
    _attr(OBIS.UNIT_CHARGE, 7): ((_attr(OBIS.UNIT_CHARGE, 6), _attr(OBIS.UNIT_CHARGE, 5)),),
    _attr(OBIS.BLOCK_MODE, 6): ((_attr(OBIS.BLOCK_MODE, 4), _attr(OBIS.BLOCK_MODE, 2)),),
    _attr(OBIS.SPECIAL_DAYS_SWITCH, 6): ((_attr(OBIS.SPECIAL_DAYS_TABLE_PASSIVE, 2), _attr(OBIS.SPECIAL_DAYS_TABLE, 2)),),
    _attr(OBIS.BLOCK_THRESHOLDS_SWITCH, 6): tuple((_attr(p, 2), _attr(a, 2))
                                                  for p, a in zip(BLOCK_THRESHOLDS_PASSIVE, BLOCK_THRESHOLDS)),
}
# What a tariff command may write: passive values, activation times, the currency register [I].
TARIFF_WRITABLE: frozenset[_Attr] = frozenset(
    [_attr(OBIS.ACTIVITY_CALENDAR, a) for a in (6, 7, 8, 9)] + [_attr(OBIS.CURRENCY_UNITS, 2), _attr(OBIS.CURRENCY_UNITS, 3)]
    + [src for copies in ACTIVATIONS.values() for src, _dst in copies] + list(ACTIVATIONS)
)
# What each data protection object (class 30) lets a Get Protected Attributes read: its
# protection_object_list (Blue Book class 30 attribute 3) [O RTDS ECS17b/ECS21a/ECS22b].
PROTECTION_OBJECTS: dict[CosemObjectId, frozenset[tuple[int, bytes]]] = {
    OBIS.ENERGY_REGISTERS_PROTECTION: frozenset({OBIS.IMPORT_ENERGY_REGISTERS.key}),
    OBIS.PROFILE_DATA_PROTECTION: frozenset({OBIS.ACTIVE_IMPORT_PROFILE.key}),
    OBIS.DAILY_READ_PROTECTION: frozenset({OBIS.DAILY_READ_LOG.key}),
}


def _runs_script(script: int) -> Callable[[RequestSpec, Data], None]:
    """ECS42/43/44 each run one load switch script: content asking for another is malformed."""

    def check(spec: RequestSpec, value: Data) -> None:
        if value.type is not DataType.LONG_UNSIGNED or value.value != script:
            raise CommandRejected("malformed", f"this use case runs script {script}")

    return check


# ------------------------------------------------------------------------------- tariff defaults
def _never() -> Data:
    return Data.timestamp(None)


def _charge(commodity_scale: int, price_scale: int, commodity: Data, table: Iterable[tuple[bytes, int]]) -> Data:
    """Charge (class 113) unit_charge: {{commodity scale, price scale}, commodity reference, table}."""
    return Data.structure(
        Data.structure(Data.integer(commodity_scale), Data.integer(price_scale)),
        commodity,
        Data.array(*(Data.structure(Data.octet_string(i), Data.long(c)) for i, c in table)),
    )


def _charge_indices() -> list[bytes]:
    """The unit-charge table indices as RTDS lists them: TOU tiers 01..30 (hex), then block
    prices A1..A8, B1..B8, C1..C8, D1..D8 [O RTDS ECS24]."""
    return [bytes((t,)) for t in range(1, TOU_TIERS + 1)] + [
        bytes((0xA0 + 0x10 * b + t,)) for b in range(BLOCKS) for t in range(1, BLOCK_TIERS + 1)
    ]


def default_tariff() -> dict[tuple[int, bytes, int], Data]:
    """Factory tariff: a single-rate day (tier 1 from 00:00), 25 p/kWh, 50 p/day standing charge
    [I]. Keys are (class id, OBIS, attribute)."""
    season = Data.array(Data.structure(Data.octet_string(b"\x01"), Data.timestamp(datetime(2000, 1, 1, tzinfo=timezone.utc)),
                                       Data.octet_string(b"\x01")))
    week = Data.array(Data.structure(Data.octet_string(b"\x01"), *(Data.unsigned(1) for _ in range(7))))
    day = Data.array(Data.structure(Data.unsigned(1), Data.array(
        Data.structure(Data.octet_string(b"\x00\x00\x00\x00"), Data.obis(OBIS.TARIFF_SWITCHING_SCRIPT_TABLE.obis), Data.long_unsigned(1)))))
    name = Data.octet_string(b"\x01")
    unit = _charge(3, -5, Data.structure(Data.long_unsigned(3), Data.obis(OBIS.ACTIVE_IMPORT_REGISTER.obis), Data.integer(2)),
                   [(i, 25000 if i == b"\x01" else 0) for i in _charge_indices()])
    standing = _charge(0, -4, Data.structure(Data.long_unsigned(0), Data.octet_string(bytes(6)), Data.integer(0)),
                       [(b"", 5000)])
    no_thresholds = Data.array(*(Data.double_long_unsigned(0xFFFFFFFF) for _ in range(3)))
    values: dict[tuple[int, bytes, int], Data] = {
        _attr(OBIS.CURRENCY_UNITS, 2): Data.double_long_unsigned(1),
        _attr(OBIS.CURRENCY_UNITS, 3): Data.structure(Data.integer(-5), Data.enum(254)),
        _attr(OBIS.ACTIVITY_CALENDAR, 2): name, _attr(OBIS.ACTIVITY_CALENDAR, 3): season, _attr(OBIS.ACTIVITY_CALENDAR, 4): week,
        _attr(OBIS.ACTIVITY_CALENDAR, 5): day, _attr(OBIS.ACTIVITY_CALENDAR, 6): name, _attr(OBIS.ACTIVITY_CALENDAR, 7): season,
        _attr(OBIS.ACTIVITY_CALENDAR, 8): week, _attr(OBIS.ACTIVITY_CALENDAR, 9): day, _attr(OBIS.ACTIVITY_CALENDAR, 10): _never(),
        _attr(OBIS.SPECIAL_DAYS_TABLE, 2): Data.array(), _attr(OBIS.SPECIAL_DAYS_TABLE_PASSIVE, 2): Data.array(),
        _attr(OBIS.BLOCK_MODE, 2): Data.boolean(False), _attr(OBIS.BLOCK_MODE, 4): Data.boolean(False),
        _attr(OBIS.BLOCK_MODE, 6): _never(), _attr(OBIS.SPECIAL_DAYS_SWITCH, 6): _never(),
        _attr(OBIS.BLOCK_THRESHOLDS_SWITCH, 6): _never(),
        _attr(OBIS.STANDING_CHARGE, 5): standing, _attr(OBIS.STANDING_CHARGE, 6): standing,
        _attr(OBIS.STANDING_CHARGE, 7): _never(),
        _attr(OBIS.UNIT_CHARGE, 5): unit, _attr(OBIS.UNIT_CHARGE, 6): unit, _attr(OBIS.UNIT_CHARGE, 7): _never(),
    }
    for o in BLOCK_THRESHOLDS + BLOCK_THRESHOLDS_PASSIVE:
        values[_attr(o, 2)] = no_thresholds
    return values



def _key(class_id: int, ln: bytes, attribute: int) -> str:
    return f"{class_id}/{ln.hex()}/{attribute}"


# what `Esme._calendar` reads: the active activity calendar and special days table
_CALENDAR_KEYS = frozenset(_key(oid.class_id, oid.obis, a) for oid, a in (
    (OBIS.ACTIVITY_CALENDAR, 3), (OBIS.ACTIVITY_CALENDAR, 4), (OBIS.ACTIVITY_CALENDAR, 5), (OBIS.SPECIAL_DAYS_TABLE, 2)))
_CALENDAR_ORDER = tuple(sorted(_CALENDAR_KEYS))
_CALENDARS: dict[tuple, Calendar] = {}  # `Esme._calendar`'s shared memo
_CALENDARS_KEPT = 64


def _octets(value: Data) -> bytes:
    if value.type is not DataType.OCTET_STRING:
        raise ValueError("octet-string expected")
    return value.value


def _shape_like(template: Data) -> Callable[[Data], bool]:
    """A value check: same top-level DLMS type as the factory value."""
    return lambda value: value.type is template.type


# ------------------------------------------------------------------------------------------ Esme

def _imports(reg: dict, partial: int) -> tuple[int, int]:
    """Live (import Wh, reactive import varh) from the stored registers and the open interval's Wh."""
    return reg["import_wh"] + partial, reg["reactive_varh"] + int(math.floor(partial * REACTIVE_RATIO + 0.5))

class Esme(EsmeDaily, EsmeEvents, EsmeObjects, Prepayment, EsmeZcl, TunnelServed, GbcsDevice):
    """An SMETS2 electricity meter. See the module docstring for the use cases and NVM state.

    `prepayment_key` is the supplier's prepayment KA public key (its prePaymentTopUp trust anchor,
    for UTRNs), `prepayment_supplier` the supplier EUI it belongs to (default: the supplier trust
    anchor). `chf_eui` is the Comms Hub Function whose tunnel the ESME serves (None: any).
    `model` / `export_model` say what the premises draw / generate; `registers` gives the
    factory register values (`import_wh`, `export_wh`, `reactive_varh`) used on first boot only.
    `gbt_limit` / `gbt_block_size` (GbcsDevice): messages longer than the limit go up in GBT blocks
    (FACTS 1.9). `variant` is the meter variant (`meter.esme_objects`): single, twin, polyphase or
    twin-polyphase.
    """

    kind = "esme"

    HANDLERS = handlers(
        dlms(MessageCode.ECS17b, dated=True),
        dlms(MessageCode.ECS17c, dated=True),
        dlms(MessageCode.ECS22b),
        dlms(MessageCode.ECS21a),
        dlms(MessageCode.ECS24),
        dlms(MessageCode.ECS01a, dated=True, future=True),
        dlms(MessageCode.ECS01b, dated=True, future=True),
        dlms(MessageCode.ECS35a),
        dlms(MessageCode.ECS35b),
        dlms(MessageCode.ECS42, check=_runs_script(SCRIPT_ENABLE)),
        dlms(MessageCode.ECS43, check=_runs_script(SCRIPT_DISABLE)),
        dlms(MessageCode.ECS44, check=_runs_script(SCRIPT_ARM)),
        dlms(MessageCode.ECS45),
        dlms(MessageCode.ECS52),
        call(MessageCode.CS06, activate_firmware, dated=True, fail=ACTIVATE_FIRMWARE_FAILURE),
        dlms(MessageCode.ECS70),
        dlms(MessageCode.CS01a, dated=True),
        # the further ESME use cases (gbcs.usecases.esme_config; objects: meter.esme_objects)
        *(dlms(code) for code in (
            MessageCode.ECS04a, MessageCode.ECS04b, MessageCode.ECS05,
            MessageCode.ECS07, MessageCode.ECS09, MessageCode.ECS10,
            MessageCode.ECS12, MessageCode.ECS14, MessageCode.ECS15a, MessageCode.ECS15c, MessageCode.ECS16,
            MessageCode.ECS17a, MessageCode.ECS17d, MessageCode.ECS18a, MessageCode.ECS18b,
            MessageCode.ECS20a, MessageCode.ECS20d, MessageCode.ECS21b, MessageCode.ECS21c,
            MessageCode.ECS22a, MessageCode.ECS22c, MessageCode.ECS23, MessageCode.ECS23b,
            MessageCode.ECS25a, MessageCode.ECS25b, MessageCode.ECS25a1, MessageCode.ECS25a2, MessageCode.ECS25a3,
            MessageCode.ECS25b3, MessageCode.ECS25r1, MessageCode.ECS25r2,
            MessageCode.ECS26a, MessageCode.ECS26b, MessageCode.ECS26c, MessageCode.ECS26d, MessageCode.ECS26e,
            MessageCode.ECS26f, MessageCode.ECS26j, MessageCode.ECS26k, MessageCode.ECS26l, MessageCode.ECS26m,
            MessageCode.ECS27, MessageCode.ECS28b, MessageCode.ECS29a, MessageCode.ECS29b,
            MessageCode.ECS29c, MessageCode.ECS29d, MessageCode.ECS29e, MessageCode.ECS29f, MessageCode.ECS30,
            MessageCode.ECS30a, MessageCode.ECS34, MessageCode.ECS35e, MessageCode.ECS35f, MessageCode.ECS35g,
            MessageCode.ECS37, MessageCode.ECS38, MessageCode.ECS39a, MessageCode.ECS39b, MessageCode.ECS40,
            MessageCode.ECS46a, MessageCode.ECS47, MessageCode.ECS47a,
            MessageCode.ECS47e, MessageCode.ECS48, MessageCode.ECS50, MessageCode.ECS57, MessageCode.ECS61a,
            MessageCode.ECS61c, MessageCode.ECS61d, MessageCode.ECS61e, MessageCode.ECS62, MessageCode.ECS81,
            MessageCode.ECS82, MessageCode.ECS24b)),
        # future-dated: an execution date-time in activation attributes (firmware.future)
        *(dlms(code, future=True) for code in (MessageCode.ECS02, MessageCode.ECS03, MessageCode.ECS08, MessageCode.ECS08a,
                                               MessageCode.ECS28a, MessageCode.ECS46c, MessageCode.ECS46d, MessageCode.ECS01c,
                                               MessageCode.ECS01d)),
        *(dlms(code, dated=True) for code in (MessageCode.ECS17e, MessageCode.ECS19, MessageCode.ECS20b,
                                              MessageCode.ECS20c, MessageCode.ECS66)),
        # Method A for devices that exchange GBCS messages with the ESME (PPMID, HCALCS), Method B
        # for Type 2 devices (IHD/CAD) and the GPF [I]
        join(MessageCode.CS03A1, DeviceType.PPMID, DeviceType.HCALCS),
        join(MessageCode.CS03B, DeviceType.TYPE_2, DeviceType.GPF),
        unjoin(MessageCode.CS04AC),
        unjoin(MessageCode.CS04B),
        read(MessageCode.CS07),
        *credential_handlers(),  # CS02a-g (firmware.credentials)
    )
    # The invoke-id's break-on-error flag is honoured: after a failing request the rest answer
    # other-reason (250), as every RTDS ESME ERROR response shows (e.g. ECS26a: ..., 1, 250) [O].
    BREAK_ON_ERROR = True

    def __init__(
        self,
        eui: bytes | str,
        *,
        clock,
        credentials,
        trust,
        nvm=None,
        prepayment_key: ec.EllipticCurvePublicKey | None = None,
        prepayment_supplier: bytes | str | None = None,
        chf_eui: bytes | str | None = None,
        model: ConsumptionModel | None = None,
        export_model: ConsumptionModel | None = None,
        secondary_model: ConsumptionModel | None = None,
        registers: dict[str, int] | None = None,
        clock_offset: float = 0.0,
        payment_mode: str = "credit",
        credit_pence: float = 0.0,
        emergency_credit_pence: float = 0.0,
        utrn_cache_size: int = DEFAULT_CACHE_SIZE,
        emergency_credit_activation: str = "auto",
        variant: str = "single",
        profile_storage: str = "stored",
        utrn_lockout_attempts: int = UTRN_LOCKOUT_ATTEMPTS,
        utrn_lockout_seconds: float = UTRN_LOCKOUT_SECONDS,
        **kw: Any,
    ) -> None:
        super().__init__(eui, clock=clock, credentials=credentials, trust=trust, nvm=nvm, **kw)
        if payment_mode not in ("credit", "prepayment"):
            raise ValueError("payment_mode is 'credit' or 'prepayment'")
        if profile_storage not in PROFILE_STORAGE:
            raise ValueError(f"profile_storage is one of {', '.join(PROFILE_STORAGE)}")
        self.derived_profile = profile_storage == "derived"
        self._cumulative: dict[tuple[float, int], Cumulative] = {}  # RAM memo of derived segments
        self._daily_memo: tuple[float, float, dict] | None = None  # (stretch, midnight, read) last derived
        self._calendar_memo: tuple[tuple, Calendar] | None = None
        self.prepayment_key = prepayment_key
        self._prepayment_supplier = None if prepayment_supplier is None else parse_eui(prepayment_supplier)
        self.chf_eui = None if chf_eui is None else parse_eui(chf_eui)
        self.model = model if model is not None else ConsumptionModel()
        self.export_model = export_model
        self.utrn_cache_size = utrn_cache_size
        if emergency_credit_activation not in ("auto", "consumer"):
            raise ValueError("emergency_credit_activation is 'auto' or 'consumer'")
        self.emergency_credit_activation = emergency_credit_activation
        if int(utrn_lockout_attempts) < 0 or float(utrn_lockout_seconds) < 0:
            raise ValueError("utrn_lockout_attempts and utrn_lockout_seconds are >= 0")
        self.utrn_lockout_attempts, self.utrn_lockout_seconds = int(utrn_lockout_attempts), float(utrn_lockout_seconds)
        self._factory = {
            "registers": dict(registers or {}),
            "clock_offset": float(clock_offset),
            "payment_mode": payment_mode,
            "credit": float(credit_pence),
            "ec": float(emergency_credit_pence),
        }
        self._set_variant(variant)
        # a twin element meter's second element: an off-peak load by default [I] (meter.model)
        self.secondary_model = (None if not self.twin else secondary_model if secondary_model is not None
                                else ConsumptionModel(seed=(model.seed if model is not None else 0) + 1, base_w=0.0,
                                                      peak_w=3000.0, night=True))
        # factory values, access modes and COSEM objects: one set per class and variant, shared
        # by every ESME (`firmware.cosem`); what a command changes goes to this ESME's NVM
        self._defaults, self._config_modes, model = type(self)._shared_model(self.variant)
        self.objects = model.bind(self)
        self.joined_devices = DeviceLog(self, namespace=DEVICE_LOG_NS, capacity=DEVICE_LOG_CAPACITY)
        self._alerts: list[tuple[int, dict]] = []
        self._command: Message | None = None
        self._rearm_after = False
        self.han_port = None
        self._profile_t: list[int] = []
        self._profile_wh: list[int] = []
        self._profile_ex: list[int] = []
        self._profile_sec: list[int] = []
        self._profile_loaded = False
        self._half_hour_timer = None
        self.tunnel: TunnelServer | None = None
        self.tunnel_host: TunnelHost | None = None
        self.han_dispatch: ClusterDispatch | None = None
        self._last_tunnel_peer: bytes | None = None

    # ============================================================================ lifecycle
    async def on_boot(self) -> None:
        self._ensure_state()
        self.joined_devices.migrate()
        self._load_profile()
        now = self.device_now()
        self._alerts.clear()
        self._catch_up(now)
        alerts = self._take_alerts()
        self._arm_half_hour()
        self._arm_pending()
        self._events_boot()
        if alerts:
            self.spawn(self._send_alerts(alerts))

    def on_power_off(self) -> None:
        self._events_off()
        self._half_hour_timer = None
        self._profile_loaded = False
        self._profile_t, self._profile_wh, self._profile_ex, self._profile_sec = [], [], [], []
        self._cumulative = {}
        self._daily_memo = self._calendar_memo = None
        self._alerts.clear()

    def _ensure_state(self) -> None:
        if self.nvm.get(NS, "metering") is not None:
            return
        f = self._factory
        reg = f["registers"]
        with self.nvm.transaction():
            now = self.clock.now() + f["clock_offset"]
            last = math.floor(now / HALF_HOUR + 1e-9) * HALF_HOUR
            self.nvm.put(NS, "clock_offset", f["clock_offset"])
            self.nvm.put(NS, "registers", {
                "import_wh": int(reg.get("import_wh", 0)),
                "export_wh": int(reg.get("export_wh", 0)),
                "reactive_varh": int(reg.get("reactive_varh", 0)),
                "tou_wh": [0] * TOU_TIERS,
                "block_wh": [[0] * BLOCK_TIERS for _ in range(BLOCKS)],
                "day_start_wh": int(reg.get("import_wh", 0)),
                "previous_day_wh": 0,
            })
            self.nvm.put(NS, "metering", {"last_period": last, "acc_t": now, "acc_wh": 0.0, "acc_ex": 0.0})
            self.nvm.put(NS, "supply", {"state": SUPPLY_ENABLED, "cause": None})
            self.nvm.put(NS, "prepayment", {
                "mode": f["payment_mode"], "credit": f["credit"], "ec_limit": f["ec"], "ec_remaining": f["ec"],
                "debt": 0.0, "total_added": 0.0,
            })
            self.nvm.put(NS, "utrn_counters", [])

    # ============================================================================ clock
    @property
    def clock_offset(self) -> float:
        return float(self.nvm.get(NS, "clock_offset", self._factory["clock_offset"]))

    def device_now(self) -> float:
        """The meter's own clock: the shared clock plus the persisted offset."""
        return self.clock.now() + self.clock_offset

    def _set_device_time(self, target: float) -> float:
        """Move the device clock to `target` (inside a transaction). Energy accounting follows
        true time, so the open interval shifts with the clock. Returns the adjustment."""
        old_now = self.device_now()
        delta = round(target - old_now, 3)
        self._account(old_now)
        m = self.nvm.get(NS, "metering")
        m["acc_t"] = m["acc_t"] + delta
        if self.derived_profile:
            m["dirty"] = True  # the open half hour is no longer the model's alone
        self.nvm.put(NS, "metering", m)
        self.nvm.put(NS, "clock_offset", round(self.clock_offset + delta, 3))
        self._catch_up(self.device_now())
        return delta

    def sync_clock(self, reference: float) -> bool:
        """A time sync from the HAN time server (the CHF's Time cluster): adjust within
        HAN_CLOCK_TOLERANCE seconds, else leave the clock and raise 0x8F0C [I]."""
        self._check_alive()
        self._alerts.clear()
        with self.nvm.transaction():
            delta = reference - self.device_now()
            if abs(delta) > HAN_CLOCK_TOLERANCE:
                self._queue_alert(AlertCode.CLOCK_NOT_ADJUSTED_ADJUSTMENT_GREATER_THAN_10_SECONDS)
                ok = False
            else:
                self._set_device_time(reference)
                ok = True
        self._after_local(self._take_alerts(), rearm=ok)
        return ok

    def _rearm_timers(self) -> None:
        if self.state == "off":
            return
        self._arm_half_hour()
        self._arm_pending()

    # ============================================================================ metering
    def _arm_half_hour(self) -> None:
        if self._half_hour_timer is not None:
            self._half_hour_timer.cancel()
        # device boundaries k*1800 fall at shared times k*1800 - offset
        self._half_hour_timer = self.every(HALF_HOUR, self._on_half_hour, offset=(-self.clock_offset) % HALF_HOUR)

    def _on_half_hour(self, _t: float) -> None:
        self._alerts.clear()
        self._catch_up(self.device_now())
        alerts = self._take_alerts()
        if alerts:
            self.spawn(self._send_alerts(alerts))

    def _supply_state(self) -> str:
        supply = self.nvm.peek(NS, "supply")  # read-only: asked on every register read
        return SUPPLY_ENABLED if supply is None else supply["state"]

    def _account(self, until: float) -> None:
        """Add the energy drawn (and generated) since the last accounting to the open interval;
        nothing flows while the load switch is open."""
        m = self.nvm.get(NS, "metering")
        if until <= m["acc_t"]:
            return
        if self._supply_state() == SUPPLY_ENABLED:
            m["acc_wh"] += self.model.energy_wh(m["acc_t"], until)
            if self.export_model is not None:
                m["acc_ex"] += self.export_model.energy_wh(m["acc_t"], until)
            if self.secondary_model is not None:
                m["acc_sec"] = m.get("acc_sec", 0.0) + self.secondary_model.energy_wh(m["acc_t"], until)
        m["acc_t"] = until
        self.nvm.put(NS, "metering", m)

    def _catch_up(self, now: float) -> int:
        """Close every half-hour boundary up to `now` (device time); bounded by the profile
        capacity. Returns how many were closed."""
        m = self.nvm.get(NS, "metering")
        last = m["last_period"]
        newest = math.floor(now / HALF_HOUR + 1e-9) * HALF_HOUR
        if newest <= last:
            return 0
        first = last + HALF_HOUR
        if (newest - last) / HALF_HOUR > PROFILE_LOG_CAPACITY:
            first = newest - (PROFILE_LOG_CAPACITY - 1) * HALF_HOUR
            with self.nvm.transaction():
                if self.derived_profile:
                    self._store_derived_daily()  # before the profile they replay leaves
                m.update(last_period=first - HALF_HOUR, acc_t=max(m["acc_t"], first - HALF_HOUR), acc_wh=0.0, acc_ex=0.0)
                if self.derived_profile:
                    m["dirty"] = True
                self.nvm.put(NS, "metering", m)
            log.info("esme %s: downtime longer than the profile log; older half-hours skipped", self.eui_hex)
        return close_half_hours(self.nvm, self._close_period, first, newest)

    def _close_period(self, end: float) -> None:
        """Close the half hour ending at `end`: registers, profile entry, midnight snapshot,
        prepayment charges — written together (caller holds the transaction)."""
        # the model's own half hour: nothing but this close accounted energy in it, nothing marked it
        clean = self.nvm.peek(NS, "metering")["acc_t"] == end - HALF_HOUR and self._supply_state() == SUPPLY_ENABLED
        self._account(end)
        m = self.nvm.get(NS, "metering")
        reg = self.nvm.get(NS, "registers")
        wh = int(math.floor(m["acc_wh"] + 0.5))
        ex = int(math.floor(m["acc_ex"] + 0.5))
        m["acc_wh"] -= wh  # the rounding remainder stays in the next interval
        m["acc_ex"] -= ex
        m["last_period"] = end
        sec = None
        if self.secondary_model is not None:  # the second element: its own register and tariff [I: first rate]
            sec = int(math.floor(m.get("acc_sec", 0.0) + 0.5))
            m["acc_sec"] = m.get("acc_sec", 0.0) - sec
        tier = self._register_half_hour(reg, end, wh, ex, sec)
        self._charge_energy(wh, tier, end)
        if sec is not None:
            self._charge_energy(sec, 1, end, charge=OBIS.UNIT_CHARGE_SECONDARY)
        if self.derived_profile:
            self._derive_or_store(end, clean and not m.pop("dirty", False), m, wh, ex, sec)
        else:
            self._append_profile(int(end), wh, ex, sec)
        midnight = int(end) % int(DAY) == 0
        if midnight:
            reg["previous_day_wh"] = reg["import_wh"] - reg["day_start_wh"]
            reg["day_start_wh"] = reg["import_wh"]
        self.nvm.put(NS, "registers", reg)
        self.nvm.put(NS, "metering", m)
        if midnight:
            entry = self._daily_entry(reg, end, self._prepayment_values())
            self._log_daily(entry)
            self._charge_standing(end)

    def _profile_span(self) -> float:
        """Seconds of half hours the profile keeps (what a daily read replay can read)."""
        return PROFILE_LOG_CAPACITY * HALF_HOUR

    def _register_half_hour(self, reg: dict, end: float, wh: int, ex: int, sec: int | None) -> int:
        """Add a closed half hour's Wh to the registers in `reg` (the close, and the replay that
        derives daily reads); returns its TOU tier."""
        tier = self._tier_at(end - HALF_HOUR)
        reg["import_wh"] += wh
        reg["export_wh"] += ex
        reg["reactive_varh"] += int(math.floor(wh * REACTIVE_RATIO + 0.5))
        reg["tou_wh"][tier - 1] += wh
        if sec is not None:
            reg["secondary_wh"] = reg.get("secondary_wh", 0) + sec
        return tier

    def _daily_entry(self, reg: dict, end: float, prepayment: list[int]) -> dict:
        """The daily read log entry of the midnight `end` (the close, and the replay)."""
        entry = {"t": int(end), "import_wh": reg["import_wh"], "tou_wh": list(reg["tou_wh"]),
                 "block_wh": [list(b) for b in reg["block_wh"]], "prepayment": list(prepayment)}
        if self.secondary_model is not None:
            entry["secondary_wh"] = reg.get("secondary_wh", 0)
        return entry

    # -- profile cache (RAM copy of the NVM profile log, for range reads) --
    def _load_profile(self) -> None:
        entries = self.nvm.log_entries(PROFILE_LOG)
        self._profile_t = [e["t"] for e in entries]
        self._profile_wh = [e["wh"] for e in entries]
        self._profile_ex = [e.get("ex", 0) for e in entries]
        self._profile_sec = [e.get("sec", 0) for e in entries]
        self._profile_loaded = True

    def _append_profile(self, t: int, wh: int, ex: int, sec: int | None = None) -> None:
        entry = {"t": t, "wh": wh, "ex": ex}
        if sec is not None:
            entry["sec"] = sec
        self.nvm.log_append(PROFILE_LOG, entry, PROFILE_LOG_CAPACITY)
        if not self._profile_loaded:
            self._load_profile()
            return
        self._profile_t.append(t)
        self._profile_wh.append(wh)
        self._profile_ex.append(ex)
        self._profile_sec.append(sec or 0)
        extra = len(self._profile_t) - PROFILE_LOG_CAPACITY
        if extra > 0:
            del self._profile_t[:extra], self._profile_wh[:extra], self._profile_ex[:extra], self._profile_sec[:extra]
        self.nvm.on_rollback(self._load_profile)

    def _rows(self, start: float | None, end: float | None) -> list[tuple[int, int, int, int]]:
        """(capture time, import Wh, export Wh, second element Wh) of the profile, oldest first:
        the stored rows, and in derived mode the derived segments' rows merged in."""
        if not self._profile_loaded:
            self._load_profile()
        ts = self._profile_t
        if self.derived_profile:  # the newest PROFILE_LOG_CAPACITY half hours, stored or derived
            oldest = self.nvm.peek(NS, "metering")["last_period"] - (PROFILE_LOG_CAPACITY - 1) * HALF_HOUR
            start = oldest if start is None else max(start, oldest)
        lo = 0 if start is None else bisect.bisect_left(ts, start)
        hi = len(ts) if end is None else bisect.bisect_right(ts, end)
        rows = [(ts[i], self._profile_wh[i], self._profile_ex[i], self._profile_sec[i]) for i in range(lo, hi)]
        if self.derived_profile:
            derived = self._derived_rows(start, end)
            if derived:
                rows = sorted(rows + derived) if rows else derived
        return rows

    def profile(self, start: float | None = None, end: float | None = None) -> list[tuple[int, int, int]]:
        """Half-hourly profile entries (capture time epoch, import Wh, export Wh), oldest first,
        optionally only those with start <= time <= end."""
        return [r[:3] for r in self._rows(start, end)]

    def secondary_profile(self, start: float | None = None, end: float | None = None) -> list[tuple[int, int]]:
        """The second element's half-hourly entries (capture time, Wh), as `profile`."""
        return [(r[0], r[3]) for r in self._rows(start, end)]

    def profile_len(self) -> int:
        """How many entries `profile()` holds (without deriving them)."""
        if not self.derived_profile:
            if not self._profile_loaded:
                self._load_profile()
            return len(self._profile_t)
        oldest = self.nvm.peek(NS, "metering")["last_period"] - (PROFILE_LOG_CAPACITY - 1) * HALF_HOUR
        if not self._profile_loaded:
            self._load_profile()
        n = len(self._profile_t) - bisect.bisect_left(self._profile_t, oldest)
        for first, last, _r in self._segments(oldest, None):
            n += int(round((last - first) / HALF_HOUR)) + 1
        return n

    # -- derived profile (profile_storage="derived"): rows computed from the model, not stored --
    # A segment [S, e, R_import, R_export, R_second] says: every half hour ending in (S, e] (e None:
    # up to the last close) is the model's own, so its value is the rounded running total's step
    # from the remainders R the close at S left (`firmware.derived.rounded_steps`). A half hour the model
    # cannot give (supply off, clock moved, outage, catch-up skip, or a float tie that rounds the
    # other way) is stored as a row as before and ends the segment; the next close starts another.
    def _segments(self, start: float | None, end: float | None) -> list[tuple[float, float, list]]:
        """(first, last, [S, R...]) of each segment's half hours within [start, end]."""
        m = self.nvm.peek(NS, "metering")
        out = []
        for seg in self.nvm.peek(NS, PROFILE_SEGMENTS) or ():
            first, last = boundaries(seg[0], m["last_period"] if seg[1] is None else seg[1], start, end)
            if first <= last:
                out.append((first, last, seg))
        return out

    def _streams(self) -> tuple[ConsumptionModel | None, ...]:
        return (self.model, self.export_model, self.secondary_model)

    def _derived_values(self, seg: list, first: float, last: float) -> list[list[int]]:
        n = int(round((last - first) / HALF_HOUR)) + 1
        cols = []
        for i, model in enumerate(self._streams()):
            if model is None:
                cols.append([0] * n)
                continue
            cum = self._cumulative.get((seg[0], i))
            if cum is None:
                cum = self._cumulative[(seg[0], i)] = Cumulative(model.half_hour_wh, seg[0])
            cols.append(rounded_steps(cum, seg[2 + i], first, last))
        return cols

    def _derived_rows(self, start: float | None, end: float | None) -> list[tuple[int, int, int, int]]:
        rows = []
        for first, last, seg in self._segments(start, end):
            wh, ex, sec = self._derived_values(seg, first, last)
            t0 = int(first)
            rows.extend((t0 + int(HALF_HOUR) * i, wh[i], ex[i], sec[i]) for i in range(len(wh)))
        return rows

    def _derive_or_store(self, end: float, clean: bool, m: dict, wh: int, ex: int, sec: int | None) -> None:
        """At the close of the half hour ending at `end`: nothing to write when the open segment
        derives exactly these values; else store the row, end the segment, start the next."""
        segs = self.nvm.peek(NS, PROFILE_SEGMENTS) or []
        open_ = segs[-1] if segs and segs[-1][1] is None else None
        if clean and open_ is not None:
            if [v[0] for v in self._derived_values(open_, end, end)] == [wh, ex, sec or 0]:
                if end - open_[0] < PROFILE_LOG_CAPACITY * HALF_HOUR:
                    return
                # a segment as long as the log ends here and the next starts: deriving stays bounded
                segs = [list(s) for s in segs]
                segs[-1][1] = end
                segs.append([end, None, m["acc_wh"], m["acc_ex"], m.get("acc_sec", 0.0)])
                self.nvm.put(NS, PROFILE_SEGMENTS, segs)
                return
        self._append_profile(int(end), wh, ex, sec)
        segs = [list(s) for s in segs]
        if open_ is not None:
            if open_[0] == end - HALF_HOUR:
                segs.pop()  # no half hour derived from it
            else:
                segs[-1][1] = end - HALF_HOUR
        if self._supply_state() == SUPPLY_ENABLED:
            segs.append([end, None, m["acc_wh"], m["acc_ex"], m.get("acc_sec", 0.0)])
        oldest = end - (PROFILE_LOG_CAPACITY - 1) * HALF_HOUR
        segs = [s for s in segs if s[1] is None or s[1] >= oldest]
        self.nvm.put(NS, PROFILE_SEGMENTS, segs)
        for key in [k for k in self._cumulative if not any(s[0] == k[0] for s in segs)]:
            del self._cumulative[key]

    def _live(self) -> tuple[dict, dict, float, int, float]:
        """(stored registers, metering state, device time, Wh of the open interval, export Wh of it): what
        every live register value adds up from. The dicts are shared NVM values: never mutate."""
        reg = self.nvm.peek(NS, "registers")
        m = self.nvm.peek(NS, "metering")
        now = self.device_now()
        acc_wh, acc_ex = m["acc_wh"], m["acc_ex"]
        if now > m["acc_t"] and self._supply_state() == SUPPLY_ENABLED:
            acc_wh += self.model.energy_wh(m["acc_t"], now)
            if self.export_model is not None:
                acc_ex += self.export_model.energy_wh(m["acc_t"], now)
        return reg, m, now, int(math.floor(acc_wh + 0.5)), acc_ex

    def _secondary_wh(self, reg: dict, m: dict, now: float) -> int:
        """Live Wh of the second element (twin meters): its stored register plus its open interval."""
        secondary = reg.get("secondary_wh", 0)
        if self.secondary_model is not None:
            acc_sec = m.get("acc_sec", 0.0)
            if now > m["acc_t"] and self._supply_state() == SUPPLY_ENABLED:
                acc_sec += self.secondary_model.energy_wh(m["acc_t"], now)
            secondary += int(math.floor(acc_sec + 0.5))
        return secondary

    def import_registers(self) -> tuple[int, int, int]:
        """Live (import Wh, reactive import varh, second element's Wh): the ECS17b read, without
        the rest of `registers()`."""
        reg, m, now, partial, _ex = self._live()
        return (*_imports(reg, partial), self._secondary_wh(reg, m, now))

    def registers(self) -> dict[str, Any]:
        """Live register values (what a read returns now): Wh/varh/W."""
        reg, m, now, partial, acc_ex = self._live()  # reg is read-only: copied below where handed out
        import_wh, reactive_varh = _imports(reg, partial)
        secondary = self._secondary_wh(reg, m, now)
        return {
            "import_wh": import_wh,
            "export_wh": reg["export_wh"] + int(math.floor(acc_ex + 0.5)),
            "reactive_varh": reactive_varh,
            "tou_wh": list(reg["tou_wh"]),
            "block_wh": [list(b) for b in reg["block_wh"]],
            "power_w": self.power_w(),
            "current_day_wh": reg["import_wh"] + partial - reg["day_start_wh"],
            "previous_day_wh": reg["previous_day_wh"],
            "secondary_wh": secondary,
            "last_period": m["last_period"],
        }

    def power_w(self) -> int:
        if self._supply_state() != SUPPLY_ENABLED:
            return 0
        return int(round(self.model.power_w(self.device_now())))

    # ============================================================================ tariff
    def _tariff_value(self, class_id: int, ln: bytes, attribute: int) -> Data:
        raw = self.nvm.peek(COSEM_NS, _key(class_id, ln, attribute))  # bytes: shared safely
        if raw is None:
            return self._defaults[(class_id, ln, attribute)]
        return decode_data(raw)

    def _tariff(self, oid: CosemObjectId, attribute: int) -> Data:
        return self._tariff_value(oid.class_id, oid.obis, attribute)

    def _store_tariff_value(self, class_id: int, ln: bytes, attribute: int, value: Data) -> None:
        key, raw = _key(class_id, ln, attribute), value.encode()
        if self.derived_profile and key in _CALENDAR_KEYS and raw != self.nvm.peek(COSEM_NS, key):
            self._store_derived_daily()  # their replay reads the calendar (daily read log, above)
        self.nvm.put(COSEM_NS, key, raw)

    def _tier_at(self, t: float) -> int:
        """The TOU tier in force at device time `t` from the active calendar (`firmware.tariff`,
        shared with the GSME); selector n or 100 + n means tier n [I]. Tier 1 when the calendar
        cannot be read."""
        try:
            selector = self._calendar().value_at(t)
        except (AttributeError, IndexError, KeyError, TypeError, ValueError, OverflowError):
            return 1
        tier = int(selector) % 100 if selector is not None else 1
        return tier if 1 <= tier <= TOU_TIERS else 1

    def _calendar(self) -> Calendar:
        """`_build_calendar`, kept while the stored calendar objects are the same (a close and a
        daily read replay ask for it every half hour), and shared by the meters whose calendar
        objects are the same bytes (a fleet's: its first reads built one per meter)."""
        raws = tuple(self.nvm.peek(COSEM_NS, k) for k in _CALENDAR_ORDER)
        memo = self._calendar_memo
        if memo is not None and memo[0] == raws:
            return memo[1]
        key = (id(self._defaults), raws)  # the defaults: one dict per variant, for the class's life
        calendar = _CALENDARS.get(key)
        if calendar is None:
            calendar = self._build_calendar()
            if len(_CALENDARS) >= _CALENDARS_KEPT:  # written tariffs are outside input: bounded
                _CALENDARS.clear()
            _CALENDARS[key] = calendar
        self._calendar_memo = (raws, calendar)
        return calendar

    def _build_calendar(self) -> Calendar:
        """The active activity calendar and special days table as a `firmware.tariff.Calendar`:
        seasons {name, start, week name}, weeks {name, 7 day ids}, days {id, [{start time,
        script, selector}]}, special days {index, date (5), day id} [O RTDS ECS24]."""
        seasons = []
        for s in self._tariff(OBIS.ACTIVITY_CALENDAR, 3).value:
            start = cosem.epoch_of(s.value[1])
            seasons.append((float("inf") if start is None else start, s.value[2].value))
        weeks = {w.value[0].value: [d.value for d in w.value[1:8]] for w in self._tariff(OBIS.ACTIVITY_CALENDAR, 4).value}
        days = {}
        for d in self._tariff(OBIS.ACTIVITY_CALENDAR, 5).value:
            entries = []
            for action in d.value[1].value:
                h, m, sec = _octets(action.value[0])[:3].replace(b"\xff", b"\x00")
                entries.append((h * 3600 + m * 60 + sec, action.value[2].value))
            days[d.value[0].value] = entries
        special = []
        for row in self._tariff(OBIS.SPECIAL_DAYS_TABLE, 2).value:
            date = _octets(row.value[1])
            if len(date) == 5:
                year = int.from_bytes(date[0:2], "big")
                special.append((None if year == 0xFFFF else year, None if date[2] == 0xFF else date[2], date[3],
                                row.value[2].value))
        return Calendar(tuple(seasons), weeks, days, tuple(special))

    def _charge_table(self, charge: CosemObjectId) -> tuple[int, int, dict[bytes, int]]:
        """(commodity scale, price scale, {index: charge}) of an active unit charge; empty when
        what was written does not have that shape."""
        value = self._tariff(charge, 5)
        try:
            scaling, _commodity, table = value.value
            cs, ps = scaling.value[0].value, scaling.value[1].value
            if type(cs) is not int or type(ps) is not int or not (-20 <= cs <= 20 and -20 <= ps <= 20):
                raise ValueError("scaling")
            charges = {}
            for e in table.value:
                charge = e.value[1].value
                if type(charge) is not int:
                    raise ValueError("charge")
                charges[_octets(e.value[0])] = charge
            return cs, ps, charges
        except (AttributeError, IndexError, TypeError, ValueError):
            return 0, 0, {}

    def unit_price_pence(self, tier: int, charge: CosemObjectId = OBIS.UNIT_CHARGE) -> float:
        """Price per kWh of a TOU tier in pence, from the active unit charge (the secondary
        element's: `charge=OBIS.UNIT_CHARGE_SECONDARY`)."""
        cs, ps, table = self._charge_table(charge)
        charge = table.get(bytes((tier,)), 0)
        return charge * 10.0 ** ps * 100.0 * 1000.0 / 10.0 ** cs

    def standing_charge_pence(self) -> float:
        _cs, ps, table = self._charge_table(OBIS.STANDING_CHARGE)
        return (next(iter(table.values())) if table else 0) * 10.0 ** ps * 100.0

    def _activate(self, key: _Attr) -> None:
        for src, dst in self._activations[key]:
            self._store_tariff_value(*dst, self._tariff_value(*src))
        if key == PAYMENT_MODE_ACTIVATION:
            self._payment_mode_activated()
        elif key == _attr(OBIS.UNIT_CHARGE, 7):
            self._billing_snapshot()  # a tariff change snapshots the billing data log (ECS20b) [I]
        self.log_event("tariff_activated", object=f"{key[0]}/{obis_text(key[1])}/{key[2]}")

    def _arm_pending(self) -> None:
        self.future.arm()

    def pending_activations(self) -> dict[str, dict]:
        """Pending future-dated activations (`firmware.future`), by (class/OBIS/attribute) key."""
        return self.future.pending()

    @property
    def supply_state(self) -> str:
        return self._supply_state()

    def _set_supply(self, state: str, cause: str | None = None, at: float | None = None) -> None:
        if state not in SUPPLY_STATES:
            raise ValueError(state)
        self._account(self.device_now() if at is None else at)  # energy so far was drawn in the old state
        self.nvm.put(NS, "supply", {"state": state, "cause": cause})
        self.log_event("supply", state=state, cause=cause)
        if state == SUPPLY_ARMED:
            self._queue_alert(AlertCode.SUPPLY_ARMED)

    def _run_script(self, script: int) -> None:
        state = self._supply_state()
        if script == SCRIPT_ENABLE:
            if state != SUPPLY_ENABLED:
                self._set_supply(SUPPLY_ENABLED, cause="remote")
        elif script == SCRIPT_DISABLE:
            if state != SUPPLY_DISABLED:
                self._set_supply(SUPPLY_DISABLED, cause="remote")
        elif script == SCRIPT_ARM:
            if state == SUPPLY_DISABLED:  # arming an enabled supply changes nothing [I]
                self._set_supply(SUPPLY_ARMED, cause="remote")
        else:
            raise CosemError(cosem.OBJECT_UNAVAILABLE, f"no script {script}")

    def press_button(self) -> bool:
        """The consumer presses the meter's button: an armed supply is enabled (event 0x8161);
        anything else is logged as not actioned (0x8162)."""
        self._check_alive()
        self._alerts.clear()
        with self.nvm.transaction():
            if self._supply_state() == SUPPLY_ARMED:
                self._set_supply(SUPPLY_ENABLED, cause="local")
                self.log_event(int(AlertCode.USER_INTERFACE_COMMAND_INPUT_AND_SUCCESSFULLY_ACTIONED), action="enable_supply")
                ok = True
            else:
                self.log_event(int(AlertCode.USER_INTERFACE_COMMAND_INPUT_BUT_NOT_SUCCESSFULLY_ACTIONED), action="enable_supply")
                ok = False
        self._after_local(self._take_alerts())
        return ok

    # ============================================================================ device log
    def device_log(self) -> dict[bytes, int]:
        """The ESME's own Device Log: {EUI: device type}."""
        return {e.entity_id: int(e.device_type) for e in self.joined_devices.entries()}

    def in_device_log(self, eui: bytes | str) -> bool:
        return eui in self.joined_devices

    # ============================================================================ COSEM model
    _activations = {**ACTIVATIONS, **CONFIG_ACTIVATIONS}

    @classmethod
    def _shared_model(cls, variant: str) -> tuple[dict, dict, ObjectModel]:
        """(factory values, configuration access modes, COSEM object model) of a meter variant,
        built on first use and shared by every ESME of this class (never mutated)."""
        shared = cls.__dict__.get("_shared_models")
        if shared is None:
            shared = cls._shared_models = {}
        parts = shared.get(variant)
        if parts is None:
            twin, polyphase = variant.startswith("twin"), variant.endswith("polyphase")
            defaults = default_tariff()
            config, modes = config_defaults(polyphase, twin, defaults)
            defaults.update(config)
            parts = shared[variant] = (defaults, modes, cls._build_model(defaults, modes, polyphase, twin))
        return parts

    @classmethod
    def _build_model(cls, defaults: dict, modes: dict, polyphase: bool, twin: bool) -> ObjectModel:
        """The ESME's COSEM objects; getters, setters and methods take the ESME (`d`) first."""
        model = ObjectModel()
        add = model.add
        add(CosemObject.of(OBIS.IMPORT_ENERGY_REGISTERS, {2: Attribute(get=cls._get_import_registers)}))
        add(CosemObject.of(OBIS.INSTANTANEOUS_ACTIVE_POWER_IMPORT, {2: Attribute(get=cls._get_power)}))
        add(cls.firmware_version_object())
        add(CosemObject.of(OBIS.ACTIVE_IMPORT_PROFILE, {
            2: Attribute(get=lambda d: d._profile_buffer(None), select=lambda d, s, p: d._profile_buffer(d._range(s, p))),
            7: Attribute(get=lambda d: Data.double_long_unsigned(d.profile_len())),
            8: Attribute(get=lambda d: Data.double_long_unsigned(PROFILE_LOG_CAPACITY)),
        }))
        add(CosemObject.of(OBIS.DAILY_READ_LOG, {
            2: Attribute(get=lambda d: d._daily_buffer(None), select=lambda d, s, p: d._daily_buffer(d._range(s, p))),
            7: Attribute(get=lambda d: Data.double_long_unsigned(d.daily_log_len())),
            8: Attribute(get=lambda d: Data.double_long_unsigned(d.daily_log_capacity())),
        }))
        add(CosemObject.of(OBIS.EVENT_LOG, {
            2: Attribute(get=lambda d: d._log_buffer(EVENT_LOG, None),
                         select=lambda d, s, p: d._log_buffer(EVENT_LOG, d._range(s, p))),
        }))
        add(CosemObject.of(OBIS.SECURITY_LOG, {
            2: Attribute(get=lambda d: d._log_buffer(SECURITY_LOG, None),
                         select=lambda d, s, p: d._log_buffer(SECURITY_LOG, d._range(s, p))),
        }))
        add(CosemObject.of(OBIS.LOAD_SWITCH_SCRIPT_TABLE, {}, {1: cls._execute_script}))
        add(CosemObject.of(OBIS.DISCONNECT_CONTROL, {
            2: Attribute(get=lambda d: Data.boolean(d._supply_state() == SUPPLY_ENABLED)),
            3: Attribute(get=lambda d: Data.enum(CONTROL_STATE[d._supply_state()])),
            4: Attribute(get=lambda d: Data.enum(0)),
        }))
        add(CosemObject.of(OBIS.CLOCK, {
            2: Attribute(get=lambda d: cosem.timestamp(d.device_now())),
            3: Attribute(get=lambda d: Data.long(0)),
            4: Attribute(get=lambda d: Data.unsigned(0)),
            9: cosem.stored(Data.enum(1), lambda d: d._cosem_raw("clock_base"),
                            lambda d, v: d._cosem_store("clock_base", v), _shape_like(Data.enum(0))),
        }, {4: cls._adjust_to_preset, 5: cls._preset_adjusting_time}))
        add(CosemObject.of(OBIS.TOKEN_GATEWAY, {}, {1: cls._enter_token}))
        for protection, readable in PROTECTION_OBJECTS.items():
            add(CosemObject.of(protection, {}, {1: lambda d, p, r=readable: d._get_protected_attributes(r, p)}))
        cls._add_tariff_objects(model, defaults, modes)
        cls._add_config_objects(model, defaults, modes, cls._activations, polyphase, twin)
        return model

    @classmethod
    def _add_tariff_objects(cls, model: ObjectModel, defaults: dict, modes: dict) -> None:
        by_object: dict[tuple[int, bytes], dict[int, Attribute]] = {}
        methods: dict[tuple[int, bytes], dict[int, Callable]] = {OBIS.ACTIVITY_CALENDAR.key: {1: cls._activate_calendar}}
        for key, initial in defaults.items():
            if key in modes:
                continue  # meter.esme_objects builds those
            class_id, ln, attribute = key
            attrs = by_object.setdefault((class_id, ln), {})

            def load(d: Any, k=key) -> Data:
                return d._tariff_value(*k)

            if key in ACTIVATIONS:
                # an execution date-time: now, never (cancels) or future (alert 0x8F66 when run)
                attrs[attribute] = future_activation(
                    model, (class_id, ln), attribute, lambda d, k=key: d._activate(k), load=load,
                    store=lambda d, v, k=key: d._store_tariff_value(*k, v))
                continue
            if key in TARIFF_WRITABLE:
                def store(d: Any, v: Data, k=key, t=initial) -> None:
                    if v.type is not t.type:
                        raise CosemError(cosem.TYPE_UNMATCHED, "value has the wrong shape")
                    d._store_tariff_value(*k, v)
                attrs[attribute] = Attribute(get=load, set=store)
            else:
                attrs[attribute] = Attribute(get=load)
        for (class_id, ln), attrs in by_object.items():
            model.add(CosemObject(class_id, ln, attrs, methods.get((class_id, ln), {})))

    def _cosem_raw(self, name: str) -> Data | None:
        raw = self.nvm.get(COSEM_NS, name)
        return None if raw is None else decode_data(raw)

    def _cosem_store(self, name: str, value: Data) -> None:
        self.nvm.put(COSEM_NS, name, value.encode())

    # -- attribute getters --
    def _get_import_registers(self) -> Data:
        wh, varh, secondary = self.import_registers()
        values = [Data.double_long_unsigned(wh & 0xFFFFFFFF), _SCALER_UNIT_WH,
                  Data.double_long_unsigned(varh & 0xFFFFFFFF), _SCALER_UNIT_VARH]
        if self.twin:  # the secondary element's import register [O RTDS ECS17b TWIN]
            values.append(Data.double_long_unsigned(secondary & 0xFFFFFFFF))
        return Data.structure(*values)

    def _get_power(self) -> Data:
        p = self.power_w()
        # {active power import, scaler-unit W, element/phase 1 power [U: third value; equal for a
        # single-element meter]}
        return Data.structure(Data.double_long_unsigned(p), _SCALER_UNIT_W,
                              Data.double_long_unsigned(p))

    @staticmethod
    def _range(selector: int, parameters: Data) -> tuple[float, float]:
        if selector != cosem.RANGE_SELECTOR:
            raise CosemError(cosem.SCOPE_OF_ACCESS_VIOLATED, f"selector {selector} not supported")
        return cosem.range_bounds(parameters)

    def _profile_buffer(self, bounds: tuple[float, float] | None) -> Data:
        rows = self.profile(*bounds) if bounds else self.profile()
        if self.twin:  # secondary element column [O RTDS ECS22b TWIN]
            sec = dict(self.secondary_profile(*bounds) if bounds else self.secondary_profile())
            return compact_array(cosem.structure(DOUBLE_LONG_UNSIGNED, DOUBLE_LONG_UNSIGNED, DOUBLE_LONG_UNSIGNED),
                                 [(cosem.t2000(t), wh & 0xFFFFFFFF, sec.get(t, 0) & 0xFFFFFFFF) for t, wh, _ex in rows])
        return compact_array(cosem.structure(DOUBLE_LONG_UNSIGNED, DOUBLE_LONG_UNSIGNED),
                             [(cosem.t2000(t), wh & 0xFFFFFFFF) for t, wh, _ex in rows])

    def _daily_buffer(self, bounds: tuple[float, float] | None) -> Data:
        rows = [self._billing_row(e, None) for e in (self.daily_log(*bounds) if bounds else self.daily_log())]
        return compact_array(self._billing_desc(prepayment=False), rows)  # twin: [O RTDS ECS21a TWIN]

    def _log_code(self, entry: dict) -> int | None:
        """The GBCS event code of a log entry (ints as logged; alerts by their code; rejected
        commands by the alert their reason raises); None for internal records."""
        code = entry.get("code")
        if isinstance(code, int) and 0 <= code <= 0xFFFF:
            return code
        if code == "alert":
            try:
                return int(entry.get("alert_code", ""), 16)
            except ValueError:
                return None
        if code == "command_rejected":
            return self.security_alerts.get(entry.get("reason", ""), AlertCode.FAILED_AUTHENTICATION_OR_AUTHORISATION_NOT_COVERED_BY_OTHER_CODES)
        if code == "unexpected_message":
            return _UNEXPECTED_MESSAGE
        return None

    def _log_buffer(self, name: str, bounds: tuple[float, float] | None) -> Data:
        rows = []
        for e in self.read_log(name):
            t = e.get("time", 0)
            if bounds is not None and not bounds[0] <= t <= bounds[1]:
                continue
            code = self._log_code(e)
            if code is None:
                continue
            if name == SECURITY_LOG:
                rows.append((cosem.t2000(t), code))
            else:
                extra = b""
                mc = e.get("message_code")
                if isinstance(mc, str) and len(mc) == 4:
                    try:
                        extra = bytes.fromhex(mc)
                    except ValueError:
                        extra = b""
                rows.append((cosem.t2000(t), code, extra))
        if name == SECURITY_LOG:
            return compact_array(cosem.structure(DOUBLE_LONG_UNSIGNED, LONG_UNSIGNED), rows)
        return compact_array(cosem.structure(DOUBLE_LONG_UNSIGNED, LONG_UNSIGNED, OCTET_STRING), rows)

    # -- methods --
    def _execute_script(self, parameters: Data) -> None:
        if parameters.type is not DataType.LONG_UNSIGNED:
            raise CosemError(cosem.TYPE_UNMATCHED, "script id must be long-unsigned")
        self._run_script(parameters.value)
        return None

    def _preset_adjusting_time(self, parameters: Data) -> None:
        if parameters.type is not DataType.STRUCTURE or len(parameters.value) != 3:
            raise CosemError(cosem.TYPE_UNMATCHED, "preset_adjusting_time takes {preset, start, end}")
        preset, start, end = (cosem.epoch_of(v) for v in parameters.value)
        self.ram["clock_preset"] = (preset, start, end)
        return None

    def _adjust_to_preset(self, _parameters: Data) -> None:
        """ECS70: set the clock to the preset time or, when the preset is unspecified (as DCC
        sends it), to the HAN time master's time (the Comms Hub; here the shared clock) — only
        while that time lies inside the validity window: alert 0x8145 adjusted, else 0x81C6 not
        adjusted and the action fails [I; RTDS ECS70 reads back the CH time, not the window's
        middle]."""
        preset = self.ram.pop("clock_preset", None)
        if preset is None:
            raise CosemError(cosem.TEMPORARY_FAILURE, "no preset time")
        target, start, end = preset
        reference = self.clock.now()
        if (start is not None and reference < start) or (end is not None and reference > end):
            self._queue_alert(AlertCode.CLOCK_NOT_ADJUSTED_OUTSIDE_TOLERANCE)
            raise CosemError(cosem.OTHER_REASON, "outside the validity window")
        self._set_device_time(reference if target is None else target)
        self._rearm_after = True
        self._queue_alert(AlertCode.CLOCK_ADJUSTED)
        return None

    def _activate_calendar(self, _parameters: Data) -> None:
        self._activate(_attr(OBIS.ACTIVITY_CALENDAR, 10))
        return None

    def _get_protected_attributes(self, allowed: frozenset[tuple[int, bytes]], parameters: Data) -> Data:
        """Get Protected Attributes (class 30 method 1): read the listed attributes (with their
        selective access; only `allowed` objects, the protection object's list) and return them
        encrypted for the requesting party (FACTS 1.6)."""
        command = self._command
        if command is None:
            raise CosemError(cosem.TEMPORARY_FAILURE, "no command")
        try:
            objects, _params = parameters.value
            if objects.type is not DataType.ARRAY:
                raise ValueError("objects")
            refs = []
            for o in objects.value:
                cid, ln, attr, _index, access = o.value[:5]
                if (cid.type is not DataType.LONG_UNSIGNED or ln.type is not DataType.OCTET_STRING
                        or len(ln.value) != 6 or type(attr.value) is not int):
                    raise ValueError("object reference")
                selector, sel_params = 0, None
                if access.type is DataType.STRUCTURE:
                    selector, sel_params = access.value[0].value, access.value[1]
                    if type(selector) is not int:
                        raise ValueError("selector")
                refs.append((cid.value, ln.value, attr.value, selector, sel_params))
        except (AttributeError, TypeError, ValueError, IndexError):
            raise CosemError(cosem.TYPE_UNMATCHED, "not a Get Protected Attributes request") from None
        values = []
        for cid, ln, attr, selector, sel_params in refs:
            if (cid, ln) not in allowed:
                raise CosemError(cosem.READ_WRITE_DENIED, f"{cid}/{obis_text(ln)} not readable by this use case")
            values.append(self.objects.get(cid, ln, attr, selector or None, sel_params))
        party = command.supplementary_remote_party_id or command.originator
        counter = command.supplementary_originator_counter
        counter = command.originator_counter if counter is None else counter
        key = self.encryption_key_for(command)
        pp = ProtectionParameters.build(counter, self.eui, party)
        return ProtectedData.build(pp, Data.structure(*values), lambda pt: encrypt_part(key, self.eui, pt))

    # ============================================================================ GBCS
    def supports(self, message_code: int) -> bool:
        """The handler table, less the use cases this meter variant does not serve [I]."""
        if not self._variant_serves(message_code):
            return False
        return message_code in self.HANDLERS

    def _variant_serves(self, message_code: int) -> bool:
        if message_code in _POLYPHASE_CODES and not self.polyphase:
            return False
        return not (message_code in _TWIN_CODES and not self.twin)

    async def _reject(self, msg: Message | None, exc: CommandRejected) -> None:
        """An ESME use case this meter variant does not serve (a 3-phase one on a single-phase
        meter, a second-element one on a single-element meter) is answered with ECS100 "Command
        not supported by Device": alert 0x8F85, signed, carrying the command's message code and
        originator counter, to the command's originator [O RTDS NA_ECS100 layout; I when]. Other
        rejections go as `GbcsDevice` answers them."""
        if exc.reason != "unsupported" or msg is None or self._variant_serves(msg.message_code) \
                or msg.message_code not in self.HANDLERS:
            await super()._reject(msg, exc)
            return
        await super()._reject(msg, CommandRejected(exc.reason, exc.detail, alert=False))
        details = msg.message_code.to_bytes(2, "big") + msg.originator_counter.to_bytes(8, "big")
        await self.raise_alert(AlertCode.COMMAND_NOT_SUPPORTED_BY_DEVICE, message_code=MessageCode.ECS100, critical=True,
                               elements=(Data.octet_string(details),),
                               recipient=self.trust.by_eui(msg.originator) or self.alert_recipient)

    def execute(self, message: Message) -> Outcome:
        self._alerts.clear()
        self._command = message
        self._rearm_after = False
        self.ram.pop("clock_preset", None)  # a preset only lives within its own command
        try:
            outcome = super().execute(message)
        finally:
            self._command = None
        alerts = self._take_alerts()
        rearm = self._rearm_after
        self._rearm_after = False
        if alerts or rearm:
            then = outcome.after

            async def after() -> None:
                if rearm:
                    self._rearm_timers()
                await self._send_alerts(alerts)
                if then is not None:
                    result = then()
                    if hasattr(result, "__await__"):
                        await result

            outcome.after = after
        return outcome

    def response_date_time(self) -> bytes:
        return cosem.datetime_bytes(self.device_now())

    # -- alerts --
    def _queue_alert(self, code: int | None, **kw: Any) -> None:
        if code is not None:
            self._alerts.append((code, kw))

    def _take_alerts(self) -> list[tuple[int, dict]]:
        alerts, self._alerts = self._alerts, []
        return alerts

    async def _send_alerts(self, alerts: list[tuple[int, dict]]) -> None:
        for code, kw in alerts:
            await self.raise_alert(code, **kw)

    def _after_local(self, alerts: list[tuple[int, dict]], rearm: bool = False) -> None:
        """Follow-up of a local action (button, keypad, HAN time): send its alerts."""
        if rearm:
            self._rearm_timers()
        if alerts and self.state != "off":
            self.spawn(self._send_alerts(alerts))

    async def raise_alert(self, alert_code: int, **kw: Any) -> bytes | None:
        kw.setdefault("critical", is_critical_alert(alert_code))
        return await super().raise_alert(alert_code, **kw)

    def alert_content(self, alert_code: int, counter: int, elements: tuple = ()) -> bytes:
        when = datetime.fromtimestamp(int(self.device_now()), timezone.utc)
        return DataNotification.build(counter, alert_code, when, *elements).encode()

    def append_log(self, name: str, code: Any, **detail: Any) -> dict:
        detail.setdefault("time", self.device_now())  # logs are kept in device time
        return super().append_log(name, code, **detail)



_POLYPHASE_CODES = frozenset(MessageCode[n] for n in POLYPHASE_ONLY if n in MessageCode.__members__)
_TWIN_CODES = frozenset(MessageCode[n] for n in TWIN_ONLY if n in MessageCode.__members__)

# Use cases whose originator counter is a top-up counter (`UseCaseDef.utrn`): CS01a.

__all__ = [
    "Esme",
    "ConsumptionModel",
    "default_tariff",
    "is_critical_alert",
    "SUPPLY_ENABLED",
    "SUPPLY_DISABLED",
    "SUPPLY_ARMED",
    "PROFILE_LOG_CAPACITY",
    "DAILY_LOG_CAPACITY",
    "DEVICE_LOG_CAPACITY",
]
