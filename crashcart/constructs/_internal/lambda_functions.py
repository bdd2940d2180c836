"""Reserved concurrency: opt-in everywhere, validated the same way everywhere.

No crashcart function reserves account concurrency by default. A reservation is taken out of
the account's unreserved pool, and Lambda refuses one that would leave that pool below its
minimum; new and sandbox accounts often have so small a concurrency quota that any
reservation fails the deploy ("decreases the account's UnreservedConcurrentExecution below
its minimum value"). What bounds crashcart's effect is not concurrency: the per-instance
claim (one DynamoDB transaction) and the fleet / zone circuit breaker bound the interrupts,
and duplicate or concurrent deliveries of one event are absorbed by the claim.
"""

from __future__ import annotations

import aws_cdk as cdk
from constructs import IConstruct

from crashcart.compliance import acknowledge, skip_checkov
from crashcart.errors import ConfigurationError

#: The largest reservation accepted at synth: the default account quota (1,000). A larger
#: quota is possible, but a reservation that large is almost certainly a typo here.
MAX_RESERVED_CONCURRENCY = 1000


def check_reserved_concurrency(value: object, *, name: str = "reserved_concurrency") -> None:
    """Accept None (no reservation, the default) or a whole number from 1 to 1,000.

    aws-assumption: lambda-unreserved-concurrency-minimum
    """
    if value is None or cdk.Token.is_unresolved(value):
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigurationError(
            f"{name}={value!r}: must be None (no reservation, the default) or a whole number "
            f"from 1 to {MAX_RESERVED_CONCURRENCY}"
        )
    if not 1 <= value <= MAX_RESERVED_CONCURRENCY:
        reason = (
            "0 would stop the function entirely"
            if value == 0
            else "the account's default concurrency quota is 1,000"
        )
        raise ConfigurationError(
            f"{name}={value}: give None (no reservation, the default) or a whole number from "
            f"1 to {MAX_RESERVED_CONCURRENCY}; {reason}. Lambda also refuses a reservation that "
            "leaves the account's unreserved concurrency below its minimum (100 with the "
            "default quota), so check the account's quota before reserving"
        )


#: The packs with a "function-level concurrent execution limit" rule (LambdaConcurrency).
_PACKS_WITH_CONCURRENCY_RULE = ("NIST.800.53.R5", "HIPAA.Security")


def acknowledge_unreserved(
    function: IConstruct, reserved_concurrency: object, *, bound: str
) -> None:
    """Acknowledge the packs' concurrency-limit rule on ``function`` when it has no reservation.

    :param bound: what bounds the function's effect instead, for the reason.
    """
    if reserved_concurrency is not None:
        return
    for pack in _PACKS_WITH_CONCURRENCY_RULE:
        acknowledge(
            function,
            f"{pack}::{pack}-LambdaConcurrency",
            "no reserved concurrency by default: Lambda refuses a reservation that leaves "
            "the account's unreserved pool below its minimum, which fails the deploy in new "
            f"and sandbox accounts; {bound}. Pass reserved_concurrency to cap it",
        )


def acknowledge_untraced(function: IConstruct) -> None:
    """Acknowledge the Serverless pack's X-Ray tracing finding on ``function`` (a decision)."""
    acknowledge(
        function,
        "Serverless::Serverless-LambdaTracing",
        "no X-Ray active tracing: without the X-Ray SDK in the function (crashcart ships no "
        "runtime dependency beyond boto3) Lambda records only its own invocation segment, "
        "which the REPORT log line already gives; every decision is logged with its reason "
        "and recorded on the incident, and tracing would add xray:PutTraceSegments on * to "
        "the role",
    )


def acknowledge_plain_environment(function: IConstruct) -> None:
    """Skip checkov's customer-key check of the environment variables on ``function``."""
    skip_checkov(
        function,
        "CKV_AWS_173",
        "the environment holds resource names and settings, no secrets; Lambda encrypts it "
        "at rest with its AWS managed key, and a customer key would add a KMS call and a "
        "failure mode to every cold start",
    )


def acknowledge_outside_vpc(
    function: IConstruct, *, apis: str, caller: str = "the function"
) -> None:
    """Acknowledge the packs' "function inside a VPC" rule on a function that only calls
    regional AWS APIs (``apis``, e.g. ``"S3, DynamoDB, SNS"``; ``caller``: who, for the reason)."""
    for pack in ("NIST.800.53.R5", "HIPAA.Security", "PCI.DSS.321"):
        acknowledge(
            function,
            f"{pack}::{pack}-LambdaInsideVPC",
            f"{caller} only calls regional AWS APIs ({apis}); a VPC would add "
            "endpoints and ENIs without reducing its reach",
        )


def acknowledge_function_defaults(
    function: IConstruct, reserved_concurrency: object, *, bound: str
) -> None:
    """The acknowledgements every crashcart function takes: no X-Ray tracing, a plain
    environment, and (without a reservation) no reserved concurrency (``bound``: what bounds
    the function's effect instead)."""
    acknowledge_untraced(function)
    acknowledge_plain_environment(function)
    acknowledge_unreserved(function, reserved_concurrency, bound=bound)


def acknowledge_failure_destination(function: IConstruct, queue_id: str, *, more: str = "") -> None:
    """Acknowledge the NIST and HIPAA "function has a DLQ" rule on a function whose failed
    invocations go to its on-failure destination, the queue ``queue_id`` (``more``: the end
    of the reason, where a construct says more)."""
    for pack in ("NIST.800.53.R5", "HIPAA.Security"):
        acknowledge(
            function,
            f"{pack}::{pack}-LambdaDLQ",
            "failed invocations go to the EventInvokeConfig on-failure destination "
            f"({queue_id}), which keeps the event with the error{more}",
        )


def acknowledge_dead_letter_queue(function: IConstruct, queue: IConstruct, *, name: str) -> None:
    """Acknowledge the Serverless pack's findings on a function whose failed asynchronous
    invocations go to its dead-letter queue ``queue`` (``name``: the function, for the reason)."""
    acknowledge(
        function,
        "Serverless::Serverless-LambdaAsyncFailureDestination",
        "failed asynchronous invocations go to the function's dead-letter queue "
        "(FailedEvents) after Lambda's 2 retries; an on-failure destination as well "
        "would keep every failed event twice",
    )
    acknowledge(
        queue,
        "Serverless::Serverless-SQSRedrivePolicy",
        f"this queue is itself the dead-letter queue of the {name} function: "
        "nothing consumes it automatically, so there is nothing to redrive it to",
    )
