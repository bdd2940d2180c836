"""How the suite is spread over two workers (issue 24): long modules go out first.

xdist's default order sends the modules with the most tests first, so the drill's few,
minutes-long tests went last and one worker ran them alone. The Makefile turns that off and
``tests/conftest.py`` orders modules: e2e, then ``slow``, then the rest as collected. The
drill's modules write their results from separate workers into one file.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass, field

from tests.conftest import REPO_ROOT, pytest_collection_modifyitems
from tests.support.drill import merge_results


@dataclass
class _Item:
    nodeid: str
    markers: set[str] = field(default_factory=set)
    fixturenames: tuple[str, ...] = ()

    def get_closest_marker(self, name: str) -> object | None:
        return name if name in self.markers else None


def test_e2e_modules_then_slow_ones_then_the_rest_in_collection_order() -> None:
    items = [
        _Item("tests/unit/test_a.py::one"),
        _Item("tests/unit/test_a.py::two"),
        _Item("tests/functional/test_slow.py::one", {"slow"}),
        _Item("tests/unit/test_b.py::one"),
        _Item("tests/e2e/test_drill.py::one", {"e2e", "slow"}),
        _Item("tests/functional/test_mixed.py::quick"),
        _Item("tests/functional/test_mixed.py::long", {"slow"}),
        _Item("tests/e2e/test_drill.py::two", {"e2e", "slow"}),
    ]
    pytest_collection_modifyitems(items)  # type: ignore[arg-type]
    assert [item.nodeid for item in items] == [
        "tests/e2e/test_drill.py::one",
        "tests/e2e/test_drill.py::two",
        "tests/functional/test_slow.py::one",
        # a module ranks as its longest test, and keeps its tests' order
        "tests/functional/test_mixed.py::quick",
        "tests/functional/test_mixed.py::long",
        "tests/unit/test_a.py::one",
        "tests/unit/test_a.py::two",
        "tests/unit/test_b.py::one",
    ]


def _first_assignments(nodeids: list[str]) -> dict[str, list[str]]:
    """What xdist's ``--dist loadfile`` (the Makefile's ``-n 2 --no-loadscope-reorder``) gives
    each of two workers when the run starts, from its own scheduler."""
    from xdist.scheduler.loadfile import LoadFileScheduling

    class Config:
        option = type("Options", (), {"loadscopereorder": False})

        @staticmethod
        def getvalue(name: str) -> object:
            return {"tx": ["2*popen"], "numprocesses": 2}.get(name)

    class Node:
        def __init__(self, name: str) -> None:
            self.gateway = type("Gateway", (), {"id": name})()
            self.shutting_down = False

        def send_runtest_some(self, _indices: list[int]) -> None:
            pass

        def shutdown(self) -> None:
            self.shutting_down = True

    scheduler = LoadFileScheduling(Config())  # type: ignore[arg-type]
    nodes = [Node("gw0"), Node("gw1")]
    for node in nodes:
        scheduler.add_node(node)  # type: ignore[arg-type]
        scheduler.add_node_collection(node, nodeids)  # type: ignore[arg-type]
    scheduler.schedule()
    return {
        node.gateway.id: list(scheduler.assigned_work[node])  # type: ignore[index]
        for node in nodes
    }


def test_the_running_instance_preparation_starts_at_once_with_no_drill_module_behind_it() -> None:
    drill = {"e2e", "slow"}
    items = [
        _Item("tests/e2e/test_drill_negative_controls.py::kdump-disabled", drill),
        _Item("tests/e2e/test_drill_negative_controls.py::crashkernel-missing", drill),
        _Item("tests/e2e/test_drill_negative_controls.py::nmi-panic-off", drill),
        _Item(
            "tests/e2e/test_drill_running_instance.py::armed", drill, ("running_instance_image",)
        ),
        _Item("tests/e2e/test_drill_scenarios.py::image", drill),
        _Item("tests/e2e/test_drill_scenarios.py::idle", drill),
        _Item("tests/e2e/test_drill_scenarios.py::hung_cpus", drill),
        _Item("tests/functional/test_slow.py::one", {"slow"}),
        _Item("tests/functional/test_slow.py::two", {"slow"}),
        _Item("tests/unit/test_a.py::one"),
    ]
    pytest_collection_modifyitems(items)  # type: ignore[arg-type]
    modules = list(dict.fromkeys(item.nodeid.split("::")[0] for item in items))
    assert modules == [
        "tests/e2e/test_drill_negative_controls.py",
        "tests/e2e/test_drill_running_instance.py",  # second: alone on the second worker
        "tests/functional/test_slow.py",
        "tests/e2e/test_drill_scenarios.py",
        "tests/unit/test_a.py",
    ]
    assigned = _first_assignments([item.nodeid for item in items])
    assert assigned == {
        "gw0": ["tests/e2e/test_drill_negative_controls.py"],
        # xdist gives a one-test module a second module at once: not a drill one
        "gw1": ["tests/e2e/test_drill_running_instance.py", "tests/functional/test_slow.py"],
    }


def test_make_keeps_that_order_and_whole_modules_per_worker() -> None:
    makefile = (REPO_ROOT / "Makefile").read_text()
    (args,) = re.findall(r"^PYTEST_ARGS \?= (.*)$", makefile, re.MULTILINE)
    assert args.split() == ["-n", "2", "--dist", "loadfile", "--no-loadscope-reorder"]


def test_one_runs_drill_modules_merge_into_one_results_file() -> None:
    first = merge_results(
        {},
        {
            "scenarios": {"negative-kdump-disabled": {"passed": True}},
            "images": {"pipeline": {"prepared_key": "p"}},
            "image": {"prepared_key": "p"},
            "load_average": {"start": [3.0, 2.0, 1.0]},
        },
        run="run-1",
    )
    second = merge_results(
        first,
        {
            "scenarios": {"running-instance": {"passed": True}},
            "images": {"running-instance": {"prepared_key": "r"}},
            "load_average": {"start": [5.0, 2.0, 1.0]},
        },
        run="run-1",
    )
    assert list(second["scenarios"]) == ["negative-kdump-disabled", "running-instance"]
    assert second["images"] == {
        "pipeline": {"prepared_key": "p"},
        "running-instance": {"prepared_key": "r"},
    }
    assert second["image"] == {"prepared_key": "p"}  # the pipeline's image is the run's
    assert second["load_average"] == {"start": [3.0, 2.0, 1.0]}
    # another run's file is replaced, not merged
    other = merge_results(second, {"scenarios": {"idle": {"passed": True}}}, run="run-2")
    assert list(other["scenarios"]) == ["idle"] and other["run"] == "run-2"


def test_the_order_is_made_after_the_selection() -> None:
    """With the running-instance module deselected (``-k``), the pipeline image's scenarios
    still follow the first drill module at once: the order is made from the tests that will
    run (``trylast``, after pytest's own ``-m``/``-k``/``--deselect``), not from all of them."""
    collected = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
            "-k",
            "not running_instance",
            "tests/e2e/test_drill_running_instance.py",
            "tests/e2e/test_drill_negative_controls.py",
            "tests/e2e/test_drill_scenarios.py",
            "tests/functional/test_bench_smoke.py",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    modules = list(
        dict.fromkeys(line.split("::")[0] for line in collected.splitlines() if "::" in line)
    )
    assert modules == [
        "tests/e2e/test_drill_negative_controls.py",
        "tests/e2e/test_drill_scenarios.py",
        "tests/functional/test_bench_smoke.py",
    ]
