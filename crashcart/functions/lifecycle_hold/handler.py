"""Lambda entry of the lifecycle-hold function: settings, clients, then the service.

Calls it makes: ``autoscaling:CompleteLifecycleAction`` and
``autoscaling:RecordLifecycleActionHeartbeat`` (the configured groups only),
``ec2:DescribeInstances`` / ``DescribeInstanceStatus`` / ``DescribeInstanceTypes``,
``ec2:RebootInstances`` (opted-in instances), ``ssm:GetParameter`` (the kill switch), the
incident table, ``sns:Publish``, ``sqs:SendMessage`` (the rejected queue) and, through the
remediation's service for an impaired terminating instance, exactly the remediation
function's calls (``ec2:SendDiagnosticInterrupt``, ``ec2:GetConsoleOutput``, ``s3:PutObject``
of evidence).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime
from typing import Any

import boto3

from crashcart.functions.remediation import handler as remediation_handler
from crashcart.functions.remediation.adapter import (
    Ec2Facts,
    KillSwitch,
    Notifier,
    RejectedQueue,
    TypeCache,
)
from crashcart.functions.remediation.claims import IncidentStore
from crashcart.functions.remediation.telemetry import Log
from crashcart.runtime import metrics
from crashcart.runtime.entry import utc_now, warm_clients

from .adapter import HoldStore, Lifecycle, Machines
from .service import Clients, Hold
from .settings import Settings

#: Per-container state: clients and caches survive warm invocations.
_CONTAINER: dict[str, Any] = {}


def _clients() -> dict[str, Any]:
    return warm_clients(
        _CONTAINER,
        lambda: {
            # the remediation's clients (its interrupt client has botocore retries off)
            **remediation_handler._clients(),
            "autoscaling": boto3.client("autoscaling", config=remediation_handler.DEFAULT_CONFIG),
            "memory_cache": {},
        },
    )


def build(
    settings: Settings,
    context: Any,
    *,
    clients: dict[str, Any],
    clock: Callable[[], datetime] = utc_now,
) -> Hold:
    """The service over the given clients (what tests call)."""
    request_id = str(getattr(context, "aws_request_id", ""))
    log = Log(
        clock=clock,
        function_name=str(getattr(context, "function_name", "")),
        metrics=metrics.HOLD_OUTCOMES,
        request_id=request_id,
    )
    # The remediation's own log: its outcomes count under its metric names (InterruptsSent,
    # ...), with this function's name as the dimension.
    remediation = remediation_handler.build(
        settings.remediation, context, clients=clients, clock=clock
    )
    r = settings.remediation
    ec2 = clients["ec2"]
    return Hold(
        settings=settings,
        clients=Clients(
            lifecycle=Lifecycle(clients["autoscaling"]),
            machines=Machines(ec2, clients.setdefault("memory_cache", {})),
            ec2=Ec2Facts(ec2, clients.get("type_cache") or TypeCache()),
            kill_switch=KillSwitch(clients["ssm"], r.kill_switch_parameter),
            notifier=Notifier(clients["sns"], r.topic_arn),
            rejected=RejectedQueue(clients["sqs"], r.rejected_queue_url),
            incidents=IncidentStore(clients["dynamodb"], r.table_name),
            holds=HoldStore(clients["dynamodb"], r.table_name),
        ),
        remediation=remediation,
        clock=clock,
        log=log,
        request_id=request_id,
    )


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = Settings.from_env(os.environ)
    return build(settings, context, clients=_clients()).handle(event)
