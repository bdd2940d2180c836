"""crashcart for an organisation: docs/organisation/rollout.md shows this file verbatim and
tests/infra/test_organisation_example.py synthesizes it.

Deployed with ``cdk deploy --all`` from the management account: one asset bucket per target
Region, then the StackSet that puts the member stack in every account of the OU and Region,
and the member stack as an ordinary stack in the management account itself (StackSets skip it).
"""

from __future__ import annotations

import aws_cdk as cdk

from crashcart import (
    CentralRegion,
    MemberAccountSettings,
    MemberRemediation,
    OrganisationAssetBucket,
    OrganisationRollout,
)
from crashcart.stacks.organisation_member import OrganisationMemberStack

MANAGEMENT = "111111111111"  # deploys the StackSet
CENTRAL = "222222222222"  # dumps, incident view, triage (OrganisationCentral)
ORGANISATION = "o-a1b2c3d4e5"
REGIONS = ["eu-west-1", "us-east-1"]
ASSET_PREFIX = f"crashcart-stackset-assets-{MANAGEMENT}"  # bucket names are global


def central(region: str) -> CentralRegion:
    """The central account's resources in ``region`` (its stacks' outputs)."""
    return CentralRegion(
        dump_bucket_name=f"crashcart-dumps-{CENTRAL}-{region}",
        dump_key_arn=f"arn:aws:kms:{region}:{CENTRAL}:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        event_bus_arn=f"arn:aws:events:{region}:{CENTRAL}:event-bus/crashcart",
        breaker_table_arn=f"arn:aws:dynamodb:{region}:{CENTRAL}:table/crashcart-organisation",
        breaker_key_arn=f"arn:aws:kms:{region}:{CENTRAL}:key/5678efab-12ab-34cd-56ef-1234567890ab",
    )


def build(app: cdk.App) -> list[cdk.Stack]:
    settings = MemberAccountSettings(
        organisation_id=ORGANISATION,
        central_account=CENTRAL,
        regions={region: central(region) for region in REGIONS},
    )
    member = MemberRemediation(dry_run=True)  # the same settings in every account

    rollout = cdk.Stack(
        app, "CrashcartRollout", env=cdk.Environment(account=MANAGEMENT, region=REGIONS[0])
    )
    stacks = [rollout]
    for region in REGIONS:
        # one bucket per target Region for the member's Lambda code, deployed first
        assets = cdk.Stack(
            app, f"CrashcartAssets-{region}", env=cdk.Environment(account=MANAGEMENT, region=region)
        )
        OrganisationAssetBucket(
            assets, "Assets", bucket_prefix=ASSET_PREFIX, organisation_id=ORGANISATION
        )
        rollout.add_stack_dependency(assets)
        # the management account, which service-managed StackSets never deploy to
        stacks += [
            assets,
            OrganisationMemberStack(
                app,
                f"CrashcartManagementAccount-{region}",
                settings=settings,
                member=member,
                env=cdk.Environment(account=MANAGEMENT, region=region),
            ),
        ]
    OrganisationRollout(
        rollout,
        "Rollout",
        settings=settings,
        targets=["ou-ab12-34cd56ef"],  # or ["r-ab12"]: the whole organisation
        regions=REGIONS,
        asset_bucket_prefix=ASSET_PREFIX,
        member=member,
    )
    return stacks
