"""What the loaded model is, as plain data the UI can show (no torch)."""

from __future__ import annotations

from dataclasses import dataclass

FAMILIES = ("sd1", "sd2", "sdxl", "builtin")
# The guidance scale for a model that recommends none: Stable Diffusion's customary value.
GENERIC_CFG = 7.5
# A new paint-with-words region's strength when the model recommends none (eDiff-I's w = 1).
GENERIC_REGION_STRENGTH = 1.0


@dataclass(frozen=True)
class ModelInfo:
    name: str  # folder or file name, for display and metadata
    path: str
    family: str  # one of FAMILIES
    device: str  # "cpu", "cuda", "mps"
    dtype: str  # "float32", "float16", ...
    inpaint_channels: int  # 4 = latent blending, 9 = a dedicated inpainting UNet
    default_size: int  # the side the model was trained at, in pixels
    samplers: tuple[str, ...] = ()  # the samplers this model can run
    preview: str = "latent_rgb"  # "latent_rgb" or "taesd"
    default_cfg: float | None = None  # the guidance scale the model recommends, if it says
    default_region_strength: float | None = None  # paint-with-words strength it recommends
    vocabulary: frozenset[str] | None = None  # every word its training captions used, if it says

    def cfg_scale(self) -> float:
        """The guidance scale to start from on this model."""
        return GENERIC_CFG if self.default_cfg is None else self.default_cfg

    def region_strength(self) -> float:
        """The strength a new paint-with-words region starts at on this model."""
        if self.default_region_strength is None:
            return GENERIC_REGION_STRENGTH
        return self.default_region_strength


def region_strength_for(info: object) -> float:
    """The strength new paint-with-words regions get with the loaded model `info` (a ModelInfo,
    or anything else: then the generic strength)."""
    strength = getattr(info, "region_strength", None)
    return float(strength()) if callable(strength) else GENERIC_REGION_STRENGTH
