"""AWS calls of the lifecycle-hold function, over injected boto3 clients.

The remediation's adapters are reused as they are (kill switch, EC2 describes, notifier,
rejected queue, the incident store); this module adds what only the hold does: complete and
renew lifecycle actions, read an instance type's memory, reboot, and the holds partition.
Failures to read a fact raise :class:`FactUnavailableError` (Lambda retries; for a lifecycle
action the hook's default result, CONTINUE, applies when nobody answers).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from crashcart.functions.remediation.adapter import FactUnavailableError
from crashcart.functions.remediation.claims import StoreUnavailableError, to_attributes
from crashcart.runtime.incident import (
    ESCALATION_CANDIDATES,
    HOLDS_PK,
    INCIDENT_PREFIX,
    Attribute,
    instance_pk,
    item_key,
)

if TYPE_CHECKING:
    from mypy_boto3_autoscaling import AutoScalingClient
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_ec2 import EC2Client

Item = dict[str, Any]


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _message(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Message", ""))


class Lifecycle:
    """CompleteLifecycleAction / RecordLifecycleActionHeartbeat (by token)."""

    def __init__(self, client: AutoScalingClient) -> None:
        self._client = client

    def _call(self, what: str, operation: Any, **kwargs: Any) -> bool:
        """True when done; False when the action no longer exists (completed or timed out)."""
        try:
            operation(**kwargs)
        except ClientError as error:
            # aws-assumption: lifecycle-action-gone
            if _code(error) == "ValidationError" and "No active Lifecycle Action" in _message(
                error
            ):
                return False
            raise FactUnavailableError(f"{what}: {_code(error)} {_message(error)}") from error
        except BotoCoreError as error:
            raise FactUnavailableError(f"{what}: {error}") from error
        return True

    def complete(self, *, group: str, hook: str, token: str, instance_id: str) -> bool:
        """CONTINUE: for a terminating instance, termination goes on (so does ABANDON)."""
        # aws-assumption: lifecycle-terminate-continue-abandon
        return self._call(
            "CompleteLifecycleAction",
            self._client.complete_lifecycle_action,
            AutoScalingGroupName=group,
            LifecycleHookName=hook,
            LifecycleActionToken=token,
            LifecycleActionResult="CONTINUE",
            InstanceId=instance_id,
        )

    def heartbeat(self, *, group: str, hook: str, token: str, instance_id: str) -> bool:
        # aws-assumption: lifecycle-hook-heartbeat-limits
        return self._call(
            "RecordLifecycleActionHeartbeat",
            self._client.record_lifecycle_action_heartbeat,
            AutoScalingGroupName=group,
            LifecycleHookName=hook,
            LifecycleActionToken=token,
            InstanceId=instance_id,
        )


class Machines:
    """Instance-type memory (cached per container) and the escalation reboot."""

    def __init__(self, client: EC2Client, memory_cache: dict[str, int | None]) -> None:
        self._client = client
        self._memory = memory_cache

    def memory_mib(self, instance_type: str | None) -> int | None:
        """The type's memory; None when unknown (the deadline then takes its cap)."""
        if not instance_type:
            return None
        if instance_type in self._memory:
            return self._memory[instance_type]
        try:
            response = self._client.describe_instance_types(InstanceTypes=[instance_type])  # type: ignore[list-item]
        except ClientError as error:
            if _code(error) in ("InvalidInstanceType", "InvalidParameterValue"):
                self._memory[instance_type] = None
                return None
            raise FactUnavailableError(f"DescribeInstanceTypes: {_code(error)}") from error
        except BotoCoreError as error:
            raise FactUnavailableError(f"DescribeInstanceTypes: {error}") from error
        name: str = instance_type
        memory = None
        for raw in response.get("InstanceTypes", []):
            if raw.get("InstanceType") == name:
                size = raw.get("MemoryInfo", {}).get("SizeInMiB")
                memory = int(size) if size else None
        self._memory[name] = memory
        return memory

    def reboot(self, instance_id: str) -> str | None:
        """None when EC2 accepted the reboot, else what went wrong."""
        try:
            self._client.reboot_instances(InstanceIds=[instance_id])
        except ClientError as error:
            return f"RebootInstances: {_code(error)} {_message(error)[:300]}"
        except BotoCoreError as error:
            return f"RebootInstances: {error}"
        return None


class HoldStore:
    """The holds partition and the escalation's scan (a low-level DynamoDB client)."""

    def __init__(self, client: DynamoDBClient, table: str, *, max_pages: int = 20) -> None:
        self._client = client
        self.table = table
        self.max_pages = max_pages

    def _call(self, what: str, operation: Any, **kwargs: Any) -> Any:
        try:
            return operation(**kwargs)
        except (ClientError, BotoCoreError) as error:
            raise StoreUnavailableError(f"{what} failed: {error}") from error

    def put_hold(self, instance_id: str, values: dict[str, object]) -> None:
        self._call(
            "recording the hold",
            self._client.put_item,
            TableName=self.table,
            Item={**item_key(HOLDS_PK, instance_pk(instance_id)), **to_attributes(values)},
        )

    def holds(self) -> list[Item]:
        items: list[Item] = []
        arguments: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": HOLDS_PK}},
            "ConsistentRead": True,
        }
        while True:
            response = self._call("reading the holds", self._client.query, **arguments)
            items.extend(response.get("Items", []))
            last = response.get("LastEvaluatedKey")
            if not last:
                return items
            arguments["ExclusiveStartKey"] = last

    def touch_hold(self, instance_id: str, now_iso: str) -> None:
        self._call(
            "recording the heartbeat",
            self._client.update_item,
            TableName=self.table,
            Key=item_key(HOLDS_PK, instance_pk(instance_id)),
            UpdateExpression="SET last_heartbeat_at = :now ADD heartbeats :one",
            ExpressionAttributeValues={":now": {"S": now_iso}, ":one": {"N": "1"}},
        )

    def delete_hold(self, instance_id: str) -> None:
        self._call(
            "removing the hold",
            self._client.delete_item,
            TableName=self.table,
            Key=item_key(HOLDS_PK, instance_pk(instance_id)),
        )

    def escalation_candidates(self) -> Iterator[Item]:
        """Interrupted incidents without an escalation outcome (a filtered Scan)."""
        interrupted, overdue = ESCALATION_CANDIDATES
        arguments: dict[str, Any] = {
            "TableName": self.table,
            "FilterExpression": (
                "begins_with(sk, :incident) AND attribute_not_exists(#outcome) AND "
                "(#state = :interrupted OR (#state = :overdue AND #before = :interrupted))"
            ),
            "ExpressionAttributeNames": {
                "#state": Attribute.STATE.value,
                "#outcome": Attribute.ESCALATION_OUTCOME.value,
                "#before": Attribute.STATE_BEFORE_OVERDUE.value,
            },
            "ExpressionAttributeValues": {
                ":incident": {"S": INCIDENT_PREFIX},
                ":interrupted": {"S": interrupted.value},
                ":overdue": {"S": overdue.value},
            },
        }
        for _page in range(self.max_pages):
            response = self._call("scanning for escalations", self._client.scan, **arguments)
            yield from response.get("Items", [])
            last = response.get("LastEvaluatedKey")
            if not last:
                return
            arguments["ExclusiveStartKey"] = last

    def record_escalation(
        self, instance_id: str, sk: str, values: dict[str, object], expected_state: str
    ) -> bool:
        """Set the escalation outcome once (conditional: no outcome yet, state as read)."""
        attributes = to_attributes(values)
        names = {f"#a{i}": name for i, name in enumerate(attributes)}
        names["#state"] = Attribute.STATE.value
        names["#outcome"] = Attribute.ESCALATION_OUTCOME.value
        expression_values = {f":v{i}": value for i, value in enumerate(attributes.values())}
        expression_values[":expected"] = {"S": expected_state}
        try:
            self._client.update_item(
                TableName=self.table,
                Key=item_key(instance_pk(instance_id), sk),
                UpdateExpression="SET "
                + ", ".join(f"#a{i} = :v{i}" for i in range(len(attributes))),
                ConditionExpression="#state = :expected AND attribute_not_exists(#outcome)",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=expression_values,
            )
        except ClientError as error:
            if _code(error) == "ConditionalCheckFailedException":
                return False
            raise StoreUnavailableError(f"recording the escalation failed: {error}") from error
        except BotoCoreError as error:
            raise StoreUnavailableError(f"recording the escalation failed: {error}") from error
        return True
