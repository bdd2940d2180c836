"""Constructs that log bucket access synthesize in an app without cdk.json's feature flags.

A user's app has its own cdk.json (or none). S3 server access logging falls back to the
legacy ``LogDeliveryWrite`` ACL unless ``@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy`` is
set, and that ACL cannot coexist with ``BucketOwnerEnforced``: synthesis fails. Each construct
that creates a logged bucket sets the flag on its own node, so it works in a bare
``cdk.App()``; these tests use no ``app_context()`` on purpose.
"""

from __future__ import annotations

from collections.abc import Callable

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

from crashcart import (
    CrashDumpBucket,
    DebugSymbolStore,
    OrganisationAssetBucket,
    OrganisationCentral,
)
from tests.conftest import TEST_ACCOUNT, TEST_REGION

ORGANISATION = "o-a1b2c3d4e5"

BUILDERS: dict[str, Callable[[cdk.Stack], object]] = {
    "OrganisationAssetBucket": lambda stack: OrganisationAssetBucket(
        stack,
        "Assets",
        bucket_prefix=f"crashcart-assets-{TEST_ACCOUNT}",
        organisation_id=ORGANISATION,
    ),
    "OrganisationCentral": lambda stack: OrganisationCentral(
        stack, "Central", organisation_id=ORGANISATION
    ),
    "CrashDumpBucket": lambda stack: CrashDumpBucket(stack, "Dumps"),
    "DebugSymbolStore": lambda stack: DebugSymbolStore(stack, "Symbols"),
}


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_synthesizes_without_the_apps_feature_flags(name: str) -> None:
    app = cdk.App()  # no context: not even cdk.json's flags
    stack = cdk.Stack(app, "Bare", env=cdk.Environment(account=TEST_ACCOUNT, region=TEST_REGION))
    BUILDERS[name](stack)
    buckets = Template.from_stack(stack).find_resources("AWS::S3::Bucket")
    logged = [b for b in buckets.values() if "LoggingConfiguration" in b.get("Properties", {})]
    assert logged, f"{name}: expected at least one bucket with server access logging"
    for bucket in buckets.values():
        props = bucket.get("Properties", {})
        assert "AccessControl" not in props, (name, props.get("AccessControl"))
        assert props["OwnershipControls"] == {
            "Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]
        }, name
