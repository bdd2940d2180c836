"""CanaryCrashDrill's template: least-privilege IAM, triggers, the state machine it deploys."""

from __future__ import annotations

import json
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Match, Template

from crashcart.constructs._internal.canary_drill_definition import definition
from crashcart.errors import ConfigurationError
from crashcart.runtime import canary
from tests.conftest import REPO_ROOT
from tests.support.canary_drill_stack import drill_stack


@pytest.fixture(scope="module")
def built() -> tuple[Template, Any, cdk.Stack]:
    stack, drill = drill_stack(cdk.App())
    return Template.from_stack(stack), drill, stack


def _policy(template: Template, description_start: str) -> list[dict[str, Any]]:
    for resource in template.find_resources("AWS::IAM::ManagedPolicy").values():
        if resource["Properties"].get("Description", "").startswith(description_start):
            statements: list[dict[str, Any]] = resource["Properties"]["PolicyDocument"]["Statement"]
            return statements
    raise AssertionError(f"no managed policy {description_start!r}")


def _by_sid(statements: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for s in statements}


def test_the_role_launches_only_tagged_canaries_from_this_pipelines_amis(built: Any) -> None:
    template, drill, _ = built
    statements = _by_sid(_policy(template, "crashcart canary drill: launch"))
    launch = [s for s in statements.values() if "ec2:RunInstances" in json.dumps(s["Action"])]
    # Every RunInstances statement on instances/volumes requires the canary tag in the request;
    # images are limited to this pipeline's tag; the network to the given subnet and group.
    tagged = statements["LaunchTaggedCanaries"]
    assert tagged["Condition"] == {
        "StringEquals": {f"aws:RequestTag/{canary.CANARY_TAG_KEY}": drill.canary_tag_value}
    }
    assert "instance/*" in json.dumps(tagged["Resource"])
    images = statements["LaunchFromThisPipelinesAmis"]
    assert list(images["Condition"]["StringEquals"]) == [
        f"ec2:ResourceTag/{canary.AMI_PIPELINE_TAG_KEY}"
    ]
    network = json.dumps(statements["LaunchInTheGivenNetwork"]["Resource"])
    assert "subnet/subnet-0123456789abcdef0" in network
    assert "instance/" not in network and "image/" not in network
    assert len(launch) == 3
    tags = statements["TagOnlyAtLaunch"]
    assert tags["Condition"]["StringEquals"]["ec2:CreateAction"] == "RunInstances"
    assert statements["HangCanaries"]["Condition"] == {
        "StringEquals": {f"ssm:resourceTag/{canary.CANARY_TAG_KEY}": drill.canary_tag_value}
    }
    assert statements["PassTheCanaryRole"]["Condition"] == {
        "StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}
    }


def test_only_tagged_canaries_can_be_terminated_by_the_function_or_the_machine(
    built: Any,
) -> None:
    template, drill, _ = built
    for description in ("crashcart canary drill: launch", "crashcart canary drill state machine"):
        statements = _policy(template, description)
        terminate = [s for s in statements if "ec2:TerminateInstances" in json.dumps(s["Action"])]
        assert len(terminate) == 1, description
        assert terminate[0]["Condition"] == {
            "StringEquals": {f"ec2:ResourceTag/{canary.CANARY_TAG_KEY}": drill.canary_tag_value}
        }
    # No statement anywhere grants an EC2 write on "*".
    for resource in template.find_resources("AWS::IAM::ManagedPolicy").values():
        for statement in resource["Properties"]["PolicyDocument"]["Statement"]:
            actions = (
                statement["Action"]
                if isinstance(statement["Action"], list)
                else [statement["Action"]]
            )
            writes = [
                a for a in actions if a.startswith("ec2:") and not a.startswith("ec2:Describe")
            ]
            if writes:
                assert statement["Resource"] != "*", statement


def test_promotion_writes_only_the_verified_parameter_and_the_status_tags(built: Any) -> None:
    template, drill, stack = built
    statements = _by_sid(_policy(template, "crashcart canary drill: launch"))
    put = json.dumps(stack.resolve(statements["WriteVerifiedParameter"]["Resource"]))
    assert "crashcart/ami/amazon-linux-2023/x86_64/verified" in put and "candidate" not in put
    assert drill.verified_parameter_name == "/crashcart/ami/amazon-linux-2023/x86_64/verified"
    tagging = statements["PromoteAmis"]["Condition"]
    assert tagging["ForAllValues:StringEquals"]["aws:TagKeys"] == [
        canary.AMI_STATUS_TAG_KEY,
        canary.AMI_VERIFIED_AT_TAG_KEY,
    ]


def test_the_candidate_parameter_starts_a_drill_and_stopped_executions_reach_the_janitor(
    built: Any,
) -> None:
    template, _, _ = built
    template.has_resource_properties(
        "AWS::Events::Rule",
        {
            "EventPattern": {
                "source": ["aws.ssm"],
                "detail-type": ["Parameter Store Change"],
                "detail": {
                    "name": ["/crashcart/ami/amazon-linux-2023/x86_64/candidate"],
                    "operation": ["Create", "Update"],
                },
            },
            "Targets": [
                Match.object_like(
                    {"Input": json.dumps({"source": "candidate"}, separators=(",", ":"))}
                )
            ],
        },
    )
    template.has_resource_properties(
        "AWS::Events::Rule",
        {
            "EventPattern": Match.object_like(
                {
                    "source": ["aws.states"],
                    "detail": Match.object_like({"status": ["ABORTED", "TIMED_OUT", "FAILED"]}),
                }
            )
        },
    )
    template.has_resource_properties(
        "AWS::Events::Rule", {"ScheduleExpression": "rate(30 minutes)"}
    )


def test_the_deployed_definition_is_the_one_the_offline_execution_tests_run(built: Any) -> None:
    template, _drill, stack = built
    (machine,) = template.find_resources("AWS::StepFunctions::StateMachine").values()
    rendered = stack.resolve(machine["Properties"]["DefinitionString"])
    parts = rendered["Fn::Join"][1]
    marker = "FUNCTION"
    text = "".join(p if isinstance(p, str) else marker for p in parts)
    deployed = json.loads(text)
    expected = definition(marker, timeout_seconds=deployed["TimeoutSeconds"], max_concurrency=2)
    assert deployed == json.loads(json.dumps(expected))
    assert deployed["TimeoutSeconds"] == 20 * 60 + 40 * 60 + 1800

    # Every Task has a timeout; the execution has one.
    def tasks(states: dict[str, Any]) -> list[dict[str, Any]]:
        found = []
        for state in states.values():
            if state["Type"] == "Task":
                found.append(state)
            if state["Type"] == "Map":
                found += tasks(state["ItemProcessor"]["States"])
        return found

    assert all("TimeoutSeconds" in t for t in tasks(deployed["States"]))


def test_the_canaries_get_no_inbound_access(built: Any) -> None:
    template, _, _ = built
    (group,) = [
        g
        for g in template.find_resources("AWS::EC2::SecurityGroup").values()
        if "canary" in g["Properties"]["GroupDescription"]
    ]
    assert "SecurityGroupIngress" not in group["Properties"]


@pytest.mark.parametrize(
    ("props", "message"),
    [
        ({"instance_types": []}, "1 to 10 distinct types"),
        ({"instance_types": ["m7g.large"]}, "not an x86_64 type"),
        ({"boot_timeout": cdk.Duration.minutes(1)}, "boot_timeout=1 minute"),
        ({"max_canary_lifetime": cdk.Duration.hours(1)}, "max_canary_lifetime"),
    ],
)
def test_fails_on_bad_props(props: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        drill_stack(cdk.App(), **props)


def test_canaries_hang_two_at_a_time_and_the_execution_timeout_covers_every_batch() -> None:
    # Three hung canaries in one zone within minutes would open the remediation's zone breaker.
    stack, _ = drill_stack(cdk.App(), instance_types=["m7i.large", "r7i.2xlarge", "c7i.large"])
    (machine,) = (
        Template.from_stack(stack).find_resources("AWS::StepFunctions::StateMachine").values()
    )
    parts = stack.resolve(machine["Properties"]["DefinitionString"])["Fn::Join"][1]
    deployed = json.loads("".join(p if isinstance(p, str) else "F" for p in parts))
    assert deployed["States"]["DrillEachType"]["MaxConcurrency"] == 2
    assert deployed["TimeoutSeconds"] == 2 * (20 * 60 + 40 * 60) + 1800


@pytest.mark.parametrize(
    ("pipeline_props", "message"),
    [
        ({"distribution": "shared"}, "shares or copies candidates"),
        ({"distribution": "other-region"}, "shares or copies candidates"),
        ({"architecture": "arm64"}, "x86_64 Linux interrupt path only"),
        ({"family": "windows-server-2022"}, "x86_64 Linux interrupt path only"),
        ({"distribution": "default-template"}, "set_launch_template_default=True"),
    ],
)
def test_fails_on_a_pipeline_the_drill_cannot_gate(
    pipeline_props: dict[str, Any], message: str
) -> None:
    from aws_cdk import aws_kms as kms

    from crashcart.constructs import DistributionTarget

    props = dict(pipeline_props)
    if props.get("distribution") == "shared":
        props["distribution"] = [DistributionTarget(region="eu-west-1", accounts=["222222222222"])]
    elif props.get("distribution") == "other-region":
        app = cdk.App()
        other = cdk.Stack(
            app, "Keys", env=cdk.Environment(account="111111111111", region="us-east-1")
        )
        key = kms.Key.from_key_arn(
            other,
            "K",
            "arn:aws:kms:us-east-1:111111111111:key/11111111-1111-4111-8111-111111111111",
        )
        props["distribution"] = [
            DistributionTarget(region="eu-west-1"),
            DistributionTarget(region="us-east-1", kms_key=key),
        ]
    elif props.get("distribution") == "default-template":
        from aws_cdk import aws_ec2 as ec2

        app = cdk.App()
        holder = cdk.Stack(
            app, "Templates", env=cdk.Environment(account="111111111111", region="eu-west-1")
        )
        template = ec2.CfnLaunchTemplate(holder, "T", launch_template_data={})
        del props["distribution"]
        props.update(launch_templates=[template], set_launch_template_default=True)
    with pytest.raises(ConfigurationError, match=message):
        drill_stack(cdk.App(), pipeline_props=props)


@pytest.mark.parametrize("doc", ["README.md", "docs/pipeline.md", "docs/canary-drill.md"])
def test_the_docs_tell_consumers_to_read_the_verified_parameter(built: Any, doc: str) -> None:
    """Issue 18: candidates are not for consumers; the docs name the parameter to read."""
    _, drill, _ = built
    assert drill.verified_parameter_name == "/crashcart/ami/amazon-linux-2023/x86_64/verified"
    generic = "/crashcart/ami/<family>/<arch>/"
    text = " ".join((REPO_ROOT / doc).read_text(encoding="utf-8").split())
    assert f"`{generic}verified`" in text, doc
    # in the same breath as the candidate parameter, and saying not to use that one
    sentence = text[text.index(f"`{generic}verified`") - 400 :][:800]
    assert "candidate" in sentence and ("never" in sentence or "not" in sentence), doc
