"""The text of ``gateway.toml``: the commented file ``imi-gateway init`` writes, and edits.

:func:`render_config_template` writes every setting given on the command
line and shows every other one commented out with its default.
:func:`with_peer` and :func:`with_authority` edit the file for the key-store
commands: pure text in, text out, each edit checked by re-parsing, so the
operator's comments and layout survive. Writing the file is
``gateway.keystore``'s job.

Import these names from :mod:`gateway.config`, which re-exports them.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from gateway.config.load import parse_config
from gateway.config.model import (
    CONFIG_FILE,
    DATABASE_FILE,
    AuthorityConfig,
    ConfigEditFailed,
    ConfigInvalid,
    ConfigValueInvalid,
    NodeConfig,
    PeerConfig,
    default_languages,
)

# --- the file ``imi-gateway init`` writes ---------------------------------------


def toml_string(value: str) -> str:
    """``value`` as a TOML basic string."""
    out = ['"']
    for ch in value:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _toml_array(values: tuple[str, ...] | list[str]) -> str:
    return "[" + ", ".join(toml_string(v) for v in values) + "]"


def render_config_template(
    node_id: str,
    *,
    languages: tuple[str, ...] | None = None,
    api_port: int = 8443,
    peer_port: int = 9443,
    metrics_port: int = 9100,
    public_url: str | None = None,
    listen: str | None = None,
) -> str:
    """The commented ``gateway.toml`` that ``imi-gateway init`` writes.

    Settings given on the command line are written out; every other setting is
    shown commented out with its default, so the file documents itself.
    ``listen`` is the address the national-system and peer APIs bind (the
    metrics listener stays on loopback).
    """
    langs = languages or default_languages(node_id)
    public = (
        f"public_url = {toml_string(public_url)}"
        if public_url
        else '# public_url = "https://gateway.example.org:9443"'
    )
    host = f"host = {toml_string(listen)}" if listen else '# host = "0.0.0.0"'
    return f"""\
# imi-gateway node configuration (TOML). Reference: docs/configuration.md.
# Every setting below that is commented out shows its default. Unknown keys
# are refused, so a typo cannot silently fall back to a default.

[node]
# This node's id: its EEA country code. Certificates are bound to it.
id = {toml_string(node_id)}
# Languages in which question codes are rendered for the national systems.
languages = {_toml_array(langs)}
# "shared": several processes run this node on one PostgreSQL database.
# processes = "single"
# Worker processes sharing this node's listeners (more than 1 needs PostgreSQL).
# workers = 1

[database]
# Default: the SQLite file {DATABASE_FILE} in this directory. Scale-out path:
# url = "postgresql+psycopg://gateway@db.example.org/gateway"
# url = "sqlite:///{DATABASE_FILE}"
# pool_size = 5
# Secrets out of this file (PostgreSQL; see docs/operator.md), one of:
# url_file = "/etc/imi-gateway/db-url"             # the whole URL
# password_file = "/etc/imi-gateway/db-password"   # the password only
# password_env = "IMI_DB_PASSWORD"                 # the password from the environment

[api]
# HTTPS API for the national systems (client certificates issued by the node CA).
# host is the IP address it listens on ("0.0.0.0": all addresses).
{host}
port = {api_port}
# max_connections = 1000             # open connections at once; more are closed at once

[peer]
# Mutual-TLS API that peer nodes call, and the URL they use to reach it
# (published by `imi-gateway keys export`).
{host}
port = {peer_port}
{public}
# max_connections = 1000

[metrics]
# Health and Prometheus metrics, plain HTTP: keep it on loopback.
# host = "127.0.0.1"
port = {metrics_port}
# max_connections = 64
# refresh_seconds = 15               # how often queue depths and certificate expiry are re-read
# kpi_refresh_seconds = 300          # how often the performance-figure gauges are recomputed

[limits]
# max_body_bytes = 16777216          # largest request body accepted (16 MiB)
# request_deadline_seconds = 30      # total time a request may take to arrive
# replay_window_seconds = 300        # accepted skew of a document's creation time
# long_poll_seconds = 25             # how long a delivery poll waits for news
# handshake_timeout_seconds = 10     # TLS handshake and first request bytes, from connect
# max_header_bytes = 16384           # request line and headers; more is refused with 431

[outbound]
# Delivery to peers: exponential backoff with jitter, then the dead-letter state.
# initial_backoff_seconds = 1
# max_backoff_seconds = 300
# jitter = 0.2
# dead_letter_after_seconds = 86400
# max_attempts = 100                 # default: no limit on attempts
# batch_size = 50
# concurrency_per_peer = 4
# How long documents claimed for sending stay leased to the process that claimed them.
# lease_seconds = 120
# linger_ms = 5                      # an idle queue waits this long to fill an envelope

[logging]
# format = "text"                    # "text" or "json"
# level = "info"                     # debug, info, warn, error, critical

[translation]
# Machine translation of free text: "none", "libretranslate" or "etranslation";
# each engine has its own table (see docs/translation.md).
# engine = "none"
#
# [translation.libretranslate]
# url = "https://translate.example.org"
# api_key = "..."
# timeout_seconds = 30
#
# [translation.etranslation]
# url = "https://webgate.ec.europa.eu/etranslation/si/translate"
# application = "..."
# username = "..."
# password = "..."
# callback_base_url = "https://gateway.example.org:8443"
# timeout_seconds = 600

[retention]
# Personal data of an exchange is erased this many months after closure
# (at most 6), or after months_if_never_closed if the exchange never closes.
# months_after_closure = 6
# months_if_never_closed = 24
# The same limits in any unit, down to minutes (to rehearse a purge); when set
# they win over the month settings. At most "6 months" after closure.
# after_closure = "6 months"
# if_never_closed = "24 months"
# How often the retention service runs, and how many exchanges it erases per
# transaction:
# interval_seconds = 60.0
# batch_size = 100
# The largest share of time a purge works (it pauses between batches so that
# exchanges keep the rest of the node; 1.0: no pause):
# purge_share = 0.1
# Optional blocked stage: this long after closure the personal data is kept
# but unreadable (deliveries and tracking withhold it) until it is erased.
# blocked_after = "3 months"
#
# Shorter limits for one legislation area:
# [retention.areas.services]
# months_after_closure = 3
# months_if_never_closed = 12
# after_closure = "30 minutes"
# if_never_closed = "2 days"
# blocked_after = "10 minutes"

[audit]
# Every checkpoint_interval seconds the node signs a checkpoint of its audit log
# (if it grew) and sends it to its peers; with tsa_url each one is also
# time-stamped by an RFC 3161 authority (docs/audit.md).
# checkpoint_interval = 300.0
# tsa_url = "https://tsa.example.org/tsr"
# tsa_ca_file = "trust/tsa-ca.pem"
# tsa_tls_ca_file = "trust/tsa-tls-ca.pem"
# tsa_timeout_seconds = 30.0

[access]
# The peer nodes this node exchanges with, and in which legislation areas
# ("*": every area). Unset: every peer in trust/peers/, every area. Once one
# peer is listed, a peer not listed is allowed nothing (see docs/access.md).
# peers = {{ PT = ["PQD"], SE = ["*"] }}

[deadlines]
# The responder accepts within acceptance_days of the Request's creation; the
# requester's node reminds it reminder_lead_hours before a deadline and when it
# passes, and escalates to the coordinators escalation_grace_days after it.
# acceptance_days = 7.0
# reminder_lead_hours = 48.0
# escalation_grace_days = 3.0
# check_interval_seconds = 300.0
#
# Another acceptance period for one legislation area:
# [deadlines.areas.services]
# acceptance_days = 10.0

# The admin web console (docs/console.md): HTTPS with the node's TLS certificate.
# Create the first operator with: imi-gateway users add NODE_DIR NAME
[console]
# enabled = false
# host = "127.0.0.1"
# port = 8444
# tls = true
# session_minutes = 30
# login_attempts = 5
# login_window_minutes = 15
# max_connections = 64

# Authorities whose national systems are registered at this node. `imi-gateway
# keys issue-national` adds them here.
# [[authorities]]
# id = "{node_id}-EXAMPLE"
# push_url = "https://system.example.org/imi/deliveries"   # optional push delivery

# Peer nodes; their certificates live in trust/peers/<ID>/. `imi-gateway keys
# import-peer` adds them at the end of this file.
# [[peers]]
# id = "PT"
# url = "https://gateway.example.pt:9443"
"""


# --- edits for the key-store commands -------------------------------------------

_HEADER_RE = re.compile(r"^\s*\[")


def _array_blocks(lines: list[str], array: str) -> Iterator[tuple[int, int]]:
    """(start, end) line ranges of every ``[[array]]`` block."""
    start_re = re.compile(r"^\s*\[\[\s*" + re.escape(array) + r"\s*\]\]\s*(#.*)?$")
    i = 0
    while i < len(lines):
        if start_re.match(lines[i]):
            j = i + 1
            while j < len(lines) and not _HEADER_RE.match(lines[j]):
                j += 1
            yield i, j
            i = j
        else:
            i += 1


def _key_line(lines: list[str], start: int, end: int, key: str) -> int | None:
    key_re = re.compile(r"^\s*" + re.escape(key) + r"\s*=")
    return next((i for i in range(start + 1, end) if key_re.match(lines[i])), None)


def _upsert_entry(text: str, array: str, entry_id: str, values: Mapping[str, str]) -> str:
    """Set ``values`` in the ``[[array]]`` entry with ``id = entry_id`` (appended if absent)."""
    lines = text.splitlines(keepends=True)
    id_re = re.compile(r"^\s*id\s*=\s*" + re.escape(toml_string(entry_id)) + r"\s*(#.*)?$")
    for start, end in _array_blocks(lines, array):
        if any(id_re.match(lines[i]) for i in range(start + 1, end)):
            for key, value in values.items():
                line = f"{key} = {toml_string(value)}\n"
                at = _key_line(lines, start, end, key)
                if at is not None:
                    lines[at] = line
                else:
                    id_at = next(i for i in range(start + 1, end) if id_re.match(lines[i]))
                    lines.insert(id_at + 1, line)
                    end += 1
            return "".join(lines)
    block = [f"[[{array}]]\n", f"id = {toml_string(entry_id)}\n"]
    block += [f"{key} = {toml_string(value)}\n" for key, value in values.items()]
    if text and not text.endswith("\n"):
        text += "\n"
    return text + "\n" + "".join(block)


def _checked_edit(
    text: str,
    new_text: str,
    node_dir: Path,
    snippet: str,
    check: Callable[[NodeConfig, NodeConfig], bool],
) -> str:
    old = parse_config(text, node_dir)
    try:
        new = parse_config(new_text, node_dir)
        ok = check(old, new)
    except ConfigInvalid:
        ok = False
    if not ok:
        raise ConfigEditFailed(
            f"could not update {CONFIG_FILE} automatically (unusual layout?); add this by hand:\n"
            + snippet
        )
    return new_text


def with_peer(text: str, node_dir: str | Path, peer_id: str, url: str) -> str:
    """``text`` with the ``[[peers]]`` entry of ``peer_id`` added or its url set."""
    node_dir = Path(node_dir).absolute()
    PeerConfig(peer_id, url)  # validates both values
    if parse_config(text, node_dir).node_id == peer_id:
        raise ConfigValueInvalid(f"peers: {peer_id} is this node's own id")
    new_text = _upsert_entry(text, "peers", peer_id, {"url": url})
    snippet = f"[[peers]]\nid = {toml_string(peer_id)}\nurl = {toml_string(url)}\n"

    def check(old: NodeConfig, new: NodeConfig) -> bool:
        others_old = tuple(p for p in old.peers if p.id != peer_id)
        others_new = tuple(p for p in new.peers if p.id != peer_id)
        return (
            new.peer_config(peer_id) == PeerConfig(peer_id, url)
            and others_old == others_new
            and dataclasses.replace(old, peers=()) == dataclasses.replace(new, peers=())
        )

    return _checked_edit(text, new_text, node_dir, snippet, check)


def with_authority(text: str, node_dir: str | Path, authority_id: str) -> str:
    """``text`` with ``authority_id`` registered under ``[[authorities]]`` (no-op if it is)."""
    node_dir = Path(node_dir).absolute()
    old = parse_config(text, node_dir)
    AuthorityConfig(authority_id)  # validates the id
    if authority_id[:2] != old.node_id:
        raise ConfigValueInvalid(
            f"authorities: {authority_id} belongs to country {authority_id[:2]}, "
            f"not to this node ({old.node_id})"
        )
    if old.authority_config(authority_id) is not None:
        return text
    new_text = _upsert_entry(text, "authorities", authority_id, {})
    snippet = f"[[authorities]]\nid = {toml_string(authority_id)}\n"

    def check(old: NodeConfig, new: NodeConfig) -> bool:
        return new.authorities == (
            *old.authorities,
            AuthorityConfig(authority_id),
        ) and dataclasses.replace(old, authorities=()) == dataclasses.replace(new, authorities=())

    return _checked_edit(text, new_text, node_dir, snippet, check)
