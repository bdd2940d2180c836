"""Fixtures shared by every test layer.

- AWS credentials are fake and the default region fixed before anything imports boto3, so
  no test can reach a real account; every endpoint used by tests is on 127.0.0.1.
- CDK apps are expensive to start (jsii): synthesized stacks are shared per session.
- Temporary files of the session (every ``cdk.App()`` without an outdir makes a ``cdk.out*``
  folder, jsii's node among them) go to one folder, removed when the session ends.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import suite_record
from tests.support.speed import moto_amis_file, share_botocore_models, share_client_classes

os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_REGION": "eu-west-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
        "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
        "CDK_DISABLE_CLI_TELEMETRY": "1",
        "CDK_DISABLE_VERSION_CHECK": "1",
        "AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED": "true",
    }
)
for _var in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
    os.environ.pop(_var, None)

os.environ.setdefault("MOTO_AMIS_PATH", str(moto_amis_file()))
share_botocore_models()
share_client_classes()

#: Set for the whole session (xdist's workers inherit it from the controller, which made it).
_TEMP_HOME_VAR = "CRASHCART_TESTS_TEMP_HOME"
_temp_home: list[str] = []


def pytest_configure(config: pytest.Config) -> None:
    """Start the run's record (:mod:`tests.support.suite_record`); point TMPDIR (this
    process's and every child's) at a folder of this session.

    Not in an xdist worker: the controller made the folder and removes it. pytest's own
    ``tmp_path`` folders stay where they were (``PYTEST_DEBUG_TEMPROOT``), kept for
    debugging as pytest keeps them. A hook, not import time: the benchmarks import this
    module too.
    """
    suite_record.start(config)
    if os.environ.get(_TEMP_HOME_VAR):
        return
    os.environ.setdefault("PYTEST_DEBUG_TEMPROOT", tempfile.gettempdir())
    home = tempfile.mkdtemp(prefix="crashcart-tests-")
    # as /tmp is: tests run programs as other users (the triage parser as uid 65534)
    os.chmod(home, 0o1777)
    os.environ.update({_TEMP_HOME_VAR: home, "TMPDIR": home})
    tempfile.tempdir = home
    _temp_home.append(home)


@pytest.hookimpl(wrapper=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> Iterator[None]:
    """After every other finisher (xdist's stops its workers): the run's record."""
    yield
    suite_record.finish(session, exitstatus)


def pytest_unconfigure() -> None:
    for home in _temp_home:
        shutil.rmtree(home, ignore_errors=True)


REPO_ROOT = Path(__file__).resolve().parent.parent
EVENTS_DIR = Path(__file__).resolve().parent / "events"

#: The account and region every test stack and fake AWS resource lives in.
TEST_ACCOUNT = "111111111111"
TEST_REGION = "eu-west-1"


def load_event(name: str) -> dict[str, Any]:
    """An event fixture from tests/events/ (``name`` without ``.json``)."""
    with (EVENTS_DIR / f"{name}.json").open(encoding="utf-8") as handle:
        event: dict[str, Any] = json.load(handle)
    return event


class FakeLambdaContext:
    """The attributes of the Lambda context object that handlers read."""

    function_name = "crashcart-test"
    function_version = "$LATEST"
    invoked_function_arn = f"arn:aws:lambda:{TEST_REGION}:{TEST_ACCOUNT}:function:crashcart-test"
    memory_limit_in_mb = 256
    aws_request_id = "00000000-0000-4000-8000-000000000000"
    log_group_name = "/aws/lambda/crashcart-test"
    log_stream_name = "2026/11/26/[$LATEST]test"

    def __init__(self, remaining_ms: int = 60_000) -> None:
        self._remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self._remaining_ms


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """A moto server on 127.0.0.1 (a real process boundary for boto3); yields its URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def moto_reset(moto_server: str) -> str:
    """The moto server with all its state reset before the test."""
    import urllib.request

    request = urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=10):
        pass
    return moto_server


@pytest.fixture(scope="session")
def reference_assembly(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference app, with every compliance pack on, synthesized once per session.

    Synth raises if any pack has an unacknowledged finding, so merely getting this fixture
    means the gate passed; tests read the assembly for details.
    """
    from crashcart.tools.reference_synth import synthesize_reference_app

    outdir = tmp_path_factory.mktemp("reference-assembly")
    synthesize_reference_app(outdir)
    return outdir


@pytest.fixture(scope="session")
def reference_templates(reference_assembly: Path) -> dict[str, Path]:
    """Stack name -> synthesized template file of the reference app."""
    from crashcart.tools.synth_summary import stack_templates

    return stack_templates(reference_assembly)


#: Modules carrying these markers run first, heaviest kind first (see
#: :func:`pytest_collection_modifyitems`).
_FIRST_MARKERS = ("e2e", "slow")


def _module_rank(item: pytest.Item) -> int:
    for rank, marker in enumerate(_FIRST_MARKERS):
        if item.get_closest_marker(marker) is not None:
            return rank
    return len(_FIRST_MARKERS)


#: The fixture of the drill's longest preparation (the running-instance image: its arming
#: script runs under TCG), the critical path of a cold run (see
#: :func:`pytest_collection_modifyitems`).
_CRITICAL_FIXTURE = "running_instance_image"


def _module(item: pytest.Item) -> str:
    return item.nodeid.split("::", 1)[0]


@pytest.hookimpl(trylast=True)  # after -m / -k / --deselect: order what will run
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Long modules first: the QEMU drill, then the ``slow`` ones, then the rest as collected.

    ``make`` runs two workers with ``--dist loadfile --no-loadscope-reorder``: each module goes
    whole to one worker, in this order. xdist's default order (most tests first) sends the
    drill's few, minutes-long tests last, and one worker then runs them alone while the other
    waits; started first, they run beside everything else. A module's rank is its
    highest-ranked test's; modules keep their collection order within a rank, and tests their
    order within a module.

    One exception, for a cold run: the module that prepares the running-instance image (the
    longest preparation) goes second, so that it starts at once on the second worker, and the
    module after it is not a drill one. xdist starts each worker with one module and gives it a
    second at once when the first has at most two tests (``_reschedule``): the running-instance
    module has one, and the drill module that came next (the pipeline image's scenarios) waited
    behind its whole preparation instead of running on the other worker.
    """
    ranks: dict[str, int] = {}
    critical: set[str] = set()
    for item in items:
        module = _module(item)
        ranks[module] = min(ranks.get(module, len(_FIRST_MARKERS)), _module_rank(item))
        if _CRITICAL_FIXTURE in getattr(item, "fixturenames", ()):
            critical.add(module)
    order = sorted(ranks, key=lambda module: ranks[module])
    if len(critical) == 1 and len(order) > 2:
        drill = [module for module in order if ranks[module] == 0 and module not in critical]
        others = [module for module in order if ranks[module] != 0]
        order = [*drill[:1], *critical, *others[:1], *drill[1:], *others[1:]]
    position = {module: index for index, module in enumerate(order)}
    items.sort(key=lambda item: position[_module(item)])
