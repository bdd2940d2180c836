"""The layout of a function's asset: what is copied where (standard library only).

Not shipped in any asset (only ``functions/__init__.py`` and the function's own folder are).
Used by the constructs' local bundler (``crashcart.constructs._internal.function_code``) and
by the benchmarks, which stage an asset to measure the function as Lambda loads it.

An asset holds ``crashcart/__init__.py`` (a stub: the library's API is not there),
``crashcart/runtime/`` (the shared runtime), ``crashcart/functions/__init__.py`` and
``crashcart/functions/<name>/`` (plus the function packages it imports, ``includes``: the
lifecycle-hold function decides its own interrupt with the remediation package's guards);
its Lambda handler is ``crashcart.functions.<name>.handler.handler``.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Final

#: The ``crashcart`` package folder.
PACKAGE_ROOT: Final = Path(__file__).resolve().parents[1]
#: The shared runtime package copied into every asset.
RUNTIME_ROOT: Final = PACKAGE_ROOT / "runtime"
#: The function packages.
FUNCTIONS_ROOT: Final = PACKAGE_ROOT / "functions"
#: Never shipped: caches and tests.
IGNORED: Final = ("__pycache__", "*.pyc", ".mypy_cache", "tests")
#: ``crashcart/__init__.py`` inside an asset.
STUB_INIT: Final = (
    '"""crashcart inside a Lambda function asset: one function package and the shared\n'
    'runtime (see the crashcart library for the constructs)."""\n'
)


def handler_of(name: str) -> str:
    """The Lambda handler of function ``name``."""
    return f"crashcart.functions.{name}.handler.handler"


def stage(name: str, out: Path, includes: tuple[str, ...] = ()) -> Path:
    """Copy function ``name``'s asset (and the function packages in ``includes``) into
    ``out`` (new or empty); return ``out``."""
    package = out / "crashcart"
    ignore = shutil.ignore_patterns(*IGNORED)
    for folder in (name, *includes):
        shutil.copytree(FUNCTIONS_ROOT / folder, package / "functions" / folder, ignore=ignore)
    shutil.copy2(FUNCTIONS_ROOT / "__init__.py", package / "functions" / "__init__.py")
    shutil.copytree(RUNTIME_ROOT, package / "runtime", ignore=ignore)
    (package / "__init__.py").write_text(STUB_INIT, encoding="utf-8")
    return out
