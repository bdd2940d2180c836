"""Dump-overdue sweep: every few minutes, flag incidents whose crash dump is late and say so.

Flow (see :mod:`overdue` for the rule): Scan the incident table (filtered, paginated, at most
``CRASHCART_SWEEP_MAX_PAGES`` pages) -> for each due incident a conditional UpdateItem to
``dump-overdue`` (a dump that arrived meanwhile wins: nothing is sent) -> one SNS message ->
``overdue_notified_at``. Fails closed: a table or topic error raises (after the other incidents
were handled), so the invocation is retried and, after Lambda's retries, kept in the
on-failure queue; nothing is marked notified that was not published.

Then, with ``CRASHCART_ATTESTATION_CENSUS=true``, the attestation census (see
:mod:`attestation`): one paginated ``ec2:DescribeInstances`` for the running instances that
carry the opt-in tag, counted and written as two embedded metrics (``OptedInInstances``,
``AttestedInstances``) on standard output. It runs even when the overdue part failed; an EC2
error fails the invocation after both parts ran (retried, then kept in the on-failure queue).

Environment: ``CRASHCART_TABLE_NAME`` and ``CRASHCART_TOPIC_ARN`` (required),
``CRASHCART_DUMP_BUCKET_PARAMETER`` (named in the message; default ``/crashcart/dump-bucket``),
``CRASHCART_SWEEP_MAX_PAGES`` (default 100 pages of up to 1 MB each; also bounds the census),
``CRASHCART_ATTESTATION_CENSUS`` (``true`` / ``false``, default ``false``),
``CRASHCART_OPT_IN_TAG_KEY`` / ``CRASHCART_OPT_IN_TAG_VALUE`` (default
``crashcart:diagnostic-interrupt`` / ``enabled``), ``CRASHCART_ATTESTATION_MAX_AGE_SECONDS``
(default 604800, the remediation function's).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from crashcart.runtime import environment as variables
from crashcart.runtime.incident import iso

from .attestation import Census, count, emf_record
from .overdue import (
    DEFAULT_PARAMETER_NAME,
    OVERDUE_STATE,
    Action,
    Incident,
    decide,
    from_item,
    message,
    scan_filter,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_sns import SNSClient

LOG = logging.getLogger("crashcart.incident_sweep")
LOG.setLevel(logging.INFO)

DEFAULT_MAX_PAGES = 100
DEFAULT_OPT_IN_TAG_KEY = "crashcart:diagnostic-interrupt"
DEFAULT_OPT_IN_TAG_VALUE = "enabled"
DEFAULT_ATTESTATION_MAX_AGE_SECONDS = 604_800


class SettingsError(ValueError):
    """A configuration variable is missing or invalid."""


class StoreUnavailableError(RuntimeError):
    """The incident table could not be read or written: fail closed."""


class SweepFailedError(RuntimeError):
    """Some incidents could not be flagged or notified; the next run / retry picks them up."""


class CensusFailedError(RuntimeError):
    """The opted-in instances could not be listed: no census this time (fail loudly)."""


@dataclass(frozen=True, kw_only=True)
class Settings:
    table_name: str
    topic_arn: str
    parameter_name: str = DEFAULT_PARAMETER_NAME
    max_pages: int = DEFAULT_MAX_PAGES
    census: bool = False
    opt_in_tag_key: str = DEFAULT_OPT_IN_TAG_KEY
    opt_in_tag_value: str = DEFAULT_OPT_IN_TAG_VALUE
    attestation_max_age_seconds: int = DEFAULT_ATTESTATION_MAX_AGE_SECONDS

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        missing = [n for n in (variables.TABLE_NAME, variables.TOPIC_ARN) if not environ.get(n)]
        if missing:
            raise SettingsError(f"missing environment variables: {', '.join(missing)}")
        raw = environ.get(variables.SWEEP_MAX_PAGES, str(DEFAULT_MAX_PAGES)).strip()
        if not raw.isdigit() or int(raw) < 1:
            raise SettingsError(f"CRASHCART_SWEEP_MAX_PAGES={raw!r}: expected a whole number >= 1")
        census = environ.get(variables.ATTESTATION_CENSUS, "false").strip().lower()
        if census not in ("true", "false"):
            raise SettingsError(f"CRASHCART_ATTESTATION_CENSUS={census!r}: expected true or false")
        age = environ.get(
            variables.ATTESTATION_MAX_AGE_SECONDS, str(DEFAULT_ATTESTATION_MAX_AGE_SECONDS)
        ).strip()
        if not age.isdigit():
            raise SettingsError(
                f"CRASHCART_ATTESTATION_MAX_AGE_SECONDS={age!r}: expected a whole number of "
                "seconds (the remediation function's value)"
            )
        return cls(
            table_name=environ[variables.TABLE_NAME],
            topic_arn=environ[variables.TOPIC_ARN],
            parameter_name=environ.get(variables.DUMP_BUCKET_PARAMETER) or DEFAULT_PARAMETER_NAME,
            max_pages=int(raw),
            census=census == "true",
            opt_in_tag_key=environ.get(variables.OPT_IN_TAG_KEY) or DEFAULT_OPT_IN_TAG_KEY,
            opt_in_tag_value=environ.get(variables.OPT_IN_TAG_VALUE) or DEFAULT_OPT_IN_TAG_VALUE,
            attestation_max_age_seconds=int(age),
        )


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
            token = response.get("NextToken")
            if not token:
                return
            arguments["NextToken"] = token
        raise CensusFailedError(
            f"more than {self.max_pages} pages of opted-in instances: raise "
            "CRASHCART_SWEEP_MAX_PAGES (docs/incident-sweep.md)"
        )


def census(
    fleet: Fleet,
    settings: Settings,
    *,
    now: datetime,
    function_name: str,
    write: Callable[[str], object] | None = None,
) -> Census:
    """Count the running opted-in instances and those attested armed; write the metrics
    (``write``: default standard output, looked up at call time)."""
    counted = count(
        fleet.running(settings.opt_in_tag_key, settings.opt_in_tag_value),
        tag_key=settings.opt_in_tag_key,
        tag_value=settings.opt_in_tag_value,
        now=now,
        max_age_seconds=settings.attestation_max_age_seconds,
    )
    line = emf_record(counted, function_name=function_name, now=now) + "\n"
    if write is None:
        sys.stdout.write(line)
        sys.stdout.flush()
    else:
        write(line)
    if counted.opted_in and not counted.attested:
        LOG.warning(
            json.dumps(
                {
                    "outcome": "none-attested",
                    "reason": "no running opted-in instance is attested armed: with attestation "
                    "policy require every alarm is skipped (docs/aws-assumptions.md, "
                    "attestation-self-tag)",
                    **counted.as_dict(),
                }
            )
        )
    return counted


def sns_publisher(client: SNSClient, topic_arn: str) -> Callable[[str, str], None]:
    def publish(subject: str, body: str) -> None:
        client.publish(TopicArn=topic_arn, Subject=subject, Message=body)

    return publish


def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    settings = Settings.from_env(os.environ)
    now = datetime.now(UTC)
    store = Store(boto3.client("dynamodb"), settings.table_name, max_pages=settings.max_pages)
    publish = sns_publisher(boto3.client("sns"), settings.topic_arn)
    failure: Exception | None = None
    result: dict[str, Any] = {}
    try:
        result = sweep(store, publish, now=now, parameter_name=settings.parameter_name).as_dict()
    except (SweepFailedError, StoreUnavailableError) as error:
        failure = error  # the census still runs; the failure is raised after it
    if settings.census:
        function_name = str(getattr(context, "function_name", "") or "")
        try:
            fleet = Fleet(boto3.client("ec2"), max_pages=settings.max_pages)
            result["attestation"] = census(
                fleet, settings, now=now, function_name=function_name
            ).as_dict()
        except CensusFailedError as error:
            LOG.error(json.dumps({"outcome": "census-failed", "error": str(error)}))
            failure = failure or error
    if failure is not None:
        raise failure
    return result
