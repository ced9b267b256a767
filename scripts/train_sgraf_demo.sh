#!/usr/bin/env bash
# The SGRAF demo checkpoints, trained and evaluated exactly as the bias sweep's runs at bias 0.9
# (docs/results.md, "SGRAF (SGR) beside SCAN"): the sweep's data (5,000 train / 1,000 dev images at bias 0.9,
# the shared test split, which is byte-identical to the default scenes test split), its 3-epoch schedule from
# configs/scenes.json, seeds 0, 1, 2 (the SCAN sweep's), and SGRAF's SGR head at the demo's sizes
# (model.similarity=sgr, sim_dim 64 at embed 256, sgr_step 3, num_region 12: the scenes images' region slots):
#   checkpoints/sgr-scenes            the fair baseline (SCAN's ranking loss with VSE++'s one-epoch warm-up)
#   checkpoints/causmatch-sgr-scenes  CausMatch on SGR with the same warm-up (the demo's effect-term settings)
# Each is seed DEMO_SEED's (default 0) best checkpoint by dev rSum (its resume state left out), swapped in by a
# rename only when every run and evaluation succeeded. Runs resume from runs/bias_sweep/runs/.
# Usage: bash scripts/train_sgraf_demo.sh        (SEEDS=0 for one seed; DEMO_SEED=N for another demo seed)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
SEEDS=${SEEDS:-0,1,2}
DEMO_SEED=${DEMO_SEED:-0}
export HF_HUB_OFFLINE=1
"$PY" scripts/bias_sweep.py --biases 0.9 --seeds "$SEEDS" --models sgr-warmup,causmatch-sgr-warmup \
  --results runs/bias_sweep/results-sgr
mkdir -p checkpoints
# Refuse before replacing anything: a missing run (DEMO_SEED not trained) or a destination holding files that
# are not a checkpoint this script writes (config.json and model.safetensors only) — those are someone's own.
for pair in "sgr-warmup:sgr-scenes" "causmatch-sgr-warmup:causmatch-sgr-scenes"; do
  run="runs/bias_sweep/runs/${pair%%:*}-b0.9-s$DEMO_SEED"; dest="checkpoints/${pair##*:}"
  [ -f "$run/model.safetensors" ] || { echo "error: no trained run $run — is DEMO_SEED=$DEMO_SEED in SEEDS?" >&2; exit 2; }
  if [ -e "$dest" ]; then
    extra=$(find "$dest" -mindepth 1 ! -name config.json ! -name model.safetensors | head -1)
    [ -z "$extra" ] && [ -d "$dest" ] || { echo "error: $dest holds files this script did not write ($extra); move them away first" >&2; exit 2; }
  fi
done
for pair in "sgr-warmup:sgr-scenes" "causmatch-sgr-warmup:causmatch-sgr-scenes"; do
  run="runs/bias_sweep/runs/${pair%%:*}-b0.9-s$DEMO_SEED"; dest="checkpoints/${pair##*:}"
  new="checkpoints/.${pair##*:}.new"; old="checkpoints/.${pair##*:}.old"
  rm -rf "$new" "$old"
  mkdir "$new"
  cp "$run/config.json" "$run/model.safetensors" "$new/"
  [ -e "$dest" ] && mv "$dest" "$old"
  mv "$new" "$dest"
  rm -rf "$old"
done
du -sh checkpoints/sgr-scenes checkpoints/causmatch-sgr-scenes
