import os
import shutil
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

# The committed sample split (assets/README.md says how it is made): 8 images of the scenes generator.
SCENES_SAMPLE = Path(__file__).resolve().parents[1] / "assets" / "sample" / "scenes"


@pytest.fixture(scope="session")
def scenes_sample_dir():
    """``copy(dest) -> dest``: a fresh copy of the committed sample split at ``dest`` (tests never write into
    ``assets/``)."""
    def copy(dest) -> Path:
        return Path(shutil.copytree(SCENES_SAMPLE, dest))
    return copy


@pytest.fixture
def scenes_sample(tmp_path, scenes_sample_dir) -> Path:
    """A copy of the sample scenes split in this test's folder: a real dataset folder (test split, 8 images,
    40 captions, boxes, image files, grounding) without building one."""
    return scenes_sample_dir(tmp_path / "scenes")
