"""A member account's own bucket for console-output evidence.

Before an interrupt, the remediation (and the Auto Scaling hold) save the instance's console
output under ``evidence/``: when the dump never arrives, it is the only record of what the
kernel printed. In a stand-alone account that goes to the account's crash-dump bucket. In a
member account of an organisation the dump bucket is the central account's, and its policy
admits only instance sessions writing their own dumps (``dumps/<account>/<session>/``, never
an overwrite): a Lambda role's session has no ``ec2:SourceInstanceARN``, so every evidence
write would be denied and the remediation would go on without it. Widening the central
policy for function roles of every member account would give every principal of the
organisation a second way in; so each member keeps its evidence in a bucket of its own,
hardened like the dump bucket (customer key, TLS only, versioned, logged, no ACLs) and
expiring with the dumps' default retention.

Private to :mod:`crashcart.stacks.remediation`.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_s3 as s3
from constructs import Construct

from crashcart.constructs._internal.buckets import (
    access_logs_by_bucket_policy,
    acknowledge_no_replication,
    data_key,
    logged_data_bucket,
)
from crashcart.constructs.existing_dump_bucket import ExistingDumpBucket

#: How long console output stays: the crash-dump bucket's default expiry.
EVIDENCE_DAYS = 365


class MemberEvidence(Construct):
    """The evidence bucket and key of a member account's remediation (``self.dumps``)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        removal_policy: cdk.RemovalPolicy = cdk.RemovalPolicy.RETAIN,
    ) -> None:
        super().__init__(scope, construct_id)
        access_logs_by_bucket_policy(self)
        expiry = cdk.Duration.days(EVIDENCE_DAYS)
        self.encryption_key = data_key(
            self,
            "Key",
            description="crashcart: console-output evidence of this member account",
            removal_policy=removal_policy,
        )
        self.access_logs_bucket, self.bucket = logged_data_bucket(
            self,
            key=self.encryption_key,
            log_expiration=expiry,
            access_logs_prefix="evidence-bucket/",
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="evidence-expires",
                    expiration=expiry,
                    noncurrent_version_expiration=cdk.Duration.days(30),
                    abort_incomplete_multipart_upload_after=cdk.Duration.days(1),
                )
            ],
            removal_policy=removal_policy,
        )
        acknowledge_no_replication(
            (self.bucket, self.access_logs_bucket),
            "console output kept for an incident's investigation with a bounded lifetime; "
            "versioning protects it; replicating it would copy instance output to another Region",
        )
        #: What the remediation takes as ``dumps``: evidence goes here, dumps go central.
        self.dumps = ExistingDumpBucket(bucket=self.bucket, encryption_key=self.encryption_key)
