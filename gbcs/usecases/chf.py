"""CHF use cases: the CHF Device Log (CCS01, CCS02, CCS03, CCS05CCS04, CCS06, CCS07) on the ZigBee
Network Control object, and the CS14 device-log backup alert.

CHF commands are DCC-originated: the ACB sends them and carries the supplier as supplementary
remote party [O RTDS CCS01/02/06] (`originator="acb"`).
"""
from __future__ import annotations

from typing import Any

from .. import catalogue
from ..codec import eui_hex
from ..dlms import Data, DataNotification, DataType, RequestKind
from ..frame import Message
from ..obis import OBIS
from .common import (
    Unexpected,
    access_request,
    access_response,
    action_results,
    as_int,
    datetime_text,
    define,
    elements,
    get_attribute,
    invoke,
    octets,
    plain_value,
    request_keys,
    results,
    set_attribute,
)
from .params import Param, length

_G, _S, _A = RequestKind.GET, RequestKind.SET, RequestKind.ACTION
_NC = OBIS.ZIGBEE_NETWORK_CONTROL
# ZigBee network control (class 104) attributes and methods [O RTDS CCS01/02/06; U restore_PAN]
NC_ENABLE_DISABLE_JOINING, NC_JOIN_TIMEOUT, NC_ACTIVE_DEVICES = 2, 3, 4
NC_REGISTER_DEVICE, NC_UNREGISTER_DEVICE, NC_RESTORE_PAN = 1, 2, 5
_JOINING = ((_S, _NC, NC_JOIN_TIMEOUT, NC_ENABLE_DISABLE_JOINING),)


def _register_device(eui: bytes, key_type: int, install_code: bytes, option: int) -> Data:
    """register_device's structure{eui, key type, install code, option} (CCS01; each CCS03 entry)."""
    return Data.structure(Data.octet_string(eui), Data.enum(key_type), Data.octet_string(install_code), Data.enum(option))


# -- CCS01 Add Device to CHF device log ------------------------------------------------------------


def _b_ccs01(counter: int, *, device: bytes, install_code: bytes, join_timeout: int, enable_joining: bool,
             key_type: int, option: int) -> bytes:
    return access_request(
        counter,
        (invoke(_NC, NC_REGISTER_DEVICE), _register_device(device, key_type, install_code, option)),
        (set_attribute(_NC, NC_JOIN_TIMEOUT), Data.long_unsigned(join_timeout)),
        (set_attribute(_NC, NC_ENABLE_DISABLE_JOINING), Data.boolean(enable_joining)),
    )


def _i_ccs01(p: Any, m: Message | None) -> dict:
    return results(access_response(p), ("register_device", "join_timeout", "enable_joining"))


define("CCS01", target="chf", originator="acb", build=_b_ccs01, interpret=_i_ccs01, params=(
    Param("device", "eui", catalogue.RTDS_ESME, "EUI-64 of the device to add to the CHF device log"),
    Param("install_code", "hex", b"0123456789ABCDEF", "16-byte install code (DUIS InstallCode)", check=length(16)),
    Param("join_timeout", "int", 90, "join_timeout attribute (RTDS 90; unit not confirmed [U])", min=0, max=65535),
    Param("enable_joining", "bool", True, "enable_disable_joining attribute"),
    Param("key_type", "int", 1, "register_device key type (RTDS 1 with an install code) [I]", min=0, max=255),
    Param("option", "int", 0, "fourth register_device element (RTDS 0; meaning not found [U])", min=0, max=255),
), requests=request_keys((_A, _NC, NC_REGISTER_DEVICE), *_JOINING),
   response="ACCESS.response: action + 2 set results, null data")


# -- CCS02 Remove device from CHF device log ---------------------------------------------------------


def _b_ccs02(counter: int, *, device: bytes) -> bytes:
    return access_request(counter, (invoke(_NC, NC_UNREGISTER_DEVICE), Data.octet_string(device)))


define("CCS02", target="chf", originator="acb", build=_b_ccs02, interpret=action_results, params=(
    Param("device", "eui", catalogue.RTDS_ESME, "EUI-64 of the device to remove from the CHF device log"),
), requests=request_keys((_A, _NC, NC_UNREGISTER_DEVICE)), response="ACCESS.response: one action result")


# -- CCS03 Restore CHF Device Log ---------------------------------------------------------------------


def _b_ccs03(counter: int, *, extended_pan_id: bytes, devices: tuple[tuple[bytes, bytes], ...], join_timeout: int,
             enable_joining: bool, key_type: int, option: int) -> bytes:
    """CCS03 Restore CHF Device Log [U: no source gives the payload; our layout on DLMS class 104
    (hub/chf.py module doc)]: action 5 restore_PAN(structure{extended PAN id, array of CCS01
    register_device structures}), then join_timeout and enable_disable_joining as CCS01."""
    backup = Data.array(*(_register_device(eui, key_type, code, option) for eui, code in devices))
    return access_request(
        counter,
        (invoke(_NC, NC_RESTORE_PAN), Data.structure(Data.octet_string(extended_pan_id), backup)),
        (set_attribute(_NC, NC_JOIN_TIMEOUT), Data.long_unsigned(join_timeout)),
        (set_attribute(_NC, NC_ENABLE_DISABLE_JOINING), Data.boolean(enable_joining)),
    )


_RESTORE_ENTRY_RESULTS = {0: "restored", 1: "invalid_entry", 2: "device_log_full"}  # [U] hub/chf.py


def _i_ccs03(p: Any, m: Message | None) -> dict:
    """results of the three requests, and `entries`: restore_PAN's per-backup-entry results in
    order (restored / invalid_entry / device_log_full) when the CHF returned them."""
    r = access_response(p)
    out = results(r, ("restore_pan", "join_timeout", "enable_joining"))
    if r.data and r.data[0].type is DataType.ARRAY:
        out["entries"] = [_RESTORE_ENTRY_RESULTS.get(n, f"unknown ({n})") for n in map(as_int, elements(r.data[0]))]
    return out


define("CCS03", target="chf", originator="acb", build=_b_ccs03, interpret=_i_ccs03, params=(
    Param("extended_pan_id", "eui", catalogue.RTDS_GPF, "ZigBee extended PAN id the CHF adopts (normally the "
          "GPF's EUI; CS14 reports the current one)"),
    Param("devices", "devices", ((catalogue.RTDS_ESME, b"0123456789ABCDEF"),),
          "the backup: every device the CHF device log is to hold, with its 16-byte install code "
          "(CS14 lists the EUIs); others are removed"),
    Param("join_timeout", "int", 90, "join_timeout attribute, as CCS01", min=0, max=65535),
    Param("enable_joining", "bool", True, "enable_disable_joining attribute, as CCS01"),
    Param("key_type", "int", 1, "key type of every entry (1: install code), as CCS01", min=0, max=255),
    Param("option", "int", 0, "fourth element of every entry, as CCS01 (meaning not found [U])", min=0, max=255),
), requests=request_keys((_A, _NC, NC_RESTORE_PAN), *_JOINING),
   response="ACCESS.response: action (return data: array of per-entry enum) + 2 set results [U]")


# -- CCS05CCS04 Read CHF Device Log, CCS06 ... and check HAN communications, CCS07 Read CHF Device Logs -
# One layout for the three [O RTDS CCS05CCS04, CCS06: get active_devices]; CCS07 has no vector and
# is answered the same way (its DT adds the historic log's link-key hashes: not modelled) [I].

_READ_DEVICE_LOG = request_keys((_G, _NC, NC_ACTIVE_DEVICES, NC_ENABLE_DISABLE_JOINING, NC_JOIN_TIMEOUT))


def _b_read_device_log(counter: int) -> bytes:
    return access_request(counter, (get_attribute(_NC, NC_ACTIVE_DEVICES), None))


def _i_read_device_log(p: Any, m: Message | None) -> dict:
    """active_devices of the ZigBee network control object [I: element names from DLMS class 104
    attribute 4 active_device; RTDS shows 14 elements of exactly those types]."""
    r = access_response(p)
    out = results(r)
    if not out["ok"]:
        return out
    devices = []
    for e in elements(r.data[0], (DataType.ARRAY,)):
        x = elements(e, (DataType.STRUCTURE,))
        dev: dict[str, Any] = {"eui": eui_hex(octets(x[0])) if len(octets(x[0])) == 8 else octets(x[0]).hex().upper()}
        if len(x) >= 14:
            dev.update(
                status=plain_value(x[1]),
                rssi={"max": as_int(x[2]), "average": as_int(x[3]), "min": as_int(x[4])},
                lqi={"max": as_int(x[5]), "average": as_int(x[6]), "min": as_int(x[7])},
                last_communication=datetime_text(octets(x[8])),
                hops=as_int(x[9]), transmission_failures=as_int(x[10]), transmission_successes=as_int(x[11]),
                application_version=as_int(x[12]), stack_version=as_int(x[13]))
            if len(x) > 14:
                dev["extra"] = [plain_value(y) for y in x[14:]]
        else:
            dev["values"] = [plain_value(y) for y in x[1:]]
        devices.append(dev)
    out["devices"] = devices
    return out


define("CCS05CCS04", target="chf", originator="acb", build=_b_read_device_log, interpret=_i_read_device_log, requests=_READ_DEVICE_LOG,
       response="ACCESS.response: array of 14-element active_device structures")
define("CCS06", target="chf", originator="acb", build=_b_read_device_log, interpret=_i_read_device_log, requests=_READ_DEVICE_LOG,
       response="ACCESS.response: array of 14-element active_device structures")
define("CCS07", target="chf", originator="acb", build=_b_read_device_log, interpret=_i_read_device_log, requests=_READ_DEVICE_LOG,
       response="ACCESS.response: array of 14-element active_device structures")


# -- CS14 Device Addition To / Removal From HAN Whitelist Alerts (alert: interpret only) ------------------


def _i_cs14(p: Any, m: Message | None) -> dict:
    """CHF device log backup alert (0x8F12): structure{alert code, time, structure{backup time,
    8 bytes [I: the HAN's extended PAN id, needed to restore it with CCS03], array of {EUI,
    16-byte hash of the TC link key (empty when none yet)}}} [O RTDS NA_CS14; S DT]."""
    if not isinstance(p, DataNotification):
        raise Unexpected(f"expected a DLMS DATA-NOTIFICATION, got {type(p).__name__}")
    out: dict[str, Any] = {"ok": True}
    if p.alert_code is not None:
        out["alert_code"] = f"{p.alert_code:04X}"
        out["alert"] = catalogue.alert_name(p.alert_code)
    if p.alert_time is not None:
        out["alert_time"] = datetime_text(p.alert_time)
    els = p.elements
    if not els:
        raise Unexpected("no device log in the alert")
    log = elements(els[0], (DataType.STRUCTURE,))
    out["backup_time"] = datetime_text(octets(log[0]))
    out["extended_pan_id"] = octets(log[1]).hex().upper()
    out["devices"] = [{"eui": eui_hex(octets(elements(e)[0])), "link_key_hash": octets(elements(e)[1]).hex().upper()}
                      for e in elements(log[2], (DataType.ARRAY,))]
    return out


define("CS14", target="chf", originator="acb", build=None, interpret=_i_cs14,
       response="alert: DATA-NOTIFICATION 0x8F12 with the CHF device log backup")
