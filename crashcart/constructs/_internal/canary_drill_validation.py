"""The canary drill's validation of its props: each error names the value, what is allowed, why."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

import aws_cdk as cdk

from crashcart.constructs.kdump_image_pipeline import KdumpImagePipeline
from crashcart.errors import ConfigurationError

#: An instance type name whose family is not Graviton (A1, or a ``g`` in the suffix after
#: the generation digit: m7g, c7gn, x2gd, im4gn, is4gen).
_X86_TYPE: Final = re.compile(r"(?!a1\.)[a-z]+[0-9]+(?:(?![a-z-]*g)[a-z-]*)\.[a-z0-9-]+")


def bounded_seconds(name: str, value: cdk.Duration, low: int, high: int) -> int:
    """``value`` in whole seconds from ``low`` to ``high`` (tokens refused: they size timeouts)."""
    if value.is_unresolved():
        raise ConfigurationError(f"{name}: give a concrete duration (it sizes the timeouts)")
    seconds = int(value.to_seconds())
    if not low <= seconds <= high:
        raise ConfigurationError(
            f"{name}={value.to_human_string()}: give {low} s to {high} s (every wait has a "
            "bound, and the canaries' cost grows with it)"
        )
    return seconds


def check_instance_types(instance_types: Sequence[str], *, limit: int) -> tuple[str, ...]:
    """1 to ``limit`` distinct x86_64 type names."""
    types = tuple(instance_types)
    if not 1 <= len(types) <= limit or len(set(types)) != len(types):
        raise ConfigurationError(
            f"instance_types={list(types)!r}: give 1 to {limit} distinct types (each "
            "is one canary per drill)"
        )
    for name in types:
        if not cdk.Token.is_unresolved(name) and not _X86_TYPE.fullmatch(name):
            raise ConfigurationError(
                f"instance_types: {name!r} is not an x86_64 type name (e.g. m7i.large; "
                "Graviton types carry a 'g' after the generation, e.g. m7g): the interrupt "
                "is verified on x86_64 Nitro only"
            )
    return types


def check_pipeline(pipeline: KdumpImagePipeline) -> None:
    """x86_64 Linux, and candidates that stay in this account and Region until they pass."""
    if pipeline.family.startswith("windows") or pipeline.architecture != "x86_64":
        raise ConfigurationError(
            f"pipeline {pipeline.family} / {pipeline.architecture}: the canary drill proves "
            "the x86_64 Linux interrupt path only (Windows has no dump shipper or triage "
            "yet; the EC2 user guide excludes Graviton from SendDiagnosticInterrupt). "
            "Promote those AMIs after a manual check"
        )
    stack = cdk.Stack.of(pipeline)
    for target in stack.resolve(pipeline.distribution_configuration.distributions) or []:
        config = target.get("amiDistributionConfiguration") or {}
        shared = config.get("LaunchPermissionConfiguration")
        if shared or target.get("region") not in (stack.region, stack.resolve(stack.region)):
            raise ConfigurationError(
                "pipeline distribution shares or copies candidates before the drill "
                f"({target.get('region')}, {shared}): with a canary drill, candidates stay "
                "in this account and Region; distribute the verified AMI instead"
            )
        for template in target.get("launchTemplateConfigurations") or []:
            if template.get("setDefaultVersion") is True:
                raise ConfigurationError(
                    "pipeline set_launch_template_default=True: every candidate would become "
                    "the launch templates' default before the drill; with a canary drill, "
                    "point launch templates at the verified parameter instead "
                    "(resolve:ssm:<verified parameter>)"
                )
