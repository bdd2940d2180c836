"""KdumpImagePipeline(debug_symbols=...): the component, its place, its parameter, the grant."""

from __future__ import annotations

import json
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Annotations, Match, Template

from crashcart.components.debug_symbols import render_debug_symbols
from crashcart.constructs.debug_symbol_store import DebugSymbolStore
from crashcart.constructs.kdump_image_pipeline import INLINE_DATA_LIMIT, KdumpImagePipeline
from crashcart.errors import ConfigurationError
from tests.support.pipeline import ENV

UNVERIFIED = "crashcart:debug-symbols-unverified"


class Built:
    def __init__(self) -> None:
        self.app = cdk.App()
        self.stacks: dict[str, cdk.Stack] = {}
        self.pipelines: dict[str, KdumpImagePipeline] = {}
        for name, family in {
            "al2023": "amazon-linux-2023",
            "debian": "debian-12",
            "rhel": "rhel-9",
            "ubuntu": "ubuntu-24.04",
        }.items():
            stack = cdk.Stack(self.app, name.capitalize(), env=ENV)
            store = DebugSymbolStore(stack, "Symbols")
            self.pipelines[name] = KdumpImagePipeline(
                stack, "Pipeline", family=family, architecture="x86_64", debug_symbols=store
            )  # type: ignore[arg-type]
            self.stacks[name] = stack
        plain = cdk.Stack(self.app, "Plain", env=ENV)
        self.pipelines["plain"] = KdumpImagePipeline(plain, "Pipeline", architecture="x86_64")
        self.stacks["plain"] = plain
        self.templates = {name: Template.from_stack(s) for name, s in self.stacks.items()}


@pytest.fixture(scope="module")
def built() -> Built:
    return Built()


def _component_id(template: Template, contains: str) -> str:
    ids = [k for k in template.find_resources("AWS::ImageBuilder::Component") if contains in k]
    assert len(ids) == 1, ids
    return ids[0]


def _recipe(template: Template) -> dict[str, Any]:
    (recipe,) = template.find_resources("AWS::ImageBuilder::ImageRecipe").values()
    return recipe["Properties"]  # type: ignore[no-any-return]


def _logical_id(template: Template, type_: str, prefix: str) -> str:
    (found,) = [k for k in template.find_resources(type_) if k.startswith(prefix)]
    return found


@pytest.mark.parametrize("name", ["al2023", "debian", "rhel", "ubuntu"])
def test_component_comes_right_after_the_crash_dump_component(built: Built, name: str) -> None:
    template = built.templates[name]
    crash = _component_id(template, "CrashDump")
    symbols = _component_id(template, "DebugSymbols")
    components = _recipe(template)["Components"]
    arns = [c["ComponentArn"] for c in components]
    assert arns[-2:] == [{"Fn::GetAtt": [crash, "Arn"]}, {"Fn::GetAtt": [symbols, "Arn"]}]
    stack = built.stacks[name]
    assert stack.resolve(built.pipelines[name].components[-1].logical_id) == symbols


@pytest.mark.parametrize("name", ["al2023", "debian"])
def test_bucket_name_is_the_component_parameter(built: Built, name: str) -> None:
    template = built.templates[name]
    bucket = _logical_id(template, "AWS::S3::Bucket", "SymbolsBucket")
    last = _recipe(template)["Components"][-1]
    assert last["Parameters"] == [{"Name": "BucketName", "Value": [{"Ref": bucket}]}]


def test_component_document_is_the_rendered_one(built: Built) -> None:
    pipeline = built.pipelines["debian"]
    document = pipeline.component_documents["debug-symbols"]
    assert document == render_debug_symbols("debian-12")
    assert "{{ BucketName }}" in document
    # The embedded publisher makes the document larger than Image Builder's inline limit:
    # it goes to an asset, referenced by Uri, and is encrypted with the pipeline's key.
    assert len(document) > INLINE_DATA_LIMIT
    template = built.templates["debian"]
    key = _logical_id(template, "AWS::KMS::Key", "PipelineKey")
    symbols = template.find_resources("AWS::ImageBuilder::Component")[
        _component_id(template, "DebugSymbols")
    ]["Properties"]
    assert "Data" not in symbols
    assert "Uri" in symbols
    assert symbols["Platform"] == "Linux"
    assert symbols["KmsKeyId"] == {"Fn::GetAtt": [key, "Arn"]}
    assert symbols["Description"] == "crashcart debug-symbols (debian-12, x86_64)"


def test_instance_role_gets_the_publish_grant(built: Built) -> None:
    template = built.templates["al2023"]
    role = _logical_id(template, "AWS::IAM::Role", "PipelineInstanceRole")
    publish = _logical_id(template, "AWS::IAM::ManagedPolicy", "SymbolsPublishPolicy")
    arns = template.find_resources("AWS::IAM::Role")[role]["Properties"]["ManagedPolicyArns"]
    assert {"Ref": publish} in arns
    assert len(arns) == 2  # AmazonSSMManagedInstanceCore + the publish policy
    # The pipeline's own instance policy is unchanged: no symbol-store statement in it.
    instance_policy = template.find_resources("AWS::IAM::ManagedPolicy")[
        _logical_id(template, "AWS::IAM::ManagedPolicy", "PipelineInstancePolicy")
    ]
    assert "symbols/" not in json.dumps(instance_policy)
    # No read or list permission for the build instance.
    template.resource_count_is("AWS::IAM::ManagedPolicy", 2)


def test_unverified_families_warn_and_the_others_do_not(built: Built) -> None:
    for name, warned in {"al2023": False, "debian": False, "rhel": True, "ubuntu": True}.items():
        warnings = Annotations.from_stack(built.stacks[name]).find_warning(
            "*", Match.string_like_regexp(".*debug symbols on .* are unverified.*")
        )
        assert bool(warnings) is warned, name
    (warning,) = Annotations.from_stack(built.stacks["rhel"]).find_warning(
        "*", Match.string_like_regexp(".*unverified.*")
    )
    assert "rhui-debug-rpms" in warning.entry.data
    assert UNVERIFIED in warning.entry.data


def test_default_has_no_debug_symbols(built: Built) -> None:
    template = built.templates["plain"]
    template.resource_count_is("AWS::ImageBuilder::Component", 2)
    assert len(_recipe(template)["Components"]) == 3
    assert "debug-symbols" not in built.pipelines["plain"].component_documents
    assert built.pipelines["plain"].debug_symbols is None
    assert "BucketName" not in json.dumps(_recipe(template)["Components"])
    publish = {"Properties": {"Description": Match.string_like_regexp("debug symbols")}}
    assert built.templates["al2023"].find_resources("AWS::IAM::ManagedPolicy", publish)
    assert not template.find_resources("AWS::IAM::ManagedPolicy", publish)


@pytest.mark.parametrize("family", ["windows-server-2022", "windows-server-2025"])
def test_fails_on_windows(family: str) -> None:
    stack = cdk.Stack(cdk.App(), "Windows", env=ENV)
    store = DebugSymbolStore(stack, "Symbols")
    with pytest.raises(ConfigurationError, match=f"{family}: .*WinDbg.*symbol server"):
        KdumpImagePipeline(
            stack,
            "Pipeline",
            family=family,  # type: ignore[arg-type]
            architecture="x86_64",
            debug_symbols=store,
        )


def test_store_in_another_stack() -> None:
    """A tooling stack holds the store; the pipeline stack reads its bucket name."""
    app = cdk.App()
    store = DebugSymbolStore(cdk.Stack(app, "Symbols", env=ENV), "Symbols")
    images = cdk.Stack(app, "Images", env=ENV)
    KdumpImagePipeline(images, "Pipeline", architecture="x86_64", debug_symbols=store)
    assembly = app.synth()  # a dependency cycle would raise here
    template = assembly.get_stack_by_name("Images").template
    recipe = next(
        r for r in template["Resources"].values() if r["Type"] == "AWS::ImageBuilder::ImageRecipe"
    )
    parameter = recipe["Properties"]["Components"][-1]["Parameters"][0]
    assert parameter["Name"] == "BucketName"
    assert "Fn::ImportValue" in parameter["Value"][0]
    role = next(r for r in template["Resources"].values() if r["Type"] == "AWS::IAM::Role")
    assert any("Fn::ImportValue" in arn for arn in role["Properties"]["ManagedPolicyArns"])


def test_component_version_follows_the_document() -> None:
    app = cdk.App()
    versions = {}
    for family in ("amazon-linux-2023", "debian-12"):
        stack = cdk.Stack(app, family.replace(".", ""), env=ENV)
        pipeline = KdumpImagePipeline(
            stack,
            "Pipeline",
            family=family,  # type: ignore[arg-type]
            architecture="x86_64",
            debug_symbols=DebugSymbolStore(stack, "Symbols"),
        )
        versions[family] = pipeline.components[-1].version
    assert versions["amazon-linux-2023"] != versions["debian-12"]
    assert all(v and v.startswith("1.") for v in versions.values())
