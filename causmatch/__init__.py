"""CausMatch: region–word cross-attention matching with a counterfactual attention preference.

Public API by area (see docs/architecture.md): ``causmatch.data`` (dataset folders, vocabulary, the scenes
benchmark), ``causmatch.models`` (Matcher and its configs), ``causmatch.interventions``, ``causmatch.losses``,
``causmatch.checkpoint``, ``causmatch.evaluation``, ``causmatch.training``, ``causmatch.analysis``,
``causmatch.errors``.

Importing it changes nothing outside the library; programs call :func:`causmatch.runtime.configure` first.
"""
__version__ = "0.1.0"
