"""Compliance checks: the cdk-nag packs crashcart is held to, and how findings are acknowledged.

Acknowledgements go through aws-cdk-lib's own ``Validations`` API, so the library needs no
cdk-nag import at run time; only :func:`add_compliance_checks` (used by the reference app
and the tests) imports cdk-nag. An acknowledgement is written on the narrowest construct that
causes the finding, with a reason a reviewer can check.

checkov (run by the tests over the synthesized templates) reads its suppressions from each
resource's ``Metadata: checkov: skip: [{id, comment}]``; :func:`skip_checkov` writes them,
on the resource, with the same kind of reason.
"""

from __future__ import annotations

import re

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

#: checkov checks that test the same property as a cdk-nag finding: acknowledging the
#: finding skips the check, with the same reason, on the resources of that type in scope.
#: (CKV_AWS_116 Lambda DeadLetterConfig, CKV_AWS_115 ReservedConcurrentExecutions,
#: CKV_AWS_117 VpcConfig.)
CHECKOV_SAME_CHECK: dict[str, tuple[str, str]] = {
    "NIST.800.53.R5::NIST.800.53.R5-LambdaDLQ": ("CKV_AWS_116", "AWS::Lambda::Function"),
    "NIST.800.53.R5::NIST.800.53.R5-LambdaConcurrency": ("CKV_AWS_115", "AWS::Lambda::Function"),
    "NIST.800.53.R5::NIST.800.53.R5-LambdaInsideVPC": ("CKV_AWS_117", "AWS::Lambda::Function"),
}

_CHECKOV_ID = re.compile(r"CKV2?_[A-Z0-9]+_[0-9]+")


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
    if finding in CHECKOV_SAME_CHECK:
        check, resource_type = CHECKOV_SAME_CHECK[finding]
        _skip_checkov_on(_resources(scope, resource_type), check, reason)


def skip_checkov(
    scope: IConstruct, check: str, reason: str, *, resource_type: str | None = None
) -> None:
    """Tell checkov to skip ``check`` on the CloudFormation resource of ``scope``, with a reason.

    :param check: checkov's id, e.g. ``"CKV_AWS_18"``.
    :param reason: why the check does not apply or is accepted (checkov shows it as the
        suppression comment).
    :param resource_type: skip it on every resource of this CloudFormation type in
        ``scope`` instead of on ``scope``'s own resource (its default child).
    :raises ConfigurationError: for a malformed id, a short reason or no resource to skip on.
    """
    if resource_type is None:
        child = scope.node.default_child if not isinstance(scope, cdk.CfnResource) else scope
        targets = [child] if isinstance(child, cdk.CfnResource) else []
    else:
        targets = _resources(scope, resource_type)
    if not targets:
        raise ConfigurationError(
            f"skip_checkov({check!r}) on {scope.node.path}: no CloudFormation resource"
            f"{f' of type {resource_type}' if resource_type else ''} there to skip it on"
        )
    _skip_checkov_on(targets, check, reason)


def _resources(scope: IConstruct, resource_type: str) -> list[cdk.CfnResource]:
    return [
        child
        for child in scope.node.find_all()
        if isinstance(child, cdk.CfnResource) and child.cfn_resource_type == resource_type
    ]


def _skip_checkov_on(resources: list[cdk.CfnResource], check: str, reason: str) -> None:
    if not _CHECKOV_ID.fullmatch(check):
        raise ConfigurationError(
            f"checkov check {check!r} is not a checkov id such as 'CKV_AWS_18' or 'CKV2_AWS_62'"
        )
    if len(reason.strip()) < _MIN_REASON_LENGTH:
        raise ConfigurationError(
            f"checkov skip of {check!r} has reason {reason!r}: give a specific reason "
            f"(at least {_MIN_REASON_LENGTH} characters) that a reviewer can verify"
        )
    for resource in resources:
        metadata = resource.get_metadata("checkov") or {}
        skips = [skip for skip in metadata.get("skip", []) if skip.get("id") != check]
        skips.append({"id": check, "comment": reason})
        resource.add_metadata("checkov", {**metadata, "skip": skips})


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
