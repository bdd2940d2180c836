"""Issue 14, defect 2: no crashcart default reserves Lambda concurrency; a user may opt in.

A reservation is refused where the account's concurrency quota is small (new and sandbox
accounts: "decreases the account's UnreservedConcurrentExecution below its minimum value"),
so a default reservation fails the whole deploy there. Every function crashcart creates
takes ``reserved_concurrency`` (None = no reservation, the default), and a given value is
validated the same way everywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk.assertions import Template

from crashcart.constructs.crash_dump_bucket import CrashDumpBucket
from crashcart.constructs.dump_overdue_sweep import DumpOverdueSweep
from crashcart.constructs.existing_dump_bucket import ExistingDumpBucket
from crashcart.constructs.unresponsive_instance_remediation import UnresponsiveInstanceRemediation
from crashcart.errors import ConfigurationError
from tests.support.incidents import store_of
from tests.support.reference import reference_templates_without_nag
from tests.support.remediation import INSTANCE_IDS, env, evidence_bucket, new_app


def _table(stack: cdk.Stack) -> dynamodb.Table:
    return dynamodb.Table(
        stack,
        "Incidents",
        partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
        sort_key=dynamodb.Attribute(name="sk", type=dynamodb.AttributeType.STRING),
    )


def _remediation(stack: cdk.Stack, **reservation: Any) -> lambda_.Function:
    bucket, _ = evidence_bucket(stack)
    construct = UnresponsiveInstanceRemediation(
        stack,
        "Remediation",
        dumps=ExistingDumpBucket(bucket=bucket),
        instances=[INSTANCE_IDS[0]],
        **reservation,
    )
    return construct.function


def _dump_arrival(stack: cdk.Stack, **reservation: Any) -> lambda_.Function:
    dumps = CrashDumpBucket(stack, "Dumps")
    return dumps.notify_incidents(
        incidents=store_of(stack, _table(stack), sns.Topic(stack, "Topic")), **reservation
    )


def _sweep(stack: cdk.Stack, **reservation: Any) -> lambda_.Function:
    sweep = DumpOverdueSweep(
        stack,
        "Sweep",
        incidents=store_of(stack, _table(stack), sns.Topic(stack, "Topic")),
        **reservation,
    )
    return sweep.function


#: Every place crashcart creates a function: construct name -> builder(stack, **kwargs).
FUNCTIONS: dict[str, Callable[..., lambda_.Function]] = {
    "UnresponsiveInstanceRemediation": _remediation,
    "CrashDumpBucket.notify_incidents": _dump_arrival,
    "DumpOverdueSweep": _sweep,
}


def _reservations(stack: cdk.Stack) -> list[Any]:
    functions = Template.from_stack(stack).find_resources("AWS::Lambda::Function")
    assert functions, "the stack has no function: nothing was checked"
    return [f["Properties"].get("ReservedConcurrentExecutions") for f in functions.values()]


def test_the_reference_app_reserves_no_concurrency() -> None:
    functions = {
        (stack, logical_id): resource["Properties"]
        for stack, template in reference_templates_without_nag().items()
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Lambda::Function"
    }
    assert len(functions) >= 3, "the reference app has fewer functions than expected"
    reserved = {
        key: properties["ReservedConcurrentExecutions"]
        for key, properties in functions.items()
        if "ReservedConcurrentExecutions" in properties
    }
    assert reserved == {}


@pytest.mark.parametrize("construct", sorted(FUNCTIONS))
@pytest.mark.parametrize("how", ["default", "explicit None"])
def test_no_reservation_by_default_or_with_none(construct: str, how: str) -> None:
    stack = cdk.Stack(new_app(), "Stack", env=env())
    FUNCTIONS[construct](stack, **({} if how == "default" else {"reserved_concurrency": None}))
    assert _reservations(stack) == [None]


@pytest.mark.parametrize("construct", sorted(FUNCTIONS))
@pytest.mark.parametrize("value", [1, 2, 1000])
def test_a_user_who_asks_gets_the_reservation(construct: str, value: int) -> None:
    stack = cdk.Stack(new_app(), "Stack", env=env())
    FUNCTIONS[construct](stack, reserved_concurrency=value)
    assert _reservations(stack) == [value]


@pytest.mark.parametrize("construct", sorted(FUNCTIONS))
def test_a_reservation_may_be_a_token(construct: str) -> None:
    stack = cdk.Stack(new_app(), "Stack", env=env())
    parameter = cdk.CfnParameter(stack, "Concurrency", type="Number", default=5)
    FUNCTIONS[construct](stack, reserved_concurrency=parameter.value_as_number)
    assert _reservations(stack) == [{"Ref": "Concurrency"}]


@pytest.mark.parametrize("construct", sorted(FUNCTIONS))
@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0, r"reserved_concurrency=0: .*from 1 to 1000; 0 would stop the function"),
        (-1, r"reserved_concurrency=-1: .*from 1 to 1000"),
        (1001, r"reserved_concurrency=1001: .*from 1 to 1000"),
        (True, r"reserved_concurrency=True: must be None .* or a whole number"),
        (2.5, r"reserved_concurrency=2.5: must be None .* or a whole number"),
        ("5", r"reserved_concurrency='5': must be None .* or a whole number"),
    ],
)
def test_fails_on_an_invalid_reservation(construct: str, value: Any, message: str) -> None:
    stack = cdk.Stack(new_app(), "Stack", env=env())
    with pytest.raises(ConfigurationError, match=message):
        FUNCTIONS[construct](stack, reserved_concurrency=value)
