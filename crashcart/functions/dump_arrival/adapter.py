"""The dump-arrival function's AWS calls (S3, DynamoDB, SNS) over injected clients."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from crashcart.runtime import notification
from crashcart.runtime.incident import (
    INCIDENT_PREFIX,
    Origin,
    State,
    instance_pk,
    parse_time,
)
from crashcart.runtime.objects import read_head

from .decision import Incident
from .settings import Settings


def latest_incident(dynamodb: Any, table_name: str, pk: str) -> Incident | None:
    """The latest incident under partition key ``pk`` (also the central view's, whose keys
    name the account too)."""
    response = dynamodb.query(
        TableName=table_name,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
        ExpressionAttributeValues={":pk": {"S": pk}, ":prefix": {"S": INCIDENT_PREFIX}},
        ScanIndexForward=False,
        Limit=1,
        ConsistentRead=True,
    )
    items = response.get("Items") or []
    if not items:
        return None
    item = items[0]
    sk = item["sk"]["S"]
    opened = item.get("opened_at", {}).get("S") or sk.removeprefix(INCIDENT_PREFIX)
    keys = tuple(value["S"] for value in item.get("dump_keys", {}).get("L", []))
    return Incident(sk, parse_time(opened), item.get("state", {}).get("S", ""), keys)


class Adapter:
    """AWS calls, with injected clients."""

    def __init__(self, settings: Settings, s3: Any, dynamodb: Any, sns: Any) -> None:
        self.settings = settings
        self.s3 = s3
        self.dynamodb = dynamodb
        self.sns = sns

    def read(self, bucket: str, key: str, limit: int) -> bytes | None:
        """The first ``limit`` bytes of an object; None when it is missing."""
        return read_head(self.s3, bucket, key, limit)

    def latest_incident(self, instance_id: str) -> Incident | None:
        return latest_incident(self.dynamodb, self.settings.table_name, instance_pk(instance_id))

    def attach(
        self,
        instance_id: str,
        sk: str,
        keys: list[str],
        summary: str,
        now: str,
        capture_memory: dict[str, int] | None = None,
    ) -> bool:
        values: dict[str, Any] = {
            ":state": {"S": State.DUMP_RECEIVED},
            ":keys": {"L": [{"S": key} for key in keys]},
            ":summary": {"S": summary},
            ":now": {"S": now},
        }
        update = "SET #state = :state, dump_keys = :keys, summary = :summary, updated_at = :now"
        if capture_memory:
            update += ", capture_memory = :memory"
            values[":memory"] = _number_map(capture_memory)
        try:
            self.dynamodb.update_item(
                TableName=self.settings.table_name,
                Key={"pk": {"S": instance_pk(instance_id)}, "sk": {"S": sk}},
                UpdateExpression=update,
                ConditionExpression="attribute_exists(pk) AND attribute_not_exists(dump_keys)",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues=values,
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def open(
        self,
        instance_id: str,
        sk: str,
        keys: list[str],
        summary: str,
        reason: str,
        request_id: str,
        capture_memory: dict[str, int] | None = None,
    ) -> bool:
        opened = sk.removeprefix(INCIDENT_PREFIX)
        extra = {"capture_memory": _number_map(capture_memory)} if capture_memory else {}
        try:
            self.dynamodb.put_item(
                TableName=self.settings.table_name,
                Item={
                    **extra,
                    "pk": {"S": instance_pk(instance_id)},
                    "sk": {"S": sk},
                    "instance_id": {"S": instance_id},
                    "state": {"S": State.DUMP_RECEIVED},
                    "origin": {"S": Origin.SPONTANEOUS},
                    "opened_at": {"S": opened},
                    "updated_at": {"S": opened},
                    "reason": {"S": reason},
                    "request_id": {"S": request_id},
                    "dump_keys": {"L": [{"S": key} for key in keys]},
                    "summary": {"S": summary},
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def notify(self, subject: str, message: str) -> None:
        # The subject quotes the kernel's panic line (from the instance): SNS refuses control
        # and non-ASCII characters there, and a refused publish after the incident was
        # written would lose the notification on the retry (it finds a duplicate).
        safe = notification.subject(subject, fallback="crashcart: dump")
        self.sns.publish(TopicArn=self.settings.topic_arn, Subject=safe, Message=message)


def _number_map(figures: dict[str, int]) -> dict[str, Any]:
    return {"M": {name: {"N": str(value)} for name, value in figures.items()}}
