"""KdumpImagePipeline: an EC2 Image Builder pipeline that bakes hardened, kdump-armed AMIs.

Recipe order: OS update -> hardening (the AWS STIG component or yours) -> crashcart
crash-dump component (kdump enable, crashcart agent, reboot; validate; test on a fresh
instance) -> optionally the debug-symbols component (publish the kernel's debug vmlinux to a
DebugSymbolStore). Built from the L1 ``aws_imagebuilder`` resources; see docs/pipeline.md.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Sequence
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_imagebuilder as imagebuilder
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_sns as sns
from constructs import Construct

from crashcart import _props as props
from crashcart.compliance import acknowledge, acknowledge_all, skip_checkov
from crashcart.components.debug_symbols import (
    BUCKET_PARAMETER,
    debug_symbols_info,
    render_debug_symbols,
)
from crashcart.components.debug_symbols import PHASE_SET as DEBUG_SYMBOLS_PHASE_SET
from crashcart.components.families import DEFAULT_FAMILY, FAMILIES, Architecture, Family
from crashcart.components.render import AGENT_MISSING_NOTE, agent_files, render_component
from crashcart.constructs._image_pipeline_props import (
    DistributionTarget,
    Hardening,
    ParentImage,
    PipelineSchedule,
    validate_version,
)
from crashcart.constructs._image_pipeline_validation import (
    check_instance_types,
    check_working_directory,
    version_from_content,
)
from crashcart.constructs.debug_symbol_store import DebugSymbolStore
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

#: Image Builder's limit on an inline component's ``Data``; larger documents go via ``Uri``.
# aws-assumption: imagebuilder-component-documents
INLINE_DATA_LIMIT = 16_000

#: The AMI tag that ties an AMI to its pipeline (lifecycle policy and kernel-release tagging).
PIPELINE_TAG = "crashcart:pipeline"
KERNEL_RELEASE_TAG = "crashcart:kernel-release"

_DEFAULT_INSTANCE_TYPES = {
    "x86_64": ("m7i.large", "m6i.large"),
    "arm64": ("m7g.large", "m6g.large"),
}
_DEFAULT_SCHEDULE = PipelineSchedule.cron("cron(0 3 ? * sun *)")
# aws-assumption: imagebuilder-service-linked-role-key
_IMAGEBUILDER_SLR = "role/aws-service-role/imagebuilder.amazonaws.com/AWSServiceRoleForImageBuilder"


def _ami_distribution(
    *, name: str, description: str, kms_key_arn: str, ami_tags: dict[str, str], accounts: list[str]
) -> dict[str, object]:
    config: dict[str, object] = {
        "Name": name,
        "Description": description,
        "KmsKeyId": kms_key_arn,
        "AmiTags": ami_tags,
    }
    if accounts:
        config["LaunchPermissionConfiguration"] = {"UserIds": accounts}
    return config


def _check_prop_types(**values: object) -> None:
    """A prop of the wrong type fails here, naming it, not as an AttributeError later."""
    owner = "KdumpImagePipeline"
    optional: tuple[tuple[str, type, str], ...] = (
        ("kdump", KdumpSettings, "KdumpSettings(crashkernel='256M')"),
        ("windows_crash_dump", WindowsCrashDumpSettings, "WindowsCrashDumpSettings()"),
        ("parent_image", ParentImage, "ParentImage.from_ssm_parameter('/aws/service/...')"),
        ("hardening", Hardening, "Hardening.none(reason='...')"),
        ("subnet", ec2.ISubnet, "vpc.private_subnets[0]"),
        ("key", kms.IKey, "kms.Key(self, 'ImageKey', enable_key_rotation=True)"),
        ("log_bucket", s3.IBucket, "s3.Bucket(self, 'BuildLogs')"),
        ("topic", sns.ITopic, "sns.Topic(self, 'Topic')"),
        ("schedule", PipelineSchedule, "PipelineSchedule.cron('cron(0 3 ? * sun *)')"),
        ("debug_symbols", DebugSymbolStore, "DebugSymbolStore(self, 'Symbols')"),
    )
    for name, expected, example in optional:
        props.check(owner, name, values[name], expected, example=example, optional=True)
    for name, expected, what in (
        ("security_groups", ec2.ISecurityGroup, "ec2.ISecurityGroup"),
        ("distribution", DistributionTarget, "DistributionTarget"),
    ):
        if values[name] is not None:
            props.check_sequence(
                owner,
                name,
                values[name],
                lambda item_name, item, expected=expected, what=what: props.check(
                    owner, item_name, item, expected, example=what
                ),
                what=what,
            )


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
        _check_prop_types(
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
        # Server access logs are delivered under a bucket policy, not an ACL (the
        # recommended setting; set for this construct's subtree before any child exists).
        # aws-assumption: s3-server-access-log-delivery
        self.node.set_context("@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy", True)
        stack = cdk.Stack.of(self)
        if family not in FAMILIES:
            raise ConfigurationError(
                f"OS family {family!r} is not supported; use one of {', '.join(FAMILIES)}"
            )
        info = FAMILIES[family]
        self.family = family
        self.architecture = architecture
        if architecture not in ("x86_64", "arm64"):
            raise ConfigurationError(f"architecture {architecture!r} is not 'x86_64' or 'arm64'")
        if architecture == "arm64":
            if info.platform == "Windows":
                raise ConfigurationError(
                    f"{family} on arm64: EC2 has no arm64 Windows Server images; use x86_64"
                )
            cdk.Annotations.of(self).add_warning_v2(
                # aws-assumption: diagnostic-interrupt-instance-types
                "crashcart:arm64-unverified",
                "arm64 (Graviton): the diagnostic-interrupt path is unverified (the x86 "
                "unknown_nmi_panic sysctl does not apply; sources disagree on Graviton "
                "support). The image is built and kdump armed, but prove it with an in-account "
                "crash drill before relying on it.",
            )

        if debug_symbols is not None:
            debug_symbols_info(family)  # ConfigurationError on Windows, with the reason

        # Settings for the platform.
        settings: KdumpSettings | WindowsCrashDumpSettings
        if info.platform == "Windows":
            if kdump is not None:
                raise ConfigurationError(
                    f"{family} is Windows: kdump (KdumpSettings) is Linux-only; use "
                    "windows_crash_dump=WindowsCrashDumpSettings(...)"
                )
            if working_directory is not None:
                raise ConfigurationError(
                    f"{family} is Windows: working_directory is a Linux-only setting here "
                    "(the noexec /tmp problem does not exist on Windows)"
                )
            settings = windows_crash_dump or WindowsCrashDumpSettings()
        else:
            if windows_crash_dump is not None:
                raise ConfigurationError(
                    f"{family} is Linux: windows_crash_dump is Windows-only; use kdump="
                    "KdumpSettings(...)"
                )
            settings = kdump or KdumpSettings()
            working_directory = working_directory or "/root"
            check_working_directory(working_directory)
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
        deprecate_after_days = _whole(
            "deprecate_after", deprecate_after, unit="days", low=1, high=3650
        )
        image_tests_timeout_minutes = _whole(
            "image_tests_timeout", image_tests_timeout, unit="minutes", low=1, high=None
        )

        # --- Key, bucket, topic -----------------------------------------------------------
        if key is None:
            created_key = kms.Key(
                self,
                "Key",
                enable_key_rotation=True,
                description="crashcart image pipeline: EBS volumes, AMI snapshots, build logs "
                "and notifications",
                removal_policy=cdk.RemovalPolicy.RETAIN,
            )
            self._allow_imagebuilder_service_role(created_key, stack)
            key = created_key
        self.key: kms.IKey = key

        if log_bucket is None:
            access_logs = s3.Bucket(
                self,
                "AccessLogs",
                encryption=s3.BucketEncryption.S3_MANAGED,
                block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
                enforce_ssl=True,
                versioned=True,
                object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
                lifecycle_rules=[s3.LifecycleRule(expiration=cdk.Duration.days(365))],
            )
            acknowledge_all(
                access_logs,
                {
                    "NIST.800.53.R5::NIST.800.53.R5-S3DefaultEncryptionKMS": "S3 server access "
                    "logging cannot deliver to a bucket encrypted with SSE-KMS; SSE-S3 is used",
                    "HIPAA.Security::HIPAA.Security-S3DefaultEncryptionKMS": "S3 server access "
                    "logging cannot deliver to a bucket encrypted with SSE-KMS; SSE-S3 is used",
                    "PCI.DSS.321::PCI.DSS.321-S3DefaultEncryptionKMS": "S3 server access "
                    "logging cannot deliver to a bucket encrypted with SSE-KMS; SSE-S3 is used",
                },
            )
            skip_checkov(
                access_logs,
                "CKV_AWS_18",
                "this bucket is the server access log target of the build-log bucket; "
                "logging its own access into itself would loop",
            )
            created_bucket = s3.Bucket(
                self,
                "BuildLogs",
                encryption=s3.BucketEncryption.KMS,
                encryption_key=key,
                bucket_key_enabled=True,
                block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
                enforce_ssl=True,
                versioned=True,
                server_access_logs_bucket=access_logs,
                server_access_logs_prefix="build-logs/",
                lifecycle_rules=[
                    s3.LifecycleRule(
                        expiration=cdk.Duration.days(365),
                        noncurrent_version_expiration=cdk.Duration.days(30),
                    )
                ],
            )
            log_bucket = created_bucket
            self._acknowledge_replication(access_logs)
            self._acknowledge_replication(created_bucket)
        self.log_bucket: s3.IBucket = log_bucket

        if topic is None:
            # aws-assumption: tls-only-resource-policies
            created_topic = sns.Topic(self, "Notifications", master_key=key, enforce_ssl=True)
            topic = created_topic
        self.topic: sns.ITopic = topic

        # --- Instance role ------------------------------------------------------------------
        self.instance_role = iam.Role(
            self,
            "InstanceRole",
            # aws-assumption: service-role-trust-principals
            assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
            description="crashcart image pipeline build and test instances",
            managed_policies=[
                iam.ManagedPolicy.from_aws_managed_policy_name("AmazonSSMManagedInstanceCore")
            ],
        )
        instance_profile = iam.CfnInstanceProfile(
            self, "InstanceProfile", roles=[self.instance_role.role_name]
        )

        # --- Components -----------------------------------------------------------------------
        self.component_documents: dict[str, str] = {}
        self.components: list[imagebuilder.CfnComponent] = []
        component_arns: list[imagebuilder.CfnImageRecipe.ComponentConfigurationProperty] = []
        partition, region = cdk.Aws.PARTITION, cdk.Aws.REGION
        aws_component = f"arn:{partition}:imagebuilder:{region}:aws:component"

        if info.os_update_template:
            update = self._component(
                "OsUpdateComponent",
                render_component(family, "os-update", settings, architecture=architecture),
                phase_set="os-update",
                platform=info.platform,
                version=component_version,
            )
            component_arns.append(
                imagebuilder.CfnImageRecipe.ComponentConfigurationProperty(
                    component_arn=update.attr_arn
                )
            )
        else:
            component_arns.append(
                imagebuilder.CfnImageRecipe.ComponentConfigurationProperty(
                    # aws-assumption: imagebuilder-managed-update-components
                    component_arn=f"{aws_component}/update-windows/x.x.x"
                )
            )

        hardening = hardening or (
            Hardening.aws_stig("high")
            if info.aws_stig
            else Hardening.none(f"AWS publishes no STIG component for {info.label}")
        )
        if hardening.kind == "aws-stig":
            if not info.aws_stig:
                raise ConfigurationError(
                    f"Hardening.aws_stig() on {family}: AWS publishes no STIG component for "
                    f"{info.label}; give Hardening.component(your_arn) or Hardening.none(reason)"
                )
            if info.platform == "Windows":
                component_arns.append(
                    imagebuilder.CfnImageRecipe.ComponentConfigurationProperty(
                        # aws-assumption: imagebuilder-stig-components
                        component_arn=f"{aws_component}/stig-build-windows-{hardening.level}/x.x.x"
                    )
                )
            else:
                component_arns.append(
                    imagebuilder.CfnImageRecipe.ComponentConfigurationProperty(
                        # aws-assumption: imagebuilder-stig-components
                        component_arn=f"{aws_component}/stig-build-linux/x.x.x",
                        parameters=[
                            imagebuilder.CfnImageRecipe.ComponentParameterProperty(
                                name="Level", value=[hardening.level.capitalize()]
                            )
                        ],
                    )
                )
        elif hardening.kind == "component":
            component_arns.append(
                imagebuilder.CfnImageRecipe.ComponentConfigurationProperty(
                    component_arn=hardening.component_arn,
                    parameters=[
                        imagebuilder.CfnImageRecipe.ComponentParameterProperty(
                            name=name, value=[value]
                        )
                        for name, value in hardening.parameters
                    ]
                    or None,
                )
            )
        self.hardening = hardening

        if info.platform == "Linux" and not agent_files():
            cdk.Annotations.of(self).add_warning_v2("crashcart:agent-missing", AGENT_MISSING_NOTE)
        crash_dump = self._component(
            "CrashDumpComponent",
            render_component(family, "crash-dump", settings, architecture=architecture),
            phase_set="crash-dump",
            platform=info.platform,
            version=component_version,
        )
        component_arns.append(
            imagebuilder.CfnImageRecipe.ComponentConfigurationProperty(
                component_arn=crash_dump.attr_arn
            )
        )
        #: The debug-symbol store the build publishes to, or None.
        self.debug_symbols = debug_symbols
        if debug_symbols is not None:
            # After the crash-dump component: its build phase ends with the reboot into the
            # AMI's kernel, and build phases run in recipe order.
            symbols_component = self._component(
                "DebugSymbolsComponent",
                render_debug_symbols(family),
                phase_set=DEBUG_SYMBOLS_PHASE_SET,
                platform=info.platform,
                version=component_version,
            )
            component_arns.append(
                imagebuilder.CfnImageRecipe.ComponentConfigurationProperty(
                    component_arn=symbols_component.attr_arn,
                    parameters=[
                        imagebuilder.CfnImageRecipe.ComponentParameterProperty(
                            name=BUCKET_PARAMETER, value=[debug_symbols.bucket.bucket_name]
                        )
                    ],
                )
            )
            unverified = debug_symbols_info(family).unverified
            if unverified:
                cdk.Annotations.of(self).add_warning_v2(
                    "crashcart:debug-symbols-unverified",
                    f"debug symbols on {info.label} are unverified: {unverified}. A failed "
                    "install or publish fails the image build.",
                )

        # --- Recipe ---------------------------------------------------------------------------
        pipeline_tag_value = cdk.Names.unique_id(self)[-60:]
        # EC2 tag values: letters, digits, spaces and _ . : / = + - @ (no commas).
        crashkernel = (
            settings.crashkernel.replace(",", " ")
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
        block_devices = [
            imagebuilder.CfnImageRecipe.InstanceBlockDeviceMappingProperty(
                device_name=root_device_name or info.root_device_name,
                ebs=imagebuilder.CfnImageRecipe.EbsInstanceBlockDeviceSpecificationProperty(
                    encrypted=True,
                    kms_key_id=key.key_arn,
                    volume_size=root_volume_gib or info.root_volume_gib,
                    volume_type="gp3",
                    delete_on_termination=True,
                ),
            )
        ]
        description = f"crashcart kdump-ready {info.label} ({architecture}); hardening: " + (
            f"AWS STIG {hardening.level}"
            if hardening.kind == "aws-stig"
            else hardening.component_arn
            if hardening.kind == "component"
            else f"none ({hardening.reason})"
        )
        recipe_material = stack.resolve(
            {
                "parent": parent.render(),
                "components": component_arns,
                "componentVersions": [c.version for c in self.components],
                "blockDevices": block_devices,
                "workingDirectory": working_directory,
                "amiTags": ami_tags,
                "description": description,
            }
        )
        self.recipe = imagebuilder.CfnImageRecipe(
            self,
            "Recipe",
            name=self._name("recipe"),
            version=component_version or version_from_content(recipe_material),
            parent_image=parent.render(),
            components=component_arns,
            block_device_mappings=block_devices,
            working_directory=working_directory,
            ami_tags=ami_tags,
            description=description[:1024],
        )

        # --- Infrastructure -------------------------------------------------------------------
        self.infrastructure_configuration = imagebuilder.CfnInfrastructureConfiguration(
            self,
            "Infrastructure",
            name=self._name("infrastructure"),
            description="crashcart: IMDSv2-only, encrypted, terminated on failure",
            instance_profile_name=instance_profile.ref,
            instance_types=types,
            instance_metadata_options=imagebuilder.CfnInfrastructureConfiguration.InstanceMetadataOptionsProperty(
                http_tokens="required", http_put_response_hop_limit=1
            ),
            terminate_instance_on_failure=True,
            sns_topic_arn=topic.topic_arn,
            logging=imagebuilder.CfnInfrastructureConfiguration.LoggingProperty(
                s3_logs=imagebuilder.CfnInfrastructureConfiguration.S3LogsProperty(
                    s3_bucket_name=log_bucket.bucket_name, s3_key_prefix="imagebuilder"
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
        distributions = []
        for target in targets:
            same_region = cdk.Token.is_unresolved(target.region) or (target.region == stack.region)
            target_key = target.kms_key
            if target_key is None:
                if not same_region:
                    raise ConfigurationError(
                        f"distribution to {target.region}: give a kms_key for that Region (a "
                        "KMS key is regional; without one the AMI copy cannot be encrypted with "
                        "a customer key and shared copies will not launch)"
                    )
                target_key = key
            if target.accounts:
                self.grant_shared_ami_key_use(target_key, target.accounts)
            distributions.append(
                imagebuilder.CfnDistributionConfiguration.DistributionProperty(
                    region=target.region,
                    # AmiDistributionConfiguration is untyped JSON in the CloudFormation
                    # schema: CDK passes it through as is, so the keys are PascalCase here.
                    ami_distribution_configuration=_ami_distribution(
                        # aws-assumption: imagebuilder-distribution-settings
                        name=f"crashcart-{family}-{architecture}-{{{{ imagebuilder:buildDate }}}}",
                        description=f"crashcart kdump-ready {info.label} ({architecture}), "
                        "candidate",
                        kms_key_arn=target_key.key_arn,
                        ami_tags=ami_tags,
                        accounts=list(target.accounts),
                    ),
                    ssm_parameter_configurations=[
                        imagebuilder.CfnDistributionConfiguration.SsmParameterConfigurationProperty(
                            parameter_name=self.candidate_ami_parameter_name,
                            # aws-assumption: imagebuilder-distribution-settings
                            data_type="aws:ec2:image",
                        )
                    ],
                    launch_template_configurations=[
                        imagebuilder.CfnDistributionConfiguration.LaunchTemplateConfigurationProperty(
                            launch_template_id=template.ref,
                            set_default_version=set_launch_template_default,
                        )
                        for template in launch_templates
                    ]
                    if launch_templates and same_region
                    else None,
                )
            )
        self.distribution_configuration = imagebuilder.CfnDistributionConfiguration(
            self,
            "Distribution",
            name=self._name("distribution"),
            description="crashcart: encrypted AMIs, candidate parameter per Region",
            distributions=distributions,
        )

        # --- Pipeline -------------------------------------------------------------------------
        self.pipeline = imagebuilder.CfnImagePipeline(
            self,
            "Pipeline",
            name=self._name("pipeline"),
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
        self._grant_instance_role(pipeline_tag_value)
        if debug_symbols is not None:
            debug_symbols.grant_publish(self.instance_role)

        # --- Lifecycle policy -------------------------------------------------------------------
        self.lifecycle_policy: imagebuilder.CfnLifecyclePolicy | None = None
        if deprecate_after_days is not None:
            lifecycle_role = iam.Role(
                self,
                "LifecycleRole",
                # aws-assumption: service-role-trust-principals
                assumed_by=iam.ServicePrincipal("imagebuilder.amazonaws.com"),
                description="crashcart image pipeline lifecycle policy (deprecate old AMIs)",
                managed_policies=[
                    iam.ManagedPolicy.from_aws_managed_policy_name(
                        "service-role/EC2ImageBuilderLifecycleExecutionPolicy"
                    )
                ],
            )
            acknowledge(
                lifecycle_role,
                "AwsSolutions::AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/"
                "service-role/EC2ImageBuilderLifecycleExecutionPolicy]",
                "AWS's managed execution policy for Image Builder lifecycle policies; the "
                "service acts only on the resources the policy selects (this pipeline's tag)",
            )
            self.lifecycle_policy = imagebuilder.CfnLifecyclePolicy(
                self,
                "Lifecycle",
                name=self._name("lifecycle"),
                description="crashcart: deprecate old kdump-ready AMIs of this pipeline",
                execution_role=lifecycle_role.role_arn,
                resource_type="AMI_IMAGE",
                policy_details=[
                    imagebuilder.CfnLifecyclePolicy.PolicyDetailProperty(
                        action=imagebuilder.CfnLifecyclePolicy.ActionProperty(type="DEPRECATE"),
                        filter=imagebuilder.CfnLifecyclePolicy.FilterProperty(
                            type="AGE", value=deprecate_after_days, unit="DAYS", retain_at_least=2
                        ),
                    )
                ],
                resource_selection=imagebuilder.CfnLifecyclePolicy.ResourceSelectionProperty(
                    tag_map={PIPELINE_TAG: pipeline_tag_value}
                ),
            )

    # ------------------------------------------------------------------------------------------
    def _name(self, suffix: str) -> str:
        return cdk.Names.unique_resource_name(self, max_length=100, separator="-") + f"-{suffix}"

    def _component(
        self,
        construct_id: str,
        document: str,
        *,
        phase_set: str,
        platform: str,
        version: str | None,
    ) -> imagebuilder.CfnComponent:
        """One component: inline ``Data`` up to 16,000 characters, else ``Uri`` to an asset."""
        self.component_documents[phase_set] = document
        component_version = version or version_from_content(document, platform)
        data: str | None = document
        uri: str | None = None
        if len(document) > INLINE_DATA_LIMIT:
            # One file per distinct content (CDK stages it into the assembly as an asset).
            digest = hashlib.sha256(document.encode("utf-8")).hexdigest()
            folder = Path(tempfile.gettempdir()) / "crashcart-components" / digest
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{phase_set}.yaml"
            if not path.is_file() or path.read_text(encoding="utf-8") != document:
                path.write_text(document, encoding="utf-8")
            asset = s3_assets.Asset(self, f"{construct_id}Document", path=str(path))
            data, uri = None, asset.s3_object_url
        component = imagebuilder.CfnComponent(
            self,
            construct_id,
            name=self._name(phase_set),
            platform=platform,
            version=component_version,
            description=f"crashcart {phase_set} ({self.family}, {self.architecture})",
            change_description=f"content {component_version}",
            data=data,
            uri=uri,
            kms_key_id=self.key.key_arn,
        )
        self.components.append(component)
        return component

    def _allow_imagebuilder_service_role(self, key: kms.Key, stack: cdk.Stack) -> None:
        """Let Image Builder's service-linked role use the key for EBS and SNS, through
        those services only. The role is matched by ARN condition, so the key policy is
        valid before the role exists (it is created the first time Image Builder is used)."""
        slr_arn = f"arn:{cdk.Aws.PARTITION}:iam::{cdk.Aws.ACCOUNT_ID}:{_IMAGEBUILDER_SLR}"
        # Image Builder publishes its notifications with this role (whose AWS managed policy
        # allows sns:Publish), so the topic's key must allow the role, not a service
        # principal. aws-assumption: image-builder-notifies-with-its-service-role
        key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="ImageBuilderServiceRoleViaEc2AndSns",
                principals=[iam.AnyPrincipal()],
                actions=[
                    "kms:Decrypt",
                    "kms:DescribeKey",
                    "kms:Encrypt",
                    "kms:GenerateDataKey*",
                    "kms:ReEncrypt*",
                ],
                resources=["*"],
                conditions={
                    "ArnEquals": {"aws:PrincipalArn": slr_arn},
                    "StringEquals": {"aws:PrincipalAccount": cdk.Aws.ACCOUNT_ID},
                    "ForAnyValue:StringEquals": {
                        "kms:ViaService": [
                            f"ec2.{cdk.Aws.REGION}.amazonaws.com",
                            f"sns.{cdk.Aws.REGION}.amazonaws.com",
                        ]
                    },
                },
            )
        )
        key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="ImageBuilderServiceRoleGrantsForEbs",
                principals=[iam.AnyPrincipal()],
                actions=["kms:CreateGrant"],
                resources=["*"],
                conditions={
                    "ArnEquals": {"aws:PrincipalArn": slr_arn},
                    "StringEquals": {"aws:PrincipalAccount": cdk.Aws.ACCOUNT_ID},
                    "Bool": {"kms:GrantIsForAWSResource": "true"},
                },
            )
        )
        skip_checkov(
            key,
            "CKV_AWS_33",
            "the two '*' principals are narrowed by an ArnEquals aws:PrincipalArn condition to "
            "Image Builder's service-linked role of this account (through EC2 and SNS, or "
            "grants for AWS resources); naming the role as principal would make the key "
            "policy invalid until Image Builder first creates that role",
        )

    @staticmethod
    # aws-assumption: shared-ami-key-grants
    def grant_shared_ami_key_use(key: kms.IKey, accounts: Sequence[str]) -> None:
        """Let ``accounts`` launch AMIs whose snapshots ``key`` encrypts.

        Adds key-policy statements (a no-op on an imported key: call this in the stack that
        owns the key of that Region). The target accounts still need IAM permissions of their
        own, and an Auto Scaling group there needs a grant for its service-linked role.
        """
        principals: list[iam.IPrincipal] = [iam.AccountPrincipal(a) for a in accounts]
        key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="SharedAmiUse",
                principals=principals,
                actions=[
                    "kms:Decrypt",
                    "kms:DescribeKey",
                    "kms:GenerateDataKeyWithoutPlaintext",
                    "kms:ReEncrypt*",
                ],
                resources=["*"],
            )
        )
        key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="SharedAmiGrants",
                principals=principals,
                actions=["kms:CreateGrant"],
                resources=["*"],
                conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}},
            )
        )

    def _grant_instance_role(self, pipeline_tag_value: str) -> None:
        role = self.instance_role
        partition, region, account = cdk.Aws.PARTITION, cdk.Aws.REGION, cdk.Aws.ACCOUNT_ID
        own_components = [c.attr_arn for c in self.components]
        # A customer managed policy (not inline): the NIST / HIPAA / PCI packs ask for that.
        policy = iam.ManagedPolicy(
            self,
            "InstancePolicy",
            roles=[role],
            description="crashcart image pipeline build/test instances: components, logs, "
            "kernel-release tag",
        )
        log_keys = [self.key.key_arn]
        if (
            self.log_bucket.encryption_key is not None
            and self.log_bucket.encryption_key is not self.key
        ):
            log_keys.append(self.log_bucket.encryption_key.key_arn)
        policy.add_statements(
            iam.PolicyStatement(
                sid="ReadComponents",
                actions=["imagebuilder:GetComponent"],
                resources=[
                    *own_components,
                    f"arn:{partition}:imagebuilder:{region}:aws:component/*",
                ],
            ),
            iam.PolicyStatement(
                # aws-assumption: imagebuilder-component-key-context
                sid="DecryptComponents",
                actions=["kms:Decrypt"],
                resources=[self.key.key_arn],
                conditions={
                    "ForAnyValue:StringEquals": {
                        "kms:EncryptionContextKeys": "aws:imagebuilder:arn"
                    },
                    "StringEquals": {"kms:ViaService": f"imagebuilder.{region}.amazonaws.com"},
                },
            ),
            iam.PolicyStatement(
                sid="DownloadAwsManagedComponentFiles",
                actions=["s3:GetObject"],
                # aws-assumption: imagebuilder-build-instance-access
                resources=[f"arn:{partition}:s3:::ec2imagebuilder*"],
            ),
            iam.PolicyStatement(
                sid="BuildLogsToCloudWatch",
                actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[
                    f"arn:{partition}:logs:{region}:{account}:log-group:/aws/imagebuilder/*"
                ],
            ),
            iam.PolicyStatement(
                # aws-assumption: ec2-tag-condition-keys
                sid="TagOwnAmiWithKernelRelease",
                actions=["ec2:CreateTags"],
                resources=[f"arn:{partition}:ec2:{region}::image/*"],
                conditions={
                    "StringEquals": {f"aws:ResourceTag/{PIPELINE_TAG}": pipeline_tag_value},
                    "ForAllValues:StringEquals": {"aws:TagKeys": [KERNEL_RELEASE_TAG]},
                },
            ),
            iam.PolicyStatement(
                sid="WriteBuildLogs",
                actions=["s3:PutObject"],
                resources=[self.log_bucket.arn_for_objects("imagebuilder/*")],
            ),
            iam.PolicyStatement(
                # aws-assumption: kms-via-s3-encryption-context
                sid="EncryptBuildLogs",
                actions=["kms:GenerateDataKey", "kms:Encrypt"],
                resources=log_keys,
                conditions={"StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"}},
            ),
        )
        acknowledge(
            role,
            "AwsSolutions::AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/"
            "AmazonSSMManagedInstanceCore]",
            "Image Builder drives build and test instances through the SSM agent; AWS's "
            "managed policy is the maintained minimum for the agent (no data access)",
        )
        acknowledge_all(
            policy,
            {
                "AwsSolutions::AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:imagebuilder:"
                "<AWS::Region>:aws:component/*]": "AWS-managed components (update, STIG) are "
                "referenced with the x.x.x wildcard: their build versions are not known at synth",
                "AwsSolutions::AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::"
                "ec2imagebuilder*]": "AWS-managed components download their files from "
                "AWS-owned ec2imagebuilder* buckets whose names are per Region and not published",
                "AwsSolutions::AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:logs:"
                "<AWS::Region>:<AWS::AccountId>:log-group:/aws/imagebuilder/*]": "Image Builder "
                "names one log group per image under /aws/imagebuilder/ at build time",
                "AwsSolutions::AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:"
                "<AWS::Region>::image/*]": "The AMI id is only known at build time; the statement "
                "is limited to AMIs carrying this pipeline's tag and to the kernel-release tag key",
                "AwsSolutions::AwsSolutions-IAM5[Resource::<"
                + stack_logical_id(self.log_bucket)
                + ".Arn>/imagebuilder/*]": "Build-log object keys are generated per build "
                "under the imagebuilder/ prefix of the build-log bucket",
            },
        )

    def _acknowledge_replication(self, bucket: s3.Bucket) -> None:
        acknowledge_all(
            bucket,
            {
                "NIST.800.53.R5::NIST.800.53.R5-S3BucketReplicationEnabled": "Build logs and "
                "their access logs are diagnostic records kept 365 days; cross-Region "
                "replication is left to the account's backup policy",
                "HIPAA.Security::HIPAA.Security-S3BucketReplicationEnabled": "Build logs and "
                "their access logs are diagnostic records kept 365 days; cross-Region "
                "replication is left to the account's backup policy",
                "PCI.DSS.321::PCI.DSS.321-S3BucketReplicationEnabled": "Build logs and their "
                "access logs are diagnostic records kept 365 days; cross-Region replication is "
                "left to the account's backup policy",
            },
        )

    # ------------------------------------------------------------------------------------------
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


def stack_logical_id(bucket: s3.IBucket) -> str:
    """The logical id of a bucket's CfnBucket (for a finding id), or its name token."""
    default_child = bucket.node.default_child
    if isinstance(default_child, cdk.CfnElement):
        return cdk.Stack.of(bucket).get_logical_id(default_child)
    return "imported-bucket"


def _whole(
    name: str, value: cdk.Duration | None, *, unit: str, low: int, high: int | None
) -> float | None:
    """``value`` in whole ``unit`` (days / minutes), checked; None stays None.

    A token is passed through unresolved (CloudFormation checks it at deployment).
    """
    if value is None:
        return None
    if not isinstance(value, cdk.Duration):
        raise ConfigurationError(
            f"{name}={value!r}: must be a cdk.Duration, e.g. cdk.Duration.{unit}({low})"
        )
    if value.is_unresolved():
        # A token stays a token (a number CloudFormation resolves at deployment).
        return value.to_days() if unit == "days" else value.to_minutes()
    try:
        amount = value.to_days() if unit == "days" else value.to_minutes()
    except Exception:  # jsii: not a whole number of the unit
        raise ConfigurationError(
            f"{name}={value.to_human_string()}: must be a whole number of {unit}"
        ) from None
    if amount < low or (high is not None and amount > high):
        allowed = f"{low}-{high}" if high is not None else f"at least {low}"
        raise ConfigurationError(f"{name}={value.to_human_string()}: use {allowed} {unit}")
    return int(amount)
