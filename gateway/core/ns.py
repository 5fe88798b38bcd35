"""Namespaces, URIs and identifier patterns shared by the whole protocol.

The protocol namespace carries the protocol's major version: a node refuses
documents of a namespace it does not speak (DOCUMENT_TYPE_UNKNOWN), so two
nodes on different major versions fail clearly.
"""

from __future__ import annotations

import re

#: Namespace of every protocol document (requests, envelopes, receipts, ...).
DOC_NS = "urn:imi-gateway:protocol:1"
#: Namespace of the question catalogue data files.
CATALOGUE_NS = "urn:imi-gateway:catalogue:1"
#: XML-DSig.
DS_NS = "http://www.w3.org/2000/09/xmldsig#"
XML_NS = "http://www.w3.org/XML/1998/namespace"

#: subjectAltName URI prefixes that bind a certificate to an identity.
#: A national-system certificate carries ``urn:imi-gateway:authority:<AUTHORITY_ID>``;
#: a node's signing and TLS certificates carry ``urn:imi-gateway:node:<NODE_ID>``.
AUTHORITY_URI_PREFIX = "urn:imi-gateway:authority:"
NODE_URI_PREFIX = "urn:imi-gateway:node:"

#: EEA country codes (ISO 3166-1 alpha-2; Greece is EL in EU usage, GR accepted as alias is NOT:
#: the protocol uses EL as the EU institutions do).
EEA_COUNTRIES = frozenset(
    "AT BE BG CY CZ DE DK EE EL ES FI FR HR HU IE IS IT LI LT LU LV MT NL NO PL PT RO SE SI SK".split()
)

#: A node id is its country code. An authority id is the country code, a hyphen, and
#: 1-40 ASCII upper-case letters, digits or hyphens: ASCII only, so look-alike
#: Unicode characters can never name another authority.
NODE_ID_RE = re.compile(r"\A[A-Z]{2}\Z")
AUTHORITY_ID_RE = re.compile(r"\A[A-Z]{2}-[A-Z0-9](?:[A-Z0-9-]{0,38}[A-Z0-9])?\Z")

#: The 27 languages IMI works in: the 24 EU official languages, Icelandic,
#: Norwegian Bokmål and Norwegian Nynorsk.
LANGUAGES = (
    "bg cs da de el en es et fi fr ga hr hu it lt lv mt nl pl pt ro sk sl sv is nb nn".split()
)


def is_authority_id(value: str) -> bool:
    return bool(AUTHORITY_ID_RE.match(value)) and value[:2] in EEA_COUNTRIES


def is_node_id(value: str) -> bool:
    return bool(NODE_ID_RE.match(value)) and value in EEA_COUNTRIES
