"""crashcart's DynamoDB tables: string ``pk`` / ``sk`` keys, on demand, a customer managed
key, point-in-time recovery, deletion protection (the incident table, the organisation
breaker's table)."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from crashcart.constructs._internal.acknowledgements import acknowledge_packs
from crashcart.runtime.incident import PK, SK


def protected_table(
    scope: Construct,
    construct_id: str,
    *,
    key: kms.IKey,
    removal_policy: cdk.RemovalPolicy,
    backup_reason: str,
    resource_policy: iam.PolicyDocument | None = None,
) -> dynamodb.Table:
    """The table; ``backup_reason`` acknowledges the packs' AWS Backup plan rule."""
    table = dynamodb.Table(
        scope,
        construct_id,
        partition_key=dynamodb.Attribute(name=PK, type=dynamodb.AttributeType.STRING),
        sort_key=dynamodb.Attribute(name=SK, type=dynamodb.AttributeType.STRING),
        billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
        point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
            point_in_time_recovery_enabled=True
        ),
        encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
        encryption_key=key,
        deletion_protection=True,
        removal_policy=removal_policy,
        resource_policy=resource_policy,
    )
    acknowledge_packs(
        table, "DynamoDBInBackupPlan", ("NIST.800.53.R5", "HIPAA.Security"), backup_reason
    )
    return table
