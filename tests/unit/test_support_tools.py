"""What a test that needs shellcheck does without it: skip on a developer machine (the
everyday loop needs no root), fail under CI (the lint of every bash step must run there)."""

from __future__ import annotations

import pytest

from tests.support import tools


@pytest.fixture
def no_shellcheck(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.setattr(tools.shutil, "which", lambda name: None)
    return monkeypatch


@pytest.mark.parametrize("value", ["", "0", "false", "False", "no"])
def test_without_ci_a_missing_shellcheck_skips_with_the_reason(
    no_shellcheck: pytest.MonkeyPatch, value: str
) -> None:
    no_shellcheck.setenv("CI", value)
    with pytest.raises(pytest.skip.Exception, match="shellcheck is not installed"):
        tools.require_shellcheck()
    no_shellcheck.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="CI is unset"):
        tools.require_shellcheck()


@pytest.mark.parametrize("value", ["true", "1", "yes", "TRUE"])
def test_under_ci_a_missing_shellcheck_fails(no_shellcheck: pytest.MonkeyPatch, value: str) -> None:
    no_shellcheck.setenv("CI", value)
    with pytest.raises(pytest.fail.Exception, match="CI is set"):
        tools.require_shellcheck()


def test_with_shellcheck_nothing_happens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tools.shutil, "which", lambda name: "/usr/bin/shellcheck")
    monkeypatch.setenv("CI", "true")
    tools.require_shellcheck()
