"""UI responsiveness numbers (goals: event-loop stall p99 < 16 ms, max < 50 ms; a brush segment on
a 4096² canvas <= 16 ms).

    QT_QPA_PLATFORM=offscreen .venv/bin/python bench/bench_ui.py [--real MODEL_DIR] [--steps N]

1. time to first window: from before importing the app to the window being shown;
2. event-loop stalls during a generation (FakeEngine with full-size previews every step, or the
   real engine with --real): a 5 ms QTimer on the GUI thread records how late each tick fires;
3. brush segment time on a 4096² canvas (stroke + incremental overlay + dirty-rect repaint), next
   to the cost of refreshing the whole overlay, which is what incremental updates avoid.
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

T0 = time.perf_counter()
ROOT = Path(__file__).resolve().parents[1]


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def first_window(app_module, settings):
    from PySide6.QtWidgets import QApplication

    window = app_module.create_window(engine_factory=_fake_factory(), settings=settings)
    window.show()
    QApplication.processEvents()
    return window, time.perf_counter() - T0


def _fake_factory(**kwargs):
    sys.path.insert(0, str(ROOT / "tests"))
    from fake_engine import FakeEngine

    engine = FakeEngine(**kwargs)

    def factory(device: str) -> FakeEngine:
        return engine

    return factory


class StallMeter:
    """Lateness of a periodic GUI-thread timer: how long the event loop was busy elsewhere."""

    def __init__(self, interval_ms: int = 5) -> None:
        from PySide6.QtCore import QTimer

        self.interval = interval_ms / 1000
        self.late: list[float] = []
        self._last = time.perf_counter()
        self.timer = QTimer()
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self.tick)

    def tick(self) -> None:
        now = time.perf_counter()
        self.late.append(max(0.0, now - self._last - self.interval))
        self._last = now

    def start(self) -> None:
        self._last = time.perf_counter()
        self.timer.start()


def run_generation(window, app, steps: int, timeout: float = 600.0) -> StallMeter:
    meter = StallMeter()
    done = threading.Event()
    window.client.finished.connect(meter.tick)  # keeps the last tick honest
    window.panel.steps.setValue(steps)
    window.panel.prompt.setPlainText("a red ball on green grass")
    meter.start()
    window.generation.generate()
    end = time.monotonic() + timeout
    while (window.client.busy or not done.is_set()) and time.monotonic() < end:
        app.processEvents()
        if not window.client.busy:
            done.set()
        time.sleep(0.001)
    meter.timer.stop()
    return meter


def brush_segments(app, size: float, n: int = 60) -> tuple[list[float], float]:
    from PySide6.QtGui import QUndoStack

    from desktop_app.app.stroke import StrokeRecorder
    from desktop_app.app.tools import ToolController
    from desktop_app.document.canvas_doc import CanvasDocument
    from desktop_app.ui.canvas_view import CanvasView
    from desktop_app.ui.layers import CanvasLayers

    doc = CanvasDocument(4096, 4096)
    doc.set_image(np.random.default_rng(0).integers(0, 255, (4096, 4096, 3), dtype=np.uint8))
    undo = QUndoStack()
    tool = ToolController(doc, StrokeRecorder(doc, undo), size=size, hardness=0.5)
    layers = CanvasLayers(doc)
    view = CanvasView(layers, tool)
    view.resize(1200, 900)
    view.show()
    app.processEvents()
    view.actual_size()  # 100%: the worst case for pixels repainted per segment
    app.processEvents()
    dirty = Dirty()
    layers.changed.connect(dirty.add)
    times = []
    x, y = 1800.0, 2000.0
    tool.press(x, y)
    for i in range(n):
        t = time.perf_counter()
        x, y = x + 6.0, y + 3.0 * np.sin(i / 5)
        tool.move(x, y)
        dirty.paint_now(view)  # what the queued update(rect) would paint, inside the measurement
        times.append(time.perf_counter() - t)
    tool.release(x, y)
    t = time.perf_counter()
    layers._update_mask((0, 0, 4096, 4096))
    full = time.perf_counter() - t
    view.close()
    if dirty.painted == 0:
        raise RuntimeError("the view did not repaint during the strokes: the numbers are wrong")
    return times, full


class Dirty:
    """The image rectangles the layers reported since the last paint."""

    def __init__(self) -> None:
        self.rects: list[tuple[int, int, int, int]] = []
        self.painted = 0

    def add(self, x0: int, y0: int, x1: int, y1: int) -> None:
        self.rects.append((x0, y0, x1, y1))

    def paint_now(self, view) -> None:
        if not self.rects:
            return
        x0 = min(r[0] for r in self.rects)
        y0 = min(r[1] for r in self.rects)
        x1 = max(r[2] for r in self.rects)
        y1 = max(r[3] for r in self.rects)
        self.rects.clear()
        view.repaint(view.to_widget_rect(x0, y0, x1, y1).toAlignedRect().adjusted(-2, -2, 2, 2))
        self.painted += 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", help="a model folder: measure with the real engine")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--size", type=int, default=512, help="canvas side for the generation")
    args = parser.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    tmp = tempfile.mkdtemp(prefix="dc-bench-")
    os.environ["DIFFUSION_CANVAS_SETTINGS"] = str(Path(tmp) / "settings.ini")
    from desktop_app.app import run
    from desktop_app.app.settings import AppSettings

    app = run.make_application([])
    settings = AppSettings()
    settings.output_dir = str(Path(tmp) / "out")
    window, t_first = first_window(run, settings)
    print(f"time to first window:           {t_first * 1000:7.0f} ms "
          f"(torch imported: {'torch' in sys.modules})")
    window.close()

    if args.real:
        settings.last_model = args.real
        window = run.create_window(settings=settings)
        label = f"real engine, {args.real}"
    else:
        window = run.create_window(_fake_factory(step_time=0.05, preview_size=None), settings)
        label = "FakeEngine, 50 ms/step, full-size preview each step"
    window.show()
    window.start()
    while window.client.busy or window.client.model_info is None:
        app.processEvents()
        time.sleep(0.005)
        if not window.client.busy and window.client.model_info is None:
            print("model failed to load:", window.last_error)
            return 1
    window.actions_.new_canvas(args.size, args.size)
    meter = run_generation(window, app, args.steps)
    late_ms = [v * 1000 for v in meter.late]
    print(f"event-loop stall during generation ({label}, {args.steps} steps, "
          f"{args.size}²): p50 {pct(late_ms, 50):.1f} ms, p99 {pct(late_ms, 99):.1f} ms, "
          f"max {max(late_ms):.1f} ms over {len(late_ms)} ticks (goal p99 < 16, max < 50)")
    window.close()

    for size in (32, 128, 512):
        times, full = brush_segments(app, size)
        ms = [t * 1000 for t in times]
        print(f"brush segment on 4096², {size:3d} px brush: mean {np.mean(ms):4.1f} ms, "
              f"p50 {pct(ms, 50):5.1f} ms, "
              f"p99 {pct(ms, 99):5.1f} ms, max {max(ms):5.1f} ms (goal <= 16); "
              f"a full-overlay refresh costs {full * 1000:.0f} ms "
              f"= {full / max(float(np.mean(times)), 1e-9):.0f}x a mean segment")
    return 0


if __name__ == "__main__":
    sys.exit(main())
