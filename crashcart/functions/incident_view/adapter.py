"""The incident view's AWS calls (DynamoDB, SNS, EventBridge) over injected clients."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from crashcart.functions.dump_arrival.adapter import latest_incident
from crashcart.functions.dump_arrival.decision import Incident
from crashcart.runtime import notification
from crashcart.runtime.incident import INCIDENT_PREFIX, Origin, State
from crashcart.runtime.organisation import (
    DUMP_RECEIVED_DETAIL_TYPE,
    DUMP_RECEIVED_SOURCE,
    DumpReceived,
    IncidentUpdate,
)

from .settings import Settings


def _conditional(call: Any, **request: Any) -> bool:
    """Run one conditional write; False when its condition failed."""
    try:
        call(**request)
    except ClientError as error:
        if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
            return False
        raise
    return True


class MemberEventError(RuntimeError):
    """The "dump received" event did not reach the member's bus (refused or not sent)."""


class Adapter:
    """AWS calls, with injected clients."""

    def __init__(self, settings: Settings, dynamodb: Any, sns: Any, events: Any) -> None:
        self.settings = settings
        self.dynamodb = dynamodb
        self.sns = sns
        self.events = events

    def send_dump_received(self, received: DumpReceived) -> str:
        """Put one "dump received" event directly on the member's default bus in this Region
        (one hop); its event id. :class:`MemberEventError` when the call fails or the entry
        is refused (PutEvents reports refused entries in its answer, not as an error)."""
        bus = self.settings.member_bus_arn(received.account)
        try:
            answer = self.events.put_events(
                Entries=[
                    {
                        # aws-assumption: org-eventbridge-default-bus-cross-account
                        "EventBusName": bus,
                        "Source": DUMP_RECEIVED_SOURCE,
                        "DetailType": DUMP_RECEIVED_DETAIL_TYPE,
                        "Detail": json.dumps(received.detail(), sort_keys=True),
                    }
                ]
            )
        except ClientError as error:
            raise MemberEventError(
                f"PutEvents to {bus} failed: {error.response['Error'].get('Code')}: "
                f"{error.response['Error'].get('Message', '')[:200]}"
            ) from error
        (entry,) = answer.get("Entries") or [{}]
        if answer.get("FailedEntryCount", 0) or not entry.get("EventId"):
            raise MemberEventError(
                f"PutEvents to {bus} refused the entry: {entry.get('ErrorCode')}: "
                f"{str(entry.get('ErrorMessage', ''))[:200]}"
            )
        return str(entry["EventId"])

    def record_update(self, pk: str, update: IncidentUpdate, event_id: str) -> bool:
        """Write a member's incident state; False when a newer update is already recorded
        (events may arrive out of order). Never touches the dump attributes."""
        values: dict[str, Any] = {
            ":account": {"S": update.account},
            ":region": {"S": update.region},
            ":instance": {"S": update.instance_id},
            ":state": {"S": str(update.state)},
            ":updated": {"S": update.updated_at},
            ":opened": {"S": update.incident.removeprefix(INCIDENT_PREFIX)},
            ":event": {"S": event_id},
            ":az": {"S": update.availability_zone} if update.availability_zone else {"NULL": True},
            ":reason": {"S": update.reason} if update.reason is not None else {"NULL": True},
        }
        return _conditional(
            self.dynamodb.update_item,
            TableName=self.settings.table_name,
            Key={"pk": {"S": pk}, "sk": {"S": update.incident}},
            UpdateExpression=(
                "SET account = :account, #region = :region, instance_id = :instance, "
                "#state = :state, updated_at = :updated, availability_zone = :az, "
                "reason = :reason, event_id = :event, opened_at = if_not_exists(opened_at, "
                ":opened), origin = if_not_exists(origin, :origin)"
            ),
            ConditionExpression="attribute_not_exists(updated_at) OR updated_at <= :updated",
            ExpressionAttributeNames={"#state": "state", "#region": "region"},
            ExpressionAttributeValues={**values, ":origin": {"S": Origin.REMEDIATION}},
        )

    def latest_incident(self, pk: str) -> Incident | None:
        return latest_incident(self.dynamodb, self.settings.table_name, pk)

    def attach_dump(self, pk: str, sk: str, keys: list[str], now: str) -> bool:
        """Link the dump to an incident that has none yet (the member's state is kept)."""
        return _conditional(
            self.dynamodb.update_item,
            TableName=self.settings.table_name,
            Key={"pk": {"S": pk}, "sk": {"S": sk}},
            UpdateExpression="SET dump_keys = :keys, dump_received_at = :now",
            ConditionExpression="attribute_exists(pk) AND attribute_not_exists(dump_keys)",
            ExpressionAttributeValues={
                ":keys": {"L": [{"S": key} for key in keys]},
                ":now": {"S": now},
            },
        )

    def open_spontaneous(
        self,
        pk: str,
        sk: str,
        *,
        account: str,
        instance_id: str,
        keys: list[str],
        reason: str,
        request_id: str,
    ) -> bool:
        """A new incident for a dump no member incident announced (conditional put)."""
        opened = sk.removeprefix(INCIDENT_PREFIX)
        return _conditional(
            self.dynamodb.put_item,
            TableName=self.settings.table_name,
            Item={
                "pk": {"S": pk},
                "sk": {"S": sk},
                "account": {"S": account},
                "instance_id": {"S": instance_id},
                "state": {"S": State.DUMP_RECEIVED},
                "origin": {"S": Origin.SPONTANEOUS},
                "opened_at": {"S": opened},
                "updated_at": {"S": opened},
                "dump_received_at": {"S": opened},
                "reason": {"S": reason},
                "request_id": {"S": request_id},
                "dump_keys": {"L": [{"S": key} for key in keys]},
            },
            ConditionExpression="attribute_not_exists(pk)",
        )

    def notify(self, subject: str, message: str) -> None:
        safe = notification.subject(subject, fallback="crashcart: organisation incident")
        self.sns.publish(TopicArn=self.settings.topic_arn, Subject=safe, Message=message)
