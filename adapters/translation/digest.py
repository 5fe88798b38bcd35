"""HTTP Digest access authentication, client side (RFC 7616), sans-IO.

eTranslation authenticates callers with HTTP Digest; neither Twisted's Agent
nor treq speaks it as a client. This module parses a ``WWW-Authenticate``
challenge and computes the ``Authorization`` header for one request. It
supports the algorithms MD5, MD5-sess, SHA-256 and SHA-256-sess, with
``qop=auth`` or the legacy form without qop (RFC 2069). ``qop=auth-int``
alone (a digest of the body) is not supported: the challenge is refused.

Digest's MD5 is a protocol requirement here, not a security choice: TLS
protects the exchange; the password itself never crosses the wire.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass

_ALGORITHMS: dict[str, str] = {
    "MD5": "md5",
    "MD5-SESS": "md5",
    "SHA-256": "sha256",
    "SHA-256-SESS": "sha256",
}

# token = 1*tchar (RFC 9110); quoted-string with backslash escapes.
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"  # noqa: S105 (an RFC 9110 token, not a password)
_QUOTED = r'"(?:[^"\\]|\\.)*"'
_PARAM_RE = re.compile(rf"\s*({_TOKEN})\s*=\s*({_QUOTED}|{_TOKEN})\s*(?:,|$)")
_SCHEME_RE = re.compile(rf"\s*,?\s*({_TOKEN})(?:\s+|(?=,)|$)")


class DigestChallengeError(ValueError):
    """The server's Digest challenge is malformed or asks for something unsupported."""


@dataclass(frozen=True)
class DigestChallenge:
    """One parsed ``WWW-Authenticate: Digest ...`` challenge."""

    realm: str
    nonce: str
    algorithm: str = "MD5"
    #: ``"auth"`` when the server offers it, None for the legacy RFC 2069 form.
    qop: str | None = None
    opaque: str | None = None
    stale: bool = False


def _unquote(value: str) -> str:
    if value.startswith('"'):
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def _parse_challenges(header: str) -> list[tuple[str, dict[str, str]]]:
    """Split one header value into (scheme, params) challenges."""
    challenges: list[tuple[str, dict[str, str]]] = []
    pos = 0
    while pos < len(header):
        match = _SCHEME_RE.match(header, pos)
        if match is None:
            break
        scheme = match.group(1)
        pos = match.end()
        params: dict[str, str] = {}
        while pos < len(header):
            param = _PARAM_RE.match(header, pos)
            if param is None:
                break
            params[param.group(1).lower()] = _unquote(param.group(2))
            pos = param.end()
        challenges.append((scheme, params))
    return challenges


def parse_digest_challenge(header_values: Iterable[str | bytes]) -> DigestChallenge | None:
    """The first usable Digest challenge in the ``WWW-Authenticate`` values, or None.

    Raises :class:`DigestChallengeError` when a Digest challenge is present
    but unusable (no nonce, an unsupported algorithm or qop).
    """
    problem: str | None = None
    for raw in header_values:
        header = raw.decode("latin-1") if isinstance(raw, bytes) else raw
        for scheme, params in _parse_challenges(header):
            if scheme.lower() != "digest":
                continue
            if "nonce" not in params or "realm" not in params:
                problem = "the Digest challenge has no nonce or realm"
                continue
            algorithm = params.get("algorithm", "MD5").upper()
            if algorithm not in _ALGORITHMS:
                problem = f"the Digest algorithm {algorithm[:32]!r} is not supported"
                continue
            qop: str | None = None
            if "qop" in params:
                offered = {q.strip().lower() for q in params["qop"].split(",")}
                if "auth" not in offered:
                    problem = (
                        "the Digest challenge offers only qop=auth-int, which is not supported"
                    )
                    continue
                qop = "auth"
            return DigestChallenge(
                realm=params["realm"],
                nonce=params["nonce"],
                algorithm=algorithm,
                qop=qop,
                opaque=params.get("opaque"),
                stale=params.get("stale", "").lower() == "true",
            )
    if problem is not None:
        raise DigestChallengeError(problem)
    return None


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def digest_authorization(
    challenge: DigestChallenge,
    *,
    username: str,
    password: str,
    method: str,
    uri: str,
    nonce_count: int,
    cnonce: str | None = None,
) -> str:
    """The ``Authorization`` header value answering ``challenge`` for one request.

    ``uri`` is the request target exactly as sent (path and query);
    ``nonce_count`` counts the requests made with this nonce, starting at 1.
    """
    name = _ALGORITHMS[challenge.algorithm]

    def h(data: str) -> str:
        return hashlib.new(name, data.encode("utf-8"), usedforsecurity=False).hexdigest()

    if cnonce is None:
        cnonce = secrets.token_hex(16)
    nc = f"{nonce_count:08x}"
    ha1 = h(f"{username}:{challenge.realm}:{password}")
    if challenge.algorithm.endswith("-SESS"):
        ha1 = h(f"{ha1}:{challenge.nonce}:{cnonce}")
    ha2 = h(f"{method}:{uri}")
    if challenge.qop is None:
        response = h(f"{ha1}:{challenge.nonce}:{ha2}")
    else:
        response = h(f"{ha1}:{challenge.nonce}:{nc}:{cnonce}:{challenge.qop}:{ha2}")
    fields = [
        f"username={_quote(username)}",
        f"realm={_quote(challenge.realm)}",
        f"nonce={_quote(challenge.nonce)}",
        f"uri={_quote(uri)}",
        f"algorithm={challenge.algorithm}",
        f"response={_quote(response)}",
    ]
    if challenge.opaque is not None:
        fields.append(f"opaque={_quote(challenge.opaque)}")
    if challenge.qop is not None:
        fields += [f"qop={challenge.qop}", f"nc={nc}", f"cnonce={_quote(cnonce)}"]
    return "Digest " + ", ".join(fields)


class DigestSession:
    """Remembers the last challenge so later requests authenticate at once.

    ``authorization(method, uri)`` returns a header for the remembered
    challenge (None before the first challenge); ``challenged(values)``
    records a fresh challenge from a 401 answer.
    """

    def __init__(
        self,
        username: str,
        password: str,
        *,
        cnonce_factory: Callable[[], str] | None = None,
    ) -> None:
        self._username = username
        self._password = password
        self._challenge: DigestChallenge | None = None
        self._count = 0
        self._cnonce = cnonce_factory or (lambda: secrets.token_hex(16))

    @property
    def has_challenge(self) -> bool:
        return self._challenge is not None

    def challenged(self, header_values: Iterable[str | bytes]) -> DigestChallenge | None:
        """Record the Digest challenge of a 401 answer (None if there is none)."""
        challenge = parse_digest_challenge(header_values)
        self._challenge = challenge
        self._count = 0
        return challenge

    def forget(self) -> None:
        self._challenge = None
        self._count = 0

    def authorization(self, method: str, uri: str) -> str | None:
        if self._challenge is None:
            return None
        self._count += 1
        return digest_authorization(
            self._challenge,
            username=self._username,
            password=self._password,
            method=method,
            uri=uri,
            nonce_count=self._count,
            cnonce=self._cnonce(),
        )
