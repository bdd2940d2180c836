"""The canary drill's state machine, executed offline: every path ends with its canaries gone.

The definition is the construct's own (``canary_drill_definition.definition``); moto's Step
Functions interpreter runs it, the drill function runs in process against moto's EC2, SSM,
DynamoDB, S3 and SNS, and ``ec2:terminateInstances`` is the real service integration.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from crashcart.runtime import canary
from crashcart.runtime.incident import parse_time
from tests.support.canary_drill import (
    CANARY_TAG,
    DRILL_TABLE,
    REGION,
    TYPES,
    VERIFIED,
    World,
    attest_armed,
    drill_world,
    dump_arrives,
    fail_action,
    incident_in_state,
    register_ami,
    run,
)


def _all_terminated(world: World, expected: int) -> None:
    canaries = world.canaries()
    assert len(canaries) == expected, canaries
    assert set(canaries.values()) <= {"terminated", "shutting-down"}, canaries


def _results(world: World) -> list[dict[str, Any]]:
    """The per-type results the state machine handed to Conclude."""
    concluded = [p for action, p in world.calls if action == canary.Action.CONCLUDE]
    assert len(concluded) == 1, world.actions()
    results: list[dict[str, Any]] = concluded[0]["results"]
    return results


def _verified_parameter() -> str | None:
    ssm = boto3.client("ssm", region_name=REGION)
    try:
        return str(ssm.get_parameter(Name=VERIFIED)["Parameter"]["Value"])
    except ssm.exceptions.ParameterNotFound:
        return None


def test_success_promotes_the_ami_and_terminates_every_canary() -> None:
    with drill_world() as (world, _):
        world.hooks += [attest_armed, dump_arrives()]
        execution = run(world, {"source": "candidate"})
        assert execution["status"] == "SUCCEEDED", execution
        _all_terminated(world, len(TYPES))
        results = _results(world)
        assert sorted(r["instance_type"] for r in results) == sorted(TYPES)
        for result in results:
            assert result["outcome"] == "passed", result
            assert result["memory_mib"] > 0 and result["dump_bytes"] > 4096
            assert result["hang_to_interrupt_seconds"] is not None
            assert 59 <= result["interrupt_to_dump_seconds"] <= 62, result
            # reserved vs used by the capture kernel on this type, and the margin
            assert result["capture_reserved_mib"] == 256.0, result
            assert result["capture_used_mib"] == 91.0, result
            assert result["capture_margin_mib"] == 165.0, result
            assert result["makedumpfile_peak_mib"] == 20.0, result
        assert _verified_parameter() == world.ami_id
        assert world.image_tags()[canary.AMI_STATUS_TAG_KEY] == "verified"
        # The lock is released: a second drill of the same AMI may run.
        lock = boto3.client("dynamodb", region_name=REGION).get_item(
            TableName=DRILL_TABLE, Key={"pk": {"S": f"ami#{world.ami_id}"}, "sk": {"S": "lock"}}
        )
        assert "Item" not in lock
        # Canaries carried the drill tag, the execution and the opt-in tag, and IMDSv2.
        described = world.ec2.describe_instances(
            Filters=[{"Name": f"tag:{canary.CANARY_TAG_KEY}", "Values": [CANARY_TAG]}]
        )["Reservations"][0]["Instances"][0]
        tags = {t["Key"]: t["Value"] for t in described["Tags"]}
        assert tags[canary.EXECUTION_TAG_KEY] == "drill-1"
        assert tags["crashcart:diagnostic-interrupt"] == "enabled"
        assert described["MetadataOptions"]["HttpTokens"] == "required"


def test_a_dump_that_arrives_after_the_alarm_recovered_still_passes() -> None:
    with drill_world() as (world, _):
        # (an AMI baked before the capture-memory hook: no figures, still a pass)
        world.hooks += [attest_armed, dump_arrives(state="recovered", capture_memory=None)]
        execution = run(world, {"source": "candidate"})
        assert execution["status"] == "SUCCEEDED", execution
        assert {r["outcome"] for r in _results(world)} == {"passed"}
        assert {r["capture_used_mib"] for r in _results(world)} == {None}
        _all_terminated(world, len(TYPES))


@pytest.mark.parametrize(
    ("hooks", "step", "reason"),
    [
        # The agent attests NOT armed: fail fast at "armed".
        ("not-armed", "armed", "NOT armed"),
        # The remediation's guard said no: no dump will come.
        ("skipped", "dump", "skipped the interrupt"),
        # The kernel panicked, but not on the NMI.
        ("wrong-panic", "dump", "did not panic on the NMI"),
        # A step crashed.
        ("hang-crash", "hang", "injected failure of hang"),
        ("ready-crash", "armed", "injected failure of check-ready"),
        ("dump-crash", "dump", "injected failure of check-dump"),
    ],
)
def test_each_failure_fails_the_drill_and_terminates_the_canaries(
    hooks: str, step: str, reason: str
) -> None:
    with drill_world() as (world, _):
        if hooks == "not-armed":
            world.hooks.append(_attest_not_armed)
        else:
            world.hooks.append(attest_armed)
        world.hooks += {
            "not-armed": [],
            "skipped": [incident_in_state("skipped", "attestation missing")],
            "wrong-panic": [dump_arrives("Kernel panic - not syncing: Fatal exception | oops")],
            "hang-crash": [fail_action(canary.Action.HANG)],
            "ready-crash": [fail_action(canary.Action.CHECK_READY)],
            "dump-crash": [fail_action(canary.Action.CHECK_DUMP)],
        }[hooks]
        execution = run(world, {"source": "candidate"})
        assert execution["status"] == "FAILED", execution
        assert execution.get("error") == "DrillFailed"
        _all_terminated(world, len(TYPES))
        for result in _results(world):
            assert (result["outcome"], result["step"]) == ("failed", step), result
            assert reason in result["reason"], result
        assert _verified_parameter() is None
        assert world.image_tags()[canary.AMI_STATUS_TAG_KEY] == "drill-failed"


def _attest_not_armed(world: World, action: str, payload: dict[str, Any]) -> None:
    if action == canary.Action.CHECK_READY:
        world.ec2.create_tags(
            Resources=[payload["instance_id"]],
            Tags=[
                {
                    "Key": "crashcart:kdump-attestation",
                    "Value": "not-armed 2026-12-05T12:00:00+00:00 kexec_crash_loaded=0",
                }
            ],
        )


@pytest.mark.parametrize(("wait", "step"), [("armed", "armed"), ("dump", "dump")])
def test_each_wait_times_out_and_terminates_the_canaries(wait: str, step: str) -> None:
    # A zero-second deadline: the first poll past it reports timed-out.
    overrides = (
        {"CRASHCART_DRILL_BOOT_TIMEOUT_SECONDS": "1"}
        if wait == "armed"
        else {"CRASHCART_DRILL_DUMP_TIMEOUT_SECONDS": "1"}
    )
    with drill_world(**overrides) as (world, env):
        env["CRASHCART_DRILL_POLL_SECONDS"] = "1"
        if wait == "dump":
            world.hooks.append(attest_armed)  # armed, then no dump ever comes
        execution = run(world, {"source": "candidate"})
        assert execution["status"] == "FAILED", execution
        _all_terminated(world, len(TYPES))
        for result in _results(world):
            assert (result["outcome"], result["step"]) == ("failed", step), result
            assert "deadline" in result["reason"], result
        polls = world.actions().count(
            canary.Action.CHECK_READY if wait == "armed" else canary.Action.CHECK_DUMP
        )
        # Each type polled, then gave up on the deadline (how many polls fit before it
        # depends on the machine's load: the deadline is wall-clock time).
        assert polls >= len(TYPES), world.actions()


def test_capacity_error_is_inconclusive_not_failed_and_not_promoted() -> None:
    with drill_world() as (world, _):
        world.hooks += [attest_armed, dump_arrives()]
        world.run_instances_error[TYPES[1]] = "InsufficientInstanceCapacity"
        execution = run(world, {"source": "candidate"})
        assert execution["status"] == "SUCCEEDED", execution
        by_type = {r["instance_type"]: r for r in _results(world)}
        assert by_type[TYPES[0]]["outcome"] == "passed"
        assert by_type[TYPES[1]]["outcome"] == "inconclusive"
        assert "InsufficientInstanceCapacity" in by_type[TYPES[1]]["reason"]
        _all_terminated(world, 1)  # the one canary that started
        assert _verified_parameter() is None
        assert world.image_tags()[canary.AMI_STATUS_TAG_KEY] == "candidate"


def test_a_launch_that_fails_for_another_reason_fails_the_drill() -> None:
    with drill_world() as (world, _):
        world.run_instances_error[TYPES[0]] = "UnauthorizedOperation"
        world.hooks += [attest_armed, dump_arrives()]
        execution = run(world, {"source": "candidate"})
        assert execution["status"] == "FAILED", execution
        by_type = {r["instance_type"]: r for r in _results(world)}
        assert (by_type[TYPES[0]]["outcome"], by_type[TYPES[0]]["step"]) == ("failed", "launch")
        _all_terminated(world, 1)


def test_one_drill_per_ami_a_second_execution_stops_without_launching() -> None:
    with drill_world() as (world, _):
        boto3.client("dynamodb", region_name=REGION).put_item(
            TableName=DRILL_TABLE,
            Item={
                "pk": {"S": f"ami#{world.ami_id}"},
                "sk": {"S": "lock"},
                "execution": {"S": "drill-0"},
                "expires_at": {"N": "99999999999"},
            },
        )
        execution = run(world, {"source": "candidate"})
        assert execution["status"] == "SUCCEEDED", execution
        assert world.actions() == [canary.Action.CLAIM]
        assert world.canaries() == {}


@pytest.mark.parametrize(
    ("family", "arch"), [("windows-server-2022", "x86_64"), ("amazon-linux-2023", "arm64")]
)
def test_windows_and_arm64_are_skipped_with_a_reason(family: str, arch: str) -> None:
    with drill_world() as (world, _):
        other = register_ami(world.ec2, family=family, arch=arch)
        execution = run(world, {"source": "on-demand", "ami_id": other})
        assert execution["status"] == "SUCCEEDED", execution
        assert canary.Action.LAUNCH not in world.actions()
        assert world.canaries() == {}
        concluded = [p for a, p in world.calls if a == canary.Action.CONCLUDE]
        assert concluded and concluded[0]["skip_reason"]


def test_an_ami_of_another_pipeline_is_refused_before_any_launch() -> None:
    with drill_world() as (world, _):
        world.ec2.create_tags(
            Resources=[world.ami_id], Tags=[{"Key": canary.AMI_PIPELINE_TAG_KEY, "Value": "other"}]
        )
        execution = run(world, {"source": "candidate"})
        assert execution["status"] == "FAILED" and execution.get("error") == "DrillError"
        assert world.actions() == [canary.Action.CLAIM, canary.Action.RELEASE]
        assert world.canaries() == {}


def test_the_scheduled_redrill_of_the_verified_ami_does_not_promote_again() -> None:
    with drill_world() as (world, _):
        boto3.client("ssm", region_name=REGION).put_parameter(
            Name=VERIFIED, Value=world.ami_id, Type="String"
        )
        world.hooks += [attest_armed, dump_arrives()]
        execution = run(world, {"source": "verified"})
        assert execution["status"] == "SUCCEEDED", execution
        conclusion = next(p for a, p in world.calls if a == canary.Action.CONCLUDE)
        assert conclusion["source"] == "verified"
        assert world.image_tags()[canary.AMI_STATUS_TAG_KEY] == "candidate"  # untouched
        _all_terminated(world, len(TYPES))


def test_an_armed_canary_is_hung_only_after_the_remediations_boot_grace() -> None:
    hung_after: dict[str, float] = {}
    launched: dict[str, str] = {}

    def record(world: World, action: str, payload: dict[str, Any]) -> None:
        if action == canary.Action.CHECK_READY:
            launched[payload["instance_id"]] = payload["launched_at"]
        if action == canary.Action.HANG:
            start = parse_time(launched[payload["instance_id"]])
            hung_after[payload["instance_id"]] = (datetime.now(UTC) - start).total_seconds()

    with drill_world(CRASHCART_DRILL_HANG_AFTER_SECONDS="5") as (world, env):
        env["CRASHCART_DRILL_POLL_SECONDS"] = "1"
        world.hooks += [attest_armed, record, dump_arrives()]
        execution = run(world, {"source": "candidate"})
        assert execution["status"] == "SUCCEEDED", execution
        # Armed at the first poll, hung only once the grace was over.
        assert len(hung_after) == len(TYPES)
        assert min(hung_after.values()) >= 5, hung_after
        _all_terminated(world, len(TYPES))
