"""CanaryCrashDrill: a canary crash drill gates every AMI the pipeline publishes.

A Step Functions state machine (:mod:`~crashcart.constructs._internal.canary_drill_definition`)
launches one canary per instance type from the candidate AMI, waits until it is armed, hangs
it for real (the drill's hang module, through SSM Run Command) so that the alarm, the guards
and the interrupt run unchanged, waits for the dump and its summary, requires the NMI panic,
terminates the canary on every path, and promotes the AMI (the verified parameter and an AMI
tag) when every type passed. It starts when the pipeline writes the candidate parameter, on a
schedule against the verified AMI, and on demand (``aws stepfunctions start-execution``).

Everything about the drill's IAM is here: the function may launch only instances tagged as
this drill's canaries from AMIs of this pipeline, and terminate only instances so tagged; the
state machine may terminate only those too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_ssm as ssm
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from crashcart import _props as props
from crashcart.constructs._internal.canary_drill_acknowledgements import (
    acknowledge_canary_drill,
)
from crashcart.constructs._internal.canary_drill_definition import definition
from crashcart.constructs._internal.canary_drill_iam import drill_statements, machine_statements
from crashcart.constructs._internal.canary_drill_validation import (
    bounded_seconds as _seconds,
)
from crashcart.constructs._internal.canary_drill_validation import (
    check_instance_types,
    check_pipeline,
)
from crashcart.constructs._internal.canary_hang_document import hang_document
from crashcart.constructs._internal.function_code import FunctionPackage
from crashcart.constructs._internal.secure_function import (
    function_parts,
    python_function,
    rule_target,
    send_failures_to,
)
from crashcart.constructs._internal.service_access import failure_queue_alarm
from crashcart.constructs._internal.service_key import logs_and_rules_key
from crashcart.constructs.incident_store import IncidentStore
from crashcart.constructs.kdump_image_pipeline import PIPELINE_TAG, KdumpImagePipeline
from crashcart.errors import ConfigurationError
from crashcart.opt_in import OptInTag
from crashcart.runtime import environment as variables

__all__ = ["DEFAULT_INSTANCE_TYPES", "CanaryCrashDrill"]

#: One small and one large-memory x86_64 Nitro type: the capture kernel's reservation is most
#: likely to be too small on the large one.
DEFAULT_INSTANCE_TYPES: Final = ("m7i.large", "r7i.2xlarge")
CANARY_DRILL: Final = FunctionPackage("canary_drill")
_PACKS = ("NIST.800.53.R5", "HIPAA.Security", "PCI.DSS.321")
_MAX_TYPES = 10
#: Canaries drilled at once (below the remediation's default zone-breaker threshold of 3).
_CONCURRENT_CANARIES = 2


class CanaryCrashDrill(Construct):
    """Prove each candidate AMI's kdump path on real instances before it is promoted.

    Example::

        CanaryCrashDrill(
            self,
            "CanaryDrill",
            pipeline=images.pipeline,
            incidents=remediation.incidents,
            subnet=vpc.private_subnets[0],
            instance_role=workload_instance_role,
            dump_bucket=dumps.bucket,
        )
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        pipeline: KdumpImagePipeline,
        incidents: IncidentStore,
        subnet: ec2.ISubnet,
        vpc: ec2.IVpc,
        instance_role: iam.IRole,
        dump_bucket: s3.IBucket | None = None,
        instance_types: Sequence[str] = DEFAULT_INSTANCE_TYPES,
        tag: OptInTag | None = None,
        boot_timeout: cdk.Duration | None = None,
        boot_grace: cdk.Duration | None = None,
        dump_timeout: cdk.Duration | None = None,
        poll_interval: cdk.Duration | None = None,
        max_canary_lifetime: cdk.Duration | None = None,
        redrill_schedule: events.Schedule | None = None,
        verified_parameter_name: str | None = None,
        encryption_key: kms.IKey | None = None,
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_YEAR,
    ) -> None:
        """
        :param pipeline: the pipeline whose candidates are drilled; only AMIs carrying its
            ``crashcart:pipeline`` tag may be launched. Its candidates must stay in this
            account and Region until they pass (no shared distribution).
        :param incidents: the remediation's incident store: the drill reads the canary's
            incident (interrupt, dump, summary) and notifies its topic.
        :param subnet: where canaries run; it needs a route to SSM, EC2 and S3 (NAT or VPC
            endpoints). Canaries get no public address and a security group with no inbound rule.
        :param vpc: the subnet's VPC (for the security group).
        :param instance_role: the role of the crashcart instance profile your workloads use
            (the agent attests with it and ships dumps with it); the canaries get a profile
            of it. It needs ``AmazonSSMManagedInstanceCore`` for the hang command.
        :param dump_bucket: the crash-dump bucket; when given, the drill records each dump's
            size (a listing of the dump's folder, no object read). Default: no size.
        :param instance_types: the matrix, 1 to 10 x86_64 types. Default: ``m7i.large`` and
            ``r7i.2xlarge`` (8 GiB and 64 GiB).
        :param tag: the opt-in tag of the remediation. Default: ``OptInTag()``.
        :param boot_timeout: launch to armed (checks passed, agent attested). Default: 20 min.
        :param boot_grace: the remediation's ``InterruptGuards.boot_grace``: the canary is
            hung only a minute after it, or that guard skips the interrupt. Default: 15 minutes
            (the guard's default).
        :param dump_timeout: hang to dump with summary. Default: 40 min (alarm 3 min, the
            remediation's guards, the dump and the reboot, the upload).
        :param poll_interval: how often a wait looks. Default: 1 minute.
        :param max_canary_lifetime: the janitor terminates any canary older than this, whatever
            its execution did. Default: 3 hours.
        :param redrill_schedule: re-drill the verified AMI (no promotion; a failure notifies).
            Default: weekly, Mondays 06:00 UTC.
        :param verified_parameter_name: the SSM parameter that names the newest verified AMI
            (consumers read this one, not the candidate). Default: the candidate parameter's
            name with ``/verified`` in place of ``/candidate``.
        :param encryption_key: the key of the drill table, logs and queue. Default: a new key.
        :param log_retention: how long the function's and the state machine's logs are kept.
        """
        owner = "CanaryCrashDrill"
        props.check(owner, "pipeline", pipeline, KdumpImagePipeline, example="images.pipeline")
        props.check(owner, "incidents", incidents, IncidentStore, example="remediation.incidents")
        super().__init__(scope, construct_id)
        check_pipeline(pipeline)
        types = check_instance_types(instance_types, limit=_MAX_TYPES)
        boot = _seconds("boot_timeout", boot_timeout or cdk.Duration.minutes(20), 300, 3600)
        dump = _seconds("dump_timeout", dump_timeout or cdk.Duration.minutes(40), 600, 7200)
        poll = _seconds("poll_interval", poll_interval or cdk.Duration.minutes(1), 10, 600)
        hang_after = 60 + _seconds("boot_grace", boot_grace or cdk.Duration.minutes(15), 0, 3600)
        wait_armed = max(boot, hang_after)
        lifetime = _seconds(
            "max_canary_lifetime", max_canary_lifetime or cdk.Duration.hours(3), 3600, 86400
        )
        if lifetime < wait_armed + dump + 600:
            raise ConfigurationError(
                f"max_canary_lifetime={lifetime} s: give at least boot_timeout (or boot_grace "
                f"+ 1 minute) + dump_timeout + 10 minutes ({wait_armed + dump + 600} s), or the "
                "janitor ends canaries mid-drill"
            )
        tag = tag or OptInTag()
        candidate = pipeline.candidate_ami_parameter_name
        self.verified_parameter_name = verified_parameter_name or (
            candidate.rsplit("/", 1)[0] + "/verified"
            if candidate.endswith("/candidate")
            else candidate + "-verified"
        )
        pipeline_tag_value = pipeline.ami_tags[PIPELINE_TAG]
        #: The value of ``crashcart:drill-canary`` on this drill's canaries.
        self.canary_tag_value = cdk.Names.unique_id(self)[-60:]
        stack = cdk.Stack.of(self)

        #: The key of the drill table, the logs and the queue.
        self.encryption_key: kms.IKey = encryption_key or logs_and_rules_key(
            self, "Key", description="crashcart canary drill: table, logs and queue"
        )
        #: One lock per AMI (one drill at a time) and every drill's result.
        self.table = dynamodb.Table(
            self,
            "Table",
            partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name="sk", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
            encryption_key=self.encryption_key,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            time_to_live_attribute="expires_at",
            deletion_protection=True,
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        #: The canaries' security group: no inbound rule at all.
        self.security_group = ec2.SecurityGroup(
            self,
            "CanarySecurityGroup",
            vpc=vpc,
            description="crashcart canary drill: no inbound; outbound for SSM, EC2 and S3",
            allow_all_outbound=True,
        )
        self.instance_profile = iam.InstanceProfile(self, "CanaryProfile", role=instance_role)
        #: The hang command (the drill's hang module).
        self.hang_document = ssm.CfnDocument(
            self,
            "HangDocument",
            document_type="Command",
            content=hang_document(),
            update_method="NewVersion",
        )
        self.dead_letter_queue, self.log_group, self.role = function_parts(
            self,
            key=self.encryption_key,
            queue_id="DeadLetterQueue",
            queue_holds="this queue is itself the on-failure store of the janitor",
            retention=log_retention,
            role_description="crashcart canary drill steps",
        )
        self.function = python_function(
            self,
            CANARY_DRILL,
            role=self.role.without_policy_updates(),
            description="crashcart: canary crash drill steps and janitor",
            timeout=cdk.Duration.seconds(90),
            log_group=self.log_group,
            environment={
                variables.DRILL_TABLE_NAME: self.table.table_name,
                variables.TABLE_NAME: incidents.table.table_name,
                variables.TOPIC_ARN: incidents.topic.topic_arn,
                variables.DRILL_SUBNET_ID: subnet.subnet_id,
                variables.DRILL_SECURITY_GROUP_ID: self.security_group.security_group_id,
                variables.DRILL_INSTANCE_PROFILE_ARN: self.instance_profile.instance_profile_arn,
                variables.DRILL_HANG_DOCUMENT: self.hang_document.ref,
                variables.DRILL_CANDIDATE_PARAMETER: candidate,
                variables.DRILL_VERIFIED_PARAMETER: self.verified_parameter_name,
                variables.DRILL_PIPELINE_TAG_VALUE: pipeline_tag_value,
                variables.DRILL_CANARY_TAG_VALUE: self.canary_tag_value,
                variables.DRILL_INSTANCE_TYPES: ",".join(types),
                variables.OPT_IN_TAG_KEY: tag.key,
                variables.OPT_IN_TAG_VALUE: tag.value,
                variables.DUMP_BUCKET: dump_bucket.bucket_name if dump_bucket else "",
                variables.DRILL_BOOT_TIMEOUT_SECONDS: str(boot),
                variables.DRILL_DUMP_TIMEOUT_SECONDS: str(dump),
                variables.DRILL_POLL_SECONDS: str(poll),
                variables.DRILL_HANG_AFTER_SECONDS: str(hang_after),
                variables.DRILL_LOCK_SECONDS: str(
                    -(-len(types) // _CONCURRENT_CANARIES) * (wait_armed + dump) + 3600
                ),
                variables.DRILL_MAX_CANARY_LIFETIME_SECONDS: str(lifetime),
            },
        )
        send_failures_to(self.function, self.dead_letter_queue)
        # --- the state machine ---------------------------------------------------------------
        # Canaries hang at most two at a time: the remediation's zone breaker (default 3 alarms
        # in 15 minutes) would otherwise count the drill as an infrastructure event.
        batches = -(-len(types) // _CONCURRENT_CANARIES)
        timeout = batches * (wait_armed + dump) + 1800
        self.machine_role = iam.Role(
            self,
            "MachineRole",
            # aws-assumption: sfn-service-integrations
            assumed_by=iam.ServicePrincipal("states.amazonaws.com"),
            description="crashcart canary drill state machine",
        )
        self.machine_log_group = logs.LogGroup(
            self,
            "MachineLogs",
            retention=log_retention,
            encryption_key=self.encryption_key,
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            definition_body=sfn.DefinitionBody.from_string(
                stack.to_json_string(
                    definition(
                        self.function.function_arn,
                        timeout_seconds=timeout,
                        max_concurrency=_CONCURRENT_CANARIES,
                    )
                )
            ),
            role=self.machine_role,
            timeout=cdk.Duration.seconds(timeout),
            logs=sfn.LogOptions(
                destination=self.machine_log_group,
                level=sfn.LogLevel.ALL,
                include_execution_data=True,
            ),
            comment="crashcart canary crash drill",
        )
        self.machine_policy = iam.ManagedPolicy(
            self,
            "MachinePolicy",
            description="crashcart canary drill state machine: invoke the steps, end canaries",
            statements=machine_statements(
                function=self.function, canary_tag_value=self.canary_tag_value
            ),
            roles=[self.machine_role],
        )
        self.state_machine.node.add_dependency(self.machine_policy)

        self.policy = iam.ManagedPolicy(
            self,
            "Policy",
            description="crashcart canary drill: launch, watch and end tagged canaries; promote",
            statements=drill_statements(
                stack=stack,
                log_group=self.log_group,
                table=self.table,
                incidents=incidents,
                dead_letter_queue=self.dead_letter_queue,
                key=self.encryption_key,
                subnet=subnet,
                security_group=self.security_group,
                instance_role=instance_role,
                hang_document=self.hang_document.ref,
                candidate_parameter=candidate,
                verified_parameter=self.verified_parameter_name,
                pipeline_tag_value=pipeline_tag_value,
                canary_tag_value=self.canary_tag_value,
                ami_key=pipeline.key,
                dump_bucket=dump_bucket,
            ),
            roles=[self.role],
        )
        self.function.node.add_dependency(self.policy)

        # --- triggers ------------------------------------------------------------------------
        def sfn_target(source: str) -> targets.SfnStateMachine:
            return targets.SfnStateMachine(
                self.state_machine,
                input=events.RuleTargetInput.from_object({"source": source}),
                dead_letter_queue=self.dead_letter_queue,
                retry_attempts=4,
                max_event_age=cdk.Duration.hours(2),
            )

        #: A new candidate: Image Builder wrote the candidate parameter.
        # aws-assumption: ssm-parameter-store-change-events
        self.candidate_rule = events.Rule(
            self,
            "OnCandidate",
            description="crashcart: drill each new candidate AMI",
            event_pattern=events.EventPattern(
                source=["aws.ssm"],
                detail_type=["Parameter Store Change"],
                detail={"name": [candidate], "operation": ["Create", "Update"]},
            ),
            targets=[sfn_target("candidate")],
        )
        self.redrill_rule = events.Rule(
            self,
            "Redrill",
            description="crashcart: re-drill the verified AMI",
            schedule=redrill_schedule or events.Schedule.cron(minute="0", hour="6", week_day="MON"),
            targets=[sfn_target("verified")],
        )
        janitor = rule_target(
            self.function,
            self.dead_letter_queue,
            retry_attempts=4,
            max_event_age=cdk.Duration.hours(2),
        )
        #: Executions that ended without running their Catch (stopped by hand, timed out).
        # aws-assumption: sfn-execution-status-events
        self.janitor_rule = events.Rule(
            self,
            "JanitorOnStop",
            description="crashcart: terminate the canaries of a stopped drill",
            event_pattern=events.EventPattern(
                source=["aws.states"],
                detail_type=["Step Functions Execution Status Change"],
                detail={
                    "stateMachineArn": [self.state_machine.state_machine_arn],
                    "status": ["ABORTED", "TIMED_OUT", "FAILED"],
                },
            ),
            targets=[janitor],
        )
        self.janitor_schedule = events.Rule(
            self,
            "JanitorSchedule",
            description="crashcart: terminate drill canaries older than their maximum lifetime",
            schedule=events.Schedule.rate(cdk.Duration.minutes(30)),
            targets=[janitor],
        )
        acknowledge_canary_drill(self)
        self.alarms = [
            failure_queue_alarm(
                self,
                "DeadLetterAlarm",
                self.dead_letter_queue,
                incidents.topic,
                "drill triggers or janitor runs that failed",
            ),
            self._failed_alarm(incidents),
        ]

    def _failed_alarm(self, incidents: IncidentStore) -> cloudwatch.Alarm:
        alarm = cloudwatch.Alarm(
            self,
            "DrillFailedAlarm",
            alarm_description="crashcart: a canary crash drill failed, timed out or was stopped",
            metric=cloudwatch.MathExpression(
                expression="failed + timedout + aborted",
                using_metrics={
                    "failed": self.state_machine.metric_failed(),
                    "timedout": self.state_machine.metric_timed_out(),
                    "aborted": self.state_machine.metric_aborted(),
                },
                period=cdk.Duration.minutes(5),
            ),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        alarm.add_alarm_action(cloudwatch_actions.SnsAction(incidents.topic))
        return alarm

    def grant_start(self, grantee: iam.IGrantable) -> iam.Grant:
        """Let ``grantee`` start a drill on demand (``states:StartExecution``)."""
        return self.state_machine.grant_start_execution(grantee)
