"""Who may write to crashcart's topics, queues and keys: AWS services, each scoped to its source.

Private helper of the constructs. A topic or queue that an AWS service writes to must allow
that service in its resource policy *and* in the key policy of its KMS key, or the service's
write is refused and nothing says so (an alarm action that fails is visible only in the
alarm's history; an EventBridge dead-letter queue that refuses counts a metric and drops the
event). Every statement here names the service principal, the one action it needs, and the
source it acts for (``aws:SourceAccount`` and ``aws:SourceArn``) so that no other account's
alarms or rules can use crashcart's resources (the "confused deputy").

Lambda's asynchronous destinations and dead-letter queues are *not* written by a service
principal: Lambda sends with the function's execution role, whose identity policy grants
``sqs:SendMessage`` and the key's use (each construct grants exactly that), and the key
policy's account statement lets IAM policies apply (see docs/aws-assumptions.md,
``lambda-destinations-use-the-function-role``).

Also here: the alarms that make a failure loud. Every failure queue has an alarm on the
messages *sent* to it, so each new failure notifies again even while earlier ones still wait
in the queue; every rule with a dead-letter queue has an alarm on EventBridge's
``InvocationsFailedToBeSentToDlq``, the one failure a dead-letter queue cannot keep (the queue
itself refused the event).
"""

from __future__ import annotations

from typing import Final

import aws_cdk as cdk
import jsii
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk.interfaces import aws_events as events_refs
from constructs import Construct

#: What a service needs of a key to write to an encrypted topic or queue (SNS and SQS
#: generate a data key, and decrypt it to check it).
MESSAGE_KEY_ACTIONS: Final = ("kms:Decrypt", "kms:GenerateDataKey")
#: The window of a failure-queue alarm: failures within one window share a notification.
FAILURE_ALARM_PERIOD: Final = cdk.Duration.minutes(5)

CLOUDWATCH: Final = "cloudwatch.amazonaws.com"
EVENTBRIDGE: Final = "events.amazonaws.com"


def _source(scope: Construct, service: str, resource: str) -> dict[str, dict[str, str]]:
    """``aws:SourceAccount`` = this account, ``aws:SourceArn`` like this account's
    ``<resource>`` ARNs of ``service`` in this region (the stack of ``scope``)."""
    stack = cdk.Stack.of(scope)
    separator = ":" if service == "cloudwatch" else "/"
    return {
        "StringEquals": {"aws:SourceAccount": stack.account},
        "ArnLike": {
            "aws:SourceArn": (
                f"arn:{stack.partition}:{service}:{stack.region}:{stack.account}:"
                f"{resource}{separator}*"
            )
        },
    }


def alarm_topic_statements(
    scope: Construct, topic: sns.ITopic
) -> tuple[iam.PolicyStatement, iam.PolicyStatement]:
    """The topic-policy and key-policy statements that let this account's alarms notify."""
    conditions = _source(scope, "cloudwatch", "alarm")
    # aws-assumption: cloudwatch-alarms-publish-to-topics
    publish = iam.PolicyStatement(
        sid="CrashcartAlarmsPublish",
        principals=[iam.ServicePrincipal(CLOUDWATCH)],
        actions=["sns:Publish"],
        resources=[topic.topic_arn],
        conditions=conditions,
    )
    # aws-assumption: cloudwatch-alarms-use-topic-keys
    use_key = iam.PolicyStatement(
        sid="CrashcartAlarmsNotifyTopic",
        principals=[iam.ServicePrincipal(CLOUDWATCH)],
        actions=list(MESSAGE_KEY_ACTIONS),
        resources=["*"],
        conditions=conditions,
    )
    return publish, use_key


def allow_alarm_actions(scope: Construct, topic: sns.ITopic) -> None:
    """Let this account's CloudWatch alarms publish to ``topic`` (and use its key).

    A topic created in this app gets the statement in its topic policy (``enforce_ssl``
    alone gives a policy with a Deny only: SNS refuses every alarm action). A topic or key
    imported by ARN cannot be changed here: a synth-time warning on ``scope`` names what its
    owner must add. Idempotent: identical statements are merged.
    """
    publish, use_key = alarm_topic_statements(scope, topic)
    if not topic.add_to_resource_policy(publish).statement_added:
        cdk.Annotations.of(scope).add_warning_v2(
            "crashcart:alarmTopicPolicy",
            f"topic {topic.node.path} was imported: crashcart cannot add to its policy. Its "
            f"policy must allow {CLOUDWATCH} sns:Publish for this account's alarms "
            "(aws:SourceAccount, aws:SourceArn arn:...:cloudwatch:<region>:<account>:alarm:*) "
            "and, if it is encrypted, its key must allow the same principal kms:Decrypt and "
            "kms:GenerateDataKey, or SNS refuses every alarm notification (docs/"
            "aws-assumptions.md#cloudwatch-alarms-publish-to-topics)",
        )
        return
    key = topic.master_key
    if key is not None and not key.add_to_resource_policy(use_key).statement_added:
        cdk.Annotations.of(scope).add_warning_v2(
            "crashcart:alarmTopicKeyPolicy",
            f"the key of topic {topic.node.path} was imported: crashcart cannot add to its "
            f"policy. It must allow {CLOUDWATCH} kms:Decrypt and kms:GenerateDataKey for this "
            "account's alarms, or SNS refuses every alarm notification (docs/"
            "aws-assumptions.md#cloudwatch-alarms-use-topic-keys)",
        )


def allow_rules_on_key(scope: Construct, key: kms.IKey, sid: str) -> None:
    """Let this account's EventBridge rules use ``key`` for the queues it encrypts.

    The statement names the account's rules by pattern, not one rule: the key encrypts the
    rule's dead-letter queue, which the rule names, so the key naming the rule would be a
    dependency cycle. The queue policy names the exact rule.
    """
    # aws-assumption: eventbridge-uses-queue-keys
    key.add_to_resource_policy(
        iam.PolicyStatement(
            sid=sid,
            principals=[iam.ServicePrincipal(EVENTBRIDGE)],
            actions=list(MESSAGE_KEY_ACTIONS),
            resources=["*"],
            conditions=_source(scope, "events", "rule"),
        )
    )


def allow_rule_to_send(queue: sqs.IQueue, rule: events_refs.IRuleRef) -> None:
    """Let exactly ``rule`` send to ``queue`` (a target or a dead-letter queue)."""
    # aws-assumption: eventbridge-sends-to-queues
    queue.add_to_resource_policy(
        iam.PolicyStatement(
            principals=[iam.ServicePrincipal(EVENTBRIDGE)],
            actions=["sqs:SendMessage"],
            resources=[queue.queue_arn],
            conditions={
                "ArnEquals": {"aws:SourceArn": rule.rule_ref.rule_arn},
                "StringEquals": {"aws:SourceAccount": cdk.Stack.of(rule).account},
            },
        )
    )


@jsii.implements(events.IRuleTarget)
class QueueTarget:
    """An SQS queue as a rule target, allowed for that one rule only.

    CDK's ``targets.SqsQueue`` leaves the queue policy unscoped when the queue is
    KMS-encrypted (it cannot name the rule in the key policy); this target scopes the queue
    policy to the rule, and leaves the key to :func:`allow_rules_on_key`.
    """

    def __init__(
        self,
        queue: sqs.IQueue,
        *,
        dead_letter_queue: sqs.IQueue,
        retry_attempts: int = 8,
        max_event_age: cdk.Duration = cdk.Duration.hours(6),  # noqa: B008 - immutable
    ) -> None:
        self._queue = queue
        self._dead_letter_queue = dead_letter_queue
        self._retry_attempts = retry_attempts
        self._max_event_age = max_event_age

    def bind(self, rule: events_refs.IRuleRef, id: str | None = None) -> events.RuleTargetConfig:
        allow_rule_to_send(self._queue, rule)
        allow_rule_to_send(self._dead_letter_queue, rule)
        return events.RuleTargetConfig(
            arn=self._queue.queue_arn,
            dead_letter_config=events.CfnRule.DeadLetterConfigProperty(
                arn=self._dead_letter_queue.queue_arn
            ),
            retry_policy=events.CfnRule.RetryPolicyProperty(
                maximum_retry_attempts=self._retry_attempts,
                maximum_event_age_in_seconds=int(self._max_event_age.to_seconds()),
            ),
        )


def failure_queue_alarm(
    scope: Construct, construct_id: str, queue: sqs.IQueue, topic: sns.ITopic, what: str
) -> cloudwatch.Alarm:
    """An alarm that notifies ``topic`` whenever a message is sent to ``queue``.

    On messages *sent* (``NumberOfMessagesSent``, Sum over 5 minutes, at least 1), not on
    messages visible: a depth alarm stays in ALARM while an old failure waits in the queue
    (kept 14 days) and a new failure then notifies no one. With messages sent, the alarm
    returns to OK after a quiet window and every later failure notifies again; failures
    within one window share a notification.
    """
    # aws-assumption: sqs-messages-sent-counts-service-writes
    return _any_event_alarm(
        scope,
        construct_id,
        topic,
        f"crashcart: {what} arrived in {queue.node.id}; look at the messages, fix the "
        "cause, then redrive or delete them",
        queue.metric_number_of_messages_sent(period=FAILURE_ALARM_PERIOD, statistic="Sum"),
    )


def undeliverable_events_alarm(
    scope: Construct, construct_id: str, rule: events.IRule, topic: sns.ITopic
) -> cloudwatch.Alarm:
    """An alarm on events that EventBridge could not put into the rule's dead-letter queue.

    ``InvocationsFailedToBeSentToDlq`` (AWS/Events, per rule): the dead-letter queue or its
    key refused the event (permissions, a disabled key, size), so the event is lost; this is
    what makes a wrong queue or key policy loud.
    """
    # aws-assumption: eventbridge-dlq-failure-metric
    return _any_event_alarm(
        scope,
        construct_id,
        topic,
        "crashcart: EventBridge could not put failed events of a rule into its "
        "dead-letter queue (the queue or its key refused them); the events are lost: "
        "check the queue policy and the key policy",
        cloudwatch.Metric(
            namespace="AWS/Events",
            metric_name="InvocationsFailedToBeSentToDlq",
            dimensions_map={"RuleName": rule.rule_name},
            statistic="Sum",
            period=FAILURE_ALARM_PERIOD,
        ),
    )


def _any_event_alarm(
    scope: Construct,
    construct_id: str,
    topic: sns.ITopic,
    description: str,
    metric: cloudwatch.IMetric,
) -> cloudwatch.Alarm:
    """An alarm that notifies ``topic`` when ``metric`` (a Sum of events) is 1 or more in
    one period; no data (nothing happened) is not breaching."""
    alarm = cloudwatch.Alarm(
        scope,
        construct_id,
        alarm_description=description,
        metric=metric,
        threshold=1,
        comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        evaluation_periods=1,
        datapoints_to_alarm=1,
        treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
    )
    alarm.add_alarm_action(cloudwatch_actions.SnsAction(topic))
    allow_alarm_actions(scope, topic)
    return alarm
