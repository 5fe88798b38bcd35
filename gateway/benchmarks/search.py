"""``imi-gateway bench search``: the authority search index under a realistic load.

Generates a deterministic directory of authorities across all EEA countries
(names in each country's languages, often also in English, built from
national/regional words, body words -- council, chamber, register,
directorate -- the profession terms of the question catalogue and real NUTS
region names), builds a :class:`gateway.core.search.SearchIndex`, runs a
realistic mix of queries (single profession words in all 27 languages,
prefixes, two-word queries, body and region words, a fifth of them with
filters) and reports the index build time, the memory the index takes and
the query latency percentiles.

A benchmark reports; it is never a timed test (docs/performance.md). The
generator (:func:`generate_authorities`) also feeds ``imi-gateway
authorities demo``.

Run as ``imi-gateway bench search`` (when the bench command mounts
:func:`add_arguments` / :func:`run`) or ``python -m gateway.benchmarks.search``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
import sys
import time
from collections.abc import Sequence

from gateway.benchmarks.search_data import (
    REGIONS,
    WORDS,
    Words,
    generate_authorities,
    generate_queries,
)
from gateway.core.catalogue import load_catalogues
from gateway.core.ns import EEA_COUNTRIES
from gateway.core.search import SearchIndex, SearchQuery

__all__ = [
    "REGIONS",
    "WORDS",
    "Words",
    "add_arguments",
    "generate_authorities",
    "generate_queries",
    "main",
    "run",
]

TARGET_P95_MS = 20.0


# --- measuring ------------------------------------------------------------------------------------


def _rss_bytes() -> int:
    """Resident memory of this process (from /proc when available, else the peak)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _percentile(sorted_values: Sequence[float], fraction: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


def measure(authorities: int, queries: int, seed: int) -> dict[str, object]:
    """Generate, index and query; return the figures (see :func:`run` for their meaning)."""
    catalogue = load_catalogues().latest
    started = time.perf_counter()
    entries = generate_authorities(authorities, seed=seed, catalogue=catalogue)
    generated = time.perf_counter() - started
    mix = generate_queries(queries, entries, seed=seed + 1, catalogue=catalogue)
    gc.collect()
    rss_before = _rss_bytes()
    started = time.perf_counter()
    index = SearchIndex(catalogue)
    for entry in entries:
        index.add(entry)
    index.search(SearchQuery("x", limit=1))  # builds the sorted token list and name order
    build = time.perf_counter() - started
    gc.collect()
    rss_after = _rss_bytes()

    latencies = []
    totals = []
    zero = 0
    started = time.perf_counter()
    for query in mix:
        t0 = time.perf_counter_ns()
        result = index.search(query)
        latencies.append((time.perf_counter_ns() - t0) / 1e6)
        totals.append(result.total)
        zero += result.total == 0
    elapsed = time.perf_counter() - started
    ordered = sorted(latencies)
    p95 = _percentile(ordered, 0.95)
    return {
        "authorities": authorities,
        "countries": len(EEA_COUNTRIES),
        "vocabulary_tokens": len(index._vocab),
        "queries": queries,
        "seed": seed,
        "generate_seconds": round(generated, 3),
        "build_seconds": round(build, 3),
        "index_memory_mb": round((rss_after - rss_before) / 1e6, 1),
        "p50_ms": round(_percentile(ordered, 0.50), 3),
        "p95_ms": round(p95, 3),
        "p99_ms": round(_percentile(ordered, 0.99), 3),
        "max_ms": round(ordered[-1], 3) if ordered else 0.0,
        "mean_ms": round(statistics.fmean(latencies), 3) if latencies else 0.0,
        "queries_per_second": round(len(mix) / elapsed, 1) if elapsed else 0.0,
        "median_matches": statistics.median(totals) if totals else 0,
        "zero_match_queries": zero,
        "target_p95_ms": TARGET_P95_MS,
        "target_met": p95 < TARGET_P95_MS,
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``imi-gateway bench search``."""
    parser.add_argument(
        "--authorities",
        type=int,
        default=100_000,
        metavar="N",
        help="authorities to generate (default 100000)",
    )
    parser.add_argument(
        "--queries", type=int, default=5_000, metavar="N", help="queries to run (default 5000)"
    )
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")


def run(args: argparse.Namespace) -> int:
    """Run the benchmark and print its report; 0 unless the arguments are invalid."""
    if args.authorities < 1 or args.queries < 1:
        print("error: --authorities and --queries must be positive", file=sys.stderr)
        return 2
    figures = measure(args.authorities, args.queries, args.seed)
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    print(
        f"authority search: {figures['authorities']} authorities in {figures['countries']} countries"
    )
    print(f"  generate      {figures['generate_seconds']} s (not part of the index)")
    print(
        f"  index build   {figures['build_seconds']} s, {figures['vocabulary_tokens']} distinct tokens"
    )
    print(f"  index memory  {figures['index_memory_mb']} MB (resident set growth)")
    print(
        f"  {figures['queries']} queries: p50 {figures['p50_ms']} ms, p95 {figures['p95_ms']} ms, "
        f"p99 {figures['p99_ms']} ms, max {figures['max_ms']} ms, "
        f"{figures['queries_per_second']} queries/s"
    )
    print(
        f"  median matches per query {figures['median_matches']}, "
        f"queries without a match {figures['zero_match_queries']}"
    )
    verdict = "met" if figures["target_met"] else "NOT met"
    print(f"  target p95 < {figures['target_p95_ms']} ms: {verdict}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gateway.benchmarks.search",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
