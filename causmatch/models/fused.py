"""The ``compiled`` implementation: the maths of :func:`attention.fast_scores` compiled by ``torch.compile``.

After the word–region GEMM, the eager inference path makes several passes over the map (clip, column
norm, scale, exp, the two relevance reductions), each a separate kernel, or on a GPU a separate launch.
Written without in-place updates or data-dependent branches, the same maths compiles (TorchInductor:
C++/OpenMP on the CPU, Triton on CUDA) into about four kernels around the two matrix products.

The result equals :func:`attention.fast_scores` to float32 rounding (tests check 1e-5). Compiling costs
tens of seconds once per process (and per new shape pattern: shapes are compiled dynamic), so this path
pays off for whole-split matrices — ``causmatch evaluate --impl compiled``, the similarity benchmark — not for the
app's small interactive calls. It needs what ``torch.compile`` needs: on the CPU a C++ compiler and the
Python headers, on CUDA Triton.
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from causmatch.errors import ConfigError
from causmatch.models.attention import EPS, FAST_NORMS, MAX_FAST_LAMBDA, aggregate, fast_path_ok


def _col_normalise_exp(x: torch.Tensor, qmask: torch.Tensor, norm: str, dim: int, lam: float) -> torch.Tensor:
    """``exp(λ · normalize(x))`` with the queries on ``dim`` (``qmask`` float, 0 at padded queries).

    The unnormalised softmax of :func:`attention._fast_logits_exp`: relevance does not change when a query's
    attention row is rescaled, and the logits are bounded by λ, so neither denominator nor max is needed.
    """
    if norm == "softmax":
        x = torch.softmax(x.masked_fill(qmask == 0, torch.finfo(x.dtype).min), dim=dim) * qmask
        return torch.exp(lam * x)
    if qmask is not None:
        x = x * qmask
    return torch.exp(x * (lam / ((x * x).sum(dim, keepdim=True).sqrt() + EPS)))


def _t2i(s, wmask, word_mask, rmask, region_gram, norm, lam, agg, lambda_lse):
    """``s [I, R, W, C]`` (words query regions) → ``[I, C]``.

    This layout makes the Gram product a plain ``G_i @ e_i`` per image (``[R, R] @ [R, W·C]``, no copy),
    and keeps every reduction (over W for the norm, over R for the relevance) on an outer axis, so the
    compiled loops run along the contiguous caption axis in full vectors.
    """
    I, R, W, C = s.shape
    x = F.leaky_relu(s, 0.1) if norm == "clipped_l2norm" else s
    # Padded words were zeroed before the GEMM (sims exactly 0), so only the softmax norm needs their mask.
    wm = wmask.t().reshape(1, 1, W, C) if norm == "softmax" else None
    e = _col_normalise_exp(x, wm, norm, 2, lam) * rmask.view(I, R, 1, 1)  # [I, R, W, C]
    num = (e * s).sum(1)  # [I, W, C]  = e_w · a_w
    a = e.reshape(I, R, W * C)
    quad = (torch.bmm(region_gram, a) * a).sum(1).view(I, W, C)  # |Σ_r α_r v_r|^2
    rel = num / quad.clamp_min(EPS * EPS).sqrt().clamp_min(EPS)  # [I, W, C]
    return aggregate(rel.transpose(1, 2), word_mask.unsqueeze(0), agg, lambda_lse)


def _i2t(s, wmask, rmask, region_mask, word_gram, region_norms, norm, lam, agg, lambda_lse):
    """``s [C, W, I, R]`` (regions query words: normalised over R, softmax over W) → ``[I, C]``."""
    C, W, I, R = s.shape
    x = F.leaky_relu(s, 0.1) if norm == "clipped_l2norm" else s
    e = _col_normalise_exp(x, rmask.view(1, 1, I, R), norm, 3, lam) * wmask.view(C, W, 1, 1)
    a = e.reshape(C, W, I * R)
    quad = (torch.bmm(word_gram, a) * a).sum(1).view(C, I, R)
    num = (e * s).sum(1)  # [C, I, R]
    den = quad.clamp_min(EPS * EPS).sqrt()
    if region_norms is not None:
        den = den * region_norms.unsqueeze(0)
    rel = (num / den.clamp_min(EPS)).permute(1, 0, 2)  # [I, C, R]
    return aggregate(rel, region_mask.unsqueeze(1), agg, lambda_lse)


def _scores(words, word_mask, regions, region_mask, word_gram, region_gram, region_norms, *,
            direction: str, norm: str, lam: float, agg: str, lambda_lse: float) -> torch.Tensor:
    C, W, D = words.shape
    I, R, _ = regions.shape
    wmask, rmask = word_mask.to(words.dtype), region_mask.to(regions.dtype)
    words = words * wmask.unsqueeze(-1)  # padded words give exact-0 sims
    parts = []
    if direction in ("t2i", "both"):  # [I*R, D] @ [D, C*W]: the layout t2i wants
        s = (regions.reshape(I * R, D) @ words.transpose(0, 1).reshape(W * C, D).t()).view(I, R, W, C)
        parts.append(_t2i(s, wmask, word_mask, rmask, region_gram, norm, lam, agg, lambda_lse))
    if direction in ("i2t", "both"):
        s = (words.reshape(C * W, D) @ regions.reshape(I * R, D).t()).view(C, W, I, R) if direction == "i2t" \
            else s.permute(3, 2, 0, 1)
        parts.append(_i2t(s, wmask, rmask, region_mask, word_gram, region_norms, norm, lam, agg, lambda_lse))
    return parts[0] if len(parts) == 1 else (parts[0] + parts[1]) / 2


# Dynamo caches the graphs it compiles for a function by its code object, at most ``recompile_limit`` of them
# (8 by default); past that it silently runs the function uncompiled. Each attention setting is its own graph of
# ``_scores`` (the setting is a constant in it) and a sharded run meets up to four shape patterns (full and ragged
# shards), so the calls below raise the limit to this — for these calls only, nothing process-wide.
RECOMPILE_LIMIT = 64


@functools.cache
def _compiled():
    """``_scores`` wrapped by ``torch.compile`` (made on first use: importing this module compiles nothing)."""
    return torch.compile(_scores, dynamic=True)


def _compile_errors() -> tuple[type[Exception], ...]:
    """The exceptions torch raises when a compiler is missing or fails (C++/OpenMP on the CPU, Triton on CUDA)."""
    from torch._dynamo.exc import BackendCompilerFailed
    from torch._inductor.exc import CppCompileError, InductorError

    return BackendCompilerFailed, InductorError, CppCompileError


def fused_scores(words: torch.Tensor, word_mask: torch.Tensor, regions: torch.Tensor, region_mask: torch.Tensor,
                 word_gram: torch.Tensor, region_gram: torch.Tensor, *, direction: str, norm: str,
                 lambda_softmax: float, agg: str, lambda_lse: float,
                 region_norms: torch.Tensor | None = None) -> torch.Tensor:
    """Scores ``[I, C]`` of all pairs, as :func:`attention.fast_scores` (same arguments), through one compiled graph.

    Raises :class:`ConfigError` (one line) for options outside the inference path or when the compiler
    is missing.
    """
    if not fast_path_ok(norm, lambda_softmax):  # the maths' precondition (unit words: the caller's)
        raise ConfigError(f"compiled scoring supports norms {', '.join(FAST_NORMS)} with 0 < lambda_softmax <= "
                          f"{MAX_FAST_LAMBDA:g}; got {norm} and {lambda_softmax:g} (use impl eager)")
    from torch._dynamo import config as dynamo_config  # (imported on use: it is slow to import)

    setting = dict(direction=direction, norm=norm, lam=float(lambda_softmax), agg=agg, lambda_lse=float(lambda_lse))
    try:
        with torch.no_grad(), dynamo_config.patch(recompile_limit=RECOMPILE_LIMIT):
            return _compiled()(words, word_mask, regions, region_mask, word_gram, region_gram, region_norms,
                               **setting)
    except _compile_errors() as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"compiled scoring could not compile ({first[:200]}); install a C++ compiler and the "
                          f"Python headers (CPU) or Triton (CUDA), or use another impl (e.g. fast)") from exc
