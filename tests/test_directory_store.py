"""The directory on disk: registration, versions, publication, peers' caches, pinning.

Nodes are real node directories (``keystore.init_node_dir``) with real keys
generated at run time, real national-system certificates and real node
signatures. The helpers at the top are shared with the CLI and service tests.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from lxml import etree

from gateway import keystore as ks
from gateway.core import directory as rules
from gateway.core.catalogue import CatalogueCodeUnknown
from gateway.core.directory.document import (
    Address,
    AuthorityDirectory,
    AuthorityEntry,
    Competence,
    build_directory,
    read_directory,
)
from gateway.core.docxml import LocalizedText
from gateway.core.errors import GatewayError
from gateway.core.search import SearchQuery
from gateway.core.signing import Signer
from gateway.core.xmlparse import parse_xml
from gateway.service.directory_publish import DirectoryPublisher
from gateway.service.directory_search import LiveSearch
from gateway.storage.directory_files import (
    DirectoryPeerUnknown,
    DirectoryStateInvalid,
    DirectoryStore,
    authority_certificates,
)

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


# --- shared helpers ---------------------------------------------------------------------


def make_node(root: pathlib.Path, country: str, *, now: datetime = NOW) -> pathlib.Path:
    """A node directory whose certificates are valid from a day before ``now``."""
    node = root / country.lower()
    ks.init_node_dir(node, ks.InitOptions(country=country), now=now - timedelta(days=1))
    return node


def bind(
    node: pathlib.Path, authority_id: str, *, out: str = "keys", now: datetime = NOW
) -> ks.NationalIssued:
    """Issue a national-system certificate to ``authority_id`` (valid from a day before ``now``)."""
    return ks.issue_national_certificate(
        node, authority_id, node.parent / f"{out}-{node.name}", now=now - timedelta(days=1)
    )


def link(a: pathlib.Path, b: pathlib.Path, *, now: datetime = NOW) -> None:
    """Make nodes a and b peers of each other."""
    ks.import_peer(a, ks.export_node_bundle(b), url="https://b.example:9443", now=now)
    ks.import_peer(b, ks.export_node_bundle(a), url="https://a.example:9443", now=now)


def entry(
    authority_id: str,
    *names: tuple[str, str],
    professions: tuple[str, ...] = ("doctor",),
    question_sets: tuple[str, ...] = (),
    region: str | None = None,
    city: str = "Oslo",
    languages: tuple[str, ...] = ("nn", "en"),
) -> AuthorityEntry:
    return AuthorityEntry(
        authority_id=authority_id,
        names=tuple(LocalizedText(text, lang) for lang, text in (names or (("en", "Authority"),))),
        address=Address(("Postboks 7000",), city, authority_id[:2], postal_code="0130"),
        region=region,
        competences=(Competence("PQD", question_sets, professions),),
        working_languages=languages,
        certificates=(),
    )


def signer(node: pathlib.Path) -> Signer:
    keys = ks.load_node_keys(node)
    return Signer(keys.signing.key, keys.signing.certificate)


def signed_document(node: pathlib.Path, since: int | None = None) -> bytes:
    directory = DirectoryStore(node).document(since, now=NOW)
    assert directory is not None
    return signer(node).sign(build_directory(directory))


@pytest.fixture(autouse=True)
def _fresh_key_cache() -> Iterator[None]:
    ks.clear_key_cache()
    yield
    ks.clear_key_cache()


@pytest.fixture
def no_node(tmp_path: pathlib.Path) -> pathlib.Path:
    node = make_node(tmp_path, "NO")
    bind(node, "NO-HELSEDIR")
    return node


@pytest.fixture
def pair(tmp_path: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    """Linked nodes NO (with NO-HELSEDIR registered) and PT."""
    no = make_node(tmp_path, "NO")
    pt = make_node(tmp_path, "PT")
    link(no, pt)
    bind(no, "NO-HELSEDIR")
    DirectoryStore(no).add(
        entry("NO-HELSEDIR", ("nn", "Helsedirektoratet"), ("en", "Directorate of Health")),
        now=NOW,
    )
    return no, pt


# --- this node's directory ----------------------------------------------------------------


def test_add_publishes_a_version_with_the_bound_certificate(no_node: pathlib.Path) -> None:
    store = DirectoryStore(no_node)
    published = store.add(entry("NO-HELSEDIR", ("nn", "Helsedirektoratet")), now=NOW)
    assert published.version == 1
    certificate = ks.load_trust(no_node).national["NO-HELSEDIR"][0]
    listed = rules.entry_certificates(published.entries["NO-HELSEDIR"])
    assert [ks.certificate_fingerprint(c) for c in listed] == [
        ks.certificate_fingerprint(certificate)
    ]
    assert store.records()["NO-HELSEDIR"].certificates == ()


def test_add_without_a_bound_certificate_is_refused(no_node: pathlib.Path) -> None:
    with pytest.raises(rules.AuthorityCertificateMissing) as info:
        DirectoryStore(no_node).add(entry("NO-UDIR"), now=NOW)
    assert "keys issue-national" in str(info.value)
    assert DirectoryStore(no_node).records() == {}


def test_add_twice_is_a_conflict_and_unknown_codes_use_the_catalogue_errors(
    no_node: pathlib.Path,
) -> None:
    store = DirectoryStore(no_node)
    store.add(entry("NO-HELSEDIR"), now=NOW)
    with pytest.raises(rules.AuthorityExists):
        store.add(entry("NO-HELSEDIR"), now=NOW)
    with pytest.raises(CatalogueCodeUnknown):
        store.update(
            "NO-HELSEDIR", lambda e: replace(e, competences=(Competence("NOPE"),)), now=NOW
        )


def test_lookalike_and_foreign_ids_are_refused_before_anything_is_written(
    no_node: pathlib.Path,
) -> None:
    store = DirectoryStore(no_node)
    with pytest.raises(rules.AuthorityIdMalformed):
        store.add(replace(entry("NO-HELSEDIR"), authority_id="N\u041e-HELSEDIR"), now=NOW)
    with pytest.raises(rules.AuthorityCountryMismatch):
        store.add(entry("PT-OMD"), now=NOW)
    assert not store.state_path.exists()


def test_update_and_remove_make_new_versions_and_noop_updates_do_not(
    no_node: pathlib.Path,
) -> None:
    store = DirectoryStore(no_node)
    store.add(entry("NO-HELSEDIR", ("nn", "Helsedirektoratet")), now=NOW)
    same = store.update("NO-HELSEDIR", lambda e: e, now=NOW)
    assert same.version == 1
    renamed = store.update(
        "NO-HELSEDIR",
        lambda e: replace(e, names=(LocalizedText("Helsedirektoratet  ", "nn"),)),
        now=NOW,
    )
    assert renamed.version == 1  # white space is normalised: no change
    changed = store.update("NO-HELSEDIR", lambda e: replace(e, region="NO08"), now=NOW)
    assert changed.version == 2
    removed = store.remove("NO-HELSEDIR", now=NOW + timedelta(minutes=1))
    assert removed.version == 3 and removed.entries == {}
    assert [(c.version, c.changed, c.removed) for c in removed.history] == [
        (1, ("NO-HELSEDIR",), ()),
        (2, ("NO-HELSEDIR",), ()),
        (3, (), ("NO-HELSEDIR",)),
    ]
    with pytest.raises(rules.AuthorityUnknown):
        store.remove("NO-HELSEDIR", now=NOW)


def test_state_survives_a_new_store_and_is_documented_json(no_node: pathlib.Path) -> None:
    DirectoryStore(no_node).add(entry("NO-HELSEDIR", ("nn", "Helsedirektoratet")), now=NOW)
    state = json.loads((no_node / "directory" / "state.json").read_text())
    assert state["format"] == "imi-gateway-directory-state"
    assert state["node_id"] == "NO"
    assert state["authorities"][0]["id"] == "NO-HELSEDIR"
    assert "certificates" not in state["authorities"][0]
    assert state["published"]["version"] == 1
    assert len(state["published"]["authorities"][0]["certificates"]) == 1
    again = DirectoryStore(no_node)
    assert again.published().version == 1
    assert again.records()["NO-HELSEDIR"].names[0].text == "Helsedirektoratet"


def test_a_corrupt_state_file_is_a_configuration_error(no_node: pathlib.Path) -> None:
    store = DirectoryStore(no_node)
    store.add(entry("NO-HELSEDIR"), now=NOW)
    store.state_path.write_text("{not json")
    with pytest.raises(DirectoryStateInvalid) as info:
        DirectoryStore(no_node).records()
    assert info.value.exit_status == 3


def test_revoking_the_certificate_removes_the_authority_and_a_new_one_restores_it(
    no_node: pathlib.Path,
) -> None:
    store = DirectoryStore(no_node)
    store.add(entry("NO-HELSEDIR"), now=NOW)
    ks.revoke(no_node, "NO-HELSEDIR", now=NOW)
    published = store.refresh(now=NOW + timedelta(minutes=1))
    assert published.version == 2 and "NO-HELSEDIR" not in published.entries
    assert store.unpublished() == ["NO-HELSEDIR"]
    assert published.history[-1].removed == ("NO-HELSEDIR",)
    issued = bind(no_node, "NO-HELSEDIR", out="new")
    published = store.refresh(now=NOW + timedelta(minutes=2))
    assert published.version == 3
    listed = rules.entry_certificates(published.entries["NO-HELSEDIR"])
    assert [ks.certificate_fingerprint(c) for c in listed] == [issued.fingerprint]
    assert store.refresh(now=NOW + timedelta(minutes=3)).version == 3  # nothing changed


def test_a_rotation_lists_both_certificates_newest_first(no_node: pathlib.Path) -> None:
    store = DirectoryStore(no_node)
    store.add(entry("NO-HELSEDIR"), now=NOW)
    newer = ks.issue_national_certificate(
        no_node, "NO-HELSEDIR", no_node.parent / "rotated", now=NOW
    )
    published = store.refresh(now=NOW + timedelta(minutes=1))
    listed = rules.entry_certificates(published.entries["NO-HELSEDIR"])
    assert len(listed) == 2
    assert ks.certificate_fingerprint(listed[0]) == newer.fingerprint


def test_document_since_gives_increments_full_or_nothing(no_node: pathlib.Path) -> None:
    bind(no_node, "NO-UDIR")
    bind(no_node, "NO-DSB")
    store = DirectoryStore(no_node)
    store.add(entry("NO-HELSEDIR"), now=NOW)
    store.add(entry("NO-UDIR", professions=("secondary-school-teacher",)), now=NOW)
    store.add(entry("NO-DSB", professions=("nurse",)), now=NOW)
    store.remove("NO-HELSEDIR", now=NOW)
    assert store.published().version == 4
    update = store.document(3, now=NOW)
    assert update is not None and update.base_version == 3
    assert update.authorities == () and update.removed == ("NO-HELSEDIR",)
    update = store.document(2, now=NOW)
    assert update is not None and update.base_version == 2
    assert [e.authority_id for e in update.authorities] == ["NO-DSB"]
    assert update.removed == ("NO-HELSEDIR",)
    # Since version 1 the update would be larger than the whole directory: send it whole.
    assert not store.document(1, now=NOW).incremental  # type: ignore[union-attr]
    assert store.document(4, now=NOW) is None
    for since in (None, 0, 99):
        full = store.document(since, now=NOW)
        assert full is not None and not full.incremental and full.version == 4
        assert [e.authority_id for e in full.authorities] == ["NO-DSB", "NO-UDIR"]
    # every answer is a schema-valid document
    for since in (None, 2, 3):
        directory = store.document(since, now=NOW)
        assert directory is not None
        assert read_directory(build_directory(directory)) == directory


def test_history_limit_sends_the_full_directory_to_a_peer_too_far_behind(
    no_node: pathlib.Path,
) -> None:
    store = DirectoryStore(no_node, history_limit=2)
    store.add(entry("NO-HELSEDIR"), now=NOW)
    for region in ("NO08", "NO09", "NO0A"):
        store.update("NO-HELSEDIR", lambda e, r=region: replace(e, region=r), now=NOW)
    published = store.published()
    assert published.version == 4 and len(published.history) == 2
    assert store.document(1, now=NOW).incremental is False  # type: ignore[union-attr]
    assert store.document(2, now=NOW).base_version == 2  # type: ignore[union-attr]


# --- peers -----------------------------------------------------------------------------------


def test_a_peer_directory_is_verified_applied_and_cached_across_restarts(
    pair: tuple[pathlib.Path, pathlib.Path],
) -> None:
    no, pt = pair
    result = DirectoryStore(pt).apply_peer_document("NO", signed_document(no), now=NOW)
    assert (result.version, result.full, result.changed) == (1, True, ("NO-HELSEDIR",))
    path = pt / "trust" / "peers" / "NO" / "directory.xml"
    assert path.exists()
    cached = DirectoryStore(pt).cached("NO")  # a fresh store: read from disk
    assert cached is not None and list(cached.entries) == ["NO-HELSEDIR"]
    assert read_directory(parse_xml(path.read_bytes())).version == 1
    # the trust store still loads with the cache file next to the pinned certificates
    assert "NO" in ks.load_trust(pt).peers
    again = DirectoryStore(pt).apply_peer_document("NO", signed_document(no), now=NOW)
    assert again.unchanged


def test_incremental_updates_propagate_changes_and_removals(
    pair: tuple[pathlib.Path, pathlib.Path],
) -> None:
    no, pt = pair
    sender = DirectoryStore(no)
    bind(no, "NO-DSB")
    sender.add(entry("NO-DSB", professions=("nurse",)), now=NOW)
    receiver = DirectoryStore(pt)
    receiver.apply_peer_document("NO", signed_document(no), now=NOW)
    bind(no, "NO-UDIR")
    sender.add(entry("NO-UDIR", professions=("secondary-school-teacher",)), now=NOW)
    sender.remove("NO-HELSEDIR", now=NOW)
    update = signed_document(no, since=2)
    assert b"BaseVersion" in update
    result = receiver.apply_peer_document("NO", update, now=NOW)
    assert (result.full, result.base_version, result.version) == (False, 2, 4)
    assert result.changed == ("NO-UDIR",) and result.removed == ("NO-HELSEDIR",)
    assert list(receiver.cached("NO").entries) == ["NO-DSB", "NO-UDIR"]  # type: ignore[union-attr]
    assert set(authority_certificates(pt, "NO")) == {"NO-DSB", "NO-UDIR"}


def test_certificate_changes_propagate_to_the_pinned_certificates(
    pair: tuple[pathlib.Path, pathlib.Path],
) -> None:
    no, pt = pair
    receiver = DirectoryStore(pt)
    receiver.apply_peer_document("NO", signed_document(no), now=NOW)
    old = authority_certificates(receiver, "NO")["NO-HELSEDIR"]
    ks.revoke(no, "NO-HELSEDIR", now=NOW)
    new = ks.issue_national_certificate(no, "NO-HELSEDIR", no.parent / "new", now=NOW)
    receiver.apply_peer_document("NO", signed_document(no, since=1), now=NOW)
    pinned = authority_certificates(pt, "NO")["NO-HELSEDIR"]
    assert [ks.certificate_fingerprint(c) for c in pinned] == [new.fingerprint]
    assert old != pinned


def test_pinned_certificates_leave_out_what_this_node_revoked(
    pair: tuple[pathlib.Path, pathlib.Path],
) -> None:
    no, pt = pair
    store = DirectoryStore(pt)  # one store, as the inbound pipeline keeps it
    store.apply_peer_document("NO", signed_document(no), now=NOW)
    (cert,) = store.authority_certificates("NO")["NO-HELSEDIR"]
    assert store.authority_certificates("NO") == authority_certificates(pt, "NO")
    ks.revoke(pt, ks.certificate_fingerprint(cert), now=NOW)
    assert store.authority_certificates("NO") == {}
    assert authority_certificates(pt, "NO") == {}


def test_a_directory_signed_by_another_key_is_refused(
    pair: tuple[pathlib.Path, pathlib.Path], tmp_path: pathlib.Path
) -> None:
    _, pt = pair
    impostor = make_node(tmp_path / "x", "NO")
    bind(impostor, "NO-HELSEDIR")
    DirectoryStore(impostor).add(entry("NO-HELSEDIR"), now=NOW)
    with pytest.raises(GatewayError) as info:
        DirectoryStore(pt).apply_peer_document("NO", signed_document(impostor), now=NOW)
    assert info.value.code == "CERTIFICATE_UNTRUSTED"
    assert DirectoryStore(pt).cached("NO") is None


def test_a_tampered_directory_is_refused(pair: tuple[pathlib.Path, pathlib.Path]) -> None:
    no, pt = pair
    data = signed_document(no).replace(b"Helsedirektoratet", b"Helsedirektorate7")
    with pytest.raises(GatewayError) as info:
        DirectoryStore(pt).apply_peer_document("NO", data, now=NOW)
    assert info.value.code == "SIGNATURE_DIGEST_MISMATCH"


def test_a_directory_of_another_peer_or_an_unknown_peer_is_refused(
    pair: tuple[pathlib.Path, pathlib.Path], tmp_path: pathlib.Path
) -> None:
    no, pt = pair
    with pytest.raises(DirectoryPeerUnknown):
        DirectoryStore(pt).apply_peer_document("SE", signed_document(no), now=NOW)
    # PT's directory handed to NO as if it came from a third peer, SE.
    se = make_node(tmp_path / "third", "SE")
    link(se, no)
    with pytest.raises(GatewayError) as info:
        DirectoryStore(no).apply_peer_document("SE", signed_document(pt), now=NOW)
    assert info.value.code == "CERTIFICATE_UNTRUSTED"


def test_a_peer_listing_a_foreign_authority_is_refused(
    pair: tuple[pathlib.Path, pathlib.Path],
) -> None:
    no, pt = pair
    # Build by hand what the directory builder refuses: NO publishing a PT authority.
    directory = DirectoryStore(no).document(None, now=NOW)
    assert directory is not None
    root = build_directory(directory)
    for element in root.iter("{*}Authority"):
        element.set("id", "PT-OMD")
    data = signer(no).sign(root)
    with pytest.raises(GatewayError) as info:
        DirectoryStore(pt).apply_peer_document("NO", data, now=NOW)
    assert info.value.code == "DIRECTORY_INCONSISTENT"


def test_a_certificate_not_issued_by_the_peer_ca_is_refused(
    pair: tuple[pathlib.Path, pathlib.Path], tmp_path: pathlib.Path
) -> None:
    no, pt = pair
    other = make_node(tmp_path / "x", "NO")
    foreign = bind(other, "NO-HELSEDIR")
    directory = DirectoryStore(no).document(None, now=NOW)
    assert directory is not None
    from cryptography.hazmat.primitives import serialization

    der = foreign.certificate.public_bytes(serialization.Encoding.DER)
    forged = replace(
        directory,
        authorities=tuple(replace(e, certificates=(der,)) for e in directory.authorities),
    )
    data = signer(no).sign(build_directory(forged))
    with pytest.raises(rules.DirectoryCertificateInvalid):
        DirectoryStore(pt).apply_peer_document("NO", data, now=NOW)


def test_an_older_full_directory_is_refused_as_stale(
    pair: tuple[pathlib.Path, pathlib.Path],
) -> None:
    no, pt = pair
    old = signed_document(no)
    DirectoryStore(no).update(
        "NO-HELSEDIR", lambda e: replace(e, region="NO08"), now=NOW + timedelta(minutes=1)
    )
    receiver = DirectoryStore(pt)
    receiver.apply_peer_document("NO", signed_document(no), now=NOW)
    with pytest.raises(rules.DirectoryStale):
        receiver.apply_peer_document("NO", old, now=NOW)
    assert receiver.cached("NO").version == 2  # type: ignore[union-attr]


def test_an_increment_for_another_base_asks_for_the_full_directory(
    pair: tuple[pathlib.Path, pathlib.Path],
) -> None:
    no, pt = pair
    sender = DirectoryStore(no)
    sender.update("NO-HELSEDIR", lambda e: replace(e, region="NO08"), now=NOW)
    sender.update("NO-HELSEDIR", lambda e: replace(e, region="NO09"), now=NOW)
    with pytest.raises(rules.DirectoryBaseMismatch):
        DirectoryStore(pt).apply_peer_document("NO", signed_document(no, since=2), now=NOW)


def test_an_unreadable_cache_is_replaced_by_a_full_directory(
    pair: tuple[pathlib.Path, pathlib.Path],
) -> None:
    no, pt = pair
    store = DirectoryStore(pt)
    store.apply_peer_document("NO", signed_document(no), now=NOW)
    store.peer_cache_path("NO").write_bytes(b"<broken")
    with pytest.raises(DirectoryStateInvalid):
        DirectoryStore(pt).cached("NO")
    result = DirectoryStore(pt).apply_peer_document("NO", signed_document(no), now=NOW)
    assert result.full and DirectoryStore(pt).cached("NO") is not None


# --- publisher and live search ------------------------------------------------------------------


def test_the_publisher_signs_once_per_version_and_refreshes_on_its_interval(
    no_node: pathlib.Path,
) -> None:
    store = DirectoryStore(no_node)
    store.add(entry("NO-HELSEDIR"), now=NOW)
    signatures: list[str] = []
    real = signer(no_node)

    def sign(root: etree._Element) -> bytes:
        signatures.append(root.tag)
        return real.sign(root)

    clock = [NOW]
    publisher = DirectoryPublisher(store, sign, now=lambda: clock[0], refresh_interval=60)
    first = publisher.document(None)
    assert publisher.document(None) == first and len(signatures) == 1
    assert publisher.document(1) is None
    ks.revoke(no_node, "NO-HELSEDIR", now=NOW)
    clock[0] = NOW + timedelta(seconds=30)
    assert publisher.document(1) is None  # not refreshed yet
    clock[0] = NOW + timedelta(seconds=61)
    update = publisher.document(1)
    # the only authority went away: the full (empty) directory is the smaller answer
    assert update is not None and b"<Version>2</Version>" in update
    assert b"<Authority " not in update and len(signatures) == 2


def test_live_search_follows_own_and_peer_directories(
    pair: tuple[pathlib.Path, pathlib.Path],
) -> None:
    no, pt = pair
    live = LiveSearch(DirectoryStore(pt))
    assert live.search(SearchQuery("lege")).total == 0
    DirectoryStore(pt).apply_peer_document("NO", signed_document(no), now=NOW)
    assert live.search(SearchQuery("lege")).ids == ["NO-HELSEDIR"]
    bind(pt, "PT-OMD")
    DirectoryStore(pt).add(
        entry("PT-OMD", ("pt", "Ordem dos Médicos"), languages=("pt",), city="Lisboa"), now=NOW
    )
    result = live.search(SearchQuery("médico", lang="pt"))
    assert result.ids[0] == "PT-OMD" and set(result.ids) == {"PT-OMD", "NO-HELSEDIR"}
    assert live.search(SearchQuery("médico", country="NO")).ids == ["NO-HELSEDIR"]
    DirectoryStore(no).remove("NO-HELSEDIR", now=NOW)
    DirectoryStore(pt).apply_peer_document("NO", signed_document(no, since=1), now=NOW)
    assert live.search(SearchQuery("médico")).ids == ["PT-OMD"]


def test_directory_documents_round_trip_through_the_signature(
    pair: tuple[pathlib.Path, pathlib.Path],
) -> None:
    no, _ = pair
    data = signed_document(no)
    from gateway.core.certs import TrustStore
    from gateway.core.signing import verify

    verified = verify(
        data, TrustStore(pinned=(ks.load_node_keys(no).signing.certificate,)), now=NOW
    )
    directory = read_directory(verified.root)
    assert isinstance(directory, AuthorityDirectory)
    assert directory.node_id == "NO" and directory.version == 1
