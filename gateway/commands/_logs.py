"""The running node's log output: text for people, JSON Lines for log shippers.

``--log-format json`` writes one JSON object a line::

    {"time": "2025-01-31T09:12:03.418Z", "level": "info",
     "logger": "gateway.node.listeners", "message": "peer API listening on 0.0.0.0:9443 ...",
     "name": "peer API", "address": "0.0.0.0:9443", "port": 9443, "limit": 1000}

``time`` is ISO 8601 in UTC, ``level`` one of debug, info, warn, error,
critical; ``logger`` the event's namespace; ``message`` the rendered text;
then the event's own fields (the names its format uses and any others it
was given), made JSON-safe. Twisted's bookkeeping (``log_format``,
``log_logger``, ``log_source``...) is left out; a failure adds ``error``
(its type and message) and ``traceback``.

Both formats demote Twisted's per-connection chatter ("Starting factory",
"Stopping factory") to debug. The gateway's own events never carry personal
data, document bodies or keys (a test checks a node's whole log).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import IO, Any

from constantly import NamedConstant
from twisted.logger import (
    FilteringLogObserver,
    ILogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    formatEvent,
    textFileLogObserver,
)
from zope.interface import provider

#: Format strings of Twisted events that say nothing an operator needs at info.
_NOISE_PREFIXES = ("Starting factory", "Stopping factory", "Starting protocol", "Stopping protocol")

#: Keys of Twisted's legacy (``twisted.python.log``) events, not fields of the event.
_LEGACY_KEYS = frozenset(
    {"message", "format", "isError", "system", "time", "why", "failure", "printed"}
)


def is_noise(event: Mapping[str, Any]) -> bool:
    """True for Twisted's per-connection factory and protocol start/stop events."""
    fmt = event.get("log_format")
    return isinstance(fmt, str) and fmt.startswith(_NOISE_PREFIXES)


def _demote_noise(observer: ILogObserver) -> ILogObserver:
    @provider(ILogObserver)
    def demote(event: dict[str, Any]) -> None:
        if is_noise(event) and event.get("log_level", LogLevel.debug) > LogLevel.debug:
            event = {**event, "log_level": LogLevel.debug}
        observer(event)

    return demote


def _json_safe(value: Any, depth: int = 0) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if depth < 4 and isinstance(value, list | tuple | set | frozenset):
        return [_json_safe(v, depth + 1) for v in value]
    if depth < 4 and isinstance(value, Mapping):
        return {str(k): _json_safe(v, depth + 1) for k, v in value.items()}
    if isinstance(value, NamedConstant):
        return value.name
    if isinstance(value, BaseException):
        return f"{type(value).__name__}: {value}"
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"  # never a body
    return str(value)


def _iso(timestamp: Any) -> str:
    when = datetime.fromtimestamp(float(timestamp), UTC)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event_as_json(event: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON object for one twisted.logger event (see the module docstring)."""
    level = event.get("log_level")
    when = event.get("log_time")
    out: dict[str, Any] = {
        "time": _iso(datetime.now(UTC).timestamp() if when is None else when),
        "level": level.name if isinstance(level, NamedConstant) else "info",
        "logger": str(event.get("log_namespace") or "-"),
        "message": formatEvent(dict(event)) or "",
    }
    system = event.get("log_system")
    if isinstance(system, str) and system != "-":
        out["system"] = system
    failure = event.get("log_failure")
    if failure is not None:
        out["error"] = f"{failure.type.__name__}: {failure.getErrorMessage()}"
        out["traceback"] = failure.getTraceback()
    legacy = "log_legacy" in event or "isError" in event
    for key, value in event.items():
        if key.startswith("log_") or key in out or (legacy and key in _LEGACY_KEYS):
            continue
        out[key] = _json_safe(value)
    return out


def json_lines_observer(stream: IO[str]) -> ILogObserver:
    """Writes each event as one JSON object and a newline, flushed at once."""

    @provider(ILogObserver)
    def observe(event: dict[str, Any]) -> None:
        stream.write(json.dumps(event_as_json(event), ensure_ascii=False) + "\n")
        stream.flush()

    return observe


def log_observer(fmt: str, level: str, stream: IO[str]) -> ILogObserver:
    """A twisted.logger observer writing ``fmt`` ("text" or "json") at ``level`` and above."""
    base: ILogObserver = (
        json_lines_observer(stream) if fmt == "json" else textFileLogObserver(stream)
    )
    predicate = LogLevelFilterPredicate(defaultLogLevel=LogLevel.levelWithName(level))
    return _demote_noise(FilteringLogObserver(base, [predicate]))


__all__ = ["event_as_json", "is_noise", "json_lines_observer", "log_observer"]
