"""``[deadlines]`` in gateway.toml: defaults, per-area acceptance periods, refusals."""

from __future__ import annotations

import pathlib
from datetime import timedelta

import pytest

from gateway import cli
from gateway import keystore as ks
from gateway.config import ConfigValueInvalid, load_config


@pytest.fixture(autouse=True)
def _fresh_key_cache() -> object:
    ks.clear_key_cache()
    yield
    ks.clear_key_cache()


def test_deadline_settings_load_into_the_policy(tmp_path: pathlib.Path) -> None:
    node = tmp_path / "node"
    assert cli.main(["init", str(node), "--country", "NO"]) == 0
    defaults = load_config(node).deadlines.policy()
    assert defaults.acceptance_period("PQD") == timedelta(days=7)
    assert defaults.lead == timedelta(hours=48) and defaults.grace == timedelta(days=3)
    config = node / "gateway.toml"
    text = config.read_text().replace(
        "[deadlines]\n", "[deadlines]\nacceptance_days = 5\nescalation_grace_days = 1\n", 1
    )
    config.write_text(text + "\n[deadlines.areas.SERVICES]\nacceptance_days = 10\n")
    policy = load_config(node).deadlines.policy()
    assert policy.acceptance_period("PQD") == timedelta(days=5)
    assert policy.acceptance_period("SERVICES") == timedelta(days=10)
    assert policy.grace == timedelta(days=1)
    config.write_text(config.read_text().replace("acceptance_days = 10", "acceptance_days = 0"))
    with pytest.raises(ConfigValueInvalid):
        load_config(node)
