"""The incident table's items as DynamoDB writes them: attribute codecs, the readers of the
limits and breaker items, and the pure builders of the claim transaction's entries (guards
6 + 7) and of the claim's release. :mod:`.claims` runs them (``IncidentStore``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from crashcart.runtime.incident import (
    BREAKER_SK,
    FLEET_BREAKER_PK,
    LIMITS_SK,
    az_breaker_pk,
    instance_pk,
    item_key,
)

from .decision import BreakerState, BreakerStep, ClaimPlan, LimitsState

if TYPE_CHECKING:
    pass

Item = dict[str, Any]


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
