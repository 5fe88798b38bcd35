"""``imi-gateway authorities``: registration, export/import between nodes, search, exit statuses."""

from __future__ import annotations

import json
import pathlib
from datetime import UTC, datetime

import pytest

from gateway import cli
from gateway.storage.directory_files import DirectoryStore
from tests.test_directory_store import bind, link, make_node

# The CLI runs on the real clock: certificates are made valid around it.
TODAY = datetime.now(UTC)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = cli.main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


ADD_HELSEDIR = (
    *("--name", "nn:Helsedirektoratet", "--name", "en:Norwegian Directorate of Health"),
    *("--address", "Postboks 220 Skøyen", "--postal-code", "0213", "--city", "Oslo"),
    *("--region", "NO08", "--profession", "doctor", "--profession", "nurse"),
    *("--question-set", "PQD-DENTIST", "--language", "nn,nb", "--language", "en"),
)


@pytest.fixture
def nodes(tmp_path: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    no = make_node(tmp_path, "NO", now=TODAY)
    pt = make_node(tmp_path, "PT", now=TODAY)
    link(no, pt, now=TODAY)
    bind(no, "NO-HELSEDIR", now=TODAY)
    return no, pt


def test_add_list_show_update_remove(
    nodes: tuple[pathlib.Path, pathlib.Path], capsys: pytest.CaptureFixture[str]
) -> None:
    no, _ = nodes
    status, out, err = run(capsys, "authorities", "add", str(no), "NO-HELSEDIR", *ADD_HELSEDIR)
    assert status == 0, err
    assert "directory version 1" in out

    status, out, _ = run(capsys, "authorities", "list", str(no))
    assert status == 0
    assert "NO-HELSEDIR" in out and "Helsedirektoratet" in out and "version 1" in out
    assert "PQD(doctor, nurse, PQD-DENTIST)" in out

    status, out, _ = run(capsys, "authorities", "list", str(no), "--json")
    listing = json.loads(out)
    (authority,) = listing["authorities"]
    assert authority["published"] is True and authority["region"] == "NO08"
    assert authority["working_languages"] == ["nn", "nb", "en"]
    assert authority["competences"] == [
        {"area": "PQD", "question_sets": ["PQD-DENTIST"], "professions": ["doctor", "nurse"]}
    ]

    status, out, _ = run(capsys, "authorities", "show", str(no), "NO-HELSEDIR")
    assert status == 0 and "sha256" in out and "0213 Oslo, NO" in out

    status, out, err = run(
        capsys,
        *("authorities", "update", str(no), "NO-HELSEDIR"),
        *("--name", "pt:Direção Norueguesa de Saúde", "--remove-name", "en", "--no-region"),
    )
    assert status == 0, err and "version 2" in out
    shown = json.loads(run(capsys, "authorities", "show", str(no), "NO-HELSEDIR", "--json")[1])
    assert [n["lang"] for n in shown["names"]] == ["nn", "pt"]
    assert shown["region"] is None and shown["published"] is True
    assert len(shown["certificates"]) == 1

    status, out, _ = run(capsys, "authorities", "remove", str(no), "NO-HELSEDIR")
    assert status == 0 and "version 3" in out
    assert DirectoryStore(no).published().entries == {}


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (
            (
                "N\u041e-HELSEDIR",
                "--name",
                "nn:X",
                "--address",
                "a",
                "--city",
                "Oslo",
                "--area",
                "PQD",
            ),
            "AUTHORITY_ID_MALFORMED",
        ),
        (
            ("PT-OMD", "--name", "pt:X", "--address", "a", "--city", "Lisboa", "--area", "PQD"),
            "AUTHORITY_COUNTRY_MISMATCH",
        ),
        (
            (
                "NO-HELSEDIR",
                "--name",
                "nn:X",
                "--address",
                "a",
                "--city",
                "Oslo",
                "--profession",
                "astronaut",
            ),
            "CATALOGUE_CODE_UNKNOWN",
        ),
        (
            (
                "NO-HELSEDIR",
                "--name",
                "nn:X",
                "--address",
                "a",
                "--city",
                "Oslo",
                "--question-set",
                "PQD-NOPE",
            ),
            "CATALOGUE_CODE_UNKNOWN",
        ),
        (
            ("NO-HELSEDIR", "--name", "nn:X", "--address", "a", "--city", "Oslo", "--area", "XYZ"),
            "CATALOGUE_CODE_UNKNOWN",
        ),
        (
            ("NO-HELSEDIR", "--name", "xx:X", "--address", "a", "--city", "Oslo", "--area", "PQD"),
            "CATALOGUE_LANGUAGE_UNKNOWN",
        ),
        (
            (
                "NO-HELSEDIR",
                "--name",
                "nn:X",
                "--address",
                "a",
                "--city",
                "Oslo",
                "--area",
                "PQD",
                "--language",
                "tlh",
            ),
            "CATALOGUE_LANGUAGE_UNKNOWN",
        ),
        (
            (
                "NO-HELSEDIR",
                "--name",
                "nn:X",
                "--address",
                "a",
                "--city",
                "Oslo",
                "--area",
                "PQD",
                "--region",
                "PT17",
            ),
            "AUTHORITY_FIELD_INVALID",
        ),
        (
            ("NO-HELSEDIR", "--name", "nn:X", "--address", "a", "--city", "Oslo"),
            "AUTHORITY_FIELD_INVALID",
        ),
        (
            ("NO-UDIR", "--name", "nn:X", "--address", "a", "--city", "Oslo", "--area", "PQD"),
            "AUTHORITY_CERTIFICATE_MISSING",
        ),
    ],
)
def test_refused_registrations_exit_1_with_their_code(
    nodes: tuple[pathlib.Path, pathlib.Path],
    capsys: pytest.CaptureFixture[str],
    argv: tuple[str, ...],
    code: str,
) -> None:
    no, _ = nodes
    status, _, err = run(capsys, "authorities", "add", str(no), *argv)
    assert status == 1
    assert err.startswith(f"error: {code}: ")
    assert DirectoryStore(no).records() == {}


def test_adding_twice_and_unknown_authorities_exit_1(
    nodes: tuple[pathlib.Path, pathlib.Path], capsys: pytest.CaptureFixture[str]
) -> None:
    no, _ = nodes
    assert run(capsys, "authorities", "add", str(no), "NO-HELSEDIR", *ADD_HELSEDIR)[0] == 0
    status, _, err = run(capsys, "authorities", "add", str(no), "NO-HELSEDIR", *ADD_HELSEDIR)
    assert (status, err.split(":")[1].strip()) == (1, "AUTHORITY_EXISTS")
    for command in ("remove", "show"):
        status, _, err = run(capsys, "authorities", command, str(no), "NO-NOBODY")
        assert (status, err.split(":")[1].strip()) == (1, "AUTHORITY_UNKNOWN")


def test_usage_and_configuration_errors(
    tmp_path: pathlib.Path,
    nodes: tuple[pathlib.Path, pathlib.Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    no, _ = nodes
    with pytest.raises(SystemExit) as info:
        cli.main(["authorities", "add", str(no), "NO-HELSEDIR", "--name", "no-colon"])
    assert info.value.code == 2
    assert "expected LANG:TEXT" in capsys.readouterr().err
    status, _, err = run(capsys, "authorities", "list", str(tmp_path / "nowhere"))
    assert status == 3 and err.startswith("error: CONFIG_NOT_FOUND")
    assert run(capsys, "authorities", "add", str(no), "NO-HELSEDIR", *ADD_HELSEDIR)[0] == 0
    (no / "directory" / "state.json").write_text("[]")
    status, _, err = run(capsys, "authorities", "list", str(no))
    assert status == 3 and err.startswith("error: DIRECTORY_STATE_INVALID")
    status, _, err = run(capsys, "authorities")
    assert status == 2 and "search" in err


def test_export_and_import_between_two_nodes_then_search(
    nodes: tuple[pathlib.Path, pathlib.Path],
    tmp_path: pathlib.Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    no, pt = nodes
    assert run(capsys, "authorities", "add", str(no), "NO-HELSEDIR", *ADD_HELSEDIR)[0] == 0
    full = tmp_path / "full.xml"
    status, _, err = run(capsys, "authorities", "export", str(no), "-o", str(full))
    assert status == 0 and "full directory version 1" in err
    status, out, err = run(capsys, "authorities", "import", str(pt), "NO", str(full))
    assert status == 0, err
    assert "now version 1, 1 authorities added or changed" in out
    status, out, _ = run(capsys, "authorities", "import", str(pt), "NO", str(full))
    assert status == 0 and "already cached" in out

    # an update: a new authority; the export since version 1 carries only it
    bind(no, "NO-DSB", now=TODAY)
    status, _, err = run(
        capsys,
        *("authorities", "add", str(no), "NO-DSB", "--name", "nn:Sjukepleiarforbundet"),
        *("--address", "Tollbugata 22", "--city", "Oslo", "--profession", "nurse"),
    )
    assert status == 0, err
    update = tmp_path / "update.xml"
    status, _, err = run(
        capsys, "authorities", "export", str(no), "--since", "1", "-o", str(update)
    )
    assert status == 0 and "update 1 -> 2" in err
    assert b"NO-HELSEDIR" not in update.read_bytes()
    status, out, _ = run(capsys, "authorities", "import", str(pt), "NO", str(update))
    assert status == 0 and "update from version 1" in out
    status, _, err = run(capsys, "authorities", "export", str(no), "--since", "2")
    assert status == 0 and "up to date" in err

    # the Portuguese node searches in Portuguese, Norwegian, German and English
    for word in ("médico", "lege", "Arzt", "doctor"):
        status, out, _ = run(capsys, "authorities", "search", word, "--node-dir", str(pt))
        assert status == 0 and "NO-HELSEDIR" in out, word
    status, out, _ = run(
        capsys,
        "authorities",
        "search",
        "enfermeiro",
        "--node-dir",
        str(pt),
        "--lang",
        "pt",
        "--json",
    )
    found = json.loads(out)
    assert {a["id"] for a in found["authorities"]} == {"NO-DSB", "NO-HELSEDIR"}
    assert found["authorities"][0]["matched"]["professions"][0]["label"] == "enfermeiro"
    monkeypatch.setenv("IMI_GATEWAY_NODE_DIR", str(pt))
    status, out, _ = run(capsys, "authorities", "search", "sjukepleiar", "--country", "NO")
    # both are competent for nurses; the one whose name starts with the word ranks first
    assert status == 0 and out.index("NO-DSB") < out.index("NO-HELSEDIR")
    status, out, _ = run(capsys, "authorities", "search", "sjukepleiarforbundet", "--country", "NO")
    assert status == 0 and "NO-DSB" in out and "NO-HELSEDIR" not in out
    status, _, err = run(capsys, "authorities", "search")
    assert status == 1 and err.startswith("error: SEARCH_QUERY_INVALID")

    # a peer's authority is shown from the cached directory
    status, out, _ = run(capsys, "authorities", "show", str(pt), "NO-HELSEDIR")
    assert status == 0 and "cached peer directory" in out


def test_import_refuses_a_tampered_or_misattributed_document(
    nodes: tuple[pathlib.Path, pathlib.Path],
    tmp_path: pathlib.Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    no, pt = nodes
    assert run(capsys, "authorities", "add", str(no), "NO-HELSEDIR", *ADD_HELSEDIR)[0] == 0
    full = tmp_path / "full.xml"
    assert run(capsys, "authorities", "export", str(no), "-o", str(full))[0] == 0
    tampered = tmp_path / "tampered.xml"
    tampered.write_bytes(full.read_bytes().replace("Skøyen".encode(), b"Skoyen"))
    status, _, err = run(capsys, "authorities", "import", str(pt), "NO", str(tampered))
    assert status == 1 and err.startswith("error: SIGNATURE_DIGEST_MISMATCH")
    status, _, err = run(capsys, "authorities", "import", str(pt), "SE", str(full))
    assert status == 1 and err.startswith("error: DIRECTORY_PEER_UNKNOWN")
    assert DirectoryStore(pt).cached("NO") is None


def test_demo_registers_generated_authorities_with_certificates(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    node = make_node(tmp_path, "PT", now=TODAY)
    status, out, err = run(
        capsys,
        "authorities",
        "demo",
        str(node),
        "--out",
        str(tmp_path / "demo-keys"),
        "--count",
        "5",
    )
    assert status == 0, err
    assert "Added 5 generated authorities of PT" in out
    published = DirectoryStore(node).published()
    assert len(published.entries) == 5
    assert all(e.certificates for e in published.entries.values())
    assert len(list((tmp_path / "demo-keys").glob("PT-*.key"))) == 5
    status, out, _ = run(
        capsys, "authorities", "search", "--node-dir", str(node), "--country", "PT", "--json"
    )
    assert json.loads(out)["total"] == 5
