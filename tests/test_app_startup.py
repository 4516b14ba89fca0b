"""Start-up order, in a fresh interpreter: the window is shown before torch is imported, the real
engine is imported on the engine thread, and a last-used model that cannot load any more leaves a
usable window on the built-in model, saying why."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent("""
    import json, sys, threading, time
    from desktop_app.app import run
    from desktop_app.app.settings import AppSettings

    app = run.make_application([])
    heavy = ("torch", "diffusers", "transformers", "desktop_app.engine")
    settings = AppSettings()
    settings.last_model = sys.argv[1]  # a model that does not exist
    window = run.create_window(settings=settings)
    window.show()
    app.processEvents()
    out = {"visible": window.isVisible(),
           "heavy_at_show": [m for m in heavy if m in sys.modules]}
    window.start()
    out["status_while_loading"] = window.model_label.text()
    end = time.monotonic() + 120
    while window.client.busy and time.monotonic() < end:
        app.processEvents()
        time.sleep(0.01)
    out["error"] = window.last_error
    out["status"] = window.model_label.text()
    window.tool.press(5, 5)
    window.tool.release(20, 20)
    out["usable"] = bool(window.doc.mask.any())
    window.close()
    out["thread_stopped"] = not window.client.is_running()
    print(json.dumps(out))
""")


def test_window_before_torch_and_a_failed_load_keeps_the_app_usable(tmp_path):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", OMP_NUM_THREADS="1",
               PYTHONPATH=str(ROOT))
    missing = tmp_path / "no-such-model"
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(missing)], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["visible"] and out["heavy_at_show"] == []
    assert out["status_while_loading"].startswith("Loading model")
    assert out["error"].startswith("Could not start with the last-used model")
    assert missing.name in out["error"] and "Using the built-in model instead" in out["error"]
    assert out["status"].startswith("builtin")
    assert out["usable"] and out["thread_stopped"]
    assert "Traceback" not in out["error"]
