"""``imi-gateway init --host/--listen``: the names in the certificate and the addresses bound."""

from __future__ import annotations

import pathlib

import pytest
from twisted.internet import reactor

from gateway import cli
from gateway import config as cfg
from gateway import keystore as ks
from gateway.node import build_node


@pytest.fixture(autouse=True)
def _fresh_key_cache() -> object:
    ks.clear_key_cache()
    yield
    ks.clear_key_cache()


def init(capsys: pytest.CaptureFixture[str], node: pathlib.Path, *extra: str) -> tuple[int, str]:
    status = cli.main(["init", str(node), "--country", "NO", *extra])
    out, err = capsys.readouterr()
    return status, out + err


def test_listen_sets_the_address_of_the_api_and_peer_listeners_and_init_says_so(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out = init(capsys, tmp_path / "no", "--host", "127.0.0.1", "--listen", "127.0.0.1")
    assert status == 0, out
    config = cfg.load_config(tmp_path / "no")
    assert (config.api.host, config.peer.host, config.metrics.host) == ("127.0.0.1",) * 3
    assert "national API    listens on 127.0.0.1:8443" in out
    assert "peer API        listens on 127.0.0.1:9443" in out
    assert "health/metrics  listens on 127.0.0.1:9100" in out


def test_without_listen_init_says_the_apis_listen_on_all_addresses(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out = init(capsys, tmp_path / "no", "--host", "127.0.0.1")
    assert status == 0, out
    assert "national API    listens on 0.0.0.0:8443" in out
    assert "health/metrics  listens on 127.0.0.1:9100" in out


def test_listen_on_ipv6_is_shown_in_brackets(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out = init(capsys, tmp_path / "no", "--listen", "::1")
    assert status == 0, out
    assert "peer API        listens on [::1]:9443" in out


@pytest.mark.parametrize("value", ["localhost", "gateway.example.no", "127.0.0.1:80", ""])
def test_listen_must_be_an_ip_address(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    status, out = init(capsys, tmp_path / "no", "--listen", value)
    if value == "":  # an empty --listen means the default, all addresses
        assert status == 0, out
        return
    assert status != 0
    assert "must be an IPv4 or IPv6 address" in out
    assert not (tmp_path / "no").exists()


def test_a_node_initialised_with_listen_binds_that_address_and_metrics_stay_on_loopback(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    node_dir = tmp_path / "no"
    status, out = init(capsys, node_dir, "--listen", "192.0.2.7")
    assert status == 0, out
    bound: set[tuple[int, str]] = set()

    def listen_tcp(port: int, factory: object, backlog: int = 50, interface: str = "") -> object:
        bound.add((port, interface))
        return object()  # nothing is bound: the listeners are not stopped either

    # (twisted.internet.testing's MemoryReactor is not used: importing that module breaks
    # xmlschema's XSD 1.1 schemas for the rest of the process.)
    monkeypatch.setattr(reactor, "listenTCP", listen_tcp)
    _service, parts = build_node(node_dir, reactor)
    for listener in (parts.api, parts.peer, parts.health):
        listener._port = listener._listen()  # what startService does, without its log line
    assert bound == {(8443, "192.0.2.7"), (9443, "192.0.2.7"), (9100, "127.0.0.1")}
    parts.db.stop()
