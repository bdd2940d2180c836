"""docs/iam.md is generated from the reference app and current; every statement has a reason."""

from __future__ import annotations

import functools

from crashcart.tools.iam_doc import (
    MISSING_REASON,
    reason_for,
    render,
    render_markdown,
    synthesize_reference_templates,
)
from tests.conftest import REPO_ROOT

IAM_DOC = REPO_ROOT / "docs" / "iam.md"


@functools.cache
def generated() -> str:
    return render_markdown(synthesize_reference_templates())


def test_docs_iam_md_is_current() -> None:
    assert IAM_DOC.is_file(), "docs/iam.md is missing: run `make docs`"
    assert IAM_DOC.read_text(encoding="utf-8") == generated(), (
        "docs/iam.md is stale: run `make docs` (python -m crashcart.tools.iam_doc > docs/iam.md)"
    )


def test_every_statement_has_a_reason() -> None:
    missing = [line for line in generated().splitlines() if MISSING_REASON in line]
    assert missing == [], "add a reason to crashcart/tools/iam_doc.py ACTION_REASONS"


def test_the_interrupt_and_its_tamper_protection_are_documented() -> None:
    text = generated()
    assert "`ec2:SendDiagnosticInterrupt`" in text
    assert "aws:ResourceTag/crashcart:diagnostic-interrupt = enabled" in text
    assert "ForAnyValue:StringEqualsIgnoreCase aws:TagKeys = crashcart:diagnostic-interrupt" in text
    assert "crashcart-protect-opt-in-tag" in text


def test_render_intrinsics() -> None:
    value = {
        "Fn::Join": [
            "",
            ["arn:", {"Ref": "AWS::Partition"}, ":s3:::", {"Ref": "Bucket1"}, "/dumps/*"],
        ]
    }
    assert render(value) == "arn:${AWS::Partition}:s3:::${Bucket1}/dumps/*"
    assert render({"Fn::GetAtt": ["Table1", "Arn"]}) == "${Table1.Arn}"
    assert render(["a", True]) == "a, true"


def test_reason_for_uses_sid_then_actions_and_flags_unknown() -> None:
    assert "tamper" in reason_for({"Sid": "CrashcartDenyOptInTagChanges0123abcd"}).lower()
    assert reason_for({"Action": "sns:Publish"}) == "Notify people of an incident."
    assert reason_for({"Action": "kms:GenerateDataKeyWithoutPlaintext"}).startswith("Envelope")
    assert MISSING_REASON in reason_for({"Action": "iam:CreateUser"})
