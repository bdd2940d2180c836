"""The operator's docs are true of the synthesized reference app.

- docs/operations.md: the settings table is the app's own list of context keys, and every
  example in it synthesizes with the effect it claims; bad values fail naming the key; the
  alarm runbook covers every alarm, and those of CanaryCrashDrill (which the app lacks); the
  "left behind" list is the templates' retained and deletion-protected resources; the
  exports it names are the templates' exports.
- docs/cost.md: every resource type of the templates is priced (or marked free), with the
  default app's counts, and every construct has a cost line.
- Every ``cdk synth|deploy|diff ... -c crashcart:...`` command in the docs synthesizes.
"""

from __future__ import annotations

import fnmatch
import functools
import itertools
import json
import re
import shlex
from collections import Counter
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest

from crashcart.errors import ConfigurationError
from crashcart.stacks.settings import CONTEXT_KEYS
from tests.conftest import REPO_ROOT
from tests.support.canary_drill_stack import drill_stack
from tests.support.reference import Synthesized, construct_paths, synthesize

#: Among the longest modules: sent out first (tests/conftest.py), not left for last.
pytestmark = pytest.mark.slow

OPERATIONS = REPO_ROOT / "docs" / "operations.md"
COST = REPO_ROOT / "docs" / "cost.md"
USER_DOCS = [
    REPO_ROOT / "README.md",
    OPERATIONS,
    REPO_ROOT / "docs" / "rollout.md",
    COST,
]
INSTANCES = "i-0123456789abcdef0,i-0fedcba9876543210"
#: Settings that add resource types or alarms the default app lacks.
VARIANTS: list[dict[str, Any]] = [
    {},
    {"crashcart:instance-ids": INSTANCES},
    {
        "crashcart:notify-email": "oncall@example.com",
        "crashcart:notify-url": "https://hooks.example.com/crashcart",
    },
    {"crashcart:triage": "false"},
    # armed, with a held group: the lifecycle hook, its rule and the backstop alarm
    {
        "crashcart:auto-scaling-groups": "web,workers",
        "crashcart:dry-run": "false",
        "crashcart:resource-tags-for-telemetry": "true",
    },
]


def _section(path: Path, heading: str) -> str:
    text = path.read_text(encoding="utf-8")
    start = text.index(f"\n## {heading}")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def _table(section: str) -> list[list[str]]:
    """Rows of the first Markdown table in ``section`` (header and rule dropped)."""
    rows = [line for line in section.splitlines() if line.startswith("|")]
    cells = [[cell.strip() for cell in row.strip("|").split(" | ")] for row in rows]
    return [row for row in cells[2:]]


def _code(cell: str) -> str:
    match = re.fullmatch(r"`([^`]+)`", cell)
    assert match, cell
    return match.group(1)


# -- configuration without code ------------------------------------------------------------


def _settings_rows() -> list[list[str]]:
    return _table(_section(OPERATIONS, "Configuration without code (CDK context)"))


def test_the_settings_table_is_the_apps_list_of_keys() -> None:
    rows = _settings_rows()
    assert [_code(row[0]) for row in rows] == list(CONTEXT_KEYS)
    for row in rows:
        default, allowed, meaning = CONTEXT_KEYS[_code(row[0])]
        assert row[1:4] == [default, allowed, meaning], row


def _example(row: list[str]) -> dict[str, str]:
    flag = _code(row[4])
    assert flag.startswith("-c ")
    key, _, value = flag.removeprefix("-c ").partition("=")
    assert key == _code(row[0])
    return {key: value}


def _effect(key: str, app: Synthesized, default: Synthesized) -> None:
    """Assert that the documented example of ``key`` changed what the table says it does."""
    remediation = app.templates["CrashcartRemediation"]
    functions = app.resources("CrashcartRemediation", "AWS::Lambda::Function")
    env = [
        f["Properties"]["Environment"]["Variables"]
        for f in functions.values()
        if "CRASHCART_DRY_RUN" in f["Properties"]["Environment"]["Variables"]
    ]
    alarms = app.resources("CrashcartRemediation", "AWS::CloudWatch::Alarm")
    if key == "crashcart:account":
        assert set(app.environments.values()) == {"aws://123456789012/unknown-region"}
    elif key == "crashcart:region":
        assert set(app.environments.values()) == {"aws://unknown-account/eu-west-1"}
    elif key == "crashcart:dry-run":
        # the remediation and the lifecycle hold (which decides with the remediation's guards)
        assert [e["CRASHCART_DRY_RUN"] for e in env] == ["false", "false"]
        assert remediation["Description"].endswith("(armed)")
    elif key == "crashcart:instance-ids":
        watched = sorted(
            d["Value"]
            for a in alarms.values()
            for d in a["Properties"].get("Dimensions", [])
            if d["Name"] == "InstanceId"
        )
        assert watched == sorted(INSTANCES.split(","))
        # no fleet alarm (the armed backstop of AutoScalingHold is a query too, by tag)
        fleet = {k: a for k, a in alarms.items() if not k.startswith("HoldBackstop")}
        assert "SELECT MAX(StatusCheckFailed_Instance)" not in json.dumps(fleet)
    elif key == "crashcart:auto-scaling-groups":
        hooks = app.resources("CrashcartRemediation", "AWS::AutoScaling::LifecycleHook")
        expected = [_code(row[4]).partition("=")[2] for row in _settings_rows() if key in row[0]]
        assert sorted(h["Properties"]["AutoScalingGroupName"] for h in hooks.values()) == sorted(
            expected[0].split(",")
        )
        assert {h["Properties"]["LifecycleTransition"] for h in hooks.values()} == {
            "autoscaling:EC2_INSTANCE_TERMINATING"
        }
        assert not default.resources("CrashcartRemediation", "AWS::AutoScaling::LifecycleHook")
    elif key == "crashcart:triage":
        assert not app.resources("CrashcartRemediation", "AWS::ECS::TaskDefinition")
        assert not app.resources("CrashcartRemediation", "AWS::EC2::VPCEndpoint")
        assert "Fn::ImportValue" not in json.dumps(remediation)
        assert default.resources("CrashcartRemediation", "AWS::ECS::TaskDefinition")
    elif key in ("crashcart:notify-email", "crashcart:notify-url"):
        subscriptions = app.resources("CrashcartRemediation", "AWS::SNS::Subscription")
        protocol = "email" if key.endswith("email") else "https"
        expected = [_code(row[4]).partition("=")[2] for row in _settings_rows() if key in row[0]]
        assert sorted(s["Properties"]["Endpoint"] for s in subscriptions.values()) == sorted(
            expected[0].split(",")
        )
        assert {s["Properties"]["Protocol"] for s in subscriptions.values()} == {protocol}
        assert not default.resources("CrashcartRemediation", "AWS::SNS::Subscription")
    elif key == "crashcart:arm-running-instances":
        (association,) = app.resources("CrashcartRemediation", "AWS::SSM::Association").values()
        assert association["Properties"]["Targets"] == [
            {"Key": "tag:crashcart:diagnostic-interrupt", "Values": ["enabled"]}
        ]
        assert app.resources("CrashcartRemediation", "AWS::SSM::Document")
        assert not default.resources("CrashcartRemediation", "AWS::SSM::Association")
    elif key == "crashcart:resource-tags-for-telemetry":
        # shadow mode (the example's default) never reboots: no backstop either way
        assert "BackstopAlarm" not in json.dumps(alarms)
        armed = synthesize({key: "true", "crashcart:dry-run": "false"})
        default_armed = synthesize({"crashcart:dry-run": "false"})
        backstops = [
            k
            for k in armed.resources("CrashcartRemediation", "AWS::CloudWatch::Alarm")
            if k.startswith("HoldBackstop")
        ]
        assert len(backstops) == 1
        assert not [
            k
            for k in default_armed.resources("CrashcartRemediation", "AWS::CloudWatch::Alarm")
            if k.startswith("HoldBackstop")
        ]
    else:  # pragma: no cover - a new key needs its check here
        raise AssertionError(f"no synth check for {key}")


@pytest.mark.parametrize("key", list(CONTEXT_KEYS))
def test_each_documented_example_synthesizes_with_its_effect(key: str) -> None:
    (row,) = [row for row in _settings_rows() if _code(row[0]) == key]
    _effect(key, synthesize(_example(row)), synthesize())


def test_the_default_is_shadow_mode_over_the_whole_fleet_with_triage() -> None:
    app = synthesize()
    variables = [
        f["Properties"]["Environment"]["Variables"]
        for f in app.resources("CrashcartRemediation", "AWS::Lambda::Function").values()
    ]
    assert {v.get("CRASHCART_DRY_RUN") for v in variables} >= {"true"}
    assert "SELECT MAX(StatusCheckFailed_Instance)" in json.dumps(app.templates)
    assert app.resources("CrashcartRemediation", "AWS::ECS::TaskDefinition")
    assert app.templates["CrashcartRemediation"]["Description"].endswith("(dry run)")


def test_context_from_cdk_json_may_be_json_values() -> None:
    """cdk.json context holds JSON: booleans and lists are accepted like their strings."""
    app = synthesize({"crashcart:dry-run": False, "crashcart:instance-ids": INSTANCES.split(",")})
    _effect("crashcart:dry-run", app, synthesize())
    _effect("crashcart:instance-ids", app, synthesize())


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ({"crashcart:dry-run": "maybe"}, "crashcart:dry-run='maybe': give true or false"),
        ({"crashcart:dry-run": "no"}, "give true or false (default true: shadow mode"),
        ({"crashcart:triage": "off"}, "crashcart:triage='off': give true or false"),
        ({"crashcart:instance-ids": "i-123"}, "'i-123' is not valid; give instance ids"),
        ({"crashcart:instance-ids": f"{INSTANCES},i-0123456789abcdef0"}, "listed twice"),
        ({"crashcart:notify-email": "oncall"}, "'oncall' is not valid; give e-mail addresses"),
        ({"crashcart:notify-url": "http://hooks.example.com/x"}, "is plain HTTP; give an https"),
        ({"crashcart:notify-url": "hooks.example.com"}, "give https:// URLs"),
        ({"crashcart:account": "1234"}, "crashcart:account='1234': give a 12-digit account id"),
        ({"crashcart:region": "Ireland"}, "crashcart:region='Ireland': give a region name"),
        ({"crashcart:dryrun": "false"}, "did you mean 'crashcart:dry-run'?"),
        ({"crashcart:notify-emails": "a@example.com"}, "did you mean 'crashcart:notify-email'?"),
    ],
)
def test_fails_for_a_bad_context_value_naming_the_key(
    context: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError) as raised:
        synthesize(context)
    assert message in str(raised.value)


# -- commands in the docs ------------------------------------------------------------------


def _documented_cdk_commands() -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for path in USER_DOCS:
        for line in path.read_text(encoding="utf-8").splitlines():
            text = line.strip()
            if re.search(r"\bcdk (synth|deploy|diff)\b", text) and "-c crashcart:" in text:
                found.append((path.name, text))
    return found


def test_the_docs_show_context_commands() -> None:
    names = {name for name, _ in _documented_cdk_commands()}
    assert {"README.md", "operations.md", "rollout.md"} <= names


@pytest.mark.parametrize(
    "command", [c for _, c in _documented_cdk_commands()], ids=lambda c: c[:60]
)
def test_every_documented_cdk_command_synthesizes(command: str) -> None:
    words = shlex.split(command)
    context: dict[str, str] = {}
    for flag, value in itertools.pairwise(words):
        if flag in ("-c", "--context"):
            key, _, setting = value.partition("=")
            assert key in CONTEXT_KEYS, key
            context[key] = setting
    stacks = [w for w in words if w.startswith("Crashcart")]
    app = synthesize(context)
    assert all(stack in app.templates for stack in stacks), stacks


# -- alarm runbook -------------------------------------------------------------------------


def _runbook_patterns() -> list[str]:
    section = _section(OPERATIONS, "Alarm runbook")
    return [
        pattern
        for heading in re.findall(r"^### (.+)$", section, re.M)
        for pattern in re.findall(r"`([^`]+)`", heading)
    ]


@functools.cache
def _alarm_paths() -> frozenset[str]:
    """Construct paths of the reference app's alarms (once per process: two tests read
    them, and walking the construct tree costs about 1.5 s through jsii)."""
    paths: set[str] = set()
    for variant in VARIANTS:
        app = synthesize(variant)
        by_id = construct_paths(app.app)
        for stack, logical, resource in app.all_resources():
            if resource["Type"] == "AWS::CloudWatch::Alarm":
                paths.add(by_id[(stack, logical)])
    return frozenset(paths)


@functools.cache
def _library_alarm_paths() -> frozenset[str]:
    """Alarms of library constructs the reference app does not deploy, synthesized as their
    own tests synthesize them (with the construct ids their docs use); once per process."""
    app = cdk.App()
    stack, _ = drill_stack(app)
    by_id = construct_paths(app)
    template = app.synth().get_stack_by_name(stack.stack_name).template
    return frozenset(
        by_id[(stack.stack_name, logical)]
        for logical, resource in template["Resources"].items()
        if resource["Type"] == "AWS::CloudWatch::Alarm"
    )


def test_every_alarm_has_a_runbook_entry() -> None:
    patterns = _runbook_patterns()
    paths = _alarm_paths()
    assert len(paths) >= 7  # the fleet alarm, two instance alarms, 3 queue, 2 triage alarms
    missing = sorted(p for p in paths if not any(fnmatch.fnmatch(p, pat) for pat in patterns))
    assert missing == [], f"alarms without a runbook entry in docs/operations.md: {missing}"


def test_every_alarm_of_the_canary_drill_has_a_runbook_entry() -> None:
    patterns = _runbook_patterns()
    paths = _library_alarm_paths()
    assert len(paths) >= 2  # the drill's failed-execution and dead-letter alarms
    missing = sorted(p for p in paths if not any(fnmatch.fnmatch(p, pat) for pat in patterns))
    assert missing == [], f"alarms without a runbook entry in docs/operations.md: {missing}"


def test_every_runbook_entry_names_an_alarm() -> None:
    paths = _alarm_paths() | _library_alarm_paths()
    stale = [p for p in _runbook_patterns() if not any(fnmatch.fnmatch(x, p) for x in paths)]
    assert stale == []


# -- what cdk destroy leaves behind --------------------------------------------------------


def _kept(resource: dict[str, Any]) -> bool:
    props = resource.get("Properties", {})
    return (
        resource.get("DeletionPolicy") in ("Retain", "RetainExceptOnCreate", "Snapshot")
        or props.get("DeletionProtectionEnabled") is True
        or props.get("DeletionProtection") is True
        or props.get("EnableTerminationProtection") is True
    )


def test_the_left_behind_list_is_the_templates_retained_resources() -> None:
    app = synthesize()
    paths = construct_paths(app.app)
    kept = {
        (paths[(stack, logical)], resource["Type"])
        for stack, logical, resource in app.all_resources()
        if _kept(resource)
    }
    rows = _table(_section(OPERATIONS, "What `cdk destroy` leaves behind, and how to remove it"))
    documented = {(_code(row[0]), _code(row[1])) for row in rows}
    assert documented == kept, (
        f"retained but not listed: {sorted(kept - documented)}; "
        f"listed but not retained: {sorted(documented - kept)}"
    )
    protected = {
        paths[(stack, logical)]
        for stack, logical, resource in app.all_resources()
        if resource.get("Properties", {}).get("DeletionProtectionEnabled") is True
    }
    for row in rows:
        if _code(row[0]) in protected:
            assert "deletion protection" in row[2], row


def test_the_cross_stack_references_the_docs_describe_are_the_templates() -> None:
    """Weak references (the recommended flag): outputs read with Fn::GetStackOutput, no
    export that CloudFormation would lock."""
    app = synthesize()
    exporting = {
        stack
        for stack, t in app.templates.items()
        for o in t.get("Outputs", {}).values()
        if "Export" in o
    }
    importing = {stack for stack, t in app.templates.items() if "Fn::ImportValue" in json.dumps(t)}
    reading = {stack for stack, t in app.templates.items() if "Fn::GetStackOutput" in json.dumps(t)}
    assert (exporting, importing, reading) == (set(), set(), {"CrashcartRemediation"})
    text = _section(OPERATIONS, "Upgrading between versions")
    assert "`CrashcartRemediation` reads them" in text and "`Fn::GetStackOutput`" in text
    no_triage = synthesize({"crashcart:triage": "false"})
    assert not any("Fn::GetStackOutput" in json.dumps(t) for t in no_triage.templates.values())


# -- cost ----------------------------------------------------------------------------------


def test_every_resource_type_is_priced_with_the_default_count() -> None:
    rows = _table(_section(COST, "Every resource type"))
    documented = {_code(row[0]): row for row in rows}
    types: set[str] = set()
    for variant in VARIANTS:
        types |= {r["Type"] for _, _, r in synthesize(variant).all_resources()}
    assert set(documented) == types, (
        f"not priced in docs/cost.md: {sorted(types - set(documented))}; "
        f"priced but absent: {sorted(set(documented) - types)}"
    )
    counts = Counter(r["Type"] for _, _, r in synthesize().all_resources())
    wrong = {t: (row[1], counts[t]) for t, row in documented.items() if row[1] != str(counts[t])}
    assert wrong == {}, "docs/cost.md count (documented, synthesized)"
    for kind, row in documented.items():
        assert row[2] in ("yes", "no", "by use", "per run", "per delivery"), row
        if row[2] != "no":
            assert "$" in row[3], f"{kind} is billed but has no price"


def test_the_idle_lines_use_the_templates_counts() -> None:
    counts = Counter(r["Type"] for _, _, r in synthesize().all_resources())
    endpoints = synthesize().resources("CrashcartRemediation", "AWS::EC2::VPCEndpoint")
    interface = [
        e for e in endpoints.values() if e["Properties"].get("VpcEndpointType") == "Interface"
    ]
    text = _section(COST, "Idle, per month (reference app, default settings)")
    assert f"| {2 * len(interface)} endpoint-AZs x 730 h |" in text
    assert f"| KMS customer keys | {counts['AWS::KMS::Key']} |" in text
    standard = counts["AWS::CloudWatch::Alarm"] - 1  # all but the Metrics Insights alarm
    assert f"| standard CloudWatch alarms (failure and attestation alarms) | {standard} |" in text
    assert f"${2 * len(interface) * 730 * 0.01:.2f}" in text


def test_every_construct_has_a_cost_line() -> None:
    import constructs

    import crashcart.constructs as library

    names = [
        name
        for name in library.__all__
        if isinstance(getattr(library, name), type)
        and issubclass(getattr(library, name), constructs.Construct)
    ]
    section = _section(COST, "Per construct")
    listed = {_code(row[0].split(" ")[0]) for row in _table(section)}
    assert set(names) <= listed, sorted(set(names) - listed)
