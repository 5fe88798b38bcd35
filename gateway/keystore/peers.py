"""``imi-gateway keys export`` and ``keys import-peer``: exchanging node bundles with peers."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509

from gateway import config as config_mod
from gateway.core.ns import is_node_id
from gateway.keystore.certs import _cert_pem, _load_cert, _now, certificate_fingerprint
from gateway.keystore.errors import PeerAlreadyKnown, PeerBundleInvalid
from gateway.keystore.layout import NODE_KEY_NAMES, _file_mode, _locked, atomic_write, node_paths
from gateway.keystore.load import PeerCertificates, _validate_peer, load_trust
from gateway.keystore.previous import read_previous, remove_previous, write_previous
from gateway.keystore.rotation import DEFAULT_OVERLAP_DAYS, own_overlap_until

BUNDLE_FORMAT = "imi-gateway-node-bundle"
BUNDLE_VERSION = 1


def export_node_bundle(node_dir: str | Path) -> bytes:
    """The public bundle a peer operator imports: node id, peer URL and certificates.

    JSON (UTF-8) with the PEM certificates inside. It holds no secret, but the
    receiving operator must compare the CA fingerprint with this node's
    (``imi-gateway keys show``) over another channel before trusting it.
    """
    paths = node_paths(node_dir)
    config = config_mod.load_config(paths.root)
    certs = {
        name: _load_cert(paths.cert(name), f"the node {name} certificate")
        for name in NODE_KEY_NAMES
    }
    bundle = {
        "format": BUNDLE_FORMAT,
        "version": BUNDLE_VERSION,
        "node_id": config.node_id,
        "url": config.peer.public_url,
        "certificates": {name: _cert_pem(cert).decode("ascii") for name, cert in certs.items()},
        "fingerprints": {name: certificate_fingerprint(cert) for name, cert in certs.items()},
    }
    overlap_until = own_overlap_until(paths.root)
    if overlap_until is not None:
        # A rotation is under way: peers keep the certificates they have until then.
        bundle["overlap_until"] = overlap_until.isoformat()
    return (json.dumps(bundle, indent=2) + "\n").encode("utf-8")


@dataclass(frozen=True)
class ImportedPeer:
    """The result of :func:`import_peer`."""

    certificates: PeerCertificates
    url: str
    changed: bool
    #: The peer's certificates were added next to its old ones (a rotation, same CA).
    rotated: bool = False

    @property
    def ca_fingerprint(self) -> str:
        return certificate_fingerprint(self.certificates.ca)


def parse_node_bundle(
    bundle: bytes, *, now: datetime | None = None
) -> tuple[PeerCertificates, str | None]:
    """Check a peer bundle; return its certificates and announced URL."""
    try:
        data = json.loads(bundle.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise PeerBundleInvalid(
            "the bundle is not UTF-8 JSON (use the output of keys export)"
        ) from None
    if not isinstance(data, dict) or data.get("format") != BUNDLE_FORMAT:
        raise PeerBundleInvalid(f"the bundle is not an {BUNDLE_FORMAT}")
    if data.get("version") != BUNDLE_VERSION:
        raise PeerBundleInvalid(f"unsupported bundle version {data.get('version')!r}")
    node_id = data.get("node_id")
    if not isinstance(node_id, str) or not is_node_id(node_id):
        raise PeerBundleInvalid("the bundle's node_id is not an EEA country code")
    url = data.get("url")
    if url is not None and not isinstance(url, str):
        raise PeerBundleInvalid("the bundle's url is not a string")
    pems = data.get("certificates")
    if not isinstance(pems, dict) or set(pems) != set(NODE_KEY_NAMES):
        raise PeerBundleInvalid("the bundle must hold exactly the ca, signing and tls certificates")
    certs: dict[str, x509.Certificate] = {}
    for name in NODE_KEY_NAMES:
        pem = pems[name]
        try:
            if not isinstance(pem, str):
                raise ValueError
            certs[name] = x509.load_pem_x509_certificate(pem.encode("ascii"))
        except (ValueError, UnicodeEncodeError):
            raise PeerBundleInvalid(f"the bundle's {name} certificate is not PEM") from None
    _validate_peer(
        node_id, certs["ca"], certs["signing"], certs["tls"], PeerBundleInvalid, "bundle"
    )
    moment = _now(now)
    for name, cert in certs.items():
        if not cert.not_valid_before_utc <= moment <= cert.not_valid_after_utc:
            raise PeerBundleInvalid(f"the bundle's {name} certificate is not valid now")
    return PeerCertificates(node_id, certs["ca"], certs["signing"], certs["tls"]), url


def import_peer(
    node_dir: str | Path,
    bundle_bytes: bytes,
    *,
    url: str | None = None,
    replace: bool = False,
    now: datetime | None = None,
) -> ImportedPeer:
    """Store a peer's certificates under trust/peers/<ID>/ and add it to gateway.toml.

    The peer's URL is ``url`` if given, else the one already configured for
    the peer, else the one announced in the bundle. Importing the same
    certificates again changes at most the URL. New signing and TLS
    certificates from the peer's pinned CA are a key rotation: they are added,
    and the old ones stay accepted until the overlap the bundle announces (or
    30 days) ends. Certificates from another CA are refused
    (:class:`PeerAlreadyKnown`) unless ``replace`` is true: then every old
    certificate is dropped (revoke them if compromised).
    """
    paths = node_paths(node_dir)
    peer, announced = parse_node_bundle(bundle_bytes, now=now)
    with _locked(paths):
        configured = config_mod.load_config(paths.root).peer_config(peer.node_id)
        peer_url = url or (configured.url if configured else None) or announced
        if not peer_url:
            raise PeerBundleInvalid("the bundle announces no URL: give one with --url")
        try:
            config_mod.PeerConfig(peer.node_id, peer_url)
        except config_mod.ConfigValueInvalid as exc:
            raise PeerBundleInvalid(f"peer URL: {exc.message}") from None
        own = load_trust(paths.root)
        if peer.node_id == own.node_id:
            raise PeerBundleInvalid(f"the bundle is this node's own ({own.node_id})")
        for cert in peer.all():
            if certificate_fingerprint(cert) in own.revoked:
                raise PeerBundleInvalid(
                    f"the bundle holds a revoked certificate ({certificate_fingerprint(cert)})"
                )
        existing = own.peers.get(peer.node_id)
        same = existing is not None and [certificate_fingerprint(c) for c in existing.all()] == [
            certificate_fingerprint(c) for c in peer.all()
        ]
        rotation = (
            existing is not None
            and not same
            and not replace
            and certificate_fingerprint(existing.ca) == certificate_fingerprint(peer.ca)
        )
        if existing is not None and not same and not replace and not rotation:
            raise PeerAlreadyKnown(
                f"peer {peer.node_id} is already known with another CA; "
                "check the new fingerprints with its operator, then import with --replace"
            )
        if rotation:
            assert existing is not None
            _check_newer(existing, peer)
        text = paths.config.read_text(encoding="utf-8")
        new_text = config_mod.with_peer(text, paths.root, peer.node_id, peer_url)
        if not same:
            directory = paths.peer_dir(peer.node_id)
            directory.mkdir(mode=0o755, parents=True, exist_ok=True)
            if rotation:
                assert existing is not None
                _keep_previous(directory, existing, peer, _bundle_overlap(bundle_bytes), now)
            else:
                remove_previous(directory)
            for name, cert in zip(NODE_KEY_NAMES, peer.all(), strict=True):
                atomic_write(directory / f"{name}.pem", _cert_pem(cert), 0o644)
        if new_text != text:
            atomic_write(paths.config, new_text.encode("utf-8"), _file_mode(paths.config))
    return ImportedPeer(peer, peer_url, changed=not same or new_text != text, rotated=rotation)


def _check_newer(existing: PeerCertificates, peer: PeerCertificates) -> None:
    """A rotation brings certificates newer than the current ones (not an old bundle again)."""
    for name, old, new in (
        ("signing", existing.signing, peer.signing),
        ("tls", existing.tls, peer.tls),
    ):
        if new.not_valid_before_utc < old.not_valid_before_utc:
            raise PeerBundleInvalid(
                f"the bundle's {name} certificate is older than the one this node has for "
                f"peer {peer.node_id} (an old bundle?)"
            )


def _bundle_overlap(bundle: bytes) -> datetime | None:
    """The end of the overlap a rotated node's bundle announces, if any."""
    value = json.loads(bundle.decode("utf-8")).get("overlap_until")
    if value is None:
        return None
    try:
        until = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        until = None
    if until is None or until.tzinfo is None:
        raise PeerBundleInvalid("the bundle's overlap_until is not an ISO 8601 time with offset")
    return until


def _keep_previous(
    directory: Path,
    existing: PeerCertificates,
    peer: PeerCertificates,
    announced: datetime | None,
    now: datetime | None,
) -> None:
    """Keep the peer's replaced certificates next to the new ones until the overlap ends."""
    moment = _now(now)
    earlier = read_previous(directory, f"peer {peer.node_id}")
    active = earlier is not None and earlier.active(moment)
    until = announced or moment + timedelta(days=DEFAULT_OVERLAP_DAYS)
    if earlier is not None and active:
        until = max(until, earlier.until)
    new = {certificate_fingerprint(peer.signing), certificate_fingerprint(peer.tls)}
    signing = (*(earlier.signing if earlier and active else ()), existing.signing)
    tls = (*(earlier.tls if earlier and active else ()), existing.tls)
    write_previous(
        directory,
        tuple(c for c in signing if certificate_fingerprint(c) not in new),
        tuple(c for c in tls if certificate_fingerprint(c) not in new),
        until,
    )
