# ruff: noqa: S608 - Metrics Insights query text, checked against its grammar; no database
"""Watching past 10,000 instances: per-instance alarms managed at run time.

One Metrics Insights alarm (``FleetWatch``, the default fleet mode) scans at most 10,000
metrics and returns at most 500 series; beyond either it evaluates partial data and some
instances go unwatched (aws-assumption: metrics-insights-fleet-query). :class:`ManagedAlarms`
is the mode that works without any account-wide setting: a small function (runtime in
``crashcart/functions/alarm_manager/``) keeps one ordinary status-check alarm per opted-in
instance, created when an instance launches or gains the opt-in tag, deleted when it
terminates or loses the tag, repaired by a scheduled reconcile pass, paced under the
``PutMetricAlarm`` rate and removed with the stack. The template stays the same size for
1,000 or 100,000 instances. The other route (one Metrics Insights alarm per shard of a shard
tag, which needs resource tags for telemetry switched on for the account) is a documented
design: docs/fleet-scale.md.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Final

import aws_cdk as cdk

from crashcart.constructs.remediation_settings import _seconds, _unresolved
from crashcart.errors import ConfigurationError

#: The documented default ``PutMetricAlarm`` rate quota per account and Region (calls per
#: second; adjustable through Service Quotas). aws-assumption: cloudwatch-alarm-api-rates
DEFAULT_PUT_METRIC_ALARM_QUOTA: Final = 3


@dataclass(frozen=True, kw_only=True)
class ManagedAlarms:
    """Per-instance status-check alarms, kept at run time by the alarm manager function.

    Pass as ``UnresponsiveInstanceRemediation(fleet=ManagedAlarms())``. Every opted-in
    instance of the account and Region gets an alarm named ``<alarm_name_prefix><instance-id>``
    (tags ``crashcart:deployment`` and ``crashcart:managed-by``), the same alarm the construct
    declares for a listed instance, so the remediation function acts on it in the same way.

    :param reconcile_every: how often the reconcile pass compares every opted-in instance with
        every managed alarm and repairs both (missed events, edited or deleted alarms).
        Default: 15 minutes. From 5 minutes to 1 day.
    :param puts_per_second: the most ``PutMetricAlarm`` / ``DeleteAlarms`` calls a second one
        copy of the manager makes. Default: 2 (two thirds of the default quota, leaving room
        for deployments and other tools in the account). At most ``put_quota``.
    :param put_quota: the account's ``PutMetricAlarm`` rate quota in this Region (calls per
        second). Default: 3, AWS's default; raise it only after raising the quota.
    """

    reconcile_every: cdk.Duration = field(default_factory=lambda: cdk.Duration.minutes(15))
    puts_per_second: int = 2
    put_quota: int = DEFAULT_PUT_METRIC_ALARM_QUOTA

    def __post_init__(self) -> None:
        seconds = _seconds("ManagedAlarms reconcile_every", self.reconcile_every, minimum=300)
        if seconds is not None and seconds > 86_400:
            raise ConfigurationError(
                f"ManagedAlarms reconcile_every={seconds}s: at most 1 day (86400 s); a longer "
                "gap leaves a missed launch unwatched for longer than that"
            )
        for name in ("puts_per_second", "put_quota"):
            value = getattr(self, name)
            if _unresolved(value):
                continue
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 50:
                raise ConfigurationError(
                    f"ManagedAlarms {name}={value!r}: must be a whole number of calls a second "
                    "from 1 to 50"
                )
        rate, quota = self.puts_per_second, self.put_quota
        if not _unresolved(rate) and not _unresolved(quota) and rate > quota:
            raise ConfigurationError(
                f"ManagedAlarms puts_per_second={self.puts_per_second} is above "
                f"put_quota={self.put_quota}: CloudWatch would throttle every pass. The "
                f"default PutMetricAlarm quota is {DEFAULT_PUT_METRIC_ALARM_QUOTA} calls a "
                "second per account and Region; raise it in Service Quotas first, then pass "
                "the new put_quota"
            )

    def initial_fill_hours(self, instances: int) -> float:
        """How long the first passes take to create ``instances`` alarms at this pace."""
        return instances / self.puts_per_second / 3600


# --------------------------------------------------------------------------------------
# The shard route (a documented design, docs/fleet-scale.md): the pure parts, tested
# --------------------------------------------------------------------------------------

#: The tag a shard setter would put on each opted-in instance (value: the shard, 2 digits).
SHARD_TAG_KEY: Final = "crashcart:shard"
#: Metrics Insights returns at most 500 series and scans at most 10,000 metrics per query:
#: a shard must stay under the smaller of the two with room to grow (aws-assumption:
#: metrics-insights-fleet-query).
MAX_INSTANCES_PER_SHARD: Final = 500
_LABEL: Final = r'(?:[A-Za-z_][A-Za-z0-9_]*|"[^"\\]{1,256}")'
_VALUE: Final = r"'[^'\\]{1,256}'"
#: The documented grammar, restricted to what crashcart generates: MAX of the status metric
#: from SCHEMA("AWS/EC2", InstanceId), WHERE of ``label = 'value'`` / ``!=`` joined by AND,
#: GROUP BY InstanceId, ORDER BY MAX() DESC, LIMIT (aws-assumption: metrics-insights-where-grammar).
_QUERY: Final = re.compile(
    r"SELECT MAX\(StatusCheckFailed_Instance\) FROM SCHEMA\(\"AWS/EC2\", InstanceId\)"
    rf"(?: WHERE {_LABEL} (?:=|!=) {_VALUE}(?: AND {_LABEL} (?:=|!=) {_VALUE})*)?"
    r" GROUP BY InstanceId ORDER BY MAX\(\) DESC LIMIT (?:[1-9][0-9]{0,2})"
)


def shard_of(instance_id: str, shards: int) -> str:
    """The shard an instance belongs to: a stable hash of its id, as two digits."""
    digest = hashlib.sha256(instance_id.encode()).digest()
    return f"{int.from_bytes(digest[:8], 'big') % shards:02d}"


def shard_query(
    *, opt_in_key: str, opt_in_value: str, shard: str, tag_label: str = "tag.{key}"
) -> str:
    """The Metrics Insights query of one shard alarm (the documented shard design).

    Filters on the opt-in tag and the shard tag, which needs resource tags for telemetry on
    the account (aws-assumption: resource-tags-for-telemetry). ``tag_label`` is how a tag key
    is written as a label: unverified (docs/aws-assumptions.md), hence a parameter.
    """

    def label(key: str) -> str:
        return '"' + tag_label.format(key=key) + '"'

    # Values are checked against the grammar below (no quote can slip in): not SQL.
    query = (
        'SELECT MAX(StatusCheckFailed_Instance) FROM SCHEMA("AWS/EC2", InstanceId) '
        f"WHERE {label(opt_in_key)} = '{opt_in_value}' AND {label(SHARD_TAG_KEY)} = '{shard}' "
        f"GROUP BY InstanceId ORDER BY MAX() DESC LIMIT {MAX_INSTANCES_PER_SHARD}"
    )
    check_query(query)
    return query


def check_query(query: str) -> None:
    """Raise ConfigurationError unless ``query`` is in the documented grammar (as restricted)."""
    if not _QUERY.fullmatch(query):
        raise ConfigurationError(
            f"Metrics Insights query {query[:200]!r} is not in the documented grammar crashcart "
            "generates (SELECT MAX(...) FROM SCHEMA(...) [WHERE label = 'value' [AND ...]] "
            "GROUP BY InstanceId ORDER BY MAX() DESC LIMIT n; operators =, != and AND only)"
        )


def shards_needed(instances: int, *, headroom: float = 0.5) -> int:
    """How many shards keep every shard under its limit with ``headroom`` to grow."""
    if instances < 0 or not 0 <= headroom < 1:
        raise ConfigurationError(
            f"instances={instances}, headroom={headroom}: need instances >= 0, 0 <= headroom < 1"
        )
    per_shard = int(MAX_INSTANCES_PER_SHARD * (1 - headroom))
    return max(1, -(-instances // per_shard))


__all__ = [
    "DEFAULT_PUT_METRIC_ALARM_QUOTA",
    "MAX_INSTANCES_PER_SHARD",
    "SHARD_TAG_KEY",
    "ManagedAlarms",
    "check_query",
    "shard_of",
    "shard_query",
    "shards_needed",
]
