"""Lambda entry point of the alarm manager (``handler.handler``): thin on purpose.

Settings from the environment (per call), boto3 clients once per container, the event
classified by :mod:`events`, then one pass of :mod:`service`. AWS calls made:
``ec2:DescribeInstances``, ``cloudwatch:DescribeAlarms`` / ``PutMetricAlarm`` /
``DeleteAlarms`` / ``TagResource`` (tags on create), ``sqs:SendMessage`` (rejected events),
and, for a CloudFormation request, one HTTPS ``PUT`` of the answer to its pre-signed URL.
"""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

import boto3

from .adapter import Alarms, Fleet, ManagerFailedError, Pacer
from .events import LookAt, Reconcile, Rejected, StackRequest, parse
from .service import LOG, Outcome, look_at, reconcile, remove_all
from .settings import Settings

#: Per-container state: the boto3 clients survive warm invocations.
_CONTAINER: dict[str, Any] = {}
#: How long a Create / Update reconcile may take before the answer goes to CloudFormation.
STACK_RECONCILE_SECONDS = 120.0


def _clients() -> dict[str, Any]:
    if not _CONTAINER:
        _CONTAINER.update(
            ec2=boto3.client("ec2"), cloudwatch=boto3.client("cloudwatch"), sqs=boto3.client("sqs")
        )
    return _CONTAINER


def _own(context: Any) -> tuple[str, str]:
    """The function's account and Region, from its ARN."""
    parts = str(getattr(context, "invoked_function_arn", "") or "").split(":")
    return (parts[4], parts[3]) if len(parts) >= 7 else ("", "")


def _time_left(context: Any) -> Callable[[], float]:
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if remaining is None:
        return lambda: 900.0
    return lambda: float(remaining()) / 1000.0


def put_response(url: str, body: dict[str, Any]) -> None:
    """Answer CloudFormation: ``PUT`` the JSON body to the request's pre-signed S3 URL."""
    data = json.dumps(body).encode()
    request = urllib.request.Request(  # noqa: S310 - https only (checked by events.parse)
        url, data=data, method="PUT", headers={"Content-Type": "", "Content-Length": str(len(data))}
    )
    with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
        answer.read()


def handler(
    event: Mapping[str, Any],
    context: Any,
    *,
    respond: Callable[[str, dict[str, Any]], None] = put_response,
) -> dict[str, Any]:
    settings = Settings.from_env(os.environ)
    clients = _clients()
    account, region = _own(context)
    command = parse(event, account=account, region=region)
    fleet = Fleet(clients["ec2"])
    alarms = Alarms(
        clients["cloudwatch"], settings.alarm_name_prefix, Pacer(settings.puts_per_second)
    )
    time_left = _time_left(context)
    if isinstance(command, Rejected):
        LOG.error(json.dumps({"outcome": "rejected", "reason": command.reason}))
        clients["sqs"].send_message(
            QueueUrl=settings.rejected_queue_url,
            MessageBody=json.dumps({"reason": command.reason, "event": event}, default=str)[
                :200_000
            ],
        )
        return {"outcome": "rejected", "reason": command.reason}
    if isinstance(command, StackRequest):
        return _stack(command, fleet, alarms, settings, time_left, respond)
    if isinstance(command, LookAt):
        outcome = look_at(command.instance_ids, fleet, alarms, settings)
    else:
        assert isinstance(command, Reconcile)
        outcome = reconcile(fleet, alarms, settings, time_left=time_left)
    result = {"outcome": "done", "why": command.why, **outcome.as_dict()}
    LOG.info(json.dumps(result))
    return result


def _stack(
    request: StackRequest,
    fleet: Fleet,
    alarms: Alarms,
    settings: Settings,
    time_left: Callable[[], float],
    respond: Callable[[str, dict[str, Any]], None],
) -> dict[str, Any]:
    """Answer a custom-resource request; every outcome is answered, or the stack would hang."""
    status, reason, outcome = "SUCCESS", "", Outcome()
    try:
        if request.request_type == "Delete":
            outcome = remove_all(alarms, settings, time_left=time_left)
            if outcome.remaining:
                status = "FAILED"
                reason = (
                    f"{outcome.remaining} managed alarms of {settings.alarm_name_prefix}* are left "
                    "(deadline or throttling); delete the stack again to finish "
                    "(docs/operations.md, 'Managed alarms left after a stack deletion')"
                )
        else:
            started = time_left()
            budget = min(STACK_RECONCILE_SECONDS, started)
            outcome = reconcile(
                fleet, alarms, settings, time_left=lambda: time_left() - (started - budget)
            )
    except ManagerFailedError as error:
        status, reason = "FAILED", str(error)
    body = {
        "Status": status,
        "Reason": (reason or f"alarm manager: {json.dumps(outcome.as_dict())}")[:1000],
        "PhysicalResourceId": f"{settings.alarm_name_prefix}managed-alarms",
        "StackId": request.stack_id,
        "RequestId": request.request_id,
        "LogicalResourceId": request.logical_id,
        "Data": outcome.as_dict(),
    }
    respond(request.response_url, body)
    result = {"outcome": status, "request": request.request_type, **outcome.as_dict()}
    LOG.info(json.dumps(result))
    return result
