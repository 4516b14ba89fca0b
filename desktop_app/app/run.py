"""Start the app: the window is shown first, then the model loads on the engine thread (which is
where torch gets imported), with its progress in the status bar."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from desktop_app.app.settings import APP_NAME, ORG_NAME, AppSettings
from desktop_app.app.worker import EngineClient, EngineFactory, default_engine_factory

ICON = Path(__file__).resolve().parents[2] / "resources" / "icon.png"


def make_application(argv: list[str]) -> QApplication:
    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else APP_NAME, *argv])
    app.setOrganizationName(ORG_NAME)
    app.setApplicationName(APP_NAME)
    app.setDesktopFileName("diffusion-canvas")
    if ICON.exists():
        app.setWindowIcon(QIcon(str(ICON)))
    return app


def create_window(engine_factory: EngineFactory = default_engine_factory,
                  settings: AppSettings | None = None):
    from desktop_app.app.main_window import MainWindow

    settings = settings or AppSettings()
    client = EngineClient(engine_factory, device=settings.device)
    window = MainWindow(client, settings)
    client.setParent(window)
    return window


def run_app(argv: list[str] | None = None,
            engine_factory: EngineFactory = default_engine_factory) -> int:
    # Torch spins its OpenMP threads by default; next to the GUI that steals the event loop's CPU.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    app = make_application(list(argv or []))
    window = create_window(engine_factory)
    window.show()
    # QApplication has removed its own options (-platform xcb, ...): what is left are files.
    files = [a for a in app.arguments()[1:] if not a.startswith("-")]
    if files:
        window.actions_.open_path(files[0])
    QTimer.singleShot(0, window.start)  # the model loads once the window is on screen
    return app.exec()
