"""The whole pipeline with both nodes on PostgreSQL (each its own freshly created database).

The same scenarios as on SQLite: the end-to-end exchange of
test_two_node_exchange.py, and 200 documents queued while the receiving
node is down, delivered once and in order after its restart. The databases
are created with random names on the IMI_TEST_POSTGRES_URL server and
dropped afterwards; without that variable the tests skip (fail in CI).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted

from tests.nodes import two_nodes
from tests.service import test_two_node_exchange
from tests.service.bed import postgres_database
from tests.service.test_reliability import queue_while_receiver_down_then_restart


@contextlib.contextmanager
def two_databases() -> Iterator[dict[str, str]]:
    with postgres_database() as no_url, postgres_database() as pt_url:
        yield {"NO": no_url, "PT": pt_url}


def database_config(urls: dict[str, str]) -> dict[str, str]:
    return {country: f'[database]\nurl = "{url}"\n' for country, url in urls.items()}


@contextlib.asynccontextmanager
async def two_nodes_on(urls: dict[str, str], tmp_path: Path) -> AsyncIterator[Any]:
    """tests.nodes.two_nodes, each node on its own PostgreSQL database."""
    async with two_nodes(tmp_path, extra_config=database_config(urls)) as (nodes, systems):
        for country, node in nodes.items():
            assert node.parts.db.dialect_name == "postgresql", country
            assert node.parts.config.database.url == urls[country]
        yield nodes, systems


@pytest_twisted.ensureDeferred
async def test_request_and_answer_travel_end_to_end_on_postgresql(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with two_databases() as urls:
        monkeypatch.setattr(
            test_two_node_exchange,
            "two_nodes",
            functools.partial(two_nodes_on, urls),
        )
        await (
            test_two_node_exchange.test_request_and_answer_travel_end_to_end_with_complete_tracking(
                tmp_path
            )
        )


@pytest_twisted.ensureDeferred
async def test_documents_queued_while_the_peer_is_down_arrive_once_in_order_on_postgresql(
    tmp_path: Path,
) -> None:
    with two_databases() as urls:
        await queue_while_receiver_down_then_restart(tmp_path, urls)
