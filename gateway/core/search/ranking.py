"""Ranking of search candidates: groups of equal score, best first (sans-IO).

See :mod:`gateway.core.search` for the ranking order.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping


def hit_professions(
    explicit: frozenset[str], implied: frozenset[str], profession_tokens: Mapping[str, int]
) -> list[str]:
    """The professions (of an authority competent for ``explicit`` and ``implied``)
    matched by the most query words, explicit ones first."""
    competent = [p for p in profession_tokens if p in explicit or p in implied]
    if not competent:
        return []
    best = max(profession_tokens[p] for p in competent)
    return sorted(
        (p for p in competent if profession_tokens[p] == best),
        key=lambda p: (p not in explicit, p),
    )


def top(
    candidates: set[int],
    per_token: list[list[tuple[int, set[int] | frozenset[int]]]],
    phrase: list[tuple[int, set[int] | frozenset[int]]],
    tie_breakers: tuple[set[int] | frozenset[int], ...],
    limit: int,
    first: Callable[[set[int], int], list[int]],
) -> list[tuple[tuple[int, ...], int]]:
    """The best ``limit`` candidates with their scores, best first.

    The candidates are split into groups of equal score with set
    operations, best-first: a group is refined by the next query token
    only while it may still hold one of the best ``limit``, so a search
    with many matches costs a few set operations, not one per match. A
    group's upper bound assumes the best match kind for the tokens not
    yet applied; a fully refined group is emitted when no other group
    can beat it (groups with the same score are merged first). ``first(group,
    count)`` picks the ``count`` members of a group that come first in name order.
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
                for level, part in split(whole, members)
            ]
        for key, part in parts:
            need = limit - len(chosen)
            if need <= 0:
                break
            chosen.extend((key, aid) for aid in first(part, need))
    return chosen


def split(group: set[int], members: set[int] | frozenset[int]) -> list[tuple[int, set[int]]]:
    """``group`` split into its ``members`` (level 1) and the others (level 0)."""
    if not members:
        return [(0, group)]
    inside = group & members
    if not inside:
        return [(0, group)]
    if len(inside) == len(group):
        return [(1, group)]
    return [(1, inside), (0, group - inside)]
