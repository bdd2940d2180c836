"""Value types for :class:`~crashcart.constructs.kdump_image_pipeline.KdumpImagePipeline`.

Private module: the public names are re-exported by ``kdump_image_pipeline``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import aws_cdk as cdk
from aws_cdk import aws_kms as kms

from crashcart.components.families import FAMILIES
from crashcart.errors import ConfigurationError

_VERSION_RE = re.compile(r"^(0|[1-9]\d{0,9})\.(0|[1-9]\d{0,9})\.(0|[1-9]\d{0,9})\Z")
_MAX_VERSION_NODE = 2**30 - 1
_ACCOUNT_RE = re.compile(r"^\d{12}\Z")
_REGION_RE = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d\Z")
_MANAGED_VERSION_RE = re.compile(r"^(\d+|x)\.(\d+|x)\.(\d+|x)\Z")


def validate_version(version: str, what: str) -> str:
    """Check an Image Builder semantic version ``x.y.z`` (each node 0 .. 2^30-1)."""
    if cdk.Token.is_unresolved(version):
        return version
    match = _VERSION_RE.match(version)
    if not match or any(int(node) > _MAX_VERSION_NODE for node in match.groups()):
        raise ConfigurationError(
            f"{what} version {version!r} is not x.y.z: Image Builder versions are three "
            f"non-negative integers (each at most {_MAX_VERSION_NODE}), e.g. '1.4.0'"
        )
    return version


@dataclass(frozen=True)
class ParentImage:
    """The image the pipeline starts from. Use a constructor, not the class itself.

    A parent given by SSM parameter or AMI id has no architecture knowable at synth: the
    pipeline's ``architecture`` prop says what it is, and the validate phase checks it.
    """

    kind: Literal["family-default", "ssm", "ami", "managed"]
    value: str = ""
    version: str = ""

    @staticmethod
    def family_default() -> ParentImage:
        """The family's default (see docs/pipeline.md: a managed image or a public parameter)."""
        return ParentImage("family-default")

    @staticmethod
    def from_ssm_parameter(parameter_name: str) -> ParentImage:
        """An SSM parameter holding an AMI id, resolved by Image Builder at each build."""
        if not cdk.Token.is_unresolved(parameter_name) and not parameter_name.startswith("/"):
            raise ConfigurationError(
                f"SSM parameter name {parameter_name!r} must start with '/' (e.g. "
                "'/aws/service/debian/release/12/latest/amd64')"
            )
        return ParentImage("ssm", parameter_name)

    @staticmethod
    def from_ami_id(ami_id: str) -> ParentImage:
        """A fixed AMI id (in the build Region)."""
        if not cdk.Token.is_unresolved(ami_id) and not re.match(r"^ami-[0-9a-f]{8,17}\Z", ami_id):
            raise ConfigurationError(f"AMI id {ami_id!r} is not of the form ami-0123456789abcdef0")
        return ParentImage("ami", ami_id)

    # aws-assumption: imagebuilder-managed-parent-images
    @staticmethod
    def from_managed_image(image_name: str, version: str = "x.x.x") -> ParentImage:
        """An Image Builder-managed image (owner ``aws``), e.g. ``amazon-linux-2023-x86``.

        A version with wildcards (``x.x.x``, ``2025.x.x``) follows new releases and is the
        only kind of parent the "on parent image update" schedule works with.
        """
        if not _MANAGED_VERSION_RE.match(version):
            raise ConfigurationError(
                f"managed image version {version!r} is not x.y.z with optional 'x' "
                "wildcards (e.g. 'x.x.x' or '2025.6.x')"
            )
        return ParentImage("managed", image_name, version)

    @property
    def has_version_wildcard(self) -> bool:
        """True for a managed image with a wildcard version (parent-update trigger works)."""
        return self.kind == "managed" and "x" in self.version.split(".")

    def resolve(self, family: str, architecture: str) -> ParentImage:
        """The concrete parent: the family default replaced by what it stands for."""
        if self.kind != "family-default":
            return self
        kind, value = FAMILIES[family].default_parent[architecture]
        if kind == "ssm":
            return ParentImage.from_ssm_parameter(value)
        return ParentImage.from_managed_image(value)

    def render(self) -> str:
        """The recipe's ``ParentImage`` string."""
        if self.kind == "ssm":
            return f"ssm:{self.value}"
        if self.kind == "ami":
            return self.value
        if self.kind == "managed":
            return (
                f"arn:{cdk.Aws.PARTITION}:imagebuilder:{cdk.Aws.REGION}:aws:image/"
                f"{self.value}/{self.version}"
            )
        raise ConfigurationError("resolve() the family default before rendering it")


@dataclass(frozen=True)
class Hardening:
    """The hardening component that runs after the OS update and before kdump is armed."""

    kind: Literal["aws-stig", "component", "none"]
    level: str = ""
    component_arn: str = ""
    parameters: tuple[tuple[str, str], ...] = ()
    reason: str = ""

    # aws-assumption: imagebuilder-stig-components
    @staticmethod
    def aws_stig(level: Literal["low", "medium", "high"] = "high") -> Hardening:
        """The AWS-managed STIG component (``stig-build-linux`` / ``stig-build-windows-*``)."""
        if level not in ("low", "medium", "high"):
            raise ConfigurationError(f"STIG level {level!r} is not low, medium or high")
        return Hardening("aws-stig", level=level)

    @staticmethod
    def component(component_arn: str, parameters: Mapping[str, str] | None = None) -> Hardening:
        """Your own hardening component (its ARN, with a version), with its parameters."""
        return Hardening(
            "component",
            component_arn=component_arn,
            parameters=tuple(sorted((parameters or {}).items())),
        )

    @staticmethod
    def none(reason: str) -> Hardening:
        """No hardening component; the reason is recorded in the recipe's description."""
        if len(reason.strip()) < 10:
            raise ConfigurationError("Hardening.none() needs a reason a reviewer can check")
        return Hardening("none", reason=reason)


@dataclass(frozen=True)
class PipelineSchedule:
    """When the pipeline runs."""

    expression: str | None
    on_parent_update: bool = False
    timezone: str = "Etc/UTC"

    @staticmethod
    def cron(
        expression: str, *, on_parent_update: bool = False, timezone: str = "Etc/UTC"
    ) -> PipelineSchedule:
        """Image Builder cron, e.g. ``cron(0 3 ? * sun *)``.

        :param on_parent_update: run at the scheduled time only if the parent image (or a
            component) has a newer version. Needs a managed parent with a version wildcard.
        """
        if not cdk.Token.is_unresolved(expression) and not re.match(
            r"^cron\([^()]+\)\Z", expression
        ):
            raise ConfigurationError(
                f"schedule {expression!r} is not an Image Builder cron expression like "
                "'cron(0 3 ? * sun *)'"
            )
        return PipelineSchedule(expression, on_parent_update, timezone)

    @staticmethod
    def manual() -> PipelineSchedule:
        """No schedule: builds start from the console, CLI or an event."""
        return PipelineSchedule(None)


@dataclass(frozen=True, kw_only=True)
class DistributionTarget:
    """One Region the AMI is distributed to.

    :param region: the Region. The stack's own Region uses the pipeline's key by default.
    :param kms_key: the customer key that encrypts the AMI's snapshots in that Region.
        Required for any other Region (a key is regional). Default: the pipeline's key
        (build Region only).
    :param accounts: accounts the AMI is shared with (launch permission). Each needs use of
        the key: the pipeline's own key gets the grants; for a key in another Region call
        :meth:`KdumpImagePipeline.grant_shared_ami_key_use` in that Region's stack.
        Default: none.
    """

    region: str
    kms_key: kms.IKey | None = None
    accounts: Sequence[str] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if not cdk.Token.is_unresolved(self.region) and not _REGION_RE.match(self.region):
            raise ConfigurationError(f"distribution region {self.region!r} is not a Region name")
        for account in self.accounts:
            if not cdk.Token.is_unresolved(account) and not _ACCOUNT_RE.match(account):
                raise ConfigurationError(
                    f"distribution account {account!r} is not a 12-digit account id"
                )
