"""Who may do what in the image pipeline: the build instances' role, the lifecycle role, and
the statements of the image key's policy (Image Builder's service-linked role, accounts that
launch shared AMIs).

Private to :mod:`crashcart.constructs.kdump_image_pipeline`. The instance rights are a
customer managed policy on the instance role (the NIST / HIPAA / PCI packs forbid inline
ones), each statement with a Sid and each wildcard acknowledged here, next to it.
"""

from __future__ import annotations

from collections.abc import Sequence

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_imagebuilder as imagebuilder
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from crashcart.compliance import acknowledge, acknowledge_all, skip_checkov
from crashcart.constructs._internal.service_key import service_endpoint

#: The AMI tag that ties an AMI to its pipeline (lifecycle policy and kernel-release tagging).
PIPELINE_TAG = "crashcart:pipeline"
KERNEL_RELEASE_TAG = "crashcart:kernel-release"

# aws-assumption: imagebuilder-service-linked-role-key
_IMAGEBUILDER_SLR = "role/aws-service-role/imagebuilder.amazonaws.com/AWSServiceRoleForImageBuilder"


def instance_role(scope: Construct) -> tuple[iam.Role, iam.CfnInstanceProfile]:
    """The build and test instances' role (SSM agent only, until
    :func:`grant_instance_role`) and its instance profile."""
    role = iam.Role(
        scope,
        "InstanceRole",
        # aws-assumption: service-role-trust-principals
        assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
        description="crashcart image pipeline build and test instances",
        managed_policies=[
            iam.ManagedPolicy.from_aws_managed_policy_name("AmazonSSMManagedInstanceCore")
        ],
    )
    profile = iam.CfnInstanceProfile(scope, "InstanceProfile", roles=[role.role_name])
    return role, profile


def grant_instance_role(
    scope: Construct,
    *,
    role: iam.Role,
    key: kms.IKey,
    log_bucket: s3.IBucket,
    components: Sequence[imagebuilder.CfnComponent],
    pipeline_tag_value: str,
) -> None:
    """What build and test instances do: read and decrypt the components, write build logs
    (CloudWatch and the log bucket), tag their own AMI with its kernel release."""
    partition, region, account = cdk.Aws.PARTITION, cdk.Aws.REGION, cdk.Aws.ACCOUNT_ID
    own_components = [c.attr_arn for c in components]
    # A customer managed policy (not inline): the NIST / HIPAA / PCI packs ask for that.
    policy = iam.ManagedPolicy(
        scope,
        "InstancePolicy",
        roles=[role],
        description="crashcart image pipeline build/test instances: components, logs, "
        "kernel-release tag",
    )
    log_keys = [key.key_arn]
    if log_bucket.encryption_key is not None and log_bucket.encryption_key is not key:
        log_keys.append(log_bucket.encryption_key.key_arn)
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
            resources=[key.key_arn],
            conditions={
                "ForAnyValue:StringEquals": {"kms:EncryptionContextKeys": "aws:imagebuilder:arn"},
                "StringEquals": {"kms:ViaService": service_endpoint("imagebuilder", region)},
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
            resources=[f"arn:{partition}:logs:{region}:{account}:log-group:/aws/imagebuilder/*"],
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
            resources=[log_bucket.arn_for_objects("imagebuilder/*")],
        ),
        iam.PolicyStatement(
            # aws-assumption: kms-via-s3-encryption-context
            sid="EncryptBuildLogs",
            actions=["kms:GenerateDataKey", "kms:Encrypt"],
            resources=log_keys,
            conditions={"StringEquals": {"kms:ViaService": service_endpoint("s3", region)}},
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
            + stack_logical_id(log_bucket)
            + ".Arn>/imagebuilder/*]": "Build-log object keys are generated per build "
            "under the imagebuilder/ prefix of the build-log bucket",
        },
    )


def lifecycle_role(scope: Construct) -> iam.Role:
    """The role Image Builder's lifecycle policy runs as (AWS's managed execution policy)."""
    role = iam.Role(
        scope,
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
        role,
        "AwsSolutions::AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/"
        "service-role/EC2ImageBuilderLifecycleExecutionPolicy]",
        "AWS's managed execution policy for Image Builder lifecycle policies; the "
        "service acts only on the resources the policy selects (this pipeline's tag)",
    )
    return role


def allow_imagebuilder_service_role(key: kms.Key) -> None:
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
                        service_endpoint("ec2", cdk.Aws.REGION),
                        service_endpoint("sns", cdk.Aws.REGION),
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


# aws-assumption: shared-ami-key-grants
def grant_shared_ami_key_use(key: kms.IKey, accounts: Sequence[str]) -> None:
    """Let ``accounts`` launch AMIs whose snapshots ``key`` encrypts (key-policy statements;
    a no-op on an imported key). See :meth:`KdumpImagePipeline.grant_shared_ami_key_use`."""
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


def stack_logical_id(bucket: s3.IBucket) -> str:
    """The logical id of a bucket's CfnBucket (for a finding id), or its name token."""
    default_child = bucket.node.default_child
    if isinstance(default_child, cdk.CfnElement):
        return cdk.Stack.of(bucket).get_logical_id(default_child)
    return "imported-bucket"
