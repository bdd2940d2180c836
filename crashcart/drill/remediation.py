"""Feed the REAL remediation function a status-check alarm for the drill's guest.

The function (the package ``crashcart.functions.remediation``, exactly the modules its asset
ships) is built with ``handler.build(...)`` over boto3 clients that talk to a moto server on
127.0.0.1. Two calls are answered by the drill instead of moto, through
botocore ``before-call`` hooks on the EC2 clients handed to the function:

- ``SendDiagnosticInterrupt`` (moto does not implement it) for the drill's instance id:
  answered by injecting an NMI into the guest through QMP — the hypervisor's NMI, as EC2 does
  it — then an empty success response. For any other instance it answers
  ``InvalidInstanceID.NotFound``; DryRun is answered ``DryRunOperation``.
- ``DescribeInstanceStatus`` (moto always says ok): instance check ``impaired`` for the drill's
  instance, as the status check of a hung instance says.

Everything else (DescribeInstances with the opt-in tag, DescribeInstanceTypes, SSM kill switch,
DynamoDB incident claim, S3 evidence, SNS, SQS) is the function's own code against moto.
Settings differ from production in one value: ``CRASHCART_BOOT_GRACE_SECONDS=0`` (the fake
instance was "launched" in moto a moment ago; the guard is covered by the unit tests).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from crashcart.drill.paths import PACKAGE_DIR
from crashcart.runtime.incident import INCIDENT_PREFIX, instance_pk

FUNCTION_DIR = PACKAGE_DIR.parent / "functions" / "remediation"
REGION = "eu-west-1"
#: moto's default account: the alarm, the function and the instance all live in it.
ACCOUNT = "123456789012"
ALARM_PREFIX = "crashcart-drill-"


class RemediationUnavailableError(RuntimeError):
    """The remediation function is not in the tree (or does not import)."""


def available() -> bool:
    return (FUNCTION_DIR / "handler.py").is_file()


def load_function() -> SimpleNamespace:
    """The function's ``settings`` and ``handler`` modules."""
    if not available():
        raise RemediationUnavailableError(f"no remediation function in {FUNCTION_DIR}")
    try:
        from crashcart.functions.remediation import handler, settings
    except ImportError as error:
        raise RemediationUnavailableError(f"remediation function: {error}") from error
    return SimpleNamespace(settings=settings, handler=handler)


class _Context:
    function_name = "crashcart-drill-remediation"
    function_version = "$LATEST"
    invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:crashcart-drill-remediation"
    memory_limit_in_mb = 256
    aws_request_id = "00000000-0000-4000-8000-00000000d0d0"
    log_group_name = "/aws/lambda/crashcart-drill-remediation"
    log_stream_name = "drill"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


def _answer(status: int, body: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    from botocore.awsrequest import AWSResponse

    body.setdefault("ResponseMetadata", {"RequestId": "crashcart-drill", "HTTPStatusCode": status})
    from botocore.awsrequest import HTTPHeaders

    return AWSResponse("https://ec2.drill.invalid/", status, HTTPHeaders(), None), body


def _error(code: str, message: str, status: int = 400) -> tuple[Any, dict[str, Any]]:
    return _answer(status, {"Error": {"Code": code, "Message": message}})


@dataclass
class InterruptBridge:
    """botocore hooks: SendDiagnosticInterrupt -> ``inject`` (QMP), status -> impaired."""

    instance_id: str
    inject: Callable[[], None]
    impaired_since: datetime
    availability_zone: str = f"{REGION}a"
    calls: list[dict[str, Any]] = field(default_factory=list)
    injected_at: float | None = None

    def install(self, client: Any) -> Any:
        events = client.meta.events
        for operation in ("SendDiagnosticInterrupt", "DescribeInstanceStatus"):
            events.register(f"before-parameter-build.ec2.{operation}", self._remember)
        events.register("before-call.ec2.SendDiagnosticInterrupt", self._interrupt)
        events.register("before-call.ec2.DescribeInstanceStatus", self._status)
        return client

    @staticmethod
    def _remember(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["crashcart_drill_params"] = dict(params)

    def _interrupt(self, context: dict[str, Any], **_: Any) -> Any:
        import time

        params = context.get("crashcart_drill_params", {})
        instance_id = params.get("InstanceId", "")
        dry_run = bool(params.get("DryRun", False))
        self.calls.append({"InstanceId": instance_id, "DryRun": dry_run})
        if instance_id != self.instance_id:
            return _error("InvalidInstanceID.NotFound", f"{instance_id} is not the drill guest")
        if dry_run:
            return _error(
                "DryRunOperation", "Request would have succeeded, but DryRun flag is set.", 412
            )
        self.inject()
        self.injected_at = time.monotonic()
        return _answer(200, {})

    def _status(self, context: dict[str, Any], **_: Any) -> Any:
        params = context.get("crashcart_drill_params", {})
        ids = params.get("InstanceIds", [])
        if ids != [self.instance_id]:
            return None  # moto answers
        failed = {
            "Status": "impaired",
            "Details": [
                {"Name": "reachability", "Status": "failed", "ImpairedSince": self.impaired_since}
            ],
        }
        passed = {"Status": "ok", "Details": [{"Name": "reachability", "Status": "passed"}]}
        entry = {
            "InstanceId": self.instance_id,
            "AvailabilityZone": self.availability_zone,
            "InstanceState": {"Code": 16, "Name": "running"},
            "InstanceStatus": failed,
            "SystemStatus": passed,
            "AttachedEbsStatus": passed,
            "Events": [],
        }
        return _answer(200, {"InstanceStatuses": [entry]})


@dataclass
class DrillAccount:
    """The function's resources and the drill's "instance" on a moto server."""

    url: str
    env: dict[str, str] = field(default_factory=dict)
    instance_id: str = ""
    dump_bucket: str = "crashcart-drill-dumps"

    def client(self, service: str, config: Any = None) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(  # type: ignore[call-overload]
            service,
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id="drill",
            aws_secret_access_key="drill",  # noqa: S106 - moto on 127.0.0.1
            config=config or Config(retries={"total_max_attempts": 2}, read_timeout=30),
        )

    def setup(self, *, attestation: str | None) -> DrillAccount:
        """Reset moto, then create the table, topic, queue, buckets, kill switch and the
        drill's instance (each scenario starts from an empty account)."""
        import urllib.request

        reset = f"{self.url}/moto-api/reset"
        if not reset.startswith("http://127.0.0.1:"):
            raise ValueError(f"the drill's moto server must be on 127.0.0.1, not {self.url}")
        request = urllib.request.Request(reset, method="POST")  # noqa: S310
        with urllib.request.urlopen(request, timeout=10):  # noqa: S310
            pass
        env = {
            "CRASHCART_TABLE_NAME": "crashcart-drill-incidents",
            "CRASHCART_EVIDENCE_BUCKET": "crashcart-drill-evidence",
            "CRASHCART_KILL_SWITCH_PARAMETER": "/crashcart/drill/kill-switch",
            "CRASHCART_ALARM_NAME_PREFIX": ALARM_PREFIX,
            "CRASHCART_OPT_IN_TAG_KEY": "crashcart:diagnostic-interrupt",
            "CRASHCART_OPT_IN_TAG_VALUE": "enabled",
            "CRASHCART_DRY_RUN": "false",
            "CRASHCART_BOOT_GRACE_SECONDS": "0",
            "CRASHCART_ATTESTATION_POLICY": "require",
        }
        ddb = self.client("dynamodb")
        ddb.create_table(
            TableName=env["CRASHCART_TABLE_NAME"],
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
        s3 = self.client("s3")
        for bucket in (env["CRASHCART_EVIDENCE_BUCKET"], self.dump_bucket):
            s3.create_bucket(
                Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION}
            )
        env["CRASHCART_TOPIC_ARN"] = self.client("sns").create_topic(Name="crashcart-drill")[
            "TopicArn"
        ]
        env["CRASHCART_REJECTED_QUEUE_URL"] = self.client("sqs").create_queue(
            QueueName="crashcart-drill-rejected"
        )["QueueUrl"]
        ssm = self.client("ssm")
        ssm.put_parameter(Name=env["CRASHCART_KILL_SWITCH_PARAMETER"], Value="off", Type="String")
        ssm.put_parameter(Name="/crashcart/dump-bucket", Value=self.dump_bucket, Type="String")
        ec2 = self.client("ec2")
        image = ec2.describe_images(Filters=[{"Name": "architecture", "Values": ["x86_64"]}])[
            "Images"
        ][0]["ImageId"]
        tags = [
            {"Key": "Name", "Value": "crashcart-drill-guest"},
            {"Key": env["CRASHCART_OPT_IN_TAG_KEY"], "Value": env["CRASHCART_OPT_IN_TAG_VALUE"]},
        ]
        if attestation:
            tags.append({"Key": "crashcart:kdump-attestation", "Value": attestation})
        instance = ec2.run_instances(
            ImageId=image,
            MinCount=1,
            MaxCount=1,
            InstanceType="m5.large",
            Placement={"AvailabilityZone": f"{REGION}a"},
            TagSpecifications=[{"ResourceType": "instance", "Tags": tags}],
        )["Instances"][0]
        self.instance_id = instance["InstanceId"]
        self.env = env
        return self

    def alarm_event(self, at: datetime) -> dict[str, Any]:
        """The CloudWatch "Alarm State Change" event of the guest's instance-check alarm."""
        name = f"{ALARM_PREFIX}{self.instance_id}-instance-check"
        stamp = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"
        before = (at - timedelta(minutes=8)).astimezone(UTC)
        return {
            "version": "0",
            "id": "d1e2f3a4-0000-4000-8000-000000000d11",
            "detail-type": "CloudWatch Alarm State Change",
            "source": "aws.cloudwatch",
            "account": ACCOUNT,
            "time": at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": REGION,
            "resources": [f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{name}"],
            "detail": {
                "alarmName": name,
                "configuration": {
                    "description": f"crashcart drill: instance status check of {self.instance_id}",
                    "metrics": [
                        {
                            "id": "m1",
                            "metricStat": {
                                "metric": {
                                    "dimensions": {"InstanceId": self.instance_id},
                                    "name": "StatusCheckFailed_Instance",
                                    "namespace": "AWS/EC2",
                                },
                                "period": 60,
                                "stat": "Maximum",
                            },
                            "returnData": True,
                        }
                    ],
                },
                "previousState": {
                    "reason": "Threshold Crossed: no datapoints were greater than the threshold",
                    "timestamp": before.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000",
                    "value": "OK",
                },
                "state": {
                    "reason": "Threshold Crossed: 3 out of the last 3 datapoints were greater "
                    "than or equal to the threshold (1.0)",
                    "timestamp": stamp,
                    "value": "ALARM",
                },
            },
        }

    def incidents(self) -> list[dict[str, Any]]:
        response = self.client("dynamodb").query(
            TableName=self.env["CRASHCART_TABLE_NAME"],
            KeyConditionExpression="pk = :pk AND begins_with(sk, :p)",
            ExpressionAttributeValues={
                ":pk": {"S": instance_pk(self.instance_id)},
                ":p": {"S": INCIDENT_PREFIX},
            },
        )
        return [
            {name: next(iter(value.values())) for name, value in item.items()}
            for item in response.get("Items", [])
        ]


def run_remediation(account: DrillAccount, bridge: InterruptBridge) -> dict[str, Any]:
    """Deliver the alarm event once to the real function; returns its outcome."""
    function = load_function()
    from botocore.config import Config

    settings = function.settings.Settings.from_env(account.env)
    interrupt_config = getattr(function.handler, "INTERRUPT_CONFIG", Config())
    clients = {
        "ec2": bridge.install(account.client("ec2")),
        "ec2_interrupt": bridge.install(account.client("ec2", interrupt_config)),
        "ssm": account.client("ssm"),
        "dynamodb": account.client("dynamodb"),
        "sns": account.client("sns"),
        "s3": account.client("s3"),
        "sqs": account.client("sqs"),
    }
    service = function.handler.build(settings, _Context(), clients=clients)
    outcome: dict[str, Any] = service.handle(account.alarm_event(datetime.now(UTC)))
    return outcome


class MotoServer:
    """A moto server on 127.0.0.1 (an ephemeral port) for the drill run."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.url = ""
        self.port = 0

    def __enter__(self) -> MotoServer:
        import logging

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.url, self.port = f"http://{host}:{port}", int(port)
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.stop()
