"""Preparing a document for signing: its ``Created`` time (the node's replay window).

A node accepts a document only if its ``Header/Created`` is within
``replay_window_seconds`` (300 s by default) of the node's clock
(CREATION_TIME_OUT_OF_WINDOW otherwise), so a document is dated when it is
signed: :func:`with_created` sets the time, then the document is signed.
``imi-gateway sign --now`` does the same.
"""

from __future__ import annotations

from datetime import UTC, datetime

from lxml import etree

from gateway.core.docxml import format_datetime
from gateway.core.errors import InvalidInput
from gateway.core.ns import DOC_NS

_CREATED = f"{{{DOC_NS}}}Header/{{{DOC_NS}}}Created"


class CreatedMissing(InvalidInput):
    """The document has no ``Header/Created`` element to date (it is not a protocol document)."""

    code = "DOCUMENT_CREATED_MISSING"


def with_created(root: etree._Element, when: datetime | None = None) -> etree._Element:
    """``root`` with its ``Header/Created`` set to ``when`` (default: now, UTC); changed in place.

    Raises CreatedMissing when the document has no such element.
    """
    created = root.find(_CREATED)
    if created is None:
        raise CreatedMissing("the document has no Header/Created element")
    moment = (when or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    created.text = format_datetime(moment)
    return root
