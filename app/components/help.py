"""The app's "How to read this" texts: what each number on a page means, written once here.

Every page calls :func:`how_to_read` with the topics of the numbers it shows, next to them::

    from components import help
    help.how_to_read("scores", "effect", "interval")

Topics (:data:`TOPICS`): ``scores`` (S(α), S(ᾱ)), ``effect``, ``interval``, ``word_effects``,
``region_effects``, ``attention`` (the word × region matrices), ``pointing``, ``ranks``, ``recall`` (R@K),
``margin``, ``curves`` (deletion / insertion), ``fit`` (captions true of several images, fit-aware R@K),
``sgraf`` (SGRAF's scores and SAF's filtration weights).
:func:`cf_rank_label` names a rank under ᾱ with its number of draws (:func:`draws`). An unknown topic is a
programming error (``ValueError``), caught by the tests, never a user's mistake. The texts follow the
library's maths (``causmatch.analysis.effects``, ``causmatch.pointing``, ``causmatch.analysis.failures``,
``causmatch.analysis.grounding``, ``causmatch.data.scenes.fit``, ``causmatch.evaluation``).
"""
from __future__ import annotations

import streamlit as st

LABEL = "How to read this"

# topic -> (title, text). Plain, short, and the same maths as the library.
TOPICS: dict[str, tuple[str, str]] = {
    "scores": (
        "S(α) and S(ᾱ)",
        "**S(α)** is the matcher's score for the pair with its own learned attention α: each word's cosine "
        "with its attention-weighted mix of regions (or each region's with its mix of words), pooled over the "
        "pair; higher is a better match. **S(ᾱ)** is the same score with α replaced by the counterfactual "
        "attention ᾱ chosen in the sidebar (features unchanged), averaged over its draws."),
    "effect": (
        "Effect",
        "**Effect = S(α) − mean S(ᾱ)**: how much the learned attention adds to the score compared with the "
        "counterfactual attention. Positive: the learned attention helps this match; about 0: the score does "
        "not depend on where the model looks (as far as this counterfactual tells); negative: the "
        "counterfactual attention scores higher."),
    "interval": (
        "95% interval",
        "The effect's **95% interval** is Student's t over the K seeded draws of ᾱ (seeds seed … seed+K−1): "
        "effect ± t·sd/√K, sd the spread of the K counterfactual scores (t of K−1 degrees of freedom; 1.96 "
        "past 31 draws). It says how much the effect depends on which draws were taken, not how it would "
        "vary over other data or another training run. A deterministic counterfactual (e.g. uniform) has one "
        "draw and zero width."),
    "word_effects": (
        "Per-word effect",
        "The **per-word effect** of a word is S(α) minus the score when only that word's attention is "
        "replaced by ᾱ (its row in the word → region map, its column in the region → word map), mean over the "
        "draws. A large positive bar marks a word whose learned attention carries the match; a bar near 0 a "
        "word whose attention does not matter."),
    "region_effects": (
        "Per-region effect",
        "The **per-region effect** of a region is S(α) minus the score when the attention on that region is set "
        "to 0 (no word attends to it; for a model attending from regions, the region attends to no word); the "
        "features are unchanged and no counterfactual draw is involved. Positive: the match needs the region. "
        "Blank for padding, and for every region when an image has only one."),
    "attention": (
        "Attention matrices",
        "Each row is one word's attention over the regions, shown as **shares of the row** (they sum to 1), so "
        "factual α and counterfactual ᾱ (mean of the draws) compare on one colour scale. For a model that only "
        "attends from regions to words, the region → word map is shown transposed."),
    "pointing": (
        "Pointing accuracy",
        "A grounded word **hits** when its most-attended valid region is one of its true regions (pointing "
        "game); **pointing accuracy** is the share of grounded words that hit. **Energy** is the share of the "
        "word's attention that lands on its true regions. Only words the dataset grounds count."),
    "ranks": (
        "Ranks",
        "Ranks are **1-based** (1 = the best of the gallery; ties go to the lower index). The rank under ᾱ "
        "comes from the counterfactual scores averaged over the draws said beside it. **Moved** = rank under α "
        "− rank under ᾱ: positive when the item rose under the counterfactual attention."),
    "recall": (
        "R@K, rSum, medr",
        "**R@K** (%) is the share of queries whose true item is among the K best-scored: **t2i**, each caption "
        "over all images; **i2t**, each image over all captions (a hit when any of its own captions is in the "
        "top K). **rSum** adds the six R@K; **medr** is the median 1-based rank of the true item (lower is "
        "better). Under a counterfactual the same is computed from the scores under ᾱ."),
    "margin": (
        "Margin",
        "**Margin** = S(α) of the true item − S(α) of the best-scoring wrong item. Negative: a wrong item "
        "outscores the truth, so the query fails at rank 1; its size says by how much."),
    "curves": (
        "Deletion and insertion",
        "**Deletion** removes regions one by one, most-attended first, and records the pair's score; "
        "**insertion** starts from the most-attended region alone and adds the others. The **normalised area** "
        "is the area under the score curve divided by the range of fractions covered (the curve's mean score), so "
        "images with different numbers of regions compare. A faithful attention gives a lower deletion area and a "
        "higher insertion area than its baselines (the counterfactual attention's order, a random order)."),
    "fit": (
        "Captions that fit several images",
        "On scenes data a caption **fits** an image when every object it names is there with the named shape, "
        "colour and size, each stated relation holds and a stated count matches (from the generator's scene "
        "descriptions), so one caption can be true of many images. **Fit-aware R@K** counts a query as a hit "
        "when any item it fits is in the top K: c→i, any image the caption is true of; i→c, any caption true of "
        "the image. Standard R@K counts only the annotated item; the difference is the captions' ambiguity, not "
        "model error. **Best wrong also fits**: the wrong item ranked above the truth is true of the query as "
        "well; a **real failure** is a query not ranked first whose best wrong item does not fit."),
    "sgraf": (
        "SGRAF scores and SAF's filtration",
        "An **SGRAF** checkpoint (SAF or SGR) scores a pair from similarity *vectors*, not pooled cosines: per "
        "word, one between the word and the image context its attention α gathers, plus one between the whole "
        "image and the whole caption (the global match); SGR reasons over them with a graph, SAF weights them. "
        "The score is a sigmoid, in (0, 1); no per-word relevance exists, so views that compare relevances fall "
        "back to the attention. **SAF's filtration weights** (they sum to 1) say how much each word, and the "
        "global match, counts in the score: attention of its own. The interventions `filtration:uniform`, "
        "`filtration:random`, `filtration:shuffle`, `filtration:mask-words=…` and `filtration:keep-words=…` "
        "replace these weights instead of α (α stays as learned)."),
}


def cf_rank_label(n_draws: int, spec: str | None = None, seed: int | None = None) -> str:
    """The name of a rank under the counterfactual attention, saying what it averages: with ``spec`` (and
    ``seed``) the kind and the seed too — "rank under ᾱ (random, mean of 8 draws, seed 0)" — which with the
    draws fix the number (the same on every page)."""
    what = cf_draws(n_draws, spec, seed)
    return f"rank under ᾱ ({what})" if what else "rank under ᾱ"


def cf_draws(n_draws: int, spec: str | None = None, seed: int | None = None) -> str:
    """What a number under ᾱ averages, as :func:`cf_rank_label` says it in parentheses: "random, mean of 8
    draws, seed 0" ("" for none)."""
    parts = [str(spec)] if spec else []
    if n_draws > 1:
        parts.append(f"mean of {n_draws} draws")
    elif spec:
        parts.append("1 draw")
    if seed is not None and (n_draws > 1 or _stochastic(spec)):  # one random draw depends on its seed too
        parts.append(f"seed {seed}")
    return ", ".join(parts)


def _stochastic(spec: str | None) -> bool:
    """Whether the intervention ``spec`` draws at random (its numbers depend on the seed)."""
    if not spec:
        return False
    from causmatch.errors import CausMatchError
    from causmatch.interventions import resolve_intervention
    try:
        return bool(getattr(resolve_intervention(spec), "stochastic", False))
    except CausMatchError:
        return False


def _check(topics: tuple[str, ...]) -> None:
    unknown = [t for t in topics if t not in TOPICS]
    if unknown or not topics:
        raise ValueError(f"help topics {unknown or '(none)'} are not known — use some of {', '.join(TOPICS)}")


def markdown(*topics: str) -> str:
    """The texts of ``topics`` (in the order given, each once) as one Markdown string."""
    _check(topics)
    seen = list(dict.fromkeys(topics))
    return "\n\n".join(TOPICS[t][1] for t in seen)


def how_to_read(*topics: str, container=None, expanded: bool = False) -> None:
    """One compact "How to read this" expander with the texts of ``topics``, drawn in ``container``
    (``st`` or a column / container; default ``st``)."""
    body = markdown(*topics)
    with (container or st).expander(LABEL, expanded=expanded, icon=":material/help:"):
        st.markdown(body)
