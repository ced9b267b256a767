#!/usr/bin/env bash
# Short sweep of the CausMatch effect-term settings against the SCAN baseline, around configs/scenes.json.
#   bash scripts/sweep_lambda.sh DATA_DIR OUT_DIR [EPOCHS] [CAPTIONS_PER_EPOCH]
# Every run trains from scratch with the same seed, two runs at a time (one CPU thread each); a variant is
# judged by its best DEV rSum (first 200 dev images, logged per epoch) — the test split is not touched.
# Every CausMatch variant names its effect settings in full, so configs/scenes.json's own choice does not
# leak in (effect_margin/effect_violation do not act with effect_loss=xent, nor anything at lambda_eff=0).
# The table goes to OUT_DIR/sweep.md. Each variant is "name|--set ...|--set ...". A variant whose log in
# OUT_DIR already ends with its "best dev rSum" line is not run again (so an interrupted sweep resumes).
# scan-vse0 is a control, not a CausMatch variant: the baseline with summed (VSE0) ranking violations.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
DATA=$1; OUT=$2; EPOCHS=${3:-3}; CAPS=${4:-10000}
export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1
mkdir -p "$OUT"
VARIANTS=(
  "scan|lambda_eff=0"
  "cm-legacy|lambda_eff=1|effect_margin=none|effect_violation=none"
  "cm-m0.05-hardest|lambda_eff=1|effect_margin=0.05|effect_violation=hardest"
  "cm-m0.05-sum|lambda_eff=1|effect_margin=0.05|effect_violation=sum"
  "cm-m0.05-sum-warm1|lambda_eff=1|effect_margin=0.05|effect_violation=sum|effect_warmup_epochs=1"
  "cm-xent-t0.01|lambda_eff=1|effect_loss=xent|effect_temperature=0.01"
  "cm-m0.2-sum|lambda_eff=1|effect_margin=0.2|effect_violation=sum"
  "scan-vse0|lambda_eff=0|max_violation=false"
)
run_one() {  # name, then --set assignments
  local name=$1; shift
  local sets=()
  for a in "$@"; do sets+=(--set "$a"); done
  "$PY" -m causmatch train --data "$DATA" --out "$OUT/ckpt-$name" --config configs/scenes.json --no-progress \
    --set epochs="$EPOCHS" --set captions_per_epoch="$CAPS" "${sets[@]}" > "$OUT/$name.log" 2>&1
}
i=0
for v in "${VARIANTS[@]}"; do
  IFS='|' read -r -a parts <<< "$v"
  grep -q "^best dev rSum" "$OUT/${parts[0]}.log" 2>/dev/null && continue
  run_one "${parts[@]}" &
  i=$((i + 1))
  if (( i % 2 == 0 )); then wait; fi
done
wait
"$PY" - "$OUT" "${VARIANTS[@]}" > "$OUT/sweep.md" <<'PYEOF'
import re, sys
out = sys.argv[1]
print("| run | effect settings | dev rSum per epoch | best dev rSum | train effect matching / non-matching (last epoch) |")
print("|---|---|---|---:|---|")
for v in sys.argv[2:]:
    name, *sets = v.split("|")
    lines = [l for l in open(f"{out}/{name}.log") if l.startswith("epoch ")]
    rsums = [float(re.search(r"rSum ([\d.]+)", l).group(1)) for l in lines]
    eff = re.search(r"effect \+(\S+) -(\S+)", lines[-1])
    print(f"| {name} | {', '.join(sets)} | {' / '.join(f'{r:.1f}' for r in rsums)} | {max(rsums):.1f} | "
          f"{eff.group(1)} / {eff.group(2)} |")
PYEOF
cat "$OUT/sweep.md"
