"""The shared shape of a function's Lambda entry (``handler.py``): clock, warm clients, context.

Every entry reads its settings per call, keeps its boto3 clients in a per-container dict
(``_CONTAINER``, so a warm invocation reuses them and a test can swap them) and passes the
clock in, so a test can fix the time. These are the pieces they all write the same way.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any


def utc_now() -> datetime:
    """The current time, timezone-aware in UTC (the default clock of every entry)."""
    return datetime.now(UTC)


def warm_clients(container: dict[str, Any], make: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``container``, filled by ``make()`` on the first call of a Lambda container.

    The entry passes its module-level ``_CONTAINER``: the clients (and caches) survive warm
    invocations, and a test that puts clients in it first is never given real ones.
    """
    if not container:
        container.update(make())
    return container


def request_id(context: Any) -> str:
    """The invocation's request id, or ``"unknown"`` outside Lambda."""
    return str(getattr(context, "aws_request_id", "unknown"))


@contextmanager
def rejecting(log: logging.Logger, bad_event: type[Exception]) -> Iterator[None]:
    """Log a ``bad_event`` raised in the block with its reason, and raise it again.

    Nothing was changed; raising keeps the event (Lambda retries, then the function's
    dead-letter queue).
    """
    try:
        yield
    except bad_event as error:
        log.error(json.dumps({"outcome": "rejected", "reason": str(error)}))
        raise
