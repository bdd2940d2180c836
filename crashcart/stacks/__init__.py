"""Deployable reference stacks composed from crashcart's constructs.

:func:`build_reference_app` is what ``app.py`` (and so ``make synth``) deploys: a pipeline
stack that bakes kdump-ready AMIs (it may live in a tooling account) and the stacks that
watch, interrupt and collect in a workload account.
"""

from __future__ import annotations

import aws_cdk as cdk

from crashcart.opt_in import OptInTag

#: CDK context keys the reference app reads (``cdk synth -c key=value``).
CONTEXT_ACCOUNT = "crashcart:account"
CONTEXT_REGION = "crashcart:region"


def reference_environment(app: cdk.App) -> cdk.Environment:
    """The account and region from context; without them the stacks are environment-agnostic."""
    account = app.node.try_get_context(CONTEXT_ACCOUNT)
    region = app.node.try_get_context(CONTEXT_REGION)
    return cdk.Environment(account=account or None, region=region or None)


def build_reference_app(app: cdk.App) -> list[cdk.Stack]:
    """Add the reference stacks to ``app`` and return them."""
    from crashcart.stacks.access import CrashcartAccessStack
    from crashcart.stacks.image_pipeline import CrashcartImagePipelineStack
    from crashcart.stacks.remediation import CrashcartRemediationStack

    env = reference_environment(app)
    tag = OptInTag()
    images = CrashcartImagePipelineStack(
        app,
        "CrashcartImagePipeline",
        env=env,
        description="crashcart: EC2 Image Builder pipeline for kdump-ready, hardened AMIs",
    )
    access = CrashcartAccessStack(
        app,
        "CrashcartAccess",
        tag=tag,
        env=env,
        description="crashcart: operator access to diagnostic interrupts on opted-in instances",
    )
    remediation = CrashcartRemediationStack(
        app,
        "CrashcartRemediation",
        tag=tag,
        symbol_store=images.debug_symbols,
        env=env,
        description="crashcart: status-check alarms -> guarded diagnostic interrupts (dry run)",
    )
    return [images, access, remediation]
