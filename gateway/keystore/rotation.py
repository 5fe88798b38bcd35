"""``imi-gateway keys rotate`` and ``keys retire-old``: renewing the node's own keys with an overlap.

:func:`rotate_node_keys` issues a new signing key and a new TLS key with
their certificates (825 days), from the same node CA, bound to the same node
id and, for TLS, to the same DNS names and addresses as the certificate they
replace. The new keys replace the old ones on disk (the old private keys are
gone); the old certificates are kept in ``certs/previous/`` until the end of
the overlap (:mod:`gateway.keystore.previous`), and the node's exported
bundle carries that end (``overlap_until``). A running node starts using the
new keys at its next trust reload (``imi-gateway reload``): first let the
peers import the new bundle (``keys import-peer`` adds the new certificates
next to the old ones, see :func:`gateway.keystore.peers.import_peer`), then
reload, and nothing sent during the change is refused.

:func:`retire_old` ends an overlap early: it drops the previous certificates
of this node and of its peers (all, or those named).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509

from gateway.core import pki
from gateway.keystore.certs import _cert_pem, _key_pem, _now, certificate_fingerprint
from gateway.keystore.errors import RotationInvalid
from gateway.keystore.layout import _locked, atomic_write, node_paths
from gateway.keystore.load import _load_node_keys, clear_key_cache
from gateway.keystore.previous import read_previous, remove_previous, write_previous

#: How long peers accept a replaced certificate next to its successor, by default.
DEFAULT_OVERLAP_DAYS = 30
#: Validity of the node's signing and TLS certificates (as ``init``).
NODE_CERT_DAYS = 825


@dataclass(frozen=True)
class Rotation:
    """The result of :func:`rotate_node_keys`: fingerprints by role, and the overlap's end."""

    node_id: str
    old: dict[str, str]
    new: dict[str, str]
    overlap_until: datetime


def _tls_names(cert: x509.Certificate) -> tuple[list[str], list[str]]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return [], []
    dns = list(san.get_values_for_type(x509.DNSName))
    ips = [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    return dns, ips


def rotate_node_keys(
    node_dir: str | Path,
    *,
    overlap_days: int = DEFAULT_OVERLAP_DAYS,
    days: int = NODE_CERT_DAYS,
    now: datetime | None = None,
) -> Rotation:
    """Replace the node's signing and TLS keys and certificates; keep the old certificates.

    The CA stays (peers pin it; a new CA is a new node identity, imported
    with ``--replace``). Raises :class:`RotationInvalid` for an overlap outside
    1-365 days.
    """
    if not 1 <= overlap_days <= 365:
        raise RotationInvalid("the overlap must be between 1 and 365 days")
    moment = _now(now)
    paths = node_paths(node_dir)
    with _locked(paths):
        keys = _load_node_keys(paths)  # fresh from disk, checked; not the process cache
        dns, ips = _tls_names(keys.tls.certificate)
        signing = pki.issue_node_signing(keys.ca.issued, keys.node_id, now=moment, days=days)
        tls = pki.issue_node_tls(
            keys.ca.issued,
            keys.node_id,
            now=moment,
            days=days,
            dns_names=dns or ["localhost"],
            ip_addresses=ips,
        )
        until = moment + timedelta(days=overlap_days)
        earlier = read_previous(paths.certs_dir, f"node {keys.node_id}")
        kept_signing = earlier.signing if earlier and earlier.active(moment) else ()
        kept_tls = earlier.tls if earlier and earlier.active(moment) else ()
        write_previous(
            paths.certs_dir,
            (*kept_signing, keys.signing.certificate),
            (*kept_tls, keys.tls.certificate),
            until,
        )
        # Each pair is written key first: a crash in between leaves a key that does not match
        # its certificate, which the node refuses at start (rotate again to repair).
        for name, issued in (("signing", signing), ("tls", tls)):
            atomic_write(paths.key(name), _key_pem(issued.key), 0o600)
            atomic_write(paths.cert(name), _cert_pem(issued.certificate), 0o644)
    clear_key_cache()
    return Rotation(
        node_id=keys.node_id,
        old={"signing": keys.signing.fingerprint, "tls": keys.tls.fingerprint},
        new={
            "signing": certificate_fingerprint(signing.certificate),
            "tls": certificate_fingerprint(tls.certificate),
        },
        overlap_until=until,
    )


def own_overlap_until(node_dir: str | Path, *, now: datetime | None = None) -> datetime | None:
    """The end of this node's rotation overlap, if one is running."""
    paths = node_paths(node_dir)
    previous = read_previous(paths.certs_dir, "this node")
    if previous is None or not previous.active(_now(now)):
        return None
    return previous.until


def retire_old(node_dir: str | Path, peers: Sequence[str] = ()) -> list[str]:
    """Drop previous certificates now: this node's and every peer's, or only ``peers``'.

    Returns what was dropped (``"this node"`` and peer ids).
    """
    paths = node_paths(node_dir)
    dropped: list[str] = []
    with _locked(paths):
        if not peers and remove_previous(paths.certs_dir):
            dropped.append("this node")
        names = list(peers)
        if not names and paths.peers_dir.is_dir():
            names = sorted(p.name for p in paths.peers_dir.iterdir() if p.is_dir())
        for peer in names:
            directory = paths.peer_dir(peer)
            if not directory.is_dir():
                raise RotationInvalid(f"peer {peer} is not known to this node")
            if remove_previous(directory):
                dropped.append(peer)
    return dropped


__all__ = [
    "DEFAULT_OVERLAP_DAYS",
    "NODE_CERT_DAYS",
    "Rotation",
    "own_overlap_until",
    "retire_old",
    "rotate_node_keys",
]
