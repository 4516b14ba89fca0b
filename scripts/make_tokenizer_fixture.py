"""Write a tiny, valid CLIP BPE tokenizer to tests/fixtures/clip_tokenizer (offline, deterministic).

Vocabulary: the 256 byte-level symbols, the same with '</w>', whole words used by the tests and the
built-in world, and the two special tokens. Re-run only to change the vocabulary.
"""

from __future__ import annotations

import json
from pathlib import Path


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable unicode table, as CLIP's BPE uses it."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) + list(
        range(ord("\xae"), ord("\xff") + 1)
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs], strict=True))

WORDS = """a an the and of on in at with to is big small red green blue yellow purple orange white
black gray light circle square triangle top bottom left right center middle background cat dog
photo painting sky tree house car""".split()


def main() -> None:
    out = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "clip_tokenizer"
    out.mkdir(parents=True, exist_ok=True)
    symbols = list(bytes_to_unicode().values())
    vocab: list[str] = symbols + [s + "</w>" for s in symbols]
    merges: list[str] = []
    for w in WORDS:
        # Merge left to right: ((a b) c) ... with the last symbol carrying </w>.
        parts = list(w[:-1]) + [w[-1] + "</w>"]
        cur = parts[0]
        for p in parts[1:]:
            merges.append(f"{cur} {p}")
            cur = cur + p
            if cur not in vocab:
                vocab.append(cur)
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    seen: dict[str, int] = {}
    for tok in vocab:
        seen.setdefault(tok, len(seen))
    (out / "vocab.json").write_text(json.dumps(seen, ensure_ascii=False))
    uniq = list(dict.fromkeys(merges))
    (out / "merges.txt").write_text("#version: 0.2\n" + "\n".join(uniq) + "\n")
    from transformers import CLIPTokenizer

    tok = CLIPTokenizer(str(out / "vocab.json"), str(out / "merges.txt"), model_max_length=77)
    tok.save_pretrained(out)
    print(len(seen), "tokens; eos id", tok.eos_token_id, tok("a big red circle").input_ids)


if __name__ == "__main__":
    main()
