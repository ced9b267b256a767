"""The sidebar: dataset folder, split, one or two checkpoints, and the intervention.

It loads what it names (cached) into the run's :class:`state.Context`; a loading error is
shown once in the sidebar and again, by the page, in the main error panel.
"""
from __future__ import annotations

import streamlit as st

import loaders
import state
from causmatch.analysis import links
from causmatch.interventions import format_spec, get_kind, pickable_kinds, target_rule
from components.errors import error_message, plain


def _text(label: str, name: str, help_text: str, placeholder: str = "") -> str:
    return st.text_input(label, key=state.key(name), help=help_text, placeholder=placeholder,
                         on_change=state.place_changed, args=(name,))


def _splits(folder: str, current: str) -> tuple[list[str], list[str] | None]:
    """(choices, the folder's splits or None when the folder cannot be listed): the view's split is
    always offered — a refused one marked, until another is picked."""
    try:
        found = loaders.data_splits(folder)
    except Exception:  # noqa: BLE001 — a refused or unreadable folder: loading shows the error panel
        return [current], None
    return found + ([current] if current not in found else []), found


def _pair(split, view: dict) -> tuple[int, int | None, str | None]:
    """The view's pair as the pages will correct it: (image, caption or None, typed text or None)."""
    image = min(max(int(view["image"]), 0), split.n_images - 1)
    text = view["text"].strip()
    if text:
        return image, None, text
    own = [int(c) for c in split.captions_of(image)]
    caption = int(view["caption"])
    return image, caption if caption in own else own[0], None


def _target_options(ctx_split, matcher, view: dict) -> list[tuple[int, str]]:
    """(index, label) choices for a targeted intervention: the pair's valid regions or its words."""
    rule = target_rule(view["iv"])
    if rule is None or ctx_split is None:
        return []
    image, caption, text = _pair(ctx_split, view)
    if rule.axis == "regions":
        valid = ctx_split.region_mask[image]
        return [(r, f"region {r}") for r in range(len(valid)) if valid[r]]
    if matcher is None:
        return []
    return [(j, f"{j} · {w}") for j, w in enumerate(matcher.tokens(text or ctx_split.captions[caption]))]


def _targets(kind: str, options: list[tuple[int, str]], session, view: dict) -> list[int]:
    """The target picker: only this pair's valid words or regions, at most the kind's count.

    Targets belong to the kind they were picked for (:func:`state.kind_changed` clears them when the
    kind changes). Targets that do not fit the pair (a link, or a pair changed since) are refused with
    an error panel and not used — never silently trimmed to the valid ones.
    """
    rule = target_rule(kind)
    if state.targets_cleared() == kind:
        st.caption(f"Targets cleared: they were picked for another kind than {kind}.")
    check = None
    if session is not None:
        image, caption, text = _pair(session.split, view)

        def check(spec: str) -> None:
            session.check_intervention(spec, image=image, caption=caption, text=text)
    offered = [i for i, _ in options]
    problem = links.targets_problem(kind, view["targets"], offered, check) if options else None
    chosen = links.parse_targets(view["targets"]) or []
    shown = [t for t in chosen if t in set(offered)][: rule.max_count] if problem is None else []
    labels = dict(options)
    st.multiselect("Targets", offered, key=state.targets_picker(shown), format_func=labels.get,
                   max_selections=rule.max_count, on_change=state.targets_picked, args=(kind,),
                   help=f"the {rule.axis} the targeted intervention acts on"
                        + (f" (exactly {rule.min_count} distinct {rule.axis})" if rule.min_count == rule.max_count
                           else ""))
    if problem is not None:
        st.error(plain(problem), icon=":material/error:")
        state.add_notice(problem)
        return []
    return shown


def _kinds_help() -> str:
    return "how the learned attention is replaced, do(α = ᾱ): " + "; ".join(
        f"**{name}**: {get_kind(name).description}" for name in pickable_kinds())


_NEW_MATRICES = ("a value not used before makes Overview's counterfactual rows and Failure cases compute new "
                 "whole-split matrices, in the background (minutes on a small CPU; cached afterwards)")


def _intervention(view: dict, split, models) -> tuple[str | None, int, int]:
    st.subheader("Intervention")
    kind = st.selectbox("Counterfactual attention", links.FIELDS["iv"].choices, key=state.key("iv"),
                        on_change=state.kind_changed, help=_kinds_help())
    samples_field, seed_field = links.FIELDS["samples"], links.FIELDS["seed"]
    samples = st.number_input("Samples", min_value=samples_field.low, max_value=samples_field.high, step=1,
                              key=state.key("samples"), on_change=state.changed,
                              disabled=not get_kind(kind).stochastic,
                              help="random draws averaged (with a 95% interval) for stochastic kinds — on every "
                                   f"page, whole-split ones included: {_NEW_MATRICES}")
    seed = st.number_input("Seed", min_value=seed_field.low, max_value=seed_field.high, step=1,
                           key=state.key("seed"), on_change=state.changed,
                           help=f"the first draw's seed (draws: seed … seed+samples−1) — {_NEW_MATRICES}")
    rule = target_rule(kind)
    if rule is None:
        return format_spec(kind), int(samples), int(seed)
    matcher = models[0].matcher if models else None
    session = models[0].session[0] if models else None
    picked = _targets(kind, _target_options(split, matcher, view), session, view)
    if len(picked) < rule.min_count:
        if not (view["targets"] and picked == []):
            st.caption(f"Pick {'two words' if rule.min_count == 2 else 'at least one target'} for {kind}.")
        return None, int(samples), int(seed)
    return format_spec(kind, picked), int(samples), int(seed)


def _load_models(view: dict, split) -> list[state.Model]:
    models = []
    for name, label in (("ckpt", "A"), ("ckpt2", "B")):
        value = view[name].strip()
        if not value:
            continue
        path = loaders.checkpoint_place(value)  # CheckpointError "not allowed" outside the roots
        session = loaders.open_session(str(path), split)
        models.append(state.Model(label=f"{label}: {path.name}", path=path,
                                  matcher=session[0].matcher, session=session))
    if not models:
        from causmatch.errors import CheckpointError
        raise CheckpointError("no checkpoint chosen — enter a checkpoint folder in the sidebar "
                              "(or train the demo ones: see the README)")
    return models


def draw() -> None:
    """Draw the sidebar and store the run's context (or the error that stopped loading it)."""
    split, models = None, []
    with st.sidebar:
        st.subheader("Data and checkpoints")
        roots = state.roots().labels()
        _text("Dataset folder", "data", f"a dataset folder (SCAN *_precomp layout) inside a root ({roots}), "
              "e.g. assets/data/scenes; empty: the demo scenes", placeholder="demo: assets/data/scenes")
        options, found = _splits(state.value("data"), state.value("split"))
        st.selectbox("Split", options, key=state.key("split"), on_change=state.changed,  # the view's split is offered
                     format_func=lambda s: s if found is None or s in found else f"{s[:40]} (not allowed)")
        _text("Checkpoint", "ckpt", f"a checkpoint folder (config.json + model.safetensors) inside a root ({roots})")
        _text("Second checkpoint (optional)", "ckpt2", "compared with the first on Compare and Failure cases")
        view = state.view()
        try:
            split = loaders.load_data(view["data"], view["split"])
            models = _load_models(view, split)
        except Exception as exc:  # noqa: BLE001 — shown here and by the page's error panel
            st.error(plain(error_message(exc, redact=state.roots().redact)))
            error = exc
        else:
            error = None
        spec, samples, seed = _intervention(view, split, models)
    if error is not None:
        state.set_context(None, error)
        return
    ctx = state.Context(data_dir=split.folder, split=split, models=models, intervention=spec,
                        samples=samples, seed=seed)
    state.set_context(ctx)
