"""The drill's prepared images, shared by the e2e modules (tests/e2e/test_drill_*.py).

Each module gets its own fixture instance, so modules can run on different xdist workers at
once (``make test``: the drill's modules start first, beside the rest of the suite). The
image is prepared once: a second process waits on the cache's lock and finds it prepared.
Every module writes its results at its end; one run's modules merge into
``<drill cache>/e2e-drill-results.json`` (``tests/support/drill.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support import drill as support


@pytest.fixture(scope="module")
def drill_image() -> Iterator[Any]:
    support.check_host()
    from crashcart.drill.prepare import prepare

    prepared = prepare()
    support.record_image(
        {
            "prepared_key": prepared.key,
            "kernel_release": prepared.kernel_release,
            "base_build_s": prepared.base_seconds,
            "prepare_s": prepared.prepare_seconds,
            "prepare_host_s": prepared.build_log.get("host_seconds"),
            "prepare_guest_s": prepared.build_log.get("guest_seconds"),
            "snapshot": prepared.snapshot.info if prepared.snapshot else None,
            "cached": prepared.cached,
        }
    )
    yield prepared
    path = support.write_results()
    if path is not None:
        print(f"\ndrill e2e results and timings: {path}")


@pytest.fixture(scope="module")
def running_instance_image() -> Iterator[Any]:
    """The base image (no crashcart configuration: an instance the pipeline did not build)
    armed in place by the running-instance SSM document's script, as its own cached image."""
    support.check_host()
    from crashcart.drill.prepare import prepare

    prepared = prepare(image="running-instance")
    support.record_image(
        {
            "prepared_key": prepared.key,
            "prepare_s": prepared.prepare_seconds,
            "prepare_guest_s": prepared.build_log.get("guest_seconds"),
            "snapshot": prepared.snapshot.info if prepared.snapshot else None,
            "cached": prepared.cached,
        },
        image="running-instance",
    )
    yield prepared
    path = support.write_results()
    if path is not None:
        print(f"\ndrill e2e results and timings: {path}")
