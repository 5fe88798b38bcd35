"""Encryption at rest for personal data: per-exchange data keys under a node KEK (sans-IO).

Every exchange gets its own random 256-bit **data key**. Personal data of the
exchange (signed document bodies, renderings, translations, attachments) is
*sealed* with that key (AES-256-GCM). The data key itself is stored only
*wrapped*: encrypted with the node's **key-encryption key** (KEK, 32 random
bytes in ``keys/data.kek``, owned by the key store) using AES-256-GCM with the
exchange id bound in as associated data, so a wrapped key copied onto another
exchange's row does not unwrap. Erasing an exchange destroys its wrapped key:
every sealed byte of it, including copies in backups and write-ahead logs,
becomes unreadable (crypto-shredding).

Formats (stable; stored in databases):

* wrapped key: ``nonce (12 bytes) || AES-GCM(KEK, data_key, aad) (32 + 16 bytes)``,
  60 bytes, with ``aad = aad_for("data-key", exchange_id)``;
* sealed data: ``nonce (12 bytes) || AES-GCM(data_key, plaintext, aad)``, where
  the caller chooses ``aad`` to bind the ciphertext to its place (the storage
  layer uses ``aad_for("message-body", message_id)``), so ciphertexts cannot be
  swapped between rows unnoticed.

Nonces are 96 random bits. A data key seals the messages of one exchange only
(a handful to a few hundred), far below the 2**32 random-nonce limit of GCM.

This module holds no I/O and never sees where keys live; it must never log
or put key material or plaintext into an error message.
"""

from __future__ import annotations

import os
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.core.errors import GatewayError

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
WRAPPED_KEY_BYTES = NONCE_BYTES + KEY_BYTES + TAG_BYTES


class DataProtectionError(GatewayError):
    """Encrypted data at rest could not be processed."""

    code = "DATA_PROTECTION_ERROR"
    http_status = 500


class InvalidKeyMaterial(DataProtectionError):
    """A data key or key-encryption key does not have the required length of 32 bytes."""

    code = "KEY_MATERIAL_INVALID"
    exit_status = 3


class KeyUnwrapFailed(DataProtectionError):
    """A wrapped data key does not authenticate under the node's key-encryption key for this exchange."""

    code = "DATA_KEY_UNWRAP_FAILED"


class SealedDataInvalid(DataProtectionError):
    """Sealed data does not authenticate under its data key and context (corrupted or misplaced)."""

    code = "SEALED_DATA_INVALID"


def _check_key(key: bytes, what: str) -> None:
    if not isinstance(key, bytes | bytearray) or len(key) != KEY_BYTES:
        raise InvalidKeyMaterial(f"the {what} must be {KEY_BYTES} bytes")


def aad_for(purpose: str, *parts: str) -> bytes:
    """Unambiguous associated data naming what a ciphertext is and where it belongs.

    Each component is UTF-8 encoded with a two-byte length prefix, so
    ``("a", "bc")`` and ``("ab", "c")`` never collide.
    """
    out = bytearray(b"imi-gateway/1")
    for part in (purpose, *parts):
        data = part.encode("utf-8")
        if len(data) > 0xFFFF:
            raise ValueError("associated-data component too long")
        out += struct.pack(">H", len(data)) + data
    return bytes(out)


def new_data_key() -> bytes:
    """A fresh random 256-bit data key for one exchange."""
    return AESGCM.generate_key(bit_length=256)


def new_kek() -> bytes:
    """A fresh random 256-bit key-encryption key (the key store writes it to ``keys/data.kek``)."""
    return os.urandom(KEY_BYTES)


def wrap_key(kek: bytes, data_key: bytes, exchange_id: str) -> bytes:
    """Encrypt ``data_key`` under the node KEK, bound to ``exchange_id``."""
    _check_key(kek, "key-encryption key")
    _check_key(data_key, "data key")
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(kek).encrypt(nonce, data_key, aad_for("data-key", exchange_id))


def unwrap_key(kek: bytes, wrapped: bytes, exchange_id: str) -> bytes:
    """The data key of ``exchange_id``; :class:`KeyUnwrapFailed` for a wrong KEK, id or tampering."""
    _check_key(kek, "key-encryption key")
    if len(wrapped) != WRAPPED_KEY_BYTES:
        raise KeyUnwrapFailed("the wrapped data key has the wrong length")
    try:
        key = AESGCM(kek).decrypt(
            wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], aad_for("data-key", exchange_id)
        )
    except InvalidTag:
        raise KeyUnwrapFailed() from None
    return key


def seal(data_key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """``nonce || ciphertext+tag`` of ``plaintext`` under ``data_key``, bound to ``aad``."""
    _check_key(data_key, "data key")
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(data_key).encrypt(nonce, plaintext, aad)


def open_sealed(data_key: bytes, sealed: bytes, aad: bytes) -> bytes:
    """The plaintext of ``sealed``; :class:`SealedDataInvalid` if it does not authenticate."""
    _check_key(data_key, "data key")
    if len(sealed) < NONCE_BYTES + TAG_BYTES:
        raise SealedDataInvalid("the sealed data is too short")
    try:
        return AESGCM(data_key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], aad)
    except InvalidTag:
        raise SealedDataInvalid() from None


class Sealer:
    """The node's key-encryption key, bound once: wraps and unwraps the exchanges' data keys.

    The one object that holds the KEK; everything that seals or unseals
    personal data at rest is given a Sealer, never the key bytes. Its
    ``repr`` never shows the key.
    """

    __slots__ = ("_kek",)

    def __init__(self, kek: bytes) -> None:
        _check_key(kek, "key-encryption key")
        self._kek = bytes(kek)

    def __repr__(self) -> str:
        return "Sealer(<key-encryption key>)"

    def wrap_key(self, data_key: bytes, exchange_id: str) -> bytes:
        """``data_key`` encrypted under the KEK, bound to ``exchange_id`` (see :func:`wrap_key`)."""
        return wrap_key(self._kek, data_key, exchange_id)

    def unwrap_key(self, wrapped: bytes, exchange_id: str) -> bytes:
        """The data key of ``exchange_id`` (see :func:`unwrap_key`)."""
        return unwrap_key(self._kek, wrapped, exchange_id)
