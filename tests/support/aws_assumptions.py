"""Reading docs/aws-assumptions.md, the code that names its entries, and what templates rely on.

A plain module (no fixtures) shared by tests/unit/test_aws_assumptions.py (the register's format
and its links with the code) and tests/infra/test_aws_assumptions_deployed.py (what the
synthesized app relies on must be in the register).

The register's entries are ``### <id>`` headings, each followed by exactly the five fields of
:data:`FIELDS` as ``- **<Field>:** text`` bullets (a field may continue on indented lines).
Code names an entry where it relies on it with a comment ``aws-assumption: <id>`` (several ids
may be separated by commas).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.conftest import REPO_ROOT

REGISTER = REPO_ROOT / "docs" / "aws-assumptions.md"
CODE_ROOT = REPO_ROOT / "crashcart"

#: The fields of an entry, in the order the register writes them.
FIELDS = ("Relies on", "Source", "Verified", "If wrong", "Check in an account")
#: What "Verified" may say (one or more of them).
VERIFIED_KINDS = ("documentation", "offline test", "not at all")

ID_PATTERN = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_HEADING = re.compile(r"^(#{1,3}) (.*?)\s*$")
_FIELD = re.compile(r"^- \*\*(?P<name>[^*]+?):\*\*\s*(?P<value>.*)$")
_URL = re.compile(r"https://[^\s)>\]]+")
_TEST_PATH = re.compile(r"tests/[\w./-]+\.py")

#: Files under crashcart/ that may name an entry: code, scripts, documents, unit files.
CODE_SUFFIXES = frozenset({".py", ".sh", ".yaml", ".yml", ".ps1", ".service", ".timer"})
CODE_NAMES = frozenset({"Dockerfile", "MANIFEST"})
_REFERENCE = re.compile(
    r"aws-assumption:\s*(?P<ids>[a-z0-9][a-z0-9-]*(?:\s*,\s*[a-z0-9][a-z0-9-]*)*)"
)


# --------------------------------------------------------------------------- the register


@dataclass
class Entry:
    """One ``### <id>`` entry: its fields (name -> text) and the line its heading is on."""

    id: str
    line: int
    fields: dict[str, str] = field(default_factory=dict)
    text: str = ""


@dataclass
class Register:
    entries: list[Entry]
    #: Format problems, each naming the line and what is wrong.
    problems: list[str]

    @property
    def ids(self) -> list[str]:
        return [entry.id for entry in self.entries]

    @property
    def entry_text(self) -> str:
        """The text of every entry (headings and fields), not the page's introduction."""
        return "\n".join(entry.text for entry in self.entries)


def _unfenced_lines(text: str) -> Iterator[tuple[int, str, bool]]:
    """(line number, line, inside a ``` fence) for every line of ``text``."""
    fenced = False
    for number, line in enumerate(text.splitlines(), start=1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            yield number, line, True
            continue
        yield number, line, fenced


def parse_register(text: str) -> Register:
    """Split the register into entries and report every format problem found."""
    entries: list[Entry] = []
    problems: list[str] = []
    current: Entry | None = None
    last_field: str | None = None
    body: list[str] = []

    def close() -> None:
        if current is None:
            return
        current.text = "\n".join(body)
        for name in FIELDS:
            if name not in current.fields:
                problems.append(f"line {current.line}: entry {current.id!r} has no {name!r} field")
            elif not current.fields[name].strip():
                problems.append(f"line {current.line}: entry {current.id!r}: {name!r} is empty")

    for number, line, fenced in _unfenced_lines(text):
        heading = None if fenced else _HEADING.match(line)
        if heading is not None:
            close()
            current, last_field, body = None, None, []
            if len(heading.group(1)) == 3:
                entry_id = heading.group(2)
                if not ID_PATTERN.match(entry_id):
                    problems.append(
                        f"line {number}: entry id {entry_id!r} is not kebab-case "
                        "(lower-case letters and digits joined by single hyphens)"
                    )
                current = Entry(id=entry_id, line=number)
                entries.append(current)
                body = [line]
            continue
        if current is None:
            continue
        body.append(line)
        if not line.strip():
            continue
        matched = None if fenced else _FIELD.match(line)
        if matched is not None:
            name = matched.group("name").strip()
            if name not in FIELDS:
                problems.append(
                    f"line {number}: entry {current.id!r} has an unknown field {name!r}; "
                    f"the fields are {', '.join(FIELDS)}"
                )
                last_field = None
                continue
            if name in current.fields:
                problems.append(f"line {number}: entry {current.id!r} repeats the {name!r} field")
            current.fields[name] = matched.group("value").strip()
            last_field = name
        elif line[:1].isspace() and last_field is not None:
            current.fields[last_field] += " " + line.strip()
        else:
            problems.append(
                f"line {number}: entry {current.id!r}: text outside the five fields: "
                f"{line.strip()[:60]!r} (continue a field on an indented line)"
            )
    close()

    seen: dict[str, int] = {}
    for entry in entries:
        if entry.id in seen:
            problems.append(
                f"line {entry.line}: entry id {entry.id!r} is used twice "
                f"(first at line {seen[entry.id]})"
            )
        seen.setdefault(entry.id, entry.line)
    for entry in entries:
        problems.extend(_field_problems(entry))
    return Register(entries=entries, problems=problems)


def _field_problems(entry: Entry) -> Iterator[str]:
    source = entry.fields.get("Source", "")
    if source and not _URL.search(source):
        yield (
            f"line {entry.line}: entry {entry.id!r}: Source names no https URL "
            "(cite the page AWS documents the behaviour on)"
        )
    verified = entry.fields.get("Verified", "")
    if verified:
        lowered = verified.lower()
        if not any(kind in lowered for kind in VERIFIED_KINDS):
            yield (
                f"line {entry.line}: entry {entry.id!r}: Verified must say "
                f"{' / '.join(VERIFIED_KINDS)}, got {verified[:60]!r}"
            )
        named = _TEST_PATH.findall(verified)
        if "offline test" in lowered and not named:
            yield (
                f"line {entry.line}: entry {entry.id!r}: Verified says 'offline test' but "
                "names no tests/....py file"
            )
        for path in named:
            if not (REPO_ROOT / path).is_file():
                yield (
                    f"line {entry.line}: entry {entry.id!r}: Verified names {path}, "
                    "which does not exist"
                )


def read_register(path: Path = REGISTER) -> Register:
    return parse_register(path.read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- the code


def is_code_file(path: Path) -> bool:
    if "__pycache__" in path.parts or not path.is_file():
        return False
    return path.suffix in CODE_SUFFIXES or path.name in CODE_NAMES


def code_references(root: Path = CODE_ROOT) -> dict[str, list[str]]:
    """Entry id -> the places (``path:line``, relative to the repository) that name it."""
    found: dict[str, list[str]] = {}
    for path in sorted(root.rglob("*")):
        if not is_code_file(path):
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), start=1):
            for match in _REFERENCE.finditer(line):
                for entry_id in re.split(r"\s*,\s*", match.group("ids")):
                    try:
                        where = path.relative_to(REPO_ROOT)
                    except ValueError:
                        where = path
                    found.setdefault(entry_id, []).append(f"{where}:{number}")
    return found


# --------------------------------------------------------------------------- templates

#: How a pseudo parameter is written in a term the register names.
_PSEUDO = {
    "AWS::Region": "<region>",
    "AWS::AccountId": "<account>",
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
}
_SUB_REF = re.compile(r"\$\{(!?)([^}]*)\}")
_VARIABLE = re.compile(r"\$\{([^}]*)\}")


@dataclass
class PolicyTerms:
    """What the templates rely on, each with where it is used (``stack/logical id``)."""

    service_principals: dict[str, set[str]] = field(default_factory=dict)
    condition_keys: dict[str, set[str]] = field(default_factory=dict)
    policy_variables: dict[str, set[str]] = field(default_factory=dict)
    alarm_actions: dict[str, set[str]] = field(default_factory=dict)

    def add(self, kind: dict[str, set[str]], term: str, where: str) -> None:
        kind.setdefault(term, set()).add(where)


def render(value: Any) -> str:
    """A principal or ARN as text: pseudo parameters by name, other references as ``<Ref>``."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping) and len(value) == 1:
        (function, argument), *_ = value.items()
        if function == "Ref":
            return _PSEUDO.get(str(argument), f"<{argument}>")
        if function == "Fn::Join":
            separator, parts = argument
            return str(separator).join(render(part) for part in parts)
        if function == "Fn::Sub":
            template = argument if isinstance(argument, str) else argument[0]

            def substitute(match: re.Match[str]) -> str:
                if match.group(1):  # ${!x}: a literal ${x}
                    return "${" + match.group(2) + "}"
                return _PSEUDO.get(match.group(2), f"<{match.group(2)}>")

            return _SUB_REF.sub(substitute, str(template))
        if function == "Fn::GetAtt":
            return f"<{'.'.join(map(str, argument))}>"
    return "<?>"


def normalize_condition_key(key: str) -> str:
    """``aws:ResourceTag/<tag key>`` -> ``aws:ResourceTag/``: the key names a family."""
    return key.split("/", 1)[0] + "/" if "/" in key else key


def policy_variables_in(value: Any) -> Iterator[str]:
    """Every ``${...}`` policy variable in a policy value (not ``Fn::Sub``'s own references)."""
    if isinstance(value, str):
        for match in _VARIABLE.finditer(value):
            yield "${" + match.group(1) + "}"
    elif isinstance(value, list):
        for item in value:
            yield from policy_variables_in(item)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if key == "Fn::Sub":
                template = item if isinstance(item, str) else item[0]
                for match in _SUB_REF.finditer(str(template)):
                    if match.group(1):
                        yield "${" + match.group(2) + "}"
                if not isinstance(item, str):
                    yield from policy_variables_in(item[1:])
            else:
                yield from policy_variables_in(item)


def _statements(document: Any) -> list[Mapping[str, Any]]:
    statements = document.get("Statement", []) if isinstance(document, Mapping) else []
    if isinstance(statements, Mapping):
        statements = [statements]
    return [s for s in statements if isinstance(s, Mapping) and "Effect" in s]


def _policy_documents(value: Any) -> Iterator[Mapping[str, Any]]:
    """Every IAM-shaped document (a ``Statement`` of statements with ``Effect``) in ``value``."""
    if isinstance(value, Mapping):
        if _statements(value):
            yield value
            return
        for item in value.values():
            yield from _policy_documents(item)
    elif isinstance(value, list):
        for item in value:
            yield from _policy_documents(item)


def collect_document(terms: PolicyTerms, document: Mapping[str, Any], where: str) -> None:
    """Add the principals, condition keys and policy variables of one policy document."""
    for statement in _statements(document):
        for principal_key in ("Principal", "NotPrincipal"):
            principal = statement.get(principal_key)
            if isinstance(principal, Mapping) and "Service" in principal:
                services = principal["Service"]
                for service in services if isinstance(services, list) else [services]:
                    terms.add(terms.service_principals, render(service), where)
        condition = statement.get("Condition", {})
        if isinstance(condition, Mapping):
            for pairs in condition.values():
                if isinstance(pairs, Mapping):
                    for key in pairs:
                        terms.add(terms.condition_keys, normalize_condition_key(str(key)), where)
        for variable in policy_variables_in(dict(statement)):
            terms.add(terms.policy_variables, variable, where)


_ALARM_ACTION_PROPERTIES = ("AlarmActions", "OKActions", "InsufficientDataActions")
_AUTOMATE = re.compile(r"^arn:[^:]*:automate:[^:]*:(?P<action>.+)$")


def collect_templates(templates: Mapping[str, Mapping[str, Any]]) -> PolicyTerms:
    """What every resource of the given templates (stack name -> template) relies on."""
    terms = PolicyTerms()
    for stack, template in sorted(templates.items()):
        for logical_id, resource in sorted(template.get("Resources", {}).items()):
            where = f"{stack}/{logical_id}"
            properties = resource.get("Properties", {}) or {}
            for document in _policy_documents(properties):
                collect_document(terms, document, where)
            if resource.get("Type") == "AWS::Lambda::Permission":
                principal = render(properties.get("Principal", ""))
                if principal.endswith(".amazonaws.com"):
                    terms.add(terms.service_principals, principal, where)
            if resource.get("Type") == "AWS::CloudWatch::Alarm":
                for name in _ALARM_ACTION_PROPERTIES:
                    for action in properties.get(name, []) or []:
                        matched = _AUTOMATE.match(render(action))
                        if matched is not None:
                            term = f"arn:aws:automate:<region>:{matched.group('action')}"
                            terms.add(terms.alarm_actions, term, where)
    return terms


def unregistered(found: Mapping[str, Iterable[str]], register_text: str) -> dict[str, list[str]]:
    """The terms of ``found`` the register text does not name, with where each is used."""
    return {
        term: sorted(places)[:3]
        for term, places in sorted(found.items())
        if term not in register_text
    }
