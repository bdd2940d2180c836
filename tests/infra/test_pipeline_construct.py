"""KdumpImagePipeline: what the synthesized template says (and must not say)."""

from __future__ import annotations

import json
from typing import Any

import aws_cdk as cdk
import pytest
import yaml
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_kms as kms
from aws_cdk.assertions import Annotations, Match, Template

from crashcart.components.render import agent_files, render_component
from crashcart.constructs.kdump_image_pipeline import (
    INLINE_DATA_LIMIT,
    DistributionTarget,
    Hardening,
    KdumpImagePipeline,
    ParentImage,
    PipelineSchedule,
)
from crashcart.errors import ConfigurationError
from crashcart.kdump import KdumpSettings, WindowsCrashDumpSettings
from tests.support.pipeline import ENV

SSM_CORE = ":iam::aws:policy/AmazonSSMManagedInstanceCore"
CANDIDATE = "/crashcart/ami/amazon-linux-2023/x86_64/candidate"
DEPENDENCY_UPDATES = "EXPRESSION_MATCH_AND_DEPENDENCY_UPDATES_AVAILABLE"
REMOTE_KEY = "arn:aws:kms:us-east-1:111111111111:key/11111111-2222-3333-4444-555555555555"
HARDENING_ARN = "arn:aws:imagebuilder:eu-west-1:111111111111:component/my-cis/1.2.3"


class Built:
    def __init__(self) -> None:
        self.app = cdk.App()
        minimal_stack = cdk.Stack(self.app, "Minimal", env=ENV)
        self.minimal = KdumpImagePipeline(minimal_stack, "Pipeline", architecture="x86_64")
        full_stack = cdk.Stack(self.app, "Full", env=ENV)
        vpc = ec2.Vpc(full_stack, "Vpc", max_azs=1, nat_gateways=0, subnet_configuration=[
            ec2.SubnetConfiguration(name="private", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)
        ])  # fmt: skip
        sg = ec2.SecurityGroup(full_stack, "BuildSg", vpc=vpc, allow_all_outbound=True)
        template = ec2.CfnLaunchTemplate(
            full_stack, "Lt", launch_template_data=ec2.CfnLaunchTemplate.LaunchTemplateDataProperty(
                instance_type="m7i.large"
            )
        )  # fmt: skip
        self.full = KdumpImagePipeline(
            full_stack,
            "Pipeline",
            family="rhel-9",
            architecture="x86_64",
            kdump=KdumpSettings(crashkernel="1G-:256M", softlockup_panic=True),
            parent_image=ParentImage.from_managed_image("red-hat-enterprise-linux-9-x86"),
            hardening=Hardening.component(HARDENING_ARN, {"Profile": "level2"}),
            instance_types=["c7i.large"],
            subnet=vpc.isolated_subnets[0],
            security_groups=[sg],
            distribution=[
                DistributionTarget(region="eu-west-1", accounts=["222222222222"]),
                DistributionTarget(
                    region="us-east-1",
                    kms_key=kms.Key.from_key_arn(full_stack, "RemoteKey", REMOTE_KEY),
                    accounts=["333333333333"],
                ),
            ],
            launch_templates=[template],
            set_launch_template_default=True,
            candidate_ami_parameter_name="/team/ami/rhel9",
            schedule=PipelineSchedule.cron("cron(0 4 ? * mon *)", on_parent_update=True),
            deprecate_after=cdk.Duration.days(30),
            component_version="2.3.4",
            working_directory="/var/lib/build",
            root_volume_gib=40,
            image_tests_timeout=cdk.Duration.minutes(120),
        )
        windows_stack = cdk.Stack(self.app, "Windows", env=ENV)
        self.windows = KdumpImagePipeline(
            windows_stack, "Pipeline", family="windows-server-2022", architecture="x86_64",
            windows_crash_dump=WindowsCrashDumpSettings(dump_type="complete"),
        )  # fmt: skip
        arm_stack = cdk.Stack(self.app, "Arm", env=ENV)
        self.arm = KdumpImagePipeline(
            arm_stack, "Pipeline", family="debian-12", architecture="arm64"
        )
        self.templates = {
            name: Template.from_stack(stack)
            for name, stack in {
                "minimal": minimal_stack, "full": full_stack, "windows": windows_stack,
                "arm": arm_stack,
            }.items()
        }  # fmt: skip
        self.stacks = {"minimal": minimal_stack, "arm": arm_stack, "full": full_stack}


@pytest.fixture(scope="module")
def built() -> Built:
    return Built()


def _one(template: Template, type_: str) -> dict[str, Any]:
    resources = template.find_resources(type_)
    assert len(resources) == 1, resources.keys()
    return next(iter(resources.values()))["Properties"]  # type: ignore[no-any-return]


def _logical_id(template: Template, type_: str, contains: str) -> str:
    ids = [k for k in template.find_resources(type_) if contains in k]
    assert len(ids) == 1, ids
    return ids[0]


# --- minimal props ------------------------------------------------------------------------------


def test_minimal_props_resource_counts(built: Built) -> None:
    template = built.templates["minimal"]
    for type_, count in {
        "AWS::ImageBuilder::Component": 2,
        "AWS::ImageBuilder::ImageRecipe": 1,
        "AWS::ImageBuilder::InfrastructureConfiguration": 1,
        "AWS::ImageBuilder::DistributionConfiguration": 1,
        "AWS::ImageBuilder::ImagePipeline": 1,
        "AWS::ImageBuilder::LifecyclePolicy": 0,
        "AWS::KMS::Key": 1,
        "AWS::S3::Bucket": 2,
        "AWS::SNS::Topic": 1,
        "AWS::IAM::Role": 1,
        "AWS::IAM::InstanceProfile": 1,
        "AWS::IAM::ManagedPolicy": 1,
        "AWS::IAM::Policy": 0,  # no inline policies
    }.items():
        template.resource_count_is(type_, count)


def test_recipe_components_in_order_update_hardening_kdump(built: Built) -> None:
    template = built.templates["minimal"]
    update = _logical_id(template, "AWS::ImageBuilder::Component", "OsUpdate")
    crash = _logical_id(template, "AWS::ImageBuilder::Component", "CrashDump")
    recipe = _one(template, "AWS::ImageBuilder::ImageRecipe")
    components = recipe["Components"]
    assert len(components) == 3
    assert components[0] == {"ComponentArn": {"Fn::GetAtt": [update, "Arn"]}}
    stig = json.dumps(components[1])
    assert ":aws:component/stig-build-linux/x.x.x" in stig
    assert components[1]["Parameters"] == [{"Name": "Level", "Value": ["High"]}]
    assert components[2] == {"ComponentArn": {"Fn::GetAtt": [crash, "Arn"]}}


def test_recipe_parent_working_directory_encryption_and_tags(built: Built) -> None:
    template = built.templates["minimal"]
    key = _logical_id(template, "AWS::KMS::Key", "Key")
    recipe = _one(template, "AWS::ImageBuilder::ImageRecipe")
    assert ":aws:image/amazon-linux-2023-x86/x.x.x" in json.dumps(recipe["ParentImage"])
    assert recipe["WorkingDirectory"] == "/root"
    assert recipe["BlockDeviceMappings"] == [
        {
            "DeviceName": "/dev/xvda",
            "Ebs": {
                "DeleteOnTermination": True,
                "Encrypted": True,
                "KmsKeyId": {"Fn::GetAtt": [key, "Arn"]},
                "VolumeSize": 20,
                "VolumeType": "gp3",
            },
        }
    ]
    tags = recipe["AmiTags"]
    assert tags["crashcart:os-family"] == "amazon-linux-2023"
    assert tags["crashcart:architecture"] == "x86_64"
    assert tags["crashcart:crashkernel"] == "768M-4G:192M 4G-64G:256M 64G-:512M"
    assert "crashcart:kernel-release" not in tags  # added by the test phase, at build time
    assert all("," not in value for value in tags.values())


def test_infrastructure_imdsv2_terminate_logs_topic_role(built: Built) -> None:
    template = built.templates["minimal"]
    bucket = _logical_id(template, "AWS::S3::Bucket", "BuildLogs")
    topic = _logical_id(template, "AWS::SNS::Topic", "Notifications")
    profile = _logical_id(template, "AWS::IAM::InstanceProfile", "InstanceProfile")
    template.has_resource_properties(
        "AWS::ImageBuilder::InfrastructureConfiguration",
        {
            "InstanceMetadataOptions": {"HttpTokens": "required", "HttpPutResponseHopLimit": 1},
            "TerminateInstanceOnFailure": True,
            "InstanceProfileName": {"Ref": profile},
            "InstanceTypes": ["m7i.large", "m6i.large"],
            "SnsTopicArn": {"Ref": topic},
            "Logging": {"S3Logs": {"S3BucketName": {"Ref": bucket}, "S3KeyPrefix": "imagebuilder"}},
            "SubnetId": Match.absent(),
            "SecurityGroupIds": Match.absent(),
        },
    )


def test_build_log_bucket_and_topic_are_encrypted_with_the_key(built: Built) -> None:
    template = built.templates["minimal"]
    key = _logical_id(template, "AWS::KMS::Key", "Key")
    template.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "BucketEncryption": {
                "ServerSideEncryptionConfiguration": [
                    Match.object_like(
                        {
                            "ServerSideEncryptionByDefault": {
                                "SSEAlgorithm": "aws:kms",
                                "KMSMasterKeyID": {"Fn::GetAtt": [key, "Arn"]},
                            }
                        }
                    )
                ]
            },
            "LoggingConfiguration": Match.object_like({"LogFilePrefix": "build-logs/"}),
            "PublicAccessBlockConfiguration": Match.object_like({"BlockPublicAcls": True}),
        },
    )
    template.has_resource_properties(
        "AWS::SNS::Topic", {"KmsMasterKeyId": {"Fn::GetAtt": [key, "Arn"]}}
    )
    template.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})


def test_instance_role_is_least_privilege(built: Built) -> None:
    template = built.templates["minimal"]
    role = _logical_id(template, "AWS::IAM::Role", "InstanceRole")
    template.has_resource_properties(
        "AWS::IAM::Role",
        {
            "AssumeRolePolicyDocument": Match.object_like(
                {"Statement": [Match.object_like({"Principal": {"Service": "ec2.amazonaws.com"}})]}
            ),
            "ManagedPolicyArns": [
                {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, SSM_CORE]]}
            ],
        },
    )  # fmt: skip
    policy = _one(template, "AWS::IAM::ManagedPolicy")
    assert policy["Roles"] == [{"Ref": role}]
    statements = {s["Sid"]: s for s in policy["PolicyDocument"]["Statement"]}
    assert set(statements) == {
        "ReadComponents", "DecryptComponents", "DownloadAwsManagedComponentFiles",
        "BuildLogsToCloudWatch", "TagOwnAmiWithKernelRelease", "WriteBuildLogs",
        "EncryptBuildLogs",
    }  # fmt: skip
    for statement in statements.values():
        assert statement["Resource"] != "*", statement["Sid"]
        assert "*" not in json.dumps(statement["Action"]), statement["Sid"]
    tagging = statements["TagOwnAmiWithKernelRelease"]
    assert tagging["Action"] == "ec2:CreateTags"
    assert tagging["Condition"]["ForAllValues:StringEquals"] == {
        "aws:TagKeys": ["crashcart:kernel-release"]
    }
    assert "aws:ResourceTag/crashcart:pipeline" in tagging["Condition"]["StringEquals"]


def test_distribution_encrypted_tagged_and_candidate_parameter(built: Built) -> None:
    template = built.templates["minimal"]
    key = _logical_id(template, "AWS::KMS::Key", "Key")
    distribution = _one(template, "AWS::ImageBuilder::DistributionConfiguration")
    (only,) = distribution["Distributions"]
    assert only["Region"] == "eu-west-1"
    ami = only["AmiDistributionConfiguration"]
    assert ami["KmsKeyId"] == {"Fn::GetAtt": [key, "Arn"]}
    assert ami["AmiTags"]["crashcart:status"] == "candidate"
    assert "{{ imagebuilder:buildDate }}" in ami["Name"]
    assert "LaunchPermissionConfiguration" not in ami
    assert only["SsmParameterConfigurations"] == [
        {"DataType": "aws:ec2:image", "ParameterName": CANDIDATE}
    ]
    assert "LaunchTemplateConfigurations" not in only


def test_pipeline_schedule_scanning_tests(built: Built) -> None:
    template = built.templates["minimal"]
    template.has_resource_properties(
        "AWS::ImageBuilder::ImagePipeline",
        {
            "Status": "ENABLED",
            "EnhancedImageMetadataEnabled": True,
            "ImageScanningConfiguration": {"ImageScanningEnabled": True},
            "ImageTestsConfiguration": {"ImageTestsEnabled": True, "TimeoutMinutes": 90},
            "Schedule": {
                "ScheduleExpression": "cron(0 3 ? * sun *)",
                "PipelineExecutionStartCondition": "EXPRESSION_MATCH_ONLY",
                "Timezone": "Etc/UTC",
            },
        },
    )


def test_large_document_ships_via_uri_small_one_inline(built: Built) -> None:
    template = built.templates["minimal"]
    crash = template.find_resources("AWS::ImageBuilder::Component")[
        _logical_id(template, "AWS::ImageBuilder::Component", "CrashDump")
    ]["Properties"]
    update = template.find_resources("AWS::ImageBuilder::Component")[
        _logical_id(template, "AWS::ImageBuilder::Component", "OsUpdate")
    ]["Properties"]
    assert len(built.minimal.component_documents["crash-dump"]) > INLINE_DATA_LIMIT
    assert "Data" not in crash
    assert json.dumps(crash["Uri"]).startswith('"s3://')
    assert update["Data"] == built.minimal.component_documents["os-update"]
    assert "Uri" not in update
    # every document is rendered from the same source the drill uses
    assert built.minimal.component_documents["crash-dump"] == render_component(
        "amazon-linux-2023", "crash-dump", KdumpSettings()
    )


def test_windows_is_capture_only_with_inline_document(built: Built) -> None:
    template = built.templates["windows"]
    template.resource_count_is("AWS::ImageBuilder::Component", 1)
    component = _one(template, "AWS::ImageBuilder::Component")
    assert component["Platform"] == "Windows"
    assert len(component["Data"]) <= INLINE_DATA_LIMIT
    assert "capture-only" in yaml.safe_load(component["Data"])["description"]
    assert "CrashDumpEnabled -Value 1" in component["Data"]
    recipe = _one(template, "AWS::ImageBuilder::ImageRecipe")
    arns = json.dumps(recipe["Components"])
    assert arns.index("update-windows/x.x.x") < arns.index("stig-build-windows-high/x.x.x")
    assert "WorkingDirectory" not in recipe
    assert recipe["BlockDeviceMappings"][0]["DeviceName"] == "/dev/sda1"
    assert recipe["AmiTags"]["crashcart:crashkernel"] == "n/a (Windows)"


def test_arm64_is_accepted_with_a_warning(built: Built) -> None:
    Annotations.from_stack(built.stacks["arm"]).has_warning(
        "/Arm/Pipeline", Match.string_like_regexp("arm64 .*unverified")
    )
    Annotations.from_stack(built.stacks["minimal"]).has_no_warning(
        "*", Match.string_like_regexp("unverified")
    )
    template = built.templates["arm"]
    template.has_resource_properties(
        "AWS::ImageBuilder::InfrastructureConfiguration",
        {"InstanceTypes": ["m7g.large", "m6g.large"]},
    )
    recipe = _one(template, "AWS::ImageBuilder::ImageRecipe")
    assert recipe["ParentImage"] == "ssm:/aws/service/debian/release/12/latest/arm64"
    # Debian has no STIG: update then kdump, nothing in between
    assert len(recipe["Components"]) == 2
    assert "no STIG" in recipe["Description"]


def test_agent_warning_matches_the_agent_folder(built: Built) -> None:
    annotations = Annotations.from_stack(built.stacks["minimal"])
    if agent_files():
        annotations.has_no_warning("*", Match.string_like_regexp("agent NOT included"))
        assert "InstallCrashcartAgent" in built.minimal.component_documents["crash-dump"]
    else:
        annotations.has_warning("*", Match.string_like_regexp("agent NOT included"))


# --- all props ----------------------------------------------------------------------------------


def test_all_props_recipe_infrastructure_and_versions(built: Built) -> None:
    template = built.templates["full"]
    recipe = _one(template, "AWS::ImageBuilder::ImageRecipe")
    assert recipe["Version"] == "2.3.4"
    assert recipe["WorkingDirectory"] == "/var/lib/build"
    assert recipe["BlockDeviceMappings"][0]["Ebs"]["VolumeSize"] == 40
    assert recipe["Components"][1] == {
        "ComponentArn": HARDENING_ARN,
        "Parameters": [{"Name": "Profile", "Value": ["level2"]}],
    }
    for component in template.find_resources("AWS::ImageBuilder::Component").values():
        assert component["Properties"]["Version"] == "2.3.4"
    infra = _one(template, "AWS::ImageBuilder::InfrastructureConfiguration")
    assert infra["InstanceTypes"] == ["c7i.large"]
    assert "Ref" in infra["SubnetId"]
    assert len(infra["SecurityGroupIds"]) == 1
    assert "auto_reset_crashkernel no" in built.full.component_documents["crash-dump"]
    assert "crashkernel=1G-:256M" in built.full.component_documents["crash-dump"]


def test_all_props_distribution_regions_accounts_keys_templates(built: Built) -> None:
    template = built.templates["full"]
    distribution = _one(template, "AWS::ImageBuilder::DistributionConfiguration")
    home, remote = distribution["Distributions"]
    assert home["Region"] == "eu-west-1"
    assert home["AmiDistributionConfiguration"]["LaunchPermissionConfiguration"] == {
        "UserIds": ["222222222222"]
    }
    launch_template = _logical_id(template, "AWS::EC2::LaunchTemplate", "Lt")
    assert home["LaunchTemplateConfigurations"] == [
        {"LaunchTemplateId": {"Ref": launch_template}, "SetDefaultVersion": True}
    ]
    assert home["SsmParameterConfigurations"][0]["ParameterName"] == "/team/ami/rhel9"
    assert remote["Region"] == "us-east-1"
    assert remote["AmiDistributionConfiguration"]["KmsKeyId"] == REMOTE_KEY
    assert remote["AmiDistributionConfiguration"]["LaunchPermissionConfiguration"] == {
        "UserIds": ["333333333333"]
    }
    assert "LaunchTemplateConfigurations" not in remote  # launch templates are regional
    # the home key lets the target account use shared AMIs
    key = _one(template, "AWS::KMS::Key")
    shared = [s for s in key["KeyPolicy"]["Statement"] if s.get("Sid") == "SharedAmiGrants"]
    assert len(shared) == 1
    assert shared[0]["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": "true"}}
    assert "222222222222" in json.dumps(shared[0]["Principal"])


def test_all_props_schedule_on_parent_update_and_lifecycle(built: Built) -> None:
    template = built.templates["full"]
    template.has_resource_properties(
        "AWS::ImageBuilder::ImagePipeline",
        {
            "Schedule": {
                "ScheduleExpression": "cron(0 4 ? * mon *)",
                "PipelineExecutionStartCondition": DEPENDENCY_UPDATES,
                "Timezone": "Etc/UTC",
            },
            "ImageTestsConfiguration": {"ImageTestsEnabled": True, "TimeoutMinutes": 120},
        },
    )
    policy = _one(template, "AWS::ImageBuilder::LifecyclePolicy")
    assert policy["ResourceType"] == "AMI_IMAGE"
    assert policy["PolicyDetails"] == [
        {
            "Action": {"Type": "DEPRECATE"},
            "Filter": {"Type": "AGE", "Value": 30, "Unit": "DAYS", "RetainAtLeast": 2},
        }
    ]
    recipe = _one(template, "AWS::ImageBuilder::ImageRecipe")
    assert policy["ResourceSelection"] == {
        "TagMap": {"crashcart:pipeline": recipe["AmiTags"]["crashcart:pipeline"]}
    }


def test_manual_schedule_has_no_schedule() -> None:
    stack = cdk.Stack(cdk.App(), "Manual", env=ENV)
    KdumpImagePipeline(stack, "P", architecture="x86_64", schedule=PipelineSchedule.manual())
    _props = _one(Template.from_stack(stack), "AWS::ImageBuilder::ImagePipeline")
    assert "Schedule" not in _props


# --- versions follow content --------------------------------------------------------------------


def _versions(settings: KdumpSettings) -> tuple[str, str]:
    stack = cdk.Stack(cdk.App(), "V", env=ENV)
    pipeline = KdumpImagePipeline(stack, "P", architecture="x86_64", kdump=settings)
    resolved = (
        stack.resolve(pipeline.recipe.version),
        stack.resolve(pipeline.components[-1].version),
    )
    return str(resolved[0]), str(resolved[1])


def test_versions_change_with_content_and_only_then() -> None:
    base = _versions(KdumpSettings())
    assert base == _versions(KdumpSettings())
    changed = _versions(KdumpSettings(panic_reboot_seconds=20))
    assert changed[0] != base[0]  # recipe
    assert changed[1] != base[1]  # crash-dump component


# --- token awareness ------------------------------------------------------------------------------


def test_unresolved_tokens_skip_validation() -> None:
    stack = cdk.Stack(cdk.App(), "Tokens", env=ENV)
    instance_type = cdk.CfnParameter(stack, "Type").value_as_string
    version = cdk.CfnParameter(stack, "Version").value_as_string
    region = cdk.CfnParameter(stack, "Region").value_as_string
    pipeline = KdumpImagePipeline(
        stack, "P", architecture="x86_64", instance_types=[instance_type],
        component_version=version, distribution=[DistributionTarget(region=region)],
    )  # fmt: skip
    assert cdk.Token.is_unresolved(pipeline.recipe.version)


# --- validation errors ----------------------------------------------------------------------------


def _make(**kwargs: Any) -> KdumpImagePipeline:
    stack = cdk.Stack(cdk.App(), "Bad", env=ENV)
    kwargs.setdefault("architecture", "x86_64")
    return KdumpImagePipeline(stack, "P", **kwargs)


def test_fails_architecture_not_matching_instance_types() -> None:
    with pytest.raises(
        ConfigurationError, match=r"'m7g\.large' is arm64 but the pipeline's architecture is x86_64"
    ):
        _make(instance_types=["m7i.large", "m7g.large"])


def test_fails_a1_instance_types() -> None:
    with pytest.raises(ConfigurationError, match="A1 instances do not support"):
        _make(architecture="arm64", instance_types=["a1.large"])


def test_fails_xen_instance_types() -> None:
    with pytest.raises(ConfigurationError, match=r"'c4\.large' is Xen-based"):
        _make(instance_types=["c4.large"])


def test_fails_invalid_crashkernel() -> None:
    with pytest.raises(
        ConfigurationError, match=r"invalid crashkernel '4G-1G:128M'.*Expected crashkernel="
    ):
        _make(kdump=KdumpSettings(crashkernel="4G-1G:128M"))


def test_fails_linux_only_kdump_settings_on_windows() -> None:
    with pytest.raises(ConfigurationError, match=r"KdumpSettings\) is Linux-only"):
        _make(family="windows-server-2025", kdump=KdumpSettings())


def test_fails_linux_only_working_directory_on_windows() -> None:
    with pytest.raises(ConfigurationError, match="working_directory is a Linux-only setting"):
        _make(family="windows-server-2022", working_directory="C:\\build")


def test_fails_windows_settings_on_linux() -> None:
    with pytest.raises(ConfigurationError, match="windows_crash_dump is Windows-only"):
        _make(family="debian-12", windows_crash_dump=WindowsCrashDumpSettings())


def test_fails_empty_region_list() -> None:
    with pytest.raises(ConfigurationError, match="distribution is empty"):
        _make(distribution=[])


def test_fails_component_version_not_x_y_z() -> None:
    with pytest.raises(ConfigurationError, match=r"component version '1\.0' is not x\.y\.z"):
        _make(component_version="1.0")


@pytest.mark.parametrize(
    "parent",
    [
        ParentImage.from_ssm_parameter("/aws/service/debian/release/12/latest/amd64"),
        ParentImage.from_ami_id("ami-0123456789abcdef0"),
        ParentImage.from_managed_image("amazon-linux-2023-x86", "2025.1.1"),
        None,  # Debian's default parent is a public SSM parameter
    ],
)
def test_fails_parent_update_trigger_on_a_parent_that_cannot_have_one(
    parent: ParentImage | None,
) -> None:
    with pytest.raises(
        ConfigurationError, match="on_parent_update=True needs an Image Builder-managed parent"
    ):
        _make(
            family="debian-12", parent_image=parent,
            schedule=PipelineSchedule.cron("cron(0 3 ? * sun *)", on_parent_update=True),
        )  # fmt: skip


def test_fails_other_region_without_a_key() -> None:
    with pytest.raises(ConfigurationError, match="distribution to us-east-1: give a kms_key"):
        _make(distribution=[DistributionTarget(region="us-east-1")])


def test_fails_security_groups_without_subnet() -> None:
    stack = cdk.Stack(cdk.App(), "Sg", env=ENV)
    vpc = ec2.Vpc(stack, "Vpc", max_azs=1, nat_gateways=0)
    sg = ec2.SecurityGroup(stack, "Sg", vpc=vpc)
    with pytest.raises(ConfigurationError, match="security_groups without subnet"):
        KdumpImagePipeline(stack, "P", architecture="x86_64", security_groups=[sg])


def test_fails_aws_stig_where_aws_publishes_none() -> None:
    with pytest.raises(ConfigurationError, match="AWS publishes no STIG component for Debian 12"):
        _make(family="debian-12", hardening=Hardening.aws_stig())


def test_fails_windows_on_arm64() -> None:
    with pytest.raises(ConfigurationError, match="no arm64 Windows Server images"):
        _make(family="windows-server-2022", architecture="arm64")


def test_fails_unknown_family_and_architecture() -> None:
    with pytest.raises(ConfigurationError, match="OS family 'centos-7' is not supported"):
        _make(family="centos-7")
    with pytest.raises(ConfigurationError, match="architecture 'i386'"):
        _make(architecture="i386")


def test_fails_noexec_working_directory() -> None:
    with pytest.raises(ConfigurationError, match="noexec"):
        _make(working_directory="/tmp/imagebuilder")


def test_fails_deprecate_after_out_of_range_or_not_a_duration() -> None:
    with pytest.raises(ConfigurationError, match=r"deprecate_after=0 days: use 1-3650 days"):
        _make(deprecate_after=cdk.Duration.days(0))
    with pytest.raises(ConfigurationError, match=r"deprecate_after=30: must be a cdk.Duration"):
        _make(deprecate_after=30)
    with pytest.raises(
        ConfigurationError, match="image_tests_timeout=1 minute 30 seconds: must be a whole"
    ):
        _make(image_tests_timeout=cdk.Duration.seconds(90))


def test_the_default_reservation_follows_the_architecture(built: Built) -> None:
    """Issue 18, part 2: arm64 gets the documented arm64 tiers (the x86_64 ones once applied to
    every architecture are 64 MiB under Red Hat's arm64 minimum)."""
    tags = {
        name: _one(built.templates[name], "AWS::ImageBuilder::ImageRecipe")["AmiTags"]
        for name in ("minimal", "arm")
    }
    assert tags["arm"]["crashcart:crashkernel"] == "768M-4G:256M 4G-64G:320M 64G-:576M"
    assert tags["minimal"]["crashcart:crashkernel"] == "768M-4G:192M 4G-64G:256M 64G-:512M"
    assert built.arm.settings == KdumpSettings(crashkernel="768M-4G:256M,4G-64G:320M,64G-:576M")
    Annotations.from_stack(built.stacks["arm"]).has_no_warning(
        "*", Match.string_like_regexp("arm64 minimum")
    )


def test_an_arm64_value_of_yours_under_the_documented_minimum_wins_with_a_warning() -> None:
    pipeline = _make(
        family="debian-12", architecture="arm64", kdump=KdumpSettings(crashkernel="384M-:128M")
    )
    assert pipeline.ami_tags["crashcart:crashkernel"] == "384M-:128M"
    Annotations.from_stack(cdk.Stack.of(pipeline)).has_warning(
        "/Bad/P",
        Match.string_like_regexp(r"crashkernel=384M-:128M on arm64 reserves 128M at 1 GiB"),
    )
