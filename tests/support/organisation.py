"""An organisation for the rollout tests: settings of a central account and a synthesized
rollout app (the StackSet stack, the asset bucket stacks, the member template)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aws_cdk as cdk

from crashcart.constructs.member_account_settings import CentralRegion, MemberAccountSettings
from tests.support.remediation import new_app

ORGANISATION = "o-a1b2c3d4e5"
CENTRAL_ACCOUNT = "222222222222"
DEPLOYING_ACCOUNT = "111111111111"
REGIONS = ("eu-west-1", "us-east-1")
TARGETS = ("ou-ab12-34cd56ef",)
PREFIX = f"crashcart-assets-{DEPLOYING_ACCOUNT}"


def central_region(region: str, account: str = CENTRAL_ACCOUNT) -> CentralRegion:
    return CentralRegion(
        dump_bucket_name=f"crashcart-central-dumps-{region}",
        dump_key_arn=f"arn:aws:kms:{region}:{account}:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        event_bus_arn=f"arn:aws:events:{region}:{account}:event-bus/crashcart",
        breaker_table_arn=f"arn:aws:dynamodb:{region}:{account}:table/crashcart-org-breaker",
        breaker_key_arn=f"arn:aws:kms:{region}:{account}:key/5678efab-12ab-34cd-56ef-1234567890ab",
    )


def settings(regions: tuple[str, ...] = REGIONS) -> MemberAccountSettings:
    return MemberAccountSettings(
        organisation_id=ORGANISATION,
        central_account=CENTRAL_ACCOUNT,
        regions={region: central_region(region) for region in regions},
    )


@dataclass
class RolloutAssembly:
    """A synthesized rollout app."""

    outdir: Path
    member_template_file: str
    assets: list[str]

    def template(self, name: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.outdir / name).read_text())
        return data

    @property
    def rollout(self) -> dict[str, Any]:
        return self.template("CrashcartRollout.template.json")

    @property
    def member(self) -> dict[str, Any]:
        return self.template(self.member_template_file)

    def asset_bucket(self, region: str) -> dict[str, Any]:
        return self.template(f"CrashcartAssets-{region}.template.json")

    def path(self, name: str) -> Path:
        return self.outdir / name


def rollout_app(outdir: str, *, nag: bool = False, **rollout_props: Any) -> RolloutAssembly:
    """The rollout stack and one asset bucket stack per Region, synthesized into ``outdir``."""
    from crashcart.compliance import add_compliance_checks
    from crashcart.constructs.organisation_asset_bucket import OrganisationAssetBucket
    from crashcart.constructs.organisation_rollout import OrganisationRollout

    app = new_app(outdir)
    stack = cdk.Stack(
        app,
        "CrashcartRollout",
        env=cdk.Environment(account=DEPLOYING_ACCOUNT, region=REGIONS[0]),
    )
    for region in REGIONS:
        buckets = cdk.Stack(
            app,
            f"CrashcartAssets-{region}",
            env=cdk.Environment(account=DEPLOYING_ACCOUNT, region=region),
        )
        OrganisationAssetBucket(
            buckets, "Assets", bucket_prefix=PREFIX, organisation_id=ORGANISATION
        )
        stack.add_dependency(buckets)
    props: dict[str, Any] = {
        "settings": settings(),
        "targets": list(TARGETS),
        "regions": list(REGIONS),
        "asset_bucket_prefix": PREFIX,
        **rollout_props,
    }
    rollout = OrganisationRollout(stack, "Rollout", **props)
    if nag:
        add_compliance_checks(app)
    app.synth()
    return RolloutAssembly(
        outdir=Path(outdir),
        member_template_file=rollout.member_stack.template_file,
        assets=rollout.assets,
    )
