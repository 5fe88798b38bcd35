"""Performance figures in the terms of the Single Market Scoreboard (sans-IO).

The figures describe how RESPONDING authorities handle the requests sent to
them, per node, authority and legislation area, over a period ``[start, end)``:

* **share of requests accepted within 7 days**: of the requests counted for
  acceptance, those whose Acceptance was created at most 7 days after the
  Request (the Scoreboard's fixed week, not the node's configurable
  acceptance deadline);
* **average days to answer**: over the answered requests, the days from the
  Request to the first Answer;
* **share answered by the agreed date**: of the requests with an agreed reply
  date whose date has passed or that were answered, those answered before the
  end of the agreed day;
* **escalations** and **disputes**: the Escalation and Dispute documents of
  the period's requests.

Which exchanges count: those whose REQUEST was created in the period (the
signed ``Created`` time of the Request, the same on both nodes). Every time
used is a signed document's creation time, never a node's receive time, so
two nodes that hold the same documents compute the same figures.

The figures stand "as of" an instant ``as_of`` (normally now): a milestone or
document created after it does not count yet, and a request counts for the
acceptance share once it was accepted or 7 days have passed (a request 3 days
old and not accepted yet is not a failure yet). A request withdrawn before it
was accepted does not count for the acceptance share (the responder had no
chance to). Figures of a period therefore stop changing once its last request
is decided; until then the same ``as_of`` gives the same figures, whoever asks.

:func:`compute` turns :class:`ExchangeFacts` (read by ``gateway.storage.kpi``,
no personal data) into a :class:`KpiReport`; :func:`report_json` is its JSON
form (the CLI's ``--json``, the console). :func:`visible` decides which rows
a caller of the API may see.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from gateway.core.coordinators import Coordinator
from gateway.core.errors import AccessDenied, InvalidInput

__all__ = [
    "ACCEPTANCE_TARGET",
    "ExchangeFacts",
    "Figures",
    "KpiOutOfScope",
    "KpiPeriodInvalid",
    "KpiReport",
    "Period",
    "compute",
    "parse_instant",
    "report_json",
    "visible",
]

#: The Scoreboard's acceptance target: a request is accepted within a week.
ACCEPTANCE_TARGET = timedelta(days=7)
DAY_SECONDS = 86400.0
#: The state of a request its requester withdrew (``gateway.core.lifecycle.State.WITHDRAWN``).
WITHDRAWN = "withdrawn"


class KpiPeriodInvalid(InvalidInput):
    """The period of a performance-figure query is malformed: ``from`` and ``to`` must be
    ISO dates or times with ``from`` before ``to``."""

    code = "KPI_PERIOD_INVALID"


class KpiOutOfScope(AccessDenied):
    """The caller asked for the performance figures of an authority it may not see: a
    national system sees its own authority's, a coordinator those of the authorities in its
    scope."""

    code = "KPI_OUT_OF_SCOPE"


def parse_instant(text: str, name: str) -> datetime:
    """An ISO date (its midnight, UTC) or an ISO time with offset (a bare time is UTC)."""
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(0), UTC)
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise KpiPeriodInvalid(f"{name} must be an ISO date or date-time") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


@dataclass(frozen=True)
class Period:
    """The half-open period ``[start, end)`` in which the counted requests were created."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise KpiPeriodInvalid("from and to must be aware times")
        if not self.start < self.end:
            raise KpiPeriodInvalid("from must be before to")

    @classmethod
    def parse(cls, start: str, end: str) -> Period:
        return cls(parse_instant(start, "from"), parse_instant(end, "to"))

    @classmethod
    def ending(cls, end: datetime, days: int) -> Period:
        """The rolling window of ``days`` days up to ``end``."""
        return cls(end - timedelta(days=days), end)


@dataclass(frozen=True)
class ExchangeFacts:
    """What the figures need of one exchange: signed times and counts, no personal data."""

    exchange_id: str
    responder_node: str
    responder_authority: str
    area: str
    state: str
    requested_at: datetime  # the Request's signed creation time
    accepted_at: datetime | None = None
    answered_at: datetime | None = None
    reply_due_at: datetime | None = None  # the end of the reply date (agreed or requested)
    reply_date_agreed: bool = False
    escalations: int = 0  # Escalation documents created by as_of
    disputes: int = 0  # Dispute documents created by as_of


@dataclass(frozen=True)
class Figures:
    """The figures of one group (node, authority, area; ``None``: all), with their counts."""

    node: str | None
    authority: str | None
    area: str | None
    requests: int = 0
    #: Requests counted for the acceptance share (accepted, or 7 days old, not withdrawn).
    acceptance_counted: int = 0
    accepted_within_7_days: int = 0
    answered: int = 0
    answer_days_total: float = 0.0
    #: Requests counted for the agreed-date share (agreed date passed, or answered).
    agreed_counted: int = 0
    answered_by_agreed_date: int = 0
    escalations: int = 0
    disputes: int = 0

    @property
    def accepted_within_7_days_share(self) -> float | None:
        return _share(self.accepted_within_7_days, self.acceptance_counted)

    @property
    def average_days_to_answer(self) -> float | None:
        return None if not self.answered else round(self.answer_days_total / self.answered, 4)

    @property
    def answered_by_agreed_date_share(self) -> float | None:
        return _share(self.answered_by_agreed_date, self.agreed_counted)

    def plus(self, other: Figures) -> Figures:
        """The figures of both groups' requests together (labels kept where they agree)."""
        return Figures(
            node=self.node if self.node == other.node else None,
            authority=self.authority if self.authority == other.authority else None,
            area=self.area if self.area == other.area else None,
            requests=self.requests + other.requests,
            acceptance_counted=self.acceptance_counted + other.acceptance_counted,
            accepted_within_7_days=self.accepted_within_7_days + other.accepted_within_7_days,
            answered=self.answered + other.answered,
            answer_days_total=self.answer_days_total + other.answer_days_total,
            agreed_counted=self.agreed_counted + other.agreed_counted,
            answered_by_agreed_date=self.answered_by_agreed_date + other.answered_by_agreed_date,
            escalations=self.escalations + other.escalations,
            disputes=self.disputes + other.disputes,
        )


def _share(part: int, whole: int) -> float | None:
    return None if not whole else round(part / whole, 4)


@dataclass(frozen=True)
class KpiReport:
    """The figures of a period as of an instant: one row per group, and their total."""

    period: Period
    as_of: datetime
    rows: tuple[Figures, ...] = ()
    total: Figures = field(default_factory=lambda: Figures(None, None, None))

    def only(self, keep: Callable[[Figures], bool]) -> KpiReport:
        """The report with the rows ``keep`` accepts, and their total."""
        rows = tuple(r for r in self.rows if keep(r))
        return replace(self, rows=rows, total=_total(rows))


def _total(rows: Iterable[Figures]) -> Figures:
    total = Figures(None, None, None)
    for row in rows:
        total = total.plus(replace(row, node=None, authority=None, area=None))
    return total


def _figures_of(fact: ExchangeFacts, as_of: datetime) -> Figures:
    accepted = fact.accepted_at if fact.accepted_at and fact.accepted_at <= as_of else None
    answered = fact.answered_at if fact.answered_at and fact.answered_at <= as_of else None
    week_over = as_of >= fact.requested_at + ACCEPTANCE_TARGET
    withdrawn_unaccepted = fact.state == WITHDRAWN and accepted is None
    counted_for_acceptance = (accepted is not None or week_over) and not withdrawn_unaccepted
    within = accepted is not None and accepted - fact.requested_at <= ACCEPTANCE_TARGET
    due = fact.reply_due_at if fact.reply_date_agreed and accepted is not None else None
    counted_for_agreed = due is not None and (answered is not None or as_of >= due)
    on_time = due is not None and answered is not None and answered < due
    days = (answered - fact.requested_at).total_seconds() / DAY_SECONDS if answered else 0.0
    return Figures(
        fact.responder_node,
        fact.responder_authority,
        fact.area,
        requests=1,
        acceptance_counted=int(counted_for_acceptance),
        accepted_within_7_days=int(counted_for_acceptance and within),
        answered=int(answered is not None),
        answer_days_total=days,
        agreed_counted=int(counted_for_agreed),
        answered_by_agreed_date=int(on_time),
        escalations=fact.escalations,
        disputes=fact.disputes,
    )


def compute(facts: Iterable[ExchangeFacts], period: Period, as_of: datetime) -> KpiReport:
    """The figures of the requests created in ``period``, as of ``as_of``.

    ``facts`` may hold exchanges outside the period or created after
    ``as_of``; they are left out. Rows are sorted by node, authority, area.
    """
    groups: dict[tuple[str, str, str], Figures] = {}
    for fact in facts:
        if not period.start <= fact.requested_at < period.end or fact.requested_at > as_of:
            continue
        key = (fact.responder_node, fact.responder_authority, fact.area)
        one = _figures_of(fact, as_of)
        groups[key] = groups[key].plus(one) if key in groups else one
    rows = tuple(groups[k] for k in sorted(groups))
    return KpiReport(period, as_of, rows, _total(rows))


def visible(
    report: KpiReport,
    *,
    caller: str,
    node_id: str,
    coordinator: Coordinator | None,
    region_of: Callable[[str], str | None],
    authority: str | None = None,
) -> KpiReport:
    """The rows of ``report`` an API caller may see: its own authority's (a national system),
    or those of the authorities of this node in its scope (a coordinator).

    Whole rows are kept or left out, so a row's figures are the same whoever
    sees it. Asking for an ``authority`` outside what the caller may see is
    refused (KPI_OUT_OF_SCOPE).
    """

    def allowed(name: str, node: str | None) -> bool:
        if coordinator is None:
            return name == caller
        return node == node_id and coordinator.covers(name, region_of(name))

    if authority is not None and not allowed(authority, node_id):
        raise KpiOutOfScope("the caller may not see this authority's figures")
    return report.only(
        lambda r: (
            r.authority is not None
            and allowed(r.authority, r.node)
            and (authority is None or r.authority == authority)
        )
    )


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def figures_json(figures: Figures) -> dict[str, Any]:
    """One row as JSON: the shares and the average, and the counts they come from."""
    return {
        "node": figures.node,
        "authority": figures.authority,
        "area": figures.area,
        "requests": figures.requests,
        "accepted_within_7_days_share": figures.accepted_within_7_days_share,
        "accepted_within_7_days": figures.accepted_within_7_days,
        "acceptance_counted": figures.acceptance_counted,
        "average_days_to_answer": figures.average_days_to_answer,
        "answered": figures.answered,
        "answered_by_agreed_date_share": figures.answered_by_agreed_date_share,
        "answered_by_agreed_date": figures.answered_by_agreed_date,
        "agreed_counted": figures.agreed_counted,
        "escalations": figures.escalations,
        "disputes": figures.disputes,
    }


def report_json(report: KpiReport) -> dict[str, Any]:
    """The report as JSON-ready data (``imi-gateway kpi --json``, the console)."""
    return {
        "from": _iso(report.period.start),
        "to": _iso(report.period.end),
        "as_of": _iso(report.as_of),
        "rows": [figures_json(r) for r in report.rows],
        "total": figures_json(report.total),
    }


def rows_of(report: KpiReport) -> Sequence[Figures]:
    """The report's rows followed by its total."""
    return (*report.rows, report.total)
