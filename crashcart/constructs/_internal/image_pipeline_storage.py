"""The image pipeline's own key, build-log buckets and notification topic (each created only
when the user gives none).

Private to :mod:`crashcart.constructs.kdump_image_pipeline`: the construct ids are those the
pipeline has always used (``Key``, ``AccessLogs``, ``BuildLogs``, ``Notifications``), so the
key and buckets keep their logical ids.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from constructs import Construct

from crashcart.compliance import acknowledge_all, skip_checkov
from crashcart.constructs._internal.image_pipeline_iam import allow_imagebuilder_service_role

_REPLICATION_REASON = (
    "Build logs and their access logs are diagnostic records kept 365 days; cross-Region "
    "replication is left to the account's backup policy"
)
_SSE_S3_REASON = (
    "S3 server access logging cannot deliver to a bucket encrypted with SSE-KMS; SSE-S3 is used"
)


def image_key(scope: Construct) -> kms.Key:
    """A rotated customer key for EBS volumes, AMI snapshots, build logs and notifications,
    usable by Image Builder's service-linked role."""
    key = kms.Key(
        scope,
        "Key",
        enable_key_rotation=True,
        description="crashcart image pipeline: EBS volumes, AMI snapshots, build logs "
        "and notifications",
        removal_policy=cdk.RemovalPolicy.RETAIN,
    )
    allow_imagebuilder_service_role(key)
    return key


def build_log_bucket(scope: Construct, key: kms.IKey) -> s3.Bucket:
    """A KMS-encrypted, TLS-only, versioned build-log bucket (365 days) that logs its access
    to an SSE-S3 bucket of its own."""
    access_logs = s3.Bucket(
        scope,
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
            f"{pack}::{pack}-S3DefaultEncryptionKMS": _SSE_S3_REASON
            for pack in ("NIST.800.53.R5", "HIPAA.Security", "PCI.DSS.321")
        },
    )
    skip_checkov(
        access_logs,
        "CKV_AWS_18",
        "this bucket is the server access log target of the build-log bucket; "
        "logging its own access into itself would loop",
    )
    bucket = s3.Bucket(
        scope,
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
    _acknowledge_replication(access_logs)
    _acknowledge_replication(bucket)
    return bucket


def notification_topic(scope: Construct, key: kms.IKey) -> sns.Topic:
    """A KMS-encrypted, TLS-only topic for build notifications."""
    # aws-assumption: tls-only-resource-policies
    return sns.Topic(scope, "Notifications", master_key=key, enforce_ssl=True)


def _acknowledge_replication(bucket: s3.Bucket) -> None:
    acknowledge_all(
        bucket,
        {
            f"{pack}::{pack}-S3BucketReplicationEnabled": _REPLICATION_REASON
            for pack in ("NIST.800.53.R5", "HIPAA.Security", "PCI.DSS.321")
        },
    )
