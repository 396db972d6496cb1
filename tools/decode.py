"""`gbhub decode`: one frame as JSON or an annotated tree, or `--batch`: one JSON line per input
line, decoded by worker processes on every core, output in input order.

This is the one subcommand whose whole-process time is benchmarked (`gbhub bench decode`), so
`gbhub decode` registers only itself (tools/cli.py) and imports nothing it does not use.
"""
from __future__ import annotations

import json
import os
import struct
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
                   help="--batch: decode in N processes (default: every core), output still in input order")
    d.add_argument("--compact", action="store_true", help="single-line JSON")
    d.set_defaults(func=cmd_decode, exit_without_teardown=True)  # (tools/cli.py main)


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
    import gc

    # Start-up makes ~10^5 objects (modules, classes, keys) that live as long as the process: no
    # collections while making them (~5% of start-up), and none of them scanned afterwards.
    gc.disable()
    try:
        from gbcs.analyse import analyse
        from gbcs.security import SecretCache

        if args.batch:
            import gbcs.asn1  # noqa: F401 - every decoder loaded once, before any worker is forked
            import gbcs.gbz  # noqa: F401
            import gbcs.zcl  # noqa: F401
            import orjson
            from gbcs.dlms import json_fragments

            # each result is written by orjson at once: recurring DLMS subtrees as fragments
            json_fragments(orjson.Fragment, orjson.dumps)
        keystore = load_keys(args.keys)
        acb = resolve_acb(args.acb, keystore)
        secrets = SecretCache()
    finally:
        gc.freeze()
        gc.enable()
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
    process may use) N processes decode chunks of lines: this one and N-1 forked from it after
    the input, the keys and the decoders are loaded (nothing else is shared or cached across
    messages: every MAC and signature is checked; each process keeps its own static ECDH
    secrets)."""
    if args.input in (None, "-"):
        lines = list(sys.stdin)
    else:
        blob = read_input(args.input)
        lines = (blob.decode("ascii", "replace") if isinstance(blob, bytes) else blob).splitlines()
    jobs = args.jobs if args.jobs is not None else len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if jobs < 1:
        raise UsageError("--jobs must be 1 or more")
    jobs = min(jobs, -(-len(lines) // _CHUNK)) or 1
    if jobs == 1:
        out, bad = _decode_lines(1, lines, keystore, acb, secrets)
        sys.stdout.flush()
        sys.stdout.buffer.write(out)
        sys.stdout.flush()
        return 2 if bad else 0
    bad = _forked(lines, jobs, keystore, acb, secrets)
    return 2 if bad else 0


_CHUNK = 48  # lines per task: the last one leaves a core idle ~3 ms at most (~60 us a line); ~10 us of hand-over each
_HEAD = struct.Struct("<IIQ")  # a worker's result: chunk index, bad lines, length of the JSON bytes


def _forked(lines: list[str], jobs: int, keystore, acb, secrets) -> int:
    """Decode `lines` in this process and `jobs - 1` forked ones; write the JSON lines in order.

    Chunks are handed out through a pipe of 4-byte chunk numbers, filled before the fork (each
    process reads one number at a time, so whoever is free takes the next chunk). A worker
    writes each result to its own pipe; this process decodes chunks too and, between them and at
    the end, collects what the workers sent and writes out whatever is next in order.
    """
    import fcntl
    import gc
    import selectors

    n_chunks = -(-len(lines) // _CHUNK)
    tasks_r, tasks_w = os.pipe()
    size = 4 * n_chunks
    if size > 65536:
        try:
            fcntl.fcntl(tasks_w, fcntl.F_SETPIPE_SZ, size)
        except (OSError, AttributeError):
            raise UsageError(f"--batch with workers takes at most {65536 // 4 * _CHUNK:,} lines here; use --jobs 1 or split the input") from None
    os.write(tasks_w, b"".join(i.to_bytes(4, "little") for i in range(n_chunks)))
    os.close(tasks_w)
    sys.stdout.flush()
    gc.freeze()  # the loaded modules and keys are never garbage: workers do not scan or copy them
    workers: dict[int, int] = {}  # result pipe -> pid
    try:
        for _ in range(jobs - 1):
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:  # a worker: never returns
                os.close(r)
                for fd in workers:
                    os.close(fd)
                _work(lines, tasks_r, w, keystore, acb, secrets)
            os.close(w)
            os.set_blocking(r, False)
            try:  # room for a few chunks' results, so a worker does not wait for this one to read
                fcntl.fcntl(r, fcntl.F_SETPIPE_SZ, 1 << 20)
            except (OSError, AttributeError):
                pass
            workers[r] = pid
        return _collect(lines, tasks_r, workers, keystore, acb, secrets, selectors)
    finally:
        os.close(tasks_r)
        for fd, pid in workers.items():
            try:
                os.kill(pid, 15)
            except ProcessLookupError:
                pass
            os.waitpid(pid, 0)
            os.close(fd)
        gc.unfreeze()


def _next_chunk(tasks_r: int) -> int | None:
    raw = os.read(tasks_r, 4)
    return int.from_bytes(raw, "little") if len(raw) == 4 else None


def _decode_chunk(i: int, lines, keystore, acb, secrets) -> tuple[bytes, int]:
    """Chunk `i` as JSON lines (UTF-8) and its count of bad lines."""
    first = i * _CHUNK
    return _decode_lines(first + 1, lines[first : first + _CHUNK], keystore, acb, secrets)


def _work(lines, tasks_r: int, out_fd: int, keystore, acb, secrets) -> None:
    """A forked worker: decode chunks until none is left, send each back, exit."""
    code = 0
    try:
        while (i := _next_chunk(tasks_r)) is not None:
            body, bad = _decode_chunk(i, lines, keystore, acb, secrets)
            view = memoryview(_HEAD.pack(i, bad, len(body)) + body)
            while view:
                view = view[os.write(out_fd, view):]
    except BaseException:  # noqa: BLE001 - the parent sees the missing chunk and says so
        code = 1
    finally:
        os._exit(code)


def _collect(lines, tasks_r: int, workers: dict[int, int], keystore, acb, secrets, selectors) -> int:
    """This process's share: decode chunks itself while there are any, take in the workers'
    results as they come, write everything in chunk order. Returns the number of bad lines."""
    done: dict[int, bytes] = {}
    bad = 0
    next_out = 0
    buffers = {fd: bytearray() for fd in workers}
    open_fds = set(workers)
    write = sys.stdout.buffer.write
    n_chunks = -(-len(lines) // _CHUNK)
    sel = selectors.DefaultSelector()
    for fd in workers:
        sel.register(fd, selectors.EVENT_READ)

    def drain(timeout):
        nonlocal bad
        for key, _ in sel.select(timeout):
            fd = key.fd
            while True:
                try:
                    data = os.read(fd, 1 << 20)
                except BlockingIOError:
                    break
                if not data:
                    sel.unregister(fd)
                    open_fds.discard(fd)
                    break
                buffers[fd] += data
            buf = buffers[fd]
            while len(buf) >= _HEAD.size:
                i, n_bad, length = _HEAD.unpack_from(buf)
                if len(buf) < _HEAD.size + length:
                    break
                done[i] = bytes(buf[_HEAD.size : _HEAD.size + length])
                bad += n_bad
                del buf[: _HEAD.size + length]

    def flush():
        nonlocal next_out
        while next_out in done:
            write(done.pop(next_out))
            next_out += 1

    while (i := _next_chunk(tasks_r)) is not None:
        body, n_bad = _decode_chunk(i, lines, keystore, acb, secrets)
        done[i] = body
        bad += n_bad
        drain(0)
        flush()
    while next_out < n_chunks:
        if not open_fds and next_out not in done:
            from .inputs import Failure

            raise Failure(f"a decoding worker stopped before it sent lines {next_out * _CHUNK + 1}..; nothing after them was written")
        drain(None if open_fds else 0)
        flush()
    sys.stdout.flush()
    return bad


def _decode_lines(first: int, lines, keystore, acb, secrets) -> tuple[bytes, int]:
    """JSON lines (UTF-8 bytes) for `lines`, numbered from `first`, and the count of bad ones."""
    from gbcs.analyse import analyse

    bad = 0
    out: list[bytes] = []
    append = out.append
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
            append(encode({"line": n, "error": str(exc)}))
        else:
            append(encode({"line": n, **obj}, lambda: {"line": n, **result.to_json()}))
    return b"".join(out), bad


def _line_encoder():
    """obj -> one compact JSON line as UTF-8 bytes, newline included. orjson writes it (a tenth of
    the C `json` encoder's time on decoded messages); what it refuses (an integer beyond 64 bits,
    from an outside frame's ASN.1 or DLMS) goes through `json`, compact the same way. Decoded
    values hold no NaN or infinity (DLMS writes those as text), which orjson would write as null.
    `remake` makes `obj` again: `json` cannot write orjson's fragments (gbcs.dlms.json_fragments),
    so for `json` the object is made again without them."""
    import orjson

    from gbcs.dlms import json_fragments

    dumps, fallback, flags = orjson.dumps, orjson.JSONEncodeError, orjson.OPT_APPEND_NEWLINE

    def encode(obj, remake=None) -> bytes:
        try:
            return dumps(obj, option=flags)
        except fallback:
            if remake is not None:
                before = json_fragments(None)
                try:
                    obj = remake()
                finally:
                    json_fragments(*before)
            return (json.dumps(obj, separators=(",", ":")) + "\n").encode()

    return encode
