"""Executing the canary drill's state machine offline: moto's Step Functions interpreter.

moto 5 executes a state machine's definition when ``execute_state_machine`` is on: Choice,
Wait, Map, Catch, Retry, intrinsic functions and ``aws-sdk`` integrations run against moto's
own services (here ``ec2:terminateInstances`` against moto's EC2). Its Lambda, though, would
need Docker: :class:`InProcessLambda` stands in for the Lambda client the interpreter uses
and runs the drill's real handler in this process, against the same moto services. What the
world around the canary does (the agent attesting, the remediation interrupting, the dump
arriving) is scripted by :class:`World` between the function's steps.
"""

from __future__ import annotations

import io
import json
import logging
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock

import boto3
from botocore.exceptions import ClientError

from crashcart.constructs._internal.canary_drill_definition import definition
from crashcart.runtime import canary
from crashcart.runtime import environment as variables
from crashcart.runtime.attestation import ATTESTATION_TAG_KEY
from crashcart.runtime.incident import iso

REGION = "eu-west-1"
FUNCTION_ARN = f"arn:aws:lambda:{REGION}:123456789012:function:crashcart-drill"
PIPELINE_TAG = "pipeline-under-test"
CANARY_TAG = "drill-under-test"
DRILL_TABLE = "drill"
INCIDENT_TABLE = "incidents"
DUMP_BUCKET = "dumps"
CANDIDATE = "/crashcart/ami/amazon-linux-2023/x86_64/candidate"
VERIFIED = "/crashcart/ami/amazon-linux-2023/x86_64/verified"
NMI_SUMMARY = "Kernel panic - not syncing: NMI: Not continuing | nmi | cpu 1: crashcart_hang_spin"
TYPES = ("m7i.large", "r7i.2xlarge")

#: A hook: (world, action, payload) -> None, run before the function handles ``action``.
Hook = Callable[["World", str, dict[str, Any]], None]


@dataclass
class World:
    """moto's services plus what the instances and the other crashcart units do."""

    ec2: Any
    sns_topic: str
    ami_id: str
    hooks: list[Hook] = field(default_factory=list)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    run_instances_error: dict[str, str] = field(default_factory=dict)

    def canaries(self) -> dict[str, str]:
        """Every instance tagged as a canary -> its state."""
        found = self.ec2.describe_instances(
            Filters=[{"Name": f"tag:{canary.CANARY_TAG_KEY}", "Values": [CANARY_TAG]}]
        )
        return {
            i["InstanceId"]: i["State"]["Name"]
            for r in found["Reservations"]
            for i in r["Instances"]
        }

    def image_tags(self) -> dict[str, str]:
        image = self.ec2.describe_images(ImageIds=[self.ami_id])["Images"][0]
        return {t["Key"]: t["Value"] for t in image.get("Tags", [])}

    def actions(self) -> list[str]:
        return [action for action, _ in self.calls]


def attest_armed(world: World, action: str, payload: dict[str, Any]) -> None:
    """The agent on each canary attests kdump armed at boot."""
    if action == canary.Action.CHECK_READY:
        now = datetime.now(UTC).isoformat(timespec="seconds")
        world.ec2.create_tags(
            Resources=[payload["instance_id"]],
            Tags=[{"Key": ATTESTATION_TAG_KEY, "Value": f"armed {now}"}],
        )


#: The capture kernel's memory figures (kB) the dump arrival copies from metadata.json.
CAPTURE_MEMORY = {"reserved_kb": 262144, "used_kb": 93184, "margin_kb": 168960,
                  "mem_total_kb": 215040, "makedumpfile_vmhwm_kb": 20480}  # fmt: skip


def dump_arrives(
    summary: str = NMI_SUMMARY,
    *,
    state: str = "dump-received",
    capture_memory: dict[str, int] | None = CAPTURE_MEMORY,
) -> Hook:
    """After the hang: the remediation interrupts, the dump and its summary arrive (and, with
    ``state="recovered"``, the alarm went back to OK and the remediation marked it so); the
    incident carries ``capture_memory`` as the dump arrival writes it (None: the dump had no
    capture-memory figures)."""

    def hook(world: World, action: str, payload: dict[str, Any]) -> None:
        if action != canary.Action.CHECK_DUMP:
            return
        now = datetime.now(UTC)
        instance = payload["instance_id"]
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        prefix = f"dumps/AROAEXAMPLE:{instance}/202612051200"
        s3 = boto3.client("s3", region_name=REGION)
        for name, body in (
            ("vmcore", b"x" * 4096),
            ("dmesg.txt", b"..."),
            ("metadata.json", b"{}"),
        ):
            s3.put_object(Bucket=DUMP_BUCKET, Key=f"{prefix}/{name}", Body=body)
        opened = now - timedelta(seconds=90)
        dynamodb.put_item(
            TableName=INCIDENT_TABLE,
            Item={
                "pk": {"S": f"instance#{instance}"},
                "sk": {"S": f"incident#{iso(opened)}"},
                "state": {"S": state},
                "opened_at": {"S": iso(opened)},
                "interrupted_at": {"S": iso(now - timedelta(seconds=60))},
                "updated_at": {"S": iso(now)},
                "dump_keys": {"L": [{"S": f"{prefix}/metadata.json"}]},
                "summary": {"S": summary},
                **(
                    {"capture_memory": {"M": {k: {"N": str(v)} for k, v in capture_memory.items()}}}
                    if capture_memory
                    else {}
                ),
            },
        )

    return hook


def incident_in_state(state: str, reason: str) -> Hook:
    """The remediation ended the incident without a dump (e.g. a guard said no)."""

    def hook(world: World, action: str, payload: dict[str, Any]) -> None:
        if action != canary.Action.CHECK_DUMP:
            return
        now = datetime.now(UTC)
        boto3.client("dynamodb", region_name=REGION).put_item(
            TableName=INCIDENT_TABLE,
            Item={
                "pk": {"S": f"instance#{payload['instance_id']}"},
                "sk": {"S": f"incident#{iso(now)}"},
                "state": {"S": state},
                "reason": {"S": reason},
            },
        )

    return hook


def fail_action(target: str, error: str = "RuntimeError") -> Hook:
    """The function raises on ``target`` (as a crashed or misconfigured step would)."""

    def hook(world: World, action: str, payload: dict[str, Any]) -> None:
        if action == target:
            raise RuntimeError(f"{error}: injected failure of {target}")

    return hook


class _Ec2WithCapacityErrors:
    """moto's EC2 client, except that RunInstances answers the world's error for a type."""

    def __init__(self, client: Any, world: World) -> None:
        self._client = client
        self._world = world

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def run_instances(self, **kwargs: Any) -> Any:
        code = self._world.run_instances_error.get(kwargs["InstanceType"])
        if code:
            raise ClientError(
                {
                    "Error": {
                        "Code": code,
                        "Message": "We currently do not have sufficient capacity",
                    }
                },
                "RunInstances",
            )
        return self._client.run_instances(**kwargs)


class InProcessLambda:
    """The Lambda client moto's interpreter uses: runs the drill handler in this process."""

    def __init__(self, world: World) -> None:
        self.world = world

    def invoke(self, **parameters: Any) -> dict[str, Any]:
        from crashcart.functions.canary_drill import handler as module

        raw = parameters.get("Payload") or b"{}"
        payload = json.loads(raw if isinstance(raw, str | bytes) else raw.read())
        action = str(payload.get("action", payload.get("detail-type", "")))
        self.world.calls.append((action, payload))
        try:
            for hook in self.world.hooks:
                hook(self.world, action, payload)
            result = module.handler(payload, None)
        except Exception as error:
            body = {
                "errorType": type(error).__name__,
                "errorMessage": str(error),
                "stackTrace": traceback.format_exc().splitlines()[-3:],
            }
            return {
                "StatusCode": 200,
                "FunctionError": "Unhandled",
                "Payload": io.BytesIO(json.dumps(body).encode()),
            }
        return {"StatusCode": 200, "Payload": io.BytesIO(json.dumps(result).encode())}


def environment(
    topic_arn: str, subnet: str, group: str, profile_arn: str, **overrides: str
) -> dict[str, str]:
    env = {
        variables.DRILL_TABLE_NAME: DRILL_TABLE,
        variables.TABLE_NAME: INCIDENT_TABLE,
        variables.TOPIC_ARN: topic_arn,
        variables.DRILL_SUBNET_ID: subnet,
        variables.DRILL_SECURITY_GROUP_ID: group,
        variables.DRILL_INSTANCE_PROFILE_ARN: profile_arn,
        variables.DRILL_HANG_DOCUMENT: "crashcart-hang",
        variables.DRILL_CANDIDATE_PARAMETER: CANDIDATE,
        variables.DRILL_VERIFIED_PARAMETER: VERIFIED,
        variables.DRILL_PIPELINE_TAG_VALUE: PIPELINE_TAG,
        variables.DRILL_CANARY_TAG_VALUE: CANARY_TAG,
        variables.DRILL_INSTANCE_TYPES: ",".join(TYPES),
        variables.DUMP_BUCKET: DUMP_BUCKET,
        variables.DRILL_POLL_SECONDS: "0",
        variables.DRILL_HANG_AFTER_SECONDS: "0",
        variables.DRILL_BOOT_TIMEOUT_SECONDS: "600",
        variables.DRILL_DUMP_TIMEOUT_SECONDS: "600",
    }
    env.update(overrides)
    return env


def create_tables(dynamodb: Any) -> None:
    for name in (DRILL_TABLE, INCIDENT_TABLE):
        dynamodb.create_table(
            TableName=name,
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )


def register_ami(ec2: Any, *, family: str = "amazon-linux-2023", arch: str = "x86_64") -> str:
    """A candidate AMI as the pipeline tags it (moto's own images are slow to list)."""
    reservation = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)
    builder = reservation["Instances"][0]["InstanceId"]
    ami_id = str(ec2.create_image(InstanceId=builder, Name=f"crashcart-{family}-{arch}")["ImageId"])
    ec2.terminate_instances(InstanceIds=[builder])
    ec2.create_tags(
        Resources=[ami_id],
        Tags=[
            {"Key": canary.AMI_PIPELINE_TAG_KEY, "Value": PIPELINE_TAG},
            {"Key": canary.AMI_FAMILY_TAG_KEY, "Value": family},
            {"Key": canary.AMI_ARCHITECTURE_TAG_KEY, "Value": arch},
            {"Key": canary.AMI_STATUS_TAG_KEY, "Value": "candidate"},
        ],
    )
    return ami_id


@contextmanager
def drill_world(**env_overrides: str) -> Iterator[tuple[World, dict[str, str]]]:
    """moto with Step Functions execution on, the drill's resources, and the world."""
    from moto import mock_aws
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import (
        lambda_eval_utils,
    )

    from crashcart.functions.canary_drill import handler as module

    logging.getLogger("moto").setLevel(logging.CRITICAL)
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        ec2 = boto3.client("ec2", region_name=REGION)
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/24")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.0.0/26")["Subnet"]["SubnetId"]
        group = ec2.create_security_group(GroupName="canary", Description="c", VpcId=vpc)["GroupId"]
        topic = boto3.client("sns", region_name=REGION).create_topic(Name="drill")["TopicArn"]
        create_tables(boto3.client("dynamodb", region_name=REGION))
        boto3.client("s3", region_name=REGION).create_bucket(
            Bucket=DUMP_BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION}
        )
        ami_id = register_ami(ec2)
        ssm = boto3.client("ssm", region_name=REGION)
        ssm.put_parameter(Name=CANDIDATE, Value=ami_id, Type="String")
        ssm.create_document(
            Name="crashcart-hang",
            DocumentType="Command",
            Content=json.dumps(
                {
                    "schemaVersion": "2.2",
                    "description": "test",
                    "mainSteps": [
                        {
                            "action": "aws:runShellScript",
                            "name": "hang",
                            "inputs": {"runCommand": ["true"]},
                        }
                    ],
                }
            ),
        )
        iam = boto3.client("iam", region_name=REGION)
        profile = iam.create_instance_profile(InstanceProfileName="canary")["InstanceProfile"]
        world = World(ec2=ec2, sns_topic=topic, ami_id=ami_id)
        env = environment(topic, subnet, group, profile["Arn"], **env_overrides)
        clients = {n: boto3.client(n, region_name=REGION) for n in ("ssm", "dynamodb", "s3", "sns")}
        clients["ec2"] = _Ec2WithCapacityErrors(boto3.client("ec2", region_name=REGION), world)
        fake = InProcessLambda(world)
        real_client_for = lambda_eval_utils.boto_client_for

        def client_for(region: str, service: str, state_credentials: Any = None) -> Any:
            if service == "lambda":
                return fake
            return real_client_for(region, service, state_credentials)

        with (
            mock.patch.dict("os.environ", env),
            mock.patch.object(lambda_eval_utils, "boto_client_for", client_for),
            mock.patch.dict(module._CONTAINER, clients, clear=True),
        ):
            yield world, env


def run(
    world: World,
    execution_input: dict[str, Any],
    *,
    timeout_seconds: int = 3600,
    name: str = "drill-1",
    wait: float = 120.0,
) -> dict[str, Any]:
    """Create the state machine from the construct's definition, run it to its end."""
    sfn = boto3.client("stepfunctions", region_name=REGION)
    machines = sfn.list_state_machines()["stateMachines"]
    if machines:
        arn = machines[0]["stateMachineArn"]
    else:
        arn = sfn.create_state_machine(
            name="canary-drill",
            definition=json.dumps(definition(FUNCTION_ARN, timeout_seconds=timeout_seconds)),
            roleArn="arn:aws:iam::123456789012:role/drill",
        )["stateMachineArn"]
    execution = sfn.start_execution(
        stateMachineArn=arn, name=name, input=json.dumps(execution_input)
    )["executionArn"]
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        described: dict[str, Any] = sfn.describe_execution(executionArn=execution)
        if described["status"] != "RUNNING":
            output = json.loads(described.get("output") or "null")
            return {**described, "output": output}
        time.sleep(0.05)
    raise AssertionError(f"execution {name} still running after {wait} s")
