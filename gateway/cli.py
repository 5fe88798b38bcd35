"""The ``imi-gateway`` command: argument parsing and error reporting only.

Sub-commands live in ``gateway.commands``; each module there registers itself
(see that package's docstring). Exit statuses, which scripts may rely on:

* 0  success;
* 1  the document or request was refused (the error code is printed);
* 2  usage error (argparse);
* 3  configuration or key-store problem, or a file that cannot be read;
* 4  an unexpected internal error (a bug: please report it).

Errors are printed to standard error as ``error: CODE: message``.
"""

from __future__ import annotations

import argparse
import importlib
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


def build_parser() -> argparse.ArgumentParser:
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
    for info in sorted(pkgutil.iter_modules(gateway.commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"gateway.commands.{info.name}")
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
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
