"""Benchmark 6 - detection latency on paper: first failed status check -> interrupt call.

Read from the synthesized template (the status-check alarm's period, evaluation periods and
datapoints to alarm; the function's retry settings), combined with stated assumptions about
AWS's side, for the earliest and latest time from the first failed instance status check to
the ``SendDiagnosticInterrupt`` call. Next to it, the native alarm AWS recommends for
rebooting an instance (``StatusCheckFailed_Instance``, 3 of 3 one-minute periods, EC2 reboot
action), under the same assumptions; the ratio compares the two.

Model (time 0 = the first failed check; a hung kernel fails every check after it):

- the failed check lands somewhere inside its one-minute bucket, so that bucket closes
  0-P seconds later; the N-th consecutive breaching bucket closes (N-1)P-NP seconds after 0
  (N = datapoints to alarm: with a continuous failure, "N of M" alarms after N periods);
- the datapoint becomes visible to the alarm after the publication delay, and the alarm is
  evaluated once per period (waits 0-P seconds);
- then: the alarm state change goes through EventBridge to the function (asynchronous
  invoke), which may start cold, gathers its facts and calls the interrupt; the native alarm
  runs its EC2 action instead.
"""

from __future__ import annotations

import json
from typing import Any

from benchmarks.common import Context, SkipError, check, log, table

NAME = "detection_latency"
TITLE = "Detection latency on paper: first failed status check -> interrupt call"

#: Assumptions (seconds): (earliest, latest, why).
ASSUMPTIONS: dict[str, tuple[float, float, str]] = {
    "check_interval": (
        60,
        60,
        "EC2 runs the status checks every minute (FACTS.md); a hung kernel fails each one",
    ),
    "publication": (
        30,
        120,
        "assumed: delay before a one-minute StatusCheckFailed_Instance datapoint is visible "
        "to alarms (not documented by AWS; a conservative range)",
    ),
    "delivery": (
        0.5,
        10,
        "assumed: alarm state change -> EventBridge rule -> Lambda asynchronous invoke "
        "(typically sub-second; no SLA)",
    ),
    "cold_start": (
        0,
        2,
        "assumed: Lambda init of a Python function importing boto3 (0 when warm); see the "
        "remediation-latency benchmark for the measured import cost",
    ),
    "handler": (
        0.2,
        3,
        "assumed: the function's calls before the interrupt (DynamoDB incident check, SSM, "
        "DescribeInstances, DescribeInstanceStatus, DescribeInstanceTypes, DynamoDB claim, "
        "GetConsoleOutput, S3) at real-AWS latencies; measured against local moto in "
        "remediation latency",
    ),
    "native_action": (
        0,
        10,
        "assumed: the alarm's EC2 reboot action starting after the state change",
    ),
}
#: What AWS recommends for an alarm that reboots an instance (FACTS.md).
NATIVE = {"period": 60, "evaluation_periods": 3, "datapoints_to_alarm": 3}
#: Lambda's asynchronous retry delays after a function error (about 1 then 2 minutes).
LAMBDA_RETRY_DELAYS = (60, 120)


def _status_alarms(template: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for logical, resource in template.get("Resources", {}).items():
        if resource.get("Type") != "AWS::CloudWatch::Alarm":
            continue
        props = resource.get("Properties", {})
        if "StatusCheckFailed_Instance" in json.dumps(
            [props.get("MetricName"), props.get("Metrics")]
        ):
            found.append((logical, props))
    return found


def alarm_settings(props: dict[str, Any]) -> dict[str, Any]:
    """Period, evaluation periods, datapoints to alarm of one alarm's properties."""
    period = props.get("Period")
    if period is None:
        for metric in props.get("Metrics", []):
            period = metric.get("Period") or metric.get("MetricStat", {}).get("Period")
            if period is not None:
                break
    evaluation = int(props["EvaluationPeriods"])
    datapoints = int(props.get("DatapointsToAlarm", evaluation))
    return {
        "period": int(period or 60),
        "evaluation_periods": evaluation,
        "datapoints_to_alarm": datapoints,
        "treat_missing_data": props.get("TreatMissingData", "missing"),
        "kind": "Metrics Insights query (fleet)" if props.get("Metrics") else "per instance",
    }


def _function_retries(template: dict[str, Any]) -> int | None:
    for resource in template.get("Resources", {}).values():
        if resource.get("Type") == "AWS::Lambda::EventInvokeConfig":
            value = resource.get("Properties", {}).get("MaximumRetryAttempts")
            return int(value) if value is not None else None
    return None


def window(settings: dict[str, Any], *, crashcart: bool) -> dict[str, Any]:
    """Earliest / latest seconds from the first failed check, step by step."""
    period = settings["period"]
    n = settings["datapoints_to_alarm"]
    a = ASSUMPTIONS
    steps: list[tuple[str, float, float, str]] = [
        (
            f"{n} breaching one-minute datapoints (first bucket closes 0-{period} s after the "
            "failed check)",
            (n - 1) * period,
            n * period,
            "template: Period, DatapointsToAlarm",
        ),
        ("datapoint published", a["publication"][0], a["publication"][1], "assumption"),
        ("alarm evaluated (once per period)", 0, period, "CloudWatch: every period"),
    ]
    if crashcart:
        steps += [
            ("EventBridge -> Lambda (async)", a["delivery"][0], a["delivery"][1], "assumption"),
            ("Lambda cold start", a["cold_start"][0], a["cold_start"][1], "assumption"),
            ("guards -> SendDiagnosticInterrupt", a["handler"][0], a["handler"][1], "assumption"),
        ]
    else:
        steps.append(
            ("EC2 reboot action", a["native_action"][0], a["native_action"][1], "assumption")
        )
    return {
        "steps": [
            {"step": s, "earliest": lo, "latest": hi, "source": src} for s, lo, hi, src in steps
        ],
        "earliest": sum(lo for _, lo, _, _ in steps),
        "latest": sum(hi for _, _, hi, _ in steps),
    }


def _mmss(seconds: float) -> str:
    whole = round(seconds)
    return f"{whole // 60}:{whole % 60:02d} ({seconds:,.1f} s)"


def _templates(ctx: Context) -> dict[str, dict[str, Any]]:
    templates: dict[str, dict[str, Any]] = {}
    assembly = ctx.shared.get("reference_assembly")
    if assembly is not None:
        for path in sorted(assembly.glob("*.template.json")):
            template = json.loads(path.read_text())
            if _status_alarms(template):
                templates[f"reference app: {path.name}"] = template
    for key, label in (("fleet_template", "dynamic"), ("explicit_template", "explicit")):
        if ctx.shared.get(key):
            templates[f"remediation stack ({label} mode)"] = ctx.shared[key]
    if not templates:
        log("detection_latency: synthesizing the remediation stack (dynamic mode)")
        from benchmarks.template_scale import _Synth

        templates["remediation stack (dynamic mode)"] = _Synth(ctx.workdir).synth(ids=None)[
            "template"
        ]
    return templates


def run(ctx: Context) -> dict[str, Any]:
    templates = _templates(ctx)
    alarms: list[dict[str, Any]] = []
    retries: int | None = None
    for source, template in templates.items():
        for logical, props in _status_alarms(template):
            alarms.append({"source": source, "alarm": logical, **alarm_settings(props)})
        retries = retries if retries is not None else _function_retries(template)
    if not alarms:
        raise SkipError("no StatusCheckFailed_Instance alarm found in the synthesized templates")
    # One row per distinct alarm setting (the per-instance alarms all share theirs).
    distinct: dict[tuple[Any, ...], dict[str, Any]] = {}
    for alarm in alarms:
        key = (
            alarm["kind"],
            alarm["period"],
            alarm["evaluation_periods"],
            alarm["datapoints_to_alarm"],
        )
        distinct.setdefault(key, alarm)
    native = window(NATIVE, crashcart=False)
    rows: list[list[Any]] = []
    figures: dict[str, Any] = {"native_reboot_alarm": {**NATIVE, **native}, "alarms": []}
    for alarm in distinct.values():
        ours = window(alarm, crashcart=True)
        entry = {
            **{
                k: alarm[k]
                for k in (
                    "source",
                    "alarm",
                    "kind",
                    "period",
                    "evaluation_periods",
                    "datapoints_to_alarm",
                    "treat_missing_data",
                )
            },
            **ours,
            "ratio_earliest": round(ours["earliest"] / native["earliest"], 2),
            "ratio_latest": round(ours["latest"] / native["latest"], 2),
        }
        figures["alarms"].append(entry)
        rows.append(
            [
                f"crashcart, {alarm['kind']} alarm",
                f"{alarm['datapoints_to_alarm']} of {alarm['evaluation_periods']} x "
                f"{alarm['period']} s",
                _mmss(ours["earliest"]),
                _mmss(ours["latest"]),
                f"{entry['ratio_earliest']:.2f}x / {entry['ratio_latest']:.2f}x",
            ]
        )
    rows.append(
        [
            "native reboot alarm AWS recommends",
            f"{NATIVE['datapoints_to_alarm']} of {NATIVE['evaluation_periods']} x "
            f"{NATIVE['period']} s",
            _mmss(native["earliest"]),
            _mmss(native["latest"]),
            "1.00x (baseline)",
        ]
    )
    first = figures["alarms"][0]
    step_rows = [
        [s["step"], f"{s['earliest']:g} s", f"{s['latest']:g} s", s["source"]]
        for s in first["steps"]
    ]
    retry_extra = sum(LAMBDA_RETRY_DELAYS[: retries or 0])
    figures["function_retry_attempts"] = retries
    figures["latest_with_retries"] = first["latest"] + retry_extra
    figures["assumptions"] = {
        k: {"earliest": v[0], "latest": v[1], "why": v[2]} for k, v in ASSUMPTIONS.items()
    }
    checks = [
        check(
            "crashcart's alarm window is not shorter than AWS's recommended reboot alarm",
            all(a["datapoints_to_alarm"] * a["period"] >= 180 for a in figures["alarms"]),
            ", ".join(
                f"{a['kind']}: {a['datapoints_to_alarm']} x {a['period']} s"
                for a in figures["alarms"]
            ),
        ),
        check(
            "missing data is not breaching (a stopped instance is not a hang)",
            all(a["treat_missing_data"] == "notBreaching" for a in figures["alarms"]),
            ", ".join(sorted({a["treat_missing_data"] for a in figures["alarms"]})),
        ),
    ]
    return {
        "figures": figures,
        "summary": {
            "first failed check -> interrupt call (crashcart, default alarm)": (
                f"{_mmss(first['earliest'])} to {_mmss(first['latest'])}"
            ),
            "native reboot alarm (3 x 1 min)": f"{_mmss(native['earliest'])} to "
            f"{_mmss(native['latest'])}",
            "ratio crashcart / native (earliest / latest)": f"{first['ratio_earliest']:.2f}x / "
            f"{first['ratio_latest']:.2f}x",
        },
        "tables": [
            table(
                "Earliest and latest time from the first failed status check",
                ["path", "alarm (from the template)", "earliest", "latest", "ratio to native"],
                rows,
            ),
            table(
                f"Steps of crashcart's path ({first['kind']} alarm)",
                ["step", "earliest", "latest", "source"],
                step_rows,
            ),
            table(
                "Assumptions",
                ["name", "earliest", "latest", "why"],
                [[k, f"{v[0]:g} s", f"{v[1]:g} s", v[2]] for k, v in ASSUMPTIONS.items()],
            ),
        ],
        "checks": checks,
        "notes": [
            "Templates read: " + "; ".join(sorted(templates)) + ".",
            "Counting from the hang itself adds 0-60 s: the next status check is the first "
            "to fail.",
            f"If the function fails (e.g. an AWS API is unreachable; it fails closed), Lambda "
            f"retries it {retries if retries is not None else '?'} time(s), about 1 and 2 "
            f"minutes apart: the latest time becomes {_mmss(figures['latest_with_retries'])}.",
            "The function re-confirms `impaired` with DescribeInstanceStatus before acting, so "
            "a shorter alarm window would not make it less safe, only noisier; the default "
            "matches AWS's reboot recommendation because an interrupt ends in a reboot.",
            "With the same window, the difference to the native alarm is only delivery, cold "
            f"start and guards: {first['earliest'] - native['earliest']:+.1f} s at the "
            f"earliest, {first['latest'] - native['latest']:+.1f} s at the latest; the alarm "
            "window dominates both.",
        ],
    }
