"""The reference app's stateful resources keep their logical ids, types and deletion policies.

CloudFormation replaces a resource whose logical id changes: it creates a new one under the
new id and deletes (or, with ``Retain``, orphans) the old one. For a table, bucket or key that
is data loss or a silent fork of state, so a restructuring that moves or renames a construct
must fail here first. The ids are listed literally on purpose: a test that derives them from
the code would follow a rename instead of catching it.

What counts as stateful (and so is pinned):

- ``AWS::DynamoDB::Table`` (incident history), ``AWS::S3::Bucket`` (crash dumps, debug
  symbols, build and access logs), ``AWS::KMS::Key`` (a new key cannot read what the old one
  encrypted).
- ``AWS::Logs::LogGroup`` with ``DeletionPolicy: Retain``: a renamed one is orphaned and the
  function starts writing to a new, empty group.
- ``AWS::SQS::Queue``: every crashcart queue holds failed or rejected events; replacing one
  deletes the messages an operator has not looked at yet.
- ``AWS::SNS::Topic``: people subscribe to it outside the stack (e-mail confirmations, chat
  integrations, alarms in other stacks reference its ARN); a new topic has none of them.
- ``AWS::SSM::Parameter``: the kill switch's value is set by operators and a replacement
  resets it to the template's default; the dump-bucket parameter has a fixed name, so a
  renamed one fails the update ("already exists").

Not pinned: Image Builder components, recipes and configurations are immutable, versioned
definitions that are meant to be replaced when their content changes (the images they built
live outside the stack); ECR has no repository here; IAM, Lambda, EventBridge, alarms, VPC
plumbing and ECS definitions hold no data and are recreated identically.

A new stateful resource fails :func:`test_every_stateful_resource_is_pinned` until it is
added to :data:`PINNED`, so it is guarded from then on.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.support.reference import reference_templates_without_nag

STATEFUL_TYPES = frozenset(
    {
        "AWS::DynamoDB::Table",
        "AWS::DynamoDB::GlobalTable",
        "AWS::S3::Bucket",
        "AWS::KMS::Key",
        "AWS::Logs::LogGroup",
        "AWS::SQS::Queue",
        "AWS::SNS::Topic",
        "AWS::SSM::Parameter",
        "AWS::ECR::Repository",
        "AWS::EFS::FileSystem",
    }
)

RETAIN = "Retain"
DELETE = "Delete"
#: A resource type with no DeletionPolicy in the template (CloudFormation's default: Delete).
UNSET = None

#: stack -> logical id -> (type, DeletionPolicy). UpdateReplacePolicy must equal DeletionPolicy.
PINNED: dict[str, dict[str, tuple[str, str | None]]] = {
    "CrashcartImagePipeline": {
        "DebugSymbolsKey8642996C": ("AWS::KMS::Key", RETAIN),
        "DebugSymbolsAccessLogsAA29520D": ("AWS::S3::Bucket", RETAIN),
        "DebugSymbolsBucketDAA9E3F7": ("AWS::S3::Bucket", RETAIN),
        "KdumpImagePipelineKeyDC03BA98": ("AWS::KMS::Key", RETAIN),
        "KdumpImagePipelineAccessLogsFBAB84A0": ("AWS::S3::Bucket", RETAIN),
        "KdumpImagePipelineBuildLogsB124283A": ("AWS::S3::Bucket", RETAIN),
        "KdumpImagePipelineNotificationsC38D7782": ("AWS::SNS::Topic", UNSET),
    },
    "CrashcartAccess": {},
    "CrashcartRemediation": {
        "CrashDumpsKey0CC12765": ("AWS::KMS::Key", RETAIN),
        "CrashDumpsAccessLogsD72BA3EB": ("AWS::S3::Bucket", RETAIN),
        "CrashDumpsBucketAE8A221C": ("AWS::S3::Bucket", RETAIN),
        "CrashDumpsBucketNameParameter452B91D1": ("AWS::SSM::Parameter", UNSET),
        "CrashDumpsDumpArrivalFailedEventsEF0316C5": ("AWS::SQS::Queue", DELETE),
        "CrashDumpsDumpArrivalQueueKey17A2D9A0": ("AWS::KMS::Key", RETAIN),
        "CrashDumpsDumpArrivalUndelivered0983338E": ("AWS::SQS::Queue", DELETE),
        "CrashDumpsDumpArrivalLogs0DAAA8C4": ("AWS::Logs::LogGroup", RETAIN),
        "RemediationKey295E31D0": ("AWS::KMS::Key", RETAIN),
        "RemediationIncidents920F5F76": ("AWS::DynamoDB::Table", RETAIN),
        "RemediationKillSwitchEC140FA8": ("AWS::SSM::Parameter", UNSET),
        "RemediationTopicD0F28822": ("AWS::SNS::Topic", UNSET),
        "RemediationDeadLetterQueueC293EC72": ("AWS::SQS::Queue", DELETE),
        "RemediationFailureQueue99EB40F6": ("AWS::SQS::Queue", DELETE),
        "RemediationRejectedQueueEF6EF951": ("AWS::SQS::Queue", DELETE),
        "RemediationPartialDataQueueFE34EF0C": ("AWS::SQS::Queue", DELETE),
        "RemediationLogs288CA192": ("AWS::Logs::LogGroup", RETAIN),
        "TriageJobLogs9A335AD4": ("AWS::Logs::LogGroup", RETAIN),
        "TriageJobQueueKey7C2E2A13": ("AWS::KMS::Key", RETAIN),
        "TriageJobFailedRuns6FA66F62": ("AWS::SQS::Queue", DELETE),
        "TriageJobUndeliveredEE76A6D0": ("AWS::SQS::Queue", DELETE),
        "DumpOverdueSweepDeadLetterQueue57157874": ("AWS::SQS::Queue", DELETE),
        "DumpOverdueSweepLogs5F157C5E": ("AWS::Logs::LogGroup", RETAIN),
        "HoldDeadLetterQueue946B154F": ("AWS::SQS::Queue", DELETE),
        "HoldLogs2D63A6D5": ("AWS::Logs::LogGroup", RETAIN),
        "KillSwitchReachFailureQueue75703350": ("AWS::SQS::Queue", DELETE),
        "KillSwitchReachLogs24F967EA": ("AWS::Logs::LogGroup", RETAIN),
    },
}

#: Tables whose deletion protection must stay on (a retained table can still be deleted by
#: hand; deletion protection makes that a deliberate two-step act).
DELETION_PROTECTED_TABLES = {"CrashcartRemediation": ("RemediationIncidents920F5F76",)}


def _is_stateful(resource: dict[str, Any]) -> bool:
    if resource["Type"] not in STATEFUL_TYPES:
        return False
    # A log group the stack deletes with itself holds nothing anyone relies on keeping.
    return resource["Type"] != "AWS::Logs::LogGroup" or resource.get("DeletionPolicy") == RETAIN


def pin_violations(stack: str, template: dict[str, Any]) -> list[str]:
    """Every way ``template`` breaks the pins of ``stack`` (empty: none)."""
    resources: dict[str, Any] = template.get("Resources", {})
    problems: list[str] = []
    for logical_id, (kind, policy) in PINNED[stack].items():
        resource = resources.get(logical_id)
        if resource is None:
            problems.append(
                f"{stack}: {kind} {logical_id} is gone: a renamed or moved construct makes "
                "CloudFormation replace it (new resource, old one deleted or orphaned)"
            )
            continue
        if resource["Type"] != kind:
            problems.append(f"{stack}: {logical_id} is a {resource['Type']}, pinned as {kind}")
        for attribute in ("DeletionPolicy", "UpdateReplacePolicy"):
            if resource.get(attribute) != policy:
                problems.append(
                    f"{stack}: {logical_id} has {attribute} {resource.get(attribute)!r}, "
                    f"pinned as {policy!r}"
                )
    for logical_id in DELETION_PROTECTED_TABLES.get(stack, ()):
        properties = resources.get(logical_id, {}).get("Properties", {})
        if properties.get("DeletionProtectionEnabled") is not True:
            problems.append(f"{stack}: table {logical_id} lost DeletionProtectionEnabled")
    return problems


@pytest.fixture(scope="module")
def templates() -> dict[str, dict[str, Any]]:
    return reference_templates_without_nag()


def test_the_reference_app_has_exactly_the_pinned_stacks(
    templates: dict[str, dict[str, Any]],
) -> None:
    assert sorted(templates) == sorted(PINNED)


@pytest.mark.parametrize("stack", sorted(PINNED))
def test_stateful_resources_keep_logical_id_type_and_deletion_policy(
    templates: dict[str, dict[str, Any]], stack: str
) -> None:
    assert pin_violations(stack, templates[stack]) == []


@pytest.mark.parametrize("stack", sorted(PINNED))
def test_every_stateful_resource_is_pinned(
    templates: dict[str, dict[str, Any]], stack: str
) -> None:
    found = {
        logical_id: (resource["Type"], resource.get("DeletionPolicy"))
        for logical_id, resource in templates[stack]["Resources"].items()
        if _is_stateful(resource)
    }
    unpinned = {key: value for key, value in found.items() if key not in PINNED[stack]}
    assert not unpinned, (
        f"new stateful resources in {stack}: add them to PINNED so a later rename fails "
        f"here: {unpinned}"
    )


def test_the_pins_catch_a_rename_a_lost_retain_and_lost_deletion_protection(
    templates: dict[str, dict[str, Any]],
) -> None:
    """The checker is real: each kind of change it guards against is reported."""
    template = copy.deepcopy(templates["CrashcartRemediation"])
    resources = template["Resources"]
    resources["RemediationIncidentsRenamed"] = resources.pop("RemediationIncidents920F5F76")
    resources["CrashDumpsKey0CC12765"]["DeletionPolicy"] = DELETE
    resources["RemediationRejectedQueueEF6EF951"]["Type"] = "AWS::SNS::Topic"
    problems = pin_violations("CrashcartRemediation", template)
    assert any("RemediationIncidents920F5F76 is gone" in p for p in problems), problems
    assert any("CrashDumpsKey0CC12765 has DeletionPolicy 'Delete'" in p for p in problems)
    assert any("RemediationRejectedQueueEF6EF951 is a AWS::SNS::Topic" in p for p in problems)
    assert any("lost DeletionProtectionEnabled" in p for p in problems), problems
