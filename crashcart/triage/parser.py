"""The parser: the only part of the triage job that opens a dump with C code (drgn).

Started by the supervisor (:mod:`crashcart.triage.job`) through
:func:`crashcart.triage.sandbox.run_parser`: as another user, with no credentials, under
resource limits. It reads the files the supervisor downloaded and writes one JSON document:

    {"ok": true, "report": {...}, "vmlinux_used": true, "notes": [...]}
    {"ok": false, "error": "why the dump cannot be triaged"}

Nothing it writes is trusted: the supervisor reads at most
:data:`~crashcart.triage.sandbox.MAX_REPORT_BYTES` and checks every field
(:mod:`crashcart.triage.report_check`) before quoting any of it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from crashcart.triage.core import TriageError, triage
from crashcart.triage.report import Report, to_dict


def parse_dump(vmcore: Path, vmlinux: Path | None, dmesg: Path | None) -> dict[str, object]:
    """Triage with the vmlinux; if it does not fit the dump, again from the log alone."""
    notes: list[str] = []
    report: Report | None = None
    if vmlinux is not None:
        try:
            report = triage(vmcore, vmlinux, dmesg=dmesg)
        except TriageError as error:
            notes.append(f"the symbol store's vmlinux was not used: {error}")
    used = report is not None
    if report is None:
        try:
            report = triage(vmcore, None, dmesg=dmesg)
        except TriageError as error:
            return {"ok": False, "error": str(error)}
    return {"ok": True, "report": to_dict(report), "vmlinux_used": used, "notes": notes}


def main(argv: list[str] | None = None) -> int:
    options = argparse.ArgumentParser(prog="crashcart.triage.parser")
    options.add_argument("--vmcore", type=Path, required=True)
    options.add_argument("--vmlinux", type=Path)
    options.add_argument("--dmesg", type=Path)
    options.add_argument("--report", type=Path, required=True)
    args = options.parse_args(argv)
    try:
        result = parse_dump(args.vmcore, args.vmlinux, args.dmesg)
    except MemoryError:
        result = {"ok": False, "error": "the parser ran out of its memory limit"}
    args.report.write_text(json.dumps(result), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
