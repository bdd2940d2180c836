"""The triage task's network: private subnets only, endpoints that reach only crashcart's own.

The task parses memory images written by instances (possibly hostile) with C code. Its own
VPC (the default) has private isolated subnets and no internet gateway, NAT or route out;
AWS is reached through VPC endpoints, and every endpoint carries a policy that allows only
crashcart's resources: the dump and symbol buckets (and the ECR layer bucket of the
Region, for image pulls), the incident table, the topic, the log group and the image
repository. A request to anything else - another account's bucket, a table or topic of an
attacker's - is refused at the endpoint, whatever credentials it is signed with
(aws-assumption: vpc-endpoint-policies). A VPC the caller gives is used as it is; its
endpoints and routes are the caller's (``docs/threat-model.md`` says what to check).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from crashcart.compliance import acknowledge
from crashcart.errors import ConfigurationError

ENDPOINT_SERVICES = {
    "EcrApi": ec2.InterfaceVpcEndpointAwsService.ECR,
    "EcrDocker": ec2.InterfaceVpcEndpointAwsService.ECR_DOCKER,
    "Logs": ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS,
    "Sns": ec2.InterfaceVpcEndpointAwsService.SNS,
}
NAG_PACKS_WITH_VPC_RULES = ("NIST.800.53.R5", "HIPAA.Security", "PCI.DSS.321")
#: ECR keeps image layers in this S3 bucket of each Region; Fargate fetches them through the
#: S3 gateway endpoint (aws-assumption: ecr-layers-through-s3-gateway).
ECR_LAYER_BUCKET = "prod-{region}-starport-layer-bucket"


def refuse_public_subnets(vpc: ec2.IVpc, selection: ec2.SubnetSelection) -> None:
    """The task parses untrusted memory images: never in a public subnet, where knowable.

    A selection by type ``PUBLIC``, or one that resolves to any of the VPC's known public
    subnets (by group name, or by listing them), is refused. Subnets the VPC does not
    describe (imported by id alone) cannot be judged at synth: the task still gets no public
    IP (``assign_public_ip=False``), and without one a public subnet gives it no route out
    (aws-assumption: fargate-public-subnet-no-public-ip).
    """
    if selection.subnet_type == ec2.SubnetType.PUBLIC:
        raise ConfigurationError(
            "DumpTriageJob subnets=SubnetSelection(subnet_type=PUBLIC): the triage task reads "
            "crash dumps (memory images holding keys, secrets and personal data) with C "
            "parsers; it runs only in private subnets. Use PRIVATE_WITH_EGRESS (NAT) or "
            "PRIVATE_ISOLATED subnets with VPC endpoints for S3, DynamoDB, ECR, CloudWatch "
            "Logs and SNS"
        )
    try:
        chosen = vpc.select_subnets(
            availability_zones=selection.availability_zones,
            one_per_az=selection.one_per_az,
            subnet_filters=selection.subnet_filters,
            subnet_group_name=selection.subnet_group_name,
            subnet_type=selection.subnet_type,
            subnets=selection.subnets,
        ).subnets
    except Exception as error:  # jsii raises RuntimeError("There are no 'Private' subnet ...")
        hint = ""
        if "subnet groups" in str(error):
            hint = (
                ". By default the task runs in the VPC's PRIVATE_WITH_EGRESS subnets; for a VPC "
                "with isolated subnets and VPC endpoints pass subnets=ec2.SubnetSelection("
                "subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)"
            )
        raise ConfigurationError(f"DumpTriageJob subnets: {_first_line(error)}{hint}") from None
    public = {subnet.node.path for subnet in vpc.public_subnets}
    public_ids = {
        subnet.subnet_id
        for subnet in vpc.public_subnets
        if not cdk.Token.is_unresolved(subnet.subnet_id)
    }
    for subnet in chosen:
        if subnet.node.path in public or subnet.subnet_id in public_ids:
            shown = (
                subnet.node.path if cdk.Token.is_unresolved(subnet.subnet_id) else subnet.subnet_id
            )
            raise ConfigurationError(
                f"DumpTriageJob subnets: {shown} "
                "is a public subnet of the VPC: the triage task reads crash dumps (memory "
                "images) and runs only in private subnets; select PRIVATE_WITH_EGRESS or "
                "PRIVATE_ISOLATED subnets"
            )


def _first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


@dataclass
class TriageEndpoints:
    """The endpoints of the triage VPC, by name; :meth:`restrict` gives each its policy."""

    gateways: dict[str, ec2.GatewayVpcEndpoint] = field(default_factory=dict)
    interfaces: dict[str, ec2.InterfaceVpcEndpoint] = field(default_factory=dict)

    def restrict(
        self,
        stack: cdk.Stack,
        *,
        s3_reads: list[str],
        s3_writes: list[str],
        table_arns: list[str],
        topic_arns: list[str],
        log_group_arns: list[str],
        repository_arns: list[str] | None,
    ) -> None:
        """Each endpoint allows exactly the calls the job makes, on crashcart's resources.

        ``repository_arns`` None (a caller's image): pulls from repositories of this account.
        """
        # aws-assumption: vpc-endpoint-policies
        this_account = {"StringEquals": {"aws:PrincipalAccount": stack.account}}
        layer_bucket = ECR_LAYER_BUCKET.format(region=stack.region)
        objects = self.gateways["S3"]
        objects.add_to_policy(
            _statement("CrashcartReads", ["s3:GetObject"], s3_reads, this_account)
        )
        objects.add_to_policy(
            _statement("CrashcartReports", ["s3:PutObject"], s3_writes, this_account)
        )
        objects.add_to_policy(
            _statement(
                # aws-assumption: ecr-layers-through-s3-gateway
                "EcrImageLayers",
                ["s3:GetObject"],
                [f"arn:{stack.partition}:s3:::{layer_bucket}/*"],
            )
        )
        self.gateways["DynamoDb"].add_to_policy(
            _statement(
                "CrashcartIncidentTable",
                ["dynamodb:Query", "dynamodb:UpdateItem"],
                table_arns,
                this_account,
            )
        )
        self.interfaces["Sns"].add_to_policy(
            _statement("CrashcartTopic", ["sns:Publish"], topic_arns, this_account)
        )
        self.interfaces["Logs"].add_to_policy(
            _statement(
                "CrashcartLogGroup",
                ["logs:CreateLogStream", "logs:PutLogEvents"],
                log_group_arns,
                this_account,
            )
        )
        pulls = [
            "ecr:BatchCheckLayerAvailability",
            "ecr:GetDownloadUrlForLayer",
            "ecr:BatchGetImage",
        ]
        repositories = repository_arns or [
            f"arn:{stack.partition}:ecr:{stack.region}:{stack.account}:repository/*"
        ]
        for name in ("EcrApi", "EcrDocker"):
            endpoint = self.interfaces[name]
            endpoint.add_to_policy(_statement("CrashcartImage", pulls, repositories, this_account))
            endpoint.add_to_policy(
                # ecr:GetAuthorizationToken has no resource-level permissions
                _statement("RegistryLogin", ["ecr:GetAuthorizationToken"], ["*"], this_account)
            )


def _statement(
    sid: str,
    actions: list[str],
    resources: list[str],
    conditions: dict[str, dict[str, str]] | None = None,
) -> iam.PolicyStatement:
    return iam.PolicyStatement(
        sid=sid,
        principals=[iam.AnyPrincipal()],
        actions=actions,
        resources=resources,
        conditions=conditions,
    )


def isolated_vpc(scope: Construct, flow_log_bucket: s3.IBucket) -> ec2.Vpc:
    """Two private isolated subnets; flow logs go to the dump bucket's access-log bucket."""
    vpc = ec2.Vpc(
        scope,
        "Vpc",
        max_azs=2,
        nat_gateways=0,
        subnet_configuration=[
            ec2.SubnetConfiguration(
                name="triage", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=24
            )
        ],
        restrict_default_security_group=False,
        # aws-assumption: vpc-flow-logs-to-s3
        flow_logs={
            "all": ec2.FlowLogOptions(
                destination=ec2.FlowLogDestination.to_s3(flow_log_bucket, "triage-vpc-flow-logs/"),
                traffic_type=ec2.FlowLogTrafficType.ALL,
            )
        },
    )
    for pack in NAG_PACKS_WITH_VPC_RULES:
        acknowledge(
            vpc,
            f"{pack}::{pack}-VPCDefaultSecurityGroupClosed",
            "nothing in this VPC uses its default security group (the task and the "
            "endpoints have their own); closing it needs a custom-resource Lambda",
        )
    return vpc


# aws-assumption: fargate-isolated-subnet-endpoints
def add_endpoints(
    scope: Construct, vpc: ec2.Vpc, task_security_group: ec2.ISecurityGroup
) -> TriageEndpoints:
    """Gateway endpoints for S3 and DynamoDB; interface endpoints open to the task only."""
    found = TriageEndpoints()
    found.gateways["S3"] = vpc.add_gateway_endpoint(
        "S3", service=ec2.GatewayVpcEndpointAwsService.S3
    )
    found.gateways["DynamoDb"] = vpc.add_gateway_endpoint(
        "DynamoDb", service=ec2.GatewayVpcEndpointAwsService.DYNAMODB
    )
    endpoints = ec2.SecurityGroup(
        scope,
        "EndpointSecurityGroup",
        vpc=vpc,
        description="crashcart triage VPC endpoints: HTTPS from the triage task only",
        allow_all_outbound=False,
    )
    endpoints.add_ingress_rule(task_security_group, ec2.Port.tcp(443), "HTTPS from the triage task")
    for name, service in ENDPOINT_SERVICES.items():
        found.interfaces[name] = vpc.add_interface_endpoint(
            name,
            service=service,
            private_dns_enabled=True,
            security_groups=[endpoints],
            open=False,
        )
    return found
