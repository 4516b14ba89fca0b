"""The built-in model's world: flat scenes of 1-3 shapes, their captions, and held-out combinations.

Everything here is deterministic given a seed, numpy-only, and shared by the training script, the
evaluator's tests and the quality benchmarks.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from desktop_app.document.vocabulary import prompt_words

SIZE = 256
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 180, 60),
    "blue": (40, 80, 225),
    "yellow": (245, 225, 40),
    "purple": (140, 50, 180),
    "orange": (245, 140, 30),
    "white": (250, 250, 250),
    "black": (15, 15, 15),
}
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "gray": (128, 128, 128),
    "white": (250, 250, 250),
    "black": (15, 15, 15),
    "light blue": (165, 205, 240),
}
SHAPES = ("circle", "square", "triangle")
SIZES = ("small", "big")
# Row-major 3x3 grid: index = 3 * row + col.
CELLS = (
    "top left", "top", "top right",
    "left", "center", "right",
    "bottom left", "bottom", "bottom right",
)  # fmt: skip
# Object extent (diameter or side) in pixels; a cell is ~85 px, so big shapes never touch.
EXTENT = {"small": 38, "big": 70}
JITTER = 5


@dataclass(frozen=True)
class Shape:
    color: str
    shape: str
    size: str
    cell: int

    @property
    def cell_name(self) -> str:
        return CELLS[self.cell]

    def key(self) -> tuple[str, str, int]:
        return (self.color, self.shape, self.cell)


@dataclass(frozen=True)
class Scene:
    background: str
    shapes: tuple[Shape, ...]
    offsets: tuple[tuple[int, int], ...] = field(default=())


def cell_center(cell: int) -> tuple[float, float]:
    """Centre (x, y) of a grid cell in image pixels."""
    row, col = divmod(cell, 3)
    step = SIZE / 3
    return (col + 0.5) * step, (row + 0.5) * step


def is_held_out(color: str, shape: str, cell: int) -> bool:
    """About 8% of (colour, shape, cell) triples never appear in training; evaluation uses them."""
    digest = hashlib.sha1(f"{color}|{shape}|{cell}".encode()).digest()
    return digest[0] < 21  # 21/256 ~ 8%


def random_scene(rng: np.random.Generator, held_out: bool | None = False,
                 n_objects: int | None = None) -> Scene:
    """A random scene. held_out=False: no held-out object; True: the first object is held out;
    None: anything."""
    n = int(n_objects or rng.choice([1, 2, 3], p=[0.4, 0.35, 0.25]))
    background = str(rng.choice(list(BACKGROUNDS)))
    cells = rng.permutation(9)[:n]
    shapes: list[Shape] = []
    offsets: list[tuple[int, int]] = []
    for i, cell in enumerate(cells):
        while True:
            color = str(rng.choice([c for c in COLORS if c != background]))
            shape = str(rng.choice(SHAPES))
            out = is_held_out(color, shape, int(cell))
            if held_out is None:
                break
            want = held_out and i == 0
            if out == want:
                break
            if held_out and i == 0:
                # Sample a held-out triple for this cell directly (rejection may never hit).
                pairs = [(c, s) for c in COLORS for s in SHAPES
                         if c != background and is_held_out(c, s, int(cell))]
                if not pairs:
                    cell = int(rng.choice([k for k in range(9) if k not in cells]))
                    continue
                color, shape = pairs[int(rng.integers(len(pairs)))]
                break
        shapes.append(Shape(color, shape, str(rng.choice(SIZES)), int(cell)))
        offsets.append((int(rng.integers(-JITTER, JITTER + 1)),
                        int(rng.integers(-JITTER, JITTER + 1))))
    return Scene(background, tuple(shapes), tuple(offsets))


def _coverage(shape: str, cx: float, cy: float, extent: float, ss: int = 4) -> np.ndarray:
    """Anti-aliased coverage in [0, 1] of one shape on the SIZE x SIZE canvas (supersampled)."""
    half = extent / 2
    x0, x1 = int(max(0, np.floor(cx - half - 1))), int(min(SIZE, np.ceil(cx + half + 1)))
    y0, y1 = int(max(0, np.floor(cy - half - 1))), int(min(SIZE, np.ceil(cy + half + 1)))
    sub = (np.arange(ss) + 0.5) / ss
    xs = (np.arange(x0, x1)[:, None] + sub[None, :]).reshape(-1)
    ys = (np.arange(y0, y1)[:, None] + sub[None, :]).reshape(-1)
    X, Y = np.meshgrid(xs, ys)
    if shape == "circle":
        inside = (X - cx) ** 2 + (Y - cy) ** 2 <= half**2
    elif shape == "square":
        inside = (np.abs(X - cx) <= half) & (np.abs(Y - cy) <= half)
    elif shape == "triangle":
        # Upright isosceles triangle filling the box: apex top centre, base at the bottom.
        top, bottom = cy - half, cy + half
        t = np.clip((Y - top) / (bottom - top), 0, 1)
        inside = (Y >= top) & (Y <= bottom) & (np.abs(X - cx) <= t * half)
    else:
        raise ValueError(f"unknown shape {shape!r}")
    cov = inside.reshape(y1 - y0, ss, x1 - x0, ss).mean(axis=(1, 3))
    full = np.zeros((SIZE, SIZE), np.float32)
    full[y0:y1, x0:x1] = cov
    return full


def render(scene: Scene) -> np.ndarray:
    """The scene as an RGB uint8 array of SIZE x SIZE."""
    img = np.empty((SIZE, SIZE, 3), np.float32)
    img[:] = BACKGROUNDS[scene.background]
    offsets = scene.offsets or tuple((0, 0) for _ in scene.shapes)
    for s, (dx, dy) in zip(scene.shapes, offsets, strict=True):
        cx, cy = cell_center(s.cell)
        cov = _coverage(s.shape, cx + dx, cy + dy, EXTENT[s.size])[..., None]
        img = img * (1 - cov) + np.asarray(COLORS[s.color], np.float32) * cov
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- captions
_POSITION_PHRASES = {
    "top left": ["at the top left", "in the top left", "in the top left corner", "top left",
                 "in the upper left", "at the top left corner"],
    "top": ["at the top", "at the top center", "in the top middle", "at the top middle",
            "along the top"],
    "top right": ["at the top right", "in the top right", "in the top right corner", "top right",
                  "in the upper right", "at the top right corner"],
    "left": ["on the left", "at the left", "in the middle left", "at the left side",
             "on the left side"],
    "center": ["in the center", "in the middle", "at the center", "in the centre"],
    "right": ["on the right", "at the right", "in the middle right", "at the right side",
              "on the right side"],
    "bottom left": ["at the bottom left", "in the bottom left", "in the bottom left corner",
                    "bottom left", "in the lower left", "at the bottom left corner"],
    "bottom": ["at the bottom", "at the bottom center", "in the bottom middle",
               "at the bottom middle", "along the bottom"],
    "bottom right": ["at the bottom right", "in the bottom right", "in the bottom right corner",
                     "bottom right", "in the lower right", "at the bottom right corner"],
}
_SIZE_WORDS = {"small": ["small", "small", "small", "little", "tiny"],
               "big": ["big", "big", "big", "large", "huge"]}
_BG_PHRASES = ["on a {bg} background", "on a {bg} background", "against a {bg} background",
               "with a {bg} background", "on {bg}", "over a {bg} backdrop"]
_BG_LEADS = ["a {bg} background with ", "on a {bg} background, ", "{bg} background: ",
             "a picture with a {bg} background showing "]
_CONNECTIVES = [" and ", " and ", ", ", ", and ", " plus ", "; ", " as well as "]


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def object_phrase(s: Shape, rng: np.random.Generator, *, with_size: bool = True,
                  with_position: bool = True) -> str:
    words = []
    if with_size:
        words.append(str(rng.choice(_SIZE_WORDS[s.size])))
    words += [s.color, s.shape]
    noun = " ".join(words)
    noun = f"{_article(noun)} {noun}"
    if not with_position:
        return noun
    pos = str(rng.choice(_POSITION_PHRASES[s.cell_name]))
    style = rng.integers(4)
    if style == 0:
        return f"{noun} {pos}"
    if style == 1:
        return f"{pos}, {noun}" if pos[0].isalpha() else f"{noun} {pos}"
    if style == 2:
        return f"{noun} placed {pos}"
    return f"{noun} that sits {pos}"


def caption(scene: Scene, rng: np.random.Generator, *, drop_rate: float = 0.12,
            with_size: bool | None = None, with_pos: bool | None = None) -> str:
    """A varied natural-language caption. With probability drop_rate each, the caption leaves out
    sizes, positions or the background (people do too), so the model learns those are optional.
    with_size / with_pos, when given, decide instead of the draw (the draw is still made, so the
    other choices come out as they would have)."""
    size_drawn = rng.random() >= drop_rate
    pos_drawn = rng.random() >= drop_rate
    with_size = size_drawn if with_size is None else with_size
    with_pos = pos_drawn if with_pos is None else with_pos
    with_bg = rng.random() >= drop_rate * 0.7
    order = rng.permutation(len(scene.shapes))
    parts = [object_phrase(scene.shapes[i], rng, with_size=with_size, with_position=with_pos)
             for i in order]
    body = parts[0]
    for p in parts[1:]:
        body += str(rng.choice(_CONNECTIVES)) + p
    if rng.random() < 0.25:
        body = str(rng.choice(["there is ", "there are ", "a drawing of ", "an image of "])) + body
    if with_bg:
        bg = scene.background
        if rng.random() < 0.3:
            body = str(rng.choice(_BG_LEADS)).format(bg=bg) + body
        else:
            body = body + " " + str(rng.choice(_BG_PHRASES)).format(bg=bg)
    return body


def vocabulary() -> list[str]:
    """Every word a training caption can contain (the model knows nothing else), sorted."""
    phrases = [*COLORS, *BACKGROUNDS, *SHAPES, *SIZES, "a", "an", "placed", "that", "sits", "at",
               "in", "the", "center", "on", "background", "and",
               "there is", "there are", "a drawing of", "an image of", *_CONNECTIVES,
               *(w for words in _SIZE_WORDS.values() for w in words),
               *(p for ps in _POSITION_PHRASES.values() for p in ps),
               *(p.format(bg="") for p in (*_BG_PHRASES, *_BG_LEADS))]
    return sorted({w for p in phrases for w in prompt_words(p)})


def canonical_caption(scene: Scene) -> str:
    """The plain, fixed wording used for evaluation prompts."""
    parts = [f"{_article(s.size)} {s.size} {s.color} {s.shape} at the {s.cell_name}"
             if s.cell_name != "center" else f"{_article(s.size)} {s.size} {s.color} {s.shape} in the center"
             for s in scene.shapes]
    return " and ".join(parts) + f" on a {scene.background} background"


def bare_caption(scene: Scene) -> str:
    """Objects by colour and shape only, no size or place: how people often write a prompt, and
    what paint-with-words prompts are made of ("a red circle and an orange square on a gray
    background")."""
    return " and ".join(f"{_article(s.color)} {s.color} {s.shape}" for s in scene.shapes) + \
        f" on a {scene.background} background"


# ---------------------------------------------------------------- masks
def random_mask(rng: np.random.Generator, scene: Scene) -> np.ndarray:
    """A training mask (float32, 1 = repaint) of SIZE x SIZE: a cell around an object, a random box
    or brush strokes."""
    m = np.zeros((SIZE, SIZE), np.float32)
    kind = rng.integers(3)
    if kind == 0 and scene.shapes:
        s = scene.shapes[int(rng.integers(len(scene.shapes)))]
        cx, cy = cell_center(s.cell)
        half = EXTENT[s.size] / 2 + rng.integers(8, 28)
        y0, y1 = int(max(0, cy - half)), int(min(SIZE, cy + half))
        x0, x1 = int(max(0, cx - half)), int(min(SIZE, cx + half))
        m[y0:y1, x0:x1] = 1
    elif kind == 1:
        w, h = rng.integers(40, 180, size=2)
        x, y = rng.integers(0, SIZE - w), rng.integers(0, SIZE - h)
        m[y:y + h, x:x + w] = 1
    else:
        yy, xx = np.mgrid[0:SIZE, 0:SIZE]
        for _ in range(int(rng.integers(1, 4))):
            p = rng.uniform(0, SIZE, size=2)
            r = rng.uniform(10, 30)
            for _ in range(int(rng.integers(3, 8))):
                q = np.clip(p + rng.normal(0, 40, size=2), 0, SIZE)
                for t in np.linspace(0, 1, 8):
                    c = p * (1 - t) + q * t
                    m[(xx - c[0]) ** 2 + (yy - c[1]) ** 2 <= r * r] = 1
                p = q
    return m
