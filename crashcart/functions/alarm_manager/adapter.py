"""The AWS calls of the alarm manager: paced, backed off under throttling, errors as outcomes.

``PutMetricAlarm`` and ``DeleteAlarms`` are rate-limited per account and Region (a quota
shared with every other caller in the account; aws-assumption: cloudwatch-alarm-api-rates).
Every write goes through one :class:`Pacer` (at most ``puts_per_second`` calls a second from
this copy of the function) and :func:`with_backoff` (on a throttling error: wait, with full
jitter and a cap, then try again, a bounded number of times). Deletes go in batches of 100
names, the most ``DeleteAlarms`` takes.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Final, TypeVar

from botocore.exceptions import ClientError

from .alarms import Instance

T = TypeVar("T")

#: Error codes that mean "slow down" (CloudWatch answers ``Throttling``; EC2
#: ``RequestLimitExceeded``).
THROTTLING: Final = frozenset(
    {"Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException"}
)
#: ``DeleteAlarms`` takes at most 100 names.
DELETE_BATCH: Final = 100
MAX_ATTEMPTS: Final = 8
BASE_DELAY: Final = 0.25
MAX_DELAY: Final = 20.0


class ThrottledError(RuntimeError):
    """Still throttled after every attempt: the caller stops and lets the next pass finish."""


class ManagerFailedError(RuntimeError):
    """An AWS call failed for a reason other than throttling (permissions, validation)."""


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def with_backoff(
    call: Callable[[], T],
    *,
    sleep: Callable[[float], None] = time.sleep,
    jitter: Callable[[float, float], float] = random.uniform,
    attempts: int = MAX_ATTEMPTS,
) -> T:
    """``call()``, retried on throttling with capped exponential backoff and full jitter."""
    for attempt in range(attempts):
        try:
            return call()
        except ClientError as error:
            if _code(error) not in THROTTLING:
                raise
            if attempt == attempts - 1:
                raise ThrottledError(
                    f"still throttled ({_code(error)}) after {attempts} attempts"
                ) from error
            sleep(jitter(0, min(MAX_DELAY, BASE_DELAY * 2**attempt)))
    raise AssertionError("unreachable")  # pragma: no cover


class Pacer:
    """At most ``per_second`` calls a second (this copy of the function)."""

    def __init__(
        self,
        per_second: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._interval = 1.0 / per_second
        self._clock = clock
        self._sleep = sleep
        self._next = 0.0

    def wait(self) -> None:
        now = self._clock()
        if now < self._next:
            self._sleep(self._next - now)
            now = self._next
        self._next = now + self._interval


class Fleet:
    """EC2: one instance as it is now; every opted-in instance of the Region."""

    def __init__(self, ec2: Any, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self._ec2 = ec2
        self._sleep = sleep

    def instance(self, instance_id: str) -> Instance | None:
        """The instance, or None when EC2 no longer knows it."""
        try:
            answer = with_backoff(
                lambda: self._ec2.describe_instances(InstanceIds=[instance_id]),
                sleep=self._sleep,
            )
        except ClientError as error:
            if _code(error) in ("InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed"):
                return None
            raise ManagerFailedError(f"DescribeInstances {instance_id}: {_code(error)}") from error
        for reservation in answer.get("Reservations", []):
            for item in reservation.get("Instances", []):
                if item.get("InstanceId") == instance_id:
                    return _instance(item)
        return None

    def opted_in(self, key: str, value: str) -> Iterator[Instance]:
        """Every instance of the Region that carries ``key=value`` and is not terminating."""
        paginator = self._ec2.get_paginator("describe_instances")
        pages = paginator.paginate(
            Filters=[
                {"Name": f"tag:{key}", "Values": [value]},
                {
                    "Name": "instance-state-name",
                    "Values": ["pending", "running", "stopping", "stopped"],
                },
            ],
            PaginationConfig={"PageSize": 1000},
        )
        try:
            for page in pages:
                for reservation in page.get("Reservations", []):
                    for item in reservation.get("Instances", []):
                        yield _instance(item)
        except ClientError as error:
            raise ManagerFailedError(f"DescribeInstances (tag {key}): {_code(error)}") from error


def _instance(item: dict[str, Any]) -> Instance:
    return Instance(
        instance_id=str(item["InstanceId"]),
        state=str(item.get("State", {}).get("Name", "")),
        tags={str(t["Key"]): str(t.get("Value", "")) for t in item.get("Tags", []) or []},
    )


class Alarms:
    """CloudWatch: the deployment's alarms; put and delete, paced and backed off."""

    def __init__(
        self,
        cloudwatch: Any,
        prefix: str,
        pacer: Pacer,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._cloudwatch = cloudwatch
        self._prefix = prefix
        self._pacer = pacer
        self._sleep = sleep
        #: Calls answered with a throttling error (each was waited out and tried again).
        self.throttled = 0

    def _write(self, call: Callable[[], T]) -> T:
        def paced() -> T:
            self._pacer.wait()
            try:
                return call()
            except ClientError as error:
                if _code(error) in THROTTLING:
                    self.throttled += 1
                raise

        return with_backoff(paced, sleep=self._sleep)

    def existing(self) -> dict[str, dict[str, Any]]:
        """Every metric alarm whose name starts with the deployment's prefix, by name."""
        paginator = self._cloudwatch.get_paginator("describe_alarms")
        found: dict[str, dict[str, Any]] = {}
        try:
            for page in paginator.paginate(
                AlarmNamePrefix=self._prefix, AlarmTypes=["MetricAlarm"]
            ):
                for alarm in page.get("MetricAlarms", []):
                    found[str(alarm["AlarmName"])] = alarm
        except ClientError as error:
            raise ManagerFailedError(f"DescribeAlarms: {_code(error)}") from error
        return found

    def exists(self, name: str) -> bool:
        try:
            answer = with_backoff(
                lambda: self._cloudwatch.describe_alarms(
                    AlarmNames=[name], AlarmTypes=["MetricAlarm"]
                ),
                sleep=self._sleep,
            )
        except ClientError as error:
            raise ManagerFailedError(f"DescribeAlarms {name}: {_code(error)}") from error
        return bool(answer.get("MetricAlarms"))

    def put(self, spec: dict[str, Any]) -> None:
        try:
            self._write(lambda: self._cloudwatch.put_metric_alarm(**spec))
        except ClientError as error:
            raise ManagerFailedError(
                f"PutMetricAlarm {spec['AlarmName']}: {_code(error)}"
            ) from error

    def delete(self, names: Iterable[str]) -> int:
        """Delete ``names`` (only names with the deployment's prefix), 100 a call."""
        batch: list[str] = []
        deleted = 0
        for name in names:
            if not name.startswith(self._prefix):
                raise ManagerFailedError(f"refusing to delete {name!r}: not this deployment's")
            batch.append(name)
            if len(batch) == DELETE_BATCH:
                deleted += self._delete_batch(batch)
                batch = []
        if batch:
            deleted += self._delete_batch(batch)
        return deleted

    def _delete_batch(self, names: list[str]) -> int:
        try:
            self._write(lambda: self._cloudwatch.delete_alarms(AlarmNames=list(names)))
        except ClientError as error:
            if _code(error) == "ResourceNotFound":
                return 0  # already gone: what was asked for is true
            raise ManagerFailedError(f"DeleteAlarms: {_code(error)}") from error
        return len(names)
