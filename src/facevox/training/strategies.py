"""What each training stage trains, which references it feeds, and what it denoises.

The paper (arXiv 2603.17889, "What trains"): stage 1 trains the asymmetric self-attention and the
reference weights W^(r); stages 2 and 3 train self-attention, text cross-attention, the V2A/A2V
bridge, W^(z) and W^(r); the FFNs stay frozen throughout. Our reading of the names: W^(r) are the
reference-token adapters (``*.ref.*``), W^(z) the identity embedding (``identity.*``); the bridge's
key/value projections live inside each tower's cross-attention (``cross_attn.*_bridge``).

The release starts from pretrained Ovi; we start from random weights, so a ``base`` strategy
(every parameter, no references, plain joint audio-video flow matching) comes first.

- ``stage1`` (unimodal identity): each sample denoises *one* modality, drawn at random; the other
  stream is given as pure noise (sigma = 1) and carries no loss, so neither tower can read the
  target through the bridge. Each tower sees its own references (faces for video, voices for audio)
  taken from the sample's own clip.
- ``stage2`` (joint multimodal identity): both streams noised, both kinds of reference from the
  sample's own clip, single- and multi-person samples.
- ``stage3`` (multi-view identity fine-tuning): as stage 2 with references from *other* clips and
  views of the same person (curation's references), so copying the reference cannot solve it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from torch import nn

SELF_ATTN = r"blocks\.\d+\.(video|audio)\.self_attn\."
CROSS_ATTN = r"blocks\.\d+\.(video|audio)\.(cross_attn|cross_norm)\."  # text + V2A/A2V bridge
REF = r"blocks\.\d+\.(video|audio)\.ref\."  # W^(r)
IDENTITY = r"identity\."  # W^(z)
# the FFNs, the reference copies' too (``ref_params="copy"``): "Norm + FFN frozen in all stages"
FFN = r"blocks\.\d+\.(video|audio)\.(ref\.)?ffn\."
VIDEO_TOWER = r"(blocks\.\d+\.video\.|video_)"  # every video-tower parameter (stage_params="video")
AUDIO_FFN = r"blocks\.\d+\.audio\.(ref\.)?ffn\."  # what stage_params="video" keeps frozen


@dataclass(frozen=True, kw_only=True)
class Strategy:
    name: str
    trainable: tuple[str, ...]  # regexes matched at the start of parameter names
    references: Literal["none", "self", "cross"]  # which references the sample feeds
    unimodal: bool  # denoise one modality per sample (the other is pure noise, no loss)

    def select(self, model: nn.Module, params: Literal["paper", "video", "all"] = "paper") -> list[str]:
        """Set ``requires_grad`` by the patterns; return the trainable names (FFNs never in stages).

        ``params="all"`` trains every parameter with this stage's references and noise, ``"video"``
        the paper's selection plus every parameter of the video tower (its FFNs, patch embedding and
        head): our departure for a base trained here from scratch. The paper freezes what a pretrained
        Ovi already renders; a tiny base with frozen FFNs cannot learn to draw a person it is shown
        (docs/results.md)."""
        if params not in ("paper", "video", "all"):
            raise ValueError(f"stage parameters must be 'paper', 'video' or 'all', got {params!r}")
        pats = [re.compile(p) for p in self.trainable]
        frozen: str | None = FFN  # never trained by a stage, whatever the patterns say
        if params == "all":
            pats, frozen = [re.compile(r".")], None
        elif params == "video":
            pats.append(re.compile(VIDEO_TOWER))
            frozen = AUDIO_FFN
        if self.name == "base":
            frozen = None
        names = []
        for name, p in model.named_parameters():
            train = any(pat.match(name) for pat in pats) and not (frozen and re.match(frozen, name))
            p.requires_grad_(train)
            if train:
                names.append(name)
        if not names:
            raise ValueError(f"strategy {self.name!r} selects no parameter of {type(model).__name__}")
        return names


STRATEGIES: dict[str, Strategy] = {
    "base": Strategy(name="base", trainable=(r".",), references="none", unimodal=False),
    "stage1": Strategy(name="stage1", trainable=(SELF_ATTN, REF, IDENTITY), references="self", unimodal=True),
    "stage2": Strategy(
        name="stage2", trainable=(SELF_ATTN, CROSS_ATTN, REF, IDENTITY), references="self", unimodal=False
    ),
    "stage3": Strategy(
        name="stage3", trainable=(SELF_ATTN, CROSS_ATTN, REF, IDENTITY), references="cross", unimodal=False
    ),
}


def get_strategy(name: str) -> Strategy:
    if name not in STRATEGIES:
        raise ValueError(f"unknown training strategy {name!r}; known: {sorted(STRATEGIES)}")
    return STRATEGIES[name]
