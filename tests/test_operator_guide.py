"""Every ```sh block of docs/operator.md runs as written, in order, in a scratch directory."""

from __future__ import annotations

from tests.guides import guide_commands, run_guide_command


def test_operator_guide_commands_all_succeed(tmp_path) -> None:
    commands = guide_commands("operator.md")
    assert len(commands) >= 10
    for command in commands:
        run_guide_command(command, tmp_path)
    assert (tmp_path / "node-no" / "trust" / "peers" / "PT").is_dir()
    assert (tmp_path / "node-pt" / "trust" / "peers" / "NO").is_dir()
