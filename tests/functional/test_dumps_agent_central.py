"""The agent ships into an organisation's central bucket under its account (issue 23).

``CRASHCART_DUMP_LAYOUT=account`` puts the instance's account id (from the instance identity
document, served here by a fake IMDSv2 on 127.0.0.1) after ``dumps/``; the default layout is
unchanged (tests/functional/test_dumps_agent.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.support.dumps import AWS_CLI, INSTANCE_ID, fake_host, make_dump, run_agent
from tests.support.imds import FakeImds

pytestmark = pytest.mark.skipif(not AWS_CLI.exists(), reason="needs the aws CLI in the venv")

BUCKET = "crashcart-central-dumps-test"
ACCOUNT = "111122223333"


@pytest.fixture
def identity_imds() -> Iterator[str]:
    """IMDSv2 answering the instance identity document (with a token)."""
    fake = FakeImds()
    fake.identity = {"accountId": ACCOUNT, "instanceId": INSTANCE_ID}
    yield fake.url
    fake.close()


@pytest.fixture
def s3(moto_reset: str) -> Any:
    client = boto3.client("s3", endpoint_url=moto_reset, region_name="eu-west-1")
    client.create_bucket(
        Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    return client


def keys(s3: Any) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", []))


def test_central_layout_puts_the_identity_documents_account_first(
    s3: Any, tmp_path: Path, moto_reset: str, identity_imds: str
) -> None:
    env = fake_host(tmp_path)
    env.update(
        CRASHCART_BUCKET=BUCKET,
        CRASHCART_DUMP_LAYOUT="account",
        CRASHCART_IMDS_ENDPOINT=identity_imds,
    )
    make_dump(Path(env["CRASHCART_CRASH_DIR"]), "202612052300")
    result = run_agent(env, "ship", endpoint=moto_reset)
    assert result.returncode == 0, result.stderr
    base = f"dumps/{ACCOUNT}/{INSTANCE_ID}/202612052300/"
    assert keys(s3) == [base + "dmesg.txt", base + "metadata.json", base + "vmcore"]


def test_an_unknown_layout_is_refused_and_ships_nothing(
    s3: Any, tmp_path: Path, moto_reset: str
) -> None:
    env = fake_host(tmp_path)
    env.update(CRASHCART_BUCKET=BUCKET, CRASHCART_DUMP_LAYOUT="central")
    make_dump(Path(env["CRASHCART_CRASH_DIR"]), "202612052300")
    result = run_agent(env, "ship", endpoint=moto_reset)
    assert result.returncode != 0
    assert "CRASHCART_DUMP_LAYOUT='central'" in result.stderr
    assert keys(s3) == []


def test_an_identity_document_without_an_account_ships_nothing(
    s3: Any, tmp_path: Path, moto_reset: str
) -> None:
    env = fake_host(tmp_path)
    env.update(
        CRASHCART_BUCKET=BUCKET, CRASHCART_DUMP_LAYOUT="account", CRASHCART_ACCOUNT_ID="12345"
    )
    make_dump(Path(env["CRASHCART_CRASH_DIR"]), "202612052300")
    result = run_agent(env, "ship", endpoint=moto_reset)
    assert result.returncode != 0
    assert "'12345'" in result.stderr
    assert keys(s3) == []


def _parameters(moto_url: str, **values: str) -> None:
    ssm = boto3.client("ssm", endpoint_url=moto_url, region_name="eu-west-1")
    for name, value in values.items():
        ssm.put_parameter(Name=name, Value=value, Type="String")


def _host_reading_parameters(tmp_path: Path, imds: str) -> dict[str, str]:
    env = fake_host(tmp_path)
    env.pop("CRASHCART_BUCKET", None)
    env.pop("CRASHCART_DUMP_LAYOUT", None)
    env.update(CRASHCART_IMDS_ENDPOINT=imds)
    return env


def test_a_member_accounts_layout_parameter_puts_the_account_first(
    s3: Any, tmp_path: Path, moto_reset: str, identity_imds: str
) -> None:
    # What OrganisationMemberStack deploys: the central bucket's name and layout "account".
    _parameters(
        moto_reset, **{"/crashcart/dump-bucket": BUCKET, "/crashcart/dump-layout": "account"}
    )
    env = _host_reading_parameters(tmp_path, identity_imds)
    make_dump(Path(env["CRASHCART_CRASH_DIR"]), "202612052330")
    result = run_agent(env, "ship", endpoint=moto_reset)
    assert result.returncode == 0, result.stderr
    base = f"dumps/{ACCOUNT}/{INSTANCE_ID}/202612052330/"
    assert keys(s3) == [base + "dmesg.txt", base + "metadata.json", base + "vmcore"]


def test_without_a_layout_parameter_the_accounts_own_layout_is_kept(
    s3: Any, tmp_path: Path, moto_reset: str, identity_imds: str
) -> None:
    _parameters(moto_reset, **{"/crashcart/dump-bucket": BUCKET})
    env = _host_reading_parameters(tmp_path, identity_imds)
    make_dump(Path(env["CRASHCART_CRASH_DIR"]), "202612052331")
    result = run_agent(env, "ship", endpoint=moto_reset)
    assert result.returncode == 0, result.stderr
    base = f"dumps/{INSTANCE_ID}/202612052331/"
    assert keys(s3) == [base + "dmesg.txt", base + "metadata.json", base + "vmcore"]


def test_a_bad_layout_parameter_ships_nothing_and_keeps_the_dump(
    s3: Any, tmp_path: Path, moto_reset: str, identity_imds: str
) -> None:
    _parameters(
        moto_reset, **{"/crashcart/dump-bucket": BUCKET, "/crashcart/dump-layout": "central"}
    )
    env = _host_reading_parameters(tmp_path, identity_imds)
    folder = make_dump(Path(env["CRASHCART_CRASH_DIR"]), "202612052332")
    result = run_agent(env, "ship", endpoint=moto_reset)
    assert result.returncode == 1
    assert "could not ship 1 dump(s) (kept" in result.stderr
    assert "/crashcart/dump-layout='central'" in result.stderr
    assert keys(s3) == []
    assert folder.is_dir()
