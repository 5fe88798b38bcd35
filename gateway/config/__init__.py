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

Where things live (this module re-exports all of it; import from here):

* :mod:`gateway.config.model`: the errors, the section dataclasses and
  :class:`NodeConfig`, :func:`setting`, :func:`default_languages`. Adding a
  section: write a frozen dataclass there whose fields carry their defaults
  (use :func:`setting` for ranges and choices, ``__post_init__`` raising
  :class:`ConfigValueInvalid` for anything else), add a field of that type to
  :class:`NodeConfig`, document it in docs/configuration.md and in the
  template that ``imi-gateway init`` writes (:func:`render_config_template`).
* :mod:`gateway.config.load`: :func:`load_config`, :func:`parse_config` and
  :func:`iter_settings`. The loader is driven by the type annotations; it
  understands ``str``, ``int``, ``float``, ``bool``, ``X | None``,
  ``tuple[str, ...]``, nested dataclasses (TOML tables), ``tuple[Dataclass,
  ...]`` (arrays of tables), ``Mapping[str, Dataclass]`` (tables of tables)
  and ``Mapping[str, Any]`` (a free-form table handed to an adapter as it is).
* :mod:`gateway.config.text`: the file's text: :func:`render_config_template`
  and the edits for the key-store commands (:func:`with_peer`,
  :func:`with_authority`): pure text in, text out, each edit checked by
  re-parsing, so the operator's comments and layout survive. Writing the
  file is ``gateway.keystore``'s job.

Nothing here does network IO, and no message repeats a value that may be a
secret.
"""

from __future__ import annotations

from gateway.config.load import (
    SettingInfo,
    iter_settings,
    load_config,
    parse_config,
)
from gateway.config.model import (
    CONFIG_FILE,
    DATABASE_FILE,
    TRANSLATION_ENGINES,
    AccessConfig,
    ApiConfig,
    AuditConfig,
    AuthorityConfig,
    ConfigEditFailed,
    ConfigInvalid,
    ConfigMissingKey,
    ConfigNotFound,
    ConfigSyntaxError,
    ConfigUnknownKey,
    ConfigValueInvalid,
    ConfigWrongType,
    DatabaseConfig,
    DeadlineAreaConfig,
    DeadlinesConfig,
    LimitsConfig,
    LoggingConfig,
    MetricsConfig,
    NodeConfig,
    NodeIdentity,
    OutboundConfig,
    PeerConfig,
    PeerListenerConfig,
    RetentionAreaConfig,
    RetentionConfig,
    TranslationConfig,
    default_languages,
    setting,
)
from gateway.config.text import (
    render_config_template,
    toml_string,
    with_authority,
    with_peer,
)

__all__ = [
    "CONFIG_FILE",
    "DATABASE_FILE",
    "TRANSLATION_ENGINES",
    "AccessConfig",
    "ApiConfig",
    "AuditConfig",
    "AuthorityConfig",
    "ConfigEditFailed",
    "ConfigInvalid",
    "ConfigMissingKey",
    "ConfigNotFound",
    "ConfigSyntaxError",
    "ConfigUnknownKey",
    "ConfigValueInvalid",
    "ConfigWrongType",
    "DatabaseConfig",
    "DeadlineAreaConfig",
    "DeadlinesConfig",
    "LimitsConfig",
    "LoggingConfig",
    "MetricsConfig",
    "NodeConfig",
    "NodeIdentity",
    "OutboundConfig",
    "PeerConfig",
    "PeerListenerConfig",
    "RetentionAreaConfig",
    "RetentionConfig",
    "SettingInfo",
    "TranslationConfig",
    "default_languages",
    "iter_settings",
    "load_config",
    "parse_config",
    "render_config_template",
    "setting",
    "toml_string",
    "with_authority",
    "with_peer",
]
