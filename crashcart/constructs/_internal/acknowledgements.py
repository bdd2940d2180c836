"""Compliance acknowledgements, written next to what causes them (one finding or one rule of
several packs).

Every acknowledgement is placed on the narrowest construct (a role policy, one queue, the
table), with a reason a reviewer can check, and listed in the construct's docs page.
"""

from __future__ import annotations

from constructs import IConstruct

from crashcart.compliance import acknowledge


def acknowledge_finding(scope: IConstruct, finding: str, reason: str) -> None:
    """Acknowledge ``finding`` on ``scope`` (ids naming one ARN included).

    FACTS.md warns that cdk-nag 3.x rejected ids with several ``::`` (#2351 / #2359); with
    aws-cdk-lib 2.275 / cdk-nag 3.0.2 ``Validations.acknowledge`` takes them, and
    tests/compliance/test_reference_app_compliance.py pins that such an acknowledgement
    covers that one ARN only.
    """
    acknowledge(scope, finding, reason)


def acknowledge_packs(scope: IConstruct, rule: str, packs: tuple[str, ...], reason: str) -> None:
    """Acknowledge the same rule of several packs: ``<pack>::<pack>-<rule>`` for each."""
    for pack in packs:
        acknowledge_finding(scope, f"{pack}::{pack}-{rule}", reason)
