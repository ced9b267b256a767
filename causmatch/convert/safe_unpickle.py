"""A restricted pickle module for reading SCAN-era ``torch.save`` files.

Unpickling can run arbitrary code: a pickle names any importable callable and the
loader calls it. SCAN's ``model_best.pth.tar`` is such a pickle, so we read it (only
with the user's explicit consent) through an unpickler whose ``find_class`` resolves a
short allowlist of *objects* — tensor rebuild functions, containers, ``argparse.Namespace``,
numpy scalars — and refuses everything else with a one-line :class:`CheckpointError`.
We never import a module named by the file: every allowed global is looked up in a
table built here, so the file cannot even trigger an import.

Use it as a ``pickle_module`` for ``torch.load(f, pickle_module=safe_unpickle,
weights_only=False)``; torch itself resolves the ``*Storage`` names before they reach us.
"""
from __future__ import annotations

import argparse
import builtins
import codecs
import collections
import copyreg
import io
import pickle
from typing import Any

import numpy as np
import torch
import torch._utils

from causmatch.errors import CheckpointError


def _numpy_scalar_rebuilder():
    # numpy 2 moved numpy.core to numpy._core; files pickled under numpy 1 name the old path.
    from numpy._core import multiarray

    return multiarray.scalar


def _allowed() -> dict[tuple[str, str], Any]:
    """(module, name) -> the object it may resolve to; nothing outside this table loads."""
    table: dict[tuple[str, str], Any] = {
        ("argparse", "Namespace"): argparse.Namespace,
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("collections", "defaultdict"): collections.defaultdict,
        ("copyreg", "_reconstructor"): copyreg._reconstructor,
        # protocol-2 pickles spell bytes as codecs.encode(str, "latin1"): pure, no side effects
        ("_codecs", "encode"): codecs.encode,
        ("torch._utils", "_rebuild_tensor"): torch._utils._rebuild_tensor,
        ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
        ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
        ("torch", "Size"): torch.Size,
        ("torch", "device"): torch.device,
        ("numpy", "dtype"): np.dtype,
        ("numpy", "ndarray"): np.ndarray,
    }
    for name in ("object", "set", "frozenset", "dict", "list", "tuple", "int", "float",
                 "bool", "str", "bytes", "complex", "slice", "range"):
        table[("builtins", name)] = getattr(builtins, name)
        table[("__builtin__", name)] = table[("builtins", name)]  # Python 2 era pickles
    for dtype_name in ("float16", "float32", "float64", "int32", "int64", "bool_"):
        table[("numpy", dtype_name)] = getattr(np, dtype_name)
    scalar = _numpy_scalar_rebuilder()
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        table[(module, "scalar")] = scalar
        table[(module, "_reconstruct")] = _np_reconstruct
    for dtype_cls in ("Float64DType", "Float32DType", "Int64DType", "Int32DType", "BoolDType"):
        table[("numpy.dtypes", dtype_cls)] = getattr(np.dtypes, dtype_cls)
    return table


def _np_reconstruct(subtype, shape, dtype):
    # The only legal first argument is ndarray itself (a subclass could run code in __new__).
    if subtype is not np.ndarray:
        raise CheckpointError("the checkpoint pickles a numpy array subclass — refusing to load it")
    from numpy._core import multiarray

    return multiarray._reconstruct(subtype, shape, dtype)


ALLOWED = _allowed()


class Unpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that resolves only the globals in :data:`ALLOWED`."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED[(module, name)]
        except KeyError:
            raise CheckpointError(
                f"the checkpoint contains a pickled '{module}.{name}', which a SCAN checkpoint "
                "never holds — refusing to unpickle it (it could run code); re-save the file "
                "with only state_dicts, an argparse.Namespace and plain values"
            ) from None


def load(file, **kwargs) -> Any:
    """``pickle.load`` with the restricted :class:`Unpickler`."""
    return Unpickler(file, **kwargs).load()


def loads(data: bytes, **kwargs) -> Any:
    """``pickle.loads`` with the restricted :class:`Unpickler`."""
    return Unpickler(io.BytesIO(data), **kwargs).load()
