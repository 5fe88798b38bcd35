"""gateway.keystore: node directory creation, key loading rules, trust store round trips."""

from __future__ import annotations

import json
import os
import pathlib
import stat
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from gateway import config as cfg
from gateway import keystore as ks
from gateway.core import pki
from gateway.core.errors import ConfigurationError


@pytest.fixture(autouse=True)
def _fresh_key_cache() -> object:
    ks.clear_key_cache()
    yield
    ks.clear_key_cache()


def make_node(tmp_path: pathlib.Path, country: str = "NO", **options: object) -> pathlib.Path:
    node_dir = tmp_path / country.lower()
    opts = ks.InitOptions(country=country, **options)  # type: ignore[arg-type]
    ks.init_node_dir(node_dir, opts)
    return node_dir


def mode(path: pathlib.Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def uris(cert: x509.Certificate) -> list[str]:
    return ks.identity_uris(cert)


# --- init ---------------------------------------------------------------------------


def test_init_creates_the_layout_with_private_permissions(tmp_path: pathlib.Path) -> None:
    node = make_node(tmp_path)
    assert mode(node) == 0o700
    assert mode(node / "keys") == 0o700
    for name in ("ca", "signing", "tls"):
        assert mode(node / "keys" / f"{name}.key") == 0o600
        assert (node / "certs" / f"{name}.pem").is_file()
    assert mode(node / "keys" / "data.kek") == 0o600
    assert len((node / "keys" / "data.kek").read_bytes()) == 32
    assert mode(node / "keys" / "audit.hmac") == 0o600
    assert len((node / "keys" / "audit.hmac").read_bytes()) == 32
    assert mode(node / "gateway.toml") == 0o600
    assert sorted(p.name for p in (node / "keys").iterdir()) == [
        "audit.hmac",
        "ca.key",
        "data.kek",
        "signing.key",
        "tls.key",
    ]
    assert list((node / "trust" / "peers").iterdir()) == []
    assert list((node / "national").iterdir()) == []
    assert all(line.startswith("#") for line in (node / "revoked.txt").read_text().splitlines())
    assert not list(tmp_path.glob(".no.*")), "the temporary build directory was left behind"
    config = cfg.load_config(node)
    assert config.node_id == "NO" and config.node.languages == ("nn", "nb")
    assert config.peer.public_url == "https://localhost:9443"


def test_init_writes_a_valid_certificate_chain(tmp_path: pathlib.Path) -> None:
    node = make_node(tmp_path, hosts=("gw.example.no", "192.0.2.7", "::1"))
    keys = ks.load_node_keys(node)
    ca = keys.ca.certificate
    assert keys.node_id == "NO"
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    ca.verify_directly_issued_by(ca)
    for pair in (keys.ca, keys.signing, keys.tls):
        assert isinstance(pair.key, ec.EllipticCurvePrivateKey)
        assert pair.key.curve.name == "secp256r1"
    for pair in (keys.signing, keys.tls):
        pair.certificate.verify_directly_issued_by(ca)
        assert uris(pair.certificate) == ["urn:imi-gateway:node:NO"]
    san = keys.tls.certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.value.get_values_for_type(x509.DNSName) == ["gw.example.no"]
    assert [str(ip) for ip in san.value.get_values_for_type(x509.IPAddress)] == [
        "192.0.2.7",
        "::1",
    ]
    eku = keys.tls.certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    # The node CA can issue national-system certificates.
    issued = pki.issue_national_system(keys.ca.issued, "NO-X", now=datetime.now(UTC))
    issued.certificate.verify_directly_issued_by(ca)


def test_init_refuses_a_non_empty_directory_and_leaves_it_alone(tmp_path: pathlib.Path) -> None:
    node = tmp_path / "node"
    node.mkdir()
    (node / "gateway.toml").write_text("precious")
    with pytest.raises(ks.NodeDirExists) as info:
        ks.init_node_dir(node, ks.InitOptions(country="NO"))
    assert info.value.code == "NODE_DIR_EXISTS" and info.value.exit_status == 3
    assert [p.name for p in node.iterdir()] == ["gateway.toml"]
    assert (node / "gateway.toml").read_text() == "precious"


def test_init_refuses_an_existing_node_directory(tmp_path: pathlib.Path) -> None:
    node = make_node(tmp_path)
    before = (node / "keys" / "ca.key").read_bytes()
    with pytest.raises(ks.NodeDirExists):
        ks.init_node_dir(node, ks.InitOptions(country="NO"))
    assert (node / "keys" / "ca.key").read_bytes() == before


def test_init_uses_an_existing_empty_directory(tmp_path: pathlib.Path) -> None:
    node = tmp_path / "empty"
    node.mkdir(mode=0o755)
    ks.init_node_dir(node, ks.InitOptions(country="PT"))
    assert mode(node) == 0o700
    assert cfg.load_config(node).node.languages == ("pt",)


@pytest.mark.parametrize("country", ["XX", "no", "GR", "NOR", "", "US"])
def test_init_refuses_an_invalid_country(tmp_path: pathlib.Path, country: str) -> None:
    with pytest.raises(ks.NodeIdInvalid) as info:
        ks.init_node_dir(tmp_path / "n", ks.InitOptions(country=country))
    assert info.value.code == "NODE_ID_INVALID"
    assert not (tmp_path / "n").exists()


@pytest.mark.parametrize(
    "options",
    [
        {"languages": ("xx",)},
        {"api_port": 9443},
        {"hosts": ("bad host!",)},
        {"hosts": ()},
        {"public_url": "http://insecure.example"},
    ],
)
def test_init_refuses_invalid_options_before_creating_anything(
    tmp_path: pathlib.Path, options: dict[str, object]
) -> None:
    with pytest.raises(ks.InvalidInput):
        ks.init_node_dir(tmp_path / "n", ks.InitOptions(country="NO", **options))  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_init_failure_midway_leaves_nothing_behind(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> pki.Issued:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pki, "issue_node_tls", broken)
    with pytest.raises(OSError, match="No space"):
        ks.init_node_dir(tmp_path / "n", ks.InitOptions(country="NO"))
    assert list(tmp_path.iterdir()) == []


# --- loading keys ----------------------------------------------------------------------


def test_loading_keys_twice_reuses_the_cached_objects(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    node = make_node(tmp_path)
    ks.clear_key_cache()
    calls = []
    real = serialization.load_pem_private_key

    def counting(data: bytes, password: bytes | None = None, **kw: object) -> object:
        calls.append(1)
        return real(data, password)

    monkeypatch.setattr(ks.serialization, "load_pem_private_key", counting)
    first = ks.load_node_keys(node)
    second = ks.load_node_keys(str(node))
    third = ks.load_node_keys(node / ".." / node.name)
    assert first is second is third  # however the directory is spelled
    assert first.signing.key is second.signing.key
    assert len(calls) == 3  # ca, signing, tls: each parsed once
    assert ks.load_node_keys(node) is first
    ks.clear_key_cache()
    assert ks.load_node_keys(node) is not first


@pytest.mark.parametrize("bad_mode", [0o644, 0o640, 0o604, 0o660])
def test_a_key_readable_by_others_is_refused(tmp_path: pathlib.Path, bad_mode: int) -> None:
    node = make_node(tmp_path)
    ks.clear_key_cache()
    os.chmod(node / "keys" / "tls.key", bad_mode)
    with pytest.raises(ks.KeyPermissionsTooOpen) as info:
        ks.load_node_keys(node)
    error = info.value
    assert isinstance(error, ConfigurationError)
    assert error.code == "KEYSTORE_PERMISSIONS_TOO_OPEN" and error.exit_status == 3
    assert f"{bad_mode:04o}" in str(error) and "tls.key" in str(error) and "chmod 600" in str(error)


def test_a_key_directory_open_to_others_is_refused(tmp_path: pathlib.Path) -> None:
    node = make_node(tmp_path)
    ks.clear_key_cache()
    os.chmod(node / "keys", 0o755)
    with pytest.raises(ks.KeyPermissionsTooOpen, match="chmod 700"):
        ks.load_node_keys(node)
    with pytest.raises(ks.KeyPermissionsTooOpen):
        ks.load_data_kek(node)


def test_a_world_readable_data_kek_is_refused(tmp_path: pathlib.Path) -> None:
    node = make_node(tmp_path)
    assert len(ks.load_data_kek(node)) == 32
    os.chmod(node / "keys" / "data.kek", 0o644)
    with pytest.raises(ks.KeyPermissionsTooOpen):
        ks.load_data_kek(node)


def test_a_key_that_does_not_match_its_certificate_is_refused(tmp_path: pathlib.Path) -> None:
    node = make_node(tmp_path)
    ks.clear_key_cache()
    os.replace(node / "keys" / "tls.key", node / "keys" / "signing.key")
    with pytest.raises(ks.KeyStoreError, match="does not match"):
        ks.load_node_keys(node)


def test_a_missing_key_file_is_reported(tmp_path: pathlib.Path) -> None:
    node = make_node(tmp_path)
    ks.clear_key_cache()
    (node / "keys" / "ca.key").unlink()
    with pytest.raises(ks.KeyFileMissing) as info:
        ks.load_node_keys(node)
    assert info.value.code == "KEYSTORE_FILE_MISSING" and "ca.key" in str(info.value)


def test_a_certificate_from_another_ca_is_refused(tmp_path: pathlib.Path) -> None:
    node = make_node(tmp_path)
    other = make_node(tmp_path, "SE")
    ks.clear_key_cache()
    for sub in ("keys/signing.key", "certs/signing.pem"):
        (node / sub).write_bytes((other / sub).read_bytes())
    with pytest.raises(ks.KeyStoreError, match="not issued by the node CA"):
        ks.load_node_keys(node)


def test_a_directory_that_is_not_a_node_directory(tmp_path: pathlib.Path) -> None:
    with pytest.raises(cfg.ConfigNotFound):
        ks.load_node_keys(tmp_path)
    with pytest.raises(cfg.ConfigNotFound):
        ks.load_trust(tmp_path)


def test_atomic_write_sets_the_mode_and_leaves_no_temporary_file(tmp_path: pathlib.Path) -> None:
    target = tmp_path / "secret"
    target.write_bytes(b"old")
    os.chmod(target, 0o644)
    ks.atomic_write(target, b"new", 0o600)
    assert target.read_bytes() == b"new" and mode(target) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["secret"]


# --- national systems -------------------------------------------------------------------


def test_issue_national_certificate_writes_key_cert_and_binds_it(tmp_path: pathlib.Path) -> None:
    node = make_node(tmp_path)
    out = tmp_path / "handover"
    issued = ks.issue_national_certificate(node, "NO-HELSEDIR", out, days=30)
    assert mode(out) == 0o700
    assert mode(issued.key_path) == 0o600
    key = serialization.load_pem_private_key(issued.key_path.read_bytes(), None)
    cert = x509.load_pem_x509_certificate(issued.certificate_path.read_bytes())
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.public_key().public_numbers() == cert.public_key().public_numbers()  # type: ignore[union-attr]
    assert uris(cert) == ["urn:imi-gateway:authority:NO-HELSEDIR"]
    node_ca = ks.load_node_keys(node).ca.certificate
    cert.verify_directly_issued_by(node_ca)
    assert x509.load_pem_x509_certificate(issued.node_ca_path.read_bytes()) == node_ca
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == timedelta(days=30)
    # The node keeps the certificate, never the national system's key.
    assert not list(node.rglob("NO-HELSEDIR.key"))
    trust = ks.load_trust(node)
    assert trust.national["NO-HELSEDIR"] == (cert,)
    assert issued.registered
    assert cfg.load_config(node).authority_config("NO-HELSEDIR") is not None


def test_issuing_again_binds_both_certificates_for_a_rotation(tmp_path: pathlib.Path) -> None:
    node = make_node(tmp_path)
    first = ks.issue_national_certificate(node, "NO-HELSEDIR", tmp_path / "a")
    second = ks.issue_national_certificate(node, "NO-HELSEDIR", tmp_path / "b", kind="rsa")
    assert not second.registered
    assert isinstance(
        serialization.load_pem_private_key(second.key_path.read_bytes(), None), rsa.RSAPrivateKey
    )
    assert ks.load_trust(node).national["NO-HELSEDIR"] == (first.certificate, second.certificate)
    assert len(cfg.load_config(node).authorities) == 1


@pytest.mark.parametrize("authority_id", ["PT-OMD", "NO", "no-helsedir", "NO-ÆØÅ", "XX-FOO"])
def test_issue_national_refuses_a_foreign_or_malformed_authority(
    tmp_path: pathlib.Path, authority_id: str
) -> None:
    node = make_node(tmp_path)
    with pytest.raises(ks.AuthorityIdInvalid) as info:
        ks.issue_national_certificate(node, authority_id, tmp_path / "out")
    assert info.value.code == "AUTHORITY_ID_INVALID" and info.value.exit_status == 1
    assert not (tmp_path / "out").exists()
    assert ks.load_trust(node).national == {}


def test_issue_national_never_overwrites_a_handover_file(tmp_path: pathlib.Path) -> None:
    node = make_node(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "NO-HELSEDIR.key").write_text("someone else's key")
    with pytest.raises(ks.OutputExists):
        ks.issue_national_certificate(node, "NO-HELSEDIR", out)
    assert (out / "NO-HELSEDIR.key").read_text() == "someone else's key"
    assert ks.load_trust(node).national == {}


def test_load_trust_refuses_a_national_certificate_not_issued_by_the_node_ca(
    tmp_path: pathlib.Path,
) -> None:
    node = make_node(tmp_path)
    foreign_ca = pki.make_ca("NO", now=datetime.now(UTC))
    foreign = pki.issue_national_system(foreign_ca, "NO-EVIL", now=datetime.now(UTC))
    (node / "national" / "NO-EVIL.pem").write_bytes(
        foreign.certificate.public_bytes(serialization.Encoding.PEM)
    )
    with pytest.raises(ks.KeyStoreError, match="not issued by the node CA"):
        ks.load_trust(node)


# --- peers: export / import ---------------------------------------------------------------


def test_export_import_round_trip_between_two_nodes(tmp_path: pathlib.Path) -> None:
    no = make_node(tmp_path, "NO", hosts=("gw.example.no",))
    pt = make_node(tmp_path, "PT", peer_port=9444, api_port=8444, metrics_port=9101)
    no_bundle = ks.export_node_bundle(no)
    pt_bundle = ks.export_node_bundle(pt)
    assert b"PRIVATE KEY" not in no_bundle
    data = json.loads(no_bundle)
    assert data["node_id"] == "NO" and data["url"] == "https://gw.example.no:9443"

    imported = ks.import_peer(pt, no_bundle)
    assert imported.changed and imported.url == "https://gw.example.no:9443"
    ks.import_peer(no, pt_bundle, url="https://pt.example:9444/")

    no_keys, pt_keys = ks.load_node_keys(no), ks.load_node_keys(pt)
    pt_trust = ks.load_trust(pt)
    peer = pt_trust.peers["NO"]
    assert peer.ca == no_keys.ca.certificate
    assert peer.signing == no_keys.signing.certificate
    assert peer.tls == no_keys.tls.certificate
    assert imported.ca_fingerprint == no_keys.ca.fingerprint == data["fingerprints"]["ca"]
    assert ks.load_trust(no).peers["PT"].tls == pt_keys.tls.certificate
    assert cfg.load_config(pt).peers == (cfg.PeerConfig("NO", "https://gw.example.no:9443"),)
    assert cfg.load_config(no).peers == (cfg.PeerConfig("PT", "https://pt.example:9444/"),)

    # Importing the same bundle again changes nothing; a new URL is applied.
    assert not ks.import_peer(pt, no_bundle).changed
    assert ks.import_peer(pt, no_bundle, url="https://new.example.no").changed
    assert cfg.load_config(pt).peer_config("NO") == cfg.PeerConfig("NO", "https://new.example.no")
    # The operator's URL survives a later import without --url.
    assert not ks.import_peer(pt, no_bundle).changed
    assert cfg.load_config(pt).peer_config("NO") == cfg.PeerConfig("NO", "https://new.example.no")


def test_other_certificates_for_a_known_peer_need_replace(tmp_path: pathlib.Path) -> None:
    no = make_node(tmp_path, "NO")
    pt = make_node(tmp_path, "PT")
    pt2 = make_node(tmp_path / "second", "PT")
    ks.import_peer(no, ks.export_node_bundle(pt))
    new_bundle = ks.export_node_bundle(pt2)
    with pytest.raises(ks.PeerAlreadyKnown) as info:
        ks.import_peer(no, new_bundle)
    assert info.value.code == "PEER_ALREADY_KNOWN"
    assert ks.load_trust(no).peers["PT"].ca == ks.load_node_keys(pt).ca.certificate
    ks.import_peer(no, new_bundle, replace=True)
    assert ks.load_trust(no).peers["PT"].ca == ks.load_node_keys(pt2).ca.certificate


def _tampered(bundle: bytes, **changes: object) -> bytes:
    data = json.loads(bundle)
    for key, value in changes.items():
        if key in ("ca", "signing", "tls"):
            data["certificates"][key] = value
        else:
            data[key] = value
    return json.dumps(data).encode()


def test_invalid_bundles_are_refused(tmp_path: pathlib.Path) -> None:
    no = make_node(tmp_path, "NO")
    pt = make_node(tmp_path, "PT")
    se = make_node(tmp_path, "SE")
    bundle = ks.export_node_bundle(pt)
    se_signing = (se / "certs" / "signing.pem").read_text()
    cases = {
        "not json": b"\x00garbage",
        "wrong format": _tampered(bundle, format="something-else"),
        "future version": _tampered(bundle, version=2),
        "bad node id": _tampered(bundle, node_id="XX"),
        "node id of another peer": _tampered(bundle, node_id="SE"),
        "signing cert from another CA": _tampered(bundle, signing=se_signing),
        "ca is not a CA": _tampered(bundle, ca=se_signing),
        "not PEM": _tampered(bundle, tls="-----BEGIN CERTIFICATE-----\nAAAA\n"),
        "own bundle": ks.export_node_bundle(no),
        "plain http URL": _tampered(bundle, url="http://pt.example"),
        "no URL at all": _tampered(bundle, url=None),
    }
    for name, data in cases.items():
        with pytest.raises(ks.PeerBundleInvalid) as info:
            ks.import_peer(no, data)
        assert info.value.code == "PEER_BUNDLE_INVALID", name
    assert ks.load_trust(no).peers == {}
    assert cfg.load_config(no).peers == ()


def test_a_bundle_with_expired_certificates_is_refused(tmp_path: pathlib.Path) -> None:
    no = make_node(tmp_path, "NO")
    pt = make_node(tmp_path, "PT")
    later = datetime.now(UTC) + timedelta(days=900)
    with pytest.raises(ks.PeerBundleInvalid, match="not valid now"):
        ks.import_peer(no, ks.export_node_bundle(pt), now=later)


# --- revocation ---------------------------------------------------------------------------


def test_revoking_a_national_fingerprint_unbinds_and_archives_it(tmp_path: pathlib.Path) -> None:
    node = make_node(tmp_path)
    old = ks.issue_national_certificate(node, "NO-HELSEDIR", tmp_path / "a")
    new = ks.issue_national_certificate(node, "NO-HELSEDIR", tmp_path / "b")
    colon_form = ":".join(old.fingerprint[i : i + 2] for i in range(0, 64, 2)).upper()
    result = ks.revoke(node, colon_form)
    assert result.fingerprints == (old.fingerprint,)
    assert result.unbound == ("NO-HELSEDIR",) and not result.already_revoked
    trust = ks.load_trust(node)
    assert trust.national["NO-HELSEDIR"] == (new.certificate,)
    assert old.fingerprint in trust.revoked and trust.is_revoked(old.certificate)
    assert (node / "national" / "revoked" / f"{old.fingerprint}.pem").is_file()
    assert "national system NO-HELSEDIR" in ks.read_revocations(node)[old.fingerprint]
    again = ks.revoke(node, old.fingerprint)
    assert again.already_revoked
    assert (node / "revoked.txt").read_text().count(old.fingerprint) == 1


def test_revoking_an_authority_unbinds_all_its_certificates(tmp_path: pathlib.Path) -> None:
    node = make_node(tmp_path)
    a = ks.issue_national_certificate(node, "NO-HELSEDIR", tmp_path / "a")
    b = ks.issue_national_certificate(node, "NO-HELSEDIR", tmp_path / "b")
    result = ks.revoke(node, "NO-HELSEDIR")
    assert set(result.fingerprints) == {a.fingerprint, b.fingerprint}
    trust = ks.load_trust(node)
    assert "NO-HELSEDIR" not in trust.national
    assert {a.fingerprint, b.fingerprint} <= trust.revoked
    assert not (node / "national" / "NO-HELSEDIR.pem").exists()
    # Still registered: it can be issued a new certificate.
    assert cfg.load_config(node).authority_config("NO-HELSEDIR") is not None
    with pytest.raises(ks.RevocationTargetUnknown):
        ks.revoke(node, "NO-HELSEDIR")


def test_revoking_a_peer_certificate_blocks_its_reimport(tmp_path: pathlib.Path) -> None:
    no = make_node(tmp_path, "NO")
    pt = make_node(tmp_path, "PT")
    bundle = ks.export_node_bundle(pt)
    ks.import_peer(no, bundle)
    tls = ks.load_node_keys(pt).tls
    result = ks.revoke(no, tls.fingerprint)
    assert result.unbound == () and "peer PT tls certificate" in result.described[0]
    assert ks.load_trust(no).is_revoked(tls.certificate)
    with pytest.raises(ks.PeerBundleInvalid, match="revoked"):
        ks.import_peer(no, bundle, replace=True)


@pytest.mark.parametrize("target", ["garbage", "NO-NOBODY", "abc123"])
def test_revoking_an_unknown_target_is_refused(tmp_path: pathlib.Path, target: str) -> None:
    node = make_node(tmp_path)
    with pytest.raises(ks.RevocationTargetUnknown) as info:
        ks.revoke(node, target)
    assert info.value.code == "REVOCATION_TARGET_UNKNOWN"


def test_an_unknown_but_well_formed_fingerprint_is_recorded(tmp_path: pathlib.Path) -> None:
    node = make_node(tmp_path)
    fp = "ab" * 32
    result = ks.revoke(node, fp)
    assert "not a certificate of this node" in result.described[0]
    assert fp in ks.load_trust(node).revoked


def test_a_malformed_revocation_list_is_reported(tmp_path: pathlib.Path) -> None:
    node = make_node(tmp_path)
    with (node / "revoked.txt").open("a") as handle:
        handle.write("not-a-fingerprint\n")
    with pytest.raises(ks.KeyStoreError, match=r"revoked\.txt:4"):
        ks.load_trust(node)
