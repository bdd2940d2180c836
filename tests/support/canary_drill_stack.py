"""A stack with a canary drill wired to a pipeline, an incident store and a VPC (synth only)."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3

from crashcart.constructs.canary_crash_drill import CanaryCrashDrill
from crashcart.constructs.incident_store import IncidentStore
from crashcart.constructs.kdump_image_pipeline import KdumpImagePipeline
from tests.conftest import TEST_ACCOUNT, TEST_REGION


def drill_stack(
    app: cdk.App, *, pipeline_props: dict[str, Any] | None = None, **drill_props: Any
) -> tuple[cdk.Stack, CanaryCrashDrill]:
    stack = cdk.Stack(
        app, "DrillStack", env=cdk.Environment(account=TEST_ACCOUNT, region=TEST_REGION)
    )
    pipeline = KdumpImagePipeline(
        stack, "Pipeline", **{"architecture": "x86_64", **(pipeline_props or {})}
    )
    incidents = IncidentStore(stack, "Incidents")
    # Imported stand-ins: the drill is what is under test, not a VPC or a bucket.
    vpc = ec2.Vpc.from_vpc_attributes(
        stack, "Vpc", vpc_id="vpc-0123456789abcdef0", availability_zones=[f"{TEST_REGION}a"]
    )
    subnet = ec2.Subnet.from_subnet_attributes(
        stack, "Subnet", subnet_id="subnet-0123456789abcdef0", availability_zone=f"{TEST_REGION}a"
    )
    role = iam.Role.from_role_arn(
        stack, "WorkloadRole", f"arn:aws:iam::{TEST_ACCOUNT}:role/crashcart-workload", mutable=False
    )
    dumps = s3.Bucket.from_bucket_name(stack, "Dumps", "crashcart-dumps-example")
    drill = CanaryCrashDrill(
        stack,
        "CanaryDrill",
        pipeline=pipeline,
        incidents=incidents,
        subnet=subnet,
        vpc=vpc,
        instance_role=role,
        dump_bucket=dumps,
        **drill_props,
    )
    return stack, drill
