"""OrganisationLink: what a member account's remediation needs of the central account.

Given as ``UnresponsiveInstanceRemediation(organisation=OrganisationLink(...))``, it adds to
the remediation function (and to an ``AutoScalingHold`` over it, which decides with the same
guards):

- the organisation breaker: before each interrupt, one slot from the central account's
  breaker table (``OrganisationBreaker``), by a conditional UpdateItem; breaker open, table
  unreachable, access denied or throttled -> no interrupt
  (``crashcart/functions/remediation/org_breaker.py``);
- incident events: one ``PutEvents`` to the central bus per incident state written
  (``crashcart/functions/remediation/central_events.py``, format in
  :mod:`crashcart.runtime.incident_events`).

The function's extra rights are exactly these, in a customer managed policy of their own
(``OrganisationPolicy``): ``dynamodb:GetItem`` / ``UpdateItem`` on the breaker table ARN, for
the breaker item's partition key only; ``kms:Decrypt`` / ``DescribeKey`` / ``Encrypt`` /
``GenerateDataKey`` on the table's key, only through DynamoDB in this Region;
``events:PutEvents`` on the bus ARN. The central side allows the organisation's principals
in its resource policies (the table's, the key's, the bus's): cross-account access needs both
(aws-assumption: dynamodb-resource-policy-cross-account).

Without the prop nothing changes: no variable, no policy, the same template.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

import aws_cdk as cdk
from aws_cdk import aws_iam as iam

from crashcart import _props as props
from crashcart.constructs._internal.remediation_checks import env_number, env_seconds
from crashcart.constructs._internal.service_key import service_endpoint
from crashcart.constructs.remediation_settings import _seconds, _unresolved
from crashcart.errors import ConfigurationError
from crashcart.runtime import environment as variables
from crashcart.runtime.incident import ORGANISATION_BREAKER_PK

if TYPE_CHECKING:
    from crashcart.constructs.unresponsive_instance_remediation import (
        UnresponsiveInstanceRemediation,
    )

#: What a member's function does on the breaker table (the resource policy allows the same).
BREAKER_ACTIONS: Final = ("dynamodb:GetItem", "dynamodb:UpdateItem")
#: What DynamoDB may need of the table's customer managed key for the caller's reads and
#: writes: ``kms:Decrypt`` of the table key is the call DynamoDB documents with the caller's
#: identity; ``kms:DescribeKey``, ``kms:Encrypt`` and ``kms:GenerateDataKey`` are what AWS's
#: own DynamoDB key policy and its cross-account example give table users (metadata and
#: encryption only, through DynamoDB only; aws-assumption: dynamodb-cmk-caller-key-actions).
BREAKER_KEY_ACTIONS: Final = (
    "kms:Decrypt",
    "kms:DescribeKey",
    "kms:Encrypt",
    "kms:GenerateDataKey",
)
#: Sending incident events.
EVENT_ACTIONS: Final = ("events:PutEvents",)

_PARTITION = r"aws[a-z-]*"
_REGION = r"[a-z]{2}(?:-[a-z]+)+-[0-9]{1,2}"
_ACCOUNT = r"[0-9]{12}"
ARN_PATTERNS: Final = {
    "breaker_table_arn": re.compile(
        rf"arn:({_PARTITION}):dynamodb:({_REGION}):({_ACCOUNT}):table/[A-Za-z0-9_.-]{{3,255}}"
    ),
    "breaker_key_arn": re.compile(
        rf"arn:({_PARTITION}):kms:({_REGION}):({_ACCOUNT}):key/[A-Za-z0-9-]{{1,128}}"
    ),
    "central_event_bus_arn": re.compile(
        rf"arn:({_PARTITION}):events:({_REGION}):({_ACCOUNT}):event-bus/[A-Za-z0-9/_.-]{{1,256}}"
    ),
}
_EXAMPLES: Final = {
    "breaker_table_arn": "arn:aws:dynamodb:eu-west-1:999999999999:table/crashcart-org-breaker",
    "breaker_key_arn": "arn:aws:kms:eu-west-1:999999999999:key/1234abcd-12ab-34cd-56ef-1234567890",
    "central_event_bus_arn": "arn:aws:events:eu-west-1:999999999999:event-bus/crashcart-central",
}


@dataclass(frozen=True, kw_only=True)
class OrganisationLink:
    """The central account's breaker table, its key and bus, in the member's Region.

    :param breaker_table_arn: the ``OrganisationBreaker`` table of the central account in
        this Region (``arn:aws:dynamodb:<region>:<central account>:table/<name>``).
    :param breaker_key_arn: the table's KMS key (a customer managed key: cross-account
        access to a table under an AWS managed key is not supported).
    :param central_event_bus_arn: the central bus incident events are put on.
    :param threshold: interrupt candidates across the organisation, in this Region, within
        ``window`` that open the breaker (the one that reaches it is skipped: at most
        ``threshold - 1`` interrupts per window). Default: 20 (docs/organisation/breakers.md).
    :param window: the counting window. Default: 15 minutes.
    :param quiet: no candidate for this long closes an open breaker. Default: 1 hour.

    Every value must be the same for all member accounts of a Region (they share the item):
    deploy them from one StackSet.
    """

    breaker_table_arn: str
    breaker_key_arn: str
    central_event_bus_arn: str
    threshold: int = 20
    window: cdk.Duration = field(default_factory=lambda: cdk.Duration.minutes(15))
    quiet: cdk.Duration = field(default_factory=lambda: cdk.Duration.hours(1))

    def __post_init__(self) -> None:
        found: dict[str, tuple[str, str, str]] = {}
        for name, pattern in ARN_PATTERNS.items():
            value = getattr(self, name)
            if _unresolved(value):
                continue
            if not isinstance(value, str) or not (match := pattern.fullmatch(value)):
                raise ConfigurationError(
                    f"OrganisationLink {name}={value!r}: must be an ARN like "
                    f"{_EXAMPLES[name]} (the central account's resource in this Region)"
                )
            found[name] = (match.group(1), match.group(2), match.group(3))
        regions = {where[1] for where in found.values()}
        if len(regions) > 1:
            raise ConfigurationError(
                f"OrganisationLink ARNs name several Regions {sorted(regions)}: the breaker "
                "table, its key and the bus must all be the central account's resources in "
                "the member's own Region (one breaker per Region; no cross-Region calls)"
            )
        table, key = found.get("breaker_table_arn"), found.get("breaker_key_arn")
        if table and key and table[2] != key[2]:
            raise ConfigurationError(
                f"OrganisationLink breaker_key_arn is in account {key[2]}, the table in "
                f"{table[2]}: give the key that encrypts the breaker table"
            )
        threshold = self.threshold
        if not _unresolved(threshold) and (
            not isinstance(threshold, int) or isinstance(threshold, bool) or threshold < 2
        ):
            raise ConfigurationError(
                f"OrganisationLink threshold={threshold!r}: must be a whole number of at least "
                "2; the candidate that reaches it opens the breaker and is not interrupted"
            )
        _seconds("OrganisationLink window", self.window, minimum=60)
        _seconds("OrganisationLink quiet", self.quiet, minimum=60)

    def region(self) -> str | None:
        """The Region the ARNs name (None when they are all tokens)."""
        for name, pattern in ARN_PATTERNS.items():
            value = getattr(self, name)
            if not _unresolved(value) and (match := pattern.fullmatch(value)):
                return match.group(2)
        return None


def check_organisation(link: OrganisationLink | None, stack: cdk.Stack) -> OrganisationLink | None:
    """The prop's type, and the member stack's Region against the central resources'."""
    props.check(
        "UnresponsiveInstanceRemediation",
        "organisation",
        link,
        OrganisationLink,
        example="OrganisationLink(breaker_table_arn=..., breaker_key_arn=..., "
        "central_event_bus_arn=...)",
        optional=True,
    )
    if link is None:
        return None
    region = link.region()
    if region is not None and not _unresolved(stack.region) and region != stack.region:
        raise ConfigurationError(
            f"OrganisationLink names Region {region}, but stack {stack.stack_name!r} deploys "
            f"to {stack.region}: give the central account's breaker table, key and bus of "
            f"{stack.region} (the breaker and the bus are per Region)"
        )
    return link


def organisation_environment(link: OrganisationLink) -> dict[str, str]:
    """The function's variables for ``link`` (runtime contract: crashcart.runtime.environment)."""
    return {
        variables.ORG_BREAKER_TABLE_ARN: link.breaker_table_arn,
        variables.ORG_BREAKER_THRESHOLD: env_number(link.threshold),
        variables.ORG_BREAKER_WINDOW_SECONDS: env_seconds(link.window),
        variables.ORG_BREAKER_QUIET_SECONDS: env_seconds(link.quiet),
        variables.ORG_EVENT_BUS_ARN: link.central_event_bus_arn,
    }


def organisation_statements(link: OrganisationLink, stack: cdk.Stack) -> list[iam.PolicyStatement]:
    """Exactly the rights ``link`` adds: the breaker item, its key through DynamoDB, the bus."""
    return [
        iam.PolicyStatement(
            sid="OrganisationBreaker",
            actions=list(BREAKER_ACTIONS),
            resources=[link.breaker_table_arn],
            conditions={
                # aws-assumption: dynamodb-fine-grained-keys
                "ForAllValues:StringEquals": {"dynamodb:LeadingKeys": [ORGANISATION_BREAKER_PK]}
            },
        ),
        iam.PolicyStatement(
            sid="OrganisationBreakerKey",
            actions=list(BREAKER_KEY_ACTIONS),
            resources=[link.breaker_key_arn],
            conditions={
                # aws-assumption: dynamodb-resource-policy-cross-account
                # aws-assumption: kms-via-service-endpoint-names
                "StringEquals": {"kms:ViaService": service_endpoint("dynamodb", stack.region)}
            },
        ),
        iam.PolicyStatement(
            # aws-assumption: eventbridge-put-events-cross-account
            sid="CentralIncidentEvents",
            actions=list(EVENT_ACTIONS),
            resources=[link.central_event_bus_arn],
        ),
    ]


def linked_statements(remediation: UnresponsiveInstanceRemediation) -> list[iam.PolicyStatement]:
    """:func:`organisation_statements` of a remediation's link (none without one): for a
    function that decides with the remediation's settings (the lifecycle hold)."""
    link = remediation.organisation
    return [] if link is None else organisation_statements(link, cdk.Stack.of(remediation))


def grant_organisation_rights(remediation: UnresponsiveInstanceRemediation) -> None:
    """The ``OrganisationPolicy`` of the remediation function's role (when linked)."""
    link = remediation.organisation
    if link is None:
        return
    policy = iam.ManagedPolicy(
        remediation,
        "OrganisationPolicy",
        description="crashcart remediation function: the organisation breaker and central bus",
        statements=organisation_statements(link, cdk.Stack.of(remediation)),
        roles=[remediation.role],
    )
    remediation.function.node.add_dependency(policy)
