"""The canary drill's state machine, as Amazon States Language (a plain dict).

Built as data, not with CDK's task constructs, so that the very definition the construct
deploys is the one the tests execute offline (moto's Step Functions interpreter, with the
drill function run in process): every path, success, each failure, each timeout and
"inconclusive", is executed there, and the canary is asserted terminated on each.

Shape: ``Claim`` (one drill per AMI: a conditional write) -> ``DrillEachType`` (a Map, one
iteration per instance type: launch -> wait armed -> hang -> wait for the dump -> terminate,
every path of an iteration that launched a canary goes through ``Terminate``) ->
``Conclude`` (record, promote or not, notify, release). Every wait is a poll loop whose
deadline the function judges (``timed-out``), every task has a timeout, and the execution has
one too; an execution stopped by hand or timed out runs no Catch: the janitor covers it.
"""

from __future__ import annotations

from typing import Any, Final

from crashcart.runtime.canary import Action, Outcome, Poll

#: Retried on every function task: Lambda's own transient errors.
# aws-assumption: sfn-service-integrations
_LAMBDA_RETRY: Final = {
    "ErrorEquals": [
        "Lambda.ServiceException",
        "Lambda.AWSLambdaException",
        "Lambda.SdkClientException",
        "Lambda.TooManyRequestsException",
    ],
    "IntervalSeconds": 2,
    "MaxAttempts": 3,
    "BackoffRate": 2.0,
}
#: The error the function raises when another execution holds the AMI's lock.
BUSY_ERROR: Final = "DrillBusyError"
#: How long one function task may take.
TASK_TIMEOUT_SECONDS: Final = 120


def _task(
    function_arn: str,
    action: Action,
    parameters: dict[str, Any],
    *,
    result_path: str,
    next_state: str,
    catch_to: str | None,
) -> dict[str, Any]:
    state: dict[str, Any] = {
        "Type": "Task",
        "Resource": function_arn,
        "Parameters": {"action": action.value, **parameters},
        "ResultPath": result_path,
        "TimeoutSeconds": TASK_TIMEOUT_SECONDS,
        "Retry": [_LAMBDA_RETRY],
        "Next": next_state,
    }
    if catch_to:
        state["Catch"] = [
            {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": catch_to}
        ]
    return state


def _verdict(outcome: Outcome, step: str, reason_path: str, **figures: str) -> dict[str, Any]:
    """A Pass state that writes the type's verdict to ``$.verdict`` and goes to Terminate."""
    return {
        "Type": "Pass",
        "Parameters": {
            "instance_type.$": "$.instance_type",
            "instance_id.$": "$.launch.instance_id",
            "outcome": outcome.value,
            "step": step,
            "reason.$": reason_path,
            **{f"{name}.$": path for name, path in figures.items()},
        },
        "ResultPath": "$.verdict",
        "Next": "Terminate",
    }


def _no_canary(outcome: Outcome, reason_path: str) -> dict[str, Any]:
    """The verdict of a type whose canary never started (nothing to terminate)."""
    return {
        "Type": "Pass",
        "Parameters": {
            "instance_type.$": "$.instance_type",
            "outcome": outcome.value,
            "step": "launch",
            "reason.$": reason_path,
        },
        "End": True,
    }


def _poll_choice(status_path: str, *, ready: str, pending: str, otherwise: str) -> dict[str, Any]:
    return {
        "Type": "Choice",
        "Choices": [
            {"Variable": status_path, "StringEquals": Poll.READY.value, "Next": ready},
            {"Variable": status_path, "StringEquals": Poll.PENDING.value, "Next": pending},
        ],
        "Default": otherwise,
    }


def iteration(function_arn: str) -> dict[str, Any]:
    """One instance type: launch, wait armed, hang, wait for the dump, terminate."""
    fn = function_arn
    ident = {"ami_id.$": "$.ami_id", "execution.$": "$.execution"}
    canary = {"instance_id.$": "$.launch.instance_id"}
    states: dict[str, Any] = {
        "Launch": _task(
            fn,
            Action.LAUNCH,
            {**ident, "instance_type.$": "$.instance_type"},
            result_path="$.launch",
            next_state="Launched",
            catch_to="LaunchError",
        ),
        "Launched": {
            "Type": "Choice",
            "Choices": [
                {"Variable": "$.launch.launched", "BooleanEquals": True, "Next": "WaitArmed"}
            ],
            "Default": "Inconclusive",
        },
        "Inconclusive": _no_canary(Outcome.INCONCLUSIVE, "$.launch.reason"),
        "LaunchError": _no_canary(Outcome.FAILED, "$.error.Cause"),
        "WaitArmed": {"Type": "Wait", "SecondsPath": "$.poll_seconds", "Next": "CheckArmed"},
        "CheckArmed": _task(
            fn,
            Action.CHECK_READY,
            {
                **canary,
                "launched_at.$": "$.launch.launched_at",
                "ready_deadline.$": "$.launch.ready_deadline",
            },
            result_path="$.ready",
            next_state="Armed",
            catch_to="ArmedError",
        ),
        "Armed": _poll_choice(
            "$.ready.status", ready="Hang", pending="WaitArmed", otherwise="NotArmed"
        ),
        "NotArmed": _verdict(Outcome.FAILED, "armed", "$.ready.reason"),
        "ArmedError": _verdict(Outcome.FAILED, "armed", "$.error.Cause"),
        "Hang": _task(
            fn,
            Action.HANG,
            canary,
            result_path="$.hang",
            next_state="WaitDump",
            catch_to="HangError",
        ),
        "HangError": _verdict(Outcome.FAILED, "hang", "$.error.Cause"),
        "WaitDump": {"Type": "Wait", "SecondsPath": "$.poll_seconds", "Next": "CheckDump"},
        "CheckDump": _task(
            fn,
            Action.CHECK_DUMP,
            {
                **canary,
                "instance_type.$": "$.instance_type",
                "hung_at.$": "$.hang.hung_at",
                "dump_deadline.$": "$.hang.dump_deadline",
            },
            result_path="$.dump",
            next_state="Dumped",
            catch_to="DumpError",
        ),
        "Dumped": _poll_choice(
            "$.dump.status", ready="Passed", pending="WaitDump", otherwise="NoDump"
        ),
        "NoDump": _verdict(Outcome.FAILED, "dump", "$.dump.reason"),
        "DumpError": _verdict(Outcome.FAILED, "dump", "$.error.Cause"),
        "Passed": _verdict(
            Outcome.PASSED,
            "done",
            "$.dump.summary",
            boot_to_armed_seconds="$.ready.boot_to_armed_seconds",
            hang_to_interrupt_seconds="$.dump.hang_to_interrupt_seconds",
            interrupt_to_dump_seconds="$.dump.interrupt_to_dump_seconds",
            dump_bytes="$.dump.dump_bytes",
            memory_mib="$.dump.memory_mib",
            # reserved vs used by the capture kernel (null: the dump had no figures)
            capture_reserved_mib="$.dump.capture_reserved_mib",
            capture_used_mib="$.dump.capture_used_mib",
            capture_margin_mib="$.dump.capture_margin_mib",
            makedumpfile_peak_mib="$.dump.makedumpfile_peak_mib",
        ),
        # Every path of a launched canary ends here: its output is the verdict.
        # aws-assumption: sfn-service-integrations
        "Terminate": {
            "Type": "Task",
            "Resource": "arn:aws:states:::aws-sdk:ec2:terminateInstances",
            "Parameters": {"InstanceIds.$": "States.Array($.launch.instance_id)"},
            "ResultPath": "$.terminated",
            "OutputPath": "$.verdict",
            "TimeoutSeconds": 60,
            "Retry": [
                {
                    "ErrorEquals": ["States.ALL"],
                    "IntervalSeconds": 5,
                    "MaxAttempts": 4,
                    "BackoffRate": 2.0,
                }
            ],
            "Catch": [
                {
                    "ErrorEquals": ["States.ALL"],
                    "ResultPath": "$.verdict.terminate_error",
                    "Next": "NotTerminated",
                }
            ],
            "End": True,
        },
        # The janitor's schedule terminates it after the maximum canary lifetime.
        "NotTerminated": {"Type": "Pass", "OutputPath": "$.verdict", "End": True},
    }
    return {"ProcessorConfig": {"Mode": "INLINE"}, "StartAt": "Launch", "States": states}


def definition(
    function_arn: str, *, timeout_seconds: int, max_concurrency: int = 0
) -> dict[str, Any]:
    """The state machine. ``function_arn`` may be a CDK token (resolved at synth)."""
    fn = function_arn
    execution = {"execution.$": "$$.Execution.Name"}
    claimed = {
        "ami_id.$": "$.claim.ami_id",
        "source.$": "$.claim.source",
        "skip_reason.$": "$.claim.skip_reason",
    }
    claim = _task(
        fn,
        Action.CLAIM,
        {**execution, "input.$": "$"},
        result_path="$.claim",
        next_state="Skip",
        catch_to=None,
    )
    claim["Catch"] = [
        {"ErrorEquals": [BUSY_ERROR], "ResultPath": "$.error", "Next": "AlreadyRunning"},
        {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Release"},
    ]
    return {
        "Comment": "crashcart canary crash drill: prove an AMI's kdump path on real instances",
        "TimeoutSeconds": timeout_seconds,
        "StartAt": "Claim",
        "States": {
            "Claim": claim,
            "AlreadyRunning": {"Type": "Succeed"},
            "Skip": {
                "Type": "Choice",
                "Choices": [
                    {"Variable": "$.claim.skip_reason", "StringEquals": "", "Next": "DrillEachType"}
                ],
                "Default": "NoTypes",
            },
            "NoTypes": {
                "Type": "Pass",
                "Result": [],
                "ResultPath": "$.results",
                "Next": "Conclude",
            },
            "DrillEachType": {
                "Type": "Map",
                "ItemsPath": "$.claim.instance_types",
                "ItemSelector": {
                    "instance_type.$": "$$.Map.Item.Value",
                    "ami_id.$": "$.claim.ami_id",
                    "execution.$": "$$.Execution.Name",
                    "poll_seconds.$": "$.claim.poll_seconds",
                },
                "MaxConcurrency": max_concurrency,
                "ItemProcessor": iteration(fn),
                "ResultPath": "$.results",
                "Catch": [
                    {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Release"}
                ],
                "Next": "Conclude",
            },
            "Conclude": _task(
                fn,
                Action.CONCLUDE,
                {**execution, **claimed, "results.$": "$.results"},
                result_path="$.conclusion",
                next_state="Verdict",
                catch_to="Release",
            ),
            "Verdict": {
                "Type": "Choice",
                "Choices": [
                    {
                        "Variable": "$.conclusion.outcome",
                        "StringEquals": Outcome.FAILED.value,
                        "Next": "DrillFailed",
                    }
                ],
                "Default": "Done",
            },
            "Done": {"Type": "Succeed"},
            "DrillFailed": {
                "Type": "Fail",
                "Error": "DrillFailed",
                "Cause": "an instance type failed the drill: see the notification",
            },
            "Release": {
                "Type": "Task",
                "Resource": fn,
                "Parameters": {"action": Action.RELEASE.value, **execution, "error.$": "$.error"},
                "ResultPath": "$.released",
                "TimeoutSeconds": TASK_TIMEOUT_SECONDS,
                "Retry": [_LAMBDA_RETRY],
                "Catch": [
                    {
                        "ErrorEquals": ["States.ALL"],
                        "ResultPath": "$.release_error",
                        "Next": "DrillError",
                    }
                ],
                "Next": "DrillError",
            },
            "DrillError": {
                "Type": "Fail",
                "Error": "DrillError",
                "Cause": "the drill stopped on an error: see the notification",
            },
        },
    }
