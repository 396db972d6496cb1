"""`gbhub bench decode`: `gbhub decode --batch` over the DCC reference set, whole process, beside
the DCC's own parser doing the same checks when it can be run here.

Method: every RTDS message (the `*.HEX` files under `VECTORS/rtds`, 679 in RTDS 4.5) ten times
over (short form: twice), one per line, in one file. Ours: `gbhub decode --batch @FILE --keys
VECTORS/keys/rtds --keys VECTORS/keys/device-test --compact` in a fresh process (interpreter
start, imports, keys, then that process and one forked from it per further core decoding chunks
of lines, every MAC, signature and encrypted part checked, one JSON line per message), output to
/dev/null. Theirs: SmartDCCInnovation/gbcs-parser's
`parseGbcsMessage` (MAC, signature and decryption checks with the same keys, each key file read
once and kept, as a DCC Boxed key store does) in one Node.js process over the same messages;
it is not a dependency of gbhub: build it from its repository (`npm install typescript
@types/node && npx tsc`) and point `GBHUB_DCC_PARSER` at the folder holding its `dist/`. Without
node or that folder only our figures are given (`dcc`: why not).

Bytecode: ours runs as an installed Python program does, from cached bytecode (their parser runs
from its compiled `dist/` JavaScript). The bench gives our process a bytecode cache of its own
(PYTHONPYCACHEPREFIX in the temporary folder, PYTHONDONTWRITEBYTECODE dropped) and fills it with
one untimed decode first, so a machine that forbids writing bytecode does not time the compiler.

Runs alternate, ours then theirs, three times each (short form: once); each figure is the least
of its runs. Figures: `messages`, `ours_s` (wall), `ours_cpu_s` (user + system of the process and
its workers), `ours_per_s`, `dcc_s`, `dcc_cpu_s`, `dcc_per_s`, `ratio` (dcc_s / ours_s: the goal
is >= 5), `cpu_ratio` (dcc_cpu_s / ours_cpu_s), `load_avg` (one-minute load average at the start:
on a shared machine wall figures depend on it, CPU figures much less).
"""
from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .bench import benchmark, vectors_path

# The comparison harness run under Node.js (our code; it only calls the other parser's API).
_DCC_HARNESS = r"""
const fs = require('fs'), path = require('path'), crypto = require('crypto')
const [dist, vectors, file] = process.argv.slice(2)
const { parseGbcsMessage } = require(path.join(dist, 'index.js'))
const keyDirs = [path.join(vectors, 'keys/rtds'), path.join(vectors, 'keys/device-test')]
const cache = new Map()
async function keyStore(eui, type, options) {
  const e = (typeof eui === 'string' ? eui : Buffer.from(eui).toString('hex')).toLowerCase()
  const k = `${e}|${type}|${!!options.privateKey}|${!!options.prePayment}`
  if (cache.has(k)) { const v = cache.get(k); if (v instanceof Error) throw v; return v }
  const base = `${e}${options.prePayment ? '-pp' : ''}-${type.toLowerCase()}`
  for (const d of keyDirs) {
    const f = path.join(d, base + (options.privateKey ? '.key' : '.pem'))
    if (fs.existsSync(f)) {
      const text = fs.readFileSync(f)
      const v = options.privateKey ? crypto.createPrivateKey(text) : new crypto.X509Certificate(text).publicKey
      cache.set(k, v)
      return v
    }
  }
  const err = new Error('no key ' + base)
  cache.set(k, err)
  throw err
}
(async () => {
  const lines = fs.readFileSync(file, 'utf8').split('\n').filter(l => l)
  let ok = 0, bad = 0
  for (const m of lines) {
    try { await parseGbcsMessage(m, keyStore, '90B3D51F30000002'); ok++ } catch (e) { bad++ }
  }
  console.log(JSON.stringify({ ok, bad }))
})()
"""


def _run(cmd: list[str], **kw) -> tuple[float, float, subprocess.CompletedProcess]:
    """Wall seconds, CPU seconds (the child and everything it waited for), the result."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run(cmd, stdout=kw.pop("stdout", subprocess.DEVNULL), stderr=subprocess.PIPE, text=True, **kw)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), r


def dcc_parser() -> tuple[str, str] | str:
    """(node, dist folder) of the DCC's parser, or why it cannot be run."""
    node = shutil.which("node") or shutil.which("nodejs")
    folder = os.environ.get("GBHUB_DCC_PARSER")
    if node is None:
        return "node not installed"
    if not folder:
        return "GBHUB_DCC_PARSER not set (a built SmartDCCInnovation/gbcs-parser)"
    dist = Path(folder) / "dist" if (Path(folder) / "dist" / "index.js").is_file() else Path(folder)
    if not (dist / "index.js").is_file():
        return f"no dist/index.js under {folder}"
    return node, str(dist)


@benchmark("decode", "gbhub decode --batch over the RTDS set x10, whole process, beside the DCC's parser")
def decode(args, short: bool, progress) -> dict:
    vectors = vectors_path(getattr(args, "vectors", None))
    hexes = sorted((vectors / "rtds").rglob("*.HEX"))
    if not hexes:
        return {"skipped": f"RTDS vectors not found at {vectors}"}
    times = 2 if short else 10
    runs = 1 if short else 3
    messages = ["".join(p.read_text().split()) for p in hexes]
    other = dcc_parser()
    load_avg = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="gbhub-bench-decode-") as tmp:
        batch = Path(tmp) / "rtds.txt"
        batch.write_text("\n".join(messages * times) + "\n")
        harness = Path(tmp) / "dcc.js"
        harness.write_text(_DCC_HARNESS)
        ours_cmd = [sys.executable, "-P", "-m", "gbhub.tools.cli", "decode", "--batch", f"@{batch}",
                    "--keys", str(vectors / "keys" / "rtds"), "--keys", str(vectors / "keys" / "device-test"), "--compact"]
        n = len(messages) * times
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
        first = Path(tmp) / "first.txt"
        first.write_text(messages[0] + "\n")
        _run([f"@{first}" if a == f"@{batch}" else a for a in ours_cmd], env=env)  # fills the bytecode cache
        progress(f"decode: {len(messages)} RTDS messages x {times} = {n}; {runs} alternated run(s) each"
                 + ("" if isinstance(other, tuple) else f"; DCC parser: {other}"))
        ours, theirs = [], []
        for _ in range(runs):
            wall, cpu, r = _run(ours_cmd, env=env)
            if r.returncode not in (0, 2):  # 2: some line did not parse (said in its JSON line)
                return {"failed": f"gbhub decode --batch: {r.stderr.strip()[-300:]}"}
            ours.append((wall, cpu))
            if isinstance(other, tuple):
                wall, cpu, r = _run([other[0], str(harness), other[1], str(vectors), str(batch)], stdout=subprocess.PIPE)
                if r.returncode != 0:
                    return {"failed": f"DCC parser: {r.stderr.strip()[-300:]}"}
                theirs.append((wall, cpu))
    out: dict = {"messages": n, "ours_s": round(min(w for w, _ in ours), 2),
                 "ours_cpu_s": round(min(c for _, c in ours), 2)}
    out["ours_per_s"] = round(n / out["ours_s"])
    if theirs:
        out.update(dcc_s=round(min(w for w, _ in theirs), 2), dcc_cpu_s=round(min(c for _, c in theirs), 2))
        out["dcc_per_s"] = round(n / out["dcc_s"])
        out["ratio"] = round(out["dcc_s"] / out["ours_s"], 2)
        out["cpu_ratio"] = round(out["dcc_cpu_s"] / out["ours_cpu_s"], 2)
    else:
        out["dcc"] = other
    out["load_avg"] = round(load_avg, 2)
    for k, v in out.items():
        progress(f"  {k:12} {v}")
    return out
