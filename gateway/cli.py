"""The ``imi-gateway`` command: argument parsing and error reporting only.

Sub-commands live in ``gateway.commands``; each module there registers itself
(see that package's docstring). Exit statuses, which scripts may rely on:

* 0  success;
* 1  the document or request was refused (the error code is printed);
* 2  usage error (argparse);
* 3  configuration or key-store problem, or a file that cannot be read;
* 4  an unexpected internal error (a bug: please report it).

Errors are printed to standard error as ``error: CODE: message``.

Start-up stays fast (docs/performance.md): only the module of the command
being run is imported. The one-line help of every other command, for
``imi-gateway --help``, is read from its module's source without running it
(:func:`command_help`): the string literal ``help=`` of its
``subparsers.add_parser("NAME", help=...)`` call. A module whose help is not a
literal is imported instead (correct, only slower).
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import pkgutil
import sys
from collections.abc import Sequence

import gateway.commands
from gateway import __version__
from gateway.core.errors import GatewayError

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_CONFIG = 3
EXIT_INTERNAL = 4


def command_modules() -> list[str]:
    """The names of the command modules (``helpers`` start with ``_``), sorted; none imported."""
    return sorted(
        info.name
        for info in pkgutil.iter_modules(gateway.commands.__path__)
        if not info.name.startswith("_")
    )


def command_help(module: str) -> tuple[str, str] | None:
    """``(command name, one-line help)`` read from the source of ``gateway.commands.MODULE``.

    The first ``X.add_parser("NAME", help="...")`` call of the module's
    ``register`` function, both arguments literals; None when the source
    says it otherwise (the module is then imported to register itself).
    """
    spec = importlib.util.find_spec(f"gateway.commands.{module}")
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        return None
    with open(spec.origin, encoding="utf-8") as source:
        tree = ast.parse(source.read(), spec.origin)
    for function in tree.body:
        if not (isinstance(function, ast.FunctionDef) and function.name == "register"):
            continue
        for node in ast.walk(function):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "add_parser"
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                continue
            for keyword in node.keywords:
                if (
                    keyword.arg == "help"
                    and isinstance(keyword.value, ast.Constant)
                    and isinstance(keyword.value.value, str)
                ):
                    return node.args[0].value, keyword.value.value
            return None
    return None


def _register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser], module: str) -> None:
    importlib.import_module(f"gateway.commands.{module}").register(subparsers)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser; every command registered, or only ``command`` in full.

    With ``command`` (the sub-command about to run), only its module is
    imported; the others appear in ``--help`` with the help read from their
    source (:func:`command_help`) and can not be run through this parser.
    """
    parser = argparse.ArgumentParser(
        prog="imi-gateway",
        description=(
            "National node gateway of the EU Internal Market Information system "
            "(IMI): verifies, stores and exchanges signed XML documents between "
            "national IT systems and peer nodes."
        ),
        epilog="Run 'imi-gateway COMMAND --help' for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"imi-gateway {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in command_modules():
        listed = None if command is None else command_help(module)
        if listed is None or listed[0] == command:
            _register(subparsers, module)
        else:
            name, help_text = listed
            subparsers.add_parser(name, help=help_text, add_help=False)
    return parser


def _command_in(argv: Sequence[str]) -> str:
    """The sub-command ``argv`` names (its first argument that is not an option), or ``""``."""
    for arg in argv:
        if not arg.startswith("-"):
            return arg
    return ""


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    parser = build_parser(_command_in(argv))
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(func(args))
    except GatewayError as exc:
        print(f"error: {exc.code}: {exc}", file=sys.stderr)
        return exc.exit_status
    except OSError as exc:
        print(f"error: IO_ERROR: {exc.strerror or exc}: {exc.filename or ''}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
