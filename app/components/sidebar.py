"""The sidebar: dataset folder, split, one or two checkpoints, and the intervention.

It loads what it names (cached) into the run's :class:`state.Context`; a loading error is
shown once in the sidebar and again, by the page, in the main error panel.
"""
from __future__ import annotations

from pathlib import Path

import streamlit as st

import results
import state
from components.errors import error_message

STOCHASTIC = ("random", "shuffle")


def _text(label: str, name: str, help_text: str, placeholder: str = "") -> str:
    return st.text_input(label, key=state.widget_key(name), help=help_text, placeholder=placeholder)


def _splits(view: dict) -> list[str]:
    from causmatch.data import available_splits
    folder = state.resolve_data_dir(view["data"])
    found = available_splits(folder) if folder.is_dir() else []
    options = sorted(set(found) | {view["split"]}, key=lambda s: ("train", "dev", "test").index(s)
                     if s in ("train", "dev", "test") else 9)
    return options


def _target_options(ctx_split, matcher, view: dict) -> list[tuple[int, str]]:
    """(index, label) choices for a targeted intervention: the pair's regions or words."""
    kind = view["iv"]
    if kind in state.TARGETED_REGIONS:
        image = min(max(view["image"], 0), ctx_split.n_images - 1)
        valid = ctx_split.region_mask[image]
        return [(r, f"region {r}") for r in range(len(valid)) if valid[r]]
    if kind in state.TARGETED_WORDS and matcher is not None:
        text = view["text"].strip() or ctx_split.captions[min(view["caption"], ctx_split.n_captions - 1)]
        return [(j, f"{j} · {w}") for j, w in enumerate(matcher.tokens(text))]
    return []


def _targets(options: list[tuple[int, str]], view: dict) -> list[int]:
    key = "w_targets_list"
    if key in st.session_state:  # the user's latest choice, before it is redrawn
        view["targets"] = ",".join(str(i) for i in st.session_state[key])
    valid = {i for i, _ in options}
    chosen = [int(t) for t in view["targets"].split(",") if t.strip().lstrip("-").isdigit()]
    chosen = [t for t in chosen if t in valid]
    st.session_state[key] = chosen
    labels = dict(options)
    picked = st.multiselect("Targets", [i for i, _ in options], key=key, format_func=labels.get,
                            help="the regions or words the targeted intervention acts on")
    view["targets"] = ",".join(str(i) for i in picked)
    return picked


def _intervention(view: dict, split, matcher) -> tuple[str | None, int, int]:
    st.subheader("Intervention")
    kind = st.selectbox("Counterfactual attention", state.INTERVENTION_KINDS,
                        key=state.widget_key("iv", lambda v: v in state.INTERVENTION_KINDS, "random"),
                        help="how the learned attention is replaced: do(α = ᾱ)")
    samples = st.number_input("Samples", min_value=1, max_value=64, step=1,
                              key=state.widget_key("samples", lambda v: 1 <= v <= 64, 8),
                              disabled=kind not in STOCHASTIC,
                              help="random draws averaged (with a 95% interval) for stochastic kinds")
    seed = st.number_input("Seed", min_value=0, max_value=2**31 - 1, step=1,
                           key=state.widget_key("seed", lambda v: v >= 0, 0))
    spec: str | None = kind
    if kind in state.TARGETED_REGIONS + state.TARGETED_WORDS:
        picked = _targets(_target_options(split, matcher, view) if split is not None else [], view)
        need = 2 if kind == "swap-words" else 1
        if len(picked) < need:
            st.caption(f"Pick {'two words' if need == 2 else 'at least one target'} for {kind}.")
            spec = None
        else:
            chosen = picked[:2] if kind == "swap-words" else picked
            spec = f"{kind}={','.join(str(i) for i in chosen)}"
    return spec, int(samples), int(seed)


def _load_models(view: dict, split) -> list[state.Model]:
    models = []
    for name, label in (("ckpt", "A"), ("ckpt2", "B")):
        path = view[name].strip()
        if not path:
            continue
        session = results.open_session(path, split)
        models.append(state.Model(label=f"{label}: {Path(path).name}", path=Path(path),
                                  matcher=session[0].matcher, session=session))
    if not models:
        from causmatch.errors import CheckpointError
        raise CheckpointError("no checkpoint chosen — enter a checkpoint folder in the sidebar "
                              "(or train the demo ones: see the README)")
    return models


def draw() -> None:
    """Draw the sidebar and store the run's context (or the error that stopped loading it)."""
    view = state.view()
    split = matcher = None
    with st.sidebar:
        st.subheader("Data and checkpoints")
        _text("Dataset folder", "data", "a dataset folder (SCAN *_precomp layout); empty: the demo scenes",
              placeholder="demo: assets/data/scenes")
        options = _splits(view)
        st.selectbox("Split", options, key=state.widget_key("split", lambda v: v in options, options[0]))
        _text("Checkpoint", "ckpt", "a checkpoint folder (config.json + model.safetensors)")
        _text("Second checkpoint (optional)", "ckpt2", "compared with the first on Compare and Failure cases")
        try:
            split = state.load_data(view["data"], view["split"])
            models = _load_models(view, split)
            matcher = models[0].matcher
        except Exception as exc:  # noqa: BLE001 — shown here and by the page's error panel
            st.error(error_message(exc))
            models, error = [], exc
        else:
            error = None
        spec, samples, seed = _intervention(view, split, matcher)
    if error is not None:
        state.set_context(None, error)
        return
    ctx = state.Context(data_dir=split.folder, split=split, models=models, intervention=spec,
                        samples=samples, seed=seed)
    state.set_context(ctx)
