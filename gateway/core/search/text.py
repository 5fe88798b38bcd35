"""Text folding and tokens for the authority search (sans-IO).

Text is case-folded, NFKD-decomposed, stripped of combining marks, and letters
that do not decompose are mapped to ASCII; tokens are runs of letters and
digits of the folded text.
"""

from __future__ import annotations

import re
import unicodedata

#: A query token shorter than this matches whole tokens only, never as a prefix.
MIN_PREFIX = 2


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
