"""DumpTriageJob: the full triage report of every shipped crash dump, made in AWS.

The dump-arrival function (``CrashDumpBucket.notify_incidents``) gives a first summary from
the kernel log within seconds. The full report needs the vmcore (tens of MB to many GB) and
the kernel's debug vmlinux (~600 MB), more than a Lambda function should hold: it is made by
an ECS Fargate task with up to 200 GiB of ephemeral storage, started by EventBridge for the
same ``metadata.json`` event. The task runs ``crashcart.triage.job``: it looks the debug
vmlinux up by build id in a :class:`DebugSymbolStore` (filled when the AMI is baked), writes
``report.md`` and ``report.json`` under ``reports/`` in the dump bucket, adds their keys to the
incident and notifies on-call.

A task that fails (bad dump, no room, an AWS error, the image could not be pulled) is kept:
EventBridge sends its stopped-task event to the ``failed_runs`` queue, which alarms. Events
either rule could not deliver go to the ``undelivered`` queue, which alarms too; each queue
policy allows exactly its rules, and an alarm per rule notifies when EventBridge could not
even put an event into the dead-letter queue.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from constructs import Construct

from crashcart.compliance import acknowledge
from crashcart.constructs._internal.dump_events import metadata_written
from crashcart.constructs._internal.queues import encrypted_queue
from crashcart.constructs._internal.service_access import (
    QueueTarget,
    allow_alarm_actions,
    allow_rules_on_key,
    failure_queue_alarm,
    undeliverable_events_alarm,
)
from crashcart.constructs._internal.triage_iam import (
    events_role,
    execution_role,
    task_policy,
)
from crashcart.constructs._internal.triage_network import (
    TriageEndpoints,
    add_endpoints,
    isolated_vpc,
    refuse_public_subnets,
)
from crashcart.constructs._triage_job_props import (
    TriageTaskSize,
    _check_prop_types,
)
from crashcart.constructs.incident_store import IncidentStore
from crashcart.errors import ConfigurationError
from crashcart.runtime import environment as variables

if TYPE_CHECKING:
    from crashcart.constructs.crash_dump_bucket import CrashDumpBucket
    from crashcart.constructs.debug_symbol_store import DebugSymbolStore

__all__ = ["DumpTriageJob", "TriageTaskSize"]

_PACKAGE_ROOT = Path(__file__).resolve().parent.parent
#: The image's build context is the crashcart package folder, trimmed to what the job runs.
_IMAGE_CONTEXT_EXCLUDE = [
    "*",
    "!__init__.py",
    "!errors.py",
    "!opt_in.py",
    "!symbol_layout.py",
    "!py.typed",
    "!triage",
    "triage/__pycache__",
    "!runtime",
    "runtime/__pycache__",
    "**/*.pyc",
]
CONTAINER_NAME = "triage"
SCRATCH_PATH = "/scratch"
#: The supervisor is root in the container, to start the parser as uid 65534 with no
#: credentials; it keeps only the capabilities that needs: CHOWN (the parser's output
#: folder), DAC_OVERRIDE and FOWNER (reading and removing what the parser wrote), SETUID /
#: SETGID (the switch), KILL (its process group at the time limit).
# aws-assumption: fargate-linux-capabilities
DROPPED_CAPABILITIES = (
    ecs.Capability.AUDIT_WRITE,
    ecs.Capability.FSETID,
    ecs.Capability.MKNOD,
    ecs.Capability.NET_BIND_SERVICE,
    ecs.Capability.NET_RAW,
    ecs.Capability.SETFCAP,
    ecs.Capability.SETPCAP,
    ecs.Capability.SYS_CHROOT,
)


class DumpTriageJob(Construct):
    """An ECS Fargate task per shipped dump: full drgn report, incident update, notification.

    Example::

        dumps = CrashDumpBucket(self, "Dumps")
        dumps.notify_incidents(incidents=remediation.incidents)
        DumpTriageJob(
            self,
            "Triage",
            dumps=dumps,
            incidents=remediation.incidents,
            symbols=symbol_store,          # DebugSymbolStore filled by KdumpImagePipeline
        )
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        dumps: CrashDumpBucket,
        incidents: IncidentStore,
        symbols: DebugSymbolStore | None = None,
        vpc: ec2.IVpc | None = None,
        subnets: ec2.SubnetSelection | None = None,
        size: TriageTaskSize | None = None,
        image: ecs.ContainerImage | None = None,
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_YEAR,
    ) -> None:
        """
        :param dumps: the crash-dump bucket whose dumps are triaged (EventBridge
            notifications are on). Reports go to its ``reports/`` prefix.
        :param incidents: the incident store: the report's keys are added to the incident
            that links the dump; "report ready" and "triage failed" notifications and the
            failure alarms go to its topic (this account's alarms are allowed to publish to it
            and to use its key; a topic or key imported by ARN must allow that itself, and a
            synth warning says so).
        :param symbols: the debug-symbol store, looked up by the dump's kernel build id.
            Default: none - reports are made from the dump's kernel log (panic string, the
            backtraces the kernel printed) and say that symbols were missing.
        :param vpc: the VPC the task runs in; it needs a route to S3, DynamoDB, SNS, ECR and
            CloudWatch Logs (endpoints or NAT). Default: a new VPC with private isolated
            subnets in two AZs, flow logs, gateway endpoints for S3 and DynamoDB and
            interface endpoints for ECR, CloudWatch Logs and SNS (no internet route).
        :param subnets: where in ``vpc``. Default: its ``PRIVATE_WITH_EGRESS`` subnets (give
            ``subnets`` for a VPC with isolated subnets and endpoints).
        :param size: CPU, memory, scratch disk, timeout. Default: ``TriageTaskSize()``.
        :param image: the job's container image. Default: built from
            ``crashcart/triage/Dockerfile`` at deploy time (a CDK Docker asset).
        :param log_retention: how long the task's logs are kept. Default: one year.
        :raises ConfigurationError: a prop of the wrong type; ``subnets`` without ``vpc``;
            subnets that are public (a task that reads memory images never gets a public IP
            and never runs in a subnet with a route to an internet gateway).
        """
        _check_prop_types(
            dumps=dumps,
            incidents=incidents,
            symbols=symbols,
            vpc=vpc,
            size=size,
            image=image,
        )
        super().__init__(scope, construct_id)
        table, topic = incidents.table, incidents.topic
        size = size or TriageTaskSize()
        stack = cdk.Stack.of(self)
        self._stack = stack
        if vpc is None and subnets is not None:
            raise ConfigurationError(
                "subnets was given without vpc: subnets select from the VPC you pass"
            )
        own_vpc = isolated_vpc(self, dumps.access_logs_bucket) if vpc is None else None
        #: The VPC the task runs in.
        self.vpc: ec2.IVpc = vpc or own_vpc  # type: ignore[assignment]
        self._subnets = subnets or ec2.SubnetSelection(
            subnet_type=(
                ec2.SubnetType.PRIVATE_ISOLATED
                if vpc is None
                else ec2.SubnetType.PRIVATE_WITH_EGRESS
            )
        )
        if vpc is not None:
            refuse_public_subnets(vpc, self._subnets)
        #: The ECS cluster (Container Insights on).
        self.cluster = ecs.Cluster(
            self,
            "Cluster",
            vpc=self.vpc,
            container_insights_v2=ecs.ContainerInsights.ENABLED,
        )
        #: The security group of the task: no inbound, HTTPS out.
        self.security_group = ec2.SecurityGroup(
            self,
            "TaskSecurityGroup",
            vpc=self.vpc,
            description="crashcart triage task: no inbound; HTTPS to AWS APIs",
            allow_all_outbound=False,
        )
        self.security_group.add_egress_rule(
            ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "HTTPS to AWS APIs (endpoints)"
        )
        #: The endpoints of the job's own VPC, each with a policy (None with a given ``vpc``).
        self.endpoints: TriageEndpoints | None = (
            add_endpoints(self, own_vpc, self.security_group) if own_vpc is not None else None
        )

        log_group = dumps.log_group(
            self, "Logs", retention=log_retention, holds="triage outcomes and panic summaries"
        )
        #: The task's role: read dumps, write reports, update incidents, notify.
        self.task_role = iam.Role(
            self,
            "TaskRole",
            # aws-assumption: service-role-trust-principals
            assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"),
            description="crashcart triage job: read a dump, write its report",
        )
        self.policy = task_policy(self, dumps, table, topic)
        if symbols is not None:
            symbols.grant_read(self.task_role)
        #: The image asset built from crashcart/triage/Dockerfile (None with ``image``).
        self.image_asset = (
            ecr_assets.DockerImageAsset(
                self,
                "Image",
                directory=str(_PACKAGE_ROOT),
                file="triage/Dockerfile",
                exclude=_IMAGE_CONTEXT_EXCLUDE,
                platform=ecr_assets.Platform.LINUX_AMD64,
            )
            if image is None
            else None
        )
        #: The role ECS uses to pull the image and write the logs.
        self.execution_role = execution_role(self, log_group)
        #: The Fargate task definition.
        self.task_definition = ecs.FargateTaskDefinition(
            self,
            "TaskDefinition",
            cpu=size.cpu,
            memory_limit_mib=size.memory_mib,
            ephemeral_storage_gib=size.ephemeral_storage_gib,
            task_role=self.task_role,
            execution_role=self.execution_role,
            runtime_platform=ecs.RuntimePlatform(
                cpu_architecture=ecs.CpuArchitecture.X86_64,
                operating_system_family=ecs.OperatingSystemFamily.LINUX,
            ),
            volumes=[ecs.Volume(name="scratch")],
        )
        environment = {
            variables.DUMP_BUCKET: dumps.bucket.bucket_name,
            variables.TABLE_NAME: table.table_name,
            variables.TOPIC_ARN: topic.topic_arn,
            variables.WORK_DIR: SCRATCH_PATH,
            variables.TIMEOUT_SECONDS: str(size.timeout_seconds),
            variables.TASK_MEMORY_MIB: str(size.memory_mib),
            "TMPDIR": SCRATCH_PATH,
        }
        if symbols is not None:
            environment[variables.SYMBOL_BUCKET] = symbols.bucket.bucket_name
        #: The job's container.
        self.container = self.task_definition.add_container(
            CONTAINER_NAME,
            container_name=CONTAINER_NAME,
            image=image or ecs.ContainerImage.from_docker_image_asset(self.image_asset),  # type: ignore[arg-type]
            logging=ecs.LogDrivers.aws_logs(stream_prefix="triage", log_group=log_group),
            environment=environment,
            readonly_root_filesystem=True,
            # root for the supervisor only: the parser runs as 65534 (crashcart.triage.sandbox)
            user="0:0",
            linux_parameters=ecs.LinuxParameters(self, "LinuxParameters"),
        )
        assert self.container.linux_parameters is not None
        self.container.linux_parameters.drop_capabilities(*DROPPED_CAPABILITIES)
        self.container.add_mount_points(
            ecs.MountPoint(container_path=SCRATCH_PATH, source_volume="scratch", read_only=False)
        )
        self._acknowledge_task_definition()
        if self.endpoints is not None:
            self.endpoints.restrict(
                stack,
                s3_reads=[
                    dumps.dumps_arn_pattern,
                    *([symbols.bucket.arn_for_objects("*")] if symbols is not None else []),
                ],
                s3_writes=[dumps.reports_arn_pattern],
                table_arns=[table.table_arn],
                topic_arns=[topic.topic_arn],
                log_group_arns=[log_group.log_group_arn],
                repository_arns=(
                    [self.image_asset.repository.repository_arn] if self.image_asset else None
                ),
            )

        queue_key = self._queue_key()
        #: Stopped-task events of failed runs (the event names the dump in its overrides).
        self.failed_runs = encrypted_queue(self, "FailedRuns", key=queue_key)
        #: Events EventBridge could not deliver (RunTask refused, throttled past retries).
        self.undelivered = encrypted_queue(self, "Undelivered", key=queue_key)
        for queue in (self.failed_runs, self.undelivered):
            acknowledge(
                queue,
                "AwsSolutions::AwsSolutions-SQS3",
                "this queue is itself the dead-letter store of failed triage runs / events",
            )
        #: The rule that starts a task for every dump's metadata.json.
        self.rule = events.Rule(
            self,
            "DumpShipped",
            description="crashcart: a crash dump was shipped (metadata.json) -> full triage",
            event_pattern=metadata_written(dumps.bucket.bucket_name),
            targets=[
                targets.EcsTask(
                    cluster=self.cluster,
                    task_definition=self.task_definition,
                    launch_type=ecs.LaunchType.FARGATE,
                    platform_version=ecs.FargatePlatformVersion.LATEST,
                    subnet_selection=self._subnets,
                    security_groups=[self.security_group],
                    assign_public_ip=False,
                    container_overrides=[
                        targets.ContainerOverride(
                            container_name=CONTAINER_NAME,
                            environment=[
                                targets.TaskEnvironmentVariable(
                                    name=variables.METADATA_KEY,
                                    value=events.EventField.from_path("$.detail.object.key"),
                                )
                            ],
                        )
                    ],
                    role=events_role(self),
                    dead_letter_queue=self.undelivered,
                    retry_attempts=8,
                    max_event_age=cdk.Duration.hours(6),
                )
            ],
        )
        #: The rule that keeps the stopped-task event of every failed run.
        self.failure_rule = events.Rule(
            self,
            "RunFailed",
            description="crashcart: a triage task stopped with an error -> failed_runs queue",
            event_pattern=events.EventPattern(
                source=["aws.ecs"],
                # aws-assumption: ecs-task-state-change-event
                detail_type=["ECS Task State Change"],
                detail={
                    "clusterArn": [self.cluster.cluster_arn],
                    "lastStatus": ["STOPPED"],
                    "$or": [
                        {"containers": {"exitCode": [{"anything-but": 0}]}},
                        {"stopCode": [{"anything-but": "EssentialContainerExited"}]},
                    ],
                },
            ),
            # The queue policy names this rule (CDK's SqsQueue target leaves it unscoped for
            # an encrypted queue); undelivered events go to the undelivered queue.
            targets=[QueueTarget(self.failed_runs, dead_letter_queue=self.undelivered)],
        )
        allow_alarm_actions(self, topic)
        #: Alarms on every message sent to either queue (each new failure notifies again,
        #: even while an earlier one still waits), and on events that EventBridge could not
        #: even put into the dead-letter queue.
        self.alarms: list[cloudwatch.Alarm] = [
            failure_queue_alarm(
                self,
                "FailedRunsAlarm",
                self.failed_runs,
                topic,
                "a crash dump was not triaged (a stopped task's event)",
            ),
            failure_queue_alarm(
                self,
                "UndeliveredAlarm",
                self.undelivered,
                topic,
                "a crash dump was not triaged (an event EventBridge could not deliver)",
            ),
            undeliverable_events_alarm(self, "DumpShippedUndeliverableAlarm", self.rule, topic),
            undeliverable_events_alarm(
                self, "RunFailedUndeliverableAlarm", self.failure_rule, topic
            ),
        ]

    # ------------------------------------------------------------------ parts

    def _queue_key(self) -> kms.IKey:
        """The key of the two event queues, usable by EventBridge rules of this account only.

        The queues get a reference to it, not the key itself: CDK's target and dead-letter
        grants would otherwise add an unconditioned EventBridge statement to the key policy.
        The dump key never trusts EventBridge.
        """
        #: The KMS key of ``failed_runs`` and ``undelivered`` (events, not dump contents).
        self.queue_key = kms.Key(
            self,
            "QueueKey",
            description="crashcart triage job: failed-run and undelivered event queues",
            enable_key_rotation=True,
        )
        # aws-assumption: sse-kms-keys-for-service-senders
        # aws-assumption: eventbridge-uses-queue-keys
        allow_rules_on_key(self, self.queue_key, "EventBridgeRulesOfThisAccount")
        return kms.Key.from_key_arn(self, "QueueKeyReference", self.queue_key.key_arn)

    def _acknowledge_task_definition(self) -> None:
        acknowledge(
            self.task_definition,
            "AwsSolutions::AwsSolutions-ECS2",
            "the environment holds resource names (bucket, table, topic ARN) and sizes, no secrets",
        )

    def _ref(self, construct: Construct) -> str:
        child = construct.node.default_child
        assert isinstance(child, cdk.CfnElement)
        return self._stack.get_logical_id(child)
