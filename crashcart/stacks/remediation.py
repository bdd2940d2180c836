"""The deployable remediation stack: status-check alarms -> guarded diagnostic interrupts.

By default it watches the whole fleet of its account and region with one Metrics Insights
alarm (no instance needs to exist for the stack to deploy), in dry-run mode. Pass
``instance_ids`` to watch only those instances instead (one alarm each).

The evidence bucket here is a stand-in: a KMS-encrypted, TLS-only, versioned bucket with
access logs. The crash-dump bucket construct replaces it when the reference app wires the
two together (pass ``evidence_bucket`` / ``evidence_key``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from crashcart.constructs._remediation_nag import acknowledge_finding
from crashcart.constructs.unresponsive_instance_remediation import (
    AlarmWindow,
    CircuitBreaker,
    FleetWatch,
    InterruptGuards,
    UnresponsiveInstanceRemediation,
)
from crashcart.opt_in import OptInTag


class CrashcartRemediationStack(cdk.Stack):
    """Alarms, delivery, the remediation function, incident table, topic and kill switch."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        tag: OptInTag = OptInTag(),  # noqa: B008 - frozen value
        instance_ids: Sequence[str] = (),
        fleet: FleetWatch | None = None,
        dry_run: bool = True,
        alarm_window: AlarmWindow = AlarmWindow(),  # noqa: B008 - frozen value
        guards: InterruptGuards = InterruptGuards(),  # noqa: B008 - frozen value
        breaker: CircuitBreaker = CircuitBreaker(),  # noqa: B008 - frozen value
        evidence_bucket: s3.IBucket | None = None,
        evidence_key: kms.IKey | None = None,
        **stack_kwargs: Any,
    ) -> None:
        """Create the stack.

        :param tag: the opt-in tag. Default: ``crashcart:diagnostic-interrupt=enabled``.
        :param instance_ids: watch exactly these instances (they must carry the tag), one
            alarm each. Default: empty: watch the fleet (``fleet``).
        :param fleet: the fleet alarm's settings when ``instance_ids`` is empty.
            Default: ``FleetWatch()`` (500 contributors).
        :param dry_run: shadow mode (``DryRun=True``). Default: True.
        :param alarm_window: Default: 3 of 3 one-minute periods.
        :param guards: Default: ``InterruptGuards()``.
        :param breaker: Default: ``CircuitBreaker()``.
        :param evidence_bucket: bucket for console-output evidence. Default: a new
            KMS-encrypted bucket in this stack (``self.evidence_bucket``).
        :param evidence_key: that bucket's key. Default: the bucket's own key.
        :param stack_kwargs: passed to ``cdk.Stack`` (``env``, ``description``, ...).
        """
        super().__init__(scope, construct_id, **stack_kwargs)
        # Access logs are delivered under a bucket policy, not the log-delivery ACL, whatever
        # the app's feature flags say (BucketOwnerEnforced buckets reject ACLs).
        self.node.set_context("@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy", True)
        if evidence_bucket is None:
            evidence_bucket, evidence_key = self._evidence_bucket()
        self.evidence_bucket = evidence_bucket
        if instance_ids:
            watch: dict[str, Any] = {"instances": list(instance_ids)}
        else:
            watch = {"fleet": fleet or FleetWatch()}
        self.remediation = UnresponsiveInstanceRemediation(
            self,
            "Remediation",
            evidence_bucket=evidence_bucket,
            evidence_key=evidence_key,
            tag=tag,
            dry_run=dry_run,
            alarm_window=alarm_window,
            guards=guards,
            breaker=breaker,
            **watch,
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

    def _evidence_bucket(self) -> tuple[s3.Bucket, kms.Key]:
        key = kms.Key(
            self,
            "EvidenceKey",
            description="crashcart evidence bucket (console output before an interrupt)",
            enable_key_rotation=True,
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        access_logs = s3.Bucket(
            self,
            "EvidenceAccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        bucket = s3.Bucket(
            self,
            "Evidence",
            encryption=s3.BucketEncryption.KMS,
            encryption_key=key,
            bucket_key_enabled=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            server_access_logs_bucket=access_logs,
            server_access_logs_prefix="evidence/",
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        stand_in = (
            "stand-in evidence bucket of the reference stack; the crash-dump bucket "
            "construct replaces it"
        )
        for target, findings in (
            (
                access_logs,
                {
                    "NIST.800.53.R5::NIST.800.53.R5-S3DefaultEncryptionKMS": (
                        "S3 server access logging delivers only to SSE-S3 buckets, not SSE-KMS"
                    ),
                    "HIPAA.Security::HIPAA.Security-S3DefaultEncryptionKMS": (
                        "S3 server access logging delivers only to SSE-S3 buckets, not SSE-KMS"
                    ),
                    "PCI.DSS.321::PCI.DSS.321-S3DefaultEncryptionKMS": (
                        "S3 server access logging delivers only to SSE-S3 buckets, not SSE-KMS"
                    ),
                },
            ),
            (bucket, {}),
        ):
            for finding, reason in findings.items():
                acknowledge_finding(target, finding, reason)
        for target in (access_logs, bucket):
            for pack in ("NIST.800.53.R5", "HIPAA.Security", "PCI.DSS.321"):
                acknowledge_finding(
                    target,
                    f"{pack}::{pack}-S3BucketReplicationEnabled",
                    f"{stand_in}; evidence is per-region by design (instances, alarms and "
                    "incidents are regional), cross-region replication is the user's choice",
                )
        return bucket, key
