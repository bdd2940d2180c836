"""The member-account stack of an organisation: what every account and Region runs.

It is :class:`~crashcart.stacks.remediation.CrashcartRemediationStack` in its member form
(``central=``): the remediation (alarms, guards, the local incident table with the
per-account fleet and per-AZ breakers, the missed-alarm sweep), the Auto Scaling hold and its
escalation, the kill-switch reach, the dashboard, and the agent's permissions on the central
account's dump bucket of the stack's Region. There is no dump bucket, triage job or dump
arrival here: dumps, the incident view and triage live in the central account.

Its resources do not depend on the fleet (``MemberRemediation.fleet`` is a ``FleetWatch`` or
``ManagedAlarms``, never an instance list): ``benchmarks/organisation_scale.py`` synthesizes
it with different fleet sizes and checks that.

The same class serves two deployments:

- inside :class:`~crashcart.constructs.organisation_rollout.OrganisationRollout`, synthesized
  as the StackSet's template (its assets copied to per-Region asset buckets);
- as an ordinary stack in the management account, which service-managed StackSets never
  deploy to: ``OrganisationMemberStack(app, "CrashcartManagementAccount", settings=...,
  env=cdk.Environment(account=<management>, region=<region>))`` per Region, deployed with
  ``cdk deploy`` (docs/organisation/rollout.md).
"""

from __future__ import annotations

from typing import Any

from constructs import Construct

from crashcart.constructs.member_account_settings import MemberAccountSettings, MemberRemediation
from crashcart.errors import ConfigurationError
from crashcart.stacks.remediation import CrashcartRemediationStack

__all__ = ["OrganisationMemberStack"]


class OrganisationMemberStack(CrashcartRemediationStack):
    """One member account's crashcart, reporting to the central account of its Region."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: MemberAccountSettings,
        member: MemberRemediation = MemberRemediation(),  # noqa: B008 - frozen value
        **stack_kwargs: Any,
    ) -> None:
        """
        :param settings: the central account's resources per Region.
        :param member: how the remediation behaves. Default: ``MemberRemediation()`` (the
            fleet by one Metrics Insights alarm, dry run).
        :param stack_kwargs: passed to ``cdk.Stack`` (``env``, ``synthesizer``,
            ``description``, ...).
        :raises ConfigurationError: ``settings`` or ``member`` of the wrong type, or (with a
            concrete ``env`` Region) a Region ``settings`` has no entry for.
        """
        if not isinstance(settings, MemberAccountSettings):
            raise ConfigurationError(
                f"OrganisationMemberStack settings={settings!r}: give MemberAccountSettings(...)"
            )
        if not isinstance(member, MemberRemediation):
            raise ConfigurationError(
                f"OrganisationMemberStack member={member!r}: give MemberRemediation(...)"
            )
        env = stack_kwargs.get("env")
        region = getattr(env, "region", None)
        if isinstance(region, str) and not region.startswith("${Token"):
            settings.for_region(region)
        stack_kwargs.setdefault(
            "description",
            "crashcart member account: status-check alarms -> guarded diagnostic interrupts "
            f"({'dry run' if member.dry_run else 'armed'}), dumps to the central account",
        )
        super().__init__(
            scope,
            construct_id,
            tag=member.tag,
            fleet=member.fleet,
            dry_run=member.dry_run,
            alarm_window=member.alarm_window,
            guards=member.guards,
            breaker=member.breaker,
            full_triage=False,
            hold_backstop=member.hold_backstop,
            central=settings,
            agent_policy_name=member.agent_policy_name,
            **stack_kwargs,
        )
        #: The member settings (the hooks for the central bus and organisation breaker).
        self.settings = settings
        self.member = member
