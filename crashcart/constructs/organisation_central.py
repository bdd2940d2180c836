"""OrganisationCentral: an AWS Organization's central account, one per Region.

It holds what every member account shares (docs/organisation/central.md): one crash-dump
bucket (bucket owner enforced, its own KMS key; members write only under
``dumps/<their account>/<role id>:<instance id>/`` and never read), one EventBridge bus that
takes only crashcart incident updates and only from the organisation, the central incident
view (one table, one topic) fed by that bus and by the bucket's dump arrivals, and the
Region's organisation breaker (``OrganisationBreaker``). Its outputs are the values of the
member stacks' ``CentralRegion`` for this Region. The triage job
and the symbol store attach to it as in one account::

    central = OrganisationCentral(self, "Central", organisation_id="o-a1b2c3d4e5")
    symbols = DebugSymbolStore(self, "Symbols")
    DumpTriageJob(self, "Triage", dumps=central.dumps, incidents=central.incidents,
                  symbols=symbols)

The member side (the agent's ``CRASHCART_DUMP_LAYOUT=account``, the instance role's
statements from :func:`member_upload_statements`, the remediation's incident events) is
deployed into the member accounts (``OrganisationRollout``).
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from crashcart import _props as props
from crashcart.compliance import skip_checkov
from crashcart.constructs._crash_dump_settings import DumpLifecycle
from crashcart.constructs._internal import organisation_policies
from crashcart.constructs._internal.incident_view import incident_view
from crashcart.constructs._internal.organisation_policies import (
    member_upload_statements as member_upload_statements,
)
from crashcart.constructs.crash_dump_bucket import CrashDumpBucket
from crashcart.constructs.incident_store import IncidentStore
from crashcart.constructs.organisation_breaker import OrganisationBreaker
from crashcart.errors import ConfigurationError
from crashcart.runtime.organisation import ORGANISATION_ID

__all__ = ["OrganisationCentral", "member_upload_statements"]

#: The SSM parameter holding the central bucket's name in the central account.
CENTRAL_PARAMETER_NAME = "/crashcart/central-dump-bucket"


def check_organisation_id(value: object) -> str:
    """An organisation id (``o-`` and 10-32 lower-case letters or digits), or a clear error."""
    if isinstance(value, str) and cdk.Token.is_unresolved(value):
        return value
    if not isinstance(value, str) or not ORGANISATION_ID.fullmatch(value):
        raise ConfigurationError(
            f"organisation_id={value!r}: give the AWS Organizations id, 'o-' followed by 10 "
            "to 32 lower-case letters or digits (aws organizations describe-organization); "
            "every bucket, key and bus policy of the central account admits exactly that "
            "organisation's principals"
        )
    return value


class OrganisationCentral(Construct):
    """The central account's shared parts for one Region (see the module docstring).

    Attributes: ``dumps`` (the :class:`CrashDumpBucket`: ``bucket``, ``encryption_key``),
    ``incidents`` (the :class:`IncidentStore`: ``table``, ``topic``), ``bus``,
    ``incident_view_function``, ``failed_events_queue``, ``undelivered_queue``,
    ``update_rule``, ``dump_rule``, ``alarms``.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        organisation_id: str,
        topic: sns.ITopic | None = None,
        lifecycle: DumpLifecycle | None = None,
        attach_window: cdk.Duration | None = None,
        parameter_name: str = CENTRAL_PARAMETER_NAME,
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_YEAR,
        removal_policy: cdk.RemovalPolicy = cdk.RemovalPolicy.RETAIN,
    ) -> None:
        """
        :param organisation_id: the AWS Organizations id (``o-...``) whose principals may
            write dumps, use the dump key and put incident updates; no other principal
            outside this account may do anything.
        :param topic: where the central view announces incident updates, dump arrivals and
            its failure alarms. Default: a new topic encrypted with the incident table's key.
        :param lifecycle: transition / expiry of the central dumps. Default:
            ``DumpLifecycle()`` (as an account's own dump bucket).
        :param attach_window: a dump is linked to its instance's latest incident opened at
            most this long before it arrived; otherwise it opens a ``spontaneous`` one.
            Default: 6 hours.
        :param parameter_name: the SSM parameter holding the central bucket's name (in the
            central account). Default: ``/crashcart/central-dump-bucket``.
        :param log_retention: how long the incident view's logs are kept. Default: one year.
        :param removal_policy: what happens to the bucket, its key and the incident table on
            stack deletion. Default: RETAIN (dumps and incidents are evidence).
        :raises ConfigurationError: a malformed organisation id or a prop of the wrong type.
        """
        owner = "OrganisationCentral"
        check_organisation_id(organisation_id)
        props.check(owner, "topic", topic, sns.ITopic, example="an sns.Topic", optional=True)
        props.check(
            owner,
            "lifecycle",
            lifecycle,
            DumpLifecycle,
            example="DumpLifecycle(expire_after=cdk.Duration.days(90))",
            optional=True,
        )
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        #: The organisation whose principals the policies admit.
        self.organisation_id = organisation_id

        #: The central dump bucket (SSE-KMS with its own key, owner enforced, TLS only):
        #: the central account owns every member's object.
        # aws-assumption: org-bucket-owner-enforced-cross-account-writes
        self.dumps = CrashDumpBucket(
            self,
            "Dumps",
            lifecycle=lifecycle,
            parameter_name=parameter_name,
            removal_policy=removal_policy,
        )
        self.bucket: s3.Bucket = self.dumps.bucket
        for statement in organisation_policies.bucket_statements(self.bucket, organisation_id):
            self.bucket.add_to_resource_policy(statement)
        self.dumps.encryption_key.add_to_resource_policy(
            organisation_policies.key_statement(stack, self.dumps.encryption_key, organisation_id)
        )
        skip_checkov(
            self.dumps.encryption_key,
            "CKV_AWS_33",
            "the one '*' principal statement admits only principals of the organisation "
            "(aws:PrincipalOrgID), only kms:GenerateDataKey / kms:Decrypt, only through S3 in "
            "this Region (kms:ViaService) and only for objects under the caller's own "
            "account prefix (encryption context): how members encrypt the dumps they ship",
        )

        #: The central incident table and topic.
        self.incidents = IncidentStore(
            self,
            "Incidents",
            topic=topic,
            removal_policy=removal_policy,
            key_description="crashcart organisation incidents: table and topic",
            topic_display_name="crashcart organisation incidents",
        )

        #: The central bus: crashcart incident updates from the organisation, nothing else.
        self.bus = events.EventBus(
            self, "Bus", description="crashcart: incident updates of the organisation"
        )
        self.bus.add_to_resource_policy(
            organisation_policies.bus_statement(self.bus, organisation_id)
        )

        view = incident_view(
            Construct(self, "IncidentView"),
            bus=self.bus,
            bucket=self.bucket,
            incidents=self.incidents,
            window=attach_window or cdk.Duration.hours(6),
            log_retention=log_retention,
        )
        self.incident_view_function: lambda_.Function = view.function
        self.failed_events_queue: sqs.Queue = view.failed
        self.undelivered_queue: sqs.Queue = view.undelivered
        self.update_rule: events.Rule = view.update_rule
        self.dump_rule: events.Rule = view.dump_rule
        self.alarms: list[cloudwatch.Alarm] = view.alarms

        #: The organisation breaker of this Region: the one shared item every member's
        #: remediation takes a slot from before it interrupts (docs/organisation/breakers.md).
        self.breaker = OrganisationBreaker(
            self, "Breaker", organisation_id=organisation_id, removal_policy=removal_policy
        )
        self._outputs(stack)

    def _outputs(self, stack: cdk.Stack) -> None:
        """What a member stack's ``CentralRegion`` needs, as this stack's outputs."""
        for output_id, value, what in (
            ("DumpBucketName", self.bucket.bucket_name, "dump_bucket_name"),
            ("DumpKeyArn", self.dumps.encryption_key.key_arn, "dump_key_arn"),
            ("EventBusArn", self.bus.event_bus_arn, "event_bus_arn"),
            ("BreakerTableArn", self.breaker.table.table_arn, "breaker_table_arn"),
            ("BreakerKeyArn", self.breaker.encryption_key.key_arn, "breaker_key_arn"),
        ):
            cdk.CfnOutput(
                self,
                output_id,
                value=value,
                description=f"CentralRegion({what}=...) of the member stacks in {stack.region}",
            )

    def grant_read(self, analyst: iam.IRole | iam.IUser | iam.IGroup) -> iam.ManagedPolicy:
        """Read the central dumps (analysts of the central account): see
        :meth:`CrashDumpBucket.grant_read`."""
        return self.dumps.grant_read(analyst)
