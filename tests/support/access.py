"""Helpers for the access (IAM) tests: policies out of templates, as plain strings.

- :func:`resolve_intrinsics` turns CloudFormation intrinsics inside ARNs (``Fn::Join``,
  ``Ref AWS::Partition`` ...) into plain strings so that parliament can parse them.
- :func:`policies_in_template` lists every IAM policy document of a template.
- :func:`parliament_findings` runs parliament on one document (offline).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from typing import Any

from tests.conftest import TEST_ACCOUNT, TEST_REGION

PSEUDO_PARAMETERS = {
    "AWS::Partition": "aws",
    "AWS::Region": TEST_REGION,
    "AWS::AccountId": TEST_ACCOUNT,
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::StackName": "teststack",
    "AWS::StackId": f"arn:aws:cloudformation:{TEST_REGION}:{TEST_ACCOUNT}:stack/teststack/1",
    "AWS::NoValue": "",
}

#: ARN patterns for ``Fn::GetAtt [<logical id>, Arn]`` / ``Ref`` of resources, by type.
_ARN_BY_TYPE = {
    "AWS::S3::Bucket": "arn:aws:s3:::{name}",
    "AWS::SQS::Queue": f"arn:aws:sqs:{TEST_REGION}:{TEST_ACCOUNT}:{{name}}",
    "AWS::SNS::Topic": f"arn:aws:sns:{TEST_REGION}:{TEST_ACCOUNT}:{{name}}",
    "AWS::KMS::Key": f"arn:aws:kms:{TEST_REGION}:{TEST_ACCOUNT}:key/{{name}}",
    "AWS::DynamoDB::Table": f"arn:aws:dynamodb:{TEST_REGION}:{TEST_ACCOUNT}:table/{{name}}",
    "AWS::Lambda::Function": f"arn:aws:lambda:{TEST_REGION}:{TEST_ACCOUNT}:function:{{name}}",
    "AWS::IAM::Role": f"arn:aws:iam::{TEST_ACCOUNT}:role/{{name}}",
    "AWS::SSM::Parameter": f"arn:aws:ssm:{TEST_REGION}:{TEST_ACCOUNT}:parameter/{{name}}",
    "AWS::Logs::LogGroup": f"arn:aws:logs:{TEST_REGION}:{TEST_ACCOUNT}:log-group:{{name}}",
    "AWS::Events::Rule": f"arn:aws:events:{TEST_REGION}:{TEST_ACCOUNT}:rule/{{name}}",
    "AWS::CloudWatch::Alarm": f"arn:aws:cloudwatch:{TEST_REGION}:{TEST_ACCOUNT}:alarm:{{name}}",
}


def resolve_intrinsics(value: Any, resources: dict[str, Any] | None = None) -> Any:
    """``value`` with ``Fn::Join`` / ``Fn::Sub`` / ``Ref`` / ``Fn::GetAtt`` made plain strings.

    Pseudo parameters become the test account / region and partition ``aws``; a reference to
    a resource of ``resources`` (the template's Resources) becomes a plausible ARN or name of
    its type.
    """
    resources = resources or {}
    if isinstance(value, list):
        return [resolve_intrinsics(item, resources) for item in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        ((function, argument),) = value.items()
        if function == "Ref":
            if argument in PSEUDO_PARAMETERS:
                return PSEUDO_PARAMETERS[argument]
            return _reference(argument, "Ref", resources)
        if function == "Fn::GetAtt":
            logical_id, attribute = (
                argument if isinstance(argument, list) else argument.split(".", 1)
            )
            return _reference(logical_id, attribute, resources)
        if function == "Fn::Join":
            separator, parts = argument
            return separator.join(str(resolve_intrinsics(part, resources)) for part in parts)
        if function == "Fn::Sub":
            text = argument if isinstance(argument, str) else argument[0]
            for name, plain in PSEUDO_PARAMETERS.items():
                text = text.replace("${" + name + "}", plain)
            return text
        if function == "Fn::Select":
            index, items = argument
            return resolve_intrinsics(items, resources)[int(index)]
        if function == "Fn::Split":
            separator, text = argument
            return str(resolve_intrinsics(text, resources)).split(separator)
        if function == "Fn::ImportValue":
            return "imported"
    return {key: resolve_intrinsics(item, resources) for key, item in value.items()}


def _reference(logical_id: str, attribute: str, resources: dict[str, Any]) -> str:
    resource_type = resources.get(logical_id, {}).get("Type", "")
    name = logical_id.lower()
    pattern = _ARN_BY_TYPE.get(resource_type)
    if attribute in ("Arn", "Ref") and pattern is not None:
        arn = pattern.format(name=name)
        if attribute == "Ref" and resource_type in ("AWS::SQS::Queue",):
            return f"https://sqs.{TEST_REGION}.amazonaws.com/{TEST_ACCOUNT}/{name}"
        if attribute == "Ref" and resource_type not in ("AWS::SNS::Topic",):
            return name
        return arn
    return name


def policies_in_template(template: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """``(logical id, kind, resolved policy document)`` for every policy in ``template``.

    Kinds: ``identity`` (AWS::IAM::Policy, AWS::IAM::ManagedPolicy, inline role policies),
    ``trust`` (role trust policies) and ``resource`` (bucket, queue, topic and key policies).
    """
    resources: dict[str, Any] = template.get("Resources", {})
    for logical_id, resource in resources.items():
        properties = resource.get("Properties", {})
        kind = resource.get("Type")
        documents: list[tuple[str, Any]] = []
        if kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            documents.append(("identity", properties["PolicyDocument"]))
        elif kind == "AWS::IAM::Role":
            documents.append(("trust", properties["AssumeRolePolicyDocument"]))
            documents.extend(
                ("identity", inline["PolicyDocument"]) for inline in properties.get("Policies", [])
            )
        elif kind in ("AWS::S3::BucketPolicy", "AWS::SQS::QueuePolicy", "AWS::SNS::TopicPolicy"):
            documents.append(("resource", properties["PolicyDocument"]))
        elif kind == "AWS::KMS::Key":
            documents.append(("resource", properties["KeyPolicy"]))
        for document_kind, document in documents:
            yield logical_id, document_kind, resolve_intrinsics(document, resources)


def parliament_findings(document: dict[str, Any]) -> list[str]:
    """parliament's findings on ``document`` as ``"ISSUE - detail"`` strings (offline)."""
    from parliament import analyze_policy_string  # type: ignore[import-untyped]

    policy = analyze_policy_string(
        json.dumps(document),
        ignore_private_auditors=True,
        include_community_auditors=False,
    )
    return [f"{finding.issue} - {finding.detail}" for finding in policy.findings]


@functools.cache
def access_templates() -> dict[str, dict[str, Any]]:
    """Templates (by stack name) of every IAM shape the access area synthesizes.

    Built once per test session: the access stack pinned to the test environment and
    environment-agnostic with MFA, and a role granted the interrupt for two regions and a
    custom tag. No cdk-nag here (Template assertions and policy checks only).
    """
    import aws_cdk as cdk
    from aws_cdk import aws_iam as iam

    from crashcart.constructs import grant_diagnostic_interrupt
    from crashcart.opt_in import OptInTag
    from crashcart.stacks.access import CrashcartAccessStack

    app = cdk.App()
    env = cdk.Environment(account=TEST_ACCOUNT, region=TEST_REGION)
    stacks: list[cdk.Stack] = [
        CrashcartAccessStack(app, "AccessPinned", env=env),
        CrashcartAccessStack(app, "AccessAgnosticMfa", require_mfa=True),
    ]
    granted = cdk.Stack(app, "Granted", env=env)
    role = iam.Role(granted, "Remediation", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    grant_diagnostic_interrupt(
        role, tag=OptInTag(key="team:nmi", value="yes"), regions=[TEST_REGION, "us-east-1"]
    )
    stacks.append(granted)
    assembly = app.synth()
    return {
        stack.stack_name: assembly.get_stack_by_name(stack.stack_name).template for stack in stacks
    }


def access_policies() -> list[tuple[str, str, dict[str, Any]]]:
    """``(stack/logical id, kind, resolved document)`` of every access policy."""
    return [
        (f"{stack}/{logical_id}", kind, document)
        for stack, template in access_templates().items()
        for logical_id, kind, document in policies_in_template(template)
    ]


PARTITION_JOIN = {"Ref": "AWS::Partition"}


def instance_arn(region: Any, account: Any) -> dict[str, Any]:
    """The Fn::Join CDK renders for arn:${AWS::Partition}:ec2:<region>:<account>:instance/*."""
    if isinstance(region, str) and isinstance(account, str):
        return {"Fn::Join": ["", ["arn:", PARTITION_JOIN, f":ec2:{region}:{account}:instance/*"]]}
    return {
        "Fn::Join": [
            "",
            ["arn:", PARTITION_JOIN, ":ec2:", region, ":", account, ":instance/*"],
        ]
    }
