"""The JSON form of a search result: the CLI's ``--json`` output and the search API's JSON (sans-IO)."""

from __future__ import annotations

from typing import Any, Protocol

from gateway.core.directory.jsonform import entry_to_json
from gateway.core.search.query import SearchHit, SearchResult

__all__ = ["ProfessionLabels", "search_hit_json", "search_result_json"]


class ProfessionLabels(Protocol):
    """What names a profession in a language (the search index does)."""

    def profession_label(self, code: str, lang: str | None) -> str: ...


def search_hit_json(hit: SearchHit, labels: ProfessionLabels, lang: str | None) -> dict[str, Any]:
    """A search hit as the JSON the CLI and the HTTP API print."""
    authority = entry_to_json(hit.entry, certificates=False)
    return {
        "rank": hit.rank,
        "id": authority.pop("id"),
        "country": hit.node_id,
        "name": hit.name,
        "name_lang": hit.name_lang,
        **authority,
        "matched": {
            "name": hit.name_matched,
            "professions": [
                {"code": p, "label": labels.profession_label(p, lang)} for p in hit.professions
            ],
        },
        "score": [int(s) for s in hit.score],
    }


def search_result_json(result: SearchResult, labels: ProfessionLabels) -> dict[str, Any]:
    """A search result as JSON (the CLI's --json output and the HTTP API's JSON form)."""
    query = result.query
    return {
        "query": {
            "q": query.text,
            "country": query.country,
            "area": query.area,
            "region": query.region,
            "lang": query.lang,
            "limit": query.limit,
        },
        "total": result.total,
        "returned": len(result.hits),
        "authorities": [search_hit_json(h, labels, query.lang) for h in result.hits],
    }
