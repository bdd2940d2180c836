"""KdumpImagePipeline: an EC2 Image Builder pipeline that bakes hardened, kdump-armed AMIs.

Recipe order: OS update -> hardening (the AWS STIG component or yours) -> crashcart
crash-dump component (kdump enable, crashcart agent, reboot; validate; test on a fresh
instance) -> optionally the debug-symbols component (publish the kernel's debug vmlinux to a
DebugSymbolStore). Built from the L1 ``aws_imagebuilder`` resources; see docs/pipeline.md.

This module is the construct and its public names; its parts live in private modules:
value types (``_image_pipeline_props``), synth-time checks (``_image_pipeline_validation``),
and under ``_internal/``: the key, log buckets and topic (``image_pipeline_storage``), the
recipe's components (``image_pipeline_components``), the roles and key policies
(``image_pipeline_iam``), distribution and lifecycle (``image_pipeline_distribution``).
"""

from __future__ import annotations

from collections.abc import Sequence

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_imagebuilder as imagebuilder
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from constructs import Construct

from crashcart.components.families import DEFAULT_FAMILY, Architecture, Family
from crashcart.constructs._image_pipeline_props import (
    DistributionTarget,
    Hardening,
    ParentImage,
    PipelineSchedule,
    validate_version,
)
from crashcart.constructs._image_pipeline_validation import (
    check_instance_types,
    check_platform,
    check_prop_types,
    whole,
)
from crashcart.constructs._internal import image_pipeline_iam as pipeline_iam
from crashcart.constructs._internal.buckets import access_logs_by_bucket_policy
from crashcart.constructs._internal.image_pipeline_components import (
    INLINE_DATA_LIMIT,
    OwnComponents,
    default_hardening,
    image_recipe,
    recipe_components,
    recipe_description,
    resource_name,
)
from crashcart.constructs._internal.image_pipeline_distribution import (
    deprecation_policy,
    distribution_configuration,
)

# The AMI tags and the finding-id helper stay importable from here, as before the split.
from crashcart.constructs._internal.image_pipeline_iam import (
    KERNEL_RELEASE_TAG as KERNEL_RELEASE_TAG,
)
from crashcart.constructs._internal.image_pipeline_iam import PIPELINE_TAG as PIPELINE_TAG
from crashcart.constructs._internal.image_pipeline_iam import (
    stack_logical_id as stack_logical_id,
)
from crashcart.constructs._internal.image_pipeline_storage import (
    build_log_bucket,
    image_key,
    notification_topic,
)
from crashcart.constructs.debug_symbol_store import DebugSymbolStore
from crashcart.crashkernel_tiers import crashkernel_of
from crashcart.errors import ConfigurationError
from crashcart.kdump import KdumpSettings, WindowsCrashDumpSettings

__all__ = [
    "INLINE_DATA_LIMIT",
    "DistributionTarget",
    "Hardening",
    "KdumpImagePipeline",
    "ParentImage",
    "PipelineSchedule",
]

_DEFAULT_INSTANCE_TYPES = {
    "x86_64": ("m7i.large", "m6i.large"),
    "arm64": ("m7g.large", "m6g.large"),
}
_DEFAULT_SCHEDULE = PipelineSchedule.cron("cron(0 3 ? * sun *)")


class KdumpImagePipeline(Construct):
    """An Image Builder pipeline that produces hardened AMIs on which an NMI gives a crash dump.

    Attributes: :attr:`pipeline`, :attr:`recipe`, :attr:`components` (in recipe order),
    :attr:`infrastructure_configuration`, :attr:`distribution_configuration`,
    :attr:`lifecycle_policy`, :attr:`instance_role`, :attr:`key`, :attr:`log_bucket`,
    :attr:`topic`, :attr:`candidate_ami_parameter_name`, :attr:`component_documents`,
    :attr:`debug_symbols`.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        architecture: Architecture,
        family: Family = DEFAULT_FAMILY,
        kdump: KdumpSettings | None = None,
        windows_crash_dump: WindowsCrashDumpSettings | None = None,
        parent_image: ParentImage | None = None,
        hardening: Hardening | None = None,
        instance_types: Sequence[str] | None = None,
        subnet: ec2.ISubnet | None = None,
        security_groups: Sequence[ec2.ISecurityGroup] | None = None,
        key: kms.IKey | None = None,
        log_bucket: s3.IBucket | None = None,
        topic: sns.ITopic | None = None,
        distribution: Sequence[DistributionTarget] | None = None,
        launch_templates: Sequence[ec2.CfnLaunchTemplate] = (),
        set_launch_template_default: bool = False,
        candidate_ami_parameter_name: str | None = None,
        schedule: PipelineSchedule | None = None,
        deprecate_after: cdk.Duration | None = None,
        component_version: str | None = None,
        working_directory: str | None = None,
        root_volume_gib: int | None = None,
        root_device_name: str | None = None,
        image_tests_timeout: cdk.Duration = cdk.Duration.minutes(90),  # noqa: B008 - immutable
        debug_symbols: DebugSymbolStore | None = None,
    ) -> None:
        """Create the pipeline.

        :param architecture: ``"x86_64"`` (verified) or ``"arm64"`` (accepted with a
            synth-time warning: its interrupt path is unverified). Required: a parent given
            by SSM parameter or AMI id has no architecture knowable at synth.
        :param family: the OS family. Default: ``"amazon-linux-2023"``.
        :param kdump: Linux kdump settings. Default: ``KdumpSettings()``; an error on Windows.
        :param windows_crash_dump: Windows crash-dump settings. Default:
            ``WindowsCrashDumpSettings()`` on Windows; an error on Linux.
        :param parent_image: the parent. Default: the family's default (docs/pipeline.md).
        :param hardening: the hardening step. Default: ``Hardening.aws_stig("high")`` where
            AWS publishes a STIG component for the family, else no hardening (Debian: there
            is no DISA STIG) with that reason recorded.
        :param instance_types: build / test instance types. Default: m7i.large, m6i.large
            (x86_64) or m7g.large, m6g.large (arm64). Must match ``architecture``; A1 and
            Xen types are rejected.
        :param subnet: a (private) subnet for build instances. Default: the default VPC.
        :param security_groups: their security groups (needs ``subnet``). Default: the
            default security group of the VPC Image Builder uses.
        :param key: the customer key for EBS volumes, the build-log bucket and the topic.
            Default: a new key with rotation on.
        :param log_bucket: where build logs go (prefix ``imagebuilder/``). Default: a new
            KMS-encrypted, TLS-only, versioned bucket with server access logs.
        :param topic: the SNS topic for build notifications. Default: a new KMS-encrypted,
            TLS-only topic.
        :param distribution: Regions (and accounts) the AMI goes to. Default: the stack's
            Region only. An empty list is an error.
        :param launch_templates: launch templates (build Region) to get a new version with
            the AMI. Default: none.
        :param set_launch_template_default: make that version the default. Default: False
            (the AMI is a *candidate* until a crash drill verifies it).
        :param candidate_ami_parameter_name: the SSM parameter Image Builder writes the new
            AMI id to in each Region. Default: ``/crashcart/ami/<family>/<arch>/candidate``.
        :param schedule: when the pipeline runs. Default: Sundays 03:00 UTC.
        :param deprecate_after: deprecate this pipeline's AMIs older than this, in whole days
            from 1 to 3,650 (a lifecycle policy; the newest 2 are kept). Default: None (no
            lifecycle policy).
        :param component_version: a fixed ``x.y.z`` for crashcart's components and the
            recipe. Default: derived from a hash of their content (new content, new version;
            a fixed version must be bumped by you whenever content changes).
        :param working_directory: the build's working directory. Default: ``/root`` on Linux
            (hardened images mount /tmp and /var/tmp noexec), Image Builder's default on
            Windows.
        :param root_volume_gib: root volume size. Default: 20 (Linux) / 60 (Windows).
        :param root_device_name: root device of the parent AMI. Default: the family's
            (``/dev/xvda`` for Amazon Linux and Debian, ``/dev/sda1`` otherwise).
        :param image_tests_timeout: test-phase timeout, whole minutes. Default: 90 minutes.
        :param debug_symbols: publish the debug vmlinux of each AMI's kernel to this store,
            by build id (for full triage with drgn): a debug-symbols component right after
            the crash-dump component (after its reboot, so the running kernel is the AMI's)
            installs the distribution's debug package, publishes, and removes the package;
            the instance role gets ``debug_symbols.grant_publish``. Linux only (Windows:
            ConfigurationError). Default: None - no symbols published (triage falls back to
            the kernel log the dump carries).
        """
        check_prop_types(
            kdump=kdump,
            windows_crash_dump=windows_crash_dump,
            parent_image=parent_image,
            hardening=hardening,
            subnet=subnet,
            security_groups=security_groups,
            key=key,
            log_bucket=log_bucket,
            topic=topic,
            distribution=distribution,
            schedule=schedule,
            debug_symbols=debug_symbols,
        )
        super().__init__(scope, construct_id)
        access_logs_by_bucket_policy(self)
        stack = cdk.Stack.of(self)
        info, settings, working_directory = check_platform(
            self,
            family=family,
            architecture=architecture,
            kdump=kdump,
            windows_crash_dump=windows_crash_dump,
            working_directory=working_directory,
            debug_symbols=debug_symbols,
        )
        self.family = family
        self.architecture = architecture
        self.settings = settings

        types = list(instance_types or _DEFAULT_INSTANCE_TYPES[architecture])
        check_instance_types(types, architecture)

        parent = (parent_image or ParentImage.family_default()).resolve(family, architecture)
        schedule = schedule or _DEFAULT_SCHEDULE
        if schedule.on_parent_update and not parent.has_version_wildcard:
            raise ConfigurationError(
                f"schedule on_parent_update=True needs an Image Builder-managed parent with a "
                f"version wildcard (ParentImage.from_managed_image(name, 'x.x.x')); the parent "
                f"is a {parent.kind} ({parent.value!r}), whose updates Image Builder cannot "
                "see. Use a plain cron schedule instead."
            )
        if component_version is not None:
            validate_version(component_version, "component")
        if security_groups and subnet is None:
            raise ConfigurationError(
                "security_groups without subnet: Image Builder needs a subnet to place the "
                "build instance in the security groups' VPC"
            )
        targets = (
            list(distribution)
            if distribution is not None
            else [DistributionTarget(region=stack.region)]
        )
        if not targets:
            raise ConfigurationError(
                "distribution is empty: give at least one DistributionTarget (the AMI has to "
                "go somewhere), or leave it unset for the stack's own Region"
            )
        deprecate_after_days = whole(
            "deprecate_after", deprecate_after, unit="days", low=1, high=3650
        )
        image_tests_timeout_minutes = whole(
            "image_tests_timeout", image_tests_timeout, unit="minutes", low=1, high=None
        )

        # --- Key, bucket, topic (each created only when not given) -------------------------
        self.key: kms.IKey = image_key(self) if key is None else key
        self.log_bucket: s3.IBucket = (
            build_log_bucket(self, self.key) if log_bucket is None else log_bucket
        )
        self.topic: sns.ITopic = notification_topic(self, self.key) if topic is None else topic

        # --- Instance role ------------------------------------------------------------------
        self.instance_role, instance_profile = pipeline_iam.instance_role(self)

        # --- Components -----------------------------------------------------------------------
        own = OwnComponents(
            self,
            family=family,
            architecture=architecture,
            key=self.key,
            version=component_version,
        )
        self.component_documents: dict[str, str] = own.documents
        self.components: list[imagebuilder.CfnComponent] = own.components
        hardening = hardening or default_hardening(info)
        component_arns = recipe_components(
            self,
            own,
            family=family,
            info=info,
            architecture=architecture,
            settings=settings,
            hardening=hardening,
            debug_symbols=debug_symbols,
        )
        self.hardening = hardening
        #: The debug-symbol store the build publishes to, or None.
        self.debug_symbols = debug_symbols

        # --- Recipe ---------------------------------------------------------------------------
        pipeline_tag_value = cdk.Names.unique_id(self)[-60:]
        # EC2 tag values: letters, digits, spaces and _ . : / = + - @ (no commas).
        crashkernel = (
            crashkernel_of(settings).replace(",", " ")
            if isinstance(settings, KdumpSettings)
            else "n/a (Windows)"
        )
        # The kernel release is only known once the image boots: the test phase's
        # TagImageWithKernelRelease step adds crashcart:kernel-release to the AMI.
        ami_tags = {
            PIPELINE_TAG: pipeline_tag_value,
            "crashcart:os-family": family,
            "crashcart:architecture": architecture,
            "crashcart:crashkernel": crashkernel,
            "crashcart:status": "candidate",
        }
        self.ami_tags = dict(ami_tags)
        description = recipe_description(info, architecture, hardening)
        self.recipe = image_recipe(
            self,
            own,
            configurations=component_arns,
            parent=parent,
            info=info,
            key=self.key,
            root_device_name=root_device_name,
            root_volume_gib=root_volume_gib,
            working_directory=working_directory,
            ami_tags=ami_tags,
            description=description,
        )

        # --- Infrastructure -------------------------------------------------------------------
        self.infrastructure_configuration = imagebuilder.CfnInfrastructureConfiguration(
            self,
            "Infrastructure",
            name=resource_name(self, "infrastructure"),
            description="crashcart: IMDSv2-only, encrypted, terminated on failure",
            instance_profile_name=instance_profile.ref,
            instance_types=types,
            instance_metadata_options=imagebuilder.CfnInfrastructureConfiguration.InstanceMetadataOptionsProperty(
                http_tokens="required", http_put_response_hop_limit=1
            ),
            terminate_instance_on_failure=True,
            sns_topic_arn=self.topic.topic_arn,
            logging=imagebuilder.CfnInfrastructureConfiguration.LoggingProperty(
                s3_logs=imagebuilder.CfnInfrastructureConfiguration.S3LogsProperty(
                    s3_bucket_name=self.log_bucket.bucket_name, s3_key_prefix="imagebuilder"
                )
            ),
            subnet_id=subnet.subnet_id if subnet else None,
            security_group_ids=[sg.security_group_id for sg in security_groups]
            if security_groups
            else None,
            resource_tags={"crashcart:role": "image-build", PIPELINE_TAG: pipeline_tag_value},
        )

        # --- Distribution ---------------------------------------------------------------------
        self.candidate_ami_parameter_name = (
            candidate_ami_parameter_name or f"/crashcart/ami/{family}/{architecture}/candidate"
        )
        self.distribution_configuration = distribution_configuration(
            self,
            targets=targets,
            key=self.key,
            family=family,
            architecture=architecture,
            info=info,
            ami_tags=ami_tags,
            candidate_ami_parameter_name=self.candidate_ami_parameter_name,
            launch_templates=launch_templates,
            set_launch_template_default=set_launch_template_default,
        )

        # --- Pipeline -------------------------------------------------------------------------
        self.pipeline = imagebuilder.CfnImagePipeline(
            self,
            "Pipeline",
            name=resource_name(self, "pipeline"),
            description=description[:1024],
            image_recipe_arn=self.recipe.attr_arn,
            infrastructure_configuration_arn=self.infrastructure_configuration.attr_arn,
            distribution_configuration_arn=self.distribution_configuration.attr_arn,
            enhanced_image_metadata_enabled=True,
            image_scanning_configuration=imagebuilder.CfnImagePipeline.ImageScanningConfigurationProperty(
                image_scanning_enabled=True
            ),
            image_tests_configuration=imagebuilder.CfnImagePipeline.ImageTestsConfigurationProperty(
                image_tests_enabled=True, timeout_minutes=image_tests_timeout_minutes
            ),
            schedule=imagebuilder.CfnImagePipeline.ScheduleProperty(
                schedule_expression=schedule.expression,
                timezone=schedule.timezone,
                pipeline_execution_start_condition="EXPRESSION_MATCH_AND_DEPENDENCY_UPDATES_AVAILABLE"
                if schedule.on_parent_update
                else "EXPRESSION_MATCH_ONLY",
            )
            if schedule.expression
            else None,
            status="ENABLED",
        )

        # --- Instance role permissions (least privilege) ------------------------------------
        pipeline_iam.grant_instance_role(
            self,
            role=self.instance_role,
            key=self.key,
            log_bucket=self.log_bucket,
            components=self.components,
            pipeline_tag_value=pipeline_tag_value,
        )
        if debug_symbols is not None:
            debug_symbols.grant_publish(self.instance_role)

        # --- Lifecycle policy -------------------------------------------------------------------
        self.lifecycle_policy: imagebuilder.CfnLifecyclePolicy | None = None
        if deprecate_after_days is not None:
            self.lifecycle_policy = deprecation_policy(
                self,
                deprecate_after_days=deprecate_after_days,
                pipeline_tag_value=pipeline_tag_value,
            )

    # ------------------------------------------------------------------------------------------
    @staticmethod
    # aws-assumption: shared-ami-key-grants
    def grant_shared_ami_key_use(key: kms.IKey, accounts: Sequence[str]) -> None:
        """Let ``accounts`` launch AMIs whose snapshots ``key`` encrypts.

        Adds key-policy statements (a no-op on an imported key: call this in the stack that
        owns the key of that Region). The target accounts still need IAM permissions of their
        own, and an Auto Scaling group there needs a grant for its service-linked role.
        """
        pipeline_iam.grant_shared_ami_key_use(key, accounts)

    def grant_read_candidate_ami(self, grantee: iam.IGrantable) -> iam.Grant:
        """Let ``grantee`` read the candidate-AMI parameter (build Region)."""
        name = self.candidate_ami_parameter_name.lstrip("/")
        return iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["ssm:GetParameter", "ssm:GetParameters"],
            resource_arns=[
                f"arn:{cdk.Aws.PARTITION}:ssm:{cdk.Aws.REGION}:{cdk.Aws.ACCOUNT_ID}:parameter/{name}"
            ],
        )

    @property
    def pipeline_arn(self) -> str:
        """The pipeline's ARN."""
        return self.pipeline.attr_arn
