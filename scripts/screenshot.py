"""Drive the real window with the FakeEngine through its main states and save PNGs, to look at it
as a person would.

    Xvfb :99 -screen 0 1600x1000x24 &  DISPLAY=:99 .venv/bin/python scripts/screenshot.py
    (or QT_QPA_PLATFORM=offscreen .venv/bin/python scripts/screenshot.py)

States: empty, mask (an image with a painted mask), regions, placement_hint and
regions_from_prompt (a prompt that says where things go), generating (a preview mid-job),
result (with the history strip). Writes docs/screenshots/<state>.png.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PySide6.QtCore import QPointF
from PySide6.QtWidgets import QApplication

from desktop_app.app.main_window import MainWindow
from desktop_app.app.run import make_application
from desktop_app.app.settings import SETTINGS_ENV, AppSettings
from desktop_app.app.worker import EngineClient

ROOT = Path(__file__).resolve().parents[1]


def fake_engine_class():
    sys.path.insert(0, str(ROOT / "tests"))  # the FakeEngine lives with the tests
    from fake_engine import FakeEngine

    return FakeEngine


def pump(app: QApplication, seconds: float = 0.2) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.01)


def wait_for(app: QApplication, condition, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise TimeoutError("the window did not reach the expected state")
        app.processEvents()
        time.sleep(0.01)


def scene(width: int, height: int) -> np.ndarray:
    """A simple photo-like picture to paint on: sky, sun, hills."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.zeros((height, width, 3), np.float32)
    t = ys / height
    img[...] = np.stack([90 + 100 * t, 140 + 80 * t, 230 - 30 * t], axis=-1)
    sun = (xs - width * 0.7) ** 2 + (ys - height * 0.3) ** 2 < (height * 0.12) ** 2
    img[sun] = (255, 214, 60)
    hill = ys > height * 0.65 + 0.08 * height * np.sin(xs / width * 6.0)
    img[hill] = np.stack([40 + 20 * t, 140 - 40 * t, 60 + 0 * t], axis=-1)[hill]
    return img.astype(np.uint8)


def stroke(window: MainWindow, points: list[tuple[float, float]]) -> None:
    tool = window.tool
    tool.press(*points[0])
    for p in points[1:]:
        tool.move(*p)
    tool.release(*points[-1])


def save(window: MainWindow, app: QApplication, out: Path, name: str) -> None:
    pump(app, 0.3)
    path = out / f"{name}.png"
    window.grab().save(str(path))
    print(f"wrote {path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="dc-shots-")
    os.environ[SETTINGS_ENV] = str(Path(tmp) / "settings.ini")
    app = make_application([])
    settings = AppSettings()
    settings.output_dir = str(Path(tmp) / "out")
    gate = threading.Semaphore(0)
    engine = fake_engine_class()(gate=gate, attention_words=("red", "ball", "grass"), preview_size=64)
    client = EngineClient(lambda device: engine, preview_interval=0.0)
    window = MainWindow(client, settings, 512, 512)
    client.setParent(window)
    window.resize(1400, 900)
    window.show()
    window.start()
    wait_for(app, lambda: client.model_info is not None)
    save(window, app, out, "empty")

    window.actions_._place(scene(512, 384), "Open scene.png", [])
    window.panel.prompt.setPlainText("a red ball on green grass, sunny sky")
    stroke(window, [(150, 250), (200, 270), (260, 300), (300, 290)])
    window.view._cursor = QPointF(700, 420)
    save(window, app, out, "mask")

    region = window.regions.add("red ball")
    window.tool.set_shape("rect")
    stroke(window, [(120, 200), (230, 330)])
    window.regions.add("green grass")
    window.tool.set_shape("brush")
    window.tool.set_size(60)
    stroke(window, [(20, 360), (200, 350), (400, 340), (500, 360)])
    window.regions.set_words(region, "red ball")
    window.tabs.setCurrentWidget(window.regions_panel)
    save(window, app, out, "regions")
    # A prompt that says where things go, on a canvas without regions: the prompt box offers to
    # place them; then Regions > From prompt. Undo puts the painted regions back.
    prompt = window.panel.prompt.toPlainText()
    for r in list(window.doc.regions):
        window.regions.remove(r)
    window.panel.prompt.setPlainText("a red ball on the left and a blue kite at the top right, "
                                     "sunny sky")
    window.tabs.setCurrentIndex(0)
    save(window, app, out, "placement_hint")
    window.regions_panel.from_prompt_button.click()
    save(window, app, out, "regions_from_prompt")
    for _ in range(3):
        window.undo.undo()
    window.panel.prompt.setPlainText(prompt)

    window.tabs.setCurrentIndex(0)
    window.panel.steps.setValue(8)
    window.generation.generate()
    for _ in range(4):
        gate.release()
    wait_for(app, lambda: window.layers.preview is not None and "4/8" in
             window.panel.progress.format())
    save(window, app, out, "generating")

    for _ in range(4):
        gate.release()
    wait_for(app, lambda: window.history.items)
    save(window, app, out, "result")
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
