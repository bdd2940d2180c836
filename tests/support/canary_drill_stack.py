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


def drill_stack(app: cdk.App, **drill_props: Any) -> tuple[cdk.Stack, CanaryCrashDrill]:
    stack = cdk.Stack(
        app, "DrillStack", env=cdk.Environment(account=TEST_ACCOUNT, region=TEST_REGION)
    )
    pipeline = KdumpImagePipeline(stack, "Pipeline", architecture="x86_64")
    incidents = IncidentStore(stack, "Incidents")
    vpc = ec2.Vpc(stack, "Vpc", max_azs=1, nat_gateways=0, subnet_configuration=[
        ec2.SubnetConfiguration(name="canaries", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)
    ])
    role = iam.Role(stack, "WorkloadRole", assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"))
    dumps = s3.Bucket(stack, "Dumps")
    drill = CanaryCrashDrill(
        stack,
        "CanaryDrill",
        pipeline=pipeline,
        incidents=incidents,
        subnet=vpc.isolated_subnets[0],
        vpc=vpc,
        instance_role=role,
        dump_bucket=dumps,
        **drill_props,
    )
    return stack, drill
