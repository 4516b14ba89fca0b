"""The built-in UNet's training batches: cached latents, masks, foreground maps and caption
embeddings (or caption token ids, when the text encoder's top layers train too) in memory, and
with a grounding tokenizer each object's footprint and caption tokens (training/grounding.py)."""

from __future__ import annotations

import numpy as np

from desktop_app.training import data, scenes

# Share of samples whose caption is dropped (classifier-free guidance).
CFG_DROP = 0.15


def small_boxes(scene: scenes.Scene, side: int = 32, margin: int = 1) -> np.ndarray:
    """(side, side) float32: 1 on the latent pixels of each small object's bounding box, grown by
    `margin` pixels, so a square's corners and a circle's empty corners weigh alike."""
    out = np.zeros((side, side), np.float32)
    f = scenes.SIZE / side
    offsets = scene.offsets or tuple((0, 0) for _ in scene.shapes)
    for s, (dx, dy) in zip(scene.shapes, offsets, strict=True):
        if s.size != "small":
            continue
        cx, cy = scenes.cell_center(s.cell)
        half = scenes.EXTENT[s.size] / 2
        x0, x1 = int((cx + dx - half) // f) - margin, int((cx + dx + half) // f) + margin + 1
        y0, y1 = int((cy + dy - half) // f) - margin, int((cy + dy + half) // f) + margin + 1
        out[max(0, y0):min(side, y1), max(0, x0):min(side, x1)] = 1.0
    return out


# --bare-kinds choices (data.BARE_KINDS is something else: which parts a bare caption keeps)
BARE_CHOICES = ("all", "neither", "neither1", "nosize")


class Dataset:
    """All prepared chunks in memory; reload() picks up chunks prepared while training runs."""

    def __init__(self, tokenizer=None, grounding_tokenizer=None, bare_share: float = 0.0,
                 bare_kinds: str = "all", small_maps: bool = False,
                 layout_tokenizer=None, layout_share: float = 0.0) -> None:
        self.chunks = 0
        self.tokenizer = tokenizer  # set: batches also carry token ids (--text-layers)
        self.grounding_tokenizer = grounding_tokenizer  # set: and object tokens + masks
        # This share of samples takes the scene's bare caption (data.prepare_bare) instead of
        # one of its two captions. bare_kinds "neither": only scenes whose bare caption names
        # neither size nor place (a third of them) take it; the others keep their captions.
        # "neither1": of those, only the one-object scenes ("a red circle on a gray background").
        # "nosize": only scenes whose bare caption drops the sizes but keeps the places.
        self.bare_share = bare_share
        if bare_kinds not in BARE_CHOICES:
            raise ValueError(f"bare_kinds must be one of {', '.join(BARE_CHOICES)}, "
                             f"got {bare_kinds!r}")
        self.bare_kinds = bare_kinds
        # Set: batches also carry small_boxes() of each scene (for --small-weight).
        self.small_maps = small_maps
        # Set: this share of the samples that keep a caption trains with paint-with-words
        # (training/layout_bias.py): the bare caption, and a region per object.
        self.layout_tokenizer = layout_tokenizer if layout_share else None
        self.layout_share = layout_share
        if layout_share and (tokenizer is not None or grounding_tokenizer is not None):
            raise SystemExit("--layout-share works with the frozen text encoder only (not with "
                             "--text-layers or --grounding)")
        if bare_share and (tokenizer is not None or grounding_tokenizer is not None):
            raise SystemExit("bare captions work with the frozen text encoder only (not with "
                             "--text-layers or --grounding)")
        self.reload()
        if not self.chunks:
            raise SystemExit("no training data: run `python -m desktop_app.training.data text` "
                             "and `... latents` first")

    @staticmethod
    def available() -> int:
        c = 0
        while (data.DATA_DIR / f"lat_{c:03d}.pt").exists() and (
                data.DATA_DIR / f"text_{c:03d}.pt").exists():
            c += 1
        return c

    def reload(self) -> bool:
        import torch

        if self.available() <= self.chunks:
            return False
        self.emb, self.lat, self.mlat, self.masks, self.fg = [], [], [], [], []
        small: list[np.ndarray] = []
        bare_ok: list[np.ndarray] = []
        bare_caps: list[str] = []
        captions: list[str] = []
        scene_list: list = []
        c = 0
        while (data.DATA_DIR / f"lat_{c:03d}.pt").exists() and (
                data.DATA_DIR / f"text_{c:03d}.pt").exists():
            t = torch.load(data.DATA_DIR / f"text_{c:03d}.pt", weights_only=False)
            lt = torch.load(data.DATA_DIR / f"lat_{c:03d}.pt", weights_only=False)
            if self.bare_share or self.layout_share:
                bare_path = data.DATA_DIR / f"bare_{c:03d}.pt"
                if not bare_path.exists():
                    raise SystemExit(f"no bare captions for chunk {c}: run `python -m "
                                     "desktop_app.training.data bare --chunks N` first")
                bare = torch.load(bare_path, weights_only=False)
                t["emb"] = torch.cat([t["emb"], bare["emb"]], dim=1)
                bare_ok.append(self._bare_ok(c, bare["captions"]))
                bare_caps += [scene[0] for scene in bare["captions"]]
            self.emb.append(t["emb"])
            captions += [text for scene in t.get("captions", ()) for text in scene]
            scene_list += t.get("scenes", [])
            self.lat.append(lt["lat"])
            self.mlat.append(lt["mlat"])
            self.masks.append(lt["mask_bits"])
            fg_path = data.DATA_DIR / f"fg_{c:03d}.pt"
            self.fg.append(torch.load(fg_path) if fg_path.exists()
                           else torch.zeros(lt["lat"].shape[0], *lt["lat"].shape[-2:]).half())
            if self.small_maps:
                stored = t.get("scenes")
                sc = ([data.scene_from_json(d) for d in stored] if stored is not None
                      else data.chunk_scenes(c))
                if len(sc) != lt["lat"].shape[0]:
                    raise SystemExit(f"chunk {c}: {len(sc)} scenes for {lt['lat'].shape[0]} "
                                     "latents; rerun `python -m desktop_app.training.data text`")
                small.append(np.stack([small_boxes(s, lt["lat"].shape[-1]) for s in sc]))
            c += 1
        self.chunks = c
        self.emb = torch.cat(self.emb)
        self.lat = torch.cat(self.lat)
        self.mlat = torch.cat(self.mlat)
        self.masks = torch.cat(self.masks)
        self.fg = torch.cat(self.fg)
        self.small = torch.from_numpy(np.concatenate(small)).half() if small else None
        self.empty = torch.load(data.DATA_DIR / "empty.pt")
        self.masked_full = torch.load(data.DATA_DIR / "masked_full.pt")
        self.n = len(self.lat)
        self.bare_ok = np.concatenate(bare_ok) if bare_ok else None
        if self.tokenizer is not None:
            k = self.emb.shape[1]
            if len(captions) != self.n * k:
                raise SystemExit("--text-layers needs the captions in the text chunks: rerun "
                                 "`python -m desktop_app.training.data text`")
            ids, att = data.tokenize(self.tokenizer, captions + [""])
            self.ids, self.att = ids[:-1].view(self.n, k, -1), att[:-1].view(self.n, k, -1)
            self.empty_ids, self.empty_att = ids[-1], att[-1]
        if self.grounding_tokenizer is not None:
            self._prepare_grounding(captions, scene_list)
        if self.layout_share:
            self._prepare_layout(bare_caps, scene_list)
        return True

    def _prepare_layout(self, bare_caps: list[str], scene_list: list) -> None:
        """Each scene's objects and the tokens of their "<colour> <shape>" in its bare caption."""
        import torch

        from desktop_app.training import grounding

        if len(bare_caps) != self.n or len(scene_list) != self.n:
            raise SystemExit("--layout-share needs the scenes in the text chunks and the bare "
                             "captions: rerun `python -m desktop_app.training.data text` and "
                             "`... bare`")
        self.scenes = [data.scene_from_json(d) for d in scene_list]
        self.lay_tokens = torch.from_numpy(grounding.token_matrix(
            self.layout_tokenizer, bare_caps, self.scenes, data.MAX_TOKENS))

    def _prepare_grounding(self, captions: list[str], scene_list: list) -> None:
        import torch

        from desktop_app.training import grounding

        k = self.emb.shape[1]
        if len(captions) != self.n * k or len(scene_list) != self.n:
            raise SystemExit("--grounding needs the captions and scenes in the text chunks: "
                             "rerun `python -m desktop_app.training.data text`")
        sc = [data.scene_from_json(d) for d in scene_list]
        self.obj_masks = torch.from_numpy(np.stack(
            [grounding.object_masks(s) for s in sc]).reshape(self.n, grounding.MAX_OBJECTS, -1))
        self.obj_tokens = torch.from_numpy(grounding.token_matrix(
            self.grounding_tokenizer, captions, [s for s in sc for _ in range(k)],
            data.MAX_TOKENS)).view(self.n, k, grounding.MAX_OBJECTS, -1)

    def _bare_ok(self, c: int, stored: list[list[str]]) -> np.ndarray:
        """Which of chunk c's scenes may take their bare caption."""
        if self.bare_kinds == "all":
            return np.ones(len(stored), bool)
        kinds, caps = data.bare_draws(c)
        if caps != [scene[0] for scene in stored]:
            raise SystemExit(f"bare_{c:03d}.pt was made from other scenes or another seed: "
                             "delete the bare chunks and rerun `python -m desktop_app.training.data "
                             "bare`")
        wanted = (False, True) if self.bare_kinds == "nosize" else (False, False)
        ok = np.array(kinds) == data.BARE_KINDS.index(wanted)
        if self.bare_kinds == "neither1":
            ok &= np.array([len(s.shapes) == 1 for s in data.chunk_scenes(c)])
        return ok

    def batch(self, rng: np.random.Generator, size: int):
        import torch
        import torch.nn.functional as F

        idx = torch.from_numpy(rng.integers(0, self.n, size))
        if self.bare_share:  # slot 2 is the bare caption
            bare = (rng.random(size) < self.bare_share) & self.bare_ok[idx.numpy()]
            cap = torch.from_numpy(np.where(bare, 2, rng.integers(0, 2, size)))
        else:
            cap = torch.from_numpy(rng.integers(0, 2, size))  # slot 2, if loaded, is the bare one
        drop = torch.from_numpy(rng.random(size) < CFG_DROP)
        layout = None
        if self.layout_share:  # paint-with-words samples read the bare caption (slot 2)
            lay = (rng.random(size) < self.layout_share) & ~drop.numpy()
            cap[torch.from_numpy(lay)] = 2
            layout = self._layout(rng, idx.numpy(), lay)
        if self.tokenizer is None:  # the cached embeddings of the frozen encoder
            emb = self.emb[idx, cap].float()
            emb[drop] = self.empty.float()
            tokens = None
        else:  # token ids for the trained text layers (TextTop), which embed them
            ids, att = self.ids[idx, cap].clone(), self.att[idx, cap].clone()
            ids[drop], att[drop] = self.empty_ids, self.empty_att
            emb, tokens = None, (ids, att)
        lat = self.lat[idx].float()
        bits = np.unpackbits(self.masks[idx].numpy(), axis=-1)[..., :256].astype(np.float32)
        mask = F.interpolate(torch.from_numpy(bits)[:, None], size=lat.shape[-2:])  # nearest
        mlat = self.mlat[idx].float()
        full = torch.from_numpy(rng.random(size) < 0.5)
        mask[full] = 1.0
        mlat[full] = self.masked_full.float()
        ground = None
        if self.grounding_tokenizer is not None:
            obj_tokens = self.obj_tokens[idx, cap].float()
            obj_tokens[drop] = 0.0
            ground = (obj_tokens, self.obj_masks[idx].float())
        small = self.small[idx].float()[:, None] if self.small is not None else None
        return (lat, mask, mlat, emb, self.fg[idx].float()[:, None], tokens, ground, small,
                layout)

    def _layout(self, rng: np.random.Generator, idx: np.ndarray, lay: np.ndarray):
        """(rects, tokens, strength) for layout_bias.LayoutBias.set: zero strength and no
        tokens for the samples without a layout."""
        import torch

        from desktop_app.training import layout_bias

        rects = np.zeros((len(idx), layout_bias.MAX_OBJECTS, 4), np.float32)
        strength = np.zeros(len(idx), np.float32)
        for b in np.flatnonzero(lay):
            rects[b] = layout_bias.object_rects(self.scenes[idx[b]], rng)
            strength[b] = rng.uniform(*layout_bias.STRENGTH)
        tokens = self.lay_tokens[torch.from_numpy(idx)].clone()
        tokens[torch.from_numpy(~lay)] = False
        return torch.from_numpy(rects), tokens, torch.from_numpy(strength)
