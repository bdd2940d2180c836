"""What a member account's crashcart stack needs to know of the central account.

An organisation deploys one member stack (``OrganisationMemberStack``) to every account and
Region through a StackSet: the same template everywhere. What differs per Region is the
central account's resources there (one dump bucket per Region, no cross-Region copies of
memory images): :class:`MemberAccountSettings` carries them as a Region -> :class:`CentralRegion`
mapping, which the member template holds as a CloudFormation ``Mappings`` section and looks up
with ``Fn::FindInMap`` on ``AWS::Region`` at deploy time.

Example::

    settings = MemberAccountSettings(
        organisation_id="o-a1b2c3d4e5",
        central_account="222222222222",
        regions={
            "eu-west-1": CentralRegion(
                dump_bucket_name="crashcart-central-dumps-eu-west-1",
                dump_key_arn="arn:aws:kms:eu-west-1:222222222222:key/1234abcd-...",
                event_bus_arn="arn:aws:events:eu-west-1:222222222222:event-bus/crashcart",
                breaker_table_arn="arn:aws:dynamodb:eu-west-1:222222222222:table/crashcart-org",
                breaker_key_arn="arn:aws:kms:eu-west-1:222222222222:key/5678efgh-...",
            ),
        },
    )

The values are literal strings, not CDK tokens: the central account is another account (and
usually another CDK app), so the member template cannot reference its stack. Tokens are
accepted and not checked (they must resolve to literals in the member template).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

import aws_cdk as cdk

from crashcart.constructs.fleet_scale import ManagedAlarms
from crashcart.constructs.remediation_settings import (
    AlarmWindow,
    CircuitBreaker,
    FleetWatch,
    InterruptGuards,
)
from crashcart.errors import ConfigurationError
from crashcart.opt_in import OptInTag

__all__ = ["CentralRegion", "MemberAccountSettings", "MemberRemediation"]

#: ``o-`` followed by 10 to 32 lower-case letters or digits (Organizations' id pattern).
ORGANISATION_ID: Final = re.compile(r"o-[a-z0-9]{10,32}")
ACCOUNT_ID: Final = re.compile(r"[0-9]{12}")
REGION: Final = re.compile(r"[a-z]{2}(?:-[a-z]+)+-[0-9]+")
#: S3 bucket naming rules: 3-63 characters, lower-case letters, digits, dots and hyphens,
#: beginning and ending with a letter or digit.
BUCKET_NAME: Final = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_PARTITION = r"(?P<partition>aws|aws-cn|aws-us-gov)"
_WHERE = r"(?P<region>[a-z0-9-]+):(?P<account>[0-9]{12})"
KEY_ARN: Final = re.compile(rf"arn:{_PARTITION}:kms:{_WHERE}:key/[A-Za-z0-9-]{{1,128}}")
EVENT_BUS_ARN: Final = re.compile(
    rf"arn:{_PARTITION}:events:{_WHERE}:event-bus/[\w.+=,@/-]{{1,256}}"
)
#: IAM policy names: letters, digits and +=,.@_- (128 at most; room left for the Region).
POLICY_NAME: Final = re.compile(r"[\w+=,.@-]{1,100}")
TABLE_ARN: Final = re.compile(rf"arn:{_PARTITION}:dynamodb:{_WHERE}:table/[A-Za-z0-9_.-]{{3,255}}")


def _unresolved(value: object) -> bool:
    return isinstance(value, str) and cdk.Token.is_unresolved(value)


@dataclass(frozen=True, kw_only=True)
class CentralRegion:
    """The central account's resources in one Region (all in that Region and account).

    :param dump_bucket_name: the dump bucket. Instances write under
        ``dumps/<account id>/<role id>:<instance id>/``; the remediation writes its
        console-output evidence under ``evidence/``.
    :param dump_key_arn: the bucket's KMS key (full key ARN, not an alias): the agent
        encrypts through S3 with it.
    :param event_bus_arn: the central EventBridge bus the member's remediation puts incident
        events on (one hop).
    :param breaker_table_arn: the organisation breaker's DynamoDB table.
    :param breaker_key_arn: the breaker table's KMS key (``OrganisationBreaker``'s customer
        managed key: a table under an AWS managed key cannot be used across accounts).
    """

    dump_bucket_name: str
    dump_key_arn: str
    event_bus_arn: str
    breaker_table_arn: str
    breaker_key_arn: str


@dataclass(frozen=True, kw_only=True)
class MemberAccountSettings:
    """The central account a member stack reports to, per Region.

    :param organisation_id: the organisation (``o-...``): what the central resource policies
        require as ``aws:PrincipalOrgID``.
    :param central_account: the central account's id (12 digits).
    :param regions: Region name -> :class:`CentralRegion`; every Region the member stack is
        deployed to needs an entry (``OrganisationRollout`` checks its Regions against it).
    :raises ConfigurationError: a malformed id, Region, bucket name or ARN, an ARN in another
        Region or account than its entry, or no Region at all.
    """

    organisation_id: str
    central_account: str
    regions: Mapping[str, CentralRegion] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not _unresolved(self.organisation_id) and not (
            isinstance(self.organisation_id, str)
            and ORGANISATION_ID.fullmatch(self.organisation_id)
        ):
            raise ConfigurationError(
                f"MemberAccountSettings organisation_id={self.organisation_id!r}: give the "
                "organisation's id, 'o-' and 10 to 32 lower-case letters or digits (aws "
                "organizations describe-organization): the central policies admit principals "
                "by aws:PrincipalOrgID"
            )
        if not _unresolved(self.central_account) and not (
            isinstance(self.central_account, str) and ACCOUNT_ID.fullmatch(self.central_account)
        ):
            raise ConfigurationError(
                f"MemberAccountSettings central_account={self.central_account!r}: give the "
                "central account's 12-digit id as a string"
            )
        if not isinstance(self.regions, Mapping) or not self.regions:
            raise ConfigurationError(
                f"MemberAccountSettings regions={self.regions!r}: give a mapping of at least "
                "one Region name to CentralRegion(...): the member stack finds the central "
                "bucket, key, bus and breaker table of the Region it runs in there"
            )
        for region, central in self.regions.items():
            self._check_region(region, central)
        # frozen: a read-only copy, so a caller's dict changed later cannot change the settings
        object.__setattr__(self, "regions", MappingProxyType(dict(self.regions)))

    def for_region(self, region: str) -> CentralRegion:
        """The central resources of ``region``.

        :raises ConfigurationError: no entry for ``region``.
        """
        try:
            return self.regions[region]
        except KeyError:
            raise ConfigurationError(
                f"MemberAccountSettings has no central resources for Region {region!r} (it "
                f"has {', '.join(sorted(self.regions))}): a member stack there would find no "
                "dump bucket; add the Region's CentralRegion(...) or leave the Region out"
            ) from None

    def _check_region(self, region: str, central: CentralRegion) -> None:
        if not isinstance(region, str) or not REGION.fullmatch(region):
            raise ConfigurationError(
                f"MemberAccountSettings regions: {region!r} is not a Region name such as "
                "'eu-west-1'"
            )
        if not isinstance(central, CentralRegion):
            raise ConfigurationError(
                f"MemberAccountSettings regions[{region!r}]={central!r}: give CentralRegion(...)"
            )
        name = central.dump_bucket_name
        if not _unresolved(name) and not (isinstance(name, str) and BUCKET_NAME.fullmatch(name)):
            raise ConfigurationError(
                f"MemberAccountSettings regions[{region!r}] dump_bucket_name={name!r}: not an "
                "S3 bucket name (3-63 lower-case letters, digits, dots and hyphens)"
            )
        for what, value, pattern, example in (
            (
                "dump_key_arn",
                central.dump_key_arn,
                KEY_ARN,
                "arn:aws:kms:<region>:<account>:key/<id>",
            ),
            (
                "event_bus_arn",
                central.event_bus_arn,
                EVENT_BUS_ARN,
                "arn:aws:events:<region>:<account>:event-bus/<name>",
            ),
            (
                "breaker_table_arn",
                central.breaker_table_arn,
                TABLE_ARN,
                "arn:aws:dynamodb:<region>:<account>:table/<name>",
            ),
            (
                "breaker_key_arn",
                central.breaker_key_arn,
                KEY_ARN,
                "arn:aws:kms:<region>:<account>:key/<id>",
            ),
        ):
            if _unresolved(value):
                continue
            match = pattern.fullmatch(value) if isinstance(value, str) else None
            if match is None:
                raise ConfigurationError(
                    f"MemberAccountSettings regions[{region!r}] {what}={value!r}: give an ARN "
                    f"such as {example}"
                )
            if match["region"] != region:
                raise ConfigurationError(
                    f"MemberAccountSettings regions[{region!r}] {what}={value!r} is in Region "
                    f"{match['region']}: each Region's member stacks use the central resources "
                    "of their own Region (no cross-Region copies of dumps)"
                )
            if not _unresolved(self.central_account) and match["account"] != self.central_account:
                raise ConfigurationError(
                    f"MemberAccountSettings regions[{region!r}] {what}={value!r} is in account "
                    f"{match['account']}, not the central account {self.central_account}"
                )


@dataclass(frozen=True, kw_only=True)
class MemberRemediation:
    """How the remediation behaves in every member account (the same template everywhere).

    :param tag: the opt-in tag. Default: ``crashcart:diagnostic-interrupt=enabled``.
    :param fleet: how the fleet is watched: ``FleetWatch()`` (one Metrics Insights alarm per
        account and Region) or ``ManagedAlarms()`` (one alarm per opted-in instance, kept at
        run time). Either way the member template's size does not depend on the fleet.
        Instance lists are not offered: they differ per account. Default: ``FleetWatch()``.
    :param dry_run: shadow mode (``DryRun=True``) everywhere. Default: True.
    :param alarm_window: Default: 3 of 3 one-minute periods.
    :param guards: Default: ``InterruptGuards()``.
    :param breaker: the per-account fleet and per-AZ breakers. Default: ``CircuitBreaker()``.
    :param hold_backstop: the Auto Scaling hold's backstop reboot alarm when armed (needs
        resource tags for telemetry in every member account). Default: False.
    :param agent_policy_name: the agent's managed policy is named
        ``<agent_policy_name>-<region>`` in every member account. Default: ``crashcart-agent``.
    """

    tag: OptInTag = field(default_factory=OptInTag)
    fleet: FleetWatch | ManagedAlarms = field(default_factory=FleetWatch)
    dry_run: bool = True
    alarm_window: AlarmWindow = field(default_factory=AlarmWindow)
    guards: InterruptGuards = field(default_factory=InterruptGuards)
    breaker: CircuitBreaker = field(default_factory=CircuitBreaker)
    hold_backstop: bool = False
    agent_policy_name: str = "crashcart-agent"

    def __post_init__(self) -> None:
        if not isinstance(self.fleet, (FleetWatch, ManagedAlarms)):
            raise ConfigurationError(
                f"MemberRemediation fleet={self.fleet!r}: give FleetWatch() or ManagedAlarms(); "
                "a member template is the same in every account, so it cannot list instances"
            )
        for name in ("dry_run", "hold_backstop"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigurationError(
                    f"MemberRemediation {name}={getattr(self, name)!r}: must be True or False"
                )
        if not isinstance(self.agent_policy_name, str) or not POLICY_NAME.fullmatch(
            self.agent_policy_name
        ):
            raise ConfigurationError(
                f"MemberRemediation agent_policy_name={self.agent_policy_name!r}: 1-100 "
                "letters, digits and +=,.@_- (IAM policy names; the Region is appended)"
            )
