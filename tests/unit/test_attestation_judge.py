"""``crashcart attestation``'s verdict on a tag value: each status, and the same verdict as
the remediation function's attestation guard (its own code, loaded as the Lambda runtime
loads it) on hand-picked and generated values; the dump-overdue sweep's attestation census
counts an instance as attested exactly when the function would let its interrupt through."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from crashcart.cli import attestation as ac
from crashcart.cli import attestation_report
from crashcart.cli.attestation import Status, judge_attestation
from crashcart.functions.incident_sweep import attestation as census_module
from crashcart.runtime.attestation import human_age
from tests.support.dumps import AGENT, fake_host, load_module
from tests.support.remediation_runtime import load, settings

R = load()
#: The sweep's census module, loaded as its Lambda runtime loads it.
CENSUS = census_module
NOW = datetime(2026, 11, 26, 5, 20, 30, tzinfo=UTC)
WEEK = 604_800


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


HOUR_AGO = stamp(NOW - timedelta(hours=1))

CASES: list[tuple[str | None, Status]] = [
    (f"armed {HOUR_AGO}", Status.ARMED),
    (f"armed {stamp(NOW - timedelta(days=7))}", Status.ARMED),  # exactly max age: still fine
    (f"armed {stamp(NOW - timedelta(days=7, seconds=1))}", Status.STALE),
    (f"armed {stamp(NOW - timedelta(days=40))}", Status.STALE),
    (f"armed {stamp(NOW + timedelta(minutes=4))}", Status.ARMED),  # within the clock skew
    (f"armed {stamp(NOW + timedelta(minutes=6))}", Status.UNPARSEABLE),
    ("armed 2026-11-26T04:20:30+01:00", Status.ARMED),
    (f"not-armed {HOUR_AGO} capture-kernel-not-loaded unknown_nmi_panic=0", Status.NOT_ARMED),
    (f"not-armed {HOUR_AGO}", Status.NOT_ARMED),
    (f"not-armed {stamp(NOW - timedelta(days=40))} no-crashkernel", Status.NOT_ARMED),
    (None, Status.MISSING),
    ("", Status.UNPARSEABLE),
    ("garbage", Status.UNPARSEABLE),
    ("armed", Status.UNPARSEABLE),
    ("armed yesterday", Status.UNPARSEABLE),
    ("armed 2026-11-26T04:20:30", Status.UNPARSEABLE),  # no zone
    (f"armed {HOUR_AGO} extra", Status.UNPARSEABLE),
    (f"Armed {HOUR_AGO}", Status.UNPARSEABLE),
    (f"ARMED {HOUR_AGO}", Status.UNPARSEABLE),
    (f"disarmed {HOUR_AGO}", Status.UNPARSEABLE),
]


@pytest.mark.parametrize(("value", "status"), CASES)
def test_each_status(value: str | None, status: Status) -> None:
    assert judge_attestation(value, now=NOW, max_age_seconds=WEEK).status is status


def function_verdict(value: str | None, max_age_seconds: int = WEEK) -> str | None:
    """The remediation function's attestation guard: None = fine, else why it refuses."""
    tags = {"crashcart:diagnostic-interrupt": "enabled"}
    if value is not None:
        tags[ac.ATTESTATION_TAG_KEY] = value
    instance = R.decision.InstanceFacts(
        instance_id="i-0123456789abcdef0",
        state="running",
        launch_time=NOW - timedelta(days=3),
        instance_type="m5.large",
        architecture="x86_64",
        availability_zone="eu-west-1a",
        tags=tags,
    )
    verdict: str | None = R.decision._attestation(
        instance, settings(attestation_max_age_seconds=max_age_seconds), NOW
    )
    return verdict


#: The function's refusal text for each status we report.
FUNCTION_WORDS = {
    Status.NOT_ARMED: "attested NOT armed",
    Status.STALE: "counts as missing",
    Status.MISSING: "attestation absent",
}


def assert_same_verdict(value: str | None, max_age_seconds: int = WEEK) -> None:
    ours = judge_attestation(value, now=NOW, max_age_seconds=max_age_seconds)
    theirs = function_verdict(value, max_age_seconds)
    assert (ours.status is Status.ARMED) == (theirs is None), (value, ours, theirs)
    if ours.status in FUNCTION_WORDS:
        assert theirs is not None and FUNCTION_WORDS[ours.status] in theirs, (value, theirs)
    if ours.status is Status.UNPARSEABLE:
        assert theirs is not None
        assert "unreadable" in theirs or "in the future" in theirs, (value, theirs)
    census = CENSUS.attested_armed(value, now=NOW, max_age_seconds=max_age_seconds)
    assert census == (theirs is None), (value, census, theirs)


@pytest.mark.parametrize(("value", "status"), CASES)
def test_same_verdict_as_the_remediation_function(value: str | None, status: Status) -> None:
    assert_same_verdict(value)


@pytest.mark.parametrize("max_age", [0, 60, 3600, 7200])
def test_same_verdict_for_other_max_ages(max_age: int) -> None:
    for minutes in (0, 1, 59, 60, 61, 119, 120, 121):
        assert_same_verdict(f"armed {stamp(NOW - timedelta(minutes=minutes))}", max_age)


_WORDS = st.sampled_from(
    [
        "armed",
        "not-armed",
        "Armed",
        "no-crashkernel",
        "unknown_nmi_panic=0",
        "2026-11-26T05:20:30Z",
        "2026-11-26T05:20:30",
        "2026-11-26",
        "2026-11-26T05:26:00+00:00",
        "2026-11-19T05:20:29Z",
        "2026-11-19T05:20:31Z",
        "x",
        "",
    ]
)


@hsettings(max_examples=300, deadline=None)
@given(
    words=st.lists(_WORDS, max_size=4),
    times=st.datetimes(
        min_value=datetime(2026, 10, 1), max_value=datetime(2026, 12, 31), timezones=st.just(UTC)
    ),
    armed=st.booleans(),
    seps=st.sampled_from([" ", "  ", "\t"]),
)
def test_same_verdict_on_generated_values(
    words: list[str], times: datetime, armed: bool, seps: str
) -> None:
    assert_same_verdict(seps.join(words))
    head = "armed" if armed else "not-armed"
    assert_same_verdict(seps.join([head, times.isoformat(), *words]))


@pytest.fixture(scope="module")
def agent() -> ModuleType:
    return load_module(AGENT, "crashcart_agent_for_attestation_check")


@pytest.mark.parametrize(
    ("host", "status"),
    [({}, Status.ARMED), ({"crash_loaded": "0", "unknown_nmi_panic": "0"}, Status.NOT_ARMED)],
)
def test_what_the_agent_writes_is_read(
    agent: ModuleType, tmp_path: Any, host: dict[str, Any], status: Status
) -> None:
    value = agent.tag_value(agent.attest(agent.Config(fake_host(tmp_path, **host))))
    verdict = judge_attestation(value, now=datetime.now(UTC), max_age_seconds=WEEK)
    assert verdict.status is status, value
    if status is Status.NOT_ARMED:
        assert verdict.reasons == "capture-kernel-not-loaded unknown_nmi_panic=0"


def test_constants_are_the_functions_and_the_constructs(agent: ModuleType) -> None:
    from crashcart.constructs import ATTESTATION_TAG_KEY, InterruptGuards

    # The agent is a component file (not the runtime): its copy of the key is pinned here.
    assert ac.ATTESTATION_TAG_KEY == ATTESTATION_TAG_KEY == agent.ATTESTATION_TAG_KEY
    function_defaults = R.settings.Settings.__dataclass_fields__
    max_age = function_defaults["attestation_max_age_seconds"].default
    assert max_age == ac.DEFAULT_MAX_AGE_SECONDS
    assert int(R.settings.ENVIRONMENT["CRASHCART_ATTESTATION_MAX_AGE_SECONDS"]) == max_age
    assert InterruptGuards().attestation_max_age.to_seconds() == ac.DEFAULT_MAX_AGE_SECONDS
    assert function_defaults["boot_grace_seconds"].default == attestation_report.BOOT_GRACE_SECONDS


def test_details_say_what_to_do() -> None:
    def detail(value: str | None) -> str:
        return judge_attestation(value, now=NOW, max_age_seconds=WEEK).detail

    assert "agent is not installed, not running" in detail(None)
    assert "'garbage' is not 'armed <UTC>'" in detail("garbage")
    assert "older than 7 d" in detail(f"armed {stamp(NOW - timedelta(days=9))}")
    assert "in the future" in detail(f"armed {stamp(NOW + timedelta(hours=1))}")
    assert detail(f"not-armed {HOUR_AGO} no-crashkernel") == "no-crashkernel"
    assert detail(f"not-armed {HOUR_AGO}") == "(no reasons given)"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0 s"), (119, "119 s"), (120, "2 min"), (7199, "119 min"), (7200, "2 h"),
     (172_799, "47 h"), (172_800, "2 d"), (604_800, "7 d"), (-90, "-90 s")],
)  # fmt: skip
def test_age(seconds: int, text: str) -> None:
    assert human_age(seconds) == text
