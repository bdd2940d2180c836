"""OrganisationRollout: crashcart's member stack in every account of some OUs, in some Regions.

One ``AWS::CloudFormation::StackSet`` with service-managed permissions deploys
:class:`~crashcart.stacks.organisation_member.OrganisationMemberStack` to the accounts of the
given organisational units (or the whole organisation, by its root) in the given Regions.
Automatic deployment is on: an account that joins a target OU gets its stack instances with
no human step, one that leaves loses them. CloudFormation, not a loop of crashcart's, does
the fan-out, the retries and the bookkeeping.

Example (in the management account, or a CloudFormation delegated administrator)::

    stack = cdk.Stack(app, "CrashcartRollout", env=cdk.Environment(account=..., region=...))
    OrganisationRollout(
        stack,
        "Rollout",
        settings=MemberAccountSettings(...),        # the central account, per Region
        targets=["ou-ab12-34cd56ef"],               # or ["r-ab12"], the whole organisation
        regions=["eu-west-1", "us-east-1"],
        asset_bucket_prefix="crashcart-stackset-assets-111111111111",
    )

The Lambda code: a stack instance cannot read the deploying account's CDK bootstrap bucket
(another account, and Lambda reads code only from a bucket in the function's own Region). The
deploying account therefore keeps one asset bucket per target Region, named
``<asset_bucket_prefix>-<region>`` and readable by the organisation
(:class:`~crashcart.constructs.organisation_asset_bucket.OrganisationAssetBucket`, one stack
per Region, deployed first); this construct copies every asset there at deploy time and the
member template points at ``<prefix>-${AWS::Region}``. See docs/organisation/rollout.md.

Service-managed StackSets never deploy to the management account: deploy
``OrganisationMemberStack`` there as an ordinary stack, or leave it uncovered (no workloads in
the management account, AWS's own recommendation).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import aws_cdk as cdk
from aws_cdk import aws_cloudformation as cloudformation
from aws_cdk import aws_iam as iam
from constructs import Construct

from crashcart.constructs._internal.rollout_acknowledgements import acknowledge_asset_copies
from crashcart.constructs._internal.service_key import service_endpoint
from crashcart.constructs._internal.stackset_template import StackSetTemplateSynthesizer
from crashcart.constructs.member_account_settings import (
    REGION,
    MemberAccountSettings,
    MemberRemediation,
)
from crashcart.errors import ConfigurationError

__all__ = ["CallAs", "OrganisationRollout", "RolloutPace"]

#: An organisational unit id (``ou-<root part>-<8 to 32>``) or the root id (``r-...``).
OU_ID: Final = re.compile(r"ou-[0-9a-z]{4,32}-[a-z0-9]{8,32}")
ROOT_ID: Final = re.compile(r"r-[0-9a-z]{4,32}")
#: S3 bucket names are at most 63 characters; the longest Region name is about 16.
_PREFIX: Final = re.compile(r"[a-z0-9][a-z0-9-]{1,38}[a-z0-9]")
_STACK_SET_NAME: Final = re.compile(r"[a-zA-Z][a-zA-Z0-9-]{0,127}")
_KEY_ARN: Final = re.compile(
    r"arn:aws[a-z-]*:kms:([a-z]{2}(?:-[a-z]+)+-[0-9]{1,2}):[0-9]{12}:key/[A-Za-z0-9-]{1,128}"
)


class CallAs(enum.Enum):
    """Who creates the StackSet (CloudFormation's ``CallAs``)."""

    #: The organisation's management account.
    SELF = "SELF"
    #: A member account registered as a CloudFormation StackSets delegated administrator.
    # aws-assumption: stacksets-delegated-administrator
    DELEGATED_ADMIN = "DELEGATED_ADMIN"


@dataclass(frozen=True, kw_only=True)
class RolloutPace:
    """How fast a StackSet operation (create, update, delete) goes through the accounts.

    :param max_concurrent_percentage: accounts per Region worked on at once, in percent of
        the target accounts (1-100). Default: 25 - a bad template reaches a quarter of the
        accounts of the first Region before the failure tolerance stops it.
    :param failure_tolerance_percentage: accounts per Region that may fail before the
        operation stops in that Region and does not start in the next (0-100). Default: 10.
    :param regions_in_parallel: work on all Regions at once. Default: False - one Region after
        the other, in the order given, so that a failure stops before the next Region.

    These apply to operations on the StackSet; automatic deployment to a new account does
    not use them (aws-assumption: stacksets-operation-preferences).
    """

    max_concurrent_percentage: int = 25
    failure_tolerance_percentage: int = 10
    regions_in_parallel: bool = False

    def __post_init__(self) -> None:
        for name, low in (("max_concurrent_percentage", 1), ("failure_tolerance_percentage", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= 100:
                raise ConfigurationError(f"RolloutPace {name}={value!r}: give an int {low}-100")
        if not isinstance(self.regions_in_parallel, bool):
            raise ConfigurationError(
                f"RolloutPace regions_in_parallel={self.regions_in_parallel!r}: True or False"
            )


class OrganisationRollout(Construct):
    """The member stack, deployed by a service-managed StackSet to OUs and Regions.

    Attributes: ``stack_set`` (the ``CfnStackSet``), ``member_stack`` (the
    :class:`OrganisationMemberStack` synthesized as its template), ``asset_copies``
    (Region -> the ``BucketDeployment`` copying the assets to that Region's bucket),
    ``asset_bucket_names`` (Region -> bucket name).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: MemberAccountSettings,
        targets: Sequence[str],
        regions: Sequence[str],
        asset_bucket_prefix: str,
        member: MemberRemediation = MemberRemediation(),  # noqa: B008 - frozen value
        call_as: CallAs = CallAs.SELF,
        pace: RolloutPace = RolloutPace(),
        retain_stacks_on_account_removal: bool = False,
        stack_set_name: str = "crashcart-member",
        bootstrap_key_arn: str | None = None,
    ) -> None:
        """
        :param settings: the central account's resources per Region; it needs an entry for
            every Region in ``regions``.
        :param targets: organisational unit ids (``ou-...``) or the root id (``r-...``: every
            account of the organisation but the management account).
        :param regions: the Regions of the stack instances, in the order an operation goes
            through them.
        :param asset_bucket_prefix: the asset buckets are ``<prefix>-<region>``, in the
            deploying account, one per Region in ``regions``, readable by the organisation
            (``OrganisationAssetBucket``). Bucket names are global: include the account id.
        :param member: how the remediation behaves in the member accounts.
            Default: ``MemberRemediation()``.
        :param call_as: ``CallAs.SELF`` in the management account, ``CallAs.DELEGATED_ADMIN``
            in a registered delegated administrator. Default: SELF.
        :param pace: concurrency and failure tolerance of StackSet operations.
            Default: ``RolloutPace()`` (25 % of the accounts at once, 10 % may fail, one
            Region after the other).
        :param retain_stacks_on_account_removal: keep an account's stack when it leaves the
            target OUs. Default: False - its stack instances are deleted: an account outside
            the organisation can no longer reach the central bucket, bus or breaker (they admit
            the organisation only), so its remediation would only fail closed, while it kept
            an interrupt right and alarms nobody owns. The incident table outlives the stack
            (removal policy RETAIN).
        :param stack_set_name: the StackSet's name (unique per account and Region).
            Default: ``crashcart-member``.
        :param bootstrap_key_arn: the KMS key of the deploying environment's CDK bootstrap
            bucket, when it was bootstrapped with ``--bootstrap-kms-key-id <your key>``: the
            copy function then may ``kms:Decrypt`` with it through S3 in this Region. Not
            needed for the default (``aws/s3``) nor for ``--bootstrap-customer-key``, whose
            key policy admits every principal of the account through S3
            (aws-assumption: cdk-bootstrap-assets-key-policy). Default: None.
        :raises ConfigurationError: for every invalid value, naming it.
        """
        _check(settings, targets, regions, asset_bucket_prefix, member, call_as, pace)
        if not isinstance(retain_stacks_on_account_removal, bool):
            raise ConfigurationError(
                "OrganisationRollout retain_stacks_on_account_removal="
                f"{retain_stacks_on_account_removal!r}: True or False"
            )
        if not isinstance(stack_set_name, str) or not _STACK_SET_NAME.fullmatch(stack_set_name):
            raise ConfigurationError(
                f"OrganisationRollout stack_set_name={stack_set_name!r}: a letter, then up to "
                "127 letters, digits and hyphens (CloudFormation StackSet names)"
            )
        super().__init__(scope, construct_id)
        from crashcart.stacks.organisation_member import OrganisationMemberStack

        deploying = cdk.Stack.of(self)
        self.targets = tuple(targets)
        self.regions = tuple(regions)
        self.asset_bucket_names = {r: f"{asset_bucket_prefix}-{r}" for r in self.regions}
        copies = Construct(self, "Assets")
        self._synthesizer = StackSetTemplateSynthesizer(
            deploying_stack=deploying,
            copies_scope=copies,
            bucket_prefix=asset_bucket_prefix,
            regions=self.regions,
        )
        #: The member template (a stack that is synthesized, not deployed, by the app).
        self.member_stack = OrganisationMemberStack(
            self,
            "Member",
            settings=settings,
            member=member,
            synthesizer=self._synthesizer,
        )
        self.asset_copies = self._synthesizer.copies
        if bootstrap_key_arn is not None:
            self._read_bootstrap_key(_check_key_arn(bootstrap_key_arn, deploying))
        acknowledge_asset_copies(deploying, copies)
        self.stack_set = cloudformation.CfnStackSet(
            self,
            "StackSet",
            stack_set_name=stack_set_name,
            description="crashcart member accounts: status-check alarms -> guarded diagnostic "
            "interrupts, dumps to the central account",
            # aws-assumption: stacksets-service-managed-auto-deployment
            permission_model="SERVICE_MANAGED",
            auto_deployment=cloudformation.CfnStackSet.AutoDeploymentProperty(
                enabled=True,
                retain_stacks_on_account_removal=retain_stacks_on_account_removal,
            ),
            call_as=call_as.value,
            # the member stack names its agent policy (a known name in every account)
            capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"],
            managed_execution={"Active": True},
            operation_preferences=cloudformation.CfnStackSet.OperationPreferencesProperty(
                max_concurrent_percentage=pace.max_concurrent_percentage,
                failure_tolerance_percentage=pace.failure_tolerance_percentage,
                region_concurrency_type="PARALLEL" if pace.regions_in_parallel else "SEQUENTIAL",
                region_order=list(self.regions),
            ),
            stack_instances_group=[
                cloudformation.CfnStackSet.StackInstancesProperty(
                    # aws-assumption: stacksets-skip-management-account
                    deployment_targets=cloudformation.CfnStackSet.DeploymentTargetsProperty(
                        organizational_unit_ids=list(self.targets)
                    ),
                    regions=list(self.regions),
                )
            ],
            template_url=self._synthesizer.template_url,
        )
        # The copies must be in every Region's bucket before a stack instance looks for them.
        for copy in self.asset_copies.values():
            self.stack_set.node.add_dependency(copy)

    def _read_bootstrap_key(self, key_arn: str) -> None:
        """The copies' (one, shared) function may decrypt the staged assets with the bootstrap
        bucket's key, only through S3 in this Region."""
        region = cdk.Stack.of(self).region
        for copy in self.asset_copies.values():
            copy.handler_role.add_to_principal_policy(
                iam.PolicyStatement(
                    sid="DecryptStagedAssetsThroughS3",
                    actions=["kms:Decrypt"],
                    resources=[key_arn],
                    conditions={
                        # aws-assumption: kms-via-service-endpoint-names
                        "StringEquals": {"kms:ViaService": service_endpoint("s3", region)}
                    },
                )
            )

    @property
    def assets(self) -> list[str]:
        """Object keys of the member template's assets (in every asset bucket)."""
        return [asset.object_key for asset in self._synthesizer.assets]


def _check(
    settings: MemberAccountSettings,
    targets: Sequence[str],
    regions: Sequence[str],
    prefix: str,
    member: MemberRemediation,
    call_as: CallAs,
    pace: RolloutPace,
) -> None:
    owner = "OrganisationRollout"
    for name, value, kind in (
        ("settings", settings, MemberAccountSettings),
        ("member", member, MemberRemediation),
        ("call_as", call_as, CallAs),
        ("pace", pace, RolloutPace),
    ):
        if not isinstance(value, kind):
            raise ConfigurationError(f"{owner} {name}={value!r}: give a {kind.__name__}")
    for name, values in (("targets", targets), ("regions", regions)):
        if isinstance(values, str) or not isinstance(values, Sequence) or not values:
            raise ConfigurationError(
                f"{owner} {name}={values!r}: give a non-empty list (a StackSet with no "
                f"{name} deploys nothing)"
            )
        if len(set(values)) != len(values):
            raise ConfigurationError(f"{owner} {name}={list(values)!r}: an entry is repeated")
    for target in targets:
        if not isinstance(target, str) or not (
            OU_ID.fullmatch(target) or ROOT_ID.fullmatch(target)
        ):
            raise ConfigurationError(
                f"{owner} targets: {target!r} is not an organisational unit id ('ou-ab12-"
                "34cd56ef') or the root id ('r-ab12'); service-managed StackSets deploy to "
                "OUs, not to account ids"
            )
    if any(ROOT_ID.fullmatch(target) for target in targets) and len(targets) > 1:
        raise ConfigurationError(
            f"{owner} targets={list(targets)!r}: the root already covers every OU; give the "
            "root alone or OUs only"
        )
    for region in regions:
        if not isinstance(region, str) or not REGION.fullmatch(region):
            raise ConfigurationError(
                f"{owner} regions: {region!r} is not a Region name such as 'eu-west-1'"
            )
        settings.for_region(region)
    check_asset_bucket_prefix(prefix)


def _check_key_arn(key_arn: str, deploying: cdk.Stack) -> str:
    """A KMS key ARN in the deploying stack's Region (where the bootstrap bucket is)."""
    if isinstance(key_arn, str) and cdk.Token.is_unresolved(key_arn):
        return key_arn
    match = _KEY_ARN.fullmatch(key_arn) if isinstance(key_arn, str) else None
    if match is None or (
        not cdk.Token.is_unresolved(deploying.region) and match.group(1) != deploying.region
    ):
        raise ConfigurationError(
            f"OrganisationRollout bootstrap_key_arn={key_arn!r}: give the ARN of the KMS key "
            f"of the CDK bootstrap bucket in {deploying.region} (arn:aws:kms:<region>:"
            "<account>:key/<id>; an alias is not accepted: KMS authorizes Decrypt on the key)"
        )
    return key_arn


def check_asset_bucket_prefix(prefix: str) -> None:
    """The asset buckets' names are ``<prefix>-<region>``: S3's bucket naming rules."""
    if not isinstance(prefix, str) or not _PREFIX.fullmatch(prefix) or "--" in prefix:
        raise ConfigurationError(
            f"asset_bucket_prefix={prefix!r}: 3-40 lower-case letters, digits and single "
            "hyphens, starting and ending with a letter or digit; the buckets are "
            "'<prefix>-<region>' (S3 bucket names, at most 63 characters)"
        )
