"""The dump-arrival function's configuration: environment variables -> one typed object.

``CRASHCART_TABLE_NAME`` and ``CRASHCART_TOPIC_ARN`` (required), ``CRASHCART_ATTACH_WINDOW_SECONDS``
(default 6 hours); the names are :mod:`crashcart.runtime.environment`'s. A member's receiver
of the central account's "dump received" events (``CentralDumpReceiver``) also sets
``CRASHCART_CENTRAL_ACCOUNT`` and ``CRASHCART_MEMBER_ACCOUNT``; ``AWS_REGION`` is Lambda's.
Read per call, never at import time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

from crashcart.runtime import environment as variables
from crashcart.runtime.environment_reader import require


def attach_window(raw: str) -> timedelta:
    """``CRASHCART_ATTACH_WINDOW_SECONDS``: a positive whole number of seconds (the incident
    view reads it the same way)."""
    try:
        seconds = int(raw)
    except ValueError:
        raise RuntimeError(f"{variables.ATTACH_WINDOW_SECONDS}={raw!r} is not an integer") from None
    if seconds <= 0:
        raise RuntimeError(f"{variables.ATTACH_WINDOW_SECONDS}={seconds} must be positive")
    return timedelta(seconds=seconds)


@dataclass(frozen=True)
class Settings:
    table_name: str
    topic_arn: str
    attach_window: timedelta
    #: The central account whose "dump received" events this function accepts, and the
    #: account and Region they must be for (None: central events are refused).
    central_account: str | None = None
    member_account: str | None = None
    region: str | None = None

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        require(env, (variables.TABLE_NAME, variables.TOPIC_ARN), RuntimeError)
        return cls(
            env[variables.TABLE_NAME],
            env[variables.TOPIC_ARN],
            attach_window(env.get(variables.ATTACH_WINDOW_SECONDS, "21600")),
            env.get(variables.CENTRAL_ACCOUNT) or None,
            env.get(variables.MEMBER_ACCOUNT) or None,
            env.get("AWS_REGION") or None,
        )
