"""Errors of the key store (:mod:`gateway.keystore`), each with its stable code."""

from __future__ import annotations

from gateway.core.errors import ConfigurationError, Conflict, InvalidInput, NotFound


class KeyStoreError(ConfigurationError):
    """The node's key store is missing a file or is inconsistent."""

    code = "KEYSTORE_INVALID"


class KeyFileMissing(KeyStoreError):
    """A key or certificate file of the node directory is missing."""

    code = "KEYSTORE_FILE_MISSING"


class KeyPermissionsTooOpen(KeyStoreError):
    """A private key file (or its directory) is accessible to other users; refusing to use it."""

    code = "KEYSTORE_PERMISSIONS_TOO_OPEN"


class NodeDirExists(ConfigurationError):
    """The node directory already exists and is not empty; refusing to overwrite it."""

    code = "NODE_DIR_EXISTS"


class OutputExists(ConfigurationError):
    """An output file already exists; refusing to overwrite it."""

    code = "OUTPUT_EXISTS"


class NodeIdInvalid(InvalidInput):
    """The node id is not an EEA country code."""

    code = "NODE_ID_INVALID"


class AuthorityIdInvalid(InvalidInput):
    """The authority id is malformed or does not belong to this node's country."""

    code = "AUTHORITY_ID_INVALID"


class PeerBundleInvalid(InvalidInput):
    """The peer bundle is malformed or its certificates do not form a valid node identity."""

    code = "PEER_BUNDLE_INVALID"


class PeerAlreadyKnown(Conflict):
    """The peer is already known with other certificates (import with --replace to rotate)."""

    code = "PEER_ALREADY_KNOWN"


class RevocationTargetUnknown(NotFound):
    """Neither a SHA-256 fingerprint nor an authority with a bound certificate."""

    code = "REVOCATION_TARGET_UNKNOWN"


class RotationInvalid(InvalidInput):
    """A key rotation was asked with invalid options (overlap outside 1-365 days, unknown peer)."""

    code = "ROTATION_INVALID"
