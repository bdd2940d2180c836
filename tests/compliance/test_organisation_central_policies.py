"""The central account's SYNTHESIZED bucket and key policies, evaluated offline (issue 23).

moto ignores ``aws:PrincipalOrgID`` and policy variables, so the decisions come from
``@cloud-copilot/iam-simulate`` (npm, pinned; tests/support/iam_simulate.mjs). The member's
identity policy is either what the member stack attaches (``member_upload_statements``) or,
to show that the central policies alone refuse, an administrator's ``s3:*`` / ``kms:*``.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_iam as iam

from crashcart.constructs.organisation_central import (
    OrganisationCentral,
    member_upload_statements,
)
from tests.conftest import TEST_ACCOUNT, TEST_REGION
from tests.support import iam_simulate
from tests.support.access import resolve_intrinsics

pytestmark = pytest.mark.skipif(
    not iam_simulate.available(), reason="needs node and npm's @cloud-copilot/iam-simulate"
)

ORG = "o-a1b2c3d4e5"
CENTRAL = TEST_ACCOUNT  # resolve_intrinsics renders AWS::AccountId as the test account
ACCOUNT_A, ACCOUNT_B, OUTSIDER = "222222222222", "333333333333", "444444444444"
ROLE_ID = "AROAMEMBERINSTANCE01"
INSTANCE, OTHER_INSTANCE = "i-0aaaaaaaaaaaaaaa1", "i-0bbbbbbbbbbbbbbb2"


@functools.cache
def template() -> dict[str, Any]:
    app = cdk.App()
    stack = cdk.Stack(app, "Central")
    central = OrganisationCentral(stack, "Central", organisation_id=ORG)
    triage = iam.Role(
        stack, "TriageRole", assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com")
    )
    central.grant_read(triage)
    synthesized: dict[str, Any] = app.synth().get_stack_by_name("Central").template
    return synthesized


def _resources(kind: str) -> dict[str, Any]:
    return {k: v for k, v in template()["Resources"].items() if v["Type"] == kind}


@functools.cache
def parts() -> dict[str, Any]:
    resources = template()["Resources"]
    (bucket_id,) = [
        k for k in _resources("AWS::S3::Bucket") if "DumpsBucket" in k and "Logs" not in k
    ]
    (policy,) = [
        v
        for v in _resources("AWS::S3::BucketPolicy").values()
        if v["Properties"]["Bucket"] == {"Ref": bucket_id}
    ]
    encryption = resources[bucket_id]["Properties"]["BucketEncryption"]
    key_id = encryption["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"][
        "KMSMasterKeyID"
    ]["Fn::GetAtt"][0]
    (read,) = [v for k, v in _resources("AWS::IAM::ManagedPolicy").items() if "ReadPolicy" in k]
    bucket_arn = resolve_intrinsics({"Fn::GetAtt": [bucket_id, "Arn"]}, resources)
    return {
        "bucket_arn": bucket_arn,
        "bucket_name": bucket_arn.split(":::")[1],
        "key_arn": resolve_intrinsics({"Fn::GetAtt": [key_id, "Arn"]}, resources),
        "bucket_policy": resolve_intrinsics(policy["Properties"]["PolicyDocument"], resources),
        "key_policy": resolve_intrinsics(resources[key_id]["Properties"]["KeyPolicy"], resources),
        "read_policy": resolve_intrinsics(read["Properties"]["PolicyDocument"], resources),
    }


def member_identity() -> dict[str, Any]:
    """What the member stack attaches to its instance role (rendered as IAM would see it)."""
    statements = member_upload_statements(
        bucket_name=parts()["bucket_name"], key_arn=parts()["key_arn"], region=TEST_REGION
    )
    # the kms:ViaService value carries AWS::URLSuffix: resolve it as a template would
    stack = cdk.Stack(cdk.App(), "Member")
    rendered = stack.resolve(iam.PolicyDocument(statements=statements).to_json())
    document: dict[str, Any] = resolve_intrinsics(rendered, {})
    return document


ADMIN = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": ["s3:*", "kms:*"], "Resource": "*"}],
}


def instance_context(
    account: str, instance: str = INSTANCE, *, org: str = ORG, **extra: Any
) -> dict[str, Any]:
    """The request context of an instance-profile session of ``account``."""
    context: dict[str, Any] = {
        "aws:PrincipalOrgID": org,
        "aws:PrincipalAccount": account,
        "aws:userid": f"{ROLE_ID}:{instance}",
        "aws:SecureTransport": "true",
        "ec2:SourceInstanceARN": f"arn:aws:ec2:{TEST_REGION}:{account}:instance/{instance}",
    }
    context.update(extra)
    return {k: v for k, v in context.items() if v is not None}


def principal(account: str, instance: str = INSTANCE) -> str:
    return f"arn:aws:sts::{account}:assumed-role/crashcart-instance/{instance}"


def s3_request(
    action: str,
    key: str | None,
    *,
    account: str = ACCOUNT_A,
    identity: dict[str, Any] | None = None,
    context: dict[str, Any] | None = None,
    who: str | None = None,
) -> dict[str, Any]:
    resource = parts()["bucket_arn"] + (f"/{key}" if key is not None else "")
    if action == "s3:PutObject" and context is None:
        context = instance_context(
            account, **{"s3:if-none-match": "*", "s3:ObjectCreationOperation": "true"}
        )
    return iam_simulate.simulation(
        action=action,
        principal=who or principal(account),
        resource=resource,
        resource_account=CENTRAL,
        context=context if context is not None else instance_context(account),
        identity=[identity or member_identity()],
        resource_policy=parts()["bucket_policy"],
    )


def own(account: str = ACCOUNT_A, instance: str = INSTANCE) -> str:
    return f"dumps/{account}/{ROLE_ID}:{instance}/202612052300/vmcore"


#: Context keys the simulator may drop as not applicable to an action (they are set on every
#: request here for simplicity); any other dropped key fails the test.
NOT_FOR_EVERY_ACTION = {"s3:if-none-match", "s3:ObjectCreationOperation", "kms:ViaService"}


def decisions(cases: dict[str, dict[str, Any]]) -> dict[str, str]:
    answers = iam_simulate.decide(list(cases.values()))
    errors = {name: a for name, a in zip(cases, answers, strict=True) if a["decision"] == "Error"}
    assert not errors, json.dumps(errors, indent=1)[:3000]
    for name, answer in zip(cases, answers, strict=True):
        dropped = set(answer["ignored"]) - NOT_FOR_EVERY_ACTION
        assert not dropped, f"{name}: the simulator ignored {dropped}"
    return {name: a["decision"] for name, a in zip(cases, answers, strict=True)}


def test_a_member_instance_can_create_only_under_its_own_account_and_session() -> None:
    got = decisions(
        {
            "own prefix": s3_request("s3:PutObject", own()),
            "B's prefix": s3_request("s3:PutObject", own(ACCOUNT_B)),
            "other instance": s3_request("s3:PutObject", own(instance=OTHER_INSTANCE)),
            "outside dumps/": s3_request("s3:PutObject", f"reports/{ACCOUNT_A}/x"),
            "B's prefix, admin": s3_request("s3:PutObject", own(ACCOUNT_B), identity=ADMIN),
            "overwrite": s3_request(
                "s3:PutObject",
                own(),
                context=instance_context(ACCOUNT_A, **{"s3:ObjectCreationOperation": "true"}),
            ),
            "not an instance session": s3_request(
                "s3:PutObject",
                f"dumps/{ACCOUNT_A}/{ROLE_ID}:alice/x",
                context=instance_context(
                    ACCOUNT_A,
                    **{
                        "aws:userid": f"{ROLE_ID}:alice",
                        "ec2:SourceInstanceARN": None,
                        "s3:if-none-match": "*",
                        "s3:ObjectCreationOperation": "true",
                    },
                ),
            ),
        }
    )
    assert got == {
        "own prefix": "Allowed",
        "B's prefix": "ExplicitlyDenied",
        "other instance": "ExplicitlyDenied",
        "outside dumps/": "ExplicitlyDenied",
        "B's prefix, admin": "ExplicitlyDenied",
        "overwrite": "ExplicitlyDenied",
        "not an instance session": "ExplicitlyDenied",
    }


@pytest.mark.parametrize(
    ("action", "key"),
    [
        ("s3:GetObject", "own"),
        ("s3:GetObject", "B"),
        ("s3:DeleteObject", "own"),
        ("s3:DeleteObjectVersion", "own"),
        ("s3:ListBucket", None),
        ("s3:PutBucketPolicy", None),
        ("s3:PutObjectAcl", "own"),
    ],
)
def test_a_member_can_never_read_list_or_delete_even_as_administrator(
    action: str, key: str | None
) -> None:
    name = {"own": own(), "B": own(ACCOUNT_B), None: None}[key]
    (got,) = decisions({action: s3_request(action, name, identity=ADMIN)}).values()
    assert got == "ExplicitlyDenied"


def test_a_principal_outside_the_organisation_can_do_nothing() -> None:
    outsider = instance_context(
        OUTSIDER,
        org="o-zzzzzzzzzz",
        **{"s3:if-none-match": "*", "s3:ObjectCreationOperation": "true"},
    )
    got = decisions(
        {
            action: s3_request(
                action, own(OUTSIDER), account=OUTSIDER, identity=ADMIN, context=outsider
            )
            for action in ("s3:PutObject", "s3:GetObject", "s3:DeleteObject")
        }
    )
    assert got == {
        "s3:PutObject": "ImplicitlyDenied",  # the only allow names the organisation
        "s3:GetObject": "ExplicitlyDenied",
        "s3:DeleteObject": "ExplicitlyDenied",
    }
    # Without any organisation at all (a standalone account): no allow applies either.
    lone = instance_context(
        OUTSIDER,
        **{
            "aws:PrincipalOrgID": None,
            "s3:if-none-match": "*",
            "s3:ObjectCreationOperation": "true",
        },
    )
    (alone,) = decisions(
        {"put": s3_request("s3:PutObject", own(OUTSIDER), account=OUTSIDER, context=lone)}
    ).values()
    assert alone != "Allowed"


def test_the_central_triage_role_reads_every_accounts_dumps() -> None:
    role = f"arn:aws:sts::{CENTRAL}:assumed-role/triage/task"
    context = {
        "aws:PrincipalAccount": CENTRAL,
        "aws:SecureTransport": "true",
        "aws:userid": "AROATRIAGE:task",
    }
    got = decisions(
        {
            "get A": s3_request(
                "s3:GetObject", own(), identity=parts()["read_policy"], context=context, who=role
            ),
            "get B": s3_request(
                "s3:GetObject",
                own(ACCOUNT_B),
                identity=parts()["read_policy"],
                context=context,
                who=role,
            ),
            "list": s3_request(
                "s3:ListBucket", None, identity=parts()["read_policy"], context=context, who=role
            ),
            "delete": s3_request(
                "s3:DeleteObject", own(), identity=parts()["read_policy"], context=context, who=role
            ),
        }
    )
    assert got == {
        "get A": "Allowed",
        "get B": "Allowed",
        "list": "Allowed",
        "delete": "ImplicitlyDenied",
    }


# ---------------------------------------------------------------------------- the key


def key_request(
    action: str,
    *,
    account: str = ACCOUNT_A,
    via: str | None = f"s3.{TEST_REGION}.amazonaws.com",
    object_key: str | None = None,
    identity: dict[str, Any] | None = None,
    org: str = ORG,
) -> dict[str, Any]:
    context = instance_context(account, org=org)
    if via is not None:
        context["kms:ViaService"] = via
    context["kms:EncryptionContext:aws:s3:arn"] = (
        f"{parts()['bucket_arn']}/{object_key or own(account)}"
    )
    request = iam_simulate.simulation(
        action=action,
        principal=principal(account),
        resource=parts()["key_arn"],
        resource_account=CENTRAL,
        context=context,
        identity=[identity or member_identity()],
        resource_policy=parts()["key_policy"],
    )
    # iam-simulate 0.1.173 drops kms:EncryptionContext:<key> (a colon-form variable key) as
    # unknown; its unvalidated engine evaluates the context as given.
    request["unchecked"] = True
    return request


def test_the_key_serves_the_organisation_only_through_s3_in_this_region() -> None:
    got = decisions(
        {
            "generate via S3": key_request("kms:GenerateDataKey"),
            "decrypt via S3 (multipart)": key_request("kms:Decrypt"),
            "decrypt directly, admin": key_request("kms:Decrypt", via=None, identity=ADMIN),
            "generate directly, admin": key_request(
                "kms:GenerateDataKey", via=None, identity=ADMIN
            ),
            "via S3 in another Region": key_request(
                "kms:GenerateDataKey", via="s3.us-east-1.amazonaws.com", identity=ADMIN
            ),
            "for B's prefix": key_request(
                "kms:GenerateDataKey", object_key=own(ACCOUNT_B), identity=ADMIN
            ),
            "outside the organisation": key_request(
                "kms:GenerateDataKey", account=OUTSIDER, org="o-zzzzzzzzzz", identity=ADMIN
            ),
            "schedule deletion, admin": key_request("kms:ScheduleKeyDeletion", identity=ADMIN),
        }
    )
    assert got == {
        "generate via S3": "Allowed",
        "decrypt via S3 (multipart)": "Allowed",
        "decrypt directly, admin": "ImplicitlyDenied",
        "generate directly, admin": "ImplicitlyDenied",
        "via S3 in another Region": "ImplicitlyDenied",
        "for B's prefix": "ImplicitlyDenied",
        "outside the organisation": "ImplicitlyDenied",
        "schedule deletion, admin": "ImplicitlyDenied",
    }


def test_the_central_triage_role_decrypts_through_s3() -> None:
    request = key_request("kms:Decrypt", identity=parts()["read_policy"])
    request["request"]["principal"] = f"arn:aws:sts::{CENTRAL}:assumed-role/triage/task"
    request["request"]["contextVariables"] = {
        "aws:PrincipalAccount": CENTRAL,
        "kms:ViaService": f"s3.{TEST_REGION}.amazonaws.com",
    }
    (got,) = decisions({"triage": request}).values()
    assert got == "Allowed"


# -- the central bus ---------------------------------------------------------------------------


def bus_request(
    sources: list[str] | None,
    detail_types: list[str] | None,
    *,
    account: str = ACCOUNT_A,
    org: str = ORG,
) -> dict[str, Any]:
    """A ``PutEvents`` on the central bus by a member's function, one value per entry."""
    (policy,) = _resources("AWS::Events::EventBusPolicy").values()
    statement = resolve_intrinsics(policy["Properties"]["Statement"], template()["Resources"])
    # resolve_intrinsics renders the bus's Arn attribute as its name: the ARN it stands for
    bus_arn = f"arn:aws:events:{TEST_REGION}:{CENTRAL}:event-bus/{statement['Resource']}"
    statement["Resource"] = bus_arn
    context: dict[str, Any] = {"aws:PrincipalOrgID": org, "aws:PrincipalAccount": account}
    if sources is not None:
        context["events:source"] = sources
    if detail_types is not None:
        context["events:detail-type"] = detail_types
    return iam_simulate.simulation(
        action="events:PutEvents",
        principal=f"arn:aws:sts::{account}:assumed-role/crashcart-remediation/fn",
        resource=bus_arn,
        resource_account=CENTRAL,
        context=context,
        identity=[
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "events:PutEvents", "Resource": "*"}],
            }
        ],
        resource_policy={"Version": "2012-10-17", "Statement": [statement]},
    )


def test_the_bus_takes_one_incident_update_and_refuses_any_other_entry() -> None:
    """aws-assumption eventbridge-put-events-source-keys: the keys are multivalued (one value
    per entry of the call), so the synthesized statement must use a set operator; written as
    a plain StringEquals it admits no update at all."""
    update, kind = "crashcart.incident", "Crashcart Incident Update"
    assert decisions(
        {
            "one update": bus_request([update], [kind]),
            "two updates": bus_request([update, update], [kind, kind]),
            "another source": bus_request(["crashcart.central"], [kind]),
            "another detail type": bus_request([update], ["Other"]),
            "an update and another entry": bus_request([update, "other"], [kind, "Other"]),
            "no source": bus_request(None, None),
            "outside the organisation": bus_request(
                [update], [kind], account=OUTSIDER, org="o-zzzzzzzzzz"
            ),
        }
    ) == {
        "one update": "Allowed",
        "two updates": "Allowed",
        "another source": "ImplicitlyDenied",
        "another detail type": "ImplicitlyDenied",
        "an update and another entry": "ImplicitlyDenied",
        "no source": "ImplicitlyDenied",
        "outside the organisation": "ImplicitlyDenied",
    }
