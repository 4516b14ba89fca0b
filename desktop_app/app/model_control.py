"""Which model is loaded and on which device: the first load at start-up (the last-used model, or
the built-in one; when the last-used one no longer loads, the built-in one and a note), later loads
from the panel, and the status text for each stage. A failed load says why and leaves the app
usable."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal, Slot

from desktop_app.app.qt_compat import emit
from desktop_app.app.settings import AppSettings
from desktop_app.app.worker import EngineClient


def describe_model(info: object) -> str:
    name = getattr(info, "name", None) or "model"
    device = getattr(info, "device", "")
    dtype = getattr(info, "dtype", "")
    extra = " · ".join(str(x) for x in (device, dtype) if x)
    return f"{name} · {extra}" if extra else str(name)


class ModelControl(QObject):
    status = Signal(str)  # the model line in the panel / status bar
    message = Signal(str)
    error = Signal(str)
    device_kept = Signal(str)  # a load failed: the device still in use, for the device box

    def __init__(self, client: EngineClient, app_settings: AppSettings) -> None:
        super().__init__()
        self._client = client
        self._app = app_settings
        self._pending: str | None = None
        # Start-up only: what to load when the remembered model or device fails, and why it did.
        self._fallbacks: list[tuple[str | None, str]] = []
        self._first_failure = ""
        client.model_loading.connect(self._on_loading)
        client.model_loaded.connect(self._on_loaded)
        client.model_failed.connect(self._on_failed)

    def load_initial(self) -> None:
        """The last-used model on the last-used device; when that no longer loads (moved,
        deleted, now a file the engine refuses, a GPU that is gone), the built-in model on that
        device, then on auto, so the app starts ready to generate."""
        first = (self._app.last_model or None, self._app.device)
        self._fallbacks = []
        for candidate in ((None, first[1]), (None, "auto")):
            if candidate != first and candidate not in self._fallbacks:
                self._fallbacks.append(candidate)
        self._first_failure = ""
        self.open(*first)

    def open(self, path: str | None, device: str | None = None) -> None:
        if self._client.busy:
            loading = self._client.loading
            emit(self.message, "Busy: a model is loading; choose again once it is ready"
                 if loading else "Busy: the model can change once the current job ends")
            emit(self.device_kept, self._client.device if loading else self._app.device)
            return
        self._pending = path
        self._client.load(path, device or self._app.device)

    def set_device(self, device: str) -> None:
        """Reload the current model on another device; remembered only once that worked."""
        self.open(self._app.last_model or None, device)

    @Slot(str)
    def _on_loading(self, what: str) -> None:
        emit(self.status, f"Loading model… ({what})")
        emit(self.message, f"Loading model… ({what})")

    @Slot(object)
    def _on_loaded(self, info: object) -> None:
        self._app.last_model = self._pending or ""
        self._app.device = self._client.device
        self._fallbacks = []
        text = describe_model(info)
        emit(self.status, text)
        emit(self.message, f"Model ready: {text}")
        if self._first_failure:
            emit(self.device_kept, self._client.device)
            emit(self.error, f"Could not start with the last-used model: {self._first_failure}. "
                             f"Using the built-in model instead ({text}).")
            self._first_failure = ""

    @Slot(str)
    def _on_failed(self, why: str) -> None:
        info = self._client.model_info  # the engine keeps the model it had when it can
        if info is None and self._fallbacks:  # at start-up: try the built-in model
            self._first_failure = self._first_failure or why
            path, device = self._fallbacks.pop(0)
            self.open(path, device)
            return
        self._fallbacks = []
        if self._first_failure:
            why = f"{self._first_failure}; the built-in model: {why}"
            self._first_failure = ""
        emit(self.device_kept, self._app.device)  # not the one that just failed
        if info is None:
            emit(self.status, "No model loaded")
            emit(self.error, f"Could not load the model: {why}")
            return
        emit(self.status, describe_model(info))
        emit(self.error, f"Could not load the model: {why} (still using "
                         f"{getattr(info, 'name', None) or 'the previous model'})")
