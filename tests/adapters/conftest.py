"""Fixtures for the adapter tests: local servers stopped after each test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_twisted

from .fakes import Servers


@pytest_twisted.async_yield_fixture
async def servers() -> AsyncIterator[Servers]:
    s = Servers()
    yield s
    await s.close()
