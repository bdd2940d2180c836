"""Say what ``make synth`` produced: the templates, their sizes, the compliance report.

``python -m crashcart.tools.synth_summary cdk.out`` also writes
``cdk.out/compliance-report.md`` (the packs that ran and every acknowledged finding).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from crashcart.tools.acknowledgements import REPORT_FILE, read_report, render_markdown, summarize

COMPLIANCE_REPORT = "compliance-report.md"


def stack_templates(assembly_dir: Path) -> dict[str, Path]:
    """Stack name -> template file, from the assembly manifest."""
    manifest = json.loads((assembly_dir / "manifest.json").read_text(encoding="utf-8"))
    templates: dict[str, Path] = {}
    for name, artifact in manifest.get("artifacts", {}).items():
        if artifact.get("type") == "aws:cloudformation:stack":
            templates[name] = assembly_dir / artifact["properties"]["templateFile"]
    return templates


def describe(assembly_dir: Path) -> str:
    lines = [f"Synthesized into {assembly_dir.resolve()}/", "", "Templates:"]
    for name, path in sorted(stack_templates(assembly_dir).items()):
        template = json.loads(path.read_text(encoding="utf-8"))
        count = len(template.get("Resources", {}))
        size = path.stat().st_size
        lines.append(f"  {name:<32} {path}  ({count} resources, {size:,} bytes)")
    summary = summarize(read_report(assembly_dir))
    report = assembly_dir / COMPLIANCE_REPORT
    report.write_text(
        "# Compliance report\n\n"
        f"Packs: {', '.join(summary.packs)}\n\n"
        f"Unacknowledged findings: {summary.violations}\n\n"
        "## Acknowledged findings\n\n" + render_markdown(summary),
        encoding="utf-8",
    )
    lines += [
        "",
        f"Compliance packs: {', '.join(summary.packs)}",
        f"  unacknowledged findings: {summary.violations}; "
        f"acknowledged: {len(summary.acknowledgements)}",
        f"  full report: {assembly_dir / REPORT_FILE}",
        f"  acknowledgements: {report}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    print(describe(Path(args[0] if args else "cdk.out")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
