"""Props of :class:`~crashcart.constructs.auto_scaling_hold.AutoScalingHold`: the dump
deadline, and the checks of its timing against what Auto Scaling and CloudWatch allow.

Private module: the public names are re-exported by ``auto_scaling_hold``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Final

import aws_cdk as cdk

from crashcart.errors import ConfigurationError

# aws-assumption: lifecycle-hook-heartbeat-limits
MIN_HEARTBEAT: Final = 30
MAX_HEARTBEAT: Final = 7_200
GLOBAL_HOLD_SECONDS: Final = 48 * 3_600
#: The backstop: one-period length, and the most data a Metrics Insights alarm evaluates.
# aws-assumption: metrics-insights-alarm-contributor-ec2-actions
BACKSTOP_PERIOD: Final = cdk.Duration.minutes(5)
METRICS_INSIGHTS_MAX_SECONDS: Final = 3 * 3_600
#: How much longer than the longest dump deadline the backstop waits.
BACKSTOP_MARGIN_SECONDS: Final = 30 * 60


@dataclass(frozen=True, kw_only=True)
class DumpDeadline:
    """How long a crash dump may take: ``base`` + ``per_gib`` x the instance's memory (GiB),
    at most ``maximum``. A hold and an escalation wait that long after the interrupt.

    :param base: boot of the capture kernel, the reboot, the agent's start and upload of a
        small dump. Default: 15 minutes.
    :param per_gib: writing and shipping each GiB of memory (makedumpfile filters most of
        it; this is the unfiltered worst case on a slow volume). Default: 30 seconds.
    :param maximum: the cap, also for an instance type whose memory is unknown. At most
        2.5 hours while the backstop alarm is on (its window must be longer and a Metrics
        Insights alarm sees three hours of data). Default: 2 hours.
    """

    base: cdk.Duration = field(default_factory=lambda: cdk.Duration.minutes(15))
    per_gib: cdk.Duration = field(default_factory=lambda: cdk.Duration.seconds(30))
    maximum: cdk.Duration = field(default_factory=lambda: cdk.Duration.hours(2))

    def __post_init__(self) -> None:
        for name in ("base", "per_gib", "maximum"):
            value = getattr(self, name)
            if not isinstance(value, cdk.Duration):
                raise ConfigurationError(
                    f"DumpDeadline {name}={value!r}: give a cdk.Duration "
                    "(e.g. cdk.Duration.minutes(15))"
                )
        base, maximum = self.base.to_seconds(), self.maximum.to_seconds()
        if base < 60 or maximum < base:
            raise ConfigurationError(
                f"DumpDeadline base={base:g}s maximum={maximum:g}s: the base must be at least "
                "a minute and the maximum at least the base (a dump needs a reboot and an upload)"
            )


@dataclass(frozen=True)
class _HoldTiming:
    """The hold's checked timing: the hooks' heartbeat, the tick, the longest dump deadline
    (seconds) and the backstop's window in periods of :data:`BACKSTOP_PERIOD`."""

    heartbeat: cdk.Duration
    tick: cdk.Duration
    heartbeat_seconds: int
    maximum_seconds: int
    backstop_periods: int


def hold_timing(
    *,
    heartbeat_timeout: cdk.Duration | None,
    schedule: cdk.Duration | None,
    dump_deadline: DumpDeadline,
    backstop: bool,
) -> _HoldTiming:
    """Check the hold's timing props together.

    :raises ConfigurationError: a value Auto Scaling or CloudWatch would refuse, or one that
        would let a hold lapse, naming the value and the limit.
    """
    heartbeat = heartbeat_timeout or cdk.Duration.minutes(10)
    tick = schedule or cdk.Duration.minutes(1)
    heartbeat_s = int(heartbeat.to_seconds())
    if not MIN_HEARTBEAT <= heartbeat_s <= MAX_HEARTBEAT:
        raise ConfigurationError(
            f"heartbeat_timeout={heartbeat_s}s: a lifecycle hook's heartbeat timeout is "
            f"{MIN_HEARTBEAT}-{MAX_HEARTBEAT} s"
        )
    tick_s = tick.to_seconds()
    if tick_s % 60 or not 60 <= tick_s * 3 <= heartbeat_s:
        raise ConfigurationError(
            f"schedule={tick_s:g}s: whole minutes, and at most a third of the heartbeat "
            f"timeout ({heartbeat_s}s), so a hold survives two missed runs"
        )
    longest = min(GLOBAL_HOLD_SECONDS, 100 * heartbeat_s)
    maximum = int(dump_deadline.maximum.to_seconds())
    if maximum > longest:
        raise ConfigurationError(
            f"dump_deadline maximum={maximum}s: Auto Scaling holds a lifecycle action at "
            f"most {longest}s (48 h or 100 heartbeat timeouts, the lesser)"
        )
    backstop_periods = math.ceil((maximum + BACKSTOP_MARGIN_SECONDS) / BACKSTOP_PERIOD.to_seconds())
    backstop_seconds = backstop_periods * int(BACKSTOP_PERIOD.to_seconds())
    if backstop and backstop_seconds > METRICS_INSIGHTS_MAX_SECONDS:
        raise ConfigurationError(
            f"dump_deadline maximum={maximum}s with the backstop on: its window "
            f"({backstop_seconds}s, the maximum plus {BACKSTOP_MARGIN_SECONDS}s) would "
            f"exceed the {METRICS_INSIGHTS_MAX_SECONDS}s a Metrics Insights alarm "
            "evaluates; lower the maximum or pass backstop=False"
        )
    return _HoldTiming(heartbeat, tick, heartbeat_s, maximum, backstop_periods)
