"""A coordinator works from the console (Debian's Chromium), across two real node processes.

The console bed's node NO runs with its console; here its peer PT starts too
(``peer`` fixture). PT-OMD disputes a request of NO-HELSEDIR; the Norwegian
national coordinator (console user kari, with a console key) finds it on the
coordinator desk, records the outcome, and sends a reminder that PT's node
verifies and tracks. Screenshots go to docs/console/.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gateway.core.certs import load_pem_certificate, load_pem_private_key
from gateway.core.coordination import Dispute
from gateway.core.docparts import Header
from gateway.core.documents import to_xml
from gateway.core.signing import Signer
from gateway.storage.audit import audit_log_txn
from gateway.storage.db import Database
from gateway.storage.errors import ExchangeNotFound
from gateway.storage.exchanges import exchange_txn
from gateway.storage.tracking import tracking_events_txn
from tests.console.bed import COORDINATOR, ConsoleBed, start_node_process, stop_process
from tests.console.conftest import login, shot
from tests.waiting import until_sync

EXCHANGE = "NO-HELSEDIR:2026-000950"


def _read(node_dir: Path, txn: Any, *args: Any) -> Any:
    db = Database(f"sqlite:///{node_dir / 'gateway.sqlite3'}", reactor=None, threads=1)
    try:
        return db.run_txn_sync(txn, *args)
    finally:
        db.engine.dispose()


def _state(node_dir: Path, exchange_id: str) -> str | None:
    try:
        return str(_read(node_dir, exchange_txn, exchange_id).state)
    except ExchangeNotFound:
        return None


def _stages(node_dir: Path, exchange_id: str) -> list[tuple[str, str | None]]:
    return [(str(e.stage), e.message_id) for e in _read(node_dir, tracking_events_txn, exchange_id)]


@pytest.fixture(scope="module")
def peer(bed: ConsoleBed) -> Iterator[Path]:
    """Node PT runs (after the bed made its dead letter); its node directory."""
    setup = bed.setup.bed["PT"]
    process: subprocess.Popen[bytes]
    process, _, _ = start_node_process(setup, bed.base)
    try:
        yield setup.node_dir
    finally:
        stop_process(process)


def _dispute_as_pt_omd(bed: ConsoleBed, exchange_id: str) -> None:
    import http.client
    import ssl

    from gateway.keystore import node_paths

    setup = bed.setup.bed["PT"]
    creds = setup.authorities["PT-OMD"]
    signer = Signer(
        load_pem_private_key(creds.key_path.read_bytes()),
        load_pem_certificate(creds.certificate_path.read_bytes()),
    )
    header = Header(
        exchange_id, f"PT-OMD:{uuid.uuid4().hex}", "PT-OMD", "NO-HELSEDIR", datetime.now(UTC)
    )
    body = signer.sign(to_xml(Dispute(header, "QUESTION_NOT_JUSTIFIED")))
    ctx = ssl.create_default_context(cafile=str(node_paths(setup.node_dir).cert("ca")))
    ctx.load_cert_chain(str(creds.certificate_path), str(creds.key_path))
    conn = http.client.HTTPSConnection("127.0.0.1", setup.api_port, context=ctx)
    try:
        conn.request("POST", "/api/v1/documents", body=body)
        answer = conn.getresponse()
        assert answer.status == 200, answer.read()[:300]
    finally:
        conn.close()


def test_a_coordinator_settles_a_dispute_and_sends_a_reminder_tracked_on_both_nodes(
    bed: ConsoleBed, peer: Path, context: Any
) -> None:
    no_dir = bed.setup.node_dir
    bed.submit_request(EXCHANGE)
    until_sync(lambda: _state(peer, EXCHANGE) == "requested", timeout=60)
    _dispute_as_pt_omd(bed, EXCHANGE)
    until_sync(lambda: _state(no_dir, EXCHANGE) == "disputed", timeout=60)

    page = context.new_page()
    login(page, bed, "kari")
    page.wait_for_url(f"{bed.url}/coordinator")
    assert COORDINATOR in page.locator("#coordinator-scope").inner_text()
    row = page.locator("#attention tbody tr", has_text=EXCHANGE)
    assert "disputed" in row.inner_text()
    page.click("#view-disputed")
    assert page.locator("#attention tbody tr", has_text=EXCHANGE).count() == 1
    shot(page, "coordinator")

    page.click(f"#attention a:text('{EXCHANGE}')")
    page.wait_for_url(f"{bed.url}/coordinator/{EXCHANGE}")
    assert page.locator("#state").inner_text().startswith("disputed")
    assert page.locator("#form-reminder").count() == 0  # not while disputed
    page.select_option("#form-settle select[name=decision]", "REQUEST_JUSTIFIED")
    page.fill("#form-settle textarea[name=note]", "Spørsmålet er nødvendig for autorisasjonen.")
    page.click("#do-settle")
    page.wait_for_url(f"**/coordinator/{EXCHANGE}?flash=flash.coordinator_settle*")
    assert page.locator("#state").inner_text() == "requested"
    until_sync(lambda: _state(peer, EXCHANGE) == "requested", timeout=60)

    page.fill("#form-reminder textarea[name=note]", "Vi ventar på svar frå PT-OMD.")
    page.click("#do-reminder")
    page.wait_for_url(f"**/coordinator/{EXCHANGE}?flash=flash.coordinator_reminder*")
    assert page.locator(".flash").inner_text() == (
        "The reminder is signed, recorded and on its way to the other node."
    )
    reminders = [m for stage, m in _stages(no_dir, EXCHANGE) if stage == "reminded"]
    assert len(reminders) == 1 and reminders[0] and reminders[0].startswith(f"{COORDINATOR}:")
    assert "reminded" in page.locator("#timeline strong").all_inner_texts()
    shot(page, "coordinator-exchange")
    # PT's node verified the coordinator's signature, tracked and delivered the reminder
    until_sync(lambda: ("reminded", reminders[0]) in _stages(peer, EXCHANGE), timeout=60)

    entries = [
        e
        for e in _read(no_dir, audit_log_txn)
        if e.event == "CONSOLE_CHANGE" and e.actor == "console:kari"
    ]
    subjects = [e.message_id for e in entries]
    assert any(s.startswith(f"coordinator-settle:{EXCHANGE}:") for s in subjects)
    assert f"coordinator-reminder:{EXCHANGE}:{reminders[0]}" in subjects

    # Without the console key: the coordinator downloads the unsigned note, signs it with its
    # own key (as imi-gateway sign does) and uploads it; the same desk checks and sends it.
    token = page.locator("#form-note input[name=csrf]").get_attribute("value")
    prepared = context.request.post(
        f"{bed.url}/coordinator/prepare",
        form={
            "csrf": token,
            "exchange": EXCHANGE,
            "kind": "note",
            "note": "Sjå notatet.",
            "lang": "nn",
        },
    )
    assert prepared.status == 200 and b"<Signature" not in prepared.body()
    own = bed.base / "coordinator-no"
    signer = Signer(
        load_pem_private_key((own / f"{COORDINATOR}.key").read_bytes()),
        load_pem_certificate((own / f"{COORDINATOR}.pem").read_bytes()),
    )
    signed = signer.sign_bytes(prepared.body())
    page.set_input_files(
        "#form-upload input[type=file]",
        files=[{"name": "note.signed.xml", "mimeType": "application/xml", "buffer": signed}],
    )
    page.click("#upload")
    page.wait_for_url(f"**/coordinator/{EXCHANGE}?flash=flash.coordinator_uploaded*")
    until_sync(
        lambda: "mediation_note_added" in [stage for stage, _ in _stages(peer, EXCHANGE)],
        timeout=60,
    )

    # Outside the scope (here: unknown at this node) is refused with the code, and recorded
    answer = page.goto(f"{bed.url}/coordinator/NO-HELSEDIR:2026-999999")
    assert answer is not None and answer.status == 403
    assert "COORDINATOR_OUT_OF_SCOPE" in page.locator("main").inner_text()
