"""The public API: every construct and value type is importable from ``crashcart``, and each
public construct module is named after the construct it holds."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from typing import Final

import crashcart
import crashcart.constructs as library

#: Parameters whose name speaks of time but that are not a span of time, each with the reason
#: it is not a ``cdk.Duration``: (class, parameter) -> reason.
NOT_DURATIONS: Final = {
    ("AlarmWindow", "evaluation_periods"): "a number of periods (period_seconds is a Duration)",
    ("RebootWindow", "schedule"): "a State Manager cron / rate expression, as AWS takes it",
    ("RebootWindow", "schedule_timezone"): "an IANA time zone name",
    ("RunningInstanceArming", "schedule"): "a State Manager cron / rate expression",
    ("ManagedAlarms", "puts_per_second"): "a rate (CloudWatch API calls per second)",
}
#: Types that carry time themselves: crashcart value types whose own fields are checked here,
#: and CDK's own types where CDK takes no Duration (log retention, object lock, schedules).
TIME_TYPES: Final = (
    "Duration",
    "AlarmWindow",
    "DumpDeadline",
    "RebootWindow",
    "PipelineSchedule",
    "RetentionDays",
    "ObjectLockRetention",
    "Schedule",
)
_TIME_WORDS: Final = frozenset(
    [
        "seconds",
        "second",
        "minutes",
        "hours",
        "days",
        "timeout",
        "age",
        "grace",
        "cooldown",
        "deadline",
        "period",
        "periods",
        "interval",
        "delay",
        "ttl",
        "duration",
        "after",
        "window",
        "schedule",
        "retention",
        "expiry",
    ]
)


def _public_modules() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(library.__path__) if m.name[0] != "_")


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def test_every_public_class_of_the_construct_modules_is_importable_from_crashcart() -> None:
    missing = []
    for name in _public_modules():
        module = importlib.import_module(f"crashcart.constructs.{name}")
        for attribute, value in vars(module).items():
            if attribute.startswith("_") or not inspect.isclass(value):
                continue
            if value.__module__ != module.__name__:
                continue
            if getattr(crashcart, attribute, None) is not value:
                missing.append(f"{name}.{attribute}")
    assert not missing, missing


def _construct_modules() -> list[str]:
    """Every module of crashcart.constructs, private ones too (not ``_internal``)."""
    return sorted(m.name for m in pkgutil.iter_modules(library.__path__) if m.name != "_internal")


def _public_classes() -> dict[str, type]:
    """Every class the construct modules offer: the public classes of the public modules,
    every class a module lists in ``__all__``, and the public-named classes of the private
    props and settings modules (value types re-exported by their construct's module)."""
    found: dict[str, type] = {}
    for name in _construct_modules():
        module = importlib.import_module(f"crashcart.constructs.{name}")
        exported = set(getattr(module, "__all__", ()))
        for attribute, value in vars(module).items():
            if not inspect.isclass(value) or not value.__module__.startswith("crashcart."):
                continue
            defined_here = value.__module__ == module.__name__ and not attribute.startswith("_")
            if attribute in exported or defined_here:
                found[attribute] = value
    return found


def test_every_class_the_construct_modules_offer_is_importable_from_crashcart() -> None:
    classes = _public_classes()
    # the private props modules hold value types too, and they are found
    assert {"DumpDeadline", "DumpLifecycle", "TriageTaskSize", "ExistingDumpBucket"} <= set(classes)
    missing = sorted(
        name for name, value in classes.items() if getattr(crashcart, name) is not value
    )
    assert not missing, missing


def _time_parameters(cls: type) -> list[tuple[str, str]]:
    """(name, annotation) of the constructor parameters whose name speaks of time."""
    signature = inspect.signature(cls.__init__)
    return [
        (parameter.name, str(parameter.annotation))
        for parameter in signature.parameters.values()
        if _TIME_WORDS & set(parameter.name.split("_"))
    ]


def test_every_span_of_time_a_construct_or_value_type_takes_is_a_cdk_duration() -> None:
    import aws_cdk as cdk

    offenders = []
    checked = 0
    for name, cls in sorted(_public_classes().items()):
        for parameter, annotation in _time_parameters(cls):
            checked += 1
            if (name, parameter) in NOT_DURATIONS:
                continue
            if not any(kind in annotation for kind in TIME_TYPES):
                offenders.append(f"{name}({parameter}: {annotation})")
    assert checked > 20  # the scan sees the props (timeouts, ages, deadlines...)
    assert not offenders, (
        f"give spans of time as cdk.Duration ({cdk.Duration.__name__}), or add the parameter "
        f"to NOT_DURATIONS with the reason: {offenders}"
    )


def test_the_duration_check_catches_a_number_of_seconds() -> None:
    class Bad:
        def __init__(self, *, timeout_seconds: int, max_age: float) -> None: ...

    assert _time_parameters(Bad) == [("timeout_seconds", "int"), ("max_age", "float")]


def test_value_types_outside_the_constructs_are_importable_from_crashcart() -> None:
    from crashcart.kdump import KdumpSettings, WindowsCrashDumpSettings
    from crashcart.opt_in import OptInTag

    assert crashcart.KdumpSettings is KdumpSettings
    assert crashcart.WindowsCrashDumpSettings is WindowsCrashDumpSettings
    assert crashcart.OptInTag is OptInTag


def test_each_construct_module_is_named_after_a_construct_it_holds() -> None:
    import constructs

    for name in _public_modules():
        module = importlib.import_module(f"crashcart.constructs.{name}")
        held = [
            _snake(attribute)
            for attribute, value in vars(module).items()
            if inspect.isclass(value)
            and value.__module__ == module.__name__
            and issubclass(value, constructs.Construct)
        ]
        if not held:
            continue  # a module of value types (remediation_settings)
        assert name in held, (name, held)
