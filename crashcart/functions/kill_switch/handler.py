"""Lambda entry point of the kill-switch reach (``handler.handler``): thin on purpose.

Woken by the kill-switch parameter's "Parameter Store Change" event and by a schedule; both
do the same reconcile (``service.py``). AWS calls made: ``ssm:GetParameter`` (the switch),
``cloudwatch:DescribeAlarms``, ``cloudwatch:ListTagsForResource``,
``cloudwatch:DisableAlarmActions`` / ``EnableAlarmActions``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import boto3

from .adapter import Alarms, switch_value
from .service import reconcile
from .settings import Settings

#: Per-container state: the boto3 clients survive warm invocations.
_CONTAINER: dict[str, Any] = {}


def _clients() -> dict[str, Any]:
    if not _CONTAINER:
        _CONTAINER.update(ssm=boto3.client("ssm"), cloudwatch=boto3.client("cloudwatch"))
    return _CONTAINER


def run(
    event: Mapping[str, Any], context: Any, *, clients: Mapping[str, Any], now: datetime
) -> dict[str, Any]:
    """The handler over given clients (what the tests call)."""
    settings = Settings.from_env(os.environ)
    switch = switch_value(clients["ssm"], settings.kill_switch_parameter)
    result = reconcile(
        Alarms(clients["cloudwatch"]),
        switch,
        settings,
        now=now,
        function_name=str(getattr(context, "function_name", "") or ""),
    )
    return {"woken_by": str(event.get("detail-type", "direct")), **result.as_dict()}


def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    return run(event, context, clients=_clients(), now=datetime.now(UTC))
