"""``run --workers``: the supervisor binds every listening socket once, the console's too."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gateway import cli
from gateway.config import load_config
from gateway.node.workers import CONSOLE_FD, WORKER_FDS, bind_listeners, worker_fds


def _node(tmp_path: Path, console: bool, capsys: pytest.CaptureFixture[str]) -> Path:
    node = tmp_path / "no"
    assert cli.main(["init", str(node), "--country", "NO", "--listen", "127.0.0.1"]) == 0
    capsys.readouterr()
    config = node / "gateway.toml"
    text = config.read_text()
    text = re.sub(r"^port = \d+$", "port = 0", text, flags=re.M)  # free ports, bound once
    if console:
        text = text.replace("[console]\n", "[console]\nenabled = true\nport = 0\n", 1)
    config.write_text(text)
    return node


@pytest.mark.parametrize("console", [False, True])
def test_the_supervisor_binds_the_console_socket_only_when_the_console_is_enabled(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], console: bool
) -> None:
    config = load_config(_node(tmp_path, console, capsys))
    bound = bind_listeners(config)
    try:
        expected = {"api", "peer", "metrics"} | ({"console"} if console else set())
        assert set(bound) == expected
        assert all(sock.getsockname()[1] > 0 for sock in bound.values())
    finally:
        for sock in bound.values():
            sock.close()


def test_worker_descriptors_name_the_console_socket_when_there_is_a_fifth() -> None:
    four = ",".join(str(fd) for fd in WORKER_FDS.values())
    assert worker_fds(four) == WORKER_FDS
    assert worker_fds(f"{four},{CONSOLE_FD}") == {**WORKER_FDS, "console": CONSOLE_FD}
    with pytest.raises(ValueError, match="four or five"):
        worker_fds("3,4,5")
