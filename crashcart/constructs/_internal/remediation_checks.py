"""Synth-time checks of the remediation construct's props, and its environment values.

Every bad prop fails here with what was given, what is allowed and why; the stack's
resource budget (CloudFormation's 500) is checked when the props are read and again when
the whole stack is known.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

import aws_cdk as cdk
import jsii
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from constructs import Construct, IValidation

from crashcart import _props as props
from crashcart.constructs._internal.lambda_functions import check_reserved_concurrency
from crashcart.constructs.existing_dump_bucket import check_dump_bucket
from crashcart.constructs.fleet_scale import ManagedAlarms
from crashcart.constructs.incident_store import IncidentStore
from crashcart.constructs.remediation_settings import (
    AlarmWindow,
    CircuitBreaker,
    FleetWatch,
    InterruptGuards,
    MissedAlarmSweep,
    _seconds,
    _unresolved,
)
from crashcart.errors import ConfigurationError
from crashcart.opt_in import OptInTag
from crashcart.runtime import environment as variables

if TYPE_CHECKING:
    from crashcart.constructs.unresponsive_instance_remediation import (
        UnresponsiveInstanceRemediation,
    )

#: CloudFormation's hard limit of resources per stack.
MAX_STACK_RESOURCES: Final = 500
#: Template resources each explicitly listed instance adds (its status-check alarm).
RESOURCES_PER_INSTANCE: Final = 1
#: Metrics Insights alarms evaluate only the most recent three hours of data.
MAX_INSIGHTS_EVALUATION_MINUTES: Final = 180

_INSTANCE_ID = re.compile(r"^i-(?:[0-9a-f]{8}|[0-9a-f]{17})\Z")


def env_seconds(duration: cdk.Duration) -> str:
    return env_number(duration.to_seconds())


def env_number(value: float) -> str:
    if _unresolved(value):
        return cdk.Token.as_string(value)
    return str(int(value))


def check_int(name: str, value: object, low: int, high: int) -> None:
    if _unresolved(value):
        return
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ConfigurationError(f"{name}={value!r}: must be a whole number from {low} to {high}")


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def check_prop_types(
    *,
    dumps: object,
    tag: object,
    alarm_window: object,
    guards: object,
    breaker: object,
    topic: object,
    notifications: object,
    encryption_key: object,
    vpc: object,
) -> list[sns.ITopicSubscription]:
    """A prop of the wrong type fails here, naming it, not as an AttributeError later."""
    owner = "UnresponsiveInstanceRemediation"
    check_dump_bucket(owner, dumps)
    props.check(owner, "tag", tag, OptInTag, example="OptInTag(key='team:nmi', value='yes')")
    props.check(
        owner,
        "alarm_window",
        alarm_window,
        AlarmWindow,
        example="AlarmWindow(evaluation_periods=3, datapoints_to_alarm=3)",
    )
    props.check(owner, "guards", guards, InterruptGuards, example="InterruptGuards(daily_budget=1)")
    props.check(
        owner, "breaker", breaker, CircuitBreaker, example="CircuitBreaker(fleet_threshold=5)"
    )
    props.check(
        owner, "topic", topic, sns.ITopic, example="sns.Topic(self, 'Topic')", optional=True
    )
    props.check_key(owner, encryption_key)
    props.check(owner, "vpc", vpc, ec2.IVpc, example="ec2.Vpc(self, 'Vpc')", optional=True)

    def subscription(name: str, item: object) -> None:
        props.check(
            owner,
            name,
            item,
            sns.ITopicSubscription,
            example="sns_subscriptions.EmailSubscription('oncall@example.com')",
        )

    return props.check_sequence(
        owner, "notifications", notifications, subscription, what="sns.ITopicSubscription"
    )


def check_mode(
    instances: Sequence[ec2.IInstance | str] | None, fleet: FleetWatch | ManagedAlarms | None
) -> list[ec2.IInstance | str]:
    if instances is not None and fleet is not None:
        raise ConfigurationError(
            "both instances and fleet were given: choose one. fleet=FleetWatch() watches "
            "every instance (the function checks the tag); instances=[...] watches only "
            "those, with one alarm each. Both would announce one hang twice"
        )
    if fleet is not None:
        if not isinstance(fleet, FleetWatch | ManagedAlarms):
            raise ConfigurationError(
                f"fleet={fleet!r}: must be a FleetWatch (one Metrics Insights alarm, up to "
                "10,000 instances) or ManagedAlarms (one alarm per instance, kept at run time)"
            )
        return []
    if instances is None or isinstance(instances, str) or len(instances) == 0:
        raise ConfigurationError(
            f"instances={instances!r}: give a non-empty list of ec2.IInstance objects or "
            "instance ids, or fleet=FleetWatch() to watch every instance of the region"
        )
    seen: set[str] = set()
    for instance in instances:
        if isinstance(instance, str):
            if not _unresolved(instance) and not _INSTANCE_ID.match(instance):
                raise ConfigurationError(
                    f"instance id {instance!r} is not an EC2 instance id (i- followed by 8 or "
                    "17 lower-case hex digits)"
                )
            key = instance
        elif hasattr(instance, "instance_id") and hasattr(instance, "node"):
            key = cdk.Names.node_unique_id(instance.node)
        else:
            raise ConfigurationError(
                f"instances entry {instance!r}: must be an ec2.IInstance or an instance id"
            )
        if key in seen:
            raise ConfigurationError(
                f"instance {key!r} is listed twice: it would get two alarms and two events "
                "for one hang"
            )
        seen.add(key)
    return list(instances)


def check_settings(
    *,
    instances: Sequence[ec2.IInstance | str] | None,
    fleet: FleetWatch | ManagedAlarms | None,
    alarm_window: AlarmWindow,
    missed_alarm_sweep: object,
    dry_run: object,
    reserved_concurrency: int | None,
    timeout: cdk.Duration,
    memory_size: int,
    retry_attempts: int,
    max_event_age: cdk.Duration,
) -> list[ec2.IInstance | str]:
    """The watch mode and the function's settings; returns the instances to watch."""
    watched = check_mode(instances, fleet)
    check_reserved_concurrency(reserved_concurrency)
    check_int("memory_size", memory_size, 128, 10_240)
    check_int("retry_attempts", retry_attempts, 0, 2)
    timeout_s = _seconds("timeout", timeout, minimum=10)
    if timeout_s is not None and timeout_s > 900:
        raise ConfigurationError(f"timeout={timeout_s}s: Lambda allows at most 900 s")
    age_s = _seconds("max_event_age", max_event_age, minimum=60)
    if age_s is not None and age_s > 6 * 3600:
        raise ConfigurationError(
            f"max_event_age={age_s}s: Lambda keeps asynchronous events at most 6 hours"
        )
    if not isinstance(dry_run, bool):
        raise ConfigurationError(f"dry_run={dry_run!r}: must be True or False")
    if missed_alarm_sweep is not None and not isinstance(missed_alarm_sweep, MissedAlarmSweep):
        raise ConfigurationError(
            f"missed_alarm_sweep={missed_alarm_sweep!r}: give MissedAlarmSweep(...) or None"
        )
    periods = alarm_window.evaluation_periods
    if (
        isinstance(fleet, FleetWatch)
        and not _unresolved(periods)
        and periods > MAX_INSIGHTS_EVALUATION_MINUTES
    ):
        raise ConfigurationError(
            f"AlarmWindow evaluation_periods={periods} with fleet mode: Metrics Insights "
            f"alarms evaluate at most the last {MAX_INSIGHTS_EVALUATION_MINUTES} minutes "
            "of data"
        )
    return watched


def check_resource_budget(remediation: UnresponsiveInstanceRemediation, count: int) -> None:
    """``count`` listed instances (one alarm each) must fit in what is left of the stack."""
    room = remediation.max_explicit_instances
    if count * RESOURCES_PER_INSTANCE > room:
        raise ConfigurationError(
            f"{count} explicitly listed instances need {count * RESOURCES_PER_INSTANCE} "
            f"alarms, but stack {cdk.Stack.of(remediation).stack_name!r} has room for at most "
            f"{room} more resources (CloudFormation allows {MAX_STACK_RESOURCES} per "
            "stack; the remediation itself and the stack's other resources use the rest). "
            "Use fleet=FleetWatch() instead: one Metrics Insights alarm watches any "
            "number of instances, or split the instances across stacks"
        )


def warn_untagged_ids(
    scope: Construct, watched: Sequence[ec2.IInstance | str], tag: OptInTag
) -> None:
    """Instances given by id cannot be tagged here: a synth warning says they must be."""
    raw_ids = [i for i in watched if isinstance(i, str)]
    if raw_ids:
        cdk.Annotations.of(scope).add_warning_v2(
            "crashcart:remediation:instanceIdsMustBeTagged",
            f"{len(raw_ids)} instance(s) given by id ({', '.join(raw_ids[:5])}"
            f"{', ...' if len(raw_ids) > 5 else ''}): crashcart cannot tag them. Each must "
            f"carry the tag {tag.key}={tag.value}, or the function skips it and IAM denies "
            "the interrupt",
        )


def incident_store(
    remediation: UnresponsiveInstanceRemediation,
    incidents: IncidentStore | None,
    *,
    encryption_key: kms.IKey | None,
    topic: sns.ITopic | None,
    removal_policy: cdk.RemovalPolicy,
) -> tuple[IncidentStore, kms.IKey]:
    """The incident store the remediation uses (the given one, or its own) and the key of its
    queues and log group."""
    if incidents is None:
        # "Default" is left out of logical ids: the table, key and topic keep the ids
        # they had when this construct created them itself (a new id would replace them).
        incidents = IncidentStore(
            remediation,
            "Default",
            encryption_key=encryption_key,
            topic=topic,
            removal_policy=removal_policy,
            key_description="crashcart remediation: incident table, topic, queues, logs",
            topic_display_name="crashcart remediation",
        )
    elif topic is not None:
        raise ConfigurationError(
            "topic was given with incidents: the remediation announces on its incident "
            "store's topic; give the topic to the IncidentStore instead"
        )
    key = encryption_key or incidents.encryption_key
    if key is None:
        raise ConfigurationError(
            "the incident store's table has no customer key: give encryption_key for the "
            "remediation's queues and log group"
        )
    return incidents, key


def alarm_name_prefix(scope: Construct) -> str:
    """``crashcart-<stack name>-<8 hex of the construct path>-``: unique per deployment."""
    stack = cdk.Stack.of(scope)
    name = stack.stack_name if not _unresolved(stack.stack_name) else "stack"
    digest = hashlib.sha256(scope.node.path.encode()).hexdigest()[:8]
    return f"crashcart-{name[:60]}-{digest}-"


def count_resources(stack: cdk.Stack) -> int:
    return sum(1 for child in stack.node.find_all() if isinstance(child, cdk.CfnResource))


@jsii.implements(IValidation)
class StackResourceBudget:
    """Synth-time check: the finished stack still fits CloudFormation's resource limit."""

    def __init__(self, remediation: UnresponsiveInstanceRemediation, instances: int) -> None:
        self._stack = cdk.Stack.of(remediation)
        self._instances = instances

    def validate(self) -> list[str]:
        # +1: the CDK metadata resource the synthesizer adds to the template.
        total = count_resources(self._stack) + 1
        if total <= MAX_STACK_RESOURCES:
            return []
        return [
            f"stack {self._stack.stack_name!r} would have {total} resources, more than the "
            f"{MAX_STACK_RESOURCES} CloudFormation allows; its {self._instances} explicitly "
            f"listed instances use {self._instances * RESOURCES_PER_INSTANCE} of them (one "
            "alarm each). Use fleet=FleetWatch() instead: one Metrics Insights alarm watches "
            "any number of instances, or list fewer instances per stack"
        ]


def function_environment(
    remediation: UnresponsiveInstanceRemediation,
    guards: InterruptGuards,
    breaker: CircuitBreaker,
    max_event_age: cdk.Duration,
) -> dict[str, str]:
    return {
        variables.TABLE_NAME: remediation.table.table_name,
        variables.TOPIC_ARN: remediation.topic.topic_arn,
        variables.EVIDENCE_BUCKET: remediation.evidence_bucket.bucket_name,
        variables.REJECTED_QUEUE_URL: remediation.rejected_queue.queue_url,
        variables.KILL_SWITCH_PARAMETER: remediation.kill_switch.parameter_name,
        variables.OPT_IN_TAG_KEY: remediation.tag.key,
        variables.OPT_IN_TAG_VALUE: remediation.tag.value,
        variables.ALARM_NAME_PREFIX: remediation.alarm_name_prefix,
        variables.DRY_RUN: "true" if remediation.dry_run else "false",
        variables.BOOT_GRACE_SECONDS: env_seconds(guards.boot_grace),
        variables.COOLDOWN_SECONDS: env_seconds(guards.cooldown),
        variables.DAILY_BUDGET: env_number(guards.daily_budget),
        variables.BREAKER_FLEET_THRESHOLD: env_number(breaker.fleet_threshold),
        variables.BREAKER_AZ_THRESHOLD: env_number(breaker.az_threshold),
        variables.BREAKER_WINDOW_SECONDS: env_seconds(breaker.window),
        variables.BREAKER_QUIET_SECONDS: env_seconds(breaker.quiet),
        variables.ATTESTATION_POLICY: guards.attestation.value,
        variables.ATTESTATION_MAX_AGE_SECONDS: env_seconds(guards.attestation_max_age),
        variables.ALLOW_UNVERIFIED_ARCH: "true" if guards.allow_unverified_arch else "false",
        variables.DUMP_DEADLINE_SECONDS: env_seconds(guards.dump_deadline),
        # The function rejects state changes older than twice this (EventBridge's
        # retries, then Lambda's queue): stale or forged timestamps.
        variables.MAX_EVENT_AGE_SECONDS: env_seconds(max_event_age),
        **_sweep_environment(remediation.missed_alarm_sweep_settings),
        **_organisation_environment(remediation),
    }


def _organisation_environment(remediation: UnresponsiveInstanceRemediation) -> dict[str, str]:
    """The organisation breaker's and central bus's variables (none without the prop)."""
    from crashcart.constructs.organisation_link import organisation_environment

    link = remediation.organisation
    return {} if link is None else organisation_environment(link)


def _sweep_environment(sweep: MissedAlarmSweep | None) -> dict[str, str]:
    """The missed-alarm sweep's bounds (the defaults when there is no sweep: no pass runs)."""
    sweep = sweep or MissedAlarmSweep()
    return {
        variables.MISSED_SWEEP_MAX_PER_PASS: env_number(sweep.max_per_pass),
        variables.MISSED_SWEEP_MAX_PAGES: env_number(sweep.max_pages),
        variables.MISSED_SWEEP_STALE_SECONDS: env_seconds(sweep.stale_after),
    }
