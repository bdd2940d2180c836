"""CrashDumpBucket: the encrypted bucket crash dumps are shipped to, and what happens on arrival.

Crash dumps are memory images: they hold keys, secrets and personal data. The bucket is
encrypted with a customer-managed KMS key, TLS-only, private, versioned and logged. An
instance can only *create* objects under its own prefix ``dumps/<role id>:<instance id>/``
(``${aws:userid}`` of an instance-profile session), never overwrite one, and never read, list
or delete anything: the bucket policy denies it even though the key grant (multipart uploads
to a KMS bucket need ``kms:Decrypt``) would otherwise allow reads.

This module is the construct; its parts live under ``_internal/``: the hardened bucket and
its log bucket (``buckets``), the grants' policies (``dump_bucket_iam``) and the dump-arrival
function with its queues, rule and alarms (``dump_arrival``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from crashcart import _props as props
from crashcart.compliance import acknowledge
from crashcart.constructs._crash_dump_settings import (
    DumpLifecycle,
    check_object_lock,
    check_parameter_name,
)
from crashcart.constructs._internal import dump_bucket_iam
from crashcart.constructs._internal.buckets import (
    access_logs_by_bucket_policy,
    acknowledge_no_replication,
    data_key,
    logged_data_bucket,
)
from crashcart.constructs._internal.dump_arrival import dump_arrival

# The policy variables stay importable from here, as before the split.
from crashcart.constructs._internal.dump_bucket_iam import (
    INSTANCE_ID_VARIABLE as INSTANCE_ID_VARIABLE,
)
from crashcart.constructs._internal.dump_bucket_iam import USERID_VARIABLE as USERID_VARIABLE
from crashcart.constructs._internal.lambda_functions import (
    check_reserved_concurrency,
)
from crashcart.constructs.incident_store import IncidentStore
from crashcart.errors import ConfigurationError
from crashcart.runtime.attestation import ATTESTATION_TAG_KEY
from crashcart.runtime.dumps import (
    DEFAULT_PARAMETER_NAME,
    DUMPS_PREFIX,
    EVIDENCE_PREFIX,
    REPORTS_PREFIX,
)

__all__ = ["ATTESTATION_TAG_KEY", "CrashDumpBucket", "DumpLifecycle"]


class CrashDumpBucket(Construct):
    """The KMS-encrypted crash-dump bucket with write-only per-instance prefixes.

    Example::

        dumps = CrashDumpBucket(self, "Dumps")
        dumps.grant_agent(instance_role)              # the on-instance crashcart agent
        dumps.grant_read(analyst_role)                # people who triage
        dumps.notify_incidents(incidents=remediation.incidents)
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        encryption_key: kms.IKey | None = None,
        lifecycle: DumpLifecycle | None = None,
        object_lock_retention: s3.ObjectLockRetention | None = None,
        parameter_name: str = DEFAULT_PARAMETER_NAME,
        attestation_tag_key: str = ATTESTATION_TAG_KEY,
        instance_roles: Sequence[iam.IRole] = (),
        removal_policy: cdk.RemovalPolicy = cdk.RemovalPolicy.RETAIN,
    ) -> None:
        """
        :param encryption_key: the KMS key for dumps (and the dump-arrival queue and logs).
            Default: a new customer-managed key with yearly rotation, retained on delete.
        :param lifecycle: transition / expiry / abort-multipart settings.
            Default: ``DumpLifecycle()`` - Glacier Instant Retrieval after 30 days, deleted
            after 365 days, incomplete multipart uploads aborted after 7 days.
        :param object_lock_retention: object lock default retention (WORM) for dumps kept as
            evidence. Default: no object lock (versioning still keeps every version).
        :param parameter_name: the SSM String parameter holding the bucket name, read by the
            agent at run time (one AMI serves many accounts). Default: ``/crashcart/dump-bucket``.
        :param attestation_tag_key: the instance tag the agent may write on its own instance.
            Default: ``crashcart:kdump-attestation`` (what the remediation function reads).
        :param instance_roles: instance roles to :meth:`grant_agent` right away.
            Default: none; call :meth:`grant_agent` later.
        :param removal_policy: what happens to the bucket (and a created key) on stack
            deletion. Default: RETAIN - dumps are evidence.
        :raises ConfigurationError: a prop of the wrong type, or an invalid setting.
        """
        owner = "CrashDumpBucket"
        props.check_key(owner, encryption_key, key_id="DumpKey")
        props.check(
            owner,
            "lifecycle",
            lifecycle,
            DumpLifecycle,
            example="DumpLifecycle(expire_after=cdk.Duration.days(90))",
            optional=True,
        )
        props.check_sequence(
            owner,
            "instance_roles",
            instance_roles,
            lambda name, role: props.check(owner, name, role, iam.IRole, example="an iam.Role"),
            what="iam.IRole",
        )
        super().__init__(scope, construct_id)
        access_logs_by_bucket_policy(self)
        lifecycle = lifecycle or DumpLifecycle()
        check_parameter_name(parameter_name)
        if object_lock_retention is not None:
            duration = object_lock_retention.duration
            check_object_lock(
                None
                if cdk.Token.is_unresolved(duration.to_string())
                else duration.to_days(integral=False),
                lifecycle,
            )
        if not attestation_tag_key or attestation_tag_key.lower().startswith("aws:"):
            raise ConfigurationError(
                f"attestation_tag_key={attestation_tag_key!r}: give a non-empty tag key "
                "that does not start with the reserved 'aws:' prefix"
            )
        self.attestation_tag_key = attestation_tag_key
        self._stack = cdk.Stack.of(self)
        self._key_is_ours = encryption_key is None

        #: The KMS key dumps are encrypted with.
        self.encryption_key: kms.IKey = encryption_key or data_key(
            self,
            "Key",
            description="crashcart crash dumps (memory images of instances)",
            removal_policy=removal_policy,
        )

        #: The crash-dump bucket, and its server access log bucket (SSE-S3: access logging
        #: cannot deliver to SSE-KMS).
        self.access_logs_bucket, self.bucket = logged_data_bucket(
            self,
            key=self.encryption_key,
            log_expiration=lifecycle.expire_after,
            access_logs_prefix="dump-bucket/",
            object_lock_retention=object_lock_retention,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="dumps-transition-then-expire",
                    transitions=[
                        s3.Transition(
                            storage_class=lifecycle.storage_class,
                            transition_after=lifecycle.transition_after,
                        )
                    ],
                    expiration=lifecycle.expire_after,
                    noncurrent_version_expiration=cdk.Duration.days(30),
                    abort_incomplete_multipart_upload_after=(
                        lifecycle.abort_incomplete_multipart_after
                    ),
                )
            ],
            removal_policy=removal_policy,
        )
        # EventBridge notifications through the native CloudFormation property (CDK's
        # event_bridge_enabled adds a notifications custom resource with its own Lambda).
        cfn_bucket = self.bucket.node.default_child
        assert isinstance(cfn_bucket, s3.CfnBucket)
        # S3 -> the account's default event bus needs no resource policy (unlike a topic,
        # queue or function destination).
        # aws-assumption: s3-eventbridge-notifications-need-no-policy
        cfn_bucket.add_property_override(
            "NotificationConfiguration.EventBridgeConfiguration.EventBridgeEnabled", True
        )
        acknowledge_no_replication(
            (self.bucket, self.access_logs_bucket),
            "crash dumps are diagnostic copies with a bounded lifetime; cross-region "
            "replication would duplicate memory images; versioning protects them",
        )

        #: The SSM parameter holding the bucket name (read by the agent at run time).
        self.parameter = ssm.StringParameter(
            self,
            "BucketNameParameter",
            parameter_name=parameter_name,
            string_value=self.bucket.bucket_name,
            description="crashcart: the crash-dump bucket the on-instance agent ships to",
        )

        #: Set by :meth:`notify_incidents`.
        self.dump_arrival_function: lambda_.Function | None = None
        self.dump_arrival_queue: sqs.Queue | None = None
        self.dump_arrival_undelivered_queue: sqs.Queue | None = None
        self.dump_arrival_rule: events.Rule | None = None
        self.dump_arrival_alarms: list[cloudwatch.Alarm] = []
        #: Customer-managed policies attached by :meth:`grant_instance_upload` and
        #: :meth:`grant_agent` (one each, shared by every instance role).
        self.upload_policy: iam.ManagedPolicy | None = None
        self.agent_policy: iam.ManagedPolicy | None = None
        self.read_policy: iam.ManagedPolicy | None = None
        self._upload_roles: set[str] = set()
        self._logs_may_use_key = False
        for role in instance_roles:
            self.grant_agent(role)

    # ------------------------------------------------------------------ grants

    @property
    def dumps_arn_pattern(self) -> str:
        """ARN pattern of every dump object."""
        return self.bucket.arn_for_objects(f"{DUMPS_PREFIX}*")

    @property
    def own_prefix_arn(self) -> str:
        """ARN pattern of one instance session's own objects (policy variable inside)."""
        return self.bucket.arn_for_objects(f"{DUMPS_PREFIX}{USERID_VARIABLE}/*")

    def grant_instance_upload(self, role: iam.IRole) -> iam.ManagedPolicy:
        """Let instances with ``role`` create objects under their own prefix, and nothing else.

        Identity policy: ``s3:PutObject`` on ``dumps/${aws:userid}/*`` and the KMS actions an
        (multipart) upload needs, only through S3 and only for objects under ``dumps/``.
        Bucket policy (the enforcement): for this role, deny every S3 action but
        ``s3:PutObject``; deny ``s3:PutObject`` outside ``dumps/${aws:userid}/``, without
        ``If-None-Match`` on object-creating requests (never overwrite), and for sessions
        that are not an EC2 instance profile's.
        """
        policy = self._upload_policy()
        if role.node.addr in self._upload_roles:
            return policy  # already granted: the statements exist once per role
        self._upload_roles.add(role.node.addr)
        statements = dump_bucket_iam.upload_deny_statements(self, role)
        for statement in statements:
            self.bucket.add_to_resource_policy(statement)
        policy.attach_to_role(role)
        return policy

    def _upload_policy(self) -> iam.ManagedPolicy:
        if self.upload_policy is None:
            self.upload_policy = dump_bucket_iam.upload_policy(self)
        return self.upload_policy

    def grant_agent(self, role: iam.IRole) -> None:
        """Everything the on-instance crashcart agent needs, and no more.

        - :meth:`grant_instance_upload` (write-only, own prefix, never overwrite);
        - ``ssm:GetParameter`` on the bucket-name parameter;
        - ``ec2:CreateTags`` on its own instance only (the request's
          ``ec2:SourceInstanceARN`` must be the ARN of the instance being tagged, named by
          the ``${ec2:InstanceId}`` policy variable), only for the attestation tag key.
        """
        self.grant_instance_upload(role)
        if self.agent_policy is None:
            self.agent_policy = dump_bucket_iam.agent_policy(self)
        self.agent_policy.attach_to_role(role)

    def grant_read(self, analyst: iam.IRole | iam.IUser | iam.IGroup) -> iam.ManagedPolicy:
        """Read and list dumps and evidence (analysts, triage jobs), with KMS decrypt.

        One customer-managed policy (``self.read_policy``) shared by every reader:
        ``s3:GetObject`` / ``s3:GetObjectVersion`` / ``s3:GetObjectAttributes`` on the
        bucket's objects, ``s3:ListBucket`` on the bucket, ``kms:Decrypt`` through S3.
        """
        if self.read_policy is None:
            self.read_policy = dump_bucket_iam.read_policy(self)
        # jsii interfaces are not runtime-checkable protocols: tell them apart by attribute.
        if hasattr(analyst, "role_arn"):
            self.read_policy.attach_to_role(cast(iam.IRole, analyst))
        elif hasattr(analyst, "user_arn"):
            self.read_policy.attach_to_user(cast(iam.IUser, analyst))
        else:
            self.read_policy.attach_to_group(analyst)
        return self.read_policy

    def grant_evidence_write(self, grantee: iam.IGrantable) -> iam.Grant:
        """Write evidence objects under ``evidence/`` (the remediation function)."""
        grant = iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["s3:PutObject"],
            resource_arns=[self.bucket.arn_for_objects(f"{EVIDENCE_PREFIX}*")],
        )
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["kms:GenerateDataKey", "kms:Encrypt"],
            resource_arns=[self.encryption_key.key_arn],
        )
        return grant

    # ------------------------------------------------------------------ arrival

    def notify_incidents(
        self,
        *,
        incidents: IncidentStore,
        attach_window: cdk.Duration | None = None,
        reserved_concurrency: int | None = None,
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_YEAR,
    ) -> lambda_.Function:
        """Create the dump-arrival function: new ``metadata.json`` -> incident + notification.

        Every failure ends in a queue that alarms on the incident topic: events EventBridge
        could not deliver to the function go to ``dump_arrival_undelivered_queue`` (encrypted with a
        key of its own: the dump key never trusts EventBridge), events the function failed
        on after Lambda's retries go to ``dump_arrival_queue``; an alarm on each notifies on
        every new message, and one more notifies when EventBridge could not even put an
        event into the dead-letter queue (``dump_arrival_alarms``).

        :param incidents: the incident store (``UnresponsiveInstanceRemediation.incidents``):
            dumps are attached to its incidents; "dump received" notifications and the
            failure alarms go to its topic. This account's alarms are allowed to publish to
            it (and to use its key); a topic or key imported by ARN must allow that itself (a
            synth warning says so).
        :param attach_window: a dump is linked to the instance's latest incident when that
            incident was opened at most this long before the dump arrived and has no dump
            yet; otherwise the dump opens a new ``spontaneous`` incident. Default: 6 hours
            (longer than any dump deadline: a late dump still joins its incident).
        :param reserved_concurrency: reserve this many concurrent executions (1-1000) for
            the function, which also caps it (e.g. 2 bounds what a flood of metadata
            objects from a compromised instance can cost). Default: None, no reservation:
            a reservation fails the deploy in accounts with a small concurrency quota.
        :param log_retention: how long the function's logs are kept. Default: one year.
        """
        owner = "CrashDumpBucket.notify_incidents"
        props.check(owner, "incidents", incidents, IncidentStore, example="remediation.incidents")
        if self.dump_arrival_function is not None:
            raise ConfigurationError(
                "notify_incidents() was already called on this CrashDumpBucket: one "
                "dump-arrival function per bucket"
            )
        check_reserved_concurrency(reserved_concurrency)
        window = attach_window or cdk.Duration.hours(6)
        scope = Construct(self, "DumpArrival")

        arrival = dump_arrival(
            self,
            scope,
            incidents=incidents,
            window=window,
            reserved_concurrency=reserved_concurrency,
            log_retention=log_retention,
        )
        self.dump_arrival_function = arrival.function
        self.dump_arrival_queue = arrival.queue
        self.dump_arrival_undelivered_queue = arrival.undelivered
        self.dump_arrival_rule = arrival.rule
        self.dump_arrival_alarms = arrival.alarms
        return arrival.function

    # ------------------------------------------------------------------ helpers

    def log_group(
        self, scope: Construct, construct_id: str, *, retention: logs.RetentionDays, holds: str
    ) -> logs.LogGroup:
        """A log group for a function or job of this bucket, encrypted with the dump key.

        With a key this construct created, CloudWatch Logs is allowed to use it for this
        account's log groups (one key-policy statement, added once). A key given by the
        caller cannot be extended here: the log group then uses CloudWatch's own
        encryption, acknowledged with ``holds`` (what the log contains) as the reason.
        """
        log_group = logs.LogGroup(
            scope,
            construct_id,
            retention=retention,
            encryption_key=self.encryption_key if self._key_is_ours else None,
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        if not self._key_is_ours:
            for pack in ("NIST.800.53.R5", "HIPAA.Security", "PCI.DSS.321"):
                acknowledge(
                    log_group,
                    f"{pack}::{pack}-CloudWatchLogGroupEncrypted",
                    "the dump key was given by the caller and its key policy cannot be "
                    f"extended here; the log holds {holds}",
                )
        elif not self._logs_may_use_key:
            self._logs_may_use_key = True
            self.encryption_key.add_to_resource_policy(
                iam.PolicyStatement(
                    actions=[
                        "kms:Encrypt*",
                        "kms:Decrypt*",
                        "kms:ReEncrypt*",
                        "kms:GenerateDataKey*",
                        "kms:Describe*",
                    ],
                    principals=[iam.ServicePrincipal(f"logs.{self._stack.region}.amazonaws.com")],
                    resources=["*"],
                    conditions={
                        "ArnLike": {
                            # aws-assumption: logs-regional-principal-key-policy
                            "kms:EncryptionContext:aws:logs:arn": self._stack.format_arn(
                                service="logs",
                                resource="log-group",
                                resource_name="*",
                                arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
                            )
                        }
                    },
                )
            )
        return log_group

    @property
    def reports_arn_pattern(self) -> str:
        """ARN pattern of every full triage report (``reports/``; instances cannot write it)."""
        return self.bucket.arn_for_objects(f"{REPORTS_PREFIX}*")
