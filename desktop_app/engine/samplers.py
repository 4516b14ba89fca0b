"""Sampler names (document.job.SAMPLERS) -> diffusers schedulers, and per-step hooks that read
the predicted x0 and the noise level without changing any number the sampler computes."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

from desktop_app.document.job import SAMPLERS, RequestError

ZERO_SNR_ALPHA_BAR = 2.0 ** -24  # what diffusers' Euler and DPM-Solver put in place of 0


def supports_lcm(scheduler_config: dict, unet_config: Any) -> bool:
    """LCM only makes sense on a consistency-distilled model: one that ships an LCM scheduler or
    whose UNet takes a guidance embedding (time_cond_proj_dim)."""
    return (scheduler_config.get("_class_name") == "LCMScheduler"
            or getattr(unet_config, "time_cond_proj_dim", None) is not None)


def available(scheduler_config: dict, unet_config: Any) -> tuple[str, ...]:
    return tuple(s for s in SAMPLERS
                 if s != "lcm" or supports_lcm(scheduler_config, unet_config))


def make_scheduler(name: str, scheduler_config: dict, unet_config: Any):
    """A fresh scheduler for one job, built from the model's own scheduler config (keeps its beta
    schedule and prediction type)."""
    import diffusers

    if name == "lcm" and not supports_lcm(scheduler_config, unet_config):
        raise RequestError("the LCM sampler needs an LCM-distilled model; this model supports "
                           + ", ".join(available(scheduler_config, unet_config)))
    cfg = dict(scheduler_config)
    if name == "euler":
        return diffusers.EulerDiscreteScheduler.from_config(cfg)
    if name == "euler_a":
        return diffusers.EulerAncestralDiscreteScheduler.from_config(cfg)
    if name == "ddim":
        # DDIM's own default clips the predicted x0 to [-1, 1], a pixel-space habit that wrecks
        # latents (scaled to unit variance, routinely beyond 1). Configs written for another
        # scheduler (Euler here) do not mention it, so say what latent diffusion means.
        cfg.setdefault("clip_sample", False)
        return diffusers.DDIMScheduler.from_config(cfg)
    if name == "dpmpp_2m":
        return diffusers.DPMSolverMultistepScheduler.from_config(
            cfg, algorithm_type="dpmsolver++", solver_order=2)
    if name == "lcm":
        return diffusers.LCMScheduler.from_config(cfg)
    raise RequestError(f"unknown sampler {name!r}; choose one of {', '.join(SAMPLERS)}")


def sigma_at(scheduler, timestep) -> float:
    """The noise level sigma = sqrt((1 - alpha_bar) / alpha_bar) the UNet sees at `timestep`.

    Schedulers that keep their own sigmas (Euler, Euler a, DPM-Solver) are asked for the sigma
    of this step, so Karras spacing and continuous timesteps (Euler with timestep_type
    "continuous" passes 0.25·log σ, not a 0-999 index) read right. Others (DDIM, LCM) hold
    discrete timesteps, read off alphas_cumprod. A zero-terminal-SNR schedule ("ztsnr"
    v-prediction models) has alpha_bar = 0 at its last timestep, where DDIM and LCM start: it is
    read as diffusers' Euler and DPM-Solver read it, 2**-24 (sigma 4096)."""
    own = _own_sigma(scheduler, float(timestep))
    if own is not None:
        return own
    alphas = scheduler.alphas_cumprod
    t = int(round(float(timestep)))
    t = min(max(t, 0), len(alphas) - 1)
    a = max(float(alphas[t]), ZERO_SNR_ALPHA_BAR)
    return math.sqrt((1.0 - a) / a)


def _own_sigma(scheduler, timestep: float) -> float | None:
    """The scheduler's own sigma for the step whose timestep this is, or None if it keeps none."""
    sigmas, timesteps = getattr(scheduler, "sigmas", None), getattr(scheduler, "timesteps", None)
    if sigmas is None or timesteps is None or len(timesteps) == 0 or len(sigmas) < len(timesteps):
        return None
    # The step in progress (or, before the first step, where it begins) when it matches this
    # timestep; otherwise the nearest timestep (repeated timesteps share a sigma to rounding).
    index = getattr(scheduler, "step_index", None)
    if index is None:
        index = getattr(scheduler, "begin_index", None)
    if index is None or not 0 <= index < len(timesteps) \
            or abs(float(timesteps[index]) - timestep) > 1e-4 * max(1.0, abs(timestep)):
        index = int((timesteps.float() - timestep).abs().argmin()) if hasattr(timesteps, "float") \
            else min(range(len(timesteps)), key=lambda i: abs(float(timesteps[i]) - timestep))
    sigma = float(sigmas[index])
    return sigma if math.isfinite(sigma) and sigma >= 0 else None


def _x0_of(scheduler, output):
    """The predicted clean latents of the step just taken."""
    if isinstance(output, tuple):
        if len(output) > 1:
            return output[1]  # pred_original_sample (Euler, Euler a, DDIM) or denoised (LCM)
    else:
        for attr in ("pred_original_sample", "denoised"):
            if getattr(output, attr, None) is not None:
                return getattr(output, attr)
    # DPM-Solver++ converts the model output to x0 and keeps it as the newest model output.
    outputs = getattr(scheduler, "model_outputs", None)
    if outputs and outputs[-1] is not None:
        return outputs[-1]
    return None


def install_hooks(scheduler, on_x0: Callable[[Any], None],
                  on_sigma: Callable[[float], None] | None = None) -> None:
    """Wrap this scheduler instance's step (to read x0) and scale_model_input (called right before
    every UNet call, so the sigma passed on is the one the UNet is about to see)."""
    step, scale = scheduler.step, scheduler.scale_model_input

    # functools.wraps keeps the signature visible: pipelines inspect it to decide whether to
    # pass `generator` (ancestral noise) and `eta`; hiding it would make Euler a unseeded.
    @functools.wraps(step)
    def hooked_step(*args, **kwargs):
        out = step(*args, **kwargs)
        on_x0(_x0_of(scheduler, out))
        return out

    @functools.wraps(scale)
    def hooked_scale(sample, timestep=None, *args, **kwargs):
        if on_sigma is not None and timestep is not None:
            on_sigma(sigma_at(scheduler, timestep))
        return scale(sample, timestep, *args, **kwargs)

    scheduler.step = hooked_step
    scheduler.scale_model_input = hooked_scale
