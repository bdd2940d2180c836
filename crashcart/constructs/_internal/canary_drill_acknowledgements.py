"""The canary drill's scanner acknowledgements, each at the resource it is about, with its reason.

Kept apart from the construct so that the construct reads as what it deploys; the compliance
test (``tests/compliance/test_canary_drill_compliance.py``) lists every one of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from crashcart.compliance import acknowledge
from crashcart.constructs._internal.lambda_functions import acknowledge_function_defaults

if TYPE_CHECKING:
    from crashcart.constructs.canary_crash_drill import CanaryCrashDrill

_PACKS: Final = ("NIST.800.53.R5", "HIPAA.Security", "PCI.DSS.321")


def acknowledge_canary_drill(drill: CanaryCrashDrill) -> None:
    """Every acknowledgement of the drill (``drill``: the construct, once built)."""
    acknowledge_function_defaults(
        drill.function,
        None,
        bound="at most one drill per AMI runs (a conditional write) and each launches one "
        "canary per instance type",
    )
    for pack in _PACKS:
        acknowledge(
            drill.function,
            f"{pack}::{pack}-LambdaInsideVPC",
            "the drill calls only regional AWS APIs (EC2, SSM, DynamoDB, S3, SNS); the "
            "canaries run in the given subnet, the function needs no network of its own",
        )
    for pack in _PACKS[:2]:
        acknowledge(
            drill.function,
            f"{pack}::{pack}-LambdaDLQ",
            "asynchronous (janitor) failures go to the on-failure destination "
            "(DeadLetterQueue); the state machine's calls are synchronous and caught",
        )

    acknowledge(
        drill.state_machine,
        "AwsSolutions::AwsSolutions-SF2",
        "no X-Ray tracing: each step is one synchronous Lambda call whose outcome the "
        "execution history and the ALL-level log already record",
    )

    acknowledge(
        drill.policy,
        "AwsSolutions::AwsSolutions-IAM5[Resource::*]",
        "ec2:DescribeInstances, DescribeInstanceStatus, DescribeImages and "
        "DescribeInstanceTypes support no resource-level permissions (read-only)",
    )
    for finding in (
        "AwsSolutions::AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:<AWS::Region>:<AWS::AccountId>:instance/*]",
        "AwsSolutions::AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:<AWS::Region>:<AWS::AccountId>:volume/*]",
        "AwsSolutions::AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:<AWS::Region>:<AWS::AccountId>:network-interface/*]",
        "AwsSolutions::AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:<AWS::Region>::image/*]",
    ):
        acknowledge(
            drill.policy,
            finding,
            "a canary's id is unknown until it is launched: every instance statement is "
            "conditioned on the crashcart:drill-canary tag (aws:RequestTag at launch, "
            "ec2:ResourceTag after), images on this pipeline's crashcart:pipeline tag",
        )
    acknowledge(
        drill.machine_policy,
        "AwsSolutions::AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:<AWS::Region>:<AWS::AccountId>:instance/*]",
        "TerminateInstances only on instances carrying this drill's crashcart:drill-canary "
        "tag (ec2:ResourceTag condition); the ids are known only at run time",
    )

    inline = {
        drill.machine_role.node.find_child("DefaultPolicy"): "CDK's statements for the "
        "state machine's log delivery (vended logs need the logs:*LogDelivery actions)",
        drill.state_machine.node.find_child("EventsRole").node.find_child("DefaultPolicy"): (
            "CDK's role for EventBridge to start this state machine: states:StartExecution "
            "on it alone"
        ),
    }
    for scope, why in inline.items():
        for pack in _PACKS:
            acknowledge(scope, f"{pack}::{pack}-IAMNoInlinePolicy", f"{why}; generated inline")
    acknowledge(
        drill.machine_role.node.find_child("DefaultPolicy"),
        "AwsSolutions::AwsSolutions-IAM5[Resource::*]",
        "CloudWatch Logs vended log delivery (logs:CreateLogDelivery and the like) supports "
        "only Resource '*'",
    )
    acknowledge(
        drill.state_machine,
        "Serverless::Serverless-StepFunctionStateMachineXray",
        "no X-Ray tracing: the execution history and the ALL-level log record every step",
    )
    for pack in _PACKS[:2]:
        acknowledge(
            drill.table,
            f"{pack}::{pack}-DynamoDBInBackupPlan",
            "drill locks and results only: point-in-time recovery is on and the table is "
            "retained and deletion-protected; a backup plan would add cost for history "
            "the notifications and logs also hold",
        )
    acknowledge(
        drill.policy,
        "AwsSolutions::AwsSolutions-IAM5[Action::kms:ReEncrypt*]",
        "EC2 re-encrypts the candidate's volumes with the pipeline key at launch "
        "(ReEncryptFrom/To), only through EC2 (kms:ViaService condition)",
    )
