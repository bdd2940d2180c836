"""The deployable workload-account stack: detect, interrupt, capture.

By default it watches the whole fleet of its account and region with one Metrics Insights
alarm (no instance needs to exist for the stack to deploy), in dry-run mode. Pass
``instance_ids`` to watch only those instances instead (one alarm each).

It also holds the crash-dump bucket: instances ship their dumps there, the remediation
function writes its console-output evidence there (``evidence/``), and a dump's arrival
updates the incident the interrupt opened (``CrashDumpBucket.notify_incidents``), and a
Fargate task makes the full triage report of every dump (``DumpTriageJob``), with the debug
vmlinux from the symbol store the image pipeline fills when one is given.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import aws_cdk as cdk
from aws_cdk import aws_autoscaling as autoscaling
from aws_cdk import aws_sns as sns
from constructs import Construct

from crashcart.constructs._internal.central_access import CentralAccess
from crashcart.constructs._internal.member_evidence import MemberEvidence
from crashcart.constructs.auto_scaling_hold import AutoScalingHold
from crashcart.constructs.central_dump_receiver import CentralDumpReceiver
from crashcart.constructs.crash_dump_bucket import ATTESTATION_TAG_KEY, CrashDumpBucket
from crashcart.constructs.dump_overdue_sweep import AttestationWatch, DumpOverdueSweep
from crashcart.constructs.dump_triage_job import DumpTriageJob
from crashcart.constructs.existing_dump_bucket import DumpBucket, ExistingDumpBucket
from crashcart.constructs.fleet_scale import ManagedAlarms
from crashcart.constructs.kill_switch_reach import KillSwitchReach
from crashcart.constructs.operations_monitoring import OperationsMonitoring
from crashcart.constructs.running_instance_arming import RunningInstanceArming
from crashcart.constructs.unresponsive_instance_remediation import (
    AlarmWindow,
    AttestationPolicy,
    CircuitBreaker,
    FleetWatch,
    InterruptGuards,
    UnresponsiveInstanceRemediation,
)
from crashcart.errors import ConfigurationError
from crashcart.opt_in import OptInTag

if TYPE_CHECKING:
    from crashcart.constructs.debug_symbol_store import DebugSymbolStore
    from crashcart.constructs.member_account_settings import MemberAccountSettings


class CrashcartRemediationStack(cdk.Stack):
    """Alarms, delivery, the remediation function, incident table, topic and kill switch."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        tag: OptInTag = OptInTag(),  # noqa: B008 - frozen value
        instance_ids: Sequence[str] = (),
        auto_scaling_group_names: Sequence[str] = (),
        fleet: FleetWatch | ManagedAlarms | None = None,
        dry_run: bool = True,
        alarm_window: AlarmWindow = AlarmWindow(),  # noqa: B008 - frozen value
        guards: InterruptGuards = InterruptGuards(),  # noqa: B008 - frozen value
        breaker: CircuitBreaker = CircuitBreaker(),  # noqa: B008 - frozen value
        dumps: ExistingDumpBucket | None = None,
        full_triage: bool = True,
        symbol_store: DebugSymbolStore | None = None,
        notifications: Sequence[sns.ITopicSubscription] = (),
        arm_running_instances: bool = False,
        hold_backstop: bool = False,
        central: MemberAccountSettings | None = None,
        agent_policy_name: str = "crashcart-agent",
        **stack_kwargs: Any,
    ) -> None:
        """Create the stack.

        :param tag: the opt-in tag. Default: ``crashcart:diagnostic-interrupt=enabled``.
        :param instance_ids: watch exactly these instances (they must carry the tag), one
            alarm each. Default: empty: watch the fleet (``fleet``).
        :param auto_scaling_group_names: Auto Scaling groups whose terminating instances
            are held for their crash dump (``AutoScalingHold``, one termination hook each).
            Default: none. The escalation of hung interrupted instances runs either way; its
            backstop alarm (a native reboot) only when armed (``dry_run=False``).
        :param fleet: the fleet alarm's settings when ``instance_ids`` is empty.
            Default: ``FleetWatch()`` (500 contributors).
        :param dry_run: shadow mode (``DryRun=True``). Default: True.
        :param alarm_window: Default: 3 of 3 one-minute periods.
        :param guards: Default: ``InterruptGuards()``.
        :param breaker: Default: ``CircuitBreaker()``.
        :param dumps: a crash-dump bucket crashcart did not create (bucket and key), for
            the console-output evidence; dump arrival, triage and the overdue sweep are then
            left to its owner. Default: a new ``CrashDumpBucket`` in this stack
            (``self.crash_dumps``), which also receives the dumps and updates incidents when
            one arrives.
        :param full_triage: run ``DumpTriageJob`` (a Fargate task per dump, in its own
            isolated VPC) for the crash-dump bucket this stack creates. Default: True.
        :param symbol_store: where that job finds debug vmlinux files by build id (the
            image pipeline's ``DebugSymbolStore``). Default: none - reports from the
            dump's kernel log only.
        :param notifications: subscriptions to the notification topic (e-mail, HTTPS).
            Default: none - subscribe to the ``TopicArn`` output yourself.
        :param arm_running_instances: a :class:`RunningInstanceArming` for the opt-in tag
            (``self.arming``): running opted-in instances get kdump and the agent through a
            State Manager association, never a reboot. Default: False.
        :param hold_backstop: give the Auto Scaling hold its backstop reboot alarm when the
            stack is armed (``dry_run=False``). Its query selects opted-in instances by tag:
            only pass True where the account has resource tags for telemetry switched on
            (see ``AutoScalingHold``). Default: False.
        :param central: make this a member account's stack of an organisation: dumps go to
            the central account's dump bucket of the stack's Region, console-output evidence
            to a small bucket of this account's (``MemberEvidence``), the
            agent reads that bucket's name from ``/crashcart/dump-bucket`` and gets a managed
            policy named ``<agent_policy_name>-<region>`` (``self.central``). Default: None,
            a stand-alone account with its own ``CrashDumpBucket``.
        :param agent_policy_name: with ``central``, the agent policy's name before the
            Region. Default: ``crashcart-agent``.
        :param stack_kwargs: passed to ``cdk.Stack`` (``env``, ``description``, ...).
        """
        super().__init__(scope, construct_id, **stack_kwargs)
        self.central: CentralAccess | None = None
        if central is not None:
            if dumps is not None:
                raise ConfigurationError(
                    "dumps was given with central: a member account's dumps go to the "
                    "central account's dump bucket and its evidence to a bucket of its own"
                )
            self.central = CentralAccess(
                self,
                "Central",
                settings=central,
                attestation_tag_key=ATTESTATION_TAG_KEY,
                agent_policy_name=agent_policy_name,
            )
            # the central bucket admits only instances writing their own dumps: console
            # output before an interrupt stays in this account (see MemberEvidence)
            dumps = MemberEvidence(self, "Evidence").dumps
        self.crash_dumps: CrashDumpBucket | None = None
        self.triage_job: DumpTriageJob | None = None
        self.dump_overdue_sweep: DumpOverdueSweep | None = None
        if dumps is not None and symbol_store is not None:
            raise ConfigurationError(
                "symbol_store was given with dumps: the triage job runs only for the "
                "crash-dump bucket this stack creates; add DumpTriageJob next to your own "
                "CrashDumpBucket instead"
            )
        if dumps is not None and not isinstance(dumps, ExistingDumpBucket):
            raise ConfigurationError(
                f"dumps={dumps!r}: give ExistingDumpBucket(bucket=..., encryption_key=...) "
                "for a bucket crashcart did not create, or leave it out for a new "
                "CrashDumpBucket in this stack"
            )
        wired: DumpBucket
        if dumps is None:
            wired = self.crash_dumps = CrashDumpBucket(self, "CrashDumps")
        else:
            wired = dumps
        self.evidence_bucket = wired.bucket
        if instance_ids:
            watch: dict[str, Any] = {"instances": list(instance_ids)}
        else:
            watch = {"fleet": fleet or FleetWatch()}
        self.remediation = UnresponsiveInstanceRemediation(
            self,
            "Remediation",
            dumps=wired,
            tag=tag,
            dry_run=dry_run,
            alarm_window=alarm_window,
            guards=guards,
            breaker=breaker,
            notifications=notifications,
            # a member account: every interrupt takes a slot of the organisation breaker and
            # reports to the central bus (docs/organisation/breakers.md)
            organisation=self.central.organisation_link() if self.central else None,
            **watch,
        )
        self.arming: RunningInstanceArming | None = (
            RunningInstanceArming(self, "RunningInstanceArming", opt_in=tag)
            if arm_running_instances
            else None
        )
        #: Termination hooks for the given groups, escalation, and (armed) the backstop.
        self.hold = AutoScalingHold(
            self,
            "Hold",
            remediation=self.remediation,
            groups=[
                autoscaling.AutoScalingGroup.from_auto_scaling_group_name(
                    # ids are a contract: derived from the name, not the list position
                    self,
                    f"Group-{hashlib.sha256(name.encode()).hexdigest()[:12]}",
                    name,
                )
                for name in auto_scaling_group_names
            ],
            # a shadow-mode deployment never interrupts, so it must never reboot either
            backstop=hold_backstop and not dry_run,
        )
        if self.crash_dumps is not None:
            self.crash_dumps.notify_incidents(incidents=self.remediation.incidents)
            if full_triage:
                self.triage_job = DumpTriageJob(
                    self,
                    "TriageJob",
                    dumps=self.crash_dumps,
                    incidents=self.remediation.incidents,
                    symbols=symbol_store,
                )
            self.dump_overdue_sweep = DumpOverdueSweep(
                self,
                "DumpOverdueSweep",
                incidents=self.remediation.incidents,
                encryption_key=self.remediation.key,
                parameter_name=self.crash_dumps.parameter.parameter_name,
                # the census judges attestations as the remediation's guards do; with
                # policy IGNORE nobody relies on them, so there is nothing to watch
                attestation_watch=(
                    None
                    if guards.attestation is AttestationPolicy.IGNORE
                    else AttestationWatch(tag=tag, max_age=guards.attestation_max_age)
                ),
            )
            cdk.CfnOutput(
                self,
                "DumpBucketParameter",
                value=self.crash_dumps.parameter.parameter_name,
                description="SSM parameter the on-instance agent reads the dump bucket from",
            )
        #: A member account: the central account's word that an instance's dump arrived in
        #: the central bucket, recorded on this account's incidents (the hold releases on it).
        self.central_dumps: CentralDumpReceiver | None = None
        if central is not None:
            self.central_dumps = CentralDumpReceiver(
                self,
                "CentralDumps",
                central_account_id=central.central_account,
                incidents=self.remediation.incidents,
            )
        # The kill switch reaches every acting alarm of this stack (tagged at synth) and the
        # alarms the remediation names at run time (by its prefix).
        self.kill_switch_reach = KillSwitchReach(
            self,
            "KillSwitchReach",
            kill_switch=self.remediation.kill_switch,
            topic=self.remediation.topic,
            encryption_key=self.remediation.key,
            alarm_name_prefixes=[self.remediation.alarm_name_prefix],
        )
        self.monitoring = OperationsMonitoring(
            self,
            "Monitoring",
            remediation=self.remediation,
            overdue_sweep=self.dump_overdue_sweep,
            kill_switch_reach=self.kill_switch_reach,
        )
        cdk.CfnOutput(
            self,
            "DashboardName",
            value=self.monitoring.dashboard.dashboard_name,
            description="CloudWatch dashboard of this crashcart deployment",
        )
        cdk.CfnOutput(
            self,
            "RemediationFunctionName",
            value=self.remediation.function.function_name,
            description="Dimension FunctionName of the crashcart metrics (InterruptsDryRun, ...)",
        )
        cdk.CfnOutput(
            self,
            "KillSwitchParameter",
            value=self.remediation.kill_switch.parameter_name,
            description="Set to 'on' to stop every diagnostic interrupt at once",
        )
        cdk.CfnOutput(
            self,
            "TopicArn",
            value=self.remediation.topic.topic_arn,
            description="Subscribe on-call to incident and queue-alarm notifications",
        )
        cdk.CfnOutput(
            self,
            "IncidentTableName",
            value=self.remediation.table.table_name,
            description="Incident records (pk instance#<id>, sk incident#<opened_at>)",
        )
