"""The deployable image-pipeline stack: bakes kdump-ready AMIs (e.g. in a tooling account)."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from constructs import Construct

from crashcart.components.families import Architecture, Family
from crashcart.constructs.debug_symbol_store import DebugSymbolStore
from crashcart.constructs.kdump_image_pipeline import KdumpImagePipeline
from crashcart.kdump import KdumpSettings


class CrashcartImagePipelineStack(cdk.Stack):
    """One :class:`KdumpImagePipeline` with crashcart's secure defaults.

    A team may bake in a tooling account and run remediation in workload accounts: this stack
    has no dependency on the others. The pipeline's ARN and the candidate-AMI parameter name
    are stack outputs. The debug-symbol store (``self.debug_symbols``) receives the debug
    vmlinux of every AMI's kernel; the reference app's triage job reads it.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        family: Family = "amazon-linux-2023",
        architecture: Architecture = "x86_64",
        kdump: KdumpSettings | None = None,
        deprecate_after: cdk.Duration | None = cdk.Duration.days(90),  # noqa: B008 - immutable
        publish_debug_symbols: bool = True,
        **stack_kwargs: Any,
    ) -> None:
        """Create the stack.

        :param family: the OS family. Default: ``"amazon-linux-2023"``.
        :param architecture: Default: ``"x86_64"`` (the verified interrupt path).
        :param kdump: kdump settings. Default: ``KdumpSettings()``.
        :param deprecate_after: deprecate AMIs older than this. Default: 90 days.
        :param publish_debug_symbols: create a ``DebugSymbolStore`` and publish each AMI's
            debug vmlinux to it (Linux families). Default: True.
        :param stack_kwargs: passed to ``cdk.Stack`` (``env``, ``description``, ...).
        """
        super().__init__(scope, construct_id, **stack_kwargs)
        #: Where the debug vmlinux of each baked kernel goes (None when not published).
        self.debug_symbols: DebugSymbolStore | None = (
            DebugSymbolStore(self, "DebugSymbols") if publish_debug_symbols else None
        )
        self.pipeline = KdumpImagePipeline(
            self,
            "KdumpImagePipeline",
            family=family,
            architecture=architecture,
            kdump=kdump,
            deprecate_after=deprecate_after,
            debug_symbols=self.debug_symbols,
        )
        cdk.CfnOutput(
            self,
            "PipelineArn",
            value=self.pipeline.pipeline_arn,
            description="Start a build: aws imagebuilder start-image-pipeline-execution",
        )
        cdk.CfnOutput(
            self,
            "CandidateAmiParameter",
            value=self.pipeline.candidate_ami_parameter_name,
            description="SSM parameter Image Builder writes each new (candidate) AMI id to",
        )
