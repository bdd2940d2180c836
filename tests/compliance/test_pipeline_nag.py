"""CrashcartImagePipelineStack passes all five cdk-nag packs and cfn-lint; the
acknowledgements are listed here so that a new one shows in review."""

from __future__ import annotations

import contextlib
from pathlib import Path

import aws_cdk as cdk
import pytest

from crashcart.compliance import add_compliance_checks
from crashcart.stacks.image_pipeline import CrashcartImagePipelineStack
from tests.support.cfn_lint import cfn_lint
from tests.support.pipeline import ENV, acknowledged_findings, unacknowledged_findings

PATH = "CrashcartImagePipeline/KdumpImagePipeline"
SYMBOLS = "CrashcartImagePipeline/DebugSymbols"
IAM4 = "AwsSolutions::AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/"
IAM5 = "AwsSolutions::AwsSolutions-IAM5[Resource::"
PARTITION = "arn:<AWS::Partition>"

#: Every acknowledgement the pipeline stack carries: (finding id prefix, construct path).
EXPECTED_ACKNOWLEDGEMENTS = {
    (IAM4 + "AmazonSSMManagedInstanceCore]", f"{PATH}/InstanceRole"),
    (IAM4 + "service-role/EC2ImageBuilderLifecycleExecutionPolicy]", f"{PATH}/LifecycleRole"),
    (IAM5 + PARTITION + ":imagebuilder:<AWS::Region>:aws:component/*]", f"{PATH}/InstancePolicy"),
    (IAM5 + PARTITION + ":s3:::ec2imagebuilder*]", f"{PATH}/InstancePolicy"),
    (
        IAM5 + PARTITION + ":logs:<AWS::Region>:<AWS::AccountId>:log-group:/aws/imagebuilder/*]",
        f"{PATH}/InstancePolicy",
    ),
    (IAM5 + PARTITION + ":ec2:<AWS::Region>::image/*]", f"{PATH}/InstancePolicy"),
    (IAM5 + "<KdumpImagePipelineBuildLogsB124283A.Arn>/imagebuilder/*]", f"{PATH}/InstancePolicy"),
    ("NIST.800.53.R5::NIST.800.53.R5-S3DefaultEncryptionKMS", f"{PATH}/AccessLogs"),
    ("HIPAA.Security::HIPAA.Security-S3DefaultEncryptionKMS", f"{PATH}/AccessLogs"),
    ("PCI.DSS.321::PCI.DSS.321-S3DefaultEncryptionKMS", f"{PATH}/AccessLogs"),
    ("NIST.800.53.R5::NIST.800.53.R5-S3BucketReplicationEnabled", f"{PATH}/AccessLogs"),
    ("HIPAA.Security::HIPAA.Security-S3BucketReplicationEnabled", f"{PATH}/AccessLogs"),
    ("PCI.DSS.321::PCI.DSS.321-S3BucketReplicationEnabled", f"{PATH}/AccessLogs"),
    ("NIST.800.53.R5::NIST.800.53.R5-S3BucketReplicationEnabled", f"{PATH}/BuildLogs"),
    ("HIPAA.Security::HIPAA.Security-S3BucketReplicationEnabled", f"{PATH}/BuildLogs"),
    ("PCI.DSS.321::PCI.DSS.321-S3BucketReplicationEnabled", f"{PATH}/BuildLogs"),
    # the debug-symbol store the stack publishes each AMI's vmlinux to
    (IAM5 + "<DebugSymbolsBucketDAA9E3F7.Arn>/symbols/*]", f"{SYMBOLS}/PublishPolicy"),
    *{
        (f"{pack}::{pack}-{rule}", f"{SYMBOLS}/{where}")
        for pack in ("NIST.800.53.R5", "HIPAA.Security", "PCI.DSS.321")
        for rule, where in (
            ("S3DefaultEncryptionKMS", "AccessLogs"),
            ("S3BucketReplicationEnabled", "AccessLogs"),
            ("S3BucketReplicationEnabled", "Bucket"),
        )
    },
}  # fmt: skip


@pytest.fixture(scope="module")
def assembly(tmp_path_factory: pytest.TempPathFactory) -> Path:
    outdir = tmp_path_factory.mktemp("pipeline-nag")
    app = cdk.App(outdir=str(outdir))
    add_compliance_checks(app)
    CrashcartImagePipelineStack(app, "CrashcartImagePipeline", env=ENV)
    # An unacknowledged finding raises; the report says which, and the test below prints it.
    with contextlib.suppress(Exception):
        app.synth()
    return outdir


def test_all_five_packs_pass_with_no_unacknowledged_finding(assembly: Path) -> None:
    report = assembly / "validation-report.json"
    assert report.is_file()
    assert unacknowledged_findings(report) == []
    assert (assembly / "CrashcartImagePipeline.template.json").is_file()


def test_acknowledgements_are_exactly_the_reviewed_ones(assembly: Path) -> None:
    found = acknowledged_findings(assembly / "validation-report.json")
    assert {(finding, where) for finding, where, _ in found} == EXPECTED_ACKNOWLEDGEMENTS
    for finding, _, reason in found:
        assert len(reason) >= 40, finding


def test_cfn_lint_passes(assembly: Path) -> None:
    template = assembly / "CrashcartImagePipeline.template.json"
    result = cfn_lint(template)
    assert result.returncode == 0, result.stdout + result.stderr
