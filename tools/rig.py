"""Rig files (TOML): which devices a premises has, how they are linked, where state lives.

Every key is documented in the README ("Rig file"). Unknown keys are errors (a typo must not be
silently ignored on a lab rig). Paths are relative to the rig file; `$VARS` and `${VARS}` expand
from the environment, with GBHUB_VECTORS defaulting to ../shared/vectors beside the project.
"""
from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gbcs.codec import parse_eui

DEVICE_TYPES = ("chf", "gpf", "esme", "ihd")
CLOCK_MODES = ("real", "sim")
HAN_TRANSPORTS = ("virtual", "zigbee", "serial", "ble")

DEFAULT_EUIS = {
    "chf": "02474248400000A2",
    "gpf": "02474248400000A3",
    "esme": "02474248400000A0",
    "ihd": "02474248400000A6",
}
DEFAULT_INSTALL_CODES = {
    "esme": "83FED3407A939723A5C639B26916D505",
    "ihd": "3D6F7A24CF1B8E42A1F0C6B3E27D9A15",
}


class RigError(ValueError):
    """A rig file that cannot be used; the message names the key."""


@dataclass
class DeviceSpec:
    name: str
    type: str
    eui: bytes
    install_code: bytes | None = None
    firmware_version: str | None = None
    keys: Path | None = None  # keystore folder holding this device's private keys
    options: dict[str, Any] = field(default_factory=dict)


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
        return next((d for d in self.devices if d.type == type_), None)


def default_rig(data: Path | None) -> Rig:
    """The demo premises: CHF, GPF, ESME and IHD on the virtual HAN, test PKI in DATA/keys."""
    devices = [
        DeviceSpec(t, t, bytes.fromhex(DEFAULT_EUIS[t]), bytes.fromhex(DEFAULT_INSTALL_CODES[t]) if t in DEFAULT_INSTALL_CODES else None)
        for t in DEVICE_TYPES
    ]
    return Rig(data=data, devices=devices)


_VAR = re.compile(r"\$(\w+)|\$\{(\w+)\}")


def _expand(text: str, base: Path) -> str:
    def repl(m: re.Match) -> str:
        name = m.group(1) or m.group(2)
        if name == "GBHUB_VECTORS" and name not in os.environ:
            return str(Path(__file__).resolve().parent.parent.parent / "shared" / "vectors")
        if name not in os.environ:
            raise RigError(f"environment variable ${name} is not set")
        return os.environ[name]

    return _VAR.sub(repl, text)


def _path(value: Any, base: Path, key: str) -> Path:
    if not isinstance(value, str) or not value:
        raise RigError(f"{key}: expected a path string")
    p = Path(_expand(value, base)).expanduser()
    return p if p.is_absolute() else (base / p)


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
    rig.commission = bool(doc.get("commission", True))

    clock = doc.get("clock", {})
    _check_keys(clock, {"mode", "speed", "start"}, "[clock]")
    rig.clock = clock.get("mode", "real")
    if rig.clock not in CLOCK_MODES:
        raise RigError(f"[clock] mode: expected one of {CLOCK_MODES}, got {rig.clock!r}")
    rig.speed = float(clock.get("speed", 1.0))
    if rig.speed <= 0:
        raise RigError("[clock] speed: must be positive")
    if "start" in clock:
        import datetime as dt

        start = clock["start"]
        if isinstance(start, str):
            try:
                start = dt.datetime.fromisoformat(start.replace("Z", "+00:00"))
            except ValueError:
                raise RigError(f"[clock] start: not an ISO date-time: {start!r}") from None
        if isinstance(start, dt.datetime):
            if start.tzinfo is None:
                start = start.replace(tzinfo=dt.timezone.utc)
            rig.start = start.timestamp()
        else:
            raise RigError("[clock] start: expected an ISO date-time")

    han = doc.get("han", {})
    _check_keys(han, {"transport", "latency", "loss", "seed"}, "[han]")
    rig.han = han.get("transport", "virtual")
    if rig.han not in HAN_TRANSPORTS:
        raise RigError(f"[han] transport: expected one of {HAN_TRANSPORTS}, got {rig.han!r}")
    if rig.han != "virtual":
        raise RigError(f"[han] transport {rig.han!r}: only 'virtual' is available in this build")
    rig.han_latency = float(han.get("latency", 0.0))
    rig.han_loss = float(han.get("loss", 0.0))
    if not 0.0 <= rig.han_loss < 1.0:
        raise RigError("[han] loss: must be in [0, 1)")
    rig.han_seed = int(han.get("seed", 0))

    wan = doc.get("wan", {})
    _check_keys(wan, {"host", "port", "trace"}, "[wan]")
    rig.wan_host = str(wan.get("host", "127.0.0.1"))
    rig.wan_port = int(wan.get("port", 0))
    if not 0 <= rig.wan_port < 65536:
        raise RigError("[wan] port: must be 0..65535")
    if "trace" in wan:
        rig.trace = _path(wan["trace"], base, "[wan] trace")

    ks = doc.get("keystore", {})
    _check_keys(ks, {"folders", "acb", "supplier", "network_operator"}, "[keystore]")
    rig.key_folders = [_path(f, base, "[keystore] folders") for f in ks.get("folders", [])]
    for role in ("acb", "supplier", "network_operator"):
        if role in ks:
            setattr(rig, role, _eui(ks[role], f"[keystore] {role}"))

    seen: set[bytes] = set()
    for i, dev in enumerate(doc.get("device", [])):
        where = f"[[device]] #{i + 1}"
        _check_keys(dev, {"name", "type", "eui", "install_code", "firmware_version", "keys", "options"}, where)
        dtype = dev.get("type")
        if dtype not in DEVICE_TYPES:
            raise RigError(f"{where} type: expected one of {DEVICE_TYPES}, got {dtype!r}")
        eui = _eui(dev.get("eui", DEFAULT_EUIS[dtype]), f"{where} eui")
        if eui in seen:
            raise RigError(f"{where} eui: {eui.hex().upper()} used twice")
        seen.add(eui)
        code = dev.get("install_code", DEFAULT_INSTALL_CODES.get(dtype))
        try:
            install = bytes.fromhex(code.replace(" ", "").replace("-", "")) if code else None
        except ValueError:
            raise RigError(f"{where} install_code: not hex") from None
        if install is not None and len(install) not in (6, 8, 12, 16):
            raise RigError(f"{where} install_code: expected 6, 8, 12 or 16 bytes (the CRC is added by the hub)")
        rig.devices.append(
            DeviceSpec(
                name=str(dev.get("name", dtype)),
                type=dtype,
                eui=eui,
                install_code=install,
                firmware_version=dev.get("firmware_version"),
                keys=_path(dev["keys"], base, f"{where} keys") if "keys" in dev else None,
                options=dict(dev.get("options", {})),
            )
        )
    if not rig.devices:
        rig.devices = default_rig(data).devices
    if sum(1 for d in rig.devices if d.type == "chf") != 1:
        raise RigError("a rig needs exactly one chf device")
    return rig
