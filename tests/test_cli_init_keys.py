"""``imi-gateway init`` and ``imi-gateway keys``: exit statuses, messages, round trips."""

from __future__ import annotations

import io
import json
import os
import pathlib
import subprocess
import sys

import pytest

from gateway import cli
from gateway import config as cfg
from gateway import keystore as ks


@pytest.fixture(autouse=True)
def _fresh_key_cache() -> object:
    ks.clear_key_cache()
    yield
    ks.clear_key_cache()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = cli.main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def init(capsys: pytest.CaptureFixture[str], node: pathlib.Path, country: str, *extra: str) -> None:
    status, _, err = run(capsys, "init", str(node), "--country", country, *extra)
    assert status == 0, err


def test_init_creates_a_node_directory_and_prints_fingerprints(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    node = tmp_path / "no"
    status, out, err = run(
        capsys,
        *("init", str(node), "--country", "NO", "--languages", "nb,nn,en"),
        *("--api-port", "1443", "--peer-port", "2443", "--metrics-port", "3100"),
        *("--host", "gw.example.no", "--host", "192.0.2.1"),
    )
    assert status == 0, err
    keys = ks.load_node_keys(node)
    for pair in (keys.ca, keys.signing, keys.tls):
        assert pair.fingerprint in out
    assert "PRIVATE KEY" not in out
    config = cfg.load_config(node)
    assert config.node.languages == ("nb", "nn", "en")
    assert (config.api.port, config.peer.port, config.metrics.port) == (1443, 2443, 3100)
    assert config.peer.public_url == "https://gw.example.no:2443"


def test_init_refuses_an_existing_directory_with_exit_status_3(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    node = tmp_path / "no"
    init(capsys, node, "NO")
    status, _, err = run(capsys, "init", str(node), "--country", "NO")
    assert status == 3
    assert err.startswith("error: NODE_DIR_EXISTS: ")


def test_init_refuses_a_bad_country_with_exit_status_1(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = run(capsys, "init", str(tmp_path / "x"), "--country", "XX")
    assert status == 1
    assert err.startswith("error: NODE_ID_INVALID: ")
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["init", "somewhere"],
        ["init", "somewhere", "--country", "NO", "--api-port", "0"],
        ["init", "somewhere", "--country", "NO", "--peer-port", "http"],
        ["keys", "issue-national", "somewhere", "NO-X", "--out", "d", "--days", "0"],
        ["keys", "issue-national", "somewhere", "NO-X"],
    ],
)
def test_usage_errors_exit_with_status_2(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2


def test_keys_without_a_subcommand_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(capsys, "keys")
    assert status == 2
    assert "issue-national" in err and "import-peer" in err


def test_keys_show_lists_certificates_and_checks_keys(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    node = tmp_path / "no"
    init(capsys, node, "NO")
    status, out, err = run(capsys, "keys", "show", str(node))
    assert status == 0, err
    keys = ks.load_node_keys(node)
    for pair in (keys.ca, keys.signing, keys.tls):
        assert pair.fingerprint in out
    assert "node NO" in out and "peers (0)" in out and "national systems (0)" in out
    status, out, _ = run(capsys, "keys", "show", str(node), "--json")
    document = json.loads(out)
    assert document["node_id"] == "NO"
    assert [c["role"] for c in document["certificates"]] == ["ca", "signing", "tls"]
    assert all(c["status"] == "valid" for c in document["certificates"])

    ks.clear_key_cache()
    os.chmod(node / "keys" / "signing.key", 0o644)
    status, _, err = run(capsys, "keys", "show", str(node))
    assert status == 3
    assert err.startswith("error: KEYSTORE_PERMISSIONS_TOO_OPEN: ")


def test_keys_show_on_a_directory_that_is_not_a_node(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = run(capsys, "keys", "show", str(tmp_path))
    assert status == 3
    assert err.startswith("error: CONFIG_NOT_FOUND: ")


def test_issue_national_refuses_a_foreign_authority(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    node = tmp_path / "no"
    init(capsys, node, "NO")
    out_dir = tmp_path / "out"
    status, _, err = run(
        capsys, "keys", "issue-national", str(node), "PT-OMD", "--out", str(out_dir)
    )
    assert status == 1
    assert err.startswith("error: AUTHORITY_ID_INVALID: ")
    assert not out_dir.exists()


def test_full_round_trip_between_two_nodes_via_the_cli(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    no, pt = tmp_path / "no", tmp_path / "pt"
    init(capsys, no, "NO", "--host", "gw.example.no")
    init(capsys, pt, "PT", "--api-port", "8444", "--peer-port", "9444", "--metrics-port", "9101")

    # National system certificate (RSA, short validity).
    handover = tmp_path / "handover"
    status, out, err = run(
        capsys,
        *("keys", "issue-national", str(no), "NO-HELSEDIR", "--out", str(handover)),
        *("--rsa", "--days", "20"),
    )
    assert status == 0, err
    national_fp = ks.load_trust(no).national["NO-HELSEDIR"][0]
    fingerprint = ks.certificate_fingerprint(national_fp)
    assert fingerprint in out
    assert "Registered NO-HELSEDIR" in out
    assert sorted(p.name for p in handover.iterdir()) == [
        "NO-HELSEDIR.key",
        "NO-HELSEDIR.pem",
        "node-ca.pem",
    ]

    # Bundles both ways: to a file, and to standard output.
    no_bundle = tmp_path / "no.json"
    status, _, err = run(capsys, "keys", "export", str(no), "-o", str(no_bundle))
    assert status == 0 and ks.load_node_keys(no).ca.fingerprint in err
    status, pt_json, _ = run(capsys, "keys", "export", str(pt))
    assert status == 0 and json.loads(pt_json)["node_id"] == "PT"
    pt_bundle = tmp_path / "pt.json"
    pt_bundle.write_text(pt_json)

    status, out, err = run(capsys, "keys", "import-peer", str(pt), str(no_bundle))
    assert status == 0, err
    assert "Imported peer NO at https://gw.example.no:9443" in out
    status, out, err = run(
        capsys, "keys", "import-peer", str(no), str(pt_bundle), "--url", "https://pt.example:9444"
    )
    assert status == 0, err
    status, out, _ = run(capsys, "keys", "import-peer", str(no), str(pt_bundle))
    assert status == 0 and "Already up to date" in out

    status, out, err = run(capsys, "keys", "show", str(no))
    assert status == 0
    assert "PT  https://pt.example:9444" in out
    assert "NO-HELSEDIR" in out and fingerprint in out
    assert "expires in" in out  # 20-day national certificate

    # A second PT identity is refused without --replace (exit 1, stable code).
    other = tmp_path / "pt2"
    init(capsys, other, "PT")
    status, other_json, _ = run(capsys, "keys", "export", str(other))
    (tmp_path / "pt2.json").write_text(other_json)
    status, _, err = run(capsys, "keys", "import-peer", str(no), str(tmp_path / "pt2.json"))
    assert status == 1 and err.startswith("error: PEER_ALREADY_KNOWN: ")

    # Revoke the national certificate by authority id, then a peer certificate.
    status, out, err = run(capsys, "keys", "revoke", str(no), "NO-HELSEDIR")
    assert status == 0, err
    assert fingerprint in out and "unbound" in out
    pt_tls = ks.load_node_keys(pt).tls.fingerprint
    status, out, _ = run(capsys, "keys", "revoke", str(no), pt_tls)
    assert status == 0 and "peer PT tls certificate" in out
    status, out, err = run(capsys, "keys", "show", str(no), "--json")
    document = json.loads(out)
    peer = next(p for p in document["peers"] if p["id"] == "PT")
    assert next(c for c in peer["certificates"] if c["role"] == "tls")["status"] == "REVOKED"
    assert {r["sha256"] for r in document["revoked"]} == {fingerprint, pt_tls}
    assert "authority NO-HELSEDIR is registered but has no certificate" in document["warnings"]

    status, _, err = run(capsys, "keys", "revoke", str(no), "nonsense")
    assert status == 1 and err.startswith("error: REVOCATION_TARGET_UNKNOWN: ")


def test_import_peer_reads_standard_input_and_reports_bad_bundles(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    no, dk = tmp_path / "no", tmp_path / "dk"
    init(capsys, no, "NO")
    init(capsys, dk, "DK")
    stdin = io.TextIOWrapper(io.BytesIO(ks.export_node_bundle(dk)))
    monkeypatch.setattr(sys, "stdin", stdin)
    status, out, err = run(capsys, "keys", "import-peer", str(no), "-")
    assert status == 0, err
    assert "Imported peer DK" in out
    assert cfg.load_config(no).peer_config("DK") is not None
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    status, _, err = run(capsys, "keys", "import-peer", str(no), str(bad))
    assert status == 1 and err.startswith("error: PEER_BUNDLE_INVALID: ")
    status, _, err = run(capsys, "keys", "import-peer", str(no), str(tmp_path / "missing.json"))
    assert status == 3 and err.startswith("error: IO_ERROR: ")


def test_the_installed_command_runs_init(tmp_path: pathlib.Path) -> None:
    node = tmp_path / "se"
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "init", str(node), "--country", "SE"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert cfg.load_config(node).node.languages == ("sv",)
    again = subprocess.run(
        [sys.executable, "-m", "gateway", "init", str(node), "--country", "SE"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert again.returncode == 3 and "NODE_DIR_EXISTS" in again.stderr
