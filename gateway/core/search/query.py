"""A search query, its validation, and the hits it returns (sans-IO)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import IntEnum

from gateway.core.catalogue import check_language
from gateway.core.directory.document import AuthorityEntry
from gateway.core.errors import InvalidInput
from gateway.core.ns import EEA_COUNTRIES
from gateway.core.search.text import tokenize

DEFAULT_LIMIT = 20
MAX_LIMIT = 200
MAX_QUERY_CHARS = 200
MAX_QUERY_TOKENS = 10

_AREA_RE = re.compile(r"\A[A-Z0-9]+(?:-[A-Z0-9]+)*\Z")
_REGION_FILTER_RE = re.compile(r"\A[A-Z]{2}[A-Z0-9]{0,3}\Z")


class SearchQueryInvalid(InvalidInput):
    """The authority search query is invalid (empty without a filter, too long, or a malformed filter)."""

    code = "SEARCH_QUERY_INVALID"


class MatchKind(IntEnum):
    """How a query token matched an authority (higher is better); see the module docstring."""

    OTHER = 1
    TERM_PREFIX = 2
    TERM_WORD = 3
    TERM_EXACT = 4
    NAME_PREFIX = 5
    NAME_EXACT = 6


PHRASE_ID = 3
PHRASE_NAME = 2


@dataclass(frozen=True)
class SearchQuery:
    """An authority search: free text and filters.

    text: words in any of the 27 languages (may be empty when a filter is given).
    country: only authorities of this EEA country (node).
    area: only authorities competent in this legislation area (e.g. PQD).
    region: only authorities in this NUTS region or its sub-regions (PT1, PT17).
    lang: the searcher's language: names and profession labels of the hits
        are given in it, and authorities working in it rank first among equals.
        It does not restrict matching.
    limit: the most hits returned (1 to MAX_LIMIT).
    """

    text: str = ""
    country: str | None = None
    area: str | None = None
    region: str | None = None
    lang: str | None = None
    limit: int = DEFAULT_LIMIT

    def __post_init__(self) -> None:
        if len(self.text) > MAX_QUERY_CHARS:
            raise SearchQueryInvalid(f"the query is longer than {MAX_QUERY_CHARS} characters")
        if len(tokenize(self.text)) > MAX_QUERY_TOKENS:
            raise SearchQueryInvalid(f"the query has more than {MAX_QUERY_TOKENS} words")
        if self.country is not None and self.country not in EEA_COUNTRIES:
            raise SearchQueryInvalid("country must be an EEA country code (e.g. PT, NO, EL)")
        if self.area is not None and (len(self.area) > 16 or not _AREA_RE.match(self.area)):
            raise SearchQueryInvalid("area must be a legislation area code (e.g. PQD)")
        if self.region is not None and not _REGION_FILTER_RE.match(self.region):
            raise SearchQueryInvalid("region must be a NUTS code or prefix (e.g. PT1, PT17)")
        if self.lang is not None:
            check_language(self.lang)
        if not (1 <= self.limit <= MAX_LIMIT):
            raise SearchQueryInvalid(f"limit must be between 1 and {MAX_LIMIT}")
        if not tokenize(self.text) and not (self.country or self.area or self.region):
            raise SearchQueryInvalid("give search words or at least one filter")

    @property
    def filtered(self) -> bool:
        return bool(self.country or self.area or self.region)


@dataclass(frozen=True)
class SearchHit:
    """One authority found.

    rank: 1 for the best hit.
    score: the ranking key (higher is better; compare hits of one search only).
    name: the authority's name in the query's language (else its first name);
    name_lang: the language of ``name``.
    professions: professions the query matched through, for which the
        authority is competent (codes, most relevant first).
    name_matched: some query word matched the authority's name.
    """

    entry: AuthorityEntry = field(repr=False)
    node_id: str
    rank: int
    score: tuple[int, ...]
    name: str = field(repr=False)
    name_lang: str
    professions: tuple[str, ...]
    name_matched: bool

    @property
    def authority_id(self) -> str:
        return self.entry.authority_id


@dataclass(frozen=True)
class SearchResult:
    """The hits of a search (at most ``query.limit``) and how many matched in all."""

    query: SearchQuery = field(repr=False)
    total: int
    hits: tuple[SearchHit, ...]

    @property
    def ids(self) -> list[str]:
        return [hit.authority_id for hit in self.hits]
