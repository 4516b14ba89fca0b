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


def test_binding_probe_reads_the_frozen_encoders_words_as_context_free():
    # The finding behind --text-layers: the pretrained all-MiniLM-L6-v2 gives an object's colour
    # and shape words almost the same vector whichever place the caption gives the object. The
    # probe must line the same words up across the two captions (misaligned words would compare
    # "red" with "circle" and read far below 0.99), and place words, which move to the other
    # object's phrase, differ more.
    from desktop_app.training import data
    from desktop_app.training.probe import binding

    res = binding(str(data.text_encoder_path()), n=6)
    assert res["object words"] > 0.99
    assert res["place words"] < res["object words"] - 0.01
