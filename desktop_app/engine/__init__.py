"""The inference engine (torch/diffusers, no Qt). Import it lazily from the app."""

from __future__ import annotations

import os

# Before torch is imported (every engine submodule imports this package first): spinning OpenMP
# threads made each step 100x slower on a machine shared with another busy process.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__all__ = ["Engine", "ModelInfo"]


def __getattr__(name: str):
    # Resolved on first use so that the line above always runs before torch is imported.
    if name == "Engine":
        from desktop_app.engine.engine import Engine

        return Engine
    if name == "ModelInfo":
        from desktop_app.document.model_info import ModelInfo

        return ModelInfo
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
