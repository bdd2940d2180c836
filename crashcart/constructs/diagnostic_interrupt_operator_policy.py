"""Who may send a diagnostic interrupt to which instance: tag-scoped IAM and tamper protection.

``ec2:SendDiagnosticInterrupt`` makes the hypervisor inject an NMI into an instance; with
crashcart's kdump settings the guest panics and reboots. IAM is the only thing that decides
who may do that, so the permission is granted in exactly one shape:

- action ``ec2:SendDiagnosticInterrupt`` and nothing else;
- resource ``arn:${AWS::Partition}:ec2:<region>:<account>:instance/*`` for the given (or the
  grantee's own) regions and accounts, never ``*``;
- condition ``StringEquals`` ``aws:ResourceTag/<opt-in key>`` = ``<opt-in value>``: only
  instances that carry the opt-in tag.

A tag condition is only as strong as the control over the tag. So every principal that is
granted the interrupt also receives explicit denies on adding, changing or removing the
opt-in tag (:func:`tag_tamper_deny_statements`): otherwise it could tag any instance and
then crash it. IAM matches tag *keys* in ``aws:ResourceTag/<key>`` case-insensitively while
EC2 tag keys are case-sensitive (``CrashCart:Diagnostic-Interrupt`` is a different EC2 tag
that the allow condition still matches), so the denies compare ``aws:TagKeys`` with
``ForAnyValue:StringEqualsIgnoreCase``.

There is deliberately no "dry-run only" variant: no IAM condition tells a ``DryRun=True``
call from a real one.

Why one module: this file is the whole security boundary of the interrupt - the one shape
of the allow, the tamper denies that make its tag condition mean something, the checks of
regions and accounts, the operator policy built from them, and the acknowledgement of
exactly its wildcards - so that a reviewer checks who may crash an instance in one place.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from constructs import Construct

from crashcart import _props as props
from crashcart.compliance import acknowledge
from crashcart.errors import ConfigurationError
from crashcart.opt_in import OptInTag

#: The one action this module grants.
INTERRUPT_ACTION = "ec2:SendDiagnosticInterrupt"

#: Read-only calls an operator needs to find the right instance and see why it hangs.
#: EC2 describe calls support no resource-level permissions: their resource must be ``*``.
OPERATOR_DESCRIBE_ACTIONS = (
    "ec2:DescribeInstanceStatus",
    "ec2:DescribeInstanceTypes",
    "ec2:DescribeInstances",
)

#: Console output is resource-scoped like the interrupt: only opted-in instances.
OPERATOR_CONSOLE_ACTIONS = ("ec2:GetConsoleOutput",)

#: Tagging actions that could add, change or remove the opt-in tag on an instance.
TAGGING_ACTIONS = ("ec2:CreateTags", "ec2:DeleteTags")

#: Statement ids; docs/iam.md explains every statement by its id.
SID_INTERRUPT = "CrashcartDiagnosticInterruptOptedIn"
SID_DENY_TAG_KEY = "CrashcartDenyOptInTagChanges"
SID_DENY_TAG_AT_LAUNCH = "CrashcartDenyOptInTagAtLaunch"
SID_DENY_DELETE_ALL_TAGS = "CrashcartDenyDeleteAllInstanceTags"
SID_OPERATOR_DESCRIBE = "CrashcartOperatorDescribe"
SID_OPERATOR_CONSOLE = "CrashcartOperatorConsoleOutputOptedIn"

#: The IAM operator that compares the requested tag keys with the opt-in key whatever
#: their case (a set operator combined with the case-insensitive string operator).
TAG_KEYS_OPERATOR = "ForAnyValue:StringEqualsIgnoreCase"

_REGION = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d{1,2}\Z")
_ACCOUNT = re.compile(r"^\d{12}\Z")


@dataclass(frozen=True)
class _Scope:
    regions: tuple[str, ...]
    accounts: tuple[str, ...]


def grant_diagnostic_interrupt(
    grantee: iam.IGrantable,
    *,
    tag: OptInTag = OptInTag(),  # noqa: B008 - frozen, immutable value
    regions: Sequence[str] | None = None,
    accounts: Sequence[str] | None = None,
) -> iam.Grant:
    """Let ``grantee`` send diagnostic interrupts to opted-in instances, and nothing more.

    Adds to the grantee's identity policy one ``Allow`` of ``ec2:SendDiagnosticInterrupt``
    on ``arn:${AWS::Partition}:ec2:<region>:<account>:instance/*`` for every region and
    account, conditioned on ``aws:ResourceTag/<tag.key>`` = ``tag.value``; and, because a
    principal that may interrupt must never be able to opt an instance in itself, the
    :func:`tag_tamper_deny_statements` as explicit denies on the same policy. It also
    acknowledges the cdk-nag ``AwsSolutions-IAM5`` finding of exactly those ``instance/*``
    ARNs on the grantee's default policy (any other wildcard there is still reported).

    When the grantee cannot hold an identity policy (e.g. a service principal) the returned
    grant is not successful and nothing is added: use ``grant.assert_success()``. (A role
    imported with ``mutable=False`` reports success but deploys nothing: CDK behaviour.)

    :param grantee: the role, user, group or function that may interrupt.
    :param tag: the opt-in tag. Default: ``crashcart:diagnostic-interrupt`` = ``enabled``.
    :param regions: the regions whose instances may be interrupted. Default: the region of
        the grantee's stack (``${AWS::Region}`` for an environment-agnostic stack).
    :param accounts: the 12-digit account ids whose instances may be interrupted. EC2 has
        no resource policies, so an identity policy only ever acts in the principal's own
        account: name other accounts only for a policy that is deployed into them (e.g. by
        StackSets). Default: the account of the grantee's stack.
    :raises ConfigurationError: an empty region or account list, a region that is not a
        region name, an account id that is not 12 digits.
    """
    props.check(
        "grant_diagnostic_interrupt",
        "grantee",
        grantee,
        iam.IGrantable,
        example="an iam.Role or a lambda_.Function",
    )
    _check_tag("grant_diagnostic_interrupt", tag)
    scope = _resolve_scope(grantee, regions=regions, accounts=accounts)
    grant = iam.Grant.add_to_principal(
        grantee=grantee,
        actions=[INTERRUPT_ACTION],
        resource_arns=instance_arns(scope.regions, scope.accounts),
        conditions=opt_in_condition(tag),
    )
    if grant.success:
        for statement in tag_tamper_deny_statements(tag):
            grantee.grant_principal.add_to_principal_policy(statement)
        principal = grantee.grant_principal
        if isinstance(principal, Construct):
            # The narrowest construct: the principal's default policy, which holds the
            # statement (roles, users and groups name it "DefaultPolicy").
            policy = principal.node.try_find_child("DefaultPolicy")
            target = policy if isinstance(policy, Construct) else principal
            acknowledge_instance_wildcards(target, instance_arns(scope.regions, scope.accounts))
    return grant


def interrupt_statement(
    *,
    tag: OptInTag = OptInTag(),  # noqa: B008 - frozen, immutable value
    regions: Sequence[str],
    accounts: Sequence[str],
    require_mfa: bool = False,
) -> iam.PolicyStatement:
    """The ``Allow`` statement of ``ec2:SendDiagnosticInterrupt`` on opted-in instances.

    ``regions`` and ``accounts`` may be CDK tokens (e.g. ``cdk.Aws.REGION``).

    :param require_mfa: also require ``aws:MultiFactorAuthPresent`` = ``true``. Federated
        (SAML, IAM Identity Center) sessions often do not carry that key, so for them this
        silently denies: see docs/access.md.
    """
    _check_tag("interrupt_statement", tag)
    _check_regions(regions)
    _check_accounts(accounts)
    conditions: dict[str, dict[str, object]] = dict(opt_in_condition(tag))
    # aws-assumption: mfa-condition-federated-sessions
    if require_mfa:
        conditions["Bool"] = {"aws:MultiFactorAuthPresent": "true"}
    return iam.PolicyStatement(
        sid=statement_id(SID_INTERRUPT, tag),
        effect=iam.Effect.ALLOW,
        actions=[INTERRUPT_ACTION],
        resources=instance_arns(_unique(regions), _unique(accounts)),
        conditions=conditions,
    )


# aws-assumption: ec2-tag-condition-keys
def tag_tamper_deny_statements(
    tag: OptInTag = OptInTag(),  # noqa: B008 - frozen, immutable value
) -> list[iam.PolicyStatement]:
    """Explicit denies that stop a principal from adding, changing or removing the opt-in tag.

    1. ``Deny ec2:CreateTags, ec2:DeleteTags`` on instances when ``aws:TagKeys`` contains the
       opt-in key in any letter case (``ForAnyValue:StringEqualsIgnoreCase``). EC2 authorizes
       tags given at launch (``RunInstances`` tag specifications) as ``ec2:CreateTags`` with
       ``ec2:CreateAction`` = ``RunInstances``, so this one statement covers tagging after
       and during launch.
    2. ``Deny ec2:RunInstances`` of an instance whose requested tags contain the key: the
       same rule stated on the launch call itself.
    3. ``Deny ec2:DeleteTags`` on instances when the request names no tag keys at all
       (``Null aws:TagKeys``): that form of the call deletes *every* tag, the opt-in tag
       included.

    The resources are every instance in every region and account
    (``arn:${AWS::Partition}:ec2:*:*:instance/*``): a deny is safe to state broadly.
    """
    _check_tag("tag_tamper_deny_statements", tag)
    any_instance = f"arn:{cdk.Aws.PARTITION}:ec2:*:*:instance/*"
    key_condition = {TAG_KEYS_OPERATOR: {"aws:TagKeys": [tag.key]}}
    return [
        iam.PolicyStatement(
            sid=statement_id(SID_DENY_TAG_KEY, tag),
            effect=iam.Effect.DENY,
            actions=list(TAGGING_ACTIONS),
            resources=[any_instance],
            conditions=key_condition,
        ),
        iam.PolicyStatement(
            sid=statement_id(SID_DENY_TAG_AT_LAUNCH, tag),
            effect=iam.Effect.DENY,
            actions=["ec2:RunInstances"],
            resources=[any_instance],
            conditions=key_condition,
        ),
        iam.PolicyStatement(
            sid=statement_id(SID_DENY_DELETE_ALL_TAGS, tag),
            effect=iam.Effect.DENY,
            actions=["ec2:DeleteTags"],
            resources=[any_instance],
            conditions={"Null": {"aws:TagKeys": "true"}},
        ),
    ]


def statement_id(base: str, tag: OptInTag) -> str:
    """``base`` for the default tag; ``base`` + 8 hex digits of the tag otherwise.

    Statement ids must be unique within a policy: two grants for two different tags on one
    principal must not collide.
    """
    if tag == OptInTag():
        return base
    digest = hashlib.sha256(f"{tag.key}\0{tag.value}".encode()).hexdigest()[:8]
    return f"{base}{digest}"


# aws-assumption: ec2-tag-condition-keys
def opt_in_condition(
    tag: OptInTag = OptInTag(),  # noqa: B008 - frozen, immutable value
) -> dict[str, dict[str, object]]:
    """``{"StringEquals": {"aws:ResourceTag/<key>": "<value>"}}``."""
    return {"StringEquals": {tag.condition_key: tag.value}}


def instance_arns(regions: Sequence[str], accounts: Sequence[str]) -> list[str]:
    """``arn:${AWS::Partition}:ec2:<region>:<account>:instance/*`` for every pair."""
    return [
        f"arn:{cdk.Aws.PARTITION}:ec2:{region}:{account}:instance/*"
        for account in accounts
        for region in regions
    ]


def _resolve_scope(
    grantee: iam.IGrantable,
    *,
    regions: Sequence[str] | None,
    accounts: Sequence[str] | None,
) -> _Scope:
    if regions is None or accounts is None:
        stack = _stack_of(grantee)
        if regions is None:
            regions = [stack.region if stack is not None else cdk.Aws.REGION]
        if accounts is None:
            accounts = [stack.account if stack is not None else cdk.Aws.ACCOUNT_ID]
    _check_regions(regions)
    _check_accounts(accounts)
    return _Scope(regions=_unique(regions), accounts=_unique(accounts))


def _stack_of(grantee: iam.IGrantable) -> cdk.Stack | None:
    for candidate in (grantee, grantee.grant_principal):
        if isinstance(candidate, Construct):
            return cdk.Stack.of(candidate)
    return None


def _unique(values: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))


def _check_regions(regions: Sequence[str]) -> None:
    _check_names(
        regions,
        prop="regions",
        pattern=_REGION,
        own="region or a list of region names such as ['eu-west-1']",
        bad=lambda region: (
            f"region {region!r} is not an AWS region name (like 'eu-west-1'); "
            "wildcards are not allowed: name every region whose instances may be "
            "interrupted"
        ),
    )


def _check_accounts(accounts: Sequence[str]) -> None:
    _check_names(
        accounts,
        prop="accounts",
        pattern=_ACCOUNT,
        own="account or a list of 12-digit account ids",
        bad=lambda account: (
            f"account id {account!r} is not 12 digits; AWS account ids are exactly 12 "
            "digits (keep leading zeros, pass them as strings); wildcards are not allowed"
        ),
    )


def _check_names(
    values: Sequence[str],
    *,
    prop: str,
    pattern: re.Pattern[str],
    own: str,
    bad: Callable[[object], str],
) -> None:
    """``values`` (the prop ``prop``): a non-empty list of names matching ``pattern``, or
    tokens; ``own``: what None gives instead, for the message; ``bad``: a name's message."""
    if isinstance(values, str):
        raise ConfigurationError(
            f"{prop}={values!r} is a single string; pass a list such as [{values!r}]"
        )
    if len(values) == 0:
        raise ConfigurationError(
            f"{prop} is empty: the grant would allow nothing; pass None for the stack's own {own}"
        )
    for value in values:
        if isinstance(value, str) and cdk.Token.is_unresolved(value):
            continue
        if not isinstance(value, str) or not pattern.match(value):
            raise ConfigurationError(bad(value))


#: Why ``instance/*`` is the narrowest resource for the interrupt (the AwsSolutions-IAM5
#: acknowledgement text, shown in the validation report and docs/iam.md).
INSTANCE_WILDCARD_REASON = (
    "ec2:SendDiagnosticInterrupt must reach instances that do not exist at deploy time; "
    "instance/* is limited to the named region and account and to instances carrying the "
    "opt-in tag by a StringEquals aws:ResourceTag condition, and the same policy denies "
    "changing that tag"
)


def acknowledge_instance_wildcards(scope: Construct, arns: Sequence[str]) -> None:
    """Acknowledge the AwsSolutions-IAM5 finding of each ``instance/*`` ARN on ``scope``.

    The finding id names the ARN exactly as cdk-nag renders it (``<AWS::Partition>`` for
    ``${AWS::Partition}``), so only the wildcard this module created is acknowledged. An ARN
    whose rendering is not known (e.g. built from a cross-stack import) is left
    unacknowledged: cdk-nag then reports it and the app's author decides.
    """
    stack = cdk.Stack.of(scope)
    for arn in arns:
        rendered = nag_rendering(stack.resolve(arn))
        if rendered is None:
            continue
        acknowledge(
            scope,
            f"AwsSolutions::AwsSolutions-IAM5[Resource::{rendered}]",
            INSTANCE_WILDCARD_REASON,
        )


def nag_rendering(value: object) -> str | None:
    """A resolved CloudFormation value as cdk-nag prints it in finding ids, or None.

    ``{"Ref": "AWS::Partition"}`` -> ``<AWS::Partition>``; ``Fn::GetAtt [X, Arn]`` ->
    ``<X.Arn>``; ``Fn::Join`` concatenates; ``Fn::FindInMap`` (an organisation member
    template's Region mapping) -> its compact JSON; anything else -> ``None``.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        ((function, argument),) = value.items()
        if function == "Ref" and isinstance(argument, str):
            return f"<{argument}>"
        if function == "Fn::GetAtt" and isinstance(argument, list):
            return f"<{'.'.join(str(part) for part in argument)}>"
        if function == "Fn::FindInMap" and isinstance(argument, list):
            return json.dumps(value, separators=(",", ":"))
        if function == "Fn::Join" and isinstance(argument, list) and len(argument) == 2:
            separator, parts = argument
            rendered = [nag_rendering(part) for part in parts]
            if any(part is None for part in rendered):
                return None
            return str(separator).join(part for part in rendered if part is not None)
    return None


class DiagnosticInterruptOperatorPolicy(Construct):
    """A customer managed policy for people (on-call, break-glass roles) who may interrupt.

    It holds:

    - the scoped interrupt permission (:func:`interrupt_statement`), optionally requiring MFA;
    - ``ec2:GetConsoleOutput`` on the same opted-in instances (to see the hang before, and
      the panic after, pressing the button);
    - ``ec2:DescribeInstances``, ``ec2:DescribeInstanceStatus``, ``ec2:DescribeInstanceTypes``
      on ``*``: EC2 describe calls support no resource-level permissions, so ``*`` is the
      only resource they accept; they are read-only;
    - the tag-tamper denies (:func:`tag_tamper_deny_statements`).

    There is no "dry-run only" variant: IAM cannot tell a ``DryRun=True`` call from a real one.

    Example::

        on_call = iam.Role.from_role_name(self, "OnCall", "on-call")
        DiagnosticInterruptOperatorPolicy(self, "Operators", roles=[on_call])
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        tag: OptInTag = OptInTag(),  # noqa: B008 - frozen, immutable value
        regions: Sequence[str] | None = None,
        accounts: Sequence[str] | None = None,
        require_mfa: bool = False,
        roles: Sequence[iam.IRole] = (),
        groups: Sequence[iam.IGroup] = (),
        users: Sequence[iam.IUser] = (),
        description: str | None = None,
    ) -> None:
        """Create the managed policy.

        :param tag: the opt-in tag. Default: ``crashcart:diagnostic-interrupt`` = ``enabled``.
        :param regions: regions whose opted-in instances may be interrupted. Default: this
            stack's region.
        :param accounts: 12-digit account ids whose opted-in instances may be interrupted.
            Default: this stack's account.
        :param require_mfa: require ``aws:MultiFactorAuthPresent`` = ``true`` on the interrupt
            (not on the read-only calls). Default: ``False`` — federated SAML / IAM Identity
            Center sessions often lack the key, and then the condition silently denies.
        :param roles: roles to attach the policy to. Default: none; attach later with
            ``managed_policy.attach_to_role``.
        :param groups: groups to attach the policy to. Default: none.
        :param users: users to attach the policy to. Default: none.
        :param description: the managed policy's description. Default: a sentence naming the
            opt-in tag.
        :raises ConfigurationError: a prop of the wrong type; invalid regions or accounts.
        """
        owner = "DiagnosticInterruptOperatorPolicy"
        _check_tag(owner, tag)
        for name, values, interface in (
            ("roles", roles, iam.IRole),
            ("groups", groups, iam.IGroup),
            ("users", users, iam.IUser),
        ):
            props.check_sequence(
                owner,
                name,
                values,
                lambda item_name, item, interface=interface: props.check(
                    owner, item_name, item, interface, example=f"an iam.{interface.__name__[1:]}"
                ),
                what=f"iam.{interface.__name__}",
            )
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        self.tag = tag
        self.require_mfa = require_mfa
        resolved_regions = regions if regions is not None else [stack.region]
        resolved_accounts = accounts if accounts is not None else [stack.account]
        _check_regions(resolved_regions)
        _check_accounts(resolved_accounts)
        self.regions: tuple[str, ...] = _unique(resolved_regions)
        self.accounts: tuple[str, ...] = _unique(resolved_accounts)

        self.interrupt_statement = interrupt_statement(
            tag=tag, regions=self.regions, accounts=self.accounts, require_mfa=require_mfa
        )
        self.console_statement = iam.PolicyStatement(
            sid=statement_id(SID_OPERATOR_CONSOLE, tag),
            effect=iam.Effect.ALLOW,
            actions=list(OPERATOR_CONSOLE_ACTIONS),
            resources=instance_arns(self.regions, self.accounts),
            conditions=opt_in_condition(tag),
        )
        self.describe_statement = iam.PolicyStatement(
            sid=statement_id(SID_OPERATOR_DESCRIBE, tag),
            effect=iam.Effect.ALLOW,
            actions=list(OPERATOR_DESCRIBE_ACTIONS),
            resources=["*"],
        )
        self.deny_statements = tag_tamper_deny_statements(tag)

        self.managed_policy = iam.ManagedPolicy(
            self,
            "Resource",
            description=description
            or (
                "crashcart: send diagnostic interrupts (NMI) to instances tagged "
                f"{tag.key}={tag.value}; read-only describe calls; never change that tag"
            ),
            statements=[
                self.interrupt_statement,
                self.console_statement,
                self.describe_statement,
                *self.deny_statements,
            ],
            roles=list(roles),
            groups=list(groups),
            users=list(users),
        )
        self.managed_policy_arn = self.managed_policy.managed_policy_arn
        acknowledge_instance_wildcards(
            self.managed_policy, instance_arns(self.regions, self.accounts)
        )
        acknowledge(
            self.managed_policy,
            "AwsSolutions::AwsSolutions-IAM5[Resource::*]",
            "ec2:DescribeInstances, ec2:DescribeInstanceStatus and ec2:DescribeInstanceTypes "
            "support no resource-level permissions, so their only valid resource is *; they "
            "are read-only and the statement holds nothing else",
        )


def _check_tag(owner: str, tag: object) -> None:
    props.check(owner, "tag", tag, OptInTag, example="OptInTag(key='team:nmi', value='yes')")
