"""The real-size models map one-to-one onto the committed checkpoint manifests (meta device, names
and shapes only), and the mapping fails on a missing, extra or mis-shaped key."""

from __future__ import annotations

import math
import re

import pytest

from facevox.models import get_config
from facevox.models.manifests import load_manifest
from facevox.models.manifests.describe import describe
from facevox.release import check_layout


def test_committed_manifests_match_the_description() -> None:
    for name in ("iap", "ovi"):
        assert load_manifest(name) == describe(name), f"{name}.json is stale: rerun describe"
    with pytest.raises(ValueError, match="unknown manifest"):
        load_manifest("hunyuan")


def test_iap_5b_maps_one_to_one_onto_the_release() -> None:
    manifest = load_manifest("iap")
    mapped, fresh = check_layout(manifest, get_config("iap-5b"), "iap")
    assert fresh == ["identity.table"]  # the single-subject release has no identity embedding
    # every release tensor lands on one model key but the copies the release's forward never reads:
    # the disabled reference cross-attention (norm3_prime + cross_attn_prime: 2 + 10 tensors per block,
    # both towers) and the audio tower's self-attention / FFN / modulation copies (10 + 4 + 1)
    ignored = [
        k
        for k in manifest
        if re.search(r"\.(norm3_prime|cross_attn_prime)\.", k)
        or (k.startswith("audio_model.") and "_prime" in k)
    ]
    assert len(ignored) == 30 * (2 * 12 + 15)
    assert len(mapped) == len(manifest) - len(ignored)
    assert "blocks.29.video.ref.modulation" in mapped and "blocks.0.video.ref.ffn.fc2.weight" in mapped
    params = sum(math.prod(v) for v in manifest.values())
    assert 21.4e9 < params < 21.6e9  # the file, unused copies included
    used = params - sum(math.prod(manifest[k]) for k in ignored)
    assert used == 15_437_254_868  # two 5.x B towers + the video reference copy


def test_ovi_checkpoint_initialises_iap_5b_and_ovi_11b() -> None:
    manifest = load_manifest("ovi")
    _, fresh = check_layout(manifest, get_config("iap-5b"), "ovi")
    assert fresh == ["identity.table"]  # reference copies are cloned from the Ovi weights
    _, fresh = check_layout(manifest, get_config("ovi-11b"), "ovi")
    assert all(k == "identity.table" or re.search(r"\.ref\.(q|k|v|o)\.(down|up)\.weight$", k) for k in fresh)


@pytest.mark.parametrize("perturbation", ["missing", "extra", "shape", "renamed"])
def test_release_mapping_is_strict(perturbation: str) -> None:
    manifest = dict(load_manifest("iap"))
    if perturbation == "missing":
        manifest.pop("video_model.blocks.7.self_attn.k_prime.weight")
        expected = "no source"
    elif perturbation == "extra":
        manifest["video_model.blocks.3.self_attn.q_extra.weight"] = (3072, 3072)
        expected = "match no rule"
    elif perturbation == "shape":
        manifest["audio_model.blocks.12.ffn.0.weight"] = (14336, 3071)
        expected = "has shape"
    else:  # a key that maps onto a name the model lacks
        manifest["audio_model.blocks.30.ffn.0.weight"] = manifest.pop("audio_model.blocks.29.ffn.0.weight")
        expected = "does not have"
    with pytest.raises(ValueError, match=expected):
        check_layout(manifest, get_config("iap-5b"), "iap")
