"""The Auto Scaling hold function's rights: one customer managed policy on its own role.

The same style as every crashcart function (``remediation_iam``): the policy is written
whole here, nothing is added to an inline default policy, and each wildcard resource is
acknowledged where the policy is written, with the reason it cannot be narrower.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms

from crashcart.constructs._internal.remediation_iam import (
    EVIDENCE_PREFIX,
    acknowledge_wildcards,
    incident_function_statements,
    interrupting_function_policy,
    other_key_statements,
)
from crashcart.constructs.diagnostic_interrupt_operator_policy import (
    instance_arns,
)
from crashcart.constructs.incident_store import REMEDIATION_ACTIONS
from crashcart.constructs.organisation_link import linked_statements

if TYPE_CHECKING:
    from crashcart.constructs.auto_scaling_hold import AutoScalingHold

#: What the hold needs of the table beyond the remediation's writer: the holds partition
#: (DeleteItem) and the escalation's filtered Scan.
HOLD_TABLE_ACTIONS: Final = (*REMEDIATION_ACTIONS, "dynamodb:DeleteItem", "dynamodb:Scan")
LIFECYCLE_ACTIONS: Final = (
    "autoscaling:CompleteLifecycleAction",
    "autoscaling:RecordLifecycleActionHeartbeat",
)


def grant_hold_rights(hold: AutoScalingHold, evidence_key: kms.IKey | None) -> None:
    """Exactly the rights the hold function uses, as a customer managed policy
    (``FunctionPolicy``) on its own role, with each wildcard acknowledged and why."""
    stack = cdk.Stack.of(hold)
    remediation = hold.remediation
    instance_arn = f"arn:{stack.partition}:ec2:{stack.region}:{stack.account}:instance/*"
    evidence_arn = remediation.evidence_bucket.arn_for_objects(f"{EVIDENCE_PREFIX}*")
    statements = incident_function_statements(
        remediation,
        log_group=hold.log_group,
        instance_sid="OptedInInstances",
        instance_actions=("ec2:GetConsoleOutput", "ec2:RebootInstances"),
        table_actions=HOLD_TABLE_ACTIONS,
        queues=(remediation.rejected_queue, hold.dead_letter_queue),
    )
    if hold.groups:
        # aws-assumption: autoscaling-group-resource-arns
        statements.append(
            iam.PolicyStatement(
                sid="LifecycleActionsOfHeldGroups",
                actions=list(LIFECYCLE_ACTIONS),
                resources=[g.auto_scaling_group_arn for g in hold.groups],
            )
        )
    statements.extend(other_key_statements(remediation, evidence_key))
    # It decides with its remediation's settings: its organisation breaker and bus too.
    statements.extend(linked_statements(remediation))
    # The same interrupt right (and tag-tamper denies) as the remediation function.
    policy = interrupting_function_policy(
        hold,
        remediation,
        statements,
        role=hold.role,
        function=hold.function,
        description="crashcart lifecycle hold and escalation: exactly the rights it uses",
    )
    wildcards = {
        "*": "ec2 Describe* calls support no resource-level permissions: AWS requires '*'",
        instance_arn: (
            "GetConsoleOutput, RebootInstances and SendDiagnosticInterrupt reach instances "
            "that do not exist at deploy time; limited to this account and region and, by "
            "a StringEquals aws:ResourceTag condition, to opted-in instances"
        ),
        evidence_arn: "PutObject only under evidence/: keys hold the instance and time",
    }
    for arn in instance_arns([stack.region], [stack.account]):
        wildcards[arn] = (
            "SendDiagnosticInterrupt reaches instances that do not exist at deploy time; "
            "limited to this account and region and, by a StringEquals "
            "aws:ResourceTag condition, to opted-in instances"
        )
    for group in hold.groups:
        wildcards[group.auto_scaling_group_arn] = (
            "an Auto Scaling group's ARN holds a generated id unknown at deploy time; the "
            "ARN names exactly this group (autoScalingGroupName/<name>)"
        )
    acknowledge_wildcards(policy, wildcards)
