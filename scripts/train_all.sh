#!/usr/bin/env bash
# Train the shipped variants — the seven attention and position variants, then the four architecture variants —
# with the same data order, steps, seed and recipe for all (model/training/train.py's defaults).
# Two at a time with one torch thread each: on this 2-core CPU two 1-thread runs make ≈ 2.2 steps/s each, at
# least what one run makes on both cores, and the pair finishes together. JOBS=1 runs them one after another.
# A variant whose checkpoint exists is skipped unless RETRAIN=1; --resume picks up an interrupted run
# (delete checkpoints/NAME/train_state to start one afresh). Logs go to checkpoints/NAME/train.out.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${JOBS:-2}
todo=()
for v in gqa-rope mha-rope mqa-rope gqa-alibi gqa-none gqa-sinusoidal gqa-learned \
         gqa-postnorm gqa-layernorm gqa-gelu gqa-moe; do
  if [ -f "checkpoints/$v/model.safetensors" ] && [ -z "${RETRAIN:-}" ]; then echo "skip $v (exists)"; continue; fi
  todo+=("$v")
done
[ ${#todo[@]} -eq 0 ] && exit 0
printf '%s\n' "${todo[@]}" | xargs -P "$JOBS" -I{} sh -c \
  'mkdir -p checkpoints/{} && .venv/bin/python -m model.training.train --variant {} --resume --threads 1 "$@" > checkpoints/{}/train.out 2>&1 && tail -n 1 checkpoints/{}/train.out' _ "$@"
