"""The runtime code has no test mode: tests replace clients, never flip a switch."""

from __future__ import annotations

import re

import pytest

from tests.support.remediation_runtime import runtime_sources

SWITCHES = re.compile(
    r"(?i)(\btest_?mode\b|\bTESTING\b|\bunder_test\b|PYTEST|\bmock\b|\bmoto\b|\bfake_|"
    r"\bis_test\b|\bCRASHCART_TEST|\bendpoint_url\b|localhost|127\.0\.0\.1|\bstub)"
)


def test_runtime_sources_are_found() -> None:
    sources = runtime_sources()
    names = {"handler.py", "service.py", "decision.py", "settings.py", "adapter.py"}
    assert {f"remediation/{name}" for name in names} <= set(sources)
    assert {"dump_arrival/handler.py", "incident_sweep/handler.py"} <= set(sources)


@pytest.mark.parametrize("name", sorted(runtime_sources()))
def test_no_test_switch_in_runtime_source(name: str) -> None:
    text = runtime_sources()[name]
    hits = [m.group(0) for m in SWITCHES.finditer(text)]
    assert hits == [], f"{name} mentions {hits}: runtime code must not know about tests"


def test_the_grep_would_catch_a_switch() -> None:
    assert SWITCHES.search('if os.environ.get("CRASHCART_TEST_MODE"):')
    assert SWITCHES.search("client = boto3.client('ec2', endpoint_url=url)")


def test_only_stdlib_and_boto3_are_imported() -> None:
    allowed_third_party = {
        "boto3",
        "botocore",
        "mypy_boto3_ec2",
        "mypy_boto3_s3",
        "mypy_boto3_sns",
        "mypy_boto3_sqs",
        "mypy_boto3_ssm",
        "mypy_boto3_dynamodb",
        "mypy_boto3_autoscaling",
        "mypy_boto3_cloudwatch",  # the kill-switch reach (type annotations only)
    }
    import sys

    from crashcart.constructs._internal import function_code

    #: function -> the other function packages its asset carries (it may import those only)
    includes = {
        package.name: package.includes
        for package in vars(function_code).values()
        if isinstance(package, function_code.FunctionPackage)
    }

    for name, text in runtime_sources().items():
        pattern = r"^\s*(?:from|import) ([a-zA-Z_][\w.]*)"
        for match in re.finditer(pattern, text, re.MULTILINE):
            module = match.group(1)
            top = module.split(".")[0]
            own = name.split("/")[0]
            carried = tuple(f"crashcart.functions.{i}" for i in includes.get(own, ()))
            assert (
                module == "crashcart.runtime"  # the shared runtime, shipped in every asset
                or module in carried  # a declared include
                or module.startswith(tuple(f"{c}." for c in carried))
                or module.startswith("crashcart.runtime.")
                or top in allowed_third_party
                or top in sys.stdlib_module_names
                or top == "__future__"
            ), f"{name} imports {module}"
