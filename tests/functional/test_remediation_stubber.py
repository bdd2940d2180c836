"""botocore Stubber: the EC2 answers moto cannot give, with exact expected parameters.

The adapter turns each ``ClientError`` code into a domain outcome; the handler then records
it (moto for everything else, the stubbed client for SendDiagnosticInterrupt).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ReadTimeoutError
from botocore.stub import Stubber

from tests.support.remediation_runtime import (
    World,
    after_launch_clock,
    alarm_event,
    build,
    load,
)

R = load()
A = R.adapter
INSTANCE = "i-0123456789abcdef0"


def ec2_client(config: Any = None) -> Any:
    return boto3.client("ec2", region_name="eu-west-1", config=config or R.handler.INTERRUPT_CONFIG)


@pytest.mark.parametrize(
    ("code", "status", "outcome"),
    [
        ("UnsupportedOperation", 400, A.InterruptOutcome.REFUSED),
        ("IncorrectInstanceState", 400, A.InterruptOutcome.REFUSED),
        ("InvalidInstanceID.NotFound", 400, A.InterruptOutcome.REFUSED),
        ("UnauthorizedOperation", 403, A.InterruptOutcome.REFUSED),
        ("InternalError", 500, A.InterruptOutcome.UNKNOWN),
    ],
)
def test_interrupt_error_codes_become_outcomes(code: str, status: int, outcome: Any) -> None:
    client = ec2_client()
    sleeps: list[float] = []
    with Stubber(client) as stub:
        stub.add_client_error(
            "send_diagnostic_interrupt",
            service_error_code=code,
            service_message=f"{code} says no",
            http_status_code=status,
            expected_params={"InstanceId": INSTANCE, "DryRun": False},
        )
        result = A.Interrupter(client, sleeps.append).send(INSTANCE, dry_run=False)
        stub.assert_no_pending_responses()
    assert (result.outcome, result.code, result.attempts) == (outcome, code, 1)
    assert result.message == f"{code} says no"
    assert sleeps == []


def test_request_limit_exceeded_is_retried_with_backoff_then_sent() -> None:
    client = ec2_client()
    sleeps: list[float] = []
    with Stubber(client) as stub:
        for _ in range(2):
            stub.add_client_error(
                "send_diagnostic_interrupt",
                service_error_code="RequestLimitExceeded",
                http_status_code=503,
                expected_params={"InstanceId": INSTANCE, "DryRun": False},
            )
        stub.add_response(
            "send_diagnostic_interrupt",
            {"ResponseMetadata": {"RequestId": "abc-123", "HTTPStatusCode": 200}},
            {"InstanceId": INSTANCE, "DryRun": False},
        )
        result = A.Interrupter(client, sleeps.append).send(INSTANCE, dry_run=False)
        stub.assert_no_pending_responses()
    assert (result.outcome, result.attempts, result.request_id) == (
        A.InterruptOutcome.SENT,
        3,
        "abc-123",
    )
    assert sleeps == [0.5, 1.0]


def test_request_limit_exceeded_that_never_ends_is_a_definite_failure() -> None:
    client = ec2_client()
    sleeps: list[float] = []
    with Stubber(client) as stub:
        for _ in range(A.THROTTLE_ATTEMPTS):
            stub.add_client_error(
                "send_diagnostic_interrupt",
                service_error_code="RequestLimitExceeded",
                http_status_code=503,
                expected_params={"InstanceId": INSTANCE, "DryRun": False},
            )
        result = A.Interrupter(client, sleeps.append).send(INSTANCE, dry_run=False)
        stub.assert_no_pending_responses()
    assert (result.outcome, result.attempts) == (A.InterruptOutcome.REFUSED, A.THROTTLE_ATTEMPTS)
    assert sleeps == [0.5, 1.0, 2.0]


def test_dry_run_answers() -> None:
    client = ec2_client()
    with Stubber(client) as stub:
        stub.add_client_error(
            "send_diagnostic_interrupt",
            service_error_code="DryRunOperation",
            http_status_code=412,
            expected_params={"InstanceId": INSTANCE, "DryRun": True},
        )
        stub.add_client_error(
            "send_diagnostic_interrupt",
            service_error_code="UnauthorizedOperation",
            http_status_code=403,
            expected_params={"InstanceId": INSTANCE, "DryRun": True},
        )
        interrupter = A.Interrupter(client, lambda _: None)
        assert interrupter.send(INSTANCE, dry_run=True).outcome is A.InterruptOutcome.DRY_RUN_OK
        assert interrupter.send(INSTANCE, dry_run=True).outcome is A.InterruptOutcome.REFUSED


def _count_sends(client: Any, error: Exception) -> list[int]:
    sent: list[int] = []

    def raise_after_send(**_: Any) -> None:
        sent.append(1)
        raise error

    client.meta.events.register("before-send.ec2.SendDiagnosticInterrupt", raise_after_send)
    return sent


def test_read_timeout_is_recorded_as_sent_and_never_resent() -> None:
    """The real interrupt client config: botocore must not resend after a read timeout."""
    client = ec2_client()
    sends = _count_sends(
        client, ReadTimeoutError(endpoint_url="https://ec2.eu-west-1.amazonaws.com/")
    )
    result = A.Interrupter(client, lambda _: None).send(INSTANCE, dry_run=False)
    assert (result.outcome, result.code) == (A.InterruptOutcome.UNKNOWN, "ReadTimeoutError")
    assert len(sends) == 1


def test_default_botocore_retries_would_resend_after_a_timeout() -> None:
    """Why the interrupt client has retries off: the describe client's config resends."""
    client = ec2_client(R.handler.DEFAULT_CONFIG)
    sends = _count_sends(
        client, ReadTimeoutError(endpoint_url="https://ec2.eu-west-1.amazonaws.com/")
    )
    with pytest.raises(ReadTimeoutError):
        client.send_diagnostic_interrupt(InstanceId=INSTANCE)
    assert len(sends) == 3


def test_describe_not_found_is_a_fact_and_other_errors_fail_closed() -> None:
    client = ec2_client(R.handler.DEFAULT_CONFIG)
    facts = A.Ec2Facts(client, A.TypeCache())
    with Stubber(client) as stub:
        stub.add_client_error(
            "describe_instances",
            service_error_code="InvalidInstanceID.NotFound",
            expected_params={"InstanceIds": [INSTANCE]},
        )
        stub.add_client_error(
            "describe_instances",
            service_error_code="UnauthorizedOperation",
            http_status_code=403,
            expected_params={"InstanceIds": [INSTANCE]},
        )
        stub.add_client_error(
            "describe_instance_status",
            service_error_code="RequestLimitExceeded",
            http_status_code=503,
            expected_params={"InstanceIds": [INSTANCE], "IncludeAllInstances": True},
        )
        assert facts.instance(INSTANCE) is None
        with pytest.raises(A.FactUnavailableError, match="UnauthorizedOperation"):
            facts.instance(INSTANCE)
        with pytest.raises(A.FactUnavailableError, match="RequestLimitExceeded"):
            facts.status(INSTANCE)


def test_instance_types_are_cached_per_container() -> None:
    client = ec2_client(R.handler.DEFAULT_CONFIG)
    cache = A.TypeCache()
    facts = A.Ec2Facts(client, cache)
    with Stubber(client) as stub:
        stub.add_response(
            "describe_instance_types",
            {
                "InstanceTypes": [
                    {
                        "InstanceType": "m5.large",
                        "Hypervisor": "nitro",
                        "BareMetal": False,
                        "ProcessorInfo": {"SupportedArchitectures": ["x86_64"]},
                    }
                ]
            },
            {"InstanceTypes": ["m5.large"]},
        )
        first = facts.instance_type("m5.large")
        second = A.Ec2Facts(client, cache).instance_type("m5.large")  # no second call
        stub.assert_no_pending_responses()
    assert first == second and first.hypervisor == "nitro"


def test_kill_switch_parameter_missing_is_a_configuration_error() -> None:
    client = boto3.client("ssm", region_name="eu-west-1")
    with Stubber(client) as stub:
        stub.add_client_error(
            "get_parameter",
            service_error_code="ParameterNotFound",
            expected_params={"Name": "/crashcart/kill-switch"},
        )
        stub.add_response(
            "get_parameter",
            {"Parameter": {"Name": "/crashcart/kill-switch", "Value": " OFF\n"}},
            {"Name": "/crashcart/kill-switch"},
        )
        switch = A.KillSwitch(client, "/crashcart/kill-switch")
        with pytest.raises(A.ConfigurationMissingError):
            switch.value()
        assert switch.value() == "off"


# --- the same codes through the whole handler: moto for everything, Stubber for the interrupt


@pytest.fixture
def world(moto_server: str) -> Iterator[World]:
    made = World(url=moto_server).setup()
    yield made
    made.teardown()


@pytest.mark.parametrize(
    ("code", "state", "claim_kept"),
    [
        ("UnsupportedOperation", "failed", False),
        ("IncorrectInstanceState", "failed", False),
        ("InvalidInstanceID.NotFound", "failed", False),
        ("UnauthorizedOperation", "failed", False),
    ],
)
def test_handler_records_stubbed_refusals_and_releases_the_claim(
    world: World, code: str, state: str, claim_kept: bool
) -> None:
    clock = after_launch_clock()
    (instance,) = world.instances(clock=clock)
    clients = world.clients()
    interrupt = ec2_client()
    clients["ec2_interrupt"] = interrupt
    with Stubber(interrupt) as stub:
        stub.add_client_error(
            "send_diagnostic_interrupt",
            service_error_code=code,
            http_status_code=403 if code == "UnauthorizedOperation" else 400,
            expected_params={"InstanceId": instance, "DryRun": False},
        )
        result = build(world, clock, clients=clients).handle(alarm_event(instance, at=clock()))
        stub.assert_no_pending_responses()
    assert result["outcome"] == "failed" and code in result["reason"]
    (incident,) = world.incidents(instance)
    assert (incident["state"], incident["interrupt_code"]) == (state, code)
    limits = world.item(f"instance#{instance}", "limits")
    assert (limits["budget_count"] == 1) is claim_kept
    (note,) = world.notifications()
    assert code in note["message"] and "no crash dump will be written" in note["message"]


def test_handler_records_a_stubbed_timeout_as_sent(world: World) -> None:
    clock = after_launch_clock()
    (instance,) = world.instances(clock=clock)
    clients = world.clients()
    interrupt = ec2_client()
    sends = _count_sends(
        interrupt, ReadTimeoutError(endpoint_url="https://ec2.eu-west-1.amazonaws.com/")
    )
    clients["ec2_interrupt"] = interrupt
    result = build(world, clock, clients=clients).handle(alarm_event(instance, at=clock()))
    assert result["outcome"] == "interrupted"
    assert len(sends) == 1
    (incident,) = world.incidents(instance)
    assert (incident["state"], incident["interrupt_outcome"]) == ("interrupted", "unknown")
    assert world.item(f"instance#{instance}", "limits")["budget_count"] == 1
