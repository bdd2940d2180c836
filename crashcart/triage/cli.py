"""The ``triage`` subcommand: ``add_parser(subparsers)`` for the crashcart CLI, ``run(args)``.

Exit codes: 0 report written; 2 bad input (missing file, not a vmcore, truncated dump,
mismatched vmlinux) with a one-line message on stderr; 3 an unexpected failure (also a
message, never a traceback); 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from crashcart.cli.support import add_command, add_version_argument, exit_code_epilog

EXIT_BAD_INPUT = 2
EXIT_FAILURE = 3


def configure(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("vmcore", type=Path, help="the crash dump (kdump-compressed or flattened)")
    parser.add_argument(
        "--vmlinux",
        type=Path,
        help="debug vmlinux of the crashed kernel (without it: kernel log, panic string and "
        "the backtraces the kernel printed)",
    )
    parser.add_argument(
        "--dmesg", type=Path, help="kernel log saved beside the dump (default: found there)"
    )
    parser.add_argument("--json", action="store_true", help="JSON instead of Markdown")
    parser.add_argument("--output", "-o", type=Path, help="write the report here (default: stdout)")
    parser.set_defaults(handler=run)
    return parser


#: What ``crashcart triage --help`` says the command does.
DESCRIPTION = (
    "Triage a Linux crash dump: panic, reason, backtraces, blocked tasks and the kernel log, "
    "as Markdown or JSON. With --vmlinux (and drgn, the [triage] extra) stacks are unwound "
    "from memory; without either, the report is made from the kernel log beside the dump."
)


def _epilog() -> str:
    return exit_code_epilog(
        [
            (0, "report written"),
            (2, "bad input: missing file, not a vmcore, truncated dump, wrong vmlinux"),
            (3, "triage failed unexpectedly (the message says what)"),
            (130, "interrupted"),
        ]
    )


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``triage`` on an ``argparse`` subparsers object."""
    parser = add_command(
        subparsers,
        "triage",
        help="triage a crash dump (panic, reason, backtraces, blocked tasks, dmesg)",
        doc=DESCRIPTION,
        epilog=_epilog(),
    )
    return configure(parser)


def run(args: argparse.Namespace) -> int:
    """Run triage for parsed ``args``; the exit code."""
    from crashcart.triage.core import DRGN_MISSING, TriageError, triage
    from crashcart.triage.report import render_markdown, to_json

    try:
        report = triage(args.vmcore, args.vmlinux, dmesg=args.dmesg)
        if any(note.startswith(DRGN_MISSING) for note in report.missing):
            print(
                f"crashcart triage: warning: {DRGN_MISSING}: the report is made from the "
                "kernel log only",
                file=sys.stderr,
            )
        text = to_json(report) if args.json else render_markdown(report)
        if args.output:
            args.output.write_text(text + "\n", encoding="utf-8")
        else:
            sys.stdout.write(text + "\n")
    except TriageError as error:
        print(f"crashcart triage: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("crashcart triage: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # never a traceback for people; say what failed
        print(
            f"crashcart triage: failed: {type(error).__name__}: {error}",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    return 0


def main(argv: list[str] | None = None) -> int:
    standalone = argparse.ArgumentParser(
        prog="python -m crashcart.triage",
        description=DESCRIPTION,
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_version_argument(standalone)
    parser = configure(standalone)
    args = parser.parse_args(argv)
    return run(args)
