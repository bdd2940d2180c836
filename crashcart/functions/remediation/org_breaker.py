"""The organisation breaker: one slot from the central account's table before an interrupt.

Three breakers stand between an ALARM and an interrupt: the zone and fleet breakers of the
account (items in its incident table, counted for every new ALARM by the claim
transaction) and, when the function is given ``CRASHCART_ORG_BREAKER_TABLE_ARN``, the
organisation breaker: ONE item (``pk=breaker#organisation``, ``sk=state``) in a table of the
organisation's central account (per Region), shared by every member account's function
through the table's resource-based policy (aws-assumption: dynamodb-resource-policy-cross-account).

When it is asked: only for an interrupt candidate, i.e. after every local guard said "go"
(kill switch, instance facts, attestation, cooldown, budget, zone and fleet breakers) and
before the local claim transaction is written. So a burst that one account's own breakers
stop costs the organisation nothing, and the organisation breaker counts what would
otherwise become an interrupt. It takes the slot with a read and a conditional UpdateItem
on the version read (aws-assumption: dynamodb-conditional-update), exactly the step of the
local breakers (``breakers.step_breaker``), retried on a lost race.

The fail-closed rule: the slot is the permission. Breaker open -> the candidate is skipped
(guard ``organisation-breaker``; the member whose slot opened it notifies its topic). The
table unreachable, access denied, throttled, still contended after :data:`ATTEMPTS` tries,
or any unexpected answer -> skipped too, with the reason, logged, counted
(``OrganisationBreakerUnavailable``) and notified: crashcart does not interrupt on a guess.

A slot is never given back. If the local claim then does not interrupt (a concurrent
delivery won the claim, EC2 refused the interrupt), the organisation count is one too high
for the rest of the window: the error can only open the breaker early (fewer interrupts),
never let one more through. Giving it back would be a second cross-account write that can
itself fail, and a decrement racing a window reset could undercount.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from crashcart.runtime.incident import BREAKER_SK, ORGANISATION_BREAKER_PK, item_key

from . import notify
from .breakers import BreakerStep, step_breaker
from .claims import breaker_from_item, to_attributes
from .decision import ClaimPlan, Decision, Guard, Verdict

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

    from .adapter import Notifier
    from .telemetry import Log

#: Read-and-update rounds before a contended slot counts as unavailable (fail closed).
ATTEMPTS = 6


class SlotOutcome(StrEnum):
    TAKEN = "taken"  # the candidate may go on to its local claim
    OPEN = "open"  # the breaker is open (this candidate may have opened it)
    UNAVAILABLE = "unavailable"  # the table could not be used: do not interrupt


@dataclass(frozen=True, kw_only=True)
class Slot:
    outcome: SlotOutcome
    reason: str = ""
    step: BreakerStep | None = None
    code: str = ""


@dataclass(frozen=True, kw_only=True)
class OrganisationBreakerSettings:
    """Where the shared item is and when it opens (from the function's settings)."""

    table_arn: str
    threshold: int
    window_seconds: int
    quiet_seconds: int


def slot_update(
    table: str, step: BreakerStep, *, now_iso: str, account: str, instance_id: str
) -> dict[str, Any]:
    """UpdateItem arguments writing ``step.after`` if the item is still as read (pure)."""
    after = step.after
    values = to_attributes(
        {
            "version": after.version,
            "window_start_epoch": after.window_start_epoch,
            "count": after.count,
            "last_alarm_epoch": after.last_alarm_epoch,
            "updated_at": now_iso,
            "last_account": account,
            "last_instance": instance_id,
        }
    )
    names = {f"#a{i}": name for i, name in enumerate(values)}
    expression_values = {f":v{i}": value for i, value in enumerate(values.values())}
    sets = [f"#a{i} = :v{i}" for i in range(len(values))]
    names["#opened"] = "opened_epoch"
    if after.opened_epoch is None:
        expression = "SET " + ", ".join(sets) + " REMOVE #opened"
    else:
        expression_values[":opened"] = to_attributes({"v": after.opened_epoch})["v"]
        expression = "SET " + ", ".join([*sets, "#opened = :opened"])
    if step.before.exists:
        names["#version"] = "version"
        expression_values[":expected_version"] = to_attributes({"v": step.before.version})["v"]
        condition = "#version = :expected_version"
    else:
        condition = "attribute_not_exists(pk)"
    return {
        "TableName": table,
        "Key": item_key(ORGANISATION_BREAKER_PK, BREAKER_SK),
        "UpdateExpression": expression,
        "ConditionExpression": condition,
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": expression_values,
    }


class OrganisationBreaker:
    """The shared item, over a DynamoDB client whose calls name the table by its ARN."""

    def __init__(
        self,
        client: DynamoDBClient,
        settings: OrganisationBreakerSettings,
        *,
        account: str,
        sleep: Callable[[float], None],
    ) -> None:
        self._client = client
        self.settings = settings
        self._account = account
        self._sleep = sleep

    def take(self, *, now_epoch: int, now_iso: str, instance_id: str) -> Slot:
        """Count one candidate; never raises (every failure is an UNAVAILABLE slot)."""
        try:
            return self._take(now_epoch=now_epoch, now_iso=now_iso, instance_id=instance_id)
        except ClientError as error:
            code = str(error.response.get("Error", {}).get("Code", "")) or "ClientError"
            message = str(error.response.get("Error", {}).get("Message", ""))[:300]
            return Slot(outcome=SlotOutcome.UNAVAILABLE, code=code, reason=f"{code}: {message}")
        except BotoCoreError as error:
            name = type(error).__name__
            return Slot(outcome=SlotOutcome.UNAVAILABLE, code=name, reason=f"{name}: {error}")
        except Exception as error:  # fail closed on anything unexpected
            name = type(error).__name__
            return Slot(outcome=SlotOutcome.UNAVAILABLE, code=name, reason=f"{name}: {error}")

    def _take(self, *, now_epoch: int, now_iso: str, instance_id: str) -> Slot:
        table = self.settings.table_arn
        for attempt in range(1, ATTEMPTS + 1):
            response = self._client.get_item(
                TableName=table,
                Key=item_key(ORGANISATION_BREAKER_PK, BREAKER_SK),
                ConsistentRead=True,
            )
            state = breaker_from_item(response.get("Item") or None)
            step = step_breaker(
                state,
                threshold=self.settings.threshold,
                window_seconds=self.settings.window_seconds,
                quiet_seconds=self.settings.quiet_seconds,
                now_epoch=now_epoch,
            )
            try:
                self._client.update_item(
                    **slot_update(
                        table, step, now_iso=now_iso, account=self._account, instance_id=instance_id
                    )
                )
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                    raise
                self._sleep(random.uniform(0.01, 0.05) * attempt)  # noqa: S311 - jitter
                continue
            if step.is_open:
                return Slot(outcome=SlotOutcome.OPEN, step=step)
            return Slot(outcome=SlotOutcome.TAKEN, step=step)
        return Slot(
            outcome=SlotOutcome.UNAVAILABLE,
            code="Contended",
            reason=f"the breaker item changed under every one of {ATTEMPTS} attempts",
        )


class OrganisationGate:
    """Turns an interrupt plan into a skip unless the organisation breaker gives a slot.

    One per invocation: a plan re-made after a cancelled claim transaction gets the answer
    the first one got (one slot per incident, never two).
    """

    def __init__(self, breaker: OrganisationBreaker, *, notifier: Notifier, log: Log) -> None:
        self.breaker = breaker
        self._notifier = notifier
        self._log = log
        self._answers: dict[tuple[str, str], Decision | None] = {}

    def gate(
        self, plan: ClaimPlan, *, instance_id: str, incident: str, now: tuple[int, str]
    ) -> ClaimPlan:
        """``plan`` when it does not interrupt or a slot was taken; otherwise the same plan
        with a SKIP (guard ``organisation-breaker``) and no limits write."""
        if plan.decision.verdict is not Verdict.INTERRUPT:
            return plan
        key = (instance_id, incident)
        if key not in self._answers:
            slot = self.breaker.take(now_epoch=now[0], now_iso=now[1], instance_id=instance_id)
            self._answers[key] = self._refusal(slot, plan.decision, instance_id, incident)
        refusal = self._answers[key]
        if refusal is None:
            return plan
        return replace(plan, decision=refusal, limits_after=None)

    def _refusal(
        self, slot: Slot, decision: Decision, instance_id: str, incident: str
    ) -> Decision | None:
        settings = self.breaker.settings
        if slot.outcome is SlotOutcome.TAKEN:
            return None
        if slot.outcome is SlotOutcome.OPEN:
            assert slot.step is not None
            reason = (
                f"organisation breaker open: {slot.step.after.count} interrupt candidates "
                f"across the organisation's accounts in this Region (threshold "
                f"{settings.threshold} within {settings.window_seconds} s): likely a "
                "Region-wide event; not interrupting"
            )
            self._log.warning(
                "not interrupting: organisation breaker open",
                metric="org_breaker_skipped",
                guard=Guard.ORGANISATION_BREAKER,
                reason=reason,
                instance_id=instance_id,
                incident=incident,
            )
            if slot.step.just_opened:
                self._opened(slot.step)
        else:
            reason = (
                f"organisation breaker unavailable ({slot.reason}): crashcart does not "
                "interrupt without its slot"
            )
            self._log.error(
                "not interrupting: organisation breaker unavailable",
                metric="org_breaker_unavailable",
                guard=Guard.ORGANISATION_BREAKER,
                reason=reason,
                code=slot.code,
                table=settings.table_arn,
                instance_id=instance_id,
                incident=incident,
            )
            self._publish(
                f"crashcart: {instance_id} NOT interrupted: organisation breaker unavailable",
                f"{reason}.\nTable: {settings.table_arn}\nIncident: {incident}",
            )
        return Decision(
            verdict=Verdict.SKIP,
            guard=Guard.ORGANISATION_BREAKER,
            reason=reason,
            warnings=decision.warnings,
        )

    def _opened(self, step: BreakerStep) -> None:
        settings = self.breaker.settings
        subject, message = notify.breaker_opened(
            scope="organisation, every member account in this Region",
            count=step.after.count,
            window_seconds=settings.window_seconds,
            quiet_seconds=settings.quiet_seconds,
            reset=(
                f"in the central account, delete the item pk={ORGANISATION_BREAKER_PK}, "
                f"sk={BREAKER_SK} from table {settings.table_arn}"
            ),
        )
        self._publish(subject, message)
        self._log.warning(
            "organisation breaker opened",
            metric="org_breaker_opened",
            breaker=ORGANISATION_BREAKER_PK,
            count=step.after.count,
        )

    def _publish(self, subject: str, message: str) -> None:
        problem = self._notifier.publish(subject, message)
        if problem is not None:
            self._log.error(
                "notification not sent (continuing)",
                error=problem,
                subject=subject,
                notification=message,
            )
