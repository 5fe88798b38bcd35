"""Registration rules of an authority entry: id, names, address, region, competences, languages, certificates (sans-IO)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import replace

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from gateway.core import certs as certs_mod
from gateway.core.catalogue import Catalogue, check_language
from gateway.core.directory.document import (
    Address,
    AuthorityEntry,
    Competence,
)
from gateway.core.directory.errors import (
    AuthorityCertificateMissing,
    AuthorityCompetenceInvalid,
    AuthorityCountryMismatch,
    AuthorityFieldInvalid,
    AuthorityIdMalformed,
    DirectoryCertificateInvalid,
)
from gateway.core.docxml import LocalizedText
from gateway.core.ns import AUTHORITY_ID_RE, is_authority_id

#: many versions behind receives the full directory.
HISTORY_LIMIT = 1000
#: The most certificates an authority lists (directory.xsd): several during a
#: key rollover.
MAX_CERTIFICATES = 4
#: Limits of directory.xsd / common.xsd, checked here with clear messages.
MAX_NAMES = 27
MAX_TEXT = 300
MAX_ADDRESS_LINES = 4
MAX_POSTAL_CODE = 64
MAX_COMPETENCES = 50
MAX_CODES_PER_COMPETENCE = 100

#: A NUTS region code (directory.xsd RegionCode); it must start with the
#: authority's country code.
REGION_RE = re.compile(r"\A[A-Z]{2}[A-Z0-9]{1,3}\Z")


# --- registration rules ----------------------------------------------------------


def _show(value: str, limit: int = 64) -> str:
    text = value[:limit] + ("..." if len(value) > limit else "")
    return repr(text)


def check_authority_id(value: str, node_id: str | None = None) -> str:
    """Return ``value`` if it is a well-formed authority id (of ``node_id``'s country).

    Raises AUTHORITY_ID_MALFORMED -- naming the first non-ASCII character, so
    an operator sees *why* ``NO-HELSEDIR`` written with a Cyrillic ``О`` is
    refused -- or AUTHORITY_COUNTRY_MISMATCH.
    """
    if not isinstance(value, str) or not is_authority_id(value):
        text = value if isinstance(value, str) else repr(value)
        foreign = next(((i, c) for i, c in enumerate(text) if ord(c) > 0x7F), None)
        if foreign is not None:
            index, char = foreign
            name = unicodedata.name(char, "an unnamed character")
            detail = (
                f"character {index + 1} is {name} (U+{ord(char):04X}), not an ASCII letter: "
                "look-alike letters from other scripts are refused"
            )
        elif AUTHORITY_ID_RE.match(text):
            detail = f"{text[:2]} is not an EEA country code"
        else:
            detail = (
                "expected an EEA country code, a hyphen and 1-40 upper-case ASCII letters, "
                "digits or inner hyphens (e.g. NO-HELSEDIR)"
            )
        raise AuthorityIdMalformed(f"authority id {_show(text)} is malformed: {detail}")
    if node_id is not None and value[:2] != node_id:
        raise AuthorityCountryMismatch(
            f"authority {value} belongs to country {value[:2]}, not to this node ({node_id})"
        )
    return value


def _clean_text(value: str, what: str, limit: int = MAX_TEXT) -> str:
    """``value`` with runs of white space collapsed; refused when empty, too long or odd."""
    text = " ".join(value.split())
    if not text:
        raise AuthorityFieldInvalid(f"{what} is empty")
    if len(text) > limit:
        raise AuthorityFieldInvalid(f"{what} is longer than {limit} characters")
    # Control, format (bidi overrides, zero-width), private-use and unassigned
    # characters have no place in a name and are a spoofing lever.
    bad = next((c for c in text if unicodedata.category(c).startswith("C")), None)
    if bad is not None:
        raise AuthorityFieldInvalid(
            f"{what} contains the character U+{ord(bad):04X} "
            f"({unicodedata.category(bad)}), which is not allowed"
        )
    return text


def check_region(region: str, country: str) -> str:
    """A NUTS region code of ``country`` (e.g. PT17 for Portugal), or AUTHORITY_FIELD_INVALID."""
    if not REGION_RE.match(region):
        raise AuthorityFieldInvalid(
            f"region {_show(region)} is not a NUTS code (country code and 1-3 upper-case "
            "letters or digits, e.g. PT17, NO08)"
        )
    if region[:2] != country:
        raise AuthorityFieldInvalid(f"region {region} is not a region of {country}")
    return region


def _check_names(names: Sequence[LocalizedText]) -> tuple[LocalizedText, ...]:
    if not names:
        raise AuthorityFieldInvalid("an authority needs at least one name")
    if len(names) > MAX_NAMES:
        raise AuthorityFieldInvalid(f"at most {MAX_NAMES} names (one per language)")
    seen: set[str] = set()
    result = []
    for name in names:
        check_language(name.lang)
        if name.lang in seen:
            raise AuthorityFieldInvalid(f"two names in language {name.lang}")
        seen.add(name.lang)
        result.append(LocalizedText(_clean_text(name.text, f"the {name.lang} name"), name.lang))
    return tuple(result)


def _check_address(address: Address, country: str) -> Address:
    if not address.lines:
        raise AuthorityFieldInvalid("the address needs at least one line")
    if len(address.lines) > MAX_ADDRESS_LINES:
        raise AuthorityFieldInvalid(f"the address has at most {MAX_ADDRESS_LINES} lines")
    lines = tuple(_clean_text(line, f"address line {i}") for i, line in enumerate(address.lines, 1))
    postal = None
    if address.postal_code is not None:
        postal = _clean_text(address.postal_code, "the postal code", MAX_POSTAL_CODE)
    city = _clean_text(address.city, "the city")
    if address.country != country:
        raise AuthorityFieldInvalid(
            f"the address country {_show(address.country)} is not the authority's country {country}"
        )
    return Address(lines=lines, city=city, country=country, postal_code=postal)


def _dedupe(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))


def _check_competences(
    competences: Sequence[Competence], catalogue: Catalogue
) -> tuple[Competence, ...]:
    if not competences:
        raise AuthorityFieldInvalid("an authority needs at least one competence (legislation area)")
    if len(competences) > MAX_COMPETENCES:
        raise AuthorityFieldInvalid(f"at most {MAX_COMPETENCES} competences")
    areas: set[str] = set()
    result = []
    for competence in competences:
        area = catalogue.area(competence.legislation_area).code  # CATALOGUE_CODE_UNKNOWN
        if area in areas:
            raise AuthorityCompetenceInvalid(f"legislation area {area} is listed twice")
        areas.add(area)
        question_sets = _dedupe(competence.question_sets)
        professions = _dedupe(competence.professions)
        if max(len(question_sets), len(professions)) > MAX_CODES_PER_COMPETENCE:
            raise AuthorityFieldInvalid(
                f"at most {MAX_CODES_PER_COMPETENCE} question sets and professions per area"
            )
        for code in question_sets:
            question_set = catalogue.question_set(code)  # CATALOGUE_CODE_UNKNOWN
            if question_set.area != area:
                raise AuthorityCompetenceInvalid(
                    f"question set {code} belongs to legislation area {question_set.area}, "
                    f"not {area}"
                )
        for code in professions:
            catalogue.profession(code)  # CATALOGUE_CODE_UNKNOWN
            if not any(s.area == area for s in catalogue.question_sets_for_profession(code)):
                raise AuthorityCompetenceInvalid(
                    f"profession {code} has no question set in legislation area {area}"
                )
        result.append(Competence(area, question_sets, professions))
    return tuple(result)


def _check_languages(languages: Sequence[str]) -> tuple[str, ...]:
    if not languages:
        raise AuthorityFieldInvalid("an authority needs at least one working language")
    for lang in languages:
        check_language(lang)  # CATALOGUE_LANGUAGE_UNKNOWN
    if len(set(languages)) != len(languages):
        raise AuthorityFieldInvalid("a working language is listed twice")
    return tuple(languages)


def validate_authority(
    entry: AuthorityEntry, *, node_id: str, catalogue: Catalogue
) -> AuthorityEntry:
    """Check an authority an operator registers at node ``node_id``; return it normalised.

    Normalised: white space in texts collapsed, repeated question-set and
    profession codes dropped. Refusals: AUTHORITY_ID_MALFORMED,
    AUTHORITY_COUNTRY_MISMATCH, AUTHORITY_FIELD_INVALID (names, address,
    region, languages), CATALOGUE_CODE_UNKNOWN (area, question set or
    profession not in ``catalogue``), CATALOGUE_LANGUAGE_UNKNOWN (not one of
    the 27 languages) and AUTHORITY_COMPETENCE_INVALID. Certificates are not
    checked here (see :func:`bind_certificates`).
    """
    authority_id = check_authority_id(entry.authority_id, node_id)
    country = authority_id[:2]
    return replace(
        entry,
        names=_check_names(entry.names),
        address=_check_address(entry.address, country),
        region=None if entry.region is None else check_region(entry.region, country),
        competences=_check_competences(entry.competences, catalogue),
        working_languages=_check_languages(entry.working_languages),
    )


def bind_certificates(
    entry: AuthorityEntry, certificates: Sequence[x509.Certificate]
) -> AuthorityEntry:
    """``entry`` listing ``certificates`` (DER), the ones peers pin for its signatures.

    Each must be bound to the authority (subjectAltName
    ``urn:imi-gateway:authority:<ID>``), else DIRECTORY_CERTIFICATE_INVALID;
    none at all is AUTHORITY_CERTIFICATE_MISSING. During a rollover more than
    :data:`MAX_CERTIFICATES` may be bound: the newest ones (latest
    not-before) are listed. The order is the newest first.
    """
    if not certificates:
        raise AuthorityCertificateMissing(
            f"no national-system certificate is bound to {entry.authority_id}"
        )
    for cert in certificates:
        if certs_mod.authority_id_of(cert) != entry.authority_id:
            raise DirectoryCertificateInvalid(
                f"a certificate listed for {entry.authority_id} is not bound to it "
                f"(sha256 {certs_mod.fingerprint(cert)})"
            )
    newest = sorted(
        certificates, key=lambda c: (c.not_valid_before_utc, certs_mod.fingerprint(c)), reverse=True
    )[:MAX_CERTIFICATES]
    ders = tuple(c.public_bytes(serialization.Encoding.DER) for c in newest)
    return replace(entry, certificates=ders)
