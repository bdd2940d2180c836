"""How events reach the remediation function, and where those that do not are kept.

The alarm rule (this deployment's alarms, by name prefix, to the function), the missed-alarm
sweep's schedule, the three failure queues with an alarm each on messages sent, and the key
policy that lets the services writing to them use the deployment's key. Every construct is
created in the remediation's scope with the id it had when it lived in the construct module
(ids are a contract: a new one replaces the resource).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_sqs as sqs

from crashcart.constructs._internal.queues import encrypted_queue
from crashcart.constructs._internal.service_access import (
    alarm_topic_statements,
    allow_rules_on_key,
    failure_queue_alarm,
    undeliverable_events_alarm,
)
from crashcart.constructs._internal.service_key import allow_logs_on_key
from crashcart.constructs.remediation_settings import FleetWatch, MissedAlarmSweep

if TYPE_CHECKING:
    from crashcart.constructs.fleet_scale import ManagedAlarms
    from crashcart.constructs.unresponsive_instance_remediation import (
        UnresponsiveInstanceRemediation,
    )

#: The rule input that starts a pass of the missed-alarm sweep (the function's ``sweep.py``).
SWEEP_TRIGGER_KEY: Final = "crashcart-action"
SWEEP_TRIGGER_VALUE: Final = "missed-alarm-sweep"

#: EventBridge detail types of CloudWatch alarm events.
ALARM_STATE_CHANGE: Final = "CloudWatch Alarm State Change"
CONTRIBUTOR_STATE_CHANGE: Final = "CloudWatch Alarm Contributor State Change"


def allow_services_on_key(remediation: UnresponsiveInstanceRemediation) -> None:
    """Logs (the log group), EventBridge (the rule's dead-letter queue) and this account's
    alarms (the topic) may use the deployment's key."""
    allow_logs_on_key(remediation, remediation.key, "CrashcartLogsUseKey")
    # aws-assumption: sse-kms-keys-for-service-senders
    allow_rules_on_key(remediation, remediation.key, "CrashcartEventBridgeDeadLetterQueue")
    _publish, use_key = alarm_topic_statements(remediation, remediation.incidents.topic)
    remediation.key.add_to_resource_policy(use_key)


def failure_queue(
    remediation: UnresponsiveInstanceRemediation, construct_id: str, what: str
) -> sqs.Queue:
    """An encrypted queue that is itself a dead-letter store (of ``what``)."""
    return encrypted_queue(
        remediation,
        construct_id,
        key=remediation.key,
        dead_letter_store=f"this queue is itself a dead-letter store ({what}); an alarm "
        "notifies the topic on every message sent to it",
    )


def alarm_rule(
    remediation: UnresponsiveInstanceRemediation,
    fleet: FleetWatch | ManagedAlarms | None,
    max_event_age: cdk.Duration,
) -> events.Rule:
    """This deployment's alarm events (by name prefix) -> the function, asynchronously, with
    the dead-letter queue for what EventBridge cannot deliver."""
    stack = cdk.Stack.of(remediation)
    detail_type = CONTRIBUTOR_STATE_CHANGE if isinstance(fleet, FleetWatch) else ALARM_STATE_CHANGE
    rule = events.Rule(
        remediation,
        "AlarmRule",
        description=(
            f"crashcart: {detail_type} of alarms named {remediation.alarm_name_prefix}* "
            "to the remediation function"
        ),
        event_pattern=events.EventPattern(
            source=["aws.cloudwatch"],
            detail_type=[detail_type],
            account=[stack.account],
            region=[stack.region],
            detail={
                "alarmName": [{"prefix": remediation.alarm_name_prefix}],
                "state": {"value": ["ALARM", "OK"]},
            },
        ),
    )
    rule.add_target(
        targets.LambdaFunction(
            remediation.function,
            dead_letter_queue=remediation.dead_letter_queue,
            max_event_age=max_event_age,
            retry_attempts=185,
        )
    )
    return rule


def queue_alarms(remediation: UnresponsiveInstanceRemediation) -> list[cloudwatch.Alarm]:
    """One alarm per failure queue, on messages sent, not visible: each new failure notifies
    again even while an earlier one still waits in the queue."""
    return [
        failure_queue_alarm(queue, "DepthAlarm", queue, remediation.topic, what)
        for queue, what in (
            (remediation.dead_letter_queue, "undelivered events (EventBridge -> function)"),
            (remediation.failure_queue, "events the function failed on"),
            (remediation.rejected_queue, "events the function rejected as malformed or foreign"),
        )
    ]


def missed_alarm_sweep_rule(
    remediation: UnresponsiveInstanceRemediation, sweep: MissedAlarmSweep
) -> tuple[events.Rule, cloudwatch.Alarm]:
    """The schedule of the function's pass over impaired opted-in instances whose alarm event
    was missed, and the alarm on passes EventBridge could not deliver."""
    rule = events.Rule(
        remediation,
        "MissedAlarmSweepSchedule",
        description=(
            "crashcart: the remediation function's pass over impaired opted-in instances "
            "whose alarm event was missed"
        ),
        schedule=events.Schedule.rate(sweep.schedule),
    )
    rule.add_target(
        targets.LambdaFunction(
            remediation.function,
            event=events.RuleTargetInput.from_object(
                {SWEEP_TRIGGER_KEY: SWEEP_TRIGGER_VALUE, "scheduled-at": events.EventField.time}
            ),
            dead_letter_queue=remediation.dead_letter_queue,
            # a lost pass is replaced by the next one: a short retry only
            max_event_age=cdk.Duration.minutes(10),
            retry_attempts=2,
        )
    )
    alarm = undeliverable_events_alarm(
        remediation, "MissedAlarmSweepUndeliverableAlarm", rule, remediation.topic
    )
    return rule, alarm
