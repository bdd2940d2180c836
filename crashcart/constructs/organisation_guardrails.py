"""OrganisationGuardrails: crashcart's SCPs, attached to targets or handed over for merging.

:mod:`crashcart.guardrails` renders two service control policies (deny interrupts of
instances without the opt-in tag; protect the tag). An organisation can take them two ways:

- **merge (the default)**: most organisations already use their SCP slots, and AWS allows at
  most 5 SCPs attached directly to each root, OU and account (the default ``FullAWSAccess``
  counts). ``python -m crashcart.guardrails --merge`` prints the statements, with their sizes,
  to paste into an existing SCP; this construct then deploys nothing and exposes the
  statements as ``statements``;
- **attach** (``attach=True``, from the management account or a delegated administrator for
  Organizations policies): one ``AWS::Organizations::Policy`` of type
  ``SERVICE_CONTROL_POLICY`` per document, attached to the given targets. crashcart cannot
  read how many SCPs a target already has at synth (that is the organisation's state, and a
  synth must not call AWS), so every target comes with that number
  (:class:`GuardrailTarget`) and the construct refuses a target that would go past the quota
  - it fails closed: without the number it attaches nothing.

Both quotas are checked at synth: 5 SCPs attached per target and 5,120 characters per SCP
document (aws-assumption: scp-quotas). SCPs never restrict the management account.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from aws_cdk import aws_organizations as organizations
from constructs import Construct

from crashcart.errors import ConfigurationError
from crashcart.guardrails import (
    GuardrailPolicies,
    check_service_control_policy,
    render_service_control_policies,
)

__all__ = ["MAX_SCPS_PER_TARGET", "GuardrailTarget", "OrganisationGuardrails"]

#: AWS Organizations: at most 5 SCPs attached directly to a root, OU or account.
# aws-assumption: scp-quotas
MAX_SCPS_PER_TARGET: Final = 5
#: A root (``r-``), an OU (``ou-``) or an account (12 digits): what an SCP attaches to.
_TARGET: Final = re.compile(r"r-[0-9a-z]{4,32}|ou-[0-9a-z]{4,32}-[a-z0-9]{8,32}|[0-9]{12}")


@dataclass(frozen=True, kw_only=True)
class GuardrailTarget:
    """A root, OU or account to attach the guardrails to, and what it already has.

    :param target_id: ``r-...``, ``ou-...`` or a 12-digit account id.
    :param attached_scps: SCPs attached *directly* to it now, ``FullAWSAccess`` included
        (``aws organizations list-policies-for-target --filter SERVICE_CONTROL_POLICY
        --target-id <id>``); at least 1, since every target has one while SCPs are enabled.
    """

    target_id: str
    attached_scps: int

    def __post_init__(self) -> None:
        if not isinstance(self.target_id, str) or not _TARGET.fullmatch(self.target_id):
            raise ConfigurationError(
                f"GuardrailTarget target_id={self.target_id!r}: give a root ('r-ab12'), an "
                "OU ('ou-ab12-34cd56ef') or a 12-digit account id"
            )
        count = self.attached_scps
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 5:
            raise ConfigurationError(
                f"GuardrailTarget {self.target_id} attached_scps={count!r}: give the number "
                f"of SCPs attached directly to it now, 1-{MAX_SCPS_PER_TARGET} (FullAWSAccess "
                "counts; every target has at least one while SCPs are enabled)"
            )


class OrganisationGuardrails(Construct):
    """crashcart's SCPs: statements to merge (default) or policies attached to targets.

    Attributes: ``policies`` (the rendered :class:`~crashcart.guardrails.GuardrailPolicies`),
    ``statements`` (every statement, to merge), ``scps`` (the ``CfnPolicy`` resources; empty
    unless ``attach``).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        policies: GuardrailPolicies | None = None,
        attach: bool = False,
        targets: Sequence[GuardrailTarget] = (),
    ) -> None:
        """
        :param policies: the rendered SCPs. Default: ``render_service_control_policies()``
            (the default tag, no exempt roles: name your platform roles there).
        :param attach: create the SCPs and attach them to ``targets``. Default: False - deploy
            nothing; merge ``statements`` into your own SCPs.
        :param targets: with ``attach``, where to attach them and how many SCPs each has now.
        :raises ConfigurationError: ``attach`` without targets, a target that would exceed 5
            SCPs, a repeated target, targets without ``attach``, or a document over 5,120
            characters.
        """
        if not isinstance(attach, bool):
            raise ConfigurationError(f"OrganisationGuardrails attach={attach!r}: True or False")
        if policies is None:
            policies = render_service_control_policies()
        if not isinstance(policies, GuardrailPolicies):
            raise ConfigurationError(
                f"OrganisationGuardrails policies={policies!r}: give "
                "crashcart.guardrails.render_service_control_policies(...)"
            )
        for policy in policies.all():
            # aws-assumption: scp-quotas
            check_service_control_policy(policy)
        targets = _check_targets(targets, attach, len(policies.all()))
        super().__init__(scope, construct_id)
        self.policies = policies
        self.statements: list[dict[str, Any]] = [
            statement for policy in policies.all() for statement in policy.document["Statement"]
        ]
        self.scps: list[organizations.CfnPolicy] = []
        if attach:
            for key, policy in (("Interrupt", policies.interrupt), ("Tagging", policies.tagging)):
                self.scps.append(
                    organizations.CfnPolicy(
                        self,
                        key,
                        name=policy.name,
                        description=policy.description,
                        type="SERVICE_CONTROL_POLICY",
                        # an object, not a string: CloudFormation detects drift on objects
                        content=policy.document,
                        target_ids=[target.target_id for target in targets],
                    )
                )


def _check_targets(
    targets: Sequence[GuardrailTarget], attach: bool, adding: int
) -> list[GuardrailTarget]:
    if isinstance(targets, (str, GuardrailTarget)) or not isinstance(targets, Sequence):
        raise ConfigurationError(
            f"OrganisationGuardrails targets={targets!r}: give a list of GuardrailTarget(...)"
        )
    for target in targets:
        if not isinstance(target, GuardrailTarget):
            raise ConfigurationError(
                f"OrganisationGuardrails targets: {target!r} is not a GuardrailTarget(...): "
                "crashcart needs each target's current SCP count to stay within the quota"
            )
    ids = [target.target_id for target in targets]
    if len(set(ids)) != len(ids):
        raise ConfigurationError(f"OrganisationGuardrails targets: {ids} repeat a target")
    if not attach:
        if targets:
            raise ConfigurationError(
                "OrganisationGuardrails targets were given without attach=True: nothing is "
                "attached by default (merge the statements); pass attach=True to attach"
            )
        return []
    if not targets:
        raise ConfigurationError(
            "OrganisationGuardrails attach=True needs targets: GuardrailTarget(target_id=..., "
            "attached_scps=<SCPs attached now>) for each root, OU or account"
        )
    for target in targets:
        if target.attached_scps + adding > MAX_SCPS_PER_TARGET:
            raise ConfigurationError(
                f"OrganisationGuardrails: {target.target_id} has {target.attached_scps} SCPs "
                f"attached; {adding} more would exceed AWS Organizations' quota of "
                f"{MAX_SCPS_PER_TARGET} per root, OU or account. Merge the statements into an "
                "existing SCP instead (python -m crashcart.guardrails --merge), or attach to "
                "a target with room"
            )
    return list(targets)
