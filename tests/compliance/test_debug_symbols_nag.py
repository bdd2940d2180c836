"""A DebugSymbolStore with a KdumpImagePipeline that publishes to it and a reader passes all
five cdk-nag packs and cfn-lint; the acknowledgements are listed so that a new one shows in
review (the pipeline's own are those of tests/compliance/test_pipeline_nag.py)."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import aws_iam as iam

from crashcart.compliance import NAG_PACKS, add_compliance_checks
from crashcart.constructs.debug_symbol_store import DebugSymbolStore
from crashcart.constructs.kdump_image_pipeline import KdumpImagePipeline
from tests.support.cfn_lint import cfn_lint
from tests.support.pipeline import ENV, acknowledged_findings, unacknowledged_findings

STACK = "DebugSymbols"
STORE = f"{STACK}/Symbols"
IMAGES = f"{STACK}/Images"
IAM4 = "AwsSolutions::AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/"
IAM5 = "AwsSolutions::AwsSolutions-IAM5[Resource::"
PARTITION = "arn:<AWS::Partition>"
PACKS = ("NIST.800.53.R5", "HIPAA.Security", "PCI.DSS.321")

#: The store's acknowledgements: (finding id, construct path).
STORE_ACKNOWLEDGEMENTS = {
    (IAM5 + "<SymbolsBucketC1D4B1B8.Arn>/symbols/*]", f"{STORE}/PublishPolicy"),
    (IAM5 + "<SymbolsBucketC1D4B1B8.Arn>/symbols/*]", f"{STORE}/ReadPolicy"),
    *((f"{p}::{p}-S3DefaultEncryptionKMS", f"{STORE}/AccessLogs") for p in PACKS),
    *((f"{p}::{p}-S3BucketReplicationEnabled", f"{STORE}/AccessLogs") for p in PACKS),
    *((f"{p}::{p}-S3BucketReplicationEnabled", f"{STORE}/Bucket") for p in PACKS),
}
#: The pipeline's, unchanged by debug_symbols (no lifecycle policy here).
PIPELINE_ACKNOWLEDGEMENTS = {
    (IAM4 + "AmazonSSMManagedInstanceCore]", f"{IMAGES}/InstanceRole"),
    (IAM5 + PARTITION + ":imagebuilder:<AWS::Region>:aws:component/*]", f"{IMAGES}/InstancePolicy"),
    (IAM5 + PARTITION + ":s3:::ec2imagebuilder*]", f"{IMAGES}/InstancePolicy"),
    (
        IAM5 + PARTITION + ":logs:<AWS::Region>:<AWS::AccountId>:log-group:/aws/imagebuilder/*]",
        f"{IMAGES}/InstancePolicy",
    ),
    (IAM5 + PARTITION + ":ec2:<AWS::Region>::image/*]", f"{IMAGES}/InstancePolicy"),
    (IAM5 + "<ImagesBuildLogsF5958BAA.Arn>/imagebuilder/*]", f"{IMAGES}/InstancePolicy"),
    *((f"{p}::{p}-S3DefaultEncryptionKMS", f"{IMAGES}/AccessLogs") for p in PACKS),
    *((f"{p}::{p}-S3BucketReplicationEnabled", f"{IMAGES}/AccessLogs") for p in PACKS),
    *((f"{p}::{p}-S3BucketReplicationEnabled", f"{IMAGES}/BuildLogs") for p in PACKS),
}  # fmt: skip


@pytest.fixture(scope="module")
def assembly(tmp_path_factory: pytest.TempPathFactory) -> Path:
    outdir = tmp_path_factory.mktemp("debug-symbols-nag")
    app = cdk.App(outdir=str(outdir))
    add_compliance_checks(app)
    stack = cdk.Stack(app, STACK, env=ENV)
    store = DebugSymbolStore(stack, "Symbols")
    KdumpImagePipeline(stack, "Images", architecture="x86_64", debug_symbols=store)
    triage = iam.Role(
        stack, "TriageRole", assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com")
    )
    store.grant_read(triage)
    # An unacknowledged finding raises; the report says which, and the test below prints it.
    with contextlib.suppress(Exception):
        app.synth()
    return outdir


def test_all_packs_ran_with_no_unacknowledged_finding(assembly: Path) -> None:
    report_path = assembly / "validation-report.json"
    assert unacknowledged_findings(report_path) == []
    report = json.loads(report_path.read_text(encoding="utf-8"))
    # A pack with nothing to say is left out of the report: the stack has no function,
    # queue or rule, so the Serverless pack finds nothing (tests/compliance/
    # test_reference_app_compliance.py proves it watches every stack).
    expected = [pack for pack in NAG_PACKS if pack != "Serverless"]
    assert [plugin["pluginName"] for plugin in report["pluginReports"]] == expected
    assert (assembly / f"{STACK}.template.json").is_file()


def test_acknowledgements_are_exactly_the_reviewed_ones(assembly: Path) -> None:
    found = acknowledged_findings(assembly / "validation-report.json")
    assert {
        (f, where) for f, where, _ in found
    } == STORE_ACKNOWLEDGEMENTS | PIPELINE_ACKNOWLEDGEMENTS
    for finding, _, reason in found:
        assert len(reason) >= 40, finding


def test_cfn_lint_passes(assembly: Path) -> None:
    result = cfn_lint(assembly / f"{STACK}.template.json")
    assert result.returncode == 0, result.stdout + result.stderr
