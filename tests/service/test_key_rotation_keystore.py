"""Key rotation in the key store: new keys, the overlap on both sides, and its end."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509

from gateway.keystore import (
    InitOptions,
    PeerAlreadyKnown,
    PeerBundleInvalid,
    RotationInvalid,
    export_node_bundle,
    import_peer,
    init_node_dir,
    load_node_keys,
    load_trust,
    reload_node_keys,
    retire_old,
    rotate_node_keys,
)
from gateway.keystore.certs import certificate_fingerprint, identity_uris

NOW = datetime.now(UTC).replace(microsecond=0)  # bundles are exported at the wall clock


def san(cert: x509.Certificate) -> list[str]:
    value = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return sorted(str(v.value) for v in value)


@pytest.fixture
def nodes(tmp_path):
    hosts = ("gw.example.no", "10.0.0.5")
    init_node_dir(tmp_path / "no", InitOptions(country="NO", hosts=hosts), now=NOW)
    init_node_dir(tmp_path / "pt", InitOptions(country="PT"), now=NOW)
    import_peer(tmp_path / "pt", export_node_bundle(tmp_path / "no"), now=NOW)
    return tmp_path / "no", tmp_path / "pt"


def test_rotation_renews_signing_and_tls_under_the_same_ca_and_names(nodes) -> None:
    no, _ = nodes
    old = load_node_keys(no)
    rotation = rotate_node_keys(no, overlap_days=10, now=NOW + timedelta(days=1))
    new = reload_node_keys(no)
    assert new.ca.fingerprint == old.ca.fingerprint
    assert rotation.old == {"signing": old.signing.fingerprint, "tls": old.tls.fingerprint}
    assert rotation.new == {"signing": new.signing.fingerprint, "tls": new.tls.fingerprint}
    assert rotation.overlap_until == NOW + timedelta(days=11)
    assert identity_uris(new.tls.certificate) == identity_uris(old.tls.certificate)
    assert san(new.tls.certificate) == san(old.tls.certificate)
    validity = new.signing.certificate.not_valid_after_utc - NOW
    assert timedelta(days=825) <= validity <= timedelta(days=826)
    bundle = json.loads(export_node_bundle(no))
    assert datetime.fromisoformat(bundle["overlap_until"]) == rotation.overlap_until
    with pytest.raises(RotationInvalid):
        rotate_node_keys(no, overlap_days=0)


def test_a_peer_accepts_old_and_new_until_the_overlap_ends_or_is_retired(nodes) -> None:
    no, pt = nodes
    old = load_node_keys(no)
    old_bundle = export_node_bundle(no)
    rotate_node_keys(no, overlap_days=10, now=NOW + timedelta(days=1))
    new = reload_node_keys(no)
    result = import_peer(pt, export_node_bundle(no), now=NOW + timedelta(days=1))
    assert result.rotated and result.changed
    during = load_trust(pt, now=NOW + timedelta(days=5)).peers["NO"]
    fingerprints = {certificate_fingerprint(c) for c in during.signing_set}
    assert fingerprints == {old.signing.fingerprint, new.signing.fingerprint}
    assert len(during.tls_set) == 2
    after = load_trust(pt, now=NOW + timedelta(days=12)).peers["NO"]
    assert after.signing_set == (after.signing,) and after.tls_set == (after.tls,)
    # The old bundle again is not a rotation back.
    with pytest.raises(PeerBundleInvalid):
        import_peer(pt, old_bundle, now=NOW + timedelta(days=2))
    assert retire_old(pt, ["NO"]) == ["NO"]
    assert len(load_trust(pt, now=NOW + timedelta(days=5)).peers["NO"].signing_set) == 1
    assert retire_old(no) == ["this node"]


def test_certificates_from_another_ca_still_need_replace(nodes, tmp_path) -> None:
    _, pt = nodes
    init_node_dir(tmp_path / "impostor", InitOptions(country="NO"), now=NOW)
    with pytest.raises(PeerAlreadyKnown):
        import_peer(pt, export_node_bundle(tmp_path / "impostor"), now=NOW)
    replaced = import_peer(pt, export_node_bundle(tmp_path / "impostor"), replace=True, now=NOW)
    assert not replaced.rotated
