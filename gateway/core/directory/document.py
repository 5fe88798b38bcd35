"""The AuthorityDirectory document: the authorities a node serves, as a dataclass.

A node publishes its directory to peer nodes (node-signed). A full directory
has no ``base_version``; an incremental update names the ``base_version`` it
applies to, lists added or changed authorities as whole entries, and the ids
of removed ones. Each entry carries the DER certificate(s) of the national
system bound to the authority: peers verify that authority's end-to-end
signatures against exactly these.

:func:`read_directory` validates the tree and also refuses (DIRECTORY_INCONSISTENT)
what the schema cannot express: removals in a full directory, a base version
not below the version, an authority of another country than the node, a
certificate that is not DER X.509. Whether a certificate is bound to its
authority (subjectAltName URI) is checked by the code that pins it.
This module is sans-IO and never logs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from cryptography import x509
from lxml import etree

from gateway.core.docxml import (
    LocalizedText,
    attr,
    b64decode,
    b64encode,
    checked_type,
    child,
    children,
    format_datetime,
    localized,
    new_root,
    opt_text,
    parse_datetime,
    sub,
    sub_opt,
    text,
    text_of,
    texts,
)
from gateway.core.errors import InvalidInput
from gateway.core.ns import XML_NS
from gateway.core.schemas import DocumentType, validate

__all__ = [
    "Address",
    "AuthorityDirectory",
    "AuthorityEntry",
    "Competence",
    "DirectoryInconsistent",
    "build_directory",
    "read_directory",
    "serialize_directory",
    "write_entry_parts",
]

_XML_LANG = f"{{{XML_NS}}}lang"


class DirectoryInconsistent(InvalidInput):
    """The authority directory is schema-valid but inconsistent."""

    code = "DIRECTORY_INCONSISTENT"


@dataclass(frozen=True)
class Address:
    """A postal address: 1-4 lines, postal code, city, EEA country."""

    lines: tuple[str, ...]
    city: str
    country: str
    postal_code: str | None = None


@dataclass(frozen=True)
class Competence:
    """A legislation area, narrowed to question sets / professions when listed."""

    legislation_area: str
    question_sets: tuple[str, ...] = ()
    professions: tuple[str, ...] = ()


@dataclass(frozen=True)
class AuthorityEntry:
    """One authority: names in several languages, address, competences, certificates."""

    authority_id: str
    names: tuple[LocalizedText, ...]
    address: Address
    competences: tuple[Competence, ...]
    working_languages: tuple[str, ...]
    certificates: tuple[bytes, ...] = field(repr=False)
    region: str | None = None

    def name_in(self, lang: str) -> str:
        """The name in ``lang``, else the first name listed."""
        for name in self.names:
            if name.lang == lang:
                return name.text
        return self.names[0].text

    def write(self, parent: etree._Element) -> None:
        write_entry_parts(sub(parent, "Authority", id=self.authority_id), self)

    @classmethod
    def read(cls, element: etree._Element) -> AuthorityEntry:
        address = child(element, "Address")
        return cls(
            authority_id=attr(element, "id"),
            names=tuple(localized(e) for e in children(element, "Name")),
            address=Address(
                lines=texts(address, "Line"),
                city=text(address, "City"),
                country=text(address, "Country"),
                postal_code=opt_text(address, "PostalCode"),
            ),
            region=opt_text(element, "Region"),
            competences=tuple(
                Competence(
                    legislation_area=attr(e, "legislationArea"),
                    question_sets=texts(e, "QuestionSet"),
                    professions=texts(e, "Profession"),
                )
                for e in children(element, "Competence")
            ),
            working_languages=texts(element, "WorkingLanguage"),
            certificates=tuple(b64decode(text_of(e)) for e in children(element, "Certificate")),
        )


#: ``sub(parent, local, text=None, **attributes)``: appends a child element in one namespace.
SubElement = Callable[..., etree._Element]


def write_entry_parts(
    element: etree._Element,
    entry: AuthorityEntry,
    sub: SubElement = sub,
    *,
    certificates: bool = True,
) -> None:
    """The XML form of an authority entry, appended to its ``Authority`` ``element``.

    Names, address, region, competences, working languages and (unless
    ``certificates`` is false) certificates, in the namespace ``sub`` writes:
    the one writer for directory documents and the search API's answer.
    """
    for name in entry.names:
        sub(element, "Name", name.text).set(_XML_LANG, name.lang)
    address = sub(element, "Address")
    for line in entry.address.lines:
        sub(address, "Line", line)
    if entry.address.postal_code is not None:
        sub(address, "PostalCode", entry.address.postal_code)
    sub(address, "City", entry.address.city)
    sub(address, "Country", entry.address.country)
    if entry.region is not None:
        sub(element, "Region", entry.region)
    for competence in entry.competences:
        comp = sub(element, "Competence", legislationArea=competence.legislation_area)
        for question_set in competence.question_sets:
            sub(comp, "QuestionSet", question_set)
        for profession in competence.professions:
            sub(comp, "Profession", profession)
    for lang in entry.working_languages:
        sub(element, "WorkingLanguage", lang)
    if certificates:
        for der in entry.certificates:
            sub(element, "Certificate", b64encode(der))


@dataclass(frozen=True)
class AuthorityDirectory:
    """A node's directory, full (``base_version`` None) or incremental."""

    node_id: str
    version: int
    created: datetime
    authorities: tuple[AuthorityEntry, ...] = ()
    removed: tuple[str, ...] = ()
    base_version: int | None = None

    @property
    def incremental(self) -> bool:
        return self.base_version is not None

    def to_xml(self) -> etree._Element:
        _check(self)
        root = new_root(DocumentType.AUTHORITY_DIRECTORY)
        header = sub(root, "Header")
        sub(header, "NodeId", self.node_id)
        sub(header, "Version", str(self.version))
        sub_opt(
            header, "BaseVersion", None if self.base_version is None else str(self.base_version)
        )
        sub(header, "Created", format_datetime(self.created))
        for entry in self.authorities:
            entry.write(root)
        for authority_id in self.removed:
            sub(root, "Removed", id=authority_id)
        validate(root)
        return root


def _check(directory: AuthorityDirectory) -> None:
    if directory.removed and directory.base_version is None:
        raise DirectoryInconsistent("a full directory (no BaseVersion) cannot remove authorities")
    if directory.base_version is not None and directory.base_version >= directory.version:
        raise DirectoryInconsistent("BaseVersion must be lower than Version")
    prefix = directory.node_id + "-"
    ids = [e.authority_id for e in directory.authorities] + list(directory.removed)
    if any(not i.startswith(prefix) for i in ids):
        raise DirectoryInconsistent(
            f"node {directory.node_id} may only list authorities of its own country"
        )
    for entry in directory.authorities:
        for der in entry.certificates:
            try:
                x509.load_der_x509_certificate(der)
            except ValueError:
                raise DirectoryInconsistent(
                    f"a certificate of {entry.authority_id} is not a DER X.509 certificate"
                ) from None


def build_directory(directory: AuthorityDirectory) -> etree._Element:
    """The unsigned AuthorityDirectory tree."""
    return directory.to_xml()


def directory_from(root: etree._Element) -> AuthorityDirectory:
    """Read a validated AuthorityDirectory and check its consistency."""
    header = child(root, "Header")
    base = opt_text(header, "BaseVersion")
    directory = AuthorityDirectory(
        node_id=text(header, "NodeId"),
        version=int(text(header, "Version")),
        base_version=None if base is None else int(base),
        created=parse_datetime(text(header, "Created")),
        authorities=tuple(AuthorityEntry.read(e) for e in children(root, "Authority")),
        removed=tuple(attr(e, "id") for e in children(root, "Removed")),
    )
    _check(directory)
    return directory


def read_directory(root: etree._Element) -> AuthorityDirectory:
    """Validate a verified AuthorityDirectory tree and read it."""
    checked_type(root, DocumentType.AUTHORITY_DIRECTORY)
    return directory_from(root)


def serialize_directory(directory: AuthorityDirectory) -> bytes:
    """The unsigned document of ``directory`` as UTF-8 bytes with an XML declaration."""
    return etree.tostring(build_directory(directory), xml_declaration=True, encoding="UTF-8")
