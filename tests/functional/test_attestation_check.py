"""``crashcart attestation`` against moto's EC2 on 127.0.0.1 (instances tagged in each state,
also through the installed ``crashcart`` console entry in a real subprocess) and against
botocore's Stubber with exact expected parameters (states moto cannot produce, and the AWS
errors: UnauthorizedOperation, ExpiredToken, RequestLimitExceeded after retries)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import botocore.endpoint
import pytest
from botocore.awsrequest import AWSResponse
from botocore.stub import Stubber

from crashcart import cli
from crashcart.cli import attestation as ac
from crashcart.cli.attestation import ExitCode, Status, scan
from crashcart.opt_in import OptInTag
from tests.conftest import TEST_REGION

OTHER_REGION = "us-east-1"
OPT_IN = {"Key": "crashcart:diagnostic-interrupt", "Value": "enabled"}
CONSOLE = Path(sys.executable).parent / "crashcart"
FILTERS = [
    {"Name": "tag:crashcart:diagnostic-interrupt", "Values": ["enabled"]},
    {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]},
]


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def ec2_at(url: str, region: str = TEST_REGION) -> Any:
    return boto3.client("ec2", region_name=region, endpoint_url=url)


@dataclass
class Fleet:
    url: str
    now: datetime
    ids: dict[str, str]  # what the instance is -> its id

    def client_for(self, region: str) -> Any:
        return ec2_at(self.url, region)


_IMAGES: dict[str, str] = {}


def launch(ec2: Any, name: str, tags: list[dict[str, str]]) -> str:
    region = ec2.meta.region_name
    if region not in _IMAGES:  # moto's stock images are the same after every reset
        _IMAGES[region] = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    response = ec2.run_instances(
        ImageId=_IMAGES[region],
        MinCount=1,
        MaxCount=1,
        InstanceType="m5.large",
        TagSpecifications=[
            {"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": name}, *tags]}
        ],
    )
    return str(response["Instances"][0]["InstanceId"])


def attested(value: str) -> list[dict[str, str]]:
    return [OPT_IN, {"Key": ac.ATTESTATION_TAG_KEY, "Value": value}]


@pytest.fixture
def fleet(moto_reset: str) -> Fleet:
    """One opted-in instance per attestation state, and some that must not be listed."""
    now = datetime.now(UTC)
    ec2 = ec2_at(moto_reset)
    fresh = stamp(now - timedelta(hours=1))
    ids = {
        "armed": launch(ec2, "web-armed", attested(f"armed {fresh}")),
        "stale": launch(ec2, "web-stale", attested(f"armed {stamp(now - timedelta(days=9))}")),
        "not-armed": launch(
            ec2,
            "web-not-armed",
            attested(f"not-armed {fresh} capture-kernel-not-loaded unknown_nmi_panic=0"),
        ),
        "missing": launch(ec2, "web-missing", [OPT_IN]),
        "garbage": launch(ec2, "web-garbage", attested("armed yesterday-ish")),
        "stopped": launch(ec2, "web-stopped", attested(f"armed {fresh}")),
        "not-opted-in": launch(ec2, "web-no-tag", [{"Key": ac.ATTESTATION_TAG_KEY, "Value": "x"}]),
        "disabled": launch(ec2, "web-disabled", [{"Key": OPT_IN["Key"], "Value": "disabled"}]),
        "other-case": launch(
            ec2, "web-case", [{"Key": "CrashCart:Diagnostic-Interrupt", "Value": "enabled"}]
        ),
        "terminated": launch(ec2, "web-terminated", [OPT_IN]),
    }
    ec2.stop_instances(InstanceIds=[ids["stopped"]])
    ec2.terminate_instances(InstanceIds=[ids["terminated"]])
    return Fleet(url=moto_reset, now=now, ids=ids)


def test_each_state_against_moto(fleet: Fleet) -> None:
    report = scan(fleet.client_for, [TEST_REGION], now=fleet.now, page_size=5)  # 2 pages
    status = {row.instance_id: row.status for row in report.instances}
    ids = fleet.ids
    assert status == {
        ids["armed"]: Status.ARMED,
        ids["stale"]: Status.STALE,
        ids["not-armed"]: Status.NOT_ARMED,
        ids["missing"]: Status.MISSING,
        ids["garbage"]: Status.UNPARSEABLE,
        ids["stopped"]: Status.NOT_RUNNING,
    }
    assert report.exit_code == ExitCode.NOT_ARMED == 9
    assert report.errors == ()
    stopped = next(r for r in report.instances if r.instance_id == ids["stopped"])
    assert stopped.state == "stopped"
    assert stopped.judgement.status is Status.ARMED  # its last attestation, not a verdict
    assert "only a running instance can attest" in stopped.detail

    text = report.render(include_armed=False)
    assert ids["armed"] not in text
    for kind in ("stale", "not-armed", "missing", "garbage", "stopped"):
        assert ids[kind] in text
    for kind in ("not-opted-in", "disabled", "other-case", "terminated"):
        assert ids[kind] not in text
    assert "capture-kernel-not-loaded unknown_nmi_panic=0" in text
    assert "5 of 6 opted-in instances listed" in text
    assert "Result: NOT ARMED: 4 running opted-in instances" in text
    assert text.endswith("(exit code 9)")
    # rows in the order of the statuses: not-armed, stale, missing, unparseable, not-running
    order = [text.index(ids[k]) for k in ("not-armed", "stale", "missing", "garbage", "stopped")]
    assert order == sorted(order)
    assert ids["armed"] in report.render(include_armed=True)


def test_json_document(fleet: Fleet) -> None:
    report = scan(fleet.client_for, [TEST_REGION])  # now: after the launches
    document = report.to_json(include_armed=False)
    assert list(document) == [
        "schema_version",
        "generated_at",
        "regions",
        "opt_in_tag",
        "attestation_tag_key",
        "max_age_seconds",
        "include_armed",
        "counts",
        "instances",
        "errors",
        "exit_code",
    ]
    assert document["schema_version"] == 1
    assert document["counts"] == {
        "not-armed": 1,
        "stale": 1,
        "missing": 1,
        "unparseable": 1,
        "not-running": 1,
        "armed": 1,
    }
    rows = {row["instance_id"]: row for row in document["instances"]}
    assert fleet.ids["armed"] not in rows
    not_armed = rows[fleet.ids["not-armed"]]
    assert list(not_armed) == [
        "region",
        "instance_id",
        "name",
        "state",
        "status",
        "attestation_status",
        "attestation",
        "attested_at",
        "age_seconds",
        "reasons",
        "detail",
    ]
    assert not_armed["status"] == "not-armed"
    assert not_armed["reasons"] == "capture-kernel-not-loaded unknown_nmi_panic=0"
    assert not_armed["name"] == "web-not-armed"
    assert 3600 <= not_armed["age_seconds"] <= 3600 + 300  # the fixture took < 5 min
    missing = rows[fleet.ids["missing"]]
    assert missing["attestation"] is None and missing["attested_at"] is None
    assert "may not have attested yet" in missing["detail"]  # moto launched it just now
    stopped = rows[fleet.ids["stopped"]]
    assert (stopped["status"], stopped["attestation_status"]) == ("not-running", "armed")
    assert document["exit_code"] == 9
    json.dumps(document)  # serializable as is
    every = report.to_json(include_armed=True)
    assert len(every["instances"]) == 6


def test_all_armed_exits_0_and_several_regions_are_listed(moto_reset: str) -> None:
    now = datetime.now(UTC)
    here = launch(ec2_at(moto_reset), "a", attested(f"armed {stamp(now)}"))
    there = launch(ec2_at(moto_reset, OTHER_REGION), "b", attested(f"armed {stamp(now)}"))
    report = scan(lambda region: ec2_at(moto_reset, region), [TEST_REGION, OTHER_REGION], now=now)
    assert report.exit_code == 0
    assert [(r.region, r.instance_id) for r in report.instances] == [
        (TEST_REGION, here),
        (OTHER_REGION, there),
    ]
    text = report.render(include_armed=False)
    assert "Result: ARMED: all 2 running opted-in instances are attested armed" in text
    assert "0 of 2 opted-in instances listed: 2 armed" in text


def test_max_age_and_custom_tag(moto_reset: str) -> None:
    now = datetime.now(UTC)
    tag = OptInTag(key="team:nmi", value="yes")
    instance = launch(
        ec2_at(moto_reset),
        "custom",
        [
            {"Key": "team:nmi", "Value": "yes"},
            {"Key": ac.ATTESTATION_TAG_KEY, "Value": f"armed {stamp(now - timedelta(hours=3))}"},
        ],
    )
    launch(ec2_at(moto_reset), "default-tag", [OPT_IN])  # not opted in under team:nmi

    def client_for(region: str) -> Any:
        return ec2_at(moto_reset, region)

    loose = scan(client_for, [TEST_REGION], tag=tag, now=now, max_age_seconds=4 * 3600)
    strict = scan(client_for, [TEST_REGION], tag=tag, now=now, max_age_seconds=2 * 3600)
    assert [(r.instance_id, r.status) for r in loose.instances] == [(instance, Status.ARMED)]
    assert [(r.instance_id, r.status) for r in strict.instances] == [(instance, Status.STALE)]


def run_console(
    url: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The installed ``crashcart`` entry point in its own process, EC2 answered by moto."""
    full = {**os.environ, "AWS_ENDPOINT_URL": url, **(env or {})}
    return subprocess.run(
        [str(CONSOLE), "attestation", *args],
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_console_entry_in_a_subprocess(fleet: Fleet) -> None:
    done = run_console(fleet.url, "--json")  # region: the session's (AWS_REGION)
    assert done.returncode == 9, done.stderr
    assert done.stderr == ""
    document = json.loads(done.stdout)
    assert document["regions"] == [TEST_REGION]
    listed = {row["instance_id"]: row["status"] for row in document["instances"]}
    assert listed == {
        fleet.ids["not-armed"]: "not-armed",
        fleet.ids["stale"]: "stale",
        fleet.ids["missing"]: "missing",
        fleet.ids["garbage"]: "unparseable",
        fleet.ids["stopped"]: "not-running",
    }
    table = run_console(fleet.url, "--region", TEST_REGION, "--all")
    assert table.returncode == 9
    header = next(line for line in table.stdout.splitlines() if line.startswith("REGION"))
    assert header.split() == [
        "REGION", "INSTANCE", "NAME", "STATE", "STATUS", "ATTESTED", "AGE", "DETAIL"
    ]  # fmt: skip
    assert fleet.ids["armed"] in table.stdout
    assert "web-not-armed" in table.stdout


def test_console_without_credentials_exits_3_without_traceback(
    moto_reset: str, tmp_path: Path
) -> None:
    env = {
        "AWS_ACCESS_KEY_ID": "",
        "AWS_SECRET_ACCESS_KEY": "",
        "AWS_SESSION_TOKEN": "",
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
    }
    done = run_console(moto_reset, "--region", TEST_REGION, env=env)
    assert done.returncode == 3
    assert "no AWS credentials found" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert "Result: INCOMPLETE: could not list eu-west-1" in done.stdout


def test_console_usage_errors_exit_2(moto_reset: str, tmp_path: Path) -> None:
    for args in (
        ["--region", "eu_west_1"],
        ["--tag-key", "aws:reserved"],
        ["--max-age-seconds", "-1"],
        ["--max-age-seconds", "7d"],
    ):
        done = run_console(moto_reset, *args)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr
    no_region = {"AWS_REGION": "", "AWS_DEFAULT_REGION": "", "AWS_CONFIG_FILE": str(tmp_path)}
    done = run_console(moto_reset, env=no_region)
    assert done.returncode == 2
    assert "no region" in done.stderr
    done = run_console(moto_reset, "--profile", "no-such-profile", env=no_region)
    assert done.returncode == 3
    assert "no-such-profile" in done.stderr and "Traceback" not in done.stderr


# ------------------------------------------------------------------------------------------
# Stubber: exact parameters, states moto does not produce, AWS errors


@pytest.fixture
def stubbed() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client("ec2", region_name=TEST_REGION, config=ac.client_config())
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def instance(
    instance_id: str, state: str, tags: list[dict[str, str]], launched: datetime
) -> dict[str, Any]:
    return {
        "InstanceId": instance_id,
        "State": {"Code": 0, "Name": state},
        "LaunchTime": launched,
        "Tags": tags,
    }


def test_pending_and_stopping_cannot_attest_and_tags_are_checked_exactly(
    stubbed: tuple[Any, Stubber],
) -> None:
    client, stubber = stubbed
    now = datetime(2026, 11, 26, 5, 20, 30, tzinfo=UTC)
    old = now - timedelta(days=3)
    armed_d = instance("i-0000000000000000d", "running", attested("armed 2026-11-26T05:00Z"), old)
    stubber.add_response(
        "describe_instances",
        {
            "Reservations": [
                {
                    "Instances": [
                        instance("i-0000000000000000a", "pending", [OPT_IN], now),
                        instance(
                            "i-0000000000000000b",
                            "stopping",
                            attested("not-armed 2026-11-25T05:00:00Z no-crashkernel"),
                            old,
                        ),
                        # a server that matched case-insensitively: not opted in for us
                        instance(
                            "i-0000000000000000c",
                            "running",
                            [{"Key": "crashcart:diagnostic-interrupt", "Value": "Enabled"}],
                            old,
                        ),
                    ]
                }
            ],
            "NextToken": "page-2",
        },
        expected_params={"Filters": FILTERS, "MaxResults": 1000},
    )
    stubber.add_response(
        "describe_instances",
        {"Reservations": [{"Instances": [armed_d]}]},
        expected_params={"Filters": FILTERS, "MaxResults": 1000, "NextToken": "page-2"},
    )
    report = scan(lambda region: client, [TEST_REGION], now=now)
    rows = {r.instance_id: r for r in report.instances}
    assert set(rows) == {"i-0000000000000000a", "i-0000000000000000b", "i-0000000000000000d"}
    assert rows["i-0000000000000000a"].status is Status.NOT_RUNNING
    assert rows["i-0000000000000000a"].detail.startswith(
        "pending (starting): only a running instance"
    )
    stopping = rows["i-0000000000000000b"]
    assert stopping.status is Status.NOT_RUNNING
    assert stopping.detail.endswith("last attestation: not-armed (no-crashkernel)")
    assert report.exit_code == 0  # nothing running is unarmed; not-running does not count
    assert "do not change the exit code" in report.render(include_armed=False)


def error_report(stubber: Stubber, client: Any, code: str, status: int, **extra: Any) -> Any:
    stubber.add_client_error(
        "describe_instances",
        service_error_code=code,
        service_message=f"stubbed {code}",
        http_status_code=status,
        expected_params={"Filters": FILTERS, "MaxResults": 1000},
        **extra,
    )
    return scan(lambda region: client, [TEST_REGION])


def test_unauthorized_names_the_missing_permission(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    report = error_report(stubber, client, "UnauthorizedOperation", 403)
    assert report.exit_code == ExitCode.AWS_ERROR == 3
    (error,) = report.errors
    assert error.code == "UnauthorizedOperation"
    assert "lack ec2:DescribeInstances in eu-west-1" in error.message
    assert "ERROR eu-west-1: not allowed to list instances" in report.render(include_armed=False)
    assert report.to_json(include_armed=False)["errors"] == [
        {"region": TEST_REGION, "code": "UnauthorizedOperation", "message": error.message}
    ]


def test_expired_token(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    report = error_report(stubber, client, "ExpiredToken", 400)
    assert report.exit_code == 3
    assert "credentials have expired (ExpiredToken)" in report.errors[0].message


def test_throttled_message_counts_the_attempts(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    report = error_report(
        stubber,
        client,
        "RequestLimitExceeded",
        503,
        response_meta={"RetryAttempts": ac.MAX_ATTEMPTS - 1},
    )
    assert report.exit_code == 3
    expected = (
        f"throttled DescribeInstances (RequestLimitExceeded) after {ac.MAX_ATTEMPTS} attempts"
    )
    assert expected in report.errors[0].message


def test_throttling_is_retried_then_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    """The real retry path (Stubber answers before it): every attempt is answered
    RequestLimitExceeded on the wire; botocore backs off (sleeps recorded, not slept)."""
    sleeps: list[float] = []
    monkeypatch.setattr(botocore.endpoint, "time", SimpleNamespace(sleep=sleeps.append))
    client = boto3.client("ec2", region_name=TEST_REGION, config=ac.client_config())
    attempts: list[str] = []

    def throttle(request: Any, **_: Any) -> AWSResponse:
        attempts.append(request.url)
        body = (
            b"<Response><Errors><Error><Code>RequestLimitExceeded</Code>"
            b"<Message>Request limit exceeded.</Message></Error></Errors>"
            b"<RequestID>r</RequestID></Response>"
        )
        return AWSResponse(request.url, 503, {}, SimpleNamespace(stream=lambda: [body]))  # type: ignore[arg-type]

    client.meta.events.register("before-send.ec2.DescribeInstances", throttle)
    report = scan(lambda region: client, [TEST_REGION, TEST_REGION])
    assert len(attempts) == 2 * ac.MAX_ATTEMPTS
    assert len(sleeps) == 2 * (ac.MAX_ATTEMPTS - 1)
    assert all(url.startswith("https://ec2.eu-west-1.amazonaws.com") for url in attempts)
    assert report.exit_code == 3
    assert f"after {ac.MAX_ATTEMPTS} attempts" in report.errors[0].message


def test_one_region_failing_still_lists_the_others(moto_reset: str) -> None:
    now = datetime.now(UTC)
    launch(ec2_at(moto_reset), "not-armed", attested(f"not-armed {stamp(now)} no-crashkernel"))
    denied = boto3.client("ec2", region_name=OTHER_REGION)
    with Stubber(denied) as stubber:
        stubber.add_client_error(
            "describe_instances", "UnauthorizedOperation", http_status_code=403
        )

        def client_for(region: str) -> Any:
            return denied if region == OTHER_REGION else ec2_at(moto_reset, region)

        report = scan(client_for, [OTHER_REGION, TEST_REGION], now=now)
    assert [r.status for r in report.instances] == [Status.NOT_ARMED]
    assert [e.region for e in report.errors] == [OTHER_REGION]
    assert report.exit_code == 3  # incomplete wins over "not armed"
    assert "Result: INCOMPLETE: could not list us-east-1" in report.render(include_armed=False)


def test_a_bug_is_not_swallowed(stubbed: tuple[Any, Stubber]) -> None:
    def broken(region: str) -> Any:
        raise KeyError("a bug")

    with pytest.raises(KeyError):
        scan(broken, [TEST_REGION])


class _FakeSession:
    """Stands in for boto3.session.Session in the in-process CLI test."""

    client_to_return: Any = None
    calls: list[tuple[str, str]] = []

    def __init__(self, profile_name: str | None = None) -> None:
        self.region_name = TEST_REGION

    def client(self, service: str, region_name: str, config: Any) -> Any:
        self.calls.append((service, region_name))
        return self.client_to_return


def test_cli_in_process(
    stubbed: tuple[Any, Stubber],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    client, stubber = stubbed
    stubber.add_client_error("describe_instances", "UnauthorizedOperation", http_status_code=403)
    _FakeSession.client_to_return = client
    monkeypatch.setattr(boto3.session, "Session", _FakeSession)
    code = cli.main(["attestation", "--json", "--region", TEST_REGION, "--region", TEST_REGION])
    captured = capsys.readouterr()
    assert code == 3
    assert _FakeSession.calls == [("ec2", TEST_REGION)]  # duplicate regions listed once
    assert json.loads(captured.out)["errors"][0]["code"] == "UnauthorizedOperation"
    assert "crashcart attestation: error: eu-west-1: not allowed" in captured.err


def test_registered_and_cheap_to_import() -> None:
    assert "crashcart.cli.attestation" in cli.SUBCOMMAND_MODULES
    args = cli.build_parser().parse_args(["attestation"])
    assert args.handler is ac.run
    assert (args.regions, args.max_age_seconds, args.json, args.all) == (
        None,
        ac.DEFAULT_MAX_AGE_SECONDS,
        False,
        False,
    )
    code = "import sys, crashcart.cli.attestation; print('boto3' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "False"
