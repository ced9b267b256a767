"""Ahead-of-time caches of a (checkpoint, split): what ``causmatch cache`` builds and the app only reads.

Public API::

    default_cache_dir() -> Path             # env CAUSMATCH_CACHE, else <repo>/assets/cache (the app's)
    LARGE_SPLIT_PAIRS                       # images × captions above which "auto" never scores a whole split
    COMPUTE_MODES = ("auto", "always", "never")
    check_compute(mode) -> str              # one-line ConfigError for anything else
    CacheMissing                            # DataError: a whole-split entry is missing and may not be computed
    cache_command(session, intervention=None, *, samples=1, seed=0) -> str    # the command that builds it
    require_computable(session, iv, samples, seed, what=None) -> None         # CacheMissing or nothing
    missing_message(session, what, iv, samples, seed) -> str                  # CacheMissing's one line
    parse_interventions(text) -> list[str]  # "none,random,mask-regions=0,3" -> ["none", "random", "mask-regions=0,3"]
    build_cache(session, interventions, *, samples=1, seed=0, directions=("t2i", "i2t"), progress=None)
        -> list[dict]                       # one row per entry: what, entry, status ("built" | "cached"), seconds

``build_cache`` fills the session's cache with exactly the entries :class:`~causmatch.analysis.AnalysisSession`
reads — the encoded gallery (``gallery``), each matrix (``similarity``; factual always, then each intervention)
and the failure table's per-query arrays (``failure_facts``, both directions) — through the session's own
code and names, so a session opened later on the same checkpoint and split finds them. Entries already
present are kept. Under ``torch.distributed`` (``torchrun``) every rank scores a contiguous run of image
shards of each missing matrix (draws are keyed by global ids, so row blocks equal the single-process matrix
up to float rounding), rows are all-gathered, and rank 0 alone writes each entry (the cache's atomic save);
the other ranks only read it.
"""
from __future__ import annotations

import os
import shlex
import time
from pathlib import Path

from causmatch.errors import ConfigError, DataError

LARGE_SPLIT_PAIRS = 25_000_000  # ~ a 2,236 × 11,180 split: whole-split scoring takes minutes to hours on a CPU
COMPUTE_MODES = ("auto", "always", "never")


def default_cache_dir() -> Path:
    """The analysis cache folder the app and ``causmatch cache`` share: env CAUSMATCH_CACHE, else
    ``<repo>/assets/cache`` (git-ignored)."""
    return Path(os.environ.get("CAUSMATCH_CACHE") or Path(__file__).resolve().parents[2] / "assets" / "cache")


class CacheMissing(DataError):
    """A whole-split entry is not in the cache and the session may not compute it (its ``compute`` mode)."""


def check_compute(mode) -> str:
    if mode not in COMPUTE_MODES:
        raise ConfigError(f"compute must be one of {', '.join(COMPUTE_MODES)}, got {mode!r}")
    return mode


def _large(session) -> bool:
    return session.split.n_images * session.split.n_captions > LARGE_SPLIT_PAIRS


def cache_command(session, intervention=None, *, samples: int = 1, seed: int = 0) -> str:
    """The ``causmatch cache`` command line that builds the session's entries for ``intervention``."""
    from causmatch.interventions import resolve_intervention

    iv = resolve_intervention(intervention, seed)
    spec = "none" if iv.name == "none" else f"none,{iv.name}"
    ckpt = "CHECKPOINT" if session.checkpoint_path is None else str(session.checkpoint_path)
    cache = "CACHE_DIR" if session.cache.root is None else str(session.cache.root)
    parts = ["causmatch", "cache", "--checkpoint", ckpt, "--data", str(session.split.folder),
             "--split", session.split.split, "--interventions", spec]
    if iv.stochastic:
        parts += ["--samples", str(samples), "--seed", str(seed)]
    parts += ["--cache", cache]
    return " ".join(shlex.quote(p) for p in parts)


def require_computable(session, iv, samples: int, seed: int, what: str | None = None) -> None:
    """Nothing when the session may do whole-split work now (score ``iv``'s matrix; ``what`` names other
    work, e.g. encoding the gallery); CacheMissing (one line, with the command that builds it ahead of time)
    when its ``compute`` mode forbids it: "never", or "auto" on a split of more than :data:`LARGE_SPLIT_PAIRS`
    pairs. ``iv`` None: the factual matrix."""
    from causmatch.interventions import resolve_intervention

    mode = getattr(session, "compute", "auto")
    if mode == "always" or (mode == "auto" and not _large(session)):
        return
    iv = resolve_intervention(iv, seed)
    if what is None:
        what = "the " + ("factual" if iv.name == "none" else f"'{iv.name}'") + " similarity matrix"
    raise CacheMissing(missing_message(session, what, iv, samples, seed))


def missing_message(session, what: str, iv, samples: int, seed: int) -> str:
    """One line: ``what`` (e.g. "the 'random' similarity matrix") of the session's split is not in the cache
    and may not be computed here, and the ``causmatch cache`` command that builds it (with ``iv``'s matrix)."""
    split = session.split
    size = f"{split.n_images:,} images × {split.n_captions:,} captions"
    mode = getattr(session, "compute", "auto")
    why = "is too large to score here" if mode == "auto" else "is read from the cache only"
    if session.checkpoint_path is None:
        build = "save the checkpoint and run `causmatch cache` on it"
    else:
        build = f"build it ahead of time with: {cache_command(session, iv, samples=samples, seed=seed)}"
    return f"{what} of split '{split.split}' ({size}) is not in the cache and {why} — {build}"


def parse_interventions(text) -> list[str]:
    """Specs from a comma-separated list; a part that starts with a digit (a target or a bound) belongs
    to the spec before it (``"none,mask-regions=0,3,random"`` -> ``["none", "mask-regions=0,3", "random"]``).
    Each spec is checked by :func:`causmatch.interventions.parse_intervention` (one-line ConfigError)."""
    from causmatch.interventions import parse_intervention

    specs: list[str] = []
    for part in str(text or "").split(","):
        part = part.strip()
        if not part:
            raise ConfigError(f"--interventions '{text}' has an empty entry — list kinds like none,random,uniform")
        if specs and (part[0].isdigit() or part[0] in "-.") and "=" in specs[-1]:
            specs[-1] += "," + part
        else:
            specs.append(part)
    for spec in specs:
        parse_intervention(spec)
    return list(dict.fromkeys(s.lower() for s in specs))


def _dist():
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist, dist.get_rank(), dist.get_world_size()
    return None, 0, 1


def _agree(dist, value):
    """Rank 0's ``value`` on every rank (the decision to build an entry is rank 0's: it writes it)."""
    if dist is None:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def build_cache(session, interventions, *, samples: int = 1, seed: int = 0, directions=("t2i", "i2t"),
                progress=None) -> list[dict]:
    """Fill ``session``'s cache for the factual matrix and each of ``interventions`` (module docstring);
    one report row per entry, on rank 0 (other ranks return [])."""
    from causmatch.analysis.effects import check_samples
    from causmatch.analysis.session import facts_tag, sims_tag
    from causmatch.evaluation import _all_gather_rows, _rank_rows

    if session.cache.root is None:
        raise ConfigError("building the cache needs a cache folder — give --cache DIR")
    check_samples(samples)
    for d in directions:
        if d not in ("t2i", "i2t"):
            raise ConfigError(f"direction '{d}' is not valid — use 't2i' (caption queries) or 'i2t'")
    ivs = {}
    for spec in [None, *interventions]:
        iv = session.check_intervention(spec, seed=seed)  # against the split's longest caption / largest image
        ivs.setdefault(sims_tag(iv, samples, seed), iv)
    dist, rank, world = _dist()
    main = rank == 0
    if not main:
        session.cache.read_only = True  # rank 0 writes every entry; the others read them
    say = progress if main else None
    rows: list[dict] = []

    def note(what, entry, status, t0):
        if main:
            rows.append({"what": what, "entry": entry, "status": status, "seconds": time.perf_counter() - t0})

    t0 = time.perf_counter()
    name, key = session._entry("gallery")
    had = _agree(dist, session.cache.has(name, key) if main else None)
    if main:
        session.gallery(say)
    if dist is not None:
        dist.barrier()  # the others read rank 0's entry (or encode it themselves, unsaved, on another disk)
    session.gallery()
    note("gallery", name, "cached" if had else "built", t0)

    n_images = session.split.n_images
    lo, hi = _rank_rows(n_images, session.shard_images, world, rank)
    for tag, iv in ivs.items():
        t0 = time.perf_counter()
        name, key = session._entry(tag)
        had = _agree(dist, session.cache.has(name, key) if main else None)
        if not had:
            part = session._compute_sims(iv, samples, seed, say, rows=(lo, hi))
            full = part if world == 1 else _all_gather_rows(part, n_images, session.shard_images, world)
            if main:
                session.put_similarity(iv, full, samples=samples, seed=seed)
            del part, full
        note(f"similarity ({iv.name})", name, "cached" if had else "built", t0)
    if dist is not None:
        dist.barrier()
    if main:
        for direction in directions:
            for iv in ivs.values():
                t0 = time.perf_counter()
                name, key = session._entry(facts_tag(direction, iv, samples, seed))
                had = session.cache.has(name, key)
                session.failure_facts(direction, iv, samples=samples, seed=seed)
                note(f"failure table {direction} ({iv.name})", name, "cached" if had else "built", t0)
    if dist is not None:
        dist.barrier()
    return rows
