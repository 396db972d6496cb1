"""`gbhub firmware build|inspect|push`: make and sign an OTA image, look inside one, distribute one
through a running premises (and, with `--activate`, activate it: the SMETS1-style single step).

`push` sends the image over the WAN, TCP bridge or MQTT broker (UPDATE_FIRMWARE control frames,
the role of DUIS 11.1; `wan.mqtt` for the topics) and
follows the CHF's events and the devices' alerts: one JSON line per device (`device`,
`transferred`, `verified`, `activated`, `version`, `alerts`) and a last `{"summary": ...}` line;
progress is a bar on stderr when stdout is a terminal, else JSON lines on stdout
(`{"progress": {device, bytes, size}}`).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from gbcs.codec import DecodeError, EncodeError, eui_hex

from .inputs import Failure, UsageError


def register(sub) -> None:
    f = sub.add_parser("firmware", help="build, inspect and distribute OTA firmware images")
    fs = f.add_subparsers(dest="firmware_command", metavar="ACTION")
    b = fs.add_parser("build", help="build and sign an OTA upgrade image")
    b.add_argument("--manufacturer-code", required=True, type=_int, metavar="N")
    b.add_argument("--image-type", required=True, type=_int, metavar="N")
    b.add_argument("--version", required=True, type=_int, metavar="N", help="file version: decimal or 0x-hex (0x00020000)")
    b.add_argument("--hw-min", type=_int, metavar="N", help="lowest hardware version the image takes")
    b.add_argument("--hw-max", type=_int, metavar="N", help="highest hardware version the image takes")
    b.add_argument("--header-string", default="", metavar="TEXT", help="OTA header string (up to 32 bytes)")
    b.add_argument("--sign-key", required=True, metavar="KEY",
                   help="the supplier's DS private key (PEM or DCC .key file), e.g. gbhub-data/keys/<supplier>-ds.key")
    b.add_argument("input", help="the manufacturer image (any file: the firmware)")
    b.add_argument("output", help="the OTA image to write")
    b.set_defaults(func=cmd_build)
    i = fs.add_parser("inspect", help="print an OTA image's header, manufacturer image hash and signature verdict as JSON")
    i.add_argument("file")
    i.add_argument("--keys", action="append", metavar="DIR", help="key folder(s): the signature is checked against every supplier in them")
    i.set_defaults(func=cmd_inspect)
    p = fs.add_parser("push", help="distribute an image through a running premises")
    p.add_argument("file", help="the OTA image")
    p.add_argument("--to", required=True, metavar="NAME|EUI[,...]", help="target devices (names or EUIs, comma-separated)")
    p.add_argument("--activate", nargs="?", const="now", metavar="WHEN",
                   help="then activate it (CS06): now (default), an ISO 8601 date-time (future-dated)")
    from .run import _client_args

    _client_args(p, timeout=600.0)
    p.set_defaults(func=cmd_push)
    f.set_defaults(func=lambda args: (f.print_help(), 2)[1])


def _int(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r} (decimal or 0x-hex)") from None


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror}") from None


def _private_key(path: str):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    raw = _read(path)
    try:
        if b"-----BEGIN" in raw:
            key = serialization.load_pem_private_key(raw, None)
        else:
            try:
                key = serialization.load_der_private_key(raw, None)
            except ValueError:
                text = raw.decode("ascii").strip()
                key = ec.derive_private_key(int(text, 16), ec.SECP256R1())
    except (ValueError, TypeError, UnicodeDecodeError):
        raise UsageError(f"{path}: not a P-256 private key (PEM, DER or hex)") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise UsageError(f"{path}: not an EC private key")
    return key


def cmd_build(args) -> int:
    from gbcs.ota import build_image

    key = _private_key(args.sign_key)
    try:
        image = build_image(_read(args.input), manufacturer_code=args.manufacturer_code, image_type=args.image_type,
                            version=args.version, hw_min=args.hw_min, hw_max=args.hw_max,
                            header_string=args.header_string, sign_key=key)
    except EncodeError as exc:
        raise UsageError(str(exc)) from None
    try:
        Path(args.output).write_bytes(image.encode())
    except OSError as exc:
        raise Failure(f"{args.output}: {exc.strerror}") from None
    print(json.dumps({"file": args.output, **image.describe()}))
    return 0


def load_image(path: str):
    """The OTA image in `path`; UsageError (one line) when it is not one."""
    from gbcs.ota import OtaImage

    try:
        return OtaImage.decode(_read(path))
    except DecodeError as exc:
        raise UsageError(f"{path}: not an OTA image: {exc}") from None


def cmd_inspect(args) -> int:
    from .inputs import load_keys

    image = load_image(args.file)
    out = image.describe()
    signers = []
    if args.keys:
        keys = load_keys(args.keys)
        for eui in keys.euis():
            public = keys.public_key(eui, "ds")
            if public is not None and image.verify(public):
                signers.append(eui_hex(eui))
        out["signature"] = "valid" if signers else "invalid"
        out["signed_by"] = signers
    else:
        out["signature"] = "unverified"
    print(json.dumps(out, indent=2))
    return 0


def expand_image_param(use_case: str, items: list[str]) -> list[str]:
    """`gbhub send CS06 image=FILE`: the manufacturer image hash taken from the image file."""
    if use_case.upper() != "CS06":
        return items
    out = []
    for item in items:
        if item.startswith("image="):
            out.append("hash=" + load_image(item[len("image="):]).image_hash.hex())
        else:
            out.append(item)
    return out


# ----------------------------------------------------------------------------------------------
# push
# ----------------------------------------------------------------------------------------------


def cmd_push(args) -> int:
    return asyncio.run(_push(args))


async def _push(args) -> int:
    from gbcs.catalogue import MessageCode
    from gbcs.payload import decode_payload
    from gbcs.usecases import parse_params
    from gbhub.wan.bridge import WanClosed
    from gbhub.wan.headend import RequestTimeout

    from .run import _headend, recipient_of

    image = load_image(args.file)
    data = Path(args.file).read_bytes()
    when = None
    if args.activate is not None:
        try:
            when = parse_params("CS06", [f"execution_date_time={args.activate}"])["execution_date_time"]
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    headend, manifest = await _headend(args)
    try:
        targets = [recipient_of(t.strip(), manifest) for t in args.to.split(",") if t.strip()]
        if not targets:
            raise UsageError("--to names no device")
        rows = {t: {"device": eui_hex(t), "transferred": False, "verified": False, "activated": False,
                    "version": None, "alerts": []} for t in targets}
        alerts_seen = len(headend.received_alerts)
        request = await headend.update_firmware(data, targets)
        tty = sys.stdout.isatty()
        done: set[bytes] = set()
        seen = 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (args.timeout or 600)
        while len(done) < len(targets):
            try:
                event = await headend.next_firmware_event(seen, timeout=max(0.1, deadline - loop.time()))
            except RequestTimeout:
                for t, row in rows.items():
                    if t not in done:
                        row["code"] = "TIMEOUT"
                break
            except WanClosed:
                raise Failure("the WAN connection closed before the distribution finished") from None
            seen += 1
            if event.get("request") != request:
                continue
            if event.get("code") == "REQUEST_REFUSED":
                raise Failure(f"the premises refused the image: {event.get('error', 'bad request')}")
            eui = bytes.fromhex(event["device"])
            row = rows.get(eui)
            if row is None:
                continue
            if event["event"] == "progress":
                _progress(row["device"], event["bytes"], event["size"], tty)
            elif event["event"] in ("transferred", "failed"):
                row["transferred"] = event["event"] == "transferred"
                row["verified"] = bool(event.get("verified"))
                row["code"] = event.get("code")
                done.add(eui)
        await asyncio.sleep(0.2)  # the receipt and transfer alerts follow the events
        for t, row in rows.items():
            if row["verified"] and args.activate is not None:
                reply = await headend.send_use_case("CS06", recipient=t, params={
                    "hash": image.image_hash, "execution_date_time": when}, timeout=args.timeout)
                summary = reply.summary
                row["activated"] = bool(summary.get("ok")) and not summary.get("accepted")
                row["activation"] = summary.get("code") or ("accepted" if summary.get("accepted") else None)
                row["version"] = summary.get("firmware_version")
        await asyncio.sleep(0.2)
        for alert in headend.received_alerts[alerts_seen:]:
            for t, row in rows.items():
                ccs08 = alert.message.message_code == MessageCode.CCS08
                if _names(alert, t, MessageCode, decode_payload) if ccs08 else alert.message.originator == t:
                    code = alert.code
                    row["alerts"].append(None if code is None else f"0x{code:04X}")
        for row in rows.values():
            print(json.dumps(row), flush=True)
        summary = {"devices": len(rows), "verified": sum(r["verified"] for r in rows.values()),
                   "activated": sum(r["activated"] for r in rows.values()),
                   "failed": sum(not r["verified"] for r in rows.values())}
        print(json.dumps({"summary": summary}), flush=True)
        return 0 if summary["failed"] == 0 else 1
    finally:
        await headend.close()


def _names(alert, eui: bytes, MessageCode, decode_payload) -> bool:
    """A CCS08 alert (from the CHF) about `eui`."""
    if alert.message.message_code != MessageCode.CCS08:
        return False
    try:
        return decode_payload(alert.message).entity_id == eui
    except Exception:  # noqa: BLE001
        return False


def _progress(device: str, done: int, size: int, tty: bool) -> None:
    if tty:
        width = 30
        fill = int(width * done / max(size, 1))
        sys.stderr.write(f"\r{device} [{'#' * fill}{'.' * (width - fill)}] {done * 100 // max(size, 1):3d}%")
        if done >= size:
            sys.stderr.write("\n")
        sys.stderr.flush()
    else:
        print(json.dumps({"progress": {"device": device, "bytes": done, "size": size}}), flush=True)
