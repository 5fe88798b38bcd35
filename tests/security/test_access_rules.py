"""Access rules: peers and legislation areas, competences, personal-data visibility.

The decisions (``gateway.core.access``) on values, then the refusals at the
sending node (before it acknowledges) and at the receiving node, on two
real nodes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import pytest_twisted

from gateway.cli import main as cli
from gateway.config import ConfigValueInvalid, parse_config
from gateway.core.access import (
    AuthorityNotCompetent,
    ForwardTargetInvalid,
    PeerAccess,
    PeerAreaNotAllowed,
    SenderNotCompetent,
    Visibility,
    check_forward,
    check_request_competences,
    competent,
    visibility,
)
from gateway.core.catalogue import load_catalogues
from gateway.core.directory.document import Address, AuthorityEntry, Competence
from gateway.core.docparts import Header
from gateway.core.documents import Forward, to_xml
from gateway.core.lifecycle import Stage
from gateway.storage.tracking import tracking_events_txn
from gateway.testbed import CATALOGUE_VERSION, NationalSystemError, doctor_request
from tests.nodes import two_nodes
from tests.service.bed import row_counts
from tests.waiting import until

CATALOGUE = load_catalogues().get(CATALOGUE_VERSION)
NOW = datetime(2026, 3, 3, 10, 0, tzinfo=UTC)


def entry(authority_id: str, *competences: Competence) -> AuthorityEntry:
    return AuthorityEntry(
        authority_id=authority_id,
        names=(),
        address=Address(("Street 1",), "City", authority_id[:2]),
        competences=competences,
        working_languages=("en",),
        certificates=(),
    )


# --- the decisions ----------------------------------------------------------------------


def test_a_competence_covers_its_whole_area_listed_sets_and_professions_question_sets() -> None:
    whole = entry("PT-A", Competence("PQD"))
    sets = entry("PT-B", Competence("PQD", question_sets=("PQD-DENTIST",)))
    professions = entry("PT-C", Competence("PQD", professions=("doctor",)))
    assert competent(whole, "PQD", "PQD-DOCTOR", CATALOGUE)
    assert not competent(sets, "PQD", "PQD-DOCTOR", CATALOGUE)
    assert competent(sets, "PQD", "PQD-DENTIST", CATALOGUE)
    assert competent(professions, "PQD", "PQD-DOCTOR", CATALOGUE)
    assert not competent(professions, "PQD", "PQD-DENTIST", CATALOGUE)
    assert not competent(whole, "SERVICES", "PQD-DOCTOR", CATALOGUE)


def test_a_request_needs_a_competent_receiver_and_sender_where_the_directory_is_known() -> None:
    request = doctor_request("X-1", "NO-HELSEDIR", "PT-OMD", NOW)
    doctors = {"PT-OMD": entry("PT-OMD", Competence("PQD", professions=("doctor",)))}
    dentists = {"PT-OMD": entry("PT-OMD", Competence("PQD", question_sets=("PQD-DENTIST",)))}
    requester = {"NO-HELSEDIR": entry("NO-HELSEDIR", Competence("PQD"))}
    others = {"NO-UDIR": entry("NO-UDIR", Competence("PQD"))}

    def check(sender: object, receiver: object) -> None:
        check_request_competences(
            request,
            sender_directory=sender,  # type: ignore[arg-type]
            receiver_directory=receiver,  # type: ignore[arg-type]
            catalogue=CATALOGUE,
        )

    check(None, None)  # nothing known: nothing to decide from
    check({}, {})  # nothing published yet
    check(requester, doctors)
    with pytest.raises(AuthorityNotCompetent):
        check(requester, dentists)
    with pytest.raises(SenderNotCompetent):
        check(others, doctors)  # the directory lists authorities, not the requester


def test_a_forward_names_a_competent_other_authority_of_its_own_node() -> None:
    header = Header(
        "NO-HELSEDIR:X", "PT-OMD:F", "PT-OMD", "NO-HELSEDIR", NOW, None, "NO-HELSEDIR:X-1"
    )
    acss = {"PT-ACSS": entry("PT-ACSS", Competence("PQD", question_sets=("PQD-DENTIST",)))}
    for target in ("PT-OMD", "NO-UDIR", "NO-HELSEDIR"):
        with pytest.raises(ForwardTargetInvalid):
            check_forward(
                Forward(header, target),
                area="PQD",
                question_set="PQD-DOCTOR",
                target_directory=None,
                catalogue=CATALOGUE,
            )
    with pytest.raises(AuthorityNotCompetent):
        check_forward(
            Forward(header, "PT-ACSS"),
            area="PQD",
            question_set="PQD-DOCTOR",
            target_directory=acss,
            catalogue=CATALOGUE,
        )
    check_forward(
        Forward(header, "PT-ACSS"),
        area="PQD",
        question_set="PQD-DENTIST",
        target_directory=acss,
        catalogue=CATALOGUE,
    )


def test_only_the_current_parties_read_personal_data() -> None:
    parties = {"requester": "NO-A", "responder": "PT-NEW", "former_responders": {"PT-OLD"}}
    assert visibility("NO-A", **parties) is Visibility.PERSONAL_DATA  # type: ignore[arg-type]
    assert visibility("PT-NEW", **parties) is Visibility.PERSONAL_DATA  # type: ignore[arg-type]
    assert visibility("PT-OLD", **parties) is Visibility.METADATA  # type: ignore[arg-type]
    assert visibility("PT-X", **parties) is Visibility.NONE  # type: ignore[arg-type]


def test_peer_access_allows_everything_by_default_and_only_what_is_listed_otherwise() -> None:
    assert PeerAccess().allows("PT", "PQD")
    rules = PeerAccess({"PT": frozenset({"PQD"}), "SE": frozenset({"*"})})
    assert rules.allows("PT", "PQD") and rules.allows("SE", "SERVICES")
    assert not rules.allows("PT", "SERVICES") and not rules.allows("DE", "PQD")
    with pytest.raises(PeerAreaNotAllowed):
        rules.check("DE", "PQD")


def test_access_settings_are_validated_and_become_the_rules(tmp_path: Path) -> None:
    base = '[node]\nid = "NO"\n[access]\n'
    config = parse_config(base + 'peers = { PT = ["PQD"], SE = ["*"] }\n', tmp_path)
    assert config.access.rules().allows("SE", "X") and not config.access.rules().allows("DE", "X")
    assert parse_config('[node]\nid = "NO"\n', tmp_path).access.rules() == PeerAccess()
    for bad in ('peers = { pt = ["PQD"] }', 'peers = { PT = ["bad area"] }'):
        with pytest.raises(ConfigValueInvalid):
            parse_config(base + bad + "\n", tmp_path)


# --- on two real nodes ------------------------------------------------------------------


async def _peer_refusal(node: object, exchange_id: str) -> str | None:
    for event in await node.parts.db.run_txn(tracking_events_txn, exchange_id):  # type: ignore[attr-defined]
        if event.stage in (Stage.REFUSED, Stage.DEAD_LETTER) and event.detail:
            return str(event.detail)
    return None


@pytest_twisted.ensureDeferred
async def test_a_peer_or_area_the_node_does_not_exchange_is_refused_before_the_receipt_and_at_the_peer(
    tmp_path: Path,
) -> None:
    # PT exchanges with SE only; NO with everyone (the default).
    config = {"PT": '[access]\npeers = { SE = ["*"] }\n'}
    authorities = {"NO": ["NO-HELSEDIR"], "PT": ["PT-OMD"]}
    async with two_nodes(tmp_path, authorities, config) as (nodes, systems):
        omd, helsedir = systems["PT-OMD"], systems["NO-HELSEDIR"]
        before = await row_counts(nodes["PT"].parts.db)
        outgoing = doctor_request("A-1", "PT-OMD", "NO-HELSEDIR", datetime.now(UTC))
        with pytest.raises(NationalSystemError) as refused:
            await omd.submit(omd.sign(to_xml(outgoing)))
        assert (refused.value.status, refused.value.remote_code) == (403, "PEER_AREA_NOT_ALLOWED")
        assert await row_counts(nodes["PT"].parts.db) == before  # nothing acknowledged

        incoming = doctor_request("A-2", "NO-HELSEDIR", "PT-OMD", datetime.now(UTC))
        await helsedir.submit(helsedir.sign(to_xml(incoming)))  # NO allows it
        exchange_id = incoming.header.exchange_id
        code = await until(lambda: _peer_refusal(nodes["NO"], exchange_id), timeout=20)
        assert code == "PEER_AREA_NOT_ALLOWED"
        assert (await omd.pull(wait=0)).deliveries == []


def _register(node_dir: Path, authority: str, *competence: str) -> None:
    args = ["authorities", "add", str(node_dir), authority, "--name", "en:Authority"]
    args += ["--address", "Street 1", "--city", "City", "--language", "en", *competence]
    assert cli(args) == 0


@pytest_twisted.ensureDeferred
async def test_a_request_to_an_authority_not_competent_is_refused_at_both_nodes(
    tmp_path: Path,
) -> None:
    authorities = {"NO": ["NO-HELSEDIR"], "PT": ["PT-OMD", "PT-DENT"]}
    async with two_nodes(tmp_path, authorities) as (nodes, systems):
        pt_dir, helsedir = nodes["PT"].setup.node_dir, systems["NO-HELSEDIR"]
        _register(pt_dir, "PT-OMD", "--profession", "doctor")
        _register(pt_dir, "PT-DENT", "--question-set", "PQD-DENTIST")
        sync = next(s for s in nodes["NO"].service if type(s).__name__ == "DirectorySyncService")
        await until(lambda: not sync.busy)
        assert (await sync.sync_peer("PT")).status in ("updated", "up-to-date")

        # The sending node knows PT's directory: refused before it is acknowledged.
        to_dentists = doctor_request("C-1", "NO-HELSEDIR", "PT-DENT", datetime.now(UTC))
        with pytest.raises(NationalSystemError) as refused:
            await helsedir.submit(helsedir.sign(to_xml(to_dentists)))
        assert (refused.value.status, refused.value.remote_code) == (403, "AUTHORITY_NOT_COMPETENT")

        # PT-OMD stops being competent for doctors; NO has not synchronised since, so
        # it accepts the Request, and PT refuses it from its own directory.
        assert (
            cli(["authorities", "update", str(pt_dir), "PT-OMD", "--question-set", "PQD-DENTIST"])
            == 0
        )
        stale = doctor_request("C-2", "NO-HELSEDIR", "PT-OMD", datetime.now(UTC))
        await helsedir.submit(helsedir.sign(to_xml(stale)))
        code = await until(lambda: _peer_refusal(nodes["NO"], stale.header.exchange_id), timeout=20)
        assert code == "AUTHORITY_NOT_COMPETENT"
