"""settings.py: the environment contract with the construct."""

from __future__ import annotations

import pytest

from tests.support.remediation_runtime import env, load

S = load().settings

BRIEF_TABLE = {
    "CRASHCART_TABLE_NAME",
    "CRASHCART_TOPIC_ARN",
    "CRASHCART_EVIDENCE_BUCKET",
    "CRASHCART_REJECTED_QUEUE_URL",
    "CRASHCART_KILL_SWITCH_PARAMETER",
    "CRASHCART_OPT_IN_TAG_KEY",
    "CRASHCART_OPT_IN_TAG_VALUE",
    "CRASHCART_ALARM_NAME_PREFIX",
    "CRASHCART_DRY_RUN",
    "CRASHCART_BOOT_GRACE_SECONDS",
    "CRASHCART_COOLDOWN_SECONDS",
    "CRASHCART_DAILY_BUDGET",
    "CRASHCART_BREAKER_FLEET_THRESHOLD",
    "CRASHCART_BREAKER_AZ_THRESHOLD",
    "CRASHCART_BREAKER_WINDOW_SECONDS",
    "CRASHCART_BREAKER_QUIET_SECONDS",
    "CRASHCART_ATTESTATION_POLICY",
    "CRASHCART_ATTESTATION_MAX_AGE_SECONDS",
    "CRASHCART_ALLOW_UNVERIFIED_ARCH",
    "CRASHCART_DUMP_DEADLINE_SECONDS",
    "CRASHCART_MAX_EVENT_AGE_SECONDS",
    "CRASHCART_MISSED_SWEEP_MAX_PER_PASS",
    "CRASHCART_MISSED_SWEEP_MAX_PAGES",
    "CRASHCART_MISSED_SWEEP_STALE_SECONDS",
    "CRASHCART_ORG_BREAKER_TABLE_ARN",
    "CRASHCART_ORG_BREAKER_THRESHOLD",
    "CRASHCART_ORG_BREAKER_WINDOW_SECONDS",
    "CRASHCART_ORG_BREAKER_QUIET_SECONDS",
    "CRASHCART_ORG_EVENT_BUS_ARN",
}
REQUIRED = {
    "CRASHCART_TABLE_NAME",
    "CRASHCART_TOPIC_ARN",
    "CRASHCART_EVIDENCE_BUCKET",
    "CRASHCART_REJECTED_QUEUE_URL",
    "CRASHCART_KILL_SWITCH_PARAMETER",
    "CRASHCART_ALARM_NAME_PREFIX",
}


def minimal() -> dict[str, str]:
    return {k: v for k, v in env(CRASHCART_REJECTED_QUEUE_URL="https://q").items() if k in REQUIRED}


def test_the_variables_are_exactly_the_contract_table() -> None:
    assert set(S.ENVIRONMENT) == BRIEF_TABLE
    assert {k for k, v in S.ENVIRONMENT.items() if v is None} == REQUIRED


def test_defaults_are_the_documented_safe_ones() -> None:
    s = S.Settings.from_env(minimal())
    assert s.dry_run is False
    assert (s.opt_in_tag_key, s.opt_in_tag_value) == ("crashcart:diagnostic-interrupt", "enabled")
    assert s.daily_budget == 1
    assert s.cooldown_seconds > s.dump_deadline_seconds
    assert s.attestation_policy is S.AttestationPolicy.REQUIRE
    assert s.allow_unverified_arch is False
    # the dataclass defaults and the environment defaults agree
    assert s == S.Settings(
        **{
            f: getattr(s, f)
            for f in (
                "table_name",
                "topic_arn",
                "evidence_bucket",
                "rejected_queue_url",
                "kill_switch_parameter",
                "alarm_name_prefix",
            )
        }
    )


def test_every_variable_is_read() -> None:
    values = env(
        CRASHCART_REJECTED_QUEUE_URL="https://q",
        CRASHCART_DRY_RUN="TRUE",
        CRASHCART_BOOT_GRACE_SECONDS="60",
        CRASHCART_COOLDOWN_SECONDS="7200",
        CRASHCART_DAILY_BUDGET="2",
        CRASHCART_BREAKER_FLEET_THRESHOLD="9",
        CRASHCART_BREAKER_AZ_THRESHOLD="4",
        CRASHCART_BREAKER_WINDOW_SECONDS="300",
        CRASHCART_BREAKER_QUIET_SECONDS="600",
        CRASHCART_ATTESTATION_POLICY="warn",
        CRASHCART_ATTESTATION_MAX_AGE_SECONDS="0",
        CRASHCART_ALLOW_UNVERIFIED_ARCH="true",
        CRASHCART_DUMP_DEADLINE_SECONDS="900",
        CRASHCART_OPT_IN_TAG_KEY="team:nmi",
        CRASHCART_OPT_IN_TAG_VALUE="yes",
    )
    s = S.Settings.from_env(values)
    assert (s.dry_run, s.boot_grace_seconds, s.cooldown_seconds, s.daily_budget) == (
        True,
        60,
        7200,
        2,
    )
    assert (s.breaker_fleet_threshold, s.breaker_az_threshold) == (9, 4)
    assert (s.breaker_window_seconds, s.breaker_quiet_seconds) == (300, 600)
    assert s.attestation_policy is S.AttestationPolicy.WARN
    assert (s.attestation_max_age_seconds, s.allow_unverified_arch, s.dump_deadline_seconds) == (
        0,
        True,
        900,
    )
    assert (s.opt_in_tag_key, s.opt_in_tag_value) == ("team:nmi", "yes")


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_fails_when_a_required_variable_is_missing(name: str) -> None:
    values = minimal()
    del values[name]
    with pytest.raises(S.SettingsError, match=f"{name} is not set"):
        S.Settings.from_env(values)


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("CRASHCART_TABLE_NAME", "  ", "is empty"),
        ("CRASHCART_DRY_RUN", "yes", "expected 'true' or 'false'"),
        ("CRASHCART_ALLOW_UNVERIFIED_ARCH", "1", "expected 'true' or 'false'"),
        ("CRASHCART_COOLDOWN_SECONDS", "-5", "whole number"),
        ("CRASHCART_COOLDOWN_SECONDS", "1h", "whole number"),
        ("CRASHCART_DAILY_BUDGET", "0", "at least 1"),
        ("CRASHCART_BREAKER_FLEET_THRESHOLD", "1", "at least 2"),
        ("CRASHCART_ATTESTATION_POLICY", "maybe", "require, warn, ignore"),
        ("CRASHCART_COOLDOWN_SECONDS", "60", "shorter than dump_deadline_seconds"),
    ],
)
def test_fails_on_invalid_values(name: str, value: str, words: str) -> None:
    values = minimal() | {name: value}
    with pytest.raises(S.SettingsError, match=words):
        S.Settings.from_env(values)


TABLE_ARN = "arn:aws:dynamodb:eu-west-1:999999999999:table/crashcart-org-breaker"
BUS_ARN = "arn:aws:events:eu-west-1:999999999999:event-bus/crashcart-central"


def test_the_organisation_part_is_off_unless_its_arns_are_given() -> None:
    s = S.Settings.from_env(minimal())
    assert (s.org_breaker_table_arn, s.org_event_bus_arn) == ("", "")
    assert (s.org_breaker_threshold, s.org_breaker_window_seconds) == (20, 900)
    on = S.Settings.from_env(
        {
            **minimal(),
            "CRASHCART_ORG_BREAKER_TABLE_ARN": TABLE_ARN,
            "CRASHCART_ORG_EVENT_BUS_ARN": BUS_ARN,
            "CRASHCART_ORG_BREAKER_THRESHOLD": "7",
            "CRASHCART_ORG_BREAKER_QUIET_SECONDS": "600",
        }
    )
    assert (on.org_breaker_table_arn, on.org_event_bus_arn) == (TABLE_ARN, BUS_ARN)
    assert (on.org_breaker_threshold, on.org_breaker_quiet_seconds) == (7, 600)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("CRASHCART_ORG_BREAKER_TABLE_ARN", "crashcart-org-breaker", "expected an ARN"),
        ("CRASHCART_ORG_BREAKER_TABLE_ARN", BUS_ARN, "expected an ARN"),
        ("CRASHCART_ORG_EVENT_BUS_ARN", TABLE_ARN, "expected an ARN"),
        ("CRASHCART_ORG_EVENT_BUS_ARN", BUS_ARN.replace("999999999999", "9999"), "expected an ARN"),
        ("CRASHCART_ORG_BREAKER_THRESHOLD", "1", "at least 2"),
        ("CRASHCART_ORG_BREAKER_WINDOW_SECONDS", "0", "at least 1"),
    ],
)
def test_bad_organisation_values_are_refused(name: str, value: str, message: str) -> None:
    with pytest.raises(S.SettingsError, match=message):
        S.Settings.from_env({**minimal(), name: value})
