"""Work-arounds for bugs of the Qt binding we ship with.

PySide6 6.12.0 on CPython 3.11: ``SignalInstance.emit()`` returns ``True`` without taking a
reference to it, so every Python-side emit steals one reference from ``True``. In 3.11 ``True`` is
not immortal (it starts with a few hundred references here), so after a few hundred emits the
interpreter aborts with "Fatal Python error: bool_dealloc". Every emit in this app goes through
emit() below, which gives the reference back when (and only when) the bug is present.
"""

from __future__ import annotations

import ctypes
import sys
from typing import Any

from PySide6.QtCore import QObject, Signal


class _Probe(QObject):
    ping = Signal()


def _emit_steals_reference() -> bool:
    probe = _Probe()
    before = sys.getrefcount(True)
    result = probe.ping.emit()
    stolen = sys.getrefcount(True) < before + (1 if result is True else 0)
    if stolen and result is True:
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(result))  # repay the probe's own emit
    return stolen


EMIT_STEALS_REFERENCE = _emit_steals_reference()


def emit(signal: Any, *args: Any) -> None:
    """signal.emit(*args), without corrupting the reference count of the returned bool."""
    result = signal.emit(*args)
    if EMIT_STEALS_REFERENCE and isinstance(result, bool):
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(result))
