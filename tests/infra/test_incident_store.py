"""IncidentStore: the incident table, key and topic, and one grant per kind of writer."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Match, Template

from crashcart import IncidentStore, UnresponsiveInstanceRemediation
from crashcart.constructs import incident_store as store_module
from crashcart.constructs.existing_dump_bucket import ExistingDumpBucket
from crashcart.errors import ConfigurationError
from crashcart.runtime.incident import TRIAGE_ATTRIBUTES
from tests.support.remediation import INSTANCE_IDS, env, new_app


def _stack(name: str) -> cdk.Stack:
    return cdk.Stack(new_app(), name, env=env())


def _role(stack: cdk.Stack, name: str) -> iam.Role:
    return iam.Role(stack, name, assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))


def _statements(template: Template, role_id: str) -> list[dict[str, Any]]:
    policies = template.find_resources(
        "AWS::IAM::Policy", {"Properties": {"Roles": [{"Ref": Match.string_like_regexp(role_id)}]}}
    )
    (policy,) = policies.values()
    statements: list[dict[str, Any]] = policy["Properties"]["PolicyDocument"]["Statement"]
    return statements


def test_minimal_store_creates_a_protected_encrypted_table_a_key_and_a_topic() -> None:
    stack = _stack("Minimal")
    IncidentStore(stack, "Incidents")
    template = Template.from_stack(stack)
    template.resource_count_is("AWS::DynamoDB::Table", 1)
    template.resource_count_is("AWS::KMS::Key", 1)
    template.resource_count_is("AWS::SNS::Topic", 1)
    template.has_resource(
        "AWS::DynamoDB::Table",
        {
            "DeletionPolicy": "Retain",
            "Properties": {
                "DeletionProtectionEnabled": True,
                "KeySchema": [
                    {"AttributeName": "pk", "KeyType": "HASH"},
                    {"AttributeName": "sk", "KeyType": "RANGE"},
                ],
                "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
                "SSESpecification": Match.object_like({"SSEEnabled": True, "SSEType": "KMS"}),
            },
        },
    )
    template.has_resource_properties(
        "AWS::SNS::TopicPolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [Match.object_like({"Principal": {"Service": "cloudwatch.amazonaws.com"}})]
                )
            }
        },
    )


def test_the_remediation_construct_keeps_the_ids_it_gave_its_table_key_and_topic() -> None:
    """Its own store is ``Default``: CDK leaves that out of logical ids (nothing replaced)."""
    stack = _stack("Ids")
    evidence = s3.Bucket(stack, "Evidence")
    remediation = UnresponsiveInstanceRemediation(
        stack, "Remediation", dumps=ExistingDumpBucket(bucket=evidence), instances=[INSTANCE_IDS[0]]
    )
    ids = {
        name: stack.get_logical_id(construct.node.default_child)  # type: ignore[arg-type]
        for name, construct in (
            ("table", remediation.table),
            ("key", remediation.key),
            ("topic", remediation.topic),
        )
    }
    # The hashes are those of the paths Remediation/Incidents, .../Key, .../Topic.
    assert ids == {
        "table": "RemediationIncidents920F5F76",
        "key": "RemediationKey295E31D0",
        "topic": "RemediationTopicD0F28822",
    }
    assert remediation.incidents.table is remediation.table


def test_a_given_store_is_used_and_a_second_topic_is_refused() -> None:
    stack = _stack("Given")
    incidents = IncidentStore(stack, "Incidents")
    evidence = s3.Bucket(stack, "Evidence")
    remediation = UnresponsiveInstanceRemediation(
        stack,
        "Remediation",
        dumps=ExistingDumpBucket(bucket=evidence),
        instances=[INSTANCE_IDS[0]],
        incidents=incidents,
    )
    assert remediation.table is incidents.table and remediation.key is incidents.encryption_key
    Template.from_stack(stack).resource_count_is("AWS::DynamoDB::Table", 1)
    with pytest.raises(ConfigurationError, match="topic was given with incidents"):
        UnresponsiveInstanceRemediation(
            stack,
            "Again",
            dumps=ExistingDumpBucket(bucket=evidence),
            instances=[INSTANCE_IDS[1]],
            incidents=incidents,
            topic=incidents.topic,
        )


def test_a_table_of_your_own_keeps_its_key_and_refuses_another() -> None:
    stack = _stack("Own")
    key = kms.Key(stack, "OwnKey")
    table = dynamodb.Table(
        stack,
        "OwnTable",
        partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
        encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
        encryption_key=key,
    )
    store = IncidentStore(stack, "Incidents", table=table)
    assert store.table is table and store.encryption_key is key
    with pytest.raises(ConfigurationError, match="table and encryption_key were both given"):
        IncidentStore(stack, "Twice", table=table, encryption_key=key)


def test_each_writer_gets_exactly_its_actions_on_the_table_and_the_key() -> None:
    stack = _stack("Grants")
    store = IncidentStore(stack, "Incidents")
    roles = {name: _role(stack, name) for name in ("Arrival", "Sweep", "Triage", "Operator")}
    store.grant_dump_arrival(roles["Arrival"])
    store.grant_overdue_sweep(roles["Sweep"])
    store.grant_triage(roles["Triage"])
    store.grant_reset_breaker(roles["Operator"])
    template = Template.from_stack(stack)

    def table_actions(role: str) -> list[tuple[Any, Any]]:
        return [
            (s["Action"], s.get("Condition"))
            for s in _statements(template, role)
            if str(s["Action"]).startswith(("dynamodb", "['dynamodb"))
        ]

    def as_list(actions: Any) -> list[str]:
        return sorted([actions] if isinstance(actions, str) else actions)

    ((arrival, none),) = table_actions("Arrival")
    assert as_list(arrival) == sorted(store_module.DUMP_ARRIVAL_ACTIONS) and none is None
    ((sweep, none),) = table_actions("Sweep")
    assert as_list(sweep) == sorted(store_module.SWEEP_ACTIONS) and none is None
    (read, write) = table_actions("Triage")
    assert as_list(read[0]) == ["dynamodb:Query"] and read[1] is None
    assert as_list(write[0]) == ["dynamodb:UpdateItem"]
    assert write[1] == {
        "ForAllValues:StringEquals": {"dynamodb:Attributes": list(TRIAGE_ATTRIBUTES)}
    }
    ((reset, leading),) = table_actions("Operator")
    assert as_list(reset) == sorted(store_module.BREAKER_RESET_ACTIONS)
    assert leading == {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["breaker#*"]}}
    for role in roles:
        key_statements = [
            s for s in _statements(template, role) if "kms:Decrypt" in as_list(s["Action"])
        ]
        assert key_statements, role
