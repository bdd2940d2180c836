"""The remediation function's configuration: environment variables -> one typed, validated object.

This module is the contract between the runtime and the CDK construct that deploys it: the
construct sets exactly the variables in :data:`ENVIRONMENT` (all strings), the runtime parses
them here, at call time (never at import time), and refuses to run on a bad value: a
:class:`SettingsError` is raised before any AWS call, so the event is retried and ends in the
function's on-failure queue instead of being acted on with a guessed configuration.

=====================================  ========  ==================================================
variable                               default   meaning
=====================================  ========  ==================================================
``CRASHCART_TABLE_NAME``               required  incident table (pk/sk strings)
``CRASHCART_TOPIC_ARN``                required  SNS topic for notifications
``CRASHCART_EVIDENCE_BUCKET``          required  bucket for ``evidence/<id>/<opened_at>/...``
``CRASHCART_REJECTED_QUEUE_URL``       required  SQS queue URL for malformed / foreign events
``CRASHCART_KILL_SWITCH_PARAMETER``    required  SSM parameter name; ``off`` lets interrupts
                                                 run, any other value (``on``) stops them; a
                                                 missing parameter is a configuration error
``CRASHCART_ALARM_NAME_PREFIX``        required  only alarms whose name starts with it are ours
``CRASHCART_OPT_IN_TAG_KEY``           ``crashcart:diagnostic-interrupt``
``CRASHCART_OPT_IN_TAG_VALUE``         ``enabled``
``CRASHCART_DRY_RUN``                  ``false`` ``true``: SendDiagnosticInterrupt with DryRun
``CRASHCART_BOOT_GRACE_SECONDS``       ``900``   skip instances launched / started within this
``CRASHCART_COOLDOWN_SECONDS``         ``21600`` no second interrupt of one instance within this
``CRASHCART_DAILY_BUDGET``             ``1``     max interrupts per instance per UTC day
``CRASHCART_BREAKER_FLEET_THRESHOLD``  ``5``     new ALARMs in the window that open the fleet
                                                 breaker (the alarm that reaches it is not
                                                 interrupted: at most threshold - 1 interrupts)
``CRASHCART_BREAKER_AZ_THRESHOLD``     ``3``     the same, per availability zone
``CRASHCART_BREAKER_WINDOW_SECONDS``   ``900``   counting window
``CRASHCART_BREAKER_QUIET_SECONDS``    ``3600``  no new ALARM for this long closes an open breaker
``CRASHCART_ATTESTATION_POLICY``       ``require`` ``require`` / ``warn`` / ``ignore``
``CRASHCART_ATTESTATION_MAX_AGE_SECONDS`` ``604800`` an older attestation counts as missing
``CRASHCART_ALLOW_UNVERIFIED_ARCH``    ``false`` ``true`` lets arm64 through (unverified path)
``CRASHCART_DUMP_DEADLINE_SECONDS``    ``1800``  after an interrupt, when a missing dump is overdue
``CRASHCART_MAX_EVENT_AGE_SECONDS``    ``3600``  the construct's ``max_event_age``: EventBridge
                                                 retries a delivery that long, then Lambda keeps
                                                 the event that long, so a state change older
                                                 than twice this is stale and rejected
``CRASHCART_MISSED_SWEEP_MAX_PER_PASS`` ``10``   missed-alarm sweep: instances handed to the
                                                 decision per pass at most
``CRASHCART_MISSED_SWEEP_MAX_PAGES``   ``20``    missed-alarm sweep: DescribeInstanceStatus pages
                                                 (1,000 instances each) read per pass at most
``CRASHCART_MISSED_SWEEP_STALE_SECONDS`` ``1800`` missed-alarm sweep: an incident of an instance
                                                 that is still impaired, not updated for this
                                                 long, is stale and handed to the decision again
``CRASHCART_ORG_BREAKER_TABLE_ARN``    empty     the organisation breaker's table (an ARN in the
                                                 central account); empty: no organisation breaker
``CRASHCART_ORG_BREAKER_THRESHOLD``    ``20``    interrupt candidates across the organisation (in
                                                 this Region) in the window that open it
``CRASHCART_ORG_BREAKER_WINDOW_SECONDS`` ``900`` its counting window
``CRASHCART_ORG_BREAKER_QUIET_SECONDS`` ``3600`` no candidate for this long closes it
``CRASHCART_ORG_EVENT_BUS_ARN``        empty     the central bus incident events go to; empty:
                                                 no incident events
=====================================  ========  ==================================================

Booleans accept exactly ``true`` / ``false`` (any case); integers are plain decimal digits.

Metrics: the function writes CloudWatch embedded-metric-format records (no extra permission is
needed: they are log lines) in namespace :data:`METRIC_NAMESPACE` with the single dimension
``FunctionName`` (the function's name), one count per outcome, named in :data:`METRICS`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Final

from crashcart.runtime import environment as variables
from crashcart.runtime import metrics
from crashcart.runtime.environment_reader import EnvironmentReader

#: CloudWatch namespace, dimension and metric names of the embedded metrics (one per outcome).
METRIC_NAMESPACE: Final = metrics.NAMESPACE
METRIC_DIMENSION: Final = metrics.DIMENSION
METRICS: Final = metrics.REMEDIATION_OUTCOMES


class SettingsError(ValueError):
    """A configuration variable is missing or invalid (names the variable and what is allowed)."""


class AttestationPolicy(StrEnum):
    """What the kdump attestation guard does when an instance is not attested armed."""

    REQUIRE = "require"  # refuse to interrupt: the dump would most likely be lost
    WARN = "warn"  # interrupt anyway, say so in the incident and the notification
    IGNORE = "ignore"  # do not look at the attestation at all


#: Environment variable name -> default (``None``: required).
ENVIRONMENT: Final = variables.REMEDIATION

#: ARNs of the organisation's central table and bus (fullmatch).
_TABLE_ARN = re.compile(r"arn:aws[a-z-]*:dynamodb:[a-z0-9-]+:[0-9]{12}:table/[A-Za-z0-9_.-]{3,255}")
_BUS_ARN = re.compile(
    r"arn:aws[a-z-]*:events:[a-z0-9-]+:[0-9]{12}:event-bus/[A-Za-z0-9/_.-]{1,256}"
)


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Validated configuration of one invocation (see the module docstring for each field)."""

    table_name: str
    topic_arn: str
    evidence_bucket: str
    rejected_queue_url: str
    kill_switch_parameter: str
    alarm_name_prefix: str
    opt_in_tag_key: str = "crashcart:diagnostic-interrupt"
    opt_in_tag_value: str = "enabled"
    dry_run: bool = False
    boot_grace_seconds: int = 900
    cooldown_seconds: int = 21_600
    daily_budget: int = 1
    breaker_fleet_threshold: int = 5
    breaker_az_threshold: int = 3
    breaker_window_seconds: int = 900
    breaker_quiet_seconds: int = 3_600
    attestation_policy: AttestationPolicy = AttestationPolicy.REQUIRE
    attestation_max_age_seconds: int = 604_800
    allow_unverified_arch: bool = False
    dump_deadline_seconds: int = 1_800
    max_event_age_seconds: int = 3_600
    missed_sweep_max_per_pass: int = 10
    missed_sweep_max_pages: int = 20
    missed_sweep_stale_seconds: int = 1_800
    org_breaker_table_arn: str = ""
    org_breaker_threshold: int = 20
    org_breaker_window_seconds: int = 900
    org_breaker_quiet_seconds: int = 3_600
    org_event_bus_arn: str = ""

    @property
    def oldest_event_age(self) -> timedelta:
        """The oldest a state change may be when the function handles it: EventBridge retries
        a delivery for ``max_event_age``, then Lambda keeps the event queued (with its retries)
        for ``max_event_age`` again; anything older is a stale or forged timestamp
        (aws-assumption: alarm-event-delivery-age)."""
        return timedelta(seconds=2 * self.max_event_age_seconds)

    def __post_init__(self) -> None:
        for name in (
            "table_name",
            "topic_arn",
            "evidence_bucket",
            "rejected_queue_url",
            "kill_switch_parameter",
            "alarm_name_prefix",
            "opt_in_tag_key",
            "opt_in_tag_value",
        ):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise SettingsError(f"{name} is empty: it is required")
        positive = {
            "daily_budget": self.daily_budget,
            "breaker_fleet_threshold": self.breaker_fleet_threshold,
            "breaker_az_threshold": self.breaker_az_threshold,
            "breaker_window_seconds": self.breaker_window_seconds,
            "breaker_quiet_seconds": self.breaker_quiet_seconds,
            "cooldown_seconds": self.cooldown_seconds,
            "dump_deadline_seconds": self.dump_deadline_seconds,
            "max_event_age_seconds": self.max_event_age_seconds,
            "missed_sweep_max_per_pass": self.missed_sweep_max_per_pass,
            "missed_sweep_max_pages": self.missed_sweep_max_pages,
            "missed_sweep_stale_seconds": self.missed_sweep_stale_seconds,
            "org_breaker_window_seconds": self.org_breaker_window_seconds,
            "org_breaker_quiet_seconds": self.org_breaker_quiet_seconds,
        }
        for name, number in positive.items():
            if number < 1:
                raise SettingsError(f"{name}={number}: must be at least 1")
        if self.breaker_fleet_threshold < 2 or self.breaker_az_threshold < 2:
            raise SettingsError(
                f"breaker thresholds fleet={self.breaker_fleet_threshold} "
                f"az={self.breaker_az_threshold}: must be at least 2, since the alarm that "
                "reaches the threshold opens the breaker and is not interrupted (1 would "
                "never interrupt anything)"
            )
        if self.org_breaker_threshold < 2:
            raise SettingsError(
                f"org_breaker_threshold={self.org_breaker_threshold}: must be at least 2 (the "
                "candidate that reaches it opens the organisation breaker and is skipped)"
            )
        for name, pattern in (
            ("org_breaker_table_arn", _TABLE_ARN),
            ("org_event_bus_arn", _BUS_ARN),
        ):
            value = getattr(self, name)
            if value and not pattern.fullmatch(value):
                raise SettingsError(
                    f"{name}={value[:200]!r}: expected an ARN matching {pattern.pattern} "
                    "(or empty to leave the organisation part off)"
                )
        if self.boot_grace_seconds < 0 or self.attestation_max_age_seconds < 0:
            raise SettingsError("boot grace and attestation max age cannot be negative")
        if self.cooldown_seconds < self.dump_deadline_seconds:
            raise SettingsError(
                f"cooldown_seconds={self.cooldown_seconds} is shorter than "
                f"dump_deadline_seconds={self.dump_deadline_seconds}: a second interrupt "
                "could hit an instance that is still writing or shipping its dump"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Parse ``environ`` (e.g. ``os.environ``); raise :class:`SettingsError` if invalid."""
        read = EnvironmentReader(environ, ENVIRONMENT, SettingsError)
        text, optional, integer, boolean = read.text, read.optional, read.integer, read.boolean

        policy_text = text(variables.ATTESTATION_POLICY).lower()
        try:
            policy = AttestationPolicy(policy_text)
        except ValueError:
            allowed = ", ".join(p.value for p in AttestationPolicy)
            raise SettingsError(
                f"CRASHCART_ATTESTATION_POLICY={policy_text!r}: expected one of {allowed}"
            ) from None
        return cls(
            table_name=text(variables.TABLE_NAME),
            topic_arn=text(variables.TOPIC_ARN),
            evidence_bucket=text(variables.EVIDENCE_BUCKET),
            rejected_queue_url=text(variables.REJECTED_QUEUE_URL),
            kill_switch_parameter=text(variables.KILL_SWITCH_PARAMETER),
            alarm_name_prefix=text(variables.ALARM_NAME_PREFIX),
            opt_in_tag_key=text(variables.OPT_IN_TAG_KEY),
            opt_in_tag_value=text(variables.OPT_IN_TAG_VALUE),
            dry_run=boolean(variables.DRY_RUN),
            boot_grace_seconds=integer(variables.BOOT_GRACE_SECONDS),
            cooldown_seconds=integer(variables.COOLDOWN_SECONDS),
            daily_budget=integer(variables.DAILY_BUDGET),
            breaker_fleet_threshold=integer(variables.BREAKER_FLEET_THRESHOLD),
            breaker_az_threshold=integer(variables.BREAKER_AZ_THRESHOLD),
            breaker_window_seconds=integer(variables.BREAKER_WINDOW_SECONDS),
            breaker_quiet_seconds=integer(variables.BREAKER_QUIET_SECONDS),
            attestation_policy=policy,
            attestation_max_age_seconds=integer(variables.ATTESTATION_MAX_AGE_SECONDS),
            allow_unverified_arch=boolean(variables.ALLOW_UNVERIFIED_ARCH),
            dump_deadline_seconds=integer(variables.DUMP_DEADLINE_SECONDS),
            max_event_age_seconds=integer(variables.MAX_EVENT_AGE_SECONDS),
            missed_sweep_max_per_pass=integer(variables.MISSED_SWEEP_MAX_PER_PASS),
            missed_sweep_max_pages=integer(variables.MISSED_SWEEP_MAX_PAGES),
            missed_sweep_stale_seconds=integer(variables.MISSED_SWEEP_STALE_SECONDS),
            org_breaker_table_arn=optional(variables.ORG_BREAKER_TABLE_ARN),
            org_breaker_threshold=integer(variables.ORG_BREAKER_THRESHOLD),
            org_breaker_window_seconds=integer(variables.ORG_BREAKER_WINDOW_SECONDS),
            org_breaker_quiet_seconds=integer(variables.ORG_BREAKER_QUIET_SECONDS),
            org_event_bus_arn=optional(variables.ORG_EVENT_BUS_ARN),
        )
