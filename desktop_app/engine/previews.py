"""Cheap per-step previews: the predicted x0 projected to RGB with a 4x3 matrix (or decoded by a
local TAESD when the user has one), throttled, tagged with job id and step. The full VAE decode is
kept for the final image only: on CPU it costs as much as a UNet step."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from desktop_app.document.job import EngineError, Preview

log = logging.getLogger(__name__)

# RGB = latent^T . M + b, in [-1, 1], for latents in the UNet's (scaled) space. Public factors
# (ComfyUI latent_formats.py), see FACTS.md.
SD1_MATRIX = [[0.3512, 0.2297, 0.3227], [0.3250, 0.4974, 0.2350],
              [-0.2829, 0.1762, 0.2721], [-0.2120, -0.2616, -0.7177]]
SDXL_MATRIX = [[0.3651, 0.4232, 0.4341], [-0.2533, -0.0042, 0.1068],
               [0.1076, 0.1111, -0.0362], [-0.3165, -0.2492, -0.2188]]
SDXL_BIAS = [0.1084, -0.0175, -0.0011]
MAX_PER_SECOND = 10.0


class LatentRGB:
    """Projects latents with a fixed channels x 3 matrix."""

    kind = "latent_rgb"

    def __init__(self, matrix, bias=(0.0, 0.0, 0.0)) -> None:
        self.matrix = torch.tensor(matrix, dtype=torch.float32)
        self.bias = torch.tensor(bias, dtype=torch.float32)
        if self.matrix.ndim != 2 or self.matrix.shape[1] != 3 or self.bias.shape != (3,):
            raise ValueError(f"latent->RGB matrix must be Cx3 with a bias of 3, "
                             f"got {tuple(self.matrix.shape)} and {tuple(self.bias.shape)}")

    def __call__(self, x0: torch.Tensor) -> np.ndarray:
        lat = x0[0].detach().float().cpu()  # C x h x w
        if lat.shape[0] != self.matrix.shape[0]:
            rgb = lat.mean(0, keepdim=True).expand(3, -1, -1).permute(1, 2, 0)
        else:
            rgb = torch.einsum("chw,cr->hwr", lat, self.matrix) + self.bias
        return _to_uint8(rgb)


class TinyVAE:
    """Decodes latents with a local TAESD (diffusers AutoencoderTiny): sharper, still cheap."""

    kind = "taesd"

    def __init__(self, vae) -> None:
        self.vae = vae

    @torch.no_grad()
    def __call__(self, x0: torch.Tensor) -> np.ndarray:
        p = next(self.vae.parameters())
        img = self.vae.decode(x0[:1].to(p.device, p.dtype) / self.vae.config.scaling_factor)[0]
        return _to_uint8(img[0].float().cpu().permute(1, 2, 0))


def _to_uint8(rgb: torch.Tensor) -> np.ndarray:
    """h x w x 3 in [-1, 1] -> uint8."""
    out = ((rgb.clamp(-1.0, 1.0) + 1.0) * 127.5).round().to(torch.uint8)
    return np.ascontiguousarray(out.numpy())


def latent_rgb_for(family: str, folder: Path | None):
    """The built-in model ships latent_rgb.json; SD1/SD2 and SDXL use public factors."""
    path = folder / "latent_rgb.json" if folder is not None else None
    if path is not None and path.is_file():
        try:
            data = json.loads(path.read_text())
            return LatentRGB(data["matrix"], data.get("bias", (0.0, 0.0, 0.0)))
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as e:
            raise EngineError(f"{path}: not a valid latent->RGB file: expected "
                              '{"matrix": 4x3 numbers, "bias": 3 numbers} '
                              f"({type(e).__name__}: {e})") from e
    if family == "sdxl":
        return LatentRGB(SDXL_MATRIX, SDXL_BIAS)
    return LatentRGB(SD1_MATRIX)


def load_taesd(folder: Path, device, dtype):
    """AutoencoderTiny from a local folder, or None when there is none (never from a hub)."""
    if not (folder / "config.json").is_file():
        return None
    from diffusers import AutoencoderTiny

    try:
        vae = AutoencoderTiny.from_pretrained(folder, local_files_only=True, use_safetensors=True)
    except Exception as e:  # previews are optional: keep the cheap projection and say why
        log.warning("%s: TAESD not usable for previews (%s); using the latent projection",
                    folder, e)
        return None
    return TinyVAE(vae.to(device=device, dtype=dtype).eval())


class PreviewSender:
    """Turns each step's x0 into a Preview, at most MAX_PER_SECOND, always the last step."""

    def __init__(self, job_id: int, project: Callable[[torch.Tensor], np.ndarray],
                 on_preview: Callable[[Preview], None] | None,
                 attention: Callable[[], dict[str, np.ndarray]] | None = None,
                 max_per_second: float = MAX_PER_SECOND) -> None:
        self.job_id = job_id
        self.project = project
        self.on_preview = on_preview
        self.attention = attention
        self.interval = 1.0 / max_per_second if max_per_second > 0 else 0.0
        self.last_sent = -float("inf")
        self.x0: torch.Tensor | None = None

    def capture(self, x0: torch.Tensor | None) -> None:
        self.x0 = x0

    def step_done(self, step: int, total: int) -> None:
        if self.on_preview is None or self.x0 is None:
            return
        now = time.monotonic()
        if step < total and now - self.last_sent < self.interval:
            return
        self.last_sent = now
        attention = self.attention() if self.attention is not None else None
        self.on_preview(Preview(job_id=self.job_id, step=step, total=total,
                                image=self.project(self.x0), attention=attention))
