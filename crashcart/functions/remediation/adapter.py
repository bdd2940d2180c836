"""AWS facts and actions for the remediation function, over injected boto3 clients.

This is where ``ClientError`` codes become domain outcomes. Rule: a fact that cannot be
established raises :class:`FactUnavailableError` (the handler lets it propagate: Lambda retries and
the event ends in the on-failure queue; nothing is interrupted). Expected answers that *are*
facts (``InvalidInstanceID.NotFound``: the instance does not exist) are returned as values.

``SendDiagnosticInterrupt`` has no client token, so it must never be retried after the request
may have reached EC2: its client is built with botocore retries OFF and this module retries
only on definite throttling answers (``RequestLimitExceeded`` / ``Throttling``), with backoff.
A timeout or dropped connection after sending, or a 5xx, is an *unknown* outcome and is treated
as sent (so the cooldown holds); only definite refusals release the claim.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from crashcart.runtime import notification

from .decision import InstanceFacts, StatusFacts, TypeFacts

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_ssm import SSMClient

THROTTLING_CODES = frozenset({"RequestLimitExceeded", "Throttling", "ThrottlingException"})
#: Refusals that say the interrupt definitely did not happen (the claim is released).
# aws-assumption: diagnostic-interrupt-error-codes
DEFINITE_REFUSALS = frozenset(
    {
        "UnsupportedOperation",
        "IncorrectInstanceState",
        "InvalidInstanceID.NotFound",
        "InvalidInstanceID.Malformed",
        "UnauthorizedOperation",
        "InvalidParameterValue",
        "InvalidParameter",
    }
)
THROTTLE_ATTEMPTS = 4
BACKOFF_SECONDS = (0.5, 1.0, 2.0)
CONSOLE_LIMIT = 60_000  # characters of console output kept as evidence


class FactUnavailableError(Exception):
    """A fact the guards need could not be established: fail closed (do not interrupt, raise)."""


class ConfigurationMissingError(FactUnavailableError):
    """A configured resource is missing (e.g. the kill-switch parameter)."""


class InterruptOutcome(StrEnum):
    SENT = "sent"  # EC2 accepted the request
    UNKNOWN = "unknown"  # the request may have reached EC2: counted as sent
    DRY_RUN_OK = "dry-run-ok"  # DryRun answered DryRunOperation: the real call would be allowed
    REFUSED = "refused"  # definite failure: nothing happened


@dataclass(frozen=True, kw_only=True)
class InterruptResult:
    outcome: InterruptOutcome
    code: str = ""
    message: str = ""
    request_id: str = ""
    attempts: int = 1


class TypeCache:
    """``DescribeInstanceTypes`` answers and ``UnsupportedOperation`` verdicts, per container."""

    def __init__(self) -> None:
        self.types: dict[str, TypeFacts] = {}

    def clear(self) -> None:
        self.types.clear()


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _message(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Message", ""))[:500]


class Ec2Facts:
    """Read-only EC2 calls (DescribeInstances / DescribeInstanceStatus / DescribeInstanceTypes)."""

    def __init__(self, client: EC2Client, cache: TypeCache) -> None:
        self._client = client
        self._cache = cache

    @property
    def client(self) -> EC2Client:
        """The EC2 client (the missed-alarm sweep lists impaired instances with it)."""
        return self._client

    def instance(self, instance_id: str) -> InstanceFacts | None:
        try:
            response = self._client.describe_instances(InstanceIds=[instance_id])
        except ClientError as error:
            if _code(error) in ("InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed"):
                return None
            raise FactUnavailableError(f"DescribeInstances: {_code(error)}") from error
        except BotoCoreError as error:
            raise FactUnavailableError(f"DescribeInstances: {error}") from error
        for reservation in response.get("Reservations", []):
            for raw in reservation.get("Instances", []):
                if raw.get("InstanceId") != instance_id:
                    continue
                tags = {t["Key"]: t.get("Value", "") for t in raw.get("Tags", []) if "Key" in t}
                launch = raw.get("LaunchTime")
                if launch is None:
                    raise FactUnavailableError("DescribeInstances: no LaunchTime")
                return InstanceFacts(
                    instance_id=instance_id,
                    state=str(raw.get("State", {}).get("Name", "unknown")),
                    launch_time=launch,
                    instance_type=str(raw.get("InstanceType", "")),
                    architecture=str(raw.get("Architecture", "")),
                    availability_zone=str(raw.get("Placement", {}).get("AvailabilityZone", "")),
                    tags=tags,
                )
        return None

    # aws-assumption: describe-instance-status-semantics
    def status(self, instance_id: str) -> StatusFacts | None:
        try:
            response = self._client.describe_instance_status(
                InstanceIds=[instance_id], IncludeAllInstances=True
            )
        except ClientError as error:
            if _code(error) == "InvalidInstanceID.NotFound":
                return None
            raise FactUnavailableError(f"DescribeInstanceStatus: {_code(error)}") from error
        except BotoCoreError as error:
            raise FactUnavailableError(f"DescribeInstanceStatus: {error}") from error
        for raw in response.get("InstanceStatuses", []):
            if raw.get("InstanceId") != instance_id:
                continue
            instance = raw.get("InstanceStatus", {})
            impaired_since = None
            for detail in instance.get("Details", []):
                if detail.get("Name") == "reachability" and detail.get("ImpairedSince"):
                    impaired_since = detail["ImpairedSince"]
            ebs: Any = raw.get("AttachedEbsStatus")
            events = tuple(
                str(e.get("Description", e.get("Code", "event")))
                for e in raw.get("Events", [])
                if not str(e.get("Description", "")).startswith(("[Completed]", "[Canceled]"))
            )
            return StatusFacts(
                instance_status=str(instance.get("Status", "insufficient-data")),
                system_status=str(raw.get("SystemStatus", {}).get("Status", "insufficient-data")),
                ebs_status=str(ebs["Status"])
                if isinstance(ebs, dict) and "Status" in ebs
                else None,
                impaired_since=impaired_since,
                scheduled_events=events,
            )
        return None

    # aws-assumption: diagnostic-interrupt-instance-types
    def instance_type(self, instance_type: str) -> TypeFacts | None:
        cached = self._cache.types.get(instance_type)
        if cached is not None:
            return cached
        try:
            response = self._client.describe_instance_types(InstanceTypes=[instance_type])  # type: ignore[list-item]
        except ClientError as error:
            if _code(error) in ("InvalidInstanceType", "InvalidParameterValue"):
                return None
            raise FactUnavailableError(f"DescribeInstanceTypes: {_code(error)}") from error
        except BotoCoreError as error:
            raise FactUnavailableError(f"DescribeInstanceTypes: {error}") from error
        for raw in response.get("InstanceTypes", []):
            if raw.get("InstanceType") != instance_type:
                continue
            facts = TypeFacts(
                instance_type=instance_type,
                hypervisor=raw.get("Hypervisor"),
                bare_metal=bool(raw.get("BareMetal", False)),
                architectures=tuple(raw.get("ProcessorInfo", {}).get("SupportedArchitectures", [])),
            )
            self._cache.types[instance_type] = facts
            return facts
        return None

    def mark_unsupported(self, facts: TypeFacts | None, instance_type: str, reason: str) -> None:
        """Remember an ``UnsupportedOperation`` answer for the type (the API is the authority)."""
        base = facts or TypeFacts(
            instance_type=instance_type, hypervisor=None, bare_metal=False, architectures=()
        )
        self._cache.types[instance_type] = TypeFacts(
            instance_type=base.instance_type,
            hypervisor=base.hypervisor,
            bare_metal=base.bare_metal,
            architectures=base.architectures,
            unsupported_reason=reason or "UnsupportedOperation",
        )


class Interrupter:
    """``ec2:SendDiagnosticInterrupt`` with the retry rules above (client: botocore retries off)."""

    def __init__(self, client: EC2Client, sleep: Callable[[float], None]) -> None:
        self._client = client
        self._sleep = sleep

    def send(self, instance_id: str, *, dry_run: bool) -> InterruptResult:
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._client.send_diagnostic_interrupt(
                    InstanceId=instance_id, DryRun=dry_run
                )
            except ClientError as error:
                code = _code(error)
                request_id = str(error.response.get("ResponseMetadata", {}).get("RequestId", ""))
                if code == "DryRunOperation":
                    return InterruptResult(
                        outcome=InterruptOutcome.DRY_RUN_OK,
                        code=code,
                        message=_message(error),
                        request_id=request_id,
                        attempts=attempt,
                    )
                if code in THROTTLING_CODES and attempt < THROTTLE_ATTEMPTS:
                    self._sleep(BACKOFF_SECONDS[min(attempt - 1, len(BACKOFF_SECONDS) - 1)])
                    continue
                status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
                if code in DEFINITE_REFUSALS or code in THROTTLING_CODES or 400 <= status < 500:
                    return InterruptResult(
                        outcome=InterruptOutcome.REFUSED,
                        code=code,
                        message=_message(error),
                        request_id=request_id,
                        attempts=attempt,
                    )
                return InterruptResult(
                    outcome=InterruptOutcome.UNKNOWN,
                    code=code or str(status),
                    message=_message(error),
                    request_id=request_id,
                    attempts=attempt,
                )
            except (EndpointConnectionError, ConnectTimeoutError) as error:
                # The connection was never made: the request cannot have reached EC2.
                return InterruptResult(
                    outcome=InterruptOutcome.REFUSED,
                    code=type(error).__name__,
                    message=str(error)[:500],
                    attempts=attempt,
                )
            except (ReadTimeoutError, ConnectionClosedError, BotoCoreError) as error:
                return InterruptResult(
                    outcome=InterruptOutcome.UNKNOWN,
                    code=type(error).__name__,
                    message=str(error)[:500],
                    attempts=attempt,
                )
            return InterruptResult(
                outcome=InterruptOutcome.SENT,
                request_id=str(response.get("ResponseMetadata", {}).get("RequestId", "")),
                attempts=attempt,
            )


class Evidence:
    """Latest console output -> S3. Failures are returned, never raised (evidence degrades)."""

    def __init__(self, ec2: EC2Client, s3: S3Client, bucket: str) -> None:
        self._ec2 = ec2
        self._s3 = s3
        self.bucket = bucket

    def capture(self, instance_id: str, key: str) -> tuple[str | None, str | None]:
        """(object key, None) on success, (None, what went wrong) otherwise."""
        try:
            response = self._ec2.get_console_output(InstanceId=instance_id, Latest=True)
        except (ClientError, BotoCoreError) as error:
            code = _code(error) if isinstance(error, ClientError) else type(error).__name__
            return None, f"GetConsoleOutput failed: {code}"
        encoded = response.get("Output") or ""
        try:
            text = base64.b64decode(encoded).decode("utf-8", errors="replace") if encoded else ""
        except (binascii.Error, ValueError):
            text = encoded
        if not text:
            text = "(EC2 returned no console output)\n"
        body = text[-CONSOLE_LIMIT:].encode("utf-8")
        try:
            self._s3.put_object(
                Bucket=self.bucket, Key=key, Body=body, ContentType="text/plain; charset=utf-8"
            )
        except (ClientError, BotoCoreError) as error:
            code = _code(error) if isinstance(error, ClientError) else type(error).__name__
            return None, f"PutObject s3://{self.bucket}/{key} failed: {code}"
        return key, None


# aws-assumption: ssm-kill-switch-parameter
class KillSwitch:
    def __init__(self, client: SSMClient, name: str) -> None:
        self._client = client
        self.name = name

    def value(self) -> str:
        """The parameter's value, lower-cased and stripped. Missing: ConfigurationMissingError."""
        try:
            response = self._client.get_parameter(Name=self.name)
        except ClientError as error:
            if _code(error) == "ParameterNotFound":
                raise ConfigurationMissingError(
                    f"kill-switch parameter {self.name} does not exist: create it with value "
                    "'off' to allow interrupts or 'on' to stop them"
                ) from error
            raise FactUnavailableError(f"GetParameter {self.name}: {_code(error)}") from error
        except BotoCoreError as error:
            raise FactUnavailableError(f"GetParameter {self.name}: {error}") from error
        return str(response.get("Parameter", {}).get("Value", "")).strip().lower()


class Notifier:
    """SNS notifications. Failures are returned (notification degrades; the caller logs it)."""

    def __init__(self, client: SNSClient, topic_arn: str) -> None:
        self._client = client
        self.topic_arn = topic_arn

    def publish(self, subject: str, message: str) -> str | None:
        """None on success, else what went wrong."""
        try:
            self._client.publish(
                TopicArn=self.topic_arn, Subject=notification.subject(subject), Message=message
            )
        except (ClientError, BotoCoreError) as error:
            code = _code(error) if isinstance(error, ClientError) else type(error).__name__
            return f"Publish to {self.topic_arn} failed: {code}"
        return None


class RejectedQueue:
    """Keeps malformed / foreign events. A failure raises: the event must not disappear."""

    def __init__(self, client: SQSClient, queue_url: str) -> None:
        self._client = client
        self.queue_url = queue_url

    def keep(self, body: str) -> None:
        try:
            self._client.send_message(QueueUrl=self.queue_url, MessageBody=body)
        except (ClientError, BotoCoreError) as error:
            raise FactUnavailableError(f"SendMessage to the rejected queue: {error}") from error
