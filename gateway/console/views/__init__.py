"""The console's pages and actions, one module per area (see ``gateway.console``).

:func:`load` imports them all once, which registers their routes in
:mod:`gateway.console.registry`. A new page module is added to ``MODULES``.
"""

from __future__ import annotations

import importlib

MODULES = (
    "dashboard",
    "exchanges",
    "queues",
    "peers",
    "authorities",
    "policies",
    "catalogue",
    "coordinator",
    "kpis",
    "audit",
    "users",
    "account",
)


def load() -> None:
    """Register every page (idempotent: a module is imported once)."""
    for name in MODULES:
        importlib.import_module(f"gateway.console.views.{name}")


__all__ = ["MODULES", "load"]
