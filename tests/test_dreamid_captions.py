"""DreamID-Omni's caption format both ways, tested on the example captions of its public repository
(GitHub Guoxu1233/DreamID-Omni at commit 9a9f456, Apache-2.0), quoted below as data: each file is one
JSON string, reproduced byte for byte."""

from __future__ import annotations

import json
from typing import Any

import pytest

from facevox.pipeline.request import check_caption
from facevox.release.dreamid_captions import (
    CLIP_SECONDS,
    DreamIDCaptionError,
    TimestampPastClipError,
    TooManyPeopleError,
    dreamid_prompt,
    from_dreamid_caption,
    to_dreamid_caption,
)

# test_case/oneip/captions/9.json
ONEIP_9 = json.loads(
    r'''"[IMAGE_CAPTIONS_START]\n<img1>: In the frame, a woman with black long hair is identified as <sub1>.\n[IMAGE_CAPTIONS_END]\n\n[FINAL_VIDEO_CAPTION_START]\n[VISUAL_DESCRIPTION_START]\n**Overall Environment/Scene**: A lively open-kitchen café at night; stove flames flare, steam rises, and warm pendant lights swing slightly as staff move behind her. The shot is an upper-body close-up.\n**Main Characters/Subjects Appearance**: <sub1> is a young woman with thick dark wavy hair and a side part. She wears a fitted black top under a light apron, a thin gold chain necklace, and small stud earrings.\n**Main Characters/Subjects Actions**: <sub1> tastes the sauce with a spoon, then turns her face toward the camera while still holding the spoon, her expression shifting from focused to conflicted.\n[VISUAL_DESCRIPTION_END]\n\n[AUDIO_DESCRIPTION_START]\nOil sizzles, utensils clink, orders are called out in the background, and a vent fan hums steadily. Her voice is clear, quiet, and tense.\n[AUDIO_DESCRIPTION_END]\n\n[CO_ANALYSIS_START]\n<sub1> maintains eye contact, swallows as if choosing her words, and says, <S>I keep telling myself I’m fine,but some nights it feels like I’m just performing calm.<E>\n[CO_ANALYSIS_END]\n[FINAL_VIDEO_CAPTION_END]\n\n[SPEAKER_TIMESTAMPS_START]\n{\n    \"<sub1>\": [\"<Time_S>00.00.000-00.05.000<Time_E>\"]\n}\n[SPEAKER_TIMESTAMPS_END]"'''
)
# test_case/twoip/captions/20.json
TWOIP_20 = json.loads(
    r'''"[IMAGE_CAPTIONS_START]\n<img1>: A young man with wavy brown hair, identified as <sub1>.\n<img2>: The Mona Lisa painting, a woman, identified as <sub2>.\n[IMAGE_CAPTIONS_END]\n\n[FINAL_VIDEO_CAPTION_START]\n[VISUAL_DESCRIPTION_START]\n**Overall Environment/Scene**: A serene Italian Renaissance garden at dusk. The warm, golden light of the setting sun filters through cypress trees. In the background, a marble fountain gently trickles. The shot is an upper-body close-up of the two subjects.\n**Main Characters/Subjects Appearance**: <sub1>, on the left, wears a simple linen shirt appropriate for the era. <sub2>, on the right, is dressed in a dark, elegant gown, her hair styled softly.\n**Main Characters/Subjects Actions**: <sub1> looks at <sub2> with an earnest and gentle expression, leaning in slightly as if sharing a secret. <sub2> holds a demure pose, listening with a faint, enigmatic smile playing on her lips, her gaze directed towards <sub1>.\n[VISUAL_DESCRIPTION_END]\n\n[AUDIO_DESCRIPTION_START]\nThe gentle sound of water from a fountain and distant evening birdsong. <sub1> speaks in a soft, sincere tone. <sub2>'s voice is quiet and melodious.\n[AUDIO_DESCRIPTION_END]\n\n[CO_ANALYSIS_START]\n<sub1> looks at <sub2> admiringly and says, <S>Your smile holds a thousand stories.<E> <sub2> glances back, her smile deepening slightly as she replies, <S>Perhaps one of them is about you.<E>\n[CO_ANALYSIS_END]\n[FINAL_VIDEO_CAPTION_END]\n\n[SPEAKER_TIMESTAMPS_START]\n{\n    \"<sub1>\": [\"<Time_S>00:02-00:05<Time_E>\"],\n    \"<sub2>\": [\"<Time_S>00:06-00:09<Time_E>\"]\n}\n[SPEAKER_TIMESTAMPS_END]"'''
)


def two_people(**speech_times: Any) -> dict[str, Any]:
    """A facevox caption of two people (the curate / request format, slots 1 and 2)."""
    first, second = speech_times.get("first", (0.2, 1.5)), speech_times.get("second", (1.75, 3.0))
    return {
        "scene": {"shot": "medium shot", "lighting": "soft", "background": "dark blue", "num_subjects": 2},
        "subjects": [
            {
                "slot": 1,
                "person_id": "P00012",
                "position": "left",
                "appearance": "a person with light skin and brown hair",
            },
            {
                "slot": 2,
                "person_id": "P00031",
                "position": "right",
                "appearance": "a person with dark skin and black hair",
            },
        ],
        "speech": [
            {"slot": 1, "start": first[0], "end": first[1], "text": "Hello there."},
            {"slot": 2, "start": second[0], "end": second[1], "text": "Hi, how are you?"},
            {"slot": 1, "start": 3.1, "end": 4.9, "text": "Fine."},
        ],
    }


# ---------------------------------------------------------------- DreamID-Omni's examples
def test_one_person_example_reads_as_a_facevox_caption() -> None:
    caption = from_dreamid_caption(ONEIP_9)
    check_caption(caption, 1)  # what `facevox generate` accepts
    assert caption["speech"] == [
        {
            "slot": 1,
            "start": 0.0,
            "end": 5.0,  # "<Time_S>00.00.000-00.05.000<Time_E>"
            "text": "I keep telling myself I\u2019m fine,but some nights it feels like I\u2019m just performing calm.",
        }
    ]
    (subject,) = caption["subjects"]
    assert subject["slot"] == 1 and subject["person_id"] == "sub1"
    assert subject["position"] == "unstated"  # the one-person caption does not say where
    assert subject["appearance"].startswith(
        "a young woman with thick dark wavy hair and a side part. She wears"
    )
    assert caption["scene"] == {
        "shot": "close-up",
        "lighting": "unstated",
        "background": "unstated",
        "num_subjects": 1,
    }
    assert caption["dreamid"]["image_captions"] == [
        "In the frame, a woman with black long hair is identified as <sub1>."
    ]
    assert caption["dreamid"]["analysis"].endswith("and says, <S><E>")
    assert "time_format" not in caption["dreamid"]  # MM.SS.mmm, the form facevox writes


def test_two_person_example_reads_as_a_facevox_caption() -> None:
    caption = from_dreamid_caption(TWOIP_20, person_ids=["man", "mona_lisa"], clip_seconds=10.0)
    check_caption(caption, 2)
    assert caption["speech"] == [
        {"slot": 1, "start": 2.0, "end": 5.0, "text": "Your smile holds a thousand stories."},
        {"slot": 2, "start": 6.0, "end": 9.0, "text": "Perhaps one of them is about you."},
    ]
    assert [(s["person_id"], s["position"], s["appearance"]) for s in caption["subjects"]] == [
        ("man", "left", "wears a simple linen shirt appropriate for the era"),
        ("mona_lisa", "right", "is dressed in a dark, elegant gown, her hair styled softly"),
    ]
    assert caption["dreamid"]["time_format"] == "mm:ss"


def test_two_person_example_is_timed_past_its_own_clip() -> None:
    # DreamID-Omni generates 121 frames at 24 fps (5.04 s); its example times <sub2> at 6-9 s. The public
    # inference script strips the timestamps before the text encoder, so it never noticed.
    assert CLIP_SECONDS == 121 / 24
    with pytest.raises(
        TimestampPastClipError, match=r"<sub2> .*00:06-00:09.*6.0-9.0 s ends past the 5.042 s clip"
    ):
        from_dreamid_caption(TWOIP_20)
    assert issubclass(TimestampPastClipError, ValueError)


@pytest.mark.parametrize(("text", "clip"), [(ONEIP_9, CLIP_SECONDS), (TWOIP_20, 10.0)])
def test_examples_round_trip_exactly(text: str, clip: float) -> None:
    caption = from_dreamid_caption(text, clip_seconds=clip)
    assert to_dreamid_caption(caption, clip_seconds=clip) == text
    caption["speech"][0]["text"] = "Something else."  # an edited line lands in its place
    edited = to_dreamid_caption(caption, clip_seconds=clip)
    assert "<S>Something else.<E>" in edited and edited.count("<S>") == text.count("<S>")


def test_prompt_is_what_the_engine_encodes() -> None:
    # inference_r2av.py load_mixed_data: no timestamps, no audio description, no [SECTION] markers
    assert dreamid_prompt(ONEIP_9) == (
        "<img1>: In the frame, a woman with black long hair is identified as <sub1>.\n"
        "**Overall Environment/Scene**: A lively open-kitchen caf\u00e9 at night; stove flames flare, steam rises, "
        "and warm pendant lights swing slightly as staff move behind her. The shot is an upper-body close-up.\n"
        "**Main Characters/Subjects Appearance**: <sub1> is a young woman with thick dark wavy hair and a side "
        "part. She wears a fitted black top under a light apron, a thin gold chain necklace, and small stud earrings.\n"
        "**Main Characters/Subjects Actions**: <sub1> tastes the sauce with a spoon, then turns her face toward "
        "the camera while still holding the spoon, her expression shifting from focused to conflicted.\n"
        "<sub1> maintains eye contact, swallows as if choosing her words, and says, <S>I keep telling myself "
        "I\u2019m fine,but some nights it feels like I\u2019m just performing calm.<E>"
    )
    assert "Time_S" not in dreamid_prompt(TWOIP_20) and "fountain and distant" not in dreamid_prompt(TWOIP_20)


# ---------------------------------------------------------------- facevox captions
def test_facevox_caption_round_trips_through_dreamid_text() -> None:
    caption = two_people()
    text = to_dreamid_caption(caption)
    assert text.startswith(
        "[IMAGE_CAPTIONS_START]\n<img1>: A person with light skin and brown hair, identified as <sub1>.\n"
    )
    assert (
        "**Main Characters/Subjects Appearance**: <sub1>, on the left, is a person with light skin and brown hair. "
        in text
    )
    assert "[CO_ANALYSIS_START]\n<sub1> says, <S>Hello there.<E> <sub2> says, <S>Hi, how are you?<E>" in text
    assert text.endswith(
        "[SPEAKER_TIMESTAMPS_START]\n{\n"
        '    "<sub1>": ["<Time_S>00.00.200-00.01.500<Time_E>", "<Time_S>00.03.100-00.04.900<Time_E>"],\n'
        '    "<sub2>": ["<Time_S>00.01.750-00.03.000<Time_E>"]\n'
        "}\n[SPEAKER_TIMESTAMPS_END]"
    )
    # the section layout of DreamID-Omni's own files, marker for marker
    markers = [line for line in text.splitlines() if line.startswith("[")]
    assert markers == [line for line in TWOIP_20.splitlines() if line.startswith("[")]
    back = from_dreamid_caption(text, person_ids=["P00012", "P00031"])
    assert back == caption  # no "dreamid" extras: every section is facevox's own


def test_too_many_people_is_refused() -> None:
    three = two_people()
    three["subjects"].append({"slot": 3, "person_id": "P3", "position": "centre", "appearance": "a person"})
    with pytest.raises(TooManyPeopleError, match=r"3 people, but DreamID-Omni has 2 identity slots"):
        to_dreamid_caption(three)
    with pytest.raises(TooManyPeopleError, match="3 people"):
        from_dreamid_caption(
            ONEIP_9.replace("<img1>: In the frame", "<img1>: a\n<img2>: b\n<img3>: In the frame")
        )
    with pytest.raises(TooManyPeopleError, match="names <sub2> but has 1 reference images"):
        from_dreamid_caption(ONEIP_9.replace("swallows as if", "glances at <sub2>, swallows as if"))
    assert issubclass(TooManyPeopleError, ValueError)


def test_turn_past_the_clip_is_refused() -> None:
    with pytest.raises(
        TimestampPastClipError, match=r"speech\[1\] \(<sub2>\): .*1.75-5.5 s ends past the 5.042 s clip"
    ):
        to_dreamid_caption(two_people(second=(1.75, 5.5)))
    with pytest.raises(TimestampPastClipError, match="is not a span"):
        to_dreamid_caption(two_people(first=(1.5, 1.5)))
    assert to_dreamid_caption(two_people(second=(1.75, 5.5)), clip_seconds=6.0)  # a longer clip takes it


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda c: c["speech"][0].update(start=None), "no start / end seconds"),
        (lambda c: c["speech"][1].update(slot=4), "speech\\[1\\] is slot 4"),
        (lambda c: c["speech"].reverse(), "list the turns in time order"),
        (lambda c: c["subjects"][1].update(slot=3), "subject slots must be 1..2"),
        (lambda c: c.update(dreamid={"time_format": "mm:ss"}), "the 'mm:ss' form writes whole seconds"),
        (lambda c: c.update(dreamid={"analysis": "<sub1> says, <S><E>"}), "1 speech places for 3 turns"),
        (lambda c: c.update(dreamid={"actions": "<sub3> waves."}), "names <sub3> but has subjects"),
        (lambda c: c["subjects"].__setitem__(0, "P00012"), "subjects\\[0\\] must be an object"),
        (lambda c: c["speech"][0].update(text=None), "speech\\[0\\] must be an object with a string text"),
        (lambda c: c.pop("scene"), "not a structured caption"),
    ],
)
def test_captions_dreamid_cannot_take_are_refused(change: Any, expected: str) -> None:
    caption = two_people()
    change(caption)
    with pytest.raises(DreamIDCaptionError, match=expected):
        to_dreamid_caption(caption)


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            lambda t: t.replace("[CO_ANALYSIS_START]", "").replace("[CO_ANALYSIS_END]", ""),
            "no \\[CO_ANALYSIS_START\\]",
        ),
        (lambda t: t.replace("<img1>:", "<img2>:"), "must start '<img1>:'"),
        (
            lambda t: t.replace("00:06-00:09", "00:01-00:02"),
            "follows <sub1>, but the timestamps give that turn",
        ),
        (lambda t: t.replace('["<Time_S>00:06-00:09<Time_E>"]', "[]"), "2 <S>..<E> lines but 1 speaker"),
        (lambda t: t.replace("00:02-00:05", "00:02-0:5:7:1"), "neither MM:SS nor MM.SS.mmm"),
        (lambda t: t.replace("00:02-00:05", "00.02.000-00.05.000"), "mix the forms"),
        (
            lambda t: t.replace("**Main Characters/Subjects Actions**", "**Actions**"),
            "no \\*\\*Main Characters/Subjects Actions",
        ),
    ],
)
def test_unreadable_dreamid_captions_are_refused(edit: Any, expected: str) -> None:
    with pytest.raises(DreamIDCaptionError, match=expected):
        from_dreamid_caption(edit(TWOIP_20), clip_seconds=10.0)
