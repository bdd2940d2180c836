"""The ``crashcart`` command line: a small registry of subcommands.

The operator commands live in this package: ``attestation.py`` (``crashcart attestation``:
which opted-in instances are not kdump-armed), ``check_permissions.py`` (``crashcart
check-permissions``: may I interrupt this instance?) and ``support.py`` (what every command
shares); ``crashcart triage`` lives with the triage library (``crashcart/triage/cli.py``).

Each subcommand lives in its own module, listed in :data:`SUBCOMMAND_MODULES`. A module
provides::

    def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
        parser = subparsers.add_parser("name", help="...")
        parser.add_argument(...)
        parser.set_defaults(handler=run)      # run(args: argparse.Namespace) -> int

and keeps its import cheap (heavy imports such as boto3 or drgn go inside ``run``), since
every module is imported to build ``crashcart --help``. To add a subcommand, append its
module to :data:`SUBCOMMAND_MODULES`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import cast

from crashcart.cli.support import add_version_argument

#: Modules that each register one or more subcommands through ``add_parser(subparsers)``.
SUBCOMMAND_MODULES: tuple[str, ...] = (
    "crashcart.cli.check_permissions",
    "crashcart.triage.cli",
    "crashcart.cli.attestation",
)

Handler = Callable[[argparse.Namespace], int]


def build_parser(modules: Sequence[str] = SUBCOMMAND_MODULES) -> argparse.ArgumentParser:
    """The top-level parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="crashcart",
        description="crashcart: the EC2 kernel-hang diagnosis loop, from the command line",
        epilog="Run 'crashcart COMMAND --help' for a command's options and exit codes.",
    )
    add_version_argument(parser)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in modules:
        module = importlib.import_module(name)
        module.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``crashcart`` with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    parser = build_parser()
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    handler = cast("Handler | None", getattr(args, "handler", None))
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    return handler(args)


if __name__ == "__main__":
    raise SystemExit(main())
