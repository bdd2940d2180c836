"""CentralDumpReceiver: a member account learns that its dump arrived in the central bucket.

In an organisation (docs/organisation/central.md) an instance ships its dump to the central
account's bucket, so the member's own dump-arrival function never sees it. The central
incident view closes the loop: when it links a member's dump it puts one "dump received"
event (source ``crashcart.central``) directly on that member's default bus in the same
Region. This construct, deployed in the member account (per Region), receives it:

- an ``AWS::Events::EventBusPolicy`` on the member's default bus that lets only the central
  account put events, and only with source ``crashcart.central`` / detail type
  ``Crashcart Dump Received``;
- a rule on the default bus for exactly those events from the central account;
- the dump-arrival function (its central event type, :mod:`crashcart.functions.dump_arrival.
  central`), which records the dump on the member's incident table as an in-account arrival
  does (state ``dump-received``, ``dump_keys``, ``summary``): the overdue sweep then does not
  flag the incident and an ``AutoScalingHold`` releases the instance;
- its dead-letter queue (refused or failed events are kept), the rule target's dead-letter
  queue, and alarms on both and on events EventBridge could not deliver.

::

    incidents = IncidentStore(self, "Incidents")
    CentralDumpReceiver(self, "CentralDumps", central_account_id="999999999999",
                        incidents=incidents)
"""

from __future__ import annotations

import re
from typing import Final

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_events as events
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from crashcart import _props as props
from crashcart.constructs._internal.function_code import DUMP_ARRIVAL
from crashcart.constructs._internal.incident_view import incident_writer_function
from crashcart.constructs._internal.organisation_policies import put_events_conditions
from crashcart.constructs._internal.queues import encrypted_queue
from crashcart.constructs._internal.secure_function import rule_target
from crashcart.constructs._internal.service_access import (
    failure_queue_alarm,
    undeliverable_events_alarm,
)
from crashcart.constructs._internal.service_key import logs_and_rules_key
from crashcart.constructs.incident_store import IncidentStore
from crashcart.errors import ConfigurationError
from crashcart.runtime import environment as variables
from crashcart.runtime.organisation import DUMP_RECEIVED_DETAIL_TYPE, DUMP_RECEIVED_SOURCE

__all__ = ["CentralDumpReceiver"]

#: The bus policy statement's id on the member's default bus (one receiver per account and
#: Region: the default bus is the account's).
STATEMENT_ID: Final = "CrashcartCentralDumpReceived"
_ACCOUNT_ID: Final = re.compile(r"[0-9]{12}")


def check_central_account(value: object) -> str:
    """A 12-digit account id (or a token), or a clear error."""
    if isinstance(value, str) and cdk.Token.is_unresolved(value):
        return value
    if not isinstance(value, str) or not _ACCOUNT_ID.fullmatch(value):
        raise ConfigurationError(
            f"CentralDumpReceiver: central_account_id={value!r}: give the 12-digit id of the "
            "organisation's central account (where OrganisationCentral is deployed): the "
            'member\'s default bus admits "dump received" events from that account only'
        )
    return value


class CentralDumpReceiver(Construct):
    """The member side of the central account's "dump received" events (module docstring).

    Attributes: ``function``, ``failed_events_queue`` (the function's dead-letter queue:
    refused and failed events), ``undelivered_queue`` (events EventBridge could not deliver),
    ``rule``, ``bus_policy``, ``alarms``.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        central_account_id: str,
        incidents: IncidentStore,
        attach_window: cdk.Duration | None = None,
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_YEAR,
    ) -> None:
        """
        :param central_account_id: the organisation's central account (12 digits): the only
            account allowed to put events on this account's default bus through this
            construct's statement, and the only sender the rule and the function accept.
        :param incidents: this member account's :class:`IncidentStore` (the one its
            remediation, overdue sweep and Auto Scaling hold use).
        :param attach_window: a dump is linked to its instance's latest incident opened at
            most this long before it arrived; otherwise a ``spontaneous`` incident is opened.
            Default: 6 hours (as ``CrashDumpBucket.notify_incidents``).
        :param log_retention: how long the function's logs are kept. Default: one year.
        :raises ConfigurationError: a malformed account id or a prop of the wrong type.
        """
        owner = "CentralDumpReceiver"
        check_central_account(central_account_id)
        props.check(
            owner,
            "incidents",
            incidents,
            IncidentStore,
            example='IncidentStore(self, "Incidents") (the member account\'s own)',
        )
        props.check(
            owner,
            "attach_window",
            attach_window,
            cdk.Duration,
            example="cdk.Duration.hours(6)",
            optional=True,
        )
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        window = attach_window or cdk.Duration.hours(6)
        topic = incidents.topic
        #: The central account whose events this member accepts.
        self.central_account_id = central_account_id

        key = logs_and_rules_key(
            self, "Key", description="crashcart central dump receiver: logs and failed events"
        )
        failed = encrypted_queue(self, "FailedEvents", key=key)
        undelivered = encrypted_queue(
            self,
            "Undelivered",
            key=key,
            dead_letter_store="this queue is itself the dead-letter store of the central "
            "dump receiver's rule target; an alarm notifies on every message sent to it",
        )
        self.function: lambda_.Function = incident_writer_function(
            self,
            package=DUMP_ARRIVAL,
            what="central dump receiver",
            description="crashcart: central account's dump received -> this account's incident",
            incidents=incidents,
            failed=failed,
            key=key,
            log_retention=log_retention,
            environment={
                variables.CENTRAL_ACCOUNT: central_account_id,
                variables.MEMBER_ACCOUNT: stack.account,
                variables.ATTACH_WINDOW_SECONDS: str(int(window.to_seconds())),
            },
            bound="each invocation updates one incident of this account, and only the "
            "central account can put the events that invoke it",
            apis="DynamoDB, SNS",
        )[0]
        self.failed_events_queue: sqs.Queue = failed
        self.undelivered_queue: sqs.Queue = undelivered

        default_bus = (
            f"arn:{stack.partition}:events:{stack.region}:{stack.account}:event-bus/default"
        )
        #: The default bus admits the central account's "dump received" events, nothing else
        #: through this statement.
        self.bus_policy = events.CfnEventBusPolicy(
            self,
            "BusPolicy",
            statement_id=STATEMENT_ID,
            event_bus_name="default",
            # aws-assumption: org-member-bus-policy-source-condition
            statement={
                "Sid": STATEMENT_ID,
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:{stack.partition}:iam::{central_account_id}:root"},
                "Action": "events:PutEvents",
                "Resource": default_bus,
                "Condition": put_events_conditions(DUMP_RECEIVED_SOURCE, DUMP_RECEIVED_DETAIL_TYPE),
            },
        )
        self.rule = events.Rule(
            self,
            "DumpReceived",
            description="crashcart: the central account received this account's dump",
            event_pattern=events.EventPattern(
                source=[DUMP_RECEIVED_SOURCE],
                detail_type=[DUMP_RECEIVED_DETAIL_TYPE],
                # aws-assumption: eventbridge-envelope-account-is-the-sender
                account=[central_account_id],
            ),
            targets=[
                rule_target(
                    self.function,
                    undelivered,
                    retry_attempts=8,
                    max_event_age=cdk.Duration.hours(24),
                )
            ],
        )
        self.alarms: list[cloudwatch.Alarm] = [
            failure_queue_alarm(
                self,
                "FailedEventsAlarm",
                failed,
                topic,
                "central dump-received events the receiver refused or failed on",
            ),
            failure_queue_alarm(
                self,
                "UndeliveredAlarm",
                undelivered,
                topic,
                "central dump-received events EventBridge could not deliver to the receiver",
            ),
            undeliverable_events_alarm(self, "UndeliverableEventsAlarm", self.rule, topic),
        ]
