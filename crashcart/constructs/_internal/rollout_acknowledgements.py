"""The reviewed compliance acknowledgements of the StackSet asset copies.

The copies are CDK's ``BucketDeployment``: one custom resource per Region and one singleton
function (with its role, inline policy and log group) per deploying stack, all defined by
aws-cdk-lib. The function copies zip files of Lambda code from the bootstrap bucket to the
per-Region asset buckets at deploy time and does nothing else; its findings are acknowledged on
that singleton (the narrowest construct that has them), each with its reason.
"""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from constructs import Construct, IConstruct

from crashcart.compliance import acknowledge_all, skip_checkov
from crashcart.constructs.diagnostic_interrupt_operator_policy import nag_rendering

#: The id prefix of BucketDeployment's singleton handler in the stack.
HANDLER_ID_PREFIX = "Custom::CDKBucketDeployment"

_NOT_IN_VPC = (
    "the copy function calls only S3 (regional endpoints) during a deployment; it holds "
    "no data but zip files of crashcart's open-source function code"
)
_RUNS_PER_DEPLOYMENT = (
    "CloudFormation invokes the copy function synchronously, once per deployment and "
    "Region, and reports its failure as the deployment's failure: there is no event to keep"
)


def acknowledge_asset_copies(deploying: cdk.Stack, copies: Construct) -> None:
    """Acknowledge the findings of the copies' singleton function and its role."""
    handlers = [
        child for child in deploying.node.children if child.node.id.startswith(HANDLER_ID_PREFIX)
    ]
    # the imported buckets (bootstrap and per-Region asset buckets): jsii hands them over as
    # interface proxies, so they are told by their attributes
    buckets: list[Any] = [
        child for child in copies.node.find_all() if hasattr(child, "arn_for_objects")
    ]
    for handler in handlers:
        _acknowledge_handler(deploying, handler, buckets)


def _acknowledge_handler(deploying: cdk.Stack, handler: IConstruct, buckets: list[Any]) -> None:
    findings = {
        "AwsSolutions::AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/"
        "service-role/AWSLambdaBasicExecutionRole]": "aws-cdk-lib's BucketDeployment gives "
        "its function the AWS managed basic execution role (its own log group only)",
        "AwsSolutions::AwsSolutions-L1": "the copy function's runtime is chosen by "
        "aws-cdk-lib's BucketDeployment and moves with aws-cdk-lib upgrades",
        "Serverless::Serverless-LambdaLatestVersion": "the copy function's runtime is chosen "
        "by aws-cdk-lib's BucketDeployment and moves with aws-cdk-lib upgrades",
        "Serverless::Serverless-LambdaTracing": "the copy function runs once per deployment "
        "and Region; CloudFormation's events and the function's log trace it",
        "NIST.800.53.R5::NIST.800.53.R5-IAMNoInlinePolicy": "aws-cdk-lib's BucketDeployment "
        "grants its function the bucket rights inline, on its own role only",
        "HIPAA.Security::HIPAA.Security-IAMNoInlinePolicy": "aws-cdk-lib's BucketDeployment "
        "grants its function the bucket rights inline, on its own role only",
        "PCI.DSS.321::PCI.DSS.321-IAMNoInlinePolicy": "aws-cdk-lib's BucketDeployment grants "
        "its function the bucket rights inline, on its own role only",
        "NIST.800.53.R5::NIST.800.53.R5-LambdaDLQ": _RUNS_PER_DEPLOYMENT,
        "HIPAA.Security::HIPAA.Security-LambdaDLQ": _RUNS_PER_DEPLOYMENT,
        "NIST.800.53.R5::NIST.800.53.R5-LambdaConcurrency": _RUNS_PER_DEPLOYMENT,
        "HIPAA.Security::HIPAA.Security-LambdaConcurrency": _RUNS_PER_DEPLOYMENT,
        "NIST.800.53.R5::NIST.800.53.R5-LambdaInsideVPC": _NOT_IN_VPC,
        "HIPAA.Security::HIPAA.Security-LambdaInsideVPC": _NOT_IN_VPC,
        "PCI.DSS.321::PCI.DSS.321-LambdaInsideVPC": _NOT_IN_VPC,
    }
    for pack in ("NIST.800.53.R5", "HIPAA.Security", "PCI.DSS.321"):
        findings[f"{pack}::{pack}-CloudWatchLogGroupEncrypted"] = (
            "the copy function's log holds object keys of crashcart's function code and S3 "
            "command output, nothing secret; CloudWatch Logs encrypts it at rest"
        )
    for action in ("s3:Abort*", "s3:DeleteObject*", "s3:GetBucket*", "s3:GetObject*", "s3:List*"):
        findings[f"AwsSolutions::AwsSolutions-IAM5[Action::{action}]"] = (
            "aws-cdk-lib's BucketDeployment grants read on the bootstrap bucket and "
            "read-write on the asset buckets by action groups; with prune=False and "
            "retain_on_delete=True it only ever copies objects in"
        )
    for bucket in buckets:
        rendered = nag_rendering(deploying.resolve(bucket.arn_for_objects("*")))
        if rendered is not None:
            findings[f"AwsSolutions::AwsSolutions-IAM5[Resource::{rendered}]"] = (
                "the copies read any asset of the bootstrap bucket and write any key of the "
                "asset buckets: asset keys are content hashes, known only at synth"
            )
    acknowledge_all(handler, findings)
    _skip_checkov(handler)


def _skip_checkov(handler: IConstruct) -> None:
    functions = "AWS::Lambda::Function"
    skip_checkov(
        handler,
        "CKV_AWS_173",
        "the copy function's environment holds no secret: aws-cdk-lib sets none but the CLI's",
        resource_type=functions,
    )
    log_groups = [
        child
        for child in handler.node.find_all()
        if isinstance(child, cdk.CfnResource) and child.cfn_resource_type == "AWS::Logs::LogGroup"
    ]
    if log_groups:  # aws-cdk-lib creates one only under some feature flags
        skip_checkov(
            handler,
            "CKV_AWS_158",
            "the copy function's log holds object keys of crashcart's function code and S3 "
            "command output, nothing secret; CloudWatch Logs encrypts it at rest",
            resource_type="AWS::Logs::LogGroup",
        )
