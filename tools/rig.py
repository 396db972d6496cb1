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
HAN_TRANSPORTS_BUILT = ("virtual", "zigbee", "serial")
RADIO_TYPES = ("auto", "ezsp", "znp", "deconz", "virtual")  # [han] radio (gbhub.han.zigbee.RADIO_TYPES + probing)

DEVICE_KEYS = frozenset({"name", "type", "eui", "install_code", "firmware_version", "keys", "options"})
PAIRING_KEY = "meter"  # a HAN device's meter (types registered with `pairs_with`)

# The demo premises (`gbhub run` without a rig, the `premises` fixture): [[device]] tables.
DEFAULT_DEVICES: tuple[dict[str, Any], ...] = (
    {"type": "chf"}, {"type": "gpf"}, {"type": "esme"}, {"type": "ihd", "meter": "esme"}, {"type": "gsme"},
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
    han_radio: str = "virtual"  # zigbee: radio type (RADIO_TYPES)
    han_port: str | None = None  # zigbee: the radio's serial port (None: probe the serial ports)
    han_baudrate: int | None = None  # zigbee: the radio's baud rate (None: the radio library's default)
    han_channel: int | None = None  # zigbee: 11..26 (None: the radio picks by energy scan; virtual: 15)
    han_pcap: Path | None = None  # HAN capture file (pcap, `gbhub.han.capture`)
    han_cbke: bool | None = None  # zigbee: key establishment (None: on with the virtual radio's test CA)
    han_cbke_identity: Any = None  # zigbee: a lab's CBKE certificate + key for the hub (gbcs.cbke.CbkeIdentity)
    han_ble: Any = None  # [han.ble]: devices beyond a BLE link (gbhub.han.ble.BleSettings)
    han_local: list[str] | None = None  # serial: names of the devices this process runs (the rest are across the link)
    wan_host: str = "127.0.0.1"
    wan_port: int = 0
    wan_broker: str | None = None  # [wan] broker = "mqtt://HOST:PORT": the premises on an MQTT broker
    trace: Path | None = None
    web_listen: str | None = None  # [web] listen = "[HOST:]PORT": the dashboard (tools/dashboard.py); off when None
    key_folders: list[Path] = field(default_factory=list)
    acb: bytes | None = None
    supplier: bytes | None = None
    network_operator: bytes | None = None
    commission: bool = True
    source: Path | None = None

    def device(self, type_: str) -> DeviceSpec | None:
        """The first device of a type."""
        return next((d for d in self.devices if d.type == type_), None)

    def is_local(self, name: str) -> bool:
        """Whether device `name` runs in this process (not across a serial HAN link)."""
        return self.han_local is None or name in self.han_local



def default_rig(data: Path | None, extra: list[dict] | tuple[dict, ...] = (), *, ihd: bool = True,
                gsme: bool = True, ppmid: bool = True) -> Rig:
    """The demo premises (CHF, GPF, ESME, IHD, GSME (dual fuel) and PPMID on the virtual HAN, test
    PKI in DATA/keys), plus `extra` [[device]] tables as in a rig file (e.g. `[{"type": "esme"}]` for a
    second ESME); `ihd` / `gsme` / `ppmid` False leave those out (so does an `extra` ppmid table: it
    replaces the default one)."""
    extra_types = {t.get("type") for t in extra}
    left_out = {t for t, keep in (("ihd", ihd), ("gsme", gsme), ("ppmid", ppmid and "ppmid" not in extra_types))
                if not keep}
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


def parse_listen(text: str) -> tuple[str, int]:
    """`[HOST:]PORT` (`8080`, `0.0.0.0:8080`, `[::1]:8080`; `--web`, `[web] listen`) -> (host,
    port); host 127.0.0.1 when not given. ValueError otherwise."""
    t = str(text).strip()
    host, sep, port = t.rpartition(":")
    if not sep:
        host = ""
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"{text!r}: an IPv6 host goes in brackets, [::1]:8080")
    if not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"{text!r}: expected [HOST:]PORT with PORT 0..65535")
    return host or "127.0.0.1", int(port)


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
    _check_keys(doc, {"data", "clock", "han", "wan", "keystore", "device", "commission", "web"}, "rig")
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
    _check_keys(han, {"transport", "latency", "loss", "seed", "radio", "port", "baudrate", "channel", "pcap",
                      "cbke", "certificate", "private_key", "ca_public", "ble", "local"}, "[han]")
    rig.han = han.get("transport", "virtual")
    if rig.han not in HAN_TRANSPORTS:
        raise RigError(f"[han] transport: expected one of {HAN_TRANSPORTS}, got {rig.han!r}")
    if rig.han not in HAN_TRANSPORTS_BUILT:
        raise RigError(f"[han] transport {rig.han!r}: not available in this build (use {' or '.join(map(repr, HAN_TRANSPORTS_BUILT))})")
    radio_keys = {"radio", "channel", "cbke", "certificate", "private_key", "ca_public"} & set(han)
    if radio_keys and rig.han != "zigbee":
        raise RigError(f"[han] {', '.join(sorted(radio_keys))}: only with transport = \"zigbee\"")
    line_keys = {"port", "baudrate"} & set(han)
    if line_keys and rig.han not in ("zigbee", "serial"):
        raise RigError(f"[han] {', '.join(sorted(line_keys))}: only with transport = \"zigbee\" or \"serial\"")
    if "local" in han and rig.han != "serial":
        raise RigError("[han] local: only with transport = \"serial\"")
    if rig.han == "serial" and ("port" not in han or "local" not in han):
        raise RigError("[han] transport \"serial\": give port (the serial line) and local (the devices this process runs)")
    rig.han_radio = han.get("radio", "auto" if "port" in han and rig.han == "zigbee" else "virtual")
    if rig.han_radio not in RADIO_TYPES:
        raise RigError(f"[han] radio: expected one of {RADIO_TYPES}, got {rig.han_radio!r}")
    if "port" in han:
        if not isinstance(han["port"], str) or not han["port"]:
            raise RigError("[han] port: expected a serial port path such as \"/dev/ttyUSB0\"")
        rig.han_port = _expand(han["port"], base)
    if rig.han == "zigbee" and rig.han_radio not in ("virtual", "auto") and rig.han_port is None:
        raise RigError(f"[han] port: radio {rig.han_radio!r} needs the serial port it is on")
    if "baudrate" in han:
        rig.han_baudrate = _integer(han["baudrate"], "[han] baudrate")
        if rig.han_baudrate <= 0:
            raise RigError("[han] baudrate: must be positive")
    if "channel" in han:
        rig.han_channel = _integer(han["channel"], "[han] channel")
        if not 11 <= rig.han_channel <= 26:
            raise RigError("[han] channel: must be 11..26")
    if "pcap" in han:
        rig.han_pcap = _path(han["pcap"], base, "[han] pcap")
    if "cbke" in han:
        if not isinstance(han["cbke"], bool):
            raise RigError(f"[han] cbke: expected true or false, got {han['cbke']!r}")
        rig.han_cbke = han["cbke"]
    lab = [k for k in ("certificate", "private_key", "ca_public") if k in han]
    if lab:
        if len(lab) != 3:
            raise RigError("[han] certificate, private_key and ca_public: give all three (a lab's CBKE identity)")
        rig.han_cbke_identity = _cbke_identity(han)
    rig.han_latency = _number(han.get("latency", 0.0), "[han] latency")
    if rig.han_latency < 0:
        raise RigError("[han] latency: must not be negative")
    rig.han_loss = _number(han.get("loss", 0.0), "[han] loss")
    if not 0.0 <= rig.han_loss < 1.0:
        raise RigError("[han] loss: must be in [0, 1)")
    rig.han_seed = _integer(han.get("seed", 0), "[han] seed")
    if "ble" in han:
        rig.han_ble = _ble(han["ble"], rig.han)

    web = doc.get("web", {})
    _check_keys(web, {"listen"}, "[web]")
    if "listen" in web:
        listen = web["listen"]
        if isinstance(listen, int) and not isinstance(listen, bool):
            listen = str(listen)  # listen = 8080
        try:
            parse_listen(listen if isinstance(listen, str) else "")
        except ValueError as exc:
            raise RigError(f"[web] listen: {exc}") from None
        rig.web_listen = listen

    wan = doc.get("wan", {})
    _check_keys(wan, {"host", "port", "trace", "broker"}, "[wan]")
    rig.wan_host = wan.get("host", "127.0.0.1")
    if not isinstance(rig.wan_host, str) or not rig.wan_host:
        raise RigError("[wan] host: expected an address string")
    rig.wan_port = _integer(wan.get("port", 0), "[wan] port")
    if not 0 <= rig.wan_port < 65536:
        raise RigError("[wan] port: must be 0..65535")
    if "trace" in wan:
        rig.trace = _path(wan["trace"], base, "[wan] trace")
    if "broker" in wan:
        from gbhub.wan.mqtt import parse_wan

        try:
            if not isinstance(wan["broker"], str) or not parse_wan(wan["broker"]).mqtt:
                raise ValueError("expected mqtt://HOST:PORT or mqtts://HOST:PORT")
        except ValueError as exc:
            raise RigError(f"[wan] broker: {exc}") from None
        rig.wan_broker = wan["broker"]

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
    if rig.han_ble is not None:
        ble_remote(rig)
    if "local" in han:
        rig.han_local = _local_devices(han["local"], rig.devices)
    return rig


# -- [han.ble] ----------------------------------------------------------------------------------

def _ble(table: Any, transport: str) -> Any:
    if not isinstance(table, dict):
        raise RigError("[han.ble]: expected a table")
    if transport != "virtual":
        raise RigError("[han.ble]: only with transport = \"virtual\" (the premises' own air)")
    from gbhub.han.ble import BleSettings

    try:
        return BleSettings.from_table(table)
    except ValueError as exc:
        raise RigError(f"[han.ble] {exc}") from None


def ble_remote(rig: Rig) -> list[DeviceSpec]:
    """The devices `[han.ble] remote` names (by name or EUI): neither the CHF nor the GPF."""
    out = []
    for who in rig.han_ble.remote:
        spec = next((d for d in rig.devices if d.name == who or eui_hex(d.eui) == who.upper()), None)
        if spec is None:
            raise RigError(f"[han.ble] remote: no device {who!r} in the rig")
        if spec.type in ("chf", "gpf"):
            raise RigError(f"[han.ble] remote: {who!r} is the hub's own {spec.type}; it cannot be beyond the link")
        out.append(spec)
    return out


def _local_devices(value: Any, devices: list[DeviceSpec]) -> list[str]:
    """`[han] local`: device names or types (a type names every device of it) -> names. The
    Comms Hub is one device: its CHF and GPF run on the same side."""
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise RigError("[han] local: expected a list of device names or types, e.g. [\"chf\", \"gpf\"]")
    names: list[str] = []
    for item in value:
        hit = [d.name for d in devices if d.name == item] or [d.name for d in devices if d.type == item]
        if not hit:
            raise RigError(f"[han] local: no device or type {item!r} in this rig "
                           f"(devices: {', '.join(d.name for d in devices)})")
        names += [n for n in hit if n not in names]
    hub = {d.name for d in devices if d.type in ("chf", "gpf")}
    if hub & set(names) and not hub <= set(names):
        raise RigError(f"[han] local: the Comms Hub's {' and '.join(sorted(hub))} run on the same side")
    return names


def _cbke_identity(han: dict) -> Any:
    """The hub's CBKE identity (or, given lists, one per crypto suite: a tuple) from hex: the
    implicit certificate issued for the hub's EUI (74 bytes: crypto suite 2, sect283k1; 48 bytes:
    suite 1, sect163k1), its private key (36 / 21 bytes) and the CA's compressed public key
    (37 / 22 bytes)."""
    lists = [isinstance(han[k], list) for k in ("certificate", "private_key", "ca_public")]
    if not any(lists):
        return _one_cbke_identity(han)
    if not all(lists) or len({len(han[k]) for k in ("certificate", "private_key", "ca_public")}) != 1:
        raise RigError("[han] certificate, private_key and ca_public: lists of the same length (one per suite)")
    identities = tuple(_one_cbke_identity({k: han[k][i] for k in ("certificate", "private_key", "ca_public")})
                       for i in range(len(han["certificate"])))
    if len({i.suite for i in identities}) != len(identities):
        raise RigError("[han] certificate: at most one certificate per crypto suite")
    return identities


def _one_cbke_identity(han: dict) -> Any:
    from gbcs.cbke import SUITE_1, SUITE_2, CbkeIdentity, decode_certificate
    from gbcs.codec import DecodeError

    values = {}
    for key in ("certificate", "private_key", "ca_public"):
        try:
            values[key] = bytes.fromhex(str(han[key]).replace(" ", "").replace(":", ""))
        except ValueError:
            raise RigError(f"[han] {key}: not hex") from None
    suite = {74: SUITE_2, 48: SUITE_1}.get(len(values["certificate"]))
    if suite is None:
        raise RigError(f"[han] certificate: expected 74 bytes (suite 2) or 48 (suite 1), got {len(values['certificate'])}")
    for key, size in (("private_key", 36 if suite == SUITE_2 else 21), ("ca_public", 37 if suite == SUITE_2 else 22)):
        if len(values[key]) != size:
            raise RigError(f"[han] {key}: expected {size} bytes for suite {suite}, got {len(values[key])}")
    try:
        decode_certificate(suite, values["certificate"])
    except DecodeError as exc:
        raise RigError(f"[han] certificate: {exc}") from None
    return CbkeIdentity(values["certificate"], int.from_bytes(values["private_key"], "big"), values["ca_public"], suite)


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
