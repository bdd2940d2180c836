"""Benchmark - fleet scale: the remediation template for 1,000, 10,000 and 100,000 instances.

Each size declares its instances for real, in a workload stack next to the remediation stack
(an Auto Scaling group of that capacity, tagged for opt-in), and synthesizes the remediation
in the three ways that could watch them:

- ``fleet=FleetWatch()`` (the default): one Metrics Insights alarm; past 10,000 metrics it
  evaluates partial data (and its partial-data alarm fires);
- ``fleet=ManagedAlarms()``: the alarm manager keeps one ordinary alarm per opted-in instance
  at run time; the template holds the manager, not the alarms;
- ``instances=[...]`` (one declared alarm per instance): refused at construction past the
  500-resource limit, with the error that names the way out.

Figures: resources and bytes per mode and size (the template must not depend on the size),
the shard count the documented shard design would need (and whether it passes the default
Metrics Insights alarm quota), and the managed mode's run-time figures at that size (first
fill at the default pace; API calls per reconcile pass).
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from benchmarks.common import SkipError, check, log, table
from benchmarks.template_scale import ACCOUNT, REGION, _context, instance_ids

NAME = "fleet_scale"
TITLE = "Fleet scale: remediation template for 1,000 to 100,000 instances"

SIZES_FULL = (1_000, 10_000, 100_000)
SIZES_SMOKE = (1_000,)


def declare_fleet(app: Any, capacity: int) -> None:
    """A stack "Workload" in ``app`` that declares ``capacity`` opted-in instances for real
    (an Auto Scaling group of that size, tagged with the opt-in tag)."""
    import aws_cdk as cdk
    from aws_cdk import aws_autoscaling as autoscaling
    from aws_cdk import aws_ec2 as ec2

    from crashcart import OptInTag

    workload = cdk.Stack(app, "Workload", env=cdk.Environment(account=ACCOUNT, region=REGION))
    vpc = ec2.Vpc.from_vpc_attributes(
        workload,
        "Vpc",
        vpc_id="vpc-0123456789abcdef0",
        availability_zones=[f"{REGION}a", f"{REGION}b"],
        private_subnet_ids=["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
    )
    group = autoscaling.AutoScalingGroup(
        workload,
        "Fleet",
        vpc=vpc,
        instance_type=ec2.InstanceType("m5.large"),
        machine_image=ec2.MachineImage.generic_linux({REGION: "ami-0123456789abcdef0"}),
        min_capacity=capacity,
        max_capacity=capacity,
        require_imdsv2=True,
    )
    tag = OptInTag()
    cdk.Tags.of(group).add(tag.key, tag.value, apply_to_launched_instances=True)


def declared_capacity(assembly: Any) -> int:
    """The size of the fleet :func:`declare_fleet` declared, read from its template."""
    template = assembly.get_stack_by_name("Workload").template
    return int(
        next(
            r["Properties"]["MaxSize"]
            for r in template["Resources"].values()
            if r["Type"] == "AWS::AutoScaling::AutoScalingGroup"
        )
    )


def _synth(mode: str, capacity: int) -> dict[str, Any]:
    import aws_cdk as cdk
    from aws_cdk import aws_s3 as s3

    from crashcart import (
        ExistingDumpBucket,
        FleetWatch,
        ManagedAlarms,
        UnresponsiveInstanceRemediation,
    )

    started = time.perf_counter()
    app = cdk.App(context=_context())
    env = cdk.Environment(account=ACCOUNT, region=REGION)
    declare_fleet(app, capacity)
    stack = cdk.Stack(app, "Remediation", env=env)
    bucket = s3.Bucket(stack, "Evidence", enforce_ssl=True)
    fleet = FleetWatch() if mode == "fleet" else ManagedAlarms()
    UnresponsiveInstanceRemediation(
        stack, "Remediation", dumps=ExistingDumpBucket(bucket=bucket), fleet=fleet
    )
    assembly = app.synth()
    template = assembly.get_stack_by_name("Remediation").template
    body = json.dumps(template, sort_keys=True)
    return {
        "resources": len(template["Resources"]),
        "bytes": len(json.dumps(template, indent=1).encode()),
        "sha256": hashlib.sha256(body.encode()).hexdigest()[:16],
        "declared_capacity": declared_capacity(assembly),
        "seconds": round(time.perf_counter() - started, 2),
    }


def _explicit_refusal(capacity: int) -> dict[str, Any]:
    import aws_cdk as cdk
    from aws_cdk import aws_s3 as s3

    from crashcart import ExistingDumpBucket, UnresponsiveInstanceRemediation
    from crashcart.errors import ConfigurationError

    app = cdk.App(context=_context())
    stack = cdk.Stack(app, "Explicit", env=cdk.Environment(account=ACCOUNT, region=REGION))
    bucket = s3.Bucket(stack, "Evidence", enforce_ssl=True)
    started = time.perf_counter()
    try:
        UnresponsiveInstanceRemediation(
            stack,
            "Remediation",
            dumps=ExistingDumpBucket(bucket=bucket),
            instances=instance_ids(capacity),
        )
    except ConfigurationError as error:
        return {
            "refused": True,
            "message": str(error)[:160],
            "seconds": round(time.perf_counter() - started, 2),
        }
    return {"refused": False, "message": "", "seconds": round(time.perf_counter() - started, 2)}


def run(ctx: Any) -> dict[str, Any]:
    try:
        from crashcart.constructs.fleet_scale import ManagedAlarms, shards_needed
        from crashcart.constructs.remediation_settings import FleetWatch
    except ImportError as error:
        raise SkipError(f"crashcart cannot be imported: {error}") from error
    sizes = SIZES_SMOKE if ctx.smoke else SIZES_FULL
    managed = ManagedAlarms()
    quota = FleetWatch().alarm_quota
    results: dict[str, dict[str, Any]] = {}
    rows = []
    for size in sizes:
        log(f"{NAME}: {size} instances")
        fleet = _synth("fleet", size)
        managed_t = _synth("managed", size)
        explicit = _explicit_refusal(size)
        shards = shards_needed(size)
        results[str(size)] = {
            "fleet": fleet,
            "managed": managed_t,
            "explicit": explicit,
            "shards_needed": shards,
            "managed_first_fill_hours": round(managed.initial_fill_hours(size), 1),
            "reconcile_describe_calls": -(-size // 1000) + -(-size // 100),
        }
        rows.append(
            [
                f"{size:,}",
                f"{fleet['resources']} ({fleet['bytes']:,} B)",
                f"{managed_t['resources']} ({managed_t['bytes']:,} B)",
                "refused" if explicit["refused"] else "accepted",
                f"{shards} ({'over' if shards > quota else 'within'} the {quota} quota)",
                f"{managed.initial_fill_hours(size):.1f} h",
                -(-size // 1000) + -(-size // 100),
            ]
        )
    first = results[str(sizes[0])]
    checks = [
        check(
            "every size really declares its instances",
            all(results[str(s)]["fleet"]["declared_capacity"] == s for s in sizes),
        ),
        check(
            "fleet mode: the template is identical for every size",
            len({results[str(s)]["fleet"]["sha256"] for s in sizes}) == 1,
        ),
        check(
            "managed mode: the template is identical for every size",
            len({results[str(s)]["managed"]["sha256"] for s in sizes}) == 1,
        ),
        check(
            "managed mode adds a constant, small number of resources",
            first["managed"]["resources"] - first["fleet"]["resources"] <= 15,
            f"{first['managed']['resources']} vs {first['fleet']['resources']}",
        ),
        check(
            "explicit mode refuses every size with a ConfigurationError",
            all(results[str(s)]["explicit"]["refused"] for s in sizes),
        ),
    ]
    return {
        "figures": {"sizes": results, "puts_per_second": managed.puts_per_second},
        "summary": {
            "fleet mode resources, any size": f"{first['fleet']['resources']}",
            "managed mode resources, any size": f"{first['managed']['resources']}",
            "managed mode first fill of 100,000 alarms": (
                f"{managed.initial_fill_hours(100_000):.1f} h at "
                f"{managed.puts_per_second} PutMetricAlarm a second"
            ),
        },
        "tables": [
            table(
                "Remediation template by declared fleet size",
                [
                    "instances",
                    "FleetWatch: resources (bytes)",
                    "ManagedAlarms: resources (bytes)",
                    "instances=[...]",
                    "shards the shard design needs",
                    "managed: first fill",
                    "managed: describe calls per reconcile",
                ],
                rows,
            )
        ],
        "checks": checks,
        "notes": [
            "Instances are declared in a workload stack (an Auto Scaling group of that "
            "capacity, opted in by tag); the remediation stack is synthesized beside it.",
            "FleetWatch past 10,000 instances: the template is the same, but the query scans "
            "only 10,000 metrics; the alarm reports partial data and the partial-data alarm "
            "notifies the topic (docs/operations.md). Use ManagedAlarms there.",
            "ManagedAlarms: the alarms are created at run time, paced under the "
            "PutMetricAlarm rate; the first fill of a large fleet takes hours (instances "
            "launched later get their alarm within a minute of launch).",
            "Shards: one Metrics Insights alarm per 250 instances (half of the 500-series "
            "limit as headroom); above 200 shards the default quota must be raised. A "
            "documented design (docs/fleet-scale.md), not deployed by the construct.",
        ],
    }
