"""The node configuration: ``gateway.toml`` in the node directory, as frozen dataclasses.

``load_config(node_dir)`` reads the file with :mod:`tomllib` and returns a
:class:`NodeConfig`. Every setting has a documented default except the node id
(docs/configuration.md lists them all; a test keeps that page in step with the
dataclasses below). Loading is strict, because a typo in a security setting
must not silently fall back to a default:

* an unknown key is refused and named, with a suggestion when it looks like a
  typo (``CONFIG_UNKNOWN_KEY``);
* a value of the wrong TOML type is refused with the expected type
  (``CONFIG_WRONG_TYPE``), a value out of range or not among the allowed
  choices with the limits (``CONFIG_VALUE_INVALID``);
* a missing required key (``CONFIG_MISSING_KEY``), a file that is not TOML
  (``CONFIG_SYNTAX``) or no file at all (``CONFIG_NOT_FOUND``) likewise.

Adding a section: write a frozen dataclass whose fields carry their defaults
(use :func:`setting` for ranges and choices, ``__post_init__`` raising
:class:`ConfigValueInvalid` for anything else), add a field of that type to
:class:`NodeConfig`, document it in docs/configuration.md and in the template
that ``imi-gateway init`` writes (:func:`render_config_template`). The loader
is driven by the type annotations; it understands ``str``, ``int``, ``float``,
``bool``, ``X | None``, ``tuple[str, ...]``, nested dataclasses (TOML tables),
``tuple[Dataclass, ...]`` (arrays of tables), ``Mapping[str, Dataclass]``
(tables of tables) and ``Mapping[str, Any]`` (a free-form table handed to an
adapter as it is).

This module also edits the file for the key-store commands
(:func:`with_peer`, :func:`with_authority`): pure text in, text out, each edit
checked by re-parsing, so the operator's comments and layout survive. Writing
the file is ``gateway.keystore``'s job. Nothing here does network IO, and no
message repeats a value that may be a secret.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import tomllib
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.core.errors import ConfigurationError
from gateway.core.ns import LANGUAGES, is_authority_id, is_node_id

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


# --- sections ---------------------------------------------------------------


@dataclass(frozen=True)
class NodeIdentity:
    """``[node]``: who this node is."""

    id: str
    languages: tuple[str, ...] = ()

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

    def __post_init__(self) -> None:
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
    port: int = setting(8443, minimum=1, maximum=65535)


@dataclass(frozen=True)
class PeerListenerConfig:
    """``[peer]``: the mutual-TLS API that peer nodes call."""

    host: str = "0.0.0.0"  # noqa: S104 - peers reach the node from outside
    port: int = setting(9443, minimum=1, maximum=65535)
    public_url: str | None = None

    def __post_init__(self) -> None:
        if self.public_url is not None:
            _check_https_url(self.public_url, "public_url")


@dataclass(frozen=True)
class MetricsConfig:
    """``[metrics]``: health and Prometheus metrics over plain HTTP (keep it on loopback)."""

    host: str = "127.0.0.1"
    port: int = setting(9100, minimum=1, maximum=65535)


@dataclass(frozen=True)
class LimitsConfig:
    """``[limits]``: what a single request may cost the node."""

    max_body_bytes: int = setting(16 * 1024 * 1024, minimum=1024, maximum=1024 * 1024 * 1024)
    request_deadline_seconds: float = setting(30.0, minimum=1, maximum=3600)
    replay_window_seconds: float = setting(300.0, minimum=1, maximum=86400)
    long_poll_seconds: float = setting(25.0, minimum=0, maximum=300)


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


@dataclass(frozen=True)
class RetentionAreaConfig:
    """``[retention.areas.<AREA>]``: shorter limits for one legislation area."""

    months_after_closure: int | None = setting(None, minimum=1, maximum=6)
    months_if_never_closed: int | None = setting(None, minimum=1, maximum=120)


@dataclass(frozen=True)
class RetentionConfig:
    """``[retention]``: when personal data of an exchange is erased."""

    months_after_closure: int = setting(6, minimum=1, maximum=6)
    months_if_never_closed: int = setting(24, minimum=1, maximum=120)
    areas: Mapping[str, RetentionAreaConfig] = setting(default_factory=_empty)

    def __post_init__(self) -> None:
        for area in self.areas:
            if not _AREA_RE.match(area):
                raise ConfigValueInvalid(f"areas: {area!r} is not a legislation area code")

    def for_area(self, area: str | None) -> tuple[int, int]:
        """``(months_after_closure, months_if_never_closed)`` for a legislation area."""
        specific = self.areas.get(area) if area is not None else None
        after = self.months_after_closure
        never = self.months_if_never_closed
        if specific is not None:
            after = specific.months_after_closure or after
            never = specific.months_if_never_closed or never
        return after, never


_WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})  # noqa: S104 - compared, not bound


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
        for i, (name_a, host_a, port_a) in enumerate(listeners):
            for name_b, host_b, port_b in listeners[i + 1 :]:
                overlap = host_a == host_b or {host_a, host_b} & _WILDCARD_HOSTS
                if port_a == port_b and overlap:
                    raise ConfigValueInvalid(
                        f"{name_a}.port and {name_b}.port: both listen on port {port_a}"
                    )
        object.__setattr__(
            self, "database", dataclasses.replace(self.database, url=self._database_url())
        )

    def _database_url(self) -> str:
        url = self.database.url
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


# --- loading ----------------------------------------------------------------


def load_config(node_dir: str | Path) -> NodeConfig:
    """Read and validate ``gateway.toml`` in ``node_dir``."""
    node_dir = Path(node_dir).absolute()
    path = node_dir / CONFIG_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigNotFound(
            f"{path}: no configuration file (is {node_dir} a node directory? "
            "create one with: imi-gateway init)"
        ) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigSyntaxError(f"{path}: not UTF-8 ({exc.reason} at byte {exc.start})") from None
    return parse_config(text, node_dir, source=path)


def parse_config(
    text: str, node_dir: str | Path, *, source: str | Path | None = None
) -> NodeConfig:
    """Validate configuration ``text`` for the node directory ``node_dir``."""
    node_dir = Path(node_dir).absolute()
    source_path = Path(source) if source is not None else node_dir / CONFIG_FILE
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigSyntaxError(f"{source_path}: not valid TOML: {exc}") from None
    loader = _Loader(str(source_path))
    config: NodeConfig = loader.build(
        NodeConfig, raw, "", extra={"node_dir": node_dir, "source": source_path}
    )
    return config


_TYPE_NAMES: dict[type, str] = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "a boolean (true or false)",
}


def _toml_type_name(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return "a date/time"


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return types.MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


class _Loader:
    """Builds dataclasses from parsed TOML, naming the key of every problem."""

    def __init__(self, source: str) -> None:
        self.source = source

    def build(
        self, cls: type[Any], raw: Any, path: str, extra: Mapping[str, Any] | None = None
    ) -> Any:
        table = f"[{path}]" if path else "the top level"
        if not isinstance(raw, dict):
            raise ConfigWrongType(
                f"{self.source}: {path}: expected a table, got {_toml_type_name(raw)}"
            )
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls) if f.metadata.get("toml", True)}
        for key in raw:
            if key not in fields:
                where = f"{path}.{key}" if path else key
                close = difflib.get_close_matches(key, list(fields), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ConfigUnknownKey(
                    f"{self.source}: unknown key {where!r}{hint}; known keys in {table}: "
                    f"{', '.join(fields)}"
                )
        kwargs: dict[str, Any] = dict(extra or {})
        for name, f in fields.items():
            where = f"{path}.{name}" if path else name
            if name not in raw:
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                    raise ConfigMissingKey(
                        f"{self.source}: required key {where!r} is missing in {table}"
                    )
                continue
            kwargs[name] = self.convert(raw[name], hints[name], f.metadata, where)
        try:
            return cls(**kwargs)
        except ConfigValueInvalid as exc:
            prefix = f"{path}." if path else ""
            raise ConfigValueInvalid(f"{self.source}: {prefix}{exc.message}") from None

    def convert(self, value: Any, tp: Any, meta: Mapping[str, Any], where: str) -> Any:
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if origin in (types.UnionType, typing.Union):
            # TOML has no null: an optional setting is simply absent.
            (tp,) = [a for a in args if a is not type(None)]
            return self.convert(value, tp, meta, where)
        if dataclasses.is_dataclass(tp):
            return self.build(typing.cast(type, tp), value, where)
        if origin is tuple:
            if not isinstance(value, list):
                self._wrong(value, "an array", where)
            item_type = args[0]
            return tuple(
                self.convert(item, item_type, {}, f"{where}[{i}]") for i, item in enumerate(value)
            )
        if origin is Mapping:
            if not isinstance(value, dict):
                self._wrong(value, "a table", where)
            item_type = args[1]
            if item_type is Any:
                return _freeze(value)
            return types.MappingProxyType(
                {k: self.convert(v, item_type, {}, f"{where}.{k}") for k, v in value.items()}
            )
        if tp is bool:
            if not isinstance(value, bool):
                self._wrong(value, _TYPE_NAMES[bool], where)
        elif tp is int:
            if isinstance(value, bool) or not isinstance(value, int):
                self._wrong(value, _TYPE_NAMES[int], where)
        elif tp is float:
            if isinstance(value, bool) or not isinstance(value, int | float):
                self._wrong(value, _TYPE_NAMES[float], where)
            if not math.isfinite(value):
                raise ConfigValueInvalid(f"{self.source}: {where}: must be a finite number")
            value = float(value)
        elif tp is str:
            if not isinstance(value, str):
                self._wrong(value, _TYPE_NAMES[str], where)
        else:  # pragma: no cover - a programming error in a section dataclass
            raise TypeError(f"unsupported configuration type {tp!r} for {where}")
        self._check_range(value, meta, where)
        return value

    def _wrong(self, value: Any, expected: str, where: str) -> typing.NoReturn:
        raise ConfigWrongType(
            f"{self.source}: {where}: expected {expected}, got {_toml_type_name(value)}"
        )

    def _check_range(self, value: Any, meta: Mapping[str, Any], where: str) -> None:
        minimum, maximum = meta.get("minimum"), meta.get("maximum")
        choices = meta.get("choices")
        if minimum is not None and value < minimum:
            raise ConfigValueInvalid(f"{self.source}: {where}: must be at least {minimum}")
        if maximum is not None and value > maximum:
            raise ConfigValueInvalid(f"{self.source}: {where}: must be at most {maximum}")
        if choices is not None and value not in choices:
            raise ConfigValueInvalid(
                f"{self.source}: {where}: must be one of {', '.join(map(repr, choices))}"
            )


# --- introspection (documentation) --------------------------------------------


@dataclass(frozen=True)
class SettingInfo:
    """One documented setting: its dotted name, TOML type and default."""

    name: str
    type_name: str
    default: Any
    required: bool


def _type_label(tp: Any) -> str:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (types.UnionType, typing.Union):
        (inner,) = [a for a in args if a is not type(None)]
        return _type_label(inner)
    if origin is tuple:
        return f"array of {_type_label(args[0])}s"
    if origin is Mapping:
        return "table"
    return {str: "string", int: "integer", float: "number", bool: "boolean"}.get(tp, "table")


def iter_settings(cls: type[Any] = NodeConfig, prefix: str = "") -> Iterator[SettingInfo]:
    """Every setting of the configuration, as documented in docs/configuration.md.

    Names are dotted paths: ``api.port``, ``peers[].url`` for arrays of tables,
    ``retention.areas.<AREA>.months_after_closure`` for tables of tables.
    """
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if not f.metadata.get("toml", True):
            continue
        tp = hints[f.name]
        name = f"{prefix}{f.name}"
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if dataclasses.is_dataclass(tp):
            yield from iter_settings(typing.cast(type, tp), f"{name}.")
        elif origin is tuple and dataclasses.is_dataclass(args[0]):
            yield from iter_settings(typing.cast(type, args[0]), f"{name}[].")
        elif origin is Mapping and dataclasses.is_dataclass(args[1]):
            yield from iter_settings(typing.cast(type, args[1]), f"{name}.<AREA>.")
        else:
            if f.default is not dataclasses.MISSING:
                default: Any = f.default
            elif f.default_factory is not dataclasses.MISSING:
                default = f.default_factory()
            else:
                default = dataclasses.MISSING
            yield SettingInfo(name, _type_label(tp), default, default is dataclasses.MISSING)


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
) -> str:
    """The commented ``gateway.toml`` that ``imi-gateway init`` writes.

    Settings given on the command line are written out; every other setting is
    shown commented out with its default, so the file documents itself.
    """
    langs = languages or default_languages(node_id)
    public = (
        f"public_url = {toml_string(public_url)}"
        if public_url
        else '# public_url = "https://gateway.example.org:9443"'
    )
    return f"""\
# imi-gateway node configuration (TOML). Reference: docs/configuration.md.
# Every setting below that is commented out shows its default. Unknown keys
# are refused, so a typo cannot silently fall back to a default.

[node]
# This node's id: its EEA country code. Certificates are bound to it.
id = {toml_string(node_id)}
# Languages in which question codes are rendered for the national systems.
languages = {_toml_array(langs)}

[database]
# Default: the SQLite file {DATABASE_FILE} in this directory. Scale-out path:
# url = "postgresql+psycopg://gateway@db.example.org/gateway"
# url = "sqlite:///{DATABASE_FILE}"
# pool_size = 5

[api]
# HTTPS API for the national systems (client certificates issued by the node CA).
# host = "0.0.0.0"
port = {api_port}

[peer]
# Mutual-TLS API that peer nodes call, and the URL they use to reach it
# (published by `imi-gateway keys export`).
# host = "0.0.0.0"
port = {peer_port}
{public}

[metrics]
# Health and Prometheus metrics, plain HTTP: keep it on loopback.
# host = "127.0.0.1"
port = {metrics_port}

[limits]
# max_body_bytes = 16777216          # largest request body accepted (16 MiB)
# request_deadline_seconds = 30      # total time a request may take to arrive
# replay_window_seconds = 300        # accepted skew of a document's creation time
# long_poll_seconds = 25             # how long a delivery poll waits for news

[outbound]
# Delivery to peers: exponential backoff with jitter, then the dead-letter state.
# initial_backoff_seconds = 1
# max_backoff_seconds = 300
# jitter = 0.2
# dead_letter_after_seconds = 86400
# max_attempts = 100                 # default: no limit on attempts
# batch_size = 50
# concurrency_per_peer = 4

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
#
# Shorter limits for one legislation area:
# [retention.areas.services]
# months_after_closure = 3
# months_if_never_closed = 12

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
