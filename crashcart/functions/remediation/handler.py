"""Lambda entry point of the remediation function (``handler.handler``): thin on purpose.

It reads the settings from the environment (per call), builds the service over boto3 clients
(created once per container and reused), and hands the event over. See ``service.py`` for
what raises and what returns, ``decision.py`` for the guards, ``settings.py`` for the
configuration contract.

The schedule's ``{"crashcart-action": "missed-alarm-sweep"}`` starts a pass of the
missed-alarm sweep (``sweep.py``) instead; it makes the same calls (the listings are
``DescribeInstanceStatus`` and ``DescribeInstances`` with filters).

AWS calls made (the role needs exactly these): ``ec2:DescribeInstances``,
``ec2:DescribeInstanceStatus``, ``ec2:DescribeInstanceTypes``, ``ec2:GetConsoleOutput``,
``ec2:SendDiagnosticInterrupt``, ``ssm:GetParameter`` (kill switch), ``dynamodb:GetItem``
(the duplicate check, and through TransactGetItems), ``dynamodb:PutItem`` (through
TransactWriteItems: puts only), ``dynamodb:UpdateItem``, ``dynamodb:Query``, ``sns:Publish``,
``s3:PutObject`` (``evidence/*``), ``sqs:SendMessage`` (rejected queue), plus KMS rights on
the keys of the table, topic, bucket and queue. Metrics are embedded-metric-format log lines (no
``cloudwatch:PutMetricData``).

With the organisation settings (``UnresponsiveInstanceRemediation(organisation=...)``), also
``dynamodb:GetItem`` / ``dynamodb:UpdateItem`` on the central breaker table (by its ARN) and
its key, and ``events:PutEvents`` on the central bus (``org_breaker.py``,
``central_events.py``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import boto3
from botocore.config import Config

from crashcart.runtime.entry import utc_now, warm_clients

from .adapter import Ec2Facts, Evidence, Interrupter, KillSwitch, Notifier, RejectedQueue, TypeCache
from .central_events import CentralBus, ReportingIncidentStore
from .claims import IncidentStore
from .org_breaker import OrganisationBreaker, OrganisationBreakerSettings, OrganisationGate
from .service import Remediation, Where
from .settings import Settings
from .telemetry import Log

#: Describe / table / notification calls: botocore's standard retries (idempotent or harmless).
DEFAULT_CONFIG = Config(
    retries={"mode": "standard", "total_max_attempts": 3}, connect_timeout=3, read_timeout=10
)
#: SendDiagnosticInterrupt has no client token: botocore must never resend it by itself.
INTERRUPT_CONFIG = Config(retries={"total_max_attempts": 1}, connect_timeout=3, read_timeout=15)

#: Per-container state: boto3 clients and the instance-type cache survive warm invocations.
_CONTAINER: dict[str, Any] = {}


def _clients() -> dict[str, Any]:
    return warm_clients(_CONTAINER, _make_clients)


def _make_clients() -> dict[str, Any]:
    made: dict[str, Any] = {
        service: boto3.client(service, config=DEFAULT_CONFIG)
        for service in ("ec2", "ssm", "dynamodb", "sns", "s3", "sqs", "events")
    }
    return {
        **made,
        "ec2_interrupt": boto3.client("ec2", config=INTERRUPT_CONFIG),
        "type_cache": TypeCache(),
    }


def where_from(context: Any) -> Where:
    """The function's account and region, from its ARN (``arn:aws:lambda:<r>:<a>:function:...``)."""
    arn = str(getattr(context, "invoked_function_arn", ""))
    parts = arn.split(":")
    if len(parts) >= 5 and parts[3] and parts[4]:
        return Where(account=parts[4], region=parts[3])
    return Where(account="", region=os.environ.get("AWS_REGION", ""))


def build(
    settings: Settings,
    context: Any,
    *,
    clients: dict[str, Any],
    clock: Callable[[], datetime] = utc_now,
    sleep: Callable[[float], None] = time.sleep,
    log: Log | None = None,
) -> Remediation:
    """The service over the given clients (what tests, the drill and benchmarks call)."""
    request_id = str(getattr(context, "aws_request_id", ""))
    where = where_from(context)
    log = log or Log(
        clock=clock,
        function_name=str(getattr(context, "function_name", "")),
        request_id=request_id,
    )
    notifier = Notifier(clients["sns"], settings.topic_arn)
    store = IncidentStore(clients["dynamodb"], settings.table_name)
    if settings.org_event_bus_arn:
        bus = CentralBus(
            clients["events"],
            settings.org_event_bus_arn,
            account=where.account,
            region=where.region,
            log=log,
        )
        store = ReportingIncidentStore(clients["dynamodb"], settings.table_name, bus)
    return Remediation(
        settings=settings,
        where=where,
        ec2=Ec2Facts(clients["ec2"], clients.get("type_cache") or TypeCache()),
        interrupter=Interrupter(clients.get("ec2_interrupt", clients["ec2"]), sleep),
        evidence=Evidence(clients["ec2"], clients["s3"], settings.evidence_bucket),
        kill_switch=KillSwitch(clients["ssm"], settings.kill_switch_parameter),
        notifier=notifier,
        rejected=RejectedQueue(clients["sqs"], settings.rejected_queue_url),
        store=store,
        clock=clock,
        sleep=sleep,
        log=log,
        request_id=request_id,
        remaining_ms=_remaining(context),
        organisation=_organisation(settings, clients, where, sleep, notifier, log),
    )


def _organisation(
    settings: Settings,
    clients: dict[str, Any],
    where: Where,
    sleep: Callable[[float], None],
    notifier: Notifier,
    log: Log,
) -> OrganisationGate | None:
    """The organisation breaker's gate, when a central table is configured. Its client is
    the function's DynamoDB client (the table ARN names the central account's table);
    ``org_dynamodb`` lets a test route it elsewhere."""
    if not settings.org_breaker_table_arn:
        return None
    breaker = OrganisationBreaker(
        clients.get("org_dynamodb", clients["dynamodb"]),
        OrganisationBreakerSettings(
            table_arn=settings.org_breaker_table_arn,
            threshold=settings.org_breaker_threshold,
            window_seconds=settings.org_breaker_window_seconds,
            quiet_seconds=settings.org_breaker_quiet_seconds,
        ),
        account=where.account,
        sleep=sleep,
    )
    return OrganisationGate(breaker, notifier=notifier, log=log)


def _remaining(context: Any) -> Callable[[], int]:
    """The invocation's remaining milliseconds (the missed-alarm sweep stops feeding early)."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if callable(remaining):
        return lambda: int(remaining())
    return lambda: 60_000


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = Settings.from_env(os.environ)
    return build(settings, context, clients=_clients()).handle(event)
