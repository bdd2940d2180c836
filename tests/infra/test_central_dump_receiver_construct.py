"""CentralDumpReceiver synthesized (issue 23, the way back): the member's default bus admits
only the central account's "dump received" events, the rule takes only those, and the
dump-arrival function records them with exactly the rights it needs."""

from __future__ import annotations

import json
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

from crashcart import CentralDumpReceiver as Exported
from crashcart.constructs.central_dump_receiver import STATEMENT_ID, CentralDumpReceiver
from crashcart.constructs.incident_store import DUMP_ARRIVAL_ACTIONS, IncidentStore
from crashcart.errors import ConfigurationError
from crashcart.runtime import environment as variables
from tests.conftest import TEST_ACCOUNT, TEST_REGION

CENTRAL = "999999999999"


def _stack() -> cdk.Stack:
    app = cdk.App()
    return cdk.Stack(app, "Member", env=cdk.Environment(account=TEST_ACCOUNT, region=TEST_REGION))


@pytest.fixture(scope="module")
def template() -> Template:
    stack = _stack()
    incidents = IncidentStore(stack, "Incidents")
    CentralDumpReceiver(stack, "CentralDumps", central_account_id=CENTRAL, incidents=incidents)
    return Template.from_stack(stack)


def _one(template: Template, kind: str) -> dict[str, Any]:
    (resource,) = template.find_resources(kind).values()
    return dict(resource["Properties"])


def _flat(value: Any) -> Any:
    """Fn::Join of strings and the partition reference as one string (partition ``aws``)."""
    if isinstance(value, dict) and set(value) == {"Fn::Join"}:
        separator, parts = value["Fn::Join"]
        return separator.join(_flat(p) for p in parts)
    if value == {"Ref": "AWS::Partition"}:
        return "aws"
    if isinstance(value, dict):
        return {k: _flat(v) for k, v in value.items()}
    return value


def test_it_is_exported_from_crashcart() -> None:
    assert Exported is CentralDumpReceiver


def test_resource_counts(template: Template) -> None:
    for kind, count in {
        "AWS::Events::EventBusPolicy": 1,
        "AWS::Events::Rule": 1,
        "AWS::Lambda::Function": 1,
        "AWS::SQS::Queue": 2,
        "AWS::CloudWatch::Alarm": 3,
        "AWS::IAM::Role": 1,
        "AWS::IAM::ManagedPolicy": 1,
    }.items():
        template.resource_count_is(kind, count)


def test_the_default_bus_admits_only_the_central_accounts_dump_received_events(
    template: Template,
) -> None:
    policy = _one(template, "AWS::Events::EventBusPolicy")
    assert policy["EventBusName"] == "default" and policy["StatementId"] == STATEMENT_ID
    assert _flat(policy["Statement"]) == {
        "Sid": STATEMENT_ID,
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{CENTRAL}:root"},
        "Action": "events:PutEvents",
        "Resource": f"arn:aws:events:{TEST_REGION}:{TEST_ACCOUNT}:event-bus/default",
        "Condition": {
            "ForAllValues:StringEquals": {
                "events:source": "crashcart.central",
                "events:detail-type": "Crashcart Dump Received",
            },
            "Null": {"events:source": "false", "events:detail-type": "false"},
        },
    }
    for old in ("Principal", "Action", "Condition"):  # no PutPermission-style grant beside it
        assert old not in policy


def test_the_rule_takes_only_those_events_from_the_central_account(template: Template) -> None:
    rule = _one(template, "AWS::Events::Rule")
    assert "EventBusName" not in rule  # the default bus
    assert rule["EventPattern"] == {
        "source": ["crashcart.central"],
        "detail-type": ["Crashcart Dump Received"],
        "account": [CENTRAL],
    }
    (target,) = rule["Targets"]
    assert "DeadLetterConfig" in target
    assert target["RetryPolicy"] == {"MaximumEventAgeInSeconds": 86400, "MaximumRetryAttempts": 8}


def test_the_function_is_dump_arrival_with_the_central_environment(template: Template) -> None:
    function = _one(template, "AWS::Lambda::Function")
    assert function["Handler"] == "crashcart.functions.dump_arrival.handler.handler"
    env = function["Environment"]["Variables"]
    assert set(env) == set(variables.CENTRAL_DUMP_RECEIVER)
    assert env[variables.CENTRAL_ACCOUNT] == CENTRAL
    assert env[variables.MEMBER_ACCOUNT] == TEST_ACCOUNT
    assert env[variables.ATTACH_WINDOW_SECONDS] == "21600"
    assert function["DeadLetterConfig"]


def test_the_function_has_exactly_its_rights(template: Template) -> None:
    policy = _one(template, "AWS::IAM::ManagedPolicy")
    actions = sorted(
        action
        for statement in policy["PolicyDocument"]["Statement"]
        for action in (
            [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]
        )
    )
    assert "s3:GetObject" not in actions and not any(a.startswith("events:") for a in actions)
    assert set(DUMP_ARRIVAL_ACTIONS) <= set(actions)
    assert {"sns:Publish", "sqs:SendMessage", "logs:PutLogEvents"} <= set(actions)
    assert "*" not in json.dumps([s["Resource"] for s in policy["PolicyDocument"]["Statement"]])


@pytest.mark.parametrize("value", ["", "99999999999", "9999999999999", "arn:aws:iam::1:root", 42])
def test_fails_on_a_malformed_central_account(value: object) -> None:
    stack = _stack()
    incidents = IncidentStore(stack, "Incidents")
    with pytest.raises(ConfigurationError, match=r"central_account_id=.*12-digit id"):
        CentralDumpReceiver(
            stack,
            "CentralDumps",
            central_account_id=value,  # type: ignore[arg-type]
            incidents=incidents,
        )


def test_fails_without_the_members_incident_store() -> None:
    with pytest.raises(ConfigurationError, match="incidents"):
        CentralDumpReceiver(
            _stack(),
            "CentralDumps",
            central_account_id=CENTRAL,
            incidents="crashcart-incidents",  # type: ignore[arg-type]
        )


def test_the_attach_window_is_applied() -> None:
    stack = _stack()
    CentralDumpReceiver(
        stack,
        "CentralDumps",
        central_account_id=CENTRAL,
        incidents=IncidentStore(stack, "Incidents"),
        attach_window=cdk.Duration.hours(2),
    )
    env = _one(Template.from_stack(stack), "AWS::Lambda::Function")["Environment"]["Variables"]
    assert env[variables.ATTACH_WINDOW_SECONDS] == "7200"
