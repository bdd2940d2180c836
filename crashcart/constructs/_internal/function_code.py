"""Function code: one function's folder plus the shared runtime, copied into one asset.

A Lambda asset root cannot import the crashcart library, so the shared runtime
(:mod:`crashcart.runtime`, standard library only) is copied into every function's asset at
synth by local bundling (CDK's ``ILocalBundling``): a plain file copy in this process.

Why local bundling and not a Lambda layer: no Docker is needed (the ``image`` CDK requires is
never pulled, since the local bundler always succeeds); no new resource is added to the
template (a layer is a ``AWS::Lambda::LayerVersion`` per stack, versioned and shared, and it
changes the resource counts users plan around); each function keeps one asset that holds
exactly what it imports; and the Lambda runtime imports the runtime from the function's own
folder, so cold start does not change. The asset hash is that of the bundled output, so a
change to the shared runtime redeploys every function that ships it.

Layout of an asset: the function's files at the root (its handler is ``handler.handler``),
plus ``crashcart/__init__.py`` (a stub: the library's API is not in the asset) and
``crashcart/runtime/``.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Final

import aws_cdk as cdk
import jsii
from aws_cdk import aws_lambda as lambda_

#: The ``crashcart`` package folder (the assets are found from this file, not the cwd).
PACKAGE_ROOT: Final = Path(__file__).resolve().parents[2]
#: The shared runtime package copied into every asset.
RUNTIME_ROOT: Final = PACKAGE_ROOT / "runtime"
#: Never shipped: caches and tests.
IGNORED: Final = ("__pycache__", "*.pyc", ".mypy_cache", "tests")
#: ``crashcart/__init__.py`` inside an asset.
STUB_INIT: Final = (
    '"""crashcart inside a Lambda function asset: only crashcart.runtime is here (see the\n'
    'crashcart library for the constructs)."""\n'
)
#: CDK requires an image for bundling; the local bundler always succeeds, so it is never used.
_UNUSED_IMAGE: Final = "crashcart/local-bundling-only"


@jsii.implements(cdk.ILocalBundling)
class _CopyFunctionAndRuntime:
    """Copies the function folder and the shared runtime into CDK's bundling output folder."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder

    def try_bundle(self, output_dir: str, *_options: Any, **_keywords: Any) -> bool:
        # jsii hands the BundlingOptions over as one positional struct; nothing in them
        # changes what is copied.
        out = Path(output_dir)
        ignore = shutil.ignore_patterns(*IGNORED)
        shutil.copytree(self._folder, out, ignore=ignore, dirs_exist_ok=True)
        shutil.copytree(RUNTIME_ROOT, out / "crashcart" / "runtime", ignore=ignore)
        (out / "crashcart" / "__init__.py").write_text(STUB_INIT, encoding="utf-8")
        return True


def function_code(folder: Path) -> lambda_.Code:
    """The asset of the function in ``folder``, with the shared runtime copied in."""
    return lambda_.Code.from_asset(
        str(folder),
        asset_hash_type=cdk.AssetHashType.OUTPUT,
        bundling=cdk.BundlingOptions(
            image=cdk.DockerImage.from_registry(_UNUSED_IMAGE),
            local=_CopyFunctionAndRuntime(folder),
        ),
    )
