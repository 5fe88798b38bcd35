"""Errors of the authority directory rules (stable codes)."""

from __future__ import annotations

from gateway.core.errors import Conflict, InvalidInput, NotFound

# --- errors -------------------------------------------------------------------


class AuthorityIdMalformed(InvalidInput):
    """The authority id is not an EEA country code, a hyphen and 1-40 upper-case ASCII letters, digits or inner hyphens (look-alike Unicode letters are refused)."""

    code = "AUTHORITY_ID_MALFORMED"


class AuthorityCountryMismatch(InvalidInput):
    """The authority id's country prefix is not this node's country."""

    code = "AUTHORITY_COUNTRY_MISMATCH"


class AuthorityFieldInvalid(InvalidInput):
    """A name, address, region or working language of the authority is missing or invalid."""

    code = "AUTHORITY_FIELD_INVALID"


class AuthorityCompetenceInvalid(InvalidInput):
    """A competence is inconsistent with the catalogue (a question set or profession of another legislation area, an area listed twice)."""

    code = "AUTHORITY_COMPETENCE_INVALID"


class AuthorityExists(Conflict):
    """The authority is already registered in this node's directory (use update)."""

    code = "AUTHORITY_EXISTS"


class AuthorityUnknown(NotFound):
    """No authority with this id is registered (or cached from the peer)."""

    code = "AUTHORITY_UNKNOWN"


class AuthorityCertificateMissing(Conflict):
    """No valid national-system certificate is bound to the authority (issue one with imi-gateway keys issue-national)."""

    code = "AUTHORITY_CERTIFICATE_MISSING"


class DirectoryNotPublished(NotFound):
    """This node has not published a directory yet."""

    code = "DIRECTORY_NOT_PUBLISHED"


class DirectoryNodeMismatch(InvalidInput):
    """The authority directory is not the expected peer's (its node id or signer is another node)."""

    code = "DIRECTORY_NODE_MISMATCH"


class DirectoryBaseMismatch(Conflict):
    """The incremental directory update does not apply to the cached version; fetch the full directory."""

    code = "DIRECTORY_BASE_MISMATCH"


class DirectoryStale(Conflict):
    """The authority directory is older than the one already cached (replayed or rolled back)."""

    code = "DIRECTORY_STALE"


class DirectoryCertificateInvalid(InvalidInput):
    """A certificate listed for an authority is not bound to it or not issued by its node's CA."""

    code = "DIRECTORY_CERTIFICATE_INVALID"
