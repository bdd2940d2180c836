"""Pure checks behind the pipeline's synth-time validation."""

from __future__ import annotations

import pytest

from crashcart.constructs._image_pipeline_props import (
    DistributionTarget,
    Hardening,
    ParentImage,
    PipelineSchedule,
    validate_version,
)
from crashcart.constructs._image_pipeline_validation import (
    check_instance_types,
    check_working_directory,
    instance_type_architecture,
    version_from_content,
)
from crashcart.errors import ConfigurationError


@pytest.mark.parametrize(
    ("instance_type", "arch"),
    [
        ("m7i.large", "x86_64"), ("c6a.xlarge", "x86_64"), ("g4dn.xlarge", "x86_64"),
        ("p4de.24xlarge", "x86_64"), ("c7i-flex.large", "x86_64"), ("t3.micro", "x86_64"),
        ("m7g.large", "arm64"), ("c7gn.large", "arm64"), ("r8g.medium", "arm64"),
        ("im4gn.large", "arm64"), ("is4gen.large", "arm64"), ("t4g.nano", "arm64"),
        ("g5g.xlarge", "arm64"), ("x2gd.medium", "arm64"), ("a1.large", "arm64"),
    ],
)  # fmt: skip
def test_instance_type_architecture(instance_type: str, arch: str) -> None:
    assert instance_type_architecture(instance_type) == arch


def test_accepts_nitro_types_of_the_right_architecture() -> None:
    check_instance_types(["m7i.large", "c6i.large", "i3.metal"], "x86_64")
    check_instance_types(["m7g.large"], "arm64")


@pytest.mark.parametrize(
    ("types", "arch", "match"),
    [
        ([], "x86_64", "empty"),
        (["a1.large"], "arm64", "A1 instances"),
        (["t2.micro"], "x86_64", "Xen-based"),
        (["m4.large"], "x86_64", "Xen-based"),
        (["i3.large"], "x86_64", "Xen-based"),
        (["m7g.large"], "x86_64", "is arm64 but the pipeline's architecture is x86_64"),
        (["m7i.large"], "arm64", "is x86_64 but the pipeline's architecture is arm64"),
        (["mac2.metal"], "arm64", "Mac instance"),
        (["large"], "x86_64", "not an EC2 instance type"),
    ],
)
def test_fails_bad_instance_types(types: list[str], arch: str, match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        check_instance_types(types, arch)


@pytest.mark.parametrize("directory", ["/tmp", "/tmp/", "/tmp/build", "/var/tmp", "/dev/shm/x"])
def test_fails_noexec_working_directories(directory: str) -> None:
    with pytest.raises(ConfigurationError, match="noexec"):
        check_working_directory(directory)


def test_working_directory_must_be_absolute_and_may_be_elsewhere() -> None:
    check_working_directory("/root")
    check_working_directory("/var/lib/imagebuilder")
    check_working_directory("/tmpfoo")  # not under /tmp
    with pytest.raises(ConfigurationError, match="absolute"):
        check_working_directory("build")


def test_content_versions_are_stable_valid_and_change_with_content() -> None:
    first = version_from_content("document A", "Linux")
    assert first == version_from_content("document A", "Linux")
    assert first != version_from_content("document B", "Linux")
    assert first != version_from_content("document A", "Windows")
    assert validate_version(first, "component") == first
    major, minor, patch = (int(n) for n in first.split("."))
    assert major == 1
    assert 0 <= minor < 2**30
    assert 0 <= patch < 2**30


@pytest.mark.parametrize(
    "version", ["1.0", "1.0.0.0", "v1.0.0", "01.0.0", "1.0.x", "1.1073741824.0", ""]
)
def test_fails_component_version_not_x_y_z(version: str) -> None:
    with pytest.raises(ConfigurationError, match=r"is not x\.y\.z"):
        validate_version(version, "component")


def test_parent_images_render() -> None:
    assert ParentImage.from_ssm_parameter("/a/b").render() == "ssm:/a/b"
    assert ParentImage.from_ami_id("ami-0123456789abcdef0").render() == "ami-0123456789abcdef0"
    managed = ParentImage.from_managed_image("amazon-linux-2023-x86")
    assert managed.has_version_wildcard
    assert managed.render().endswith(":aws:image/amazon-linux-2023-x86/x.x.x")
    assert not ParentImage.from_managed_image(
        "amazon-linux-2023-x86", "2025.1.2"
    ).has_version_wildcard
    assert not ParentImage.from_ssm_parameter("/a").has_version_wildcard
    default = ParentImage.family_default().resolve("debian-12", "x86_64")
    assert default.render() == "ssm:/aws/service/debian/release/12/latest/amd64"
    assert ParentImage.family_default().resolve("amazon-linux-2023", "arm64").value == (
        "amazon-linux-2023-arm64"
    )


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: ParentImage.from_ssm_parameter("no-slash"), "must start with '/'"),
        (lambda: ParentImage.from_ami_id("ami-xyz"), "not of the form"),
        (lambda: ParentImage.from_managed_image("x", "latest"), "wildcards"),
        (lambda: PipelineSchedule.cron("0 3 * * *"), "not an Image Builder cron"),
        (lambda: Hardening.aws_stig("extreme"), "not low, medium or high"),  # type: ignore[arg-type]
        (lambda: Hardening.none(""), "needs a reason"),
        (lambda: DistributionTarget(region="Europe"), "not a Region name"),
        (lambda: DistributionTarget(region="eu-west-1", accounts=["123"]), "12-digit"),
    ],
)
def test_fails_bad_value_objects(make: object, match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        make()  # type: ignore[operator]
