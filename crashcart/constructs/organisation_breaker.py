"""OrganisationBreaker: the organisation breaker's table, in the central account (per Region).

Every member account's remediation (``UnresponsiveInstanceRemediation(organisation=
OrganisationLink(...))``) takes one slot from the one item of this table
(``pk=breaker#organisation``, ``sk=state``) before it interrupts; when the slots of a window
are used up the breaker is open and no member interrupts until it has been quiet (see
``crashcart/functions/remediation/org_breaker.py`` and docs/organisation/breakers.md).

The table is like the incident table (KMS customer managed key with rotation,
point-in-time recovery, deletion protection, retained) plus a resource-based policy: any
principal of the organisation (``aws:PrincipalOrgID``) may ``dynamodb:GetItem`` and
``dynamodb:UpdateItem`` the breaker item, nothing else, nobody else. Cross-account access
also needs the caller's own IAM policy (the member's ``OrganisationPolicy``) and a key the
caller may use: an AWS managed key cannot be shared, so the key is a customer managed one
whose policy lets the organisation's principals use it only through DynamoDB in this
Region (aws-assumption: dynamodb-resource-policy-cross-account).

Example (central account, one stack per Region)::

    breaker = OrganisationBreaker(self, "OrgBreaker", organisation_id="o-a1b2c3d4e5")
    # -> breaker.table.table_arn and breaker.encryption_key.key_arn go to the members'
    #    OrganisationLink (with the central bus ARN).

Reset an open breaker (an operator of the central account): delete its item, e.g.
``aws dynamodb delete-item --table-name <table> --key
'{"pk":{"S":"breaker#organisation"},"sk":{"S":"state"}}'``; :meth:`grant_reset` gives a
role exactly that right.
"""

from __future__ import annotations

import re
from typing import Final

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from crashcart import _props as props
from crashcart.compliance import skip_checkov
from crashcart.constructs._internal.service_key import service_endpoint
from crashcart.constructs._internal.tables import protected_table
from crashcart.constructs.organisation_link import BREAKER_ACTIONS, BREAKER_KEY_ACTIONS
from crashcart.errors import ConfigurationError
from crashcart.runtime.incident import ORGANISATION_BREAKER_PK

__all__ = ["OrganisationBreaker"]

#: An AWS Organizations organisation id.
ORGANISATION_ID: Final = re.compile(r"o-[a-z0-9]{10,32}")
#: What an operator needs to reset the breaker (read it, delete its item).
RESET_ACTIONS: Final = ("dynamodb:DeleteItem", "dynamodb:GetItem")


class OrganisationBreaker(Construct):
    """The central table of the organisation breaker, shared by the organisation's accounts.

    Attributes: ``table``, ``encryption_key``, ``organisation_id``.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        organisation_id: str,
        encryption_key: kms.IKey | None = None,
        removal_policy: cdk.RemovalPolicy = cdk.RemovalPolicy.RETAIN,
    ) -> None:
        """
        :param organisation_id: the organisation whose principals may take slots
            (``o-`` and 10 to 32 lowercase letters or digits).
        :param encryption_key: the table's customer managed key. Its policy must let the
            organisation's principals use it through DynamoDB (a key given here is not
            changed when it is imported; a synth warning says so). Default: a new key with
            rotation, retained, whose policy says exactly that.
        :param removal_policy: what happens to the table on removal. Default: RETAIN (the
            table is also deletion-protected).
        """
        props.check_key("OrganisationBreaker", encryption_key)
        if not cdk.Token.is_unresolved(organisation_id) and (
            not isinstance(organisation_id, str) or not ORGANISATION_ID.fullmatch(organisation_id)
        ):
            raise ConfigurationError(
                f"OrganisationBreaker organisation_id={organisation_id!r}: must be an AWS "
                "Organizations id like o-a1b2c3d4e5 (o- and 10 to 32 lowercase letters or "
                "digits); it is the aws:PrincipalOrgID the table and its key allow"
            )
        super().__init__(scope, construct_id)
        self.organisation_id = organisation_id
        region = cdk.Stack.of(self).region
        org_condition = {"aws:PrincipalOrgID": organisation_id}
        key = encryption_key or kms.Key(
            self,
            "Key",
            description="crashcart organisation breaker table",
            enable_key_rotation=True,
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        # aws-assumption: dynamodb-resource-policy-cross-account
        result = key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CrashcartOrganisationUsesBreakerTable",
                principals=[iam.AnyPrincipal()],
                actions=list(BREAKER_KEY_ACTIONS),
                resources=["*"],
                conditions={
                    "StringEquals": {
                        **org_condition,
                        # aws-assumption: kms-via-service-endpoint-names
                        "kms:ViaService": service_endpoint("dynamodb", region),
                    }
                },
            )
        )
        if isinstance(key, kms.Key):
            skip_checkov(
                key,
                "CKV_AWS_33",
                "the Principal * of statement CrashcartOrganisationUsesBreakerTable is bounded "
                "by aws:PrincipalOrgID (this organisation only) and kms:ViaService (only "
                "through DynamoDB in this Region): members use the breaker table's key",
            )
        if not result.statement_added:
            cdk.Annotations.of(self).add_warning_v2(
                "crashcart:organisationBreakerKeyPolicy",
                "the breaker table's key is imported: its policy must allow kms:Decrypt, "
                "kms:DescribeKey, kms:Encrypt and kms:GenerateDataKey to principals with "
                "aws:PrincipalOrgID "
                f"{organisation_id} through dynamodb.{region}.<URL suffix> (amazonaws.com; "
                "amazonaws.com.cn in China), or every member "
                "is refused and none interrupts",
            )
        self.encryption_key: kms.IKey = key
        # In a table's own resource policy "*" is the table: CloudFormation cannot name the
        # table's ARN in the policy it creates the table with.
        policy = iam.PolicyDocument(
            statements=[
                iam.PolicyStatement(
                    sid="CrashcartOrganisationTakesSlots",
                    principals=[iam.AnyPrincipal()],
                    actions=list(BREAKER_ACTIONS),
                    resources=["*"],
                    conditions={
                        "StringEquals": org_condition,
                        # aws-assumption: dynamodb-fine-grained-keys
                        "ForAllValues:StringEquals": {
                            "dynamodb:LeadingKeys": [ORGANISATION_BREAKER_PK]
                        },
                    },
                )
            ]
        )
        self.table = protected_table(
            self,
            "Table",
            key=key,
            removal_policy=removal_policy,
            resource_policy=policy,
            backup_reason="one breaker item, rebuilt by the next alarm when lost; point-in-time "
            "recovery (35 days) is on and the table is deletion-protected and retained",
        )

    def grant_reset(self, grantee: iam.IGrantable) -> iam.Grant:
        """Let ``grantee`` (in the central account) read and delete the breaker item, and use
        the table's key: how an operator closes an open breaker."""
        grant = iam.Grant.add_to_principal(
            grantee=grantee,
            actions=list(RESET_ACTIONS),
            resource_arns=[self.table.table_arn],
            conditions={
                "ForAllValues:StringEquals": {"dynamodb:LeadingKeys": [ORGANISATION_BREAKER_PK]}
            },
        )
        self.encryption_key.grant(grantee, *BREAKER_KEY_ACTIONS)
        return grant
