"""Template scale: explicit instances stop before CloudFormation's 500-resource wall; the
fleet mode's template does not depend on the fleet's size."""

from __future__ import annotations

import json
import re
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_autoscaling as autoscaling
from aws_cdk import aws_ec2 as ec2

from crashcart.constructs.existing_dump_bucket import ExistingDumpBucket
from crashcart.constructs.unresponsive_instance_remediation import (
    MAX_STACK_RESOURCES,
    FleetWatch,
    UnresponsiveInstanceRemediation,
)
from crashcart.errors import ConfigurationError
from crashcart.opt_in import OptInTag
from tests.conftest import TEST_REGION
from tests.support.remediation import env, evidence_bucket, imported_vpc, new_app


def instance_ids(count: int) -> list[str]:
    return [f"i-{n:017x}" for n in range(count)]


def stack_with_bucket(app: cdk.App, name: str) -> tuple[cdk.Stack, Any]:
    stack = cdk.Stack(app, name, env=env())
    bucket, _ = evidence_bucket(stack)
    return stack, bucket


@pytest.fixture(scope="module")
def room() -> int:
    """How many explicit instances the test stack can take (read from the error message)."""
    app = new_app()
    stack, bucket = stack_with_bucket(app, "Probe")
    with pytest.raises(ConfigurationError) as raised:
        UnresponsiveInstanceRemediation(
            stack,
            "Remediation",
            dumps=ExistingDumpBucket(bucket=bucket),
            instances=instance_ids(600),
        )
    message = str(raised.value)
    assert "600 explicitly listed instances need 600 alarms" in message
    assert "fleet=FleetWatch()" in message
    assert f"CloudFormation allows {MAX_STACK_RESOURCES} per stack" in message
    match = re.search(r"room for at most (\d+) more resources", message)
    assert match is not None
    return int(match.group(1))


def test_fails_one_instance_past_the_resource_limit(room: int) -> None:
    app = new_app()
    stack, bucket = stack_with_bucket(app, "OnePast")
    with pytest.raises(ConfigurationError, match=rf"room for at most {room} more"):
        UnresponsiveInstanceRemediation(
            stack,
            "Remediation",
            dumps=ExistingDumpBucket(bucket=bucket),
            instances=instance_ids(room + 1),
        )


def test_the_largest_allowed_list_synthesizes_within_the_limit(room: int) -> None:
    assert 400 < room < MAX_STACK_RESOURCES  # the fixed overhead is a few dozen resources
    app = new_app()
    stack, bucket = stack_with_bucket(app, "AtLimit")
    UnresponsiveInstanceRemediation(
        stack, "Remediation", dumps=ExistingDumpBucket(bucket=bucket), instances=instance_ids(room)
    )
    assembly = app.synth()  # CDK itself fails past 500 (TooManyResourcesInStack)
    template = assembly.get_stack_by_name("AtLimit").template
    assert MAX_STACK_RESOURCES - 1 <= len(template["Resources"]) <= MAX_STACK_RESOURCES


def fleet_templates(capacity: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """A fleet-mode remediation stack next to a workload stack of ``capacity`` instances."""
    app = new_app()
    workload = cdk.Stack(app, "Workload", env=env())
    group = autoscaling.AutoScalingGroup(
        workload,
        "Fleet",
        vpc=imported_vpc(workload),
        instance_type=ec2.InstanceType("m5.large"),
        machine_image=ec2.MachineImage.generic_linux({TEST_REGION: "ami-0123456789abcdef0"}),
        min_capacity=capacity,
        max_capacity=capacity,
        require_imdsv2=True,
    )
    tag = OptInTag()
    cdk.Tags.of(group).add(tag.key, tag.value, apply_to_launched_instances=True)
    stack, bucket = stack_with_bucket(app, "Remediation")
    UnresponsiveInstanceRemediation(
        stack, "Remediation", dumps=ExistingDumpBucket(bucket=bucket), fleet=FleetWatch()
    )
    assembly = app.synth()
    return (
        assembly.get_stack_by_name("Remediation").template,
        assembly.get_stack_by_name("Workload").template,
    )


def test_fleet_mode_template_is_the_same_for_10_and_10000_instances() -> None:
    small, small_workload = fleet_templates(10)
    large, large_workload = fleet_templates(10_000)
    # The workloads really differ ...
    assert small_workload != large_workload
    # ... the remediation template does not: same resources, same bytes.
    assert len(small["Resources"]) == len(large["Resources"])
    assert json.dumps(small, sort_keys=True) == json.dumps(large, sort_keys=True)
    alarms = [r for r in large["Resources"].values() if r["Type"] == "AWS::CloudWatch::Alarm"]
    # the fleet alarm, three queue alarms, per rule (the alarm rule, the missed-alarm
    # sweep's schedule) one on events the dead-letter queue refused, and the partial-data
    # watch's two (its queue, its rule's undeliverable events)
    assert len(alarms) == 8


def test_fails_at_synth_when_later_resources_push_the_stack_past_the_limit() -> None:
    """Resources added to the stack after the construct are caught at synth, with the
    construct's message (the construction-time check cannot see them)."""
    from aws_cdk import aws_sns as sns

    app = new_app()
    stack, bucket = stack_with_bucket(app, "GrowsLater")
    remediation = UnresponsiveInstanceRemediation(
        stack, "Remediation", dumps=ExistingDumpBucket(bucket=bucket), instances=instance_ids(3)
    )
    for n in range(remediation.max_explicit_instances + 1):
        sns.Topic(stack, f"Later{n}")
    with pytest.raises(Exception, match=r"would have 501 resources, more than the 500") as raised:
        app.synth()
    assert "3 explicitly listed instances" in str(raised.value)
