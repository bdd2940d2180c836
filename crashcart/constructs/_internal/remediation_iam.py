"""The remediation function's rights, and the managed policies of the operator grants.

One statement per right, each with a Sid, in a customer managed policy attached to the
function's own role (the style of every crashcart function): exactly the calls the function
makes (``crashcart.functions.remediation.handler`` lists them), the interrupt right and its
tag-tamper denies; each wildcard is acknowledged here, next to its statement. The operator
grants (reset the breaker, set the kill switch) are customer managed policies too, so that
packs that forbid inline policies pass in the grantee's stack.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, cast

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from crashcart import _props as props
from crashcart.constructs._internal.acknowledgements import acknowledge_finding
from crashcart.constructs._internal.remediation_checks import snake
from crashcart.constructs.diagnostic_interrupt_operator_policy import (
    acknowledge_instance_wildcards,
    instance_arns,
    interrupt_statement,
    nag_rendering,
    tag_tamper_deny_statements,
)
from crashcart.constructs.incident_store import BREAKER_RESET_ACTIONS, REMEDIATION_ACTIONS
from crashcart.constructs.organisation_link import grant_organisation_rights
from crashcart.errors import ConfigurationError
from crashcart.runtime import dumps
from crashcart.runtime.incident import BREAKER_PREFIX

if TYPE_CHECKING:
    from crashcart.constructs.unresponsive_instance_remediation import (
        UnresponsiveInstanceRemediation,
    )

#: Read-only EC2 calls the function makes; EC2 supports no resource scoping for them.
DESCRIBE_ACTIONS: Final = (
    "ec2:DescribeInstanceStatus",
    "ec2:DescribeInstanceTypes",
    "ec2:DescribeInstances",
)
#: Incident table calls (the incident store's remediation writer).
TABLE_ACTIONS: Final = REMEDIATION_ACTIONS
#: What the function needs of the deployment's key (table, topic, queues).
KEY_ACTIONS: Final = ("kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey")
#: What a single-part PutObject needs of an SSE-KMS evidence bucket's key.
EVIDENCE_KEY_ACTIONS: Final = ("kms:Encrypt", "kms:GenerateDataKey")
#: The S3 prefix the function writes console-output evidence under.
EVIDENCE_PREFIX: Final = dumps.EVIDENCE_PREFIX


def other_key_statements(
    remediation: UnresponsiveInstanceRemediation, evidence_key: kms.IKey | None
) -> list[iam.PolicyStatement]:
    """Rights on the keys a remediation's functions use besides its own: the topic's (when it
    is another key) and the evidence bucket's."""
    statements: list[iam.PolicyStatement] = []
    topic_key = getattr(remediation.topic, "master_key", None)
    if topic_key is not None and topic_key is not remediation.key:
        statements.append(
            iam.PolicyStatement(
                sid="TopicKey",
                actions=["kms:Decrypt", "kms:GenerateDataKey"],
                resources=[topic_key.key_arn],
            )
        )
    if evidence_key is not None:
        statements.append(
            iam.PolicyStatement(
                sid="EvidenceKey",
                actions=list(EVIDENCE_KEY_ACTIONS),
                resources=[evidence_key.key_arn],
            )
        )
    return statements


def incident_function_statements(
    remediation: UnresponsiveInstanceRemediation,
    *,
    log_group: logs.ILogGroup,
    instance_sid: str,
    instance_actions: Sequence[str],
    table_actions: Sequence[str],
    queues: Sequence[sqs.IQueue],
) -> list[iam.PolicyStatement]:
    """What every function that acts on the remediation's incidents needs, in one order:
    its logs, Describe*, ``instance_actions`` on opted-in instances (by tag), the kill
    switch, ``table_actions`` on the incident table, the topic, the evidence prefix,
    ``queues`` and the deployment's key. The remediation and the Auto Scaling hold differ
    only in those arguments."""
    stack = cdk.Stack.of(remediation)
    instance_arn = f"arn:{stack.partition}:ec2:{stack.region}:{stack.account}:instance/*"
    return [
        iam.PolicyStatement(
            sid="Logs",
            actions=["logs:CreateLogStream", "logs:PutLogEvents"],
            resources=[log_group.log_group_arn],
        ),
        iam.PolicyStatement(
            sid="DescribeInstances",
            actions=list(DESCRIBE_ACTIONS),
            resources=["*"],
        ),
        iam.PolicyStatement(
            # aws-assumption: ec2-tag-condition-keys
            sid=instance_sid,
            actions=list(instance_actions),
            resources=[instance_arn],
            conditions={"StringEquals": {remediation.tag.condition_key: remediation.tag.value}},
        ),
        iam.PolicyStatement(
            sid="KillSwitch",
            actions=["ssm:GetParameter"],
            resources=[remediation.kill_switch.parameter_arn],
        ),
        iam.PolicyStatement(
            sid="IncidentTable",
            actions=list(table_actions),
            resources=[remediation.table.table_arn],
        ),
        iam.PolicyStatement(
            sid="Notify",
            actions=["sns:Publish"],
            resources=[remediation.topic.topic_arn],
        ),
        iam.PolicyStatement(
            sid="Evidence",
            actions=["s3:PutObject"],
            resources=[remediation.evidence_bucket.arn_for_objects(f"{EVIDENCE_PREFIX}*")],
        ),
        iam.PolicyStatement(
            sid="Queues",
            actions=["sqs:SendMessage"],
            resources=[queue.queue_arn for queue in queues],
        ),
        iam.PolicyStatement(
            sid="DeploymentKey",
            actions=list(KEY_ACTIONS),
            resources=[remediation.key.key_arn],
        ),
    ]


def interrupting_function_policy(
    scope: Construct,
    remediation: UnresponsiveInstanceRemediation,
    statements: list[iam.PolicyStatement],
    *,
    role: iam.IRole,
    function: lambda_.IFunction,
    description: str,
) -> iam.ManagedPolicy:
    """``statements`` plus the interrupt right as grant_diagnostic_interrupt states it
    (opted-in instances of this account and region) and the denies that keep the function
    from opting in, as the customer managed policy ``FunctionPolicy`` on ``role``.

    One IAM style for every crashcart function: the policy is written whole (no grant adds
    to an inline default policy), and the function starts only once its rights exist (an
    inline default policy of the role gave that dependency implicitly).
    """
    stack = cdk.Stack.of(scope)
    statements.append(
        interrupt_statement(tag=remediation.tag, regions=[stack.region], accounts=[stack.account])
    )
    statements.extend(tag_tamper_deny_statements(remediation.tag))
    policy = iam.ManagedPolicy(
        scope,
        "FunctionPolicy",
        description=description,
        statements=statements,
        roles=[role],
    )
    function.node.add_dependency(policy)
    return policy


def acknowledge_wildcards(policy: Construct, wildcards: Mapping[str, str]) -> None:
    """Acknowledge the AwsSolutions-IAM5 finding of each wildcard resource, with its reason.

    cdk-nag names the resource as rendered in the template (``<AWS::Partition>``,
    ``<Logical.Arn>``); one whose rendering is unknown stays unacknowledged (reported).
    """
    stack = cdk.Stack.of(policy)
    for arn, reason in wildcards.items():
        rendered = nag_rendering(stack.resolve(arn))
        if rendered is not None:
            acknowledge_finding(
                policy, f"AwsSolutions::AwsSolutions-IAM5[Resource::{rendered}]", reason
            )


def grant_function_rights(
    remediation: UnresponsiveInstanceRemediation, evidence_key: kms.IKey | None
) -> iam.ManagedPolicy:
    """Exactly the rights the function uses (brief: 'Permissions the function uses'), as a
    customer managed policy (``FunctionPolicy``) on the function's own role."""
    stack = cdk.Stack.of(remediation)
    role = remediation.role
    instance_arn = f"arn:{stack.partition}:ec2:{stack.region}:{stack.account}:instance/*"
    statements = incident_function_statements(
        remediation,
        log_group=remediation.log_group,
        instance_sid="ConsoleOutputOptedIn",
        instance_actions=("ec2:GetConsoleOutput",),
        table_actions=TABLE_ACTIONS,
        queues=(remediation.rejected_queue, remediation.failure_queue),
    )
    statements.extend(other_key_statements(remediation, evidence_key))
    if remediation.function.is_bound_to_vpc:
        statements.append(
            iam.PolicyStatement(
                sid="VpcNetworkInterfaces",
                actions=[
                    "ec2:AssignPrivateIpAddresses",
                    "ec2:CreateNetworkInterface",
                    "ec2:DeleteNetworkInterface",
                    "ec2:DescribeNetworkInterfaces",
                    "ec2:UnassignPrivateIpAddresses",
                ],
                resources=["*"],
            )
        )
    # The interrupt right as grant_diagnostic_interrupt states it (opted-in instances of
    # this account and region), and the denies that keep the function from opting in.
    interrupt_arns = instance_arns([stack.region], [stack.account])
    policy = interrupting_function_policy(
        remediation,
        remediation,
        statements,
        role=role,
        function=remediation.function,
        description="crashcart remediation function: exactly the rights it uses",
    )
    _acknowledge_wildcards(remediation, policy, instance_arn, interrupt_arns)
    grant_organisation_rights(remediation)
    return policy


def _acknowledge_wildcards(
    remediation: UnresponsiveInstanceRemediation,
    policy: iam.ManagedPolicy,
    instance_arn: str,
    interrupt_arns: list[str],
) -> None:
    """The policy's wildcards, each with its reason (AwsSolutions-IAM5). The interrupt's
    first: where its ARN renders like GetConsoleOutput's, the reason naming both wins."""
    acknowledge_instance_wildcards(policy, interrupt_arns)
    evidence_arn = remediation.evidence_bucket.arn_for_objects(f"{EVIDENCE_PREFIX}*")
    wildcards = {
        "*": (
            "ec2:DescribeInstances, DescribeInstanceStatus and DescribeInstanceTypes "
            "support no resource-level permissions: AWS requires Resource '*'"
        ),
        instance_arn: (
            "GetConsoleOutput and SendDiagnosticInterrupt must reach instances that do "
            "not exist at deploy time; instance/* is limited to this account and region "
            "and, by a StringEquals aws:ResourceTag condition, to opted-in instances"
        ),
        evidence_arn: (
            "PutObject only under the evidence/ prefix of the evidence bucket: object "
            "keys include the instance id and incident time, known only at run time"
        ),
    }
    acknowledge_wildcards(policy, wildcards)


def grant_policy(
    remediation: UnresponsiveInstanceRemediation,
    grantee: iam.IGrantable,
    what: str,
    statements: list[iam.PolicyStatement],
    description: str,
) -> iam.ManagedPolicy:
    owner = f"UnresponsiveInstanceRemediation.grant_{snake(what)}"
    props.check(owner, "grantee", grantee, iam.IGrantable, example="an iam.Role")
    principal = grantee.grant_principal
    attach: dict[str, list[Any]] = {"roles": [], "users": [], "groups": []}
    for kind, interface in (("roles", iam.IRole), ("users", iam.IUser), ("groups", iam.IGroup)):
        if props.implements(principal, interface):
            attach[kind].append(principal)
            break
    else:
        raise ConfigurationError(
            f"{owner}: the grantee's principal (a {type(principal).__name__}) is not "
            "an IAM role, user or group, so no customer managed policy can be attached "
            "to it; put "
            f"{snake(what)}_statements() in a policy of your own instead"
        )
    digest = hashlib.sha256(remediation.node.path.encode()).hexdigest()[:8]
    if isinstance(principal, Construct):
        # In the grantee's own stack, as an inline grant would be.
        scope: Construct = principal
        policy_id = f"Crashcart{what}{digest}"
    else:
        # An imported role (a jsii interface proxy, not a construct): here.
        node = getattr(principal, "node", None)
        name = node.path if node is not None else repr(principal)
        scope = remediation
        policy_id = f"{what}Grant{hashlib.sha256(name.encode()).hexdigest()[:8]}"
    existing = scope.node.try_find_child(policy_id)
    if isinstance(existing, iam.ManagedPolicy):
        return existing
    return iam.ManagedPolicy(
        scope,
        policy_id,
        description=f"{description} ({remediation.node.path})",
        statements=statements,
        roles=attach["roles"],
        users=attach["users"],
        groups=attach["groups"],
    )


# -- building blocks -----------------------------------------------------------------


def reset_breaker_statements(
    remediation: UnresponsiveInstanceRemediation,
) -> list[iam.PolicyStatement]:
    """The statements :meth:`grant_reset_breaker` grants, for a policy of your own."""
    return [
        iam.PolicyStatement(
            sid="CrashcartResetBreaker",
            actions=list(BREAKER_RESET_ACTIONS),
            resources=[remediation.table.table_arn],
            conditions={
                # aws-assumption: dynamodb-fine-grained-keys
                "ForAllValues:StringLike": {"dynamodb:LeadingKeys": [f"{BREAKER_PREFIX}*"]},
            },
        ),
        iam.PolicyStatement(
            sid="CrashcartResetBreakerKey",
            actions=list(KEY_ACTIONS),
            resources=[remediation.key.key_arn],
        ),
    ]


def kill_switch_statements(
    remediation: UnresponsiveInstanceRemediation,
) -> list[iam.PolicyStatement]:
    """The statements :meth:`grant_kill_switch` grants, for a policy of your own."""
    return [
        iam.PolicyStatement(
            sid="CrashcartKillSwitch",
            actions=["ssm:GetParameter", "ssm:PutParameter"],
            resources=[remediation.kill_switch.parameter_arn],
        )
    ]


class RemediationGrants:
    """The operator grants of the remediation construct: reset the breakers, set the kill
    switch (a mixin of :class:`UnresponsiveInstanceRemediation`)."""

    def _remediation(self) -> UnresponsiveInstanceRemediation:
        return cast("UnresponsiveInstanceRemediation", self)

    def grant_reset_breaker(self, grantee: iam.IGrantable) -> iam.ManagedPolicy:
        """Let ``grantee`` read and reset the circuit-breaker items, and nothing else.

        Attaches a customer managed policy (in the grantee's stack) to the grantee's role,
        user or group: ``dynamodb:GetItem`` / ``UpdateItem`` / ``DeleteItem`` on the incident
        table, only for partition keys starting with ``breaker#``
        (``dynamodb:LeadingKeys``), plus the table key's use. A managed policy, not an
        inline one, so that compliance packs that forbid inline policies (NIST 800-53,
        HIPAA, PCI DSS ``IAMNoInlinePolicy``) pass in the grantee's stack. To put the
        statements in a policy of your own instead, use :meth:`reset_breaker_statements`.
        Calling it twice for one grantee returns the same policy.

        :raises ConfigurationError: the grantee's principal is not a role, user or group.
        """
        return grant_policy(
            self._remediation(),
            grantee,
            "ResetBreaker",
            self.reset_breaker_statements(),
            "crashcart: read and reset the remediation circuit breakers",
        )

    def reset_breaker_statements(self) -> list[iam.PolicyStatement]:
        """The statements :meth:`grant_reset_breaker` grants, for a policy of your own."""
        return reset_breaker_statements(self._remediation())

    def grant_kill_switch(self, grantee: iam.IGrantable) -> iam.ManagedPolicy:
        """Let ``grantee`` read and set the kill-switch parameter (``on`` / ``off``).

        Attaches a customer managed policy (in the grantee's stack) to the grantee's role,
        user or group, for the reason given in :meth:`grant_reset_breaker`; the statements
        alone are :meth:`kill_switch_statements`.

        :raises ConfigurationError: the grantee's principal is not a role, user or group.
        """
        return grant_policy(
            self._remediation(),
            grantee,
            "KillSwitch",
            self.kill_switch_statements(),
            "crashcart: read and set the remediation kill switch",
        )

    def kill_switch_statements(self) -> list[iam.PolicyStatement]:
        """The statements :meth:`grant_kill_switch` grants, for a policy of your own."""
        return kill_switch_statements(self._remediation())
