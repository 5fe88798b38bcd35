"""No receipt for a document the node's own directory makes the peer refuse (issue 7, finding 5).

Once a node publishes an authority directory, its peers pin exactly the
certificates it lists. A national system issued at the node but not listed
used to get a signed receipt, and its document was then dead-lettered by the
peer as CERTIFICATE_UNTRUSTED. Now the node refuses it at submission with
AUTHORITY_NOT_PUBLISHED; issuing a certificate for a listed authority
publishes it at once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import pytest_twisted

from gateway.cli import main as cli
from gateway.core.documents import to_xml
from gateway.storage.directory_files import DirectoryStore
from gateway.testbed import NationalSystemError, doctor_request
from tests.nodes import RunningNode, two_nodes
from tests.service.bed import row_counts
from tests.waiting import until

AUTHORITIES = {"NO": ["NO-HELSEDIR", "NO-UDIR"], "PT": ["PT-OMD"]}


def register(node_dir: Path, authority_id: str) -> None:
    argv = ["authorities", "add", str(node_dir), authority_id, "--name", "en:Authority"]
    argv += [
        "--address",
        "Postboks 1",
        "--city",
        "Oslo",
        "--profession",
        "doctor",
        "--language",
        "nb",
    ]
    assert cli(argv) == 0


async def sync(node: RunningNode, peer: str) -> None:
    """Have ``node`` fetch ``peer``'s directory now (retrying while a sync is running)."""
    service = next(s for s in node.service if type(s).__name__ == "DirectorySyncService")  # type: ignore[attr-defined]

    async def synced() -> object:
        outcome = await service.sync_peer(peer)
        return None if outcome.status == "skipped" else outcome

    outcome = await until(synced)
    assert outcome.status in ("updated", "up-to-date"), outcome


@pytest_twisted.ensureDeferred
async def test_an_unlisted_national_system_is_refused_before_any_receipt(tmp_path: Path) -> None:
    async with two_nodes(tmp_path, AUTHORITIES) as (nodes, systems):
        no_dir = nodes["NO"].setup.node_dir
        register(no_dir, "NO-HELSEDIR")
        await sync(nodes["PT"], "NO")
        before = {c: await row_counts(n.parts.db) for c, n in nodes.items()}

        udir = systems["NO-UDIR"]
        request = doctor_request("IMI-NO-PUB-1", "NO-UDIR", "PT-OMD", datetime.now(UTC))
        signed = udir.sign(to_xml(request))
        with pytest.raises(NationalSystemError) as refused:
            await udir.submit(signed)
        assert (refused.value.status, refused.value.remote_code) == (
            403,
            "AUTHORITY_NOT_PUBLISHED",
        )
        # No receipt, nothing stored or queued at NO, nothing at PT.
        for country, node in nodes.items():
            assert await row_counts(node.parts.db) == before[country]

        # The whole path: list it, let the peer sync, and the same document goes through.
        register(no_dir, "NO-UDIR")
        await sync(nodes["PT"], "NO")
        await udir.submit(signed)
        pulled = await systems["PT-OMD"].pull(wait=20)
        assert [d.document for d in pulled.deliveries] == [signed]


@pytest_twisted.ensureDeferred
async def test_without_a_published_directory_every_registered_system_may_submit(
    tmp_path: Path,
) -> None:
    async with two_nodes(tmp_path, AUTHORITIES) as (_nodes, systems):
        udir = systems["NO-UDIR"]
        request = doctor_request("IMI-NO-PUB-2", "NO-UDIR", "PT-OMD", datetime.now(UTC))
        signed = udir.sign(to_xml(request))
        await udir.submit(signed)
        pulled = await systems["PT-OMD"].pull(wait=20)
        assert [d.document for d in pulled.deliveries] == [signed]


def test_issuing_a_certificate_for_a_listed_authority_publishes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from gateway.testbed import setup_nodes

    setup = setup_nodes(tmp_path, {"NO": ["NO-HELSEDIR", "NO-UDIR"]})["NO"]
    register(setup.node_dir, "NO-HELSEDIR")
    store = DirectoryStore(setup.node_dir)
    listed = set(store.published().entries["NO-HELSEDIR"].certificates)
    capsys.readouterr()

    out = tmp_path / "rotated"
    argv = ["keys", "issue-national", str(setup.node_dir), "NO-HELSEDIR", "--out", str(out)]
    assert cli(argv) == 0
    assert "Published the certificate in the authority directory" in capsys.readouterr().out
    now_listed = set(DirectoryStore(setup.node_dir).published().entries["NO-HELSEDIR"].certificates)
    assert len(now_listed - listed) == 1

    out = tmp_path / "udir-2"
    argv = ["keys", "issue-national", str(setup.node_dir), "NO-UDIR", "--out", str(out)]
    assert cli(argv) == 0
    printed = capsys.readouterr().out
    assert "NO-UDIR is not in the published authority directory yet" in printed
    assert "AUTHORITY_NOT_PUBLISHED" in printed
