"""The drill function's steps against moto (EC2, SSM, DynamoDB, S3, SNS) and botocore's Stubber.

Stubber answers what moto cannot produce (EC2's capacity errors, a lost race for the lock);
every stubbed request is checked against the service model with its exact parameters.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from crashcart.functions.canary_drill.adapter import Adapter, CapacityError
from crashcart.functions.canary_drill.handler import handler
from crashcart.functions.canary_drill.logic import CAPACITY_ERRORS
from crashcart.functions.canary_drill.service import BadRequestError, janitor, launch
from crashcart.functions.canary_drill.settings import Settings, SettingsError
from crashcart.runtime import canary
from tests.conftest import load_event
from tests.support.canary_drill import CANARY_TAG, REGION, drill_world

NOW = datetime(2026, 12, 5, 12, 0, 0, tzinfo=UTC)


def _settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "drill_table": "drill",
        "incident_table": "incidents",
        "topic_arn": f"arn:aws:sns:{REGION}:123456789012:drill",
        "subnet_id": "subnet-0123456789abcdef0",
        "security_group_id": "sg-0123456789abcdef0",
        "instance_profile_arn": "arn:aws:iam::123456789012:instance-profile/canary",
        "hang_document": "crashcart-hang",
        "candidate_parameter": "/c",
        "verified_parameter": "/v",
        "pipeline_tag_value": "p",
        "canary_tag_value": CANARY_TAG,
    }
    values.update(overrides)
    return Settings(**values)


def _stubbed_adapter(**clients: Any) -> Adapter:
    defaults = {
        n: boto3.client(n, region_name=REGION) for n in ("ec2", "ssm", "dynamodb", "s3", "sns")
    }
    defaults.update(clients)
    return Adapter(_settings(), **defaults)


@pytest.mark.parametrize("code", sorted(CAPACITY_ERRORS))
def test_every_capacity_error_is_inconclusive(code: str) -> None:
    ec2 = boto3.client("ec2", region_name=REGION)
    adapter = _stubbed_adapter(ec2=ec2)
    with Stubber(ec2) as stub:
        stub.add_client_error("run_instances", service_error_code=code)
        result = launch(
            adapter,
            {"ami_id": "ami-0123456789abcdef0", "instance_type": "m7i.large", "execution": "e"},
            NOW,
        )
    assert result["launched"] is False
    assert result["outcome"] == "inconclusive"
    assert code in result["reason"]


def test_a_launch_sends_the_canary_tags_imdsv2_profile_subnet_and_group() -> None:
    ec2 = boto3.client("ec2", region_name=REGION)
    adapter = _stubbed_adapter(ec2=ec2)
    tags = [
        {"Key": "Name", "Value": "crashcart-drill-canary-m7i.large"},
        {"Key": canary.CANARY_TAG_KEY, "Value": CANARY_TAG},
        {"Key": canary.EXECUTION_TAG_KEY, "Value": "exec-1"},
        {"Key": "crashcart:diagnostic-interrupt", "Value": "enabled"},
    ]
    with Stubber(ec2) as stub:
        stub.add_response(
            "run_instances",
            {"Instances": [{"InstanceId": "i-0123456789abcdef0", "LaunchTime": NOW}]},
            expected_params={
                "ImageId": "ami-0123456789abcdef0",
                "InstanceType": "m7i.large",
                "MinCount": 1,
                "MaxCount": 1,
                "SubnetId": "subnet-0123456789abcdef0",
                "SecurityGroupIds": ["sg-0123456789abcdef0"],
                "IamInstanceProfile": {"Arn": "arn:aws:iam::123456789012:instance-profile/canary"},
                "MetadataOptions": {"HttpTokens": "required", "HttpPutResponseHopLimit": 1},
                "InstanceInitiatedShutdownBehavior": "terminate",
                "TagSpecifications": [
                    {"ResourceType": "instance", "Tags": tags},
                    {"ResourceType": "volume", "Tags": tags},
                ],
            },
        )
        result = launch(
            adapter,
            {
                "ami_id": "ami-0123456789abcdef0",
                "instance_type": "m7i.large",
                "execution": "exec-1",
            },
            NOW,
        )
    assert result["instance_id"] == "i-0123456789abcdef0"
    assert result["ready_deadline"] == "2026-12-05T12:20:00Z"


def test_other_launch_errors_are_raised_not_inconclusive() -> None:
    ec2 = boto3.client("ec2", region_name=REGION)
    adapter = _stubbed_adapter(ec2=ec2)
    with Stubber(ec2) as stub:
        stub.add_client_error("run_instances", service_error_code="InvalidAMIID.NotFound")
        with pytest.raises(Exception, match=r"InvalidAMIID\.NotFound") as raised:
            adapter.launch("ami-0123456789abcdef0", "m7i.large", "e")
    assert not isinstance(raised.value, CapacityError)


def test_a_lost_lock_names_the_execution_that_holds_it() -> None:
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    adapter = _stubbed_adapter(dynamodb=dynamodb)
    with Stubber(dynamodb) as stub:
        stub.add_client_error(
            "put_item",
            service_error_code="ConditionalCheckFailedException",
            response_meta={},
            modeled_fields={"Item": {"execution": {"S": "drill-0"}}},
        )
        assert adapter.take_lock("ami-0123456789abcdef0", "drill-1", NOW) == "drill-0"


def test_the_lock_is_one_per_ami_expires_and_is_released_only_by_its_holder() -> None:
    with drill_world() as (world, _):
        adapter = Adapter(
            Settings.from_env(__import__("os").environ),
            **{
                n: boto3.client(n, region_name=REGION)
                for n in ("ec2", "ssm", "dynamodb", "s3", "sns")
            },
        )
        ami = world.ami_id
        assert adapter.take_lock(ami, "a", NOW) is None
        assert adapter.take_lock(ami, "b", NOW) == "a"
        assert adapter.take_lock(ami, "a", NOW) is None  # its holder may retry
        assert adapter.release_lock(ami, "b") is False
        later = NOW + timedelta(seconds=adapter.settings.lock_seconds + 1)
        assert adapter.take_lock(ami, "b", later) is None  # an expired lock is taken over
        assert adapter.locks_of("b") == [ami]
        assert adapter.release_lock(ami, "b") is True


def test_the_janitor_ends_the_canaries_of_a_stopped_execution_and_releases_its_lock() -> None:
    with drill_world() as (world, env):
        adapter = Adapter(
            Settings.from_env(env),
            **{
                n: boto3.client(n, region_name=REGION)
                for n in ("ec2", "ssm", "dynamodb", "s3", "sns")
            },
        )
        mine, _ = adapter.launch(world.ami_id, "m7i.large", "stopped-by-hand")
        other, _ = adapter.launch(world.ami_id, "m7i.large", "still-running")
        untagged = world.ec2.run_instances(ImageId=world.ami_id, MinCount=1, MaxCount=1)[
            "Instances"
        ][0]["InstanceId"]
        adapter.take_lock(world.ami_id, "stopped-by-hand", datetime.now(UTC))
        event = load_event("canary_drill_execution_aborted")
        result = handler(event, None)
        assert result == {"terminated": [mine], "released": [world.ami_id]}
        states = world.canaries()
        assert states[mine] == "terminated" and states[other] == "running"
        described = world.ec2.describe_instances(InstanceIds=[untagged])
        assert described["Reservations"][0]["Instances"][0]["State"]["Name"] == "running"


def test_the_janitors_schedule_ends_canaries_past_their_lifetime_only() -> None:
    with drill_world() as (world, env):
        adapter = Adapter(
            Settings.from_env(env),
            **{
                n: boto3.client(n, region_name=REGION)
                for n in ("ec2", "ssm", "dynamodb", "s3", "sns")
            },
        )
        old, _ = adapter.launch(world.ami_id, "m7i.large", "x")
        event = load_event("canary_drill_janitor_schedule")
        assert janitor(adapter, event, datetime.now(UTC))["terminated"] == []
        later = datetime.now(UTC) + timedelta(seconds=adapter.settings.max_canary_lifetime + 60)
        assert janitor(adapter, event, later)["terminated"] == [old]


@pytest.mark.parametrize(
    "event",
    [
        {"action": "reboot-everything"},
        {
            "source": "aws.states",
            "detail-type": "Step Functions Execution Status Change",
            "detail": {"status": "SUCCEEDED", "name": "x"},
        },
        {"source": "aws.events", "detail-type": "Something Else"},
        {"action": "launch", "ami_id": "ami-1", "instance_type": "", "execution": "e"},
        {
            "action": "check-ready",
            "instance_id": "i-1",
            "launched_at": "yesterday",
            "ready_deadline": "x",
        },
    ],
)
def test_bad_payloads_are_refused_with_a_reason_and_no_action(event: dict[str, Any]) -> None:
    with drill_world() as (world, _):
        with pytest.raises(BadRequestError) as raised:
            handler(event, None)
        assert "expected" in str(raised.value)
        assert world.canaries() == {}


def test_settings_name_missing_and_bad_variables() -> None:
    with pytest.raises(SettingsError, match="CRASHCART_DRILL_TABLE_NAME"):
        Settings.from_env({})
    with (
        drill_world() as (_, env),
        pytest.raises(SettingsError, match="CRASHCART_DRILL_POLL_SECONDS='soon'"),
    ):
        Settings.from_env({**env, "CRASHCART_DRILL_POLL_SECONDS": "soon"})


def test_the_claim_fixture_takes_the_lock_for_the_candidate_through_the_entry_point() -> None:
    with drill_world() as (world, _):
        result = handler(load_event("canary_drill_claim"), None)
        assert result["ami_id"] == world.ami_id
        assert result["instance_types"] == ["m7i.large", "r7i.2xlarge"]
        assert result["skip_reason"] == ""
        with pytest.raises(Exception, match="already running"):
            handler({**load_event("canary_drill_claim"), "execution": "another"}, None)
