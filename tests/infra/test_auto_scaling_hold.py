"""AutoScalingHold template: hooks per given group, exact lifecycle rights, schedule, backstop."""

from __future__ import annotations

import copy
import json
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_autoscaling as autoscaling
from aws_cdk.assertions import Annotations, Match, Template

from crashcart.constructs.auto_scaling_hold import AutoScalingHold, DumpDeadline
from crashcart.constructs.existing_dump_bucket import ExistingDumpBucket
from crashcart.constructs.unresponsive_instance_remediation import (
    FleetWatch,
    UnresponsiveInstanceRemediation,
)
from crashcart.errors import ConfigurationError
from crashcart.runtime import environment as variables
from tests.support.remediation import env, evidence_bucket, new_app, resources_of

LIFECYCLE_ACTIONS = {
    "autoscaling:CompleteLifecycleAction",
    "autoscaling:RecordLifecycleActionHeartbeat",
}


def _synth(
    names: tuple[str, ...], remediation_kwargs: dict[str, Any] | None = None, **kwargs: Any
) -> tuple[cdk.Stack, AutoScalingHold, dict[str, Any]]:
    app = new_app()
    stack = cdk.Stack(app, "Hold", env=env())
    bucket, key = evidence_bucket(stack)
    remediation = UnresponsiveInstanceRemediation(
        stack,
        "Remediation",
        dumps=ExistingDumpBucket(bucket=bucket, encryption_key=key),
        fleet=FleetWatch(),
        **(remediation_kwargs or {}),
    )
    groups = [
        autoscaling.AutoScalingGroup.from_auto_scaling_group_name(stack, f"G-{n}", n) for n in names
    ]
    hold = AutoScalingHold(stack, "Hold", remediation=remediation, groups=groups, **kwargs)
    return stack, hold, Template.from_stack(stack).to_json()


@pytest.fixture(scope="module")
def two_groups() -> tuple[cdk.Stack, AutoScalingHold, dict[str, Any]]:
    return _synth(("web", "workers"), backstop=True)


@pytest.fixture(scope="module")
def _one_group_once() -> tuple[cdk.Stack, AutoScalingHold, dict[str, Any]]:
    return _synth(("web",))


@pytest.fixture
def one_group(
    _one_group_once: tuple[cdk.Stack, AutoScalingHold, dict[str, Any]],
) -> tuple[cdk.Stack, AutoScalingHold, dict[str, Any]]:
    """One group, the defaults: synthesized once per module, its template a copy per test."""
    stack, hold, template = _one_group_once
    return stack, hold, copy.deepcopy(template)


def _statements(template: dict[str, Any], role_prefix: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    # Every policy attached to the role: the function's managed policy, and any inline one.
    for kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
        for resource in resources_of(template, kind).values():
            roles = json.dumps(resource["Properties"].get("Roles", []))
            if f'"{role_prefix}' in roles:
                out += resource["Properties"]["PolicyDocument"]["Statement"]
    return out


def test_the_function_rights_are_one_managed_policy_on_its_own_role(
    two_groups: tuple[cdk.Stack, AutoScalingHold, dict[str, Any]],
) -> None:
    # One IAM style for every crashcart function: no inline (default) policy on the role.
    _stack, _hold, template = two_groups
    inline = [
        r for r in resources_of(template, "AWS::IAM::Policy").values() if "HoldRole" in str(r)
    ]
    assert inline == []
    managed = [
        r
        for r in resources_of(template, "AWS::IAM::ManagedPolicy").values()
        if "HoldRole" in json.dumps(r["Properties"].get("Roles", []))
    ]
    assert len(managed) == 1
    (function,) = [
        r
        for k, r in resources_of(template, "AWS::Lambda::Function").items()
        if k.startswith("HoldFunction")
    ]
    assert any(d.startswith("HoldFunctionPolicy") for d in function.get("DependsOn", []))


def test_one_termination_hook_per_given_group_with_default_result_continue(
    two_groups: tuple[cdk.Stack, AutoScalingHold, dict[str, Any]],
) -> None:
    _stack, hold, template = two_groups
    hooks = resources_of(template, "AWS::AutoScaling::LifecycleHook")
    assert sorted(h["Properties"]["AutoScalingGroupName"] for h in hooks.values()) == [
        "web",
        "workers",
    ]
    for hook in hooks.values():
        assert hook["Properties"] == {
            "AutoScalingGroupName": hook["Properties"]["AutoScalingGroupName"],
            "DefaultResult": "CONTINUE",
            "HeartbeatTimeout": 600,
            "LifecycleHookName": hold.hook_name,
            "LifecycleTransition": "autoscaling:EC2_INSTANCE_TERMINATING",
        }
        # no notification target, so no role that Auto Scaling would assume
        assert "RoleARN" not in hook["Properties"]


def test_the_hook_role_may_complete_actions_only_on_the_given_groups(
    two_groups: tuple[cdk.Stack, AutoScalingHold, dict[str, Any]],
) -> None:
    _stack, _hold, template = two_groups
    statements = _statements(template, "HoldRole")
    lifecycle = [s for s in statements if LIFECYCLE_ACTIONS & set(_list(s["Action"]))]
    assert len(lifecycle) == 1
    (statement,) = lifecycle
    assert set(_list(statement["Action"])) == LIFECYCLE_ACTIONS
    rendered = json.dumps(statement["Resource"])
    assert "autoScalingGroupName/web" in rendered and "autoScalingGroupName/workers" in rendered
    assert len(statement["Resource"]) == 2
    assert statement["Resource"] != "*"
    # no other statement of any policy in the stack grants a lifecycle action
    for resource in resources_of(template, "AWS::IAM::Policy").values():
        for other in resource["Properties"]["PolicyDocument"]["Statement"]:
            if other is not statement and other.get("Effect") == "Allow":
                assert not LIFECYCLE_ACTIONS & set(_list(other["Action"])), other


def test_reboot_and_interrupt_only_on_opted_in_instances(
    two_groups: tuple[cdk.Stack, AutoScalingHold, dict[str, Any]],
) -> None:
    _stack, _hold, template = two_groups
    statements = _statements(template, "HoldRole")
    for statement in statements:
        actions = set(_list(statement["Action"]))
        if statement["Effect"] == "Allow" and actions & {
            "ec2:RebootInstances",
            "ec2:SendDiagnosticInterrupt",
            "ec2:GetConsoleOutput",
        }:
            assert statement["Condition"] == {
                "StringEquals": {"aws:ResourceTag/crashcart:diagnostic-interrupt": "enabled"}
            }
            assert statement["Resource"] != "*"


def test_the_function_gets_the_remediation_environment_and_its_own(
    two_groups: tuple[cdk.Stack, AutoScalingHold, dict[str, Any]],
) -> None:
    _stack, hold, template = two_groups
    functions = resources_of(template, "AWS::Lambda::Function")
    (function,) = [f for f in functions.values() if "lifecycle_hold" in f["Properties"]["Handler"]]
    names = set(function["Properties"]["Environment"]["Variables"])
    # every variable but the organisation's (set only with organisation=... on the remediation)
    assert names == set(variables.LIFECYCLE_HOLD) - set(variables.REMEDIATION_ORGANISATION)
    assert function["Properties"]["Environment"]["Variables"][variables.HOLD_HOOK_NAME] == (
        hold.hook_name
    )


def test_lifecycle_rule_matches_only_the_given_groups_and_hook(
    two_groups: tuple[cdk.Stack, AutoScalingHold, dict[str, Any]],
) -> None:
    _stack, hold, template = two_groups
    rules = resources_of(template, "AWS::Events::Rule")
    patterns = [
        r["Properties"]["EventPattern"] for r in rules.values() if "EventPattern" in r["Properties"]
    ]
    (pattern,) = [p for p in patterns if p.get("source") == ["aws.autoscaling"]]
    assert pattern["detail-type"] == ["EC2 Instance-terminate Lifecycle Action"]
    assert pattern["detail"] == {
        "AutoScalingGroupName": ["web", "workers"],
        "LifecycleHookName": [hold.hook_name],
    }
    # the hold's own tick (the remediation's missed-alarm sweep runs every 5 minutes)
    schedules = [
        r["Properties"]["ScheduleExpression"]
        for logical_id, r in rules.items()
        if r["Properties"].get("ScheduleExpression") and logical_id.startswith("Hold")
    ]
    assert schedules == ["rate(1 minute)"]


def test_the_backstop_window_is_longer_than_the_longest_dump_deadline(
    two_groups: tuple[cdk.Stack, AutoScalingHold, dict[str, Any]],
) -> None:
    stack, hold, template = two_groups
    assert hold.backstop_alarm is not None
    alarm = template["Resources"][stack.get_logical_id(hold.backstop_alarm.node.default_child)]  # type: ignore[arg-type]
    props = alarm["Properties"]
    (query,) = props["Metrics"]
    window = query["Period"] * props["EvaluationPeriods"]
    assert props["DatapointsToAlarm"] == props["EvaluationPeriods"]
    assert window > DumpDeadline().maximum.to_seconds()
    assert window <= 3 * 3600  # what a Metrics Insights alarm evaluates
    assert "StatusCheckFailed_Instance" in query["Expression"]
    assert "tag.\"crashcart:diagnostic-interrupt\" = 'enabled'" in query["Expression"]
    assert "GROUP BY InstanceId" in query["Expression"]
    assert props["AlarmActions"] == ["arn:aws:automate:eu-west-1:ec2:reboot"]
    assert props["TreatMissingData"] == "notBreaching"
    # its name does not start with the remediation's prefix: the remediation rule ignores it
    assert "AlarmName" not in props


def test_no_resource_per_instance_and_one_hook_per_group(
    one_group: tuple[cdk.Stack, AutoScalingHold, dict[str, Any]],
) -> None:
    _s1, _h1, one = one_group
    _s3, _h3, three = _synth(("web", "workers", "batch"))

    def counts(template: dict[str, Any]) -> dict[str, int]:
        out: dict[str, int] = {}
        for resource in template["Resources"].values():
            out[resource["Type"]] = out.get(resource["Type"], 0) + 1
        return out

    difference = {
        kind: three_count - counts(one).get(kind, 0)
        for kind, three_count in counts(three).items()
        if three_count != counts(one).get(kind, 0)
    }
    assert difference == {"AWS::AutoScaling::LifecycleHook": 2}


def test_no_groups_no_hooks_no_lifecycle_rights() -> None:
    _stack, hold, template = _synth((), backstop=True)
    assert resources_of(template, "AWS::AutoScaling::LifecycleHook") == {}
    for statement in _statements(template, "HoldRole"):
        assert not LIFECYCLE_ACTIONS & set(_list(statement["Action"]))
    assert hold.backstop_alarm is not None


def test_backstop_off() -> None:
    _stack, hold, template = _synth(("web",), backstop=False)
    assert hold.backstop_alarm is None
    for alarm in resources_of(template, "AWS::CloudWatch::Alarm").values():
        assert "automate" not in json.dumps(alarm["Properties"].get("AlarmActions", []))


def test_the_backstop_is_off_by_default_and_the_synth_says_why(
    one_group: tuple[cdk.Stack, AutoScalingHold, dict[str, Any]],
) -> None:
    # Its query selects instances by resource tag: without the account-wide "resource tags
    # for telemetry" it would match nothing, so it is never on without being asked for.
    stack, hold, _template = _synth(("web",), remediation_kwargs={"dry_run": False})
    assert hold.backstop_alarm is None
    notes = Annotations.from_stack(stack).find_info("*", Match.string_like_regexp("backstop"))
    (note,) = notes
    text = str(note.entry.data)
    assert "no backstop reboot alarm" in text
    assert "resource tags for telemetry" in text
    assert "backstop=True" in text
    # a shadow-mode remediation never reboots anything: no note to make
    shadow, _hold, _t = one_group
    assert not Annotations.from_stack(shadow).find_info("*", Match.string_like_regexp("backstop"))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"heartbeat_timeout": cdk.Duration.seconds(20)}, "heartbeat timeout is 30-7200"),
        ({"heartbeat_timeout": cdk.Duration.hours(3)}, "heartbeat timeout is 30-7200"),
        ({"schedule": cdk.Duration.minutes(5)}, "at most a third of the heartbeat"),
        ({"schedule": cdk.Duration.seconds(90)}, "whole minutes"),
        (
            {"dump_deadline": DumpDeadline(maximum=cdk.Duration.hours(3)), "backstop": True},
            "would exceed the 10800s a Metrics Insights alarm",
        ),
        (
            {
                "heartbeat_timeout": cdk.Duration.minutes(1),
                "schedule": cdk.Duration.minutes(1),
            },
            "at most a third",
        ),
    ],
)
def test_fails_on_bad_settings(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        _synth(("web",), **kwargs)


def test_fails_when_the_deadline_outlasts_what_auto_scaling_holds() -> None:
    # a 3-minute heartbeat: Auto Scaling holds at most 100 x 180 s = 18,000 s
    with pytest.raises(ConfigurationError, match="holds a lifecycle action at most 18000s"):
        _synth(
            ("web",),
            heartbeat_timeout=cdk.Duration.minutes(3),
            dump_deadline=DumpDeadline(maximum=cdk.Duration.hours(6)),
            backstop=False,
        )


def test_fails_on_a_bad_dump_deadline() -> None:
    with pytest.raises(ConfigurationError, match="at least a minute"):
        DumpDeadline(base=cdk.Duration.seconds(10))
    with pytest.raises(ConfigurationError, match=r"give a cdk\.Duration"):
        DumpDeadline(maximum=7200)  # type: ignore[arg-type]


def _list(value: Any) -> list[str]:
    return value if isinstance(value, list) else [value]


def test_every_statement_is_matched(
    one_group: tuple[cdk.Stack, AutoScalingHold, dict[str, Any]],
) -> None:
    # guard against an empty role: the assertions above would pass vacuously
    _stack, _hold, template = one_group
    assert len(_statements(template, "HoldRole")) >= 10
    Template.from_json(template).has_resource_properties(
        "AWS::AutoScaling::LifecycleHook", Match.object_like({"DefaultResult": "CONTINUE"})
    )


def test_a_linked_remediation_gives_the_hold_its_organisation_rights_and_variables() -> None:
    """The hold decides with the remediation's guards, the organisation breaker included:
    without the rights it would be refused and never interrupt (fail closed)."""
    from crashcart import OrganisationLink

    region, central = env().region, "999999999999"
    link = OrganisationLink(
        breaker_table_arn=f"arn:aws:dynamodb:{region}:{central}:table/crashcart-org-breaker",
        breaker_key_arn=f"arn:aws:kms:{region}:{central}:key/1234abcd-12ab",
        central_event_bus_arn=f"arn:aws:events:{region}:{central}:event-bus/central",
    )
    _stack, _hold, template = _synth(("web",), remediation_kwargs={"organisation": link})
    sids = {s.get("Sid") for s in _statements(template, "HoldRole")}
    assert {"OrganisationBreaker", "OrganisationBreakerKey", "CentralIncidentEvents"} <= sids
    functions = resources_of(template, "AWS::Lambda::Function")
    (function,) = [f for f in functions.values() if "lifecycle_hold" in f["Properties"]["Handler"]]
    hold_variables = function["Properties"]["Environment"]["Variables"]
    assert hold_variables[variables.ORG_BREAKER_TABLE_ARN] == link.breaker_table_arn
    assert hold_variables[variables.ORG_EVENT_BUS_ARN] == link.central_event_bus_arn
