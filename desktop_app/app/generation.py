"""Generate / cancel and what happens to results: snapshot the document into a frozen request, run
it on the engine, stream previews to the canvas layers, put the result on the canvas as one undo
step, add it to the history and save it (with metadata) to the output folder. A failed or cancelled
job leaves the document exactly as it was."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtGui import QUndoStack

from desktop_app.app.commands import ImageCommand, StateCommand
from desktop_app.app.qt_compat import emit
from desktop_app.app.settings import AppSettings
from desktop_app.app.worker import EngineClient
from desktop_app.document.canvas_doc import CanvasDocument
from desktop_app.document.history import History, HistoryItem
from desktop_app.document.job import JobRequest, JobResult, Preview, RequestError
from desktop_app.document.regions import RegionLayer
from desktop_app.document.settings import MAX_PROMPT_CHARS, MAX_SEED, GenerationSettings

log = logging.getLogger(__name__)


class GenerationController(QObject):
    status = Signal(str)
    error = Signal(str)
    running_changed = Signal(bool)
    preview = Signal(object)  # numpy RGB or None (clear)
    attention = Signal(object)  # dict word -> map, or None
    history_added = Signal(object)  # HistoryItem
    settings_restored = Signal(object)  # GenerationSettings
    last_seed_changed = Signal(object)  # int: a seed can pass 2**31, the limit of Signal(int)
    output_saved = Signal(str, str)  # path, error ("" when saved)

    def __init__(self, doc: CanvasDocument, client: EngineClient, undo: QUndoStack,
                 history: History, app_settings: AppSettings,
                 current_settings: Callable[[], GenerationSettings]) -> None:
        super().__init__()
        self._doc = doc
        self._client = client
        self._undo = undo
        self._history = history
        self._app = app_settings
        self._current_settings = current_settings
        # job id -> (settings, the regions sent, in request order)
        self._jobs: dict[int, tuple[GenerationSettings, list[RegionLayer]]] = {}
        self.last_seed: int | None = None
        self._maps_job: int | None = None  # the job whose word maps the strip shows
        # PNG encoding of a big result takes 100s of ms: never on the GUI thread.
        self._saver = ThreadPoolExecutor(max_workers=1, thread_name_prefix="save-output")
        self._pending: set[Path] = set()  # output names chosen, not yet written
        self.output_saved.connect(self._on_saved)
        client.finished.connect(self._on_finished)
        client.failed.connect(self._on_failed)
        client.cancelled.connect(self._on_cancelled)
        client.preview.connect(self._on_preview)

    @property
    def running(self) -> bool:
        return self._client.current_job is not None

    def generate(self) -> int | None:
        if self._client.busy:
            emit(self.status, "Busy: the cancelled job is still stopping; generate again in a "
                              "moment" if self._client.cancelling else
                              "Busy: the model is loading; generate once it is ready"
                              if self._client.loading else
                              "Busy: wait for the current job or press Esc to cancel it")
            return None
        if self._client.model_info is None:
            emit(self.error, "No model is loaded: open a model first (Model ▸ Open model…)")
            return None
        settings = self._current_settings()
        info = self._client.model_info
        request = self._doc.snapshot(settings, model=getattr(info, "name", ""))
        try:
            request.validate()
        except RequestError as exc:
            emit(self.error, str(exc))
            return None
        job_id = self._client.start(request, attention=settings.attention_maps)
        if job_id is None:
            return None
        self._jobs[job_id] = (settings, self._doc.painted_regions())
        self.last_seed = request.seed
        emit(self.last_seed_changed, request.seed)
        emit(self.running_changed, True)
        emit(self.status, f"Generating ({request.kind.value}, seed {request.seed})…")
        return job_id

    def cancel(self) -> None:
        if self._client.cancel():
            emit(self.status, "Cancelling…")

    def _finish(self, job_id: int) -> tuple[GenerationSettings, list[RegionLayer]] | None:
        emit(self.preview, None)
        emit(self.running_changed, False)
        return self._jobs.pop(job_id, None)

    @Slot(object)
    def _on_preview(self, preview: Preview) -> None:
        emit(self.preview, preview.image)
        if preview.attention:
            self._maps_job = preview.job_id
            emit(self.attention, preview.attention)

    @Slot(int)
    def _on_cancelled(self, job_id: int) -> None:
        self._finish(job_id)
        emit(self.status, "Cancelled: the canvas is unchanged")

    @Slot(int, str)
    def _on_failed(self, job_id: int, message: str) -> None:
        self._finish(job_id)
        emit(self.error, f"Generation failed: {message}")

    @Slot(object)
    def _on_finished(self, result: JobResult) -> None:
        settings, regions = self._finish(result.job_id) or (self._current_settings(), [])
        request = result.request
        if self._maps_job != result.job_id:  # a job without word maps: the last job's are stale
            emit(self.attention, None)
        # A canvas that changed size while the job ran (new canvas, another image, undo) keeps
        # what was made on it since: placing the result would wipe that mask and those regions.
        placed = self._doc.size == (request.width, request.height)
        if placed:
            self._undo.push(ImageCommand(self._doc, result.image, result, "Generate"))
        # Scores belong to the regions as they were sent, even if the list changed meanwhile; a
        # region whose words, strength or mask were edited meanwhile gets none (it was scored as
        # it was, and the edit had cleared its old score).
        for region, sent, score in zip(regions, request.regions, result.region_adherence,
                                       strict=False):
            now = self._doc.find_region(region)
            if now is not None and (now.words.strip(), now.strength) == (sent.words, sent.strength) \
                    and np.array_equal(now.mask, sent.mask):
                self._doc.update_region(now, adherence=float(score))
        item = HistoryItem(result, settings, tuple(r.colour for r in regions))
        item.saved_path = self._save_output(result)
        self._history.add(item)
        emit(self.history_added, item)
        note = f" — saved {Path(item.saved_path).name}" if item.saved_path else ""
        warn = f" — {'; '.join(result.warnings)}" if result.warnings else ""
        if not placed:
            warn += (f" — the canvas is now {self._doc.width}x{self._doc.height}, so the "
                     f"{request.width}x{request.height} result was not put on it: click it in "
                     "the history to show it")
        emit(self.status, f"Done in {result.elapsed:.1f} s{note}{warn}")

    def _save_output(self, result: JobResult) -> str:
        """Pick the output file name now; write it (with metadata) on the saver thread."""
        folder = Path(self._app.output_dir)
        stem = time.strftime("%Y%m%d-%H%M%S") + f"-{result.request.seed}"
        path, n = folder / f"{stem}.png", 1
        # A name handed to the saver but not written yet (two results with one seed in one
        # second) does not exist on disk: skip it too, or the second result would replace it.
        while path.exists() or path in self._pending:
            path, n = folder / f"{stem}-{n}.png", n + 1
        self._pending.add(path)
        self._saver.submit(self._write_output, path, result)
        return str(path)

    def _write_output(self, path: Path, result: JobResult) -> None:
        """On the saver thread; reports back through a queued signal."""
        try:
            from desktop_app.document.metadata import save_png_with_metadata

            if path.parent.exists() and not path.parent.is_dir():  # else "appeared meanwhile"
                raise NotADirectoryError(f"{path.parent} is a file, not a folder (File ▸ "
                                         "Output folder… picks another)")
            path.parent.mkdir(parents=True, exist_ok=True)
            # Never replace a file: another window may have taken the name since it was chosen.
            save_png_with_metadata(path, result.image, result.request, result.model_name, result,
                                   replace=False)
        except FileExistsError:
            emit(self.output_saved, str(path), f"{path.name} appeared meanwhile and was kept")
            return
        except Exception as exc:  # saving is a convenience: never lose the result over it
            log.exception("saving the output failed")
            emit(self.output_saved, str(path), str(exc) or type(exc).__name__)
            return
        emit(self.output_saved, str(path), "")

    @Slot(str, str)
    def _on_saved(self, path: str, error: str) -> None:
        self._pending.discard(Path(path))
        if error:
            for item in self._history.items:
                if item.saved_path == path:
                    item.saved_path = ""
            emit(self.status, f"Could not save to the output folder: {error}")

    def shutdown(self) -> None:
        """Finish writing outputs (closing the window calls this)."""
        self._saver.shutdown(wait=True)

    # -- history -----------------------------------------------------------------------------
    def show_history(self, item: HistoryItem) -> None:
        """Put a history item's image on the canvas (one undo step)."""
        self._undo.push(ImageCommand(self._doc, item.image, item.result,
                                     f"Show {item.label()}"))

    def restore_history(self, item: HistoryItem) -> None:
        """Bring back a job's input canvas (image, mask, regions) and all its parameters, with its
        seed fixed, so Generate reproduces it."""
        self._undo.push(StateCommand(self._doc, item.input_state(), f"Restore {item.label()}"))
        emit(self.settings_restored, item.restored_settings())
        emit(self.status, f"Restored {item.label()}")

    def restore_file(self, path: str) -> bool:
        """Restore a job from an image's parameters (a PNG of ours exactly; A1111's `parameters`
        text, in a PNG or a JPEG's or WebP's EXIF, as far as it goes): its input canvas as one undo step and its parameters with the seed
        fixed, as Restore does for the history. A file without parameters changes nothing."""
        from desktop_app.document.history import request_input_state, request_settings
        from desktop_app.document.metadata import read_metadata

        notes: list[str] = []
        try:
            req = read_metadata(path, warn=notes.append)
            state = request_input_state(req)
        except (OSError, RequestError) as exc:
            emit(self.error, f"Could not restore from {path}: {exc}"
                 if str(path) not in str(exc) else f"Could not restore: {exc}")
            return False
        name = Path(path).name
        self._undo.push(StateCommand(self._doc, state, f"Restore {name}"))
        emit(self.settings_restored, request_settings(req, self._current_settings()))
        # What the panel cannot hold, so Generate will not reproduce the file exactly.
        if req.pww_mode != "max":
            notes.append(f"paint-with-words mode {req.pww_mode!r} is command-line only")
        for what, text in (("prompt", req.prompt), ("negative prompt", req.negative_prompt)):
            if len(text) > MAX_PROMPT_CHARS:
                notes.append(f"its {what} of {len(text):,} characters is cut to the box's "
                             f"{MAX_PROMPT_CHARS:,}")
        if not 0 <= req.seed <= MAX_SEED:
            notes.append(f"its seed {req.seed} is outside the app's 0 to {MAX_SEED}: the seed "
                         "is random")
        if req.model:
            notes.append(f"made with {req.model}")
        emit(self.status, f"Restored {req.kind.value} job from {name} (seed {req.seed})"
             + "".join(f" — {n}" for n in notes))
        return True

    def request_of(self, job_id: int) -> JobRequest | None:
        for item in self._history.items:
            if item.result.job_id == job_id:
                return item.result.request
        return None
