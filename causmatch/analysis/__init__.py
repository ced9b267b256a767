"""Causal analysis of a matcher on a dataset split: explanations, effects, ranks, failures, grounding, heatmaps.

Start from :class:`AnalysisSession` (``AnalysisSession.open(checkpoint_dir, data_dir, split)``);
see docs/analysis.md. Never imports streamlit.
"""
from causmatch.analysis.cache import ArrayCache, cache_key
from causmatch.analysis.effects import (
    EffectEstimate,
    estimate_effect,
    region_effects,
    remove_regions,
    t_interval,
    word_effects,
)
from causmatch.analysis.explain import PairExplanation, explain_pair
from causmatch.analysis.failures import FAILURE_COLUMNS, build_failure_table, export_csv, filter_failures
from causmatch.analysis.grounding import (
    Curve,
    grounding_summary,
    grounding_table,
    pair_grounding,
    region_curve,
    split_pointing,
    word_grounding,
)
from causmatch.analysis.heatmaps import (
    COLORMAPS,
    colorbar,
    colorize,
    draw_boxes,
    load_image,
    overlay,
    shared_scale,
    signed_difference,
    word_heatmap,
)
from causmatch.analysis.ranking import RankResult, best_rank, compare_rankings, rank_positions
from causmatch.analysis.session import AnalysisSession
from causmatch.interventions import OneWord, resolve_intervention  # re-exported: explanations take them

__all__ = [
    "AnalysisSession", "PairExplanation", "explain_pair", "EffectEstimate", "estimate_effect", "word_effects",
    "region_effects", "OneWord", "remove_regions", "resolve_intervention", "t_interval",
    "RankResult", "compare_rankings", "rank_positions", "best_rank",
    "FAILURE_COLUMNS", "build_failure_table", "filter_failures", "export_csv",
    "word_grounding", "pair_grounding", "grounding_table", "split_pointing", "grounding_summary", "Curve",
    "region_curve", "word_heatmap", "shared_scale", "colorize", "signed_difference", "overlay", "draw_boxes",
    "colorbar", "load_image", "COLORMAPS", "ArrayCache", "cache_key",
]
