"""What the app remembers between runs. Tests (and portable installs) point
DIFFUSION_CANVAS_SETTINGS at an .ini file so nothing touches the user's real settings."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings, QStandardPaths

from desktop_app.document.settings import GenerationSettings

ORG_NAME = "DiffusionCanvas"
APP_NAME = "Diffusion Canvas"
SETTINGS_ENV = "DIFFUSION_CANVAS_SETTINGS"


def open_qsettings() -> QSettings:
    path = os.environ.get(SETTINGS_ENV)
    if path:
        return QSettings(path, QSettings.Format.IniFormat)
    return QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, ORG_NAME, APP_NAME)


def default_output_dir() -> str:
    pictures = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.PicturesLocation)
    return str(Path(pictures or Path.home()) / "Diffusion Canvas")


class AppSettings:
    def __init__(self, qsettings: QSettings | None = None) -> None:
        self.q = qsettings or open_qsettings()

    def _get(self, key: str, default, kind=str):
        value = self.q.value(key, default)
        try:
            if kind is bool:
                return value in (True, "true", "True", 1, "1")
            value = kind(value)
        except (TypeError, ValueError):
            return default
        # A hand-edited "nan" or "inf" would reach the widgets (an OverflowError at start-up).
        return value if kind is not float or math.isfinite(value) else default

    # The model: "" means the built-in one.
    @property
    def last_model(self) -> str:
        return self._get("model/last", "")

    @last_model.setter
    def last_model(self, path: str) -> None:
        self.q.setValue("model/last", path or "")

    @property
    def device(self) -> str:
        return self._get("model/device", "auto")

    @device.setter
    def device(self, value: str) -> None:
        self.q.setValue("model/device", value)

    @property
    def output_dir(self) -> str:
        return self._get("output/dir", "") or default_output_dir()

    @output_dir.setter
    def output_dir(self, path: str) -> None:
        self.q.setValue("output/dir", path)

    @property
    def brush_size(self) -> float:
        return self._get("brush/size", 48.0, float)

    @brush_size.setter
    def brush_size(self, value: float) -> None:
        self.q.setValue("brush/size", float(value))

    @property
    def brush_hardness(self) -> float:
        return self._get("brush/hardness", 0.8, float)

    @brush_hardness.setter
    def brush_hardness(self, value: float) -> None:
        self.q.setValue("brush/hardness", float(value))

    @property
    def generation(self) -> GenerationSettings:
        raw = self._get("generation/settings", "")
        try:
            return GenerationSettings.from_dict(json.loads(raw)) if raw else GenerationSettings()
        except (ValueError, TypeError):
            return GenerationSettings()

    @generation.setter
    def generation(self, settings: GenerationSettings) -> None:
        self.q.setValue("generation/settings", json.dumps(settings.to_dict()))

    def geometry(self) -> QByteArray | None:
        value = self.q.value("window/geometry")
        return value if isinstance(value, QByteArray) else None

    def set_geometry(self, geometry: QByteArray, state: QByteArray) -> None:
        self.q.setValue("window/geometry", geometry)
        self.q.setValue("window/state", state)

    def window_state(self) -> QByteArray | None:
        value = self.q.value("window/state")
        return value if isinstance(value, QByteArray) else None

    def sync(self) -> None:
        self.q.sync()
