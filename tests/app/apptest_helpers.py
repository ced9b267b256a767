"""Assertion helpers for the AppTest suites (a uniquely named module: several test folders have a conftest)."""
from __future__ import annotations

from streamlit.testing.v1 import AppTest


def errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def no_failure(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not errors(at), errors(at)
