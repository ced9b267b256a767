import argparse
import collections
import io
import pickle

import numpy as np
import pytest
import torch

from causmatch.convert import safe_unpickle
from causmatch.convert.karpathy import load_karpathy
from causmatch.errors import CheckpointError, DataError

from .butd_files import write_karpathy


class Custom:
    pass


def test_plain_pickles_of_allowed_types_round_trip():
    obj = {"opt": argparse.Namespace(cross_attn="t2i", lambda_lse=6.0), "od": collections.OrderedDict(a=1),
           "s": {1, 2}, "t": (1.5, "x", None, b"raw"), "np": np.float64(2.5)}
    for protocol in (2, pickle.HIGHEST_PROTOCOL):
        assert safe_unpickle.loads(pickle.dumps(obj, protocol=protocol)) == obj


@pytest.mark.parametrize("payload,name", [
    (eval, "builtins.eval"), (Custom(), "test_safe_unpickle.Custom"), (io.BytesIO, "_io.BytesIO"),
])
def test_other_globals_are_refused_by_name(payload, name):
    with pytest.raises(CheckpointError, match=name.replace(".", r"\.")):
        safe_unpickle.loads(pickle.dumps({"x": payload}))


def test_numpy_array_subclasses_are_refused():
    with pytest.raises(CheckpointError, match="numpy.ma.core"):
        safe_unpickle.loads(pickle.dumps(np.ma.masked_array([1.0, 2.0])))
    # an allowed class smuggled in as the array type must not be instantiated either
    with pytest.raises(CheckpointError, match="subclass"):
        safe_unpickle.ALLOWED[("numpy._core.multiarray", "_reconstruct")](dict, (0,), b"b")
    assert safe_unpickle.loads(pickle.dumps(np.arange(3))).tolist() == [0, 1, 2]


def test_torch_load_with_the_restricted_module(tmp_path):
    path = tmp_path / "t.pt"
    torch.save({"w": torch.arange(4.0)}, path)
    out = torch.load(path, pickle_module=safe_unpickle, weights_only=False)
    assert out["w"].tolist() == [0.0, 1.0, 2.0, 3.0]


def test_karpathy_errors(tmp_path):
    short = write_karpathy(tmp_path / "k.json", {"train": [1]}, n_caps=3)
    with pytest.raises(DataError, match="has 3 captions, fewer than 5 — pass --caps-per-image 3"):
        load_karpathy(short)
    assert load_karpathy(short, caps_per_image=3).splits["train"][0].captions[2] == "image 1 caption 2"
    odd = write_karpathy(tmp_path / "o.json", {"extra": [1]})
    with pytest.raises(DataError, match="split 'extra'"):
        load_karpathy(odd)
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(DataError, match="not a Karpathy split file"):
        load_karpathy(tmp_path / "bad.json")
