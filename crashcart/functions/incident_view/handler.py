"""Lambda entry point of the central incident view (``handler.handler``): thin on purpose.

It reads the settings from the environment (per call), builds the adapter over boto3 clients
(created once per container and reused) and hands the event to :func:`service.process`. A bad
event (an update whose ``detail.account`` is not the sending account, a key without the
account segment, ...) is logged with its reason and raised: nothing was written, and Lambda's
retries end in the function's dead-letter queue, where the event is kept.

AWS calls made (the role needs exactly these): ``dynamodb:Query`` / ``PutItem`` /
``UpdateItem`` on the central incident table, ``sns:Publish`` on its topic, plus KMS on the
table's key; ``events:PutEvents`` on the member accounts' default buses of this Region (the
"dump received" event; a failure is logged, counted and raised, so the event is retried and
then kept in the dead-letter queue, while the central record stays).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime
from typing import Any

import boto3

from crashcart.runtime.entry import rejecting, request_id, utc_now, warm_clients

from .adapter import Adapter
from .events import BadEventError
from .service import LOG, process
from .settings import Settings

#: Per-container state: the boto3 clients survive warm invocations.
_CONTAINER: dict[str, Any] = {}


def _clients() -> dict[str, Any]:
    return warm_clients(
        _CONTAINER, lambda: {s: boto3.client(s) for s in ("dynamodb", "sns", "events")}
    )


def build(settings: Settings, *, clients: dict[str, Any]) -> Adapter:
    """The adapter over the given clients (what tests call)."""
    return Adapter(settings, clients["dynamodb"], clients["sns"], clients["events"])


def handler(
    event: dict[str, Any], context: Any, *, clock: Callable[[], datetime] = utc_now
) -> dict[str, Any]:
    settings = Settings.from_env(dict(os.environ))
    with rejecting(LOG, BadEventError):
        return process(
            event,
            build(settings, clients=_clients()),
            now=clock(),
            request_id=request_id(context),
            function_name=getattr(context, "function_name", "") or "unknown",
        )
