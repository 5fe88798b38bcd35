"""``imi-gateway bench purge``: seeding works at tiny scale and the command explains itself.

The full benchmark (two node processes, minutes) is run by hand and its
figures recorded in docs/performance.md; timings are never asserted.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.benchmarks.exchange.load import presign
from gateway.benchmarks.exchange.options import AUTHORITIES, NO_AUTHORITY, PT_AUTHORITY
from gateway.benchmarks.purge import _signer, erased_count, seed_expired
from gateway.cli import main
from gateway.config import RetentionConfig
from gateway.core.dataprotect import Sealer
from gateway.keystore import load_data_kek
from gateway.storage.db import Database
from gateway.storage.exchanges import exchanges_due_for_erasure_txn
from gateway.storage.messages import load_bodies_txn
from gateway.storage.retention import erase_exchanges_txn
from gateway.testbed import setup_nodes


def test_seeded_exchanges_are_due_sealed_with_their_own_keys_and_erasable(tmp_path: Path) -> None:
    setups = setup_nodes(tmp_path, AUTHORITIES)
    signers = {a: _signer(setups[a[:2]].authorities[a]) for a in (NO_AUTHORITY, PT_AUTHORITY)}
    sample = presign("S:", 1, signers[NO_AUTHORITY], signers[PT_AUTHORITY], datetime.now(UTC))[0]
    node_dir = setups["PT"].node_dir
    closed = datetime.now(UTC) - timedelta(minutes=30)
    seed_expired(node_dir, 25, [sample.request, sample.acceptance, sample.answer], closed)

    db = Database(f"sqlite:///{node_dir / 'gateway.sqlite3'}", reactor=None, inline=True)
    sealer = Sealer(load_data_kek(node_dir))
    policy = RetentionConfig(after_closure="1 minute").policy(None)
    now = datetime.now(UTC)
    due = db.run_txn_sync(
        exchanges_due_for_erasure_txn,
        closed_before=policy.after_closure.before(now),
        created_before=policy.if_never_closed.before(now),
        limit=100,
    )
    assert len(due) == 25
    first = f"{due[0]}-1"
    assert db.run_txn_sync(load_bodies_txn, [first], sealer=sealer) == {first: sample.request}
    erased = db.run_txn_sync(erase_exchanges_txn, due[:10], now=now, node="PT")
    assert len(erased) == 10
    db.engine.dispose()
    assert erased_count(node_dir) == 10


def test_bench_purge_help_explains_the_benchmark(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["bench", "purge", "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "100,000" in out and "--batch-size" in out and "--quick" in out
