"""Props of the organisation rollout: every bad value fails with a ConfigurationError naming it."""

from __future__ import annotations

import dataclasses
from typing import Any

import aws_cdk as cdk
import pytest

from crashcart.constructs._internal.stackset_template import StackSetTemplateSynthesizer
from crashcart.constructs.member_account_settings import (
    CentralRegion,
    MemberAccountSettings,
    MemberRemediation,
)
from crashcart.constructs.organisation_asset_bucket import OrganisationAssetBucket
from crashcart.constructs.organisation_rollout import OrganisationRollout, RolloutPace
from crashcart.errors import ConfigurationError
from tests.support.organisation import (
    CENTRAL_ACCOUNT,
    ORGANISATION,
    PREFIX,
    central_region,
    settings,
)


def _settings(**changes: Any) -> MemberAccountSettings:
    values: dict[str, Any] = {
        "organisation_id": ORGANISATION,
        "central_account": CENTRAL_ACCOUNT,
        "regions": {"eu-west-1": central_region("eu-west-1")},
    }
    values.update(changes)
    return MemberAccountSettings(**values)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"organisation_id": "a1b2c3d4e5"}, "organisation_id='a1b2c3d4e5'"),
        ({"organisation_id": "o-short"}, "organisation_id='o-short'"),
        ({"central_account": "12345"}, "central_account='12345'"),
        ({"central_account": 222222222222}, "central_account=222222222222"),
        ({"regions": {}}, "at least one Region"),
        ({"regions": {"europe": central_region("eu-west-1")}}, "'europe' is not a Region"),
        ({"regions": {"eu-west-1": "bucket"}}, "give CentralRegion"),
        # an ARN of another Region: no cross-Region copies of dumps
        ({"regions": {"eu-west-1": central_region("eu-central-1")}}, "is in Region eu-central-1"),
        (
            {"regions": {"eu-west-1": central_region("eu-west-1", account="333333333333")}},
            "not the central account 222222222222",
        ),
    ],
)
def test_member_account_settings_refuse(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        _settings(**changes)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("dump_bucket_name", "Not_A_Bucket", "not an S3 bucket name"),
        ("dump_key_arn", "alias/crashcart", "dump_key_arn='alias/crashcart'"),
        ("event_bus_arn", "arn:aws:sqs:eu-west-1:222222222222:q", "event_bus_arn="),
        ("breaker_table_arn", "crashcart-org", "breaker_table_arn='crashcart-org'"),
        ("breaker_key_arn", "alias/breaker", "breaker_key_arn='alias/breaker'"),
        (
            "breaker_key_arn",
            "arn:aws:kms:eu-west-1:333333333333:key/1234",
            "in account 333333333333, not the central account",
        ),
    ],
)
def test_central_region_values_are_checked(field: str, value: str, message: str) -> None:
    central = dataclasses.replace(central_region("eu-west-1"), **{field: value})
    with pytest.raises(ConfigurationError, match=message):
        _settings(regions={"eu-west-1": central})


def test_settings_are_a_frozen_copy_and_name_a_missing_region() -> None:
    regions = {"eu-west-1": central_region("eu-west-1")}
    value = _settings(regions=regions)
    regions["us-east-1"] = central_region("us-east-1")
    assert list(value.regions) == ["eu-west-1"]
    with pytest.raises(TypeError):
        value.regions["us-east-1"] = central_region("us-east-1")  # type: ignore[index]
    assert value.for_region("eu-west-1").dump_bucket_name.endswith("eu-west-1")
    with pytest.raises(ConfigurationError, match="no central resources for Region 'us-east-1'"):
        value.for_region("us-east-1")


def test_tokens_are_not_checked() -> None:
    stack = cdk.Stack(cdk.App(), "S")
    token = cdk.Token.as_string(cdk.Fn.ref("Anything"))
    value = _settings(
        regions={
            "eu-west-1": CentralRegion(
                dump_bucket_name=token,
                dump_key_arn=token,
                event_bus_arn=token,
                breaker_table_arn=token,
                breaker_key_arn=token,
            )
        }
    )
    assert value.for_region("eu-west-1").dump_bucket_name == token
    del stack


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"fleet": ["i-0123456789abcdef0"]}, "cannot list instances"),
        ({"dry_run": "no"}, "dry_run='no'"),
        ({"agent_policy_name": "crash cart"}, "agent_policy_name='crash cart'"),
    ],
)
def test_member_remediation_refuses(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        MemberRemediation(**changes)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"max_concurrent_percentage": 0}, "max_concurrent_percentage=0"),
        ({"max_concurrent_percentage": 101}, "max_concurrent_percentage=101"),
        ({"failure_tolerance_percentage": -1}, "failure_tolerance_percentage=-1"),
        ({"failure_tolerance_percentage": True}, "failure_tolerance_percentage=True"),
        ({"regions_in_parallel": "yes"}, "regions_in_parallel='yes'"),
    ],
)
def test_rollout_pace_refuses(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        RolloutPace(**changes)


def _rollout(**changes: Any) -> OrganisationRollout:
    stack = cdk.Stack(cdk.App(), "Rollout")
    props: dict[str, Any] = {
        "settings": settings(),
        "targets": ["ou-ab12-34cd56ef"],
        "regions": ["eu-west-1"],
        "asset_bucket_prefix": PREFIX,
    }
    props.update(changes)
    return OrganisationRollout(stack, "Rollout", **props)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"targets": []}, "targets=\\[\\]: give a non-empty list"),
        ({"targets": "ou-ab12-34cd56ef"}, "give a non-empty list"),
        ({"targets": ["111111111111"]}, "'111111111111' is not an organisational unit id"),
        ({"targets": ["ou-ab12"]}, "'ou-ab12' is not an organisational unit id"),
        ({"targets": ["r-ab12", "ou-ab12-34cd56ef"]}, "the root already covers every OU"),
        ({"targets": ["ou-ab12-34cd56ef", "ou-ab12-34cd56ef"]}, "an entry is repeated"),
        ({"regions": []}, "regions=\\[\\]: give a non-empty list"),
        ({"regions": ["EU-WEST-1"]}, "'EU-WEST-1' is not a Region name"),
        ({"regions": ["ap-south-1"]}, "no central resources for Region 'ap-south-1'"),
        ({"asset_bucket_prefix": "Crashcart"}, "asset_bucket_prefix='Crashcart'"),
        ({"asset_bucket_prefix": "a" * 41}, "at most 63 characters"),
        ({"asset_bucket_prefix": "crash--cart"}, "asset_bucket_prefix='crash--cart'"),
        ({"settings": "o-a1b2c3d4e5"}, "settings='o-a1b2c3d4e5': give a MemberAccountSettings"),
        ({"call_as": "SELF"}, "call_as='SELF': give a CallAs"),
        ({"pace": {}}, "pace={}: give a RolloutPace"),
        ({"retain_stacks_on_account_removal": "no"}, "retain_stacks_on_account_removal='no'"),
        ({"stack_set_name": "1-crashcart"}, "stack_set_name='1-crashcart'"),
    ],
)
def test_organisation_rollout_refuses(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        _rollout(**changes)


def test_the_root_alone_is_a_target() -> None:
    assert _rollout(targets=["r-ab12"]).targets == ("r-ab12",)


def test_asset_buckets_need_a_concrete_region_and_an_organisation() -> None:
    agnostic = cdk.Stack(cdk.App(), "Agnostic")
    with pytest.raises(ConfigurationError, match="concrete Region"):
        OrganisationAssetBucket(
            agnostic, "Assets", bucket_prefix=PREFIX, organisation_id=ORGANISATION
        )
    regional = cdk.Stack(cdk.App(), "R", env=cdk.Environment(region="eu-west-1"))
    with pytest.raises(ConfigurationError, match="organisation_id='o-'"):
        OrganisationAssetBucket(regional, "Assets", bucket_prefix=PREFIX, organisation_id="o-")
    with pytest.raises(ConfigurationError, match="asset_bucket_prefix='x'"):
        OrganisationAssetBucket(regional, "B", bucket_prefix="x", organisation_id=ORGANISATION)


def test_the_member_template_refuses_docker_image_assets() -> None:
    app = cdk.App()
    deploying = cdk.Stack(app, "Deploying")
    synthesizer = StackSetTemplateSynthesizer(
        deploying_stack=deploying,
        copies_scope=deploying,
        bucket_prefix=PREFIX,
        regions=["eu-west-1"],
    )
    cdk.Stack(deploying, "Member", synthesizer=synthesizer)
    with pytest.raises(ConfigurationError, match="cannot use Docker image assets"):
        synthesizer.add_docker_image_asset(source_hash="abc", directory_name="image")


def test_a_member_template_too_big_for_a_template_url_fails_the_synth(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    from crashcart.constructs._internal import stackset_template
    from tests.support.organisation import rollout_app

    monkeypatch.setattr(stackset_template, "MAX_TEMPLATE_BYTES", 10_000)
    with pytest.raises(Exception, match="CloudFormation reads at most 10,000 bytes"):
        rollout_app(str(tmp_path))
