"""The parts every crashcart function is built from, so they are built one way.

A function gets: its own role, assumed only by Lambda, with exactly the rights the construct
grants it (:func:`function_role`); a KMS-encrypted log group that is retained
(:func:`function_log_group`); its code from :mod:`~crashcart.constructs._internal.function_code`
(the function package plus the shared runtime, nothing else); and failed asynchronous
invocations kept in a queue of the construct's (:class:`QueueDestination`), never dropped.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import aws_cdk as cdk
import jsii
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from crashcart.constructs._internal.function_code import FunctionPackage
from crashcart.constructs._internal.queues import encrypted_queue
from crashcart.constructs._internal.service_key import logs_and_rules_key


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


class FunctionParts(NamedTuple):
    """What a function with a failure queue is built on, before the function itself."""

    queue: sqs.Queue
    log_group: logs.LogGroup
    role: iam.Role


def function_parts(
    scope: Construct,
    *,
    key: kms.IKey,
    queue_id: str,
    queue_holds: str,
    retention: logs.RetentionDays,
    role_description: str,
) -> FunctionParts:
    """The failure queue (``queue_id``), log group (``Logs``) and role (``Role``) of a
    function in ``scope``, queue and logs encrypted with ``key``.

    :param queue_holds: what the queue keeps, for its acknowledgement as a dead-letter store.
    """
    return FunctionParts(
        queue=encrypted_queue(scope, queue_id, key=key, dead_letter_store=queue_holds),
        log_group=function_log_group(scope, "Logs", key=key, retention=retention),
        role=function_role(scope, "Role", description=role_description),
    )


class ManagedFunctionParts(NamedTuple):
    """:class:`FunctionParts`, with their key and the managed policy holding every right."""

    key: kms.IKey
    queue: sqs.Queue
    log_group: logs.LogGroup
    role: iam.Role
    policy: iam.ManagedPolicy


def managed_function_parts(
    scope: Construct,
    *,
    key: kms.IKey | None,
    what: str,
    queue: tuple[str, str, str],
    retention: logs.RetentionDays,
    rights: str,
) -> ManagedFunctionParts:
    """:func:`function_parts` encrypted with ``key`` (None: a new key ``Key`` for the logs
    and the queue), and a customer-managed policy (``Policy``) attached to the role, for the
    construct to add every right of the function to (its statements name the parts). The
    function is then given ``role.without_policy_updates()``, so CDK's automatic grants
    cannot add an inline default policy.

    :param what: the function, for the descriptions (e.g. ``"crashcart kill-switch reach"``).
    :param queue: the failure queue's id, what to call it, and what it keeps.
    :param rights: what the policy allows, for its description.
    """
    queue_id, queue_name, queue_holds = queue
    key = key or logs_and_rules_key(scope, "Key", description=f"{what}: logs and {queue_name}")
    parts = function_parts(
        scope,
        key=key,
        queue_id=queue_id,
        queue_holds=queue_holds,
        retention=retention,
        role_description=what,
    )
    policy = iam.ManagedPolicy(scope, "Policy", description=f"{what}: {rights}", roles=[parts.role])
    return ManagedFunctionParts(key, parts.queue, parts.log_group, parts.role, policy)


def send_failures_to(function: lambda_.Function, queue: sqs.IQueue) -> None:
    """Failed asynchronous invocations of ``function`` go to ``queue``: after Lambda's two
    retries, for events up to an hour old."""
    function.configure_async_invoke(
        retry_attempts=2,
        max_event_age=cdk.Duration.hours(1),
        on_failure=QueueDestination(queue),
    )


def rule_target(
    function: lambda_.IFunction,
    queue: sqs.IQueue,
    *,
    retry_attempts: int,
    max_event_age: cdk.Duration | None = None,
) -> targets.LambdaFunction:
    """An EventBridge target invoking ``function``; events EventBridge cannot deliver (after
    ``retry_attempts``, or older than ``max_event_age``, default an hour) go to ``queue``."""
    # aws-assumption: eventbridge-target-dlq-keeps-undelivered-events
    return targets.LambdaFunction(
        function,
        dead_letter_queue=queue,
        retry_attempts=retry_attempts,
        max_event_age=max_event_age or cdk.Duration.hours(1),
    )


def python_function(
    scope: Construct,
    package: FunctionPackage,
    *,
    role: iam.IRole,
    log_group: logs.ILogGroup,
    description: str,
    timeout: cdk.Duration,
    environment: dict[str, str],
    memory_size: int = 256,
    **options: Any,
) -> lambda_.Function:
    """The function ``Function`` of ``scope``: ``package`` (with the shared runtime) on
    crashcart's Python runtime, logging to ``log_group`` with ``role``; ``options``: any
    other property of ``lambda_.Function`` (reserved concurrency, VPC, log format, ...)."""
    return lambda_.Function(
        scope,
        "Function",
        runtime=lambda_.Runtime.PYTHON_3_14,
        handler=package.handler,
        code=package.code(),
        role=role,
        description=description,
        timeout=timeout,
        memory_size=memory_size,
        log_group=log_group,
        environment=environment,
        **options,
    )
