"""The fake AWS's fixed costs are paid once per process (tests/support/speed.py, issue 24)."""

from __future__ import annotations

import os

import boto3
from botocore import loaders


def test_two_sessions_share_one_parsed_service_model() -> None:
    first = boto3.session.Session()._loader  # type: ignore[attr-defined]
    second = boto3.session.Session()._loader  # type: ignore[attr-defined]
    assert first is not second  # a session per test (moto's mock_aws makes one)
    model = first.load_service_model("ec2", "service-2")
    assert second.load_service_model("ec2", "service-2") is model
    # different data paths are different models
    other = loaders.Loader(extra_search_paths=[os.path.dirname(__file__)])
    assert other.search_paths != first.search_paths


def test_moto_keeps_its_default_images_but_not_the_per_region_extras() -> None:
    from moto import mock_aws

    assert os.environ["MOTO_AMIS_PATH"].endswith("-amis.json")
    with mock_aws():
        ec2 = boto3.client("ec2", region_name="eu-west-1")
        owned = ec2.describe_images(Owners=["amazon"])["Images"]
        ids = {image["ImageId"] for image in owned}
        assert "ami-12c6146b" in ids  # named by tests (moto's own default image)
        assert not [image for image in owned if "ecs" in image.get("Name", "").lower()]


def test_clients_of_two_sessions_share_one_class_but_not_other_handlers_classes() -> None:
    import botocore.session

    first = boto3.session.Session().client("ec2", region_name="eu-west-1")
    second = boto3.session.Session().client("ec2", region_name="eu-west-1")
    assert type(first) is type(second)
    assert first.meta.events is not second.meta.events  # each its own session still
    # plain botocore registers no S3 transfer methods: its S3 client has its own class
    s3 = boto3.session.Session().client("s3", region_name="eu-west-1")
    bare = botocore.session.get_session().create_client("s3", region_name="eu-west-1")
    assert type(s3) is not type(bare)
    assert hasattr(s3, "upload_file") and not hasattr(bare, "upload_file")
