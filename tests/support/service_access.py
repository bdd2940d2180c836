"""A walker over synthesized templates: may every AWS service that must write somewhere do so?

moto ignores resource policies and cdk-nag reads resources one at a time, so neither sees
that a topic refuses the alarms pointed at it, or that a queue's key refuses the rule whose
dead-letter queue it encrypts. This walker follows every *write path* of a template:

- an alarm action (``AlarmActions`` / ``OKActions`` / ``InsufficientDataActions``) to an SNS
  topic: ``cloudwatch.amazonaws.com`` publishes, on behalf of that alarm;
- an EventBridge rule target (``Arn``) and its dead-letter queue (``DeadLetterConfig``):
  ``events.amazonaws.com`` invokes or sends, on behalf of that rule; a target that EventBridge
  reaches through a role (an ECS task) is checked through the role instead;
- a Lambda asynchronous destination (``EventInvokeConfig``) and a function's own dead-letter
  queue: Lambda writes with the function's *execution role*, not a service principal;
- an S3 event notification to a topic, queue or function: ``s3.amazonaws.com``;
- an Image Builder infrastructure configuration's topic: Image Builder's service-linked role.

For each it resolves the destination to a resource of the template and proves, by evaluating
the policies as IAM would for that one request (principal, action, resource, condition
context), that the destination's resource policy - and the key policy of the KMS key that
encrypts it, if any - allow the write, that the allowing statement is scoped by
``aws:SourceArn`` or ``aws:SourceAccount`` (a service principal) and that no deny refuses it.
A destination it cannot resolve (an imported ARN, an alias of an AWS managed key) is a
failure: what the walker cannot see it cannot prove.

The evaluator knows the condition operators crashcart's templates use (String*, Arn*, Bool,
Null, ForAnyValue / ForAllValues); a condition it does not know makes a statement not apply,
so an unknown can only make a check fail, never pass.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

ACCOUNT = "111111111111"
REGION = "eu-west-1"
PARTITION = "aws"

_PSEUDO = {
    "AWS::AccountId": ACCOUNT,
    "AWS::Region": REGION,
    "AWS::Partition": PARTITION,
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::StackName": "Stack",
}

#: Synthetic ARNs by resource type (``{id}`` is the logical id): what ``Fn::GetAtt X.Arn``
#: (or ``Ref`` for topics and task definitions) stands for.
_ARN_FORMAT = {
    "AWS::CloudWatch::Alarm": "arn:aws:cloudwatch:{r}:{a}:alarm:{id}",
    "AWS::Events::Rule": "arn:aws:events:{r}:{a}:rule/{id}",
    "AWS::Lambda::Function": "arn:aws:lambda:{r}:{a}:function:{id}",
    "AWS::SQS::Queue": "arn:aws:sqs:{r}:{a}:{id}",
    "AWS::SNS::Topic": "arn:aws:sns:{r}:{a}:{id}",
    "AWS::KMS::Key": "arn:aws:kms:{r}:{a}:key/{id}",
    "AWS::IAM::Role": "arn:aws:iam::{a}:role/{id}",
    "AWS::IAM::ManagedPolicy": "arn:aws:iam::{a}:policy/{id}",
    "AWS::S3::Bucket": "arn:aws:s3:::{id}",
    "AWS::ECS::Cluster": "arn:aws:ecs:{r}:{a}:cluster/{id}",
    "AWS::ECS::TaskDefinition": "arn:aws:ecs:{r}:{a}:task-definition/{id}:1",
    "AWS::Logs::LogGroup": "arn:aws:logs:{r}:{a}:log-group:{id}:*",
    "AWS::DynamoDB::Table": "arn:aws:dynamodb:{r}:{a}:table/{id}",
    "AWS::SSM::Parameter": "arn:aws:ssm:{r}:{a}:parameter/{id}",
    "AWS::ECR::Repository": "arn:aws:ecr:{r}:{a}:repository/{id}",
}
#: Resource types whose ``Ref`` is their ARN (others' Ref is a name or URL).
_REF_IS_ARN = {"AWS::SNS::Topic", "AWS::ECS::TaskDefinition", "AWS::IAM::ManagedPolicy"}

IMAGE_BUILDER_ROLE = (
    f"arn:aws:iam::{ACCOUNT}:role/aws-service-role/imagebuilder.amazonaws.com/"
    "AWSServiceRoleForImageBuilder"
)
#: The keys that scope a service principal to one source (confused-deputy protection).
SOURCE_KEYS = ("aws:sourcearn", "aws:sourceaccount")
#: The keys that make a "*" principal name exactly one principal (a service-linked role that
#: may not exist yet cannot be named in a key policy's Principal).
_NAMING_KEYS = ("aws:principalarn", "aws:principalaccount")


class UnresolvableError(Exception):
    """A template value the walker cannot turn into a string (an import, an unknown type)."""


@dataclass(frozen=True)
class Request:
    """One write, as IAM evaluates it."""

    principal: str  # a service principal ("events.amazonaws.com") or a role ARN
    action: str
    resource: str
    context: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_service(self) -> bool:
        return not self.principal.startswith("arn:")


@dataclass
class Finding:
    """One write path and what the walker concluded."""

    kind: str  # alarm-action, rule-target, rule-dlq, lambda-destination, lambda-dlq, ...
    source: str  # logical id of the alarm / rule / function / bucket / configuration
    destination: str  # logical id of the topic / queue / function
    problems: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        status = "ok" if not self.problems else "; ".join(self.problems)
        return f"{self.kind} {self.source} -> {self.destination}: {status}"


# ------------------------------------------------------------------ template access


class Walker:
    """The write paths of one template (a stack)."""

    def __init__(self, template: Mapping[str, Any], name: str = "stack") -> None:
        self.name = name
        self.resources: dict[str, Any] = dict(template.get("Resources", {}))
        self.findings: list[Finding] = []

    # -- values --------------------------------------------------------------------------

    def type_of(self, logical_id: str) -> str:
        resource = self.resources.get(logical_id)
        if resource is None:
            raise UnresolvableError(f"{logical_id} is not a resource of {self.name}")
        return str(resource["Type"])

    def props(self, logical_id: str) -> dict[str, Any]:
        return dict(self.resources[logical_id].get("Properties", {}))

    def arn_of(self, logical_id: str) -> str:
        kind = self.type_of(logical_id)
        if kind not in _ARN_FORMAT:
            raise UnresolvableError(f"no ARN format for {kind} ({logical_id})")
        return _ARN_FORMAT[kind].format(r=REGION, a=ACCOUNT, id=logical_id)

    def render(self, value: Any) -> str:
        """A template value as the string it becomes at deployment (synthetic ids)."""
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float, bool)):
            return json.dumps(value)
        if isinstance(value, dict) and len(value) == 1:
            ((function, argument),) = value.items()
            if function == "Ref":
                if argument in _PSEUDO:
                    return _PSEUDO[argument]
                kind = self.type_of(argument)
                return self.arn_of(argument) if kind in _REF_IS_ARN else argument
            if function == "Fn::GetAtt":
                logical_id, attribute = argument
                if attribute == "Arn":
                    return self.arn_of(logical_id)
                if attribute == "QueueName":
                    return str(logical_id)
                raise UnresolvableError(f"attribute {attribute} of {logical_id}")
            if function == "Fn::Join":
                separator, parts = argument
                return str(separator).join(self.render(part) for part in parts)
        raise UnresolvableError(f"cannot render {json.dumps(value)[:200]}")

    def target(self, value: Any) -> str | None:
        """The logical id a Ref / GetAtt points at; None for a literal (imported) value."""
        if isinstance(value, dict) and len(value) == 1:
            ((function, argument),) = value.items()
            if function == "Ref" and argument in self.resources:
                return str(argument)
            if function == "Fn::GetAtt" and argument[0] in self.resources:
                return str(argument[0])
        return None

    def of_type(self, kind: str) -> Iterator[tuple[str, dict[str, Any]]]:
        for logical_id, resource in self.resources.items():
            if resource["Type"] == kind:
                yield logical_id, dict(resource.get("Properties", {}))

    # -- policies attached to a resource -------------------------------------------------

    def topic_statements(self, topic: str) -> list[dict[str, Any]]:
        return self._attached_statements("AWS::SNS::TopicPolicy", "Topics", topic)

    def queue_statements(self, queue: str) -> list[dict[str, Any]]:
        return self._attached_statements("AWS::SQS::QueuePolicy", "Queues", queue)

    def _attached_statements(self, kind: str, attribute: str, owner: str) -> list[dict[str, Any]]:
        statements: list[dict[str, Any]] = []
        for _, props in self.of_type(kind):
            if any(self.target(item) == owner for item in props.get(attribute, [])):
                statements.extend(_as_list(props["PolicyDocument"]["Statement"]))
        return statements

    def key_of(self, encrypted: str, attribute: str) -> str | None:
        """The template key encrypting ``encrypted`` (via ``attribute``); None if unencrypted.

        Raises UnresolvableError for a key the template does not hold (an alias of an AWS managed
        key or an imported key): its policy cannot be read.
        """
        value = self.props(encrypted).get(attribute)
        if value is None:
            return None
        key = self.target(value)
        if key is None or self.type_of(key) != "AWS::KMS::Key":
            raise UnresolvableError(
                f"{encrypted} is encrypted with {json.dumps(value)}, a key outside the "
                "template (an AWS managed key's policy cannot allow a service principal)"
            )
        return key

    def key_statements(self, key: str) -> list[dict[str, Any]]:
        return _as_list(self.props(key)["KeyPolicy"]["Statement"])

    def role_statements(self, role: str) -> list[dict[str, Any]]:
        """Every identity-policy statement of a role: inline, AWS::IAM::Policy, managed."""
        statements: list[dict[str, Any]] = []
        role_props = self.props(role)
        for inline in role_props.get("Policies", []):
            statements.extend(_as_list(inline["PolicyDocument"]["Statement"]))
        managed = {self.target(arn) for arn in role_props.get("ManagedPolicyArns", [])}
        for kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            for logical_id, props in self.of_type(kind):
                attached = any(self.target(item) == role for item in props.get("Roles", []))
                if attached or logical_id in managed:
                    statements.extend(_as_list(props["PolicyDocument"]["Statement"]))
        return statements

    def trust_statements(self, role: str) -> list[dict[str, Any]]:
        return _as_list(self.props(role)["AssumeRolePolicyDocument"]["Statement"])

    # -- evaluation ----------------------------------------------------------------------

    def allowing(
        self, statements: list[dict[str, Any]], request: Request, *, identity: bool = False
    ) -> list[dict[str, Any]]:
        return [
            s
            for s in statements
            if s.get("Effect") == "Allow" and self._applies(s, request, identity=identity)
        ]

    def denying(
        self, statements: list[dict[str, Any]], request: Request, *, identity: bool = False
    ) -> list[dict[str, Any]]:
        return [
            s
            for s in statements
            if s.get("Effect") == "Deny" and self._applies(s, request, identity=identity)
        ]

    def _applies(self, statement: dict[str, Any], request: Request, *, identity: bool) -> bool:
        if not identity and not self._principal_matches(statement, request):
            return False
        if "Action" in statement and not _matches_list(
            self._strings(statement, "Action"), request.action
        ):
            return False
        if "NotAction" in statement and _matches_list(
            self._strings(statement, "NotAction"), request.action
        ):
            return False
        if "Resource" in statement and not _matches_list(
            self._strings(statement, "Resource"), request.resource
        ):
            return False
        if "NotResource" in statement and _matches_list(
            self._strings(statement, "NotResource"), request.resource
        ):
            return False
        return _conditions_hold(self._conditions(statement), request)

    def _principal_matches(self, statement: dict[str, Any], request: Request) -> bool:
        principal = statement.get("Principal")
        if principal is None:
            return False
        if principal == "*":
            return True
        for kind, values in principal.items():
            for value in _as_list(values):
                rendered = self.render(value)
                if rendered == "*" and kind == "AWS":
                    return True
                if kind == "Service" and request.is_service and rendered == request.principal:
                    return True
                if kind == "AWS" and not request.is_service:
                    account_root = f"arn:aws:iam::{request.principal.split(':')[4]}:root"
                    if rendered in (request.principal, account_root):
                        return True
        return False

    def _strings(self, statement: dict[str, Any], element: str) -> list[str]:
        return [self.render(v) for v in _as_list(statement.get(element, []))]

    def _conditions(self, statement: dict[str, Any]) -> dict[str, dict[str, list[str]]]:
        return {
            operator: {
                key.lower(): [self.render(v) for v in _as_list(values)]
                for key, values in block.items()
            }
            for operator, block in statement.get("Condition", {}).items()
        }

    def scoped(self, statement: dict[str, Any]) -> bool:
        """The statement names its source (aws:SourceArn / aws:SourceAccount)."""
        keys = {key for block in self._conditions(statement).values() for key in block}
        return any(key in keys for key in SOURCE_KEYS)

    def names_one_principal(self, statement: dict[str, Any]) -> bool:
        keys = {key for block in self._conditions(statement).values() for key in block}
        return all(key in keys for key in _NAMING_KEYS)

    # -- the checks ----------------------------------------------------------------------

    def check_service_write(
        self,
        finding: Finding,
        request: Request,
        resource_statements: list[dict[str, Any]] | None,
        key: str | None,
        key_actions: tuple[str, ...],
    ) -> None:
        """A service principal writes: resource policy and key policy must both allow it."""
        if resource_statements is not None:
            self._check_resource_policy(finding, request, resource_statements, "resource policy")
        if key is not None:
            for action in key_actions:
                key_request = Request(request.principal, action, "*", request.context)
                self._check_resource_policy(
                    finding, key_request, self.key_statements(key), f"key policy of {key}"
                )

    def _check_resource_policy(
        self, finding: Finding, request: Request, statements: list[dict[str, Any]], what: str
    ) -> None:
        allowed = self.allowing(statements, request)
        if not allowed:
            finding.problems.append(
                f"the {what} does not allow {request.principal} {request.action} "
                f"(context {dict(request.context)})"
            )
        elif request.is_service and not any(self.scoped(s) for s in allowed):
            finding.problems.append(
                f"the {what} allows {request.principal} {request.action} without "
                "aws:SourceArn / aws:SourceAccount: any account's resources could use it"
            )
        if self.denying(statements, request):
            finding.problems.append(f"the {what} denies {request.principal} {request.action}")

    def check_role_write(
        self,
        finding: Finding,
        role: str,
        action: str,
        destination_arn: str,
        resource_statements: list[dict[str, Any]],
        key: str | None,
        key_actions: tuple[str, ...],
        via: str,
    ) -> None:
        """A role writes (same account): its identity policy allows, nothing denies, and the
        key policy lets IAM policies (or the role) use the key."""
        role_arn = self.arn_of(role)
        identity = self.role_statements(role)
        request = Request(role_arn, action, destination_arn, {"aws:SecureTransport": "true"})
        if not self.allowing(identity, request, identity=True):
            finding.problems.append(f"role {role} is not allowed {action} on {destination_arn}")
        if self.denying(resource_statements, request):
            finding.problems.append(f"the resource policy denies {role} {action}")
        if key is None:
            return
        key_arn = self.arn_of(key)
        for key_action in key_actions:
            key_request = Request(
                role_arn, key_action, key_arn, {"kms:ViaService": f"{via}.{REGION}.amazonaws.com"}
            )
            if not self.allowing(identity, key_request, identity=True):
                finding.problems.append(f"role {role} is not allowed {key_action} on {key}")
            by_key = self.allowing(self.key_statements(key), Request(role_arn, key_action, "*"))
            if not by_key:
                finding.problems.append(
                    f"the key policy of {key} neither names {role} nor delegates to IAM "
                    "(the account root)"
                )

    def walk(self) -> list[Finding]:
        """Every write path of the template, checked."""
        self.findings = []
        self._alarm_actions()
        self._rule_targets()
        self._lambda_destinations()
        self._bucket_notifications()
        self._image_builder_topics()
        return self.findings

    def _new(self, kind: str, source: str, destination: str) -> Finding:
        finding = Finding(kind, source, destination)
        self.findings.append(finding)
        return finding

    def _alarm_actions(self) -> None:
        for alarm, props in self.of_type("AWS::CloudWatch::Alarm"):
            for attribute in ("AlarmActions", "OKActions", "InsufficientDataActions"):
                for action in props.get(attribute, []):
                    topic = self.target(action)
                    finding = self._new("alarm-action", alarm, topic or json.dumps(action))
                    if topic is None or self.type_of(topic) != "AWS::SNS::Topic":
                        finding.problems.append("the action is not a topic of this template")
                        continue
                    context = {
                        "aws:SourceArn": self.arn_of(alarm),
                        "aws:SourceAccount": ACCOUNT,
                        "aws:SecureTransport": "true",
                    }
                    request = Request(
                        "cloudwatch.amazonaws.com", "sns:Publish", self.arn_of(topic), context
                    )
                    with _proving(finding):
                        self.check_service_write(
                            finding,
                            request,
                            self.topic_statements(topic),
                            self.key_of(topic, "KmsMasterKeyId"),
                            ("kms:GenerateDataKey", "kms:Decrypt"),
                        )

    def _rule_targets(self) -> None:
        for rule, props in self.of_type("AWS::Events::Rule"):
            context = {
                "aws:SourceArn": self.arn_of(rule),
                "aws:SourceAccount": ACCOUNT,
                "aws:SecureTransport": "true",
            }
            for target in props.get("Targets", []):
                destination = self.target(target["Arn"])
                finding = self._new("rule-target", rule, destination or str(target["Arn"]))
                if destination is None:
                    finding.problems.append("the target is not a resource of this template")
                else:
                    with _proving(finding):
                        self._check_target(finding, destination, target, context)
                dlq_config = target.get("DeadLetterConfig")
                if dlq_config is None:
                    finding.problems.append(
                        "the target has no dead-letter queue: an event EventBridge cannot "
                        "deliver is dropped after its retries, unseen"
                    )
                    continue
                queue = self.target(dlq_config["Arn"])
                dlq_finding = self._new("rule-dlq", rule, queue or str(dlq_config["Arn"]))
                if queue is None or self.type_of(queue) != "AWS::SQS::Queue":
                    dlq_finding.problems.append("the dead-letter queue is not in this template")
                    continue
                with _proving(dlq_finding):
                    self._check_events_to_queue(dlq_finding, queue, context)

    def _check_target(
        self, finding: Finding, destination: str, target: dict[str, Any], context: dict[str, str]
    ) -> None:
        kind = self.type_of(destination)
        if kind == "AWS::Lambda::Function":
            self._check_lambda_permission(
                finding, destination, "events.amazonaws.com", context["aws:SourceArn"]
            )
            if not self._has_failure_destination(destination):
                finding.problems.append(
                    f"function {destination} is invoked asynchronously but has neither an "
                    "on-failure destination nor a dead-letter queue"
                )
        elif kind == "AWS::SQS::Queue":
            self._check_events_to_queue(finding, destination, context)
        elif "RoleArn" in target:
            self._check_events_role(finding, destination, target)
        else:
            finding.problems.append(f"no check for a {kind} target without a role")

    def _check_events_to_queue(self, finding: Finding, queue: str, context: dict[str, str]) -> None:
        request = Request("events.amazonaws.com", "sqs:SendMessage", self.arn_of(queue), context)
        self.check_service_write(
            finding,
            request,
            self.queue_statements(queue),
            self.key_of(queue, "KmsMasterKeyId"),
            ("kms:GenerateDataKey", "kms:Decrypt"),
        )

    def _check_events_role(
        self, finding: Finding, destination: str, target: dict[str, Any]
    ) -> None:
        role = self.target(target["RoleArn"])
        if role is None:
            finding.problems.append("the target's role is not in this template")
            return
        assume = Request("events.amazonaws.com", "sts:AssumeRole", "*")
        if not self.allowing(self.trust_statements(role), assume):
            finding.problems.append(f"role {role} does not trust events.amazonaws.com")
        ecs = target.get("EcsParameters")
        if ecs is None:
            finding.problems.append("only ECS targets reached through a role are checked")
            return
        task_definition = self.render(ecs["TaskDefinitionArn"])
        run = Request(
            self.arn_of(role),
            "ecs:RunTask",
            task_definition,
            {"ecs:cluster": self.arn_of(destination)},
        )
        if not self.allowing(self.role_statements(role), run, identity=True):
            finding.problems.append(f"role {role} may not run {task_definition} on {destination}")

    def _check_lambda_permission(
        self, finding: Finding, function: str, principal: str, source_arn: str
    ) -> None:
        permissions = [
            props
            for _, props in self.of_type("AWS::Lambda::Permission")
            if self.target(props["FunctionName"]) == function
            and props.get("Principal") == principal
        ]
        if not permissions:
            finding.problems.append(f"no permission lets {principal} invoke {function}")
            return
        for props in permissions:
            if "SourceArn" not in props and "SourceAccount" not in props:
                finding.problems.append(
                    f"a permission lets {principal} invoke {function} from any source"
                )
        if not any(
            props.get("Action") == "lambda:InvokeFunction"
            and "SourceArn" in props
            and fnmatch.fnmatchcase(source_arn, self.render(props["SourceArn"]))
            for props in permissions
        ):
            finding.problems.append(f"no permission names {source_arn} as its source")

    def _has_failure_destination(self, function: str) -> bool:
        if "DeadLetterConfig" in self.props(function):
            return True
        for _, props in self.of_type("AWS::Lambda::EventInvokeConfig"):
            on_failure = props.get("DestinationConfig", {}).get("OnFailure")
            if self.target(props["FunctionName"]) == function and on_failure:
                return True
        return False

    def _lambda_destinations(self) -> None:
        for _, props in self.of_type("AWS::Lambda::EventInvokeConfig"):
            function = self.target(props["FunctionName"])
            for outcome, config in props.get("DestinationConfig", {}).items():
                destination = self.target(config["Destination"])
                finding = self._new(
                    f"lambda-destination ({outcome})", str(function), destination or "?"
                )
                with _proving(finding):
                    self._check_function_role(finding, function, destination)
        for function, props in self.of_type("AWS::Lambda::Function"):
            if "DeadLetterConfig" not in props:
                continue
            destination = self.target(props["DeadLetterConfig"]["TargetArn"])
            finding = self._new("lambda-dlq", function, destination or "?")
            with _proving(finding):
                self._check_function_role(finding, function, destination)

    def _check_function_role(
        self, finding: Finding, function: str | None, destination: str | None
    ) -> None:
        if function is None or destination is None:
            finding.problems.append("the function or its destination is not in this template")
            return
        role = self.target(self.props(function)["Role"])
        if role is None:
            finding.problems.append(f"the role of {function} is not in this template")
            return
        kind = self.type_of(destination)
        if kind == "AWS::SQS::Queue":
            self.check_role_write(
                finding,
                role,
                "sqs:SendMessage",
                self.arn_of(destination),
                self.queue_statements(destination),
                self.key_of(destination, "KmsMasterKeyId"),
                ("kms:GenerateDataKey", "kms:Decrypt"),
                "sqs",
            )
        elif kind == "AWS::SNS::Topic":
            self.check_role_write(
                finding,
                role,
                "sns:Publish",
                self.arn_of(destination),
                self.topic_statements(destination),
                self.key_of(destination, "KmsMasterKeyId"),
                ("kms:GenerateDataKey", "kms:Decrypt"),
                "sns",
            )
        else:
            finding.problems.append(f"no check for a {kind} destination")

    def _bucket_notifications(self) -> None:
        for bucket, props in self.of_type("AWS::S3::Bucket"):
            notifications = props.get("NotificationConfiguration", {})
            context = {
                "aws:SourceArn": self.arn_of(bucket),
                "aws:SourceAccount": ACCOUNT,
                "aws:SecureTransport": "true",
            }
            for attribute, arn_key, action in (
                ("TopicConfigurations", "Topic", "sns:Publish"),
                ("QueueConfigurations", "Queue", "sqs:SendMessage"),
                ("LambdaConfigurations", "Function", "lambda:InvokeFunction"),
            ):
                for configuration in notifications.get(attribute, []):
                    destination = self.target(configuration[arn_key])
                    finding = self._new("s3-notification", bucket, destination or "?")
                    if destination is None:
                        finding.problems.append("the destination is not in this template")
                        continue
                    if action == "lambda:InvokeFunction":
                        self._check_lambda_permission(
                            finding, destination, "s3.amazonaws.com", context["aws:SourceArn"]
                        )
                        continue
                    statements = (
                        self.topic_statements(destination)
                        if action == "sns:Publish"
                        else self.queue_statements(destination)
                    )
                    request = Request("s3.amazonaws.com", action, self.arn_of(destination), context)
                    with _proving(finding):
                        self.check_service_write(
                            finding,
                            request,
                            statements,
                            self.key_of(destination, "KmsMasterKeyId"),
                            ("kms:GenerateDataKey", "kms:Decrypt"),
                        )

    def _image_builder_topics(self) -> None:
        kind = "AWS::ImageBuilder::InfrastructureConfiguration"
        for configuration, props in self.of_type(kind):
            if "SnsTopicArn" not in props:
                continue
            topic = self.target(props["SnsTopicArn"])
            finding = self._new("image-builder-topic", configuration, topic or "?")
            if topic is None:
                finding.problems.append("the topic is not in this template")
                continue
            with _proving(finding):
                self._check_image_builder(finding, topic)

    def _check_image_builder(self, finding: Finding, topic: str) -> None:
        # The service-linked role's own (AWS managed) policy allows sns:Publish on "*":
        # in its account the topic policy only must not deny it; the key policy must allow.
        publish = Request(
            IMAGE_BUILDER_ROLE,
            "sns:Publish",
            self.arn_of(topic),
            {"aws:SecureTransport": "true"},
        )
        if self.denying(self.topic_statements(topic), publish):
            finding.problems.append("the topic policy denies Image Builder's role")
        key = self.key_of(topic, "KmsMasterKeyId")
        if key is None:
            return
        context = {
            "aws:PrincipalArn": IMAGE_BUILDER_ROLE,
            "aws:PrincipalAccount": ACCOUNT,
            "kms:ViaService": f"sns.{REGION}.amazonaws.com",
        }
        for action in ("kms:GenerateDataKey", "kms:Decrypt"):
            request = Request(IMAGE_BUILDER_ROLE, action, "*", context)
            allowed = [
                s
                for s in self.allowing(self.key_statements(key), request)
                if not _is_account_root(self.render_principal(s))
            ]
            if not allowed:
                finding.problems.append(
                    f"the key policy of {key} does not allow Image Builder's role {action}"
                )

    def render_principal(self, statement: dict[str, Any]) -> list[str]:
        principal = statement.get("Principal", {})
        if principal == "*":
            return ["*"]
        return [self.render(v) for values in principal.values() for v in _as_list(values)]

    # -- template-wide rules -------------------------------------------------------------

    def open_principals(self) -> list[str]:
        """Allow statements with a "*" principal in any resource or key policy, unless
        conditions name exactly one principal (aws:PrincipalArn and aws:PrincipalAccount)."""
        found: list[str] = []
        sources: list[tuple[str, list[dict[str, Any]]]] = []
        for kind, attribute in (
            ("AWS::SNS::TopicPolicy", "PolicyDocument"),
            ("AWS::SQS::QueuePolicy", "PolicyDocument"),
            ("AWS::S3::BucketPolicy", "PolicyDocument"),
            ("AWS::KMS::Key", "KeyPolicy"),
        ):
            for logical_id, props in self.of_type(kind):
                sources.append((logical_id, _as_list(props[attribute]["Statement"])))
        for logical_id, statements in sources:
            for statement in statements:
                if statement.get("Effect") != "Allow":
                    continue
                if "*" in self.render_principal(statement) and not self.names_one_principal(
                    statement
                ):
                    found.append(f"{logical_id}: {json.dumps(statement)[:300]}")
        for logical_id, props in self.of_type("AWS::Lambda::Permission"):
            if props.get("Principal") == "*":
                found.append(f"{logical_id}: Lambda permission for '*'")
        return found

    def unwatched_queues(self) -> list[str]:
        """Queues that no alarm with an action watches (NumberOfMessagesSent or
        ApproximateNumberOfMessagesVisible, dimension QueueName)."""
        watched: set[str] = set()
        for _, props in self.of_type("AWS::CloudWatch::Alarm"):
            if props.get("Namespace") != "AWS/SQS" or not props.get("AlarmActions"):
                continue
            if props.get("MetricName") not in (
                "NumberOfMessagesSent",
                "ApproximateNumberOfMessagesVisible",
            ):
                continue
            for dimension in props.get("Dimensions", []):
                if dimension["Name"] == "QueueName":
                    queue = self.target(dimension["Value"])
                    if queue is not None:
                        watched.add(queue)
        return sorted(q for q, _ in self.of_type("AWS::SQS::Queue") if q not in watched)


# ------------------------------------------------------------------ matching helpers


@contextmanager
def _proving(finding: Finding) -> Iterator[None]:
    """What cannot be resolved cannot be proved: record it as a problem of ``finding``."""
    try:
        yield
    except UnresolvableError as error:
        finding.problems.append(f"cannot prove: {error}")


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _matches_list(patterns: list[str], value: str) -> bool:
    return any(fnmatch.fnmatchcase(value.lower(), p.lower()) for p in patterns)


def _is_account_root(principals: list[str]) -> bool:
    return any(p.endswith(":root") for p in principals)


def _conditions_hold(conditions: dict[str, dict[str, list[str]]], request: Request) -> bool:
    # Every context key of a write here is single-valued, for which ForAnyValue: and
    # ForAllValues: compare like the plain operator: the qualifier is dropped.
    context = {key.lower(): value for key, value in request.context.items()}
    for operator, block in conditions.items():
        base = operator.split(":", 1)[-1]
        if_exists = base.endswith("IfExists")
        base = base.removesuffix("IfExists")
        for key, expected in block.items():
            if base == "Null":
                present = key in context
                if (expected[0] == "true") == present:
                    return False
                continue
            if key not in context:
                if if_exists:
                    continue
                return False
            actual = context[key]
            if not _compare(base, actual, expected):
                return False
    return True


def _compare(operator: str, actual: str, expected: list[str]) -> bool:
    if operator in ("StringEquals", "ArnEquals"):
        return actual in expected
    if operator in ("StringLike", "ArnLike"):
        return any(fnmatch.fnmatchcase(actual, p) for p in expected)
    if operator in ("StringNotEquals", "ArnNotEquals"):
        return actual not in expected
    if operator in ("StringNotLike", "ArnNotLike"):
        return not any(fnmatch.fnmatchcase(actual, p) for p in expected)
    if operator == "StringEqualsIgnoreCase":
        return actual.lower() in (e.lower() for e in expected)
    if operator == "Bool":
        return actual.lower() in (e.lower() for e in expected)
    return False  # an operator the walker does not know: the statement does not apply


def walk_templates(templates: Mapping[str, Mapping[str, Any]]) -> list[Finding]:
    """Walk every template; findings are prefixed with the template's name."""
    findings: list[Finding] = []
    for name, template in templates.items():
        for finding in Walker(template, name).walk():
            finding.source = f"{name}/{finding.source}"
            findings.append(finding)
    return findings
