"""Lambda entry point of the canary drill (``handler.handler``): thin on purpose.

The state machine invokes it with ``{"action": ..., ...}`` (:class:`Action`); EventBridge
invokes it with an execution status change or a schedule (the janitor). A payload it does not
understand is logged with the reason and raised, so the state machine's Catch (or, for
EventBridge, the on-failure queue) keeps it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import boto3

from .adapter import Adapter
from .service import LOG, STEPS, BadRequestError, janitor
from .settings import Settings

_CONTAINER: dict[str, Any] = {}


def _clients() -> dict[str, Any]:
    if not _CONTAINER:
        _CONTAINER.update({n: boto3.client(n) for n in ("ec2", "ssm", "dynamodb", "s3", "sns")})
    return _CONTAINER


def handler(event: Any, context: Any) -> dict[str, Any]:
    settings = Settings.from_env(os.environ)
    adapter = Adapter(settings, **_clients())
    now = datetime.now(UTC)
    if not isinstance(event, Mapping):
        LOG.error(json.dumps({"outcome": "rejected", "reason": "the event is not an object"}))
        raise BadRequestError(f"event {event!r:.200}: expected a JSON object")
    action = event.get("action")
    if action is None and event.get("source") in ("aws.states", "aws.events"):
        return janitor(adapter, event, now)
    step = STEPS.get(str(action))
    if step is None:
        reason = f"action={action!r}: expected one of {', '.join(sorted(STEPS))}"
        LOG.error(json.dumps({"outcome": "rejected", "reason": reason}))
        raise BadRequestError(reason)
    return step(adapter, event, now)
