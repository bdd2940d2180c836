"""Compliance checks: the cdk-nag packs crashcart is held to, and how findings are acknowledged.

Acknowledgements go through aws-cdk-lib's own ``Validations`` API, so the library needs no
cdk-nag import at run time; only :func:`add_compliance_checks` (used by the reference app
and the tests) imports cdk-nag. An acknowledgement is written on the narrowest construct that
causes the finding, with a reason a reviewer can check.
"""

from __future__ import annotations

import aws_cdk as cdk
from constructs import IConstruct

from crashcart.errors import ConfigurationError

#: The cdk-nag packs every stack of the reference app must pass, by their report names.
NAG_PACKS = ("AwsSolutions", "NIST.800.53.R5", "HIPAA.Security", "PCI.DSS.321", "Serverless")

_MIN_REASON_LENGTH = 20

#: Findings of different packs that test the very same template property, so one reviewed
#: reason answers both: acknowledging the key acknowledges the values too.
#: - AwsSolutions-SQS3 (no dead-letter queue) flags a queue without a redrive policy that is
#:   no one's dead-letter queue; Serverless-SQSRedrivePolicy flags every queue without a
#:   redrive policy: whatever excuses the first (the queue is itself a terminal dead-letter
#:   store) excuses the second.
#: - The NIST and Serverless LambdaDLQ findings are the same cdk-nag rule (DeadLetterConfig).
SAME_CHECK: dict[str, tuple[str, ...]] = {
    "AwsSolutions::AwsSolutions-SQS3": ("Serverless::Serverless-SQSRedrivePolicy",),
    "NIST.800.53.R5::NIST.800.53.R5-LambdaDLQ": ("Serverless::Serverless-LambdaDLQ",),
}


def acknowledge(scope: IConstruct, finding: str, reason: str) -> None:
    """Acknowledge one compliance finding on ``scope`` (and its children) with a reason.

    :param finding: the id cdk-nag prints after "Acknowledge with", e.g.
        ``"AwsSolutions::AwsSolutions-SQS3"`` or, for a finding on one ARN,
        ``"AwsSolutions::AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:...]"``.
    :param reason: why the finding does not apply or is accepted; it is shown in the
        validation report and in docs, so say what a reviewer needs to know.

    A finding listed in :data:`SAME_CHECK` also acknowledges the findings of other packs
    that test the same property, with the same reason.
    """
    pack, sep, rule = finding.partition("::")
    if not sep or pack not in NAG_PACKS or not rule:
        raise ConfigurationError(
            f"finding {finding!r} is not of the form '<pack>::<rule id>[...]' with a pack "
            f"among {', '.join(NAG_PACKS)}"
        )
    if len(reason.strip()) < _MIN_REASON_LENGTH:
        raise ConfigurationError(
            f"acknowledgement of {finding!r} has reason {reason!r}: give a specific reason "
            f"(at least {_MIN_REASON_LENGTH} characters) that a reviewer can verify"
        )
    for same in (finding, *SAME_CHECK.get(finding, ())):
        cdk.Validations.of(scope).acknowledge(cdk.Acknowledgment(id=same, reason=reason))


def acknowledge_all(scope: IConstruct, findings: dict[str, str]) -> None:
    """Acknowledge several findings on one scope: ``{finding id: reason}``."""
    for finding, reason in findings.items():
        acknowledge(scope, finding, reason)


def add_compliance_checks(app: cdk.App) -> None:
    """Run the cdk-nag packs of :data:`NAG_PACKS` on every stack of ``app`` at synth.

    Any finding that is not acknowledged makes synth fail (``ValidationFailed``). Needs the
    ``nag`` extra (``pip install crashcart[nag]``).
    """
    import cdk_nag  # development / CI dependency: imported only here

    cdk.Validations.of(app).add_plugins(
        cdk_nag.AwsSolutionsChecks(),
        cdk_nag.NIST80053R5Checks(),
        cdk_nag.HIPAASecurityChecks(),
        cdk_nag.PCIDSS321Checks(),
        cdk_nag.ServerlessChecks(),
    )
