"""docs/kpi.md runs as written: its ``imi-gateway kpi`` commands print what the guide shows.

The guide's example node ``node-pt`` holds four requests to Portuguese
authorities from March 2026 (seeded here as the pipeline stores them:
exchange rows with their milestones and deadlines, and the message rows
with each document's signed creation time). Every ```sh block runs in
order; the ```text or ```json block after it is its exact output.
"""

from __future__ import annotations

import json
import re
import shlex
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert
from sqlalchemy.engine import Connection

from gateway import cli
from gateway.commands.queue import _database
from gateway.storage.tables import exchanges, messages
from gateway.testbed import setup_nodes

DOC = Path(__file__).resolve().parents[1] / "docs" / "kpi.md"
T = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)

#: exchange id, responder, area, state, accepted, answered, reply due (agreed), documents.
EXAMPLE = [
    ("NO-HELSEDIR:KPI-1", "PT-OMD", "PQD", "answered", 3, 5, 11, []),
    ("NO-HELSEDIR:KPI-2", "PT-OMD", "PQD", "answered", 11, 14, 13, [("Escalation", 10.1)]),
    (
        "NO-HELSEDIR:KPI-3",
        "PT-OMD",
        "PQD",
        "disputed",
        None,
        None,
        None,
        [("Escalation", 10.1), ("Dispute", 10.2)],
    ),
    ("NO-HELSEDIR:KPI-4", "PT-DGAE", "SD", "answered", 19, 21, 30, []),
]


def seed_example_txn(conn: Connection) -> None:
    """The guide's four requests, as the pipeline stores them on node PT."""
    for n, (xid, responder, area, state, acc, ans, due, docs) in enumerate(EXAMPLE):
        requested = T if n < 3 else T + 18 * DAY
        conn.execute(
            insert(exchanges).values(
                exchange_id=xid,
                requester_authority="NO-HELSEDIR",
                responder_authority=responder,
                requester_node="NO",
                responder_node="PT",
                area=area,
                question_set="DOCTOR",
                catalogue_version="1",
                state=state,
                created_at=requested,
                updated_at=requested,
                acceptance_due_at=requested + 7 * DAY,
                reply_due_at=T + due * DAY if due else requested + 14 * DAY,
                reply_date_agreed=due is not None,
                accepted_at=T + acc * DAY if acc else None,
                answered_at=T + ans * DAY if ans else None,
            )
        )
        for i, (kind, day) in enumerate([("Request", (requested - T) / DAY), *docs]):
            conn.execute(
                insert(messages).values(
                    message_id=f"{xid}-{i}",
                    exchange_id=xid,
                    direction="in",
                    document_type=kind,
                    sender_authority="NO-HELSEDIR",
                    receiver_authority=responder,
                    peer_node="NO",
                    sha256="0" * 64,
                    document_created_at=T + day * DAY,
                    stored_at=T + day * DAY,
                )
            )


def seed(node_dir: Path) -> None:
    db, _ = _database(str(node_dir))
    try:
        db.run_txn_sync(seed_example_txn)
    finally:
        db.engine.dispose()


def examples() -> list[tuple[str, str, str]]:
    """(command, answer kind, answer) for every ```sh block of the guide."""
    text = DOC.read_text(encoding="utf-8")
    found = re.findall(r"^```(\w*)\n(.*?)^```", text, flags=re.S | re.M)
    out = []
    for i, (kind, body) in enumerate(found):
        if kind == "sh":
            answer_kind, answer = found[i + 1] if i + 1 < len(found) else ("", "")
            out.append((body.strip(), answer_kind, answer))
    return out


def test_the_guide_s_kpi_commands_print_what_it_shows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    node_dir = setup_nodes(tmp_path, {"PT": ["PT-OMD", "PT-DGAE"]})["PT"].node_dir
    seed(node_dir)
    ran = examples()
    assert len(ran) >= 3
    for command, kind, answer in ran:
        argv = shlex.split(command.replace("node-pt", str(node_dir)))
        assert argv[0] == "imi-gateway"
        assert cli.main(argv[1:]) == 0, command
        out = capsys.readouterr().out
        if kind == "json":
            assert json.loads(out) == json.loads(answer), command
        else:
            assert kind == "text", command
            assert out.strip() == answer.strip(), (command, out)
