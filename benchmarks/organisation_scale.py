"""Benchmark - organisation scale: 50 accounts x 4 Regions x 2,000 instances.

What is synthesized (real templates, counted):

- the member stack every account and Region runs (``OrganisationMemberStack``, as the
  StackSet's template): next to a workload stack that declares the fleet for real (an Auto
  Scaling group of 10 and of 2,000 instances, tagged for opt-in), in both fleet modes. Its
  resources must not depend on the fleet: the template is compared byte for byte;
- the rollout stack (``OrganisationRollout``) for the 4 Regions: its size depends on the
  Regions (one asset copy each), not on the accounts (the targets are OUs).

What is modelled (arithmetic from documented quotas, said so in the report): the central
account's resources as a function of the number of accounts, for the two topologies of
issue 23 - per-account remediation (built: the central account's per-Region resources do not
grow with accounts, its policies admit the organisation by ``aws:PrincipalOrgID``) and central
monitoring (documented, not built: Metrics Insights alarms in the monitoring account, one per
account or one per shard of 10,000 scanned metrics, against the default quota of 200 such
alarms per Region).

The organisation-wide burst (simulated with the real breaker code on moto's server on
127.0.0.1): every account of a Region reports impaired instances at once, interleaved; each
candidate goes through the remediation's ``OrganisationBreaker.take`` against that Region's
one breaker table, and only ``TAKEN`` slots would go on to interrupt. The first
``BURST_CANDIDATES_PER_ACCOUNT`` candidates of each account are simulated (all 2,000 would
be the same read-then-refuse once the breaker is open: it stays open until ``quiet`` passes
with no candidate).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from typing import Any, Final

from benchmarks.common import SkipError, check, log, table

NAME = "organisation_scale"
TITLE = "Organisation scale: 50 accounts x 4 Regions x 2,000 instances"

ACCOUNTS: Final = 50
REGIONS: Final = ("eu-west-1", "eu-central-1", "us-east-1", "us-west-2")
INSTANCES_PER_ACCOUNT_REGION: Final = 2_000
FLEET_SIZES: Final = (10, INSTANCES_PER_ACCOUNT_REGION)
#: Modelled organisation sizes (accounts) for the central-account table.
ACCOUNT_COUNTS_FULL: Final = (1, 10, 50, 100, 200, 500)
ACCOUNT_COUNTS_SMOKE: Final = (1, 50, 500)
#: Metrics Insights: at most 10,000 metrics scanned per query (aws-assumption:
#: metrics-insights-fleet-query), one StatusCheckFailed_Instance metric per instance.
METRICS_PER_QUERY: Final = 10_000
#: The default quota of Metrics Insights alarms per account and Region.
INSIGHTS_ALARM_QUOTA: Final = 200
_CENTRAL: Final = "222222222222"
_DEPLOYING: Final = "111111111111"
_ORG: Final = "o-a1b2c3d4e5"

#: Candidates per account simulated in the burst (full run / smoke run). One per account
#: still takes both paths of every Region's breaker (50 accounts past a threshold of 20:
#: taken, then open) at half the smoke run's DynamoDB calls (issue 24).
BURST_CANDIDATES_PER_ACCOUNT: Final = 10
BURST_CANDIDATES_PER_ACCOUNT_SMOKE: Final = 1
#: The organisation breaker's default threshold (``OrganisationLink``).
BURST_THRESHOLD: Final = 20


def organisation_burst(per_account: int) -> dict[str, Any]:
    """Every account of every Region at once through its Region's organisation breaker."""
    import boto3

    from benchmarks._aws import moto_server
    from crashcart.functions.remediation.org_breaker import (
        OrganisationBreaker,
        OrganisationBreakerSettings,
        SlotOutcome,
    )

    started = time.perf_counter()
    now_epoch = 1_800_000_000
    results: dict[str, dict[str, int]] = {}
    with moto_server() as url:
        for region in REGIONS:
            client = boto3.client(
                "dynamodb",
                endpoint_url=url,
                region_name=region,
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
            )
            table = f"crashcart-org-breaker-{region}"
            client.create_table(
                TableName=table,
                KeySchema=[
                    {"AttributeName": "pk", "KeyType": "HASH"},
                    {"AttributeName": "sk", "KeyType": "RANGE"},
                ],
                AttributeDefinitions=[
                    {"AttributeName": "pk", "AttributeType": "S"},
                    {"AttributeName": "sk", "AttributeType": "S"},
                ],
                BillingMode="PAY_PER_REQUEST",
            )
            settings = OrganisationBreakerSettings(
                table_arn=table,
                threshold=BURST_THRESHOLD,
                window_seconds=900,
                quiet_seconds=3600,
            )
            breakers = [
                OrganisationBreaker(
                    client, settings, account=f"{100000000000 + n}", sleep=lambda _: None
                )
                for n in range(ACCOUNTS)
            ]
            counts = {outcome.value: 0 for outcome in SlotOutcome}
            for index in range(per_account):
                for account, breaker in enumerate(breakers):
                    slot = breaker.take(
                        now_epoch=now_epoch + index,
                        now_iso="2027-01-15T08:00:00Z",
                        instance_id=f"i-{account:08x}{index:09x}",
                    )
                    counts[slot.outcome.value] += 1
            results[region] = counts
    return {
        "per_account": per_account,
        "candidates": ACCOUNTS * len(REGIONS) * per_account,
        "threshold": BURST_THRESHOLD,
        "regions": results,
        "interrupts": sum(r[SlotOutcome.TAKEN.value] for r in results.values()),
        "seconds": round(time.perf_counter() - started, 2),
    }


def _settings() -> Any:
    from crashcart.constructs.member_account_settings import CentralRegion, MemberAccountSettings

    return MemberAccountSettings(
        organisation_id=_ORG,
        central_account=_CENTRAL,
        regions={
            region: CentralRegion(
                dump_bucket_name=f"crashcart-central-dumps-{region}",
                dump_key_arn=f"arn:aws:kms:{region}:{_CENTRAL}:key/1234abcd-12ab-34cd-56ef-1234567890ab",
                event_bus_arn=f"arn:aws:events:{region}:{_CENTRAL}:event-bus/crashcart",
                breaker_table_arn=f"arn:aws:dynamodb:{region}:{_CENTRAL}:table/crashcart-org",
                breaker_key_arn=f"arn:aws:kms:{region}:{_CENTRAL}:key/5678efab-12ab-34cd-56ef-1234567890ab",
            )
            for region in REGIONS
        },
    )


def _digest(template: dict[str, Any]) -> dict[str, Any]:
    body = json.dumps(template, sort_keys=True)
    return {
        "resources": len(template["Resources"]),
        "bytes": len(json.dumps(template, indent=1).encode()),
        "sha256": hashlib.sha256(body.encode()).hexdigest()[:16],
    }


def _member(mode: str, capacity: int) -> dict[str, Any]:
    """The member template next to a workload stack that declares ``capacity`` instances."""
    import aws_cdk as cdk

    from benchmarks.fleet_scale import declare_fleet, declared_capacity
    from benchmarks.template_scale import _context
    from crashcart import FleetWatch, ManagedAlarms, MemberRemediation, OptInTag
    from crashcart.stacks.organisation_member import OrganisationMemberStack

    started = time.perf_counter()
    app = cdk.App(context=_context())
    declare_fleet(app, capacity)
    tag = OptInTag()
    fleet = FleetWatch() if mode == "fleet" else ManagedAlarms()
    # environment-agnostic, as the StackSet's template is
    OrganisationMemberStack(
        app, "Member", settings=_settings(), member=MemberRemediation(tag=tag, fleet=fleet)
    )
    assembly = app.synth()
    template = assembly.get_stack_by_name("Member").template
    # the bootstrap-version parameter and rule of an ordinary stack are not resources
    return {
        **_digest(template),
        "declared_capacity": declared_capacity(assembly),
        "seconds": round(time.perf_counter() - started, 2),
    }


def _rollout(regions: tuple[str, ...]) -> dict[str, Any]:
    import tempfile

    import aws_cdk as cdk

    from benchmarks.template_scale import _context
    from crashcart import OrganisationRollout

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="crashcart-org-bench-") as outdir:
        app = cdk.App(outdir=outdir, context=_context())
        stack = cdk.Stack(
            app, "Rollout", env=cdk.Environment(account=_DEPLOYING, region=regions[0])
        )
        rollout = OrganisationRollout(
            stack,
            "Rollout",
            settings=_settings(),
            targets=["ou-ab12-34cd56ef"],
            regions=list(regions),
            asset_bucket_prefix=f"crashcart-assets-{_DEPLOYING}",
        )
        assembly = app.synth()
        rollout_template = assembly.get_stack_by_name("Rollout").template
        with open(f"{outdir}/{rollout.member_stack.template_file}", encoding="utf-8") as file:
            member_template = json.load(file)
    return {
        "rollout": _digest(rollout_template),
        "member": _digest(member_template),
        "assets": len(rollout.assets),
        "seconds": round(time.perf_counter() - started, 2),
    }


def central_alarms(accounts: int, instances: int) -> dict[str, Any]:
    """Modelled Metrics Insights alarms per Region in a central monitoring account."""
    per_account = accounts  # one alarm per account: GROUP BY account and instance
    per_account_fits = instances <= METRICS_PER_QUERY
    sharded = max(1, math.ceil(accounts * instances / METRICS_PER_QUERY))
    return {
        "per_account_alarms": per_account,
        "per_account_within_quota": per_account <= INSIGHTS_ALARM_QUOTA and per_account_fits,
        "sharded_alarms": sharded,
        "sharded_within_quota": sharded <= INSIGHTS_ALARM_QUOTA,
    }


def run(ctx: Any) -> dict[str, Any]:
    try:
        from crashcart.constructs.organisation_rollout import OrganisationRollout  # noqa: F401
    except ImportError as error:
        raise SkipError(f"crashcart cannot be imported: {error}") from error
    members: dict[str, dict[str, Any]] = {}
    for mode in ("fleet", "managed"):
        for size in FLEET_SIZES:
            log(f"{NAME}: member stack, {mode} mode, {size} instances declared")
            members[f"{mode}-{size}"] = _member(mode, size)
    log(f"{NAME}: rollout stack for {len(REGIONS)} Regions")
    rollout = _rollout(REGIONS)
    log(f"{NAME}: rollout stack for 1 Region")
    rollout_one = _rollout(REGIONS[:1])

    per_account = BURST_CANDIDATES_PER_ACCOUNT_SMOKE if ctx.smoke else BURST_CANDIDATES_PER_ACCOUNT
    log(f"{NAME}: organisation-wide burst, {per_account} candidates per account and Region")
    burst = organisation_burst(per_account)

    stack_instances = ACCOUNTS * len(REGIONS)
    member_resources = members[f"fleet-{INSTANCES_PER_ACCOUNT_REGION}"]["resources"]
    counts = ACCOUNT_COUNTS_SMOKE if ctx.smoke else ACCOUNT_COUNTS_FULL
    model = {
        str(n): {
            "per_account_remediation": {
                # OrganisationCentral's per-Region resources: none of them is per account
                "central_resources_per_account": 0,
                "central_insights_alarms": 0,
                "member_insights_alarms_per_account_region": 1,
            },
            "central_monitoring": central_alarms(n, INSTANCES_PER_ACCOUNT_REGION),
        }
        for n in counts
    }
    rows = []
    for n in counts:
        central = model[str(n)]["central_monitoring"]
        rows.append(
            [
                n,
                "0 (constant)",
                f"{central['per_account_alarms']} "
                f"({'within' if central['per_account_within_quota'] else 'over'} 200)",
                f"{central['sharded_alarms']} "
                f"({'within' if central['sharded_within_quota'] else 'over'} 200)",
            ]
        )
    sizes_equal = all(
        members[f"{mode}-{FLEET_SIZES[0]}"]["sha256"]
        == members[f"{mode}-{FLEET_SIZES[1]}"]["sha256"]
        for mode in ("fleet", "managed")
    )
    checks = [
        check(
            "every size really declares its instances",
            all(members[f"fleet-{s}"]["declared_capacity"] == s for s in FLEET_SIZES),
        ),
        check(
            "member template identical for 10 and 2,000 instances (both fleet modes)",
            sizes_equal,
        ),
        check(
            "the StackSet's member template is the member stack (same resources)",
            rollout["member"]["resources"] == member_resources,
            f"{rollout['member']['resources']} vs {member_resources}",
        ),
        check(
            "the rollout stack grows by the asset copies of each Region only",
            rollout["rollout"]["resources"] - rollout_one["rollout"]["resources"]
            == 2 * (len(REGIONS) - 1),
            f"{rollout_one['rollout']['resources']} -> {rollout['rollout']['resources']}",
        ),
        check(
            "organisation-wide burst: each Region's breaker lets exactly threshold - 1 "
            "candidates through, every other is refused (none unavailable)",
            all(
                r["taken"] == BURST_THRESHOLD - 1
                and r["open"] == ACCOUNTS * per_account - (BURST_THRESHOLD - 1)
                and r["unavailable"] == 0
                for r in burst["regions"].values()
            ),
            json.dumps(burst["regions"]),
        ),
        check(
            "modelled: central monitoring with one alarm per account passes the 200-alarm "
            "quota at 50 accounts and not at 500",
            model[str(50)]["central_monitoring"]["per_account_within_quota"]
            and not model[str(500)]["central_monitoring"]["per_account_within_quota"],
        ),
    ]
    return {
        "figures": {
            "organisation": {
                "accounts": ACCOUNTS,
                "regions": list(REGIONS),
                "instances_per_account_region": INSTANCES_PER_ACCOUNT_REGION,
                "instances": ACCOUNTS * len(REGIONS) * INSTANCES_PER_ACCOUNT_REGION,
                "stack_instances": stack_instances,
                "member_resources_in_the_organisation": stack_instances * member_resources,
            },
            "member": members,
            "rollout": rollout,
            "rollout_one_region": rollout_one,
            "central_model": model,
            "modelled": (
                "central_model is arithmetic from documented quotas (10,000 metrics scanned "
                "per Metrics Insights query, 200 Metrics Insights alarms per account and "
                "Region), not a synthesized central account"
            ),
            "organisation_burst": burst,
        },
        "summary": {
            "member stack resources, any fleet size": (
                f"{member_resources} (FleetWatch), "
                f"{members[f'managed-{INSTANCES_PER_ACCOUNT_REGION}']['resources']} "
                "(ManagedAlarms)"
            ),
            "stack instances": f"{stack_instances} ({ACCOUNTS} accounts x {len(REGIONS)} Regions)",
            "rollout stack resources": (
                f"{rollout['rollout']['resources']} for {len(REGIONS)} Regions, any number "
                "of accounts"
            ),
            "organisation burst": (
                f"{burst['interrupts']} interrupts for {burst['candidates']:,} simultaneous "
                f"candidates ({ACCOUNTS} accounts x {len(REGIONS)} Regions x {per_account}); "
                f"threshold {BURST_THRESHOLD} per Region"
            ),
        },
        "tables": [
            table(
                "Member stack per account and Region (synthesized)",
                ["fleet mode", "instances declared", "resources", "bytes", "sha256"],
                [
                    [mode, f"{size:,}", m["resources"], f"{m['bytes']:,}", m["sha256"]]
                    for mode in ("fleet", "managed")
                    for size in FLEET_SIZES
                    for m in [members[f"{mode}-{size}"]]
                ],
            ),
            table(
                "Central account per Region, by topology (modelled: 2,000 instances per "
                "account and Region)",
                [
                    "accounts",
                    "per-account remediation: central resources per account",
                    "central monitoring: one alarm per account",
                    "central monitoring: one alarm per 10,000 metrics",
                ],
                rows,
            ),
        ],
        "checks": checks,
    }
