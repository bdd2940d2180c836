"""Helpers for the dump-overdue sweep tests: the runtime loader and incident-table fixtures."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from tests.support.incidents import create_incident_table

REPO = Path(__file__).resolve().parents[2]
SWEEP_DIR = REPO / "crashcart" / "functions" / "incident_sweep"
INSTANCE_ID = "i-0123456789abcdef0"
OTHER_INSTANCE_ID = "i-0fedcba9876543210"
TABLE = "crashcart-incidents"


def load_sweep() -> SimpleNamespace:
    """The names of the sweep package the tests use, from the modules that own them."""
    from crashcart.functions.incident_sweep import adapter, handler, overdue, service, settings

    return SimpleNamespace(
        Settings=settings.Settings,
        SettingsError=settings.SettingsError,
        DEFAULT_ATTESTATION_MAX_AGE_SECONDS=settings.DEFAULT_ATTESTATION_MAX_AGE_SECONDS,
        DEFAULT_OPT_IN_TAG_KEY=settings.DEFAULT_OPT_IN_TAG_KEY,
        DEFAULT_OPT_IN_TAG_VALUE=settings.DEFAULT_OPT_IN_TAG_VALUE,
        **{name: getattr(adapter, name) for name in ("Store", "Fleet", "sns_publisher")},
        StoreUnavailableError=adapter.StoreUnavailableError,
        CensusFailedError=adapter.CensusFailedError,
        SweepFailedError=service.SweepFailedError,
        sweep=service.sweep,
        census=service.census,
        from_item=overdue.from_item,
        message=overdue.message,
        handler=handler.handler,
    )


def create_table(client: Any, name: str = TABLE) -> None:
    create_incident_table(client, name)


def put_incident(
    client: Any,
    *,
    instance_id: str = INSTANCE_ID,
    opened_at: str = "2026-11-26T05:19:49Z",
    state: str = "interrupted",
    dump_deadline: str | None = "2026-11-26T05:50:00Z",
    dump_keys: list[str] | None = None,
    table: str = TABLE,
    **extra: str,
) -> dict[str, Any]:
    """Write an incident item as the remediation function does; returns its key."""
    key = {"pk": {"S": f"instance#{instance_id}"}, "sk": {"S": f"incident#{opened_at}"}}
    item: dict[str, Any] = {
        **key,
        "instance_id": {"S": instance_id},
        "state": {"S": state},
        "alarm_name": {"S": f"crashcart-status-{instance_id}"},
        "opened_at": {"S": opened_at},
        "updated_at": {"S": opened_at},
        "origin": {"S": "remediation"},
        "reason": {"S": "status check failed"},
    }
    if dump_deadline is not None:
        item["dump_deadline"] = {"S": dump_deadline}
        item["interrupted_at"] = {"S": opened_at}
    if dump_keys is not None:
        item["dump_keys"] = {"L": [{"S": k} for k in dump_keys]}
    item.update({name: {"S": value} for name, value in extra.items()})
    client.put_item(TableName=table, Item=item)
    return key


def get_item(client: Any, key: dict[str, Any], table: str = TABLE) -> dict[str, Any]:
    item: dict[str, Any] = client.get_item(TableName=table, Key=key, ConsistentRead=True)["Item"]
    return item


def text(item: dict[str, Any], name: str) -> str | None:
    value = item.get(name)
    return value["S"] if value else None
