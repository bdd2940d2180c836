"""The alarm manager's configuration: environment variables -> one typed object (read per call).

Names and defaults: :data:`crashcart.runtime.environment.ALARM_MANAGER`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from crashcart.runtime import environment as variables
from crashcart.runtime.environment_reader import require


class SettingsError(ValueError):
    """A configuration variable is missing or invalid."""


def _whole(environ: Mapping[str, str], name: str, low: int, high: int) -> int:
    default = variables.ALARM_MANAGER[name]
    raw = (environ.get(name) or default or "").strip()
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise SettingsError(f"{name}={raw!r}: expected a whole number from {low} to {high}")
    return int(raw)


@dataclass(frozen=True, kw_only=True)
class Settings:
    """What the manager needs: which alarms are its own and how they look.

    ``alarm_name_prefix``: the deployment's prefix (every managed alarm is named
    ``<prefix><instance-id>``); ``deployment``: the value of the ``crashcart:deployment`` tag
    on every managed alarm; ``puts_per_second``: the pace of ``PutMetricAlarm`` /
    ``DeleteAlarms`` calls (under the account's rate quota, shared with everyone else).
    """

    alarm_name_prefix: str
    deployment: str
    rejected_queue_url: str
    opt_in_tag_key: str
    opt_in_tag_value: str
    evaluation_periods: int
    datapoints_to_alarm: int
    puts_per_second: int

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        required = (
            variables.ALARM_NAME_PREFIX,
            variables.MANAGED_DEPLOYMENT,
            variables.REJECTED_QUEUE_URL,
        )
        require(environ, required, SettingsError)
        periods = _whole(environ, variables.MANAGED_EVALUATION_PERIODS, 1, 180)
        datapoints = _whole(environ, variables.MANAGED_DATAPOINTS_TO_ALARM, 1, periods)
        return cls(
            alarm_name_prefix=environ[variables.ALARM_NAME_PREFIX],
            deployment=environ[variables.MANAGED_DEPLOYMENT],
            rejected_queue_url=environ[variables.REJECTED_QUEUE_URL],
            opt_in_tag_key=environ.get(variables.OPT_IN_TAG_KEY)
            or str(variables.ALARM_MANAGER[variables.OPT_IN_TAG_KEY]),
            opt_in_tag_value=environ.get(variables.OPT_IN_TAG_VALUE)
            or str(variables.ALARM_MANAGER[variables.OPT_IN_TAG_VALUE]),
            evaluation_periods=periods,
            datapoints_to_alarm=datapoints,
            puts_per_second=_whole(environ, variables.MANAGED_PUTS_PER_SECOND, 1, 50),
        )
