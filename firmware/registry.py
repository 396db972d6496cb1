"""Device types register themselves here; the composition root (`gbhub.tools`) builds a premises
from a rig by looking them up, so a new device type touches its own package and nothing in
`tools/`.

A registration is a `DeviceKind`: how to build one device of the type from a `DeviceContext`
(`create`), how to wire it to the links and the other devices before it starts (`attach`, one
shape for every type: it gets the device and its context and returns what it serves, e.g. a ZCL
server, or None), and the few facts commissioning needs (does it join the HAN through the CHF
device log, does it pair with a meter). The package `__init__` of each device layer registers its
types: `hub/__init__.py` (chf, gpf), `meter/__init__.py` (esme, ihd).

This module sits in `firmware/` because both `hub/` and `meter/` register through it and neither
may import the other; it knows nothing of any device type.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Mapping

from gbcs.catalogue import DeviceType
from gbcs.keystore import Keystore

from .clock import Clock
from .gbcs_device import Credentials, TrustAnchors
from .nvm import Nvm


@dataclass(frozen=True)
class DeviceContext:
    """What a device type's factory and attachment get from the composition root: the rig's
    spec of this device (`spec.name`, `.type`, `.eui`, `.install_code`, `.firmware_version`,
    `.options`, `.meter`), the shared platform (clock, NVM, keys, trust anchors), the links
    (`han`: the HAN transport, `wan`: the CHF's WAN port) and the other devices, by name."""

    spec: Any
    clock: Clock
    nvm: Nvm
    keystore: Keystore
    trust: TrustAnchors
    supplier: bytes
    han: Any = None
    wan: Any = None
    chf: Any = None  # the premises' CHF (None while the CHF itself is being built)
    lookup: Callable[[str], Any] | None = None
    specs: Mapping[str, Any] | None = None  # the rig's device specs by name (what exists, unbuilt)

    def type_of(self, name: str) -> str | None:
        """The device type of the rig's device `name` (None: no such device), without building it."""
        spec = None if self.specs is None else self.specs.get(name)
        return None if spec is None else spec.type

    def device(self, name: str) -> Any:
        """Another device of the premises, by its rig name (built first if need be)."""
        if self.lookup is None:
            raise LookupError(f"{self.spec.name}: no other devices in this composition")
        return self.lookup(name)

    @property
    def meter(self) -> Any:
        """The meter this HAN device pairs with (the rig's `meter` key)."""
        if getattr(self.spec, "meter", None) is None:
            raise LookupError(f"{self.spec.name} pairs with no meter")
        return self.device(self.spec.meter)

    def credentials(self) -> Credentials:
        """The device's own KA / DS private keys."""
        return Credentials.from_keystore(self.keystore, self.spec.eui)

    def firmware(self) -> dict[str, Any]:
        """The `firmware_version=` keyword when the rig gives one."""
        version = getattr(self.spec, "firmware_version", None)
        return {"firmware_version": version} if version else {}


@dataclass(frozen=True)
class DeviceKind:
    """One registered device type (named `DeviceKind`: `gbcs.catalogue.DeviceType` is the
    spec's enum, carried here as `device_type`)."""

    type: str  # rig / CLI name: 'chf', 'esme', ...
    create: Callable[[DeviceContext], Any]
    attach: Callable[[Any, DeviceContext], Any] | None = None
    device_type: DeviceType | None = None  # in device logs, joins and CS03B
    default_eui: str = ""  # the first device of the type in a rig without `eui`
    default_install_code: str | None = None
    keys: bool = False  # a GBCS device: has KA / DS keys and certificates
    max_count: int | None = None  # e.g. one CHF, one GPF per Comms Hub
    han_member: bool = False  # joins the HAN: commissioning adds it to the CHF device log (CCS01)
    join: Callable[[Any, DeviceContext], Awaitable[Any]] | None = None  # commissioning joins it (else it joins itself)
    pairs_with: str | None = None  # type of the meter it pairs with (rig key `meter`; CS03B on that meter)
    starts_after_commissioning: bool = False
    # commissioning pairs it with its meters itself, `pair(device, ctx, send)` (e.g. the PPMID's
    # CS03A1/CS03A2/CS03C), once `paired(device, ctx)` says it is not; else CS03B. `send(use case,
    # recipient device, params)` (async) delivers one join command and raises when it fails: the
    # head-end, or derived commissioning (`tools/premises.py`), which applies its effect directly
    pair: Callable[[Any, DeviceContext, Any], Awaitable[Any]] | None = None
    paired: Callable[[Any, DeviceContext], bool] | None = None
    status: Callable[[Any], dict] | None = None  # its part of `gbhub run`'s status line
    # a device that keeps what its join agreed (the IHD: its TC link key), given it by derived
    # commissioning (`tools/premises.py`), which runs no join handshake
    keeps_join: Callable[[Any, bytes], None] | None = None
    ota: bool = False  # takes firmware images from the CHF over the HAN: the composition root gives it
    # a `han.ota.OtaClient` on its `han_port` / `han_dispatch` once attached (README "Firmware")


_KINDS: dict[str, DeviceKind] = {}


def register_device_type(kind: DeviceKind) -> DeviceKind:
    """Register `kind` under `kind.type`; registering the same type twice is an error (two
    packages must not both claim a type), unless it is the very same registration."""
    known = _KINDS.get(kind.type)
    if known is not None and known != kind:
        raise ValueError(f"device type {kind.type!r} is already registered")
    _KINDS[kind.type] = kind
    return kind


def device_kind(type_: str) -> DeviceKind:
    """The registration of `type_`; KeyError naming the known types otherwise."""
    try:
        return _KINDS[type_]
    except KeyError:
        raise KeyError(f"unknown device type {type_!r} (known: {', '.join(_KINDS) or 'none'})") from None


def device_kinds() -> tuple[DeviceKind, ...]:
    """Every registered type, in registration order."""
    return tuple(_KINDS.values())
