"""gateway.core must stay sans-IO: no twisted, no sqlalchemy, at any depth."""

import ast
import pathlib
import subprocess
import sys

import gateway.core

CORE = pathlib.Path(gateway.core.__file__).parent
FORBIDDEN = ("twisted", "sqlalchemy", "treq", "socket", "asyncio")


def test_core_modules_do_not_import_io_frameworks() -> None:
    offenders = []
    for path in CORE.rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    assert offenders == []


def test_importing_every_core_module_loads_no_io_framework() -> None:
    code = (
        "import importlib, pkgutil, sys, gateway.core as c\n"
        "for m in pkgutil.walk_packages(c.__path__, 'gateway.core.'):\n"
        "    importlib.import_module(m.name)\n"
        f"bad = [n for n in sys.modules if n.split('.')[0] in {FORBIDDEN[:3]!r}]\n"
        "print(','.join(sorted(bad)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
