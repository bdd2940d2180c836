"""The incident view's configuration: environment variables -> one typed object.

``CRASHCART_TABLE_NAME``, ``CRASHCART_TOPIC_ARN``, ``CRASHCART_DUMP_BUCKET`` (required),
``CRASHCART_ATTACH_WINDOW_SECONDS`` (default 6 hours), ``CRASHCART_PARTITION`` (default
``aws``); the names and defaults are :data:`crashcart.runtime.environment.INCIDENT_VIEW`'s.
``AWS_REGION`` (set by Lambda) is the Region whose member default buses the view writes to.
Read per call, never at import time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

from crashcart.functions.dump_arrival.settings import attach_window
from crashcart.runtime import environment as variables
from crashcart.runtime.environment_reader import require


@dataclass(frozen=True)
class Settings:
    table_name: str
    topic_arn: str
    dump_bucket: str
    attach_window: timedelta
    #: The Region and partition of the member buses the "dump received" events go to.
    region: str
    partition: str = "aws"

    def member_bus_arn(self, account: str) -> str:
        """The member's default bus in this Region (one hop: aws-assumption:
        org-eventbridge-default-bus-cross-account)."""
        return f"arn:{self.partition}:events:{self.region}:{account}:event-bus/default"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        required = [name for name, default in variables.INCIDENT_VIEW.items() if default is None]
        require(env, required, RuntimeError)
        default = variables.INCIDENT_VIEW[variables.ATTACH_WINDOW_SECONDS]
        window = attach_window(env.get(variables.ATTACH_WINDOW_SECONDS) or str(default))
        if not env.get("AWS_REGION"):
            raise RuntimeError("missing environment variable: AWS_REGION (set by Lambda)")
        return cls(
            env[variables.TABLE_NAME],
            env[variables.TOPIC_ARN],
            env[variables.DUMP_BUCKET],
            window,
            env["AWS_REGION"],
            env.get(variables.PARTITION) or str(variables.INCIDENT_VIEW[variables.PARTITION]),
        )
