"""Performance figures of a node: the queries and the Prometheus gauges (docs/kpi.md).

:class:`KpiQueries` is the one way to read the figures in a running node:
:meth:`KpiQueries.report` (every row: the admin console, operators) and
:meth:`KpiQueries.for_caller` (the rows an API caller may see: its own
authority's, or a coordinator's scope). Both read the facts with one
transaction (``gateway.storage.kpi``) and compute on the CPU pool
(``gateway.core.kpi``). The CLI (``imi-gateway kpi``) runs the same two
functions on the node's database.

:class:`KpiGauges` refreshes the ``imi_kpi_*`` gauges on the runtime's clock,
over rolling windows (30 and 365 days up to now), labelled with the window,
the responding node, authority and legislation area.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

from prometheus_client import CollectorRegistry, Gauge
from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from gateway.core.clock import Timer
from gateway.core.coordinators import Coordinator
from gateway.core.kpi import ExchangeFacts, Figures, KpiReport, Period, compute, visible
from gateway.service.runtime import Runtime
from gateway.storage.kpi import kpi_facts_txn

log = Logger()

__all__ = ["WINDOWS", "KpiGauges", "KpiMetrics", "KpiQueries"]

#: The rolling windows of the gauges: label value and days.
WINDOWS: Sequence[tuple[str, int]] = (("30d", 30), ("365d", 365))


class KpiQueries:
    """The node's performance figures (see the module docstring)."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        coordinators: Callable[[], Mapping[str, Coordinator]] = dict,
        region_of: Callable[[str], str | None] = lambda authority: None,
    ) -> None:
        self._rt = runtime
        self._coordinators = coordinators
        self._region_of = region_of

    async def report(
        self,
        period: Period,
        *,
        as_of: datetime | None = None,
        authority: str | None = None,
        area: str | None = None,
    ) -> KpiReport:
        """Every row of the figures of ``period`` as of ``as_of`` (default: now).

        ``authority`` keeps the requests that authority responds to, ``area``
        one legislation area. Metadata only: no access check (operators, console).
        """
        at = as_of or self._rt.clock.now()
        facts: list[ExchangeFacts] = await self._rt.db.run_txn(
            kpi_facts_txn, period=period, as_of=at, authority=authority, area=area
        )
        report: KpiReport = await self._rt.cpu(compute, facts, period, at)
        return report

    async def for_caller(
        self,
        caller: str,
        period: Period,
        *,
        as_of: datetime | None = None,
        authority: str | None = None,
        area: str | None = None,
    ) -> KpiReport:
        """The rows ``caller`` may see: a national system its own authority's, a coordinator
        those of this node's authorities in its scope (KPI_OUT_OF_SCOPE for others)."""
        coordinator = self._coordinators().get(caller)
        report = await self.report(period, as_of=as_of, authority=authority, area=area)
        return visible(
            report,
            caller=caller,
            node_id=self._rt.node_id,
            coordinator=coordinator,
            region_of=self._region_of,
            authority=authority,
        )


class KpiMetrics:
    """The ``imi_kpi_*`` gauges, registered in a node's registry."""

    LABELS = ("window", "node", "authority", "area")

    def __init__(self, registry: CollectorRegistry) -> None:
        def gauge(name: str, text: str) -> Gauge:
            return Gauge(name, text, list(self.LABELS), registry=registry)

        self.requests = gauge(
            "imi_kpi_requests", "Requests created in the window, per responding authority and area."
        )
        self.accepted_share = gauge(
            "imi_kpi_accepted_within_7_days_ratio",
            "Share of the window's requests accepted within 7 days (NaN: none decided yet).",
        )
        self.answer_days = gauge(
            "imi_kpi_answer_days_average",
            "Average days from request to answer over the window's answered requests "
            "(NaN: none answered).",
        )
        self.agreed_share = gauge(
            "imi_kpi_answered_by_agreed_date_ratio",
            "Share of the window's requests answered by the agreed date (NaN: none due yet).",
        )
        self.escalations = gauge("imi_kpi_escalations", "Escalations of the window's requests.")
        self.disputes = gauge("imi_kpi_disputes", "Disputes of the window's requests.")
        self.all = (
            self.requests,
            self.accepted_share,
            self.answer_days,
            self.agreed_share,
            self.escalations,
            self.disputes,
        )
        self._present: set[tuple[str, ...]] = set()

    def set(self, window: str, rows: Sequence[Figures], present: set[tuple[str, ...]]) -> None:
        for row in rows:
            labels = (window, row.node or "", row.authority or "", row.area or "")
            present.add(labels)
            values = (
                row.requests,
                _or_nan(row.accepted_within_7_days_share),
                _or_nan(row.average_days_to_answer),
                _or_nan(row.answered_by_agreed_date_share),
                row.escalations,
                row.disputes,
            )
            for gauge, value in zip(self.all, values, strict=True):
                gauge.labels(*labels).set(value)

    def replace(self, reports: Mapping[str, KpiReport]) -> None:
        """Set every window's rows, and remove label sets no longer present."""
        present: set[tuple[str, ...]] = set()
        for window, report in reports.items():
            self.set(window, report.rows, present)
        for gone in self._present - present:
            for gauge in self.all:
                gauge.remove(*gone)
        self._present = present


def _or_nan(value: float | None) -> float:
    return math.nan if value is None else value


class KpiGauges(Service):
    """Refreshes :class:`KpiMetrics` at start and every ``interval`` seconds on the clock."""

    name = "kpi-gauges"

    def __init__(self, runtime: Runtime, *, interval: float) -> None:
        self._rt = runtime
        self._interval = interval
        self.metrics = KpiMetrics(runtime.metrics.registry)
        self._timer: Timer | None = None
        self._in_flight: Deferred[None] | None = None

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]  # Service.startService is untyped
        self._schedule(0)

    def stopService(self) -> Deferred[None] | None:
        super().stopService()  # type: ignore[no-untyped-call]  # Service.stopService is untyped
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        return self._in_flight

    def _schedule(self, delay: float) -> None:
        if self.running:
            self._timer = self._rt.clock.callLater(delay, self._tick)

    def _tick(self) -> None:
        self._timer = None
        self.refresh().addBoth(lambda _: self._schedule(self._interval))

    def refresh(self) -> Deferred[None]:
        """Compute every window now (a failure is logged; the gauges keep their values)."""
        d: Deferred[None] = Deferred.fromCoroutine(self._refresh())
        self._in_flight = d

        def settled(result: None) -> None:
            if self._in_flight is d:
                self._in_flight = None

        def failed(failure: Failure) -> None:
            settled(None)
            log.failure("Refreshing the KPI gauges failed; they keep their last values", failure)

        d.addCallbacks(settled, failed)
        return d

    async def _refresh(self) -> None:
        now = self._rt.clock.now()
        longest = Period.ending(now, max(days for _, days in WINDOWS))
        facts = await self._rt.db.run_txn(kpi_facts_txn, period=longest, as_of=now)
        reports = {  # one read; each window computed from the longest one's facts
            window: await self._rt.cpu(compute, facts, Period.ending(now, days), now)
            for window, days in WINDOWS
        }
        self.metrics.replace(reports)
