"""The kill-switch reach function's AWS calls, over injected clients (SSM, CloudWatch).

A fact that cannot be read raises :class:`ReachUnavailableError` (the invocation fails, is
retried, then kept in the on-failure queue, whose alarm notifies): alarm actions are only
ever changed on a switch value that was read.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from crashcart.runtime.paging import next_page

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_ssm import SSMClient

#: DescribeAlarms returns at most 100 alarms a page; Enable/DisableAlarmActions take at most
#: 100 names a call. aws-assumption: cloudwatch-alarm-actions-batch
BATCH = 100


class ReachUnavailableError(RuntimeError):
    """The switch or the alarms could not be read or changed: fail loudly, change nothing more."""


@dataclass(frozen=True, kw_only=True)
class AlarmFacts:
    name: str
    arn: str
    actions_enabled: bool
    actions: tuple[str, ...]  # alarm, OK and insufficient-data actions together


def switch_value(client: SSMClient, name: str) -> str:
    """The kill switch, lower-cased and stripped (the remediation function's reading)."""
    try:
        response = client.get_parameter(Name=name)
    except (ClientError, BotoCoreError) as error:
        raise ReachUnavailableError(f"GetParameter {name}: {error}") from error
    return str(response.get("Parameter", {}).get("Value", "")).strip().lower()


class Alarms:
    """The account's alarms in this region (metric and composite), and their actions."""

    def __init__(self, client: CloudWatchClient, *, max_pages: int = 200) -> None:
        self._client = client
        self.max_pages = max_pages

    def listed(self) -> Iterator[AlarmFacts]:
        """Every alarm, page by page (at most ``max_pages`` pages, else raise)."""
        arguments: dict[str, Any] = {
            "AlarmTypes": ["MetricAlarm", "CompositeAlarm"],
            "MaxRecords": BATCH,
        }
        for _page in range(self.max_pages):
            try:
                response = self._client.describe_alarms(**arguments)
            except (ClientError, BotoCoreError) as error:
                raise ReachUnavailableError(f"DescribeAlarms: {error}") from error
            raw_alarms: list[Any] = [
                *response.get("MetricAlarms", []),
                *response.get("CompositeAlarms", []),
            ]
            for raw in raw_alarms:
                yield AlarmFacts(
                    name=str(raw.get("AlarmName", "")),
                    arn=str(raw.get("AlarmArn", "")),
                    actions_enabled=bool(raw.get("ActionsEnabled", True)),
                    actions=tuple(
                        str(a)
                        for key in ("AlarmActions", "OKActions", "InsufficientDataActions")
                        for a in raw.get(key, [])
                    ),
                )
            if not next_page(response, arguments):
                return
        raise ReachUnavailableError(
            f"more than {self.max_pages} pages of alarms: the reach stops rather than act on "
            "part of them"
        )

    def tags(self, arn: str) -> dict[str, str]:
        try:
            response = self._client.list_tags_for_resource(ResourceARN=arn)
        except (ClientError, BotoCoreError) as error:
            raise ReachUnavailableError(f"ListTagsForResource {arn}: {error}") from error
        return {str(t["Key"]): str(t.get("Value", "")) for t in response.get("Tags", [])}

    def set_actions(self, names: Sequence[str], *, enabled: bool) -> None:
        """Enable or disable the actions of ``names`` (100 a call)."""
        call = self._client.enable_alarm_actions if enabled else self._client.disable_alarm_actions
        for start in range(0, len(names), BATCH):
            try:
                call(AlarmNames=list(names[start : start + BATCH]))
            except (ClientError, BotoCoreError) as error:
                verb = "EnableAlarmActions" if enabled else "DisableAlarmActions"
                raise ReachUnavailableError(f"{verb}: {error}") from error
