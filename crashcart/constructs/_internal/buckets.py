"""crashcart's buckets: data buckets (crash dumps, debug symbols) and the log bucket of each.

A data bucket is KMS-encrypted with a customer key, without S3 Bucket Keys (the per-object
encryption context names the object, so key grants can name a prefix), private, TLS 1.2+
only, versioned, owner-enforced, and logs its access to a bucket of its own.
"""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from crashcart.compliance import acknowledge_all, skip_checkov

#: The cdk-nag packs with the KMS and the replication rules for S3 buckets.
_PACKS_WITH_KMS_RULE = ("NIST.800.53.R5", "HIPAA.Security", "PCI.DSS.321")


def access_logs_by_bucket_policy(construct: Construct) -> None:
    """Let the buckets under ``construct`` authorise their server access logs with a bucket
    policy on the log bucket rather than the legacy ``LogDeliveryWrite`` ACL (ACLs stay
    disabled: ``BucketOwnerEnforced``). Without it, an app whose cdk.json lacks the flag
    fails at synth. Call it right after ``super().__init__``: context can only be set on a
    node before it has children.
    """
    # aws-assumption: s3-server-access-log-delivery
    construct.node.set_context("@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy", True)


def acknowledge_no_replication(buckets: tuple[s3.IBucket, ...], reason: str) -> None:
    """Acknowledge the packs' cross-Region replication rule on ``buckets``, with ``reason``."""
    for bucket in buckets:
        acknowledge_all(
            bucket,
            {f"{pack}::{pack}-S3BucketReplicationEnabled": reason for pack in _PACKS_WITH_KMS_RULE},
        )


def access_logs_bucket(
    scope: Construct,
    construct_id: str,
    *,
    expiration: cdk.Duration,
    removal_policy: cdk.RemovalPolicy,
) -> s3.Bucket:
    """A private, TLS-only, versioned log bucket whose logs expire after ``expiration``.

    SSE-S3, not SSE-KMS: S3 server access logging cannot deliver to a target bucket whose
    default encryption is SSE-KMS (the compliance finding is acknowledged with that reason).
    """
    bucket = s3.Bucket(
        scope,
        construct_id,
        # aws-assumption: s3-server-access-log-delivery
        encryption=s3.BucketEncryption.S3_MANAGED,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        # aws-assumption: tls-only-resource-policies
        enforce_ssl=True,
        versioned=True,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        lifecycle_rules=[
            s3.LifecycleRule(
                id="expire-access-logs",
                expiration=expiration,
                noncurrent_version_expiration=cdk.Duration.days(30),
                abort_incomplete_multipart_upload_after=cdk.Duration.days(1),
            )
        ],
        removal_policy=removal_policy,
    )
    acknowledge_all(
        bucket,
        {
            f"{pack}::{pack}-S3DefaultEncryptionKMS": "S3 server access logging only "
            "delivers to targets encrypted with SSE-S3, not SSE-KMS"
            for pack in _PACKS_WITH_KMS_RULE
        },
    )
    skip_checkov(
        bucket,
        "CKV_AWS_18",
        "this bucket is the server access log target of the data buckets; logging its own "
        "access into itself would loop",
    )
    return bucket


def data_key(
    scope: Construct, construct_id: str, *, description: str, removal_policy: cdk.RemovalPolicy
) -> kms.Key:
    """The customer key of a data bucket: rotated yearly, removed with the bucket's policy."""
    return kms.Key(
        scope,
        construct_id,
        description=description,
        enable_key_rotation=True,
        removal_policy=removal_policy,
    )


def data_bucket(
    scope: Construct,
    construct_id: str,
    *,
    key: kms.IKey,
    access_logs: s3.IBucket,
    access_logs_prefix: str,
    lifecycle_rules: list[s3.LifecycleRule],
    removal_policy: cdk.RemovalPolicy,
    object_lock_retention: s3.ObjectLockRetention | None = None,
) -> s3.Bucket:
    """A hardened data bucket (see the module docstring) with the given lifecycle."""
    return s3.Bucket(
        scope,
        construct_id,
        encryption=s3.BucketEncryption.KMS,
        encryption_key=key,
        # Per-object encryption context (the object ARN) lets the KMS grants name a prefix;
        # S3 Bucket Keys would replace it with the bucket ARN.
        # aws-assumption: kms-via-s3-encryption-context
        bucket_key_enabled=False,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        enforce_ssl=True,
        # aws-assumption: tls-only-resource-policies
        minimum_tls_version=1.2,
        versioned=True,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        server_access_logs_bucket=access_logs,
        server_access_logs_prefix=access_logs_prefix,
        object_lock_enabled=object_lock_retention is not None or None,
        object_lock_default_retention=object_lock_retention,
        lifecycle_rules=lifecycle_rules,
        removal_policy=removal_policy,
    )


def logged_data_bucket(
    scope: Construct,
    *,
    log_expiration: cdk.Duration,
    access_logs_prefix: str,
    removal_policy: cdk.RemovalPolicy,
    **bucket: Any,
) -> tuple[s3.Bucket, s3.Bucket]:
    """The server access log bucket ``AccessLogs`` (logs expire after ``log_expiration``)
    and the hardened data bucket ``Bucket`` logging to it under ``access_logs_prefix``;
    ``bucket``: the rest of :func:`data_bucket`'s arguments (key, lifecycle rules, ...).
    Returns (access logs, data bucket)."""
    logs = access_logs_bucket(
        scope, "AccessLogs", expiration=log_expiration, removal_policy=removal_policy
    )
    data = data_bucket(
        scope,
        "Bucket",
        access_logs=logs,
        access_logs_prefix=access_logs_prefix,
        removal_policy=removal_policy,
        **bucket,
    )
    return logs, data
