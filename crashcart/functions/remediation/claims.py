"""The incident table: the atomic claim (guards 6 + 7), incident records, breaker reset.

Items (pk / sk are strings; the record is defined in ``crashcart.runtime.incident``):

- incident ``pk=instance#<id>``, ``sk=incident#<opened_at>``: ``opened_at`` is the time the
  alarm entered ALARM, so every duplicate delivery of one state change maps to one item;
- limits ``pk=instance#<id>``, ``sk=limits``: ``last_interrupt_epoch`` (N, seconds),
  ``budget_day`` (S, UTC ``YYYY-MM-DD``), ``budget_count`` (N), ``claim_incident`` (S),
  ``version`` (N);
- breakers ``pk=breaker#fleet`` / ``pk=breaker#az#<az>``, ``sk=state``: ``window_start_epoch``,
  ``count``, ``opened_epoch`` (absent when closed), ``last_alarm_epoch``, ``version``;
- attestation skips ``pk=instance#<id>``, ``sk=attestation-skip``: ``first_skipped_at``,
  ``last_skipped_at``, ``last_incident``, ``last_reason`` (S), ``skips`` (N). Written after
  an alarm of the instance was skipped for its kdump attestation; its absence before that
  write is what makes the skip the first one (notified). Delete it to be told again.

The claim is ONE ``TransactWriteItems``: put the incident (``attribute_not_exists(pk)``: a
duplicate delivery cancels everything), put both breakers and, when interrupting, the limits
item, each conditioned on the version that was read; the limits put also states the cooldown
and budget as timestamp / count comparisons (``last_interrupt_epoch <= :cooldown_cutoff``,
``budget_day <> :today OR budget_count < :budget``), so even a wrong read could not let a
second interrupt through. Expiry is never left to DynamoDB TTL (TTL deletion can lag by days):
every limit is a comparison against the current time.

Operator reset of an open breaker: delete its item, e.g.
``aws dynamodb delete-item --table-name <table> --key
'{"pk":{"S":"breaker#fleet"},"sk":{"S":"state"}}'`` (or ``breaker#az#<az-name>``);
:func:`reset_breaker` does the same from Python. The next ALARM starts a fresh window.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from crashcart.runtime.incident import (
    ATTESTATION_SKIP_SK,
    BREAKER_SK,
    FLEET_BREAKER_PK,
    INCIDENT_PREFIX,
    LIMITS_SK,
    State,
    az_breaker_pk,
    instance_pk,
    item_key,
)

from .decision import BreakerState, BreakerStep, ClaimPlan, LimitsState

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

Item = dict[str, Any]


class StoreUnavailableError(Exception):
    """The incident table could not be read or written: the function must fail closed."""


def s(value: str) -> Item:
    return {"S": value}


def n(value: int) -> Item:
    return {"N": str(int(value))}


def to_attributes(values: Mapping[str, object]) -> Item:
    """Plain values -> DynamoDB attribute values (str, bool, int, lists of str; None: left out)."""
    out: Item = {}
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[name] = {"BOOL": value}
        elif isinstance(value, int):
            out[name] = n(value)
        elif isinstance(value, str):
            out[name] = s(value)
        elif isinstance(value, list | tuple):
            out[name] = {"L": [s(str(v)) for v in value]}
        else:
            raise TypeError(f"cannot store {name}={value!r}")
    return out


def _num(item: Item, name: str) -> int | None:
    if name in item and "N" in item[name]:
        return int(item[name]["N"])
    return None


def _str(item: Item, name: str) -> str | None:
    if name in item and "S" in item[name]:
        value: str = item[name]["S"]
        return value
    return None


def limits_from_item(item: Item | None) -> LimitsState:
    if not item:
        return LimitsState()
    return LimitsState(
        exists=True,
        version=_num(item, "version") or 0,
        last_interrupt_epoch=_num(item, "last_interrupt_epoch"),
        budget_day=_str(item, "budget_day"),
        budget_count=_num(item, "budget_count") or 0,
        claim_incident=_str(item, "claim_incident"),
        prev_last_interrupt_epoch=_num(item, "prev_last_interrupt_epoch"),
    )


def breaker_from_item(item: Item | None) -> BreakerState:
    if not item:
        return BreakerState()
    return BreakerState(
        exists=True,
        version=_num(item, "version") or 0,
        window_start_epoch=_num(item, "window_start_epoch"),
        count=_num(item, "count") or 0,
        opened_epoch=_num(item, "opened_epoch"),
        last_alarm_epoch=_num(item, "last_alarm_epoch"),
    )


@dataclass(frozen=True, kw_only=True)
class Snapshot:
    """One consistent read (TransactGetItems) of everything a claim depends on."""

    incident: Item | None
    limits: LimitsState
    fleet: BreakerState
    az: BreakerState | None


def _version_condition(exists: bool, version: int) -> tuple[str, Item]:
    if exists:
        return "#version = :expected_version", {":expected_version": n(version)}
    return "attribute_not_exists(pk)", {}


def breaker_put(table: str, pk: str, step: BreakerStep, *, now_iso: str, iso: Any) -> Item:
    """The transaction entry that writes one breaker's new state if it is still as read."""
    after = step.after
    condition, values = _version_condition(step.before.exists, step.before.version)
    attributes = to_attributes(
        {
            "version": after.version,
            "window_start_epoch": after.window_start_epoch,
            "count": after.count,
            "opened_epoch": after.opened_epoch,
            "opened_at": iso(after.opened_epoch) if after.opened_epoch is not None else None,
            "last_alarm_epoch": after.last_alarm_epoch,
            "updated_at": now_iso,
        }
    )
    put: Item = {
        "TableName": table,
        "Item": {**item_key(pk, BREAKER_SK), **attributes},
        "ConditionExpression": condition,
    }
    if step.before.exists:
        put["ExpressionAttributeNames"] = {"#version": "version"}
        put["ExpressionAttributeValues"] = values
    return {"Put": put}


def limits_put(
    table: str,
    instance_id: str,
    before: LimitsState,
    after: LimitsState,
    *,
    cooldown_seconds: int,
    daily_budget: int,
    now_epoch: int,
    now_iso: str,
) -> Item:
    """The transaction entry that claims the instance: cooldown and budget as conditions."""
    attributes = to_attributes(
        {
            "instance_id": instance_id,
            "version": after.version,
            "last_interrupt_epoch": after.last_interrupt_epoch,
            "last_interrupt_at": now_iso,
            "budget_day": after.budget_day,
            "budget_count": after.budget_count,
            "claim_incident": after.claim_incident,
            "prev_last_interrupt_epoch": after.prev_last_interrupt_epoch,
            "updated_at": now_iso,
        }
    )
    put: Item = {
        "TableName": table,
        "Item": {**item_key(instance_pk(instance_id), LIMITS_SK), **attributes},
    }
    if not before.exists:
        put["ConditionExpression"] = "attribute_not_exists(pk)"
        return {"Put": put}
    put["ConditionExpression"] = (
        "#version = :expected_version"
        " AND (attribute_not_exists(last_interrupt_epoch)"
        " OR last_interrupt_epoch <= :cooldown_cutoff)"
        " AND (attribute_not_exists(budget_day) OR budget_day <> :today"
        " OR budget_count < :budget)"
    )
    put["ExpressionAttributeNames"] = {"#version": "version"}
    put["ExpressionAttributeValues"] = {
        ":expected_version": n(before.version),
        ":cooldown_cutoff": n(now_epoch - cooldown_seconds),
        ":today": s(after.budget_day or ""),
        ":budget": n(daily_budget),
    }
    return {"Put": put}


def incident_put(table: str, item: Item) -> Item:
    """Create the incident; a second delivery of the same alarm transition cancels the claim."""
    return {
        "Put": {
            "TableName": table,
            "Item": item,
            "ConditionExpression": "attribute_not_exists(pk)",
        }
    }


def claim_transaction(
    *,
    table: str,
    instance_id: str,
    availability_zone: str | None,
    incident_item: Item,
    snapshot: Snapshot,
    plan: ClaimPlan,
    cooldown_seconds: int,
    daily_budget: int,
    now_epoch: int,
    now_iso: str,
    iso: Any,
) -> list[Item]:
    """Every entry of the one TransactWriteItems that records a new ALARM (pure)."""
    items = [incident_put(table, incident_item)]
    items.append(breaker_put(table, FLEET_BREAKER_PK, plan.fleet, now_iso=now_iso, iso=iso))
    if plan.az is not None and availability_zone is not None:
        items.append(
            breaker_put(table, az_breaker_pk(availability_zone), plan.az, now_iso=now_iso, iso=iso)
        )
    if plan.limits_after is not None:
        items.append(
            limits_put(
                table,
                instance_id,
                snapshot.limits,
                plan.limits_after,
                cooldown_seconds=cooldown_seconds,
                daily_budget=daily_budget,
                now_epoch=now_epoch,
                now_iso=now_iso,
            )
        )
    return items


def release_update(table: str, instance_id: str, claim: LimitsState) -> Item:
    """UpdateItem arguments that give back a claim after a definite failure (pure)."""
    sets = [
        "#version = #version + :one",
        "budget_count = budget_count - :one",
    ]
    removes = ["claim_incident", "prev_last_interrupt_epoch"]
    values: Item = {":one": n(1), ":incident": s(claim.claim_incident or "")}
    if claim.prev_last_interrupt_epoch is None:
        removes += ["last_interrupt_epoch", "last_interrupt_at"]
    else:
        sets.append("last_interrupt_epoch = :previous")
        values[":previous"] = n(claim.prev_last_interrupt_epoch)
    return {
        "TableName": table,
        "Key": item_key(instance_pk(instance_id), LIMITS_SK),
        "UpdateExpression": f"SET {', '.join(sets)} REMOVE {', '.join(removes)}",
        "ConditionExpression": "claim_incident = :incident",
        "ExpressionAttributeNames": {"#version": "version"},
        "ExpressionAttributeValues": values,
    }


class IncidentStore:
    """DynamoDB access for the remediation function (a low-level client is injected)."""

    def __init__(self, client: DynamoDBClient, table: str) -> None:
        self._client = client
        self.table = table

    def _call(self, what: str, operation: Any, **kwargs: Any) -> Any:
        try:
            return operation(**kwargs)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code in ("ConditionalCheckFailedException", "TransactionCanceledException"):
                raise
            raise StoreUnavailableError(f"{what} failed: {code or error}") from error
        except BotoCoreError as error:
            raise StoreUnavailableError(f"{what} failed: {error}") from error

    def incident(self, instance_id: str, sk: str) -> Item | None:
        """The incident item, if it exists (a strongly consistent GetItem).

        A shortcut only: it can tell a duplicate delivery early, before any EC2 call, but
        its "absent" is not relied on: the claim's snapshot reads the incident again and
        its put is conditioned on the incident's absence.
        """
        response = self._call(
            "reading the claim state (incident)",
            self._client.get_item,
            TableName=self.table,
            Key=item_key(instance_pk(instance_id), sk),
            ConsistentRead=True,
        )
        item = response.get("Item")
        return dict(item) if item else None

    def snapshot(self, instance_id: str, sk: str, availability_zone: str | None) -> Snapshot:
        keys = [
            item_key(instance_pk(instance_id), sk),
            item_key(instance_pk(instance_id), LIMITS_SK),
            item_key(FLEET_BREAKER_PK, BREAKER_SK),
        ]
        if availability_zone is not None:
            keys.append(item_key(az_breaker_pk(availability_zone), BREAKER_SK))
        response = self._call(
            "reading the claim state",
            self._client.transact_get_items,
            TransactItems=[{"Get": {"TableName": self.table, "Key": k}} for k in keys],
        )
        found = [r.get("Item") or None for r in response.get("Responses", [])]
        if len(found) != len(keys):
            raise StoreUnavailableError("reading the claim state returned an incomplete answer")
        return Snapshot(
            incident=found[0],
            limits=limits_from_item(found[1]),
            fleet=breaker_from_item(found[2]),
            az=breaker_from_item(found[3]) if availability_zone is not None else None,
        )

    # aws-assumption: dynamodb-transaction-cancellation
    def commit(self, items: Sequence[Item]) -> bool:
        """True when the transaction was applied; False when a condition / conflict cancelled it."""
        try:
            self._call(
                "writing the claim", self._client.transact_write_items, TransactItems=list(items)
            )
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code == "TransactionCanceledException":
                return False
            raise StoreUnavailableError(f"writing the claim failed: {code}") from error
        return True

    def release(self, instance_id: str, claim: LimitsState) -> bool:
        """Give back a claim (the interrupt definitely did not happen); False if not ours now."""
        try:
            self._call(
                "releasing the claim",
                self._client.update_item,
                **release_update(self.table, instance_id, claim),
            )
        except ClientError:
            return False
        return True

    def update_incident(
        self,
        instance_id: str,
        sk: str,
        values: Mapping[str, object],
        *,
        expected_state: str | None = None,
    ) -> bool:
        """SET the given attributes (``state`` included) on an incident; False if the expected
        state no longer holds."""
        attributes = to_attributes(values)
        names = {f"#a{i}": name for i, name in enumerate(attributes)}
        expression_values = {f":v{i}": value for i, value in enumerate(attributes.values())}
        condition = "attribute_exists(pk)"
        if expected_state is not None:
            names["#expected_state"] = "state"
            expression_values[":expected_state"] = s(expected_state)
            condition += " AND #expected_state = :expected_state"
        try:
            self._call(
                "updating the incident",
                self._client.update_item,
                TableName=self.table,
                Key=item_key(instance_pk(instance_id), sk),
                UpdateExpression="SET "
                + ", ".join(f"#a{i} = :v{i}" for i in range(len(attributes))),
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=expression_values,
            )
        except ClientError:
            return False
        return True

    def note_attestation_skip(
        self, instance_id: str, *, incident: str, reason: str, now_iso: str
    ) -> bool:
        """Count a skip for the kdump attestation; True when it is the instance's first.

        One UpdateItem that returns the old ``skips``: of concurrent first skips exactly one
        sees none. Raises :class:`StoreUnavailableError` when the table cannot be written.
        """
        response = self._call(
            "recording the attestation skip",
            self._client.update_item,
            TableName=self.table,
            Key=item_key(instance_pk(instance_id), ATTESTATION_SKIP_SK),
            UpdateExpression=(
                "SET first_skipped_at = if_not_exists(first_skipped_at, :now), "
                "last_skipped_at = :now, last_incident = :incident, last_reason = :reason "
                "ADD skips :one"
            ),
            ExpressionAttributeValues={
                ":now": s(now_iso),
                ":incident": s(incident),
                ":reason": s(reason[:1000]),
                ":one": n(1),
            },
            ReturnValues="UPDATED_OLD",
        )
        return "skips" not in (response.get("Attributes") or {})

    def breaker(self, availability_zone: str | None) -> BreakerState:
        """The fleet breaker (``None``) or a zone's, as read (a strongly consistent GetItem)."""
        pk = FLEET_BREAKER_PK if availability_zone is None else az_breaker_pk(availability_zone)
        response = self._call(
            "reading a circuit breaker",
            self._client.get_item,
            TableName=self.table,
            Key=item_key(pk, BREAKER_SK),
            ConsistentRead=True,
        )
        return breaker_from_item(response.get("Item") or None)

    def latest_incident(self, instance_id: str) -> Item | None:
        response = self._call(
            "reading the latest incident",
            self._client.query,
            TableName=self.table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues={
                ":pk": s(instance_pk(instance_id)),
                ":prefix": s(INCIDENT_PREFIX),
            },
            ScanIndexForward=False,
            Limit=1,
            ConsistentRead=True,
        )
        items = response.get("Items", [])
        return dict(items[0]) if items else None

    def mark_recovered(self, instance_id: str, sk: str, now_iso: str) -> bool:
        """``recovered`` unless it already is; False when there was nothing to change."""
        try:
            self._call(
                "marking the incident recovered",
                self._client.update_item,
                TableName=self.table,
                Key=item_key(instance_pk(instance_id), sk),
                UpdateExpression="SET #state = :recovered, updated_at = :now, recovered_at = :now",
                ConditionExpression="attribute_exists(pk) AND #state <> :recovered",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={":recovered": s(State.RECOVERED), ":now": s(now_iso)},
            )
        except ClientError:
            return False
        return True


def reset_breaker(client: DynamoDBClient, table: str, scope: str) -> None:
    """Operator reset: delete a breaker item (``scope``: ``fleet`` or an AZ name).

    Needs ``dynamodb:DeleteItem``, which the remediation function itself is not granted.
    """
    pk = FLEET_BREAKER_PK if scope == "fleet" else az_breaker_pk(scope)
    client.delete_item(TableName=table, Key=item_key(pk, BREAKER_SK))
