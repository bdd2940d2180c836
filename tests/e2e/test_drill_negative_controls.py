"""The drill's negative controls, end to end under QEMU: each changes the prepared image after
the component ran (as drift or a bad change would), boots it cold, and must fail fast, at
validation, for its stated reason, with no interrupt sent (the scenarios:
crashcart/drill/scenarios.py; pinned in tests/unit/test_drill_scenarios_pinned.py)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import drill as support

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.mark.parametrize(
    "name",
    ["negative-nmi-panic-off", "negative-kdump-disabled", "negative-crashkernel-missing"],
)
def test_negative_controls_fail_fast_for_their_reason(
    drill_image: Any, moto_server: str, name: str
) -> None:
    from crashcart.drill.scenarios import SCENARIOS

    scenario = SCENARIOS[name]
    result = support.run(drill_image, name, moto_server)
    assert result.failed_stage == "validate", (result.failed_stage, result.reason)
    assert scenario.expect_reason in result.reason
    assert result.passed  # i.e. failed where and why it had to
    assert not result.dump_dir
    assert "outcome" not in result.remediation, "no interrupt for a guest that failed validation"
    if name == "negative-crashkernel-missing":
        assert "crashkernel=" not in result.cmdline
    else:
        assert "crashkernel=" in result.cmdline
