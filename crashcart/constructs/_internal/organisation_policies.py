"""The resource policies of an organisation's central account: who in the organisation may
write which dump, use the dump key, and put which events on the central bus.

Private to :mod:`crashcart.constructs.organisation_central`. Every statement names the
organisation (``aws:PrincipalOrgID``); member principals get exactly one right on each
resource and nothing that reads.
"""

from __future__ import annotations

from typing import Final

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3

from crashcart.constructs._internal.service_key import service_endpoint
from crashcart.runtime.dumps import DUMPS_PREFIX
from crashcart.runtime.organisation import INCIDENT_DETAIL_TYPE, INCIDENT_SOURCE

#: The policy variable naming the account of the requesting principal.
# aws-assumption: org-principal-account-policy-variable
ACCOUNT_VARIABLE: Final = "${aws:PrincipalAccount}"
#: The policy variable naming an instance-profile session: ``<role id>:<instance id>``.
# aws-assumption: aws-userid-instance-session
USERID_VARIABLE: Final = "${aws:userid}"
#: Where a member instance may write: its account, then its own session.
OWN_PREFIX: Final = f"{DUMPS_PREFIX}{ACCOUNT_VARIABLE}/{USERID_VARIABLE}/*"
#: What a member instance needs of the dump key (multipart uploads need Decrypt).
# aws-assumption: org-sse-kms-cross-account-key-use
MEMBER_KEY_ACTIONS: Final = ("kms:GenerateDataKey", "kms:Decrypt")


def _org(organisation_id: str) -> dict[str, str]:
    # aws-assumption: org-principal-org-id
    return {"aws:PrincipalOrgID": organisation_id}


def bucket_statements(bucket: s3.IBucket, organisation_id: str) -> list[iam.PolicyStatement]:
    """The central bucket's policy for the organisation's principals.

    - Allow ``s3:PutObject`` under ``dumps/${aws:PrincipalAccount}/${aws:userid}/`` to an
      instance-profile session (``ec2:SourceInstanceARN`` present) of the organisation;
    - deny every other action, every other key, overwrites (no ``If-None-Match``) and
      non-instance sessions to every principal outside this (the central) account.

    The central account's own principals (triage job, analysts) are governed by their
    identity policies, as in an account's own bucket.
    """
    account = cdk.Stack.of(bucket).account
    not_central = {"StringNotEquals": {"aws:PrincipalAccount": account}}
    objects = bucket.arn_for_objects("*")
    return [
        iam.PolicyStatement(
            sid="OrganisationInstancesCreateOwnDumps",
            principals=[iam.AnyPrincipal()],
            actions=["s3:PutObject"],
            resources=[bucket.arn_for_objects(OWN_PREFIX)],
            conditions={
                "StringEquals": _org(organisation_id),
                # aws-assumption: aws-userid-instance-session
                "Null": {"ec2:SourceInstanceARN": "false"},
            },
        ),
        iam.PolicyStatement(
            sid="OtherAccountsOnlyCreate",
            effect=iam.Effect.DENY,
            principals=[iam.AnyPrincipal()],
            not_actions=["s3:PutObject"],
            resources=[bucket.bucket_arn, objects],
            conditions=not_central,
        ),
        iam.PolicyStatement(
            sid="OtherAccountsOnlyUnderOwnPrefix",
            effect=iam.Effect.DENY,
            principals=[iam.AnyPrincipal()],
            actions=["s3:PutObject"],
            not_resources=[bucket.arn_for_objects(OWN_PREFIX)],
            conditions=not_central,
        ),
        iam.PolicyStatement(
            sid="OtherAccountsNeverOverwrite",
            effect=iam.Effect.DENY,
            principals=[iam.AnyPrincipal()],
            actions=["s3:PutObject"],
            resources=[objects],
            conditions={
                **not_central,
                # aws-assumption: s3-conditional-write-keys
                "Null": {"s3:if-none-match": "true"},
                "Bool": {"s3:ObjectCreationOperation": "true"},
            },
        ),
        iam.PolicyStatement(
            sid="OtherAccountsOnlyInstanceSessions",
            effect=iam.Effect.DENY,
            principals=[iam.AnyPrincipal()],
            actions=["s3:PutObject"],
            resources=[objects],
            conditions={**not_central, "Null": {"ec2:SourceInstanceARN": "true"}},
        ),
    ]


def key_statement(scope: cdk.Stack, key: kms.IKey, organisation_id: str) -> iam.PolicyStatement:
    """Let the organisation's principals encrypt dumps with ``key`` through S3 in this Region,
    only for objects under their own account's prefix (the encryption context of an object
    without an S3 Bucket Key is its ARN).

    The bucket cannot be named (the bucket refers to the key: a cycle), so the context names
    any bucket's ``dumps/<own account>/``; a member using the key for a bucket of its own gains
    nothing of the central account's.
    """
    return iam.PolicyStatement(
        sid="OrganisationEncryptOwnDumpsThroughS3",
        principals=[iam.AnyPrincipal()],
        actions=list(MEMBER_KEY_ACTIONS),
        resources=["*"],
        conditions={
            "StringEquals": {
                **_org(organisation_id),
                # aws-assumption: kms-via-s3-encryption-context
                "kms:ViaService": f"s3.{scope.region}.{scope.url_suffix}",
            },
            "StringLike": {
                "kms:EncryptionContext:aws:s3:arn": (
                    f"arn:{scope.partition}:s3:::*/{DUMPS_PREFIX}{ACCOUNT_VARIABLE}/*"
                )
            },
        },
    )


def put_events_conditions(source: str, detail_type: str) -> dict[str, dict[str, str]]:
    """Conditions admitting ``PutEvents`` entries only with ``source`` and ``detail_type``.

    ``events:source`` and ``events:detail-type`` are multivalued keys (one value per entry
    of the call): they need a set operator, and ``ForAllValues`` (every entry matches) is
    what AWS's cross-account example uses; ``ForAllValues`` also holds when the key is
    absent, so ``Null`` = false requires it (aws-assumption: eventbridge-put-events-source-keys).
    """
    keys = {"events:source": source, "events:detail-type": detail_type}
    return {
        "ForAllValues:StringEquals": keys,
        "Null": {key: "false" for key in keys},
    }


def bus_statement(bus: events.IEventBus, organisation_id: str) -> iam.PolicyStatement:
    """Let the organisation's principals put crashcart incident updates, and nothing else,
    on the central bus."""
    # aws-assumption: org-eventbridge-bus-policy
    return iam.PolicyStatement(
        sid="OrganisationPutsIncidentUpdates",
        principals=[iam.AnyPrincipal()],
        actions=["events:PutEvents"],
        resources=[bus.event_bus_arn],
        conditions={
            "StringEquals": _org(organisation_id),
            **put_events_conditions(INCIDENT_SOURCE, INCIDENT_DETAIL_TYPE),
        },
    )


def member_upload_statements(
    *, bucket_name: str, key_arn: str, region: str, partition: str = "aws"
) -> list[iam.PolicyStatement]:
    """The identity-policy statements a member account's instance role needs to ship into
    the central bucket (cross-account: both sides must allow). For the member stack."""
    return [
        iam.PolicyStatement(
            sid="CreateOwnDumpsInCentralBucket",
            actions=["s3:PutObject"],
            resources=[f"arn:{partition}:s3:::{bucket_name}/{OWN_PREFIX}"],
        ),
        iam.PolicyStatement(
            sid="EncryptDumpsWithCentralKeyThroughS3",
            actions=list(MEMBER_KEY_ACTIONS),
            resources=[key_arn],
            conditions={"StringEquals": {"kms:ViaService": service_endpoint("s3", region)}},
        ),
    ]
