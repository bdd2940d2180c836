"""The environment contract between the constructs and the code they deploy.

Every variable a construct sets and a function (or the triage job) reads is named here once:
the constructs build their ``environment`` from these names, the runtimes parse them, and a
test synthesizes each construct and compares what it sets with the unit's table below. All
values are strings; a unit's table maps each variable to its default (``None``: required).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

# -- shared by several units ---------------------------------------------------------------
TABLE_NAME: Final = "CRASHCART_TABLE_NAME"
TOPIC_ARN: Final = "CRASHCART_TOPIC_ARN"
DUMP_BUCKET: Final = "CRASHCART_DUMP_BUCKET"
# -- remediation function ------------------------------------------------------------------
EVIDENCE_BUCKET: Final = "CRASHCART_EVIDENCE_BUCKET"
REJECTED_QUEUE_URL: Final = "CRASHCART_REJECTED_QUEUE_URL"
KILL_SWITCH_PARAMETER: Final = "CRASHCART_KILL_SWITCH_PARAMETER"
ALARM_NAME_PREFIX: Final = "CRASHCART_ALARM_NAME_PREFIX"
OPT_IN_TAG_KEY: Final = "CRASHCART_OPT_IN_TAG_KEY"
OPT_IN_TAG_VALUE: Final = "CRASHCART_OPT_IN_TAG_VALUE"
DRY_RUN: Final = "CRASHCART_DRY_RUN"
BOOT_GRACE_SECONDS: Final = "CRASHCART_BOOT_GRACE_SECONDS"
COOLDOWN_SECONDS: Final = "CRASHCART_COOLDOWN_SECONDS"
DAILY_BUDGET: Final = "CRASHCART_DAILY_BUDGET"
BREAKER_FLEET_THRESHOLD: Final = "CRASHCART_BREAKER_FLEET_THRESHOLD"
BREAKER_AZ_THRESHOLD: Final = "CRASHCART_BREAKER_AZ_THRESHOLD"
BREAKER_WINDOW_SECONDS: Final = "CRASHCART_BREAKER_WINDOW_SECONDS"
BREAKER_QUIET_SECONDS: Final = "CRASHCART_BREAKER_QUIET_SECONDS"
ATTESTATION_POLICY: Final = "CRASHCART_ATTESTATION_POLICY"
ATTESTATION_MAX_AGE_SECONDS: Final = "CRASHCART_ATTESTATION_MAX_AGE_SECONDS"
ALLOW_UNVERIFIED_ARCH: Final = "CRASHCART_ALLOW_UNVERIFIED_ARCH"
DUMP_DEADLINE_SECONDS: Final = "CRASHCART_DUMP_DEADLINE_SECONDS"
MAX_EVENT_AGE_SECONDS: Final = "CRASHCART_MAX_EVENT_AGE_SECONDS"
# -- remediation function, missed-alarm sweep mode --------------------------------------------
MISSED_SWEEP_MAX_PER_PASS: Final = "CRASHCART_MISSED_SWEEP_MAX_PER_PASS"  # noqa: S105 - a name
MISSED_SWEEP_MAX_PAGES: Final = "CRASHCART_MISSED_SWEEP_MAX_PAGES"
MISSED_SWEEP_STALE_SECONDS: Final = "CRASHCART_MISSED_SWEEP_STALE_SECONDS"
# -- remediation function, organisation (optional: empty ARNs switch the part off) -----------
ORG_BREAKER_TABLE_ARN: Final = "CRASHCART_ORG_BREAKER_TABLE_ARN"
ORG_BREAKER_THRESHOLD: Final = "CRASHCART_ORG_BREAKER_THRESHOLD"
ORG_BREAKER_WINDOW_SECONDS: Final = "CRASHCART_ORG_BREAKER_WINDOW_SECONDS"
ORG_BREAKER_QUIET_SECONDS: Final = "CRASHCART_ORG_BREAKER_QUIET_SECONDS"
ORG_EVENT_BUS_ARN: Final = "CRASHCART_ORG_EVENT_BUS_ARN"
# -- kill-switch reach function -------------------------------------------------------------
ALARM_NAME_PREFIXES: Final = "CRASHCART_ALARM_NAME_PREFIXES"
KILL_SWITCH_TAG_KEY: Final = "CRASHCART_KILL_SWITCH_TAG_KEY"
KILL_SWITCH_TAG_VALUE: Final = "CRASHCART_KILL_SWITCH_TAG_VALUE"
# -- dump-arrival function -----------------------------------------------------------------
ATTACH_WINDOW_SECONDS: Final = "CRASHCART_ATTACH_WINDOW_SECONDS"
# -- organisation: the way back (central view -> member's default bus -> member receiver) ----
PARTITION: Final = "CRASHCART_PARTITION"
CENTRAL_ACCOUNT: Final = "CRASHCART_CENTRAL_ACCOUNT"
MEMBER_ACCOUNT: Final = "CRASHCART_MEMBER_ACCOUNT"
# -- overdue sweep -------------------------------------------------------------------------
DUMP_BUCKET_PARAMETER: Final = "CRASHCART_DUMP_BUCKET_PARAMETER"
SWEEP_MAX_PAGES: Final = "CRASHCART_SWEEP_MAX_PAGES"
ATTESTATION_CENSUS: Final = "CRASHCART_ATTESTATION_CENSUS"
# -- alarm manager (managed per-instance alarms) ------------------------------------------
MANAGED_DEPLOYMENT: Final = "CRASHCART_MANAGED_DEPLOYMENT"
MANAGED_EVALUATION_PERIODS: Final = "CRASHCART_MANAGED_EVALUATION_PERIODS"
MANAGED_DATAPOINTS_TO_ALARM: Final = "CRASHCART_MANAGED_DATAPOINTS_TO_ALARM"
MANAGED_PUTS_PER_SECOND: Final = "CRASHCART_MANAGED_PUTS_PER_SECOND"

# -- lifecycle hold and escalation ---------------------------------------------------------
HOLD_GROUPS: Final = "CRASHCART_HOLD_GROUPS"
HOLD_HOOK_NAME: Final = "CRASHCART_HOLD_HOOK_NAME"
HOLD_HEARTBEAT_SECONDS: Final = "CRASHCART_HOLD_HEARTBEAT_SECONDS"
DUMP_BASE_SECONDS: Final = "CRASHCART_DUMP_BASE_SECONDS"
DUMP_SECONDS_PER_GIB: Final = "CRASHCART_DUMP_SECONDS_PER_GIB"
DUMP_MAX_SECONDS: Final = "CRASHCART_DUMP_MAX_SECONDS"
ESCALATION_REBOOT: Final = "CRASHCART_ESCALATION_REBOOT"
# -- triage job ----------------------------------------------------------------------------
METADATA_KEY: Final = "CRASHCART_METADATA_KEY"
SYMBOL_BUCKET: Final = "CRASHCART_SYMBOL_BUCKET"
WORK_DIR: Final = "CRASHCART_WORK_DIR"
TIMEOUT_SECONDS: Final = "CRASHCART_TIMEOUT_SECONDS"
LINK_WAIT_SECONDS: Final = "CRASHCART_LINK_WAIT_SECONDS"
PARSER_USER: Final = "CRASHCART_PARSER_USER"
TASK_MEMORY_MIB: Final = "CRASHCART_TASK_MEMORY_MIB"

#: The remediation function (``UnresponsiveInstanceRemediation``).
REMEDIATION: Final[Mapping[str, str | None]] = {
    TABLE_NAME: None,
    TOPIC_ARN: None,
    EVIDENCE_BUCKET: None,
    REJECTED_QUEUE_URL: None,
    KILL_SWITCH_PARAMETER: None,
    ALARM_NAME_PREFIX: None,
    OPT_IN_TAG_KEY: "crashcart:diagnostic-interrupt",
    OPT_IN_TAG_VALUE: "enabled",
    DRY_RUN: "false",
    BOOT_GRACE_SECONDS: "900",
    COOLDOWN_SECONDS: "21600",
    DAILY_BUDGET: "1",
    BREAKER_FLEET_THRESHOLD: "5",
    BREAKER_AZ_THRESHOLD: "3",
    BREAKER_WINDOW_SECONDS: "900",
    BREAKER_QUIET_SECONDS: "3600",
    ATTESTATION_POLICY: "require",
    ATTESTATION_MAX_AGE_SECONDS: "604800",
    ALLOW_UNVERIFIED_ARCH: "false",
    DUMP_DEADLINE_SECONDS: "1800",
    MAX_EVENT_AGE_SECONDS: "3600",
    MISSED_SWEEP_MAX_PER_PASS: "10",
    MISSED_SWEEP_MAX_PAGES: "20",
    MISSED_SWEEP_STALE_SECONDS: "1800",
    ORG_BREAKER_TABLE_ARN: "",
    ORG_BREAKER_THRESHOLD: "20",
    ORG_BREAKER_WINDOW_SECONDS: "900",
    ORG_BREAKER_QUIET_SECONDS: "3600",
    ORG_EVENT_BUS_ARN: "",
}

#: The remediation's variables set only with ``organisation=OrganisationLink(...)`` (without
#: it the construct leaves them out, and the runtime's empty defaults switch the part off).
REMEDIATION_ORGANISATION: Final = (
    ORG_BREAKER_TABLE_ARN,
    ORG_BREAKER_THRESHOLD,
    ORG_BREAKER_WINDOW_SECONDS,
    ORG_BREAKER_QUIET_SECONDS,
    ORG_EVENT_BUS_ARN,
)

#: The dump-arrival function (``CrashDumpBucket.notify_incidents``).
DUMP_ARRIVAL: Final[Mapping[str, str | None]] = {
    TABLE_NAME: None,
    TOPIC_ARN: None,
    DUMP_BUCKET: None,
    ATTACH_WINDOW_SECONDS: "21600",
}

#: The overdue sweep (``DumpOverdueSweep``); the construct leaves the page bound at its default.
INCIDENT_SWEEP: Final[Mapping[str, str | None]] = {
    TABLE_NAME: None,
    TOPIC_ARN: None,
    DUMP_BUCKET_PARAMETER: "/crashcart/dump-bucket",
    SWEEP_MAX_PAGES: "100",
    ATTESTATION_CENSUS: "false",
    OPT_IN_TAG_KEY: "crashcart:diagnostic-interrupt",
    OPT_IN_TAG_VALUE: "enabled",
    ATTESTATION_MAX_AGE_SECONDS: "604800",
}

#: The lifecycle-hold and escalation function (``AutoScalingHold``): the remediation's
#: variables (its guards decide the hold's own interrupt) plus its own.
LIFECYCLE_HOLD: Final[Mapping[str, str | None]] = {
    **REMEDIATION,
    HOLD_GROUPS: "",
    HOLD_HOOK_NAME: None,
    HOLD_HEARTBEAT_SECONDS: "600",
    DUMP_BASE_SECONDS: "900",
    DUMP_SECONDS_PER_GIB: "30",
    DUMP_MAX_SECONDS: "7200",
    ESCALATION_REBOOT: "true",
}

#: The kill-switch reach function (``KillSwitchReach``).
KILL_SWITCH_REACH: Final[Mapping[str, str | None]] = {
    KILL_SWITCH_PARAMETER: None,
    ALARM_NAME_PREFIXES: "",
    KILL_SWITCH_TAG_KEY: "crashcart:kill-switch",
    KILL_SWITCH_TAG_VALUE: None,
}

#: The triage job (``DumpTriageJob``); EventBridge sets the metadata key per run.
TRIAGE_JOB: Final[Mapping[str, str | None]] = {
    METADATA_KEY: None,
    DUMP_BUCKET: None,
    TABLE_NAME: None,
    TOPIC_ARN: None,
    SYMBOL_BUCKET: "",
    WORK_DIR: "",
    TIMEOUT_SECONDS: "",
    LINK_WAIT_SECONDS: "120",
    PARSER_USER: "",
    TASK_MEMORY_MIB: "",
}

#: The alarm manager (``UnresponsiveInstanceRemediation(fleet=ManagedAlarms())``).
ALARM_MANAGER: Final[Mapping[str, str | None]] = {
    ALARM_NAME_PREFIX: None,
    MANAGED_DEPLOYMENT: None,
    REJECTED_QUEUE_URL: None,
    OPT_IN_TAG_KEY: "crashcart:diagnostic-interrupt",
    OPT_IN_TAG_VALUE: "enabled",
    MANAGED_EVALUATION_PERIODS: "3",
    MANAGED_DATAPOINTS_TO_ALARM: "3",
    MANAGED_PUTS_PER_SECOND: "2",
}

#: The canary crash drill (``CanaryCrashDrill``).
DRILL_TABLE_NAME: Final = "CRASHCART_DRILL_TABLE_NAME"
DRILL_SUBNET_ID: Final = "CRASHCART_DRILL_SUBNET_ID"
DRILL_SECURITY_GROUP_ID: Final = "CRASHCART_DRILL_SECURITY_GROUP_ID"
DRILL_INSTANCE_PROFILE_ARN: Final = "CRASHCART_DRILL_INSTANCE_PROFILE_ARN"
DRILL_HANG_DOCUMENT: Final = "CRASHCART_DRILL_HANG_DOCUMENT"
DRILL_CANDIDATE_PARAMETER: Final = "CRASHCART_DRILL_CANDIDATE_PARAMETER"
DRILL_VERIFIED_PARAMETER: Final = "CRASHCART_DRILL_VERIFIED_PARAMETER"
DRILL_PIPELINE_TAG_VALUE: Final = "CRASHCART_DRILL_PIPELINE_TAG_VALUE"
DRILL_CANARY_TAG_VALUE: Final = "CRASHCART_DRILL_CANARY_TAG_VALUE"
DRILL_INSTANCE_TYPES: Final = "CRASHCART_DRILL_INSTANCE_TYPES"
DRILL_BOOT_TIMEOUT_SECONDS: Final = "CRASHCART_DRILL_BOOT_TIMEOUT_SECONDS"
DRILL_DUMP_TIMEOUT_SECONDS: Final = "CRASHCART_DRILL_DUMP_TIMEOUT_SECONDS"
DRILL_POLL_SECONDS: Final = "CRASHCART_DRILL_POLL_SECONDS"
DRILL_HANG_AFTER_SECONDS: Final = "CRASHCART_DRILL_HANG_AFTER_SECONDS"
DRILL_LOCK_SECONDS: Final = "CRASHCART_DRILL_LOCK_SECONDS"
DRILL_MAX_CANARY_LIFETIME_SECONDS: Final = "CRASHCART_DRILL_MAX_CANARY_LIFETIME_SECONDS"

CANARY_DRILL: Final[Mapping[str, str | None]] = {
    DRILL_TABLE_NAME: None,
    TABLE_NAME: None,
    TOPIC_ARN: None,
    DRILL_SUBNET_ID: None,
    DRILL_SECURITY_GROUP_ID: None,
    DRILL_INSTANCE_PROFILE_ARN: None,
    DRILL_HANG_DOCUMENT: None,
    DRILL_CANDIDATE_PARAMETER: None,
    DRILL_VERIFIED_PARAMETER: None,
    DRILL_PIPELINE_TAG_VALUE: None,
    DRILL_CANARY_TAG_VALUE: None,
    DRILL_INSTANCE_TYPES: "m7i.large,r7i.2xlarge",
    OPT_IN_TAG_KEY: "crashcart:diagnostic-interrupt",
    OPT_IN_TAG_VALUE: "enabled",
    DUMP_BUCKET: "",
    DRILL_BOOT_TIMEOUT_SECONDS: "1200",
    DRILL_DUMP_TIMEOUT_SECONDS: "2400",
    DRILL_POLL_SECONDS: "60",
    DRILL_HANG_AFTER_SECONDS: "960",
    DRILL_LOCK_SECONDS: "14400",
    DRILL_MAX_CANARY_LIFETIME_SECONDS: "10800",
    ATTESTATION_MAX_AGE_SECONDS: "3600",
}

#: The central incident view (``OrganisationCentral``): member incident events and dump
#: arrival in the central bucket -> the central incident table + topic.
INCIDENT_VIEW: Final[Mapping[str, str | None]] = {
    TABLE_NAME: None,
    TOPIC_ARN: None,
    DUMP_BUCKET: None,
    ATTACH_WINDOW_SECONDS: "21600",
    PARTITION: "aws",
}

#: The member's receiver of the central account's "dump received" events
#: (``CentralDumpReceiver``): the dump-arrival function with the central event type.
CENTRAL_DUMP_RECEIVER: Final[Mapping[str, str | None]] = {
    TABLE_NAME: None,
    TOPIC_ARN: None,
    CENTRAL_ACCOUNT: None,
    MEMBER_ACCOUNT: None,
    ATTACH_WINDOW_SECONDS: "21600",
}
