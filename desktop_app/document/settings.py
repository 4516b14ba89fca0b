"""The generation panel's values as plain data, so they can be snapshotted, remembered in the
history and restored without Qt."""

from __future__ import annotations

import dataclasses
import math
import random
from dataclasses import dataclass
from typing import Any

from desktop_app.document.model_info import GENERIC_CFG

SEED_MODES = ("random", "fixed")
# Every seed A1111 and our command line pick at random: a result of either restores exactly.
MAX_SEED = 2**32 - 1
# The prompt boxes hold at most this much. The text encoders read the first 75 tokens (about 300
# characters) and the engine warns about the rest; Qt lays out a 10 MB text for 8 s and then takes
# seconds per key stroke, for text that could never reach the model.
MAX_PROMPT_CHARS = 20_000


@dataclass(frozen=True)
class GenerationSettings:
    prompt: str = ""
    negative_prompt: str = ""
    steps: int = 20
    cfg_scale: float = GENERIC_CFG
    sampler: str = "euler"
    seed_mode: str = "random"
    seed: int = 0
    strength: float = 0.75
    mask_feather: float = 0.0
    mask_grow: int = 0
    inpaint_only_masked: bool = False  # work on a crop around the mask at the model's size
    inpaint_padding: int = 32
    pww_scale: float = 0.1
    pww_outside: float = 1.0
    pww_local_sigma: float = 6.0
    attention_maps: bool = True

    def replace(self, **changes: Any) -> GenerationSettings:
        return dataclasses.replace(self, **changes)

    def resolve_seed(self, rng: random.Random | None = None) -> int:
        """The seed this job uses: a fresh one in random mode, the fixed one otherwise."""
        if self.seed_mode == "random":
            return (rng or random.SystemRandom()).randint(0, MAX_SEED)
        return int(self.seed) & MAX_SEED

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GenerationSettings:
        """Tolerant of missing or extra keys and of strings (QSettings returns strings on Linux);
        a value of the wrong type, or not finite, keeps the default."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name not in data:
                continue
            value = data[f.name]
            if value is None:  # JSON null: not the text "None"
                continue
            try:
                if f.type == "int":
                    value = int(value)
                elif f.type == "float":
                    value = float(value)
                    if not math.isfinite(value):  # json reads NaN and Infinity
                        continue
                elif f.type == "bool":
                    value = value in (True, "true", "True", 1, "1")
                else:
                    value = str(value)
            except (TypeError, ValueError, OverflowError):  # int(inf) overflows
                continue
            out[f.name] = value
        return cls(**out)
