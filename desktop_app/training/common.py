"""Shared helpers for the training scripts: threads, checkpoints, progress."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

REPO = Path(__file__).resolve().parents[2]
MODEL_DIR = REPO / "models" / "builtin"
# Resumable state lives outside the work tree (a session lays the tree anew); the shipped weights
# in models/ are the fallback warm start when this cache is gone.
CACHE_DIR = Path(os.environ.get("DC_TRAIN_CACHE", Path.home() / ".cache" / "diffusion-canvas-train"))


def setup_threads(n: int | None = None) -> None:
    import torch

    torch.set_num_threads(n or int(os.environ.get("DC_THREADS", "2")))


class Progress:
    """One status line on stderr, rewritten at most once a second."""

    def __init__(self, total: int, label: str) -> None:
        self.total, self.label, self.t0, self.last = total, label, time.time(), 0.0
        self.first: int | None = None  # a resumed run starts counting where it resumed

    def update(self, step: int, **values: float) -> None:
        now = time.time()
        if self.first is None:
            self.first, self.t0 = step, now
        if now - self.last < 1.0 and step < self.total:
            return
        self.last = now
        rate = (step - self.first) / max(now - self.t0, 1e-6)
        vals = " ".join(f"{k}={v:.4g}" for k, v in values.items())
        print(f"\r{self.label} {step}/{self.total} {rate:.2f} it/s {vals}   ", end="",
              file=sys.stderr, flush=True)


def log(msg: str, path: Path | None = None) -> None:
    line = time.strftime("%H:%M:%S ") + msg
    print(line, flush=True)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as f:
            f.write(line + "\n")
