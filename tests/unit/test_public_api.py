"""The public API: every construct and value type is importable from ``crashcart``, and each
public construct module is named after the construct it holds."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re

import crashcart
import crashcart.constructs as library


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
