"""The deployable access stack: who may send diagnostic interrupts, and tag-tamper protection."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from constructs import Construct

from crashcart.constructs.diagnostic_interrupt_operator_policy import (
    DiagnosticInterruptOperatorPolicy,
)
from crashcart.opt_in import OptInTag


class CrashcartAccessStack(cdk.Stack):
    """The operator managed policy for on-call / break-glass roles, with tamper protection.

    The stack deploys one customer managed policy (:class:`DiagnosticInterruptOperatorPolicy`)
    and exports its ARN; attach it to the roles your identity provider maps on-call people to
    (or pass them to the construct directly in your own stack). The remediation function gets
    its own, narrower grant from the remediation construct.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        tag: OptInTag = OptInTag(),  # noqa: B008 - frozen, immutable value
        require_mfa: bool = False,
        **stack_kwargs: Any,
    ) -> None:
        """Create the stack.

        :param tag: the opt-in tag. Default: ``crashcart:diagnostic-interrupt`` = ``enabled``.
        :param require_mfa: require MFA for the interrupt. Default: ``False`` (federated
            sessions often carry no MFA flag; see docs/access.md).
        :param stack_kwargs: passed to ``cdk.Stack`` (``env``, ``description``, ...).
        """
        super().__init__(scope, construct_id, **stack_kwargs)
        self.operator_policy = DiagnosticInterruptOperatorPolicy(
            self, "OperatorPolicy", tag=tag, require_mfa=require_mfa
        )
        pass
        cdk.CfnOutput(
            self,
            "OperatorPolicyArn",
            value=self.operator_policy.managed_policy_arn,
            description="Attach to on-call / break-glass roles that may interrupt opted-in "
            "instances",
        )
