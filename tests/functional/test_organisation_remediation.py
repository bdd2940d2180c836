"""The remediation across an organisation: several member accounts, one central account.

Every account's state is its own moto backend (``tests/support/organisation_accounts.py`` says how,
and what moto does not model). SendDiagnosticInterrupt and the impaired status are the test
layer's, per member (``Ec2Script``): each member's script sees only its own function's calls.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from botocore.stub import Stubber

from crashcart.runtime.incident_events import DETAIL_TYPE, SOURCE, incident_update
from tests.support.organisation_accounts import (
    ACCOUNT_A,
    ACCOUNT_B,
    ACCOUNT_C,
    CENTRAL_ACCOUNT,
    Central,
    Member,
    account_client,
    member_account,
)
from tests.support.remediation_runtime import Clock, MemoryLog, after_launch_clock

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
def central(moto_server: str) -> Iterator[Central]:
    made = Central(url=moto_server).setup()
    yield made
    made.teardown()


@pytest.fixture
def clock() -> Clock:
    return after_launch_clock()


@pytest.fixture
def members(moto_server: str) -> Iterator[list[Member]]:
    made: list[Member] = []
    yield made
    for member in made:
        member.teardown()


def member(
    members: list[Member], url: str, account: str, central: Central, **organise: Any
) -> Member:
    made = Member(url=url, account=account).setup()
    made.organise(central, **organise)
    members.append(made)
    return made


def outcomes(results: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
    return [(r["outcome"], r.get("guard")) for r in results]


def test_an_alarm_in_account_a_interrupts_in_account_a_only(
    moto_server: str, central: Central, members: list[Member], clock: Clock
) -> None:
    a = member(members, moto_server, ACCOUNT_A, central)
    b = member(members, moto_server, ACCOUNT_B, central)
    (instance,) = a.instances(clock=clock)
    # The accounts' EC2 state is apart: B's account has no such instance.
    assert b.client("ec2").describe_instances()["Reservations"] == []

    result = a.deliver(a.alarm(instance, at=clock() - timedelta(seconds=60)), clock)

    assert result["outcome"] == "interrupted"
    assert [c["InstanceId"] for c in a.script.sent()] == [instance]
    assert b.script.interrupts == []
    assert a.incidents(instance)[0]["state"] == "interrupted"
    assert b.incidents(instance) == []
    slot = central.breaker()
    assert slot is not None
    assert (slot["count"], slot["last_account"], slot["last_instance"]) == (
        "1",
        ACCOUNT_A,
        instance,
    )
    # A's alarm handed to B's function is another account's event: rejected, kept, no call.
    assert b.deliver(a.alarm(instance, at=clock() - timedelta(seconds=30)), clock)["outcome"] == (
        "rejected"
    )
    assert b.script.interrupts == []
    assert len(b.rejected()) == 1


def test_the_organisation_breaker_opens_across_accounts(
    moto_server: str, central: Central, members: list[Member], clock: Clock
) -> None:
    accounts = [
        member(members, moto_server, account, central, threshold=3)
        for account in (ACCOUNT_A, ACCOUNT_B, ACCOUNT_C)
    ]
    instances = [m.instances(clock=clock)[0] for m in accounts]
    at = clock() - timedelta(seconds=60)

    results = [
        m.deliver(m.alarm(i, at=at), clock) for m, i in zip(accounts, instances, strict=True)
    ]

    assert outcomes(results) == [
        ("interrupted", None),
        ("interrupted", None),
        ("skipped", "organisation-breaker"),
    ]
    a, b, c = accounts
    assert (len(a.script.sent()), len(b.script.sent()), c.script.interrupts) == (1, 1, [])
    assert "organisation breaker open" in c.incidents(instances[2])[0]["reason"]
    # The member whose slot opened it tells its own topic, once.
    subjects = [n["subject"] for n in c.notifications()]
    assert subjects == [
        "crashcart: circuit breaker OPEN (organisation, every member account in this Region)"
    ]
    slot = central.breaker()
    assert slot is not None and slot["count"] == "3" and "opened_epoch" in slot
    # Open for everyone now: a second instance of account A is skipped too.
    (second,) = a.instances(clock=clock)
    clock.advance(60)
    later = a.deliver(a.alarm(second, at=clock() - timedelta(seconds=30)), clock)
    assert (later["outcome"], later["guard"]) == ("skipped", "organisation-breaker")
    assert len(a.script.sent()) == 1
    # The local breakers did not open: one ALARM per account is far below theirs.
    for m in accounts:
        local = m.item("breaker#fleet", "state")
        assert local is not None and "opened_epoch" not in local


def test_a_burst_across_many_accounts_stops_at_the_organisation_breaker(
    moto_server: str, central: Central, members: list[Member], clock: Clock
) -> None:
    """Ten accounts, two impaired instances each, within a minute: the per-account
    breakers (5 / 3 per window) let every one through; the organisation's (threshold 5)
    lets exactly 4 interrupts through in the whole organisation."""
    accounts = [
        member(members, moto_server, member_account(i), central, threshold=5) for i in range(10)
    ]
    at = clock() - timedelta(seconds=60)
    results = []
    for m in accounts:
        for instance in m.instances(2, clock=clock):
            results.append(m.deliver(m.alarm(instance, at=at), clock))
    sent = sum(len(m.script.sent()) for m in accounts)
    assert sent == 4
    assert outcomes(results).count(("interrupted", None)) == 4
    assert outcomes(results).count(("skipped", "organisation-breaker")) == 16
    slot = central.breaker()
    assert slot is not None and slot["count"] == "20"


@pytest.mark.parametrize(
    "code",
    ["AccessDeniedException", "ThrottlingException", "ProvisionedThroughputExceededException"],
)
def test_an_unusable_central_table_means_no_interrupt(
    moto_server: str, central: Central, members: list[Member], clock: Clock, code: str
) -> None:
    a = member(members, moto_server, ACCOUNT_A, central)
    (instance,) = a.instances(clock=clock)
    org = account_client(moto_server, "dynamodb", CENTRAL_ACCOUNT)
    memory = MemoryLog(clock)
    with Stubber(org) as stub:
        stub.add_client_error("get_item", service_error_code=code, http_status_code=400)
        result = a.deliver(
            a.alarm(instance, at=clock() - timedelta(seconds=60)),
            clock,
            log=memory.log,
            org_dynamodb=org,
        )
    assert (result["outcome"], result["guard"]) == ("skipped", "organisation-breaker")
    assert a.script.interrupts == []
    record = a.incidents(instance)[0]
    assert record["state"] == "skipped" and code in record["reason"]
    assert "limits" not in {i["sk"] for i in a.incidents(instance)}
    assert a.item(f"instance#{instance}", "limits") is None  # no claim taken
    unavailable = [r for r in memory.records() if "OrganisationBreakerUnavailable" in r]
    assert len(unavailable) == 1 and unavailable[0]["code"] == code
    assert any("organisation breaker unavailable" in n["subject"] for n in a.notifications())


def test_a_missing_central_table_means_no_interrupt(
    moto_server: str, central: Central, members: list[Member], clock: Clock
) -> None:
    a = member(members, moto_server, ACCOUNT_A, central)
    a.env["CRASHCART_ORG_BREAKER_TABLE_ARN"] = central.table_arn + "-gone"
    (instance,) = a.instances(clock=clock)
    result = a.deliver(a.alarm(instance, at=clock() - timedelta(seconds=60)), clock)
    assert (result["outcome"], result["guard"]) == ("skipped", "organisation-breaker")
    assert a.script.interrupts == []
    assert "ResourceNotFoundException" in a.incidents(instance)[0]["reason"]


def test_incident_events_reach_the_central_bus_with_the_sending_account(
    moto_server: str, central: Central, members: list[Member], clock: Clock
) -> None:
    a = member(members, moto_server, ACCOUNT_A, central)
    b = member(members, moto_server, ACCOUNT_B, central)
    (ia,) = a.instances(clock=clock)
    (ib,) = b.instances(clock=clock, opted_in=False)
    at = clock() - timedelta(seconds=60)
    assert a.deliver(a.alarm(ia, at=at), clock)["outcome"] == "interrupted"
    assert b.deliver(b.alarm(ib, at=at), clock)["outcome"] == "skipped"
    clock.advance(120)
    ok = a.alarm(ia, at=clock() - timedelta(seconds=10))
    ok["detail"]["state"]["value"] = "OK"
    ok["detail"]["previousState"]["value"] = "ALARM"
    assert a.deliver(ok, clock)["outcome"] == "recovered"

    events = central.events()
    assert {(e["source"], e["detail-type"]) for e in events} == {(SOURCE, DETAIL_TYPE)}
    seen = [
        (e["detail"]["account"], e["detail"]["instance_id"], e["detail"]["state"]) for e in events
    ]
    assert seen == [
        (ACCOUNT_A, ia, "claimed"),
        (ACCOUNT_A, ia, "interrupted"),
        (ACCOUNT_B, ib, "skipped"),
        (ACCOUNT_A, ia, "recovered"),
    ]
    for event in events:
        detail = event["detail"]
        # Every event is in the contract's format (the builder validates every field).
        assert incident_update(**{k: v for k, v in detail.items() if k != "schema"}).detail() == (
            detail
        )
        assert detail["region"] == "eu-west-1" and detail["availability_zone"] == "eu-west-1a"
    # moto's delivered envelope carries no sender account (tests/support/organisation_accounts.py):
    # the sender is the member whose function sent it, named in detail.account.
    assert all(e.get("account", "") in ("", CENTRAL_ACCOUNT) for e in events)


def test_a_failed_put_events_does_not_stop_the_interrupt(
    moto_server: str, central: Central, members: list[Member], clock: Clock
) -> None:
    a = member(members, moto_server, ACCOUNT_A, central)
    (instance,) = a.instances(clock=clock)
    events = account_client(moto_server, "events", CENTRAL_ACCOUNT)
    memory = MemoryLog(clock)
    with Stubber(events) as stub:
        stub.add_client_error("put_events", service_error_code="AccessDeniedException")
        stub.add_response(
            "put_events",
            {
                "FailedEntryCount": 1,
                "Entries": [{"ErrorCode": "InternalFailure", "ErrorMessage": "x"}],
            },
        )
        result = a.deliver(
            a.alarm(instance, at=clock() - timedelta(seconds=60)),
            clock,
            log=memory.log,
            events=events,
        )
    assert result["outcome"] == "interrupted"
    assert len(a.script.sent()) == 1
    assert a.incidents(instance)[0]["state"] == "interrupted"
    failed = [r for r in memory.records() if "IncidentEventsFailed" in r]
    assert [r["state"] for r in failed] == ["claimed", "interrupted"]
    assert "AccessDeniedException" in failed[0]["error"] and "InternalFailure" in failed[1]["error"]
    assert failed[1]["event"]["account"] == ACCOUNT_A


def test_without_the_organisation_settings_nothing_central_is_called(
    moto_server: str, central: Central, members: list[Member], clock: Clock
) -> None:
    a = Member(url=moto_server, account=ACCOUNT_A).setup()
    members.append(a)
    (instance,) = a.instances(clock=clock)
    assert a.deliver(a.alarm(instance, at=clock() - timedelta(seconds=60)), clock)["outcome"] == (
        "interrupted"
    )
    assert central.breaker() is None
    assert central.events() == []
