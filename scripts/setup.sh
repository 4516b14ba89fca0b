#!/usr/bin/env bash
# Idempotent set-up: a local venv in .venv with torch (CPU build, pinned) and the project.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
stamp=.venv/.installed-$(cat pyproject.toml | sha1sum | cut -c1-12)
if [ ! -f "$stamp" ]; then
    .venv/bin/python -m pip install --quiet --upgrade pip
    # torch first: a plain torch requirement would pull a multi-GB CUDA build. Here pip's own
    # configuration finds a CPU wheel; TORCH_INDEX_URL (e.g. https://download.pytorch.org/whl/cpu)
    # picks the index for torch alone where it would not.
    .venv/bin/python -m pip install --quiet ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} torch==2.13.0
    .venv/bin/python -m pip install --quiet -e ".[dev]"
    rm -f .venv/.installed-*
    touch "$stamp"
fi
