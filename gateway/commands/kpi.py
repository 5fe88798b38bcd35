"""``imi-gateway kpi``: the node's performance figures in the terms of the Single Market Scoreboard.

Reads the node's database directly (while the node runs or not) and prints,
per responding node, authority and legislation area, for the requests
created in ``[--from, --to)``: the share accepted within 7 days, the
average days to answer, the share answered by the agreed date, and the
numbers of escalations and disputes. The same period and ``--as-of`` give
the same figures as ``GET /api/v1/kpi`` and on the peer node for the
exchanges both hold (docs/kpi.md).
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.core.kpi import Figures, KpiReport


def _share(part: int, whole: int, share: float | None) -> str:
    return "-" if share is None else f"{part}/{whole} {share * 100:.1f}%"


def _line(row: Figures) -> str:
    days = row.average_days_to_answer
    answer = "-" if days is None else f"{days:.2f} ({row.answered})"
    return (
        f"{row.node or 'all':6} {row.authority or '':16} {row.area or '':8} {row.requests:>8}  "
        f"{_share(row.accepted_within_7_days, row.acceptance_counted, row.accepted_within_7_days_share):>14}  "
        f"{answer:>12}  "
        f"{_share(row.answered_by_agreed_date, row.agreed_counted, row.answered_by_agreed_date_share):>14}  "
        f"{row.escalations:>11}  {row.disputes:>8}"
    )


def format_report(report: KpiReport, node_id: str) -> str:
    """The figures as a text table (one line per row, then the total)."""
    from gateway.core.kpi import report_json

    head = report_json(report)
    lines = [
        f"Performance figures at node {node_id}: requests created from {head['from']} "
        f"to {head['to']}, as of {head['as_of']}",
        f"{'node':6} {'authority':16} {'area':8} {'requests':>8}  {'accepted ≤7 d':>14}  "
        f"{'days to answer':>12}  {'by agreed date':>14}  {'escalations':>11}  {'disputes':>8}",
    ]
    lines += [_line(row) for row in report.rows]
    lines.append(_line(report.total))
    return "\n".join(lines)


def _run(args: argparse.Namespace) -> int:
    from gateway.commands.queue import _database
    from gateway.core.kpi import Period, compute, parse_instant, report_json
    from gateway.storage.kpi import kpi_facts_txn

    now = datetime.now(UTC)
    end = now if args.to is None else parse_instant(args.to, "to")
    start = end - timedelta(days=30) if args.from_ is None else parse_instant(args.from_, "from")
    period = Period(start, end)
    as_of = now if args.as_of is None else parse_instant(args.as_of, "as-of")
    db, node_id = _database(args.node_dir)
    try:
        facts = db.run_txn_sync(
            kpi_facts_txn, period=period, as_of=as_of, authority=args.authority, area=args.area
        )
    finally:
        db.engine.dispose()
    report = compute(facts, period, as_of)
    if args.json:
        print(json.dumps({"node": node_id, **report_json(report)}, indent=2))
    else:
        print(format_report(report, node_id))
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "kpi",
        help="performance figures per authority and area (Single Market Scoreboard terms)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("node_dir", metavar="NODE_DIR")
    parser.add_argument(
        "--from",
        dest="from_",
        metavar="WHEN",
        help="start of the period (ISO date = its midnight UTC, or date-time); "
        "default: 30 days before --to",
    )
    parser.add_argument(
        "--to", metavar="WHEN", help="end of the period, not included (default: now)"
    )
    parser.add_argument(
        "--authority", metavar="ID", help="only the requests this authority responds to"
    )
    parser.add_argument("--area", metavar="CODE", help="only this legislation area (e.g. PQD)")
    parser.add_argument(
        "--as-of",
        metavar="WHEN",
        help="the figures as they stood at this time (default: now; see docs/kpi.md)",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=_run)
