"""Multilingual search over authority directories: an inverted index (sans-IO).

A national system looks for the competent authority abroad with a word in
its own language: "lege" (nn), "médico" (pt), "Arzt" (de) and "doctor" all
find the authorities competent for doctors, whatever language their names
are in. :class:`SearchIndex` makes that a few dictionary and bisect look-ups
plus set operations per query.

Matching
    Text is *folded* (:func:`fold`): case-folded, NFKD-decomposed, combining
    marks stripped, and letters that do not decompose mapped to ASCII
    (``ß→ss ø→o æ→ae œ→oe đ→d ł→l þ→th ð→d ħ→h ı→i``), then split into
    tokens of letters and digits (:func:`tokenize`; hyphens, apostrophes and
    punctuation separate tokens). A query token matches an authority when it
    equals, or is a prefix of (from :data:`MIN_PREFIX` characters on), a token
    of

    * one of the authority's names (any language), or
    * a term of a profession the authority is competent for, in any of the 27
      languages of the question catalogue (``Catalogue.professions()``); an
      authority is competent for the professions its competences list, those
      of the question sets they list, and -- at the lowest rank -- every
      profession of a legislation area listed without narrowing, or
    * a legislation area's code or a word of its title (whole words only),
      its city, region code or id.

    Every token of a multi-word query must match (AND). Filters (country,
    legislation area, NUTS region or region prefix) narrow the matches.

Ranking (best first; :attr:`SearchHit.score` is this key)
    1. the whole query is the authority's id, then one of its full names;
    2. per query token its best match kind -- name token exact > name prefix >
       profession term exact (the whole term) > a word of a profession term >
       profession term prefix > the rest (area, city, region, id, whole-area
       competence) -- compared as a multiset, best first: more tokens matched
       at a better kind ranks higher;
    3. the whole query is a full term of a profession the authority is
       explicitly competent for ("médico veterinário" prefers vets to doctors);
    4. authorities that work in the searcher's language (``lang``);
    5. the authority's first-listed name (folded), then its id.

Data structures: ``token -> set of authority numbers`` for names and other
fields, ``term token -> profession codes`` and ``profession -> authorities``
for competences, and one sorted list of every token for prefix look-ups
(:mod:`bisect`). Updates (:meth:`SearchIndex.add`, :meth:`~SearchIndex.remove`,
:meth:`~SearchIndex.replace_node`) are incremental; the sorted token list and
the name order are rebuilt lazily on the next search after a change.

The index is not thread-safe: use it from one thread (the reactor), or
guard it. Nothing here does IO or logs; queries may hold personal data and
are never put into error messages.
"""

from __future__ import annotations

from gateway.core.search.index import SearchIndex
from gateway.core.search.query import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    MAX_QUERY_CHARS,
    MAX_QUERY_TOKENS,
    MatchKind,
    SearchHit,
    SearchQuery,
    SearchQueryInvalid,
    SearchResult,
)
from gateway.core.search.text import MIN_PREFIX, fold, tokenize

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "MAX_QUERY_CHARS",
    "MAX_QUERY_TOKENS",
    "MIN_PREFIX",
    "MatchKind",
    "SearchHit",
    "SearchIndex",
    "SearchQuery",
    "SearchQueryInvalid",
    "SearchResult",
    "fold",
    "tokenize",
]
