"""Every console route × every role: exactly the allowed roles get past the role check.

The expected table is written out here from the role rules (operator:
everything but coordinator actions; coordinator: coordinator pages only;
auditor: read-only pages of exchange metadata, audit and KPIs), and checked
against the registry (no route unlisted) and against the running console.
"""

from __future__ import annotations

from gateway.console import views
from gateway.console.registry import ROUTES
from tests.console.bed import USER_OF, ConsoleBed
from tests.console.conftest import Client

OP, C, A = "operator", "coordinator", "auditor"
EXPECTED: dict[tuple[str, str], set[str]] = {
    ("GET", "dashboard"): {OP},
    ("GET", "exchanges"): {OP, A},
    ("GET", "queues"): {OP},
    ("POST", "queues/retry"): {OP},
    ("POST", "queues/abandon"): {OP},
    ("GET", "peers"): {OP},
    ("POST", "peers/add"): {OP},
    ("POST", "peers/revoke"): {OP},
    ("POST", "peers/rotate"): {OP},
    ("GET", "authorities"): {OP},
    ("POST", "authorities/add"): {OP},
    ("POST", "authorities/update"): {OP},
    ("GET", "policies"): {OP},
    ("GET", "catalogue"): {OP},
    ("GET", "coordinator"): {C},
    ("POST", "coordinator/act"): {C},
    ("POST", "coordinator/prepare"): {C},
    ("POST", "coordinator/upload"): {C},
    ("GET", "kpis"): {OP, C, A},
    ("GET", "audit"): {OP, A},
    ("POST", "audit/export"): {OP, A},
    ("GET", "users"): {OP},
    ("POST", "users/add"): {OP},
    ("POST", "users/password"): {OP},
    ("POST", "users/disable"): {OP},
    ("POST", "users/enable"): {OP},
    ("GET", "account"): {OP, C, A},
    ("POST", "account/language"): {OP, C, A},
}


def test_the_registry_has_exactly_the_routes_of_the_role_table() -> None:
    views.load()
    assert {key: set(route.roles) for key, route in ROUTES.items()} == EXPECTED


def test_every_route_answers_each_role_as_the_role_table_says(bed: ConsoleBed) -> None:
    clients = {}
    for role, user in USER_OF.items():
        client = Client(bed)
        assert client.login(user) == 303
        clients[role] = client
    tokens = {role: client.csrf() for role, client in clients.items()}
    anonymous = Client(bed)
    seen = []
    for (method, path), allowed in sorted(EXPECTED.items()):
        # Empty forms: an allowed action refuses the input (400) and changes nothing.
        for role, client in clients.items():
            fields = {"csrf": tokens[role]} if method == "POST" else None
            status, _, _ = client.request(method, f"/{path}", fields)
            if role in allowed:
                assert status in (200, 400, 303), (method, path, role, status)
            else:
                assert status == 403, (method, path, role, status)
            seen.append((method, path, role, status))
        status, headers, _ = anonymous.request(method, f"/{path}", {} if method == "POST" else None)
        assert status == 303 and headers["location"] == "/login", (method, path)
    assert len(seen) == len(EXPECTED) * 3
