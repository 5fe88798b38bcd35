"""Sub-commands of ``imi-gateway``.

Each module here defines ``register(subparsers)``, which adds one sub-command
(and its own sub-sub-commands) and sets ``func`` to a callable that takes the
parsed arguments and returns the process exit status. ``gateway.cli``
discovers the modules; nothing needs to be listed by hand.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable


def usage_when_no_subcommand(
    parser: argparse.ArgumentParser,
) -> Callable[[argparse.Namespace], int]:
    """A ``func`` for a command group run without a sub-command: print its help, exit 2."""

    def run(args: argparse.Namespace) -> int:
        parser.print_help(sys.stderr)
        return 2

    return run
