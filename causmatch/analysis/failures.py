"""Failure-case tables over a whole split, from (cached) similarity matrices.

Public API::

    FAILURE_COLUMNS                                    # column order of the table
    build_failure_table(sims [I,C], cf_sims [I,C], caps_per_image, direction="t2i", *,
                        other_sims=None, pointing=None, captions=None, fits=None) -> pandas.DataFrame
    factual_facts(sims [I,C], caps_per_image, direction) -> dict       # rank, true_item, best_wrong, scores [N]
    counterfactual_facts(cf_sims [I,C], facts, caps_per_image, direction) -> dict   # rank_cf, cf_true, cf_wrong [N]
    table_from_facts(facts, cf_facts, direction, *, rank_other=None, pointing=None, captions=None, fits=None)
                                                       # the same table from those per-query arrays alone
    OUTCOMES                                           # "first", "ambiguous", "real"
    fit_outcome(sims [I,C], fits [I,C], caps_per_image, direction) -> np.ndarray [N] of OUTCOMES
    filter_failures(df, *, direction=None, rank_min=None, rank_max=None, effect_sign=None,
                    disagreement=False, failures_only=False, queries=None) -> pandas.DataFrame
    export_csv(df, path) -> Path                       # atomic write
    COLUMNS                                            # name -> Column: label, help, unit, natural order
    SORTABLE                                           # the columns a table may be sorted by
    sort_failures(df, by="rank", order="") -> DataFrame   # order "" = the column's natural order
    as_shown(df) -> DataFrame                          # 1-based ranks, all-empty columns dropped

One row per query (every caption for ``t2i``, every image for ``i2t``). Ranks are 0-based and come
from ``causmatch.evaluation.ranks_t2i`` / ``ranks_i2t``, so ``(df.rank < K).mean() * 100`` is
exactly evaluate's R@K. ``margin`` = score of the true item − score of the best wrong item (< 0: the
query fails). ``effect_true`` / ``effect_wrong`` = factual − counterfactual score of those pairs.
Non-finite scores in any matrix are refused (DataError naming the first image, caption pair).
``pointing`` (t2i only, when the split has grounding) = fraction of the caption's grounded words whose
most-attended region is one of its true regions (pointing game), NaN when nothing is grounded.
``fits`` ([I,C] bool, ``causmatch.data.scenes.fit.split_fits``: caption c is true of image i; scenes splits
only) adds the column ``wrong_fits``: the best wrong item is also true of the query, so ranking it above the
true item is no model error. Without ``fits`` the column is absent (the fit is unknown, not False).
:func:`fit_outcome` sorts every query into ranked first / a failure whose best wrong item fits (ambiguous) /
a real failure (its best wrong item does not fit) — the rows of ``rank > 0`` split by ``wrong_fits``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from causmatch.data.scenes.fit import best_wrong_fits
from causmatch.errors import ConfigError, DataError
from causmatch.evaluation import check_finite_scores, ranks_i2t, ranks_t2i
from causmatch.outputs import atomic_write, os_error

FAILURE_COLUMNS = ("direction", "query", "query_text", "true_item", "rank", "rank_cf", "rank_other",
                   "best_wrong", "score_true", "score_wrong", "margin", "effect_true", "effect_wrong",
                   "pointing", "disagree")


@dataclass(frozen=True)
class Column:
    """How a failure-table column is named and read. ``label`` and ``help`` may say ``{q}`` (the query's
    kind: caption or image) and ``{item}`` (the retrieved items' kind). ``ascending``: the order a sort by
    this column starts in (worst cases first); None when the column is not offered for sorting."""

    label: str
    help: str
    kind: str                      # "id" | "text" | "image" | "rank" | "score" | "share" | "flag"
    ascending: bool | None = None
    replaces: str | None = None    # a text column shown in place of this id column (it says the id too)
    in_table: bool = True          # False: in the CSV export only (the table fits the page without it)
    short: str = ""                # the table's header when ``label`` is too wide for it (label + help on hover)

    def named(self, direction: str, samples: int | None = None, short: bool = False) -> tuple[str, str]:
        """(label, help) for ``direction``; ``samples``: the counterfactual draws per pair, said in every
        counterfactual label. ``short``: the table's header, with the full label leading the help."""
        q, item = ("caption", "image") if direction == "t2i" else ("image", "caption")
        draws = "" if samples is None else f"{samples} draw{'s' if samples != 1 else ''}"
        label, text = (self.label.format(q=q, item=item, draws=draws).replace(" ()", ""),
                       self.help.format(q=q, item=item, draws=draws))
        if short and self.short:
            return self.short, f"{label}: {text}"
        return label, text


# Every column a failure table may show, in the order it shows them: adding a column is one line here
# (and its values in build_failure_table). Scores are S(image, caption) of the checkpoint; effects are
# factual − counterfactual scores (the counterfactual averaged over the stated draws per pair).
COLUMNS: dict[str, Column] = {
    "query": Column("Query {q}", "index of the query {q} in the split (0-based)", "id", True, short="Query"),
    "query_text": Column("Query caption", "the query caption: #index · text", "text", replaces="query"),
    "query_image": Column("Query image", "the query image", "image", short="Image"),
    "true_item": Column("True {item}", "index of the {item} that matches the query (0-based; for an image "
                        "query, its best-scoring own caption)", "id", True, in_table=False),
    "rank": Column("Rank (true {item})", "where the true {item} is ranked under the learned attention α, "
                   "1 = first (retrieved correctly)", "rank", False, short="Rank"),
    "rank_cf": Column("Rank under ᾱ ({draws})", "rank of the true {item} when every pair's attention is "
                      "replaced by the counterfactual ᾱ ({draws} per pair; 1 = first)", "rank", False,
                      short="Rank ᾱ"),
    "rank_other": Column("Rank (checkpoint B)", "rank of the true {item} under the second checkpoint "
                         "(1 = first)", "rank", False, short="Rank B"),
    "best_wrong": Column("Best wrong {item}", "index of the highest-scoring {item} that does not match the "
                         "query (0-based)", "id", True, short="Best wrong"),
    "wrong_text": Column("Best wrong caption", "the highest-scoring caption of another image: #index · text",
                         "text", replaces="best_wrong"),
    "wrong_fits": Column("Best wrong also fits", "the best wrong {item} is also true of the query by the scene "
                         "descriptions (every object, relation and count the caption names is in the image): "
                         "ranking it above the true {item} is no model error", "flag", short="Fits"),
    "margin": Column("Margin S(true) − S(best wrong)", "score of the true pair minus the score of the best "
                     "wrong pair; below 0 the query fails", "score", True, short="Margin"),
    "effect_true": Column("Effect on true pair ({draws})", "S(α) − S(ᾱ) of the true pair ({draws} of ᾱ per "
                          "pair): how much the learned attention raises its score over the counterfactual",
                          "score", True, short="Effect true"),
    "effect_wrong": Column("Effect on best wrong pair ({draws})", "S(α) − S(ᾱ) of the best wrong pair ({draws} "
                           "of ᾱ per pair): above 0 the learned attention helps the wrong {item}", "score", False,
                           short="Effect wrong"),
    "pointing": Column("Pointing accuracy", "share of the caption's grounded words whose most-attended region "
                       "is one of its true regions (empty: no grounded word)", "share", True, short="Pointing"),
    "disagree": Column("Checkpoints disagree", "exactly one of the two checkpoints ranks the true {item} first "
                       "(the Disagree filter)", "flag", in_table=False),
    "score_true": Column("S(true pair)", "score S(α) of the query with its true {item}", "score", True,
                         in_table=False),
    "score_wrong": Column("S(best wrong pair)", "score S(α) of the query with its best wrong {item}", "score",
                          False, in_table=False),
}
SORTABLE = tuple(name for name, col in COLUMNS.items() if col.ascending is not None)
ORDERS = ("", "asc", "desc")  # "": the sort column's natural order (worst cases first)
RANK_COLUMNS = ("rank", "rank_cf", "rank_other")
FACTS_FORMAT = 1  # bump when factual_facts / counterfactual_facts change meaning (cached per-query arrays)


def _best_wrong_t2i(sims: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per caption: (best wrong image [C], true image [C]) — the true image is masked out."""
    n_img, n_cap = sims.shape
    true = np.arange(n_cap) // k  # [C]
    masked = np.array(sims, dtype=np.float64, copy=True)  # [I,C]
    masked[true, np.arange(n_cap)] = -np.inf
    return masked.argmax(axis=0), true  # first max: lowest index, as the evaluation's tie rule


def _best_wrong_i2t(sims: np.ndarray, k: int, ranks_cap: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per image: (best wrong caption [I], best-ranked true caption [I])."""
    n_img = sims.shape[0]
    masked = np.array(sims, dtype=np.float64, copy=True)  # [I,C]
    own = np.arange(n_img)[:, None] * k + np.arange(k)[None, :]  # [I,K]
    true_scores = masked[np.arange(n_img)[:, None], own]  # [I,K]
    masked[np.arange(n_img)[:, None], own] = -np.inf
    best_true = own[np.arange(n_img), true_scores.argmax(axis=1)]  # [I] highest-scoring true caption
    return masked.argmax(axis=1), best_true


def _check_direction(direction: str) -> None:
    if direction not in ("t2i", "i2t"):
        raise ConfigError(f"direction '{direction}' is not valid — use 't2i' (caption queries) or 'i2t'")


def _check_fit_shape(fits, sims: np.ndarray) -> np.ndarray:
    fits = np.asarray(fits)
    if fits.shape != sims.shape or fits.dtype != bool:
        raise DataError(f"the fit matrix ({fits.dtype} {fits.shape}) is not the [images, captions] bool matrix of "
                        f"the scores {sims.shape} — compute both from the same split")
    return fits


def _ranks_and_wrong(sims: np.ndarray, k: int, direction: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(0-based rank of the true item [N], best wrong item [N], true item [N]) of every query of ``direction``."""
    if direction == "t2i":
        wrong, true = _best_wrong_t2i(sims, k)
        return ranks_t2i(sims, k), wrong, true
    rank = ranks_i2t(sims, k)
    wrong, true = _best_wrong_i2t(sims, k, rank)
    return rank, wrong, true


OUTCOMES = ("first", "ambiguous", "real")  # ranked first; a failure whose best wrong item fits; a real failure


def fit_outcome(sims, fits, caps_per_image: int, direction: str) -> np.ndarray:
    """Per query of ``direction`` (every caption for t2i, every image for i2t), one of :data:`OUTCOMES`:
    "first" when the true item is ranked first (rank 0, as the failure table's ``rank``); otherwise
    "ambiguous" when the best wrong item — the one ranked first — is also true of the query by ``fits``
    (the table's ``wrong_fits``), "real" when it is not. ``[N]`` object array."""
    _check_direction(direction)
    sims = np.asarray(sims)
    check_finite_scores(sims, "factual similarity matrix")
    fits = _check_fit_shape(fits, sims)
    rank, wrong, _ = _ranks_and_wrong(sims, caps_per_image, direction)
    also = best_wrong_fits(fits, direction, np.arange(len(rank)), wrong)
    return np.where(rank == 0, OUTCOMES[0], np.where(also, OUTCOMES[1], OUTCOMES[2])).astype(object)


def factual_facts(sims, caps_per_image: int, direction: str) -> dict:
    """Per query of ``direction`` (``[N]`` arrays): ``rank`` (0-based, the evaluation's), ``true_item``,
    ``best_wrong``, ``score_true``, ``score_wrong`` (float32 scores of those pairs). With
    :func:`counterfactual_facts` they are all a failure table needs: cached, the table opens without its matrices."""
    _check_direction(direction)
    sims = np.asarray(sims)
    check_finite_scores(sims, "factual similarity matrix")
    rank, wrong, true = _ranks_and_wrong(sims, caps_per_image, direction)
    query = np.arange(sims.shape[1] if direction == "t2i" else sims.shape[0])
    pairs = (true, query, wrong, query) if direction == "t2i" else (query, true, query, wrong)
    return {"rank": rank.astype(np.int64), "true_item": true.astype(np.int64), "best_wrong": wrong.astype(np.int64),
            "score_true": np.asarray(sims[pairs[0], pairs[1]]), "score_wrong": np.asarray(sims[pairs[2], pairs[3]])}


def counterfactual_facts(cf_sims, facts: dict, caps_per_image: int, direction: str) -> dict:
    """Per query of ``direction``: ``rank_cf`` (the true item's rank under ``cf_sims``) and ``cf_true`` /
    ``cf_wrong`` (its scores of the pairs ``facts`` names: the factual true and best wrong pairs)."""
    _check_direction(direction)
    cf_sims = np.asarray(cf_sims)
    check_finite_scores(cf_sims, "counterfactual similarity matrix")
    n = cf_sims.shape[1] if direction == "t2i" else cf_sims.shape[0]
    if len(facts["rank"]) != n:
        raise DataError("the similarity matrices of the two checkpoints/interventions differ in shape — "
                        "compare checkpoints on the same dataset split")
    rank_fn = ranks_t2i if direction == "t2i" else ranks_i2t
    query, true, wrong = np.arange(n), facts["true_item"], facts["best_wrong"]
    pairs = (true, query, wrong, query) if direction == "t2i" else (query, true, query, wrong)
    return {"rank_cf": rank_fn(cf_sims, caps_per_image).astype(np.int64),
            "cf_true": np.asarray(cf_sims[pairs[0], pairs[1]]), "cf_wrong": np.asarray(cf_sims[pairs[2], pairs[3]])}


def build_failure_table(sims, cf_sims, caps_per_image: int, direction: str = "t2i", *, other_sims=None,
                        pointing=None, captions=None, fits=None) -> pd.DataFrame:
    """The failure table (module docstring) for one direction from [I,C] score matrices; ``fits`` [I,C]
    bool (scenes splits) adds ``wrong_fits``."""
    _check_direction(direction)
    sims, cf_sims = np.asarray(sims), np.asarray(cf_sims)
    check_finite_scores(sims, "factual similarity matrix")
    check_finite_scores(cf_sims, "counterfactual similarity matrix")
    if other_sims is not None:
        check_finite_scores(other_sims, "second checkpoint's similarity matrix")
    if cf_sims.shape != sims.shape or (other_sims is not None and np.shape(other_sims) != sims.shape):
        raise DataError("the similarity matrices of the two checkpoints/interventions differ in shape — "
                        "compare checkpoints on the same dataset split")
    if fits is not None:
        fits = _check_fit_shape(fits, sims)
    k = caps_per_image
    rank_fn = ranks_t2i if direction == "t2i" else ranks_i2t
    facts = factual_facts(sims, k, direction)
    rank_other = rank_fn(np.asarray(other_sims), k) if other_sims is not None else None
    return table_from_facts(facts, counterfactual_facts(cf_sims, facts, k, direction), direction,
                            rank_other=rank_other, pointing=pointing, captions=captions, fits=fits)


def table_from_facts(facts: dict, cf_facts: dict, direction: str, *, rank_other=None, pointing=None,
                     captions=None, fits=None) -> pd.DataFrame:
    """The failure table from per-query arrays (:func:`factual_facts`, :func:`counterfactual_facts`);
    ``rank_other``: the second checkpoint's ``rank`` [N]. Equals :func:`build_failure_table` of the matrices."""
    _check_direction(direction)
    rank, true, wrong, rank_cf = facts["rank"], facts["true_item"], facts["best_wrong"], cf_facts["rank_cf"]
    n = len(rank)
    if len(rank_cf) != n or (rank_other is not None and len(rank_other) != n):
        raise DataError("the similarity matrices of the two checkpoints/interventions differ in shape — "
                        "compare checkpoints on the same dataset split")
    if fits is not None:
        fits = np.asarray(fits)
        if fits.ndim != 2 or fits.dtype != bool or fits.shape[1 if direction == "t2i" else 0] != n:
            raise DataError(f"the fit matrix ({fits.dtype} {fits.shape}) is not the [images, captions] bool matrix "
                            f"of the scores — compute both from the same split")
    rank_other = None if rank_other is None else np.asarray(rank_other)
    query = np.arange(n)
    s_true, s_wrong = facts["score_true"], facts["score_wrong"]
    e_true, e_wrong = s_true - cf_facts["cf_true"], s_wrong - cf_facts["cf_wrong"]
    text = list(captions) if captions is not None and direction == "t2i" else [""] * n
    point = np.full(len(query), np.nan) if pointing is None or direction != "t2i" else np.asarray(pointing, float)
    df = pd.DataFrame({
        "direction": direction, "query": query, "query_text": text, "true_item": true,
        "rank": rank, "rank_cf": rank_cf,
        "rank_other": rank_other if rank_other is not None else np.full(len(query), -1),
        "best_wrong": wrong, "score_true": s_true.astype(float), "score_wrong": s_wrong.astype(float),
        "margin": (s_true - s_wrong).astype(float), "effect_true": e_true.astype(float),
        "effect_wrong": e_wrong.astype(float), "pointing": point,
        "disagree": ((rank == 0) != (rank_other == 0)) if rank_other is not None else False,
    })
    df = df[list(FAILURE_COLUMNS)]
    if fits is not None:
        df.insert(df.columns.get_loc("best_wrong") + 1, "wrong_fits", best_wrong_fits(fits, direction, query, wrong))
    return df


def filter_failures(df: pd.DataFrame, *, direction=None, rank_min=None, rank_max=None, effect_sign=None,
                    disagreement: bool = False, failures_only: bool = False, queries=None) -> pd.DataFrame:
    """Rows matching every given filter. Ranks 0-based, bounds inclusive.

    effect_sign: "positive" | "negative" (of ``effect_true``); disagreement: only queries where
    exactly one of the two checkpoints has the true item at rank 0; failures_only: rank > 0;
    queries: a boolean mask over the direction's queries (a slice's rows, ``analysis.slices``).
    """
    keep = np.ones(len(df), bool)
    if queries is not None:
        mask = np.asarray(queries, bool)
        q = df["query"].to_numpy(np.int64)
        if len(q) and (q.max() >= len(mask)):
            raise DataError(f"the slice covers {len(mask)} queries but the table has query {int(q.max())} — "
                            "cut a table with a slice of the same split and direction")
        keep &= mask[q]
    if direction is not None:
        keep &= (df["direction"] == direction).to_numpy()
    if rank_min is not None:
        keep &= (df["rank"] >= rank_min).to_numpy()
    if rank_max is not None:
        keep &= (df["rank"] <= rank_max).to_numpy()
    if effect_sign is not None:
        if effect_sign not in ("positive", "negative"):
            raise ConfigError(f"effect_sign '{effect_sign}' is not valid — use 'positive' or 'negative'")
        eff = df["effect_true"].to_numpy()
        keep &= eff > 0 if effect_sign == "positive" else eff < 0
    if disagreement:
        if (df["rank_other"] < 0).all():
            raise ConfigError("disagreement needs a second checkpoint — build the table with other=...")
        keep &= df["disagree"].to_numpy(bool)
    if failures_only:
        keep &= (df["rank"] > 0).to_numpy()
    return df[keep]


def sort_failures(df: pd.DataFrame, by: str = "rank", order: str = "") -> pd.DataFrame:
    """``df`` sorted by column ``by`` (one of :data:`SORTABLE`); ``order`` "asc", "desc" or "" (the column's
    natural order, worst cases first). Ties keep the table's order (query order): the sort is stable."""
    if by not in SORTABLE or by not in df.columns:
        raise ConfigError(f"cannot sort the failure table by '{by}' — use one of {', '.join(SORTABLE)}")
    if order not in ORDERS:
        raise ConfigError(f"sort order '{order}' is not valid — use 'asc', 'desc' or '' (the column's own)")
    ascending = COLUMNS[by].ascending if order == "" else order == "asc"
    return df.sort_values(by, ascending=ascending, kind="stable", na_position="last")


def as_shown(df: pd.DataFrame) -> pd.DataFrame:
    """The table as a reader sees it: ranks 1-based (1 = first; -1 stays: no second checkpoint), the
    second checkpoint's columns dropped when there is none, pointing and caption text dropped when empty."""
    out = df.copy()
    for col in RANK_COLUMNS:
        if col in out.columns:
            out[col] = out[col].where(out[col] < 0, out[col] + 1)
    if "rank_other" in out.columns and (df["rank_other"] < 0).all():
        out = out.drop(columns=[c for c in ("rank_other", "disagree") if c in out.columns])
    if "pointing" in out.columns and out["pointing"].isna().all():
        out = out.drop(columns=["pointing"])
    if "query_text" in out.columns and (out["query_text"] == "").all():
        out = out.drop(columns=["query_text"])
    return out.reset_index(drop=True)


def export_csv(df: pd.DataFrame, path) -> Path:
    """Write ``df`` as CSV atomically (temp file + fsync + rename; :func:`causmatch.outputs.atomic_write`)."""
    path = Path(path)
    data = df.to_csv(index=False, lineterminator="\n").encode("utf-8")
    try:
        return atomic_write(path, lambda fh: fh.write(data), label="csv")
    except OSError as err:
        raise os_error(err, path) from None
