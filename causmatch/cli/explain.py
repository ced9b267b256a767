"""``causmatch explain``: the causal explanation of one image–caption pair, as JSON on stdout."""
from __future__ import annotations

import argparse
import json
import sys

from causmatch.cli import add_model_data_args

HELP = "explain one pair as JSON: scores, effect with its 95% interval, ranks before/after, per-word effects"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="causmatch explain", description=HELP)
    add_model_data_args(p)
    p.add_argument("--image", type=int, required=True, help="image index in the split")
    q = p.add_mutually_exclusive_group(required=True)
    q.add_argument("--caption", type=int, help="caption index in the split")
    q.add_argument("--text", help="a free-text caption (unknown words are reported)")
    p.add_argument("--intervention", default="random", metavar="KIND",
                   help="random, uniform, reversed, shuffle, mask-regions=0,3, keep-regions=2, mask-words=1, "
                        "swap-words=1,4, none (default random); on a SAF model also filtration:KIND (uniform, "
                        "random, shuffle, mask-words=…, keep-words=…) to edit its filtration weights instead")
    p.add_argument("--samples", type=int, default=8,
                   help="draws of a stochastic intervention, 1..256 (default 8)")
    p.add_argument("--seed", type=int, default=0, help="first seed of the draws (default 0)")
    p.add_argument("--top", type=int, default=5, help="top-k images listed for the caption query, 1..1000 (default 5)")
    p.add_argument("--maps", action="store_true", help="also print the attention maps (factual and counterfactual)")
    p.add_argument("--cache-dir", default=None, help="cache the gallery and similarity matrices here")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    return p


def _report(session, args) -> dict:
    ex = session.explain(args.image, args.caption, text=args.text, intervention=args.intervention,
                         samples=args.samples, seed=args.seed)
    if args.caption is not None:
        rk = session.rank_caption_query(args.caption, args.intervention, samples=args.samples,
                                        seed=args.seed, k=args.top)
    else:
        rk = session.rank_text_query(args.text, args.image, args.intervention, samples=args.samples,
                                     seed=args.seed, k=args.top)
    d = ex.to_dict()
    out = {k: d[k] for k in ("image", "caption", "text", "tokens", "unknown_words", "direction",
                             "intervention", "samples", "score", "cf_score", "effect")}
    out["seed"] = args.seed
    out["effect_interval"] = [d["effect_low"], d["effect_high"]]
    out["word_effects"] = [{"index": j, "token": t, "effect": e}
                           for j, (t, e) in enumerate(zip(d["tokens"], d["word_effects"] or []))]
    out["region_effects"] = d["region_effects"]
    out["similarity"] = d["similarity"]
    if d["filtration"] is not None:  # SAF: how much the score listens to the global match and to each word
        nodes = ["<global>", *d["tokens"]]
        cf = d["cf_filtration"] or [None] * len(nodes)
        out["filtration"] = [{"node": n, "weight": f, "counterfactual": g}
                             for n, f, g in zip(nodes, d["filtration"], cf)]
    # ranks are 1-based here (1 = top), like evaluate's medr
    out["true_image_rank"] = {"factual": rk.rank + 1, "counterfactual": rk.cf_rank + 1,
                              "gallery_size": int(len(rk.scores))}
    out["top"] = {"factual": [{"image": t["item"], "score": t["score"]} for t in rk.top],
                  "counterfactual": [{"image": t["item"], "score": t["cf_score"]} for t in rk.cf_top]}
    if d["grounding"] is not None:
        out["grounding"] = {"pointing": d["grounding"]["pointing"], "energy": d["grounding"]["energy"]}
    if args.maps:
        out["maps"] = {k: d[k] for k in ("t2i", "i2t", "cf_t2i_mean", "cf_i2t_mean") if d[k] is not None}
    return out


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from causmatch.analysis import AnalysisSession
    from causmatch.analysis.effects import check_samples, check_top
    from causmatch.interventions import parse_intervention

    # Bad specs, draws and top-k fail before anything loads; the targets' range is checked against the
    # pair (its words and regions) by the session before any scoring.
    parse_intervention(args.intervention, seed=args.seed)
    check_samples(args.samples)
    check_top(args.top)
    session = AnalysisSession.open(args.checkpoint, args.data, args.split, cache_dir=args.cache_dir,
                                   device=args.device)
    json.dump(_report(session, args), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0
