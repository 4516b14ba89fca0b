"""The Engine: loads one model once and runs jobs on it (text-to-image, image-to-image, inpaint),
with throttled previews, cancel within one step, paint-with-words and reproducible seeds.

Used from one thread at a time (the app's engine thread, or the CLI).
"""

from __future__ import annotations

import contextlib
import gc
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from desktop_app.document.job import (
    EngineError,
    JobCancelled,
    JobRequest,
    JobResult,
    Preview,
    RequestError,
)
from desktop_app.document.model_info import ModelInfo
from desktop_app.document.vocabulary import unknown_words_warning
from desktop_app.engine import jobs, loading, previews, samplers

PIPELINES = {
    "sdxl": ("StableDiffusionXLPipeline", "StableDiffusionXLImg2ImgPipeline",
             "StableDiffusionXLInpaintPipeline"),
    "sd": ("StableDiffusionPipeline", "StableDiffusionImg2ImgPipeline",
           "StableDiffusionInpaintPipeline"),
}


class Engine:
    def __init__(self, device: str = "auto", dtype: str = "auto") -> None:
        self.device, self.dtype = loading.choose_device(device, dtype)
        loading.quiet_libraries()
        self.preview_max_per_second = previews.MAX_PER_SECOND  # 0 = every step (tests)
        self.taesd_path: Path | None = None  # a local AutoencoderTiny folder for previews
        # Single files take their architecture configs from engine/configs/ unless this names a
        # diffusers folder of the same architecture to use instead.
        self.single_file_config: Path | None = None
        self._model: loading.LoadedModel | None = None
        self._info: ModelInfo | None = None
        self._pipes: dict[str, object] = {}
        self._projector: Callable | None = None

    @property
    def model_info(self) -> ModelInfo | None:
        return self._info

    def load(self, path: str | os.PathLike | None = None) -> ModelInfo:
        """Load a diffusers folder or .safetensors file; None = the built-in model."""
        target = Path(path).expanduser() if path is not None else loading.builtin_path()
        if path is None and not target.exists():
            raise EngineError(
                f"the built-in model is not installed at {target}; set DC_MODEL or choose a "
                "model folder / .safetensors file")
        resolved = loading.resolve(target)
        if self._model is not None and self._model.path == resolved:
            return self._info
        loading.check_model(resolved)
        folder = resolved if resolved.is_dir() else None
        # A broken defaults file keeps the loaded model.
        default_cfg, default_strength = loading.recommended_defaults(folder)
        vocabulary = loading.model_vocabulary(folder)
        self._unload()  # before loading: two models at once may not fit in memory
        model = loading.load_model(resolved, self.device, self.dtype,
                                   self.single_file_config)
        projector = self._make_projector(model)
        self._model, self._projector = model, projector
        self._pipes = {"base": model.pipe}
        unet_cfg = model.pipe.unet.config
        self._info = ModelInfo(
            name=target.name, path=str(target), family=model.family, device=self.device.type,
            dtype=str(self.dtype).removeprefix("torch."),
            inpaint_channels=9 if unet_cfg.in_channels == 9 else 4,
            default_size=_trained_size(unet_cfg.sample_size, model.pipe.vae_scale_factor),
            samplers=samplers.available(dict(model.pipe.scheduler.config), unet_cfg),
            preview=self._projector.kind, default_cfg=default_cfg,
            default_region_strength=default_strength, vocabulary=vocabulary,
        )
        return self._info

    def _unload(self) -> None:
        self._model, self._info, self._pipes, self._projector = None, None, {}, None
        _free_memory()

    def _make_projector(self, model: loading.LoadedModel):
        for folder in (self.taesd_path, model.folder / "taesd" if model.folder else None):
            if folder is not None and folder.is_dir():
                taesd = previews.load_taesd(folder, self.device, self.dtype)
                if taesd is not None:
                    return taesd
        return previews.latent_rgb_for(model.family, model.folder)

    def run(self, request: JobRequest, job_id: int = 0,
            on_preview: Callable[[Preview], None] | None = None,
            cancel: threading.Event | None = None,
            attention_maps: bool = False) -> JobResult:
        if self._model is None:
            raise EngineError("no model is loaded: load one first")
        request.validate()
        cancel = cancel if cancel is not None else threading.Event()
        if cancel.is_set():
            raise JobCancelled()
        start = time.perf_counter()
        warnings: list[str] = []
        try:
            image, adherence = self._run(request, job_id, on_preview, cancel, attention_maps,
                                         warnings)
        except (JobCancelled, EngineError, RequestError):
            raise
        except Exception as e:
            if not _is_oom(e):
                raise
            _free_memory()
            raise EngineError(
                f"out of memory at {request.width}x{request.height} on {self.device.type}: try a "
                "smaller size, 'inpaint only masked', fewer steps or regions, or the CPU device "
                "(memory has been freed)") from e
        return JobResult(job_id=job_id, request=request, image=image,
                         elapsed=time.perf_counter() - start, model_name=self._info.name,
                         warnings=tuple(warnings), region_adherence=tuple(adherence))

    def _run(self, request, job_id, on_preview, cancel, attention_maps, warnings):
        work = jobs.plan(request, self._info.inpaint_channels, self._info.default_size)
        pipe = self._pipeline(work.pipeline)
        pipe.scheduler = samplers.make_scheduler(
            request.sampler, dict(self._model.pipe.scheduler.config), pipe.unet.config)
        warnings.extend(self._truncation_warnings(request))
        if note := unknown_words_warning(request.prompt, self._info.vocabulary):
            warnings.append(note)
        pww = self._paint_with_words(pipe, request, work, attention_maps)
        sender = previews.PreviewSender(
            job_id, self._projector, on_preview,
            attention=pww.attention_maps if (pww is not None and attention_maps) else None,
            max_per_second=self.preview_max_per_second)
        samplers.install_hooks(pipe.scheduler, sender.capture,
                               pww.set_sigma if pww is not None else None)
        cancelled = False

        def on_step_end(p, i, t, tensors):
            nonlocal cancelled
            if cancel.is_set():
                cancelled = True
                p._interrupt = True  # the loop skips the remaining steps
            else:
                sender.step_done(i + 1, p.num_timesteps)
            return tensors

        with pww if pww is not None else contextlib.nullcontext():
            latents = pipe(**self._call_args(request, work), callback_on_step_end=on_step_end,
                           callback_on_step_end_tensor_inputs=["latents"],
                           output_type="latent").images
        if cancelled or cancel.is_set():
            raise JobCancelled()
        generated = self._decode(pipe, latents)
        if cancel.is_set():  # cancelled during the (long, on CPU) decode: still deliver nothing
            raise JobCancelled()
        adherence = list(pww.adherence()) if pww is not None and request.regions else []
        if pww is not None:
            warnings.extend(pww.warnings)
        return jobs.finish(request, work, generated), adherence

    def _pipeline(self, kind: str):
        if kind not in self._pipes:
            import diffusers

            names = PIPELINES["sdxl" if self._model.family == "sdxl" else "sd"]
            cls = getattr(diffusers, names[("txt2img", "img2img", "inpaint").index(kind)])
            pipe = cls.from_pipe(self._model.pipe)
            pipe.set_progress_bar_config(disable=True)
            self._pipes[kind] = pipe
        return self._pipes[kind]

    def _call_args(self, request: JobRequest, work: jobs.WorkItem) -> dict:
        from PIL import Image

        args = dict(
            prompt=request.prompt, negative_prompt=request.negative_prompt or None,
            num_inference_steps=request.steps, guidance_scale=request.cfg_scale,
            # A CPU generator gives the same noise on every device: same seed, same image.
            generator=torch.Generator("cpu").manual_seed(int(request.seed)),
        )
        if work.pipeline != "img2img":
            args.update(width=work.width, height=work.height)
        if work.init is not None:
            args.update(image=Image.fromarray(np.ascontiguousarray(work.init)),
                        strength=work.strength)
        if work.mask is not None:
            args["mask_image"] = Image.fromarray((work.mask * 255).astype(np.uint8))
        return args

    def _truncation_warnings(self, request: JobRequest) -> list[str]:
        out = []
        for tok in loading.tokenizers_of(self._model.pipe)[:1]:  # both SDXL tokenizers agree
            limit = tok.model_max_length
            for label, text in (("prompt", request.prompt),
                                ("negative prompt", request.negative_prompt)):
                n = len(tok(text, truncation=False).input_ids) if text else 0
                if n > limit:
                    out.append(f"{label} is {n} tokens; the model reads only the first {limit}, "
                               "the rest was ignored")
        return out

    def _paint_with_words(self, pipe, request: JobRequest, work: jobs.WorkItem, collect: bool):
        if not (work.regions or collect):
            return None
        try:
            from desktop_app.engine.pww import PaintWithWords
        except ImportError as e:
            raise EngineError(f"paint-with-words is unavailable in this build ({e})") from e
        f = pipe.vae_scale_factor
        return PaintWithWords(
            pipe.unet, loading.tokenizers_of(pipe), request.prompt, work.regions,
            latent_hw=(work.height // f, work.width // f), scale=request.pww_scale,
            mode=request.pww_mode, outside=request.pww_outside, collect_attention=collect,
            do_cfg=request.cfg_scale > 1 and pipe.unet.config.time_cond_proj_dim is None,
            local_sigma=request.pww_local_sigma if work.regions else 0.0,
            encode=lambda text: _encode_prompt(pipe, text))

    @torch.no_grad()
    def _decode(self, pipe, latents: torch.Tensor) -> np.ndarray:
        vae = pipe.vae
        cfg = vae.config
        upcast = vae.dtype == torch.float16 and getattr(cfg, "force_upcast", False)
        if upcast:  # SDXL's VAE overflows in fp16
            vae.to(torch.float32)
        try:
            lat = latents.to(next(vae.post_quant_conv.parameters()).dtype)
            if getattr(cfg, "latents_mean", None) is not None and cfg.latents_std is not None:
                mean = torch.tensor(cfg.latents_mean).view(1, -1, 1, 1).to(lat)
                std = torch.tensor(cfg.latents_std).view(1, -1, 1, 1).to(lat)
                lat = lat * std / cfg.scaling_factor + mean
            else:
                lat = lat / cfg.scaling_factor
            image = vae.decode(lat, return_dict=False)[0]
        finally:
            if upcast:
                vae.to(torch.float16)
        image = ((image[0].float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        return np.ascontiguousarray(image.permute(1, 2, 0).numpy())


@torch.no_grad()
def _encode_prompt(pipe, text: str) -> torch.Tensor:
    """The conditional token states the pipeline itself would compute for `text` (both text
    encoders' on SDXL)."""
    return pipe.encode_prompt(prompt=text, device=pipe._execution_device,
                              num_images_per_prompt=1, do_classifier_free_guidance=False)[0]


def _trained_size(sample_size, vae_factor: int) -> int:
    """The side the UNet was trained at, in pixels, rounded to a multiple of 8: configs
    may give [height, width], and a latent side times a VAE factor below 8 may not be one."""
    side = max(sample_size) if isinstance(sample_size, (list, tuple)) else sample_size
    return max(8, round(int(side) * vae_factor / 8) * 8)


def _is_oom(e: BaseException) -> bool:
    oom = getattr(torch, "OutOfMemoryError", None)
    if isinstance(e, MemoryError) or (oom is not None and isinstance(e, oom)):
        return True
    # CUDA says "out of memory"; the CPU allocator says "can't allocate memory".
    text = str(e).lower()
    return isinstance(e, RuntimeError) and ("out of memory" in text
                                            or "can't allocate memory" in text)


def _free_memory() -> None:
    # A full collection on a worker thread can finalize objects owned by another thread (Qt
    # wrappers of the app: seen as a segfault when the app's engine thread reloaded a model).
    # Model weights are freed by reference counting anyway; collect cycles only on the main thread.
    if threading.current_thread() is threading.main_thread():
        gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
