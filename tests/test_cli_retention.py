"""``imi-gateway retention NODE_DIR``: what is due for erasure and when, metadata only."""

from __future__ import annotations

import json
import pathlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from gateway import cli
from gateway import config as cfg
from gateway import keystore as ks
from gateway.core.dataprotect import Sealer, new_kek
from gateway.storage.db import Database
from gateway.storage.exchanges import set_exchange_state_txn
from gateway.storage.messages import submit_message_txn
from tests.storage.conftest import NODE, exchange_info, submission


@pytest.fixture(autouse=True)
def _fresh_key_cache() -> object:
    ks.clear_key_cache()
    yield
    ks.clear_key_cache()


def test_retention_lists_due_times_soonest_first_and_marks_overdue_ones(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    node = tmp_path / "no"
    assert cli.main(["init", str(node), "--country", "NO"]) == 0
    toml = node / cfg.CONFIG_FILE
    text = toml.read_text()
    assert '# after_closure = "6 months"' in text
    toml.write_text(
        text.replace('# after_closure = "6 months"', 'after_closure = "30 minutes"').replace(
            '# blocked_after = "3 months"', 'blocked_after = "20 minutes"'
        )
    )
    now = datetime.now(UTC)
    db = Database(cfg.load_config(node).database.url, reactor=None, inline=True)
    db.migrate()
    sealer = Sealer(new_kek())
    for exchange_id, opened, closed in [
        ("EX-OVERDUE", now - timedelta(hours=2), now - timedelta(hours=1)),
        ("EX-SOON", now - timedelta(hours=2), now - timedelta(minutes=10)),
        ("EX-OPEN", now - timedelta(hours=2), None),
    ]:
        sub = replace(
            submission(f"M-{exchange_id}", exchange_id=exchange_id),
            exchange=exchange_info(exchange_id, area="services"),
        )
        db.run_txn_sync(submit_message_txn, sub, sealer=sealer, now=opened, node=NODE)
        if closed is not None:
            db.run_txn_sync(
                set_exchange_state_txn, exchange_id, "closed", now=closed, node=NODE, closed=True
            )
    db.engine.dispose()
    capsys.readouterr()

    assert cli.main(["retention", str(node), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["exchange_id"], r["area"], r["overdue"]) for r in rows] == [
        ("EX-OVERDUE", "services", True),
        ("EX-SOON", "services", False),
        ("EX-OPEN", "services", False),
    ]
    assert rows[0]["due_at"] == (now - timedelta(minutes=30)).isoformat()
    assert rows[2]["closed_at"] is None
    # The blocked stage: due 20 minutes after closure, none for an open exchange.
    assert rows[1]["blocking_due_at"] == (now + timedelta(minutes=10)).isoformat()
    assert rows[1]["blocked_at"] is None and rows[2]["blocking_due_at"] is None

    assert cli.main(["retention", str(node), "--due-only"]) == 0
    out = capsys.readouterr().out
    assert "EX-OVERDUE" in out and "OVERDUE" in out and "EX-SOON" not in out
    assert "blocking due" in out
    assert "Kari Nordmann" not in out
