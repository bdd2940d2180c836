"""``make integ``: deploy crashcart to a sandbox account, build an AMI, drill it, check, destroy.

A CDK integ test (``aws_cdk.integ_tests_alpha``): the stack under test holds the whole loop
with the interrupt armed (a pipeline, the dump bucket, the remediation for opted-in
instances, the canary drill in a VPC of its own); the assertion stack, deployed after it,
runs the checks as custom resources, so a failed check fails the deployment:

1. start an Image Builder build and wait until the image is AVAILABLE (aws-assumptions:
   ``imagebuilder-distribution-settings``; the candidate parameter written);
2. the candidate parameter's change starts a drill (``ssm-parameter-store-change-events``);
   the test also starts one on demand for the new AMI and waits for SUCCEEDED: a canary
   booted, attested (``attestation-self-tag``), hung, was interrupted by the real alarm and
   guards, shipped its dump under the key form the dump-arrival function parses
   (``s3-event-key-encoding``) with the NMI panic in its summary, and was terminated
   (``sfn-service-integrations``, ``ec2-resource-tag-terminate``);
3. the verified parameter names the AMI and the AMI is tagged verified
   (``ssm-ec2-image-parameter``, ``ec2-tag-on-create-conditions`` held for the launch).

Run with your own credentials (``make integ``); it costs an image build (about 45 minutes of
a build instance), two canaries for about half an hour and a NAT gateway for the duration.
Everything is destroyed afterwards, the retained tables, keys and buckets excepted
(docs/operations.md: removal).
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import integ_tests_alpha as integ

from crashcart import OptInTag
from crashcart.constructs import (
    CanaryCrashDrill,
    CrashDumpBucket,
    FleetWatch,
    KdumpImagePipeline,
    UnresponsiveInstanceRemediation,
)

#: How long the checks may wait: a build, then a drill.
BUILD_WAIT = cdk.Duration.hours(2)
DRILL_WAIT = cdk.Duration.hours(2)


def build(app: cdk.App) -> integ.IntegTest:
    """The stack under test and its assertions (synthesized offline by ``make test``)."""
    stack = cdk.Stack(app, "CrashcartIntegCanaryDrill")
    tag = OptInTag()
    vpc = ec2.Vpc(
        stack,
        "Vpc",
        max_azs=1,
        nat_gateways=1,
        subnet_configuration=[
            ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC),
            ec2.SubnetConfiguration(
                name="canaries", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS
            ),
        ],
    )
    pipeline = KdumpImagePipeline(stack, "Images", architecture="x86_64")
    workload_role = iam.Role(
        stack,
        "WorkloadRole",
        assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
        managed_policies=[
            iam.ManagedPolicy.from_aws_managed_policy_name("AmazonSSMManagedInstanceCore")
        ],
    )
    dumps = CrashDumpBucket(stack, "Dumps", instance_roles=[workload_role])
    remediation = UnresponsiveInstanceRemediation(
        stack,
        "Remediation",
        fleet=FleetWatch(),
        tag=tag,
        dumps=dumps,
        dry_run=False,  # the drill needs the real interrupt
    )
    dumps.notify_incidents(incidents=remediation.incidents)
    drill = CanaryCrashDrill(
        stack,
        "CanaryDrill",
        pipeline=pipeline,
        incidents=remediation.incidents,
        subnet=vpc.private_subnets[0],
        vpc=vpc,
        instance_role=workload_role,
        dump_bucket=dumps.bucket,
        tag=tag,
    )

    test = integ.IntegTest(
        app,
        "CanaryDrillInteg",
        test_cases=[stack],
        diff_assets=False,
    )
    checks = test.assertions
    build_started = checks.aws_api_call(
        "Imagebuilder",
        "startImagePipelineExecution",
        {"imagePipelineArn": pipeline.pipeline_arn, "clientToken": "crashcart-integ"},
    )
    image = checks.aws_api_call(
        "Imagebuilder",
        "getImage",
        {"imageBuildVersionArn": build_started.get_att_string("imageBuildVersionArn")},
    )
    image.expect(
        integ.ExpectedResult.object_like({"image": {"state": {"status": "AVAILABLE"}}})
    ).wait_for_assertions(total_timeout=BUILD_WAIT, interval=cdk.Duration.minutes(5))
    ami_id = image.get_att_string("image.outputResources.amis.0.image")
    started = checks.aws_api_call(
        "SFN",
        "startExecution",
        {
            "stateMachineArn": drill.state_machine.state_machine_arn,
            "input": cdk.Fn.join("", ['{"source":"on-demand","ami_id":"', ami_id, '"}']),
        },
    )
    started.node.add_dependency(image)
    checks.aws_api_call(
        "SFN", "describeExecution", {"executionArn": started.get_att_string("executionArn")}
    ).expect(integ.ExpectedResult.object_like({"status": "SUCCEEDED"})).wait_for_assertions(
        total_timeout=DRILL_WAIT, interval=cdk.Duration.minutes(2)
    )
    verified = checks.aws_api_call("SSM", "getParameter", {"Name": drill.verified_parameter_name})
    verified.expect(integ.ExpectedResult.object_like({"Parameter": {"Value": ami_id}}))
    verified.node.add_dependency(started)
    return test


def main() -> None:
    app = cdk.App()
    build(app)
    app.synth()


if __name__ == "__main__":
    main()
