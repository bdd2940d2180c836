"""Rewrite the acknowledgement table of docs/compliance.md from the synthesized app.

``python -m crashcart.tools.compliance_doc docs/compliance.md``
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from crashcart.tools.acknowledgements import read_report, render_markdown, summarize
from crashcart.tools.reference_synth import synthesize_reference_app

TABLE_START = "<!-- acknowledgements:start -->"
TABLE_END = "<!-- acknowledgements:end -->"


def replace_table(document: str, table: str) -> str:
    head, rest = document.split(TABLE_START, 1)
    _, tail = rest.split(TABLE_END, 1)
    return f"{head}{TABLE_START}\n{table}{TABLE_END}{tail}"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    doc = Path(args[0] if args else "docs/compliance.md")
    with tempfile.TemporaryDirectory() as outdir:
        synthesize_reference_app(Path(outdir))
        table = render_markdown(summarize(read_report(Path(outdir))))
    doc.write_text(replace_table(doc.read_text(encoding="utf-8"), table), encoding="utf-8")
    print(f"updated {doc}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
