"""A multi-account organisation on one moto server, for the remediation's organisation tests.

How moto keeps accounts apart (moto 5.2.5, ``moto/core/responses.py``
``get_current_account``): every request is served by the backend of one account, chosen by
``MOTO_ACCOUNT_ID`` (process-wide; never set here), else the request header
``x-moto-account-id``, else the access key (an IAM key or STS session of some account), else
the default 123456789012. :func:`account_client` adds the header to every request of a
boto3 client, so each member account has its own EC2 instances, incident table, topic,
queues and kill switch, and the central account its own breaker table and bus.

What moto does not model, and the test layer stands in for:

- Cross-account access by resource-based policy. In AWS the member's function calls the
  central table by its ARN with its own credentials, and the table's resource policy lets
  it in (aws-assumption: dynamodb-resource-policy-cross-account). moto looks a table ARN up
  only in the caller's account, so the member's ``org_dynamodb`` client is routed to the
  central account (the ARN is still what the function sends). The same for ``PutEvents``
  to the central bus ARN: moto puts it on the caller account's bus of that name, so the
  member's ``events`` client is routed to the central account. moto's envelope then does
  not carry the sender's account (the copy its rule delivers to SQS has no ``account`` at
  all; in AWS it is the sender's), so the tests check the sender in ``detail.account`` and
  by which member's function sent it.
- ``aws:PrincipalOrgID``: moto evaluates no policy; the policies are asserted on the
  synthesized templates instead (tests/infra/test_organisation_breaker.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config

from tests.support.incidents import create_incident_table
from tests.support.remediation_runtime import (
    FAST,
    TEST_ACCOUNT,
    TEST_REGION,
    Clock,
    World,
    alarm_event,
    load,
    unique_tag,
)

CENTRAL_ACCOUNT = "999999999999"
#: Member accounts A, B, C (and more for bursts: :func:`member_account`).
ACCOUNT_A = "111111111111"
ACCOUNT_B = "222222222222"
ACCOUNT_C = "333333333333"


def member_account(index: int) -> str:
    """The ``index``-th member account id (0 -> A)."""
    return f"{index + 1:012d}" if index >= 3 else (ACCOUNT_A, ACCOUNT_B, ACCOUNT_C)[index]


def account_client(url: str, service: str, account: str, config: Config | None = None) -> Any:
    """A boto3 client whose every request moto serves from ``account``'s backend."""
    client = boto3.client(service, endpoint_url=url, region_name=TEST_REGION, config=config or FAST)

    def as_account(request: Any, **_: Any) -> None:
        request.headers["x-moto-account-id"] = account

    client.meta.events.register_first("before-sign", as_account)
    return client


@dataclass
class Central:
    """The central account's part in one Region: the breaker table and the central bus,
    with a rule copying every crashcart incident event to a queue the test reads."""

    url: str
    tag: str = field(default_factory=unique_tag)
    table_arn: str = ""
    bus_arn: str = ""
    queue_url: str = ""

    def client(self, service: str) -> Any:
        return account_client(self.url, service, CENTRAL_ACCOUNT)

    def setup(self) -> Central:
        ddb = self.client("dynamodb")
        name = f"crashcart-org-breaker-{self.tag}"
        create_incident_table(ddb, name)
        self.table_arn = ddb.describe_table(TableName=name)["Table"]["TableArn"]
        events = self.client("events")
        self.bus_arn = events.create_event_bus(Name=f"crashcart-central-{self.tag}")["EventBusArn"]
        sqs = self.client("sqs")
        self.queue_url = sqs.create_queue(QueueName=f"central-view-{self.tag}")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        events.put_rule(
            Name=f"incidents-{self.tag}",
            EventBusName=self.bus_arn,
            EventPattern=json.dumps({"source": ["crashcart.incident"]}),
        )
        events.put_targets(
            Rule=f"incidents-{self.tag}",
            EventBusName=self.bus_arn,
            Targets=[{"Id": "view", "Arn": queue_arn}],
        )
        return self

    def breaker(self) -> dict[str, Any] | None:
        response = self.client("dynamodb").get_item(
            TableName=self.table_arn,
            Key={"pk": {"S": "breaker#organisation"}, "sk": {"S": "state"}},
            ConsistentRead=True,
        )
        item = response.get("Item")
        return {k: next(iter(v.values())) for k, v in item.items()} if item else None

    def events(self) -> list[dict[str, Any]]:
        """Every event the central bus delivered to the view's queue so far (drained)."""
        sqs = self.client("sqs")
        out: list[dict[str, Any]] = []
        while True:
            messages = sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
            ).get("Messages", [])
            if not messages:
                return out
            for message in messages:
                out.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])

    def teardown(self) -> None:
        ddb = self.client("dynamodb")
        ddb.delete_table(TableName=self.table_arn.rsplit("/", 1)[-1])


@dataclass
class Member(World):
    """One member account's remediation (a :class:`World` whose clients act as ``account``),
    wired to the central account's breaker table and bus."""

    account: str = TEST_ACCOUNT
    central: Central | None = None

    def client(self, service: str, config: Config | None = None) -> Any:
        if config is None and service in self._clients:
            return self._clients[service]
        made = account_client(self.url, service, self.account, config)
        if config is None:
            self._clients[service] = made
        return made

    def organise(self, central: Central, *, threshold: int = 20, events: bool = True) -> Member:
        self.central = central
        self.env["CRASHCART_ORG_BREAKER_TABLE_ARN"] = central.table_arn
        self.env["CRASHCART_ORG_BREAKER_THRESHOLD"] = str(threshold)
        if events:
            self.env["CRASHCART_ORG_EVENT_BUS_ARN"] = central.bus_arn
        return self

    def clients(self) -> dict[str, Any]:
        made = super().clients()
        if self.central is not None:
            # Routed to the central account: see the module docstring.
            made["org_dynamodb"] = self.central.client("dynamodb")
            made["events"] = self.central.client("events")
        return made

    def context(self) -> Any:
        account = self.account

        class MemberContext:
            function_name = f"crashcart-{account}"
            aws_request_id = "00000000-0000-4000-8000-000000000000"
            invoked_function_arn = (
                f"arn:aws:lambda:{TEST_REGION}:{account}:function:crashcart-{account}"
            )

        return MemberContext()

    def alarm(self, instance_id: str, *, at: Any) -> dict[str, Any]:
        """The documented alarm event of ``instance_id``, raised in this account."""
        text = json.dumps(alarm_event(instance_id, at=at)).replace(TEST_ACCOUNT, self.account)
        event: dict[str, Any] = json.loads(text)
        return event

    def deliver(
        self, event: dict[str, Any], clock: Clock, *, log: Any = None, **clients: Any
    ) -> Any:
        """The member's remediation function handling ``event`` (clients may be replaced)."""
        made = {**self.clients(), **clients}
        service = load().handler.build(
            self.settings(),
            self.context(),
            clients=made,
            clock=clock,
            sleep=lambda _: None,
            log=log,
        )
        return service.handle(event)
