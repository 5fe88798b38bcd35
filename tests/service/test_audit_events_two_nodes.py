"""The audit log of a real exchange: two nodes on loopback, every step recorded on both sides.

NO-HELSEDIR (node NO) requests, PT-OMD (node PT) accepts; each national
system pulls what it is sent and acknowledges it. Each node's log then holds,
in order, what that node did, each entry with its actor, exchange, message
id and the keyed digest of the document under that node's own audit key
(``keys/audit.hmac``). Both exports verify offline with ``imi-gateway audit
verify``. A trust change applied by a running node is recorded too.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import pytest_twisted

from gateway import cli
from gateway.core.audit import Entry
from gateway.core.documents import to_xml
from gateway.keystore import clear_key_cache, load_audit_key, load_trust, revoke, trust_listing
from gateway.storage.audit import audit_log_txn
from gateway.testbed import doctor_acceptance, doctor_request
from tests.nodes import RunningNode, two_nodes
from tests.waiting import until


async def log(node: RunningNode) -> list[Entry]:
    entries: list[Entry] = await node.parts.db.run_txn(audit_log_txn)
    return entries


async def logged(node: RunningNode, event: str, count: int) -> list[Entry] | None:
    """The node's log once it holds ``count`` entries of ``event`` (else None)."""
    entries = await log(node)
    return entries if sum(e.event == event for e in entries) >= count else None


def summary(entries: list[Entry], exchange_id: str) -> list[tuple[str, str, str]]:
    return [(e.event, e.actor, e.message_id) for e in entries if e.exchange_id == exchange_id]


@pytest_twisted.ensureDeferred
async def test_each_step_of_an_exchange_is_recorded_on_both_nodes_and_both_exports_verify(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with two_nodes(tmp_path) as (nodes, systems):
        no, pt = systems["NO-HELSEDIR"], systems["PT-OMD"]
        request = doctor_request("IMI-NO-AUDIT-1", "NO-HELSEDIR", "PT-OMD", datetime.now(UTC))
        signed_request = no.sign(to_xml(request))
        await no.submit(signed_request)
        pulled = await pt.pull(wait=10, limit=1)
        await pt.pull(after=pulled.cursor)  # acknowledges the request
        signed_acceptance = pt.sign(to_xml(doctor_acceptance(request, datetime.now(UTC))))
        await pt.submit(signed_acceptance)
        pulled = await no.pull(wait=10, limit=1)
        await no.pull(after=pulled.cursor)  # acknowledges the acceptance
        # PT's sender records NO's receipt for the acceptance just after NO stored it.
        log_pt = await until(lambda: logged(nodes["PT"], "RECEIPT", 1))
        log_no = await log(nodes["NO"])
        key_no = load_audit_key(nodes["NO"].setup.node_dir)
        key_pt = load_audit_key(nodes["PT"].setup.node_dir)
    req = request.header.document_id
    exchange_id = next(e.exchange_id for e in log_no if e.event == "SUBMITTED")
    acceptance_id = next(e.message_id for e in log_pt if e.event == "SUBMITTED")
    assert summary(log_no, exchange_id) == [
        ("SUBMITTED", "NO-HELSEDIR", req),
        ("STATE_CHANGED", "NO-HELSEDIR", req),
        ("TRANSFERRED", "node:NO", req),
        ("RECEIPT", "node:PT", req),
        ("RECEIVED", "node:PT", acceptance_id),
        ("STATE_CHANGED", "PT-OMD", acceptance_id),
        ("PERSONAL_DATA_READ", "NO-HELSEDIR", acceptance_id),
        ("DELIVERED", "NO-HELSEDIR", acceptance_id),
    ]
    assert summary(log_pt, exchange_id) == [
        ("RECEIVED", "node:NO", req),
        ("STATE_CHANGED", "NO-HELSEDIR", req),
        ("PERSONAL_DATA_READ", "PT-OMD", req),
        ("DELIVERED", "PT-OMD", req),
        ("SUBMITTED", "PT-OMD", acceptance_id),
        ("STATE_CHANGED", "PT-OMD", acceptance_id),
        ("TRANSFERRED", "node:PT", acceptance_id),
        ("RECEIPT", "node:NO", acceptance_id),
    ]
    # The keyed digests: each node's own key over the very bytes signed by the national system.
    digests_no = {(e.event, e.message_id): e.digest for e in log_no}
    digests_pt = {(e.event, e.message_id): e.digest for e in log_pt}
    assert digests_no["SUBMITTED", req] == digests_no["TRANSFERRED", req]
    assert digests_no["SUBMITTED", req] == key_no.digest(signed_request)
    assert (
        digests_pt["RECEIVED", req]
        == key_pt.digest(signed_request)
        != key_no.digest(signed_request)
    )
    assert digests_no["RECEIVED", acceptance_id] == key_no.digest(signed_acceptance)
    assert digests_pt["SUBMITTED", acceptance_id] == key_pt.digest(signed_acceptance)
    assert digests_no["RECEIPT", req] and digests_no["STATE_CHANGED", req] == ""

    # Both nodes' exports verify offline, the whole log and the exchange alone.
    clear_key_cache()
    for node_id in ("NO", "PT"):
        node_dir = nodes[node_id].setup.node_dir
        cert = str(node_dir / "certs" / "signing.pem")
        for selection in ([], ["--exchange", exchange_id]):
            out = str(tmp_path / f"{node_id}-{len(selection)}.xml")
            assert cli.main(["audit", "export", str(node_dir), "-o", out, *selection]) == 0
            assert cli.main(["audit", "verify", out, "--cert", cert]) == 0
            assert "valid:" in capsys.readouterr().out


@pytest_twisted.ensureDeferred
async def test_a_trust_change_applied_by_a_running_node_is_recorded_with_the_new_trust_digest(
    tmp_path: Path,
) -> None:
    authorities = {"NO": ["NO-HELSEDIR", "NO-UDIR"], "PT": ["PT-OMD"]}
    async with two_nodes(tmp_path, authorities) as (nodes, _systems):
        no = nodes["NO"]
        before = [e for e in await log(no) if e.event == "TRUST_CHANGED"]
        assert no.parts.reload_trust().changed is False  # nothing changed: nothing recorded
        revoke(no.setup.node_dir, "NO-UDIR")
        assert no.parts.reload_trust().changed
        entries = await until(lambda: logged(no, "TRUST_CHANGED", len(before) + 1))
        entries = [e for e in entries if e.event == "TRUST_CHANGED"]
        (entry,) = entries[len(before) :]
        assert entry.actor == "node:NO" and entry.exchange_id == entry.message_id == ""
        key = load_audit_key(no.setup.node_dir)
        assert entry.digest == key.digest(trust_listing(load_trust(no.setup.node_dir)))
