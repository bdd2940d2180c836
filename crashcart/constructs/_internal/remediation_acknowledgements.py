"""The remediation construct's compliance acknowledgements, each with its reason.

Placed on the narrowest construct (the role's policy, the function), listed in
docs/remediation.md and pinned by tests/compliance/test_remediation_compliance.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import aws_cdk as cdk

from crashcart.constructs._internal.acknowledgements import acknowledge_finding, acknowledge_packs
from crashcart.constructs._internal.remediation_iam import EVIDENCE_PREFIX
from crashcart.constructs.diagnostic_interrupt_operator_policy import nag_rendering

if TYPE_CHECKING:
    from crashcart.constructs.unresponsive_instance_remediation import (
        UnresponsiveInstanceRemediation,
    )


def acknowledge_findings(remediation: UnresponsiveInstanceRemediation, no_vpc: bool) -> None:
    stack = cdk.Stack.of(remediation)
    policy = remediation.role.node.find_child("DefaultPolicy")
    instance_arn = f"arn:{stack.partition}:ec2:{stack.region}:{stack.account}:instance/*"
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
    for arn, reason in wildcards.items():
        # cdk-nag names the resource as rendered in the template (<AWS::Partition>,
        # <Logical.Arn>); one whose rendering is unknown stays unacknowledged (reported).
        rendered = nag_rendering(stack.resolve(arn))
        if rendered is not None:
            acknowledge_finding(
                policy, f"AwsSolutions::AwsSolutions-IAM5[Resource::{rendered}]", reason
            )
    acknowledge_packs(
        remediation.function,
        "LambdaDLQ",
        ("NIST.800.53.R5", "HIPAA.Security"),
        "function errors go to the EventInvokeConfig on-failure destination (FailureQueue), "
        "which keeps the event with the error and request context; a function DLQ would "
        "duplicate it",
    )
    if no_vpc:
        acknowledge_packs(
            remediation.function,
            "LambdaInsideVPC",
            ("NIST.800.53.R5", "HIPAA.Security", "PCI.DSS.321"),
            "the function only calls AWS APIs (EC2, SSM, DynamoDB, SNS, SQS, S3, KMS) and "
            "opens no connection into a network; pass vpc= to run it in a VPC with "
            "interface endpoints",
        )
    acknowledge_packs(
        policy,
        "IAMNoInlinePolicy",
        ("NIST.800.53.R5", "HIPAA.Security", "PCI.DSS.321"),
        "the function role's own policy, bound to this one role: a customer managed policy "
        "could be attached to other principals and hand them the interrupt right",
    )
