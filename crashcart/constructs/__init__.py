"""crashcart's L3 constructs and grant helpers, one module per construct."""

from __future__ import annotations

from crashcart.constructs.auto_scaling_hold import AutoScalingHold, DumpDeadline
from crashcart.constructs.canary_crash_drill import CanaryCrashDrill
from crashcart.constructs.central_dump_receiver import CentralDumpReceiver
from crashcart.constructs.crash_dump_bucket import (
    ATTESTATION_TAG_KEY,
    CrashDumpBucket,
    DumpLifecycle,
)
from crashcart.constructs.debug_symbol_store import DebugSymbolStore
from crashcart.constructs.diagnostic_interrupt_operator_policy import (
    INTERRUPT_ACTION,
    DiagnosticInterruptOperatorPolicy,
    grant_diagnostic_interrupt,
    interrupt_statement,
    tag_tamper_deny_statements,
)
from crashcart.constructs.dump_overdue_sweep import AttestationWatch, DumpOverdueSweep
from crashcart.constructs.dump_triage_job import DumpTriageJob, TriageTaskSize
from crashcart.constructs.existing_dump_bucket import ExistingDumpBucket
from crashcart.constructs.fleet_scale import ManagedAlarms
from crashcart.constructs.incident_store import IncidentStore
from crashcart.constructs.kdump_image_pipeline import (
    DistributionTarget,
    Hardening,
    KdumpImagePipeline,
    ParentImage,
    PipelineSchedule,
)
from crashcart.constructs.kill_switch_reach import KillSwitchReach
from crashcart.constructs.member_account_settings import (
    CentralRegion,
    MemberAccountSettings,
    MemberRemediation,
)
from crashcart.constructs.operations_monitoring import OperationsMonitoring
from crashcart.constructs.organisation_asset_bucket import OrganisationAssetBucket
from crashcart.constructs.organisation_breaker import OrganisationBreaker
from crashcart.constructs.organisation_central import (
    OrganisationCentral,
    member_upload_statements,
)
from crashcart.constructs.organisation_guardrails import GuardrailTarget, OrganisationGuardrails
from crashcart.constructs.organisation_link import OrganisationLink
from crashcart.constructs.organisation_rollout import CallAs, OrganisationRollout, RolloutPace
from crashcart.constructs.running_instance_arming import RebootWindow, RunningInstanceArming
from crashcart.constructs.unresponsive_instance_remediation import (
    AlarmWindow,
    AttestationPolicy,
    CircuitBreaker,
    FleetWatch,
    InterruptGuards,
    MissedAlarmSweep,
    UnresponsiveInstanceRemediation,
)

__all__ = [
    "ATTESTATION_TAG_KEY",
    "INTERRUPT_ACTION",
    "AlarmWindow",
    "AttestationPolicy",
    "AttestationWatch",
    "AutoScalingHold",
    "CallAs",
    "CanaryCrashDrill",
    "CentralDumpReceiver",
    "CentralRegion",
    "CircuitBreaker",
    "CrashDumpBucket",
    "DebugSymbolStore",
    "DiagnosticInterruptOperatorPolicy",
    "DistributionTarget",
    "DumpDeadline",
    "DumpLifecycle",
    "DumpOverdueSweep",
    "DumpTriageJob",
    "ExistingDumpBucket",
    "FleetWatch",
    "GuardrailTarget",
    "Hardening",
    "IncidentStore",
    "InterruptGuards",
    "KdumpImagePipeline",
    "KillSwitchReach",
    "ManagedAlarms",
    "MemberAccountSettings",
    "MemberRemediation",
    "MissedAlarmSweep",
    "OperationsMonitoring",
    "OrganisationAssetBucket",
    "OrganisationBreaker",
    "OrganisationCentral",
    "OrganisationGuardrails",
    "OrganisationLink",
    "OrganisationRollout",
    "ParentImage",
    "PipelineSchedule",
    "RebootWindow",
    "RolloutPace",
    "RunningInstanceArming",
    "TriageTaskSize",
    "UnresponsiveInstanceRemediation",
    "grant_diagnostic_interrupt",
    "interrupt_statement",
    "member_upload_statements",
    "tag_tamper_deny_statements",
]
