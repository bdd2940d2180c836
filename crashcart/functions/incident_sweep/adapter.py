"""The overdue sweep's AWS calls over injected clients: the incident table, EC2, SNS.

Errors become the sweep's outcomes here: :class:`StoreUnavailableError` (fail closed) and
:class:`CensusFailedError`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from crashcart.runtime.paging import next_page

from .overdue import OVERDUE_STATE, Incident, scan_filter

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_sns import SNSClient


class StoreUnavailableError(RuntimeError):
    """The incident table could not be read or written: fail closed."""


class CensusFailedError(RuntimeError):
    """The opted-in instances could not be listed: no census this time (fail loudly)."""


class Store:
    """The incident table (a low-level DynamoDB client is injected)."""

    def __init__(self, client: DynamoDBClient, table: str, *, max_pages: int) -> None:
        self._client = client
        self.table = table
        self.max_pages = max_pages
        #: True when the last :meth:`candidates` stopped at ``max_pages`` with more to read.
        self.truncated = False

    def candidates(self, now_iso: str) -> Iterator[dict[str, Any]]:
        """Items the filter selects, page by page (raises :class:`StoreUnavailableError`)."""
        self.truncated = False
        arguments: dict[str, Any] = {"TableName": self.table, **scan_filter(now_iso)}
        for _page in range(self.max_pages):
            try:
                response = self._client.scan(**arguments)
            except (ClientError, BotoCoreError) as error:
                raise StoreUnavailableError(f"scanning {self.table} failed: {error}") from error
            yield from response.get("Items", [])
            last = response.get("LastEvaluatedKey")
            if not last:
                return
            arguments["ExclusiveStartKey"] = last
        self.truncated = True

    def _conditional_update(self, what: str, **arguments: Any) -> bool:
        try:
            self._client.update_item(TableName=self.table, **arguments)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise StoreUnavailableError(f"{what} failed: {error}") from error
        except BotoCoreError as error:
            raise StoreUnavailableError(f"{what} failed: {error}") from error
        return True

    def flag(self, incident: Incident, now_iso: str) -> bool:
        """``dump-overdue`` if the incident is still as read; False when it changed."""
        return self._conditional_update(
            "flagging the incident overdue",
            Key={"pk": {"S": incident.pk}, "sk": {"S": incident.sk}},
            UpdateExpression=(
                "SET #state = :overdue, overdue_at = :now, updated_at = :now, "
                "state_before_overdue = :seen"
            ),
            ConditionExpression=(
                "#state = :seen AND dump_deadline < :now AND attribute_not_exists(dump_keys)"
                " AND attribute_not_exists(overdue_at)"
            ),
            ExpressionAttributeNames={"#state": "state"},
            ExpressionAttributeValues={
                ":overdue": {"S": OVERDUE_STATE},
                ":seen": {"S": incident.state},
                ":now": {"S": now_iso},
            },
        )

    def mark_notified(self, incident: Incident, now_iso: str) -> bool:
        return self._conditional_update(
            "recording the notification",
            Key={"pk": {"S": incident.pk}, "sk": {"S": incident.sk}},
            UpdateExpression="SET overdue_notified_at = :now",
            ConditionExpression=(
                "attribute_exists(overdue_at) AND attribute_not_exists(overdue_notified_at)"
            ),
            ExpressionAttributeValues={":now": {"S": now_iso}},
        )


class Fleet:
    """The running opted-in instances of the function's region (an EC2 client is injected)."""

    def __init__(self, client: EC2Client, *, max_pages: int) -> None:
        self._client = client
        self.max_pages = max_pages

    def running(self, tag_key: str, tag_value: str) -> Iterator[tuple[str, dict[str, str]]]:
        """``(instance id, tags)`` of running instances carrying the tag (server-side filter).

        Raises :class:`CensusFailedError` when EC2 cannot be read or the listing is longer
        than ``max_pages`` pages (a count cut short could say "none attested" wrongly).
        """
        arguments: dict[str, Any] = {
            "Filters": [
                {"Name": f"tag:{tag_key}", "Values": [tag_value]},
                {"Name": "instance-state-name", "Values": ["running"]},
            ],
            "MaxResults": 1000,
        }
        for _page in range(self.max_pages):
            try:
                response = self._client.describe_instances(**arguments)
            except (ClientError, BotoCoreError) as error:
                raise CensusFailedError(f"listing opted-in instances failed: {error}") from error
            for reservation in response.get("Reservations", []):
                for raw in reservation.get("Instances", []):
                    tags = {t["Key"]: t.get("Value", "") for t in raw.get("Tags", []) if "Key" in t}
                    yield str(raw.get("InstanceId", "")), tags
            if not next_page(response, arguments):
                return
        raise CensusFailedError(
            f"more than {self.max_pages} pages of opted-in instances: raise "
            "CRASHCART_SWEEP_MAX_PAGES (docs/incident-sweep.md)"
        )


def sns_publisher(client: SNSClient, topic_arn: str) -> Callable[[str, str], None]:
    def publish(subject: str, body: str) -> None:
        client.publish(TopicArn=topic_arn, Subject=subject, Message=body)

    return publish
