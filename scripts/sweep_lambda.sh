#!/usr/bin/env bash
# Small sweep of lambda_eff and the counterfactual kind around configs/scenes.json.
#   bash scripts/sweep_lambda.sh DATA_DIR DEVICE OUT_DIR [EPOCHS]
# Each run trains from scratch (same seed) and is evaluated on the full test split; the
# summary table goes to OUT_DIR/sweep.md, every result to OUT_DIR/<run>.json.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
DATA=$1; DEVICE=$2; OUT=$3; EPOCHS=${4:-5}
mkdir -p "$OUT"
RUNS="lam0-random:0:random lam0.1-random:0.1:random lam0.3-random:0.3:random lam1-random:1:random
      lam0.3-uniform:0.3:uniform lam1-uniform:1:uniform lam1-reversed:1:reversed lam1-shuffle:1:shuffle"
for run in $RUNS; do
  IFS=: read -r name lam kind <<< "$run"
  "$PY" -m causmatch train --data "$DATA" --out "$OUT/ckpt-$name" --config configs/scenes.json --device "$DEVICE" \
    --set lambda_eff="$lam" --set counterfactual="$kind" --set epochs="$EPOCHS" --set amp=off --no-progress \
    > "$OUT/$name.log" 2>&1
  "$PY" -m causmatch evaluate --checkpoint "$OUT/ckpt-$name" --data "$DATA" --split test --device "$DEVICE" \
    --intervention "$kind" --json "$OUT/$name.json" >> "$OUT/$name.log" 2>&1
done
"$PY" - "$OUT" $RUNS > "$OUT/sweep.md" <<'PYEOF'
import json, sys
out = sys.argv[1]
print("| run | λ_eff | counterfactual | test i2t R@1 | t2i R@1 | rSum | grounding % | effect matching / non-matching |")
print("|---|---:|---|---:|---:|---:|---:|---|")
for run in sys.argv[2:]:
    name, lam, kind = run.split(":")
    r = json.load(open(f"{out}/{name}.json"))
    m, e, g = r["factual_metrics"], r["effect"], r["grounding"]
    print(f"| {name} | {lam} | {kind} | {m['i2t_r1']:.2f} | {m['t2i_r1']:.2f} | {m['rsum']:.2f} | "
          f"{g['overall']:.2f} | {e['matching']:.4f} / {e['non_matching']:.4f} |")
PYEOF
cat "$OUT/sweep.md"
