"""The drill's bridge to the real remediation function, without QEMU: the alarm event reaches
the function, its SendDiagnosticInterrupt becomes exactly one "inject" for the drill's
instance, and the function's own guards still apply."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from crashcart.drill import remediation

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not remediation.available(), reason="remediation function not in the tree"),
]


def _bridge(account: remediation.DrillAccount, injected: list[str]) -> remediation.InterruptBridge:
    return remediation.InterruptBridge(
        instance_id=account.instance_id,
        inject=lambda: injected.append(account.instance_id),
        impaired_since=datetime.now(UTC) - timedelta(minutes=3),
    )


def test_alarm_becomes_one_nmi_for_the_drill_instance(moto_server: str) -> None:
    account = remediation.DrillAccount(url=moto_server).setup(
        attestation=f"armed {datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}"
    )
    injected: list[str] = []
    bridge = _bridge(account, injected)
    outcome = remediation.run_remediation(account, bridge)
    assert outcome["outcome"] == "interrupted", outcome
    assert injected == [account.instance_id]
    assert bridge.calls == [{"InstanceId": account.instance_id, "DryRun": False}]
    assert bridge.injected_at is not None
    assert [item["state"] for item in account.incidents()] == ["interrupted"]


def test_the_functions_guards_still_apply_no_attestation_no_nmi(moto_server: str) -> None:
    account = remediation.DrillAccount(url=moto_server).setup(attestation=None)
    injected: list[str] = []
    outcome = remediation.run_remediation(account, _bridge(account, injected))
    assert outcome["outcome"] != "interrupted"
    assert "attest" in outcome["reason"]
    assert injected == []


def test_a_second_alarm_is_not_a_second_nmi(moto_server: str) -> None:
    account = remediation.DrillAccount(url=moto_server).setup(
        attestation=f"armed {datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}"
    )
    injected: list[str] = []
    bridge = _bridge(account, injected)
    remediation.run_remediation(account, bridge)
    again = remediation.run_remediation(account, bridge)
    assert again["outcome"] != "interrupted"
    assert injected == [account.instance_id]


def test_setup_refuses_a_moto_url_off_loopback() -> None:
    with pytest.raises(ValueError, match=r"127\.0\.0\.1"):
        remediation.DrillAccount(url="http://10.0.0.1:5000").setup(attestation=None)


def test_the_bridge_refuses_other_instances_and_answers_dry_run(moto_server: str) -> None:
    account = remediation.DrillAccount(url=moto_server).setup(attestation=None)
    injected: list[str] = []
    bridge = _bridge(account, injected)
    ec2 = bridge.install(account.client("ec2"))
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError, match=r"InvalidInstanceID\.NotFound"):
        ec2.send_diagnostic_interrupt(InstanceId="i-00000000000000000")
    with pytest.raises(ClientError, match="DryRunOperation"):
        ec2.send_diagnostic_interrupt(InstanceId=account.instance_id, DryRun=True)
    assert injected == []
    status = ec2.describe_instance_status(InstanceIds=[account.instance_id])
    assert status["InstanceStatuses"][0]["InstanceStatus"]["Status"] == "impaired"
