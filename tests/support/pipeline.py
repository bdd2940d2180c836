"""Helpers for the image-pipeline tests: stacks, rendered documents, nag reports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aws_cdk as cdk

from tests.conftest import TEST_ACCOUNT, TEST_REGION

ENV = cdk.Environment(account=TEST_ACCOUNT, region=TEST_REGION)


def unacknowledged_findings(report_path: Path) -> list[str]:
    """``pack | rule | construct`` for every finding in a validation report with no
    acknowledgement."""
    report = json.loads(report_path.read_text(encoding="utf-8"))
    found: list[str] = []

    def walk(node: Any, pack: str | None) -> None:
        if isinstance(node, dict):
            pack = node.get("pluginName", pack)
            if "ruleName" in node and "acknowledgedId" not in node:
                for construct in node.get("violatingConstructs", []):
                    found.append(f"{pack} | {node['ruleName']} | {construct.get('constructPath')}")
            for value in node.values():
                walk(value, pack)
        elif isinstance(node, list):
            for value in node:
                walk(value, pack)

    walk(report, None)
    return found


def acknowledged_findings(report_path: Path) -> list[tuple[str, str, str]]:
    """``(acknowledged id, where, reason)`` for every acknowledged finding."""
    report = json.loads(report_path.read_text(encoding="utf-8"))
    found: list[tuple[str, str, str]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "acknowledgedId" in node:
                found.append((node["acknowledgedId"], node["acknowledgedAt"], node["reason"]))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(report)
    return found
