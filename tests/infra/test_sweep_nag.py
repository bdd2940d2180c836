"""DumpOverdueSweep passes all five cdk-nag packs with narrow acknowledgements, and cfn-lint.

One app (nag plugins on) with two stacks, synthesized once per module:

- ``SweepOwnKey``: the construct creates its key; table and topic are imported, each with
  its own customer key (what ``DumpOverdueSweep`` sees next to an existing deployment);
- ``SweepSharedKey``: stand-ins of the remediation construct's table and topic encrypted
  with one key, which is also given as ``encryption_key`` (the reference wiring).
"""

from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns

from crashcart.compliance import add_compliance_checks
from crashcart.constructs.dump_overdue_sweep import DumpOverdueSweep
from tests.conftest import TEST_ACCOUNT, TEST_REGION
from tests.support.cfn_lint import cfn_lint
from tests.support.incidents import stand_in_incidents, store_of
from tests.support.nag import assert_every_pack_ran_clean, validation_report

STACKS = ("SweepOwnKey", "SweepSharedKey")
ARN = f"{TEST_REGION}:{TEST_ACCOUNT}"


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> Path:
    outdir = tmp_path_factory.mktemp("cdk-out-sweep")
    app = cdk.App(outdir=str(outdir))
    add_compliance_checks(app)
    env = cdk.Environment(account=TEST_ACCOUNT, region=TEST_REGION)

    own = cdk.Stack(app, STACKS[0], env=env)
    table = dynamodb.Table.from_table_attributes(
        own,
        "Incidents",
        table_arn=f"arn:aws:dynamodb:{ARN}:table/crashcart-incidents",
        encryption_key=kms.Key.from_key_arn(
            own, "TableKey", f"arn:aws:kms:{ARN}:key/11111111-1111-4111-8111-111111111111"
        ),
    )
    topic = sns.Topic.from_topic_attributes(
        own,
        "Topic",
        topic_arn=f"arn:aws:sns:{ARN}:crashcart",
        key_arn=f"arn:aws:kms:{ARN}:key/22222222-2222-4222-8222-222222222222",
    )
    DumpOverdueSweep(own, "Sweep", incidents=store_of(own, table, topic))

    shared = cdk.Stack(app, STACKS[1], env=env)
    stand_in, stand_in_topic, key = stand_in_incidents(shared)
    DumpOverdueSweep(
        shared, "Sweep", incidents=store_of(shared, stand_in, stand_in_topic), encryption_key=key
    )
    app.synth()  # raises ValidationFailed on any unacknowledged finding
    return outdir


def test_all_five_packs_pass(synthesized: Path) -> None:
    assert_every_pack_ran_clean(synthesized)


def test_acknowledgements_are_narrow_and_listed(synthesized: Path) -> None:
    """Every acknowledgement, where it sits: a new one shows here (and in the docs)."""
    found = set()
    for plugin in validation_report(synthesized)["pluginReports"]:
        for violation in plugin.get("suppressedViolations", []):
            assert len(violation.get("reason", "")) >= 20, violation
            for construct in violation["violatingConstructs"]:
                stack, path = construct["constructPath"].split("/", 1)
                found.add((stack, path.split("/Resource")[0], violation["acknowledgedId"]))
    expected = set()
    for stack in STACKS:
        expected.add((stack, "Sweep/DeadLetterQueue", "AwsSolutions::AwsSolutions-SQS3"))
        # the attestation census: ec2:DescribeInstances cannot be resource-scoped
        expected.add((stack, "Sweep/Policy", "AwsSolutions::AwsSolutions-IAM5[Resource::*]"))
        expected.add((stack, "Sweep/DeadLetterQueue", "Serverless::Serverless-SQSRedrivePolicy"))
        for rule in ("LambdaTracing", "LambdaDLQ"):
            expected.add((stack, "Sweep/Function", f"Serverless::Serverless-{rule}"))
        for pack in ("NIST.800.53.R5", "HIPAA.Security", "PCI.DSS.321"):
            expected.add((stack, "Sweep/Function", f"{pack}::{pack}-LambdaInsideVPC"))
        for pack in ("NIST.800.53.R5", "HIPAA.Security"):
            expected.add((stack, "Sweep/Function", f"{pack}::{pack}-LambdaDLQ"))
            expected.add((stack, "Sweep/Function", f"{pack}::{pack}-LambdaConcurrency"))
    for pack in ("NIST.800.53.R5", "HIPAA.Security"):
        expected.add((STACKS[1], "Incidents", f"{pack}::{pack}-DynamoDBInBackupPlan"))
    assert found == expected


@pytest.mark.parametrize("stack", STACKS)
def test_cfn_lint(synthesized: Path, stack: str) -> None:
    template = synthesized / f"{stack}.template.json"
    result = cfn_lint(template)
    assert result.returncode == 0, result.stdout + result.stderr
