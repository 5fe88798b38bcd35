"""gateway.config: defaults, strict validation with stable codes, edits, and docs coverage."""

from __future__ import annotations

import dataclasses
import pathlib
import re
import tomllib

import pytest

from gateway import config as cfg
from gateway.core.errors import ConfigurationError

DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs" / "configuration.md"

MINIMAL = '[node]\nid = "NO"\n'


def parse(text: str, node_dir: pathlib.Path = pathlib.Path("/srv/node")) -> cfg.NodeConfig:
    return cfg.parse_config(text, node_dir)


def with_node(extra: str) -> str:
    return MINIMAL + extra


# --- defaults -------------------------------------------------------------------


def test_minimal_file_gets_every_documented_default() -> None:
    config = parse(MINIMAL)
    assert config.node_id == "NO"
    assert config.node.languages == ("nn", "nb")
    assert config.database.url == "sqlite:////srv/node/gateway.sqlite3"
    assert config.database.pool_size == 5
    assert (config.api.host, config.api.port) == ("0.0.0.0", 8443)
    assert (config.peer.host, config.peer.port, config.peer.public_url) == ("0.0.0.0", 9443, None)
    assert (config.metrics.host, config.metrics.port) == ("127.0.0.1", 9100)
    assert config.limits == cfg.LimitsConfig(16 * 1024 * 1024, 30.0, 300.0, 25.0)
    assert config.outbound.initial_backoff_seconds == 1.0
    assert config.outbound.max_backoff_seconds == 300.0
    assert config.outbound.jitter == 0.2
    assert config.outbound.dead_letter_after_seconds == 86400.0
    assert config.outbound.max_attempts is None
    assert config.outbound.batch_size == 50
    assert config.outbound.concurrency_per_peer == 4
    assert (config.logging.format, config.logging.level) == ("text", "info")
    assert config.peers == () and config.authorities == ()
    assert config.translation.engine == "none" and dict(config.translation.settings) == {}
    assert (config.retention.months_after_closure, config.retention.months_if_never_closed) == (
        6,
        24,
    )
    assert config.source == pathlib.Path("/srv/node/gateway.toml")


@pytest.mark.parametrize(
    ("country", "languages"),
    [("NO", ("nn", "nb")), ("PT", ("pt",)), ("BE", ("nl", "fr", "de")), ("EL", ("el",))],
)
def test_rendering_languages_default_by_country(country: str, languages: tuple[str, ...]) -> None:
    assert parse(f'[node]\nid = "{country}"\n').node.languages == languages


def test_every_eea_country_has_default_languages() -> None:
    from gateway.core.ns import EEA_COUNTRIES, LANGUAGES

    for country in EEA_COUNTRIES:
        languages = cfg.default_languages(country)
        assert languages and set(languages) <= set(LANGUAGES)


def test_explicit_languages_are_kept_in_order() -> None:
    assert parse('[node]\nid = "NO"\nlanguages = ["nb", "en"]\n').node.languages == ("nb", "en")


def test_integer_accepted_for_number_settings_and_converted_to_float() -> None:
    limits = parse(with_node("[limits]\nrequest_deadline_seconds = 10\n")).limits
    assert limits.request_deadline_seconds == 10.0
    assert isinstance(limits.request_deadline_seconds, float)


def test_relative_sqlite_url_is_relative_to_node_dir_and_postgres_url_is_kept() -> None:
    rel = parse(with_node('[database]\nurl = "sqlite:///data/x.db"\n'), pathlib.Path("/n"))
    assert rel.database.url == "sqlite:////n/data/x.db"
    url = "postgresql+psycopg://gw@db.example/gw"
    assert parse(with_node(f'[database]\nurl = "{url}"\n')).database.url == url


def test_load_config_reads_gateway_toml(tmp_path: pathlib.Path) -> None:
    (tmp_path / "gateway.toml").write_text(with_node("[api]\nport = 8444\n"))
    config = cfg.load_config(tmp_path)
    assert config.api.port == 8444
    assert config.node_dir == tmp_path
    assert config.source == tmp_path / "gateway.toml"


def test_config_is_frozen() -> None:
    config = parse(
        with_node(
            '[translation]\nengine = "libretranslate"\n'
            '[translation.libretranslate]\nurl = "https://t.example"\n'
        )
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.api.port = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.translation.settings["url"] = "https://evil.example"  # type: ignore[index]
    assert config.translation.settings["url"] == "https://t.example"


def test_retention_areas_override_node_limits() -> None:
    config = parse(
        with_node(
            "[retention]\nmonths_if_never_closed = 12\n"
            "[retention.areas.services]\nmonths_after_closure = 3\n"
        )
    )
    assert config.retention.for_area("services") == (3, 12)
    assert config.retention.for_area("pqd") == (6, 12)
    assert config.retention.for_area(None) == (6, 12)


def test_peers_and_authorities_are_read_as_arrays_of_tables() -> None:
    config = parse(
        with_node(
            '[[peers]]\nid = "PT"\nurl = "https://pt.example:9443"\n'
            '[[peers]]\nid = "SE"\nurl = "https://se.example"\n'
            '[[authorities]]\nid = "NO-HELSEDIR"\npush_url = "https://h.example/push"\n'
        )
    )
    assert [p.id for p in config.peers] == ["PT", "SE"]
    assert config.peer_config("SE") == cfg.PeerConfig("SE", "https://se.example")
    assert config.peer_config("DK") is None
    assert config.authority_config("NO-HELSEDIR") == cfg.AuthorityConfig(
        "NO-HELSEDIR", "https://h.example/push"
    )


# --- errors -----------------------------------------------------------------------


def refused(text: str) -> ConfigurationError:
    with pytest.raises(ConfigurationError) as info:
        parse(text)
    return info.value


def test_unknown_key_is_refused_and_named_with_a_suggestion() -> None:
    error = refused(with_node("[api]\nprot = 8443\n"))
    assert isinstance(error, cfg.ConfigUnknownKey)
    assert error.code == "CONFIG_UNKNOWN_KEY"
    assert "'api.prot'" in str(error) and "'port'" in str(error)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[node]\nid = "NO"\ncolour = 1\n', "node.colour"),
        (MINIMAL + "[apis]\nport = 1\n", "apis"),
        (MINIMAL + '[[peers]]\nid = "PT"\nurl = "https://p.example"\nport = 1\n', "peers[0].port"),
        (MINIMAL + "[retention.areas.services]\nmonths = 1\n", "retention.areas.services.months"),
    ],
)
def test_unknown_keys_anywhere_are_refused(text: str, key: str) -> None:
    error = refused(text)
    assert error.code == "CONFIG_UNKNOWN_KEY"
    assert repr(key) in str(error)


@pytest.mark.parametrize(
    ("extra", "key", "expected"),
    [
        ('[api]\nport = "8443"\n', "api.port", "an integer"),
        ("[api]\nport = 8443.0\n", "api.port", "an integer"),
        ("[limits]\nmax_body_bytes = true\n", "limits.max_body_bytes", "an integer"),
        ('[outbound]\njitter = "0.2"\n', "outbound.jitter", "a number"),
        ("[outbound]\nmax_attempts = 1.5\n", "outbound.max_attempts", "an integer"),
        ("[logging]\nformat = 1\n", "logging.format", "a string"),
        ('[peers]\nid = "PT"\n', "peers", "an array"),
        ("[translation]\nlibretranslate = 1\n", "translation.libretranslate", "a table"),
    ],
)
def test_wrong_types_are_explained(extra: str, key: str, expected: str) -> None:
    error = refused(with_node(extra))
    assert isinstance(error, cfg.ConfigWrongType)
    assert error.code == "CONFIG_WRONG_TYPE"
    assert f"{key}: expected {expected}" in str(error)


def test_a_section_that_is_not_a_table_is_explained() -> None:
    error = refused("api = 1\n" + MINIMAL)
    assert error.code == "CONFIG_WRONG_TYPE" and "api: expected a table" in str(error)


def test_wrong_type_in_node_languages_is_explained() -> None:
    error = refused('[node]\nid = "NO"\nlanguages = "nn"\n')
    assert error.code == "CONFIG_WRONG_TYPE" and "node.languages" in str(error)
    error = refused('[node]\nid = "NO"\nlanguages = ["nn", 1]\n')
    assert error.code == "CONFIG_WRONG_TYPE" and "node.languages[1]" in str(error)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('[node]\nid = "XX"\n', "node.id"),
        ('[node]\nid = "no"\n', "node.id"),
        ('[node]\nid = "NO"\nlanguages = ["xx"]\n', "node.languages"),
        ('[node]\nid = "NO"\nlanguages = ["nn", "nn"]\n', "node.languages"),
        (MINIMAL + "[api]\nport = -1\n", "api.port: must be at least 0"),
        (MINIMAL + "[peer]\nport = 70000\n", "peer.port: must be at most 65535"),
        (MINIMAL + '[peer]\npublic_url = "http://x.example"\n', "peer.public_url"),
        (MINIMAL + "[retention]\nmonths_after_closure = 7\n", "must be at most 6"),
        (MINIMAL + "[outbound]\njitter = 1.5\n", "outbound.jitter"),
        (
            MINIMAL + "[outbound]\ninitial_backoff_seconds = 10\nmax_backoff_seconds = 5\n",
            "outbound.max_backoff_seconds",
        ),
        (MINIMAL + "[limits]\nreplay_window_seconds = inf\n", "finite"),
        (MINIMAL + '[logging]\nlevel = "verbose"\n', "logging.level: must be one of"),
        (MINIMAL + '[translation]\nengine = "google"\n', "translation.engine"),
        (MINIMAL + '[translation]\nengine = "etranslation"\n', "[translation.etranslation]"),
        (MINIMAL + '[database]\nurl = "mysql://x"\n', "database.url"),
        (MINIMAL + "[api]\nport = 9443\n", "api.port and peer.port"),
        (MINIMAL + '[api]\nhost = "localhost"\n', "api.host: must be an IPv4 or IPv6 address"),
        (MINIMAL + '[metrics]\nhost = ""\n', "metrics.host: must be an IPv4 or IPv6"),
        (MINIMAL + "[peer]\nmax_connections = 0\n", "peer.max_connections: must be at least 1"),
        (MINIMAL + "[limits]\nhandshake_timeout_seconds = 0\n", "limits.handshake_timeout"),
        (MINIMAL + "[limits]\nmax_header_bytes = 100\n", "limits.max_header_bytes: must be at"),
        (MINIMAL + '[[peers]]\nid = "NO"\nurl = "https://x.example"\n', "own id"),
        (
            MINIMAL + '[[peers]]\nid = "PT"\nurl = "https://a.example"\n'
            '[[peers]]\nid = "PT"\nurl = "https://b.example"\n',
            "listed twice",
        ),
        (MINIMAL + '[[peers]]\nid = "PT"\nurl = "ftp://x.example"\n', "peers[0].url"),
        (MINIMAL + '[[authorities]]\nid = "PT-OMD"\n', "belongs to country PT"),
        (MINIMAL + '[[authorities]]\nid = "NO_BAD"\n', "authorities[0].id"),
        (MINIMAL + "[retention.areas.'bad area']\nmonths_after_closure = 1\n", "retention.areas"),
    ],
)
def test_invalid_values_are_refused_with_the_key_named(text: str, fragment: str) -> None:
    error = refused(text)
    assert isinstance(error, cfg.ConfigValueInvalid), error
    assert error.code == "CONFIG_VALUE_INVALID"
    assert fragment in str(error)


def test_listeners_on_different_addresses_may_share_a_port() -> None:
    config = parse(
        with_node('[api]\nhost = "10.0.0.1"\nport = 443\n[peer]\nhost = "192.0.2.1"\nport = 443\n')
    )
    assert config.api.port == config.peer.port == 443


def test_port_0_on_every_listener_is_accepted_each_binding_its_own_free_port() -> None:
    config = parse(with_node("[api]\nport = 0\n[peer]\nport = 0\n[metrics]\nport = 0\n"))
    assert (config.api.port, config.peer.port, config.metrics.port) == (0, 0, 0)


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("", "CONFIG_MISSING_KEY"),
        ("[node]\nlanguages = []\n", "CONFIG_MISSING_KEY"),
        (MINIMAL + '[[peers]]\nid = "PT"\n', "CONFIG_MISSING_KEY"),
        ("[node\nid = 'NO'\n", "CONFIG_SYNTAX"),
        ('[node]\nid = "NO"\nid = "SE"\n', "CONFIG_SYNTAX"),
    ],
)
def test_missing_keys_and_syntax_errors_have_stable_codes(text: str, code: str) -> None:
    assert refused(text).code == code


def test_missing_file_and_non_utf8_file(tmp_path: pathlib.Path) -> None:
    with pytest.raises(cfg.ConfigNotFound) as info:
        cfg.load_config(tmp_path)
    assert info.value.code == "CONFIG_NOT_FOUND" and "imi-gateway init" in str(info.value)
    (tmp_path / "gateway.toml").write_bytes(b'[node]\nid = "N\xff"\n')
    with pytest.raises(cfg.ConfigSyntaxError):
        cfg.load_config(tmp_path)


def test_configuration_errors_exit_with_status_3_and_have_unique_codes() -> None:
    classes = [
        cfg.ConfigNotFound,
        cfg.ConfigInvalid,
        cfg.ConfigSyntaxError,
        cfg.ConfigUnknownKey,
        cfg.ConfigWrongType,
        cfg.ConfigMissingKey,
        cfg.ConfigValueInvalid,
        cfg.ConfigEditFailed,
    ]
    assert all(issubclass(c, ConfigurationError) and c.exit_status == 3 for c in classes)
    assert len({c.code for c in classes}) == len(classes)


def test_wrong_type_message_does_not_echo_the_value() -> None:
    error = refused(with_node('[api]\nport = "s3cr3t-value"\n'))
    assert "s3cr3t" not in str(error)


# --- the template init writes --------------------------------------------------------


def test_template_loads_to_the_defaults_plus_the_given_options() -> None:
    text = cfg.render_config_template("PT", api_port=1443, public_url="https://pt.example:9443")
    config = parse(text)
    expected = dataclasses.replace(
        parse('[node]\nid = "PT"\n'),
        api=cfg.ApiConfig(port=1443),
        peer=cfg.PeerListenerConfig(public_url="https://pt.example:9443"),
    )
    assert config == expected


def test_template_mentions_every_setting() -> None:
    text = cfg.render_config_template("NO")
    for info in cfg.iter_settings():
        leaf = info.name.rsplit(".", 1)[-1]
        if leaf in ("libretranslate", "etranslation"):
            assert f"# [translation.{leaf}]" in text
            continue
        assert re.search(rf"^#? ?{re.escape(leaf)} =", text, re.M), info.name


# --- edits ---------------------------------------------------------------------------------


def test_with_peer_appends_then_updates_and_keeps_comments() -> None:
    base = cfg.render_config_template("NO")
    added = cfg.with_peer(base, "/n", "PT", "https://pt.example:9443")
    assert added.startswith(base)
    updated = cfg.with_peer(added, "/n", "PT", "https://pt2.example")
    second = cfg.with_peer(updated, "/n", "SE", "https://se.example")
    config = parse(second)
    assert config.peers == (
        cfg.PeerConfig("PT", "https://pt2.example"),
        cfg.PeerConfig("SE", "https://se.example"),
    )
    assert "# Peer nodes; their certificates live" in second
    assert second.count("\n[[peers]]\n") == 2


def test_with_peer_refuses_own_id_and_bad_url() -> None:
    with pytest.raises(cfg.ConfigValueInvalid):
        cfg.with_peer(MINIMAL, "/n", "NO", "https://x.example")
    with pytest.raises(cfg.ConfigValueInvalid):
        cfg.with_peer(MINIMAL, "/n", "PT", "http://x.example")


def test_with_authority_registers_once() -> None:
    text = cfg.with_authority(MINIMAL, "/n", "NO-HELSEDIR")
    assert cfg.with_authority(text, "/n", "NO-HELSEDIR") == text
    assert parse(text).authorities == (cfg.AuthorityConfig("NO-HELSEDIR"),)
    with pytest.raises(cfg.ConfigValueInvalid):
        cfg.with_authority(MINIMAL, "/n", "PT-OMD")


def test_edit_that_cannot_be_done_safely_gives_the_snippet_to_add_by_hand() -> None:
    inline = 'peers = [{id = "SE", url = "https://se.example"}]\n' + MINIMAL
    with pytest.raises(cfg.ConfigEditFailed) as info:
        cfg.with_peer(inline, "/n", "PT", "https://pt.example")
    assert 'id = "PT"' in str(info.value)


def test_toml_string_escapes() -> None:
    value = 'a"b\\c\nd\x7f'
    assert tomllib.loads(f"v = {cfg.toml_string(value)}")["v"] == value


# --- docs/configuration.md cannot fall behind ---------------------------------------------

_ROW = re.compile(r"^\| `([^`]+)` \| ([^|]+?) \| ([^|]+?) \| (.+) \|$", re.M)


def _documented() -> dict[str, tuple[str, str]]:
    rows = _ROW.findall(DOCS.read_text(encoding="utf-8"))
    return {name: (type_name, default) for name, type_name, default, _ in rows}


def test_every_setting_is_documented_with_its_type_and_default() -> None:
    documented = _documented()
    for info in cfg.iter_settings():
        assert info.name in documented, f"{info.name} is missing from docs/configuration.md"
        type_name, default = documented[info.name]
        assert type_name == info.type_name, info.name
        if info.required:
            assert default == "required", info.name
        elif info.default is None:
            assert default.startswith("unset"), info.name
        elif info.default in ("", (), {}) or info.name == "translation.libretranslate":
            continue  # computed or empty defaults are described in words
        else:
            assert tomllib.loads(f"v = {default}")["v"] == info.default, info.name


def test_docs_document_no_setting_that_does_not_exist() -> None:
    names = {info.name for info in cfg.iter_settings()}
    assert set(_documented()) - names == set()


def test_docs_example_is_a_valid_configuration() -> None:
    text = DOCS.read_text(encoding="utf-8")
    example = text.split("## Example", 1)[1].split("```toml\n", 1)[1].split("```", 1)[0]
    config = parse(example)
    assert config.translation.engine == "libretranslate"
    assert config.retention.for_area("services") == (3, 24)
