"""Caption text encoders: per-token outputs, tags kept whole, slot ids, the umT5 local path."""

from __future__ import annotations

import pytest
import torch

from facevox.codecs.base import CodecFilesError
from facevox.codecs.tags import MAX_SLOTS, caption_tags, slot_ids, tag_roles

CAPTION = (
    "Two friends in a kitchen. <REF_1_S> a tall man <REF_1_E> <REF_2_S> a woman <REF_2_E> "
    "<S1> hello there <E1> <S2> hi <E2>"
)


def test_tag_set_covers_eight_slots():
    tags = caption_tags()
    assert MAX_SLOTS >= 8 and len(tags) == len(set(tags)) == 2 + 4 * MAX_SLOTS
    assert {"<S>", "<E>", "<S8>", "<E8>", "<REF_8_S>", "<REF_8_E>"} <= set(tags)


def test_slot_ids_logic():
    roles = tag_roles()
    toks = ["x", "<REF_2_S>", "a", "<REF_2_E>", "y", "<S1>", "b", "c", "<E1>", "<S>", "d", "<E>"]
    assert slot_ids(toks, roles) == [-1, 1, 1, 1, -1, 0, 0, 0, 0, -1, -1, -1]
    assert slot_ids(["<S3>", "w"], roles) == [2, 2]  # truncated caption: runs to the end
    with pytest.raises(ValueError, match="closes"):
        slot_ids(["<S1>", "w", "<E2>"], roles)
    with pytest.raises(ValueError, match="opens inside"):
        slot_ids(["<S1>", "<REF_1_S>"], roles)


@pytest.fixture(scope="module")
def minilm():
    from facevox.codecs.text import MiniLMTextEncoder

    return MiniLMTextEncoder.from_pretrained()


def test_minilm_per_token_states_tags_and_slots(minilm):
    enc = minilm.encode([CAPTION, "<S> short line <E>"])
    b, length, d = enc.hidden.shape
    assert (b, d, minilm.hidden_size) == (2, 384, 384)
    assert enc.mask.shape == enc.slot_ids.shape == enc.input_ids.shape == (2, length)
    tokens = minilm.tokenizer.convert_ids_to_tokens(enc.input_ids[0].tolist())
    for tag in ("<REF_1_S>", "<REF_1_E>", "<REF_2_S>", "<REF_2_E>", "<S1>", "<E1>", "<S2>", "<E2>"):
        assert tokens.count(tag) == 1, tag
    assert len({minilm.tokenizer.convert_tokens_to_ids(t) for t in caption_tags()}) == len(caption_tags())
    slots = enc.slot_ids[0].tolist()
    assert slots[tokens.index("tall")] == 0 and slots[tokens.index("woman")] == 1
    assert slots[tokens.index("hello")] == 0 and slots[tokens.index("hi")] == 1
    assert slots[tokens.index("kitchen")] == -1
    # the short caption is padded: mask off and slot -1 beyond its length, and tokens differ in state
    assert not bool(enc.mask[1, -1]) and int(enc.slot_ids[1, -1]) == -1
    assert float((enc.hidden[0, 1] - enc.hidden[0, 2]).abs().max()) > 1e-3


def test_minilm_is_deterministic_across_loads(minilm):
    from facevox.codecs.text import MiniLMTextEncoder

    again = MiniLMTextEncoder.from_pretrained()
    torch.testing.assert_close(again.encode([CAPTION]).hidden, minilm.encode([CAPTION]).hidden)


def _tiny_umt5_folder(folder):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, UMT5Config, UMT5EncoderModel

    words = ["<pad>", "</s>", "<unk>", "a", "tall", "man", "hello", "there", "speech", "of", "speaker"]
    words += ["1", "2", "begins", "ends", "appearance", "person", "kitchen", "."]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )
    torch.manual_seed(0)
    cfg = UMT5Config(vocab_size=len(words), d_model=16, d_kv=8, d_ff=32, num_layers=2, num_heads=2)
    UMT5EncoderModel(cfg).save_pretrained(str(folder / "text_encoder"), safe_serialization=True)
    fast.save_pretrained(str(folder / "tokenizer"))


def test_umt5_tiny_local_folder(tmp_path):
    from facevox.codecs.text import T5TextEncoder

    _tiny_umt5_folder(tmp_path)
    enc = T5TextEncoder.from_pretrained(tmp_path, max_length=32)
    out = enc.encode(["kitchen . <S1> hello there <E1>", "<REF_2_S> a tall man <REF_2_E>"])
    assert out.hidden.shape[0] == 2 and out.hidden.shape[2] == 16 == enc.hidden_size
    toks = enc.tokenizer.convert_ids_to_tokens(out.input_ids[0].tolist())
    assert toks[:6] == ["kitchen", ".", "<S1>", "hello", "there", "<E1>"]
    assert out.slot_ids[0, :6].tolist() == [-1, -1, 0, 0, 0, 0]
    assert out.slot_ids[1, :5].tolist() == [1] * 5
    # saved with its tags, it loads back to the same states
    enc.save_pretrained(tmp_path / "saved")
    again = T5TextEncoder.from_pretrained(tmp_path / "saved", max_length=32)
    torch.testing.assert_close(
        again.encode(["<S1> hello <E1>"]).hidden, enc.encode(["<S1> hello <E1>"]).hidden
    )


def test_t5_missing_folder_names_it(tmp_path):
    from facevox.codecs.text import T5TextEncoder

    with pytest.raises(CodecFilesError, match=str(tmp_path / "umt5")):
        T5TextEncoder.from_pretrained(tmp_path / "umt5")
