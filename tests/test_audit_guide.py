"""Every ```sh block of docs/audit.md runs as written, in order, in a scratch directory."""

from __future__ import annotations

import pathlib
import re
import shlex
import subprocess
import sys

GUIDE = pathlib.Path(__file__).resolve().parents[1] / "docs" / "audit.md"


def test_audit_guide_commands_all_succeed(tmp_path: pathlib.Path) -> None:
    blocks = re.findall(r"```sh\n(.*?)```", GUIDE.read_text(), flags=re.S)
    commands = [line for block in blocks for line in block.splitlines() if line.strip()]
    assert any("audit verify" in c for c in commands)
    for command in commands:
        argv = shlex.split(command)
        assert argv[0] == "imi-gateway"
        result = subprocess.run(
            [sys.executable, "-m", "gateway", *argv[1:]],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, (command, result.stdout, result.stderr)
        if "audit verify" in command:
            assert result.stdout.startswith("valid: ")
