"""Generate docs/iam.md from the synthesized policies of the reference app.

``python -m crashcart.tools.iam_doc > docs/iam.md`` synthesizes the stacks of
:func:`crashcart.stacks.build_reference_app` in-process (with the feature flags of the
repository's ``cdk.json``, as ``cdk synth`` would) and prints every IAM statement that would
deploy — identity policies, managed policies, role trust policies and resource policies —
with why it exists, followed by the organisation guardrail SCPs (rendered, not deployed).

A statement's reason comes from its ``Sid`` when crashcart wrote one (:data:`SID_REASONS`),
otherwise from the reasons of its actions (:data:`ACTION_REASONS`). An action without a
recorded reason is printed as ``NO RATIONALE RECORDED``; the test suite fails on that, so a
new permission cannot deploy without a sentence a reviewer can check.

Why one module: most of it is the table of reasons per statement id and action, kept beside
the generator that fails on a missing one, so a new permission and its reason change one
file.
"""

from __future__ import annotations

import fnmatch
import json
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crashcart.constructs import diagnostic_interrupt_operator_policy as access
from crashcart.guardrails import render_service_control_policies

REPO_ROOT = Path(__file__).resolve().parents[2]
MISSING_REASON = "NO RATIONALE RECORDED"

#: Reasons by statement id (crashcart's own statements; ids may carry a tag digest suffix).
SID_REASONS: dict[str, str] = {
    access.SID_INTERRUPT: (
        "The diagnostic interrupt itself, only for instances carrying the opt-in tag, only in "
        "the named regions and accounts."
    ),
    access.SID_OPERATOR_CONSOLE: (
        "Operators read the console of an opted-in instance to see the hang before, and the "
        "panic after, the interrupt."
    ),
    access.SID_OPERATOR_DESCRIBE: (
        "Operators find the instance, its status checks and its type. EC2 describe calls "
        "support no resource-level permissions, so * is their only valid resource."
    ),
    access.SID_DENY_TAG_KEY: (
        "Tamper protection: whoever may interrupt must never add, change or remove the "
        "opt-in tag (keys compared ignoring case, as IAM does), or the tag condition would "
        "mean nothing. Covers tagging at launch, which EC2 authorizes as ec2:CreateTags."
    ),
    access.SID_DENY_TAG_AT_LAUNCH: (
        "Tamper protection: no launching of instances that carry the opt-in tag."
    ),
    access.SID_DENY_DELETE_ALL_TAGS: (
        "Tamper protection: DeleteTags without tag keys deletes every tag, the opt-in tag included."
    ),
    # The full-report triage job (DumpTriageJob)
    "TriageReadDumps": "The triage task downloads the dump it was started for (read only).",
    "TriageWriteReports": (
        "The triage task writes report.md and report.json under reports/, a prefix "
        "instances cannot write."
    ),
    "TriageDumpKeyThroughS3": "Dumps and reports are encrypted with the dump key; only through S3.",
    "TriageFindIncident": "Find the incident whose dump_keys list the dump being triaged.",
    "TriageLinkIncident": (
        "Add the report's keys to that incident: only the report attributes (the task parses "
        "untrusted memory images), and only if the incident links the dump (conditional)."
    ),
    "TriageNotify": "Tell on-call the report is ready, or why there is none.",
    "TriageIncidentTableKey": "The incident table is encrypted with the remediation key.",
    "TriageTopicKey": "The topic is encrypted with the remediation key.",
    "TriageRunTask": (
        "EventBridge starts the triage task definition, on the triage cluster only (ecs:cluster)."
    ),
    "TriagePassTaskRoles": "Hand the task and execution roles to ECS when the task starts.",
    "TriagePullImage": "ECS pulls the triage image from the CDK asset repository.",
    "TriageRegistryLogin": (
        "ECR login for the pull: ecr:GetAuthorizationToken has no resource-level permissions."
    ),
    "TriageWriteLogs": "The triage task writes its log lines.",
    # The debug-symbol store (DebugSymbolStore)
    "PublishSymbols": (
        "The AMI build instance creates symbols/<build id>/vmlinux and metadata.json (never "
        "overwrites: the bucket policy denies PutObject without If-None-Match)."
    ),
    "EncryptSymbolsThroughS3": "Symbols are encrypted with the store's key; only through S3.",
    "ReadSymbols": "Readers (the triage job) fetch a vmlinux by the build id of the dump.",
    "MissingSymbolsAre404": (
        "Without ListBucket S3 answers a lookup of an unpublished build id with 403, not 404."
    ),
    "DecryptSymbolsThroughS3": "Symbols are encrypted with the store's key; only through S3.",
    "DenySymbolOverwrite": "Published symbols are never replaced: create-only writes.",
    "EventBridgeRulesOfThisAccount": (
        "EventBridge rules of this account (only) put events into the queues this key "
        "encrypts (a rule's target or dead-letter queue; each queue policy names its rules)."
    ),
    # Alarms notifying crashcart's topics (crashcart/constructs/_internal/service_access.py)
    "CrashcartAlarmsPublish": (
        "CloudWatch alarms of this account (only) notify the topic: failure-queue, "
        "dead-letter and triage alarms (without it SNS refuses every alarm action)."
    ),
    "CrashcartAlarmsNotifyTopic": (
        "CloudWatch alarms of this account (only) use the key of the topic they notify."
    ),
}

#: Why crashcart uses each action (exact names or fnmatch patterns such as ``kms:Describe*``).
ACTION_REASONS: dict[str, str] = {
    # EC2: the interrupt and what the decision needs to know first
    "ec2:SendDiagnosticInterrupt": "Inject the NMI that makes a hung kernel panic into kdump.",
    "ec2:DescribeInstances": "Read the instance's tags, state, type and launch time.",
    "ec2:DescribeInstanceStatus": "Read the instance's status checks and scheduled events.",
    "ec2:DescribeInstanceTypes": "Tell Nitro from Xen and x86_64 from arm64 for the type.",
    "ec2:DescribeTags": "Find instances by the opt-in tag.",
    "ec2:GetConsoleOutput": "Keep the console output as evidence of the hang.",
    "ec2:CreateTags": "Tagging (see the statement's effect and condition).",
    "ec2:DeleteTags": "Tagging (see the statement's effect and condition).",
    "ec2:RunInstances": "Launching instances (see the statement's effect and condition).",
    "ec2:RebootInstances": "Reboot an instance still impaired after the dump deadline.",
    "ec2:CreateNetworkInterface": "Lambda in a VPC: attach the function's network interface.",
    "ec2:DescribeNetworkInterfaces": "Lambda in a VPC: find the function's network interfaces.",
    "ec2:DeleteNetworkInterface": "Lambda in a VPC: remove the function's network interface.",
    "ec2:DescribeImages": "Image Builder: find parent and output images.",
    # Systems Manager
    "ssm:GetParameter": "Read a crashcart parameter (kill switch, dump bucket name).",
    "ssm:GetParameters": "Read crashcart parameters (kill switch, dump bucket name).",
    "ssm:GetParameterHistory": "Read a crashcart parameter's history.",
    "ssm:DescribeParameters": "List parameters (console use only).",
    "ssm:UpdateInstanceInformation": "Systems Manager agent on the instance.",
    "ssmmessages:*": "Session Manager channel of the Systems Manager agent.",
    "ec2messages:*": "Systems Manager agent message channel.",
    # Incident table
    "dynamodb:GetItem": "Read an incident, limits or circuit-breaker item.",
    "dynamodb:PutItem": "Record an incident.",
    "dynamodb:UpdateItem": "Update an incident, the per-instance limits or the breaker.",
    "dynamodb:Query": "Find an instance's latest incident.",
    "dynamodb:TransactWriteItems": "Claim an interrupt atomically (budget, cooldown, incident).",
    "dynamodb:ConditionCheckItem": "Check the circuit breaker inside the atomic claim.",
    "dynamodb:DeleteItem": "Remove a stale incident-table item.",
    "dynamodb:BatchGetItem": "Read several incident-table items.",
    "dynamodb:BatchWriteItem": "Write several incident-table items.",
    "dynamodb:Scan": "Sweep incidents (dump overdue, stuck alarms).",
    "dynamodb:DescribeTable": "Table metadata needed by the SDK's table helpers.",
    "dynamodb:GetRecords": "Read the table's stream.",
    "dynamodb:GetShardIterator": "Read the table's stream.",
    "dynamodb:DescribeStream": "Read the table's stream.",
    "dynamodb:ListStreams": "Read the table's stream.",
    # Notifications and queues
    "sns:Publish": "Notify people of an incident.",
    "sqs:SendMessage": "Keep a rejected or failed event for inspection.",
    "sqs:ReceiveMessage": "Read kept events.",
    "sqs:DeleteMessage": "Remove a handled event.",
    "sqs:GetQueueAttributes": "Queue metadata for event source mappings.",
    "sqs:GetQueueUrl": "Find the queue.",
    "sqs:ChangeMessageVisibility": "Retry a kept event later.",
    # Crash dumps and evidence
    "s3:PutObject": "Write a crash dump, its metadata or incident evidence.",
    "s3:GetObject": "Read a crash dump, its dmesg or metadata.",
    "s3:GetObjectVersion": "Read a version of a crash dump object.",
    "s3:ListBucket": "List the dumps of an instance.",
    "s3:GetBucketLocation": "Find the dump bucket's region.",
    "s3:AbortMultipartUpload": "Give up a failed multipart upload of a large vmcore.",
    "s3:ListMultipartUploadParts": "Resume a multipart upload of a large vmcore.",
    "s3:PutObjectTagging": "Tag a dump object.",
    "s3:GetObjectTagging": "Read a dump object's tags.",
    "s3:DeleteObject": "Remove objects (log or dump retention).",
    "s3:DeleteObject*": "Remove objects (auto-delete on stack removal).",
    "s3:GetBucket*": "Read bucket settings (CDK-managed helpers).",
    "s3:List*": "List objects (CDK-managed helpers).",
    "s3:PutBucketPolicy": "Bucket policy management (CDK-managed helpers).",
    "s3:*": "Statement on the bucket itself (see its effect and condition: e.g. deny non-TLS).",
    "sqs:*": "Statement on the queue itself (see its effect and condition: e.g. deny non-TLS).",
    # Keys
    "kms:Encrypt": "Encrypt with the customer managed key of the data it protects.",
    "kms:Decrypt": "Decrypt with the customer managed key of the data it protects.",
    "kms:ReEncrypt*": "Re-encrypt under the same customer managed key.",
    "kms:GenerateDataKey*": "Envelope encryption with the customer managed key.",
    "kms:Encrypt*": "Encrypt with the customer managed key of the data it protects.",
    "kms:Decrypt*": "Decrypt with the customer managed key of the data it protects.",
    "kms:Describe*": "Read the key's metadata.",
    "kms:DescribeKey": "Read the key's metadata.",
    "kms:*": "Key administration by the account (the default key policy).",
    "kms:Create*": "Key administration.",
    "kms:Enable*": "Key administration.",
    "kms:List*": "Key administration.",
    "kms:Put*": "Key administration.",
    "kms:Update*": "Key administration.",
    "kms:Revoke*": "Key administration.",
    "kms:Disable*": "Key administration.",
    "kms:Get*": "Key administration.",
    "kms:Delete*": "Key administration.",
    "kms:TagResource": "Key administration.",
    "kms:UntagResource": "Key administration.",
    "kms:ScheduleKeyDeletion": "Key administration.",
    "kms:CancelKeyDeletion": "Key administration.",
    # Logs, metrics, alarms, events
    "logs:CreateLogGroup": "Lambda writes its logs.",
    "logs:CreateLogStream": "Lambda writes its logs.",
    "logs:PutLogEvents": "Lambda writes its logs.",
    "logs:PutRetentionPolicy": "Set log retention (CDK-managed helper).",
    "logs:DeleteRetentionPolicy": "Set log retention (CDK-managed helper).",
    "cloudwatch:PutMetricAlarm": "Create the status-check alarm of a newly tagged instance.",
    "cloudwatch:DeleteAlarms": "Delete the alarm of a terminated or opted-out instance.",
    "cloudwatch:DescribeAlarms": "Find the alarms and their actions (kill-switch reach).",
    "cloudwatch:PutMetricData": "Publish crashcart's own metrics.",
    "cloudwatch:TagResource": "Tag alarms crashcart creates.",
    "cloudwatch:ListTagsForResource": "Recognise alarms crashcart created.",
    "cloudwatch:GetMetricData": "Read status-check metrics.",
    "cloudwatch:DisableAlarmActions": "Kill switch on: stop the actions of acting alarms.",
    "cloudwatch:EnableAlarmActions": "Kill switch off: let acting alarms act again.",
    "events:PutEvents": "Publish crashcart events.",
    "lambda:InvokeFunction": "Invoke a crashcart function (EventBridge, alarm action).",
    "sts:AssumeRole": "Who may assume the role (trust policy).",
    "sts:TagSession": "Session tags when the role is assumed.",
    "sts:AssumeRoleWithWebIdentity": "Who may assume the role (trust policy).",
    "iam:PassRole": "Hand a role to the service that runs with it.",
    "autoscaling:CompleteLifecycleAction": "Release an instance held for its dump.",
    "autoscaling:RecordLifecycleActionHeartbeat": "Keep holding an instance for its dump.",
    "autoscaling:DescribeAutoScalingGroups": "Find the group of an instance.",
    "autoscaling:DescribeAutoScalingInstances": "Find the group of an instance.",
    "xray:PutTraceSegments": "Lambda tracing.",
    "xray:PutTelemetryRecords": "Lambda tracing.",
    "imagebuilder:GetComponent": "Image Builder reads crashcart's components.",
    "imagebuilder:*": "Image Builder pipeline operations.",
    "ecr:*": "Image Builder container recipes.",
}


@dataclass(frozen=True)
class StatementRow:
    """One statement of one policy, rendered for the document."""

    effect: str
    actions: tuple[str, ...]
    not_actions: tuple[str, ...]
    resources: tuple[str, ...]
    principal: str
    conditions: str
    sid: str
    reason: str


@dataclass(frozen=True)
class PolicyEntry:
    """One policy document of one stack, with what it is attached to."""

    stack: str
    logical_id: str
    path: str
    kind: str
    attached_to: str
    statements: tuple[StatementRow, ...]


def render(value: Any) -> str:
    """A CloudFormation value as text: intrinsics become ``${...}`` placeholders."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        return ", ".join(render(item) for item in value)
    if isinstance(value, dict) and len(value) == 1:
        ((function, argument),) = value.items()
        if function == "Ref":
            return "${" + str(argument) + "}"
        if function == "Fn::GetAtt":
            parts = argument if isinstance(argument, list) else str(argument).split(".", 1)
            return "${" + ".".join(str(part) for part in parts) + "}"
        if function == "Fn::Join":
            separator, parts = argument
            return str(separator).join(render(part) for part in parts)
        if function == "Fn::Sub":
            return str(argument if isinstance(argument, str) else argument[0])
        if function == "Fn::ImportValue":
            return "${Import:" + render(argument) + "}"
        if function == "Fn::GetStackOutput" and isinstance(argument, dict):
            # a weak cross-stack reference (@aws-cdk/core:defaultCrossStackReferences)
            stack, output = render(argument.get("StackName")), render(argument.get("OutputName"))
            return "${Output:" + stack + ":" + output + "}"
        if function == "Fn::Select":
            return "${Select:" + render(argument) + "}"
        if function == "Fn::Split":
            return "${Split:" + render(argument) + "}"
        if function == "Fn::If":
            return "${If:" + render(argument) + "}"
    return json.dumps(value, sort_keys=True)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def reason_for(statement: Mapping[str, Any]) -> str:
    """Why ``statement`` exists: by its Sid, else by its actions."""
    sid = str(statement.get("Sid", ""))
    for known, sid_reason in SID_REASONS.items():
        if sid == known or (sid.startswith(known) and len(sid) == len(known) + 8):
            return sid_reason
    reasons: list[str] = []
    for action in _as_list(statement.get("Action")) + _as_list(statement.get("NotAction")):
        text = render(action)
        reason: str | None = ACTION_REASONS.get(text)
        if reason is None:
            for pattern, candidate in ACTION_REASONS.items():
                if "*" in pattern and fnmatch.fnmatchcase(text, pattern):
                    reason = candidate
                    break
        found = reason if reason is not None else f"{MISSING_REASON} for {text}"
        if found not in reasons:
            reasons.append(found)
    return " ".join(reasons) or MISSING_REASON


def _principal(statement: Mapping[str, Any]) -> str:
    principal = statement.get("Principal")
    if principal is None:
        return ""
    if isinstance(principal, str):
        return principal
    return "; ".join(
        f"{kind}: {render(value)}" for kind, value in sorted(principal.items(), key=str)
    )


def _statement_row(statement: Mapping[str, Any]) -> StatementRow:
    conditions = statement.get("Condition", {})
    condition_text = "; ".join(
        f"{operator} {key} = {render(value)}"
        for operator, pairs in sorted(conditions.items())
        for key, value in sorted(pairs.items())
    )
    return StatementRow(
        effect=str(statement.get("Effect", "")),
        actions=tuple(render(action) for action in _as_list(statement.get("Action"))),
        not_actions=tuple(render(action) for action in _as_list(statement.get("NotAction"))),
        resources=tuple(render(resource) for resource in _as_list(statement.get("Resource"))),
        principal=_principal(statement),
        conditions=condition_text,
        sid=str(statement.get("Sid", "")),
        reason=reason_for(statement),
    )


def _attached(properties: Mapping[str, Any]) -> str:
    targets = [
        f"{label} {render(item)}"
        for label, key in (("role", "Roles"), ("group", "Groups"), ("user", "Users"))
        for item in _as_list(properties.get(key))
    ]
    return ", ".join(targets) or (
        "no Roles / Users / Groups on the policy: the roles that list it in their "
        "ManagedPolicyArns carry it (their 'managed policy attachment' entries), or attach "
        "it to yours"
    )


def _attachment_reason(arn: str) -> str:
    """What a ManagedPolicyArns entry is: an AWS managed policy, or one of crashcart's."""
    if ":iam::aws:policy/" in arn:
        return f"AWS managed policy {arn}"
    return f"crashcart's customer-managed policy {arn} (its statements are listed with it)"


def policies_of_template(stack: str, template: Mapping[str, Any]) -> Iterator[PolicyEntry]:
    """Every policy document of one stack template, in logical-id order."""
    resources: Mapping[str, Any] = template.get("Resources", {})
    for logical_id in sorted(resources):
        resource = resources[logical_id]
        properties = resource.get("Properties", {})
        kind = resource.get("Type", "")
        path = str(resource.get("Metadata", {}).get("aws:cdk:path", ""))
        documents: list[tuple[str, str, Any]] = []
        if kind == "AWS::IAM::Policy":
            documents.append(
                ("identity policy", _attached(properties), properties["PolicyDocument"])
            )
        elif kind == "AWS::IAM::ManagedPolicy":
            documents.append(
                ("managed policy", _attached(properties), properties["PolicyDocument"])
            )
        elif kind == "AWS::IAM::Role":
            documents.append(
                ("trust policy", f"role {logical_id}", properties["AssumeRolePolicyDocument"])
            )
            for inline in properties.get("Policies", []):
                documents.append(
                    (
                        f"inline policy {inline.get('PolicyName', '')}",
                        f"role {logical_id}",
                        inline["PolicyDocument"],
                    )
                )
            for arn in properties.get("ManagedPolicyArns", []):
                documents.append(("managed policy attachment", f"role {logical_id}", render(arn)))
        elif kind in ("AWS::S3::BucketPolicy", "AWS::SQS::QueuePolicy", "AWS::SNS::TopicPolicy"):
            target = (
                properties.get("Bucket") or properties.get("Queues") or properties.get("Topics")
            )
            documents.append(("resource policy", render(target), properties["PolicyDocument"]))
        elif kind == "AWS::KMS::Key":
            documents.append(("key policy", f"key {logical_id}", properties["KeyPolicy"]))
        elif kind == "AWS::Lambda::Permission":
            statement = {
                "Effect": "Allow",
                "Action": properties.get("Action"),
                "Resource": properties.get("FunctionName"),
                "Principal": {"Service": properties.get("Principal")},
                "Condition": {"ArnLike": {"aws:SourceArn": properties["SourceArn"]}}
                if "SourceArn" in properties
                else {},
            }
            documents.append(
                (
                    "function resource policy",
                    render(properties.get("FunctionName")),
                    {"Statement": [statement]},
                )
            )
        for document_kind, attached, document in documents:
            if isinstance(document, str):
                row = StatementRow(
                    effect="Allow",
                    actions=(),
                    not_actions=(),
                    resources=(),
                    principal="",
                    conditions="",
                    sid="",
                    reason=_attachment_reason(document),
                )
                statements: tuple[StatementRow, ...] = (row,)
            else:
                statements = tuple(
                    _statement_row(statement) for statement in _as_list(document.get("Statement"))
                )
            yield PolicyEntry(
                stack=stack,
                logical_id=logical_id,
                path=path,
                kind=document_kind,
                attached_to=attached,
                statements=statements,
            )


def synthesize_reference_templates() -> dict[str, dict[str, Any]]:
    """Stack name -> template of the reference app, synthesized as ``make synth`` does."""
    from crashcart.tools.reference_synth import synthesize_reference_app

    with tempfile.TemporaryDirectory(prefix="crashcart-iam-doc-") as outdir:
        app = synthesize_reference_app(
            Path(outdir), with_compliance=False, context={"aws:cdk:enable-path-metadata": True}
        )
        assembly = app.synth()
        return {stack.stack_name: dict(stack.template) for stack in assembly.stacks_recursively}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ") or "—"


def _code_list(items: Sequence[str]) -> str:
    return "<br>".join(f"`{item}`" for item in items) or "—"


def render_markdown(templates: Mapping[str, Mapping[str, Any]]) -> str:
    """docs/iam.md for ``templates`` (stack name -> template)."""
    lines = [
        "# IAM: every permission crashcart deploys, and why",
        "",
        "<!-- Generated by `python -m crashcart.tools.iam_doc > docs/iam.md` (`make docs`)"
        " from the synthesized reference app. Do not edit: a test fails when this file is"
        " not current. -->",
        "",
        "Placeholders: `${AWS::Partition}`, `${AWS::Region}`, `${AWS::AccountId}` are the"
        " deployment's partition, region and account; `${LogicalId}` / `${LogicalId.Arn}`"
        " are resources of the same stack. The reference app is environment-agnostic unless"
        " `crashcart:account` / `crashcart:region` context is given.",
        "",
    ]
    for stack in sorted(templates):
        entries = list(policies_of_template(stack, templates[stack]))
        lines += [f"## Stack `{stack}`", ""]
        if not entries:
            lines += ["No IAM policies.", ""]
            continue
        for entry in entries:
            title = entry.path or entry.logical_id
            lines += [
                f"### {entry.kind}: `{title}`",
                "",
                f"Logical id `{entry.logical_id}`; attached to: {entry.attached_to}.",
                "",
                "| # | effect | actions | resources | principal | conditions | why |",
                "|---|---|---|---|---|---|---|",
            ]
            for number, row in enumerate(entry.statements, start=1):
                actions = list(row.actions) + [f"NOT {action}" for action in row.not_actions]
                sid = f" (`{row.sid}`)" if row.sid else ""
                lines.append(
                    f"| {number}{sid} | {row.effect} | {_code_list(actions)} | "
                    f"{_code_list(row.resources)} | {_cell(row.principal)} | "
                    f"{_cell(row.conditions)} | {_cell(row.reason)} |"
                )
            lines.append("")
    lines += _guardrail_section()
    return "\n".join(lines).rstrip() + "\n"


def _guardrail_section() -> list[str]:
    policies = render_service_control_policies(
        break_glass_role_arns=["arn:aws:iam::*:role/crashcart-break-glass"],
        platform_role_arns=["arn:aws:iam::*:role/platform-deployer"],
    )
    lines = [
        "## Organisation guardrails (service control policies; rendered, not deployed)",
        "",
        "Rendered by `crashcart.guardrails.render_service_control_policies` with the default"
        " tag and example role names; attach them with AWS Organizations. See"
        " docs/access.md for what SCPs cannot cover.",
        "",
    ]
    for policy in policies.all():
        lines += [
            f"### `{policy.name}` ({policy.size} of 5120 characters minified)",
            "",
            policy.description,
            "",
            "```json",
            policy.to_json(indent=2),
            "```",
            "",
        ]
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Print docs/iam.md to stdout."""
    del argv
    sys.stdout.write(render_markdown(synthesize_reference_templates()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
