"""Where the pipeline's AMIs go (Regions, accounts, launch templates, the candidate-AMI
parameter) and how long they stay (the deprecation lifecycle policy).

Private to :mod:`crashcart.constructs.kdump_image_pipeline`.
"""

from __future__ import annotations

from collections.abc import Sequence

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_imagebuilder as imagebuilder
from aws_cdk import aws_kms as kms
from constructs import Construct

from crashcart.components.families import Architecture, Family, FamilyInfo
from crashcart.constructs._image_pipeline_props import DistributionTarget
from crashcart.constructs._internal.image_pipeline_components import resource_name
from crashcart.constructs._internal.image_pipeline_iam import (
    PIPELINE_TAG,
    grant_shared_ami_key_use,
    lifecycle_role,
)
from crashcart.errors import ConfigurationError

_Distribution = imagebuilder.CfnDistributionConfiguration


def ami_distribution(
    *, name: str, description: str, kms_key_arn: str, ami_tags: dict[str, str], accounts: list[str]
) -> dict[str, object]:
    """An ``AmiDistributionConfiguration`` (shared with ``accounts`` when there are any)."""
    config: dict[str, object] = {
        "Name": name,
        "Description": description,
        "KmsKeyId": kms_key_arn,
        "AmiTags": ami_tags,
    }
    if accounts:
        config["LaunchPermissionConfiguration"] = {"UserIds": accounts}
    return config


def distribution_configuration(
    scope: Construct,
    *,
    targets: Sequence[DistributionTarget],
    key: kms.IKey,
    family: Family,
    architecture: Architecture,
    info: FamilyInfo,
    ami_tags: dict[str, str],
    candidate_ami_parameter_name: str,
    launch_templates: Sequence[ec2.CfnLaunchTemplate],
    set_launch_template_default: bool,
) -> imagebuilder.CfnDistributionConfiguration:
    """One distribution per target: the AMI encrypted with the Region's key, shared with the
    target's accounts (whose key use is granted), its id in the candidate parameter, and
    new launch-template versions in the build Region."""
    stack = cdk.Stack.of(scope)
    distributions = []
    for target in targets:
        same_region = cdk.Token.is_unresolved(target.region) or (target.region == stack.region)
        target_key = target.kms_key
        if target_key is None:
            if not same_region:
                raise ConfigurationError(
                    f"distribution to {target.region}: give a kms_key for that Region (a "
                    "KMS key is regional; without one the AMI copy cannot be encrypted with "
                    "a customer key and shared copies will not launch)"
                )
            target_key = key
        if target.accounts:
            grant_shared_ami_key_use(target_key, target.accounts)
        distributions.append(
            _Distribution.DistributionProperty(
                region=target.region,
                # AmiDistributionConfiguration is untyped JSON in the CloudFormation
                # schema: CDK passes it through as is, so the keys are PascalCase here.
                ami_distribution_configuration=ami_distribution(
                    # aws-assumption: imagebuilder-distribution-settings
                    name=f"crashcart-{family}-{architecture}-{{{{ imagebuilder:buildDate }}}}",
                    description=f"crashcart kdump-ready {info.label} ({architecture}), candidate",
                    kms_key_arn=target_key.key_arn,
                    ami_tags=ami_tags,
                    accounts=list(target.accounts),
                ),
                ssm_parameter_configurations=[
                    _Distribution.SsmParameterConfigurationProperty(
                        parameter_name=candidate_ami_parameter_name,
                        # aws-assumption: imagebuilder-distribution-settings
                        data_type="aws:ec2:image",
                    )
                ],
                launch_template_configurations=[
                    _Distribution.LaunchTemplateConfigurationProperty(
                        launch_template_id=template.ref,
                        set_default_version=set_launch_template_default,
                    )
                    for template in launch_templates
                ]
                if launch_templates and same_region
                else None,
            )
        )
    return imagebuilder.CfnDistributionConfiguration(
        scope,
        "Distribution",
        name=resource_name(scope, "distribution"),
        description="crashcart: encrypted AMIs, candidate parameter per Region",
        distributions=distributions,
    )


def deprecation_policy(
    scope: Construct, *, deprecate_after_days: float, pipeline_tag_value: str
) -> imagebuilder.CfnLifecyclePolicy:
    """Deprecate this pipeline's AMIs older than ``deprecate_after_days`` (newest 2 kept)."""
    role = lifecycle_role(scope)
    return imagebuilder.CfnLifecyclePolicy(
        scope,
        "Lifecycle",
        name=resource_name(scope, "lifecycle"),
        description="crashcart: deprecate old kdump-ready AMIs of this pipeline",
        execution_role=role.role_arn,
        resource_type="AMI_IMAGE",
        policy_details=[
            imagebuilder.CfnLifecyclePolicy.PolicyDetailProperty(
                action=imagebuilder.CfnLifecyclePolicy.ActionProperty(type="DEPRECATE"),
                filter=imagebuilder.CfnLifecyclePolicy.FilterProperty(
                    type="AGE", value=deprecate_after_days, unit="DAYS", retain_at_least=2
                ),
            )
        ],
        resource_selection=imagebuilder.CfnLifecyclePolicy.ResourceSelectionProperty(
            tag_map={PIPELINE_TAG: pipeline_tag_value}
        ),
    )
