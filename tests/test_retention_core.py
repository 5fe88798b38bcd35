"""Retention periods and due times (gateway.core.retention), and their settings in gateway.toml."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway.config import ConfigValueInvalid, parse_config
from gateway.core.retention import Period, PeriodInvalid, RetentionPolicy, erasure_due_at

T = datetime(2025, 8, 31, 10, 0, tzinfo=UTC)
MINIMAL = '[node]\nid = "NO"\n'


@pytest.mark.parametrize(
    ("text", "period"),
    [
        ("6 months", Period(months=6)),
        ("1 month", Period(months=1)),
        ("30 minutes", Period(minutes=30)),
        ("1 hour", Period(minutes=60)),
        ("14 days", Period(minutes=14 * 24 * 60)),
        ("2 weeks", Period(minutes=14 * 24 * 60)),
    ],
)
def test_period_parses_units_down_to_minutes(text: str, period: Period) -> None:
    assert Period.parse(text) == period


@pytest.mark.parametrize("text", ["", "6", "months", "0 minutes", "-1 days", "1 year", "1.5 days"])
def test_period_refuses_what_is_not_a_number_and_a_unit(text: str) -> None:
    with pytest.raises(PeriodInvalid):
        Period.parse(text)


def test_months_are_calendar_months_clamped_to_the_month_end() -> None:
    assert Period(months=6).after(T) == datetime(2026, 2, 28, 10, 0, tzinfo=UTC)
    assert Period(months=6).before(datetime(2026, 2, 28, 10, 0, tzinfo=UTC)) == T
    assert Period(months=1).before(datetime(2025, 3, 30, 10, 0, tzinfo=UTC)) == datetime(
        2025, 2, 28, 10, 0, tzinfo=UTC
    )
    assert Period(minutes=30).after(T) == T + timedelta(minutes=30)


def test_due_time_counts_from_closure_or_from_opening_when_never_closed() -> None:
    policy = RetentionPolicy(after_closure=Period(minutes=30), if_never_closed=Period(months=1))
    assert erasure_due_at(policy, opened_at=T, closed_at=T + timedelta(days=3)) == T + timedelta(
        days=3, minutes=30
    )
    assert erasure_due_at(policy, opened_at=T, closed_at=None) == datetime(
        2025, 9, 30, 10, 0, tzinfo=UTC
    )


def test_no_period_in_days_after_closure_exceeds_six_calendar_months() -> None:
    assert Period.parse("181 days").at_most_months(6)
    assert not Period.parse("182 days").at_most_months(6)
    assert not Period(months=7).at_most_months(6)


def test_retention_defaults_to_six_months_after_closure_and_24_if_never_closed() -> None:
    policy = parse_config(MINIMAL, "/srv/node").retention.policy("services")
    assert policy == RetentionPolicy(Period(months=6), Period(months=24))


def test_retention_takes_periods_per_node_and_per_area_in_any_unit() -> None:
    config = parse_config(
        MINIMAL
        + '[retention]\nafter_closure = "3 months"\nif_never_closed = "2 days"\n'
        + '[retention.areas.services]\nafter_closure = "30 minutes"\n'
        + "[retention.areas.pqd]\nmonths_after_closure = 1\n",
        "/srv/node",
    ).retention
    assert config.policy("services") == RetentionPolicy(Period(minutes=30), Period(minutes=2880))
    assert config.policy("pqd") == RetentionPolicy(Period(months=1), Period(minutes=2880))
    assert config.policy("other") == RetentionPolicy(Period(months=3), Period(minutes=2880))
    assert config.for_area("pqd") == (1, 0)


@pytest.mark.parametrize(
    "table",
    [
        '[retention]\nafter_closure = "7 months"\n',
        '[retention]\nafter_closure = "200 days"\n',
        '[retention.areas.services]\nafter_closure = "7 months"\n',
        '[retention]\nif_never_closed = "121 months"\n',
        '[retention]\nafter_closure = "soon"\n',
    ],
)
def test_retention_refuses_periods_longer_than_the_maximum_or_unreadable(table: str) -> None:
    with pytest.raises(ConfigValueInvalid, match=r"after_closure|if_never_closed"):
        parse_config(MINIMAL + table, "/srv/node")
