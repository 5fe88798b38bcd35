"""Every ```sh block of docs/operator.md runs as written, in order, in a scratch directory."""

from __future__ import annotations

import os
import pathlib
import re
import shlex
import subprocess
import sys

GUIDE = pathlib.Path(__file__).resolve().parents[1] / "docs" / "operator.md"


def _commands() -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)```", GUIDE.read_text(), flags=re.S)
    return [line for block in blocks for line in block.splitlines() if line.strip()]


def test_operator_guide_commands_all_succeed(tmp_path) -> None:
    commands = _commands()
    assert len(commands) >= 10
    env = dict(os.environ)
    for command in commands:
        argv = shlex.split(command)
        assert argv[0] == "imi-gateway"
        result = subprocess.run(
            [sys.executable, "-m", "gateway", *argv[1:]],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, (command, result.stdout, result.stderr)
    assert (tmp_path / "node-no" / "trust" / "peers" / "PT").is_dir()
    assert (tmp_path / "node-pt" / "trust" / "peers" / "NO").is_dir()
