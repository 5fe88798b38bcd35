"""The console's routes: pages (GET) and actions (POST), each with the roles that may use it.

A view module registers its handlers with :func:`page` and :func:`action`;
:mod:`gateway.console.views` imports every view module, so registering is
all a new page needs (see the package docstring for the whole recipe).
The console root (:mod:`gateway.console.app`) looks the route up, checks
the session, the role and (for actions) the CSRF token before the handler
runs: a handler never checks them itself, and cannot skip them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from gateway.core.errors import InvalidInput

if TYPE_CHECKING:
    from gateway.console.deps import ConsoleDeps
    from gateway.console.translate import Translator
    from gateway.storage.console_accounts import ConsoleUser

#: Every console role. Operators run the node (everything but coordinator actions),
#: coordinators use the coordinator pages only, auditors read (exchange metadata, audit, KPIs).
ROLES = ("operator", "coordinator", "auditor")
OPERATOR = frozenset({"operator"})
COORDINATOR = frozenset({"coordinator"})
READERS = frozenset({"operator", "auditor"})
ALL = frozenset(ROLES)


class ConsoleInputInvalid(InvalidInput):
    """A console form field is missing or invalid (the field is named)."""

    code = "CONSOLE_INPUT_INVALID"


@dataclass
class Context:
    """What a handler gets: the caller, the query or form fields, the node's parts, the time."""

    user: ConsoleUser
    deps: ConsoleDeps
    t: Translator
    now: datetime
    query: Mapping[str, list[str]]
    form: Mapping[str, list[str]]
    #: The path below the route (``exchanges/ID`` gives ``ID`` to the ``exchanges`` page).
    rest: str = ""

    @property
    def actor(self) -> str:
        """The audit actor of this user."""
        return f"console:{self.user.username}"

    def arg(self, name: str, default: str = "") -> str:
        values = self.query.get(name) or self.form.get(name) or [default]
        return values[0].strip()

    def args(self, name: str) -> list[str]:
        return [v.strip() for v in (self.query.get(name) or self.form.get(name) or []) if v.strip()]

    def required(self, name: str) -> str:
        value = self.arg(name)
        if not value:
            raise ConsoleInputInvalid(f"{name}: required")
        return value


@dataclass(frozen=True)
class Page:
    """Render ``template`` with ``values`` (and the common layout values)."""

    template: str
    values: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Redirect:
    """Go to ``location`` (a console path), showing ``flash`` (a message key) there."""

    location: str
    flash: str | None = None
    flash_args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Download:
    """A file to download (an audit export, say)."""

    body: bytes
    filename: str
    content_type: str


Result = Page | Redirect | Download
Handler = Callable[[Context], Awaitable[Result]]


@dataclass(frozen=True)
class Route:
    path: str
    method: str
    roles: frozenset[str]
    handler: Handler
    #: Message key of the navigation link (pages shown in the menu), and its place.
    nav: str | None = None
    order: int = 100
    #: Whether the path may have more segments (``exchanges/<id>``).
    prefix: bool = False


ROUTES: dict[tuple[str, str], Route] = {}


def _register(route: Route) -> None:
    key = (route.method, route.path)
    if key in ROUTES:
        raise ValueError(f"console route {route.method} /{route.path} registered twice")
    assert route.roles <= ALL, route.roles
    ROUTES[key] = route


def page(
    path: str,
    *,
    roles: frozenset[str],
    nav: str | None = None,
    order: int = 100,
    prefix: bool = False,
) -> Callable[[Handler], Handler]:
    """Register a GET page at ``/path`` for ``roles`` (a menu entry if ``nav`` is given)."""

    def register(handler: Handler) -> Handler:
        _register(Route(path, "GET", roles, handler, nav, order, prefix))
        return handler

    return register


def action(path: str, *, roles: frozenset[str]) -> Callable[[Handler], Handler]:
    """Register a POST action at ``/path`` for ``roles`` (CSRF-checked before it runs)."""

    def register(handler: Handler) -> Handler:
        _register(Route(path, "POST", roles, handler))
        return handler

    return register


def find_route(method: str, path: str) -> tuple[Route, str] | None:
    """The route of ``method`` and ``path`` (without leading slash), and the rest of the path."""
    route = ROUTES.get((method, path))
    if route is not None:
        return route, ""
    head, _, rest = path.partition("/")
    route = ROUTES.get((method, head))
    if route is not None and route.prefix and rest:
        return route, rest
    return None


def menu(role: str) -> list[Route]:
    """The menu of ``role``: its pages with a ``nav`` key, in order."""
    pages = [r for r in ROUTES.values() if r.nav and r.method == "GET" and role in r.roles]
    return sorted(pages, key=lambda r: (r.order, r.path))


__all__ = [
    "ALL",
    "COORDINATOR",
    "OPERATOR",
    "READERS",
    "ROLES",
    "ROUTES",
    "ConsoleInputInvalid",
    "Context",
    "Download",
    "Page",
    "Redirect",
    "Route",
    "action",
    "find_route",
    "menu",
    "page",
]
