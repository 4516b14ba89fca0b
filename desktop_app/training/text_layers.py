"""--text-layers: the text encoder's top layers, trained together with the built-in UNet."""

from __future__ import annotations

import copy

from desktop_app.training import common


class TextTop:
    """The text encoder's top `k` transformer layers, trained with the UNet (--text-layers k).

    The frozen all-MiniLM-L6-v2 gives each word a vector that barely depends on the rest of the
    sentence: in "a small blue square in the center and a big green triangle at the top left"
    and the same caption with the two places swapped, "square" has cosine 0.999 with itself and
    "center" 0.96. So which object goes where reached the UNet only through the order of the
    tokens, and two-object scenes stayed wrong even on captions of training scenes (every
    attribute of both right: 15% of 48, against 16% held out). Trained top layers can write an
    object's place into its words and its colour and shape into its place words. They start as
    the shipped (pretrained) layers, so training starts from the same function; the layers below
    stay frozen and everything keeps the diffusers BertModel format."""

    def __init__(self, k: int) -> None:
        import torch
        from transformers import AutoTokenizer, BertModel

        self.k = k
        self.tok = AutoTokenizer.from_pretrained(common.MODEL_DIR / "tokenizer")
        self.enc = BertModel.from_pretrained(common.MODEL_DIR / "text_encoder",
                                             add_pooling_layer=False).float().eval()
        n = len(self.enc.encoder.layer)
        if not 0 < k <= n:
            raise SystemExit(f"--text-layers must be 1..{n} (the text encoder has {n} layers)")
        self.enc.requires_grad_(False)
        self.top = self.enc.encoder.layer[n - k:]
        self.top.requires_grad_(True)
        self.ema = copy.deepcopy(self.top).requires_grad_(False)
        self.start = torch.nn.utils.parameters_to_vector(self.top.parameters()).detach().clone()

    def params(self) -> list:
        return list(self.top.parameters())

    def __call__(self, tokens):
        ids, att = tokens
        return self.enc(ids, attention_mask=att)[0]

    def state(self) -> dict:
        return {"text_layers": self.k, "text": self.top.state_dict(),
                "text_ema": self.ema.state_dict()}

    def load(self, st: dict) -> None:
        self.top.load_state_dict(st["text"])
        self.ema.load_state_dict(st["text_ema"])

    def update_ema(self, decay: float) -> None:
        import torch

        with torch.no_grad():
            for pe, p in zip(self.ema.parameters(), self.top.parameters(), strict=True):
                pe.lerp_(p, 1 - decay)

    def drift(self) -> float:
        """How far the trained layers have moved: relative L2 change of their weights."""
        import torch

        now = torch.nn.utils.parameters_to_vector(self.top.parameters()).detach()
        return float((now - self.start).norm() / self.start.norm())

    def export(self, out=None) -> None:
        """The EMA weights as the model folder's text encoder (`out`: another model folder)."""
        from desktop_app.training import export

        enc = copy.deepcopy(self.enc)
        n = len(enc.encoder.layer)
        enc.encoder.layer[n - self.k:].load_state_dict(self.ema.state_dict())
        export.save_text_encoder(enc, out)
