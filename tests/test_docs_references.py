"""Every module, name and source path the docs mention exists.

Scans ``docs/*.md`` and ``README.md`` for

* dotted names under ``gateway`` (``gateway.core.lifecycle.TRANSITIONS``:
  the longest importable module, then attributes), and the names imported
  by ``from gateway.x import a, b`` in examples;
* source paths (``gateway/storage/db.py``, ``gateway/core/signing/``,
  ``tests/waiting.py``);
* code names in backticks that are calls or methods (`` `run_txn()` ``,
  `` `Database.migrate()` ``, `` `claim_outbox_txn` ``): defined somewhere in
  ``gateway/`` or ``adapters/``.

A rename that leaves a doc behind fails here.
"""

from __future__ import annotations

import ast
import importlib
import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]

DOTTED = re.compile(r"(?<![\w./-])gateway(?:\.[A-Za-z_]\w*)+")
PATH = re.compile(r"(?<![\w./-])(?:gateway|adapters|tests|scripts|schemas)/[\w./*-]*[\w/*]")
IMPORTS = re.compile(r"^\s*from (gateway(?:\.\w+)+) import ([\w, ]+)$", re.MULTILINE)
#: `` `name()` ``, `` `Class.name` ``, `` `name_txn` ``, `` `_private` ``: the code names checked.
CODE = re.compile(
    r"`((?:[A-Za-z_]\w*\.)?[A-Za-z_]\w*)\(\)`|`([A-Z][a-z]\w*\.[a-z_]\w*)`|`(\w+_txn)`|`(_[a-z]\w*)`"
)
#: Backticked names that are not ours: other projects' functions, naming conventions.
NOT_CODE = {"uuid4", "_txn"}
#: ``gateway.<ext>``: files and host names, not modules.
NOT_MODULES = {"toml", "pid", "sqlite3", "db", "log", "example"}
#: Packages mapped into ``gateway`` from other source folders (setup.cfg package_dir).
MAPPED = {"gateway/adapters": "adapters", "gateway/schemas": "schemas"}


def mentions(pattern: re.Pattern[str]) -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        for match in pattern.finditer(doc.read_text(encoding="utf-8")):
            found.append((doc.name, match.group(0)))
    return sorted(set(found))


def imported_names() -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        for match in IMPORTS.finditer(doc.read_text(encoding="utf-8")):
            for name in match.group(2).split(","):
                found.append((doc.name, f"{match.group(1)}.{name.strip()}"))
    return sorted(set(found))


def code_names() -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        for match in CODE.finditer(doc.read_text(encoding="utf-8")):
            found.append((doc.name, next(g for g in match.groups() if g)))
    return sorted(set(found))


@cache
def defined_names() -> frozenset[str]:
    """Every function, class, attribute and variable name defined in gateway/ and adapters/."""
    names: set[str] = set()
    for folder in ("gateway", "adapters"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                    names.add(node.name)
                elif isinstance(node, ast.Name | ast.arg) and not isinstance(
                    getattr(node, "ctx", None), ast.Load
                ):
                    names.add(node.id if isinstance(node, ast.Name) else node.arg)
                elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                    names.add(node.attr)
    return frozenset(names)


def resolves(dotted: str) -> bool:
    """True when ``dotted`` is a module, or a module's attribute (chain)."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for name in parts[cut:]:
            if not hasattr(obj, name):
                return False
            obj = getattr(obj, name)
        return True
    return False


def exists(path: str) -> bool:
    for prefix, folder in MAPPED.items():
        if path.startswith(prefix + "/"):
            path = folder + path[len(prefix) :]
    if "*" in path:
        return any(ROOT.glob(path.rstrip("/")))
    return (ROOT / path).exists()


def test_the_docs_mention_names_and_paths_at_all() -> None:
    assert len(mentions(DOTTED)) > 20 and len(mentions(PATH)) > 20


@pytest.mark.parametrize(
    ("doc", "name"),
    [m for m in mentions(DOTTED) if m[1].split(".")[1] not in NOT_MODULES],
)
def test_a_dotted_name_in_the_docs_imports(doc: str, name: str) -> None:
    assert resolves(name), f"{doc} names {name}, which does not exist"


@pytest.mark.parametrize(("doc", "name"), imported_names())
def test_a_name_imported_in_a_doc_example_exists(doc: str, name: str) -> None:
    assert resolves(name), f"{doc} imports {name}, which does not exist"


@pytest.mark.parametrize(("doc", "name"), [m for m in code_names() if m[1] not in NOT_CODE])
def test_a_code_name_in_the_docs_is_defined(doc: str, name: str) -> None:
    missing = [part for part in name.split(".") if part not in defined_names()]
    assert not missing, f"{doc} names `{name}`: {missing} not defined in gateway/ or adapters/"


@pytest.mark.parametrize(("doc", "path"), mentions(PATH))
def test_a_source_path_in_the_docs_exists(doc: str, path: str) -> None:
    assert exists(path), f"{doc} names {path}, which does not exist"
