"""HTTP Digest client computations, checked against the RFCs' published examples."""

from __future__ import annotations

import pytest

from gateway.adapters.translation.digest import (
    DigestChallenge,
    DigestChallengeError,
    DigestSession,
    digest_authorization,
    parse_digest_challenge,
)

RFC7616_CHALLENGE = (
    'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm={alg}, '
    'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", '
    'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'
)


def _response_field(header: str) -> str:
    start = header.index('response="') + len('response="')
    return header[start : header.index('"', start)]


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
    ],
)
def test_rfc7616_examples_give_the_published_response(algorithm: str, expected: str) -> None:
    challenge = parse_digest_challenge([RFC7616_CHALLENGE.format(alg=algorithm)])
    assert challenge is not None
    assert challenge.qop == "auth"
    header = digest_authorization(
        challenge,
        username="Mufasa",
        password="Circle of Life",
        method="GET",
        uri="/dir/index.html",
        nonce_count=1,
        cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
    )
    assert _response_field(header) == expected
    assert header.startswith("Digest ")
    assert "nc=00000001" in header
    assert 'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"' in header
    assert f"algorithm={algorithm}" in header


def test_rfc2617_example_gives_the_published_response() -> None:
    challenge = parse_digest_challenge(
        [
            b'Digest realm="testrealm@host.com", qop="auth,auth-int", '
            b'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
        ]
    )
    assert challenge is not None
    header = digest_authorization(
        challenge,
        username="Mufasa",
        password="Circle Of Life",
        method="GET",
        uri="/dir/index.html",
        nonce_count=1,
        cnonce="0a4f113b",
    )
    assert _response_field(header) == "6629fae49393a05397450978507c4ef1"


def test_digest_is_found_among_several_challenges() -> None:
    challenge = parse_digest_challenge(
        ['Basic realm="x", charset="UTF-8"', 'Negotiate, Digest realm="r", nonce="n", stale=TRUE']
    )
    assert challenge == DigestChallenge(realm="r", nonce="n", stale=True)


def test_no_digest_challenge_gives_none() -> None:
    assert parse_digest_challenge(['Basic realm="x"']) is None
    assert parse_digest_challenge([]) is None


@pytest.mark.parametrize(
    "header",
    [
        'Digest realm="r", nonce="n", qop="auth-int"',
        'Digest realm="r", nonce="n", algorithm=SHA-512-256',
        'Digest realm="r"',
    ],
)
def test_unusable_digest_challenges_are_refused(header: str) -> None:
    with pytest.raises(DigestChallengeError):
        parse_digest_challenge([header])


def test_legacy_challenge_without_qop_uses_the_rfc2069_response() -> None:
    challenge = parse_digest_challenge(['Digest realm="r", nonce="abc"'])
    assert challenge is not None and challenge.qop is None
    header = digest_authorization(
        challenge, username="u", password="p", method="POST", uri="/t", nonce_count=1
    )
    assert "qop=" not in header and "nc=" not in header


def test_quoted_values_are_escaped_both_ways() -> None:
    challenge = parse_digest_challenge([r'Digest realm="a \"quoted\" realm", nonce="n"'])
    assert challenge is not None and challenge.realm == 'a "quoted" realm'
    header = digest_authorization(
        challenge, username='we"ird', password="p", method="POST", uri="/", nonce_count=1
    )
    assert r'username="we\"ird"' in header
    assert r'realm="a \"quoted\" realm"' in header


def test_session_counts_requests_per_nonce_and_resets_on_a_new_challenge() -> None:
    session = DigestSession("app", "secret", cnonce_factory=lambda: "c")
    assert session.authorization("POST", "/t") is None
    session.challenged(['Digest realm="r", nonce="n1", qop="auth"'])
    first = session.authorization("POST", "/t")
    second = session.authorization("POST", "/t")
    assert first is not None and "nc=00000001" in first
    assert second is not None and "nc=00000002" in second
    session.challenged(['Digest realm="r", nonce="n2", qop="auth"'])
    third = session.authorization("POST", "/t")
    assert third is not None and "nc=00000001" in third and 'nonce="n2"' in third
