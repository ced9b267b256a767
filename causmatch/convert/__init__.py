"""Converters for real data: BUTD TSV features, SCAN precomp box files and SCAN checkpoints.

Heavy parts (torch, the models) load only when the SCAN importer is used.
"""
from causmatch.convert.butd import convert_butd
from causmatch.convert.butd_tsv import ButdRow, iter_tsv
from causmatch.convert.karpathy import KarpathySplits, load_karpathy
from causmatch.convert.precomp_boxes import convert_precomp_boxes

__all__ = ["convert_butd", "iter_tsv", "ButdRow", "load_karpathy", "KarpathySplits", "convert_precomp_boxes"]
