"""Analysis sessions and cached results: every number the pages show comes from ``causmatch.analysis``.

One :class:`causmatch.analysis.AnalysisSession` per (checkpoint, split) is a shared resource opened by
:mod:`loaders` (all browser sessions and threads use it, so its heavy calls hold its lock);
results of single pairs and queries are ``st.cache_data`` entries keyed by the checkpoint's and the
data's fingerprints; whole-split matrices also live in the session's on-disk cache.

Whole-split matrices are computed in the background (``causmatch.analysis.jobs``: one worker per server,
one job per matrix shared by every session): a page asks :func:`pending` which of the matrices it needs are
not built yet, draws what is ready and shows their jobs' status where the rest will go
(``components.background``); :func:`similarity` waits for a job, for views that cannot go on without it.
Every number under ᾱ averages the sidebar's draws (:func:`draws`), on every page.
"""
from __future__ import annotations

import streamlit as st

import state
from state import Context, Model


def _key(model: Model) -> str:
    """A cache key for results of ``model`` on this split: both fingerprints (they change with the files)."""
    session, _ = model.session
    return "|".join(session.fingerprints())


def _spec(ctx: Context) -> str:
    return ctx.intervention or "none"


@st.cache_data(show_spinner=False, max_entries=256)
def _explain(_model: Model, key: str, image: int, caption: int | None, text: str | None, spec: str,
             samples: int, seed: int):
    session, lock = _model.session
    with lock:
        return session.explain(image, caption, text=text, intervention=spec, samples=samples, seed=seed)


def explain(ctx: Context, model: Model, image: int, caption: int, text: str = ""):
    """PairExplanation of (image, caption) — or of (image, typed text) when ``text`` is not empty."""
    return _explain(model, _key(model), int(image), None if text else int(caption), text or None,
                    _spec(ctx), ctx.samples, ctx.seed)


def draws(ctx: Context, spec: str | None) -> int:
    """How many draws of ᾱ the numbers under ``spec`` average — the sidebar's samples for a stochastic kind, 1
    for a deterministic one or the factual scores. Every page uses it: whole-split matrices (failure table,
    R@K, slices) and single queries (Retrieval, Failing pair, Compare) average the same draws, so one query's
    counterfactual rank is the same number everywhere (``AnalysisSession.rank_caption_query``)."""
    from causmatch.analysis.effects import draw_count
    return draw_count(spec, ctx.samples, ctx.seed)


# ------------------------------------------------------------------ whole-split matrices, in the background
def _matrix_key(model: Model, spec: str | None, samples: int, seed: int) -> str:
    """The worker's key of a matrix: the session's fingerprints and the matrix's cache tag (two sessions
    asking for the same matrix share one job)."""
    from causmatch.analysis.session import sims_tag
    session, _ = model.session
    return f"{_key(model)}|{sims_tag(session.check_intervention(spec, seed=seed), samples, seed)}"


def matrix_label(ctx: Context, model: Model, spec: str | None) -> str:
    """What a matrix job computes, as the status line says it."""
    what = "factual scores" if spec is None else f"scores under {spec} ({draws(ctx, spec)} draw" \
        f"{'s' if draws(ctx, spec) != 1 else ''}, seed {ctx.seed})"
    return f"{model.label}: whole-split {what}"


def cached_matrix(ctx: Context, model: Model, spec: str | None = None):
    """The model's [I, C] matrix under ``spec`` when it is built (memory or disk cache), else None."""
    session, lock = model.session
    with lock:
        return session.cached_similarity(spec, samples=draws(ctx, spec), seed=ctx.seed)


def matrix_job(ctx: Context, model: Model, spec: str | None = None):
    """None when the matrix is built; else its background job (``causmatch.analysis.jobs``), submitted once
    per server and shared by every session that asks for it. The job encodes the split under the session's
    lock, then scores it without holding the lock, so that single pairs and queries of the same checkpoint
    keep answering meanwhile (the worker runs one whole-split job at a time)."""
    from causmatch.analysis.jobs import worker
    if cached_matrix(ctx, model, spec) is not None:
        return None
    session, lock = model.session
    samples, seed = draws(ctx, spec), ctx.seed
    # A split too large to score here: say which `causmatch cache` command builds it, before queueing anything.
    session.check_computable(spec, samples=samples, seed=seed)

    def compute(progress):
        with lock:
            session.gallery(progress)
        return session.similarity(spec, samples=samples, seed=seed, progress=progress)
    size = session.split.n_images * session.split.n_captions * samples
    key, label = _matrix_key(model, spec, samples, seed), matrix_label(ctx, model, spec)
    job = worker().submit(key, compute, label=label, size=size, kind="sims")
    if job.status().state == "done" and cached_matrix(ctx, model, spec) is None:
        worker().forget(key)  # built for a session object that is gone (or a cache emptied since): again
        job = worker().submit(key, compute, label=label, size=size, kind="sims")
    return job


def unique(wanted: list[tuple[Model, str | None]]) -> list[tuple[Model, str | None]]:
    """``(model, spec)`` pairs without repeats, in order (models are compared by identity)."""
    return list({(id(m), spec): (m, spec) for m, spec in wanted}.values())


def pending(ctx: Context, wanted: list[tuple[Model, str | None]]) -> list:
    """The background jobs of the ``(model, spec)`` matrices that are not built yet (queued, running, failed
    or cancelled ones), each submitted once; empty when every matrix is ready."""
    import time
    jobs = [j for j in (matrix_job(ctx, model, spec) for model, spec in unique(wanted)) if j is not None]
    deadline = time.monotonic() + wait_s()
    for job in jobs:  # a short job lands before the page goes on: no status flashes by
        job.wait(max(0.0, deadline - time.monotonic()))
    return [j for j in jobs if j.status().state != "done"]


def wait_s() -> float:
    """Seconds a page waits for its background jobs before it shows their status instead: env
    CAUSMATCH_WAIT_S, else 1 (a small split's matrices land within it)."""
    import os
    try:
        return max(0.0, float(os.environ.get("CAUSMATCH_WAIT_S", "1")))
    except ValueError:
        return 1.0


def retry(key: str) -> None:
    """Forget a failed or cancelled job: the page's next run submits it afresh (the Compute again button)."""
    from causmatch.analysis.jobs import worker
    worker().forget(key)


def cancel(key: str) -> None:
    """Cancel a job (the Cancel button): it stops at its next shard and writes nothing to the cache."""
    from causmatch.analysis.jobs import worker
    worker().cancel(key)


def estimate(ctx: Context, wanted: list[tuple[Model, str | None]]) -> tuple[int, float | None]:
    """(matrices not built yet, seconds they should take — from the rate of matrices built by this server,
    None before the first one) for ``(model, spec)`` pairs: what a control says before it is used."""
    from causmatch.analysis.jobs import worker
    missing, seconds = 0, 0.0
    for model, spec in unique(wanted):
        if cached_matrix(ctx, model, spec) is not None:
            continue
        missing += 1
        session, _ = model.session
        took = worker().estimate(session.split.n_images * session.split.n_captions * draws(ctx, spec), "sims")
        seconds = None if took is None or seconds is None else seconds + took
    return missing, (seconds if missing else 0.0)


def cost_note(ctx: Context, wanted: list[tuple[Model, str | None]]) -> str:
    """"" when every matrix is built; else "not cached: N whole-split matrices, about S s" (or, before this
    server has measured one, the pairs and draws they score)."""
    missing, seconds = estimate(ctx, wanted)
    if not missing:
        return ""
    what = f"{missing} whole-split matri{'ces' if missing != 1 else 'x'}"
    if seconds is not None:
        return f"not cached: {what}, about {max(1, round(seconds))} s (computed in the background)"
    n = ctx.split.n_images * ctx.split.n_captions
    return f"not cached: {what} of {n:,} pairs (minutes on a small CPU; computed in the background)"


def failure_matrices(ctx: Context, models: list[Model] | None = None) -> list[tuple[Model, str | None]]:
    """The matrices a failure table needs (:func:`failures`): every checkpoint's factual scores and the
    first one's under the sidebar's intervention."""
    models = ctx.models if models is None else models
    return [(m, None) for m in models] + [(models[0], _spec(ctx))]


def similarity(ctx: Context, model: Model, spec: str | None = None):
    """The model's [I, C] score matrix (factual when ``spec`` is None): read when built, else computed by the
    background worker while this waits with its progress (for views that cannot go on without it; pages
    that can ask :func:`pending` first and draw what is ready)."""
    from causmatch.errors import DataError
    job = matrix_job(ctx, model, spec)
    if job is not None:
        slot = st.empty()
        while not job.wait(0.5):
            now = job.status()
            if now.total:
                slot.progress(now.fraction, text=f"{now.label} — {now.done}/{now.total}{_left(now.eta)}")
        slot.empty()
        now = job.status()
        if now.state != "done":
            from causmatch.analysis.jobs import worker
            worker().forget(job.key)  # the next visit tries again
            raise DataError(f"{now.label}: {now.error}" if now.error else
                            f"{now.label}: cancelled — open the page again to compute it")
    session, lock = model.session
    with lock:
        return session.similarity(spec, samples=draws(ctx, spec), seed=ctx.seed)


def _left(eta: float | None) -> str:
    return "" if eta is None else f", ~{max(1, round(eta))} s left"


@st.cache_data(show_spinner=False, max_entries=256)
def _rank(_model: Model, key: str, direction: str, query: int, spec: str, samples: int, seed: int, k: int,
          built: tuple[bool, bool]):
    session, lock = _model.session
    fn = session.rank_caption_query if direction == "t2i" else session.rank_image_query
    with lock:
        return fn(query, spec, samples=samples, seed=seed, k=k)


def rank(ctx: Context, model: Model, direction: str, query: int, k: int):
    """RankResult of one query (caption for t2i, image for i2t) under the chosen intervention. The query does
    not wait for the whole split: until its matrices are built its scores are computed for it alone (the same
    numbers up to float32 rounding), while the factual matrix is queued in the background; once a matrix is
    built the ranks are read from it (one number on every page)."""
    from causmatch.analysis.precompute import CacheMissing
    try:
        matrix_job(ctx, model)  # queued once; the query goes on without it
    except CacheMissing:
        pass  # a split whose matrices only `causmatch cache` builds: the query's own scores are all there is
    spec = _spec(ctx)
    built = (cached_matrix(ctx, model) is not None,
             spec != "none" and cached_matrix(ctx, model, spec) is not None)
    return _rank(model, _key(model), direction, int(query), spec, ctx.samples, ctx.seed, int(k), built)


@st.cache_data(show_spinner=False, max_entries=32)
def _failures(_models: list[Model], key: str, direction: str, spec: str, samples: int, seed: int, _fits=None):
    session, lock = _models[0].session
    other = _models[1].session[0] if len(_models) > 1 else None
    with lock:
        return session.failure_table(direction, spec, other, samples=samples, seed=seed, fits=_fits)


def failures(ctx: Context, direction: str):
    """The failure table of the first checkpoint (ranks of the second in ``rank_other``); on a split with
    scene descriptions, with the column ``wrong_fits`` (:func:`fits`)."""
    for m in ctx.models:
        similarity(ctx, m)
    similarity(ctx, ctx.models[0], _spec(ctx))
    key = "+".join(_key(m) for m in ctx.models)
    found, _ = fits(ctx)
    return _failures(ctx.models, key, direction, _spec(ctx), draws(ctx, _spec(ctx)), ctx.seed, found)


def filter_failures(df, **filters):
    from causmatch.analysis.failures import filter_failures as _filter
    return _filter(df, **filters)


def failure_filters(ctx: Context) -> dict:
    """The view's failure filters as :func:`causmatch.analysis.failures.filter_failures` arguments
    (the link's ranks are 1-based; "disagree" needs a second checkpoint)."""
    lo, hi, sign = state.value("rank_lo"), state.value("rank_hi"), state.value("sign")
    return dict(direction=state.value("dir"), rank_min=int(lo) - 1, rank_max=int(hi) - 1 if hi else None,
                effect_sign=None if sign == "any" else sign,
                disagreement=bool(state.value("disagree")) and len(ctx.models) > 1)


def failure_slice(ctx: Context):
    """The view's slice (``causmatch.analysis.slices.Slice``), or None for the whole split. A link's slice
    that this split cannot cut by is replaced by the whole split, with the link warning."""
    found = slices(ctx)
    name = state.value("slice")
    state.fit("slice", lambda v: v == "" or found.valid(v), "")
    return found.get(name) if name and found.valid(name) else None


def failure_list(ctx: Context):
    """The failure rows exactly as the Failure cases table shows them for the current view: its direction,
    rank range, effect sign, disagreement, slice, sort column and order. Columns keep their names of
    ``causmatch.analysis.failures.FAILURE_COLUMNS`` (``query``, ``true_item``, ``best_wrong`` are 0-based
    indices); ranks are 1-based as shown (1 = first); the index is the row's position in the table."""
    from causmatch.analysis.failures import as_shown, sort_failures
    filters = failure_filters(ctx)
    cut = failure_slice(ctx)
    rows = cut.rows(filters["direction"]) if cut is not None else None
    df = filter_failures(failures(ctx, filters["direction"]), **filters, queries=rows)
    return as_shown(sort_failures(df, state.value("sort"), state.value("order")))


@st.cache_resource(show_spinner=False, max_entries=8)
def _slices(_split, key: str):
    from causmatch.analysis.slices import SplitSlices
    return SplitSlices(_split)


@st.cache_resource(show_spinner=False, max_entries=8)
def _outcome_slices(_found, _model: Model, _fits, key: str):
    from causmatch.analysis.failures import fit_outcome
    session, lock = _model.session
    with lock:
        sims = session.similarity()
    k = session.split.caps_per_image
    return _found.with_outcomes(fit_outcome(sims, _fits, k, "t2i"), fit_outcome(sims, _fits, k, "i2t"))


def slices(ctx: Context, outcomes: bool = True):
    """The split's slices (``causmatch.analysis.slices.SplitSlices``), built once per split and shared
    (read-only). ``outcomes``: with the first checkpoint's ``outcome`` slices (ranked first / best wrong also
    fits / real failures) where the split has scene descriptions — they need its factual score matrix;
    False for the split's own slices alone (no model run)."""
    session, _ = ctx.models[0].session
    found = _slices(ctx.split, session.fingerprints()[1])
    if not outcomes:
        return found
    matrix, why = fits(ctx)
    if matrix is None:
        return found.without_outcomes(why)
    similarity(ctx, ctx.models[0])
    return _outcome_slices(found, ctx.models[0], matrix, _key(ctx.models[0]))


@st.cache_data(show_spinner=False, max_entries=64)
def _ranks(_model: Model, key: str, spec: str | None, samples: int, seed: int):
    from causmatch.evaluation import ranks_i2t, ranks_t2i
    session, lock = _model.session
    with lock:
        sims = session.similarity(spec, samples=samples, seed=seed)
    k = session.split.caps_per_image
    return ranks_t2i(sims, k), ranks_i2t(sims, k)


def ranks(ctx: Context, model: Model, spec: str | None):
    """0-based (caption → image [C], image → caption [I]) ranks of the split, factual (None) or under ``spec``."""
    similarity(ctx, model, spec)
    return _ranks(model, _key(model), spec, draws(ctx, spec), ctx.seed)


@st.cache_data(show_spinner=False, max_entries=64)
def _matching_effects(_model: Model, key: str, spec: str, samples: int, seed: int):
    import numpy as np
    session, lock = _model.session
    with lock:
        sims, cf = session.similarity(), session.similarity(spec, samples=samples, seed=seed)
    caps = np.arange(sims.shape[1])
    rows = caps // session.split.caps_per_image
    return np.asarray(sims[rows, caps], np.float64) - np.asarray(cf[rows, caps], np.float64)


def matching_effects(ctx: Context, model: Model):
    """[C] effect S(α) − S(ᾱ) of every matching pair (caption c with image c // K) under the sidebar's
    intervention, the sidebar's draws (:func:`draws`); None when the kind lacks its targets."""
    if ctx.intervention is None:
        return None
    similarity(ctx, model, ctx.intervention)
    return _matching_effects(model, _key(model), ctx.intervention, draws(ctx, ctx.intervention), ctx.seed)


@st.cache_data(show_spinner=False, max_entries=16)
def _pointing_counts(_model: Model, key: str):
    import numpy as np

    from causmatch.analysis.grounding import grounding_table
    session, lock = _model.session
    if session.split.grounding is None:
        return None
    with lock:
        df = grounding_table(session)
    n, caps = session.split.n_captions, df["caption"].to_numpy(np.int64)
    return (np.bincount(caps, weights=df["hit"].to_numpy(np.float64), minlength=n),
            np.bincount(caps, minlength=n).astype(np.float64))


def pointing_counts(ctx: Context, model: Model):
    """(hits [C], grounded words [C]) of the pointing game on every matching pair; None without grounding."""
    return _pointing_counts(model, _key(model))


def slice_table(ctx: Context, keys: list[str], spec: str | None = None, effects: bool = True):
    """One row per (checkpoint, slice) of ``keys``: sizes, R@K both directions where the slice cuts them,
    and — when ``effects`` — pointing accuracy and, for the first checkpoint (as in the failure table: a
    counterfactual matrix of every checkpoint would cost minutes more on first use), the mean matching-pair
    effect under the sidebar's intervention (``causmatch.analysis.slices.slice_metrics``); ranks factual,
    or under ``spec``."""
    import pandas as pd

    from causmatch.analysis.slices import slice_metrics
    found = slices(ctx)
    chosen = [found.get(k) for k in keys]
    parts = []
    for n, model in enumerate(ctx.models):
        t2i, i2t = ranks(ctx, model, spec)
        counts = pointing_counts(ctx, model) if effects else None
        hits, words = counts if counts is not None else (None, None)
        effect = matching_effects(ctx, model) if effects and n == 0 else None
        df = slice_metrics(chosen, t2i, i2t, effect=effect, hits=hits, words=words)
        parts.append(df.assign(checkpoint=model.label))
    return pd.concat(parts, ignore_index=True)


@st.cache_data(show_spinner=False, max_entries=64)
def _recall(_model: Model, key: str, spec: str | None, samples: int, seed: int) -> dict:
    session, lock = _model.session
    with lock:
        return session.recall(spec, samples=samples, seed=seed)


def recall(ctx: Context, model: Model, spec: str | None) -> dict:
    """R@K metrics of the split, factual (None) or under ``spec``."""
    similarity(ctx, model, spec)
    return _recall(model, _key(model), spec, draws(ctx, spec), ctx.seed)


@st.cache_data(show_spinner=False, max_entries=16)
def _grounding(_model: Model, key: str) -> dict | None:
    from causmatch.evaluation import grounding_accuracy
    session, lock = _model.session
    with lock:
        img, txt = session.gallery()
        return grounding_accuracy(session.matcher, session.split, img, txt)


def grounding(ctx: Context, model: Model) -> dict | None:
    """Grounding accuracy (overall and by word type), None when the split has no grounding file."""
    return _grounding(model, _key(model))


@st.cache_data(show_spinner=False, max_entries=64)
def _effect_means(_model: Model, key: str, spec: str, samples: int, seed: int) -> dict:
    from causmatch.evaluation import effect_summary
    session, lock = _model.session
    with lock:
        return effect_summary(session.similarity(), session.similarity(spec, samples=samples, seed=seed),
                              session.split.caps_per_image)


def effect_means(ctx: Context, model: Model) -> dict:
    """Mean effect over matching pairs and over all non-matching pairs."""
    similarity(ctx, model, _spec(ctx))
    return _effect_means(model, _key(model), _spec(ctx), draws(ctx, _spec(ctx)), ctx.seed)


@st.cache_data(show_spinner=False, max_entries=256)
def _effects_by_kind(_model: Model, key: str, image: int, caption: int | None, text: str | None,
                     samples: int, seed: int) -> list[dict]:
    session, lock = _model.session
    with lock:
        found = session.effects(image, caption, text=text, samples=samples, seed=seed)
    return [{"kind": kind, **est.to_dict()} for kind, est in found.items()]


def effects_by_kind(ctx: Context, model: Model, image: int, caption: int, text: str = "") -> list[dict]:
    """The pair's effect under each counterfactual kind (random, uniform, reversed, shuffle)."""
    return _effects_by_kind(model, _key(model), int(image), None if text else int(caption), text or None,
                            ctx.samples, ctx.seed)


@st.cache_data(show_spinner=False, max_entries=64)
def _curves(_model: Model, key: str, image: int, caption: int, baselines: tuple) -> dict:
    from causmatch.analysis.grounding import pair_curves
    session, lock = _model.session
    with lock:
        return pair_curves(session, image, caption, dict(baselines))


def curves(ctx: Context, model: Model, image: int, caption: int, baselines: dict[str, list[int]]) -> dict:
    """Deletion and insertion curves of a dataset pair, in attention order and in each baseline order
    (``causmatch.analysis.grounding.pair_curves``): ``{kind: {name: Curve}}``."""
    key = tuple((name, tuple(int(r) for r in order)) for name, order in baselines.items())
    return _curves(model, _key(model), int(image), int(caption), key)


@st.cache_data(show_spinner=False, max_entries=16)
def _common_words(_model: Model, key: str) -> frozenset:
    from causmatch.analysis.pair_view import common_words
    session, lock = _model.session
    with lock:
        _, txt = session.gallery()
    return common_words(txt.tokens)


def common_words(ctx: Context, model: Model) -> frozenset:
    """The words in more than half of the split's captions ("a"; ``causmatch.analysis.pair_view.common_words``)."""
    return _common_words(model, _key(model))


@st.cache_resource(show_spinner=False, max_entries=8)
def _fits(_split, key: str) -> tuple:
    from causmatch.data.scenes.fit import fit_unavailable, split_fits
    from causmatch.errors import DataError
    why = fit_unavailable(_split)
    if why is not None:
        return None, why, False
    try:
        return split_fits(_split), None, False
    except DataError as err:  # kept, so that a broken scene file is read once, not on every rerun
        return None, str(err), True


def fits(ctx: Context) -> tuple:
    """``(fits, None)`` — fits ``[I, C]`` read-only bool, which captions are true of which images by the scenes
    generator's descriptions (``causmatch.data.scenes.fit.split_fits``), computed once per split and shared —
    or ``(None, why)`` for a split without them, or whose scene file does not match its captions (one line)."""
    session, _ = ctx.models[0].session
    found, why, _ = _fits(ctx.split, session.fingerprints()[1])
    return found, why


def fit_rule(ctx: Context):
    """:func:`fits`' matrix, or None for a split without scene descriptions; a DataError when the split's
    files disagree."""
    from causmatch.errors import DataError
    session, _ = ctx.models[0].session
    found, why, broken = _fits(ctx.split, session.fingerprints()[1])
    if broken:
        raise DataError(why)
    return found


@st.cache_data(show_spinner=False, max_entries=64)
def _fit_recall(_model: Model, _fits, key: str, spec: str | None, samples: int, seed: int) -> dict:
    from causmatch.evaluation import fit_aware_metrics
    session, lock = _model.session
    with lock:
        sims = session.similarity(spec, samples=samples, seed=seed)
    return fit_aware_metrics(sims, _fits, session.split.caps_per_image)


def fit_recall(ctx: Context, model: Model, spec: str | None) -> dict | None:
    """Fit-aware R@K of the split (``causmatch.evaluation.fit_aware_metrics``: a query is a hit at K when any
    item it fits ranks there), factual (None) or under ``spec``; None without a fit matrix (:func:`fits`)."""
    matrix, _ = fits(ctx)
    if matrix is None:
        return None
    similarity(ctx, model, spec)
    return _fit_recall(model, matrix, _key(model), spec, draws(ctx, spec), ctx.seed)


@st.cache_data(show_spinner=False, max_entries=16)
def _fit_spread(_fits, key: str) -> dict:
    from causmatch.data.scenes.fit import fit_distribution
    return fit_distribution(_fits)


def fit_spread(ctx: Context) -> dict | None:
    """How many images each caption fits and how many captions fit each image
    (``causmatch.data.scenes.fit.fit_distribution``); None without a fit matrix."""
    matrix, _ = fits(ctx)
    if matrix is None:
        return None
    session, _ = ctx.models[0].session
    return _fit_spread(matrix, session.fingerprints()[1])
