"""Spec tables are written once, in gbcs/: above it, code names message codes, alert codes and COSEM
objects (`MessageCode.ECS17b`, `AlertCode.CLOCK_ADJUSTED`, `OBIS.CLOCK`) instead of retyping them.

The scan reads source (ast), so comments and docstrings may still spell values out, as tests do.
What counts as a literal:
- an OBIS logical name in a string ("0-0:1.0.0.255", also inside an f-string);
- a hex integer that is a GBCS alert code (0x8F1E);
- a hex integer that is a message code where the code says so: assigned to a use-case-named or
  *_CODE / *_ALERT name, passed as `message_code=`, compared with or looked up by something named
  `message_code`/`use_case`, or a key of a dict assigned to such a name.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from gbcs.catalogue import AlertCode, MessageCode

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("firmware", "han", "wan", "hub", "meter", "tools")
OBIS_TEXT = re.compile(r"\b\d{1,3}-\d{1,3}:\d{1,3}\.\d{1,3}\.\d{1,3}(\.\d{1,3})?\b")
OBIS_FSTRING = re.compile(r"\d{1,3}-\d{1,3}:\d{1,3}\.\d{1,3}\.")
ALERTS = frozenset(int(a) for a in AlertCode)
MESSAGE_CODES = frozenset(int(m) for m in MessageCode)
USE_CASE_NAMES = frozenset(n.upper() for n in MessageCode.__members__)
CODE_CONTEXT = re.compile(r"message_code|use_case|MESSAGE_CODE|USE_CASE|_CODES?\b|_ALERTS?\b|ALERT_", re.I)


def _sources() -> list[Path]:
    return sorted(p for layer in LAYERS for p in (ROOT / layer).rglob("*.py"))


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def _names_in(node: ast.AST | None) -> str:
    if node is None:
        return ""
    return " ".join(n.id if isinstance(n, ast.Name) else n.attr if isinstance(n, ast.Attribute) else n.arg
                    for n in ast.walk(node) if isinstance(n, (ast.Name, ast.Attribute, ast.keyword)) and
                    (not isinstance(n, ast.keyword) or n.arg))


def _code_context(node: ast.AST, parents: dict[int, ast.AST]) -> bool:
    """Whether the statement around a number says it is a message code."""
    child, parent = node, parents.get(id(node))
    while parent is not None:
        if isinstance(parent, ast.keyword):
            return parent.arg is not None and bool(CODE_CONTEXT.search(parent.arg))
        if isinstance(parent, ast.Compare):
            return bool(CODE_CONTEXT.search(_names_in(parent)))
        if isinstance(parent, ast.Subscript) and child is parent.slice:
            return bool(CODE_CONTEXT.search(_names_in(parent.value)))
        if isinstance(parent, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = parent.targets if isinstance(parent, ast.Assign) else [parent.target]
            names = [t.id for tgt in targets for t in ast.walk(tgt) if isinstance(t, ast.Name)]
            names += [t.attr for tgt in targets for t in ast.walk(tgt) if isinstance(t, ast.Attribute)]
            return any(n.upper() in USE_CASE_NAMES or CODE_CONTEXT.search(n) for n in names)
        if isinstance(parent, (ast.stmt, ast.Lambda)):
            return False
        child, parent = parent, parents.get(id(parent))
    return False


def literals(text: str, name: str) -> list[str]:
    tree = ast.parse(text)
    parents = {id(c): p for p in ast.walk(tree) for c in ast.iter_child_nodes(p)}
    docs = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        where = f"{name}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            parent = parents.get(id(node))
            pattern = OBIS_FSTRING if isinstance(parent, ast.JoinedStr) else OBIS_TEXT
            if pattern.search(node.value):
                found.append(f"{where}: OBIS {node.value!r}")
        elif isinstance(node, ast.Constant) and type(node.value) is int:
            src = ast.get_source_segment(text, node) or ""
            if not src.lower().startswith("0x"):
                continue
            if node.value in ALERTS:
                found.append(f"{where}: alert code {src}")
            elif node.value in MESSAGE_CODES and _code_context(node, parents):
                found.append(f"{where}: message code {src}")
    return found


def test_no_spec_literals_above_gbcs():
    found = [hit for path in _sources() for hit in literals(path.read_text(), str(path.relative_to(ROOT)))]
    assert not found, "spell these with gbcs names (MessageCode, AlertCode, OBIS):\n" + "\n".join(found)


@pytest.mark.parametrize("source, expected", [
    ('X = "0-0:1.0.0.255"\n', 1),
    ('x = f"0-0:16.0.{i}.255"\n', 1),
    ('def f():\n    """reads 0-0:1.0.0.255"""\n', 0),
    ("ALERT_CLOCK_ADJUSTED = 0x8145\n", 1),
    ("crc = 0x8408\n", 0),
    ("ECS17B = 0x0027\n", 1),
    ("if message.message_code == 0x0027: pass\n", 1),
    ("f(message_code=0x00D5)\n", 1),
    ("ZCL = {0x0000: 1, 0x0001: 2}\n", 0),
    ("attrs[0x0100] = 3\n", 0),
])
def test_the_scan_finds_what_it_should(source, expected):
    assert len(literals(source, "probe.py")) == expected, literals(source, "probe.py")
