"""``imi-gateway coordinators``: registration, listing, removal, refusals with codes."""

from __future__ import annotations

import json
import pathlib

import pytest

from gateway import cli
from gateway import keystore as ks
from gateway.core.coordinators import coordinator_id_of


@pytest.fixture(autouse=True)
def _fresh_key_cache() -> object:
    ks.clear_key_cache()
    yield
    ks.clear_key_cache()


@pytest.fixture
def node(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "node-no"
    assert cli.main(["init", str(path), "--country", "NO"]) == 0
    return path


def test_add_issues_a_marked_certificate_and_registers_the_scope(
    node: pathlib.Path, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "handover"
    args = ["coordinators", "add", str(node), "NO-KOORD", "--name", "Nasjonal", "--national"]
    assert cli.main([*args, "--out", str(out)]) == 0
    assert "Registered coordinator NO-KOORD (national)." in capsys.readouterr().out
    cert = ks.load_trust(node).national["NO-KOORD"][0]
    assert coordinator_id_of(cert) == "NO-KOORD"
    assert (out / "NO-KOORD.key").stat().st_mode & 0o777 == 0o600
    # not registered as an authority of the node
    assert "NO-KOORD" not in (node / "gateway.toml").read_text()

    regional = ["coordinators", "add", str(node), "NO-KOORD-VEST", "--name", "Vestland"]
    assert cli.main([*regional, "--regions", "Vestland, Rogaland", "--out", str(out)]) == 0
    capsys.readouterr()
    assert cli.main(["coordinators", "list", str(node), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed == [
        {"id": "NO-KOORD", "name": "Nasjonal", "scope": "national", "members": []},
        {
            "id": "NO-KOORD-VEST",
            "name": "Vestland",
            "scope": "regions",
            "members": ["Rogaland", "Vestland"],
        },
    ]

    # the same id twice: refused before any certificate is issued
    assert cli.main([*args, "--out", str(tmp_path / "again")]) == 1
    assert "error: COORDINATOR_EXISTS" in capsys.readouterr().err
    assert not (tmp_path / "again").exists()


def test_remove_unregisters_and_revokes(
    node: pathlib.Path, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    add = ["coordinators", "add", str(node), "NO-KOORD", "--name", "N", "--national"]
    assert cli.main([*add, "--out", str(tmp_path / "h")]) == 0
    assert cli.main(["coordinators", "remove", str(node), "NO-KOORD"]) == 0
    assert "revoked its certificates (1)" in capsys.readouterr().out
    assert "NO-KOORD" not in ks.load_trust(node).national
    assert cli.main(["coordinators", "show", str(node), "NO-KOORD"]) == 1
    assert "error: COORDINATOR_UNKNOWN" in capsys.readouterr().err
    assert cli.main(["coordinators", "remove", str(node), "NO-KOORD"]) == 1
    assert "error: COORDINATOR_NOT_REGISTERED" in capsys.readouterr().err


def test_scopes_are_checked_and_help_explains_itself(
    node: pathlib.Path, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = ["coordinators", "add", str(node), "NO-K", "--name", "x", "--authorities", "PT-OMD"]
    assert cli.main([*bad, "--out", str(tmp_path / "h")]) == 1
    assert "error: COORDINATOR_INVALID" in capsys.readouterr().err
    with pytest.raises(SystemExit) as done:
        cli.main(["coordinators", "--help"])
    assert done.value.code == 0
    assert "metadata only" in capsys.readouterr().out
