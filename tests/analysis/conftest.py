"""Fixtures for the analysis tests."""
import pytest

from tests.analysis.analysis_helpers import tiny_matcher, write_tiny


@pytest.fixture
def tiny_split(tmp_path):
    return write_tiny(tmp_path / "data")


@pytest.fixture
def tiny_session(tiny_split, tmp_path):
    from causmatch.analysis import AnalysisSession
    return AnalysisSession(tiny_matcher(), tiny_split, cache_dir=tmp_path / "cache")
