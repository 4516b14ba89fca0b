#!/usr/bin/env bash
# Set up (idempotent) and run the whole test suite: lint, architecture contracts, pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export OMP_WAIT_POLICY=PASSIVE HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 QT_QPA_PLATFORM=offscreen
.venv/bin/ruff check desktop_app tests bench scripts
.venv/bin/lint-imports
.venv/bin/python -m pytest -q "$@"
