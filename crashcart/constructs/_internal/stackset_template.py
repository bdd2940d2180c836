"""Synthesize a CDK stack as a StackSet's template, with its file assets in per-Region buckets.

Private to :mod:`crashcart.constructs.organisation_rollout`.

A StackSet instance runs in another account and Region than the stack that defines the
StackSet, so the member template can use neither the CDK bootstrap bucket (it is the
deploying account's, in the deploying Region) nor the CDK's asset parameters. The member
stack gets :class:`StackSetTemplateSynthesizer` instead of the default synthesizer:

- every file asset (a Lambda function's code) is registered as a file asset of the
  *deploying* stack (so ``cdk deploy`` publishes it to the bootstrap bucket as usual) and
  copied from there, unchanged, to one bucket per target Region named
  ``<prefix>-<region>`` by a ``BucketDeployment`` per Region (``extract=False``: the object
  keeps its key ``<asset hash>.zip``); the member template points at
  ``Fn::Sub "<prefix>-${AWS::Region}"`` and that key, so each stack instance reads the copy
  in its own Region (Lambda reads code only from a bucket in the function's Region;
  aws-assumption: lambda-code-bucket-same-region);
- the template itself is written to the cloud assembly and registered as a file asset of the
  deploying stack: its HTTPS URL is the StackSet's ``TemplateURL``; no cloud-assembly stack
  artifact is emitted, so ``cdk deploy`` does not deploy it as a stack of its own;
- Docker image assets are refused (no per-Region registries here).

The approach follows the open-source ``cdklabs/cdk-stacksets`` (Apache-2.0): written anew, with
two differences: the copy's object key is the asset hash known at synth (not a value of the
copy's custom resource, which a template in another account could not reference), and the
asset is copied from the bootstrap bucket rather than staged a second time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import jsii
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3deploy
from constructs import Construct

from crashcart.errors import ConfigurationError

#: CloudFormation's limit on a template read from S3 (a template URL), in bytes.
MAX_TEMPLATE_BYTES = 460_800
#: What the template URL resolves to before the member stack is synthesized.
NOT_YET_SYNTHESIZED = "crashcart:member-template-not-yet-synthesized"


@dataclass(frozen=True)
class CopiedAsset:
    """One file asset of the member template, as the member template names it."""

    source_hash: str
    object_key: str
    packaging: str


class StackSetTemplateSynthesizer(cdk.StackSynthesizer):
    """Synthesizes the stack it is bound to as a template for a StackSet (see module doc)."""

    def __init__(
        self,
        *,
        deploying_stack: cdk.Stack,
        copies_scope: Construct,
        bucket_prefix: str,
        regions: Sequence[str],
    ) -> None:
        super().__init__()
        self._deploying_stack = deploying_stack
        self._copies_scope = copies_scope
        self._bucket_prefix = bucket_prefix
        self._regions = tuple(regions)
        self._copies: dict[str, s3deploy.BucketDeployment] = {}
        self._template_url: str | None = None
        #: The file assets the member template references (in the order they were added).
        self.assets: list[CopiedAsset] = []

    # -- what the bound stack's constructs call -------------------------------------------

    def add_file_asset(self, *args: Any, **kwargs: Any) -> cdk.FileAssetLocation:
        source = _file_asset_source(args, kwargs)
        if not source.file_name:
            raise ConfigurationError(
                "a StackSet member template's file asset has no file name: only file and "
                "directory assets can be copied to the per-Region asset buckets"
            )
        location = self._deploying_stack.synthesizer.add_file_asset(
            source_hash=source.source_hash,
            file_name=source.file_name,
            packaging=source.packaging,
        )
        object_key = location.object_key
        if cdk.Token.is_unresolved(object_key) or "/" in object_key:
            raise ConfigurationError(
                f"the deploying stack's synthesizer put asset {source.source_hash} at "
                f"{object_key!r}: the StackSet copies need a plain object key known at synth "
                "(use the default synthesizer without a bucket prefix for the deploying stack)"
            )
        staged = s3deploy.Source.bucket(self._bootstrap_bucket(location.bucket_name), object_key)
        for region in self._regions:
            copy = self._copies.get(region)
            if copy is None:
                self._copies[region] = self._copy(region, staged)
            else:
                copy.add_source(staged)
        self.assets.append(
            CopiedAsset(
                source_hash=source.source_hash,
                object_key=object_key,
                packaging=str(source.packaging),
            )
        )
        bucket_name = cdk.Fn.sub(f"{self._bucket_prefix}-${{AWS::Region}}")
        return cdk.FileAssetLocation(
            bucket_name=bucket_name,
            object_key=object_key,
            http_url=cdk.Fn.sub(
                f"https://{self._bucket_prefix}-${{AWS::Region}}.s3.${{AWS::Region}}."
                f"${{AWS::URLSuffix}}/{object_key}"
            ),
            s3_object_url=cdk.Fn.sub(f"s3://{self._bucket_prefix}-${{AWS::Region}}/{object_key}"),
        )

    def add_docker_image_asset(self, *_args: Any, **_kwargs: Any) -> cdk.DockerImageAssetLocation:
        raise ConfigurationError(
            "a StackSet member template cannot use Docker image assets: its stack instances "
            "run in other accounts and Regions, with no registry of this app there"
        )

    def synthesize(self, session: cdk.ISynthesisSession) -> None:
        # Writes <template file> into the assembly; no stack artifact is emitted.
        template = self._synthesize_template(session)
        size = (Path(session.assembly.outdir) / str(template.file_name)).stat().st_size
        # aws-assumption: stacksets-quotas
        if size > MAX_TEMPLATE_BYTES:
            raise ConfigurationError(
                f"the StackSet's member template is {size:,} bytes; CloudFormation reads at "
                f"most {MAX_TEMPLATE_BYTES:,} bytes from a template URL: move resources out "
                "of the member stack"
            )
        location = self._deploying_stack.synthesizer.add_file_asset(
            source_hash=template.source_hash,
            file_name=template.file_name,
            packaging=template.packaging,
        )
        self._template_url = location.http_url

    # -- what the rollout reads ------------------------------------------------------------

    @property
    def template_url(self) -> str:
        """The member template's URL (a token, produced when the member stack synthesizes)."""
        return cdk.Lazy.uncached_string(_TemplateUrl(self))

    @property
    def copies(self) -> dict[str, s3deploy.BucketDeployment]:
        """Region -> the copy of the assets into that Region's asset bucket."""
        return dict(self._copies)

    def _produce_template_url(self) -> str:
        # The CDK resolves every token once while it prepares the app (looking for
        # cross-stack references), before any stack is synthesized; the member stack is a
        # child of the deploying stack, so it is synthesized (and the URL known) before the
        # deploying stack's template is written.
        return self._template_url or NOT_YET_SYNTHESIZED

    def _bootstrap_bucket(self, bucket_name: str) -> s3.IBucket:
        existing = self._copies_scope.node.try_find_child("StagingBucket")
        if existing is not None:
            return existing  # type: ignore[return-value]
        return s3.Bucket.from_bucket_name(self._copies_scope, "StagingBucket", bucket_name)

    def _copy(self, region: str, first: s3deploy.ISource) -> s3deploy.BucketDeployment:
        name = f"{self._bucket_prefix}-{region}"
        # The copy function runs in the deploying Region and writes to every Region's bucket.
        # aws-assumption: stackset-asset-copy-cross-region
        destination = s3.Bucket.from_bucket_attributes(
            self._copies_scope, f"AssetBucket-{region}", bucket_name=name, region=region
        )
        return s3deploy.BucketDeployment(
            self._copies_scope,
            f"CopyAssets-{region}",
            sources=[first],
            destination_bucket=destination,
            # the zip is copied as it is, under its own key: the member template names it
            extract=False,
            # older assets stay: stack instances not yet updated still point at them
            prune=False,
            retain_on_delete=True,
            memory_limit=512,
        )


@jsii.implements(cdk.IStringProducer)
class _TemplateUrl:
    def __init__(self, synthesizer: StackSetTemplateSynthesizer) -> None:
        self._synthesizer = synthesizer

    def produce(self, _context: cdk.IResolveContext) -> str:
        return self._synthesizer._produce_template_url()


def _file_asset_source(args: tuple[Any, ...], kwargs: dict[str, Any]) -> cdk.FileAssetSource:
    """jsii hands the struct over positionally or as keywords, depending on the caller."""
    if args and isinstance(args[0], cdk.FileAssetSource):
        return args[0]
    return cdk.FileAssetSource(**kwargs)
