"""What the synthesized app relies on of AWS is named in docs/aws-assumptions.md.

The reference app is synthesized (without cdk-nag: this is a template-assertion app) and every
grant its constructs offer is exercised on probe roles, so policies that only exist once a user
calls ``grant_*`` are seen too; the organisation guardrail SCPs are rendered with exemptions.
Every service principal (role trust, resource and key policies, Lambda permissions), every
condition key, every policy variable and every native alarm action (``arn:aws:automate:...``)
found must appear, as literal text, in an entry of the register: a new one fails here until
someone writes down where AWS documents it and what breaks if it is wrong.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

import aws_cdk as cdk
import pytest
from aws_cdk import aws_iam as iam

from crashcart.constructs.diagnostic_interrupt_operator_policy import (
    DiagnosticInterruptOperatorPolicy,
    grant_diagnostic_interrupt,
)
from crashcart.constructs.kdump_image_pipeline import KdumpImagePipeline
from crashcart.guardrails import render_service_control_policies
from crashcart.stacks import build_reference_app
from crashcart.stacks.access import CrashcartAccessStack
from crashcart.stacks.image_pipeline import CrashcartImagePipelineStack
from crashcart.stacks.remediation import CrashcartRemediationStack
from crashcart.tools.reference_synth import cdk_json_context
from tests.support.aws_assumptions import (
    PolicyTerms,
    collect_document,
    collect_templates,
    read_register,
    unregistered,
)

_OTHER_ACCOUNT = "222222222222"


def _exercise_grants(
    images: CrashcartImagePipelineStack,
    access: CrashcartAccessStack,
    remediation: CrashcartRemediationStack,
) -> None:
    """Call every grant the reference stacks' constructs offer, on probe roles in their stacks."""
    reader = iam.Role(images, "AssumptionProbeReader", assumed_by=iam.AccountRootPrincipal())
    assert images.debug_symbols is not None
    images.debug_symbols.grant_read(reader)
    images.pipeline.grant_read_candidate_ami(reader)
    KdumpImagePipeline.grant_shared_ami_key_use(images.pipeline.key, [_OTHER_ACCOUNT])

    operator = iam.Role(access, "AssumptionProbeOperator", assumed_by=iam.AccountRootPrincipal())
    grant_diagnostic_interrupt(operator)
    DiagnosticInterruptOperatorPolicy(access, "AssumptionProbeMfaPolicy", require_mfa=True)

    instance_role = iam.Role(
        remediation,
        "AssumptionProbeInstanceRole",
        assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
    )
    analyst = iam.Role(remediation, "AssumptionProbeAnalyst", assumed_by=iam.AccountRootPrincipal())
    assert remediation.crash_dumps is not None
    remediation.crash_dumps.grant_agent(instance_role)
    remediation.crash_dumps.grant_read(analyst)
    remediation.crash_dumps.grant_evidence_write(analyst)
    remediation.remediation.grant_reset_breaker(analyst)
    remediation.remediation.grant_kill_switch(analyst)


@pytest.fixture(scope="module")
def deployed_terms(tmp_path_factory: pytest.TempPathFactory) -> PolicyTerms:
    outdir: Path = tmp_path_factory.mktemp("assumptions-assembly")
    app = cdk.App(outdir=str(outdir), context=cdk_json_context())
    images, access, remediation = build_reference_app(app)
    _exercise_grants(
        cast(CrashcartImagePipelineStack, images),
        cast(CrashcartAccessStack, access),
        cast(CrashcartRemediationStack, remediation),
    )
    assembly = app.synth()
    terms = collect_templates({stack.stack_name: stack.template for stack in assembly.stacks})
    policies = render_service_control_policies(
        break_glass_role_arns=[f"arn:aws:iam::{_OTHER_ACCOUNT}:role/break-glass"],
        platform_role_arns=[f"arn:aws:iam::{_OTHER_ACCOUNT}:role/platform"],
    )
    for policy in policies.all():
        collect_document(terms, policy.document, f"SCP/{policy.name}")
    return terms


@pytest.fixture(scope="module")
def register_text() -> str:
    return read_register().entry_text


def test_the_walker_sees_what_the_app_relies_on(deployed_terms: PolicyTerms) -> None:
    """Not vacuous: principals, keys and variables that are known to be there are found."""
    assert {"lambda.amazonaws.com", "events.amazonaws.com"} <= set(
        deployed_terms.service_principals
    )
    assert {"aws:SourceArn", "aws:ResourceTag/", "dynamodb:LeadingKeys"} <= set(
        deployed_terms.condition_keys
    )
    assert "${aws:userid}" in deployed_terms.policy_variables
    assert any(
        where.startswith("SCP/")
        for places in deployed_terms.condition_keys.values()
        for where in places
    )


def test_every_service_principal_is_registered(
    deployed_terms: PolicyTerms, register_text: str
) -> None:
    missing = unregistered(deployed_terms.service_principals, register_text)
    assert missing == {}, (
        "these service principals are trusted or allowed by the app but docs/aws-assumptions.md "
        "names them in no entry (principal -> where it is used)"
    )


def test_every_condition_key_is_registered(deployed_terms: PolicyTerms, register_text: str) -> None:
    missing = unregistered(deployed_terms.condition_keys, register_text)
    assert missing == {}, (
        "these condition keys are used by the app's policies but docs/aws-assumptions.md names "
        "them in no entry (key -> where it is used; tag keys are written 'aws:ResourceTag/')"
    )


def test_every_policy_variable_is_registered(
    deployed_terms: PolicyTerms, register_text: str
) -> None:
    missing = unregistered(deployed_terms.policy_variables, register_text)
    assert missing == {}, (
        "these policy variables are used by the app's policies but docs/aws-assumptions.md "
        "names them in no entry"
    )


def test_every_native_alarm_action_is_registered(
    deployed_terms: PolicyTerms, register_text: str
) -> None:
    missing = unregistered(deployed_terms.alarm_actions, register_text)
    assert missing == {}, (
        "these native alarm actions (arn:aws:automate:<region>:...) are used but "
        "docs/aws-assumptions.md names them in no entry"
    )
