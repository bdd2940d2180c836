"""The server access log bucket every crashcart data bucket logs to."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_s3 as s3
from constructs import Construct

from crashcart.compliance import acknowledge_all, skip_checkov

_PACKS_WITH_KMS_RULE = ("NIST.800.53.R5", "HIPAA.Security", "PCI.DSS.321")


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
