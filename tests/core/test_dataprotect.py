"""Per-exchange data keys: wrapping under the node KEK, sealing, and their failure modes."""

from __future__ import annotations

import pytest

from gateway.core import dataprotect
from gateway.core.dataprotect import (
    InvalidKeyMaterial,
    KeyUnwrapFailed,
    SealedDataInvalid,
    aad_for,
    new_data_key,
    new_kek,
    open_sealed,
    seal,
    unwrap_key,
    wrap_key,
)
from gateway.core.errors import GatewayError

KEK = bytes(range(32))
AAD = aad_for("message-body", "MSG-1")


def test_wrapped_key_unwraps_only_with_the_same_kek_and_exchange() -> None:
    key = new_data_key()
    wrapped = wrap_key(KEK, key, "EX-1")

    assert len(wrapped) == dataprotect.WRAPPED_KEY_BYTES == 60
    assert key not in wrapped
    assert unwrap_key(KEK, wrapped, "EX-1") == key
    with pytest.raises(KeyUnwrapFailed):
        unwrap_key(KEK, wrapped, "EX-2")  # moved to another exchange's row
    with pytest.raises(KeyUnwrapFailed):
        unwrap_key(new_kek(), wrapped, "EX-1")
    tampered = bytearray(wrapped)
    tampered[20] ^= 1
    with pytest.raises(KeyUnwrapFailed):
        unwrap_key(KEK, bytes(tampered), "EX-1")
    with pytest.raises(KeyUnwrapFailed):
        unwrap_key(KEK, wrapped[:-1], "EX-1")


def test_sealed_data_opens_only_with_its_key_and_context() -> None:
    key = new_data_key()
    plaintext = b"<Request>Kari Nordmann</Request>"
    sealed = seal(key, plaintext, AAD)

    assert plaintext not in sealed
    assert len(sealed) == 12 + len(plaintext) + 16
    assert open_sealed(key, sealed, AAD) == plaintext
    with pytest.raises(SealedDataInvalid):
        open_sealed(key, sealed, aad_for("message-body", "MSG-2"))
    with pytest.raises(SealedDataInvalid):
        open_sealed(new_data_key(), sealed, AAD)
    flipped = bytearray(sealed)
    flipped[-1] ^= 0x80
    with pytest.raises(SealedDataInvalid):
        open_sealed(key, bytes(flipped), AAD)
    with pytest.raises(SealedDataInvalid):
        open_sealed(key, sealed[:27], AAD)


def test_each_seal_and_wrap_uses_a_fresh_nonce() -> None:
    key = new_data_key()
    assert seal(key, b"same", AAD) != seal(key, b"same", AAD)
    assert wrap_key(KEK, key, "EX") != wrap_key(KEK, key, "EX")
    assert new_data_key() != new_data_key()
    assert len(new_kek()) == 32


def test_empty_plaintext_round_trips() -> None:
    key = new_data_key()
    assert open_sealed(key, seal(key, b"", AAD), AAD) == b""


@pytest.mark.parametrize("bad", [b"", b"x" * 16, b"x" * 31, b"x" * 33])
def test_keys_of_the_wrong_length_are_refused(bad: bytes) -> None:
    key = new_data_key()
    with pytest.raises(InvalidKeyMaterial):
        wrap_key(bad, key, "EX")
    with pytest.raises(InvalidKeyMaterial):
        wrap_key(KEK, bad, "EX")
    with pytest.raises(InvalidKeyMaterial):
        unwrap_key(bad, b"\0" * 60, "EX")
    with pytest.raises(InvalidKeyMaterial):
        seal(bad, b"data", AAD)
    with pytest.raises(InvalidKeyMaterial):
        open_sealed(bad, b"\0" * 40, AAD)


def test_associated_data_is_unambiguous() -> None:
    assert aad_for("a", "bc") != aad_for("ab", "c")
    assert aad_for("a", "b", "") != aad_for("a", "b")
    assert aad_for("data-key", "EX-1") != aad_for("message-body", "EX-1")
    assert aad_for("x", "ø") == aad_for("x", "ø")


def test_errors_have_stable_codes_and_reveal_nothing() -> None:
    key = new_data_key()
    sealed = seal(key, b"Kari Nordmann", AAD)
    with pytest.raises(GatewayError) as caught:
        open_sealed(new_data_key(), sealed, AAD)
    assert caught.value.code == "SEALED_DATA_INVALID"
    assert "Kari" not in str(caught.value)
    assert KeyUnwrapFailed.code == "DATA_KEY_UNWRAP_FAILED"
    assert InvalidKeyMaterial.code == "KEY_MATERIAL_INVALID"
    with pytest.raises(InvalidKeyMaterial) as bad:
        seal(b"short", b"", AAD)
    assert "short" not in str(bad.value)
