"""The incident table, as the tests need it: a moto table, or a CDK stand-in.

The remediation construct owns the real table (pk ``instance#<id>``, sk
``incident#<opened_at>``); tests of the other constructs and functions that use it get
these instead.
"""

from __future__ import annotations

from typing import Any

_KEY_SCHEMA = [
    {"AttributeName": "pk", "KeyType": "HASH"},
    {"AttributeName": "sk", "KeyType": "RANGE"},
]
_ATTRIBUTES = [
    {"AttributeName": "pk", "AttributeType": "S"},
    {"AttributeName": "sk", "AttributeType": "S"},
]


def create_incident_table(client: Any, name: str) -> None:
    """The incident table's key schema on a (moto) DynamoDB client."""
    client.create_table(
        TableName=name,
        KeySchema=_KEY_SCHEMA,
        AttributeDefinitions=_ATTRIBUTES,
        BillingMode="PAY_PER_REQUEST",
    )


def stand_in_incidents(stack: Any) -> tuple[Any, Any, Any]:
    """A KMS key, an encrypted incident table and topic standing in for the remediation
    construct's (not under test where this is used): ``(table, topic, key)``."""
    from aws_cdk import aws_dynamodb as dynamodb
    from aws_cdk import aws_kms as kms
    from aws_cdk import aws_sns as sns

    from crashcart.compliance import acknowledge_all

    key = kms.Key(stack, "IncidentKey", enable_key_rotation=True)
    table = dynamodb.Table(
        stack,
        "Incidents",
        partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
        sort_key=dynamodb.Attribute(name="sk", type=dynamodb.AttributeType.STRING),
        billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
        encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
        encryption_key=key,
        point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
            point_in_time_recovery_enabled=True
        ),
    )
    acknowledge_all(
        table,
        {
            f"{pack}::{pack}-DynamoDBInBackupPlan": "stand-in for the remediation construct's "
            "incident table; its backup plan is that construct's concern"
            for pack in ("NIST.800.53.R5", "HIPAA.Security")
        },
    )
    topic = sns.Topic(stack, "Topic", master_key=key, enforce_ssl=True)
    return table, topic, key


def store_of(scope: Any, table: Any, topic: Any) -> Any:
    """An ``IncidentStore`` over a table and topic of the test's own (bring-your-own)."""
    from crashcart.constructs.incident_store import IncidentStore

    return IncidentStore(scope, "IncidentStore", table=table, topic=topic)
