"""docs/aws-assumptions.md is well formed and in step with the code that relies on it.

Every AWS behaviour crashcart relies on that moto or the templates cannot prove has an entry in
the register; code names the entry where it relies on it (``aws-assumption: <id>``). These tests
fail when code names an id the register lacks, when an entry is named by no code (stale), when
an entry lacks a field or its Source cites no page, when ids repeat, and when the register lacks
one of the entries issue 14 requires. The template-driven half (what the deployed app relies on
must be registered) is tests/infra/test_aws_assumptions_deployed.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import aws_assumptions as register_module
from tests.support.aws_assumptions import (
    FIELDS,
    code_references,
    collect_templates,
    parse_register,
    read_register,
    unregistered,
)

#: Entries issue 14 requires ("Done when": the attestation mechanism, the S3 key encoding, the
#: contributor event shape, the STIG component names, the supported instance types).
REQUIRED = (
    "attestation-self-tag",
    "s3-event-key-encoding",
    "contributor-event-shape",
    "imagebuilder-stig-components",
    "diagnostic-interrupt-instance-types",
)


@pytest.fixture(scope="module")
def register() -> register_module.Register:
    return read_register()


@pytest.fixture(scope="module")
def references() -> dict[str, list[str]]:
    return code_references()


# --------------------------------------------------------------------------- the register itself


def test_the_register_is_well_formed(register: register_module.Register) -> None:
    assert register.entries, "docs/aws-assumptions.md has no '### <id>' entries"
    assert register.problems == []


def test_required_entries_exist(register: register_module.Register) -> None:
    missing = [entry_id for entry_id in REQUIRED if entry_id not in register.ids]
    assert missing == [], f"docs/aws-assumptions.md lacks the required entries {missing}"


# --------------------------------------------------------------------------- register <-> code


def test_the_code_names_register_entries(references: dict[str, list[str]]) -> None:
    """The scan is not vacuous: Python, shell and Image Builder documents all name entries."""
    places = [place for where in references.values() for place in where]
    assert len(places) >= 20, places
    suffixes = {place.split(":", 1)[0].rsplit(".", 1)[-1] for place in places}
    assert {"py", "yaml"} <= suffixes, suffixes


def test_every_id_named_in_code_has_an_entry(
    register: register_module.Register, references: dict[str, list[str]]
) -> None:
    unknown = {
        entry_id: where for entry_id, where in references.items() if entry_id not in register.ids
    }
    assert unknown == {}, (
        "code names aws-assumption ids that docs/aws-assumptions.md has no entry for: add the "
        "entry (format at the top of the page) or fix the id"
    )


def test_every_entry_is_named_by_code(
    register: register_module.Register, references: dict[str, list[str]]
) -> None:
    stale = [entry.id for entry in register.entries if entry.id not in references]
    assert stale == [], (
        "these register entries are named by no code under crashcart/ (stale, or the comment "
        "'aws-assumption: <id>' is missing where the code relies on them)"
    )


# --------------------------------------------------------------------------- the checks can fail

_GOOD_ENTRY = """\
### good-entry
- **Relies on:** something AWS does.
- **Source:** <https://docs.aws.amazon.com/x.html> (X)
- **Verified:** documentation
- **If wrong:** it breaks
  loudly (a continuation line).
- **Check in an account:** `aws x describe`
"""


def test_a_good_entry_parses_with_all_its_fields() -> None:
    parsed = parse_register("# AWS assumptions\n\n    ### <id>\n\n## Section\n\n" + _GOOD_ENTRY)
    assert parsed.problems == []
    assert parsed.ids == ["good-entry"]
    assert set(parsed.entries[0].fields) == set(FIELDS)
    assert parsed.entries[0].fields["If wrong"] == "it breaks loudly (a continuation line)."


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda t: t.replace("- **Verified:** documentation\n", ""), "no 'Verified' field"),
        (lambda t: t.replace("<https://docs.aws.amazon.com/x.html> (X)", "(X)"), "no https URL"),
        (lambda t: t.replace("### good-entry", "### Good_Entry"), "not kebab-case"),
        (lambda t: t + "\n" + t, "used twice"),
        (lambda t: t.replace("**Verified:** documentation", "**Verified:** yes"), "Verified must"),
        (
            lambda t: t.replace("documentation", "offline test (`tests/unit/test_nothing.py`)"),
            "does not exist",
        ),
        (lambda t: t.replace("documentation", "offline test"), "names no tests/"),
        (lambda t: t + "A loose paragraph.\n", "text outside the five fields"),
        (lambda t: t + "- **Owner:** me\n", "unknown field 'Owner'"),
        (lambda t: t.replace("- **Relies on:** something AWS does.", "- **Relies on:**"), "empty"),
    ],
)
def test_a_malformed_entry_is_reported(change: object, problem: str) -> None:
    assert callable(change)
    parsed = parse_register(change(_GOOD_ENTRY))
    assert any(problem in p for p in parsed.problems), parsed.problems


def test_headings_inside_a_code_fence_are_not_entries() -> None:
    parsed = parse_register("```\n### not-an-entry\n```\n" + _GOOD_ENTRY)
    assert parsed.ids == ["good-entry"]


def test_the_code_scan_reads_code_scripts_and_unit_files_only(tmp_path: Path) -> None:
    files = {
        "a.py": "x = 1  # aws-assumption: one-id\n",
        "b.sh": "# aws-assumption: two-id, three-id\n",
        "Dockerfile": "# aws-assumption: four-id\n",
        "c.service": "# aws-assumption: five-id\n",
        "d.yaml": "      # aws-assumption: six-id\n",
        "notes.md": "aws-assumption: ignored-doc\n",
        "__pycache__/e.py": "# aws-assumption: ignored-cache\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    found = code_references(tmp_path)
    assert sorted(found) == ["five-id", "four-id", "one-id", "six-id", "three-id", "two-id"]


# --------------------------------------------------------------------------- the template walker


def test_the_template_walker_finds_principals_keys_and_variables() -> None:
    template = {
        "Resources": {
            "Key": {
                "Type": "AWS::KMS::Key",
                "Properties": {
                    "KeyPolicy": {
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Principal": {
                                    "Service": {
                                        "Fn::Join": [
                                            "",
                                            ["logs.", {"Ref": "AWS::Region"}, ".amazonaws.com"],
                                        ]
                                    }
                                },
                                "Action": "kms:Decrypt",
                                "Resource": "*",
                                "Condition": {
                                    "StringEquals": {"aws:ResourceTag/team:name": "x"},
                                    "ArnLike": {"kms:EncryptionContext:aws:logs:arn": "arn"},
                                },
                            }
                        ]
                    }
                },
            },
            "Policy": {
                "Type": "AWS::IAM::ManagedPolicy",
                "Properties": {
                    "PolicyDocument": {
                        "Statement": {
                            "Effect": "Allow",
                            "Action": "s3:PutObject",
                            "Resource": [
                                {"Fn::Sub": "arn:${AWS::Partition}:s3:::b/${!aws:userid}/*"},
                                {"Fn::Join": ["", ["arn:aws:s3:::b/", "${ec2:SourceInstanceARN}"]]},
                            ],
                        }
                    }
                },
            },
            "Permission": {
                "Type": "AWS::Lambda::Permission",
                "Properties": {"Principal": "events.amazonaws.com", "Action": "lambda:Invoke"},
            },
            "Alarm": {
                "Type": "AWS::CloudWatch::Alarm",
                "Properties": {
                    "AlarmActions": [
                        {
                            "Fn::Join": [
                                "",
                                [
                                    "arn:",
                                    {"Ref": "AWS::Partition"},
                                    ":automate:",
                                    "eu-west-1",
                                    ":ec2:reboot",
                                ],
                            ]
                        }
                    ]
                },
            },
        }
    }
    terms = collect_templates({"Stack": template})
    assert set(terms.service_principals) == {"logs.<region>.amazonaws.com", "events.amazonaws.com"}
    assert set(terms.condition_keys) == {"aws:ResourceTag/", "kms:EncryptionContext:aws:logs:arn"}
    assert set(terms.policy_variables) == {"${aws:userid}", "${ec2:SourceInstanceARN}"}
    assert set(terms.alarm_actions) == {"arn:aws:automate:<region>:ec2:reboot"}
    assert terms.service_principals["events.amazonaws.com"] == {"Stack/Permission"}
    assert unregistered(terms.service_principals, "logs.<region>.amazonaws.com") == {
        "events.amazonaws.com": ["Stack/Permission"]
    }
