"""Posting lists of the search index: ``key -> authority number(s)`` (sans-IO)."""

from __future__ import annotations

from collections.abc import Iterable

# A posting is one authority number, or a set of them once a key has several:
# most keys (ids, rare words, full names) name one authority, and a one-element
# set costs ten times the memory of an int.
Posting = int | set[int]
Postings = dict[str, Posting]


def add(index: Postings, key: str, aid: int) -> bool:
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


def discard(index: Postings, key: str, aid: int) -> bool:
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


def get(index: Postings, key: str | None) -> set[int] | frozenset[int]:
    """The authorities under ``key`` (empty when none)."""
    bucket = index.get(key) if key is not None else None
    if bucket is None:
        return EMPTY
    if isinstance(bucket, int):
        return frozenset((bucket,))
    return bucket


def union(sets: Iterable[set[int] | frozenset[int]]) -> set[int]:
    result: set[int] = set()
    result.update(*sets)
    return result


EMPTY: frozenset[int] = frozenset()
