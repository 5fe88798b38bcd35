"""``imi-gateway init``: a new node directory with fresh keys, certificates and configuration."""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from gateway import config as config_mod
from gateway.core import pki
from gateway.core.errors import InvalidInput
from gateway.core.ns import is_node_id
from gateway.keystore.audit_key import write_new_audit_key
from gateway.keystore.certs import _cert_pem, _key_pem, _now
from gateway.keystore.errors import NodeDirExists, NodeIdInvalid
from gateway.keystore.layout import (
    DATA_KEK_BYTES,
    REVOKED_HEADER,
    NodePaths,
    _fsync_dir,
    atomic_write,
    node_paths,
)
from gateway.keystore.load import NodeKeys, load_node_keys

_HOST_RE = re.compile(
    r"\A(?=.{1,253}\Z)[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})(?:\.[A-Za-z0-9-]{1,63})*\Z"
)


@dataclass(frozen=True)
class InitOptions:
    """What ``imi-gateway init`` was asked for."""

    country: str
    languages: tuple[str, ...] | None = None
    api_port: int = 8443
    peer_port: int = 9443
    metrics_port: int = 9100
    hosts: tuple[str, ...] = ("localhost", "127.0.0.1")
    public_url: str | None = None
    listen: str | None = None  # address of the national-system and peer APIs (default: all)


def _split_hosts(hosts: Sequence[str]) -> tuple[list[str], list[str]]:
    dns: list[str] = []
    ips: list[str] = []
    for host in hosts:
        try:
            ips.append(str(ipaddress.ip_address(host)))
        except ValueError:
            if not _HOST_RE.match(host):
                raise InvalidInput(
                    f"--host {host!r} is neither a DNS name nor an IP address"
                ) from None
            dns.append(host.lower())
    return dns, ips


def init_node_dir(
    node_dir: str | Path, options: InitOptions, *, now: datetime | None = None
) -> NodeKeys:
    """Create a new node directory (see the module docstring for its layout).

    Refuses an existing non-empty directory (:class:`NodeDirExists`) and an
    invalid country (:class:`NodeIdInvalid`). A new directory is built next to
    the target under a temporary name and renamed into place, so a crash never
    leaves a half-made node directory behind.
    """
    target = Path(node_dir).absolute()
    country = options.country
    if not is_node_id(country):
        raise NodeIdInvalid(f"{country!r} is not an EEA country code (upper case, e.g. NO, PT, EL)")
    if not options.hosts:
        raise InvalidInput("at least one --host is needed for the TLS certificate")
    dns_names, ip_addresses = _split_hosts(options.hosts)
    public_url = options.public_url
    if public_url is None:
        first = options.hosts[0]
        shown = f"[{first}]" if ":" in first else first
        public_url = f"https://{shown}:{options.peer_port}"
    text = config_mod.render_config_template(
        country,
        languages=options.languages,
        api_port=options.api_port,
        peer_port=options.peer_port,
        metrics_port=options.metrics_port,
        public_url=public_url,
        listen=options.listen,
    )
    try:  # validates languages, ports and URL before anything is created
        config_mod.parse_config(text, target, source="the options")
    except config_mod.ConfigInvalid as exc:
        raise InvalidInput(exc.message) from None
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise NodeDirExists(f"{target} already exists and is not empty; refusing to overwrite it")
    target.parent.mkdir(parents=True, exist_ok=True)
    in_place = target.exists()
    build = (
        target if in_place else Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    )
    try:
        os.chmod(build, 0o700)
        _populate(node_paths(build), country, text, dns_names, ip_addresses, _now(now))
        if not in_place:
            try:
                os.rename(build, target)
            except OSError:
                raise NodeDirExists(
                    f"{target} appeared while it was being created; refusing to overwrite it"
                ) from None
            _fsync_dir(target.parent)
    except BaseException:
        if in_place:
            for child in target.iterdir():
                if child.is_dir():
                    shutil.rmtree(child)
                else:
                    child.unlink()
        else:
            shutil.rmtree(build, ignore_errors=True)
        raise
    return load_node_keys(target)


def _populate(
    paths: NodePaths,
    country: str,
    config_text: str,
    dns_names: list[str],
    ip_addresses: list[str],
    now: datetime,
) -> None:
    for directory, mode in (
        (paths.keys_dir, 0o700),
        (paths.certs_dir, 0o755),
        (paths.peers_dir.parent, 0o755),
        (paths.peers_dir, 0o755),
        (paths.national_dir, 0o755),
    ):
        directory.mkdir(mode=mode)
        os.chmod(directory, mode)
    ca = pki.make_ca(country, now=now)
    signing = pki.issue_node_signing(ca, country, now=now)
    tls = pki.issue_node_tls(ca, country, now=now, dns_names=dns_names, ip_addresses=ip_addresses)
    for name, issued in (("ca", ca), ("signing", signing), ("tls", tls)):
        atomic_write(paths.key(name), _key_pem(issued.key), 0o600)
        atomic_write(paths.cert(name), _cert_pem(issued.certificate), 0o644)
    atomic_write(paths.data_kek, secrets.token_bytes(DATA_KEK_BYTES), 0o600)
    write_new_audit_key(paths.root)
    atomic_write(paths.revoked, REVOKED_HEADER.encode(), 0o644)
    atomic_write(paths.config, config_text.encode("utf-8"), 0o600)
