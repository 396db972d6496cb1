"""Use cases by name: build a command's content from named parameters, and read a response back
as a small JSON-able summary.

This is what `gbhub send USE_CASE key=value ...` and `wan.headend` stand on: one registry,
`USE_CASES`, of `UseCaseDef`s, each knowing its message code, the device kind it goes to, whether it
is critical, who originates it, its typed parameters (with defaults), the DLMS requests its content
may carry (`requests`, `allows`: devices derive their checks from them) and two functions:

* `build(counter, *, now=None, **params) -> bytes` — the content (DLMS ACCESS.request or ASN.1
  DER). Every layout was taken from the use case's RTDS COMMAND/PRECOMMAND vectors, and with a
  vector's own parameters and counter the build reproduces its content byte-exactly
  (tests/test_usecases.py) — except CCS03, which has no vector nor source: its layout is ours [U]
  (gbcs/usecases/chf.py, hub/chf.py).
* `interpret(response, *, decrypt=None) -> dict` — the response as a lab engineer wants it
  (`{"import_kwh": 0.01, "unit": "Wh", ...}`), falling back to the generic payload JSON for any
  shape the use case does not expect.

The use cases live by device family, each one's parameters, builder, interpreter and definition
side by side: `chf` (CHF device log), `esme`, `devicelog` (device-to-device log use cases several
device types serve), `credentials` (CS02a-g, every device), `firmware` (CS06, CS08); `common` holds the definition and shared helpers, `params` the parameter types.

Message-level matters stay with the caller (`wan.headend.HeadEnd.build_command`): the originator
(`UseCaseDef.originator`: the supplier, or the DCC's ACB for CHF use cases, which then carry the
supplier as supplementary remote party [O RTDS CCS01/02/06]), signing (`critical`), and the top-up
counter rule (`utrn`: low 32 bits of the originator counter zero, high 32 bits the UTRN counter).

Sans-IO, and no clock: time parameters left at a "now"-relative default (ECS21a/ECS22b/ECS35a/b
ranges: the last whole days up to the end of `now`'s UTC day; ECS70 validity window: from `now`)
are resolved from the `now` the caller passes (the head-end passes its clock's time); without it
they raise ValueError. Pass explicit times for content independent of `now`.

Confidence tags as in FACTS.md: [O] observed in RTDS, [I] inferred, [U] not found in any source.
"""
from __future__ import annotations

import datetime as _dt
from typing import Any, Iterable

from ..frame import Message
from ..payload import Decrypt
from . import chf, esme, devicelog, credentials, ppmid, firmware, behaviours  # noqa: F401,I001  (each defines its use cases into REGISTRY, in this order)
from .chf import (  # noqa: F401  (re-exported: ZigBee network control attribute and method ids)
    NC_ACTIVE_DEVICES,
    NC_ENABLE_DISABLE_JOINING,
    NC_JOIN_TIMEOUT,
    NC_REGISTER_DEVICE,
    NC_RESTORE_PAN,
    NC_UNREGISTER_DEVICE,
)
from .common import REGISTRY, UseCaseDef
from .esme import SupplyState
from .params import PARAM_TYPES, REQUIRED, Param

__all__ = [
    "REQUIRED", "Param", "UseCaseDef", "USE_CASES", "PARAM_TYPES", "get", "build_content", "parse_params",
    "interpret", "usecase_table_markdown", "SupplyState",
]

USE_CASES: dict[str, UseCaseDef] = REGISTRY
_BY_LOWER = {k.lower(): v for k, v in USE_CASES.items()}
_BY_LOWER.update({k.lower(): USE_CASES[v] for k, v in credentials.ALIASES.items()})


def get(name: str) -> UseCaseDef:
    """The definition of a use case, case-insensitively; KeyError listing the known names."""
    d = _BY_LOWER.get(str(name).strip().lower())
    if d is None:
        raise KeyError(f"no use case {name!r}; known: {', '.join(USE_CASES)}")
    return d


def build_content(name: "str | UseCaseDef", counter: int, *, now: _dt.datetime | None = None,
                  originator: bytes | str | None = None, recipient: bytes | str | None = None, **params: Any) -> bytes:
    """Content of use case `name` (or its definition) for `counter`. `now` (aware datetime, the
    caller's clock) resolves time defaults; `originator` / `recipient` are the message header's
    EUIs: passed on only to use cases that name them in their content."""
    d = name if isinstance(name, UseCaseDef) else get(name)
    if d.build is None:
        raise ValueError(f"{d.use_case} is an alert: there is nothing to build")
    names = d.param_names
    if originator is not None and "originator" in names:
        params["originator"] = originator
    if recipient is not None and "recipient" in names:
        params["recipient"] = recipient
    return d.build(counter, now=now, **params)
def parse_params(name: str, items: Iterable[str]) -> dict[str, Any]:
    """['key=value', ...] as typed parameter values for use case `name` (the CLI's form).
    Raises ValueError naming the parameter for a malformed item, unknown or repeated key, or bad value."""
    d = get(name)
    known = {p.name: p for p in d.params}
    out: dict[str, Any] = {}
    for item in items:
        if not isinstance(item, str) or "=" not in item:
            raise ValueError(f"{d.use_case}: {item!r} is not key=value")
        key, value = item.split("=", 1)
        key = key.strip().replace("-", "_")
        p = known.get(key)
        if p is None:
            raise ValueError(f"{d.use_case}: unknown parameter {key!r} (parameters: {', '.join(known) or 'none'})")
        if key in out:
            raise ValueError(f"{d.use_case}: parameter {key!r} given twice")
        try:
            out[key] = p.coerce(value)
        except ValueError as exc:
            raise ValueError(f"{d.use_case}: parameter {key!r}: {exc}") from None
    return out


def interpret(name: str, message: Any = None, payload: Any = None, *, decrypt: Decrypt | None = None) -> dict:
    """A JSON-able summary of a response (or alert) to use case `name`. Give the Message (or the
    raw frame, or a gbcs.analyse Analysis / head-end Reply) and/or its decoded payload; a payload
    that gbcs.analyse or the head-end already decrypted needs no keys, else pass `decrypt`
    (ciphered block → plaintext)."""
    d = get(name)
    if payload is not None:
        msg = message if isinstance(message, Message) else getattr(message, "message", None)
        return d.interpret(payload, decrypt=decrypt, message=msg if isinstance(msg, Message) else None)
    return d.interpret(message, decrypt=decrypt)


def usecase_table_markdown() -> str:
    """The use cases and their parameters as a Markdown table (for the README)."""
    lines = [
        "| Use case | Code | Target | Critical | Originator | Parameters (type = default: meaning) |",
        "|---|---|---|---|---|---|",
    ]
    for d in USE_CASES.values():
        if d.params:
            ps = "<br>".join(f"`{p.name}` ({p.type}{'' if p.enum is None else ': ' + '/'.join(p.enum.__members__)}) "
                             f"= {_md(p.default_text())}: {_md(p.help)}" for p in d.params)
        else:
            ps = "—" if d.build is not None else "(alert: interpret only)"
        origin = (f"— (alert to the {d.originator})" if d.is_alert
                  else d.originator + (" (UTRN counter)" if d.utrn else ""))
        targets = d.target + (f" ({', '.join(t for t in d.targets if t != d.target)} too)" if len(d.targets) > 1 else "")
        lines.append(f"| {d.use_case} {_md(d.name)} | {d.message_code:04X} | {targets} | {'yes' if d.critical else 'no'} "
                     f"| {origin} | {ps} |")
    lines.append("")
    lines.append("Parameter types (`gbhub send USE_CASE key=value ...`): " +
                 "; ".join(f"`{k}` {_md(v)}" for k, v in PARAM_TYPES.items()) + ".")
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|")
