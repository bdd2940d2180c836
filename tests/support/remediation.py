"""Helpers for the remediation infra and compliance tests (a plain module, not fixtures)."""

from __future__ import annotations

import json
from types import ModuleType
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3

from tests.conftest import REPO_ROOT, TEST_ACCOUNT, TEST_REGION

#: Context flags of cdk.json that CDK v2 rejects (they only existed in v1).
_REMOVED_FLAGS = {"@aws-cdk/core:enableStackNameDuplicates"}

INSTANCE_IDS = ("i-0123456789abcdef0", "i-0123456789abcdef1")


def app_context() -> dict[str, Any]:
    """The feature flags of cdk.json, so tests synthesize what `cdk synth` deploys."""
    context: dict[str, Any] = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]
    return {key: value for key, value in context.items() if key not in _REMOVED_FLAGS}


def new_app(outdir: str | None = None) -> cdk.App:
    return cdk.App(outdir=outdir, context=app_context())


def env() -> cdk.Environment:
    return cdk.Environment(account=TEST_ACCOUNT, region=TEST_REGION)


def evidence_bucket(stack: cdk.Stack) -> tuple[s3.Bucket, kms.Key]:
    key = kms.Key(stack, "EvidenceKey", enable_key_rotation=True)
    bucket = s3.Bucket(
        stack,
        "Evidence",
        encryption=s3.BucketEncryption.KMS,
        encryption_key=key,
        enforce_ssl=True,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
    )
    return bucket, key


def imported_vpc(stack: cdk.Stack) -> ec2.IVpc:
    """A VPC known by attributes: no context lookup, no network."""
    return ec2.Vpc.from_vpc_attributes(
        stack,
        "Vpc",
        vpc_id="vpc-0123456789abcdef0",
        availability_zones=["eu-west-1a", "eu-west-1b"],
        private_subnet_ids=["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
        private_subnet_route_table_ids=["rtb-0123456789abcdef0", "rtb-0123456789abcdef1"],
    )


def load_runtime_settings() -> ModuleType:
    """The remediation function's settings module."""
    from crashcart.functions.remediation import settings

    return settings


def resources_of(template: dict[str, Any], resource_type: str) -> dict[str, Any]:
    return {
        logical: resource
        for logical, resource in template["Resources"].items()
        if resource["Type"] == resource_type
    }


def only(template: dict[str, Any], resource_type: str) -> tuple[str, dict[str, Any]]:
    found = resources_of(template, resource_type)
    assert len(found) == 1, f"expected one {resource_type}, found {sorted(found)}"
    return next(iter(found.items()))
