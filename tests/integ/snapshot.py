"""The integ tests' snapshots: synthesized offline, compared in ``make test``, so they never
drift from the code. ``python -m tests.integ.snapshot`` rewrites them after a deliberate change.

Asset hashes are replaced by ``<asset>`` (they change with every byte of function code, which
the unit tests already cover) and the assertions' ``salt`` (the synth time, which makes each
deployment run the checks again) by ``<salt>``; everything else is compared as is.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

SNAPSHOT_DIR = Path(__file__).resolve().parent / "snapshots"
_HASH = re.compile(r"\b[0-9a-f]{64}\b")


def normalize(value: Any) -> Any:
    text = _HASH.sub("<asset>", json.dumps(value, sort_keys=True))
    return _unsalted(json.loads(text))


def _unsalted(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: "<salt>" if k == "salt" else _unsalted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unsalted(v) for v in value]
    return value


def synthesize() -> dict[str, Any]:
    """Every template of the integ app, normalized, by file name."""
    import aws_cdk as cdk

    from tests.integ.integ_canary_drill import build

    with tempfile.TemporaryDirectory() as outdir:
        app = cdk.App(outdir=outdir)
        build(app)
        app.synth()
        return {
            path.name: normalize(json.loads(path.read_text(encoding="utf-8")))
            for path in sorted(Path(outdir).glob("*.template.json"))
        }


def write() -> list[Path]:
    SNAPSHOT_DIR.mkdir(exist_ok=True)
    written = []
    for name, template in synthesize().items():
        path = SNAPSHOT_DIR / name
        path.write_text(json.dumps(template, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write():
        sys.stdout.write(f"wrote {path}\n")
