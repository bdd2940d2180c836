"""Benchmark 2 - template scale: the remediation stack for fleets of 10 to 10,000 instances.

The stack is ``crashcart.stacks.remediation.CrashcartRemediationStack`` (the construct plus
its stand-in evidence bucket), synthesized in-process with the repository's feature flags.

- Dynamic mode (``fleet=FleetWatch()``): one Metrics Insights alarm watches every instance
  of the account and region; which instances are watched is decided by their opt-in tag at
  run time, so the fleet size is not an input of the template at all. The benchmark
  synthesizes it once per fleet size anyway and checks the templates are byte-identical.
- Explicit mode (``instance_ids=[...]``, raw ids ``i-`` + 17 hex digits): one alarm per
  instance. The figures give the fixed part and the growth per instance, the largest list
  that fits under CloudFormation's 500-resource limit (synthesized at exactly that size),
  and check that one more instance - and 1,000 or 10,000 - fail at construction time with a
  ConfigurationError that names the limit and the way out.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from pathlib import Path
from typing import Any

from benchmarks.common import REPO_ROOT, Context, SkipError, check, log, table

NAME = "template_scale"
TITLE = "Template scale: remediation stack, dynamic vs explicit instances"

SIZES_FULL = (10, 100, 1_000, 10_000)
SIZES_SMOKE = (10,)
#: CloudFormation quotas (per stack / template body).
MAX_RESOURCES = 500
MAX_TEMPLATE_BYTES_S3 = 1_000_000  # template body uploaded through S3 (what cdk deploy does)
MAX_TEMPLATE_BYTES_INLINE = 51_200  # template body passed inline
#: Feature flags of cdk.json that CDK v2 refuses when given to an App in-process.
_V1_ONLY_FLAGS = {"@aws-cdk/core:enableStackNameDuplicates"}
ACCOUNT = "111111111111"
REGION = "eu-west-1"


def instance_ids(count: int, start: int = 0) -> list[str]:
    """``count`` distinct, valid instance ids (``i-`` + 17 lower-case hex digits)."""
    return [f"i-{start + n + 1:017x}" for n in range(count)]


def _context() -> dict[str, Any]:
    context: dict[str, Any] = json.loads((REPO_ROOT / "cdk.json").read_text()).get("context", {})
    return {k: v for k, v in context.items() if k not in _V1_ONLY_FLAGS}


class _Synth:
    def __init__(self, workdir: Path) -> None:
        try:
            import aws_cdk as cdk

            from crashcart.constructs.unresponsive_instance_remediation import FleetWatch
            from crashcart.errors import ConfigurationError
            from crashcart.stacks.remediation import CrashcartRemediationStack
        except ImportError as error:
            raise SkipError(f"the remediation stack cannot be imported: {error}") from error
        self.cdk = cdk
        self.fleet_watch = FleetWatch
        self.configuration_error = ConfigurationError
        self.stack_class = CrashcartRemediationStack
        self.workdir = workdir
        self.count = 0

    def build(self, *, ids: list[str] | None) -> tuple[Any, Any]:
        self.count += 1
        outdir = self.workdir / f"scale-{self.count}"
        app = self.cdk.App(outdir=str(outdir), context=_context())
        kwargs: dict[str, Any] = {"instance_ids": ids} if ids else {"fleet": self.fleet_watch()}
        stack = self.stack_class(
            app,
            "CrashcartRemediation",
            env=self.cdk.Environment(account=ACCOUNT, region=REGION),
            **kwargs,
        )
        return app, stack

    def synth(self, *, ids: list[str] | None) -> dict[str, Any]:
        started = time.perf_counter()
        app, stack = self.build(ids=ids)
        assembly = app.synth()
        seconds = time.perf_counter() - started
        artifact = assembly.get_stack_artifact(stack.artifact_id)
        path = Path(assembly.directory) / artifact.template_file
        body = path.read_bytes()
        template = json.loads(body)
        resources = template.get("Resources", {})
        alarms = [
            r
            for r in resources.values()
            if r["Type"] == "AWS::CloudWatch::Alarm"
            and (
                r["Properties"].get("MetricName") == "StatusCheckFailed_Instance"
                or "StatusCheckFailed_Instance" in json.dumps(r["Properties"].get("Metrics", ""))
            )
        ]
        return {
            "resources": len(resources),
            "status_alarms": len(alarms),
            "bytes": len(body),
            "minified_bytes": len(json.dumps(template, separators=(",", ":"))),
            "sha256": hashlib.sha256(body).hexdigest(),
            "seconds": round(seconds, 2),
            "template_path": str(path),
            "template": template,
        }

    def refuse(self, *, ids: list[str]) -> dict[str, Any]:
        """Build with ``ids``; expect a ConfigurationError before anything is synthesized."""
        started = time.perf_counter()
        try:
            self.build(ids=ids)
        except self.configuration_error as error:
            return {
                "refused": True,
                "message": str(error),
                "seconds": round(time.perf_counter() - started, 2),
            }
        return {"refused": False, "message": "", "seconds": round(time.perf_counter() - started, 2)}


def _max_explicit(synth: _Synth) -> tuple[int, int]:
    """(what the construct's ``max_explicit_instances`` promises, what it really accepts).

    The promise is read with one instance listed. The real limit is first read from the
    refusal of 501 instances (its message names the room left when the construct checked),
    then tried on both sides: that many accepted, one more refused. If the message names no
    room or the try fails, the limit is found by bisection from the promise, between 1 and
    500. Each accepted try builds the whole stack with hundreds of alarms (seconds each; a
    refusal comes before any alarm is created): reading the room first needs one such build
    where bisection needs about seven (issue 24: the smoke run in every ``make check``).
    Both rely on the construct accepting every count up to its limit and refusing every
    count past it, which is what its check does: it compares the count with the room left
    in the stack. The run checks the limit it finds on both sides: one more is refused at
    construction (and, in a full run, the limit itself is synthesized).
    """
    _, stack = synth.build(ids=instance_ids(1))
    promised = 1 + int(stack.remediation.max_explicit_instances)

    def accepts(count: int) -> bool:
        return not synth.refuse(ids=instance_ids(count))["refused"]

    named = _named_room(synth.refuse(ids=instance_ids(MAX_RESOURCES + 1))["message"])
    # the refusal of one more first: it is cheap, an acceptance is not
    if (
        named is not None
        and 0 < named < MAX_RESOURCES
        and not accepts(named + 1)
        and accepts(named)
    ):
        return promised, named
    # Invariant: ``low`` is accepted (1 is assumed, as the construct's minimum), ``high``
    # is refused (MAX_RESOURCES + 1 is never asked: no stack can hold it).
    low, high = (promised, MAX_RESOURCES + 1) if accepts(promised) else (1, promised)
    while high - low > 1:
        middle = (low + high) // 2
        if accepts(middle):
            low = middle
        else:
            high = middle
    return promised, low


def _named_room(message: str) -> int | None:
    """How many instances the room a refusal names holds (None if it names none)."""
    from crashcart.constructs.unresponsive_instance_remediation import RESOURCES_PER_INSTANCE

    found = re.search(r"has room for at most (\d+) more resources", message)
    return int(found.group(1)) // RESOURCES_PER_INSTANCE if found else None


def run(ctx: Context) -> dict[str, Any]:
    synth = _Synth(ctx.workdir)
    sizes = SIZES_SMOKE if ctx.smoke else SIZES_FULL
    dynamic: dict[int, dict[str, Any]] = {}
    explicit: dict[int, dict[str, Any]] = {}
    checks: list[dict[str, Any]] = []
    for size in sizes:
        log(f"template_scale: dynamic mode, {size:,} instances")
        dynamic[size] = synth.synth(ids=None)
    ctx.shared["fleet_template"] = dynamic[sizes[0]]["template"]
    promised, limit = _max_explicit(synth)
    log(
        f"template_scale: the construct accepts at most {limit} explicit instances "
        f"(its max_explicit_instances says {promised})"
    )
    for size in sizes:
        log(f"template_scale: explicit mode, {size:,} instances")
        if size <= limit:
            explicit[size] = synth.synth(ids=instance_ids(size))
        else:
            explicit[size] = synth.refuse(ids=instance_ids(size))
    smallest = explicit[sizes[0]]
    ctx.shared["explicit_template"] = smallest.get("template")
    # Growth per instance from the two smallest synthesized sizes (one size in smoke mode:
    # then against the construct's declared constant).
    synthesized = [s for s in sizes if "resources" in explicit[s]]
    if len(synthesized) >= 2:
        a, b = synthesized[0], synthesized[1]
        per_resource = (explicit[b]["resources"] - explicit[a]["resources"]) / (b - a)
        per_byte = (explicit[b]["bytes"] - explicit[a]["bytes"]) / (b - a)
    else:
        from crashcart.constructs.unresponsive_instance_remediation import (
            RESOURCES_PER_INSTANCE,
        )

        a = synthesized[0]
        per_resource = float(RESOURCES_PER_INSTANCE)
        per_byte = float("nan")
    fixed_resources = explicit[synthesized[0]]["resources"] - per_resource * synthesized[0]
    boundary: dict[str, Any] = {"max_instances": limit, "promised_by_property": promised}
    if not ctx.smoke:
        log(f"template_scale: explicit mode at the limit, {limit} instances")
        try:
            at_limit = synth.synth(ids=instance_ids(limit))
        except Exception as error:  # e.g. CDK's own TooManyResourcesInStack at synth time
            message = str(error)
            boundary["synth_error"] = message[:600]
            found = re.search(r"(\d+) is greater than allowed maximum of (\d+)", message) or (
                re.search(r"would have (\d+) resources, more than the (\d+)", message)
            )
            if found:
                boundary["resources"] = int(found.group(1))
                boundary["fits"] = limit - (int(found.group(1)) - int(found.group(2)))
            # The construct's own synth-time check (resources added to the stack after it)
            # is a clear refusal before CloudFormation; CDK's generic error is not.
            boundary["refused_by_construct"] = "fleet=FleetWatch()" in message
        else:
            boundary.update(
                {k: v for k, v in at_limit.items() if k not in ("template", "template_path")}
            )
    over = synth.refuse(ids=instance_ids(limit + 1))
    boundary["one_more"] = over

    # -- checks ---------------------------------------------------------------------------
    hashes = {d["sha256"] for d in dynamic.values()}
    checks.append(
        check(
            "dynamic mode: the template is identical for every fleet size",
            len(hashes) == 1,
            f"{len(hashes)} distinct template(s) over {len(dynamic)} sizes; "
            f"{dynamic[sizes[0]]['resources']} resources, {dynamic[sizes[0]]['bytes']:,} bytes",
        )
    )
    checks.append(
        check(
            "dynamic mode: exactly one status-check alarm",
            all(d["status_alarms"] == 1 for d in dynamic.values()),
            f"{dynamic[sizes[0]]['status_alarms']} alarm(s)",
        )
    )
    checks.append(
        check(
            "explicit mode: one status-check alarm per listed instance",
            all(explicit[s]["status_alarms"] == s for s in synthesized),
            ", ".join(f"{s}: {explicit[s]['status_alarms']}" for s in synthesized),
        )
    )
    if "synth_error" in boundary:
        checks.append(
            check(
                f"explicit mode at the largest list the construct accepts ({limit}) either "
                f"stays within {MAX_RESOURCES} resources or fails at synth with the "
                "construct's clear message",
                bool(boundary.get("refused_by_construct")),
                f"synth refused: {boundary['synth_error'][:300]}",
            )
        )
    elif "resources" in boundary:
        checks.append(
            check(
                f"explicit mode at the largest list the construct accepts ({limit}) stays "
                f"within {MAX_RESOURCES} resources",
                boundary["resources"] <= MAX_RESOURCES,
                f"{boundary['resources']} resources, {boundary['bytes']:,} bytes",
            )
        )
        checks.append(
            check(
                "explicit mode at the limit stays within the 1 MB template body quota",
                boundary["bytes"] <= MAX_TEMPLATE_BYTES_S3,
                f"{boundary['bytes']:,} bytes",
            )
        )
    message = over["message"]
    checks.append(
        check(
            f"one instance past the limit ({limit + 1}) fails at construction time with a "
            "clear message",
            over["refused"]
            and str(MAX_RESOURCES) in message
            and "fleet" in message.lower()
            and str(limit + 1) in message,
            message[:300] if message else "no error raised",
        )
    )
    for size in sizes:
        if size > limit:
            refused = explicit[size]
            checks.append(
                check(
                    f"explicit mode with {size:,} instances is refused with a clear message",
                    refused.get("refused", False) and str(MAX_RESOURCES) in refused["message"],
                    refused.get("message", "")[:160],
                )
            )

    # -- tables ---------------------------------------------------------------------------
    base = dynamic[sizes[0]]
    rows: list[list[Any]] = []
    for size in sizes:
        d, e = dynamic[size], explicit[size]
        if "resources" in e:
            e_res = f"{e['resources']} ({e['resources'] / MAX_RESOURCES:.0%} of 500)"
            e_bytes = f"{e['bytes']:,}"
            e_ratio = f"{e['bytes'] / base['bytes']:.2f}x"
        else:
            e_res = "refused at construction (ConfigurationError)"
            e_bytes = "-"
            e_ratio = "-"
        rows.append(
            [
                f"{size:,}",
                d["resources"],
                f"{d['bytes']:,}",
                e_res,
                e_bytes,
                e_ratio,
            ]
        )
    if "synth_error" in boundary:
        rows.append(
            [
                f"{limit} (the most the construct accepts)",
                base["resources"],
                f"{base['bytes']:,}",
                f"refused at synth: {boundary.get('resources', '?')} resources > 500"
                + (f" (about {boundary['fits']} would fit)" if "fits" in boundary else ""),
                "-",
                "-",
            ]
        )
    elif "resources" in boundary:
        rows.append(
            [
                f"{limit} (the construct's limit)",
                base["resources"],
                f"{base['bytes']:,}",
                f"{boundary['resources']} ({boundary['resources'] / MAX_RESOURCES:.0%} of 500)",
                f"{boundary['bytes']:,}",
                f"{boundary['bytes'] / base['bytes']:.2f}x",
            ]
        )
    bytes_note = (
        f"about {per_byte:,.0f} bytes per listed instance"
        if per_byte == per_byte  # not NaN
        else "bytes per instance: needs two sizes (full run)"
    )
    inline_cross = (
        int((MAX_TEMPLATE_BYTES_INLINE - (smallest["bytes"] - per_byte * sizes[0])) / per_byte)
        if per_byte == per_byte and per_byte > 0
        else None
    )
    figures = {
        "dynamic": {
            str(s): {k: v for k, v in d.items() if k not in ("template", "template_path")}
            for s, d in dynamic.items()
        },
        "explicit": {
            str(s): {k: v for k, v in e.items() if k not in ("template", "template_path")}
            for s, e in explicit.items()
        },
        "explicit_resources_per_instance": per_resource,
        "explicit_bytes_per_instance": None if per_byte != per_byte else round(per_byte, 1),
        "explicit_fixed_resources": fixed_resources,
        "explicit_limit": boundary,
        "inline_template_limit_crossed_at": inline_cross,
    }
    summary = {
        "dynamic mode, resources for any fleet size": f"{base['resources']} "
        f"({base['bytes']:,} bytes), constant: {len(hashes) == 1}",
        "explicit mode, growth": f"+{per_resource:g} resource per instance, {bytes_note}",
        "explicit mode, most instances per stack": (
            f"{limit} (refuses {limit + 1} with a ConfigurationError)"
            if "synth_error" not in boundary
            else f"the construct accepts {limit}, but that stack would have "
            f"{boundary.get('resources', '?')} resources: the construct refuses it at synth; about "
            f"{boundary.get('fits', '?')} fit"
        ),
    }
    notes = [
        "Dynamic mode's fleet size is not an input of the template (instances opt in by tag "
        "and are re-checked by the function), so a constant template is the design, verified "
        "here by synthesizing per size. Its scale limits are AWS's, not CloudFormation's: a "
        "Metrics Insights query processes at most 10,000 metrics and returns at most 500 "
        "contributors per evaluation (see docs/remediation.md).",
        f"Explicit mode: {fixed_resources:g} fixed resources plus {per_resource:g} per instance; "
        f"the construct computes its room from the stack it is in, so other resources in the "
        f"same stack lower the limit.",
        "Template bytes are the file CDK writes (what `cdk deploy` uploads through the "
        "bootstrap bucket: 1 MB quota). Passed inline (51,200 bytes quota) the explicit "
        "template would outgrow it"
        + (f" at about {inline_cross} instances." if inline_cross else "."),
        "Times per synthesis are in results.json (in-process CDK, jsii already started).",
    ]
    if promised != limit:
        notes.append(
            f"The construct's `max_explicit_instances` (read with one instance listed) says "
            f"{promised} in all, but it accepts {limit}: the property and the construction-"
            "time check count the stack's resources differently."
        )
    return {
        "figures": figures,
        "summary": summary,
        "tables": [
            table(
                "Resources and template bytes by fleet size",
                [
                    "instances",
                    "dynamic: resources",
                    "dynamic: bytes",
                    "explicit: resources",
                    "explicit: bytes",
                    "explicit bytes / dynamic bytes",
                ],
                rows,
            )
        ],
        "checks": checks,
        "notes": notes,
    }
