"""The search index over authority entries (sans-IO); see :mod:`gateway.core.search`."""

from __future__ import annotations

import bisect
import heapq
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from gateway.core.catalogue import Catalogue
from gateway.core.directory.document import AuthorityEntry
from gateway.core.search import postings, ranking
from gateway.core.search.postings import Postings
from gateway.core.search.query import (
    PHRASE_ID,
    PHRASE_NAME,
    MatchKind,
    SearchHit,
    SearchQuery,
    SearchResult,
)
from gateway.core.search.text import MIN_PREFIX, fold, tokenize


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
        self._name: Postings = {}
        self._full_name: Postings = {}
        self._other: Postings = {}
        self._prof: Postings = {}
        self._implied: Postings = {}
        self._area: Postings = {}
        self._country: Postings = {}
        self._region: Postings = {}
        self._language: Postings = {}
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
            for aid in postings.get(self._country, node_id)
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
            new_token |= postings.add(self._name, token, aid)
        for full in keys.full_names:
            postings.add(self._full_name, full, aid)
        for token in keys.other_tokens:
            new_token |= postings.add(self._other, token, aid)
        for profession in keys.explicit:
            postings.add(self._prof, profession, aid)
        for profession in keys.implied:
            postings.add(self._implied, profession, aid)
        for area in keys.areas:
            postings.add(self._area, area, aid)
        postings.add(self._country, node, aid)
        if entry.region:
            postings.add(self._region, entry.region, aid)
        for lang in keys.languages:
            postings.add(self._language, lang, aid)
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
            gone |= postings.discard(self._name, token, aid)
        for full in keys.full_names:
            postings.discard(self._full_name, full, aid)
        for token in keys.other_tokens:
            gone |= postings.discard(self._other, token, aid)
        for profession in keys.explicit:
            postings.discard(self._prof, profession, aid)
        for profession in keys.implied:
            postings.discard(self._implied, profession, aid)
        for area in keys.areas:
            postings.discard(self._area, area, aid)
        postings.discard(self._country, doc.node_id, aid)
        if doc.entry.region:
            postings.discard(self._region, doc.entry.region, aid)
        for lang in keys.languages:
            postings.discard(self._language, lang, aid)
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
            return postings.get(self._prof, next(iter(key)))
        found = self._profession_unions.get(key)
        if found is None:
            found = self._profession_unions[key] = postings.union(
                postings.get(self._prof, p) for p in key
            )
        return found

    def _token_levels(
        self, token: str
    ) -> tuple[list[tuple[int, set[int] | frozenset[int]]], set[str]]:
        """The authorities ``token`` matches, by match kind (best first), and the
        professions it matched."""
        expansions = self._expand(token) if len(token) >= MIN_PREFIX else []
        levels: list[tuple[int, set[int] | frozenset[int]]] = []

        name_exact = postings.get(self._name, token)
        if name_exact:
            levels.append((MatchKind.NAME_EXACT, name_exact))
        name_prefix = postings.union(postings.get(self._name, t) for t in expansions)
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
            postings.get(self._implied, p) for p in matched_professions
        ]
        for t in (token, *expansions):
            bucket = postings.get(self._other, t)
            if bucket:
                other.append(bucket)
        # Legislation-area titles match whole words only: as prefixes, "pro"
        # or "qual" would match every authority of the area.
        for area in self._area_word.get(token, ()):
            other.append(postings.get(self._area, area))
        rest = postings.union(other)
        if rest:
            levels.append((MatchKind.OTHER, rest))
        return levels, matched_professions

    def _filter(self, query: SearchQuery) -> set[int] | frozenset[int] | None:
        parts: list[set[int] | frozenset[int]] = []
        if query.country:
            parts.append(postings.get(self._country, query.country))
        if query.area:
            parts.append(postings.get(self._area, query.area))
        if query.region:
            region = query.region
            parts.append(
                postings.union(
                    postings.get(self._region, code)
                    for code in self._region
                    if code.startswith(region)
                )
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
                candidates = postings.union(members for _, members in levels)
            else:
                candidates = postings.union(candidates & members for _, members in levels)
            if not candidates:
                break
        if candidates is None:
            candidates = set()
        total = len(candidates)
        if not candidates:
            return SearchResult(query, 0, ())

        phrase = self._phrase_sets(query, tokens)
        term = self._term_phrase(tokens)
        language = postings.get(self._language, query.lang)
        chosen = ranking.top(
            candidates, per_token, phrase, (term, language), query.limit, self._first
        )

        hits = []
        for position, (key, aid) in enumerate(chosen, 1):
            doc = self._doc(aid)
            hit_professions = ranking.hit_professions(doc.explicit, doc.implied, profession_tokens)
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
                    name_matched=key[0] == PHRASE_NAME
                    or any(k >= MatchKind.NAME_PREFIX for k in key[1 : 1 + len(per_token)]),
                )
            )
        return SearchResult(query, total, tuple(hits))

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

    def _phrase_sets(
        self, query: SearchQuery, tokens: list[str]
    ) -> list[tuple[int, set[int] | frozenset[int]]]:
        """Sets of authorities the whole query names, best first."""
        result: list[tuple[int, set[int] | frozenset[int]]] = []
        if not tokens:
            return result
        aid = self._by_id.get(query.text.strip().upper())
        if aid is not None:
            result.append((PHRASE_ID, {aid}))
        phrase = " ".join(tokens)
        names = postings.get(self._full_name, phrase)
        if names:
            result.append((PHRASE_NAME, names))
        return result

    def _term_phrase(self, tokens: list[str]) -> set[int] | frozenset[int]:
        """Authorities explicitly competent for a profession the whole query is a term of."""
        professions = self._term_full.get(" ".join(tokens)) if tokens else None
        return self._professions_aids(professions) if professions else postings.EMPTY

    # -- presentation helpers ---------------------------------------------------------------

    def profession_label(self, code: str, lang: str | None) -> str:
        """The first catalogue term of profession ``code`` in ``lang`` (else English, else the code)."""
        terms = self._labels.get(code, {})
        for language in (lang, "en"):
            if language and terms.get(language):
                return terms[language][0]
        return code
