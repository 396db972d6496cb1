"""The layering of ../shared/ARCHITECTURE.md, checked on the source (ast, nothing imported):

- imports go only downwards: gbcs imports no gbhub; firmware only gbcs; han and wan only firmware
  and gbcs; hub and meter never each other, and only han, wan, firmware, gbcs; tools anything;
  every layer is imported by its installed name (`gbhub.hub`, never `hub`);
- no import cycle between modules (imports inside functions count: they only hide a cycle);
- `gbcs/` is sans-IO: it reads no clock (callers pass `now`) and does no I/O;
- installed, the distribution occupies only the top-level names `gbcs` and `gbhub`.
"""
from __future__ import annotations

import ast
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: folder -> import name of the package it holds (pyproject's package-dir, checked below)
PACKAGES = {
    "gbcs": "gbcs",
    "firmware": "gbhub.firmware",
    "han": "gbhub.han",
    "wan": "gbhub.wan",
    "hub": "gbhub.hub",
    "meter": "gbhub.meter",
    "tools": "gbhub.tools",
    "gbhub": "gbhub",  # the distribution's package: version, `python -m gbhub`
}
#: layer -> the layers it may import (itself included)
ALLOWED = {
    "gbcs": {"gbcs"},
    "firmware": {"firmware", "gbcs"},
    "han": {"han", "firmware", "gbcs"},
    "wan": {"wan", "firmware", "gbcs"},
    "hub": {"hub", "han", "wan", "firmware", "gbcs"},
    "meter": {"meter", "han", "wan", "firmware", "gbcs"},
    "tools": {"tools", "hub", "meter", "han", "wan", "firmware", "gbcs", "gbhub"},
    "gbhub": {"tools", "hub", "meter", "han", "wan", "firmware", "gbcs", "gbhub"},
}
LAYER_OF = {name: folder for folder, name in PACKAGES.items()}

#: Reading these reads the wall clock (or a process clock); gbcs takes `now` from its caller.
CLOCK_READS = {
    "datetime.datetime.now", "datetime.datetime.utcnow", "datetime.datetime.today", "datetime.date.today",
    "time.time", "time.time_ns", "time.monotonic", "time.monotonic_ns", "time.perf_counter",
    "time.perf_counter_ns", "time.process_time", "time.process_time_ns", "time.localtime", "time.gmtime",
    "time.ctime", "time.asctime", "time.strftime", "time.clock_gettime", "time.clock_gettime_ns",
}
#: Modules whose import means I/O (or an event loop) in what must stay sans-IO.
IO_MODULES = {
    "asyncio", "socket", "selectors", "ssl", "subprocess", "threading", "multiprocessing", "sqlite3",
    "io", "os", "pathlib", "shutil", "tempfile", "urllib", "http", "serial", "bleak", "zigpy", "aiomqtt",
}
IO_BUILTINS = {"open", "print", "input"}
IO_METHODS = {"read_text", "write_text", "read_bytes", "write_bytes"}


def _modules() -> dict[str, tuple[str, Path]]:
    """Import name -> (layer, path) for every module of the layer folders."""
    out = {}
    for folder, package in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join((package, *parts))] = (folder, path)
    return out


MODULES = _modules()


def _is_package(name: str) -> bool:
    return MODULES[name][1].name == "__init__.py"


def _imports(name: str) -> list[tuple[str, int]]:
    """(imported module, line) for every import in module `name`, anywhere in it, relative
    imports resolved; `from X import y` names X.y when that is a module of ours, else X."""
    tree = ast.parse(MODULES[name][1].read_text(), str(MODULES[name][1]))
    package = name if _is_package(name) else name.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                out.append((sub if sub in MODULES else target, node.lineno))
    return out


def _layer(imported: str) -> str | None:
    """The layer an imported name belongs to, or None for anything outside the project."""
    for name in sorted(LAYER_OF, key=len, reverse=True):  # gbhub.tools before gbhub
        if imported == name or imported.startswith(name + "."):
            return LAYER_OF[name]
    return None


def test_every_layer_is_mapped_in_pyproject():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapped = {name: folder for folder, name in PACKAGES.items() if folder != name}
    assert {k: v for k, v in config["package-dir"].items() if k in mapped} == mapped
    assert set(PACKAGES.values()) <= set(config["packages"])


def test_imports_go_only_downwards():
    wrong = []
    for name, (folder, path) in MODULES.items():
        for imported, line in _imports(name):
            top = imported.split(".")[0]
            if top in PACKAGES and PACKAGES[top] != top:
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports {imported} (use gbhub.{imported})")
                continue
            layer = _layer(imported)
            if layer is not None and layer not in ALLOWED[folder]:
                wrong.append(f"{path.relative_to(ROOT)}:{line} ({folder}) imports {imported} ({layer})")
    assert not wrong, "imports against ARCHITECTURE.md's layering:\n" + "\n".join(wrong)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _graph(names) -> dict[str, set[str]]:
    """Module -> the project modules it imports (importing a package imports its __init__)."""
    graph = {}
    for name in names:
        graph[name] = {imported for imported, _ in _imports(name) if imported in MODULES and imported != name}
    return graph


def test_no_import_cycles():
    cycles = _cycles(_graph(MODULES))
    assert not cycles, "import cycles (move what they share downwards):\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_no_import_cycles_within_gbcs():
    gbcs = [name for name, (folder, _) in MODULES.items() if folder == "gbcs"]
    assert not _cycles(_graph(gbcs))


def _dotted(node: ast.AST, aliases: dict[str, str]) -> str | None:
    """The full dotted name an expression like `_dt.datetime.now` refers to, through the
    module's import aliases; None if it does not start at an imported name."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name) or node.id not in aliases:
        return None
    return ".".join([aliases[node.id], *reversed(parts)])


def _sans_io_violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    aliases: dict[str, str] = {}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                aliases[alias.asname or alias.name.split(".")[0]] = alias.name if alias.asname else alias.name.split(".")[0]
                if alias.name.split(".")[0] in IO_MODULES:
                    out.append(f"{node.lineno}: imports {alias.name}")
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            for alias in node.names:
                aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
            if node.module.split(".")[0] in IO_MODULES:
                out.append(f"{node.lineno}: imports from {node.module}")
    for node in ast.walk(tree):
        if isinstance(node, (ast.Attribute, ast.Name)):
            name = _dotted(node, aliases)
            if name in CLOCK_READS:
                out.append(f"{node.lineno}: reads the clock ({name})")
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in IO_BUILTINS and func.id not in aliases:
                out.append(f"{node.lineno}: calls {func.id}()")
            if isinstance(func, ast.Attribute) and func.attr in IO_METHODS:
                out.append(f"{node.lineno}: calls .{func.attr}()")
    return out


@pytest.mark.parametrize("path", sorted((ROOT / "gbcs").rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_gbcs_reads_no_clock_and_does_no_io(path):
    wrong = _sans_io_violations(path)
    assert not wrong, f"{path.relative_to(ROOT)} is not sans-IO:\n" + "\n".join(wrong)


def test_the_sans_io_check_sees_clock_reads_and_io():
    """The checker itself, on the forms it must catch (and the forms it must let through)."""
    import tempfile

    samples = {
        "import datetime as _dt\nx = _dt.datetime.now(_dt.timezone.utc)\n": 1,
        "from datetime import datetime\nx = datetime.utcnow()\n": 1,
        "from datetime import date\nx = date.today()\n": 1,
        "import time\nx = time.monotonic()\n": 1,
        "from time import perf_counter as pc\nx = pc()\n": 1,
        "import asyncio\n": 1,
        "x = open('f')\n": 1,
        "def f(p):\n    return p.read_bytes()\n": 1,
        "from datetime import datetime, timezone\nx = datetime(2026, 1, 1, tzinfo=timezone.utc)\n": 0,
        "import datetime as _dt\ndef f(now: _dt.datetime):\n    return now.date()\n": 0,
    }
    with tempfile.TemporaryDirectory() as tmp:
        for source, expected in samples.items():
            path = Path(tmp) / "sample.py"
            path.write_text(source)
            assert len(_sans_io_violations(path)) == expected, source


# ---------------------------------------------------------------------------------------------
# Installed names
# ---------------------------------------------------------------------------------------------


def test_distribution_has_only_distinctive_top_level_names():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    names = list(config["packages"]) + list(config.get("package-dir", {}))
    tops = {name.split(".")[0] for name in names if name}
    assert tops <= {"gbcs", "gbhub"}, tops
    assert "" not in config.get("package-dir", {}), "a root package-dir would install every folder top-level"


def _python(code: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, "-P", "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)


def test_layer_folders_are_not_importable_by_their_folder_names(tmp_path):
    for name in ("tools", "hub", "meter", "han", "wan", "firmware"):
        result = _python(f"import {name}; print({name}.__file__)", tmp_path)
        if result.returncode == 0:  # another distribution's top-level package (zigpy 2.4 ships `tools`)
            assert Path(result.stdout.strip()).resolve().parent != (ROOT / name).resolve(), name
            continue
        assert "ModuleNotFoundError" in result.stderr, (name, result.stderr)


def test_installed_names_import(tmp_path):
    result = _python("import gbhub.tools.cli, gbhub.hub.chf, gbcs.frame", tmp_path)
    assert result.returncode == 0, result.stderr
