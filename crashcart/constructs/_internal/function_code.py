"""Function code: one function package plus the shared runtime, copied into one asset.

A Lambda asset cannot import the crashcart library, so each function's asset is built at
synth by local bundling (CDK's ``ILocalBundling``): a plain file copy, in this process, of
the function's package and the shared runtime (layout: :mod:`crashcart.functions._asset`).
The function imports both by their library names, so tests import the very modules the
Lambda runtime runs.

Why local bundling and not a Lambda layer: no Docker is needed (the ``image`` CDK requires is
never pulled, since the local bundler always succeeds); no new resource is added to the
template (a layer is an ``AWS::Lambda::LayerVersion`` per stack, versioned and shared, and
it changes the resource counts users plan around); each function keeps one asset that holds
exactly what it imports, from its own folder, so cold start does not change. The asset hash
is that of the bundled output, so a change to the shared runtime redeploys every function.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import aws_cdk as cdk
import jsii
from aws_cdk import aws_lambda as lambda_

from crashcart.functions._asset import FUNCTIONS_ROOT, handler_of, stage

#: CDK requires an image for bundling; the local bundler always succeeds, so it is never used.
_UNUSED_IMAGE: Final = "crashcart/local-bundling-only"


@dataclass(frozen=True)
class FunctionPackage:
    """One function of ``crashcart/functions/``: its asset and its Lambda handler."""

    name: str
    #: Other function packages this one imports (copied into its asset too).
    includes: tuple[str, ...] = ()

    @property
    def folder(self) -> Path:
        return FUNCTIONS_ROOT / self.name

    @property
    def handler(self) -> str:
        """The Lambda handler: ``crashcart.functions.<name>.handler.handler``."""
        return handler_of(self.name)

    def code(self) -> lambda_.Code:
        """The function's asset, with the shared runtime copied in."""
        return lambda_.Code.from_asset(
            str(self.folder),
            asset_hash_type=cdk.AssetHashType.OUTPUT,
            bundling=cdk.BundlingOptions(
                image=cdk.DockerImage.from_registry(_UNUSED_IMAGE),
                local=_CopyFunctionAndRuntime(self.name, self.includes),
            ),
        )


@jsii.implements(cdk.ILocalBundling)
class _CopyFunctionAndRuntime:
    """Copies the function package and the shared runtime into CDK's bundling output folder."""

    def __init__(self, name: str, includes: tuple[str, ...] = ()) -> None:
        self._name = name
        self._includes = includes

    def try_bundle(self, output_dir: str, *_options: Any, **_keywords: Any) -> bool:
        # jsii hands the BundlingOptions over as one positional struct; nothing in them
        # changes what is copied.
        stage(self._name, Path(output_dir), self._includes)
        return True


#: The functions.
REMEDIATION: Final = FunctionPackage("remediation")
DUMP_ARRIVAL: Final = FunctionPackage("dump_arrival")
INCIDENT_SWEEP: Final = FunctionPackage("incident_sweep")
#: The lifecycle hold and escalation: its own interrupt goes through the remediation's guards.
LIFECYCLE_HOLD: Final = FunctionPackage("lifecycle_hold", includes=("remediation",))

KILL_SWITCH: Final = FunctionPackage("kill_switch")
#: The central incident view: a dump's arrival is placed by dump arrival's own decision.
INCIDENT_VIEW: Final = FunctionPackage("incident_view", includes=("dump_arrival",))
