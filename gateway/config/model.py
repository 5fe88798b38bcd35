"""The node configuration's model: ``gateway.toml`` as frozen dataclasses, and its errors.

One frozen dataclass a TOML table (:class:`NodeIdentity` is ``[node]``,
:class:`ApiConfig` is ``[api]``, ...), all held by :class:`NodeConfig`.
Every setting has a documented default except the node id (docs/configuration.md
lists them all). Ranges and choices are declared with :func:`setting` and
enforced by the loader (:mod:`gateway.config.load`); any other rule is
checked in ``__post_init__``, raising :class:`ConfigValueInvalid`.

Adding a section: write a frozen dataclass here whose fields carry their
defaults, add a field of that type to :class:`NodeConfig`, document it in
docs/configuration.md and in the template that ``imi-gateway init`` writes
(``render_config_template`` in :mod:`gateway.config.text`).

Import these names from :mod:`gateway.config`, which re-exports them.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.core.access import EVERY_AREA, PeerAccess
from gateway.core.deadlines import DeadlinePolicy
from gateway.core.errors import ConfigurationError
from gateway.core.ns import LANGUAGES, is_authority_id, is_node_id
from gateway.core.retention import (
    MAX_MONTHS_AFTER_CLOSURE,
    Period,
    PeriodInvalid,
    RetentionPolicy,
)

#: File name of the configuration inside the node directory.
CONFIG_FILE = "gateway.toml"
#: File name of the embedded SQLite database inside the node directory.
DATABASE_FILE = "gateway.sqlite3"


# --- errors -----------------------------------------------------------------


class ConfigNotFound(ConfigurationError):
    """The node directory has no configuration file (create one with imi-gateway init)."""

    code = "CONFIG_NOT_FOUND"


class ConfigInvalid(ConfigurationError):
    """The node configuration file is invalid."""

    code = "CONFIG_INVALID"


class ConfigSyntaxError(ConfigInvalid):
    """The configuration file is not valid UTF-8 TOML."""

    code = "CONFIG_SYNTAX"


class ConfigUnknownKey(ConfigInvalid):
    """The configuration file contains a key the gateway does not know (a typo?)."""

    code = "CONFIG_UNKNOWN_KEY"


class ConfigWrongType(ConfigInvalid):
    """A configuration value has the wrong TOML type."""

    code = "CONFIG_WRONG_TYPE"


class ConfigMissingKey(ConfigInvalid):
    """A required configuration key is missing."""

    code = "CONFIG_MISSING_KEY"


class ConfigValueInvalid(ConfigInvalid):
    """A configuration value is out of range or not one of the allowed values."""

    code = "CONFIG_VALUE_INVALID"


class ConfigEditFailed(ConfigurationError):
    """The configuration file could not be updated automatically; edit it by hand."""

    code = "CONFIG_EDIT_FAILED"


# --- field helpers ----------------------------------------------------------


def setting(
    default: Any = dataclasses.MISSING,
    *,
    default_factory: Callable[[], Any] | Any = dataclasses.MISSING,
    minimum: float | None = None,
    maximum: float | None = None,
    choices: tuple[str, ...] | None = None,
) -> Any:
    """A dataclass field with the range or choices the loader enforces."""
    metadata = {"minimum": minimum, "maximum": maximum, "choices": choices}
    if default_factory is not dataclasses.MISSING:
        return field(default_factory=default_factory, metadata=metadata)
    return field(default=default, metadata=metadata)


#: Metadata of fields the loader fills in itself (not read from the file).
_INTERNAL = types.MappingProxyType({"toml": False})


def _empty() -> Mapping[str, Any]:
    return types.MappingProxyType({})


def _check_https_url(value: str, name: str) -> None:
    if not re.fullmatch(r"https://[A-Za-z0-9.\-\[\]:]+(?::\d+)?(?:/[\x21-\x7e]*)?", value):
        raise ConfigValueInvalid(
            f"{name}: must be an https:// URL of printable ASCII characters, got {value!r}"
        )


# Rendering languages by country when [node] languages is not set: the
# country's official languages among the 27 IMI languages.
_COUNTRY_LANGUAGES: Mapping[str, tuple[str, ...]] = types.MappingProxyType(
    {
        "AT": ("de",),
        "BE": ("nl", "fr", "de"),
        "BG": ("bg",),
        "CY": ("el",),
        "CZ": ("cs",),
        "DE": ("de",),
        "DK": ("da",),
        "EE": ("et",),
        "EL": ("el",),
        "ES": ("es",),
        "FI": ("fi", "sv"),
        "FR": ("fr",),
        "HR": ("hr",),
        "HU": ("hu",),
        "IE": ("en", "ga"),
        "IS": ("is",),
        "IT": ("it",),
        "LI": ("de",),
        "LT": ("lt",),
        "LU": ("fr", "de"),
        "LV": ("lv",),
        "MT": ("mt", "en"),
        "NL": ("nl",),
        "NO": ("nn", "nb"),
        "PL": ("pl",),
        "PT": ("pt",),
        "RO": ("ro",),
        "SE": ("sv",),
        "SI": ("sl",),
        "SK": ("sk",),
    }
)


def default_languages(node_id: str) -> tuple[str, ...]:
    """The rendering languages a node of country ``node_id`` uses by default."""
    return _COUNTRY_LANGUAGES[node_id]


def _check_listen_address(value: str, name: str) -> None:
    """A listener binds an IP address, never a DNS name (which may resolve to anything)."""
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ConfigValueInvalid(
            f"{name}: must be an IPv4 or IPv6 address to listen on "
            '(e.g. "0.0.0.0" for all, "127.0.0.1" for loopback only), not a host name'
        ) from None


# --- sections ---------------------------------------------------------------


@dataclass(frozen=True)
class NodeIdentity:
    """``[node]``: who this node is."""

    id: str
    languages: tuple[str, ...] = ()
    #: "single": one process per node directory (a lock refuses a second one); "shared":
    #: several processes share the node directory and a PostgreSQL database.
    processes: str = setting("single", choices=("single", "shared"))
    #: Worker processes of ``imi-gateway run`` (PostgreSQL only above 1): a supervisor binds
    #: the listeners once and runs this many workers on them (``run --workers`` overrides).
    workers: int = setting(1, minimum=1, maximum=64)

    def __post_init__(self) -> None:
        if not is_node_id(self.id):
            raise ConfigValueInvalid(
                f"id: {self.id!r} is not an EEA country code (upper case, e.g. NO, PT, EL)"
            )
        languages = self.languages or default_languages(self.id)
        unknown = [lang for lang in languages if lang not in LANGUAGES]
        if unknown:
            raise ConfigValueInvalid(
                f"languages: unknown language code(s) {', '.join(unknown)}; "
                f"known: {' '.join(LANGUAGES)}"
            )
        if len(set(languages)) != len(languages):
            raise ConfigValueInvalid("languages: a language is listed twice")
        object.__setattr__(self, "languages", tuple(languages))


@dataclass(frozen=True)
class DatabaseConfig:
    """``[database]``: where the node keeps its state."""

    url: str = ""
    pool_size: int = setting(5, minimum=1, maximum=100)
    #: A file holding the whole URL (instead of ``url``); relative to the node directory.
    url_file: str | None = setting(None)
    #: A file holding the password to put into the URL; relative to the node directory.
    password_file: str | None = setting(None)
    #: An environment variable holding the password to put into the URL.
    password_env: str | None = setting(None)

    def __post_init__(self) -> None:
        if self.url and self.url_file:
            raise ConfigValueInvalid("url and url_file: give one of them")
        if self.password_file and self.password_env:
            raise ConfigValueInvalid("password_file and password_env: give one of them")
        if (self.password_file or self.password_env) and self.url.startswith("sqlite"):
            raise ConfigValueInvalid("password_file, password_env: a SQLite URL has no password")
        if self.url and not re.match(r"(sqlite|postgresql)(\+[a-z0-9]+)?://", self.url):
            raise ConfigValueInvalid(
                "url: only sqlite:/// and postgresql[+driver]:// URLs are supported"
            )

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")


@dataclass(frozen=True)
class ApiConfig:
    """``[api]``: the HTTPS API for national systems (client certificates of the node CA)."""

    host: str = "0.0.0.0"  # noqa: S104 - a gateway listens for its national systems
    port: int = setting(8443, minimum=0, maximum=65535)  # 0: any free port
    max_connections: int = setting(1000, minimum=1, maximum=100_000)

    def __post_init__(self) -> None:
        _check_listen_address(self.host, "host")


@dataclass(frozen=True)
class PeerListenerConfig:
    """``[peer]``: the mutual-TLS API that peer nodes call."""

    host: str = "0.0.0.0"  # noqa: S104 - peers reach the node from outside
    port: int = setting(9443, minimum=0, maximum=65535)  # 0: any free port
    public_url: str | None = None
    max_connections: int = setting(1000, minimum=1, maximum=100_000)

    def __post_init__(self) -> None:
        _check_listen_address(self.host, "host")
        if self.public_url is not None:
            _check_https_url(self.public_url, "public_url")


@dataclass(frozen=True)
class MetricsConfig:
    """``[metrics]``: health and Prometheus metrics over plain HTTP (keep it on loopback)."""

    host: str = "127.0.0.1"
    port: int = setting(9100, minimum=0, maximum=65535)  # 0: any free port
    max_connections: int = setting(64, minimum=1, maximum=100_000)
    #: How often the gauges of stored state and certificate expiry are re-read.
    refresh_seconds: float = setting(15.0, minimum=1, maximum=3600)
    #: How often the performance-figure gauges (imi_kpi_*, docs/kpi.md) are recomputed.
    kpi_refresh_seconds: float = setting(300.0, minimum=1, maximum=86400)

    def __post_init__(self) -> None:
        _check_listen_address(self.host, "host")


@dataclass(frozen=True)
class LimitsConfig:
    """``[limits]``: what a single request may cost the node."""

    max_body_bytes: int = setting(16 * 1024 * 1024, minimum=1024, maximum=1024 * 1024 * 1024)
    request_deadline_seconds: float = setting(30.0, minimum=1, maximum=3600)
    replay_window_seconds: float = setting(300.0, minimum=1, maximum=86400)
    long_poll_seconds: float = setting(25.0, minimum=0, maximum=300)
    handshake_timeout_seconds: float = setting(10.0, minimum=0.1, maximum=300)
    max_header_bytes: int = setting(16 * 1024, minimum=1024, maximum=1024 * 1024)


@dataclass(frozen=True)
class OutboundConfig:
    """``[outbound]``: delivery to peer nodes (one queue per peer)."""

    initial_backoff_seconds: float = setting(1.0, minimum=0.01, maximum=3600)
    max_backoff_seconds: float = setting(300.0, minimum=0.01, maximum=86400)
    jitter: float = setting(0.2, minimum=0, maximum=1)
    dead_letter_after_seconds: float = setting(86400.0, minimum=1, maximum=31 * 86400)
    max_attempts: int | None = setting(None, minimum=1, maximum=1_000_000)
    batch_size: int = setting(50, minimum=1, maximum=1000)
    concurrency_per_peer: int = setting(4, minimum=1, maximum=64)
    #: How long a claimed row stays leased to the process that claimed it: a process that
    #: dies holding rows leaves them to the others (or to its successor) after this.
    lease_seconds: float = setting(120.0, minimum=1, maximum=3600)
    linger_ms: float = setting(5.0, minimum=0, maximum=100)

    def __post_init__(self) -> None:
        if self.max_backoff_seconds < self.initial_backoff_seconds:
            raise ConfigValueInvalid(
                "max_backoff_seconds: must not be smaller than initial_backoff_seconds"
            )


@dataclass(frozen=True)
class LoggingConfig:
    """``[logging]``: how the node logs (never personal data, document bodies or keys)."""

    format: str = setting("text", choices=("text", "json"))
    level: str = setting("info", choices=("debug", "info", "warn", "error", "critical"))


@dataclass(frozen=True)
class PeerConfig:
    """``[[peers]]``: a peer node (its certificates live in trust/peers/<id>/)."""

    id: str
    url: str

    def __post_init__(self) -> None:
        if not is_node_id(self.id):
            raise ConfigValueInvalid(f"id: {self.id!r} is not an EEA country code")
        _check_https_url(self.url, "url")


@dataclass(frozen=True)
class AuthorityConfig:
    """``[[authorities]]``: a national authority whose system is registered at this node."""

    id: str
    push_url: str | None = None

    def __post_init__(self) -> None:
        if not is_authority_id(self.id):
            raise ConfigValueInvalid(
                f"id: {self.id!r} is not an authority id (country code, hyphen, "
                "1-40 upper-case ASCII letters, digits or hyphens, e.g. NO-HELSEDIR)"
            )
        if self.push_url is not None:
            _check_https_url(self.push_url, "push_url")


TRANSLATION_ENGINES = ("none", "libretranslate", "etranslation")


@dataclass(frozen=True)
class TranslationConfig:
    """``[translation]``: machine translation of free text (see docs/translation.md)."""

    engine: str = setting("none", choices=TRANSLATION_ENGINES)
    libretranslate: Mapping[str, Any] = setting(default_factory=_empty)
    etranslation: Mapping[str, Any] = setting(default_factory=_empty)

    def __post_init__(self) -> None:
        if self.engine != "none" and not getattr(self, self.engine):
            raise ConfigValueInvalid(
                f"engine: {self.engine!r} needs its settings table [translation.{self.engine}]"
            )

    @property
    def settings(self) -> Mapping[str, Any]:
        """The settings table of the selected engine (empty for ``none``)."""
        if self.engine == "none":
            return _empty()
        value: Mapping[str, Any] = getattr(self, self.engine)
        return value


_AREA_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")


def _retention_period(
    months: int | None, text: str | None, name: str, max_months: int
) -> Period | None:
    """The period set by ``<name>`` (which wins) or ``months_<name>``, checked against ``max_months``."""
    if text is None:
        return Period(months=months) if months is not None else None
    try:
        period = Period.parse(text)
    except PeriodInvalid as exc:
        raise ConfigValueInvalid(f"{name}: {exc}") from None
    if not period.at_most_months(max_months):
        raise ConfigValueInvalid(f"{name}: must be at most {max_months} months")
    return period


@dataclass(frozen=True)
class RetentionAreaConfig:
    """``[retention.areas.<AREA>]``: shorter limits for one legislation area."""

    months_after_closure: int | None = setting(None, minimum=1, maximum=6)
    months_if_never_closed: int | None = setting(None, minimum=1, maximum=120)
    #: ``"30 minutes"``, ``"3 months"``...: the same limit in any unit (instead of the months).
    after_closure: str | None = setting(None)
    if_never_closed: str | None = setting(None)
    #: ``"3 months"``...: the blocked stage for this area (instead of the node's).
    blocked_after: str | None = setting(None)

    def __post_init__(self) -> None:
        self.periods()
        _retention_period(None, self.blocked_after, "blocked_after", MAX_MONTHS_AFTER_CLOSURE)

    def periods(self) -> tuple[Period | None, Period | None]:
        """``(after_closure, if_never_closed)``, None where the node's setting applies."""
        return (
            _retention_period(
                self.months_after_closure,
                self.after_closure,
                "after_closure",
                MAX_MONTHS_AFTER_CLOSURE,
            ),
            _retention_period(
                self.months_if_never_closed,
                self.if_never_closed,
                "if_never_closed",
                MAX_MONTHS_IF_NEVER_CLOSED,
            ),
        )


#: The longest limit for exchanges that never close, in months.
MAX_MONTHS_IF_NEVER_CLOSED = 120


@dataclass(frozen=True)
class RetentionConfig:
    """``[retention]``: when personal data of an exchange is erased, and how often the purge runs."""

    months_after_closure: int = setting(6, minimum=1, maximum=6)
    months_if_never_closed: int = setting(24, minimum=1, maximum=120)
    #: ``"30 minutes"``, ``"6 months"``...: the same limits in any unit (win over the months).
    after_closure: str | None = setting(None)
    if_never_closed: str | None = setting(None)
    areas: Mapping[str, RetentionAreaConfig] = setting(default_factory=_empty)
    #: Seconds between two runs of the retention service.
    interval_seconds: float = setting(60.0, minimum=1, maximum=86400)
    #: Exchanges erased per database transaction.
    batch_size: int = setting(100, minimum=1, maximum=10000)
    #: The optional blocked stage: this long after closure (``"3 months"``, ``"10 minutes"``)
    #: the personal data is unreadable until it is erased. None: no blocked stage.
    blocked_after: str | None = setting(None)
    #: The largest share of time a purge works: after a batch that took t seconds it
    #: pauses t * (1 - share) / share, so exchanges keep the rest of the node.
    purge_share: float = setting(0.1, minimum=0.01, maximum=1.0)

    def __post_init__(self) -> None:
        for area in self.areas:
            if not _AREA_RE.match(area):
                raise ConfigValueInvalid(f"areas: {area!r} is not a legislation area code")
        self.policy(None)

    def policy(self, area: str | None) -> RetentionPolicy:
        """The limits that apply to exchanges of legislation area ``area`` (None: the node's)."""
        after = _retention_period(
            self.months_after_closure,
            self.after_closure,
            "after_closure",
            MAX_MONTHS_AFTER_CLOSURE,
        ) or Period(months=6)
        never = _retention_period(
            self.months_if_never_closed,
            self.if_never_closed,
            "if_never_closed",
            MAX_MONTHS_IF_NEVER_CLOSED,
        ) or Period(months=24)
        blocked = _retention_period(
            None, self.blocked_after, "blocked_after", MAX_MONTHS_AFTER_CLOSURE
        )
        specific = self.areas.get(area) if area is not None else None
        if specific is not None:
            area_after, area_never = specific.periods()
            after, never = area_after or after, area_never or never
            blocked = (
                _retention_period(
                    None, specific.blocked_after, "blocked_after", MAX_MONTHS_AFTER_CLOSURE
                )
                or blocked
            )
        return RetentionPolicy(after_closure=after, if_never_closed=never, blocked_after=blocked)

    def for_area(self, area: str | None) -> tuple[int, int]:
        """``(months_after_closure, months_if_never_closed)`` for a legislation area (month settings)."""
        policy = self.policy(area)
        return policy.after_closure.months, policy.if_never_closed.months


def _check_tsa_url(value: str | None) -> None:
    """``https://``, or ``http://`` to a loopback address (a TSA on the same host)."""
    if value is None:
        return
    if re.match(r"http://(127\.\d+\.\d+\.\d+|localhost|\[::1\])(:\d+)?(/|\Z)", value):
        return
    _check_https_url(value, "tsa_url")


@dataclass(frozen=True)
class AuditConfig:
    """``[audit]``: signed checkpoints of the audit log, exchanged with peers, time-stamped."""

    #: Seconds between two checkpoint runs (sign if the log grew, time-stamp, send to peers).
    checkpoint_interval: float = setting(300.0, minimum=1, maximum=86400)
    #: An RFC 3161 time-stamping authority's URL (none: checkpoints are not time-stamped).
    tsa_url: str | None = None
    #: PEM file: the TSA's certificate or its CA; tokens signed by anyone else are refused.
    tsa_ca_file: str | None = None
    #: PEM file: the CA of the TSA's HTTPS server (default: the system's trust store).
    tsa_tls_ca_file: str | None = None
    tsa_timeout_seconds: float = setting(30.0, minimum=1, maximum=600)

    def __post_init__(self) -> None:
        _check_tsa_url(self.tsa_url)


@dataclass(frozen=True)
class AccessConfig:
    """``[access]``: the peer nodes this node exchanges with, and in which legislation areas."""

    #: ``{ PT = ["PQD"], SE = ["*"] }``: per peer node, the legislation areas ("*": every
    #: area). Empty (the default): every configured peer, every area. Once one peer is
    #: listed, a peer not listed is allowed nothing (docs/access.md).
    peers: Mapping[str, tuple[str, ...]] = setting(default_factory=_empty)

    def __post_init__(self) -> None:
        for peer, areas in self.peers.items():
            if not is_node_id(peer):
                raise ConfigValueInvalid(f"peers: {peer!r} is not an EEA country code")
            for area in areas:
                if area != EVERY_AREA and not _AREA_RE.match(area):
                    raise ConfigValueInvalid(
                        f"peers.{peer}: {area!r} is not a legislation area code or *"
                    )

    def rules(self) -> PeerAccess:
        """The sans-IO rules (``gateway.core.access.PeerAccess``) these settings make."""
        if not self.peers:
            return PeerAccess()
        return PeerAccess({peer: frozenset(areas) for peer, areas in self.peers.items()})


@dataclass(frozen=True)
class ConsoleConfig:
    """``[console]``: the admin web console for operators, coordinators and auditors (docs/console.md)."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = setting(8444, minimum=0, maximum=65535)  # 0: any free port
    #: HTTPS with the node's TLS certificate; false only behind a TLS-terminating proxy.
    tls: bool = True
    #: Minutes of inactivity after which a session expires.
    session_minutes: int = setting(30, minimum=1, maximum=24 * 60)
    #: Failed logins allowed per user name and per client address within the window.
    login_attempts: int = setting(5, minimum=1, maximum=1000)
    login_window_minutes: int = setting(15, minimum=1, maximum=24 * 60)
    max_connections: int = setting(64, minimum=1, maximum=100_000)

    def __post_init__(self) -> None:
        _check_listen_address(self.host, "host")


_WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})  # noqa: S104 - compared, not bound


@dataclass(frozen=True)
class DeadlineAreaConfig:
    """``[deadlines.areas.<AREA>]``: another acceptance period for one legislation area."""

    acceptance_days: float | None = setting(None, minimum=0.001, maximum=365)


@dataclass(frozen=True)
class DeadlinesConfig:
    """``[deadlines]``: acceptance periods, reminders and escalation (gateway.core.deadlines)."""

    #: Days the responder has to accept a request (from the Request's creation time).
    acceptance_days: float = setting(7.0, minimum=0.001, maximum=365)
    #: Hours before a deadline that the responder is reminded (0: only when it passes).
    reminder_lead_hours: float = setting(48.0, minimum=0, maximum=8760)
    #: Days a deadline may be overdue before the exchange escalates to the coordinators.
    escalation_grace_days: float = setting(3.0, minimum=0, maximum=365)
    #: Seconds between two runs of the deadline service.
    check_interval_seconds: float = setting(300.0, minimum=1, maximum=86400)
    areas: Mapping[str, DeadlineAreaConfig] = setting(default_factory=_empty)

    def __post_init__(self) -> None:
        for area in self.areas:
            if not _AREA_RE.match(area):
                raise ConfigValueInvalid(f"areas: {area!r} is not a legislation area code")

    def policy(self) -> DeadlinePolicy:
        """The node's deadline rules."""
        return DeadlinePolicy(
            acceptance_days=self.acceptance_days,
            area_acceptance_days={
                area: a.acceptance_days
                for area, a in self.areas.items()
                if a.acceptance_days is not None
            },
            reminder_lead_hours=self.reminder_lead_hours,
            escalation_grace_days=self.escalation_grace_days,
        )


@dataclass(frozen=True)
class NodeConfig:
    """The whole node configuration (``gateway.toml``), validated."""

    node_dir: Path = field(metadata=_INTERNAL)
    source: Path = field(metadata=_INTERNAL)
    node: NodeIdentity = field()
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    api: ApiConfig = field(default_factory=ApiConfig)
    peer: PeerListenerConfig = field(default_factory=PeerListenerConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    outbound: OutboundConfig = field(default_factory=OutboundConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    peers: tuple[PeerConfig, ...] = ()
    authorities: tuple[AuthorityConfig, ...] = ()
    translation: TranslationConfig = field(default_factory=TranslationConfig)
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    audit: AuditConfig = field(default_factory=AuditConfig)
    access: AccessConfig = field(default_factory=AccessConfig)
    deadlines: DeadlinesConfig = field(default_factory=DeadlinesConfig)
    console: ConsoleConfig = field(default_factory=ConsoleConfig)

    def __post_init__(self) -> None:
        node_id = self.node.id
        seen: set[str] = set()
        for peer in self.peers:
            if peer.id == node_id:
                raise ConfigValueInvalid(f"peers: {peer.id} is this node's own id")
            if peer.id in seen:
                raise ConfigValueInvalid(f"peers: {peer.id} is listed twice")
            seen.add(peer.id)
        seen.clear()
        for authority in self.authorities:
            if authority.id[:2] != node_id:
                raise ConfigValueInvalid(
                    f"authorities: {authority.id} belongs to country {authority.id[:2]}, "
                    f"not to this node ({node_id})"
                )
            if authority.id in seen:
                raise ConfigValueInvalid(f"authorities: {authority.id} is listed twice")
            seen.add(authority.id)
        listeners = [
            ("api", self.api.host, self.api.port),
            ("peer", self.peer.host, self.peer.port),
        ]
        listeners.append(("metrics", self.metrics.host, self.metrics.port))
        if self.console.enabled:
            listeners.append(("console", self.console.host, self.console.port))
        for i, (name_a, host_a, port_a) in enumerate(listeners):
            for name_b, host_b, port_b in listeners[i + 1 :]:
                overlap = host_a == host_b or {host_a, host_b} & _WILDCARD_HOSTS
                if port_a == port_b != 0 and overlap:  # 0: each gets its own
                    raise ConfigValueInvalid(
                        f"{name_a}.port and {name_b}.port: both listen on port {port_a}"
                    )
        object.__setattr__(
            self, "database", dataclasses.replace(self.database, url=self._database_url())
        )
        if self.node.processes == "shared" and self.database.url.startswith("sqlite"):
            raise ConfigValueInvalid(
                'node.processes: "shared" needs a PostgreSQL database.url (SQLite is one '
                "process's database)"
            )
        if self.node.workers > 1 and self.database.url.startswith("sqlite"):
            raise ConfigValueInvalid(
                "node.workers: more than one worker needs a PostgreSQL database.url (SQLite is "
                "one process's database)"
            )

    def _database_url(self) -> str:
        url = self.database.url
        if not url and self.database.url_file:
            return ""  # read when the database is opened (gateway.config.secrets)
        if not url:
            return f"sqlite:///{self.node_dir / DATABASE_FILE}"
        match = re.match(r"(sqlite(?:\+[a-z0-9]+)?:///)(.*)\Z", url, re.DOTALL)
        if match and match.group(2) and not match.group(2).startswith(("/", ":memory:")):
            # A relative SQLite path is relative to the node directory, not the cwd.
            return f"{match.group(1)}{self.node_dir / match.group(2)}"
        return url

    @property
    def node_id(self) -> str:
        return self.node.id

    def peer_config(self, node_id: str) -> PeerConfig | None:
        """The ``[[peers]]`` entry of ``node_id``, if configured."""
        return next((p for p in self.peers if p.id == node_id), None)

    def authority_config(self, authority_id: str) -> AuthorityConfig | None:
        """The ``[[authorities]]`` entry of ``authority_id``, if registered."""
        return next((a for a in self.authorities if a.id == authority_id), None)
