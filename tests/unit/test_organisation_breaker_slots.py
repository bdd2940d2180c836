"""The organisation breaker's decision (``org_breaker.py``): slots, window, quiet, fail closed.

The shared item lives in one moto table (in-process ``mock_aws``); several
``OrganisationBreaker`` objects with different account ids stand for the member accounts'
functions. Error answers come from botocore's Stubber.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError
from botocore.stub import Stubber
from moto import mock_aws

from tests.support.incidents import create_incident_table
from tests.support.remediation_runtime import load

R = load()
O = R.org_breaker  # noqa: E741 - the module under test
D = R.decision
NOW = 1_800_000_000
TABLE = "arn:aws:dynamodb:eu-west-1:999999999999:table/crashcart-org-breaker"


@pytest.fixture
def client() -> Iterator[Any]:
    with mock_aws():
        made = boto3.client("dynamodb", region_name="eu-west-1")
        create_incident_table(made, "crashcart-org-breaker")
        yield made


def breaker(client: Any, account: str, **settings: int) -> Any:
    values = {"threshold": 3, "window_seconds": 900, "quiet_seconds": 3600, **settings}
    return O.OrganisationBreaker(
        client,
        O.OrganisationBreakerSettings(table_arn="crashcart-org-breaker", **values),
        account=account,
        sleep=lambda _: None,
    )


def take(b: Any, at: int = NOW, instance: str = "i-0123456789abcdef0") -> Any:
    return b.take(now_epoch=at, now_iso="2027-01-15T08:00:00Z", instance_id=instance)


def test_the_slot_that_reaches_the_threshold_opens_it_across_accounts(client: Any) -> None:
    a, b, c = (breaker(client, acct) for acct in ("111111111111", "222222222222", "333333333333"))
    assert take(a).outcome is O.SlotOutcome.TAKEN
    assert take(b, NOW + 10).outcome is O.SlotOutcome.TAKEN
    third = take(c, NOW + 20)
    assert third.outcome is O.SlotOutcome.OPEN and third.step.just_opened
    later = take(a, NOW + 30)
    assert later.outcome is O.SlotOutcome.OPEN and not later.step.just_opened
    item = client.get_item(
        TableName="crashcart-org-breaker",
        Key={"pk": {"S": "breaker#organisation"}, "sk": {"S": "state"}},
    )["Item"]
    assert item["count"]["N"] == "4" and item["opened_epoch"]["N"] == str(NOW + 20)
    assert item["last_account"]["S"] == "111111111111"


def test_a_new_window_starts_the_count_again(client: Any) -> None:
    a, b = breaker(client, "111111111111"), breaker(client, "222222222222")
    assert take(a).outcome is O.SlotOutcome.TAKEN
    assert take(b, NOW + 899).outcome is O.SlotOutcome.TAKEN
    # 900 s after the window started: a new window; two more fit before it opens.
    assert take(a, NOW + 900).outcome is O.SlotOutcome.TAKEN
    assert take(b, NOW + 901).outcome is O.SlotOutcome.TAKEN
    assert take(a, NOW + 902).outcome is O.SlotOutcome.OPEN


def test_an_open_breaker_closes_after_the_quiet_time(client: Any) -> None:
    a = breaker(client, "111111111111", threshold=2)
    take(a)
    assert take(a, NOW + 1).outcome is O.SlotOutcome.OPEN
    assert take(a, NOW + 3600).outcome is O.SlotOutcome.OPEN  # 3599 s after the last one
    closed = take(a, NOW + 3600 + 3600)
    assert closed.outcome is O.SlotOutcome.TAKEN and closed.step.closed_by_quiet
    item = client.get_item(
        TableName="crashcart-org-breaker",
        Key={"pk": {"S": "breaker#organisation"}, "sk": {"S": "state"}},
    )["Item"]
    assert "opened_epoch" not in item


def test_a_lost_race_is_read_again_and_counted_once(client: Any) -> None:
    a, b = breaker(client, "111111111111"), breaker(client, "222222222222")
    real_update = client.update_item
    calls: list[int] = []

    def racing(**kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:  # B takes a slot between A's read and A's write
            client.update_item = real_update
            take(b)
            client.update_item = racing
        return real_update(**kwargs)

    client.update_item = racing
    assert take(a).outcome is O.SlotOutcome.TAKEN
    client.update_item = real_update
    item = client.get_item(
        TableName="crashcart-org-breaker",
        Key={"pk": {"S": "breaker#organisation"}, "sk": {"S": "state"}},
    )["Item"]
    assert item["count"]["N"] == "2" and len(calls) == 2


def test_a_slot_still_contended_after_every_attempt_is_unavailable() -> None:
    client = boto3.client("dynamodb", region_name="eu-west-1")
    with Stubber(client) as stub:
        for _ in range(O.ATTEMPTS):
            stub.add_response("get_item", {})
            stub.add_client_error("update_item", "ConditionalCheckFailedException")
        slot = take(breaker(client, "111111111111"))
    assert slot.outcome is O.SlotOutcome.UNAVAILABLE and slot.code == "Contended"


@pytest.mark.parametrize(
    ("operation", "code"),
    [
        ("get_item", "AccessDeniedException"),
        ("get_item", "ThrottlingException"),
        ("get_item", "ResourceNotFoundException"),
        ("update_item", "AccessDeniedException"),
        ("update_item", "ProvisionedThroughputExceededException"),
        ("update_item", "ValidationException"),
    ],
)
def test_every_error_answer_is_unavailable(operation: str, code: str) -> None:
    client = boto3.client("dynamodb", region_name="eu-west-1")
    with Stubber(client) as stub:
        if operation == "update_item":
            stub.add_response("get_item", {})
        stub.add_client_error(operation, code, http_status_code=400)
        slot = take(breaker(client, "111111111111"))
    assert (slot.outcome, slot.code) == (O.SlotOutcome.UNAVAILABLE, code)


def test_a_connection_failure_or_any_exception_is_unavailable() -> None:
    class Broken:
        def __init__(self, error: Exception) -> None:
            self.error = error

        def get_item(self, **_: Any) -> Any:
            raise self.error

    unreachable = take(breaker(Broken(EndpointConnectionError(endpoint_url="x")), "1" * 12))
    assert (unreachable.outcome, unreachable.code) == (
        O.SlotOutcome.UNAVAILABLE,
        "EndpointConnectionError",
    )
    odd = take(breaker(Broken(KeyError("Item")), "1" * 12))
    assert (odd.outcome, odd.code) == (O.SlotOutcome.UNAVAILABLE, "KeyError")


# -- the gate: a plan in, a plan out --------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.published: list[tuple[str, str]] = []
        self.records: list[tuple[str, dict[str, Any]]] = []

    def publish(self, subject: str, message: str) -> None:
        self.published.append((subject, message))

    def warning(self, message: str, **fields: Any) -> None:
        self.records.append((message, fields))

    error = warning


class Scripted:
    def __init__(self, *outcomes: Any) -> None:
        self.outcomes = list(outcomes)
        self.calls = 0
        self.settings = O.OrganisationBreakerSettings(
            table_arn=TABLE, threshold=3, window_seconds=900, quiet_seconds=3600
        )

    def take(self, **_: Any) -> Any:
        self.calls += 1
        return self.outcomes.pop(0)


def interrupt_plan() -> Any:
    step = R.breakers.step_breaker(
        D.BreakerState(), threshold=5, window_seconds=900, quiet_seconds=3600, now_epoch=NOW
    )
    return D.ClaimPlan(
        decision=D.Decision(verdict=D.Verdict.INTERRUPT, reason="go", warnings=("w",)),
        limits_after=D.LimitsState(exists=True, version=1, last_interrupt_epoch=NOW),
        fleet=step,
        az=None,
    )


def gate(breaker_: Any, recorder: Recorder) -> Any:
    return O.OrganisationGate(breaker_, notifier=recorder, log=recorder)


def test_a_taken_slot_keeps_the_plan_and_a_re_plan_takes_no_second_slot() -> None:
    scripted = Scripted(O.Slot(outcome=O.SlotOutcome.TAKEN))
    g = gate(scripted, Recorder())
    plan = interrupt_plan()
    assert g.gate(plan, instance_id="i-1", incident="incident#x", now=(NOW, "t")) is plan
    again = interrupt_plan()
    assert g.gate(again, instance_id="i-1", incident="incident#x", now=(NOW, "t")) is again
    assert scripted.calls == 1


def test_a_plan_that_does_not_interrupt_takes_no_slot() -> None:
    scripted = Scripted()
    plan = interrupt_plan()
    skip = D.Decision(verdict=D.Verdict.SKIP, guard=D.Guard.COOLDOWN, reason="cooldown")
    skipped = type(plan)(decision=skip, limits_after=None, fleet=plan.fleet, az=None)
    assert gate(scripted, Recorder()).gate(
        skipped, instance_id="i-1", incident="s", now=(0, "")
    ) is (skipped)
    assert scripted.calls == 0


def test_an_unavailable_slot_turns_the_plan_into_a_skip_without_a_claim() -> None:
    recorder = Recorder()
    unavailable = O.Slot(
        outcome=O.SlotOutcome.UNAVAILABLE, code="AccessDeniedException", reason="x"
    )
    out = gate(Scripted(unavailable), recorder).gate(
        interrupt_plan(), instance_id="i-1", incident="incident#x", now=(NOW, "t")
    )
    assert out.decision.verdict is D.Verdict.SKIP
    assert out.decision.guard is D.Guard.ORGANISATION_BREAKER
    assert out.decision.warnings == ("w",)
    assert out.limits_after is None  # no interrupt claim is written
    assert "unavailable" in out.decision.reason
    assert [fields["metric"] for _, fields in recorder.records] == ["org_breaker_unavailable"]
    assert len(recorder.published) == 1


def test_the_slot_that_opens_it_notifies_once_and_later_ones_do_not() -> None:
    step = R.breakers.step_breaker(
        D.BreakerState(exists=True, count=2, window_start_epoch=NOW, version=2),
        threshold=3,
        window_seconds=900,
        quiet_seconds=3600,
        now_epoch=NOW + 1,
    )
    opened = O.Slot(outcome=O.SlotOutcome.OPEN, step=step)
    still = R.breakers.step_breaker(
        step.after, threshold=3, window_seconds=900, quiet_seconds=3600, now_epoch=NOW + 2
    )
    recorder = Recorder()
    g = gate(Scripted(opened, O.Slot(outcome=O.SlotOutcome.OPEN, step=still)), recorder)
    first = g.gate(interrupt_plan(), instance_id="i-1", incident="a", now=(NOW, "t"))
    second = g.gate(interrupt_plan(), instance_id="i-2", incident="b", now=(NOW, "t"))
    assert first.decision.guard is second.decision.guard is D.Guard.ORGANISATION_BREAKER
    assert "organisation breaker open: 3 interrupt candidates" in first.decision.reason
    assert [s for s, _ in recorder.published] == [
        "crashcart: circuit breaker OPEN (organisation, every member account in this Region)"
    ]
    assert TABLE in recorder.published[0][1]
    metrics = [fields.get("metric") for _, fields in recorder.records]
    assert metrics == ["org_breaker_skipped", "org_breaker_opened", "org_breaker_skipped"]
