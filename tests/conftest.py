"""Shared test configuration.

In CI (``CI=true``) a skipped test is a failure: tests skip only for a
missing tool (xmlsec1, chromium) or database, and CI provides all of them.
Use :func:`require_tool` and :func:`postgres_url` rather than ad-hoc skips.
"""

from __future__ import annotations

import os
import shutil

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
POSTGRES_ENV = "IMI_TEST_POSTGRES_URL"


def require_tool(name: str) -> str:
    """Return the path of executable ``name``, or skip (fail in CI) without it."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (apt-get install {name})"
        if IN_CI:
            pytest.fail(f"CI must provide this tool: {message}")
        pytest.skip(message)
    return path


def postgres_url() -> str:
    """The PostgreSQL server URL for tests, or skip (fail in CI) without one.

    Set IMI_TEST_POSTGRES_URL to a server URL such as
    ``postgresql+psycopg://postgres@127.0.0.1:5432/test``; tests create and
    drop their own databases on that server.
    """
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        message = f"PostgreSQL tests need {POSTGRES_ENV} (see README)"
        if IN_CI:
            pytest.fail(f"CI must provide a database: {message}")
        pytest.skip(message)
    return url


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not IN_CI:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if skipped:
        if reporter:
            reporter.write_line(f"CI=true: {skipped} skipped test(s) count as failures", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
