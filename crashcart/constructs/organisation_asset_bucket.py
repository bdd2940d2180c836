"""OrganisationAssetBucket: one Region's bucket of StackSet assets, readable by the organisation.

``OrganisationRollout`` copies the member template's Lambda code to a bucket named
``<prefix>-<region>`` in every target Region of the deploying account: a stack instance's
functions are created by CloudFormation in the member account, and Lambda reads code only from
a bucket in the function's own Region (aws-assumption: lambda-code-bucket-same-region). This
construct is that bucket, for one Region: deploy it with one small stack per target Region,
before the rollout stack::

    for region in regions:
        stack = cdk.Stack(app, f"CrashcartAssets-{region}",
                          env=cdk.Environment(account=deploying_account, region=region))
        OrganisationAssetBucket(stack, "Assets", bucket_prefix=prefix,
                                organisation_id="o-a1b2c3d4e5")

The objects are zip files of crashcart's own (open-source) function code, nothing secret; the
bucket lets any principal of the organisation read them (``aws:PrincipalOrgID``: the
CloudFormation roles that create the member's functions) and nobody else, and only the
deploying account writes.
"""

from __future__ import annotations

from typing import Final

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from crashcart.compliance import acknowledge_all
from crashcart.constructs._internal.buckets import (
    access_logs_bucket,
    access_logs_by_bucket_policy,
    acknowledge_no_replication,
)
from crashcart.constructs.member_account_settings import ORGANISATION_ID
from crashcart.errors import ConfigurationError

__all__ = ["OrganisationAssetBucket"]

_PACKS: Final = ("NIST.800.53.R5", "HIPAA.Security", "PCI.DSS.321")


class OrganisationAssetBucket(Construct):
    """The asset bucket ``<bucket_prefix>-<region>`` of the stack's Region.

    Attributes: ``bucket``, ``access_logs_bucket``.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        bucket_prefix: str,
        organisation_id: str,
        removal_policy: cdk.RemovalPolicy = cdk.RemovalPolicy.RETAIN,
    ) -> None:
        """
        :param bucket_prefix: the ``asset_bucket_prefix`` of the ``OrganisationRollout``.
        :param organisation_id: the organisation whose principals may read (``o-...``).
        :param removal_policy: Default: RETAIN (stack instances read the code whenever they
            are created or updated, e.g. when an account joins).
        :raises ConfigurationError: a malformed organisation id, or a stack without a
            concrete Region (the bucket's name contains it).
        """
        from crashcart.constructs.organisation_rollout import check_asset_bucket_prefix

        check_asset_bucket_prefix(bucket_prefix)
        if not isinstance(organisation_id, str) or not ORGANISATION_ID.fullmatch(organisation_id):
            raise ConfigurationError(
                f"OrganisationAssetBucket organisation_id={organisation_id!r}: give the "
                "organisation's id ('o-' and 10 to 32 lower-case letters or digits)"
            )
        super().__init__(scope, construct_id)
        access_logs_by_bucket_policy(self)
        region = cdk.Stack.of(self).region
        if cdk.Token.is_unresolved(region):
            raise ConfigurationError(
                "OrganisationAssetBucket needs a stack with a concrete Region (env=cdk."
                "Environment(region=...)): the bucket is named '<prefix>-<region>'"
            )
        self.access_logs_bucket = access_logs_bucket(
            self, "AccessLogs", expiration=cdk.Duration.days(365), removal_policy=removal_policy
        )
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            bucket_name=f"{bucket_prefix}-{region}",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            # aws-assumption: tls-only-resource-policies
            enforce_ssl=True,
            minimum_tls_version=1.2,
            versioned=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            server_access_logs_bucket=self.access_logs_bucket,
            server_access_logs_prefix="asset-bucket/",
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="old-versions",
                    noncurrent_version_expiration=cdk.Duration.days(90),
                    abort_incomplete_multipart_upload_after=cdk.Duration.days(1),
                )
            ],
            removal_policy=removal_policy,
        )
        self.bucket.add_to_resource_policy(
            iam.PolicyStatement(
                sid="OrganisationReadsAssets",
                principals=[iam.AnyPrincipal()],
                actions=["s3:GetObject", "s3:GetObjectVersion"],
                resources=[self.bucket.arn_for_objects("*")],
                # aws-assumption: stackset-assets-read-by-organisation
                conditions={"StringEquals": {"aws:PrincipalOrgID": organisation_id}},
            )
        )
        reasons = {}
        for pack in _PACKS:
            reasons[f"{pack}::{pack}-S3DefaultEncryptionKMS"] = (
                "the bucket holds copies of crashcart's open-source function code, read by "
                "CloudFormation in every member account: SSE-S3 needs no key policy for the "
                "organisation's roles"
            )
            reasons[f"{pack}::{pack}-S3BucketReplicationEnabled"] = (
                "each Region has its own asset bucket; the rollout copies the code into all "
                "of them at every deployment"
            )
        acknowledge_all(self.bucket, reasons)
        acknowledge_no_replication(
            (self.access_logs_bucket,),
            "access logs of a bucket of function code copies; they expire after a year",
        )
