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

import bisect
import heapq
import re
import sys
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum

from gateway.core.catalogue import Catalogue, check_language
from gateway.core.directorydoc import AuthorityEntry
from gateway.core.errors import InvalidInput
from gateway.core.ns import EEA_COUNTRIES

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

#: A query token shorter than this matches whole tokens only, never as a prefix.
MIN_PREFIX = 2
DEFAULT_LIMIT = 20
MAX_LIMIT = 200
MAX_QUERY_CHARS = 200
MAX_QUERY_TOKENS = 10

_AREA_RE = re.compile(r"\A[A-Z0-9]+(?:-[A-Z0-9]+)*\Z")
_REGION_FILTER_RE = re.compile(r"\A[A-Z]{2}[A-Z0-9]{0,3}\Z")


class SearchQueryInvalid(InvalidInput):
    """The authority search query is invalid (empty without a filter, too long, or a malformed filter)."""

    code = "SEARCH_QUERY_INVALID"


# --- folding and tokens ----------------------------------------------------------------

# Letters that NFKD does not decompose into a base letter and a combining mark.
# Applied after case folding, so only lower-case forms are needed (casefold
# already turns ß into ss and the final sigma into σ).
_SPECIAL = str.maketrans(
    {
        "ø": "o",
        "æ": "ae",
        "œ": "oe",
        "đ": "d",
        "ł": "l",
        "þ": "th",
        "ð": "d",
        "ħ": "h",
        "ı": "i",
        "ŀ": "l",
        "ŧ": "t",
        "ŋ": "n",
        "ĸ": "k",
        "ß": "ss",
        "ſ": "s",
        "ʼ": "'",
        "’": "'",
    }
)
_TOKEN_RE = re.compile(r"[^\W_]+")


def fold(text: str) -> str:
    """``text`` folded for matching: case, accents and special letters ignored.

    >>> fold("Médico Ærø Straße Łódź Þór")
    'medico aero strasse lodz thor'
    """
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return stripped.translate(_SPECIAL)


def tokenize(text: str) -> list[str]:
    """The folded tokens (runs of letters and digits) of ``text``."""
    return _TOKEN_RE.findall(fold(text))


# --- queries and results ------------------------------------------------------------------


class MatchKind(IntEnum):
    """How a query token matched an authority (higher is better); see the module docstring."""

    OTHER = 1
    TERM_PREFIX = 2
    TERM_WORD = 3
    TERM_EXACT = 4
    NAME_PREFIX = 5
    NAME_EXACT = 6


_PHRASE_ID = 3
_PHRASE_NAME = 2


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


# --- the index ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Keys:
    """Every key an authority is indexed under (computed again to remove it)."""

    name_tokens: tuple[str, ...]
    full_names: tuple[str, ...]
    other_tokens: tuple[str, ...]
    explicit: frozenset[str]
    implied: frozenset[str]
    areas: tuple[str, ...]
    languages: tuple[str, ...]


class _Doc:
    """An indexed authority: what a hit shows and ranks by.

    Kept small (an index may hold 100,000 of them): the keys it is indexed
    under are computed again from ``entry`` when it is removed, and the
    profession sets are shared between authorities.
    """

    __slots__ = ("entry", "explicit", "implied", "node_id", "sort_key")

    def __init__(
        self, entry: AuthorityEntry, node_id: str, explicit: frozenset[str], implied: frozenset[str]
    ) -> None:
        self.entry = entry
        self.node_id = node_id
        self.explicit = explicit
        self.implied = implied
        self.sort_key = (fold(entry.names[0].text) if entry.names else "", entry.authority_id)


# A posting is one authority number, or a set of them once a key has several:
# most keys (ids, rare words, full names) name one authority, and a one-element
# set costs ten times the memory of an int.
_Posting = int | set[int]
_Postings = dict[str, _Posting]


def _add(index: _Postings, key: str, aid: int) -> bool:
    """Add ``aid`` under ``key``; True when the key is new."""
    bucket = index.get(key)
    if bucket is None:
        index[key] = aid
        return True
    if isinstance(bucket, int):
        if bucket != aid:
            index[key] = {bucket, aid}
        return False
    bucket.add(aid)
    return False


def _discard(index: _Postings, key: str, aid: int) -> bool:
    """Remove ``aid`` under ``key``; True when the key is gone."""
    bucket = index.get(key)
    if bucket is None:
        return False
    if isinstance(bucket, int):
        if bucket == aid:
            del index[key]
            return True
        return False
    bucket.discard(aid)
    if len(bucket) == 1:
        index[key] = next(iter(bucket))
    return False


def _get(index: _Postings, key: str | None) -> set[int] | frozenset[int]:
    """The authorities under ``key`` (empty when none)."""
    bucket = index.get(key) if key is not None else None
    if bucket is None:
        return _EMPTY
    if isinstance(bucket, int):
        return frozenset((bucket,))
    return bucket


def _union(sets: Iterable[set[int] | frozenset[int]]) -> set[int]:
    result: set[int] = set()
    result.update(*sets)
    return result


_EMPTY: frozenset[int] = frozenset()


class SearchIndex:
    """The inverted index over authorities of one or more nodes; see the module docstring.

    ``catalogue`` supplies the profession terms in the 27 languages and the
    legislation areas' titles; without one, only names and the other fields
    match.
    """

    def __init__(self, catalogue: Catalogue | None = None) -> None:
        self._catalogue = catalogue
        self._docs: list[_Doc | None] = []
        self._free: list[int] = []
        self._by_id: dict[str, int] = {}
        # authority postings
        self._name: _Postings = {}
        self._full_name: _Postings = {}
        self._other: _Postings = {}
        self._prof: _Postings = {}
        self._implied: _Postings = {}
        self._area: _Postings = {}
        self._country: _Postings = {}
        self._region: _Postings = {}
        self._language: _Postings = {}
        # catalogue look-ups (fixed)
        self._term_exact: dict[str, set[str]] = {}
        self._term_word: dict[str, set[str]] = {}
        self._term_full: dict[str, set[str]] = {}
        self._area_word: dict[str, set[str]] = {}
        self._set_profession: dict[str, str] = {}
        self._area_professions: dict[str, frozenset[str]] = {}
        self._labels: dict[str, Mapping[str, Sequence[str]]] = {}
        if catalogue is not None:
            self._load_catalogue(catalogue)
        # lazily rebuilt
        self._vocab: list[str] = []
        self._vocab_dirty = True
        self._rank: list[int] = []
        self._order: list[int] = []
        # Unions of the authorities of several professions (a word such as
        # "médico" names several): derived data, dropped on every change.
        self._profession_unions: dict[frozenset[str], set[int]] = {}
        self._shared_sets: dict[frozenset[str], frozenset[str]] = {}
        self._rank_dirty = True

    # -- catalogue ---------------------------------------------------------------------

    def _load_catalogue(self, catalogue: Catalogue) -> None:
        professions = catalogue.professions()
        for code, terms in professions.items():
            self._labels[code] = terms
            all_terms = [code.replace("-", " ")] + [t for ts in terms.values() for t in ts]
            for term in all_terms:
                tokens = tokenize(term)
                if not tokens:
                    continue
                self._term_full.setdefault(" ".join(tokens), set()).add(code)
                if len(tokens) == 1:
                    self._term_exact.setdefault(tokens[0], set()).add(code)
                for token in tokens:
                    self._term_word.setdefault(token, set()).add(code)
        for question_set in catalogue.question_sets.values():
            if question_set.profession is not None:
                self._set_profession[question_set.code] = question_set.profession
        by_area: dict[str, set[str]] = {}
        for question_set in catalogue.question_sets.values():
            if question_set.profession is not None:
                by_area.setdefault(question_set.area, set()).add(question_set.profession)
        self._area_professions = {a: frozenset(p) for a, p in by_area.items()}
        for code, area in catalogue.areas.items():
            words = {fold(code)}
            for text in area.titles.values():
                words.update(tokenize(text.text))
            for word in words:
                self._area_word.setdefault(word, set()).add(code)

    # -- updates -----------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, authority_id: object) -> bool:
        return authority_id in self._by_id

    def entry(self, authority_id: str) -> AuthorityEntry | None:
        aid = self._by_id.get(authority_id)
        doc = self._docs[aid] if aid is not None else None
        return doc.entry if doc is not None else None

    def node_entries(self, node_id: str) -> dict[str, AuthorityEntry]:
        """The indexed authorities of ``node_id``, by id."""
        return {
            self._doc(aid).entry.authority_id: self._doc(aid).entry
            for aid in _get(self._country, node_id)
        }

    def _doc(self, aid: int) -> _Doc:
        doc = self._docs[aid]
        assert doc is not None
        return doc

    def _shared(self, value: frozenset[str]) -> frozenset[str]:
        """One object for each distinct set of codes (authorities share a few dozen)."""
        return self._shared_sets.setdefault(value, value)

    def _keys(self, entry: AuthorityEntry) -> _Keys:
        names: dict[str, None] = {}
        full_names: dict[str, None] = {}
        for name in entry.names:
            tokens = tokenize(name.text)
            names.update(dict.fromkeys(tokens))
            full_names[" ".join(tokens)] = None
        other = dict.fromkeys(tokenize(entry.address.city))
        other.update(dict.fromkeys(tokenize(entry.authority_id)))
        if entry.region:
            other[fold(entry.region)] = None
        explicit: set[str] = set()
        implied: set[str] = set()
        for competence in entry.competences:
            explicit.update(competence.professions)
            for code in competence.question_sets:
                profession = self._set_profession.get(code)
                if profession is not None:
                    explicit.add(profession)
            if not competence.question_sets and not competence.professions:
                implied.update(self._area_professions.get(competence.legislation_area, ()))
        return _Keys(
            name_tokens=tuple(sys.intern(t) for t in names),
            full_names=tuple(full_names),
            other_tokens=tuple(sys.intern(t) for t in other),
            explicit=self._shared(frozenset(explicit)),
            implied=self._shared(frozenset(implied - explicit)),
            areas=tuple(dict.fromkeys(c.legislation_area for c in entry.competences)),
            languages=tuple(dict.fromkeys(entry.working_languages)),
        )

    def add(self, entry: AuthorityEntry, node_id: str | None = None) -> None:
        """Index ``entry`` (of node ``node_id``, default its id's country), replacing any
        entry with the same id."""
        node = node_id or entry.authority_id[:2]
        if entry.authority_id in self._by_id:
            self.remove(entry.authority_id)
        if self._free:
            aid = self._free.pop()
        else:
            aid = len(self._docs)
            self._docs.append(None)
        keys = self._keys(entry)
        doc = _Doc(entry, node, keys.explicit, keys.implied)
        self._docs[aid] = doc
        self._by_id[entry.authority_id] = aid
        new_token = False
        for token in keys.name_tokens:
            new_token |= _add(self._name, token, aid)
        for full in keys.full_names:
            _add(self._full_name, full, aid)
        for token in keys.other_tokens:
            new_token |= _add(self._other, token, aid)
        for profession in keys.explicit:
            _add(self._prof, profession, aid)
        for profession in keys.implied:
            _add(self._implied, profession, aid)
        for area in keys.areas:
            _add(self._area, area, aid)
        _add(self._country, node, aid)
        if entry.region:
            _add(self._region, entry.region, aid)
        for lang in keys.languages:
            _add(self._language, lang, aid)
        self._vocab_dirty |= new_token
        self._rank_dirty = True
        self._profession_unions.clear()

    def add_many(self, entries: Iterable[AuthorityEntry], node_id: str | None = None) -> None:
        for entry in entries:
            self.add(entry, node_id)

    def remove(self, authority_id: str) -> bool:
        """Forget ``authority_id``; False when it was not indexed."""
        aid = self._by_id.pop(authority_id, None)
        if aid is None:
            return False
        doc = self._doc(aid)
        keys = self._keys(doc.entry)
        gone = False
        for token in keys.name_tokens:
            gone |= _discard(self._name, token, aid)
        for full in keys.full_names:
            _discard(self._full_name, full, aid)
        for token in keys.other_tokens:
            gone |= _discard(self._other, token, aid)
        for profession in keys.explicit:
            _discard(self._prof, profession, aid)
        for profession in keys.implied:
            _discard(self._implied, profession, aid)
        for area in keys.areas:
            _discard(self._area, area, aid)
        _discard(self._country, doc.node_id, aid)
        if doc.entry.region:
            _discard(self._region, doc.entry.region, aid)
        for lang in keys.languages:
            _discard(self._language, lang, aid)
        self._docs[aid] = None
        self._free.append(aid)
        self._vocab_dirty |= gone
        self._rank_dirty = True
        self._profession_unions.clear()
        return True

    def replace_node(self, node_id: str, entries: Iterable[AuthorityEntry]) -> tuple[int, int]:
        """Make the index hold exactly ``entries`` for node ``node_id``.

        Only authorities that changed are re-indexed. Returns (added or
        changed, removed).
        """
        wanted = {e.authority_id: e for e in entries}
        current = self.node_entries(node_id)
        removed = [i for i in current if i not in wanted]
        for authority_id in removed:
            self.remove(authority_id)
        changed = [e for i, e in wanted.items() if current.get(i) != e]
        for entry in changed:
            self.add(entry, node_id)
        return len(changed), len(removed)

    # -- lazily rebuilt structures --------------------------------------------------------

    def _fresh(self) -> None:
        if self._vocab_dirty:
            vocabulary = set(self._name)
            vocabulary.update(self._other)
            vocabulary.update(self._term_word)
            vocabulary.update(self._area_word)
            self._vocab = sorted(vocabulary)
            self._vocab_dirty = False
        if self._rank_dirty:
            live = [aid for aid, doc in enumerate(self._docs) if doc is not None]
            live.sort(key=lambda aid: self._doc(aid).sort_key)
            rank = [len(self._docs)] * len(self._docs)
            for position, aid in enumerate(live):
                rank[aid] = position
            self._rank = rank
            self._order = live
            self._rank_dirty = False

    def _expand(self, prefix: str) -> list[str]:
        """Every known token that starts with ``prefix`` (``prefix`` itself excluded)."""
        vocab = self._vocab
        start = bisect.bisect_left(vocab, prefix)
        end = bisect.bisect_left(vocab, prefix + "\U0010ffff", start)
        return [t for t in vocab[start:end] if t != prefix]

    # -- searching ------------------------------------------------------------------------

    def _professions_aids(self, professions: Iterable[str]) -> set[int] | frozenset[int]:
        """The authorities explicitly competent for any of ``professions`` (do not modify)."""
        key = frozenset(professions)
        if len(key) == 1:
            return _get(self._prof, next(iter(key)))
        found = self._profession_unions.get(key)
        if found is None:
            found = self._profession_unions[key] = _union(_get(self._prof, p) for p in key)
        return found

    def _token_levels(
        self, token: str
    ) -> tuple[list[tuple[int, set[int] | frozenset[int]]], set[str]]:
        """The authorities ``token`` matches, by match kind (best first), and the
        professions it matched."""
        expansions = self._expand(token) if len(token) >= MIN_PREFIX else []
        levels: list[tuple[int, set[int] | frozenset[int]]] = []

        name_exact = _get(self._name, token)
        if name_exact:
            levels.append((MatchKind.NAME_EXACT, name_exact))
        name_prefix = _union(_get(self._name, t) for t in expansions)
        if name_prefix:
            levels.append((MatchKind.NAME_PREFIX, name_prefix))

        exact = self._term_exact.get(token, set())
        word = self._term_word.get(token, set()) - exact
        prefixed: set[str] = set()
        for t in expansions:
            found = self._term_word.get(t)
            if found:
                prefixed.update(found)
        prefixed -= exact | word
        for kind, professions in (
            (MatchKind.TERM_EXACT, exact),
            (MatchKind.TERM_WORD, word),
            (MatchKind.TERM_PREFIX, prefixed),
        ):
            if professions:
                aids = self._professions_aids(professions)
                if aids:
                    levels.append((kind, aids))

        matched_professions = exact | word | prefixed
        other: list[set[int] | frozenset[int]] = [
            _get(self._implied, p) for p in matched_professions
        ]
        for t in (token, *expansions):
            bucket = _get(self._other, t)
            if bucket:
                other.append(bucket)
        # Legislation-area titles match whole words only: as prefixes, "pro"
        # or "qual" would match every authority of the area.
        for area in self._area_word.get(token, ()):
            other.append(_get(self._area, area))
        rest = _union(other)
        if rest:
            levels.append((MatchKind.OTHER, rest))
        return levels, matched_professions

    def _filter(self, query: SearchQuery) -> set[int] | frozenset[int] | None:
        parts: list[set[int] | frozenset[int]] = []
        if query.country:
            parts.append(_get(self._country, query.country))
        if query.area:
            parts.append(_get(self._area, query.area))
        if query.region:
            region = query.region
            parts.append(
                _union(_get(self._region, code) for code in self._region if code.startswith(region))
            )
        if not parts:
            return None
        parts.sort(key=len)
        result = set(parts[0])
        for part in parts[1:]:
            result &= part
        return result

    def search(self, query: SearchQuery) -> SearchResult:
        """The authorities matching ``query``, best first (see the module docstring)."""
        self._fresh()
        tokens = list(dict.fromkeys(tokenize(query.text)))
        allowed = self._filter(query)
        profession_tokens: dict[str, int] = {}
        per_token: list[list[tuple[int, set[int] | frozenset[int]]]] = []
        for token in tokens:
            levels, professions = self._token_levels(token)
            for profession in professions:
                profession_tokens[profession] = profession_tokens.get(profession, 0) + 1
            per_token.append(levels)
        # Most selective word first: later words only intersect what is left.
        per_token.sort(key=lambda levels: sum(len(members) for _, members in levels))
        candidates: set[int] | None = None if allowed is None else set(allowed)
        for levels in per_token:
            if candidates is None:
                candidates = _union(members for _, members in levels)
            else:
                candidates = _union(candidates & members for _, members in levels)
            if not candidates:
                break
        if candidates is None:
            candidates = set()
        total = len(candidates)
        if not candidates:
            return SearchResult(query, 0, ())

        phrase = self._phrase_sets(query, tokens)
        term = self._term_phrase(tokens)
        language = _get(self._language, query.lang)
        chosen = self._top(candidates, per_token, phrase, (term, language), query.limit)

        hits = []
        for position, (key, aid) in enumerate(chosen, 1):
            doc = self._doc(aid)
            hit_professions = self._hit_professions(doc, profession_tokens)
            display = next((n for n in doc.entry.names if n.lang == query.lang), doc.entry.names[0])
            hits.append(
                SearchHit(
                    entry=doc.entry,
                    node_id=doc.node_id,
                    rank=position,
                    score=key,
                    name=display.text,
                    name_lang=display.lang,
                    professions=tuple(hit_professions),
                    name_matched=key[0] == _PHRASE_NAME
                    or any(k >= MatchKind.NAME_PREFIX for k in key[1 : 1 + len(per_token)]),
                )
            )
        return SearchResult(query, total, tuple(hits))

    @staticmethod
    def _hit_professions(doc: _Doc, profession_tokens: Mapping[str, int]) -> list[str]:
        """The professions of ``doc`` matched by the most query words, explicit ones first."""
        competent = [p for p in profession_tokens if p in doc.explicit or p in doc.implied]
        if not competent:
            return []
        best = max(profession_tokens[p] for p in competent)
        return sorted(
            (p for p in competent if profession_tokens[p] == best),
            key=lambda p: (p not in doc.explicit, p),
        )

    def _top(
        self,
        candidates: set[int],
        per_token: list[list[tuple[int, set[int] | frozenset[int]]]],
        phrase: list[tuple[int, set[int] | frozenset[int]]],
        tie_breakers: tuple[set[int] | frozenset[int], ...],
        limit: int,
    ) -> list[tuple[tuple[int, ...], int]]:
        """The best ``limit`` candidates with their scores, best first.

        The candidates are split into groups of equal score with set
        operations, best-first: a group is refined by the next query token
        only while it may still hold one of the best ``limit``, so a search
        with many matches costs a few set operations, not one per match. A
        group's upper bound assumes the best match kind for the tokens not
        yet applied; a fully refined group is emitted when no other group
        can beat it (groups with the same score are merged first).
        """
        best_kinds = [levels[0][0] for levels in per_token]
        count = len(per_token)
        heap: list[tuple[tuple[int, ...], int, int, tuple[int, ...], set[int]]] = []
        sequence = 0

        def push(phrase_level: int, kinds: tuple[int, ...], group: set[int]) -> None:
            nonlocal sequence
            bound = sorted((*kinds, *best_kinds[len(kinds) :]), reverse=True)
            key = (-phrase_level, *(-k for k in bound))
            sequence += 1
            heapq.heappush(heap, (key, sequence, phrase_level, kinds, group))

        def refine(phrase_level: int, kinds: tuple[int, ...], group: set[int]) -> None:
            rest = group
            levels = per_token[len(kinds)]
            for position, (kind, members) in enumerate(levels):
                part = rest if position == len(levels) - 1 else rest & members
                if part:
                    push(phrase_level, (*kinds, kind), part)
                    if part is rest:
                        break
                    rest = rest - part
                    if not rest:
                        break

        rest = candidates
        for phrase_level, members in phrase:
            part = rest & members
            if part:
                push(phrase_level, (), part)
                rest = rest - part
        if rest:
            push(0, (), rest)

        chosen: list[tuple[tuple[int, ...], int]] = []
        while heap and len(chosen) < limit:
            key, _, phrase_level, kinds, group = heapq.heappop(heap)
            if len(kinds) < count:
                refine(phrase_level, kinds, group)
                continue
            while heap and heap[0][0] == key:
                _, _, other_phrase, other_kinds, other = heapq.heappop(heap)
                if len(other_kinds) < count:
                    refine(other_phrase, other_kinds, other)
                else:
                    group = group | other
            score = (phrase_level, *sorted(kinds, reverse=True))
            parts: list[tuple[tuple[int, ...], set[int]]] = [(score, group)]
            for members in tie_breakers:
                parts = [
                    ((*key, level), part)
                    for key, whole in parts
                    for level, part in self._split(whole, members)
                ]
            for key, part in parts:
                need = limit - len(chosen)
                if need <= 0:
                    break
                chosen.extend((key, aid) for aid in self._first(part, need))
        return chosen

    def _first(self, group: set[int], count: int) -> list[int]:
        """The ``count`` members of ``group`` that come first in name order."""
        if len(group) <= count:
            return sorted(group, key=self._rank.__getitem__)
        if len(group) * 8 >= len(self._order):
            # A large share of all authorities: walk the name order (about
            # count * 8 steps) instead of ranking the whole group.
            found = []
            for aid in self._order:
                if aid in group:
                    found.append(aid)
                    if len(found) == count:
                        break
            return found
        return heapq.nsmallest(count, group, key=self._rank.__getitem__)

    @staticmethod
    def _split(group: set[int], members: set[int] | frozenset[int]) -> list[tuple[int, set[int]]]:
        """``group`` split into its ``members`` (level 1) and the others (level 0)."""
        if not members:
            return [(0, group)]
        inside = group & members
        if not inside:
            return [(0, group)]
        if len(inside) == len(group):
            return [(1, group)]
        return [(1, inside), (0, group - inside)]

    def _phrase_sets(
        self, query: SearchQuery, tokens: list[str]
    ) -> list[tuple[int, set[int] | frozenset[int]]]:
        """Sets of authorities the whole query names, best first."""
        result: list[tuple[int, set[int] | frozenset[int]]] = []
        if not tokens:
            return result
        aid = self._by_id.get(query.text.strip().upper())
        if aid is not None:
            result.append((_PHRASE_ID, {aid}))
        phrase = " ".join(tokens)
        names = _get(self._full_name, phrase)
        if names:
            result.append((_PHRASE_NAME, names))
        return result

    def _term_phrase(self, tokens: list[str]) -> set[int] | frozenset[int]:
        """Authorities explicitly competent for a profession the whole query is a term of."""
        professions = self._term_full.get(" ".join(tokens)) if tokens else None
        return self._professions_aids(professions) if professions else _EMPTY

    # -- presentation helpers ---------------------------------------------------------------

    def profession_label(self, code: str, lang: str | None) -> str:
        """The first catalogue term of profession ``code`` in ``lang`` (else English, else the code)."""
        terms = self._labels.get(code, {})
        for language in (lang, "en"):
            if language and terms.get(language):
                return terms[language][0]
        return code
