"""Props of the wrong type, notifications, operator grants and the triage job's network.

A prop of the wrong type (a string where an ``OptInTag`` or an ``sns.ITopic`` belongs) used to
fail deep inside a construct as an ``AttributeError``; every public construct now refuses it
at the call with a ``ConfigurationError`` naming the construct, the prop, the value and what
is allowed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk.assertions import Template

from crashcart import OptInTag
from crashcart._props import implements
from crashcart.constructs import (
    CrashDumpBucket,
    DebugSymbolStore,
    DiagnosticInterruptOperatorPolicy,
    DumpOverdueSweep,
    DumpTriageJob,
    FleetWatch,
    IncidentStore,
    KdumpImagePipeline,
    UnresponsiveInstanceRemediation,
    grant_diagnostic_interrupt,
)
from crashcart.constructs.existing_dump_bucket import ExistingDumpBucket
from crashcart.errors import ConfigurationError
from tests.support import triage_job as triage_support
from tests.support.incidents import stand_in_incidents, store_of
from tests.support.remediation import env, evidence_bucket, new_app

# -- type checks ---------------------------------------------------------------------------


def _stack() -> cdk.Stack:
    return cdk.Stack(new_app(), "Props", env=env())


def _remediation(stack: cdk.Stack, **props: Any) -> UnresponsiveInstanceRemediation:
    bucket, key = evidence_bucket(stack)
    kwargs: dict[str, Any] = {
        "dumps": ExistingDumpBucket(bucket=bucket, encryption_key=key),
        "fleet": FleetWatch(),
    }
    return UnresponsiveInstanceRemediation(stack, "Remediation", **{**kwargs, **props})


def _triage(stack: cdk.Stack, **props: Any) -> DumpTriageJob:
    dumps = CrashDumpBucket(stack, "Dumps")
    table, topic, _key = stand_in_incidents(stack)
    kwargs: dict[str, Any] = {"dumps": dumps, "incidents": store_of(stack, table, topic)}
    return DumpTriageJob(stack, "Triage", **{**kwargs, **props})


def _sweep(stack: cdk.Stack, **props: Any) -> DumpOverdueSweep:
    table, topic, key = stand_in_incidents(stack)
    kwargs: dict[str, Any] = {"incidents": store_of(stack, table, topic), "encryption_key": key}
    return DumpOverdueSweep(stack, "Sweep", **{**kwargs, **props})


Build = Callable[[cdk.Stack], Any]

WRONG_TYPES: list[tuple[str, Build, str]] = [
    # (id, build with one wrong prop, what the message must name)
    ("remediation-tag", lambda s: _remediation(s, tag="crashcart:nmi"), "tag='crashcart:nmi'"),
    ("remediation-guards", lambda s: _remediation(s, guards={"daily_budget": 1}), "guards="),
    ("remediation-breaker", lambda s: _remediation(s, breaker=5), "breaker=5"),
    ("remediation-window", lambda s: _remediation(s, alarm_window=(3, 3)), "alarm_window="),
    ("remediation-fleet", lambda s: _remediation(s, fleet="all"), "fleet='all'"),
    (
        "remediation-topic",
        lambda s: _remediation(s, topic="arn:aws:sns:eu-west-1:111111111111:oncall"),
        "sns.ITopic",
    ),
    ("remediation-key", lambda s: _remediation(s, encryption_key="alias/crashcart"), "kms.IKey"),
    ("remediation-bucket", lambda s: _remediation(s, dumps="my-dumps"), "CrashDumpBucket"),
    ("remediation-vpc", lambda s: _remediation(s, vpc="vpc-0123456789abcdef0"), "ec2.IVpc"),
    (
        "remediation-notifications",
        lambda s: _remediation(s, notifications="oncall@example.com"),
        "notifications='oncall@example.com'",
    ),
    (
        "remediation-notification-item",
        lambda s: _remediation(s, notifications=["oncall@example.com"]),
        "notifications[0]",
    ),
    ("bucket-key", lambda s: CrashDumpBucket(s, "D", encryption_key="alias/x"), "kms.IKey"),
    ("bucket-lifecycle", lambda s: CrashDumpBucket(s, "D", lifecycle=365), "DumpLifecycle"),
    ("bucket-roles", lambda s: CrashDumpBucket(s, "D", instance_roles=["role"]), "iam.IRole"),
    ("symbols-key", lambda s: DebugSymbolStore(s, "S", encryption_key="k"), "kms.IKey"),
    ("triage-incidents", lambda s: _triage(s, incidents="crashcart-incidents"), "IncidentStore"),
    ("triage-dumps", lambda s: _triage(s, dumps="bucket-name"), "CrashDumpBucket"),
    ("triage-size", lambda s: _triage(s, size={"cpu": 2048}), "TriageTaskSize"),
    ("triage-vpc", lambda s: _triage(s, vpc="vpc-1"), "ec2.IVpc"),
    ("sweep-incidents", lambda s: _sweep(s, incidents="incidents"), "IncidentStore"),
    ("store-table", lambda s: IncidentStore(s, "I", table="incidents"), "dynamodb.ITable"),
    ("store-topic", lambda s: IncidentStore(s, "I", topic="arn:aws:sns:x"), "sns.ITopic"),
    ("store-key", lambda s: IncidentStore(s, "I", encryption_key="alias/x"), "kms.IKey"),
    (
        "remediation-incidents",
        lambda s: _remediation(s, incidents="crashcart-incidents"),
        "IncidentStore",
    ),
    (
        "arrival-incidents",
        lambda s: CrashDumpBucket(s, "D").notify_incidents(incidents="t"),
        "IncidentStore",
    ),
    (
        "pipeline-kdump",
        lambda s: KdumpImagePipeline(s, "P", architecture="x86_64", kdump="256M"),
        "KdumpSettings",
    ),
    (
        "pipeline-topic",
        lambda s: KdumpImagePipeline(s, "P", architecture="x86_64", topic="arn:aws:sns:x"),
        "sns.ITopic",
    ),
    (
        "pipeline-distribution",
        lambda s: KdumpImagePipeline(s, "P", architecture="x86_64", distribution=["eu-west-2"]),
        "distribution[0]",
    ),
    (
        "operator-policy-tag",
        lambda s: DiagnosticInterruptOperatorPolicy(s, "Op", tag="crashcart:nmi"),
        "tag='crashcart:nmi'",
    ),
    (
        "operator-policy-roles",
        lambda s: DiagnosticInterruptOperatorPolicy(s, "Op", roles="OnCall"),
        "roles='OnCall'",
    ),
    (
        "grant-tag",
        lambda s: grant_diagnostic_interrupt(
            iam.Role(s, "R", assumed_by=iam.AccountRootPrincipal()), tag="x"
        ),
        "tag='x'",
    ),
    ("grant-grantee", lambda s: grant_diagnostic_interrupt("OnCall"), "iam.IGrantable"),
]


@pytest.mark.parametrize(
    ("build", "named"), [c[1:] for c in WRONG_TYPES], ids=[c[0] for c in WRONG_TYPES]
)
def test_fails_with_a_clear_error_for_a_prop_of_the_wrong_type(build: Build, named: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        build(_stack())
    message = str(raised.value)
    assert named in message, message
    assert "must be" in message, message


def test_the_error_names_the_construct_the_value_and_an_example() -> None:
    with pytest.raises(ConfigurationError) as raised:
        _remediation(_stack(), tag="crashcart:nmi")
    assert str(raised.value) == (
        "UnresponsiveInstanceRemediation tag='crashcart:nmi' (a str): must be an OptInTag, "
        "e.g. OptInTag(key='team:nmi', value='yes')"
    )


def test_imported_resources_and_proxies_are_accepted() -> None:
    """Imported topics, keys, buckets, roles and VPCs are jsii proxies: they pass the check."""
    stack = _stack()
    topic = sns.Topic.from_topic_arn(stack, "T", "arn:aws:sns:eu-west-1:111111111111:oncall")
    key = kms.Key.from_key_arn(
        stack, "K", "arn:aws:kms:eu-west-1:111111111111:key/0123abcd-0123-4567-89ab-0123456789ab"
    )
    bucket = s3.Bucket.from_bucket_name(stack, "B", "crashcart-evidence-example")
    role = iam.Role.from_role_arn(stack, "R", "arn:aws:iam::111111111111:role/on-call")
    vpc = ec2.Vpc.from_vpc_attributes(stack, "V", vpc_id="vpc-1", availability_zones=["a"])
    assert implements(topic, sns.ITopic) and implements(key, kms.IKey)
    assert implements(bucket, s3.IBucket) and implements(role, iam.IRole)
    assert implements(vpc, ec2.IVpc) and implements(role, iam.IGrantable)
    assert not implements(key, sns.ITopic) and not implements("x", sns.ITopic)
    assert not implements(OptInTag(), kms.IKey)
    UnresponsiveInstanceRemediation(
        stack,
        "Remediation",
        dumps=ExistingDumpBucket(bucket=bucket, encryption_key=key),
        fleet=FleetWatch(),
        topic=topic,
        encryption_key=key,
    )


# -- notifications as a prop ---------------------------------------------------------------


def test_notifications_subscribe_email_and_https_endpoints_to_the_topic() -> None:
    stack = _stack()
    remediation = _remediation(
        stack,
        notifications=[
            subscriptions.EmailSubscription("oncall@example.com"),
            subscriptions.UrlSubscription("https://chat-relay.example.com/crashcart"),
        ],
    )
    template = Template.from_stack(stack)
    found = template.find_resources("AWS::SNS::Subscription")
    assert sorted(
        (r["Properties"]["Protocol"], r["Properties"]["Endpoint"]) for r in found.values()
    ) == [
        ("email", "oncall@example.com"),
        ("https", "https://chat-relay.example.com/crashcart"),
    ]
    topic_ref = {"Ref": stack.get_logical_id(remediation.topic.node.default_child)}  # type: ignore[arg-type]
    assert all(r["Properties"]["TopicArn"] == topic_ref for r in found.values())
    assert len(remediation.subscriptions) == 2


def test_no_notifications_means_no_subscription() -> None:
    stack = _stack()
    remediation = _remediation(stack)
    Template.from_stack(stack).resource_count_is("AWS::SNS::Subscription", 0)
    assert remediation.subscriptions == []


# -- operator grants: customer managed policies ------------------------------------------


def _grants(stack: cdk.Stack, grantee: iam.IGrantable) -> UnresponsiveInstanceRemediation:
    remediation = _remediation(stack)
    first = remediation.grant_kill_switch(grantee)
    assert remediation.grant_kill_switch(grantee) is first  # idempotent per grantee
    remediation.grant_reset_breaker(grantee)
    return remediation


def test_grants_are_managed_policies_in_the_grantees_stack() -> None:
    app = new_app()
    stack = cdk.Stack(app, "Workload", env=env())
    people = cdk.Stack(app, "People", env=env())
    on_call = iam.Role(people, "OnCall", assumed_by=iam.AccountRootPrincipal())
    _grants(stack, on_call)
    template = Template.from_stack(people).to_json()
    kinds = sorted(r["Type"] for r in template["Resources"].values())
    assert kinds == ["AWS::IAM::ManagedPolicy", "AWS::IAM::ManagedPolicy", "AWS::IAM::Role"]
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::IAM::ManagedPolicy":
            assert resource["Properties"]["Roles"] == [
                {"Ref": people.get_logical_id(on_call.node.default_child)}  # type: ignore[arg-type]
            ]


@pytest.mark.parametrize("kind", ["user", "group", "imported-role", "function-role"])
def test_grants_attach_to_users_groups_and_imported_roles(kind: str) -> None:
    stack = _stack()
    grantee: iam.IGrantable
    if kind == "user":
        grantee = iam.User(stack, "Operator")
    elif kind == "group":
        grantee = iam.Group(stack, "Operators")
    elif kind == "imported-role":
        grantee = iam.Role.from_role_arn(stack, "Operator", "arn:aws:iam::111111111111:role/ops")
    else:
        grantee = iam.Role(stack, "Tool", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    _grants(stack, grantee)
    template = Template.from_stack(stack).to_json()
    policies = [
        r["Properties"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::IAM::ManagedPolicy"
        and r["Properties"]["Description"].startswith("crashcart: ")
    ]
    assert len(policies) == 2
    attached = {key for policy in policies for key in ("Roles", "Users", "Groups") if key in policy}
    assert attached == {"user": {"Users"}, "group": {"Groups"}}.get(kind, {"Roles"})
    if kind == "imported-role":
        assert all(policy["Roles"] == ["ops"] for policy in policies)


def test_a_grant_to_a_principal_without_identity_policy_is_refused() -> None:
    remediation = _remediation(_stack())
    with pytest.raises(ConfigurationError, match="not an IAM role, user or group"):
        remediation.grant_kill_switch(iam.AccountRootPrincipal())
    assert [s.sid for s in remediation.kill_switch_statements()] == ["CrashcartKillSwitch"]
    assert [s.sid for s in remediation.reset_breaker_statements()] == [
        "CrashcartResetBreaker",
        "CrashcartResetBreakerKey",
    ]


# -- the triage job in the user's own VPC --------------------------------------------------


def _vpc_with_public_subnets(stack: cdk.Stack) -> ec2.Vpc:
    return ec2.Vpc(
        stack,
        "Shared",
        max_azs=2,
        nat_gateways=1,
        subnet_configuration=[
            ec2.SubnetConfiguration(name="edge", subnet_type=ec2.SubnetType.PUBLIC),
            ec2.SubnetConfiguration(name="app", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            ec2.SubnetConfiguration(name="data", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED),
        ],
    )


def _network(template: dict[str, Any]) -> dict[str, Any]:
    (rule,) = [
        r
        for r in template["Resources"].values()
        if r["Type"] == "AWS::Events::Rule" and "EcsParameters" in json.dumps(r)
    ]
    network: dict[str, Any] = rule["Properties"]["Targets"][0]["EcsParameters"][
        "NetworkConfiguration"
    ]["AwsVpcConfiguration"]
    return network


@pytest.mark.parametrize(
    ("selection", "group"),
    [
        (None, "app"),
        (ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED), "data"),
        (ec2.SubnetSelection(subnet_group_name="data"), "data"),
    ],
    ids=["default-private-with-egress", "isolated", "by-group-name"],
)
def test_own_vpc_private_subnets_no_public_ip_no_endpoints_created(
    selection: ec2.SubnetSelection | None, group: str
) -> None:
    stack = _stack()
    vpc = _vpc_with_public_subnets(stack)
    _triage(stack, vpc=vpc, subnets=selection)
    template = Template.from_stack(stack).to_json()
    network = _network(template)
    assert network["AssignPublicIp"] == "DISABLED"
    chosen = json.dumps(network["Subnets"])
    assert f"Shared{group}Subnet" in chosen and "edge" not in chosen
    kinds = [r["Type"] for r in template["Resources"].values()]
    assert kinds.count("AWS::EC2::VPC") == 1  # the caller's, not a second one
    assert "AWS::EC2::VPCEndpoint" not in kinds  # the caller's VPC reaches the services


@pytest.mark.parametrize(
    "selection",
    [
        ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC),
        ec2.SubnetSelection(subnet_group_name="edge"),
    ],
    ids=["by-type", "by-group-name"],
)
def test_fails_for_public_subnets(selection: ec2.SubnetSelection) -> None:
    stack = _stack()
    vpc = _vpc_with_public_subnets(stack)
    with pytest.raises(ConfigurationError, match="private subnets"):
        _triage(stack, vpc=vpc, subnets=selection)


def _imported_vpc(stack: cdk.Stack) -> ec2.IVpc:
    return ec2.Vpc.from_vpc_attributes(
        stack,
        "Imported",
        vpc_id="vpc-0123456789abcdef0",
        availability_zones=["eu-west-1a"],
        public_subnet_ids=["subnet-0aaaaaaaaaaaaaaaa"],
        private_subnet_ids=["subnet-0bbbbbbbbbbbbbbbb"],
    )


def test_fails_for_public_subnets_listed_by_id_of_an_imported_vpc() -> None:
    stack = _stack()
    vpc = _imported_vpc(stack)
    public = ec2.Subnet.from_subnet_attributes(
        stack, "Listed", subnet_id="subnet-0aaaaaaaaaaaaaaaa", availability_zone="eu-west-1a"
    )
    with pytest.raises(ConfigurationError, match="subnet-0aaaaaaaaaaaaaaaa is a public subnet"):
        _triage(stack, vpc=vpc, subnets=ec2.SubnetSelection(subnets=[public]))
    private = _stack()
    _triage(private, vpc=_imported_vpc(private))  # its private subnet is fine
    assert "subnet-0bbbbbbbbbbbbbbbb" in json.dumps(
        _network(Template.from_stack(private).to_json())
    )


def test_a_vpc_without_the_default_subnet_type_says_what_to_pass() -> None:
    stack = _stack()
    vpc = ec2.Vpc(
        stack,
        "IsolatedOnly",
        max_azs=2,
        subnet_configuration=[
            ec2.SubnetConfiguration(name="data", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)
        ],
    )
    with pytest.raises(ConfigurationError, match="PRIVATE_ISOLATED"):
        _triage(stack, vpc=vpc)


def test_the_default_vpc_task_has_no_public_ip() -> None:
    job = triage_support.job_stack(cdk.App())
    network = _network(Template.from_stack(cdk.Stack.of(job)).to_json())
    assert network["AssignPublicIp"] == "DISABLED"
