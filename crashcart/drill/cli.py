"""``python -m crashcart.drill``: the local NMI drill (``make drill``).

    python -m crashcart.drill                      # every scenario
    python -m crashcart.drill --scenario idle      # one (repeatable)
    python -m crashcart.drill --list
    python -m crashcart.drill --boot cold          # every scenario boots its guest

Positive scenarios after the first start from the prepared image's saved guest (booted and
validated once) instead of booting (``--boot auto``, the default): the first one boots cold,
as an instance launched from the AMI does, and its boot is the run's reference boot for the
figures. Negative controls always boot cold (their changes act at boot).

Exit status 0 when every positive scenario produced a dump and every negative control
failed for its stated reason; 1 otherwise; 2 when the drill could not run at all.
Timings are printed and written as JSON (``--json``, default
``<cache>/drill-results.json``; the path is printed).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from crashcart.drill.paths import cache_dir
from crashcart.drill.scenarios import SCENARIOS


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m crashcart.drill",
        description="Local NMI drill: the Debian 12 component, the remediation function and "
        "kdump on a real kernel under QEMU.",
    )
    parser.add_argument(
        "--scenario",
        action="append",
        choices=sorted(SCENARIOS),
        help="scenario to run (repeatable). Default: all",
    )
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    parser.add_argument("--json", type=Path, help="write results + timings here")
    parser.add_argument(
        "--rebuild",
        action="store_true",
        help="re-apply the component even if the prepared image is cached",
    )
    parser.add_argument(
        "--direct-nmi",
        action="store_true",
        help="inject the NMI through QMP without the remediation function",
    )
    parser.add_argument(
        "--force-negatives",
        action="store_true",
        help="negative controls: inject the NMI even though validation failed, "
        "and require the NMI stage to fail for the stated reason",
    )
    parser.add_argument("--no-triage", action="store_true", help="skip triage of the dump")
    parser.add_argument(
        "--boot",
        choices=BOOT_MODES,
        default="auto",
        help="how positive scenarios start: auto (the first boots cold, the others restore "
        "the saved guest), cold, or restore (all of them restore)",
    )
    return parser


BOOT_MODES = ("auto", "cold", "restore")


def restores(names: list[str], mode: str) -> dict[str, bool]:
    """Scenario name -> whether it starts from the saved guest (only positive ones do)."""
    positives = [name for name in names if SCENARIOS[name].positive]
    if mode == "cold":
        chosen: set[str] = set()
    elif mode == "restore":
        chosen = set(positives)
    elif mode == "auto":
        chosen = set(positives[1:])
    else:
        raise ValueError(f"boot mode {mode!r}: use one of {', '.join(BOOT_MODES)}")
    return {name: name in chosen for name in names}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.list:
        for scenario in SCENARIOS.values():
            kind = "positive" if scenario.positive else "negative control"
            print(f"{scenario.name:32} {kind:17} {scenario.description}")
        return 0
    names = args.scenario or list(SCENARIOS)
    return run(
        names,
        json_path=args.json,
        rebuild=args.rebuild,
        direct_nmi=args.direct_nmi,
        force_negatives=args.force_negatives,
        triage=not args.no_triage,
        boot=args.boot,
    )


def run(
    names: list[str],
    *,
    json_path: Path | None = None,
    rebuild: bool = False,
    direct_nmi: bool = False,
    force_negatives: bool = False,
    triage: bool = True,
    boot: str = "auto",
) -> int:
    from crashcart.drill.component import UnsupportedDocumentError
    from crashcart.drill.hostphase import HostStepError
    from crashcart.drill.image import ImageBuildError
    from crashcart.drill.paths import DiskSpaceError
    from crashcart.drill.prepare import StepFailedError, prepare
    from crashcart.drill.qemu import GuestError
    from crashcart.drill.remediation import MotoServer
    from crashcart.drill.run import run_scenario

    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    started = time.monotonic()
    results: dict[str, Any] = {
        "started_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "load_average": {"start": load_average()},
        "scenarios": [],
    }
    restore = restores(names, boot)
    # each image the chosen scenarios run on, prepared (or found cached) once, in order
    images = list(dict.fromkeys(SCENARIOS[name].image for name in names))
    prepared_images: dict[str, Any] = {}
    try:
        for image in images:
            prepared_images[image] = prepare(
                force=rebuild,
                snapshot=any(restore[n] for n in names if SCENARIOS[n].image == image),
                image=image,
            )
    except (
        UnsupportedDocumentError,
        ImageBuildError,
        StepFailedError,
        GuestError,
        HostStepError,
        DiskSpaceError,
    ) as error:
        print(f"drill: could not prepare the guest image: {error}", file=sys.stderr)
        if isinstance(error, StepFailedError):
            for line in error.output[-20:]:
                print(f"    {line}", file=sys.stderr)
        return 2
    results["images"] = {
        image: {
            "prepared_key": prepared.key,
            "kernel_release": prepared.kernel_release,
            "document": prepared.document.name,
            "base_build_s": prepared.base_seconds,
            "prepare_s": prepared.prepare_seconds,
            "prepare_host_s": prepared.build_log.get("host_seconds"),
            "prepare_guest_s": prepared.build_log.get("guest_seconds"),
            "cached": prepared.cached,
        }
        for image, prepared in prepared_images.items()
    }
    # the first image's figures (the pipeline's, when it is used) are the run's "image"
    results["image"] = results["images"][images[0]]
    failures = 0
    with MotoServer() as moto:
        for name in names:
            scenario = SCENARIOS[name]
            result = run_scenario(
                prepared_images[scenario.image],
                scenario,
                use_remediation=not direct_nmi,
                force=force_negatives and not scenario.positive,
                moto_url=moto.url,
                triage=triage,
                restore=restore[name],
            )
            verdict = "PASS" if result.passed else "FAIL"
            if not result.passed:
                failures += 1
            why = result.reason if result.failed_stage else "dump captured"
            expected = "" if scenario.positive else " (negative control: expected to fail)"
            print(
                f"drill: {verdict} {name}{expected}: {result.failed_stage or 'all stages'}: {why}"
            )
            results["scenarios"].append(result.as_dict())
    results["wall_s"] = round(time.monotonic() - started, 1)
    results["load_average"]["end"] = load_average()
    results["timings"] = summarize(results)
    path = json_path or cache_dir() / "drill-results.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, default=str))
    print("drill: timings: " + json.dumps(results["timings"]))
    print(f"drill: results written to {path}")
    print(f"drill: {len(names) - failures} passed, {failures} failed")
    return 1 if failures else 0


def load_average() -> list[float]:
    """The machine's 1/5/15-minute load averages (the drill's times depend on them)."""
    return [round(value, 2) for value in os.getloadavg()]


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    """The figures the benchmarks quote."""
    image = results.get("image", {})
    timings: dict[str, Any] = {
        "image_base_build_s": image.get("base_build_s"),
        "image_prepare_s": image.get("prepare_s"),
        "image_prepare_host_s": image.get("prepare_host_s"),
        "image_prepare_guest_s": image.get("prepare_guest_s"),
        "image_cached": image.get("cached"),
        "wall_s": results.get("wall_s"),
        "reference_boot_s": reference_boot(results),
    }
    for scenario in results.get("scenarios", []):
        for key, value in scenario.get("timings", {}).items():
            timings[f"{scenario['scenario']}.{key}"] = value
    return timings


def reference_boot(results: dict[str, Any]) -> float | None:
    """A plain boot of the prepared image measured in this run: boot to ready (validated,
    the agent's attestation done) of the first positive scenario that booted cold."""
    for scenario in results.get("scenarios", []):
        boot = scenario.get("timings", {}).get("boot_to_ready_s")
        if scenario.get("positive") and boot and not scenario.get("failed_stage"):
            return float(boot)
    return None


if __name__ == "__main__":
    raise SystemExit(main())
