"""Every ```sh block of docs/audit.md runs as written, in order, in a scratch directory."""

from __future__ import annotations

import pathlib

from tests.guides import guide_commands, run_guide_command


def test_audit_guide_commands_all_succeed(tmp_path: pathlib.Path) -> None:
    commands = guide_commands("audit.md")
    assert any("audit verify" in c for c in commands)
    for command in commands:
        result = run_guide_command(command, tmp_path)
        if "audit verify" in command:
            assert result.stdout.startswith("valid: ")
