from __future__ import annotations

import torch

from desktop_app.training.probe import Prober


def _dev(cells):
    """Fake per-prompt changes of a 4x32x32 estimate, each concentrated in one 3x3 cell."""
    dev = torch.zeros(9, 4, 32, 32)
    for i, cell in enumerate(cells):
        r, c = divmod(cell, 3)
        dev[i, :, r * 10 + 2:r * 10 + 8, c * 10 + 2:c * 10 + 8] = 1.0
    return dev


def test_position_placement_counts_changes_in_the_named_cell():
    assert Prober.placed(_dev(range(9))) == 9
    assert Prober.placed(_dev([(i + 1) % 9 for i in range(9)])) == 0
    assert Prober.placed(_dev([0, 1, 2, 0, 0, 0, 0, 0, 8])) == 4
