"""Deployable reference stacks composed from crashcart's constructs.

:func:`build_reference_app` is what ``app.py`` (and so ``make synth``) deploys: a pipeline
stack that bakes kdump-ready AMIs (it may live in a tooling account) and the stacks that
watch, interrupt and collect in a workload account.
"""

from __future__ import annotations

import aws_cdk as cdk

from crashcart.opt_in import OptInTag
from crashcart.stacks.settings import CONTEXT_KEYS, ReferenceSettings

#: CDK context keys the reference app reads (``cdk synth -c key=value``); all of them are
#: in :data:`crashcart.stacks.settings.CONTEXT_KEYS`.
CONTEXT_ACCOUNT = "crashcart:account"
CONTEXT_REGION = "crashcart:region"

__all__ = [
    "CONTEXT_ACCOUNT",
    "CONTEXT_KEYS",
    "CONTEXT_REGION",
    "ReferenceSettings",
    "build_reference_app",
    "reference_environment",
]


def reference_environment(app: cdk.App) -> cdk.Environment:
    """The account and region from context; without them the stacks are environment-agnostic."""
    settings = ReferenceSettings.from_context(app.node.get_all_context())
    return cdk.Environment(account=settings.account, region=settings.region)


def build_reference_app(app: cdk.App) -> list[cdk.Stack]:
    """Add the reference stacks to ``app`` and return them.

    What is deployed follows the app's CDK context (:mod:`crashcart.stacks.settings`, the
    table in docs/operations.md): dry-run or armed, the fleet or listed instances, with or
    without the triage job, and who is notified.

    :raises ConfigurationError: a context value that is not allowed (naming the key).
    """
    from aws_cdk import aws_sns as sns
    from aws_cdk import aws_sns_subscriptions as subscriptions

    from crashcart.stacks.access import CrashcartAccessStack
    from crashcart.stacks.image_pipeline import CrashcartImagePipelineStack
    from crashcart.stacks.remediation import CrashcartRemediationStack

    settings = ReferenceSettings.from_context(app.node.get_all_context())
    env = cdk.Environment(account=settings.account, region=settings.region)
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
    notifications: list[sns.ITopicSubscription] = [
        subscriptions.EmailSubscription(address) for address in settings.notify_emails
    ]
    notifications += [subscriptions.UrlSubscription(url) for url in settings.notify_urls]
    mode = "dry run" if settings.dry_run else "armed"
    remediation = CrashcartRemediationStack(
        app,
        "CrashcartRemediation",
        tag=tag,
        dry_run=settings.dry_run,
        instance_ids=settings.instance_ids,
        auto_scaling_group_names=settings.auto_scaling_groups,
        full_triage=settings.triage,
        symbol_store=images.debug_symbols if settings.triage else None,
        notifications=notifications,
        arm_running_instances=settings.arm_running_instances,
        hold_backstop=settings.resource_tags_for_telemetry,
        env=env,
        description=f"crashcart: status-check alarms -> guarded diagnostic interrupts ({mode})",
    )
    return [images, access, remediation]
