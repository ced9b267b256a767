import pytest

from tests.training.tiny_data import make_tiny_dataset


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    return make_tiny_dataset(tmp_path_factory.mktemp("tiny"))
