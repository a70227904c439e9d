"""The demo's report page: each clip's row says the caption the model was given."""

from __future__ import annotations

import json
from pathlib import Path

from facevox.demo import _html


def test_report_shows_each_clips_caption_escaped(tmp_path: Path) -> None:
    for d in ("generated", "floor", "benchmark/real"):
        (tmp_path / d).mkdir(parents=True)
        (tmp_path / d / "c000001.mp4").write_bytes(b"")
    text = (
        "A close-up of one person in front of a pink background. <REF_1_S>a person with dark hair<REF_1_E>."
    )
    (tmp_path / "generated" / "c000001.json").write_text(json.dumps({"caption_text": text}))
    page = _html(tmp_path, {"steps": {}, "total_seconds": 1.0, "init": "shipped"})
    assert "in front of a pink background. &lt;REF_1_S&gt;a person with dark hair&lt;REF_1_E&gt;." in page
    assert page.count("<video") == 3
