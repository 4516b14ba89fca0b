"""A scripted stand-in for desktop_app.engine.Engine (same API) for UI tests, screenshots and the
UI bench: no ML, deterministic images, previews every step, cancel honoured between steps, failures
on demand, and an optional gate so a test can hold a job at a given step."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from desktop_app.document.job import (
    EngineError,
    JobCancelled,
    JobKind,
    JobRequest,
    JobResult,
    Preview,
)

try:  # the engine helper's plain-data ModelInfo, when it exists
    from desktop_app.document.model_info import ModelInfo as _ModelInfo
except ImportError:  # pragma: no cover - until model_info.py lands
    _ModelInfo = None


@dataclass(frozen=True)
class FakeModelInfo:
    name: str = "fake-model"
    path: str = ""
    family: str = "builtin"
    device: str = "cpu"
    dtype: str = "float32"
    inpaint_channels: int = 9
    default_size: int = 256


def _model_info(name: str, path: str, device: str, default_cfg: float | None = None,
                default_region_strength: float | None = None,
                vocabulary: frozenset[str] | None = None):
    if _ModelInfo is not None:
        try:
            return _ModelInfo(name=name, path=path, family="builtin", device=device,
                              dtype="float32", inpaint_channels=9, default_size=256,
                              default_cfg=default_cfg,
                              default_region_strength=default_region_strength,
                              vocabulary=vocabulary)
        except TypeError:
            pass
    return FakeModelInfo(name=name, path=path, device=device)


def fake_image(request: JobRequest, seed_offset: int = 0) -> np.ndarray:
    """A deterministic image from the seed; keeps unmasked pixels for inpaint like the real one."""
    rng = np.random.default_rng(request.seed + seed_offset)
    colour = rng.integers(40, 216, size=3)
    h, w = request.height, request.width
    ys = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
    xs = np.linspace(0.0, 1.0, w, dtype=np.float32)[None, :, None]
    img = colour[None, None, :] * (0.6 + 0.4 * ys) + 40.0 * xs
    img = np.clip(img, 0, 255).astype(np.uint8)
    if request.kind is JobKind.INPAINT and request.init_image is not None:
        m = (request.mask > 0)[..., None]
        img = np.where(m, img, request.init_image)
    elif request.kind is JobKind.IMAGE_TO_IMAGE and request.init_image is not None:
        s = request.strength
        img = (s * img + (1 - s) * request.init_image).astype(np.uint8)
    return img


class FakeEngine:
    def __init__(self, device: str = "auto", dtype: str = "auto", *, step_time: float = 0.0,
                 fail_load: str | None = None, fail_at_step: int | None = None,
                 fail_message: str = "fake engine failure", crash: bool = False,
                 gate: threading.Semaphore | None = None, attention_words: tuple[str, ...] = (),
                 preview_size: int | None = 32,
                 on_step: Callable[[int, int], None] | None = None,
                 default_cfg: float | None = None,
                 default_region_strength: float | None = None,
                 vocabulary: frozenset[str] | None = None,
                 load_gate: threading.Event | None = None) -> None:
        self.default_cfg = default_cfg  # what the next loaded model recommends
        self.default_region_strength = default_region_strength
        self.vocabulary = vocabulary
        self.device = "cpu" if device == "auto" else device
        self.step_time = step_time
        self.fail_load = fail_load
        self.fail_at_step = fail_at_step
        self.fail_message = fail_message
        self.crash = crash  # raise a non-EngineError exception (a bug in the engine)
        self.gate = gate  # each step acquires it: tests release steps one by one
        self.load_gate = load_gate  # a load waits for it: tests act while a model loads
        self.attention_words = attention_words
        self.preview_size = preview_size
        self.on_step = on_step
        self.loads: list[object] = []
        self.requests: list[JobRequest] = []
        self.threads: set[str] = set()
        self._info = None

    @property
    def model_info(self):
        return self._info

    def load(self, path=None):
        self.threads.add(threading.current_thread().name)
        self.loads.append(path)
        if self.load_gate is not None:
            self.load_gate.wait(10)
        if self.fail_load:
            raise EngineError(self.fail_load)
        name = "built-in (fake)" if path is None else str(path).rstrip("/").split("/")[-1]
        self._info = _model_info(name, "" if path is None else str(path), self.device,
                                 self.default_cfg, self.default_region_strength, self.vocabulary)
        return self._info

    def _preview(self, job_id: int, step: int, total: int, final: np.ndarray) -> Preview:
        t = step / total
        img = (final.astype(np.float32) * t + 128.0 * (1 - t)).astype(np.uint8)
        if self.preview_size:  # real previews are latent-sized: smaller than the request
            sy = max(1, img.shape[0] // self.preview_size)
            sx = max(1, img.shape[1] // self.preview_size)
            img = np.ascontiguousarray(img[::sy, ::sx])
        attention = None
        if self.attention_words:
            h, w = img.shape[:2]
            attention = {}
            for i, word in enumerate(self.attention_words):
                m = np.zeros((h, w), np.float32)
                m[:, i * w // len(self.attention_words):(i + 1) * w // len(self.attention_words)] = 1
                attention[word] = m
        return Preview(job_id, step, total, img, attention)

    def run(self, request: JobRequest, job_id: int = 0, on_preview=None, cancel=None,
            attention_maps: bool = False) -> JobResult:
        self.threads.add(threading.current_thread().name)
        if self._info is None:
            raise EngineError("no model loaded")
        request.validate()
        self.requests.append(request)
        started = time.monotonic()
        final = fake_image(request)
        for step in range(1, request.steps + 1):
            if self.gate is not None:
                while not self.gate.acquire(timeout=0.05):
                    if cancel is not None and cancel.is_set():
                        raise JobCancelled()
            if cancel is not None and cancel.is_set():
                raise JobCancelled()
            if self.step_time:
                time.sleep(self.step_time)
            if self.fail_at_step == step:
                if self.crash:
                    raise RuntimeError(self.fail_message)
                raise EngineError(self.fail_message)
            if self.on_step is not None:
                self.on_step(job_id, step)
            if on_preview is not None:
                on_preview(self._preview(job_id, step, request.steps, final))
        adherence = tuple(0.5 + 0.1 * i for i in range(len(request.regions)))
        return JobResult(job_id=job_id, request=request, image=final,
                         elapsed=time.monotonic() - started, model_name=self._info.name,
                         region_adherence=adherence)
