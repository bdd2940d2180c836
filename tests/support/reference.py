"""The reference app synthesized WITHOUT the compliance packs, for template assertions.

cdk-nag stays out of apps whose templates a test asserts on (``Template.from_stack`` runs the
validation plugins, and a finding elsewhere must not hide what the assertion checks). One
synthesis per test process, shared by every test that reads the reference templates.
"""

from __future__ import annotations

import functools
import json
import tempfile
from pathlib import Path
from typing import Any


@functools.cache
def reference_template_files_without_nag() -> dict[str, Path]:
    """Stack name -> template file of the reference app, with cdk.json's context."""
    from crashcart.tools.reference_synth import synthesize_reference_app
    from crashcart.tools.synth_summary import stack_templates

    outdir = Path(tempfile.mkdtemp(prefix="crashcart-reference-"))
    synthesize_reference_app(outdir, with_compliance=False)
    return stack_templates(outdir)


@functools.cache
def reference_templates_without_nag() -> dict[str, dict[str, Any]]:
    """Stack name -> template (parsed JSON) of the reference app, with cdk.json's context."""
    return {
        name: json.loads(path.read_text(encoding="utf-8"))
        for name, path in reference_template_files_without_nag().items()
    }
