"""Shared fixtures for all tests (conftest.py re-exports them) and helpers for the UI/app tests.

- every test runs with its settings file and output folder in tmp;
- a test that leaves a QThread running fails (the idea of napari's conftest);
- `make_window` builds the real main window around a FakeEngine.
"""

from __future__ import annotations

import gc
import os

import pytest
from fake_engine import FakeEngine
from PySide6.QtCore import QThread

from desktop_app.app.main_window import MainWindow
from desktop_app.app.settings import SETTINGS_ENV, AppSettings
from desktop_app.app.worker import EngineClient


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path, tmp_path_factory, monkeypatch):
    # The settings file lives outside tmp_path, which tests may expect to hold only their files.
    path = tmp_path_factory.mktemp("settings") / "settings.ini"
    monkeypatch.setenv(SETTINGS_ENV, str(path))
    settings = AppSettings()
    settings.output_dir = str(tmp_path / "out")
    settings.sync()
    return path


def _running_qthreads() -> list[QThread]:
    gc.collect()
    # type(), not isinstance(): some torch objects warn when their __class__ is probed
    return [o for o in gc.get_objects() if issubclass(type(o), QThread) and o.isRunning()]


@pytest.fixture(autouse=True)
def no_leaked_qthreads(qapp):
    """Fail any test that leaves a QThread running (it would crash or hang a later test)."""
    yield
    qapp.processEvents()
    leaked = _running_qthreads()
    for thread in leaked:  # stop them so one leak doesn't cascade into every following test
        thread.quit()
        thread.wait(5000)
    assert not leaked, f"test left {len(leaked)} QThread(s) running: " \
                       f"{[t.objectName() for t in leaked]}"


@pytest.fixture
def make_window(qtbot):
    """make_window(engine=None, load=True) -> MainWindow with a FakeEngine, model loaded."""
    windows: list[MainWindow] = []

    def build(engine: FakeEngine | None = None, load: bool = True, size=(64, 64)) -> MainWindow:
        engine = engine or FakeEngine()
        factory = _Factory(engine)
        client = EngineClient(factory, preview_interval=0.0)
        window = MainWindow(client, AppSettings(), *size)
        client.setParent(window)
        window.engine = engine
        window.factory = factory
        qtbot.addWidget(window)
        window.show()
        with qtbot.waitActive(window):  # window shortcuts (Ctrl+Z, Esc, ...) need it active
            window.activateWindow()
        windows.append(window)
        if load:
            with qtbot.waitSignal(client.model_loaded, timeout=5000):
                window.start()
        return window

    yield build
    for window in windows:
        window.close()


class _Factory:
    """Hands the engine to the worker and records which thread asked for it."""

    def __init__(self, engine: FakeEngine) -> None:
        self.engine = engine
        self.threads: list[str] = []
        self.devices: list[str] = []
        self.missing: set[str] = set()  # devices that are not there, as the real Engine says

    def __call__(self, device: str) -> FakeEngine:
        import threading

        from desktop_app.document.job import EngineError

        self.threads.append(threading.current_thread().name)
        self.devices.append(device)
        if device in self.missing:
            raise EngineError(f"device {device!r} was asked for but is not available")
        return self.engine


def settings_env() -> str:
    return os.environ[SETTINGS_ENV]


def open_real_window(qtbot, model: str | None, size: tuple[int, int]) -> MainWindow:
    """The main window over the real Engine on its thread, with `model` loaded (None: the
    built-in model, as on a first run)."""
    from desktop_app.app.worker import default_engine_factory

    settings = AppSettings()
    if model is not None:
        settings.last_model = model
    client = EngineClient(default_engine_factory, device="cpu", preview_interval=0.0)
    window = MainWindow(client, settings, *size)
    client.setParent(window)
    qtbot.addWidget(window)
    window.show()
    with qtbot.waitSignal(client.model_loaded, timeout=120_000):
        window.start()
    return window


def generate_and_wait(qtbot, window: MainWindow, prompt: str, steps: int):
    """Type `prompt`, set `steps`, press Generate on a real-engine window and wait for the job to
    land in history. Returns (the JobResult, the step numbers its progress reports carried)."""
    seen: list[int] = []
    window.client.progress.connect(lambda job, step, total, rate: seen.append(step))
    window.panel.prompt.setPlainText(prompt)
    window.panel.steps.setValue(steps)
    with qtbot.waitSignal(window.generation.history_added, timeout=120_000) as added:
        window.generation.generate()
    return added.args[0].result, seen
