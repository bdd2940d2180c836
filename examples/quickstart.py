"""crashcart in one file: the README's quick start (tests/unit/test_examples.py runs it).

A tooling stack bakes kdump-ready AMIs and keeps their kernels' debug symbols; a workload
stack watches opted-in instances, interrupts a hung one (dry run first), collects its dump,
makes the full triage report, notifies on-call and lets them interrupt by hand or stop
everything with the kill switch. Deploy it with ``cdk deploy --all`` (README: Deploy).
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sns_subscriptions as subscriptions

from crashcart import OptInTag
from crashcart.constructs import (
    CrashDumpBucket,
    DebugSymbolStore,
    DiagnosticInterruptOperatorPolicy,
    DumpOverdueSweep,
    DumpTriageJob,
    FleetWatch,
    KdumpImagePipeline,
    UnresponsiveInstanceRemediation,
)


def build(app: cdk.App) -> list[cdk.Stack]:
    tag = OptInTag()  # crashcart:diagnostic-interrupt = enabled

    # bake: an Image Builder pipeline for Amazon Linux 2023 AMIs with kdump armed,
    # publishing each kernel's debug vmlinux to a symbol store (by build id)
    tooling = cdk.Stack(app, "Tooling")
    symbols = DebugSymbolStore(tooling, "Symbols")
    KdumpImagePipeline(tooling, "Images", architecture="x86_64", debug_symbols=symbols)

    # detect, interrupt, capture: every opted-in instance of the account and region
    workload = cdk.Stack(app, "Workload")
    dumps = CrashDumpBucket(workload, "Dumps")
    remediation = UnresponsiveInstanceRemediation(
        workload,
        "Remediation",
        fleet=FleetWatch(),
        tag=tag,
        dumps=dumps,
        dry_run=True,  # shadow mode: every guard runs, the interrupt is a DryRun call
        notifications=[subscriptions.EmailSubscription("oncall@example.com")],
    )
    dumps.notify_incidents(incidents=remediation.incidents)
    # triage: a Fargate task per dump writes the full report with the kernel's symbols
    DumpTriageJob(
        workload,
        "Triage",
        dumps=dumps,
        incidents=remediation.incidents,
        symbols=symbols,
    )
    DumpOverdueSweep(
        workload,
        "OverdueDumps",
        incidents=remediation.incidents,
        encryption_key=remediation.key,
    )

    # people: on-call may interrupt tagged instances by hand (never tag them), and may
    # stop every interrupt at once with the kill switch
    on_call = iam.Role(workload, "OnCall", assumed_by=iam.AccountRootPrincipal())
    DiagnosticInterruptOperatorPolicy(workload, "OnCallInterrupt", tag=tag, roles=[on_call])
    remediation.grant_kill_switch(on_call)
    return [tooling, workload]


if __name__ == "__main__":
    app = cdk.App()
    build(app)
    app.synth()
