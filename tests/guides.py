"""Guides whose ```sh blocks run as written: the commands, and running one as a user would."""

from __future__ import annotations

import pathlib
import re
import shlex
import subprocess
import sys

DOCS = pathlib.Path(__file__).resolve().parents[1] / "docs"


def guide_commands(name: str) -> list[str]:
    """Every line of every ```sh block of ``docs/NAME``, in order."""
    blocks = re.findall(r"```sh\n(.*?)```", (DOCS / name).read_text(), flags=re.S)
    return [line for block in blocks for line in block.splitlines() if line.strip()]


def run_guide_command(command: str, cwd: pathlib.Path) -> subprocess.CompletedProcess[str]:
    """Run one ``imi-gateway ...`` line of a guide in ``cwd``; fail the test unless it exits 0."""
    argv = shlex.split(command)
    assert argv[0] == "imi-gateway"
    result = subprocess.run(
        [sys.executable, "-m", "gateway", *argv[1:]],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, (command, result.stdout, result.stderr)
    return result
