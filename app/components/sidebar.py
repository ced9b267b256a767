"""The sidebar: dataset folder, split, one or two checkpoints, and the intervention.

It loads what it names (cached) into the run's :class:`state.Context`; a loading error is
shown once in the sidebar and again, by the page, in the main error panel.
"""
from __future__ import annotations

import streamlit as st

import results
import state
from causmatch.interventions import target_rule, validate_intervention
from components.errors import error_message

STOCHASTIC = ("random", "shuffle")


def _text(label: str, name: str, help_text: str, placeholder: str = "") -> str:
    return st.text_input(label, key=state.widget_key(name), help=help_text, placeholder=placeholder)


def _splits(view: dict) -> tuple[list[str], list[str] | None]:
    """(choices, the folder's splits or None when the folder cannot be listed): a refused split stays
    listed, marked, until another is picked."""
    try:
        found = state.data_splits(view["data"])
    except Exception:  # noqa: BLE001 — a refused or unreadable folder: loading shows the error panel
        return [view["split"]], None
    return found + ([view["split"]] if view["split"] not in found else []), found


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


def _parse_targets(text: str) -> list[int] | None:
    """The view's targets as integers; None when one is not a whole number."""
    parts = [t.strip() for t in text.split(",") if t.strip()]
    if not all(p.isdigit() for p in parts):
        return None
    return [int(p) for p in parts]


def _targets_picked(kind: str) -> None:
    """on_change of the target picker: the user's choice becomes the view's targets, owned by ``kind``."""
    picked = list(st.session_state.get(TARGETS_KEY) or [])
    view = state.view()
    view["targets"] = ",".join(str(i) for i in picked)
    view["tkind"] = kind if picked else ""


TARGETS_KEY = "w_targets_list"


def _check_targets(kind: str, chosen: list[int] | None, options, session, view: dict) -> str | None:
    """Why the view's targets cannot be used for this pair (one line), or None when they can."""
    from causmatch.errors import CausMatchError
    if chosen is None:
        return (f"ConfigError: the targets '{view['targets'][:60]}' are not whole numbers — pick the "
                f"{target_rule(kind).axis} in the sidebar")
    if not chosen:
        return None
    rule = target_rule(kind)
    if len(chosen) < rule.min_count:  # still picking (swap-words' first word): only what is chosen must fit
        bad = sorted({t for t in chosen if t not in {i for i, _ in options}} | {t for t in chosen if chosen.count(t) > 1})
        return (f"ConfigError: {kind}: {rule.axis} {', '.join(map(str, bad))} not valid for this pair — pick the "
                f"{rule.axis} from the list in the sidebar") if bad else None
    spec = f"{kind}={','.join(str(i) for i in chosen)}"
    if session is not None:
        image, caption, text = _pair(session.split, view)
        try:
            session.check_intervention(spec, image=image, caption=caption, text=text)
        except CausMatchError as exc:
            return f"{type(exc).__name__}: {exc}"
    try:
        validate_intervention(spec)
    except CausMatchError as exc:
        return f"{type(exc).__name__}: {exc}"
    valid = {i for i, _ in options}
    bad = [t for t in chosen if t not in valid]
    if bad and options:
        axis = target_rule(kind).axis
        return (f"ConfigError: {kind}: {axis} {', '.join(map(str, bad))} not valid for this pair — pick the "
                f"{axis} from the list in the sidebar")
    return None


def _targets(kind: str, options: list[tuple[int, str]], session, view: dict) -> list[int]:
    """The target picker: only this pair's valid words or regions, at most the kind's count.

    Targets belong to the kind they were picked for: when the kind changes they are cleared. Targets
    that do not fit the pair (a link, or a pair changed since) are refused with an error panel and
    not used — never silently trimmed to the valid ones.
    """
    rule = target_rule(kind)
    if view["tkind"] and view["tkind"] != kind:  # picked for another kind: never reinterpreted
        view["targets"], view["tkind"] = "", ""
        st.session_state.pop(TARGETS_KEY, None)
        st.caption(f"Targets cleared: they were picked for another kind than {kind}.")
    chosen = _parse_targets(view["targets"])
    problem = _check_targets(kind, chosen, options, session, view) if options else None
    valid = {i for i, _ in options}
    seeded = [t for t in (chosen or []) if t in valid][: rule.max_count] if problem is None else []
    st.session_state[TARGETS_KEY] = seeded
    labels = dict(options)
    axis = rule.axis
    st.multiselect("Targets", [i for i, _ in options], key=TARGETS_KEY, format_func=labels.get,
                   max_selections=rule.max_count, on_change=_targets_picked, args=(kind,),
                   help=f"the {axis} the targeted intervention acts on"
                        + (" (exactly two distinct words)" if kind == "swap-words" else ""))
    if problem is not None:
        st.error(problem, icon=":material/error:")
        state.add_notice(problem)
        return []
    return seeded


def _intervention(view: dict, split, models) -> tuple[str | None, int, int]:
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
    rule = target_rule(kind)
    if rule is None:
        if view["targets"] or view["tkind"]:  # targets belong to a targeted kind only
            view["targets"], view["tkind"] = "", ""
            st.session_state.pop(TARGETS_KEY, None)
    else:
        matcher = models[0].matcher if models else None
        session = models[0].session[0] if models else None
        picked = _targets(kind, _target_options(split, matcher, view), session, view)
        if len(picked) < rule.min_count:
            if not (view["targets"] and picked == []):
                st.caption(f"Pick {'two words' if rule.min_count == 2 else 'at least one target'} for {kind}.")
            spec = None
        else:
            spec = f"{kind}={','.join(str(i) for i in picked)}"
    return spec, int(samples), int(seed)


def _load_models(view: dict, split) -> list[state.Model]:
    models = []
    for name, label in (("ckpt", "A"), ("ckpt2", "B")):
        value = view[name].strip()
        if not value:
            continue
        path = state.load_checkpoint_place(value)  # CheckpointError "not allowed" outside the roots
        session = results.open_session(str(path), split)
        models.append(state.Model(label=f"{label}: {path.name}", path=path,
                                  matcher=session[0].matcher, session=session))
    if not models:
        from causmatch.errors import CheckpointError
        raise CheckpointError("no checkpoint chosen — enter a checkpoint folder in the sidebar "
                              "(or train the demo ones: see the README)")
    return models


def draw() -> None:
    """Draw the sidebar and store the run's context (or the error that stopped loading it)."""
    view = state.view()
    split, models = None, []
    with st.sidebar:
        st.subheader("Data and checkpoints")
        roots = state.roots().labels()
        _text("Dataset folder", "data", f"a dataset folder (SCAN *_precomp layout) inside a root ({roots}), "
              "e.g. assets/data/scenes; empty: the demo scenes", placeholder="demo: assets/data/scenes")
        options, found = _splits(view)
        st.selectbox("Split", options, key=state.widget_key("split", lambda v: v in options, options[0]),
                     format_func=lambda s: s if found is None or s in found else f"{s[:40]} (not allowed)")
        _text("Checkpoint", "ckpt", f"a checkpoint folder (config.json + model.safetensors) inside a root ({roots})")
        _text("Second checkpoint (optional)", "ckpt2", "compared with the first on Compare and Failure cases")
        try:
            split = state.load_data(view["data"], view["split"])
            models = _load_models(view, split)
        except Exception as exc:  # noqa: BLE001 — shown here and by the page's error panel
            st.error(error_message(exc, redact=state.roots().redact))
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
