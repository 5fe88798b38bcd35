"""The console's interface languages: message catalogues in ``i18n/<lang>.toml``.

A catalogue is TOML tables of messages (``[nav] dashboard = "Dashboard"``),
looked up by dotted key (``nav.dashboard``) with ``str.format`` fields. English
is complete (a test checks every other catalogue has the same keys); a key a
catalogue lacks falls back to English. Adding a language is adding a file and
its code to :data:`LANGUAGES`.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from functools import cache
from importlib.resources import files
from typing import Any

#: Interface languages, the first the default.
LANGUAGES = ("en", "nb")
#: Each language's name in itself (for the language menu).
LANGUAGE_NAMES = {"en": "English", "nb": "Norsk bokmål"}


def _flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in table.items():
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = str(value)
    return out


@cache
def catalogue(lang: str) -> Mapping[str, str]:
    """The messages of ``lang`` (dotted keys)."""
    data = files("gateway.console").joinpath("i18n", f"{lang}.toml").read_text(encoding="utf-8")
    return _flatten(tomllib.loads(data))


class Translator:
    """Messages of one language, falling back to English, then to the key itself."""

    def __init__(self, lang: str) -> None:
        self.lang = lang if lang in LANGUAGES else LANGUAGES[0]
        self._messages = catalogue(self.lang)
        self._fallback = catalogue(LANGUAGES[0])

    def __call__(self, key: str, **fields: Any) -> str:
        text = self._messages.get(key) or self._fallback.get(key) or key
        return text.format(**fields) if fields else text


def negotiate(accept_language: str | None, preferred: str | None = None) -> str:
    """The interface language: the user's setting, else the best of Accept-Language, else English."""
    if preferred in LANGUAGES:
        return str(preferred)
    choices: list[tuple[float, str]] = []
    for part in (accept_language or "").split(","):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        base = tag.strip().lower().split("-")[0]
        if base in ("no", "nn"):  # Norwegian without a variant, or Nynorsk: Bokmål is closest
            base = "nb"
        if base in LANGUAGES:
            choices.append((quality, base))
    choices.sort(key=lambda c: -c[0])
    return choices[0][1] if choices and choices[0][0] > 0 else LANGUAGES[0]


__all__ = ["LANGUAGES", "LANGUAGE_NAMES", "Translator", "catalogue", "negotiate"]
