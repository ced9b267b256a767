"""CausMatch: region–word cross-attention matching with a counterfactual attention preference.

Public API by area (see docs/architecture.md): ``causmatch.data`` (dataset folders, vocabulary, the scenes
benchmark), ``causmatch.models`` (Matcher and its configs), ``causmatch.interventions``, ``causmatch.losses``,
``causmatch.checkpoint``, ``causmatch.evaluation``, ``causmatch.training``, ``causmatch.analysis``,
``causmatch.errors``.
"""
import os

# Idle OpenMP workers spin by default and steal the core from the thread doing the work on small or shared
# machines; passive waiting made explanations ~10x faster on a 2-core box (docs/benchmarks.md). Only a default:
# a value the user set wins, and it takes effect only if torch was not imported before causmatch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
