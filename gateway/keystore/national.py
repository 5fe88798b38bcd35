"""``imi-gateway keys issue-national``: certificates bound to a national authority."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509

from gateway import config as config_mod
from gateway.core import pki
from gateway.core.errors import InvalidInput
from gateway.core.ns import is_authority_id
from gateway.keystore.certs import _cert_pem, _key_pem, _now, certificate_fingerprint
from gateway.keystore.errors import AuthorityIdInvalid, OutputExists
from gateway.keystore.layout import _file_mode, _locked, atomic_write, node_paths
from gateway.keystore.load import load_node_keys


@dataclass(frozen=True)
class NationalIssued:
    """A certificate issued to a national system, and where its files went."""

    authority_id: str
    certificate: x509.Certificate
    key_path: Path
    certificate_path: Path
    node_ca_path: Path
    registered: bool

    @property
    def fingerprint(self) -> str:
        return certificate_fingerprint(self.certificate)


def check_authority_id(authority_id: str, node_id: str) -> None:
    """Raise :class:`AuthorityIdInvalid` unless ``authority_id`` belongs to node ``node_id``."""
    if not is_authority_id(authority_id):
        raise AuthorityIdInvalid(
            f"{authority_id!r} is not an authority id (country code, hyphen, 1-40 upper-case "
            "ASCII letters, digits or hyphens, e.g. NO-HELSEDIR)"
        )
    if authority_id[:2] != node_id:
        raise AuthorityIdInvalid(
            f"{authority_id} belongs to country {authority_id[:2]}; this node ({node_id}) "
            "only issues certificates to its own country's authorities"
        )


def issue_national_certificate(
    node_dir: str | Path,
    authority_id: str,
    out_dir: str | Path,
    *,
    kind: str = "ec",
    days: int = 825,
    now: datetime | None = None,
    coordinator: bool = False,
) -> NationalIssued:
    """Issue a certificate bound to ``authority_id`` for its national system.

    Writes ``<AUTHORITY_ID>.key`` (0600: it belongs to the national system,
    hand it over securely and delete this copy), ``<AUTHORITY_ID>.pem`` and
    ``node-ca.pem`` (to verify the node's TLS certificate and signatures)
    into ``out_dir`` (created 0700 if missing; existing files are never
    overwritten), then binds the certificate to the authority under
    ``national/`` (next to any certificate already bound, for a rotation) and
    registers the authority in gateway.toml if it is not yet.

    ``coordinator=True`` issues a coordinator's certificate instead
    (``pki.issue_coordinator``: marked as a coordinator's; bound the same way,
    but not registered as an authority: ``imi-gateway coordinators add``
    registers the coordinator).
    """
    paths = node_paths(node_dir)
    keys = load_node_keys(paths.root)
    check_authority_id(authority_id, keys.node_id)
    if kind not in ("ec", "rsa", "rsa3072"):
        raise InvalidInput(f"unknown key kind {kind!r} (ec, rsa, rsa3072)")
    if not 1 <= days <= 3650:
        raise InvalidInput("the validity must be between 1 and 3650 days")
    out = Path(out_dir).absolute()
    key_path = out / f"{authority_id}.key"
    cert_path = out / f"{authority_id}.pem"
    ca_path = out / "node-ca.pem"
    for existing in (key_path, cert_path):
        if existing.exists():
            raise OutputExists(f"{existing} already exists; refusing to overwrite it")
    issue = pki.issue_coordinator if coordinator else pki.issue_national_system
    issued = issue(keys.ca.issued, authority_id, now=_now(now), days=days, kind=kind)
    with _locked(paths):
        text = paths.config.read_text(encoding="utf-8")
        new_text = (
            text if coordinator else config_mod.with_authority(text, paths.root, authority_id)
        )
        if not out.exists():
            out.mkdir(mode=0o700, parents=True)
        atomic_write(key_path, _key_pem(issued.key), 0o600)
        atomic_write(cert_path, _cert_pem(issued.certificate), 0o644)
        atomic_write(ca_path, _cert_pem(keys.ca.certificate), 0o644)
        bound = paths.national_cert(authority_id)
        previous = bound.read_bytes() if bound.exists() else b""
        atomic_write(bound, previous + _cert_pem(issued.certificate), 0o644)
        if new_text != text:
            atomic_write(paths.config, new_text.encode("utf-8"), _file_mode(paths.config))
    return NationalIssued(
        authority_id, issued.certificate, key_path, cert_path, ca_path, new_text != text
    )
