"""What a user hands the `gbhub` subcommands: frames (hex, base64, @file, stdin, gbhub trace lines),
key folders, an ACB EUI, the reference vectors; `UsageError`, the one-line complaint (exit 2) about
any of them, and `Failure`, the one-line report (exit 1) of what the environment did. Below every
subcommand module, so they share it without importing the CLI that wires them."""
from __future__ import annotations

import base64
import binascii
import json
import os
import sys
from pathlib import Path

from gbcs.codec import parse_eui
from gbcs.keystore import Keystore, KeystoreError

from .keys import load_keystore

RTDS_ACB = "90B3D51F30000002"


class UsageError(Exception):
    """A bad argument or input: printed as one line, exit 2."""


class Failure(Exception):
    """Something the environment or the premises did (no connection, no answer, a rejection):
    printed as one line, exit 1."""


# --------------------------------------------------------------------------------------------
# input helpers
# --------------------------------------------------------------------------------------------

_HEX_CHARS = set("0123456789abcdefABCDEF")


def parse_frame_text(text: str) -> bytes:
    """Hex (spaces, colons, dashes allowed) or base64 → bytes."""
    try:  # the usual line: plain hex (bytes.fromhex skips spaces between bytes too)
        raw = bytes.fromhex(text)
        if raw:
            return raw
    except ValueError:
        pass
    compact = "".join(text.split())
    if not compact:
        raise UsageError("empty input")
    hexish = compact.replace(":", "").replace("-", "")
    if hexish and set(hexish) <= _HEX_CHARS:
        if len(hexish) % 2:
            raise UsageError(f"odd number of hex digits ({len(hexish)})")
        return bytes.fromhex(hexish)
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise UsageError("input is neither hex nor base64") from None


def parse_frame_line(text: str) -> bytes:
    """One line of `gbhub decode --batch` input: a frame as `parse_frame_text` reads it, or a
    line of gbhub's own WAN trace (`{"t": ..., "dir": "down"|"up", "hex": "DF09..."}`)."""
    text = text.strip()
    if not text.startswith("{"):
        return parse_frame_text(text)
    try:
        obj = json.loads(text)
    except ValueError:
        raise UsageError("a line starting with '{' must be a gbhub trace JSON object") from None
    frame = obj.get("hex") if isinstance(obj, dict) else None
    if not isinstance(frame, str):
        raise UsageError("trace line has no \"hex\" string")
    return parse_frame_text(frame)


def default_vectors() -> Path:
    """The DCC reference vectors: $GBHUB_VECTORS, else `shared/vectors` beside the project checkout
    or beside the current folder. An installed gbhub has no checkout: then a `Failure` says to set
    GBHUB_VECTORS."""
    env = os.environ.get("GBHUB_VECTORS")
    if env:
        return Path(env)
    project = Path(__file__).resolve().parent.parent
    candidates = [Path.cwd().parent / "shared" / "vectors"]
    if (project / "pyproject.toml").is_file():  # a checkout (editable install), not site-packages
        candidates.insert(0, project.parent / "shared" / "vectors")
    for cand in candidates:
        if cand.is_dir():
            return cand
    raise Failure("no reference vectors found: set GBHUB_VECTORS to the vectors folder (the one holding rtds/ and keys/)")


def read_input(arg: str | None) -> str | bytes:
    """The argument itself, `@file` (text or raw binary), or stdin for None / '-'."""
    if arg is None or arg == "-":
        if sys.stdin is None or sys.stdin.isatty():
            raise UsageError("no input: give HEX, @FILE, or pipe it on stdin")
        return sys.stdin.buffer.read()
    if arg.startswith("@"):
        path = Path(arg[1:])
        try:
            return path.read_bytes()
        except OSError as exc:
            raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    return arg


def read_frame(arg: str | None) -> bytes:
    """A GBCS frame from the argument, `@file` or stdin (see `read_input`): hex, base64 or raw."""
    return _as_frame(read_input(arg))


def _as_frame(blob: str | bytes) -> bytes:
    if isinstance(blob, bytes):
        if blob[:1] in (b"\xdd", b"\xdf"):
            return blob  # raw binary capture
        try:
            blob = blob.decode("ascii")
        except UnicodeDecodeError:
            raise UsageError("input is neither hex, base64 nor a binary GBCS frame") from None
    return parse_frame_text(blob)


def load_keys(folders: list[str] | None) -> Keystore:
    """The keystore of the DCC-style key folders given (empty without any)."""
    if not folders:
        return Keystore()
    try:
        return load_keystore(*folders)
    except KeystoreError as exc:
        raise UsageError(str(exc)) from None


def resolve_acb(arg: str | None, keystore) -> bytes:
    """--acb, else the keystore's access control broker (role 4), else the RTDS/DCC Boxed ACB."""
    if arg:
        try:
            return parse_eui(arg)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    for eui in keystore.euis():
        if keystore.role(eui) == 4:
            return eui
    return parse_eui(RTDS_ACB)
