"""The options of ``imi-gateway bench exchange``, and what one exchange is."""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.core.errors import GatewayError

NO_AUTHORITY = "NO-HELSEDIR"
PT_AUTHORITY = "PT-OMD"
AUTHORITIES = {"NO": [NO_AUTHORITY], "PT": [PT_AUTHORITY]}
#: Documents of one exchange, in the order they are sent.
DOCUMENT_KINDS = ("Request", "Acceptance", "Answer")
DOCS_PER_EXCHANGE = len(DOCUMENT_KINDS)
#: Document id suffix (see gateway.testbed) -> kind.
_KIND_OF_SUFFIX = {"1": "Request", "2": "Acceptance", "3": "Answer"}


class BenchFailed(GatewayError):
    """The benchmark could not run (bad options, a node did not start)."""

    code = "BENCH_FAILED"


# --- options ------------------------------------------------------------------------


@dataclass(frozen=True)
class ExchangeOptions:
    """What to run. ``rate`` None with mode "both" means half the measured maximum."""

    mode: str = "both"  # "both", "max" or "rate"
    duration: float = 30.0
    warmup: float = 3.0
    concurrency: int = 48
    rate: float | None = None
    ceiling: float = 350.0
    #: Long-poll ``wait`` of the pullers; 0: poll again at once, or after POLL_PAUSE if empty.
    poll_wait: int = 5
    pull_limit: int = 500
    verify: bool = False
    node_log_level: str = "info"
    work_dir: Path | None = None
    keep: bool = False
    profile_dir: Path | None = None
    floor_repeat: int = 300
    drain_seconds: float = 30.0
    #: "sqlite" (a file in each node directory) or "postgresql" (a new database per node).
    database: str = "sqlite"
    #: The PostgreSQL server to create the databases on (None: the environment or default).
    database_url: str | None = None
    #: Worker processes per node (``imi-gateway run --workers N``; more than 1 needs PostgreSQL).
    workers: int = 1

    def presign_count(self, phase: str, rate: float | None) -> int:
        """Exchanges to pre-sign for a phase (the closed loop stops if it runs out)."""
        if phase == "rate":
            assert rate is not None
            return math.ceil(rate * self.duration) + 1
        return math.ceil(self.ceiling * self.duration) + self.concurrency


#: With ``--poll-wait 0``, the pause of a puller after an empty answer (seconds).
POLL_PAUSE = 0.01

QUICK = {"duration": 3.0, "warmup": 1.0, "concurrency": 16, "ceiling": 150.0, "floor_repeat": 30}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``imi-gateway bench exchange``."""
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--max",
        action="store_true",
        help="run only the closed-loop phase (sustained exchanges per second)",
    )
    mode.add_argument(
        "--rate",
        type=float,
        metavar="R",
        help="run only the open-loop phase at R exchanges per second "
        "(default: both phases, the open loop at half the measured maximum)",
    )
    parser.add_argument(
        "--duration",
        type=float,
        metavar="S",
        help="seconds per phase, warm-up included (default 30; --quick: 3)",
    )
    parser.add_argument(
        "--warmup", type=float, metavar="S", help="seconds not counted (default 3; --quick: 1)"
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        metavar="N",
        help="closed-loop submitters, each one exchange at a time (default 48; --quick: 16)",
    )
    parser.add_argument(
        "--ceiling",
        type=float,
        metavar="R",
        help="exchanges per second pre-signed for the closed loop (default 350); "
        "the phase stops early, and says so, if the nodes go faster",
    )
    parser.add_argument(
        "--quick", action="store_true", help="a ~15 s smoke run (3 s phases, fewer repeats)"
    )
    parser.add_argument(
        "--verify",
        action="store_true",
        help="the simulated national systems verify every receipt and delivery signature "
        "(costs CPU on the same machine; by default they check status and digests only)",
    )
    parser.add_argument(
        "--database",
        choices=("sqlite", "postgresql"),
        default="sqlite",
        help="the nodes' database: sqlite (a file in each node directory, the default) or "
        "postgresql (the run creates a new database per node and drops it afterwards)",
    )
    parser.add_argument(
        "--database-url",
        metavar="URL",
        help="the PostgreSQL server for --database postgresql (default $IMI_BENCH_POSTGRES_URL, "
        "else postgresql+psycopg://postgres@127.0.0.1:5432/postgres); its own database is only "
        "used to create and drop the run's databases",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="run each node as N worker processes ('imi-gateway run --workers N'; more than 1 "
        "needs --database postgresql); CPU and RSS are read from the supervisor and every worker",
    )
    parser.add_argument(
        "--poll-wait",
        type=int,
        default=5,
        metavar="S",
        help="the pullers' long-poll wait (default 5; woken by a delivery in any worker). 0: "
        "poll again at once, or after 10 ms when nothing came (the empty polls are reported)",
    )
    parser.add_argument(
        "--node-log-level",
        default="info",
        choices=("debug", "info", "warn", "error", "critical"),
        help="log level of the node processes (default info, as an operator runs them)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="sample both nodes with py-spy during each counted window; "
        "write collapsed stacks and a summary per node and phase into DIR",
    )
    parser.add_argument(
        "--work-dir", type=Path, metavar="DIR", help="where to create the node directories"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the node directories and logs afterwards"
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def options_from(args: argparse.Namespace) -> ExchangeOptions:
    defaults: dict[str, Any] = dict(QUICK) if args.quick else {}
    for name in ("duration", "warmup", "concurrency", "ceiling"):
        value = getattr(args, name)
        if value is not None:
            defaults[name] = value
    mode = "max" if args.max else "rate" if args.rate is not None else "both"
    options = ExchangeOptions(
        mode=mode,
        rate=args.rate,
        verify=args.verify,
        node_log_level=args.node_log_level,
        work_dir=args.work_dir,
        keep=args.keep,
        profile_dir=args.profile,
        database=args.database,
        database_url=args.database_url,
        workers=args.workers,
        poll_wait=args.poll_wait,
        **defaults,
    )
    if options.duration <= options.warmup:
        raise BenchFailed("--duration must be longer than --warmup")
    if options.poll_wait < 0:
        raise BenchFailed("--poll-wait must be 0 or more")
    if options.concurrency < 1 or (options.rate is not None and options.rate <= 0):
        raise BenchFailed("--concurrency and --rate must be positive")
    check_database(options)
    return options


def check_database(options: ExchangeOptions) -> None:
    """Refuse what the nodes would refuse: several workers on SQLite, a URL without PostgreSQL."""
    if options.workers < 1:
        raise BenchFailed("--workers must be at least 1")
    if options.workers > 1 and options.database != "postgresql":
        raise BenchFailed(
            f"--workers {options.workers} needs --database postgresql "
            "(SQLite is one process's database)"
        )
    if options.database_url is not None and options.database != "postgresql":
        raise BenchFailed("--database-url goes with --database postgresql")
