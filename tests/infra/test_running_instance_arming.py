"""RunningInstanceArming: the document, the association's targets and rate controls, the
opt-in reboot window, permissions (none of its own), and every validation error."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Match, Template

from crashcart.components.arming import REBOOT_PARAMETER, render_arming_document
from crashcart.constructs.running_instance_arming import RebootWindow, RunningInstanceArming
from crashcart.errors import ConfigurationError
from crashcart.kdump import KdumpSettings
from crashcart.opt_in import OptInTag


def _template(**props: Any) -> Template:
    app = cdk.App()
    stack = cdk.Stack(app, "Stack")
    RunningInstanceArming(stack, "Arming", **props)
    return Template.from_stack(stack)


def test_minimal_props_make_a_document_and_an_association_only() -> None:
    template = _template()
    kinds = {resource["Type"] for resource in template.to_json()["Resources"].values()}
    assert kinds == {"AWS::SSM::Document", "AWS::SSM::Association"}
    template.resource_count_is("AWS::SSM::Document", 1)
    template.resource_count_is("AWS::SSM::Association", 1)


def test_document_is_the_rendered_command_document() -> None:
    template = _template()
    template.has_resource_properties(
        "AWS::SSM::Document",
        {
            "DocumentType": "Command",
            "DocumentFormat": "JSON",
            "TargetType": "/AWS::EC2::Instance",
            "Content": render_arming_document(),
        },
    )


def test_association_targets_the_opt_in_tag_with_rate_controls_and_never_reboots() -> None:
    template = _template()
    template.has_resource_properties(
        "AWS::SSM::Association",
        {
            "Name": {"Ref": Match.string_like_regexp("^ArmingDocument")},
            "Targets": [{"Key": "tag:crashcart:diagnostic-interrupt", "Values": ["enabled"]}],
            "Parameters": {REBOOT_PARAMETER: ["no"]},
            "MaxConcurrency": "10%",
            "MaxErrors": "10%",
            "ScheduleExpression": "rate(1 day)",
            "SyncCompliance": "AUTO",
            "ComplianceSeverity": "MEDIUM",
            "ApplyOnlyAtCronInterval": False,
        },
    )


def test_all_props() -> None:
    template = _template(
        opt_in=OptInTag(key="team:kdump", value="yes"),
        kdump=KdumpSettings(crashkernel="512M"),
        min_memory_mib=4096,
        install_agent=False,
        schedule="cron(0 2 ? * * *)",
        max_concurrency="5",
        max_errors="0",
        compliance_severity="HIGH",
        reboot_window=RebootWindow(
            schedule="cron(0 4 ? * SUN *)",
            duration=cdk.Duration.hours(3),
            cutoff=cdk.Duration.hours(2),
            max_concurrency="2",
            max_errors="1",
            schedule_timezone="Europe/Berlin",
        ),
    )
    content = template.find_resources("AWS::SSM::Document")
    (document,) = content.values()
    script = "\n".join(document["Properties"]["Content"]["mainSteps"][0]["inputs"]["runCommand"])
    assert "crashkernel='512M'" in script and "min_memory_mib=4096" in script
    assert "agent_installed=0" in script
    template.has_resource_properties(
        "AWS::SSM::Association",
        {
            "Targets": [{"Key": "tag:team:kdump", "Values": ["yes"]}],
            "MaxConcurrency": "5",
            "MaxErrors": "0",
            "ScheduleExpression": "cron(0 2 ? * * *)",
            "ComplianceSeverity": "HIGH",
        },
    )
    template.has_resource_properties(
        "AWS::SSM::MaintenanceWindow",
        {
            "Schedule": "cron(0 4 ? * SUN *)",
            "ScheduleTimezone": "Europe/Berlin",
            "Duration": 3,
            "Cutoff": 2,
            "AllowUnassociatedTargets": False,
        },
    )
    template.has_resource_properties(
        "AWS::SSM::MaintenanceWindowTarget",
        {"ResourceType": "INSTANCE", "Targets": [{"Key": "tag:team:kdump", "Values": ["yes"]}]},
    )
    template.has_resource_properties(
        "AWS::SSM::MaintenanceWindowTask",
        {
            "TaskType": "RUN_COMMAND",
            "TaskArn": {"Ref": Match.string_like_regexp("^ArmingDocument")},
            "MaxConcurrency": "2",
            "MaxErrors": "1",
            "Targets": [
                {"Key": "WindowTargetIds", "Values": [{"Ref": Match.string_like_regexp("Target")}]}
            ],
            "TaskInvocationParameters": {
                "MaintenanceWindowRunCommandParameters": Match.object_like(
                    {"Parameters": {REBOOT_PARAMETER: ["yes"]}}
                )
            },
        },
    )


def test_no_reboot_window_by_default() -> None:
    template = _template()
    template.resource_count_is("AWS::SSM::MaintenanceWindow", 0)
    template.resource_count_is("AWS::SSM::MaintenanceWindowTask", 0)


def test_no_permissions_of_its_own() -> None:
    # The instances run the document with their own instance profile (SSM Agent); the
    # window's task runs under Systems Manager's service-linked role: no role, no policy.
    template = _template(reboot_window=RebootWindow(schedule="rate(7 days)"))
    for kind in ("AWS::IAM::Role", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
        template.resource_count_is(kind, 0)
    (task,) = template.find_resources("AWS::SSM::MaintenanceWindowTask").values()
    assert "ServiceRoleArn" not in task["Properties"]


@pytest.mark.parametrize(
    ("props", "message"),
    [
        ({"max_concurrency": "0"}, "max_concurrency '0' is not a count"),
        ({"max_concurrency": "150%"}, "max_concurrency '150%'"),
        ({"max_errors": "-1"}, "max_errors '-1'"),
        ({"max_errors": "ten"}, "max_errors 'ten'"),
        ({"schedule": "every day"}, "schedule 'every day' is not a cron"),
        ({"compliance_severity": "SEVERE"}, "compliance_severity 'SEVERE'"),
        ({"min_memory_mib": 100}, "min_memory_mib 100"),
        ({"opt_in": "crashcart:diagnostic-interrupt"}, "opt_in"),
        ({"kdump": {"crashkernel": "256M"}}, "kdump"),
        ({"opt_in": OptInTag(key="k" * 125)}, "at most 124"),
    ],
)
def test_fails_on_bad_props(props: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        _template(**props)


@pytest.mark.parametrize(
    ("window", "message"),
    [
        ({"schedule": "daily"}, "reboot_window.schedule 'daily'"),
        ({"schedule": "rate(1 day)", "duration": cdk.Duration.minutes(90)}, "whole hours"),
        ({"schedule": "rate(1 day)", "duration": cdk.Duration.hours(25)}, "from 1 to 24"),
        (
            {"schedule": "rate(1 day)", "duration": cdk.Duration.hours(2),
             "cutoff": cdk.Duration.hours(2)},
            "must be shorter than its duration",
        ),
        ({"schedule": "rate(1 day)", "max_concurrency": "0%"}, "max_concurrency '0%'"),
    ],
)  # fmt: skip
def test_fails_on_a_bad_reboot_window(window: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        RebootWindow(**window)


def test_importable_from_crashcart() -> None:
    import crashcart

    assert crashcart.RunningInstanceArming is RunningInstanceArming
    assert crashcart.RebootWindow is RebootWindow
