"""``imi-gateway keys revoke``: revoking certificates and unbinding national systems."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509

from gateway.core.ns import is_authority_id
from gateway.keystore.certs import (
    _cert_pem,
    _load_cert,
    _load_certs,
    _now,
    certificate_fingerprint,
    normalize_fingerprint,
)
from gateway.keystore.errors import RevocationTargetUnknown
from gateway.keystore.layout import (
    NODE_KEY_NAMES,
    REVOKED_HEADER,
    NodePaths,
    _fsync_dir,
    _locked,
    atomic_write,
    node_paths,
)
from gateway.keystore.load import NodeTrust, _read_revoked, load_trust


@dataclass(frozen=True)
class Revocation:
    """What :func:`revoke` did."""

    fingerprints: tuple[str, ...]
    unbound: tuple[str, ...]
    described: tuple[str, ...]
    already_revoked: bool


def revoke(node_dir: str | Path, target: str, *, now: datetime | None = None) -> Revocation:
    """Revoke a certificate by fingerprint, or every certificate bound to an authority.

    The fingerprints are added to revoked.txt (verifiers refuse them); a
    national-system certificate is also unbound (moved from
    ``national/<ID>.pem`` to ``national/revoked/<FP>.pem``). A fingerprint that
    matches no known certificate is still recorded (it may belong to a
    certificate issued elsewhere) and reported as unknown in ``described``.
    Revoking again is harmless.
    """
    paths = node_paths(node_dir)
    moment = _now(now).strftime("%Y-%m-%dT%H:%M:%SZ")
    with _locked(paths):
        trust = load_trust(paths.root)
        revoked = _read_revoked(paths.revoked)
        fingerprint = normalize_fingerprint(target)
        bound = _bound_national(paths)
        if fingerprint is not None:
            targets = [fingerprint]
        elif is_authority_id(target):
            targets = [certificate_fingerprint(c) for c in bound.get(target, [])]
            if not targets:
                raise RevocationTargetUnknown(f"no certificate is bound to authority {target}")
        else:
            raise RevocationTargetUnknown(
                f"{target!r} is neither a SHA-256 fingerprint (64 hex digits) nor an authority id"
            )
        known = _known_certificates(paths, trust, bound)
        described = []
        for fp in targets:
            what = known.get(fp)
            described.append(
                f"{fp}  {what[0]}" if what else f"{fp}  (not a certificate of this node)"
            )
        lines = [
            f"{fp}  # {moment} {known[fp][0] if fp in known else 'unknown certificate'}\n"
            for fp in targets
            if fp not in revoked
        ]
        if lines:
            current = (
                paths.revoked.read_bytes() if paths.revoked.exists() else REVOKED_HEADER.encode()
            )
            if current and not current.endswith(b"\n"):
                current += b"\n"
            atomic_write(paths.revoked, current + "".join(lines).encode("utf-8"), 0o644)
        unbound = _unbind(paths, bound, set(targets))
    already = not lines and not unbound
    return Revocation(tuple(targets), tuple(unbound), tuple(described), already)


def _bound_national(paths: NodePaths) -> dict[str, list[x509.Certificate]]:
    bound: dict[str, list[x509.Certificate]] = {}
    if paths.national_dir.is_dir():
        for entry in sorted(paths.national_dir.glob("*.pem")):
            bound[entry.stem] = _load_certs(entry, f"the certificate of {entry.stem}")
    return bound


def _known_certificates(
    paths: NodePaths, trust: NodeTrust, bound: Mapping[str, list[x509.Certificate]]
) -> dict[str, tuple[str, x509.Certificate]]:
    known: dict[str, tuple[str, x509.Certificate]] = {}
    for name in NODE_KEY_NAMES:
        cert = _load_cert(paths.cert(name), f"the node {name} certificate")
        known[certificate_fingerprint(cert)] = (f"this node's {name} certificate", cert)
    for peer in trust.peers.values():
        for name, cert in zip(NODE_KEY_NAMES, peer.all(), strict=True):
            known[certificate_fingerprint(cert)] = (f"peer {peer.node_id} {name} certificate", cert)
        for name, previous in (("signing", peer.previous_signing), ("tls", peer.previous_tls)):
            for cert in previous:
                what = f"peer {peer.node_id} previous {name} certificate"
                known[certificate_fingerprint(cert)] = (what, cert)
    for authority_id, certs in bound.items():
        for cert in certs:
            known[certificate_fingerprint(cert)] = (f"national system {authority_id}", cert)
    return known


def _unbind(
    paths: NodePaths, bound: Mapping[str, list[x509.Certificate]], targets: set[str]
) -> list[str]:
    unbound = []
    for authority_id, certs in bound.items():
        gone = [c for c in certs if certificate_fingerprint(c) in targets]
        if not gone:
            continue
        archive = paths.national_dir / "revoked"
        archive.mkdir(mode=0o755, exist_ok=True)
        for cert in gone:
            atomic_write(archive / f"{certificate_fingerprint(cert)}.pem", _cert_pem(cert), 0o644)
        kept = [c for c in certs if certificate_fingerprint(c) not in targets]
        bound_path = paths.national_cert(authority_id)
        if kept:
            atomic_write(bound_path, b"".join(_cert_pem(c) for c in kept), 0o644)
        else:
            bound_path.unlink()
            _fsync_dir(bound_path.parent)
        unbound.append(authority_id)
    return unbound
