"""The image recipe and its components, in order: OS update -> hardening -> crashcart
crash-dump component -> optionally the debug-symbols component.

Private to :mod:`crashcart.constructs.kdump_image_pipeline`. crashcart's own components are
``CfnComponent`` resources whose document is inline up to Image Builder's limit and an S3
asset beyond it; AWS-managed ones (Windows update, STIG) are referenced by ARN.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_imagebuilder as imagebuilder
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct

from crashcart.components.debug_symbols import (
    BUCKET_PARAMETER,
    debug_symbols_info,
    render_debug_symbols,
)
from crashcart.components.debug_symbols import PHASE_SET as DEBUG_SYMBOLS_PHASE_SET
from crashcart.components.families import Architecture, Family, FamilyInfo
from crashcart.components.render import AGENT_MISSING_NOTE, agent_files, render_component
from crashcart.constructs._image_pipeline_props import Hardening, ParentImage
from crashcart.constructs._image_pipeline_validation import version_from_content
from crashcart.constructs.debug_symbol_store import DebugSymbolStore
from crashcart.errors import ConfigurationError
from crashcart.kdump import KdumpSettings, WindowsCrashDumpSettings

#: Image Builder's limit on an inline component's ``Data``; larger documents go via ``Uri``.
# aws-assumption: imagebuilder-component-documents
INLINE_DATA_LIMIT = 16_000

Configuration = imagebuilder.CfnImageRecipe.ComponentConfigurationProperty


def resource_name(scope: Construct, suffix: str) -> str:
    """A unique Image Builder resource name: the construct path, then ``-suffix``."""
    return cdk.Names.unique_resource_name(scope, max_length=100, separator="-") + f"-{suffix}"


class OwnComponents:
    """crashcart's own ``CfnComponent`` resources, in recipe order, and their documents by
    phase set (the pipeline exposes both as attributes)."""

    def __init__(
        self,
        scope: Construct,
        *,
        family: Family,
        architecture: Architecture,
        key: kms.IKey,
        version: str | None,
    ) -> None:
        self._scope = scope
        self._family = family
        self._architecture = architecture
        self._key = key
        #: A fixed version for every own component and the recipe, or None (from content).
        self.version = version
        self.documents: dict[str, str] = {}
        self.components: list[imagebuilder.CfnComponent] = []

    def add(
        self, construct_id: str, document: str, *, phase_set: str, platform: str
    ) -> imagebuilder.CfnComponent:
        """One component: inline ``Data`` up to 16,000 characters, else ``Uri`` to an asset."""
        self.documents[phase_set] = document
        component_version = self.version or version_from_content(document, platform)
        data: str | None = document
        uri: str | None = None
        if len(document) > INLINE_DATA_LIMIT:
            # One file per distinct content (CDK stages it into the assembly as an asset).
            digest = hashlib.sha256(document.encode("utf-8")).hexdigest()
            folder = Path(tempfile.gettempdir()) / "crashcart-components" / digest
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{phase_set}.yaml"
            if not path.is_file() or path.read_text(encoding="utf-8") != document:
                path.write_text(document, encoding="utf-8")
            asset = s3_assets.Asset(self._scope, f"{construct_id}Document", path=str(path))
            data, uri = None, asset.s3_object_url
        component = imagebuilder.CfnComponent(
            self._scope,
            construct_id,
            name=resource_name(self._scope, phase_set),
            platform=platform,
            version=component_version,
            description=f"crashcart {phase_set} ({self._family}, {self._architecture})",
            change_description=f"content {component_version}",
            data=data,
            uri=uri,
            kms_key_id=self._key.key_arn,
        )
        self.components.append(component)
        return component


def default_hardening(info: FamilyInfo) -> Hardening:
    """AWS's STIG component (high) where AWS publishes one for the family, else none."""
    return (
        Hardening.aws_stig("high")
        if info.aws_stig
        else Hardening.none(f"AWS publishes no STIG component for {info.label}")
    )


def recipe_components(
    scope: Construct,
    own: OwnComponents,
    *,
    family: Family,
    info: FamilyInfo,
    architecture: Architecture,
    settings: KdumpSettings | WindowsCrashDumpSettings,
    hardening: Hardening,
    debug_symbols: DebugSymbolStore | None,
) -> list[Configuration]:
    """The recipe's component list, creating crashcart's own components in ``own``."""
    configurations: list[Configuration] = []
    partition, region = cdk.Aws.PARTITION, cdk.Aws.REGION
    aws_component = f"arn:{partition}:imagebuilder:{region}:aws:component"

    if info.os_update_template:
        update = own.add(
            "OsUpdateComponent",
            render_component(family, "os-update", settings, architecture=architecture),
            phase_set="os-update",
            platform=info.platform,
        )
        configurations.append(Configuration(component_arn=update.attr_arn))
    else:
        configurations.append(
            Configuration(
                # aws-assumption: imagebuilder-managed-update-components
                component_arn=f"{aws_component}/update-windows/x.x.x"
            )
        )

    configurations.extend(_hardening(family, info, hardening, aws_component))

    if info.platform == "Linux" and not agent_files():
        cdk.Annotations.of(scope).add_warning_v2("crashcart:agent-missing", AGENT_MISSING_NOTE)
    crash_dump = own.add(
        "CrashDumpComponent",
        render_component(family, "crash-dump", settings, architecture=architecture),
        phase_set="crash-dump",
        platform=info.platform,
    )
    configurations.append(Configuration(component_arn=crash_dump.attr_arn))
    if debug_symbols is not None:
        # After the crash-dump component: its build phase ends with the reboot into the
        # AMI's kernel, and build phases run in recipe order.
        symbols_component = own.add(
            "DebugSymbolsComponent",
            render_debug_symbols(family),
            phase_set=DEBUG_SYMBOLS_PHASE_SET,
            platform=info.platform,
        )
        configurations.append(
            Configuration(
                component_arn=symbols_component.attr_arn,
                parameters=[
                    imagebuilder.CfnImageRecipe.ComponentParameterProperty(
                        name=BUCKET_PARAMETER, value=[debug_symbols.bucket.bucket_name]
                    )
                ],
            )
        )
        unverified = debug_symbols_info(family).unverified
        if unverified:
            cdk.Annotations.of(scope).add_warning_v2(
                "crashcart:debug-symbols-unverified",
                f"debug symbols on {info.label} are unverified: {unverified}. A failed "
                "install or publish fails the image build.",
            )
    return configurations


def recipe_description(info: FamilyInfo, architecture: Architecture, hardening: Hardening) -> str:
    """What the recipe (and the pipeline) says it builds, naming the hardening."""
    return f"crashcart kdump-ready {info.label} ({architecture}); hardening: " + (
        f"AWS STIG {hardening.level}"
        if hardening.kind == "aws-stig"
        else hardening.component_arn
        if hardening.kind == "component"
        else f"none ({hardening.reason})"
    )


def image_recipe(
    scope: Construct,
    own: OwnComponents,
    *,
    configurations: list[Configuration],
    parent: ParentImage,
    info: FamilyInfo,
    key: kms.IKey,
    root_device_name: str | None,
    root_volume_gib: int | None,
    working_directory: str | None,
    ami_tags: dict[str, str],
    description: str,
) -> imagebuilder.CfnImageRecipe:
    """The recipe: the parent, the components, an encrypted gp3 root volume. Its version is
    fixed (``own.version``) or derived from everything it contains (new content, new version:
    Image Builder versions are immutable)."""
    block_devices = [
        imagebuilder.CfnImageRecipe.InstanceBlockDeviceMappingProperty(
            device_name=root_device_name or info.root_device_name,
            ebs=imagebuilder.CfnImageRecipe.EbsInstanceBlockDeviceSpecificationProperty(
                encrypted=True,
                kms_key_id=key.key_arn,
                volume_size=root_volume_gib or info.root_volume_gib,
                volume_type="gp3",
                delete_on_termination=True,
            ),
        )
    ]
    recipe_material = cdk.Stack.of(scope).resolve(
        {
            "parent": parent.render(),
            "components": configurations,
            "componentVersions": [c.version for c in own.components],
            "blockDevices": block_devices,
            "workingDirectory": working_directory,
            "amiTags": ami_tags,
            "description": description,
        }
    )
    return imagebuilder.CfnImageRecipe(
        scope,
        "Recipe",
        name=resource_name(scope, "recipe"),
        version=own.version or version_from_content(recipe_material),
        parent_image=parent.render(),
        components=configurations,
        block_device_mappings=block_devices,
        working_directory=working_directory,
        ami_tags=ami_tags,
        description=description[:1024],
    )


def _hardening(
    family: Family, info: FamilyInfo, hardening: Hardening, aws_component: str
) -> list[Configuration]:
    """The hardening step: AWS's STIG component, the user's component, or nothing."""
    if hardening.kind == "aws-stig":
        if not info.aws_stig:
            raise ConfigurationError(
                f"Hardening.aws_stig() on {family}: AWS publishes no STIG component for "
                f"{info.label}; give Hardening.component(your_arn) or Hardening.none(reason)"
            )
        if info.platform == "Windows":
            return [
                Configuration(
                    # aws-assumption: imagebuilder-stig-components
                    component_arn=f"{aws_component}/stig-build-windows-{hardening.level}/x.x.x"
                )
            ]
        return [
            Configuration(
                # aws-assumption: imagebuilder-stig-components
                component_arn=f"{aws_component}/stig-build-linux/x.x.x",
                parameters=[
                    imagebuilder.CfnImageRecipe.ComponentParameterProperty(
                        name="Level", value=[hardening.level.capitalize()]
                    )
                ],
            )
        ]
    if hardening.kind == "component":
        return [
            Configuration(
                component_arn=hardening.component_arn,
                parameters=[
                    imagebuilder.CfnImageRecipe.ComponentParameterProperty(name=name, value=[value])
                    for name, value in hardening.parameters
                ]
                or None,
            )
        ]
    return []
