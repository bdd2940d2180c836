"""The drill's component runner: what it implements, and that it refuses everything else."""

from __future__ import annotations

import textwrap

import pytest

from crashcart.drill.component import (
    UnsupportedDocumentError,
    parse_document,
)

MINIMAL = textwrap.dedent(
    """\
    name: test-doc
    description: a test
    schemaVersion: 1.0
    phases:
      - name: build
        steps:
          - name: First
            action: ExecuteBash
            inputs:
              commands:
                - echo one
                - echo two
          - name: Again
            action: Reboot
            inputs:
              delaySeconds: 5
      - name: validate
        steps:
          - name: Check
            action: ExecuteBash
            timeoutSeconds: 60
            inputs:
              commands:
                - |
                  test -e /etc/hostname
    """
)


def test_parses_the_supported_subset() -> None:
    document = parse_document(MINIMAL)
    assert document.name == "test-doc"
    build = document.steps("build")
    assert [s.key for s in build] == ["build-01-First", "build-02-Again"]
    assert build[0].script == "echo one\necho two\n"
    assert build[1].action == "Reboot" and build[1].delay_seconds == 5
    (check,) = document.steps("validate")
    assert check.timeout_seconds == 60
    assert document.steps("test") == []


def test_parses_the_real_debian_document() -> None:
    from crashcart.drill.prepare import render_document

    document = parse_document(render_document())
    actions = [step.action for step in document.steps("build")]
    assert "Reboot" in actions
    assert all(action in ("ExecuteBash", "Reboot") for action in actions)
    assert document.steps("validate"), "the validate phase is what the drill reports"
    assert "crashkernel" in "".join(step.script for step in document.steps("build"))


def _with(step_extra: str, *, action: str = "ExecuteBash", inputs: str = "commands: [true]") -> str:
    return textwrap.dedent(
        f"""\
        name: d
        schemaVersion: 1.0
        phases:
          - name: build
            steps:
              - name: S
                action: {action}
                {step_extra}
                inputs:
                  {inputs}
        """
    )


@pytest.mark.parametrize(
    ("document", "phrase"),
    [
        (
            _with("", action="S3Download", inputs="- source: s3://b/k"),
            "'S3Download' is not implemented",
        ),
        (_with("", action="ExecutePowerShell"), "'ExecutePowerShell' is not implemented"),
        (_with("", action="UpdateOS", inputs="{}"), "'UpdateOS' is not implemented"),
        (_with("onFailure: Continue"), "'onFailure' not implemented"),
        (_with("onFailure: Abort"), "'onFailure' not implemented"),
        (_with("maxAttempts: 3"), "'maxAttempts' not implemented"),
        (_with("loop: {name: l, forEach: [a, b]}"), "'loop' not implemented"),
        (_with("", inputs="commands: ['echo {{ build.S.outputs.stdout }}']"), "variable"),
        (_with("", inputs="commands: ['echo {{ myParam }}']"), "variable"),
        (
            _with("", inputs="commands: [true]\n                  workingDirectory: /tmp"),
            "'workingDirectory' not implemented",
        ),
        (_with("", inputs="commands: []"), "non-empty list of strings"),
        (_with("", inputs="commands: echo hi"), "non-empty list of strings"),
        (_with("timeoutSeconds: -1"), "non-negative integer"),
        (_with("", action="Reboot", inputs="{rebootAfter: true}"), "'rebootAfter' not implemented"),
    ],
)
def test_refuses_what_it_does_not_implement(document: str, phrase: str) -> None:
    with pytest.raises(UnsupportedDocumentError, match="refuses anything else") as error:
        parse_document(document)
    assert phrase in str(error.value)


def test_refuses_document_parameters_and_constants() -> None:
    for field in (
        "parameters:\n  - p: {type: string, default: x}\n",
        "constants:\n  - c: {type: string, value: x}\n",
    ):
        with pytest.raises(UnsupportedDocumentError, match="not implemented"):
            parse_document(MINIMAL + field)


def test_refuses_unknown_phases_order_and_duplicates() -> None:
    with pytest.raises(UnsupportedDocumentError, match="phase 'deploy' is not implemented"):
        parse_document(MINIMAL.replace("name: validate", "name: deploy"))
    swapped = MINIMAL.replace("name: build", "name: XX").replace("name: validate", "name: build")
    swapped = swapped.replace("name: XX", "name: validate")
    with pytest.raises(UnsupportedDocumentError, match="order"):
        parse_document(swapped)
    with pytest.raises(UnsupportedDocumentError, match="duplicate step"):
        parse_document(MINIMAL.replace("name: Again", "name: First"))


def test_refuses_other_schema_versions_and_bad_yaml() -> None:
    with pytest.raises(UnsupportedDocumentError, match="schemaVersion"):
        parse_document(MINIMAL.replace("schemaVersion: 1.0", "schemaVersion: 2.0"))
    with pytest.raises(UnsupportedDocumentError, match="not valid YAML"):
        parse_document("phases: [")
    with pytest.raises(UnsupportedDocumentError, match="mapping"):
        parse_document("- just a list")


def test_a_variable_anywhere_is_refused_even_in_a_description() -> None:
    with pytest.raises(UnsupportedDocumentError, match="variable"):
        parse_document(MINIMAL.replace("description: a test", "description: 'v {{ x }}'"))
