"""Read the compliance acknowledgements out of a synthesized cloud assembly.

The CDK writes ``validation-report.json`` into the assembly when validation plugins (the
cdk-nag packs) ran; every acknowledged finding is listed there with the construct it was
found on, where it was acknowledged and why. ``python -m crashcart.tools.acknowledgements
cdk.out`` prints them as the Markdown table kept in docs/compliance.md.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPORT_FILE = "validation-report.json"


@dataclass(frozen=True, order=True)
class Acknowledgement:
    """One acknowledged finding on one construct."""

    pack: str
    rule: str
    construct_path: str
    reason: str


@dataclass(frozen=True)
class ComplianceSummary:
    """What the packs said about an assembly."""

    packs: tuple[str, ...]
    violations: int
    acknowledgements: tuple[Acknowledgement, ...]


def read_report(assembly_dir: Path) -> dict[str, Any]:
    path = assembly_dir / REPORT_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist: the compliance packs did not run on this assembly"
        )
    report: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return report


def summarize(report: dict[str, Any]) -> ComplianceSummary:
    packs: list[str] = []
    violations = 0
    acks: set[Acknowledgement] = set()
    for plugin in report.get("pluginReports", []):
        pack = str(plugin["pluginName"])
        packs.append(pack)
        for violation in plugin.get("violations", []):
            violations += len(violation.get("violatingConstructs", [])) or 1
        for finding in plugin.get("suppressedViolations", []):
            for construct in finding.get("violatingConstructs", []):
                acks.add(
                    Acknowledgement(
                        pack=pack,
                        rule=str(finding["ruleName"]),
                        construct_path=str(construct["constructPath"]),
                        reason=str(finding.get("reason", "")),
                    )
                )
    return ComplianceSummary(
        packs=tuple(packs), violations=violations, acknowledgements=tuple(sorted(acks))
    )


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(summary: ComplianceSummary) -> str:
    """The acknowledgement table, one row per (pack, rule, construct)."""
    lines = [
        "| pack | rule | construct | reason |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {_cell(a.pack)} | `{_cell(a.rule)}` | `{_cell(a.construct_path)}` | {_cell(a.reason)} |"
        for a in summary.acknowledgements
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    assembly = Path(args[0] if args else "cdk.out")
    print(render_markdown(summarize(read_report(assembly))), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
