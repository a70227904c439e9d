"""The Identity-as-Presence release's sampling as ``GenerateConfig`` values.

Read from the release's ``inference.py`` (the ``pipe(...)`` call: ``num_inference_steps=50``,
``shift=5.0``, ``video_guidance_scale=4.0``, ``audio_guidance_scale=3.0``, ``slg_layer=11``, the two
negative prompts) and ``identity_as_presence/pipeline.py`` (``IDAVPipeline.__call__``: the
unconditional pass keeps ``id_images`` and passes ``spkid=None``; Wan's ``FlowUniPCMultistepScheduler``
with the config's ``num_train_timesteps: 1000``), WeChatCV/Identity-as-Presence at commit 9d87f9b.
``recipes/release_iap.yaml`` holds the same values for ``--recipe``; ``facevox generate --model`` uses
them by default when the folder is a release checkout (:func:`is_release_folder`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

RELEASE_RECIPE: dict[str, Any] = {
    "solver": "unipc",
    "steps": 50,
    "shift": 5.0,
    "sigma_grid": "wan",
    "integer_timesteps": True,
    "guidance": "two_pass",
    "two_pass": {
        "video": 4.0,
        "audio": 3.0,
        "video_negative": "jitter, bad hands, blur, distortion",
        "audio_negative": "robotic, muffled, echo, distorted",
        "skip_block": 11,
        "uncond_faces": True,
        "uncond_voices": False,
        "caption_length": 512,
    },
}


def is_release_folder(folder: str | Path) -> bool:
    """True when ``folder`` holds the release transformer (found by content, as the loader does)."""
    from facevox.release.loader import ReleaseError, find_parts

    try:
        find_parts(folder)
    except ReleaseError:
        return False
    return True
