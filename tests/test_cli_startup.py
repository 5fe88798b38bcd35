"""``imi-gateway --help`` and ``--version`` start fast: they import no command module.

Only the module of the command being run is imported (gateway/cli.py); the
one-line help of the others is read from their source. These tests prove it
by the modules a fresh interpreter holds, never by timing (the figures are in
docs/performance.md).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from gateway import cli

HEAVY = ("twisted", "sqlalchemy", "alembic", "lxml", "cryptography", "signxml", "xmlschema")


def modules_after(argv: list[str]) -> set[str]:
    """The modules loaded once ``imi-gateway ARGV`` has run, in a fresh interpreter."""
    probe = (
        "import sys\n"
        "from gateway.cli import main\n"
        "try:\n"
        f"    main({argv!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('\\n'.join(sorted(sys.modules)), file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    return set(done.stderr.split())


@pytest.mark.parametrize("argv", [["--help"], ["--version"], []], ids=["help", "version", "none"])
def test_the_top_level_help_and_version_import_no_heavy_module(argv: list[str]) -> None:
    loaded = modules_after(argv)
    assert not {m.split(".")[0] for m in loaded} & set(HEAVY), sorted(loaded)
    assert not [m for m in loaded if m.startswith("gateway.commands.")]


def test_every_command_module_names_its_command_and_help_in_its_source() -> None:
    # A module whose help cannot be read statically would be imported for every
    # `imi-gateway --help`: keep `add_parser("NAME", help="literal")` in register().
    for module in cli.command_modules():
        listed = cli.command_help(module)
        assert listed is not None, module
        assert listed[1], module


def test_the_help_lists_every_command_with_the_help_its_module_registers() -> None:
    quick = cli.build_parser("").format_help()
    full = cli.build_parser().format_help()
    assert quick == full
    for module in cli.command_modules():
        name, _ = cli.command_help(module) or ("", "")
        assert f"    {name}" in quick


def test_running_a_command_imports_only_its_own_module() -> None:
    loaded = modules_after(["errors", "--help"])
    commands = {m for m in loaded if m.startswith("gateway.commands.")}
    assert commands == {"gateway.commands.errors"}


def test_the_commands_that_read_the_database_do_not_import_it_for_their_help() -> None:
    for command in ("queue", "retention"):
        loaded = modules_after([command, "--help"])
        assert "sqlalchemy" not in loaded and "alembic" not in loaded, command
