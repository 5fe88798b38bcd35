"""The fast engine against signxml: same verdict, same code, same signed tree, on everything.

Inputs: the committed golden documents (signed by both engines and by
xmlsec1), freshly signed documents, benign variants that keep the canonical
form, the whole hostile corpus, and a few hundred deterministic random
mutations of signed documents. xmlsec1 is the third oracle in
tests/test_xmlsec_interop.py.
"""

from __future__ import annotations

import json
import random
from datetime import datetime

import pytest
from lxml import etree

from gateway.core.certs import TrustStore
from gateway.core.errors import GatewayError
from gateway.core.signing import Verified, verify, verify_and_validate
from gateway.core.signing.fast import canonicalize
from tests.vectors.hostile import (
    BENIGN_VARIANTS,
    VECTORS,
    Case,
    World,
    all_cases,
    document,
    make_world,
)

GOLDEN = VECTORS / "golden"
MANIFEST = json.loads((GOLDEN / "manifest.json").read_text())
SOURCES = ("request.xml", "namespaces.xml", "unicode.xml")


@pytest.fixture(scope="module")
def w() -> World:
    return make_world()


def signed_content(verified: Verified) -> bytes:
    """The canonical signed content of a verified document (its root minus the signature)."""
    root = etree.fromstring(etree.tostring(verified.root))
    root.remove(root[-1])
    return canonicalize(root)


def both(data: bytes, trust: TrustStore, now: datetime, validate: bool = False) -> tuple[str, str]:
    """(fast outcome, signxml outcome): an error code, or the SHA of the signed content."""
    results = []
    for engine in ("fast", "signxml"):
        try:
            if validate:
                verified, _ = verify_and_validate(data, trust, now=now, engine=engine)  # type: ignore[arg-type]
            else:
                verified = verify(data, trust, now=now, engine=engine)  # type: ignore[arg-type]
        except GatewayError as exc:
            results.append(exc.code)
        else:
            results.append("ACCEPTED " + signed_content(verified).hex()[:64])
    return results[0], results[1]


@pytest.mark.parametrize("entry", MANIFEST, ids=[e["file"] for e in MANIFEST])
def test_golden_document_is_accepted_identically_by_both_engines(entry: dict[str, str]) -> None:
    import hashlib

    data = (GOLDEN / entry["file"]).read_bytes()
    trust = TrustStore.from_pem(cas=[(GOLDEN / "ca.pem").read_bytes()])
    now = datetime.fromisoformat(entry["verify_at"])
    for engine in ("fast", "signxml"):
        verified = verify(data, trust, now=now, engine=engine)  # type: ignore[arg-type]
        assert verified.authority_id == entry["authority_id"]
        assert (
            hashlib.sha256(signed_content(verified)).hexdigest() == entry["signed_content_sha256"]
        )


def test_golden_set_covers_every_signer() -> None:
    signers = {e["signer"] for e in MANIFEST}
    assert signers == {f"{s}-{k}" for s in ("fast", "signxml", "xmlsec1") for k in ("ec", "rsa")}


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("kind", ["ec", "rsa"])
@pytest.mark.parametrize("sign_engine", ["fast", "signxml"])
def test_freshly_signed_document_gets_the_same_verdict(
    w: World, source: str, kind: str, sign_engine: str
) -> None:
    data = w.sign(document(source), w.ec if kind == "ec" else w.rsa, engine=sign_engine)
    fast, reference = both(data, w.trust, w.now)
    assert fast == reference
    assert fast.startswith("ACCEPTED")


@pytest.mark.parametrize("source", SOURCES)
def test_rsa_signatures_of_both_engines_are_byte_identical(w: World, source: str) -> None:
    # RSA PKCS#1 v1.5 is deterministic, so the two signers must produce the same bytes.
    assert w.sign(document(source), w.rsa, engine="fast") == w.sign(
        document(source), w.rsa, engine="signxml"
    )


@pytest.mark.parametrize("variant", sorted(BENIGN_VARIANTS))
def test_benign_variant_is_accepted_by_both_engines(w: World, variant: str) -> None:
    original = w.sign(document("request.xml"))
    data = BENIGN_VARIANTS[variant](original)
    assert data != original
    fast, reference = both(data, w.trust, w.now)
    assert fast == reference == both(original, w.trust, w.now)[0]


CASES = all_cases()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_case_gets_the_same_verdict_from_both_engines(w: World, case: Case) -> None:
    built = case.build(w)
    fast, reference = both(built.data, built.trust or w.trust, built.now or w.now, case.validate)
    assert fast == reference
    assert not fast.startswith("ACCEPTED")


def _mutate(data: bytes, rng: random.Random) -> bytes:
    """One random, small, deterministic change."""
    choice = rng.randrange(6)
    position = rng.randrange(len(data))
    if choice == 0:  # replace a byte with a printable one
        return data[:position] + bytes([rng.randrange(0x20, 0x7F)]) + data[position + 1 :]
    if choice == 1:  # delete a byte
        return data[:position] + data[position + 1 :]
    if choice == 2:  # insert whitespace after a tag
        tag_end = data.find(b">", position)
        if tag_end < 0:
            return data
        return data[: tag_end + 1] + rng.choice([b" ", b"\n", b"\t"]) + data[tag_end + 1 :]
    if choice == 3:  # flip one bit inside a base64 value
        start = data.find(b"Value>", position)
        if start < 0:
            return data
        at = start + 6 + rng.randrange(8)
        return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]
    if choice == 4:  # duplicate an element's start
        start = data.find(b"<", position)
        end = data.find(b">", start)
        if start < 0 or end < 0:
            return data
        return data[:start] + data[start : end + 1] + data[start:]
    # swap two adjacent bytes
    if position + 1 >= len(data):
        return data
    return (
        data[:position]
        + data[position + 1 : position + 2]
        + data[position : position + 1]
        + data[position + 2 :]
    )


@pytest.mark.parametrize("kind", ["ec", "rsa"])
def test_random_mutations_get_the_same_verdict_from_both_engines(w: World, kind: str) -> None:
    rng = random.Random(20260302 + (kind == "rsa"))
    issued = w.ec if kind == "ec" else w.rsa
    originals = [w.sign(document(source), issued) for source in SOURCES]
    verdicts: dict[str, int] = {}
    for _ in range(150):
        data = _mutate(rng.choice(originals), rng)
        fast, reference = both(data, w.trust, w.now)
        assert fast == reference, data
        key = "ACCEPTED" if fast.startswith("ACCEPTED") else fast
        verdicts[key] = verdicts.get(key, 0) + 1
    # The mutations reach the cryptographic checks, not only the parser.
    assert verdicts.get("SIGNATURE_DIGEST_MISMATCH", 0) > 0
    assert verdicts.get("SIGNATURE_MISMATCH", 0) + verdicts.get("SIGNATURE_STRUCTURE", 0) > 0
