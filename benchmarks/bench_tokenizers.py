"""Would HF `tokenizers` make the runtime's text -> ids step faster? Checked, then timed.

    python benchmarks/bench_tokenizers.py MODEL_DIR TEXTS... [--repeat 15000]

Builds, from the model directory's own files, a `tokenizers` pipeline meant to give exactly the
runtime's ids: a `Split` pre-tokenizer whose regex is the model's tokenizer pattern rewritten for
Oniguruma (every character class spelled out code point by code point from Python's own ``re``, so
``\\w``, ``\\s`` and ``.`` mean what they mean in Python), a `WordLevel` model over the words that
the case policy maps to themselves, Python's ``str.lower`` before it when the model lowercases,
truncation at ``max_tokens``, and the tokens it calls unknown looked up again through the
runtime's vocabulary (the case policy's other forms). It then checks id for id against
``Model.encode`` on every text of the given files (TSV: first column after a header; other files:
one text per line) plus hostile cases, and times both paths on the same texts, best of 5.
`tokenizers` is not a dependency of metaprep: ``pip install tokenizers`` to run this.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np

from metaprep.exporter.textgraph import re2_pattern  # its syntax is Oniguruma's too
from metaprep.ids import UNK_ID
from metaprep.runtime import Model


# --- the tokenizers pipeline ---------------------------------------------------------------------
def build(model: Model) -> tuple[Callable[[Sequence[str]], list[list[int]]], Any]:
    """(texts -> ids exactly as the runtime, the bare tokenizers.Tokenizer)"""
    from tokenizers import Regex, Tokenizer, pre_tokenizers
    from tokenizers.models import WordLevel

    cfg, vocab = model.tokenizer.config, model.vocab
    words = [vocab.word(r) for r in range(len(vocab))]
    keep = (lambda w: w.lower() == w) if vocab.case_policy == "lower" else (lambda w: True)
    table: dict[str, int] = {"\n": UNK_ID}  # no word holds a line break: "\n" is free for UNK
    for row, w in enumerate(words):
        if keep(w):
            table.setdefault(w, row + 2)  # the first row of a word wins, as in the index
    tok = Tokenizer(WordLevel(table, unk_token="\n"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(re2_pattern(cfg.mode, cfg.pattern)),
                                             behavior="removed", invert=True)
    tok.enable_truncation(model.max_tokens)
    lower = cfg.lowercase

    def encode(texts: Sequence[str]) -> list[list[int]]:
        src = [t.lower() for t in texts] if lower else list(texts)
        out = []
        for text, enc in zip(src, tok.encode_batch_fast(src, add_special_tokens=False),
                             strict=True):
            ids = enc.ids
            if UNK_ID in ids:  # unknown to the table: the case policy's other forms
                offsets = tok.encode(text, add_special_tokens=False).offsets
                ids = [vocab.id(text[a:b]) if i == UNK_ID else i
                       for i, (a, b) in zip(ids, offsets, strict=True)]
            out.append(ids)
        return out

    return encode, tok


def _read(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return [ln.split("\t")[0] for ln in lines[1:]] if path.suffix == ".tsv" else lines


HOSTILE = ["", "   ", "\t\n", "İstanbul ΑΣ Σα ΌΣΟΣ", "naïve café — “quotes” 'n' it's",
           "e\u0301t\u00e9", "x\u00b2 \u00bd \u2460 \u0663\u0664 ¼",
           "a\x00b\x1fc\x1cd\u2028e\u00a0f\u3000g",
           "🙂👍🏽 👨‍👩‍👧 ✓ ©", "日本語のテキスト、中文。", "ﬁne ﬂow ǅ Å", "under_score __x__",
           "rock'n'roll x-ray -- ' -a- ’tis", "word " * 5000, "é" * 100_000, "\ufffd\ufffd bad"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("texts", type=Path, nargs="+")
    ap.add_argument("--repeat", type=int, default=15_000, help="texts timed (repeated)")
    args = ap.parse_args()
    model = Model(args.model)
    start = time.perf_counter()
    hf, bare = build(model)
    print(f"built the tokenizers pipeline in {time.perf_counter() - start:.2f} s "
          f"({len(model.vocab):,} words)")
    sets = {p.name: _read(p) for p in args.texts} | {"hostile": HOSTILE}
    for name, texts in sets.items():
        want = [model.encode(t) for t in texts]
        got = hf(texts)
        bad = [k for k, (a, b) in enumerate(zip(want, got, strict=True)) if a != b]
        print(f"{name}: {len(texts):,} texts, {sum(map(len, want)):,} ids, "
              f"{len(bad)} differ" + (f" (first: {texts[bad[0]][:80]!r})" if bad else ""))
    try:
        hf(["a\ud800b"])
        print("a lone surrogate: accepted")
    except TypeError as exc:  # the runtime reads it (surrogates are [^\w\s] tokens)
        print(f"a lone surrogate: tokenizers refuses it ({exc}); the runtime's path must take it")

    first = next(iter(sets.values()))
    texts = (first * (args.repeat // max(1, len(first)) + 1))[: args.repeat]

    def ours() -> None:
        lists = model.text_ids.tokens(texts)
        model.vocab.encode_array(list(chain.from_iterable(lists)))

    def theirs() -> None:
        ids = hf(texts)
        np.fromiter(chain.from_iterable(ids), dtype=np.int64)

    def bare_call() -> None:  # a lower bound: no lowercasing, no second look at unknown words
        encs = bare.encode_batch_fast(texts, add_special_tokens=False)
        np.fromiter(chain.from_iterable(e.ids for e in encs), dtype=np.int64)

    for label, fn in (("runtime (regex + mapped vocabulary)", ours),
                      ("tokenizers, exact ids", theirs),
                      ("tokenizers, encode_batch_fast alone", bare_call)) * 2:
        best = min(_wall(fn) for _ in range(5))
        print(f"{label:38s} {len(texts) / best:12,.0f} texts/s ({1e3 * best:.0f} ms)")


def _wall(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
