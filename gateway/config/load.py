"""Reading ``gateway.toml``: the strict, annotation-driven loader, and the settings it documents.

:func:`load_config` reads the file with :mod:`tomllib`; :func:`parse_config`
validates text. The loader builds the dataclasses of
:mod:`gateway.config.model` from their type annotations and refuses, with a
stable code and the key named, an unknown key (with a suggestion when it
looks like a typo), a value of the wrong TOML type, a value out of range or
not among the allowed choices, and a missing required key.
:func:`iter_settings` walks the same annotations to list every setting (a
test keeps docs/configuration.md in step with it).

Import these names from :mod:`gateway.config`, which re-exports them.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import tomllib
import types
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.config.model import (
    CONFIG_FILE,
    ConfigMissingKey,
    ConfigNotFound,
    ConfigSyntaxError,
    ConfigUnknownKey,
    ConfigValueInvalid,
    ConfigWrongType,
    NodeConfig,
)


def load_config(node_dir: str | Path) -> NodeConfig:
    """Read and validate ``gateway.toml`` in ``node_dir``."""
    node_dir = Path(node_dir).absolute()
    path = node_dir / CONFIG_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigNotFound(
            f"{path}: no configuration file (is {node_dir} a node directory? "
            "create one with: imi-gateway init)"
        ) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigSyntaxError(f"{path}: not UTF-8 ({exc.reason} at byte {exc.start})") from None
    return parse_config(text, node_dir, source=path)


def parse_config(
    text: str, node_dir: str | Path, *, source: str | Path | None = None
) -> NodeConfig:
    """Validate configuration ``text`` for the node directory ``node_dir``."""
    node_dir = Path(node_dir).absolute()
    source_path = Path(source) if source is not None else node_dir / CONFIG_FILE
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigSyntaxError(f"{source_path}: not valid TOML: {exc}") from None
    loader = _Loader(str(source_path))
    config: NodeConfig = loader.build(
        NodeConfig, raw, "", extra={"node_dir": node_dir, "source": source_path}
    )
    return config


_TYPE_NAMES: dict[type, str] = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "a boolean (true or false)",
}


def _toml_type_name(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return "a date/time"


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return types.MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


class _Loader:
    """Builds dataclasses from parsed TOML, naming the key of every problem."""

    def __init__(self, source: str) -> None:
        self.source = source

    def build(
        self, cls: type[Any], raw: Any, path: str, extra: Mapping[str, Any] | None = None
    ) -> Any:
        table = f"[{path}]" if path else "the top level"
        if not isinstance(raw, dict):
            raise ConfigWrongType(
                f"{self.source}: {path}: expected a table, got {_toml_type_name(raw)}"
            )
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls) if f.metadata.get("toml", True)}
        for key in raw:
            if key not in fields:
                where = f"{path}.{key}" if path else key
                close = difflib.get_close_matches(key, list(fields), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ConfigUnknownKey(
                    f"{self.source}: unknown key {where!r}{hint}; known keys in {table}: "
                    f"{', '.join(fields)}"
                )
        kwargs: dict[str, Any] = dict(extra or {})
        for name, f in fields.items():
            where = f"{path}.{name}" if path else name
            if name not in raw:
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                    raise ConfigMissingKey(
                        f"{self.source}: required key {where!r} is missing in {table}"
                    )
                continue
            kwargs[name] = self.convert(raw[name], hints[name], f.metadata, where)
        try:
            return cls(**kwargs)
        except ConfigValueInvalid as exc:
            prefix = f"{path}." if path else ""
            raise ConfigValueInvalid(f"{self.source}: {prefix}{exc.message}") from None

    def convert(self, value: Any, tp: Any, meta: Mapping[str, Any], where: str) -> Any:
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if origin in (types.UnionType, typing.Union):
            # TOML has no null: an optional setting is simply absent.
            (tp,) = [a for a in args if a is not type(None)]
            return self.convert(value, tp, meta, where)
        if dataclasses.is_dataclass(tp):
            return self.build(typing.cast(type, tp), value, where)
        if origin is tuple:
            if not isinstance(value, list):
                self._wrong(value, "an array", where)
            item_type = args[0]
            return tuple(
                self.convert(item, item_type, {}, f"{where}[{i}]") for i, item in enumerate(value)
            )
        if origin is Mapping:
            if not isinstance(value, dict):
                self._wrong(value, "a table", where)
            item_type = args[1]
            if item_type is Any:
                return _freeze(value)
            return types.MappingProxyType(
                {k: self.convert(v, item_type, {}, f"{where}.{k}") for k, v in value.items()}
            )
        if tp is bool:
            if not isinstance(value, bool):
                self._wrong(value, _TYPE_NAMES[bool], where)
        elif tp is int:
            if isinstance(value, bool) or not isinstance(value, int):
                self._wrong(value, _TYPE_NAMES[int], where)
        elif tp is float:
            if isinstance(value, bool) or not isinstance(value, int | float):
                self._wrong(value, _TYPE_NAMES[float], where)
            if not math.isfinite(value):
                raise ConfigValueInvalid(f"{self.source}: {where}: must be a finite number")
            value = float(value)
        elif tp is str:
            if not isinstance(value, str):
                self._wrong(value, _TYPE_NAMES[str], where)
        else:  # pragma: no cover - a programming error in a section dataclass
            raise TypeError(f"unsupported configuration type {tp!r} for {where}")
        self._check_range(value, meta, where)
        return value

    def _wrong(self, value: Any, expected: str, where: str) -> typing.NoReturn:
        raise ConfigWrongType(
            f"{self.source}: {where}: expected {expected}, got {_toml_type_name(value)}"
        )

    def _check_range(self, value: Any, meta: Mapping[str, Any], where: str) -> None:
        minimum, maximum = meta.get("minimum"), meta.get("maximum")
        choices = meta.get("choices")
        if minimum is not None and value < minimum:
            raise ConfigValueInvalid(f"{self.source}: {where}: must be at least {minimum}")
        if maximum is not None and value > maximum:
            raise ConfigValueInvalid(f"{self.source}: {where}: must be at most {maximum}")
        if choices is not None and value not in choices:
            raise ConfigValueInvalid(
                f"{self.source}: {where}: must be one of {', '.join(map(repr, choices))}"
            )


# --- introspection (documentation) --------------------------------------------


@dataclass(frozen=True)
class SettingInfo:
    """One documented setting: its dotted name, TOML type and default."""

    name: str
    type_name: str
    default: Any
    required: bool


def _type_label(tp: Any) -> str:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (types.UnionType, typing.Union):
        (inner,) = [a for a in args if a is not type(None)]
        return _type_label(inner)
    if origin is tuple:
        return f"array of {_type_label(args[0])}s"
    if origin is Mapping:
        return "table"
    return {str: "string", int: "integer", float: "number", bool: "boolean"}.get(tp, "table")


def iter_settings(cls: type[Any] = NodeConfig, prefix: str = "") -> Iterator[SettingInfo]:
    """Every setting of the configuration, as documented in docs/configuration.md.

    Names are dotted paths: ``api.port``, ``peers[].url`` for arrays of tables,
    ``retention.areas.<AREA>.months_after_closure`` for tables of tables.
    """
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if not f.metadata.get("toml", True):
            continue
        tp = hints[f.name]
        name = f"{prefix}{f.name}"
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if dataclasses.is_dataclass(tp):
            yield from iter_settings(typing.cast(type, tp), f"{name}.")
        elif origin is tuple and dataclasses.is_dataclass(args[0]):
            yield from iter_settings(typing.cast(type, args[0]), f"{name}[].")
        elif origin is Mapping and dataclasses.is_dataclass(args[1]):
            yield from iter_settings(typing.cast(type, args[1]), f"{name}.<AREA>.")
        else:
            if f.default is not dataclasses.MISSING:
                default: Any = f.default
            elif f.default_factory is not dataclasses.MISSING:
                default = f.default_factory()
            else:
                default = dataclasses.MISSING
            yield SettingInfo(name, _type_label(tp), default, default is dataclasses.MISSING)
