"""IncidentStore: the incident table, its key and the topic incidents are announced on.

Everything about an incident in one place: the record itself is defined in
:mod:`crashcart.runtime.incident` (keys, states, attributes); this construct deploys where it
lives and says who may write what. The remediation function opens incidents and keeps the
claim and breaker items, dump arrival attaches dumps, the overdue sweep flags late ones and
the triage job adds its report: each gets exactly its writer's rights through a ``grant_*``
method (``*_ACTIONS`` below), and each announces on :attr:`topic`.

Example::

    incidents = IncidentStore(self, "Incidents")
    remediation = UnresponsiveInstanceRemediation(self, "Remediation", incidents=incidents, ...)
    dumps.notify_incidents(incidents=incidents)
    DumpOverdueSweep(self, "Sweep", incidents=incidents)

``UnresponsiveInstanceRemediation`` creates one when it is given none (with the construct id
``Default``, so the table, key and topic keep the logical ids they had when the remediation
construct created them itself: ``<remediation>Incidents…``, ``<remediation>Key…``,
``<remediation>Topic…``).
"""

from __future__ import annotations

from typing import Any, Final

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from constructs import Construct

from crashcart import _props as props
from crashcart.constructs._internal.service_access import allow_alarm_actions
from crashcart.constructs._internal.tables import protected_table
from crashcart.errors import ConfigurationError
from crashcart.runtime.incident import BREAKER_PREFIX, TRIAGE_ATTRIBUTES

__all__ = ["IncidentStore"]

#: The remediation function: the claim transaction (TransactWriteItems is authorized per item
#: as these actions), incident records, the duplicate check and the latest incident.
REMEDIATION_ACTIONS: Final = (
    "dynamodb:ConditionCheckItem",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:Query",
    "dynamodb:UpdateItem",
)
#: Dump arrival: find the instance's latest incident, attach the dump or open a spontaneous one.
DUMP_ARRIVAL_ACTIONS: Final = (
    "dynamodb:Query",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
)
#: The overdue sweep: scan for late incidents, flag them.
SWEEP_ACTIONS: Final = ("dynamodb:Scan", "dynamodb:UpdateItem")
#: The triage job: find the incident that links its dump (read) ...
TRIAGE_READ_ACTIONS: Final = ("dynamodb:Query",)
#: ... and add the report to it (only :data:`~crashcart.runtime.incident.TRIAGE_ATTRIBUTES`).
TRIAGE_WRITE_ACTIONS: Final = ("dynamodb:UpdateItem",)
#: Operators resetting an open circuit breaker (``breaker#`` items only).
BREAKER_RESET_ACTIONS: Final = ("dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:UpdateItem")
#: What DynamoDB needs of a customer-managed table key for reads and writes.
TABLE_KEY_ACTIONS: Final = ("kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey")
#: What sns:Publish to a topic encrypted with a customer key needs of it.
PUBLISH_KEY_ACTIONS: Final = ("kms:Decrypt", "kms:GenerateDataKey")


class IncidentStore(Construct):
    """The incident table (KMS-encrypted, point-in-time recovery, deletion-protected) and topic.

    Attributes: ``table``, ``encryption_key`` (the table's key, and the topic's when this
    construct creates the topic), ``topic``.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        table: dynamodb.ITable | None = None,
        encryption_key: kms.IKey | None = None,
        topic: sns.ITopic | None = None,
        removal_policy: cdk.RemovalPolicy = cdk.RemovalPolicy.RETAIN,
        key_description: str = "crashcart incidents: table and topic",
        topic_display_name: str = "crashcart incidents",
    ) -> None:
        """
        :param table: an incident table of your own (string ``pk`` / ``sk`` keys). Its key,
            if any, is :attr:`encryption_key` (``encryption_key`` is then not allowed and
            ``removal_policy`` does not apply). Default: a new table (below).
        :param encryption_key: the customer KMS key of the table (and of the topic this
            construct creates). Default: a new key with rotation enabled, retained.
        :param topic: the SNS topic incidents are announced on. This account's CloudWatch
            alarms are allowed to publish to it (and use its key); a topic or key imported by
            ARN cannot be changed here, and a synth warning says what its owner must allow.
            Default: a new topic, encrypted with ``encryption_key``, TLS-only.
        :param removal_policy: what happens to the table on removal. Default: RETAIN (the
            table is also deletion-protected).
        :param key_description: the description of a key this construct creates.
            Default: ``crashcart incidents: table and topic``.
        :param topic_display_name: the display name of a topic this construct creates.
            Default: ``crashcart incidents``.
        """
        owner = "IncidentStore"
        props.check(
            owner, "table", table, dynamodb.ITable, example="a dynamodb.Table", optional=True
        )
        props.check_key(owner, encryption_key)
        props.check(
            owner, "topic", topic, sns.ITopic, example="sns.Topic(self, 'Topic')", optional=True
        )
        super().__init__(scope, construct_id)
        if table is not None:
            if encryption_key is not None:
                raise ConfigurationError(
                    "table and encryption_key were both given: a table you bring keeps its own "
                    "key (the store uses table.encryption_key)"
                )
            #: The table's key (None: a table of yours without a customer key).
            self.encryption_key: kms.IKey | None = table.encryption_key
            #: The incident table.
            self.table: dynamodb.ITable = table
        else:
            key = encryption_key or kms.Key(
                self,
                "Key",
                description=key_description,
                enable_key_rotation=True,
                removal_policy=cdk.RemovalPolicy.RETAIN,
            )
            self.encryption_key = key
            self.table = self._new_table(key, removal_policy)
        #: Where incidents (and the alarms on crashcart's queues) are announced.
        self.topic: sns.ITopic = topic or sns.Topic(
            self,
            "Topic",
            display_name=topic_display_name,
            master_key=self.encryption_key,
            enforce_ssl=True,
        )
        # enforce_ssl alone gives the topic a Deny-only policy: SNS would refuse every alarm
        # action. aws-assumption: cloudwatch-alarms-publish-to-topics
        allow_alarm_actions(self, self.topic)

    def _new_table(self, key: kms.IKey, removal_policy: cdk.RemovalPolicy) -> dynamodb.Table:
        return protected_table(
            self,
            "Incidents",
            key=key,
            removal_policy=removal_policy,
            backup_reason="point-in-time recovery (35 days) is on and the table is "
            "deletion-protected and retained; add it to your AWS Backup plan if you keep "
            "longer backups",
        )

    # -- grants, one per kind of writer ----------------------------------------------------

    def grant_remediation(self, grantee: iam.IGrantable) -> iam.Grant:
        """The remediation function's rights on the table (and its key)."""
        return self._grant(grantee, REMEDIATION_ACTIONS)

    def grant_dump_arrival(self, grantee: iam.IGrantable) -> iam.Grant:
        """Dump arrival's rights on the table (and its key)."""
        return self._grant(grantee, DUMP_ARRIVAL_ACTIONS)

    def grant_overdue_sweep(self, grantee: iam.IGrantable) -> iam.Grant:
        """The overdue sweep's rights on the table (and its key)."""
        return self._grant(grantee, SWEEP_ACTIONS)

    def grant_triage(self, grantee: iam.IGrantable) -> iam.Grant:
        """The triage job's rights: find incidents, write its report attributes only (it
        parses untrusted memory images with C code), and use the table's key."""
        self._grant(grantee, TRIAGE_READ_ACTIONS)
        return self._grant(
            grantee,
            TRIAGE_WRITE_ACTIONS,
            conditions={
                # aws-assumption: dynamodb-fine-grained-keys
                "ForAllValues:StringEquals": {"dynamodb:Attributes": list(TRIAGE_ATTRIBUTES)}
            },
        )

    def grant_reset_breaker(self, grantee: iam.IGrantable) -> iam.Grant:
        """Read and reset the circuit-breaker items, and nothing else.

        ``dynamodb:GetItem`` / ``UpdateItem`` / ``DeleteItem`` on the table, only for
        partition keys starting with ``breaker#`` (``dynamodb:LeadingKeys``), plus the table
        key's use.
        """
        return self._grant(
            grantee,
            BREAKER_RESET_ACTIONS,
            conditions={
                # aws-assumption: dynamodb-fine-grained-keys
                "ForAllValues:StringLike": {"dynamodb:LeadingKeys": [f"{BREAKER_PREFIX}*"]},
            },
        )

    def grant_publish(self, grantee: iam.IGrantable) -> iam.Grant:
        """Publish to :attr:`topic` (and use its key, when it has one)."""
        grant = iam.Grant.add_to_principal(
            grantee=grantee, actions=["sns:Publish"], resource_arns=[self.topic.topic_arn]
        )
        if self.topic.master_key is not None:
            self.topic.master_key.grant(grantee, *PUBLISH_KEY_ACTIONS)
        return grant

    # -- metrics ---------------------------------------------------------------------------

    def metric_user_errors(self, **props: Any) -> cloudwatch.Metric:
        """Requests to the table DynamoDB refused as invalid (a writer's bug or its rights)."""
        return self.table.metric_user_errors(**props)

    def metric_throttled_requests(self, **props: Any) -> cloudwatch.Metric:
        """Throttled requests to the table (on-demand: a burst beyond its scaling)."""
        return self.table.metric("ThrottledRequests", statistic="Sum", **props)

    def metric_successful_request_latency(
        self, operation: str = "TransactWriteItems", **props: Any
    ) -> cloudwatch.Metric:
        """Latency of ``operation`` (default: the remediation claim's transaction)."""
        return self.table.metric_successful_request_latency(
            dimensions_map={"TableName": self.table.table_name, "Operation": operation},
            **props,
        )

    def _grant(
        self,
        grantee: iam.IGrantable,
        actions: tuple[str, ...],
        *,
        conditions: dict[str, Any] | None = None,
    ) -> iam.Grant:
        grant = iam.Grant.add_to_principal(
            grantee=grantee,
            actions=list(actions),
            resource_arns=[self.table.table_arn],
            conditions=conditions,
        )
        if self.encryption_key is not None:
            self.encryption_key.grant(grantee, *TABLE_KEY_ACTIONS)
        return grant
