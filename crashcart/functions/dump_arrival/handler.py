"""Lambda entry point of the dump-arrival function (``handler.handler``): thin on purpose.

It reads the settings from the environment (per call), builds the adapter over boto3 clients
(created once per container and reused) and hands the event to :func:`service.process`. A bad
event is logged with its reason and raised: nothing was changed, and Lambda's retries end in
the function's dead-letter queue, where the event is kept.

AWS calls made (the role needs exactly these): ``s3:GetObject`` (``dumps/*``),
``dynamodb:Query`` / ``PutItem`` / ``UpdateItem``, ``sns:Publish``, plus KMS on the keys.
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
    return warm_clients(_CONTAINER, lambda: {s: boto3.client(s) for s in ("s3", "dynamodb", "sns")})


def build(settings: Settings, *, clients: dict[str, Any]) -> Adapter:
    """The adapter over the given clients (what tests and the drill call)."""
    return Adapter(settings, clients["s3"], clients["dynamodb"], clients["sns"])


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
        )
