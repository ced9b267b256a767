"""Assertion helpers for the AppTest suites (a uniquely named module: several test folders have a conftest)."""
from __future__ import annotations

import re

from streamlit.testing.v1 import AppTest

_ESCAPED = re.compile(r"\\([\\`*_\[\]<>#|~$])")


def shown(markdown: str) -> str:
    """The text a reader sees for an element's Markdown source: the app escapes the Markdown characters of
    every text it did not write (components.errors.plain), so compare against what is displayed."""
    return _ESCAPED.sub(r"\1", markdown)


def errors(at: AppTest) -> list[str]:
    return [shown(e.value) for e in at.error]


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def no_failure(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not errors(at), errors(at)
