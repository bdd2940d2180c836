"""The remediation's value types: the alarm window, the fleet watch, the guards, the breakers.

Frozen, keyword-only dataclasses validated on construction (a bad value fails with what was
given, what is allowed and why); the construct (:mod:`.unresponsive_instance_remediation`)
turns them into the function's environment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Final

import aws_cdk as cdk

from crashcart.errors import ConfigurationError
from crashcart.runtime.attestation import MIN_MAX_AGE_SECONDS

#: Metrics Insights returns at most this many time series (contributors) per query.
# aws-assumption: metrics-insights-fleet-query
MAX_CONTRIBUTORS: Final = 500
#: The fleet query; ``{limit}`` is FleetWatch.max_contributors.
FLEET_QUERY: Final = (
    'SELECT MAX(StatusCheckFailed_Instance) FROM SCHEMA("AWS/EC2", InstanceId) '
    "GROUP BY InstanceId ORDER BY MAX() DESC LIMIT {limit}"
)
_ONE_DAY = 86_400


def _unresolved(value: object) -> bool:
    return cdk.Token.is_unresolved(value)


def _seconds(name: str, duration: cdk.Duration, *, minimum: int) -> int | None:
    """Whole seconds of ``duration``; None if it is a token; ConfigurationError if invalid."""
    if not isinstance(duration, cdk.Duration):
        raise ConfigurationError(
            f"{name}={duration!r}: must be a cdk.Duration, e.g. cdk.Duration.minutes(30)"
        )
    try:
        seconds = duration.to_seconds()
    except Exception as error:  # jsii raises for non-integral or unit-converted tokens
        if "token" in str(error).lower() or "unresolved" in str(error).lower():
            return None
        raise ConfigurationError(
            f"{name}={duration.to_human_string()}: must be a whole number of seconds"
        ) from error
    if _unresolved(seconds):
        return None
    if seconds != int(seconds) or seconds < minimum:
        raise ConfigurationError(
            f"{name}={duration.to_human_string()}: must be a whole number of seconds, at "
            f"least {minimum}"
        )
    return int(seconds)


# --------------------------------------------------------------------------------------
# Settings (frozen, keyword-only, validated on construction)
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class AlarmWindow:
    """How long ``StatusCheckFailed_Instance`` must fail before the function is asked.

    Every alarm uses the ``Maximum`` of one-minute periods (status checks run once a minute)
    and treats missing data as not breaching (a stopped instance reports nothing; that is
    not a hang).

    :param evaluation_periods: the number of one-minute periods looked at. Default: 3, as
        AWS recommends for alarms that reboot an instance (an interrupt ends in a reboot).
    :param datapoints_to_alarm: how many of them must have failed. Default: 3 (all of them:
        a hung kernel fails every check; one that passes some is still answering).
    """

    evaluation_periods: int = 3
    datapoints_to_alarm: int = 3

    def __post_init__(self) -> None:
        ep, dp = self.evaluation_periods, self.datapoints_to_alarm
        for name, value in (("evaluation_periods", ep), ("datapoints_to_alarm", dp)):
            if _unresolved(value):
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigurationError(
                    f"AlarmWindow {name}={value!r}: must be a whole number of at least 1 "
                    "(one-minute periods)"
                )
        if _unresolved(ep) or _unresolved(dp):
            return
        if dp > ep:
            raise ConfigurationError(
                f"AlarmWindow datapoints_to_alarm={dp} is greater than evaluation_periods={ep}: "
                "an alarm cannot need more failing minutes than it looks at; use at most "
                f"{ep}, or raise evaluation_periods"
            )
        if ep > _ONE_DAY // 60:
            raise ConfigurationError(
                f"AlarmWindow evaluation_periods={ep}: CloudWatch allows at most one day "
                f"({_ONE_DAY // 60} one-minute periods) of evaluation"
            )


@dataclass(frozen=True, kw_only=True)
class FleetWatch:
    """Watch every instance of the account and region with one Metrics Insights alarm.

    The alarm's query is ``SELECT MAX(StatusCheckFailed_Instance) FROM SCHEMA("AWS/EC2",
    InstanceId) GROUP BY InstanceId ORDER BY MAX() DESC LIMIT <max_contributors>``: failing
    instances sort first, so the contributors are the instances that fail. Limits (AWS):
    a query returns at most 500 time series and processes at most 10,000 metrics (larger
    fleets per region are only partly watched); 200 Metrics Insights alarms per account
    and region; alarms evaluate at most the last three hours of data.

    :param max_contributors: the query's ``LIMIT``: how many failing instances one
        evaluation can report at once. Default: 500 (the most a query returns).
    :param alarm_quota: the account's quota of Metrics Insights alarms in this Region; synth
        fails when the stack's Metrics Insights alarms would exceed it. Default: 200, AWS's
        default (raise it only after raising the quota). Past 10,000 instances use
        ``ManagedAlarms`` instead (:mod:`crashcart.constructs.fleet_scale`).
    """

    max_contributors: int = MAX_CONTRIBUTORS
    alarm_quota: int = 200

    def __post_init__(self) -> None:
        value = self.max_contributors
        if _unresolved(value):
            return
        if (
            not isinstance(value, int)
            or isinstance(value, bool)
            or not 1 <= value <= MAX_CONTRIBUTORS
        ):
            raise ConfigurationError(
                f"FleetWatch max_contributors={value!r}: must be a whole number from 1 to "
                f"{MAX_CONTRIBUTORS} (a Metrics Insights query returns at most "
                f"{MAX_CONTRIBUTORS} time series)"
            )

        quota = self.alarm_quota
        if not _unresolved(quota) and (
            not isinstance(quota, int) or isinstance(quota, bool) or quota < 1
        ):
            raise ConfigurationError(
                f"FleetWatch alarm_quota={quota!r}: must be a whole number of at least 1 (the "
                "account's Metrics Insights alarm quota in this Region; AWS's default is 200)"
            )

    @property
    def query(self) -> str:
        """The Metrics Insights query of the fleet alarm."""
        return FLEET_QUERY.format(limit=self.max_contributors)


class AttestationPolicy(Enum):
    """What the function does when an instance has not attested recently that kdump is armed."""

    #: refuse to interrupt: without kdump the interrupt only crashes the machine.
    REQUIRE = "require"
    #: interrupt anyway, and say so in the incident and the notification.
    WARN = "warn"
    #: do not look at the attestation.
    IGNORE = "ignore"


@dataclass(frozen=True, kw_only=True)
class InterruptGuards:
    """Per-instance guards the function applies before an interrupt.

    :param boot_grace: skip instances launched or started within this. Default: 15 minutes
        (an instance's checks are ``initializing`` for the first minutes; big instances boot
        slowly).
    :param cooldown: no second interrupt of one instance within this. Default: 6 hours, far
        longer than a dump plus reboot (``dump_deadline``), and long enough that an
        instance interrupted just before midnight UTC is not interrupted again just after,
        when its daily budget resets.
    :param daily_budget: at most this many interrupts of one instance per UTC day; beyond
        it a human is notified and nothing more happens. Default: 1 (a machine that still
        fails after one dump fails for a reason an NMI does not fix).
    :param dump_deadline: after an interrupt, when a missing dump is reported overdue.
        Default: 30 minutes (writing a filtered, compressed vmcore of a large instance,
        rebooting and uploading it).
    :param attestation: what to do when the instance has not attested "kdump armed".
        Default: ``AttestationPolicy.REQUIRE``.
    :param attestation_max_age: an attestation older than this counts as missing.
        Default: 7 days.
    :param allow_unverified_arch: let arm64 (Graviton) instances through: the interrupt's
        effect there is not verified (see docs/remediation.md). Default: False.
    """

    boot_grace: cdk.Duration = field(default_factory=lambda: cdk.Duration.minutes(15))
    cooldown: cdk.Duration = field(default_factory=lambda: cdk.Duration.hours(6))
    daily_budget: int = 1
    dump_deadline: cdk.Duration = field(default_factory=lambda: cdk.Duration.minutes(30))
    attestation: AttestationPolicy = AttestationPolicy.REQUIRE
    attestation_max_age: cdk.Duration = field(default_factory=lambda: cdk.Duration.days(7))
    allow_unverified_arch: bool = False

    def __post_init__(self) -> None:
        _seconds("InterruptGuards boot_grace", self.boot_grace, minimum=0)
        cooldown = _seconds("InterruptGuards cooldown", self.cooldown, minimum=60)
        deadline = _seconds("InterruptGuards dump_deadline", self.dump_deadline, minimum=60)
        max_age = _seconds(
            "InterruptGuards attestation_max_age", self.attestation_max_age, minimum=60
        )
        if max_age is not None and max_age < MIN_MAX_AGE_SECONDS:
            raise ConfigurationError(
                f"InterruptGuards attestation_max_age={max_age}s: must be at least "
                f"{MIN_MAX_AGE_SECONDS}s (3 hours). The agent re-attests hourly (plus up to 5 "
                "minutes of timer jitter), so a shorter maximum age makes healthy instances "
                "count as stale after one failed re-attestation, and a stale instance is never "
                "interrupted under AttestationPolicy.REQUIRE"
            )
        attestation: object = self.attestation  # callers may pass anything at run time
        if not isinstance(attestation, AttestationPolicy):
            allowed = ", ".join(f"AttestationPolicy.{p.name}" for p in AttestationPolicy)
            raise ConfigurationError(
                f"InterruptGuards attestation={attestation!r}: must be one of {allowed}"
            )
        unverified: object = self.allow_unverified_arch
        if not isinstance(unverified, bool):
            raise ConfigurationError(
                f"InterruptGuards allow_unverified_arch={self.allow_unverified_arch!r}: "
                "must be True or False"
            )
        budget = self.daily_budget
        if not _unresolved(budget) and (
            not isinstance(budget, int) or isinstance(budget, bool) or budget < 1
        ):
            raise ConfigurationError(
                f"InterruptGuards daily_budget={budget!r}: must be a whole number of at "
                "least 1 (to stop all interrupts, set the kill-switch parameter to 'on')"
            )
        if cooldown is not None and deadline is not None and cooldown < deadline:
            raise ConfigurationError(
                f"InterruptGuards cooldown={cooldown}s is shorter than dump_deadline="
                f"{deadline}s: a second interrupt could hit an instance that is still "
                "writing or shipping its first dump; make the cooldown at least the deadline"
            )
        if cooldown is not None and not _unresolved(budget):
            reachable = _ONE_DAY // min(cooldown, _ONE_DAY) + 1
            if budget > reachable:
                raise ConfigurationError(
                    f"InterruptGuards daily_budget={budget} can never be reached with "
                    f"cooldown={cooldown}s (at most {reachable} interrupts fit in a UTC day); "
                    "lower the budget or shorten the cooldown"
                )


@dataclass(frozen=True, kw_only=True)
class CircuitBreaker:
    """The fleet and availability-zone circuit breakers.

    Every *new* ALARM counts (interrupted or not). When the count within ``window``
    reaches a threshold the breaker opens *before* that alarm is acted on: many instances
    failing at once is most likely an infrastructure event, and crashing them all would make
    it worse. One notification goes out; the breaker closes after ``quiet`` without a new
    ALARM, or when an operator resets it (:meth:`UnresponsiveInstanceRemediation.
    grant_reset_breaker`).

    :param fleet_threshold: new ALARMs in the window, across the deployment, that open the
        fleet breaker (so at most ``fleet_threshold - 1`` interrupts per window).
        Default: 5.
    :param az_threshold: the same per availability zone. Default: 3.
    :param window: the counting window. Default: 15 minutes.
    :param quiet: no new ALARM for this long closes an open breaker. Default: 1 hour.
    """

    fleet_threshold: int = 5
    az_threshold: int = 3
    window: cdk.Duration = field(default_factory=lambda: cdk.Duration.minutes(15))
    quiet: cdk.Duration = field(default_factory=lambda: cdk.Duration.hours(1))

    def __post_init__(self) -> None:
        for name in ("fleet_threshold", "az_threshold"):
            value = getattr(self, name)
            if _unresolved(value):
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 2:
                raise ConfigurationError(
                    f"CircuitBreaker {name}={value!r}: must be a whole number of at least 2; "
                    "the alarm that reaches the threshold opens the breaker and is not acted "
                    "on, so 1 would never interrupt anything (use the kill switch for that)"
                )
        fleet, az = self.fleet_threshold, self.az_threshold
        if not _unresolved(fleet) and not _unresolved(az) and az > fleet:
            raise ConfigurationError(
                f"CircuitBreaker az_threshold={az} is greater than fleet_threshold={fleet}: "
                "every ALARM also counts for the fleet, so the zone breaker could never open "
                "first; use an az_threshold of at most the fleet_threshold"
            )
        _seconds("CircuitBreaker window", self.window, minimum=60)
        _seconds("CircuitBreaker quiet", self.quiet, minimum=60)


@dataclass(frozen=True, kw_only=True)
class MissedAlarmSweep:
    """The remediation function's scheduled pass over impaired instances (missed alarms).

    An alarm sends one event per state change; an event that is lost, throttled or skipped
    by a guard that later clears is never sent again. Every ``schedule`` the function lists
    the impaired instances itself (``DescribeInstanceStatus``), keeps the opted-in ones, and
    decides each one that has no open incident, or whose incident is older than
    ``stale_after``, exactly as for an alarm (kill switch, guards, cooldown, budget, breaker).
    See ``crashcart/functions/remediation/sweep.py`` and docs/operations.md.

    :param schedule: how often a pass runs, whole minutes from 1 to 60. Default: 5 minutes.
    :param max_per_pass: instances decided per pass at most (1-100). Default: 10.
    :param max_pages: ``DescribeInstanceStatus`` pages of 1,000 read per pass (1-100).
        Default: 20 (20,000 impaired instances; more is an outage, not a hang).
    :param stale_after: an incident of a still-impaired instance not updated for this long
        is decided again (at least 5 minutes). Default: 30 minutes.
    """

    schedule: cdk.Duration = field(default_factory=lambda: cdk.Duration.minutes(5))
    max_per_pass: int = 10
    max_pages: int = 20
    stale_after: cdk.Duration = field(default_factory=lambda: cdk.Duration.minutes(30))

    def __post_init__(self) -> None:
        minutes = _seconds("MissedAlarmSweep schedule", self.schedule, minimum=60)
        if minutes is not None and (minutes % 60 or minutes > 3600):
            raise ConfigurationError(
                f"MissedAlarmSweep schedule={self.schedule.to_human_string()}: give whole "
                "minutes from 1 to 60 (EventBridge rates are whole minutes; a missed alarm "
                "should not wait longer than an hour)"
            )
        for name, top in (("max_per_pass", 100), ("max_pages", 100)):
            value = getattr(self, name)
            if _unresolved(value):
                continue
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= top:
                raise ConfigurationError(
                    f"MissedAlarmSweep {name}={value!r}: must be a whole number from 1 to "
                    f"{top} (a pass must fit in the function's timeout)"
                )
        _seconds("MissedAlarmSweep stale_after", self.stale_after, minimum=300)


__all__ = [
    "FLEET_QUERY",
    "MAX_CONTRIBUTORS",
    "AlarmWindow",
    "AttestationPolicy",
    "CircuitBreaker",
    "FleetWatch",
    "InterruptGuards",
    "MissedAlarmSweep",
]
