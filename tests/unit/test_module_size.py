"""No production module grows past ~450 lines without saying why (issue 15).

A module over :data:`LIMIT` lines must carry, in its module docstring, a line starting with
:data:`MARKER` followed by the reason it stays one module (e.g. it is installed on instances
as one file). Everything else is split along its seams: props, validation, IAM,
acknowledgements, the construct.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO_ROOT

PACKAGE = REPO_ROOT / "crashcart"
LIMIT = 450
MARKER = "Why one module:"
#: A reason must say something (not just the marker).
MIN_REASON = 40

#: Modules over the limit without a reason *yet*, each being changed by other work right now
#: (so not edited by the issue 15 split). Each is to be split, or to state its reason, in the
#: follow-up of issue 15 once that work has merged; remove an entry when it is done. Empty: the
#: drill's runner, preparation and QEMU modules were the last ones (split in that follow-up).
KNOWN_EXCEPTIONS: dict[str, str] = {}


def _production_modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def _line_count(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


def _reason(path: Path) -> str | None:
    """The text after the marker in the module docstring, or None."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    docstring = ast.get_docstring(tree) or ""
    lines = docstring.splitlines()
    for index, line in enumerate(lines):
        if line.strip().startswith(MARKER):
            # The reason may run on over the following lines of its paragraph.
            rest = [line.strip()[len(MARKER) :]]
            for following in lines[index + 1 :]:
                if not following.strip():
                    break
                rest.append(following.strip())
            return " ".join(part for part in rest if part).strip()
    return None


def _relative(path: Path) -> str:
    return path.relative_to(REPO_ROOT).as_posix()


def test_every_module_over_the_limit_says_why_in_its_docstring() -> None:
    offenders = [
        f"{_relative(path)}: {count} lines"
        for path in _production_modules()
        if (count := _line_count(path)) > LIMIT
        and _relative(path) not in KNOWN_EXCEPTIONS
        and len(_reason(path) or "") < MIN_REASON
    ]
    assert not offenders, (
        f"modules over {LIMIT} lines without a '{MARKER} <reason>' line in their module "
        "docstring (split them along their seams, or say why they stay one module):\n"
        + "\n".join(offenders)
    )


def test_known_exceptions_are_still_exceptions() -> None:
    """An entry whose module shrank, was split, got its reason or is gone must go."""
    stale = []
    for relative in KNOWN_EXCEPTIONS:
        path = REPO_ROOT / relative
        if not path.is_file():
            stale.append(f"{relative}: no longer exists")
        elif (count := _line_count(path)) <= LIMIT:
            stale.append(f"{relative}: {count} lines, within the limit")
        elif len(_reason(path) or "") >= MIN_REASON:
            stale.append(f"{relative}: states its reason now")
    assert not stale, "remove from KNOWN_EXCEPTIONS:\n" + "\n".join(stale)


def test_the_reason_is_read_from_the_module_docstring_only(tmp_path: Path) -> None:
    module = tmp_path / "big.py"
    body = "\n".join(f"x{i} = {i}" for i in range(LIMIT + 5))
    module.write_text(f'"""Big.\n\nWhy one module:\n    it is copied as one file.\n"""\n{body}\n')
    assert _reason(module) == "it is copied as one file."
    # A marker in a comment or a later string is not a reason.
    module.write_text(f'"""Big."""\n# Why one module: no\nY = """Why one module: no"""\n{body}\n')
    assert _reason(module) is None
