"""Provable erasure: after the retention period, no artefact of either node holds the personal data.

A unique canary (a random string) goes into every kind of personal data of
one exchange between two real nodes: the person concerned, the free text of
a question and of a reply, and an attachment (its name and content). The
exchange closes; the nodes' clock is moved past the one-minute retention
period and both retention services erase it. Then every artefact of both
nodes is searched byte for byte:

* the node directories recursively (SQLite database and its -wal, -shm and
  -journal files, keys, ports file, directory files ...);
* the log (every event of both nodes at debug level, as JSON and as text);
* the temporary directory (``TMPDIR`` points into the test's directory);
* on PostgreSQL, the whole data directory of a throwaway cluster started
  for the test (heap and TOAST files, free space, ``pg_wal``) and its log.

No file may hold the canary, in UTF-8, UTF-16 or base64 (the form in which
the signed document carries the attachment), nor its machine-translated
form. Nor may any file still hold the exchange's wrapped data key as it was
before erasure: a leftover copy would let whoever holds the key-encryption
key read the data again. Sealed bodies (ciphertext) must be gone from every
SQLite file and from PostgreSQL's WAL; PostgreSQL may keep their bytes in a
heap page's free space until it is reused, which is ciphertext without a
key (docs/data-protection.md). As a control, the same search finds every
wrapped key and sealed body before erasure.
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from sqlalchemy import select
from twisted.internet import reactor
from twisted.logger import globalLogPublisher

from gateway.commands.run import log_observer
from gateway.core.catalogue import load_catalogues
from gateway.core.docparts import Attachment, PersonConcerned, Question
from gateway.core.documents import to_xml
from gateway.core.docxml import LocalizedText
from gateway.core.errors import GatewayError
from gateway.service.runtime import ReactorClock
from gateway.storage.exchanges import exchange_data_key_txn, exchange_txn
from gateway.storage.messages import load_message_txn
from gateway.storage.tables import exchange_keys, messages
from gateway.testbed import (
    NationalSystem,
    doctor_acceptance,
    doctor_answer,
    doctor_closure,
    doctor_request,
    setup_nodes,
    start_in_process,
)
from gateway.testbed.nodes import node_stopped
from tests.nodes import AUTHORITIES, RunningNode, settled
from tests.security.pgcluster import throwaway_cluster
from tests.waiting import until

RETENTION = """
[retention]
after_closure = "1 minute"
interval_seconds = 1
"""


class SkewedClock(ReactorClock):
    """The reactor's clock, moved forward by ``offset`` seconds (retention without waiting)."""

    offset = 0.0

    def seconds(self) -> float:
        return super().seconds() + self.offset


@dataclass
class Needles:
    """Byte strings no artefact may hold after erasure, by name."""

    found: dict[str, bytes] = field(default_factory=dict)

    def add(self, name: str, value: bytes) -> None:
        self.found[name] = value


def canary_forms(canary: str, attachment: bytes) -> dict[str, bytes]:
    return {
        "canary utf-8": canary.encode(),
        "canary utf-16-le": canary.encode("utf-16-le"),
        "canary utf-16-be": canary.encode("utf-16-be"),
        "canary base64 (attachment)": base64.b64encode(attachment),
        "canary reversed (machine translation form)": canary[::-1].encode(),
    }


def files_under(*roots: Path) -> Iterator[Path]:
    for root in roots:
        for dirpath, _dirs, names in os.walk(root):
            for name in names:
                path = Path(dirpath) / name
                if path.is_file() and not path.is_symlink():
                    yield path


def search(roots: list[Path], needles: Mapping[str, bytes]) -> list[tuple[str, str]]:
    """(file, needle name) for every file under ``roots`` holding a needle."""
    hits = []
    for path in files_under(*roots):
        try:
            data = path.read_bytes()
        except (PermissionError, FileNotFoundError):  # a file removed while we walk
            continue
        for name, needle in needles.items():
            if needle in data:
                hits.append((str(path), name))
    return hits


@contextlib.contextmanager
def captured_logs(log_dir: Path) -> Iterator[list[dict[str, Any]]]:
    """Every log event, written to JSON and text files in ``log_dir`` (the node's observers)."""
    log_dir.mkdir()
    events: list[dict[str, Any]] = []
    with (
        open(log_dir / "events.json", "w", encoding="utf-8") as js,
        open(log_dir / "events.log", "w", encoding="utf-8") as txt,
    ):
        observers: list[Callable[[Any], None]] = [
            log_observer("json", "debug", js),
            log_observer("text", "debug", txt),
            events.append,
        ]
        for observer in observers:
            globalLogPublisher.addObserver(observer)
        try:
            yield events
        finally:
            for observer in observers:
                globalLogPublisher.removeObserver(observer)


@contextlib.asynccontextmanager
async def canary_nodes(
    base: Path, clock: SkewedClock, extra: Mapping[str, str]
) -> AsyncIterator[tuple[dict[str, RunningNode], dict[str, NationalSystem]]]:
    setups = setup_nodes(
        base, AUTHORITIES, extra_config={c: RETENTION + extra.get(c, "") for c in AUTHORITIES}
    )
    nodes = {}
    for country, setup in setups.items():
        service, parts = start_in_process(setup, reactor, catalogues=load_catalogues(), clock=clock)
        nodes[country] = RunningNode(setup, service, parts)
    await settled(nodes.values())
    systems = {
        a: NationalSystem(reactor, setups[a[:2]], a) for ids in AUTHORITIES.values() for a in ids
    }
    try:
        yield nodes, systems
    finally:
        for system in systems.values():
            await system.close()
        for node in nodes.values():
            if node.service.running:  # type: ignore[attr-defined]
                node_stopped(node.setup)
                await node.service.stopService()  # type: ignore[attr-defined]


async def pull_one(system: NationalSystem, after: int) -> tuple[int, Any]:
    pulled = await system.pull(after=after, wait=10, limit=1)
    assert len(pulled.deliveries) == 1, pulled
    return pulled.cursor, pulled.deliveries[0]


async def exchange_with_canary(
    systems: Mapping[str, NationalSystem], canary: str, attachment: bytes
) -> str:
    """A Request/Acceptance/Answer/Closure exchange carrying the canary; its exchange id."""
    no, pt = systems["NO-HELSEDIR"], systems["PT-OMD"]
    plain = doctor_request("IMI-CANARY-1", "NO-HELSEDIR", "PT-OMD", datetime.now(UTC))
    request = replace(
        plain,
        person=PersonConcerned(given_names=f"Maria {canary}", family_name="Sousa Carvalho"),
        questions=(
            Question(plain.questions[0].code, LocalizedText(f"Gjeld {canary} lege", "nn")),
            *plain.questions[1:],
        ),
        attachments=(Attachment(f"diploma-{canary}.txt", "text/plain", attachment),),
    )
    await no.submit(no.sign(to_xml(request)))
    cursor_pt, _ = await pull_one(pt, 0)
    await pt.submit(pt.sign(to_xml(doctor_acceptance(request, datetime.now(UTC)))))
    plain_answer = doctor_answer(request, datetime.now(UTC))
    first = plain_answer.replies[0]
    answer = replace(
        plain_answer,
        replies=(
            replace(first, free_text=LocalizedText(f"Diploma de {canary} autêntico", "pt")),
            *plain_answer.replies[1:],
        ),
    )
    await pt.submit(pt.sign(to_xml(answer)))
    cursor_no, _ = await pull_one(no, 0)
    cursor_no, _ = await pull_one(no, cursor_no)
    await no.pull(after=cursor_no)
    closure = doctor_closure(request, answer.header.document_id, datetime.now(UTC))
    await no.submit(no.sign(to_xml(closure)))
    cursor_pt, _ = await pull_one(pt, cursor_pt)
    await pt.pull(after=cursor_pt)
    exchange_id = request.header.exchange_id
    for system in (no, pt):  # both records render the content (a personal-data read)
        state, _ = await system.tracking(exchange_id)
        assert state == "closed"
    return exchange_id


async def sealed_copies(node: RunningNode, exchange_id: str) -> dict[str, bytes]:
    """The exchange's wrapped data key and sealed bodies, as stored before erasure."""

    def read(conn: Any) -> dict[str, bytes]:
        key = conn.execute(
            select(exchange_keys.c.wrapped_data_key).where(
                exchange_keys.c.exchange_id == exchange_id
            )
        ).scalar_one()
        out = {f"{node.setup.node_id} wrapped data key": bytes(key)}
        rows = conn.execute(
            select(messages.c.message_id, messages.c.body).where(
                messages.c.exchange_id == exchange_id
            )
        )
        for row in rows:
            body = bytes(row.body)
            out[f"{node.setup.node_id} sealed {row.message_id} (start)"] = body[:48]
            out[f"{node.setup.node_id} sealed {row.message_id} (middle)"] = body[
                len(body) // 2 : len(body) // 2 + 48
            ]
        return out

    copies: dict[str, bytes] = await node.parts.db.run_txn(read)
    return copies


async def erased_everywhere(nodes: Mapping[str, RunningNode], exchange_id: str) -> bool:
    for node in nodes.values():
        exchange = await node.parts.db.run_txn(exchange_txn, exchange_id)
        if not exchange.erased:
            return False
    return True


def purges_finished(events: list[dict[str, Any]]) -> int:
    fmt = "Retention purge erased {count} exchanges"
    return sum(1 for e in events if e.get("log_format") == fmt)


async def prove_erasure(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    extra: Mapping[str, str] | None = None,
    more_roots: tuple[Path, ...] = (),
    ciphertext_may_remain: bool = False,
    strict_roots: tuple[Path, ...] = (),
) -> None:
    """Run the canary exchange, erase it, search every artefact (see the module docstring).

    ``ciphertext_may_remain``: sealed bodies whose key is gone may stay in
    free space of ``more_roots`` (PostgreSQL heap pages), but never in
    ``strict_roots`` (its WAL), and no copy of a wrapped key may stay anywhere.
    """
    temp_dir = tmp_path / "tmp"
    temp_dir.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp_dir))
    monkeypatch.setenv("SQLITE_TMPDIR", str(temp_dir))
    monkeypatch.setattr(tempfile, "tempdir", None)
    canary = f"Cnry{secrets.token_hex(12)}"
    attachment = f"Diploma of {canary}, medicine, 2012\n".encode()
    bed = tmp_path / "bed"
    roots = [bed, temp_dir, tmp_path / "logs", *more_roots]
    clock = SkewedClock(reactor)
    with captured_logs(tmp_path / "logs") as events:
        async with canary_nodes(bed, clock, extra or {}) as (nodes, systems):
            exchange_id = await exchange_with_canary(systems, canary, attachment)
            copies: dict[str, bytes] = {}
            for node in nodes.values():
                copies |= await sealed_copies(node, exchange_id)
            # Control: the search finds what is there before erasure.
            assert {hit[1] for hit in search(roots, copies)} == set(copies)

            clock.offset += 120.0  # past the one-minute retention period of both nodes
            await until(lambda: purges_finished(events) >= 2, timeout=30)
            assert await erased_everywhere(nodes, exchange_id)

            keys = {name: value for name, value in copies.items() if "wrapped" in name}
            needles = canary_forms(canary, attachment) | (keys if ciphertext_may_remain else copies)
            assert search(roots, needles) == []  # the nodes still run: their live files
            assert search(list(strict_roots), copies) == []

            for node in nodes.values():  # the data key is gone: nothing unseals
                sealer = _sealer_of(node)
                with pytest.raises(GatewayError) as no_key:
                    await node.parts.db.run_txn(exchange_data_key_txn, exchange_id, sealer=sealer)
                with pytest.raises(GatewayError) as no_body:
                    await node.parts.db.run_txn(load_message_txn, f"{exchange_id}-1", sealer=sealer)
                assert no_key.value.code == no_body.value.code == "EXCHANGE_ERASED"
        # Stopped: SQLite checkpointed and closed its files; search once more.
        assert search(roots, needles) == []
    assert search(roots, needles) == []  # the log files, closed


def _sealer_of(node: RunningNode) -> Any:
    from gateway.core.dataprotect import Sealer
    from gateway.keystore import load_data_kek

    return Sealer(load_data_kek(node.setup.node_dir))


@pytest_twisted.ensureDeferred
async def test_no_artefact_of_either_sqlite_node_holds_erased_personal_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await prove_erasure(tmp_path, monkeypatch)


@pytest_twisted.ensureDeferred
async def test_no_file_of_a_postgresql_cluster_holds_erased_personal_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with throwaway_cluster("imi_no", "imi_pt") as cluster:
        extra = {
            "NO": f'[database]\nurl = "{cluster.url("imi_no")}"\n',
            "PT": f'[database]\nurl = "{cluster.url("imi_pt")}"\n',
        }
        await prove_erasure(
            tmp_path,
            monkeypatch,
            extra=extra,
            more_roots=(cluster.data_dir.parent,),
            ciphertext_may_remain=True,
            strict_roots=(cluster.data_dir / "pg_wal",),
        )
