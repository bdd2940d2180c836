"""Benchmark 4 - burst: a whole fleet raises ALARM at once, every event delivered 11 times.

1,000 opted-in, impaired instances spread over three availability zones raise ALARM within
one breaker window; each event is delivered once plus 10 duplicates (EventBridge and Lambda
deliver at least once), in a shuffled order (fixed seed), by 5 concurrent workers (the
function reserves no concurrency by default, so Lambda may run more copies at once; 5 keeps
the results comparable with earlier runs), against moto's server on 127.0.0.1, with
the remediation tests' layer answering ``SendDiagnosticInterrupt``. The clock is injected and
stands still, so the breaker window cannot roll over mid-run; a delivery that raises is
retried like Lambda's asynchronous retries (2 more attempts), then counted as sent to the
failure queue.

The function looks up the event's incident before anything else, so a copy that arrives after
the incident exists costs one DynamoDB read (no kill-switch read, no EC2 call); each
delivery's API calls are counted on its own thread.

Counted afterwards from what the layer recorded, the incident table and the notifications
captured from the topic: interrupts sent (at most what the breakers allow, none after the
breaker opened), duplicate interrupts (0), events lost (no incident record and not on the
failure queue: 0), notifications sent, and the time, per delivery as a ratio to one round
trip to the same server.
"""

from __future__ import annotations

import io
import json
import random
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from benchmarks._aws import ThreadCalls, moto_server, test_layer
from benchmarks.common import Context, check, log, median, ms, ratio, summary, table, times

NAME = "burst"
TITLE = "Burst: 1,000 instances in ALARM at once, each event delivered 11 times"

FULL = {"instances": 1_000, "duplicates": 10}
SMOKE = {"instances": 30, "duplicates": 2}
ZONES = ("eu-west-1a", "eu-west-1b", "eu-west-1c")
WORKERS = 5  # concurrent deliveries (the function itself is not capped by default)
LAMBDA_ATTEMPTS = 3  # one delivery + Lambda's 2 asynchronous retries (construct default)
SEED = 8


def run(ctx: Context) -> dict[str, Any]:
    layer = test_layer()
    functions = layer.load()
    from tests.conftest import FakeLambdaContext

    size = SMOKE if ctx.smoke else FULL
    count = int(ctx.options.get("burst_instances") or size["instances"])
    duplicates = int(
        ctx.options["burst_duplicates"]
        if ctx.options.get("burst_duplicates") is not None
        else size["duplicates"]
    )
    with moto_server() as url:
        world = layer.World(url=url, env=layer.env()).setup()
        settings = world.settings()
        clock = layer.Clock(datetime.now(UTC).replace(microsecond=0) + timedelta(hours=2))
        zone_of: dict[str, str] = {}
        per_zone = [count // len(ZONES) + (1 if i < count % len(ZONES) else 0) for i in range(3)]
        for zone, n in zip(ZONES, per_zone, strict=True):
            for instance in world.instances(n, clock=clock, az=zone):
                zone_of[instance] = zone
        instances = sorted(zone_of)
        clients = world.clients()
        calls = ThreadCalls(clients)
        roundtrip = world.client("ec2", getattr(layer, "FAST", None))
        trips = []
        for instance in instances[:50]:
            started = time.perf_counter()
            roundtrip.describe_instances(InstanceIds=[instance])
            trips.append(time.perf_counter() - started)
        opened = clock() - timedelta(seconds=60)
        events = {i: layer.alarm_event(i, at=opened) for i in instances}
        deliveries = [(i, copy) for i in instances for copy in range(duplicates + 1)]
        random.Random(SEED).shuffle(deliveries)
        records: list[dict[str, Any]] = []
        lock = threading.Lock()

        def deliver(job: tuple[str, int]) -> None:
            instance, copy = job
            record: dict[str, Any] = {"instance": instance, "copy": copy, "attempts": 0}
            calls.reset()
            record["start"] = time.perf_counter()
            for attempt in range(1, LAMBDA_ATTEMPTS + 1):
                record["attempts"] = attempt
                stream = io.StringIO()
                try:
                    service = functions.handler.build(
                        functions.settings.Settings.from_env(world.env),
                        FakeLambdaContext(),
                        clients=clients,
                        clock=clock,
                        sleep=time.sleep,
                        log=functions.telemetry.Log(
                            clock=clock, stream=stream, function_name="crashcart-bench"
                        ),
                    )
                    record["result"] = service.handle(json.loads(json.dumps(events[instance])))
                    record.pop("error", None)
                except Exception as error:  # Lambda would retry, then the failure queue
                    record["error"] = f"{type(error).__name__}: {error}"
                    record.setdefault("attempt_errors", []).append(type(error).__name__)
                opened_scopes = [
                    json.loads(line).get("breaker")
                    for line in stream.getvalue().splitlines()
                    if '"circuit breaker opened"' in line
                ]
                if opened_scopes:
                    record.setdefault("opened", []).extend(opened_scopes)
                if "result" in record:
                    break
            record["end"] = time.perf_counter()
            record["api_calls"], record["http_requests"] = calls.read()
            with lock:
                records.append(record)
                if len(records) % 1000 == 0:
                    log(f"burst: {len(records):,}/{len(deliveries):,} deliveries")

        log(
            f"burst: {count:,} instances in {len(ZONES)} zones, {len(deliveries):,} deliveries, "
            f"{WORKERS} workers"
        )
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            list(pool.map(deliver, deliveries))
        total = time.perf_counter() - started
        sent = world.script.sent()
        notifications = world.notifications()
        incidents = _incidents(world)

    # -- accounting -----------------------------------------------------------------------
    outcomes = Counter(
        r["result"].get("outcome", "?") if "result" in r else "failure-queue" for r in records
    )
    sent_per_instance = Counter(c["InstanceId"] for c in sent)
    duplicate_interrupts = sum(n - 1 for n in sent_per_instance.values() if n > 1)
    failed_instances = {
        i for i in instances if all("result" not in r for r in records if r["instance"] == i)
    }
    lost = [i for i in instances if not incidents.get(i) and i not in failed_instances]
    extra_incidents = sum(len(v) - 1 for v in incidents.values() if len(v) > 1)
    fleet_limit = settings.breaker_fleet_threshold - 1
    zone_limit = settings.breaker_az_threshold - 1
    allowed = min(fleet_limit, sum(min(zone_limit, n) for n in per_zone))
    opened_at: dict[str, float] = {}
    for r in records:
        for scope in r.get("opened", []):
            opened_at[scope] = min(opened_at.get(scope, r["end"]), r["end"])
    fleet_open = opened_at.get("breaker#fleet")
    interrupted = [r for r in records if r.get("result", {}).get("outcome") == "interrupted"]
    after_fleet = [r for r in interrupted if fleet_open is not None and r["start"] > fleet_open]
    after_zone = [
        r
        for r in interrupted
        if (t := opened_at.get(f"breaker#az#{zone_of[r['instance']]}")) is not None
        and r["start"] > t
    ]
    per_zone_sent = Counter(zone_of[c["InstanceId"]] for c in sent)
    by_instance: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        by_instance[r["instance"]].append(r)
    first_copies: list[dict[str, Any]] = []
    duplicate_deliveries: list[dict[str, Any]] = []
    for group in by_instance.values():
        # The delivery that acted is the one not answered "duplicate" (whichever copy it was).
        acting = [r for r in group if r.get("result", {}).get("outcome") != "duplicate"]
        first = acting[0] if acting else min(group, key=lambda r: r["start"])
        first_copies.append(first)
        duplicate_deliveries += [r for r in group if r is not first]
    dup_outcomes = Counter(
        r["result"].get("outcome", "?") if "result" in r else "failure-queue"
        for r in duplicate_deliveries
    )
    acting_calls = [r["api_calls"] for r in first_copies]
    duplicate_calls = [r["api_calls"] for r in duplicate_deliveries]
    # A copy recognised by the first read made exactly that one call; one that raced the
    # acting copy (no incident yet) went on to the claim and was recognised there.
    answered_first = sum(
        1
        for r in duplicate_deliveries
        if r.get("result", {}).get("outcome") == "duplicate" and r["api_calls"] == 1
    )
    subjects = Counter(n["subject"] for n in notifications)
    retried = sum(1 for r in records if r["attempts"] > 1)
    # Why an attempt raised (Lambda would retry it): e.g. a claim still contended after the
    # function's own attempts, when many ALARMs update the same breaker item at once.
    retry_reasons = Counter(e for r in records for e in r.get("attempt_errors", []))
    per_delivery = [r["end"] - r["start"] for r in records]
    trip = median(trips)
    figures: dict[str, Any] = {
        "instances": count,
        "zones": dict(zip(ZONES, per_zone, strict=True)),
        "deliveries": len(records),
        "duplicates_per_event": duplicates,
        "workers": WORKERS,
        "breaker": {
            "fleet_threshold": settings.breaker_fleet_threshold,
            "az_threshold": settings.breaker_az_threshold,
            "window_seconds": settings.breaker_window_seconds,
            "interrupts_allowed": allowed,
        },
        "interrupts_sent": len(sent),
        "interrupts_sent_per_zone": dict(per_zone_sent),
        "interrupts_after_fleet_breaker_opened": len(after_fleet),
        "interrupts_after_zone_breaker_opened": len(after_zone),
        "duplicate_interrupts": duplicate_interrupts,
        "events_lost": len(lost),
        "events_to_failure_queue": len(failed_instances),
        "deliveries_retried": retried,
        "failed_attempts_by_error": dict(retry_reasons),
        "extra_incident_records": extra_incidents,
        "incident_records": sum(len(v) for v in incidents.values()),
        "outcomes": dict(outcomes),
        "duplicate_delivery_outcomes": dict(dup_outcomes),
        "notifications_sent": len(notifications),
        "notification_subjects": dict(subjects),
        "breakers_opened": sorted(opened_at),
        "api_calls": {
            "total": sum(r["api_calls"] for r in records),
            "http_requests_total": sum(r["http_requests"] for r in records),
            "acting_delivery": _calls_summary(acting_calls),
            "duplicate_delivery": _calls_summary(duplicate_calls),
            "duplicates_answered_by_the_incident_check_alone": answered_first,
            "duplicates_recognised_at_the_claim": len(duplicate_deliveries) - answered_first,
        },
        "total_seconds": round(total, 2),
        "per_delivery_seconds": summary(per_delivery),
        "roundtrip_seconds_median": trip,
        "ratios": {
            "per_delivery_p50_vs_roundtrip": ratio(median(per_delivery), trip),
            "per_delivery_p99_vs_roundtrip": ratio(summary(per_delivery)["p99"], trip),
        },
    }
    checks = [
        check(
            "interrupts sent are no more than the breakers allow",
            len(sent) <= allowed,
            f"{len(sent)} sent, {allowed} allowed (fleet threshold "
            f"{settings.breaker_fleet_threshold}, zone threshold {settings.breaker_az_threshold})",
        ),
        check(
            "no interrupt once the fleet breaker had opened",
            fleet_open is not None and not after_fleet,
            f"fleet breaker opened: {fleet_open is not None}; {len(after_fleet)} after",
        ),
        check(
            "no interrupt in a zone once its breaker had opened",
            not after_zone,
            f"{len(after_zone)} after",
        ),
        check("no duplicate interrupts", duplicate_interrupts == 0, f"{duplicate_interrupts}"),
        check(
            "no event lost: every instance has exactly one incident record",
            not lost and extra_incidents == 0 and not failed_instances,
            f"{len(lost)} lost, {extra_incidents} extra records, "
            f"{len(failed_instances)} on the failure queue",
        ),
        check(
            "exactly one delivery per event acted; every other copy was recognised as a duplicate",
            dup_outcomes.get("duplicate", 0) == len(duplicate_deliveries) == count * duplicates,
            f"{dict(dup_outcomes)}",
        ),
        check(
            "the breaker announced itself once per scope",
            all(n == 1 for s, n in subjects.items() if "breaker" in s.lower()),
            ", ".join(f"{s}: {n}" for s, n in subjects.items() if "breaker" in s.lower()),
        ),
    ]
    rows: list[list[Any]] = [
        ["instances in ALARM (zones)", f"{count:,} ({', '.join(map(str, per_zone))})"],
        ["deliveries (1 + duplicates each), concurrent workers", f"{len(records):,}, {WORKERS}"],
        ["interrupts sent / allowed by the breakers", f"{len(sent)} / {allowed}"],
        ["interrupts after the fleet breaker opened", len(after_fleet)],
        ["interrupts after a zone's breaker opened (in that zone)", len(after_zone)],
        ["duplicate interrupts", duplicate_interrupts],
        ["events lost", len(lost)],
        ["events on the failure queue after Lambda's retries", len(failed_instances)],
        [
            "deliveries that needed a retry (why the failed attempts raised)",
            f"{retried} ({_counts(retry_reasons)})" if retried else "0",
        ],
        [
            "outcomes of the delivery that acted (one per event)",
            _counts(
                Counter(
                    r["result"].get("outcome", "?") if "result" in r else "failure-queue"
                    for r in first_copies
                )
            ),
        ],
        ["outcomes of the other copies", _counts(dup_outcomes)],
        ["notifications sent", f"{len(notifications)}: {_counts(subjects)}"],
        [
            "AWS API calls per delivery, median (max): the copy that acted / the other copies",
            f"{_calls_text(acting_calls)} / {_calls_text(duplicate_calls)}",
        ],
        [
            "other copies answered by the incident check alone (1 call) / recognised at the claim",
            f"{answered_first:,} / {len(duplicate_deliveries) - answered_first:,}",
        ],
        ["total time (absolute, not asserted)", f"{total:.1f} s"],
        [
            "per delivery p50 / p99 (ratio to one round trip to the server)",
            f"{ms(figures['per_delivery_seconds']['p50'])} / "
            f"{ms(figures['per_delivery_seconds']['p99'])} "
            f"({times(figures['ratios']['per_delivery_p50_vs_roundtrip'])} / "
            f"{times(figures['ratios']['per_delivery_p99_vs_roundtrip'])})",
        ],
    ]
    return {
        "title": f"Burst: {count:,} instances in ALARM at once, each event delivered "
        f"{duplicates + 1} times",
        "figures": figures,
        "summary": {
            "interrupts sent / allowed": f"{len(sent)} / {allowed}",
            "duplicate interrupts": str(duplicate_interrupts),
            "events lost": str(len(lost)),
            "notifications": str(len(notifications)),
            "total time (absolute)": f"{total:.1f} s",
            "per delivery p50 vs one round trip": times(
                figures["ratios"]["per_delivery_p50_vs_roundtrip"]
            ),
        },
        "tables": [
            table(f"{count:,} instances, {duplicates} duplicates each", ["", "count"], rows)
        ],
        "checks": checks,
        "notes": [
            f"Breaker settings are the construct's defaults: the fleet breaker opens when "
            f"{settings.breaker_fleet_threshold} new ALARMs fall within "
            f"{settings.breaker_window_seconds // 60} minutes, a zone's at "
            f"{settings.breaker_az_threshold}; the ALARM that reaches a threshold is not "
            "interrupted. Every later ALARM is recorded as skipped (guard circuit-breaker).",
            "'Events lost' counts instances with no incident record that are not on the "
            "failure queue either; each first delivery and each duplicate is accounted for in "
            "the outcome rows.",
            "moto's server handles DynamoDB requests one at a time here: its TransactWriteItems "
            "is not isolated under concurrent requests (real DynamoDB transactions are), which "
            "without this let two concurrent copies of one event both commit their claim "
            "(see benchmarks/_aws.py).",
            "The order of deliveries is shuffled with a fixed seed, so duplicates often arrive "
            "concurrently with (or before) the first copy; they are told apart by the incident "
            "key (the alarm's state timestamp), not by arrival order.",
            "The function reads the event's incident first: a copy that finds it answers "
            "'duplicate' with that one call; a copy that finds none goes on (kill switch, EC2 "
            "facts) and is recognised at the claim, whose snapshot reads the incident again and "
            "whose put requires its absence. API calls include the two the test layer answers "
            "in-process (DescribeInstanceStatus, SendDiagnosticInterrupt).",
            "Every delivery builds the function's service afresh over one set of clients "
            f"shared by the {WORKERS} workers, as warm Lambda containers keep theirs.",
        ],
    }


def _calls_summary(values: list[int]) -> dict[str, float | int]:
    if not values:
        return {"n": 0}
    return {"n": len(values), "median": median(values), "max": max(values), "min": min(values)}


def _calls_text(values: list[int]) -> str:
    if not values:
        return "-"
    return f"{median(values):g} ({max(values)})"


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in counter.most_common()) or "none"


def _incidents(world: Any) -> dict[str, list[str]]:
    """Instance id -> its incident sort keys, from a full scan of the incident table."""
    client = world.client("dynamodb")
    found: dict[str, list[str]] = defaultdict(list)
    kwargs: dict[str, Any] = {"TableName": world.env["CRASHCART_TABLE_NAME"]}
    while True:
        page = client.scan(**kwargs)
        for item in page.get("Items", []):
            pk, sk = item["pk"]["S"], item["sk"]["S"]
            if pk.startswith("instance#") and sk.startswith("incident#"):
                found[pk.removeprefix("instance#")].append(sk)
        if "LastEvaluatedKey" not in page:
            return found
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
