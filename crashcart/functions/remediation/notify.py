"""Notification texts in plain words: what happened, which instance, what next, where the dump is.

Pure functions returning ``(subject, message)``; the adapter publishes them to SNS.
"""

from __future__ import annotations

DUMP_LOCATION = (
    "the crash-dump bucket (its name is in the SSM parameter /crashcart/dump-bucket) under "
    "dumps/{instance_id}/<dump-id>/ (vmcore, dmesg.txt, metadata.json last)"
)


def _where(instance_id: str) -> str:
    return DUMP_LOCATION.format(instance_id=instance_id)


def _lines(*lines: str) -> str:
    return "\n".join(line for line in lines if line) + "\n"


def interrupted(
    *,
    instance_id: str,
    alarm_name: str,
    reason: str,
    outcome: str,
    dump_deadline: str,
    evidence: str,
    warnings: tuple[str, ...],
) -> tuple[str, str]:
    certain = (
        "EC2 accepted the request."
        if outcome == "sent"
        else "The answer from EC2 was lost (timeout or dropped connection); crashcart counts "
        "it as sent and will not try again."
    )
    return (
        f"crashcart: diagnostic interrupt sent to {instance_id}",
        _lines(
            f"What happened: instance {instance_id} failed its instance status check "
            f"(alarm {alarm_name}) and crashcart sent it a diagnostic interrupt (NMI). {certain}",
            f"Why: {reason}.",
            "What to expect next: the kernel panics, kdump writes a crash dump and the instance "
            "reboots by itself; status checks fail for a few minutes meanwhile. When the alarm "
            "returns to OK the incident becomes 'recovered'.",
            f"Where the dump will land: {_where(instance_id)}. If it has not arrived by "
            f"{dump_deadline}, a 'dump overdue' notification follows.",
            f"Console output saved before the interrupt: {evidence}.",
            *(f"Warning: {w}." for w in warnings),
        ),
    )


def dry_run(*, instance_id: str, alarm_name: str, reason: str) -> tuple[str, str]:
    return (
        f"crashcart (dry run): would have interrupted {instance_id}",
        _lines(
            f"What happened: instance {instance_id} failed its instance status check (alarm "
            f"{alarm_name}). crashcart runs in dry-run mode: it checked the interrupt with "
            "DryRun=True (EC2 said it would be allowed) and did NOT send it.",
            f"Why it would have: {reason}.",
            "What to expect next: nothing automatic. Investigate the instance yourself, or turn "
            "dry-run off to let crashcart capture a crash dump next time.",
        ),
    )


def failed(*, instance_id: str, alarm_name: str, code: str, message: str) -> tuple[str, str]:
    return (
        f"crashcart: could not interrupt {instance_id}",
        _lines(
            f"What happened: instance {instance_id} failed its instance status check (alarm "
            f"{alarm_name}); crashcart tried to send a diagnostic interrupt and EC2 refused: "
            f"{code} {message}".rstrip(),
            "What to expect next: nothing was sent, so no crash dump will be written. The "
            "instance is probably still hung: a human should look at it (reboot, or capture "
            "diagnostics by hand).",
        ),
    )


def escalated(*, instance_id: str, alarm_name: str, reason: str) -> tuple[str, str]:
    return (
        f"crashcart: {instance_id} needs a human",
        _lines(
            f"What happened: instance {instance_id} failed its instance status check again "
            f"(alarm {alarm_name}). crashcart did NOT interrupt it: {reason}.",
            "What to expect next: nothing automatic. Something other than a one-off kernel hang "
            "may be wrong; look at the earlier crash dump and the instance.",
            f"Earlier dumps: {_where(instance_id)}.",
        ),
    )


def unattested(*, instance_id: str, alarm_name: str, reason: str) -> tuple[str, str]:
    return (
        f"crashcart: {instance_id} NOT interrupted: kdump not attested",
        _lines(
            f"What happened: instance {instance_id} failed its instance status check (alarm "
            f"{alarm_name}) and every other guard passed, but crashcart did NOT interrupt it: "
            f"{reason}.",
            "Why that matters: with attestation policy 'require' (the default) crashcart only "
            "interrupts instances whose crashcart agent attested, within the max age, that "
            "kdump is armed; otherwise the dump would most likely be lost. Every hang of this "
            "instance is skipped until it attests. This is the first such skip for "
            f"{instance_id}; later ones are recorded (incident state 'skipped', guard "
            "'kdump-attestation', metric InterruptsSkipped) but not notified again.",
            "What to do: the instance is probably still hung, so a human should look at it "
            "now. Then find why it does not attest: 'crashcart attestation --region <region>' "
            "lists every opted-in instance; on the instance, 'journalctl -u "
            "crashcart-agent' shows the agent's last run (an UnauthorizedOperation from "
            "create-tags means the role may not tag the instance: see the register entry "
            "attestation-self-tag in docs/aws-assumptions.md), and 'crashcart-agent attest "
            "--print' shows what it checks. If no instance attests, every alarm is skipped: "
            "fix that first, or set the attestation policy to 'warn' meanwhile.",
        ),
    )


def breaker_opened(
    *, scope: str, count: int, window_seconds: int, quiet_seconds: int, reset: str
) -> tuple[str, str]:
    return (
        f"crashcart: circuit breaker OPEN ({scope})",
        _lines(
            f"What happened: {count} instances ({scope}) failed their instance status checks "
            f"within {window_seconds} s. That looks like a correlated, likely "
            "infrastructure-wide event, not independent kernel hangs.",
            "What crashcart does: no diagnostic interrupts in that scope while the breaker is "
            "open; every alarm is still recorded in the incident table.",
            f"What to expect next: the breaker closes by itself after {quiet_seconds} s without "
            f"a new alarm, or when an operator resets it ({reset}).",
        ),
    )


def recovered(*, instance_id: str, alarm_name: str, previous_state: str) -> tuple[str, str]:
    return (
        f"crashcart: {instance_id} recovered",
        _lines(
            f"What happened: the instance status check of {instance_id} passes again (alarm "
            f"{alarm_name} is OK). The incident was '{previous_state}' and is now 'recovered'.",
            f"Crash dump, if one was taken: {_where(instance_id)}.",
        ),
    )
