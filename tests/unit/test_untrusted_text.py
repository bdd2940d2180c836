"""crashcart.runtime.untrusted: what an instance wrote, quoted as one bounded line (issue 22)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crashcart.runtime import untrusted


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("plain panic", "plain panic"),
        ("a\r\nBcc: x@example.com", "a\\x0d\\x0aBcc: x@example.com"),
        ("see https://evil.example/x", "see https[:]//evil.example/x"),
        ("javascript:alert(1)", "javascript[:]alert(1)"),
        ("WWW.evil.example", "WWW[.]evil.example"),
        ("file:\\\\host\\share", "file[:]\\\\host\\share"),
        ("\u202eexe.txt", "\\u202eexe.txt"),
        ("zero\u200bwidth", "zero\\u200bwidth"),
        ("line\u2028sep", "line\\u2028sep"),
        ("\x1b[31mred", "\\x1b[31mred"),
        ("tab\there", "tab here"),
        (None, "?"),
        ("   ", "?"),
        (12345, "12345"),
        (["a", {"b": 1}], "['a', {'b': 1}]"),
    ],
)
def test_values_become_one_escaped_line(raw: object, expected: str) -> None:
    assert untrusted.line(raw) == expected


def test_oversize_values_are_cut_and_say_so() -> None:
    text = untrusted.line("A" * 1_000_000, 100)
    assert len(text) <= 100
    assert text.endswith("...[1000000 characters, cut]")


def test_lists_are_bounded_in_count_and_length() -> None:
    out = untrusted.lines((f"frame {i}\n" for i in range(100)), limit=20, count=5)
    assert out[:5] == [f"frame {i}\\x0a" for i in range(5)]
    assert out[5] == "...[95 more, left out]"
    assert len(out) == 6


@given(st.text(max_size=2000), st.integers(min_value=40, max_value=500))
def test_any_text_is_one_printable_line_within_its_limit(raw: str, limit: int) -> None:
    text = untrusted.line(raw, limit)
    assert len(text) <= limit
    assert "\n" not in text and "\r" not in text
    assert all(char.isprintable() for char in text)
    assert "://" not in text.replace("s3://", "")
