"""ExistingDumpBucket: a crash-dump bucket crashcart did not create, with its key, as one value.

The constructs that write into the crash-dump bucket (the remediation's console-output
evidence, and through it the Auto Scaling hold) take one ``dumps`` prop, as
:class:`~crashcart.constructs.dump_triage_job.DumpTriageJob` does: the
:class:`~crashcart.constructs.crash_dump_bucket.CrashDumpBucket` of the deployment, which
knows its bucket and its key. For a bucket managed elsewhere (another stack, another tool),
give an :class:`ExistingDumpBucket` instead: the same two things, bucket and key, as one
value, so a bucket is never wired without the key that encrypts it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3

from crashcart import _props as props
from crashcart.constructs.crash_dump_bucket import CrashDumpBucket

__all__ = ["DumpBucket", "ExistingDumpBucket", "check_dump_bucket"]


@dataclass(frozen=True, kw_only=True)
class ExistingDumpBucket:
    """A crash-dump bucket (and its KMS key) that crashcart did not create.

    Example::

        dumps = ExistingDumpBucket(
            bucket=s3.Bucket.from_bucket_name(self, "Dumps", "my-crash-dumps"),
            encryption_key=kms.Key.from_key_arn(self, "DumpKey", key_arn),
        )

    :param bucket: the bucket. Objects are written under ``evidence/`` (console output
        before an interrupt); the bucket's own policy and encryption are left as they are.
    :param encryption_key: the bucket's SSE-KMS key; writers get ``kms:Encrypt`` /
        ``kms:GenerateDataKey`` on it. Default: the bucket's own ``encryption_key`` when CDK
        knows it (a bucket created in this app); otherwise None, and no KMS right is granted
        (right for an SSE-S3 bucket only).
    :raises ConfigurationError: a value of the wrong type.
    """

    bucket: s3.IBucket
    encryption_key: kms.IKey | None = None

    def __post_init__(self) -> None:
        owner = "ExistingDumpBucket"
        props.check(
            owner,
            "bucket",
            self.bucket,
            s3.IBucket,
            example="s3.Bucket.from_bucket_name(self, 'Dumps', 'my-crash-dumps')",
        )
        props.check(
            owner,
            "encryption_key",
            self.encryption_key,
            kms.IKey,
            example="kms.Key.from_key_arn(self, 'DumpKey', key_arn)",
            optional=True,
        )
        if self.encryption_key is None:
            # A frozen value: the default is filled in once, here.
            object.__setattr__(self, "encryption_key", self.bucket.encryption_key)


#: What a construct that writes into the crash-dump bucket takes as ``dumps``.
DumpBucket: TypeAlias = CrashDumpBucket | ExistingDumpBucket


def check_dump_bucket(owner: str, value: object) -> None:
    """``dumps`` must be a :class:`CrashDumpBucket` or an :class:`ExistingDumpBucket`.

    :raises ConfigurationError: naming ``owner``, the value given and what is allowed.
    """
    props.check(
        owner,
        "dumps",
        value,
        (CrashDumpBucket, ExistingDumpBucket),
        example="CrashDumpBucket(self, 'Dumps'), or ExistingDumpBucket(bucket=..., "
        "encryption_key=...) for a bucket crashcart did not create",
    )
