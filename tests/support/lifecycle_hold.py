"""Test helpers for the lifecycle-hold function (``crashcart.functions.lifecycle_hold``).

moto's server answers EC2, DynamoDB, SSM, SNS, SQS and S3 (with the remediation test layer
for SendDiagnosticInterrupt and DescribeInstanceStatus); the Auto Scaling lifecycle calls
(CompleteLifecycleAction, RecordLifecycleActionHeartbeat) are answered by botocore's Stubber
with exact expected parameters, so an unexpected lifecycle call fails the test.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import boto3
from botocore.stub import Stubber

from tests.support.remediation_runtime import (
    FIXTURE_INSTANCE,
    TEST_REGION,
    Clock,
    Context,
    World,
)

GROUP = "web"
HOOK = "crashcart-dump-hold-test"
TOKEN = "87654321-4321-4321-4321-210987654321"


def hold_env(world: World, **overrides: str) -> dict[str, str]:
    values = {
        **world.env,
        "CRASHCART_HOLD_GROUPS": GROUP,
        "CRASHCART_HOLD_HOOK_NAME": HOOK,
        "CRASHCART_HOLD_HEARTBEAT_SECONDS": "600",
        "CRASHCART_DUMP_BASE_SECONDS": "900",
        "CRASHCART_DUMP_SECONDS_PER_GIB": "30",
        "CRASHCART_DUMP_MAX_SECONDS": "7200",
        "CRASHCART_ESCALATION_REBOOT": "true",
    }
    values.update(overrides)
    return values


def lifecycle_event(instance_id: str, at: datetime) -> dict[str, Any]:
    """The documented termination lifecycle action (tests/events), for ``instance_id``."""
    from tests.conftest import load_event

    text = json.dumps(load_event("lifecycle_hold_terminate_action"))
    event: dict[str, Any] = json.loads(text.replace(FIXTURE_INSTANCE, instance_id))
    event["time"] = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    return copy.deepcopy(event)


def tick_event(at: datetime) -> dict[str, Any]:
    from tests.conftest import load_event

    event = load_event("lifecycle_hold_scheduled")
    event["time"] = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    return event


@dataclass
class Lifecycle:
    """A stubbed Auto Scaling client: every lifecycle call must be expected, exactly."""

    client: Any = field(
        default_factory=lambda: boto3.client(
            "autoscaling", region_name=TEST_REGION, endpoint_url="http://127.0.0.1:9"
        )
    )
    stubber: Stubber = field(init=False)

    def __post_init__(self) -> None:
        self.stubber = Stubber(self.client)
        self.stubber.activate()

    def _params(self, instance_id: str) -> dict[str, str]:
        return {
            "AutoScalingGroupName": GROUP,
            "LifecycleHookName": HOOK,
            "LifecycleActionToken": TOKEN,
            "InstanceId": instance_id,
        }

    def expect_continue(self, instance_id: str) -> None:
        self.stubber.add_response(
            "complete_lifecycle_action",
            {},
            {**self._params(instance_id), "LifecycleActionResult": "CONTINUE"},
        )

    def expect_heartbeat(self, instance_id: str) -> None:
        self.stubber.add_response(
            "record_lifecycle_action_heartbeat", {}, self._params(instance_id)
        )

    def expect_gone(self, operation: str, instance_id: str) -> None:
        params = self._params(instance_id)
        if operation == "complete_lifecycle_action":
            params["LifecycleActionResult"] = "CONTINUE"
        self.stubber.add_client_error(
            operation,
            service_error_code="ValidationError",
            service_message="No active Lifecycle Action found with token " + TOKEN,
            http_status_code=400,
            expected_params=params,
        )

    def done(self) -> None:
        self.stubber.assert_no_pending_responses()


@dataclass
class Reboots:
    """Records RebootInstances calls on an EC2 client (moto answers them)."""

    calls: list[list[str]] = field(default_factory=list)

    def install(self, client: Any) -> Any:
        client.meta.events.register(
            "before-parameter-build.ec2.RebootInstances",
            lambda params, **_: self.calls.append(list(params.get("InstanceIds", []))),
        )
        return client


def build_hold(
    world: World,
    clock: Clock,
    lifecycle: Lifecycle,
    reboots: Reboots | None = None,
    **env: str,
) -> Any:
    from crashcart.functions.lifecycle_hold import handler, settings

    clients = world.clients()
    if reboots is not None:
        reboots.install(clients["ec2"])
    clients["autoscaling"] = lifecycle.client
    clients["memory_cache"] = {}
    return handler.build(
        settings.Settings.from_env(hold_env(world, **env)), Context(), clients=clients, clock=clock
    )


def incident_items(world: World, instance_id: str) -> list[dict[str, Any]]:
    return list(
        world.client("dynamodb").query(
            TableName=world.env["CRASHCART_TABLE_NAME"],
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": f"instance#{instance_id}"}},
        )["Items"]
    )


def holds(world: World) -> list[dict[str, Any]]:
    return list(
        world.client("dynamodb").query(
            TableName=world.env["CRASHCART_TABLE_NAME"],
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": "hold#active"}},
        )["Items"]
    )
