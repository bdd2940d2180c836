"""OperationsMonitoring: crashcart watches itself (one dashboard, alarms that say what to do).

Everything crashcart does is counted (embedded metrics of the functions, AWS metrics of the
queues, functions and rules); this construct puts it in one CloudWatch dashboard and alarms
on what needs a person, each alarm notifying the topic (docs/operations.md has one runbook
entry per alarm: what it means and what to do):

- discovered stack-wide at synth (an Aspect, so parts added by other constructs, now or
  later, are covered without edits): every SQS queue of the stack (depth and age widgets,
  and an alarm when a message has waited ``unhandled_after``), every crashcart function
  (handler ``crashcart.functions.*``: errors and throttles widgets and alarms, and an alarm
  on failed deliveries to its on-failure destination when it has one);
- from the remediation: interrupts sent, circuit breaker opened, missed-alarm sweep found
  work (each an alarm), and the outcome counts;
- from the overdue sweep's census, when given: opted-in instances not attested for
  ``unattested_for`` (an alarm), opted-in vs attested;
- from the kill-switch reach, when given: alarms whose actions it changed;
- :meth:`add_alarm_widget`: a hook for alarms other constructs own (e.g. the fleet alarm in
  partial data), shown in the dashboard's alarm row.
"""

from __future__ import annotations

from typing import Final

import aws_cdk as cdk
import jsii
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct, IConstruct, IValidation

from crashcart import _props as props
from crashcart.constructs._internal.service_access import allow_alarm_actions
from crashcart.constructs.dump_overdue_sweep import DumpOverdueSweep
from crashcart.constructs.kill_switch_reach import KillSwitchReach
from crashcart.constructs.unresponsive_instance_remediation import UnresponsiveInstanceRemediation
from crashcart.errors import ConfigurationError

__all__ = ["OperationsMonitoring"]

#: Functions whose handler starts with this are crashcart's (``FunctionPackage.handler``).
CRASHCART_HANDLER_PREFIX: Final = "crashcart.functions."
_PERIOD = cdk.Duration.minutes(5)
_WIDTH = 24


@jsii.implements(cdk.IAspect)
class _Discover:
    """Adds the queues and crashcart functions of the stack to the monitoring (once each)."""

    def __init__(self, monitoring: OperationsMonitoring) -> None:
        self._monitoring = monitoring

    def visit(self, node: IConstruct) -> None:
        if isinstance(node, sqs.Queue):
            self._monitoring._watch_queue(node)
        elif isinstance(node, lambda_.Function):
            handler = node.node.default_child
            name = getattr(handler, "handler", None)
            if isinstance(name, str) and name.startswith(CRASHCART_HANDLER_PREFIX):
                self._monitoring._watch_function(node)


class OperationsMonitoring(Construct):
    """A dashboard and self-watch alarms for a crashcart deployment (see the module docstring).

    Example::

        OperationsMonitoring(
            self,
            "Monitoring",
            remediation=remediation,
            overdue_sweep=sweep,
            kill_switch_reach=reach,
        )
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        remediation: UnresponsiveInstanceRemediation,
        overdue_sweep: DumpOverdueSweep | None = None,
        kill_switch_reach: KillSwitchReach | None = None,
        topic: sns.ITopic | None = None,
        unattested_for: cdk.Duration | None = None,
        unhandled_after: cdk.Duration | None = None,
    ) -> None:
        """
        :param remediation: the remediation whose metrics are shown and alarmed on.
        :param overdue_sweep: the overdue sweep whose attestation census is shown; with its
            census on, an alarm watches opted-in instances that are not attested. Default:
            none (no census widgets or alarm).
        :param kill_switch_reach: the kill-switch reach whose changes are shown. Default: none.
        :param topic: where every alarm notifies (its policy is extended to allow this
            account's alarms). Default: the remediation's topic.
        :param unattested_for: how long some running opted-in instance may go unattested
            before the alarm, whole hours from 1 to 168. Default: 24 hours (the agent
            attests at boot and hourly).
        :param unhandled_after: how long a message may wait in any queue of the stack before
            the alarm (its arrival already notified), whole hours from 1 to 336. Default:
            24 hours.
        """
        owner = "OperationsMonitoring"
        props.check(
            owner,
            "remediation",
            remediation,
            UnresponsiveInstanceRemediation,
            example="UnresponsiveInstanceRemediation(...)",
        )
        props.check(
            owner, "overdue_sweep", overdue_sweep, DumpOverdueSweep, example="sweep", optional=True
        )
        props.check(
            owner,
            "kill_switch_reach",
            kill_switch_reach,
            KillSwitchReach,
            example="reach",
            optional=True,
        )
        props.check(owner, "topic", topic, sns.ITopic, example="remediation.topic", optional=True)
        unattested_hours = _hours(owner, "unattested_for", unattested_for, 24, top=168)
        unhandled_hours = _hours(owner, "unhandled_after", unhandled_after, 24, top=336)
        super().__init__(scope, construct_id)
        self.topic: sns.ITopic = topic or remediation.topic
        self._unhandled_hours = unhandled_hours
        self._queues: dict[str, sqs.Queue] = {}
        self._functions: dict[str, lambda_.Function] = {}
        self._alarm_widgets: list[cloudwatch.IAlarm] = []
        #: Every alarm this construct created, in order.
        self.alarms: list[cloudwatch.Alarm] = []
        #: The dashboard.
        self.dashboard = cloudwatch.Dashboard(
            self,
            "Dashboard",
            default_interval=cdk.Duration.hours(24),
            period_override=cloudwatch.PeriodOverride.AUTO,
        )
        self.dashboard.add_widgets(
            cloudwatch.TextWidget(
                markdown=(
                    "# crashcart\nWhat each alarm means and what to do: docs/operations.md. "
                    "Kill switch: the stack output KillSwitchParameter."
                ),
                width=_WIDTH,
                height=2,
            )
        )

        # -- the remediation ---------------------------------------------------------
        r = remediation
        #: An instance was interrupted (each also has a notification from the function).
        self.interrupts_sent_alarm = self._alarm(
            "InterruptsSentAlarm",
            r.metric_interrupts_sent(period=_PERIOD),
            "an instance was sent a diagnostic interrupt: follow its incident (dump arrival, "
            "triage report)",
        )
        #: The fleet or a zone circuit breaker opened.
        self.breaker_open_alarm = self._alarm(
            "BreakerOpenAlarm",
            r.metric_breaker_opened(period=_PERIOD),
            "a circuit breaker opened: many instances failed their checks at once; crashcart "
            "stops interrupting until it is quiet; check for an AWS event",
        )
        #: The missed-alarm sweep found an impaired instance without an open incident.
        self.sweep_found_work_alarm = self._alarm(
            "SweepFoundWorkAlarm",
            r.metric_sweep_found_work(period=_PERIOD),
            "the missed-alarm sweep found an impaired opted-in instance whose alarm event was "
            "lost, or whose incident went stale: check the alarm rule and its queues",
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Remediation outcomes (count per 5 minutes)",
                left=[
                    r.metric_interrupts_sent(label="interrupts sent"),
                    r.metric_interrupts_dry_run(label="dry run"),
                    r.metric_interrupts_skipped(label="skipped by a guard"),
                    r.metric_interrupts_failed(label="failed"),
                    r.metric("Escalations", label="escalated (budget)"),
                    r.metric_events_rejected(label="events rejected"),
                ],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Breaker, missed-alarm sweep",
                left=[
                    r.metric_breaker_opened(label="breaker opened"),
                    r.metric_sweep_found_work(label="sweep found work"),
                    r.metric("SweepTruncated", label="sweep stopped at a bound"),
                    r.metric_first_unattested_skips(label="first unattested skips"),
                ],
                width=12,
            ),
        )

        # -- the census ----------------------------------------------------------------
        #: Some running opted-in instance was not attested for ``unattested_for``.
        self.unattested_alarm: cloudwatch.Alarm | None = None
        if overdue_sweep is not None and overdue_sweep.attestation_watch is not None:
            opted_in = overdue_sweep.metric_opted_in_instances()
            attested = overdue_sweep.metric_attested_instances()
            # aws-assumption: emf-lambda-stdout (the census counts are embedded metrics)
            self.unattested_alarm = self._alarm(
                "UnattestedInstancesAlarm",
                cloudwatch.MathExpression(
                    expression="optedin - attested",
                    using_metrics={"optedin": opted_in, "attested": attested},
                    label="running opted-in instances not attested",
                    period=cdk.Duration.hours(1),
                ),
                f"running opted-in instances have not been attested kdump-armed for "
                f"{unattested_hours} h: with attestation policy require they are never "
                "interrupted; run 'crashcart attestation'",
                periods=unattested_hours,
            )
            self.dashboard.add_widgets(
                cloudwatch.GraphWidget(
                    title="Opted-in instances and attested ones (hourly census)",
                    left=[opted_in.with_(label="opted in"), attested.with_(label="attested")],
                    width=12,
                )
            )
        if kill_switch_reach is not None:
            self.dashboard.add_widgets(
                cloudwatch.GraphWidget(
                    title="Kill switch: alarms whose actions were switched",
                    left=[kill_switch_reach.metric_alarm_actions_changed(label="changed")],
                    width=12,
                )
            )
        # Discovered parts are added when the stack is complete.
        cdk.Aspects.of(cdk.Stack.of(self)).add(_Discover(self))
        self._rendered = False
        self.node.add_validation(_Render(self))

    def add_alarm_widget(self, alarm: cloudwatch.IAlarm) -> None:
        """Show ``alarm`` (owned elsewhere, e.g. the fleet alarm in partial data) in the
        dashboard's alarm row; it keeps its own actions."""
        self._alarm_widgets.append(alarm)

    # -- discovered parts ------------------------------------------------------------------

    def _watch_queue(self, queue: sqs.Queue) -> None:
        path = queue.node.path
        if path in self._queues:
            return
        self._queues[path] = queue
        hours = self._unhandled_hours
        self._alarm(
            f"Unhandled{_id_of(queue)}Alarm",
            queue.metric_approximate_age_of_oldest_message(
                period=cdk.Duration.hours(1), statistic="Maximum"
            ),
            f"a message has waited {hours} h in {path}: a failure nobody handled; look at "
            "it, fix the cause, then redrive or delete it",
            threshold=hours * 3600,
        )

    def _watch_function(self, function: lambda_.Function) -> None:
        path = function.node.path
        if path in self._functions:
            return
        self._functions[path] = function
        index = _id_of(function)
        self._alarm(
            f"Errors{index}Alarm",
            function.metric_errors(period=_PERIOD, statistic="Sum"),
            f"{path} failed: the event is retried, then kept in its failure queue; read the "
            "function's log for the error",
        )
        self._alarm(
            f"Throttles{index}Alarm",
            function.metric_throttles(period=_PERIOD, statistic="Sum"),
            f"{path} was throttled: the account's concurrency is exhausted; asynchronous "
            "events are retried for up to their maximum age",
        )
        if _has_async_destination(function):
            # aws-assumption: lambda-destination-delivery-failures
            self._alarm(
                f"DeliveryFailures{index}Alarm",
                function.metric("DestinationDeliveryFailures", period=_PERIOD, statistic="Sum"),
                f"{path} could not hand a failed event to its on-failure destination (a "
                "permission, key policy or size problem): that event is lost; read the "
                "function's log for the event, fix the destination's policy",
            )

    def _render(self) -> None:
        """Add the widgets of the discovered parts (once, when the stack is complete)."""
        if self._rendered:
            return
        self._rendered = True
        functions = list(self._functions.values())
        if functions:
            self.dashboard.add_widgets(
                cloudwatch.GraphWidget(
                    title="crashcart functions: errors and throttles",
                    left=[
                        f.metric_errors(label=f"{f.node.id} errors", period=_PERIOD)
                        for f in functions
                    ]
                    + [
                        f.metric_throttles(label=f"{f.node.id} throttles", period=_PERIOD)
                        for f in functions
                    ],
                    width=_WIDTH,
                )
            )
        queues = list(self._queues.values())
        if queues:
            self.dashboard.add_widgets(
                cloudwatch.GraphWidget(
                    title="Queues: messages waiting (every queue of the stack)",
                    left=[
                        q.metric_approximate_number_of_messages_visible(
                            label=q.node.path, period=_PERIOD, statistic="Maximum"
                        )
                        for q in queues
                    ],
                    width=_WIDTH,
                )
            )
        self.dashboard.add_widgets(
            cloudwatch.AlarmStatusWidget(
                title="crashcart alarms",
                alarms=[*self.alarms, *self._alarm_widgets],
                width=_WIDTH,
            )
        )

    def _alarm(
        self,
        construct_id: str,
        metric: cloudwatch.IMetric,
        meaning: str,
        *,
        threshold: float = 1,
        periods: int = 1,
    ) -> cloudwatch.Alarm:
        alarm = cloudwatch.Alarm(
            self,
            construct_id,
            alarm_description=f"crashcart: {meaning} (docs/operations.md)",
            metric=metric,
            threshold=threshold,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=periods,
            datapoints_to_alarm=periods,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        alarm.add_alarm_action(cloudwatch_actions.SnsAction(self.topic))
        allow_alarm_actions(self, self.topic)
        self.alarms.append(alarm)
        return alarm


@jsii.implements(IValidation)
class _Render:
    """Renders the discovered widgets at validation (after every Aspect ran)."""

    def __init__(self, monitoring: OperationsMonitoring) -> None:
        self._monitoring = monitoring

    def validate(self) -> list[str]:
        self._monitoring._render()
        return []


def _has_async_destination(function: lambda_.Function) -> bool:
    """Whether ``function`` hands failed asynchronous events to a destination (its
    EventInvokeConfig has one): only then can a delivery to it fail."""
    for child in function.node.children:
        if isinstance(child, lambda_.EventInvokeConfig):
            config = child.node.default_child
            if getattr(config, "destination_config", None) is not None:
                return True
    return False


def _id_of(construct: IConstruct) -> str:
    """A construct id from ``construct``'s path within its stack (stable as long as it is)."""
    stack_path = cdk.Stack.of(construct).node.path
    relative = construct.node.path[len(stack_path) :]
    return "".join(part for part in relative.split("/") if part)


def _hours(owner: str, name: str, value: cdk.Duration | None, default: int, *, top: int) -> int:
    if value is None:
        return default
    if not isinstance(value, cdk.Duration):
        raise ConfigurationError(f"{owner} {name}={value!r}: give a cdk.Duration in whole hours")
    if value.is_unresolved():
        raise ConfigurationError(
            f"{owner} {name}: a token cannot size the alarm's periods; give whole hours"
        )
    seconds = value.to_seconds()
    if seconds % 3600 or not 3600 <= seconds <= top * 3600:
        raise ConfigurationError(
            f"{owner} {name}={value.to_human_string()}: give whole hours from 1 to {top} "
            "(the alarm looks at one-hour periods)"
        )
    return int(seconds // 3600)
