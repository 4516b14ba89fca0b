"""The engine on its own long-lived thread.

EngineWorker lives on the engine QThread and owns the Engine (created there, lazily, so torch is
imported off the GUI thread and after the window is shown). EngineClient lives on the GUI thread: it
starts jobs by emitting queued signals, re-emits the worker's messages as GUI-thread signals and drops
messages of jobs that are no longer current. Worker signals are connected only to bound methods of
the client (a GUI-thread QObject), never to lambdas, so the slots run on the GUI thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, QThread, Signal, Slot

from desktop_app.app.qt_compat import emit
from desktop_app.document.job import (
    EngineError,
    JobCancelled,
    JobRequest,
    JobResult,
    Preview,
    RequestError,
)

log = logging.getLogger(__name__)
EngineFactory = Callable[[str], Any]  # device -> Engine (the brief's API)
PREVIEW_INTERVAL = 0.1  # seconds: ~10 previews per second is smooth and costs the engine nothing


def default_engine_factory(device: str) -> Any:
    from desktop_app.engine import Engine  # heavy: torch, diffusers; only on the engine thread

    return Engine(device=device)


def describe_error(exc: BaseException) -> str:
    if isinstance(exc, (EngineError, RequestError)):
        return str(exc) or type(exc).__name__
    if isinstance(exc, MemoryError):
        return "out of memory: try a smaller size or fewer steps"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class EngineWorker(QObject):
    model_loaded = Signal(object)  # ModelInfo
    model_failed = Signal(str, object)  # why, the ModelInfo still loaded (None: no model)
    step = Signal(int, int, int)  # job id, step, total: every step, cheap
    preview = Signal(object)  # Preview with a private numpy copy; throttled
    finished = Signal(object)  # JobResult
    failed = Signal(int, str)
    cancelled = Signal(int)

    def __init__(self, engine_factory: EngineFactory, device: str = "auto",
                 preview_interval: float = PREVIEW_INTERVAL) -> None:
        super().__init__()
        self._factory = engine_factory
        self._device = device
        self._engine: Any = None
        self._interval = preview_interval
        self._last_emit = 0.0

    @Slot(object, str)
    def load(self, path: object, device: str) -> None:
        try:
            if self._engine is None or device != self._device:
                # An engine holds no weights until it loads: making it first checks the device,
                # so one that is not there (cuda on a CPU machine) keeps the model loaded.
                engine = self._factory(device)
                # The old weights are freed here, before the new ones need the room.
                self._engine, self._device = engine, device
            info = self._engine.load(path)
        except Exception as exc:  # any failure must reach the user as a message
            if not isinstance(exc, EngineError):
                log.exception("model load failed")
            # A wrong file is refused before the current model is dropped: say which one stays.
            emit(self.model_failed, describe_error(exc), getattr(self._engine, "model_info", None))
            return
        emit(self.model_loaded, info)

    @Slot(int, object, object, bool)
    def run_job(self, job_id: int, request: JobRequest, cancel: threading.Event,
                attention: bool) -> None:
        if cancel.is_set():
            emit(self.cancelled, job_id)
            return
        if self._engine is None:
            emit(self.failed, job_id, "no model is loaded: open a model first")
            return
        self._last_emit = 0.0
        try:
            result = self._engine.run(request, job_id=job_id, on_preview=self._on_preview,
                                      cancel=cancel, attention_maps=attention)
        except JobCancelled:
            emit(self.cancelled, job_id)
            return
        except Exception as exc:  # the engine's failures become messages
            if not isinstance(exc, (EngineError, RequestError)):
                log.exception("job %d failed", job_id)
            emit(self.failed, job_id, describe_error(exc))
            return
        if cancel.is_set():  # cancelled after the last step: a cancelled job delivers nothing
            emit(self.cancelled, job_id)
        else:
            emit(self.finished, result)

    def _on_preview(self, preview: Preview) -> None:
        emit(self.step, preview.job_id, preview.step, preview.total)
        now = time.monotonic()
        if now - self._last_emit < self._interval and preview.step < preview.total:
            return
        self._last_emit = now
        attention = None
        if preview.attention:
            attention = {k: np.array(v, np.float32) for k, v in preview.attention.items()}
        # A copy: the engine may reuse its buffer while the GUI thread still reads this one.
        emit(self.preview, Preview(preview.job_id, preview.step, preview.total,
                                  np.array(preview.image, np.uint8), attention))


class EngineClient(QObject):
    """GUI-side handle on the engine thread. At most one job runs at a time."""

    model_loading = Signal(str)
    model_loaded = Signal(object)
    model_failed = Signal(str)
    job_started = Signal(int, object)  # job id, request
    progress = Signal(int, int, int, float)  # job id, step, total, steps per second
    preview = Signal(object)  # Preview of the current job
    finished = Signal(object)  # JobResult of the current job
    failed = Signal(int, str)
    cancelled = Signal(int)
    busy_changed = Signal(bool)

    _load_requested = Signal(object, str)
    _run_requested = Signal(int, object, object, bool)

    def __init__(self, engine_factory: EngineFactory = default_engine_factory,
                 device: str = "auto", parent: QObject | None = None,
                 preview_interval: float = PREVIEW_INTERVAL) -> None:
        super().__init__(parent)
        self.device = device
        self.model_info: Any = None
        self._job_id = 0
        self._current: int | None = None
        self._cancel: threading.Event | None = None
        self._loading = False
        self._started_at = 0.0
        self._thread = QThread()
        self._thread.setObjectName("engine")
        self._worker = EngineWorker(engine_factory, device, preview_interval)
        self._worker.moveToThread(self._thread)
        self._thread.finished.connect(self._worker.deleteLater)
        self._load_requested.connect(self._worker.load)
        self._run_requested.connect(self._worker.run_job)
        self._worker.model_loaded.connect(self._on_loaded)
        self._worker.model_failed.connect(self._on_load_failed)
        self._worker.step.connect(self._on_step)
        self._worker.preview.connect(self._on_preview)
        self._worker.finished.connect(self._on_finished)
        self._worker.failed.connect(self._on_failed)
        self._worker.cancelled.connect(self._on_cancelled)
        self._thread.start()

    # -- commands from the GUI -----------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self._current is not None or self._loading

    @property
    def loading(self) -> bool:
        """A model is loading (it cannot be cancelled; jobs and other loads wait for it)."""
        return self._loading

    @property
    def current_job(self) -> int | None:
        return self._current

    @property
    def cancelling(self) -> bool:
        """A cancel was asked for and the job has not stopped yet (it does within one step)."""
        return self._cancel is not None and self._cancel.is_set()

    def load(self, path: str | None, device: str | None = None) -> bool:
        if self.busy:
            return False
        self.device = device or self.device
        self._loading = True
        emit(self.busy_changed, True)
        emit(self.model_loading, str(path) if path else "built-in model")
        emit(self._load_requested, path, self.device)
        return True

    def start(self, request: JobRequest, attention: bool = False) -> int | None:
        """Queue a job on the engine thread; None when the engine is busy."""
        if self.busy:
            return None
        self._job_id += 1
        self._current = self._job_id
        self._cancel = threading.Event()
        self._started_at = time.monotonic()
        emit(self.busy_changed, True)
        emit(self.job_started, self._job_id, request)
        emit(self._run_requested, self._job_id, request, self._cancel, attention)
        return self._job_id

    def cancel(self) -> bool:
        """Ask the running job to stop; it lands within one step. The result is never delivered."""
        if self._current is None or self._cancel is None:
            return False
        self._cancel.set()
        return True

    def shutdown(self) -> None:
        """Cancel any job, stop the thread and wait for it (closing the window calls this)."""
        self.cancel()
        if self._thread.isRunning():
            self._thread.quit()
            self._thread.wait()
        # A result sent just before the cancel is still queued: it lands nowhere now.
        self._current, self._cancel = None, None

    def is_running(self) -> bool:
        return self._thread.isRunning()

    # -- messages from the worker (run on the GUI thread) ---------------------------------------
    def _end_job(self, job_id: int) -> bool:
        if job_id != self._current:
            return False
        self._current = None
        self._cancel = None
        emit(self.busy_changed, self.busy)
        return True

    @Slot(object)
    def _on_loaded(self, info: object) -> None:
        self._loading = False
        self.model_info = info
        emit(self.busy_changed, self.busy)
        emit(self.model_loaded, info)

    @Slot(str, object)
    def _on_load_failed(self, message: str, still_loaded: object) -> None:
        self._loading = False
        self.model_info = still_loaded
        emit(self.busy_changed, self.busy)
        emit(self.model_failed, message)

    @Slot(int, int, int)
    def _on_step(self, job_id: int, step: int, total: int) -> None:
        if job_id != self._current:
            return
        elapsed = max(time.monotonic() - self._started_at, 1e-6)
        emit(self.progress, job_id, step, total, step / elapsed)

    @Slot(object)
    def _on_preview(self, preview: Preview) -> None:
        if preview.job_id == self._current and not (self._cancel and self._cancel.is_set()):
            emit(self.preview, preview)

    @Slot(object)
    def _on_finished(self, result: JobResult) -> None:
        if self._end_job(result.job_id):
            emit(self.finished, result)

    @Slot(int, str)
    def _on_failed(self, job_id: int, message: str) -> None:
        if self._end_job(job_id):
            emit(self.failed, job_id, message)

    @Slot(int)
    def _on_cancelled(self, job_id: int) -> None:
        if self._end_job(job_id):
            emit(self.cancelled, job_id)
