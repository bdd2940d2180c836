"""The parts every crashcart function is built from, so they are built one way.

A function gets: its own role, assumed only by Lambda, with exactly the rights the construct
grants it (:func:`function_role`); a KMS-encrypted log group that is retained
(:func:`function_log_group`); its code from :mod:`~crashcart.constructs._internal.function_code`
(the function package plus the shared runtime, nothing else); and failed asynchronous
invocations kept in a queue of the construct's (:class:`QueueDestination`), never dropped.
"""

from __future__ import annotations

import aws_cdk as cdk
import jsii
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct


def function_role(scope: Construct, construct_id: str, *, description: str) -> iam.Role:
    """A role only Lambda may assume, with no rights until the construct grants them."""
    return iam.Role(
        scope,
        construct_id,
        # aws-assumption: service-role-trust-principals
        assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
        description=description,
    )


def function_log_group(
    scope: Construct,
    construct_id: str,
    *,
    key: kms.IKey | None,
    retention: logs.RetentionDays,
) -> logs.LogGroup:
    """The function's log group: encrypted with ``key`` and retained (logs are evidence)."""
    return logs.LogGroup(
        scope,
        construct_id,
        retention=retention,
        encryption_key=key,
        removal_policy=cdk.RemovalPolicy.RETAIN,
    )


@jsii.implements(lambda_.IDestination)
class QueueDestination:
    """An on-failure destination that binds nothing: the role's rights are granted exactly.

    CDK's ``SqsDestination`` would add ``sqs:SendMessage`` (and key rights) to the role's
    default policy; crashcart's constructs write every right of a function themselves. Lambda
    sends the record with the function's execution role, not with a service principal.
    """

    # aws-assumption: lambda-destinations-use-the-function-role

    def __init__(self, queue: sqs.IQueue) -> None:
        self._queue = queue

    def bind(
        self,
        scope: Construct,
        fn: lambda_.IFunction,
        *,
        type: lambda_.DestinationType,
    ) -> lambda_.DestinationConfig:
        return lambda_.DestinationConfig(destination=self._queue.queue_arn)
