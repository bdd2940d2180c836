"""DebugSymbolStore: the bucket of debug vmlinux files, looked up by kernel build id.

A crash dump's full triage (drgn) needs the debug vmlinux of exactly the kernel that
crashed: the one whose GNU build id equals the dump's (VMCOREINFO ``BUILD-ID``; the agent's
``metadata.json`` ``build_id``). The image pipeline publishes it while it bakes the AMI
(``KdumpImagePipeline(debug_symbols=store)``); triage reads it by key. Key layout
(:mod:`crashcart.symbol_layout`, re-exported here)::

    symbols/<build id>/vmlinux         the debug vmlinux (ELF64 with DWARF), ~0.3-1 GB
    symbols/<build id>/metadata.json   {"schema": 1, "build_id", "kernel_release", "family",
                                        "architecture", "source_package", "sha256", "size",
                                        "vmlinux_key", "published_at", "image_build_arn",
                                        "source_ami_id", "publisher"}; written after vmlinux

``<build id>`` is lowercase hex (40 digits for the SHA-1 ids distributions build with).
Symbols are never overwritten: a bucket policy denies, to every principal, any object-creating
``s3:PutObject`` under ``symbols/`` that does not carry ``If-None-Match: *``, so a second bake
of the same kernel gets 412 PreconditionFailed (the publisher counts that as "already
published").
"""

from __future__ import annotations

from typing import cast

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from crashcart import _props as props
from crashcart.compliance import acknowledge
from crashcart.constructs._internal.buckets import (
    access_logs_by_bucket_policy,
    acknowledge_no_replication,
    data_key,
    logged_data_bucket,
)
from crashcart.constructs._internal.service_key import key_through_s3
from crashcart.errors import ConfigurationError
from crashcart.symbol_layout import (
    METADATA_NAME,
    SYMBOLS_PREFIX,
    VMLINUX_NAME,
    metadata_key,
    normalize_build_id,
)
from crashcart.symbol_layout import symbol_key as _layout_symbol_key

__all__ = [
    "METADATA_NAME",
    "SYMBOLS_PREFIX",
    "VMLINUX_NAME",
    "DebugSymbolStore",
    "metadata_key",
    "normalize_build_id",
    "symbol_key",
]

_REMOVAL_POLICIES = (
    cdk.RemovalPolicy.RETAIN,
    cdk.RemovalPolicy.DESTROY,
    cdk.RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE,
)


def symbol_key(build_id: str, name: str = VMLINUX_NAME) -> str:
    """``symbols/<build id>/<name>`` for a 40-128 digit hex build id (lowercased).

    ConfigurationError (a ValueError) for anything else. Token-aware: an unresolved token is
    put in the key as it is (checked when it resolves, not here).
    """
    if cdk.Token.is_unresolved(build_id):
        return f"{SYMBOLS_PREFIX}{build_id}/{name}"
    return _layout_symbol_key(build_id, name)


def _whole_days(name: str, value: cdk.Duration) -> None:
    if cdk.Token.is_unresolved(value.to_string()):
        return
    days = value.to_days(integral=False)
    if days < 1 or days != int(days):
        raise ConfigurationError(
            f"{name}={value.to_human_string()}: S3 lifecycle rules count whole days; give a "
            "whole number of days of at least 1 (cdk.Duration.days(n))"
        )


class DebugSymbolStore(Construct):
    """The KMS-encrypted store of debug vmlinux files, one folder per kernel build id.

    Example::

        symbols = DebugSymbolStore(self, "Symbols")
        KdumpImagePipeline(self, "Images", architecture="x86_64", debug_symbols=symbols)
        symbols.grant_read(triage_task_role)     # look a dump's vmlinux up by build id

    Nothing expires current versions: a vmlinux stays as long as AMIs (and their dumps) may
    need it, which the store cannot know; it is deleted by hand (or by your own rule) once
    no AMI of that kernel is left. Overwritten or deleted objects (noncurrent versions) go
    after ``noncurrent_version_expiration``.

    Attributes: :attr:`bucket`, :attr:`encryption_key`, :attr:`access_logs_bucket`,
    :attr:`publish_policy` and :attr:`read_policy` (after the first grant).
    """

    #: Key prefix of every symbol object.
    SYMBOLS_PREFIX = SYMBOLS_PREFIX
    #: ``symbols/<build id>/<name>`` (see :func:`symbol_key`).
    symbol_key = staticmethod(symbol_key)

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        encryption_key: kms.IKey | None = None,
        noncurrent_version_expiration: cdk.Duration | None = None,
        access_log_expiration: cdk.Duration | None = None,
        removal_policy: cdk.RemovalPolicy = cdk.RemovalPolicy.RETAIN,
    ) -> None:
        """
        :param encryption_key: the KMS key symbols are encrypted with. Default: a new
            customer-managed key with yearly rotation (removed as ``removal_policy`` says).
        :param noncurrent_version_expiration: how long a replaced or deleted version is
            kept, in whole days. Default: 30 days.
        :param access_log_expiration: how long server access logs are kept, in whole days.
            Default: 365 days.
        :param removal_policy: what happens to the buckets (and a created key) when the
            stack deletes them: RETAIN, RETAIN_ON_UPDATE_OR_DELETE or DESTROY (DESTROY
            fails on a bucket that still holds objects). Default: RETAIN - symbols outlive
            the stack as long as AMIs of their kernels exist.
        """
        props.check_key("DebugSymbolStore", encryption_key, key_id="SymbolKey")
        super().__init__(scope, construct_id)
        access_logs_by_bucket_policy(self)
        noncurrent = noncurrent_version_expiration or cdk.Duration.days(30)
        log_expiration = access_log_expiration or cdk.Duration.days(365)
        _whole_days("noncurrent_version_expiration", noncurrent)
        _whole_days("access_log_expiration", log_expiration)
        if removal_policy not in _REMOVAL_POLICIES:
            raise ConfigurationError(
                f"removal_policy={removal_policy}: give RETAIN, RETAIN_ON_UPDATE_OR_DELETE or "
                "DESTROY (S3 buckets and KMS keys have no snapshots)"
            )
        self._stack = cdk.Stack.of(self)

        #: The KMS key symbols are encrypted with.
        self.encryption_key: kms.IKey = encryption_key or data_key(
            self,
            "Key",
            description="crashcart debug symbols (debug vmlinux files by kernel build id)",
            removal_policy=removal_policy,
        )

        #: The symbol bucket, and its server access log bucket (SSE-S3: access logging cannot
        #: deliver to SSE-KMS).
        self.access_logs_bucket, self.bucket = logged_data_bucket(
            self,
            key=self.encryption_key,
            log_expiration=log_expiration,
            access_logs_prefix="symbol-bucket/",
            lifecycle_rules=[
                # No expiration of current versions: symbols stay while AMIs use them.
                s3.LifecycleRule(
                    id="noncurrent-versions-and-incomplete-uploads",
                    noncurrent_version_expiration=noncurrent,
                    abort_incomplete_multipart_upload_after=cdk.Duration.days(1),
                )
            ],
            removal_policy=removal_policy,
        )
        # Symbols are never overwritten, by anyone: an object-creating PutObject
        # (PutObject, CopyObject, CompleteMultipartUpload) must carry If-None-Match. For
        # every principal rather than per publisher role, so the policy names no role of
        # another stack (no reference cycle with a pipeline stack that reads the bucket
        # name).
        self.bucket.add_to_resource_policy(
            iam.PolicyStatement(
                # aws-assumption: s3-conditional-write-keys
                sid="DenySymbolOverwrite",
                effect=iam.Effect.DENY,
                principals=[iam.AnyPrincipal()],
                actions=["s3:PutObject"],
                resources=[self.symbols_arn_pattern],
                conditions={
                    "Null": {"s3:if-none-match": "true"},
                    "Bool": {"s3:ObjectCreationOperation": "true"},
                },
            )
        )
        acknowledge_no_replication(
            (self.bucket, self.access_logs_bucket),
            "debug symbols are copies of the distributions' public debug packages, "
            "re-publishable from them; versioning and the no-overwrite policy protect them; "
            "cross-region replication is left to the account's backup policy",
        )

        #: Customer-managed policies made by the first :meth:`grant_publish` /
        #: :meth:`grant_read` (one each, shared by every grantee).
        self.publish_policy: iam.ManagedPolicy | None = None
        self.read_policy: iam.ManagedPolicy | None = None
        self._granted: set[tuple[str, str]] = set()

    # ------------------------------------------------------------------ grants

    @property
    def symbols_arn_pattern(self) -> str:
        """ARN pattern of every symbol object (``<bucket arn>/symbols/*``)."""
        return self.bucket.arn_for_objects(f"{SYMBOLS_PREFIX}*")

    # aws-assumption: kms-via-s3-encryption-context
    def grant_publish(self, role: iam.IRole) -> iam.ManagedPolicy:
        """Let ``role`` (an image build instance's) create symbol objects, and nothing else.

        One customer-managed policy (:attr:`publish_policy`) shared by every publisher:
        ``s3:PutObject`` on ``symbols/*``; ``kms:GenerateDataKey`` and ``kms:Decrypt``
        (what a multipart upload needs) on the key, only through S3 and only with an
        encryption context under ``symbols/``. The bucket policy already denies every
        object-creating put without ``If-None-Match`` (no overwrites).
        """
        if self.publish_policy is None:
            self.publish_policy = iam.ManagedPolicy(
                self,
                "PublishPolicy",
                description="crashcart: publish debug symbols (create only, never overwrite)",
                statements=[
                    iam.PolicyStatement(
                        sid="PublishSymbols",
                        actions=["s3:PutObject"],
                        resources=[self.symbols_arn_pattern],
                    ),
                    key_through_s3(
                        self,
                        "EncryptSymbolsThroughS3",
                        self.encryption_key.key_arn,
                        ["kms:GenerateDataKey", "kms:Decrypt"],
                        objects=self.symbols_arn_pattern,
                    ),
                ],
            )
            acknowledge(
                self.publish_policy,
                f"AwsSolutions::AwsSolutions-IAM5[Resource::<{self._ref(self.bucket)}.Arn>"
                "/symbols/*]",
                "symbol keys are named by kernel build ids, known only on the build instance; "
                "the policy allows creating objects under symbols/ only (overwrites denied)",
            )
        self._attach(self.publish_policy, role, "publish")
        return self.publish_policy

    def grant_read(self, grantee: iam.IGrantable) -> iam.ManagedPolicy:
        """Let ``grantee`` (a triage job's role, an analyst) read symbols by build id.

        One customer-managed policy (:attr:`read_policy`) shared by every reader:
        ``s3:GetObject`` on ``symbols/*``, ``kms:Decrypt`` on the key through S3 for objects
        under ``symbols/``, and ``s3:ListBucket`` on the bucket. Lookups are by key
        (:func:`symbol_key`), so readers never need to list; ListBucket is there because
        without it S3 answers a GetObject / HeadObject of a build id that was never
        published with 403 AccessDenied instead of 404, and a reader could not tell "no
        symbols for this kernel" from "not allowed". The bucket holds only symbols.

        ``grantee`` must be, or have as its ``grant_principal``, an IAM role, user or group
        (a Lambda function, an ECS task role, ...).
        """
        if self.read_policy is None:
            self.read_policy = iam.ManagedPolicy(
                self,
                "ReadPolicy",
                description="crashcart: read debug symbols by kernel build id",
                statements=[
                    iam.PolicyStatement(
                        sid="ReadSymbols",
                        actions=["s3:GetObject"],
                        resources=[self.symbols_arn_pattern],
                    ),
                    iam.PolicyStatement(
                        sid="MissingSymbolsAre404",
                        actions=["s3:ListBucket"],
                        resources=[self.bucket.bucket_arn],
                    ),
                    key_through_s3(
                        self,
                        "DecryptSymbolsThroughS3",
                        self.encryption_key.key_arn,
                        ["kms:Decrypt"],
                        objects=self.symbols_arn_pattern,
                    ),
                ],
            )
            acknowledge(
                self.read_policy,
                f"AwsSolutions::AwsSolutions-IAM5[Resource::<{self._ref(self.bucket)}.Arn>"
                "/symbols/*]",
                "readers look a vmlinux up by the build id of whichever dump they triage: "
                "any key under symbols/ (read only; the bucket holds nothing else)",
            )
        self._attach(self.read_policy, grantee.grant_principal, "read")
        return self.read_policy

    # ------------------------------------------------------------------ helpers

    def _attach(self, policy: iam.ManagedPolicy, principal: object, grant: str) -> None:
        """Attach ``policy`` to a role, user or group, once.

        One made in this app (it has its own ``AWS::IAM::Role`` / ``User`` / ``Group``) gets
        the policy in its ``ManagedPolicyArns``: the reference then runs from the
        principal's stack to this one, which also works when that stack (a pipeline, a
        triage job) reads this bucket's name. An imported one is named in the policy's
        ``Roles`` / ``Users`` / ``Groups`` instead (it has no resource here to carry it).
        """
        node = getattr(principal, "node", None)
        kinds = (
            ("role_name", iam.CfnRole),
            ("user_name", iam.CfnUser),
            ("group_name", iam.CfnGroup),
        )
        kind = next((k for k in kinds if hasattr(principal, k[0])), None)
        if node is None or kind is None:
            raise ConfigurationError(
                f"grant_{grant}({getattr(node, 'path', principal)!s}): give an IAM role, user "
                "or group, or something whose grant_principal is one (a Lambda function, an "
                "ECS task role); a service or account principal cannot carry a "
                "customer-managed policy"
            )
        key = (grant, str(node.addr))
        if key in self._granted:
            return
        self._granted.add(key)
        if isinstance(node.default_child, kind[1]):
            principal.add_managed_policy(policy)  # type: ignore[attr-defined]
        elif kind[0] == "role_name":
            policy.attach_to_role(cast(iam.IRole, principal))
        elif kind[0] == "user_name":
            policy.attach_to_user(cast(iam.IUser, principal))
        else:
            policy.attach_to_group(cast(iam.IGroup, principal))

    def _ref(self, construct: Construct) -> str:
        """The logical id cdk-nag prints for a construct's resource."""
        child = construct.node.default_child
        assert isinstance(child, cdk.CfnElement)
        return self._stack.get_logical_id(child)
