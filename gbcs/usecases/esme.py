"""ESME use cases: register, profile and log reads (ECS17b/c, ECS21a, ECS22b, ECS35a/b), supply
control (ECS42..ECS45), firmware version (ECS52, the CHF answers it too), clock (ECS70), tariff and
prices (ECS01a, ECS01b, ECS24) and top-up (CS01a).

Every layout was taken from the use case's RTDS COMMAND/PRECOMMAND vectors, except ECS01a (a
DCC/GFI test message) [O]. The Get Protected Attributes reads (ECS17b, ECS21a, ECS22b) name the
message's originator and recipient inside the content, so they take `originator` / `recipient`
parameters that `build_content` fills from the header.
"""
from __future__ import annotations

import datetime as _dt
import enum
from typing import Any, Callable, Sequence

from .. import catalogue
from ..dlms import Data, DataType, DlmsDateTime, RequestKind, RequestSpec
from ..frame import Message
from ..obis import BLOCK_THRESHOLDS, BLOCK_THRESHOLDS_PASSIVE, OBIS, CosemObjectId
from ..utrn import decode_utrn
from .common import (
    Unexpected,
    access_request,
    access_response,
    action_results,
    as_int,
    date_text,
    datetime_text,
    day_range,
    define,
    dlms_dt,
    elements,
    get_attribute,
    invoke,
    log_range,
    octets,
    plain_value,
    protected_get,
    protected_read,
    request_keys,
    results,
    seconds_text,
    set_attribute,
    single_value,
    text_or_hex,
    time_text,
    when_bytes,
)
from .params import REQUIRED, Param, iso, max_len, rows_check

_G, _GS, _S, _A = RequestKind.GET, RequestKind.GET_WITH_SELECTION, RequestKind.SET, RequestKind.ACTION
_U32 = 0xFFFFFFFF
# attribute and method ids (DLMS Blue Book) the builders below address
_VALUE = 2  # data / register (classes 1, 3): value
_BUFFER, _RANGE = 2, 1  # profile generic (class 7): buffer, read with selector 1 range_descriptor
_CONTROL_STATE = 3  # disconnect control (class 70)
_EXECUTE = 1  # script table (class 9)
_ENTER = 1  # token gateway (class 115)
_UNIT_CHARGE_PASSIVE, _UNIT_CHARGE_ACTIVATION = 6, 7  # charge (class 113)
_CALENDAR = OBIS.ACTIVITY_CALENDAR
_STANDING_CHARGE = OBIS.STANDING_CHARGE
_PRICE_MATRIX = OBIS.UNIT_CHARGE
_REGISTER = OBIS.ACTIVE_IMPORT_REGISTER  # the register the price matrix prices [O RTDS ECS01b]

_ORIGINATOR = Param("originator", "eui", catalogue.RTDS_SUPPLIER,
                    "the command's originator EUI, named again inside the content (protection parameters); "
                    "build_content fills it from the message header")
_RECIPIENT = Param("recipient", "eui", catalogue.RTDS_ESME,
                   "the command's recipient EUI (the ESME), named again inside the content; build_content fills it")


def _range_params(what: str, days: int) -> tuple[Param, Param]:
    """A read range; with neither end given it is the `days` days up to the end of today (UTC, by
    the caller's clock), so a fresh premises reads today's entries."""
    return (Param("start", "datetime", None, f"start of the {what} (UTC); default: {days} day(s) before 'end'"),
            Param("end", "datetime", None, f"end of the {what} (UTC); default: 'start' + {days} day(s), or the end "
                  "of today (the next 00:00 UTC after now)"))


_UNITS = {27: "W", 28: "VA", 29: "var", 30: "Wh", 31: "VAh", 32: "varh", 33: "A", 35: "V", 44: "Hz", 254: "other",
          255: "count"}


def _unit_name(code: int) -> str:
    return _UNITS.get(code, f"unit {code}")


def _scaler_unit(d: Data) -> tuple[int, int]:
    s, u = elements(d, (DataType.STRUCTURE,))
    return as_int(s), as_int(u)


def _scaled(value: int, scaler: int) -> float:
    return value * 10.0 ** scaler if scaler < 0 else float(value * 10 ** scaler)


# -- ECS17b Read ESME Energy Registers (Import Energy) --------------------------------------------------


def _b_ecs17b(counter: int, *, originator: bytes, recipient: bytes) -> bytes:
    return protected_get(counter, OBIS.ENERGY_REGISTERS_PROTECTION, ((OBIS.IMPORT_ENERGY_REGISTERS, _VALUE, 0, Data.null()),),
                         originator, recipient)


def _i_ecs17b(p: Any, m: Message | None) -> dict:
    out, plain = protected_read(p)
    if plain is None:
        return out
    regs = elements(single_value(plain), (DataType.STRUCTURE,))
    if len(regs) < 4:
        raise Unexpected("expected {import, scaler_unit, reactive import, scaler_unit, ...}")
    value, (scaler, unit) = as_int(regs[0]), _scaler_unit(regs[1])
    rvalue, (rscaler, runit) = as_int(regs[2]), _scaler_unit(regs[3])
    out.update(import_value=value, scaler=scaler, unit=_unit_name(unit),
               reactive_import_value=rvalue, reactive_scaler=rscaler, reactive_unit=_unit_name(runit))
    if unit == 30:
        out["import_kwh"] = _scaled(value, scaler) / 1000
    if runit == 32:
        out["reactive_import_kvarh"] = _scaled(rvalue, rscaler) / 1000
    if len(regs) > 4:  # twin-element ESME [O RTDS TWIN]: one more register, same scaling [I]
        extra = [as_int(x) for x in regs[4:]]
        out["secondary_import_value"] = extra[0]
        if unit == 30:
            out["secondary_import_kwh"] = _scaled(extra[0], scaler) / 1000
        if len(extra) > 1:
            out["extra_values"] = extra[1:]
    return out


define("ECS17b", target="esme", build=_b_ecs17b, interpret=_i_ecs17b, params=(_ORIGINATOR, _RECIPIENT),
       requests=request_keys((_A, OBIS.ENERGY_REGISTERS_PROTECTION)),
       response="ACCESS.response: protected (encrypted) structure{import, scaler_unit, reactive import, scaler_unit[, secondary]}")


# -- ECS17c Read ESME Energy Registers (Power)-------------------------------------------------------------------


def _b_ecs17c(counter: int) -> bytes:
    return access_request(counter, (get_attribute(OBIS.INSTANTANEOUS_ACTIVE_POWER_IMPORT, _VALUE), None))


def _i_ecs17c(p: Any, m: Message | None) -> dict:
    r = access_response(p)
    out = results(r)
    if not out["ok"]:
        return out
    regs = elements(r.data[0], (DataType.STRUCTURE,))
    value, (scaler, unit) = as_int(regs[0]), _scaler_unit(regs[1])
    out.update(power_value=value, scaler=scaler, unit=_unit_name(unit))
    if unit == 27:
        out["power_w"] = _scaled(value, scaler)
    rest = [plain_value(x) for x in regs[2:]]
    if rest:
        out["extra_values"] = rest  # [I] meaning not identified (RTDS: one more double-long-unsigned)
    return out


define("ECS17c", target="esme", build=_b_ecs17c, interpret=_i_ecs17c,
       requests=request_keys((_G, OBIS.INSTANTANEOUS_ACTIVE_POWER_IMPORT)),
       response="ACCESS.response: structure{power, scaler_unit, value}")


# -- ECS21a Read Electricity Daily Read Log, ECS22b Read Half Hour Profile Data ------------------------------


def _profile_entries(plain: Data) -> tuple[Data, ...]:
    return elements(single_value(plain), (DataType.ARRAY, DataType.COMPACT_ARRAY))


def _window(start: _dt.datetime, end: _dt.datetime) -> Data:
    """A profile's range as Get Protected Attributes' access parameters: structure{from, to} as
    DLMS date-times [O RTDS ECS21a/ECS22b]."""
    return Data.structure(Data.octet_string(dlms_dt(start)), Data.octet_string(dlms_dt(end)))


def _protected_log_read(protection: CosemObjectId, log: CosemObjectId, days: int) -> Callable[..., bytes]:
    """Builder of a Get Protected Attributes read of a profile's buffer over a date range (ECS21a,
    ECS22b): the range defaults to `days` whole days up to the end of today."""

    def build(counter: int, *, originator: bytes, recipient: bytes, start: _dt.datetime | None,
              end: _dt.datetime | None, now: _dt.datetime | None) -> bytes:
        window = _window(*day_range(start, end, days, now))
        return protected_get(counter, protection, ((log, _BUFFER, _RANGE, window),), originator, recipient)

    return build


_b_ecs21a = _protected_log_read(OBIS.DAILY_READ_PROTECTION, OBIS.DAILY_READ_LOG, 2)


def _i_ecs21a(p: Any, m: Message | None) -> dict:
    out, plain = protected_read(p)
    if plain is None:
        return out
    entries = []
    for e in _profile_entries(plain):
        items = elements(e, (DataType.STRUCTURE,))
        registers = [as_int(x) for x in items[1:] if x.type not in (DataType.ARRAY, DataType.STRUCTURE)]
        arrays = [[plain_value(y) for y in x.value] for x in items[1:] if x.type in (DataType.ARRAY, DataType.STRUCTURE)]
        entry: dict[str, Any] = {"time": seconds_text(as_int(items[0])), "import_register": registers[0] if registers else None,
                                 "registers": registers}
        # [O RTDS single element]: 48 TOU registers then four arrays of 8 block counters
        if arrays and len(arrays[0]) == 48:
            entry["tou_registers"] = arrays[0]
            entry["block_registers"] = arrays[1:]
        else:
            entry["arrays"] = arrays
        entries.append(entry)
    out["entries"] = entries
    return out


define("ECS21a", target="esme", build=_b_ecs21a, interpret=_i_ecs21a,
       params=(_ORIGINATOR, _RECIPIENT, *_range_params("daily read log range", 2)),
       requests=request_keys((_A, OBIS.DAILY_READ_PROTECTION)),
       response="ACCESS.response: protected compact-array of daily reads")


_b_ecs22b = _protected_log_read(OBIS.PROFILE_DATA_PROTECTION, OBIS.ACTIVE_IMPORT_PROFILE, 1)


def _i_ecs22b(p: Any, m: Message | None) -> dict:
    out, plain = protected_read(p)
    if plain is None:
        return out
    entries = []
    for e in _profile_entries(plain):
        items = elements(e, (DataType.STRUCTURE,))
        entry: dict[str, Any] = {"time": seconds_text(as_int(items[0])), "value": as_int(items[1])}
        if len(items) > 2:  # twin element [O RTDS TWIN]
            entry["values"] = [as_int(x) for x in items[1:]]
        entries.append(entry)
    out["entries"] = entries
    return out


define("ECS22b", target="esme", build=_b_ecs22b, interpret=_i_ecs22b,
       params=(_ORIGINATOR, _RECIPIENT, *_range_params("half-hour profile range", 1)),
       requests=request_keys((_A, OBIS.PROFILE_DATA_PROTECTION)),
       response="ACCESS.response: protected compact-array of {time, value}")


# -- ECS35a Read ESME Event Log, ECS35b Read ESME Security Log ------------------------------------------------


def _b_log(log: CosemObjectId) -> Callable[..., bytes]:
    """Get the log's buffer with a range_descriptor over the UTC time [O RTDS ECS35a/b]."""
    def build(counter: int, *, start: _dt.datetime | None, end: _dt.datetime | None, now: _dt.datetime | None) -> bytes:
        spec = RequestSpec.get_with_selection(log.class_id, log.obis, _BUFFER, _RANGE,
                                              log_range(*day_range(start, end, 1, now)))
        return access_request(counter, (spec, None))
    return build


def _i_log(p: Any, m: Message | None) -> dict:
    r = access_response(p)
    out = results(r)
    if not out["ok"]:
        return out
    events = []
    for e in elements(r.data[0], (DataType.ARRAY, DataType.COMPACT_ARRAY)):
        items = elements(e, (DataType.STRUCTURE,))
        code = as_int(items[1])
        ev: dict[str, Any] = {"time": seconds_text(as_int(items[0])), "event_code": f"{code:04X}",
                              "event": catalogue.alert_name(code)}
        if len(items) > 2:
            ev["data"] = plain_value(items[2]) if items[2].type is not DataType.OCTET_STRING else octets(items[2]).hex().upper()
        events.append(ev)
    out["events"] = events
    return out


define("ECS35a", target="esme", build=_b_log(OBIS.EVENT_LOG), interpret=_i_log,
       params=_range_params("event log range", 1),
       requests=request_keys((_GS, OBIS.EVENT_LOG), (_G, OBIS.EVENT_LOG)),
       response="ACCESS.response: compact-array of {time, event code, data}")
define("ECS35b", target="esme", build=_b_log(OBIS.SECURITY_LOG), interpret=_i_log,
       params=_range_params("security log range", 1),
       requests=request_keys((_GS, OBIS.SECURITY_LOG), (_G, OBIS.SECURITY_LOG)),
       response="ACCESS.response: compact-array of {time, event code}")


# -- ECS42/43/44 load switch, ECS45 Read Status of Load Switch ---------------------------------------------------


def _b_script(script_id: int) -> Callable[..., bytes]:
    """Supply control: execute a script of the load switch script table [O RTDS ECS42/43/44]."""
    def build(counter: int) -> bytes:
        return access_request(counter, (invoke(OBIS.LOAD_SWITCH_SCRIPT_TABLE, _EXECUTE), Data.long_unsigned(script_id)))
    return build


_SUPPLY_SCRIPTS = request_keys((_A, OBIS.LOAD_SWITCH_SCRIPT_TABLE))
define("ECS42", target="esme", build=_b_script(51), interpret=action_results, requests=_SUPPLY_SCRIPTS,
       response="signed ACCESS.response: one action result")
define("ECS43", target="esme", build=_b_script(52), interpret=action_results, requests=_SUPPLY_SCRIPTS,
       response="signed ACCESS.response: one action result")
define("ECS44", target="esme", build=_b_script(54), interpret=action_results, requests=_SUPPLY_SCRIPTS,
       response="signed ACCESS.response: one action result")


class SupplyState(enum.IntEnum):
    """Disconnect control (class 70) control_state, in GBCS words [I: DLMS disconnected /
    connected / ready_for_reconnection = GBCS supply Off / On / Armed]."""

    OFF = 0
    ON = 1
    ARMED = 2


def _b_ecs45(counter: int) -> bytes:
    return access_request(counter, (get_attribute(OBIS.DISCONNECT_CONTROL, _CONTROL_STATE), None))


def _i_ecs45(p: Any, m: Message | None) -> dict:
    r = access_response(p)
    out = results(r)
    if not out["ok"]:
        return out
    state = as_int(r.data[0])
    out["control_state"] = state
    try:
        out["supply_state"] = SupplyState(state).name.lower()
    except ValueError:
        out["supply_state"] = f"unknown ({state})"
    return out


define("ECS45", target="esme", build=_b_ecs45, interpret=_i_ecs45, requests=request_keys((_G, OBIS.DISCONNECT_CONTROL)),
       response="ACCESS.response: enum control_state")


# -- ECS52 Read ESME/Comms Hub Firmware Version ------------------------------------------------------------------


def _b_ecs52(counter: int) -> bytes:
    return access_request(counter, (get_attribute(OBIS.DEVICE_FIRMWARE_VERSION, _VALUE), None))


def _i_ecs52(p: Any, m: Message | None) -> dict:
    r = access_response(p)
    out = results(r)
    versions = [octets(d) for d, res in zip(r.data, r.results) if res.ok]
    if versions:
        out["firmware_version"] = versions[0].hex().upper()
        out["firmware_versions"] = [{"hex": v.hex().upper(), "text": text_or_hex(v)} for v in versions]
    return out


define("ECS52", target="esme", targets=("esme", "chf"), build=_b_ecs52, interpret=_i_ecs52,
       requests=request_keys((_G, OBIS.DEVICE_FIRMWARE_VERSION, _VALUE)),
       response="ACCESS.response: octet-string firmware version")


# -- ECS70 Set Clock on ESME ----------------------------------------------------------------------------------


def _b_ecs70(counter: int, *, validity_start: _dt.datetime | None, validity_end: _dt.datetime | None,
             clock_base: int, now: _dt.datetime | None) -> bytes:
    if validity_start is None:
        if now is None:
            raise ValueError("parameter 'validity_start' defaults to now: pass now= (the caller's clock), "
                             "or give 'validity_start'")
        validity_start = now.replace(microsecond=0)
    if validity_end is None:
        validity_end = validity_start + _dt.timedelta(seconds=60)
    if validity_end < validity_start:
        raise ValueError(f"ECS70: parameter 'validity_end' ({iso(validity_end)}) is before 'validity_start'")
    preset = Data.structure(Data.octet_string(DlmsDateTime.NEVER.to_bytes()), Data.octet_string(dlms_dt(validity_start)),
                            Data.octet_string(dlms_dt(validity_end)))
    return access_request(
        counter,
        (set_attribute(OBIS.CLOCK, 9), Data.enum(clock_base)),  # clock_base
        (invoke(OBIS.CLOCK, 5), preset),  # preset_adjusting_time(unspecified, window)
        (invoke(OBIS.CLOCK, 4), Data.integer(0)),  # adjust_to_preset_time
        (get_attribute(OBIS.CLOCK, 2), None),  # time
        (get_attribute(OBIS.CLOCK, 4), None),  # status
    )


def _i_ecs70(p: Any, m: Message | None) -> dict:
    r = access_response(p)
    out = results(r, ("set_clock_base", "preset_adjusting_time", "adjust_to_preset_time", "time", "status"))
    if len(r.data) >= 5 and len(r.results) >= 5:
        if r.results[3].ok and r.data[3].type in (DataType.OCTET_STRING, DataType.DATE_TIME):
            out["device_time"] = datetime_text(r.data[3].value)  # type: ignore[arg-type]
        if r.results[4].ok and r.data[4].type is not DataType.NULL_DATA:
            out["clock_status"] = as_int(r.data[4])
    return out


define("ECS70", target="esme", build=_b_ecs70, interpret=_i_ecs70, params=(
    Param("validity_start", "datetime", None, "start of the time window in which the meter may set its clock; "
          "default: now (the caller's clock, UTC)"),
    Param("validity_end", "datetime", None, "end of the window; default: validity_start + 60 s (the RTDS window)"),
    Param("clock_base", "int", 5, "clock_base attribute written first (RTDS 5)", min=0, max=255),
), requests=request_keys((_S, OBIS.CLOCK), (_A, OBIS.CLOCK), (_G, OBIS.CLOCK)),
   response="signed ACCESS.response: set/action/action results, time, status")


# -- tariff and prices: shared by ECS01a, ECS01b and ECS24 -------------------------------------------------------


def _price_index(tariff: int, band: int) -> int:
    """Price-matrix index of block tariff `tariff` (0..7), price band `band` (0..3): A1..A8, B1..,
    C1.., D1..D8 as bytes 0xA1.. [O RTDS ECS01b / ECS24: A/B = band, digit = block tariff]."""
    return 0xA1 + 0x10 * band + tariff


def _unit_charges(standing_charge: int, standing_charge_scale: int, price_scale: int,
                  tou_prices: Sequence[int], block_prices: Sequence[Sequence[int]]) -> tuple[Data, Data]:
    standing = Data.structure(
        Data.structure(Data.integer(0), Data.integer(standing_charge_scale)),
        Data.structure(Data.long_unsigned(0), Data.octet_string(bytes(6)), Data.integer(0)),
        Data.array(Data.structure(Data.octet_string(b""), Data.long(standing_charge))))
    tou = list(tou_prices) + [0] * (48 - len(tou_prices))
    entries = [Data.structure(Data.octet_string(bytes((i + 1,))), Data.long(p)) for i, p in enumerate(tou)]
    for band in range(4):
        for tariff in range(8):
            row = block_prices[tariff] if tariff < len(block_prices) else ()
            price = row[band] if band < len(row) else 0
            entries.append(Data.structure(Data.octet_string(bytes((_price_index(tariff, band),))), Data.long(price)))
    matrix = Data.structure(
        Data.structure(Data.integer(3), Data.integer(price_scale)),
        Data.structure(Data.long_unsigned(_REGISTER.class_id), Data.obis(_REGISTER.obis), Data.integer(_VALUE)),
        Data.array(*entries))
    return standing, matrix


_PRICE = dict(min=-32768, max=32767)
_SCALE = dict(min=-128, max=127)
_PRICE_PARAMS: tuple[Param, ...] = (
    Param("standing_charge", "int", 20000, "standing charge per day, in units of 10^standing_charge_scale", **_PRICE),
    Param("standing_charge_scale", "int", -5, "decimal exponent of the standing charge", **_SCALE),
    Param("price_scale", "int", -5, "decimal exponent of the prices (per kWh)", **_SCALE),
    Param("tou_prices", "ints", (3221,), "TOU prices for rates 1..48 (missing ones 0)", **_PRICE,
          check=max_len(48, "TOU prices")),
    Param("block_prices", "int_rows", (), "per block tariff 1..8, the prices of bands A..D (missing ones 0)",
          **_PRICE, check=rows_check(8, 4, "block tariffs")),
    Param("execution_date_time", "when", None, "when the new prices apply: a date-time, immediate (default) or "
          "never (cancels a pending future-dated change)"),
)


def _i_tariff_write(names: Sequence[str]) -> Callable[[Any, Message | None], dict]:
    def interp(p: Any, m: Message | None) -> dict:
        r = access_response(p)
        out = results(r, names)
        if not out["ok"]:
            out["failed"] = [n for n, x in zip(names, r.results) if not x.ok] if len(names) == len(r.results) else None
        return out
    return interp


# what a tariff read (ECS24) may get [I]
_TARIFF_OBJECTS = (OBIS.CURRENCY_UNITS, OBIS.ACTIVITY_CALENDAR, OBIS.SPECIAL_DAYS_TABLE, OBIS.SPECIAL_DAYS_TABLE_PASSIVE,
                   OBIS.BLOCK_MODE, OBIS.SPECIAL_DAYS_SWITCH, OBIS.BLOCK_THRESHOLDS_SWITCH, OBIS.STANDING_CHARGE,
                   OBIS.UNIT_CHARGE, *BLOCK_THRESHOLDS, *BLOCK_THRESHOLDS_PASSIVE)
# what a tariff command may write: passive values, activation times, the currency register [I]
_TARIFF_WRITES = (OBIS.CURRENCY_UNITS, OBIS.ACTIVITY_CALENDAR, OBIS.SPECIAL_DAYS_TABLE_PASSIVE, OBIS.BLOCK_MODE,
                  OBIS.SPECIAL_DAYS_SWITCH, OBIS.BLOCK_THRESHOLDS_SWITCH, OBIS.STANDING_CHARGE, OBIS.UNIT_CHARGE,
                  *BLOCK_THRESHOLDS_PASSIVE)


# -- ECS01a Set Tariff and Price on ESME -----------------------------------------------------------------------


def _date5(d: _dt.date) -> bytes:
    return d.year.to_bytes(2, "big") + bytes((d.month, d.day, 0xFF))


def _time4(t: _dt.time) -> bytes:
    return bytes((t.hour, t.minute, t.second, t.microsecond // 10000))


def _selector(action: str) -> int:
    n = int(action[1:])
    return n if action[0] == "T" else 100 + n


def _week_check(rows: tuple) -> None:
    if not 1 <= len(rows) <= 255:
        raise ValueError("need 1..255 week profiles")
    for i, row in enumerate(rows):
        if len(row) != 7:
            raise ValueError(f"week {i + 1} must list 7 day profiles (Monday..Sunday), got {len(row)}")


_STRUCTURE_DEFAULTS = {
    "seasons": (("all", _dt.date(2015, 1, 1), 1),),
    "week_profiles": ((1, 1, 1, 1, 1, 1, 1),),
    "day_profiles": (((_dt.time(0, 0), "T1"),),),
}


def _b_ecs01a(counter: int, *, seasons, week_profiles, day_profiles, special_days, block_thresholds, block_mode,
              standing_charge, standing_charge_scale, price_scale, tou_prices, block_prices,
              execution_date_time) -> bytes:
    """Passive calendar, passive special days, passive block thresholds, tariff mode and unit
    charges, then one activation time for each; layout of a DCC/GFI ECS01a test message (valid
    RTDS-key MAC and signature) [O], object meanings from DLMS classes 11/20/21/113 [I]."""
    days = len(day_profiles)
    for i, week in enumerate(week_profiles):
        for d in week:
            if not 1 <= d <= days:
                raise ValueError(f"ECS01a: parameter 'week_profiles': week {i + 1} uses day profile {d}, "
                                 f"but there are {days}")
    for name, _start, week in seasons:
        if not 1 <= week <= len(week_profiles):
            raise ValueError(f"ECS01a: parameter 'seasons': season {name!r} uses week {week}, "
                             f"but there are {len(week_profiles)}")
    for d, day in special_days:
        if not 1 <= day <= days:
            raise ValueError(f"ECS01a: parameter 'special_days': {d.isoformat()} uses day profile {day}, "
                             f"but there are {days}")
    if block_mode is None:
        block_mode = any(a[0] == "B" for prof in day_profiles for _, a in prof)
    season_data = Data.array(*(
        Data.structure(Data.octet_string(name.encode("latin-1")),
                       Data.octet_string(dlms_dt(_dt.datetime(start.year, start.month, start.day))),
                       Data.octet_string(bytes((week,))))
        for name, start, week in seasons))
    week_data = Data.array(*(
        Data.structure(Data.octet_string(bytes((i + 1,))), *(Data.unsigned(d) for d in week))
        for i, week in enumerate(week_profiles)))
    day_data = Data.array(*(
        Data.structure(Data.unsigned(i + 1), Data.array(*(
            Data.structure(Data.octet_string(_time4(t)), Data.obis(OBIS.TARIFF_SWITCHING_SCRIPT_TABLE.obis), Data.long_unsigned(_selector(a)))
            for t, a in prof)))
        for i, prof in enumerate(day_profiles)))
    special = Data.array(*(
        Data.structure(Data.long_unsigned(i + 1), Data.octet_string(_date5(d)), Data.unsigned(day))
        for i, (d, day) in enumerate(special_days)))
    thresholds = [tuple(block_thresholds[i]) if i < len(block_thresholds) else (_U32,) for i in range(8)]
    standing, matrix = _unit_charges(standing_charge, standing_charge_scale, price_scale, tou_prices, block_prices)
    when = Data.octet_string(when_bytes(execution_date_time))
    return access_request(
        counter,
        (set_attribute(_CALENDAR, 7), season_data),  # season_profile_passive
        (set_attribute(_CALENDAR, 8), week_data),  # week_profile_table_passive
        (set_attribute(_CALENDAR, 9), day_data),  # day_profile_table_passive
        (set_attribute(OBIS.SPECIAL_DAYS_TABLE_PASSIVE, 2), special),
        *((set_attribute(obj, 2), Data.array(*(Data.double_long_unsigned(x) for x in row)))
          for obj, row in zip(BLOCK_THRESHOLDS_PASSIVE, thresholds)),  # passive register monitors: block thresholds
        (set_attribute(OBIS.BLOCK_MODE, 4), Data.boolean(block_mode)),
        (set_attribute(_STANDING_CHARGE, _UNIT_CHARGE_PASSIVE), standing),
        (set_attribute(_PRICE_MATRIX, _UNIT_CHARGE_PASSIVE), matrix),
        (set_attribute(_CALENDAR, 10), when),  # activate_passive_calendar_time
        (set_attribute(OBIS.SPECIAL_DAYS_SWITCH, 6), when),
        (set_attribute(OBIS.BLOCK_MODE, 6), when),
        (set_attribute(_STANDING_CHARGE, _UNIT_CHARGE_ACTIVATION), when),
        (set_attribute(_PRICE_MATRIX, _UNIT_CHARGE_ACTIVATION), when),
        (set_attribute(OBIS.BLOCK_THRESHOLDS_SWITCH, 6), when),
    )


_ECS01A_NAMES = ("seasons", "week_profiles", "day_profiles", "special_days",
                 *(f"block_thresholds_{i + 1}" for i in range(8)), "block_mode", "standing_charge", "price_matrix",
                 "calendar_activation", "special_days_activation", "block_mode_activation",
                 "standing_charge_activation", "price_matrix_activation", "thresholds_activation")


define("ECS01a", target="esme", build=_b_ecs01a, interpret=_i_tariff_write(_ECS01A_NAMES), params=(
    Param("seasons", "seasons", _STRUCTURE_DEFAULTS["seasons"], "seasons: (name, start date, week profile number)"),
    Param("week_profiles", "int_rows", _STRUCTURE_DEFAULTS["week_profiles"],
          "week profiles 1..n: day profile numbers for Monday..Sunday", min=1, max=255, check=_week_check),
    Param("day_profiles", "day_profiles", _STRUCTURE_DEFAULTS["day_profiles"],
          "day profiles 1..n: switch times (UTC) and actions T<rate> / B<block tariff>"),
    Param("special_days", "special_days", (), "special days: (date, day profile number)",
          check=max_len(255, "special days")),
    Param("block_thresholds", "int_rows", ((_U32,),) * 8,
          "per block tariff 1..8, up to 3 thresholds (missing rows: 4294967295)", min=0, max=_U32,
          check=rows_check(8, 3, "block tariffs")),
    Param("block_mode", "bool", None, f"tariff flag {OBIS.BLOCK_MODE.text}; default: true iff a day profile uses a "
          "block tariff [I]"),
    *_PRICE_PARAMS,
), requests=request_keys(*((_S, o) for o in _TARIFF_WRITES), (_A, OBIS.ACTIVITY_CALENDAR)),
   response="signed ACCESS.response: 21 set results")


# -- ECS01b Set Price on ESME ----------------------------------------------------------------------------------------


def _b_ecs01b(counter: int, *, standing_charge: int, standing_charge_scale: int, price_scale: int,
              tou_prices: tuple[int, ...], block_prices: tuple[tuple[int, ...], ...],
              execution_date_time: "_dt.datetime | str | None") -> bytes:
    standing, matrix = _unit_charges(standing_charge, standing_charge_scale, price_scale, tou_prices, block_prices)
    when = Data.octet_string(when_bytes(execution_date_time))
    return access_request(
        counter,
        (set_attribute(_STANDING_CHARGE, _UNIT_CHARGE_PASSIVE), standing),
        (set_attribute(_PRICE_MATRIX, _UNIT_CHARGE_PASSIVE), matrix),
        (set_attribute(_STANDING_CHARGE, _UNIT_CHARGE_ACTIVATION), when),
        (set_attribute(_PRICE_MATRIX, _UNIT_CHARGE_ACTIVATION), when),
    )


_ECS01B_NAMES = ("standing_charge", "price_matrix", "standing_charge_activation", "price_matrix_activation")


define("ECS01b", target="esme", build=_b_ecs01b, interpret=_i_tariff_write(_ECS01B_NAMES), params=_PRICE_PARAMS,
       requests=request_keys((_S, OBIS.STANDING_CHARGE), (_S, OBIS.UNIT_CHARGE)),
       response="signed ACCESS.response: 4 set results")


# -- ECS24 Read ESME Tariff Data --------------------------------------------------------------------------------------


# ECS24: the tariff as the ESME holds it, one Get per object [O RTDS ECS24]. Names are ours [I].
_ECS24_OBJECTS: tuple[tuple[CosemObjectId, int, str], ...] = (
    (OBIS.CURRENCY_UNITS, 2, "currency_units"),
    (OBIS.CURRENCY_UNITS, 3, "price_scale"),
    (_CALENDAR, 3, "seasons"),
    (_CALENDAR, 4, "week_profiles"),
    (_CALENDAR, 5, "day_profiles"),
    (OBIS.SPECIAL_DAYS_TABLE, 2, "special_days"),
    *((obj, 2, f"block_thresholds_{i + 1}") for i, obj in enumerate(BLOCK_THRESHOLDS)),
    (OBIS.BLOCK_MODE, 2, "block_mode"),
    (_STANDING_CHARGE, 5, "standing_charge"),
    (_PRICE_MATRIX, 5, "price_matrix"),
)


def _b_ecs24(counter: int) -> bytes:
    return access_request(counter, *((get_attribute(obj, a), None) for obj, a, _ in _ECS24_OBJECTS))


def _action_text(selector: int) -> str | int:
    if 1 <= selector <= 48:
        return f"T{selector}"
    if 101 <= selector <= 108:
        return f"B{selector - 100}"
    return selector


def _tariff_from(values: dict[str, Data]) -> dict:
    """The tariff as ECS01a parameters (times and dates as text), from the ECS24 values."""
    out: dict[str, Any] = {}
    if "currency_units" in values:
        out["currency_units"] = as_int(values["currency_units"])  # [I] 1 = GBP
    if "price_scale" in values:
        scaler, unit = _scaler_unit(values["price_scale"])
        out["currency_scale"] = scaler
    if "seasons" in values:
        out["seasons"] = [{"name": text_or_hex(octets(s[0])), "start": datetime_text(octets(s[1])),
                           "week": octets(s[2])[0] if len(octets(s[2])) == 1 else octets(s[2]).hex().upper()}
                          for s in elements(values["seasons"])]
    if "week_profiles" in values:
        out["week_profiles"] = [[as_int(d) for d in elements(w)[1:]] for w in elements(values["week_profiles"])]
    if "day_profiles" in values:
        out["day_profiles"] = [{"day": as_int(elements(d)[0]),
                                "switches": [{"start": time_text(octets(elements(s)[0])),
                                              "action": _action_text(as_int(elements(s)[2]))}
                                             for s in elements(elements(d)[1])]}
                               for d in elements(values["day_profiles"])]
    if "special_days" in values:
        out["special_days"] = [{"index": as_int(elements(s)[0]), "date": date_text(octets(elements(s)[1])),
                                "day": as_int(elements(s)[2])} for s in elements(values["special_days"])]
    rows = [values.get(f"block_thresholds_{i + 1}") for i in range(8)]
    if any(x is not None for x in rows):
        out["block_thresholds"] = [[as_int(t) for t in elements(x)] if x is not None else None for x in rows]
    if "block_mode" in values and values["block_mode"].type is DataType.BOOLEAN:
        out["block_mode"] = bool(values["block_mode"].value)
    if "standing_charge" in values:
        sc = elements(values["standing_charge"])
        _commodity, scale = _scaler_unit(sc[0])
        charges = [as_int(elements(e)[1]) for e in elements(sc[2])]
        out["standing_charge"] = charges[0] if len(charges) == 1 else charges
        out["standing_charge_scale"] = scale
    if "price_matrix" in values:
        pm = elements(values["price_matrix"])
        _commodity, scale = _scaler_unit(pm[0])
        prices = {(octets(elements(e)[0]) or b"\x00")[0]: as_int(elements(e)[1]) for e in elements(pm[2])}
        tou = [prices.get(i, 0) for i in range(1, 49)]
        while tou and tou[-1] == 0:
            tou.pop()
        blocks = [[prices.get(_price_index(t, b), 0) for b in range(4)] for t in range(8)]
        for row in blocks:
            while row and row[-1] == 0:
                row.pop()
        while blocks and not blocks[-1]:
            blocks.pop()
        out.update(price_scale=scale, tou_prices=tou, block_prices=blocks)
    return out


def _i_ecs24(p: Any, m: Message | None) -> dict:
    r = access_response(p)
    names = [n for *_, n in _ECS24_OBJECTS]
    out = results(r, names)
    if len(r.data) != len(names) or len(r.results) != len(names):
        raise Unexpected(f"expected {len(names)} values")
    values = {n: d for n, d, res in zip(names, r.data, r.results) if res.ok}
    out["tariff"] = _tariff_from(values)
    return out


define("ECS24", target="esme", build=_b_ecs24, interpret=_i_ecs24,
       requests=request_keys(*((_G, o) for o in _TARIFF_OBJECTS)),
       response="ACCESS.response: 17 values (calendar, special days, thresholds, prices)")


# -- CS01a Apply Prepayment Top Up to an ESME ----------------------------------------------------------------------------


def _b_cs01a(counter: int, *, utrn: str) -> bytes:
    """Token gateway (class 115) method 1 `enter` with the UTRN as 20 ASCII digits [O]."""

    utrn_counter = counter >> 32
    if decode_utrn(utrn).truncated_counter != utrn_counter & 0x3FF:
        raise ValueError(f"CS01a: parameter 'utrn' was made for another UTRN counter (its 10 counter bits are "
                         f"{decode_utrn(utrn).truncated_counter}, the originator counter's UTRN counter is {utrn_counter})")
    return access_request(counter, (invoke(OBIS.TOKEN_GATEWAY, _ENTER), Data.octet_string(utrn.encode("ascii"))))


define("CS01a", target="esme", build=_b_cs01a, interpret=action_results, utrn=True, params=(
    Param("utrn", "utrn", REQUIRED, "the UTRN (20 digits; its 10 counter bits must match the originator "
          "counter's UTRN counter)"),
), requests=request_keys((_A, OBIS.TOKEN_GATEWAY)), response="ACCESS.response: one action result")
