"""Every write path of the templates is allowed by the destination's policies, and scoped.

The walker (tests/support/service_access.py) follows each alarm action, EventBridge target
and dead-letter queue, Lambda asynchronous destination, S3 notification and Image Builder
topic of a template to its destination, and evaluates the destination's resource policy and
its KMS key's policy for exactly that write. It runs over the reference app (synthesized
without cdk-nag: only the templates are read) and over each construct with minimal props.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import aws_cdk as cdk
import pytest

from crashcart.constructs.existing_dump_bucket import ExistingDumpBucket
from tests.conftest import TEST_ACCOUNT, TEST_REGION
from tests.support.incidents import store_of
from tests.support.service_access import Finding, Walker, walk_templates

ENV = cdk.Environment(account=TEST_ACCOUNT, region=TEST_REGION)


# ------------------------------------------------------------------ templates


@pytest.fixture(scope="module")
def reference_templates() -> dict[str, dict[str, Any]]:
    from tests.support.reference import reference_templates_without_nag

    return reference_templates_without_nag()


def _template(stack: cdk.Stack) -> dict[str, Any]:
    from aws_cdk.assertions import Template

    template: dict[str, Any] = Template.from_stack(stack).to_json()
    return template


@pytest.fixture(scope="module")
def construct_templates() -> dict[str, dict[str, Any]]:
    """Each construct alone, with minimal props (stand-ins for what it is given)."""
    from aws_cdk import aws_s3 as s3
    from aws_cdk import aws_ssm as ssm

    from crashcart.constructs.crash_dump_bucket import CrashDumpBucket
    from crashcart.constructs.debug_symbol_store import DebugSymbolStore
    from crashcart.constructs.dump_overdue_sweep import DumpOverdueSweep
    from crashcart.constructs.kdump_image_pipeline import KdumpImagePipeline
    from crashcart.constructs.kill_switch_reach import KillSwitchReach
    from crashcart.constructs.operations_monitoring import OperationsMonitoring
    from crashcart.constructs.unresponsive_instance_remediation import (
        FleetWatch,
        UnresponsiveInstanceRemediation,
    )
    from tests.support import triage_job
    from tests.support.incidents import stand_in_incidents
    from tests.support.remediation import new_app

    app = new_app()
    stacks: dict[str, cdk.Stack] = {}

    stack = stacks["remediation"] = cdk.Stack(app, "Remediation", env=ENV)
    evidence = s3.Bucket(stack, "Evidence", enforce_ssl=True)
    UnresponsiveInstanceRemediation(
        stack, "Remediation", dumps=ExistingDumpBucket(bucket=evidence), fleet=FleetWatch()
    )

    stack = stacks["dump-arrival"] = cdk.Stack(app, "DumpArrival", env=ENV)
    table, topic, _key = stand_in_incidents(stack)
    CrashDumpBucket(stack, "Dumps").notify_incidents(incidents=store_of(stack, table, topic))

    stack = stacks["sweep"] = cdk.Stack(app, "Sweep", env=ENV)
    table, topic, _key = stand_in_incidents(stack)
    DumpOverdueSweep(stack, "Sweep", incidents=store_of(stack, table, topic))

    stacks["triage"] = cdk.Stack.of(triage_job.job_stack(app, "TriageJob"))

    stack = stacks["kill-switch-reach"] = cdk.Stack(app, "KillSwitchReach", env=ENV)
    table, topic, _key = stand_in_incidents(stack)
    switch = ssm.StringParameter(stack, "Switch", string_value="off")
    KillSwitchReach(stack, "Reach", kill_switch=switch, topic=topic)

    stack = stacks["monitoring"] = cdk.Stack(app, "Monitoring", env=ENV)
    evidence = s3.Bucket(stack, "Evidence", enforce_ssl=True)
    remediation = UnresponsiveInstanceRemediation(
        stack, "Remediation", dumps=ExistingDumpBucket(bucket=evidence), fleet=FleetWatch()
    )
    OperationsMonitoring(stack, "Monitoring", remediation=remediation)

    stack = stacks["symbols"] = cdk.Stack(app, "Symbols", env=ENV)
    DebugSymbolStore(stack, "Symbols")

    stack = stacks["pipeline"] = cdk.Stack(app, "Pipeline", env=ENV)
    KdumpImagePipeline(stack, "Pipeline", architecture="x86_64")

    return {name: _template(stack) for name, stack in stacks.items()}


def _report(findings: list[Finding]) -> str:
    return "\n".join(str(f) for f in findings if f.problems)


def _kinds(findings: list[Finding]) -> Counter[str]:
    return Counter(f.kind.split(" ")[0] for f in findings)


# ------------------------------------------------------------------ the reference app


def test_every_write_path_of_the_reference_app_is_allowed_and_scoped(
    reference_templates: dict[str, dict[str, Any]],
) -> None:
    findings = walk_templates(reference_templates)
    kinds = _kinds(findings)
    # The walker must have found something to check: a walker that resolves nothing proves
    # nothing. These are lower bounds of what the reference app has today.
    assert kinds["alarm-action"] >= 39, kinds  # every alarm but the fleet status alarm
    assert kinds["rule-target"] >= 4, kinds
    assert kinds["rule-dlq"] >= 4, kinds
    assert kinds["lambda-destination"] >= 2, kinds
    assert kinds["lambda-dlq"] >= 1, kinds
    assert kinds["image-builder-topic"] >= 1, kinds
    assert _report(findings) == ""


def test_no_policy_of_the_reference_app_allows_any_principal(
    reference_templates: dict[str, dict[str, Any]],
) -> None:
    open_statements = [
        f"{name}: {statement}"
        for name, template in reference_templates.items()
        for statement in Walker(template, name).open_principals()
    ]
    assert open_statements == []


def test_every_queue_of_the_reference_app_is_watched(
    reference_templates: dict[str, dict[str, Any]],
) -> None:
    queues = sum(
        1
        for template in reference_templates.values()
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::SQS::Queue"
    )
    assert queues >= 6
    unwatched = {
        name: Walker(template, name).unwatched_queues()
        for name, template in reference_templates.items()
    }
    assert {name: queues for name, queues in unwatched.items() if queues} == {}


# ------------------------------------------------------------------ each construct alone

#: What each construct must at least have for the walker to check (it fails on fewer).
_MINIMUM = {
    "remediation": {"alarm-action": 3, "rule-target": 2, "rule-dlq": 2, "lambda-destination": 1},
    "kill-switch-reach": {
        "alarm-action": 3,
        "rule-target": 2,
        "rule-dlq": 2,
        "lambda-destination": 1,
    },
    # the remediation's own 5 alarms with actions, plus 3 named, 3 queue and 2 function alarms
    "monitoring": {"alarm-action": 13, "rule-target": 2, "rule-dlq": 2},
    "dump-arrival": {"alarm-action": 2, "rule-target": 1, "rule-dlq": 1, "lambda-dlq": 1},
    "sweep": {"alarm-action": 1, "rule-target": 1, "rule-dlq": 1, "lambda-destination": 1},
    "triage": {"alarm-action": 2, "rule-target": 2, "rule-dlq": 2},
    "pipeline": {"image-builder-topic": 1},
    "symbols": {},
}


@pytest.mark.parametrize("name", sorted(_MINIMUM))
def test_every_write_path_of_each_construct_is_allowed_and_scoped(
    construct_templates: dict[str, dict[str, Any]], name: str
) -> None:
    walker = Walker(construct_templates[name], name)
    findings = walker.walk()
    kinds = _kinds(findings)
    for kind, minimum in _MINIMUM[name].items():
        assert kinds[kind] >= minimum, (kind, kinds)
    if not _MINIMUM[name]:
        assert findings == []  # the symbol store has no write path of a service
    assert _report(findings) == ""
    assert walker.open_principals() == []
    assert walker.unwatched_queues() == []


# ------------------------------------------------------------------ the walker can fail


def _topic_template(
    topic_policy: list[dict[str, Any]], key_policy: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "Resources": {
            "Key": {
                "Type": "AWS::KMS::Key",
                "Properties": {"KeyPolicy": {"Statement": key_policy}},
            },
            "Topic": {
                "Type": "AWS::SNS::Topic",
                "Properties": {"KmsMasterKeyId": {"Fn::GetAtt": ["Key", "Arn"]}},
            },
            "TopicPolicy": {
                "Type": "AWS::SNS::TopicPolicy",
                "Properties": {
                    "Topics": [{"Ref": "Topic"}],
                    "PolicyDocument": {"Statement": topic_policy},
                },
            },
            "Alarm": {
                "Type": "AWS::CloudWatch::Alarm",
                "Properties": {"AlarmActions": [{"Ref": "Topic"}]},
            },
        }
    }


_SCOPED = {
    "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}},
    "ArnLike": {
        "aws:SourceArn": {
            "Fn::Join": [
                "",
                ["arn:", {"Ref": "AWS::Partition"}, ":cloudwatch:eu-west-1:111111111111:alarm:*"],
            ]
        }
    },
}
_PUBLISH = {
    "Effect": "Allow",
    "Principal": {"Service": "cloudwatch.amazonaws.com"},
    "Action": "sns:Publish",
    "Resource": {"Ref": "Topic"},
    "Condition": _SCOPED,
}
_USE_KEY = {
    "Effect": "Allow",
    "Principal": {"Service": "cloudwatch.amazonaws.com"},
    "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
    "Resource": "*",
    "Condition": _SCOPED,
}
_TLS_ONLY = {
    "Effect": "Deny",
    "Principal": "*",
    "Action": "sns:Publish",
    "Resource": {"Ref": "Topic"},
    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
}


def test_the_walker_passes_an_alarm_topic_that_allows_cloudwatch() -> None:
    (finding,) = Walker(_topic_template([_TLS_ONLY, _PUBLISH], [_USE_KEY])).walk()
    assert finding.problems == []


@pytest.mark.parametrize(
    ("topic_policy", "key_policy", "problem"),
    [
        ([_TLS_ONLY], [_USE_KEY], "resource policy does not allow cloudwatch"),
        ([_TLS_ONLY, _PUBLISH], [], "key policy of Key does not allow"),
        ([{**_PUBLISH, "Condition": {}}], [_USE_KEY], "without aws:SourceArn"),
        (
            [{**_PUBLISH, "Condition": {"StringEquals": {"aws:SourceAccount": "222222222222"}}}],
            [_USE_KEY],
            "does not allow",
        ),
        ([_PUBLISH, {**_PUBLISH, "Effect": "Deny"}], [_USE_KEY], "denies"),
    ],
)
def test_the_walker_fails_what_aws_would_refuse(
    topic_policy: list[dict[str, Any]], key_policy: list[dict[str, Any]], problem: str
) -> None:
    (finding,) = Walker(_topic_template(topic_policy, key_policy)).walk()
    assert any(problem in p for p in finding.problems), finding.problems


def test_the_walker_cannot_prove_an_aws_managed_key() -> None:
    template = _topic_template([_PUBLISH], [_USE_KEY])
    template["Resources"]["Topic"]["Properties"]["KmsMasterKeyId"] = "alias/aws/sns"
    (finding,) = Walker(template).walk()
    assert any("cannot prove" in p for p in finding.problems)


def test_the_walker_flags_open_principals_and_unwatched_queues() -> None:
    template = _topic_template([{**_PUBLISH, "Principal": {"AWS": "*"}}], [_USE_KEY])
    template["Resources"]["Queue"] = {"Type": "AWS::SQS::Queue", "Properties": {}}
    walker = Walker(template)
    assert len(walker.open_principals()) == 1
    assert walker.unwatched_queues() == ["Queue"]
