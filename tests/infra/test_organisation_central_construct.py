"""OrganisationCentral synthesized (issue 23): what the central account holds, who may do
what with it, the incident view's wiring, its function asset and the prop checks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Match, Template

from crashcart.constructs.organisation_central import OrganisationCentral
from crashcart.errors import ConfigurationError
from crashcart.runtime import environment as variables
from tests.conftest import TEST_ACCOUNT, TEST_REGION

ORG = "o-a1b2c3d4e5"


def _stack() -> cdk.Stack:
    app = cdk.App()
    return cdk.Stack(app, "Central", env=cdk.Environment(account=TEST_ACCOUNT, region=TEST_REGION))


@pytest.fixture(scope="module")
def central() -> OrganisationCentral:
    return OrganisationCentral(_stack(), "Central", organisation_id=ORG)


@pytest.fixture(scope="module")
def template(central: OrganisationCentral) -> Template:
    return Template.from_stack(cdk.Stack.of(central))


def test_minimal_props_resource_counts(template: Template) -> None:
    counts = {
        "AWS::S3::Bucket": 2,  # dumps + their access logs
        "AWS::KMS::Key": 4,  # dumps, incidents (table + topic), view (logs + queues), breaker
        "AWS::DynamoDB::Table": 2,  # the incident view, the organisation breaker
        "AWS::SNS::Topic": 1,
        "AWS::Events::EventBus": 1,
        "AWS::Events::EventBusPolicy": 1,
        "AWS::Events::Rule": 2,
        "AWS::Lambda::Function": 1,
        "AWS::SQS::Queue": 2,
        "AWS::CloudWatch::Alarm": 4,
        "AWS::IAM::Role": 1,
        "AWS::IAM::ManagedPolicy": 1,
    }
    for kind, count in counts.items():
        template.resource_count_is(kind, count)


def test_the_dump_bucket_is_owner_enforced_kms_encrypted_and_versioned(template: Template) -> None:
    template.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "BucketEncryption": {
                "ServerSideEncryptionConfiguration": [
                    Match.object_like(
                        {
                            "BucketKeyEnabled": False,
                            "ServerSideEncryptionByDefault": Match.object_like(
                                {"SSEAlgorithm": "aws:kms"}
                            ),
                        }
                    )
                ]
            },
            "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
            "VersioningConfiguration": {"Status": "Enabled"},
            "NotificationConfiguration": {"EventBridgeConfiguration": {"EventBridgeEnabled": True}},
        },
    )


def _statements(template: Template, kind: str) -> list[dict[str, Any]]:
    found = []
    for resource in template.find_resources(kind).values():
        document = resource["Properties"].get("PolicyDocument") or resource["Properties"].get(
            "KeyPolicy"
        )
        if document:
            found.extend(document["Statement"])
    return found


def test_the_organisation_may_only_create_under_its_own_account_and_session(
    template: Template,
) -> None:
    statements = {s.get("Sid"): s for s in _statements(template, "AWS::S3::BucketPolicy")}
    allow = statements["OrganisationInstancesCreateOwnDumps"]
    assert allow["Effect"] == "Allow" and allow["Action"] == "s3:PutObject"
    assert allow["Principal"] == {"AWS": "*"}
    assert allow["Condition"]["StringEquals"] == {"aws:PrincipalOrgID": ORG}
    assert allow["Resource"]["Fn::Join"][1][-1] == (
        "/dumps/${aws:PrincipalAccount}/${aws:userid}/*"
    )
    # Every other statement that names the organisation's principals is a Deny.
    allows_for_everyone = [
        s for s in statements.values() if s["Effect"] == "Allow" and s["Principal"] == {"AWS": "*"}
    ]
    assert allows_for_everyone == [allow]
    for sid in (
        "OtherAccountsOnlyCreate",
        "OtherAccountsOnlyUnderOwnPrefix",
        "OtherAccountsNeverOverwrite",
        "OtherAccountsOnlyInstanceSessions",
    ):
        assert statements[sid]["Effect"] == "Deny"
        assert statements[sid]["Condition"]["StringNotEquals"] == {
            "aws:PrincipalAccount": TEST_ACCOUNT
        }


def test_the_key_serves_the_organisation_only_through_s3_here(template: Template) -> None:
    (statement,) = [
        s
        for s in _statements(template, "AWS::KMS::Key")
        if s.get("Sid") == "OrganisationEncryptOwnDumpsThroughS3"
    ]
    assert sorted(statement["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey"]
    assert statement["Condition"]["StringEquals"]["aws:PrincipalOrgID"] == ORG
    assert statement["Condition"]["StringEquals"]["kms:ViaService"] == {
        "Fn::Join": ["", [f"s3.{TEST_REGION}.", {"Ref": "AWS::URLSuffix"}]]
    }
    assert "${aws:PrincipalAccount}" in json.dumps(statement["Condition"]["StringLike"])


def test_the_bus_takes_only_incident_updates_from_the_organisation(template: Template) -> None:
    template.has_resource_properties(
        "AWS::Events::EventBusPolicy",
        {
            "Statement": Match.object_like(
                {
                    "Action": "events:PutEvents",
                    "Principal": {"AWS": "*"},
                    # events:source / detail-type are multivalued (one value per entry):
                    # aws-assumption eventbridge-put-events-source-keys
                    "Condition": {
                        "StringEquals": {"aws:PrincipalOrgID": ORG},
                        "ForAllValues:StringEquals": {
                            "events:source": "crashcart.incident",
                            "events:detail-type": "Crashcart Incident Update",
                        },
                        "Null": {"events:source": "false", "events:detail-type": "false"},
                    },
                }
            )
        },
    )


def test_both_rules_feed_the_view_and_keep_what_they_cannot_deliver(template: Template) -> None:
    rules = template.find_resources("AWS::Events::Rule")
    patterns = {json.dumps(r["Properties"]["EventPattern"], sort_keys=True) for r in rules.values()}
    assert any('"crashcart.incident"' in p for p in patterns)
    assert any('"dumps/*/*/*/metadata.json"' in p for p in patterns)
    on_bus = [r for r in rules.values() if "EventBusName" in r["Properties"]]
    assert len(on_bus) == 1
    for rule in rules.values():
        (target,) = rule["Properties"]["Targets"]
        assert "DeadLetterConfig" in target


def test_the_view_sets_exactly_its_environment_contract(template: Template) -> None:
    (function,) = template.find_resources("AWS::Lambda::Function").values()
    env = set(function["Properties"]["Environment"]["Variables"])
    required = {k for k, v in variables.INCIDENT_VIEW.items() if v is None}
    assert required <= env <= set(variables.INCIDENT_VIEW)
    assert function["Properties"]["DeadLetterConfig"]


def test_the_view_may_put_events_only_on_default_buses_of_this_region(template: Template) -> None:
    """The way back: "dump received" entries on a member's default bus in this Region, nothing
    else."""
    (policy,) = template.find_resources("AWS::IAM::ManagedPolicy").values()
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    events = [s for s in statements if "events" in json.dumps(s["Action"])]
    assert events == [
        {
            "Sid": "DumpReceivedToMemberDefaultBuses",
            "Action": "events:PutEvents",
            "Effect": "Allow",
            # only what a member's receiver takes (any account: the members are not known)
            "Condition": {
                "ForAllValues:StringEquals": {
                    "events:source": "crashcart.central",
                    "events:detail-type": "Crashcart Dump Received",
                },
                "Null": {"events:source": "false", "events:detail-type": "false"},
            },
            "Resource": {
                "Fn::Join": [
                    "",
                    [
                        "arn:",
                        {"Ref": "AWS::Partition"},
                        ":events:",
                        {"Ref": "AWS::Region"},
                        ":*:event-bus/default",
                    ],
                ]
            },
        }
    ]
    (function,) = template.find_resources("AWS::Lambda::Function").values()
    partition = function["Properties"]["Environment"]["Variables"][variables.PARTITION]
    assert partition == {"Ref": "AWS::Partition"}


def test_the_view_asset_imports_alone(tmp_path: Path) -> None:
    app = cdk.App(outdir=str(tmp_path / "out"))
    stack = cdk.Stack(app, "C", env=cdk.Environment(account=TEST_ACCOUNT, region=TEST_REGION))
    OrganisationCentral(stack, "Central", organisation_id=ORG)
    assembly = app.synth()
    (asset,) = [
        Path(assembly.directory) / a
        for a in os.listdir(assembly.directory)
        if a.startswith("asset.") and (Path(assembly.directory) / a / "crashcart").is_dir()
    ]
    code = (
        "import crashcart.functions.incident_view.handler as h, crashcart\n"
        "assert callable(h.handler)\nprint(crashcart.__file__)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(asset)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()).is_relative_to(asset)


@pytest.mark.parametrize(
    "value", ["", "o-short", "O-A1B2C3D4E5", "o-a1b2c3d4e5-", "r-a1b2c3d4e5", 42, None]
)
def test_fails_on_a_malformed_organisation_id(value: object) -> None:
    with pytest.raises(ConfigurationError, match=r"organisation_id=.*'o-' followed by 10"):
        OrganisationCentral(_stack(), "Central", organisation_id=value)  # type: ignore[arg-type]


def test_fails_on_a_topic_of_the_wrong_type() -> None:
    with pytest.raises(ConfigurationError, match="topic"):
        OrganisationCentral(
            _stack(),
            "Central",
            organisation_id=ORG,
            topic="arn:aws:sns:eu-west-1:111111111111:t",  # type: ignore[arg-type]
        )


def test_the_triage_job_attaches_to_the_central_bucket_and_view(
    central: OrganisationCentral,
) -> None:
    from crashcart.constructs.dump_triage_job import DumpTriageJob

    stack = _stack()
    other = OrganisationCentral(stack, "Central", organisation_id=ORG)
    DumpTriageJob(stack, "Triage", dumps=other.dumps, incidents=other.incidents)
    template = Template.from_stack(stack)
    rules = [
        r
        for r in template.find_resources("AWS::Events::Rule").values()
        if "Triage" in json.dumps(r["Properties"].get("Targets", []))
        or "EcsParameters" in json.dumps(r["Properties"].get("Targets", []))
    ]
    assert rules, "the triage job's metadata.json rule is missing"


def test_all_props_are_applied() -> None:
    from aws_cdk import aws_logs as logs
    from aws_cdk import aws_sns as sns

    from crashcart.constructs.crash_dump_bucket import DumpLifecycle

    stack = _stack()
    topic = sns.Topic(stack, "Oncall")
    OrganisationCentral(
        stack,
        "Central",
        organisation_id="o-0123456789abcdefghij",
        topic=topic,
        lifecycle=DumpLifecycle(expire_after=cdk.Duration.days(90)),
        attach_window=cdk.Duration.hours(2),
        parameter_name="/org/dumps",
        log_retention=logs.RetentionDays.THREE_MONTHS,
        removal_policy=cdk.RemovalPolicy.DESTROY,
    )
    template = Template.from_stack(stack)
    template.resource_count_is("AWS::SNS::Topic", 1)  # the given one, no other
    (function,) = template.find_resources("AWS::Lambda::Function").values()
    environment = function["Properties"]["Environment"]["Variables"]
    assert environment[variables.ATTACH_WINDOW_SECONDS] == "7200"
    cfn_topic = topic.node.default_child
    assert isinstance(cfn_topic, sns.CfnTopic)
    assert environment[variables.TOPIC_ARN] == {"Ref": stack.get_logical_id(cfn_topic)}
    template.has_resource_properties("AWS::SSM::Parameter", {"Name": "/org/dumps"})
    template.has_resource_properties("AWS::Logs::LogGroup", {"RetentionInDays": 90})
    template.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "LifecycleConfiguration": {
                "Rules": Match.array_with([Match.object_like({"ExpirationInDays": 90})])
            }
        },
    )
    template.has_resource_properties(
        "AWS::Events::EventBusPolicy",
        {
            "Statement": Match.object_like(
                {
                    "Condition": {
                        "StringEquals": Match.object_like(
                            {"aws:PrincipalOrgID": "o-0123456789abcdefghij"}
                        )
                    }
                }
            )
        },
    )
