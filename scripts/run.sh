#!/usr/bin/env bash
# Set up (idempotent) and start Diffusion Canvas on the built-in model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export OMP_WAIT_POLICY=PASSIVE HF_HUB_OFFLINE=1
exec .venv/bin/diffusion-canvas "$@"
