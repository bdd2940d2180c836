"""RunningInstanceArming: arm kdump and install the agent on running instances, no new AMI.

An SSM Command document rendered from the image pipeline's own fragments
(:mod:`crashcart.components.arming`) and a State Manager association that runs it on every
instance carrying the opt-in tag, at a controlled rate, and again on a schedule (drift is
repaired; a rerun changes nothing). The association never reboots: an instance reports
``RESULT reboot-pending`` until its next reboot, and attests armed only when the capture
kernel is loaded. The reboot can be handed to an opt-in maintenance window
(:class:`RebootWindow`), which never reboots Auto Scaling members. See
docs/running-instances.md.

Example::

    RunningInstanceArming(self, "Arming", opt_in=tag)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from crashcart import _props as props
from crashcart.components.arming import (
    DEFAULT_MIN_MEMORY_MIB,
    REBOOT_PARAMETER,
    render_arming_document,
)
from crashcart.errors import ConfigurationError
from crashcart.kdump import KdumpSettings
from crashcart.opt_in import OptInTag

__all__ = ["RebootWindow", "RunningInstanceArming"]

_OWNER = "RunningInstanceArming"
# aws-assumption: ssm-association-rate-controls
_CONCURRENCY_RE = re.compile(r"^([1-9][0-9]{0,5}|[1-9][0-9]?%|100%)\Z")
_ERRORS_RE = re.compile(r"^([0-9]{1,6}|[0-9]{1,2}%|100%)\Z")
_SCHEDULE_RE = re.compile(r"^(cron|rate)\(.+\)\Z")
_TARGET_KEY_LIMIT = 128
_SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "UNSPECIFIED")


def _check_rate(name: str, value: str, *, errors: bool) -> None:
    pattern = _ERRORS_RE if errors else _CONCURRENCY_RE
    if not isinstance(value, str) or not pattern.match(value):
        allowed = (
            "a count (0 or more) or a percentage (0%-100%)"
            if errors
            else "a count (1 or more) or a percentage (1%-100%)"
        )
        raise ConfigurationError(
            f"{_OWNER} {name} {value!r} is not {allowed}, e.g. "
            f"{'1' if errors else '10%'}: Systems Manager's rate controls take these forms"
        )


def _check_schedule(name: str, value: str) -> None:
    if not isinstance(value, str) or not _SCHEDULE_RE.match(value):
        raise ConfigurationError(
            f"{_OWNER} {name} {value!r} is not a cron(...) or rate(...) expression, e.g. "
            "'rate(1 day)' or 'cron(0 4 ? * SUN *)'"
        )


def _whole_hours(name: str, value: cdk.Duration, low: int, high: int) -> int:
    props.check(_OWNER, name, value, cdk.Duration, example="cdk.Duration.hours(2)")
    seconds = value.to_seconds()
    hours = seconds // 3600
    if seconds % 3600 or not low <= hours <= high:
        raise ConfigurationError(
            f"{_OWNER} {name} {value.to_human_string()!r}: use whole hours from {low} to "
            f"{high} (a maintenance window's duration and cutoff are whole hours)"
        )
    return int(hours)


@dataclass(frozen=True, kw_only=True)
class RebootWindow:
    """An opt-in maintenance window that reboots opted-in instances whose arming is pending.

    The window's task runs the arming document with ``RebootIfPending=yes``: an instance
    that needs a reboot for its reservation (and is known not to be in an Auto Scaling group)
    asks SSM Agent for one (exit 194), is armed when the script runs again after the boot,
    and is never rebooted a second time for the same reason.

    :param schedule: when the window opens, ``cron(...)`` or ``rate(...)``.
    :param duration: how long it stays open, whole hours 1-24. Default: 2 hours.
    :param cutoff: stop starting new reboots this long before it closes, whole hours 0-23
        and less than ``duration``. Default: 1 hour.
    :param max_concurrency: instances rebooted at once. Default: ``"1"``.
    :param max_errors: failures before the window's task stops. Default: ``"0"`` (the first
        failure stops it).
    :param schedule_timezone: IANA time zone of ``schedule``. Default: None (UTC).
    """

    schedule: str
    duration: cdk.Duration = cdk.Duration.hours(2)  # noqa: RUF009 - immutable
    cutoff: cdk.Duration = cdk.Duration.hours(1)  # noqa: RUF009 - immutable
    max_concurrency: str = "1"
    max_errors: str = "0"
    schedule_timezone: str | None = None

    def __post_init__(self) -> None:
        _check_schedule("reboot_window.schedule", self.schedule)
        duration = _whole_hours("reboot_window.duration", self.duration, 1, 24)
        cutoff = _whole_hours("reboot_window.cutoff", self.cutoff, 0, 23)
        if cutoff >= duration:
            raise ConfigurationError(
                f"{_OWNER} reboot_window.cutoff ({cutoff} h) must be shorter than its "
                f"duration ({duration} h): no reboot could start"
            )
        _check_rate("reboot_window.max_concurrency", self.max_concurrency, errors=False)
        _check_rate("reboot_window.max_errors", self.max_errors, errors=True)


class RunningInstanceArming(Construct):
    """The arming document and its association on opted-in instances.

    Attributes: :attr:`document` (``AWS::SSM::Document``), :attr:`document_content` (the
    rendered document), :attr:`association`, and with a :class:`RebootWindow`
    :attr:`maintenance_window`, :attr:`window_target`, :attr:`window_task` (else None).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        opt_in: OptInTag | None = None,
        kdump: KdumpSettings | None = None,
        min_memory_mib: int = DEFAULT_MIN_MEMORY_MIB,
        install_agent: bool = True,
        schedule: str = "rate(1 day)",
        max_concurrency: str = "10%",
        max_errors: str = "10%",
        compliance_severity: str = "MEDIUM",
        reboot_window: RebootWindow | None = None,
    ) -> None:
        """Create the document and the association.

        :param opt_in: the tag that selects the instances. Default: ``OptInTag()``
            (``crashcart:diagnostic-interrupt`` = ``enabled``), the tag that makes them
            eligible for interrupts.
        :param kdump: what to arm. Default: ``KdumpSettings()``; use the same value as the
            pipeline so that baked and armed instances agree.
        :param min_memory_mib: instances with less memory are refused with the reason
            ``memory-floor``, as are those where the reservation would take more than a
            quarter of it. Default: 1536 (a "2 GiB" type passes; "1 GiB" types are refused).
        :param install_agent: install the crashcart agent (attestation, dump shipping).
            Default: True.
        :param schedule: when the association runs again (it also runs at creation and on
            instances that get the tag). Default: ``rate(1 day)``: drift is repaired daily.
        :param max_concurrency: instances that run it at once. Default: ``"10%"``.
        :param max_errors: failures after which it stops for the rest. Default: ``"10%"``.
        :param compliance_severity: the association's compliance severity. Default:
            ``"MEDIUM"``.
        :param reboot_window: an opt-in maintenance window that reboots pending instances.
            Default: None (crashcart never reboots; the reboot is yours).
        """
        props.check(_OWNER, "opt_in", opt_in, OptInTag, example="OptInTag()", optional=True)
        props.check(_OWNER, "kdump", kdump, KdumpSettings, example="KdumpSettings()", optional=True)
        props.check(
            _OWNER,
            "reboot_window",
            reboot_window,
            RebootWindow,
            example="RebootWindow(schedule='cron(0 4 ? * SUN *)')",
            optional=True,
        )
        _check_schedule("schedule", schedule)
        _check_rate("max_concurrency", max_concurrency, errors=False)
        _check_rate("max_errors", max_errors, errors=True)
        if compliance_severity not in _SEVERITIES:
            raise ConfigurationError(
                f"{_OWNER} compliance_severity {compliance_severity!r} is not one of "
                f"{', '.join(_SEVERITIES)}"
            )
        tag = opt_in or OptInTag()
        # aws-assumption: ssm-association-tag-targets
        if len(f"tag:{tag.key}") > _TARGET_KEY_LIMIT:
            raise ConfigurationError(
                f"{_OWNER} opt_in key {tag.key[:40]!r}... is {len(tag.key)} characters: a "
                f"State Manager target 'tag:<key>' allows at most {_TARGET_KEY_LIMIT} "
                f"characters, so the key at most {_TARGET_KEY_LIMIT - 4}"
            )
        super().__init__(scope, construct_id)
        self.opt_in = tag
        self.document_content = render_arming_document(
            kdump, min_memory_mib=min_memory_mib, include_agent=install_agent
        )
        # aws-assumption: ssm-command-document-limits
        self.document = ssm.CfnDocument(
            self,
            "Document",
            document_type="Command",
            document_format="JSON",
            content=self.document_content,
            target_type="/AWS::EC2::Instance",
        )
        # aws-assumption: ssm-association-tag-targets, ssm-association-rate-controls
        # aws-assumption: ssm-association-compliance
        self.association = ssm.CfnAssociation(
            self,
            "Association",
            name=self.document.ref,
            targets=[ssm.CfnAssociation.TargetProperty(key=f"tag:{tag.key}", values=[tag.value])],
            parameters={REBOOT_PARAMETER: ["no"]},
            schedule_expression=schedule,
            max_concurrency=max_concurrency,
            max_errors=max_errors,
            compliance_severity=compliance_severity,
            sync_compliance="AUTO",
            apply_only_at_cron_interval=False,
        )
        self.maintenance_window: ssm.CfnMaintenanceWindow | None = None
        self.window_target: ssm.CfnMaintenanceWindowTarget | None = None
        self.window_task: ssm.CfnMaintenanceWindowTask | None = None
        if reboot_window is not None:
            self._reboot_window(reboot_window, tag)

    def _reboot_window(self, window: RebootWindow, tag: OptInTag) -> None:
        # aws-assumption: ssm-maintenance-window-service-linked-role
        self.maintenance_window = ssm.CfnMaintenanceWindow(
            self,
            "RebootWindow",
            name=f"crashcart-reboot-{cdk.Names.unique_id(self)[-40:]}",
            description="crashcart: reboot opted-in instances whose kdump arming is pending "
            "(never Auto Scaling members)",
            schedule=window.schedule,
            schedule_timezone=window.schedule_timezone,
            duration=int(window.duration.to_seconds()) // 3600,
            cutoff=int(window.cutoff.to_seconds()) // 3600,
            allow_unassociated_targets=False,
        )
        self.window_target = ssm.CfnMaintenanceWindowTarget(
            self,
            "RebootWindowTarget",
            window_id=self.maintenance_window.ref,
            resource_type="INSTANCE",
            targets=[
                ssm.CfnMaintenanceWindowTarget.TargetsProperty(
                    key=f"tag:{tag.key}", values=[tag.value]
                )
            ],
        )
        self.window_task = ssm.CfnMaintenanceWindowTask(
            self,
            "RebootWindowTask",
            window_id=self.maintenance_window.ref,
            task_type="RUN_COMMAND",
            task_arn=self.document.ref,
            priority=1,
            max_concurrency=window.max_concurrency,
            max_errors=window.max_errors,
            targets=[
                ssm.CfnMaintenanceWindowTask.TargetProperty(
                    key="WindowTargetIds", values=[self.window_target.ref]
                )
            ],
            task_invocation_parameters=ssm.CfnMaintenanceWindowTask.TaskInvocationParametersProperty(
                maintenance_window_run_command_parameters=ssm.CfnMaintenanceWindowTask.MaintenanceWindowRunCommandParametersProperty(
                    parameters={REBOOT_PARAMETER: ["yes"]},
                    comment="crashcart: arm kdump, rebooting where a reboot is pending",
                )
            ),
        )
