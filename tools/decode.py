"""`gbhub decode`: one frame as JSON or an annotated tree, or `--batch`: one JSON line per input
line, decoded by worker processes on every core, output in input order.

This is the one subcommand whose whole-process time is benchmarked (`gbhub bench decode`), so
`gbhub decode` registers only itself (tools/cli.py) and imports nothing it does not use.
"""
from __future__ import annotations

import json
import os
import sys

from gbcs.codec import DecodeError, Node

from .inputs import UsageError, load_keys, parse_frame_line, read_frame, read_input, resolve_acb


def register(sub) -> None:
    d = sub.add_parser("decode", help="decode and verify a GBCS frame")
    d.add_argument("input", nargs="?", help="hex or base64 frame, @FILE, or - / nothing for stdin")
    d.add_argument("--keys", action="append", metavar="DIR", help="DCC-style key folder (repeatable)")
    d.add_argument("--acb", metavar="EUI", help="access control broker EUI (default: keystore's ACB, else 90B3D51F30000002)")
    d.add_argument("--tree", action="store_true", help="annotated tree: field, bytes, meaning")
    d.add_argument("--batch", action="store_true",
                   help="one message per input line (a frame, or a gbhub trace JSON line), one JSON object per output line")
    d.add_argument("--jobs", type=int, metavar="N",
                   help="--batch: decode with N worker processes (default: every core), output still in input order")
    d.add_argument("--compact", action="store_true", help="single-line JSON")
    d.set_defaults(func=cmd_decode)




def render_tree(node: Node, indent: str = "", out: list[str] | None = None) -> list[str]:
    out = [] if out is None else out
    raw = node.raw.hex().upper()
    if len(raw) > 64:
        raw = raw[:60] + f"…({len(node.raw)} bytes)"
    line = f"{indent}{node.name}"
    if raw:
        line += f"  [{raw}]"
    if node.meaning:
        line += f"  {node.meaning}"
    out.append(line)
    for child in node.children:
        render_tree(child, indent + "  ", out)
    return out


def cmd_decode(args) -> int:
    from gbcs.analyse import analyse
    from gbcs.security import SecretCache

    keystore = load_keys(args.keys)
    acb = resolve_acb(args.acb, keystore)
    secrets = SecretCache()
    if args.batch:
        return _decode_batch(args, keystore, acb, secrets)
    frame = read_frame(args.input)
    try:
        result = analyse(frame, keystore, acb, secrets)
    except DecodeError as exc:
        print(f"gbhub decode: parse error at {exc}", file=sys.stderr)
        return 2
    if args.tree:
        print("\n".join(render_tree(result.tree())))
    else:
        print(json.dumps(result.to_json(), indent=None if args.compact else 2))
    if result.payload_error is not None:
        print(f"gbhub decode: payload parse error at {result.payload_error}", file=sys.stderr)
        return 2
    return 0


def _decode_batch(args, keystore, acb, secrets) -> int:
    """One JSON line per input line, in input order. With `--jobs N` (default: every core this
    process may use) chunks of lines are decoded by N worker processes (forked: they share the
    loaded keystore; each keeps its own static ECDH secret cache, nothing else is cached across
    messages: every MAC and signature is checked)."""
    stream = sys.stdin if args.input in (None, "-") else None
    if stream is None:
        blob = read_input(args.input)
        lines = (blob.decode("ascii", "replace") if isinstance(blob, bytes) else blob).splitlines()
    else:
        lines = stream
    jobs = args.jobs if args.jobs is not None else len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if jobs < 1:
        raise UsageError("--jobs must be 1 or more")
    write = sys.stdout.write
    bad = 0
    if jobs == 1:
        out, bad = _decode_lines(1, lines, keystore, acb, secrets)
        write(out)
    else:
        import multiprocessing as mp

        import gbcs.analyse  # noqa: F401 - imported once here, not again in every forked worker
        import gbcs.asn1  # noqa: F401
        import gbcs.gbz  # noqa: F401
        import gbcs.zcl  # noqa: F401

        global _BATCH_STATE
        if isinstance(lines, list):  # the workers inherit the lines: only (first, stop) goes to them
            _BATCH_STATE = (keystore, acb, lines)
            items = ((i, None) for i in range(0, len(lines), _CHUNK))
        else:
            _BATCH_STATE = (keystore, acb, None)
            items = _chunks(lines, _CHUNK)
        sys.stdout.flush()
        write_bytes = sys.stdout.buffer.write
        with mp.get_context("fork").Pool(jobs) as pool:
            for out, n_bad in pool.imap(_decode_chunk, items):
                write_bytes(out)
                bad += n_bad
    sys.stdout.flush()
    return 2 if bad else 0


_CHUNK = 128  # lines per task: short enough that the last one does not leave a core idle for long
_BATCH_STATE = None  # (keystore, acb, lines or None) of the parent, inherited by the forked workers
_WORKER_SECRETS = None


def _chunks(lines, size: int):
    chunk: list[str] = []
    first = 1
    for n, line in enumerate(lines, 1):
        if not chunk:
            first = n
        chunk.append(line)
        if len(chunk) >= size:
            yield first, chunk
            chunk = []
    if chunk:
        yield first, chunk


def _decode_chunk(item) -> tuple[bytes, int]:
    """In a worker: (first line index, None) of the inherited lines, or (first line number, lines).
    The JSON lines go back as ASCII bytes (json escapes everything else): no text codec on
    either side of the pipe."""
    from gbcs.security import SecretCache

    global _WORKER_SECRETS
    if _WORKER_SECRETS is None:
        _WORKER_SECRETS = SecretCache()
    keystore, acb, inherited = _BATCH_STATE
    first, lines = item
    if lines is None:
        lines = inherited[first : first + _CHUNK]
        first += 1
    out, bad = _decode_lines(first, lines, keystore, acb, _WORKER_SECRETS)
    return out.encode("ascii"), bad


def _decode_lines(first: int, lines, keystore, acb, secrets) -> tuple[str, int]:
    from gbcs.analyse import analyse

    bad = 0
    out: list[str] = []
    extend, append = out.extend, out.append
    encode = _line_encoder()
    for n, line in enumerate(lines, first):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        try:
            result = analyse(parse_frame_line(text), keystore, acb, secrets)
            obj = result.to_json()
            if result.payload_error is not None:
                bad += 1
        except (DecodeError, UsageError) as exc:
            bad += 1
            obj = {"line": n, "error": str(exc)}
        else:
            obj = {"line": n, **obj}
        extend(encode(obj))
        append("\n")
    return "".join(out), bad


def _line_encoder():
    """obj -> the pieces of `json.dumps(obj)`: the C encoder made once per chunk instead of once
    per line, without the cycle check (decoded values are trees)."""
    from json import encoder

    make = encoder.c_make_encoder
    if make is None:  # no C accelerator: json.dumps itself
        return lambda obj: (json.dumps(obj),)
    enc = make(None, encoder.JSONEncoder().default, encoder.encode_basestring_ascii, None, ": ", ", ", False, False, True)
    return lambda obj: enc(obj, 0)
