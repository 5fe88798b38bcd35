"""The ``none`` engine, the default: no machine translation at all.

Deliveries then carry only the original free text. No text leaves the node.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred, succeed
from zope.interface import implementer

from .base import ITranslator, Translation


@implementer(ITranslator)
class NoneTranslator:
    """Always answers "no translation" (None), immediately."""

    engine = "none"

    def translate(self, text: str, source: str, target: str) -> Deferred[Translation | None]:
        return succeed(None)

    def close(self) -> Deferred[None]:
        return succeed(None)
