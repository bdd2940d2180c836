"""The entry pieces and the environment reader every function shares (crashcart.runtime)."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from crashcart.runtime.entry import rejecting, request_id, warm_clients
from crashcart.runtime.environment_reader import EnvironmentReader, require


class _BadError(Exception):
    pass


def test_warm_clients_makes_them_once_per_container() -> None:
    container: dict[str, Any] = {}
    made: list[int] = []

    def make() -> dict[str, Any]:
        made.append(1)
        return {"s3": object()}

    first = warm_clients(container, make)
    assert warm_clients(container, make) is first is container
    assert len(made) == 1


def test_warm_clients_keeps_what_a_test_put_there() -> None:
    stub = object()
    container: dict[str, Any] = {"s3": stub}
    assert warm_clients(container, lambda: {"s3": object()})["s3"] is stub


@pytest.mark.parametrize(
    ("error", "logged"),
    [
        (_BadError("no detail"), [{"outcome": "rejected", "reason": "no detail"}]),
        (KeyError("x"), []),  # not a bad event: raised as is, not logged as a rejection
    ],
)
def test_rejecting_logs_a_bad_event_and_raises_every_error_again(
    caplog: pytest.LogCaptureFixture, error: Exception, logged: list[dict[str, str]]
) -> None:
    log = logging.getLogger("crashcart.test-entry")
    with (
        caplog.at_level(logging.ERROR, logger=log.name),
        pytest.raises(type(error)),
        rejecting(log, _BadError),
    ):
        raise error
    assert [json.loads(r.getMessage()) for r in caplog.records] == logged


def test_request_id_outside_lambda_is_unknown() -> None:
    assert request_id(object()) == "unknown"


def test_require_names_every_missing_or_empty_variable() -> None:
    with pytest.raises(_BadError, match=r"missing environment variables: A, C$"):
        require({"A": "", "B": "b"}, ("A", "B", "C"), _BadError)
    require({"A": "a"}, ("A",), _BadError)


def test_the_reader_uses_defaults_and_refuses_empty_required_values() -> None:
    defaults = {"REQ": None, "N": "7", "FLAG": "false", "OFF": ""}
    read = EnvironmentReader({"REQ": " x "}, defaults, _BadError)
    assert (read.text("REQ"), read.integer("N"), read.boolean("FLAG")) == ("x", 7, False)
    assert read.optional("OFF") == ""
    with pytest.raises(_BadError, match="REQ is not set"):
        EnvironmentReader({}, defaults, _BadError).text("REQ")
    with pytest.raises(_BadError, match="REQ is empty"):
        EnvironmentReader({"REQ": " "}, defaults, _BadError).text("REQ")
    assert EnvironmentReader({"REQ": " "}, defaults, _BadError, allow_empty=True).text("REQ") == ""


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("N", "-1", "expected a whole number of 0 or more"),
        ("N", "12345678901", "expected a whole number of 0 or more"),
        ("FLAG", "yes", "expected 'true' or 'false'"),
    ],
)
def test_the_reader_names_the_bad_variable(name: str, value: str, message: str) -> None:
    read = EnvironmentReader({name: value}, {"N": "0", "FLAG": "false"}, _BadError)
    with pytest.raises(_BadError, match=f"{name}=.*{message}"):
        read.integer(name) if name == "N" else read.boolean(name)
