"""The coordinators registered at this node: ``NODE_DIR/coordinators.json``.

``imi-gateway coordinators add|remove`` edit the file (atomic replace under
an exclusive lock, like the key store); the running node reads it afresh
whenever it changed (a stat per read), so a registration applies to the next
request without a restart. The file holds metadata only: ids, names,
scopes. The coordinators' certificates live in the key store (``national/``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import MappingProxyType

from gateway import keystore
from gateway.core.coordinators import Coordinator, CoordinatorInvalid, Scope
from gateway.core.errors import ConfigurationError, Conflict, NotFound

__all__ = [
    "COORDINATORS_FILE",
    "CoordinatorExists",
    "CoordinatorNotRegistered",
    "CoordinatorRegistry",
    "CoordinatorsFileInvalid",
]

COORDINATORS_FILE = "coordinators.json"
_LOCK_FILE = ".coordinators.lock"


class CoordinatorExists(Conflict):
    """A coordinator with this id is already registered at this node."""

    code = "COORDINATOR_EXISTS"


class CoordinatorNotRegistered(NotFound):
    """No coordinator with this id is registered at this node."""

    code = "COORDINATOR_NOT_REGISTERED"


class CoordinatorsFileInvalid(ConfigurationError):
    """coordinators.json in the node directory is not a valid list of coordinators."""

    code = "COORDINATORS_FILE_INVALID"


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def _to_json(coordinators: Mapping[str, Coordinator]) -> bytes:
    items = [
        {"id": c.id, "name": c.name, "scope": c.scope.value, "members": list(c.members)}
        for c in sorted(coordinators.values(), key=lambda c: c.id)
    ]
    return (json.dumps({"coordinators": items}, indent=2, ensure_ascii=False) + "\n").encode()


def _from_json(data: bytes, path: Path) -> dict[str, Coordinator]:
    try:
        items = json.loads(data)["coordinators"]
        found = {}
        for item in items:
            coordinator = Coordinator(
                id=str(item["id"]),
                name=str(item["name"]),
                scope=Scope(item["scope"]),
                members=tuple(str(m) for m in item.get("members", ())),
            )
            found[coordinator.id] = coordinator
    except (ValueError, KeyError, TypeError, CoordinatorInvalid) as exc:
        raise CoordinatorsFileInvalid(f"{path}: {exc.__class__.__name__}") from None
    return found


class CoordinatorRegistry:
    """The node's coordinators, read from the node directory (cached while unchanged)."""

    def __init__(self, node_dir: str | Path) -> None:
        self.root = Path(node_dir)
        self.path = self.root / COORDINATORS_FILE
        self._cached: tuple[tuple[int, int, int] | None, Mapping[str, Coordinator]] | None = None

    def all(self) -> Mapping[str, Coordinator]:
        """Every registered coordinator, by id."""
        signature = _signature(self.path)
        cached = self._cached
        if cached is not None and cached[0] == signature:
            return cached[1]
        found = {} if signature is None else _from_json(self.path.read_bytes(), self.path)
        view: Mapping[str, Coordinator] = MappingProxyType(found)
        self._cached = (signature, view)
        return view

    def get(self, coordinator_id: str) -> Coordinator | None:
        return self.all().get(coordinator_id)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        keystore.load_trust(self.root)  # refuses what is not a node directory
        fd = os.open(self.root / _LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def add(self, coordinator: Coordinator) -> None:
        """Register ``coordinator`` (CoordinatorExists if its id is taken)."""
        with self._locked():
            current = dict(self.all())
            if coordinator.id in current:
                raise CoordinatorExists(f"coordinator {coordinator.id} is already registered")
            current[coordinator.id] = coordinator
            keystore.atomic_write(self.path, _to_json(current), 0o644)

    def remove(self, coordinator_id: str) -> Coordinator:
        """Unregister a coordinator; returns what it was."""
        with self._locked():
            current = dict(self.all())
            removed = current.pop(coordinator_id, None)
            if removed is None:
                raise CoordinatorNotRegistered(f"no coordinator {coordinator_id} is registered")
            keystore.atomic_write(self.path, _to_json(current), 0o644)
        return removed
