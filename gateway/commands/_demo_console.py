"""``imi-gateway demo --console``: both demo nodes keep running, with sample data and consoles.

Sets Norway (NO) and Portugal (PT) up as ``demo`` does, with each node's
admin console on (HTTPS, port 0), the national coordinators registered, and
per node an operator and a coordinator (with a console key) whose generated
passwords are printed once. Both nodes run in this process on one simulated
clock (the reactor's time plus an offset), so that a deadline can pass at
once while TLS, envelopes and replay windows see one consistent time.

Sample data, made through the nodes' own API and services:

* a request sent while PT was not yet running: a **dead letter** at NO
  (retry it from the console's queue page once PT runs);
* a request accepted, answered and closed;
* a request PT-OMD **disputes**: it waits for the coordinators;
* a **late** request: the clock moves 8 days on, NO's deadline service
  reminds PT-OMD; 3 days more and it **escalates** to the coordinators of
  both countries.

Then it prints each console's address and logins and runs until Ctrl-C.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from gateway.core.clock import utc_from_seconds

AUTHORITIES = {"NO": ["NO-HELSEDIR"], "PT": ["PT-OMD"]}
COORDINATORS = {
    "NO": ("NO-KOORDINATOR", "Nasjonal IMI-koordinator"),
    "PT": ("PT-COORDENADOR", "Coordenador nacional IMI"),
}
USERS = {"NO": ("operator", "koordinator"), "PT": ("operador", "coordenador")}
CONSOLE = """
[console]
enabled = true
port = 0
[metrics]
refresh_seconds = 5
"""
#: NO gives up on a peer at once, so the document sent before PT runs is a dead letter.
FAST_DEAD_LETTER = """
[outbound]
max_attempts = 1
initial_backoff_seconds = 0.1
max_backoff_seconds = 0.5
"""


class ShiftedClock:
    """The reactor's clock moved forward by :meth:`advance` (one clock for both nodes)."""

    def __init__(self, reactor: Any) -> None:
        self._reactor = reactor
        self.offset = 0.0

    def seconds(self) -> float:
        return float(self._reactor.seconds()) + self.offset

    def callLater(self, delay: float, f: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        return self._reactor.callLater(delay, f, *args, **kw)

    def now(self) -> datetime:
        return utc_from_seconds(self.seconds())

    def advance(self, delta: timedelta) -> None:
        self.offset += delta.total_seconds()


async def _until(reactor: Any, check: Callable[[], Awaitable[bool]], what: str) -> None:
    from twisted.internet.task import deferLater

    for _ in range(600):
        if await check():
            return
        await deferLater(reactor, 0.1, lambda: None)
    raise TimeoutError(f"demo: {what} did not happen within a minute")


def _prepare(base: Path) -> tuple[dict[str, Any], dict[str, list[tuple[str, str, str]]]]:
    """Node directories, coordinators and console users; the logins (user, role, password)."""
    from gateway.commands.queue import _database
    from gateway.console.security import hash_password
    from gateway.console.signing import issue_console_key
    from gateway.core.audit import OPERATOR_ACTOR
    from gateway.core.coordinators import Coordinator, Scope
    from gateway.storage.console_accounts import add_user_txn
    from gateway.storage.coordinators import CoordinatorRegistry
    from gateway.testbed import setup_nodes

    setups = setup_nodes(
        base,
        AUTHORITIES,
        extra_config={"NO": CONSOLE + FAST_DEAD_LETTER, "PT": CONSOLE},
    )
    logins: dict[str, list[tuple[str, str, str]]] = {}
    for country, setup in setups.items():
        coordinator_id, name = COORDINATORS[country]
        CoordinatorRegistry(setup.node_dir).add(Coordinator(coordinator_id, name, Scope.NATIONAL))
        db, _ = _database(str(setup.node_dir))
        logins[country] = []
        try:
            for username, role in zip(USERS[country], ("operator", "coordinator"), strict=True):
                password = secrets.token_urlsafe(12)
                db.run_txn_sync(
                    add_user_txn,
                    username=username,
                    role=role,
                    password_hash=hash_password(password),
                    now=datetime.now(UTC),
                    actor=OPERATOR_ACTOR,
                    coordinator_id=coordinator_id if role == "coordinator" else None,
                    cert_fingerprint=None,
                )
                if role == "coordinator":
                    issue_console_key(setup.node_dir, username, coordinator_id)
                logins[country].append((username, role, password))
        finally:
            db.stop()
    return setups, logins


async def play_console_demo(base: Path, out: Callable[[str], None], reactor: Any) -> list[Any]:
    """Set up, start and fill both nodes; their services (running). Prints the logins."""
    from gateway.core.catalogue import load_catalogues
    from gateway.core.coordination import Dispute
    from gateway.core.docparts import Header
    from gateway.core.documents import to_xml
    from gateway.storage.errors import ExchangeNotFound
    from gateway.storage.exchanges import exchange_txn
    from gateway.storage.outbox import dead_letters_txn
    from gateway.testbed import (
        NationalSystem,
        doctor_acceptance,
        doctor_answer,
        doctor_closure,
        doctor_request,
        start_in_process,
    )

    out("Setting up NO and PT with their consoles, coordinators and console users…")
    setups, logins = _prepare(base)
    catalogues = load_catalogues()
    clock = ShiftedClock(reactor)
    services: list[Any] = []
    parts: dict[str, Any] = {}

    def start(country: str) -> None:
        service, built = start_in_process(
            setups[country], reactor, catalogues=catalogues, clock=clock
        )
        services.append(service)
        parts[country] = built

    start("NO")
    no = NationalSystem(reactor, setups["NO"], "NO-HELSEDIR")

    async def request(number: str) -> Any:
        document = doctor_request(f"NO-HELSEDIR:{number}", "NO-HELSEDIR", "PT-OMD", clock.now())
        await no.submit(no.sign(to_xml(document)))
        return document

    async def at_pt(document: Any) -> None:
        async def arrived() -> bool:
            try:
                await parts["PT"].db.run_txn(exchange_txn, document.header.exchange_id)
            except ExchangeNotFound:
                return False
            return True

        await _until(reactor, arrived, f"{document.header.exchange_id} at PT")

    await request("2026-000101")

    async def dead() -> bool:
        return bool(await parts["NO"].db.run_txn(dead_letters_txn))

    await _until(reactor, dead, "the dead letter")
    out("  NO-HELSEDIR:2026-000101  sent while PT was down: a dead letter at NO")
    start("PT")
    pt = NationalSystem(reactor, setups["PT"], "PT-OMD")
    systems = [no, pt]
    try:
        closed = await request("2026-000102")
        await at_pt(closed)
        acceptance = doctor_acceptance(closed, clock.now())
        await pt.submit(pt.sign(to_xml(acceptance)))
        answer = doctor_answer(closed, clock.now())
        await pt.submit(pt.sign(to_xml(answer)))
        await _deliveries(no, 2)
        await no.submit(
            no.sign(to_xml(doctor_closure(closed, answer.header.document_id, clock.now())))
        )
        out("  NO-HELSEDIR:2026-000102  requested, accepted, answered and closed")

        disputed = await request("2026-000103")
        await at_pt(disputed)
        header = Header(
            disputed.header.exchange_id,
            f"PT-OMD:{uuid.uuid4().hex}",
            "PT-OMD",
            "NO-HELSEDIR",
            clock.now(),
        )
        await pt.submit(pt.sign(to_xml(Dispute(header, "QUESTION_NOT_JUSTIFIED"))))
        out("  NO-HELSEDIR:2026-000103  disputed by PT-OMD: waits for the coordinators")

        late = await request("2026-000104")
        await at_pt(late)
        exchange_id = late.header.exchange_id
        for days, what in ((8, "reminded"), (3, "escalated")):
            clock.advance(timedelta(days=days))
            await parts["NO"].deadlines.run_once()
            out(f"  {exchange_id}  {days} days later (simulated clock): {what}")

        async def escalated_at_pt() -> bool:
            listed = await parts["PT"].coordinators.exchanges(COORDINATORS["PT"][0], "escalated")
            return any(item.exchange.exchange_id == exchange_id for item in listed)

        await _until(reactor, escalated_at_pt, "the escalation at PT")
    finally:
        for system in systems:
            await system.close()
    _print_logins(out, setups, parts, logins, clock)
    return services


async def _deliveries(system: Any, count: int) -> None:
    seen, cursor = 0, 0
    while seen < count:
        pulled = await system.pull(after=cursor, wait=10)
        seen += len(pulled.deliveries)
        cursor = pulled.cursor
    await system.pull(after=cursor)


def _print_logins(
    out: Callable[[str], None],
    setups: dict[str, Any],
    parts: dict[str, Any],
    logins: dict[str, list[tuple[str, str, str]]],
    clock: ShiftedClock,
) -> None:
    out("")
    out(f"The nodes run on a simulated clock: {clock.now():%Y-%m-%d %H:%M} UTC.")
    for country in ("NO", "PT"):
        port = parts[country].console.port
        out(
            f"Console {country}: https://127.0.0.1:{port}/  (node directory {setups[country].node_dir})"
        )
        for username, role, password in logins[country]:
            out(f"  login {username} / {password}  ({role})")
    out("")
    out(
        "The passwords are printed once; set others with: imi-gateway users set-password NODE_DIR NAME"
    )
    out("The consoles use the node's own TLS certificate: accept it in the browser.")
    out("Press Ctrl-C to stop both nodes.")


def stop_all(services: Iterable[Any]) -> Any:
    """Stop the services (a Deferred that fires when all have stopped)."""
    from twisted.internet.defer import DeferredList, maybeDeferred

    return DeferredList([maybeDeferred(s.stopService) for s in services])


__all__ = ["ShiftedClock", "play_console_demo", "stop_all"]
