"""``imi-gateway demo``: two real nodes on loopback play one IMI exchange.

In a temporary directory it sets up Norway (NO) and Portugal (PT) exactly as
operators would (``init``, ``keys issue-national``, ``keys export`` /
``import-peer``), with a Norwegian health authority (NO-HELSEDIR) and the
Portuguese medical council (PT-OMD) as simulated national systems. Both
nodes run in this process with real TLS, real signatures and SQLite. The
Norwegian authority asks, in Norwegian Nynorsk, whether a Portuguese
doctor's diploma is authentic and whether she is in good standing; Portugal
accepts and answers; Norway closes the exchange. Every step prints the
signed receipt's digest, the deliveries show who sent them (the sender's own
signature verified) and the questions rendered in the receiving node's
language, and the end shows the exchange's tracking record (both nodes'
stages).

Then a late exchange on a simulated clock (both nodes' clock moved forward
by days): Portugal does not accept a second request; Norway's node reminds
PT-OMD two days before the acceptance deadline and when it passes, then
escalates to the coordinators of both countries; the Portuguese national
coordinator lists the escalated exchange, the Norwegian one reminds PT-OMD
with a note;
PT-OMD accepts and answers, and Norway receives the answer. The end shows
the performance figures of both exchanges (docs/kpi.md).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.core.documents import to_xml
from gateway.core.envelopes import Delivery, Receipt, Rendering

AUTHORITIES = {"NO": ["NO-HELSEDIR"], "PT": ["PT-OMD"]}
EXCHANGE_ID = "NO-HELSEDIR:2026-000417"
LATE_EXCHANGE_ID = "NO-HELSEDIR:2026-000418"
#: The coordinators registered at each node (national scope).
COORDINATORS = {
    "NO": ("NO-KOORD", "Nasjonal IMI-koordinator"),
    "PT": ("PT-KOORD", "Coordenador nacional IMI"),
}


class _Out:
    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._started = time.monotonic()

    def __call__(self, text: str = "") -> None:
        print(text, file=self._stream, flush=True)

    def step(self, who: str, text: str) -> None:
        self(f"[{time.monotonic() - self._started:6.2f}s] {who:12} {text}")


def _receipt_line(receipt: Receipt) -> str:
    item = receipt.items[0]
    return f"signed receipt from node {receipt.issuer_node}: sha256 {item.sha256[:16]}…"


def _show_renderings(out: _Out, renderings: Sequence[Rendering]) -> None:
    for rendering in renderings:
        if not (rendering.question_texts or rendering.option_texts or rendering.translations):
            continue
        out(f"      rendered in [{rendering.lang}] ({rendering.status}):")
        for q in rendering.question_texts:
            out(f"        {q.code}: {q.text}")
        for o in rendering.option_texts:
            out(f"        {o.question} → {o.code}: {o.text}")
        if rendering.status == "partial" and not rendering.translations:
            out("        (free text stays in its original language: no machine translation")
            out("         engine is configured; see docs/translation.md)")
        for mt in rendering.translations:
            out(
                f"        machine translation of {mt.text_field} "
                f"({mt.source_language}→{mt.target_language}, {mt.engine}): {mt.text}"
            )


def _show_delivery(out: _Out, who: str, delivery: Delivery) -> None:
    from gateway.client import verify_original

    original = verify_original(delivery)  # the sender's own signature, bound to the sender
    out.step(
        who,
        f"received {delivery.document_type} from {original.sender} (its signature verified; "
        f"delivered and signed by node {delivery.issuer_node}; "
        f"sha256 {delivery.sha256[:16]}…)",
    )
    _show_renderings(out, delivery.renderings)


async def _play(base: Path, out: _Out) -> None:
    from twisted.internet import reactor

    from gateway.core.catalogue import load_catalogues
    from gateway.core.localize import free_texts, renderings_for
    from gateway.testbed import (
        NationalSystem,
        doctor_acceptance,
        doctor_answer,
        doctor_closure,
        doctor_request,
        setup_nodes,
        start_in_process,
    )
    from gateway.testbed.clock import ShiftedClock

    out("Setting up two nodes as their operators would (init, issue-national, peer bundles)…")
    setups = setup_nodes(base, AUTHORITIES)
    _register_coordinators(setups, base)
    catalogues = load_catalogues()
    clock = ShiftedClock(reactor)  # real time until the late exchange moves it on by days
    running = []
    nodes = {}
    for country, setup in setups.items():
        # Every listener on port 0: each node binds free ports; the other learns its peer URL.
        service, parts = start_in_process(setup, reactor, catalogues=catalogues, clock=clock)
        running.append(service)
        nodes[country] = parts
        out(
            f"  node {country}: national API :{parts.api.port}, peer API :{parts.peer.port}, "
            f"languages {', '.join(parts.config.node.languages)}"
        )
    no = NationalSystem(reactor, setups["NO"], "NO-HELSEDIR")
    pt = NationalSystem(reactor, setups["PT"], "PT-OMD")
    try:
        out()
        request = doctor_request(EXCHANGE_ID, "NO-HELSEDIR", "PT-OMD", datetime.now(UTC))
        out.step(
            "NO-HELSEDIR",
            "asks (in Nynorsk) whether Dr Maria Helena Sousa Carvalho's diploma is authentic "
            "and whether she is in good standing",
        )
        out("      as written at the sender:")
        _show_renderings(out, renderings_for(catalogues, request, ["nn"], {}, pending=()))
        for free in free_texts(request):
            out(f"        free text [{free.lang}] with {free.field}: {free.text}")
        receipt = await no.submit(no.sign(to_xml(request)))
        out.step("NO node", _receipt_line(receipt))

        pulled = await pt.pull(wait=10)
        for delivery in pulled.deliveries:
            _show_delivery(out, "PT-OMD", delivery)
        cursor_pt = pulled.cursor

        acceptance = doctor_acceptance(request, datetime.now(UTC))
        receipt = await pt.submit(pt.sign(to_xml(acceptance)))
        out.step("PT-OMD", f"accepts; reply by {acceptance.agreed_reply_date}")
        out.step("PT node", _receipt_line(receipt))
        answer = doctor_answer(request, datetime.now(UTC))
        out.step("PT-OMD", "answers: diploma authentic, legally established, no sanctions")
        out("      as written at the sender:")
        _show_renderings(out, renderings_for(catalogues, answer, ["pt"], {}, pending=()))
        receipt = await pt.submit(pt.sign(to_xml(answer)))
        out.step("PT node", _receipt_line(receipt))

        cursor_no = 0
        seen = 0
        while seen < 2:
            pulled = await no.pull(after=cursor_no, wait=10)
            for delivery in pulled.deliveries:
                _show_delivery(out, "NO-HELSEDIR", delivery)
            seen += len(pulled.deliveries)
            cursor_no = pulled.cursor
        closure = doctor_closure(request, answer.header.document_id, datetime.now(UTC))
        receipt = await no.submit(no.sign(to_xml(closure)))
        out.step("NO-HELSEDIR", "accepts the answer and closes the exchange")
        out.step("NO node", _receipt_line(receipt))
        await no.pull(after=cursor_no)  # acknowledge what NO-HELSEDIR received
        pulled = await pt.pull(after=cursor_pt, wait=10)
        for delivery in pulled.deliveries:
            _show_delivery(out, "PT-OMD", delivery)
        await pt.pull(after=pulled.cursor)

        # Each node's record holds the stages of both nodes (it asks its peer for its half),
        # so the two records are the same: show the requester's, and the responder's state.
        state, stages = await no.tracking(EXCHANGE_ID)
        out()
        out(
            f"Tracking record at node NO (exchange {EXCHANGE_ID}, state {state}; "
            "stages observed by both nodes):"
        )
        for code, at, node, message_id in stages:
            out(f"  {at}  {node}  {code:18} {message_id or ''}")
        pt_state, pt_stages = await pt.tracking(EXCHANGE_ID)
        same = "the same stages" if sorted(pt_stages) == sorted(stages) else "other stages"
        out(f"Tracking record at node PT: state {pt_state}, {same} ({len(pt_stages)}).")
        await _late_exchange(out, clock, nodes, setups, no, pt)
    finally:
        await no.close()
        await pt.close()
        for service in running:
            await service.stopService()


def _register_coordinators(setups: dict[str, Any], base: Path) -> None:
    """Each country's national coordinator, with its own client certificate (before start)."""
    from gateway.core.coordinators import Coordinator, Scope
    from gateway.keystore import issue_national_certificate
    from gateway.storage.coordinators import CoordinatorRegistry
    from gateway.testbed.nodes import NationalCredentials

    for country, (coordinator_id, name) in COORDINATORS.items():
        setup = setups[country]
        issued = issue_national_certificate(
            setup.node_dir, coordinator_id, base / f"coordinator-{coordinator_id}", coordinator=True
        )
        CoordinatorRegistry(setup.node_dir).add(Coordinator(coordinator_id, name, Scope.NATIONAL))
        setup.authorities[coordinator_id] = NationalCredentials(
            coordinator_id, issued.key_path, issued.certificate_path
        )


async def _received(out: _Out, who: str, system: Any, cursor: int, until: str) -> int:
    """Print what ``who`` pulls until a ``until`` document came; the cursor."""
    from gateway.core.documents import read_exchange_document
    from gateway.core.xmlparse import parse_xml

    seen: list[str] = []
    while until not in seen:
        pulled = await system.pull(after=cursor, wait=10)
        for delivery in pulled.deliveries:
            document: Any = read_exchange_document(parse_xml(delivery.document))
            seen.append(delivery.document_type)
            sender = f"from {document.header.sender}"
            extra = ""
            if delivery.document_type == "Escalation":
                extra = f" (reason {document.reason}, coordinator {document.coordinator})"
            elif delivery.document_type.startswith("Coordinator"):
                sender = f"from coordinator {document.coordinator}"
                if document.note is not None:
                    extra = f" [{document.note.lang}] “{document.note.text}”"
            out.step(
                who,
                f"received {delivery.document_type} {sender}{extra} "
                f"(delivered and signed by node {delivery.issuer_node})",
            )
        cursor = int(pulled.cursor)
    return cursor


async def _late_exchange(
    out: _Out, clock: Any, nodes: dict[str, Any], setups: dict[str, Any], no: Any, pt: Any
) -> None:
    """A request Portugal does not accept in time: reminded, escalated, coordinated, answered."""
    from datetime import timedelta

    from twisted.internet import reactor

    from gateway.core.coordination import CoordinatorReminder
    from gateway.core.docparts import Header
    from gateway.core.docxml import LocalizedText
    from gateway.core.kpi import Period
    from gateway.core.ns import DOC_NS
    from gateway.core.xmlparse import parse_xml
    from gateway.testbed import NationalSystem, doctor_acceptance, doctor_answer, doctor_request

    start = clock.now()

    def day() -> str:
        elapsed = (clock.now() - start) / timedelta(days=1)
        return f"day {elapsed:4.1f}"

    async def deadlines(text: str, delta: timedelta) -> None:
        clock.advance(delta)
        out()
        out(f"-- simulated clock: {day()} ({clock.now():%Y-%m-%d %H:%M} UTC): {text}")
        sent = await nodes["NO"].deadlines.run_once()
        out.step("NO node", f"deadline check: {sent} node-signed document(s) sent")

    koord = {c: NationalSystem(reactor, setups[c], i) for c, (i, _) in COORDINATORS.items()}
    try:
        out()
        out(f"A late exchange ({LATE_EXCHANGE_ID}), on a simulated clock both nodes share:")
        request = doctor_request(LATE_EXCHANGE_ID, "NO-HELSEDIR", "PT-OMD", clock.now())
        await no.submit(no.sign(to_xml(request)))
        exchange = await nodes["NO"].db.run_txn(_exchange_txn, LATE_EXCHANGE_ID)
        out.step(
            "NO-HELSEDIR",
            f"asks again ({day()}); acceptance due {exchange.acceptance_due_at:%Y-%m-%d %H:%M}, "
            f"reply by {request.requested_reply_date}",
        )
        cursor_pt = await _received(out, "PT-OMD", pt, 0, "Request")
        await pt.pull(after=cursor_pt)
        out.step("PT-OMD", "does not accept it (on leave; nobody acts)")

        await deadlines("two days before the acceptance deadline", timedelta(days=5, hours=1))
        cursor_pt = await _received(out, "PT-OMD", pt, cursor_pt, "Reminder")
        await deadlines("the acceptance deadline has passed", timedelta(days=2))
        cursor_pt = await _received(out, "PT-OMD", pt, cursor_pt, "Reminder")
        await deadlines("overdue by the 3-day grace period: escalation", timedelta(days=3))
        cursor_pt = await _received(out, "PT-OMD", pt, cursor_pt, "Escalation")
        await _received(out, "NO-KOORD", koord["NO"], 0, "Escalation")
        cursor_koord = await _received(out, "PT-KOORD", koord["PT"], 0, "Escalation")
        await koord["PT"].pull(after=cursor_koord)

        out()
        out(f"-- the coordinators step in ({day()})")
        path = "/api/v1/coordination/exchanges?view=escalated"
        answer = await koord["PT"].client.get(koord["PT"].url(path))
        for item in parse_xml(answer.body).iter(f"{{{DOC_NS}}}Exchange"):
            out.step(
                "PT-KOORD",
                f"lists escalated: {item.get('id')} {item.get('state')}, responder "
                f"{item.get('responder')}, {item.get('overdue')} deadline passed, "
                f"{item.get('escalations')} escalation(s)",
            )
        # The requester's coordinator reminds the responder, with a note it reads in its language.
        note = LocalizedText("Vi ber om at førespurnaden vert akseptert og svara på snarast.", "nn")
        header = Header(
            LATE_EXCHANGE_ID,
            f"NO-KOORD:{LATE_EXCHANGE_ID}-reminder",
            "NO-HELSEDIR",
            "PT-OMD",
            clock.now(),
        )
        signed = koord["NO"].sign(to_xml(CoordinatorReminder(header, "NO-KOORD", note)))
        answer = await koord["NO"].client.post(
            koord["NO"].url("/api/v1/coordination/documents"), signed
        )
        receipt = koord["NO"].check_receipt(answer.body, signed)
        out.step("NO-KOORD", f"reminds PT-OMD, with a note in Nynorsk; {_receipt_line(receipt)}")
        cursor_pt = await _received(out, "PT-OMD", pt, cursor_pt, "CoordinatorReminder")
        await pt.pull(after=cursor_pt)

        clock.advance(timedelta(days=1))
        out()
        out(f"-- {day()}: PT-OMD acts")
        acceptance = doctor_acceptance(request, clock.now())
        await pt.submit(pt.sign(to_xml(acceptance)))
        out.step("PT-OMD", f"accepts (late); reply by {acceptance.agreed_reply_date}")
        answer_doc = doctor_answer(request, clock.now())
        await pt.submit(pt.sign(to_xml(answer_doc)))
        out.step("PT-OMD", "answers")
        cursor_no = 0
        seen: list[str] = []
        while "Answer" not in seen:
            pulled = await no.pull(after=cursor_no, wait=10)
            seen += [d.document_type for d in pulled.deliveries]
            cursor_no = pulled.cursor
        await no.pull(after=cursor_no)
        out.step(
            "NO-HELSEDIR", "received the Acceptance and the Answer: the late exchange is answered"
        )

        period = Period(start - timedelta(days=1), clock.now() + timedelta(seconds=1))
        out()
        out("Performance figures of PT-OMD for both requests (imi-gateway kpi; docs/kpi.md):")
        for country in ("NO", "PT"):
            report = await nodes[country].kpi.report(period)
            for row in report.rows:
                out(
                    f"  at node {country}: {row.authority} {row.area}: {row.requests} requests, "
                    f"accepted within 7 days {row.accepted_within_7_days}/"
                    f"{row.acceptance_counted}, {row.average_days_to_answer:.2f} days to answer "
                    f"on average, {row.escalations} escalation(s)"
                )
    finally:
        for system in koord.values():
            await system.close()


def _exchange_txn(conn: Any, exchange_id: str) -> Any:
    from gateway.storage.exchanges import exchange_txn

    return exchange_txn(conn, exchange_id)


def _run_console(args: argparse.Namespace) -> int:
    from gateway.commands._demo_console import play_console_demo, stop_all

    out = _Out(sys.stdout)
    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="imi-demo-"))
    if args.keep:
        base.mkdir(parents=True, exist_ok=False)
    out(f"IMI gateway demo with the admin consoles (in {base})")
    failure: list[BaseException] = []
    from twisted.internet import reactor
    from twisted.internet.defer import ensureDeferred

    services: list[Any] = []

    def begin() -> None:
        d = ensureDeferred(play_console_demo(base, out, reactor))
        d.addCallback(services.extend)

        def failed(f: Any) -> None:
            failure.append(f.value)
            reactor.stop()  # type: ignore[attr-defined]

        d.addErrback(failed)

    # Ctrl-C (SIGINT) or SIGTERM stops the reactor; both nodes stop first.
    reactor.addSystemEventTrigger("before", "shutdown", lambda: stop_all(services))  # type: ignore[attr-defined]
    reactor.callWhenRunning(begin)  # type: ignore[attr-defined]
    try:
        reactor.run()  # type: ignore[attr-defined]
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    if failure:
        raise failure[0]
    out("Stopped both nodes.")
    return 0


def _run(args: argparse.Namespace) -> int:
    if args.console:
        return _run_console(args)
    out = _Out(sys.stdout)
    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="imi-demo-"))
    if args.keep:
        base.mkdir(parents=True, exist_ok=False)
    out(f"IMI gateway demo: Norway asks Portugal about a doctor's diploma (in {base})")
    failure: list[BaseException] = []

    def main(_reactor: Any) -> Any:
        from twisted.internet.defer import ensureDeferred

        d = ensureDeferred(_play(base, out))
        d.addErrback(lambda f: failure.append(f.value))
        return d

    try:
        _react(main)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    if failure:
        raise failure[0]
    out()
    out("Demo finished: the exchange was requested, accepted, answered and closed; the late one")
    out("was reminded, escalated, taken up by the coordinator and answered.")
    return 0


def _react(main: Any) -> None:
    """Run ``main(reactor)`` to completion on the global reactor (without sys.exit)."""
    from twisted.internet import reactor

    def start() -> None:
        d = main(reactor)
        d.addBoth(lambda _: reactor.stop())  # type: ignore[attr-defined]

    reactor.callWhenRunning(start)  # type: ignore[attr-defined]
    reactor.run()  # type: ignore[attr-defined]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="two nodes on loopback play one IMI exchange (Norway asks Portugal)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--keep",
        metavar="DIR",
        help="create the node directories in DIR (must not exist) and keep them afterwards",
    )
    parser.add_argument(
        "--console",
        action="store_true",
        help=(
            "keep both nodes running with their admin consoles and sample data (a dead letter, "
            "a closed, a disputed and a late escalated exchange); print each console's address "
            "and first logins; Ctrl-C stops (docs/console.md)"
        ),
    )
    parser.set_defaults(func=_run)
