"""Certificates kept through a key rotation's overlap: ``previous/`` next to the current ones.

After ``keys rotate`` the node's replaced signing and TLS certificates are
kept in ``certs/previous/``; after ``keys import-peer`` of a rotated peer's
bundle, the peer's replaced ones in ``trust/peers/<ID>/previous/``. Either
directory holds ``signing.pem`` and ``tls.pem`` (one or more certificates
each, older first) and ``overlap-until``: the ISO 8601 UTC time until which
the old certificates are still accepted. After it they are ignored (and
``keys retire-old`` removes the directory at once).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509

from gateway.keystore.certs import _cert_pem, _load_certs, certificate_fingerprint
from gateway.keystore.errors import KeyStoreError
from gateway.keystore.layout import _fsync_dir, atomic_write

PREVIOUS_DIR = "previous"
OVERLAP_FILE = "overlap-until"


@dataclass(frozen=True)
class Previous:
    """Replaced certificates still accepted until ``until``."""

    signing: tuple[x509.Certificate, ...]
    tls: tuple[x509.Certificate, ...]
    until: datetime

    def active(self, now: datetime) -> bool:
        return now < self.until


def read_previous(directory: Path, what: str) -> Previous | None:
    """The ``previous/`` certificates under ``directory``, or None when there are none."""
    previous = directory / PREVIOUS_DIR
    if not previous.is_dir():
        return None
    try:
        text = (previous / OVERLAP_FILE).read_text(encoding="ascii").strip()
        until = datetime.fromisoformat(text)
    except (OSError, ValueError, UnicodeDecodeError):
        raise KeyStoreError(
            f"{previous / OVERLAP_FILE}: the end of the overlap of {what} is not an ISO 8601 time"
        ) from None
    if until.tzinfo is None:
        raise KeyStoreError(f"{previous / OVERLAP_FILE}: the time must carry a UTC offset")
    certs = {}
    for name in ("signing", "tls"):
        path = previous / f"{name}.pem"
        certs[name] = tuple(_load_certs(path, f"the previous {name} certificates of {what}"))
    return Previous(certs["signing"], certs["tls"], until)


def write_previous(
    directory: Path,
    signing: tuple[x509.Certificate, ...],
    tls: tuple[x509.Certificate, ...],
    until: datetime,
) -> None:
    """Keep ``signing`` and ``tls`` (older first) as previous certificates until ``until``."""
    previous = directory / PREVIOUS_DIR
    previous.mkdir(mode=0o755, exist_ok=True)
    for name, certs in (("signing", signing), ("tls", tls)):
        unique = {certificate_fingerprint(c): c for c in certs}
        atomic_write(previous / f"{name}.pem", b"".join(_cert_pem(c) for c in unique.values()))
    atomic_write(previous / OVERLAP_FILE, (until.isoformat() + "\n").encode("ascii"))


def remove_previous(directory: Path) -> bool:
    """Drop the previous certificates under ``directory``; True if there were any."""
    previous = directory / PREVIOUS_DIR
    if not previous.is_dir():
        return False
    shutil.rmtree(previous)
    _fsync_dir(directory)
    return True
