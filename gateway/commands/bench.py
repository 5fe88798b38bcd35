"""``imi-gateway bench``: benchmarks that report figures (they never pass or fail on them).

* ``bench exchange``: two real nodes on loopback, each in its own process,
  with real TLS, signatures and SQLite; request+answer exchanges per second,
  one-way latency percentiles, peak RSS per node and the XML+crypto floor of
  the same documents measured in the same run (see
  :mod:`gateway.benchmarks.exchange` and docs/performance.md);
* ``bench scaling``: ``bench exchange`` on PostgreSQL with 1, 2 and 4
  worker processes per node, one row each (:mod:`gateway.benchmarks.exchange.scaling`);
* ``bench purge``: exchange throughput without and during a retention
  purge of 100,000 expired exchanges at one node (:mod:`gateway.benchmarks.purge`);
* ``bench search``: the authority directory search, when
  ``gateway.benchmarks.search`` is installed (it provides
  ``add_arguments(parser)`` and ``run(args) -> int``).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
from types import ModuleType

from gateway.benchmarks import exchange, purge
from gateway.benchmarks.exchange import scaling
from gateway.commands import usage_when_no_subcommand

EXIT_USAGE = 2


def _optional(module_name: str) -> ModuleType | None:
    """The benchmark module ``module_name`` if it exists (another part may provide it)."""
    if importlib.util.find_spec(module_name) is None:
        return None
    return importlib.import_module(module_name)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="run a benchmark (exchange, scaling, purge, search)",
        description=(
            "Benchmarks of this machine's gateway. They print figures (a table, or JSON with "
            "--json) and never pass or fail on them. See docs/performance.md for the targets "
            "and recorded runs."
        ),
    )
    benchmarks = parser.add_subparsers(dest="benchmark", metavar="BENCHMARK")
    ex = benchmarks.add_parser(
        "exchange",
        help="two real nodes under load: exchanges/s, latency, RSS, XML+crypto floor",
        description=(
            "Create two nodes (NO and PT) in a temporary directory, run each in its own "
            "process ('python -m gateway run'), and drive them from simulated national "
            "systems with pre-signed documents: a closed-loop phase (sustained exchanges per "
            "second) then an open-loop phase at half that rate (one-way latency), then the "
            "XML+crypto floor of the same documents. About 1.5 minutes with the defaults; "
            "--quick takes about 15 seconds."
        ),
    )
    exchange.add_arguments(ex)
    ex.set_defaults(func=exchange.run)

    sc = benchmarks.add_parser(
        "scaling",
        help="bench exchange on PostgreSQL with 1, 2 and 4 workers per node: a table",
        description=(
            "Run 'bench exchange --max --database postgresql --workers N' for each worker "
            "count (default 1,2,4), one after the other, each with new nodes and databases "
            "and its own XML+crypto floor, and print one table: exchanges/s, node CPU per "
            "document, the floor, and the CPU the rest of the machine used meanwhile. About "
            "a minute per row with the defaults; --quick takes about 30 s per row. Needs a "
            "PostgreSQL server where it may create and drop databases."
        ),
    )
    scaling.add_arguments(sc)
    sc.set_defaults(func=scaling.run)

    pp = benchmarks.add_parser(
        "purge",
        help="exchange throughput while a retention purge of 100,000 exchanges runs",
        description=(
            "Seed node PT's database with 100,000 closed exchanges past their retention "
            "period, measure closed-loop exchanges per second without a purge, then with PT "
            "purging them, and report the ratio and the purge rate. A few minutes with the "
            "defaults; --quick takes about 30 seconds."
        ),
    )
    purge.add_arguments(pp)
    pp.set_defaults(func=purge.run)

    search = _optional("gateway.benchmarks.search")
    if search is not None:
        sp = benchmarks.add_parser(
            "search",
            help="the authority directory search",
            description=(search.__doc__ or "The authority directory search.")
            .strip()
            .split("\n")[0],
        )
        search.add_arguments(sp)
        sp.set_defaults(func=search.run)

    parser.set_defaults(func=usage_when_no_subcommand(parser))
