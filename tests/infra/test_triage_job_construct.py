"""DumpTriageJob's template: what runs, when, where, with which permissions."""

from __future__ import annotations

import json
import re
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_ec2 as ec2
from aws_cdk.assertions import Match, Template

from crashcart.constructs.dump_triage_job import DumpTriageJob, TriageTaskSize
from crashcart.errors import ConfigurationError
from tests.support import triage_job as support


@pytest.fixture(scope="module")
def template() -> Template:
    job = support.job_stack(cdk.App())
    return Template.from_stack(cdk.Stack.of(job))


def _one(template: Template, kind: str, props: dict[str, Any] | None = None) -> dict[str, Any]:
    found = template.find_resources(kind, {"Properties": props} if props else None)
    assert len(found) == 1, (kind, list(found))
    return dict(next(iter(found.values()))["Properties"])


def _policy(template: Template, description_start: str) -> list[dict[str, Any]]:
    for resource in template.find_resources("AWS::IAM::ManagedPolicy").values():
        if resource["Properties"]["Description"].startswith(description_start):
            return list(resource["Properties"]["PolicyDocument"]["Statement"])
    raise AssertionError(f"no managed policy described {description_start!r}")


def test_the_task_is_sized_for_a_dump_and_runs_read_only_with_few_capabilities(
    template: Template,
) -> None:
    task = _one(template, "AWS::ECS::TaskDefinition")
    assert (task["Cpu"], task["Memory"]) == ("1024", "4096")
    assert task["EphemeralStorage"] == {"SizeInGiB": 100}
    assert task["RequiresCompatibilities"] == ["FARGATE"]
    assert task["RuntimePlatform"] == {
        "CpuArchitecture": "X86_64",
        "OperatingSystemFamily": "LINUX",
    }
    (container,) = task["ContainerDefinitions"]
    assert container["ReadonlyRootFilesystem"] is True
    # root for the supervisor, which starts the parser as uid 65534 without credentials
    # (issue 22); every capability that switch does not need is dropped
    assert container["User"] == "0:0"
    assert sorted(container["LinuxParameters"]["Capabilities"]["Drop"]) == [
        "AUDIT_WRITE",
        "FSETID",
        "MKNOD",
        "NET_BIND_SERVICE",
        "NET_RAW",
        "SETFCAP",
        "SETPCAP",
        "SYS_CHROOT",
    ]
    assert "Add" not in container["LinuxParameters"]["Capabilities"]
    assert container["MountPoints"] == [
        {"ContainerPath": "/scratch", "ReadOnly": False, "SourceVolume": "scratch"}
    ]
    env = {item["Name"]: item["Value"] for item in container["Environment"]}
    assert env["CRASHCART_WORK_DIR"] == env["TMPDIR"] == "/scratch"
    assert env["CRASHCART_TIMEOUT_SECONDS"] == "3600"
    assert env["CRASHCART_TASK_MEMORY_MIB"] == "4096"  # sizes the parser's memory limit
    assert "CRASHCART_PARSER_USER" not in env  # the parser runs as 65534, isolated
    assert not [name for name in env if name.startswith("AWS_")]
    assert "CRASHCART_SYMBOL_BUCKET" not in env  # no store given
    assert "CRASHCART_METADATA_KEY" not in env  # comes from each event
    assert container["LogConfiguration"]["LogDriver"] == "awslogs"


def test_every_shipped_dump_starts_one_task_with_its_key(template: Template) -> None:
    rule = _one(
        template,
        "AWS::Events::Rule",
        {"Description": Match.string_like_regexp("full triage")},
    )
    assert rule["EventPattern"]["detail"]["object"] == {
        "key": [{"wildcard": "dumps/*/*/metadata.json"}]
    }
    (target,) = rule["Targets"]
    ecs = target["EcsParameters"]
    assert ecs["LaunchType"] == "FARGATE" and ecs["TaskCount"] == 1
    assert ecs["NetworkConfiguration"]["AwsVpcConfiguration"]["AssignPublicIp"] == "DISABLED"
    assert target["RetryPolicy"] == {"MaximumEventAgeInSeconds": 21600, "MaximumRetryAttempts": 8}
    assert "DeadLetterConfig" in target
    transformer = target["InputTransformer"]
    assert transformer["InputPathsMap"] == {"detail-object-key": "$.detail.object.key"}
    overrides = json.loads(transformer["InputTemplate"].replace("<detail-object-key>", '"K"'))
    assert overrides == {
        "containerOverrides": [
            {"name": "triage", "environment": [{"name": "CRASHCART_METADATA_KEY", "value": "K"}]}
        ]
    }


def test_failed_runs_are_kept_and_alarm(template: Template) -> None:
    rule = _one(template, "AWS::Events::Rule", {"Description": Match.string_like_regexp("stopped")})
    detail = rule["EventPattern"]["detail"]
    assert detail["lastStatus"] == ["STOPPED"]
    assert detail["$or"] == [
        {"containers": {"exitCode": [{"anything-but": 0}]}},
        {"stopCode": [{"anything-but": "EssentialContainerExited"}]},
    ]
    alarms = template.find_resources("AWS::CloudWatch::Alarm")
    assert len(alarms) == 4
    queue_alarms = [
        a["Properties"] for a in alarms.values() if a["Properties"]["Namespace"] == "AWS/SQS"
    ]
    assert len(queue_alarms) == 2
    for props in queue_alarms:
        assert props["MetricName"] == "NumberOfMessagesSent"  # every new failure alarms
        assert props["Statistic"] == "Sum"
    rule_alarms = [
        a["Properties"] for a in alarms.values() if a["Properties"]["Namespace"] == "AWS/Events"
    ]
    assert {p["MetricName"] for p in rule_alarms} == {"InvocationsFailedToBeSentToDlq"}
    assert len(rule_alarms) == 2  # one per rule
    for alarm in alarms.values():
        props = alarm["Properties"]
        assert props["Threshold"] == 1 and props["AlarmActions"] == [{"Ref": "TopicBFC7AF6E"}]
    for queue in template.find_resources("AWS::SQS::Queue").values():
        assert "KmsMasterKeyId" in queue["Properties"]


def test_only_the_failure_rule_may_send_to_the_failed_runs_queue(template: Template) -> None:
    """Issue 14, defect 3: the queue policy let any rule of the account (no aws:SourceArn)
    write to it; an event it could not deliver was dropped (no dead-letter queue)."""
    resources = template.to_json()["Resources"]
    (rule_id,) = [
        k
        for k, r in resources.items()
        if r["Type"] == "AWS::Events::Rule" and "stopped" in r["Properties"]["Description"]
    ]
    failed_runs = next(k for k in resources if k.startswith("TriageFailedRuns"))
    undelivered = next(
        k
        for k, r in resources.items()
        if k.startswith("TriageUndelivered") and r["Type"] == "AWS::SQS::Queue"
    )
    (target,) = resources[rule_id]["Properties"]["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [failed_runs, "Arn"]}
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": [undelivered, "Arn"]}}
    (policy,) = [
        r["Properties"]["PolicyDocument"]["Statement"]
        for r in resources.values()
        if r["Type"] == "AWS::SQS::QueuePolicy"
        and r["Properties"]["Queues"] == [{"Ref": failed_runs}]
    ]
    allows = [s for s in policy if s["Effect"] == "Allow"]
    assert allows == [
        {
            "Effect": "Allow",
            "Principal": {"Service": "events.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": {"Fn::GetAtt": [failed_runs, "Arn"]},
            "Condition": {
                "ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": [rule_id, "Arn"]}},
                "StringEquals": {"aws:SourceAccount": "111111111111"},
            },
        }
    ]


def test_only_the_queue_key_trusts_eventbridge_and_only_this_accounts_rules(
    template: Template,
) -> None:
    trusting = {}
    for logical_id, key in template.find_resources("AWS::KMS::Key").items():
        for statement in key["Properties"]["KeyPolicy"]["Statement"]:
            if "events.amazonaws.com" in json.dumps(statement.get("Principal")):
                trusting[logical_id] = statement
    assert list(trusting) == [next(k for k in trusting if k.startswith("TriageQueueKey"))]
    (statement,) = trusting.values()
    assert statement["Action"] == ["kms:Decrypt", "kms:GenerateDataKey"]
    assert statement["Condition"]["StringEquals"] == {"aws:SourceAccount": "111111111111"}
    assert "rule/*" in json.dumps(statement["Condition"]["ArnLike"]["aws:SourceArn"])


def test_the_task_role_reads_dumps_writes_reports_and_nothing_else(template: Template) -> None:
    statements = {s["Sid"]: s for s in _policy(template, "crashcart triage job: read a dump")}
    assert set(statements) == {
        "TriageReadDumps",
        "TriageWriteReports",
        "TriageDumpKeyThroughS3",
        "TriageFindIncident",
        "TriageLinkIncident",
        "TriageNotify",
        "TriageIncidentTableKey",
        "TriageTopicKey",
    }
    assert statements["TriageReadDumps"]["Action"] == "s3:GetObject"
    assert statements["TriageReadDumps"]["Resource"]["Fn::Join"][1][1] == "/dumps/*"
    assert statements["TriageWriteReports"]["Action"] == "s3:PutObject"
    assert statements["TriageWriteReports"]["Resource"]["Fn::Join"][1][1] == "/reports/*"
    assert statements["TriageDumpKeyThroughS3"]["Condition"]["StringEquals"]["kms:ViaService"]
    assert statements["TriageFindIncident"]["Action"] == "dynamodb:Query"
    link = statements["TriageLinkIncident"]
    assert link["Action"] == "dynamodb:UpdateItem"
    assert link["Condition"] == {
        "ForAllValues:StringEquals": {
            "dynamodb:Attributes": [
                "pk",
                "sk",
                "dump_keys",
                "report_keys",
                "report_summary",
                "report_symbols",
                "report_error",
                "triaged_at",
            ]
        }
    }
    actions = {a for s in statements.values() for a in _list(s["Action"])}
    assert not [a for a in actions if a.endswith(("Delete*", "DeleteObject", "*"))]
    # no inline policies anywhere: every permission is in a reviewed managed policy
    assert template.find_resources("AWS::IAM::Policy") == {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_eventbridge_may_run_only_this_task_on_this_cluster(template: Template) -> None:
    statements = {s["Sid"]: s for s in _policy(template, "crashcart triage job: run the")}
    run = statements["TriageRunTask"]
    assert run["Action"] == "ecs:RunTask"
    assert list(run["Resource"]) == ["Ref"]  # this task definition, not a wildcard
    (cluster,) = template.find_resources("AWS::ECS::Cluster")
    assert run["Condition"] == {"ArnEquals": {"ecs:cluster": {"Fn::GetAtt": [cluster, "Arn"]}}}
    passing = statements["TriagePassTaskRoles"]
    assert passing["Condition"] == {
        "StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}
    }
    passed = sorted(resource["Fn::GetAtt"][0] for resource in passing["Resource"])
    assert [name[: -len("XXXXXXXX")] for name in passed] == [
        "TriageExecutionRole",
        "TriageTaskRole",
    ]


def test_the_vpc_has_no_way_to_the_internet(template: Template) -> None:
    template.resource_count_is("AWS::EC2::InternetGateway", 0)
    template.resource_count_is("AWS::EC2::NatGateway", 0)
    template.resource_count_is("AWS::EC2::Route", 0)
    endpoints = template.find_resources("AWS::EC2::VPCEndpoint")
    services = sorted(
        json.dumps(e["Properties"]["ServiceName"]).split(".")[-1].strip('"]}')
        for e in endpoints.values()
    )
    assert services == ["api", "dkr", "dynamodb", "logs", "s3", "sns"], services  # ecr.api, ecr.dkr
    task_sg = _one(
        template,
        "AWS::EC2::SecurityGroup",
        {"GroupDescription": Match.string_like_regexp("^crashcart triage task")},
    )
    assert "SecurityGroupIngress" not in task_sg
    assert task_sg["SecurityGroupEgress"] == [
        {
            "CidrIp": "0.0.0.0/0",
            "Description": "HTTPS to AWS APIs (endpoints)",
            "FromPort": 443,
            "IpProtocol": "tcp",
            "ToPort": 443,
        }
    ]
    ingress = _one(template, "AWS::EC2::SecurityGroupIngress")
    assert ingress["FromPort"] == ingress["ToPort"] == 443
    assert "SourceSecurityGroupId" in ingress and "CidrIp" not in ingress
    flow = _one(template, "AWS::EC2::FlowLog")
    assert flow["LogDestinationType"] == "s3" and flow["TrafficType"] == "ALL"


def test_a_given_vpc_is_used_as_is() -> None:
    app = cdk.App()
    stack = cdk.Stack(app, "Net", env=cdk.Environment(account="111111111111", region="eu-west-1"))
    vpc = ec2.Vpc(stack, "Shared", max_azs=2)
    job = support.job_stack(app, "WithVpc", vpc=vpc)
    template = Template.from_stack(cdk.Stack.of(job))
    template.resource_count_is("AWS::EC2::VPC", 0)
    template.resource_count_is("AWS::EC2::VPCEndpoint", 0)
    rule = _one(
        template,
        "AWS::Events::Rule",
        {"Description": Match.string_like_regexp("full triage")},
    )
    subnets = rule["Targets"][0]["EcsParameters"]["NetworkConfiguration"]["AwsVpcConfiguration"][
        "Subnets"
    ]
    assert len(subnets) == 2 and all("Private" in json.dumps(s) for s in subnets)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cpu": 1000}, "cpu=1000: Fargate tasks take one of"),
        ({"memory_mib": 1024}, "memory_mib=1024: with cpu=1024 Fargate allows 2048-8192"),
        ({"cpu": 256, "memory_mib": 4096}, "with cpu=256 Fargate allows 512-2048"),
        ({"cpu": 256, "memory_mib": 1536}, "(512, 1024, 2048)"),
        ({"memory_mib": 4500}, "in steps of 1024"),
        ({"ephemeral_storage_gib": 20}, "ephemeral_storage_gib=20: Fargate gives 21-200 GiB"),
        ({"ephemeral_storage_gib": 201}, "ephemeral_storage_gib=201"),
        ({"timeout": cdk.Duration.seconds(30)}, "give 1 minute to 24 hours"),
    ],
)
def test_bad_sizes_fail_at_synth_naming_the_value(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        TriageTaskSize(**kwargs)


def test_subnets_without_a_vpc_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="subnets was given without vpc"):
        support.job_stack(cdk.App(), subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC))


def test_size_reaches_the_task_definition() -> None:
    job = support.job_stack(
        cdk.App(),
        size=TriageTaskSize(cpu=2048, memory_mib=8192, ephemeral_storage_gib=200),
    )
    assert isinstance(job, DumpTriageJob)
    task = _one(Template.from_stack(cdk.Stack.of(job)), "AWS::ECS::TaskDefinition")
    assert (task["Cpu"], task["Memory"], task["EphemeralStorage"]) == (
        "2048",
        "8192",
        {"SizeInGiB": 200},
    )


def test_a_symbol_store_is_read_by_build_id() -> None:
    from crashcart.constructs.debug_symbol_store import DebugSymbolStore

    app = cdk.App()
    env = cdk.Environment(account="111111111111", region="eu-west-1")
    tooling = cdk.Stack(app, "Tooling", env=env)
    store = DebugSymbolStore(tooling, "Symbols")
    job = support.job_stack(app, "WithSymbols", symbols=store)
    template = Template.from_stack(cdk.Stack.of(job))
    task = _one(template, "AWS::ECS::TaskDefinition")
    env_vars = {e["Name"]: e["Value"] for e in task["ContainerDefinitions"][0]["Environment"]}
    assert "Fn::ImportValue" in env_vars["CRASHCART_SYMBOL_BUCKET"]  # the store's bucket
    roles = template.find_resources("AWS::IAM::Role")
    task_role = next(r for name, r in roles.items() if name.startswith("TriageTaskRole"))
    attached = json.dumps(task_role["Properties"]["ManagedPolicyArns"])
    assert "SymbolsReadPolicy" in attached  # the store's read policy, by reference
    read = Template.from_stack(tooling).find_resources(
        "AWS::IAM::ManagedPolicy",
        {"Properties": {"Description": Match.string_like_regexp("read debug symbols")}},
    )
    (policy,) = read.values()
    sids = {s["Sid"] for s in policy["Properties"]["PolicyDocument"]["Statement"]}
    assert sids == {"ReadSymbols", "MissingSymbolsAre404", "DecryptSymbolsThroughS3"}


def _endpoint_policies(template: Template) -> dict[str, list[dict[str, Any]]]:
    found = {}
    for endpoint in template.find_resources("AWS::EC2::VPCEndpoint").values():
        name = json.dumps(endpoint["Properties"]["ServiceName"]).split(".")[-1].strip('"]}')
        document = endpoint["Properties"].get("PolicyDocument")
        assert document is not None, f"the {name} endpoint has no policy: it would allow anything"
        found[name] = list(document["Statement"])
    return found


def _arn(rest: str) -> dict[str, Any]:
    return {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, rest]]}


def test_every_endpoint_allows_only_crashcarts_own_resources(template: Template) -> None:
    """Issue 22: no way out. A request through the triage VPC's endpoints to any bucket,
    table, topic, log group or repository but crashcart's is refused at the endpoint."""
    policies = _endpoint_policies(template)
    assert sorted(policies) == ["api", "dkr", "dynamodb", "logs", "s3", "sns"]
    account = {"StringEquals": {"aws:PrincipalAccount": "111111111111"}}
    for name, statements in policies.items():
        for statement in statements:
            assert statement["Effect"] == "Allow" and statement["Principal"] == {"AWS": "*"}
            actions = _list(statement["Action"])
            assert not [a for a in actions if "*" in a], (name, actions)
            resources = _list(statement["Resource"])
            if statement["Sid"] == "RegistryLogin":  # no resource-level permissions
                assert actions == ["ecr:GetAuthorizationToken"] and resources == ["*"]
            else:
                assert "*" not in resources, (name, statement)
            if statement["Sid"] != "EcrImageLayers":  # ECR signs layer fetches itself
                assert statement["Condition"] == account, (name, statement)
    s3 = {s["Sid"]: s for s in policies["s3"]}
    reads = s3["CrashcartReads"]["Resource"]["Fn::Join"][1]
    assert reads[1] == "/dumps/*" and s3["CrashcartReads"]["Action"] == "s3:GetObject"
    writes = s3["CrashcartReports"]["Resource"]["Fn::Join"][1]
    assert writes[1] == "/reports/*" and s3["CrashcartReports"]["Action"] == "s3:PutObject"
    assert s3["EcrImageLayers"]["Resource"] == _arn(":s3:::prod-eu-west-1-starport-layer-bucket/*")
    (table,) = template.find_resources("AWS::DynamoDB::Table")
    (dynamo,) = policies["dynamodb"]
    assert dynamo["Resource"] == {"Fn::GetAtt": [table, "Arn"]}
    (topic,) = template.find_resources("AWS::SNS::Topic")
    (sns,) = policies["sns"]
    assert sns["Action"] == "sns:Publish" and sns["Resource"] == {"Ref": topic}
    (logs,) = policies["logs"]
    assert list(logs["Resource"]) == ["Fn::GetAtt"]
    for name in ("api", "dkr"):
        image = next(s for s in policies[name] if s["Sid"] == "CrashcartImage")
        assert "repository/" in json.dumps(image["Resource"]) or "Fn::Join" in json.dumps(
            image["Resource"]
        )
        assert "repository/*" not in json.dumps(image["Resource"])  # the asset's repository


def test_a_callers_image_is_pulled_only_from_this_accounts_repositories() -> None:
    from aws_cdk import aws_ecr as ecr
    from aws_cdk import aws_ecs as ecs

    app = cdk.App()
    registry = cdk.Stack(
        app, "Registry", env=cdk.Environment(account="111111111111", region=support.REGION)
    )
    repository = ecr.Repository.from_repository_name(registry, "Repo", "crashcart-triage")
    job = support.job_stack(app, image=ecs.ContainerImage.from_ecr_repository(repository, "1.0"))
    policies = _endpoint_policies(Template.from_stack(cdk.Stack.of(job)))
    for name in ("api", "dkr"):
        image = next(s for s in policies[name] if s["Sid"] == "CrashcartImage")
        assert image["Resource"] == _arn(":ecr:eu-west-1:111111111111:repository/*")
        assert image["Condition"] == {"StringEquals": {"aws:PrincipalAccount": "111111111111"}}


def test_the_parsing_stage_has_no_role_of_its_own(template: Template) -> None:
    """Issue 22: the task role is the supervisor's; the parser is a child process started
    without credentials (crashcart.triage.sandbox, shown in tests/e2e/test_parser_isolation.py).
    The template has one task, one container, two roles ECS may use: no second role that a
    parsing stage could hold, no secrets handed to the container."""
    (task,) = template.find_resources("AWS::ECS::TaskDefinition").values()
    (container,) = task["Properties"]["ContainerDefinitions"]
    assert "Secrets" not in container
    trusted_by_ecs = [
        name
        for name, role in template.find_resources("AWS::IAM::Role").items()
        if "ecs-tasks.amazonaws.com" in json.dumps(role["Properties"]["AssumeRolePolicyDocument"])
    ]
    assert sorted(name[: -len("XXXXXXXX")] for name in trusted_by_ecs) == [
        "TriageExecutionRole",
        "TriageTaskRole",
    ]
    assert task["Properties"]["TaskRoleArn"]["Fn::GetAtt"][0].startswith("TriageTaskRole")
