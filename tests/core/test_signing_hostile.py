"""The hostile corpus (tests/vectors/hostile.py): every case refused with its code, by both engines."""

from __future__ import annotations

import pytest

from gateway.core.errors import GatewayError
from gateway.core.signing import ENGINES, verify, verify_and_validate
from tests.vectors.hostile import Built, Case, World, all_cases, make_world

CASES = all_cases()


@pytest.fixture(scope="module")
def w() -> World:
    return make_world()


@pytest.fixture(scope="module")
def built(w: World) -> dict[str, Built]:
    # Each case is built once per module (the oversize case signs 16 MiB).
    return {}


def outcome(case: Case, b: Built, w: World, engine: str) -> str:
    """The error code the verifier answers, or ACCEPTED."""
    check = verify_and_validate if case.validate else verify
    try:
        check(b.data, b.trust or w.trust, now=b.now or w.now, engine=engine)  # type: ignore[arg-type]
    except GatewayError as exc:
        return exc.code
    return "ACCEPTED"


def build(case: Case, w: World, cache: dict[str, Built]) -> Built:
    if case.name not in cache:
        cache[case.name] = case.build(w)
    return cache[case.name]


def test_corpus_names_are_unique_and_cover_the_brief() -> None:
    names = [c.name for c in CASES]
    assert len(names) == len(set(names))
    codes = {c.code for c in CASES}
    for code in (
        "SIGNATURE_MISSING",
        "SIGNATURE_STRUCTURE",
        "SIGNATURE_ALGORITHM_REFUSED",
        "SIGNATURE_DIGEST_REFUSED",
        "SIGNATURE_TRANSFORM_REFUSED",
        "SIGNATURE_KEYINFO_REFUSED",
        "SIGNATURE_DIGEST_MISMATCH",
        "SIGNATURE_MISMATCH",
        "CERTIFICATE_UNTRUSTED",
        "CERTIFICATE_EXPIRED",
        "CERTIFICATE_NOT_YET_VALID",
        "CERTIFICATE_REVOKED",
        "CERTIFICATE_KEY_REFUSED",
        "XML_FORBIDDEN_CONSTRUCT",
        "XML_MALFORMED",
        "XML_DUPLICATE_ID",
        "XML_TOO_DEEP",
        "DOCUMENT_TOO_LARGE",
        "SCHEMA_INVALID",
        "DOCUMENT_TYPE_UNKNOWN",
    ):
        assert code in codes, code


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_case_is_refused_with_its_code(
    case: Case, engine: str, w: World, built: dict[str, Built]
) -> None:
    assert outcome(case, build(case, w, built), w, engine) == case.code, case.description
