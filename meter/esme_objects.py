"""The rest of the ESME's COSEM object list (`gbcs.usecases.esme_config` use cases): configuration
objects kept as written, with their factory values, and the objects that show the meter's state
(prepayment registers, meter balance, maximum demand, export and TOU registers, billing and
consumption logs). Mixed into `meter.esme.Esme` (`EsmeObjects`).

Factory values have the types the RTDS ESME answered with [O]; the values themselves are ours
where RTDS's were test data [I]. A Set is refused type-unmatched unless the value has the factory
value's shape (same types, structures alike, arrays of alike elements). Passive values take effect
through the activation attributes (`CONFIG_ACTIVATIONS`, `firmware.future` activation attributes:
now, a future date-time, or never; a future one alerts 0x8F66 when it ran).

Meter variants (`variant` option, rig `options = { variant = "..." }`): "single" (single element,
single phase), "twin" (twin element: a secondary import register in the register reads, daily read
and billing logs and half-hour profile [O RTDS TWIN_]), "polyphase" (three phases: per-phase
voltage objects and the 3-phase use cases ECS23b, ECS26k, ECS29b/d/f) and "twin-polyphase"
(both; what the RTDS reference device answered) [I]. A use case the variant does not serve is
refused as unsupported (alert 0x8F1E), like any use case the device does not implement [I].

Money is held in units of 10^-5 GBP on the COSEM side (the RTDS ECS26a charges use scaler -5) and
in pence in `meter.prepayment` [I].
"""
from __future__ import annotations

import math
from functools import lru_cache
from datetime import datetime, timezone
from typing import Any, Callable

from gbcs.dlms import BitString, Data, DataType
from gbcs.obis import OBIS, CosemObjectId
from gbhub.firmware import cosem
from gbhub.firmware.cosem import DOUBLE_LONG_UNSIGNED, Attribute, CosemError, CosemObject, ObjectModel, compact_array
from gbhub.firmware.future import activation as future_activation

from .esme_state import BLOCK_TIERS, BLOCKS, NS, REACTIVE_RATIO, TOU_TIERS

VARIANTS = ("single", "twin", "polyphase", "twin-polyphase")
POWER_EVENT_LOG = "power_events"  # NVM log of the power event log (ECS35e)
POWER_EVENT_LOG_CAPACITY = 100  # [U]
MONEY_PER_PENNY = 1000  # 10^-5 GBP per penny [I]
DOUBLE_LONG = 0x05


def _dlu(n: int) -> Data:
    return Data.double_long_unsigned(n)


def _dl(n: int) -> Data:
    return Data.double_long(n)


def _su(scaler: int, unit: int) -> Data:
    return Data.structure(Data.integer(scaler), Data.enum(unit))


def _never() -> Data:
    return Data.timestamp(None)


def _at(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> Data:
    return Data.timestamp(datetime(year, month, day, hour, minute, tzinfo=timezone.utc))


def _time(h: int, m: int = 0) -> Data:
    return Data.octet_string(bytes((h, m, 0, 0)))


def _schedule_entry(index: int, script: CosemObjectId, selector: int, at: Data, weekdays: str, special: str,
                    begin: bytes, end: bytes) -> Data:
    """One Schedule (class 10) entry: {index, enable, script LN, selector, switch time, validity
    window, weekdays, special days, begin date, end date} [O RTDS ECS08a/ECS37/ECS61a]."""
    return Data.structure(Data.long_unsigned(index), Data.boolean(True), Data.obis(script.obis), Data.long_unsigned(selector),
                          at, Data.long_unsigned(0xFFFF), Data.bit_string(weekdays), Data.bit_string(special),
                          Data.octet_string(begin), Data.octet_string(end))


_ANY_DATE = bytes((0xFF,) * 5)
_CHARGE = Data.structure(  # a time-based debt: 50.00 p per day [I]
    Data.structure(Data.integer(0), Data.integer(-5)),
    Data.structure(Data.long_unsigned(0), Data.octet_string(bytes(6)), Data.integer(0)),
    Data.array(Data.structure(Data.octet_string(b""), Data.long(5000))))
_CREDIT_CHARGE = Data.array(*(  # token credit pays the unit charge and the standing charge [O RTDS ECS02]
    Data.structure(Data.obis(OBIS.TOKEN_CREDIT.obis), Data.obis(charge.obis), Data.bit_string("111"))
    for charge in (OBIS.UNIT_CHARGE, OBIS.STANDING_CHARGE)))
_SPECIAL_DAYS = Data.array(Data.structure(Data.long_unsigned(1), Data.octet_string(bytes((0xFF, 0xFF, 12, 25, 0xFF))),
                                          Data.unsigned(1)))  # every 25 December [I]
_SCHEDULE = Data.array(_schedule_entry(1, OBIS.LOAD_SWITCH_SCRIPT_TABLE, 32, _time(0), "1111111", "", _ANY_DATE, _ANY_DATE))
_MD_SCHEDULE = Data.array(*(  # 17:00-22:00 every day [O RTDS ECS37]
    _schedule_entry(i, OBIS.MAX_DEMAND_SCRIPT_TABLE, i + 1, _time(h), "1111111", "", bytes((0, 0, 1, 0xFF, 0xFF)), _ANY_DATE)
    for i, h in ((0, 17), (1, 22))))
_BILLING_DATES = Data.array(Data.structure(_time(0), Data.octet_string(bytes((0xFF, 0xFF, 0xFF, 1, 0xFF)))))  # monthly [I]
_DAILY = Data.array(Data.structure(_time(0), Data.octet_string(_ANY_DATE)))
_MASK = Data.bit_string(BitString(512, bytes(64)))

# (object, attribute) -> factory value; W = writable, A = writable with any type (the RTDS ESME
# took both a long-unsigned (ECS47) and a date-time (ECS47a) in 0-0:94.44.117.1) [O]
_R, _W, _A = "r", "w", "a"


def _factory(polyphase: bool, twin: bool = False, tariff: dict | None = None) -> dict[tuple[CosemObjectId, int], tuple[Data, str]]:
    f = dict(_common_factory(polyphase))
    if twin and tariff is not None:  # the second element's tariff: the primary's factory tariff [I]
        o = OBIS
        cal, price = o.ACTIVITY_CALENDAR, o.UNIT_CHARGE
        for active, passive in ((3, 7), (4, 8), (5, 9)):
            f[(o.ACTIVITY_CALENDAR_SECONDARY, active)] = (tariff[_attr(cal, active)], _R)
            f[(o.ACTIVITY_CALENDAR_SECONDARY, passive)] = (tariff[_attr(cal, passive)], _W)
        f[(o.ACTIVITY_CALENDAR_SECONDARY, 10)] = (_never(), _W)
        f[(o.UNIT_CHARGE_SECONDARY, 5)] = (tariff[_attr(price, 5)], _R)
        f[(o.UNIT_CHARGE_SECONDARY, 6)] = (tariff[_attr(price, 6)], _W)
        f[(o.UNIT_CHARGE_SECONDARY, 7)] = (_never(), _W)
    return f


@lru_cache(maxsize=2)  # one table per phase count, shared by every ESME of a fleet (values never mutated)
def _common_factory(polyphase: bool) -> dict[tuple[CosemObjectId, int], tuple[Data, str]]:
    o = OBIS
    f: dict[tuple[CosemObjectId, int], tuple[Data, str]] = {}

    def add(obj: CosemObjectId, attr: int, value: Data, mode: str = _R) -> None:
        f[(obj, attr)] = (value, mode)

    # prepayment configuration (ECS08a, ECS26a)
    for obj, value, typ in ((o.MAX_METER_BALANCE, 10000000, _dl), (o.MAX_CREDIT_THRESHOLD, 5000000, _dl),
                            (o.LOW_CREDIT_THRESHOLD, 100000, _dl), (o.EMERGENCY_CREDIT_THRESHOLD, 300000, _dl),
                            (o.EMERGENCY_CREDIT_LIMIT, 200000, _dl), (o.DEBT_RECOVERY_CAP_PERIOD, 30, Data.long_unsigned),
                            (o.DEBT_RECOVERY_CAP_AMOUNT, 604800, _dl)):
        add(obj, 2, typ(value))
        add(obj, 4, typ(value), _W)
        add(obj, 6, _never(), _W)
    add(o.NON_DISABLEMENT_SPECIAL_DAYS, 2, _SPECIAL_DAYS)
    add(o.NON_DISABLEMENT_SPECIAL_DAYS_PASSIVE, 2, _SPECIAL_DAYS, _W)
    add(o.NON_DISABLEMENT_SPECIAL_DAYS_SWITCH, 6, _never(), _W)
    add(o.NON_DISABLEMENT_SCHEDULE, 2, _SCHEDULE)
    add(o.NON_DISABLEMENT_SCHEDULE_PASSIVE, 2, _SCHEDULE, _W)
    add(o.NON_DISABLEMENT_SCHEDULE_SWITCH, 6, _never(), _W)
    for debt in (o.TIME_DEBT_1, o.TIME_DEBT_2):
        add(debt, 5, _CHARGE)
        add(debt, 8, _dlu(86400))
    add(o.PAYMENT_DEBT, 13, Data.long_unsigned(5000))
    add(o.DEBT_RECOVERY_THRESHOLD, 2, Data.array(_dl(-500000)))
    add(o.ACCOUNT, 11, _CREDIT_CHARGE)
    add(o.ACCOUNT, 16, _dl(500000))
    add(o.ACCOUNT, 18, Data.long_unsigned(10000))
    add(o.ACCOUNT, 19, _dl(604800))
    add(o.ACCOUNT_PASSIVE, 2, Data.structure(Data.enum(1), Data.enum(1)), _W)
    add(o.ACCOUNT_PASSIVE, 11, _CREDIT_CHARGE, _W)
    add(o.ACCOUNT_PASSIVE, 13, _never(), _W)
    add(o.EMERGENCY_CREDIT, 9, _dl(2500000))
    add(o.EMERGENCY_CREDIT, 10, _dl(100000))
    # consumer-facing, identities
    add(o.CHANGE_OF_TENANCY, 2, _never(), _W)
    add(o.MPAN_IMPORT, 2, Data.octet_string(b"0000000000000"), _W)
    add(o.MPAN_EXPORT, 2, Data.octet_string(b"0000000000000"), _W)
    add(o.CIN, 2, Data.octet_string(b"0000"), _W)
    add(o.SUPPLIER_MESSAGE, 2, Data.octet_string(b""), _W)
    add(o.SUPPLIER_CONTACT, 2, Data.octet_string(b""), _W)
    add(o.PRIVACY_PIN, 2, Data.boolean(True), _W)
    add(o.SUPPLY_TAMPER_STATE, 2, Data.boolean(False), _W)
    add(o.DEVICE_TYPE_ID, 2, Data.octet_string(b"GBHUB-ESME"))
    for obj in (o.ALERT_BEHAVIOURS_SUPPLIER, o.ALERT_BEHAVIOURS_NETWORK_OPERATOR, o.EVENT_BEHAVIOURS_HAN,
                o.EVENT_BEHAVIOURS_AUDIBLE, o.EVENT_BEHAVIOURS_LOG, o.EVENT_BEHAVIOURS_LOG_NETWORK_OPERATOR):
        add(obj, 2, _MASK, _W)
    # randomisation, billing calendar, block counter reset
    add(o.RANDOMISED_OFFSET_LIMIT, 2, Data.long_unsigned(200))
    add(o.RANDOMISED_OFFSET, 2, Data.long_unsigned(1000), _W)
    add(o.RANDOMISED_OFFSET_PERIOD, 2, Data.long_unsigned(2000))
    add(o.BILLING_CALENDAR, 4, _BILLING_DATES, _W)
    add(o.BLOCK_COUNTER_RESET, 4, _DAILY, _W)
    # maximum demand configuration
    add(o.MAX_DEMAND_SCHEDULE, 2, _MD_SCHEDULE, _W)
    add(o.MAX_DEMAND_PERIOD_START, 2, _at(2000, 1, 1, 17))
    add(o.MAX_DEMAND_PERIOD_END, 2, _at(2000, 1, 1, 22))
    # load limiting, power thresholds
    add(o.LOAD_LIMIT_SUPPLY_STATE, 2, Data.boolean(False))
    add(o.LOAD_LIMIT_SUPPLY_STATE_PASSIVE, 2, Data.boolean(False), _W)
    for attr, value in ((4, 6900), (6, 300), (7, 30)):
        add(o.VOLTAGE_MONITOR, attr, _dlu(value))
        add(o.LOAD_LIMIT_PASSIVE, attr, _dlu(value), _W)
    add(o.LOAD_LIMIT_SWITCH, 6, _never(), _W)
    add(o.LOAD_LIMIT_COUNTER, 3, _su(0, 255))
    add(o.POWER_THRESHOLDS, 2, Data.structure(_dlu(4000), _dlu(8000), _dlu(12000)), _W)
    # voltage quality (GB nominal 230 V; thresholds as RTDS) [I]
    for obj, volts in ((o.AVERAGE_OVER_VOLTAGE, 253), (o.AVERAGE_UNDER_VOLTAGE, 216), (o.EXTREME_OVER_VOLTAGE, 287),
                       (o.EXTREME_UNDER_VOLTAGE, 180)):
        add(obj, 4, _dlu(volts), _W)
        add(obj, 6, _dlu(30), _W)
    phases = [("", o.RMS_VOLTAGE_PROFILE, o.SAG_THRESHOLD, o.SWELL_THRESHOLD, o.SAG_COUNTER, o.SWELL_COUNTER,
               o.AVERAGE_RMS_VOLTAGE)]
    if polyphase:
        phases += [("2", o.RMS_VOLTAGE_PROFILE_L2, o.SAG_THRESHOLD_L2, o.SWELL_THRESHOLD_L2, o.SAG_COUNTER_L2,
                    o.SWELL_COUNTER_L2, o.AVERAGE_RMS_VOLTAGE_L2),
                   ("3", o.RMS_VOLTAGE_PROFILE_L3, o.SAG_THRESHOLD_L3, o.SWELL_THRESHOLD_L3, o.SAG_COUNTER_L3,
                    o.SWELL_COUNTER_L3, o.AVERAGE_RMS_VOLTAGE_L3)]
    for _n, profile, sag, swell, sag_c, swell_c, avg in phases:
        add(profile, 4, _dlu(1800), _W)
        add(sag, 2, _dlu(200), _W)
        add(swell, 2, _dlu(264), _W)
        for counter in (sag_c, swell_c):
            add(counter, 2, _dlu(0))
            add(counter, 3, _su(0, 255))
        add(avg, 2, Data.long_unsigned(230))
        add(avg, 3, _su(0, 35))
    for dur in (o.SAG_DURATION, o.SWELL_DURATION):
        add(dur, 2, _dlu(0))
        add(dur, 3, _su(0, 7))
    # auxiliary load control
    for i in range(1, 6):
        add(getattr(o, f"ALCS_LABEL_{i}"), 2, Data.visible_string(f"ALCS_{i}"), _W)
        add(getattr(o, f"ALCS_HCALCS_{i}"), 2, Data.octet_string(bytes(8)))
        add(getattr(o, f"ALCS_HCALCS_{i}_PASSIVE"), 2, Data.octet_string(bytes(8)), _W)
        add(getattr(o, f"BOOST_BUTTON_{i}"), 2, Data.boolean(False), _W)
    add(o.ALCS_CONFIG_SWITCH, 6, _never(), _W)
    add(o.AUX_SPECIAL_DAYS, 2, _SPECIAL_DAYS)
    add(o.AUX_SPECIAL_DAYS_PASSIVE, 2, _SPECIAL_DAYS, _W)
    add(o.AUX_SPECIAL_DAYS_SWITCH, 6, _never(), _W)
    add(o.AUX_SCHEDULE, 2, _SCHEDULE)
    add(o.AUX_SCHEDULE_PASSIVE, 2, _SCHEDULE, _W)
    add(o.AUX_SCHEDULE_SWITCH, 6, _never(), _W)
    for obj in (o.BOOST_DURATION, o.BOOST_DURATION_2):
        add(obj, 2, Data.long_unsigned(30), _A)
    for obj in (o.APC_INPUT_START, o.APC_INPUT_END, o.AUX_STATE_START, o.AUX_STATE_END):
        add(obj, 2, _never(), _A)
    return f


def _attr(obj: CosemObjectId, attribute: int) -> tuple[int, bytes, int]:
    return (obj.class_id, obj.obis, attribute)


# activation attribute -> (passive, active) pairs, as meter.esme.ACTIVATIONS [O RTDS ECS08a/ECS46d/ECS02 layouts; I]
CONFIG_ACTIVATIONS: dict[tuple, tuple] = {
    **{_attr(obj, 6): ((_attr(obj, 4), _attr(obj, 2)),) for obj in (
        OBIS.MAX_METER_BALANCE, OBIS.MAX_CREDIT_THRESHOLD, OBIS.LOW_CREDIT_THRESHOLD, OBIS.EMERGENCY_CREDIT_THRESHOLD,
        OBIS.EMERGENCY_CREDIT_LIMIT, OBIS.DEBT_RECOVERY_CAP_PERIOD, OBIS.DEBT_RECOVERY_CAP_AMOUNT)},
    _attr(OBIS.NON_DISABLEMENT_SPECIAL_DAYS_SWITCH, 6): ((_attr(OBIS.NON_DISABLEMENT_SPECIAL_DAYS_PASSIVE, 2),
                                                         _attr(OBIS.NON_DISABLEMENT_SPECIAL_DAYS, 2)),),
    _attr(OBIS.NON_DISABLEMENT_SCHEDULE_SWITCH, 6): ((_attr(OBIS.NON_DISABLEMENT_SCHEDULE_PASSIVE, 2),
                                                     _attr(OBIS.NON_DISABLEMENT_SCHEDULE, 2)),),
    _attr(OBIS.AUX_SPECIAL_DAYS_SWITCH, 6): ((_attr(OBIS.AUX_SPECIAL_DAYS_PASSIVE, 2), _attr(OBIS.AUX_SPECIAL_DAYS, 2)),),
    _attr(OBIS.AUX_SCHEDULE_SWITCH, 6): ((_attr(OBIS.AUX_SCHEDULE_PASSIVE, 2), _attr(OBIS.AUX_SCHEDULE, 2)),),
    _attr(OBIS.ACCOUNT_PASSIVE, 13): ((_attr(OBIS.ACCOUNT_PASSIVE, 11), _attr(OBIS.ACCOUNT, 11)),),
    _attr(OBIS.ACTIVITY_CALENDAR_SECONDARY, 10): tuple((_attr(OBIS.ACTIVITY_CALENDAR_SECONDARY, p), _attr(OBIS.ACTIVITY_CALENDAR_SECONDARY, a))
                                                       for p, a in ((7, 3), (8, 4), (9, 5))),
    _attr(OBIS.UNIT_CHARGE_SECONDARY, 7): ((_attr(OBIS.UNIT_CHARGE_SECONDARY, 6), _attr(OBIS.UNIT_CHARGE_SECONDARY, 5)),),
    _attr(OBIS.LOAD_LIMIT_SWITCH, 6): (*((_attr(OBIS.LOAD_LIMIT_PASSIVE, a), _attr(OBIS.VOLTAGE_MONITOR, a)) for a in (4, 6, 7)),
                                       (_attr(OBIS.LOAD_LIMIT_SUPPLY_STATE_PASSIVE, 2), _attr(OBIS.LOAD_LIMIT_SUPPLY_STATE, 2))),
    _attr(OBIS.ALCS_CONFIG_SWITCH, 6): tuple((_attr(getattr(OBIS, f"ALCS_HCALCS_{i}_PASSIVE"), 2), _attr(getattr(OBIS, f"ALCS_HCALCS_{i}"), 2))
                                             for i in range(1, 6)),
}
PAYMENT_MODE_ACTIVATION = _attr(OBIS.ACCOUNT_PASSIVE, 13)
PAYMENT_MODES = {1: "credit", 2: "prepayment"}  # account_mode_and_status mode [O RTDS ECS02: 1; I]

# What each new data protection object lets a Get Protected Attributes read [O RTDS].
CONFIG_PROTECTION: dict[CosemObjectId, frozenset[tuple[int, bytes]]] = {
    OBIS.TOU_BLOCK_PROTECTION: frozenset({OBIS.REGISTERS_TOU_BLOCK.key}),
    OBIS.PREPAYMENT_PROTECTION: frozenset({OBIS.PREPAYMENT_REGISTERS.key}),
    OBIS.BILLING_LOG_CHANGE_PROTECTION: frozenset({OBIS.BILLING_LOG_CHANGE.key}),
    OBIS.BILLING_LOG_CALENDAR_PROTECTION: frozenset({OBIS.BILLING_LOG_CALENDAR.key, OBIS.BILLING_LOG_CALENDAR_PREPAYMENT.key}),
    OBIS.DAILY_CONSUMPTION_PROTECTION: frozenset({OBIS.DAILY_CONSUMPTION_LOG.key}),
}


def same_shape(template: Data, value: Data) -> bool:
    """Whether `value` has `template`'s DLMS shape: same types; structures member by member;
    arrays with every element shaped like the template's first (any length)."""
    if template.type is not value.type:
        return False
    if template.type is DataType.STRUCTURE:
        return len(template.value) == len(value.value) and all(same_shape(t, v) for t, v in zip(template.value, value.value))
    if template.type is DataType.ARRAY:
        return not template.value or all(same_shape(template.value[0], v) for v in value.value)
    return True


def config_defaults(polyphase: bool, twin: bool, tariff: dict) -> tuple[dict[tuple[int, bytes, int], Data], dict[tuple[int, bytes, int], str]]:
    """The configuration objects' factory values and access modes of a meter variant, by
    (class id, OBIS, attribute); `tariff`: the factory tariff (the secondary element's)."""
    values, modes = {}, {}
    for (obj, attr), (value, mode) in _factory(polyphase, twin, tariff).items():
        values[_attr(obj, attr)] = value
        modes[_attr(obj, attr)] = mode
    return values, modes


@lru_cache(maxsize=8)
def billing_desc(twin: bool, prepayment: bool) -> Any:
    """The compact-array type of a billing / daily read log row."""
    d = DOUBLE_LONG_UNSIGNED
    members = [d, d] + ([d] if twin else []) + [cosem.array(TOU_TIERS, d)]
    if twin:
        members.append(cosem.array(4, d))
    members += [cosem.array(BLOCK_TIERS, d) for _ in range(BLOCKS)]
    if prepayment:
        members += [DOUBLE_LONG] * 6
    return cosem.structure(*members)


class EsmeObjects:
    """The configuration and state objects of `Esme` (module doc)."""

    variant: str = "single"
    twin: bool = False  # set from `variant` by the ESME (read on every register read: a plain attribute)
    polyphase: bool = False

    def _set_variant(self, variant: str) -> None:
        if variant not in VARIANTS:
            raise ValueError(f"variant is one of {', '.join(VARIANTS)}")
        self.variant = variant
        self.twin = variant.startswith("twin")
        self.polyphase = variant.endswith("polyphase")

    # -- building (once per class and variant: the model is shared, `firmware.cosem`) ---------------
    @classmethod
    def _add_config_objects(cls, model: ObjectModel, defaults: dict, modes: dict, activations: dict,
                            polyphase: bool, twin: bool) -> None:
        """Add the configuration and state objects to the shared `model`; every getter, setter
        and method takes the ESME (`d`) first."""
        objects: dict[tuple[int, bytes], CosemObject] = {}

        def obj_of(oid: CosemObjectId) -> CosemObject:
            key = oid.key
            if key not in objects:
                try:
                    objects[key] = model.find(*key)
                except CosemError:
                    objects[key] = model.add(CosemObject.of(oid))
            return objects[key]

        by_key = {o.key: o for o in OBIS}
        for (class_id, ln, attribute), mode in modes.items():
            oid = by_key[(class_id, ln)]
            key = (class_id, ln, attribute)
            load = (lambda d, k=key: d._tariff_value(*k))
            if mode == _R:
                obj_of(oid).attributes[attribute] = Attribute(get=load)
            elif key in activations:  # an execution date-time (firmware.future): now, never or future
                obj_of(oid).attributes[attribute] = future_activation(
                    model, (class_id, ln), attribute, lambda d, k=key: d._activate(k), load=load,
                    store=lambda d, v, k=key: d._store_tariff_value(*k, v))
            else:
                template = defaults[key]
                check = None if mode == _A else template

                def store(d: Any, v: Data, k=key, t=check) -> None:
                    if t is not None and not same_shape(t, v):
                        raise CosemError(cosem.TYPE_UNMATCHED, "value has the wrong shape")
                    d._store_tariff_value(*k, v)
                obj_of(oid).attributes[attribute] = Attribute(get=load, set=store)
        o = OBIS
        buffer = cls._buffer
        live: dict[CosemObjectId, dict[int, Attribute]] = {
            o.ACCOUNT: {2: Attribute(get=cls._account_mode)},
            o.PREPAYMENT_REGISTERS: {2: Attribute(get=cls._prepayment_registers)},
            o.METER_BALANCE: {2: Attribute(get=lambda d: _dl(d._money(d._prepay()["credit"]))),
                              3: Attribute(get=lambda d: _su(-5, 254))},
            o.EXPORT_ENERGY_REGISTER: {2: Attribute(get=lambda d: _dlu(d.registers()["export_wh"] & 0xFFFFFFFF)),
                                       3: Attribute(get=lambda d: _su(0, 30))},
            o.REACTIVE_EXPORT_REGISTER: {2: Attribute(get=lambda d: _dlu(0)), 3: Attribute(get=lambda d: _su(0, 32))},
            o.TOU_REGISTERS: {2: Attribute(get=lambda d: Data.array(*(_dlu(v & 0xFFFFFFFF) for v in d.registers()["tou_wh"])))},
            o.REGISTERS_TOU_BLOCK: {2: Attribute(get=cls._tou_block_registers)},
            o.LOAD_LIMIT_COUNTER: {2: Attribute(get=lambda d: _dlu(int(d.nvm.get(NS, "load_limit_counter", 0))))},
            o.DEVICE_IDENTITY: {2: Attribute(get=lambda d: Data.octet_string(d.eui))},
            o.DAILY_CONSUMPTION_LOG: buffer(cls._daily_consumption_rows, cosem.structure(DOUBLE_LONG_UNSIGNED, DOUBLE_LONG_UNSIGNED)),
            o.BILLING_LOG_CHANGE: buffer(cls._billing_change_rows, billing_desc(twin, prepayment=True)),
            o.BILLING_LOG_CALENDAR: buffer(cls._billing_calendar_rows, billing_desc(twin, prepayment=False)),
            o.BILLING_LOG_CALENDAR_PREPAYMENT: buffer(cls._billing_prepayment_rows, cosem.structure(
                DOUBLE_LONG_UNSIGNED, *(DOUBLE_LONG,) * 6)),
            o.DEBT_PAYMENT_LOG: buffer(lambda d, b: [], cosem.structure(DOUBLE_LONG_UNSIGNED, DOUBLE_LONG_UNSIGNED)),
            o.PREPAYMENT_CREDIT_LOG: buffer(cls._credit_rows, cosem.structure(DOUBLE_LONG_UNSIGNED, DOUBLE_LONG_UNSIGNED,
                                                                              cosem.ENUM)),
            o.PREPAYMENT_DAILY_READ_LOG: buffer(cls._prepayment_daily_rows, cosem.structure(
                DOUBLE_LONG_UNSIGNED, *(DOUBLE_LONG,) * 6)),
            o.EXPORT_DAILY_READ_LOG: buffer(lambda d, b: [], cosem.structure(DOUBLE_LONG_UNSIGNED, DOUBLE_LONG_UNSIGNED)),
            o.EXPORT_PROFILE: buffer(cls._export_rows, cosem.structure(DOUBLE_LONG_UNSIGNED, DOUBLE_LONG_UNSIGNED,
                                                                       DOUBLE_LONG_UNSIGNED)),
            o.REACTIVE_IMPORT_PROFILE: buffer(cls._reactive_rows, cosem.structure(DOUBLE_LONG_UNSIGNED, DOUBLE_LONG_UNSIGNED)),
            o.ALCS_EVENT_LOG: buffer(cls._alcs_rows, cosem.structure(DOUBLE_LONG_UNSIGNED, cosem.LONG_UNSIGNED,
                                                                     cosem.ENUM, DOUBLE_LONG_UNSIGNED)),
            o.POWER_EVENT_LOG: buffer(cls._power_event_rows, cosem.structure(DOUBLE_LONG_UNSIGNED, cosem.LONG_UNSIGNED)),
        }
        for i in range(1, 6):
            live[getattr(o, f"ALCS_{i}")] = {2: Attribute(get=lambda d, i=i: Data.boolean(bool(d._alcs_state().get(str(i)))))}
        for md, export in ((o.MAX_DEMAND_IMPORT, False), (o.MAX_DEMAND_IMPORT_PERIOD, False), (o.MAX_DEMAND_EXPORT, True)):
            live[md] = {2: Attribute(get=lambda d, m=md, e=export: _dlu(d._max_demand(m, e)[0])),
                        3: Attribute(get=lambda d: _su(0, 27)),
                        5: Attribute(get=lambda d, m=md, e=export: d._md_time(d._max_demand(m, e)[1]))}
        for oid, attrs in live.items():
            obj_of(oid).attributes.update(attrs)
        methods: dict[CosemObjectId, dict[int, Callable]] = {
            o.TOKEN_CREDIT: {1: cls._adjust_balance, 2: cls._reset_balance},
            o.EMERGENCY_CREDIT: {3: cls._activate_emergency_credit},
            o.TIME_DEBT_1: {4: lambda d, p: d._adjust_debt("time_debt_1", p)},
            o.TIME_DEBT_2: {4: lambda d, p: d._adjust_debt("time_debt_2", p)},
            o.PAYMENT_DEBT: {4: lambda d, p: d._adjust_debt("payment_debt", p)},
            o.EVENT_LOG: {1: cls._clear_event_log},
            o.ALCS_EVENT_LOG: {1: lambda d, p: d.nvm.log_clear("alcs_events")},
            o.REGISTERS_TOU_BLOCK: {1: cls._reset_block_counters},
            o.LOAD_LIMIT_COUNTER: {1: lambda d, p: d.nvm.put(NS, "load_limit_counter", 0)},
            o.AUX_SWITCH_SCRIPT_TABLE: {1: cls._aux_script},
            o.MAX_DEMAND_IMPORT: {1: lambda d, p: d._reset_max_demand(o.MAX_DEMAND_IMPORT)},
            o.MAX_DEMAND_IMPORT_PERIOD: {1: lambda d, p: d._reset_max_demand(o.MAX_DEMAND_IMPORT_PERIOD)},
            o.MAX_DEMAND_EXPORT: {1: lambda d, p: d._reset_max_demand(o.MAX_DEMAND_EXPORT)},
        }
        counters = [o.SAG_COUNTER, o.SWELL_COUNTER] + ([o.SAG_COUNTER_L2, o.SWELL_COUNTER_L2, o.SAG_COUNTER_L3,
                                                        o.SWELL_COUNTER_L3] if polyphase else [])
        for c in counters:
            methods[c] = {1: lambda d, p, c=c: d._store_tariff_value(c.class_id, c.obis, 2, _dlu(0))}
        for oid, ms in methods.items():
            obj_of(oid).methods.update(ms)
        for protection, readable in CONFIG_PROTECTION.items():
            obj_of(protection).methods[1] = lambda d, p, r=readable: d._get_protected_attributes(r, p)

    @staticmethod
    def _buffer(rows: Callable[[Any, tuple[float, float] | None], list], desc: Any) -> dict[int, Attribute]:
        """A profile-generic buffer (attribute 2): `rows(esme, bounds)` as a compact array."""
        return {2: Attribute(get=lambda d: compact_array(desc, rows(d, None)),
                             select=lambda d, s, p: compact_array(desc, rows(d, d._range(s, p))))}

    # -- values ----------------------------------------------------------------------------------
    @staticmethod
    def _money(pence: float) -> int:
        return max(-(2 ** 31), min(2 ** 31 - 1, int(round(pence * MONEY_PER_PENNY))))

    def _account_mode(self) -> Data:
        mode = 2 if self._prepay()["mode"] == "prepayment" else 1
        return Data.structure(Data.enum(mode), Data.enum(1))

    def _prepayment_values(self) -> list[int]:
        """meter balance, emergency credit balance, accumulated debt, time debt 1, time debt 2,
        payment-based debt (10^-5 GBP) [I order]."""
        p = self._prepay()
        debts = [p.get(k, 0.0) for k in ("time_debt_1", "time_debt_2", "payment_debt")]
        return [self._money(p["credit"]), self._money(p["ec_remaining"]), self._money(p.get("debt", 0.0) + sum(debts)),
                *(self._money(d) for d in debts)]

    def _prepayment_registers(self) -> Data:
        return Data.structure(*(_dl(v) for v in self._prepayment_values()))

    def _tou_block_registers(self) -> Data:
        """48 TOU registers then the first 16 block counters (blocks 1-2, tiers 1-8) [O 64 values; meaning U]."""
        r = self.registers()
        values = list(r["tou_wh"]) + [v for b in r["block_wh"][:2] for v in b]
        return Data.structure(Data.array(*(_dlu(v & 0xFFFFFFFF) for v in values[:64])))

    # -- logs ------------------------------------------------------------------------------------
    def _daily(self, bounds: tuple[float, float] | None) -> list[dict]:
        return self.daily_log(*bounds) if bounds else self.daily_log()

    def _daily_consumption_rows(self, bounds):
        out, previous = [], None
        for e in self.daily_log():
            if previous is not None and (bounds is None or bounds[0] <= e["t"] <= bounds[1]):
                out.append((cosem.t2000(e["t"]), max(0, e["import_wh"] - previous) & 0xFFFFFFFF))
            previous = e["import_wh"]
        return out

    def _billing_desc(self, prepayment: bool) -> Any:
        return billing_desc(self.twin, prepayment)

    def _billing_row(self, e: dict, prepayment: list[int] | None) -> tuple:
        row: list[Any] = [cosem.t2000(e["t"]), e["import_wh"] & 0xFFFFFFFF]
        if self.twin:
            row.append(e.get("secondary_wh", 0) & 0xFFFFFFFF)
        row.append([v & 0xFFFFFFFF for v in e["tou_wh"]])
        if self.twin:
            row.append([0] * 4)
        row += [[v & 0xFFFFFFFF for v in b] for b in e["block_wh"]]
        if prepayment is not None:
            row += prepayment
        return tuple(row)

    def _billing_change_rows(self, bounds):
        """Snapshots taken when the payment mode or tariff changed (NVM log "billing_change")."""
        return [self._billing_row(e, e.get("prepayment", [0] * 6)) for e in self.nvm.log_entries("billing_change")
                if bounds is None or bounds[0] <= e["t"] <= bounds[1]]

    def _billing_calendar_entries(self, bounds) -> list[dict]:
        """The billing calendar's snapshots: the daily reads taken on the first of a month (the
        factory billing calendar) [I]."""
        return [e for e in self._daily(bounds) if datetime.fromtimestamp(e["t"], timezone.utc).day == 1]

    def _billing_calendar_rows(self, bounds):
        return [self._billing_row(e, None) for e in self._billing_calendar_entries(bounds)]

    def _billing_prepayment_rows(self, bounds):
        return [(cosem.t2000(e["t"]), *e.get("prepayment", [0] * 6)) for e in self._billing_calendar_entries(bounds)]

    def _prepayment_daily_rows(self, bounds):
        return [(cosem.t2000(e["t"]), *e.get("prepayment", [0] * 6)) for e in self._daily(bounds)]

    def _credit_rows(self, bounds):
        rows = []
        for e in self.nvm.log_entries("topup"):
            if bounds is None or bounds[0] <= e["t"] <= bounds[1]:
                rows.append((cosem.t2000(e["t"]), self._money(e["pence"]) & 0xFFFFFFFF, 1 if e.get("origin") == "remote" else 0))
        return rows

    def _export_rows(self, bounds):
        rows = self.profile(*bounds) if bounds else self.profile()
        return [(cosem.t2000(t), ex & 0xFFFFFFFF, 0) for t, _wh, ex in rows]

    def _reactive_rows(self, bounds):
        rows = self.profile(*bounds) if bounds else self.profile()
        return [(cosem.t2000(t), int(math.floor(wh * REACTIVE_RATIO + 0.5)) & 0xFFFFFFFF) for t, wh, _ex in rows]

    def _alcs_rows(self, bounds):
        return [(cosem.t2000(e["t"]), e["code"], e["alcs"], e.get("data", 0)) for e in self.nvm.log_entries("alcs_events")
                if bounds is None or bounds[0] <= e["t"] <= bounds[1]]

    def _power_event_rows(self, bounds):
        return [(cosem.t2000(e["t"]), e["code"] & 0xFFFF) for e in self.nvm.log_entries(POWER_EVENT_LOG)
                if bounds is None or bounds[0] <= e["t"] <= bounds[1]]

    def time_debt_rates_pence(self) -> dict[str, float]:
        """Daily recovery rate of each time-based debt in pence, from its charge (ECS26a reads
        it: unit charge x 10^price scale GBP per period) [I: the first table entry, per day]."""
        out = {}
        for key, obj in (("time_debt_1", OBIS.TIME_DEBT_1), ("time_debt_2", OBIS.TIME_DEBT_2)):
            try:
                scaling, _commodity, table = self._tariff_value(obj.class_id, obj.obis, 5).value
                out[key] = table.value[0].value[1].value * 10.0 ** scaling.value[1].value * 100.0
            except (AttributeError, IndexError, TypeError, ValueError):
                out[key] = 0.0
        return out

    def payment_debt_share(self) -> float:
        """The payment-based debt's share of each top-up: its charge's proportion (attribute 13,
        in 0.01 % [I units], factory 50 %)."""
        try:
            return max(0.0, min(1.0, self._tariff(OBIS.PAYMENT_DEBT, 13).value / 10000.0))
        except (AttributeError, KeyError, TypeError, ValueError):
            return 0.0

    def prepayment_settings(self) -> dict[str, float]:
        """The prepayment configuration in force (ECS08a), in pence: low credit, emergency credit
        limit and threshold, maximum meter balance and maximum credit (top-up) thresholds."""
        o = OBIS
        pence = lambda obj: self._tariff_value(obj.class_id, obj.obis, 2).value / MONEY_PER_PENNY  # noqa: E731
        return {"low_credit": pence(o.LOW_CREDIT_THRESHOLD), "emergency_credit_limit": pence(o.EMERGENCY_CREDIT_LIMIT),
                "emergency_credit_threshold": pence(o.EMERGENCY_CREDIT_THRESHOLD),
                "max_meter_balance": pence(o.MAX_METER_BALANCE), "max_credit": pence(o.MAX_CREDIT_THRESHOLD)}

    def top_up_limits(self) -> tuple[float | None, float | None]:
        """ECS08a's maximum credit threshold (per top-up) and maximum meter balance, in pence."""
        s = self.prepayment_settings()
        return s["max_credit"], s["max_meter_balance"]

    # -- hooks for what drives the meter (power and voltage faults) ---------------------------------
    def log_power_event(self, code: int) -> None:
        """Record a power event (supply outage / restore: alert codes 0x8F35 / 0x8F36) in the
        power event log ECS35e reads. Call inside the caller's NVM transaction."""
        self.nvm.log_append(POWER_EVENT_LOG, {"t": int(self.device_now()), "code": int(code)}, POWER_EVENT_LOG_CAPACITY)

    def voltage_settings(self, phase: int = 1) -> dict[str, int]:
        """The voltage quality configuration in force (ECS29*): thresholds in V, periods in s."""
        o = OBIS
        sfx = {1: "", 2: "_L2", 3: "_L3"}[phase]
        value = lambda obj, attr: int(self._tariff_value(obj.class_id, obj.obis, attr).value)  # noqa: E731
        return {
            "average_over_voltage": value(o.AVERAGE_OVER_VOLTAGE, 4), "average_over_voltage_period": value(o.AVERAGE_OVER_VOLTAGE, 6),
            "average_under_voltage": value(o.AVERAGE_UNDER_VOLTAGE, 4), "average_under_voltage_period": value(o.AVERAGE_UNDER_VOLTAGE, 6),
            "extreme_over_voltage": value(o.EXTREME_OVER_VOLTAGE, 4), "extreme_over_voltage_period": value(o.EXTREME_OVER_VOLTAGE, 6),
            "extreme_under_voltage": value(o.EXTREME_UNDER_VOLTAGE, 4), "extreme_under_voltage_period": value(o.EXTREME_UNDER_VOLTAGE, 6),
            "sag": value(getattr(o, "SAG_THRESHOLD" + sfx), 2), "swell": value(getattr(o, "SWELL_THRESHOLD" + sfx), 2),
            "average_period": value(getattr(o, "RMS_VOLTAGE_PROFILE" + sfx), 4),
        }

    def count_voltage_event(self, kind: str, phase: int = 1, duration_s: int = 0) -> None:
        """A sag or swell happened (`kind` "sag" | "swell"): its counter (ECS23, reset by ECS29a/e)
        goes up, and on phase 1 its duration is recorded. Call inside the caller's NVM transaction."""
        sfx = {1: "", 2: "_L2", 3: "_L3"}[phase]
        counter = getattr(OBIS, f"{kind.upper()}_COUNTER{sfx}")
        now = self._tariff_value(counter.class_id, counter.obis, 2).value
        self._store_tariff_value(counter.class_id, counter.obis, 2, _dlu(min(0xFFFFFFFF, now + 1)))
        if phase == 1:
            dur = getattr(OBIS, f"{kind.upper()}_DURATION")
            self._store_tariff_value(dur.class_id, dur.obis, 2, _dlu(min(0xFFFFFFFF, int(duration_s))))

    def behaviours(self) -> dict[str, frozenset[int]]:
        """The alert and event behaviour masks (ECS25*): which bits are set, by object name
        (ALERT_BEHAVIOURS_SUPPLIER, EVENT_BEHAVIOURS_LOG ...)."""
        out = {}
        for obj in (OBIS.ALERT_BEHAVIOURS_SUPPLIER, OBIS.ALERT_BEHAVIOURS_NETWORK_OPERATOR, OBIS.EVENT_BEHAVIOURS_HAN,
                    OBIS.EVENT_BEHAVIOURS_AUDIBLE, OBIS.EVENT_BEHAVIOURS_LOG, OBIS.EVENT_BEHAVIOURS_LOG_NETWORK_OPERATOR):
            bits = self._tariff_value(obj.class_id, obj.obis, 2).value
            data = bits.data if isinstance(bits, BitString) else b""
            out[obj.name] = frozenset(i for i in range(len(data) * 8) if data[i // 8] & (0x80 >> (i % 8)))
        return out

    @property
    def supply_tamper_lock(self) -> bool:
        """ECS81: whether a detected supply tamper disables the supply."""
        o = OBIS.SUPPLY_TAMPER_STATE
        return bool(self._tariff_value(o.class_id, o.obis, 2).value)

    def load_limit_settings(self) -> dict[str, Any]:
        """The load limiting configuration in force (ECS28a, ECS27)."""
        o = OBIS.VOLTAGE_MONITOR
        value = lambda attr: int(self._tariff_value(o.class_id, o.obis, attr).value)  # noqa: E731
        restore = OBIS.LOAD_LIMIT_SUPPLY_STATE
        return {"threshold_w": value(4), "period_s": value(6), "restore_period_s": value(7),
                "restore_supply": bool(self._tariff_value(restore.class_id, restore.obis, 2).value)}

    def count_load_limit(self) -> None:
        """A load limiting event happened: the counter ECS27 reads (reset by ECS28b) goes up.
        Call inside the caller's NVM transaction."""
        self.nvm.put(NS, "load_limit_counter", int(self.nvm.get(NS, "load_limit_counter", 0)) + 1)

    def set_average_voltage(self, volts: float, phase: int = 1) -> None:
        """The average RMS voltage ECS23 reads (the measured voltage's average over the period)."""
        obj = {1: OBIS.AVERAGE_RMS_VOLTAGE, 2: OBIS.AVERAGE_RMS_VOLTAGE_L2, 3: OBIS.AVERAGE_RMS_VOLTAGE_L3}[phase]
        self._store_tariff_value(obj.class_id, obj.obis, 2, Data.long_unsigned(max(0, min(65535, int(round(volts))))))

    # -- maximum demand --------------------------------------------------------------------------
    def _max_demand(self, which: CosemObjectId, export: bool) -> tuple[int, float]:
        """Highest half-hour average power (W) since the register's last reset, and when [I]."""
        since = float(self.nvm.get(NS, f"md_reset_{which.name.lower()}", 0.0))
        best, when = 0, None
        for t, wh, ex in self.profile(since + 1, None):
            w = 2 * (ex if export else wh)
            if w > best:
                best, when = w, t
        return min(best, 0xFFFFFFFF), when

    @staticmethod
    def _md_time(when: float | None) -> Data:
        return Data.timestamp(None) if when is None else cosem.timestamp(when)  # none yet: 'never'

    def _reset_max_demand(self, which: CosemObjectId) -> None:
        self.nvm.put(NS, f"md_reset_{which.name.lower()}", self.device_now())
        return None

    # -- methods ---------------------------------------------------------------------------------
    def _adjust_balance(self, parameters: Data) -> None:
        """ECS04a: add (or take) an amount to the meter balance [I: credit method update_amount]."""
        if parameters.type is not DataType.DOUBLE_LONG:
            raise CosemError(cosem.TYPE_UNMATCHED, "amount must be double-long")
        p = self._prepay()
        p["credit"] += parameters.value / MONEY_PER_PENNY
        self.nvm.put(NS, "prepayment", p)
        self.log_event("meter_balance_adjusted", amount=parameters.value)
        return None

    def _reset_balance(self, parameters: Data) -> None:
        p = self._prepay()
        p["credit"] = 0.0
        self.nvm.put(NS, "prepayment", p)
        self.log_event("meter_balance_reset")
        return None

    def _activate_emergency_credit(self, parameters: Data) -> None:
        """ECS09: grant emergency credit up to the configured limit [I]."""
        p = self._prepay()
        limit = self._tariff_value(*_attr(OBIS.EMERGENCY_CREDIT_LIMIT, 2)).value / MONEY_PER_PENNY
        p["ec_limit"] = max(p["ec_limit"], limit)
        p["ec_remaining"] = p["ec_limit"]
        self.nvm.put(NS, "prepayment", p)
        self.log_event("emergency_credit_activated")
        return None

    def _adjust_debt(self, which: str, parameters: Data) -> None:
        if parameters.type is not DataType.DOUBLE_LONG:
            raise CosemError(cosem.TYPE_UNMATCHED, "amount must be double-long")
        p = self._prepay()
        p[which] = max(0.0, p.get(which, 0.0) + parameters.value / MONEY_PER_PENNY)
        self.nvm.put(NS, "prepayment", p)
        return None

    def _clear_event_log(self, parameters: Data) -> None:
        command = self._command
        self.clear_event_log(originator=command.originator.hex().upper() if command else None)
        return None

    def _reset_block_counters(self, parameters: Data) -> None:
        reg = self.nvm.get(NS, "registers")
        reg["block_wh"] = [[0] * BLOCK_TIERS for _ in range(BLOCKS)]
        self.nvm.put(NS, "registers", reg)
        return None

    def _alcs_state(self) -> dict:
        return self.nvm.get(NS, "alcs", {})

    def _aux_script(self, parameters: Data) -> None:
        """ECS47/ECS47a: run an auxiliary switch script; the low 3 bits name the switch, bit 8
        on/off [I: RTDS scripts 273 (ALCS 1 on), 4352, 5476, 9010 carry no further meaning we know]."""
        if parameters.type is not DataType.LONG_UNSIGNED:
            raise CosemError(cosem.TYPE_UNMATCHED, "script id must be long-unsigned")
        script = parameters.value
        switch = (script & 0x7) or 1
        on = bool(script & 0x100) or bool(script & 0x1000)
        state = dict(self._alcs_state())
        state[str(switch)] = on
        self.nvm.put(NS, "alcs", state)
        self.nvm.log_append("alcs_events", {"t": int(self.device_now()), "code": 0x8000 | script & 0x7FFF,
                                            "alcs": switch, "data": script}, 100)
        return None

    def _payment_mode_activated(self) -> None:
        """The passive account's mode became active (ECS02/ECS03): change the payment mode and
        take a billing snapshot (ECS20b) [I]."""
        passive = self._tariff_value(*_attr(OBIS.ACCOUNT_PASSIVE, 2))
        try:
            mode = PAYMENT_MODES.get(passive.value[0].value)
        except (AttributeError, IndexError, TypeError):
            mode = None
        if mode is not None:
            p = self._prepay()
            p["mode"] = mode
            self.nvm.put(NS, "prepayment", p)
        self._billing_snapshot()

    def _billing_snapshot(self) -> None:
        r = self.registers()
        self.nvm.log_append("billing_change", {
            "t": int(self.device_now()), "import_wh": r["import_wh"], "tou_wh": r["tou_wh"], "block_wh": r["block_wh"],
            "prepayment": self._prepayment_values()}, 100)


__all__ = ["EsmeObjects", "VARIANTS", "POWER_EVENT_LOG", "CONFIG_ACTIVATIONS", "CONFIG_PROTECTION", "same_shape", "MONEY_PER_PENNY"]
