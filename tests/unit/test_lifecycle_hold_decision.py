"""The lifecycle hold's pure parts: deadlines from memory, tick and escalation verdicts,
settings and event parsing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from crashcart.functions.lifecycle_hold.decision import (
    HoldView,
    IncidentView,
    Verdict,
    dump_deadline_seconds,
    escalate,
    hold_deadline,
    on_lifecycle_action,
    on_tick,
)
from crashcart.functions.lifecycle_hold.events import LifecycleAction, Rejected, Tick, parse
from crashcart.functions.lifecycle_hold.settings import HoldSettings, Settings, SettingsError
from crashcart.functions.remediation.decision import StatusFacts
from tests.conftest import load_event
from tests.support.remediation_runtime import env

NOW = datetime(2026, 11, 26, 6, 0, tzinfo=UTC)
HOLD = HoldSettings(hook_name="crashcart-dump-hold-test", groups=frozenset({"web"}))


def incident(state: str = "interrupted", *, minutes_ago: int = 10, dump: bool = False) -> Any:
    return IncidentView(
        sk="incident#2026-11-26T05:49:00Z",
        state=state,
        interrupted_at=NOW - timedelta(minutes=minutes_ago),
        dump_received=dump,
        instance_type="m5.large",
    )


def status(instance: str = "impaired", system: str = "ok") -> StatusFacts:
    return StatusFacts(
        instance_status=instance,
        system_status=system,
        ebs_status="ok",
        impaired_since=None,
        scheduled_events=(),
    )


@pytest.mark.parametrize(
    ("memory_mib", "seconds"),
    [
        (None, 7_200),  # unknown: the cap, never cut a dump short
        (0, 7_200),
        (8_192, 900 + 8 * 30),
        (8_193, 900 + 9 * 30),  # a started GiB counts
        (1_048_576, 7_200),  # 1 TiB: capped
    ],
)
def test_dump_deadline_grows_with_memory_up_to_the_cap(
    memory_mib: int | None, seconds: int
) -> None:
    assert dump_deadline_seconds(memory_mib, HOLD) == seconds


def test_a_hold_ends_before_auto_scaling_would_end_it() -> None:
    short = HoldSettings(
        hook_name="h", heartbeat_seconds=60, dump_base_seconds=60, dump_max_seconds=6_000
    )
    view = incident(minutes_ago=0)
    # 100 x 60 s = 6,000 s is Auto Scaling's limit; the hold ends one heartbeat before
    assert hold_deadline(view, None, short, NOW) == NOW + timedelta(seconds=6_000 - 60)


@pytest.mark.parametrize(
    ("view", "kill", "verdict"),
    [
        (incident(), "off", Verdict.HOLD),
        (incident("recovered"), "off", Verdict.HOLD),
        (incident("dump-overdue"), "off", Verdict.HOLD),
        (incident(dump=True, state="dump-received"), "off", Verdict.CONTINUE),
        (incident("skipped"), "off", Verdict.CHECK),
        (None, "off", Verdict.CHECK),
        (incident(), "on", Verdict.CONTINUE),
        (incident(), "", Verdict.CONTINUE),
    ],
)
def test_lifecycle_action_verdicts(view: IncidentView | None, kill: str, verdict: Verdict) -> None:
    deadline = NOW + timedelta(minutes=5)
    got = on_lifecycle_action(kill_switch=kill, incident=view, deadline=deadline, now=NOW)
    assert got.verdict is verdict, got


def test_lifecycle_action_past_the_deadline_continues() -> None:
    got = on_lifecycle_action(kill_switch="off", incident=incident(), deadline=NOW, now=NOW)
    assert got.verdict is Verdict.CONTINUE and "passed without a dump" in got.reason


def _hold(deadline: datetime, last: datetime) -> HoldView:
    return HoldView(instance_id="i-0", incident_sk="s", deadline=deadline, last_heartbeat=last)


@pytest.mark.parametrize(
    ("kill", "view", "deadline_in", "last_ago", "verdict"),
    [
        ("off", incident(), 600, 60, Verdict.WAIT),
        ("off", incident(), 600, 200, Verdict.HEARTBEAT),  # a third of 600 s
        ("off", incident(dump=True), 600, 60, Verdict.CONTINUE),
        ("off", None, 600, 60, Verdict.CONTINUE),
        ("off", incident(), 0, 60, Verdict.CONTINUE),
        ("on", incident(), 600, 60, Verdict.CONTINUE),
    ],
)
def test_tick_verdicts(
    kill: str, view: IncidentView | None, deadline_in: int, last_ago: int, verdict: Verdict
) -> None:
    hold = _hold(NOW + timedelta(seconds=deadline_in), NOW - timedelta(seconds=last_ago))
    got = on_tick(kill_switch=kill, hold=hold, incident=view, heartbeat_seconds=600, now=NOW)
    assert got.verdict is verdict, got


@pytest.mark.parametrize(
    ("kwargs", "verdict"),
    [
        ({"now": NOW - timedelta(seconds=1)}, Verdict.WAIT),
        ({}, Verdict.REBOOT),
        ({"reboot_enabled": False}, Verdict.NOTIFY),
        ({"kill_switch": "on"}, Verdict.WAIT),
        ({"held": True}, Verdict.NOT_NEEDED),
        ({"instance_state": "stopped"}, Verdict.NOT_NEEDED),
        ({"instance_state": None}, Verdict.NOT_NEEDED),
        ({"status": status("ok")}, Verdict.NOT_NEEDED),
        ({"status": None}, Verdict.NOT_NEEDED),
        ({"status": status(system="impaired")}, Verdict.NOT_NEEDED),
    ],
)
def test_escalation_verdicts(kwargs: dict[str, Any], verdict: Verdict) -> None:
    arguments: dict[str, Any] = {
        "kill_switch": "off",
        "reboot_enabled": True,
        "incident": incident(),
        "deadline": NOW,
        "instance_state": "running",
        "held": False,
        "status": status(),
        "now": NOW,
        **kwargs,
    }
    assert escalate(**arguments).verdict is verdict


def _env(**overrides: str) -> dict[str, str]:
    values = {
        **env("unit", CRASHCART_REJECTED_QUEUE_URL="https://sqs.example/q"),
        "CRASHCART_HOLD_HOOK_NAME": "hook",
        "CRASHCART_HOLD_GROUPS": "web, workers",
    }
    values.update(overrides)
    return values


def test_settings_from_the_environment() -> None:
    settings = Settings.from_env(_env())
    assert settings.hold.groups == frozenset({"web", "workers"})
    assert settings.hold.heartbeat_seconds == 600
    assert settings.hold.longest_hold_seconds == 60_000
    assert settings.remediation.kill_switch_parameter == "/crashcart/unit/kill-switch"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"CRASHCART_HOLD_HEARTBEAT_SECONDS": "20"}, "heartbeat timeout is 30-7200"),
        ({"CRASHCART_HOLD_HEARTBEAT_SECONDS": "7201"}, "heartbeat timeout is 30-7200"),
        ({"CRASHCART_HOLD_HEARTBEAT_SECONDS": "ten"}, "expected a whole number"),
        (
            {"CRASHCART_HOLD_HEARTBEAT_SECONDS": "60", "CRASHCART_DUMP_MAX_SECONDS": "7200"},
            "at most 6000 s",
        ),
        ({"CRASHCART_DUMP_MAX_SECONDS": "100"}, "at least the base"),
        ({"CRASHCART_ESCALATION_REBOOT": "yes"}, "expected 'true' or 'false'"),
        ({"CRASHCART_HOLD_HOOK_NAME": " "}, "hook_name is empty"),
        ({"CRASHCART_HOLD_GROUPS": "web,\u00e9t\u00e9"}, "expected 1-255 printable"),
    ],
)
def test_settings_fail_naming_the_value(overrides: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(_env(**overrides))


def test_events_parse() -> None:
    action = parse(load_event("lifecycle_hold_terminate_action"), HOLD)
    assert isinstance(action, LifecycleAction)
    assert action.group == "web" and action.instance_id == "i-0123456789abcdef0"
    assert action.group_arn.endswith(":autoScalingGroupName/web")
    assert isinstance(parse(load_event("lifecycle_hold_scheduled"), HOLD), Tick)


@pytest.mark.parametrize(
    "event",
    [
        [],
        {"source": "aws.autoscaling"},  # no time
        {**load_event("lifecycle_hold_terminate_action"), "detail": "x"},
        {**load_event("lifecycle_hold_terminate_action"), "time": "yesterday"},
        {**load_event("lifecycle_hold_terminate_action"), "detail-type": "EC2 Instance Launch"},
    ],
)
def test_other_events_are_rejected_with_a_reason(event: object) -> None:
    rejected = parse(event, HOLD)
    assert isinstance(rejected, Rejected) and rejected.reason
