#!/usr/bin/env bash
# Train the seven shipped variants one after another (two at once only halve each other on 2 cores).
# Same data order, steps and seed for all; --resume picks up an interrupted run.
set -euo pipefail
cd "$(dirname "$0")/.."
for v in gqa-rope mha-rope mqa-rope gqa-alibi gqa-none gqa-sinusoidal gqa-learned; do
  if [ -f "checkpoints/$v/model.safetensors" ] && [ -z "${RETRAIN:-}" ]; then echo "skip $v (exists)"; continue; fi
  .venv/bin/python -m model.train --variant "$v" --resume "$@"
done
