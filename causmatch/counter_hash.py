"""The counter-based hash the stochastic interventions draw from: a value in ``[0, 2^32)`` for every
entry ``(q, k)`` of every pair's ``[Q, K]`` map, a function of ``(seed, query axis, image id, caption id,
q, k)`` only — so a pair's draw is the same whatever batch, shard or layout it is computed in.

``counter_hash`` is the definition (int64 values); ``counter_hash32`` gives the same 32 bits as int32,
computed in place, which is what :mod:`causmatch.interventions` uses.
"""
from __future__ import annotations

import numbers

import torch

from causmatch.errors import ConfigError

QUERIES = ("words", "regions")  # what the rows of a map are: words (t2i) or regions (i2t)

_M32 = 0xFFFFFFFF
SEED_MAX = _M32  # the hash is keyed by 32 bits of the seed: a seed outside 0..SEED_MAX would alias another


def check_seed(seed, draws: int = 1) -> int:
    """``seed`` as an int when it and the draws' seeds ``seed … seed+draws−1`` are whole numbers in
    0..:data:`SEED_MAX` (another seed would draw exactly what a seed in range draws); else ConfigError."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise ConfigError(f"a seed must be a whole number in 0..{SEED_MAX}, got {seed!r}")
    seed = int(seed)
    last = seed + max(1, int(draws)) - 1
    if seed < 0 or last > SEED_MAX:
        span = f"seed {seed}" if last == seed else f"the draws' seeds {seed}…{last}"
        raise ConfigError(f"{span} outside 0..{SEED_MAX} (the draws are keyed by 32 bits of the seed, so it "
                          f"would repeat another seed's draws) — choose a seed in 0..{SEED_MAX - last + seed}")
    return seed


_QUERY_SALT = dict(zip(QUERIES, (0x2545F491, 0x5851F42D)))


def _mix(x: torch.Tensor) -> torch.Tensor:
    """32-bit avalanche hash of int64 values in [0, 2^32); the constants (< 2^31) never overflow int64."""
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & _M32
    x = x ^ (x >> 15)
    x = (x * 0x1B873593) & _M32
    return x ^ (x >> 16)


def _default_ids(lead: torch.Size, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions as ids: ``[I, C]`` maps → (rows, columns); ``[N]`` aligned pairs → (n, n)."""
    if len(lead) >= 2:
        return (torch.arange(lead[-2], device=device).unsqueeze(1), torch.arange(lead[-1], device=device).unsqueeze(0))
    n = lead[0] if len(lead) == 1 else 1
    ids = torch.arange(n, device=device).reshape(lead)
    return ids, ids


def _mix32_(x: torch.Tensor) -> torch.Tensor:
    """:func:`_mix` on int32 tensors holding the same 32 bits, in place (returns ``x``).

    int32 multiplication wraps modulo 2^32 exactly as the masked int64 product does, and masking
    after each arithmetic shift turns it into the logical shift of the unsigned value, so the bits
    equal :func:`_mix`'s — at a fraction of the cost (int64 multiplies do not vectorise).
    """
    t = torch.empty_like(x)  # one scratch buffer: fresh temporaries per step cost ~3x the arithmetic
    for shift, mult in ((16, 0x7FEB352D), (15, 0x1B873593), (16, None)):
        torch.bitwise_right_shift(x, shift, out=t).bitwise_and_((1 << (32 - shift)) - 1)
        x.bitwise_xor_(t)
        if mult is not None:
            x.mul_(mult)
    return x


def _as_int32(x: torch.Tensor) -> torch.Tensor:
    """int64 values in [0, 2^32) → int32 with the same bits."""
    return torch.where(x >= 1 << 31, x - (1 << 32), x).to(torch.int32)


def pair_hash32(seed: int, query: str, img, cap, device) -> torch.Tensor:
    """The per-pair part of the hash, int32 bits, shaped as ``img`` and ``cap`` broadcast together."""
    h = _mix(torch.tensor((seed ^ _QUERY_SALT[query]) & _M32, device=device))
    h = _mix(h ^ (torch.as_tensor(img, device=device).long() & _M32))
    return _as_int32(_mix(h ^ (torch.as_tensor(cap, device=device).long() & _M32)))


def entry_hash32_(pair: torch.Tensor, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """The hash of entries from their pair's :func:`pair_hash32`: ``mix(mix(pair ^ q) ^ k)``, int32 bits.

    ``pair``, ``q`` and ``k`` (int32) broadcast to any layout — queries and keys need not be the last two
    axes — and each entry's bits depend only on its own (pair, q, k). The first mix runs on the broadcast of
    ``pair`` and ``q`` only; the second (in place) on the full shape.
    """
    return _mix32_(_mix32_(pair ^ q) ^ k)


def counter_hash32(shape: torch.Size, seed: int, query: str, pair_ids, device) -> torch.Tensor:
    """:func:`counter_hash` as int32 bit patterns (``int64 value = h & 0xFFFFFFFF``), ``[..., Q, K]``."""
    lead, (Q, K) = shape[:-2], shape[-2:]
    img, cap = pair_ids if pair_ids is not None else _default_ids(lead, device)
    h = pair_hash32(seed, query, img, cap, device).expand(lead).unsqueeze(-1).unsqueeze(-1)  # [..., 1, 1]
    q = torch.arange(Q, device=device, dtype=torch.int32).view(Q, 1)
    k = torch.arange(K, device=device, dtype=torch.int32).view(1, K)
    return entry_hash32_(h, q, k)  # [..., Q, K]; the first mix is on [..., Q, 1] only


def counter_hash(shape: torch.Size, seed: int, query: str, pair_ids, device) -> torch.Tensor:
    """Hash values in [0, 2^32) (int64) for every entry of a ``[..., Q, K]`` map, from (seed, ids, q, k) only."""
    return counter_hash32(shape, seed, query, pair_ids, device).long() & _M32
