"""Retention periods and due times: when an exchange's personal data must be erased (sans-IO).

A :class:`Period` is a number of calendar months or of minutes (``"6 months"``,
``"30 minutes"``, ``"2 days"``): months so the legal limit is exact, minutes so an
operator can rehearse a purge. :func:`erasure_due_at` takes an exchange's
metadata and a :class:`RetentionPolicy` and says when its personal data is due
for erasure: ``after_closure`` after closing, or ``if_never_closed`` after it
was opened when it has not closed. With the optional blocked stage
(``blocked_after``), :func:`blocking_due_at` says when a closed exchange's
personal data becomes unreadable, before it is erased.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

#: The legal maximum after closure, in months (the default too).
MAX_MONTHS_AFTER_CLOSURE = 6
#: The longest number of days that never exceeds six calendar months (1 September to 1 March).
MAX_DAYS_AFTER_CLOSURE = 181

_UNIT_MINUTES = {"minute": 1, "hour": 60, "day": 24 * 60, "week": 7 * 24 * 60}
_PERIOD_RE = re.compile(r"\A\s*([1-9][0-9]{0,6})\s*(minute|hour|day|week|month)s?\s*\Z")


class PeriodInvalid(ValueError):
    """A retention period is not ``"<N> minutes|hours|days|weeks|months"``."""


@dataclass(frozen=True)
class Period:
    """A retention period: whole calendar months, or minutes."""

    months: int = 0
    minutes: int = 0

    @classmethod
    def parse(cls, text: str) -> Period:
        """``"6 months"``, ``"30 minutes"``, ``"1 hour"``, ``"14 days"``, ``"2 weeks"``."""
        match = _PERIOD_RE.match(text.lower())
        if match is None:
            raise PeriodInvalid(
                "must be a number and a unit (minutes, hours, days, weeks or months), "
                'e.g. "6 months" or "30 minutes"'
            )
        number, unit = int(match.group(1)), match.group(2)
        if unit == "month":
            return cls(months=number)
        return cls(minutes=number * _UNIT_MINUTES[unit])

    def after(self, start: datetime) -> datetime:
        """``start`` plus this period (months keep the day of month, clamped to the month's end)."""
        if self.months:
            month0 = start.month - 1 + self.months
            year, month = start.year + month0 // 12, month0 % 12 + 1
            day = min(start.day, calendar.monthrange(year, month)[1])
            start = start.replace(year=year, month=month, day=day)
        return start + timedelta(minutes=self.minutes)

    def before(self, end: datetime) -> datetime:
        """``end`` minus this period: every start up to this one is due by ``end``."""
        start = end - timedelta(minutes=self.minutes)
        if self.months:
            month0 = start.month - 1 - self.months
            year, month = start.year + month0 // 12, month0 % 12 + 1
            last = calendar.monthrange(year, month)[1]
            # On the last day of a month, every later day of the earlier month is due too.
            at_month_end = start.day == calendar.monthrange(start.year, start.month)[1]
            day = last if at_month_end else min(start.day, last)
            start = start.replace(year=year, month=month, day=day)
        return start

    def at_most_months(self, months: int) -> bool:
        """Whether this period never exceeds ``months`` calendar months, whatever the start."""
        if self.months:
            return self.months <= months and not self.minutes
        return self.minutes <= (months * MAX_DAYS_AFTER_CLOSURE // 6) * 24 * 60

    def __str__(self) -> str:
        if self.months:
            return f"{self.months} month{'s' if self.months != 1 else ''}"
        return f"{self.minutes} minute{'s' if self.minutes != 1 else ''}"


@dataclass(frozen=True)
class RetentionPolicy:
    """The two limits that apply to one legislation area."""

    after_closure: Period
    if_never_closed: Period
    #: The optional blocked stage: this long after closure the personal data is unreadable.
    blocked_after: Period | None = None


def erasure_due_at(
    policy: RetentionPolicy, *, opened_at: datetime, closed_at: datetime | None
) -> datetime:
    """When the personal data of an exchange opened at ``opened_at`` (closed at ``closed_at``) is due."""
    if closed_at is not None:
        return policy.after_closure.after(closed_at)
    return policy.if_never_closed.after(opened_at)


def blocking_due_at(policy: RetentionPolicy, *, closed_at: datetime | None) -> datetime | None:
    """When a closed exchange's personal data is blocked (None: no blocked stage, or still open).

    Never later than its erasure: a blocked stage at or after erasure has nothing to block.
    """
    if policy.blocked_after is None or closed_at is None:
        return None
    blocked = policy.blocked_after.after(closed_at)
    return blocked if blocked < policy.after_closure.after(closed_at) else None


__all__ = [
    "MAX_DAYS_AFTER_CLOSURE",
    "MAX_MONTHS_AFTER_CLOSURE",
    "Period",
    "PeriodInvalid",
    "RetentionPolicy",
    "blocking_due_at",
    "erasure_due_at",
]
