"""Live search: the authority search index over the directory files as they change."""

from __future__ import annotations

from collections.abc import Mapping

from gateway.core.catalogue import Catalogue
from gateway.core.directory.document import AuthorityEntry
from gateway.core.search import SearchIndex, SearchQuery, SearchResult
from gateway.storage.directory_files import DirectoryStore

__all__ = ["LiveSearch"]


class LiveSearch:
    """A :class:`~gateway.core.search.SearchIndex` that follows the directory files.

    Before each search the state file and the peers' cache files are checked
    (one ``stat`` each); a node whose file changed is re-indexed
    incrementally (only authorities that changed). Use from one thread.
    """

    def __init__(self, store: DirectoryStore, *, catalogue: Catalogue | None = None) -> None:
        self._store = store
        self._index = SearchIndex(catalogue if catalogue is not None else store.catalogue)
        self._signatures: dict[str, tuple[int, int, int] | None] = {}

    def sync(self) -> SearchIndex:
        """The index, brought up to date with the files."""
        signatures = self._store.file_signatures()
        for node_id in [n for n in self._signatures if n not in signatures]:
            self._index.replace_node(node_id, ())
            del self._signatures[node_id]
        for node_id, signature in signatures.items():
            if node_id in self._signatures and self._signatures[node_id] == signature:
                continue
            entries = self._entries(node_id)
            self._index.replace_node(node_id, entries.values())
            self._signatures[node_id] = signature
        return self._index

    def _entries(self, node_id: str) -> Mapping[str, AuthorityEntry]:
        if node_id == self._store.node_id:
            return self._store.published().entries
        cached = self._store.cached(node_id)
        return cached.entries if cached is not None else {}

    def search(self, query: SearchQuery) -> SearchResult:
        return self.sync().search(query)

    def profession_label(self, code: str, lang: str | None) -> str:
        return self._index.profession_label(code, lang)
