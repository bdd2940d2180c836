"""The remediation function's metrics, as the construct's ``metric_*`` methods.

The function writes them as embedded-metric-format log lines (names defined once, in
:mod:`crashcart.runtime.metrics`): namespace, one dimension (the function's name), one
metric per outcome. A mixin of :class:`UnresponsiveInstanceRemediation`, so that its module
keeps the wiring and this one what the function reports.
"""

from __future__ import annotations

from typing import Any, Final

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_lambda as lambda_

from crashcart.runtime import metrics

#: Embedded-metric-format metrics the runtime writes (defined in crashcart.runtime.metrics):
#: namespace, the one dimension (value: function name), names by outcome.
# aws-assumption: emf-log-metrics
METRIC_NAMESPACE: Final = metrics.NAMESPACE
METRIC_DIMENSION: Final = metrics.DIMENSION
OUTCOME_METRICS: Final = metrics.REMEDIATION_OUTCOMES


class RemediationMetrics:
    """``metric`` and ``metric_*`` of the remediation construct (its ``function``)."""

    function: lambda_.Function

    def metric(self, metric_name: str, **props: Any) -> cloudwatch.Metric:
        """A metric the function emits (embedded metric format), as a 5-minute Sum."""
        return cloudwatch.Metric(
            namespace=METRIC_NAMESPACE,
            metric_name=metric_name,
            dimensions_map={METRIC_DIMENSION: self.function.function_name},
            statistic=props.pop("statistic", "Sum"),
            period=props.pop("period", cdk.Duration.minutes(5)),
            **props,
        )

    def metric_interrupts_sent(self, **props: Any) -> cloudwatch.Metric:
        """Interrupts sent (not dry run)."""
        return self.metric(OUTCOME_METRICS["interrupted"], **props)

    def metric_interrupts_dry_run(self, **props: Any) -> cloudwatch.Metric:
        """Interrupts that dry-run mode sent with ``DryRun=True``."""
        return self.metric(OUTCOME_METRICS["dry_run"], **props)

    def metric_interrupts_skipped(self, **props: Any) -> cloudwatch.Metric:
        """ALARMs a guard refused to act on."""
        return self.metric(OUTCOME_METRICS["skipped"], **props)

    def metric_interrupts_failed(self, **props: Any) -> cloudwatch.Metric:
        """Interrupts EC2 refused or that failed."""
        return self.metric(OUTCOME_METRICS["failed"], **props)

    def metric_events_rejected(self, **props: Any) -> cloudwatch.Metric:
        """Malformed or foreign events sent to the rejected queue."""
        return self.metric(OUTCOME_METRICS["rejected"], **props)

    def metric_breaker_opened(self, **props: Any) -> cloudwatch.Metric:
        """Times the fleet or a zone circuit breaker opened."""
        return self.metric(OUTCOME_METRICS["breaker_opened"], **props)

    def metric_first_unattested_skips(self, **props: Any) -> cloudwatch.Metric:
        """Instances skipped for the first time because their kdump attestation was not valid
        (each is also notified; later skips of the same instance count only as skipped)."""
        return self.metric(OUTCOME_METRICS["unattested_first_skip"], **props)

    def metric_sweep_found_work(self, **props: Any) -> cloudwatch.Metric:
        """Impaired opted-in instances the missed-alarm sweep handed to the decision (each
        one an alarm event that was missed, or an incident that went stale)."""
        return self.metric(OUTCOME_METRICS["sweep_found"], **props)
