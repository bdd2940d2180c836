"""The remediation construct's compliance acknowledgements, each with its reason.

Placed on the narrowest construct (here: the function), listed in docs/remediation.md and
pinned by tests/compliance/test_remediation_compliance.py. The function policy's wildcards
are acknowledged where the policy is written (``remediation_iam``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from constructs import IConstruct

from crashcart.constructs._internal.acknowledgements import acknowledge_finding, acknowledge_packs

if TYPE_CHECKING:
    from crashcart.constructs.unresponsive_instance_remediation import (
        UnresponsiveInstanceRemediation,
    )


def acknowledge_findings(remediation: UnresponsiveInstanceRemediation, no_vpc: bool) -> None:
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


def acknowledge_subscription(subscription: IConstruct) -> None:
    """A notification subscription has no redrive queue, on purpose."""
    acknowledge_finding(
        subscription,
        "Serverless::Serverless-SNSRedrivePolicy",
        "a notification is a copy for people: every incident, skip and failure it "
        "reports is also recorded in the incident table and the function's log, and "
        "SNS counts undeliverable ones (NumberOfNotificationsFailed); a redrive queue "
        "would keep a second copy of incident text nobody reads",
    )
