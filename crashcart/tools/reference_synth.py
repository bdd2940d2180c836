"""Synthesize the reference app in-process exactly as ``make synth`` does.

Used by the doc generators and the tests, which must describe exactly what deploys: the same
``cdk.json`` context (feature flags), no account or region (environment-agnostic), and the
compliance packs on.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aws_cdk as cdk

from crashcart.compliance import add_compliance_checks
from crashcart.stacks import build_reference_app

#: The repository root when running from a source checkout (no cdk.json in a wheel).
REPO_ROOT = Path(__file__).resolve().parents[2]


def cdk_json_context() -> dict[str, Any]:
    """The ``context`` of the repository's cdk.json, or nothing outside a checkout."""
    cdk_json = REPO_ROOT / "cdk.json"
    if not cdk_json.is_file():
        return {}
    context: dict[str, Any] = json.loads(cdk_json.read_text(encoding="utf-8")).get("context", {})
    return context


def synthesize_reference_app(
    outdir: Path, *, with_compliance: bool = True, context: dict[str, Any] | None = None
) -> cdk.App:
    """Build and synthesize the reference app into ``outdir``; return the app.

    :param context: extra context on top of cdk.json's (e.g. ``crashcart:region``).
    """
    app = cdk.App(outdir=str(outdir), context={**cdk_json_context(), **(context or {})})
    build_reference_app(app)
    if with_compliance:
        add_compliance_checks(app)
    app.synth()
    return app
