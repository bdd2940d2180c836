"""The reference app synthesized WITHOUT the compliance packs, for template assertions.

cdk-nag stays out of apps whose templates a test asserts on (``Template.from_stack`` runs the
validation plugins, and a finding elsewhere must not hide what the assertion checks).
:func:`reference_templates_without_nag` is one synthesis with cdk.json's context, shared by
every test of a process; :func:`synthesize` adds a given CDK context (as ``cdk synth -c k=v``
would), each distinct context synthesized once per test session.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import aws_cdk as cdk

from crashcart.tools.reference_synth import synthesize_reference_app
from crashcart.tools.synth_summary import stack_templates


@dataclass(frozen=True)
class Synthesized:
    """Templates (stack name -> template) and environments of one synthesized app."""

    templates: dict[str, dict[str, Any]]
    environments: dict[str, str]
    app: cdk.App
    outdir: Path

    def resources(self, stack: str, kind: str) -> dict[str, Any]:
        return {
            logical: resource
            for logical, resource in self.templates[stack]["Resources"].items()
            if resource["Type"] == kind
        }

    def all_resources(self) -> list[tuple[str, str, dict[str, Any]]]:
        """(stack, logical id, resource) of every stack."""
        return [
            (stack, logical, resource)
            for stack, template in self.templates.items()
            for logical, resource in template["Resources"].items()
        ]


def synthesize(context: dict[str, Any] | None = None) -> Synthesized:
    """The reference app synthesized with cdk.json's context plus ``context``."""
    key = json.dumps(context or {}, sort_keys=True)
    return _synthesize(key)


@lru_cache(maxsize=16)
def _synthesize(key: str) -> Synthesized:
    outdir = Path(tempfile.mkdtemp(prefix="crashcart-reference-"))
    app = synthesize_reference_app(outdir, with_compliance=False, context=json.loads(key))
    assembly = app.synth()
    templates = {stack.stack_name: stack.template for stack in assembly.stacks}
    environments = {
        stack.stack_name: f"aws://{stack.environment.account}/{stack.environment.region}"
        for stack in assembly.stacks
    }
    return Synthesized(templates=templates, environments=environments, app=app, outdir=outdir)


def reference_template_files_without_nag() -> dict[str, Path]:
    """Stack name -> template file of the reference app, with cdk.json's context."""
    return stack_templates(synthesize().outdir)


def reference_templates_without_nag() -> dict[str, dict[str, Any]]:
    """Stack name -> template (parsed JSON) of the reference app, with cdk.json's context."""
    return synthesize().templates


def construct_paths(app: cdk.App) -> dict[tuple[str, str], str]:
    """(stack name, logical id) -> construct path of the L2 (``.../Resource`` dropped)."""
    paths: dict[tuple[str, str], str] = {}
    for node in app.node.find_all():
        if isinstance(node, cdk.CfnResource):
            stack = cdk.Stack.of(node)
            logical = stack.resolve(node.logical_id)
            path = node.node.path.removesuffix("/Resource").removesuffix("/Default")
            paths[(stack.stack_name, logical)] = path
    return paths
