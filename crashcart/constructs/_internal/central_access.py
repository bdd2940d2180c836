"""A member stack's view of the central account: the Region mapping, the imported dump bucket
and key, the bucket-name parameter the agent reads, and the agent's managed policy.

Private to :mod:`crashcart.stacks.organisation_member`. The member template is the same in
every account and Region (a StackSet), so everything Region-specific is looked up with
``Fn::FindInMap`` on ``AWS::Region`` in a ``Mappings`` section written from
:class:`~crashcart.constructs.member_account_settings.MemberAccountSettings`; everything
account-specific uses ``AWS::AccountId``.

The agent's policy is the member half of the central bucket's rule "an instance writes only
under ``dumps/<its account>/<its session>/``": ``s3:PutObject`` on exactly that prefix and the
key's use only through S3 in this Region for objects under ``dumps/<its account>/``. The
bucket policy in the central account (``OrganisationCentral``) enforces the same with
``aws:PrincipalOrgID`` and denies; members never get a read right.
"""

from __future__ import annotations

from typing import Final

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from crashcart.compliance import acknowledge
from crashcart.constructs._internal.dump_bucket_iam import (
    USERID_VARIABLE,
    acknowledge_attestation_tag,
    attestation_tag_statement,
    upload_statements,
)
from crashcart.constructs.diagnostic_interrupt_operator_policy import nag_rendering
from crashcart.constructs.member_account_settings import MemberAccountSettings
from crashcart.constructs.organisation_link import OrganisationLink
from crashcart.runtime.dumps import (
    ACCOUNT_LAYOUT,
    DEFAULT_PARAMETER_NAME,
    DUMPS_PREFIX,
    LAYOUT_PARAMETER_NAME,
)

#: The member template's mapping of Region -> central resources.
MAPPING_ID: Final = "CrashcartCentral"
#: Its attribute names (CloudFormation mapping keys: alphanumeric).
DUMP_BUCKET: Final = "DumpBucket"
DUMP_KEY_ARN: Final = "DumpKeyArn"
EVENT_BUS_ARN: Final = "EventBusArn"
BREAKER_TABLE_ARN: Final = "BreakerTableArn"
BREAKER_KEY_ARN: Final = "BreakerKeyArn"


class CentralAccess(Construct):
    """The central account's resources, as a member stack in any Region sees them.

    Attributes: ``mapping``, ``dump_bucket`` (imported), ``dump_key`` (imported),
    ``event_bus_arn`` and ``breaker_table_arn`` (tokens: ``Fn::FindInMap``),
    ``parameter`` (``/crashcart/dump-bucket``: the central bucket's name, read by the
    agent), ``agent_policy`` (the customer managed policy to attach to instance roles).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: MemberAccountSettings,
        attestation_tag_key: str,
        agent_policy_name: str,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        self.settings = settings
        #: The mapping (stack-level logical id ``CrashcartCentral``: ids are a contract).
        self.mapping = cdk.CfnMapping(
            stack,
            MAPPING_ID,
            mapping={
                region: {
                    DUMP_BUCKET: central.dump_bucket_name,
                    DUMP_KEY_ARN: central.dump_key_arn,
                    EVENT_BUS_ARN: central.event_bus_arn,
                    BREAKER_TABLE_ARN: central.breaker_table_arn,
                    BREAKER_KEY_ARN: central.breaker_key_arn,
                }
                for region, central in sorted(settings.regions.items())
            },
        )
        bucket_name = self._lookup(DUMP_BUCKET)
        #: The Region's central dump bucket.
        self.dump_bucket: s3.IBucket = s3.Bucket.from_bucket_attributes(
            self, "DumpBucket", bucket_name=bucket_name, account=settings.central_account
        )
        #: Its key.
        self.dump_key: kms.IKey = kms.Key.from_key_arn(self, "DumpKey", self._lookup(DUMP_KEY_ARN))
        #: The central bus and the organisation breaker table (for the lead's wiring of the
        #: remediation's central-bus and organisation-breaker props).
        self.event_bus_arn: str = self._lookup(EVENT_BUS_ARN)
        self.breaker_table_arn: str = self._lookup(BREAKER_TABLE_ARN)
        self.breaker_key_arn: str = self._lookup(BREAKER_KEY_ARN)
        #: The bucket name for the agent, under the name it reads in every account.
        self.parameter = ssm.StringParameter(
            self,
            "BucketNameParameter",
            parameter_name=DEFAULT_PARAMETER_NAME,
            string_value=bucket_name,
            description="crashcart: the central crash-dump bucket the on-instance agent ships to",
        )
        #: The key layout for the agent: ``account`` (its dumps go under its account id).
        self.layout_parameter = ssm.StringParameter(
            self,
            "LayoutParameter",
            parameter_name=LAYOUT_PARAMETER_NAME,
            string_value=ACCOUNT_LAYOUT,
            description="crashcart: the agent's key layout in the central bucket "
            "(dumps/<account id>/...)",
        )
        # Cross-account: this identity policy and the central bucket's and key's policies must
        # both allow each request.
        # aws-assumption: member-agent-cross-account-write
        account_dumps = f"{DUMPS_PREFIX}{stack.account}/"
        own_prefix = self.dump_bucket.arn_for_objects(f"{account_dumps}{USERID_VARIABLE}/*")
        self.agent_policy = iam.ManagedPolicy(
            self,
            "AgentPolicy",
            # A known name in every member account, so that instance roles defined elsewhere
            # (launch templates, other stacks) can attach it; IAM is global, so the Region is
            # part of it (each Region's policy names that Region's bucket).
            managed_policy_name=f"{agent_policy_name}-{stack.region}",
            description="crashcart agent: create dumps under its own prefix in the central "
            "bucket, read the bucket name, attest kdump on itself",
            statements=[
                *upload_statements(
                    stack,
                    own_prefix_arn=own_prefix,
                    key_arn=self.dump_key.key_arn,
                    dumps_arn_pattern=self.dump_bucket.arn_for_objects(f"{account_dumps}*"),
                ),
                iam.PolicyStatement(
                    sid="ReadBucketNameParameter",
                    actions=["ssm:GetParameter"],
                    resources=[self.parameter.parameter_arn, self.layout_parameter.parameter_arn],
                ),
                attestation_tag_statement(stack, attestation_tag_key),
            ],
        )
        # cdk-nag prints a policy variable ${x} as <x>
        rendered = str(nag_rendering(stack.resolve(own_prefix))).replace(
            USERID_VARIABLE, "<aws:userid>"
        )
        acknowledge(
            self.agent_policy,
            f"AwsSolutions::AwsSolutions-IAM5[Resource::{rendered}]",
            "an instance may create objects only under its own account's and session's "
            "prefix of the central bucket, named by the ${aws:userid} policy variable "
            "(<role id>:<instance id>)",
        )
        acknowledge_attestation_tag(self.agent_policy)

    def organisation_link(self) -> OrganisationLink:
        """The remediation's link to this Region's organisation breaker and central bus
        (tokens: the Region's row of the mapping)."""
        return OrganisationLink(
            breaker_table_arn=self.breaker_table_arn,
            breaker_key_arn=self.breaker_key_arn,
            central_event_bus_arn=self.event_bus_arn,
        )

    def _lookup(self, attribute: str) -> str:
        return self.mapping.find_in_map(cdk.Aws.REGION, attribute)
