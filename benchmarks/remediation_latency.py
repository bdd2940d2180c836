"""Benchmark 3 - remediation latency: the handler per event (warm), and its cold start.

Against moto's server on 127.0.0.1 (its own process), with the remediation tests' layer for
what moto lacks (``SendDiagnosticInterrupt`` answers, scripted ``impaired`` status).

- Warm: one ALARM event per instance, each going the whole way (every guard passes; the
  breaker thresholds are raised out of reach so that each event is interrupted): settings
  from the environment, ``handler.build`` over long-lived clients (as a warm Lambda container
  keeps them), ``handle``. Interleaved with the baseline: the bare minimum, one
  ``SendDiagnosticInterrupt`` call on an EC2 client configured like the function's, answered
  by the same test layer. Because that answer never leaves the process, a second baseline is
  one real round trip to the same server (``DescribeInstances`` of one id).
- Cold: fresh interpreters, one per sample, interleaved with baseline interpreters: the
  function's import time vs ``import boto3``; and the first event of a new container
  (import, clients, first event through ``handler.handler``) vs the first
  ``SendDiagnosticInterrupt`` of a new process (import boto3, client, call).
"""

from __future__ import annotations

import io
import json
import subprocess
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks._aws import count_calls, moto_server, test_layer
from benchmarks.common import (
    REPO_ROOT,
    VENV_PYTHON,
    Context,
    check,
    log,
    median,
    ms,
    offline_env,
    ratio,
    summary,
    table,
    times,
)
from crashcart.functions._asset import handler_of, stage

NAME = "remediation_latency"
TITLE = "Remediation latency: handler per event (warm) and cold start vs a bare interrupt call"

#: Warm events (and warm-up events before them) of a full run and of the smoke run, which
#: only proves the path runs: three give a median, one warm-up the skipped first (issue 24).
WARM_FULL, WARM_SMOKE = 200, 3
WARMUP_FULL, WARMUP_SMOKE = 5, 1
COLD_FULL, COLD_SMOKE = 5, 1
UNREACHABLE = "1000000"  # breaker thresholds out of reach: every event takes the whole path

#: A fresh interpreter: the function as Lambda loads it (its staged asset first on the path),
#: then its first event.
_COLD_FUNCTION = r"""
import json, sys, time
args = json.loads(sys.argv[1])
t0 = time.perf_counter()
before = len(sys.modules)
sys.path.insert(0, args["folder"])
import importlib
handler = importlib.import_module(args["handler"].rpartition(".")[0])
t1 = time.perf_counter()
modules = len(sys.modules) - before
clients = handler._clients()
t2 = time.perf_counter()
import importlib
layer = importlib.import_module(args["layer"])
Ec2Script, alarm_event = layer.Ec2Script, layer.alarm_event
from tests.conftest import FakeLambdaContext
from datetime import datetime
script = Ec2Script(default_status="impaired")
script.install(clients["ec2"]); script.install(clients["ec2_interrupt"])
event = alarm_event(args["instance"], at=datetime.fromisoformat(args["at"]))
t3 = time.perf_counter()
result = handler.handler(event, FakeLambdaContext())
t4 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "clients": t2 - t1, "first_event": t4 - t3,
                  "modules": modules, "outcome": result.get("outcome"),
                  "reason": result.get("reason"), "sent": len(script.sent())}))
"""
#: A fresh interpreter: the bare minimum, one interrupt call.
_COLD_BASELINE = r"""
import json, sys, time
args = json.loads(sys.argv[1])
t0 = time.perf_counter()
before = len(sys.modules)
import boto3
t1 = time.perf_counter()
modules = len(sys.modules) - before
from botocore.config import Config
import importlib
Ec2Script = importlib.import_module(args["layer"]).Ec2Script
t2 = time.perf_counter()
client = boto3.client("ec2", config=Config(retries={"total_max_attempts": 1}))
script = Ec2Script(); script.install(client)
t3 = time.perf_counter()
client.send_diagnostic_interrupt(InstanceId=args["instance"])
t4 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "clients": t3 - t2, "first_event": t4 - t3,
                  "modules": modules, "sent": len(script.sent())}))
"""


def _child(code: str, args: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    result = subprocess.run(
        [str(VENV_PYTHON), "-c", code, json.dumps(args)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode != 0 or not lines:
        tail = "\n".join(result.stderr.strip().splitlines()[-8:])
        raise RuntimeError(f"cold-start child failed (exit {result.returncode}): {tail}")
    parsed: dict[str, Any] = json.loads(lines[-1])
    return parsed


def run(ctx: Context) -> dict[str, Any]:
    layer = test_layer()
    functions = layer.load()
    warm_n = WARM_SMOKE if ctx.smoke else WARM_FULL
    warmup = WARMUP_SMOKE if ctx.smoke else WARMUP_FULL
    cold_n = COLD_SMOKE if ctx.smoke else COLD_FULL
    from tests.conftest import FakeLambdaContext

    with moto_server() as url:
        environment = layer.env(
            CRASHCART_BREAKER_FLEET_THRESHOLD=UNREACHABLE,
            CRASHCART_BREAKER_AZ_THRESHOLD=UNREACHABLE,
        )
        world = layer.World(url=url, env=environment).setup()
        clock = layer.Clock(datetime.now(UTC).replace(microsecond=0) + timedelta(hours=2))
        ids = world.instances(warm_n + warmup, clock=clock)
        clients = world.clients()
        counter = count_calls(clients)
        counter["enabled"] = 0
        # The bare minimum: the same client configuration, its own test-layer instance.
        base_script = layer.Ec2Script()
        bare = base_script.install(world.client("ec2", functions.handler.INTERRUPT_CONFIG))
        roundtrip = (
            world.client("ec2", layer.FAST) if hasattr(layer, "FAST") else world.client("ec2")
        )
        handler_times: list[float] = []
        bare_times: list[float] = []
        trip_times: list[float] = []
        outcomes: dict[str, int] = {}
        api_calls: list[int] = []
        http_calls: list[int] = []
        opened = clock() - timedelta(seconds=60)
        log(f"remediation_latency: {warm_n} warm events (+{warmup} warm-up), interleaved")
        for index, instance in enumerate(ids):
            event = layer.alarm_event(instance, at=opened)
            counter.update(api=0, http=0, enabled=1)
            started = time.perf_counter()
            settings = functions.settings.Settings.from_env(world.env)
            service = functions.handler.build(
                settings,
                FakeLambdaContext(),
                clients=clients,
                clock=clock,
                sleep=time.sleep,
                log=functions.telemetry.Log(
                    clock=clock, stream=io.StringIO(), function_name="crashcart-bench"
                ),
            )
            result = service.handle(event)
            elapsed = time.perf_counter() - started
            counter["enabled"] = 0
            started = time.perf_counter()
            bare.send_diagnostic_interrupt(InstanceId=instance)
            bare_elapsed = time.perf_counter() - started
            started = time.perf_counter()
            roundtrip.describe_instances(InstanceIds=[instance])
            trip_elapsed = time.perf_counter() - started
            if index < warmup:
                continue
            outcomes[result.get("outcome", "?")] = outcomes.get(result.get("outcome", "?"), 0) + 1
            handler_times.append(elapsed)
            bare_times.append(bare_elapsed)
            trip_times.append(trip_elapsed)
            api_calls.append(counter["api"])
            http_calls.append(counter["http"])
        handler_sent = len(world.script.sent())

        # -- cold start: fresh interpreters, interleaved --------------------------------
        cold_clock = layer.Clock(datetime.now(UTC).replace(microsecond=0))
        cold_ids = world.instances(cold_n, clock=cold_clock, status=None)
        child_env = offline_env(
            {
                **world.env,
                "CRASHCART_BOOT_GRACE_SECONDS": "0",  # just launched in moto, real clock
                "AWS_ENDPOINT_URL": url,  # 127.0.0.1 only
                "PYTHONPATH": str(REPO_ROOT),
            }
        )
        cold: list[dict[str, Any]] = []
        cold_base: list[dict[str, Any]] = []
        asset = stage("remediation", Path(tempfile.mkdtemp(prefix="asset-", dir=ctx.workdir)))
        for n, instance in enumerate(cold_ids):
            log(f"remediation_latency: cold start {n + 1}/{cold_n}")
            args = {
                "folder": str(asset),
                "handler": handler_of("remediation"),
                "layer": layer.__name__,
                "instance": instance,
                "at": (cold_clock() - timedelta(seconds=60)).isoformat(),
            }
            if n % 2 == 0:  # ABBA: neither side always runs with a warmer page cache
                cold_base.append(_child(_COLD_BASELINE, args, child_env))
                cold.append(_child(_COLD_FUNCTION, args, child_env))
            else:
                cold.append(_child(_COLD_FUNCTION, args, child_env))
                cold_base.append(_child(_COLD_BASELINE, args, child_env))

    warm = summary(handler_times)
    bare_summary = summary(bare_times)
    trip = summary(trip_times)
    cold_import = median([c["import"] for c in cold])
    base_import = median([c["import"] for c in cold_base])
    cold_total = median([c["import"] + c["clients"] + c["first_event"] for c in cold])
    base_total = median([c["import"] + c["clients"] + c["first_event"] for c in cold_base])
    figures: dict[str, Any] = {
        "warm_events": warm_n,
        "outcomes": outcomes,
        "interrupts_sent_by_handler": handler_sent,
        "handler_seconds": warm,
        "bare_interrupt_seconds": bare_summary,
        "roundtrip_seconds": trip,
        "api_calls_per_event": {"median": median(api_calls), "max": max(api_calls)},
        "http_requests_per_event": {"median": median(http_calls), "max": max(http_calls)},
        "ratios": {
            "p50_vs_bare_interrupt": ratio(warm["p50"], bare_summary["p50"]),
            "p99_vs_bare_interrupt": ratio(warm["p99"], bare_summary["p99"]),
            "p50_vs_roundtrip": ratio(warm["p50"], trip["p50"]),
            "p99_vs_roundtrip": ratio(warm["p99"], trip["p99"]),
            "cold_import_vs_boto3": ratio(cold_import, base_import),
            "cold_first_event_vs_bare": ratio(cold_total, base_total),
            "cold_first_event_vs_warm_p50": ratio(
                median([c["first_event"] for c in cold]), warm["p50"]
            ),
        },
        "cold": cold,
        "cold_baseline": cold_base,
    }
    r = figures["ratios"]
    rows: list[list[Any]] = [
        [
            "handler, one ALARM event, whole path (warm)",
            ms(warm["p50"]),
            ms(warm["p99"]),
            f"{times(r['p50_vs_bare_interrupt'])} / {times(r['p99_vs_bare_interrupt'])}",
            f"{times(r['p50_vs_roundtrip'])} / {times(r['p99_vs_roundtrip'])}",
        ],
        [
            "baseline: one SendDiagnosticInterrupt (test layer answers; no network)",
            ms(bare_summary["p50"]),
            ms(bare_summary["p99"]),
            "1.00x",
            "",
        ],
        [
            "baseline: one DescribeInstances round trip to the moto server",
            ms(trip["p50"]),
            ms(trip["p99"]),
            "",
            "1.00x",
        ],
    ]
    cold_rows: list[list[Any]] = [
        [
            "import (the function's modules, boto3 included)",
            ms(cold_import),
            ms(base_import),
            times(r["cold_import_vs_boto3"]),
            f"{median([c['modules'] for c in cold]):.0f} / "
            f"{median([c['modules'] for c in cold_base]):.0f}",
        ],
        [
            "new container's first event (import + clients + first event)",
            ms(cold_total),
            ms(base_total),
            times(r["cold_first_event_vs_bare"]),
            "",
        ],
    ]
    ok_outcomes = outcomes.get("interrupted", 0) == warm_n
    checks = [
        check(
            "every warm event took the whole path and was interrupted exactly once",
            ok_outcomes and handler_sent == warm_n + warmup,
            f"outcomes {outcomes}; {handler_sent} interrupts for {warm_n + warmup} events",
        ),
        check(
            "every cold-start event was interrupted",
            all(c.get("outcome") == "interrupted" and c.get("sent") == 1 for c in cold),
            "; ".join(f"{c.get('outcome')}: {c.get('reason', '')[:80]}" for c in cold),
        ),
    ]
    return {
        "figures": figures,
        "summary": {
            "warm handler p50 / p99 vs one bare interrupt call": (
                f"{times(r['p50_vs_bare_interrupt'])} / {times(r['p99_vs_bare_interrupt'])}"
            ),
            "warm handler p50 vs one round trip to the server": times(r["p50_vs_roundtrip"]),
            "AWS API calls per event (HTTP requests)": f"{median(api_calls):.0f} "
            f"({median(http_calls):.0f})",
            "cold import vs import boto3": times(r["cold_import_vs_boto3"]),
        },
        "tables": [
            table(
                f"Warm: {warm_n} events, each interleaved with both baselines "
                f"(after {warmup} warm-up events)",
                ["what", "p50", "p99", "ratio p50 / p99 to bare interrupt", "ratio to round trip"],
                rows,
            ),
            table(
                f"Cold: median of {cold_n} fresh interpreters each",
                ["what", "function", "baseline", "ratio", "modules imported (function / boto3)"],
                cold_rows,
            ),
        ],
        "checks": checks,
        "notes": [
            f"Per event the function makes {median(api_calls):.0f} AWS API calls "
            f"({median(http_calls):.0f} of them HTTP requests to moto; SendDiagnosticInterrupt "
            "and DescribeInstanceStatus are answered in-process by the test layer, and "
            "DescribeInstanceTypes is cached per container).",
            f"One round trip to moto's server took {ms(trip['p50'])} (p50) here, most of it "
            "moto's own request handling; real AWS APIs take tens of milliseconds, so in AWS "
            "the handler's time is dominated by the number of calls above, not by the code: "
            "the ratio to one round trip is the figure that carries over.",
            "The baseline for cold start is `import boto3` (any Python function that calls EC2 "
            "pays it); Lambda's own runtime start is not included in either.",
            "Breaker thresholds are set out of reach here so every event goes the whole way; "
            "the burst benchmark measures the breaker.",
        ],
    }
