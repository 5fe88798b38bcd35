"""Packaging: every package is listed in setup.cfg and the data files are installed."""

from __future__ import annotations

import configparser
import pathlib
from importlib import resources

ROOT = pathlib.Path(__file__).resolve().parents[1]
MAPPED = {"gateway": "gateway", "schemas": "gateway.schemas", "adapters": "gateway.adapters"}


def _declared_packages() -> set[str]:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    return {line.strip() for line in cfg["options"]["packages"].splitlines() if line.strip()}


def test_every_package_directory_is_declared_in_setup_cfg() -> None:
    found = set()
    for top, name in MAPPED.items():
        for init in (ROOT / top).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / top)
            found.add(".".join([name, *rel.parts]))
    assert found == _declared_packages()


def test_schemas_are_reachable_as_package_resources() -> None:
    files = resources.files("gateway.schemas")
    assert any(entry.name.endswith(".xsd") for entry in files.iterdir())


def test_adapters_are_installed_under_the_gateway_package() -> None:
    import gateway.adapters

    assert gateway.adapters.__name__ == "gateway.adapters"
