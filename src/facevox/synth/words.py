"""Random sentences from the word list the project ships (``facevox/assets/words.txt``)."""

from __future__ import annotations

import functools
from importlib import resources

import numpy as np


@functools.cache
def words() -> tuple[str, ...]:
    text = resources.files("facevox").joinpath("assets/words.txt").read_text(encoding="utf-8")
    out = tuple(w.strip() for w in text.splitlines() if w.strip())
    if not out:
        raise RuntimeError("facevox/assets/words.txt is empty")
    return out


def random_sentence(rng: np.random.Generator, min_words: int, max_words: int) -> str:
    """A sentence of ``min_words..max_words`` words drawn uniformly from the shipped list."""
    if not 1 <= min_words <= max_words:
        raise ValueError(f"need 1 <= min_words <= max_words, got {min_words}, {max_words}")
    vocab = words()
    n = int(rng.integers(min_words, max_words + 1))
    return " ".join(vocab[int(i)] for i in rng.integers(0, len(vocab), n))
