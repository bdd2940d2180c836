"""A local runner for EC2 Image Builder component documents (the subset crashcart uses).

The drill applies the *same* Debian-family document the AMI pipeline ships. It does so with
this runner, which implements exactly:

- document fields ``name``, ``description``, ``schemaVersion`` (``1.0``) and ``phases``;
- phases ``build``, ``validate`` and ``test`` (each at most once, run in that order);
- step fields ``name``, ``action``, ``inputs`` and ``timeoutSeconds``;
- ``ExecuteBash`` with ``inputs.commands`` (a list of strings). As in AWSTOE, the commands
  are written, in order, to one script that ``bash`` runs; the step fails on a non-zero exit
  status, and exit status **194** asks for a reboot after which the *same step runs again*
  (the script must be idempotent);
- ``Reboot`` (optional ``inputs.delaySeconds``): the guest reboots and the next step runs
  after the boot.

Everything else is refused with :class:`UnsupportedDocumentError` *before* anything runs: any
other action module, ``loop``, ``onFailure``, ``maxAttempts``, document ``parameters`` /
``constants``, any ``{{ variable }}`` anywhere, unknown fields. A step that silently did not
run would make the drill a lie.

Where the steps run: the build-phase steps before the phase's first ``Reboot`` that need
no running kernel run on the host, chrooted into the image in a sandbox
(:mod:`crashcart.drill.hostphase`: the Debian document's package installs), and that Reboot
is the image's first boot; **every other step runs inside the booted guest**, by a bash
runner (``guest/runner.sh``) that a one-shot systemd unit starts at each boot. A step that
asks about the kernel (``uname``, ``sysctl``, ``/proc``, ...) always runs in the guest: a
chroot would answer with the host's kernel. The validate phase runs on every drill boot
(each drill run is a fresh "instance" of the prepared "AMI") and again in every restored
guest; the ``test`` phase is not run (it tags the AMI through EC2).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

SUPPORTED_PHASES = ("build", "validate", "test")
_DOC_FIELDS = {"name", "description", "schemaVersion", "phases"}
_PHASE_FIELDS = {"name", "steps"}
_STEP_FIELDS = {"name", "action", "inputs", "timeoutSeconds"}
_ACTION_INPUTS = {"ExecuteBash": {"commands"}, "Reboot": {"delaySeconds"}}
_STEP_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,128}\Z")
_VARIABLE_RE = re.compile(r"\{\{.*?\}\}", re.DOTALL)

#: The exit status with which an ExecuteBash step asks for a reboot and to be run again.
REBOOT_AND_RESUME_EXIT = 194


class UnsupportedDocumentError(ValueError):
    """The document uses something this runner does not implement (nothing was run)."""


@dataclass(frozen=True, kw_only=True)
class Step:
    """One step, ready to run in the guest."""

    phase: str
    index: int
    name: str
    action: str
    #: ExecuteBash: the script (commands joined by newlines). Reboot: empty.
    script: str = ""
    timeout_seconds: int | None = None
    delay_seconds: int = 0

    @property
    def key(self) -> str:
        """``<phase>-<NN>-<name>``: the step's file name in the guest and its id in logs."""
        return f"{self.phase}-{self.index:02d}-{self.name}"


@dataclass(frozen=True, kw_only=True)
class ComponentDocument:
    """A parsed, fully supported component document."""

    name: str
    phases: dict[str, tuple[Step, ...]]

    def steps(self, *phases: str) -> list[Step]:
        """The steps of ``phases`` in document order (a missing phase has no steps)."""
        return [step for phase in phases for step in self.phases.get(phase, ())]


def _where(*parts: object) -> str:
    return ".".join(str(part) for part in parts)


def _refuse(where: str, problem: str) -> UnsupportedDocumentError:
    return UnsupportedDocumentError(
        f"component document: {where}: {problem} — the crashcart drill runner implements only "
        "ExecuteBash (commands, timeoutSeconds), Reboot (delaySeconds) and exit code 194, "
        "in phases build/validate/test; it refuses anything else rather than skip it"
    )


def _find_variables(node: Any, where: str) -> None:
    if isinstance(node, str):
        match = _VARIABLE_RE.search(node)
        if match:
            raise _refuse(where, f"uses the variable {match.group(0)!r} (not implemented)")
    elif isinstance(node, dict):
        for key, value in node.items():
            _find_variables(key, where)
            _find_variables(value, _where(where, key))
    elif isinstance(node, list):
        for position, value in enumerate(node):
            _find_variables(value, f"{where}[{position}]")


def _unknown(fields: dict[str, Any], allowed: set[str], where: str) -> None:
    extra = sorted(set(fields) - allowed)
    if extra:
        raise _refuse(where, f"field(s) {', '.join(map(repr, extra))} not implemented")


def _positive_int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _refuse(where, f"must be a non-negative integer, got {value!r}")
    return value


def _parse_step(raw: Any, phase: str, index: int, where: str) -> Step:
    if not isinstance(raw, dict):
        raise _refuse(where, "a step must be a mapping")
    _unknown(raw, _STEP_FIELDS, where)
    name = raw.get("name")
    if not isinstance(name, str) or not _STEP_NAME_RE.match(name):
        raise _refuse(_where(where, "name"), f"invalid step name {name!r}")
    action = raw.get("action")
    if action not in _ACTION_INPUTS:
        raise _refuse(_where(where, "action"), f"action module {action!r} is not implemented")
    inputs = raw.get("inputs", {})
    if inputs is None:
        inputs = {}
    if not isinstance(inputs, dict):
        raise _refuse(_where(where, "inputs"), "inputs must be a mapping")
    _unknown(inputs, _ACTION_INPUTS[action], _where(where, "inputs"))
    timeout = raw.get("timeoutSeconds")
    timeout_seconds = (
        None if timeout is None else _positive_int(timeout, _where(where, "timeoutSeconds"))
    )
    if action == "ExecuteBash":
        commands = inputs.get("commands")
        if (
            not isinstance(commands, list)
            or not commands
            or not all(isinstance(command, str) for command in commands)
        ):
            raise _refuse(_where(where, "inputs.commands"), "must be a non-empty list of strings")
        script = "\n".join(command.rstrip("\n") for command in commands) + "\n"
        return Step(
            phase=phase,
            index=index,
            name=name,
            action=action,
            script=script,
            timeout_seconds=timeout_seconds,
        )
    if timeout_seconds is not None:
        raise _refuse(_where(where, "timeoutSeconds"), "not implemented for Reboot")
    delay = _positive_int(inputs.get("delaySeconds", 0), _where(where, "inputs.delaySeconds"))
    return Step(phase=phase, index=index, name=name, action=action, delay_seconds=delay)


def parse_document(text: str) -> ComponentDocument:
    """Parse and check a component document; :class:`UnsupportedDocumentError` if refused."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise UnsupportedDocumentError(f"component document is not valid YAML: {error}") from None
    if not isinstance(raw, dict):
        raise UnsupportedDocumentError("component document must be a YAML mapping")
    _find_variables(raw, "document")
    _unknown(raw, _DOC_FIELDS, "document")
    if str(raw.get("schemaVersion")) != "1.0":
        raise _refuse("document.schemaVersion", f"{raw.get('schemaVersion')!r} is not 1.0")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise _refuse("document.name", "missing")
    phases_raw = raw.get("phases")
    if not isinstance(phases_raw, list) or not phases_raw:
        raise _refuse("document.phases", "must be a non-empty list")
    phases: dict[str, tuple[Step, ...]] = {}
    for position, phase_raw in enumerate(phases_raw):
        where = f"phases[{position}]"
        if not isinstance(phase_raw, dict):
            raise _refuse(where, "a phase must be a mapping")
        _unknown(phase_raw, _PHASE_FIELDS, where)
        phase = phase_raw.get("name")
        if phase not in SUPPORTED_PHASES:
            raise _refuse(_where(where, "name"), f"phase {phase!r} is not implemented")
        if phase in phases:
            raise _refuse(_where(where, "name"), f"phase {phase!r} appears twice")
        steps_raw = phase_raw.get("steps")
        if not isinstance(steps_raw, list) or not steps_raw:
            raise _refuse(_where(where, "steps"), "must be a non-empty list")
        steps = tuple(
            _parse_step(step_raw, phase, index + 1, f"{where}({phase}).steps[{index}]")
            for index, step_raw in enumerate(steps_raw)
        )
        names = [step.name for step in steps]
        duplicates = sorted({step_name for step_name in names if names.count(step_name) > 1})
        if duplicates:
            raise _refuse(f"{where}({phase})", f"duplicate step name(s) {duplicates}")
        phases[phase] = steps
    order = [phase for phase in SUPPORTED_PHASES if phase in phases]
    if list(phases) != order:
        raise _refuse("document.phases", f"phases must be in the order {order}")
    return ComponentDocument(name=name, phases=phases)
