"""What the loaded model is, as plain data the UI can show (no torch)."""

from __future__ import annotations

from dataclasses import dataclass

FAMILIES = ("sd1", "sd2", "sdxl", "builtin")


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

    def cfg_scale(self, generic: float = 7.5) -> float:
        """The guidance scale to start from on this model."""
        return generic if self.default_cfg is None else self.default_cfg
