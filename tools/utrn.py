"""`gbhub utrn --to EUI --value AMOUNT`: vend a UTRN for a lab, as the supplier's token service
would, with the supplier's prepayment KA key ("pp-ka") from the data folder's keys and the
device's KA public key.

The amount is in pounds (`12.50`, `£12.50`): it travels in pennies when that fits the 13-bit
value (up to £81.91), else in whole pounds (up to £8191) [FACTS §6]; anything else is refused.
Each supplier / device pair has its own UTRN counter, kept in `DATA/utrn-counters.json` and
written (temporary file, fsync, rename) before the UTRN is printed, so a crash never hands out one
counter twice; a lock file keeps two `gbhub utrn` at once apart. Counters start at 1 [I]; a device
rebuilds them within ±512 of the highest it has accepted, so a data folder that lost its counter
file can repeat UTRNs the device then refuses as duplicates.
"""
from __future__ import annotations

import json
import os
from decimal import Decimal, InvalidOperation
from pathlib import Path

from gbcs.codec import eui_hex
from gbcs.utrn import MAX_UTRN_COUNTER, MAX_VALUE, ValueClass, generate_utrn

from .datafolder import UTRN_COUNTERS as COUNTER_FILE
from .inputs import Failure, UsageError


def parse_amount(text: str) -> tuple[ValueClass, int]:
    """Pounds as a person types them -> (value class, 13-bit value); UsageError otherwise."""
    t = str(text).strip().lstrip("£").strip()
    try:
        pounds = Decimal(t)
    except InvalidOperation:
        raise UsageError(f"--value must be an amount in pounds such as 12.50, got {text!r}") from None
    if not pounds.is_finite() or pounds <= 0:
        raise UsageError(f"--value must be a positive amount in pounds, got {text!r}")
    pence = pounds * 100
    if pence != pence.to_integral_value():
        raise UsageError(f"--value {text!r} has fractions of a penny")
    if pence <= MAX_VALUE:
        return ValueClass.PENNIES, int(pence)
    if pounds == pounds.to_integral_value() and pounds <= MAX_VALUE:
        return ValueClass.POUNDS, int(pounds)
    raise UsageError(f"--value {text!r}: a UTRN carries up to £{MAX_VALUE / 100:.2f} in pennies or whole pounds "
                     f"up to £{MAX_VALUE}")


def next_utrn_counter(data: Path, supplier: bytes, device: bytes) -> int:
    """Advance and persist the pair's UTRN counter; the new value. Under an exclusive lock, so two
    `gbhub utrn` at once never take the same counter."""
    import fcntl

    path = data / COUNTER_FILE
    try:
        lock = open(path.with_name(path.name + ".lock"), "a")
    except OSError as exc:
        raise Failure(f"cannot lock the UTRN counters in {data}: {exc.strerror}") from None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _advance(path, supplier, device)


def _advance(path: Path, supplier: bytes, device: bytes) -> int:
    try:
        counters = json.loads(path.read_text()) if path.exists() else {}
        if not isinstance(counters, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as exc:
        raise Failure(f"cannot read the UTRN counters in {path}: {exc}") from None
    key = f"{eui_hex(supplier)}:{eui_hex(device)}"
    counter = int(counters.get(key, 0)) + 1
    if counter > MAX_UTRN_COUNTER:
        raise Failure(f"the UTRN counter of {key} is used up")
    counters[key] = counter
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        f.write(json.dumps(counters, indent=1) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return counter


def vend(data: Path, to: str, value: str) -> dict:
    """The UTRN for device `to` (EUI or, with a running premises' manifest, a name)."""
    from .inputs import load_keys
    from .run import recipient_of

    manifest_path = data / "premises.json"
    try:
        manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    except (OSError, ValueError):
        manifest = {}
    value_class, amount = parse_amount(value)
    device = recipient_of(to, manifest)
    folders = manifest.get("keys") or [str(data / "keys")]
    if not any(Path(f).is_dir() for f in folders):
        raise Failure(f"no keys in {data / 'keys'} (start the premises once with `gbhub run --data {data}`)")
    keys = load_keys(folders)
    roles = {keys.role(e): e for e in keys.euis() if keys.role(e) is not None}
    supplier = bytes.fromhex(manifest["supplier"]) if manifest.get("supplier") else roles.get(2)
    if supplier is None or keys.private_key(supplier, "pp-ka") is None:
        raise Failure("the keys hold no supplier prepayment key (pp-ka) to make UTRNs with")
    device_key = keys.public_key(device, "ka")
    if device_key is None:
        raise Failure(f"no KA certificate of {eui_hex(device)} in the keys")
    counter = next_utrn_counter(data, supplier, device)
    utrn = generate_utrn(value=amount, value_class=value_class, utrn_counter=counter, supplier=supplier, device=device,
                         private_key=keys.private_key(supplier, "pp-ka"), public_key=device_key)
    return {"utrn": utrn.encode(), "grouped": utrn.grouped(), "to": eui_hex(device), "utrn_counter": counter,
            "value_class": utrn.value_class.name, "value": amount, "amount_pennies": utrn.amount_pennies}


def register(sub) -> None:
    u = sub.add_parser("utrn", help="print a valid UTRN for a device (a lab's token service)")
    u.add_argument("--data", metavar="DIR", default="gbhub-data", help="data folder with the keys (default ./gbhub-data)")
    u.add_argument("--to", metavar="EUI", required=True, help="the meter's EUI (or its name in a running premises)")
    u.add_argument("--value", metavar="AMOUNT", required=True, help="pounds, e.g. 10 or 12.50")
    u.add_argument("--json", action="store_true", help="print a JSON object instead of the 20 digits")
    u.set_defaults(func=cmd_utrn)


def cmd_utrn(args) -> int:
    out = vend(Path(args.data), args.to, args.value)
    print(json.dumps(out) if args.json else out["utrn"])
    return 0


__all__ = ["parse_amount", "next_utrn_counter", "vend", "COUNTER_FILE"]
