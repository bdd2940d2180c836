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

from .claim_items import Item as Item
from .claim_items import (
    Snapshot as Snapshot,
)
from .claim_items import (
    _num as _num,
)
from .claim_items import (
    _str as _str,
)
from .claim_items import (
    _version_condition as _version_condition,
)
from .claim_items import (
    breaker_from_item as breaker_from_item,
)
from .claim_items import (
    breaker_put as breaker_put,
)
from .claim_items import (
    claim_transaction as claim_transaction,
)
from .claim_items import (
    incident_put as incident_put,
)
from .claim_items import (
    limits_from_item as limits_from_item,
)
from .claim_items import (
    limits_put as limits_put,
)
from .claim_items import (
    n as n,
)
from .claim_items import (
    release_update as release_update,
)
from .claim_items import (
    s as s,
)
from .claim_items import (
    to_attributes as to_attributes,
)
from .decision import BreakerState, LimitsState

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


class StoreUnavailableError(Exception):
    """The incident table could not be read or written: the function must fail closed."""


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
