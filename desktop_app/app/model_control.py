"""Which model is loaded and on which device: the first load at start-up (the last-used model, or
the built-in one), later loads from the panel, and the status text for each stage. A failed load
says why and leaves the app usable."""

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
        client.model_loading.connect(self._on_loading)
        client.model_loaded.connect(self._on_loaded)
        client.model_failed.connect(self._on_failed)

    def load_initial(self) -> None:
        self.open(self._app.last_model or None)

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
        text = describe_model(info)
        emit(self.status, text)
        emit(self.message, f"Model ready: {text}")

    @Slot(str)
    def _on_failed(self, why: str) -> None:
        emit(self.device_kept, self._app.device)  # not the one that just failed
        info = self._client.model_info  # the engine keeps the model it had when it can
        if info is None:
            emit(self.status, "No model loaded")
            emit(self.error, f"Could not load the model: {why}")
            return
        emit(self.status, describe_model(info))
        emit(self.error, f"Could not load the model: {why} (still using "
                         f"{getattr(info, 'name', None) or 'the previous model'})")
