"""The outbound HTTP path against a hostile server: no redirects, no encodings, capped bodies.

The node's HTTPS client (envelopes, tracking and directory GETs, push
deliveries) talks to a hostile server on loopback with real pinned mutual
TLS; the translation adapters share the same path. Each test checks the
stable error code and what the hostile server could make the node do: the
redirect target is never requested, a gzip bomb is never inflated, an
endless body is cut at the cap.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import Clock

from gateway.adapters.translation import TranslationUnavailable, build_translator
from gateway.core import pki
from gateway.transport.client import (
    HTTPSClient,
    PeerContentEncoded,
    PeerRedirected,
    ResponseTooLarge,
)
from gateway.transport.tls import server_options
from tests.service.bed import raw_client
from tests.transport.hostile import Hostile, Target, listen_plain, listen_tls
from tests.waiting import until


@dataclass
class Bed:
    hostile: Hostile
    target: Target
    client: HTTPSClient
    url: str


@pytest_twisted.async_yield_fixture
async def bed() -> AsyncIterator[Bed]:
    now = datetime.now(UTC)
    no_ca, pt_ca = pki.make_ca("NO", now=now), pki.make_ca("PT", now=now)
    no_tls, pt_tls = (
        pki.issue_node_tls(no_ca, "NO", now=now),
        pki.issue_node_tls(pt_ca, "PT", now=now),
    )
    target = Target()
    target_port = listen_plain(target)
    hostile = Hostile(f"http://127.0.0.1:{target_port.getHost().port}/steal")
    options = server_options(pt_tls.key, pt_tls.certificate, [no_ca.certificate])
    hostile_port = listen_tls(hostile, options)
    port = hostile_port.getHost().port
    client = raw_client(no_tls.key, no_tls.certificate, port, pt_ca.certificate, pt_tls.certificate)
    try:
        yield Bed(hostile, target, client, f"https://127.0.0.1:{port}/peer/v1/envelopes")
    finally:
        await client.close()
        await hostile_port.stopListening()
        await target_port.stopListening()


async def call(bed: Bed, method: str) -> Any:
    if method == "POST":
        return await bed.client.post(bed.url, b"<Envelope/>")
    return await bed.client.get(bed.url)


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("method", ["POST", "GET"])
@pytest_twisted.ensureDeferred
async def test_a_redirect_is_refused_and_its_location_never_requested(
    bed: Bed, method: str, status: int
) -> None:
    bed.hostile.mode = f"redirect-{status}"

    with pytest.raises(PeerRedirected) as caught:
        await call(bed, method)

    assert caught.value.code == "PEER_REDIRECTED"
    assert "/steal" not in str(caught.value)  # the Location is not echoed either
    assert len(bed.hostile.requests) == 1
    assert bed.target.hits == 0


@pytest_twisted.ensureDeferred
async def test_a_gzip_bomb_is_refused_from_its_headers_and_never_inflated(
    bed: Bed, monkeypatch: pytest.MonkeyPatch
) -> None:
    decompressors: list[int] = []
    real = zlib.decompressobj

    def counting(*args: Any, **kwargs: Any) -> Any:
        decompressors.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(zlib, "decompressobj", counting)
    bed.hostile.mode = "gzip-bomb"

    for method in ("POST", "GET"):
        with pytest.raises(PeerContentEncoded) as caught:
            await call(bed, method)
        assert caught.value.code == "PEER_CONTENT_ENCODED"

    assert decompressors == []
    # The node asked for no encoding at all.
    assert [encoding for _, _, encoding in bed.hostile.requests] == [b"identity", b"identity"]


@pytest_twisted.ensureDeferred
async def test_an_endless_body_without_a_length_is_cut_at_the_cap(bed: Bed) -> None:
    cap = 1024 * 1024
    bed.client._max = cap
    bed.hostile.mode = "endless"

    with pytest.raises(ResponseTooLarge) as caught:
        await bed.client.get(bed.url)

    assert caught.value.code == "PEER_RESPONSE_TOO_LARGE"
    await until(lambda: bed.hostile.cut)
    assert bed.hostile.written < 8 * cap  # cut soon after the cap, not at the end


@pytest_twisted.ensureDeferred
async def test_a_declared_length_over_the_cap_is_refused_before_reading(bed: Bed) -> None:
    bed.client._max = 1024 * 1024
    bed.hostile.mode = "declared-huge"

    with pytest.raises(ResponseTooLarge):
        await bed.client.get(bed.url)

    await until(lambda: bed.hostile.cut)


@pytest.mark.parametrize(
    ("mode", "code"),
    [("redirect-302", "TRANSLATION_REDIRECTED"), ("gzip-bomb", "TRANSLATION_CONTENT_ENCODED")],
)
@pytest_twisted.ensureDeferred
async def test_a_translation_engine_cannot_redirect_or_encode_its_answer(
    mode: str, code: str
) -> None:
    target = Target(b"[]")
    target_port = listen_plain(target)
    hostile = Hostile(f"http://127.0.0.1:{target_port.getHost().port}/languages", mode)
    hostile_port = listen_plain(hostile)
    translator = build_translator(
        "libretranslate",
        {"url": f"http://127.0.0.1:{hostile_port.getHost().port}", "timeout_seconds": 30},
        reactor=reactor,
        clock=Clock(),
    )
    try:
        with pytest.raises(TranslationUnavailable) as caught:
            await translator.translate("Die Ärztin hat ihr Diplom.", "de", "nb")
        assert caught.value.code == code
        assert target.hits == 0
        assert [encoding for _, _, encoding in hostile.requests] == [b"identity"]
    finally:
        await translator.close()
        await hostile_port.stopListening()
        await target_port.stopListening()
