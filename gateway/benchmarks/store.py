"""CPU cost of the storing transactions alone: ``python -m gateway.benchmarks.store``.

A micro-benchmark for the database side of the hot path, without TLS,
HTTP, signatures or a second process: it times (process CPU time, so a
busy machine disturbs it less than wall time) ``submit_messages_txn`` with
1 and 10 submissions per transaction and ``store_inbound_envelope_txn``
with envelopes of 1 and 10 documents, on a fresh SQLite file in WAL mode
with ``synchronous=NORMAL`` (the disk wait is not CPU), the audit log on.
Each document opens its own exchange, as a Request does. It only uses the
storage API, so the same file measures an older checkout too (run it with
that checkout's interpreter). It reports figures; it never fails on them.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from twisted.internet import reactor

from gateway.core import audit, dataprotect
from gateway.storage.db import Database
from gateway.storage.messages import store_inbound_envelope_txn, submit_messages_txn
from gateway.storage.model import ExchangeInfo, InboundEnvelope, InboundPayload, Submission

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
BODY = b"<Request>" + b"x" * 2400 + b"</Request>"  # the size of the bench's signed documents


def _exchange(exchange_id: str, requester: str, responder: str) -> ExchangeInfo:
    return ExchangeInfo(
        exchange_id=exchange_id,
        requester_authority=requester,
        responder_authority=responder,
        requester_node=requester[:2],
        responder_node=responder[:2],
        area="PQD",
        question_set="PQD-GENERAL",
        catalogue_version="2026.1",
    )


def _submission(key: audit.AuditKey) -> Submission:
    local = uuid.uuid4().hex
    return Submission(
        message_id=f"NO-HELSEDIR:{local}",
        exchange=_exchange(f"NO-HELSEDIR:EX-{local}", "NO-HELSEDIR", "PT-OMD"),
        document_type="Request",
        sender_authority="NO-HELSEDIR",
        receiver_authority="PT-OMD",
        peer_node="PT",
        document_created_at=NOW,
        body=BODY,
        receipt=b"<Receipt/>" * 60,
        digest=key.digest(BODY),
    )


def _payload(key: audit.AuditKey) -> InboundPayload:
    local = uuid.uuid4().hex
    return InboundPayload(
        message_id=f"PT-OMD:{local}",
        exchange=_exchange(f"PT-OMD:EX-{local}", "PT-OMD", "NO-HELSEDIR"),
        document_type="Request",
        sender_authority="PT-OMD",
        receiver_authority="NO-HELSEDIR",
        document_created_at=NOW,
        body=BODY,
        digest=key.digest(BODY),
    )


def _timed(count: int, per: int, run: Callable[[int], None]) -> float:
    """Microseconds of CPU per document for ``count`` documents, ``per`` per transaction."""
    started = time.process_time()
    for _ in range(count // per):
        run(per)
    return 1e6 * (time.process_time() - started) / (count // per * per)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--documents", type=int, default=2000, help="per measurement")
    parser.add_argument("--rounds", type=int, default=2, help="each measurement, alternated")
    args = parser.parse_args(argv)
    key = audit.AuditKey.generate()
    sealer = dataprotect.Sealer(dataprotect.new_kek())
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(
            f"sqlite:///{Path(tmp) / 'node.db'}", reactor=reactor, sqlite_synchronous="NORMAL"
        )
        db.migrate()

        def submit(per: int) -> None:
            batch = [_submission(key) for _ in range(per)]
            db.run_txn_sync(submit_messages_txn, batch, sealer=sealer, now=NOW, node="NO")

        def receive(per: int) -> None:
            envelope = InboundEnvelope(
                envelope_id=f"env-{uuid.uuid4()}",
                peer_node="PT",
                sha256="0" * 64,
                receipt=b"<Receipt/>" * 60,
                payloads=tuple(_payload(key) for _ in range(per)),
            )
            db.run_txn_sync(store_inbound_envelope_txn, envelope, sealer=sealer, now=NOW, node="NO")

        cases = [
            ("submit_messages_txn, 1 per transaction", submit, 1),
            ("submit_messages_txn, 10 per transaction", submit, 10),
            ("store_inbound_envelope_txn, 1 per envelope", receive, 1),
            ("store_inbound_envelope_txn, 10 per envelope", receive, 10),
        ]
        results: dict[str, list[float]] = {name: [] for name, _, _ in cases}
        for _ in range(args.rounds):
            for name, run, per in cases:
                results[name].append(_timed(args.documents, per, run))
        db.stop()
    print("CPU per stored document (us), SQLite, audit log on; best of", args.rounds)
    for name, figures in results.items():
        print(f"  {name:46s} {min(figures):7.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
