"""The backup drill of docs/backup.md: back up a node under traffic, destroy it, restore it.

The sending node (NO) runs as a real process; its peer (PT) in this
process. A national system streams documents to NO; when a number of
receipts have come back, ``imi-gateway backup`` copies NO's node directory
and database while the stream goes on. Then NO is destroyed: SIGKILL, and
its node directory deleted. ``imi-gateway restore`` puts the backup into a
new, empty directory at the same place, and NO starts from it. As the
guide tells national systems, the national system resubmits every document
it submitted since the backup began (here: all of them). The drill proves:

* every document acknowledged before the backup gets its original receipt
  again (it is in the backup); every other one is accepted (again);
* PT's national system gets every document exactly once, each exchange in
  order: nothing lost, nothing duplicated, message ids unique;
* the node's JSON log (both runs) holds none of the subject's personal data.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest_twisted
from twisted.internet import reactor, threads

from gateway.testbed import NationalSystem, setup_nodes
from tests.nodes import AUTHORITIES, start_node
from tests.service.bed import message_id_of, pull_until, requester_streams, submit, submit_streams
from tests.service.test_kill_restart import QUICK_RETRIES, NodeProcess

EXCHANGES = 24  # x 4 documents
BACKUP_AFTER_RECEIPTS = 30
PERSONAL_DATA = ("Maria Helena", "Sousa Carvalho", "1988-05-04")


def _gateway(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args], capture_output=True, text=True, timeout=300
    )


@pytest_twisted.ensureDeferred
async def test_a_node_restored_from_a_backup_taken_under_traffic_loses_and_duplicates_nothing(
    tmp_path: Path,
) -> None:
    setups = setup_nodes(tmp_path, AUTHORITIES, extra_config={"NO": QUICK_RETRIES})
    node_dir = setups["NO"].node_dir
    backup_dir = tmp_path / "backups" / "no-1"
    pt_node = start_node(setups["PT"])
    pt = NationalSystem(reactor, setups["PT"], "PT-OMD")
    first = NodeProcess(setups["NO"])
    second = NodeProcess(setups["NO"])
    systems: list[NationalSystem] = [pt]
    try:
        await first.start(tmp_path)
        no = NationalSystem(reactor, setups["NO"], "NO-HELSEDIR")
        systems.append(no)
        streams = requester_streams(no, "PT-OMD", "IMI-NO-DRILL", EXCHANGES)
        everything = [m for s in streams for m in s.message_ids]
        signed = {m: body for s in streams for m, body in s.documents}
        receipts: dict[str, bytes] = {}
        before_backup: dict[str, bytes] = {}
        backups: list[object] = []

        def maybe_back_up(_message_id: str) -> None:
            if len(receipts) == BACKUP_AFTER_RECEIPTS and not backups:
                before_backup.update(receipts)
                # In another process, while this reactor keeps the traffic flowing.
                backups.append(
                    threads.deferToThread(_gateway, "backup", str(node_dir), str(backup_dir))
                )

        await submit_streams(
            no, streams, concurrency=6, receipts=receipts, on_receipt=maybe_back_up
        )
        done = await backups[0]  # type: ignore[misc]
        assert done.returncode == 0, done.stderr
        assert BACKUP_AFTER_RECEIPTS <= len(before_backup) < len(everything)

        # Destroy the node: killed, its whole directory gone.
        first.kill()
        await first.ended
        shutil.rmtree(node_dir)
        restored = _gateway("restore", str(backup_dir), str(node_dir))
        assert restored.returncode == 0, restored.stderr

        await second.start(tmp_path)
        no = NationalSystem(reactor, setups["NO"], "NO-HELSEDIR")
        systems.append(no)
        for message_id, receipt in before_backup.items():  # in the backup: original receipts
            assert await submit(no, signed[message_id]) == receipt, message_id
        # The national system resubmits everything it submitted since the backup began.
        again: dict[str, bytes] = {}
        await submit_streams(no, streams, concurrency=6, receipts=again)
        assert sorted(again) == sorted(everything)

        cursor, deliveries = await pull_until(pt, len(everything))
        extra = await pt.pull(after=cursor, wait=0)
        assert extra.deliveries == []
        delivered = [message_id_of(d) for d in deliveries]
        assert len(delivered) == len(set(delivered)), "a document was delivered twice"
        assert set(delivered) == set(everything), "a document was lost"
        assert all(d.document == signed[message_id_of(d)] for d in deliveries)
        for stream in streams:
            ids = set(stream.message_ids)
            assert [m for m in delivered if m in ids] == stream.message_ids
        counts = await pt_node.parts.db.run_txn(
            lambda conn: conn.exec_driver_sql(
                "SELECT count(*), count(DISTINCT message_id) FROM deliveries"
            ).one()
        )
        assert tuple(counts) == (len(everything), len(everything))
        await second.stop()
    finally:
        for system in systems:
            await system.close()
        await first.stop()
        await second.stop()
        await pt_node.stop()
    log = json.dumps(first.events + second.events)
    assert second.events and all("message" in e for e in second.events)
    for value in PERSONAL_DATA:
        assert value not in log
