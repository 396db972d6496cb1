"""Rig files (TOML): which devices a premises has, how they are linked, where state lives.

Every key is documented in the README ("Rig file"). Unknown keys are errors (a typo must not be
silently ignored on a lab rig). Paths are relative to the rig file; `$VARS` and `${VARS}` expand
from the environment, with GBHUB_VECTORS defaulting to ../shared/vectors beside the project checkout
(an installed gbhub has no checkout: a rig naming $GBHUB_VECTORS then fails in one line saying to set it).
"""
from __future__ import annotations

import hashlib
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gbhub.hub  # noqa: F401  (registers chf, gpf)
import gbhub.meter  # noqa: F401  (registers esme, ihd)
from gbcs.codec import eui_hex, parse_eui
from gbhub.firmware.registry import device_kind, device_kinds

from .inputs import Failure, default_vectors

CLOCK_MODES = ("real", "sim")
HAN_TRANSPORTS = ("virtual", "zigbee", "serial", "ble")

DEVICE_KEYS = frozenset({"name", "type", "eui", "install_code", "firmware_version", "keys", "options"})
PAIRING_KEY = "meter"  # a HAN device's meter (types registered with `pairs_with`)

# The demo premises (`gbhub run` without a rig, the `premises` fixture): [[device]] tables.
DEFAULT_DEVICES: tuple[dict[str, Any], ...] = (
    {"type": "chf"}, {"type": "gpf"}, {"type": "esme"}, {"type": "ihd", "meter": "esme"},
    {"type": "ppmid", "meter": "esme"},
)

# The first device of each type in a rig without `eui` / `install_code` (from the registrations).
DEFAULT_EUIS = {k.type: k.default_eui for k in device_kinds()}
DEFAULT_INSTALL_CODES = {k.type: k.default_install_code for k in device_kinds() if k.default_install_code}


def device_types() -> tuple[str, ...]:
    """The registered device types (`gbhub.firmware.registry`), in registration order."""
    return tuple(k.type for k in device_kinds())


def default_eui(type_: str, n: int = 1) -> bytes:
    """The default EUI of the n-th device of a type: the registered one, with byte 6 = n - 1."""
    base = bytearray(bytes.fromhex(device_kind(type_).default_eui))
    base[6] = (base[6] + n - 1) & 0xFF
    return bytes(base)


def default_install_code(type_: str, eui: bytes, n: int = 1) -> bytes | None:
    """The registered install code for the first device of a type; later ones get one derived
    from their EUI, so no two devices of a rig share a link key."""
    code = device_kind(type_).default_install_code
    if code is None:
        return None
    if n == 1:
        return bytes.fromhex(code)
    return hashlib.sha256(b"gbhub install code" + eui).digest()[:16]


class RigError(ValueError):
    """A rig file that cannot be used; the message names the key."""


@dataclass
class DeviceSpec:
    """One [[device]] table, with defaults filled in: a unique `name` (default: the type, then
    `esme-2`, `esme-3` ...), a unique EUI, and for a HAN device the name of its `meter`."""

    name: str
    type: str
    eui: bytes
    install_code: bytes | None = None
    firmware_version: str | None = None
    keys: Path | None = None  # keystore folder holding this device's private keys
    options: dict[str, Any] = field(default_factory=dict)
    meter: str | None = None  # the meter a HAN device pairs with (its rig name)


@dataclass
class Rig:
    data: Path | None
    devices: list[DeviceSpec]
    clock: str = "real"
    speed: float = 1.0
    start: float | None = None
    han: str = "virtual"
    han_latency: float = 0.0
    han_loss: float = 0.0
    han_seed: int = 0
    wan_host: str = "127.0.0.1"
    wan_port: int = 0
    trace: Path | None = None
    key_folders: list[Path] = field(default_factory=list)
    acb: bytes | None = None
    supplier: bytes | None = None
    network_operator: bytes | None = None
    commission: bool = True
    source: Path | None = None

    def device(self, type_: str) -> DeviceSpec | None:
        """The first device of a type."""
        return next((d for d in self.devices if d.type == type_), None)



def default_rig(data: Path | None, extra: list[dict] | tuple[dict, ...] = (), *, ihd: bool = True,
                ppmid: bool = True) -> Rig:
    """The demo premises (CHF, GPF, ESME, IHD and PPMID on the virtual HAN, test PKI in DATA/keys),
    plus `extra` [[device]] tables as in a rig file (e.g. `[{"type": "esme"}]` for a second ESME);
    `ihd` / `ppmid` False leave those out (so does an `extra` table of that type: it replaces it)."""
    extra_types = {t.get("type") for t in extra}
    left_out = {t for t, keep in (("ihd", ihd), ("ppmid", ppmid and "ppmid" not in extra_types)) if not keep}
    tables = [dict(t) for t in DEFAULT_DEVICES if t["type"] not in left_out] + [dict(t) for t in extra]
    return Rig(data=data, devices=parse_devices(tables, Path.cwd()))


_VAR = re.compile(r"\$(\w+)|\$\{(\w+)\}")


def _expand(text: str, base: Path) -> str:
    def repl(m: re.Match) -> str:
        name = m.group(1) or m.group(2)
        if name == "GBHUB_VECTORS" and name not in os.environ:
            try:
                return str(default_vectors())
            except Failure as exc:
                raise RigError(str(exc)) from None
        if name not in os.environ:
            raise RigError(f"environment variable ${name} is not set")
        return os.environ[name]

    return _VAR.sub(repl, text)


def _path(value: Any, base: Path, key: str) -> Path:
    if not isinstance(value, str) or not value:
        raise RigError(f"{key}: expected a path string")
    p = Path(_expand(value, base)).expanduser()
    return p if p.is_absolute() else (base / p)


def _number(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RigError(f"{key}: expected a number, got {value!r}")
    return float(value)


def _integer(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RigError(f"{key}: expected an integer, got {value!r}")
    return value


def parse_start(value: Any, key: str = "start") -> float:
    """A clock start: an ISO 8601 date-time (text, or a TOML / Python datetime; no zone means
    UTC) or Unix seconds -> Unix seconds."""
    import datetime as dt

    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise RigError(f"{key}: not an ISO 8601 date-time: {value!r}") from None
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        value = dt.datetime(value.year, value.month, value.day)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return value.timestamp()
    raise RigError(f"{key}: expected an ISO 8601 date-time, got {value!r}")


def _eui(value: Any, key: str) -> bytes:
    try:
        return parse_eui(str(value))
    except ValueError as exc:
        raise RigError(f"{key}: {exc}") from None


def _check_keys(table: dict, allowed: set[str], where: str) -> None:
    unknown = set(table) - allowed
    if unknown:
        raise RigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} (allowed: {', '.join(sorted(allowed))})")


def load_rig(path: str | os.PathLike) -> Rig:
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text())
    except OSError as exc:
        raise RigError(f"cannot read rig file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise RigError(f"{path}: {exc}") from None
    return parse_rig(doc, path.resolve().parent, source=path)


def parse_rig(doc: dict, base: Path, source: Path | None = None) -> Rig:
    _check_keys(doc, {"data", "clock", "han", "wan", "keystore", "device", "commission"}, "rig")
    data = _path(doc["data"], base, "data") if "data" in doc else None
    rig = Rig(data=data, devices=[], source=source)
    rig.commission = doc.get("commission", True)
    if not isinstance(rig.commission, bool):
        raise RigError(f"commission: expected true or false, got {rig.commission!r}")

    clock = doc.get("clock", {})
    _check_keys(clock, {"mode", "speed", "start"}, "[clock]")
    rig.clock = clock.get("mode", "real")
    if rig.clock not in CLOCK_MODES:
        raise RigError(f"[clock] mode: expected one of {CLOCK_MODES}, got {rig.clock!r}")
    rig.speed = _number(clock.get("speed", 1.0), "[clock] speed")
    if rig.speed <= 0:
        raise RigError("[clock] speed: must be positive")
    if "start" in clock:
        rig.start = parse_start(clock["start"], "[clock] start")

    han = doc.get("han", {})
    _check_keys(han, {"transport", "latency", "loss", "seed"}, "[han]")
    rig.han = han.get("transport", "virtual")
    if rig.han not in HAN_TRANSPORTS:
        raise RigError(f"[han] transport: expected one of {HAN_TRANSPORTS}, got {rig.han!r}")
    if rig.han != "virtual":
        raise RigError(f"[han] transport {rig.han!r}: only 'virtual' is available in this build")
    rig.han_latency = _number(han.get("latency", 0.0), "[han] latency")
    if rig.han_latency < 0:
        raise RigError("[han] latency: must not be negative")
    rig.han_loss = _number(han.get("loss", 0.0), "[han] loss")
    if not 0.0 <= rig.han_loss < 1.0:
        raise RigError("[han] loss: must be in [0, 1)")
    rig.han_seed = _integer(han.get("seed", 0), "[han] seed")

    wan = doc.get("wan", {})
    _check_keys(wan, {"host", "port", "trace"}, "[wan]")
    rig.wan_host = wan.get("host", "127.0.0.1")
    if not isinstance(rig.wan_host, str) or not rig.wan_host:
        raise RigError("[wan] host: expected an address string")
    rig.wan_port = _integer(wan.get("port", 0), "[wan] port")
    if not 0 <= rig.wan_port < 65536:
        raise RigError("[wan] port: must be 0..65535")
    if "trace" in wan:
        rig.trace = _path(wan["trace"], base, "[wan] trace")

    ks = doc.get("keystore", {})
    _check_keys(ks, {"folders", "acb", "supplier", "network_operator"}, "[keystore]")
    folders = ks.get("folders", [])
    if not isinstance(folders, list):
        raise RigError("[keystore] folders: expected a list of paths")
    rig.key_folders = [_path(f, base, "[keystore] folders") for f in folders]
    for role in ("acb", "supplier", "network_operator"):
        if role in ks:
            setattr(rig, role, _eui(ks[role], f"[keystore] {role}"))

    tables = doc.get("device", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise RigError("device: expected [[device]] tables")
    rig.devices = parse_devices(tables, base) if tables else default_rig(data).devices
    if sum(1 for d in rig.devices if d.type == "chf") != 1:
        raise RigError("a rig needs exactly one chf device")
    return rig


def parse_devices(tables: list[dict], base: Path) -> list[DeviceSpec]:
    """[[device]] tables -> specs with unique names and EUIs, HAN devices paired with their
    meter; RigError names the table and key of the first problem."""
    types = device_types()
    count: dict[str, int] = {}
    specs: list[DeviceSpec] = []
    explicit_names = {str(t["name"]) for t in tables if "name" in t}
    explicit_euis: set[bytes] = set()
    for i, dev in enumerate(tables):
        if "eui" in dev:
            explicit_euis.add(_eui(dev["eui"], f"[[device]] #{i + 1} eui"))
    seen_euis: set[bytes] = set()
    seen_names: set[str] = set()
    for i, dev in enumerate(tables):
        where = f"[[device]] #{i + 1}"
        dtype = dev.get("type")
        if dtype not in types:
            raise RigError(f"{where} type: expected one of {types}, got {dtype!r}")
        kind = device_kind(dtype)
        _check_keys(dev, DEVICE_KEYS | ({PAIRING_KEY} if kind.pairs_with else set()), f"{where} ({dtype})")
        n = count[dtype] = count.get(dtype, 0) + 1
        if kind.max_count is not None and n > kind.max_count:
            raise RigError(f"{where}: a rig holds at most {kind.max_count} {dtype} device(s)")
        # name: given, else the type, then type-2, type-3 ... (skipping names in use)
        if "name" in dev:
            name = dev["name"]
            if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_.-]*", name):
                raise RigError(f"{where} name: expected a name of letters, digits, '-', '_' or '.', starting "
                               f"with a letter, got {name!r}")
            if name in types and name != dtype:
                raise RigError(f"{where} name: {name!r} is another device type")
            if name in seen_names:
                raise RigError(f"{where} name: {name!r} used twice")
            if _looks_like_eui(name):
                raise RigError(f"{where} name: {name!r} reads as an EUI")
        else:
            name, k = dtype, 1
            while name in seen_names or name in explicit_names:
                k += 1
                name = f"{dtype}-{k}"
        seen_names.add(name)
        # EUI: given, else the type's default for the n-th device (skipping EUIs in use)
        if "eui" in dev:
            eui = _eui(dev["eui"], f"{where} eui")
            if eui in seen_euis:
                raise RigError(f"{where} eui: {eui_hex(eui)} used twice")
        else:
            k = n
            eui = default_eui(dtype, k)
            while eui in seen_euis or eui in explicit_euis:
                k += 1
                eui = default_eui(dtype, k)
        seen_euis.add(eui)
        if "install_code" in dev:
            code = dev["install_code"]
            try:
                install = bytes.fromhex(str(code).replace(" ", "").replace("-", "")) if code else None
            except ValueError:
                raise RigError(f"{where} install_code: not hex") from None
        else:
            install = default_install_code(dtype, eui, n)
        if install is not None and len(install) not in (6, 8, 12, 16):
            raise RigError(f"{where} install_code: expected 6, 8, 12 or 16 bytes (the CRC is added by the hub)")
        if kind.han_member and install is None:
            raise RigError(f"{where} install_code: a {dtype} joins the HAN and needs one")
        options = dev.get("options", {})
        if not isinstance(options, dict):
            raise RigError(f"{where} options: expected a table")
        meter = dev.get(PAIRING_KEY)
        if meter is not None and not isinstance(meter, str):
            raise RigError(f"{where} {PAIRING_KEY}: expected a device name")
        specs.append(DeviceSpec(
            name=name, type=dtype, eui=eui, install_code=install, firmware_version=dev.get("firmware_version"),
            keys=_path(dev["keys"], base, f"{where} keys") if "keys" in dev else None,
            options=dict(options), meter=meter,
        ))
    _pair(specs)
    return specs


def _pair(specs: list[DeviceSpec]) -> None:
    """Give each HAN device its meter: the one its `meter` key names, else the only one of the
    type it pairs with."""
    by_name = {d.name: d for d in specs}
    for d in specs:
        wanted = device_kind(d.type).pairs_with
        if wanted is None:
            continue
        if d.meter is not None:
            meter = by_name.get(d.meter)
            if meter is None:
                raise RigError(f"{d.name}: {PAIRING_KEY} {d.meter!r} is no device of this rig "
                               f"(its {wanted} devices: {', '.join(m.name for m in specs if m.type == wanted) or 'none'})")
            if meter.type != wanted:
                raise RigError(f"{d.name}: {PAIRING_KEY} {d.meter!r} is a {meter.type}, not a {wanted}")
            continue
        meters = [m for m in specs if m.type == wanted]
        if not meters:
            raise RigError(f"{d.name}: a {d.type} pairs with a {wanted}, and this rig has none")
        if len(meters) > 1:
            raise RigError(f"{d.name}: the rig has {len(meters)} {wanted} devices "
                           f"({', '.join(m.name for m in meters)}); say which with {PAIRING_KEY} = \"...\"")
        d.meter = meters[0].name


def _looks_like_eui(text: str) -> bool:
    try:
        parse_eui(text)
    except ValueError:
        return False
    return True


class AddressError(LookupError):
    """`--to` / `premises.send(to=...)` names no device, or a type several devices share."""


def resolve_device(who: str, devices: dict[str, str], types: dict[str, str]) -> str:
    """The EUI (hex, as in `devices`) of the device `who` names: a device name, a device type
    when exactly one device has it, or an EUI (any EUI: a frame may go to a device the premises
    does not hold). A type several devices share is ambiguous even when the first of them is
    named after it: the message names them all with their EUIs."""
    of_type = [name for name, t in types.items() if t == who]
    if len(of_type) > 1:
        others = [n for n in of_type if n != who]
        hint = "give one of their EUIs" + (f" or names ({', '.join(others)})" if others else "")
        listed = ", ".join(f"{n} {devices[n]}" for n in of_type)
        raise AddressError(f"{who!r} is ambiguous: this premises has {len(of_type)} {who} devices ({listed}); {hint}")
    if who in devices:
        return devices[who]
    if of_type:
        return devices[of_type[0]]
    try:
        return eui_hex(parse_eui(who))
    except ValueError:
        raise AddressError(f"unknown device {who!r} (give a device name: {', '.join(devices) or 'none'}; "
                           "a type; or an EUI)") from None
