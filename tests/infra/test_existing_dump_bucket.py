"""One way of wiring the crash-dump bucket: ``dumps`` (a CrashDumpBucket or an
ExistingDumpBucket), never a bucket and its key as two props that can disagree."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Template

from crashcart import (
    AutoScalingHold,
    ExistingDumpBucket,
    FleetWatch,
    UnresponsiveInstanceRemediation,
)
from crashcart.errors import ConfigurationError
from crashcart.stacks.remediation import CrashcartRemediationStack
from tests.support.remediation import env, evidence_bucket, new_app, resources_of

KEY_ARN = "arn:aws:kms:eu-west-1:111111111111:key/0123abcd-0123-4567-89ab-0123456789ab"


def _statements(template: dict[str, Any], sid: str) -> list[dict[str, Any]]:
    return [
        statement
        for policy in resources_of(template, "AWS::IAM::ManagedPolicy").values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if statement.get("Sid") == sid
    ]


def test_the_key_defaults_to_the_buckets_own() -> None:
    stack = cdk.Stack(new_app(), "Own", env=env())
    bucket, key = evidence_bucket(stack)
    assert ExistingDumpBucket(bucket=bucket).encryption_key is key
    imported = s3.Bucket.from_bucket_name(stack, "Imported", "my-crash-dumps")
    assert ExistingDumpBucket(bucket=imported).encryption_key is None


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"bucket": "my-crash-dumps"}, "bucket='my-crash-dumps'"),
        ({"encryption_key": KEY_ARN}, "encryption_key="),
    ],
)
def test_fails_on_a_value_of_the_wrong_type(values: dict[str, Any], named: str) -> None:
    stack = cdk.Stack(new_app(), "Wrong", env=env())
    given = {"bucket": s3.Bucket.from_bucket_name(stack, "B", "my-crash-dumps"), **values}
    with pytest.raises(ConfigurationError, match="ExistingDumpBucket") as raised:
        ExistingDumpBucket(**given)
    assert named in str(raised.value)


def test_an_imported_bucket_and_key_reach_the_remediation_and_the_hold() -> None:
    stack = cdk.Stack(new_app(), "Imported", env=env())
    dumps = ExistingDumpBucket(
        bucket=s3.Bucket.from_bucket_name(stack, "Dumps", "my-crash-dumps"),
        encryption_key=kms.Key.from_key_arn(stack, "DumpKey", KEY_ARN),
    )
    remediation = UnresponsiveInstanceRemediation(
        stack, "Remediation", dumps=dumps, fleet=FleetWatch()
    )
    AutoScalingHold(stack, "Hold", remediation=remediation)
    template = Template.from_stack(stack).to_json()
    assert remediation.evidence_bucket is dumps.bucket
    assert remediation.evidence_key is dumps.encryption_key
    # both functions (the remediation's and the hold's) may use exactly that key
    keys = _statements(template, "EvidenceKey")
    assert [s["Resource"] for s in keys] == [KEY_ARN, KEY_ARN]
    evidence = _statements(template, "Evidence")
    assert len(evidence) == 2
    assert all("my-crash-dumps/evidence/*" in str(s["Resource"]) for s in evidence)


def test_an_sse_s3_bucket_gets_no_key_right() -> None:
    stack = cdk.Stack(new_app(), "SseS3", env=env())
    dumps = ExistingDumpBucket(bucket=s3.Bucket.from_bucket_name(stack, "D", "my-crash-dumps"))
    remediation = UnresponsiveInstanceRemediation(
        stack, "Remediation", dumps=dumps, fleet=FleetWatch()
    )
    AutoScalingHold(stack, "Hold", remediation=remediation)
    assert _statements(Template.from_stack(stack).to_json(), "EvidenceKey") == []


def test_the_remediation_refuses_a_bare_bucket() -> None:
    stack = cdk.Stack(new_app(), "Bare", env=env())
    bucket, _ = evidence_bucket(stack)
    with pytest.raises(ConfigurationError, match=r"dumps=.*ExistingDumpBucket"):
        UnresponsiveInstanceRemediation(
            stack,
            "Remediation",
            dumps=bucket,  # type: ignore[arg-type]
            fleet=FleetWatch(),
        )


def test_the_hold_has_no_key_prop_of_its_own() -> None:
    stack = cdk.Stack(new_app(), "HoldKey", env=env())
    bucket, key = evidence_bucket(stack)
    remediation = UnresponsiveInstanceRemediation(
        stack, "Remediation", dumps=ExistingDumpBucket(bucket=bucket), fleet=FleetWatch()
    )
    with pytest.raises(TypeError, match="evidence_key"):
        AutoScalingHold(stack, "Hold", remediation=remediation, evidence_key=key)  # type: ignore[call-arg]


def test_the_stack_takes_an_existing_bucket_instead_of_creating_one() -> None:
    app = new_app()
    # the bucket lives in another stack (an account-wide dump bucket, say)
    shared = cdk.Stack(app, "Shared", env=env())
    bucket, key = evidence_bucket(shared)
    stack = CrashcartRemediationStack(
        app, "Workload", env=env(), dumps=ExistingDumpBucket(bucket=bucket, encryption_key=key)
    )
    assert stack.crash_dumps is None
    assert stack.triage_job is None
    assert stack.evidence_bucket is bucket
    assert stack.remediation.evidence_key is key
    assert resources_of(Template.from_stack(stack).to_json(), "AWS::S3::Bucket") == {}


def test_the_stack_refuses_a_crash_dump_bucket_of_another_form() -> None:
    stack = cdk.Stack(new_app(), "Other", env=env())
    bucket, _ = evidence_bucket(stack)
    with pytest.raises(ConfigurationError, match=r"dumps=.*ExistingDumpBucket"):
        CrashcartRemediationStack(
            stack.node.scope,  # type: ignore[arg-type]
            "Workload",
            env=env(),
            dumps=bucket,  # type: ignore[arg-type]
        )
