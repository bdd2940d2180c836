"""Every ``kms:ViaService`` value crashcart writes ends in the partition's URL suffix.

``kms:ViaService`` compares with an endpoint name, ``<service>.<region>.amazonaws.com`` in the
commercial partition but ``...amazonaws.com.cn`` in the China Regions (aws-assumption:
kms-via-service-endpoint-names): a literal ``amazonaws.com`` would match nothing there. The
walk covers the reference app (image pipeline included), the organisation's central account,
a rollout's stack and member template, and the integ canary drill's snapshot (kept in step
with the code by ``tests/infra/test_integ_snapshots.py``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

from crashcart.constructs.organisation_central import OrganisationCentral
from tests.conftest import TEST_ACCOUNT, TEST_REGION
from tests.integ.snapshot import SNAPSHOT_DIR
from tests.support.organisation import DEPLOYING_ACCOUNT, REGIONS, rollout_app
from tests.support.reference import reference_templates_without_nag
from tests.support.remediation import new_app

BOOTSTRAP_KEY = f"arn:aws:kms:{REGIONS[0]}:{DEPLOYING_ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234"


def via_service_values(node: Any) -> Iterator[Any]:
    """Every value of a ``kms:ViaService`` key under any condition operator in ``node``."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "kms:ViaService":
                yield from value if isinstance(value, list) else [value]
            else:
                yield from via_service_values(value)
    elif isinstance(node, list):
        for item in node:
            yield from via_service_values(item)


def central_template() -> dict[str, Any]:
    stack = cdk.Stack(
        new_app(), "Central", env=cdk.Environment(account=TEST_ACCOUNT, region=TEST_REGION)
    )
    OrganisationCentral(stack, "Central", organisation_id="o-a1b2c3d4e5")
    template: dict[str, Any] = Template.from_stack(stack).to_json()
    return template


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    rollout = rollout_app(str(tmp_path_factory.mktemp("rollout")), bootstrap_key_arn=BOOTSTRAP_KEY)
    found = {
        **reference_templates_without_nag(),
        "central": central_template(),
        "rollout": rollout.rollout,
        "member": rollout.member,
    }
    for path in Path(SNAPSHOT_DIR).glob("*.template.json"):
        found[path.name] = json.loads(path.read_text())
    return found


def test_via_service_values_follow_the_partitions_url_suffix(
    templates: dict[str, dict[str, Any]],
) -> None:
    values = {
        name: list(via_service_values(template["Resources"]))
        for name, template in templates.items()
    }
    # the walk sees the organisation's and the image pipeline's keys, not nothing
    assert values["member"] and values["rollout"] and values["central"]
    assert any(values[name] for name in templates if "ImagePipeline" in name)
    literal = {
        name: [v for v in found if isinstance(v, str) and "amazonaws.com" in v]
        for name, found in values.items()
    }
    assert {name: v for name, v in literal.items() if v} == {}
    for found in values.values():
        for value in found:
            assert "AWS::URLSuffix" in json.dumps(value), value
