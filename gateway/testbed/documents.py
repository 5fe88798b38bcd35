"""The running example's documents: a diploma and good-standing check (Norway asks Portugal).

Builders of a Request, its Acceptance, Answer and Closure, used by the demo,
the benchmark and the tests. Document ids are ``<exchange>-1`` .. ``-4``.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from gateway.core.admission import owns_id, scoped_id
from gateway.core.docparts import PersonConcerned, Question, Reply
from gateway.core.documents import Acceptance, Answer, Closure, Header, Request
from gateway.core.docxml import LocalizedText

CATALOGUE_VERSION = "2026.1"
#: Is the diploma authentic? Is she legally established (in good standing)? Any sanctions?
DOCTOR_QUESTIONS = ("PQD-DOCTOR-001", "PQD-DOCTOR-009", "PQD-DOCTOR-010")
DOCTOR_ANSWERS = (("PQD-DOCTOR-001", "YES"), ("PQD-DOCTOR-009", "YES"), ("PQD-DOCTOR-010", "NONE"))


def owned_id(authority_id: str, identifier: str) -> str:
    """``identifier`` if ``authority_id`` owns it, else scoped to it (ids are scoped per authority)."""
    return identifier if owns_id(authority_id, identifier) else scoped_id(authority_id, identifier)


def doctor_request(
    exchange_id: str, requester: str, responder: str, created: datetime, *, free_text: bool = True
) -> Request:
    """A Request: is this Portuguese doctor's diploma authentic, and is she in good standing?

    ``exchange_id`` is scoped to ``requester`` unless it already is
    (``IMI-1`` becomes ``NO-HELSEDIR:IMI-1``); read the result's header.
    """
    exchange_id = owned_id(requester, exchange_id)
    note = LocalizedText(
        "Ho har søkt stilling som lege ved sjukehuset vårt. Vi ber om stadfesting av at "
        "vitnemålet er ekte, og at ho har rett til å praktisere.",
        "nn",
    )
    questions = tuple(
        Question(code, note if (free_text and i == 0) else None)
        for i, code in enumerate(DOCTOR_QUESTIONS)
    )
    return Request(
        header=Header(
            exchange_id, f"{exchange_id}-1", requester, responder, created, CATALOGUE_VERSION
        ),
        legislation_area="PQD",
        question_set="PQD-DOCTOR",
        sender_language="nn",
        requested_reply_date=(created + timedelta(days=14)).date(),
        questions=questions,
        person=PersonConcerned(
            given_names="Maria Helena",
            family_name="Sousa Carvalho",
            date_of_birth=date(1988, 5, 4),
            nationalities=("PT",),
        ),
    )


def doctor_acceptance(request: Request, created: datetime) -> Acceptance:
    h = request.header
    return Acceptance(
        header=Header(
            h.exchange_id,
            owned_id(h.receiver, f"{h.exchange_id}-2"),
            h.receiver,
            h.sender,
            created,
            CATALOGUE_VERSION,
            h.document_id,
        ),
        agreed_reply_date=request.requested_reply_date,
    )


def doctor_answer(request: Request, created: datetime) -> Answer:
    h = request.header
    return Answer(
        header=Header(
            h.exchange_id,
            owned_id(h.receiver, f"{h.exchange_id}-3"),
            h.receiver,
            h.sender,
            created,
            CATALOGUE_VERSION,
            h.document_id,
        ),
        replies=tuple(Reply(q, (o,)) for q, o in DOCTOR_ANSWERS),
    )


def doctor_closure(request: Request, answer_id: str, created: datetime) -> Closure:
    h = request.header
    return Closure(
        header=Header(
            h.exchange_id,
            f"{h.exchange_id}-4",
            h.sender,
            h.receiver,
            created,
            CATALOGUE_VERSION,
            answer_id,
        ),
    )
