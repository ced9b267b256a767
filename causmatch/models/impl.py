"""Which implementation scores a call: the four named implementations and the one rule that picks them.

* ``reference`` — :mod:`causmatch.models.reference`: serves everything; builds the context vectors (slow: for
  checks and small batches).
* ``eager`` — :mod:`causmatch.models.attention` (``attention_maps`` + ``score_maps``): serves everything —
  gradients, autocast, maps, every norm and intervention (the training path, ``pair_scores``).
* ``fast`` — ``attention.fast_scores``, and :mod:`causmatch.models.fast_counterfactual` under an intervention:
  scores only, no gradient, no autocast, norms in ``FAST_NORMS`` with ``0 < λ ≤ 30``, unit words; the learned
  maps or the whole-map counterfactuals (random, uniform, reversed, shuffle; by exact kind).
* ``compiled`` — :mod:`causmatch.models.fused`: as ``fast``, learned maps only; compiled once per process and
  setting.
* ``sgraf`` — :mod:`causmatch.models.sgraf`: the only one for a SGRAF head (``model.similarity`` ``saf`` or
  ``sgr``; the four above compute SCAN's pooled relevance, so they never score one): the eager t2i maps, then
  SGRAF's similarity vectors; everything (gradients, maps, every intervention).

The default (``impl=None``) is ``sgraf`` for a SGRAF head; for SCAN's it is ``fast`` where it serves the call,
else ``eager``; ``compiled`` and
``reference`` are only used when asked for. An implementation asked for by name that cannot serve the call
is refused with a one-line :class:`ConfigError` (never silently replaced by another).
"""
from __future__ import annotations

from causmatch.errors import ConfigError
from causmatch.interventions import kind_of
from causmatch.models.attention import FAST_NORMS, MAX_FAST_LAMBDA, fast_path_ok

IMPLS = ("reference", "eager", "fast", "compiled", "sgraf")


def fast_counterfactual(iv) -> bool:
    """True for the interventions the ``fast`` implementation draws itself: the registry's whole-map counterfactuals.

    The lookup is by exact class (a subclass may change the draw, so it takes the eager path).
    """
    kind = kind_of(iv, exact=True)
    return kind is not None and kind.counterfactual


def why_not(impl: str, config, *, grad: bool, autocast: bool, return_maps: bool, interventions) -> str | None:
    """Why ``impl`` cannot serve the call (a short phrase), or None when it can.

    ``config``: the :class:`~causmatch.models.config.MatcherConfig`; ``grad``: a gradient is wanted (grad mode on
    and an input requires it); ``autocast``: autocast is on for the inputs' device; ``interventions``: the list
    scored (``None`` = the learned maps).
    """
    if impl not in IMPLS:
        return f"it is not one of {', '.join(IMPLS)}"
    head = getattr(config, "similarity", "scan")
    if (impl == "sgraf") != (head != "scan"):
        return (f"this model's similarity head is {head}, scored by the "
                f"{'sgraf implementation only' if head != 'scan' else 'reference, eager, fast and compiled ones'}")
    if impl in ("reference", "eager", "sgraf"):
        return None
    a = config.attention
    if grad:
        return "it computes no gradients (use eager)"
    if autocast:
        return "it does not run under autocast (use eager)"
    if return_maps:
        return "it keeps no maps (use eager or reference)"
    if not fast_path_ok(a.norm, a.lambda_softmax, unit_words=config.txt_norm):
        return (f"it needs norm in {', '.join(FAST_NORMS)}, 0 < lambda_softmax <= {MAX_FAST_LAMBDA:g} and unit "
                f"words (txt_norm); this model has norm {a.norm}, lambda_softmax {a.lambda_softmax:g}, "
                f"txt_norm {config.txt_norm}")
    ivs = [iv for iv in interventions if iv is not None]
    if impl == "compiled" and ivs:
        return f"it scores the learned maps only, not under an intervention ({_name(ivs[0])})"
    if impl == "fast" and any(iv is not None and not fast_counterfactual(iv) for iv in interventions):
        other = next(iv for iv in ivs if not fast_counterfactual(iv))
        return f"under an intervention it serves random, uniform, reversed and shuffle only, not {_name(other)}"
    if impl == "fast" and ivs and len(ivs) != len(list(interventions)):
        return "it scores either the learned maps or counterfactuals in one call, not both"
    return None


def _name(iv) -> str:
    return getattr(iv, "name", type(iv).__name__)


def choose_impl(config, requested: str | None = None, *, grad: bool, autocast: bool, return_maps: bool,
                interventions) -> str:
    """The one rule: the implementation that scores a call (see the table above).

    ``requested`` None: ``fast`` where it serves, else ``eager``. A name: that implementation, or a one-line
    :class:`ConfigError` saying why it cannot serve this call.
    """
    interventions = list(interventions)
    ctx = dict(grad=grad, autocast=autocast, return_maps=return_maps, interventions=interventions)
    if requested is None and getattr(config, "similarity", "scan") != "scan":
        return "sgraf"
    if requested is None:
        return "fast" if why_not("fast", config, **ctx) is None else "eager"
    reason = why_not(requested, config, **ctx)
    if reason is not None:
        raise ConfigError(f"impl {requested!r} cannot score this call: {reason}")
    return requested
