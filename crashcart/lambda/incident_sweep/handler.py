"""Dump-overdue sweep: every few minutes, flag incidents whose crash dump is late and say so.

Flow (see :mod:`overdue` for the rule): Scan the incident table (filtered, paginated, at most
``CRASHCART_SWEEP_MAX_PAGES`` pages) -> for each due incident a conditional UpdateItem to
``dump-overdue`` (a dump that arrived meanwhile wins: nothing is sent) -> one SNS message ->
``overdue_notified_at``. Fails closed: a table or topic error raises (after the other incidents
were handled), so the invocation is retried and, after Lambda's retries, kept in the
on-failure queue; nothing is marked notified that was not published.

Environment: ``CRASHCART_TABLE_NAME`` and ``CRASHCART_TOPIC_ARN`` (required),
``CRASHCART_DUMP_BUCKET_PARAMETER`` (named in the message; default ``/crashcart/dump-bucket``),
``CRASHCART_SWEEP_MAX_PAGES`` (default 100 pages of up to 1 MB each).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from overdue import (
    DEFAULT_PARAMETER_NAME,
    OVERDUE_STATE,
    Action,
    Incident,
    decide,
    from_item,
    message,
    scan_filter,
)

from crashcart.runtime import environment as variables

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sns import SNSClient

LOG = logging.getLogger("crashcart.incident_sweep")
LOG.setLevel(logging.INFO)

DEFAULT_MAX_PAGES = 100


class SettingsError(ValueError):
    """A configuration variable is missing or invalid."""


class StoreUnavailableError(RuntimeError):
    """The incident table could not be read or written: fail closed."""


class SweepFailedError(RuntimeError):
    """Some incidents could not be flagged or notified; the next run / retry picks them up."""


@dataclass(frozen=True, kw_only=True)
class Settings:
    table_name: str
    topic_arn: str
    parameter_name: str = DEFAULT_PARAMETER_NAME
    max_pages: int = DEFAULT_MAX_PAGES

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        missing = [n for n in (variables.TABLE_NAME, variables.TOPIC_ARN) if not environ.get(n)]
        if missing:
            raise SettingsError(f"missing environment variables: {', '.join(missing)}")
        raw = environ.get(variables.SWEEP_MAX_PAGES, str(DEFAULT_MAX_PAGES)).strip()
        if not raw.isdigit() or int(raw) < 1:
            raise SettingsError(f"CRASHCART_SWEEP_MAX_PAGES={raw!r}: expected a whole number >= 1")
        return cls(
            table_name=environ[variables.TABLE_NAME],
            topic_arn=environ[variables.TOPIC_ARN],
            parameter_name=environ.get(variables.DUMP_BUCKET_PARAMETER) or DEFAULT_PARAMETER_NAME,
            max_pages=int(raw),
        )


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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


@dataclass
class Result:
    flagged: list[str] = field(default_factory=list)
    notified: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # changed between scan and write
    errors: list[str] = field(default_factory=list)
    truncated: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "flagged": self.flagged,
            "notified": self.notified,
            "skipped": self.skipped,
            "errors": self.errors,
            "truncated": self.truncated,
        }


def sweep(
    store: Store,
    publish: Callable[[str, str], None],
    *,
    now: datetime,
    parameter_name: str = DEFAULT_PARAMETER_NAME,
) -> Result:
    """One sweep. Raises :class:`StoreUnavailableError` when the scan fails (nothing done),
    :class:`SweepFailedError` after handling the rest when some incident failed or the scan
    was cut at its page bound."""
    now_iso = iso(now)
    result = Result()
    for item in store.candidates(now_iso):
        incident = from_item(item)
        if incident is None:
            continue
        action = decide(incident, now_iso)
        if action is Action.NONE:
            continue
        name = f"{incident.instance_id} {incident.sk}"
        try:
            if action is Action.FLAG:
                if not store.flag(incident, now_iso):
                    result.skipped.append(name)
                    LOG.info(json.dumps({"outcome": "changed", "incident": name}))
                    continue
                result.flagged.append(name)
            subject, body = message(incident, parameter_name=parameter_name)
            publish(subject, body)
            store.mark_notified(incident, now_iso)
            result.notified.append(name)
            LOG.warning(json.dumps({"outcome": "dump-overdue", "incident": name}))
        except (StoreUnavailableError, ClientError, BotoCoreError) as error:
            result.errors.append(f"{name}: {error}")
            LOG.error(json.dumps({"outcome": "error", "incident": name, "error": str(error)}))
    result.truncated = store.truncated
    LOG.info(json.dumps({"outcome": "swept", **result.as_dict()}))
    if result.errors:
        raise SweepFailedError(f"{len(result.errors)} incident(s) failed: {result.errors}")
    if result.truncated:
        raise SweepFailedError(
            f"the scan stopped after {store.max_pages} pages with more to read: raise "
            "CRASHCART_SWEEP_MAX_PAGES or move to an index (docs/incident-sweep.md)"
        )
    return result


def sns_publisher(client: SNSClient, topic_arn: str) -> Callable[[str, str], None]:
    def publish(subject: str, body: str) -> None:
        client.publish(TopicArn=topic_arn, Subject=subject, Message=body)

    return publish


def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    settings = Settings.from_env(os.environ)
    store = Store(boto3.client("dynamodb"), settings.table_name, max_pages=settings.max_pages)
    publish = sns_publisher(boto3.client("sns"), settings.topic_arn)
    return sweep(
        store, publish, now=datetime.now(UTC), parameter_name=settings.parameter_name
    ).as_dict()
